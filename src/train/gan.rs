//! `clipgan train`: DM-GAN trained adversarially on frozen finetuned-CLIP text features
//! (method.md §4, §6, §9).
//!
//! Per step, for images x (one per branch size, [-1, 1]) with two different captions
//! c¹, c² and noise z (shared by both captions):
//! - fakes G(z, c^j) for j = 1, 2 (train-mode BatchNorm);
//! - each D_k in turn: Σ_j ½[BCE(D_u(x),1) + BCE(D_c(x,ē^j),1)] + ⅓[BCE(D_u(G^j),0) +
//!   BCE(D_c(G^j,ē^j),0) + BCE(D_c(x_{1..B-1}, ē^j_{2..B}),0)], one Adam step;
//! - G: Σ_j Σ_k [BCE(D_u(G^j_k),1) + BCE(D_c(G^j_k,ē^j),1)] + λ(L_w + L_s)(G^j_last, c^j)
//!   through the frozen CLIP + KL^j, plus 0.2·NTXent_{0.5} of the two fakes' CLIP image
//!   codes; one Adam step; EMA of G's weights (CLIPGAN.EMA_DECAY).
//!
//! D sees reals and fakes in the same [-1, 1] convention; CLIP sees fakes through
//! `pixels_for_clip` ((x+1)/2, antialiased resize, CLIP normalisation).
use crate::checkpoint::{self, Checkpoint};
use crate::config::{self, LoadedConfig};
use crate::data::{Dataset, DatasetSpec, Loader, LoaderConfig, PixelMode, Split, Tokenizer};
use crate::models::clip::{self, Clip, ClipConfig};
use crate::models::dmgan::{self, d_prefix, Discriminator, GanConfig, Generator, EMA_G_PREFIX, GAN_META_KEY, G_PREFIX};
use crate::rundir::{RunDir, RunState, RunWriter};
use crate::seed;
use crate::train::losses::{nt_xent, sentence_loss, words_loss};
use crate::train::optim::{Adam, ParamGroup};
use crate::train::progress::{self, LoopClock};
use crate::worker::{self, StopFlag};
use crate::{device, util};
use anyhow::{bail, Context, Result};
use std::collections::HashMap;
use std::path::{Path, PathBuf};
use std::sync::Arc;
use tch::{nn, Device, Kind, Reduction, Tensor};

/// Adam settings of DM-GAN (method.md §6).
pub const BETAS: (f64, f64) = (0.5, 0.999);
pub const ADAM_EPS: f64 = 1e-8;
/// Weight and temperature of the contrastive term between the two captions' fakes.
pub const CONTRASTIVE_WEIGHT: f64 = 0.2;
pub const NT_XENT_TAU: f64 = 0.5;
/// Captions (and fixed noise vectors) in each sample grid.
pub const SAMPLE_CAPTIONS: usize = 8;

pub const LATEST: &str = "latest.safetensors";
pub fn snapshot_name(epochs_done: u64) -> String {
    format!("netG_epoch_{epochs_done:04}.safetensors")
}

#[derive(Clone, Debug, Default)]
pub struct Options {
    pub cfg: Option<PathBuf>,
    pub run_dir: Option<PathBuf>,
    pub resume: Option<PathBuf>,
    /// Overrides TRAIN.CLIP_MODEL_CHECKPOINT.
    pub clip: Option<PathBuf>,
    pub dry_run: bool,
}

pub use crate::worker::Outcome;

/// G, its EMA copy, the discriminators and their optimizers.
pub struct Nets {
    pub cfg: GanConfig,
    pub g_vs: nn::VarStore,
    pub g: Generator,
    pub ema_vs: nn::VarStore,
    pub ema: Generator,
    pub d_vs: Vec<nn::VarStore>,
    pub ds: Vec<Discriminator>,
    pub opt_g: Adam,
    pub opt_d: Vec<Adam>,
    /// (EMA variable, G variable) for trainable ones; buffers are copied.
    ema_pairs: Vec<(Tensor, Tensor)>,
    buffer_pairs: Vec<(Tensor, Tensor)>,
}

fn sorted_vars(vs: &nn::VarStore) -> Vec<(String, Tensor)> {
    let mut v: Vec<(String, Tensor)> = vs.variables().into_iter().collect();
    v.sort_by(|a, b| a.0.cmp(&b.0));
    v
}

