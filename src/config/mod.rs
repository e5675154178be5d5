//! Seed-compatible configuration: schema, defaults, validation with file:line:column,
//! path resolution. See docs/config.md for every key.
mod load;
mod schema;

pub use load::{
    base_dir_for, load, load_with, locate_key, parse, parse_device_string, parse_with, read_text, resolve_against, seed_schedule,
    ConfigError, DeviceChoice, Diagnostic, LoadedConfig, Override, Severity, MAX_OVERRIDE_CHARS,
};
pub use schema::{Clipgan, Config, Eval, Gan, Job, Smooth, Text, Train, Tree};

/// CLIP architecture presets accepted by `CLIPGAN.CLIP_PRESET` (defined in models::clip).
pub const CLIP_PRESETS: &[&str] = &["vit-b-32", "vit-b-16", "vit-l-14", "small", "tiny"];

/// Values of `CLIPGAN.CAPTION_FORM` (`data::captions::CaptionForm`).
pub const CAPTION_FORMS: &[&str] = &["seed", "raw", "words"];

/// Values of `CLIPGAN.EVAL.SAMPLING` (`eval::sampling::Sampling`).
pub const EVAL_SAMPLINGS: &[&str] = &["auto", "passes", "captions"];

/// Values of `CLIPGAN.EVAL.IS_MODEL` (`eval::inception_score::IsModel`).
pub const IS_MODELS: &[&str] = &["imagenet", "cub-stackgan"];

/// Upper bounds of the size settings, checked at validation so that an absurd value is an
/// error at its line instead of an allocation of hundreds of GB later. Each is far above
/// what the seed's configs use (DM-GAN: GF_DIM 32-128, DF_DIM 64, Z_DIM 100).
pub mod limits {
    /// GAN.GF_DIM and GAN.DF_DIM (parameters grow with their square).
    pub const MAX_GAN_WIDTH: u32 = 1024;
    /// GAN.Z_DIM and GAN.CONDITION_DIM.
    pub const MAX_GAN_CODE: u32 = 4096;
    /// GAN.R_NUM residual blocks per stage.
    pub const MAX_RESIDUAL_BLOCKS: u32 = 16;
    /// TEXT.EMBEDDING_DIM.
    pub const MAX_EMBEDDING_DIM: u32 = 8192;
    /// TREE.BASE_SIZE in pixels.
    pub const MAX_IMAGE_SIZE: u32 = 1024;
    pub const MAX_BATCH_SIZE: u32 = 4096;
    pub const MAX_CAPTIONS_PER_IMAGE: u32 = 1000;
    pub const MAX_WORKERS: u32 = 256;
    pub const MAX_THREADS: u32 = 1024;
    pub const MAX_EVAL_PASSES: u32 = 1000;
    pub const MAX_R_TRIALS: u32 = 10_000_000;
    pub const MAX_R_CANDIDATES: u32 = 100_000;
}
