//! Shared by the supervisor's tests: a temporary home whose daemon, shims and workers
//! are all killed when it is dropped (even when the test fails).
#![allow(dead_code)]
use clipgan::rundir::JobKind;
use clipgan::supervisor::client::Client;
use clipgan::supervisor::protocol::{AddTask, Snapshot, TaskView};
use clipgan::supervisor::Paths;
use std::path::{Path, PathBuf};
use std::process::{Command, Output};
use std::time::{Duration, Instant};

pub const BIN: &str = env!("CARGO_BIN_EXE_clipgan");

pub struct Home {
    pub dir: tempfile::TempDir,
    pub paths: Paths,
}

impl Home {
    pub fn new() -> Home {
        // Short paths: Unix socket paths are limited to 107 bytes.
        let dir = tempfile::Builder::new().prefix("cgs").tempdir_in("/tmp").expect("temp dir");
        let paths = Paths::for_home(dir.path());
        Home { dir, paths }
    }

    pub fn path(&self) -> &Path {
        self.dir.path()
    }

    /// Run `clipgan ARGS` in this home.
    pub fn run(&self, args: &[&str]) -> Output {
        Command::new(BIN).args(args).env("CLIPGAN_HOME", self.path()).current_dir(self.path()).output().expect("run clipgan")
    }

    /// Run `clipgan ARGS`, which must succeed; its stdout.
    pub fn ok(&self, args: &[&str]) -> String {
        let out = self.run(args);
        assert!(
            out.status.success(),
            "clipgan {args:?} failed: {}\n{}",
            String::from_utf8_lossy(&out.stdout),
            String::from_utf8_lossy(&out.stderr)
        );
        String::from_utf8_lossy(&out.stdout).into_owned()
    }

    /// A client, starting the daemon if needed.
    pub fn client(&self) -> Client {
        Client::connect_or_spawn_with(&self.paths, Path::new(BIN)).expect("connect to the daemon")
    }

    pub fn status(&self) -> Snapshot {
        self.client().status().expect("status")
    }

    /// Queue a fake-run with these job arguments.
    pub fn add_fake(&self, c: &mut Client, args: &[&str], f: impl FnOnce(&mut AddTask)) -> u64 {
        let mut a = AddTask { job: Some(JobKind::FakeRun), args: args.iter().map(|s| s.to_string()).collect(), ..Default::default() };
        f(&mut a);
        c.add(a).expect("add").id
    }

    /// Poll the status until `pred` holds; panics with the last snapshot after `secs`.
    pub fn wait_for(&self, secs: u64, what: &str, pred: impl Fn(&Snapshot) -> bool) -> Snapshot {
        let deadline = Instant::now() + Duration::from_secs(secs);
        let mut c = self.client();
        loop {
            let s = c.status().expect("status");
            if pred(&s) {
                return s;
            }
            if Instant::now() > deadline {
                panic!("timed out waiting for {what}; last status:\n{}", serde_json::to_string_pretty(&s).unwrap());
            }
            std::thread::sleep(Duration::from_millis(100));
        }
    }

    /// Processes whose environment names this home (daemon, shims, workers, hooks).
    pub fn processes(&self) -> Vec<u32> {
        let needle = format!("CLIPGAN_HOME={}\0", self.path().display()).into_bytes();
        let mut out = Vec::new();
        for e in std::fs::read_dir("/proc").into_iter().flatten().flatten() {
            let Some(pid) = e.file_name().to_str().and_then(|s| s.parse::<u32>().ok()) else { continue };
            if pid == std::process::id() {
                continue;
            }
            if let Ok(env) = std::fs::read(format!("/proc/{pid}/environ")) {
                if env.windows(needle.len()).any(|w| w == needle.as_slice()) {
                    out.push(pid);
                }
            }
        }
        out
    }

    pub fn daemon_pids(&self) -> Vec<u32> {
        self.processes()
            .into_iter()
            .filter(|pid| {
                let cmd = std::fs::read(format!("/proc/{pid}/cmdline")).unwrap_or_default();
                let cmd = String::from_utf8_lossy(&cmd).replace('\0', " ");
                cmd.contains(" daemon --foreground") && !is_zombie(*pid)
            })
            .collect()
    }
}

pub fn is_zombie(pid: u32) -> bool {
    std::fs::read_to_string(format!("/proc/{pid}/stat"))
        .ok()
        .and_then(|s| s.rsplit(')').next().and_then(|r| r.split_whitespace().next()).map(|st| st == "Z"))
        .unwrap_or(true)
}

impl Drop for Home {
    fn drop(&mut self) {
        // Everything this home started, by pid, found through its environment.
        for _ in 0..3 {
            let pids = self.processes();
            if pids.is_empty() {
                break;
            }
            for pid in pids {
                unsafe { libc::kill(pid as i32, libc::SIGKILL) };
            }
            std::thread::sleep(Duration::from_millis(50));
        }
    }
}

pub fn task(s: &Snapshot, id: u64) -> &TaskView {
    s.tasks.iter().find(|t| t.task.id == id).unwrap_or_else(|| panic!("no task {id} in the status"))
}

/// Steps of one metric tag in a run folder, in file order.
pub fn metric_steps(run_dir: &Path, tag: &str) -> Vec<u64> {
    let m = clipgan::rundir::read_metrics(run_dir).expect("metrics");
    m.events.iter().filter(|e| e.tag == tag).map(|e| e.step).collect()
}

/// Whether `steps` (deduplicated) are exactly 1..=n.
pub fn covers(steps: &[u64], n: u64) -> bool {
    let mut s: Vec<u64> = steps.to_vec();
    s.sort_unstable();
    s.dedup();
    s == (1..=n).collect::<Vec<_>>()
}

pub fn read(p: impl AsRef<Path>) -> String {
    std::fs::read_to_string(p.as_ref()).unwrap_or_else(|e| panic!("cannot read {}: {e}", p.as_ref().display()))
}

pub fn write(p: impl AsRef<Path>, text: &str) {
    if let Some(d) = p.as_ref().parent() {
        std::fs::create_dir_all(d).unwrap();
    }
    std::fs::write(p.as_ref(), text).unwrap();
}

pub fn pathbuf(s: &str) -> PathBuf {
    PathBuf::from(s)
}

/// The sweep id and task ids of `clipgan sweep --json`'s answer.
pub fn sweep_answer(out: &str) -> (String, Vec<u64>) {
    let answer: serde_json::Value = serde_json::from_str(out.trim()).unwrap_or_else(|e| panic!("not JSON ({e}): {out}"));
    let sweep = answer["sweep"].as_str().unwrap().to_string();
    let ids = answer["ids"].as_array().unwrap().iter().map(|v| v.as_u64().unwrap()).collect();
    (sweep, ids)
}
