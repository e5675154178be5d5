//! Configuration: the seed's six files load unchanged with the seed's values, and every
//! kind of bad input is an error with file:line:column.
use clipgan::config::{self, Job, Severity};
use std::path::{Path, PathBuf};
use std::process::Command;

fn repo() -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR"))
}

fn load(rel: &str) -> config::LoadedConfig {
    config::load(&repo().join(rel)).unwrap_or_else(|e| panic!("{rel} should load: {e}"))
}

fn parse_err(text: &str) -> config::ConfigError {
    config::parse(Path::new("t.yml"), text, PathBuf::from("/base")).expect_err("should be rejected")
}

#[test]
fn damsm_bird_has_the_seeds_values() {
    let c = load("cfg/DAMSM/bird.yml").config;
    assert_eq!(c.job(), Job::Pretrain);
    assert_eq!(c.dataset_name, "birds");
    assert_eq!((c.tree.branch_num, c.tree.base_size), (1, 224));
    assert_eq!((c.train.batch_size, c.train.max_epoch, c.train.snapshot_interval), (48, 100, 1));
    assert_eq!(c.train.backbone_lr, 2e-5);
    assert_eq!(c.train.linear_lr, 2e-3, "LINEAR_LR is the one fixed value (the seed's 20.0 is a bug)");
    assert_eq!((c.train.smooth.gamma1, c.train.smooth.gamma2, c.train.smooth.gamma3), (4.0, 5.0, 10.0));
    assert_eq!(c.text.captions_per_image, 10);
    assert_eq!(c.text.words_num, 77);
}

#[test]
fn damsm_coco_differs_in_backbone_lr_and_captions() {
    let c = load("cfg/DAMSM/coco.yml").config;
    assert_eq!(c.job(), Job::Pretrain);
    assert_eq!(c.train.backbone_lr, 2e-4);
    assert_eq!(c.text.captions_per_image, 5);
    assert_eq!(c.train.batch_size, 48);
}

#[test]
fn dmgan_bird_has_the_seeds_values() {
    let c = load("cfg/clip_bird_DMGAN.yml").config;
    assert_eq!(c.job(), Job::Train);
    assert_eq!((c.train.batch_size, c.train.max_epoch, c.train.snapshot_interval), (4, 800, 50));
    assert_eq!((c.train.discriminator_lr, c.train.generator_lr), (2e-4, 2e-4));
    assert_eq!(c.train.smooth.lambda, 10.0);
    assert_eq!((c.gan.df_dim, c.gan.gf_dim, c.gan.z_dim, c.gan.r_num), (32, 64, 100, 2));
    assert_eq!(c.gan.condition_dim, 100, "absent key takes the default");
    assert_eq!(c.tree.branch_num, 3);
    assert_eq!(c.tree.base_size, 64, "absent key takes the default");
    assert_eq!(c.train.clip_model_base, "openai/clip-vit-base-patch32");
    assert!(!c.train.clip_model_checkpoint.is_empty());
}

#[test]
fn dmgan_coco_has_the_seeds_values() {
    let c = load("cfg/clip_coco_DMGAN.yml").config;
    assert_eq!(c.job(), Job::Train);
    assert_eq!((c.train.batch_size, c.train.max_epoch, c.train.snapshot_interval), (4, 200, 10));
    assert_eq!(c.train.smooth.lambda, 50.0);
    assert_eq!(c.gan.r_num, 3);
    assert_eq!(c.text.captions_per_image, 5);
}

#[test]
fn eval_configs_evaluate() {
    for f in ["cfg/eval_clip_bird.yml", "cfg/eval_clip_coco.yml"] {
        let c = load(f).config;
        assert_eq!(c.job(), Job::Eval, "{f}");
        assert!(c.b_validation);
        assert!(!c.train.flag);
        assert_eq!(c.train.batch_size, 10);
        assert_eq!(c.text.words_num, 77);
        assert!(!c.train.net_g.is_empty());
    }
}

