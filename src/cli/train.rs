//! `clipgan train`: DM-GAN training (jobs::train).
use crate::jobs::train::{self, Options};
use anyhow::Result;
use clap::Args;
use std::path::PathBuf;
use std::process::ExitCode;

#[derive(Args, Debug)]
pub struct TrainArgs {
    /// Training config (the seed's cfg/clip_*_DMGAN.yml or cfg/demo/train.yml).
    #[arg(long)]
    pub cfg: Option<PathBuf>,
    /// Run folder to write (default: $CLIPGAN_RUN_DIR, else a new folder under runs/).
    #[arg(long)]
    pub run_dir: Option<PathBuf>,
    /// The finetuned CLIP (a `clipgan pretrain` run folder or checkpoint); overrides
    /// TRAIN.CLIP_MODEL_CHECKPOINT.
    #[arg(long)]
    pub clip: Option<PathBuf>,
    /// Continue the run in this folder from its checkpoints/latest.safetensors.
    #[arg(long)]
    pub resume: Option<PathBuf>,
    /// Check config, data, CLIP checkpoint and output folder, print the model summary,
    /// and exit without training.
    #[arg(long)]
    pub dry_run: bool,
    /// Override a setting of the config: a dotted key and a YAML value
    /// (`--set TRAIN.SMOOTH.LAMBDA=0.5`); repeatable, checked like the file.
    #[arg(long = "set", value_name = "KEY=VALUE")]
    pub set: Vec<String>,
    #[command(flatten)]
    pub progress: super::progress::ProgressArgs,
}

pub fn run(args: TrainArgs) -> Result<ExitCode> {
    args.progress.apply();
    let code = train::main(&Options {
        cfg: args.cfg,
        run_dir: args.run_dir,
        resume: args.resume,
        clip: args.clip,
        dry_run: args.dry_run,
        overrides: args.set,
    })?;
    Ok(ExitCode::from(code))
}
