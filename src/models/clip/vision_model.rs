//! The image tower, HF `CLIPVisionTransformer` (`vision_model.*`): patch, class and
//! position embeddings, `pre_layrnorm`, the encoder, `post_layernorm` of the CLS token.
use super::config::ClipVisionConfig;
use super::encoder::{layer_norm, Encoder};
use tch::nn::{self, Module};
use tch::Tensor;

/// HF `CLIPVisionTransformer` (`vision_model.*`).
#[derive(Debug)]
pub(super) struct VisionTransformer {
    class_embedding: Tensor,
    patch_embedding: nn::Conv2D,
    position_embedding: nn::Embedding,
    pre_layrnorm: nn::LayerNorm,
    encoder: Encoder,
    post_layernorm: nn::LayerNorm,
    patch: i64,
}

impl VisionTransformer {
    pub(super) fn new(p: nn::Path, c: &ClipVisionConfig) -> VisionTransformer {
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

    /// pixels: [B, 3, S, S] CLIP-normalised. Returns (last_hidden_state [B, 1 + R, W]:
    /// CLS then the patches, before `post_layernorm`; `post_layernorm(CLS)` [B, W]).
    pub(super) fn forward(&self, pixels: &Tensor) -> (Tensor, Tensor) {
        let b = pixels.size()[0];
        let patches = pixels.apply(&self.patch_embedding).flatten(2, 3).transpose(1, 2); // [B, R, W]
        let w = patches.size()[2];
        let cls = self.class_embedding.view([1, 1, w]).expand([b, 1, w], false).to_kind(patches.kind());
        let x = Tensor::cat(&[cls, patches], 1) + &self.position_embedding.ws;
        let x = self.pre_layrnorm.forward(&x);
        let x = self.encoder.forward(&x, None);
        let pooled = self.post_layernorm.forward(&x.select(1, 0));
        (x, pooled)
    }

    pub(super) fn patch_size(&self) -> i64 {
        self.patch
    }
}
