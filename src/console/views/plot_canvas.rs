//! The lines of a curves chart, drawn as ratatui's `Chart` draws its datasets (the same
//! dots: its point mapping, line clipping and Bresenham lines; the same layering: each
//! dataset replaces the cells it paints, symbol and colour) at a cost per painted cell.
//! `Chart` draws each dataset on a canvas layer as large as the chart (a copy of every
//! cell, then every cell merged into the buffer): with a sweep's 50 bands, 100 layers,
//! most of a frame. The chart itself (block, axes, labels) is still ratatui's, drawn
//! with no datasets; [`graph_area`] is where its canvas lies.
use ratatui::buffer::Buffer;
use ratatui::layout::Rect;
use ratatui::style::Color;
use ratatui::symbols::braille::BRAILLE;

/// How a layer marks its points: braille dots (2x4 per cell) or one dot per cell.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Mark {
    Braille,
    Dot,
}

/// One dataset: its points, colour, marks, and whether consecutive points are joined.
pub struct Layer<'a> {
    pub data: &'a [(f64, f64)],
    pub color: Color,
    pub mark: Mark,
    pub line: bool,
}

impl Layer<'_> {
    /// Braille dots joined by lines (`GraphType::Line`).
    pub fn line(data: &[(f64, f64)], color: Color) -> Layer<'_> {
        Layer { data, color, mark: Mark::Braille, line: true }
    }
}

/// Where `Chart` puts its canvas inside the chart's block (`inner`) for labels on both
/// axes (left-aligned, no axis titles, no legend): right of the y labels (at most a
/// third of the width) and the y axis, above the x labels and the x axis.
pub fn graph_area(inner: Rect, y_labels: &[String], first_x_label: &str) -> Rect {
    if inner.is_empty() {
        return Rect::new(inner.x, inner.y, 0, 0);
    }
    let width = |s: &str| ratatui::text::Line::raw(s).width() as u16;
    let mut x = inner.left();
    let mut y = inner.bottom() - 1;
    if y > inner.top() {
        y -= 1; // the x labels' row
    }
    let labels = y_labels.iter().map(|l| width(l)).max().unwrap_or(0).max(width(first_x_label).saturating_sub(1));
    x += labels.min(inner.width / 3);
    if y > inner.top() {
        y -= 1; // the x axis
    }
    if x + 1 < inner.right() {
        x += 1; // the y axis
    }
    Rect::new(x, inner.top(), inner.right().saturating_sub(x), y.saturating_sub(inner.top()).saturating_add(1))
}

/// Paint `layers` in order over `area` (the chart's canvas) with the chart's bounds.
pub fn paint(buf: &mut Buffer, area: Rect, x_bounds: [f64; 2], y_bounds: [f64; 2], layers: &[Layer]) {
    if area.is_empty() {
        return;
    }
    let (w, h) = (area.width as usize, area.height as usize);
    // What the layers leave per cell (symbol, colour), and the layer being drawn: braille
    // dots per cell, the cells painted.
    let mut out: Vec<Option<(char, Color)>> = vec![None; w * h];
    let mut dots = vec![0u8; w * h];
    let mut painted: Vec<usize> = Vec::new();
    for layer in layers {
        let (res, cell_w, cell_h) = match layer.mark {
            Mark::Braille => ((w as f64 * 2.0, h as f64 * 4.0), 2, 4),
            Mark::Dot => ((w as f64, h as f64), 1, 1),
        };
        let mut put = |x: usize, y: usize| {
            let i = (y / cell_h) * w + x / cell_w;
            if i < dots.len() {
                if dots[i] == 0 {
                    painted.push(i);
                }
                dots[i] |= 1u8 << ((x % cell_w) + cell_w * (y % cell_h));
            }
        };
        for &(x, y) in layer.data {
            if let Some((px, py)) = grid_point(x, y, x_bounds, y_bounds, res) {
                put(px, py);
            }
        }
        if layer.line {
            for p in layer.data.windows(2) {
                let Some((a, b)) = clip(x_bounds, y_bounds, p[0], p[1]) else { continue };
                let (Some(a), Some(b)) = (grid_point(a.0, a.1, x_bounds, y_bounds, res), grid_point(b.0, b.1, x_bounds, y_bounds, res))
                else {
                    continue;
                };
                line_points(a, b, &mut put);
            }
        }
        for &i in &painted {
            let symbol = match layer.mark {
                Mark::Braille => BRAILLE[dots[i] as usize],
                Mark::Dot => '•',
            };
            out[i] = Some((symbol, layer.color));
            dots[i] = 0;
        }
        painted.clear();
    }
    for (i, cell) in out.into_iter().enumerate() {
        if let Some((symbol, color)) = cell {
            if let Some(cell) = buf.cell_mut((area.x + (i % w) as u16, area.y + (i / w) as u16)) {
                cell.set_char(symbol).set_fg(color);
            }
        }
    }
}

