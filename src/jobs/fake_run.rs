//! `clipgan fake-run`: a worker that trains nothing but behaves like one: noisy,
//! decreasing loss curves, status with progress and ETA, sample images, checkpoints,
//! resume, SIGTERM handling, and a failure on request. For the supervisor's tests, load
//! tests, and trying the console without libtorch work.
use crate::jobs::Worker;
use crate::rundir::{exit, RunState};
use crate::util::{fsx, unix_now};
use anyhow::{bail, Context, Result};
use serde::{Deserialize, Serialize};
use std::path::PathBuf;
use std::time::Duration;

#[derive(Clone, Debug)]
pub struct Options {
    pub steps: u64,
    pub step_ms: u64,
    /// Fail (exit::FAILED) when reaching this step.
    pub fail_at: Option<u64>,
    pub run_dir: Option<PathBuf>,
    /// Continue in this run folder from its last checkpoint.
    pub resume: Option<PathBuf>,
    pub name: String,
    /// Steps between sample images (0: none).
    pub sample_every: u64,
    /// Steps between checkpoints (0: only when stopping).
    pub checkpoint_every: u64,
    /// Extra bytes of output per step (to exercise log caps).
    pub print_bytes: usize,
    /// The noise seed; default: the config's CLIPGAN.SEED, else 100.
    pub seed: Option<u64>,
    /// A config to record (its resolved `config.yml`, with `overrides` applied), as a real
    /// job does: so sweeps and config diffs can be tried with fake runs.
    pub cfg: Option<PathBuf>,
    pub overrides: Vec<String>,
}

/// `checkpoints/latest.json`.
#[derive(Debug, Serialize, Deserialize)]
pub struct FakeCheckpoint {
    pub step: u64,
    pub seed: u64,
    pub wall: f64,
}

pub const CHECKPOINT_REL: &str = "checkpoints/latest.json";

/// `clipgan fake-run`; returns the process exit code.
pub fn main(a: &Options) -> Result<u8> {
    if a.steps == 0 {
        bail!("--steps must be at least 1");
    }
    if a.cfg.is_none() && !a.overrides.is_empty() {
        bail!("--set needs a config (--cfg FILE)");
    }
    let loaded = match &a.cfg {
        Some(c) => Some(crate::config::load_with(c, &a.overrides)?),
        None => None,
    };
    let seed = a.seed.or(loaded.as_ref().map(|l| l.config.clipgan.seed)).unwrap_or(100);
    let offset = loaded.as_ref().map_or(0.0, |l| l.config.clipgan.fake_offset);
    let dir_arg = a.resume.clone().or(a.run_dir.clone());
    let mut w = Worker::start(dir_arg.as_deref(), &a.name, "fake-run", a.cfg.as_deref())?;
    if let Some(l) = &loaded {
        w.run.dir().write_config(&l.resolved_yaml())?;
    }
    let mut start = 0;
    if a.resume.is_some() {
        let rel = w.run.status().last_checkpoint.clone();
        if let Some(rel) = rel {
            let path = w.run.dir().file(&rel);
            let text = fsx::read_to_string(&path)?;
            let c: FakeCheckpoint =
                serde_json::from_str(&text).with_context(|| format!("{} is not a fake-run checkpoint", path.display()))?;
            start = c.step;
        }
    }
    w.run.set_totals(Some(a.steps), None);
    let slot = std::env::var("CLIPGAN_SLOT").unwrap_or_default();
    let gpus = std::env::var("CUDA_VISIBLE_DEVICES").unwrap_or_default();
    println!("fake-run: run {} slot={slot} cuda_visible_devices={gpus} from step {start} to {}", w.run.dir().id(), a.steps);
    w.run.set_message(format!("fake run from step {start}"));
    w.run.progress(start)?;
    let pad = "x".repeat(a.print_bytes);
    for step in start + 1..=a.steps {
        if w.stop.is_raised() {
            return stop_now(w, step - 1, seed);
        }
        // A long step is abandoned when the stop comes during it (as a real step's
        // partial work is lost): the run stops at the last step it completed.
        let step_end = std::time::Instant::now() + Duration::from_millis(a.step_ms);
        while let Some(left) = step_end.checked_duration_since(std::time::Instant::now()).filter(|d| !d.is_zero()) {
            if w.stop.is_raised() {
                return stop_now(w, step - 1, seed);
            }
            std::thread::sleep(left.min(Duration::from_millis(50)));
        }
        if a.fail_at == Some(step) {
            eprintln!("fake-run: failing at step {step} as asked (--fail-at)");
            w.run.flush()?;
            w.run.finish(RunState::Failed, format!("failed at step {step} as asked (--fail-at)"))?;
            return Ok(exit::FAILED);
        }
        let v = shifted(curves(step, a.steps, seed), offset);
        w.run.scalars(step, &[("loss/g_total", v[0]), ("loss/d_total", v[1]), ("loss/damsm", v[2]), ("lr/generator", v[3])])?;
        if step % 10 == 0 || step == a.steps {
            w.run.scalar(step, "val/r_precision", v[4])?;
        }
        w.run.progress(step)?;
        // Through the live line, so that a bar on the same terminal is not broken.
        super::live::println(&format!("step {step}/{} loss/g_total {:.4}{pad}", a.steps, v[0]));
        if a.sample_every > 0 && step % a.sample_every == 0 {
            let img = sample_image(step, a.steps);
            let caps: Vec<String> = (0..4).map(|k| format!("fake caption {k} at step {step}")).collect();
            w.run.sample(step, "grid/64", &img, &caps, 2, 2)?;
        }
        if a.checkpoint_every > 0 && step % a.checkpoint_every == 0 {
            save_latest(&mut w, step, seed)?;
        }
    }
    save_latest(&mut w, a.steps, seed)?;
    w.run.finish(RunState::Finished, "done")?;
    Ok(exit::FINISHED)
}

