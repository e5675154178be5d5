//! The console's state and how events change it. One owner (the main loop) holds the
//! [`App`]; events come in through [`App::handle`], which returns the commands to send to
//! the daemon; drawing (`views::draw`) only reads the state.
use super::config_diff::{config_diff, DiffLine};
use super::event::{Cmd, Event};
use super::keys::{Action, Keymap};
use super::queue_form::parse_queue_form;
use super::store::{Store, XAxis};
use super::theme::Theme;
use crate::supervisor::pipeline::Pipeline;
use crate::supervisor::protocol::{AddTask, ConfigEntry, ConfigIndex, Snapshot, TaskView};
use crate::supervisor::state::TaskState;
use ratatui::crossterm::event::{KeyCode, KeyEvent, KeyModifiers};
use std::collections::BTreeSet;
use std::path::{Path, PathBuf};

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum View {
    Runs,
    Configs,
    Curves,
    Logs,
    Samples,
}

pub const VIEWS: [View; 5] = [View::Runs, View::Configs, View::Curves, View::Logs, View::Samples];

impl View {
    pub fn title(self) -> &'static str {
        match self {
            View::Runs => "Runs",
            View::Configs => "Configs",
            View::Curves => "Curves",
            View::Logs => "Logs",
            View::Samples => "Samples",
        }
    }
    /// The key-binding context.
    pub fn context(self) -> &'static str {
        match self {
            View::Runs => "runs",
            View::Configs => "configs",
            View::Curves => "curves",
            View::Logs => "logs",
            View::Samples => "samples",
        }
    }
}

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum SortKey {
    Id,
    State,
    Name,
    Progress,
}

impl SortKey {
    pub fn next(self) -> SortKey {
        match self {
            SortKey::Id => SortKey::State,
            SortKey::State => SortKey::Name,
            SortKey::Name => SortKey::Progress,
            SortKey::Progress => SortKey::Id,
        }
    }
    pub fn name(self) -> &'static str {
        match self {
            SortKey::Id => "id",
            SortKey::State => "state",
            SortKey::Name => "name",
            SortKey::Progress => "progress",
        }
    }
}

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Smoothing {
    Off,
    Ema,
    Moving,
}

#[derive(Clone, Debug, PartialEq)]
pub enum InputPurpose {
    RunsFilter,
    LogSearch,
    CurvesFilter,
    /// Queue this config: the text is `GROUP [ID...] [any:ID...] [-- ARGS...]`.
    QueueConfig(PathBuf),
    /// Queue a `fake-run` (no config): the same form.
    QueueFake,
}

#[derive(Clone, Debug)]
pub enum Popup {
    Help,
    Input {
        purpose: InputPurpose,
        prompt: String,
        text: String,
    },
    Confirm {
        question: String,
        cmd: Cmd,
    },
    /// Read-only text (the config diff), scrolled by `top`.
    Text {
        title: String,
        lines: Vec<DiffLine>,
        top: usize,
    },
}

#[derive(Default)]
pub struct RunsState {
    pub selected: usize,
    pub sort: Option<SortKey>,
    pub filter: String,
    pub marked: BTreeSet<u64>,
    /// A run pinned as the baseline: always among the curves, drawn bold.
    pub baseline: Option<u64>,
}

#[derive(Default)]
pub struct LogsState {
    pub task: Option<u64>,
    pub stderr: bool,
    pub follow: bool,
    pub lines: Vec<String>,
    /// Index of the first line shown when not following.
    pub top: usize,
    pub search: String,
    /// The line of the current match.
    pub current: Option<usize>,
    /// (file, length) of what `lines` holds.
    loaded: Option<(PathBuf, u64)>,
}

#[derive(Default)]
pub struct ConfigsState {
    pub selected: usize,
    pub marked: BTreeSet<PathBuf>,
}

pub struct CurvesState {
    pub smoothing: Smoothing,
    /// EMA weight in [0, 0.999].
    pub ema_weight: f64,
    pub window: usize,
    pub log_y: BTreeSet<String>,
    pub x_axis: XAxis,
    /// Visible part of the full x range, as fractions.
    pub zoom: (f64, f64),
    pub focus: usize,
    /// Cursor position as a fraction of the visible x range.
    pub cursor: Option<f64>,
    pub filter: String,
    /// Runs of one config (same config hash, two or more) drawn as their mean with a
    /// min-max band.
    pub group_mean: bool,
}

