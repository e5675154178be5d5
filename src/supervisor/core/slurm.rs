//! Tasks of Slurm groups: submitting, following the job (its state from the poller, its
//! outcome from the run folder), kills, pauses and re-adoption. The processes run on
//! compute nodes, so nothing here looks at pids: the job id and the run folder
//! (`worker.json`, `exit.json`, written by the shim on the node) are what the daemon knows.
use super::{err, ok, read_json, Core};
use crate::rundir::{EXIT_FILE, WORKER_FILE};
use crate::supervisor::protocol::Response;
use crate::supervisor::shim::{ExitRecord, WorkerRecord};
use crate::supervisor::slurm::{self, Polled, SlurmJob};
use crate::supervisor::state::*;
use crate::util::{fsx, unix_now};
use anyhow::{Context, Result};

/// How long a submitted job may be missing from `squeue` before it counts as gone (the
/// poll that follows a submission can be older than it).
const GRACE_S: f64 = 10.0;

impl Core {
    /// Submit task `i` to Slurm (its group is a Slurm group).
    pub(super) fn submit(&mut self, i: usize, slot: usize) {
        let t = &self.state.tasks[i];
        let attempt = t.attempts + 1;
        let Some(options) = self.state.groups.get(&t.group).and_then(|g| g.slurm.clone()) else { return };
        for f in [EXIT_FILE, WORKER_FILE] {
            let _ = std::fs::remove_file(t.run_dir.join(f));
        }
        let _ = std::fs::remove_file(slurm::stop_request(&t.run_dir));
        let argv = self.worker_argv(t);
        let name = slurm::job_name(&self.paths.home, t.id);
        let script = slurm::dir(&t.run_dir).join(format!("job-{attempt}.sh"));
        let text = slurm::render_script(&slurm::JobScript {
            name,
            options: &options,
            run_dir: &t.run_dir,
            home: &self.paths.home,
            task_id: t.id,
            first_attempt: attempt,
            log_cap: self.state.settings.log_cap_bytes,
            exe: &self.exe,
            argv: &argv,
        });
        let result = (|| -> Result<u64> {
            fsx::create_dir_all(&t.run_dir.join("logs"))?;
            fsx::create_dir_all(&slurm::dir(&t.run_dir))?;
            fsx::atomic_write(&script, text.as_bytes())?;
            slurm::check_reachable(&t.run_dir)?;
            slurm::submit(&script).context("Slurm did not take the job")
        })();
        let t = &mut self.state.tasks[i];
        self.dirty = true;
        match result {
            Ok(job_id) => {
                t.attempts = attempt;
                t.state = TaskState::Running;
                t.procs = None;
                t.slot = Some(slot);
                t.gpus = None;
                t.started_at = Some(unix_now());
                t.ended_at = None;
                t.kill = None;
                t.resume_next = false;
                t.slurm = Some(SlurmJob { job_id, submitted_at: unix_now(), script, ..Default::default() });
                if !t.message.starts_with("attempt") {
                    t.message.clear();
                }
            }
            Err(e) => {
                t.state = TaskState::Failed;
                t.ended_at = Some(unix_now());
                t.message = format!("{e:#}");
            }
        }
    }

    /// The job ids of the Slurm tasks that are live, for the poller.
    pub(super) fn slurm_jobs(&self) -> Vec<u64> {
        self.state.tasks.iter().filter(|t| t.state.is_active()).filter_map(|t| t.slurm.as_ref().map(|s| s.job_id)).collect()
    }

