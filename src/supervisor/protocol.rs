//! The daemon's socket protocol: one JSON object per line each way, one response per
//! request, in order. Every message carries `"v"`, the protocol version; the daemon
//! refuses requests of another version. Documented in docs/supervisor.md.
use super::state::{Group, Settings, Task};
use crate::rundir::JobKind;
use serde::{Deserialize, Serialize};
use std::path::PathBuf;

pub const PROTOCOL_VERSION: u32 = 1;

#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct RequestLine {
    pub v: u32,
    #[serde(flatten)]
    pub req: Request,
}

#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct ResponseLine {
    pub v: u32,
    #[serde(flatten)]
    pub resp: Response,
}

/// A task or a whole group.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Target {
    Task(u64),
    Group(String),
}

#[derive(Clone, Debug, Default, PartialEq, Serialize, Deserialize)]
#[serde(default)]
pub struct AddTask {
    /// Inferred from the config when absent.
    pub job: Option<JobKind>,
    /// The config file, absolute (the CLI makes it so).
    pub config: Option<PathBuf>,
    pub args: Vec<String>,
    pub group: Option<String>,
    pub priority: i32,
    pub after: Vec<u64>,
    pub after_any: Vec<u64>,
    pub retries: u32,
    pub label: Option<String>,
    /// Queue it held (it starts only after `resume ID`).
    pub held: bool,
    /// `--set KEY=VALUE` overrides of the config (validated with it).
    pub overrides: Vec<String>,
}

/// Many tasks queued at once as one sweep: every one is validated before any is
/// queued, so a sweep is queued whole or not at all.
#[derive(Clone, Debug, Default, PartialEq, Serialize, Deserialize)]
#[serde(default)]
pub struct AddSweep {
    pub name: String,
    /// The config the members start from (absolute); each member's `config` too.
    pub config: Option<PathBuf>,
    /// The dotted keys the members vary.
    pub keys: Vec<String>,
    pub tasks: Vec<AddTask>,
    /// Stop members whose metric is worse than the others' median (`supervisor::prune`).
    pub prune: Option<super::prune::PruneSpec>,
}

/// Changes to a group; absent fields stay as they are.
#[derive(Clone, Debug, Default, PartialEq, Serialize, Deserialize)]
#[serde(default)]
pub struct GroupChange {
    pub slots: Option<usize>,
    pub gpus: Option<Vec<String>>,
    pub pause_on_failure: Option<bool>,
    /// `Some("")` removes the hook.
    pub on_finish: Option<String>,
    /// `"local"` or `"slurm"` (docs/slurm.md).
    pub executor: Option<String>,
    /// The Slurm group's `sbatch` options (replacing the old list).
    pub slurm_args: Option<Vec<String>>,
    /// The signal before the time limit and on preemption (`TERM`, `USR1`, ...).
    pub slurm_signal: Option<String>,
    /// Seconds before the time limit that the signal comes.
    pub slurm_signal_before_s: Option<u32>,
    /// Requeues without progress after which a task fails.
    pub slurm_max_stalls: Option<u32>,
}

#[derive(Clone, Debug, Default, PartialEq, Serialize, Deserialize)]
#[serde(default)]
pub struct SettingsChange {
    pub stop_timeout_s: Option<f64>,
    pub log_cap_bytes: Option<u64>,
}

