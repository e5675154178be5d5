//! What puts `clipgan` into a user's shell: completions (bash, zsh, fish, elvish,
//! PowerShell) and man pages, both generated from the one clap definition so they never
//! drift from the real options. `make install` (scripts/install.sh) writes them where
//! each shell and `man` look.
use super::Cli;
use anyhow::{Context, Result};
use clap::{Args, CommandFactory};
use clap_complete::Shell;
use std::path::{Path, PathBuf};
use std::process::ExitCode;

#[derive(Args, Debug)]
pub struct CompletionsArgs {
    /// The shell to write completions for (to stdout).
    pub shell: Shell,
}

#[derive(Args, Debug)]
pub struct ManArgs {
    /// Folder for the pages: clipgan.1 and one clipgan-<subcommand>.1 per subcommand
    /// (nested ones too, e.g. clipgan-queue-add.1). Without it, clipgan.1 goes to stdout.
    #[arg(long)]
    pub out: Option<PathBuf>,
}

pub fn completions(a: CompletionsArgs) -> Result<ExitCode> {
    let mut cmd = Cli::command();
    // Into a buffer first: clap_complete panics when its writer fails (`| head`).
    let mut script = Vec::new();
    clap_complete::generate(a.shell, &mut cmd, "clipgan", &mut script);
    to_stdout(&script)
}

/// Writes `bytes` to stdout; a closed pipe (`| head`) is not an error.
fn to_stdout(bytes: &[u8]) -> Result<ExitCode> {
    use std::io::Write;
    let mut out = std::io::stdout().lock();
    match out.write_all(bytes).and_then(|_| out.flush()) {
        Err(e) if e.kind() != std::io::ErrorKind::BrokenPipe => Err(e).context("writing to stdout"),
        _ => Ok(ExitCode::SUCCESS),
    }
}

pub fn man(a: ManArgs) -> Result<ExitCode> {
    let cmd = Cli::command();
    match a.out {
        None => {
            let mut page = Vec::new();
            clap_mangen::Man::new(cmd).render(&mut page).context("rendering the man page")?;
            return to_stdout(&page);
        }
        Some(dir) => {
            std::fs::create_dir_all(&dir).with_context(|| format!("creating {}", dir.display()))?;
            let n = write_pages(&dir, cmd)?;
            println!("wrote {n} man pages to {}", dir.display());
        }
    }
    Ok(ExitCode::SUCCESS)
}

/// One page for `cmd` and, recursively, for each visible subcommand; returns how many.
fn write_pages(dir: &Path, cmd: clap::Command) -> Result<usize> {
    // clap_mangen titles a page with the command's name: give each subcommand its full
    // path (page `clipgan-queue-add`, usage `clipgan queue add`).
    let cmd = cmd.disable_help_subcommand(true);
    let mut count = 0;
    let mut stack = vec![(cmd.get_name().to_string(), cmd.get_name().to_string(), cmd)];
    while let Some((page_name, bin_name, cmd)) = stack.pop() {
        for sub in cmd.get_subcommands().filter(|s| !s.is_hide_set()) {
            stack.push((format!("{page_name}-{}", sub.get_name()), format!("{bin_name} {}", sub.get_name()), sub.clone()));
        }
        let cmd = cmd.name(page_name.clone()).bin_name(bin_name);
        let mut page = Vec::new();
        clap_mangen::Man::new(cmd).render(&mut page).with_context(|| format!("rendering the man page of {page_name}"))?;
        let path = dir.join(format!("{page_name}.1"));
        crate::util::fsx::atomic_write(&path, &page).with_context(|| format!("writing {}", path.display()))?;
        count += 1;
    }
    Ok(count)
}