fn trainable_named(vs: &nn::VarStore) -> Vec<(String, Tensor)> {
    sorted_vars(vs).into_iter().filter(|(_, t)| t.requires_grad()).collect()
}

impl Nets {
    /// New networks (randomness from libtorch's current seed); the EMA starts as a copy of G.
    pub fn new(cfg: &GanConfig, device: Device, lr_g: f64, lr_d: f64) -> Nets {
        let g_vs = nn::VarStore::new(device);
        let g = Generator::new(g_vs.root(), cfg);
        let mut ema_vs = nn::VarStore::new(device);
        let ema = Generator::new(ema_vs.root(), cfg);
        ema_vs.copy(&g_vs).expect("same architecture");
        ema_vs.freeze();
        let mut d_vs = Vec::new();
        let mut ds = Vec::new();
        for k in 0..cfg.branch_num as usize {
            let vs = nn::VarStore::new(device);
            ds.push(Discriminator::new(vs.root(), cfg, k));
            d_vs.push(vs);
        }
        let opt_g = Adam::new(vec![ParamGroup::new("g", trainable_named(&g_vs), lr_g)], BETAS, ADAM_EPS, 0.0, false);
        let opt_d =
            d_vs.iter().map(|vs| Adam::new(vec![ParamGroup::new("d", trainable_named(vs), lr_d)], BETAS, ADAM_EPS, 0.0, false)).collect();
        let gv = g_vs.variables();
        let mut ema_pairs = Vec::new();
        let mut buffer_pairs = Vec::new();
        for (name, t) in sorted_vars(&ema_vs) {
            let src = gv[&name].shallow_clone();
            if src.requires_grad() {
                ema_pairs.push((t, src));
            } else {
                buffer_pairs.push((t, src));
            }
        }
        Nets { cfg: cfg.clone(), g_vs, g, ema_vs, ema, d_vs, ds, opt_g, opt_d, ema_pairs, buffer_pairs }
    }

    /// ema = decay·ema + (1 - decay)·G for weights; BatchNorm statistics copied.
    pub fn ema_update(&self, decay: f64) {
        tch::no_grad(|| {
            for (e, p) in &self.ema_pairs {
                let _ = e.shallow_clone().lerp_(p, 1.0 - decay);
            }
            for (e, p) in &self.buffer_pairs {
                e.shallow_clone().copy_(p);
            }
        });
    }

    /// Every tensor of a resumable checkpoint: weights, buffers and optimizer moments.
    pub fn push_all(&self, ck: &mut Checkpoint) {
        ck.push_var_store(G_PREFIX, &self.g_vs);
        ck.push_var_store(EMA_G_PREFIX, &self.ema_vs);
        for (k, vs) in self.d_vs.iter().enumerate() {
            ck.push_var_store(&d_prefix(k), vs);
        }
        ck.tensors.extend(self.opt_g.state_tensors("optim_g."));
        for (k, o) in self.opt_d.iter().enumerate() {
            ck.tensors.extend(o.state_tensors(&format!("optim_d{k}.")));
        }
    }

    /// Restore everything [`Nets::push_all`] wrote.
    pub fn load_all(&mut self, t: &HashMap<String, Tensor>) -> Result<()> {
        checkpoint::load_var_store(&self.g_vs, t, G_PREFIX, |_| false).context("generator")?;
        checkpoint::load_var_store(&self.ema_vs, t, EMA_G_PREFIX, |_| false).context("EMA generator")?;
        for (k, vs) in self.d_vs.iter().enumerate() {
            checkpoint::load_var_store(vs, t, &d_prefix(k), |_| false).with_context(|| format!("discriminator {k}"))?;
        }
        self.opt_g.load_state(t, "optim_g.").context("generator optimizer")?;
        for (k, o) in self.opt_d.iter_mut().enumerate() {
            o.load_state(t, &format!("optim_d{k}.")).with_context(|| format!("discriminator {k} optimizer"))?;
        }
        Ok(())
    }

    /// Start G and its EMA from a snapshot's (EMA) generator weights.
    pub fn load_generator_snapshot(&mut self, t: &HashMap<String, Tensor>) -> Result<()> {
        checkpoint::load_var_store(&self.g_vs, t, EMA_G_PREFIX, |_| false)?;
        checkpoint::load_var_store(&self.ema_vs, t, EMA_G_PREFIX, |_| false)?;
        Ok(())
    }

