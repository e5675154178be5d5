//! The curves view's drawing: a grid of charts, one per metric tag of the shown runs
//! (marked runs, else the selected one), the legend, and the cursor read-out. Each chart
//! draws its runs' curves as `console::curves` decimated them (M4 over the visible x
//! range to the chart's braille columns, so a spike of one step stays visible), the
//! smoothed curve over the raw one in a faint colour, log-y per chart, the y range
//! clipped to ignore outliers while keeping every series in view, NaN/Inf marks, group
//! means with their min-max band. A shown sweep: one colour per value of the chosen key
//! (legend on top: value -> colour), its seeds' bands, and the sweep table under the
//! charts (`views::sweep_table`) when on.
use super::plot_canvas::{self, Layer, Mark};
use super::{human_duration, num};
use crate::console::app::App;
use crate::console::curves::{nearest, RunCurve, Smoothing};
use crate::console::store::XAxis;
use crate::plot::series::{drawable_range, log10_or_nan, robust_range};
use ratatui::layout::{Constraint, Layout, Rect};
use ratatui::style::{Color, Modifier, Style};
use ratatui::text::{Line, Span};
use ratatui::widgets::{Axis, Block, Borders, Chart, Paragraph};
use ratatui::Frame;

/// Fraction of points ignored at each end when choosing the y range.
const Y_CLIP: f64 = 0.01;

/// A group's colour and its mean, min and max lines, in shown coordinates.
type Band = (Color, [Vec<(f64, f64)>; 3]);

fn x_label(app: &App, x: f64) -> String {
    match app.curves.x_axis {
        XAxis::Step => num(x.round()),
        XAxis::Relative => human_duration(x),
        XAxis::Wall => chrono::DateTime::from_timestamp(x as i64, 0).map(|t| t.format("%H:%M:%S").to_string()).unwrap_or_default(),
    }
}

pub fn draw(f: &mut Frame, area: Rect, app: &App) {
    let t = &app.theme;
    let tags = app.curve_tags();
    let [head, grid, foot] = Layout::vertical([Constraint::Length(1), Constraint::Min(1), Constraint::Length(1)]).areas(area);
    // Head: axis, smoothing, zoom, legend with stable colours.
    let c = &app.curves;
    let smoothing = match c.smoothing {
        Smoothing::Off => "off".to_string(),
        Smoothing::Ema => format!("EMA {:.2}", c.ema_weight),
        Smoothing::Moving => format!("mean of {}", c.window),
    };
    let mut spans = vec![Span::styled(
        format!("x: {} · smoothing: {smoothing} · {:.0}-{:.0}% ", c.x_axis.name(), c.zoom.0 * 100.0, c.zoom.1 * 100.0),
        Style::new().fg(t.dim),
    )];
    if !c.filter.is_empty() {
        spans.push(Span::styled(format!("filter: {} ", c.filter), Style::new().fg(t.warn)));
    }
    if let (Some(s), Some(col)) = (app.shown_sweep(), app.colouring()) {
        // A sweep: its name, the colour key and each value's colour.
        let name = app.sweep_name(s);
        spans.push(Span::styled(format!("{s} {name} ({} runs) · ", app.sweep_members(s).len()), Style::new().fg(t.accent)));
        if c.group_mean {
            spans.push(Span::styled("seed bands · ", Style::new().fg(t.warn)));
        }
        spans.push(Span::raw(format!("{}: ", col.key)));
        for (v, colour) in &col.values {
            spans.push(Span::styled("● ", Style::new().fg(*colour)));
            spans.push(Span::raw(format!("{v}  ")));
        }
    } else {
        for r in app.shown_runs() {
            spans.push(Span::styled("● ", Style::new().fg(t.run_color(r.task.id))));
            let pin = if app.runs.baseline == Some(r.task.id) { " (baseline)" } else { "" };
            spans.push(Span::raw(format!("{} {}{pin}  ", crate::console::disk::id_label(r.task.id), App::task_name(r))));
        }
        if c.group_mean {
            spans.push(Span::styled("group mean ", Style::new().fg(t.warn)));
        }
    }
    f.render_widget(Paragraph::new(Line::from(spans)), head);
    if tags.is_empty() {
        let msg =
            if app.shown_runs().is_empty() { "no run selected: select or mark (space) runs in the runs view" } else { "no metrics yet" };
        f.render_widget(Paragraph::new(msg).style(Style::new().fg(t.dim)).block(Block::new().borders(Borders::ALL)), grid);
        return;
    }
    // The sweep table under the charts: up to half the height, at least the charts' 8 rows.
    let grid = if app.shown_sweep().is_some() && c.sweep.table && grid.height >= 14 {
        let rows = app.sweep_combinations().len() as u16;
        let h = (rows + 3).clamp(5, grid.height / 2);
        let [charts, table] = Layout::vertical([Constraint::Min(8), Constraint::Length(h)]).areas(grid);
        super::sweep_table::draw(f, table, app);
        charts
    } else if app.shown_sweep().is_some() && c.sweep.table {
        super::sweep_table::draw(f, grid, app);
        return;
    } else {
        grid
    };
    let cols = if grid.width >= 150 {
        3
    } else if grid.width >= 90 {
        2
    } else {
        1
    };
    let rows_fit = (grid.height / 8).max(1) as usize;
    let per_page = cols * rows_fit;
    let focus = c.focus.min(tags.len() - 1);
    let page = focus / per_page;
    let shown: Vec<(usize, &String)> = tags.iter().enumerate().skip(page * per_page).take(per_page).collect();
    let rows = shown.len().div_ceil(cols);
    let row_areas = Layout::vertical(vec![Constraint::Fill(1); rows]).split(grid);
    let mut cursor_text = String::new();
    for (r, row_area) in row_areas.iter().enumerate() {
        let cells = Layout::horizontal(vec![Constraint::Fill(1); cols]).split(*row_area);
        for (k, cell) in cells.iter().enumerate() {
            let Some((i, tag)) = shown.get(r * cols + k) else { continue };
            let text = draw_chart(f, *cell, app, tag, *i == focus);
            if *i == focus {
                cursor_text = text;
            }
        }
    }
    let pages = tags.len().div_ceil(per_page);
    let footer = format!(
        "{}/{} charts{} {cursor_text}",
        focus + 1,
        tags.len(),
        if pages > 1 { format!(" (page {}/{pages})", page + 1) } else { String::new() }
    );
    f.render_widget(Paragraph::new(footer).style(Style::new().fg(t.dim)), foot);
}

