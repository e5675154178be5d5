//! The real binary in tmux: open the console on a fresh home, queue a fake-run from the
//! keyboard, watch its status change, its CPU and memory in the resources panel and its
//! curve appear, kill it from the keyboard, quit, and check that the daemon was not
//! affected. Skipped (with a printed reason) only when tmux is not installed.
use std::path::{Path, PathBuf};
use std::process::Command;
use std::time::{Duration, Instant};

const BIN: &str = env!("CARGO_BIN_EXE_clipgan");

struct Session {
    socket: String,
    home: tempfile::TempDir,
    _user: tempfile::TempDir,
}

impl Session {
    fn tmux(&self, args: &[&str]) -> String {
        let out = Command::new("tmux").arg("-L").arg(&self.socket).args(args).output().expect("run tmux");
        String::from_utf8_lossy(&out.stdout).into_owned()
    }
    fn keys(&self, keys: &[&str]) {
        for k in keys {
            self.tmux(&["send-keys", "-t", "console", k]);
            std::thread::sleep(Duration::from_millis(150));
        }
    }
    fn screen(&self) -> String {
        self.tmux(&["capture-pane", "-p", "-t", "console"])
    }
    /// Wait until the screen satisfies `f` (panics with the screen after `secs`).
    fn wait_for(&self, what: &str, secs: u64, f: impl Fn(&str) -> bool) -> String {
        let t = Instant::now();
        loop {
            let s = self.screen();
            if f(&s) {
                return s;
            }
            if t.elapsed() > Duration::from_secs(secs) {
                panic!("timed out waiting for {what}; screen:\n{s}");
            }
            std::thread::sleep(Duration::from_millis(200));
        }
    }
    fn clipgan(&self, args: &[&str]) -> std::process::Output {
        Command::new(BIN).args(args).env("CLIPGAN_HOME", self.home.path()).output().expect("run clipgan")
    }
}

impl Drop for Session {
    fn drop(&mut self) {
        self.tmux(&["kill-server"]);
        let _ = self.clipgan(&["daemon", "--stop"]);
    }
}

fn home_path(s: &Session) -> PathBuf {
    s.home.path().to_path_buf()
}

#[test]
fn console_in_tmux_queues_and_follows_a_fake_run() {
    if Command::new("tmux").arg("-V").output().is_err() {
        println!("SKIPPED: tmux is not installed (apt-get install -y tmux)");
        return;
    }
    // Short paths: Unix socket paths are limited to 107 bytes.
    let home = tempfile::Builder::new().prefix("cge").tempdir_in("/tmp").unwrap();
    let user = tempfile::tempdir().unwrap();
    let s = Session { socket: format!("clipgan-e2e-{}", std::process::id()), home, _user: user };
    std::fs::create_dir_all(home_path(&s).join("cfg")).unwrap();
    let cmd = format!(
        "env CLIPGAN_HOME={} CLIPGAN_CONFIG_DIR={} TERM=xterm-256color {} console",
        sh(s.home.path()),
        sh(s._user.path()),
        sh(Path::new(BIN))
    );
    s.tmux(&["new-session", "-d", "-s", "console", "-x", "120", "-y", "40", &cmd]);
    s.wait_for("the console with the daemon", 30, |t| t.contains("1 Runs") && t.contains("daemon ") && t.contains("no tasks"));

    // Configs view, F: the fake-run form; shorten it and queue it.
    s.keys(&["2", "F"]);
    s.wait_for("the queue form", 10, |t| t.contains("queue a fake-run"));
    for _ in 0.."default -- --steps 200 --step-ms 100".len() {
        s.keys(&["BSpace"]);
    }
    s.keys(&["default -- --steps 60 --step-ms 150 --sample-every 0", "Enter"]);
    s.wait_for("the queued message", 10, |t| t.contains("queued task 1"));

    // Runs view: it runs, with progress.
    s.keys(&["1"]);
    s.wait_for("the task running with progress", 30, |t| t.lines().any(|l| l.contains("running") && l.contains('%') && l.contains("fake")));
    // The resources panel samples the worker: its CPU and resident memory.
    s.wait_for("the worker in the resources panel", 20, |t| {
        t.contains("resources") && t.lines().any(|l| l.contains("fake") && l.contains("cpu") && l.contains("rss"))
    });
    // Curves of the selected run: the loss chart with a braille curve.
    s.keys(&["Enter"]);
    let screen = s.wait_for("the curve", 20, |t| t.contains("loss/g_total") && t.chars().any(|c| ('\u{2801}'..='\u{28ff}').contains(&c)));
    assert!(screen.contains("smoothing: EMA"), "{screen}");

    // Back to runs, kill it (graceful: checkpoint, then stopped).
    s.keys(&["1", "x"]);
    s.wait_for("the kill question", 10, |t| t.contains("kill task 1"));
    s.keys(&["y"]);
    s.wait_for("the task stopped", 30, |t| t.lines().any(|l| l.contains("fake") && (l.contains("stopped") || l.contains("killed"))));

    // Quitting the console leaves the daemon and its queue as they were.
    s.keys(&["q"]);
    let t = Instant::now();
    while !s.tmux(&["list-sessions"]).is_empty() && t.elapsed() < Duration::from_secs(10) {
        std::thread::sleep(Duration::from_millis(100));
    }
    let out = s.clipgan(&["status"]);
    let text = String::from_utf8_lossy(&out.stdout);
    assert!(out.status.success(), "{text}");
    assert!(text.contains("stopped") || text.contains("killed"), "{text}");
}

fn sh(p: &Path) -> String {
    format!("'{}'", p.display().to_string().replace('\'', "'\\''"))
}
