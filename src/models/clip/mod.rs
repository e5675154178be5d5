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
//!
//! Files: `config.rs` (the architecture and presets), `encoder.rs` (the transformer
//! layers both towers share), `text_model.rs` and `vision_model.rs` (the towers),
//! `load.rs` (weights from files); this file holds the combined model [`Clip`].
mod config;
mod encoder;
mod load;
mod text_model;
mod vision_model;

pub use config::{Activation, ClipConfig, ClipTextConfig, ClipVisionConfig, PRESETS};
pub use load::{load_clip, load_finetuned_clip, resolve_source, ClipSource, CHECKPOINT_PREFIX, CONFIG_META_KEY};

use crate::checkpoint::NamedTensors;
use encoder::linear;
use tch::nn::{self, Module};
use tch::{Kind, Tensor};
use text_model::TextTransformer;
use vision_model::VisionTransformer;

/// CLIP's pixel normalisation (method.md §3).
pub const CLIP_MEAN: [f64; 3] = [0.481_454_66, 0.457_827_5, 0.408_210_73];
pub const CLIP_STD: [f64; 3] = [0.268_629_55, 0.261_302_6, 0.275_777_1];

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
        let mask = mask.to_device(ids.device()).to_kind(Kind::Bool);
        let (x, pooled) = self.text_model.forward(ids, &mask);
        TextFeatures { words: x.transpose(1, 2), sentence: self.text_projection.forward(&pooled) }
    }

    /// pixels: [B, 3, S, S] CLIP-normalised at the model's image size (see
    /// [`pixels_for_clip`]).
    pub fn encode_image(&self, pixels: &Tensor) -> ImageFeatures {
        let (x, pooled) = self.vision_model.forward(pixels);
        let code = self.visual_projection.forward(&pooled);
        let regions = self.linear_subr.forward(&x.narrow(1, 1, x.size()[1] - 1)).transpose(1, 2);
        ImageFeatures { regions, code }
    }

    /// Only the image codes (skips `linear_subr`), for retrieval and FD_CLIP.
    pub fn image_code(&self, pixels: &Tensor) -> Tensor {
        let (_, pooled) = self.vision_model.forward(pixels);
        self.visual_projection.forward(&pooled)
    }

    pub fn patch_size(&self) -> i64 {
        self.vision_model.patch_size()
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

/// The CLIP parameters split into the two finetuning groups: (backbone, linear_subr),
/// each with its VarStore names, sorted.
pub fn parameter_groups(vs: &nn::VarStore) -> (NamedTensors, NamedTensors) {
    let mut all: NamedTensors = vs.variables().into_iter().collect();
    all.sort_by(|a, b| a.0.cmp(&b.0));
    all.into_iter().partition(|(n, _)| !n.starts_with(SUBR_PREFIX))
}
