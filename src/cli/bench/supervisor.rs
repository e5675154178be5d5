//! `clipgan bench supervisor`: the queue under load. N fake-runs across S slots in a
//! temporary home: all must finish, none lost or run twice. Reports the wall time per
//! scheduled run, the scheduling gap (a slot freeing -> the next start), and the
//! daemon's own CPU time and peak RSS next to the CPU of the processes it ran. With
//! `--slurm` the runs go through a Slurm group: the submission overhead per task.
use super::timing::median;
use crate::rundir::JobKind;
use crate::supervisor::client::Client;
use crate::supervisor::protocol::*;
use crate::supervisor::state::TaskState;
use crate::supervisor::Paths;
use anyhow::{bail, Context, Result};
use clap::Args;
use std::path::PathBuf;
use std::process::ExitCode;
use std::time::{Duration, Instant};

#[derive(Args, Debug)]
pub struct SupervisorBench {
    /// Fake runs to queue.
    #[arg(long, default_value_t = 1000)]
    runs: usize,
    #[arg(long, default_value_t = 8)]
    slots: usize,
    /// Steps of each fake run (each step sleeps --step-ms).
    #[arg(long, default_value_t = 2)]
    steps: u64,
    #[arg(long, default_value_t = 1)]
    step_ms: u64,
    /// Home to use (default: a new temporary folder, removed afterwards).
    #[arg(long)]
    home: Option<PathBuf>,
    /// Run them through Slurm (a Slurm group with `--slots` as its most submitted at once;
    /// the cluster of `scripts/slurm-local.sh`, or the one `SLURM_CONF` names).
    #[arg(long)]
    slurm: bool,
    /// sbatch options for `--slurm` (repeatable).
    #[arg(long = "slurm-arg", allow_hyphen_values = true)]
    slurm_arg: Vec<String>,
}

/// (utime + stime, cutime + cstime) in seconds, and VmHWM in bytes, of a process.
fn proc_usage(pid: u32) -> Result<(f64, f64, u64)> {
    let stat = std::fs::read_to_string(format!("/proc/{pid}/stat")).with_context(|| format!("cannot read /proc/{pid}/stat"))?;
    let rest = &stat[stat.rfind(')').context("odd /proc stat")? + 1..];
    let f: Vec<f64> = rest.split_whitespace().map(|s| s.parse().unwrap_or(0.0)).collect();
    // SAFETY: plain libc query.
    let hz = unsafe { libc::sysconf(libc::_SC_CLK_TCK) } as f64;
    // Fields 14-17 (utime, stime, cutime, cstime) are f[11..15].
    let own = (f[11] + f[12]) / hz;
    let children = (f[13] + f[14]) / hz;
    let status = std::fs::read_to_string(format!("/proc/{pid}/status"))?;
    let hwm = status
        .lines()
        .find(|l| l.starts_with("VmHWM:"))
        .and_then(|l| l.split_whitespace().nth(1))
        .and_then(|k| k.parse::<u64>().ok())
        .unwrap_or(0)
        * 1024;
    Ok((own, children, hwm))
}

