//! Real terminals around the real binary:
//! - Debian's xterm as a VT340 (`xterm -ti vt340`, sixel graphics), and kitty (its own
//!   graphics protocol), under Xvfb run `clipgan console --view samples` on a run with a
//!   sample of known colours: the console detects the protocol (its note says so) and a
//!   screenshot shows the sample's colours at the size the layout gives for the
//!   terminal's cell size.
//! - A real sshd on localhost (a key made here, started here on a free port as the
//!   current user): `ssh -tt localhost clipgan console` inside tmux: the first frame
//!   arrives, keys work, images fall back to halfblocks; dropping the SSH connection
//!   leaves the daemon (started inside that SSH session) and its job running, and a new
//!   SSH session's console shows the same state.
//!
//! The programs come from Debian's packages, installed by scripts/test-deps.sh. A test
//! skips (saying why) only when a package is missing and cannot be installed here (not
//! root, or no apt-get); otherwise a missing program fails it.
use std::io::Write;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

const BIN: &str = env!("CARGO_BIN_EXE_clipgan");

/// Whether `programs` ((program, Debian package)) are all there. When one is missing:
/// false (skip, with the reason printed) if apt cannot install it here, else a panic
/// saying to run scripts/test-deps.sh.
fn have(test: &str, programs: &[(&str, &str)]) -> bool {
    let missing: Vec<&(&str, &str)> = programs.iter().filter(|(p, _)| which(p).is_none()).collect();
    if missing.is_empty() {
        return true;
    }
    let pkgs: Vec<&str> = missing.iter().map(|(_, pkg)| *pkg).collect();
    // SAFETY: getuid has no preconditions.
    let root = unsafe { libc::getuid() } == 0;
    if !root || which("apt-get").is_none() {
        println!(
            "SKIPPED {test}: {} missing and apt cannot install here ({})",
            pkgs.join(", "),
            if root { "no apt-get" } else { "not root" }
        );
        return false;
    }
    panic!("{test}: Debian packages {} are missing; scripts/test-deps.sh installs them (make test does)", pkgs.join(" "));
}

fn which(p: &str) -> Option<PathBuf> {
    if p.starts_with('/') {
        return Path::new(p).is_file().then(|| PathBuf::from(p));
    }
    std::env::var_os("PATH").and_then(|paths| std::env::split_paths(&paths).map(|d| d.join(p)).find(|f| f.is_file()))
}

fn sh(p: &Path) -> String {
    format!("'{}'", p.display().to_string().replace('\'', "'\\''"))
}

/// A child process killed (and reaped) on drop.
struct Proc(Child);

impl Drop for Proc {
    fn drop(&mut self) {
        let _ = self.0.kill();
        let _ = self.0.wait();
    }
}

/// A project home with a daemon, stopped on drop.
struct Home {
    dir: tempfile::TempDir,
    user: tempfile::TempDir,
}

impl Home {
    fn new() -> Home {
        // Short paths: the daemon's Unix socket path is limited to 107 bytes.
        let dir = tempfile::Builder::new().prefix("cgt").tempdir_in("/tmp").unwrap();
        std::fs::create_dir_all(dir.path().join("cfg")).unwrap();
        Home { dir, user: tempfile::tempdir().unwrap() }
    }
    fn path(&self) -> &Path {
        self.dir.path()
    }
    fn clipgan(&self, args: &[&str]) -> std::process::Output {
        Command::new(BIN).args(args).env("CLIPGAN_HOME", self.path()).env_remove("CLIPGAN_RUN_DIR").output().expect("run clipgan")
    }
    /// The daemon's snapshot.
    fn status(&self) -> serde_json::Value {
        let out = self.clipgan(&["status", "--json"]);
        assert!(out.status.success(), "{}", String::from_utf8_lossy(&out.stderr));
        serde_json::from_slice(&out.stdout).unwrap()
    }
    fn wait_task(&self, id: u64, what: &str, secs: u64, f: impl Fn(&serde_json::Value) -> bool) -> serde_json::Value {
        let t = Instant::now();
        loop {
            let s = self.status();
            if let Some(task) = s["tasks"].as_array().and_then(|ts| ts.iter().find(|t| t["id"] == id)) {
                if f(task) {
                    return task.clone();
                }
            }
            assert!(t.elapsed() < Duration::from_secs(secs), "timed out waiting for task {id} to be {what}: {s}");
            std::thread::sleep(Duration::from_millis(200));
        }
    }
    /// `env CLIPGAN_HOME=.. CLIPGAN_CONFIG_DIR=.. clipgan ARGS` for a shell.
    fn command(&self, args: &str) -> String {
        format!("env CLIPGAN_HOME={} CLIPGAN_CONFIG_DIR={} {} {args}", sh(self.path()), sh(self.user.path()), sh(Path::new(BIN)))
    }
}

