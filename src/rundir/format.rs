//! The run folder's files and their record types (docs/run-format.md is the prose
//! version of this file; keep them in step and bump [`FORMAT_VERSION`] on breaking
//! changes).
use serde::{Deserialize, Deserializer, Serialize, Serializer};

/// Version of the run-folder format written into `run.json`.
pub const FORMAT_VERSION: u32 = 1;

pub const MANIFEST_FILE: &str = "run.json";
pub const CONFIG_FILE: &str = "config.yml";
pub const STATUS_FILE: &str = "status.json";
pub const METRICS_FILE: &str = "metrics.jsonl";
pub const SAMPLES_DIR: &str = "samples";
pub const SAMPLES_INDEX: &str = "samples/index.jsonl";
pub const CHECKPOINTS_DIR: &str = "checkpoints";
pub const LOGS_DIR: &str = "logs";
pub const STDOUT_LOG: &str = "logs/stdout.log";
pub const STDERR_LOG: &str = "logs/stderr.log";
pub const RESULTS_FILE: &str = "results.json";
/// Files the daemon's shim writes into a run folder (docs/supervisor.md).
pub const WORKER_FILE: &str = "worker.json";
pub const EXIT_FILE: &str = "exit.json";
/// The raw config file as it was when the run was queued (`config.yml` is the resolved
/// copy the worker writes).
pub const CONFIG_SNAPSHOT_FILE: &str = "config.source.yml";
/// The shim's own messages (not the worker's output).
pub const SHIM_LOG: &str = "logs/shim.log";

/// The longest run name (CONFIG_NAME, `queue add --label`, `fake-run --name`): it becomes
/// part of the run folder's name, and file names have at most 255 bytes.
pub const MAX_NAME_CHARS: usize = 64;

/// An error message when `name` is longer than [`MAX_NAME_CHARS`] (what is it: "label").
pub fn check_name(what: &str, name: &str) -> Result<(), String> {
    let n = name.chars().count();
    if n > MAX_NAME_CHARS {
        return Err(format!("the {what} has {n} characters, more than the {MAX_NAME_CHARS} allowed: {:?}", crate::util::cut(name, 40)));
    }
    Ok(())
}

/// A name taken from a file name (not given by the user): its first [`MAX_NAME_CHARS`]
/// characters, so that a long file name still makes a run.
pub fn name_from_file_stem(stem: &str) -> String {
    stem.chars().take(MAX_NAME_CHARS).collect()
}

/// Exit codes of job processes, which the daemon reads as run states (2 is clap's usage
/// error).
pub mod exit {
    /// Ran to the end.
    pub const FINISHED: u8 = 0;
    /// Failed with an error (message on stderr and in status.json).
    pub const FAILED: u8 = 1;
    /// Stopped on request (SIGTERM/SIGINT) after saving a resumable checkpoint.
    pub const STOPPED: u8 = 3;
    /// A loss became NaN/Inf; stopped, the last good checkpoint kept.
    pub const DIVERGED: u8 = 4;
}

/// The kinds of job the daemon runs, each a `clipgan` subcommand. The names (`as_str`,
/// serde, `FromStr`) are the strings `state.json`, the socket protocol and the command
/// line have always used.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(try_from = "String", into = "&'static str")]
pub enum JobKind {
    /// CLIP finetuning (`clipgan pretrain`).
    Pretrain,
    /// DM-GAN training (`clipgan train`).
    Train,
    /// Sampling and metrics (`clipgan eval`).
    Eval,
    /// A worker that trains nothing (`clipgan fake-run`).
    FakeRun,
}

impl JobKind {
    pub const ALL: [JobKind; 4] = [JobKind::Pretrain, JobKind::Train, JobKind::Eval, JobKind::FakeRun];

    pub fn as_str(self) -> &'static str {
        match self {
            JobKind::Pretrain => "pretrain",
            JobKind::Train => "train",
            JobKind::Eval => "eval",
            JobKind::FakeRun => "fake-run",
        }
    }
}

impl std::fmt::Display for JobKind {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        // `pad`, so that widths in table formats apply.
        f.pad(self.as_str())
    }
}

