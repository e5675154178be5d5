//! The run folder: the one contract between workers, the daemon and the console.
//! Format documented in docs/run-format.md.
mod format;
pub mod logs;
mod reader;
pub mod tfevents;
mod writer;

pub use format::*;
pub use reader::{config_file, find_runs, has_event_files, is_clipgan_run, list_run_dirs, RunSource, read_metrics, read_samples, read_status, rewind_len, one_value_per_step, JsonlTail, MetricsRead, MetricsTail, SamplesTail};
pub use writer::{JsonlWriter, RunDir, RunWriter};
