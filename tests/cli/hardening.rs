//! Hardening (issue 13): bad and hostile inputs, each found by the fault campaign, get a
//! clear error naming the file instead of a panic, a crash or a hang. Each test runs the
//! input that failed before the fix (see docs/reliability.md).
use std::path::Path;
use std::process::{Command, Output};
use std::time::Duration;

/// The binary as a user runs it, in `dir` with a fresh `CLIPGAN_HOME`, killed after
/// `limit` (a hang is a failure, not a stuck test run).
fn clipgan_in(dir: &Path, args: &[&str], limit: Duration) -> Output {
    let mut child = Command::new(env!("CARGO_BIN_EXE_clipgan"))
        .args(args)
        .current_dir(dir)
        .env("CLIPGAN_HOME", dir)
        .stdout(std::process::Stdio::piped())
        .stderr(std::process::Stdio::piped())
        .spawn()
        .unwrap();
    let start = std::time::Instant::now();
    while child.try_wait().unwrap().is_none() {
        if start.elapsed() > limit {
            child.kill().unwrap();
            let out = child.wait_with_output().unwrap();
            panic!("clipgan {args:?} did not return within {limit:?}; stderr: {}", String::from_utf8_lossy(&out.stderr));
        }
        std::thread::sleep(Duration::from_millis(20));
    }
    child.wait_with_output().unwrap()
}

fn stderr(out: &Output) -> String {
    String::from_utf8_lossy(&out.stderr).into_owned()
}

/// Item 1: `GF_DIM: 1000000` passed `config check`, then `model summary` panicked in
/// tch's VarStore asking for 409.6 GB. Now both refuse it at its line and column.
#[test]
fn an_absurd_model_size_is_refused_at_its_line() {
    let dir = tempfile::tempdir().unwrap();
    std::fs::write(dir.path().join("g.yml"), "CONFIG_NAME: g\nGAN:\n  GF_DIM: 1000000\n").unwrap();
    for args in [&["config", "check", "g.yml"][..], &["model", "summary", "--cfg", "g.yml"]] {
        let out = clipgan_in(dir.path(), args, Duration::from_secs(60));
        let err = stderr(&out);
        assert!(!out.status.success(), "{args:?} accepted GF_DIM 1000000");
        assert!(err.contains("g.yml:3:3: error: GAN.GF_DIM: expected at most 1024"), "{args:?}: {err}");
        assert!(!err.contains("panicked"), "{args:?}: {err}");
    }
}

/// Item 3: a metric at 1.7e308 next to -1 (or 1e308 next to -1e308) made `plot` hang in
/// the axis ticks (the range's width overflowed); PNG and SVG now return.
#[test]
fn plot_returns_on_values_near_the_float_limit() {
    let dir = tempfile::tempdir().unwrap();
    let run = dir.path().join("r");
    std::fs::create_dir(&run).unwrap();
    for (a, b) in [("1.7e308", "-1"), ("1e308", "-1e308")] {
        std::fs::write(
            run.join("metrics.jsonl"),
            format!(
                "{{\"step\":1,\"epoch\":0,\"wall\":1,\"tag\":\"t\",\"value\":{a}}}\n{{\"step\":2,\"epoch\":0,\"wall\":2,\"tag\":\"t\",\"value\":{b}}}\n"
            ),
        )
        .unwrap();
        for out in ["c.png", "c.svg"] {
            let o = clipgan_in(dir.path(), &["plot", "./r", "--tag", "t", "--out", out], Duration::from_secs(60));
            assert!(o.status.success(), "[{a}, {b}] to {out}: {}", stderr(&o));
            assert!(dir.path().join(out).metadata().unwrap().len() > 0);
        }
    }
}

