//! The console's samples view with fixed data: small PNGs written here, the ASCII and
//! halfblocks renderers (deterministic), insta snapshots, scrubbing keys, two marked runs
//! side by side, new samples appearing on the tick, corrupt and missing images.
use clipgan::console::app::{App, Popup, View};
use clipgan::console::event::Event;
use clipgan::console::images::{ImagePicker, PaneState};
use clipgan::console::keys::Keymap;
use clipgan::console::theme::Theme;
use clipgan::console::views;
use clipgan::supervisor::protocol::Snapshot;
use ratatui::backend::TestBackend;
use ratatui::crossterm::event::{KeyCode, KeyEvent, KeyModifiers};
use ratatui::Terminal;
use serde_json::json;
use std::io::Write;
use std::path::Path;
use std::sync::mpsc;
use std::time::Duration;

const NOW: f64 = 1_800_000_000.0;

/// A 16x16 PNG: a diagonal gradient whose direction depends on `kind` (so steps differ).
fn png(path: &Path, kind: u32) {
    let img = image::RgbImage::from_fn(16, 16, |x, y| {
        let v = match kind % 3 {
            0 => (x * 16) as u8,
            1 => (y * 16) as u8,
            _ => ((x + y) * 8) as u8,
        };
        image::Rgb([v, v, v])
    });
    std::fs::create_dir_all(path.parent().unwrap()).unwrap();
    img.save(path).unwrap();
}

/// Add a sample (PNG + index line) to a run folder.
fn sample(dir: &Path, step: u64, tag: &str, kind: u32) {
    let rel = format!("samples/{step:09}_{}.png", tag.replace('/', "-"));
    png(&dir.join(&rel), kind);
    index_line(dir, step, tag, &rel);
}

fn index_line(dir: &Path, step: u64, tag: &str, rel: &str) {
    std::fs::create_dir_all(dir.join("samples")).unwrap();
    let mut f = std::fs::OpenOptions::new().create(true).append(true).open(dir.join("samples/index.jsonl")).unwrap();
    let ev = json!({"step": step, "epoch": 0, "wall": NOW + step as f64, "tag": tag, "file": rel,
        "captions": [format!("a small bird step {step}"), "a red flower"], "rows": 1, "cols": 2});
    writeln!(f, "{ev}").unwrap();
}

fn task(id: u64, run_dir: &Path) -> serde_json::Value {
    json!({
        "id": id, "job": "fake-run", "group": "default", "state": "running",
        "run_id": format!("20260101-0000{id:02}-fake"), "run_dir": run_dir,
        "queued_at": NOW - 900.0, "started_at": NOW - 600.0, "slot": 0,
        "label": format!("fake-{id}"),
        "status": {"state": "running", "step": 30, "total_steps": 200, "message": "training"},
    })
}

struct Fixture {
    dir: tempfile::TempDir,
    app: App,
    ready: mpsc::Receiver<()>,
}

impl Fixture {
    fn run(&self, n: u32) -> std::path::PathBuf {
        self.dir.path().join(format!("runs/run{n}"))
    }

    /// Wait (bounded) until no pane is loading.
    fn settle(&mut self) {
        while self.app.samples.panes.iter().any(|p| matches!(p.state, PaneState::Loading(_))) {
            self.ready.recv_timeout(Duration::from_secs(60)).expect("the image thread answered");
            self.app.handle(Event::ImageReady);
        }
    }

    fn key(&mut self, code: KeyCode) {
        self.app.handle(Event::Key(KeyEvent::new(code, KeyModifiers::NONE)));
        self.settle();
    }
}

/// Run 1: grid/64 at steps 10, 20, 30 and grid/128 at 20. Run 2: grid/64 at 15, 25.
fn fixture(picker: ImagePicker, size: (u16, u16)) -> Fixture {
    let dir = tempfile::tempdir().unwrap();
    let (r1, r2) = (dir.path().join("runs/run1"), dir.path().join("runs/run2"));
    for (i, s) in [10, 20, 30].into_iter().enumerate() {
        sample(&r1, s, "grid/64", i as u32);
    }
    sample(&r1, 20, "grid/128", 2);
    sample(&r2, 15, "grid/64", 1);
    sample(&r2, 25, "grid/64", 2);
    let snap: Snapshot = serde_json::from_value(json!({
        "rev": 1, "daemon_pid": 4242, "home": dir.path(),
        "settings": {"stop_timeout_s": 60.0, "log_cap_bytes": 1024},
        "groups": [{"name": "default", "slots": 2, "running": 2, "queued": 0}],
        "tasks": [task(1, &r1), task(2, &r2)],
        "save_error": null,
    }))
    .unwrap();
    let mut app = App::new(dir.path(), Keymap::default(), Theme::default());
    app.now = NOW;
    app.size = size;
    let (tx, ready) = mpsc::channel();
    app.samples.start(picker, move || {
        let _ = tx.send(());
    });
    app.handle(Event::Snapshot(Box::new(snap)));
    let mut f = Fixture { dir, app, ready };
    f.key(KeyCode::Char('5'));
    assert_eq!(f.app.view, View::Samples);
    f
}