/// Draw one chart; returns the cursor read-out when the chart has the focus.
fn draw_chart(f: &mut Frame, area: Rect, app: &App, tag: &str, focused: bool) -> String {
    let t = &app.theme;
    let log_y = app.curves.log_y.contains(tag);
    let title = format!(" {tag}{} ", if log_y { " (log)" } else { "" });
    let border = if focused { Style::new().fg(t.accent).add_modifier(Modifier::BOLD) } else { Style::new().fg(t.border) };
    let block = Block::new().borders(Borders::ALL).border_style(border).title(title);
    let Some((x0, x1)) = app.visible_range(tag) else {
        f.render_widget(block, area);
        return String::new();
    };
    // Braille: two dots per cell across; the y labels take about 8 cells.
    let columns = (area.width.saturating_sub(10) as usize * 2).max(1);
    let groups = if app.curves.group_mean { app.band_groups() } else { Vec::new() };
    // Runs under a band are not drawn (nor decimated) on their own.
    let grouped: std::collections::BTreeSet<u64> = groups.iter().flat_map(|g| g.1.iter().map(|t| t.task.id)).collect();
    let curves: Vec<RunCurve> = app.curves_except(tag, x0, x1, columns, &grouped);
    let ty = |y: f64| if log_y { log10_or_nan(y) } else { y };
    let tf = |v: &[(f64, f64)]| -> Vec<(f64, f64)> { v.iter().map(|&(x, y)| (x, ty(y))).filter(|p| p.1.is_finite()).collect() };
    let smoothing_on = app.curves.smoothing != Smoothing::Off;
    let mut raw: Vec<Vec<(f64, f64)>> = Vec::new();
    let mut smooth: Vec<Vec<(f64, f64)>> = Vec::new();
    for c in &curves {
        raw.push(tf(&c.decimated.raw));
        smooth.push(tf(&c.decimated.smoothed));
    }
    // The y range from the drawn lines (smoothed when smoothing is on, else raw).
    let ys: Vec<Vec<f64>> = curves
        .iter()
        .enumerate()
        .map(|(i, _)| {
            let src = if smoothing_on && !smooth[i].is_empty() { &smooth[i] } else { &raw[i] };
            src.iter().filter(|p| p.0 >= x0 && p.0 <= x1).map(|p| p.1).collect()
        })
        .collect();
    // Group means and bands: (colour, mean, min, max), in shown coordinates.
    let bands: Vec<Band> = groups
        .iter()
        .map(|(colour, g)| {
            let b = app.band(tag, g, x0, x1, (columns / 2).max(1));
            (*colour, [tf(&b[0]), tf(&b[1]), tf(&b[2])])
        })
        .collect();
    let mut ys = ys;
    for (_, b) in &bands {
        ys.push(b[0].iter().map(|p| p.1).collect());
    }
    let refs: Vec<&[f64]> = ys.iter().map(|v| v.as_slice()).collect();
    let (y0, y1) = match robust_range(&refs, Y_CLIP) {
        Some((a, b)) => drawable_range(a, b, 0.05),
        None => (0.0, 1.0),
    };
    // Non-finite values: a mark at the top edge of the chart.
    let nan_marks: Vec<Vec<(f64, f64)>> = curves.iter().map(|c| c.decimated.non_finite_x.iter().map(|&x| (x, y1)).collect()).collect();
    let cursor_x = app.curves.cursor.filter(|_| focused).map(|c| x0 + c * (x1 - x0));
    let cursor_line: Vec<(f64, f64)> = cursor_x.map(|x| vec![(x, y0), (x, y1)]).unwrap_or_default();
    // The chart's lines in ratatui's dataset order (each painted over the ones before).
    let line = Layer::line;
    let mut layers = Vec::new();
    for (i, c) in curves.iter().enumerate() {
        let has_smooth = smoothing_on && !smooth[i].is_empty();
        layers.push(line(&raw[i], if has_smooth { t.raw } else { c.color }));
    }
    for (i, c) in curves.iter().enumerate() {
        if smoothing_on && !smooth[i].is_empty() {
            layers.push(line(&smooth[i], c.color));
        }
        if !nan_marks[i].is_empty() {
            layers.push(Layer { data: &nan_marks[i], color: t.error, mark: Mark::Dot, line: false });
        }
    }
    // A sweep's many bands: each band's edges as one closed outline (max forwards, min
    // backwards), one layer instead of two.
    let outlines: Vec<Vec<(f64, f64)>> = if app.shown_sweep().is_some() {
        bands.iter().map(|(_, b)| b[2].iter().chain(b[1].iter().rev()).chain(b[2].first()).copied().collect()).collect()
    } else {
        Vec::new()
    };
    for (i, (color, b)) in bands.iter().enumerate() {
        let edges: &[Vec<(f64, f64)>] = match outlines.get(i) {
            Some(o) => std::slice::from_ref(o),
            None => &b[1..],
        };
        for edge in edges {
            layers.push(line(edge, *color));
        }
        layers.push(line(&b[0], *color));
    }
    if !cursor_line.is_empty() {
        layers.push(line(&cursor_line, t.warn));
    }
    let ylab = |y: f64| if log_y { format!("1e{:.1}", y) } else { num(y) };
    let x_labels = [x_label(app, x0), x_label(app, (x0 + x1) / 2.0), x_label(app, x1)];
    let y_labels = [ylab(y0), ylab((y0 + y1) / 2.0), ylab(y1)];
    let graph = plot_canvas::graph_area(block.inner(area), &y_labels, &x_labels[0]);
    let x_axis = Axis::default().bounds([x0, x1]).style(Style::new().fg(t.dim)).labels(x_labels);
    let y_axis = Axis::default().bounds([y0, y1]).style(Style::new().fg(t.dim)).labels(y_labels);
    // The block, axes and labels by ratatui's Chart; the lines by `plot_canvas`, the same
    // dots at a cost per painted cell rather than per chart cell and dataset.
    let chart = Chart::new(Vec::new()).block(block).x_axis(x_axis).y_axis(y_axis).legend_position(None);
    f.render_widget(chart, area);
    plot_canvas::paint(f.buffer_mut(), graph, [x0, x1], [y0, y1], &layers);
    // The cursor read-out: each run's exact value at the nearest step.
    let Some(cx) = cursor_x else { return String::new() };
    let mut parts = vec![format!("cursor {}:", x_label(app, cx))];
    for tv in app.shown_runs() {
        let Some(run) = app.store.get(&tv.task.run_dir) else { continue };
        let Some(s) = run.tags.get(tag) else { continue };
        let o = run.x_origin(app.curves.x_axis);
        if let Some(i) = nearest(s.xs(app.curves.x_axis), cx + o, s.sorted(app.curves.x_axis)) {
            let sm = s.smoothed.get(i).map(|v| format!(" (smoothed {})", num(*v))).unwrap_or_default();
            parts.push(format!("{} @{}={}{sm}", crate::console::disk::id_label(tv.task.id), num(s.steps[i]), num(s.values[i])));
        }
    }
    parts.join("  ")
}
