//! Seed-compatible configuration: schema, defaults, validation with file:line:column,
//! path resolution. See docs/config.md for every key.
mod load;
mod schema;

pub use load::{
    base_dir_for, load, locate_key, parse, parse_device_string, resolve_against, seed_schedule, ConfigError, DeviceChoice, Diagnostic,
    LoadedConfig, Severity,
};
pub use schema::{Clipgan, Config, Eval, Gan, Job, Smooth, Text, Train, Tree};

/// CLIP architecture presets accepted by `CLIPGAN.CLIP_PRESET` (defined in models::clip).
pub const CLIP_PRESETS: &[&str] = &["vit-b-32", "vit-b-16", "vit-l-14", "small", "tiny"];

/// Values of `CLIPGAN.CAPTION_FORM` (`data::captions::CaptionForm`).
pub const CAPTION_FORMS: &[&str] = &["seed", "raw", "words"];

/// Values of `CLIPGAN.EVAL.SAMPLING` (`eval::sampling::Sampling`).
pub const EVAL_SAMPLINGS: &[&str] = &["auto", "passes", "captions"];
