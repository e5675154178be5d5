//! `clipgan console`: the terminal UI over the daemon and the run folders.
use anyhow::Result;
use clap::Args;
use std::process::ExitCode;

#[derive(Args, Debug)]
pub struct ConsoleArgs {
    /// Write the default key bindings and theme (keys.yml, theme.yml) into the user
    /// folder ($CLIPGAN_CONFIG_DIR, else $XDG_CONFIG_HOME/clipgan, else ~/.config/clipgan)
    /// and exit.
    #[arg(long)]
    write_defaults: bool,
    /// With --write-defaults: overwrite existing files.
    #[arg(long, requires = "write_defaults")]
    force: bool,
    /// Select and follow these task ids.
    #[arg(long, value_delimiter = ',')]
    focus: Vec<u64>,
    /// Also list the runs in this folder (repeatable): clipgan run folders and
    /// TensorBoard runs (folders of events.out.tfevents.* files, nested ones too), as
    /// read-only runs. The home's runs/ is always listed.
    #[arg(long = "logdir", value_name = "DIR")]
    logdirs: Vec<std::path::PathBuf>,
    /// Open in this view: runs, configs, curves, logs or samples.
    #[arg(long, value_parser = ["runs", "configs", "curves", "logs", "samples"])]
    view: Option<String>,
}

pub fn run(a: ConsoleArgs) -> Result<ExitCode> {
    if a.write_defaults {
        for p in crate::console::write_defaults(a.force)? {
            println!("wrote {}", p.display());
        }
        return Ok(ExitCode::SUCCESS);
    }
    for d in &a.logdirs {
        if !d.is_dir() {
            anyhow::bail!("--logdir {}: not a folder", d.display());
        }
    }
    let view = a.view.as_deref().and_then(|v| crate::console::app::VIEWS.into_iter().find(|x| x.context() == v));
    crate::console::run_with_logdirs(&crate::home::home(), &a.focus, view, &a.logdirs)?;
    Ok(ExitCode::SUCCESS)
}
