//! The samples view's state and actions: the sample indexes (`samples/index.jsonl`) of
//! the shown runs (the selected one, or the first two marked side by side), the tag and
//! the step scrubber, and the images of the panes. Images are decoded and encoded off the
//! render path by an [`ImageLoader`]; the app asks for the image of each pane when the
//! state changes ([`App::request_samples`]) at the size this module's [`layout`] gives,
//! and drawing (`views::samples`) only reads the panes.
use super::app::{moved, App, View};
use super::event::Cmd;
use super::images::{ImageLoader, ImagePane, ImagePicker};
use super::keys::Action;
use crate::rundir::{SampleEvent, SamplesTail, SAMPLES_INDEX};
use ratatui::layout::{Constraint, Layout, Rect, Size};
use ratatui::widgets::{Block, Borders};
use std::collections::{BTreeMap, BTreeSet};
use std::path::{Path, PathBuf};

/// The samples index of one run folder, tailed.
struct RunSamples {
    tail: SamplesTail,
    resets: u64,
    events: Vec<SampleEvent>,
}

#[derive(Default)]
pub struct SamplesState {
    /// Index into [`App::sample_tags`].
    pub tag: usize,
    /// The chosen step; `None` follows the newest sample.
    pub step: Option<u64>,
    runs: BTreeMap<PathBuf, RunSamples>,
    loader: Option<ImageLoader>,
    /// One pane per shown run (two at most).
    pub panes: Vec<ImagePane>,
    /// The renderer's name, for the title.
    pub renderer: String,
}

impl SamplesState {
    /// Start the background image thread; `on_ready` is called when an image is ready
    /// (the console sends itself a redraw event).
    pub fn start(&mut self, picker: ImagePicker, on_ready: impl Fn() + Send + 'static) {
        self.renderer = picker.note.clone();
        self.loader = Some(ImageLoader::new(picker, on_ready));
        self.panes = vec![ImagePane::new(0), ImagePane::new(1)];
    }

    /// Read new lines of the sample indexes of `dirs` (forgets other runs).
    pub fn poll(&mut self, dirs: &[PathBuf]) {
        self.runs.retain(|p, _| dirs.contains(p));
        for d in dirs {
            let r = self.runs.entry(d.clone()).or_insert_with(|| RunSamples {
                tail: SamplesTail::new(&d.join(SAMPLES_INDEX)),
                resets: 0,
                events: Vec::new(),
            });
            // A missing index is just no samples yet; a read error leaves what we have.
            if let Ok(new) = r.tail.poll() {
                if r.tail.resets != r.resets {
                    r.resets = r.tail.resets;
                    r.events.clear();
                }
                r.events.extend(new);
            }
        }
    }

    /// The samples of a run (as read so far).
    pub fn events(&self, dir: &Path) -> &[SampleEvent] {
        self.runs.get(dir).map(|r| r.events.as_slice()).unwrap_or(&[])
    }

    /// Pick up finished images; true when a pane changed.
    pub fn update(&mut self) -> bool {
        let Some(loader) = &self.loader else { return false };
        let mut changed = false;
        for p in &mut self.panes {
            changed |= p.update(loader);
        }
        changed
    }
}

/// Where things go in the view's `area`, with `n` runs shown.
pub struct SamplesLayout {
    pub tags: Rect,
    pub scrubber: Rect,
    /// Per run: the pane's block, the image inside it, the captions inside it.
    pub panes: Vec<(Rect, Rect, Rect)>,
}

pub fn layout(area: Rect, n: usize) -> SamplesLayout {
    let tag_w = if area.width >= 60 { 18 } else { 0 };
    let [tags, right] = Layout::horizontal([Constraint::Length(tag_w), Constraint::Min(0)]).areas(area);
    let [scrubber, body] = Layout::vertical([Constraint::Length(2), Constraint::Min(0)]).areas(right);
    let n = n.max(1);
    let cols = Layout::horizontal(vec![Constraint::Ratio(1, n as u32); n]).split(body);
    let panes = cols
        .iter()
        .map(|c| {
            let inner = Block::new().borders(Borders::ALL).inner(*c);
            // Captions beside the image when there is room, else below it.
            let (img, cap) = if inner.width >= 48 {
                let [i, c] = Layout::horizontal([Constraint::Percentage(62), Constraint::Min(0)]).areas(inner);
                (i, c)
            } else {
                let [i, c] = Layout::vertical([Constraint::Percentage(70), Constraint::Min(0)]).areas(inner);
                (i, c)
            };
            (*c, img, cap)
        })
        .collect();
    SamplesLayout { tags, scrubber, panes }
}

/// The view's area in a frame of `size` (the frame has a tab line and a hint line).
pub fn body_area(size: (u16, u16)) -> Rect {
    Rect { x: 0, y: 1, width: size.0, height: size.1.saturating_sub(2) }
}

/// The steps of `tag` in `events`, sorted, unique.
pub fn steps_of(events: &[SampleEvent], tag: &str) -> Vec<u64> {
    let s: BTreeSet<u64> = events.iter().filter(|e| e.tag == tag).map(|e| e.step).collect();
    s.into_iter().collect()
}

