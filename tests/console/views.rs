//! The console's views with fixed data: TestBackend + insta snapshots of every view, tiny
//! and odd terminal sizes, corrupt metric lines, key handling (commands, popups, filters,
//! search), user key and theme files.
use clipgan::console::app::{App, Popup, View};
use clipgan::console::event::{Cmd, Event};
use clipgan::console::keys::Keymap;
use clipgan::console::theme::Theme;
use clipgan::console::views;
use clipgan::supervisor::protocol::{ConfigIndex, Snapshot};
use ratatui::backend::TestBackend;
use ratatui::crossterm::event::{KeyCode, KeyEvent, KeyModifiers};
use ratatui::Terminal;
use serde_json::json;
use std::io::Write;
use std::path::Path;

const NOW: f64 = 1_800_000_000.0;

fn metric(step: u64, tag: &str, value: serde_json::Value) -> String {
    json!({"step": step, "epoch": 0, "wall": NOW - 600.0 + step as f64, "tag": tag, "value": value}).to_string()
}

/// A run folder with deterministic curves (fake-run's formula), `steps` steps.
fn write_run(dir: &Path, steps: u64, seed: u64) {
    std::fs::create_dir_all(dir.join("logs")).unwrap();
    let mut m = std::fs::File::create(dir.join("metrics.jsonl")).unwrap();
    for s in 1..=steps {
        let v = clipgan::jobs::fake_run::curves(s, 200, seed);
        writeln!(m, "{}", metric(s, "loss/g_total", json!(v[0]))).unwrap();
        writeln!(m, "{}", metric(s, "loss/d_total", json!(v[1]))).unwrap();
        if s % 10 == 0 {
            writeln!(m, "{}", metric(s, "val/r_precision", json!(v[4]))).unwrap();
        }
    }
    let mut log = std::fs::File::create(dir.join("logs/stdout.log")).unwrap();
    for s in 1..=steps {
        writeln!(log, "step {s}/200 loss/g_total {:.4}", clipgan::jobs::fake_run::curves(s, 200, seed)[0]).unwrap();
    }
    writeln!(log, "checkpoint saved at step {steps}").unwrap();
}

fn task(id: u64, state: &str, run_dir: &Path, step: u64, extra: serde_json::Value) -> serde_json::Value {
    let mut t = json!({
        "id": id, "job": "fake-run", "group": "default", "state": state,
        "run_id": format!("20260101-0000{id:02}-fake"), "run_dir": run_dir,
        "queued_at": NOW - 900.0, "started_at": NOW - 600.0, "slot": 0,
        "label": format!("fake-{id}"),
        "status": {"state": "running", "step": step, "total_steps": 200, "steps_per_s": 4.5, "eta_s": 44.0, "message": "training"},
    });
    for (k, v) in extra.as_object().unwrap() {
        t[k] = v.clone();
    }
    t
}

struct Fixture {
    _dir: tempfile::TempDir,
    app: App,
}

