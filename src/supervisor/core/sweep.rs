//! `add_sweep`: queue many tasks as one sweep, all or none. Every task is validated
//! first; then the run folders are made (and removed again if one cannot be); only then
//! are the tasks put on the list under a new sweep id.
use super::{err, Core};
use crate::supervisor::protocol::*;
use crate::supervisor::state::Sweep;
use crate::supervisor::sweep::MAX_SWEEP_TASKS;
use crate::util::unix_now;

impl Core {
    pub(super) fn add_sweep(&mut self, s: AddSweep) -> Response {
        if s.tasks.is_empty() {
            return err("the sweep has no tasks; nothing was queued");
        }
        if s.tasks.len() > MAX_SWEEP_TASKS {
            return err(format!(
                "the sweep has {} tasks, more than the {MAX_SWEEP_TASKS} one request may queue; nothing was queued",
                s.tasks.len()
            ));
        }
        if let Err(e) = crate::rundir::check_name("sweep name", &s.name) {
            return err(format!("{e}; nothing was queued"));
        }
        if let Some(Err(e)) = s.prune.as_ref().map(|p| p.validate()) {
            return err(format!("{e}; nothing was queued"));
        }
        let n = s.tasks.len();
        let mut prepared = Vec::with_capacity(n);
        for (k, a) in s.tasks.into_iter().enumerate() {
            let what = format!("sweep member {} of {n}{}", k + 1, a.label.as_ref().map(|l| format!(" ({l})")).unwrap_or_default());
            match self.prepare(a) {
                Ok(p) => prepared.push(p),
                Err(Response::Error { message, details }) => {
                    let message = if message.contains("nothing was queued") { message } else { format!("{message}; nothing was queued") };
                    return Response::Error { message: format!("{what}: {message}"), details };
                }
                Err(other) => return other,
            }
        }
        let mut dirs = Vec::with_capacity(n);
        for p in &prepared {
            match self.make_run_dir_for(p) {
                Ok(d) => dirs.push(d),
                Err(e) => {
                    for (d, _) in &dirs {
                        let _ = std::fs::remove_dir_all(d);
                    }
                    return err(format!("{e:#}; nothing was queued"));
                }
            }
        }
        let id = format!("sweep-{}", self.state.next_sweep);
        self.state.next_sweep += 1;
        self.state.sweeps.insert(id.clone(), Sweep { name: s.name, config: s.config, keys: s.keys, created: unix_now(), prune: s.prune });
        let mut warnings: Vec<String> = Vec::new();
        let (mut ids, mut run_ids) = (Vec::with_capacity(n), Vec::with_capacity(n));
        for (p, (run_dir, hash)) in prepared.into_iter().zip(dirs) {
            for w in &p.warnings {
                if !warnings.contains(w) {
                    warnings.push(w.clone());
                }
            }
            let (task_id, run_id) = self.enqueue(p, run_dir, hash, Some(id.clone()));
            ids.push(task_id);
            run_ids.push(run_id);
        }
        Response::SweepAdded { sweep: id, ids, run_ids, warnings }
    }
}
