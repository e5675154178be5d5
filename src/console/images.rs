//! Images in the terminal for the console's samples view.
//!
//! - [`ImagePicker`] chooses how images are drawn: ratatui-image's sixel, kitty or iTerm2
//!   protocols when the terminal answers for them, halfblocks (always works: coloured
//!   `▀` cells), or a plain ASCII luminance rendering for terminals without Unicode or
//!   colour. `CLIPGAN_IMAGE_PROTOCOL=auto|sixel|kitty|iterm2|halfblocks|ascii` overrides
//!   the detection. Inside tmux ratatui-image wraps sixel/kitty/iTerm2 output in tmux's
//!   passthrough (tmux needs `set -g allow-passthrough on`).
//! - Every image is scaled up or down to the largest size that fits its area for the
//!   renderer's cell size in pixels, keeping its aspect ([`fit_pixels`]); a grid's one
//!   image can be cut out first ([`Crop`], for the samples view's large image).
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
use std::time::Duration;

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
    /// From `CLIPGAN_IMAGE_PROTOCOL` (unset = auto); an unknown value is an error.
    pub fn from_env() -> Result<Self, String> {
        match std::env::var(PROTOCOL_ENV) {
            Ok(v) => v.parse(),
            Err(_) => Ok(ImageProtocol::Auto),
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
    /// Keys typed while the terminal was being asked (see [`TermAnswer::typed`]).
    pub typed_ahead: Vec<u8>,
}

impl ImagePicker {
    /// Halfblocks: works on every terminal with Unicode and colour.
    pub fn halfblocks() -> Self {
        ImagePicker { picker: Some(Picker::halfblocks()), note: "halfblocks".into(), typed_ahead: Vec::new() }
    }

    /// The plain ASCII luminance renderer.
    pub fn ascii() -> Self {
        ImagePicker { picker: None, note: "ascii".into(), typed_ahead: Vec::new() }
    }

    /// Choose per `protocol`. Anything but halfblocks/ascii asks the terminal (escape
    /// sequences on stdout, answers on stdin; see [`query`]), so call it in raw mode and
    /// before anything else reads input events. Auto with a terminal that doesn't answer
    /// gives halfblocks. A forced protocol is used even if the terminal didn't claim it
    /// (the query then only supplies the cell size in pixels).
    pub fn detect(protocol: ImageProtocol) -> Self {
        let forced = match protocol {
            ImageProtocol::Ascii => return Self::ascii(),
            ImageProtocol::Halfblocks => return Self::halfblocks(),
            ImageProtocol::Auto => None,
            ImageProtocol::Sixel => Some(ProtocolType::Sixel),
            ImageProtocol::Kitty => Some(ProtocolType::Kitty),
            ImageProtocol::Iterm2 => Some(ProtocolType::Iterm2),
        };
        let mut typed_ahead = Vec::new();
        // A forced protocol still works when the terminal did not answer (`why`).
        let (mut picker, why) = match (query_stdio(QUERY_TIMEOUT, &mut typed_ahead), forced) {
            // A forced protocol needs no reason why another was not chosen.
            (Ok((p, not_kitty)), _) => (p, not_kitty.filter(|_| forced.is_none())),
            (Err(e), None) => {
                let mut me = Self::halfblocks();
                me.note = format!("halfblocks ({e})");
                me.typed_ahead = typed_ahead;
                return me;
            }
            (Err(e), Some(_)) => {
                #[allow(deprecated)] // see query_stdio
                let p = Picker::from_fontsize(cell_size_from_ioctl().unwrap_or((10, 20)).into());
                (p, Some(e))
            }
        };
        if let Some(t) = forced {
            picker.set_protocol_type(t);
        }
        let mut note = protocol_name(picker.protocol_type()).to_string();
        if forced.is_some() {
            note.push_str(" (forced)");
        }
        if let Some(e) = why {
            note.push_str(&format!(" ({e})"));
        }
        if picker.tmux_detected() && picker.protocol_type() != ProtocolType::Halfblocks {
            note.push_str(" via tmux passthrough");
        }
        ImagePicker { picker: Some(picker), note, typed_ahead }
    }

    /// [`detect`](Self::detect) with the protocol from `CLIPGAN_IMAGE_PROTOCOL`; a bad
    /// value falls back to halfblocks and says so in `note`.
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

    /// A cell's size in pixels (width, height) for this renderer: the terminal's for
    /// the graphics protocols, 10 x 20 for halfblocks and ASCII (one cell holds 1 x 2
    /// image pixels there, so only the 1:2 ratio matters).
    pub fn cell(&self) -> (u16, u16) {
        match &self.picker {
            None => (10, 20),
            Some(p) => {
                let f = p.font_size();
                (f.width.max(1), f.height.max(1))
            }
        }
    }

    /// Decode nothing, just render `img` scaled (up or down) to the largest size that
    /// fits `size` (cells), keeping its aspect. Runs on the loader's thread; public for
    /// tests and one-off use.
    pub fn render(&self, img: DynamicImage, size: Size) -> Result<Rendered, String> {
        match &self.picker {
            None => Ok(Rendered::Ascii(ascii_lines(&img, size.width, size.height))),
            Some(p) => {
                let (w, h) = fit_pixels((img.width(), img.height()), (size.width, size.height), self.cell());
                if w == 0 || h == 0 {
                    return Err("no room for the image".into());
                }
                // Smooth when shrinking; when enlarging, nearest keeps the generated pixels
                // visible as they are (a 64 px sample blown up is not made to look sharper).
                let filter = if w < img.width() { image::imageops::FilterType::Triangle } else { image::imageops::FilterType::Nearest };
                let fitted = if (w, h) == (img.width(), img.height()) { img } else { img.resize_exact(w, h, filter) };
                // Already at the fitted size: Fit leaves it as it is.
                p.new_protocol(fitted, size, Resize::Fit(None))
                    .map(|p| Rendered::Protocol(Box::new(p)))
                    .map_err(|e| format!("encoding: {e}"))
            }
        }
    }
}

/// The size in pixels of an `img` (width, height) image scaled up or down to the largest
/// size that fits `cells` (columns, rows) of `cell` pixels, keeping its aspect: the
/// limiting side fills its cells exactly. (0, 0) when anything is empty.
pub fn fit_pixels(img: (u32, u32), cells: (u16, u16), cell: (u16, u16)) -> (u32, u32) {
    let (iw, ih) = (img.0 as u64, img.1 as u64);
    let (aw, ah) = (cells.0 as u64 * cell.0 as u64, cells.1 as u64 * cell.1 as u64);
    if iw == 0 || ih == 0 || aw == 0 || ah == 0 {
        return (0, 0);
    }
    // Width-limited when the area is relatively narrower than the image.
    if aw * ih <= ah * iw {
        (aw as u32, ((aw * ih + iw / 2) / iw).clamp(1, ah) as u32)
    } else {
        (((ah * iw + ih / 2) / ih).clamp(1, aw) as u32, ah as u32)
    }
}

/// The cells (columns, rows) that an image of `px` pixels takes with `cell`-pixel cells.
pub fn cells_for(px: (u32, u32), cell: (u16, u16)) -> (u16, u16) {
    let (cw, ch) = (cell.0.max(1) as u32, cell.1.max(1) as u32);
    (px.0.div_ceil(cw).min(u16::MAX as u32) as u16, px.1.div_ceil(ch).min(u16::MAX as u32) as u16)
}

/// One image of a grid of `rows` x `cols` images: what is shown instead of the whole
/// picture when the samples view opens one image large.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Crop {
    pub rows: u32,
    pub cols: u32,
    pub index: u32,
}

