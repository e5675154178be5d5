//! The samples view's state and actions: the sample indexes (`samples/index.jsonl`) of
//! the shown runs (the selected one, or the first two marked side by side), the tag and
//! the step scrubber, and the images of the panes. Images are decoded and encoded off the
//! render path by an [`ImageLoader`]; the app asks for the image of each pane when the
//! state changes ([`App::request_samples`]) at the size this module's [`layout`] gives,
//! and drawing (`views::samples`) only reads the panes.
//!
//! Each image fills its pane: [`layout`] puts the captions beside or under the image,
//! whichever leaves the image (scaled to fit, `images::fit_pixels`) the larger, and
//! gives the image exactly the cells it takes. `enter` opens one image of a grid large
//! with its caption ([`SamplesState::zoom`]; left/right walk the grid, esc goes back);
//! side by side, both runs show the same grid position.
use super::app::{moved, App, View};
use super::event::Cmd;
use super::images::{cells_for, fit_pixels, Crop, ImageLoader, ImagePane, ImagePicker};
use super::keys::Action;
use crate::rundir::{SampleEvent, SamplesTail, SAMPLES_INDEX};
use ratatui::layout::{Constraint, Layout, Rect, Size};
use ratatui::widgets::{Block, Borders};
use std::collections::{BTreeMap, BTreeSet, HashMap};
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
    /// The grid position of the image opened large (None: whole grids).
    pub zoom: Option<usize>,
    /// Pixel sizes of the sample files seen (read from their headers), for the layout.
    dims: HashMap<PathBuf, Option<(u32, u32)>>,
    /// The renderer's cell size in pixels (10 x 20 until started).
    pub cell: (u16, u16),
}

