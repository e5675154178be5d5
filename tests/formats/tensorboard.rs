//! TensorBoard event files both ways, against the real thing (issue 19): the event file a
//! job writes is read back by the `tensorboard` package's own `EventAccumulator` and
//! holds exactly the scalars of `metrics.jsonl` (values as float32, as every
//! SummaryWriter stores them); our reader reads the files that PyTorch's
//! `torch.utils.tensorboard.SummaryWriter` and TensorBoard's own `EventFileWriter` write
//! (simple_value, new-style float tensors, float64 tensors, images skipped), in nested
//! run folders, through `clipgan plot --logdir`. The Python side is the venv's
//! (`scripts/test-deps.sh` installs `tensorboard` from scripts/requirements-test.txt).
use clipgan::rundir::tfevents::read_event_dir;
use std::collections::BTreeMap;
use std::path::{Path, PathBuf};
use std::process::Command;

const BIN: &str = env!("CARGO_BIN_EXE_clipgan");

fn python() -> PathBuf {
    std::env::var_os("VIRTUAL_ENV").map(|v| Path::new(&v).join("bin/python")).unwrap_or_else(|| "python3".into())
}

/// Run a Python snippet with the venv's Python; its stdout. Fails naming what is missing.
fn py(code: &str, args: &[&Path]) -> String {
    let out = Command::new(python()).arg("-c").arg(code).args(args).output().expect("runs the venv's python");
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(
        out.status.success(),
        "python failed (the tensorboard package comes from scripts/requirements-test.txt: source scripts/env.sh && source scripts/test-deps.sh && clipgan_test_deps):\n{err}"
    );
    String::from_utf8(out.stdout).unwrap()
}

/// Each tag's (step, wall time as f64 bits, value as f32 bits): bits, so that no decimal
/// printing or parsing stands between the two sides.
const READ_WITH_EVENT_ACCUMULATOR: &str = r#"
import json, struct, sys
from tensorboard.backend.event_processing.event_accumulator import EventAccumulator
ea = EventAccumulator(sys.argv[1], size_guidance={"scalars": 0})
ea.Reload()
bits = lambda fmt, ifmt, x: struct.unpack(ifmt, struct.pack(fmt, x))[0]
print(json.dumps({t: [[e.step, bits("<d", "<Q", e.wall_time), bits("<f", "<I", e.value)] for e in ea.Scalars(t)] for t in ea.Tags()["scalars"]}))
"#;

type Points = BTreeMap<String, Vec<(u64, u64, u32)>>;

#[test]
fn event_accumulator_reads_back_exactly_the_scalars_of_metrics_jsonl() {
    let home = tempfile::tempdir().unwrap();
    let run = home.path().join("runs/fake");
    let st = Command::new(BIN)
        .env("CLIPGAN_HOME", home.path())
        .env_remove("CLIPGAN_TENSORBOARD")
        .args(["fake-run", "--steps", "30", "--step-ms", "0", "--sample-every", "0", "--run-dir", run.to_str().unwrap()])
        .output()
        .unwrap()
        .status;
    assert!(st.success());
    let mut want: Points = BTreeMap::new();
    for e in clipgan::rundir::read_metrics(&run).unwrap().events {
        // TensorBoard keeps scalars as float32 (simple_value).
        want.entry(e.tag).or_default().push((e.step, e.wall.to_bits(), (e.value as f32).to_bits()));
    }
    assert_eq!(want.len(), 5, "{want:?}");
    let got: Points = serde_json::from_str(&py(READ_WITH_EVENT_ACCUMULATOR, &[&run])).unwrap();
    assert_eq!(got.keys().collect::<Vec<_>>(), want.keys().collect::<Vec<_>>());
    for (tag, w) in &want {
        let g = &got[tag];
        let first_diff = g.iter().zip(w).position(|(a, b)| a != b);
        assert!(
            g.len() == w.len() && first_diff.is_none(),
            "{tag}: {} vs {} points, first difference at {first_diff:?}: {:?} vs {:?}",
            g.len(),
            w.len(),
            first_diff.map(|i| g[i]),
            first_diff.map(|i| w[i])
        );
    }
    // Our own reader agrees, with the exact float32 values.
    let (ours, skipped) = read_event_dir(&run).unwrap();
    assert_eq!(skipped.corrupt, 0);
    assert_eq!(ours.len(), want.values().map(Vec::len).sum::<usize>());

    // Turned off for every job by the environment: no event file.
    let off = home.path().join("runs/off");
    let st = Command::new(BIN)
        .env("CLIPGAN_HOME", home.path())
        .env("CLIPGAN_TENSORBOARD", "0")
        .args(["fake-run", "--steps", "5", "--step-ms", "0", "--sample-every", "0", "--run-dir", off.to_str().unwrap()])
        .output()
        .unwrap()
        .status;
    assert!(st.success());
    assert!(!clipgan::rundir::has_event_files(&off));
    assert_eq!(clipgan::rundir::read_metrics(&off).unwrap().events.len(), 5 * 4 + 1);
}

