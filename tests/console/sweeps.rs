//! A sweep in the runs view: its runs listed together under it, collapsible to one row
//! with the progress of the whole sweep (snapshots).
use clipgan::console::app::App;
use clipgan::console::event::Event;
use clipgan::console::keys::Keymap;
use clipgan::console::theme::Theme;
use clipgan::console::views;
use clipgan::supervisor::protocol::Snapshot;
use ratatui::backend::TestBackend;
use ratatui::crossterm::event::{KeyCode, KeyEvent, KeyModifiers};
use ratatui::Terminal;
use serde_json::json;

const NOW: f64 = 1_800_000_000.0;

fn task(id: u64, state: &str, label: &str, sweep: Option<&str>, step: u64) -> serde_json::Value {
    json!({
        "id": id, "job": "fake-run", "group": "default", "state": state, "label": label, "sweep": sweep,
        "run_id": format!("20260101-0000{id:02}-fake"), "run_dir": format!("/nonexistent/run{id}"),
        "queued_at": NOW - 900.0, "started_at": NOW - 600.0,
        "ended_at": if state == "finished" { json!(NOW - 60.0) } else { json!(null) },
        "status": {"state": "running", "step": step, "total_steps": 100, "message": ""},
    })
}

fn app() -> App {
    // Task 3 is not in the sweep but comes between its members by id.
    let snap: Snapshot = serde_json::from_value(json!({
        "rev": 1, "daemon_pid": 4242, "home": "/nonexistent",
        "settings": {"stop_timeout_s": 60.0, "log_cap_bytes": 1024},
        "groups": [{"name": "default", "slots": 3, "running": 2, "queued": 1}],
        "tasks": [
            task(1, "finished", "LAMBDA=0.1 seed=100", Some("sweep-1"), 100),
            task(2, "running", "LAMBDA=0.1 seed=101", Some("sweep-1"), 60),
            task(3, "running", "other", None, 10),
            task(4, "queued", "LAMBDA=1 seed=100", Some("sweep-1"), 0),
            task(5, "finished", "LAMBDA=1 seed=101", Some("sweep-1"), 100),
        ],
        "sweeps": {"sweep-1": {"name": "lambda", "config": "/nonexistent/t.yml", "keys": ["TRAIN.SMOOTH.LAMBDA", "CLIPGAN.SEED"], "created": NOW - 900.0}},
        "save_error": null,
    }))
    .unwrap();
    let mut app = App::new(std::path::Path::new("/nonexistent"), Keymap::default(), Theme::default());
    app.now = NOW;
    app.handle(Event::Snapshot(Box::new(snap)));
    app
}

fn render(app: &App) -> String {
    let mut term = Terminal::new(TestBackend::new(110, 12)).unwrap();
    term.draw(|f| views::draw(f, app)).unwrap();
    format!("{}", term.backend())
}

fn ids(app: &App) -> Vec<u64> {
    app.visible_tasks().iter().map(|t| t.task.id).collect()
}

fn press(app: &mut App, c: char) {
    app.handle(Event::Key(KeyEvent::new(KeyCode::Char(c), KeyModifiers::NONE)));
}

#[test]
fn a_sweeps_runs_are_listed_together_and_collapse_to_one_row() {
    let mut app = app();
    assert_eq!(ids(&app), vec![1, 2, 4, 5, 3], "the sweep's runs together, where its first one is");
    insta::assert_snapshot!("runs_sweep_expanded", render(&app));
    // On a member (the second row), z collapses its sweep; the selection stays on it.
    press(&mut app, 'j');
    press(&mut app, 'z');
    assert_eq!(ids(&app), vec![1, 3]);
    assert_eq!(app.selected_task().unwrap().task.sweep.as_deref(), Some("sweep-1"));
    let text = render(&app);
    // 2 of 4 ended; 60 of 100 steps of the running one: (2 + 0.6) / 4.
    assert!(text.contains("▸ sweep-1 lambd") && text.contains("2/4 ended") && text.contains("65%"), "{text}");
    insta::assert_snapshot!("runs_sweep_collapsed", text);
    // z again expands it; on a run outside any sweep it says so.
    press(&mut app, 'z');
    assert_eq!(ids(&app), vec![1, 2, 4, 5, 3]);
    press(&mut app, 'G');
    press(&mut app, 'z');
    assert!(app.message.contains("not part of a sweep"), "{}", app.message);
    // Sorting and filtering still apply; the sweep's rows stay together.
    press(&mut app, 's');
    assert_eq!(ids(&app).len(), 5);
}

