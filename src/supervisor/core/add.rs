//! `add`: validate a task, make its run folder with the config snapshot, queue it.
//! Validation ([`Core::prepare`]) and queueing ([`Core::enqueue`]) are apart so that a
//! sweep (`sweep.rs`) validates all its tasks before it queues any.
use super::{err, text_hash, Core};
use crate::config::LoadedConfig;
use crate::rundir::{JobKind, Manifest, RunDir, CONFIG_SNAPSHOT_FILE, MANIFEST_FILE};
use crate::supervisor::protocol::*;
use crate::supervisor::state::*;
use crate::util::{fsx, unix_now};
use anyhow::Result;
use std::path::{Path, PathBuf};

/// A task that passed validation, ready for its run folder.
pub(super) struct Prepared {
    pub a: AddTask,
    pub group: String,
    pub job: JobKind,
    pub loaded: Option<LoadedConfig>,
    /// The run folder's name.
    pub name: String,
    pub warnings: Vec<String>,
}

impl Core {
    pub(super) fn add(&mut self, a: AddTask) -> Response {
        let p = match self.prepare(a) {
            Ok(p) => p,
            Err(e) => return e,
        };
        let (run_dir, config_hash) = match self.make_run_dir_for(&p) {
            Ok(x) => x,
            Err(e) => return err(format!("{e:#}; nothing was queued")),
        };
        let warnings = p.warnings.clone();
        let (id, run_id) = self.enqueue(p, run_dir.clone(), config_hash, None);
        Response::Added { id, run_id, run_dir, warnings }
    }

    /// Check a task to queue: label, group, dependencies, config (with its overrides), job.
    pub(super) fn prepare(&self, a: AddTask) -> Result<Prepared, Response> {
        if let Some(label) = &a.label {
            if let Err(e) = crate::rundir::check_name("label", label) {
                return Err(err(format!("{e}; nothing was queued")));
            }
        }
        let group = a.group.clone().unwrap_or_else(|| DEFAULT_GROUP.to_string());
        if !self.state.groups.contains_key(&group) {
            let group = crate::util::cut(&group, 40);
            return Err(err(format!("no group {group:?}; create it with `clipgan groups add {group} --slots N`")));
        }
        for d in a.after.iter().chain(&a.after_any) {
            if self.idx(*d).is_none() {
                return Err(err(format!("no task {d} to depend on")));
            }
        }
        if a.config.is_none() && !a.overrides.is_empty() {
            return Err(err("--set overrides a config: give a config file; nothing was queued"));
        }
        let mut warnings = Vec::new();
        let mut loaded = None;
        if let Some(path) = &a.config {
            let text = match crate::config::read_text(path) {
                Ok(t) => t,
                Err(e) => return Err(err(format!("cannot read the config: {e}; nothing was queued"))),
            };
            match crate::config::parse_with(path, &text, crate::config::base_dir_for(path), &a.overrides) {
                Ok(c) => loaded = Some(c),
                Err(e) => {
                    return Err(Response::Error {
                        message: format!("{} is not a valid config; nothing was queued", path.display()),
                        details: e.0.iter().map(|d| d.to_string()).collect(),
                    })
                }
            }
        }
        let inferred = loaded.as_ref().map(|c| c.config.job().kind());
        let job = match (a.job, inferred) {
            (Some(j), Some(i)) if j != i && j != JobKind::FakeRun => {
                warnings.push(format!("the config is a {i} config, but the task runs {j} as asked"));
                j
            }
            (Some(j), _) => j,
            (None, Some(i)) => i,
            (None, None) => return Err(err("give a config file, or --job fake-run")),
        };
        if job != JobKind::FakeRun && loaded.is_none() {
            return Err(err(format!("the {job} job needs a config file")));
        }
        if let Some(c) = &loaded {
            warnings.extend(c.warnings.iter().filter(|d| d.severity == crate::config::Severity::Warning).map(|d| d.to_string()));
        }
        let name = a
            .label
            .clone()
            .filter(|l| !l.trim().is_empty())
            .or_else(|| loaded.as_ref().map(|c| c.config.config_name.clone()).filter(|n| !n.is_empty()))
            .or_else(|| a.config.as_ref().and_then(|p| p.file_stem()).map(|s| crate::rundir::name_from_file_stem(&s.to_string_lossy())))
            .unwrap_or_else(|| "fake".into());
        Ok(Prepared { a, group, job, loaded, name, warnings })
    }

    pub(super) fn make_run_dir_for(&self, p: &Prepared) -> Result<(PathBuf, Option<String>)> {
        self.make_run_dir(&p.name, p.job, p.a.config.as_deref(), p.loaded.as_ref().map(|c| c.text.as_str()), &p.a.overrides)
    }

    /// Put a prepared task on the list; returns its id and run id.
    pub(super) fn enqueue(&mut self, p: Prepared, run_dir: PathBuf, config_hash: Option<String>, sweep: Option<String>) -> (u64, String) {
        let a = p.a;
        let id = self.state.next_id;
        let task = Task {
            id,
            label: a.label,
            job: p.job,
            config: a.config,
            config_hash,
            args: a.args,
            overrides: a.overrides,
            sweep,
            group: p.group,
            priority: a.priority,
            after: a.after,
            after_any: a.after_any,
            retries: a.retries,
            retried: 0,
            state: if a.held { TaskState::Held } else { TaskState::Queued },
            attempts: 0,
            run_id: run_dir.file_name().map(|n| n.to_string_lossy().into_owned()).unwrap_or_default(),
            run_dir,
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
            slurm: None,
            pruned: None,
        };
        let run_id = task.run_id.clone();
        self.state.next_id += 1;
        self.state.tasks.push(task);
        self.dirty = true;
        (id, run_id)
    }

    /// A new run folder with the config snapshot; returns it and the config's hash.
    pub(super) fn make_run_dir(
        &self,
        name: &str,
        job: JobKind,
        config: Option<&Path>,
        text: Option<&str>,
        overrides: &[String],
    ) -> Result<(PathBuf, Option<String>)> {
        let dir = RunDir::create(&self.paths.runs, name, job.as_str(), config)?;
        // run.json names the worker's command, not the daemon's.
        let mut m: Manifest = dir.read_json(MANIFEST_FILE)?;
        m.command = vec!["clipgan".into(), job.as_str().into()];
        if let Some(c) = config {
            m.command.extend(["--cfg".into(), c.display().to_string()]);
        }
        for o in overrides {
            m.command.extend(["--set".into(), o.clone()]);
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
}
