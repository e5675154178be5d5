//! The run folder: the one contract between workers, the daemon and the console.
//! Format documented in docs/run-format.md.
mod format;
pub mod logs;
mod reader;
pub mod tfevents;
mod writer;

pub use format::*;
pub use reader::{
    config_file, find_runs, has_event_files, is_clipgan_run, list_run_dirs, one_value_per_step, read_metrics, read_results, read_samples,
    read_status, rewind_len, JsonlTail, MetricsRead, MetricsTail, RunSource, SamplesTail,
};
pub use writer::{JsonlWriter, Observer, RunDir, RunWriter};
