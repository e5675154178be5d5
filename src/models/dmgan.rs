//! DM-GAN (Zhu et al. 2019) on CLIP text features: the generator (CA_NET, init stage,
//! dynamic-memory next stages, image heads) and the three spectral-norm discriminators
//! (method.md §5). Parameter names follow DM-GAN's PyTorch modules (`ca_net.fc.weight`,
//! `h_net2.M_w.0.weight`, `img_code_s16.0.weight_orig`, ...), so counts and layouts match.
//!
//! Fixes of method.md §9 kept here: each caption's own word mask in the memory
//! addressing (true = padding gets zero weight; bugs 1 and 8) and spectral norm with the
//! u, v of each call used by that call's gradient (bug 9).
use crate::checkpoint;
use crate::config::Config;
use anyhow::{bail, Context, Result};
use std::path::Path;
use tch::nn;
use tch::{Device, Kind, Tensor};

/// The smallest image side DM-GAN generates (its init stage upsamples 4x4 four times).
pub const BASE_SIZE: i64 = 64;
/// Metadata key of GAN checkpoints holding the [`GanConfig`] as JSON.
pub const GAN_META_KEY: &str = "gan_config";
/// Name prefixes of the networks in GAN checkpoints.
pub const EMA_G_PREFIX: &str = "ema_g.";
pub const G_PREFIX: &str = "g.";
pub fn d_prefix(k: usize) -> String {
    format!("d{k}.")
}

/// The architecture of the generator and discriminators.
#[derive(Clone, Debug, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
pub struct GanConfig {
    /// Stages / image sizes: 1 (64), 2 (64, 128) or 3 (64, 128, 256).
    pub branch_num: i64,
    pub gf_dim: i64,
    pub df_dim: i64,
    pub z_dim: i64,
    pub condition_dim: i64,
    pub r_num: i64,
    /// Width of the text features (CLIP's word/sentence width, TEXT.EMBEDDING_DIM).
    pub nef: i64,
}

impl GanConfig {
    pub fn from_config(c: &Config) -> Result<GanConfig> {
        let g = GanConfig {
            branch_num: c.tree.branch_num as i64,
            gf_dim: c.gan.gf_dim as i64,
            df_dim: c.gan.df_dim as i64,
            z_dim: c.gan.z_dim as i64,
            condition_dim: c.gan.condition_dim as i64,
            r_num: c.gan.r_num as i64,
            nef: c.text.embedding_dim as i64,
        };
        if c.tree.base_size as i64 != BASE_SIZE {
            bail!("TREE.BASE_SIZE is {} but DM-GAN's first stage generates {BASE_SIZE} px images", c.tree.base_size);
        }
        g.validate()?;
        Ok(g)
    }

    pub fn validate(&self) -> Result<()> {
        if !(1..=3).contains(&self.branch_num) {
            bail!("TREE.BRANCH_NUM must be 1, 2 or 3 (got {})", self.branch_num);
        }
        use crate::config::limits::*;
        for (name, v, max) in [
            ("GAN.GF_DIM", self.gf_dim, MAX_GAN_WIDTH),
            ("GAN.DF_DIM", self.df_dim, MAX_GAN_WIDTH),
            ("GAN.Z_DIM", self.z_dim, MAX_GAN_CODE),
            ("GAN.CONDITION_DIM", self.condition_dim, MAX_GAN_CODE),
            ("TEXT.EMBEDDING_DIM", self.nef, MAX_EMBEDDING_DIM),
        ] {
            if !(1..=max as i64).contains(&v) {
                bail!("{name} must be between 1 and {max} (got {v})");
            }
        }
        if !(0..=MAX_RESIDUAL_BLOCKS as i64).contains(&self.r_num) {
            bail!("GAN.R_NUM must be between 0 and {MAX_RESIDUAL_BLOCKS} (got {})", self.r_num);
        }
        Ok(())
    }

    /// Image side of each branch: 64, 128, 256.
    pub fn sizes(&self) -> Vec<i64> {
        (0..self.branch_num).map(|i| BASE_SIZE << i).collect()
    }

    pub fn to_json(&self) -> String {
        serde_json::to_string(self).expect("GanConfig serialises")
    }

    pub fn from_json(text: &str) -> Result<GanConfig> {
        let g: GanConfig = serde_json::from_str(text).context("invalid GAN architecture metadata")?;
        g.validate()?;
        Ok(g)
    }
}

