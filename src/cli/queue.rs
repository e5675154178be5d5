//! The daemon and its client commands: `clipgan daemon`, `queue add|settings`,
//! `status`, `kill`, `pause`, `resume`, `restart`, `resume-run`, `remove`, `logs`,
//! `groups`, and the hidden `__shim`. Every client command starts the daemon if none
//! runs. See docs/supervisor.md.
use crate::rundir::JobKind;
use crate::supervisor::client::Client;
use crate::supervisor::protocol::*;
use crate::supervisor::state::{Task, TaskState};
use crate::supervisor::{daemon, shim, Paths};
use anyhow::{bail, Context, Result};
use clap::{Args, Subcommand};
use std::io::Write;
use std::path::PathBuf;
use std::process::ExitCode;
use std::time::Duration;

#[derive(Subcommand, Debug)]
pub enum SupervisorCommand {
    /// Start the queue daemon in the background (clients start it on their own when
    /// none runs), or stop it.
    Daemon {
        /// Run in this process instead of detaching (for debugging).
        #[arg(long)]
        foreground: bool,
        /// Stop the running daemon (workers keep running; the next daemon re-adopts them).
        #[arg(long, conflicts_with = "foreground")]
        stop: bool,
    },
    /// Queue jobs, and daemon-wide settings.
    #[command(subcommand)]
    Queue(QueueCommand),
    /// Queue a sweep: every combination of grid values (and random draws, and seeds) as
    /// its own task, labelled with its values, all sharing one sweep id.
    Sweep(super::sweep::SweepArgs),
    /// The queue: every task with its state, group, progress.
    Status {
        /// Print the daemon's full snapshot as JSON.
        #[arg(long)]
        json: bool,
    },
    /// Kill a running task: graceful by default (SIGTERM: checkpoint and exit; SIGKILL
    /// after the stop timeout), or with the signal given. Reaches its whole process group.
    Kill {
        id: u64,
        /// Send this signal once instead (TERM, INT, KILL, USR1, 9, ...).
        #[arg(short, long)]
        signal: Option<String>,
        /// Seconds to wait for a graceful stop before SIGKILL (default: the daemon's
        /// stop timeout).
        #[arg(long, conflicts_with = "signal")]
        timeout: Option<f64>,
    },
    /// Pause a running task (SIGSTOP to its process group), hold a queued one, or pause a
    /// group (no new starts; its running tasks are paused too unless --wait).
    Pause {
        #[command(flatten)]
        target: TargetArgs,
        /// With --group: only stop starting new tasks, leave running ones alone.
        #[arg(long)]
        wait: bool,
    },
    /// Undo a pause: continue a paused task (SIGCONT), release a held one, or let a
    /// group start tasks again. (To continue an ended run from its checkpoint, see
    /// `resume-run`.)
    Resume {
        #[command(flatten)]
        target: TargetArgs,
    },
    /// Queue an ended task again from scratch, in a new run folder (the old one stays).
    Restart { id: u64 },
    /// Queue a stopped, pruned, failed, killed or lost task again to continue from its last
    /// checkpoint, in the same run folder.
    ResumeRun { id: u64 },
    /// Take a task that is not running off the list (its run folder stays on disk).
    Remove { id: u64 },
    /// Print a task's output (stdout, or stderr with --stderr).
    Logs {
        id: u64,
        /// Keep printing as the output grows (Ctrl-C to stop).
        #[arg(short, long)]
        follow: bool,
        #[arg(long)]
        stderr: bool,
    },
    /// List groups, or add / change / remove one.
    Groups {
        #[command(subcommand)]
        cmd: Option<GroupsCommand>,
        #[arg(long)]
        json: bool,
    },
    /// The config folder's files and whether each is valid (as the daemon's watcher sees them).
    Configs {
        /// Rescan the folder first (for file systems that deliver no change events).
        #[arg(long)]
        rescan: bool,
        #[arg(long)]
        json: bool,
    },
    /// (internal) Supervise one worker: capture its output, record its exit.
    #[command(name = "__shim", hide = true)]
    Shim {
        #[arg(long)]
        run_dir: PathBuf,
        #[arg(long)]
        attempt: u32,
        #[arg(long)]
        log_cap: u64,
        /// As a Slurm job's batch step (docs/slurm.md).
        #[arg(long)]
        slurm: bool,
        #[arg(long, default_value_t = 3)]
        max_stalls: u32,
        #[arg(last = true, required = true)]
        argv: Vec<String>,
    },
}

#[derive(Args, Debug)]
pub struct TargetArgs {
    /// Task id.
    #[arg(required_unless_present = "group", conflicts_with = "group")]
    id: Option<u64>,
    /// A whole group instead of one task.
    #[arg(short, long)]
    group: Option<String>,
}

