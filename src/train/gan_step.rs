//! One DM-GAN training iteration on frozen finetuned-CLIP text features (method.md §4,
//! §6, §9): the networks with their optimizers and EMA copy ([`Nets`]), the losses and
//! [`train_step`]. Used by the `clipgan train` job (`jobs::train`) and
//! `clipgan bench train-step`.
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
use crate::config;
use crate::data::TokenBatch;
use crate::models::clip::{self, Clip};
use crate::models::dmgan::{self, d_prefix, Discriminator, GanConfig, Generator, EMA_G_PREFIX, G_PREFIX};
use crate::train::losses::{nt_xent, sentence_loss, words_loss};
use crate::train::optim::{Adam, ParamGroup};
use anyhow::{Context, Result};
use std::collections::HashMap;
use tch::{nn, Device, Kind, Reduction, Tensor};

/// Adam settings of DM-GAN (method.md §6).
pub const BETAS: (f64, f64) = (0.5, 0.999);
pub const ADAM_EPS: f64 = 1e-8;
/// Weight and temperature of the contrastive term between the two captions' fakes.
pub const CONTRASTIVE_WEIGHT: f64 = 0.2;
pub const NT_XENT_TAU: f64 = 0.5;

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
    /// The frozen CLIP's text features of a token batch, on `dev`.
    pub fn encode(clip: &Clip, tokens: &TokenBatch, dev: Device) -> TextIn {
        tch::no_grad(|| {
            let t = clip.encode_text(&tokens.ids.to_device(dev), &tokens.mask.to_device(dev));
            TextIn::new(t.words, t.sentence, tokens.mask.to_device(dev))
        })
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
#[allow(clippy::assign_op_pattern)]
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
