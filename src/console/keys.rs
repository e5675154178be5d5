//! Key bindings: actions per context (`global` and one per view), the defaults, and the
//! user's `keys.yml` that overrides them (`clipgan console --write-defaults` writes it).
//!
//! The file maps context -> key -> action, e.g.
//! ```yaml
//! runs:
//!   x: kill
//!   ctrl-k: none   # unbind
//! ```
//! Keys: a character (`q`, `G`, `?`), `ctrl-X`, `alt-X`, or one of `enter`, `esc`, `tab`,
//! `backtab`, `space`, `up`, `down`, `left`, `right`, `pgup`, `pgdn`, `home`, `end`,
//! `backspace`, `delete`, `f1`..`f12`.
use anyhow::{anyhow, bail, Context, Result};
use ratatui::crossterm::event::{KeyCode, KeyEvent, KeyModifiers};
use serde::{Deserialize, Serialize};
use std::collections::BTreeMap;
use std::path::{Path, PathBuf};

#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Action {
    None,
    Quit,
    Help,
    ViewRuns,
    ViewConfigs,
    ViewCurves,
    ViewLogs,
    ViewSamples,
    NextView,
    PrevView,
    Up,
    Down,
    PageUp,
    PageDown,
    Top,
    Bottom,
    Back,
    // runs
    Kill,
    Pause,
    Resume,
    Restart,
    ResumeRun,
    Remove,
    FollowLogs,
    Sort,
    Filter,
    Mark,
    ShowCurves,
    Baseline,
    ConfigDiff,
    ToggleSweep,
    SweepCurves,
    // logs
    Search,
    NextMatch,
    PrevMatch,
    Follow,
    ToggleStderr,
    // configs
    Queue,
    QueuePipeline,
    QueueFake,
    QueueSweep,
    Rescan,
    // curves
    Smoothing,
    SmoothMore,
    SmoothLess,
    LogY,
    XAxis,
    ZoomIn,
    ZoomOut,
    PanLeft,
    PanRight,
    ZoomReset,
    Cursor,
    CursorLeft,
    CursorRight,
    GroupMean,
    ColourKey,
    SweepTable,
    TableSort,
    TableReverse,
    // samples
    StepPrev,
    StepNext,
    OpenImage,
}

impl Action {
    /// What the help overlay says about it.
    pub fn describe(self) -> &'static str {
        use Action::*;
        match self {
            None => "(unbound)",
            Quit => "quit the console (the daemon and its jobs keep running)",
            Help => "this help",
            ViewRuns => "runs view",
            ViewConfigs => "configs view",
            ViewCurves => "curves view",
            ViewLogs => "logs view",
            ViewSamples => "samples view",
            NextView => "next view",
            PrevView => "previous view",
            Up => "move up",
            Down => "move down",
            PageUp => "page up",
            PageDown => "page down",
            Top => "first",
            Bottom => "last",
            Back => "close popup / clear",
            Kill => "kill the task (graceful: checkpoint, then exit)",
            Pause => "pause a running task / hold a queued one",
            Resume => "resume a paused or held task",
            Restart => "restart from scratch (new run folder)",
            ResumeRun => "resume an ended run from its checkpoint",
            Remove => "remove an ended task from the list",
            FollowLogs => "follow the task's logs",
            Sort => "cycle the sort column",
            Filter => "filter (substring)",
            Mark => "mark / unmark (several runs or configs)",
            ShowCurves => "curves of the marked (else selected) runs",
            Baseline => "pin / unpin the selected run as the baseline (always shown)",
            ConfigDiff => "diff the configs of the two marked runs",
            ToggleSweep => "collapse / expand the selected run's sweep",
            SweepCurves => "curves of the selected run's whole sweep as one experiment (enter on a collapsed sweep too)",
            Search => "search",
            NextMatch => "next match",
            PrevMatch => "previous match",
            Follow => "follow the end on/off",
            ToggleStderr => "stdout / stderr",
            Queue => "queue the selected config (group, dependencies)",
            QueuePipeline => "queue finetune -> train -> eval from the marked configs",
            QueueFake => "queue a fake-run (no training; to try the console)",
            QueueSweep => "queue a sweep of the selected config (grid, seeds, group, pruning)",
            Rescan => "rescan cfg/ now",
            Smoothing => "smoothing: off / EMA / moving average",
            SmoothMore => "more smoothing",
            SmoothLess => "less smoothing",
            LogY => "log-y on the focused chart",
            XAxis => "x axis: step / wall time / relative time",
            ZoomIn => "zoom in (x)",
            ZoomOut => "zoom out (x)",
            PanLeft => "pan left",
            PanRight => "pan right",
            ZoomReset => "reset zoom",
            Cursor => "cursor on/off (exact values)",
            CursorLeft => "cursor left",
            CursorRight => "cursor right",
            GroupMean => "group mean with min-max band for runs of one config (of a sweep: seeds of one combination)",
            ColourKey => "sweep: colour by the next varied key (one colour per value)",
            SweepTable => "sweep: the table of its combinations (final / best per tag) on/off",
            TableSort => "sweep table: next sort column",
            TableReverse => "sweep table: reverse the sort",
            StepPrev => "previous sample step",
            StepNext => "next sample step (past the last: follow new samples); with an image open, the next one",
            OpenImage => "open one image of the grid large with its caption (left/right: through the grid, esc: back)",
        }
    }
}

