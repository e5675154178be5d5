//! The typed events that feed the app, the commands it asks for, and the threads that
//! produce events (terminal input, the daemon's changes, a timer) or run commands
//! against the daemon. Only the main loop touches the app state.
use crate::supervisor::client::Client;
use crate::supervisor::pipeline::{self, Pipeline};
use crate::supervisor::protocol::{AddSweep, AddTask, ConfigIndex, Snapshot, Target};
use crate::supervisor::Paths;
use ratatui::crossterm::event::KeyEvent;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::mpsc::{Receiver, Sender};
use std::sync::Arc;
use std::time::Duration;

#[derive(Debug)]
pub enum Event {
    Key(KeyEvent),
    Resize(u16, u16),
    /// The timer (Unix seconds now): poll run folders and logs, age columns.
    Tick(f64),
    Snapshot(Box<Snapshot>),
    /// The daemon's index of `cfg/` (after every change).
    ConfigIndex(ConfigIndex),
    /// The daemon cannot be reached (the console keeps trying).
    DaemonError(String),
    /// The outcome of a command, for the status line.
    Message(String),
    /// The image thread finished an image (redraw).
    ImageReady,
    /// A new sample of the workers' CPU, memory and the GPUs (the resources thread).
    Resources(Box<crate::console::resources::ResourceSnapshot>),
}

/// Key events for raw terminal bytes typed before the input thread started (while the
/// console asked the terminal about images): printable ASCII, Enter, Tab, Backspace and
/// ctrl-letters. Escape sequences (arrows, function keys) were dropped with the answers.
pub fn keys_from_bytes(bytes: &[u8]) -> Vec<KeyEvent> {
    use ratatui::crossterm::event::{KeyCode, KeyModifiers};
    bytes
        .iter()
        .filter_map(|&b| {
            let (code, mods) = match b {
                b'\r' | b'\n' => (KeyCode::Enter, KeyModifiers::NONE),
                b'\t' => (KeyCode::Tab, KeyModifiers::NONE),
                0x7f | 0x08 => (KeyCode::Backspace, KeyModifiers::NONE),
                0x01..=0x1a => (KeyCode::Char((b'a' + b - 1) as char), KeyModifiers::CONTROL),
                0x20..=0x7e => (KeyCode::Char(b as char), if b.is_ascii_uppercase() { KeyModifiers::SHIFT } else { KeyModifiers::NONE }),
                _ => return None,
            };
            Some(KeyEvent::new(code, mods))
        })
        .collect()
}

/// What the app asks of the daemon.
#[derive(Clone, Debug)]
pub enum Cmd {
    Kill(u64),
    Pause(u64),
    Resume(u64),
    Restart(u64),
    ResumeRun(u64),
    Remove(u64),
    Add(AddTask),
    /// A whole sweep in one request (the configs view's sweep form).
    AddSweep(AddSweep),
    Pipeline(Pipeline),
    Rescan,
}

impl Cmd {
    pub fn run(&self, c: &mut Client) -> anyhow::Result<String> {
        let ok = |r: (String, Vec<String>)| {
            if r.1.is_empty() {
                r.0
            } else {
                format!("{} ({})", r.0, r.1.join("; "))
            }
        };
        Ok(match self {
            Cmd::Kill(id) => ok(c.kill(*id, None, None)?),
            Cmd::Pause(id) => ok(c.pause(Target::Task(*id), false)?),
            Cmd::Resume(id) => ok(c.resume(Target::Task(*id))?),
            Cmd::Restart(id) => ok(c.restart(*id)?),
            Cmd::ResumeRun(id) => ok(c.resume_run(*id)?),
            Cmd::Remove(id) => ok(c.remove(*id)?),
            Cmd::Add(t) => {
                let a = c.add(t.clone())?;
                let mut m = format!("queued task {} (run {})", a.id, a.run_id);
                if !a.warnings.is_empty() {
                    m.push_str(&format!(" ({})", a.warnings.join("; ")));
                }
                m
            }
            Cmd::AddSweep(s) => {
                let a = c.add_sweep(s.clone())?;
                let (first, last) = (a.ids.first().copied().unwrap_or(0), a.ids.last().copied().unwrap_or(0));
                let mut m = format!("queued sweep {}: {} task(s), ids {first}-{last}", a.sweep, a.ids.len());
                if !a.warnings.is_empty() {
                    m.push_str(&format!(" ({})", a.warnings.join("; ")));
                }
                m
            }
            Cmd::Pipeline(p) => {
                let q = pipeline::queue(c, p)?;
                format!("queued pipeline: tasks {:?}", q.ids())
            }
            Cmd::Rescan => format!("rescanned cfg/: {} files", c.configs(true)?.files.len()),
        })
    }
}

