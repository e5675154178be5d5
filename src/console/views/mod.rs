//! Drawing: a pure function of the [`App`] state. Each view draws its body and names
//! its key hints; the frame adds the tab bar, the hint line and the popup stack.
pub mod configs;
pub mod curves;
pub mod help;
pub mod logs;
pub mod plot_canvas;
pub mod runs;
pub mod samples;
pub mod sweep_table;

use super::app::{App, Popup, View, VIEWS};
use super::keys::Action;
use ratatui::layout::{Constraint, Layout, Rect};
use ratatui::style::{Modifier, Style};
use ratatui::text::{Line, Span};
use ratatui::widgets::{Block, Borders, Clear, Paragraph, Wrap};
use ratatui::Frame;

pub fn draw(f: &mut Frame, app: &App) {
    let area = f.area();
    if area.width < 10 || area.height < 4 {
        f.render_widget(Paragraph::new("too small"), area);
        return;
    }
    let [top, body, bottom] = Layout::vertical([Constraint::Length(1), Constraint::Min(1), Constraint::Length(1)]).areas(area);
    draw_tabs(f, top, app);
    match app.view {
        View::Runs => runs::draw(f, body, app),
        View::Configs => configs::draw(f, body, app),
        View::Curves => curves::draw(f, body, app),
        View::Logs => logs::draw(f, body, app),
        View::Samples => samples::draw(f, body, app),
    }
    draw_bottom(f, bottom, app);
    for p in &app.popups {
        draw_popup(f, area, app, p);
    }
}

fn draw_tabs(f: &mut Frame, area: Rect, app: &App) {
    let t = &app.theme;
    let mut spans = Vec::new();
    for (i, v) in VIEWS.iter().enumerate() {
        let style = if *v == app.view {
            Style::new().fg(t.accent).add_modifier(Modifier::BOLD | Modifier::REVERSED)
        } else {
            Style::new().fg(t.dim)
        };
        spans.push(Span::styled(format!(" {} {} ", i + 1, v.title()), style));
    }
    let daemon = match (&app.snapshot, &app.daemon_error) {
        (_, Some(e)) => Span::styled(format!(" daemon: {}", first_line(e)), Style::new().fg(t.error)),
        (Some(s), None) => {
            let running = s.tasks.iter().filter(|t| t.task.state.is_active()).count();
            let queued = s.tasks.iter().filter(|t| !t.task.state.is_final() && !t.task.state.is_active()).count();
            Span::styled(format!(" daemon {} · {running} running · {queued} queued", s.daemon_pid), Style::new().fg(t.dim))
        }
        (None, None) => Span::styled(" connecting...", Style::new().fg(t.dim)),
    };
    spans.push(daemon);
    f.render_widget(Paragraph::new(Line::from(spans)), area);
}

/// The key hints of the current view, then the last message.
fn draw_bottom(f: &mut Frame, area: Rect, app: &App) {
    let t = &app.theme;
    let ctx = app.view.context();
    let wanted: &[Action] = match app.view {
        View::Runs => &[
            Action::Kill,
            Action::Pause,
            Action::Resume,
            Action::ResumeRun,
            Action::FollowLogs,
            Action::Mark,
            Action::ShowCurves,
            Action::Filter,
        ],
        View::Configs => &[Action::Queue, Action::QueueSweep, Action::Mark, Action::QueuePipeline, Action::QueueFake, Action::Rescan],
        View::Curves if app.shown_sweep().is_some() => &[
            Action::ColourKey,
            Action::GroupMean,
            Action::SweepTable,
            Action::TableSort,
            Action::Smoothing,
            Action::ZoomIn,
            Action::Filter,
        ],
        View::Curves => &[Action::Smoothing, Action::LogY, Action::XAxis, Action::ZoomIn, Action::Cursor, Action::Filter],
        View::Logs => &[Action::Search, Action::NextMatch, Action::Follow, Action::ToggleStderr],
        View::Samples => &[Action::StepPrev, Action::StepNext, Action::Top, Action::Bottom],
    };
    let mut spans = Vec::new();
    if !app.message.is_empty() {
        let style = if app.message.starts_with("error") { Style::new().fg(t.error) } else { Style::new().fg(t.warn) };
        spans.push(Span::styled(format!("{} ", first_line(&app.message)), style));
    }
    for a in wanted.iter().chain([Action::Help, Action::Quit].iter()) {
        if let Some(k) = app.keys.key_for(ctx, *a) {
            spans.push(Span::styled(k, Style::new().fg(t.accent)));
            spans.push(Span::styled(format!(" {} ", short(*a)), Style::new().fg(t.dim)));
        }
    }
    f.render_widget(Paragraph::new(Line::from(spans)), area);
}

fn short(a: Action) -> &'static str {
    match a {
        Action::Kill => "kill",
        Action::Pause => "pause",
        Action::Resume => "resume",
        Action::ResumeRun => "continue",
        Action::FollowLogs => "logs",
        Action::Mark => "mark",
        Action::ShowCurves => "curves",
        Action::Filter => "filter",
        Action::Queue => "queue",
        Action::QueuePipeline => "pipeline",
        Action::Rescan => "rescan",
        Action::QueueFake => "fake-run",
        Action::QueueSweep => "sweep",
        Action::Smoothing => "smooth",
        Action::LogY => "log-y",
        Action::XAxis => "x-axis",
        Action::ZoomIn => "zoom",
        Action::Cursor => "cursor",
        Action::ColourKey => "colour key",
        Action::GroupMean => "bands",
        Action::SweepTable => "table",
        Action::TableSort => "sort",
        Action::Search => "search",
        Action::NextMatch => "next",
        Action::Follow => "follow",
        Action::ToggleStderr => "stderr",
        Action::StepPrev => "step-",
        Action::StepNext => "step+",
        Action::Top => "first",
        Action::Bottom => "newest",
        Action::Help => "help",
        Action::Quit => "quit",
        _ => "",
    }
}