fn render(app: &App) -> String {
    let mut term = Terminal::new(TestBackend::new(app.size.0, app.size.1)).unwrap();
    term.draw(|f| views::draw(f, app)).unwrap();
    format!("{}", term.backend())
}

#[test]
fn one_run_newest_then_scrub() {
    let mut f = fixture(ImagePicker::ascii(), (100, 22));
    assert_eq!(f.app.sample_tags(), ["grid/128", "grid/64"]);
    // Tag list starts at grid/128 (one step); go to grid/64.
    assert_eq!(f.app.sample_steps().1, [20]);
    f.key(KeyCode::Down);
    assert_eq!(f.app.sample_steps(), (Some("grid/64".into()), vec![10, 20, 30]));
    assert_eq!(f.app.sample_step(), Some(30));
    assert!(matches!(f.app.samples.panes[0].state, PaneState::Ready(_)));
    insta::assert_snapshot!("samples_newest", render(&f.app));

    f.key(KeyCode::Left);
    assert_eq!(f.app.sample_step(), Some(20));
    assert_eq!(f.app.samples.step, Some(20));
    insta::assert_snapshot!("samples_step20", render(&f.app));
    f.key(KeyCode::Home);
    assert_eq!(f.app.sample_step(), Some(10));
    f.key(KeyCode::Left); // stays at the first
    assert_eq!(f.app.sample_step(), Some(10));
    f.key(KeyCode::Char('l'));
    assert_eq!(f.app.sample_step(), Some(20));
    f.key(KeyCode::Right); // onto the last step: follows again
    assert_eq!((f.app.sample_step(), f.app.samples.step), (Some(30), None));
    f.key(KeyCode::Home);
    f.key(KeyCode::End);
    assert_eq!((f.app.sample_step(), f.app.samples.step), (Some(30), None));
    // The two renders of different steps differ in the image, not just the title.
    let ascii = |f: &Fixture| match &f.app.samples.panes[0].state {
        PaneState::Ready(clipgan::console::images::Rendered::Ascii(l)) => l.clone(),
        other => panic!("not ready: {other:?}"),
    };
    let newest = ascii(&f);
    f.key(KeyCode::Home);
    assert_ne!(ascii(&f), newest);
}

#[test]
fn new_samples_appear_on_the_tick() {
    let mut f = fixture(ImagePicker::ascii(), (100, 22));
    f.key(KeyCode::Down);
    assert_eq!(f.app.sample_step(), Some(30));
    sample(&f.run(1), 40, "grid/64", 1);
    sample(&f.run(1), 40, "grid/256", 1);
    f.app.handle(Event::Tick(NOW + 1.0));
    f.settle();
    assert_eq!(f.app.sample_tags(), ["grid/128", "grid/256", "grid/64"]);
    // The focus index now points at grid/256; move to grid/64 and see step 40 (following).
    f.key(KeyCode::Down);
    assert_eq!(f.app.sample_step(), Some(40));
    let PaneState::Ready(_) = &f.app.samples.panes[0].state else { panic!("not ready") };
    assert!(render(&f.app).contains("step 40 (newest) [4/4]"));
    // A chosen step stays put while new samples arrive.
    f.key(KeyCode::Left);
    sample(&f.run(1), 50, "grid/64", 2);
    f.app.handle(Event::Tick(NOW + 2.0));
    f.settle();
    assert_eq!(f.app.sample_step(), Some(30));
    assert_eq!(f.app.sample_steps().1, [10, 20, 30, 40, 50]);
}

