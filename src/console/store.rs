//! Metric series per run, kept whole in memory (the curves view decimates what it draws,
//! never the data) and grown by tailing each run's `metrics.jsonl`, or its TensorBoard
//! event files for a TensorBoard run folder (`rundir::tfevents::EventsTail`).
//!
//! A point costs 24 bytes: step, wall time and value as `f64`, in three column vectors
//! (so a chart's x can be either column, relative time being wall minus the run's first
//! wall time, with no copy).
use crate::rundir::tfevents::EventsTail;
use crate::rundir::{MetricEvent, MetricsTail, METRICS_FILE};
use std::collections::BTreeMap;
use std::path::{Path, PathBuf};

pub use super::columns::{column_means, column_means_into, finite_sum, m4_sorted, m4_sorted_in, ColumnSpans};

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum XAxis {
    Step,
    Wall,
    Relative,
}

impl XAxis {
    pub fn next(self) -> XAxis {
        match self {
            XAxis::Step => XAxis::Wall,
            XAxis::Wall => XAxis::Relative,
            XAxis::Relative => XAxis::Step,
        }
    }
    pub fn name(self) -> &'static str {
        match self {
            XAxis::Step => "step",
            XAxis::Wall => "wall time",
            XAxis::Relative => "relative time (s)",
        }
    }
}

#[derive(Clone, Debug, Default)]
pub struct Series {
    pub steps: Vec<f64>,
    pub walls: Vec<f64>,
    pub values: Vec<f64>,
    /// The smoothed values for `smoothed_for` (kept by the app, recomputed when the data
    /// or the smoothing change; empty when smoothing is off).
    pub smoothed: Vec<f64>,
    pub smoothed_for: Option<(u8, u64)>,
    /// Block summaries of `values` and `smoothed` (see [`m4_sorted`]).
    pub raw_blocks: Blocks,
    pub smooth_blocks: Blocks,
    /// Whether steps / wall times never decreased so far (decimation then binary-searches
    /// the visible range). Steps always stay sorted: a resumed run that repeats steps
    /// replaces the points from the repeated step on (one value per step, see
    /// `rundir::rewind_len`), so it stays on the block-summary fast path.
    pub steps_sorted: bool,
    pub walls_sorted: bool,
    /// Finite x bounds (step min/max, wall min/max).
    pub step_bounds: Option<(f64, f64)>,
    pub wall_bounds: Option<(f64, f64)>,
    /// A hash of the steps (see [`Series::steps_key`]).
    steps_hash: u64,
}

impl Series {
    pub fn len(&self) -> usize {
        self.values.len()
    }
    pub fn is_empty(&self) -> bool {
        self.values.is_empty()
    }
    pub fn push(&mut self, e: &MetricEvent) {
        let (step, wall) = (e.step as f64, e.wall);
        if let Some(k) = crate::rundir::rewind_len(&self.steps, step) {
            self.truncate(k);
        }
        if self.values.is_empty() {
            self.steps_sorted = true;
            self.walls_sorted = true;
        } else {
            self.steps_sorted &= self.steps.last().is_some_and(|&p| p <= step);
            self.walls_sorted &= self.walls.last().is_some_and(|&p| p <= wall);
        }
        grow(&mut self.step_bounds, step);
        grow(&mut self.wall_bounds, wall);
        self.steps_hash = hash_step(self.steps_hash, step);
        self.steps.push(step);
        self.walls.push(wall);
        self.values.push(e.value);
    }
    /// Keep the first `k` points (a resumed run rewound to step `steps[k]`): the block
    /// summaries of the points kept stay, the smoothing is recomputed, the bounds and
    /// the wall order are found again over what is kept (rare, so a pass is fine).
    fn truncate(&mut self, k: usize) {
        self.steps.truncate(k);
        self.walls.truncate(k);
        self.values.truncate(k);
        self.raw_blocks.truncate(k / BLOCK);
        self.smoothed.clear();
        self.smooth_blocks = Blocks::default();
        self.smoothed_for = None;
        self.steps_sorted = true;
        self.walls_sorted = self.walls.windows(2).all(|w| w[0] <= w[1]);
        self.step_bounds = None;
        self.wall_bounds = None;
        self.steps_hash = self.steps.iter().fold(0, |h, &x| hash_step(h, x));
        for i in 0..k {
            grow(&mut self.step_bounds, self.steps[i]);
            grow(&mut self.wall_bounds, self.walls[i]);
        }
    }
    pub fn sorted(&self, axis: XAxis) -> bool {
        match axis {
            XAxis::Step => self.steps_sorted,
            _ => self.walls_sorted,
        }
    }
    pub fn bounds(&self, axis: XAxis) -> Option<(f64, f64)> {
        match axis {
            XAxis::Step => self.step_bounds,
            _ => self.wall_bounds,
        }
    }
    /// The x column for an axis; relative time uses the wall column with an offset.
    pub fn xs(&self, axis: XAxis) -> &[f64] {
        match axis {
            XAxis::Step => &self.steps,
            XAxis::Wall | XAxis::Relative => &self.walls,
        }
    }
    pub fn last(&self) -> Option<f64> {
        self.values.last().copied()
    }
    /// The number of points and a 64-bit hash of every step: equal for series logged at
    /// the same steps (a sweep's members, as a rule), which then share their column
    /// spans on the step axis (found once, not once per run). Kept up to date by
    /// [`Series::push`] at a multiply or two per point.
    pub fn steps_key(&self) -> (usize, u64) {
        (self.steps.len(), self.steps_hash)
    }
}