/// Item 6: names are bounded where they are given: CONFIG_NAME at its line, `fake-run
/// --name` before any folder is made, and the message quotes only the start of the value.
#[test]
fn long_names_are_refused_at_validation() {
    let dir = tempfile::tempdir().unwrap();
    std::fs::write(dir.path().join("n.yml"), format!("CONFIG_NAME: {}\n", "n".repeat(240))).unwrap();
    let out = clipgan_in(dir.path(), &["config", "check", "n.yml"], Duration::from_secs(60));
    assert!(!out.status.success());
    assert!(
        stderr(&out).contains("n.yml:1:1: error: CONFIG_NAME: the name has 240 characters, more than the 64 allowed"),
        "{}",
        stderr(&out)
    );
    let name = "m".repeat(100_000);
    let out = clipgan_in(dir.path(), &["fake-run", "--name", &name, "--steps", "1"], Duration::from_secs(60));
    let err = stderr(&out);
    assert!(!out.status.success());
    assert!(err.contains("100000 characters, more than the 64 allowed"), "{}", &err[..err.len().min(500)]);
    assert!(err.len() < 1000, "a {} byte message", err.len());
    assert!(
        !dir.path().join("runs").exists() || std::fs::read_dir(dir.path().join("runs")).unwrap().next().is_none(),
        "no run folder made"
    );
}

/// Item 8: `DATASET_NAME: 'cats'` was accepted.
#[test]
fn an_unknown_dataset_name_is_an_error() {
    let dir = tempfile::tempdir().unwrap();
    std::fs::write(dir.path().join("d.yml"), "CONFIG_NAME: d\nDATASET_NAME: 'cats'\n").unwrap();
    let out = clipgan_in(dir.path(), &["config", "check", "d.yml"], Duration::from_secs(60));
    assert!(!out.status.success());
    assert!(stderr(&out).contains("d.yml:2:1: error: DATASET_NAME: expected birds or coco"), "{}", stderr(&out));
}

/// Item 8: `plot` ignored a run.json of a newer format or with garbage in it, although
/// run-format.md says readers refuse a newer format.
#[test]
fn plot_refuses_a_newer_or_broken_run_json() {
    let dir = tempfile::tempdir().unwrap();
    let run = dir.path().join("r");
    std::fs::create_dir(&run).unwrap();
    std::fs::write(run.join("metrics.jsonl"), "{\"step\":1,\"epoch\":0,\"wall\":1,\"tag\":\"t\",\"value\":1}\n").unwrap();
    for (manifest, expected) in [
        (
            "{\"format\": 2, \"clipgan_version\": \"9.0.0\"}",
            "run.json was written in run format 2 by clipgan 9.0.0; this clipgan reads format 1",
        ),
        ("garbage", "run.json is not valid"),
    ] {
        std::fs::write(run.join("run.json"), manifest).unwrap();
        let out = clipgan_in(dir.path(), &["plot", "./r", "--tag", "t", "--out", "c.csv"], Duration::from_secs(60));
        assert!(!out.status.success(), "{manifest}");
        assert!(stderr(&out).contains(expected), "{manifest}: {}", stderr(&out));
    }
}

/// A small synthetic dataset in `dir/D`.
fn synth(dir: &Path) -> std::path::PathBuf {
    let out = clipgan_in(dir, &["data", "synth", "--out", "D", "--train", "20", "--test", "10", "--size", "32"], Duration::from_secs(120));
    assert!(out.status.success(), "{}", stderr(&out));
    dir.join("D")
}

/// Item 2: a filenames.pickle nested 10,000 deep overflowed the stack of `data check`
/// (SIGABRT, no file named). Now it is a problem naming the file.
#[test]
fn a_deeply_nested_pickle_is_a_problem_naming_the_file() {
    let dir = tempfile::tempdir().unwrap();
    let d = synth(dir.path());
    let mut p = b"\x80\x02]".to_vec();
    p.extend(b"(]".repeat(10_000));
    p.extend(b"e".repeat(10_000));
    p.push(b'.');
    std::fs::write(d.join("train/filenames.pickle"), p).unwrap();
    let out = clipgan_in(dir.path(), &["data", "check", "D"], Duration::from_secs(120));
    let all = format!("{}{}", String::from_utf8_lossy(&out.stdout), stderr(&out));
    assert_eq!(out.status.code(), Some(1), "{all}");
    assert!(all.contains("train/filenames.pickle: not a readable pickle (the pickle nests containers 10001 deep"), "{all}");
}

