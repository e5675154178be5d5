//! `clipgan bench ...`: speed and memory measurements (never timed unit tests).
//! Each area adds a variant here and its code in its own `bench_<area>.rs` file.
use anyhow::Result;
use clap::Subcommand;
use std::process::ExitCode;

#[derive(Subcommand, Debug)]
pub enum BenchCommand {
    /// The queue daemon under load: N fake-runs across S slots (all finish, none twice).
    Supervisor(super::bench_supervisor::SupervisorBench),
    /// Data loader throughput (images/s): synthetic 256 px and CUB-like 500x375 JPEGs,
    /// batches of 16, 2 worker threads, 64/128/256 copies.
    Loader(super::bench_data::LoaderArgs),
    /// CLIP forward time (image and text towers) of a preset with random weights.
    ClipForward(super::bench_clip::ForwardArgs),
    /// CLIP finetuning steps per second (forward, losses, backward, AdamW) on random inputs.
    PretrainStep(super::bench_clip::StepArgs),
    /// FID Inception feature extraction (images/s, batch 32, 299 px, synthetic weights).
    FidFeatures(super::bench_eval::FidFeaturesArgs),
    /// Fréchet distance time for D-dimensional statistics (default 2048).
    Frechet(super::bench_eval::FrechetArgs),
    /// One DM-GAN training iteration (all D steps + G step) on random inputs.
    TrainStep(super::bench_gan::TrainStepArgs),
    /// The console's curves view: 8 runs x 1,000,000 points: load time, memory per point,
    /// frame time.
    Console(super::bench_console::ConsoleBench),
}

pub fn run(cmd: BenchCommand) -> Result<ExitCode> {
    match cmd {
        BenchCommand::Supervisor(b) => super::bench_supervisor::run(b),
        BenchCommand::Loader(a) => super::bench_data::run(a).map(|_| ExitCode::SUCCESS),
        BenchCommand::ClipForward(a) => super::bench_clip::clip_forward(a),
        BenchCommand::PretrainStep(a) => super::bench_clip::pretrain_step(a),
        BenchCommand::FidFeatures(a) => super::bench_eval::fid_features(a),
        BenchCommand::Frechet(a) => super::bench_eval::frechet(a),
        BenchCommand::TrainStep(a) => super::bench_gan::train_step(a),
        BenchCommand::Console(a) => super::bench_console::run(a),
    }
}
