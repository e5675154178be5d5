//! CLIP (ViT image tower + causal text transformer) with HuggingFace `CLIPModel`
//! parameter names, plus the seed's `linear_subr` for region features (method.md §3).
//!
//! Features (method.md §3), B batch, L tokens, R regions, D = text width, P = projection:
//! - words: the text tower's last_hidden_state (after `final_layer_norm`), [B, D, L]
//! - sentence: `text_projection` of the hidden state at the end-of-text token, [B, P]
//! - regions: `linear_subr` of the vision last_hidden_state (before `post_layernorm`),
//!   CLS dropped, [B, D, R]
//! - image code: `visual_projection(post_layernorm(CLS))`, [B, P]
//!
//! Weights load from a HuggingFace folder (`config.json` + `model.safetensors`, any CLIP
//! size), a bare `.safetensors` (architecture from a preset), a hub name found in the
//! local HuggingFace cache, or a clipgan finetuning checkpoint; see [`load_clip`].
use crate::checkpoint::{self, NamedTensors};
use anyhow::{bail, Context, Result};
use serde_json::{json, Value};
use std::collections::HashMap;
use std::path::{Path, PathBuf};
use tch::nn::{self, Module};
use tch::{Device, Kind, Tensor};

/// CLIP's pixel normalisation (method.md §3).
pub const CLIP_MEAN: [f64; 3] = [0.481_454_66, 0.457_827_5, 0.408_210_73];
pub const CLIP_STD: [f64; 3] = [0.268_629_55, 0.261_302_6, 0.275_777_1];

/// Prefix of the CLIP weights (and `linear_subr`) inside clipgan checkpoints.
pub const CHECKPOINT_PREFIX: &str = "clip.";
/// Checkpoint metadata key holding the architecture (a HuggingFace `config.json` text).
pub const CONFIG_META_KEY: &str = "clip_config";

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Activation {
    /// x · σ(1.702 x): OpenAI CLIP.
    QuickGelu,
    /// Exact (erf) GELU.
    Gelu,
    /// tanh-approximated GELU (`gelu_new`, `gelu_pytorch_tanh`).
    GeluTanh,
}

impl Activation {
    fn parse(s: &str) -> Result<Activation> {
        Ok(match s {
            "quick_gelu" => Activation::QuickGelu,
            "gelu" => Activation::Gelu,
            "gelu_new" | "gelu_pytorch_tanh" | "gelu_fast" => Activation::GeluTanh,
            other => bail!("unsupported hidden_act {other:?} (supported: quick_gelu, gelu, gelu_new)"),
        })
    }

    fn name(self) -> &'static str {
        match self {
            Activation::QuickGelu => "quick_gelu",
            Activation::Gelu => "gelu",
            Activation::GeluTanh => "gelu_new",
        }
    }

    fn apply(self, x: &Tensor) -> Tensor {
        match self {
            Activation::QuickGelu => x * (x * 1.702).sigmoid(),
            Activation::Gelu => x.gelu("none"),
            Activation::GeluTanh => x.gelu("tanh"),
        }
    }
}

#[derive(Clone, Debug, PartialEq)]
pub struct ClipTextConfig {
    pub vocab_size: i64,
    pub hidden_size: i64,
    pub intermediate_size: i64,
    pub num_hidden_layers: i64,
    pub num_attention_heads: i64,
    /// Longest token sequence (CLIP: 77); WORDS_NUM may not exceed it.
    pub max_position_embeddings: i64,
    pub hidden_act: Activation,
    pub layer_norm_eps: f64,
}

#[derive(Clone, Debug, PartialEq)]
pub struct ClipVisionConfig {
    pub hidden_size: i64,
    pub intermediate_size: i64,
    pub num_hidden_layers: i64,
    pub num_attention_heads: i64,
    pub image_size: i64,
    pub patch_size: i64,
    pub num_channels: i64,
    pub hidden_act: Activation,
    pub layer_norm_eps: f64,
}

#[derive(Clone, Debug, PartialEq)]
pub struct ClipConfig {
    pub text: ClipTextConfig,
    pub vision: ClipVisionConfig,
    /// Width of the sentence and image codes (P).
    pub projection_dim: i64,
    /// Initial `logit_scale` (ln(1/0.07)).
    pub logit_scale_init: f64,
}

impl ClipTextConfig {
    /// HuggingFace's `CLIPTextConfig` defaults (= ViT-B/32's text tower).
    fn hf_default() -> ClipTextConfig {
        ClipTextConfig {
            vocab_size: 49_408,
            hidden_size: 512,
            intermediate_size: 2048,
            num_hidden_layers: 12,
            num_attention_heads: 8,
            max_position_embeddings: 77,
            hidden_act: Activation::QuickGelu,
            layer_norm_eps: 1e-5,
        }
    }
}

impl ClipVisionConfig {
    /// HuggingFace's `CLIPVisionConfig` defaults (= ViT-B/32's image tower).
    fn hf_default() -> ClipVisionConfig {
        ClipVisionConfig {
            hidden_size: 768,
            intermediate_size: 3072,
            num_hidden_layers: 12,
            num_attention_heads: 12,
            image_size: 224,
            patch_size: 32,
            num_channels: 3,
            hidden_act: Activation::QuickGelu,
            layer_norm_eps: 1e-5,
        }
    }

