//! `clipgan eval` end to end on tiny synthetic data with a tiny random CLIP and random
//! generators saved as checkpoints (CPU, subprocesses): images, results.json, metrics at
//! the generator's step, FID/IS reported unavailable without weights, `--snapshots`, and
//! the missing/unreadable generator errors.
use clipgan::checkpoint::{self, Checkpoint};
use clipgan::config;
use clipgan::data::synth::{self, SynthConfig};
use clipgan::models::dmgan::{self, GanConfig, Generator};
use clipgan::rundir;
use std::path::{Path, PathBuf};
use std::process::Command;
use std::sync::OnceLock;
use tch::{nn, Device};

/// Synthetic data, a tiny random "finetuned" CLIP and the eval config (made once).
fn fixtures() -> &'static (PathBuf, PathBuf, PathBuf) {
    static F: OnceLock<(PathBuf, PathBuf, PathBuf)> = OnceLock::new();
    F.get_or_init(|| {
        let tmp = tempfile::tempdir().unwrap().keep();
        let data = tmp.join("synth");
        synth::generate(&data, &SynthConfig { train: 8, test: 40, size: 64, seed: 5 }).unwrap();
        let clip_file = tmp.join("clip_tiny.safetensors");
        crate::common::save_tiny_clip(&clip_file);
        let cfg = tmp.join("eval.yml");
        write_cfg(&cfg, &data, "    PASSES: 2\n");
        (data, clip_file, cfg)
    })
}

/// The eval config over the synthetic data with `eval_keys` (lines under CLIPGAN.EVAL).
fn write_cfg(cfg: &Path, data: &Path, eval_keys: &str) {
    std::fs::write(
        cfg,
        format!(
            "CONFIG_NAME: 'DMGAN'
DATASET_NAME: 'birds'
DATA_DIR: '{}'
WORKERS: 1
B_VALIDATION: True
TREE:
  BRANCH_NUM: 1
  BASE_SIZE: 64
TRAIN:
  FLAG: False
  BATCH_SIZE: 16
GAN:
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
  EVAL:
{eval_keys}    R_FOLDS: 10
    R_CANDIDATES: 5
",
            data.display()
        ),
    )
    .unwrap();
}

/// A random generator saved as a train snapshot at `step`.
fn save_generator(path: &Path, step: u64, seed: i64) {
    let loaded = config::load(&fixtures().2).unwrap();
    let gcfg = GanConfig::from_config(&loaded.config).unwrap();
    tch::manual_seed(seed);
    let vs = nn::VarStore::new(Device::Cpu);
    let _g = Generator::new(vs.root(), &gcfg);
    let mut ck = Checkpoint::new("train");
    ck.set_meta(dmgan::GAN_META_KEY, gcfg.to_json());
    ck.set_meta("kind", "snapshot");
    ck.set_meta("step", step);
    ck.push_var_store(dmgan::EMA_G_PREFIX, &vs);
    std::fs::create_dir_all(path.parent().unwrap()).unwrap();
    checkpoint::save(path, &ck).unwrap();
}

fn eval(args: &[&str], run: &Path) -> (bool, String) {
    eval_with(&fixtures().2, args, run)
}

fn eval_with(cfg: &Path, args: &[&str], run: &Path) -> (bool, String) {
    let clip_file = &fixtures().1;
    let out = Command::new(env!("CARGO_BIN_EXE_clipgan"))
        .env_remove("CLIPGAN_RUN_DIR")
        .env("CLIPGAN_DEVICE", "cpu")
        .arg("eval")
        .arg("--cfg")
        .arg(cfg)
        .arg("--clip")
        .arg(clip_file)
        .arg("--run-dir")
        .arg(run)
        .args(args)
        .output()
        .unwrap();
    (out.status.success(), format!("{}{}", String::from_utf8_lossy(&out.stdout), String::from_utf8_lossy(&out.stderr)))
}

fn count_pngs(dir: &Path) -> usize {
    clipgan::eval::folders::list_images(dir).map(|v| v.len()).unwrap_or(0)
}