/// Orthogonal init (gain 1) of a weight of any rank, flattened to [out, rest] as
/// PyTorch's `orthogonal_`. (tch's `Init::Orthogonal` given to `var` returns the 2-D
/// matrix without reshaping it, so weights are created zero and filled here.)
fn orthogonalize(w: &Tensor) {
    let mut w = w.shallow_clone();
    nn::Init::Orthogonal { gain: 1.0 }.set(&mut w);
}

/// PyTorch's default conv bias: U(-1/sqrt(fan_in), 1/sqrt(fan_in)).
fn default_bias(fan_in: i64) -> nn::Init {
    let b = 1.0 / (fan_in as f64).sqrt();
    nn::Init::Uniform { lo: -b, up: b }
}

fn conv2d(p: nn::Path, cin: i64, cout: i64, k: i64, stride: i64, pad: i64, bias: bool) -> nn::Conv2D {
    let cfg = nn::ConvConfig {
        stride,
        padding: pad,
        bias,
        ws_init: nn::Init::Const(0.0),
        bs_init: default_bias(cin * k * k),
        ..Default::default()
    };
    let c = nn::conv2d(p, cin, cout, k, cfg);
    orthogonalize(&c.ws);
    c
}

fn conv1x1_1d(p: nn::Path, cin: i64, cout: i64) -> nn::Conv1D {
    let cfg = nn::ConvConfig { ws_init: nn::Init::Const(0.0), bs_init: default_bias(cin), ..Default::default() };
    let c = nn::conv1d(p, cin, cout, 1, cfg);
    orthogonalize(&c.ws);
    c
}

fn linear(p: nn::Path, cin: i64, cout: i64, bias: bool) -> nn::Linear {
    let l = nn::linear(p, cin, cout, nn::LinearConfig { ws_init: nn::Init::Const(0.0), bs_init: Some(nn::Init::Const(0.0)), bias });
    orthogonalize(&l.ws);
    l
}

fn bn2d(p: nn::Path, c: i64) -> nn::BatchNorm {
    nn::batch_norm2d(p, c, bn_config())
}

fn bn_config() -> nn::BatchNormConfig {
    nn::BatchNormConfig { ws_init: nn::Init::Randn { mean: 1.0, stdev: 0.02 }, bs_init: nn::Init::Const(0.0), ..Default::default() }
}

/// Nearest x2 -> conv3x3 (to 2·out, no bias) -> BN -> GLU.
#[derive(Debug)]
struct UpBlock {
    conv: nn::Conv2D,
    bn: nn::BatchNorm,
}

impl UpBlock {
    fn new(p: nn::Path, cin: i64, cout: i64) -> UpBlock {
        UpBlock { conv: conv2d(&p / "1", cin, cout * 2, 3, 1, 1, false), bn: bn2d(&p / "2", cout * 2) }
    }

    fn forward_t(&self, x: &Tensor, train: bool) -> Tensor {
        let s = x.size();
        let up = x.upsample_nearest2d([s[2] * 2, s[3] * 2], None, None);
        up.apply(&self.conv).apply_t(&self.bn, train).glu(1)
    }
}

/// conv3x3 (c -> 2c) -> BN -> GLU -> conv3x3 (c -> c) -> BN, plus the input.
#[derive(Debug)]
struct ResBlock {
    c1: nn::Conv2D,
    b1: nn::BatchNorm,
    c2: nn::Conv2D,
    b2: nn::BatchNorm,
}

impl ResBlock {
    fn new(p: nn::Path, c: i64) -> ResBlock {
        let b = &p / "block";
        ResBlock {
            c1: conv2d(&b / "0", c, c * 2, 3, 1, 1, false),
            b1: bn2d(&b / "1", c * 2),
            c2: conv2d(&b / "3", c, c, 3, 1, 1, false),
            b2: bn2d(&b / "4", c),
        }
    }

    fn forward_t(&self, x: &Tensor, train: bool) -> Tensor {
        x.apply(&self.c1).apply_t(&self.b1, train).glu(1).apply(&self.c2).apply_t(&self.b2, train) + x
    }
}

/// Conditioning augmentation: Linear(nef -> 4 ncf) -> GLU -> (μ, log σ²).
#[derive(Debug)]
struct CaNet {
    fc: nn::Linear,
    ncf: i64,
}

