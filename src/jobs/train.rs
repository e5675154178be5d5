//! `clipgan train`: DM-GAN trained adversarially on frozen finetuned-CLIP text features
//! (method.md §4, §6, §9). The step itself is `train::gan_step`; this job holds the loop
//! over epochs, checkpoints and resume, the fixed sample grids and `--dry-run`.
use crate::checkpoint::{self, Checkpoint};
use crate::config::{self, LoadedConfig};
use crate::data::{CaptionForm, Dataset, DatasetSpec, Loader, LoaderConfig, PixelMode, Split, Stage, Tokenizer};
use crate::jobs::progress::{self, LoopClock};
use crate::jobs::{self, Outcome, Position, StopFlag, TrainingJob, LATEST};
use crate::models::clip::{self, Clip, ClipConfig};
use crate::models::dmgan::{self, GanConfig, EMA_G_PREFIX, GAN_META_KEY};
use crate::rundir::{RunDir, RunWriter};
use crate::seed;
use crate::train::gan_step::{train_step, ClipTerms, Nets, TextIn};
use crate::util::oom::catch_out_of_memory;
use crate::{device, util};
use anyhow::{bail, Context, Result};
use std::path::{Path, PathBuf};
use std::sync::Arc;
use tch::{Device, Kind, Tensor};

/// Captions (and fixed noise vectors) in each sample grid.
pub const SAMPLE_CAPTIONS: usize = 8;

/// Name prefix of the generator snapshots under `checkpoints/` (`clipgan eval
/// --snapshots` looks for it).
pub const SNAPSHOT_PREFIX: &str = "netG_epoch_";

/// The model-only snapshot (EMA generator) after `epochs_done` epochs.
pub fn snapshot_name(epochs_done: u64) -> String {
    format!("{SNAPSHOT_PREFIX}{epochs_done:04}.safetensors")
}

/// The epoch of a snapshot named by [`snapshot_name`]; `None` for any other file name.
pub fn snapshot_epoch(file_name: &str) -> Option<u64> {
    file_name.strip_prefix(SNAPSHOT_PREFIX)?.strip_suffix(".safetensors")?.parse().ok()
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
    /// Overrides TRAIN.CLIP_MODEL_CHECKPOINT.
    pub clip: Option<PathBuf>,
    /// Check everything and print the model summary; train nothing.
    pub dry_run: bool,
}

/// `clipgan train`; returns the process exit code.
pub fn main(opts: &Options) -> Result<u8> {
    if opts.dry_run {
        dry_run(opts)?;
        return Ok(crate::rundir::exit::FINISHED);
    }
    let (outcome, dir) = run(opts)?;
    println!("run folder: {}", dir.path().display());
    Ok(outcome.exit_code())
}

/// Run the job; errors after the run folder exists are also recorded there (state
/// `failed` with the message).
pub fn run(opts: &Options) -> Result<(Outcome, RunDir)> {
    device::init_torch();
    let (loaded, cfg_path) = jobs::load_job_config(opts.cfg.as_deref(), opts.resume.as_deref(), &opts.overrides)?;
    let mut worker = jobs::start_job(opts.resume.as_deref(), opts.run_dir.as_deref(), &cfg_path, config::Job::Train.name())?;
    worker.run.set_tensorboard(loaded.config.clipgan.tensorboard);
    let dir = worker.run.dir().clone();
    let result = catch_out_of_memory(|| {
        Job::start(&loaded, opts, &mut worker.run).and_then(|(mut job, pos)| train_loop(&mut job, &mut worker.run, &worker.stop, pos))
    });
    worker.conclude(result).map(|outcome| (outcome, dir))
}