impl TargetArgs {
    fn target(&self) -> Result<Target> {
        match (&self.group, self.id) {
            (Some(g), _) => Ok(Target::Group(g.clone())),
            (None, Some(id)) => Ok(Target::Task(id)),
            (None, None) => bail!("give a task id or --group G"),
        }
    }
}

#[derive(Subcommand, Debug)]
pub enum QueueCommand {
    /// Queue a job. The job is inferred from the config as the seed does (DAMSM configs
    /// pretrain; TRAIN.FLAG true trains, false evaluates). The config is validated now
    /// (refused with file:line:col) and a snapshot of it is kept in the run folder.
    Add {
        /// pretrain, train, eval or fake-run.
        #[arg(long)]
        job: Option<JobKind>,
        /// The config file (YAML).
        config: Option<PathBuf>,
        /// Start only after these tasks finished successfully (comma-separated ids).
        #[arg(long, value_delimiter = ',')]
        after: Vec<u64>,
        /// Start only after these tasks ended, whatever the outcome.
        #[arg(long, value_delimiter = ',')]
        after_any: Vec<u64>,
        #[arg(short, long)]
        group: Option<String>,
        /// Higher starts first.
        #[arg(short, long, default_value_t = 0, allow_negative_numbers = true)]
        priority: i32,
        /// Automatic retries after a failure (from the last checkpoint when there is one).
        #[arg(short, long, default_value_t = 0)]
        retries: u32,
        #[arg(short, long)]
        label: Option<String>,
        /// Queue it held: it starts only after `clipgan resume ID`.
        #[arg(long)]
        held: bool,
        /// Print the answer as JSON.
        #[arg(long)]
        json: bool,
        /// Override a setting of the config: a dotted key and a YAML value
        /// (`--set TRAIN.SMOOTH.LAMBDA=0.5`); repeatable, validated with the config.
        #[arg(long = "set", value_name = "KEY=VALUE")]
        set: Vec<String>,
        /// Arguments for the job.
        #[arg(last = true)]
        args: Vec<String>,
    },
    /// Daemon-wide settings.
    Settings {
        /// Seconds between SIGTERM and SIGKILL when stopping a task.
        #[arg(long)]
        stop_timeout: Option<f64>,
        /// Size cap of each task log (bytes; head and tail are kept).
        #[arg(long)]
        log_cap: Option<u64>,
    },
}

#[derive(Subcommand, Debug)]
pub enum GroupsCommand {
    /// Add a group.
    Add {
        name: String,
        #[command(flatten)]
        opts: GroupOpts,
    },
    /// Change a group.
    Set {
        name: String,
        #[command(flatten)]
        opts: GroupOpts,
    },
    /// Remove a group without waiting or running tasks.
    Remove { name: String },
}

#[derive(Args, Debug)]
pub struct GroupOpts {
    /// Tasks run at once.
    #[arg(long)]
    slots: Option<usize>,
    /// GPU ids handed to slots as CUDA_VISIBLE_DEVICES (comma-separated; "none" clears).
    #[arg(long)]
    gpus: Option<String>,
    /// Pause the group when one of its tasks fails for good.
    #[arg(long)]
    pause_on_failure: Option<bool>,
    /// Shell command run when a task ends for good: `$1` run id, `$2` status, `$3` exit
    /// code, and CLIPGAN_* variables ("" removes it).
    #[arg(long)]
    on_finish: Option<String>,
    /// Where the group's tasks run: `local` (this machine's slots) or `slurm` (submitted
    /// with sbatch; docs/slurm.md).
    #[arg(long, value_parser = ["local", "slurm"])]
    executor: Option<String>,
    /// An sbatch option for the group's jobs, as sbatch takes it (repeatable; replaces the
    /// group's list): --slurm-arg=--partition=gpu --slurm-arg=--gres=gpu:1.
    #[arg(long = "slurm-arg", allow_hyphen_values = true)]
    slurm_arg: Vec<String>,
    /// A Slurm group: how many of its tasks may be in Slurm (pending or running) at once.
    #[arg(long, conflicts_with = "slots")]
    max_submitted: Option<usize>,
    /// A Slurm group: the signal the worker gets before the time limit and on preemption
    /// (it saves a checkpoint and the job is requeued); default TERM.
    #[arg(long)]
    slurm_signal: Option<String>,
    /// A Slurm group: seconds before the time limit that the signal comes (default 120).
    #[arg(long)]
    slurm_signal_before: Option<u32>,
    /// A Slurm group: requeues in a row without progress after which a task fails (default 3).
    #[arg(long)]
    slurm_max_stalls: Option<u32>,
}

