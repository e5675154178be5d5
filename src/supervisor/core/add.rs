//! `add`: validate a task, make its run folder with the config snapshot, queue it.
use super::{err, text_hash, Core};
use crate::rundir::{JobKind, Manifest, RunDir, CONFIG_SNAPSHOT_FILE, MANIFEST_FILE};
use crate::supervisor::protocol::*;
use crate::supervisor::state::*;
use crate::util::{fsx, unix_now};
use anyhow::Result;
use std::path::{Path, PathBuf};

impl Core {
    pub(super) fn add(&mut self, a: AddTask) -> Response {
        if let Some(label) = &a.label {
            if let Err(e) = crate::rundir::check_name("label", label) {
                return err(format!("{e}; nothing was queued"));
            }
        }
        let group = a.group.clone().unwrap_or_else(|| DEFAULT_GROUP.to_string());
        if !self.state.groups.contains_key(&group) {
            let group = crate::util::cut(&group, 40);
            return err(format!("no group {group:?}; create it with `clipgan groups add {group} --slots N`"));
        }
        for d in a.after.iter().chain(&a.after_any) {
            if self.idx(*d).is_none() {
                return err(format!("no task {d} to depend on"));
            }
        }
        let mut warnings = Vec::new();
        let mut loaded = None;
        if let Some(path) = &a.config {
            let text = match crate::config::read_text(path) {
                Ok(t) => t,
                Err(e) => return err(format!("cannot read the config: {e}; nothing was queued")),
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
        let inferred = loaded.as_ref().map(|c| c.config.job().kind());
        let job = match (a.job, inferred) {
            (Some(j), Some(i)) if j != i && j != JobKind::FakeRun => {
                warnings.push(format!("the config is a {i} config, but the task runs {j} as asked"));
                j
            }
            (Some(j), _) => j,
            (None, Some(i)) => i,
            (None, None) => return err("give a config file, or --job fake-run"),
        };
        if job != JobKind::FakeRun && loaded.is_none() {
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
            .or_else(|| a.config.as_ref().and_then(|p| p.file_stem()).map(|s| crate::rundir::name_from_file_stem(&s.to_string_lossy())))
            .unwrap_or_else(|| "fake".into());
        let id = self.state.next_id;
        let (run_dir, config_hash) = match self.make_run_dir(&name, job, a.config.as_deref(), loaded.as_ref().map(|c| c.text.as_str())) {
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
            slurm: None,
        };
        let run_id = task.run_id.clone();
        self.state.next_id += 1;
        self.state.tasks.push(task);
        self.dirty = true;
        Response::Added { id, run_id, run_dir, warnings }
    }

    /// A new run folder with the config snapshot; returns it and the config's hash.
    pub(super) fn make_run_dir(
        &self,
        name: &str,
        job: JobKind,
        config: Option<&Path>,
        text: Option<&str>,
    ) -> Result<(PathBuf, Option<String>)> {
        let dir = RunDir::create(&self.paths.runs, name, job.as_str(), config)?;
        // run.json names the worker's command, not the daemon's.
        let mut m: Manifest = dir.read_json(MANIFEST_FILE)?;
        m.command = vec!["clipgan".into(), job.as_str().into()];
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
}
