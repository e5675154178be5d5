//! `clipgan resources`: the console's resources data source (console::resources) sampled
//! once for given processes, printed as text or JSON, so that a script can check what
//! the panel would show (CPU, memory, and GPU memory/utilisation through NVML) without
//! a terminal.
use crate::console::resources::{human_bytes, Gpus, ProcSampler, ProcUsage, ResourceSnapshot};
use anyhow::{bail, Result};
use clap::Args;
use serde_json::json;
use std::process::ExitCode;
use std::time::Duration;

#[derive(Args, Debug)]
pub struct ResourcesArgs {
    /// A process to watch (repeatable), as the console watches its running workers.
    #[arg(long)]
    pub pid: Vec<u32>,
    /// Samples to take (CPU % needs two; NVML's per-process utilisation needs time too).
    #[arg(long, default_value_t = 3)]
    pub samples: u32,
    /// Time between samples, in milliseconds (the console samples about once a second).
    #[arg(long, default_value_t = 1000)]
    pub interval_ms: u64,
    /// Print the last sample as one JSON object.
    #[arg(long)]
    pub json: bool,
}

pub fn run(a: ResourcesArgs) -> Result<ExitCode> {
    if a.samples == 0 {
        bail!("--samples must be at least 1");
    }
    let pids: Vec<(u32, String)> = a.pid.iter().map(|p| (*p, format!("pid {p}"))).collect();
    let mut procs = ProcSampler::new();
    let mut gpus = Gpus::init();
    let mut snap = ResourceSnapshot::default();
    for i in 0..a.samples {
        if i > 0 {
            std::thread::sleep(Duration::from_millis(a.interval_ms));
        }
        let mut usage = procs.sample(&pids);
        let g = match &mut gpus {
            Ok(g) => g.sample(&mut usage),
            Err(e) => Err(e.clone()),
        };
        snap = ResourceSnapshot { procs: usage, gpus: g };
    }
    if a.json {
        println!("{}", serde_json::to_string_pretty(&snapshot_json(&snap))?);
    } else {
        for line in crate::console::resources::ResourcesPanel(&snap).lines() {
            println!("{line}");
        }
    }
    Ok(ExitCode::SUCCESS)
}

fn proc_json(p: &ProcUsage) -> serde_json::Value {
    json!({
        "pid": p.pid,
        "cpu_percent": p.cpu_percent,
        "rss_bytes": p.rss_bytes,
        "rss": p.rss_bytes.map(human_bytes),
        "gpu_mem": p.gpu_mem.iter().map(|(d, b)| json!({"device": d, "bytes": b})).collect::<Vec<_>>(),
        "gpu_util": p.gpu_util.iter().map(|(d, u)| json!({"device": d, "percent": u})).collect::<Vec<_>>(),
    })
}

/// The snapshot as JSON: `gpus` (a list) or `gpu_error` (why there is none, the panel's
/// "no NVIDIA GPU / driver: ..." line).
fn snapshot_json(s: &ResourceSnapshot) -> serde_json::Value {
    let mut out = json!({ "procs": s.procs.iter().map(proc_json).collect::<Vec<_>>() });
    match &s.gpus {
        Ok(g) => {
            out["gpus"] = json!(g
                .iter()
                .map(|d| json!({
                    "index": d.index, "name": d.name, "util_percent": d.util_percent,
                    "mem_used_bytes": d.mem_used, "mem_total_bytes": d.mem_total,
                }))
                .collect::<Vec<_>>());
        }
        Err(e) => out["gpu_error"] = json!(e),
    }
    out
}