impl GroupOpts {
    fn change(&self) -> GroupChange {
        GroupChange {
            slots: self.slots.or(self.max_submitted),
            gpus: self.gpus.as_ref().map(|g| {
                if g.trim().eq_ignore_ascii_case("none") {
                    Vec::new()
                } else {
                    g.split(',').map(|s| s.trim().to_string()).filter(|s| !s.is_empty()).collect()
                }
            }),
            pause_on_failure: self.pause_on_failure,
            on_finish: self.on_finish.clone(),
            executor: self.executor.clone(),
            slurm_args: (!self.slurm_arg.is_empty()).then(|| self.slurm_arg.clone()),
            slurm_signal: self.slurm_signal.clone(),
            slurm_signal_before_s: self.slurm_signal_before,
            slurm_max_stalls: self.slurm_max_stalls,
        }
    }
}

fn client() -> Result<Client> {
    Client::connect_or_spawn(&Paths::current())
}

fn print_ok((message, warnings): (String, Vec<String>)) -> Result<ExitCode> {
    println!("{message}");
    for w in &warnings {
        eprintln!("warning: {w}");
    }
    Ok(ExitCode::SUCCESS)
}

pub fn run(cmd: SupervisorCommand) -> Result<ExitCode> {
    match cmd {
        SupervisorCommand::Daemon { foreground: true, .. } => {
            daemon::run_foreground(Paths::current())?;
            Ok(ExitCode::SUCCESS)
        }
        SupervisorCommand::Daemon { stop: true, .. } => {
            let paths = Paths::current();
            let Ok(mut c) = Client::connect(&paths) else {
                println!("no daemon runs for {}", paths.home.display());
                return Ok(ExitCode::SUCCESS);
            };
            let (pid, _) = c.hello()?;
            print_ok(c.call_ok(Request::Shutdown)?)?;
            // Return once it is gone, so a following start finds the lock free.
            let proc_ = crate::supervisor::procs::ProcId::of(pid);
            for _ in 0..100 {
                if !proc_.is_some_and(|p| p.alive()) {
                    break;
                }
                std::thread::sleep(Duration::from_millis(50));
            }
            Ok(ExitCode::SUCCESS)
        }
        SupervisorCommand::Daemon { .. } => {
            let paths = Paths::current();
            let exe = std::env::current_exe().context("cannot find the clipgan binary")?;
            daemon::launch(&paths, &exe)?;
            let (pid, _) = Client::connect(&paths)?.hello()?;
            println!("daemon pid {pid} serves {}", paths.home.display());
            Ok(ExitCode::SUCCESS)
        }
        SupervisorCommand::Queue(QueueCommand::Add {
            job,
            config,
            after,
            after_any,
            group,
            priority,
            retries,
            label,
            held,
            json,
            set,
            args,
        }) => {
            let config = match config {
                Some(c) => Some(std::path::absolute(&c).with_context(|| format!("cannot make {} absolute", c.display()))?),
                None => None,
            };
            let a = AddTask { job, config, args, group, priority, after, after_any, retries, label, held, overrides: set };
            let added = client()?.add(a)?;
            if json {
                println!(
                    "{}",
                    serde_json::json!({"id": added.id, "run_id": added.run_id, "run_dir": added.run_dir, "warnings": added.warnings})
                );
            } else {
                println!("queued task {} (run {})", added.id, added.run_id);
                for w in &added.warnings {
                    eprintln!("warning: {w}");
                }
            }
            Ok(ExitCode::SUCCESS)
        }
        SupervisorCommand::Sweep(a) => super::sweep::run(a),
        SupervisorCommand::Queue(QueueCommand::Settings { stop_timeout, log_cap }) => {
            print_ok(client()?.call_ok(Request::Settings(SettingsChange { stop_timeout_s: stop_timeout, log_cap_bytes: log_cap }))?)
        }
        SupervisorCommand::Status { json } => {
            let snap = client()?.status()?;
            if json {
                println!("{}", serde_json::to_string_pretty(&snap)?);
            } else {
                print_status(&snap);
            }
            Ok(ExitCode::SUCCESS)
        }
        SupervisorCommand::Kill { id, signal, timeout } => print_ok(client()?.kill(id, signal.as_deref(), timeout)?),
        SupervisorCommand::Pause { target, wait } => {
            let target = target.target()?;
            if wait && matches!(target, Target::Task(_)) {
                bail!("--wait goes with --group (a task is either paused or not)");
            }
            print_ok(client()?.pause(target, wait)?)
        }
        SupervisorCommand::Resume { target } => print_ok(client()?.resume(target.target()?)?),
        SupervisorCommand::Restart { id } => print_ok(client()?.restart(id)?),
        SupervisorCommand::ResumeRun { id } => print_ok(client()?.resume_run(id)?),
        SupervisorCommand::Remove { id } => print_ok(client()?.remove(id)?),
        SupervisorCommand::Logs { id, follow, stderr } => {
            let l = client()?.logs(id)?;
            logs(if stderr { &l.stderr } else { &l.stdout }, follow)
        }
        SupervisorCommand::Groups { cmd, json } => {
            let mut c = client()?;
            match cmd {
                None => {
                    let snap = c.status()?;
                    if json {
                        println!("{}", serde_json::to_string_pretty(&snap.groups)?);
                    } else {
                        println!("{:<16} {:>5} {:>7} {:>6}  {:<10} {:<7} NOTES", "GROUP", "SLOTS", "RUNNING", "QUEUED", "GPUS", "STATE");
                        for g in &snap.groups {
                            let mut notes = Vec::new();
                            if let Some(o) = &g.group.slurm {
                                notes.push(format!(
                                    "Slurm: at most {} submitted; sbatch {}; {} {} s before the time limit",
                                    g.group.slots,
                                    o.args.join(" "),
                                    o.signal,
                                    o.signal_before_s
                                ));
                            }
                            if g.group.pause_on_failure {
                                notes.push("pauses on failure".to_string());
                            }
                            if let Some(h) = &g.group.on_finish {
                                notes.push(format!("on finish: {h}"));
                            }
                            if g.group.paused && !g.group.paused_reason.is_empty() {
                                notes.push(g.group.paused_reason.clone());
                            }
                            println!(
                                "{:<16} {:>5} {:>7} {:>6}  {:<10} {:<7} {}",
                                g.name,
                                g.group.slots,
                                g.running,
                                g.queued,
                                if g.group.gpus.is_empty() { "-".to_string() } else { g.group.gpus.join(",") },
                                if g.group.paused { "paused" } else { "active" },
                                notes.join("; ")
                            );
                        }
                    }
                    Ok(ExitCode::SUCCESS)
                }
                Some(GroupsCommand::Add { name, opts }) => print_ok(c.call_ok(Request::GroupAdd { name, change: opts.change() })?),
                Some(GroupsCommand::Set { name, opts }) => print_ok(c.call_ok(Request::GroupSet { name, change: opts.change() })?),
                Some(GroupsCommand::Remove { name }) => print_ok(c.call_ok(Request::GroupRemove { name })?),
            }
        }
        SupervisorCommand::Configs { rescan, json } => {
            let idx = client()?.configs(rescan)?;
            if json {
                println!("{}", serde_json::to_string_pretty(&idx)?);
            } else {
                println!("{} ({})", idx.root.display(), idx.watch);
                for f in &idx.files {
                    println!("{:<5} {:<9} {}", if f.ok { "ok" } else { "ERROR" }, f.job.map_or("-", JobKind::as_str), f.rel);
                    for d in &f.diagnostics {
                        println!("      {d}");
                    }
                }
            }
            Ok(ExitCode::SUCCESS)
        }
        SupervisorCommand::Shim { run_dir, attempt, log_cap, slurm, max_stalls, argv } => {
            let code = shim::run(shim::ShimArgs { run_dir, attempt, log_cap, argv, slurm, max_stalls })?;
            Ok(ExitCode::from(code))
        }
    }
}

