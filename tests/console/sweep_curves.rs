//! A sweep in the curves view as one experiment: coloured by the value of a chosen key
//! (legend value -> colour), seeds of one combination as a mean with a min-max band, the
//! sweep table sorted by a metric, final evaluation results (`results.json`) as metrics.
use clipgan::console::app::{App, View};
use clipgan::console::event::Event;
use clipgan::console::keys::Keymap;
use clipgan::console::theme::Theme;
use clipgan::console::views;
use clipgan::supervisor::protocol::Snapshot;
use ratatui::backend::TestBackend;
use ratatui::crossterm::event::{KeyCode, KeyEvent, KeyModifiers};
use ratatui::Terminal;
use serde_json::json;
use std::io::Write;
use std::path::Path;

const NOW: f64 = 1_800_000_000.0;
const LAMBDA: &str = "TRAIN.SMOOTH.LAMBDA";
const GAMMA: &str = "TRAIN.SMOOTH.GAMMA1";

/// A member's run folder: a loss that depends on lambda, gamma and the seed, R-precision
/// every 10 steps, and an evaluation's `results.json` with FID.
fn write_member(dir: &Path, lambda: f64, gamma: f64, seed: u64) {
    std::fs::create_dir_all(dir.join("logs")).unwrap();
    let mut m = std::fs::File::create(dir.join("metrics.jsonl")).unwrap();
    for s in 1..=60u64 {
        let v = clipgan::jobs::fake_run::curves(s, 60, seed);
        let loss = v[0] * (1.0 + lambda) + 0.1 * gamma;
        writeln!(m, "{}", json!({"step": s, "epoch": 0, "wall": NOW - 600.0 + s as f64, "tag": "loss/g_total", "value": loss})).unwrap();
        if s % 10 == 0 {
            let r = v[4] * (1.0 - 0.2 * lambda) + 0.01 * gamma;
            writeln!(m, "{}", json!({"step": s, "epoch": 0, "wall": NOW - 600.0 + s as f64, "tag": "val/r_precision", "value": r}))
                .unwrap();
        }
    }
    let fid = 30.0 - 10.0 * lambda + gamma + seed as f64 * 0.1;
    let results = json!({"job": "eval", "results": [{"step": 60, "fid": {"value": fid, "dims": 2048}}]});
    std::fs::write(dir.join("results.json"), results.to_string()).unwrap();
}

struct Fixture {
    _dir: tempfile::TempDir,
    app: App,
}

/// 8 members: lambda 0.1, 1 x gamma 4, 5 x seeds 100, 101 (as `clipgan sweep` orders
/// them), all finished.
fn fixture() -> Fixture {
    let dir = tempfile::tempdir().unwrap();
    let home = dir.path();
    let mut tasks = Vec::new();
    let mut id = 0;
    for lambda in [1.0, 0.1] {
        for gamma in [4.0, 5.0] {
            for seed in [100, 101] {
                id += 1;
                let rd = home.join(format!("runs/run{id}"));
                write_member(&rd, lambda, gamma, seed);
                tasks.push(json!({
                    "id": id, "job": "fake-run", "group": "default", "state": "finished",
                    "label": format!("LAMBDA={lambda} GAMMA1={gamma} seed={seed}"), "sweep": "sweep-1",
                    "overrides": [format!("{LAMBDA}={lambda}"), format!("{GAMMA}={gamma}"), format!("CLIPGAN.SEED={seed}")],
                    "run_id": format!("20260101-0000{id:02}-fake"), "run_dir": rd,
                    "queued_at": NOW - 900.0, "started_at": NOW - 600.0, "ended_at": NOW - 60.0,
                    "status": {"state": "finished", "step": 60, "total_steps": 60, "message": "done"},
                }));
            }
        }
    }
    let snap: Snapshot = serde_json::from_value(json!({
        "rev": 1, "daemon_pid": 4242, "home": home,
        "settings": {"stop_timeout_s": 60.0, "log_cap_bytes": 1024},
        "groups": [{"name": "default", "slots": 2, "running": 0, "queued": 0}],
        "tasks": tasks,
        "sweeps": {"sweep-1": {"name": "smooth", "config": "/nonexistent/t.yml", "keys": [LAMBDA, GAMMA, "CLIPGAN.SEED"], "created": NOW - 900.0}},
        "save_error": null,
    }))
    .unwrap();
    let mut app = App::new(home, Keymap::default(), Theme::default());
    app.now = NOW;
    app.handle(Event::Snapshot(Box::new(snap)));
    Fixture { _dir: dir, app }
}

fn press(app: &mut App, c: char) {
    app.handle(Event::Key(KeyEvent::new(KeyCode::Char(c), KeyModifiers::NONE)));
}

fn render(app: &App, w: u16, h: u16) -> String {
    let mut term = Terminal::new(TestBackend::new(w, h)).unwrap();
    term.draw(|f| views::draw(f, app)).unwrap();
    format!("{}", term.backend())
}

