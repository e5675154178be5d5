//! The curves view's state and actions, and what its drawing reads: the shown runs and
//! their metric tags, smoothing (debiased EMA or moving average, recomputed when the
//! data or the setting changes), log-y per chart, the x axis, zoom, pan and the cursor;
//! per chart and run the M4 decimation of the visible x range to the chart's columns,
//! cached ([`DecimationCache`]) so an unchanged frame costs no pass over the data; the
//! mean and min-max band of runs of one config (of one combination of a sweep's values,
//! seeds aside, when a sweep is shown: `sweep_curves`), cached like the curves. Drawn by
//! `views::curves`.
use super::app::{moved, App, InputPurpose, Popup};
use super::event::Cmd;
use super::keys::Action;
use super::store::{column_means_into, m4_sorted_in, Blocks, ColumnSpans, Series, XAxis};
use super::sweep_curves::SweepCurves;
use crate::plot::series::m4_decimate;
use crate::supervisor::protocol::TaskView;
use ratatui::style::Color;
use std::cell::RefCell;
use std::collections::{BTreeMap, BTreeSet, HashMap};
use std::path::{Path, PathBuf};
use std::rc::Rc;

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Smoothing {
    Off,
    Ema,
    Moving,
}

pub struct CurvesState {
    pub smoothing: Smoothing,
    /// EMA weight in [0, 0.999].
    pub ema_weight: f64,
    pub window: usize,
    pub log_y: BTreeSet<String>,
    pub x_axis: XAxis,
    /// Visible part of the full x range, as fractions.
    pub zoom: (f64, f64),
    /// Index into [`App::curve_tags`] of the focused chart.
    pub focus: usize,
    /// Cursor position as a fraction of the visible x range.
    pub cursor: Option<f64>,
    pub filter: String,
    /// Runs of one config (same config hash, two or more) drawn as their mean with a
    /// min-max band.
    pub group_mean: bool,
    /// Decimated curves by everything they depend on (filled while drawing).
    pub decimated: DecimationCache,
    /// Group means and bands by everything they depend on (filled while drawing).
    pub bands: BandCache,
    /// A sweep shown as one experiment.
    pub sweep: SweepCurves,
}

impl Default for CurvesState {
    fn default() -> CurvesState {
        CurvesState {
            smoothing: Smoothing::Ema,
            ema_weight: 0.6,
            window: 10,
            log_y: BTreeSet::new(),
            x_axis: XAxis::Step,
            zoom: (0.0, 1.0),
            focus: 0,
            cursor: None,
            filter: String::new(),
            group_mean: false,
            decimated: DecimationCache::default(),
            bands: BandCache::default(),
            sweep: SweepCurves::default(),
        }
    }
}

/// What a decimated curve depends on (so an unchanged chart costs no pass over the data).
#[derive(Clone, Debug, PartialEq, Eq, Hash)]
struct DecimationKey {
    run: PathBuf,
    tag: String,
    version: u64,
    axis: u8,
    x0: u64,
    x1: u64,
    columns: usize,
    smoothing: Option<(u8, u64)>,
}

/// A curve decimated to a chart's columns, in shown x coordinates.
#[derive(Debug, Default)]
pub struct Decimated {
    pub raw: Vec<(f64, f64)>,
    pub smoothed: Vec<(f64, f64)>,
    pub non_finite_x: Vec<f64>,
}

/// The decimated curves the drawing asked for (cleared when it grows large). Drawing
/// only has `&App`, hence the cell.
#[derive(Default)]
pub struct DecimationCache {
    map: RefCell<HashMap<DecimationKey, Rc<Decimated>>>,
}

impl DecimationCache {
    /// The most curves kept before the cache starts over.
    const MAX_CURVES: usize = 512;

    pub fn clear(&self) {
        self.map.borrow_mut().clear();
    }
}

/// What a group's band depends on: the tag, each run's folder and data version, the
/// axis, range, columns and smoothing.
#[derive(Clone, Debug, PartialEq, Eq, Hash)]
struct BandKey {
    tag: String,
    runs: Vec<(PathBuf, u64)>,
    axis: u8,
    x0: u64,
    x1: u64,
    columns: usize,
    smoothing: Option<(u8, u64)>,
}

/// A group's mean, min and max lines, in shown coordinates.
pub type Band = [Vec<(f64, f64)>; 3];

/// What the column spans of a band's run depend on on the step axis: the run's steps
/// (their count and hash, [`Series::steps_key`]), range and columns.
type SpansKey = ((usize, u64), u64, u64, usize);

