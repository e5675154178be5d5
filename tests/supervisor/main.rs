//! The queue daemon: its core as a state machine, and the real daemon with shims and workers.
//! One test binary per area (each links libtorch once); one module per topic.
mod common;
mod daemon;
mod hardening;
mod prune;
mod slurm;
mod sweep;
mod unit;