/// The colours of the cells that show a text, as drawn.
fn colour_of(app: &App, w: u16, h: u16, text: &str) -> ratatui::style::Color {
    let mut term = Terminal::new(TestBackend::new(w, h)).unwrap();
    term.draw(|f| views::draw(f, app)).unwrap();
    let buf = term.backend().buffer().clone();
    for y in 0..h {
        let line: String = (0..w).map(|x| buf[(x, y)].symbol().to_string()).collect();
        // The dot before the value in the legend.
        if let Some(i) = line.find(&format!("● {text}")) {
            return buf[(line[..i].chars().count() as u16, y)].fg;
        }
    }
    panic!("{text:?} not drawn");
}

#[test]
fn a_sweep_is_one_experiment_coloured_by_value_with_seed_bands() {
    let mut f = fixture();
    // S on any member opens its whole sweep.
    press(&mut f.app, 'j');
    press(&mut f.app, 'S');
    assert_eq!(f.app.view, View::Curves);
    assert_eq!(f.app.shown_sweep(), Some("sweep-1"));
    assert_eq!(f.app.shown_runs().len(), 8);
    assert!(f.app.curves.group_mean, "seed bands on");
    // Coloured by lambda: values in numeric order, two colours, a band per combination.
    let c = f.app.colouring().unwrap();
    assert_eq!(c.key, LAMBDA);
    assert_eq!(c.values.iter().map(|v| v.0.as_str()).collect::<Vec<_>>(), vec!["0.1", "1"]);
    assert_eq!(c.by_id[&1], c.by_id[&3], "lambda 1, gamma 4 and 5: one colour");
    assert_ne!(c.by_id[&1], c.by_id[&5]);
    let groups = f.app.band_groups();
    assert_eq!(
        groups.iter().map(|g| g.1.iter().map(|t| t.task.id).collect::<Vec<_>>()).collect::<Vec<_>>(),
        vec![vec![1, 2], vec![3, 4], vec![5, 6], vec![7, 8]]
    );
    assert_eq!(groups[0].0, c.by_id[&1], "a band in its value's colour");
    let text = render(&f.app, 120, 30);
    assert!(text.contains("sweep-1 smooth (8 runs)") && text.contains("seed bands") && text.contains("TRAIN.SMOOTH.LAMBDA:"), "{text}");
    insta::assert_snapshot!("curves_sweep_by_lambda", text);
    // esc goes back to the marked (else selected) runs.
    f.app.handle(Event::Key(KeyEvent::new(KeyCode::Esc, KeyModifiers::NONE)));
    assert_eq!(f.app.shown_sweep(), None);
    assert_eq!(f.app.shown_runs().len(), 1);
}

#[test]
fn changing_the_colouring_key_changes_the_colours() {
    let mut f = fixture();
    f.app.open_sweep_curves("sweep-1".into());
    let by_lambda = f.app.colouring().unwrap();
    let legend_lambda = colour_of(&f.app, 160, 30, "0.1  ");
    press(&mut f.app, 'v');
    let by_gamma = f.app.colouring().unwrap();
    assert_eq!(by_gamma.key, GAMMA);
    assert_eq!(by_gamma.values.iter().map(|v| v.0.as_str()).collect::<Vec<_>>(), vec!["4", "5"]);
    // Runs 1 and 3 (lambda 1; gamma 4 and 5) share a colour by lambda, not by gamma.
    assert_eq!(by_lambda.by_id[&1], by_lambda.by_id[&3]);
    assert_ne!(by_gamma.by_id[&1], by_gamma.by_id[&3]);
    assert_eq!(by_gamma.by_id[&1], by_gamma.by_id[&5], "gamma 4 with either lambda");
    let text = render(&f.app, 160, 30);
    assert!(text.contains("TRAIN.SMOOTH.GAMMA1:") && !text.contains("TRAIN.SMOOTH.LAMBDA:"), "{text}");
    assert_eq!(colour_of(&f.app, 160, 30, "4  "), by_gamma.values[0].1, "the legend draws the value's colour");
    assert_eq!(legend_lambda, by_lambda.values[0].1);
    // The bands follow: a band's colour is its combination's value colour.
    assert_eq!(f.app.band_groups()[1].0, by_gamma.by_id[&3]);
    // Two keys (the seed aside) to cycle through: v again is lambda.
    press(&mut f.app, 'v');
    assert_eq!(f.app.colouring().unwrap().key, LAMBDA);
}

