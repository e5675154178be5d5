//! Slurm, the other place a task can run: the daemon hands the task to `sbatch` instead of
//! starting its shim here. Process handling only (commands, their output, the job
//! script); what the daemon decides from it is in `core/slurm.rs`. See docs/slurm.md.
//!
//! Every Slurm command runs with a deadline, so a controller that does not answer never
//! stalls the daemon for long, and job states are polled by one background thread (one
//! `squeue` for all of the user's jobs a second), never on the daemon's loop.
use anyhow::{bail, Context, Result};
use serde::{Deserialize, Serialize};
use std::collections::HashMap;
use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

/// How long one Slurm command may take before it is killed and reported.
pub const COMMAND_TIMEOUT: Duration = Duration::from_secs(20);
/// Seconds between two polls of the job states.
pub const POLL_EVERY: Duration = Duration::from_secs(1);

/// A group's Slurm settings (`clipgan groups add NAME --executor slurm ...`).
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
#[serde(default)]
pub struct SlurmOptions {
    /// `sbatch` options, each passed as it is (`--partition=gpu`, `--gres=gpu:1`, ...).
    pub args: Vec<String>,
    /// The signal the worker gets before the time limit and on preemption (`TERM`, `USR1`,
    /// ...): it saves a resumable checkpoint and the job is requeued.
    pub signal: String,
    /// Seconds before the time limit that the signal comes.
    pub signal_before_s: u32,
    /// Requeues in a row without a step of progress after which the task fails instead
    /// of looping.
    pub max_stalls: u32,
}

impl Default for SlurmOptions {
    fn default() -> SlurmOptions {
        SlurmOptions { args: Vec::new(), signal: "TERM".into(), signal_before_s: 120, max_stalls: 3 }
    }
}

/// A task's job in Slurm, as the daemon last saw it.
#[derive(Clone, Debug, Default, PartialEq, Serialize, Deserialize)]
#[serde(default)]
pub struct SlurmJob {
    pub job_id: u64,
    /// Slurm's state name (`PENDING`, `RUNNING`, `COMPLETED`, ...); empty until polled.
    pub state: String,
    /// Why it pends (`Resources`, `Priority`, `BeginTime`, ...), `None` when it does not.
    pub reason: String,
    /// Where it runs.
    pub node: String,
    pub submitted_at: f64,
    /// The job script, kept in the run folder for the record.
    pub script: PathBuf,
    /// When the daemon last saw the job in Slurm's queue.
    pub seen_at: f64,
}

impl SlurmJob {
    /// One line for `status` and the console: `slurm 12 PENDING (Resources)`, `slurm 12 RUNNING on node3`.
    pub fn describe(&self) -> String {
        let mut s = format!("slurm {}", self.job_id);
        if !self.state.is_empty() {
            s.push(' ');
            s.push_str(&self.state);
        }
        if !self.reason.is_empty() && self.reason != "None" {
            s.push_str(&format!(" ({})", self.reason));
        }
        if !self.node.is_empty() && self.state != "PENDING" {
            s.push_str(&format!(" on {}", self.node));
        }
        s
    }
}

/// Whether a Slurm job state is one the job does not leave (it will not run again).
pub fn is_terminal(state: &str) -> bool {
    matches!(
        state,
        "COMPLETED"
            | "FAILED"
            | "CANCELLED"
            | "TIMEOUT"
            | "NODE_FAIL"
            | "OUT_OF_MEMORY"
            | "BOOT_FAIL"
            | "DEADLINE"
            | "PREEMPTED"
            | "SPECIAL_EXIT"
            | "REVOKED"
    )
}

/// One job as `squeue` lists it.
#[derive(Clone, Debug, PartialEq)]
pub struct JobInfo {
    pub state: String,
    pub reason: String,
    pub node: String,
}