    /// Patches per side.
    pub fn grid(&self) -> i64 {
        self.image_size / self.patch_size
    }

    /// Region features per image (R = grid²).
    pub fn num_regions(&self) -> i64 {
        self.grid() * self.grid()
    }
}

/// Names accepted by [`ClipConfig::preset`] (kept equal to `config::CLIP_PRESETS`).
pub const PRESETS: &[&str] = &["vit-b-32", "vit-b-16", "vit-l-14", "small", "tiny"];

impl ClipConfig {
    /// An architecture by name: the published `vit-b-32`, `vit-b-16`, `vit-l-14`, or the
    /// CPU presets `small` (the demo: 64 px, patch 8, width 128) and `tiny` (tests:
    /// 32 px, patch 8, width 32). All use CLIP's 49,408-token vocabulary.
    pub fn preset(name: &str) -> Result<ClipConfig> {
        let t = ClipTextConfig::hf_default();
        let v = ClipVisionConfig::hf_default();
        let small = |w: i64, layers: i64, heads: i64, image: i64| ClipConfig {
            text: ClipTextConfig {
                hidden_size: w,
                intermediate_size: 4 * w,
                num_hidden_layers: layers,
                num_attention_heads: heads,
                ..t.clone()
            },
            vision: ClipVisionConfig {
                hidden_size: w,
                intermediate_size: 4 * w,
                num_hidden_layers: layers,
                num_attention_heads: heads,
                image_size: image,
                patch_size: 8,
                ..v.clone()
            },
            projection_dim: w,
            logit_scale_init: 2.6592,
        };
        let cfg = match name {
            "vit-b-32" => ClipConfig { text: t, vision: v, projection_dim: 512, logit_scale_init: 2.6592 },
            "vit-b-16" => {
                ClipConfig { text: t, vision: ClipVisionConfig { patch_size: 16, ..v }, projection_dim: 512, logit_scale_init: 2.6592 }
            }
            "vit-l-14" => ClipConfig {
                text: ClipTextConfig { hidden_size: 768, intermediate_size: 3072, num_attention_heads: 12, ..t },
                vision: ClipVisionConfig {
                    hidden_size: 1024,
                    intermediate_size: 4096,
                    num_hidden_layers: 24,
                    num_attention_heads: 16,
                    patch_size: 14,
                    ..v
                },
                projection_dim: 768,
                logit_scale_init: 2.6592,
            },
            "small" => small(128, 4, 4, 64),
            "tiny" => small(32, 2, 2, 32),
            other => bail!("unknown CLIP preset {other:?} (known: {})", PRESETS.join(", ")),
        };
        cfg.validate()?;
        Ok(cfg)
    }

    /// The architecture of a HuggingFace `config.json` (CLIPModel). Absent fields take
    /// HuggingFace's defaults; the older `text_config_dict`/`vision_config_dict` override
    /// `text_config`/`vision_config` as in transformers.
    pub fn from_hf_json(path: &Path) -> Result<ClipConfig> {
        let text = std::fs::read_to_string(path).with_context(|| format!("cannot read {}", path.display()))?;
        ClipConfig::from_hf_json_str(&text).with_context(|| format!("{} is not a usable CLIP config.json", path.display()))
    }

    pub fn from_hf_json_str(text: &str) -> Result<ClipConfig> {
        let v: Value = serde_json::from_str(text).context("invalid JSON")?;
        if !v.is_object() {
            bail!("expected a JSON object");
        }
        if let Some(mt) = v.get("model_type").and_then(Value::as_str) {
            if mt != "clip" {
                bail!("model_type is {mt:?}, expected \"clip\"");
            }
        }
        let sections = |a: &str, b: &str| -> Vec<&serde_json::Map<String, Value>> {
            [v.get(a), v.get(b)].into_iter().flatten().filter_map(Value::as_object).collect()
        };
        let int = |secs: &[&serde_json::Map<String, Value>], key: &str, default: i64| -> Result<i64> {
            let mut out = default;
            for s in secs {
                if let Some(x) = s.get(key).filter(|x| !x.is_null()) {
                    out = x.as_i64().with_context(|| format!("{key} must be an integer, got {x}"))?;
                }
            }
            Ok(out)
        };
        let float = |secs: &[&serde_json::Map<String, Value>], key: &str, default: f64| -> Result<f64> {
            let mut out = default;
            for s in secs {
                if let Some(x) = s.get(key).filter(|x| !x.is_null()) {
                    out = x.as_f64().with_context(|| format!("{key} must be a number, got {x}"))?;
                }
            }
            Ok(out)
        };
        let act = |secs: &[&serde_json::Map<String, Value>]| -> Result<Activation> {
            let mut out = Activation::QuickGelu;
            for s in secs {
                if let Some(x) = s.get("hidden_act").and_then(Value::as_str) {
                    out = Activation::parse(x)?;
                }
            }
            Ok(out)
        };
        let ts = sections("text_config", "text_config_dict");
        let vs = sections("vision_config", "vision_config_dict");
        let (td, vd) = (ClipTextConfig::hf_default(), ClipVisionConfig::hf_default());
        let cfg = ClipConfig {
            text: ClipTextConfig {
                vocab_size: int(&ts, "vocab_size", td.vocab_size)?,
                hidden_size: int(&ts, "hidden_size", td.hidden_size)?,
                intermediate_size: int(&ts, "intermediate_size", td.intermediate_size)?,
                num_hidden_layers: int(&ts, "num_hidden_layers", td.num_hidden_layers)?,
                num_attention_heads: int(&ts, "num_attention_heads", td.num_attention_heads)?,
                max_position_embeddings: int(&ts, "max_position_embeddings", td.max_position_embeddings)?,
                hidden_act: act(&ts)?,
                layer_norm_eps: float(&ts, "layer_norm_eps", td.layer_norm_eps)?,
            },
            vision: ClipVisionConfig {
                hidden_size: int(&vs, "hidden_size", vd.hidden_size)?,
                intermediate_size: int(&vs, "intermediate_size", vd.intermediate_size)?,
                num_hidden_layers: int(&vs, "num_hidden_layers", vd.num_hidden_layers)?,
                num_attention_heads: int(&vs, "num_attention_heads", vd.num_attention_heads)?,
                image_size: int(&vs, "image_size", vd.image_size)?,
                patch_size: int(&vs, "patch_size", vd.patch_size)?,
                num_channels: int(&vs, "num_channels", vd.num_channels)?,
                hidden_act: act(&vs)?,
                layer_norm_eps: float(&vs, "layer_norm_eps", vd.layer_norm_eps)?,
            },
            projection_dim: v.get("projection_dim").and_then(Value::as_i64).unwrap_or(512),
            logit_scale_init: v.get("logit_scale_init_value").and_then(Value::as_f64).unwrap_or(2.6592),
        };
        cfg.validate()?;
        Ok(cfg)
    }

