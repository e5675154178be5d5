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
