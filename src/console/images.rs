//! Images in the terminal for the console's samples view.
//!
//! - [`ImagePicker`] chooses how images are drawn: ratatui-image's sixel, kitty or iTerm2
//!   protocols when the terminal answers for them, halfblocks (always works: coloured
//!   `▀` cells), or a plain ASCII luminance rendering for terminals without Unicode or
//!   colour. `CLIPGAN_IMAGE_PROTOCOL=auto|sixel|kitty|iterm2|halfblocks|ascii` overrides
//!   the detection. Inside tmux ratatui-image wraps sixel/kitty/iTerm2 output in tmux's
//!   passthrough (tmux needs `set -g allow-passthrough on`).
//! - [`ImageLoader`] decodes, resizes and encodes on a background thread, so the input
//!   loop never waits for an image; [`ImagePane`] draws the ready image, a "loading"
//!   line, or the error (a corrupt PNG is a message in the pane, not a panic).
use image::DynamicImage;
use ratatui::buffer::Buffer;
use ratatui::layout::{Rect, Size};
use ratatui::style::{Color, Style};
use ratatui::text::Line;
use ratatui::widgets::{Paragraph, Widget, Wrap};
use ratatui_image::picker::{Picker, ProtocolType};
use ratatui_image::protocol::Protocol;
use ratatui_image::{Image, Resize};
use std::collections::HashMap;
use std::path::{Path, PathBuf};
use std::sync::mpsc::{self, Receiver, Sender};
use std::sync::{Arc, Mutex};

/// The environment variable that overrides protocol detection.
pub const PROTOCOL_ENV: &str = "CLIPGAN_IMAGE_PROTOCOL";

/// How images are drawn (the user's choice; `Auto` asks the terminal).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum ImageProtocol {
    #[default]
    Auto,
    Sixel,
    Kitty,
    Iterm2,
    Halfblocks,
    Ascii,
}

impl std::str::FromStr for ImageProtocol {
    type Err = String;
    fn from_str(s: &str) -> Result<Self, String> {
        Ok(match s.trim().to_ascii_lowercase().as_str() {
            "" | "auto" => ImageProtocol::Auto,
            "sixel" => ImageProtocol::Sixel,
            "kitty" => ImageProtocol::Kitty,
            "iterm2" | "iterm" => ImageProtocol::Iterm2,
            "halfblocks" | "halfblock" => ImageProtocol::Halfblocks,
            "ascii" => ImageProtocol::Ascii,
            other => return Err(format!("{PROTOCOL_ENV}={other}: expected auto, sixel, kitty, iterm2, halfblocks or ascii")),
        })
    }
}

impl ImageProtocol {
    /// From `CLIPGAN_IMAGE_PROTOCOL` (unset = halfblocks); an unknown value is an error.
    ///
    /// Unset means halfblocks, not auto: ratatui-image's terminal query (auto, sixel,
    /// kitty, iterm2) was seen to leave keyboard input dead inside tmux, so asking the
    /// terminal is opt-in until that is understood.
    pub fn from_env() -> Result<Self, String> {
        match std::env::var(PROTOCOL_ENV) {
            Ok(v) if !v.trim().is_empty() => v.parse(),
            _ => Ok(ImageProtocol::Halfblocks),
        }
    }
}

/// The chosen renderer. Clone it into the loader; the picker is only data.
#[derive(Clone, Debug)]
pub struct ImagePicker {
    /// `None` = ASCII.
    picker: Option<Picker>,
    /// Why this renderer (shown in the samples view's title).
    pub note: String,
}

impl ImagePicker {
    /// Halfblocks: works on every terminal with Unicode and colour.
    pub fn halfblocks() -> Self {
        ImagePicker { picker: Some(Picker::halfblocks()), note: "halfblocks".into() }
    }

    /// The plain ASCII luminance renderer.
    pub fn ascii() -> Self {
        ImagePicker { picker: None, note: "ascii".into() }
    }

