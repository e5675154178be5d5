//! The worker processes run as the binary: clipgan pretrain, train and eval (resume, kill, outcomes).
//! One test binary per area (each links libtorch once); one module per topic.
mod common;
mod eval;
mod pretrain;
mod progress;
mod train;
