//! Pure functions on curves: M4 decimation of the visible range, smoothing (debiased
//! EMA, moving average), an outlier-clipped y range and log-y helpers. Used by the
//! console's charts and by `clipgan plot`; the full data is never modified.

/// What [`m4_decimate`] keeps of one curve for one screen width.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct M4 {
    /// Per screen column the first, min, max and last finite point (in x order, each
    /// point once), plus the nearest finite point just left of `x0` and just right of
    /// `x1` so that lines reach the edges. Sorted by x.
    pub points: Vec<(f64, f64)>,
    /// x of the points in `[x0, x1]` whose y is NaN or infinite, at most one per column
    /// (the first), so that a NaN burst stays visible though it has no y to draw.
    pub non_finite_x: Vec<f64>,
}

/// The screen column (0..columns) of `x` in `[x0, x1]`; `x1` itself falls in the last.
/// Callers must pass `x` within the range and `columns > 0`.
pub fn column_of(x: f64, x0: f64, x1: f64, columns: usize) -> usize {
    let span = x1 - x0;
    if span <= 0.0 || !span.is_finite() {
        return 0;
    }
    let c = ((x - x0) / span * columns as f64).floor();
    if c <= 0.0 {
        0
    } else {
        (c as usize).min(columns - 1)
    }
}

/// Whether `xs` is non-decreasing (NaN anywhere makes it false).
pub fn is_sorted(xs: &[f64]) -> bool {
    xs.windows(2).all(|w| w[0] <= w[1])
}

/// M4 decimation: see [`M4`]. `xs` and `ys` are the same length (the shorter wins).
/// Points whose x is not finite have no place on the x axis and are ignored.
pub fn m4(xs: &[f64], ys: &[f64], x0: f64, x1: f64, columns: usize) -> Vec<(f64, f64)> {
    m4_decimate(xs, ys, x0, x1, columns, is_sorted(xs)).points
}

/// M4 decimation with the non-finite report. With `sorted` (the caller knows `xs` is
/// non-decreasing, e.g. steps) the visible range is found by binary search and only it
/// is scanned; otherwise every point is scanned once. O(n) either way.
pub fn m4_decimate(xs: &[f64], ys: &[f64], x0: f64, x1: f64, columns: usize, sorted: bool) -> M4 {
    let n = xs.len().min(ys.len());
    let (xs, ys) = (&xs[..n], &ys[..n]);
    let mut out = M4::default();
    if columns == 0 || n == 0 || x0.is_nan() || x1.is_nan() || x1 < x0 {
        return out;
    }
    // Per column: indices of first (smallest x, earliest on ties), last (largest x,
    // latest on ties), min y and max y (earliest on ties).
    #[derive(Clone, Copy)]
    struct Col {
        first: usize,
        last: usize,
        min: usize,
        max: usize,
    }
    let mut cols: Vec<Option<Col>> = vec![None; columns];
    let mut nonfinite: Vec<Option<usize>> = vec![None; columns];
    let mut left: Option<usize> = None; // largest x < x0 with finite y
    let mut right: Option<usize> = None; // smallest x > x1 with finite y

    let (lo, hi) = if sorted { (xs.partition_point(|&x| x < x0), xs.partition_point(|&x| x <= x1)) } else { (0, n) };
    for i in lo..hi {
        let (x, y) = (xs[i], ys[i]);
        if !x.is_finite() {
            continue;
        }
        if x < x0 {
            if y.is_finite() && left.is_none_or(|l| x >= xs[l]) {
                left = Some(i);
            }
            continue;
        }
        if x > x1 {
            if y.is_finite() && right.is_none_or(|r| x < xs[r]) {
                right = Some(i);
            }
            continue;
        }
        let c = column_of(x, x0, x1, columns);
        if !y.is_finite() {
            match nonfinite[c] {
                Some(j) if xs[j] <= x => {}
                _ => nonfinite[c] = Some(i),
            }
            continue;
        }
        match &mut cols[c] {
            None => cols[c] = Some(Col { first: i, last: i, min: i, max: i }),
            Some(col) => {
                if x < xs[col.first] {
                    col.first = i;
                }
                if x >= xs[col.last] {
                    col.last = i;
                }
                if y < ys[col.min] {
                    col.min = i;
                }
                if y > ys[col.max] {
                    col.max = i;
                }
            }
        }
    }
    if sorted {
        // The neighbours just outside: walk outwards past non-finite points.
        left = (0..lo).rev().find(|&i| xs[i].is_finite() && ys[i].is_finite());
        right = (hi..n).find(|&i| xs[i].is_finite() && ys[i].is_finite());
    }

    let mut idx: Vec<usize> = Vec::with_capacity(columns * 4 + 2);
    idx.extend(left);
    for col in cols.iter().flatten() {
        let mut four = [col.first, col.min, col.max, col.last];
        // x order within the column; ties in x keep input order.
        four.sort_by(|&a, &b| xs[a].total_cmp(&xs[b]).then(a.cmp(&b)));
        for i in four {
            if idx.last() != Some(&i) {
                idx.push(i);
            }
        }
    }
    idx.extend(right);
    out.points = idx.into_iter().map(|i| (xs[i], ys[i])).collect();
    out.non_finite_x = nonfinite.into_iter().flatten().map(|i| xs[i]).collect();
    out
}

