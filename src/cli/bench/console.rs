//! `clipgan bench console`: the curves view with R runs x N points each (default 8 x
//! 1,000,000): time to load one N-line metrics.jsonl, memory per point, and the frame
//! time of the curves view (data loaded, one thread) both when the view changed (the
//! decimation runs: "cold", as after a zoom, pan or new data) and when it did not
//! (decimated curves cached: "warm", as after a cursor move or a tick).
//!
//! `--sweep N`: N runs as the members of one sweep (N / `--seeds` values of
//! `TRAIN.SMOOTH.LAMBDA` x `--seeds` seeds) shown as one experiment: coloured by the
//! value, each value's seeds drawn as their mean with a min-max band.
use super::timing::median;
use crate::console::app::{App, View};
use crate::console::event::Event;
use crate::console::keys::Keymap;
use crate::console::theme::Theme;
use anyhow::{Context, Result};
use clap::Args;
use ratatui::backend::TestBackend;
use ratatui::Terminal;
use std::io::Write;
use std::process::ExitCode;
use std::time::Instant;

#[derive(Args, Debug)]
pub struct ConsoleBench {
    #[arg(long, default_value_t = 8)]
    runs: usize,
    /// Points (metrics.jsonl lines) per run.
    #[arg(long, default_value_t = 1_000_000)]
    points: u64,
    /// Frames to time (median reported).
    #[arg(long, default_value_t = 30)]
    frames: usize,
    /// Resumes in the file: each repeats the 1,000 steps before it with other values (as
    /// a run killed after its last checkpoint and resumed), which the store replaces.
    #[arg(long, default_value_t = 0)]
    rewinds: u64,
    /// Terminal size.
    #[arg(long, default_value_t = 200)]
    width: u16,
    #[arg(long, default_value_t = 50)]
    height: u16,
    /// Instead of `--runs`: this many runs as one sweep (values x seeds), shown as one
    /// experiment, coloured by value, seed bands on.
    #[arg(long, default_value_t = 0)]
    sweep: usize,
    /// Seeds per value of `--sweep` (its member count must be a multiple).
    #[arg(long, default_value_t = 4)]
    seeds: usize,
}

/// Write `points` steps of one tag (a noisy decaying loss with a spike every 100,000
/// steps, the noise drawn from `seed`) with `rewinds` resumes to `file`.
fn write_metrics(file: &std::path::Path, points: u64, rewinds: u64, seed: u64) -> Result<()> {
    let mut w = std::io::BufWriter::new(std::fs::File::create(file).with_context(|| format!("cannot write {}", file.display()))?);
    let value = |s: u64| {
        let noise =
            ((s.wrapping_add(seed.wrapping_mul(0x5851_F42D)).wrapping_mul(0x9E37_79B9_7F4A_7C15) >> 40) as f64 / (1u64 << 24) as f64) - 0.5;
        2.0 * (-(s as f64) / (points as f64 / 4.0)).exp()
            + 0.5
            + 0.1 * noise
            + 0.02 * seed as f64
            + if s % 100_000 == 7 { 5.0 } else { 0.0 }
    };
    let rewind_at: Vec<u64> = (1..=rewinds).map(|k| points * k / (rewinds + 1)).collect();
    for s in 0..points {
        if rewind_at.contains(&s) {
            // The resumed attempt repeats the 1,000 steps after its checkpoint.
            for r in s.saturating_sub(1000)..s {
                writeln!(
                    w,
                    "{{\"step\":{r},\"epoch\":0,\"wall\":{:.3},\"tag\":\"loss/g_total\",\"value\":{}}}",
                    1.8e9 + r as f64 * 0.01 + 60.0,
                    value(r)
                )?;
            }
        }
        let wall = 1.8e9 + s as f64 * 0.01 + if rewind_at.iter().any(|&r| r <= s) { 60.0 } else { 0.0 };
        writeln!(w, "{{\"step\":{s},\"epoch\":0,\"wall\":{wall:.3},\"tag\":\"loss/g_total\",\"value\":{}}}", value(s))?;
    }
    w.flush()?;
    Ok(())
}

fn rss_bytes() -> u64 {
    let s = std::fs::read_to_string("/proc/self/statm").unwrap_or_default();
    let pages: u64 = s.split_whitespace().nth(1).and_then(|p| p.parse().ok()).unwrap_or(0);
    // SAFETY: plain libc query.
    pages * unsafe { libc::sysconf(libc::_SC_PAGESIZE) } as u64
}

