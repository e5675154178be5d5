//! Every change of the daemon's state, in one place: client requests, attempts that
//! end, kills that escalate, scheduling, and recovery after a restart. No I/O loop here
//! (that is `daemon`): the daemon calls [`Core::handle`] for each request,
//! [`Core::tick`] when a child exits or a timer fires, and [`Core::commit`] after each
//! batch, which schedules and saves. So tests can drive it directly.
//!
//! This file holds the `Core` itself: opening, dispatching requests, snapshots, saving.
//! The handlers of the requests live one family per file (`add`, `kill`, `pause`,
//! `restart`, `remove`, `groups`, `settings`, `sweep`); process handling in `recovery` (at open),
//! `check` (each tick: workers, attempt outcomes, lost tasks), `prune` (each tick: sweep
//! members worse than the median), `hooks` (finish hooks),
//! `schedule` (dependencies, slots, starting workers) and `slurm` (tasks of Slurm groups:
//! submission, job states, kills and pauses through Slurm's commands).
mod add;
mod check;
mod groups;
mod hooks;
mod kill;
mod pause;
mod prune;
mod recovery;
mod remove;
mod restart;
mod schedule;
mod settings;
mod slurm;
mod sweep;

use super::cfgindex::CfgIndex;
use super::protocol::*;
use super::state::*;
use super::Paths;
use crate::rundir::{RunDir, STDERR_LOG, STDOUT_LOG};
use crate::util::{fsx, unix_now};
use anyhow::Result;
use std::collections::HashMap;
use std::path::{Path, PathBuf};
use std::process::Child;
use std::time::SystemTime;

pub struct Core {
    pub paths: Paths,
    pub state: State,
    writer: StateWriter,
    /// The `clipgan` binary that shims and workers run.
    exe: PathBuf,
    rev: u64,
    /// Changed since the last save.
    dirty: bool,
    /// Changed in a way clients should see but that need not be saved by itself.
    unsaved: bool,
    save_error: Option<String>,
    started: f64,
    pub cfg: CfgIndex,
    /// Our child processes (shims, hooks), reaped on each tick.
    children: Vec<Child>,
    /// Config text hashes by path, valid while (size, mtime) hold.
    hashes: HashMap<PathBuf, ((u64, Option<SystemTime>), String)>,
    /// Set by a `shutdown` request.
    pub shutdown: bool,
    /// The states of the Slurm tasks' jobs, polled off the loop.
    slurm: crate::supervisor::slurm::Poller,
    /// The metrics of the sweeps that prune, read off the loop.
    pruner: crate::supervisor::prune_watch::Watcher,
}

/// Hash of a config's text, to tell whether the file changed after queueing.
pub fn text_hash(text: &str) -> String {
    format!("crc32:{:08x}:{}", crc32fast::hash(text.as_bytes()), text.len())
}

fn err(message: impl Into<String>) -> Response {
    Response::Error { message: message.into(), details: Vec::new() }
}

fn ok(message: impl Into<String>) -> Response {
    Response::Ok { message: message.into(), warnings: Vec::new() }
}

impl Core {
    /// Load the state and recover from however the last daemon ended: re-adopt workers
    /// that still run, settle those that ended, pause groups with queued work.
    pub fn open(paths: Paths, writer: StateWriter, exe: PathBuf) -> Result<Core> {
        let state = load(&paths.state)?;
        fsx::create_dir_all(&paths.runs)?;
        let cfg = CfgIndex::new(&paths.cfg);
        let mut core = Core {
            paths,
            state,
            writer,
            exe,
            rev: 1,
            dirty: true,
            unsaved: false,
            save_error: None,
            started: unix_now(),
            cfg,
            children: Vec::new(),
            hashes: HashMap::new(),
            shutdown: false,
            slurm: Default::default(),
            pruner: Default::default(),
        };
        core.recover();
        core.cfg.rescan();
        Ok(core)
    }

    pub fn rev(&self) -> u64 {
        self.rev
    }

    pub fn save_error(&self) -> Option<&str> {
        self.save_error.as_deref()
    }

    /// Note a change that clients should hear of but that is not persisted (the config
    /// index).
    pub fn bump(&mut self) {
        self.rev += 1;
    }

    fn idx(&self, id: u64) -> Option<usize> {
        self.state.tasks.iter().position(|t| t.id == id)
    }