    /// Choose per `protocol`. Anything but halfblocks/ascii asks the terminal (escape
    /// sequences on stdout, answers on stdin), so call it after entering the alternate
    /// screen and before reading input events. A terminal that doesn't answer gives
    /// halfblocks. A forced protocol is used even if the terminal didn't claim it (the
    /// query still supplies the cell size in pixels).
    pub fn detect(protocol: ImageProtocol) -> Self {
        let forced = match protocol {
            ImageProtocol::Ascii => return Self::ascii(),
            ImageProtocol::Halfblocks => return Self::halfblocks(),
            ImageProtocol::Auto => None,
            ImageProtocol::Sixel => Some(ProtocolType::Sixel),
            ImageProtocol::Kitty => Some(ProtocolType::Kitty),
            ImageProtocol::Iterm2 => Some(ProtocolType::Iterm2),
        };
        let mut picker = match Picker::from_query_stdio() {
            Ok(p) => p,
            Err(e) => {
                let mut me = Self::halfblocks();
                me.note = format!("halfblocks (terminal query failed: {e})");
                return me;
            }
        };
        if let Some(t) = forced {
            picker.set_protocol_type(t);
        }
        let mut note = protocol_name(picker.protocol_type()).to_string();
        if forced.is_some() {
            note.push_str(" (forced)");
        }
        if picker.tmux_detected() {
            note.push_str(" via tmux passthrough");
        }
        ImagePicker { picker: Some(picker), note }
    }

    /// [`detect`](Self::detect) with the protocol from `CLIPGAN_IMAGE_PROTOCOL`; a bad
    /// value falls back to auto and says so in `note`.
    pub fn from_env() -> Self {
        match ImageProtocol::from_env() {
            Ok(p) => Self::detect(p),
            Err(e) => {
                let mut me = Self::halfblocks();
                me.note = format!("{} ({e})", me.note);
                me
            }
        }
    }

    /// The renderer's short name: sixel, kitty, iterm2, halfblocks or ascii.
    pub fn name(&self) -> &'static str {
        match &self.picker {
            None => "ascii",
            Some(p) => protocol_name(p.protocol_type()),
        }
    }

    /// Decode nothing, just render `img` to fit `size` (cells). Runs on the loader's
    /// thread; public for tests and one-off use.
    pub fn render(&self, img: DynamicImage, size: Size) -> Result<Rendered, String> {
        match &self.picker {
            None => Ok(Rendered::Ascii(ascii_lines(&img, size.width, size.height))),
            Some(p) => p.new_protocol(img, size, Resize::Fit(None)).map(|p| Rendered::Protocol(Box::new(p))).map_err(|e| format!("encoding: {e}")),
        }
    }
}

fn protocol_name(t: ProtocolType) -> &'static str {
    match t {
        ProtocolType::Halfblocks => "halfblocks",
        ProtocolType::Sixel => "sixel",
        ProtocolType::Kitty => "kitty",
        ProtocolType::Iterm2 => "iterm2",
    }
}

/// Dark to bright.
const RAMP: &[u8] = b" .:-=+*#%@";

