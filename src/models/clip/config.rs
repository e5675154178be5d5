//! The CLIP architecture: [`ClipConfig`] with its text and vision parts, the published
//! and CPU presets, and the HuggingFace `config.json` form that checkpoints store.
use anyhow::{bail, Context, Result};
use serde_json::{json, Value};
use std::path::Path;
use tch::Tensor;

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

    pub(super) fn apply(self, x: &Tensor) -> Tensor {
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
