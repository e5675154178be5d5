//! The runs view's state and actions: the daemon's tasks filtered and sorted, the
//! selection and the marks (which the curves, logs and samples views follow), the
//! baseline, the task commands (kill, pause, resume, restart, remove; the dangerous ones
//! ask first), the config diff of two runs, and sweeps (their runs listed together,
//! collapsible to one row). Drawn by `views::runs`.
use super::app::{moved, App, InputPurpose, Popup, View};
use super::event::Cmd;
use super::keys::Action;
use crate::supervisor::protocol::TaskView;
use crate::supervisor::state::TaskState;
use std::collections::BTreeSet;

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

#[derive(Default)]
pub struct RunsState {
    /// Index into [`App::visible_tasks`].
    pub selected: usize,
    pub sort: Option<SortKey>,
    pub filter: String,
    pub marked: BTreeSet<u64>,
    /// A run pinned as the baseline: always among the curves, drawn bold.
    pub baseline: Option<u64>,
    /// Sweeps shown as one row (their first visible member stands for them).
    pub collapsed: BTreeSet<String>,
}

impl App {
    /// Tasks after the runs view's filter and sort.
    pub fn visible_tasks(&self) -> Vec<&TaskView> {
        let f = self.runs.filter.to_lowercase();
        let mut v: Vec<&TaskView> = self
            .tasks()
            .iter()
            .filter(|t| {
                f.is_empty()
                    || App::task_name(t).to_lowercase().contains(&f)
                    || t.task.job.as_str().contains(&f)
                    || t.task.state.name().contains(&f)
                    || t.task.group.to_lowercase().contains(&f)
                    || t.task.run_id.to_lowercase().contains(&f)
                    || self.job_label(t).contains(&f)
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
        group_sweeps(v, &self.runs.collapsed)
    }

    /// Every task of a sweep (unfiltered), by id.
    pub fn sweep_members(&self, sweep: &str) -> Vec<&TaskView> {
        self.tasks().iter().filter(|t| t.task.sweep.as_deref() == Some(sweep)).collect()
    }

    /// A sweep's name (empty when the daemon's snapshot does not know it).
    pub fn sweep_name(&self, sweep: &str) -> String {
        self.snapshot.as_ref().and_then(|s| s.sweeps.get(sweep)).map(|s| s.name.clone()).unwrap_or_default()
    }

    /// Collapse or expand the selected run's sweep; the selection stays on it.
    fn toggle_sweep(&mut self, sweep: String) {
        if !self.runs.collapsed.remove(&sweep) {
            self.runs.collapsed.insert(sweep.clone());
        }
        if let Some(i) = self.visible_tasks().iter().position(|t| t.task.sweep.as_ref() == Some(&sweep)) {
            self.runs.selected = i;
        }
    }

    pub fn selected_task(&self) -> Option<&TaskView> {
        let v = self.visible_tasks();
        v.get(self.runs.selected.min(v.len().saturating_sub(1))).copied()
    }

    pub(super) fn runs_move(&mut self, a: Action) {
        let n = self.visible_tasks().len();
        self.runs.selected = moved(a, self.runs.selected.min(n.saturating_sub(1)), n, self.page());
    }

    pub(super) fn runs_action(&mut self, a: Action) -> Vec<Cmd> {
        let Some(t) = self.selected_task() else {
            if a == Action::Filter {
                self.open_runs_filter();
            } else if a == Action::Sort {
                self.runs.sort = Some(self.runs.sort.unwrap_or(SortKey::Id).next());
            }
            return Vec::new();
        };
        let (id, state, name) = (t.task.id, t.task.state, App::task_name(t));
        let queue_action =
            matches!(a, Action::Kill | Action::Pause | Action::Resume | Action::Restart | Action::ResumeRun | Action::Remove);
        if queue_action && self.is_disk_run(id) {
            self.message = format!("{name} is a run folder on disk, not a task of the queue: read-only, queue actions don't apply");
            return Vec::new();
        }
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
            Action::Filter => self.open_runs_filter(),
            Action::Mark => {
                if !self.runs.marked.remove(&id) {
                    self.runs.marked.insert(id);
                }
                self.runs_move(Action::Down);
            }
            Action::ShowCurves => match t.task.sweep.clone().filter(|s| self.runs.collapsed.contains(s)) {
                // A collapsed sweep's row stands for the whole sweep.
                Some(s) => self.open_sweep_curves(s),
                None => {
                    self.curves.sweep.sweep = None;
                    self.view = View::Curves;
                }
            },
            Action::SweepCurves => match t.task.sweep.clone() {
                Some(s) => self.open_sweep_curves(s),
                None => self.message = format!("task {id} is not part of a sweep"),
            },
            Action::Baseline => {
                self.runs.baseline = if self.runs.baseline == Some(id) { None } else { Some(id) };
            }
            Action::ConfigDiff => self.open_config_diff(),
            Action::ToggleSweep => match t.task.sweep.clone() {
                Some(s) => self.toggle_sweep(s),
                None => self.message = format!("task {id} is not part of a sweep"),
            },
            _ => {}
        }
        Vec::new()
    }

    fn open_runs_filter(&mut self) {
        self.popups.push(Popup::Input { purpose: InputPurpose::RunsFilter, prompt: "filter runs".into(), text: self.runs.filter.clone() });
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

    /// The keys whose values differ between the configs of the two runs, in a popup.
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
                let lines = super::config_diff::config_diff(&va, &vb);
                let title = format!(" config diff: task {a} | task {b} ({} differences) ", lines.len());
                self.message.clear();
                self.popups.push(Popup::Text { title, lines, top: 0 });
            }
            (Err(e), _) | (_, Err(e)) => self.message = format!("error: {e}"),
        }
    }
}

/// Order of the states when sorting by state: the live ones first.
fn state_rank(s: TaskState) -> u8 {
    match s {
        TaskState::Running => 0,
        TaskState::Paused => 1,
        TaskState::Queued => 2,
        TaskState::Held => 3,
        _ => 4,
    }
}

/// A sweep's members together, where its first one is in `v`'s order; a collapsed sweep
/// keeps only that first one (drawn as the sweep's row).
fn group_sweeps<'a>(v: Vec<&'a TaskView>, collapsed: &BTreeSet<String>) -> Vec<&'a TaskView> {
    if v.iter().all(|t| t.task.sweep.is_none()) {
        return v;
    }
    let mut out = Vec::with_capacity(v.len());
    let mut seen = BTreeSet::new();
    for t in &v {
        match &t.task.sweep {
            None => out.push(*t),
            Some(s) if seen.insert(s.clone()) => {
                let mut members = v.iter().filter(|m| m.task.sweep.as_ref() == Some(s)).copied();
                if collapsed.contains(s) {
                    out.extend(members.next());
                } else {
                    out.extend(members);
                }
            }
            Some(_) => {}
        }
    }
    out
}
