//! The live progress of a job run by hand: on a terminal, one line redrawn in place on
//! stderr (step/total, it/s, ETA, the main losses; through `indicatif`); in a pipe or a
//! log, a plain line every N seconds; or nothing. The run folder stays the record: this
//! only shows what `rundir::RunWriter` writes, as its [`Observer`].
//!
//! Chosen per process by `--progress auto|bar|plain|off` (or `CLIPGAN_PROGRESS`),
//! `--quiet`, and `--progress-every SECS` (or `CLIPGAN_PROGRESS_EVERY`). `auto` is `bar`
//! when stderr is a terminal, else `plain`: every 10 s for a job started by hand, every
//! 60 s for a worker the daemon started (its log is the console's Logs view; a line a
//! minute says it is alive without filling it).
use crate::rundir::{Observer, RunState, Status};
use indicatif::{ProgressBar, ProgressDrawTarget, ProgressStyle};
use std::io::IsTerminal;
use std::sync::{Mutex, OnceLock};
use std::time::{Duration, Instant};

/// How a job shows its progress.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Default, clap::ValueEnum)]
pub enum Mode {
    /// `bar` on a terminal, else `plain`.
    #[default]
    Auto,
    /// One line redrawn in place on stderr (a terminal only; elsewhere `plain`).
    Bar,
    /// A plain line on stderr every `--progress-every` seconds.
    Plain,
    /// Nothing (the run folder still records everything).
    Off,
}

/// The process's choice, set once by the CLI before the job starts.
#[derive(Clone, Copy, Debug, Default)]
pub struct Settings {
    pub mode: Mode,
    /// Seconds between plain lines (None: 10 by hand, 60 under the daemon).
    pub every: Option<f64>,
}

static SETTINGS: OnceLock<Settings> = OnceLock::new();
/// The bar being drawn, so that other output can pass it ([`println`]).
static BAR: Mutex<Option<ProgressBar>> = Mutex::new(None);

/// Set this process's progress settings (the first call wins; jobs run in tests
/// without a call get the defaults).
pub fn configure(s: Settings) {
    let _ = SETTINGS.set(s);
}

/// What `auto` and the defaults resolve to here.
#[derive(Clone, Copy, Debug, PartialEq)]
pub enum Resolved {
    Bar,
    Plain(Duration),
    Off,
}

/// Resolve the settings for this process: `stderr_tty` whether stderr is a terminal,
/// `under_daemon` whether the daemon started it (`CLIPGAN_SLOT` is set).
pub fn resolve(s: Settings, stderr_tty: bool, under_daemon: bool) -> Resolved {
    let every = s.every.filter(|e| e.is_finite() && *e >= 0.0).unwrap_or(if under_daemon { 60.0 } else { 10.0 });
    let plain = Resolved::Plain(Duration::from_secs_f64(every));
    match s.mode {
        Mode::Off => Resolved::Off,
        Mode::Plain => plain,
        Mode::Bar | Mode::Auto if stderr_tty => Resolved::Bar,
        Mode::Bar | Mode::Auto => plain,
    }
}

/// The observer for a job named `job` under this process's settings (None: `off`).
pub fn observer(job: &str) -> Option<Box<dyn Observer>> {
    let s = SETTINGS.get().copied().unwrap_or_default();
    let tty = std::io::stderr().is_terminal() && std::env::var("TERM").map(|t| t != "dumb").unwrap_or(true);
    let under_daemon = std::env::var_os("CLIPGAN_SLOT").is_some();
    let shown = match resolve(s, tty, under_daemon) {
        Resolved::Off => return None,
        Resolved::Bar => Shown::Bar(None),
        Resolved::Plain(every) => Shown::Plain { every, last: None },
    };
    Some(Box::new(Live { job: job.to_string(), shown, losses: Vec::new(), started: Instant::now() }))
}

/// Print a line on stdout without breaking the bar (it is lifted, the line printed,
/// the bar drawn again below it).
pub fn println(line: &str) {
    let bar = BAR.lock().unwrap_or_else(|p| p.into_inner()).clone();
    match bar {
        Some(b) => b.suspend(|| println!("{line}")),
        None => println!("{line}"),
    }
}

enum Shown {
    Bar(Option<ProgressBar>),
    Plain { every: Duration, last: Option<Instant> },
}

struct Live {
    job: String,
    shown: Shown,
    /// The newest value of each `loss/...` tag, in first-logged order.
    losses: Vec<(String, f64)>,
    started: Instant,
}

/// How many losses the line shows.
const MAX_LOSSES: usize = 4;

