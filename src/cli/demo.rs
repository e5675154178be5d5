//! `clipgan demo`: the README's main command. Makes the synthetic dataset if it is
//! missing, queues the small-preset pipeline (CLIP finetuning -> DM-GAN -> evaluation)
//! on the daemon, and opens the console on it; without a terminal (CI, a pipe) it
//! follows the pipeline headless with progress lines and exits 0 when all of it finished.
use crate::data::synth::{self, SynthConfig};
use crate::rundir::{JobKind, RunState};
use crate::supervisor::client::Client;
use crate::supervisor::pipeline::{self, Pipeline};
use crate::supervisor::protocol::{GroupChange, Snapshot, Target, TaskView};
use crate::supervisor::state::TaskState;
use crate::supervisor::Paths;
use anyhow::{bail, Context, Result};
use clap::Args;
use std::io::IsTerminal;
use std::path::{Path, PathBuf};
use std::process::ExitCode;
use std::time::{Duration, Instant};

/// The demo's configs, relative to the project home.
const CONFIGS: [&str; 3] = ["cfg/demo/pretrain.yml", "cfg/demo/train.yml", "cfg/demo/eval.yml"];
/// The group the demo's tasks run in: one slot, so the stages never compete for the CPU.
const GROUP: &str = "demo";

#[derive(Args, Debug)]
pub struct DemoArgs {
    /// Follow the pipeline with progress lines instead of opening the console (the
    /// default when stdout is not a terminal).
    #[arg(long)]
    pub headless: bool,
    /// The synthetic dataset's folder (made when missing).
    #[arg(long, default_value = "data/synth")]
    pub data: PathBuf,
    /// Headless: give up (exit 1, the tasks keep running) after this many minutes.
    #[arg(long, default_value_t = 60.0)]
    pub timeout_min: f64,
}

pub fn run(args: DemoArgs) -> Result<ExitCode> {
    let home = crate::home::home();
    for rel in CONFIGS {
        let p = home.join(rel);
        if !p.is_file() {
            bail!("{} is missing: run the demo from the clipgan checkout (or set CLIPGAN_HOME to it)", p.display());
        }
    }
    let data = if args.data.is_absolute() { args.data.clone() } else { home.join(&args.data) };
    ensure_data(&data)?;

    let paths = Paths::for_home(&home);
    let mut client = Client::connect_or_spawn(&paths).context("cannot reach or start the clipgan daemon")?;
    ensure_group(&mut client)?;
    let queued = pipeline::queue(
        &mut client,
        &Pipeline {
            pretrain: home.join(CONFIGS[0]),
            train: home.join(CONFIGS[1]),
            eval: Some(home.join(CONFIGS[2])),
            group: Some(GROUP.to_string()),
            label: Some("demo".to_string()),
        },
    )?;
    let ids = queued.ids();
    eprintln!(
        "clipgan demo: queued CLIP finetuning (task {}), DM-GAN training (task {}) and evaluation (task {}) in group '{GROUP}'",
        ids[0], ids[1], ids[2]
    );
    eprintln!("clipgan demo: run folders: {}", queued.pretrain.run_dir.parent().unwrap_or(Path::new(".")).display());

    if !args.headless && std::io::stdout().is_terminal() && std::io::stdin().is_terminal() {
        crate::console::run_on(&home, &ids, None)?;
        return Ok(ExitCode::SUCCESS);
    }
    follow(&mut client, &ids, Duration::from_secs_f64(args.timeout_min * 60.0))
}

/// Write the synthetic dataset unless a complete one is there (its `captions.pickle` is
/// the last file `synth::generate` writes).
fn ensure_data(dir: &Path) -> Result<()> {
    if dir.join("captions.pickle").is_file() {
        return Ok(());
    }
    if dir.exists() {
        // An interrupted generation: start over (the folder holds nothing else).
        std::fs::remove_dir_all(dir).with_context(|| format!("cannot remove the incomplete dataset {}", dir.display()))?;
    }
    eprintln!("clipgan demo: writing the synthetic dataset to {} (first run only)", dir.display());
    let summary = synth::generate(dir, &SynthConfig::default())
        .with_context(|| format!("cannot write the synthetic dataset to {}", dir.display()))?;
    eprintln!(
        "clipgan demo: {} training images ({} classes), {} test images ({} unseen classes)",
        summary.train_images, summary.train_classes, summary.test_images, summary.test_classes
    );
    Ok(())
}