/// PyTorch's SummaryWriter (old- and new-style scalars, add_scalars' sub-runs, an image)
/// and TensorBoard's own EventFileWriter (a float64 scalar tensor, as TF2 writes them).
const WRITE_WITH_PYTORCH: &str = r#"
import sys, numpy as np
from torch.utils.tensorboard import SummaryWriter
from tensorboard.compat.proto import event_pb2, summary_pb2, tensor_pb2, tensor_shape_pb2
from tensorboard.summary.writer.event_file_writer import EventFileWriter
root = sys.argv[1]
w = SummaryWriter(root + "/2026-12-01_seedhost")
for s in range(20):
    w.add_scalar("loss/g", 1.0 / (s + 1), s, walltime=1000.0 + s)
    w.add_scalar("lr", 0.5 * s, s, walltime=1000.0 + s, new_style=True)
w.add_scalars("acc", {"train": 0.75, "val": 0.5}, 3, walltime=2000.0)
w.add_image("sample", np.zeros((3, 4, 4), dtype=np.uint8), 5, walltime=3000.0)
w.close()
f = EventFileWriter(root + "/tf2/run")
for s in range(3):
    t = tensor_pb2.TensorProto(dtype=2, tensor_shape=tensor_shape_pb2.TensorShapeProto(), double_val=[0.1 * s])
    md = summary_pb2.SummaryMetadata(plugin_data=summary_pb2.SummaryMetadata.PluginData(plugin_name="scalars"))
    v = summary_pb2.Summary.Value(tag="metric/double", tensor=t, metadata=md)
    f.add_event(event_pb2.Event(wall_time=4000.0 + s, step=s, summary=summary_pb2.Summary(value=[v])))
f.close()
"#;

