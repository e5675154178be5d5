//! Training pieces the jobs (`jobs::pretrain`, `jobs::train`) and the benches are made
//! of: AdamW with saveable state, the learning-rate schedule, bf16 autocast, the DAMSM /
//! NT-Xent losses, the CLIP finetuning objective (`finetune_step`) and one DM-GAN
//! iteration (`gan_step`). See docs/training.md.
pub mod amp;
pub mod finetune_step;
pub mod gan_step;
pub mod losses;
pub mod optim;
pub mod schedule;
