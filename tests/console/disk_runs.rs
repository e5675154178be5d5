//! Every run folder is a run (issue 19): the runs view lists the daemon's tasks and
//! every run folder under the home's `runs/` and each `--logdir` (clipgan run folders
//! and TensorBoard runs) as read-only runs, with their state from `status.json`; queue
//! actions on them are refused; curves work on them; new folders appear on the timer.
use clipgan::console::app::{App, View};
use clipgan::console::event::{Cmd, Event};
use clipgan::console::keys::Keymap;
use clipgan::console::theme::Theme;
use clipgan::console::views;
use clipgan::rundir::tfevents::EventWriter;
use clipgan::rundir::MetricEvent;
use clipgan::supervisor::protocol::Snapshot;
use ratatui::backend::TestBackend;
use ratatui::crossterm::event::{KeyCode, KeyEvent, KeyModifiers};
use ratatui::Terminal;
use serde_json::json;
use std::io::Write;
use std::path::Path;

const NOW: f64 = 1_800_000_000.0;

/// A run folder as a job writes it: run.json, status.json, metrics.jsonl.
fn write_run(dir: &Path, job: &str, name: &str, state: &str, updated: f64, steps: u64) {
    std::fs::create_dir_all(dir).unwrap();
    let id = dir.file_name().unwrap().to_str().unwrap();
    let manifest =
        json!({"format": 1, "id": id, "job": job, "name": name, "created": NOW - 3600.0, "host": "h", "clipgan_version": "0.1.0"});
    std::fs::write(dir.join("run.json"), manifest.to_string()).unwrap();
    let status = json!({"state": state, "started": NOW - 3500.0, "updated": updated, "step": steps, "total_steps": 100, "message": ""});
    std::fs::write(dir.join("status.json"), status.to_string()).unwrap();
    let mut m = std::fs::File::create(dir.join("metrics.jsonl")).unwrap();
    for s in 1..=steps {
        writeln!(m, "{}", json!({"step": s, "wall": NOW - 3000.0 + s as f64, "tag": "loss/g_total", "value": 3.0 - s as f64 * 0.01}))
            .unwrap();
    }
}

/// A TensorBoard run as the writer of the jobs writes it (PyTorch's layout).
fn write_tb(dir: &Path, steps: u64) {
    std::fs::create_dir_all(dir).unwrap();
    let mut w = EventWriter::create(dir, NOW - 2000.0, "seedhost").unwrap();
    for s in 0..steps {
        w.scalar(&MetricEvent {
            step: s,
            epoch: 0,
            wall: NOW - 2000.0 + s as f64,
            tag: "loss/g_total".into(),
            value: 2.0 + s as f64 * 0.01,
        })
        .unwrap();
    }
    w.flush().unwrap();
}

fn render(app: &App, w: u16, h: u16) -> String {
    let mut term = Terminal::new(TestBackend::new(w, h)).unwrap();
    term.draw(|f| views::draw(f, app)).unwrap();
    format!("{}", term.backend())
}

fn key(app: &mut App, c: char) -> Vec<Cmd> {
    app.handle(Event::Key(KeyEvent::new(KeyCode::Char(c), KeyModifiers::NONE)))
}

#[test]
fn runs_on_disk_are_listed_read_only_beside_the_tasks() {
    let d = tempfile::tempdir().unwrap();
    let (home, logdir) = (d.path().join("home"), d.path().join("elsewhere"));
    let runs = home.join("runs");
    write_run(&runs.join("20260101-000001-train-bird"), "train", "bird", "finished", NOW - 2000.0, 50);
    write_run(&runs.join("20260101-000002-pretrain-clip"), "pretrain", "clip", "running", NOW - 5.0, 20);
    write_run(&runs.join("20260101-000003-eval-killed"), "eval", "killed", "running", NOW - 900.0, 10);
    write_run(&runs.join("20260101-000004-fake-run-queued"), "fake-run", "queued", "running", NOW - 1.0, 30);
    std::fs::create_dir_all(runs.join("not-a-run")).unwrap();
    write_tb(&logdir.join("seed/finetune"), 40);
    write_tb(&logdir.join("seed/gan/nested"), 30);
    write_run(&logdir.join("copied-run"), "train", "copied", "stopped", NOW - 3000.0, 15);

    // The daemon knows one of them as task 1.
    let snap: Snapshot = serde_json::from_value(json!({
        "rev": 1, "daemon_pid": 1, "home": home, "settings": {}, "groups": [],
        "tasks": [{"id": 1, "job": "fake-run", "group": "default", "state": "running", "label": "queued",
                   "run_id": "20260101-000004-fake-run-queued", "run_dir": runs.join("20260101-000004-fake-run-queued"),
                   "queued_at": NOW - 100.0, "started_at": NOW - 90.0, "slot": 0}],
        "save_error": null,
    }))
    .unwrap();
    let mut app = App::new(&home, Keymap::default(), Theme::default());
    app.now = NOW;
    app.handle(Event::Snapshot(Box::new(snap)));
    app.add_logdir(&logdir);
    assert_eq!(app.tasks().len(), 7, "1 task + 3 runs in runs/ + 3 in the logdir");
    insta::assert_snapshot!("runs_on_disk_wide", render(&app, 130, 20));

    // Queue actions on a run on disk are refused with a message, no command goes out.
    let row = app.visible_tasks().iter().position(|t| t.task.label.as_deref() == Some("bird")).unwrap();
    app.runs.selected = row;
    assert!(key(&mut app, 'x').is_empty());
    assert!(app.message.contains("read-only"), "{}", app.message);
    assert!(app.popups.is_empty());

    // Curves work on all of them: mark the clipgan run and a TensorBoard run.
    let bird = app.visible_tasks()[row].task.id;
    let tb = app.tasks().iter().find(|t| t.task.label.as_deref() == Some("seed/finetune")).unwrap().task.id;
    app.runs.marked.extend([bird, tb]);
    app.handle(Event::Tick(NOW));
    assert_eq!(app.store.get(&runs.join("20260101-000001-train-bird")).unwrap().points(), 50);
    let tb_data = app.store.get(&logdir.join("seed/finetune")).unwrap();
    assert!(tb_data.is_tensorboard());
    assert_eq!(tb_data.tags["loss/g_total"].len(), 40);
    app.view = View::Curves;
    let text = render(&app, 120, 30);
    assert!(text.contains("bird") && text.contains("seed/finetune"), "{text}");

    // A folder made while the console runs appears on the next tick.
    write_run(&runs.join("20260101-000005-train-late"), "train", "late", "running", NOW, 3);
    app.handle(Event::Tick(NOW + 1.0));
    assert!(app.tasks().iter().any(|t| t.task.label.as_deref() == Some("late")));
    assert_eq!(app.tasks().len(), 8);
    // Ids stay with their folders.
    assert_eq!(app.tasks().iter().find(|t| t.task.label.as_deref() == Some("bird")).unwrap().task.id, bird);
}
