//! The shim (`clipgan __shim`): one small process per attempt, in its own session, that
//! starts the worker in its own process group, captures its stdout/stderr into the run
//! folder's size-capped logs, waits for it and writes how it ended to `exit.json`.
//!
//! It exists so that workers never depend on the daemon: their output pipes are read by
//! the shim, not the daemon, and their outcome is recorded even while no daemon runs.
//! A run folder is supervised by at most one shim at a time (an flock on
//! `.shim.lock`), so a task can never run twice in the same folder.
use super::logcap::CappedLog;
use super::procs::{self, ProcId};
use crate::rundir::{EXIT_FILE, WORKER_FILE};
use crate::rundir::{STDERR_LOG, STDOUT_LOG};
use crate::util::{fsx, unix_now};
use anyhow::{bail, Context, Result};
use serde::{Deserialize, Serialize};
use std::io::Read;
use std::os::unix::process::{CommandExt, ExitStatusExt};
use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};
use std::time::Duration;

/// `worker.json`: written by the shim once the worker runs.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct WorkerRecord {
    pub attempt: u32,
    pub shim: ProcId,
    /// The worker; its pid is also its process group id.
    pub worker: ProcId,
    pub started: f64,
    pub argv: Vec<String>,
}

/// `exit.json`: how the attempt's worker ended.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct ExitRecord {
    pub attempt: u32,
    /// Exit code, when it exited.
    pub code: Option<i32>,
    /// Signal number, when a signal ended it.
    pub signal: Option<i32>,
    #[serde(default)]
    pub core_dumped: bool,
    pub ended: f64,
}

/// Exit code of a shim that found the run folder already supervised.
pub const EXIT_BUSY: u8 = 75;

pub struct ShimArgs {
    pub run_dir: PathBuf,
    pub attempt: u32,
    pub log_cap: u64,
    pub argv: Vec<String>,
}

pub fn run(a: ShimArgs) -> Result<u8> {
    if a.argv.is_empty() {
        bail!("no worker command given");
    }
    let _lock = match lock_run_dir(&a.run_dir)? {
        Some(l) => l,
        None => {
            eprintln!("clipgan shim: another shim already supervises {}; not starting a second worker", a.run_dir.display());
            return Ok(EXIT_BUSY);
        }
    };
    eprintln!("clipgan shim: starting attempt {} at {}: {}", a.attempt, chrono::Utc::now().to_rfc3339(), a.argv.join(" "));
    let mut cmd = Command::new(&a.argv[0]);
    cmd.args(&a.argv[1..]).process_group(0).stdin(Stdio::null()).stdout(Stdio::piped()).stderr(Stdio::piped());
    let mut child = match cmd.spawn() {
        Ok(c) => c,
        Err(e) => {
            let msg = format!("clipgan shim: cannot start the worker {}: {e}\n", a.argv[0]);
            let _ = CappedLog::open(&a.run_dir.join(STDERR_LOG), a.log_cap).and_then(|mut l| l.write(msg.as_bytes()));
            write_exit(
                &a.run_dir,
                &ExitRecord { attempt: a.attempt, code: Some(127), signal: None, core_dumped: false, ended: unix_now() },
            )?;
            return Ok(0);
        }
    };
    let pid = child.id();
    let worker = ProcId::read(pid).unwrap_or(ProcId { pid, start: 0 });
    let me = ProcId::read(std::process::id()).context("cannot read this process's identity from /proc")?;
    let record = WorkerRecord { attempt: a.attempt, shim: me, worker, started: unix_now(), argv: a.argv.clone() };
    write_json(&a.run_dir.join(WORKER_FILE), &record)?;

    // Signals sent to the shim itself go to the worker's group (the daemon signals the
    // group directly); the shim stays to record the outcome. SIGHUP is ignored.
    let mut signals = signal_hook::iterator::Signals::new([libc::SIGTERM, libc::SIGINT, libc::SIGHUP, libc::SIGQUIT])
        .context("cannot install the shim's signal handlers")?;
    std::thread::spawn(move || {
        for sig in signals.forever() {
            if sig != libc::SIGHUP {
                let _ = procs::signal_group(pid as i32, sig);
            }
        }
    });

    let (done_tx, done_rx) = std::sync::mpsc::channel::<()>();
    let mut copiers = Vec::new();
    for (pipe, rel) in [
        (child.stdout.take().map(|p| Box::new(p) as Box<dyn Read + Send>), STDOUT_LOG),
        (child.stderr.take().map(|p| Box::new(p) as Box<dyn Read + Send>), STDERR_LOG),
    ] {
        let Some(mut pipe) = pipe else { continue };
        let path = a.run_dir.join(rel);
        let cap = a.log_cap;
        let done = done_tx.clone();
        copiers.push(std::thread::spawn(move || {
            let result = copy_capped(&mut pipe, &path, cap);
            if let Err(e) = result {
                eprintln!("clipgan shim: {e:#}");
                // Keep draining so the worker never blocks on a full pipe.
                let _ = std::io::copy(&mut pipe, &mut std::io::sink());
            }
            let _ = done.send(());
        }));
    }
    drop(done_tx);
    let status = child.wait().context("cannot wait for the worker")?;
    // The worker's own children may hold the pipes open after it exits: give the
    // copiers a moment, then record the outcome anyway.
    let deadline = std::time::Instant::now() + Duration::from_secs(3);
    for _ in 0..copiers.len() {
        let left = deadline.saturating_duration_since(std::time::Instant::now());
        if done_rx.recv_timeout(left).is_err() {
            break;
        }
    }
    let x = ExitRecord {
        attempt: a.attempt,
        code: status.code(),
        signal: status.signal(),
        core_dumped: status.core_dumped(),
        ended: unix_now(),
    };
    write_exit(&a.run_dir, &x)?;
    eprintln!("clipgan shim: attempt {} ended: code {:?}, signal {:?}", a.attempt, x.code, x.signal.map(procs::signal_name));
    Ok(0)
}