fn state_label(t: &Task) -> String {
    match t.state {
        TaskState::Running if t.kill.is_none() && t.slurm.as_ref().is_some_and(|j| j.state == "PENDING" || j.state.is_empty()) => {
            "pending".into()
        }
        TaskState::Running if t.kill.is_some() => "stopping".into(),
        TaskState::Running if t.procs.as_ref().is_some_and(|p| p.worker.is_none()) => "starting".into(),
        s => s.name().into(),
    }
}

fn print_status(s: &Snapshot) {
    if let Some(e) = &s.save_error {
        eprintln!("warning: {e}");
    }
    for g in s.groups.iter().filter(|g| g.group.paused) {
        eprintln!("group {} is paused: {}", g.name, g.group.paused_reason);
    }
    println!("{:>4}  {:<10} {:<8} {:>4} {:<9} {:<20} {:<18} NOTES", "ID", "STATE", "GROUP", "PRIO", "JOB", "LABEL", "PROGRESS");
    // A sweep's tasks are listed together under a line for the sweep, where its first
    // task would be.
    let mut shown = std::collections::HashSet::new();
    for v in &s.tasks {
        match &v.task.sweep {
            None => println!("{}", task_line(v, "")),
            Some(id) if shown.insert(id.clone()) => {
                let members: Vec<&TaskView> = s.tasks.iter().filter(|m| m.task.sweep.as_ref() == Some(id)).collect();
                println!("{}", sweep_line(id, s.sweeps.get(id), &members));
                for m in members {
                    println!("{}", task_line(m, "  "));
                }
            }
            Some(_) => {}
        }
    }
}

