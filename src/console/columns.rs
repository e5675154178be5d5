//! Per-column work on a series whose x are sorted, for the curves view: where each
//! screen column falls in the data ([`ColumnSpans`]), M4 decimation ([`m4_sorted_in`])
//! and column means ([`column_means`]), both from the block summaries
//! (`store::Blocks`) so that a frame touches O(columns x BLOCK + n / BLOCK) points, not
//! every visible one. Re-exported by `store`.
use super::store::{Blocks, BLOCK, PART};

/// `partition_point` for a boundary that is usually near the start: exponential steps
/// from the front, then a binary search in the last step. Finding each column's end
/// this way stays in the cache lines the decimation reads anyway; a binary search over
/// the whole remaining range cost about 20 cache misses per column.
fn gallop(xs: &[f64], pred: impl Fn(f64) -> bool) -> usize {
    let mut lo = 0; // pred(xs[..lo]) all true
    let mut step = 1;
    while lo + step <= xs.len() && pred(xs[lo + step - 1]) {
        lo += step;
        step *= 2;
    }
    let hi = (lo + step).min(xs.len());
    lo + xs[lo..hi].partition_point(|&x| pred(x))
}

/// The first index in `a..hi` where `pred` (true, then false along the sorted `xs`, and
/// true at `a`) turns false, searched outwards from `guess`: exponential steps backwards
/// or forwards, then a binary search in the last step.
fn boundary(xs: &[f64], a: usize, hi: usize, guess: usize, pred: impl Fn(f64) -> bool) -> usize {
    let g = guess.clamp(a + 1, hi.max(a + 1)).min(hi);
    if g > a + 1 && !pred(xs[g - 1]) {
        // Before g: pred(xs[a]) holds, pred(xs[right]) does not.
        let (mut right, mut step) = (g - 1, 1);
        loop {
            let left = right.saturating_sub(step).max(a);
            if left == a || pred(xs[left]) {
                return left + xs[left..right].partition_point(|&x| pred(x));
            }
            right = left;
            step *= 2;
        }
    }
    g + gallop(&xs[g..hi], pred)
}

/// M4 decimation of a series whose `xs` are finite and non-decreasing, with the block
/// summary of `ys`: the same result as `plot::series::m4_decimate(.., sorted = true)`
/// (tested against it), without a pass over every visible point.
pub fn m4_sorted(xs: &[f64], ys: &[f64], blocks: &Blocks, x0: f64, x1: f64, columns: usize) -> crate::plot::series::M4 {
    let n = xs.len().min(ys.len());
    m4_sorted_in(&xs[..n], ys, blocks, &ColumnSpans::of(&xs[..n], x0, x1, columns))
}

/// Where the screen columns of `[x0, x1]` fall in a sorted `xs`: the visible index range
/// `lo..hi` and, per non-empty column, its index range. Computed once per run and x
/// range and shared by the decimation of its raw and smoothed values.
#[derive(Debug, Clone, Default)]
pub struct ColumnSpans {
    /// False for an empty range or no columns: nothing is drawn, not even neighbours.
    pub valid: bool,
    pub lo: usize,
    pub hi: usize,
    /// Index ranges of the non-empty columns, in order, covering `lo..hi`.
    pub spans: Vec<(usize, usize)>,
    /// The column of each span (so that runs sharing the spans need not read their x).
    pub cols: Vec<usize>,
}