/// TensorBoard's debiased exponential moving average (its fix of the early-value bias:
/// the running average starts at 0 and is divided by `1 - weight^k` after k finite
/// values). Non-finite values pass through unsmoothed and don't enter the average; a
/// constant series is returned unchanged (as TensorBoard does, avoiding rounding
/// noise). `weight` in [0, 1): 0 = no smoothing.
pub fn ema_debiased(ys: &[f64], weight: f64) -> Vec<f64> {
    let weight = if weight.is_finite() { weight.clamp(0.0, 1.0) } else { 0.0 };
    if ys.iter().all(|&v| v == ys[0]) {
        return ys.to_vec();
    }
    let mut last = 0.0;
    let mut weight_pow = 1.0; // weight^k, updated incrementally
    ys.iter()
        .map(|&y| {
            if !y.is_finite() {
                return y;
            }
            last = last * weight + (1.0 - weight) * y;
            weight_pow *= weight;
            let debias = if weight < 1.0 { 1.0 - weight_pow } else { 1.0 };
            last / debias
        })
        .collect()
}

/// Trailing moving average over the last `window` values (fewer at the start).
/// Non-finite values pass through and are left out of the windows they fall in.
/// `window` 0 or 1 = no smoothing.
pub fn moving_average(ys: &[f64], window: usize) -> Vec<f64> {
    if window <= 1 {
        return ys.to_vec();
    }
    let mut out = Vec::with_capacity(ys.len());
    // Exact sums: recompute the window sum every `window` steps so rounding error of
    // the running add/subtract can't accumulate over millions of points.
    let mut sum = 0.0;
    let mut count = 0usize;
    for (i, &y) in ys.iter().enumerate() {
        if y.is_finite() {
            sum += y;
            count += 1;
        }
        if i >= window {
            let old = ys[i - window];
            if old.is_finite() {
                sum -= old;
                count -= 1;
            }
        }
        if i % window == 0 && i > 0 {
            let start = (i + 1).saturating_sub(window);
            sum = ys[start..=i].iter().filter(|v| v.is_finite()).sum();
        }
        out.push(if !y.is_finite() { y } else { sum / count as f64 });
    }
    out
}

/// How a curve is smoothed for display.
#[derive(Debug, Clone, Copy, PartialEq)]
pub enum Smoothing {
    Off,
    /// Debiased EMA with this weight in [0, 1).
    Ema(f64),
    /// Trailing moving average over this many points.
    MovingAverage(usize),
}

impl Smoothing {
    pub fn apply(self, ys: &[f64]) -> Vec<f64> {
        match self {
            Smoothing::Off => ys.to_vec(),
            Smoothing::Ema(w) => ema_debiased(ys, w),
            Smoothing::MovingAverage(n) => moving_average(ys, n),
        }
    }