impl Default for CurvesState {
    fn default() -> CurvesState {
        CurvesState {
            smoothing: Smoothing::Ema,
            ema_weight: 0.6,
            window: 10,
            log_y: BTreeSet::new(),
            x_axis: XAxis::Step,
            zoom: (0.0, 1.0),
            focus: 0,
            cursor: None,
            filter: String::new(),
            group_mean: false,
        }
    }
}

pub struct App {
    pub home: PathBuf,
    pub view: View,
    pub keys: Keymap,
    pub theme: Theme,
    /// Unix seconds (from the timer, so tests can fix it).
    pub now: f64,
    pub size: (u16, u16),
    pub snapshot: Option<Snapshot>,
    pub daemon_error: Option<String>,
    pub configs: Option<ConfigIndex>,
    pub store: Store,
    pub runs: RunsState,
    pub logs: LogsState,
    pub cfgs: ConfigsState,
    pub curves: CurvesState,
    pub popups: Vec<Popup>,
    /// The last command outcome or hint, shown in the bottom line.
    pub message: String,
    pub quit: bool,
    /// Decimated curves by everything they depend on (see views::curves).
    pub decim: super::views::curves::DecimCache,
    /// The samples view's state and image thread (see views::samples).
    pub samples: super::views::samples::SamplesState,
    /// The latest resources sample (the runs view's resources panel).
    pub resources: super::resources::ResourceSnapshot,
}

/// Log bytes kept from the end of a log file.
const LOG_TAIL_BYTES: u64 = 512 * 1024;

impl App {
    pub fn new(home: &Path, keys: Keymap, theme: Theme) -> App {
        App {
            home: home.to_path_buf(),
            view: View::Runs,
            keys,
            theme,
            now: crate::util::unix_now(),
            size: (80, 24),
            snapshot: None,
            daemon_error: None,
            configs: None,
            store: Store::default(),
            runs: RunsState::default(),
            logs: LogsState { follow: true, ..LogsState::default() },
            cfgs: ConfigsState::default(),
            curves: CurvesState::default(),
            popups: Vec::new(),
            message: String::new(),
            quit: false,
            decim: Default::default(),
            samples: Default::default(),
            resources: Default::default(),
        }
    }

    /// The worker processes to watch for the resources panel: (pid, "id name") of every
    /// task whose worker the daemon knows.
    pub fn worker_pids(&self) -> Vec<(u32, String)> {
        let Some(snap) = &self.snapshot else { return Vec::new() };
        snap.tasks
            .iter()
            .filter(|t| t.task.state.is_active())
            .filter_map(|t| t.task.procs.as_ref()?.worker.map(|w| (w.pid, format!("{} {}", t.task.id, App::task_name(t)))))
            .collect()
    }

    /// Select and follow these tasks (mark them for the curves, select the first).
    pub fn focus(&mut self, ids: &[u64]) {
        self.runs.marked.extend(ids.iter().copied());
        if let Some(first) = ids.first() {
            self.logs.task = Some(*first);
            if let Some(i) = self.visible_tasks().iter().position(|t| t.task.id == *first) {
                self.runs.selected = i;
            }
        }
    }

    pub fn tasks(&self) -> &[TaskView] {
        self.snapshot.as_ref().map(|s| s.tasks.as_slice()).unwrap_or(&[])
    }

    pub fn task(&self, id: u64) -> Option<&TaskView> {
        self.tasks().iter().find(|t| t.task.id == id)
    }

    /// The name shown for a task: its label, else the run id's name part.
    pub fn task_name(t: &TaskView) -> String {
        if let Some(l) = &t.task.label {
            return l.clone();
        }
        match &t.task.config {
            Some(c) => c.file_stem().map(|s| s.to_string_lossy().to_string()).unwrap_or_default(),
            None => t.task.job.clone(),
        }
    }

