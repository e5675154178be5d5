//! The finetuning job end to end on tiny synthetic data (CPU): it learns (loss falls,
//! validation R-precision far above chance), writes the run folder, resumes exactly after
//! SIGTERM and after SIGKILL, stops as `diverged` keeping the last good checkpoint, and
//! refuses bad inputs with clear errors.
use crate::common::{assert_same_curve, bin, curve, run_and_kill, status};
use clipgan::checkpoint;
use clipgan::data::synth::{self, SynthConfig};
use clipgan::jobs::pretrain::{self, Options};
use clipgan::jobs::Outcome;
use clipgan::models::clip;
use clipgan::rundir::{self, RunState};
use std::path::{Path, PathBuf};
use std::sync::OnceLock;
use std::time::Instant;

/// The synthetic dataset shared by the tests of this file (made once).
pub fn data_dir() -> &'static Path {
    static DIR: OnceLock<PathBuf> = OnceLock::new();
    DIR.get_or_init(|| {
        let tmp = tempfile::tempdir().unwrap().keep();
        let out = tmp.join("synth");
        // 480 train images (12 classes), 160 test images (4 unseen classes): each test
        // image has >= 99 captions of other classes, so R-precision is 1 of 100.
        synth::generate(&out, &SynthConfig { train: 480, test: 160, size: 64, seed: 3 }).unwrap();
        out
    })
}

/// A tiny-preset finetuning config in `dir`; `extra` lines are appended under CLIPGAN.
pub fn write_cfg(dir: &Path, name: &str, epochs: u32, backbone_lr: f64, extra: &str) -> PathBuf {
    let text = format!(
        "CONFIG_NAME: 'DAMSM'
DATASET_NAME: 'birds'
DATA_DIR: '{data}'
WORKERS: 1
TREE:
  BRANCH_NUM: 1
  BASE_SIZE: 32
TRAIN:
  BATCH_SIZE: 16
  MAX_EPOCH: {epochs}
  SNAPSHOT_INTERVAL: 1
  BACKBONE_LR: {backbone_lr:e}
  LINEAR_LR: 0.002
  RNN_GRAD_CLIP: 0.25
  SMOOTH:
    GAMMA1: 4.0
    GAMMA2: 5.0
    GAMMA3: 10.0
TEXT:
  EMBEDDING_DIM: 32
  CAPTIONS_PER_IMAGE: 10
  WORDS_NUM: 24
CLIPGAN:
  CLIP_PRESET: 'tiny'
  CLIP_FROM_SCRATCH: true
  THREADS: 1
  DEVICE: 'cpu'
  LOG_EVERY: 1
  WARMUP_EPOCHS: 1
  CYCLE_EPOCHS: {cycle}
{extra}",
        data = data_dir().display(),
        cycle = epochs.max(2),
    );
    let path = dir.join(name);
    std::fs::write(&path, text).unwrap();
    path
}

