//! The run-folder format: writer and reader round trip, torn and corrupt lines, atomic
//! writes that keep the old file on failure.
use clipgan::rundir::{self, MetricsTail, RunDir, RunState, RunWriter, Status};
use clipgan::util::fsx;
use std::io::Write;

#[test]
fn round_trip_metrics_samples_status() {
    let root = tempfile::tempdir().unwrap();
    let dir = RunDir::create(root.path(), "demo run", "train", None).unwrap();
    assert!(dir.id().ends_with("-train-demo_run"), "{}", dir.id());
    let m = dir.manifest().unwrap();
    assert_eq!(m.format, rundir::FORMAT_VERSION);
    assert_eq!(m.job, "train");
    dir.write_config("CONFIG_NAME: x\n").unwrap();

    let mut w = RunWriter::start(dir.clone()).unwrap();
    assert_eq!(dir.status().unwrap().unwrap().state, RunState::Starting);
    w.set_totals(Some(10), Some(1));
    for step in 1..=10u64 {
        w.scalar(step, "loss/g", 1.0 / step as f64).unwrap();
        w.progress(step).unwrap();
    }
    w.scalars(10, &[("loss/d", f64::NAN), ("loss/kl", f64::INFINITY), ("x", f64::NEG_INFINITY)]).unwrap();
    let img = image::RgbImage::from_pixel(4, 2, image::Rgb([255, 0, 0]));
    let png = w.sample(10, "grid/64", &img, &["a red bird".into(), "a blue bird".into()], 1, 2).unwrap();
    assert!(png.starts_with(dir.samples_dir()));
    w.finish(RunState::Finished, "done").unwrap();

    let read = rundir::read_metrics(dir.path()).unwrap();
    assert_eq!(read.corrupt, 0);
    assert!(!read.torn_last_line);
    assert_eq!(read.events.len(), 13);
    assert_eq!(read.events[0].tag, "loss/g");
    assert_eq!(read.events[0].value, 1.0);
    assert_eq!(read.events[9].step, 10);
    assert!(read.events[10].value.is_nan());
    assert_eq!(read.events[11].value, f64::INFINITY);
    assert_eq!(read.events[12].value, f64::NEG_INFINITY);

    let samples = rundir::read_samples(dir.path()).unwrap();
    assert_eq!(samples.len(), 1);
    assert_eq!(samples[0].captions, vec!["a red bird", "a blue bird"]);
    assert_eq!((samples[0].rows, samples[0].cols), (1, 2));
    let back = image::open(dir.file(&samples[0].file)).unwrap().to_rgb8();
    assert_eq!(back, img);

    let st = dir.status().unwrap().unwrap();
    assert_eq!(st.state, RunState::Finished);
    assert_eq!(st.step, 10);
    assert_eq!(st.message, "done");
    assert_eq!(dir.config_text().unwrap(), "CONFIG_NAME: x\n");
    assert_eq!(rundir::list_run_dirs(root.path()).unwrap(), vec![dir.path().to_path_buf()]);
    assert_eq!(RunDir::open(dir.path()).unwrap(), dir);
}

#[test]
fn metrics_are_flushed_within_a_second_without_closing() {
    let root = tempfile::tempdir().unwrap();
    let dir = RunDir::create(root.path(), "x", "fake-run", None).unwrap();
    let w = RunWriter::start(dir.clone()).unwrap();
    w.scalar(1, "a", 0.5).unwrap();
    let mut tail = MetricsTail::new(&dir.file(rundir::METRICS_FILE));
    let deadline = std::time::Instant::now() + std::time::Duration::from_millis(1500);
    let mut got = Vec::new();
    while got.is_empty() && std::time::Instant::now() < deadline {
        got = tail.poll().unwrap();
        std::thread::sleep(std::time::Duration::from_millis(50));
    }
    assert_eq!(got.len(), 1, "the writer must flush at least every second");
    drop(w);
}

