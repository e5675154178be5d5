//! The reading side of the run folder: tolerant, incremental readers for the JSON-lines
//! files (used by the console, `clipgan plot`, the daemon and the tests), the status and
//! which file holds the config. Logs are read with `rundir::logs`.
use super::format::{
    MetricEvent, SampleEvent, Status, CONFIG_FILE, CONFIG_SNAPSHOT_FILE, METRICS_FILE, RESULTS_FILE, SAMPLES_INDEX, STATUS_FILE,
};
use anyhow::{Context, Result};
use serde::de::DeserializeOwned;
use std::io::{Read, Seek, SeekFrom};
use std::marker::PhantomData;
use std::path::{Path, PathBuf};

/// Follows a JSON-lines file that a worker appends to.
///
/// Each [`poll`](Self::poll) returns the records of the lines completed since the last
/// call. A last line without its newline (a write in progress, or a worker killed
/// mid-line) is held back until it is completed; lines that don't parse are skipped and
/// counted in [`corrupt`](Self::corrupt). If the file shrinks (replaced or truncated),
/// reading restarts from its beginning and [`resets`](Self::resets) counts it.
pub struct JsonlTail<T> {
    path: PathBuf,
    offset: u64,
    partial: Vec<u8>,
    /// Lines that were not valid records, so far.
    pub corrupt: u64,
    /// Times the file was found shorter than already read.
    pub resets: u64,
    _record: PhantomData<fn() -> T>,
}

impl<T: DeserializeOwned> JsonlTail<T> {
    pub fn new(path: &Path) -> Self {
        JsonlTail { path: path.to_path_buf(), offset: 0, partial: Vec::new(), corrupt: 0, resets: 0, _record: PhantomData }
    }

    pub fn path(&self) -> &Path {
        &self.path
    }

    /// Bytes consumed so far (whole lines only).
    pub fn offset(&self) -> u64 {
        self.offset
    }

    /// New complete records. A missing file is not an error (the worker may not have
    /// written yet): it yields nothing.
    pub fn poll(&mut self) -> std::io::Result<Vec<T>> {
        let mut out = Vec::new();
        self.poll_into(&mut out)?;
        Ok(out)
    }

    /// Like [`poll`](Self::poll), appending to `out`; returns how many were added.
    pub fn poll_into(&mut self, out: &mut Vec<T>) -> std::io::Result<usize> {
        let mut f = match std::fs::File::open(&self.path) {
            Ok(f) => f,
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => return Ok(0),
            Err(e) => return Err(e),
        };
        let len = f.metadata()?.len();
        let read_from = self.offset + self.partial.len() as u64;
        if len < read_from {
            self.offset = 0;
            self.partial.clear();
            self.resets += 1;
        }
        let start = self.offset + self.partial.len() as u64;
        if len == start {
            return Ok(0);
        }
        f.seek(SeekFrom::Start(start))?;
        let mut buf = std::mem::take(&mut self.partial);
        buf.reserve((len - start) as usize);
        f.take(len - start).read_to_end(&mut buf)?;
        let complete = match buf.iter().rposition(|&b| b == b'\n') {
            Some(i) => i + 1,
            None => {
                self.partial = buf;
                return Ok(0);
            }
        };
        let before = out.len();
        for line in buf[..complete].split(|&b| b == b'\n') {
            if line.iter().all(u8::is_ascii_whitespace) {
                continue;
            }
            match serde_json::from_slice::<T>(line) {
                Ok(r) => out.push(r),
                Err(_) => self.corrupt += 1,
            }
        }
        self.offset += complete as u64;
        self.partial = buf[complete..].to_vec();
        Ok(out.len() - before)
    }

    /// Whether a torn (newline-less) last line is being held back.
    pub fn has_partial_line(&self) -> bool {
        !self.partial.is_empty()
    }
}

pub type MetricsTail = JsonlTail<MetricEvent>;
pub type SamplesTail = JsonlTail<SampleEvent>;