    /// This architecture as a HuggingFace `config.json` (what clipgan checkpoints store,
    /// and what [`Self::from_hf_json_str`] reads back).
    pub fn to_hf_json(&self) -> String {
        let (t, v) = (&self.text, &self.vision);
        let j = json!({
            "architectures": ["CLIPModel"],
            "model_type": "clip",
            "projection_dim": self.projection_dim,
            "logit_scale_init_value": self.logit_scale_init,
            "text_config": {
                "vocab_size": t.vocab_size, "hidden_size": t.hidden_size, "intermediate_size": t.intermediate_size,
                "num_hidden_layers": t.num_hidden_layers, "num_attention_heads": t.num_attention_heads,
                "max_position_embeddings": t.max_position_embeddings, "hidden_act": t.hidden_act.name(),
                "layer_norm_eps": t.layer_norm_eps, "projection_dim": self.projection_dim,
            },
            "vision_config": {
                "hidden_size": v.hidden_size, "intermediate_size": v.intermediate_size,
                "num_hidden_layers": v.num_hidden_layers, "num_attention_heads": v.num_attention_heads,
                "image_size": v.image_size, "patch_size": v.patch_size, "num_channels": v.num_channels,
                "hidden_act": v.hidden_act.name(), "layer_norm_eps": v.layer_norm_eps, "projection_dim": self.projection_dim,
            },
        });
        serde_json::to_string_pretty(&j).unwrap_or_default()
    }

    fn validate(&self) -> Result<()> {
        let (t, v) = (&self.text, &self.vision);
        for (name, x) in [
            ("text vocab_size", t.vocab_size),
            ("text hidden_size", t.hidden_size),
            ("text intermediate_size", t.intermediate_size),
            ("text num_hidden_layers", t.num_hidden_layers),
            ("text num_attention_heads", t.num_attention_heads),
            ("text max_position_embeddings", t.max_position_embeddings),
            ("vision hidden_size", v.hidden_size),
            ("vision intermediate_size", v.intermediate_size),
            ("vision num_hidden_layers", v.num_hidden_layers),
            ("vision num_attention_heads", v.num_attention_heads),
            ("vision image_size", v.image_size),
            ("vision patch_size", v.patch_size),
            ("vision num_channels", v.num_channels),
            ("projection_dim", self.projection_dim),
        ] {
            if x < 1 {
                bail!("{name} must be at least 1, got {x}");
            }
        }
        if t.hidden_size % t.num_attention_heads != 0 {
            bail!("text hidden_size {} is not divisible by its {} heads", t.hidden_size, t.num_attention_heads);
        }
        if v.hidden_size % v.num_attention_heads != 0 {
            bail!("vision hidden_size {} is not divisible by its {} heads", v.hidden_size, v.num_attention_heads);
        }
        if v.image_size % v.patch_size != 0 {
            bail!("vision image_size {} is not a multiple of patch_size {}", v.image_size, v.patch_size);
        }
        Ok(())
    }

    /// Width of word and region features (the text tower's width; 512 for ViT-B/32):
    /// `linear_subr` maps the vision width to it so that words and regions can be
    /// compared. TEXT.EMBEDDING_DIM must equal it (and the projection width) for DM-GAN.
    pub fn joint_dim(&self) -> i64 {
        self.text.hidden_size
    }