/// The demo group with one slot, running (a paused one, e.g. after an earlier failed demo,
/// is resumed: the user asked for the demo to run now).
fn ensure_group(client: &mut Client) -> Result<()> {
    let groups = client.groups()?;
    match groups.iter().find(|g| g.name == GROUP) {
        None => {
            client.group_add(GROUP, GroupChange { slots: Some(1), ..GroupChange::default() })?;
        }
        Some(g) if g.group.paused => {
            client.resume(Target::Group(GROUP.to_string()))?;
        }
        Some(_) => {}
    }
    Ok(())
}

/// Print a line per task whenever its state changes and every 15 s while one runs; exit
/// 0 when every task finished, 1 as soon as one ends otherwise (or at the timeout).
fn follow(client: &mut Client, ids: &[u64], timeout: Duration) -> Result<ExitCode> {
    let start = Instant::now();
    let mut last_states: Vec<Option<TaskState>> = vec![None; ids.len()];
    let mut last_progress = Instant::now();
    let mut rev = 0;
    loop {
        let snap = client.status()?;
        let tasks: Vec<&TaskView> = ids.iter().map(|id| find(&snap, *id)).collect::<Result<_>>()?;
        // A line for each task whose state changed, and every 15 s one per running task.
        let periodic = last_progress.elapsed() >= Duration::from_secs(15);
        for (i, t) in tasks.iter().enumerate() {
            let changed = last_states[i] != Some(t.task.state);
            last_states[i] = Some(t.task.state);
            if changed || (periodic && t.task.state.is_active()) {
                println!("{}", progress_line(t, start.elapsed()));
            }
        }
        if periodic {
            last_progress = Instant::now();
        }
        if let Some(bad) = tasks.iter().find(|t| t.task.state.is_final() && t.task.state != TaskState::Finished) {
            eprintln!(
                "clipgan demo: task {} ({}) ended {}: see `clipgan logs {}` and {}",
                bad.task.id,
                bad.task.job,
                bad.task.state.name(),
                bad.task.id,
                bad.task.run_dir.display()
            );
            return Ok(ExitCode::FAILURE);
        }
        if tasks.iter().all(|t| t.task.state == TaskState::Finished) {
            summary(&tasks, start.elapsed());
            return Ok(ExitCode::SUCCESS);
        }
        if start.elapsed() > timeout {
            eprintln!(
                "clipgan demo: gave up waiting after {:.0} min; the tasks keep running (`clipgan status`)",
                timeout.as_secs_f64() / 60.0
            );
            return Ok(ExitCode::FAILURE);
        }
        rev = client.wait_change(rev.max(snap.rev), Duration::from_secs(5))?;
    }
}

fn find(snap: &Snapshot, id: u64) -> Result<&TaskView> {
    snap.tasks.iter().find(|t| t.task.id == id).with_context(|| format!("task {id} is gone from the daemon's list (removed?)"))
}

fn progress_line(t: &TaskView, elapsed: Duration) -> String {
    let mut s = format!("[{:>5.1} min] task {} {:<8} {:<9}", elapsed.as_secs_f64() / 60.0, t.task.id, t.task.job, t.task.state.name());
    if let Some(st) = &t.status {
        if st.state == RunState::Running || st.state == RunState::Stopping {
            match (st.total_steps, st.eta_s) {
                (Some(total), Some(eta)) => s.push_str(&format!(" step {}/{} (ETA {:.0} s)", st.step, total, eta)),
                (Some(total), None) => s.push_str(&format!(" step {}/{}", st.step, total)),
                _ => s.push_str(&format!(" step {}", st.step)),
            }
        }
        if !st.message.is_empty() {
            s.push_str(&format!(" {}", st.message));
        }
    }
    s
}

fn summary(tasks: &[&TaskView], elapsed: Duration) {
    println!("clipgan demo: finished in {:.1} min", elapsed.as_secs_f64() / 60.0);
    for t in tasks {
        println!("  {:<8} {}", t.task.job, t.task.run_dir.display());
    }
    if let Some(eval) = tasks.iter().find(|t| t.task.job == JobKind::Eval) {
        let results = eval.task.run_dir.join(crate::rundir::RESULTS_FILE);
        match std::fs::read_to_string(&results) {
            Ok(text) => println!("evaluation results ({}):\n{}", results.display(), text.trim_end()),
            Err(e) => println!("(cannot read {}: {e})", results.display()),
        }
    }
}
