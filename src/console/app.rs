//! The console's state and how events change it. One owner (the main loop) holds the
//! [`App`]; events come in through [`App::handle`], which returns the commands to send to
//! the daemon; drawing (`views::draw`) only reads the state.
//!
//! This file holds what is shared by the views (the daemon's snapshot and config index,
//! the metric store, the popups) and the key dispatch: global keys here, the others to
//! the focused view. Each view's state and actions are in its own module (`runs`,
//! `configs`, `curves`, `logs`, `samples`), as an `XState` struct and an `impl App` block.
use super::config_diff::DiffLine;
use super::configs::ConfigsState;
use super::curves::CurvesState;
use super::disk::DiskRuns;
use super::event::{Cmd, Event};
use super::keys::{Action, Keymap};
use super::logs::LogsState;
use super::resources::ResourceSnapshot;
use super::runs::RunsState;
use super::samples::SamplesState;
use super::store::Store;
use super::theme::Theme;
use crate::supervisor::protocol::{ConfigIndex, Snapshot, TaskView};
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
    /// The configs view's sweep form (`sweep_form`).
    Sweep(super::sweep_form::SweepForm),
    /// Read-only text (the config diff), scrolled by `top`.
    Text {
        title: String,
        lines: Vec<DiffLine>,
        top: usize,
    },
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
    /// Run folders on disk that are not the daemon's tasks (read-only runs).
    pub disk: DiskRuns,
    /// The daemon's tasks, then the runs on disk: what the runs view lists.
    all: Vec<TaskView>,
    pub daemon_error: Option<String>,
    /// `cfg/` as the daemon watches it: every config file and its validation.
    pub config_index: Option<ConfigIndex>,
    /// The metric series of the daemon's run folders.
    pub store: Store,
    pub popups: Vec<Popup>,
    /// The last command outcome or hint, shown in the bottom line.
    pub message: String,
    pub quit: bool,
    /// The latest resources sample (the runs view's resources panel).
    pub resources: ResourceSnapshot,
    // Each view's state (the modules of the same names).
    pub runs: RunsState,
    pub configs: ConfigsState,
    pub curves: CurvesState,
    pub logs: LogsState,
    pub samples: SamplesState,
}

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
            disk: DiskRuns::new(vec![home.join("runs")]),
            all: Vec::new(),
            daemon_error: None,
            config_index: None,
            store: Store::default(),
            popups: Vec::new(),
            message: String::new(),
            quit: false,
            resources: ResourceSnapshot::default(),
            runs: RunsState::default(),
            configs: ConfigsState::default(),
            curves: CurvesState::default(),
            logs: LogsState::default(),
            samples: SamplesState::default(),
        }
    }

    /// The worker processes to watch for the resources panel: (pid, "id name") of every
    /// task whose worker the daemon knows and that runs on this machine (a Slurm task's
    /// pid is a pid on its node).
    pub fn worker_pids(&self) -> Vec<(u32, String)> {
        let Some(snap) = &self.snapshot else { return Vec::new() };
        let host = std::fs::read_to_string("/proc/sys/kernel/hostname").unwrap_or_default();
        let here = |node: &str| node.split('.').next() == host.trim().split('.').next();
        snap.tasks
            .iter()
            .filter(|t| t.task.state.is_active())
            .filter(|t| t.task.slurm.as_ref().is_none_or(|j| here(&j.node)))
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

    /// Every run listed: the daemon's tasks, then the run folders on disk.
    pub fn tasks(&self) -> &[TaskView] {
        &self.all
    }

    /// Also list the runs in this folder (`clipgan console --logdir`).
    pub fn add_logdir(&mut self, dir: &Path) {
        if !self.disk.roots.iter().any(|r| r == dir) {
            self.disk.roots.push(dir.to_path_buf());
        }
        self.rescan();
        self.store.poll();
    }

    /// Whether a run is a folder on disk rather than a daemon task (read-only).
    pub fn is_disk_run(&self, id: u64) -> bool {
        super::disk::is_disk_id(id)
    }

    /// What a run is: its job, or for runs on disk their kind (`tensorboard`, ...).
    pub fn job_label(&self, t: &TaskView) -> String {
        self.disk.kind(t.task.id).map(str::to_string).unwrap_or_else(|| t.task.job.to_string())
    }

    /// Look for run folders again and rebuild the list.
    pub fn rescan(&mut self) {
        let mut tasks: BTreeSet<PathBuf> = BTreeSet::new();
        for t in self.snapshot.iter().flat_map(|s| s.tasks.iter()) {
            tasks.extend(std::fs::canonicalize(&t.task.run_dir).ok());
            tasks.insert(t.task.run_dir.clone());
        }
        self.disk.scan(&tasks, self.now);
        self.all = self.snapshot.iter().flat_map(|s| s.tasks.iter()).cloned().chain(self.disk.views().cloned()).collect();
        self.sync_store();
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
            None => t.task.job.to_string(),
        }
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
                self.rescan();
                self.poll_data();
            }
            Event::Snapshot(s) => {
                self.daemon_error = None;
                self.snapshot = Some(*s);
                self.rescan();
                self.poll_data();
            }
            Event::ConfigIndex(c) => self.config_index = Some(c),
            Event::DaemonError(e) => self.daemon_error = Some(e),
            Event::Message(m) => self.message = m,
        }
        Vec::new()
    }

    /// Track the run folders listed, forget the others.
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
        self.refresh_sweep_results();
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
        // The list starts with the daemon's tasks, in the snapshot's order.
        for (t, fresh) in self.all.iter_mut().zip(&snap.tasks) {
            t.status = fresh.status.clone();
        }
    }

    /// Rows moved by page up / page down.
    pub(super) fn page(&self) -> usize {
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
                Popup::Sweep(_) => return self.on_sweep_key(k),
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
            InputPurpose::QueueConfig(config) if done => return self.submit_queue_form(&text, Some(config)),
            InputPurpose::QueueFake if done => return self.submit_queue_form(&text, None),
            InputPurpose::QueueConfig(_) | InputPurpose::QueueFake => {}
        }
        Vec::new()
    }

    /// Global keys here; the others go to the focused view.
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
            Up | Down | PageUp | PageDown | Top | Bottom => match self.view {
                View::Runs => self.runs_move(a),
                View::Configs => self.configs_move(a),
                View::Curves => self.curves_move(a),
                View::Logs => self.logs_move(a),
                View::Samples => self.samples_move(a),
            },
            Back => {
                if self.view == View::Samples && self.close_image() {
                    // back from the large image
                } else if self.view == View::Curves && self.curves.cursor.is_some() {
                    self.curves.cursor = Option::None;
                } else if self.view == View::Curves && self.curves.sweep.sweep.is_some() {
                    // Back from the sweep to the marked (else selected) runs.
                    self.curves.sweep.sweep = Option::None;
                    self.curves.group_mean = false;
                } else {
                    self.message.clear();
                }
            }
            _ => {
                return match self.view {
                    View::Runs => self.runs_action(a),
                    View::Configs => self.configs_action(a),
                    View::Curves => self.curves_action(a),
                    View::Logs => self.logs_action(a),
                    View::Samples => self.samples_action(a),
                }
            }
        }
        Vec::new()
    }
}

/// Where a list cursor at `cur` among `len` items goes on a movement key (`page` items
/// a page); the views share this rule.
pub(super) fn moved(a: Action, cur: usize, len: usize, page: usize) -> usize {
    let last = len.saturating_sub(1);
    match a {
        Action::Up => cur.saturating_sub(1),
        Action::Down => (cur + 1).min(last),
        Action::PageUp => cur.saturating_sub(page),
        Action::PageDown => (cur + page).min(last),
        Action::Top => 0,
        _ => last,
    }
}
