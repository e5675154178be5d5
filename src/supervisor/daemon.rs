//! The daemon process (`clipgan daemon`): one per home (an flock on `daemon.lock`
//! decides), a tokio loop around [`Core`]: the Unix socket, child exits (SIGCHLD),
//! timers, the config watcher, SIGTERM.
use super::cfgindex;
use super::core::Core;
use super::procs;
use super::protocol::*;
use super::state;
use super::Paths;
use crate::util::fsx;
use anyhow::{bail, Context, Result};
use std::collections::HashMap;
use std::io::{Read, Seek, SeekFrom, Write};
use std::os::unix::fs::PermissionsExt;
use std::path::{Path, PathBuf};
use std::time::Duration;
use tokio::io::{AsyncBufReadExt, AsyncWriteExt, BufReader};
use tokio::net::{UnixListener, UnixStream};
use tokio::signal::unix::{signal, SignalKind};
use tokio::sync::{mpsc, oneshot, watch};

/// Unix socket paths are limited to 108 bytes (including the final NUL).
const SOCKET_PATH_MAX: usize = 107;

enum Msg {
    Request(Request, oneshot::Sender<Response>),
    ConfigChanged,
    /// Validations made on a blocking thread (see [`start_validation`]).
    ConfigsValidated(Vec<(PathBuf, cfgindex::Sig, ConfigEntry)>),
}

/// Validate the new and changed files of `cfg/` on a blocking thread, so that a config
/// slow to read or parse never delays the loop that answers clients; the results come
/// back as [`Msg::ConfigsValidated`]. `pending` holds what is being validated (not
/// started twice). Returns whether the index changed now (files gone).
fn start_validation(core: &mut Core, tx: &mpsc::UnboundedSender<Msg>, pending: &mut HashMap<PathBuf, cfgindex::Sig>) -> bool {
    let (forgot, todo) = core.cfg.stale();
    let todo: Vec<_> = todo.into_iter().filter(|(p, sig)| pending.get(p) != Some(sig)).collect();
    if !todo.is_empty() {
        pending.extend(todo.iter().cloned());
        let root = core.cfg.root().to_path_buf();
        let tx = tx.clone();
        tokio::task::spawn_blocking(move || {
            let done = todo.into_iter().map(|(p, sig)| {
                let entry = cfgindex::validate(&root, &p, sig.1);
                (p, sig, entry)
            });
            let _ = tx.send(Msg::ConfigsValidated(done.collect()));
        });
    }
    forgot
}

/// Take the home's daemon lock: `Ok(None)` when another daemon holds it.
pub fn acquire_lock(paths: &Paths) -> Result<Option<std::fs::File>> {
    let mut f = std::fs::OpenOptions::new()
        .create(true)
        .truncate(false)
        .read(true)
        .write(true)
        .open(&paths.lock)
        .with_context(|| format!("cannot open {}", paths.lock.display()))?;
    if !super::shim::try_flock(&f).with_context(|| format!("cannot lock {}", paths.lock.display()))? {
        return Ok(None);
    }
    f.set_len(0)?;
    f.seek(SeekFrom::Start(0))?;
    writeln!(f, "{}", std::process::id())?;
    Ok(Some(f))
}

/// The pid written in the lock file by the daemon holding it.
pub fn lock_holder(paths: &Paths) -> Option<u32> {
    let mut s = String::new();
    std::fs::File::open(&paths.lock).ok()?.read_to_string(&mut s).ok()?;
    s.trim().parse().ok()
}

/// Make `<home>/.clipgan` (mode 0700: the socket inside is the user's only).
pub fn prepare_state_dir(paths: &Paths) -> Result<()> {
    fsx::create_dir_all(&paths.state_dir)?;
    std::fs::set_permissions(&paths.state_dir, std::fs::Permissions::from_mode(0o700))
        .with_context(|| format!("cannot make {} private", paths.state_dir.display()))
}