#[test]
fn the_sweep_table_aggregates_seeds_and_sorts_by_a_metric() {
    let mut f = fixture();
    f.app.open_sweep_curves("sweep-1".into());
    press(&mut f.app, 't');
    let table = f.app.sweep_table().unwrap();
    let headers = table.headers();
    assert_eq!(headers[..4], ["LAMBDA", "GAMMA1", "n", "state"]);
    // The results.json's FID counts as a metric; best of R-precision is its max.
    let fid = headers.iter().position(|h| h == "fid best↓").expect("results.json's fid");
    assert!(headers.contains(&"r_precision best↑".to_string()), "{headers:?}");
    // Sorted by the first column (lambda) at first.
    assert_eq!(table.rows.iter().map(|r| r.values.join(" ")).collect::<Vec<_>>(), vec!["0.1 4", "0.1 5", "1 4", "1 5"]);
    let row = &table.rows[2];
    assert_eq!(row.ids, vec![1, 2]);
    let (fin, best) = row.metrics[table.tags.iter().position(|t| t == "eval/fid").unwrap()];
    // lambda 1, gamma 4: fid 24 + seed / 10, over seeds 100 and 101.
    let (fin, best) = (fin.unwrap(), best.unwrap());
    assert!((fin.mean - 34.05).abs() < 1e-9 && (fin.std - 0.05).abs() < 1e-9 && fin.n == 2, "{fin:?}");
    assert_eq!(best.mean, fin.mean, "a result is both final and best");
    // o cycles the sort column to fid best; ascending: the lowest FID first.
    for _ in 0..fid {
        press(&mut f.app, 'o');
    }
    let sorted = f.app.sweep_table().unwrap();
    let fids: Vec<f64> =
        sorted.rows.iter().map(|r| r.metrics[sorted.tags.iter().position(|t| t == "eval/fid").unwrap()].1.unwrap().mean).collect();
    assert!(fids.windows(2).all(|w| w[0] <= w[1]), "{fids:?}");
    assert_eq!(sorted.rows[0].values, vec!["1", "4"]);
    let text = render(&f.app, 160, 34);
    assert!(text.contains("sorted by fid best↓▲"), "{text}");
    insta::assert_snapshot!("sweep_table_by_fid", text);
    // O reverses.
    press(&mut f.app, 'O');
    let rev = f.app.sweep_table().unwrap();
    assert_eq!(rev.rows[0].values, vec!["0.1", "5"]);
}

/// Column means from the block sums equal a pass over every point.
#[test]
fn column_means_from_block_sums_match_a_full_pass() {
    use clipgan::console::store::{column_means, Blocks, ColumnSpans};
    use clipgan::plot::series::column_of;
    let mut rnd = crate::xorshift(987);
    for case in 0..100 {
        let n = (rnd() * 3000.0) as usize;
        let mut x = 0.0;
        let xs: Vec<f64> = (0..n)
            .map(|_| {
                x += (rnd() * 3.0).floor();
                x
            })
            .collect();
        let ys: Vec<f64> = (0..n).map(|i| if rnd() < 0.03 { f64::NAN } else { (i as f64 * 0.01).sin() + rnd() }).collect();
        let blocks = Blocks::of(&ys);
        let hi = x.max(1.0);
        let (a, b) = (rnd() * hi, rnd() * hi);
        let (x0, x1) = if case % 3 == 0 { (0.0, hi) } else { (a.min(b), a.max(b)) };
        let columns = 1 + (rnd() * 200.0) as usize;
        let got = column_means(&xs, &ys, &blocks, &ColumnSpans::of(&xs, x0, x1, columns), x0, x1, columns);
        let (mut sum, mut cnt) = (vec![0.0; columns], vec![0u32; columns]);
        for (x, y) in xs.iter().zip(&ys) {
            if *x >= x0 && *x <= x1 && y.is_finite() {
                let c = column_of(*x, x0, x1, columns);
                sum[c] += y;
                cnt[c] += 1;
            }
        }
        let want: Vec<(usize, f64)> = (0..columns).filter(|&c| cnt[c] > 0).map(|c| (c, sum[c] / cnt[c] as f64)).collect();
        assert_eq!(got.len(), want.len(), "case {case}");
        for (g, w) in got.iter().zip(&want) {
            assert!(g.0 == w.0 && (g.1 - w.1).abs() < 1e-9, "case {case}: {g:?} vs {w:?}");
        }
    }
}

/// Series share their column spans by `steps_key`: equal for the same steps (also after
/// a resume rewound one), different when a step differs.
#[test]
fn steps_key_is_equal_exactly_for_equal_steps() {
    use clipgan::console::store::Series;
    use clipgan::rundir::MetricEvent;
    let series = |steps: &[u64]| {
        let mut s = Series::default();
        for &step in steps {
            s.push(&MetricEvent { step, epoch: 0, wall: 1.0 + step as f64, tag: "loss".into(), value: 0.5 });
        }
        s
    };
    let a = series(&[0, 10, 20, 30]);
    assert_eq!(a.steps_key(), series(&[0, 10, 20, 30]).steps_key());
    assert_ne!(a.steps_key(), series(&[0, 10, 21, 30]).steps_key());
    assert_ne!(a.steps_key(), series(&[0, 10, 20]).steps_key());
    assert_ne!(series(&[0, 10]).steps_key(), series(&[1, 9]).steps_key());
    // A resume repeating steps 20.. replaces them: the key is that of the kept steps.
    assert_eq!(series(&[0, 10, 20, 30, 20, 30]).steps_key(), a.steps_key());
}