/// The steps hash grown by one step (a multiply-xorshift mix of the running hash and the
/// step's bits, so that order and every bit count).
fn hash_step(h: u64, step: f64) -> u64 {
    let mut z = (h ^ step.to_bits()).wrapping_add(0x9E37_79B9_7F4A_7C15);
    z = (z ^ (z >> 30)).wrapping_mul(0xBF58_476D_1CE4_E5B9);
    z = (z ^ (z >> 27)).wrapping_mul(0x94D0_49BB_1331_11EB);
    z ^ (z >> 31)
}

fn grow(b: &mut Option<(f64, f64)>, x: f64) {
    if x.is_finite() {
        *b = Some(match *b {
            None => (x, x),
            Some((lo, hi)) => (lo.min(x), hi.max(x)),
        });
    }
}

/// Where a run's scalars come from.
enum Source {
    Jsonl(MetricsTail),
    Events(EventsTail),
}

pub struct RunData {
    pub run_dir: PathBuf,
    tail: Source,
    pub tags: BTreeMap<String, Series>,
    /// Wall time of the first record (origin of relative time).
    pub first_wall: Option<f64>,
    /// Increased whenever records arrive.
    pub version: u64,
}

impl RunData {
    /// A clipgan run folder's `metrics.jsonl`; a folder that is no clipgan run folder but
    /// holds event files is read as a TensorBoard run.
    pub fn new(run_dir: &Path) -> RunData {
        let tail = if !crate::rundir::is_clipgan_run(run_dir) && crate::rundir::has_event_files(run_dir) {
            Source::Events(EventsTail::new(run_dir))
        } else {
            Source::Jsonl(MetricsTail::new(&run_dir.join(METRICS_FILE)))
        };
        RunData { run_dir: run_dir.to_path_buf(), tail, tags: BTreeMap::new(), first_wall: None, version: 0 }
    }

    /// Read what was appended; returns how many records arrived. A file that was
    /// replaced (shorter than read) is read again from scratch.
    pub fn poll(&mut self) -> std::io::Result<usize> {
        let (events, reset) = match &mut self.tail {
            Source::Jsonl(t) => {
                let resets = t.resets;
                let events = t.poll()?;
                (events, t.resets != resets)
            }
            Source::Events(t) => {
                let resets = t.resets;
                let events = t.poll()?;
                (events, t.resets != resets)
            }
        };
        if reset {
            self.tags.clear();
            self.first_wall = None;
            self.version += 1;
        }
        self.ingest(&events);
        Ok(events.len())
    }

    pub fn ingest(&mut self, events: &[MetricEvent]) {
        if events.is_empty() {
            return;
        }
        for e in events {
            if self.first_wall.is_none() {
                self.first_wall = Some(e.wall);
            }
            match self.tags.get_mut(&e.tag) {
                Some(s) => s.push(e),
                None => {
                    let mut s = Series::default();
                    s.push(e);
                    self.tags.insert(e.tag.clone(), s);
                }
            }
        }
        for s in self.tags.values_mut() {
            s.raw_blocks.extend(&s.values);
        }
        self.version += 1;
    }

    /// Lines of `metrics.jsonl` (records of event files) skipped as corrupt.
    pub fn corrupt(&self) -> u64 {
        match &self.tail {
            Source::Jsonl(t) => t.corrupt,
            Source::Events(t) => t.skipped.corrupt,
        }
    }

    /// Whether the scalars come from TensorBoard event files.
    pub fn is_tensorboard(&self) -> bool {
        matches!(self.tail, Source::Events(_))
    }

    pub fn points(&self) -> usize {
        self.tags.values().map(Series::len).sum()
    }

    /// Latest value of each tag.
    pub fn latest(&self) -> impl Iterator<Item = (&str, f64)> {
        self.tags.iter().filter_map(|(t, s)| s.last().map(|v| (t.as_str(), v)))
    }

    /// The x offset of an axis (relative time starts at the run's first record).
    pub fn x_origin(&self, axis: XAxis) -> f64 {
        match axis {
            XAxis::Relative => self.first_wall.unwrap_or(0.0),
            _ => 0.0,
        }
    }
}