    fn set_d_trainable(&self, on: bool) {
        for vs in &self.d_vs {
            for t in vs.trainable_variables() {
                let _ = t.shallow_clone().set_requires_grad(on);
            }
        }
    }
}

/// Text features of one caption slot: words [B, nef, L], sentence [B, nef], the real-token
/// mask [B, L] (true = real) and its complement (true = padding).
pub struct TextIn {
    pub words: Tensor,
    pub sent: Tensor,
    pub real: Tensor,
    pub pad: Tensor,
}

impl TextIn {
    pub fn new(words: Tensor, sent: Tensor, real: Tensor) -> TextIn {
        let real = real.to_device(words.device()).to_kind(Kind::Bool);
        let pad = real.logical_not();
        TextIn { words, sent, real, pad }
    }
}

/// The frozen CLIP and what the generator's CLIP terms need.
pub struct ClipTerms<'a> {
    pub clip: &'a Clip,
    pub image_size: i64,
    pub smooth: &'a config::Smooth,
}

/// The scalar values of one step (per stage k: D loss and G adversarial loss).
#[derive(Clone, Debug, Default)]
pub struct StepStats {
    pub d: Vec<f64>,
    pub g_adv: Vec<f64>,
    pub kl: f64,
    pub words: f64,
    pub sentence: f64,
    pub contrastive: f64,
    pub g_total: f64,
}

impl StepStats {
    /// Named values; per-stage losses are tagged by image size (`loss/d64`, `loss/g128`).
    pub fn values(&self) -> Vec<(String, f64)> {
        let mut v = Vec::new();
        for (k, x) in self.d.iter().enumerate() {
            v.push((format!("loss/d{}", dmgan::BASE_SIZE << k), *x));
        }
        for (k, x) in self.g_adv.iter().enumerate() {
            v.push((format!("loss/g{}", dmgan::BASE_SIZE << k), *x));
        }
        v.extend([
            ("loss/kl".to_string(), self.kl),
            ("loss/words".to_string(), self.words),
            ("loss/sentence".to_string(), self.sentence),
            ("loss/contrastive".to_string(), self.contrastive),
            ("loss/g_total".to_string(), self.g_total),
        ]);
        v
    }
}

/// Why a step did not finish: a non-finite loss (nothing was updated after it).
#[derive(Debug)]
pub struct NonFinite {
    pub what: String,
    pub stats: StepStats,
}

fn bce(logits: &Tensor, target: f64) -> Tensor {
    let t = logits.full_like(target);
    logits.binary_cross_entropy_with_logits::<Tensor>(&t, None, None, Reduction::Mean)
}

/// KL(N(μ, σ²) || N(0, 1)) as DM-GAN: -½ mean(1 + log σ² - μ² - σ²).
pub fn kl_loss(mu: &Tensor, logvar: &Tensor) -> Tensor {
    ((logvar + 1.0) - mu.square() - logvar.exp()).mean(Kind::Float) * -0.5
}

/// D_k's loss for reals and one caption's fakes (method.md §4, with mismatched pairs).
#[allow(clippy::assign_op_pattern)] // `+=` on tensors would be an in-place op in the graph
pub fn d_loss(d: &Discriminator, real_code: &Tensor, fake: &Tensor, sent: &Tensor) -> Tensor {
    let b = real_code.size()[0];
    let fake_code = d.code(&fake.detach());
    let real = bce(&d.uncond_logits(real_code), 1.0) + bce(&d.cond_logits(real_code, sent), 1.0);
    let mut fake_terms = bce(&d.uncond_logits(&fake_code), 0.0) + bce(&d.cond_logits(&fake_code, sent), 0.0);
    if b > 1 {
        fake_terms = fake_terms + bce(&d.cond_logits(&real_code.narrow(0, 0, b - 1), &sent.narrow(0, 1, b - 1)), 0.0);
    }
    real / 2.0 + fake_terms / 3.0
}