    /// Parameters of the CLIPModel part (everything but `linear_subr`), computed from
    /// the config (ViT-B/32: 151,277,313).
    pub fn num_parameters(&self) -> i64 {
        let block = |d: i64, inner: i64| 4 * (d * d + d) + 2 * 2 * d + (d * inner + inner) + (inner * d + d);
        let (t, v) = (&self.text, &self.vision);
        let text = t.vocab_size * t.hidden_size
            + t.max_position_embeddings * t.hidden_size
            + t.num_hidden_layers * block(t.hidden_size, t.intermediate_size)
            + 2 * t.hidden_size;
        let w = v.hidden_size;
        let vision = w
            + v.num_channels * v.patch_size * v.patch_size * w
            + (v.num_regions() + 1) * w
            + 2 * w
            + v.num_hidden_layers * block(w, v.intermediate_size)
            + 2 * w;
        text + vision + (w + t.hidden_size) * self.projection_dim + 1
    }

    /// Parameters of `linear_subr` (vision width -> joint width, with bias).
    pub fn subr_parameters(&self) -> i64 {
        self.vision.hidden_size * self.joint_dim() + self.joint_dim()
    }

    /// Check that captions of `words_num` tokens fit the text tower.
    pub fn check_words_num(&self, words_num: usize) -> Result<()> {
        if words_num as i64 > self.text.max_position_embeddings {
            bail!("TEXT.WORDS_NUM {words_num} exceeds this CLIP's {} text positions", self.text.max_position_embeddings);
        }
        Ok(())
    }
}

/// Multi-head self-attention (HF `CLIPAttention`: q/k/v/out projections with biases).
#[derive(Debug)]
struct Attention {
    q_proj: nn::Linear,
    k_proj: nn::Linear,
    v_proj: nn::Linear,
    out_proj: nn::Linear,
    heads: i64,
}

fn linear(p: nn::Path, inp: i64, out: i64, std: f64, bias: bool) -> nn::Linear {
    nn::linear(
        p,
        inp,
        out,
        nn::LinearConfig { ws_init: nn::Init::Randn { mean: 0.0, stdev: std }, bs_init: Some(nn::Init::Const(0.0)), bias },
    )
}

fn layer_norm(p: nn::Path, dim: i64, eps: f64) -> nn::LayerNorm {
    nn::layer_norm(p, vec![dim], nn::LayerNormConfig { eps, ..Default::default() })
}

impl Attention {
    /// HF's initialisation: in-projections N(0, d^-½ (2·layers)^-½), out N(0, d^-½).
    fn new(p: nn::Path, dim: i64, heads: i64, layers: i64) -> Attention {
        let in_std = (dim as f64).powf(-0.5) * ((2 * layers) as f64).powf(-0.5);
        let out_std = (dim as f64).powf(-0.5);
        Attention {
            q_proj: linear(&p / "q_proj", dim, dim, in_std, true),
            k_proj: linear(&p / "k_proj", dim, dim, in_std, true),
            v_proj: linear(&p / "v_proj", dim, dim, in_std, true),
            out_proj: linear(&p / "out_proj", dim, dim, out_std, true),
            heads,
        }
    }

    /// x: [B, T, D]; mask: Bool, broadcastable to [B, heads, T, T], true = may attend.
    fn forward(&self, x: &Tensor, mask: Option<&Tensor>) -> Tensor {
        let (b, t, d) = x.size3().expect("attention input is [B, T, D]");
        let split = |y: Tensor| y.view([b, t, self.heads, d / self.heads]).transpose(1, 2);
        let q = split(self.q_proj.forward(x));
        let k = split(self.k_proj.forward(x));
        let v = split(self.v_proj.forward(x));
        // Default scale = head_dim^-½, as HF's q * scale.
        let o = Tensor::scaled_dot_product_attention(&q, &k, &v, mask, 0.0, false, None, false);
        self.out_proj.forward(&o.transpose(1, 2).reshape([b, t, d]))
    }
}

#[derive(Debug)]
struct Mlp {
    fc1: nn::Linear,
    fc2: nn::Linear,
    act: Activation,
}

impl Mlp {
    fn new(p: nn::Path, dim: i64, hidden: i64, layers: i64, act: Activation) -> Mlp {
        let fc_std = ((2 * dim) as f64).powf(-0.5);
        let in_std = (dim as f64).powf(-0.5) * ((2 * layers) as f64).powf(-0.5);
        Mlp { fc1: linear(&p / "fc1", dim, hidden, fc_std, true), fc2: linear(&p / "fc2", hidden, dim, in_std, true), act }
    }

    fn forward(&self, x: &Tensor) -> Tensor {
        self.fc2.forward(&self.act.apply(&self.fc1.forward(x)))
    }
}

/// A pre-LayerNorm transformer block (HF `CLIPEncoderLayer`).
#[derive(Debug)]
struct EncoderLayer {
    self_attn: Attention,
    layer_norm1: nn::LayerNorm,
    mlp: Mlp,
    layer_norm2: nn::LayerNorm,
}

