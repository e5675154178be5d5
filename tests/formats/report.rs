//! `clipgan report`: run folders' results.json as Markdown, CSV and LaTeX tables (golden
//! output in snapshots/), the published rows with --reference, and the errors: a corrupt
//! or missing results.json names the file; --keep-going marks the row instead.
use serde_json::json;
use std::path::Path;
use std::process::{Command, Output};

/// A run folder `runs/<id>` with run.json, status.json, config.yml and (when given)
/// results.json.
fn run_folder(root: &Path, id: &str, job: &str, dataset: &str, results: Option<&serde_json::Value>) {
    let d = root.join("runs").join(id);
    std::fs::create_dir_all(&d).unwrap();
    let manifest = json!({"format": 1, "id": id, "job": job, "name": id, "created": 1795860900.5});
    std::fs::write(d.join("run.json"), manifest.to_string()).unwrap();
    std::fs::write(d.join("status.json"), json!({"state": "finished", "updated": 1795861000.0}).to_string()).unwrap();
    std::fs::write(d.join("config.yml"), format!("CONFIG_NAME: 'x'\nDATASET_NAME: '{dataset}'\n")).unwrap();
    if let Some(r) = results {
        std::fs::write(d.join("results.json"), serde_json::to_string_pretty(r).unwrap()).unwrap();
    }
}

/// An eval of two snapshots (CUB, every metric, the CUB Inception) and one of a COCO
/// generator without the Inception weights, written in the older form without a
/// "dataset" (taken from config.yml) nor an IS model.
fn two_runs(root: &Path) {
    let snap = |epoch: u32, step: u64, r: f64, fid: f64, is: f64| {
        json!({
            "generator": format!("/data/runs/train-bird/checkpoints/netG_epoch_{epoch:04}.safetensors"),
            "step": step, "images": 30000, "trials": 30000,
            "sampling": {"mode": "passes", "images": 30000, "test_images": 2933, "passes": 11},
            "r_precision": {"encoder": "finetuned CLIP (clip_bird.safetensors)", "mean": r, "std": 0.00612, "folds": 10, "trials": 30000, "candidates": 100},
            "r_precision_independent": {"encoder": "independent CLIP (ViT-B-32.safetensors)", "mean": 0.52, "std": 0.011, "folds": 10, "trials": 30000, "candidates": 100},
            "fd_clip": {"value": 0.123456, "encoder": "finetuned CLIP image codes", "real": "test split images"},
            "fid": {"value": fid, "dims": 2048, "images": 30000},
            "kid": {"mean": 0.012345, "std": 0.00111, "subsets": 100, "subset_size": 1000, "features": "Inception pool3 (2048)"},
            "is": {"mean": is, "std": 0.0567, "splits": 10, "model": "cub-stackgan", "weights": "/w/stackgan_cub_inception.safetensors"}
        })
    };
    let bird = json!({"job": "eval", "dataset": "birds", "protocol": {}, "results": [snap(400, 88000, 0.70123, 18.456, 4.4321), snap(800, 176000, 0.74567, 15.987, 4.6789)]});
    run_folder(root, "20261204-101500-eval-bird", "eval", "birds", Some(&bird));
    let coco = json!({"job": "eval", "protocol": {}, "results": [{
        "generator": "/data/runs/train-coco/checkpoints/latest.safetensors", "step": 50000, "images": 30000, "trials": 30000,
        "r_precision": {"encoder": "finetuned CLIP (clip_coco.safetensors)", "mean": 0.8612, "std": 0.0041, "folds": 10, "trials": 30000},
        "fd_clip": {"value": 0.2},
        "fid": {"unavailable": "CLIPGAN.EVAL.FID_WEIGHTS is not set. pytorch-fid's FID Inception weights are needed: download ..."},
        "kid": {"unavailable": "CLIPGAN.EVAL.FID_WEIGHTS is not set. pytorch-fid's FID Inception weights are needed: download ..."},
        "is": {"mean": 27.5, "std": 0.61, "splits": 10}
    }]});
    run_folder(root, "20261204-120000-eval-coco", "eval", "coco", Some(&coco));
}

