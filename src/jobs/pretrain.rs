//! `clipgan pretrain`: CLIP finetuning with the DAMSM word and sentence losses and
//! NT-Xent between two captions of each image (method.md §4, §6).
//!
//! The objective of a step is `train::finetune_step`. AdamW (weight decay 0.01, betas
//! 0.5/0.999) with two parameter groups (CLIP at BACKBONE_LR, `linear_subr` at
//! LINEAR_LR), the warm-up + cosine-restart schedule evaluated at each step's fractional
//! epoch, gradient-norm clipping (RNN_GRAD_CLIP).
//! Each epoch: validation on the test split (word loss, sentence loss, R-precision), a
//! retrieval preview image, `checkpoints/latest.safetensors`, and every SNAPSHOT_INTERVAL
//! epochs a model-only snapshot. See docs/training.md for the checkpoint contents.
use crate::checkpoint::{self, Checkpoint};
use crate::config::{self, LoadedConfig};
use crate::data::{Dataset, DatasetSpec, Loader, LoaderConfig, PixelMode, Split, Tokenizer};
use crate::eval::rprecision::{r_precision, Protocol};
use crate::jobs::progress::{self, LoopClock};
use crate::jobs::{self, Outcome, Position, StopFlag, TrainingJob, LATEST};
use crate::models::clip::{self, Clip, ClipConfig, CHECKPOINT_PREFIX, CONFIG_META_KEY};
use crate::rundir::{RunDir, RunWriter};
use crate::seed;
use crate::train::amp;
use crate::train::finetune_step::{batch_losses, ADAM_EPS, BETAS, WEIGHT_DECAY};
use crate::train::losses::{sentence_loss, words_loss};
use crate::train::optim::{clip_grad_norm, Adam, ParamGroup};
use crate::train::schedule::WarmRestarts;
use crate::util::oom::catch_out_of_memory;
use crate::{device, util};
use anyhow::{bail, Context, Result};
use std::collections::HashMap;
use std::path::PathBuf;
use std::sync::Arc;
use tch::{nn, Device, Kind, Tensor};

/// Name prefix of the optimizer state in checkpoints.
pub const OPTIM_PREFIX: &str = "optim.";
/// Test images shown in the retrieval preview.
const PREVIEW_IMAGES: usize = 8;

/// The model-only snapshot after `epochs_done` epochs, under `checkpoints/`.
pub fn snapshot_name(epochs_done: u64) -> String {
    format!("clip_epoch_{epochs_done:04}.safetensors")
}

#[derive(Clone, Debug, Default)]
pub struct Options {
    /// The config; with `resume` alone, the run folder's `config.yml` is used.
    pub cfg: Option<PathBuf>,
    /// Run folder to write (else CLIPGAN_RUN_DIR, else a new one under runs/).
    pub run_dir: Option<PathBuf>,
    /// A run folder to continue from its `checkpoints/latest.safetensors`.
    pub resume: Option<PathBuf>,
    /// `--set KEY=VALUE` overrides of the config (recorded in the run's `config.yml`).
    pub overrides: Vec<String>,
}

/// `clipgan pretrain`; returns the process exit code.
pub fn main(opts: &Options) -> Result<u8> {
    let (outcome, dir) = run(opts)?;
    println!("run folder: {}", dir.path().display());
    Ok(outcome.exit_code())
}

/// Run the job; errors after the run folder exists are also recorded there (state
/// `failed` with the message).
pub fn run(opts: &Options) -> Result<(Outcome, RunDir)> {
    device::init_torch();
    let (loaded, cfg_path) = jobs::load_job_config(opts.cfg.as_deref(), opts.resume.as_deref(), &opts.overrides)?;
    if loaded.config.job() != config::Job::Pretrain {
        eprintln!(
            "clipgan: note: {} has CONFIG_NAME {:?} (the seed's finetuning configs say 'DAMSM'); finetuning CLIP with it anyway",
            cfg_path.display(),
            loaded.config.config_name
        );
    }
    let mut worker = jobs::start_job(opts.resume.as_deref(), opts.run_dir.as_deref(), &cfg_path, config::Job::Pretrain.name())?;
    worker.run.set_tensorboard(loaded.config.clipgan.tensorboard);
    let dir = worker.run.dir().clone();
    let result = catch_out_of_memory(|| {
        Job::start(&loaded, &mut worker.run).and_then(|(mut job, pos)| train_loop(&mut job, &mut worker.run, &worker.stop, pos))
    });
    worker.conclude(result).map(|outcome| (outcome, dir))
}