/// Terminal input until `stop`; polls with a timeout so the thread ends with the app.
pub fn spawn_input(tx: Sender<Event>, stop: Arc<AtomicBool>) {
    use ratatui::crossterm::event as ct;
    std::thread::spawn(move || {
        while !stop.load(Ordering::Relaxed) {
            match ct::poll(Duration::from_millis(200)) {
                Ok(true) => {}
                Ok(false) => continue,
                Err(_) => return,
            }
            let ev = match ct::read() {
                Ok(ct::Event::Key(k)) if k.kind != ct::KeyEventKind::Release => Event::Key(k),
                Ok(ct::Event::Resize(w, h)) => Event::Resize(w, h),
                Ok(_) => continue,
                Err(_) => return,
            };
            if tx.send(ev).is_err() {
                return;
            }
        }
    });
}

/// A timer event every `every` until `stop`.
pub fn spawn_ticks(tx: Sender<Event>, every: Duration, stop: Arc<AtomicBool>) {
    std::thread::spawn(move || {
        while !stop.load(Ordering::Relaxed) {
            std::thread::sleep(every);
            if tx.send(Event::Tick(crate::util::unix_now())).is_err() {
                return;
            }
        }
    });
}

/// Follow the daemon: a snapshot (and the config index) after every change, using the
/// daemon's blocking `wait` (no polling); reconnects when the daemon goes away.
pub fn spawn_daemon_watch(paths: Paths, first: Option<Client>, tx: Sender<Event>, stop: Arc<AtomicBool>) {
    std::thread::spawn(move || {
        let mut client = first;
        let mut rev = None::<u64>;
        while !stop.load(Ordering::Relaxed) {
            let c = match client.as_mut() {
                Some(c) => c,
                None => match Client::connect(&paths) {
                    Ok(c) => client.insert(c),
                    Err(e) => {
                        if tx.send(Event::DaemonError(format!("{e:#}"))).is_err() {
                            return;
                        }
                        std::thread::sleep(Duration::from_secs(2));
                        continue;
                    }
                },
            };
            let step = (|| -> anyhow::Result<u64> {
                let s = c.status()?;
                let r = s.rev;
                if rev != Some(r) {
                    let config_index = c.configs(false)?;
                    let _ = tx.send(Event::Snapshot(Box::new(s)));
                    let _ = tx.send(Event::ConfigIndex(config_index));
                }
                Ok(r)
            })();
            match step {
                Ok(r) => {
                    rev = Some(r);
                    // Returns at a change or after the timeout (so `stop` is seen).
                    if let Err(e) = c.wait_change(r, Duration::from_secs(2)) {
                        let _ = tx.send(Event::DaemonError(format!("{e:#}")));
                        client = None;
                    }
                }
                Err(e) => {
                    if tx.send(Event::DaemonError(format!("{e:#}"))).is_err() {
                        return;
                    }
                    client = None;
                    rev = None;
                    std::thread::sleep(Duration::from_secs(1));
                }
            }
        }
    });
}

/// Run the app's commands one after another on a connection of its own.
pub fn spawn_commands(paths: Paths, rx: Receiver<Cmd>, tx: Sender<Event>) {
    std::thread::spawn(move || {
        let mut client: Option<Client> = None;
        for cmd in rx {
            let c = match client.as_mut() {
                Some(c) => c,
                None => match Client::connect(&paths) {
                    Ok(c) => client.insert(c),
                    Err(e) => {
                        let _ = tx.send(Event::Message(format!("error: {e:#}")));
                        continue;
                    }
                },
            };
            let msg = match cmd.run(c) {
                Ok(m) => m,
                Err(e) => {
                    // A transport error drops the connection; the next command reconnects.
                    client = None;
                    format!("error: {e:#}")
                }
            };
            if tx.send(Event::Message(msg)).is_err() {
                return;
            }
        }
    });
}
