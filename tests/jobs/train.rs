//! The DM-GAN training job end to end on tiny synthetic data with a tiny random CLIP
//! (CPU): run folder contents, exact resume after SIGTERM and SIGKILL, the NaN guard,
//! dry run and model summary; and in-process checks of a D step and the EMA update.
use crate::common::{assert_same_curve, bin, curve, run_and_kill, status};
use clipgan::checkpoint::{self};
use clipgan::data::synth::{self, SynthConfig};
use clipgan::jobs::train as train_job;
use clipgan::models::dmgan::{self, Discriminator, GanConfig};
use clipgan::rundir::{self, RunState};
use clipgan::train::gan_step::{self, Nets};
use clipgan::train::optim::{Adam, ParamGroup};
use std::path::{Path, PathBuf};
use std::sync::OnceLock;
use tch::{nn, Device, Kind, Tensor};

/// Synthetic data and a tiny random "finetuned" CLIP, shared by the tests (made once).
fn fixtures() -> &'static (PathBuf, PathBuf) {
    static F: OnceLock<(PathBuf, PathBuf)> = OnceLock::new();
    F.get_or_init(|| {
        let tmp = tempfile::tempdir().unwrap().keep();
        let data = tmp.join("synth");
        synth::generate(&data, &SynthConfig { train: 48, test: 16, size: 64, seed: 5 }).unwrap();
        let clip_file = tmp.join("clip_tiny.safetensors");
        crate::common::save_tiny_clip(&clip_file);
        (data, clip_file)
    })
}

fn write_cfg(dir: &Path, name: &str, epochs: u32, lr: f64, extra: &str) -> PathBuf {
    let (data, clip_file) = fixtures();
    let text = format!(
        "CONFIG_NAME: 'DMGAN'
DATASET_NAME: 'birds'
DATA_DIR: '{}'
WORKERS: 1
TREE:
  BRANCH_NUM: 2
  BASE_SIZE: 64
TRAIN:
  FLAG: True
  BATCH_SIZE: 4
  MAX_EPOCH: {epochs}
  SNAPSHOT_INTERVAL: 1
  DISCRIMINATOR_LR: {lr:e}
  GENERATOR_LR: {lr:e}
  CLIP_MODEL_CHECKPOINT: '{}'
  SMOOTH:
    GAMMA1: 4.0
    GAMMA2: 5.0
    GAMMA3: 10.0
    LAMBDA: 1.0
GAN:
  DF_DIM: 4
  GF_DIM: 4
  Z_DIM: 8
  CONDITION_DIM: 6
  R_NUM: 1
TEXT:
  EMBEDDING_DIM: 32
  CAPTIONS_PER_IMAGE: 10
  WORDS_NUM: 24
CLIPGAN:
  THREADS: 1
  DEVICE: 'cpu'
  LOG_EVERY: 1
{extra}",
        data.display(),
        clip_file.display()
    );
    let p = dir.join(name);
    std::fs::write(&p, text).unwrap();
    p
}

fn train(cfg: &Path, run: &Path) -> std::process::Output {
    bin().args(["train", "--cfg"]).arg(cfg).arg("--run-dir").arg(run).output().unwrap()
}

