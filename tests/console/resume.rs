//! Resumed runs give one value per step (issue 19): a fake-run stopped after its last
//! checkpoint and resumed writes the steps after the checkpoint twice; the console's
//! store and `clipgan plot`'s loader keep the resumed attempt's values, and the store's
//! series stays sorted (the curves view's block-summary fast path). The frame time of
//! such a run is measured by `clipgan bench console --rewinds` (docs/console.md).
use clipgan::console::store::{RunData, XAxis};
use std::path::Path;
use std::process::Command;

const BIN: &str = env!("CARGO_BIN_EXE_clipgan");

fn fake_run(home: &Path, args: &[&str]) -> std::process::ExitStatus {
    Command::new(BIN)
        .env("CLIPGAN_HOME", home)
        .args(["fake-run", "--steps", "40", "--step-ms", "0", "--sample-every", "0", "--checkpoint-every", "10"])
        .args(args)
        .output()
        .expect("runs clipgan fake-run")
        .status
}

#[test]
fn a_failed_and_resumed_run_has_one_value_per_step() {
    let home = tempfile::tempdir().unwrap();
    let (broken, whole) = (home.path().join("runs/broken"), home.path().join("runs/whole"));
    // Steps 1..=25 written, last checkpoint at 20; the resume repeats 21..=25.
    let st = fake_run(home.path(), &["--run-dir", broken.to_str().unwrap(), "--fail-at", "26"]);
    assert_eq!(st.code(), Some(1));
    assert!(fake_run(home.path(), &["--resume", broken.to_str().unwrap()]).success());
    assert!(fake_run(home.path(), &["--run-dir", whole.to_str().unwrap()]).success());
    let raw = clipgan::rundir::read_metrics(&broken).unwrap().events;
    let repeated = raw.iter().filter(|e| e.tag == "loss/g_total").count();
    assert_eq!(repeated, 45, "the file keeps both attempts' events (history)");

    let mut run = RunData::new(&broken);
    run.poll().unwrap();
    let mut reference = RunData::new(&whole);
    reference.poll().unwrap();
    for (tag, s) in &run.tags {
        let want: Vec<f64> = reference.tags[tag].steps.clone();
        assert_eq!(s.steps, want, "{tag}: one value per step, in order");
        assert!(s.sorted(XAxis::Step), "{tag}: stays on the fast path");
        assert_eq!(s.values, reference.tags[tag].values, "{tag}: the resumed attempt's values (exact resume)");
        assert_eq!(s.raw_blocks.min.len(), s.len() / clipgan::console::store::BLOCK);
    }

    let (curves, corrupt) = clipgan::plot::load_run_curves(&broken, &[]).unwrap();
    assert_eq!(corrupt, 0);
    let g = curves.iter().find(|c| c.tag == "loss/g_total").unwrap();
    assert_eq!(g.step, (1..=40).collect::<Vec<u64>>());
    let kept = clipgan::rundir::one_value_per_step(raw);
    assert_eq!(kept.iter().filter(|e| e.tag == "loss/g_total").count(), 40);
}

#[test]
fn a_rewind_in_the_middle_of_a_block_keeps_the_summaries_true() {
    // 200 points, then a rewind to step 70 and 100 more: the block summaries of what is
    // kept stay, the rest is summarised again, as if the first attempt had not been.
    let d = tempfile::tempdir().unwrap();
    let line = |s: u64, v: f64| format!("{{\"step\":{s},\"wall\":{s},\"tag\":\"a\",\"value\":{v}}}\n");
    let mut text: String = (0..200).map(|s| line(s, s as f64)).collect();
    text.extend((70..170).map(|s| line(s, -(s as f64))));
    std::fs::write(d.path().join("metrics.jsonl"), text).unwrap();
    let mut run = RunData::new(d.path());
    run.poll().unwrap();
    let s = &run.tags["a"];
    assert_eq!(s.steps, (0..170).map(|s| s as f64).collect::<Vec<_>>());
    assert_eq!(s.values[69..71], [69.0, -70.0]);
    let fresh = clipgan::console::store::Blocks::of(&s.values);
    assert_eq!((&s.raw_blocks.min, &s.raw_blocks.max), (&fresh.min, &fresh.max));
    assert_eq!(s.step_bounds, Some((0.0, 169.0)));
}
