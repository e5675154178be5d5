//! clipgan: a text-to-image research workbench (see docs/architecture.md).
pub mod cli;
pub mod config;
pub mod console;
pub mod data;
pub mod device;
pub mod home;
pub mod models;
pub mod plot;
pub mod rundir;
pub mod supervisor;
pub mod train;
pub mod util;
pub mod worker;