#[test]
fn defaults_match_method_md() {
    let c = config::parse(Path::new("t.yml"), "CONFIG_NAME: x\n", PathBuf::from("/")).unwrap().config;
    assert_eq!((c.tree.branch_num, c.tree.base_size), (3, 64));
    assert_eq!((c.train.batch_size, c.train.max_epoch, c.train.snapshot_interval), (64, 600, 2000));
    assert_eq!((c.train.discriminator_lr, c.train.generator_lr), (2e-4, 2e-4));
    assert_eq!((c.train.backbone_lr, c.train.linear_lr, c.train.rnn_grad_clip), (2e-5, 2e-3, 0.25));
    let s = &c.train.smooth;
    assert_eq!((s.gamma1, s.gamma2, s.gamma3, s.lambda), (5.0, 5.0, 10.0, 1.0));
    let g = &c.gan;
    assert_eq!((g.df_dim, g.gf_dim, g.z_dim, g.condition_dim, g.r_num), (64, 128, 100, 100, 2));
    assert_eq!((c.text.captions_per_image, c.text.embedding_dim, c.text.words_num), (10, 512, 77));
}

#[test]
fn python_style_booleans_and_null_values_load() {
    let text = "CONFIG_NAME: 'DMGAN'\nCUDA: False\nTRAIN:\n  FLAG: True\n  NET_G:\n  B_NET_D: TRUE\n";
    let c = config::parse(Path::new("t.yml"), text, PathBuf::from("/")).unwrap().config;
    assert!(!c.cuda);
    assert!(c.train.flag && c.train.b_net_d);
    assert_eq!(c.train.net_g, "");
}

#[test]
fn syntax_error_has_line_and_column() {
    let e = parse_err("CONFIG_NAME: x\nTRAIN:\n  BATCH_SIZE: [1, 2\n  FLAG: True\n");
    let d = &e.0[0];
    assert!(d.line.is_some() && d.column.is_some(), "{e}");
    assert!(e.to_string().starts_with("t.yml:"), "{e}");
}

#[test]
fn wrong_type_names_the_key_and_what_was_expected() {
    let e = parse_err("CONFIG_NAME: x\nTRAIN:\n  BATCH_SIZE: many\n");
    let s = e.to_string();
    assert_eq!((e.0[0].line, e.0[0].column), (Some(3), Some(15)), "{s}");
    assert!(s.contains("TRAIN.BATCH_SIZE") && s.contains("expected u32"), "{s}");
}

#[test]
fn misspelt_key_is_an_error_with_a_suggestion() {
    let e = parse_err("CONFIG_NAME: x\nTRAIN:\n  FLAG: True\n  BATCH_SIZ: 4\n");
    let s = e.to_string();
    assert_eq!((e.0[0].line, e.0[0].column), (Some(4), Some(3)), "{s}");
    assert!(s.starts_with("t.yml:4:3: error: unknown key `BATCH_SIZ` in TRAIN (did you mean `BATCH_SIZE`?)"), "{s}");
    let e = parse_err("CONFIG_NAME: x\nTRIAN:\n  FLAG: True\n");
    assert!(e.to_string().contains("unknown key `TRIAN` in the top level (did you mean `TRAIN`?)"), "{e}");
    let e = parse_err("CONFIG_NAME: x\nTRAIN:\n  SMOOTH:\n    GAMA1: 4\n");
    assert!(e.to_string().contains("t.yml:4:5") && e.to_string().contains("`GAMMA1`"), "{e}");
}

#[test]
fn duplicate_key_is_an_error() {
    let e = parse_err("CONFIG_NAME: x\nTRAIN:\n  FLAG: True\n  FLAG: False\n");
    assert!(e.to_string().contains("duplicate"), "{e}");
}

