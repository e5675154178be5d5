//! `clipgan fake-run`: a worker that trains nothing but behaves like one (see
//! `jobs::fake_run`).
use crate::jobs::fake_run::{self, Options};
use anyhow::Result;
use clap::Args;
use std::path::PathBuf;
use std::process::ExitCode;

#[derive(Args, Debug)]
pub struct FakeRunCmd {
    /// Steps to run.
    #[arg(long, default_value_t = 100)]
    steps: u64,
    /// Milliseconds per step.
    #[arg(long, default_value_t = 50)]
    step_ms: u64,
    /// Fail (exit code 1) when reaching this step.
    #[arg(long)]
    fail_at: Option<u64>,
    /// Run folder to write (default: CLIPGAN_RUN_DIR, else a new one under runs/).
    #[arg(long)]
    run_dir: Option<PathBuf>,
    /// Continue in this run folder from its last checkpoint.
    #[arg(long, conflicts_with = "run_dir")]
    resume: Option<PathBuf>,
    #[arg(long, default_value = "fake")]
    name: String,
    /// Steps between sample images (0: none).
    #[arg(long, default_value_t = 25)]
    sample_every: u64,
    /// Steps between checkpoints (0: only at the end and when stopped).
    #[arg(long, default_value_t = 10)]
    checkpoint_every: u64,
    /// Extra bytes printed per step (to exercise log caps).
    #[arg(long, default_value_t = 0)]
    print_bytes: usize,
    /// Noise seed (default: the config's CLIPGAN.SEED, else 100).
    #[arg(long)]
    seed: Option<u64>,
    /// A config to record in the run folder (`config.yml`, resolved), as real jobs do.
    #[arg(long)]
    cfg: Option<PathBuf>,
    /// Override a setting of --cfg: a dotted key and a YAML value; repeatable.
    #[arg(long = "set", value_name = "KEY=VALUE", requires = "cfg")]
    set: Vec<String>,
    #[command(flatten)]
    progress: super::progress::ProgressArgs,
}

pub fn run(c: FakeRunCmd) -> Result<ExitCode> {
    c.progress.apply();
    let code = fake_run::main(&Options {
        steps: c.steps,
        step_ms: c.step_ms,
        fail_at: c.fail_at,
        run_dir: c.run_dir,
        resume: c.resume,
        name: c.name,
        sample_every: c.sample_every,
        checkpoint_every: c.checkpoint_every,
        print_bytes: c.print_bytes,
        seed: c.seed,
        cfg: c.cfg,
        overrides: c.set,
    })?;
    Ok(ExitCode::from(code))
}