#[test]
fn tiny_run_learns_and_writes_the_run_folder() {
    let tmp = tempfile::tempdir().unwrap();
    let cfg = write_cfg(tmp.path(), "learn.yml", 4, 2e-3, "");
    let run_dir = tmp.path().join("run");
    let t0 = Instant::now();
    let (outcome, dir) =
        pretrain::run(&Options { cfg: Some(cfg), run_dir: Some(run_dir.clone()), resume: None, ..Default::default() }).unwrap();
    eprintln!("tiny 4-epoch run: {:.1} s", t0.elapsed().as_secs_f64());
    assert_eq!(outcome, Outcome::Finished);
    assert_eq!(dir.path(), run_dir);

    // 480 / 16 = 30 steps per epoch.
    let loss = curve(&run_dir, "loss/total");
    assert_eq!(loss.len(), 120);
    let first: f64 = loss.values().take(10).sum::<f64>() / 10.0;
    let last: f64 = loss.values().rev().take(10).sum::<f64>() / 10.0;
    assert!(last < 0.75 * first, "the loss did not fall: {first:.3} -> {last:.3}");
    for tag in ["loss/words", "loss/sentence", "loss/nt_xent", "grad_norm", "lr/backbone", "lr/linear_subr", "speed/images_per_s"] {
        assert_eq!(curve(&run_dir, tag).len(), 120, "{tag}");
    }
    // The schedule: warm-up from the floor, peak after one epoch, cosine down.
    let lr = curve(&run_dir, "lr/backbone");
    assert!(lr[&1] < 1e-6 && (lr[&31] - 2e-3).abs() < 1e-9 && lr[&120] < lr[&60]);

    let rp = curve(&run_dir, "val/r_precision");
    let chance = curve(&run_dir, "val/r_chance");
    assert_eq!(rp.len(), 4, "validation once per epoch");
    assert!((chance.values().last().unwrap() - 0.01).abs() < 1e-9, "1 of 100 candidates");
    let final_rp = *rp.values().last().unwrap();
    eprintln!("validation R-precision by epoch: {:?}", rp.values().collect::<Vec<_>>());
    // Chance is 0.01: more than 8 hits of 160 trials by chance has probability about 4e-5.
    // After 4 epochs the value depends much on which 4 classes the synthetic test split
    // holds (0.06 to 0.57 over synthetic-data seeds 1..11; 0.15 for seed 3), so the bound
    // says "above chance", not "learnt well".
    assert!(final_rp > 0.05, "validation R-precision {final_rp} is not clearly above chance (0.01)");
    assert_eq!(curve(&run_dir, "val/word_loss").len(), 4);
    assert_eq!(curve(&run_dir, "val/sentence_loss").len(), 4);

    let st = status(&run_dir);
    assert_eq!(st.state, RunState::Finished);
    assert_eq!((st.step, st.total_steps, st.total_epochs), (120, Some(120), Some(4)));
    assert_eq!(st.last_checkpoint.as_deref(), Some("checkpoints/latest.safetensors"));

    // One retrieval preview per epoch: 8 images with their top captions.
    let samples = rundir::read_samples(&run_dir).unwrap();
    assert_eq!(samples.len(), 4);
    for s in &samples {
        assert_eq!((s.tag.as_str(), s.captions.len(), s.rows, s.cols), ("retrieval", 8, 2, 4));
        assert!(s.captions.iter().all(|c| ["[own] ", "[class] ", "[wrong] "].iter().any(|m| c.starts_with(m))), "{:?}", s.captions);
        let img = image::open(run_dir.join(&s.file)).unwrap();
        assert_eq!((img.width(), img.height()), (4 * 34 + 2, 2 * 34 + 2));
    }

    // Snapshots every epoch (model only) and the resumable latest; both load as the
    // finetuned CLIP of the GAN stage, and give the same model at the end.
    let ck = run_dir.join("checkpoints");
    for e in 1..=4 {
        let meta = checkpoint::read_meta(&ck.join(format!("clip_epoch_{e:04}.safetensors"))).unwrap();
        assert_eq!((meta["kind"].as_str(), meta["epoch"].as_str()), ("snapshot", e.to_string().as_str()));
    }
    let snap = ck.join("clip_epoch_0004.safetensors");
    let header = checkpoint::read_header(&snap).unwrap();
    assert!(header.tensors.iter().all(|(n, ..)| n.starts_with("clip.")), "snapshots hold the model only");
    let latest = checkpoint::read_header(&ck.join("latest.safetensors")).unwrap();
    assert!(latest.tensors.iter().any(|(n, ..)| n.starts_with("optim.") && n.ends_with(".exp_avg_sq")));
    assert_eq!((latest.meta["epoch"].as_str(), latest.meta["batch"].as_str(), latest.meta["step"].as_str()), ("4", "0", "120"));
    let (_, a, cfg_a) = clip::load_finetuned_clip(&snap, tch::Device::Cpu).unwrap();
    let (_, b, _) = clip::load_finetuned_clip(&run_dir, tch::Device::Cpu).unwrap();
    assert_eq!(cfg_a, clip::ClipConfig::preset("tiny").unwrap());
    let pixels = tch::Tensor::zeros([1, 3, 32, 32], (tch::Kind::Float, tch::Device::Cpu));
    let (ca, cb) = tch::no_grad(|| (a.image_code(&pixels), b.image_code(&pixels)));
    assert_eq!(Vec::<f32>::try_from(ca.flatten(0, -1)).unwrap(), Vec::<f32>::try_from(cb.flatten(0, -1)).unwrap());
}