/// What [`read_metrics`] found.
#[derive(Debug, Default)]
pub struct MetricsRead {
    pub events: Vec<MetricEvent>,
    /// Lines skipped because they were not valid events.
    pub corrupt: u64,
    /// Whether the file ended in a torn line (not counted as corrupt).
    pub torn_last_line: bool,
}

/// Read a run folder's whole `metrics.jsonl` (missing = empty).
pub fn read_metrics(run_dir: &Path) -> std::io::Result<MetricsRead> {
    let mut tail = MetricsTail::new(&run_dir.join(METRICS_FILE));
    let events = tail.poll()?;
    Ok(MetricsRead { events, corrupt: tail.corrupt, torn_last_line: tail.has_partial_line() })
}

/// One value per step (docs/run-format.md): where an event at `step` cuts a tag's
/// series whose steps so far are `steps` (non-decreasing, as this rule keeps them).
/// `None` when the step comes after the last one (the event is appended); else the
/// length to cut the series to before appending: a resumed run that writes a step at or
/// below the last one replaces the points from that step on, as TensorBoard purges the
/// orphaned events of a restarted run.
pub fn rewind_len<T: PartialOrd + Copy>(steps: &[T], step: T) -> Option<usize> {
    match steps.last() {
        Some(&last) if step <= last => Some(steps.partition_point(|&s| s < step)),
        _ => None,
    }
}

/// Apply [`rewind_len`] to a whole event list, per tag, keeping the order of the events
/// that remain: the events a reader that wants one value per step keeps.
pub fn one_value_per_step(events: Vec<MetricEvent>) -> Vec<MetricEvent> {
    // Per tag, the steps and positions in `events` of the points kept so far.
    let mut gone = vec![false; events.len()];
    {
        let mut kept: std::collections::HashMap<&str, (Vec<u64>, Vec<usize>)> = std::collections::HashMap::new();
        for (i, e) in events.iter().enumerate() {
            let (steps, at) = kept.entry(e.tag.as_str()).or_default();
            if let Some(k) = rewind_len(steps, e.step) {
                for &j in &at[k..] {
                    gone[j] = true;
                }
                steps.truncate(k);
                at.truncate(k);
            }
            steps.push(e.step);
            at.push(i);
        }
    }
    if !gone.contains(&true) {
        return events;
    }
    events.into_iter().zip(gone).filter(|(_, g)| !g).map(|(e, _)| e).collect()
}

/// Read a run folder's sample index (missing = empty); corrupt lines are skipped.
pub fn read_samples(run_dir: &Path) -> std::io::Result<Vec<SampleEvent>> {
    SamplesTail::new(&run_dir.join(SAMPLES_INDEX)).poll()
}

/// A run folder's `status.json`; `Ok(None)` when there is none yet. An unreadable or
/// corrupt file is an error naming it.
pub fn read_status(run_dir: &Path) -> Result<Option<Status>> {
    read_json_file(&run_dir.join(STATUS_FILE), "valid")
}

/// A run folder's `results.json` (an evaluation's results) as JSON; `Ok(None)` when there
/// is none. An unreadable file or one that is not JSON is an error naming it.
pub fn read_results(run_dir: &Path) -> Result<Option<serde_json::Value>> {
    read_json_file(&run_dir.join(RESULTS_FILE), "valid JSON")
}

/// A JSON file of the run folder; `Ok(None)` when it does not exist. Errors name the file
/// ("<path> is not <what>: ...").
fn read_json_file<T: serde::de::DeserializeOwned>(path: &Path, what: &str) -> Result<Option<T>> {
    let bytes = match std::fs::read(path) {
        Ok(b) => b,
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => return Ok(None),
        Err(e) => return Err(e).with_context(|| format!("cannot read {}", path.display())),
    };
    serde_json::from_slice(&bytes)
        .map(Some)
        .with_context(|| format!("{} is not {what}: the file is corrupt or from another program", path.display()))
}