/// A job name that is none of [`JobKind::ALL`].
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct UnknownJobKind(pub String);

impl std::fmt::Display for UnknownJobKind {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        let names: Vec<&str> = JobKind::ALL.iter().map(|k| k.as_str()).collect();
        write!(f, "unknown job {:?}; expected one of: {}", self.0, names.join(", "))
    }
}

impl std::error::Error for UnknownJobKind {}

impl std::str::FromStr for JobKind {
    type Err = UnknownJobKind;

    fn from_str(s: &str) -> Result<JobKind, UnknownJobKind> {
        JobKind::ALL.into_iter().find(|k| k.as_str() == s).ok_or_else(|| UnknownJobKind(s.to_string()))
    }
}

impl TryFrom<String> for JobKind {
    type Error = UnknownJobKind;

    fn try_from(s: String) -> Result<JobKind, UnknownJobKind> {
        s.parse()
    }
}

impl From<JobKind> for &'static str {
    fn from(k: JobKind) -> &'static str {
        k.as_str()
    }
}

/// `run.json`: what the run is. Written once when the folder is made.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct Manifest {
    /// [`FORMAT_VERSION`] of the writer.
    pub format: u32,
    /// The folder name; unique under `runs/`.
    pub id: String,
    /// A [`JobKind`] name for the runs clipgan makes; kept a string so that run folders
    /// of kinds this version does not know can still be listed and read.
    pub job: String,
    /// A short human name (usually the config's CONFIG_NAME or file stem).
    pub name: String,
    /// Unix seconds.
    pub created: f64,
    /// The config file the run was started from, as given (the resolved copy is
    /// `config.yml`).
    #[serde(default)]
    pub config_source: Option<String>,
    /// The worker's command line.
    #[serde(default)]
    pub command: Vec<String>,
    #[serde(default)]
    pub host: String,
    /// clipgan's version that made the folder.
    #[serde(default)]
    pub clipgan_version: String,
}

/// Where a run stands, as its worker last said (`status.json`, replaced atomically).
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum RunState {
    /// Folder made, worker not yet reporting.
    Created,
    /// The worker is loading data / building models.
    Starting,
    Running,
    /// Asked to stop: saving a checkpoint before exiting.
    Stopping,
    /// Ran to the end.
    Finished,
    /// Stopped on request after saving a checkpoint; can be resumed.
    Stopped,
    /// Ended with an error (see `message`).
    Failed,
    /// A loss became NaN/Inf; stopped, the last good checkpoint is kept.
    Diverged,
}

impl RunState {
    /// Whether the worker is done with this folder.
    pub fn is_final(self) -> bool {
        matches!(self, RunState::Finished | RunState::Stopped | RunState::Failed | RunState::Diverged)
    }
}

#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct Status {
    pub state: RunState,
    /// The worker's process id (while it runs).
    #[serde(default)]
    pub pid: Option<u32>,
    /// Unix seconds when the worker started, and of this status.
    #[serde(default)]
    pub started: f64,
    #[serde(default)]
    pub updated: f64,
    /// Optimisation steps done, and planned (when known).
    #[serde(default)]
    pub step: u64,
    #[serde(default)]
    pub total_steps: Option<u64>,
    #[serde(default)]
    pub epoch: u32,
    #[serde(default)]
    pub total_epochs: Option<u32>,
    /// Recent speed and the time left at that speed.
    #[serde(default)]
    pub steps_per_s: Option<f64>,
    #[serde(default)]
    pub eta_s: Option<f64>,
    /// A one-line human message (what it is doing, or why it failed).
    #[serde(default)]
    pub message: String,
    /// Run-folder-relative path of the newest resumable checkpoint.
    #[serde(default)]
    pub last_checkpoint: Option<String>,
}

impl Status {
    pub fn new(state: RunState) -> Status {
        let now = crate::util::unix_now();
        Status {
            state,
            pid: Some(std::process::id()),
            started: now,
            updated: now,
            step: 0,
            total_steps: None,
            epoch: 0,
            total_epochs: None,
            steps_per_s: None,
            eta_s: None,
            message: String::new(),
            last_checkpoint: None,
        }
    }