/// Everything the training loop works with.
struct Job<'a> {
    loaded: &'a LoadedConfig,
    device: Device,
    amp: bool,
    vs: nn::VarStore,
    clip: Clip,
    ccfg: ClipConfig,
    opt: Adam,
    schedule: WarmRestarts,
    train: Arc<Dataset>,
    test: Arc<Dataset>,
    tokenizer: Arc<Tokenizer>,
    train_loader: LoaderConfig,
    val_loader: LoaderConfig,
    batches_per_epoch: usize,
    config_hash: String,
}

impl<'a> Job<'a> {
    /// Everything the loop works with, and where it starts: from the run's own
    /// `latest.safetensors` when there is one (resume), else from TRAIN.NET_E, random weights
    /// (CLIP_FROM_SCRATCH) or pretrained CLIP weights.
    fn start(loaded: &'a LoadedConfig, run: &mut RunWriter) -> Result<(Job<'a>, Position)> {
        let c = &loaded.config;
        let latest = run.dir().checkpoints_dir().join(LATEST);
        let resuming = latest.is_file();
        let config_hash = jobs::prepare_run_folder(run.dir(), loaded)?;

        let device = device::select(c)?;
        device::apply_threads(c);
        let amp = c.clipgan.amp && device.is_cuda();
        if c.clipgan.amp && !amp {
            println!("note: CLIPGAN.AMP (bf16 autocast) is for CUDA; running in f32 on {device:?}");
        }
        run.set_message("loading data");
        let spec = DatasetSpec::from_config(loaded)?;
        let train = Arc::new(Dataset::open(&spec, Split::Train)?);
        let test = Arc::new(Dataset::open(&spec, Split::Test)?);
        let tokenizer = Arc::new(Tokenizer::from_config(loaded)?);

        // The model; randomness from (seed, INIT).
        run.set_message("building the model");
        seed::seed_torch(c.clipgan.seed, &[seed::stream::INIT]);
        let start_from = if resuming {
            Some(latest.clone())
        } else if !c.train.net_e.trim().is_empty() {
            Some(loaded.require("TRAIN.NET_E")?)
        } else {
            None
        };
        let mut resume_ck = None;
        let (vs, clip, ccfg) = match &start_from {
            Some(path) => {
                let mut ck = checkpoint::load(path, device)?;
                let tensors = ck.tensor_map();
                let model =
                    clip_from_checkpoint(&ck, &tensors, device).with_context(|| format!("cannot continue from {}", path.display()))?;
                resume_ck = Some((path.clone(), ck, tensors));
                model
            }
            None if c.clipgan.clip_from_scratch => {
                let ccfg = ClipConfig::preset(&c.clipgan.clip_preset)?;
                let vs = nn::VarStore::new(device);
                let clip = Clip::new(vs.root(), &ccfg);
                (vs, clip, ccfg)
            }
            None => {
                let source = pretrained_source(loaded)?;
                println!("loading pretrained CLIP from {}", source.display());
                clip::load_clip(&source, &c.clipgan.clip_preset, device)?
            }
        };
        ccfg.check_words_num(c.text.words_num as usize)?;
        if tokenizer.vocab_size() as i64 > ccfg.text.vocab_size {
            bail!(
                "the tokenizer ({}) has {} tokens but this CLIP's vocabulary has {}",
                tokenizer.source,
                tokenizer.vocab_size(),
                ccfg.text.vocab_size
            );
        }
        if c.text.embedding_dim as i64 != ccfg.joint_dim() || ccfg.projection_dim != ccfg.joint_dim() {
            println!(
            "note: TEXT.EMBEDDING_DIM is {} but this CLIP has word/region width {} and code width {}; DM-GAN training needs all three equal",
            c.text.embedding_dim,
            ccfg.joint_dim(),
            ccfg.projection_dim
        );
        }
        let size = ccfg.vision.image_size as u32;
        if c.tree.base_size != size {
            println!("note: TREE.BASE_SIZE is {} but this CLIP takes {size} px images; finetuning at {size} px", c.tree.base_size);
        }

        let (backbone, subr) = clip::parameter_groups(&vs);
        let mut opt = Adam::new(
            vec![ParamGroup::new("backbone", backbone, c.train.backbone_lr), ParamGroup::new("linear_subr", subr, c.train.linear_lr)],
            BETAS,
            ADAM_EPS,
            WEIGHT_DECAY,
            true,
        );
        let train_loader = LoaderConfig { sizes: vec![size], ..LoaderConfig::for_training(c, PixelMode::Clip) };
        let val_loader = LoaderConfig { sizes: vec![size], ..LoaderConfig::for_evaluation(c, PixelMode::Clip) };
        let batches_per_epoch = jobs::batches_per_epoch(&train, train_loader.batch_size)?;

        let mut pos = Position::default();
        if let Some((path, ck, tensors)) = &resume_ck {
            pos = Position::resumed_from(ck, path, batches_per_epoch, &config_hash)?;
            let has_optim = tensors.keys().any(|k| k.starts_with(OPTIM_PREFIX));
            if has_optim {
                opt.load_state(tensors, OPTIM_PREFIX).with_context(|| format!("{}: the optimizer state does not fit", path.display()))?;
            } else {
                println!("note: {} is a model-only snapshot: the optimizer starts with fresh moments", path.display());
            }
            if ck.meta.get("seed").is_some_and(|s| *s != c.clipgan.seed.to_string()) {
                println!("note: CLIPGAN.SEED differs from the checkpoint's: data order and augmentation change from here on");
            }
            println!("continuing from {} at epoch {}, batch {}, step {}", path.display(), pos.epoch + 1, pos.batch, pos.step);
        }
        drop(resume_ck);

        let job = Job {
            loaded,
            device,
            amp,
            vs,
            clip,
            ccfg,
            opt,
            schedule: WarmRestarts::from_config(&c.clipgan),
            train,
            test,
            tokenizer,
            train_loader,
            val_loader,
            batches_per_epoch,
            config_hash,
        };
        Ok((job, pos))
    }
}