/// Run a command with [`COMMAND_TIMEOUT`]; its stdout on success, else an error with
/// what it printed on stderr (Slurm's own message).
pub fn run(cmd: &str, args: &[String]) -> Result<String> {
    let mut c = Command::new(cmd);
    c.args(args).stdin(Stdio::null()).stdout(Stdio::piped()).stderr(Stdio::piped());
    let mut child = c.spawn().map_err(|e| {
        if e.kind() == std::io::ErrorKind::NotFound {
            anyhow::anyhow!("`{cmd}` was not found on the daemon's PATH: this machine has no Slurm client (install Slurm's client commands, or run the daemon where they are)")
        } else {
            anyhow::anyhow!("cannot run {cmd}: {e}")
        }
    })?;
    // Drain both pipes in threads so a chatty command never blocks on a full pipe.
    let mut out = child.stdout.take().expect("piped");
    let mut err = child.stderr.take().expect("piped");
    let out_t = std::thread::spawn(move || {
        let mut s = String::new();
        let _ = std::io::Read::read_to_string(&mut out, &mut s);
        s
    });
    let err_t = std::thread::spawn(move || {
        let mut s = String::new();
        let _ = std::io::Read::read_to_string(&mut err, &mut s);
        s
    });
    let deadline = Instant::now() + COMMAND_TIMEOUT;
    let status = loop {
        if let Some(s) = child.try_wait()? {
            break s;
        }
        if Instant::now() >= deadline {
            let _ = child.kill();
            let _ = child.wait();
            bail!("`{cmd}` did not answer within {} s (is slurmctld up?)", COMMAND_TIMEOUT.as_secs());
        }
        std::thread::sleep(Duration::from_millis(20));
    };
    let (out, err) = (out_t.join().unwrap_or_default(), err_t.join().unwrap_or_default());
    if !status.success() {
        let msg = err.lines().map(str::trim).filter(|l| !l.is_empty()).collect::<Vec<_>>().join("; ");
        bail!("{cmd} failed: {}", if msg.is_empty() { format!("exit status {status}") } else { crate::util::cut(&msg, 500) });
    }
    Ok(out)
}

/// Check a group's `sbatch` options with Slurm itself, submitting nothing
/// (`sbatch --test-only`): an unknown option or partition is Slurm's own message.
pub fn check_options(o: &SlurmOptions) -> Result<()> {
    if let Some(bad) = o.args.iter().find(|a| !a.starts_with('-')) {
        bail!("sbatch option {bad:?} does not start with '-' (write it as --name=value)");
    }
    crate::supervisor::procs::parse_signal(&o.signal).with_context(|| format!("the Slurm signal {:?}", o.signal))?;
    let mut args: Vec<String> = vec!["--test-only".into()];
    args.extend(o.args.iter().cloned());
    args.push("--wrap=true".into());
    run("sbatch", &args).map(|_| ()).context("Slurm refused the group's sbatch options")
}

/// Submit a job script; its job id.
pub fn submit(script: &Path) -> Result<u64> {
    let out = run("sbatch", &["--parsable".into(), script.display().to_string()])?;
    // `--parsable` prints `id` or `id;cluster`.
    let first = out.trim().split(';').next().unwrap_or("").trim();
    first.parse().with_context(|| format!("sbatch printed {:?}, not a job id", crate::util::cut(out.trim(), 200)))
}

/// Send a signal to the job's batch step (the shim, which passes it to the worker).
pub fn signal_batch(job: u64, signal: &str) -> Result<()> {
    run("scancel", &["--batch".into(), format!("--signal={signal}"), job.to_string()]).map(|_| ())
}

/// Cancel the job (all its processes get SIGTERM, then SIGKILL after Slurm's KillWait).
pub fn cancel(job: u64) -> Result<()> {
    run("scancel", &[job.to_string()]).map(|_| ())
}

/// Hold (`true`) or release a pending job.
pub fn hold(job: u64, on: bool) -> Result<()> {
    run("scontrol", &[if on { "hold" } else { "release" }.into(), job.to_string()]).map(|_| ())
}

/// Jobs of this user with the given name (to find a submission the daemon did not save).
pub fn jobs_named(name: &str) -> Result<Vec<u64>> {
    let out = run("squeue", &["-h".into(), "--me".into(), "--states=all".into(), format!("--name={name}"), "-o".into(), "%i".into()])?;
    Ok(out.lines().filter_map(|l| l.trim().parse().ok()).collect())
}

