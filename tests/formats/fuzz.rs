//! Property tests over the parsers clipgan owns (issue 13, "keep it that way"): config
//! YAML, metrics and sample-index JSONL, status.json, state.json, AttnGAN pickles,
//! TensorBoard event files (issue 19) and the daemon's socket protocol. Whatever the bytes, each parser returns a value or an error
//! naming the file; none panics, overflows its stack or hangs.
//!
//! CI runs a few dozen cases of each (seconds). A longer campaign by hand:
//! `PROPTEST_CASES=20000 cargo test --release --test formats fuzz::` (figures in
//! docs/reliability.md). A failing case is saved by proptest under
//! `tests/formats/fuzz.proptest-regressions` and replayed first on every run; commit it
//! with the fix.
use clipgan::supervisor::state;
use proptest::prelude::*;
use std::path::{Path, PathBuf};

/// `PROPTEST_CASES` when set, else `ci` cases.
fn cases(ci: u32) -> ProptestConfig {
    let mut c = ProptestConfig::default();
    if std::env::var_os("PROPTEST_CASES").is_none() {
        c.cases = ci;
    }
    c
}

/// Byte strings that look like the format: a valid sample cut, spliced and sprinkled
/// with bytes, or plain noise.
fn mutated(samples: &'static [&'static [u8]]) -> impl Strategy<Value = Vec<u8>> {
    let edit = (any::<prop::sample::Index>(), any::<prop::sample::Index>(), prop::collection::vec(any::<u8>(), 0..8));
    prop_oneof![
        3 => (prop::sample::select(samples), prop::collection::vec(edit, 0..6)).prop_map(|(s, edits)| {
            let mut v = s.to_vec();
            for (at, len, bytes) in edits {
                let start = if v.is_empty() { 0 } else { at.index(v.len()) };
                let end = (start + len.index(4)).min(v.len());
                v.splice(start..end, bytes);
            }
            v
        }),
        1 => prop::collection::vec(any::<u8>(), 0..256),
    ]
}

const CONFIGS: &[&[u8]] = &[
    b"CONFIG_NAME: 'DAMSM'\nDATASET_NAME: 'birds'\nDATA_DIR: '../data/birds'\nTRAIN:\n  FLAG: True\n  BATCH_SIZE: 48\n  SMOOTH:\n    GAMMA1: 4.0\nTEXT:\n  WORDS_NUM: 77\n",
    b"CONFIG_NAME: g\nGAN:\n  GF_DIM: 32\n  R_NUM: [1, {a: 2}]\nCLIPGAN:\n  EVAL:\n    PASSES: 1\n",
    b"TRAIN: &a {FLAG: false}\nGAN: *a\n",
];

const METRICS: &[&[u8]] = &[
    b"{\"step\":1,\"epoch\":0,\"wall\":1.5,\"tag\":\"loss/d\",\"value\":0.25}\n{\"step\":2,\"epoch\":0,\"wall\":2,\"tag\":\"t\",\"value\":\"NaN\"}\n",
    b"{\"step\":1,\"epoch\":0,\"wall\":1,\"tag\":\"t\",\"value\":1.7e308}\n{\"step\":2,\"epoch\":0,\"wall\":2,\"tag\":\"t\",\"value\":-1e308}\n",
];

const STATUS: &[&[u8]] = &[
    b"{\"state\":\"running\",\"pid\":12,\"step\":5,\"total_steps\":100,\"epoch\":0,\"message\":\"\",\"updated\":1.0}",
    b"{\"state\":\"finished\"}",
];

/// Protocol-2 pickles of the shapes AttnGAN's files have (list of str, list of int, the
/// captions' 4-tuple), written by Python's pickle.
const PICKLES: &[&[u8]] = &[
    b"\x80\x02]q\x00(X\x03\x00\x00\x00a/bq\x01X\x03\x00\x00\x00c/dq\x02e.",
    b"\x80\x02]q\x00(K\x01K\x02M\xe8\x03e.",
    b"\x80\x02(]q\x00]q\x01(K\x01K\x02ea]q\x02}q\x03X\x01\x00\x00\x00aq\x04K\x01stq\x05.",
];

fn write(dir: &Path, name: &str, bytes: &[u8]) -> PathBuf {
    let p = dir.join(name);
    std::fs::write(&p, bytes).unwrap();
    p
}

