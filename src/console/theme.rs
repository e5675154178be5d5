//! Colours: defaults, and the user's `theme.yml` (names like `red`, `darkgray`, indexed
//! `42`, or `#rrggbb`) over them.
use anyhow::{anyhow, bail, Context, Result};
use ratatui::style::Color;
use std::collections::BTreeMap;
use std::path::Path;
use std::str::FromStr;

pub const THEME_FILE: &str = "theme.yml";

#[derive(Clone, Debug, PartialEq)]
pub struct Theme {
    pub text: Color,
    pub dim: Color,
    pub accent: Color,
    pub selected_bg: Color,
    pub ok: Color,
    pub warn: Color,
    pub error: Color,
    pub running: Color,
    pub border: Color,
    /// The colour of the raw curve drawn faintly behind a smoothed one.
    pub raw: Color,
    /// Per-run colours, picked by the task id (stable while the console runs and between runs).
    pub runs: Vec<Color>,
}

impl Default for Theme {
    fn default() -> Theme {
        Theme {
            text: Color::Reset,
            dim: Color::DarkGray,
            accent: Color::Cyan,
            selected_bg: Color::Indexed(237),
            ok: Color::Green,
            warn: Color::Yellow,
            error: Color::Red,
            running: Color::LightBlue,
            border: Color::Gray,
            raw: Color::DarkGray,
            runs: vec![
                Color::Rgb(0x1f, 0x77, 0xb4),
                Color::Rgb(0xff, 0x7f, 0x0e),
                Color::Rgb(0x2c, 0xa0, 0x2c),
                Color::Rgb(0xd6, 0x27, 0x28),
                Color::Rgb(0x94, 0x67, 0xbd),
                Color::Rgb(0x8c, 0x56, 0x4b),
                Color::Rgb(0xe3, 0x77, 0xc2),
                Color::Rgb(0x17, 0xbe, 0xcf),
            ],
        }
    }
}

const FIELDS: &[&str] = &["text", "dim", "accent", "selected_bg", "ok", "warn", "error", "running", "border", "raw"];

fn color_name(c: Color) -> String {
    match c {
        Color::Rgb(r, g, b) => format!("'#{r:02x}{g:02x}{b:02x}'"),
        Color::Indexed(i) => i.to_string(),
        other => other.to_string().to_lowercase(),
    }
}

fn parse_color(s: &str) -> Result<Color> {
    Color::from_str(s.trim()).map_err(|_| anyhow!("not a colour: {s:?} (a name like red/darkgray, an index 0-255, or #rrggbb)"))
}

impl Theme {
    pub fn run_color(&self, id: u64) -> Color {
        self.runs[(id as usize).wrapping_sub(1) % self.runs.len()]
    }

    fn field(&mut self, name: &str) -> Option<&mut Color> {
        Some(match name {
            "text" => &mut self.text,
            "dim" => &mut self.dim,
            "accent" => &mut self.accent,
            "selected_bg" => &mut self.selected_bg,
            "ok" => &mut self.ok,
            "warn" => &mut self.warn,
            "error" => &mut self.error,
            "running" => &mut self.running,
            "border" => &mut self.border,
            "raw" => &mut self.raw,
            _ => return None,
        })
    }

    pub fn defaults_yaml() -> String {
        let mut t = Theme::default();
        let mut out = String::from("# clipgan console colours: names (red, darkgray, ...), 0-255, or '#rrggbb'.\n");
        for f in FIELDS {
            out.push_str(&format!("{f}: {}\n", color_name(*t.field(f).expect("known field"))));
        }
        out.push_str("# per-run curve colours, chosen by task id\nruns:\n");
        for c in &t.runs {
            out.push_str(&format!("  - {}\n", color_name(*c)));
        }
        out
    }

    pub fn apply_yaml(&mut self, text: &str, file: &Path) -> Result<()> {
        let v: BTreeMap<String, serde_yaml_ng::Value> = serde_yaml_ng::from_str(text).map_err(|e| match e.location() {
            Some(l) => anyhow!("{}:{}:{}: {e}", file.display(), l.line(), l.column()),
            None => anyhow!("{}: {e}", file.display()),
        })?;
        for (k, val) in v {
            let as_str = |val: &serde_yaml_ng::Value| -> Result<String> {
                match val {
                    serde_yaml_ng::Value::String(s) => Ok(s.clone()),
                    serde_yaml_ng::Value::Number(n) => Ok(n.to_string()),
                    _ => bail!("{}: {k}: expected a colour", file.display()),
                }
            };
            if k == "runs" {
                let serde_yaml_ng::Value::Sequence(items) = &val else { bail!("{}: runs: expected a list of colours", file.display()) };
                let mut runs = Vec::new();
                for it in items {
                    runs.push(parse_color(&as_str(it)?).with_context(|| format!("{}: runs", file.display()))?);
                }
                if runs.is_empty() {
                    bail!("{}: runs: give at least one colour", file.display());
                }
                self.runs = runs;
            } else {
                let c = parse_color(&as_str(&val)?).with_context(|| format!("{}: {k}", file.display()))?;
                match self.field(&k) {
                    Some(f) => *f = c,
                    None => bail!("{}: unknown theme field {k:?} (one of {}, runs)", file.display(), FIELDS.join(", ")),
                }
            }
        }
        Ok(())
    }

    pub fn load(dir: &Path) -> Result<Theme> {
        let mut t = Theme::default();
        let path = dir.join(THEME_FILE);
        match std::fs::read_to_string(&path) {
            Ok(text) => t.apply_yaml(&text, &path)?,
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => {}
            Err(e) => return Err(e).with_context(|| format!("cannot read {}", path.display())),
        }
        Ok(t)
    }
}
