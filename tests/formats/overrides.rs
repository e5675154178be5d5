//! `--set KEY=VALUE` overrides: typed values, nested keys, unknown keys, values that make
//! the config invalid; errors name the `--set` argument, the file's own keep their line.
use clipgan::config::{self, Override};
use std::path::{Path, PathBuf};

const FILE: &str = "CONFIG_NAME: t\nDATASET_NAME: birds\nTRAIN:\n  FLAG: true\n  BATCH_SIZE: 4\n  SMOOTH:\n    LAMBDA: 1.0\n";

fn with(text: &str, sets: &[&str]) -> Result<config::LoadedConfig, String> {
    let sets: Vec<String> = sets.iter().map(|s| s.to_string()).collect();
    config::parse_with(Path::new("t.yml"), text, PathBuf::from("/base"), &sets).map_err(|e| e.to_string())
}

#[test]
fn overrides_take_yaml_types_at_any_depth_and_the_last_one_wins() {
    let l = with(
        FILE,
        &[
            "TRAIN.SMOOTH.LAMBDA=0.25",
            "GAN.GF_DIM=32",
            "CLIPGAN.DEVICE=cuda:1",
            "CLIPGAN.AMP=true",
            "CLIPGAN.EVAL.IMAGES=50",
            "CLIPGAN.EVAL.R_FOLDS=5",
            "TRAIN.NET_G=",
            "CLIPGAN.MAX_STEPS=10",
            "CLIPGAN.MAX_STEPS=20",
        ],
    )
    .unwrap();
    let c = &l.config;
    assert_eq!(c.train.smooth.lambda, 0.25);
    assert_eq!(c.train.smooth.gamma1, 5.0, "the section's other keys keep their values");
    assert_eq!(c.train.batch_size, 4, "the file's other keys keep their values");
    assert_eq!(c.gan.gf_dim, 32);
    assert_eq!(c.clipgan.device, "cuda:1");
    assert!(c.clipgan.amp);
    assert_eq!(c.clipgan.eval.images, 50, "a section the file lacks is made");
    assert_eq!(c.train.net_g, "", "an empty value is unset, as `KEY:` in a file");
    assert_eq!(c.clipgan.max_steps, 20, "a later --set wins");
    assert_eq!(l.overrides.len(), 9);
    assert_eq!(l.text, FILE, "the file's text is kept as it is");
    // What a run folder records (config.yml) holds the overridden values and reads back the same.
    let again = config::parse(Path::new("r.yml"), &l.resolved_yaml(), PathBuf::from("/")).unwrap();
    assert_eq!(again.config, l.config);
    // No overrides: the same as the file alone.
    assert_eq!(with(FILE, &[]).unwrap().config, config::parse(Path::new("t.yml"), FILE, PathBuf::from("/base")).unwrap().config);
}

#[test]
fn unknown_keys_and_malformed_arguments_name_the_argument() {
    let e = with(FILE, &["TRAIN.SMOOTH.LAMDA=2"]).unwrap_err();
    assert!(e.contains("--set TRAIN.SMOOTH.LAMDA=2") && e.contains("did you mean `LAMBDA`"), "{e}");
    let e = with(FILE, &["NOPE=1"]).unwrap_err();
    assert!(e.contains("--set NOPE=1") && e.contains("unknown key `NOPE` in the top level"), "{e}");
    let e = with(FILE, &["TRAIN.FLAG.X=1"]).unwrap_err();
    assert!(e.contains("TRAIN.FLAG is a setting, not a section"), "{e}");
    let e = with(FILE, &["TRAIN.SMOOTH=1"]).unwrap_err();
    assert!(e.contains("TRAIN.SMOOTH is a section"), "{e}");
    for bad in ["TRAIN.SMOOTH.LAMBDA", "=1", "TRAIN..FLAG=1"] {
        assert!(with(FILE, &[bad]).unwrap_err().contains("expected KEY=VALUE"), "{bad}");
    }
    // Every bad argument is reported, not only the first.
    let e = with(FILE, &["A=1", "GAN.GF_DIM=32", "B=2"]).unwrap_err();
    assert!(e.contains("--set A=1") && e.contains("--set B=2"), "{e}");
    assert!(e.lines().all(|l| l.starts_with("t.yml: error: --set")), "no line numbers for arguments: {e}");
}

#[test]
fn values_of_the_wrong_type_are_refused_like_in_the_file() {
    for (arg, what) in [
        ("GAN.GF_DIM=abc", "expected u32"),
        ("GAN.GF_DIM=32.5", "expected u32"),
        ("GAN.GF_DIM=-1", ""),
        ("TRAIN.FLAG=maybe", "expected a boolean"),
        ("TRAIN.SMOOTH.LAMBDA=[1, 2]", "expected f64"),
        ("CLIPGAN.SEED={a: 1}", ""),
    ] {
        let e = with(FILE, &[arg]).unwrap_err();
        assert!(e.contains(&format!("--set {arg}:")) && e.contains(what), "{arg}: {e}");
    }
    assert!(with(FILE, &["TRAIN.SMOOTH.LAMBDA=[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[1]]]]]]]]]]]]]]]]]]]]]]]]]]]]]]]]]"])
        .unwrap_err()
        .contains("nests deeper"));
    // Checked alone too, as the sweep's axes are.
    assert!(Override::parse("GAN.Z_DIM=64").is_ok());
    assert!(Override::parse("GAN.Z_DIM=x").is_err());
}

#[test]
fn an_override_that_makes_the_config_invalid_is_an_error_naming_it() {
    let e = with(FILE, &["TRAIN.BATCH_SIZE=1"]).unwrap_err();
    assert!(e.starts_with("t.yml: error: --set TRAIN.BATCH_SIZE=1: training needs a batch of at least 2"), "{e}");
    let e = with(FILE, &["TRAIN.SMOOTH.LAMBDA=-1"]).unwrap_err();
    assert!(e.contains("--set TRAIN.SMOOTH.LAMBDA=-1: expected a finite number >= 0"), "{e}");
    let e = with(FILE, &["GAN.GF_DIM=5000"]).unwrap_err();
    assert!(e.contains("--set GAN.GF_DIM=5000: expected at most 1024"), "{e}");
    // And the reverse: an override can make an invalid file valid.
    let bad_file = FILE.replace("BATCH_SIZE: 4", "BATCH_SIZE: 1");
    assert!(with(&bad_file, &[]).unwrap_err().contains("t.yml:5:"), "the file's own error keeps its line");
    assert_eq!(with(&bad_file, &["TRAIN.BATCH_SIZE=8"]).unwrap().config.train.batch_size, 8);
    // The file's own errors come first and keep their position.
    let e = with("TRAIN:\n  NOPE: 1\n", &["GAN.GF_DIM=32"]).unwrap_err();
    assert!(e.starts_with("t.yml:2:"), "{e}");
}

#[test]
fn overrides_count_as_set_for_the_seed_schedule() {
    // Neither warm-up nor cycle set: the seed's schedule for the dataset, also when the
    // dataset itself comes from --set.
    let c = with(FILE, &["DATASET_NAME=coco"]).unwrap().config;
    assert_eq!((c.clipgan.warmup_epochs, c.clipgan.cycle_epochs), (5, 10));
    // Setting one by --set keeps the plain default of the other, as in a file.
    let c = with(FILE, &["CLIPGAN.WARMUP_EPOCHS=0"]).unwrap().config;
    assert_eq!((c.clipgan.warmup_epochs, c.clipgan.cycle_epochs), (0, 10));
}
