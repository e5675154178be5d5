//! The sweep table under the curves view's charts: one row per combination of the shown
//! sweep's varied values (its seeds aggregated: `n`, and each metric as mean ± std over
//! them), the states, and per metric tag its final and best value (`↑`/`↓`: which way
//! is better, `sweep_curves::higher_is_better`). `o` cycles the sort column (marked ▲
//! or ▼), `O` reverses it. Columns that do not fit are left out from the right.
use super::num;
use crate::console::app::App;
use crate::console::sweep_curves::Stat;
use ratatui::layout::{Constraint, Rect};
use ratatui::style::{Modifier, Style};
use ratatui::text::{Line, Span};
use ratatui::widgets::{Block, Borders, Cell, Paragraph, Row, Table};
use ratatui::Frame;

/// A cell of a metric: the mean, with ± std when several seeds have it.
fn stat_cell(s: Option<Stat>) -> String {
    match s {
        None => "-".into(),
        Some(s) if s.n > 1 => format!("{}±{}", num(s.mean), num(s.std)),
        Some(s) => num(s.mean),
    }
}

pub fn draw(f: &mut Frame, area: Rect, app: &App) {
    let t = &app.theme;
    let Some(table) = app.sweep_table() else { return };
    let headers = table.headers();
    let sort = app.curves.sweep.sort % headers.len().max(1);
    let nk = table.keys.len();
    let cells: Vec<Vec<String>> = table
        .rows
        .iter()
        .map(|r| {
            let mut c = r.values.clone();
            c.push(r.ids.len().to_string());
            c.push(r.state.clone());
            for (fin, best) in &r.metrics {
                c.push(stat_cell(*fin));
                c.push(stat_cell(*best));
            }
            c
        })
        .collect();
    // Column widths from the contents (at most 24), as many columns as fit.
    let mut widths = Vec::new();
    let mut used = 2u16;
    for (i, h) in headers.iter().enumerate() {
        let w = cells.iter().map(|c| c[i].chars().count()).chain([h.chars().count() + 1]).max().unwrap_or(1).min(24) as u16;
        if used + w + 1 > area.width.saturating_sub(2) && i > 0 {
            break;
        }
        used += w + 1;
        widths.push(w);
    }
    let shown = widths.len();
    let arrow = if app.curves.sweep.descending { "▼" } else { "▲" };
    let header = Row::new(headers.iter().take(shown).enumerate().map(|(i, h)| {
        let style = if i == sort { Style::new().fg(t.accent).add_modifier(Modifier::BOLD) } else { Style::new().fg(t.dim) };
        Cell::from(Span::styled(if i == sort { format!("{h}{arrow}") } else { h.clone() }, style))
    }));
    let rows = table.rows.iter().zip(&cells).map(|(r, c)| {
        Row::new(c.iter().take(shown).enumerate().map(|(i, v)| {
            // The varied values in the row's colour (the chart's colour of its value).
            if i < nk {
                Cell::from(Span::styled(v.clone(), Style::new().fg(r.color)))
            } else {
                Cell::from(v.clone())
            }
        }))
    });
    let hidden = headers.len() - shown;
    let title = format!(
        " {} combinations · sorted by {}{} · o sort, O reverse{} ",
        table.rows.len(),
        headers.get(sort).map_or("", |h| h.as_str()),
        arrow,
        if hidden > 0 { format!(" · {hidden} columns left out (/ filters tags)") } else { String::new() }
    );
    let block = Block::new().borders(Borders::ALL).border_style(Style::new().fg(t.border)).title(title);
    if table.rows.is_empty() {
        f.render_widget(Paragraph::new(Line::styled("no members", Style::new().fg(t.dim))).block(block), area);
        return;
    }
    let constraints: Vec<Constraint> = widths.iter().map(|w| Constraint::Length(*w)).collect();
    f.render_widget(Table::new(rows, constraints).header(header).block(block).column_spacing(1), area);
}
