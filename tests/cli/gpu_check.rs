//! scripts/gpu-check.sh without a GPU: `--dry-run` runs the CPU halves of its six checks
//! with the debug binary and prints one table (exit 0); a torch of another version is
//! refused (exit 2); a check that fails makes the exit status 1.
use std::path::Path;
use std::process::{Command, Output};

fn script(work: &Path, args: &[&str]) -> Output {
    let mut c = Command::new("bash");
    c.arg(Path::new(env!("CARGO_MANIFEST_DIR")).join("scripts/gpu-check.sh"))
        .args(["--binary", env!("CARGO_BIN_EXE_clipgan"), "--work"])
        .arg(work)
        .args(args)
        .env_remove("CLIPGAN_HOME")
        .env_remove("CLIPGAN_RUN_DIR")
        .env_remove("CLIPGAN_DEVICE");
    // The venv's Python (scripts/env.sh) has the torch the binary was built against.
    if let Some(venv) = std::env::var_os("VIRTUAL_ENV") {
        c.arg("--python").arg(Path::new(&venv).join("bin/python"));
    }
    c.output().expect("run scripts/gpu-check.sh")
}

fn text(o: &Output) -> (String, String) {
    (String::from_utf8_lossy(&o.stdout).into_owned(), String::from_utf8_lossy(&o.stderr).into_owned())
}

/// The table row of check `n`: (result, detail).
fn row(stdout: &str, n: u32) -> Option<(String, String)> {
    let table = stdout.split("clipgan GPU check").last()?;
    table.lines().find_map(|l| {
        let rest = l.strip_prefix(&format!("{n}  "))?;
        let cells: Vec<&str> = rest.splitn(2, " PASS ").collect();
        let (result, detail) = if cells.len() == 2 {
            ("PASS", cells[1])
        } else {
            let f: Vec<&str> = rest.splitn(2, " FAIL ").collect();
            ("FAIL", *f.get(1)?)
        };
        Some((result.to_string(), detail.trim().to_string()))
    })
}

fn python_has(module: &str) -> bool {
    let py = std::env::var_os("VIRTUAL_ENV").map(|v| Path::new(&v).join("bin/python")).unwrap_or_else(|| "python3".into());
    Command::new(py).args(["-c", &format!("import {module}")]).output().map(|o| o.status.success()).unwrap_or(false)
}

#[test]
fn dry_run_runs_the_cpu_halves_of_every_check_and_prints_one_table() {
    let work = tempfile::tempdir().unwrap();
    let out = script(work.path(), &["--dry-run"]);
    let (stdout, stderr) = text(&out);
    assert!(out.status.success(), "exit {:?}\n{stdout}\n{stderr}", out.status.code());
    assert!(stdout.contains("gpu-check --dry-run: the plan"), "{stdout}");
    assert_eq!(stdout.matches("#  check             result detail").count(), 1, "one table: {stdout}");
    for n in 0..=6 {
        let (result, detail) = row(&stdout, n).unwrap_or_else(|| panic!("no row {n}:\n{stdout}"));
        assert_eq!(result, "PASS", "check {n}: {detail}\n{stdout}");
    }
    let detail = |n| row(&stdout, n).unwrap().1;
    assert!(detail(0).contains("built for 2.11.0"), "{}", detail(0));
    assert!(detail(2).starts_with("CPU f32 vs CPU bf16: max |d| of unit codes"), "{}", detail(2));
    assert!(detail(3).contains("pretrain AMP false: 3 steps + resume to 5 ok") && detail(3).contains("train AMP false"), "{}", detail(3));
    assert!(detail(4).contains("DM-GAN step") && detail(4).contains("x;"), "{}", detail(4));
    // The FID comparison names what it compared with: pytorch-fid's model when installed.
    let fid_ref = if python_has("pytorch_fid, torchvision") { "FID features vs pytorch-fid " } else { "(pytorch-fid not installed)" };
    assert!(detail(4).contains(fid_ref), "{}", detail(4));
    assert!(detail(5).contains("GPU: 'no NVIDIA GPU / driver"), "{}", detail(5));
    assert!(detail(6).starts_with("slot 0 -> CUDA_VISIBLE_DEVICES=0, slot 1 -> 1"), "{}", detail(6));
    // The runs it made are where the table says, with their checkpoints.
    for run in ["pretrain-amp-false", "train-amp-false"] {
        assert!(work.path().join("home/runs").join(run).join("checkpoints/latest.safetensors").is_file(), "{run}");
    }
}

#[test]
fn a_torch_of_another_version_is_refused() {
    let work = tempfile::tempdir().unwrap();
    let out = script(work.path(), &["--dry-run", "--built-for", "2.10.0"]);
    let (stdout, stderr) = text(&out);
    assert_eq!(out.status.code(), Some(2), "{stdout}\n{stderr}");
    let (result, detail) = row(&stdout, 0).expect("row 0");
    assert_eq!(result, "FAIL");
    assert!(detail.contains("but the binary was built for torch 2.10.0") && detail.contains("install torch==2.10.0"), "{detail}");
    assert!(stderr.contains("refusing to run"), "{stderr}");
    assert!(row(&stdout, 1).is_none(), "nothing else ran: {stdout}");
}

#[test]
fn a_failing_check_makes_the_exit_status_non_zero() {
    // The GPU mode's doctor check on this machine: it fails without a CUDA device (the
    // CI machines have none) and passes with one; the exit status follows the table.
    let work = tempfile::tempdir().unwrap();
    let doctor = Command::new(env!("CARGO_BIN_EXE_clipgan")).args(["doctor", "--json"]).output().unwrap();
    let report: serde_json::Value = serde_json::from_slice(&doctor.stdout).unwrap();
    let has_cuda = !report["cuda_devices"].as_array().unwrap().is_empty();
    let out = script(work.path(), &["--only", "1"]);
    let (stdout, stderr) = text(&out);
    let (result, detail) = row(&stdout, 1).unwrap_or_else(|| panic!("no row 1:\n{stdout}\n{stderr}"));
    if has_cuda {
        assert_eq!((result.as_str(), out.status.code()), ("PASS", Some(0)), "{stdout}\n{stderr}");
    } else {
        assert_eq!(result, "FAIL", "{stdout}");
        assert!(detail.starts_with("no CUDA device"), "{detail}");
        assert_eq!(out.status.code(), Some(1), "{stdout}\n{stderr}");
        assert!(stdout.contains(&format!("logs: {}", work.path().join("logs").display())), "{stdout}");
    }
    for n in 2..=6 {
        assert!(row(&stdout, n).is_none(), "--only 1 ran check {n}: {stdout}");
    }
}