/// The CLIP weights to start finetuning from: CLIPGAN.CLIP_WEIGHTS, else
/// TRAIN.CLIP_MODEL_BASE (a local path, or a hub name looked up in the HuggingFace cache).
fn pretrained_source(loaded: &LoadedConfig) -> Result<PathBuf> {
    let c = &loaded.config;
    if !c.clipgan.clip_weights.trim().is_empty() {
        return loaded.require("CLIPGAN.CLIP_WEIGHTS");
    }
    let base = c.train.clip_model_base.trim();
    if base.is_empty() {
        bail!(
            "{}: no CLIP to finetune: set CLIPGAN.CLIP_WEIGHTS or TRAIN.CLIP_MODEL_BASE, or CLIPGAN.CLIP_FROM_SCRATCH: true (small presets)",
            loaded.path.display()
        );
    }
    Ok(match loaded.resolve(base) {
        Some(p) if p.exists() => p,
        _ => PathBuf::from(base),
    })
}

/// Build CLIP from a clipgan checkpoint's stored architecture and `clip.` tensors.
fn clip_from_checkpoint(ck: &Checkpoint, tensors: &HashMap<String, Tensor>, device: Device) -> Result<(nn::VarStore, Clip, ClipConfig)> {
    let text = ck.meta_str(CONFIG_META_KEY).context("not a CLIP finetuning checkpoint")?;
    let ccfg = ClipConfig::from_hf_json_str(text)?;
    let vs = nn::VarStore::new(device);
    let mut clip = Clip::new(vs.root(), &ccfg);
    let clip_tensors: HashMap<String, Tensor> =
        tensors.iter().filter(|(k, _)| k.starts_with(CHECKPOINT_PREFIX)).map(|(k, v)| (k.clone(), v.shallow_clone())).collect();
    checkpoint::load_var_store(&vs, &clip_tensors, CHECKPOINT_PREFIX, |_| false)?;
    clip.subr_loaded = true;
    Ok((vs, clip, ccfg))
}

