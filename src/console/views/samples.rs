//! The samples view's drawing: the tag list, the step scrubber and per shown run its
//! pane (the image from `app.samples.panes`, the captions beside or below it, or one
//! image of the grid large with its caption), placed by `console::samples::layout`.
use crate::console::app::App;
use crate::console::images::PaneState;
use crate::console::samples::layout;
use ratatui::layout::Rect;
use ratatui::style::{Modifier, Style};
use ratatui::text::{Line, Span};
use ratatui::widgets::{Block, Borders, Paragraph, Wrap};
use ratatui::Frame;

pub fn draw(f: &mut Frame, area: Rect, app: &App) {
    let t = &app.theme;
    let runs = app.sample_runs();
    let areas = layout(area, &app.sample_shapes(), app.samples.cell);
    let zoom = app.sample_zoom();
    let tags = app.sample_tags();
    let focus = app.samples.tag.min(tags.len().saturating_sub(1));
    if areas.tags.width > 0 {
        let lines: Vec<Line> = tags
            .iter()
            .enumerate()
            .map(|(i, tg)| {
                if i == focus {
                    Line::styled(format!("> {tg}"), Style::new().fg(t.accent).add_modifier(Modifier::BOLD))
                } else {
                    Line::raw(format!("  {tg}"))
                }
            })
            .collect();
        f.render_widget(
            Paragraph::new(lines).block(Block::new().borders(Borders::RIGHT).border_style(Style::new().fg(t.border)).title("tags")),
            areas.tags,
        );
    }
    let (tag, steps) = app.sample_steps();
    let step = app.sample_step();
    let scrub = match (&tag, step) {
        _ if runs.is_empty() => Line::styled("samples: select a run in the runs view (mark two to compare)", Style::new().fg(t.dim)),
        (None, _) | (_, None) => Line::styled("no samples in this run yet", Style::new().fg(t.dim)),
        (Some(tag), Some(step)) => {
            let pos = steps.iter().rposition(|x| *x <= step).map(|i| i + 1).unwrap_or(0);
            let follow = if app.samples.step.is_none() { " (newest)" } else { "" };
            let (renderer, more) = renderer_short(&app.samples.renderer);
            let more = if more { " (why: ?)" } else { "" };
            let open = if zoom.is_some() { "  esc: the whole grid" } else { "  enter: open an image" };
            Line::from(vec![
                Span::styled(format!("{tag} step {step}{follow} [{pos}/{}] ", steps.len()), Style::new().fg(t.accent)),
                Span::styled(format!("renderer: {renderer}{more}{open}"), Style::new().fg(t.dim)),
            ])
        }
    };
    let track = match (&tag, step) {
        (Some(_), Some(step)) if !steps.is_empty() => {
            let pos = steps.iter().rposition(|x| *x <= step).unwrap_or(0);
            let w = (areas.scrubber.width as usize).saturating_sub(1).min(60);
            let frac = if steps.len() > 1 { pos as f64 / (steps.len() - 1) as f64 } else { 1.0 };
            let mut s: Vec<char> = vec!['─'; w];
            if w > 0 {
                s[((frac * (w - 1) as f64).round() as usize).min(w - 1)] = '●';
            }
            Line::styled(s.into_iter().collect::<String>(), Style::new().fg(t.dim))
        }
        _ => Line::raw(""),
    };
    f.render_widget(Paragraph::new(vec![scrub, track]), areas.scrubber);
    let events = app.sample_events();
    for (i, ((id, name, _), (block_area, img, cap))) in runs.iter().zip(&areas.panes).enumerate() {
        let ev = events.get(i).copied().flatten();
        let title = match (ev, zoom) {
            (Some(e), Some((k, n))) => format!(" task {id} {name} · step {} · image {}/{n} ", e.step, k + 1),
            (Some(e), None) => format!(" task {id} {name} · step {} ", e.step),
            (None, _) => format!(" task {id} {name} "),
        };
        f.render_widget(Block::new().borders(Borders::ALL).border_style(Style::new().fg(t.border)).title(title), *block_area);
        match (ev, app.samples.panes.get(i)) {
            (None, _) => {
                let msg = if tag.is_some() { "no sample at or before this step" } else { "no samples" };
                f.render_widget(Paragraph::new(Line::styled(msg, Style::new().fg(t.dim))).wrap(Wrap { trim: true }), *img);
            }
            (Some(_), None) => f.render_widget(Paragraph::new(Line::styled("images are off", Style::new().fg(t.dim))), *img),
            (Some(_), Some(p)) => {
                if !matches!(p.state, PaneState::Empty) {
                    f.render_widget(p, *img);
                }
            }
        }
        if let (Some(e), Some((k, n))) = (ev, zoom) {
            let caption = e.captions.get(k).map(String::as_str).unwrap_or("(no caption)");
            let mut lines = vec![Line::from(vec![Span::styled(format!("{}/{n} ", k + 1), Style::new().fg(t.dim)), Span::raw(caption)])];
            if e.tag == RETRIEVAL_TAG {
                lines.push(Line::styled(RETRIEVAL_LEGEND, Style::new().fg(t.dim)));
            }
            f.render_widget(Paragraph::new(lines).wrap(Wrap { trim: true }), *cap);
        } else if let Some(e) = ev {
            let mut lines: Vec<Line> = Vec::new();
            if e.tag == RETRIEVAL_TAG {
                // The captions' marks, which the finetuning job writes (jobs::pretrain).
                lines.push(Line::styled(RETRIEVAL_LEGEND, Style::new().fg(t.dim)));
            }
            lines.extend(
                e.captions
                    .iter()
                    .enumerate()
                    .map(|(k, c)| Line::from(vec![Span::styled(format!("{:>2} ", k + 1), Style::new().fg(t.dim)), Span::raw(c.as_str())])),
            );
            f.render_widget(Paragraph::new(lines).wrap(Wrap { trim: true }), *cap);
        }
    }
}

/// The finetuning job's retrieval preview: per test image, the caption that ranks first.
const RETRIEVAL_TAG: &str = "retrieval";
const RETRIEVAL_LEGEND: &str = "caption ranked first per image: [own] its own, [class] one of its class, [wrong] another class";

/// The renderer's name for the scrubber line: the note up to its reason in brackets
/// (the reason is in the help overlay), and whether there was one.
pub fn renderer_short(note: &str) -> (&str, bool) {
    if note.is_empty() {
        return ("none", false);
    }
    match note.find(" (") {
        Some(i) => (&note[..i], true),
        None => (note, false),
    }
}