/// All of this user's jobs that Slurm still lists, finished ones included (for
/// `MinJobAge` seconds after they end).
pub fn list_jobs() -> Result<HashMap<u64, JobInfo>> {
    let out = run("squeue", &["-h".into(), "--me".into(), "--states=all".into(), "-o".into(), "%i|%T|%r|%N".into()])?;
    Ok(parse_squeue(&out))
}

/// `squeue -o '%i|%T|%r|%N'` lines. Array tasks (`12_3`) are not ours and are skipped.
pub fn parse_squeue(text: &str) -> HashMap<u64, JobInfo> {
    text.lines()
        .filter_map(|l| {
            let mut f = l.trim().splitn(4, '|');
            let id = f.next()?.parse().ok()?;
            let state = f.next()?.to_string();
            let reason = f.next().unwrap_or("").to_string();
            let node = f.next().unwrap_or("").to_string();
            Some((id, JobInfo { state, reason, node }))
        })
        .collect()
}

/// Slurm's accounting record of a job that `squeue` no longer lists: its state and exit
/// code (`COMPLETED`, `0:0`). `None` where the cluster keeps no accounting (sacct fails).
pub fn accounting(job: u64) -> Option<(String, String)> {
    let out =
        run("sacct", &["-n".into(), "-P".into(), "-X".into(), "-j".into(), job.to_string(), "-o".into(), "State,ExitCode".into()]).ok()?;
    let line = out.lines().map(str::trim).find(|l| !l.is_empty())?;
    let (state, code) = line.split_once('|')?;
    // `CANCELLED by 0` -> `CANCELLED`.
    Some((state.split_whitespace().next()?.to_string(), code.to_string()))
}

/// Whether the compute nodes can see `path`: a path on this machine's own `/tmp` or a
/// tmpfs is seen by this machine alone, which is fine only when the cluster's one node is
/// this machine. The error says what to do.
pub fn check_reachable(path: &Path) -> Result<()> {
    let local_only = path.starts_with("/tmp") || path.starts_with("/dev/shm") || is_tmpfs(path);
    if !local_only {
        return Ok(());
    }
    let nodes = run("sinfo", &["-h".into(), "-N".into(), "-o".into(), "%N".into()])?;
    match unreachable_by(path, &nodes, &hostname()) {
        Some(msg) => bail!(msg),
        None => Ok(()),
    }
}

/// The refusal for a machine-local `path` given `sinfo -N -o %N`'s lines: `None` when
/// every node is this host.
fn unreachable_by(path: &Path, nodes: &str, host: &str) -> Option<String> {
    let mut others: Vec<&str> = nodes.lines().map(str::trim).filter(|n| !n.is_empty() && *n != host).collect();
    others.dedup();
    (!others.is_empty()).then(|| {
        format!(
            "{} is on this machine's own storage (/tmp or a tmpfs), which the cluster's nodes ({}) cannot see; put the project home on a shared file system",
            path.display(),
            crate::util::cut(&others.join(","), 200)
        )
    })
}

// `f_type` and the magic number have different integer types on different architectures.
#[allow(clippy::unnecessary_cast)]
fn is_tmpfs(path: &Path) -> bool {
    use std::os::unix::ffi::OsStrExt;
    let Ok(c) = std::ffi::CString::new(path.as_os_str().as_bytes()) else { return false };
    // SAFETY: statfs fills the struct we pass; the path is a valid C string.
    let mut st: libc::statfs = unsafe { std::mem::zeroed() };
    (unsafe { libc::statfs(c.as_ptr(), &mut st) } == 0) && st.f_type as i64 == libc::TMPFS_MAGIC as i64
}

fn hostname() -> String {
    std::fs::read_to_string("/proc/sys/kernel/hostname").map(|h| h.trim().to_string()).unwrap_or_default()
}

/// The job name of a task: unique per home and task, so a daemon that died between
/// `sbatch` and saving its state finds the job again instead of submitting twice.
pub fn job_name(home: &Path, task_id: u64) -> String {
    format!("{}{task_id}", job_name_prefix(home))
}