/// Init stage: [c; z] -> Linear (no bias) -> BN1d -> GLU -> 16 ngf x 4 x 4 -> four upBlocks.
#[derive(Debug)]
struct InitStage {
    fc: nn::Linear,
    bn: nn::BatchNorm,
    ups: Vec<UpBlock>,
    channels: i64,
}

impl InitStage {
    fn new(p: nn::Path, ngf16: i64, in_dim: i64) -> InitStage {
        let fc = linear(&p / "fc" / "0", in_dim, ngf16 * 4 * 4 * 2, false);
        let bn = nn::batch_norm1d(&p / "fc" / "1", ngf16 * 4 * 4 * 2, bn_config());
        let ups = (0..4).map(|i| UpBlock::new(&p / format!("upsample{}", i + 1), ngf16 >> i, ngf16 >> (i + 1))).collect();
        InitStage { fc, bn, ups, channels: ngf16 }
    }

    fn forward_t(&self, cz: &Tensor, train: bool) -> Tensor {
        let mut x = cz.apply(&self.fc).apply_t(&self.bn, train).glu(1).view([-1, self.channels, 4, 4]);
        for u in &self.ups {
            x = u.forward_t(&x, train);
        }
        x
    }
}

/// A dynamic-memory stage (method.md §5): memory writing with its gate, key/value memory,
/// masked addressing, response gate, residual blocks, upsampling.
#[derive(Debug)]
struct NextStage {
    a: nn::Linear,
    b: nn::Linear,
    m_r: nn::Conv1D,
    m_w: nn::Conv1D,
    key: nn::Conv1D,
    value: nn::Conv1D,
    response_gate: nn::Conv2D,
    residual: Vec<ResBlock>,
    upsample: UpBlock,
}

impl NextStage {
    fn new(p: nn::Path, ngf: i64, nef: i64, r_num: i64) -> NextStage {
        NextStage {
            a: linear(&p / "A", nef, 1, false),
            b: linear(&p / "B", ngf, 1, false),
            m_r: conv1x1_1d(&p / "M_r" / "0", ngf, ngf * 2),
            m_w: conv1x1_1d(&p / "M_w" / "0", nef, ngf * 2),
            key: conv1x1_1d(&p / "key" / "0", ngf * 2, ngf),
            value: conv1x1_1d(&p / "value" / "0", ngf * 2, ngf),
            response_gate: conv2d(&p / "response_gate" / "0", ngf * 2, 1, 1, 1, 0, true),
            residual: (0..r_num).map(|i| ResBlock::new(&p / "residual" / i, ngf * 2)).collect(),
            upsample: UpBlock::new(&p / "upsample", ngf * 2, ngf),
        }
    }

    /// h: [B, ngf, H, W]; words: [B, nef, L]; pad: [B, L] Bool (true = padding).
    /// Returns the next feature map [B, ngf, 2H, 2W] and the attention [B, H·W, L].
    fn forward_t(&self, h: &Tensor, words: &Tensor, pad: &Tensor, train: bool) -> (Tensor, Tensor) {
        let (b, c, hh, ww) = h.size4().expect("feature map is [B, C, H, W]");
        // Memory writing: gate between each word and the (detached) mean image feature.
        let r = h.mean_dim([2i64, 3].as_slice(), false, Kind::Float).detach(); // [B, ngf]
        let g1 = words.transpose(1, 2).apply(&self.a).transpose(1, 2); // [B, 1, L]
        let g2 = r.apply(&self.b).unsqueeze(2); // [B, 1, 1]
        let gate = (g1 + g2).sigmoid();
        let m_w = words.apply(&self.m_w).relu(); // [B, 2ngf, L]
        let m_r = r.unsqueeze(2).apply(&self.m_r).relu(); // [B, 2ngf, 1], the same for every word
        let memory: Tensor = m_w * &gate + m_r * (gate.ones_like() - &gate);
        let key = memory.apply(&self.key).relu(); // [B, ngf, L]
        let value = memory.apply(&self.value).relu();
        // Addressing: each pixel over its own caption's real words (mask per caption).
        let q = h.view([b, c, hh * ww]).transpose(1, 2); // [B, HW, ngf]
        let scores = q.bmm(&key).masked_fill(&pad.unsqueeze(1), f64::NEG_INFINITY);
        let beta = scores.softmax(-1, Kind::Float); // [B, HW, L]
        let o = value.bmm(&beta.transpose(1, 2)).view([b, c, hh, ww]);
        let g = Tensor::cat(&[h, &o], 1).apply(&self.response_gate).sigmoid();
        let h2: Tensor = h * (g.ones_like() - &g) + o * &g;
        let mut x = Tensor::cat(&[&h2, &h2], 1);
        for rb in &self.residual {
            x = rb.forward_t(&x, train);
        }
        (self.upsample.forward_t(&x, train), beta)
    }
}