impl ColumnSpans {
    pub fn of(xs: &[f64], x0: f64, x1: f64, columns: usize) -> ColumnSpans {
        use crate::plot::series::column_of;
        if columns == 0 || xs.is_empty() || x0.is_nan() || x1.is_nan() || x1 < x0 {
            return ColumnSpans::default();
        }
        let lo = xs.partition_point(|&x| x < x0);
        let hi = xs.partition_point(|&x| x <= x1);
        let mut spans = Vec::with_capacity(columns);
        let mut cols = Vec::with_capacity(columns);
        let mut a = lo;
        let last = if hi > lo { xs[hi - 1] } else { f64::NAN };
        while a < hi {
            let c = column_of(xs[a], x0, x1, columns);
            // The end of column c: the first index whose column is past it, searched from
            // where evenly spaced x would put it (right or one off for steps logged at a
            // fixed interval: one cache miss per column rather than a gallop's ~20).
            let end_x = x0 + (c + 1) as f64 * (x1 - x0) / columns as f64;
            let guess = if last > xs[a] {
                a.saturating_add(((end_x - xs[a]) / (last - xs[a]) * (hi - 1 - a) as f64).ceil().max(0.0) as usize)
            } else {
                hi
            };
            let b = boundary(xs, a, hi, guess, |x| column_of(x, x0, x1, columns) <= c);
            spans.push((a, b));
            cols.push(c);
            a = b;
        }
        ColumnSpans { valid: true, lo, hi, spans, cols }
    }
}