pub const CONTEXTS: &[&str] = &["global", "runs", "configs", "curves", "logs", "samples"];

/// The default bindings: (context, key, action).
pub const DEFAULTS: &[(&str, &str, Action)] = &[
    ("global", "q", Action::Quit),
    ("global", "ctrl-c", Action::Quit),
    ("global", "?", Action::Help),
    ("global", "1", Action::ViewRuns),
    ("global", "2", Action::ViewConfigs),
    ("global", "3", Action::ViewCurves),
    ("global", "4", Action::ViewLogs),
    ("global", "5", Action::ViewSamples),
    ("global", "tab", Action::NextView),
    ("global", "backtab", Action::PrevView),
    ("global", "up", Action::Up),
    ("global", "k", Action::Up),
    ("global", "down", Action::Down),
    ("global", "j", Action::Down),
    ("global", "pgup", Action::PageUp),
    ("global", "pgdn", Action::PageDown),
    ("global", "home", Action::Top),
    ("global", "g", Action::Top),
    ("global", "end", Action::Bottom),
    ("global", "G", Action::Bottom),
    ("global", "esc", Action::Back),
    ("runs", "x", Action::Kill),
    ("runs", "p", Action::Pause),
    ("runs", "u", Action::Resume),
    ("runs", "R", Action::Restart),
    ("runs", "c", Action::ResumeRun),
    ("runs", "d", Action::Remove),
    ("runs", "l", Action::FollowLogs),
    ("runs", "s", Action::Sort),
    ("runs", "/", Action::Filter),
    ("runs", "space", Action::Mark),
    ("runs", "enter", Action::ShowCurves),
    ("runs", "b", Action::Baseline),
    ("runs", "D", Action::ConfigDiff),
    ("runs", "z", Action::ToggleSweep),
    ("runs", "S", Action::SweepCurves),
    ("logs", "/", Action::Search),
    ("logs", "n", Action::NextMatch),
    ("logs", "N", Action::PrevMatch),
    ("logs", "f", Action::Follow),
    ("logs", "e", Action::ToggleStderr),
    ("configs", "enter", Action::Queue),
    ("configs", "P", Action::QueuePipeline),
    ("configs", "space", Action::Mark),
    ("configs", "r", Action::Rescan),
    ("configs", "F", Action::QueueFake),
    ("configs", "S", Action::QueueSweep),
    ("curves", "s", Action::Smoothing),
    ("curves", "+", Action::SmoothMore),
    ("curves", "-", Action::SmoothLess),
    ("curves", "y", Action::LogY),
    ("curves", "x", Action::XAxis),
    ("curves", "z", Action::ZoomIn),
    ("curves", "Z", Action::ZoomOut),
    ("curves", "h", Action::PanLeft),
    ("curves", "l", Action::PanRight),
    ("curves", "0", Action::ZoomReset),
    ("curves", "c", Action::Cursor),
    ("curves", "left", Action::CursorLeft),
    ("curves", "right", Action::CursorRight),
    ("curves", "/", Action::Filter),
    ("curves", "m", Action::GroupMean),
    ("curves", "v", Action::ColourKey),
    ("curves", "t", Action::SweepTable),
    ("curves", "o", Action::TableSort),
    ("curves", "O", Action::TableReverse),
    ("samples", "left", Action::StepPrev),
    ("samples", "h", Action::StepPrev),
    ("samples", "right", Action::StepNext),
    ("samples", "l", Action::StepNext),
    ("samples", "enter", Action::OpenImage),
];

