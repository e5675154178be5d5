//! Curves for the console and `clipgan plot`: decimation and smoothing (`series`),
//! chart export to PNG/SVG with plotters (`export`) and CSV (`csv`).
pub mod csv;
pub mod export;
pub mod series;

use crate::rundir;
use anyhow::{Context, Result};
use std::path::Path;

/// One metric tag of one run, in the order the worker wrote it.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct Curve {
    /// The run's name (its folder name).
    pub run: String,
    pub tag: String,
    pub step: Vec<u64>,
    /// UNIX seconds.
    pub wall: Vec<f64>,
    pub value: Vec<f64>,
    /// The run's first event time (over all its tags): the origin of relative time.
    pub t0: f64,
}

/// What the x axis shows.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, clap::ValueEnum)]
pub enum XAxis {
    #[default]
    Step,
    /// Wall-clock time (UNIX seconds, drawn as UTC time of day).
    Wall,
    /// Seconds since the run's first event.
    Rel,
}

impl XAxis {
    pub fn label(self) -> &'static str {
        match self {
            XAxis::Step => "step",
            XAxis::Wall => "wall time (UTC)",
            XAxis::Rel => "time since start (s)",
        }
    }
}

impl Curve {
    pub fn len(&self) -> usize {
        self.value.len()
    }

    pub fn is_empty(&self) -> bool {
        self.value.is_empty()
    }

    /// The x values for `axis`.
    pub fn xs(&self, axis: XAxis) -> Vec<f64> {
        match axis {
            XAxis::Step => self.step.iter().map(|&s| s as f64).collect(),
            XAxis::Wall => self.wall.clone(),
            XAxis::Rel => self.wall.iter().map(|&w| w - self.t0).collect(),
        }
    }
}

/// The curves of a run folder's `metrics.jsonl` for `tags` (all tags when empty), in
/// the order of `tags` (else of first appearance), and how many corrupt lines were
/// skipped. A tag the run never wrote gives no curve. One value per step: where a
/// resumed run repeats steps, its later events replace the earlier ones from there on.
pub fn load_run_curves(run_dir: &Path, tags: &[String]) -> Result<(Vec<Curve>, u64)> {
    // A folder with a run.json is read only when that file is valid and of a format this
    // clipgan knows (docs/run-format.md); a bare metrics.jsonl is accepted as it is; a
    // folder of TensorBoard event files is read with `rundir::tfevents`.
    if run_dir.join(rundir::MANIFEST_FILE).exists() {
        rundir::RunDir::open(run_dir)?;
    }
    let (events, corrupt) = if !rundir::is_clipgan_run(run_dir) && rundir::has_event_files(run_dir) {
        let (events, skipped) =
            rundir::tfevents::read_event_dir(run_dir).with_context(|| format!("reading the event files of {}", run_dir.display()))?;
        (events, skipped.corrupt)
    } else {
        let read = rundir::read_metrics(run_dir).with_context(|| format!("reading {}", run_dir.join(rundir::METRICS_FILE).display()))?;
        (read.events, read.corrupt)
    };
    let run = run_dir.file_name().map(|n| n.to_string_lossy().into_owned()).unwrap_or_else(|| run_dir.display().to_string());
    let t0 = events.iter().map(|e| e.wall).filter(|w| w.is_finite()).fold(f64::INFINITY, f64::min);
    let t0 = if t0.is_finite() { t0 } else { 0.0 };
    let mut curves: Vec<Curve> = tags.iter().map(|t| Curve { run: run.clone(), tag: t.clone(), t0, ..Curve::default() }).collect();
    for e in events {
        let i = match curves.iter().position(|c| c.tag == e.tag) {
            Some(i) => i,
            None if tags.is_empty() => {
                curves.push(Curve { run: run.clone(), tag: e.tag.clone(), t0, ..Curve::default() });
                curves.len() - 1
            }
            None => continue,
        };
        let c = &mut curves[i];
        // One value per step: a resumed run's repeated steps replace the earlier ones.
        if let Some(k) = rundir::rewind_len(&c.step, e.step) {
            c.step.truncate(k);
            c.wall.truncate(k);
            c.value.truncate(k);
        }
        c.step.push(e.step);
        c.wall.push(e.wall);
        c.value.push(e.value);
    }
    curves.retain(|c| !c.is_empty());
    Ok((curves, corrupt))
}

/// A run argument: a run folder path (clipgan's, or a folder of TensorBoard event
/// files), else a run name under the project's `runs/`.
pub fn resolve_run(arg: &str) -> Result<std::path::PathBuf> {
    let is_run = |p: &Path| rundir::is_clipgan_run(p) || rundir::has_event_files(p);
    let p = Path::new(arg);
    if is_run(p) {
        return Ok(p.to_path_buf());
    }
    let under = crate::home::runs_dir().join(arg);
    if is_run(&under) {
        return Ok(under);
    }
    anyhow::bail!(
        "{arg}: not a run folder (no {}, {} or events.out.tfevents.* file), nor a run in {}",
        rundir::MANIFEST_FILE,
        rundir::METRICS_FILE,
        crate::home::runs_dir().display()
    )
}

/// Distinct, colour-blind-friendly colours (Tableau 10) for runs, by index.
pub const PALETTE: [(u8, u8, u8); 10] = [
    (31, 119, 180),
    (255, 127, 14),
    (44, 160, 44),
    (214, 39, 40),
    (148, 103, 189),
    (140, 86, 75),
    (227, 119, 194),
    (127, 127, 127),
    (188, 189, 34),
    (23, 190, 207),
];

/// The palette colour of the `i`-th series (cycling).
pub fn palette_color(i: usize) -> (u8, u8, u8) {
    PALETTE[i % PALETTE.len()]
}