/// Run the daemon in this process until SIGTERM/SIGINT or a shutdown request.
pub fn run_foreground(paths: Paths) -> Result<()> {
    prepare_state_dir(&paths)?;
    if paths.socket.as_os_str().len() > SOCKET_PATH_MAX {
        bail!(
            "the socket path {} is longer than Unix sockets allow ({SOCKET_PATH_MAX} bytes); use a shorter CLIPGAN_HOME",
            paths.socket.display()
        );
    }
    let Some(_lock) = acquire_lock(&paths)? else {
        bail!(
            "a daemon already runs for {} (pid {})",
            paths.home.display(),
            lock_holder(&paths).map(|p| p.to_string()).unwrap_or_else(|| "unknown".into())
        );
    };
    let exe = std::env::current_exe().context("cannot find the clipgan binary")?;
    let mut core = Core::open(paths.clone(), state::atomic_writer(), exe)?;
    for w in core.commit() {
        eprintln!("clipgan daemon: {w}");
    }
    eprintln!("clipgan daemon: pid {} serving {} ({} task(s))", std::process::id(), paths.home.display(), core.state.tasks.len());
    let rt = tokio::runtime::Builder::new_current_thread().enable_all().build().context("cannot start the async runtime")?;
    let result = rt.block_on(serve(&mut core, &paths));
    let _ = std::fs::remove_file(&paths.socket);
    for w in core.commit() {
        eprintln!("clipgan daemon: {w}");
    }
    eprintln!("clipgan daemon: pid {} stopped", std::process::id());
    result
}

async fn serve(core: &mut Core, paths: &Paths) -> Result<()> {
    // We hold the lock: a socket file left here is stale.
    let _ = std::fs::remove_file(&paths.socket);
    let listener = UnixListener::bind(&paths.socket).with_context(|| format!("cannot listen on {}", paths.socket.display()))?;
    std::fs::set_permissions(&paths.socket, std::fs::Permissions::from_mode(0o600))
        .with_context(|| format!("cannot set the mode of {}", paths.socket.display()))?;
    let (tx, mut rx) = mpsc::unbounded_channel::<Msg>();
    let (rev_tx, rev_rx) = watch::channel(core.rev());
    let own_uid = procs::own_uid();
    {
        let tx = tx.clone();
        tokio::spawn(async move {
            loop {
                match listener.accept().await {
                    Ok((stream, _)) => {
                        tokio::spawn(connection(stream, tx.clone(), rev_rx.clone(), own_uid));
                    }
                    Err(e) => {
                        eprintln!("clipgan daemon: accept failed: {e}");
                        tokio::time::sleep(Duration::from_millis(100)).await;
                    }
                }
            }
        });
    }
    let mut watcher = None;
    start_watcher(core, &tx, &mut watcher);

    let mut sigchld = signal(SignalKind::child())?;
    let mut sigterm = signal(SignalKind::terminate())?;
    let mut sigint = signal(SignalKind::interrupt())?;
    let mut sighup = signal(SignalKind::hangup())?;
    let mut tick = tokio::time::interval(Duration::from_millis(500));
    tick.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
    let mut cfg_poll = tokio::time::interval(Duration::from_secs(5));
    cfg_poll.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
    let mut batch = Vec::new();
    let mut validating = HashMap::new();
    let mut rescans = Vec::new();
    loop {
        let mut cfg_changed = false;
        tokio::select! {
            Some(m) = rx.recv() => {
                batch.push(m);
                while let Ok(m) = rx.try_recv() {
                    batch.push(m);
                }
            }
            _ = sigchld.recv() => core.tick(),
            _ = tick.tick() => core.tick(),
            _ = cfg_poll.tick() => {
                if watcher.is_none() {
                    start_watcher(core, &tx, &mut watcher);
                }
                cfg_changed = start_validation(core, &tx, &mut validating);
            }
            _ = sighup.recv() => {}
            _ = sigterm.recv() => break,
            _ = sigint.recv() => break,
        }
        let mut replies = Vec::new();
        for m in batch.drain(..) {
            match m {
                // A rescan asked by a client runs off the loop like any other; the
                // client is answered once the files it found are validated.
                Msg::Request(Request::Rescan, reply) => {
                    cfg_changed |= start_validation(core, &tx, &mut validating);
                    rescans.push(reply);
                }
                Msg::Request(req, reply) => replies.push((reply, core.handle(req))),
                Msg::ConfigChanged => cfg_changed |= start_validation(core, &tx, &mut validating),
                Msg::ConfigsValidated(done) => {
                    for (path, sig, entry) in done {
                        if validating.get(&path) == Some(&sig) {
                            validating.remove(&path);
                        }
                        cfg_changed |= core.cfg.apply(path, sig, entry);
                    }
                }
            }
        }
        if cfg_changed {
            core.bump();
        }
        if validating.is_empty() {
            for reply in rescans.drain(..) {
                replies.push((reply, core.handle(Request::Configs)));
            }
        }
        let warnings = core.commit();
        for (reply, mut resp) in replies {
            if let Response::Ok { warnings: w, .. } | Response::Added { warnings: w, .. } = &mut resp {
                w.extend(warnings.iter().cloned());
            }
            let _ = reply.send(resp);
        }
        rev_tx.send_if_modified(|r| {
            let changed = *r != core.rev();
            *r = core.rev();
            changed
        });
        if core.shutdown {
            // Let the connection tasks write their answers (the shutdown's included).
            tokio::time::sleep(Duration::from_millis(100)).await;
            break;
        }
    }
    Ok(())
}

