//! The data layer: tokenizer, AttnGAN-layout datasets, the loader, the synthetic dataset.
//! One test binary per area (each links libtorch once); one module per topic.
mod common;
mod dataset;
mod eval_real_images;
mod loader;
mod synth;
mod synth_shapes;
mod tokenizer;