/// The image as lines of ASCII, one character per cell by mean luminance (Rec. 709),
/// fitted into `cols` x `rows` keeping its aspect (a cell is about twice as tall as
/// wide). Deterministic; box-filtered so thin features still darken their cell.
pub fn ascii_lines(img: &DynamicImage, cols: u16, rows: u16) -> Vec<String> {
    let (w, h) = (img.width() as f64, img.height() as f64);
    if cols == 0 || rows == 0 || w == 0.0 || h == 0.0 {
        return Vec::new();
    }
    // Cell = 1 unit wide, 2 units tall.
    let scale = (cols as f64 / w).min(rows as f64 * 2.0 / h);
    let out_c = ((w * scale).round() as usize).clamp(1, cols as usize);
    let out_r = ((h * scale / 2.0).round() as usize).clamp(1, rows as usize);
    let rgb = img.to_rgb8();
    let mut lines = Vec::with_capacity(out_r);
    for r in 0..out_r {
        let y0 = (r as f64 * h / out_r as f64) as u32;
        let y1 = (((r + 1) as f64 * h / out_r as f64).ceil() as u32).clamp(y0 + 1, img.height());
        let mut line = String::with_capacity(out_c);
        for c in 0..out_c {
            let x0 = (c as f64 * w / out_c as f64) as u32;
            let x1 = (((c + 1) as f64 * w / out_c as f64).ceil() as u32).clamp(x0 + 1, img.width());
            let (mut sum, mut n) = (0.0, 0.0);
            for y in y0..y1 {
                for x in x0..x1 {
                    let p = rgb.get_pixel(x, y).0;
                    sum += 0.2126 * p[0] as f64 + 0.7152 * p[1] as f64 + 0.0722 * p[2] as f64;
                    n += 1.0;
                }
            }
            let lum = sum / n / 255.0;
            let k = ((lum * RAMP.len() as f64) as usize).min(RAMP.len() - 1);
            line.push(RAMP[k] as char);
        }
        lines.push(line);
    }
    lines
}

/// An image ready to draw.
pub enum Rendered {
    Protocol(Box<Protocol>),
    Ascii(Vec<String>),
}

impl std::fmt::Debug for Rendered {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            Rendered::Protocol(p) => write!(f, "Protocol({:?})", p.size()),
            Rendered::Ascii(l) => write!(f, "Ascii({} lines)", l.len()),
        }
    }
}

struct Job {
    slot: usize,
    ticket: u64,
    path: PathBuf,
    size: Size,
}

/// A finished job.
#[derive(Debug)]
pub struct Loaded {
    pub ticket: u64,
    pub result: Result<Rendered, String>,
}

/// Decodes and encodes images on one background thread. Requests go to a slot (one per
/// pane); when requests pile up (scrubbing through steps) only the newest per slot is
/// done. `on_ready` is called after each result, e.g. to send the app a redraw event.
pub struct ImageLoader {
    tx: Option<Sender<Job>>,
    done: Arc<Mutex<HashMap<usize, Loaded>>>,
    next_ticket: u64,
    thread: Option<std::thread::JoinHandle<()>>,
    pub picker_name: &'static str,
}

impl ImageLoader {
    pub fn new(picker: ImagePicker, on_ready: impl Fn() + Send + 'static) -> Self {
        let (tx, rx) = mpsc::channel::<Job>();
        let done: Arc<Mutex<HashMap<usize, Loaded>>> = Arc::default();
        let done2 = done.clone();
        let picker_name = picker.name();
        let thread = std::thread::Builder::new()
            .name("clipgan-images".into())
            .spawn(move || loader_thread(picker, rx, done2, on_ready))
            .expect("spawning the image thread");
        ImageLoader { tx: Some(tx), done, next_ticket: 1, thread: Some(thread), picker_name }
    }

    /// Ask for `path` drawn to fit `size` cells in `slot`; returns the ticket the result
    /// will carry.
    pub fn request(&mut self, slot: usize, path: &Path, size: Size) -> u64 {
        let ticket = self.next_ticket;
        self.next_ticket += 1;
        if let Some(tx) = &self.tx {
            let _ = tx.send(Job { slot, ticket, path: path.to_path_buf(), size });
        }
        ticket
    }

    /// The latest finished result for `slot`, if any (taken).
    pub fn take(&self, slot: usize) -> Option<Loaded> {
        self.done.lock().ok()?.remove(&slot)
    }
}

impl Drop for ImageLoader {
    fn drop(&mut self) {
        self.tx = None; // ends the thread's receive loop
        if let Some(t) = self.thread.take() {
            let _ = t.join();
        }
    }
}