#[test]
fn out_of_range_values_are_errors_at_their_line() {
    let e = parse_err("CONFIG_NAME: x\nTREE:\n  BRANCH_NUM: 4\nTRAIN:\n  BATCH_SIZE: 1\n");
    let s = e.to_string();
    assert!(s.contains("t.yml:3:3: error: TREE.BRANCH_NUM"), "{s}");
    assert!(s.contains("t.yml:5:3: error: TRAIN.BATCH_SIZE"), "{s}");
    assert_eq!(e.0.len(), 2, "all errors are reported at once: {s}");
    let e = parse_err("CONFIG_NAME: x\nCLIPGAN:\n  DEVICE: tpu\n");
    assert!(e.to_string().contains("t.yml:3:3: error: CLIPGAN.DEVICE"), "{e}");
}

#[test]
fn empty_and_missing_files_are_errors() {
    let e = parse_err("# nothing\n\n");
    assert!(e.to_string().contains("no settings"), "{e}");
    let e = config::load(Path::new("/nonexistent/x.yml")).unwrap_err();
    assert!(e.to_string().starts_with("/nonexistent/x.yml: error: cannot read the file"), "{e}");
}

#[test]
fn seed_linear_lr_bug_is_flagged() {
    let l = config::parse(Path::new("t.yml"), "CONFIG_NAME: DAMSM\nTRAIN:\n  LINEAR_LR: 20.0\n", PathBuf::from("/")).unwrap();
    assert!(l.warnings.iter().any(|w| w.severity == Severity::Warning && w.message.contains("LINEAR_LR")));
}

#[test]
fn relative_paths_resolve_against_the_folder_holding_cfg() {
    let dir = tempfile::tempdir().unwrap();
    std::fs::create_dir_all(dir.path().join("proj/cfg/DAMSM")).unwrap();
    let f = dir.path().join("proj/cfg/DAMSM/x.yml");
    std::fs::write(&f, "CONFIG_NAME: DAMSM\nDATA_DIR: '../data/birds'\n").unwrap();
    let l = config::load(&f).unwrap();
    assert_eq!(l.base_dir, dir.path().join("proj"));
    assert_eq!(l.resolve(&l.config.data_dir).unwrap(), dir.path().join("data/birds"));
    // Outside a cfg/ folder: relative to the file's folder.
    let g = dir.path().join("y.yml");
    std::fs::write(&g, "CONFIG_NAME: DAMSM\nDATA_DIR: 'd'\n").unwrap();
    let l = config::load(&g).unwrap();
    assert_eq!(l.resolve(&l.config.data_dir).unwrap(), dir.path().join("d"));
    assert_eq!(l.resolved().data_dir, dir.path().join("d").display().to_string());
}

#[test]
fn a_job_refuses_a_missing_path_naming_it_resolved() {
    let dir = tempfile::tempdir().unwrap();
    let f = dir.path().join("x.yml");
    std::fs::write(&f, "CONFIG_NAME: DAMSM\nDATA_DIR: 'nowhere'\n").unwrap();
    let l = config::load(&f).unwrap();
    let e = l.require("DATA_DIR").unwrap_err().to_string();
    assert!(e.contains(&dir.path().join("nowhere").display().to_string()) && e.contains("does not exist"), "{e}");
    assert!(e.contains("x.yml:2:1"), "{e}");
    let e = l.require("TRAIN.NET_G").unwrap_err().to_string();
    assert!(e.contains("TRAIN.NET_G is not set"), "{e}");
    std::fs::create_dir(dir.path().join("nowhere")).unwrap();
    assert_eq!(l.require("DATA_DIR").unwrap(), dir.path().join("nowhere"));
    assert!(l.path_warnings().is_empty());
}

#[test]
fn job_is_inferred_as_the_seed_does() {
    let p = |t: &str| config::parse(Path::new("t.yml"), t, PathBuf::from("/")).unwrap().config.job();
    assert_eq!(p("CONFIG_NAME: DAMSM\n"), Job::Pretrain);
    assert_eq!(p("CONFIG_NAME: DMGAN\nTRAIN:\n  FLAG: True\n"), Job::Train);
    assert_eq!(p("CONFIG_NAME: DMGAN\nTRAIN:\n  FLAG: False\n"), Job::Eval);
}