pub fn first_line(s: &str) -> &str {
    s.lines().next().unwrap_or("")
}

/// A centred rectangle of at most `w` x `h` inside `area`.
pub fn centered(area: Rect, w: u16, h: u16) -> Rect {
    let w = w.min(area.width);
    let h = h.min(area.height);
    Rect { x: area.x + (area.width - w) / 2, y: area.y + (area.height - h) / 2, width: w, height: h }
}

fn draw_popup(f: &mut Frame, area: Rect, app: &App, p: &Popup) {
    let t = &app.theme;
    match p {
        Popup::Help => help::draw(f, area, app),
        Popup::Confirm { question, .. } => {
            let r = centered(area, 60, 5);
            f.render_widget(Clear, r);
            let block = Block::new().borders(Borders::ALL).border_style(Style::new().fg(t.warn)).title(" confirm ");
            f.render_widget(Paragraph::new(question.as_str()).wrap(Wrap { trim: true }).block(block), r);
        }
        Popup::Text { title, lines, top } => {
            let r = centered(area, area.width.saturating_sub(4).max(20), area.height.saturating_sub(2).max(5));
            f.render_widget(Clear, r);
            let block = Block::new().borders(Borders::ALL).border_style(Style::new().fg(t.accent)).title(title.as_str());
            let half = (r.width.saturating_sub(2) / 2) as usize;
            let keyw = (half / 2).max(8);
            let rows: Vec<Line> = lines
                .iter()
                .skip(*top)
                .map(|d| {
                    let side = |v: &Option<String>, w: usize| -> String {
                        let s = v.clone().unwrap_or_else(|| "(absent)".into());
                        let s: String = s.chars().take(w.saturating_sub(1)).collect();
                        format!("{s:<w$}")
                    };
                    let w = (r.width.saturating_sub(2) as usize).saturating_sub(keyw + 3) / 2;
                    let key: String = d.key.chars().take(keyw).collect();
                    Line::from(vec![
                        Span::styled(format!("{key:<keyw$} "), Style::new().fg(t.accent)),
                        Span::styled(side(&d.a, w), Style::new().fg(t.error)),
                        Span::raw("│ "),
                        Span::styled(side(&d.b, w), Style::new().fg(t.ok)),
                    ])
                })
                .collect();
            let rows = if rows.is_empty() { vec![Line::raw("the configs are the same")] } else { rows };
            f.render_widget(Paragraph::new(rows).block(block), r);
        }
        Popup::Sweep(form) => configs::draw_sweep_form(f, area, app, form),
        Popup::Input { prompt, text, .. } => {
            let r = centered(area, 64, 3);
            f.render_widget(Clear, r);
            let block = Block::new().borders(Borders::ALL).border_style(Style::new().fg(t.accent)).title(format!(" {prompt} "));
            let line = Line::from(vec![Span::raw(text.as_str()), Span::styled("▏", Style::new().fg(t.accent))]);
            f.render_widget(Paragraph::new(line).block(block), r);
        }
    }
}

/// A text progress bar of `width` cells.
pub fn bar(frac: f64, width: usize) -> String {
    let frac = frac.clamp(0.0, 1.0);
    let eighths = (frac * width as f64 * 8.0).round() as usize;
    let full = eighths / 8;
    let rem = eighths % 8;
    let mut s = "█".repeat(full.min(width));
    if full < width {
        if rem > 0 {
            s.push(['▏', '▎', '▍', '▌', '▋', '▊', '▉'][rem - 1]);
            s.push_str(&" ".repeat(width - full - 1));
        } else {
            s.push_str(&" ".repeat(width - full));
        }
    }
    s
}

/// A duration like `42s`, `3m05s`, `2h07m`, `3d04h`.
pub fn human_duration(s: f64) -> String {
    if !s.is_finite() || s < 0.0 {
        return "-".into();
    }
    let s = s.round() as u64;
    match s {
        0..=59 => format!("{s}s"),
        60..=3599 => format!("{}m{:02}s", s / 60, s % 60),
        3600..=86_399 => format!("{}h{:02}m", s / 3600, (s % 3600) / 60),
        _ => format!("{}d{:02}h", s / 86_400, (s % 86_400) / 3600),
    }
}

/// A value in a few characters (4 significant digits).
pub fn num(v: f64) -> String {
    if v.is_nan() {
        return "NaN".into();
    }
    if v.is_infinite() {
        return if v > 0.0 { "inf".into() } else { "-inf".into() };
    }
    let a = v.abs();
    if a != 0.0 && !(1e-3..1e5).contains(&a) {
        format!("{v:.3e}")
    } else {
        let s = format!("{v:.4}");
        let s = s.trim_end_matches('0').trim_end_matches('.');
        if s.is_empty() || s == "-" {
            "0".into()
        } else {
            s.to_string()
        }
    }
}
