//! The group's finish hook, run detached when a task ends for good.
use super::Core;
use crate::supervisor::procs;
use std::process::{Command, Stdio};

impl Core {
    /// The group's finish hook: `sh -c CMD clipgan-hook RUN_ID STATUS EXIT_CODE` with
    /// CLIPGAN_* variables; detached, output appended to `.clipgan/hooks.log`.
    pub(super) fn run_hook(&mut self, i: usize) {
        let t = &self.state.tasks[i];
        let Some(cmd) = self.state.groups.get(&t.group).and_then(|g| g.on_finish.clone()) else { return };
        let code = t.exit.as_ref().and_then(|x| x.code).map(|c| c.to_string()).unwrap_or_default();
        let signal = t.exit.as_ref().and_then(|x| x.signal).map(procs::signal_name).unwrap_or_default();
        let log = std::fs::OpenOptions::new().create(true).append(true).open(&self.paths.hooks_log);
        let mut c = Command::new("/bin/sh");
        c.arg("-c").arg(&cmd).arg("clipgan-hook").arg(&t.run_id).arg(t.state.name()).arg(&code);
        c.env("CLIPGAN_TASK_ID", t.id.to_string())
            .env("CLIPGAN_RUN_ID", &t.run_id)
            .env("CLIPGAN_RUN_DIR", &t.run_dir)
            .env("CLIPGAN_STATUS", t.state.name())
            .env("CLIPGAN_EXIT_CODE", &code)
            .env("CLIPGAN_SIGNAL", &signal)
            .env("CLIPGAN_GROUP", &t.group)
            .env("CLIPGAN_LABEL", t.label.clone().unwrap_or_default())
            .env("CLIPGAN_MESSAGE", &t.message)
            .current_dir(&self.paths.home)
            .stdin(Stdio::null());
        match log {
            Ok(f) => {
                let f2 = f.try_clone();
                c.stdout(f);
                if let Ok(f2) = f2 {
                    c.stderr(f2);
                }
            }
            Err(_) => {
                c.stdout(Stdio::null()).stderr(Stdio::null());
            }
        }
        use std::os::unix::process::CommandExt;
        // SAFETY: setsid is async-signal-safe.
        unsafe { c.pre_exec(procs::setsid_pre_exec) };
        match c.spawn() {
            Ok(child) => self.children.push(child),
            Err(e) => eprintln!("clipgan daemon: cannot run the finish hook of task {}: {e}", t.id),
        }
    }
}