/// The bands the drawing asked for (cleared when it grows large), and the column spans
/// they were computed from: on the step axis runs logged at the same steps (a sweep's
/// members) share them.
#[derive(Default)]
pub struct BandCache {
    map: RefCell<HashMap<BandKey, Rc<Band>>>,
    spans: RefCell<HashMap<SpansKey, Rc<ColumnSpans>>>,
}

impl BandCache {
    const MAX_BANDS: usize = 512;

    pub fn clear(&self) {
        self.map.borrow_mut().clear();
        self.spans.borrow_mut().clear();
    }

    /// The column spans of `s` over [x0, x1] on `axis`, shared on the step axis.
    fn spans(&self, s: &Series, axis: XAxis, x0: f64, x1: f64, columns: usize) -> Rc<ColumnSpans> {
        let xs = s.xs(axis);
        if axis != XAxis::Step {
            return Rc::new(ColumnSpans::of(xs, x0, x1, columns));
        }
        let key = (s.steps_key(), x0.to_bits(), x1.to_bits(), columns);
        let mut map = self.spans.borrow_mut();
        if map.len() > Self::MAX_BANDS {
            map.clear();
        }
        map.entry(key).or_insert_with(|| Rc::new(ColumnSpans::of(xs, x0, x1, columns))).clone()
    }
}

fn axis_id(a: XAxis) -> u8 {
    match a {
        XAxis::Step => 0,
        XAxis::Wall => 1,
        XAxis::Relative => 2,
    }
}

/// One run's curve for one chart, ready to draw (x already shifted for relative time).
pub struct RunCurve {
    pub id: u64,
    pub baseline: bool,
    pub color: Color,
    pub name: String,
    pub decimated: Rc<Decimated>,
}

impl App {
    /// The runs the curves view shows: the marked ones, else the selected one; and the
    /// baseline.
    pub fn shown_runs(&self) -> Vec<&TaskView> {
        let mut v: Vec<&TaskView> = if let Some(s) = self.shown_sweep() {
            self.sweep_members(s)
        } else if !self.runs.marked.is_empty() {
            self.tasks().iter().filter(|t| self.runs.marked.contains(&t.task.id)).collect()
        } else {
            self.selected_task().into_iter().collect()
        };
        if let Some(b) = self.runs.baseline.and_then(|b| self.task(b)) {
            if !v.iter().any(|t| t.task.id == b.task.id) {
                v.push(b);
            }
        }
        v.sort_by_key(|t| t.task.id);
        v
    }

    /// Metric tags of the shown runs, filtered.
    pub fn curve_tags(&self) -> Vec<String> {
        let mut tags = BTreeSet::new();
        for t in self.shown_runs() {
            if let Some(r) = self.store.get(&t.task.run_dir) {
                tags.extend(r.tags.keys().cloned());
            }
        }
        let f = self.curves.filter.to_lowercase();
        tags.into_iter().filter(|t| f.is_empty() || t.to_lowercase().contains(&f)).collect()
    }

    pub(super) fn curves_move(&mut self, a: Action) {
        let n = self.curve_tags().len();
        self.curves.focus = moved(a, self.curves.focus.min(n.saturating_sub(1)), n, self.page());
    }