#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
#[serde(tag = "req", rename_all = "snake_case")]
pub enum Request {
    /// Who is there: daemon pid, version, home.
    Hello,
    /// Everything: tasks (with live fields), groups, settings.
    Status,
    /// Wait until the state's revision is above `since` (or the timeout passes), then
    /// answer with the current revision: cheap change notification for clients.
    Wait {
        since: u64,
        timeout_ms: u64,
    },
    Add(AddTask),
    /// Queue a sweep: all its tasks or none.
    AddSweep(AddSweep),
    /// Kill a running task: graceful (SIGTERM, SIGKILL after the stop timeout) when no
    /// signal is given, else send that signal once.
    Kill {
        id: u64,
        signal: Option<String>,
        timeout_s: Option<f64>,
    },
    /// Pause a running task (SIGSTOP to its group) or hold a queued one; pause a group's
    /// scheduling, and with `wait == false` also its running tasks.
    Pause {
        target: Target,
        wait: bool,
    },
    /// Undo a pause (SIGCONT / release the hold / let the group schedule again).
    Resume {
        target: Target,
    },
    /// Queue a finished, failed or stopped task again from scratch, in a new run folder.
    Restart {
        id: u64,
    },
    /// Queue a stopped, failed, killed or lost task again to continue from its run
    /// folder's last checkpoint.
    ResumeRun {
        id: u64,
    },
    /// Take a task that is not running off the list (its run folder stays).
    Remove {
        id: u64,
    },
    GroupAdd {
        name: String,
        change: GroupChange,
    },
    GroupSet {
        name: String,
        change: GroupChange,
    },
    GroupRemove {
        name: String,
    },
    Settings(SettingsChange),
    /// The index of `<home>/cfg` with each file's validation state.
    Configs,
    /// Rescan `<home>/cfg` now (for file systems that deliver no change events).
    Rescan,
    /// Where a task's logs are.
    Logs {
        id: u64,
    },
    /// Stop the daemon (workers keep running and are re-adopted by the next daemon).
    Shutdown,
}

#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
#[serde(tag = "resp", rename_all = "snake_case")]
pub enum Response {
    /// The request failed; `details` holds one line per finding (file:line:col ...).
    Error {
        message: String,
        #[serde(default)]
        details: Vec<String>,
    },
    /// Done; `message` says what happened. `warnings` includes a failed state save.
    Ok {
        message: String,
        #[serde(default)]
        warnings: Vec<String>,
    },
    Hello {
        pid: u32,
        version: String,
        home: PathBuf,
        started: f64,
    },
    Snapshot(Box<Snapshot>),
    Rev {
        rev: u64,
    },
    Added {
        id: u64,
        run_id: String,
        run_dir: PathBuf,
        #[serde(default)]
        warnings: Vec<String>,
    },
    /// A sweep was queued: its id and its tasks' ids and run ids, in request order.
    SweepAdded {
        sweep: String,
        ids: Vec<u64>,
        run_ids: Vec<String>,
        #[serde(default)]
        warnings: Vec<String>,
    },
    Configs(ConfigIndex),
    Logs {
        run_dir: PathBuf,
        stdout: PathBuf,
        stderr: PathBuf,
    },
}

#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct Snapshot {
    /// Bumped on every change (tasks, groups, settings, config index).
    pub rev: u64,
    pub daemon_pid: u32,
    pub home: PathBuf,
    pub settings: Settings,
    pub groups: Vec<GroupView>,
    pub tasks: Vec<TaskView>,
    /// Sweeps by id (their tasks name them in `sweep`).
    #[serde(default)]
    pub sweeps: std::collections::BTreeMap<String, super::state::Sweep>,
    /// The last failed save of state.json, if the latest save failed.
    pub save_error: Option<String>,
}

#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct GroupView {
    pub name: String,
    #[serde(flatten)]
    pub group: Group,
    pub running: usize,
    pub queued: usize,
}

#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct TaskView {
    #[serde(flatten)]
    pub task: Task,
    /// Whether the config file differs from the snapshot taken at queue time (`None`:
    /// no config, or it cannot be read now).
    pub config_changed: Option<bool>,
    /// The run folder's status.json, for tasks with a worker.
    pub status: Option<crate::rundir::Status>,
}

#[derive(Clone, Debug, Default, PartialEq, Serialize, Deserialize)]
pub struct ConfigIndex {
    pub rev: u64,
    /// `<home>/cfg`.
    pub root: PathBuf,
    /// How changes are noticed: `notify` (with a polling fallback) or `polling` with why.
    pub watch: String,
    pub files: Vec<ConfigEntry>,
}

#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct ConfigEntry {
    /// Absolute path.
    pub path: PathBuf,
    /// Path relative to the cfg folder.
    pub rel: String,
    /// Unix seconds of the file's last modification.
    pub modified: f64,
    pub ok: bool,
    /// The job it would run (when valid).
    pub job: Option<JobKind>,
    /// Errors (when invalid) and warnings, each `file:line:col: severity: message`.
    pub diagnostics: Vec<String>,
}