/// A normalised key (`ctrl-c`, `G`, `enter`).
#[derive(Clone, Debug, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub struct Key(pub String);

impl Key {
    pub fn parse(s: &str) -> Result<Key> {
        let s = s.trim();
        let (mods, base) = match s.rsplit_once('-') {
            Some((m, b)) if !b.is_empty() && !m.is_empty() => (m, b),
            _ => ("", s),
        };
        let mut prefix = String::new();
        for m in mods.split('-').filter(|m| !m.is_empty()) {
            match m.to_ascii_lowercase().as_str() {
                "ctrl" | "c" => prefix.push_str("ctrl-"),
                "alt" | "a" | "m" => prefix.push_str("alt-"),
                other => bail!("unknown modifier {other:?} in key {s:?} (ctrl, alt)"),
            }
        }
        let named = [
            "enter",
            "esc",
            "tab",
            "backtab",
            "space",
            "up",
            "down",
            "left",
            "right",
            "pgup",
            "pgdn",
            "home",
            "end",
            "backspace",
            "delete",
        ];
        let lower = base.to_ascii_lowercase();
        let base = if base.chars().count() == 1 {
            if prefix.is_empty() {
                base.to_string()
            } else {
                lower
            }
        } else if named.contains(&lower.as_str())
            || (lower.starts_with('f') && lower[1..].parse::<u8>().is_ok_and(|n| (1..=12).contains(&n)))
        {
            lower
        } else {
            bail!("unknown key {s:?}");
        };
        Ok(Key(format!("{prefix}{base}")))
    }

    pub fn from_event(e: &KeyEvent) -> Option<Key> {
        let mut prefix = String::new();
        if e.modifiers.contains(KeyModifiers::CONTROL) {
            prefix.push_str("ctrl-");
        }
        if e.modifiers.contains(KeyModifiers::ALT) {
            prefix.push_str("alt-");
        }
        let base = match e.code {
            KeyCode::Char(' ') => "space".to_string(),
            KeyCode::Char(c) if prefix.is_empty() => c.to_string(),
            KeyCode::Char(c) => c.to_ascii_lowercase().to_string(),
            KeyCode::Enter => "enter".into(),
            KeyCode::Esc => "esc".into(),
            KeyCode::Tab => "tab".into(),
            KeyCode::BackTab => "backtab".into(),
            KeyCode::Up => "up".into(),
            KeyCode::Down => "down".into(),
            KeyCode::Left => "left".into(),
            KeyCode::Right => "right".into(),
            KeyCode::PageUp => "pgup".into(),
            KeyCode::PageDown => "pgdn".into(),
            KeyCode::Home => "home".into(),
            KeyCode::End => "end".into(),
            KeyCode::Backspace => "backspace".into(),
            KeyCode::Delete => "delete".into(),
            KeyCode::F(n) => format!("f{n}"),
            _ => return None,
        };
        Some(Key(format!("{prefix}{base}")))
    }
}

/// Bindings per context.
#[derive(Clone, Debug)]
pub struct Keymap {
    map: BTreeMap<(String, Key), Action>,
}

impl Default for Keymap {
    fn default() -> Keymap {
        let mut map = BTreeMap::new();
        for (ctx, key, action) in DEFAULTS {
            map.insert((ctx.to_string(), Key::parse(key).expect("default keys parse")), *action);
        }
        Keymap { map }
    }
}

type KeysFile = BTreeMap<String, BTreeMap<String, Action>>;