pub fn run(a: ConsoleBench) -> Result<ExitCode> {
    let dir = tempfile_dir()?;
    let home = dir.clone();
    let sweep = a.sweep > 0;
    if sweep && (a.seeds == 0 || !a.sweep.is_multiple_of(a.seeds)) {
        anyhow::bail!("--sweep {}: must be a multiple of --seeds {}", a.sweep, a.seeds);
    }
    let runs = if sweep { a.sweep } else { a.runs };
    // One metrics file per seed (one in all without --sweep), shared by the runs through
    // symlinks (the loads are real reads).
    let files = if sweep { a.seeds } else { 1 };
    let t = Instant::now();
    let mut bytes = 0;
    for k in 0..files {
        let file = home.join(format!("metrics{k}.jsonl"));
        write_metrics(&file, a.points, a.rewinds, k as u64)?;
        bytes += std::fs::metadata(&file)?.len();
    }
    println!("wrote {files} x {} lines ({:.1} MB) in {:.2} s", a.points, bytes as f64 / 1e6, t.elapsed().as_secs_f64());
    let mut tasks = Vec::new();
    for i in 0..runs {
        let rd = home.join(format!("runs/run{i}"));
        std::fs::create_dir_all(&rd)?;
        let seed = i % files;
        std::os::unix::fs::symlink(home.join(format!("metrics{seed}.jsonl")), rd.join(crate::rundir::METRICS_FILE))?;
        let mut task = serde_json::json!({"id": i + 1, "job": "fake-run", "group": "default", "state": "finished", "run_id": format!("run{i}"), "run_dir": rd, "queued_at": 1.8e9});
        if sweep {
            // Member i: value i / seeds of lambda, seed i % seeds (as `clipgan sweep` orders them).
            let lambda = format!("{}", (1 + i / a.seeds) as f64 / 10.0);
            task["sweep"] = serde_json::json!("sweep-1");
            task["overrides"] = serde_json::json!([format!("TRAIN.SMOOTH.LAMBDA={lambda}"), format!("CLIPGAN.SEED={}", 100 + seed)]);
            task["label"] = serde_json::json!(format!("LAMBDA={lambda} seed={}", 100 + seed));
        }
        tasks.push(task);
    }
    let snap = serde_json::from_value(serde_json::json!({
        "rev": 1, "daemon_pid": 0, "home": home, "settings": {}, "groups": [], "tasks": tasks, "save_error": null,
        "sweeps": {"sweep-1": {"name": "bench", "keys": ["TRAIN.SMOOTH.LAMBDA", "CLIPGAN.SEED"], "created": 1.8e9}},
    }))?;
    let mut app = App::new(&home, Keymap::default(), Theme::default());
    app.handle(Event::Snapshot(Box::new(snap)));
    // handle() loaded the data already; time a fresh load of one run.
    let mut one = crate::console::store::RunData::new(&home.join("runs/run0"));
    let rss0 = rss_bytes();
    let t = Instant::now();
    let n = one.poll()?;
    let load_s = t.elapsed().as_secs_f64();
    let rss1 = rss_bytes();
    drop(one);
    let points: usize = app.store.runs.values().map(|r| r.points()).sum();
    let sorted = app.store.runs.values().flat_map(|r| r.tags.values()).all(|s| s.sorted(crate::console::store::XAxis::Step));
    println!("{} rewind(s) per run; {points} points held; every series sorted by step (fast path): {sorted}", a.rewinds);
    println!(
        "load: {n} lines of metrics.jsonl in {load_s:.3} s ({:.0} lines/s); RSS +{:.1} MB for that run",
        n as f64 / load_s,
        (rss1.saturating_sub(rss0)) as f64 / 1e6
    );
    let data_bytes: usize = app
        .store
        .runs
        .values()
        .flat_map(|r| r.tags.values())
        .map(|s| {
            (s.steps.capacity() + s.walls.capacity() + s.values.capacity() + s.smoothed.capacity()) * 8
                + s.raw_blocks.bytes()
                + s.smooth_blocks.bytes()
        })
        .sum();
    println!(
        "memory: {points} points held, {:.1} bytes/point (steps, walls, values, smoothed, their block summaries; vectors' capacity)",
        data_bytes as f64 / points as f64
    );

    if sweep {
        app.open_sweep_curves("sweep-1".into());
        let c = app.colouring().map_or(0, |c| c.values.len());
        println!("sweep: {runs} members, coloured by {c} values of TRAIN.SMOOTH.LAMBDA, {} seed bands", app.band_groups().len());
    } else {
        app.runs.marked.extend(1..=runs as u64);
    }
    app.view = View::Curves;
    let mut term = Terminal::new(TestBackend::new(a.width, a.height))?;
    let mut cold = Vec::new();
    let mut warm = Vec::new();
    for i in 0..a.frames {
        // A view change (pan by a little) each frame: every curve is decimated again.
        app.curves.zoom = (0.0, 1.0 - 0.001 * (i % 10) as f64);
        app.curves.decimated.clear();
        app.curves.bands.clear();
        let t = Instant::now();
        term.draw(|f| crate::console::views::draw(f, &app))?;
        cold.push(t.elapsed().as_secs_f64() * 1e3);
        let t = Instant::now();
        term.draw(|f| crate::console::views::draw(f, &app))?;
        warm.push(t.elapsed().as_secs_f64() * 1e3);
    }
    println!(
        "frame ({}x{}, {} runs x {} points{}, 1 chart, EMA smoothing): cold median {:.2} ms (first frame {:.2}), warm median {:.2} ms",
        a.width,
        a.height,
        runs,
        a.points,
        if sweep { " as one sweep, seed bands" } else { "" },
        median(&cold),
        cold[0],
        median(&warm)
    );
    std::fs::remove_dir_all(&dir).ok();
    Ok(ExitCode::SUCCESS)
}

fn tempfile_dir() -> Result<std::path::PathBuf> {
    let d = std::env::temp_dir().join(format!("clipgan-bench-console-{}", std::process::id()));
    std::fs::create_dir_all(&d).with_context(|| format!("cannot create {}", d.display()))?;
    Ok(d)
}
