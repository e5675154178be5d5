//! `clipgan import tensorboard DIR [--into RUNS]`: TensorBoard runs converted to run
//! folders (run.json, metrics.jsonl with one value per step kept as read, status.json
//! `finished`), the event files left where they are. The console and `clipgan plot`
//! also read TensorBoard folders directly (`--logdir`); importing makes them ordinary
//! runs of the home (baseline, compare and export without `--logdir`).
use crate::rundir::{self, JsonlWriter, RunDir, RunSource, RunState, Status};
use anyhow::{bail, Context, Result};
use clap::{Args, Subcommand};
use std::path::PathBuf;
use std::process::ExitCode;

#[derive(Subcommand, Debug)]
pub enum ImportCmd {
    /// Convert the TensorBoard runs in DIR (folders of events.out.tfevents.* files, nested
    /// ones too) to run folders; the originals stay as they are.
    Tensorboard(TensorboardArgs),
}

#[derive(Args, Debug)]
pub struct TensorboardArgs {
    dir: PathBuf,
    /// Where the run folders go (default: the project's runs/).
    #[arg(long)]
    into: Option<PathBuf>,
}

pub fn run(c: ImportCmd) -> Result<ExitCode> {
    let ImportCmd::Tensorboard(a) = c;
    if !a.dir.is_dir() {
        bail!("{}: not a folder", a.dir.display());
    }
    let into = a.into.unwrap_or_else(crate::home::runs_dir);
    let runs: Vec<PathBuf> = rundir::find_runs(&a.dir).into_iter().filter(|(_, s)| *s == RunSource::TensorBoard).map(|(p, _)| p).collect();
    if runs.is_empty() {
        bail!("{}: no TensorBoard runs (folders holding events.out.tfevents.* files)", a.dir.display());
    }
    for src in runs {
        let (events, skipped) =
            rundir::tfevents::read_event_dir(&src).with_context(|| format!("reading the event files of {}", src.display()))?;
        let rel = src.strip_prefix(&a.dir).ok().filter(|r| !r.as_os_str().is_empty()).unwrap_or(&src);
        let name: String = rel.display().to_string().chars().map(|c| if c == '/' { '_' } else { c }).take(rundir::MAX_NAME_CHARS).collect();
        let name = if name.is_empty() { "tensorboard".to_string() } else { name };
        let dir = RunDir::create(&into, &name, "tensorboard", None)?;
        let metrics = JsonlWriter::open(&dir.file(rundir::METRICS_FILE))?;
        for e in &events {
            metrics.append(e)?;
        }
        metrics.flush()?;
        let (first, last) =
            (events.iter().map(|e| e.wall).fold(f64::INFINITY, f64::min), events.iter().map(|e| e.wall).fold(f64::NEG_INFINITY, f64::max));
        let mut status = Status::new(RunState::Finished);
        status.started = if first.is_finite() { first } else { 0.0 };
        status.updated = if last.is_finite() { last } else { 0.0 };
        status.step = events.iter().map(|e| e.step).max().unwrap_or(0);
        status.message = format!("imported from {}", src.display());
        dir.write_status(&status)?;
        println!(
            "{} -> {} ({} scalars; skipped: {} corrupt, {} images, {} other values)",
            src.display(),
            dir.path().display(),
            events.len(),
            skipped.corrupt,
            skipped.images,
            skipped.other
        );
    }
    Ok(ExitCode::SUCCESS)
}