fn start_watcher(core: &mut Core, tx: &mpsc::UnboundedSender<Msg>, slot: &mut Option<cfgindex::Watcher>) {
    let root: PathBuf = core.cfg.root().to_path_buf();
    if !root.is_dir() {
        core.cfg.watch = format!("polling every 5 s ({} does not exist yet)", root.display());
        return;
    }
    let tx = tx.clone();
    let before = core.cfg.watch.clone();
    match cfgindex::watch(&root, move || {
        let _ = tx.send(Msg::ConfigChanged);
    }) {
        Ok(w) => {
            *slot = Some(w);
            core.cfg.watch = "notify (and a rescan every 5 s)".into();
        }
        Err(e) => core.cfg.watch = format!("polling every 5 s (file events unavailable: {e})"),
    }
    if core.cfg.watch != before {
        core.bump();
    }
}

async fn connection(stream: UnixStream, tx: mpsc::UnboundedSender<Msg>, rev_rx: watch::Receiver<u64>, own_uid: u32) {
    let peer_uid = stream.peer_cred().map(|c| c.uid()).ok();
    let (r, mut w) = stream.into_split();
    if !peer_uid.is_some_and(|u| procs::peer_allowed(u, own_uid)) {
        let resp = Response::Error {
            message: format!(
                "permission denied: this daemon serves user {own_uid} only, the client is {}",
                peer_uid.map(|u| format!("user {u}")).unwrap_or_else(|| "unknown".into())
            ),
            details: Vec::new(),
        };
        let _ = write_response(&mut w, resp).await;
        return;
    }
    let mut lines = BufReader::new(r).lines();
    while let Ok(Some(line)) = lines.next_line().await {
        if line.trim().is_empty() {
            continue;
        }
        let resp = match parse_request(&line) {
            Err(resp) => resp,
            Ok(Request::Wait { since, timeout_ms }) => {
                let mut rx = rev_rx.clone();
                let deadline = tokio::time::sleep(Duration::from_millis(timeout_ms.min(600_000)));
                tokio::pin!(deadline);
                loop {
                    if *rx.borrow_and_update() > since {
                        break;
                    }
                    tokio::select! {
                        r = rx.changed() => if r.is_err() { break },
                        _ = &mut deadline => break,
                    }
                }
                let rev = *rx.borrow();
                Response::Rev { rev }
            }
            Ok(req) => {
                let (otx, orx) = oneshot::channel();
                if tx.send(Msg::Request(req, otx)).is_err() {
                    break;
                }
                match orx.await {
                    Ok(r) => r,
                    Err(_) => break,
                }
            }
        };
        if write_response(&mut w, resp).await.is_err() {
            break;
        }
    }
}

