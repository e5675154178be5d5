//! Metric series per run, kept whole in memory (the curves view decimates what it draws,
//! never the data) and grown by tailing each run's `metrics.jsonl`.
//!
//! A point costs 24 bytes: step, wall time and value as `f64`, in three column vectors
//! (so a chart's x can be either column, relative time being wall minus the run's first
//! wall time, with no copy).
use crate::rundir::{MetricEvent, MetricsTail, METRICS_FILE};
use std::collections::BTreeMap;
use std::path::{Path, PathBuf};

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
    /// the visible range); a resumed run that repeats steps clears it.
    pub steps_sorted: bool,
    pub walls_sorted: bool,
    /// Finite x bounds (step min/max, wall min/max).
    pub step_bounds: Option<(f64, f64)>,
    pub wall_bounds: Option<(f64, f64)>,
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
        if self.values.is_empty() {
            self.steps_sorted = true;
            self.walls_sorted = true;
        } else {
            self.steps_sorted &= self.steps.last().is_some_and(|&p| p <= step);
            self.walls_sorted &= self.walls.last().is_some_and(|&p| p <= wall);
        }
        grow(&mut self.step_bounds, step);
        grow(&mut self.wall_bounds, wall);
        self.steps.push(step);
        self.walls.push(wall);
        self.values.push(e.value);
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
}

fn grow(b: &mut Option<(f64, f64)>, x: f64) {
    if x.is_finite() {
        *b = Some(match *b {
            None => (x, x),
            Some((lo, hi)) => (lo.min(x), hi.max(x)),
        });
    }
}

pub struct RunData {
    pub run_dir: PathBuf,
    tail: MetricsTail,
    pub tags: BTreeMap<String, Series>,
    /// Wall time of the first record (origin of relative time).
    pub first_wall: Option<f64>,
    /// Increased whenever records arrive.
    pub version: u64,
}

impl RunData {
    pub fn new(run_dir: &Path) -> RunData {
        RunData { run_dir: run_dir.to_path_buf(), tail: MetricsTail::new(&run_dir.join(METRICS_FILE)), tags: BTreeMap::new(), first_wall: None, version: 0 }
    }

    /// Read what was appended; returns how many records arrived. A file that was
    /// replaced (shorter than read) is read again from scratch.
    pub fn poll(&mut self) -> std::io::Result<usize> {
        let resets = self.tail.resets;
        let events = self.tail.poll()?;
        if self.tail.resets != resets {
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

    /// Lines of `metrics.jsonl` skipped as corrupt.
    pub fn corrupt(&self) -> u64 {
        self.tail.corrupt
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

/// Per block of [`BLOCK`] consecutive values: the index of the min and max finite value
/// (earliest on ties; `usize::MAX` when none) and of the first non-finite one. Lets
/// [`m4_sorted`] decimate a sorted series touching O(columns x BLOCK + n / BLOCK) points.
#[derive(Clone, Debug, Default)]
pub struct Blocks {
    pub min: Vec<usize>,
    pub max: Vec<usize>,
    pub nonfinite: Vec<usize>,
}

impl Blocks {
    /// Summarise the complete blocks of `ys` not summarised yet.
    pub fn extend(&mut self, ys: &[f64]) {
        let done = self.min.len();
        for b in done..ys.len() / BLOCK {
            let (mut mn, mut mx, mut nf) = (usize::MAX, usize::MAX, usize::MAX);
            for i in b * BLOCK..(b + 1) * BLOCK {
                let y = ys[i];
                if !y.is_finite() {
                    if nf == usize::MAX {
                        nf = i;
                    }
                    continue;
                }
                if mn == usize::MAX || y < ys[mn] {
                    mn = i;
                }
                if mx == usize::MAX || y > ys[mx] {
                    mx = i;
                }
            }
            self.min.push(mn);
            self.max.push(mx);
            self.nonfinite.push(nf);
        }
    }
    pub fn of(ys: &[f64]) -> Blocks {
        let mut b = Blocks::default();
        b.extend(ys);
        b
    }
}

/// M4 decimation of a series whose `xs` are finite and non-decreasing, with the block
/// summary of `ys`: the same result as `plot::series::m4_decimate(.., sorted = true)`
/// (tested against it), without a pass over every visible point.
pub fn m4_sorted(xs: &[f64], ys: &[f64], blocks: &Blocks, x0: f64, x1: f64, columns: usize) -> crate::plot::series::M4 {
    use crate::plot::series::{column_of, M4};
    let n = xs.len().min(ys.len());
    let (xs, ys) = (&xs[..n], &ys[..n]);
    let mut out = M4::default();
    if columns == 0 || n == 0 || x0.is_nan() || x1.is_nan() || x1 < x0 {
        return out;
    }
    let lo = xs.partition_point(|&x| x < x0);
    let hi = xs.partition_point(|&x| x <= x1);
    let mut idx: Vec<usize> = Vec::with_capacity(columns * 4 + 2);
    idx.extend((0..lo).rev().find(|&i| ys[i].is_finite()));
    let mut a = lo;
    while a < hi {
        let c = column_of(xs[a], x0, x1, columns);
        // The end of column c: the first index whose column is past it.
        let b = a + xs[a..hi].partition_point(|&x| column_of(x, x0, x1, columns) <= c);
        let (mut first, mut last, mut mn, mut mx, mut nf) = (usize::MAX, usize::MAX, usize::MAX, usize::MAX, usize::MAX);
        let mut visit = |i: usize| {
            let y = ys[i];
            if !y.is_finite() {
                if nf == usize::MAX {
                    nf = i;
                }
                return;
            }
            if first == usize::MAX {
                first = i;
            }
            last = i;
            if mn == usize::MAX || y < ys[mn] {
                mn = i;
            }
            if mx == usize::MAX || y > ys[mx] {
                mx = i;
            }
        };
        let mut i = a;
        while i < b {
            let blk = i / BLOCK;
            if i % BLOCK == 0 && i + BLOCK <= b && blk < blocks.min.len() {
                // A whole summarised block inside the column.
                if blocks.nonfinite[blk] != usize::MAX {
                    visit(blocks.nonfinite[blk]);
                }
                for j in [blocks.min[blk], blocks.max[blk]] {
                    if j != usize::MAX {
                        visit(j);
                    }
                }
                i += BLOCK;
            } else {
                visit(i);
                i += 1;
            }
        }
        // First and last finite points: the block shortcut may have skipped them.
        if first != usize::MAX {
            first = (a..b).find(|&k| ys[k].is_finite()).unwrap_or(first);
            last = (a..b).rev().find(|&k| ys[k].is_finite()).unwrap_or(last);
            let mut four = [first, mn, mx, last];
            four.sort_by(|&p, &q| xs[p].total_cmp(&xs[q]).then(p.cmp(&q)));
            for k in four {
                if idx.last() != Some(&k) {
                    idx.push(k);
                }
            }
        }
        if nf != usize::MAX {
            out.non_finite_x.push(xs[nf]);
        }
        a = b;
    }
    idx.extend((hi..n).find(|&i| ys[i].is_finite()));
    out.points = idx.into_iter().map(|i| (xs[i], ys[i])).collect();
    out
}
