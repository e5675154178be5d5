//! The logs view: the end of a task's stdout or stderr, following as it grows, with
//! search (matches highlighted, n/N to jump).
use crate::console::app::App;
use ratatui::layout::Rect;
use ratatui::style::{Modifier, Style};
use ratatui::text::{Line, Span};
use ratatui::widgets::{Block, Borders, Paragraph};
use ratatui::Frame;

pub fn draw(f: &mut Frame, area: Rect, app: &App) {
    let t = &app.theme;
    let l = &app.logs;
    let stream = if l.stderr { "stderr" } else { "stdout" };
    let title = match l.task.and_then(|id| app.task(id)) {
        Some(tv) => format!(
            " task {} {} {} {}",
            crate::console::disk::id_label(tv.task.id),
            App::task_name(tv),
            stream,
            if l.follow { "(following) " } else { "" }
        ),
        None => " logs: select a task in the runs view and press l ".into(),
    };
    let block = Block::new().borders(Borders::ALL).border_style(Style::new().fg(t.border)).title(title);
    let inner = block.inner(area);
    f.render_widget(block, area);
    let h = inner.height as usize;
    let n = l.lines.len();
    let top = if l.follow { n.saturating_sub(h) } else { l.top.min(n.saturating_sub(1)) };
    let needle = l.search.to_lowercase();
    let lines: Vec<Line> = l.lines[top.min(n)..(top + h).min(n)]
        .iter()
        .enumerate()
        .map(|(i, s)| highlight(s, &needle, Some(top + i) == l.current, app))
        .collect();
    if lines.is_empty() && l.task.is_some() {
        f.render_widget(Paragraph::new(format!("({stream} is empty)")).style(Style::new().fg(t.dim)), inner);
    } else {
        f.render_widget(Paragraph::new(lines), inner);
    }
}

fn highlight<'a>(s: &'a str, needle: &str, current: bool, app: &App) -> Line<'a> {
    let t = &app.theme;
    if needle.is_empty() {
        return Line::raw(s);
    }
    let lower = s.to_lowercase();
    // Byte offsets of the lowercase text match the original only for ASCII.
    if lower.len() != s.len() || !lower.contains(needle) {
        return Line::raw(s);
    }
    let hit = if current {
        Style::new().bg(t.warn).fg(ratatui::style::Color::Black).add_modifier(Modifier::BOLD)
    } else {
        Style::new().fg(t.warn).add_modifier(Modifier::BOLD)
    };
    let mut spans = Vec::new();
    let mut at = 0;
    for (i, _) in lower.match_indices(needle) {
        if i < at {
            continue;
        }
        spans.push(Span::raw(&s[at..i]));
        spans.push(Span::styled(&s[i..i + needle.len()], hit));
        at = i + needle.len();
    }
    spans.push(Span::raw(&s[at..]));
    Line::from(spans)
}