#[test]
fn two_marked_runs_side_by_side_at_the_nearest_step() {
    let mut f = fixture(ImagePicker::ascii(), (120, 22));
    f.app.runs.marked.extend([1, 2]);
    f.key(KeyCode::Down); // grid/64
                          // The scrubber walks the steps of both runs: 10, 15, 20, 25, 30.
    assert_eq!(f.app.sample_steps().1, [10, 15, 20, 25, 30]);
    f.key(KeyCode::Left); // step 25, which only run 2 has
    let ev: Vec<Option<u64>> = f.app.sample_events().iter().map(|e| e.map(|e| e.step)).collect();
    assert_eq!(ev, [Some(20), Some(25)]);
    f.key(KeyCode::Left); // step 20
    let ev: Vec<Option<u64>> = f.app.sample_events().iter().map(|e| e.map(|e| e.step)).collect();
    assert_eq!(ev, [Some(20), Some(15)]);
    assert!(f.app.samples.panes.iter().all(|p| matches!(p.state, PaneState::Ready(_))));
    insta::assert_snapshot!("samples_compare", render(&f.app));
    f.key(KeyCode::Home); // step 10: run 2 has nothing at or before it
    let ev: Vec<Option<u64>> = f.app.sample_events().iter().map(|e| e.map(|e| e.step)).collect();
    assert_eq!(ev, [Some(10), None]);
    assert!(render(&f.app).contains("no sample at or"));
}

#[test]
fn corrupt_and_missing_images_are_errors_in_the_pane() {
    let mut f = fixture(ImagePicker::halfblocks(), (100, 22));
    let r1 = f.run(1);
    std::fs::write(r1.join("samples/corrupt.png"), b"\x89PNG\r\n\x1a\nnot really a png").unwrap();
    index_line(&r1, 40, "grid/64", "samples/corrupt.png");
    index_line(&r1, 50, "grid/64", "samples/gone.png");
    f.app.handle(Event::Tick(NOW + 1.0));
    f.key(KeyCode::Down);
    f.key(KeyCode::Left); // 40: corrupt
    assert_eq!(f.app.sample_step(), Some(40));
    let PaneState::Failed(e) = &f.app.samples.panes[0].state else { panic!("not failed: {:?}", f.app.samples.panes[0].state) };
    assert!(e.contains("corrupt.png") && e.contains("not a readable image"), "{e}");
    assert!(render(&f.app).contains("image error"));
    f.key(KeyCode::End); // 50: missing
    let PaneState::Failed(e) = &f.app.samples.panes[0].state else { panic!("not failed") };
    assert!(e.contains("gone.png"), "{e}");
    // Back to a good one: halfblocks draws it.
    f.key(KeyCode::Home);
    assert!(matches!(f.app.samples.panes[0].state, PaneState::Ready(_)));
    render(&f.app);
}

#[test]
fn tiny_and_odd_sizes_never_panic() {
    for picker in [ImagePicker::ascii(), ImagePicker::halfblocks()] {
        let mut f = fixture(picker, (40, 12));
        f.app.runs.marked.extend([1, 2]);
        for (w, h) in [(1, 1), (5, 3), (10, 4), (20, 6), (40, 12), (41, 13), (200, 60), (300, 8)] {
            f.app.handle(Event::Resize(w, h));
            f.settle();
            render(&f.app);
            f.app.popups.push(Popup::Help);
            render(&f.app);
            f.app.popups.clear();
        }
    }
    // No run at all: a hint, no panic.
    let mut app = App::new(Path::new("/nonexistent"), Keymap::default(), Theme::default());
    app.view = View::Samples;
    app.handle(Event::Tick(NOW));
    assert!(render(&app).contains("select a run"));
}

#[test]
fn help_lists_the_samples_keys() {
    let mut f = fixture(ImagePicker::ascii(), (100, 30));
    f.app.popups.push(Popup::Help);
    let s = render(&f.app);
    assert!(s.contains("previous sample step") && s.contains("samples view"), "{s}");
}

/// The colours of the 2 x 4 test grid's cells, row-major.
const CELL_COLOURS: [[u8; 3]; 8] =
    [[230, 30, 30], [30, 200, 30], [30, 30, 230], [230, 230, 30], [230, 30, 230], [30, 230, 230], [250, 250, 250], [120, 60, 0]];

/// A 2 x 4 grid of 32 px single-colour images laid out as util::grid does (2 px border
/// of its colour): 138 x 70 px, like a small DM-GAN sample grid.
fn grid_png(path: &Path) {
    let pad = clipgan::util::grid::PAD_COLOUR;
    let img = image::RgbImage::from_fn(138, 70, |x, y| {
        let (cx, cy) = (x.saturating_sub(2) / 34, y.saturating_sub(2) / 34);
        let inside = x >= 2 && y >= 2 && (x - 2) % 34 < 32 && (y - 2) % 34 < 32 && cx < 4 && cy < 2;
        if inside {
            image::Rgb(CELL_COLOURS[(cy * 4 + cx) as usize])
        } else {
            pad
        }
    });
    std::fs::create_dir_all(path.parent().unwrap()).unwrap();
    img.save(path).unwrap();
}