/// The main losses of `losses` (tag without `loss/`, value): the totals first, then the
/// others in logged order, at most [`MAX_LOSSES`].
pub fn main_losses(losses: &[(String, f64)]) -> Vec<(String, f64)> {
    let name = |t: &str| t.strip_prefix("loss/").unwrap_or(t).to_string();
    let totals = losses.iter().filter(|(t, _)| t.contains("total"));
    let rest = losses.iter().filter(|(t, _)| !t.contains("total"));
    totals.chain(rest).take(MAX_LOSSES).map(|(t, v)| (name(t), *v)).collect()
}

/// `1h02m`, `3m05s`, `42s`.
pub fn duration(secs: f64) -> String {
    if !secs.is_finite() || secs < 0.0 {
        return "?".into();
    }
    let s = secs.round() as u64;
    match s {
        0..60 => format!("{s}s"),
        60..3600 => format!("{}m{:02}s", s / 60, s % 60),
        _ => format!("{}h{:02}m", s / 3600, (s % 3600) / 60),
    }
}

/// A value in few characters: 4 significant digits, exponent form when tiny or huge.
fn num(v: f64) -> String {
    let a = v.abs();
    if v == 0.0 || (1e-3..1e5).contains(&a) {
        let digits = (3 - a.log10().floor().max(0.0) as i32).max(0) as usize;
        format!("{v:.digits$}")
    } else {
        format!("{v:.2e}")
    }
}

/// The part of the line after step/total: epoch, speed, ETA, losses, message.
pub fn details(status: &Status, losses: &[(String, f64)]) -> String {
    let mut parts = Vec::new();
    if let Some(e) = status.total_epochs {
        parts.push(format!("epoch {}/{e}", status.epoch));
    }
    if let Some(r) = status.steps_per_s {
        parts.push(if r >= 1.0 { format!("{r:.1} it/s") } else { format!("{:.1} s/it", 1.0 / r.max(1e-9)) });
    }
    if let Some(eta) = status.eta_s {
        parts.push(format!("ETA {}", duration(eta)));
    }
    let shown = main_losses(losses);
    if !shown.is_empty() {
        parts.push(shown.iter().map(|(t, v)| format!("{t} {}", num(*v))).collect::<Vec<_>>().join(" "));
    }
    if !status.message.is_empty() {
        parts.push(status.message.clone());
    }
    parts.join("  ")
}

/// The plain line: `train step 120/800 (15%)  epoch 2/10  3.1 it/s  ETA 3m39s  g_total 4.211 ...`.
pub fn plain_line(job: &str, status: &Status, losses: &[(String, f64)]) -> String {
    let step = match status.total_steps {
        Some(t) if t > 0 => format!("step {}/{t} ({}%)", status.step, status.step * 100 / t),
        _ => format!("step {}", status.step),
    };
    let d = details(status, losses);
    if d.is_empty() {
        format!("{job} {step}")
    } else {
        format!("{job} {step}  {d}")
    }
}

/// The last line: `train finished: step 800/800 in 4m12s; done`.
pub fn end_line(job: &str, state: &str, status: &Status, secs: f64) -> String {
    let step = match status.total_steps {
        Some(t) => format!("step {}/{t}", status.step),
        None => format!("step {}", status.step),
    };
    let mut line = format!("{job} {state}: {step} in {}", duration(secs));
    if !status.message.is_empty() {
        line.push_str("; ");
        line.push_str(&status.message);
    }
    line
}

impl Live {
    fn bar(&mut self, status: &Status) -> Option<&ProgressBar> {
        let Shown::Bar(bar) = &mut self.shown else { return None };
        if bar.is_none() {
            let b = ProgressBar::with_draw_target(status.total_steps, ProgressDrawTarget::stderr_with_hz(10));
            let style = ProgressStyle::with_template("{prefix:.bold} {bar:20.cyan/blue} {pos}/{len} {elapsed} {wide_msg}")
                .unwrap_or_else(|_| ProgressStyle::default_bar())
                .progress_chars("=> ");
            b.set_style(style);
            b.set_prefix(self.job.clone());
            // Redraw every second, so the clock moves during validation or sampling.
            b.enable_steady_tick(Duration::from_secs(1));
            *BAR.lock().unwrap_or_else(|p| p.into_inner()) = Some(b.clone());
            *bar = Some(b);
        }
        bar.as_ref()
    }
}

