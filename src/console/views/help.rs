//! The help overlay: the keys of the current view, then the global ones.
use super::centered;
use crate::console::app::App;
use ratatui::layout::Rect;
use ratatui::style::Style;
use ratatui::text::{Line, Span};
use ratatui::widgets::{Block, Borders, Clear, Paragraph, Wrap};
use ratatui::Frame;

pub fn draw(f: &mut Frame, area: Rect, app: &App) {
    let t = &app.theme;
    let ctx = app.view.context();
    let mut lines = Vec::new();
    for (a, keys) in app.keys.bindings(ctx) {
        lines.push(Line::from(vec![Span::styled(format!("{:>14}  ", keys.join(" ")), Style::new().fg(t.accent)), Span::raw(a.describe())]));
    }
    if let (crate::console::app::View::Runs, Err(e)) = (app.view, &app.resources.gpus) {
        // The resources panel says it in a few words.
        lines.push(Line::styled(format!("GPUs: {e}"), Style::new().fg(t.dim)));
    }
    if app.view == crate::console::app::View::Samples && !app.samples.renderer.is_empty() {
        // The full note (why this renderer), shortened on the view's own line.
        lines.push(Line::styled(format!("image renderer: {}", app.samples.renderer), Style::new().fg(t.dim)));
    }
    lines.push(Line::styled(format!("user files: {}", crate::console::keys::user_dir().display()), Style::new().fg(t.dim)));
    // Long lines wrap inside the 74 columns.
    let wrapped: u16 = lines.iter().map(|l| (l.width().saturating_sub(1) / 74) as u16).sum();
    let r = centered(area, 76, lines.len() as u16 + wrapped + 2);
    f.render_widget(Clear, r);
    let block = Block::new()
        .borders(Borders::ALL)
        .border_style(Style::new().fg(t.accent))
        .title(format!(" keys: {} (any key closes) ", app.view.title()));
    f.render_widget(Paragraph::new(lines).wrap(Wrap { trim: false }).block(block), r);
}