    pub(super) fn curves_action(&mut self, a: Action) -> Vec<Cmd> {
        let c = &mut self.curves;
        let width = c.zoom.1 - c.zoom.0;
        match a {
            Action::Smoothing => {
                c.smoothing = match c.smoothing {
                    Smoothing::Off => Smoothing::Ema,
                    Smoothing::Ema => Smoothing::Moving,
                    Smoothing::Moving => Smoothing::Off,
                }
            }
            Action::SmoothMore => match c.smoothing {
                Smoothing::Ema => c.ema_weight = (c.ema_weight + 0.1).min(0.99),
                Smoothing::Moving => c.window = (c.window * 2).min(100_000),
                Smoothing::Off => c.smoothing = Smoothing::Ema,
            },
            Action::SmoothLess => match c.smoothing {
                Smoothing::Ema => c.ema_weight = (c.ema_weight - 0.1).max(0.0),
                Smoothing::Moving => c.window = (c.window / 2).max(1),
                Smoothing::Off => {}
            },
            Action::XAxis => c.x_axis = c.x_axis.next(),
            Action::ZoomIn => {
                let centre = c.zoom.0 + width * c.cursor.unwrap_or(0.5);
                let w = (width / 2.0).max(1e-6);
                c.zoom = clamp_window(centre - w * c.cursor.unwrap_or(0.5), w);
            }
            Action::ZoomOut => {
                let centre = c.zoom.0 + width * 0.5;
                let w = (width * 2.0).min(1.0);
                c.zoom = clamp_window(centre - w / 2.0, w);
            }
            Action::PanLeft => c.zoom = clamp_window(c.zoom.0 - width * 0.2, width),
            Action::PanRight => c.zoom = clamp_window(c.zoom.0 + width * 0.2, width),
            Action::ZoomReset => c.zoom = (0.0, 1.0),
            Action::Cursor => c.cursor = if c.cursor.is_some() { None } else { Some(0.5) },
            Action::CursorLeft => c.cursor = Some((c.cursor.unwrap_or(0.5) - 0.02).max(0.0)),
            Action::CursorRight => c.cursor = Some((c.cursor.unwrap_or(0.5) + 0.02).min(1.0)),
            Action::Filter => {
                self.popups.push(Popup::Input { purpose: InputPurpose::CurvesFilter, prompt: "filter tags".into(), text: c.filter.clone() })
            }
            Action::GroupMean => c.group_mean = !c.group_mean,
            Action::ColourKey | Action::SweepTable | Action::TableSort | Action::TableReverse if c.sweep.sweep.is_none() => {
                self.message = "no sweep shown: S on a sweep's run in the runs view (or enter on a collapsed sweep) shows one".into()
            }
            Action::ColourKey => c.sweep.colour_key += 1,
            Action::SweepTable => c.sweep.table = !c.sweep.table,
            Action::TableSort => c.sweep.sort += 1,
            Action::TableReverse => c.sweep.descending = !c.sweep.descending,
            Action::LogY => {
                if let Some(tag) = self.curve_tags().get(self.curves.focus).cloned() {
                    if !self.curves.log_y.remove(&tag) {
                        self.curves.log_y.insert(tag);
                    }
                }
            }
            _ => {}
        }
        self.refresh_smoothing();
        Vec::new()
    }

    /// Recompute smoothed series whose data or smoothing changed.
    pub fn refresh_smoothing(&mut self) {
        let key = match self.curves.smoothing {
            Smoothing::Off => None,
            Smoothing::Ema => Some((1u8, self.curves.ema_weight.to_bits())),
            Smoothing::Moving => Some((2u8, self.curves.window as u64)),
        };
        for run in self.store.runs.values_mut() {
            for s in run.tags.values_mut() {
                let fresh = s.smoothed_for == key && (key.is_none() || s.smoothed.len() == s.values.len());
                if fresh {
                    continue;
                }
                s.smoothed = match key {
                    None => Vec::new(),
                    Some((1, _)) => crate::plot::series::ema_debiased(&s.values, self.curves.ema_weight),
                    Some(_) => crate::plot::series::moving_average(&s.values, self.curves.window),
                };
                s.smooth_blocks = Blocks::of(&s.smoothed);
                s.smoothed_for = key;
            }
        }
    }

    /// Decimate a series over [x0, x1] (in the axis's shown coordinates) to `columns`,
    /// from the cache when nothing it depends on changed.
    pub fn decimate(
        &self,
        run: &Path,
        version: u64,
        tag: &str,
        s: &Series,
        origin: f64,
        x0: f64,
        x1: f64,
        columns: usize,
    ) -> Rc<Decimated> {
        let axis = self.curves.x_axis;
        let key = DecimationKey {
            run: run.to_path_buf(),
            tag: tag.to_string(),
            version,
            axis: axis_id(axis),
            x0: x0.to_bits(),
            x1: x1.to_bits(),
            columns,
            smoothing: s.smoothed_for,
        };
        let cache = &self.curves.decimated;
        if let Some(d) = cache.map.borrow().get(&key) {
            return d.clone();
        }
        let xs = s.xs(axis);
        let sorted = s.sorted(axis);
        // Sorted x (the usual case): the block summaries spare a pass over every point.
        // The columns' index ranges, found once for the raw and the smoothed values.
        let spans = sorted.then(|| ColumnSpans::of(xs, x0 + origin, x1 + origin, columns));
        let m4 = |ys: &[f64], blocks: &Blocks| {
            if let Some(spans) = &spans {
                m4_sorted_in(xs, ys, blocks, spans)
            } else {
                m4_decimate(xs, ys, x0 + origin, x1 + origin, columns, false)
            }
        };
        let raw = m4(&s.values, &s.raw_blocks);
        let shift = |v: Vec<(f64, f64)>| -> Vec<(f64, f64)> { v.into_iter().map(|(x, y)| (x - origin, y)).collect() };
        let smoothed = if s.smoothed.len() == s.values.len() && !s.smoothed.is_empty() {
            shift(m4(&s.smoothed, &s.smooth_blocks).points)
        } else {
            Vec::new()
        };
        let d = Rc::new(Decimated {
            raw: shift(raw.points),
            smoothed,
            non_finite_x: raw.non_finite_x.into_iter().map(|x| x - origin).collect(),
        });
        let mut map = cache.map.borrow_mut();
        if map.len() > DecimationCache::MAX_CURVES {
            map.clear();
        }
        map.insert(key, d.clone());
        d
    }

