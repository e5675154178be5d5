//! StackGAN's CUB Inception (src/eval/stackgan_inception.rs) against an independent PyTorch
//! transcription of the TF-slim graph (benches/reference/stackgan_inception.py), with the
//! real architecture at 299 px and seeded weights: the script writes the weights (87 MB,
//! so not committed) and its outputs with the venv's torch into the target dir. Also
//! `clipgan is --model cub-stackgan` on those weights, and the loading errors.
use clipgan::checkpoint::read_safetensors;
use clipgan::eval::inception_score::{inception_score, IsModel, IsNetwork};
use clipgan::eval::{folders, stackgan_inception};
use std::path::{Path, PathBuf};
use std::process::Command;
use std::sync::OnceLock;
use tch::{Device, Kind, Tensor};

fn python() -> PathBuf {
    std::env::var_os("VIRTUAL_ENV").map(|v| Path::new(&v).join("bin/python")).unwrap_or_else(|| "python3".into())
}

/// The folder with weights.safetensors and expected.safetensors, written anew once per
/// test run into one folder under the target dir (180 MB: not left behind per run).
fn reference() -> &'static Path {
    static DIR: OnceLock<PathBuf> = OnceLock::new();
    DIR.get_or_init(|| {
        let dir = Path::new(env!("CARGO_TARGET_TMPDIR")).join("stackgan_inception");
        std::fs::create_dir_all(&dir).unwrap();
        let script = Path::new(env!("CARGO_MANIFEST_DIR")).join("benches/reference/stackgan_inception.py");
        let out = Command::new(python()).arg(&script).arg("fixture").arg(&dir).output().expect("the venv's python (source scripts/env.sh)");
        assert!(out.status.success(), "{}: {}", script.display(), String::from_utf8_lossy(&out.stderr));
        dir
    })
}

fn expected(name: &str) -> Tensor {
    let (named, _) = read_safetensors(&reference().join("expected.safetensors"), Device::Cpu).unwrap();
    named.into_iter().find(|(n, _)| n == name).unwrap().1
}

fn max_rel_err(got: &Tensor, want: &Tensor) -> f64 {
    let scale = want.abs().max().double_value(&[]).max(1e-6);
    (got - want).abs().max().double_value(&[]) / scale
}

#[test]
fn stackgan_inception_matches_the_pytorch_transcription() {
    clipgan::device::init_torch();
    let (vs, net) = stackgan_inception::load(&reference().join("weights.safetensors"), Device::Cpu).unwrap();
    let vars = vs.variables();
    // The documented names: TF's with '/' -> '.'.
    for name in ["conv0.weights", "conv0.BatchNorm.beta", "conv4.BatchNorm.moving_variance", "mixed_8x8x2048b.branch3x3dbl.Conv_3.weights"]
    {
        assert!(vars.contains_key(name), "{name}");
    }
    assert_eq!(vars["logits.logits.weights"].size(), vec![51, 2048]);
    assert!(!vars.keys().any(|k| k.contains("gamma") || k.contains("aux")), "slim's BatchNorm has no gamma; no auxiliary head");
    let n: i64 = vars.values().map(|t| t.numel() as i64).sum();
    assert_eq!(n, 21_907_283, "as the PyTorch transcription's state_dict");

    // All 51 logits of inputs already in [-1, 1] at 299 px.
    let full = net.forward_scaled(&expected("x299"));
    let e = max_rel_err(&full, &expected("full"));
    assert!(e < 1e-4, "full logits: relative error {e}");
    // The IS logits of 256 px images in [0, 1]: resize, 8 bits, [-1, 1], class 0 dropped.
    let logits = net.logits(&expected("images")).unwrap();
    assert_eq!(logits.size(), vec![2, 50]);
    let e = max_rel_err(&logits, &expected("logits"));
    assert!(e < 1e-4, "IS logits: relative error {e}");
}