    pub fn is_off(self) -> bool {
        matches!(self, Smoothing::Off | Smoothing::Ema(0.0) | Smoothing::MovingAverage(0 | 1))
    }
}

/// The `q`-quantile (0..=1, nearest rank) of `v`, which it reorders. `v` non-empty.
fn quantile(v: &mut [f64], q: f64) -> f64 {
    let k = ((v.len() - 1) as f64 * q.clamp(0.0, 1.0)).round() as usize;
    *v.select_nth_unstable_by(k, f64::total_cmp).1
}

/// A y range that ignores outliers without hiding any series: per series the
/// `clip`..`1-clip` quantiles of its finite values (`clip` = 0 gives min..max), and the
/// union over the series, so every series with a finite value keeps its central part in
/// view however far apart the series are. A flat range is widened so it can be drawn.
/// `None` when no series has a finite value.
pub fn robust_range(series: &[&[f64]], clip: f64) -> Option<(f64, f64)> {
    let clip = if clip.is_finite() { clip.clamp(0.0, 0.49) } else { 0.0 };
    let mut range: Option<(f64, f64)> = None;
    let mut buf = Vec::new();
    for s in series {
        buf.clear();
        buf.extend(s.iter().copied().filter(|v| v.is_finite()));
        if buf.is_empty() {
            continue;
        }
        let lo = quantile(&mut buf, clip);
        let hi = quantile(&mut buf, 1.0 - clip);
        range = Some(match range {
            None => (lo, hi),
            Some((a, b)) => (a.min(lo), b.max(hi)),
        });
    }
    range.map(|(lo, hi)| {
        if hi > lo {
            (lo, hi)
        } else {
            let pad = if lo == 0.0 { 1.0 } else { lo.abs() * 0.1 };
            (lo - pad, hi + pad)
        }
    })
}

/// The largest magnitude an axis shows. Past it, a range's width and margins overflow to
/// infinity (`[1e308, -1e308]`), and plotters' tick search never ended on such a range.
pub const AXIS_LIMIT: f64 = 1e300;

/// A range an axis can be drawn on, with `margin` (a fraction of the width) on each
/// side: ends clamped to ±[`AXIS_LIMIT`] (values beyond are drawn at the edge), a NaN
/// end replaced, and widened to at least 1e-9 of its magnitude, since a narrower range
/// has tick steps below the spacing of floating-point numbers there.
pub fn drawable_range(lo: f64, hi: f64, margin: f64) -> (f64, f64) {
    let fix = |v: f64, default: f64| if v.is_nan() { default } else { v.clamp(-AXIS_LIMIT, AXIS_LIMIT) };
    let (mut lo, mut hi) = (fix(lo, 0.0), fix(hi, 1.0));
    if lo > hi {
        std::mem::swap(&mut lo, &mut hi);
    }
    let min_width = (lo.abs().max(hi.abs()) * 1e-9).max(1e-200);
    if hi - lo < min_width {
        let mid = lo / 2.0 + hi / 2.0;
        (lo, hi) = (mid - min_width / 2.0, mid + min_width / 2.0);
    }
    let m = (hi - lo) * margin.clamp(0.0, 1.0);
    (lo - m, hi + m)
}

/// log10 for a log-y axis: values <= 0 (and NaN) have no place on it and map to NaN,
/// which the decimation reports as non-finite.
pub fn log10_or_nan(y: f64) -> f64 {
    if y > 0.0 {
        y.log10()
    } else {
        f64::NAN
    }
}

/// Tick values for a log-y axis over `[lo, hi]` (both > 0): the powers of ten inside,
/// or, when the range spans less than one decade, `lo` and `hi` themselves.
pub fn log_ticks(lo: f64, hi: f64) -> Vec<f64> {
    if !(lo > 0.0 && hi >= lo && hi.is_finite()) {
        return Vec::new();
    }
    let (a, b) = (lo.log10().ceil() as i32, hi.log10().floor() as i32);
    if b < a {
        return vec![lo, hi];
    }
    (a..=b).map(|e| 10f64.powi(e)).collect()
}

#[cfg(test)]
mod tests;