/// Epochs of training from `pos`, each followed by validation, a snapshot when due and
/// `latest.safetensors`. `pos.batch == batches_per_epoch` means the epoch's training is
/// done and its validation is pending.
fn train_loop(job: &mut Job, run: &mut RunWriter, stop: &StopFlag, mut pos: Position) -> Result<(Outcome, String)> {
    let c = &job.loaded.config;
    let max_epoch = c.train.max_epoch as u64;
    let bpe = job.batches_per_epoch;
    let mut clock = LoopClock::start(run, c, bpe, job.train_loader.batch_size, pos.epoch, pos.step)?;

    while pos.epoch < max_epoch {
        run.set_epoch(pos.epoch as u32 + 1);
        if pos.batch < bpe {
            let loader = Loader::new(job.train.clone(), job.tokenizer.clone(), job.train_loader.clone(), pos.epoch, pos.batch)?;
            for batch in loader {
                let batch = batch?;
                if c.clipgan.max_steps > 0 && pos.step >= c.clipgan.max_steps {
                    break;
                }
                let epoch_pos = WarmRestarts::position(pos.epoch, pos.batch, bpe);
                let lrs = [job.schedule.lr(c.train.backbone_lr, epoch_pos), job.schedule.lr(c.train.linear_lr, epoch_pos)];
                for (g, lr) in lrs.iter().enumerate() {
                    job.opt.set_lr(g, *lr);
                }
                seed::seed_torch(c.clipgan.seed, &[seed::stream::STEP, pos.step]);
                let l = batch_losses(&job.clip, &c.train.smooth, job.device, job.amp, &batch.images[0], &batch.tokens, &batch.class_ids);
                let total = l.total.double_value(&[]);
                let mut grad_norm = f64::NAN;
                if total.is_finite() {
                    job.opt.zero_grad();
                    l.total.backward();
                    grad_norm = clip_grad_norm(&job.opt.params(), c.train.rnn_grad_clip);
                }
                let step = pos.step + 1;
                let values = [
                    ("loss/total", total),
                    ("loss/words", l.words.double_value(&[])),
                    ("loss/sentence", l.sentence.double_value(&[])),
                    ("loss/nt_xent", l.nt_xent.double_value(&[])),
                    ("grad_norm", grad_norm),
                ];
                if !total.is_finite() || !grad_norm.is_finite() {
                    run.scalars(step, &values)?;
                    let what = if total.is_finite() {
                        format!("the gradient norm became {grad_norm}")
                    } else {
                        format!("the loss became {total}")
                    };
                    return Ok((Outcome::Diverged, progress::diverged(run, step, pos.epoch + 1, &what)));
                }
                job.opt.step();
                pos.step = step;
                pos.batch += 1;
                if step.is_multiple_of(c.clipgan.log_every as u64) || pos.batch == bpe {
                    let mut all = values.to_vec();
                    all.extend([("lr/backbone", lrs[0]), ("lr/linear_subr", lrs[1]), ("speed/images_per_s", clock.images_per_s(step))]);
                    run.scalars(step, &all)?;
                }
                run.progress(step)?;
                if stop.is_raised() {
                    return jobs::stop_now(job, run, pos);
                }
                if clock.checkpoint_due() {
                    jobs::save_latest(job, run, pos)?;
                    clock.checkpointed();
                }
            }
        }
        if c.clipgan.max_steps > 0 && pos.step >= c.clipgan.max_steps && pos.batch < bpe {
            break; // stopped by MAX_STEPS mid-epoch
        }
        pos.batch = bpe;
        // Validation and preview of this epoch; the checkpoint then points at the next.
        validate(job, run, pos, stop)?;
        if stop.is_raised() {
            return jobs::stop_now(job, run, pos);
        }
        pos = Position { epoch: pos.epoch + 1, batch: 0, step: pos.step };
        if pos.epoch.is_multiple_of(c.train.snapshot_interval as u64) || pos.epoch == max_epoch {
            jobs::save_snapshot(job, run, &snapshot_name(pos.epoch), pos)?;
        }
        jobs::save_latest(job, run, pos)?;
        clock.checkpointed();
        if c.clipgan.max_steps > 0 && pos.step >= c.clipgan.max_steps {
            break;
        }
    }
    jobs::save_latest(job, run, pos)?;
    Ok((Outcome::Finished, format!("finished: {}", pos.summary())))
}

