//! Process checks on each tick: a worker's pid, an attempt's end and outcome (retry, lost), kill escalation.
use super::{has_checkpoint, read_json, Core};
use crate::rundir::{RunDir, RunState, EXIT_FILE, STDERR_LOG, WORKER_FILE};
use crate::supervisor::procs;
use crate::supervisor::shim::{ExitRecord, WorkerRecord};
use crate::supervisor::state::*;
use crate::util::unix_now;
use std::path::Path;

impl Core {
    /// Reap children, learn what attempts did, escalate overdue kills.
    pub fn tick(&mut self) {
        self.children.retain_mut(|c| !matches!(c.try_wait(), Ok(Some(_)) | Err(_)));
        let now = unix_now();
        let wanted = self.slurm_jobs();
        let polled = (!wanted.is_empty()).then(|| self.slurm.poll(wanted));
        for i in 0..self.state.tasks.len() {
            if !self.state.tasks[i].state.is_active() {
                continue;
            }
            if self.state.tasks[i].slurm.is_some() {
                if let Some(p) = &polled {
                    self.check_slurm(i, p);
                }
                if self.state.tasks[i].state.is_active() {
                    self.escalate_slurm(i);
                }
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
        self.prune_tick();
    }

    /// Look at an active task's processes and run folder: learn its worker, its end.
    pub(super) fn check(&mut self, i: usize) {
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

    pub(super) fn lost(&mut self, i: usize, why: &str) {
        let attempt = self.state.tasks[i].procs.as_ref().map(|p| p.attempt).unwrap_or(self.state.tasks[i].attempts);
        self.attempt_ended(i, ExitInfo { attempt, code: None, signal: None, ended: unix_now() }, Some(why));
    }

    /// Settle an attempt: its final state, a retry, the hook, pause-on-failure.
    pub(super) fn attempt_ended(&mut self, i: usize, x: ExitInfo, note: Option<&str>) {
        let t = &self.state.tasks[i];
        let by_user = t.kill.is_some();
        let by_pruning = t.kill.as_ref().is_some_and(|k| k.prune);
        use crate::rundir::exit;
        let (state, why) = match (x.code, x.signal) {
            (Some(c), _) if c == exit::FINISHED as i32 => (TaskState::Finished, String::new()),
            (Some(c), _) if c == exit::STOPPED as i32 => (TaskState::Stopped, "stopped; resumable from its checkpoint".to_string()),
            (Some(c), _) if c == exit::DIVERGED as i32 => (TaskState::Diverged, "a loss became NaN/Inf".to_string()),
            (Some(c), _) => (TaskState::Failed, format!("exited with code {c}")),
            (None, Some(s)) if by_user => (TaskState::Killed, format!("killed by {} on request", procs::signal_name(s))),
            (None, Some(s)) => (TaskState::Failed, format!("killed by {}", procs::signal_name(s))),
            (None, None) => (TaskState::Lost, String::new()),
        };
        // Stopped by the sweep's pruning (gracefully, or killed after the stop timeout):
        // pruned, not stopped, killed or failed.
        let (state, mut why) = match (state, &t.pruned) {
            (TaskState::Stopped | TaskState::Killed, Some(p)) if by_pruning => {
                (TaskState::Pruned, super::prune::pruned_message(t.id, p, state))
            }
            other => (other.0, why),
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
