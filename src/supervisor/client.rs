//! The client side of the daemon's socket, for the CLI and the console: connect (or
//! start the daemon and connect), typed requests, change notification.
//!
//! Blocking on purpose: requests are short, and the console can call it from a
//! `spawn_blocking` task or a thread of its own. One `Client` is one connection;
//! requests on it are answered in order. Every request has a deadline
//! ([`answer_timeout`] beyond what the request itself waits): a daemon that is stopped
//! (SIGSTOP) or stuck is reported with its pid and what to do, never waited on forever.
use super::protocol::*;
use super::Paths;
use anyhow::{anyhow, bail, Context, Result};
use std::io::{BufRead, BufReader, Write};
use std::os::unix::net::UnixStream;
use std::path::{Path, PathBuf};
use std::time::Duration;

pub struct Client {
    reader: BufReader<UnixStream>,
    writer: UnixStream,
    pub paths: Paths,
    /// Set when a request timed out: its answer may still come and would be taken for
    /// the next one's, so the connection is not used again.
    abandoned: bool,
}

/// How long a client waits for the daemon's answer beyond what the request itself waits
/// (10 s; `CLIPGAN_CLIENT_TIMEOUT`, in seconds, overrides it).
pub fn answer_timeout() -> Duration {
    std::env::var("CLIPGAN_CLIENT_TIMEOUT")
        .ok()
        .and_then(|v| v.trim().parse::<f64>().ok())
        .filter(|s| s.is_finite() && *s > 0.0 && *s < 1e6)
        .map(Duration::from_secs_f64)
        .unwrap_or(Duration::from_secs(10))
}

fn is_timeout(e: &std::io::Error) -> bool {
    matches!(e.kind(), std::io::ErrorKind::WouldBlock | std::io::ErrorKind::TimedOut)
}

impl Client {
    /// Connect to the running daemon of `paths.home`; an error if none answers.
    pub fn connect(paths: &Paths) -> Result<Client> {
        let stream = UnixStream::connect(&paths.socket).with_context(|| format!("no daemon answers on {}", paths.socket.display()))?;
        let writer = stream.try_clone()?;
        Ok(Client { reader: BufReader::new(stream), writer, paths: paths.clone(), abandoned: false })
    }

    /// Connect, starting the daemon first if none runs (with this process's binary,
    /// which must be `clipgan`).
    pub fn connect_or_spawn(paths: &Paths) -> Result<Client> {
        let exe = std::env::current_exe().context("cannot find the clipgan binary")?;
        Client::connect_or_spawn_with(paths, &exe)
    }

    /// Like [`connect_or_spawn`](Self::connect_or_spawn) with the `clipgan` binary given
    /// (tests, or a process that is not clipgan). The daemon is started by running
    /// `clipgan daemon`, which detaches it and returns once it answers.
    pub fn connect_or_spawn_with(paths: &Paths, exe: &Path) -> Result<Client> {
        if let Ok(c) = Client::connect(paths) {
            return Ok(c);
        }
        let out = std::process::Command::new(exe)
            .arg("daemon")
            .env("CLIPGAN_HOME", &paths.home)
            .stdin(std::process::Stdio::null())
            .output()
            .with_context(|| format!("cannot run {} daemon", exe.display()))?;
        if !out.status.success() {
            bail!("cannot start the daemon: {}", String::from_utf8_lossy(&out.stderr).trim());
        }
        Client::connect(paths)
    }