    /// The full x range of a tag over the shown runs, in shown coordinates.
    pub fn full_range(&self, tag: &str) -> Option<(f64, f64)> {
        let axis = self.curves.x_axis;
        let mut r: Option<(f64, f64)> = None;
        for t in self.shown_runs() {
            let Some(run) = self.store.get(&t.task.run_dir) else { continue };
            let Some(s) = run.tags.get(tag) else { continue };
            let Some((lo, hi)) = s.bounds(axis) else { continue };
            let o = run.x_origin(axis);
            r = Some(match r {
                None => (lo - o, hi - o),
                Some((a, b)) => (a.min(lo - o), b.max(hi - o)),
            });
        }
        r
    }

    /// The visible x range of a tag (zoom applied).
    pub fn visible_range(&self, tag: &str) -> Option<(f64, f64)> {
        let (lo, hi) = self.full_range(tag)?;
        let w = hi - lo;
        if w <= 0.0 {
            return Some((lo - 0.5, hi + 0.5));
        }
        Some((lo + self.curves.zoom.0 * w, lo + self.curves.zoom.1 * w))
    }

    /// Each shown run's curve of `tag` over [x0, x1], decimated to `columns`.
    pub fn curves_for(&self, tag: &str, x0: f64, x1: f64, columns: usize) -> Vec<RunCurve> {
        self.curves_except(tag, x0, x1, columns, &BTreeSet::new())
    }

    /// [`App::curves_for`] but for the runs in `skip` (drawn as a band: not decimated).
    pub fn curves_except(&self, tag: &str, x0: f64, x1: f64, columns: usize, skip: &BTreeSet<u64>) -> Vec<RunCurve> {
        let axis = self.curves.x_axis;
        let colouring = self.colouring();
        let mut out = Vec::new();
        for t in self.shown_runs() {
            if skip.contains(&t.task.id) {
                continue;
            }
            let Some(run) = self.store.get(&t.task.run_dir) else { continue };
            let Some(s) = run.tags.get(tag) else { continue };
            let decimated = self.decimate(&run.run_dir, run.version, tag, s, run.x_origin(axis), x0, x1, columns);
            out.push(RunCurve {
                id: t.task.id,
                baseline: self.runs.baseline == Some(t.task.id),
                color: colouring.as_ref().and_then(|c| c.by_id.get(&t.task.id).copied()).unwrap_or(self.theme.run_color(t.task.id)),
                name: App::task_name(t),
                decimated,
            });
        }
        out
    }

    /// The runs drawn as one mean with a band, two or more per group, with the group's
    /// colour: a shown sweep's combinations (seeds aside; the colour of their value),
    /// else the shown runs of one config ([`App::config_groups`]).
    pub fn band_groups(&self) -> Vec<(Color, Vec<&TaskView>)> {
        if self.shown_sweep().is_some() {
            let colouring = self.colouring();
            let colour = |id: u64| colouring.as_ref().and_then(|c| c.by_id.get(&id).copied()).unwrap_or(self.theme.run_color(id));
            return self.sweep_combinations().into_iter().filter(|g| g.len() >= 2).map(|g| (colour(g[0].task.id), g)).collect();
        }
        self.config_groups().into_iter().map(|g| (self.theme.run_color(g[0].task.id), g)).collect()
    }

    /// Shown runs of one config (same config hash), two or more per group, by first id.
    pub fn config_groups(&self) -> Vec<Vec<&TaskView>> {
        let mut by: BTreeMap<&str, Vec<&TaskView>> = BTreeMap::new();
        for t in self.shown_runs() {
            if let Some(h) = t.task.config_hash.as_deref() {
                by.entry(h).or_default().push(t);
            }
        }
        let mut v: Vec<_> = by.into_values().filter(|g| g.len() >= 2).collect();
        v.sort_by_key(|g| g[0].task.id);
        v
    }

