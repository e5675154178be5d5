//! CLIP (HF parity, losses, loading), DM-GAN's networks and the seeded torch generator.
//! One test binary per area (each links libtorch once); one module per topic.
mod clip_infra;
mod clip_losses;
mod clip_model;
mod dmgan;
mod dmgan_parity;
mod seed;