    /// Fraction done in [0, 1], when the total is known.
    pub fn progress(&self) -> Option<f64> {
        self.total_steps.filter(|t| *t > 0).map(|t| (self.step as f64 / t as f64).clamp(0.0, 1.0))
    }
}

/// One line of `metrics.jsonl`: a scalar at a step.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct MetricEvent {
    pub step: u64,
    #[serde(default)]
    pub epoch: u32,
    /// Unix seconds when the value was logged.
    pub wall: f64,
    /// Slash-separated name, e.g. `loss/d64`, `val/r_precision`.
    pub tag: String,
    /// JSON has no NaN/Inf: those are written as the strings "NaN", "Infinity",
    /// "-Infinity" (so a diverging loss is recorded, not dropped).
    #[serde(serialize_with = "ser_f64", deserialize_with = "de_f64")]
    pub value: f64,
}

/// One line of `samples/index.jsonl`: an image written under `samples/`.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct SampleEvent {
    pub step: u64,
    #[serde(default)]
    pub epoch: u32,
    pub wall: f64,
    /// What the image shows, e.g. `grid/256`, `retrieval`.
    pub tag: String,
    /// Run-folder-relative path of the PNG.
    pub file: String,
    /// Captions of the image's cells, row-major (may be empty).
    #[serde(default)]
    pub captions: Vec<String>,
    /// Grid layout of the cells when the image is a grid.
    #[serde(default)]
    pub rows: u32,
    #[serde(default)]
    pub cols: u32,
}

fn ser_f64<S: Serializer>(v: &f64, s: S) -> Result<S::Ok, S::Error> {
    if v.is_finite() {
        s.serialize_f64(*v)
    } else if v.is_nan() {
        s.serialize_str("NaN")
    } else if *v > 0.0 {
        s.serialize_str("Infinity")
    } else {
        s.serialize_str("-Infinity")
    }
}

fn de_f64<'de, D: Deserializer<'de>>(d: D) -> Result<f64, D::Error> {
    struct V;
    impl serde::de::Visitor<'_> for V {
        type Value = f64;
        fn expecting(&self, f: &mut std::fmt::Formatter) -> std::fmt::Result {
            f.write_str("a number, or \"NaN\", \"Infinity\", \"-Infinity\"")
        }
        fn visit_f64<E>(self, v: f64) -> Result<f64, E> {
            Ok(v)
        }
        fn visit_i64<E>(self, v: i64) -> Result<f64, E> {
            Ok(v as f64)
        }
        fn visit_u64<E>(self, v: u64) -> Result<f64, E> {
            Ok(v as f64)
        }
        fn visit_str<E: serde::de::Error>(self, v: &str) -> Result<f64, E> {
            match v {
                "NaN" => Ok(f64::NAN),
                "Infinity" => Ok(f64::INFINITY),
                "-Infinity" => Ok(f64::NEG_INFINITY),
                other => Err(E::custom(format!("not a number: {other:?}"))),
            }
        }
    }
    d.deserialize_any(V)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn job_kinds_keep_their_names_in_json_and_on_the_command_line() {
        for (kind, name) in JobKind::ALL.into_iter().zip(["pretrain", "train", "eval", "fake-run"]) {
            assert_eq!(kind.as_str(), name);
            assert_eq!(serde_json::to_string(&kind).unwrap(), format!("\"{name}\""));
            assert_eq!(serde_json::from_str::<JobKind>(&format!("\"{name}\"")).unwrap(), kind);
            assert_eq!(name.parse::<JobKind>(), Ok(kind));
        }
        assert_eq!(format!("[{:<9}]", JobKind::Eval), "[eval     ]", "widths apply");
    }

    #[test]
    fn an_unknown_job_kind_is_refused_with_the_list_of_kinds() {
        let e = "fake_run".parse::<JobKind>().unwrap_err();
        assert_eq!(e.to_string(), "unknown job \"fake_run\"; expected one of: pretrain, train, eval, fake-run");
        let e = serde_json::from_str::<JobKind>("\"gan\"").unwrap_err().to_string();
        assert!(e.contains("unknown job \"gan\"; expected one of: pretrain, train, eval, fake-run"), "{e}");
    }
}