/// [`m4_sorted`] with the column spans already found (`spans` from the same `xs`).
pub fn m4_sorted_in(xs: &[f64], ys: &[f64], blocks: &Blocks, spans: &ColumnSpans) -> crate::plot::series::M4 {
    use crate::plot::series::M4;
    let n = xs.len().min(ys.len());
    let (xs, ys) = (&xs[..n], &ys[..n]);
    let mut out = M4::default();
    if !spans.valid || n == 0 {
        return out;
    }
    let (lo, hi) = (spans.lo.min(n), spans.hi.min(n));
    let mut idx: Vec<usize> = Vec::with_capacity(spans.spans.len() * 4 + 2);
    idx.extend((0..lo).rev().find(|&i| ys[i].is_finite()));
    for &(a, b) in &spans.spans {
        let b = b.min(n);
        if a >= b {
            continue;
        }
        let (mut first, mut last, mut mn, mut mx, mut nf) = (usize::MAX, usize::MAX, usize::MAX, usize::MAX, usize::MAX);
        let (mut mn_v, mut mx_v) = (f64::NAN, f64::NAN);
        // Visits in index order (per block: its first non-finite, then its min, its max),
        // so strict comparisons keep the earliest on ties, as m4_decimate does.
        let mut finite = |i: usize, lo: (usize, f64), hi: (usize, f64)| {
            if first == usize::MAX {
                first = i;
            }
            last = i;
            if mn == usize::MAX || lo.1 < mn_v {
                (mn, mn_v) = lo;
            }
            if mx == usize::MAX || hi.1 > mx_v {
                (mx, mx_v) = hi;
            }
        };
        let mut i = a;
        while i < b {
            let blk = i / BLOCK;
            if i % BLOCK == 0 && i + BLOCK <= b && blk < blocks.min.len() {
                // A whole summarised block inside the column.
                if blocks.nonfinite[blk] != usize::MAX && nf == usize::MAX {
                    nf = blocks.nonfinite[blk];
                }
                if blocks.min[blk] != usize::MAX {
                    finite(blocks.min[blk], (blocks.min[blk], blocks.min_v[blk]), (blocks.max[blk], blocks.max_v[blk]));
                }
                i += BLOCK;
            } else {
                let y = ys[i];
                if y.is_finite() {
                    finite(i, (i, y), (i, y));
                } else if nf == usize::MAX {
                    nf = i;
                }
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
    }
    idx.extend((hi..n).find(|&i| ys[i].is_finite()));
    out.points = idx.into_iter().map(|i| (xs[i], ys[i])).collect();
    out
}

/// Per non-empty column of `spans` (from the same sorted `xs`): the column's index and
/// the mean of its finite `ys` (columns with none are left out). Whole summarised blocks
/// inside a column count by their sum and count, so this touches O(columns x BLOCK +
/// n / BLOCK) points, like [`m4_sorted_in`]; a block cut by a column edge is summed from
/// the shorter side of its cut part (at most half a part; see [`finite_sum`]).
pub fn column_means(xs: &[f64], ys: &[f64], blocks: &Blocks, spans: &ColumnSpans, x0: f64, x1: f64, columns: usize) -> Vec<(usize, f64)> {
    let mut out = Vec::with_capacity(spans.spans.len());
    // The spans end within xs; ys whole (a summarised part may reach past xs).
    column_means_into(ys, blocks, spans, |c, m| out.push((c, m)));
    debug_assert!(spans.spans.iter().zip(&spans.cols).all(|(s, &c)| c == crate::plot::series::column_of(xs[s.0], x0, x1, columns)));
    out
}

/// [`column_means`] handing each (column, mean) to `put` (no allocation), the columns
/// taken from `spans` (found for `ys`'s x, or for equal x).
pub fn column_means_into(ys: &[f64], blocks: &Blocks, spans: &ColumnSpans, mut put: impl FnMut(usize, f64)) {
    if !spans.valid {
        return;
    }
    // Each column's edge is a cache miss or two (a sweep's runs are far larger than the
    // cache): ask for the edges a few columns ahead so that the misses overlap.
    const AHEAD: usize = 4;
    for (k, (&(a, b), &c)) in spans.spans.iter().zip(&spans.cols).enumerate() {
        if let Some(&(next, _)) = spans.spans.get(k + AHEAD) {
            prefetch(ys, next);
            prefetch(&blocks.part_sum, next / PART);
        }
        let b = b.min(ys.len());
        if a >= b {
            continue;
        }
        let (sum, count) = finite_sum(ys, blocks, a, b);
        if count > 0 {
            put(c, sum / count as f64);
        }
    }
}

/// A hint to load `v[i]`'s cache line (nothing when out of range or not on x86-64).
#[inline]
fn prefetch(v: &[f64], i: usize) {
    #[cfg(target_arch = "x86_64")]
    if let Some(x) = v.get(i) {
        use std::arch::x86_64::{_mm_prefetch, _MM_HINT_T0};
        // SAFETY: a prefetch reads nothing and cannot fault; the pointer is a valid one.
        #[allow(unused_unsafe)]
        unsafe {
            _mm_prefetch::<_MM_HINT_T0>((x as *const f64).cast::<i8>())
        };
    }
    #[cfg(not(target_arch = "x86_64"))]
    let _ = (v, i);
}

/// Sum and count of the finite values of `ys[a..b]`: whole summarised blocks by their
/// summary, a cut block by its parts ([`Blocks::part_sum`]): whole parts by their sum, a
/// cut part by a pass over its share of `a..b` or, when that share is the longer one,
/// its sum minus a pass over the rest. The cut blocks at column edges were most of a
/// sweep's band time (each a cache miss or more), so at most half a part is read there.
pub fn finite_sum(ys: &[f64], blocks: &Blocks, a: usize, b: usize) -> (f64, u64) {
    let (mut sum, mut count) = (0.0, 0u64);
    let mut i = a;
    while i < b {
        let blk = i / BLOCK;
        let j = ((blk + 1) * BLOCK).min(b);
        if blk >= blocks.sum.len() || !blocks.sum[blk].is_finite() {
            let (s, c) = scan(&ys[i..j]);
            (sum, count) = (sum + s, count + c);
        } else if j - i == BLOCK {
            (sum, count) = (sum + blocks.sum[blk], count + blocks.count[blk] as u64);
        } else {
            let mut k = i;
            while k < j {
                let p = k / PART;
                let (start, end) = (p * PART, (p + 1) * PART);
                let l = end.min(j);
                let part = blocks.part_sum[p];
                if 2 * (l - k) > PART && part.is_finite() {
                    // The part's sum minus the values outside a..b.
                    let (s0, c0) = scan(&ys[start..k]);
                    let (s1, c1) = scan(&ys[l..end]);
                    sum += part - (s0 + s1);
                    count += blocks.part_count[p] as u64 - c0 - c1;
                } else {
                    let (s, c) = scan(&ys[k..l]);
                    (sum, count) = (sum + s, count + c);
                }
                k = l;
            }
        }
        i = j;
    }
    (sum, count)
}

/// Sum and count of the finite values of `ys`.
fn scan(ys: &[f64]) -> (f64, u64) {
    let (mut sum, mut count) = (0.0, 0u64);
    for &y in ys {
        if y.is_finite() {
            sum += y;
            count += 1;
        }
    }
    (sum, count)
}