    /// Tasks after the runs view's filter and sort.
    pub fn visible_tasks(&self) -> Vec<&TaskView> {
        let f = self.runs.filter.to_lowercase();
        let mut v: Vec<&TaskView> = self
            .tasks()
            .iter()
            .filter(|t| {
                f.is_empty()
                    || App::task_name(t).to_lowercase().contains(&f)
                    || t.task.job.contains(&f)
                    || t.task.state.name().contains(&f)
                    || t.task.group.to_lowercase().contains(&f)
                    || t.task.run_id.to_lowercase().contains(&f)
            })
            .collect();
        match self.runs.sort {
            None | Some(SortKey::Id) => v.sort_by_key(|t| t.task.id),
            Some(SortKey::State) => v.sort_by_key(|t| (state_rank(t.task.state), t.task.id)),
            Some(SortKey::Name) => v.sort_by_key(|t| (App::task_name(t), t.task.id)),
            Some(SortKey::Progress) => v.sort_by(|a, b| {
                let p = |t: &TaskView| t.status.as_ref().and_then(|s| s.progress()).unwrap_or(-1.0);
                p(b).total_cmp(&p(a)).then(a.task.id.cmp(&b.task.id))
            }),
        }
        v
    }

    pub fn selected_task(&self) -> Option<&TaskView> {
        let v = self.visible_tasks();
        v.get(self.runs.selected.min(v.len().saturating_sub(1))).copied()
    }

    /// The runs the curves view shows: the marked ones, else the selected one; and the
    /// baseline.
    pub fn shown_runs(&self) -> Vec<&TaskView> {
        let mut v: Vec<&TaskView> = if !self.runs.marked.is_empty() {
            self.tasks().iter().filter(|t| self.runs.marked.contains(&t.task.id)).collect()
        } else {
            self.selected_task().into_iter().collect()
        };
        if let Some(b) = self.runs.baseline.and_then(|b| self.task(b)) {
            if !v.iter().any(|t| t.task.id == b.task.id) {
                v.push(b);
            }
        }
        v.sort_by_key(|t| t.task.id);
        v
    }

    /// The config files in tree order.
    pub fn config_files(&self) -> Vec<&ConfigEntry> {
        let mut v: Vec<&ConfigEntry> = self.configs.as_ref().map(|c| c.files.iter().collect()).unwrap_or_default();
        v.sort_by(|a, b| a.rel.cmp(&b.rel));
        v
    }

    pub fn selected_config(&self) -> Option<&ConfigEntry> {
        let v = self.config_files();
        v.get(self.cfgs.selected.min(v.len().saturating_sub(1))).copied()
    }

    /// Apply an event; returns the commands for the daemon.
    pub fn handle(&mut self, ev: Event) -> Vec<Cmd> {
        match ev {
            Event::Key(k) => {
                let cmds = self.on_key(k);
                self.sync_samples();
                return cmds;
            }
            Event::Resize(w, h) => {
                self.size = (w, h);
                self.request_samples();
            }
            Event::ImageReady => {
                self.samples.update();
            }
            Event::Resources(r) => self.resources = *r,
            Event::Tick(now) => {
                self.now = now;
                self.poll_data();
            }
            Event::Snapshot(s) => {
                self.daemon_error = None;
                self.snapshot = Some(*s);
                self.sync_store();
                self.poll_data();
            }
            Event::Configs(c) => self.configs = Some(c),
            Event::DaemonError(e) => self.daemon_error = Some(e),
            Event::Message(m) => self.message = m,
        }
        Vec::new()
    }

    /// Track the run folders of the daemon's tasks, forget the others.
    pub fn sync_store(&mut self) {
        let dirs: BTreeSet<PathBuf> = self.tasks().iter().map(|t| t.task.run_dir.clone()).collect();
        for d in &dirs {
            self.store.track(d);
        }
        self.store.retain(|p| dirs.contains(p));
    }

    /// Read new metrics and log lines (called on the timer and after changes).
    pub fn poll_data(&mut self) {
        self.refresh_status();
        self.store.poll();
        self.refresh_smoothing();
        self.reload_log();
        self.sync_samples();
    }

    /// Progress lives in each run's `status.json`, which the worker rewrites without the
    /// daemon's revision changing: read it for running tasks (and for tasks the snapshot
    /// has no status for).
    pub fn refresh_status(&mut self) {
        let Some(snap) = self.snapshot.as_mut() else { return };
        for t in snap.tasks.iter_mut() {
            if !(t.task.state.is_active() || t.status.is_none()) {
                continue;
            }
            // Unreadable or half-written: keep what we had.
            if let Ok(Some(s)) = crate::rundir::read_status(&t.task.run_dir) {
                t.status = Some(s);
            }
        }
    }

