//! The runs view: every task of the daemon with status, group/slot, progress, ETA,
//! speed, latest metrics and age; a detail pane for the selected one and the resources
//! panel (the running workers' CPU and memory, the GPUs).
use super::{bar, human_duration, num};
use crate::console::app::App;
use crate::console::resources::ResourcesPanel;
use crate::supervisor::protocol::TaskView;
use crate::supervisor::state::TaskState;
use ratatui::layout::{Constraint, Layout, Rect};
use ratatui::style::{Color, Modifier, Style};
use ratatui::text::{Line, Span};
use ratatui::widgets::{Block, Borders, Cell, Paragraph, Row, Sparkline, Table, TableState, Wrap};
use ratatui::Frame;

pub fn state_color(app: &App, s: TaskState) -> Color {
    let t = &app.theme;
    match s {
        TaskState::Running => t.running,
        TaskState::Finished => t.ok,
        TaskState::Paused | TaskState::Held | TaskState::Stopped | TaskState::Pruned => t.warn,
        TaskState::Queued => t.text,
        _ => t.error,
    }
}

/// An evaluation's results in the order of the published table (then FD_CLIP).
const EVAL_ORDER: &[&str] = &["eval/r_precision", "eval/r_precision_independent", "eval/fid", "eval/is", "eval/kid", "eval/fd_clip"];

/// The latest values shown in the table: up to `n` tags, losses first, then validation,
/// then evaluation results in `EVAL_ORDER`; a tag's `<tag>_std` is shown with it as ±.
pub fn key_metrics(app: &App, t: &TaskView, n: usize) -> String {
    let Some(r) = app.store.get(&t.task.run_dir) else { return String::new() };
    let latest: std::collections::HashMap<&str, f64> = r.latest().collect();
    let std_of = |tag: &str| latest.get(format!("{tag}_std").as_str()).copied();
    let mut v: Vec<(&str, f64)> =
        r.latest().filter(|(tag, _)| !tag.strip_suffix("_std").is_some_and(|base| latest.contains_key(base))).collect();
    let eval_rank = |tag: &str| EVAL_ORDER.iter().position(|e| *e == tag).unwrap_or(EVAL_ORDER.len());
    v.sort_by_key(|(tag, _)| (!tag.starts_with("loss"), !tag.starts_with("val"), eval_rank(tag), tag.to_string()));
    v.iter()
        .take(n)
        .map(|(tag, val)| {
            let name = tag.rsplit('/').next().unwrap_or(tag);
            match std_of(tag) {
                Some(s) => format!("{name}={}±{}", num(*val), num(s)),
                None => format!("{name}={}", num(*val)),
            }
        })
        .collect::<Vec<_>>()
        .join(" ")
}