/// What the job names of one home's tasks start with.
pub fn job_name_prefix(home: &Path) -> String {
    format!("clipgan-{:08x}-", crc32fast::hash(home.as_os_str().as_encoded_bytes()))
}

/// What a job script needs.
pub struct JobScript<'a> {
    pub name: String,
    pub options: &'a SlurmOptions,
    pub run_dir: &'a Path,
    pub home: &'a Path,
    pub task_id: u64,
    /// The attempt number of the job's first start; Slurm's restart count adds to it.
    pub first_attempt: u32,
    pub log_cap: u64,
    pub exe: &'a Path,
    pub argv: &'a [String],
}

/// Quote for a POSIX shell.
fn sh(s: &str) -> String {
    if !s.is_empty() && s.chars().all(|c| c.is_ascii_alphanumeric() || "/._-=:,+@%".contains(c)) {
        s.to_string()
    } else {
        format!("'{}'", s.replace('\'', "'\\''"))
    }
}

/// The batch script: `#SBATCH` lines (the group's options after ours, so they win),
/// the worker's environment, then `exec` of the same shim a local start runs, in Slurm
/// mode (attempt from the restart count, resume from a checkpoint, requeue after a
/// signal). The script is the batch step itself, so `--signal=B:...` reaches the shim.
pub fn render_script(j: &JobScript) -> String {
    let o = j.options;
    let mut s = String::from("#!/bin/bash\n# Written by the clipgan daemon: this task's Slurm job (docs/slurm.md).\n");
    let run = j.run_dir.display().to_string();
    for line in [
        format!("--job-name={}", j.name),
        format!("--output={run}/logs/slurm-%j.out"),
        "--open-mode=append".to_string(),
        "--requeue".to_string(),
        format!("--signal=B:{}@{}", o.signal.trim_start_matches("SIG"), o.signal_before_s),
        format!("--chdir={}", j.home.display()),
    ] {
        s.push_str(&format!("#SBATCH {}\n", sh(&line)));
    }
    for a in &o.args {
        s.push_str(&format!("#SBATCH {}\n", sh(a)));
    }
    for (k, v) in [
        ("CLIPGAN_HOME", j.home.display().to_string()),
        ("CLIPGAN_RUN_DIR", run.clone()),
        ("CLIPGAN_TASK_ID", j.task_id.to_string()),
        ("CLIPGAN_SLOT", "0".to_string()),
    ] {
        s.push_str(&format!("export {k}={}\n", sh(&v)));
    }
    s.push_str("export CLIPGAN_ATTEMPT=$(( ");
    s.push_str(&j.first_attempt.to_string());
    s.push_str(" + ${SLURM_RESTART_COUNT:-0} ))\n");
    let mut cmd = vec![
        sh(&j.exe.display().to_string()),
        "__shim".into(),
        "--run-dir".into(),
        sh(&run),
        "--attempt".into(),
        "\"$CLIPGAN_ATTEMPT\"".into(),
        "--log-cap".into(),
        j.log_cap.to_string(),
        "--slurm".into(),
        "--max-stalls".into(),
        o.max_stalls.to_string(),
        "--".into(),
    ];
    cmd.extend(j.argv.iter().map(|a| sh(a)));
    s.push_str("exec ");
    s.push_str(&cmd.join(" "));
    s.push('\n');
    s
}

/// The job states, polled by a background thread for the ids the daemon asks about.
#[derive(Clone, Default)]
pub struct Poller {
    inner: Arc<Mutex<PollState>>,
}

#[derive(Default)]
struct PollState {
    /// Whether a thread polls.
    started: bool,
    /// The jobs the daemon wants to know about.
    wanted: Vec<u64>,
    /// The last answer: jobs Slurm lists, when it answered, and the last error.
    jobs: HashMap<u64, JobInfo>,
    at: Option<f64>,
    error: Option<String>,
}

/// The last poll, as the daemon reads it.
pub struct Polled {
    pub jobs: HashMap<u64, JobInfo>,
    /// When `squeue` last answered (`None`: not yet).
    pub at: Option<f64>,
    pub error: Option<String>,
}