/// Run data by run folder.
#[derive(Default)]
pub struct Store {
    pub runs: BTreeMap<PathBuf, RunData>,
}

impl Store {
    pub fn track(&mut self, run_dir: &Path) {
        if !self.runs.contains_key(run_dir) {
            self.runs.insert(run_dir.to_path_buf(), RunData::new(run_dir));
        }
    }

    pub fn get(&self, run_dir: &Path) -> Option<&RunData> {
        self.runs.get(run_dir)
    }

    /// Poll every tracked run; returns whether anything arrived. Unreadable files are
    /// skipped (tried again next time).
    pub fn poll(&mut self) -> bool {
        let mut any = false;
        for r in self.runs.values_mut() {
            any |= r.poll().map(|n| n > 0).unwrap_or(false);
        }
        any
    }

    /// Forget runs no longer wanted.
    pub fn retain(&mut self, keep: impl Fn(&Path) -> bool) {
        self.runs.retain(|p, _| keep(p));
    }
}

/// Points per block of a [`Blocks`] summary.
pub const BLOCK: usize = 64;

/// Per block of [`BLOCK`] consecutive values: the index and value of the min and max
/// finite value (earliest on ties; index `usize::MAX` when none) and of the first
/// non-finite one. The values sit next to the indices so that decimating reads the
/// summary sequentially: looking each block's min and max up in the data instead cost
/// two cache misses per block (most of a frame's time with 8 runs x 1M points). With it
/// [`m4_sorted`] decimates a sorted series touching O(columns x BLOCK + n / BLOCK) points.
#[derive(Debug, Default, Clone)]
pub struct Blocks {
    pub min: Vec<usize>,
    pub max: Vec<usize>,
    pub min_v: Vec<f64>,
    pub max_v: Vec<f64>,
    pub nonfinite: Vec<usize>,
    /// Sum and count of the finite values (column means of a band without a pass over
    /// every point: [`column_means`]).
    pub sum: Vec<f64>,
    pub count: Vec<u8>,
    /// The same per [`PART`] values (a block's cut at a column edge costs a pass over at
    /// most half a part, not half a block: fewer cache lines where a frame misses most).
    pub part_sum: Vec<f64>,
    pub part_count: Vec<u8>,
}

/// Values per part of a block (see [`Blocks::part_sum`]).
pub const PART: usize = 16;

impl Blocks {
    /// Summarise the complete blocks of `ys` not summarised yet.
    pub fn extend(&mut self, ys: &[f64]) {
        let done = self.min.len();
        for b in done..ys.len() / BLOCK {
            let (mut mn, mut mx, mut nf) = (usize::MAX, usize::MAX, usize::MAX);
            let (mut mn_v, mut mx_v) = (f64::NAN, f64::NAN);
            let (mut sum, mut count) = (0.0, 0u8);
            let (mut part_sum, mut part_count) = (0.0, 0u8);
            for i in b * BLOCK..(b + 1) * BLOCK {
                let y = ys[i];
                if y.is_finite() {
                    sum += y;
                    count += 1;
                    part_sum += y;
                    part_count += 1;
                    if mn == usize::MAX || y < mn_v {
                        (mn, mn_v) = (i, y);
                    }
                    if mx == usize::MAX || y > mx_v {
                        (mx, mx_v) = (i, y);
                    }
                } else if nf == usize::MAX {
                    nf = i;
                }
                if i % PART == PART - 1 {
                    self.part_sum.push(part_sum);
                    self.part_count.push(part_count);
                    (part_sum, part_count) = (0.0, 0);
                }
            }
            self.min.push(mn);
            self.max.push(mx);
            self.min_v.push(mn_v);
            self.max_v.push(mx_v);
            self.nonfinite.push(nf);
            self.sum.push(sum);
            self.count.push(count);
        }
    }
    /// Keep the summaries of the first `blocks` blocks.
    pub fn truncate(&mut self, blocks: usize) {
        self.min.truncate(blocks);
        self.max.truncate(blocks);
        self.min_v.truncate(blocks);
        self.max_v.truncate(blocks);
        self.nonfinite.truncate(blocks);
        self.sum.truncate(blocks);
        self.count.truncate(blocks);
        self.part_sum.truncate(blocks * (BLOCK / PART));
        self.part_count.truncate(blocks * (BLOCK / PART));
    }
    pub fn of(ys: &[f64]) -> Blocks {
        let mut b = Blocks::default();
        b.extend(ys);
        b
    }
    /// Bytes held (capacity), for the memory figure of `clipgan bench console`.
    pub fn bytes(&self) -> usize {
        (self.min.capacity() + self.max.capacity() + self.nonfinite.capacity()) * std::mem::size_of::<usize>()
            + (self.min_v.capacity() + self.max_v.capacity() + self.sum.capacity() + self.part_sum.capacity()) * 8
            + self.count.capacity()
            + self.part_count.capacity()
    }
}
