//! Bookkeeping both training loops share (CLIP finetuning and DM-GAN): the step budget
//! shown as progress, the images/s over each logging window, the wall-clock checkpoint
//! timer and the message of a diverged run.
use super::LATEST;
use crate::config::Config;
use crate::rundir::RunWriter;
use anyhow::Result;
use std::time::{Duration, Instant};

/// Timers and totals of one training loop.
pub struct LoopClock {
    /// (start, step) of the current speed window.
    window: (Instant, u64),
    batch_size: f64,
    ckpt_every: Duration,
    last_ckpt: Instant,
}

impl LoopClock {
    /// Tell the run folder the totals (epochs, and steps: the epochs' batches capped by
    /// `CLIPGAN.MAX_STEPS`) and where the loop starts, and start the timers.
    pub fn start(run: &mut RunWriter, c: &Config, batches_per_epoch: usize, batch_size: usize, epoch: u64, step: u64) -> Result<LoopClock> {
        let max_epoch = c.train.max_epoch as u64;
        let mut total_steps = max_epoch * batches_per_epoch as u64;
        if c.clipgan.max_steps > 0 {
            total_steps = total_steps.min(c.clipgan.max_steps);
        }
        run.set_totals(Some(total_steps), Some(max_epoch as u32));
        run.set_epoch(epoch.min(max_epoch.saturating_sub(1)) as u32 + 1);
        run.set_message("");
        run.progress(step)?;
        Ok(LoopClock {
            window: (Instant::now(), step),
            batch_size: batch_size as f64,
            ckpt_every: Duration::from_secs_f64(c.clipgan.checkpoint_minutes * 60.0),
            last_ckpt: Instant::now(),
        })
    }

    /// Images per second since the last call (or the start), now at `step`; starts the
    /// next window.
    pub fn images_per_s(&mut self, step: u64) -> f64 {
        let (t0, s0) = self.window;
        self.window = (Instant::now(), step);
        step.saturating_sub(s0) as f64 * self.batch_size / t0.elapsed().as_secs_f64().max(1e-9)
    }

    /// Whether `CLIPGAN.CHECKPOINT_MINUTES` have passed since the last checkpoint (never
    /// when it is 0).
    pub fn checkpoint_due(&self) -> bool {
        !self.ckpt_every.is_zero() && self.last_ckpt.elapsed() >= self.ckpt_every
    }

    /// A checkpoint was just written.
    pub fn checkpointed(&mut self) {
        self.last_ckpt = Instant::now();
    }
}

/// The message of a run that diverged at `step` (of 1-based `epoch`), saying whether the
/// last good state is kept; also printed to stderr for the worker's log.
pub fn diverged(run: &RunWriter, step: u64, epoch: u64, what: &str) -> String {
    let kept = if run.dir().checkpoints_dir().join(LATEST).is_file() {
        format!("; checkpoints/{LATEST} (the last good state) is kept")
    } else {
        String::new()
    };
    let msg = format!("diverged at step {step} (epoch {epoch}): {what}{kept}");
    eprintln!("clipgan: {msg}");
    msg
}