impl TrainingJob for Job<'_> {
    /// CLIP's architecture and weights; `latest` adds the optimizer state.
    fn make_checkpoint(&self, pos: Position, latest: bool) -> Checkpoint {
        let c = &self.loaded.config;
        let mut ck = jobs::new_checkpoint(config::Job::Pretrain, pos, latest, self.batches_per_epoch, c.clipgan.seed, &self.config_hash);
        ck.set_meta(CONFIG_META_KEY, self.ccfg.to_hf_json());
        ck.push_var_store(CHECKPOINT_PREFIX, &self.vs);
        if latest {
            ck.tensors.extend(self.opt.state_tensors(OPTIM_PREFIX));
        }
        ck
    }
}

/// Validation on the test split: mean word and sentence loss over its full batches,
/// R-precision over all its images (`eval::rprecision`, each image once), and the
/// retrieval preview.
fn validate(job: &Job, run: &mut RunWriter, pos: Position, stop: &StopFlag) -> Result<()> {
    let c = &job.loaded.config;
    let s = &c.train.smooth;
    let dev = job.device;
    run.set_message("validating");
    // Epoch 0 always: the same caption of each test image every epoch.
    let loader = Loader::new(job.test.clone(), job.tokenizer.clone(), job.val_loader.clone(), 0, 0)?;
    let (mut wsum, mut ssum, mut nfull) = (0.0, 0.0, 0usize);
    let (mut codes, mut sents, mut classes, mut captions) = (Vec::new(), Vec::new(), Vec::new(), Vec::new());
    // Preview: test images spread evenly over the split (it is ordered by class).
    let n_test = job.test.len();
    let k = PREVIEW_IMAGES.min(n_test);
    let wanted: Vec<usize> = (0..k).map(|i| i * n_test / k).collect();
    let mut preview: Vec<(usize, Tensor)> = Vec::new();
    tch::no_grad(|| -> Result<()> {
        for batch in loader {
            let batch = batch?;
            if stop.is_raised() {
                return Ok(());
            }
            let tok = &batch.tokens[0];
            let (img, text) = amp::autocast_bf16(dev, job.amp, || {
                (
                    job.clip.encode_image(&batch.images[0].to_device(dev)),
                    job.clip.encode_text(&tok.ids.to_device(dev), &tok.mask.to_device(dev)),
                )
            });
            let f = |t: &Tensor| t.to_kind(Kind::Float);
            let cls = batch.class_ids.to_device(dev);
            if batch.len() == job.val_loader.batch_size && batch.len() >= 2 {
                let w = words_loss(&f(&img.regions), &f(&text.words), &tok.mask.to_device(dev), Some(&cls), s.gamma1, s.gamma2, s.gamma3);
                let (s0, s1) = sentence_loss(&f(&img.code), &f(&text.sentence), Some(&cls), s.gamma3);
                wsum += (w.loss0 + w.loss1).double_value(&[]);
                ssum += (s0 + s1).double_value(&[]);
                nfull += 1;
            }
            let first_row = codes.iter().map(|c: &Tensor| c.size()[0] as usize).sum::<usize>();
            for (i, row) in (first_row..first_row + batch.len()).enumerate() {
                if wanted.contains(&row) {
                    preview.push((row, batch.images[0].get(i as i64)));
                }
            }
            codes.push(f(&img.code).to_device(Device::Cpu));
            sents.push(f(&text.sentence).to_device(Device::Cpu));
            classes.extend(Vec::<i64>::try_from(&batch.class_ids)?);
            for (&n, &k) in batch.indices.iter().zip(&batch.caption_ids[0]) {
                captions.push(job.test.caption(n, k).to_string());
            }
        }
        Ok(())
    })?;
    if stop.is_raised() || codes.is_empty() {
        return Ok(());
    }
    let codes = Tensor::cat(&codes, 0);
    let sents = Tensor::cat(&sents, 0);
    let mut values = Vec::new();
    let mut line = format!("epoch {} step {}:", pos.epoch + 1, pos.step);
    match Protocol::one_pass(&classes, c.clipgan.eval.r_candidates as usize, c.clipgan.seed) {
        Some(protocol) => {
            let rp = r_precision(&codes, &sents, &classes, &protocol)?;
            values.extend([("val/r_precision", rp.mean), ("val/r_chance", rp.chance())]);
            line += &format!(" val R-precision {:.3} (chance {:.3}, {} trials)", rp.mean, rp.chance(), rp.trials);
        }
        None => line += " no val R-precision (the test split has a single class)",
    }
    if nfull > 0 {
        values.push(("val/word_loss", wsum / nfull as f64));
        values.push(("val/sentence_loss", ssum / nfull as f64));
        line += &format!(", word loss {:.3}, sentence loss {:.3}", wsum / nfull as f64, ssum / nfull as f64);
    }
    run.scalars(pos.step, &values)?;
    super::live::println(&line);
    if !preview.is_empty() {
        retrieval_preview(run, pos, &preview, &codes, &sents, &classes, &captions)?;
    }
    run.set_message("");
    Ok(())
}

