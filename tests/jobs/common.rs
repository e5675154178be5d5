//! What the job tests (pretrain_job, gan_job, eval_job) share: the binary as a
//! subprocess, reading a run's curves and status, killing a run mid-way, comparing
//! curves, and a tiny random "finetuned" CLIP checkpoint.
#![allow(dead_code)] // each test file uses its own subset
use clipgan::checkpoint::{self, Checkpoint};
use clipgan::models::clip::{self, Clip, ClipConfig};
use clipgan::rundir;
use std::collections::BTreeMap;
use std::path::Path;
use std::process::Command;
use std::time::{Duration, Instant};
use tch::{nn, Device};

/// The clipgan binary on the CPU, without an inherited run folder.
pub fn bin() -> Command {
    let mut c = Command::new(env!("CARGO_BIN_EXE_clipgan"));
    c.env_remove("CLIPGAN_RUN_DIR").env("CLIPGAN_DEVICE", "cpu");
    c
}

/// One tag's values by step (empty before the run has written metrics).
pub fn curve(run: &Path, tag: &str) -> BTreeMap<u64, f64> {
    if !run.join("metrics.jsonl").exists() {
        return BTreeMap::new();
    }
    rundir::read_metrics(run).unwrap().events.into_iter().filter(|e| e.tag == tag).map(|e| (e.step, e.value)).collect()
}

pub fn status(run: &Path) -> rundir::Status {
    rundir::RunDir::open(run).unwrap().status().unwrap().unwrap()
}

/// Start `clipgan SUBCOMMAND --cfg CFG --run-dir RUN` in a child process, wait until it
/// has logged `after` steps of `tag` (and, with `need_checkpoint`, written a
/// checkpoint), send `signal`, and return how it ended.
pub fn run_and_kill(
    subcommand: &str,
    cfg: &Path,
    run_dir: &Path,
    tag: &str,
    after: u64,
    need_checkpoint: bool,
    signal: i32,
) -> std::process::ExitStatus {
    let mut child = bin().args([subcommand, "--cfg"]).arg(cfg).arg("--run-dir").arg(run_dir).spawn().unwrap();
    let deadline = Instant::now() + Duration::from_secs(120);
    loop {
        let steps = curve(run_dir, tag).len() as u64;
        if steps >= after && (!need_checkpoint || run_dir.join("checkpoints/latest.safetensors").exists()) {
            break;
        }
        if let Some(st) = child.try_wait().unwrap() {
            panic!("the run ended before it could be killed: {st}");
        }
        assert!(Instant::now() < deadline, "the run made no progress");
        std::thread::sleep(Duration::from_millis(20));
    }
    // SAFETY: signalling our own child process.
    unsafe { libc::kill(child.id() as i32, signal) };
    child.wait().unwrap()
}

/// The same steps, and values within 1e-5 (relative).
pub fn assert_same_curve(a: &BTreeMap<u64, f64>, b: &BTreeMap<u64, f64>, what: &str) {
    assert_eq!(a.keys().collect::<Vec<_>>(), b.keys().collect::<Vec<_>>(), "{what}: steps differ");
    for (step, va) in a {
        let vb = b[step];
        assert!((va - vb).abs() <= 1e-5 * (1.0 + va.abs()), "{what} at step {step}: {va} uninterrupted, {vb} resumed");
    }
}

/// A tiny random CLIP (preset "tiny", seed 11) saved at `path` as a finetuning
/// checkpoint, standing in for a `clipgan pretrain` result.
pub fn save_tiny_clip(path: &Path) {
    let ccfg = ClipConfig::preset("tiny").unwrap();
    tch::manual_seed(11);
    let vs = nn::VarStore::new(Device::Cpu);
    let _clip = Clip::new(vs.root(), &ccfg);
    let mut ck = Checkpoint::new("pretrain");
    ck.set_meta("kind", "latest");
    ck.set_meta(clip::CONFIG_META_KEY, ccfg.to_hf_json());
    ck.push_var_store(clip::CHECKPOINT_PREFIX, &vs);
    checkpoint::save(path, &ck).unwrap();
}