impl Crop {
    /// The crop's rectangle in a picture of `size` pixels, padded as `util::grid` lays
    /// grids out (`padded`) or split evenly.
    pub fn rect(&self, size: (u32, u32), padded: bool) -> Option<(u32, u32, u32, u32)> {
        crate::util::grid::grid_cell(size, self.rows, self.cols, self.index, padded)
    }

    /// Cut the image out of `img`: as a `util::grid` grid when its corner has the grid's
    /// border colour, else split evenly.
    pub fn apply(&self, img: DynamicImage) -> Result<DynamicImage, String> {
        let size = (img.width(), img.height());
        let corner = img
            .as_rgb8()
            .map(|i| *i.get_pixel(0, 0))
            .or_else(|| (size.0 > 0 && size.1 > 0).then(|| img.to_rgb8().get_pixel(0, 0).to_owned()));
        let padded = corner == Some(crate::util::grid::PAD_COLOUR);
        let (x, y, w, h) =
            self.rect(size, padded).ok_or_else(|| format!("no image {} in a {} x {} grid", self.index + 1, self.rows, self.cols))?;
        Ok(img.crop_imm(x, y, w, h))
    }
}

/// How long the terminal gets to answer the query (over SSH the answer makes a round trip).
pub const QUERY_TIMEOUT: Duration = Duration::from_millis(1500);