/// The finetuned CLIP: `--clip`, else TRAIN.CLIP_MODEL_CHECKPOINT (required).
fn clip_path(loaded: &LoadedConfig, opts: &Options) -> Result<PathBuf> {
    if let Some(p) = &opts.clip {
        return Ok(p.clone());
    }
    if loaded.config.train.clip_model_checkpoint.trim().is_empty() {
        bail!(
            "{}: TRAIN.CLIP_MODEL_CHECKPOINT is empty: GAN training needs the finetuned CLIP (a `clipgan pretrain` run folder or checkpoint; or pass --clip)",
            loaded.path.display()
        );
    }
    loaded.require("TRAIN.CLIP_MODEL_CHECKPOINT")
}

/// Check that the CLIP's widths fit DM-GAN's text width.
fn check_widths(gcfg: &GanConfig, ccfg: &ClipConfig, clip_file: &Path) -> Result<()> {
    if ccfg.joint_dim() != gcfg.nef || ccfg.projection_dim != gcfg.nef {
        bail!(
            "{}: this CLIP has word width {} and code width {}, but TEXT.EMBEDDING_DIM is {} (DM-GAN's text width must equal both)",
            clip_file.display(),
            ccfg.joint_dim(),
            ccfg.projection_dim,
            gcfg.nef
        );
    }
    Ok(())
}

/// `--dry-run`: check config, data, CLIP checkpoint and output folder; print the summary.
pub fn dry_run(opts: &Options) -> Result<()> {
    device::init_torch();
    let (loaded, cfg_path) = jobs::load_job_config(opts.cfg.as_deref(), opts.resume.as_deref(), &opts.overrides)?;
    let c = &loaded.config;
    let gcfg = GanConfig::from_config(c).with_context(|| format!("{}", cfg_path.display()))?;
    let spec = DatasetSpec::from_config(&loaded)?;
    let train = Dataset::open(&spec, Split::Train)?;
    let _tok = Tokenizer::from_config(&loaded)?;
    let bpe = jobs::batches_per_epoch(&train, c.train.batch_size as usize)?;
    let clip_file = clip_path(&loaded, opts)?;
    let (_vs, _clip, ccfg) = clip::load_finetuned_clip(&clip_file, Device::Cpu)?;
    check_widths(&gcfg, &ccfg, &clip_file)?;
    ccfg.check_words_num(c.text.words_num as usize)?;
    if !c.train.net_g.trim().is_empty() {
        let p = loaded.require("TRAIN.NET_G")?;
        let meta = checkpoint::read_meta(&p)?;
        let text = meta.get(GAN_META_KEY).with_context(|| format!("TRAIN.NET_G {} is not a DM-GAN snapshot", p.display()))?;
        if GanConfig::from_json(text)? != gcfg {
            bail!("TRAIN.NET_G {} was trained with a different architecture than this config", p.display());
        }
    }
    let out = match (&opts.run_dir, &opts.resume) {
        (Some(d), _) | (None, Some(d)) => d.clone(),
        _ => std::env::var_os("CLIPGAN_RUN_DIR").map(PathBuf::from).unwrap_or_else(crate::home::runs_dir),
    };
    let existing = out.ancestors().find(|p| p.exists()).map(Path::to_path_buf).unwrap_or_default();
    let md =
        std::fs::metadata(&existing).with_context(|| format!("output folder {}: cannot inspect {}", out.display(), existing.display()))?;
    if !md.is_dir() || md.permissions().readonly() {
        bail!("output folder {}: {} is not a writable folder", out.display(), existing.display());
    }
    println!("config:   {}", cfg_path.display());
    println!(
        "data:     {} training images, {} batches of {} per epoch, {} epochs",
        train.len(),
        bpe,
        c.train.batch_size,
        c.train.max_epoch
    );
    println!("CLIP:     {} (width {}, images {} px), frozen", clip_file.display(), ccfg.joint_dim(), ccfg.vision.image_size);
    println!("output:   {}", out.display());
    print!("{}", dmgan::summary(&gcfg));
    println!("dry run: everything checked; nothing trained");
    Ok(())
}