    /// Recompute smoothed series whose data or smoothing changed.
    pub fn refresh_smoothing(&mut self) {
        let key = match self.curves.smoothing {
            Smoothing::Off => None,
            Smoothing::Ema => Some((1u8, self.curves.ema_weight.to_bits())),
            Smoothing::Moving => Some((2u8, self.curves.window as u64)),
        };
        for run in self.store.runs.values_mut() {
            for s in run.tags.values_mut() {
                let fresh = s.smoothed_for == key && (key.is_none() || s.smoothed.len() == s.values.len());
                if fresh {
                    continue;
                }
                s.smoothed = match key {
                    None => Vec::new(),
                    Some((1, _)) => crate::plot::series::ema_debiased(&s.values, self.curves.ema_weight),
                    Some(_) => crate::plot::series::moving_average(&s.values, self.curves.window),
                };
                s.smooth_blocks = super::store::Blocks::of(&s.smoothed);
                s.smoothed_for = key;
            }
        }
    }

    fn log_path(&self) -> Option<PathBuf> {
        let id = self.logs.task?;
        let t = self.task(id)?;
        let rel = if self.logs.stderr { crate::rundir::STDERR_LOG } else { crate::rundir::STDOUT_LOG };
        Some(t.task.run_dir.join(rel))
    }

    /// Re-read the end of the followed log when it changed.
    pub fn reload_log(&mut self) {
        let Some(path) = self.log_path() else {
            self.logs.lines.clear();
            self.logs.loaded = None;
            return;
        };
        let len = std::fs::metadata(&path).map(|m| m.len()).unwrap_or(0);
        if self.logs.loaded.as_ref() == Some(&(path.clone(), len)) {
            return;
        }
        self.logs.lines = crate::rundir::logs::tail_lines(&path, LOG_TAIL_BYTES).into_iter().map(|l| l.replace('\t', "    ")).collect();
        self.logs.loaded = Some((path, len));
    }

    fn page(&self) -> usize {
        (self.size.1 as usize).saturating_sub(6).max(1)
    }

    fn on_key(&mut self, k: KeyEvent) -> Vec<Cmd> {
        if let Some(top) = self.popups.last_mut() {
            match top {
                Popup::Help => {
                    self.popups.pop();
                }
                Popup::Text { top, lines, .. } => match self.keys.lookup("global", &k) {
                    Some(Action::Down) => *top = (*top + 1).min(lines.len().saturating_sub(1)),
                    Some(Action::Up) => *top = top.saturating_sub(1),
                    Some(Action::PageDown) => *top = (*top + 10).min(lines.len().saturating_sub(1)),
                    Some(Action::PageUp) => *top = top.saturating_sub(10),
                    _ => {
                        self.popups.pop();
                    }
                },
                Popup::Confirm { cmd, .. } => {
                    let cmd = cmd.clone();
                    self.popups.pop();
                    if matches!(k.code, KeyCode::Char('y') | KeyCode::Enter) {
                        return vec![cmd];
                    }
                    self.message = "cancelled".into();
                }
                Popup::Input { purpose, text, .. } => {
                    match k.code {
                        KeyCode::Esc => {
                            let purpose = purpose.clone();
                            self.popups.pop();
                            // Esc on a filter clears it.
                            self.set_input(&purpose, String::new(), false);
                        }
                        KeyCode::Enter => {
                            let (purpose, text) = (purpose.clone(), text.clone());
                            self.popups.pop();
                            return self.set_input(&purpose, text, true);
                        }
                        KeyCode::Backspace => {
                            text.pop();
                            let (purpose, text) = (purpose.clone(), text.clone());
                            self.set_input(&purpose, text, false);
                        }
                        KeyCode::Char(c) if !k.modifiers.contains(KeyModifiers::CONTROL) => {
                            text.push(c);
                            let (purpose, text) = (purpose.clone(), text.clone());
                            self.set_input(&purpose, text, false);
                        }
                        _ => {}
                    }
                }
            }
            return Vec::new();
        }
        let Some(action) = self.keys.lookup(self.view.context(), &k) else { return Vec::new() };
        self.on_action(action)
    }