fn sweep_line(id: &str, sweep: Option<&crate::supervisor::state::Sweep>, members: &[&TaskView]) -> String {
    let mut counts: Vec<(&str, usize)> = Vec::new();
    for m in members {
        let name = m.task.state.name();
        match counts.iter_mut().find(|(n, _)| *n == name) {
            Some(c) => c.1 += 1,
            None => counts.push((name, 1)),
        }
    }
    let counts: Vec<String> = counts.iter().map(|(n, c)| format!("{c} {n}")).collect();
    let (name, keys) = sweep.map(|s| (s.name.as_str(), s.keys.join(", "))).unwrap_or_default();
    let ended = members.iter().filter(|m| m.task.state.is_final()).count();
    format!(
        "{id} {name}: {ended}/{} ended, {:.0}% done ({}){}",
        members.len(),
        100.0 * crate::supervisor::sweep::progress(members),
        counts.join(", "),
        if keys.is_empty() { String::new() } else { format!("; varies {keys}") }
    )
}

fn task_line(v: &TaskView, indent: &str) -> String {
    {
        let t = &v.task;
        let progress = match &v.status {
            Some(st) => {
                let mut p = match st.total_steps {
                    Some(tot) => format!("{}/{}", st.step, tot),
                    None => st.step.to_string(),
                };
                if let Some(eta) = st.eta_s {
                    p.push_str(&format!(" eta {}", human_secs(eta)));
                }
                p
            }
            None => String::from("-"),
        };
        let mut notes = Vec::new();
        if !t.after.is_empty() {
            notes.push(format!("after {:?}", t.after));
        }
        if !t.after_any.is_empty() {
            notes.push(format!("after-any {:?}", t.after_any));
        }
        if let Some(job) = &t.slurm {
            notes.push(job.describe());
        } else if let Some(slot) = t.slot {
            notes.push(format!("slot {slot}{}", t.gpus.as_ref().map(|g| format!(" gpu {g}")).unwrap_or_default()));
        }
        if v.config_changed == Some(true) {
            notes.push("CONFIG CHANGED since queued".into());
        }
        if !t.message.is_empty() {
            notes.push(t.message.clone());
        }
        notes.push(t.run_id.clone());
        let label = t
            .label
            .clone()
            .unwrap_or_else(|| t.config.as_ref().and_then(|c| c.file_name()).map(|n| n.to_string_lossy().into_owned()).unwrap_or_default());
        format!(
            "{indent}{:>4}  {:<10} {:<8} {:>4} {:<9} {:<20} {:<18} {}",
            t.id,
            state_label(t),
            t.group,
            t.priority,
            t.job,
            label,
            progress,
            notes.join("; ")
        )
    }
}

fn human_secs(s: f64) -> String {
    let s = s.max(0.0) as u64;
    if s >= 3600 {
        format!("{}h{:02}m", s / 3600, s % 3600 / 60)
    } else if s >= 60 {
        format!("{}m{:02}s", s / 60, s % 60)
    } else {
        format!("{s}s")
    }
}

/// Print a log; with `follow`, keep printing as it grows (a capped log rewritten
/// meanwhile is followed from where we were, see `rundir::logs::LogFollower`).
fn logs(path: &std::path::Path, follow: bool) -> Result<ExitCode> {
    let mut out = std::io::stdout().lock();
    let mut log = crate::rundir::logs::LogFollower::new(path);
    loop {
        let buf = match log.read_new() {
            Ok(b) => b,
            Err(e) if e.kind() == std::io::ErrorKind::NotFound && follow => {
                std::thread::sleep(Duration::from_millis(200));
                continue;
            }
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => {
                bail!("{} does not exist (yet): the task has not written output", path.display())
            }
            Err(e) => return Err(e).with_context(|| format!("cannot read {}", path.display())),
        };
        // Write errors (a closed pipe, `| head`) end the command quietly.
        if !buf.is_empty() && out.write_all(&buf).and_then(|_| out.flush()).is_err() {
            return Ok(ExitCode::SUCCESS);
        }
        if !follow {
            return Ok(ExitCode::SUCCESS);
        }
        std::thread::sleep(Duration::from_millis(200));
    }
}