#[test]
fn a_pruned_member_shows_as_pruned_and_in_the_collapsed_rows_counts() {
    let mut app = app();
    let mut snap = app.snapshot.clone().unwrap();
    snap.tasks[1].task.state = clipgan::supervisor::state::TaskState::Pruned;
    snap.rev += 1;
    app.handle(Event::Snapshot(Box::new(snap)));
    let text = render(&app);
    assert!(text.lines().any(|l| l.contains(" 2 ") && l.contains("pruned")), "{text}");
    press(&mut app, 'z');
    let text = render(&app);
    assert!(text.contains("3/4 ended") && text.contains("1 pruned"), "{text}");
    insta::assert_snapshot!("runs_sweep_collapsed_pruned", text);
}

/// Stops the daemon of a test's home when the test ends (also when it fails).
struct Daemon(std::path::PathBuf);

impl Drop for Daemon {
    fn drop(&mut self) {
        let _ = std::process::Command::new(env!("CARGO_BIN_EXE_clipgan")).args(["daemon", "--stop"]).env("CLIPGAN_HOME", &self.0).output();
    }
}

fn key(app: &mut App, code: KeyCode) -> Vec<clipgan::console::event::Cmd> {
    app.handle(Event::Key(KeyEvent::new(code, KeyModifiers::NONE)))
}

fn type_text(app: &mut App, text: &str) {
    for c in text.chars() {
        let code = if c == '\n' { KeyCode::Tab } else { KeyCode::Char(c) };
        assert!(key(app, code).is_empty());
    }
}