/// What the terminal said to [`query`].
#[derive(Debug, Clone, PartialEq, Default)]
pub struct TermAnswer {
    pub kitty: bool,
    pub sixel: bool,
    /// Cell size in pixels (width, height), from `CSI 16 t`.
    pub cell: Option<(u16, u16)>,
    /// The terminal finished answering (its reply to the closing status request came).
    pub complete: bool,
    /// Bytes that came during the query outside any escape sequence: keys typed while
    /// waiting for the answer (see `event::keys_from_bytes`).
    pub typed: Vec<u8>,
    /// The terminal's name and version, from its answer to XTVERSION (`CSI > 0 q`),
    /// e.g. `kitty(0.26.5)` or `XTerm(379)`.
    pub version: Option<String>,
}

impl TermAnswer {
    /// The protocol these answers allow: kitty over sixel; else iTerm2 when the
    /// environment names a terminal that speaks it; else halfblocks.
    pub fn protocol(&self) -> ProtocolType {
        if self.kitty && self.kitty_too_old().is_none() {
            ProtocolType::Kitty
        } else if self.sixel {
            ProtocolType::Sixel
        } else if iterm2_from_env() {
            ProtocolType::Iterm2
        } else {
            ProtocolType::Halfblocks
        }
    }
}

/// The oldest kitty whose graphics protocol has the Unicode placeholders (`U=1`) that
/// ratatui-image places its images with.
pub const KITTY_PLACEHOLDERS_SINCE: (u32, u32) = (0, 28);

impl TermAnswer {
    /// When the terminal is a kitty older than [`KITTY_PLACEHOLDERS_SINCE`]: its version
    /// (it answers the graphics query, but rejects the placements, and no image shows;
    /// Debian 12's kitty is 0.26.5). Such a kitty gets halfblocks.
    pub fn kitty_too_old(&self) -> Option<&str> {
        let v = self.version.as_deref()?;
        let num = v.strip_prefix("kitty(")?.strip_suffix(')')?;
        let mut parts = num.split('.').map(|p| p.parse::<u32>().ok());
        let (major, minor) = (parts.next()??, parts.next()??);
        ((major, minor) < KITTY_PLACEHOLDERS_SINCE).then_some(v)
    }
}

/// Terminals known to speak the iTerm2 image protocol, by `TERM_PROGRAM`/`LC_TERMINAL`
/// (they don't announce it in answer to a query).
fn iterm2_from_env() -> bool {
    let tp = std::env::var("TERM_PROGRAM").unwrap_or_default();
    ["iTerm", "WezTerm", "mintty", "vscode", "Tabby", "Hyper", "rio", "Bobcat", "WarpTerminal"].iter().any(|t| tp.contains(t))
        || std::env::var("LC_TERMINAL").is_ok_and(|t| t.contains("iTerm"))
}