impl Drop for Home {
    fn drop(&mut self) {
        let _ = self.clipgan(&["daemon", "--stop"]);
        // Its workers keep running after the daemon stops: end them.
        if let Ok(s) = serde_json::from_slice::<serde_json::Value>(&self.clipgan(&["status", "--json"]).stdout) {
            for t in s["tasks"].as_array().into_iter().flatten() {
                if let Some(pid) = t["pid"].as_i64().or(t["status"]["pid"].as_i64()) {
                    // SAFETY: a kill of our own worker; harmless if it is gone.
                    unsafe { libc::kill(pid as i32, libc::SIGKILL) };
                }
            }
        }
    }
}

/// The sample: 96 x 64, left half red, right half blue.
const RED: [u8; 3] = [230, 20, 20];
const BLUE: [u8; 3] = [20, 20, 230];

/// Queue a short fake-run, wait for it to finish, and give its run folder a sample of
/// known colours (the newest step, so the samples view shows it).
fn run_with_sample(home: &Home) -> PathBuf {
    let out = home.clipgan(&["queue", "add", "--job", "fake-run", "--", "--steps", "3", "--step-ms", "10", "--sample-every", "0"]);
    assert!(out.status.success(), "{}", String::from_utf8_lossy(&out.stderr));
    let task = home.wait_task(1, "finished", 60, |t| t["state"] == "finished");
    let run = PathBuf::from(task["run_dir"].as_str().unwrap());
    let img = image::RgbImage::from_fn(96, 64, |x, _| image::Rgb(if x < 48 { RED } else { BLUE }));
    img.save(run.join("samples/000000999_test.png")).unwrap();
    let ev = serde_json::json!({"step": 999, "epoch": 0, "wall": 1.0, "tag": "test", "file": "samples/000000999_test.png",
        "captions": ["red left, blue right"], "rows": 1, "cols": 1});
    let mut f = std::fs::OpenOptions::new().create(true).append(true).open(run.join("samples/index.jsonl")).unwrap();
    writeln!(f, "{ev}").unwrap();
    run
}

/// A free X display number (no lock file, no socket).
fn free_display() -> u32 {
    (40..99)
        .map(|n| n + std::process::id() % 50)
        .find(|n| !Path::new(&format!("/tmp/.X{n}-lock")).exists() && !Path::new(&format!("/tmp/.X11-unix/X{n}")).exists())
        .expect("a free X display")
}

fn wait_file(path: &Path, what: &str, secs: u64, f: impl Fn(&[u8]) -> bool) -> Vec<u8> {
    let t = Instant::now();
    loop {
        let b = std::fs::read(path).unwrap_or_default();
        if f(&b) {
            return b;
        }
        assert!(
            t.elapsed() < Duration::from_secs(secs),
            "timed out waiting for {what}; {}:\n{}",
            path.display(),
            String::from_utf8_lossy(&b)
        );
        std::thread::sleep(Duration::from_millis(200));
    }
}

/// The text on a `cols` x `rows` terminal after `output`.
fn screen(output: &[u8], cols: u16, rows: u16) -> String {
    let size = |n: u16| std::num::NonZeroU16::new(n.max(1)).unwrap();
    let mut p = vt100::Parser::new(size(rows), size(cols), 0);
    p.process(output);
    p.screen().contents()
}