    /// Send a request and read its response (errors are transport errors only).
    pub fn request(&mut self, req: Request) -> Result<Response> {
        if self.abandoned {
            bail!("this connection to the daemon was given up after a request timed out; connect again");
        }
        let waits = match &req {
            Request::Wait { timeout_ms, .. } => Duration::from_millis((*timeout_ms).min(600_000)),
            _ => Duration::ZERO,
        };
        let limit = answer_timeout() + waits;
        // One socket under both halves: the timeouts apply to both.
        self.writer.set_write_timeout(Some(limit))?;
        self.writer.set_read_timeout(Some(limit))?;
        let mut line = serde_json::to_vec(&RequestLine { v: PROTOCOL_VERSION, req })?;
        line.push(b'\n');
        if let Err(e) = self.writer.write_all(&line) {
            return Err(self.failed(e, limit, "the daemon closed the connection"));
        }
        let mut buf = String::new();
        let n = match self.reader.read_line(&mut buf) {
            Ok(n) => n,
            Err(e) => return Err(self.failed(e, limit, "cannot read the daemon's answer")),
        };
        if n == 0 {
            bail!("the daemon closed the connection without answering");
        }
        let r: ResponseLine =
            serde_json::from_str(&buf).with_context(|| format!("the daemon's answer is not understood: {}", buf.trim()))?;
        if r.v != PROTOCOL_VERSION {
            bail!("the daemon speaks protocol {} and this client {PROTOCOL_VERSION}; restart it: clipgan daemon --stop", r.v);
        }
        Ok(r.resp)
    }

    /// The error for a failed read or write: a timeout says the daemon is not answering,
    /// with its pid and what to do (the first line alone is what the console's header
    /// shows).
    fn failed(&mut self, e: std::io::Error, limit: Duration, what: &str) -> anyhow::Error {
        if !is_timeout(&e) {
            return anyhow::Error::new(e).context(what.to_string());
        }
        self.abandoned = true;
        let pid = super::daemon::lock_holder(&self.paths);
        let who = pid.map(|p| format!("the daemon (pid {p})")).unwrap_or_else(|| "the daemon".into());
        let p = pid.map(|p| p.to_string()).unwrap_or_else(|| "PID".into());
        anyhow!(
            "{who} is not answering (no reply in {:.0} s)\n\
             It may be stopped (resume it: kill -CONT {p}) or stuck: stop it with `kill {p}` (its workers keep running) \
             and run the command again, which starts a new daemon; its log is {}",
            limit.as_secs_f64(),
            self.paths.log.display()
        )
    }

    /// Send a request; an error response becomes an `Err` (message and details).
    pub fn call(&mut self, req: Request) -> Result<Response> {
        match self.request(req)? {
            Response::Error { message, details } => {
                let mut m = message;
                for d in details {
                    m.push('\n');
                    m.push_str(&d);
                }
                Err(anyhow!(m))
            }
            r => Ok(r),
        }
    }

    /// A request answered with `Ok`: its message (and warnings, e.g. a failed save).
    pub fn call_ok(&mut self, req: Request) -> Result<(String, Vec<String>)> {
        match self.call(req)? {
            Response::Ok { message, warnings } => Ok((message, warnings)),
            other => Err(unexpected(&other)),
        }
    }

    pub fn hello(&mut self) -> Result<(u32, String)> {
        match self.call(Request::Hello)? {
            Response::Hello { pid, version, .. } => Ok((pid, version)),
            other => Err(unexpected(&other)),
        }
    }

    /// Every task (with live fields), group and setting.
    pub fn status(&mut self) -> Result<Snapshot> {
        match self.call(Request::Status)? {
            Response::Snapshot(s) => Ok(*s),
            other => Err(unexpected(&other)),
        }
    }

    /// Block until the state changes after revision `since` (or `timeout` passes);
    /// returns the current revision. A client loops: status, wait(rev), status, ...
    pub fn wait_change(&mut self, since: u64, timeout: Duration) -> Result<u64> {
        match self.call(Request::Wait { since, timeout_ms: timeout.as_millis() as u64 })? {
            Response::Rev { rev } => Ok(rev),
            other => Err(unexpected(&other)),
        }
    }

    /// Queue a task; returns its id, run id, run folder and warnings.
    pub fn add(&mut self, task: AddTask) -> Result<Added> {
        match self.call(Request::Add(task))? {
            Response::Added { id, run_id, run_dir, warnings } => Ok(Added { id, run_id, run_dir, warnings }),
            other => Err(unexpected(&other)),
        }
    }