#[test]
fn kill_and_resume_gives_the_uninterrupted_loss_curve() {
    let tmp = tempfile::tempdir().unwrap();
    // Reference: two epochs without interruption.
    let cfg = write_cfg(tmp.path(), "resume.yml", 2, 2e-3, "");
    // In its own process, like the runs it is compared with: libtorch's global generator
    // is re-seeded before each draw (train::seed), and the other tests of this file run
    // jobs in this process at the same time, which would interleave their draws.
    let reference = tmp.path().join("reference");
    let out = bin().args(["pretrain", "--cfg"]).arg(&cfg).arg("--run-dir").arg(&reference).output().unwrap();
    assert!(out.status.success(), "reference run failed: {}", String::from_utf8_lossy(&out.stderr));
    assert_eq!(status(&reference).state, RunState::Finished);
    let want = curve(&reference, "loss/total");
    assert_eq!(want.len(), 60);

    // SIGTERM mid-epoch: a checkpoint at the exact position, state stopped, exit code 3.
    let stopped = tmp.path().join("sigterm");
    let st = run_and_kill("pretrain", &cfg, &stopped, "loss/total", 8, false, libc::SIGTERM);
    assert_eq!(st.code(), Some(clipgan::rundir::exit::STOPPED as i32), "{st}");
    let s = status(&stopped);
    assert_eq!(s.state, RunState::Stopped);
    let meta = checkpoint::read_meta(&stopped.join("checkpoints/latest.safetensors")).unwrap();
    assert!(meta["step"].parse::<u64>().unwrap() >= 8 && meta["step"].parse::<u64>().unwrap() < 60);
    let out = bin().args(["pretrain", "--resume"]).arg(&stopped).output().unwrap();
    assert!(out.status.success(), "resume failed: {}", String::from_utf8_lossy(&out.stderr));
    assert_eq!(status(&stopped).state, RunState::Finished);
    assert_same_curve(&want, &curve(&stopped, "loss/total"), "SIGTERM + resume");
    assert_same_curve(&curve(&reference, "val/r_precision"), &curve(&stopped, "val/r_precision"), "val R-precision");
    assert_same_curve(&curve(&reference, "val/word_loss"), &curve(&stopped, "val/word_loss"), "val word loss");

    // SIGKILL: no chance to save; the periodic checkpoint (every step here) is the
    // resume point (written about every 0.3 s here), and the steps logged after it are
    // recomputed identically.
    let cfg_k = write_cfg(tmp.path(), "resume_kill.yml", 2, 2e-3, "  CHECKPOINT_MINUTES: 0.005\n");
    let killed = tmp.path().join("sigkill");
    let st = run_and_kill("pretrain", &cfg_k, &killed, "loss/total", 12, true, libc::SIGKILL);
    assert_eq!(st.code(), None, "killed by a signal");
    assert_eq!(status(&killed).state, RunState::Running, "a killed worker cannot write its final state");
    // What a kill during a checkpoint write leaves behind is cleaned up by the next worker.
    let stale = killed.join("checkpoints/.latest.safetensors.tmp.99999.0");
    std::fs::write(&stale, b"half a checkpoint").unwrap();
    let out = bin().args(["pretrain", "--resume"]).arg(&killed).output().unwrap();
    assert!(out.status.success(), "resume after SIGKILL failed: {}", String::from_utf8_lossy(&out.stderr));
    assert_same_curve(&want, &curve(&killed, "loss/total"), "SIGKILL + resume");
    assert!(!stale.exists());
}