impl EncoderLayer {
    fn new(p: nn::Path, dim: i64, hidden: i64, heads: i64, layers: i64, act: Activation, eps: f64) -> EncoderLayer {
        EncoderLayer {
            self_attn: Attention::new(&p / "self_attn", dim, heads, layers),
            layer_norm1: layer_norm(&p / "layer_norm1", dim, eps),
            mlp: Mlp::new(&p / "mlp", dim, hidden, layers, act),
            layer_norm2: layer_norm(&p / "layer_norm2", dim, eps),
        }
    }

    fn forward(&self, x: &Tensor, mask: Option<&Tensor>) -> Tensor {
        let x = x + self.self_attn.forward(&self.layer_norm1.forward(x), mask);
        &x + self.mlp.forward(&self.layer_norm2.forward(&x))
    }
}

#[derive(Debug)]
struct Encoder {
    layers: Vec<EncoderLayer>,
}

impl Encoder {
    #[allow(clippy::too_many_arguments)]
    fn new(p: nn::Path, dim: i64, hidden: i64, heads: i64, layers: i64, act: Activation, eps: f64) -> Encoder {
        let p = &p / "layers";
        Encoder { layers: (0..layers).map(|i| EncoderLayer::new(&p / i, dim, hidden, heads, layers, act, eps)).collect() }
    }

    fn forward(&self, x: &Tensor, mask: Option<&Tensor>) -> Tensor {
        let mut x = x.shallow_clone();
        for l in &self.layers {
            x = l.forward(&x, mask);
        }
        x
    }
}

/// HF `CLIPTextTransformer` (`text_model.*`).
#[derive(Debug)]
struct TextTransformer {
    token_embedding: nn::Embedding,
    position_embedding: nn::Embedding,
    encoder: Encoder,
    final_layer_norm: nn::LayerNorm,
}

impl TextTransformer {
    fn new(p: nn::Path, c: &ClipTextConfig) -> TextTransformer {
        let e = &p / "embeddings";
        let emb = |p: nn::Path, n: i64| {
            nn::embedding(
                p,
                n,
                c.hidden_size,
                nn::EmbeddingConfig { ws_init: nn::Init::Randn { mean: 0.0, stdev: 0.02 }, ..Default::default() },
            )
        };
        TextTransformer {
            token_embedding: emb(&e / "token_embedding", c.vocab_size),
            position_embedding: emb(&e / "position_embedding", c.max_position_embeddings),
            encoder: Encoder::new(
                &p / "encoder",
                c.hidden_size,
                c.intermediate_size,
                c.num_attention_heads,
                c.num_hidden_layers,
                c.hidden_act,
                c.layer_norm_eps,
            ),
            final_layer_norm: layer_norm(&p / "final_layer_norm", c.hidden_size, c.layer_norm_eps),
        }
    }
}

/// HF `CLIPVisionTransformer` (`vision_model.*`).
#[derive(Debug)]
struct VisionTransformer {
    class_embedding: Tensor,
    patch_embedding: nn::Conv2D,
    position_embedding: nn::Embedding,
    pre_layrnorm: nn::LayerNorm,
    encoder: Encoder,
    post_layernorm: nn::LayerNorm,
    patch: i64,
}

impl VisionTransformer {
    fn new(p: nn::Path, c: &ClipVisionConfig) -> VisionTransformer {
        let e = &p / "embeddings";
        let w = c.hidden_size;
        VisionTransformer {
            class_embedding: e.var("class_embedding", &[w], nn::Init::Randn { mean: 0.0, stdev: (w as f64).powf(-0.5) }),
            patch_embedding: nn::conv2d(
                &e / "patch_embedding",
                c.num_channels,
                w,
                c.patch_size,
                nn::ConvConfig {
                    stride: c.patch_size,
                    bias: false,
                    ws_init: nn::Init::Randn { mean: 0.0, stdev: 0.02 },
                    ..Default::default()
                },
            ),
            position_embedding: nn::embedding(
                &e / "position_embedding",
                c.num_regions() + 1,
                w,
                nn::EmbeddingConfig { ws_init: nn::Init::Randn { mean: 0.0, stdev: 0.02 }, ..Default::default() },
            ),
            // (sic) HuggingFace's name.
            pre_layrnorm: layer_norm(&p / "pre_layrnorm", w, c.layer_norm_eps),
            encoder: Encoder::new(
                &p / "encoder",
                w,
                c.intermediate_size,
                c.num_attention_heads,
                c.num_hidden_layers,
                c.hidden_act,
                c.layer_norm_eps,
            ),
            post_layernorm: layer_norm(&p / "post_layernorm", w, c.layer_norm_eps),
            patch: c.patch_size,
        }
    }
}

/// Text features of a batch of captions.
#[derive(Debug)]
pub struct TextFeatures {
    /// [B, D, L]: last_hidden_state after the final LayerNorm, not projected; padding
    /// positions hold values the losses mask out.
    pub words: Tensor,
    /// [B, P]: `text_projection` of the end-of-text token's hidden state.
    pub sentence: Tensor,
}

/// Image features of a batch of images.
#[derive(Debug)]
pub struct ImageFeatures {
    /// [B, D, R]: `linear_subr` of the patch tokens' last_hidden_state (before
    /// `post_layernorm`), CLS dropped.
    pub regions: Tensor,
    /// [B, P]: `visual_projection(post_layernorm(CLS))`.
    pub code: Tensor,
}