#[test]
fn eval_writes_images_results_and_metrics() {
    let tmp = tempfile::tempdir().unwrap();
    let g = tmp.path().join("netG_epoch_0003.safetensors");
    save_generator(&g, 42, 1);
    let run = tmp.path().join("run");
    let (ok, out) = eval(&["--net-g", g.to_str().unwrap()], &run);
    assert!(ok, "{out}");
    // 2 passes over 40 test images, as PNG files under images/<generator>/.
    assert_eq!(count_pngs(&run.join("images/netG_epoch_0003")), 80, "{out}");
    let res: serde_json::Value = serde_json::from_str(&std::fs::read_to_string(run.join("results.json")).unwrap()).unwrap();
    let r = &res["results"][0];
    assert_eq!(r["step"], 42);
    // One R-precision trial per generated image, and the results say how many.
    assert_eq!((r["images"].as_u64(), r["trials"].as_u64(), r["r_precision"]["trials"].as_u64()), (Some(80), Some(80), Some(80)), "{r}");
    assert_eq!(r["sampling"]["passes"], 2, "{r}");
    let rp = r["r_precision"]["mean"].as_f64().unwrap();
    assert!((0.0..=1.0).contains(&rp));
    assert_eq!(r["r_precision"]["folds"].as_array().unwrap().len(), 10);
    assert!(r["r_precision"]["encoder"].as_str().unwrap().starts_with("finetuned CLIP"));
    assert!(r["fd_clip"]["value"].as_f64().unwrap() >= 0.0);
    // No Inception weights: FID and IS reported unavailable, with what to get.
    assert!(r["fid"]["unavailable"].as_str().unwrap().contains("pt_inception-2015-12-05-6726825d.pth"), "{r}");
    assert!(r["is"]["unavailable"].as_str().is_some(), "{r}");
    let m = rundir::read_metrics(&run).unwrap();
    let at: Vec<_> = m.events.iter().filter(|e| e.tag == "eval/r_precision").map(|e| e.step).collect();
    assert_eq!(at, vec![42]);
    assert!(m.events.iter().any(|e| e.tag == "eval/fd_clip"));
    let st = rundir::RunDir::open(&run).unwrap().status().unwrap().unwrap();
    assert_eq!(st.state, rundir::RunState::Finished);
}

#[test]
fn snapshots_are_evaluated_at_their_steps() {
    let tmp = tempfile::tempdir().unwrap();
    let train = tmp.path().join("train_run");
    save_generator(&train.join("checkpoints/netG_epoch_0001.safetensors"), 10, 2);
    save_generator(&train.join("checkpoints/netG_epoch_0002.safetensors"), 20, 3);
    let run = tmp.path().join("run");
    let (ok, out) = eval(&["--snapshots", train.to_str().unwrap()], &run);
    assert!(ok, "{out}");
    let m = rundir::read_metrics(&run).unwrap();
    let at: Vec<_> = m.events.iter().filter(|e| e.tag == "eval/r_precision").map(|e| e.step).collect();
    assert_eq!(at, vec![10, 20]);
    assert_eq!(count_pngs(&run.join("images/netG_epoch_0002")), 80);
}

#[test]
fn missing_or_unreadable_generator_is_an_error() {
    let tmp = tempfile::tempdir().unwrap();
    let (ok, out) = eval(&["--net-g", "/no/such/netG.safetensors"], &tmp.path().join("r1"));
    assert!(!ok && out.contains("/no/such/netG.safetensors"), "{out}");
    // Config without TRAIN.NET_G and no --net-g.
    let (ok, out) = eval(&[], &tmp.path().join("r2"));
    assert!(!ok && out.contains("TRAIN.NET_G"), "{out}");
    let bad = tmp.path().join("bad.safetensors");
    std::fs::write(&bad, b"not a checkpoint").unwrap();
    let run = tmp.path().join("r3");
    let (ok, out) = eval(&["--net-g", bad.to_str().unwrap()], &run);
    assert!(!ok && out.contains("bad.safetensors"), "{out}");
    let st = rundir::RunDir::open(&run).unwrap().status().unwrap().unwrap();
    assert_eq!(st.state, rundir::RunState::Failed);
    // A CLIP checkpoint is not a generator.
    let (ok, out) = eval(&["--net-g", fixtures().1.to_str().unwrap()], &tmp.path().join("r4"));
    assert!(!ok && out.contains("clip_tiny.safetensors"), "{out}");
    // --snapshots on a folder without snapshots.
    let (ok, out) = eval(&["--snapshots", tmp.path().to_str().unwrap()], &tmp.path().join("r5"));
    assert!(!ok && out.contains("checkpoints"), "{out}");
}