/// Ask the terminal (on `input`/`output`, already in raw mode) which image protocols it
/// speaks and its cell size, and read its answers until it has answered everything or
/// `timeout` has passed.
///
/// Written here rather than using ratatui-image's `Picker::from_query_stdio`: that one
/// reads the answers on a thread it leaves blocked in `read(stdin)` when the terminal
/// does not answer in time (tmux without an outer terminal, a slow SSH link), and that
/// thread then swallows keystrokes meant for the console. Here the reads happen on the
/// caller's thread with `poll`, one byte at a time, so nothing typed after the answers
/// is consumed and nothing keeps reading after the timeout.
pub fn query(
    input: std::os::fd::BorrowedFd<'_>,
    output: &mut impl std::io::Write,
    is_tmux: bool,
    timeout: Duration,
) -> std::io::Result<TermAnswer> {
    use ratatui_image::picker::cap_parser::{Parser, QueryStdioOptions, Response};
    use std::os::fd::AsRawFd;
    let options = QueryStdioOptions { timeout, ..Default::default() };
    // XTVERSION first (the name and version, for kitty's), then ratatui-image's queries,
    // which end with the status request whose answer closes the query.
    let xtversion = if is_tmux { "\x1bPtmux;\x1b\x1b[>0q\x1b\\" } else { "\x1b[>0q" };
    output.write_all(xtversion.as_bytes())?;
    output.write_all(Parser::query(is_tmux, options).as_bytes())?;
    output.flush()?;
    let deadline = std::time::Instant::now() + timeout;
    let mut parser = Parser::new();
    let mut answer = TermAnswer::default();
    let fd = input.as_raw_fd();
    let mut seq = SeqState::Text;
    // The DCS string being read (`ESC P ... ESC \`): XTVERSION's answer is `>|name(version)`.
    let mut dcs: Option<Vec<u8>> = None;
    loop {
        let left = deadline.saturating_duration_since(std::time::Instant::now());
        if left.is_zero() {
            return Ok(answer);
        }
        let mut pfd = libc::pollfd { fd, events: libc::POLLIN, revents: 0 };
        // SAFETY: one valid pollfd.
        let r = unsafe { libc::poll(&mut pfd, 1, left.as_millis().clamp(1, i32::MAX as u128) as i32) };
        if r < 0 {
            let e = std::io::Error::last_os_error();
            if e.kind() == std::io::ErrorKind::Interrupted {
                continue;
            }
            return Err(e);
        }
        if r == 0 {
            continue;
        }
        let mut byte = 0u8;
        // SAFETY: reads at most one byte into `byte`.
        let n = unsafe { libc::read(fd, (&mut byte as *mut u8).cast(), 1) };
        if n < 0 {
            let e = std::io::Error::last_os_error();
            if matches!(e.kind(), std::io::ErrorKind::Interrupted | std::io::ErrorKind::WouldBlock) {
                continue;
            }
            return Err(e);
        }
        if n == 0 {
            return Ok(answer); // end of input
        }
        let before = seq;
        seq = seq.next(byte);
        if before == SeqState::Text && seq == SeqState::Text {
            answer.typed.push(byte);
        }
        if before == SeqState::Esc && byte == b'P' {
            dcs = Some(Vec::new());
        } else if let Some(d) = dcs.as_mut() {
            match seq {
                SeqState::Str => d.push(byte),
                SeqState::Text => {
                    if let Some(v) = d.strip_prefix(b">|") {
                        answer.version = Some(String::from_utf8_lossy(v).into_owned());
                    }
                    dcs = None;
                }
                _ => {}
            }
        }
        for r in parser.push(char::from(byte)) {
            match r {
                Response::Kitty => answer.kitty = true,
                Response::Sixel => answer.sixel = true,
                Response::CellSize(Some(c)) => answer.cell = Some(c),
                Response::Status => {
                    answer.complete = true;
                    return Ok(answer);
                }
                _ => {}
            }
        }
    }
}