/// What [`Generator::forward`] returns.
#[derive(Debug)]
pub struct GenOutput {
    /// One per branch: [B, 3, 64·2^k, 64·2^k] in [-1, 1].
    pub images: Vec<Tensor>,
    /// [B, ncf] each.
    pub mu: Tensor,
    pub logvar: Tensor,
    /// Per next stage: [B, H·W, L] memory addressing weights.
    pub attention: Vec<Tensor>,
}

/// DM-GAN's G_NET.
#[derive(Debug)]
pub struct Generator {
    ca: CaNet,
    init: InitStage,
    next: Vec<NextStage>,
    img: Vec<nn::Conv2D>,
    pub cfg: GanConfig,
}

impl Generator {
    pub fn new(vs: nn::Path, cfg: &GanConfig) -> Generator {
        let (ngf, ncf) = (cfg.gf_dim, cfg.condition_dim);
        let ca = CaNet { fc: linear(&vs / "ca_net" / "fc", cfg.nef, ncf * 4, true), ncf };
        let init = InitStage::new(&vs / "h_net1", ngf * 16, ncf + cfg.z_dim);
        let next = (1..cfg.branch_num).map(|k| NextStage::new(&vs / format!("h_net{}", k + 1), ngf, cfg.nef, cfg.r_num)).collect();
        let img = (0..cfg.branch_num).map(|k| conv2d(&vs / format!("img_net{}", k + 1) / "img" / "0", ngf, 3, 3, 1, 1, false)).collect();
        Generator { ca, init, next, img, cfg: cfg.clone() }
    }

    /// Evaluation mode (BatchNorm running statistics); see [`Generator::forward_t`].
    pub fn forward(&self, z: &Tensor, sent: &Tensor, words: &Tensor, mask: &Tensor) -> GenOutput {
        self.forward_t(z, sent, words, mask, false)
    }

    /// z: [B, Z]; sent: [B, nef]; words: [B, nef, L]; mask: [B, L] Bool, true = padding.
    /// The conditioning noise ε is drawn from libtorch's generator.
    pub fn forward_t(&self, z: &Tensor, sent: &Tensor, words: &Tensor, mask: &Tensor, train: bool) -> GenOutput {
        self.forward_eps(z, None, sent, words, mask, train)
    }

    /// [`Generator::forward_t`] with the conditioning noise ε [B, ncf] given (None: drawn).
    pub fn forward_eps(&self, z: &Tensor, eps: Option<&Tensor>, sent: &Tensor, words: &Tensor, mask: &Tensor, train: bool) -> GenOutput {
        let x = sent.apply(&self.ca.fc).glu(1);
        let mu = x.narrow(1, 0, self.ca.ncf);
        let logvar = x.narrow(1, self.ca.ncf, self.ca.ncf);
        let eps = match eps {
            Some(e) => e.shallow_clone(),
            None => mu.randn_like(),
        };
        let c = &mu + eps * (&logvar * 0.5).exp();
        let pad = mask.to_device(words.device()).to_kind(Kind::Bool);
        let mut h = self.init.forward_t(&Tensor::cat(&[&c, z], 1), train);
        let mut images = vec![h.apply(&self.img[0]).tanh()];
        let mut attention = Vec::new();
        for (k, stage) in self.next.iter().enumerate() {
            let (h2, att) = stage.forward_t(&h, words, &pad, train);
            h = h2;
            images.push(h.apply(&self.img[k + 1]).tanh());
            attention.push(att);
        }
        GenOutput { images, mu, logvar, attention }
    }
}

/// A conv with PyTorch `spectral_norm` semantics: parameter `weight_orig`, buffers
/// `weight_u`, `weight_v`; each call does one power iteration, stores u, v and divides
/// by σ = uᵀ W v computed with that call's own (fresh) u, v.
#[derive(Debug)]
struct SnConv {
    weight: Tensor,
    bias: Tensor,
    u: Tensor,
    v: Tensor,
    stride: i64,
    pad: i64,
}