#[test]
fn is_command_uses_the_chosen_model_and_names_it() {
    clipgan::device::init_torch();
    let weights = reference().join("weights.safetensors");
    let tmp = tempfile::tempdir().unwrap();
    // Four 64 px images (as a generator's output would be, smaller).
    for i in 0..4u32 {
        let img =
            image::RgbImage::from_fn(64, 64, |x, y| image::Rgb([(x * 4 + i * 40) as u8, (y * 4) as u8, ((x + y) * 2 + i * 20) as u8]));
        img.save(tmp.path().join(format!("img{i}.png"))).unwrap();
    }
    let bin = env!("CARGO_BIN_EXE_clipgan");
    let out = Command::new(bin)
        .args(["is", tmp.path().to_str().unwrap(), "--model", "cub-stackgan", "--splits", "2", "--device", "cpu", "--weights"])
        .arg(&weights)
        .output()
        .unwrap();
    let (stdout, stderr) = (String::from_utf8_lossy(&out.stdout), String::from_utf8_lossy(&out.stderr));
    assert!(out.status.success(), "{stderr}");
    assert!(stderr.contains("model: cub-stackgan"), "{stderr}");
    // The same score from the library: the network's 50 logits of the folder's images.
    let (_vs, net) = IsNetwork::load(IsModel::CubStackgan, &weights, Device::Cpu).unwrap();
    let paths = folders::list_images(tmp.path()).unwrap();
    let logits = folders::is_logits(&net, &paths, 4, Device::Cpu, |_, _| {}).unwrap();
    assert_eq!(logits.size(), vec![4, 50]);
    let s = inception_score(&logits.to_kind(Kind::Float), 2).unwrap();
    assert_eq!(stdout.trim(), format!("IS: {} ± {}", s.mean, s.std));

    // The other model's weights are refused with what is missing; no weights: what to do.
    let out = Command::new(bin)
        .args(["is", tmp.path().to_str().unwrap(), "--model", "imagenet", "--splits", "2", "--weights"])
        .arg(&weights)
        .output()
        .unwrap();
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(!out.status.success() && err.contains("not pytorch-fid's FID Inception weights"), "{err}");
    let out = Command::new(bin)
        .env_remove("CLIPGAN_CUB_INCEPTION_WEIGHTS")
        .args(["is", tmp.path().to_str().unwrap(), "--model", "cub-stackgan", "--splits", "2"])
        .output()
        .unwrap();
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(err.contains("$CLIPGAN_CUB_INCEPTION_WEIGHTS") && err.contains("convert_stackgan_inception.py"), "{err}");
    let out = Command::new(bin).args(["is", tmp.path().to_str().unwrap(), "--model", "inception-v4"]).output().unwrap();
    assert!(String::from_utf8_lossy(&out.stderr).contains("expected one of: imagenet, cub-stackgan"));
}

#[test]
fn stackgan_weights_with_other_names_are_refused_naming_the_file() {
    clipgan::device::init_torch();
    let tmp = tempfile::tempdir().unwrap();
    let f = tmp.path().join("other.safetensors");
    Tensor::write_safetensors(&[("fc.weight", Tensor::zeros([51, 2048], (Kind::Float, Device::Cpu)))], &f).unwrap();
    let e = stackgan_inception::load(&f, Device::Cpu).err().unwrap().to_string();
    assert!(e.contains(&format!("{}: not StackGAN's CUB Inception", f.display())) && e.contains("parameters missing"), "{e}");
    let e = stackgan_inception::load(&tmp.path().join("none.safetensors"), Device::Cpu).err().unwrap().to_string();
    assert!(e.contains("do not exist") && e.contains("convert_stackgan_inception.py"), "{e}");
}

#[test]
fn the_converter_maps_a_tf_layout_checkpoint_to_the_documented_names() {
    // scripts/convert_stackgan_inception.py's `convert` on the seeded weights laid out as
    // the TF checkpoint holds them (half under ExponentialMovingAverage names with zero
    // decoys under the plain ones, an auxiliary head and optimizer slots to leave out): the
    // result is the same weights. TensorFlow's own checkpoint reading is not covered here.
    let out = reference().join("converted.safetensors");
    let script = Path::new(env!("CARGO_MANIFEST_DIR")).join("benches/reference/stackgan_inception.py");
    let o =
        Command::new(python()).arg(&script).arg("via-converter").arg(reference().join("weights.safetensors")).arg(&out).output().unwrap();
    assert!(o.status.success(), "{}", String::from_utf8_lossy(&o.stderr));
    assert!(String::from_utf8_lossy(&o.stdout).contains("378 tensors"));
    let (want, _) = read_safetensors(&reference().join("weights.safetensors"), Device::Cpu).unwrap();
    let (got, _) = read_safetensors(&out, Device::Cpu).unwrap();
    assert_eq!(got.len(), want.len());
    for (name, w) in &want {
        let g = &got.iter().find(|(n, _)| n == name).unwrap_or_else(|| panic!("{name} not converted")).1;
        assert!(g.equal(w), "{name} differs");
    }
}