/// The sample of `tag` at the largest step <= `step` (the last one written wins).
pub fn at_or_before<'a>(events: &'a [SampleEvent], tag: &str, step: u64) -> Option<&'a SampleEvent> {
    events.iter().filter(|e| e.tag == tag && e.step <= step).max_by_key(|e| e.step)
}

impl App {
    /// The runs the samples view shows: the first two marked runs, else the selected one.
    pub fn sample_runs(&self) -> Vec<(u64, String, PathBuf)> {
        let v: Vec<_> = if self.runs.marked.len() >= 2 {
            self.tasks().iter().filter(|t| self.runs.marked.contains(&t.task.id)).take(2).collect()
        } else {
            self.selected_task().into_iter().collect()
        };
        v.into_iter().map(|t| (t.task.id, App::task_name(t), t.task.run_dir.clone())).collect()
    }

    /// The sample tags of the shown runs, sorted.
    pub fn sample_tags(&self) -> Vec<String> {
        let mut tags = BTreeSet::new();
        for (_, _, d) in self.sample_runs() {
            tags.extend(self.samples.events(&d).iter().map(|e| e.tag.clone()));
        }
        tags.into_iter().collect()
    }

    /// The focused tag and the steps at which any shown run has it (sorted, unique): the
    /// scrubber walks them all, and each run shows its sample at or before the step, so
    /// a tag only the second run has can still be scrubbed.
    pub fn sample_steps(&self) -> (Option<String>, Vec<u64>) {
        let tags = self.sample_tags();
        let Some(tag) = tags.get(self.samples.tag.min(tags.len().saturating_sub(1))).cloned() else { return (None, Vec::new()) };
        let mut steps = BTreeSet::new();
        for (_, _, d) in self.sample_runs() {
            steps.extend(steps_of(self.samples.events(&d), &tag));
        }
        (Some(tag), steps.into_iter().collect())
    }

    /// The step shown: the chosen one, else the newest of any shown run.
    pub fn sample_step(&self) -> Option<u64> {
        let (_, steps) = self.sample_steps();
        self.samples.step.or(steps.last().copied())
    }

    /// The sample each shown run shows.
    pub fn sample_events(&self) -> Vec<Option<&SampleEvent>> {
        let (tag, _) = self.sample_steps();
        let step = self.sample_step();
        self.sample_runs()
            .iter()
            .map(|(_, _, d)| match (&tag, step) {
                (Some(tag), Some(step)) => at_or_before(self.samples.events(d), tag, step),
                _ => None,
            })
            .collect()
    }

    /// Poll the indexes of the shown runs and ask the loader for the images now shown
    /// (nothing is re-encoded when neither the file nor the pane size changed).
    pub fn sync_samples(&mut self) {
        let dirs: Vec<PathBuf> = self.sample_runs().into_iter().map(|r| r.2).collect();
        self.samples.poll(&dirs);
        self.request_samples();
    }

    /// Ask for the images at the current state (after keys, resizes, new samples).
    pub fn request_samples(&mut self) {
        self.samples.update();
        if self.view != View::Samples || self.samples.loader.is_none() {
            return;
        }
        let runs = self.sample_runs();
        let wanted: Vec<Option<PathBuf>> = self.sample_events().iter().zip(&runs).map(|(e, r)| e.map(|e| r.2.join(&e.file))).collect();
        let areas = layout(body_area(self.size), runs.len());
        let s = &mut self.samples;
        let Some(loader) = s.loader.as_mut() else { return };
        for (i, pane) in s.panes.iter_mut().enumerate() {
            match (wanted.get(i).cloned().flatten(), areas.panes.get(i)) {
                (Some(path), Some((_, img, _))) if img.width > 0 && img.height > 0 => {
                    pane.show(loader, &path, Size::new(img.width, img.height))
                }
                _ => pane.clear(),
            }
        }
    }

    /// Up/down pick the tag; home/end go to the first / newest step.
    pub(super) fn samples_move(&mut self, a: Action) {
        match a {
            Action::Top | Action::Bottom => self.scrub(a),
            _ => {
                let n = self.sample_tags().len();
                let old = self.samples.tag;
                self.samples.tag = moved(a, self.samples.tag.min(n.saturating_sub(1)), n, self.page());
                if self.samples.tag != old {
                    self.samples.step = None;
                }
            }
        }
    }

    pub(super) fn samples_action(&mut self, a: Action) -> Vec<Cmd> {
        self.scrub(a);
        Vec::new()
    }

    /// Step the scrubber: -1 / +1 step, or to the first / last (`Top`/`Bottom`).
    fn scrub(&mut self, a: Action) {
        let (_, steps) = self.sample_steps();
        if steps.is_empty() {
            return;
        }
        let cur = self.sample_step().and_then(|s| steps.iter().rposition(|x| *x <= s)).unwrap_or(steps.len() - 1);
        let last = steps.len() - 1;
        self.samples.step = match a {
            Action::StepPrev => Some(steps[cur.saturating_sub(1)]),
            Action::StepNext if cur + 1 >= last => None,
            Action::StepNext => Some(steps[cur + 1]),
            Action::Top => Some(steps[0]),
            // The end follows new samples.
            _ => None,
        };
        self.request_samples();
    }
}
