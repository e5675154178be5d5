//! Scheduling: dependencies, free slots by priority, and starting a worker under its shim.
use super::Core;
use crate::rundir::{EXIT_FILE, SHIM_LOG, WORKER_FILE};
use crate::supervisor::procs::{self, ProcId};
use crate::supervisor::state::*;
use crate::util::{fsx, unix_now};
use anyhow::{Context, Result};
use std::collections::HashMap;
use std::process::{Child, Command, Stdio};

impl Core {
    /// Start what can start: settle dependencies, then fill free slots by priority.
    pub fn schedule(&mut self) {
        self.settle_dependencies();
        let by_id: HashMap<u64, TaskState> = self.state.tasks.iter().map(|t| (t.id, t.state)).collect();
        let mut order: Vec<usize> = (0..self.state.tasks.len())
            .filter(|&i| {
                let t = &self.state.tasks[i];
                t.state == TaskState::Queued
                    && self.state.groups.get(&t.group).is_some_and(|g| !g.paused)
                    && t.after.iter().all(|d| by_id.get(d).is_none_or(|s| *s == TaskState::Finished))
                    && t.after_any.iter().all(|d| by_id.get(d).is_none_or(|s| s.is_final()))
            })
            .collect();
        order.sort_by_key(|&i| (-(self.state.tasks[i].priority as i64), self.state.tasks[i].id));
        for i in order {
            let group = self.state.tasks[i].group.clone();
            let slots = self.state.groups[&group].slots;
            let used: Vec<usize> =
                self.state.tasks.iter().filter(|t| t.group == group && t.state.is_active()).filter_map(|t| t.slot).collect();
            let Some(slot) = (0..slots).find(|s| !used.contains(s)) else { continue };
            if self.state.groups[&group].slurm.is_some() {
                self.submit(i, slot);
            } else {
                self.start(i, slot);
            }
        }
    }

    /// Mark tasks whose `--after` dependency ended without success (transitively).
    fn settle_dependencies(&mut self) {
        loop {
            let by_id: HashMap<u64, TaskState> = self.state.tasks.iter().map(|t| (t.id, t.state)).collect();
            let mut settled = Vec::new();
            for (i, t) in self.state.tasks.iter_mut().enumerate().filter(|(_, t)| matches!(t.state, TaskState::Queued | TaskState::Held)) {
                if let Some((d, s)) =
                    t.after.iter().filter_map(|d| by_id.get(d).map(|s| (*d, *s))).find(|(_, s)| s.is_final() && *s != TaskState::Finished)
                {
                    t.state = TaskState::DepFailed;
                    t.ended_at = Some(unix_now());
                    t.message = format!("not started: task {d} it runs after ended {}", s.name());
                    settled.push(i);
                }
            }
            if settled.is_empty() {
                return;
            }
            self.dirty = true;
            for i in settled {
                self.run_hook(i);
            }
        }
    }

    /// The worker's command line for a task.
    pub fn worker_argv(&self, t: &Task) -> Vec<String> {
        let mut argv = vec![self.exe.display().to_string(), t.job.as_str().to_string()];
        if let Some(c) = &t.config {
            argv.extend(["--cfg".into(), c.display().to_string()]);
        }
        if t.resume_next {
            argv.extend(["--resume".into(), t.run_dir.display().to_string()]);
        }
        for o in &t.overrides {
            argv.extend(["--set".into(), o.clone()]);
        }
        argv.extend(t.args.iter().cloned());
        argv
    }

    fn start(&mut self, i: usize, slot: usize) {
        let t = &self.state.tasks[i];
        let attempt = t.attempts + 1;
        let gpus = self.state.groups.get(&t.group).and_then(|g| g.gpus_for_slot(slot));
        for f in [EXIT_FILE, WORKER_FILE] {
            let _ = std::fs::remove_file(t.run_dir.join(f));
        }
        let argv = self.worker_argv(t);
        let result = (|| -> Result<Child> {
            fsx::create_dir_all(&t.run_dir.join("logs"))?;
            let log_path = t.run_dir.join(SHIM_LOG);
            let log = std::fs::OpenOptions::new()
                .create(true)
                .append(true)
                .open(&log_path)
                .with_context(|| format!("cannot open {}", log_path.display()))?;
            let mut c = Command::new(&self.exe);
            c.arg("__shim")
                .arg("--run-dir")
                .arg(&t.run_dir)
                .arg("--attempt")
                .arg(attempt.to_string())
                .arg("--log-cap")
                .arg(self.state.settings.log_cap_bytes.to_string())
                .arg("--")
                .args(&argv)
                .env("CLIPGAN_HOME", &self.paths.home)
                .env("CLIPGAN_RUN_DIR", &t.run_dir)
                .env("CLIPGAN_SLOT", slot.to_string())
                .env("CLIPGAN_TASK_ID", t.id.to_string())
                .env("CLIPGAN_ATTEMPT", attempt.to_string())
                .current_dir(&self.paths.home)
                .stdin(Stdio::null())
                .stdout(log.try_clone()?)
                .stderr(log);
            if let Some(g) = &gpus {
                c.env("CUDA_VISIBLE_DEVICES", g);
            }
            use std::os::unix::process::CommandExt;
            // SAFETY: setsid is async-signal-safe.
            unsafe { c.pre_exec(procs::setsid_pre_exec) };
            c.spawn().with_context(|| format!("cannot start {}", self.exe.display()))
        })();
        let t = &mut self.state.tasks[i];
        self.dirty = true;
        match result {
            Ok(child) => {
                // Our unreaped child: its pid cannot be reused yet, so this is its identity.
                let shim = ProcId::read(child.id()).unwrap_or(ProcId { pid: child.id(), start: 0 });
                t.attempts = attempt;
                t.state = TaskState::Running;
                t.procs = Some(ProcInfo { attempt, shim, worker: None });
                t.slot = Some(slot);
                t.gpus = gpus;
                t.started_at = Some(unix_now());
                t.ended_at = None;
                t.kill = None;
                t.resume_next = false;
                if !t.message.starts_with("attempt") {
                    t.message.clear();
                }
                self.children.push(child);
            }
            Err(e) => {
                t.state = TaskState::Failed;
                t.ended_at = Some(unix_now());
                t.message = format!("{e:#}");
            }
        }
    }
}