/// Valid TensorBoard event files: what the jobs' writer writes (a file_version event and
/// simple_value scalars), plus float and double scalar tensors and an image.
fn event_files() -> &'static [&'static [u8]] {
    use clipgan::rundir::tfevents::*;
    use prost::Message;
    static FILES: std::sync::OnceLock<Vec<&'static [u8]>> = std::sync::OnceLock::new();
    FILES.get_or_init(|| {
        let mut out = Vec::new();
        let mut one = Vec::new();
        let ev = |step, value| Event {
            wall_time: 1.5 + step as f64,
            step,
            what: Some(What::Summary(Summary { value: vec![SummaryValue { tag: "loss/g".into(), metadata: None, value: Some(value) }] })),
        };
        frame_record(&Event { wall_time: 1.0, step: 0, what: Some(What::FileVersion("brain.Event:2".into())) }.encode_to_vec(), &mut one);
        for s in 0..4 {
            frame_record(&ev(s, Value::SimpleValue(s as f32 * 0.5)).encode_to_vec(), &mut one);
        }
        out.push(&*one.leak());
        let mut two = Vec::new();
        let t = |dtype, f: Vec<f32>, d: Vec<f64>| TensorProto {
            dtype,
            tensor_shape: Some(TensorShape { dim: vec![] }),
            tensor_content: vec![],
            float_val: f,
            double_val: d,
        };
        frame_record(&ev(1, Value::Tensor(t(DT_FLOAT, vec![1.5], vec![]))).encode_to_vec(), &mut two);
        frame_record(&ev(2, Value::Tensor(t(DT_DOUBLE, vec![], vec![2.5]))).encode_to_vec(), &mut two);
        frame_record(&ev(3, Value::Image(Image { height: 4, width: 4 })).encode_to_vec(), &mut two);
        out.push(&*two.leak());
        out
    })
}

proptest! {
    #![proptest_config(cases(64))]

    /// Whatever the bytes, the event-file reader returns scalars and counts; reading the
    /// file in two polls (a torn record waiting for its end) gives the same scalars as one.
    #[test]
    fn tensorboard_records_are_read_or_skipped_and_counted(bytes in mutated(event_files()), cut in any::<prop::sample::Index>()) {
        let dir = tempfile::tempdir().unwrap();
        let whole = write(dir.path(), "events.out.tfevents.1.h", &bytes);
        let (once, _) = clipgan::rundir::tfevents::read_event_dir(dir.path()).unwrap();
        let dir2 = tempfile::tempdir().unwrap();
        let at = if bytes.is_empty() { 0 } else { cut.index(bytes.len()) };
        let part = write(dir2.path(), "events.out.tfevents.1.h", &bytes[..at]);
        let mut tail = clipgan::rundir::tfevents::EventsTail::new(dir2.path());
        let mut twice = tail.poll().unwrap();
        std::fs::write(&part, &bytes).unwrap();
        twice.extend(tail.poll().unwrap());
        prop_assert_eq!(format!("{once:?}"), format!("{twice:?}"));
        drop(whole);
    }

    #[test]
    fn config_yaml_gives_a_config_or_errors_naming_the_file(bytes in mutated(CONFIGS)) {
        let text = String::from_utf8_lossy(&bytes);
        match clipgan::config::parse(Path::new("f.yml"), &text, PathBuf::from("/")) {
            Ok(c) => prop_assert!(c.warnings.iter().all(|d| d.file == Path::new("f.yml"))),
            Err(e) => prop_assert!(!e.0.is_empty() && e.0.iter().all(|d| d.to_string().starts_with("f.yml"))),
        }
    }

    #[test]
    fn metrics_and_sample_lines_are_read_or_counted_corrupt(bytes in mutated(METRICS)) {
        let dir = tempfile::tempdir().unwrap();
        write(dir.path(), clipgan::rundir::METRICS_FILE, &bytes);
        let read = clipgan::rundir::read_metrics(dir.path()).unwrap();
        let lines = bytes.split(|b| *b == b'\n').filter(|l| !l.is_empty()).count() as u64;
        prop_assert!(read.events.len() as u64 + read.corrupt <= lines);
        std::fs::create_dir(dir.path().join(clipgan::rundir::SAMPLES_DIR)).unwrap();
        write(dir.path(), clipgan::rundir::SAMPLES_INDEX, &bytes);
        let _ = clipgan::rundir::read_samples(dir.path());
    }

    #[test]
    fn status_json_is_a_status_or_an_error_naming_the_file(bytes in mutated(STATUS)) {
        let dir = tempfile::tempdir().unwrap();
        write(dir.path(), clipgan::rundir::STATUS_FILE, &bytes);
        if let Err(e) = clipgan::rundir::read_status(dir.path()) {
            let msg = format!("{e:#}");
            prop_assert!(msg.contains(clipgan::rundir::STATUS_FILE), "{}", msg);
        }
    }

    #[test]
    fn pickles_are_values_or_errors_naming_the_file(bytes in mutated(PICKLES)) {
        let dir = tempfile::tempdir().unwrap();
        let p = write(dir.path(), "x.pickle", &bytes);
        if let Err(e) = clipgan::data::pickle::read(&p) {
            let msg = format!("{e:#}");
            prop_assert!(msg.contains("x.pickle"), "{}", msg);
        }
    }

    /// Nesting and memo references, the two shapes that once crashed or could explode:
    /// any mix of them is read or refused, within the stack and memory.
    #[test]
    fn nested_pickles_never_overflow(ops in prop::collection::vec(0u8..6, 0..3000)) {
        let mut p = b"\x80\x02]".to_vec();
        let mut memo = 0u8;
        for op in ops {
            match op {
                0 => p.extend(b"(]"),
                1 => p.push(b'e'),
                2 => p.extend(b"K\x01a"),
                3 => { p.extend([b'q', memo]); memo = memo.wrapping_add(1); }
                4 => p.extend([b'h', memo.saturating_sub(1)]),
                _ => p.push(b'a'),
            }
        }
        p.push(b'.');
        let dir = tempfile::tempdir().unwrap();
        let path = write(dir.path(), "n.pickle", &p);
        if let Err(e) = clipgan::data::pickle::read(&path) {
            let msg = format!("{e:#}");
            prop_assert!(msg.contains("n.pickle"), "{}", msg);
        }
    }
}

