//! scripts/synth_shapes.py, the CLIP-free shape check of synthetic-dataset images that
//! docs/training.md's demo study relies on: right on the dataset's own drawings, wrong
//! when the names lie, silent on images without an object. Runs the script with the
//! venv's Python (numpy and Pillow come with `make test`'s packages).

use clipgan::data::synth::{self, SynthConfig, SHAPES};
use serde_json::Value;
use std::path::Path;
use std::process::Command;

fn python() -> std::path::PathBuf {
    std::env::var_os("VIRTUAL_ENV").map(|v| Path::new(&v).join("bin/python")).unwrap_or_else(|| "python3".into())
}

/// One JSON object per scored folder.
fn run(args: &[&str]) -> Vec<Value> {
    let script = Path::new(env!("CARGO_MANIFEST_DIR")).join("scripts/synth_shapes.py");
    let out = Command::new(python()).arg(&script).args(args).arg("--json").output().expect("python runs");
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(
        out.status.success(),
        "synth_shapes.py {args:?}: exit {:?}\n{stderr}\n(it needs numpy and Pillow: `make test` installs them into the venv)",
        out.status.code()
    );
    String::from_utf8_lossy(&out.stdout).lines().map(|l| serde_json::from_str(l).unwrap()).collect()
}

fn accuracy(v: &Value) -> f64 {
    v["accuracy"].as_f64().unwrap()
}

#[test]
fn shapes_are_named_right_on_real_images_and_wrong_when_the_names_lie() {
    let tmp = tempfile::tempdir().unwrap();
    let data = tmp.path().join("synth");
    synth::generate(&data, &SynthConfig { train: 60, test: 30, size: 64, seed: 11 }).unwrap();
    let d = data.to_str().unwrap();

    let real = &run(&[d, "--real"])[0];
    assert_eq!(real["images"], 90, "{real}");
    assert!(accuracy(real) >= 0.95, "the dataset's own images: {real}");

    // The same drawings as generated images: named as `clipgan eval` names them, then with
    // the next shape's name in the `<shape>_...png` form, then plain backgrounds.
    let (_, test, _, _) = synth::plan(&SynthConfig { train: 60, test: 30, size: 64, seed: 11 });
    let (named, lying, empty) = (tmp.path().join("named"), tmp.path().join("lying"), tmp.path().join("empty"));
    for dir in [&named, &lying, &empty] {
        std::fs::create_dir_all(dir).unwrap();
    }
    for (i, scene) in test.iter().enumerate() {
        let img = synth::render(scene, 64, 11);
        // The key holds its class folder, as the eval's images/<label>/<class>/ do.
        let as_eval = named.join(format!("{}_p0_c{}.png", scene.key, i % 10));
        std::fs::create_dir_all(as_eval.parent().unwrap()).unwrap();
        img.save(&as_eval).unwrap();
        let k = SHAPES.iter().position(|&s| s == scene.species.shape).unwrap();
        img.save(lying.join(format!("{}_{i}.png", SHAPES[(k + 1) % SHAPES.len()].name()))).unwrap();
        let bg = *img.get_pixel(0, 0);
        image::RgbImage::from_pixel(64, 64, bg).save(empty.join(format!("{}_{i}.png", scene.species.shape.name()))).unwrap();
    }
    let r = run(&[d, named.to_str().unwrap(), lying.to_str().unwrap(), empty.to_str().unwrap()]);
    assert_eq!(r.len(), 3);
    assert_eq!(r[0]["images"], 30, "{}", r[0]);
    assert!(accuracy(&r[0]) >= 0.95, "eval-style names: {}", r[0]);
    assert!(accuracy(&r[1]) <= 0.05, "wrong names must score wrong: {}", r[1]);
    assert_eq!(r[2]["no_object"], 30, "plain backgrounds hold no object: {}", r[2]);
    assert_eq!(accuracy(&r[2]), 0.0);
}

#[test]
fn a_folder_that_is_not_a_synth_dataset_is_named_in_the_error() {
    let tmp = tempfile::tempdir().unwrap();
    let script = Path::new(env!("CARGO_MANIFEST_DIR")).join("scripts/synth_shapes.py");
    let out = Command::new(python()).arg(&script).arg(tmp.path()).arg("--real").output().unwrap();
    assert!(!out.status.success());
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(err.contains("attributes.txt") && err.contains(tmp.path().to_str().unwrap()), "{err}");
}

#[test]
fn the_pytorch_cross_check_trains_and_writes_samples_the_shape_check_reads() {
    let tmp = tempfile::tempdir().unwrap();
    let data = tmp.path().join("synth");
    synth::generate(&data, &SynthConfig { train: 24, test: 12, size: 64, seed: 5 }).unwrap();
    let out = tmp.path().join("cross");
    let script = Path::new(env!("CARGO_MANIFEST_DIR")).join("benches/reference/dmgan_synth_train.py");
    let run_out = Command::new(python())
        .arg(&script)
        .args([data.to_str().unwrap(), out.to_str().unwrap(), "2", "--batch", "4", "--branch", "2", "--every", "2"])
        .output()
        .unwrap();
    let text = String::from_utf8_lossy(&run_out.stdout).to_string() + &String::from_utf8_lossy(&run_out.stderr);
    assert!(run_out.status.success(), "{text}");
    assert!(text.contains("24 training images") && text.contains("step 2 (8 images)"), "{text}");
    let samples = out.join("s00002");
    let files: Vec<_> = std::fs::read_dir(&samples).unwrap().map(|e| e.unwrap().path()).collect();
    let classes = text.split(" classes").next().unwrap().rsplit(' ').next().unwrap().parse::<usize>().unwrap();
    assert_eq!(files.len(), 8 * classes, "{text}");
    let img = image::open(&files[0]).unwrap();
    assert_eq!((img.width(), img.height()), (128, 128), "the last branch's size");
    let r = &run(&[data.to_str().unwrap(), samples.to_str().unwrap()])[0];
    assert_eq!(r["images"].as_u64().unwrap() as usize, 8 * classes, "every sample is named by its shape: {r}");
}