fn report(root: &Path, args: &[&str]) -> Output {
    Command::new(env!("CARGO_BIN_EXE_clipgan")).env("CLIPGAN_HOME", root).current_dir(root).arg("report").args(args).output().unwrap()
}

fn stdout(o: &Output) -> String {
    assert!(o.status.success(), "report failed: {}", String::from_utf8_lossy(&o.stderr));
    String::from_utf8(o.stdout.clone()).unwrap()
}

const RUNS: [&str; 2] = ["runs/20261204-101500-eval-bird", "runs/20261204-120000-eval-coco"];

#[test]
fn report_markdown_with_the_published_rows() {
    let tmp = tempfile::tempdir().unwrap();
    two_runs(tmp.path());
    let out = stdout(&report(tmp.path(), &[RUNS[0], RUNS[1], "--reference"]));
    insta::assert_snapshot!("report_markdown_reference", out);
}

#[test]
fn report_csv_and_latex() {
    let tmp = tempfile::tempdir().unwrap();
    two_runs(tmp.path());
    let csv = stdout(&report(tmp.path(), &[RUNS[0], RUNS[1], "--format", "csv"]));
    insta::assert_snapshot!("report_csv", csv);
    let tex = stdout(&report(tmp.path(), &[RUNS[0], "--format", "latex", "--reference"]));
    insta::assert_snapshot!("report_latex_reference", tex);
}

#[test]
fn report_errors_name_the_file_and_keep_going_marks_the_row() {
    let tmp = tempfile::tempdir().unwrap();
    two_runs(tmp.path());
    let bad = tmp.path().join("runs/20261204-130000-eval-bad");
    run_folder(tmp.path(), "20261204-130000-eval-bad", "eval", "birds", None);
    std::fs::write(bad.join("results.json"), "{\"job\": \"eval\", \"results\": [").unwrap();
    run_folder(tmp.path(), "20261204-140000-eval-empty", "eval", "birds", None);
    run_folder(tmp.path(), "20261204-090000-train-bird", "train", "birds", None);

    let o = report(tmp.path(), &[RUNS[0], "runs/20261204-130000-eval-bad"]);
    let err = String::from_utf8_lossy(&o.stderr);
    assert!(!o.status.success());
    assert!(err.contains("runs/20261204-130000-eval-bad/results.json is not valid JSON"), "{err}");
    assert!(o.stdout.is_empty(), "no table without --keep-going");

    let o = report(tmp.path(), &["runs/20261204-140000-eval-empty"]);
    let err = String::from_utf8_lossy(&o.stderr);
    assert!(
        err.contains(
            "runs/20261204-140000-eval-empty/results.json does not exist: the run has no evaluation results (the eval run is finished)"
        ),
        "{err}"
    );
    let o = report(tmp.path(), &["runs/20261204-090000-train-bird"]);
    let err = String::from_utf8_lossy(&o.stderr);
    assert!(
        err.contains("a train run keeps no evaluation results") && err.contains("--snapshots runs/20261204-090000-train-bird"),
        "{err}"
    );
    let o = report(tmp.path(), &["runs/nothing-here"]);
    assert!(String::from_utf8_lossy(&o.stderr).contains("runs/nothing-here: no such run folder"));

    // --keep-going: the table with the bad run marked, exit status 1.
    let o = report(tmp.path(), &[RUNS[0], "runs/20261204-130000-eval-bad", "--keep-going", "--format", "csv"]);
    assert_eq!(o.status.code(), Some(1));
    let out = String::from_utf8(o.stdout).unwrap();
    let lines: Vec<&str> = out.lines().collect();
    assert_eq!(lines.len(), 4, "{out}");
    assert!(
        lines[3].starts_with("runs/20261204-130000-eval-bad,,,,,,,,,,,,,,,runs/20261204-130000-eval-bad/results.json,true,"),
        "{}",
        lines[3]
    );
    assert!(lines[3].contains("is not valid JSON"), "{}", lines[3]);
    assert!(String::from_utf8_lossy(&o.stderr).contains("1 of 2 run(s) could not be read"));
}
