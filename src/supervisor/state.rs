//! The daemon's persisted state (`<home>/.clipgan/state.json`): tasks, groups, settings.
//! Saved atomically after every change; a failed save keeps the previous file.
use super::procs::ProcId;
use super::slurm::{SlurmJob, SlurmOptions};
use crate::rundir::JobKind;
use crate::util::fsx;
use anyhow::{bail, Context, Result};
use serde::{Deserialize, Serialize};
use std::collections::BTreeMap;
use std::path::{Path, PathBuf};

/// Version of `state.json`'s layout.
pub const STATE_VERSION: u32 = 1;
pub const DEFAULT_GROUP: &str = "default";

#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct State {
    pub version: u32,
    pub next_id: u64,
    pub settings: Settings,
    pub groups: BTreeMap<String, Group>,
    pub tasks: Vec<Task>,
    /// Sweeps by id (`sweep-N`): tasks queued together by `clipgan sweep`. Absent in
    /// state files written before sweeps existed.
    #[serde(default)]
    pub sweeps: BTreeMap<String, Sweep>,
    /// The number of the next sweep id.
    #[serde(default = "one")]
    pub next_sweep: u64,
}

fn one() -> u64 {
    1
}

impl Default for State {
    fn default() -> State {
        let mut groups = BTreeMap::new();
        groups.insert(DEFAULT_GROUP.to_string(), Group::default());
        State {
            version: STATE_VERSION,
            next_id: 1,
            settings: Settings::default(),
            groups,
            tasks: Vec::new(),
            sweeps: BTreeMap::new(),
            next_sweep: 1,
        }
    }
}

/// What a sweep is: its tasks carry its id (`Task::sweep`) and their own overrides.
#[derive(Clone, Debug, Default, PartialEq, Serialize, Deserialize)]
#[serde(default)]
pub struct Sweep {
    /// A name for people (`--name`, else the config file's stem).
    pub name: String,
    /// The config every member starts from (absolute).
    pub config: Option<PathBuf>,
    /// The dotted keys the members vary (`CLIPGAN.SEED` included when seeds vary).
    pub keys: Vec<String>,
    /// Unix seconds when it was queued.
    pub created: f64,
    /// Its pruning (`--prune median ...`); absent: none (and in older state files).
    pub prune: Option<super::prune::PruneSpec>,
}

/// Daemon-wide settings (`clipgan queue settings`).
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
#[serde(default)]
pub struct Settings {
    /// Seconds between SIGTERM and SIGKILL for a graceful stop.
    pub stop_timeout_s: f64,
    /// Size cap of each of a run's `logs/stdout.log` and `logs/stderr.log`.
    pub log_cap_bytes: u64,
}

impl Default for Settings {
    fn default() -> Settings {
        Settings { stop_timeout_s: 60.0, log_cap_bytes: 16 << 20 }
    }
}

#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
#[serde(default)]
pub struct Group {
    /// How many of the group's tasks run at once.
    pub slots: usize,
    /// GPU ids handed out to slots through CUDA_VISIBLE_DEVICES (see [`Group::gpus_for_slot`]).
    pub gpus: Vec<String>,
    /// No new task of the group starts while paused.
    pub paused: bool,
    /// Why it is paused (by the user, after a failure, after a daemon restart).
    pub paused_reason: String,
    /// Pause the group when one of its tasks fails (for good, retries used up).
    pub pause_on_failure: bool,
    /// A shell command run when a task of the group ends for good (docs/supervisor.md).
    pub on_finish: Option<String>,
    /// Run the group's tasks through Slurm (`sbatch`) instead of on this machine; its
    /// `slots` then count the tasks submitted at once (docs/slurm.md).
    pub slurm: Option<SlurmOptions>,
}

impl Default for Group {
    fn default() -> Group {
        Group {
            slots: 1,
            gpus: Vec::new(),
            paused: false,
            paused_reason: String::new(),
            pause_on_failure: false,
            on_finish: None,
            slurm: None,
        }
    }
}

impl Group {
    /// The CUDA_VISIBLE_DEVICES of a slot: with at least as many GPUs as slots each slot
    /// gets its own share (4 GPUs, 2 slots: "0,1" and "2,3"); with fewer, slots share
    /// them round-robin. `None` when the group has no GPU list (the variable is left as
    /// the daemon found it).
    pub fn gpus_for_slot(&self, slot: usize) -> Option<String> {
        if self.gpus.is_empty() {
            return None;
        }
        let n = self.gpus.len();
        let slots = self.slots.max(1);
        if n >= slots {
            let per = n / slots;
            Some(self.gpus[slot * per..(slot + 1) * per].join(","))
        } else {
            Some(self.gpus[slot % n].clone())
        }
    }
}

