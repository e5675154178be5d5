//! Recovery at open: re-adopt the workers of the last daemon, settle what ended while it was down.
use super::{read_json, Core};
use crate::rundir::WORKER_FILE;
use crate::supervisor::shim::WorkerRecord;
use crate::supervisor::state::*;

impl Core {
    pub(super) fn recover(&mut self) {
        for i in 0..self.state.tasks.len() {
            let t = &self.state.tasks[i];
            match t.state {
                // Slurm tasks run elsewhere: the next tick asks Slurm about their job.
                TaskState::Running | TaskState::Paused if t.slurm.is_some() => {
                    self.state.tasks[i].message = "re-adopted after a daemon restart (Slurm job)".into();
                }
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
                    if t.state == TaskState::Queued {
                        self.adopt_unsaved_submission(i);
                        if self.state.tasks[i].state != TaskState::Queued {
                            continue;
                        }
                    }
                    let t = &self.state.tasks[i];
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
}