/// One training iteration: every D step, then the G step and the EMA update.
/// `reals`: one [B, 3, s, s] per branch in [-1, 1], on the device; `texts`: the two
/// caption slots; `z`: [B, Z]. Without `clip` (bench `--gan-only`) the CLIP terms and
/// the contrastive term are left out.
#[allow(clippy::too_many_arguments, clippy::needless_range_loop, clippy::assign_op_pattern)]
pub fn train_step(
    nets: &mut Nets,
    reals: &[Tensor],
    texts: &[TextIn; 2],
    class_ids: &Tensor,
    z: &Tensor,
    clip: Option<&ClipTerms>,
    lambda: f64,
    ema_decay: f64,
) -> std::result::Result<StepStats, NonFinite> {
    let nb = nets.ds.len();
    let mut stats = StepStats::default();
    let fakes: Vec<dmgan::GenOutput> = texts.iter().map(|t| nets.g.forward_t(z, &t.sent, &t.words, &t.pad, true)).collect();

    for k in 0..nb {
        let d = &nets.ds[k];
        let real_code = d.code(&reals[k]);
        let mut loss = Tensor::zeros([], (Kind::Float, z.device()));
        for (f, t) in fakes.iter().zip(texts) {
            loss = loss + d_loss(d, &real_code, &f.images[k], &t.sent);
        }
        let v = loss.double_value(&[]);
        stats.d.push(v);
        if !v.is_finite() {
            return Err(NonFinite { what: format!("loss/d{} became {v}", dmgan::BASE_SIZE << k), stats });
        }
        nets.opt_d[k].zero_grad();
        loss.backward();
        nets.opt_d[k].step();
    }

    // The G step: D weights get no gradient (they are not updated by it).
    nets.set_d_trainable(false);
    let dev = z.device();
    let mut total = Tensor::zeros([], (Kind::Float, dev));
    let mut adv: Vec<Tensor> = (0..nb).map(|_| Tensor::zeros([], (Kind::Float, dev))).collect();
    let mut kl = Tensor::zeros([], (Kind::Float, dev));
    let mut words = Tensor::zeros([], (Kind::Float, dev));
    let mut sentence = Tensor::zeros([], (Kind::Float, dev));
    let mut codes = Vec::new();
    for (f, t) in fakes.iter().zip(texts) {
        for k in 0..nb {
            let d = &nets.ds[k];
            let code = d.code(&f.images[k]);
            adv[k] = &adv[k] + bce(&d.uncond_logits(&code), 1.0) + bce(&d.cond_logits(&code, &t.sent), 1.0);
        }
        kl = kl + kl_loss(&f.mu, &f.logvar);
        if let Some(c) = clip {
            let s = c.smooth;
            let img = c.clip.encode_image(&clip::pixels_for_clip(&f.images[nb - 1], c.image_size));
            let w = words_loss(&img.regions, &t.words, &t.real, Some(class_ids), s.gamma1, s.gamma2, s.gamma3);
            let (s0, s1) = sentence_loss(&img.code, &t.sent, Some(class_ids), s.gamma3);
            words = words + w.loss0 + w.loss1;
            sentence = sentence + s0 + s1;
            codes.push(img.code);
        }
    }
    for a in &adv {
        total = total + a;
    }
    total = total + &kl + (&words + &sentence) * lambda;
    let contrastive = if codes.len() == 2 { nt_xent(&codes[0], &codes[1], NT_XENT_TAU) } else { Tensor::zeros([], (Kind::Float, dev)) };
    total = total + &contrastive * CONTRASTIVE_WEIGHT;
    stats.g_adv = adv.iter().map(|a| a.double_value(&[])).collect();
    stats.kl = kl.double_value(&[]);
    stats.words = words.double_value(&[]);
    stats.sentence = sentence.double_value(&[]);
    stats.contrastive = contrastive.double_value(&[]);
    stats.g_total = total.double_value(&[]);
    if !stats.g_total.is_finite() {
        nets.set_d_trainable(true);
        let what = format!("the generator loss became {}", stats.g_total);
        return Err(NonFinite { what, stats });
    }
    nets.opt_g.zero_grad();
    total.backward();
    nets.opt_g.step();
    nets.set_d_trainable(true);
    nets.ema_update(ema_decay);
    Ok(stats)
}

