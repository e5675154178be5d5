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
    /// Run as a Slurm job's batch step (docs/slurm.md): continue from the run's
    /// checkpoint when the job was requeued, and requeue the job when a signal (the time
    /// limit's, or preemption's) stopped the worker and the daemon did not ask for it.
    pub slurm: bool,
    /// In Slurm mode: starts in a row without a step of progress after which the shim
    /// records a failure instead of running the worker again.
    pub max_stalls: u32,
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
    let mut a = a;
    if a.slurm {
        if let Some(code) = slurm_prepare(&mut a)? {
            return Ok(code);
        }
    }
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
    // Slurm's warning signal may be another one (USR1, ...): the worker hears SIGTERM,
    // its "checkpoint and exit".
    let signalled = std::sync::Arc::new(std::sync::atomic::AtomicBool::new(false));
    let mut signals =
        signal_hook::iterator::Signals::new([libc::SIGTERM, libc::SIGINT, libc::SIGHUP, libc::SIGQUIT, libc::SIGUSR1, libc::SIGUSR2])
            .context("cannot install the shim's signal handlers")?;
    {
        let signalled = signalled.clone();
        std::thread::spawn(move || {
            for sig in signals.forever() {
                match sig {
                    libc::SIGHUP => {}
                    libc::SIGUSR1 | libc::SIGUSR2 => {
                        signalled.store(true, std::sync::atomic::Ordering::SeqCst);
                        let _ = procs::signal_group(pid as i32, libc::SIGTERM);
                    }
                    _ => {
                        signalled.store(true, std::sync::atomic::Ordering::SeqCst);
                        let _ = procs::signal_group(pid as i32, sig);
                    }
                }
            }
        });
    }

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
    if a.slurm && x.code == Some(crate::rundir::exit::STOPPED as i32) && signalled.load(std::sync::atomic::Ordering::SeqCst) {
        slurm_requeue(&a.run_dir);
    }
    Ok(0)
}

/// Slurm mode, before the worker starts: continue from the run's checkpoint (a requeued
/// job runs the same script again), and refuse to loop when the job keeps being stopped
/// without progress. `Some(code)` when the shim ends here.
fn slurm_prepare(a: &mut ShimArgs) -> Result<Option<u8>> {
    use crate::supervisor::slurm;
    let status = crate::rundir::RunDir::open(&a.run_dir).ok().and_then(|d| d.status().ok().flatten());
    let checkpoint = status.as_ref().and_then(|s| s.last_checkpoint.clone()).filter(|c| a.run_dir.join(c).is_file());
    if checkpoint.is_some() && !a.argv.iter().any(|x| x == "--resume") && a.argv.len() >= 2 {
        a.argv.splice(2..2, ["--resume".to_string(), a.run_dir.display().to_string()]);
    }
    // Progress between starts: the step the run had reached at each start.
    let path = slurm::dir(&a.run_dir).join("progress.json");
    let step = status.as_ref().map(|s| s.step);
    let mut p: StartProgress = std::fs::read(&path).ok().and_then(|b| serde_json::from_slice(&b).ok()).unwrap_or_default();
    let restarted = std::env::var("SLURM_RESTART_COUNT").ok().and_then(|v| v.parse::<u32>().ok()).unwrap_or(0) > 0;
    if restarted && p.step.is_some() && step <= p.step {
        p.stalls += 1;
    } else {
        p.stalls = 0;
    }
    p.step = step;
    fsx::create_dir_all(&slurm::dir(&a.run_dir))?;
    write_json(&path, &p)?;
    if p.stalls >= a.max_stalls.max(1) {
        let msg = format!(
            "the Slurm job was stopped {} times in a row without progress (still at step {}): not starting it again; raise its time limit (--slurm-arg=--time=...) or look at logs/slurm-*.out",
            p.stalls,
            step.unwrap_or(0)
        );
        eprintln!("clipgan shim: {msg}");
        let _ = CappedLog::open(&a.run_dir.join(STDERR_LOG), a.log_cap).and_then(|mut l| l.write(format!("clipgan: {msg}\n").as_bytes()));
        write_exit(
            &a.run_dir,
            &ExitRecord {
                attempt: a.attempt,
                code: Some(crate::rundir::exit::FAILED as i32),
                signal: None,
                core_dumped: false,
                ended: unix_now(),
            },
        )?;
        return Ok(Some(0));
    }
    Ok(None)
}

/// The worker saved its checkpoint after Slurm's signal: put the job back in the queue
/// (keeping its id) unless the daemon asked for the stop.
fn slurm_requeue(run_dir: &Path) {
    if crate::supervisor::slurm::stop_request(run_dir).exists() {
        eprintln!("clipgan shim: stopped on the user's request; the job is not requeued");
        return;
    }
    let Ok(job) = std::env::var("SLURM_JOB_ID") else {
        eprintln!("clipgan shim: no SLURM_JOB_ID in the environment; the job cannot be requeued");
        return;
    };
    eprintln!("clipgan shim: stopped by a signal (time limit or preemption): requeueing Slurm job {job}");
    match crate::supervisor::slurm::run("scontrol", &["requeue".into(), job]) {
        Ok(_) => {}
        // Preemption or `scontrol requeue` from outside: Slurm requeues it already.
        Err(e) if format!("{e:#}").contains("pending") => eprintln!("clipgan shim: Slurm requeues the job already"),
        Err(e) => eprintln!("clipgan shim: {e:#}; the run stays stopped and resumable (`clipgan resume-run`)"),
    }
}

/// `slurm/progress.json`: the run's step at the last start, and how many starts in a row
/// found no progress.
#[derive(Default, Serialize, Deserialize)]
struct StartProgress {
    step: Option<u64>,
    stalls: u32,
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