/// The bounding box (x0, y0, x1, y1; exclusive) of the pixels near `c`.
fn bbox(img: &image::RgbImage, c: [u8; 3]) -> Option<(u32, u32, u32, u32)> {
    let mut b: Option<(u32, u32, u32, u32)> = None;
    for (x, y, p) in img.enumerate_pixels() {
        if p.0.iter().zip(c).all(|(a, b)| (*a as i32 - b as i32).abs() <= 40) {
            b = Some(match b {
                None => (x, y, x + 1, y + 1),
                Some((x0, y0, x1, y1)) => (x0.min(x), y0.min(y), x1.max(x + 1), y1.max(y + 1)),
            });
        }
    }
    b
}

#[test]
fn xterm_as_a_vt340_shows_the_sample_in_sixel_at_its_fitted_size() {
    if !have("xterm", &[("xterm", "xterm"), ("Xvfb", "xvfb"), ("import", "imagemagick"), ("script", "bsdutils")]) {
        return;
    }
    graphics_terminal("sixel", |geometry, cmd| {
        let mut c = Command::new("xterm");
        c.args(["-ti", "vt340", "-geometry", &format!("{}x{}+0+0", geometry.0, geometry.1), "-xrm", "XTerm*numColorRegisters: 256"]);
        // So that xterm answers the cell-size query (CSI 16 t) that the test reads
        // (without it the console takes the cell size from the pty's size in pixels).
        c.args(["-xrm", "XTerm*allowWindowOps: true"]);
        c.args(["-e", "sh", "-c", cmd]);
        c
    });
}

#[test]
fn kitty_shows_the_sample_with_its_graphics_protocol_at_its_fitted_size() {
    if !have("kitty", &[("kitty", "kitty"), ("Xvfb", "xvfb"), ("import", "imagemagick"), ("script", "bsdutils")]) {
        return;
    }
    // A kitty older than 0.28 (Debian 12's is 0.26.5) rejects ratatui-image's placements:
    // the console sees its version and uses halfblocks there.
    let out = Command::new("kitty").arg("--version").output().unwrap();
    let version = String::from_utf8_lossy(&out.stdout).split_whitespace().nth(1).unwrap_or_default().to_string();
    let mut parts = version.split('.').map(|p| p.parse::<u32>().unwrap_or(0));
    let old = (parts.next().unwrap_or(0), parts.next().unwrap_or(0)) < clipgan::console::images::KITTY_PLACEHOLDERS_SINCE;
    eprintln!("kitty {version}: expecting {}", if old { "halfblocks" } else { "kitty graphics" });
    graphics_terminal(if old { "halfblocks" } else { "kitty" }, |geometry, cmd| {
        let mut c = Command::new("kitty");
        for o in [
            format!("initial_window_width={}c", geometry.0),
            format!("initial_window_height={}c", geometry.1),
            "remember_window_size=no".into(),
            "placement_strategy=top-left".into(),
            "window_padding_width=0".into(),
            "linux_display_server=x11".into(),
        ] {
            c.args(["-o", &o]);
        }
        c.args(["sh", "-c", cmd]);
        c
    });
}