    /// Live effect of an input popup's text (filters update as typed); `done` on Enter.
    fn set_input(&mut self, purpose: &InputPurpose, text: String, done: bool) -> Vec<Cmd> {
        match purpose {
            InputPurpose::RunsFilter => {
                self.runs.filter = text;
                self.runs.selected = 0;
            }
            InputPurpose::CurvesFilter => {
                self.curves.filter = text;
                self.curves.focus = 0;
            }
            InputPurpose::LogSearch => {
                self.logs.search = text;
                if done {
                    self.jump_match(true, true);
                }
            }
            InputPurpose::QueueConfig(_) | InputPurpose::QueueFake => {
                if done {
                    let parsed = match purpose {
                        InputPurpose::QueueConfig(path) => parse_queue_form(&text, Some(path)),
                        _ => parse_queue_form(&text, None).map(|t| AddTask { job: Some("fake-run".into()), ..t }),
                    };
                    return match parsed {
                        Ok(t) => vec![Cmd::Add(t)],
                        Err(e) => {
                            self.message = format!("error: {e}");
                            Vec::new()
                        }
                    };
                }
            }
        }
        Vec::new()
    }

    fn on_action(&mut self, a: Action) -> Vec<Cmd> {
        use Action::*;
        match a {
            Quit => self.quit = true,
            Help => self.popups.push(Popup::Help),
            ViewRuns => self.view = View::Runs,
            ViewConfigs => self.view = View::Configs,
            ViewCurves => self.view = View::Curves,
            ViewLogs => self.open_logs(),
            ViewSamples => self.view = View::Samples,
            NextView | PrevView => {
                let i = VIEWS.iter().position(|v| *v == self.view).unwrap_or(0);
                let n = VIEWS.len();
                self.view = VIEWS[if a == NextView { (i + 1) % n } else { (i + n - 1) % n }];
            }
            Up | Down | PageUp | PageDown | Top | Bottom => self.move_selection(a),
            Back => {
                if self.view == View::Curves && self.curves.cursor.is_some() {
                    self.curves.cursor = Option::None;
                } else {
                    self.message.clear();
                }
            }
            _ => {
                return match self.view {
                    View::Runs => self.runs_action(a),
                    View::Configs => self.configs_action(a),
                    View::Curves => {
                        self.curves_action(a);
                        Vec::new()
                    }
                    View::Logs => {
                        self.logs_action(a);
                        Vec::new()
                    }
                    View::Samples => {
                        self.scrub(a);
                        Vec::new()
                    }
                }
            }
        }
        Vec::new()
    }

    fn move_selection(&mut self, a: Action) {
        let page = self.page();
        let step = |cur: usize, len: usize| -> usize {
            let last = len.saturating_sub(1);
            match a {
                Action::Up => cur.saturating_sub(1),
                Action::Down => (cur + 1).min(last),
                Action::PageUp => cur.saturating_sub(page),
                Action::PageDown => (cur + page).min(last),
                Action::Top => 0,
                _ => last,
            }
        };
        match self.view {
            View::Runs => {
                let n = self.visible_tasks().len();
                self.runs.selected = step(self.runs.selected.min(n.saturating_sub(1)), n);
            }
            View::Configs => {
                let n = self.config_files().len();
                self.cfgs.selected = step(self.cfgs.selected.min(n.saturating_sub(1)), n);
            }
            View::Curves => {
                let n = self.curve_tags().len();
                self.curves.focus = step(self.curves.focus.min(n.saturating_sub(1)), n);
            }
            View::Logs => {
                let n = self.logs.lines.len();
                let cur = if self.logs.follow { n.saturating_sub(page) } else { self.logs.top };
                self.logs.top = step(cur, n);
                // Leaving the end stops following; Bottom resumes it.
                self.logs.follow = a == Action::Bottom;
            }
            // Up/down pick the tag; home/end go to the first / newest step.
            View::Samples => match a {
                Action::Top | Action::Bottom => self.scrub(a),
                _ => {
                    let n = self.sample_tags().len();
                    let old = self.samples.tag;
                    self.samples.tag = step(self.samples.tag.min(n.saturating_sub(1)), n);
                    if self.samples.tag != old {
                        self.samples.step = None;
                    }
                }
            },
        }
    }