pub fn draw(f: &mut Frame, area: Rect, app: &App) {
    let t = &app.theme;
    let tasks = app.visible_tasks();
    let wide = area.width >= 100;
    // Below the table: the selected task's details and the resources panel (side by
    // side when wide, stacked when tall enough), sized to the panel's lines.
    let res_lines = ResourcesPanel(&app.resources).lines().len() as u16 + 2;
    let (mut detail_h, res_h) = match (area.height, wide) {
        (h, true) if h >= 16 => (res_lines.clamp(5, (h / 3).max(5)), 0),
        (h, false) if h >= 24 => (5, res_lines.min(h / 4).max(3)),
        (h, _) if h >= 16 => (5, 0),
        _ => (0, 0),
    };
    // A tall terminal (30+ rows): the rows the table does not need go to the details,
    // which then show the selected run's loss as a sparkline (up to 8 rows of it).
    let table_needs = tasks.len() as u16 + 3;
    if detail_h > 0 && area.height >= 30 {
        let spare = area.height.saturating_sub(table_needs + detail_h + res_h);
        detail_h += spare.min(SPARK_ROWS + 1);
    }
    let [table_area, detail_area, res_area] =
        Layout::vertical([Constraint::Min(3), Constraint::Length(detail_h), Constraint::Length(res_h)]).areas(area);
    let (detail_area, res_area) = if wide && detail_h > 0 {
        let [d, r] = Layout::horizontal([Constraint::Fill(3), Constraint::Fill(2)]).areas(detail_area);
        (d, r)
    } else {
        (detail_area, res_area)
    };
    let header = if wide {
        vec!["", "id", "state", "name", "group/slot", "progress", "it/s", "eta", "latest", "age"]
    } else {
        vec!["", "id", "state", "name", "progress", "age"]
    };
    let rows: Vec<Row> = tasks
        .iter()
        .map(|tv| {
            let task = &tv.task;
            let st = tv.status.as_ref();
            let mark = if app.runs.marked.contains(&task.id) { "●" } else { " " };
            let progress = match st.and_then(|s| s.progress()) {
                Some(p) => format!("{} {:>3.0}%", bar(p, 10), p * 100.0),
                None => match st {
                    Some(s) if s.step > 0 => format!("step {}", s.step),
                    _ => String::new(),
                },
            };
            let since = task.started_at.unwrap_or(task.queued_at);
            let age = human_duration(task.ended_at.unwrap_or(app.now) - since);
            let mut cells = vec![
                Cell::from(mark).style(Style::new().fg(t.run_color(task.id))),
                Cell::from(crate::console::disk::id_label(task.id)),
                Cell::from(task.state.name()).style(Style::new().fg(state_color(app, task.state))),
                Cell::from(format!("{} ({})", App::task_name(tv), app.job_label(tv))),
            ];
            // A sweep's runs: `│ ` before each; a collapsed sweep is one row for all.
            let mut progress = progress;
            // A collapsed sweep's members stopped by its pruning: in the metrics column
            // (wide) or after its name.
            let mut pruned_note = None;
            match &task.sweep {
                Some(s) if app.runs.collapsed.contains(s) => {
                    let members = app.sweep_members(s);
                    let ended = members.iter().filter(|m| m.task.state.is_final()).count();
                    let p = crate::supervisor::sweep::progress(&members);
                    let name = app.sweep_name(s);
                    let pruned = members.iter().filter(|m| m.task.state == TaskState::Pruned).count();
                    pruned_note = (pruned > 0).then(|| format!("{pruned} pruned"));
                    let suffix = pruned_note.as_ref().filter(|_| !wide).map(|n| format!(", {n}")).unwrap_or_default();
                    cells[2] = Cell::from(format!("{ended}/{} ended", members.len())).style(Style::new().fg(t.text));
                    cells[3] = Cell::from(format!("▸ {s} {name}{suffix}")).style(Style::new().add_modifier(Modifier::BOLD));
                    progress = format!("{} {:>3.0}%", bar(p, 10), p * 100.0);
                }
                Some(_) => cells[3] = Cell::from(format!("│ {} ({})", App::task_name(tv), task.job)),
                None => {}
            }
            if wide {
                let slot = match &task.slurm {
                    Some(job) if task.state.is_active() => format!(" #{}", job.job_id),
                    _ => task.slot.map(|s| format!("/{s}")).unwrap_or_default(),
                };
                let speed = st.and_then(|s| s.steps_per_s).filter(|_| task.state.is_active()).map(num).unwrap_or_default();
                let eta = st.and_then(|s| s.eta_s).filter(|_| task.state.is_active()).map(human_duration).unwrap_or_default();
                cells.push(Cell::from(format!("{}{slot}", task.group)));
                cells.push(Cell::from(progress));
                cells.push(Cell::from(speed));
                cells.push(Cell::from(eta));
                cells.push(match &pruned_note {
                    Some(n) => Cell::from(n.clone()).style(Style::new().fg(t.warn)),
                    None => Cell::from(key_metrics(app, tv, 2)),
                });
            } else {
                cells.push(Cell::from(progress));
            }
            cells.push(Cell::from(age).style(Style::new().fg(t.dim)));
            Row::new(cells)
        })
        .collect();
    let widths: Vec<Constraint> = if wide {
        vec![
            Constraint::Length(1),
            Constraint::Length(4),
            Constraint::Length(10),
            Constraint::Fill(2),
            Constraint::Length(11),
            Constraint::Length(15),
            Constraint::Length(6),
            Constraint::Length(7),
            Constraint::Fill(3),
            Constraint::Length(7),
        ]
    } else {
        vec![
            Constraint::Length(1),
            Constraint::Length(3),
            Constraint::Length(9),
            Constraint::Fill(1),
            Constraint::Length(15),
            Constraint::Length(6),
        ]
    };
    let sort = app.runs.sort.map(|s| format!(" sort: {}", s.name())).unwrap_or_default();
    let filter = if app.runs.filter.is_empty() { String::new() } else { format!(" filter: {}", app.runs.filter) };
    let title = format!(" runs ({}){sort}{filter} ", tasks.len());
    let table = Table::new(rows, widths)
        .header(Row::new(header).style(Style::new().fg(t.accent).add_modifier(Modifier::BOLD)))
        .block(Block::new().borders(Borders::ALL).border_style(Style::new().fg(t.border)).title(title))
        .row_highlight_style(Style::new().bg(t.selected_bg).add_modifier(Modifier::BOLD))
        .column_spacing(1);
    let mut state = TableState::default();
    if !tasks.is_empty() {
        state.select(Some(app.runs.selected.min(tasks.len() - 1)));
    }
    f.render_stateful_widget(table, table_area, &mut state);
    if tasks.is_empty() {
        let msg = if app.snapshot.is_none() { "waiting for the daemon..." } else { "no tasks: queue one from the configs view (2)" };
        let inner = Rect {
            x: table_area.x + 2,
            y: table_area.y + 2,
            width: table_area.width.saturating_sub(4),
            height: 1.min(table_area.height.saturating_sub(3)),
        };
        f.render_widget(Paragraph::new(msg).style(Style::new().fg(t.dim)), inner);
    }
    if detail_h > 0 {
        draw_detail(f, detail_area, app);
    }
    if res_area.height > 0 {
        let block = Block::new().borders(Borders::ALL).border_style(Style::new().fg(t.border)).title(" resources ");
        let inner = block.inner(res_area);
        f.render_widget(block, res_area);
        f.render_widget(ResourcesPanel(&app.resources), inner);
    }
}