#[test]
fn tiny_run_writes_metrics_samples_checkpoints_and_snapshots() {
    let tmp = tempfile::tempdir().unwrap();
    let cfg = write_cfg(tmp.path(), "run.yml", 2, 2e-4, "");
    let run = tmp.path().join("run");
    let out = train(&cfg, &run);
    assert!(out.status.success(), "{}", String::from_utf8_lossy(&out.stderr));
    let s = status(&run);
    assert_eq!(s.state, RunState::Finished);
    // 48 images / 4 = 12 steps per epoch, 2 epochs.
    for tag in [
        "loss/d64",
        "loss/d128",
        "loss/g64",
        "loss/g128",
        "loss/kl",
        "loss/words",
        "loss/sentence",
        "loss/contrastive",
        "loss/g_total",
        "speed/images_per_s",
    ] {
        let c = curve(&run, tag);
        assert_eq!(c.len(), 24, "{tag}");
        assert!(c.values().all(|v| v.is_finite()), "{tag}");
    }
    assert!(curve(&run, "loss/contrastive").values().all(|v| *v > 0.0));
    // Sample grids per branch size at step 0 and after each epoch, with their captions.
    let samples = rundir::read_samples(&run).unwrap();
    for tag in ["grid/64", "grid/128"] {
        let steps: Vec<u64> = samples.iter().filter(|e| e.tag == tag).map(|e| e.step).collect();
        assert_eq!(steps, vec![0, 12, 24], "{tag}");
    }
    let first = samples.iter().find(|e| e.tag == "grid/128").unwrap();
    assert_eq!(first.captions.len(), train_job::SAMPLE_CAPTIONS);
    let img = image::open(run.join(&first.file)).unwrap();
    assert!(img.width() > 4 * 128 && img.height() > 2 * 128);
    // Checkpoints: latest with everything, a snapshot per epoch with the EMA generator.
    let latest = checkpoint::load(&run.join("checkpoints/latest.safetensors"), Device::Cpu).unwrap();
    assert_eq!((latest.meta["epoch"].as_str(), latest.meta["batch"].as_str(), latest.meta["step"].as_str()), ("2", "0", "24"));
    for prefix in ["g.", "ema_g.", "d0.", "d1.", "optim_g.", "optim_d0.", "optim_d1."] {
        assert!(latest.tensors.iter().any(|(n, _)| n.starts_with(prefix)), "{prefix}");
    }
    assert!(latest.tensors.iter().any(|(n, _)| n == "d1.img_code_s16.0.weight_u"));
    for e in [1, 2] {
        let snap = run.join(format!("checkpoints/{}", train_job::snapshot_name(e)));
        let meta = checkpoint::read_meta(&snap).unwrap();
        assert_eq!(meta["kind"], "snapshot");
    }
    // The EMA generator loads from the run folder and from a snapshot, the same weights.
    let (_, g, gcfg) = dmgan::load_generator(&run, Device::Cpu).unwrap();
    let (_, g2, _) = dmgan::load_generator(&run.join("checkpoints/netG_epoch_0002.safetensors"), Device::Cpu).unwrap();
    assert_eq!(gcfg.branch_num, 2);
    let z = Tensor::randn([2, 8], (Kind::Float, Device::Cpu));
    let sent = Tensor::randn([2, 32], (Kind::Float, Device::Cpu));
    let words = Tensor::randn([2, 32, 24], (Kind::Float, Device::Cpu));
    let mask = Tensor::zeros([2, 24], (Kind::Bool, Device::Cpu));
    let eps = Tensor::randn([2, 6], (Kind::Float, Device::Cpu));
    let a = tch::no_grad(|| g.forward_eps(&z, Some(&eps), &sent, &words, &mask, false)).images[1].copy();
    let b = tch::no_grad(|| g2.forward_eps(&z, Some(&eps), &sent, &words, &mask, false)).images[1].copy();
    assert_eq!((a - b).abs().max().double_value(&[]), 0.0);

    // TRAIN.NET_G continues from the snapshot's epoch with its generator.
    let cont = write_cfg(tmp.path(), "cont.yml", 3, 2e-4, "").to_string_lossy().to_string();
    let text = std::fs::read_to_string(&cont).unwrap().replace(
        "  FLAG: True\n",
        &format!("  FLAG: True\n  NET_G: '{}'\n", run.join("checkpoints/netG_epoch_0002.safetensors").display()),
    );
    std::fs::write(&cont, text).unwrap();
    let run2 = tmp.path().join("run2");
    let out = train(Path::new(&cont), &run2);
    assert!(out.status.success(), "{}", String::from_utf8_lossy(&out.stderr));
    assert_eq!(curve(&run2, "loss/g_total").keys().copied().collect::<Vec<_>>(), (25..=36).collect::<Vec<_>>());
}