#[test]
fn our_reader_reads_what_pytorch_and_tensorboard_write() {
    let d = tempfile::tempdir().unwrap();
    py(WRITE_WITH_PYTORCH, &[d.path()]);
    let found: Vec<PathBuf> = clipgan::rundir::find_runs(d.path()).into_iter().map(|(p, _)| p).collect();
    let rel: Vec<String> = found.iter().map(|p| p.strip_prefix(d.path()).unwrap().display().to_string()).collect();
    assert_eq!(rel, ["2026-12-01_seedhost", "2026-12-01_seedhost/acc_train", "2026-12-01_seedhost/acc_val", "tf2/run"]);

    let (main, skipped) = read_event_dir(&d.path().join("2026-12-01_seedhost")).unwrap();
    assert_eq!((skipped.corrupt, skipped.images), (0, 1));
    let g: Vec<(u64, f64, f64)> = main.iter().filter(|e| e.tag == "loss/g").map(|e| (e.step, e.wall, e.value)).collect();
    assert_eq!(g, (0..20).map(|s| (s, 1000.0 + s as f64, (1.0 / (s as f64 + 1.0)) as f32 as f64)).collect::<Vec<_>>());
    let lr: Vec<(u64, f64)> = main.iter().filter(|e| e.tag == "lr").map(|e| (e.step, e.value)).collect();
    assert_eq!(lr, (0..20).map(|s| (s, 0.5 * s as f64)).collect::<Vec<_>>());
    let (val, _) = read_event_dir(&d.path().join("2026-12-01_seedhost/acc_val")).unwrap();
    assert_eq!(val.iter().map(|e| (e.tag.as_str(), e.step, e.value)).collect::<Vec<_>>(), [("acc", 3, 0.5)]);
    let (tf2, _) = read_event_dir(&d.path().join("tf2/run")).unwrap();
    assert_eq!(tf2.iter().map(|e| (e.step, e.wall, e.value)).collect::<Vec<_>>(), [(0, 4000.0, 0.0), (1, 4001.0, 0.1), (2, 4002.0, 0.2)]);

    // clipgan plot takes the folder with --logdir: every run's curve in one CSV.
    let csv = d.path().join("out.csv");
    let out = Command::new(BIN)
        .args(["plot", "--logdir", d.path().to_str().unwrap(), "--tag", "loss/g", "--tag", "metric/double", "--out", csv.to_str().unwrap()])
        .output()
        .unwrap();
    assert!(out.status.success(), "{}", String::from_utf8_lossy(&out.stderr));
    let curves = clipgan::plot::csv::read_csv(std::io::BufReader::new(std::fs::File::open(&csv).unwrap()), "out.csv").unwrap();
    let names: Vec<(&str, &str, usize)> = curves.iter().map(|c| (c.run.as_str(), c.tag.as_str(), c.len())).collect();
    assert_eq!(names, [("2026-12-01_seedhost", "loss/g", 20), ("run", "metric/double", 3)]);
}

#[test]
fn import_tensorboard_makes_run_folders_and_keeps_the_originals() {
    let d = tempfile::tempdir().unwrap();
    let src = d.path().join("tb/seed/finetune");
    std::fs::create_dir_all(&src).unwrap();
    let mut w = clipgan::rundir::tfevents::EventWriter::create(&src, 1000.0, "h").unwrap();
    let evs: Vec<clipgan::rundir::MetricEvent> = (0..10)
        .map(|s| clipgan::rundir::MetricEvent { step: s, epoch: 0, wall: 1000.0 + s as f64, tag: "loss/g".into(), value: s as f64 * 0.25 })
        .collect();
    for e in &evs {
        w.scalar(e).unwrap();
    }
    w.flush().unwrap();
    let before = std::fs::read(w.path()).unwrap();
    let into = d.path().join("runs");
    let out = Command::new(BIN)
        .args(["import", "tensorboard", d.path().join("tb").to_str().unwrap(), "--into", into.to_str().unwrap()])
        .output()
        .unwrap();
    assert!(out.status.success(), "{}", String::from_utf8_lossy(&out.stderr));
    let runs = clipgan::rundir::list_run_dirs(&into).unwrap();
    assert_eq!(runs.len(), 1);
    let run = &runs[0];
    assert!(run.file_name().unwrap().to_str().unwrap().ends_with("-tensorboard-seed_finetune"), "{run:?}");
    assert_eq!(clipgan::rundir::read_metrics(run).unwrap().events, evs);
    let status = clipgan::rundir::read_status(run).unwrap().unwrap();
    assert_eq!((status.state, status.step), (clipgan::rundir::RunState::Finished, 9));
    assert_eq!(std::fs::read(w.path()).unwrap(), before, "the original stays as it was");
    // A folder without event files is an error naming it.
    let out = Command::new(BIN).args(["import", "tensorboard", into.to_str().unwrap()]).output().unwrap();
    assert!(!out.status.success());
    assert!(String::from_utf8_lossy(&out.stderr).contains("no TensorBoard runs"));
}