    /// Follow a live Slurm task: the job's state, the attempt running, its end.
    pub(super) fn check_slurm(&mut self, i: usize, polled: &Polled) {
        let now = unix_now();
        let t = &mut self.state.tasks[i];
        let Some(job) = t.slurm.as_mut() else { return };
        let info = polled.jobs.get(&job.job_id);
        if let Some(info) = info {
            if job.state != info.state || job.reason != info.reason || job.node != info.node {
                job.state = info.state.clone();
                job.reason = info.reason.clone();
                job.node = info.node.clone();
                self.unsaved = true;
            }
            job.seen_at = polled.at.unwrap_or(now);
        }
        let job = job.clone();
        // The attempt that runs now (a requeued job starts the next one).
        if let Some(w) = read_json::<WorkerRecord>(&t.run_dir.join(WORKER_FILE)) {
            if t.procs.as_ref().is_none_or(|p| w.attempt > p.attempt || (w.attempt == p.attempt && p.worker.is_none())) {
                t.attempts = t.attempts.max(w.attempt);
                t.procs = Some(ProcInfo { attempt: w.attempt, shim: w.shim, worker: Some(w.worker) });
                self.unsaved = true;
            }
        }
        let gone = match info {
            Some(info) => slurm::is_terminal(&info.state),
            // Not listed by a poll made well after the submission: Slurm forgot it.
            None => polled.at.is_some_and(|at| at > job.submitted_at + GRACE_S) && polled.error.is_none(),
        };
        if !gone {
            return;
        }
        let attempt = t.procs.as_ref().map(|p| p.attempt).unwrap_or(t.attempts);
        let last_word = match info {
            Some(info) => format!("Slurm job {} ended {}{}", job.job_id, info.state, reason_suffix(&info.reason)),
            // Forgotten by the controller: its accounting, where the cluster keeps one.
            None => match slurm::accounting(job.job_id) {
                Some((state, code)) => format!("Slurm job {} ended {state} (exit code {code}, from sacct)", job.job_id),
                None => format!("Slurm job {} is no longer known to Slurm (and the cluster keeps no accounting)", job.job_id),
            },
        };
        match read_json::<ExitRecord>(&t.run_dir.join(EXIT_FILE)).filter(|x| x.attempt >= attempt) {
            Some(x) => {
                let note = (info.is_some_and(|j| j.state != "COMPLETED")).then_some(last_word);
                self.attempt_ended(i, ExitInfo { attempt: x.attempt, code: x.code, signal: x.signal, ended: x.ended }, note.as_deref());
            }
            None => {
                if let Some(k) = &t.kill {
                    let signal = k.signal;
                    self.attempt_ended(i, ExitInfo { attempt, code: None, signal: Some(signal), ended: now }, Some(&last_word));
                } else {
                    self.lost(i, &format!("{last_word} without an exit record (see its logs/slurm-{}.out)", job.job_id));
                }
            }
        }
    }

    /// `kill` of a Slurm task: a graceful stop reaches the worker through the shim (which
    /// then does not requeue); a pending job, or one past its stop timeout, is cancelled.
    pub(super) fn kill_slurm(&mut self, i: usize, signal: Option<i32>, escalate_at: Option<f64>) -> Response {
        let t = &self.state.tasks[i];
        let (id, run_dir) = (t.id, t.run_dir.clone());
        let Some(job) = t.slurm.clone() else { return err(format!("task {id} has no Slurm job yet")) };
        if t.state == TaskState::Paused {
            // A held job must be released, a stopped one continued, to act on the stop.
            let _ = self.pause_slurm(i, false);
            self.state.tasks[i].state = TaskState::Running;
        }
        let t = &self.state.tasks[i];
        let started = t.procs.as_ref().is_some_and(|p| p.worker.is_some()) && job.state != "PENDING";
        let _ = fsx::create_dir_all(&slurm::dir(&run_dir));
        if let Err(e) = fsx::atomic_write(&slurm::stop_request(&run_dir), format!("{}\n", unix_now()).as_bytes()) {
            return err(format!("{e:#}"));
        }
        let sig = signal.unwrap_or(libc::SIGTERM);
        let result = if !started || sig == libc::SIGKILL {
            slurm::cancel(job.job_id)
        } else {
            slurm::signal_batch(job.job_id, crate::supervisor::procs::signal_name(sig).trim_start_matches("SIG"))
        };
        if let Err(e) = result {
            return err(format!("task {id}: {e:#}"));
        }
        self.state.tasks[i].kill =
            Some(KillRequest { signal: sig, sent: true, escalate_at: escalate_at.filter(|_| started), prune: false });
        self.dirty = true;
        ok(if started {
            format!("task {id}: Slurm job {} asked to stop (checkpoint and exit; cancelled after the stop timeout)", job.job_id)
        } else {
            format!("task {id}: Slurm job {} cancelled before it started", job.job_id)
        })
    }

