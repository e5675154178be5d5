//! `pause` and `resume` of a task (SIGSTOP/SIGCONT, hold/release) or of a group's scheduling.
use super::{err, ok, Core};
use crate::supervisor::procs;
use crate::supervisor::protocol::*;
use crate::supervisor::state::*;

impl Core {
    pub(super) fn pause(&mut self, target: Target, wait: bool) -> Response {
        match target {
            Target::Task(id) => {
                let Some(i) = self.idx(id) else { return err(format!("no task {id}")) };
                let t = &mut self.state.tasks[i];
                match t.state {
                    TaskState::Queued => t.state = TaskState::Held,
                    TaskState::Running if t.kill.is_some() => return err(format!("task {id} is being stopped")),
                    TaskState::Running if t.slurm.is_some() => {
                        if let Err(e) = self.pause_slurm(i, true) {
                            return err(format!("task {id}: {e:#}"));
                        }
                        self.state.tasks[i].state = TaskState::Paused;
                    }
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
                    for i in 0..self.state.tasks.len() {
                        let t = &self.state.tasks[i];
                        if t.group != name || t.state != TaskState::Running || t.kill.is_some() {
                            continue;
                        }
                        if t.slurm.is_some() {
                            if self.pause_slurm(i, true).is_err() {
                                continue;
                            }
                        } else if let Some(pgid) = t.worker_pgid() {
                            let _ = procs::signal_group(pgid, libc::SIGSTOP);
                        }
                        self.state.tasks[i].state = TaskState::Paused;
                        n += 1;
                    }
                }
                self.dirty = true;
                ok(format!("group {name} paused: no new task starts; {n} running task(s) paused"))
            }
        }
    }

    pub(super) fn resume(&mut self, target: Target) -> Response {
        match target {
            Target::Task(id) => {
                let Some(i) = self.idx(id) else { return err(format!("no task {id}")) };
                let t = &mut self.state.tasks[i];
                match t.state {
                    TaskState::Held => t.state = TaskState::Queued,
                    TaskState::Paused if t.slurm.is_some() => {
                        if let Err(e) = self.pause_slurm(i, false) {
                            return err(format!("task {id}: {e:#}"));
                        }
                        self.state.tasks[i].state = TaskState::Running;
                    }
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
                for i in 0..self.state.tasks.len() {
                    let t = &self.state.tasks[i];
                    if t.group != name || t.state != TaskState::Paused {
                        continue;
                    }
                    if t.slurm.is_some() {
                        if self.pause_slurm(i, false).is_err() {
                            continue;
                        }
                    } else if let Some(pgid) = t.worker_pgid() {
                        let _ = procs::signal_group(pgid, libc::SIGCONT);
                    }
                    self.state.tasks[i].state = TaskState::Running;
                    n += 1;
                }
                self.dirty = true;
                ok(format!("group {name} resumed; {n} paused task(s) continued"))
            }
        }
    }
}