fn normalize(x: &Tensor) -> Tensor {
    x / x.norm().clamp_min(1e-12)
}

impl SnConv {
    fn new(p: nn::Path, cin: i64, cout: i64, k: i64, stride: i64, pad: i64) -> SnConv {
        let weight = p.var("weight_orig", &[cout, cin, k, k], nn::Init::Const(0.0));
        orthogonalize(&weight);
        let bias = p.var("bias", &[cout], default_bias(cin * k * k));
        let u = p.zeros_no_train("weight_u", &[cout]);
        let v = p.zeros_no_train("weight_v", &[cin * k * k]);
        tch::no_grad(|| {
            u.shallow_clone().copy_(&normalize(&Tensor::randn([cout], (Kind::Float, u.device()))));
            v.shallow_clone().copy_(&normalize(&Tensor::randn([cin * k * k], (Kind::Float, v.device()))));
        });
        SnConv { weight, bias, u, v, stride, pad }
    }

    fn forward(&self, x: &Tensor) -> Tensor {
        let cout = self.weight.size()[0];
        let wm = self.weight.view([cout, -1]);
        let (u, v) = tch::no_grad(|| {
            let w = wm.detach();
            let v = normalize(&w.tr().mv(&self.u));
            let u = normalize(&w.mv(&v));
            self.u.shallow_clone().copy_(&u);
            self.v.shallow_clone().copy_(&v);
            (u, v)
        });
        let sigma = u.dot(&wm.mv(&v));
        let w = &self.weight / sigma;
        x.conv2d(&w, Some(&self.bias), [self.stride, self.stride], [self.pad, self.pad], [1, 1], 1)
    }
}

/// LeakyReLU(0.2), equal to `F.leaky_relu(x, 0.2)` in value (up to the sign of a zero)
/// and, bit for bit, in gradient: relu(x) plus the slope times the negative part. tch's `leaky_relu` has no slope argument (its
/// generator drops defaulted scalars); `prelu` with a constant slope gives the same
/// values but its backward, which also computes the slope's gradient in a scalar loop,
/// made it a few percent of a whole DM-GAN training step on CPU.
fn lrelu(x: &Tensor) -> Tensor {
    let r = x.relu();
    &r + (x - &r) * LRELU_SLOPE
}

/// DM-GAN's LeakyReLU slope in the discriminators.
const LRELU_SLOPE: f64 = 0.2;

/// D_GET_LOGITS: unconditional (outlogits on the image code) or conditional (sentence
/// code tiled 4x4, concatenated, SN conv3x3 + LeakyReLU, outlogits).
#[derive(Debug)]
struct Logits {
    joint: Option<SnConv>,
    out: nn::Conv2D,
}

impl Logits {
    fn new(p: nn::Path, ndf: i64, nef: i64, cond: bool) -> Logits {
        let joint = cond.then(|| SnConv::new(&p / "jointConv" / "0", ndf * 8 + nef, ndf * 8, 3, 1, 1));
        Logits { joint, out: conv2d(&p / "outlogits" / "0", ndf * 8, 1, 4, 4, 0, true) }
    }
}

/// One of DM-GAN's D_NET64/128/256 with spectral norm.
#[derive(Debug)]
pub struct Discriminator {
    /// Stride-2 SN convs (with LeakyReLU) from the image down to 4x4.
    down: Vec<SnConv>,
    /// SN conv3x3s back to 8 ndf (with LeakyReLU).
    back: Vec<SnConv>,
    uncond: Logits,
    cond: Logits,
    nef: i64,
}

/// Logits of a discriminator call.
#[derive(Debug)]
pub struct DOut {
    /// [B] unconditional logits.
    pub uncond: Tensor,
    /// [B] conditional logits (with the given sentence codes).
    pub cond: Tensor,
}

