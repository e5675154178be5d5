//! The jobs: the worker processes that take a config and write a run folder
//! (docs/architecture.md). `pretrain` (CLIP finetuning), `train` (DM-GAN), `eval`
//! (generate and score), `fake_run` (a worker that trains nothing, for the supervisor's
//! tests and the console), `progress` (the training loops' bookkeeping). They are made of
//! the reusable pieces in `train`, `eval`, `models` and `data`.
//!
//! This file holds what every job shares: where its run folder is, the stop request,
//! how it records its end.
//!
//! Contract with the daemon (docs/architecture.md): the daemon makes the run folder and
//! passes it as `CLIPGAN_RUN_DIR`; a job started by hand makes a new one under
//! `<home>/runs` (or uses `--run-dir`). SIGTERM (and SIGINT) ask the job to save a
//! resumable checkpoint and exit with state `stopped`; a second signal is not special
//! (the daemon follows up with SIGKILL after its timeout).
use crate::rundir::{exit, RunDir, RunState, RunWriter, MANIFEST_FILE};
use anyhow::{Context, Result};
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;

pub mod eval;
pub mod fake_run;
pub mod pretrain;
pub mod progress;
pub mod train;

/// A stop request raised by SIGTERM/SIGINT (or by code, in tests).
#[derive(Clone, Default)]
pub struct StopFlag(Arc<AtomicBool>);

impl StopFlag {
    /// A flag that SIGTERM and SIGINT raise.
    pub fn from_signals() -> Result<StopFlag> {
        let flag = StopFlag::default();
        for sig in [signal_hook::consts::SIGTERM, signal_hook::consts::SIGINT] {
            signal_hook::flag::register(sig, flag.0.clone()).context("cannot install the SIGTERM handler")?;
        }
        Ok(flag)
    }

    pub fn is_raised(&self) -> bool {
        self.0.load(Ordering::Relaxed)
    }

    pub fn raise(&self) {
        self.0.store(true, Ordering::Relaxed)
    }
}

/// The run folder a job writes to: `explicit` (`--run-dir`), else `CLIPGAN_RUN_DIR`
/// (set by the daemon), else a new folder under `<home>/runs`. An existing folder
/// holding a run is reused (resume); an existing empty one is initialised.
pub fn open_run_dir(explicit: Option<&Path>, name: &str, job: &str, config_source: Option<&Path>) -> Result<RunDir> {
    let chosen: Option<PathBuf> = explicit.map(Path::to_path_buf).or_else(|| std::env::var_os("CLIPGAN_RUN_DIR").map(PathBuf::from));
    match chosen {
        Some(p) if p.join(MANIFEST_FILE).exists() => RunDir::open(&p),
        Some(p) => RunDir::create_at(&p, name, job, config_source),
        None => RunDir::create(&crate::home::runs_dir(), name, job, config_source),
    }
}

/// A started job: its run folder writer and its stop flag.
pub struct Worker {
    pub run: RunWriter,
    pub stop: StopFlag,
}

impl Worker {
    /// Record how the job ended in status.json and pass the result on: the outcome's
    /// state with its message, or `failed` with the error's first line.
    pub fn conclude(self, result: Result<(Outcome, String)>) -> Result<Outcome> {
        match result {
            Ok((outcome, message)) => {
                let state = match outcome {
                    Outcome::Finished => RunState::Finished,
                    Outcome::Stopped => RunState::Stopped,
                    Outcome::Diverged => RunState::Diverged,
                };
                self.run.finish(state, message)?;
                Ok(outcome)
            }
            Err(e) => {
                let msg = format!("{e:#}");
                let _ = self.run.finish(RunState::Failed, msg.lines().next().unwrap_or_default().to_string());
                Err(e)
            }
        }
    }

    /// Open (or make) the run folder, install the signal handlers, write `starting`.
    pub fn start(explicit_dir: Option<&Path>, name: &str, job: &str, config_source: Option<&Path>) -> Result<Worker> {
        let stop = StopFlag::from_signals()?;
        let dir = open_run_dir(explicit_dir, name, job, config_source)?;
        let run = RunWriter::start(dir)?;
        Ok(Worker { run, stop })
    }
}

/// A training job's config: `cfg`, else (resuming) the run folder's `config.yml`; its
/// warnings go to stderr (the worker's log).
pub fn load_job_config(cfg: Option<&Path>, resume: Option<&Path>) -> Result<(crate::config::LoadedConfig, std::path::PathBuf)> {
    let path = match (cfg, resume) {
        (Some(c), _) => c.to_path_buf(),
        (None, Some(r)) => r.join(crate::rundir::CONFIG_FILE),
        (None, None) => anyhow::bail!("a config is needed: --cfg FILE (or --resume RUN_DIR, which reuses the run's config.yml)"),
    };
    let loaded = crate::config::load(&path)?;
    for w in &loaded.warnings {
        eprintln!("{w}");
    }
    Ok((loaded, path))
}

/// Start a training job's worker: `--resume RUN` continues RUN (which must hold
/// `checkpoints/latest.safetensors`; `--run-dir`, if also given, must name the same
/// folder), else `--run-dir`, else `$CLIPGAN_RUN_DIR` or a new folder named after the config.
pub fn start_job(resume: Option<&Path>, run_dir: Option<&Path>, cfg_path: &Path, job: &str) -> Result<Worker> {
    if let (Some(r), Some(d)) = (resume, run_dir) {
        if std::path::absolute(r)? != std::path::absolute(d)? {
            anyhow::bail!("--resume {} and --run-dir {} name different run folders", r.display(), d.display());
        }
    }
    if let Some(r) = resume {
        if !r.join(crate::rundir::CHECKPOINTS_DIR).join("latest.safetensors").is_file() {
            anyhow::bail!("cannot resume {}: it has no checkpoints/latest.safetensors", r.display());
        }
    }
    let name = cfg_path.file_stem().map(|s| s.to_string_lossy().into_owned()).unwrap_or_else(|| job.to_string());
    Worker::start(resume.or(run_dir), &name, job, Some(cfg_path))
}

/// How a training job ended (errors are `Err`), and the exit code it maps to.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Outcome {
    Finished,
    /// Stopped on request (SIGTERM) after saving a resumable checkpoint.
    Stopped,
    /// A loss or gradient became NaN/Inf; the last good checkpoint is kept.
    Diverged,
}

impl Outcome {
    pub fn exit_code(self) -> u8 {
        match self {
            Outcome::Finished => exit::FINISHED,
            Outcome::Stopped => exit::STOPPED,
            Outcome::Diverged => exit::DIVERGED,
        }
    }
}