impl Observer for Live {
    fn progress(&mut self, status: &Status) {
        let msg = details(status, &self.losses);
        if let Some(b) = self.bar(status) {
            if b.length() != status.total_steps {
                match status.total_steps {
                    Some(t) => b.set_length(t),
                    None => b.unset_length(),
                }
            }
            b.set_position(status.step);
            b.set_message(msg);
            return;
        }
        if let Shown::Plain { every, last } = &mut self.shown {
            if last.is_none_or(|t| t.elapsed() >= *every) {
                *last = Some(Instant::now());
                eprintln!("{}", plain_line(&self.job, status, &self.losses));
            }
        }
    }

    fn scalars(&mut self, _step: u64, values: &[(&str, f64)]) {
        for (tag, v) in values {
            if !tag.starts_with("loss/") {
                continue;
            }
            match self.losses.iter_mut().find(|(t, _)| t == tag) {
                Some(slot) => slot.1 = *v,
                None => self.losses.push((tag.to_string(), *v)),
            }
        }
    }

    fn finished(&mut self, status: &Status) {
        if let Shown::Bar(Some(b)) = &self.shown {
            b.finish_and_clear();
            *BAR.lock().unwrap_or_else(|p| p.into_inner()) = None;
        }
        let state = match status.state {
            RunState::Finished => "finished",
            RunState::Stopped => "stopped",
            RunState::Diverged => "diverged",
            RunState::Failed => "failed",
            _ => "ended",
        };
        eprintln!("{}", end_line(&self.job, state, status, self.started.elapsed().as_secs_f64()));
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn status(step: u64, total: Option<u64>) -> Status {
        Status { step, total_steps: total, ..Status::new(RunState::Running) }
    }

    #[test]
    fn auto_is_the_bar_on_a_terminal_and_plain_elsewhere() {
        let auto = Settings::default();
        assert_eq!(resolve(auto, true, false), Resolved::Bar);
        assert_eq!(resolve(auto, false, false), Resolved::Plain(Duration::from_secs(10)));
        assert_eq!(resolve(auto, false, true), Resolved::Plain(Duration::from_secs(60)));
        let bar = Settings { mode: Mode::Bar, every: Some(2.0) };
        assert_eq!(resolve(bar, false, false), Resolved::Plain(Duration::from_secs(2)));
        assert_eq!(resolve(Settings { mode: Mode::Off, every: None }, true, false), Resolved::Off);
        assert_eq!(resolve(Settings { mode: Mode::Plain, every: Some(f64::NAN) }, true, true), Resolved::Plain(Duration::from_secs(60)));
    }

    #[test]
    fn the_main_losses_are_the_totals_then_the_first_logged() {
        let l: Vec<(String, f64)> = ["loss/d64", "loss/d128", "loss/g64", "loss/kl", "loss/g_total"]
            .iter()
            .enumerate()
            .map(|(i, t)| (t.to_string(), i as f64))
            .collect();
        let names: Vec<String> = main_losses(&l).into_iter().map(|(t, _)| t).collect();
        assert_eq!(names, ["g_total", "d64", "d128", "g64"]);
    }

    #[test]
    fn the_plain_line_says_step_speed_eta_and_losses() {
        let mut s = status(120, Some(800));
        s.epoch = 2;
        s.total_epochs = Some(10);
        s.steps_per_s = Some(3.125);
        s.eta_s = Some(219.0);
        let l = vec![("loss/total".to_string(), 4.2109), ("loss/words".to_string(), 0.000012)];
        assert_eq!(plain_line("train", &s, &l), "train step 120/800 (15%)  epoch 2/10  3.1 it/s  ETA 3m39s  total 4.211 words 1.20e-5");
        s.steps_per_s = Some(0.25);
        s.eta_s = None;
        s.total_epochs = None;
        s.message = "sampling".into();
        assert_eq!(plain_line("eval", &s, &[]), "eval step 120/800 (15%)  4.0 s/it  sampling");
        assert_eq!(plain_line("eval", &status(3, None), &[]), "eval step 3");
    }

    #[test]
    fn the_last_line_says_how_it_ended() {
        let mut s = status(30, Some(30));
        s.message = "done".into();
        assert_eq!(end_line("fake-run", "finished", &s, 3.2), "fake-run finished: step 30/30 in 3s; done");
        assert_eq!(end_line("eval", "stopped", &status(2, None), 61.0), "eval stopped: step 2 in 1m01s");
    }

    #[test]
    fn durations_are_short() {
        assert_eq!(duration(42.4), "42s");
        assert_eq!(duration(185.0), "3m05s");
        assert_eq!(duration(3720.0), "1h02m");
        assert_eq!(duration(f64::NAN), "?");
        assert_eq!(num(1234.5), "1234");
        assert_eq!(num(-0.5), "-0.500");
        assert_eq!(num(2e6), "2.00e6");
    }
}
