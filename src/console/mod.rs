//! `clipgan console`: the terminal UI. A client of the daemon (control) and a reader of
//! run folders (data); quitting it or losing the terminal changes nothing in the daemon.
//!
//! Layout: `app` (the one owner of the state: what the views share, events in, commands
//! out, key dispatch, popups), one module per view with its state and actions (`runs`,
//! `configs`, `curves`, `logs`, `samples`), their helpers (`config_diff`, `queue_form`, `sweep_form`),
//! `event` (typed events, commands, the threads around the app), `keys` / `theme` (user
//! files), `store` (metric series per run, tailed; `columns`: per-column decimation and means of
//! them), `views` (drawing only, a pure
//! function of the state), `images` / `resources` (image previews in the terminal, the
//! resources panel's sampler).
pub mod app;
pub mod columns;
pub mod config_diff;
pub mod configs;
pub mod curves;
pub mod disk;
pub mod event;
pub mod images;
pub mod keys;
pub mod logs;
pub mod queue_form;
pub mod resources;
pub mod runs;
pub mod samples;
pub mod store;
pub mod sweep_curves;
pub mod sweep_form;
pub mod theme;
pub mod views;

use crate::supervisor::client::Client;
use crate::supervisor::Paths;
use anyhow::{Context, Result};
use std::path::Path;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{mpsc, Arc};
use std::time::Duration;

/// How often run folders and logs are polled (and ages redrawn).
pub const TICK: Duration = Duration::from_millis(1000);

/// The app for a home with the user's keys and theme.
pub fn new_app(home: &Path) -> Result<app::App> {
    let dir = keys::user_dir();
    let keymap = keys::Keymap::load(&dir)?;
    let theme = theme::Theme::load(&dir)?;
    Ok(app::App::new(home, keymap, theme))
}

/// Write the default `keys.yml` and `theme.yml` into the user folder (existing files are
/// kept unless `force`); returns the paths written.
pub fn write_defaults(force: bool) -> Result<Vec<std::path::PathBuf>> {
    let dir = keys::user_dir();
    crate::util::fsx::create_dir_all(&dir)?;
    let mut written = Vec::new();
    for (name, text) in [(keys::KEYS_FILE, keys::Keymap::defaults_yaml()), (theme::THEME_FILE, theme::Theme::defaults_yaml())] {
        let p = dir.join(name);
        if p.exists() && !force {
            anyhow::bail!("{} exists; pass --force to overwrite it", p.display());
        }
        crate::util::fsx::atomic_write(&p, text.as_bytes())?;
        written.push(p);
    }
    Ok(written)
}

/// Open the console on the project `home`, with the tasks `focus` selected and followed
/// (marked for the curves, the first one's logs), in `view` if given (else the curves
/// with a focus, the runs without). Starts the daemon if none runs. Returns when the user
/// quits; the daemon and its jobs keep running.
pub fn run_on(home: &Path, focus: &[u64], view: Option<app::View>) -> Result<()> {
    run_with_logdirs(home, focus, view, &[])
}

/// [`run_on`], also listing the runs under `logdirs` (clipgan run folders and
/// TensorBoard runs, read-only).
pub fn run_with_logdirs(home: &Path, focus: &[u64], view: Option<app::View>, logdirs: &[std::path::PathBuf]) -> Result<()> {
    let mut app = new_app(home)?;
    for d in logdirs {
        app.add_logdir(d);
    }
    let paths = Paths::for_home(home);
    let client = Client::connect_or_spawn(&paths).context("the console needs the daemon")?;
    // The first snapshot before drawing, so the focus applies to real rows.
    let mut first = Client::connect(&paths)?;
    let snap = first.status()?;
    app.handle(event::Event::Snapshot(Box::new(snap)));
    if let Ok(c) = first.configs(false) {
        app.handle(event::Event::ConfigIndex(c));
    }
    app.focus(focus);
    if !focus.is_empty() {
        app.view = app::View::Curves;
    }
    if let Some(v) = view {
        app.view = v;
    }

    let (tx, rx) = mpsc::channel();
    let (cmd_tx, cmd_rx) = mpsc::channel();
    let stop = Arc::new(AtomicBool::new(false));
    let mut terminal = ratatui::init();
    // The first frame, then ask the terminal for image protocols (raw mode is on; the
    // input thread, the only other reader of stdin, starts after the answer).
    let _ = terminal.draw(|f| views::draw(f, &app));
    let image_tx = tx.clone();
    let mut picker = images::ImagePicker::from_env();
    for key in event::keys_from_bytes(&std::mem::take(&mut picker.typed_ahead)) {
        let _ = tx.send(event::Event::Key(key));
    }
    app.samples.start(picker, move || {
        let _ = image_tx.send(event::Event::ImageReady);
    });
    // CPU %, memory and GPUs of the running workers, sampled once a second.
    let res_tx = tx.clone();
    let monitor = resources::ResourceMonitor::start(Duration::from_secs(1), move |s| {
        let _ = res_tx.send(event::Event::Resources(Box::new(s.clone())));
    });
    let mut watched = app.worker_pids();
    monitor.set_pids(watched.clone());
    // From here on, a panic restores the terminal (ratatui's hook) before unwinding.
    let result = (|| -> Result<()> {
        let size = terminal.size()?;
        app.size = (size.width, size.height);
        event::spawn_input(tx.clone(), stop.clone());
        event::spawn_ticks(tx.clone(), TICK, stop.clone());
        event::spawn_daemon_watch(paths.clone(), Some(client), tx.clone(), stop.clone());
        event::spawn_commands(paths.clone(), cmd_rx, tx.clone());
        terminal.draw(|f| views::draw(f, &app))?;
        // Redraw only after events: an idle console sleeps in recv.
        while let Ok(ev) = rx.recv() {
            let mut batch = vec![ev];
            batch.extend(rx.try_iter());
            for ev in batch {
                for cmd in app.handle(ev) {
                    let _ = cmd_tx.send(cmd);
                }
            }
            if app.quit {
                break;
            }
            let pids = app.worker_pids();
            if pids != watched {
                monitor.set_pids(pids.clone());
                watched = pids;
            }
            terminal.draw(|f| views::draw(f, &app))?;
        }
        Ok(())
    })();
    stop.store(true, Ordering::Relaxed);
    ratatui::restore();
    result
}
