//! `clipgan bench tfevents`: reading a TensorBoard event file of N scalars (default
//! 1,000,000) against the same scalars as `metrics.jsonl`: time to parse and store each
//! into the console's store (`console::store::RunData`, as the console and `clipgan plot`
//! load a run), median of R reads, and the peak memory of one load over the process's
//! memory before it (VmHWM, reset through /proc/self/clear_refs).
use super::timing::median;
use crate::console::store::RunData;
use crate::rundir::tfevents::EventWriter;
use crate::rundir::MetricEvent;
use anyhow::{Context, Result};
use clap::Args;
use std::io::Write;
use std::process::ExitCode;
use std::time::Instant;

#[derive(Args, Debug)]
pub struct TfeventsBench {
    /// Scalars in the file (one tag, one per step).
    #[arg(long, default_value_t = 1_000_000)]
    points: u64,
    /// Timed reads of each file (median reported).
    #[arg(long, default_value_t = 5)]
    repeats: usize,
}

fn status_kb(key: &str) -> u64 {
    let s = std::fs::read_to_string("/proc/self/status").unwrap_or_default();
    s.lines().find_map(|l| l.strip_prefix(key)).and_then(|v| v.split_whitespace().next()?.parse().ok()).unwrap_or(0)
}

/// Peak resident memory of `f` above the resident memory before it, in bytes (the peak
/// is reset first; 0 where the kernel does not allow it).
fn peak_of<T>(f: impl FnOnce() -> T) -> (T, u64) {
    let reset = std::fs::write("/proc/self/clear_refs", "5").is_ok();
    let before = status_kb("VmRSS:");
    let out = f();
    let peak = status_kb("VmHWM:");
    (out, if reset { peak.saturating_sub(before) * 1024 } else { 0 })
}

pub fn run(a: TfeventsBench) -> Result<ExitCode> {
    let dir = std::env::temp_dir().join(format!("clipgan-bench-tfevents-{}", std::process::id()));
    let (tb, jl) = (dir.join("tb"), dir.join("jsonl"));
    std::fs::create_dir_all(&tb).and_then(|_| std::fs::create_dir_all(&jl)).with_context(|| format!("cannot create {}", dir.display()))?;
    let t = Instant::now();
    {
        let mut ev = EventWriter::create(&tb, 1.8e9, "bench")?;
        let mut js = std::io::BufWriter::new(std::fs::File::create(jl.join(crate::rundir::METRICS_FILE))?);
        for s in 0..a.points {
            let noise = ((s.wrapping_mul(0x9E37_79B9_7F4A_7C15) >> 40) as f64 / (1u64 << 24) as f64) - 0.5;
            // float32 values, as the event file keeps them, so both files hold the same numbers.
            let value = (2.0 * (-(s as f64) / (a.points as f64 / 4.0)).exp() + 0.5 + 0.1 * noise) as f32 as f64;
            let e = MetricEvent { step: s, epoch: 0, wall: 1.8e9 + s as f64 * 0.01, tag: "loss/g_total".into(), value };
            ev.scalar(&e)?;
            serde_json::to_writer(&mut js, &e)?;
            js.write_all(b"\n")?;
        }
        ev.flush()?;
        js.flush()?;
    }
    let size = |d: &std::path::Path| -> u64 {
        std::fs::read_dir(d).map(|r| r.flatten().filter_map(|e| e.metadata().ok()).map(|m| m.len()).sum()).unwrap_or(0)
    };
    println!(
        "wrote {} scalars: event file {:.1} MB, metrics.jsonl {:.1} MB ({:.2} s)",
        a.points,
        size(&tb) as f64 / 1e6,
        size(&jl) as f64 / 1e6,
        t.elapsed().as_secs_f64()
    );
    let mut figures = Vec::new();
    for (name, d) in [("event file", &tb), ("metrics.jsonl", &jl)] {
        let ((n, tags), peak) = peak_of(|| {
            let mut r = RunData::new(d);
            let n = r.poll().unwrap_or(0);
            (n, r.tags.len())
        });
        anyhow::ensure!(n as u64 == a.points && tags == 1, "{name}: read {n} points in {tags} tag(s), wrote {}", a.points);
        let mut times = Vec::new();
        for _ in 0..a.repeats {
            let t = Instant::now();
            let mut r = RunData::new(d);
            r.poll()?;
            times.push(t.elapsed().as_secs_f64());
        }
        let med = median(&times);
        println!(
            "{name}: read + store {n} points: median {med:.3} s of {} ({:.2} M points/s); peak memory of a load +{:.1} MB",
            a.repeats,
            n as f64 / med / 1e6,
            peak as f64 / 1e6
        );
        figures.push((med, peak));
    }
    println!(
        "ratio event file / metrics.jsonl: time {:.2}, peak memory {:.2}",
        figures[0].0 / figures[1].0,
        figures[0].1 as f64 / figures[1].1.max(1) as f64
    );
    std::fs::remove_dir_all(&dir).ok();
    Ok(ExitCode::SUCCESS)
}