pub fn run(b: SupervisorBench) -> Result<ExitCode> {
    let tmp;
    let home = match &b.home {
        Some(h) => h.clone(),
        None => {
            tmp = TempHome::new()?;
            tmp.0.clone()
        }
    };
    let paths = Paths::for_home(&home);
    let exe = std::env::current_exe()?;
    let mut c = Client::connect_or_spawn_with(&paths, &exe)?;
    let (pid, _) = c.hello()?;
    let group = if b.slurm { "bench" } else { "default" };
    if b.slurm {
        let change = GroupChange {
            slots: Some(b.slots),
            executor: Some("slurm".into()),
            slurm_args: Some(b.slurm_arg.clone()),
            ..Default::default()
        };
        c.call_ok(Request::GroupAdd { name: group.into(), change })?;
    } else {
        c.call_ok(Request::GroupSet { name: group.into(), change: GroupChange { slots: Some(b.slots), ..Default::default() } })?;
    }
    c.pause(Target::Group(group.into()), true)?;
    let args: Vec<String> =
        ["--steps", &b.steps.to_string(), "--step-ms", &b.step_ms.to_string(), "--sample-every", "0", "--checkpoint-every", "0"]
            .iter()
            .map(|s| s.to_string())
            .collect();
    let t_add = Instant::now();
    let mut ids = Vec::with_capacity(b.runs);
    for _ in 0..b.runs {
        ids.push(c.add(AddTask { job: Some(JobKind::FakeRun), args: args.clone(), group: Some(group.into()), ..Default::default() })?.id);
    }
    let add_s = t_add.elapsed().as_secs_f64();
    let (cpu0, _, _) = proc_usage(pid)?;
    eprintln!("queued {} runs in {add_s:.2} s; running them on {} slots...", b.runs, b.slots);
    let t0 = Instant::now();
    c.resume(Target::Group(group.into()))?;
    let mut rev = 0;
    let snap = loop {
        // A status of 1,000 tasks is about a megabyte of JSON: poll every 5 s so the
        // measurement is of the daemon's scheduling, not of this client.
        std::thread::sleep(Duration::from_secs(5));
        rev = c.wait_change(rev, Duration::from_secs(5))?;
        let s = c.status()?;
        let done = s.tasks.iter().filter(|t| t.task.state.is_final()).count();
        if done == s.tasks.len() {
            break s;
        }
        if t0.elapsed() > Duration::from_secs(3600) {
            bail!("not done after an hour: {done}/{} ended", s.tasks.len());
        }
    };
    let wall = t0.elapsed().as_secs_f64();
    let (cpu1, children_cpu, hwm) = proc_usage(pid)?;

    // All finished, each exactly once.
    let mut bad = Vec::new();
    for v in &snap.tasks {
        let t = &v.task;
        // The shim's own lines: logs/shim.log here, the job's output file under Slurm.
        let shim_logs: Vec<PathBuf> = match &t.slurm {
            Some(j) => vec![t.run_dir.join(format!("logs/slurm-{}.out", j.job_id))],
            None => vec![t.run_dir.join(crate::rundir::SHIM_LOG)],
        };
        let starts: usize = shim_logs
            .iter()
            .map(|p| std::fs::read_to_string(p).unwrap_or_default().matches("clipgan shim: starting attempt").count())
            .sum();
        if t.state != TaskState::Finished || t.attempts != 1 || starts != 1 {
            bad.push(format!("task {}: {} after {} attempt(s), {starts} shim start(s): {}", t.id, t.state.name(), t.attempts, t.message));
        }
    }
    let missing = ids.iter().filter(|id| !snap.tasks.iter().any(|t| t.task.id == **id)).count();
    let durations: Vec<f64> = snap.tasks.iter().filter_map(|t| Some(t.task.ended_at? - t.task.started_at?)).collect();
    // Under Slurm: from the submission to the worker's start (worker.json, on the node).
    let to_worker: Vec<f64> = snap
        .tasks
        .iter()
        .filter_map(|t| {
            let w: crate::supervisor::shim::WorkerRecord =
                serde_json::from_slice(&std::fs::read(t.task.run_dir.join(crate::rundir::WORKER_FILE)).ok()?).ok()?;
            Some(w.started - t.task.slurm.as_ref()?.submitted_at)
        })
        .collect();
    let mut starts: Vec<f64> = snap.tasks.iter().filter_map(|t| t.task.started_at).collect();
    let mut ends: Vec<f64> = snap.tasks.iter().filter_map(|t| t.task.ended_at).collect();
    starts.sort_by(f64::total_cmp);
    ends.sort_by(f64::total_cmp);
    // Scheduling gap: from the latest end before a start (a slot freeing) to that start.
    let gaps: Vec<f64> = starts.iter().skip(b.slots).filter_map(|s| ends.iter().rev().find(|e| *e <= s).map(|e| s - e)).collect();
    let _ = c.call_ok(Request::Shutdown);
    // What one save of this state costs (serialise + atomic write with fsync), measured
    // here on the state file the daemon left.
    std::thread::sleep(Duration::from_millis(300));
    let state = crate::supervisor::state::load(&paths.state)?;
    let mut saves = Vec::new();
    let probe = paths.state_dir.join("state-probe.json");
    for _ in 0..5 {
        let t = Instant::now();
        crate::util::fsx::atomic_write(&probe, &crate::supervisor::state::to_bytes(&state))?;
        saves.push(t.elapsed().as_secs_f64());
    }
    let state_bytes = std::fs::metadata(&paths.state).map(|m| m.len()).unwrap_or(0);

    let on = if b.slurm { format!("through Slurm, at most {} submitted", b.slots) } else { format!("on {} slots", b.slots) };
    println!("supervisor load: {} fake-runs (--steps {} --step-ms {}) {on}", b.runs, b.steps, b.step_ms);
    println!("  finished once each:      {}/{} (lost {missing}, wrong {})", b.runs - bad.len() - missing, b.runs, bad.len());
    println!("  queueing:                {:.2} ms per add ({add_s:.2} s in all)", add_s * 1000.0 / b.runs as f64);
    println!("  wall:                    {wall:.1} s = {:.1} ms per scheduled run", wall * 1000.0 / b.runs as f64);
    println!("  run duration (median):   {:.0} ms (shim + worker exec, libtorch load included)", median(&durations) * 1000.0);
    println!("  scheduling gap (median): {:.1} ms from a slot freeing to the next start", median(&gaps) * 1000.0);
    println!(
        "  daemon CPU:              {:.2} s while running ({:.2} ms per run), {:.2} s since it started",
        cpu1 - cpu0,
        (cpu1 - cpu0) * 1000.0 / b.runs as f64,
        cpu1
    );
    println!("  daemon peak RSS:         {:.1} MiB", hwm as f64 / (1 << 20) as f64);
    println!(
        "  one state save:          {:.1} ms (median of 5) for {} tasks, {} KiB",
        median(&saves) * 1000.0,
        state.tasks.len(),
        state_bytes / 1024
    );
    if b.slurm {
        println!(
            "  submission -> worker start (median): {:.0} ms (sbatch, Slurm's scheduling, slurmd, the shim)",
            median(&to_worker) * 1000.0
        );
        println!(
            "  daemon's Slurm commands CPU: {children_cpu:.2} s ({:.1} ms per run: sbatch, squeue polls, scancel)",
            children_cpu * 1000.0 / b.runs as f64
        );
    } else {
        println!("  shims + workers CPU:     {children_cpu:.1} s ({:.0} ms per run)", children_cpu * 1000.0 / b.runs as f64);
    }
    for l in bad.iter().take(10) {
        println!("  ! {l}");
    }
    if !bad.is_empty() || missing > 0 {
        return Ok(ExitCode::FAILURE);
    }
    Ok(ExitCode::SUCCESS)
}

/// A temporary home under /tmp (short: socket paths are limited), removed on drop.
struct TempHome(PathBuf);

impl TempHome {
    fn new() -> Result<TempHome> {
        let p = std::env::temp_dir().join(format!("clipgan-bench-{}", std::process::id()));
        std::fs::create_dir_all(&p).with_context(|| format!("cannot create {}", p.display()))?;
        Ok(TempHome(p))
    }
}

impl Drop for TempHome {
    fn drop(&mut self) {
        // Stop the daemon if it still runs (an error path), then give it a moment.
        if let Ok(mut c) = Client::connect(&Paths::for_home(&self.0)) {
            let _ = c.call_ok(Request::Shutdown);
        }
        std::thread::sleep(Duration::from_millis(300));
        let _ = std::fs::remove_dir_all(&self.0);
    }
}
