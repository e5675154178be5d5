//! `restart` (again from scratch, in a new run folder) and `resume-run` (on from the last checkpoint).
use super::{err, has_checkpoint, ok, Core};
use crate::rundir::RunDir;
use crate::supervisor::protocol::*;
use crate::supervisor::state::*;

impl Core {
    pub(super) fn restart(&mut self, id: u64) -> Response {
        let Some(i) = self.idx(id) else { return err(format!("no task {id}")) };
        let t = &self.state.tasks[i];
        if !t.state.is_final() {
            return err(format!("task {id} is {}; kill it first to restart it", t.state.name()));
        }
        let (name, job, config, overrides) = (t.label.clone(), t.job, t.config.clone(), t.overrides.clone());
        let mut text = None;
        if let Some(path) = &config {
            match crate::config::load_with(path, &overrides) {
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
        let (run_dir, hash) = match self.make_run_dir(&name, job, config.as_deref(), text.as_deref(), &overrides) {
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
        t.slurm = None;
        // A run from scratch is judged by its sweep's pruning like any member.
        t.pruned = None;
        t.state = TaskState::Queued;
        t.started_at = None;
        t.ended_at = None;
        t.message = format!("restarted from scratch; earlier run folder {}", t.previous_runs.last().cloned().unwrap_or_default());
        self.dirty = true;
        ok(format!("task {id} queued again in a new run folder {}", self.state.tasks[i].run_id))
    }

    pub(super) fn resume_run(&mut self, id: u64) -> Response {
        let Some(i) = self.idx(id) else { return err(format!("no task {id}")) };
        let t = &self.state.tasks[i];
        match t.state {
            TaskState::Stopped
            | TaskState::Failed
            | TaskState::Killed
            | TaskState::Lost
            | TaskState::Diverged
            | TaskState::DepFailed
            | TaskState::Pruned => {}
            s => {
                return err(format!(
                    "task {id} is {}; only a stopped, pruned, failed, killed, lost or diverged run can be continued",
                    s.name()
                ))
            }
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
        t.slurm = None;
        t.state = TaskState::Queued;
        t.ended_at = None;
        t.message = if has_ckpt { "queued to continue from its last checkpoint".into() } else { "queued again".into() };
        if t.pruned.is_some() {
            // It stays exempt from pruning (Task::pruned): the user chose to let it go on.
            t.message.push_str(" (pruned before; not pruned again)");
        }
        self.dirty = true;
        ok(format!("task {id}: {}", self.state.tasks[i].message))
    }
}
