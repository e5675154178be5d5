//! The finetuning learning-rate schedule (method.md §6): in units of epochs, a linear
//! warm-up then a cosine decay, restarted every cycle with a smaller peak.
//!
//! Cycle `c` covers epochs `[c·T0, (c+1)·T0)`. Inside it, at position `t` (epochs since
//! the cycle began, fractional), with peak `p = peak · decay^c`:
//! - `t < T_up`: `floor + (p - floor) · t / T_up`
//! - else: `floor + (p - floor) · (1 + cos(π (t - T_up) / (T0 - T_up))) / 2`
//!
//! The position is the step's fractional epoch (`epoch + batch / batches_per_epoch`), so
//! the rate moves smoothly within an epoch. (The seed stepped a one-cycle scheduler once
//! per epoch, method.md §9.5: the warm-up epoch then trains at the floor rate.)
use crate::config::Clipgan;

/// Lowest learning rate of the schedule (the warm-up starts here).
pub const LR_FLOOR: f64 = 1e-7;

#[derive(Clone, Copy, Debug, PartialEq)]
pub struct WarmRestarts {
    /// Warm-up length at the start of each cycle, in epochs (T_up).
    pub warmup_epochs: f64,
    /// Cycle length in epochs (T_0).
    pub cycle_epochs: f64,
    /// Peak factor per finished cycle.
    pub cycle_decay: f64,
    pub floor: f64,
}

impl WarmRestarts {
    pub fn from_config(c: &Clipgan) -> WarmRestarts {
        WarmRestarts {
            warmup_epochs: c.warmup_epochs as f64,
            cycle_epochs: c.cycle_epochs.max(1) as f64,
            cycle_decay: c.cycle_decay,
            floor: LR_FLOOR,
        }
    }

    /// The learning rate of a parameter group whose peak rate is `peak`, at fractional
    /// epoch `epoch_pos` (>= 0). A peak below the floor (e.g. 0: frozen) is kept as is.
    pub fn lr(&self, peak: f64, epoch_pos: f64) -> f64 {
        let t0 = self.cycle_epochs;
        let pos = epoch_pos.max(0.0);
        let cycle = (pos / t0).floor();
        let t = pos - cycle * t0;
        let p = peak * self.cycle_decay.powf(cycle);
        let floor = self.floor.min(p);
        let t_up = self.warmup_epochs.min(t0);
        let shape = if t < t_up {
            t / t_up
        } else if t0 - t_up <= 0.0 {
            1.0
        } else {
            (1.0 + (std::f64::consts::PI * (t - t_up) / (t0 - t_up)).cos()) / 2.0
        };
        floor + (p - floor) * shape
    }

    /// The fractional epoch of batch `batch` (0-based) of epoch `epoch` (0-based).
    pub fn position(epoch: u64, batch: usize, batches_per_epoch: usize) -> f64 {
        epoch as f64 + batch as f64 / batches_per_epoch.max(1) as f64
    }
}