/// Everything the training loop works with.
struct Job<'a> {
    loaded: &'a LoadedConfig,
    device: Device,
    gcfg: GanConfig,
    nets: Nets,
    clip: Clip,
    ccfg: ClipConfig,
    train: Arc<Dataset>,
    tokenizer: Arc<Tokenizer>,
    train_loader: LoaderConfig,
    batches_per_epoch: usize,
    config_hash: String,
    samples: SampleInputs,
}

/// Fixed captions and noise for the sample grids.
struct SampleInputs {
    captions: Vec<String>,
    text: TextIn,
    z: Tensor,
}

impl<'a> Job<'a> {
    /// Everything the loop works with, and where it starts: from the run's own
    /// `latest.safetensors` when there is one (resume), else from the generator snapshot
    /// TRAIN.NET_G, else from fresh networks.
    fn start(loaded: &'a LoadedConfig, opts: &Options, run: &mut RunWriter) -> Result<(Job<'a>, Position)> {
        let c = &loaded.config;
        let latest = run.dir().checkpoints_dir().join(LATEST);
        let resuming = latest.is_file();
        let config_hash = jobs::prepare_run_folder(run.dir(), loaded)?;
        let gcfg = GanConfig::from_config(c).with_context(|| format!("{}", loaded.path.display()))?;
        let device = device::select(c)?;
        device::apply_threads(c);
        if c.clipgan.amp {
            println!("note: CLIPGAN.AMP is not used by GAN training; running in f32");
        }

        run.set_message("loading CLIP");
        let clip_file = clip_path(loaded, opts)?;
        let (mut clip_vs, clip, ccfg) = clip::load_finetuned_clip(&clip_file, device)?;
        clip_vs.freeze();
        check_widths(&gcfg, &ccfg, &clip_file)?;
        ccfg.check_words_num(c.text.words_num as usize)?;

        run.set_message("loading data");
        let spec = DatasetSpec::from_config(loaded)?;
        let train = Arc::new(Dataset::open(&spec, Split::Train)?);
        let tokenizer = Arc::new(Tokenizer::from_config(loaded)?);
        let train_loader = LoaderConfig::for_training(c, PixelMode::Gan);
        let batches_per_epoch = jobs::batches_per_epoch(&train, train_loader.batch_size)?;
        if !c.train.b_net_d && !c.train.net_g.trim().is_empty() {
            println!("note: TRAIN.B_NET_D is false: the discriminators start fresh (they always do from a NET_G snapshot)");
        }

        run.set_message("building the networks");
        seed::seed_torch(c.clipgan.seed, &[seed::stream::INIT]);
        let mut nets = Nets::new(&gcfg, device, c.train.generator_lr, c.train.discriminator_lr);
        let mut pos = Position::default();
        if resuming {
            let mut ck = checkpoint::load(&latest, device)?;
            check_gan_meta(&ck, &gcfg, &latest)?;
            let t = ck.tensor_map();
            nets.load_all(&t).with_context(|| format!("{} does not fit this config", latest.display()))?;
            pos = Position::resumed_from(&ck, &latest, batches_per_epoch, &config_hash)?;
            println!("continuing from {} at epoch {}, batch {}, step {}", latest.display(), pos.epoch + 1, pos.batch, pos.step);
        } else if !c.train.net_g.trim().is_empty() {
            let p = loaded.require("TRAIN.NET_G")?;
            let mut ck = checkpoint::load(&p, device)?;
            check_gan_meta(&ck, &gcfg, &p)?;
            let epoch: u64 = ck.meta_parse("epoch").with_context(|| format!("{}: no epoch", p.display()))?;
            let t = ck.tensor_map();
            nets.load_generator_snapshot(&t).with_context(|| format!("TRAIN.NET_G {}", p.display()))?;
            pos = Position { epoch, batch: 0, step: epoch * batches_per_epoch as u64 };
            println!("continuing from the generator snapshot {} (epoch {epoch}); discriminators and optimizers start fresh", p.display());
        }

        let samples = sample_inputs(&clip, &train, &tokenizer, c, device)?;
        let job = Job { loaded, device, gcfg, nets, clip, ccfg, train, tokenizer, train_loader, batches_per_epoch, config_hash, samples };
        Ok((job, pos))
    }
}

