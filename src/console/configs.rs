//! The configs view's state and actions: the config files of the daemon's index in tree
//! order, the selection and the marks, queueing a config or a fake-run (the queue form,
//! `queue_form`), a sweep of a config (the sweep form, `sweep_form`) and the pipeline
//! finetune -> train -> eval from the marked configs.
//! Drawn by `views::configs`.
use super::app::{moved, App, InputPurpose, Popup};
use super::event::Cmd;
use super::keys::Action;
use super::queue_form::parse_queue_form;
use super::sweep_form::SweepForm;
use crate::rundir::JobKind;
use crate::supervisor::pipeline::Pipeline;
use crate::supervisor::protocol::{AddTask, ConfigEntry};
use crate::supervisor::sweep::DEFAULT_LIMIT;
use ratatui::crossterm::event::{KeyCode, KeyEvent, KeyModifiers};
use std::collections::BTreeSet;
use std::path::{Path, PathBuf};

#[derive(Default)]
pub struct ConfigsState {
    /// Index into [`App::config_files`].
    pub selected: usize,
    pub marked: BTreeSet<PathBuf>,
}

impl App {
    /// The config files in tree order.
    pub fn config_files(&self) -> Vec<&ConfigEntry> {
        let mut v: Vec<&ConfigEntry> = self.config_index.as_ref().map(|c| c.files.iter().collect()).unwrap_or_default();
        v.sort_by(|a, b| a.rel.cmp(&b.rel));
        v
    }

    pub fn selected_config(&self) -> Option<&ConfigEntry> {
        let v = self.config_files();
        v.get(self.configs.selected.min(v.len().saturating_sub(1))).copied()
    }

    pub(super) fn configs_move(&mut self, a: Action) {
        let n = self.config_files().len();
        self.configs.selected = moved(a, self.configs.selected.min(n.saturating_sub(1)), n, self.page());
    }

    pub(super) fn configs_action(&mut self, a: Action) -> Vec<Cmd> {
        match a {
            Action::Rescan => return vec![Cmd::Rescan],
            Action::Mark => {
                if let Some(c) = self.selected_config() {
                    let p = c.path.clone();
                    if !self.configs.marked.remove(&p) {
                        self.configs.marked.insert(p);
                    }
                    self.configs_move(Action::Down);
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
            Action::QueueSweep => match self.selected_config() {
                Some(c) if c.ok => {
                    let form = SweepForm::new(&c.path, &c.rel);
                    self.popups.push(Popup::Sweep(form));
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
                        file_name(&p.pretrain),
                        file_name(&p.train),
                        p.eval.as_ref().map(|e| format!(" -> eval {}", file_name(e))).unwrap_or_default()
                    );
                    self.popups.push(Popup::Confirm { question: q, cmd: Cmd::Pipeline(p) });
                }
                Err(e) => self.message = format!("pipeline: {e}"),
            },
            _ => {}
        }
        Vec::new()
    }

    /// A key in the sweep form: edit (tab starts a new line), `enter` queues (asking
    /// first over the limit), `esc` cancels.
    pub(super) fn on_sweep_key(&mut self, k: KeyEvent) -> Vec<Cmd> {
        let Some(Popup::Sweep(form)) = self.popups.last_mut() else { return Vec::new() };
        match k.code {
            KeyCode::Esc => {
                self.popups.pop();
                self.message = "cancelled".into();
            }
            KeyCode::Enter => match form.request() {
                Err(e) => {
                    form.result = Err(e.clone());
                    self.message = format!("sweep: {e}");
                }
                Ok(req) => {
                    let over = form.over_limit();
                    self.popups.pop();
                    if over {
                        let question = format!("the sweep has {} tasks, more than {DEFAULT_LIMIT}: queue them all? [y/N]", req.tasks.len());
                        self.popups.push(Popup::Confirm { question, cmd: Cmd::AddSweep(req) });
                    } else {
                        return vec![Cmd::AddSweep(req)];
                    }
                }
            },
            KeyCode::Tab => {
                form.text.push('\n');
                form.update();
            }
            KeyCode::Backspace => {
                form.text.pop();
                form.update();
            }
            KeyCode::Char(c) if !k.modifiers.contains(KeyModifiers::CONTROL) => {
                form.text.push(c);
                form.update();
            }
            _ => {}
        }
        Vec::new()
    }

    /// The filled-in queue form: the task for `config` (a `fake-run` without one).
    pub(super) fn submit_queue_form(&mut self, text: &str, config: Option<&Path>) -> Vec<Cmd> {
        let parsed = match config {
            Some(path) => parse_queue_form(text, Some(path)),
            None => parse_queue_form(text, None).map(|t| AddTask { job: Some(JobKind::FakeRun), ..t }),
        };
        match parsed {
            Ok(t) => vec![Cmd::Add(t)],
            Err(e) => {
                self.message = format!("error: {e}");
                Vec::new()
            }
        }
    }

    /// A pipeline from the marked configs: one `pretrain`, one `train`, at most one `eval`.
    pub fn pipeline_from_marks(&self) -> Result<Pipeline, String> {
        let marked: Vec<&ConfigEntry> = self.config_files().into_iter().filter(|c| self.configs.marked.contains(&c.path)).collect();
        let pick = |job: &str| -> Result<Option<PathBuf>, String> {
            let v: Vec<&&ConfigEntry> = marked.iter().filter(|c| c.job.map(JobKind::as_str) == Some(job)).collect();
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
}

fn file_name(p: &Path) -> String {
    p.file_name().map(|n| n.to_string_lossy().to_string()).unwrap_or_default()
}
