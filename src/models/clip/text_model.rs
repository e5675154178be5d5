//! The text tower, HF `CLIPTextTransformer` (`text_model.*`): token and position
//! embeddings, a causal encoder, the final LayerNorm.
use super::config::ClipTextConfig;
use super::encoder::{layer_norm, Encoder};
use tch::nn::{self, Module};
use tch::{Kind, Tensor};

/// HF `CLIPTextTransformer` (`text_model.*`).
#[derive(Debug)]
pub(super) struct TextTransformer {
    token_embedding: nn::Embedding,
    position_embedding: nn::Embedding,
    encoder: Encoder,
    final_layer_norm: nn::LayerNorm,
}

impl TextTransformer {
    pub(super) fn new(p: nn::Path, c: &ClipTextConfig) -> TextTransformer {
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

    /// ids: [B, L] i64 token ids; mask: [B, L] Bool on the ids' device, true at
    /// BOS..=EOS (a prefix of each row). Returns (last_hidden_state after the final
    /// LayerNorm [B, L, D], the hidden state at the end-of-text token [B, D]); the
    /// end-of-text token is the last real one.
    pub(super) fn forward(&self, ids: &Tensor, mask: &Tensor) -> (Tensor, Tensor) {
        let (b, l) = ids.size2().expect("token ids are [B, L]");
        let dev = ids.device();
        let pos = self.position_embedding.ws.narrow(0, 0, l);
        let x = self.token_embedding.forward(ids) + pos;
        // Causal, and never attending to padding (as HF with an attention mask).
        let causal = Tensor::ones([l, l], (Kind::Bool, dev)).tril(0);
        let attn = causal.unsqueeze(0).logical_and(&mask.unsqueeze(1)).unsqueeze(1);
        let x = self.encoder.forward(&x, Some(&attn));
        let x = self.final_layer_norm.forward(&x);
        let d = x.size()[2];
        let eos = (mask.sum_dim_intlist(-1, false, Kind::Int64) - 1).clamp_min(0);
        let pooled = x.gather(1, &eos.view([b, 1, 1]).expand([b, 1, d], false), false).squeeze_dim(1);
        (x, pooled)
    }
}