fn loader_thread(picker: ImagePicker, rx: Receiver<Job>, done: Arc<Mutex<HashMap<usize, Loaded>>>, on_ready: impl Fn()) {
    while let Ok(first) = rx.recv() {
        // Coalesce: keep the newest job per slot.
        let mut jobs: Vec<Job> = vec![first];
        while let Ok(j) = rx.try_recv() {
            match jobs.iter_mut().find(|x| x.slot == j.slot) {
                Some(x) => *x = j,
                None => jobs.push(j),
            }
        }
        for job in jobs {
            let result = load(&picker, &job.path, job.size);
            if let Ok(mut d) = done.lock() {
                d.insert(job.slot, Loaded { ticket: job.ticket, result });
            }
            on_ready();
        }
    }
}

fn load(picker: &ImagePicker, path: &Path, size: Size) -> Result<Rendered, String> {
    let img = image::ImageReader::open(path)
        .map_err(|e| format!("{}: {e}", path.display()))?
        .with_guessed_format()
        .map_err(|e| format!("{}: {e}", path.display()))?
        .decode()
        .map_err(|e| format!("{}: not a readable image: {e}", path.display()))?;
    // A panic inside an encoder must not take the console down.
    std::panic::catch_unwind(std::panic::AssertUnwindSafe(|| picker.render(img, size))).unwrap_or_else(|_| Err(format!("{}: the image encoder failed", path.display())))
}

/// What a pane shows.
#[derive(Debug, Default)]
pub enum PaneState {
    #[default]
    Empty,
    Loading(PathBuf),
    Ready(Rendered),
    Failed(String),
}

/// One image area (e.g. one run's sample) fed by an [`ImageLoader`] slot.
#[derive(Debug)]
pub struct ImagePane {
    slot: usize,
    want: Option<(PathBuf, Size)>,
    ticket: u64,
    pub state: PaneState,
}

impl ImagePane {
    pub fn new(slot: usize) -> Self {
        ImagePane { slot, want: None, ticket: 0, state: PaneState::Empty }
    }

    /// Show `path` fitted to `size`; requests it when the path or size changed.
    pub fn show(&mut self, loader: &mut ImageLoader, path: &Path, size: Size) {
        if self.want.as_ref().is_some_and(|(p, s)| p == path && *s == size) {
            return;
        }
        self.want = Some((path.to_path_buf(), size));
        self.ticket = loader.request(self.slot, path, size);
        self.state = PaneState::Loading(path.to_path_buf());
    }

    /// Show nothing.
    pub fn clear(&mut self) {
        self.want = None;
        self.ticket = 0;
        self.state = PaneState::Empty;
    }

    /// Pick up a finished result for the current request; true when the pane changed.
    pub fn update(&mut self, loader: &ImageLoader) -> bool {
        match loader.take(self.slot) {
            Some(l) if l.ticket == self.ticket => {
                self.state = match l.result {
                    Ok(r) => PaneState::Ready(r),
                    Err(e) => PaneState::Failed(e),
                };
                true
            }
            _ => false,
        }
    }
}

impl Widget for &ImagePane {
    fn render(self, area: Rect, buf: &mut Buffer) {
        if area.width == 0 || area.height == 0 {
            return;
        }
        match &self.state {
            PaneState::Empty => {}
            PaneState::Loading(p) => {
                let name = p.file_name().map(|n| n.to_string_lossy().into_owned()).unwrap_or_default();
                Paragraph::new(Line::styled(format!("loading {name}…"), Style::default().fg(Color::DarkGray))).render(area, buf);
            }
            PaneState::Failed(e) => {
                Paragraph::new(Line::styled(format!("image error: {e}"), Style::default().fg(Color::Red))).wrap(Wrap { trim: true }).render(area, buf);
            }
            PaneState::Ready(Rendered::Ascii(lines)) => {
                Paragraph::new(lines.iter().map(|l| Line::raw(l.as_str())).collect::<Vec<_>>()).render(area, buf);
            }
            PaneState::Ready(Rendered::Protocol(p)) => {
                // Encoded for the requested size; a smaller area (mid-resize) clips
                // where the protocol can, until the new size's image arrives.
                Image::new(p).allow_clipping(true).render(area, buf);
            }
        }
    }
}