#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum TaskState {
    /// Waiting for a slot, its dependencies, or its group to be resumed.
    Queued,
    /// Queued but held back by the user (`pause ID` on a queued task).
    Held,
    /// Its worker runs (or is starting, or stopping after a kill request).
    Running,
    /// Its worker's process group is stopped (SIGSTOP).
    Paused,
    /// Final states.
    Finished,
    Failed,
    /// Stopped on request after saving a checkpoint (resumable).
    Stopped,
    Diverged,
    /// Ended by a signal the user asked for.
    Killed,
    /// Its processes vanished without a recorded outcome (e.g. while the daemon was down
    /// and the machine rebooted).
    Lost,
    /// Never started: a task it depends on (`--after`) did not succeed.
    DepFailed,
    /// A sweep member stopped by its sweep's pruning (checkpointed, resumable with
    /// `resume-run`); not a failure.
    Pruned,
}

impl TaskState {
    pub fn is_final(self) -> bool {
        !matches!(self, TaskState::Queued | TaskState::Held | TaskState::Running | TaskState::Paused)
    }

    /// Whether a worker process exists for it.
    pub fn is_active(self) -> bool {
        matches!(self, TaskState::Running | TaskState::Paused)
    }

    pub fn name(self) -> &'static str {
        match self {
            TaskState::Queued => "queued",
            TaskState::Held => "held",
            TaskState::Running => "running",
            TaskState::Paused => "paused",
            TaskState::Finished => "finished",
            TaskState::Failed => "failed",
            TaskState::Stopped => "stopped",
            TaskState::Diverged => "diverged",
            TaskState::Killed => "killed",
            TaskState::Lost => "lost",
            TaskState::DepFailed => "dep_failed",
            TaskState::Pruned => "pruned",
        }
    }
}

/// The processes of a running attempt.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct ProcInfo {
    pub attempt: u32,
    /// The shim (`clipgan __shim`) supervising the worker.
    pub shim: ProcId,
    /// The worker, once the shim has reported it (its pid is also its process group id).
    pub worker: Option<ProcId>,
}

/// How an attempt ended (from the shim's `exit.json`, or what the daemon found).
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct ExitInfo {
    pub attempt: u32,
    pub code: Option<i32>,
    pub signal: Option<i32>,
    pub ended: f64,
}

/// A kill the user asked for, not yet seen through.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct KillRequest {
    pub signal: i32,
    /// Whether the signal has reached the worker's group (it is held while the worker's
    /// pid is not known yet).
    pub sent: bool,
    /// For a graceful stop: Unix seconds after which SIGKILL follows.
    pub escalate_at: Option<f64>,
    /// Asked for by the sweep's pruning: the task ends `pruned` (not stopped or killed).
    #[serde(default)]
    pub prune: bool,
}

/// Why the sweep's pruning stopped a task: its metric at a step against the median of
/// the other members there.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct Pruned {
    pub metric: String,
    pub step: u64,
    pub value: f64,
    pub median: f64,
    pub others: usize,
}

#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct Task {
    pub id: u64,
    #[serde(default)]
    pub label: Option<String>,
    pub job: JobKind,
    /// The config file (absolute), as queued.
    #[serde(default)]
    pub config: Option<PathBuf>,
    /// Hash of the config text at queue time (snapshot in the run folder).
    #[serde(default)]
    pub config_hash: Option<String>,
    /// Extra arguments for the job (after `--`).
    #[serde(default)]
    pub args: Vec<String>,
    /// `--set KEY=VALUE` overrides of the config, passed on to the worker.
    #[serde(default)]
    pub overrides: Vec<String>,
    /// The sweep this task belongs to (a key of `State::sweeps`).
    #[serde(default)]
    pub sweep: Option<String>,
    pub group: String,
    #[serde(default)]
    pub priority: i32,
    /// Start only after these finished successfully.
    #[serde(default)]
    pub after: Vec<u64>,
    /// Start only after these ended, whatever the outcome.
    #[serde(default)]
    pub after_any: Vec<u64>,
    /// Automatic retries allowed after a failure.
    #[serde(default)]
    pub retries: u32,
    /// Automatic retries used so far.
    #[serde(default)]
    pub retried: u32,
    pub state: TaskState,
    /// Attempts started in the current run folder.
    #[serde(default)]
    pub attempts: u32,
    pub run_id: String,
    pub run_dir: PathBuf,
    /// Run folders of earlier attempts from scratch (`restart`); kept on disk.
    #[serde(default)]
    pub previous_runs: Vec<String>,
    /// The next start continues from the run folder's last checkpoint (`--resume`).
    #[serde(default)]
    pub resume_next: bool,
    pub queued_at: f64,
    #[serde(default)]
    pub started_at: Option<f64>,
    #[serde(default)]
    pub ended_at: Option<f64>,
    #[serde(default)]
    pub slot: Option<usize>,
    #[serde(default)]
    pub gpus: Option<String>,
    #[serde(default)]
    pub procs: Option<ProcInfo>,
    #[serde(default)]
    pub exit: Option<ExitInfo>,
    #[serde(default)]
    pub kill: Option<KillRequest>,
    /// A one-line explanation of the state (why it failed, was lost, is waiting...).
    #[serde(default)]
    pub message: String,
    /// Its job in Slurm, for a task of a Slurm group that was submitted.
    #[serde(default)]
    pub slurm: Option<SlurmJob>,
    /// Set when its sweep's pruning stopped it; a task resumed after that is not
    /// pruned again (its user chose to let it go on).
    #[serde(default)]
    pub pruned: Option<Pruned>,
}