fn fixture() -> Fixture {
    let dir = tempfile::tempdir().unwrap();
    let home = dir.path();
    let runs = home.join("runs");
    let (r1, r2, r3) = (runs.join("run1"), runs.join("run2"), runs.join("run3"));
    write_run(&r1, 120, 1);
    write_run(&r2, 200, 2);
    std::fs::create_dir_all(&r3).unwrap();
    let snap: Snapshot = serde_json::from_value(json!({
        "rev": 7, "daemon_pid": 4242, "home": home,
        "settings": {"stop_timeout_s": 60.0, "log_cap_bytes": 1024},
        "groups": [{"name": "default", "slots": 2, "running": 1, "queued": 1}],
        "tasks": [
            task(1, "running", &r1, 120, json!({})),
            task(2, "finished", &r2, 200, json!({"ended_at": NOW - 100.0, "status": {"state": "finished", "step": 200, "total_steps": 200, "message": "done"}})),
            task(3, "queued", &r3, 0, json!({"started_at": null, "slot": null, "status": null, "after": [1], "label": "eval-after-1"})),
        ],
        "save_error": null,
    }))
    .unwrap();
    let mut app = App::new(home, Keymap::default(), Theme::default());
    app.now = NOW;
    app.handle(Event::Snapshot(Box::new(snap)));
    let cfg: ConfigIndex = serde_json::from_value(json!({
        "rev": 3, "root": home.join("cfg"), "watch": "notify",
        "files": [
            {"path": home.join("cfg/demo/pretrain.yml"), "rel": "demo/pretrain.yml", "modified": NOW, "ok": true, "job": "pretrain", "diagnostics": []},
            {"path": home.join("cfg/demo/train.yml"), "rel": "demo/train.yml", "modified": NOW, "ok": true, "job": "train", "diagnostics": []},
            {"path": home.join("cfg/demo/eval.yml"), "rel": "demo/eval.yml", "modified": NOW, "ok": true, "job": "eval", "diagnostics": ["demo/eval.yml:4:3: warning: unknown key TRAIN.FOO (ignored)"]},
            {"path": home.join("cfg/broken.yml"), "rel": "broken.yml", "modified": NOW, "ok": false, "job": null, "diagnostics": ["broken.yml:2:7: error: expected a number for TRAIN.BATCH_SIZE, found \"big\""]},
        ],
    }))
    .unwrap();
    app.handle(Event::ConfigIndex(cfg));
    Fixture { _dir: dir, app }
}

fn render(app: &App, w: u16, h: u16) -> String {
    let mut term = Terminal::new(TestBackend::new(w, h)).unwrap();
    term.draw(|f| views::draw(f, app)).unwrap();
    format!("{}", term.backend())
}

fn key(app: &mut App, code: KeyCode) -> Vec<Cmd> {
    app.handle(Event::Key(KeyEvent::new(code, KeyModifiers::NONE)))
}

fn chars(app: &mut App, s: &str) -> Vec<Cmd> {
    s.chars().flat_map(|c| key(app, KeyCode::Char(c))).collect()
}

#[test]
fn runs_view() {
    let f = fixture();
    insta::assert_snapshot!("runs_wide", render(&f.app, 120, 20));
    insta::assert_snapshot!("runs_narrow", render(&f.app, 60, 16));
}

#[test]
fn tiny_terminal() {
    let mut f = fixture();
    insta::assert_snapshot!("runs_tiny", render(&f.app, 40, 12));
    for v in [View::Configs, View::Curves, View::Logs, View::Samples] {
        f.app.view = v;
        render(&f.app, 40, 12);
    }
}

#[test]
fn every_view_at_odd_sizes_never_panics() {
    let mut f = fixture();
    f.app.runs.marked.extend([1, 2]);
    f.app.logs.task = Some(1);
    f.app.reload_log();
    for v in [View::Runs, View::Configs, View::Curves, View::Logs, View::Samples] {
        f.app.view = v;
        for (w, h) in [(1, 1), (5, 3), (10, 4), (20, 6), (40, 12), (41, 13), (80, 24), (200, 60), (300, 8)] {
            render(&f.app, w, h);
            f.app.popups.push(Popup::Help);
            render(&f.app, w, h);
            f.app.popups.clear();
        }
    }
}

#[test]
fn logs_view_follow_and_search() {
    let mut f = fixture();
    key(&mut f.app, KeyCode::Char('l'));
    assert_eq!(f.app.view, View::Logs);
    assert_eq!(f.app.logs.task, Some(1));
    insta::assert_snapshot!("logs_follow", render(&f.app, 80, 12));
    chars(&mut f.app, "/");
    chars(&mut f.app, "step 42/");
    key(&mut f.app, KeyCode::Enter);
    assert!(!f.app.logs.follow, "a search match leaves follow mode");
    assert_eq!(f.app.logs.current, Some(41));
    insta::assert_snapshot!("logs_search", render(&f.app, 80, 12));
    chars(&mut f.app, "f");
    assert!(f.app.logs.follow);
}

