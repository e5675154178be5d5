//! The project home: the one folder that holds a project's runs and daemon state.
//!
//! `CLIPGAN_HOME` if set; otherwise the nearest folder, from the current one upwards,
//! that holds a `cfg/` folder or a `.clipgan/` state folder (a clipgan checkout, or a
//! user's project laid out like one); otherwise the current folder. Several projects,
//! and tests (which set `CLIPGAN_HOME`), stay isolated this way.
use std::path::{Path, PathBuf};

pub fn home() -> PathBuf {
    if let Some(h) = std::env::var_os("CLIPGAN_HOME").filter(|h| !h.is_empty()) {
        return std::path::absolute(PathBuf::from(h)).unwrap_or_default();
    }
    let cwd = std::env::current_dir().unwrap_or_else(|_| PathBuf::from("."));
    find_home_from(&cwd).unwrap_or(cwd)
}

/// The nearest ancestor of `start` (itself included) that looks like a project home.
pub fn find_home_from(start: &Path) -> Option<PathBuf> {
    start.ancestors().find(|d| d.join(".clipgan").is_dir() || d.join("cfg").is_dir()).map(Path::to_path_buf)
}

/// `<home>/runs`: one folder per run.
pub fn runs_dir() -> PathBuf {
    home().join("runs")
}

/// `<home>/.clipgan`: the daemon's state, socket and logs.
pub fn state_dir() -> PathBuf {
    home().join(".clipgan")
}

/// `<home>/cfg`: the config folder the console and daemon watch.
pub fn cfg_dir() -> PathBuf {
    home().join("cfg")
}
