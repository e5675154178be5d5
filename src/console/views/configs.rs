//! The configs view: `cfg/` as the daemon watches it, a tree of files with each one's
//! validation state, and the diagnostics (file:line:col) of the selected one.
use crate::console::app::App;
use crate::console::sweep_form::SweepForm;
use ratatui::layout::{Constraint, Layout, Rect};
use ratatui::style::{Modifier, Style};
use ratatui::text::{Line, Span};
use ratatui::widgets::{Block, Borders, Clear, List, ListItem, ListState, Paragraph, Wrap};
use ratatui::Frame;

pub fn draw(f: &mut Frame, area: Rect, app: &App) {
    let t = &app.theme;
    let files = app.config_files();
    let [list_area, detail_area] = if area.width >= 90 {
        Layout::horizontal([Constraint::Percentage(50), Constraint::Percentage(50)]).areas(area)
    } else {
        Layout::vertical([Constraint::Percentage(60), Constraint::Percentage(40)]).areas(area)
    };
    // A tree: a folder line before the first file of each folder, files indented under it.
    let mut items = Vec::new();
    let mut selected_row = None;
    let mut last_dir: Option<String> = None;
    for (i, c) in files.iter().enumerate() {
        let (dir, name) = match c.rel.rsplit_once('/') {
            Some((d, n)) => (d.to_string(), n.to_string()),
            None => (String::new(), c.rel.clone()),
        };
        if last_dir.as_ref() != Some(&dir) {
            if !dir.is_empty() {
                items.push(ListItem::new(Line::styled(format!("{dir}/"), Style::new().fg(t.dim).add_modifier(Modifier::BOLD))));
            }
            last_dir = Some(dir.clone());
        }
        if i == app.configs.selected.min(files.len().saturating_sub(1)) {
            selected_row = Some(items.len());
        }
        let indent = if dir.is_empty() { "" } else { "  " };
        let mark = if app.configs.marked.contains(&c.path) { "●" } else { " " };
        let (state, style) = if c.ok {
            let warn = !c.diagnostics.is_empty();
            (
                format!("{}{}", c.job.map_or("ok", |j| j.as_str()), if warn { " (warnings)" } else { "" }),
                Style::new().fg(if warn { t.warn } else { t.ok }),
            )
        } else {
            ("invalid".to_string(), Style::new().fg(t.error))
        };
        items.push(ListItem::new(Line::from(vec![
            Span::styled(mark, Style::new().fg(t.accent)),
            Span::raw(format!("{indent}{name}  ")),
            Span::styled(state, style),
        ])));
    }
    let title = match &app.config_index {
        Some(c) => format!(" cfg/ ({} files, {}) ", c.files.len(), c.watch),
        None => " cfg/ (waiting for the daemon) ".into(),
    };
    let list = List::new(items)
        .block(Block::new().borders(Borders::ALL).border_style(Style::new().fg(t.border)).title(title))
        .highlight_style(Style::new().bg(t.selected_bg).add_modifier(Modifier::BOLD));
    let mut state = ListState::default();
    state.select(selected_row);
    f.render_stateful_widget(list, list_area, &mut state);

    let block = Block::new().borders(Borders::ALL).border_style(Style::new().fg(t.border));
    let Some(c) = app.selected_config() else {
        f.render_widget(Paragraph::new("no config files under cfg/").style(Style::new().fg(t.dim)).block(block), detail_area);
        return;
    };
    let mut lines = vec![Line::from(vec![
        Span::styled(c.rel.clone(), Style::new().fg(t.accent)),
        Span::raw(if c.ok { format!("  valid: a {} job", c.job.map_or("?", |j| j.as_str())) } else { "  does not validate".into() }),
    ])];
    if c.diagnostics.is_empty() {
        lines.push(Line::styled("no findings", Style::new().fg(t.dim)));
    }
    for d in &c.diagnostics {
        let style = if d.contains("error") { Style::new().fg(t.error) } else { Style::new().fg(t.warn) };
        // Paths are shown relative to the home.
        let shown = d.strip_prefix(&format!("{}/", app.home.display())).unwrap_or(d);
        lines.push(Line::styled(shown.to_string(), style));
    }
    if !app.configs.marked.is_empty() {
        lines.push(Line::styled(format!("{} marked (P queues the pipeline)", app.configs.marked.len()), Style::new().fg(t.dim)));
    }

    f.render_widget(Paragraph::new(lines).wrap(Wrap { trim: false }).block(block.title(" validation ")), detail_area);
}

/// The sweep form over the view: the lines typed so far, then what they expand to (how
/// many tasks over which keys) or the first error, then the keys.
pub fn draw_sweep_form(f: &mut Frame, area: Rect, app: &App, form: &SweepForm) {
    let t = &app.theme;
    let mut lines: Vec<Line> = Vec::new();
    if form.text.is_empty() {
        lines.push(Line::styled("one per line: KEY=v1,v2,...  seeds N  group G", Style::new().fg(t.dim)));
        lines.push(Line::styled("prune median TAG AFTER_STEPS [min|max]  job J  held  args ...", Style::new().fg(t.dim)));
    }
    let typed: Vec<&str> = form.text.split('\n').collect();
    for (i, l) in typed.iter().enumerate() {
        let mut spans = vec![Span::raw(l.to_string())];
        if i + 1 == typed.len() {
            spans.push(Span::styled("▏", Style::new().fg(t.accent)));
        }
        lines.push(Line::from(spans));
    }
    lines.push(Line::raw(""));
    lines.push(match &form.result {
        Ok((0, _)) => Line::styled("nothing to queue yet", Style::new().fg(t.dim)),
        Ok((n, keys)) => {
            let over = if form.over_limit() {
                format!(" (more than {}: asks first)", crate::supervisor::sweep::DEFAULT_LIMIT)
            } else {
                String::new()
            };
            Line::styled(format!("{n} task(s) over {keys}{over}"), Style::new().fg(if form.over_limit() { t.warn } else { t.ok }))
        }
        Err(e) => Line::styled(format!("error: {e}"), Style::new().fg(t.error)),
    });
    lines.push(Line::styled("tab: new line  enter: queue  esc: cancel", Style::new().fg(t.dim)));
    let width = area.width.saturating_sub(4).clamp(20, 76);
    let wrapped: u16 = lines.iter().map(|l| (l.width().saturating_sub(1) / (width.saturating_sub(2).max(1) as usize)) as u16).sum();
    let r = super::centered(area, width, lines.len() as u16 + wrapped + 2);
    f.render_widget(Clear, r);
    let block = Block::new().borders(Borders::ALL).border_style(Style::new().fg(t.accent)).title(format!(" sweep of {} ", form.rel));
    f.render_widget(Paragraph::new(lines).wrap(Wrap { trim: false }).block(block), r);
}