impl Keymap {
    /// The action of a key in a view's context, else in the global one.
    pub fn lookup(&self, ctx: &str, e: &KeyEvent) -> Option<Action> {
        let key = Key::from_event(e)?;
        let found = self.map.get(&(ctx.to_string(), key.clone())).or_else(|| self.map.get(&("global".to_string(), key)));
        found.copied().filter(|a| *a != Action::None)
    }

    /// Keys bound in a context (the view's, then global ones not shadowed), sorted by action.
    pub fn bindings(&self, ctx: &str) -> Vec<(Action, Vec<String>)> {
        let mut by_action: BTreeMap<Action, Vec<String>> = BTreeMap::new();
        for ((c, k), a) in &self.map {
            if *a == Action::None {
                continue;
            }
            let shadowed = c == "global" && self.map.contains_key(&(ctx.to_string(), k.clone()));
            if c == ctx || (c == "global" && !shadowed) {
                by_action.entry(*a).or_default().push(k.0.clone());
            }
        }
        by_action.into_iter().collect()
    }

    /// The first key bound to an action in a context (for hints).
    pub fn key_for(&self, ctx: &str, action: Action) -> Option<String> {
        self.bindings(ctx).into_iter().find(|(a, _)| *a == action).and_then(|(_, k)| k.into_iter().next())
    }

    /// Apply a user file's text over the defaults.
    pub fn apply_yaml(&mut self, text: &str, file: &Path) -> Result<()> {
        let parsed: KeysFile = serde_yaml_ng::from_str(text).map_err(|e| match e.location() {
            Some(l) => anyhow!("{}:{}:{}: {e}", file.display(), l.line(), l.column()),
            None => anyhow!("{}: {e}", file.display()),
        })?;
        for (ctx, keys) in parsed {
            if !CONTEXTS.contains(&ctx.as_str()) {
                bail!("{}: unknown context {ctx:?} (one of {})", file.display(), CONTEXTS.join(", "));
            }
            for (k, a) in keys {
                let key = Key::parse(&k).with_context(|| format!("{}: in {ctx}", file.display()))?;
                self.map.insert((ctx.clone(), key), a);
            }
        }
        Ok(())
    }

    /// The defaults as a `keys.yml` text.
    pub fn defaults_yaml() -> String {
        let mut out = String::from("# clipgan console key bindings: context -> key -> action (`none` unbinds).\n");
        out.push_str("# Keys of a view's context win over the global ones.\n");
        for ctx in CONTEXTS {
            out.push_str(&format!("{ctx}:\n"));
            for (c, k, a) in DEFAULTS.iter().filter(|(c, _, _)| c == ctx) {
                let _ = c;
                let action = serde_yaml_ng::to_string(a).unwrap_or_default();
                out.push_str(&format!("  {}: {}  # {}\n", yaml_key(k), action.trim(), a.describe()));
            }
        }
        out
    }

    /// Defaults overridden by `dir/keys.yml` when it exists.
    pub fn load(dir: &Path) -> Result<Keymap> {
        let mut km = Keymap::default();
        let path = dir.join(KEYS_FILE);
        match std::fs::read_to_string(&path) {
            Ok(text) => km.apply_yaml(&text, &path)?,
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => {}
            Err(e) => return Err(e).with_context(|| format!("cannot read {}", path.display())),
        }
        Ok(km)
    }
}

fn yaml_key(k: &str) -> String {
    if k.chars().all(|c| c.is_ascii_alphanumeric() || c == '-') {
        k.to_string()
    } else {
        format!("{k:?}")
    }
}

pub const KEYS_FILE: &str = "keys.yml";

/// The folder of the console's user files: `CLIPGAN_CONFIG_DIR`, else
/// `$XDG_CONFIG_HOME/clipgan`, else `~/.config/clipgan`.
pub fn user_dir() -> PathBuf {
    if let Some(d) = std::env::var_os("CLIPGAN_CONFIG_DIR").filter(|d| !d.is_empty()) {
        return PathBuf::from(d);
    }
    if let Some(d) = std::env::var_os("XDG_CONFIG_HOME").filter(|d| !d.is_empty()) {
        return PathBuf::from(d).join("clipgan");
    }
    let home = std::env::var_os("HOME").map(PathBuf::from).unwrap_or_else(|| PathBuf::from("."));
    home.join(".config").join("clipgan")
}
