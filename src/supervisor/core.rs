//! Every change of the daemon's state, in one place: client requests, attempts that
//! end, kills that escalate, scheduling, and recovery after a restart. No I/O loop here
//! (that is `daemon`): the daemon calls [`Core::handle`] for each request,
//! [`Core::tick`] when a child exits or a timer fires, and [`Core::commit`] after each
//! batch, which schedules and saves. So tests can drive it directly.
use super::cfgindex::CfgIndex;
use super::procs::{self, ProcId};
use super::protocol::*;
use super::shim::{ExitRecord, WorkerRecord};
use super::state::*;
use super::Paths;
use crate::rundir::{Manifest, RunDir, RunState, MANIFEST_FILE, STDERR_LOG, STDOUT_LOG};
use crate::rundir::{CONFIG_SNAPSHOT_FILE, EXIT_FILE, SHIM_LOG, WORKER_FILE};
use crate::util::{fsx, unix_now};
use anyhow::{Context, Result};
use std::collections::HashMap;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::SystemTime;

pub const JOBS: &[&str] = &["pretrain", "train", "eval", "fake-run"];

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

    fn recover(&mut self) {
        for i in 0..self.state.tasks.len() {
            let t = &self.state.tasks[i];
            match t.state {
                TaskState::Running | TaskState::Paused => {
                    if self.state.tasks[i].procs.is_none() {
                        self.lost(i, "the daemon stopped before it recorded the worker's process");
                    } else {
                        self.check(i);
                        let t = &mut self.state.tasks[i];
                        if t.state.is_active() {
                            t.message = "re-adopted after a daemon restart".into();
                        }
                    }
                }
                // A start the last daemon did but did not save (it died in between): the
                // shim's worker.json tells, and its worker is adopted, not started twice.
                TaskState::Queued | TaskState::Held => {
                    if let Some(w) = read_json::<WorkerRecord>(&t.run_dir.join(WORKER_FILE)) {
                        if w.attempt > t.attempts && (w.shim.alive() || w.worker.alive()) {
                            let t = &mut self.state.tasks[i];
                            t.attempts = w.attempt;
                            t.state = TaskState::Running;
                            t.procs = Some(ProcInfo { attempt: w.attempt, shim: w.shim, worker: Some(w.worker) });
                            t.started_at = Some(w.started);
                            t.message = "re-adopted after a daemon restart (its start was not saved)".into();
                        }
                    }
                }
                _ => {}
            }
        }
        // Nothing starts by surprise: a group with queued work waits for `resume`.
        let names: Vec<String> = self.state.groups.keys().cloned().collect();
        for name in names {
            let queued = self.state.tasks.iter().any(|t| t.group == name && t.state == TaskState::Queued);
            let g = self.state.groups.get_mut(&name).expect("listed");
            if queued && !g.paused {
                g.paused = true;
                g.paused_reason = format!("the daemon restarted with queued tasks; `clipgan resume --group {name}` starts them");
            }
        }
        self.dirty = true;
    }

    fn idx(&self, id: u64) -> Option<usize> {
        self.state.tasks.iter().position(|t| t.id == id)
    }

    // ---------------------------------------------------------------- requests

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

    fn add(&mut self, a: AddTask) -> Response {
        let group = a.group.clone().unwrap_or_else(|| DEFAULT_GROUP.to_string());
        if !self.state.groups.contains_key(&group) {
            return err(format!("no group {group:?}; create it with `clipgan groups add {group} --slots N`"));
        }
        for d in a.after.iter().chain(&a.after_any) {
            if self.idx(*d).is_none() {
                return err(format!("no task {d} to depend on"));
            }
        }
        if let Some(j) = &a.job {
            if !JOBS.contains(&j.as_str()) {
                return err(format!("unknown job {j:?}; expected one of: {}", JOBS.join(", ")));
            }
        }
        let mut warnings = Vec::new();
        let mut loaded = None;
        if let Some(path) = &a.config {
            let text = match std::fs::read_to_string(path) {
                Ok(t) => t,
                Err(e) => return err(format!("cannot read the config {}: {e}; nothing was queued", path.display())),
            };
            match crate::config::parse(path, &text, crate::config::base_dir_for(path)) {
                Ok(c) => loaded = Some(c),
                Err(e) => {
                    return Response::Error {
                        message: format!("{} is not a valid config; nothing was queued", path.display()),
                        details: e.0.iter().map(|d| d.to_string()).collect(),
                    }
                }
            }
        }
        let inferred = loaded.as_ref().map(|c| c.config.job().name().to_string());
        let job = match (&a.job, &inferred) {
            (Some(j), Some(i)) if j != i && j != "fake-run" => {
                warnings.push(format!("the config is a {i} config, but the task runs {j} as asked"));
                j.clone()
            }
            (Some(j), _) => j.clone(),
            (None, Some(i)) => i.clone(),
            (None, None) => return err("give a config file, or --job fake-run"),
        };
        if job != "fake-run" && loaded.is_none() {
            return err(format!("the {job} job needs a config file"));
        }
        if let Some(c) = &loaded {
            warnings.extend(c.warnings.iter().filter(|d| d.severity == crate::config::Severity::Warning).map(|d| d.to_string()));
        }
        let name = a
            .label
            .clone()
            .filter(|l| !l.trim().is_empty())
            .or_else(|| loaded.as_ref().map(|c| c.config.config_name.clone()).filter(|n| !n.is_empty()))
            .or_else(|| a.config.as_ref().and_then(|p| p.file_stem()).map(|s| s.to_string_lossy().into_owned()))
            .unwrap_or_else(|| "fake".into());
        let id = self.state.next_id;
        let (run_dir, config_hash) = match self.make_run_dir(&name, &job, a.config.as_deref(), loaded.as_ref().map(|c| c.text.as_str())) {
            Ok(x) => x,
            Err(e) => return err(format!("{e:#}; nothing was queued")),
        };
        let task = Task {
            id,
            label: a.label,
            job,
            config: a.config,
            config_hash,
            args: a.args,
            group,
            priority: a.priority,
            after: a.after,
            after_any: a.after_any,
            retries: a.retries,
            retried: 0,
            state: if a.held { TaskState::Held } else { TaskState::Queued },
            attempts: 0,
            run_id: run_dir.file_name().map(|n| n.to_string_lossy().into_owned()).unwrap_or_default(),
            run_dir: run_dir.clone(),
            previous_runs: Vec::new(),
            resume_next: false,
            queued_at: unix_now(),
            started_at: None,
            ended_at: None,
            slot: None,
            gpus: None,
            procs: None,
            exit: None,
            kill: None,
            message: String::new(),
        };
        let run_id = task.run_id.clone();
        self.state.next_id += 1;
        self.state.tasks.push(task);
        self.dirty = true;
        Response::Added { id, run_id, run_dir, warnings }
    }

    /// A new run folder with the config snapshot; returns it and the config's hash.
    fn make_run_dir(&self, name: &str, job: &str, config: Option<&Path>, text: Option<&str>) -> Result<(PathBuf, Option<String>)> {
        let dir = RunDir::create(&self.paths.runs, name, job, config)?;
        // run.json names the worker's command, not the daemon's.
        let mut m: Manifest = dir.read_json(MANIFEST_FILE)?;
        m.command = vec!["clipgan".into(), job.into()];
        if let Some(c) = config {
            m.command.extend(["--cfg".into(), c.display().to_string()]);
        }
        dir.write_json_atomic(MANIFEST_FILE, &m)?;
        let hash = match text {
            Some(t) => {
                fsx::atomic_write(&dir.file(CONFIG_SNAPSHOT_FILE), t.as_bytes())?;
                Some(text_hash(t))
            }
            None => None,
        };
        Ok((dir.path().to_path_buf(), hash))
    }

    fn kill(&mut self, id: u64, signal: Option<&str>, timeout_s: Option<f64>) -> Response {
        let Some(i) = self.idx(id) else { return err(format!("no task {id}")) };
        let t = &self.state.tasks[i];
        if !t.state.is_active() {
            return err(format!("task {id} is {}, not running; `clipgan remove {id}` takes a waiting task off the queue", t.state.name()));
        }
        let (sig, escalate_at) = match signal {
            Some(s) => match procs::parse_signal(s) {
                Ok(sig) => (sig, None),
                Err(e) => return err(format!("{e:#}")),
            },
            None => (libc::SIGTERM, Some(unix_now() + timeout_s.unwrap_or(self.state.settings.stop_timeout_s).max(0.0))),
        };
        self.state.tasks[i].kill = Some(KillRequest { signal: sig, sent: false, escalate_at });
        self.deliver(i);
        self.dirty = true;
        let how = match escalate_at {
            Some(_) => "asked to stop (SIGTERM: checkpoint and exit; SIGKILL after the stop timeout)".to_string(),
            None => format!("sent {}", procs::signal_name(sig)),
        };
        ok(format!("task {id}: {how}"))
    }

    /// Send what is pending to the worker's group once its pid is known: a kill request,
    /// and the SIGSTOP of a paused task.
    fn deliver(&mut self, i: usize) {
        let t = &mut self.state.tasks[i];
        let Some(pgid) = t.worker_pgid() else { return };
        if let Some(k) = &mut t.kill {
            if !k.sent {
                k.sent = true;
                let _ = procs::signal_group(pgid, k.signal);
                if t.state == TaskState::Paused {
                    // A stopped process only acts on the signal once continued.
                    let _ = procs::signal_group(pgid, libc::SIGCONT);
                    t.state = TaskState::Running;
                }
                self.dirty = true;
            }
        } else if t.state == TaskState::Paused {
            let _ = procs::signal_group(pgid, libc::SIGSTOP);
        }
    }

    fn pause(&mut self, target: Target, wait: bool) -> Response {
        match target {
            Target::Task(id) => {
                let Some(i) = self.idx(id) else { return err(format!("no task {id}")) };
                let t = &mut self.state.tasks[i];
                match t.state {
                    TaskState::Queued => t.state = TaskState::Held,
                    TaskState::Running if t.kill.is_some() => return err(format!("task {id} is being stopped")),
                    TaskState::Running => {
                        t.state = TaskState::Paused;
                        if let Some(pgid) = t.worker_pgid() {
                            if let Err(e) = procs::signal_group(pgid, libc::SIGSTOP) {
                                t.state = TaskState::Running;
                                return err(format!("{e:#}"));
                            }
                        }
                    }
                    TaskState::Held | TaskState::Paused => return ok(format!("task {id} is already {}", t.state.name())),
                    s => return err(format!("task {id} is {}: nothing to pause", s.name())),
                }
                self.dirty = true;
                ok(format!("task {id} is {}", self.state.tasks[i].state.name()))
            }
            Target::Group(name) => {
                let Some(g) = self.state.groups.get_mut(&name) else { return err(format!("no group {name:?}")) };
                g.paused = true;
                g.paused_reason = "paused by the user".into();
                let mut n = 0;
                if !wait {
                    for t in self.state.tasks.iter_mut().filter(|t| t.group == name && t.state == TaskState::Running && t.kill.is_none()) {
                        t.state = TaskState::Paused;
                        if let Some(pgid) = t.worker_pgid() {
                            let _ = procs::signal_group(pgid, libc::SIGSTOP);
                        }
                        n += 1;
                    }
                }
                self.dirty = true;
                ok(format!("group {name} paused: no new task starts; {n} running task(s) paused"))
            }
        }
    }

    fn resume(&mut self, target: Target) -> Response {
        match target {
            Target::Task(id) => {
                let Some(i) = self.idx(id) else { return err(format!("no task {id}")) };
                let t = &mut self.state.tasks[i];
                match t.state {
                    TaskState::Held => t.state = TaskState::Queued,
                    TaskState::Paused => {
                        t.state = TaskState::Running;
                        if let Some(pgid) = t.worker_pgid() {
                            let _ = procs::signal_group(pgid, libc::SIGCONT);
                        }
                    }
                    TaskState::Queued | TaskState::Running => return ok(format!("task {id} is already {}", t.state.name())),
                    s => {
                        return err(format!(
                            "task {id} is {}; `resume` continues paused or held tasks; `clipgan resume-run {id}` continues a run from its last checkpoint",
                            s.name()
                        ))
                    }
                }
                self.dirty = true;
                ok(format!("task {id} is {}", self.state.tasks[i].state.name()))
            }
            Target::Group(name) => {
                let Some(g) = self.state.groups.get_mut(&name) else { return err(format!("no group {name:?}")) };
                g.paused = false;
                g.paused_reason.clear();
                let mut n = 0;
                for t in self.state.tasks.iter_mut().filter(|t| t.group == name && t.state == TaskState::Paused) {
                    t.state = TaskState::Running;
                    if let Some(pgid) = t.worker_pgid() {
                        let _ = procs::signal_group(pgid, libc::SIGCONT);
                    }
                    n += 1;
                }
                self.dirty = true;
                ok(format!("group {name} resumed; {n} paused task(s) continued"))
            }
        }
    }

    fn restart(&mut self, id: u64) -> Response {
        let Some(i) = self.idx(id) else { return err(format!("no task {id}")) };
        let t = &self.state.tasks[i];
        if !t.state.is_final() {
            return err(format!("task {id} is {}; kill it first to restart it", t.state.name()));
        }
        let (name, job, config) = (t.label.clone(), t.job.clone(), t.config.clone());
        let mut text = None;
        if let Some(path) = &config {
            match crate::config::load(path) {
                Ok(c) => text = Some(c.text),
                Err(e) => {
                    return Response::Error {
                        message: format!("{} is not a valid config now; task {id} was not restarted", path.display()),
                        details: e.0.iter().map(|d| d.to_string()).collect(),
                    }
                }
            }
        }
        let manifest_name = RunDir::open(&t.run_dir).and_then(|d| d.manifest()).map(|m| m.name).ok();
        let name = name.or(manifest_name).unwrap_or_else(|| "run".into());
        let (run_dir, hash) = match self.make_run_dir(&name, &job, config.as_deref(), text.as_deref()) {
            Ok(x) => x,
            Err(e) => return err(format!("{e:#}")),
        };
        let t = &mut self.state.tasks[i];
        t.previous_runs.push(t.run_id.clone());
        t.run_id = run_dir.file_name().map(|n| n.to_string_lossy().into_owned()).unwrap_or_default();
        t.run_dir = run_dir;
        t.config_hash = hash;
        t.attempts = 0;
        t.retried = 0;
        t.resume_next = false;
        t.exit = None;
        t.state = TaskState::Queued;
        t.started_at = None;
        t.ended_at = None;
        t.message = format!("restarted from scratch; earlier run folder {}", t.previous_runs.last().cloned().unwrap_or_default());
        self.dirty = true;
        ok(format!("task {id} queued again in a new run folder {}", self.state.tasks[i].run_id))
    }

    fn resume_run(&mut self, id: u64) -> Response {
        let Some(i) = self.idx(id) else { return err(format!("no task {id}")) };
        let t = &self.state.tasks[i];
        match t.state {
            TaskState::Stopped | TaskState::Failed | TaskState::Killed | TaskState::Lost | TaskState::Diverged | TaskState::DepFailed => {}
            s => return err(format!("task {id} is {}; only a stopped, failed, killed, lost or diverged run can be continued", s.name())),
        }
        let has_ckpt = has_checkpoint(&t.run_dir);
        if !has_ckpt && t.attempts > 0 {
            return err(format!(
                "run {} has no checkpoint to continue from; `clipgan restart {id}` starts it again from scratch",
                t.run_id
            ));
        }
        let t = &mut self.state.tasks[i];
        t.resume_next = has_ckpt;
        t.retried = 0;
        t.state = TaskState::Queued;
        t.ended_at = None;
        t.message = if has_ckpt { "queued to continue from its last checkpoint".into() } else { "queued again".into() };
        self.dirty = true;
        ok(format!("task {id}: {}", self.state.tasks[i].message))
    }

    fn remove(&mut self, id: u64) -> Response {
        let Some(i) = self.idx(id) else { return err(format!("no task {id}")) };
        let t = &self.state.tasks[i];
        if t.state.is_active() {
            return err(format!("task {id} is {}; kill it first", t.state.name()));
        }
        let (removed_state, final_) = (t.state, t.state.is_final());
        let waiting: Vec<u64> = self
            .state
            .tasks
            .iter()
            .filter(|d| !d.state.is_final() && (d.after.contains(&id) || d.after_any.contains(&id)))
            .map(|d| d.id)
            .collect();
        // A dependency that ended can go: what it meant for its dependents is settled
        // (success satisfies `--after`, any end satisfies `--after-any`).
        let blocked: Vec<u64> = self
            .state
            .tasks
            .iter()
            .filter(|d| waiting.contains(&d.id))
            .filter(|d| !final_ || (d.after.contains(&id) && removed_state != TaskState::Finished))
            .map(|d| d.id)
            .collect();
        if !blocked.is_empty() {
            return err(format!("task(s) {blocked:?} wait for task {id}; remove them first"));
        }
        for d in self.state.tasks.iter_mut() {
            d.after.retain(|x| *x != id);
            d.after_any.retain(|x| *x != id);
        }
        let t = self.state.tasks.remove(i);
        self.dirty = true;
        ok(format!("task {id} removed; its run folder {} stays", t.run_dir.display()))
    }

    fn group_add(&mut self, name: String, change: GroupChange) -> Response {
        if name.is_empty() || !name.chars().all(|c| c.is_ascii_alphanumeric() || c == '-' || c == '_') {
            return err(format!("invalid group name {name:?}: use letters, digits, - and _"));
        }
        if self.state.groups.contains_key(&name) {
            return err(format!("group {name} exists; `clipgan groups set {name} ...` changes it"));
        }
        self.state.groups.insert(name.clone(), Group::default());
        match self.group_set(&name, change) {
            Response::Error { message, details } => {
                self.state.groups.remove(&name);
                Response::Error { message, details }
            }
            _ => ok(format!("group {name} added")),
        }
    }

    fn group_set(&mut self, name: &str, c: GroupChange) -> Response {
        let Some(g) = self.state.groups.get_mut(name) else { return err(format!("no group {name:?}")) };
        if c.slots == Some(0) {
            return err("a group needs at least 1 slot");
        }
        if let Some(gpus) = &c.gpus {
            if let Some(bad) = gpus.iter().find(|s| s.is_empty() || !s.chars().all(|ch| ch.is_ascii_alphanumeric() || ch == '-')) {
                return err(format!("invalid GPU id {bad:?}"));
            }
        }
        if let Some(s) = c.slots {
            g.slots = s;
        }
        if let Some(v) = c.gpus {
            g.gpus = v;
        }
        if let Some(p) = c.pause_on_failure {
            g.pause_on_failure = p;
        }
        if let Some(h) = c.on_finish {
            g.on_finish = Some(h).filter(|h| !h.trim().is_empty());
        }
        self.dirty = true;
        ok(format!("group {name}: {} slot(s)", g.slots))
    }

    fn group_remove(&mut self, name: &str) -> Response {
        if name == DEFAULT_GROUP {
            return err("the default group cannot be removed");
        }
        if !self.state.groups.contains_key(name) {
            return err(format!("no group {name:?}"));
        }
        let live: Vec<u64> = self.state.tasks.iter().filter(|t| t.group == name && !t.state.is_final()).map(|t| t.id).collect();
        if !live.is_empty() {
            return err(format!("group {name} still has tasks {live:?}"));
        }
        self.state.groups.remove(name);
        self.dirty = true;
        ok(format!("group {name} removed"))
    }

    fn settings(&mut self, s: SettingsChange) -> Response {
        if let Some(t) = s.stop_timeout_s {
            if !(t.is_finite() && t >= 0.0) {
                return err("the stop timeout must be a number of seconds >= 0");
            }
            self.state.settings.stop_timeout_s = t;
        }
        if let Some(c) = s.log_cap_bytes {
            if c < 4096 {
                return err("the log cap must be at least 4096 bytes");
            }
            self.state.settings.log_cap_bytes = c;
        }
        self.dirty = true;
        ok(format!("stop timeout {} s, log cap {} bytes", self.state.settings.stop_timeout_s, self.state.settings.log_cap_bytes))
    }

    // ---------------------------------------------------------------- processes

    /// Reap children, learn what attempts did, escalate overdue kills.
    pub fn tick(&mut self) {
        self.children.retain_mut(|c| !matches!(c.try_wait(), Ok(Some(_)) | Err(_)));
        let now = unix_now();
        for i in 0..self.state.tasks.len() {
            if !self.state.tasks[i].state.is_active() {
                continue;
            }
            self.check(i);
            let t = &mut self.state.tasks[i];
            if let (Some(pgid), Some(k)) = (t.worker_pgid(), t.kill.as_mut()) {
                if k.sent && k.escalate_at.is_some_and(|at| now >= at) {
                    k.signal = libc::SIGKILL;
                    k.escalate_at = None;
                    let _ = procs::signal_group(pgid, libc::SIGKILL);
                    t.message = "did not stop within the stop timeout: sent SIGKILL".into();
                    self.dirty = true;
                }
            }
        }
    }

    /// Look at an active task's processes and run folder: learn its worker, its end.
    fn check(&mut self, i: usize) {
        let t = &self.state.tasks[i];
        let Some(p) = t.procs.clone() else { return };
        let run_dir = t.run_dir.clone();
        if let Some(x) = read_json::<ExitRecord>(&run_dir.join(EXIT_FILE)).filter(|x| x.attempt == p.attempt) {
            self.attempt_ended(i, ExitInfo { attempt: x.attempt, code: x.code, signal: x.signal, ended: x.ended }, None);
            return;
        }
        // The common case, every tick: the shim runs and its worker is known.
        if p.worker.is_some() && p.shim.alive() {
            return;
        }
        let record = read_json::<WorkerRecord>(&run_dir.join(WORKER_FILE)).filter(|w| w.attempt >= p.attempt);
        if p.worker.is_none() {
            if let Some(w) = record.as_ref().filter(|w| w.attempt == p.attempt && w.shim == p.shim) {
                self.state.tasks[i].procs.as_mut().expect("checked").worker = Some(w.worker);
                // Clients should see it, but it need not be saved on its own: a daemon
                // that restarts learns it again from worker.json.
                self.unsaved = true;
                self.deliver(i);
            }
        }
        let p = self.state.tasks[i].procs.clone().expect("checked");
        if p.shim.alive() {
            return;
        }
        // The shim is gone. It writes exit.json before it exits: look again.
        if let Some(x) = read_json::<ExitRecord>(&run_dir.join(EXIT_FILE)).filter(|x| x.attempt == p.attempt) {
            self.attempt_ended(i, ExitInfo { attempt: x.attempt, code: x.code, signal: x.signal, ended: x.ended }, None);
            return;
        }
        // Another shim holds this run folder (a start the daemon did not record).
        if let Some(w) = record.filter(|w| w.shim != p.shim && w.shim.alive()) {
            let t = &mut self.state.tasks[i];
            t.attempts = t.attempts.max(w.attempt);
            t.procs = Some(ProcInfo { attempt: w.attempt, shim: w.shim, worker: Some(w.worker) });
            self.dirty = true;
            return;
        }
        if p.worker.is_some_and(|w| w.alive()) {
            let t = &mut self.state.tasks[i];
            let note = "its supervising shim died; the worker still runs but its output is no longer captured";
            if t.message != note {
                t.message = note.into();
                self.dirty = true;
            }
            return;
        }
        // Neither runs and no exit record: the worker's own last status is all we know.
        let status = RunDir::open(&run_dir).ok().and_then(|d| d.status().ok().flatten());
        let code = match status.as_ref().map(|s| s.state) {
            Some(RunState::Finished) => Some(crate::rundir::exit::FINISHED as i32),
            Some(RunState::Stopped) => Some(crate::rundir::exit::STOPPED as i32),
            Some(RunState::Failed) => Some(crate::rundir::exit::FAILED as i32),
            Some(RunState::Diverged) => Some(crate::rundir::exit::DIVERGED as i32),
            _ => None,
        };
        match code {
            Some(c) => self.attempt_ended(
                i,
                ExitInfo { attempt: p.attempt, code: Some(c), signal: None, ended: unix_now() },
                Some("its processes ended without an exit record; outcome taken from the run's status.json"),
            ),
            None => self.lost(i, "its processes are gone and left no exit record"),
        }
    }

    fn lost(&mut self, i: usize, why: &str) {
        let attempt = self.state.tasks[i].procs.as_ref().map(|p| p.attempt).unwrap_or(self.state.tasks[i].attempts);
        self.attempt_ended(i, ExitInfo { attempt, code: None, signal: None, ended: unix_now() }, Some(why));
    }

    /// Settle an attempt: its final state, a retry, the hook, pause-on-failure.
    fn attempt_ended(&mut self, i: usize, x: ExitInfo, note: Option<&str>) {
        let t = &self.state.tasks[i];
        let by_user = t.kill.is_some();
        use crate::rundir::exit;
        let (state, mut why) = match (x.code, x.signal) {
            (Some(c), _) if c == exit::FINISHED as i32 => (TaskState::Finished, String::new()),
            (Some(c), _) if c == exit::STOPPED as i32 => (TaskState::Stopped, "stopped; resumable from its checkpoint".to_string()),
            (Some(c), _) if c == exit::DIVERGED as i32 => (TaskState::Diverged, "a loss became NaN/Inf".to_string()),
            (Some(c), _) => (TaskState::Failed, format!("exited with code {c}")),
            (None, Some(s)) if by_user => (TaskState::Killed, format!("killed by {} on request", procs::signal_name(s))),
            (None, Some(s)) => (TaskState::Failed, format!("killed by {}", procs::signal_name(s))),
            (None, None) => (TaskState::Lost, String::new()),
        };
        if let Some(n) = note {
            why = if why.is_empty() { n.to_string() } else { format!("{why} ({n})") };
        }
        if state == TaskState::Failed && x.code.is_some() {
            if let Some(detail) = failure_detail(&t.run_dir) {
                why = format!("{why}: {detail}");
            }
        }
        let retry = matches!(state, TaskState::Failed | TaskState::Lost) && !by_user && t.retried < t.retries;
        let t = &mut self.state.tasks[i];
        t.exit = Some(x);
        t.procs = None;
        t.kill = None;
        t.slot = None;
        self.dirty = true;
        if retry {
            t.retried += 1;
            t.resume_next = has_checkpoint(&t.run_dir);
            t.state = TaskState::Queued;
            t.message = format!(
                "attempt {} {}; retry {}/{}{}",
                t.attempts,
                if why.is_empty() { "was lost".to_string() } else { why },
                t.retried,
                t.retries,
                if t.resume_next { " from its last checkpoint" } else { "" }
            );
            return;
        }
        t.state = state;
        t.ended_at = Some(unix_now());
        t.message = why;
        let (group, id) = (t.group.clone(), t.id);
        if matches!(state, TaskState::Failed | TaskState::Lost | TaskState::Diverged) {
            if let Some(g) = self.state.groups.get_mut(&group).filter(|g| g.pause_on_failure) {
                g.paused = true;
                g.paused_reason = format!("task {id} {}; the group pauses on failure", state.name());
            }
        }
        self.run_hook(i);
    }

    /// The group's finish hook: `sh -c CMD clipgan-hook RUN_ID STATUS EXIT_CODE` with
    /// CLIPGAN_* variables; detached, output appended to `.clipgan/hooks.log`.
    fn run_hook(&mut self, i: usize) {
        let t = &self.state.tasks[i];
        let Some(cmd) = self.state.groups.get(&t.group).and_then(|g| g.on_finish.clone()) else { return };
        let code = t.exit.as_ref().and_then(|x| x.code).map(|c| c.to_string()).unwrap_or_default();
        let signal = t.exit.as_ref().and_then(|x| x.signal).map(procs::signal_name).unwrap_or_default();
        let log = std::fs::OpenOptions::new().create(true).append(true).open(&self.paths.hooks_log);
        let mut c = Command::new("/bin/sh");
        c.arg("-c").arg(&cmd).arg("clipgan-hook").arg(&t.run_id).arg(t.state.name()).arg(&code);
        c.env("CLIPGAN_TASK_ID", t.id.to_string())
            .env("CLIPGAN_RUN_ID", &t.run_id)
            .env("CLIPGAN_RUN_DIR", &t.run_dir)
            .env("CLIPGAN_STATUS", t.state.name())
            .env("CLIPGAN_EXIT_CODE", &code)
            .env("CLIPGAN_SIGNAL", &signal)
            .env("CLIPGAN_GROUP", &t.group)
            .env("CLIPGAN_LABEL", t.label.clone().unwrap_or_default())
            .env("CLIPGAN_MESSAGE", &t.message)
            .current_dir(&self.paths.home)
            .stdin(Stdio::null());
        match log {
            Ok(f) => {
                let f2 = f.try_clone();
                c.stdout(f);
                if let Ok(f2) = f2 {
                    c.stderr(f2);
                }
            }
            Err(_) => {
                c.stdout(Stdio::null()).stderr(Stdio::null());
            }
        }
        use std::os::unix::process::CommandExt;
        // SAFETY: setsid is async-signal-safe.
        unsafe { c.pre_exec(procs::setsid_pre_exec) };
        match c.spawn() {
            Ok(child) => self.children.push(child),
            Err(e) => eprintln!("clipgan daemon: cannot run the finish hook of task {}: {e}", t.id),
        }
    }

    /// Start what can start: settle dependencies, then fill free slots by priority.
    pub fn schedule(&mut self) {
        self.settle_dependencies();
        let by_id: HashMap<u64, TaskState> = self.state.tasks.iter().map(|t| (t.id, t.state)).collect();
        let mut order: Vec<usize> = (0..self.state.tasks.len())
            .filter(|&i| {
                let t = &self.state.tasks[i];
                t.state == TaskState::Queued
                    && self.state.groups.get(&t.group).is_some_and(|g| !g.paused)
                    && t.after.iter().all(|d| by_id.get(d).is_none_or(|s| *s == TaskState::Finished))
                    && t.after_any.iter().all(|d| by_id.get(d).is_none_or(|s| s.is_final()))
            })
            .collect();
        order.sort_by_key(|&i| (-(self.state.tasks[i].priority as i64), self.state.tasks[i].id));
        for i in order {
            let group = self.state.tasks[i].group.clone();
            let slots = self.state.groups[&group].slots;
            let used: Vec<usize> =
                self.state.tasks.iter().filter(|t| t.group == group && t.state.is_active()).filter_map(|t| t.slot).collect();
            let Some(slot) = (0..slots).find(|s| !used.contains(s)) else { continue };
            self.start(i, slot);
        }
    }

    /// Mark tasks whose `--after` dependency ended without success (transitively).
    fn settle_dependencies(&mut self) {
        loop {
            let by_id: HashMap<u64, TaskState> = self.state.tasks.iter().map(|t| (t.id, t.state)).collect();
            let mut settled = Vec::new();
            for (i, t) in self.state.tasks.iter_mut().enumerate().filter(|(_, t)| matches!(t.state, TaskState::Queued | TaskState::Held)) {
                if let Some((d, s)) =
                    t.after.iter().filter_map(|d| by_id.get(d).map(|s| (*d, *s))).find(|(_, s)| s.is_final() && *s != TaskState::Finished)
                {
                    t.state = TaskState::DepFailed;
                    t.ended_at = Some(unix_now());
                    t.message = format!("not started: task {d} it runs after ended {}", s.name());
                    settled.push(i);
                }
            }
            if settled.is_empty() {
                return;
            }
            self.dirty = true;
            for i in settled {
                self.run_hook(i);
            }
        }
    }

    /// The worker's command line for a task.
    pub fn worker_argv(&self, t: &Task) -> Vec<String> {
        let mut argv = vec![self.exe.display().to_string(), t.job.clone()];
        if let Some(c) = &t.config {
            argv.extend(["--cfg".into(), c.display().to_string()]);
        }
        if t.resume_next {
            argv.extend(["--resume".into(), t.run_dir.display().to_string()]);
        }
        argv.extend(t.args.iter().cloned());
        argv
    }

    fn start(&mut self, i: usize, slot: usize) {
        let t = &self.state.tasks[i];
        let attempt = t.attempts + 1;
        let gpus = self.state.groups.get(&t.group).and_then(|g| g.gpus_for_slot(slot));
        for f in [EXIT_FILE, WORKER_FILE] {
            let _ = std::fs::remove_file(t.run_dir.join(f));
        }
        let argv = self.worker_argv(t);
        let result = (|| -> Result<Child> {
            fsx::create_dir_all(&t.run_dir.join("logs"))?;
            let log_path = t.run_dir.join(SHIM_LOG);
            let log = std::fs::OpenOptions::new()
                .create(true)
                .append(true)
                .open(&log_path)
                .with_context(|| format!("cannot open {}", log_path.display()))?;
            let mut c = Command::new(&self.exe);
            c.arg("__shim")
                .arg("--run-dir")
                .arg(&t.run_dir)
                .arg("--attempt")
                .arg(attempt.to_string())
                .arg("--log-cap")
                .arg(self.state.settings.log_cap_bytes.to_string())
                .arg("--")
                .args(&argv)
                .env("CLIPGAN_HOME", &self.paths.home)
                .env("CLIPGAN_RUN_DIR", &t.run_dir)
                .env("CLIPGAN_SLOT", slot.to_string())
                .env("CLIPGAN_TASK_ID", t.id.to_string())
                .env("CLIPGAN_ATTEMPT", attempt.to_string())
                .current_dir(&self.paths.home)
                .stdin(Stdio::null())
                .stdout(log.try_clone()?)
                .stderr(log);
            if let Some(g) = &gpus {
                c.env("CUDA_VISIBLE_DEVICES", g);
            }
            use std::os::unix::process::CommandExt;
            // SAFETY: setsid is async-signal-safe.
            unsafe { c.pre_exec(procs::setsid_pre_exec) };
            c.spawn().with_context(|| format!("cannot start {}", self.exe.display()))
        })();
        let t = &mut self.state.tasks[i];
        self.dirty = true;
        match result {
            Ok(child) => {
                // Our unreaped child: its pid cannot be reused yet, so this is its identity.
                let shim = ProcId::read(child.id()).unwrap_or(ProcId { pid: child.id(), start: 0 });
                t.attempts = attempt;
                t.state = TaskState::Running;
                t.procs = Some(ProcInfo { attempt, shim, worker: None });
                t.slot = Some(slot);
                t.gpus = gpus;
                t.started_at = Some(unix_now());
                t.ended_at = None;
                t.kill = None;
                t.resume_next = false;
                if !t.message.starts_with("attempt") {
                    t.message.clear();
                }
                self.children.push(child);
            }
            Err(e) => {
                t.state = TaskState::Failed;
                t.ended_at = Some(unix_now());
                t.message = format!("{e:#}");
            }
        }
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

/// Why a worker failed, in one line: its status message, else the last line of its stderr.
fn failure_detail(run_dir: &Path) -> Option<String> {
    let status = RunDir::open(run_dir).ok().and_then(|d| d.status().ok().flatten());
    if let Some(s) = status.filter(|s| s.state == RunState::Failed && !s.message.is_empty()) {
        return Some(s.message);
    }
    use std::io::{Read, Seek, SeekFrom};
    let mut f = std::fs::File::open(run_dir.join(STDERR_LOG)).ok()?;
    let len = f.metadata().ok()?.len();
    f.seek(SeekFrom::Start(len.saturating_sub(4096))).ok()?;
    let mut buf = Vec::new();
    f.read_to_end(&mut buf).ok()?;
    let text = String::from_utf8_lossy(&buf);
    text.lines().rev().map(str::trim).find(|l| !l.is_empty()).map(|l| l.chars().take(300).collect())
}
