//! Processes: identity (pid + start time, so a recycled pid is never mistaken for our
//! worker), signals to process groups, signal names, and the socket's peer check.
use anyhow::{bail, Result};
use serde::{Deserialize, Serialize};

/// A process as the kernel knows it: its pid and its start time (clock ticks since boot,
/// field 22 of `/proc/<pid>/stat`). Together they name one process for the machine's
/// uptime; the pid alone may be reused by an unrelated process.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct ProcId {
    pub pid: u32,
    pub start: u64,
}

impl ProcId {
    /// The identity of a live process (`None` if it is gone or a zombie).
    pub fn of(pid: u32) -> Option<ProcId> {
        let (state, start) = stat(pid)?;
        (state != 'Z' && state != 'X').then_some(ProcId { pid, start })
    }

    /// The identity of a process that exists, zombies included (for our own children,
    /// whose pid cannot be reused before we reap them).
    pub fn read(pid: u32) -> Option<ProcId> {
        stat(pid).map(|(_, start)| ProcId { pid, start })
    }

    /// Whether this very process still runs (not exited, not a zombie, pid not reused).
    pub fn alive(&self) -> bool {
        ProcId::of(self.pid).is_some_and(|p| p.start == self.start)
    }

    /// The one-letter state from /proc (`R`, `S`, `T` stopped, `Z` zombie, ...), if
    /// this process still exists.
    pub fn state(&self) -> Option<char> {
        stat(self.pid).filter(|(_, s)| *s == self.start).map(|(c, _)| c)
    }
}

/// `(state, starttime)` from `/proc/<pid>/stat`.
fn stat(pid: u32) -> Option<(char, u64)> {
    let text = std::fs::read_to_string(format!("/proc/{pid}/stat")).ok()?;
    // The command name (field 2) is in parentheses and may hold spaces or ')'.
    let rest = &text[text.rfind(')')? + 1..];
    let fields: Vec<&str> = rest.split_whitespace().collect();
    // fields[0] is field 3 (state); field 22 (starttime) is fields[19].
    let state = fields.first()?.chars().next()?;
    let start = fields.get(19)?.parse().ok()?;
    Some((state, start))
}

/// Send `sig` to the process group `pgid`. A group that no longer exists is not an
/// error (it ended on its own).
pub fn signal_group(pgid: i32, sig: i32) -> Result<()> {
    if pgid <= 1 {
        bail!("refusing to signal process group {pgid}");
    }
    // SAFETY: plain system call.
    let rc = unsafe { libc::killpg(pgid, sig) };
    if rc != 0 {
        let e = std::io::Error::last_os_error();
        if e.raw_os_error() != Some(libc::ESRCH) {
            bail!("cannot send {} to process group {pgid}: {e}", signal_name(sig));
        }
    }
    Ok(())
}

/// Send `sig` to one process.
pub fn signal_pid(pid: u32, sig: i32) -> Result<()> {
    // SAFETY: plain system call.
    let rc = unsafe { libc::kill(pid as i32, sig) };
    if rc != 0 {
        let e = std::io::Error::last_os_error();
        if e.raw_os_error() != Some(libc::ESRCH) {
            bail!("cannot send {} to process {pid}: {e}", signal_name(sig));
        }
    }
    Ok(())
}

const SIGNALS: &[(&str, i32)] = &[
    ("HUP", libc::SIGHUP),
    ("INT", libc::SIGINT),
    ("QUIT", libc::SIGQUIT),
    ("ABRT", libc::SIGABRT),
    ("KILL", libc::SIGKILL),
    ("USR1", libc::SIGUSR1),
    ("SEGV", libc::SIGSEGV),
    ("USR2", libc::SIGUSR2),
    ("PIPE", libc::SIGPIPE),
    ("ALRM", libc::SIGALRM),
    ("TERM", libc::SIGTERM),
    ("CONT", libc::SIGCONT),
    ("STOP", libc::SIGSTOP),
    ("TSTP", libc::SIGTSTP),
    ("BUS", libc::SIGBUS),
    ("FPE", libc::SIGFPE),
    ("ILL", libc::SIGILL),
    ("TRAP", libc::SIGTRAP),
    ("XCPU", libc::SIGXCPU),
];

/// `SIGKILL`, `KILL`, `kill` or `9` -> 9.
pub fn parse_signal(s: &str) -> Result<i32> {
    let t = s.trim();
    if let Ok(n) = t.parse::<i32>() {
        if (1..=64).contains(&n) {
            return Ok(n);
        }
        bail!("no signal number {n} (expected 1-64)");
    }
    let up = t.to_ascii_uppercase();
    let name = up.strip_prefix("SIG").unwrap_or(&up);
    SIGNALS
        .iter()
        .find(|(n, _)| *n == name)
        .map(|(_, v)| *v)
        .ok_or_else(|| anyhow::anyhow!("unknown signal {s:?} (use a name like TERM, KILL, INT, USR1, or a number)"))
}

/// 9 -> `SIGKILL` (or `signal 42`).
pub fn signal_name(sig: i32) -> String {
    SIGNALS.iter().find(|(_, v)| *v == sig).map(|(n, _)| format!("SIG{n}")).unwrap_or_else(|| format!("signal {sig}"))
}

/// The socket accepts only clients of the daemon's own user. (The socket is also mode
/// 0600 in a 0700 folder; this check still holds when someone loosens those, and
/// against root-owned sockets opened by other users through a leaked descriptor.)
pub fn peer_allowed(peer_uid: u32, own_uid: u32) -> bool {
    peer_uid == own_uid
}

/// This process's effective user id.
pub fn own_uid() -> u32 {
    // SAFETY: plain system call, cannot fail.
    unsafe { libc::geteuid() }
}

/// Detach the calling (child) process into its own session: no controlling terminal,
/// its own process group, untouched by the signals of the terminal or the daemon's group.
/// For `CommandExt::pre_exec`.
pub fn setsid_pre_exec() -> std::io::Result<()> {
    // SAFETY: setsid is async-signal-safe; called between fork and exec.
    if unsafe { libc::setsid() } < 0 {
        return Err(std::io::Error::last_os_error());
    }
    Ok(())
}