/// Where a run stands: the next batch to train is `batch` of epoch `epoch` after `step`
/// steps.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
struct Position {
    epoch: u64,
    batch: usize,
    step: u64,
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
    let (loaded, cfg_path) = worker::load_job_config(opts.cfg.as_deref(), opts.resume.as_deref())?;
    let c = &loaded.config;
    let gcfg = GanConfig::from_config(c).with_context(|| format!("{}", cfg_path.display()))?;
    let spec = DatasetSpec::from_config(&loaded)?;
    let train = Dataset::open(&spec, Split::Train)?;
    let _tok = Tokenizer::from_config(&loaded)?;
    let bpe = train.len() / (c.train.batch_size.max(1) as usize);
    if bpe == 0 {
        bail!("the training split has {} images, fewer than one batch of TRAIN.BATCH_SIZE {}", train.len(), c.train.batch_size);
    }
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

pub fn run(opts: &Options) -> Result<(Outcome, RunDir)> {
    device::init_torch();
    let (loaded, cfg_path) = worker::load_job_config(opts.cfg.as_deref(), opts.resume.as_deref())?;
    let mut worker = worker::start_job(opts.resume.as_deref(), opts.run_dir.as_deref(), &cfg_path, config::Job::Train.name())?;
    let dir = worker.run.dir().clone();
    let result = run_in(&loaded, opts, &mut worker.run, &worker.stop);
    worker.conclude(result).map(|outcome| (outcome, dir))
}

struct Job<'a> {
    loaded: &'a LoadedConfig,
    device: Device,
    gcfg: GanConfig,
    nets: Nets,
    clip: Clip,
    ccfg: ClipConfig,
    train: Arc<Dataset>,
    tokenizer: Arc<Tokenizer>,
    loader: LoaderConfig,
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

fn encode_texts(clip: &Clip, tok: &crate::data::TokenBatch, dev: Device) -> TextIn {
    tch::no_grad(|| {
        let t = clip.encode_text(&tok.ids.to_device(dev), &tok.mask.to_device(dev));
        TextIn::new(t.words, t.sentence, tok.mask.to_device(dev))
    })
}

fn run_in(loaded: &LoadedConfig, opts: &Options, run: &mut RunWriter, stop: &StopFlag) -> Result<(Outcome, String)> {
    let c = &loaded.config;
    let dir = run.dir().clone();
    let latest = dir.checkpoints_dir().join(LATEST);
    let resuming = latest.is_file();
    checkpoint::remove_stale_temp_files(&dir.checkpoints_dir());
    dir.write_config(&loaded.resolved_yaml())?;
    let config_hash = checkpoint::text_hash(&loaded.resolved_yaml());
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
    let loader = LoaderConfig::for_training(c, PixelMode::Gan);
    let batches_per_epoch = train.len() / loader.batch_size;
    if batches_per_epoch == 0 {
        bail!("the training split has {} images, fewer than one batch of TRAIN.BATCH_SIZE {}", train.len(), loader.batch_size);
    }
    if !c.train.b_net_d && !c.train.net_g.trim().is_empty() {
        println!("note: TRAIN.B_NET_D is false: the discriminators start fresh (they always do from a NET_G snapshot)");
    }

    run.set_message("building the networks");
    seed::seed_torch(c.clipgan.seed, &[seed::stream::INIT]);
    let mut nets = Nets::new(&gcfg, device, c.train.generator_lr, c.train.discriminator_lr);
    let mut pos = Position { epoch: 0, batch: 0, step: 0 };
    if resuming {
        let mut ck = checkpoint::load(&latest, device)?;
        check_gan_meta(&ck, &gcfg, &latest)?;
        let t = ck.tensor_map();
        nets.load_all(&t).with_context(|| format!("{} does not fit this config", latest.display()))?;
        pos = Position { epoch: ck.meta_parse("epoch")?, batch: ck.meta_parse("batch")?, step: ck.meta_parse("step")? };
        let saved_bpe: usize = ck.meta_parse("batches_per_epoch").unwrap_or(batches_per_epoch);
        if saved_bpe != batches_per_epoch && pos.batch > 0 {
            bail!("{} stopped at batch {} of {saved_bpe} per epoch, but this config gives {batches_per_epoch}; resume with the run's own config", latest.display(), pos.batch);
        }
        if ck.meta.get("config_hash").is_some_and(|h| *h != config_hash) {
            println!("note: the config differs from the one {} was written with", latest.display());
        }
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
    let mut job = Job { loaded, device, gcfg, nets, clip, ccfg, train, tokenizer, loader, batches_per_epoch, config_hash, samples };
    train_loop(&mut job, run, stop, pos)
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
    let refs: Vec<&str> = captions.iter().map(String::as_str).collect();
    let tok = tokenizer.encode_batch(&refs, c.text.words_num as usize);
    let text = encode_texts(clip, &tok, dev);
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

fn make_checkpoint(job: &Job, pos: Position, latest: bool) -> Checkpoint {
    let c = &job.loaded.config;
    let mut ck = Checkpoint::new(config::Job::Train.name());
    ck.set_meta("kind", if latest { "latest" } else { "snapshot" });
    ck.set_meta(GAN_META_KEY, job.gcfg.to_json());
    ck.set_meta("epoch", pos.epoch);
    ck.set_meta("batch", pos.batch);
    ck.set_meta("step", pos.step);
    ck.set_meta("batches_per_epoch", job.batches_per_epoch);
    ck.set_meta("seed", c.clipgan.seed);
    ck.set_meta("config_hash", &job.config_hash);
    ck.set_meta("words_num", c.text.words_num);
    ck.set_meta("clip_width", job.ccfg.joint_dim());
    ck.set_meta("created", util::unix_now());
    if latest {
        job.nets.push_all(&mut ck);
    } else {
        ck.push_var_store(EMA_G_PREFIX, &job.nets.ema_vs);
    }
    ck
}

fn save_latest(job: &Job, run: &mut RunWriter, pos: Position) -> Result<()> {
    let path = run.dir().checkpoints_dir().join(LATEST);
    checkpoint::save(&path, &make_checkpoint(job, pos, true))?;
    run.flush()?;
    run.set_checkpoint(&format!("{}/{LATEST}", crate::rundir::CHECKPOINTS_DIR))
}

fn train_loop(job: &mut Job, run: &mut RunWriter, stop: &StopFlag, mut pos: Position) -> Result<(Outcome, String)> {
    let c = &job.loaded.config;
    let max_epoch = c.train.max_epoch as u64;
    let bpe = job.batches_per_epoch;
    let mut clock = LoopClock::start(run, c, bpe, job.loader.batch_size, pos.epoch, pos.step)?;
    if pos.step == 0 {
        write_samples(job, run, 0)?;
    }
    let dev = job.device;
    let clip_terms = ClipTerms { clip: &job.clip, image_size: job.ccfg.vision.image_size, smooth: &c.train.smooth };
    let sample_every = c.clipgan.sample_every as u64;
    let done = |pos: &Position| c.clipgan.max_steps > 0 && pos.step >= c.clipgan.max_steps;

    while pos.epoch < max_epoch && !done(&pos) {
        run.set_epoch(pos.epoch as u32 + 1);
        let loader = Loader::new(job.train.clone(), job.tokenizer.clone(), job.loader.clone(), pos.epoch, pos.batch)?;
        for batch in loader {
            let batch = batch?;
            if done(&pos) {
                break;
            }
            let texts = [encode_texts(&job.clip, &batch.tokens[0], dev), encode_texts(&job.clip, &batch.tokens[1], dev)];
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
                    return Ok((Outcome::Diverged, progress::diverged(run, LATEST, step, pos.epoch + 1, &nf.what)));
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
                return stop_now(job, run, pos);
            }
            if clock.checkpoint_due() {
                save_latest(job, run, pos)?;
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
            let snap = run.dir().checkpoints_dir().join(snapshot_name(pos.epoch));
            checkpoint::save(&snap, &make_checkpoint(job, pos, false))?;
        }
        save_latest(job, run, pos)?;
        clock.checkpointed();
        if stop.is_raised() {
            return stop_now(job, run, pos);
        }
    }
    if sample_every > 0 && !pos.step.is_multiple_of(sample_every) {
        write_samples(job, run, pos.step)?;
    }
    save_latest(job, run, pos)?;
    Ok((Outcome::Finished, format!("finished: {} epochs, {} steps", pos.epoch, pos.step)))
}

fn stop_now(job: &Job, run: &mut RunWriter, pos: Position) -> Result<(Outcome, String)> {
    run.set_state(RunState::Stopping, "saving a checkpoint")?;
    save_latest(job, run, pos)?;
    Ok((Outcome::Stopped, format!("stopped at epoch {}, step {}; resume with --resume", pos.epoch + 1, pos.step)))
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