fn check_gan_meta(ck: &Checkpoint, gcfg: &GanConfig, path: &Path) -> Result<()> {
    let text = ck.meta.get(GAN_META_KEY).with_context(|| format!("{} is not a DM-GAN checkpoint", path.display()))?;
    let saved = GanConfig::from_json(text)?;
    if saved != *gcfg {
        bail!("{} holds networks of another architecture ({saved:?}) than the config ({gcfg:?})", path.display());
    }
    Ok(())
}

/// Caption 0 of training images spread over the split, encoded once; noise from the
/// SAMPLE stream. The same every time, so successive grids are comparable.
fn sample_inputs(clip: &Clip, train: &Dataset, tokenizer: &Tokenizer, c: &config::Config, dev: Device) -> Result<SampleInputs> {
    let n = train.len();
    let k = SAMPLE_CAPTIONS.min(n);
    let captions: Vec<String> = (0..k).map(|i| train.caption(i * n / k, 0).to_string()).collect();
    // Tokenized in the GAN stage's caption form, as the training batches (shown as written).
    let form = CaptionForm::for_stage(&c.clipgan.caption_form, Stage::Gan)?;
    let texts: Vec<String> = captions.iter().map(|t| form.apply(t).into_owned()).collect();
    let refs: Vec<&str> = texts.iter().map(String::as_str).collect();
    let tok = tokenizer.encode_batch(&refs, c.text.words_num as usize);
    let text = TextIn::encode(clip, &tok, dev);
    seed::seed_torch(c.clipgan.seed, &[seed::stream::SAMPLE]);
    let z = Tensor::randn([k as i64, c.gan.z_dim as i64], (Kind::Float, dev));
    Ok(SampleInputs { captions, text, z })
}

fn write_samples(job: &Job, run: &RunWriter, step: u64) -> Result<()> {
    let s = &job.samples;
    let c = &job.loaded.config;
    // The EMA generator in evaluation mode, with the conditioning noise fixed too.
    seed::seed_torch(c.clipgan.seed, &[seed::stream::SAMPLE, 1]);
    let out = tch::no_grad(|| job.nets.ema.forward(&s.z, &s.text.sent, &s.text.words, &s.text.pad));
    let cols = 4.min(s.captions.len());
    let rows = s.captions.len().div_ceil(cols);
    for (k, img) in out.images.iter().enumerate() {
        let grid = util::grid::image_grid(img, cols)?;
        run.sample(step, &format!("grid/{}", job.gcfg.sizes()[k]), &grid, &s.captions, rows as u32, cols as u32)?;
    }
    Ok(())
}

