//! Training: shared infrastructure (optimizer, schedule, checkpoints, seeds, mixed
//! precision), the DAMSM/contrastive losses and the jobs. See docs/training.md.
pub mod amp;
pub mod gan;
pub mod losses;
pub mod optim;
pub mod pretrain;
pub mod progress;
pub mod schedule;
