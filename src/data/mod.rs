//! Data: the CLIP tokenizer, AttnGAN's preprocessed dataset layout (CUB, COCO, synthetic),
//! image transforms, the batched background loader, and the synthetic dataset generator.
//! See docs/data.md.
pub mod captions;
pub mod check;
pub mod dataset;
pub mod loader;
pub mod pickle;
pub mod synth;
pub mod tokenizer;
pub mod transforms;

pub use captions::{CaptionForm, Stage};
pub use dataset::{Dataset, DatasetSpec, Problem, Record, Split};
pub use loader::{Batch, Loader, LoaderConfig, Skipped};
pub use tokenizer::{TokenBatch, Tokenizer, Tokens};
pub use transforms::PixelMode;