    fn open_logs(&mut self) {
        if let Some(t) = self.selected_task() {
            if self.logs.task != Some(t.task.id) {
                self.logs.task = Some(t.task.id);
                self.logs.follow = true;
                self.logs.current = None;
            }
        }
        self.view = View::Logs;
        self.reload_log();
    }

    fn runs_action(&mut self, a: Action) -> Vec<Cmd> {
        let Some(t) = self.selected_task() else {
            if a == Action::Filter {
                self.popups.push(Popup::Input {
                    purpose: InputPurpose::RunsFilter,
                    prompt: "filter runs".into(),
                    text: self.runs.filter.clone(),
                });
            } else if a == Action::Sort {
                self.runs.sort = Some(self.runs.sort.unwrap_or(SortKey::Id).next());
            }
            return Vec::new();
        };
        let (id, state, name) = (t.task.id, t.task.state, App::task_name(t));
        match a {
            Action::Kill => {
                if state.is_active() {
                    self.popups.push(Popup::Confirm {
                        question: format!("kill task {id} ({name})? It saves a checkpoint first. [y/N]"),
                        cmd: Cmd::Kill(id),
                    });
                } else {
                    self.message = format!("task {id} is {}, not running", state.name());
                }
            }
            Action::Pause => return vec![Cmd::Pause(id)],
            Action::Resume => return vec![Cmd::Resume(id)],
            Action::Restart => self.popups.push(Popup::Confirm {
                question: format!("restart task {id} ({name}) from scratch in a new run folder? [y/N]"),
                cmd: Cmd::Restart(id),
            }),
            Action::ResumeRun => return vec![Cmd::ResumeRun(id)],
            Action::Remove => self.popups.push(Popup::Confirm {
                question: format!("remove task {id} ({name}) from the list? Its run folder stays. [y/N]"),
                cmd: Cmd::Remove(id),
            }),
            Action::FollowLogs => self.open_logs(),
            Action::Sort => self.runs.sort = Some(self.runs.sort.unwrap_or(SortKey::Id).next()),
            Action::Filter => self.popups.push(Popup::Input {
                purpose: InputPurpose::RunsFilter,
                prompt: "filter runs".into(),
                text: self.runs.filter.clone(),
            }),
            Action::Mark => {
                if !self.runs.marked.remove(&id) {
                    self.runs.marked.insert(id);
                }
                self.move_selection(Action::Down);
            }
            Action::ShowCurves => self.view = View::Curves,
            Action::Baseline => {
                self.runs.baseline = if self.runs.baseline == Some(id) { None } else { Some(id) };
            }
            Action::ConfigDiff => self.open_config_diff(),
            _ => {}
        }
        Vec::new()
    }

    /// The two runs to diff: the two marked ones, or the one marked and the selected one.
    fn diff_pair(&self) -> Option<(u64, u64)> {
        let m: Vec<u64> = self.runs.marked.iter().copied().collect();
        match (m.as_slice(), self.selected_task()) {
            ([a, b], _) => Some((*a, *b)),
            ([a], Some(s)) if s.task.id != *a => Some((*a, s.task.id)),
            _ => None,
        }
    }

    fn open_config_diff(&mut self) {
        let Some((a, b)) = self.diff_pair() else {
            self.message = "mark two runs (space) to diff their configs".into();
            return;
        };
        let read = |id: u64| -> Result<serde_yaml_ng::Value, String> {
            let t = self.task(id).ok_or(format!("no task {id}"))?;
            let path =
                crate::rundir::config_file(&t.task.run_dir).ok_or(format!("task {id} has no config in {}", t.task.run_dir.display()))?;
            let text = std::fs::read_to_string(&path).map_err(|e| format!("cannot read {}: {e}", path.display()))?;
            serde_yaml_ng::from_str(&text).map_err(|e| format!("{}: {e}", path.display()))
        };
        match (read(a), read(b)) {
            (Ok(va), Ok(vb)) => {
                let lines = config_diff(&va, &vb);
                let title = format!(" config diff: task {a} | task {b} ({} differences) ", lines.len());
                self.message.clear();
                self.popups.push(Popup::Text { title, lines, top: 0 });
            }
            (Err(e), _) | (_, Err(e)) => self.message = format!("error: {e}"),
        }
    }

