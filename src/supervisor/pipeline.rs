//! Queueing the method's whole pipeline in one action: CLIP finetuning, then DM-GAN
//! training on the finetuned CLIP, then evaluation of the trained generator.
//!
//! The stages meet through run folders, which the daemon makes at queue time, so each
//! later stage is told where the earlier one will leave its checkpoint:
//! training gets `--clip <finetuning run>/checkpoints/latest.safetensors`, evaluation
//! gets `--net-g <training run>/checkpoints/latest.safetensors` (its EMA generator) and
//! the same `--clip`. `--after` makes each stage wait for the previous one's success; a
//! failed stage leaves the later ones `dep-failed`, never started on missing files.
use super::client::{Added, Client};
use super::protocol::AddTask;
use crate::rundir::JobKind;
use anyhow::{Context, Result};
use std::path::{Path, PathBuf};

/// The configs of a pipeline (absolute paths).
#[derive(Clone, Debug)]
pub struct Pipeline {
    pub pretrain: PathBuf,
    pub train: PathBuf,
    /// Evaluation is optional.
    pub eval: Option<PathBuf>,
    pub group: Option<String>,
    /// A label given to the three tasks (shown by `status` and the console).
    pub label: Option<String>,
}

/// What [`queue`] added.
#[derive(Clone, Debug)]
pub struct QueuedPipeline {
    pub pretrain: Added,
    pub train: Added,
    pub eval: Option<Added>,
}

impl QueuedPipeline {
    pub fn ids(&self) -> Vec<u64> {
        let mut v = vec![self.pretrain.id, self.train.id];
        v.extend(self.eval.as_ref().map(|e| e.id));
        v
    }
}

/// The resumable checkpoint a training job leaves in its run folder (docs/training.md).
pub fn latest_checkpoint(run_dir: &Path) -> PathBuf {
    run_dir.join(crate::rundir::CHECKPOINTS_DIR).join("latest.safetensors")
}

/// Queue the three stages with their dependencies and wiring.
pub fn queue(client: &mut Client, p: &Pipeline) -> Result<QueuedPipeline> {
    let task = |job: JobKind, config: &Path, args: Vec<String>, after: Vec<u64>| AddTask {
        job: Some(job),
        config: Some(config.to_path_buf()),
        args,
        group: p.group.clone(),
        priority: 0,
        after,
        after_any: Vec::new(),
        retries: 0,
        label: p.label.clone(),
        held: false,
        overrides: Vec::new(),
    };
    let pretrain = client
        .add(task(JobKind::Pretrain, &p.pretrain, Vec::new(), Vec::new()))
        .with_context(|| format!("cannot queue {}", p.pretrain.display()))?;
    let clip = latest_checkpoint(&pretrain.run_dir).display().to_string();
    let train = client
        .add(task(JobKind::Train, &p.train, vec!["--clip".into(), clip.clone()], vec![pretrain.id]))
        .with_context(|| format!("cannot queue {}", p.train.display()))?;
    let eval = match &p.eval {
        Some(cfg) => {
            let net_g = latest_checkpoint(&train.run_dir).display().to_string();
            let args = vec!["--net-g".into(), net_g, "--clip".into(), clip];
            Some(client.add(task(JobKind::Eval, cfg, args, vec![train.id])).with_context(|| format!("cannot queue {}", cfg.display()))?)
        }
        None => None,
    };
    Ok(QueuedPipeline { pretrain, train, eval })
}