/// CLIPModel + `linear_subr`.
#[derive(Debug)]
pub struct Clip {
    text_model: TextTransformer,
    vision_model: VisionTransformer,
    visual_projection: nn::Linear,
    text_projection: nn::Linear,
    /// Loaded with the weights; DAMSM uses γ3 instead, so nothing trains it here.
    pub logit_scale: Tensor,
    linear_subr: nn::Linear,
    pub cfg: ClipConfig,
    /// Whether `linear_subr` came from the weights (a finetuned checkpoint) rather than
    /// a fresh random initialisation (HuggingFace weights have none).
    pub subr_loaded: bool,
}

/// Name prefix of the seed's added layer (its own learning rate, LINEAR_LR).
pub const SUBR_PREFIX: &str = "linear_subr.";

impl Clip {
    /// All parameters under HuggingFace `CLIPModel` names (+ `linear_subr.{weight,bias}`),
    /// initialised as HuggingFace does (linear_subr as PyTorch's nn.Linear).
    pub fn new(vs: nn::Path, cfg: &ClipConfig) -> Clip {
        let (t, v) = (&cfg.text, &cfg.vision);
        let text_model = TextTransformer::new(&vs / "text_model", t);
        let vision_model = VisionTransformer::new(&vs / "vision_model", v);
        let visual_projection =
            linear(&vs / "visual_projection", v.hidden_size, cfg.projection_dim, (v.hidden_size as f64).powf(-0.5), false);
        let text_projection = linear(&vs / "text_projection", t.hidden_size, cfg.projection_dim, (t.hidden_size as f64).powf(-0.5), false);
        let logit_scale = vs.var("logit_scale", &[], nn::Init::Const(cfg.logit_scale_init));
        let linear_subr = nn::linear(&vs / "linear_subr", v.hidden_size, cfg.joint_dim(), Default::default());
        Clip {
            text_model,
            vision_model,
            visual_projection,
            text_projection,
            logit_scale,
            linear_subr,
            cfg: cfg.clone(),
            subr_loaded: false,
        }
    }

    /// ids: [B, L] i64 token ids; mask: [B, L] Bool, true at BOS..=EOS (real tokens, a
    /// prefix of each row). The end-of-text token is the last real one.
    pub fn encode_text(&self, ids: &Tensor, mask: &Tensor) -> TextFeatures {
        let tm = &self.text_model;
        let (b, l) = ids.size2().expect("token ids are [B, L]");
        let dev = ids.device();
        let pos = tm.position_embedding.ws.narrow(0, 0, l);
        let x = tm.token_embedding.forward(ids) + pos;
        let mask = mask.to_device(dev).to_kind(Kind::Bool);
        // Causal, and never attending to padding (as HF with an attention mask).
        let causal = Tensor::ones([l, l], (Kind::Bool, dev)).tril(0);
        let attn = causal.unsqueeze(0).logical_and(&mask.unsqueeze(1)).unsqueeze(1);
        let x = tm.encoder.forward(&x, Some(&attn));
        let x = tm.final_layer_norm.forward(&x);
        let d = x.size()[2];
        let eos = (mask.sum_dim_intlist(-1, false, Kind::Int64) - 1).clamp_min(0);
        let pooled = x.gather(1, &eos.view([b, 1, 1]).expand([b, 1, d], false), false).squeeze_dim(1);
        TextFeatures { words: x.transpose(1, 2), sentence: self.text_projection.forward(&pooled) }
    }

    /// pixels: [B, 3, S, S] CLIP-normalised at the model's image size (see
    /// [`pixels_for_clip`]).
    pub fn encode_image(&self, pixels: &Tensor) -> ImageFeatures {
        let vm = &self.vision_model;
        let b = pixels.size()[0];
        let patches = pixels.apply(&vm.patch_embedding).flatten(2, 3).transpose(1, 2); // [B, R, W]
        let w = patches.size()[2];
        let cls = vm.class_embedding.view([1, 1, w]).expand([b, 1, w], false).to_kind(patches.kind());
        let x = Tensor::cat(&[cls, patches], 1) + &vm.position_embedding.ws;
        let x = vm.pre_layrnorm.forward(&x);
        let x = vm.encoder.forward(&x, None);
        let code = self.visual_projection.forward(&vm.post_layernorm.forward(&x.select(1, 0)));
        let regions = self.linear_subr.forward(&x.narrow(1, 1, x.size()[1] - 1)).transpose(1, 2);
        ImageFeatures { regions, code }
    }

    /// Only the image codes (skips `linear_subr`), for retrieval and FD_CLIP.
    pub fn image_code(&self, pixels: &Tensor) -> Tensor {
        let vm = &self.vision_model;
        let b = pixels.size()[0];
        let patches = pixels.apply(&vm.patch_embedding).flatten(2, 3).transpose(1, 2);
        let w = patches.size()[2];
        let cls = vm.class_embedding.view([1, 1, w]).expand([b, 1, w], false).to_kind(patches.kind());
        let x = vm.encoder.forward(&vm.pre_layrnorm.forward(&(Tensor::cat(&[cls, patches], 1) + &vm.position_embedding.ws)), None);
        self.visual_projection.forward(&vm.post_layernorm.forward(&x.select(1, 0)))
    }

