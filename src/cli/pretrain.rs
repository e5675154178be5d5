//! `clipgan pretrain`: CLIP finetuning (jobs::pretrain).
use crate::jobs::pretrain::{self, Options};
use anyhow::Result;
use clap::Args;
use std::path::PathBuf;
use std::process::ExitCode;

#[derive(Args, Debug)]
pub struct PretrainArgs {
    /// Finetuning config (the seed's cfg/DAMSM/*.yml or cfg/demo/pretrain.yml).
    #[arg(long)]
    pub cfg: Option<PathBuf>,
    /// Run folder to write (default: $CLIPGAN_RUN_DIR, else a new folder under runs/).
    #[arg(long)]
    pub run_dir: Option<PathBuf>,
    /// Continue the run in this folder from its checkpoints/latest.safetensors (with
    /// its config.yml unless --cfg is given).
    #[arg(long)]
    pub resume: Option<PathBuf>,
    /// Override a setting of the config: a dotted key and a YAML value
    /// (`--set TRAIN.SMOOTH.LAMBDA=0.5`); repeatable, checked like the file.
    #[arg(long = "set", value_name = "KEY=VALUE")]
    pub set: Vec<String>,
    #[command(flatten)]
    pub progress: super::progress::ProgressArgs,
}

pub fn run(args: PretrainArgs) -> Result<ExitCode> {
    args.progress.apply();
    let code = pretrain::main(&Options { cfg: args.cfg, run_dir: args.run_dir, resume: args.resume, overrides: args.set })?;
    Ok(ExitCode::from(code))
}