/// Run `clipgan console --view samples` in the terminal that `terminal(size, command)`
/// starts, under Xvfb, on a run whose newest sample has known colours; check that the
/// console chose `protocol` by itself and that a screenshot holds the sample at the size
/// the layout gives for the terminal's cell size.
fn graphics_terminal(protocol: &str, terminal: impl Fn((u16, u16), &str) -> Command) {
    let home = Home::new();
    run_with_sample(&home);
    let n = free_display();
    let display = format!(":{n}");
    let _x = Proc(
        Command::new("Xvfb").args([&display, "-screen", "0", "1600x1200x24", "-nolisten", "tcp"]).stderr(Stdio::null()).spawn().unwrap(),
    );
    let socket = PathBuf::from(format!("/tmp/.X11-unix/X{n}"));
    wait_file(&socket, "Xvfb's socket", 20, |_| socket.exists());
    let (log_in, log_out) = (home.path().join("tty.in"), home.path().join("tty.out"));
    // script between the terminal and the console logs what each says to the other.
    let console =
        format!("script -q -f -I {} -O {} -c {}", sh(&log_in), sh(&log_out), sh(Path::new(&home.command("console --view samples"))));
    let (cols, rows) = (120u16, 40u16);
    let _term =
        Proc(terminal((cols, rows), &console).env("DISPLAY", &display).stdout(Stdio::null()).stderr(Stdio::null()).spawn().unwrap());
    // The renderer's note on the screen (rebuilt from the logged output: the console only
    // redraws the cells that change): detected, not forced.
    let note = format!("renderer: {protocol}");
    let out = wait_file(&log_out, "the console's renderer note", 30, |b| screen(b, cols, rows).contains(&note));
    assert!(!screen(&out, cols, rows).contains(&format!("{note} (forced)")));
    let halfblocks = protocol == "halfblocks";
    // The terminal's answer to CSI 16 t: its cell size in pixels (ESC [ 6 ; height ; width t).
    let input = std::fs::read(&log_in).unwrap();
    let text = String::from_utf8_lossy(&input);
    let cell = text
        .split("\x1b[6;")
        .nth(1)
        .and_then(|s| s.split('t').next())
        .and_then(|s| s.split_once(';'))
        .map(|(h, w)| (w.parse::<u16>().unwrap(), h.parse::<u16>().unwrap()))
        .unwrap_or_else(|| panic!("no cell size answer from the terminal: {text:?}"));

    // Where the layout puts the image for this terminal, and the fitted size.
    let area = clipgan::console::samples::body_area((cols, rows));
    let shape = clipgan::console::samples::PaneShape { image: Some((96, 64)), caption_lines: 1 };
    // Every renderer lays out with the terminal's own cell size (halfblocks too: 1 x 2
    // image pixels a cell, but the picture keeps its aspect on the screen) and halfblocks
    // then take whole cells. (A 10 x 20 px assumption for halfblocks held only while
    // kitty's font was 10 px wide; with a 9 px font the image is 900 x 600, not 891 x 660.)
    let layout_cell = cell;
    let (_, img_rect, _) = clipgan::console::samples::layout(area, &[shape], layout_cell).panes[0];
    let (w, h) = clipgan::console::images::fit_pixels((96, 64), (img_rect.width, img_rect.height), layout_cell);
    let (w, h) = if halfblocks {
        let (c, r) = clipgan::console::images::cells_for((w, h), layout_cell);
        (c as u32 * cell.0 as u32, r as u32 * cell.1 as u32)
    } else {
        (w, h)
    };
    let tol = if halfblocks { cell.1 as u32 } else { 2 };
    assert!(w > 96 * 2, "the test expects the sample enlarged: {w} x {h} in {img_rect:?} cells of {cell:?}");

    // The screenshot: red on the left half, blue on the right, at that size.
    let shot = home.path().join("shot.png");
    // Until the whole picture is there: a terminal paints halfblock rows as they arrive, so
    // a screenshot can catch the top rows only. After 30 s the last one seen is checked.
    let t = Instant::now();
    let mut seen = None;
    let (red, blue) = loop {
        let ok = Command::new("import").args(["-display", &display, "-window", "root"]).arg(&shot).status().unwrap().success();
        if ok {
            let img = image::open(&shot).unwrap().to_rgb8();
            if let (Some(r), Some(b)) = (bbox(&img, RED), bbox(&img, BLUE)) {
                seen = Some((r, b));
                if b.2 - r.0 >= w - tol && r.3.max(b.3) - r.1.min(b.1) >= h - tol {
                    break (r, b);
                }
            }
        }
        if t.elapsed() > Duration::from_secs(30) {
            break seen.unwrap_or_else(|| panic!("the sample never appeared in the screenshot {}", shot.display()));
        }
        std::thread::sleep(Duration::from_millis(500));
    };
    let (x0, y0, x1, y1) = (red.0, red.1.min(blue.1), blue.2, red.3.max(blue.3));
    eprintln!("{protocol}: cell {cell:?}, image rect {img_rect:?}, fitted {w} x {h} px; on screen red {red:?} blue {blue:?}");
    assert!((x1 - x0).abs_diff(w) <= tol && (y1 - y0).abs_diff(h) <= tol, "on screen {} x {} px, expected {w} x {h}", x1 - x0, y1 - y0);
    // Left half red, right half blue, side by side on the same rows.
    assert!((red.2 - red.0).abs_diff(w / 2) <= tol && (blue.2 - blue.0).abs_diff(w / 2) <= tol, "{red:?} {blue:?}");
    assert!(red.2.abs_diff(blue.0) <= tol && red.1.abs_diff(blue.1) <= 1, "{red:?} {blue:?}");
    // The image's top-left corner is at the cell where the layout put it (give or take
    // the terminal's border).
    let (bx, by) = (x0 as i64 - img_rect.x as i64 * cell.0 as i64, y0 as i64 - img_rect.y as i64 * cell.1 as i64);
    assert!((0..=4 + tol as i64).contains(&bx) && (0..=4 + tol as i64).contains(&by), "offset {bx},{by} from the expected cell");
}