/// The file holding a run's config: the resolved copy the worker wrote (`config.yml`),
/// else the raw file as it was when the run was queued; `None` when there is neither.
pub fn config_file(run_dir: &Path) -> Option<PathBuf> {
    [CONFIG_FILE, CONFIG_SNAPSHOT_FILE].iter().map(|f| run_dir.join(f)).find(|p| p.is_file())
}

/// The run folders under `runs_root` (those with a `run.json`), sorted by name (which
/// starts with the creation time).
pub fn list_run_dirs(runs_root: &Path) -> std::io::Result<Vec<PathBuf>> {
    let mut out = Vec::new();
    let entries = match std::fs::read_dir(runs_root) {
        Ok(e) => e,
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => return Ok(out),
        Err(e) => return Err(e),
    };
    for entry in entries {
        let p = entry?.path();
        if p.join(super::format::MANIFEST_FILE).is_file() {
            out.push(p);
        }
    }
    out.sort();
    Ok(out)
}

/// What kind of run folder [`find_runs`] found.
#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord)]
pub enum RunSource {
    /// A clipgan run folder (`run.json` and/or `metrics.jsonl`).
    Clipgan,
    /// A TensorBoard run: a folder holding `events.out.tfevents.*` files (read-only).
    TensorBoard,
}

/// Whether a folder is a clipgan run folder (it has a `run.json` or a `metrics.jsonl`).
pub fn is_clipgan_run(dir: &Path) -> bool {
    dir.join(super::format::MANIFEST_FILE).is_file() || dir.join(METRICS_FILE).is_file()
}

/// Whether a folder holds TensorBoard event files (`events.out.tfevents.*`).
pub fn has_event_files(dir: &Path) -> bool {
    std::fs::read_dir(dir)
        .is_ok_and(|rd| rd.flatten().any(|e| e.file_name().to_str().is_some_and(super::tfevents::is_event_file_name) && e.path().is_file()))
}

/// How deep [`find_runs`] looks below a root (TensorBoard nests run folders).
pub const FIND_DEPTH: usize = 6;

