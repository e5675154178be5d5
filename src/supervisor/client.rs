//! The client side of the daemon's socket, for the CLI and the console: connect (or
//! start the daemon and connect), typed requests, change notification.
//!
//! Blocking on purpose: requests are short, and the console can call it from a
//! `spawn_blocking` task or a thread of its own. One `Client` is one connection;
//! requests on it are answered in order.
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
}

impl Client {
    /// Connect to the running daemon of `paths.home`; an error if none answers.
    pub fn connect(paths: &Paths) -> Result<Client> {
        let stream = UnixStream::connect(&paths.socket).with_context(|| format!("no daemon answers on {}", paths.socket.display()))?;
        let writer = stream.try_clone()?;
        Ok(Client { reader: BufReader::new(stream), writer, paths: paths.clone() })
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
        let mut line = serde_json::to_vec(&RequestLine { v: PROTOCOL_VERSION, req })?;
        line.push(b'\n');
        self.writer.write_all(&line).context("the daemon closed the connection")?;
        let mut buf = String::new();
        let n = self.reader.read_line(&mut buf).context("cannot read the daemon's answer")?;
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
pub struct LogPaths {
    pub run_dir: PathBuf,
    pub stdout: PathBuf,
    pub stderr: PathBuf,
}

fn unexpected(r: &Response) -> anyhow::Error {
    anyhow!("unexpected answer from the daemon: {}", serde_json::to_string(r).unwrap_or_default())
}
