//! `remove`: take a task that does not run off the list, unless others still wait for it.
use super::{err, ok, Core};
use crate::supervisor::protocol::*;
use crate::supervisor::state::*;

impl Core {
    pub(super) fn remove(&mut self, id: u64) -> Response {
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
        // A sweep goes with its last task.
        if let Some(s) = &t.sweep {
            if !self.state.tasks.iter().any(|o| o.sweep.as_ref() == Some(s)) {
                self.state.sweeps.remove(s);
            }
        }
        self.dirty = true;
        ok(format!("task {id} removed; its run folder {} stays", t.run_dir.display()))
    }
}
