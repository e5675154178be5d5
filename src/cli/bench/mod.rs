//! `clipgan bench ...`: speed and memory measurements (never timed unit tests).
//! Each area adds a variant here and its code in its own `bench/<area>.rs` file; what
//! several benches share lives in `timing.rs` (clocks, medians, timing loops) and
//! `inputs.rs` (random inputs), which import no bench.
use anyhow::Result;
use clap::Subcommand;
use std::process::ExitCode;

mod clip;
mod console;
mod data;
mod eval;
mod gan;
mod inputs;
mod supervisor;
mod tfevents;
mod timing;

#[derive(Subcommand, Debug)]
pub enum BenchCommand {
    /// The queue daemon under load: N fake-runs across S slots (all finish, none twice).
    Supervisor(supervisor::SupervisorBench),
    /// Data loader throughput (images/s): synthetic 256 px and CUB-like 500x375 JPEGs,
    /// batches of 16, 2 worker threads, 64/128/256 copies.
    Loader(data::LoaderArgs),
    /// CLIP forward time (image and text towers) of a preset with random weights.
    ClipForward(clip::ForwardArgs),
    /// CLIP finetuning steps per second (forward, losses, backward, AdamW) on random inputs.
    PretrainStep(clip::StepArgs),
    /// FID Inception feature extraction (images/s, batch 32, 299 px, synthetic weights).
    FidFeatures(eval::FidFeaturesArgs),
    /// Fréchet distance time for D-dimensional statistics (default 2048).
    Frechet(eval::FrechetArgs),
    /// One DM-GAN training iteration (all D steps + G step) on random inputs.
    TrainStep(gan::TrainStepArgs),
    /// The console's curves view: 8 runs x 1,000,000 points: load time, memory per point,
    /// frame time.
    Console(console::ConsoleBench),
    /// Reading a TensorBoard event file of 1,000,000 scalars into the console's store,
    /// against the same scalars as metrics.jsonl: time (median) and peak memory.
    Tfevents(tfevents::TfeventsBench),
}

pub fn run(cmd: BenchCommand) -> Result<ExitCode> {
    match cmd {
        BenchCommand::Supervisor(b) => supervisor::run(b),
        BenchCommand::Loader(a) => data::run(a).map(|_| ExitCode::SUCCESS),
        BenchCommand::ClipForward(a) => clip::clip_forward(a),
        BenchCommand::PretrainStep(a) => clip::pretrain_step(a),
        BenchCommand::FidFeatures(a) => eval::fid_features(a),
        BenchCommand::Frechet(a) => eval::frechet(a),
        BenchCommand::TrainStep(a) => gan::train_step(a),
        BenchCommand::Console(a) => console::run(a),
        BenchCommand::Tfevents(a) => tfevents::run(a),
    }
}