/// Add a 2 x 4 grid sample with 8 captions to a run folder.
fn grid_sample(dir: &Path, step: u64) {
    let rel = format!("samples/{step:09}_grid-big.png");
    grid_png(&dir.join(&rel));
    let captions: Vec<String> = (0..8).map(|k| format!("caption of image {} at step {step}", k + 1)).collect();
    let ev = json!({"step": step, "epoch": 0, "wall": NOW + step as f64, "tag": "grid/big", "file": rel,
        "captions": captions, "rows": 2, "cols": 4});
    let mut f = std::fs::OpenOptions::new().create(true).append(true).open(dir.join("samples/index.jsonl")).unwrap();
    writeln!(f, "{ev}").unwrap();
}

/// The rendered protocol's size in cells, of pane `i`.
fn pane_cells(f: &Fixture, i: usize) -> (u16, u16) {
    match &f.app.samples.panes[i].state {
        PaneState::Ready(clipgan::console::images::Rendered::Protocol(p)) => (p.size().width, p.size().height),
        other => panic!("pane {i} not ready: {other:?}"),
    }
}

/// The colour most cells of `area` are drawn in (halfblocks: foreground of `▀`).
fn main_colour(buf: &ratatui::buffer::Buffer, area: ratatui::layout::Rect) -> Option<ratatui::style::Color> {
    let mut counts: std::collections::HashMap<String, (usize, ratatui::style::Color)> = Default::default();
    for y in area.top()..area.bottom() {
        for x in area.left()..area.right() {
            let c = buf[(x, y)].fg;
            counts.entry(format!("{c:?}")).or_insert((0, c)).0 += 1;
        }
    }
    counts.into_values().max_by_key(|v| v.0).map(|v| v.1)
}

fn buffer(app: &App) -> ratatui::buffer::Buffer {
    let mut term = Terminal::new(TestBackend::new(app.size.0, app.size.1)).unwrap();
    term.draw(|f| views::draw(f, app)).unwrap();
    term.backend().buffer().clone()
}

#[test]
fn a_grid_fills_its_pane_and_one_image_opens_large() {
    let mut f = fixture(ImagePicker::halfblocks(), (120, 40));
    grid_sample(&f.run(1), 40);
    f.app.handle(Event::Tick(NOW + 1.0));
    f.settle();
    // Tags sorted: grid/128, grid/64, grid/big.
    f.key(KeyCode::Down);
    f.key(KeyCode::Down);
    assert_eq!(f.app.sample_steps().0.as_deref(), Some("grid/big"));
    // The pane: 120 - 18 (tags) = 102 columns, 38 - 2 (scrubber) = 36 rows, less the
    // border: 100 x 34 cells. The 138 x 70 grid fills its width or its height.
    let areas =
        clipgan::console::samples::layout(clipgan::console::samples::body_area(f.app.size), &f.app.sample_shapes(), f.app.samples.cell);
    let (_, img, cap) = areas.panes[0];
    let (w, h) = pane_cells(&f, 0);
    assert_eq!((w, h), (img.width, img.height));
    assert!(w == 100 || h == 34 - cap.height, "the grid fills its pane: {w} x {h}, captions {cap:?}");
    assert!(w >= 90, "a 138 px grid is drawn {w} cells wide, not at its pixel size");
    // Wide grid in a wide pane: the captions go under it (that leaves the image larger).
    assert_eq!(cap.y, img.bottom(), "{img:?} {cap:?}");
    insta::assert_snapshot!("samples_grid_fills", render(&f.app));

    // enter: image 1 large, in its own colour, with its caption.
    f.key(KeyCode::Enter);
    assert_eq!(f.app.sample_zoom(), Some((0, 8)));
    let areas =
        clipgan::console::samples::layout(clipgan::console::samples::body_area(f.app.size), &f.app.sample_shapes(), f.app.samples.cell);
    let (_, img, _) = areas.panes[0];
    // A square image with one caption in 100 x 34 cells of 1:2: the caption goes beside
    // it (under it would cost the image 3 rows), and the image is 34 rows high.
    let (w, h) = pane_cells(&f, 0);
    assert_eq!((w, h), (img.width, img.height));
    assert_eq!(h, 34);
    assert!((w as i32 - 2 * h as i32).abs() <= 1, "square in 1:2 cells: {w} x {h}");
    let [r, g, b] = CELL_COLOURS[0];
    assert_eq!(main_colour(&buffer(&f.app), img), Some(ratatui::style::Color::Rgb(r, g, b)));
    let s = render(&f.app);
    // The caption beside the image (wrapped), the position in the title.
    assert!(s.contains("1/8 caption of image 1 at step") && s.contains("image 1/8"), "{s}");
    insta::assert_snapshot!("samples_image_open", s);

    // right/left walk the grid (around the ends); esc goes back to the grid.
    f.key(KeyCode::Right);
    assert_eq!(f.app.sample_zoom(), Some((1, 8)));
    let [r, g, b] = CELL_COLOURS[1];
    assert_eq!(main_colour(&buffer(&f.app), img), Some(ratatui::style::Color::Rgb(r, g, b)));
    assert!(render(&f.app).contains("2/8 caption of image 2 at step"));
    f.key(KeyCode::Left);
    f.key(KeyCode::Left);
    assert_eq!(f.app.sample_zoom(), Some((7, 8)));
    assert_eq!(f.app.sample_step(), Some(40), "walking the grid does not scrub");
    f.key(KeyCode::Esc);
    assert_eq!(f.app.sample_zoom(), None);
    assert_eq!(pane_cells(&f, 0).0, 100);
}