/// A state file as the daemon writes it, with two tasks (one waiting for the other).
fn valid_state() -> Vec<u8> {
    let home = tempfile::tempdir().unwrap();
    let paths = clipgan::supervisor::Paths::for_home(home.path());
    std::fs::create_dir_all(&paths.state_dir).unwrap();
    let mut core = clipgan::supervisor::core::Core::open(paths.clone(), state::atomic_writer(), PathBuf::from("clipgan")).unwrap();
    use clipgan::supervisor::protocol::{AddTask, Request};
    for after in [vec![], vec![1]] {
        core.handle(Request::Add(AddTask { job: Some(clipgan::rundir::JobKind::FakeRun), held: true, after, ..Default::default() }));
    }
    core.commit();
    std::fs::read(&paths.state).unwrap()
}

proptest! {
    #![proptest_config(cases(64))]

    /// Whatever is loaded is consistent (ids unique, next_id above them, dependencies
    /// exist); anything else is an error naming the file, which is left as it was.
    #[test]
    fn state_json_loads_consistent_or_is_refused_untouched(edits in prop::collection::vec((any::<prop::sample::Index>(), 0u8..3, any::<u8>()), 0..6)) {
        let mut bytes = valid_state();
        for (at, kind, b) in edits {
            let i = at.index(bytes.len());
            match kind {
                0 => bytes[i] = b,
                1 => { bytes.remove(i); }
                _ => bytes.insert(i, if b % 2 == 0 { b'0' + b % 10 } else { b }),
            }
        }
        let dir = tempfile::tempdir().unwrap();
        let p = write(dir.path(), "state.json", &bytes);
        match state::load(&p) {
            Ok(s) => {
                let ids: std::collections::HashSet<u64> = s.tasks.iter().map(|t| t.id).collect();
                prop_assert_eq!(ids.len(), s.tasks.len());
                prop_assert!(s.tasks.iter().all(|t| t.id < s.next_id));
                prop_assert!(s.tasks.iter().all(|t| t.after.iter().chain(&t.after_any).all(|d| ids.contains(d) && *d != t.id)));
            }
            Err(e) => {
                let msg = format!("{e:#}");
            prop_assert!(msg.contains("state.json"), "{}", msg);
                prop_assert_eq!(std::fs::read(&p).unwrap(), bytes);
            }
        }
    }
}