    pub fn patch_size(&self) -> i64 {
        self.vision_model.patch
    }
}

/// Images in [-1, 1] ([B, 3, H, W], the GAN convention) as CLIP input: (x + 1)/2,
/// antialiased bilinear resize to `size` when needed, CLIP normalisation (method.md
/// §9.2). Differentiable, so generator gradients flow through it.
pub fn pixels_for_clip(images: &Tensor, size: i64) -> Tensor {
    let s = images.size();
    let x = (images + 1.0) * 0.5;
    let x = if s[2] != size || s[3] != size { x.internal_upsample_bilinear2d_aa([size, size], false, None, None) } else { x };
    let (dev, kind) = (x.device(), x.kind());
    let mean = Tensor::from_slice(&CLIP_MEAN).to_kind(kind).to_device(dev).view([1, 3, 1, 1]);
    let std = Tensor::from_slice(&CLIP_STD).to_kind(kind).to_device(dev).view([1, 3, 1, 1]);
    (x - mean) / std
}

/// Where CLIP weights come from, once a user's setting has been resolved.
#[derive(Clone, Debug, PartialEq)]
pub enum ClipSource {
    /// A HuggingFace folder: `config.json` + `model.safetensors`.
    HfFolder(PathBuf),
    /// A `.safetensors` file: HuggingFace weights (architecture from a `config.json`
    /// beside it, else the preset) or a clipgan checkpoint (architecture inside).
    File(PathBuf),
}

/// Turn a weights setting into a source: an existing folder or file; a pretraining run
/// folder (its `checkpoints/latest.safetensors`); or a hub name (`openai/clip-vit-base-patch32`)
/// found in the local HuggingFace cache (`$HF_HUB_CACHE`, `$HF_HOME/hub`, or
/// `~/.cache/huggingface/hub`). Nothing is downloaded.
pub fn resolve_source(spec: &Path) -> Result<ClipSource> {
    if spec.is_dir() {
        if spec.join("config.json").is_file() {
            return Ok(ClipSource::HfFolder(spec.to_path_buf()));
        }
        let latest = spec.join("checkpoints").join("latest.safetensors");
        if latest.is_file() {
            return Ok(ClipSource::File(latest));
        }
        bail!(
            "{} is a folder without config.json (a HuggingFace CLIP folder has config.json + model.safetensors) and without checkpoints/latest.safetensors (a clipgan pretraining run)",
            spec.display()
        );
    }
    if spec.is_file() {
        return Ok(ClipSource::File(spec.to_path_buf()));
    }
    let s = spec.to_string_lossy();
    let looks_like_hub = !s.starts_with('/') && !s.starts_with('.') && s.matches('/').count() == 1 && !s.ends_with(".safetensors");
    if !looks_like_hub {
        bail!("{} does not exist", spec.display());
    }
    let cache_dirs: Vec<PathBuf> = [
        std::env::var_os("HF_HUB_CACHE").map(PathBuf::from),
        std::env::var_os("HF_HOME").map(|h| PathBuf::from(h).join("hub")),
        std::env::var_os("HOME").map(|h| PathBuf::from(h).join(".cache/huggingface/hub")),
    ]
    .into_iter()
    .flatten()
    .collect();
    let repo = format!("models--{}", s.replace('/', "--"));
    for dir in &cache_dirs {
        let snapshots = dir.join(&repo).join("snapshots");
        // Prefer the snapshot that refs/main points at, else any complete one.
        let main = std::fs::read_to_string(dir.join(&repo).join("refs/main")).ok().map(|h| snapshots.join(h.trim()));
        let mut candidates: Vec<PathBuf> = main.into_iter().collect();
        if let Ok(rd) = std::fs::read_dir(&snapshots) {
            let mut others: Vec<PathBuf> = rd.flatten().map(|e| e.path()).collect();
            others.sort();
            candidates.extend(others);
        }
        if let Some(found) = candidates.into_iter().find(|c| c.join("config.json").is_file() && c.join("model.safetensors").is_file()) {
            return Ok(ClipSource::HfFolder(found));
        }
    }
    bail!(
        "{s:?} is not a local path and is not in the HuggingFace cache (looked in {}). Download config.json and model.safetensors of https://huggingface.co/{s} (e.g. `huggingface-cli download {s} config.json model.safetensors`) on a machine with network access, then copy the cache or the folder here and point CLIPGAN.CLIP_WEIGHTS (or TRAIN.CLIP_MODEL_BASE) at it",
        cache_dirs.iter().map(|d| d.join(&repo).display().to_string()).collect::<Vec<_>>().join(", ")
    )
}

/// Whether a tensor name of a HuggingFace file is a buffer rather than a parameter
/// (older transformers saved `position_ids`); such entries are checked and skipped.
fn is_hf_buffer(name: &str) -> bool {
    name == "text_model.embeddings.position_ids" || name == "vision_model.embeddings.position_ids"
}