impl Discriminator {
    /// The discriminator of branch `k` (0: 64 px, 1: 128 px, 2: 256 px).
    pub fn new(vs: nn::Path, cfg: &GanConfig, k: usize) -> Discriminator {
        let ndf = cfg.df_dim;
        let s16 = &vs / "img_code_s16";
        let mut down = vec![
            SnConv::new(&s16 / "0", 3, ndf, 4, 2, 1),
            SnConv::new(&s16 / "2", ndf, ndf * 2, 4, 2, 1),
            SnConv::new(&s16 / "4", ndf * 2, ndf * 4, 4, 2, 1),
            SnConv::new(&s16 / "6", ndf * 4, ndf * 8, 4, 2, 1),
        ];
        let mut back = Vec::new();
        if k >= 1 {
            down.push(SnConv::new(&vs / "img_code_s32" / "0", ndf * 8, ndf * 16, 4, 2, 1));
        }
        if k == 1 {
            back.push(SnConv::new(&vs / "img_code_s32_1" / "0", ndf * 16, ndf * 8, 3, 1, 1));
        }
        if k >= 2 {
            down.push(SnConv::new(&vs / "img_code_s64" / "0", ndf * 16, ndf * 32, 4, 2, 1));
            back.push(SnConv::new(&vs / "img_code_s64_1" / "0", ndf * 32, ndf * 16, 3, 1, 1));
            back.push(SnConv::new(&vs / "img_code_s64_2" / "0", ndf * 16, ndf * 8, 3, 1, 1));
        }
        Discriminator {
            down,
            back,
            uncond: Logits::new(&vs / "UNCOND_DNET", ndf, cfg.nef, false),
            cond: Logits::new(&vs / "COND_DNET", ndf, cfg.nef, true),
            nef: cfg.nef,
        }
    }

    /// The 8 ndf x 4 x 4 image code of images in [-1, 1].
    pub fn code(&self, x: &Tensor) -> Tensor {
        let mut h = x.shallow_clone();
        for c in self.down.iter().chain(&self.back) {
            h = lrelu(&c.forward(&h));
        }
        h
    }

    /// Unconditional logits of image codes: [B].
    pub fn uncond_logits(&self, code: &Tensor) -> Tensor {
        code.apply(&self.uncond.out).view([-1])
    }

    /// Conditional logits of image codes with sentence codes [B, nef]: [B].
    pub fn cond_logits(&self, code: &Tensor, sent: &Tensor) -> Tensor {
        let s = code.size();
        let c = sent.view([s[0], self.nef, 1, 1]).expand([s[0], self.nef, s[2], s[3]], false);
        let joint = self.cond.joint.as_ref().expect("the conditional head has a joint conv");
        let h = lrelu(&joint.forward(&Tensor::cat(&[code, &c], 1)));
        h.apply(&self.cond.out).view([-1])
    }

    pub fn forward(&self, x: &Tensor, sent: &Tensor) -> DOut {
        let code = self.code(x);
        DOut { uncond: self.uncond_logits(&code), cond: self.cond_logits(&code, sent) }
    }
}

/// Trainable parameters of a VarStore (spectral-norm u, v and BN running statistics
/// are buffers and not counted).
pub fn count_parameters(vs: &nn::VarStore) -> i64 {
    vs.trainable_variables().iter().map(|t| t.numel() as i64).sum()
}

/// Each network's name and parameter count, built on the CPU from the config alone.
pub fn parameter_counts(cfg: &GanConfig) -> Vec<(String, i64)> {
    // No initialisation cost worth avoiding: orthogonal init of the largest layers is a
    // QR of a few thousand columns.
    let _guard = tch::no_grad_guard();
    let vs = nn::VarStore::new(Device::Cpu);
    let _g = Generator::new(vs.root(), cfg);
    let mut out = vec![("G".to_string(), count_parameters(&vs))];
    for (k, size) in cfg.sizes().iter().enumerate() {
        let vs = nn::VarStore::new(Device::Cpu);
        let _d = Discriminator::new(vs.root(), cfg, k);
        out.push((format!("D{size}"), count_parameters(&vs)));
    }
    out
}

/// The model summary `clipgan model summary` and `clipgan train --dry-run` print.
pub fn summary(cfg: &GanConfig) -> String {
    let mut s = format!(
        "DM-GAN: BRANCH_NUM {} (images {}), GF_DIM {}, DF_DIM {}, Z_DIM {}, CONDITION_DIM {}, R_NUM {}, text width {}\n",
        cfg.branch_num,
        cfg.sizes().iter().map(|x| format!("{x}px")).collect::<Vec<_>>().join(", "),
        cfg.gf_dim,
        cfg.df_dim,
        cfg.z_dim,
        cfg.condition_dim,
        cfg.r_num,
        cfg.nef
    );
    let counts = parameter_counts(cfg);
    let total: i64 = counts.iter().map(|(_, n)| n).sum();
    for (name, n) in &counts {
        s.push_str(&format!("  {name:<5} {:>14} parameters\n", group_digits(*n)));
    }
    s.push_str(&format!("  total {:>14} parameters (trainable; spectral-norm u/v and BN statistics are buffers)\n", group_digits(total)));
    s
}