#[test]
fn side_by_side_both_runs_open_the_same_image() {
    let mut f = fixture(ImagePicker::halfblocks(), (140, 30));
    grid_sample(&f.run(1), 40);
    grid_sample(&f.run(2), 40);
    f.app.runs.marked.extend([1, 2]);
    f.app.handle(Event::Tick(NOW + 1.0));
    f.settle();
    // Tags sorted: grid/128, grid/64, grid/big.
    f.key(KeyCode::Down);
    f.key(KeyCode::Down);
    assert_eq!(f.app.sample_steps().0.as_deref(), Some("grid/big"));
    // Two panes of 60 x 26 cells: each grid fills its width.
    assert!(pane_cells(&f, 0).0 >= 55 && pane_cells(&f, 1).0 >= 55, "{:?} {:?}", pane_cells(&f, 0), pane_cells(&f, 1));
    insta::assert_snapshot!("samples_compare_grids", render(&f.app));
    f.key(KeyCode::Enter);
    f.key(KeyCode::Right);
    f.key(KeyCode::Right);
    let areas =
        clipgan::console::samples::layout(clipgan::console::samples::body_area(f.app.size), &f.app.sample_shapes(), f.app.samples.cell);
    let buf = buffer(&f.app);
    let [r, g, b] = CELL_COLOURS[2];
    for i in 0..2 {
        assert_eq!(main_colour(&buf, areas.panes[i].1), Some(ratatui::style::Color::Rgb(r, g, b)), "pane {i}");
    }
    assert_eq!(render(&f.app).matches("image 3/8").count(), 2);
}

#[test]
fn the_renderer_note_is_short_and_whole_in_help() {
    let mut picker = ImagePicker::halfblocks();
    picker.note =
        "halfblocks (the terminal did not answer within 1500 ms (inside tmux: is it attached, with allow-passthrough on?))".into();
    let mut f = fixture(picker, (100, 30));
    let s = render(&f.app);
    assert!(s.contains("renderer: halfblocks (why: ?)") && !s.contains("1500 ms"), "{s}");
    f.app.popups.push(Popup::Help);
    let s = render(&f.app);
    assert!(s.contains("1500 ms") && s.contains("allow-passthrough on?))"), "{s}");
}

#[test]
fn retrieval_captions_have_their_marks_explained() {
    let mut f = fixture(ImagePicker::halfblocks(), (120, 30));
    let r1 = f.run(1);
    grid_png(&r1.join("samples/000000050_retrieval.png"));
    let captions: Vec<String> = (0..8).map(|k| format!("{} a bird number {k}", ["[own]", "[class]", "[wrong]"][k % 3])).collect();
    let ev = json!({"step": 50, "epoch": 1, "wall": NOW + 50.0, "tag": "retrieval", "file": "samples/000000050_retrieval.png",
        "captions": captions, "rows": 2, "cols": 4});
    let mut file = std::fs::OpenOptions::new().append(true).open(r1.join("samples/index.jsonl")).unwrap();
    writeln!(file, "{ev}").unwrap();
    f.app.handle(Event::Tick(NOW + 1.0));
    f.settle();
    // Tags sorted: grid/128, grid/64, retrieval.
    f.key(KeyCode::Down);
    f.key(KeyCode::Down);
    assert_eq!(f.app.sample_steps().0.as_deref(), Some("retrieval"));
    let s = render(&f.app);
    assert!(s.contains("caption ranked first per image:") && s.contains("[wrong] another class"), "{s}");
    f.key(KeyCode::Enter);
    let s = render(&f.app);
    assert!(s.contains("[own] a bird number 0") && s.contains("[wrong] another class"), "{s}");
}