/// The grid point of (x, y) at `res` dots, as ratatui's canvas `Painter::get_point`.
fn grid_point(x: f64, y: f64, [left, right]: [f64; 2], [bottom, top]: [f64; 2], res: (f64, f64)) -> Option<(usize, usize)> {
    if x < left || x > right || y < bottom || y > top {
        return None;
    }
    let (width, height) = (right - left, top - bottom);
    if width <= 0.0 || height <= 0.0 {
        return None;
    }
    let x = ((x - left) * (res.0 - 1.0) / width).round() as usize;
    let y = ((top - y) * (res.1 - 1.0) / height).round() as usize;
    Some((x, y))
}

type P = (f64, f64);

/// The segment a-b clipped to the bounds (Cohen-Sutherland, as ratatui's canvas line).
fn clip([x_min, x_max]: [f64; 2], [y_min, y_max]: [f64; 2], mut a: P, mut b: P) -> Option<(P, P)> {
    const LEFT: u8 = 1;
    const RIGHT: u8 = 2;
    const BOTTOM: u8 = 4;
    const TOP: u8 = 8;
    let region = |p: P| {
        let mut r = 0;
        if p.0 < x_min {
            r |= LEFT;
        } else if p.0 > x_max {
            r |= RIGHT;
        }
        if p.1 < y_min {
            r |= BOTTOM;
        } else if p.1 > y_max {
            r |= TOP;
        }
        r
    };
    // p moved along p-q onto the edge of its region.
    let cut = |p: P, q: P, r: u8| {
        let (dx, dy) = (q.0 - p.0, q.1 - p.1);
        if r & LEFT != 0 {
            (x_min, p.1 + (x_min - p.0) * dy / dx)
        } else if r & RIGHT != 0 {
            (x_max, p.1 + (x_max - p.0) * dy / dx)
        } else if r & BOTTOM != 0 {
            (p.0 + (y_min - p.1) * dx / dy, y_min)
        } else {
            (p.0 + (y_max - p.1) * dx / dy, y_max)
        }
    };
    let (mut ra, mut rb) = (region(a), region(b));
    loop {
        if ra & rb != 0 {
            return None;
        } else if ra != 0 {
            a = cut(a, b, ra);
            ra = region(a);
        } else if rb != 0 {
            b = cut(b, a, rb);
            rb = region(b);
        } else {
            return Some((a, b));
        }
    }
}

/// Each grid point of the Bresenham line a-b, as ratatui's canvas draws it.
fn line_points((x1, y1): (usize, usize), (x2, y2): (usize, usize), f: &mut impl FnMut(usize, usize)) {
    let (dx, dy) = (x2.abs_diff(x1), y2.abs_diff(y1));
    if dx == 0 {
        for y in y1.min(y2)..=y1.max(y2) {
            f(x1, y);
        }
    } else if dy == 0 {
        for x in x1.min(x2)..=x1.max(x2) {
            f(x, y1);
        }
    } else if dy < dx {
        let ((x1, y1), (x2, y2)) = if x1 > x2 { ((x2, y2), (x1, y1)) } else { ((x1, y1), (x2, y2)) };
        let (dx, dy) = ((x2 - x1) as isize, (y2 as isize - y1 as isize).abs());
        let (mut d, mut y) = (2 * dy - dx, y1);
        for x in x1..=x2 {
            f(x, y);
            if d > 0 {
                y = if y1 > y2 { y.saturating_sub(1) } else { y.saturating_add(1) };
                d -= 2 * dx;
            }
            d += 2 * dy;
        }
    } else {
        let ((x1, y1), (x2, y2)) = if y1 > y2 { ((x2, y2), (x1, y1)) } else { ((x1, y1), (x2, y2)) };
        let (dx, dy) = ((x2 as isize - x1 as isize).abs(), (y2 - y1) as isize);
        let (mut d, mut x) = (2 * dx - dy, x1);
        for y in y1..=y2 {
            f(x, y);
            if d > 0 {
                x = if x1 > x2 { x.saturating_sub(1) } else { x.saturating_add(1) };
                d -= 2 * dy;
            }
            d += 2 * dx;
        }
    }
}
