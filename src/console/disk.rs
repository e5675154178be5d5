//! The run folders on disk that are not the daemon's tasks: every run folder under the
//! home's `runs/` (runs made with `clipgan pretrain/train/eval` directly, copied from
//! another machine, whose task was removed) and under each `--logdir` (clipgan run
//! folders and TensorBoard runs, `rundir::find_runs`). The runs view lists them beside
//! the tasks as read-only runs: a synthetic [`TaskView`] each, with an id from
//! [`DISK_ID_BASE`] up (stable for the folder while the console runs, shown as `d<n>`)
//! and a state from its `status.json`; queue actions on them are refused (`runs.rs`).
use crate::rundir::{self, JobKind, RunSource, RunState, Status};
use crate::supervisor::protocol::TaskView;
use crate::supervisor::state::{Task, TaskState};
use std::collections::{BTreeMap, BTreeSet};
use std::path::{Path, PathBuf};

/// Ids of runs on disk start here (far above any task id the daemon gives).
pub const DISK_ID_BASE: u64 = 1 << 40;

/// A status not rewritten for this long, in a state that is not final, is a worker that
/// died without writing its end (killed, crashed, machine restarted): shown as `lost`.
pub const STALE_STATUS_S: f64 = 120.0;

pub fn is_disk_id(id: u64) -> bool {
    id >= DISK_ID_BASE
}

/// How an id is shown: the task id, or `d<n>` for a run on disk.
pub fn id_label(id: u64) -> String {
    if is_disk_id(id) {
        format!("d{}", id - DISK_ID_BASE + 1)
    } else {
        id.to_string()
    }
}

struct Found {
    view: TaskView,
    /// "train", "tensorboard", ...: shown where a task shows its job.
    kind: String,
}

#[derive(Default)]
pub struct DiskRuns {
    /// The folders looked in: the home's `runs/` first, then each `--logdir`.
    pub roots: Vec<PathBuf>,
    ids: BTreeMap<PathBuf, u64>,
    found: BTreeMap<u64, Found>,
}

impl DiskRuns {
    pub fn new(roots: Vec<PathBuf>) -> DiskRuns {
        DiskRuns { roots, ..DiskRuns::default() }
    }

    /// Look for run folders again (new ones appear, removed ones go) and re-read the
    /// status of those not final yet. `tasks` are the daemon's run folders (as given and
    /// canonical), left out.
    pub fn scan(&mut self, tasks: &BTreeSet<PathBuf>, now: f64) {
        let mut seen = BTreeSet::new();
        for (i, root) in self.roots.iter().enumerate() {
            let from_home = i == 0;
            for (dir, source) in rundir::find_runs(root) {
                // The daemon's paths may name the folder another way (a symlinked home).
                let canonical = std::fs::canonicalize(&dir).unwrap_or_else(|_| dir.clone());
                if tasks.contains(&dir) || tasks.contains(&canonical) || !seen.insert(dir.clone()) {
                    continue;
                }
                let next = DISK_ID_BASE + self.ids.len() as u64;
                let id = *self.ids.entry(dir.clone()).or_insert(next);
                // A final status does not change; others are read again.
                let stale = self.found.get(&id).is_none_or(|f| f.view.status.as_ref().is_none_or(|s| !s.state.is_final()));
                if stale {
                    let name = match dir.strip_prefix(root) {
                        Ok(rel) if !rel.as_os_str().is_empty() => rel.display().to_string(),
                        _ => dir.file_name().map(|n| n.to_string_lossy().into_owned()).unwrap_or_else(|| dir.display().to_string()),
                    };
                    let found = describe(id, &dir, source, &name, if from_home { "runs/" } else { "logdir" }, now);
                    self.found.insert(id, found);
                }
            }
        }
        self.found.retain(|_, f| seen.contains(&f.view.task.run_dir));
    }

    /// The runs found, by id.
    pub fn views(&self) -> impl Iterator<Item = &TaskView> {
        self.found.values().map(|f| &f.view)
    }

    pub fn kind(&self, id: u64) -> Option<&str> {
        self.found.get(&id).map(|f| f.kind.as_str())
    }
}

/// A run folder as a read-only task: name and kind from `run.json` (TensorBoard runs:
/// their path under the root), state and times from `status.json`.
fn describe(id: u64, dir: &Path, source: RunSource, name: &str, group: &str, now: f64) -> Found {
    let manifest = match source {
        RunSource::Clipgan => rundir::RunDir::open(dir).and_then(|d| d.manifest()).ok(),
        RunSource::TensorBoard => None,
    };
    let status: Option<Status> = match source {
        RunSource::Clipgan => rundir::read_status(dir).ok().flatten(),
        RunSource::TensorBoard => None,
    };
    let modified = std::fs::metadata(dir).and_then(|m| m.modified()).ok().and_then(|t| t.duration_since(std::time::UNIX_EPOCH).ok());
    let modified = modified.map_or(now, |d| d.as_secs_f64());
    let (state, message) = match (&status, source) {
        (_, RunSource::TensorBoard) => (TaskState::Finished, "TensorBoard event files (read-only)".to_string()),
        (None, _) => (TaskState::Lost, "no status.json".to_string()),
        (Some(s), _) => match s.state {
            RunState::Finished => (TaskState::Finished, s.message.clone()),
            RunState::Stopped => (TaskState::Stopped, s.message.clone()),
            RunState::Failed => (TaskState::Failed, s.message.clone()),
            RunState::Diverged => (TaskState::Diverged, s.message.clone()),
            _ if now - s.updated > STALE_STATUS_S => (
                TaskState::Lost,
                format!("{:?} but its status is {} s old: the worker is gone", s.state, (now - s.updated) as u64).to_lowercase(),
            ),
            _ => (TaskState::Running, s.message.clone()),
        },
    };
    let kind = match (&manifest, source) {
        (_, RunSource::TensorBoard) => "tensorboard".to_string(),
        (Some(m), _) => m.job.clone(),
        (None, _) => "run".to_string(),
    };
    let label = manifest.as_ref().map(|m| m.name.clone()).filter(|n| !n.is_empty()).unwrap_or_else(|| name.to_string());
    let final_state = state.is_final();
    let task = Task {
        id,
        label: Some(label),
        // Not shown for runs on disk (their `kind` is); a run of a kind this clipgan does
        // not know still needs one.
        job: manifest.as_ref().and_then(|m| m.job.parse().ok()).unwrap_or(JobKind::FakeRun),
        config: None,
        config_hash: None,
        args: Vec::new(),
        group: group.to_string(),
        priority: 0,
        after: Vec::new(),
        after_any: Vec::new(),
        retries: 0,
        retried: 0,
        state,
        attempts: 0,
        run_id: dir.file_name().map(|n| n.to_string_lossy().into_owned()).unwrap_or_default(),
        run_dir: dir.to_path_buf(),
        previous_runs: Vec::new(),
        resume_next: false,
        queued_at: manifest.as_ref().map_or(modified, |m| m.created),
        started_at: status.as_ref().map(|s| s.started).filter(|&t| t > 0.0),
        ended_at: if final_state { Some(status.as_ref().map_or(modified, |s| s.updated)) } else { None },
        slot: None,
        gpus: None,
        procs: None,
        exit: None,
        kill: None,
        message,
        overrides: Vec::new(),
        slurm: None,
        sweep: None,
        pruned: None,
    };
    Found { view: TaskView { task, config_changed: None, status }, kind }
}