#[test]
fn resolved_yaml_loads_back_to_the_same_config() {
    let l = load("cfg/clip_bird_DMGAN.yml");
    let again = config::parse(Path::new("r.yml"), &l.resolved_yaml(), PathBuf::from("/")).unwrap();
    assert_eq!(again.config, l.resolved());
}

// The binary, as a user runs it.
fn clipgan(args: &[&str]) -> std::process::Output {
    Command::new(env!("CARGO_BIN_EXE_clipgan")).args(args).current_dir(repo()).output().unwrap()
}

#[test]
fn config_check_passes_on_the_seed_files() {
    let out = clipgan(&[
        "config",
        "check",
        "cfg/DAMSM/bird.yml",
        "cfg/DAMSM/coco.yml",
        "cfg/clip_bird_DMGAN.yml",
        "cfg/clip_coco_DMGAN.yml",
        "cfg/eval_clip_bird.yml",
        "cfg/eval_clip_coco.yml",
    ]);
    assert!(out.status.success(), "{}", String::from_utf8_lossy(&out.stderr));
    let stdout = String::from_utf8_lossy(&out.stdout);
    // The resolved config shows defaults that the file leaves out.
    assert!(stdout.contains("CONDITION_DIM: 100"), "{stdout}");
    assert!(stdout.contains("(job: pretrain"), "{stdout}");
}

#[test]
fn config_check_fails_on_a_typo_with_file_line_col() {
    let dir = tempfile::tempdir().unwrap();
    let f = dir.path().join("typo.yml");
    std::fs::write(&f, "CONFIG_NAME: DMGAN\nTRAIN:\n  FLAG: True\n  MAX_EPOHC: 3\n").unwrap();
    let out = clipgan(&["config", "check", f.to_str().unwrap()]);
    assert!(!out.status.success());
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(
        stderr.contains(&format!("{}:4:3: error: unknown key `MAX_EPOHC` in TRAIN (did you mean `MAX_EPOCH`?)", f.display())),
        "{stderr}"
    );
}

#[test]
fn damsm_configs_run_the_seeds_schedule() {
    use clipgan::train::schedule::WarmRestarts;
    // cfg/DAMSM: birds cycles of 5 epochs with a 2-epoch warm-up, COCO 10 / 5.
    for (file, want) in [("cfg/DAMSM/bird.yml", (2, 5)), ("cfg/DAMSM/coco.yml", (5, 10))] {
        let c = load(file).config;
        assert_eq!((c.clipgan.warmup_epochs, c.clipgan.cycle_epochs), want, "{file}");
    }
    let s = WarmRestarts::from_config(&load("cfg/DAMSM/bird.yml").config.clipgan);
    let peak = 2e-5;
    assert!((s.lr(peak, 2.0) - peak).abs() < 1e-12, "peak at the end of the warm-up");
    assert!(s.lr(peak, 1.0) < peak * 0.6);
    assert!((s.lr(peak, 5.0) - 1e-7).abs() < 1e-12, "restart at epoch 5");
    assert!((s.lr(peak, 7.0) - 0.8 * peak).abs() < 1e-12, "second cycle's peak, x0.8");
    // The seed's own files carry no CLIPGAN section: the same schedule by DATASET_NAME.
    let seed_like = |name: &str, extra: &str| {
        let text = format!("CONFIG_NAME: 'DAMSM'\nDATASET_NAME: '{name}'\nTREE:\n  BASE_SIZE: 224\n{extra}");
        let c = config::parse(Path::new("seed.yml"), &text, PathBuf::from("/")).unwrap().config;
        (c.clipgan.warmup_epochs, c.clipgan.cycle_epochs)
    };
    assert_eq!(seed_like("birds", ""), (2, 5));
    assert_eq!(seed_like("coco", ""), (5, 10));
    // Either key set: the other keeps its plain default.
    assert_eq!(seed_like("coco", "CLIPGAN:\n  CYCLE_EPOCHS: 4\n"), (1, 4));
    assert_eq!(seed_like("birds", "CLIPGAN: {WARMUP_EPOCHS: 3}\n"), (3, 10));
}