#[test]
fn torn_last_line_is_held_back_until_complete() {
    let d = tempfile::tempdir().unwrap();
    let path = d.path().join("metrics.jsonl");
    let mut f = std::fs::File::create(&path).unwrap();
    writeln!(f, r#"{{"step":1,"epoch":0,"wall":1.0,"tag":"a","value":1.0}}"#).unwrap();
    write!(f, r#"{{"step":2,"epoch":0,"wall":2.0,"tag":"a","va"#).unwrap();
    f.flush().unwrap();
    let mut tail = MetricsTail::new(&path);
    let first = tail.poll().unwrap();
    assert_eq!(first.len(), 1);
    assert!(tail.has_partial_line());
    assert_eq!(tail.corrupt, 0, "a torn line is not corrupt (yet)");
    assert!(tail.poll().unwrap().is_empty());
    writeln!(f, r#"lue":2.5}}"#).unwrap();
    f.flush().unwrap();
    let second = tail.poll().unwrap();
    assert_eq!(second.len(), 1);
    assert_eq!((second[0].step, second[0].value), (2, 2.5));
    // One-shot read of a file that ends torn: whole lines only, flagged.
    write!(f, r#"{{"step":3"#).unwrap();
    f.flush().unwrap();
    let read = rundir::read_metrics(d.path()).unwrap();
    assert_eq!(read.events.len(), 2);
    assert!(read.torn_last_line);
    assert_eq!(read.corrupt, 0);
}

#[test]
fn corrupt_lines_are_skipped_and_counted() {
    let d = tempfile::tempdir().unwrap();
    let path = d.path().join("metrics.jsonl");
    std::fs::write(
        &path,
        concat!(
            r#"{"step":1,"wall":1.0,"tag":"a","value":1.0}"#,
            "\n",
            "garbage\n",
            r#"{"step":"x","wall":1.0,"tag":"a","value":1.0}"#,
            "\n",
            "\n",
            "\u{0}\u{0}\u{0}\n",
            r#"{"step":2,"wall":1.0,"tag":"a","value":"NaN"}"#,
            "\n",
            r#"{"step":3,"wall":1.0,"tag":"a","value":"oops"}"#,
            "\n",
        ),
    )
    .unwrap();
    let read = rundir::read_metrics(d.path()).unwrap();
    assert_eq!(read.events.len(), 2);
    assert_eq!(read.corrupt, 4);
    assert!(read.events[1].value.is_nan());
}

#[test]
fn a_shrunk_file_is_read_again_from_the_start() {
    let d = tempfile::tempdir().unwrap();
    let path = d.path().join("m.jsonl");
    std::fs::write(&path, "{\"step\":1,\"wall\":1.0,\"tag\":\"a\",\"value\":1.0}\n{\"step\":2,\"wall\":1.0,\"tag\":\"a\",\"value\":1.0}\n")
        .unwrap();
    let mut tail = MetricsTail::new(&path);
    assert_eq!(tail.poll().unwrap().len(), 2);
    std::fs::write(&path, "{\"step\":9,\"wall\":1.0,\"tag\":\"b\",\"value\":1.0}\n").unwrap();
    let again = tail.poll().unwrap();
    assert_eq!(again.len(), 1);
    assert_eq!(again[0].step, 9);
    assert_eq!(tail.resets, 1);
}

#[test]
fn missing_metrics_file_is_empty_not_an_error() {
    let d = tempfile::tempdir().unwrap();
    assert!(rundir::read_metrics(d.path()).unwrap().events.is_empty());
    assert!(rundir::read_samples(d.path()).unwrap().is_empty());
}

#[test]
fn failed_atomic_write_keeps_the_old_file() {
    let d = tempfile::tempdir().unwrap();
    let path = d.path().join("state.json");
    fsx::atomic_write(&path, b"old").unwrap();
    // A write that fails half-way (as on a full disk).
    let err = fsx::atomic_write_with(&path, |f| {
        f.write_all(b"half")?;
        Err(std::io::Error::new(std::io::ErrorKind::StorageFull, "No space left on device"))
    })
    .unwrap_err();
    assert!(format!("{err:#}").contains("state.json"), "{err:#}");
    assert_eq!(std::fs::read(&path).unwrap(), b"old");
    let leftovers: Vec<_> = std::fs::read_dir(d.path()).unwrap().map(|e| e.unwrap().file_name()).collect();
    assert_eq!(leftovers.len(), 1, "no temporary file is left behind: {leftovers:?}");
}

#[test]
fn corrupt_status_file_is_an_error_naming_it() {
    let root = tempfile::tempdir().unwrap();
    let dir = RunDir::create(root.path(), "x", "train", None).unwrap();
    std::fs::write(dir.file(rundir::STATUS_FILE), "{not json").unwrap();
    let e = format!("{:#}", dir.status().unwrap_err());
    assert!(e.contains("status.json") && e.contains("not valid"), "{e}");
}

#[test]
fn newer_format_is_refused() {
    let root = tempfile::tempdir().unwrap();
    let dir = RunDir::create(root.path(), "x", "train", None).unwrap();
    let mut m = dir.manifest().unwrap();
    m.format = rundir::FORMAT_VERSION + 1;
    dir.write_json_atomic(rundir::MANIFEST_FILE, &m).unwrap();
    let e = RunDir::open(dir.path()).unwrap_err().to_string();
    assert!(e.contains("run format"), "{e}");
}

#[test]
fn run_names_are_unique() {
    let root = tempfile::tempdir().unwrap();
    let a = RunDir::create(root.path(), "same", "train", None).unwrap();
    let b = RunDir::create(root.path(), "same", "train", None).unwrap();
    assert_ne!(a.path(), b.path());
    let s = Status::new(RunState::Running);
    assert_eq!(s.progress(), None);
}