/// A grid of test images, each captioned with the validation caption that ranks first
/// for it, marked `[own]` (its own caption), `[class]` (another image of its class) or
/// `[wrong]`.
fn retrieval_preview(
    run: &RunWriter,
    pos: Position,
    preview: &[(usize, Tensor)],
    codes: &Tensor,
    sents: &Tensor,
    classes: &[i64],
    captions: &[String],
) -> Result<()> {
    let rows: Vec<i64> = preview.iter().map(|(r, _)| *r as i64).collect();
    let norm = |t: &Tensor| t / t.norm_scalaropt_dim(2, [1], true).clamp_min(1e-8);
    let sim = norm(&codes.index_select(0, &Tensor::from_slice(&rows))).matmul(&norm(sents).tr());
    let top = sim.argmax(1, false);
    let labels: Vec<String> = rows
        .iter()
        .enumerate()
        .map(|(i, &row)| {
            let j = top.int64_value(&[i as i64]) as usize;
            let mark = if j == row as usize {
                "[own]"
            } else if classes[j] == classes[row as usize] {
                "[class]"
            } else {
                "[wrong]"
            };
            format!("{mark} {}", captions[j])
        })
        .collect();
    let images = Tensor::stack(&preview.iter().map(|(_, t)| t.shallow_clone()).collect::<Vec<_>>(), 0);
    let k = rows.len();
    let mean = Tensor::from_slice(&clip::CLIP_MEAN).view([1, 3, 1, 1]);
    let std = Tensor::from_slice(&clip::CLIP_STD).view([1, 3, 1, 1]);
    let pixels01 = images.to_device(Device::Cpu).to_kind(Kind::Float) * std + mean;
    let cols = 4.min(k);
    let grid = util::grid::image_grid_01(&pixels01, cols)?;
    let grid_rows = k.div_ceil(cols);
    run.sample(pos.step, "retrieval", &grid, &labels, grid_rows as u32, cols as u32)?;
    Ok(())
}
