//! The jobs: the worker processes that take a config and write a run folder
//! (docs/architecture.md). `pretrain` (CLIP finetuning), `train` (DM-GAN), `eval`
//! (generate and score), `fake_run` (a worker that trains nothing, for the supervisor's
//! tests and the console), `progress` (the training loops' bookkeeping), `live` (the progress line of a job run by hand). They are made of
//! the reusable pieces in `train`, `eval`, `models` and `data`.
//!
//! This file holds what every job shares: where its run folder is, the stop request,
//! how it records its end; and what the two training jobs share: their position in the
//! run ([`Position`]), `checkpoints/latest.safetensors` ([`LATEST`], [`save_latest`]),
//! snapshots and the stop on request ([`stop_now`]).
//!
//! Every job module has the same entry points: `main(opts) -> Result<u8>` for the CLI
//! (prints the run folder, returns the exit code) and, where tests drive it in-process,
//! `run(opts) -> Result<(Outcome, RunDir)>`. The training jobs are built the same way:
//! `Options`, a `Job` struct holding everything the loop works with, `train_loop`,
//! `make_checkpoint`, `snapshot_name`.
//!
//! Contract with the daemon (docs/architecture.md): the daemon makes the run folder and
//! passes it as `CLIPGAN_RUN_DIR`; a job started by hand makes a new one under
//! `<home>/runs` (or uses `--run-dir`). SIGTERM (and SIGINT) ask the job to save a
//! resumable checkpoint and exit with state `stopped`; a second signal is not special
//! (the daemon follows up with SIGKILL after its timeout).
use crate::checkpoint::{self, Checkpoint};
use crate::config::{self, LoadedConfig};
use crate::data::Dataset;
use crate::rundir::{exit, RunDir, RunState, RunWriter, CHECKPOINTS_DIR, MANIFEST_FILE};
use anyhow::{bail, Context, Result};
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;

pub mod eval;
pub mod fake_run;
pub mod live;
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
        let mut run = RunWriter::start(dir)?;
        if let Some(o) = live::observer(job) {
            run.set_observer(o);
        }
        Ok(Worker { run, stop })
    }
}

/// A training job's config: `cfg`, else (resuming) the run folder's `config.yml`, with
/// the `--set` overrides applied; its warnings go to stderr (the worker's log).
pub fn load_job_config(cfg: Option<&Path>, resume: Option<&Path>, overrides: &[String]) -> Result<(LoadedConfig, PathBuf)> {
    let path = match (cfg, resume) {
        (Some(c), _) => c.to_path_buf(),
        (None, Some(r)) => r.join(crate::rundir::CONFIG_FILE),
        (None, None) => anyhow::bail!("a config is needed: --cfg FILE (or --resume RUN_DIR, which reuses the run's config.yml)"),
    };
    let loaded = config::load_with(&path, overrides)?;
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
        if !r.join(CHECKPOINTS_DIR).join(LATEST).is_file() {
            anyhow::bail!("cannot resume {}: it has no checkpoints/latest.safetensors", r.display());
        }
    }
    let name = cfg_path.file_stem().map(|s| crate::rundir::name_from_file_stem(&s.to_string_lossy())).unwrap_or_else(|| job.to_string());
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

/// `checkpoints/latest.safetensors`: a training job's resumable checkpoint (weights,
/// optimizer state, position), rewritten at every save; `--resume` continues from it.
pub const LATEST: &str = "latest.safetensors";

/// Where a training run stands: the next batch to train is `batch` of epoch `epoch`
/// (0-based), after `step` optimisation steps.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct Position {
    pub epoch: u64,
    pub batch: usize,
    pub step: u64,
}

impl Position {
    /// The position the resumable checkpoint `ck` (read from `path`) was saved at. A run
    /// stopped mid-epoch continues only with the same number of batches per epoch; a
    /// changed config is noted.
    pub fn resumed_from(ck: &Checkpoint, path: &Path, batches_per_epoch: usize, config_hash: &str) -> Result<Position> {
        let pos = Position { epoch: ck.meta_parse("epoch")?, batch: ck.meta_parse("batch")?, step: ck.meta_parse("step")? };
        let saved_bpe: usize = ck.meta_parse("batches_per_epoch").unwrap_or(batches_per_epoch);
        if saved_bpe != batches_per_epoch && pos.batch > 0 {
            bail!(
                "{} stopped at batch {} of {saved_bpe} per epoch, but this config gives {batches_per_epoch} batches per epoch (dataset or TRAIN.BATCH_SIZE changed); resume with the run's own config",
                path.display(),
                pos.batch
            );
        }
        if ck.meta.get("config_hash").is_some_and(|h| h != config_hash) {
            println!("note: the config differs from the one {} was written with", path.display());
        }
        Ok(pos)
    }

