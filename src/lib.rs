//! clipgan: a text-to-image research workbench (see docs/architecture.md).
pub mod checkpoint;
pub mod cli;
pub mod config;
pub mod console;
pub mod data;
pub mod device;
pub mod eval;
pub mod home;
pub mod jobs;
#[cfg(test)]
mod layers;
pub mod models;
pub mod plot;
pub mod rundir;
pub mod seed;
pub mod supervisor;
pub mod train;
pub mod util;