    fn configs_action(&mut self, a: Action) -> Vec<Cmd> {
        match a {
            Action::Rescan => return vec![Cmd::Rescan],
            Action::Mark => {
                if let Some(c) = self.selected_config() {
                    let p = c.path.clone();
                    if !self.cfgs.marked.remove(&p) {
                        self.cfgs.marked.insert(p);
                    }
                    self.move_selection(Action::Down);
                }
            }
            Action::Queue => match self.selected_config() {
                Some(c) if c.ok => {
                    let path = c.path.clone();
                    self.popups.push(Popup::Input {
                        purpose: InputPurpose::QueueConfig(path),
                        prompt: format!("queue {}: GROUP [AFTER_ID...] [any:ID...] [-- ARGS]", c.rel),
                        text: "default".into(),
                    });
                }
                Some(c) => self.message = format!("{} does not validate: {}", c.rel, c.diagnostics.first().cloned().unwrap_or_default()),
                None => {}
            },
            Action::QueueFake => self.popups.push(Popup::Input {
                purpose: InputPurpose::QueueFake,
                prompt: "queue a fake-run: GROUP [AFTER_ID...] [any:ID...] [-- ARGS]".into(),
                text: "default -- --steps 200 --step-ms 100".into(),
            }),
            Action::QueuePipeline => match self.pipeline_from_marks() {
                Ok(p) => {
                    let q = format!(
                        "queue finetune {} -> train {}{} (each after the previous succeeds)? [y/N]",
                        rel_name(&p.pretrain),
                        rel_name(&p.train),
                        p.eval.as_ref().map(|e| format!(" -> eval {}", rel_name(e))).unwrap_or_default()
                    );
                    self.popups.push(Popup::Confirm { question: q, cmd: Cmd::Pipeline(p) });
                }
                Err(e) => self.message = format!("pipeline: {e}"),
            },
            _ => {}
        }
        Vec::new()
    }

    /// A pipeline from the marked configs: one `pretrain`, one `train`, at most one `eval`.
    pub fn pipeline_from_marks(&self) -> Result<Pipeline, String> {
        let marked: Vec<&ConfigEntry> = self.config_files().into_iter().filter(|c| self.cfgs.marked.contains(&c.path)).collect();
        let pick = |job: &str| -> Result<Option<PathBuf>, String> {
            let v: Vec<&&ConfigEntry> = marked.iter().filter(|c| c.job.as_deref() == Some(job)).collect();
            match v.len() {
                0 => Ok(None),
                1 => Ok(Some(v[0].path.clone())),
                _ => Err(format!("{} marked configs are {job} jobs; mark one", v.len())),
            }
        };
        if let Some(bad) = marked.iter().find(|c| !c.ok) {
            return Err(format!("{} does not validate", bad.rel));
        }
        let pretrain =
            pick("pretrain")?.ok_or("mark a pretrain (finetuning) config, a train config and optionally an eval config (space)")?;
        let train = pick("train")?.ok_or("mark a train config too")?;
        Ok(Pipeline { pretrain, train, eval: pick("eval")?, group: None, label: None })
    }

    /// Metric tags of the shown runs, filtered.
    pub fn curve_tags(&self) -> Vec<String> {
        let mut tags = BTreeSet::new();
        for t in self.shown_runs() {
            if let Some(r) = self.store.get(&t.task.run_dir) {
                tags.extend(r.tags.keys().cloned());
            }
        }
        let f = self.curves.filter.to_lowercase();
        tags.into_iter().filter(|t| f.is_empty() || t.to_lowercase().contains(&f)).collect()
    }