impl Poller {
    /// Say which jobs matter (starts the thread on first use) and read the last answer.
    pub fn poll(&self, wanted: Vec<u64>) -> Polled {
        let mut s = self.inner.lock().unwrap_or_else(|p| p.into_inner());
        s.wanted = wanted;
        if !s.started && !s.wanted.is_empty() {
            s.started = true;
            let inner = self.inner.clone();
            std::thread::spawn(move || poll_loop(inner));
        }
        Polled { jobs: s.jobs.clone(), at: s.at, error: s.error.clone() }
    }
}

fn poll_loop(inner: Arc<Mutex<PollState>>) {
    loop {
        let idle = inner.lock().map(|s| s.wanted.is_empty()).unwrap_or(true);
        if !idle {
            let result = list_jobs();
            let mut s = inner.lock().unwrap_or_else(|p| p.into_inner());
            match result {
                Ok(jobs) => {
                    s.jobs = jobs;
                    s.at = Some(crate::util::unix_now());
                    s.error = None;
                }
                Err(e) => s.error = Some(format!("{e:#}")),
            }
        }
        std::thread::sleep(POLL_EVERY);
    }
}

/// `<run>/slurm/`: the job scripts and the daemon's stop requests.
pub fn dir(run_dir: &Path) -> PathBuf {
    run_dir.join("slurm")
}

/// Written by the daemon before it signals a job on the user's request, so the shim
/// knows the stop is for good and does not requeue the job.
pub fn stop_request(run_dir: &Path) -> PathBuf {
    dir(run_dir).join("stop-requested")
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn squeue_lines_are_parsed_and_array_tasks_skipped() {
        let jobs = parse_squeue("12|PENDING|Resources|\n13|RUNNING|None|node3\n14_2|RUNNING|None|n\ngarbage\n");
        assert_eq!(jobs.len(), 2);
        assert_eq!(jobs[&12], JobInfo { state: "PENDING".into(), reason: "Resources".into(), node: String::new() });
        assert_eq!(jobs[&13].node, "node3");
    }

    #[test]
    fn the_script_quotes_what_it_passes_and_lets_the_group_options_win() {
        let o = SlurmOptions { args: vec!["--partition=gpu".into(), "--comment=it's mine".into()], ..Default::default() };
        let argv = vec!["/bin/clipgan".to_string(), "fake-run".into(), "--name".into(), "a b".into()];
        let s = render_script(&JobScript {
            name: "clipgan-0-1".into(),
            options: &o,
            run_dir: Path::new("/h/runs/r 1"),
            home: Path::new("/h"),
            task_id: 1,
            first_attempt: 2,
            log_cap: 100,
            exe: Path::new("/bin/clipgan"),
            argv: &argv,
        });
        assert!(s.contains("#SBATCH --signal=B:TERM@120\n"), "{s}");
        assert!(s.contains("#SBATCH '--comment=it'\\''s mine'\n"), "{s}");
        assert!(s.find("--requeue").unwrap() < s.find("--partition=gpu").unwrap(), "{s}");
        assert!(s.contains("'/h/runs/r 1'") && s.contains("'a b'"), "{s}");
        assert!(s.contains("CLIPGAN_ATTEMPT=$(( 2 + ${SLURM_RESTART_COUNT:-0} ))"), "{s}");
    }

    #[test]
    fn a_local_run_folder_is_refused_only_when_other_nodes_exist() {
        let p = Path::new("/tmp/h/runs/r");
        assert_eq!(unreachable_by(p, "vm\nvm\n", "vm"), None);
        let msg = unreachable_by(p, "vm\ngpu1\ngpu2\n", "vm").expect("refused");
        assert!(msg.contains("/tmp/h/runs/r") && msg.contains("gpu1,gpu2") && msg.contains("shared file system"), "{msg}");
    }

    #[test]
    fn a_job_is_described_in_one_line() {
        let mut j = SlurmJob { job_id: 7, state: "PENDING".into(), reason: "Priority".into(), ..Default::default() };
        assert_eq!(j.describe(), "slurm 7 PENDING (Priority)");
        j.state = "RUNNING".into();
        j.reason = "None".into();
        j.node = "n1".into();
        assert_eq!(j.describe(), "slurm 7 RUNNING on n1");
    }
}
