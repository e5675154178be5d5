//! `views::plot_canvas` draws a chart's lines cell for cell as ratatui's `Chart` draws
//! the same datasets: its canvas area, dots, clipping and layering.
use clipgan::console::views::plot_canvas::{graph_area, paint, Layer, Mark};
use ratatui::buffer::Buffer;
use ratatui::layout::Rect;
use ratatui::style::{Color, Style};
use ratatui::symbols::Marker;
use ratatui::widgets::{Axis, Block, Borders, Chart, Dataset, GraphType, Widget};

/// A dataset: points, marks, joined by lines.
type Set = (Vec<(f64, f64)>, Mark, bool);

/// A chart as the curves view makes one: a block, labels on both axes, no legend.
fn chart(datasets: Vec<Dataset<'_>>, x: [f64; 2], y: [f64; 2], x_labels: [String; 3], y_labels: [String; 3]) -> Chart<'_> {
    Chart::new(datasets)
        .block(Block::new().borders(Borders::ALL).title(" t "))
        .x_axis(Axis::default().bounds(x).style(Style::new().fg(Color::Gray)).labels(x_labels))
        .y_axis(Axis::default().bounds(y).style(Style::new().fg(Color::Gray)).labels(y_labels))
        .legend_position(None)
}

#[test]
fn plot_canvas_draws_what_ratatui_chart_draws() {
    let mut rnd = crate::xorshift(4242);
    let colors = [Color::Red, Color::Green, Color::Blue, Color::Rgb(10, 200, 30), Color::Yellow];
    for case in 0..200 {
        let area = Rect::new(0, 0, 3 + (rnd() * 120.0) as u16, 3 + (rnd() * 40.0) as u16);
        let (x0, x1) = (rnd() * 100.0, 100.0 + rnd() * 1000.0);
        let (y0, y1) = (-rnd() * 5.0, rnd() * 5.0 + 0.001);
        // Lines partly outside the bounds (clipped), scatter dots, empty datasets.
        let data: Vec<Set> = (0..(rnd() * 12.0) as usize)
            .map(|_| {
                let n = (rnd() * 60.0) as usize;
                let pts = (0..n).map(|_| (x0 - 50.0 + rnd() * (x1 - x0 + 100.0), y0 - 1.0 + rnd() * (y1 - y0 + 2.0))).collect();
                let dot = rnd() < 0.2;
                (pts, if dot { Mark::Dot } else { Mark::Braille }, !dot)
            })
            .collect();
        let labels = |a: f64, b: f64| [format!("{a:.1}"), format!("{:.3}", (a + b) / 2.0), format!("{b:.0}")];
        let chart = |datasets| chart(datasets, [x0, x1], [y0, y1], labels(x0, x1), labels(y0, y1));
        let datasets: Vec<Dataset> = data
            .iter()
            .enumerate()
            .map(|(i, (pts, mark, line))| {
                Dataset::default()
                    .marker(if *mark == Mark::Dot { Marker::Dot } else { Marker::Braille })
                    .graph_type(if *line { GraphType::Line } else { GraphType::Scatter })
                    .style(Style::new().fg(colors[i % colors.len()]))
                    .data(pts)
            })
            .collect();
        let mut want = Buffer::empty(area);
        chart(datasets).render(area, &mut want);
        let mut got = Buffer::empty(area);
        chart(Vec::new()).render(area, &mut got);
        let layers: Vec<Layer> = data
            .iter()
            .enumerate()
            .map(|(i, (pts, mark, line))| Layer { data: pts, color: colors[i % colors.len()], mark: *mark, line: *line })
            .collect();
        let inner = Block::new().borders(Borders::ALL).inner(area);
        let graph = graph_area(inner, &labels(y0, y1), &labels(x0, x1)[0]);
        paint(&mut got, graph, [x0, x1], [y0, y1], &layers);
        assert_eq!(got, want, "case {case}: {area:?}");
    }
}
