//! The run supervisor: a daemon that owns the job queue and the worker processes,
//! persists its state, re-adopts workers after a restart, and watches the config folder.
//! Clients (the CLI, the console) talk to it over a Unix socket. See docs/supervisor.md.
//!
//! Layout: `protocol` (the socket's message types), `state` (the persisted queue and its
//! file), `core/` (every state change, no I/O loop: `core/mod.rs` the `Core` and its
//! request dispatch, one file per request family, and `recovery`, `check`, `hooks`,
//! `schedule` for the processes), `daemon` (the tokio loop around the core: socket, timers, signals), `client`
//! (connect-or-spawn and typed requests), `shim` (the small process that supervises one
//! worker), `procs` (process identity and signals), `logcap` (size-capped logs),
//! `cfgindex` (the watched index of `cfg/`), `slurm` (Slurm's commands and job scripts, for
//! groups that run their tasks on a cluster), `sweep` (sweep axes and their expansion), `sweep_plan` (a sweep checked and made into the
//! request the CLI and the console send), `prune` (the median rule of sweeps that prune)
//! and `prune_watch` (the thread that reads the members' metrics for it). The
//! `fake-run` worker is `jobs::fake_run`.
pub mod cfgindex;
pub mod client;
pub mod core;
pub mod daemon;
pub mod logcap;
pub mod pipeline;
pub mod procs;
pub mod protocol;
pub mod prune;
pub mod prune_watch;
pub mod shim;
pub mod slurm;
pub mod state;
pub mod sweep;
pub mod sweep_plan;

use std::path::{Path, PathBuf};

/// The files of one home's daemon, all under `<home>/.clipgan/`.
#[derive(Clone, Debug)]
pub struct Paths {
    pub home: PathBuf,
    pub state_dir: PathBuf,
    pub socket: PathBuf,
    pub lock: PathBuf,
    pub state: PathBuf,
    pub log: PathBuf,
    pub hooks_log: PathBuf,
    pub runs: PathBuf,
    pub cfg: PathBuf,
}

impl Paths {
    pub fn for_home(home: &Path) -> Paths {
        let state_dir = home.join(".clipgan");
        Paths {
            home: home.to_path_buf(),
            socket: state_dir.join("daemon.sock"),
            lock: state_dir.join("daemon.lock"),
            state: state_dir.join("state.json"),
            log: state_dir.join("daemon.log"),
            hooks_log: state_dir.join("hooks.log"),
            runs: home.join("runs"),
            cfg: home.join("cfg"),
            state_dir,
        }
    }

    /// The paths of the current project home (`CLIPGAN_HOME` or the nearest one).
    pub fn current() -> Paths {
        Paths::for_home(&crate::home::home())
    }
}