/// The runs at or below `root`, sorted by path: clipgan run folders (not looked into
/// further) and folders holding TensorBoard event files (one run per folder, as
/// TensorBoard counts them, nested ones included). Hidden folders, symbolic links to
/// folders and unreadable folders are skipped; a missing root gives nothing.
pub fn find_runs(root: &Path) -> Vec<(PathBuf, RunSource)> {
    fn walk(dir: &Path, depth: usize, out: &mut Vec<(PathBuf, RunSource)>) {
        if is_clipgan_run(dir) {
            out.push((dir.to_path_buf(), RunSource::Clipgan));
            return;
        }
        let Ok(rd) = std::fs::read_dir(dir) else { return };
        let mut events = false;
        let mut subdirs = Vec::new();
        for e in rd.flatten() {
            let name = e.file_name();
            let Some(name) = name.to_str() else { continue };
            let Ok(ft) = e.file_type() else { continue };
            if ft.is_dir() && !name.starts_with('.') {
                subdirs.push(e.path());
            } else if super::tfevents::is_event_file_name(name) {
                events = true;
            }
        }
        if events {
            out.push((dir.to_path_buf(), RunSource::TensorBoard));
        }
        if depth < FIND_DEPTH {
            for d in subdirs {
                walk(&d, depth + 1, out);
            }
        }
    }
    let mut out = Vec::new();
    walk(root, 0, &mut out);
    out.sort();
    out
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::rundir::RunState;

    #[test]
    fn read_status_missing_valid_and_corrupt() {
        let d = tempfile::tempdir().unwrap();
        assert_eq!(read_status(d.path()).unwrap(), None);
        let s = Status { step: 7, ..Status::new(RunState::Running) };
        std::fs::write(d.path().join(STATUS_FILE), serde_json::to_vec(&s).unwrap()).unwrap();
        let read = read_status(d.path()).unwrap().unwrap();
        assert_eq!((read.state, read.step), (RunState::Running, 7));
        std::fs::write(d.path().join(STATUS_FILE), b"{\"state\": \"runn").unwrap();
        let e = format!("{:#}", read_status(d.path()).unwrap_err());
        assert!(e.contains(STATUS_FILE) && e.contains("not valid"), "{e}");
    }

    fn ev(tag: &str, step: u64, value: f64) -> MetricEvent {
        MetricEvent { step, epoch: 0, wall: step as f64, tag: tag.into(), value }
    }

    #[test]
    fn rewind_len_cuts_at_the_first_step_not_below() {
        assert_eq!(rewind_len::<u64>(&[], 3), None);
        assert_eq!(rewind_len(&[1u64, 2, 5], 6), None);
        assert_eq!(rewind_len(&[1u64, 2, 5], 5), Some(2));
        assert_eq!(rewind_len(&[1u64, 2, 5], 2), Some(1));
        assert_eq!(rewind_len(&[1u64, 2, 5], 0), Some(0));
        assert_eq!(rewind_len(&[1.0f64, 2.0, 5.0], 3.0), Some(2));
    }

    #[test]
    fn one_value_per_step_keeps_the_resumed_attempt() {
        // Killed after step 4 (checkpoint at 2), resumed at 3; tag b has no rewind.
        let evs = vec![
            ev("a", 1, 1.0),
            ev("b", 1, 9.0),
            ev("a", 2, 2.0),
            ev("a", 3, 3.0),
            ev("a", 4, 4.0),
            ev("a", 3, 30.0),
            ev("b", 2, 8.0),
            ev("a", 4, 40.0),
            ev("a", 5, 50.0),
        ];
        let kept: Vec<(String, u64, f64)> = one_value_per_step(evs).into_iter().map(|e| (e.tag, e.step, e.value)).collect();
        let want = [("a", 1, 1.0), ("b", 1, 9.0), ("a", 2, 2.0), ("a", 3, 30.0), ("b", 2, 8.0), ("a", 4, 40.0), ("a", 5, 50.0)];
        assert_eq!(kept, want.map(|(t, s, v)| (t.to_string(), s, v)));
    }

    #[test]
    fn find_runs_finds_clipgan_and_tensorboard_runs_nested() {
        let d = tempfile::tempdir().unwrap();
        let r = d.path();
        for sub in ["a", "tb/x", "tb/x/inner", "tb/y", ".hidden", "empty/deeper"] {
            std::fs::create_dir_all(r.join(sub)).unwrap();
        }
        std::fs::write(r.join("a/run.json"), "{}").unwrap();
        std::fs::write(r.join("tb/x/events.out.tfevents.1.host"), b"").unwrap();
        std::fs::write(r.join("tb/x/inner/events.out.tfevents.2.host.v2"), b"").unwrap();
        std::fs::write(r.join("tb/y/events.out.tfevents.3.host"), b"").unwrap();
        std::fs::write(r.join(".hidden/events.out.tfevents.4.host"), b"").unwrap();
        let found = find_runs(r);
        let want = [
            ("a", RunSource::Clipgan),
            ("tb/x", RunSource::TensorBoard),
            ("tb/x/inner", RunSource::TensorBoard),
            ("tb/y", RunSource::TensorBoard),
        ];
        assert_eq!(found, want.map(|(p, s)| (r.join(p), s)));
        assert_eq!(find_runs(&r.join("a")), vec![(r.join("a"), RunSource::Clipgan)]);
        assert!(find_runs(&r.join("missing")).is_empty());
    }

    #[test]
    fn config_file_prefers_the_resolved_copy() {
        let d = tempfile::tempdir().unwrap();
        assert_eq!(config_file(d.path()), None);
        std::fs::write(d.path().join(CONFIG_SNAPSHOT_FILE), "a: 1\n").unwrap();
        assert_eq!(config_file(d.path()), Some(d.path().join(CONFIG_SNAPSHOT_FILE)));
        std::fs::write(d.path().join(CONFIG_FILE), "a: 2\n").unwrap();
        assert_eq!(config_file(d.path()), Some(d.path().join(CONFIG_FILE)));
    }
}