/// A real sshd on 127.0.0.1, as the current user, on a free port, for one test.
struct Sshd {
    _proc: Proc,
    port: u16,
    key: PathBuf,
}

impl Sshd {
    fn start(dir: &Path) -> Sshd {
        for name in ["host_key", "user_key"] {
            let st = Command::new("ssh-keygen").args(["-q", "-t", "ed25519", "-N", "", "-f"]).arg(dir.join(name)).status().unwrap();
            assert!(st.success());
        }
        std::fs::copy(dir.join("user_key.pub"), dir.join("authorized_keys")).unwrap();
        let port = std::net::TcpListener::bind("127.0.0.1:0").unwrap().local_addr().unwrap().port();
        let config = format!(
            "Port {port}\nListenAddress 127.0.0.1\nHostKey {d}/host_key\nAuthorizedKeysFile {d}/authorized_keys\nPidFile {d}/sshd.pid\n\
             StrictModes no\nUsePAM no\nPasswordAuthentication no\nKbdInteractiveAuthentication no\nPubkeyAuthentication yes\n\
             PermitRootLogin prohibit-password\nPermitUserEnvironment no\n",
            d = dir.display()
        );
        std::fs::write(dir.join("sshd_config"), config).unwrap();
        // sshd's privilege separation folder (as root it must exist).
        // SAFETY: getuid has no preconditions.
        if unsafe { libc::getuid() } == 0 {
            std::fs::create_dir_all("/run/sshd").unwrap();
        }
        let sshd = which("sshd").or_else(|| which("/usr/sbin/sshd")).expect("sshd");
        let proc = Proc(Command::new(sshd).args(["-D", "-e", "-f"]).arg(dir.join("sshd_config")).stderr(Stdio::null()).spawn().unwrap());
        let t = Instant::now();
        while std::net::TcpStream::connect(("127.0.0.1", port)).is_err() {
            assert!(t.elapsed() < Duration::from_secs(20), "sshd did not listen on {port}");
            std::thread::sleep(Duration::from_millis(100));
        }
        Sshd { _proc: proc, port, key: dir.join("user_key") }
    }

    /// `ssh [-tt] ... 127.0.0.1 'REMOTE'` as one shell command line.
    fn ssh(&self, tty: bool, remote: &str) -> String {
        format!(
            "ssh {} -p {} -i {} -o BatchMode=yes -o StrictHostKeyChecking=no -o UserKnownHostsFile=/dev/null -o LogLevel=ERROR 127.0.0.1 {}",
            if tty { "-tt" } else { "-T" },
            self.port,
            sh(&self.key),
            sh(Path::new(remote))
        )
    }
}

struct Tmux(String);

impl Tmux {
    fn run(&self, args: &[&str]) -> String {
        let out = Command::new("tmux").arg("-L").arg(&self.0).args(args).output().expect("run tmux");
        String::from_utf8_lossy(&out.stdout).into_owned()
    }
    fn screen(&self, s: &str) -> String {
        self.run(&["capture-pane", "-p", "-t", s])
    }
    fn wait_for(&self, s: &str, what: &str, secs: u64, f: impl Fn(&str) -> bool) -> String {
        let t = Instant::now();
        loop {
            let sc = self.screen(s);
            if f(&sc) {
                return sc;
            }
            assert!(t.elapsed() < Duration::from_secs(secs), "timed out waiting for {what}; screen:\n{sc}");
            std::thread::sleep(Duration::from_millis(200));
        }
    }
}

