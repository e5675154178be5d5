//! `kill`: graceful stops and signals, and their delivery once the worker's pid is known.
use super::{err, ok, Core};
use crate::supervisor::procs;
use crate::supervisor::protocol::*;
use crate::supervisor::state::*;
use crate::util::unix_now;

impl Core {
    pub(super) fn kill(&mut self, id: u64, signal: Option<&str>, timeout_s: Option<f64>) -> Response {
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
        if self.state.tasks[i].slurm.is_some() {
            return self.kill_slurm(i, signal.map(|_| sig), escalate_at);
        }
        self.state.tasks[i].kill = Some(KillRequest { signal: sig, sent: false, escalate_at, prune: false });
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
    pub(super) fn deliver(&mut self, i: usize) {
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
}