#[test]
fn help_overlay_lists_the_views_keys() {
    let mut f = fixture();
    chars(&mut f.app, "?");
    let text = render(&f.app, 100, 40);
    assert!(text.contains("kill the task"), "{text}");
    insta::assert_snapshot!("help_runs", text);
    chars(&mut f.app, "x"); // any key closes it
    assert!(f.app.popups.is_empty());
    f.app.view = View::Curves;
    chars(&mut f.app, "?");
    let text = render(&f.app, 100, 40);
    assert!(text.contains("log-y"), "{text}");
    assert!(!text.contains("kill the task"), "{text}");
}

#[test]
fn configs_view() {
    let mut f = fixture();
    chars(&mut f.app, "2");
    assert_eq!(f.app.view, View::Configs);
    insta::assert_snapshot!("configs", render(&f.app, 110, 14));
    // The broken config is first (sorted): queueing it is refused with its error.
    let cmds = key(&mut f.app, KeyCode::Enter);
    assert!(cmds.is_empty());
    assert!(f.app.message.contains("does not validate"), "{}", f.app.message);
}

#[test]
fn configs_queue_and_pipeline() {
    let mut f = fixture();
    chars(&mut f.app, "2");
    // demo/eval.yml, demo/pretrain.yml, demo/train.yml after broken.yml.
    key(&mut f.app, KeyCode::Down);
    assert_eq!(f.app.selected_config().unwrap().rel, "demo/eval.yml");
    key(&mut f.app, KeyCode::Enter);
    for _ in 0.."default".len() {
        key(&mut f.app, KeyCode::Backspace);
    }
    chars(&mut f.app, "gpu 1 any:2 -- --foo 3");
    let cmds = key(&mut f.app, KeyCode::Enter);
    let [Cmd::Add(t)] = cmds.as_slice() else { panic!("{cmds:?}") };
    assert_eq!(t.group.as_deref(), Some("gpu"));
    assert_eq!(t.after, vec![1]);
    assert_eq!(t.after_any, vec![2]);
    assert_eq!(t.args, vec!["--foo", "3"]);
    assert!(t.config.as_ref().unwrap().ends_with("cfg/demo/eval.yml"));
    // A bad dependency is refused with a message.
    key(&mut f.app, KeyCode::Enter);
    chars(&mut f.app, " x");
    assert!(key(&mut f.app, KeyCode::Enter).is_empty());
    assert!(f.app.message.contains("not a task id"), "{}", f.app.message);

    // Pipeline: mark eval, pretrain, train (space moves down), then P and confirm.
    chars(&mut f.app, "P");
    assert!(f.app.message.contains("mark a pretrain"), "{}", f.app.message);
    chars(&mut f.app, "   ");
    assert_eq!(f.app.configs.marked.len(), 3);
    assert!(chars(&mut f.app, "P").is_empty());
    let cmds = chars(&mut f.app, "y");
    let [Cmd::Pipeline(p)] = cmds.as_slice() else { panic!("{cmds:?}") };
    assert!(p.pretrain.ends_with("demo/pretrain.yml"));
    assert!(p.train.ends_with("demo/train.yml"));
    assert!(p.eval.as_ref().unwrap().ends_with("demo/eval.yml"));
}

#[test]
fn runs_keys_send_commands() {
    let mut f = fixture();
    // Kill asks first; n cancels, y sends.
    assert!(chars(&mut f.app, "x").is_empty());
    assert!(chars(&mut f.app, "n").is_empty());
    assert!(chars(&mut f.app, "x").is_empty());
    assert!(matches!(chars(&mut f.app, "y").as_slice(), [Cmd::Kill(1)]));
    assert!(matches!(chars(&mut f.app, "p").as_slice(), [Cmd::Pause(1)]));
    assert!(matches!(chars(&mut f.app, "u").as_slice(), [Cmd::Resume(1)]));
    key(&mut f.app, KeyCode::Down);
    // Task 2 is finished: kill is refused locally; resume-run, restart, remove go out.
    assert!(chars(&mut f.app, "x").is_empty());
    assert!(f.app.message.contains("not running"));
    assert!(matches!(chars(&mut f.app, "c").as_slice(), [Cmd::ResumeRun(2)]));
    chars(&mut f.app, "R");
    assert!(matches!(chars(&mut f.app, "y").as_slice(), [Cmd::Restart(2)]));
    chars(&mut f.app, "d");
    assert!(matches!(key(&mut f.app, KeyCode::Enter).as_slice(), [Cmd::Remove(2)]));
}