/// Where a byte stands in the terminal's input: plain text, or inside an escape
/// sequence (CSI `ESC [ ... final`, or a string `ESC ] / _ / P ... BEL or ESC \`).
#[derive(Clone, Copy, PartialEq, Eq, Debug)]
enum SeqState {
    Text,
    Esc,
    Csi,
    Str,
    StrEsc,
}

impl SeqState {
    fn next(self, b: u8) -> SeqState {
        use SeqState::*;
        match (self, b) {
            (Text, 0x1b) => Esc,
            (Text, _) => Text,
            (Esc, b'[') => Csi,
            (Esc, b']' | b'_' | b'P' | b'^') => Str,
            (Esc, _) => Text, // ESC + one byte (alt-key): over
            (Csi, 0x40..=0x7e) => Text,
            (Csi, _) => Csi,
            (Str, 0x07) => Text,
            (Str, 0x1b) => StrEsc,
            (Str, _) => Str,
            (StrEsc, b'\\') => Text,
            (StrEsc, _) => Str,
        }
    }
}

/// [`query`] on the process's terminal (stdin/stdout), which must be in raw mode with no
/// other reader of stdin running; a [`Picker`] for what it answered. An error when
/// stdin is not a terminal or the terminal did not answer. Keys typed meanwhile go to
/// `typed`.
/// The second value says why kitty's protocol was not used although the terminal
/// answered for it (a kitty too old for its placements), for the note.
pub fn query_stdio(timeout: Duration, typed: &mut Vec<u8>) -> Result<(Picker, Option<String>), String> {
    use std::io::IsTerminal;
    let stdin = std::io::stdin();
    if !stdin.is_terminal() || !std::io::stdout().is_terminal() {
        return Err("not a terminal".into());
    }
    // Also runs `tmux set -p allow-passthrough on` inside tmux, so the query (and later
    // the images) reach the outer terminal.
    let is_tmux = Picker::halfblocks().tmux_detected();
    let answer = {
        use std::os::fd::AsFd;
        let mut out = std::io::stdout().lock();
        query(stdin.as_fd(), &mut out, is_tmux, timeout).map_err(|e| format!("terminal query: {e}"))?
    };
    typed.extend_from_slice(&answer.typed);
    if !answer.complete && !answer.kitty && !answer.sixel && answer.cell.is_none() {
        let via = if is_tmux { " (inside tmux: is it attached, with allow-passthrough on?)" } else { "" };
        return Err(format!("the terminal did not answer within {} ms{via}", timeout.as_millis()));
    }
    let cell = answer.cell.or_else(cell_size_from_ioctl).unwrap_or((10, 20));
    #[allow(deprecated)] // the non-deprecated constructors query stdin themselves
    let mut picker = Picker::from_fontsize(cell.into());
    picker.set_protocol_type(answer.protocol());
    let why = answer.kitty_too_old().map(|v| {
        let (major, minor) = KITTY_PLACEHOLDERS_SINCE;
        format!("{v} is too old for kitty images, which need {major}.{minor}+")
    });
    Ok((picker, why))
}

/// Cell size in pixels from the terminal's window size (when it reports pixels).
fn cell_size_from_ioctl() -> Option<(u16, u16)> {
    let mut ws: libc::winsize = unsafe { std::mem::zeroed() };
    // SAFETY: TIOCGWINSZ fills a winsize.
    let r = unsafe { libc::ioctl(libc::STDOUT_FILENO, libc::TIOCGWINSZ, &mut ws) };
    (r == 0 && ws.ws_col > 0 && ws.ws_row > 0 && ws.ws_xpixel > 0 && ws.ws_ypixel > 0)
        .then(|| (ws.ws_xpixel / ws.ws_col, ws.ws_ypixel / ws.ws_row))
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
    crop: Option<Crop>,
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

    /// Ask for `path` (or its `crop`) drawn to fit `size` cells in `slot`; returns the
    /// ticket the result will carry.
    pub fn request(&mut self, slot: usize, path: &Path, size: Size, crop: Option<Crop>) -> u64 {
        let ticket = self.next_ticket;
        self.next_ticket += 1;
        if let Some(tx) = &self.tx {
            let _ = tx.send(Job { slot, ticket, path: path.to_path_buf(), size, crop });
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
            let result = load(&picker, &job.path, job.size, job.crop);
            if let Ok(mut d) = done.lock() {
                d.insert(job.slot, Loaded { ticket: job.ticket, result });
            }
            on_ready();
        }
    }
}