    /// How far a run got, for its outcome line: "3 epochs, 186 steps", or "1 epoch and 55
    /// batches, 180 steps" when CLIPGAN.MAX_STEPS ended it inside an epoch.
    pub fn summary(&self) -> String {
        let n = |k: u64, one: &str, many: &str| format!("{k} {}", if k == 1 { one } else { many });
        let within = if self.batch > 0 { format!(" and {}", n(self.batch as u64, "batch", "batches")) } else { String::new() };
        format!("{}{within}, {}", n(self.epoch, "epoch", "epochs"), n(self.step, "step", "steps"))
    }
}

/// A training job as the shared checkpoint helpers see it.
pub trait TrainingJob {
    /// The checkpoint at `pos`: resumable (`latest`: every tensor the loop needs to go on,
    /// optimizer state included) or a model-only snapshot.
    fn make_checkpoint(&self, pos: Position, latest: bool) -> Checkpoint;
}

/// A checkpoint of `job` holding the metadata every training job writes: its kind
/// (`latest` or `snapshot`), the position, the batches per epoch, the seed, the config's
/// hash and the time.
pub fn new_checkpoint(job: config::Job, pos: Position, latest: bool, batches_per_epoch: usize, seed: u64, config_hash: &str) -> Checkpoint {
    let mut ck = Checkpoint::new(job.name());
    ck.set_meta("kind", if latest { "latest" } else { "snapshot" });
    ck.set_meta("epoch", pos.epoch);
    ck.set_meta("batch", pos.batch);
    ck.set_meta("step", pos.step);
    ck.set_meta("batches_per_epoch", batches_per_epoch);
    ck.set_meta("seed", seed);
    ck.set_meta("config_hash", config_hash);
    ck.set_meta("created", crate::util::unix_now());
    ck
}

/// Write `checkpoints/latest.safetensors` at `pos`. Metrics first, then the checkpoint
/// is recorded in status.json: a resumed run never has a gap in its steps.
pub fn save_latest(job: &impl TrainingJob, run: &mut RunWriter, pos: Position) -> Result<()> {
    let path = run.dir().checkpoints_dir().join(LATEST);
    checkpoint::save(&path, &job.make_checkpoint(pos, true))?;
    run.flush()?;
    run.set_checkpoint(&format!("{CHECKPOINTS_DIR}/{LATEST}"))
}

/// Write the model-only snapshot `checkpoints/<name>` at `pos`.
pub fn save_snapshot(job: &impl TrainingJob, run: &RunWriter, name: &str, pos: Position) -> Result<()> {
    checkpoint::save(&run.dir().checkpoints_dir().join(name), &job.make_checkpoint(pos, false))
}

/// Stop on request: save the resumable checkpoint and say where the run stopped.
pub fn stop_now(job: &impl TrainingJob, run: &mut RunWriter, pos: Position) -> Result<(Outcome, String)> {
    run.set_state(RunState::Stopping, "saving a checkpoint")?;
    save_latest(job, run, pos)?;
    Ok((Outcome::Stopped, format!("stopped at epoch {}, step {}; resume with --resume", pos.epoch + 1, pos.step)))
}

/// Make a training job's run folder ready: remove the temporary files of checkpoint
/// writes a killed worker left behind, write the resolved `config.yml`. Returns the
/// config's hash (stored in checkpoints, compared on resume).
pub fn prepare_run_folder(dir: &RunDir, loaded: &LoadedConfig) -> Result<String> {
    checkpoint::remove_stale_temp_files(&dir.checkpoints_dir());
    let yaml = loaded.resolved_yaml();
    dir.write_config(&yaml)?;
    Ok(checkpoint::text_hash(&yaml))
}

/// Full batches per epoch of TRAIN.BATCH_SIZE (the last partial batch is dropped); an
/// error when the training split holds less than one batch.
pub fn batches_per_epoch(train: &Dataset, batch_size: usize) -> Result<usize> {
    let batches = train.len() / batch_size.max(1);
    if batches == 0 {
        bail!("the training split has {} images, fewer than one batch of TRAIN.BATCH_SIZE {batch_size}", train.len());
    }
    Ok(batches)
}

#[cfg(test)]
mod tests {
    use super::Position;

    #[test]
    fn summary_counts_whole_epochs_and_the_batches_of_an_unfinished_one() {
        assert_eq!(Position { epoch: 3, batch: 0, step: 186 }.summary(), "3 epochs, 186 steps");
        assert_eq!(Position { epoch: 1, batch: 55, step: 180 }.summary(), "1 epoch and 55 batches, 180 steps");
        assert_eq!(Position { epoch: 0, batch: 1, step: 1 }.summary(), "0 epochs and 1 batch, 1 step");
    }
}