    pub fn handle(&mut self, req: Request) -> Response {
        match req {
            Request::Hello => Response::Hello {
                pid: std::process::id(),
                version: env!("CARGO_PKG_VERSION").into(),
                home: self.paths.home.clone(),
                started: self.started,
            },
            Request::Status => Response::Snapshot(Box::new(self.snapshot())),
            // Answered by the connection itself (it must not block the core).
            Request::Wait { .. } => Response::Rev { rev: self.rev },
            Request::Add(a) => self.add(a),
            Request::AddSweep(s) => self.add_sweep(s),
            Request::Kill { id, signal, timeout_s } => self.kill(id, signal.as_deref(), timeout_s),
            Request::Pause { target, wait } => self.pause(target, wait),
            Request::Resume { target } => self.resume(target),
            Request::Restart { id } => self.restart(id),
            Request::ResumeRun { id } => self.resume_run(id),
            Request::Remove { id } => self.remove(id),
            Request::GroupAdd { name, change } => self.group_add(name, change),
            Request::GroupSet { name, change } => self.group_set(&name, change),
            Request::GroupRemove { name } => self.group_remove(&name),
            Request::Settings(s) => self.settings(s),
            Request::Configs => Response::Configs(self.cfg.view(self.rev)),
            Request::Rescan => {
                if self.cfg.rescan() {
                    self.bump();
                }
                Response::Configs(self.cfg.view(self.rev))
            }
            Request::Logs { id } => match self.idx(id) {
                None => err(format!("no task {id}")),
                Some(i) => {
                    let d = &self.state.tasks[i].run_dir;
                    Response::Logs { run_dir: d.clone(), stdout: d.join(STDOUT_LOG), stderr: d.join(STDERR_LOG) }
                }
            },
            Request::Shutdown => {
                self.shutdown = true;
                ok("the daemon stops; workers keep running and the next daemon re-adopts them")
            }
        }
    }

    pub fn snapshot(&mut self) -> Snapshot {
        let mut tasks = Vec::with_capacity(self.state.tasks.len());
        for i in 0..self.state.tasks.len() {
            let config_changed = self.config_changed(i);
            let t = &self.state.tasks[i];
            let status = if t.state.is_active() { RunDir::open(&t.run_dir).ok().and_then(|d| d.status().ok().flatten()) } else { None };
            tasks.push(TaskView { task: t.clone(), config_changed, status });
        }
        let groups = self
            .state
            .groups
            .iter()
            .map(|(name, g)| GroupView {
                name: name.clone(),
                group: g.clone(),
                running: self.state.tasks.iter().filter(|t| &t.group == name && t.state.is_active()).count(),
                queued: self.state.tasks.iter().filter(|t| &t.group == name && t.state == TaskState::Queued).count(),
            })
            .collect();
        Snapshot {
            rev: self.rev,
            daemon_pid: std::process::id(),
            home: self.paths.home.clone(),
            settings: self.state.settings.clone(),
            groups,
            tasks,
            sweeps: self.state.sweeps.clone(),
            save_error: self.save_error.clone(),
        }
    }

    fn config_changed(&mut self, i: usize) -> Option<bool> {
        let t = &self.state.tasks[i];
        let (path, queued) = (t.config.clone()?, t.config_hash.clone()?);
        let meta = std::fs::metadata(&path).ok()?;
        let sig = (meta.len(), meta.modified().ok());
        let now = match self.hashes.get(&path) {
            Some((s, h)) if *s == sig => h.clone(),
            _ => {
                let h = text_hash(&std::fs::read_to_string(&path).ok()?);
                self.hashes.insert(path, (sig, h.clone()));
                h
            }
        };
        Some(now != queued)
    }

    /// Schedule, then save if anything changed. Returns warnings for the clients of
    /// this batch (a failed save).
    pub fn commit(&mut self) -> Vec<String> {
        self.schedule();
        if !self.dirty {
            if std::mem::take(&mut self.unsaved) {
                self.rev += 1;
            }
            return Vec::new();
        }
        self.dirty = false;
        self.unsaved = false;
        self.rev += 1;
        let bytes = to_bytes(&self.state);
        match (self.writer)(&self.paths.state, &bytes) {
            Ok(()) => {
                self.save_error = None;
                Vec::new()
            }
            Err(e) => {
                let msg = format!("the daemon state was NOT saved ({e:#}); the previous state file is kept and the next change retries");
                eprintln!("clipgan daemon: {msg}");
                self.save_error = Some(msg.clone());
                // Retry at the next commit.
                self.dirty = true;
                vec![msg]
            }
        }
    }

    /// Whether any task has a live process (the daemon's tick then matters).
    pub fn has_active(&self) -> bool {
        self.state.tasks.iter().any(|t| t.state.is_active())
    }
}

fn read_json<T: serde::de::DeserializeOwned>(path: &Path) -> Option<T> {
    serde_json::from_slice(&std::fs::read(path).ok()?).ok()
}

/// Whether the run folder's status names a checkpoint file that exists.
pub fn has_checkpoint(run_dir: &Path) -> bool {
    RunDir::open(run_dir)
        .ok()
        .and_then(|d| d.status().ok().flatten())
        .and_then(|s| s.last_checkpoint)
        .is_some_and(|c| run_dir.join(c).is_file())
}