fn draw_detail(f: &mut Frame, area: Rect, app: &App) {
    let t = &app.theme;
    let block = Block::new().borders(Borders::ALL).border_style(Style::new().fg(t.border));
    let Some(tv) = app.selected_task() else {
        f.render_widget(block, area);
        return;
    };
    let task = &tv.task;
    let mut lines = Vec::new();
    let msg = tv.status.as_ref().map(|s| s.message.as_str()).filter(|m| !m.is_empty()).unwrap_or(task.message.as_str());
    let mut first = vec![Span::styled(format!("run {} ", task.run_id), Style::new().fg(t.accent))];
    if !msg.is_empty() {
        first.push(Span::raw(msg.to_string()));
    }
    if tv.config_changed == Some(true) {
        first.push(Span::styled("  (config changed since queued)", Style::new().fg(t.warn)));
    }
    lines.push(Line::from(first));
    let mut deps = Vec::new();
    if !task.after.is_empty() {
        deps.push(format!("after {:?}", task.after));
    }
    if !task.after_any.is_empty() {
        deps.push(format!("after-any {:?}", task.after_any));
    }
    if let Some(job) = &task.slurm {
        deps.push(job.describe());
    }
    if let Some(s) = &tv.status {
        deps.push(format!("step {}{}", s.step, s.total_steps.map(|n| format!("/{n}")).unwrap_or_default()));
        if let Some(c) = &s.last_checkpoint {
            deps.push(format!("checkpoint {c}"));
        }
    }
    if let Some(r) = app.store.get(&task.run_dir) {
        if r.corrupt() > 0 {
            deps.push(format!("{} corrupt metric lines skipped", r.corrupt()));
        }
    }
    lines.push(Line::styled(deps.join(" · "), Style::new().fg(t.dim)));
    lines.push(Line::raw(key_metrics(app, tv, 8)));
    let inner = block.inner(area);
    let kind = if app.is_disk_run(task.id) { "run" } else { "task" };
    f.render_widget(block.title(format!(" {kind} {} ", crate::console::disk::id_label(task.id))), area);
    // Room under the three lines: the main loss as a sparkline.
    let spark = app.store.get(&task.run_dir).and_then(main_loss).filter(|_| inner.height >= 3 + 2);
    let text_h = if spark.is_some() { 3 } else { inner.height };
    f.render_widget(Paragraph::new(lines).wrap(Wrap { trim: true }), Rect { height: text_h.min(inner.height), ..inner });
    if let Some((tag, values)) = spark {
        let rows = Rect { y: inner.y + 3, height: inner.height - 3, ..inner };
        let (first, last) = (values[0], values[values.len() - 1]);
        let label = format!("{tag} {} → {} ({} points)", num(first), num(last), values.len());
        f.render_widget(Paragraph::new(Line::styled(label, Style::new().fg(t.dim))), Rect { height: 1, ..rows });
        let data = spark_data(&values, rows.width as usize);
        let chart = Rect { y: rows.y + 1, height: (rows.height - 1).min(SPARK_ROWS), ..rows };
        f.render_widget(Sparkline::default().data(&data).style(Style::new().fg(t.run_color(task.id))), chart);
    }
}

/// The most rows the details' loss sparkline takes.
const SPARK_ROWS: u16 = 8;

/// The run's main loss: its first `loss/*total*` tag, else its first `loss/` tag, with
/// the values in logged order (None without one).
fn main_loss(r: &crate::console::store::RunData) -> Option<(String, Vec<f64>)> {
    let losses = || r.tags.iter().filter(|(t, s)| t.starts_with("loss/") && !s.values.is_empty());
    let (tag, s) = losses().find(|(t, _)| t.contains("total")).or_else(|| losses().next())?;
    let values: Vec<f64> = s.values.iter().copied().filter(|v| v.is_finite()).collect();
    (!values.is_empty()).then(|| (tag.clone(), values))
}

/// `values` as `width` sparkline bars: the mean of each of `width` equal spans, scaled
/// from the smallest (1) to the largest (100), so a flat curve still shows.
pub fn spark_data(values: &[f64], width: usize) -> Vec<u64> {
    if values.is_empty() || width == 0 {
        return Vec::new();
    }
    let n = values.len();
    let w = width.min(n);
    let means: Vec<f64> = (0..w)
        .map(|i| {
            let span = &values[i * n / w..((i + 1) * n / w).max(i * n / w + 1)];
            span.iter().sum::<f64>() / span.len() as f64
        })
        .collect();
    let (lo, hi) = means.iter().fold((f64::INFINITY, f64::NEG_INFINITY), |(a, b), v| (a.min(*v), b.max(*v)));
    means.iter().map(|v| if hi > lo { 1 + ((v - lo) / (hi - lo) * 99.0).round() as u64 } else { 50 }).collect()
}