    /// A group's mean curve and its min-max band over [x0, x1] in `columns` columns: per
    /// column each run's mean (of its smoothed values when smoothing is on), then the
    /// mean, min and max of those over the runs that have points there.
    pub fn group_band(&self, tag: &str, runs: &[&TaskView], x0: f64, x1: f64, columns: usize) -> Band {
        if columns == 0 {
            return Band::default();
        }
        let axis = self.curves.x_axis;
        // Per column over the runs: sum, count, min and max of the runs' column means.
        let mut acc = vec![(0.0, 0u32, f64::INFINITY, f64::NEG_INFINITY); columns];
        let mut add = |c: usize, m: f64| {
            let a = &mut acc[c.min(columns - 1)];
            *a = (a.0 + m, a.1 + 1, a.2.min(m), a.3.max(m));
        };
        for t in runs {
            let Some(run) = self.store.get(&t.task.run_dir) else { continue };
            let Some(s) = run.tags.get(tag) else { continue };
            let o = run.x_origin(axis);
            let smoothed = s.smoothed.len() == s.values.len() && !s.smoothed.is_empty();
            let (ys, blocks) = if smoothed { (&s.smoothed, &s.smooth_blocks) } else { (&s.values, &s.raw_blocks) };
            if s.sorted(axis) {
                // Sorted x: whole blocks count by their summaries (no pass over every point).
                let spans = self.curves.bands.spans(s, axis, x0 + o, x1 + o, columns);
                column_means_into(ys, blocks, &spans, &mut add);
                continue;
            }
            let mut sum = vec![0.0; columns];
            let mut n = vec![0u32; columns];
            for (x, y) in s.xs(axis).iter().zip(ys) {
                let x = x - o;
                if x < x0 || x > x1 || !y.is_finite() {
                    continue;
                }
                let c = crate::plot::series::column_of(x, x0, x1, columns);
                sum[c] += y;
                n[c] += 1;
            }
            for c in 0..columns {
                if n[c] > 0 {
                    add(c, sum[c] / n[c] as f64);
                }
            }
        }
        let mut out = [Vec::new(), Vec::new(), Vec::new()];
        for (c, &(sum, n, lo, hi)) in acc.iter().enumerate() {
            if n == 0 {
                continue;
            }
            let x = x0 + (c as f64 + 0.5) / columns as f64 * (x1 - x0);
            out[0].push((x, sum / n as f64));
            out[1].push((x, lo));
            out[2].push((x, hi));
        }
        out
    }

    /// [`App::group_band`] from the cache when nothing it depends on changed.
    pub fn band(&self, tag: &str, runs: &[&TaskView], x0: f64, x1: f64, columns: usize) -> Rc<Band> {
        // One store look-up per run (a path comparison per tree level: a sweep's frame
        // looks up hundreds of runs).
        let data: Vec<Option<&super::store::RunData>> = runs.iter().map(|t| self.store.get(&t.task.run_dir)).collect();
        let key = BandKey {
            tag: tag.to_string(),
            runs: runs.iter().zip(&data).map(|(t, r)| (t.task.run_dir.clone(), r.map_or(u64::MAX, |r| r.version))).collect(),
            axis: axis_id(self.curves.x_axis),
            x0: x0.to_bits(),
            x1: x1.to_bits(),
            columns,
            smoothing: data.iter().find_map(|r| r.as_ref()?.tags.get(tag).map(|s| s.smoothed_for)).flatten(),
        };
        if let Some(b) = self.curves.bands.map.borrow().get(&key) {
            return b.clone();
        }
        let b = Rc::new(self.group_band(tag, runs, x0, x1, columns));
        let mut map = self.curves.bands.map.borrow_mut();
        if map.len() > BandCache::MAX_BANDS {
            map.clear();
        }
        map.insert(key, b.clone());
        b
    }
}

/// The window [lo, lo + w] moved and shrunk to fit in [0, 1].
fn clamp_window(lo: f64, w: f64) -> (f64, f64) {
    let w = w.clamp(1e-6, 1.0);
    let lo = lo.clamp(0.0, 1.0 - w);
    (lo, lo + w)
}

/// Index of the x nearest to `x`.
pub fn nearest(xs: &[f64], x: f64, sorted: bool) -> Option<usize> {
    if xs.is_empty() {
        return None;
    }
    if sorted {
        let i = xs.partition_point(|&v| v < x);
        let cands = [i.checked_sub(1), (i < xs.len()).then_some(i)];
        cands.into_iter().flatten().min_by(|&a, &b| (xs[a] - x).abs().total_cmp(&(xs[b] - x).abs()))
    } else {
        (0..xs.len()).filter(|&i| xs[i].is_finite()).min_by(|&a, &b| (xs[a] - x).abs().total_cmp(&(xs[b] - x).abs()))
    }
}