fn stop_now(mut w: Worker, step: u64, seed: u64) -> Result<u8> {
    w.run.set_state(RunState::Stopping, "saving a checkpoint")?;
    save_latest(&mut w, step, seed)?;
    w.run.finish(RunState::Stopped, format!("stopped at step {step}"))?;
    println!("fake-run: stopped at step {step}");
    Ok(exit::STOPPED)
}

/// Metrics first, then the checkpoint: a resumed run never has a gap in its steps.
fn save_latest(w: &mut Worker, step: u64, seed: u64) -> Result<()> {
    w.run.flush()?;
    let c = FakeCheckpoint { step, seed, wall: unix_now() };
    fsx::atomic_write(&w.run.dir().file(CHECKPOINT_REL), &serde_json::to_vec(&c)?)?;
    w.run.set_checkpoint(CHECKPOINT_REL)
}

/// Noise in [-1, 1] that depends only on (seed, step, k): a resumed run draws the same.
fn noise(seed: u64, step: u64, k: u64) -> f64 {
    let z = crate::seed::mix64(seed ^ step.wrapping_mul(0x9E37_79B9_7F4A_7C15) ^ k.wrapping_mul(0xD1B5_4A32_D192_ED03));
    (z >> 11) as f64 / (1u64 << 53) as f64 * 2.0 - 1.0
}

/// Generator loss, discriminator loss, DAMSM loss, learning rate, R-precision.
pub fn curves(step: u64, total: u64, seed: u64) -> [f64; 5] {
    let t = step as f64 / total.max(1) as f64;
    let g = 2.5 * (-t / 0.3).exp() + 0.8 + 0.15 * noise(seed, step, 1);
    let d = 1.2 * (-t / 0.5).exp() + 0.4 + 0.1 * noise(seed, step, 2);
    let damsm = 4.0 * (-t / 0.2).exp() + 1.0 + 0.2 * noise(seed, step, 3);
    let lr = 2e-4 * 0.5 * (1.0 + (std::f64::consts::PI * t).cos());
    let r = (0.9 - 0.8 * (-t / 0.4).exp() + 0.02 * noise(seed, step, 4)).clamp(0.0, 1.0);
    [g, d, damsm, lr, r]
}

/// The curves moved by CLIPGAN.FAKE_OFFSET: losses up, R-precision down (clamped).
fn shifted(mut v: [f64; 5], offset: f64) -> [f64; 5] {
    for l in &mut v[..3] {
        *l += offset;
    }
    v[4] = (v[4] - 0.1 * offset).clamp(0.0, 1.0);
    v
}

fn sample_image(step: u64, total: u64) -> image::RgbImage {
    let phase = step as f32 / total.max(1) as f32;
    image::RgbImage::from_fn(64, 64, |x, y| {
        let cx = 32.0 + 20.0 * (phase * std::f32::consts::TAU).cos();
        let cy = 32.0 + 20.0 * (phase * std::f32::consts::TAU).sin();
        let d = ((x as f32 - cx).powi(2) + (y as f32 - cy).powi(2)).sqrt();
        let blob = (255.0 * (1.0 - d / 24.0).max(0.0)) as u8;
        image::Rgb([blob, (x * 4) as u8, (y * 4) as u8])
    })
}