#[test]
fn runs_filter_and_sort() {
    let mut f = fixture();
    chars(&mut f.app, "/eval");
    key(&mut f.app, KeyCode::Enter);
    let ids: Vec<u64> = f.app.visible_tasks().iter().map(|t| t.task.id).collect();
    assert_eq!(ids, vec![3]);
    chars(&mut f.app, "/");
    key(&mut f.app, KeyCode::Esc);
    assert_eq!(f.app.visible_tasks().len(), 3);
    chars(&mut f.app, "s"); // by state: running, queued, finished
    let ids: Vec<u64> = f.app.visible_tasks().iter().map(|t| t.task.id).collect();
    assert_eq!(ids, vec![1, 3, 2]);
    chars(&mut f.app, "ss"); // by progress, most done first
    let ids: Vec<u64> = f.app.visible_tasks().iter().map(|t| t.task.id).collect();
    assert_eq!(ids, vec![2, 1, 3]);
}

#[test]
fn curves_view() {
    let mut f = fixture();
    chars(&mut f.app, "  "); // mark runs 1 and 2
    assert_eq!(f.app.shown_runs().len(), 2);
    key(&mut f.app, KeyCode::Enter);
    assert_eq!(f.app.view, View::Curves);
    assert_eq!(f.app.curve_tags(), vec!["loss/d_total", "loss/g_total", "val/r_precision"]);
    insta::assert_snapshot!("curves_ema", render(&f.app, 120, 30));
    // Cursor reads exact values of both runs at the nearest step.
    chars(&mut f.app, "c");
    let text = render(&f.app, 120, 30);
    let v1 = clipgan::jobs::fake_run::curves(100, 200, 1)[1];
    assert!(text.contains(&format!("1 @100={}", clipgan::console::views::num(v1))), "{text}");
    insta::assert_snapshot!("curves_cursor", text);
    // Log-y on the focused chart, smoothing off, filter, zoom.
    chars(&mut f.app, "ys");
    chars(&mut f.app, "s");
    assert!(f.app.curves.log_y.contains("loss/d_total"));
    chars(&mut f.app, "z");
    assert_eq!(f.app.curves.zoom, (0.25, 0.75));
    chars(&mut f.app, "0/val");
    key(&mut f.app, KeyCode::Enter);
    assert_eq!(f.app.curve_tags(), vec!["val/r_precision"]);
    insta::assert_snapshot!("curves_filtered_raw", render(&f.app, 80, 20));
}

#[test]
fn curves_live_and_corrupt_lines() {
    let mut f = fixture();
    let run1 = f.app.tasks()[0].task.run_dir.clone();
    let before = f.app.store.get(&run1).unwrap().tags["loss/g_total"].len();
    let mut m = std::fs::OpenOptions::new().append(true).open(run1.join("metrics.jsonl")).unwrap();
    writeln!(m, "{{not json").unwrap();
    writeln!(m, "{}", metric(121, "loss/g_total", json!("NaN"))).unwrap();
    writeln!(m, "{}", metric(122, "loss/g_total", json!(1.5))).unwrap();
    write!(m, "{{\"step\": 123, \"wall\"").unwrap(); // torn last line: held back
    drop(m);
    f.app.handle(Event::Tick(NOW + 1.0));
    let r = f.app.store.get(&run1).unwrap();
    assert_eq!(r.tags["loss/g_total"].len(), before + 2);
    assert_eq!(r.corrupt(), 1);
    let text = render(&f.app, 120, 20);
    assert!(text.contains("1 corrupt metric lines skipped"), "{text}");
    f.app.view = View::Curves;
    render(&f.app, 120, 30);
    render(&f.app, 40, 12);
}