/// Item 8: a caption file with invalid UTF-8 or a NUL byte got "no problems found"; an
/// image that is a symlink to /dev/zero was "not found".
#[test]
fn bad_caption_bytes_and_special_image_files_are_problems() {
    let dir = tempfile::tempdir().unwrap();
    let d = synth(dir.path());
    let first_file = |sub: &str| {
        let class = std::fs::read_dir(d.join(sub)).unwrap().flatten().map(|e| e.path()).min().unwrap();
        std::fs::read_dir(class).unwrap().flatten().map(|e| e.path()).min().unwrap()
    };
    let caption = first_file("text");
    let mut bytes = std::fs::read(&caption).unwrap();
    bytes.splice(0..0, *b"a \xff\xfe bird ");
    std::fs::write(&caption, &bytes).unwrap();
    let image = first_file("CUB_200_2011/images");
    std::fs::remove_file(&image).unwrap();
    std::os::unix::fs::symlink("/dev/zero", &image).unwrap();
    let out = clipgan_in(dir.path(), &["data", "check", "D"], Duration::from_secs(120));
    let all = format!("{}{}", String::from_utf8_lossy(&out.stdout), stderr(&out));
    assert_eq!(out.status.code(), Some(1), "{all}");
    assert!(all.contains("the caption file is not UTF-8 text (invalid byte at offset 2)"), "{all}");
    assert!(all.contains("is a device or other special file"), "{all}");

    let mut bytes = std::fs::read(&caption).unwrap();
    bytes.splice(0..6, *b"a \0 bird");
    std::fs::write(&caption, &bytes).unwrap();
    let out = clipgan_in(dir.path(), &["data", "check", "D"], Duration::from_secs(120));
    let all = format!("{}{}", String::from_utf8_lossy(&out.stdout), stderr(&out));
    assert!(all.contains("the caption file holds a NUL byte (at offset 2)"), "{all}");
}

/// Item 8: `fid --weights <a folder>` said the weights "do not exist".
#[test]
fn fid_weights_that_are_a_folder_are_named_as_such() {
    let dir = tempfile::tempdir().unwrap();
    std::fs::create_dir(dir.path().join("w")).unwrap();
    let out = clipgan_in(dir.path(), &["fid", "a", "b", "--weights", "w"], Duration::from_secs(60));
    assert!(!out.status.success());
    assert!(stderr(&out).contains("Inception weights w is a folder; give the weights file itself"), "{}", stderr(&out));
}

/// Item 4: `config check /dev/zero` grew memory without limit, and 200 KB of nested
/// brackets took 38 s to parse. Both are refused at once now.
#[test]
fn huge_or_deeply_nested_configs_are_refused_quickly() {
    let dir = tempfile::tempdir().unwrap();
    let out = clipgan_in(dir.path(), &["config", "check", "/dev/zero"], Duration::from_secs(30));
    assert!(!out.status.success());
    assert!(stderr(&out).contains("/dev/zero: error: the file is larger than 1024 KiB"), "{}", stderr(&out));
    let mut text = b"TRAIN: ".to_vec();
    text.extend(b"[".repeat(100_000));
    text.extend(b"]".repeat(100_000));
    std::fs::write(dir.path().join("deep.yml"), text).unwrap();
    let start = std::time::Instant::now();
    let out = clipgan_in(dir.path(), &["config", "check", "deep.yml"], Duration::from_secs(30));
    assert!(!out.status.success());
    assert!(stderr(&out).contains("deep.yml:1:40: error: lists or mappings nest deeper than 32 levels"), "{}", stderr(&out));
    assert!(start.elapsed() < Duration::from_secs(10), "took {:?}", start.elapsed());
    // Brackets inside quotes and comments are text.
    std::fs::write(dir.path().join("q.yml"), format!("CONFIG_NAME: '{}' # {}\n", "[".repeat(40), "{".repeat(40))).unwrap();
    let out = clipgan_in(dir.path(), &["config", "check", "q.yml"], Duration::from_secs(30));
    assert!(out.status.success(), "{}", stderr(&out));
}
