//! Evaluation metrics and pytorch-fid's Inception network.
//! One test binary per area (each links libtorch once); one module per topic.
mod inception;
mod metrics;
mod stackgan_inception;