impl Task {
    /// Pid / process group of the worker when known.
    pub fn worker_pgid(&self) -> Option<i32> {
        self.procs.as_ref().and_then(|p| p.worker).map(|w| w.pid as i32)
    }
}

/// Where the state is written. Production writes `state.json` atomically; tests inject a
/// failing writer to check that a failed save (a full disk) keeps the old file and is
/// reported.
pub type StateWriter = Box<dyn FnMut(&Path, &[u8]) -> Result<()> + Send>;

pub fn atomic_writer() -> StateWriter {
    Box::new(fsx::atomic_write)
}

/// Read `state.json`; a missing file is a fresh state. A file that cannot be read is an
/// error naming it (the daemon refuses to start rather than forget the queue).
pub fn load(path: &Path) -> Result<State> {
    let bytes = match std::fs::read(path) {
        Ok(b) => b,
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => return Ok(State::default()),
        Err(e) => return Err(e).with_context(|| format!("cannot read the daemon state {}", path.display())),
    };
    let state: State = serde_json::from_slice(&bytes).with_context(|| {
        format!(
            "the daemon state {} is corrupt; it is left as it is: move it away to start with an empty queue (run folders are not affected)",
            path.display()
        )
    })?;
    if state.version > STATE_VERSION {
        bail!("{} was written by a newer clipgan (state version {}; this one reads {STATE_VERSION})", path.display(), state.version);
    }
    let mut state = state;
    for warning in check(&mut state).map_err(|problem| {
        anyhow::anyhow!(
            "the daemon state {} is inconsistent: {problem}; it is left as it is: fix it or move it away to start with an empty queue (run folders are not affected)",
            path.display()
        )
    })? {
        eprintln!("clipgan: warning: {}: {warning}", path.display());
    }
    Ok(state)
}

/// Check a loaded state: repair what is safe (returned as warnings to log), refuse the
/// rest (a hand-edited or damaged file would otherwise give two tasks one id, or tasks
/// that wait forever).
pub fn check(state: &mut State) -> std::result::Result<Vec<String>, String> {
    let mut warnings = Vec::new();
    let mut ids = std::collections::HashSet::new();
    for t in &state.tasks {
        if !ids.insert(t.id) {
            return Err(format!("task {} is listed twice", t.id));
        }
    }
    for t in &state.tasks {
        for d in t.after.iter().chain(&t.after_any) {
            if *d == t.id {
                return Err(format!("task {} waits for itself", t.id));
            }
            if !ids.contains(d) {
                return Err(format!("task {} waits for task {d}, which does not exist", t.id));
            }
        }
        if !state.groups.contains_key(&t.group) {
            return Err(format!("task {} is in group {:?}, which does not exist", t.id, crate::util::cut(&t.group, 40)));
        }
    }
    if let Some(cycle) = dependency_cycle(&state.tasks) {
        return Err(format!("tasks {cycle:?} wait for each other in a circle"));
    }
    let max_id = state.tasks.iter().map(|t| t.id).max().unwrap_or(0);
    if state.next_id <= max_id {
        warnings.push(format!("next_id {} is not above the largest task id {max_id}; set to {}", state.next_id, max_id + 1));
        state.next_id = max_id + 1;
    }
    Ok(warnings)
}

/// The ids of one circle of tasks waiting for each other, if there is one.
fn dependency_cycle(tasks: &[Task]) -> Option<Vec<u64>> {
    let index: std::collections::HashMap<u64, &Task> = tasks.iter().map(|t| (t.id, t)).collect();
    // 0: not seen, 1: on the current path, 2: done. Iterative, so no depth limit.
    let mut mark: std::collections::HashMap<u64, u8> = std::collections::HashMap::new();
    for start in tasks {
        if mark.contains_key(&start.id) {
            continue;
        }
        let mut path: Vec<(u64, usize)> = vec![(start.id, 0)];
        mark.insert(start.id, 1);
        while let Some(&mut (id, ref mut next)) = path.last_mut() {
            let t = index[&id];
            let deps: Vec<u64> = t.after.iter().chain(&t.after_any).copied().collect();
            if let Some(&d) = deps.get(*next) {
                *next += 1;
                match mark.get(&d).copied().unwrap_or(0) {
                    0 if index.contains_key(&d) => {
                        mark.insert(d, 1);
                        path.push((d, 0));
                    }
                    1 => {
                        let from = path.iter().position(|(p, _)| *p == d).unwrap_or(0);
                        return Some(path[from..].iter().map(|(p, _)| *p).collect());
                    }
                    _ => {}
                }
                continue;
            }
            mark.insert(id, 2);
            path.pop();
        }
    }
    None
}

pub fn to_bytes(state: &State) -> Vec<u8> {
    // One compact line: it is rewritten on every change, and can hold thousands of tasks.
    let mut b = serde_json::to_vec(state).expect("the state always serialises");
    b.push(b'\n');
    b
}