#[test]
fn a_diverging_run_stops_and_keeps_the_last_good_checkpoint() {
    let tmp = tempfile::tempdir().unwrap();
    let run_dir = tmp.path().join("run");
    let good = write_cfg(tmp.path(), "good.yml", 1, 2e-3, "");
    let (outcome, _) =
        pretrain::run(&Options { cfg: Some(good), run_dir: Some(run_dir.clone()), resume: None, ..Default::default() }).unwrap();
    assert_eq!(outcome, Outcome::Finished);
    let latest = run_dir.join("checkpoints/latest.safetensors");
    let before = std::fs::read(&latest).unwrap();
    // Continue for a second epoch at an absurd learning rate: NaN/Inf within steps.
    let bad = write_cfg(tmp.path(), "bad.yml", 2, 1e30, "");
    let text = std::fs::read_to_string(&bad).unwrap().replace("WARMUP_EPOCHS: 1", "WARMUP_EPOCHS: 0");
    std::fs::write(&bad, text).unwrap();
    let out = bin().args(["pretrain", "--cfg"]).arg(&bad).arg("--resume").arg(&run_dir).output().unwrap();
    assert_eq!(out.status.code(), Some(clipgan::rundir::exit::DIVERGED as i32), "{}", String::from_utf8_lossy(&out.stderr));
    let s = status(&run_dir);
    assert_eq!(s.state, RunState::Diverged);
    assert!(s.message.contains("diverged at step") && s.message.contains("last good state"), "{}", s.message);
    assert_eq!(std::fs::read(&latest).unwrap(), before, "the last good checkpoint is kept as it was");
    // The non-finite value is recorded, not dropped.
    let events = rundir::read_metrics(&run_dir).unwrap().events;
    assert!(events.iter().any(|e| (e.tag == "loss/total" || e.tag == "grad_norm") && !e.value.is_finite()));
}

#[test]
fn bad_inputs_are_refused_with_clear_errors() {
    let tmp = tempfile::tempdir().unwrap();
    // A missing dataset: the error names the key and the path; the run is marked failed.
    let cfg = write_cfg(tmp.path(), "nodata.yml", 1, 2e-3, "");
    let text = std::fs::read_to_string(&cfg).unwrap().replace(&data_dir().display().to_string(), "/nonexistent/synth");
    std::fs::write(&cfg, text).unwrap();
    let run_dir = tmp.path().join("nodata_run");
    let e = format!(
        "{:#}",
        pretrain::run(&Options { cfg: Some(cfg), run_dir: Some(run_dir.clone()), resume: None, ..Default::default() }).unwrap_err()
    );
    assert!(e.contains("DATA_DIR") && e.contains("/nonexistent/synth"), "{e}");
    let s = status(&run_dir);
    assert_eq!(s.state, RunState::Failed);
    assert!(s.message.contains("DATA_DIR"), "{}", s.message);

    // Resuming a folder without a checkpoint.
    let e = format!(
        "{:#}",
        pretrain::run(&Options { cfg: None, run_dir: None, resume: Some(tmp.path().join("nowhere")), ..Default::default() }).unwrap_err()
    );
    assert!(e.contains("nowhere"), "{e}");

    // A truncated latest checkpoint: refused with its name, nothing overwritten.
    let cfg = write_cfg(tmp.path(), "short.yml", 1, 2e-3, "  MAX_STEPS: 3\n");
    let run_dir = tmp.path().join("short_run");
    pretrain::run(&Options { cfg: Some(cfg), run_dir: Some(run_dir.clone()), resume: None, ..Default::default() }).unwrap();
    let latest = run_dir.join("checkpoints/latest.safetensors");
    let bytes = std::fs::read(&latest).unwrap();
    std::fs::write(&latest, &bytes[..bytes.len() - 100]).unwrap();
    let e = format!(
        "{:#}",
        pretrain::run(&Options { cfg: None, run_dir: None, resume: Some(run_dir.clone()), ..Default::default() }).unwrap_err()
    );
    assert!(e.contains("latest.safetensors") && e.contains("truncated"), "{e}");
    assert_eq!(std::fs::read(&latest).unwrap().len(), bytes.len() - 100);
    assert_eq!(status(&run_dir).state, RunState::Failed);

    // NET_E that is not a finetuning checkpoint (HuggingFace weights have no linear_subr).
    let hf = Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/fixtures/clip/hf_tiny/model.safetensors");
    let cfg = write_cfg(tmp.path(), "nete.yml", 1, 2e-3, "");
    let text = std::fs::read_to_string(&cfg).unwrap().replace("TRAIN:\n", &format!("TRAIN:\n  NET_E: '{}'\n", hf.display()));
    std::fs::write(&cfg, text).unwrap();
    let e = format!(
        "{:#}",
        pretrain::run(&Options { cfg: Some(cfg), run_dir: Some(tmp.path().join("nete_run")), resume: None, ..Default::default() })
            .unwrap_err()
    );
    assert!(e.contains("model.safetensors") && e.contains("clipgan checkpoint"), "{e}");
}