/// Load CLIP from a HuggingFace folder, a `.safetensors` file (HuggingFace weights with
/// the architecture of `preset` unless a `config.json` sits beside it, or a clipgan
/// checkpoint that names its own architecture), a pretraining run folder, or a hub name
/// in the local HuggingFace cache. Every tensor of the file must be a parameter of the
/// model and every parameter must be in the file, with its shape; the only exception is
/// `linear_subr`, which HuggingFace files do not have: it is then freshly initialised
/// (from the current libtorch seed) and `clip.subr_loaded` is false. Use
/// [`load_finetuned_clip`] where a trained `linear_subr` is required.
pub fn load_clip(path: &Path, preset: &str, device: Device) -> Result<(nn::VarStore, Clip, ClipConfig)> {
    let source = resolve_source(path)?;
    let (file, cfg_from_json) = match &source {
        ClipSource::HfFolder(dir) => {
            let weights = dir.join("model.safetensors");
            if !weights.is_file() {
                if dir.join("pytorch_model.bin").is_file() {
                    bail!("{} has pytorch_model.bin but no model.safetensors: convert it (e.g. with transformers: `CLIPModel.from_pretrained(dir).save_pretrained(dir, safe_serialization=True)`)", dir.display());
                }
                bail!("{} has no model.safetensors", dir.display());
            }
            (weights, Some(ClipConfig::from_hf_json(&dir.join("config.json"))?))
        }
        ClipSource::File(f) => {
            let beside = f.with_file_name("config.json");
            (f.clone(), if beside.is_file() { Some(ClipConfig::from_hf_json(&beside)?) } else { None })
        }
    };
    let header = checkpoint::read_header(&file)?;
    let is_clipgan = header.meta.get("format").is_some_and(|f| f == checkpoint::FORMAT);
    let (cfg, prefix) = if is_clipgan {
        let text = header.meta.get(CONFIG_META_KEY).with_context(|| {
            format!(
                "{} is a clipgan checkpoint without CLIP weights (no `{CONFIG_META_KEY}` metadata): is it a GAN checkpoint?",
                file.display()
            )
        })?;
        let cfg =
            ClipConfig::from_hf_json_str(text).with_context(|| format!("{}: the stored CLIP architecture is invalid", file.display()))?;
        (cfg, CHECKPOINT_PREFIX)
    } else {
        let cfg = match cfg_from_json {
            Some(c) => c,
            None => ClipConfig::preset(preset)
                .with_context(|| format!("{} has no config.json beside it, so the preset names the architecture", file.display()))?,
        };
        (cfg, "")
    };
    let (tensors, _) = if is_clipgan {
        checkpoint::load(&file, Device::Cpu).map(|c| (c.tensors, c.meta))?
    } else {
        checkpoint::read_safetensors(&file, Device::Cpu)?
    };
    let mut map: HashMap<String, Tensor> = HashMap::new();
    for (name, t) in tensors {
        if !name.starts_with(prefix) {
            continue; // optimizer state and other job data in clipgan checkpoints
        }
        if prefix.is_empty() && is_hf_buffer(&name) {
            let n = t.size().last().copied().unwrap_or(0);
            let want = Tensor::arange(n, (Kind::Int64, Device::Cpu)).view([1, n]);
            if t.size() != [1, n] || t.to_kind(Kind::Int64) != want {
                bail!("{}: {name} is not the positions 0..{n} that HuggingFace stores there", file.display());
            }
            continue;
        }
        map.insert(name, t);
    }
    let vs = nn::VarStore::new(device);
    let mut clip = Clip::new(vs.root(), &cfg);
    let allow_subr_missing = !is_clipgan;
    let missing =
        checkpoint::load_var_store(&vs, &map, prefix, |n| allow_subr_missing && n.starts_with(SUBR_PREFIX)).with_context(|| {
            let origin = if is_clipgan {
                "the architecture stored in the checkpoint".to_string()
            } else if let ClipSource::HfFolder(d) = &source {
                format!("{}", d.join("config.json").display())
            } else {
                format!("CLIP preset {preset:?} (put the checkpoint's config.json beside it, or set CLIPGAN.CLIP_PRESET)")
            };
            format!("{} does not fit {origin}", file.display())
        })?;
    clip.subr_loaded = missing.is_empty();
    Ok((vs, clip, cfg))
}

/// [`load_clip`] for users of the finetuned model (GAN training, evaluation): the file
/// must carry a trained `linear_subr` (a clipgan pretraining checkpoint or snapshot),
/// never a random one.
pub fn load_finetuned_clip(path: &Path, device: Device) -> Result<(nn::VarStore, Clip, ClipConfig)> {
    let (vs, clip, cfg) = load_clip(path, "vit-b-32", device)?;
    if !clip.subr_loaded {
        bail!(
            "{} holds CLIP weights without linear_subr: it is not a finetuned CLIP. Use a checkpoint of `clipgan pretrain` (checkpoints/latest.safetensors or a snapshot)",
            path.display()
        );
    }
    Ok((vs, clip, cfg))
}

/// The CLIP parameters split into the two finetuning groups: (backbone, linear_subr),
/// each with its VarStore names, sorted.
pub fn parameter_groups(vs: &nn::VarStore) -> (NamedTensors, NamedTensors) {
    let mut all: NamedTensors = vs.variables().into_iter().collect();
    all.sort_by(|a, b| a.0.cmp(&b.0));
    all.into_iter().partition(|(n, _)| !n.starts_with(SUBR_PREFIX))
}
