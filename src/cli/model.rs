//! `clipgan model summary`: the DM-GAN networks of a config and their parameter counts.
use crate::config;
use crate::models::dmgan::{self, GanConfig};
use anyhow::{Context, Result};
use clap::Subcommand;
use std::path::PathBuf;
use std::process::ExitCode;

#[derive(Subcommand, Debug)]
pub enum ModelCommand {
    /// Print the generator and discriminators of a training config with exact parameter
    /// counts (from the config alone: no data or checkpoint needed).
    Summary {
        #[arg(long)]
        cfg: PathBuf,
    },
}

pub fn run(cmd: ModelCommand) -> Result<ExitCode> {
    match cmd {
        ModelCommand::Summary { cfg } => {
            crate::device::init_torch();
            let loaded = config::load(&cfg)?;
            let g = GanConfig::from_config(&loaded.config).with_context(|| format!("{}", cfg.display()))?;
            print!("{}", dmgan::summary(&g));
            Ok(ExitCode::SUCCESS)
        }
    }
}
