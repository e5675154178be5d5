//! The console's view of an evaluation's results: the runs view's detail line shows
//! R-precision, FID, IS and KID (each with its ± std) in the published table's order.
use clipgan::console::app::App;
use clipgan::console::event::Event;
use clipgan::console::keys::Keymap;
use clipgan::console::theme::Theme;
use clipgan::console::views;
use clipgan::supervisor::protocol::Snapshot;
use ratatui::backend::TestBackend;
use ratatui::Terminal;
use serde_json::json;
use std::io::Write;

const NOW: f64 = 1_800_000_000.0;

#[test]
fn eval_results_show_kid_with_its_std() {
    let dir = tempfile::tempdir().unwrap();
    let home = dir.path();
    let run = home.join("runs/eval1");
    std::fs::create_dir_all(run.join("logs")).unwrap();
    let mut m = std::fs::File::create(run.join("metrics.jsonl")).unwrap();
    // What `clipgan eval` logs at the generator's step.
    for (tag, v) in [
        ("eval/fd_clip", 0.125),
        ("eval/fid", 15.34),
        ("eval/is", 4.71),
        ("eval/is_std", 0.06),
        ("eval/kid", 0.0123),
        ("eval/kid_std", 0.0011),
        ("eval/r_precision", 0.7658),
        ("eval/r_precision_std", 0.0053),
    ] {
        writeln!(m, "{}", json!({"step": 600, "epoch": 0, "wall": NOW - 10.0, "tag": tag, "value": v})).unwrap();
    }
    drop(m);
    let snap: Snapshot = serde_json::from_value(json!({
        "rev": 1, "daemon_pid": 1, "home": home,
        "settings": {"stop_timeout_s": 60.0, "log_cap_bytes": 1024},
        "groups": [{"name": "default", "slots": 1, "running": 0, "queued": 0}],
        "tasks": [{
            "id": 1, "job": "eval", "group": "default", "state": "finished",
            "run_id": "20260101-000001-eval", "run_dir": run, "queued_at": NOW - 900.0,
            "started_at": NOW - 600.0, "ended_at": NOW - 5.0, "slot": 0, "label": "eval-1",
            "status": {"state": "finished", "step": 3, "total_steps": 3, "message": "evaluated"},
        }],
        "save_error": null,
    }))
    .unwrap();
    let mut app = App::new(home, Keymap::default(), Theme::default());
    app.now = NOW;
    app.handle(Event::Snapshot(Box::new(snap)));
    let mut term = Terminal::new(TestBackend::new(160, 20)).unwrap();
    term.draw(|f| views::draw(f, &app)).unwrap();
    let screen = format!("{}", term.backend());
    let want = "r_precision=0.7658±0.0053 fid=15.34 is=4.71±0.06 kid=0.0123±0.0011 fd_clip=0.125";
    assert!(screen.contains(want), "{screen}");
}