    /// Queue a sweep (all its tasks or none); returns its id and its tasks' ids.
    pub fn add_sweep(&mut self, sweep: AddSweep) -> Result<SweepAdded> {
        match self.call(Request::AddSweep(sweep))? {
            Response::SweepAdded { sweep, ids, run_ids, warnings } => Ok(SweepAdded { sweep, ids, run_ids, warnings }),
            other => Err(unexpected(&other)),
        }
    }

    pub fn kill(&mut self, id: u64, signal: Option<&str>, timeout_s: Option<f64>) -> Result<(String, Vec<String>)> {
        self.call_ok(Request::Kill { id, signal: signal.map(str::to_string), timeout_s })
    }

    pub fn pause(&mut self, target: Target, wait: bool) -> Result<(String, Vec<String>)> {
        self.call_ok(Request::Pause { target, wait })
    }

    pub fn resume(&mut self, target: Target) -> Result<(String, Vec<String>)> {
        self.call_ok(Request::Resume { target })
    }

    pub fn restart(&mut self, id: u64) -> Result<(String, Vec<String>)> {
        self.call_ok(Request::Restart { id })
    }

    pub fn resume_run(&mut self, id: u64) -> Result<(String, Vec<String>)> {
        self.call_ok(Request::ResumeRun { id })
    }

    pub fn remove(&mut self, id: u64) -> Result<(String, Vec<String>)> {
        self.call_ok(Request::Remove { id })
    }

    /// Groups with their running and queued counts.
    pub fn groups(&mut self) -> Result<Vec<GroupView>> {
        Ok(self.status()?.groups)
    }

    pub fn group_add(&mut self, name: &str, change: GroupChange) -> Result<(String, Vec<String>)> {
        self.call_ok(Request::GroupAdd { name: name.to_string(), change })
    }

    pub fn group_set(&mut self, name: &str, change: GroupChange) -> Result<(String, Vec<String>)> {
        self.call_ok(Request::GroupSet { name: name.to_string(), change })
    }

    pub fn group_remove(&mut self, name: &str) -> Result<(String, Vec<String>)> {
        self.call_ok(Request::GroupRemove { name: name.to_string() })
    }

    pub fn settings(&mut self, change: SettingsChange) -> Result<(String, Vec<String>)> {
        self.call_ok(Request::Settings(change))
    }

    /// Stop the daemon (workers keep running).
    pub fn shutdown(&mut self) -> Result<(String, Vec<String>)> {
        self.call_ok(Request::Shutdown)
    }

    /// The config folder's index with each file's validation state.
    pub fn configs(&mut self, rescan: bool) -> Result<ConfigIndex> {
        match self.call(if rescan { Request::Rescan } else { Request::Configs })? {
            Response::Configs(c) => Ok(c),
            other => Err(unexpected(&other)),
        }
    }

    /// A task's run folder and log files.
    pub fn logs(&mut self, id: u64) -> Result<LogPaths> {
        match self.call(Request::Logs { id })? {
            Response::Logs { run_dir, stdout, stderr } => Ok(LogPaths { run_dir, stdout, stderr }),
            other => Err(unexpected(&other)),
        }
    }
}

#[derive(Clone, Debug)]
pub struct Added {
    pub id: u64,
    pub run_id: String,
    pub run_dir: PathBuf,
    pub warnings: Vec<String>,
}

#[derive(Clone, Debug)]
pub struct SweepAdded {
    pub sweep: String,
    pub ids: Vec<u64>,
    pub run_ids: Vec<String>,
    pub warnings: Vec<String>,
}

#[derive(Clone, Debug)]
pub struct LogPaths {
    pub run_dir: PathBuf,
    pub stdout: PathBuf,
    pub stderr: PathBuf,
}

fn unexpected(r: &Response) -> anyhow::Error {
    anyhow!("unexpected answer from the daemon: {}", serde_json::to_string(r).unwrap_or_default())
}
