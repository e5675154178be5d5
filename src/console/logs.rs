//! The logs view's state and actions: the end of a task's stdout or stderr (read with
//! `rundir::logs::tail_lines` when the file changed), following as it grows, scrolling,
//! and search (next / previous match). Drawn by `views::logs`.
use super::app::{moved, App, InputPurpose, Popup, View};
use super::event::Cmd;
use super::keys::Action;
use std::path::PathBuf;

/// Log bytes kept from the end of a log file.
const LOG_TAIL_BYTES: u64 = 512 * 1024;

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

impl Default for LogsState {
    /// No task yet; following its end once there is one.
    fn default() -> LogsState {
        LogsState { task: None, stderr: false, follow: true, lines: Vec::new(), top: 0, search: String::new(), current: None, loaded: None }
    }
}

impl App {
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
        // Tabs as spaces: a terminal cell per character.
        self.logs.lines = crate::rundir::logs::tail_lines(&path, LOG_TAIL_BYTES).into_iter().map(|l| l.replace('\t', "    ")).collect();
        self.logs.loaded = Some((path, len));
    }

    /// Show the logs view on the selected task (following its end when it is a new one).
    pub(super) fn open_logs(&mut self) {
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

    pub(super) fn logs_move(&mut self, a: Action) {
        let page = self.page();
        let n = self.logs.lines.len();
        let cur = if self.logs.follow { n.saturating_sub(page) } else { self.logs.top };
        self.logs.top = moved(a, cur, n, page);
        // Leaving the end stops following; Bottom resumes it.
        self.logs.follow = a == Action::Bottom;
    }

    pub(super) fn logs_action(&mut self, a: Action) -> Vec<Cmd> {
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
        Vec::new()
    }

    /// Move to the next (or previous) line containing the search text.
    pub(super) fn jump_match(&mut self, forward: bool, from_start_of_view: bool) {
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