#[test]
fn kill_and_resume_gives_the_uninterrupted_loss_curves() {
    let tmp = tempfile::tempdir().unwrap();
    let cfg = write_cfg(tmp.path(), "resume.yml", 2, 2e-4, "");
    let reference = tmp.path().join("reference");
    let out = train(&cfg, &reference);
    assert!(out.status.success(), "reference run failed: {}", String::from_utf8_lossy(&out.stderr));
    let tags = ["loss/g_total", "loss/d64", "loss/d128", "loss/words"];
    let want: Vec<_> = tags.iter().map(|t| curve(&reference, t)).collect();
    assert_eq!(want[0].len(), 24);

    // SIGTERM mid-epoch: checkpoint at the exact position, state stopped, exit code 3.
    let stopped = tmp.path().join("sigterm");
    let st = run_and_kill("train", &cfg, &stopped, "loss/g_total", 5, false, libc::SIGTERM);
    assert_eq!(st.code(), Some(clipgan::rundir::exit::STOPPED as i32), "{st}");
    assert_eq!(status(&stopped).state, RunState::Stopped);
    let out = bin().args(["train", "--resume"]).arg(&stopped).output().unwrap();
    assert!(out.status.success(), "resume failed: {}", String::from_utf8_lossy(&out.stderr));
    assert_eq!(status(&stopped).state, RunState::Finished);
    for (t, w) in tags.iter().zip(&want) {
        assert_same_curve(w, &curve(&stopped, t), &format!("SIGTERM + resume, {t}"));
    }

    // SIGKILL: the periodic checkpoint is the resume point.
    let cfg_k = write_cfg(tmp.path(), "resume_kill.yml", 2, 2e-4, "  CHECKPOINT_MINUTES: 0.002\n");
    let killed = tmp.path().join("sigkill");
    let st = run_and_kill("train", &cfg_k, &killed, "loss/g_total", 8, true, libc::SIGKILL);
    assert_eq!(st.code(), None, "killed by a signal");
    let out = bin().args(["train", "--resume"]).arg(&killed).output().unwrap();
    assert!(out.status.success(), "resume after SIGKILL failed: {}", String::from_utf8_lossy(&out.stderr));
    for (t, w) in tags.iter().zip(&want) {
        assert_same_curve(w, &curve(&killed, t), &format!("SIGKILL + resume, {t}"));
    }
}

#[test]
fn a_diverging_run_stops_and_keeps_the_last_good_checkpoint() {
    let tmp = tempfile::tempdir().unwrap();
    let run = tmp.path().join("run");
    let good = write_cfg(tmp.path(), "good.yml", 1, 2e-4, "");
    let out = train(&good, &run);
    assert!(out.status.success(), "{}", String::from_utf8_lossy(&out.stderr));
    let latest = run.join("checkpoints/latest.safetensors");
    let before = std::fs::read(&latest).unwrap();
    let bad = write_cfg(tmp.path(), "bad.yml", 3, 1e30, "");
    let out = bin().args(["train", "--cfg"]).arg(&bad).arg("--resume").arg(&run).output().unwrap();
    assert_eq!(out.status.code(), Some(clipgan::rundir::exit::DIVERGED as i32), "{}", String::from_utf8_lossy(&out.stderr));
    let s = status(&run);
    assert_eq!(s.state, RunState::Diverged);
    assert!(s.message.contains("diverged at step") && s.message.contains("last good state"), "{}", s.message);
    assert_eq!(std::fs::read(&latest).unwrap(), before, "the last good checkpoint is kept as it was");
    let events = rundir::read_metrics(&run).unwrap().events;
    assert!(events.iter().any(|e| e.tag.starts_with("loss/") && !e.value.is_finite()));
}