/// Epochs of training from `pos`, each followed by the sample grids (unless
/// CLIPGAN.SAMPLE_EVERY gives them by step), a snapshot when due and `latest.safetensors`.
fn train_loop(job: &mut Job, run: &mut RunWriter, stop: &StopFlag, mut pos: Position) -> Result<(Outcome, String)> {
    let c = &job.loaded.config;
    let max_epoch = c.train.max_epoch as u64;
    let bpe = job.batches_per_epoch;
    let mut clock = LoopClock::start(run, c, bpe, job.train_loader.batch_size, pos.epoch, pos.step)?;
    if pos.step == 0 {
        write_samples(job, run, 0)?;
    }
    let dev = job.device;
    let clip_terms = ClipTerms { clip: &job.clip, image_size: job.ccfg.vision.image_size, smooth: &c.train.smooth };
    let sample_every = c.clipgan.sample_every as u64;
    let done = |pos: &Position| c.clipgan.max_steps > 0 && pos.step >= c.clipgan.max_steps;

    while pos.epoch < max_epoch && !done(&pos) {
        run.set_epoch(pos.epoch as u32 + 1);
        let loader = Loader::new(job.train.clone(), job.tokenizer.clone(), job.train_loader.clone(), pos.epoch, pos.batch)?;
        for batch in loader {
            let batch = batch?;
            if done(&pos) {
                break;
            }
            let texts = [TextIn::encode(&job.clip, &batch.tokens[0], dev), TextIn::encode(&job.clip, &batch.tokens[1], dev)];
            let reals: Vec<Tensor> = batch.images.iter().map(|t| t.to_device(dev)).collect();
            let classes = batch.class_ids.to_device(dev);
            seed::seed_torch(c.clipgan.seed, &[seed::stream::STEP, pos.step]);
            let z = Tensor::randn([batch.len() as i64, job.gcfg.z_dim], (Kind::Float, dev));
            let step = pos.step + 1;
            let result =
                train_step(&mut job.nets, &reals, &texts, &classes, &z, Some(&clip_terms), c.train.smooth.lambda, c.clipgan.ema_decay);
            let stats = match result {
                Ok(s) => s,
                Err(nf) => {
                    let vals = nf.stats.values();
                    let refs: Vec<(&str, f64)> = vals.iter().map(|(k, v)| (k.as_str(), *v)).collect();
                    run.scalars(step, &refs)?;
                    return Ok((Outcome::Diverged, progress::diverged(run, step, pos.epoch + 1, &nf.what)));
                }
            };
            pos.step = step;
            pos.batch += 1;
            if step.is_multiple_of(c.clipgan.log_every.max(1) as u64) || pos.batch == bpe {
                let mut vals = stats.values();
                vals.push(("speed/images_per_s".into(), clock.images_per_s(step)));
                let refs: Vec<(&str, f64)> = vals.iter().map(|(k, v)| (k.as_str(), *v)).collect();
                run.scalars(step, &refs)?;
            }
            if sample_every > 0 && step.is_multiple_of(sample_every) {
                write_samples(job, run, step)?;
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
        if pos.batch < bpe {
            break; // MAX_STEPS reached mid-epoch
        }
        pos = Position { epoch: pos.epoch + 1, batch: 0, step: pos.step };
        if sample_every == 0 {
            write_samples(job, run, pos.step)?;
        }
        if pos.epoch.is_multiple_of(c.train.snapshot_interval.max(1) as u64) || pos.epoch == max_epoch {
            jobs::save_snapshot(job, run, &snapshot_name(pos.epoch), pos)?;
        }
        jobs::save_latest(job, run, pos)?;
        clock.checkpointed();
        if stop.is_raised() {
            return jobs::stop_now(job, run, pos);
        }
    }
    if sample_every > 0 && !pos.step.is_multiple_of(sample_every) {
        write_samples(job, run, pos.step)?;
    }
    jobs::save_latest(job, run, pos)?;
    Ok((Outcome::Finished, format!("finished: {}", pos.summary())))
}

impl TrainingJob for Job<'_> {
    /// The architecture and the EMA generator; `latest` adds G, every D and the optimizer
    /// states.
    fn make_checkpoint(&self, pos: Position, latest: bool) -> Checkpoint {
        let c = &self.loaded.config;
        let mut ck = jobs::new_checkpoint(config::Job::Train, pos, latest, self.batches_per_epoch, c.clipgan.seed, &self.config_hash);
        ck.set_meta(GAN_META_KEY, self.gcfg.to_json());
        ck.set_meta("words_num", c.text.words_num);
        ck.set_meta("clip_width", self.ccfg.joint_dim());
        if latest {
            self.nets.push_all(&mut ck);
        } else {
            ck.push_var_store(EMA_G_PREFIX, &self.nets.ema_vs);
        }
        ck
    }
}