    fn curves_action(&mut self, a: Action) {
        let c = &mut self.curves;
        let width = c.zoom.1 - c.zoom.0;
        match a {
            Action::Smoothing => {
                c.smoothing = match c.smoothing {
                    Smoothing::Off => Smoothing::Ema,
                    Smoothing::Ema => Smoothing::Moving,
                    Smoothing::Moving => Smoothing::Off,
                }
            }
            Action::SmoothMore => match c.smoothing {
                Smoothing::Ema => c.ema_weight = (c.ema_weight + 0.1).min(0.99),
                Smoothing::Moving => c.window = (c.window * 2).min(100_000),
                Smoothing::Off => c.smoothing = Smoothing::Ema,
            },
            Action::SmoothLess => match c.smoothing {
                Smoothing::Ema => c.ema_weight = (c.ema_weight - 0.1).max(0.0),
                Smoothing::Moving => c.window = (c.window / 2).max(1),
                Smoothing::Off => {}
            },
            Action::XAxis => c.x_axis = c.x_axis.next(),
            Action::ZoomIn => {
                let centre = c.zoom.0 + width * c.cursor.unwrap_or(0.5);
                let w = (width / 2.0).max(1e-6);
                c.zoom = clamp_window(centre - w * c.cursor.unwrap_or(0.5), w);
            }
            Action::ZoomOut => {
                let centre = c.zoom.0 + width * 0.5;
                let w = (width * 2.0).min(1.0);
                c.zoom = clamp_window(centre - w / 2.0, w);
            }
            Action::PanLeft => c.zoom = clamp_window(c.zoom.0 - width * 0.2, width),
            Action::PanRight => c.zoom = clamp_window(c.zoom.0 + width * 0.2, width),
            Action::ZoomReset => c.zoom = (0.0, 1.0),
            Action::Cursor => c.cursor = if c.cursor.is_some() { None } else { Some(0.5) },
            Action::CursorLeft => c.cursor = Some((c.cursor.unwrap_or(0.5) - 0.02).max(0.0)),
            Action::CursorRight => c.cursor = Some((c.cursor.unwrap_or(0.5) + 0.02).min(1.0)),
            Action::Filter => {
                self.popups.push(Popup::Input { purpose: InputPurpose::CurvesFilter, prompt: "filter tags".into(), text: c.filter.clone() })
            }
            Action::GroupMean => c.group_mean = !c.group_mean,
            Action::LogY => {
                if let Some(tag) = self.curve_tags().get(self.curves.focus).cloned() {
                    if !self.curves.log_y.remove(&tag) {
                        self.curves.log_y.insert(tag);
                    }
                }
            }
            _ => {}
        }
        self.refresh_smoothing();
    }

    fn logs_action(&mut self, a: Action) {
        match a {
            Action::Search => self.popups.push(Popup::Input {
                purpose: InputPurpose::LogSearch,
                prompt: "search logs".into(),
                text: self.logs.search.clone(),
            }),
            Action::NextMatch => self.jump_match(true, false),
            Action::PrevMatch => self.jump_match(false, false),
            Action::Follow => self.logs.follow = !self.logs.follow,
            Action::ToggleStderr => {
                self.logs.stderr = !self.logs.stderr;
                self.reload_log();
            }
            _ => {}
        }
    }

    /// Move to the next (or previous) line containing the search text.
    fn jump_match(&mut self, forward: bool, from_start_of_view: bool) {
        let needle = self.logs.search.to_lowercase();
        if needle.is_empty() {
            return;
        }
        let n = self.logs.lines.len();
        let from = match (self.logs.current, from_start_of_view) {
            (Some(c), false) => c,
            _ => {
                if forward {
                    n.saturating_sub(self.page()).saturating_sub(1)
                } else {
                    n
                }
            }
        };
        let found = if forward {
            (from + 1..n).chain(0..=from.min(n.saturating_sub(1))).find(|&i| self.logs.lines[i].to_lowercase().contains(&needle))
        } else {
            (0..from.min(n)).rev().chain((from.min(n)..n).rev()).find(|&i| self.logs.lines[i].to_lowercase().contains(&needle))
        };
        match found {
            Some(i) => {
                self.logs.current = Some(i);
                self.logs.follow = false;
                self.logs.top = i.saturating_sub(self.page() / 2);
                self.message.clear();
            }
            None => self.message = format!("not found: {}", self.logs.search),
        }
    }
}

fn clamp_window(lo: f64, w: f64) -> (f64, f64) {
    let w = w.clamp(1e-6, 1.0);
    let lo = lo.clamp(0.0, 1.0 - w);
    (lo, lo + w)
}

fn state_rank(s: TaskState) -> u8 {
    match s {
        TaskState::Running => 0,
        TaskState::Paused => 1,
        TaskState::Queued => 2,
        TaskState::Held => 3,
        _ => 4,
    }
}

fn rel_name(p: &Path) -> String {
    p.file_name().map(|n| n.to_string_lossy().to_string()).unwrap_or_default()
}