fn copy_capped(pipe: &mut dyn Read, path: &Path, cap: u64) -> Result<()> {
    let mut log = CappedLog::open(path, cap)?;
    let mut buf = vec![0u8; 64 * 1024];
    loop {
        let n = match pipe.read(&mut buf) {
            Ok(0) => return Ok(()),
            Ok(n) => n,
            Err(e) if e.kind() == std::io::ErrorKind::Interrupted => continue,
            Err(e) => return Err(e).context("cannot read the worker's output"),
        };
        log.write(&buf[..n])?;
    }
}

fn write_json<T: Serialize>(path: &Path, v: &T) -> Result<()> {
    let mut b = serde_json::to_vec_pretty(v)?;
    b.push(b'\n');
    fsx::atomic_write(path, &b)
}

fn write_exit(run_dir: &Path, x: &ExitRecord) -> Result<()> {
    write_json(&run_dir.join(EXIT_FILE), x)
}

/// Hold `<run_dir>/.shim.lock` for the life of this process; `None` if another holds it.
fn lock_run_dir(run_dir: &Path) -> Result<Option<std::fs::File>> {
    let path = run_dir.join(".shim.lock");
    let f = std::fs::OpenOptions::new()
        .create(true)
        .truncate(false)
        .write(true)
        .open(&path)
        .with_context(|| format!("cannot open {}", path.display()))?;
    Ok(try_flock(&f)?.then_some(f))
}

/// Exclusive, non-blocking flock: `Ok(false)` when another process holds it.
pub fn try_flock(f: &std::fs::File) -> Result<bool> {
    use std::os::fd::AsRawFd;
    // SAFETY: plain system call on an open descriptor.
    if unsafe { libc::flock(f.as_raw_fd(), libc::LOCK_EX | libc::LOCK_NB) } == 0 {
        return Ok(true);
    }
    let e = std::io::Error::last_os_error();
    if e.raw_os_error() == Some(libc::EWOULDBLOCK) {
        return Ok(false);
    }
    Err(e).context("cannot lock")
}