pub fn group_digits(n: i64) -> String {
    let s = n.abs().to_string();
    let mut out = String::new();
    for (i, ch) in s.chars().enumerate() {
        if i > 0 && (s.len() - i).is_multiple_of(3) {
            out.push(',');
        }
        out.push(ch);
    }
    if n < 0 {
        format!("-{out}")
    } else {
        out
    }
}

/// Load the EMA generator from `path`: a `clipgan train` run folder (its
/// `checkpoints/latest.safetensors`), a GAN `latest` checkpoint, or a
/// `netG_epoch_NNNN.safetensors` snapshot. Returns it in a VarStore on `device`.
pub fn load_generator(path: &Path, device: Device) -> Result<(nn::VarStore, Generator, GanConfig)> {
    let file = if path.is_dir() {
        let latest = path.join(crate::rundir::CHECKPOINTS_DIR).join("latest.safetensors");
        if !latest.is_file() {
            bail!("{} is a folder without checkpoints/latest.safetensors (not a `clipgan train` run folder)", path.display());
        }
        latest
    } else if path.is_file() {
        path.to_path_buf()
    } else {
        bail!("generator checkpoint {} does not exist", path.display());
    };
    let mut ck =
        checkpoint::load(&file, Device::Cpu).with_context(|| format!("cannot read the generator checkpoint {}", file.display()))?;
    let text = ck
        .meta
        .get(GAN_META_KEY)
        .with_context(|| {
            format!("{} is not a DM-GAN checkpoint (no `{GAN_META_KEY}` metadata; job {:?})", file.display(), ck.meta.get("job"))
        })?
        .clone();
    let cfg = GanConfig::from_json(&text).with_context(|| format!("{}: bad generator architecture", file.display()))?;
    let tensors = ck.tensor_map();
    let vs = nn::VarStore::new(device);
    let g = Generator::new(vs.root(), &cfg);
    checkpoint::load_var_store(&vs, &tensors, EMA_G_PREFIX, |_| false)
        .with_context(|| format!("{}: the EMA generator weights do not fit", file.display()))?;
    Ok((vs, g, cfg))
}

#[cfg(test)]
mod tests {
    use super::*;

    /// `lrelu` equals LeakyReLU(0.2) in value and gradient (prelu with a
    /// constant 0.2 slope is torch's own LeakyReLU arithmetic: x > 0 ? x : 0.2 x).
    #[test]
    fn lrelu_is_leaky_relu_exactly() {
        let mut vals: Vec<f32> = vec![0.0, -0.0, 1e-38, -1e-38, 1e-45, -1e-45, 3.5, -3.5, f32::MAX, f32::MIN];
        let mut z: u32 = 1;
        for _ in 0..10_000 {
            z = z.wrapping_mul(1_664_525).wrapping_add(1_013_904_223);
            vals.push(f32::from_bits(z & 0x7fff_ffff | (z & 1) << 31).clamp(-1e30, 1e30));
        }
        let vals: Vec<f32> = vals.into_iter().filter(|v| v.is_finite()).collect();
        let x = Tensor::from_slice(&vals).set_requires_grad(true);
        let y = lrelu(&x);
        y.sum(Kind::Float).backward();
        let x2 = Tensor::from_slice(&vals).set_requires_grad(true);
        let y2 = x2.prelu(&Tensor::from_slice(&[LRELU_SLOPE as f32]));
        y2.sum(Kind::Float).backward();
        // Values compare equal (only the sign of a zero result can differ: relu gives +0
        // where LeakyReLU keeps -0); gradients are identical bit for bit.
        assert_eq!(Vec::<f32>::try_from(&y).unwrap(), Vec::<f32>::try_from(&y2).unwrap(), "values");
        let bits = |t: &Tensor| Vec::<f32>::try_from(t).unwrap().into_iter().map(f32::to_bits).collect::<Vec<_>>();
        assert_eq!(bits(&x.grad()), bits(&x2.grad()), "gradients");
    }
}