#[test]
fn the_configs_view_queues_a_sweep_in_one_request() {
    use clipgan::console::event::Cmd;
    use clipgan::supervisor::protocol::ConfigIndex;
    use clipgan::supervisor::state::TaskState;
    // Short paths: Unix socket paths are limited to 107 bytes.
    let dir = tempfile::Builder::new().prefix("cgc").tempdir_in("/tmp").unwrap();
    let home = dir.path();
    let cfg = home.join("cfg/t.yml");
    std::fs::create_dir_all(cfg.parent().unwrap()).unwrap();
    std::fs::write(&cfg, "CONFIG_NAME: t\nDATASET_NAME: birds\nTRAIN:\n  FLAG: true\n  BATCH_SIZE: 4\nCLIPGAN:\n  SEED: 100\n").unwrap();
    let mut app = App::new(home, Keymap::default(), Theme::default());
    app.now = NOW;
    let index: ConfigIndex = serde_json::from_value(json!({
        "rev": 1, "root": home.join("cfg"), "watch": "notify",
        "files": [{"path": cfg, "rel": "t.yml", "modified": NOW, "ok": true, "job": "train", "diagnostics": []}],
    }))
    .unwrap();
    app.handle(Event::ConfigIndex(index));
    press(&mut app, '2');
    press(&mut app, 'S');
    assert!(matches!(app.popups.last(), Some(clipgan::console::app::Popup::Sweep(_))));
    let draw = |app: &App| {
        let mut term = Terminal::new(TestBackend::new(90, 16)).unwrap();
        term.draw(|f| views::draw(f, app)).unwrap();
        format!("{}", term.backend())
    };
    // Valid: the count over the keys it varies.
    type_text(&mut app, "CLIPGAN.FAKE_OFFSET=0,1.5\nseeds 2\njob fake-run\nheld\nprune median loss/g_total 5");
    let text = draw(&app);
    assert!(text.contains("4 task(s) over CLIPGAN.FAKE_OFFSET, CLIPGAN.SEED"), "{text}");
    insta::assert_snapshot!("configs_sweep_form_valid", text);
    // An unknown key: the error, inline, and enter sends nothing.
    type_text(&mut app, "\nGAN.NOPE=1,2");
    let text = draw(&app);
    assert!(text.contains("error: line 6: --grid GAN.NOPE"), "{text}");
    insta::assert_snapshot!("configs_sweep_form_error", text);
    assert!(key(&mut app, KeyCode::Enter).is_empty(), "nothing is sent with an error");
    assert!(matches!(app.popups.last(), Some(clipgan::console::app::Popup::Sweep(_))), "the form stays open");
    // A bad value is an error too.
    for _ in 0.."\nGAN.NOPE=1,2".len() {
        key(&mut app, KeyCode::Backspace);
    }
    type_text(&mut app, "\nGAN.GF_DIM=32,abc");
    assert!(draw(&app).contains("--grid GAN.GF_DIM"));
    for _ in 0.."\nGAN.GF_DIM=32,abc".len() {
        key(&mut app, KeyCode::Backspace);
    }
    // Enter: one add_sweep request, which the real daemon queues whole.
    let cmds = key(&mut app, KeyCode::Enter);
    let [Cmd::AddSweep(req)] = &cmds[..] else { panic!("one sweep request, not {cmds:?}") };
    assert_eq!(req.tasks.len(), 4);
    assert!(app.popups.is_empty());
    let _daemon = Daemon(home.to_path_buf());
    let paths = clipgan::supervisor::Paths::for_home(home);
    let mut client =
        clipgan::supervisor::client::Client::connect_or_spawn_with(&paths, std::path::Path::new(env!("CARGO_BIN_EXE_clipgan"))).unwrap();
    let answer = cmds[0].run(&mut client).unwrap();
    assert!(answer.starts_with("queued sweep sweep-1: 4 task(s), ids 1-4"), "{answer}");
    let s = client.status().unwrap();
    let got: Vec<(Vec<String>, TaskState, Option<String>)> =
        s.tasks.iter().map(|t| (t.task.overrides.clone(), t.task.state, t.task.sweep.clone())).collect();
    let want = |o: &str, seed: u64| {
        (vec![format!("CLIPGAN.FAKE_OFFSET={o}"), format!("CLIPGAN.SEED={seed}")], TaskState::Held, Some("sweep-1".into()))
    };
    assert_eq!(got, vec![want("0", 100), want("0", 101), want("1.5", 100), want("1.5", 101)]);
    assert!(s.tasks.iter().all(|t| t.task.job == clipgan::rundir::JobKind::FakeRun));
    let sweep = &s.sweeps["sweep-1"];
    assert_eq!((sweep.name.as_str(), sweep.keys.clone()), ("t", vec!["CLIPGAN.FAKE_OFFSET".to_string(), "CLIPGAN.SEED".into()]));
    assert_eq!(sweep.prune.as_ref().map(|p| (p.metric.as_str(), p.after_steps)), Some(("loss/g_total", 5)));
}

#[test]
fn a_sweep_over_the_limit_asks_first() {
    let dir = tempfile::tempdir().unwrap();
    let cfg = dir.path().join("t.yml");
    std::fs::write(&cfg, "CONFIG_NAME: t\nDATASET_NAME: birds\nTRAIN:\n  FLAG: true\nCLIPGAN:\n  SEED: 100\n").unwrap();
    let mut app = App::new(dir.path(), Keymap::default(), Theme::default());
    app.popups.push(clipgan::console::app::Popup::Sweep(clipgan::console::sweep_form::SweepForm::new(&cfg, "t.yml")));
    // 20 x 13 = 260 members, more than 256.
    let values: Vec<String> = (1..=20).map(|i| i.to_string()).collect();
    type_text(&mut app, &format!("TRAIN.SMOOTH.LAMBDA={}\nseeds 13", values.join(",")));
    assert!(key(&mut app, KeyCode::Enter).is_empty(), "not sent yet");
    let Some(clipgan::console::app::Popup::Confirm { question, .. }) = app.popups.last() else { panic!("a confirmation") };
    assert!(question.contains("260 tasks, more than 256"), "{question}");
    let cmds = key(&mut app, KeyCode::Char('y'));
    assert!(matches!(&cmds[..], [clipgan::console::event::Cmd::AddSweep(r)] if r.tasks.len() == 260));
}
