//! `clipgan bench fid-features` and `clipgan bench frechet`: FID Inception feature
//! extraction speed (images/s, synthetic weights, random 299 px input: no decoding) and
//! the Fréchet distance time for D-dimensional statistics. Wall and process CPU time per
//! iteration and the medians (a shared machine skews wall time).
use super::timing::time_calls_printing;
use crate::eval::frechet::{frechet_distance, Stats};
use crate::eval::inception::{self, FidInception};
use anyhow::Result;
use clap::Args;
use std::process::ExitCode;
use tch::{nn, Kind, Tensor};

#[derive(Args, Debug)]
pub struct FidFeaturesArgs {
    #[arg(long, default_value_t = 32)]
    pub batch: i64,
    /// Timed batches (after one untimed warm-up).
    #[arg(long, default_value_t = 5)]
    pub iters: usize,
    /// auto, cpu, cuda, cuda:N.
    #[arg(long, default_value = "cpu")]
    pub device: String,
    /// libtorch threads (0: libtorch's default).
    #[arg(long, default_value_t = 0)]
    pub threads: i32,
    /// Print the result as one JSON object on stdout (the progress goes to stderr).
    #[arg(long)]
    pub json: bool,
}

#[derive(Args, Debug)]
pub struct FrechetArgs {
    #[arg(long, default_value_t = 2048)]
    pub dims: i64,
    #[arg(long, default_value_t = 5)]
    pub iters: usize,
    #[arg(long, default_value_t = 0)]
    pub threads: i32,
}

pub fn fid_features(a: FidFeaturesArgs) -> Result<ExitCode> {
    let device = crate::device::from_flag(&a.device)?;
    if a.threads > 0 {
        tch::set_num_threads(a.threads);
    }
    let mut vs = nn::VarStore::new(device);
    let net = FidInception::new(&vs.root());
    inception::fill_synthetic(&mut vs);
    tch::manual_seed(5);
    let x = Tensor::rand([a.batch, 3, 299, 299], (Kind::Float, device));
    let head = format!("fid-features: batch {}, 299 px, {device:?}, {} libtorch threads", a.batch, tch::get_num_threads());
    if a.json {
        eprintln!("{head}");
    } else {
        println!("{head}");
    }
    let (wall, cpu) = time_calls_printing(a.iters, a.json, || {
        let f = net.forward(&x, 2048, false)?.features;
        let _ = f.to_device(tch::Device::Cpu); // synchronise
        Ok(())
    })?;
    let images_per_s = a.batch as f64 / wall;
    if a.json {
        let out = serde_json::json!({
            "bench": "fid-features", "device": format!("{device:?}"), "batch": a.batch, "iters": a.iters,
            "threads": tch::get_num_threads(), "median_wall_s": wall, "median_cpu_s": cpu, "images_per_s": images_per_s,
        });
        println!("{out}");
    } else {
        println!("median: {wall:.3} s/batch wall = {images_per_s:.1} images/s ({cpu:.3} CPU-s/batch)");
    }
    Ok(ExitCode::SUCCESS)
}

pub fn frechet(a: FrechetArgs) -> Result<ExitCode> {
    crate::device::init_torch();
    if a.threads > 0 {
        tch::set_num_threads(a.threads);
    }
    let d = a.dims;
    tch::manual_seed(6);
    let opts = (Kind::Double, tch::Device::Cpu);
    let stats = |n: i64| -> Result<Stats> { Stats::from_features(&Tensor::randn([n, d], opts)) };
    let (s1, s2) = (stats(d + 100)?, stats(d + 200)?);
    println!("frechet: {d}-d statistics, float64, {} libtorch threads", tch::get_num_threads());
    let mut value = 0.0;
    let (wall, cpu) = time_calls_printing(a.iters, false, || {
        value = frechet_distance(&s1, &s2)?;
        Ok(())
    })?;
    println!("median: {wall:.3} s wall ({cpu:.3} CPU-s); distance {value:.6}");
    Ok(ExitCode::SUCCESS)
}
