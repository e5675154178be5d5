//! `clipgan config ...`
use crate::config;
use anyhow::Result;
use clap::Subcommand;
use std::path::PathBuf;
use std::process::ExitCode;

#[derive(Subcommand, Debug)]
pub enum ConfigCommand {
    /// Validate config files (syntax, keys, types, values), print each fully resolved
    /// (defaults filled in, paths made absolute), and warn about paths that don't exist.
    Check {
        /// Config files (YAML, the seed's format).
        #[arg(required = true)]
        files: Vec<PathBuf>,
        /// Print only the findings, not the resolved configs.
        #[arg(short, long)]
        quiet: bool,
        /// Override a setting in each file: a dotted key and a YAML value
        /// (`--set TRAIN.SMOOTH.LAMBDA=0.5`); repeatable, checked like the file.
        #[arg(long = "set", value_name = "KEY=VALUE")]
        set: Vec<String>,
    },
}

pub fn run(cmd: ConfigCommand) -> Result<ExitCode> {
    match cmd {
        ConfigCommand::Check { files, quiet, set } => check(&files, quiet, &set),
    }
}

fn check(files: &[PathBuf], quiet: bool, overrides: &[String]) -> Result<ExitCode> {
    let mut failed = 0;
    for file in files {
        match config::load_with(file, overrides) {
            Ok(loaded) => {
                if !quiet {
                    println!("# {} (job: {}, paths relative to {})", file.display(), loaded.config.job(), loaded.base_dir.display());
                    for o in &loaded.overrides {
                        println!("# --set {}", o.arg);
                    }
                    print!("{}", loaded.resolved_yaml());
                    println!();
                }
                for w in loaded.warnings.iter().chain(loaded.path_warnings().iter()) {
                    eprintln!("{w}");
                }
                if quiet {
                    println!("{}: ok (job: {})", file.display(), loaded.config.job());
                }
            }
            Err(e) => {
                failed += 1;
                eprintln!("{e}");
            }
        }
    }
    if failed > 0 {
        eprintln!("clipgan: {failed} of {} config file(s) are invalid", files.len());
        return Ok(ExitCode::FAILURE);
    }
    Ok(ExitCode::SUCCESS)
}