#[test]
fn image_count_follows_the_protocol_per_dataset() {
    // birds: passes over all 40 test images until EVAL.IMAGES (40 + 10 of a second pass),
    // each (pass, image) once; coco: IMAGES / 10 captions = 3 test images with every caption.
    let tmp = tempfile::tempdir().unwrap();
    let g = tmp.path().join("netG_epoch_0001.safetensors");
    save_generator(&g, 5, 4);
    let data = &fixtures().0;
    let cfg = tmp.path().join("birds.yml");
    write_cfg(&cfg, data, "    IMAGES: 50\n");
    let run = tmp.path().join("birds");
    let (ok, out) = eval_with(&cfg, &["--net-g", g.to_str().unwrap()], &run);
    assert!(ok, "{out}");
    let pngs = clipgan::eval::folders::list_images(&run.join("images/netG_epoch_0001")).unwrap();
    assert_eq!(pngs.len(), 50);
    assert_eq!(pngs.iter().filter(|p| p.to_string_lossy().contains("_p1_")).count(), 10);
    let res: serde_json::Value = serde_json::from_str(&std::fs::read_to_string(run.join("results.json")).unwrap()).unwrap();
    let r = &res["results"][0];
    assert_eq!((r["images"].as_u64(), r["trials"].as_u64()), (Some(50), Some(50)), "{r}");
    assert_eq!(r["sampling"]["mode"], "passes");
    assert_eq!(r["sampling"]["test_images"], 40);
    // The same data read as COCO: 3 test images x 10 captions.
    let cfg = tmp.path().join("coco.yml");
    write_cfg(&cfg, data, "    IMAGES: 30\n    SAMPLING: captions\n");
    let run = tmp.path().join("coco");
    let (ok, out) = eval_with(&cfg, &["--net-g", g.to_str().unwrap()], &run);
    assert!(ok, "{out}");
    let res: serde_json::Value = serde_json::from_str(&std::fs::read_to_string(run.join("results.json")).unwrap()).unwrap();
    let r = &res["results"][0];
    assert_eq!(
        (r["images"].as_u64(), r["sampling"]["mode"].as_str(), r["sampling"]["test_images"].as_u64()),
        (Some(30), Some("captions"), Some(3)),
        "{r}"
    );
    // More trials than images: refused before anything is generated.
    let cfg = tmp.path().join("bad.yml");
    write_cfg(&cfg, data, "    IMAGES: 20\n    R_TRIALS: 30\n");
    let (ok, out) = eval_with(&cfg, &["--net-g", g.to_str().unwrap()], &tmp.path().join("bad"));
    assert!(!ok && out.contains("R_TRIALS"), "{out}");
}

/// pytorch-fid-named Inception weights (deterministic synthetic values) as safetensors.
fn synthetic_inception(path: &Path) {
    clipgan::device::init_torch();
    let mut vs = nn::VarStore::new(Device::Cpu);
    let _net = clipgan::eval::inception::FidInception::new(&vs.root());
    clipgan::eval::inception::fill_synthetic(&mut vs);
    vs.save(path).unwrap();
}

#[test]
fn kid_is_reported_with_its_std_when_the_inception_is_configured() {
    // 12 test images, one pass: 12 generated and 12 real images through the Inception.
    let tmp = tempfile::tempdir().unwrap();
    let data = tmp.path().join("synth");
    synth::generate(&data, &SynthConfig { train: 8, test: 12, size: 64, seed: 6 }).unwrap();
    let weights = tmp.path().join("inception.safetensors");
    synthetic_inception(&weights);
    let cfg = tmp.path().join("eval.yml");
    write_cfg(&cfg, &data, &format!("    PASSES: 1\n    FID_WEIGHTS: '{}'\n    IS_WEIGHTS: '{}'\n", weights.display(), weights.display()));
    let g = tmp.path().join("netG_epoch_0001.safetensors");
    save_generator(&g, 7, 5);
    let run = tmp.path().join("run");
    let (ok, out) = eval_with(&cfg, &["--net-g", g.to_str().unwrap()], &run);
    assert!(ok, "{out}");
    let res: serde_json::Value = serde_json::from_str(&std::fs::read_to_string(run.join("results.json")).unwrap()).unwrap();
    let r = &res["results"][0];
    assert!(r["fid"]["value"].as_f64().unwrap() >= 0.0, "{r}");
    let kid = &r["kid"];
    assert!(kid["mean"].as_f64().unwrap().is_finite() && kid["std"].as_f64().unwrap() >= 0.0, "{r}");
    assert_eq!((kid["subsets"].as_u64(), kid["subset_size"].as_u64()), (Some(100), Some(12)), "{r}");
    let m = rundir::read_metrics(&run).unwrap();
    for tag in ["eval/kid", "eval/kid_std", "eval/fid"] {
        assert!(m.events.iter().any(|e| e.tag == tag && e.step == 7), "{tag} missing");
    }
    // The results name the dataset and the IS network (IS_MODEL, imagenet by default).
    assert_eq!(res["dataset"], "birds");
    assert_eq!((r["is"]["model"].as_str(), r["is"]["weights"].as_str()), (Some("imagenet"), weights.to_str()), "{r}");
    // IS_MODEL cub-stackgan with pytorch-fid's weights: an error naming the file and the model.
    let cfg2 = tmp.path().join("eval_cub.yml");
    write_cfg(&cfg2, &data, &format!("    PASSES: 1\n    IS_MODEL: 'cub-stackgan'\n    IS_WEIGHTS: '{}'\n", weights.display()));
    let (ok, out) = eval_with(&cfg2, &["--net-g", g.to_str().unwrap()], &tmp.path().join("run2"));
    assert!(!ok);
    assert!(out.contains("IS_MODEL cub-stackgan") && out.contains("not StackGAN's CUB Inception"), "{out}");
}