#[test]
fn user_key_and_theme_files() {
    let dir = tempfile::tempdir().unwrap();
    std::fs::write(dir.path().join("keys.yml"), "runs:\n  K: kill\n  x: none\nglobal:\n  ctrl-q: quit\n").unwrap();
    let km = Keymap::load(dir.path()).unwrap();
    let k = |c: char, m: KeyModifiers| KeyEvent::new(KeyCode::Char(c), m);
    use clipgan::console::keys::Action;
    assert_eq!(km.lookup("runs", &k('K', KeyModifiers::SHIFT)), Some(Action::Kill));
    assert_eq!(km.lookup("runs", &k('x', KeyModifiers::NONE)), None);
    assert_eq!(km.lookup("curves", &k('x', KeyModifiers::NONE)), Some(Action::XAxis));
    assert_eq!(km.lookup("logs", &k('q', KeyModifiers::CONTROL)), Some(Action::Quit));
    // The defaults file round-trips to the defaults.
    std::fs::write(dir.path().join("keys.yml"), Keymap::defaults_yaml()).unwrap();
    let km = Keymap::load(dir.path()).unwrap();
    for ctx in clipgan::console::keys::CONTEXTS {
        assert_eq!(km.bindings(ctx), Keymap::default().bindings(ctx), "{ctx}");
    }
    // Errors name the file and position.
    std::fs::write(dir.path().join("keys.yml"), "runs:\n  x: explode\n").unwrap();
    let e = format!("{:#}", Keymap::load(dir.path()).unwrap_err());
    assert!(e.contains("keys.yml:2:") && e.contains("explode"), "{e}");
    std::fs::write(dir.path().join("keys.yml"), "views:\n  x: kill\n").unwrap();
    let e = format!("{:#}", Keymap::load(dir.path()).unwrap_err());
    assert!(e.contains("unknown context"), "{e}");

    std::fs::write(dir.path().join("theme.yml"), Theme::defaults_yaml()).unwrap();
    assert_eq!(Theme::load(dir.path()).unwrap(), Theme::default());
    std::fs::write(dir.path().join("theme.yml"), "accent: '#ff0000'\nruns: [red, 33]\n").unwrap();
    let t = Theme::load(dir.path()).unwrap();
    assert_eq!(t.accent, ratatui::style::Color::Rgb(255, 0, 0));
    assert_eq!(t.runs, vec![ratatui::style::Color::Red, ratatui::style::Color::Indexed(33)]);
    std::fs::write(dir.path().join("theme.yml"), "accent: notacolour\n").unwrap();
    let e = format!("{:#}", Theme::load(dir.path()).unwrap_err());
    assert!(e.contains("theme.yml") && e.contains("notacolour"), "{e}");
}

