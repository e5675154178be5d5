//! The progress options every job subcommand takes (`pretrain`, `train`, `eval`,
//! `fake-run`); what they do is `jobs::live`.
use crate::jobs::live::{self, Mode, Settings};
use clap::Args;

#[derive(Args, Debug, Clone, Default)]
pub struct ProgressArgs {
    /// How to show progress on stderr: auto (a line redrawn in place on a terminal,
    /// else plain), bar, plain (a line every --progress-every seconds) or off.
    #[arg(long, value_enum, env = "CLIPGAN_PROGRESS", default_value = "auto")]
    pub progress: Mode,
    /// Seconds between plain progress lines [default: 10; 60 for a worker the daemon
    /// started].
    #[arg(long, env = "CLIPGAN_PROGRESS_EVERY", value_name = "SECS")]
    pub progress_every: Option<f64>,
    /// No progress line (the same as --progress off).
    #[arg(long, short = 'q')]
    pub quiet: bool,
}

impl ProgressArgs {
    /// Set this process's progress settings.
    pub fn apply(&self) {
        let mode = if self.quiet { Mode::Off } else { self.progress };
        live::configure(Settings { mode, every: self.progress_every });
    }
}