impl SamplesState {
    /// Start the background image thread; `on_ready` is called when an image is ready
    /// (the console sends itself a redraw event).
    pub fn start(&mut self, picker: ImagePicker, on_ready: impl Fn() + Send + 'static) {
        self.renderer = picker.note.clone();
        self.cell = picker.cell();
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

/// What the layout needs to know of one pane's content.
#[derive(Clone, Copy, Debug, Default, PartialEq)]
pub struct PaneShape {
    /// The image's size in pixels (the grid cell's when one image is open), when known.
    pub image: Option<(u32, u32)>,
    /// Lines of captions it would like under the image.
    pub caption_lines: u16,
}

/// Where things go in the view's `area`.
pub struct SamplesLayout {
    pub tags: Rect,
    pub scrubber: Rect,
    /// Per run: the pane's block, the image inside it, the captions inside it.
    pub panes: Vec<(Rect, Rect, Rect)>,
}

/// The layout of the view in `area` with one pane per `shapes` (at least one), for a
/// renderer with `cell`-pixel cells.
pub fn layout(area: Rect, shapes: &[PaneShape], cell: (u16, u16)) -> SamplesLayout {
    let tag_w = if area.width >= 60 { 18 } else { 0 };
    let [tags, right] = Layout::horizontal([Constraint::Length(tag_w), Constraint::Min(0)]).areas(area);
    let [scrubber, body] = Layout::vertical([Constraint::Length(2), Constraint::Min(0)]).areas(right);
    let n = shapes.len().max(1);
    let cols = Layout::horizontal(vec![Constraint::Ratio(1, n as u32); n]).split(body);
    let panes = cols
        .iter()
        .enumerate()
        .map(|(i, c)| {
            let inner = Block::new().borders(Borders::ALL).inner(*c);
            let (img, cap) = place(inner, shapes.get(i).copied().unwrap_or_default(), cell);
            (*c, img, cap)
        })
        .collect();
    SamplesLayout { tags, scrubber, panes }
}

/// The image's and the captions' rectangles in a pane's `inner` area: captions under the
/// image or beside it, whichever lets the image (fitted, keeping its aspect) be larger;
/// the image gets exactly the cells it takes and the captions the rest.
pub fn place(inner: Rect, shape: PaneShape, cell: (u16, u16)) -> (Rect, Rect) {
    let cell = if cell.0 == 0 || cell.1 == 0 { (10, 20) } else { cell };
    // Unknown size (not read yet): plan for a square.
    let img = shape.image.unwrap_or((1, 1));
    let fitted = |w: u16, h: u16| {
        let px = fit_pixels(img, (w, h), cell);
        (px.0 as u64 * px.1 as u64, cells_for(px, cell))
    };
    let cap_h = if shape.caption_lines == 0 { 0 } else { shape.caption_lines.min(inner.height / 3).max(1) };
    let below = fitted(inner.width, inner.height.saturating_sub(cap_h));
    let cap_w = (inner.width / 3).clamp(20, 48);
    let beside = (inner.width >= 48).then(|| fitted(inner.width - cap_w, inner.height));
    match beside {
        Some((area, (w, _))) if area > below.0 => {
            let [i, rest] = Layout::horizontal([Constraint::Length(w), Constraint::Min(0)]).areas(inner);
            // One column of space between the image and its captions.
            (i, Rect { x: rest.x.saturating_add(1).min(rest.right()), width: rest.width.saturating_sub(1), ..rest })
        }
        _ => {
            let (_, (_, h)) = below;
            let [i, c] = Layout::vertical([Constraint::Length(h), Constraint::Min(0)]).areas(inner);
            (i, c)
        }
    }
}

/// The view's area in a frame of `size` (the frame has a tab line and a hint line).
pub fn body_area(size: (u16, u16)) -> Rect {
    Rect { x: 0, y: 1, width: size.0, height: size.1.saturating_sub(2) }
}

/// How many images a sample's grid holds.
pub fn grid_count(e: &SampleEvent) -> usize {
    (e.rows.max(1) * e.cols.max(1)) as usize
}

/// The crop of image `index` of a sample's grid (None for a single image).
pub fn crop_of(e: &SampleEvent, index: usize) -> Option<Crop> {
    let n = grid_count(e);
    (n > 1).then(|| Crop { rows: e.rows.max(1), cols: e.cols.max(1), index: index.min(n - 1) as u32 })
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

    /// The image open large: (grid position, images in the grid) of the first shown
    /// run's sample; None when whole grids are shown.
    pub fn sample_zoom(&self) -> Option<(usize, usize)> {
        let z = self.samples.zoom?;
        let n = self.sample_events().into_iter().flatten().map(grid_count).max()?;
        Some((z.min(n.saturating_sub(1)), n))
    }

    /// The layout's view of each shown run's pane.
    pub fn sample_shapes(&self) -> Vec<PaneShape> {
        let runs = self.sample_runs();
        let zoom = self.sample_zoom();
        let events = self.sample_events();
        runs.iter()
            .zip(events)
            .map(|((_, _, d), e)| {
                let Some(e) = e else { return PaneShape::default() };
                let dims = self.samples.dims.get(&d.join(&e.file)).copied().flatten();
                match zoom {
                    Some((i, _)) => PaneShape {
                        image: dims.and_then(|s| crop_of(e, i).and_then(|c| c.rect(s, true))).map(|r| (r.2, r.3)),
                        caption_lines: 3,
                    },
                    None => PaneShape {
                        image: dims,
                        caption_lines: (e.captions.len() + usize::from(e.tag == "retrieval")).min(u16::MAX as usize) as u16,
                    },
                }
            })
            .collect()
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
        let zoom = self.sample_zoom();
        let wanted: Vec<Option<(PathBuf, Option<Crop>)>> = self
            .sample_events()
            .iter()
            .zip(&runs)
            .map(|(e, r)| e.map(|e| (r.2.join(&e.file), zoom.and_then(|(i, _)| crop_of(e, i)))))
            .collect();
        // The layout needs each image's size: read once per file from its header.
        for (path, _) in wanted.iter().flatten() {
            if !self.samples.dims.contains_key(path) {
                let d = image::image_dimensions(path).ok();
                self.samples.dims.insert(path.clone(), d);
            }
        }
        let areas = layout(body_area(self.size), &self.sample_shapes(), self.samples.cell);
        let s = &mut self.samples;
        let Some(loader) = s.loader.as_mut() else { return };
        for (i, pane) in s.panes.iter_mut().enumerate() {
            match (wanted.get(i).cloned().flatten(), areas.panes.get(i)) {
                (Some((path, crop)), Some((_, img, _))) if img.width > 0 && img.height > 0 => {
                    pane.show(loader, &path, Size::new(img.width, img.height), crop)
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
        match (a, self.sample_zoom()) {
            (Action::OpenImage, None) if self.sample_events().iter().any(|e| e.is_some()) => {
                self.samples.zoom = Some(0);
                self.request_samples();
            }
            (Action::OpenImage, Some(_)) => {
                self.close_image();
            }
            (Action::StepPrev | Action::StepNext, Some((i, n))) => {
                self.samples.zoom = Some(if a == Action::StepNext { (i + 1) % n } else { (i + n - 1) % n });
                self.request_samples();
            }
            _ => self.scrub(a),
        }
        Vec::new()
    }

    /// Back from the large image to the whole grids; false when none was open.
    pub(super) fn close_image(&mut self) -> bool {
        if self.samples.zoom.take().is_none() {
            return false;
        }
        self.request_samples();
        true
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

#[cfg(test)]
mod tests {
    use super::*;

    fn inner(w: u16, h: u16) -> Rect {
        Rect { x: 1, y: 1, width: w, height: h }
    }

    #[test]
    fn captions_go_where_the_image_stays_larger() {
        let cell = (10, 20);
        // A wide grid (138 x 70) in a wide pane: under it.
        let (img, cap) = place(inner(100, 34), PaneShape { image: Some((138, 70)), caption_lines: 8 }, cell);
        assert_eq!((img.width, cap.y), (100, img.bottom()));
        // 1000 px wide (10 px cells) -> 507 px high -> 26 rows of 20 px, within 34 - 8.
        assert_eq!(img.height, 26);
        // A square image in a wide, short pane: beside it.
        let (img, cap) = place(inner(120, 30), PaneShape { image: Some((64, 64)), caption_lines: 8 }, cell);
        assert_eq!((img.width, img.height), (60, 30));
        assert!(cap.x > img.right() - 1 && cap.height == 30, "{img:?} {cap:?}");
        // Narrow pane: always under.
        let (img, cap) = place(inner(40, 30), PaneShape { image: Some((64, 64)), caption_lines: 2 }, cell);
        assert_eq!((img.width, img.height, cap.y), (40, 20, img.bottom()));
        // Nothing known, zero sizes: no panic.
        place(inner(0, 0), PaneShape::default(), cell);
        place(inner(3, 1), PaneShape { image: Some((1, 1000)), caption_lines: 9 }, (0, 0));
    }
}
