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

/// Process CPU seconds (user + system, all threads): the steadier figure on a shared machine.
pub(super) fn cpu_seconds() -> f64 {
    // SAFETY: getrusage fills the struct we pass.
    let mut u: libc::rusage = unsafe { std::mem::zeroed() };
    unsafe { libc::getrusage(libc::RUSAGE_SELF, &mut u) };
    let tv = |t: libc::timeval| t.tv_sec as f64 + t.tv_usec as f64 * 1e-6;
    tv(u.ru_utime) + tv(u.ru_stime)
}

/// The median (mean of the middle two for an even count); NaN for no values.
pub(super) fn median(v: &[f64]) -> f64 {
    let mut s = v.to_vec();
    s.sort_by(f64::total_cmp);
    let n = s.len();
    match n {
        0 => f64::NAN,
        _ if n % 2 == 1 => s[n / 2],
        _ => (s[n / 2 - 1] + s[n / 2]) / 2.0,
    }
}