fn parse_request(line: &str) -> std::result::Result<Request, Response> {
    let bad = |m: String| Response::Error { message: m, details: Vec::new() };
    let value: serde_json::Value = serde_json::from_str(line).map_err(|e| bad(format!("malformed request (not JSON): {e}")))?;
    match value.get("v").and_then(|v| v.as_u64()) {
        Some(v) if v == PROTOCOL_VERSION as u64 => {}
        Some(v) => {
            return Err(bad(format!(
                "protocol version {v} is not spoken here (this daemon speaks {PROTOCOL_VERSION}); after an upgrade, restart the daemon: clipgan daemon --stop"
            )))
        }
        None => return Err(bad("malformed request: no protocol version \"v\"".into())),
    }
    serde_json::from_value::<RequestLine>(value).map(|r| r.req).map_err(|e| bad(format!("malformed request: {e}")))
}

async fn write_response(w: &mut tokio::net::unix::OwnedWriteHalf, resp: Response) -> std::io::Result<()> {
    let mut line = serde_json::to_vec(&ResponseLine { v: PROTOCOL_VERSION, resp }).expect("responses serialise");
    line.push(b'\n');
    w.write_all(&line).await
}

/// Start a daemon for `paths` in the background (detached: its own session, output to
/// `daemon.log`) unless one answers already; returns once it answers. `exe` is the
/// clipgan binary.
pub fn launch(paths: &Paths, exe: &Path) -> Result<()> {
    if super::client::Client::connect(paths).is_ok() {
        return Ok(());
    }
    prepare_state_dir(paths)?;
    // Keep the log from growing without bound: one old generation.
    if std::fs::metadata(&paths.log).is_ok_and(|m| m.len() > 8 << 20) {
        let _ = std::fs::rename(&paths.log, paths.log.with_extension("log.1"));
    }
    let log = std::fs::OpenOptions::new()
        .create(true)
        .append(true)
        .open(&paths.log)
        .with_context(|| format!("cannot open {}", paths.log.display()))?;
    let log_start = log.metadata().map(|m| m.len()).unwrap_or(0);
    let mut cmd = std::process::Command::new(exe);
    cmd.arg("daemon")
        .arg("--foreground")
        .env("CLIPGAN_HOME", &paths.home)
        .current_dir(&paths.home)
        .stdin(std::process::Stdio::null())
        .stdout(log.try_clone()?)
        .stderr(log);
    use std::os::unix::process::CommandExt;
    // SAFETY: setsid is async-signal-safe.
    unsafe { cmd.pre_exec(procs::setsid_pre_exec) };
    let mut child = cmd.spawn().with_context(|| format!("cannot start {} daemon", exe.display()))?;
    let deadline = std::time::Instant::now() + Duration::from_secs(20);
    loop {
        if super::client::Client::connect(paths).is_ok() {
            return Ok(());
        }
        if let Ok(Some(status)) = child.try_wait() {
            // Another daemon may have won the race for the lock: fine if it answers.
            for _ in 0..50 {
                if super::client::Client::connect(paths).is_ok() {
                    return Ok(());
                }
                std::thread::sleep(Duration::from_millis(100));
            }
            bail!("the daemon exited ({status}) before it answered:\n{}", log_since(&paths.log, log_start));
        }
        if std::time::Instant::now() > deadline {
            bail!("the daemon did not answer within 20 s; see {}", paths.log.display());
        }
        std::thread::sleep(Duration::from_millis(20));
    }
}

/// What the daemon wrote to its log from `offset` on (the first 8 KiB; empty when that
/// is not UTF-8).
fn log_since(path: &Path, offset: u64) -> String {
    let bytes = crate::rundir::logs::read_from(path, offset, 8192);
    String::from_utf8(bytes).unwrap_or_default().trim_end().to_string()
}
