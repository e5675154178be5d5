//! `clipgan bench ...`: speed and memory measurements (never timed unit tests).
//! Each area adds a variant here and its code in its own `bench_<area>.rs` file.
use anyhow::Result;
use clap::Subcommand;
use std::process::ExitCode;

#[derive(Subcommand, Debug)]
pub enum BenchCommand {
    /// CLIP forward time (image and text towers) of a preset with random weights.
    ClipForward(super::bench_clip::ForwardArgs),
    /// CLIP finetuning steps per second (forward, losses, backward, AdamW) on random inputs.
    PretrainStep(super::bench_clip::StepArgs),
}

pub fn run(cmd: BenchCommand) -> Result<ExitCode> {
    match cmd {
        BenchCommand::ClipForward(a) => super::bench_clip::clip_forward(a),
        BenchCommand::PretrainStep(a) => super::bench_clip::pretrain_step(a),
    }
}
