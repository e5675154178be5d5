//! Data: the CLIP tokenizer, AttnGAN's preprocessed dataset layout (CUB, COCO, synthetic),
//! image transforms, the batched background loader, and the synthetic dataset generator.
//! See docs/data.md.
pub mod tokenizer;

pub use tokenizer::{TokenBatch, Tokenizer, Tokens};