    /// A graceful stop past its timeout: cancel the job.
    pub(super) fn escalate_slurm(&mut self, i: usize) {
        let t = &mut self.state.tasks[i];
        let (Some(job), Some(k)) = (t.slurm.as_ref(), t.kill.as_mut()) else { return };
        if k.escalate_at.is_some_and(|at| unix_now() >= at) {
            k.escalate_at = None;
            k.signal = libc::SIGKILL;
            t.message = match slurm::cancel(job.job_id) {
                Ok(()) => "did not stop within the stop timeout: its Slurm job was cancelled".into(),
                Err(e) => format!("did not stop within the stop timeout, and cancelling failed: {e:#}"),
            };
            self.dirty = true;
        }
    }

    /// `pause` / `resume` of a Slurm task: a pending job is held or released, a running
    /// one stopped or continued (SIGSTOP/SIGCONT to the whole job).
    pub(super) fn pause_slurm(&mut self, i: usize, on: bool) -> Result<()> {
        let t = &self.state.tasks[i];
        let Some(job) = t.slurm.as_ref() else { return Ok(()) };
        if job.state == "PENDING" || job.state.is_empty() {
            slurm::hold(job.job_id, on)
        } else {
            let sig = if on { "STOP" } else { "CONT" };
            slurm::run("scancel", &["--full".into(), format!("--signal={sig}"), job.job_id.to_string()]).map(|_| ())
        }
    }

    /// At open: a queued task of a Slurm group whose job was submitted by a daemon that
    /// died before saving it is adopted by its job name, never submitted twice.
    pub(super) fn adopt_unsaved_submission(&mut self, i: usize) {
        let t = &self.state.tasks[i];
        let slurm_group = self.state.groups.get(&t.group).is_some_and(|g| g.slurm.is_some());
        let script = slurm::dir(&t.run_dir).join(format!("job-{}.sh", t.attempts + 1));
        if !slurm_group || !script.is_file() {
            return;
        }
        let name = slurm::job_name(&self.paths.home, t.id);
        let live = match slurm::list_jobs() {
            Ok(all) => all,
            Err(e) => {
                eprintln!("clipgan daemon: cannot ask Slurm about task {}: {e:#}", t.id);
                return;
            }
        };
        let Ok(ids) = slurm::jobs_named(&name) else { return };
        if let Some(job_id) = ids.into_iter().filter(|id| live.get(id).is_some_and(|j| !slurm::is_terminal(&j.state))).max() {
            let group = self.state.tasks[i].group.clone();
            let used: Vec<usize> =
                self.state.tasks.iter().filter(|t| t.group == group && t.state.is_active()).filter_map(|t| t.slot).collect();
            let t = &mut self.state.tasks[i];
            t.attempts += 1;
            t.state = TaskState::Running;
            t.slot = Some((0..).find(|s| !used.contains(s)).unwrap_or(0));
            t.started_at = Some(unix_now());
            t.slurm = Some(SlurmJob { job_id, submitted_at: unix_now(), script, ..Default::default() });
            t.message = "re-adopted after a daemon restart (its submission was not saved)".into();
        }
    }
}

fn reason_suffix(reason: &str) -> String {
    if reason.is_empty() || reason == "None" {
        String::new()
    } else {
        format!(" ({reason})")
    }
}