#[test]
fn compare_baseline_group_mean_and_config_diff() {
    let mut f = fixture();
    let dirs: Vec<_> = f.app.tasks().iter().map(|t| t.task.run_dir.clone()).collect();
    std::fs::write(dirs[0].join("config.yml"), "CONFIG_NAME: a\nTRAIN:\n  BATCH_SIZE: 16\n  LR: [0.0002, 0.0002]\nSEED: 1\n").unwrap();
    std::fs::write(dirs[1].join("config.yml"), "CONFIG_NAME: a\nTRAIN:\n  BATCH_SIZE: 32\n  LR: [0.0002, 0.0004]\nGPU_ID: 0\n").unwrap();
    // Diff needs two runs.
    chars(&mut f.app, "D");
    assert!(f.app.message.contains("mark two runs"), "{}", f.app.message);
    chars(&mut f.app, "  D");
    let Some(Popup::Text { lines, .. }) = f.app.popups.last() else { panic!("no diff popup") };
    let keys: Vec<&str> = lines.iter().map(|d| d.key.as_str()).collect();
    assert_eq!(keys, vec!["GPU_ID", "SEED", "TRAIN.BATCH_SIZE", "TRAIN.LR.1"]);
    assert_eq!(lines[0].a, None);
    assert_eq!(lines[2].a.as_deref(), Some("16"));
    assert_eq!(lines[2].b.as_deref(), Some("32"));
    insta::assert_snapshot!("config_diff", render(&f.app, 90, 14));
    chars(&mut f.app, "q"); // closes the popup, does not quit
    assert!(!f.app.quit && f.app.popups.is_empty());

    // Baseline: mark run 1 only, pin run 2: the baseline is shown with the marked runs.
    f.app.runs.marked.clear();
    f.app.runs.marked.insert(1);
    f.app.runs.selected = 1;
    chars(&mut f.app, "b");
    assert_eq!(f.app.runs.baseline, Some(2));
    let shown: Vec<u64> = f.app.shown_runs().iter().map(|t| t.task.id).collect();
    assert_eq!(shown, vec![1, 2]);
    f.app.view = View::Curves;
    let text = render(&f.app, 120, 30);
    assert!(text.contains("fake-2 (baseline)"), "{text}");

    // Group mean: runs 1 and 2 with one config hash become a mean with a band.
    let mut snap = f.app.snapshot.clone().unwrap();
    for t in snap.tasks.iter_mut().take(2) {
        t.task.config_hash = Some("h1".into());
    }
    f.app.handle(Event::Snapshot(Box::new(snap)));
    assert!(!f.app.curves.group_mean, "off by default");
    chars(&mut f.app, "m");
    assert!(f.app.curves.group_mean);
    let groups = f.app.config_groups();
    assert_eq!(groups.len(), 1);
    let (x0, x1) = f.app.visible_range("loss/g_total").unwrap();
    let [mean, lo, hi] = f.app.group_band("loss/g_total", &groups[0], x0, x1, 10);
    assert!(!mean.is_empty());
    for ((m, l), h) in mean.iter().zip(&lo).zip(&hi) {
        assert!(l.1 <= m.1 && m.1 <= h.1, "{l:?} {m:?} {h:?}");
    }
    // Past run 1's last step (120) only run 2 has points: the band closes.
    let last = mean.len() - 1;
    assert_eq!(lo[last].1, hi[last].1);
    insta::assert_snapshot!("curves_group_mean", render(&f.app, 120, 30));
}

/// The block-summary decimation gives exactly `plot::series::m4_decimate`'s result.
#[test]
fn m4_with_block_summaries_matches_m4() {
    use clipgan::console::store::{m4_sorted, Blocks};
    let mut rnd = crate::xorshift(12345);
    for case in 0..200 {
        let n = (rnd() * 3000.0) as usize;
        let mut xs = Vec::with_capacity(n);
        let mut x = 0.0;
        for _ in 0..n {
            // Repeated x now and then (a resumed run), spikes, NaN/Inf bursts, ties in y.
            if rnd() > 0.1 {
                x += (rnd() * 3.0).floor();
            }
            xs.push(x);
        }
        let ys: Vec<f64> = (0..n)
            .map(|i| match rnd() {
                r if r < 0.02 => f64::NAN,
                r if r < 0.03 => f64::INFINITY,
                r if r < 0.05 => 100.0,
                r if r < 0.3 => 1.0,
                _ => (i as f64 * 0.01).sin() + rnd(),
            })
            .collect();
        let blocks = Blocks::of(&ys);
        let hi = x.max(1.0);
        let (a, b) = (rnd() * hi * 1.2 - 0.1 * hi, rnd() * hi * 1.2);
        let (x0, x1) = if case % 3 == 0 { (-1.0, hi + 1.0) } else { (a.min(b), a.max(b)) };
        let columns = 1 + (rnd() * 300.0) as usize;
        let want = clipgan::plot::series::m4_decimate(&xs, &ys, x0, x1, columns, true);
        let got = m4_sorted(&xs, &ys, &blocks, x0, x1, columns);
        let bits = |v: &[(f64, f64)]| v.iter().map(|(x, y)| (x.to_bits(), y.to_bits())).collect::<Vec<_>>();
        assert_eq!(bits(&got.points), bits(&want.points), "case {case}: n {n} range {x0}..{x1} columns {columns}");
        assert_eq!(got.non_finite_x, want.non_finite_x, "case {case}");
    }
}

