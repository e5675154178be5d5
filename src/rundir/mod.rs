//! The run folder: the one contract between workers, the daemon and the console.
//! Format documented in docs/run-format.md.
mod format;
pub mod logs;
mod reader;
mod writer;

pub use format::*;
pub use reader::{config_file, list_run_dirs, read_metrics, read_samples, read_status, JsonlTail, MetricsRead, MetricsTail, SamplesTail};
pub use writer::{JsonlWriter, Observer, RunDir, RunWriter};