impl Drop for Tmux {
    fn drop(&mut self) {
        self.run(&["kill-server"]);
    }
}

#[test]
fn the_console_over_ssh_in_tmux_and_the_daemon_outlives_the_connection() {
    if !have("ssh", &[("sshd", "openssh-server"), ("ssh", "openssh-client"), ("ssh-keygen", "openssh-client"), ("tmux", "tmux")]) {
        return;
    }
    let home = Home::new();
    let keys = tempfile::Builder::new().prefix("cgs").tempdir_in("/tmp").unwrap();
    let sshd = Sshd::start(keys.path());
    // Queue a long job over SSH: the daemon starts inside that SSH session.
    let queue = sshd.ssh(false, &home.command("queue add --job fake-run -- --steps 100000 --step-ms 200 --sample-every 5"));
    let out = Command::new("sh").args(["-c", &queue]).output().unwrap();
    assert!(out.status.success(), "{}{}", String::from_utf8_lossy(&out.stdout), String::from_utf8_lossy(&out.stderr));
    let task = home.wait_task(1, "running with a sample", 60, |t| t["state"] == "running" && t["status"]["step"].as_u64() >= Some(6));
    let daemon_pid = home.status()["daemon_pid"].as_i64().unwrap();

    // The console over ssh -tt inside tmux.
    let tmux = Tmux(format!("clipgan-ssh-{}", std::process::id()));
    let console = sshd.ssh(true, &home.command("console").replace("env ", "env TERM=xterm-256color "));
    tmux.run(&["new-session", "-d", "-s", "one", "-x", "120", "-y", "40", &console]);
    tmux.wait_for("one", "the first frame", 30, |s| s.contains("1 Runs") && s.lines().any(|l| l.contains("running") && l.contains("fake")));
    // Keys work: the samples view, where images fall back to halfblocks (tmux here has
    // no outer terminal with graphics), and the help overlay.
    tmux.run(&["send-keys", "-t", "one", "5"]);
    let s = tmux.wait_for("one", "the samples view with an image", 30, |s| s.contains("renderer: halfblocks") && s.contains('▀'));
    assert!(s.contains("task 1"), "{s}");
    tmux.run(&["send-keys", "-t", "one", "?"]);
    tmux.wait_for("one", "the help overlay", 10, |s| s.contains("keys: Samples"));
    // Any key closes the help; then 1 is the runs view.
    tmux.run(&["send-keys", "-t", "one", "Escape"]);
    tmux.wait_for("one", "the help closed", 10, |s| !s.contains("keys: Samples"));
    tmux.run(&["send-keys", "-t", "one", "1"]);
    tmux.wait_for("one", "the runs view", 10, |s| s.contains("progress") && !s.contains("keys: Samples"));

    // Drop the connection: the ssh client dies with its tmux session.
    tmux.run(&["kill-session", "-t", "one"]);
    std::thread::sleep(Duration::from_secs(2));
    // SAFETY: signal 0 only checks that the process exists.
    assert_eq!(unsafe { libc::kill(daemon_pid as i32, 0) }, 0, "the daemon died with the SSH connection");
    let before = home.wait_task(1, "running", 10, |t| t["state"] == "running")["status"]["step"].as_u64().unwrap();
    let after = home.wait_task(1, "still stepping", 20, |t| t["state"] == "running" && t["status"]["step"].as_u64() > Some(before + 3));
    assert_eq!(after["run_dir"], task["run_dir"]);
    assert_eq!(home.status()["daemon_pid"].as_i64(), Some(daemon_pid));

    // A new SSH session's console shows the same task, still running.
    tmux.run(&["new-session", "-d", "-s", "two", "-x", "120", "-y", "40", &console]);
    let s = tmux.wait_for("two", "the same state", 30, |s| s.lines().any(|l| l.contains("running") && l.contains("fake")));
    assert!(s.contains(&format!("daemon {daemon_pid}")), "{s}");
    tmux.run(&["send-keys", "-t", "two", "q"]);
}