/// The runs view's resources panel with fixed data, and which processes it watches.
#[test]
fn runs_view_resources_panel() {
    use clipgan::console::resources::{GpuUsage, ProcUsage, ResourceSnapshot};
    let mut f = fixture();
    // Only tasks whose worker is known and active are watched.
    assert!(f.app.worker_pids().is_empty());
    let snap = f.app.snapshot.as_mut().unwrap();
    let proc_id = |pid| serde_json::from_value(json!({"pid": pid, "start": 1})).unwrap();
    for t in snap.tasks.iter_mut() {
        t.task.procs = Some(clipgan::supervisor::state::ProcInfo {
            attempt: 1,
            shim: proc_id(900 + t.task.id as u32),
            worker: Some(proc_id(700 + t.task.id as u32)),
        });
    }
    let pids = f.app.worker_pids();
    assert_eq!(pids.len(), 1, "{pids:?}");
    assert_eq!(pids[0].0, 701);
    assert!(pids[0].1.starts_with("1 "), "{pids:?}");
    f.app.handle(Event::Resources(Box::new(ResourceSnapshot {
        procs: vec![ProcUsage {
            pid: 701,
            label: pids[0].1.clone(),
            cpu_percent: Some(187.0),
            rss_bytes: Some(3 << 30),
            gpu_mem: vec![(0, 5 << 30)],
            gpu_util: vec![(0, 61)],
        }],
        gpus: Ok(vec![GpuUsage { index: 0, name: "NVIDIA H200".into(), util_percent: Some(64), mem_used: 6 << 30, mem_total: 141 << 30 }]),
    })));
    insta::assert_snapshot!("runs_resources_wide", render(&f.app, 120, 24));
    insta::assert_snapshot!("runs_resources_narrow", render(&f.app, 80, 30));
    // Without a GPU the panel says so; the rest is unchanged.
    f.app.handle(Event::Resources(Box::new(ResourceSnapshot {
        procs: vec![],
        gpus: Err("no NVIDIA GPU / driver: libnvidia-ml.so.1: cannot open shared object file".into()),
    })));
    let s = render(&f.app, 120, 24);
    assert!(s.contains("no NVIDIA GPU / driver") && s.contains("no running workers"), "{s}");
    // In a few words; the whole reason is in the help overlay.
    assert!(s.contains("(details: ?)") && !s.contains("libnvidia-ml"), "{s}");
    f.app.popups.push(clipgan::console::app::Popup::Help);
    let s = render(&f.app, 120, 40);
    assert!(s.contains("GPUs: no NVIDIA GPU / driver: libnvidia-ml.so.1"), "{s}");
    f.app.popups.clear();
}

#[test]
fn a_tall_runs_view_shows_the_selected_runs_loss() {
    let f = fixture();
    let s = render(&f.app, 120, 44);
    // The details grow into the rows the table does not need, with the sparkline.
    assert!(s.contains("loss/d_total 1.5615 → 0.7214 (120 points)"), "{s}");
    assert!(s.chars().any(|c| ('▁'..='█').contains(&c)), "no sparkline: {s}");
    insta::assert_snapshot!("runs_tall", s);
    // Short terminals are as before: no sparkline.
    assert!(!render(&f.app, 120, 24).contains(" → "));
    assert_eq!(clipgan::console::views::runs::spark_data(&[3.0, 2.0, 1.0, 1.0], 2), [100, 1]);
    assert_eq!(clipgan::console::views::runs::spark_data(&[5.0; 3], 10), [50, 50, 50]);
    assert!(clipgan::console::views::runs::spark_data(&[], 10).is_empty());
}
