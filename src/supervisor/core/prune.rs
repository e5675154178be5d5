//! Pruning on each tick: hand the sweeps that prune to the reading thread
//! (`prune_watch`), and stop the members it found worse than the median, through the
//! same graceful stop as `kill` (locally or on Slurm), marked so that they end `pruned`.
use super::Core;
use crate::supervisor::protocol::Response;
use crate::supervisor::prune_watch::{Found, Member, Watch};
use crate::supervisor::state::*;

impl Core {
    /// The sweeps worth reading: those that prune and have a member that may be pruned.
    fn prune_watches(&self) -> Vec<Watch> {
        let mut out = Vec::new();
        for (id, sweep) in &self.state.sweeps {
            let Some(spec) = &sweep.prune else { continue };
            let members: Vec<Member> = self
                .state
                .tasks
                .iter()
                .filter(|t| t.sweep.as_deref() == Some(id.as_str()))
                .map(|t| Member { task: t.id, run_dir: t.run_dir.clone(), candidate: may_prune(t) })
                .collect();
            if members.iter().any(|m| m.candidate) {
                out.push(Watch { spec: spec.clone(), members });
            }
        }
        out
    }

    /// Give the reading thread the sweeps to watch and prune what it found.
    pub(super) fn prune_tick(&mut self) {
        let watches = self.prune_watches();
        for f in self.pruner.watch(watches) {
            self.prune(f);
        }
    }

    /// Stop a member the rule named, if it still may be pruned (it may have ended or
    /// been stopped since it was read).
    fn prune(&mut self, f: Found) {
        let Some(i) = self.idx(f.task) else { return };
        let t = &self.state.tasks[i];
        if t.run_dir != f.run_dir || !may_prune(t) {
            return;
        }
        let metric = t.sweep.as_ref().and_then(|s| self.state.sweeps.get(s)).and_then(|s| s.prune.as_ref()).map(|p| p.metric.clone());
        let note = Pruned { metric: metric.unwrap_or_default(), step: f.step, value: f.value, median: f.median, others: f.others };
        match self.kill(f.task, None, None) {
            Response::Ok { .. } => {
                let t = &mut self.state.tasks[i];
                if let Some(k) = t.kill.as_mut() {
                    k.prune = true;
                }
                t.message = format!(
                    "pruning: {} {} at step {} is worse than the median {} of {} other member(s); stopping with a checkpoint",
                    note.metric,
                    fmt4(note.value),
                    note.step,
                    fmt4(note.median),
                    note.others
                );
                t.pruned = Some(note);
                self.dirty = true;
            }
            Response::Error { message, .. } => eprintln!("clipgan daemon: cannot prune task {}: {message}", f.task),
            _ => {}
        }
    }
}

/// Whether the pruning may stop a task: running (not paused by the user, not already
/// stopping) and not resumed after an earlier prune.
fn may_prune(t: &Task) -> bool {
    t.state == TaskState::Running && t.kill.is_none() && t.pruned.is_none()
}

/// The message of a task that ended pruned.
pub(super) fn pruned_message(id: u64, p: &Pruned, how: TaskState) -> String {
    let then = if how == TaskState::Stopped {
        format!("resumable from its checkpoint (clipgan resume-run {id})")
    } else {
        "it did not stop within the stop timeout and was killed".to_string()
    };
    format!(
        "pruned at step {}: {} {} worse than the median {} of {} other member(s); {then}",
        p.step,
        p.metric,
        fmt4(p.value),
        fmt4(p.median),
        p.others
    )
}

fn fmt4(v: f64) -> String {
    format!("{v:.4}").trim_end_matches('0').trim_end_matches('.').to_string()
}