fn load(picker: &ImagePicker, path: &Path, size: Size, crop: Option<Crop>) -> Result<Rendered, String> {
    let img = image::ImageReader::open(path)
        .map_err(|e| format!("{}: {e}", path.display()))?
        .with_guessed_format()
        .map_err(|e| format!("{}: {e}", path.display()))?
        .decode()
        .map_err(|e| format!("{}: not a readable image: {e}", path.display()))?;
    let img = match crop {
        Some(c) => c.apply(img).map_err(|e| format!("{}: {e}", path.display()))?,
        None => img,
    };
    // A panic inside an encoder must not take the console down.
    std::panic::catch_unwind(std::panic::AssertUnwindSafe(|| picker.render(img, size)))
        .unwrap_or_else(|_| Err(format!("{}: the image encoder failed", path.display())))
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
    want: Option<(PathBuf, Size, Option<Crop>)>,
    ticket: u64,
    pub state: PaneState,
}

impl ImagePane {
    pub fn new(slot: usize) -> Self {
        ImagePane { slot, want: None, ticket: 0, state: PaneState::Empty }
    }

    /// Show `path` (or its `crop`) fitted to `size`; requests it when any changed.
    pub fn show(&mut self, loader: &mut ImageLoader, path: &Path, size: Size, crop: Option<Crop>) {
        if self.want.as_ref().is_some_and(|(p, s, c)| p == path && *s == size && *c == crop) {
            return;
        }
        self.want = Some((path.to_path_buf(), size, crop));
        self.ticket = loader.request(self.slot, path, size, crop);
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
                Paragraph::new(Line::styled(format!("image error: {e}"), Style::default().fg(Color::Red)))
                    .wrap(Wrap { trim: true })
                    .render(area, buf);
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

#[cfg(test)]
mod fit_tests {
    use super::*;

    #[test]
    fn images_grow_and_shrink_to_the_limiting_side() {
        // A 138 x 70 grid in 30 x 10 halfblock cells (300 x 200 px): width-limited.
        assert_eq!(fit_pixels((138, 70), (30, 10), (10, 20)), (300, 152));
        // In 80 x 10 cells (800 x 200 px): height-limited.
        assert_eq!(fit_pixels((138, 70), (80, 10), (10, 20)), (394, 200));
        // Square 64 px in a sixel terminal's 100 x 30 cells of 9 x 18 px: height-limited, grown.
        assert_eq!(fit_pixels((64, 64), (100, 30), (9, 18)), (540, 540));
        // Shrunk: 1024 x 512 into 10 x 10 cells of 10 x 20 px.
        assert_eq!(fit_pixels((1024, 512), (10, 10), (10, 20)), (100, 50));
        assert_eq!(fit_pixels((0, 5), (10, 10), (10, 20)), (0, 0));
        assert_eq!(fit_pixels((5, 5), (0, 10), (10, 20)), (0, 0));
        // Never zero on the short side.
        assert_eq!(fit_pixels((10_000, 1), (2, 2), (10, 20)), (20, 1));
    }

    #[test]
    fn the_fitted_image_takes_whole_cells_within_the_area() {
        for (img, cells, cell) in [((138, 70), (40, 10), (10, 20)), ((64, 64), (100, 30), (9, 18)), ((333, 17), (7, 3), (8, 16))] {
            let px = fit_pixels(img, cells, cell);
            let c = cells_for(px, cell);
            assert!(c.0 <= cells.0 && c.1 <= cells.1, "{img:?} in {cells:?}: {c:?}");
            assert!(c.0 == cells.0 || c.1 == cells.1, "one side fills its cells: {img:?} {c:?}");
        }
    }
}