#[test]
fn dry_run_and_model_summary_check_and_print_the_networks() {
    let tmp = tempfile::tempdir().unwrap();
    let cfg = write_cfg(tmp.path(), "dry.yml", 1, 2e-4, "");
    let run = tmp.path().join("never");
    let out = bin().args(["train", "--dry-run", "--cfg"]).arg(&cfg).arg("--run-dir").arg(&run).output().unwrap();
    let text = String::from_utf8_lossy(&out.stdout);
    assert!(out.status.success(), "{}", String::from_utf8_lossy(&out.stderr));
    let counts = dmgan::parameter_counts(&GanConfig { branch_num: 2, gf_dim: 4, df_dim: 4, z_dim: 8, condition_dim: 6, r_num: 1, nef: 32 });
    for (name, n) in &counts {
        assert!(text.contains(name) && text.contains(&dmgan::group_digits(*n)), "{name} {n}: {text}");
    }
    assert!(!run.exists(), "a dry run writes nothing");
    let out = bin().args(["model", "summary", "--cfg"]).arg(&cfg).output().unwrap();
    assert!(out.status.success());
    assert!(String::from_utf8_lossy(&out.stdout).contains(&dmgan::group_digits(counts[0].1)));
    // A missing CLIP checkpoint is an error naming it, never a random CLIP.
    let out = bin().args(["train", "--dry-run", "--cfg"]).arg(&cfg).args(["--clip", "/nonexistent/clip.safetensors"]).output().unwrap();
    assert!(!out.status.success());
    assert!(String::from_utf8_lossy(&out.stderr).contains("/nonexistent/clip.safetensors"));
    // A CLIP of the wrong width for TEXT.EMBEDDING_DIM.
    let wide = write_cfg(tmp.path(), "wide.yml", 1, 2e-4, "").to_string_lossy().to_string();
    std::fs::write(&wide, std::fs::read_to_string(&wide).unwrap().replace("EMBEDDING_DIM: 32", "EMBEDDING_DIM: 64")).unwrap();
    let out = bin().args(["train", "--dry-run", "--cfg", &wide]).output().unwrap();
    assert!(!out.status.success());
    assert!(String::from_utf8_lossy(&out.stderr).contains("EMBEDDING_DIM is 64"), "{}", String::from_utf8_lossy(&out.stderr));
}

#[test]
fn a_discriminator_step_lowers_its_loss_on_a_fixed_batch() {
    tch::manual_seed(21);
    let g = GanConfig { branch_num: 1, gf_dim: 4, df_dim: 4, z_dim: 8, condition_dim: 6, r_num: 1, nef: 16 };
    let vs = nn::VarStore::new(Device::Cpu);
    let d = Discriminator::new(vs.root(), &g, 0);
    let named: Vec<(String, Tensor)> = vs.variables().into_iter().filter(|(_, t)| t.requires_grad()).collect();
    let mut opt = Adam::new(vec![ParamGroup::new("d", named, 2e-4)], gan_step::BETAS, gan_step::ADAM_EPS, 0.0, false);
    let real = Tensor::rand([4, 3, 64, 64], (Kind::Float, Device::Cpu)) * 2.0 - 1.0;
    let fake = Tensor::randn([4, 3, 64, 64], (Kind::Float, Device::Cpu)).tanh();
    let sent = Tensor::randn([4, 16], (Kind::Float, Device::Cpu));
    let loss = |d: &Discriminator| gan_step::d_loss(d, &d.code(&real), &fake, &sent);
    let first = loss(&d);
    let v0 = first.double_value(&[]);
    opt.zero_grad();
    first.backward();
    opt.step();
    for _ in 0..4 {
        let l = loss(&d);
        opt.zero_grad();
        l.backward();
        opt.step();
    }
    let v1 = tch::no_grad(|| loss(&d)).double_value(&[]);
    assert!(v1 < v0, "D loss {v0} -> {v1}");
}

#[test]
fn ema_update_moves_towards_the_generator_and_copies_batchnorm_statistics() {
    tch::manual_seed(22);
    let g = GanConfig { branch_num: 2, gf_dim: 4, df_dim: 4, z_dim: 8, condition_dim: 6, r_num: 1, nef: 16 };
    let nets = Nets::new(&g, Device::Cpu, 2e-4, 2e-4);
    let name = "h_net2.M_w.0.weight";
    let ema0 = nets.ema_vs.variables()[name].copy();
    assert_eq!((&ema0 - &nets.g_vs.variables()[name]).abs().max().double_value(&[]), 0.0, "the EMA starts as G");
    tch::no_grad(|| {
        let _ = nets.g_vs.variables()[name].shallow_clone().g_add_scalar_(1.0);
        let _ = nets.g_vs.variables()["h_net1.fc.1.running_mean"].shallow_clone().fill_(3.0);
    });
    nets.ema_update(0.9);
    let ema1 = nets.ema_vs.variables()[name].copy();
    assert!((ema1 - ema0 - 0.1).abs().max().double_value(&[]) < 1e-6);
    assert_eq!(nets.ema_vs.variables()["h_net1.fc.1.running_mean"].mean(Kind::Float).double_value(&[]), 3.0);
}
