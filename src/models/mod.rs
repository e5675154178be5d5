//! Models: a config struct, `new(path: nn::Path, cfg)` creating parameters under
//! checkpoint-compatible names, and a plain `forward`. See docs/models.md.
pub mod clip;
pub mod dmgan;
