//! The daemon end to end, through the real binary: scheduling, dependencies, retries,
//! signals, re-adoption after a daemon crash, single daemon per home, peer check, config
//! validation and snapshots, log caps. Each test has its own CLIPGAN_HOME and kills
//! everything it started when it ends (crate::common::Home's Drop).

use crate::common::*;
use clipgan::rundir::JobKind;
use clipgan::supervisor::procs::ProcId;
use clipgan::supervisor::protocol::*;
use clipgan::supervisor::state::TaskState;
use std::time::Duration;

fn state_of(s: &Snapshot, id: u64) -> TaskState {
    task(s, id).task.state
}

fn all_final(s: &Snapshot) -> bool {
    s.tasks.iter().all(|t| t.task.state.is_final())
}

fn step_of(s: &Snapshot, id: u64) -> u64 {
    task(s, id).status.as_ref().map(|st| st.step).unwrap_or(0)
}

fn worker_of(s: &Snapshot, id: u64) -> Option<ProcId> {
    task(s, id).task.procs.as_ref().and_then(|p| p.worker)
}

#[test]
fn dependencies_priorities_slots_gpus_and_the_finish_hook() {
    let h = Home::new();
    let mut c = h.client();
    let hook_out = h.path().join("hook.txt");
    c.call_ok(Request::GroupSet {
        name: "default".into(),
        change: GroupChange {
            on_finish: Some(format!("echo \"$1 $2 $3 $CLIPGAN_TASK_ID\" >> {}", hook_out.display())),
            ..Default::default()
        },
    })
    .unwrap();
    c.call_ok(Request::GroupAdd {
        name: "gpu".into(),
        change: GroupChange { slots: Some(2), gpus: Some(vec!["0".into(), "1".into()]), ..Default::default() },
    })
    .unwrap();
    let short = ["--steps", "4", "--step-ms", "20"];
    // One slot: a long-ish first task, then two waiting ones of different priority.
    let a = h.add_fake(&mut c, &["--steps", "15", "--step-ms", "40"], |_| {});
    let low = h.add_fake(&mut c, &short, |t| t.label = Some("low".into()));
    let high = h.add_fake(&mut c, &short, |t| t.priority = 5);
    let fails = h.add_fake(&mut c, &["--steps", "5", "--step-ms", "10", "--fail-at", "2"], |t| t.after = vec![a]);
    let after_fail = h.add_fake(&mut c, &short, |t| t.after = vec![fails]);
    let after_any = h.add_fake(&mut c, &short, |t| t.after_any = vec![fails]);
    let chained = h.add_fake(&mut c, &short, |t| t.after = vec![after_fail]);
    let g0 = h.add_fake(&mut c, &["--steps", "20", "--step-ms", "40"], |t| t.group = Some("gpu".into()));
    let g1 = h.add_fake(&mut c, &["--steps", "20", "--step-ms", "40"], |t| t.group = Some("gpu".into()));

    let both = h.wait_for(20, "both gpu tasks running", |s| worker_of(s, g0).is_some() && worker_of(s, g1).is_some());
    assert_eq!(task(&both, g0).task.slot, Some(0));
    assert_eq!(task(&both, g1).task.slot, Some(1));
    let s = h.wait_for(60, "every task ended", all_final);
    assert_eq!(state_of(&s, a), TaskState::Finished);
    assert_eq!(state_of(&s, low), TaskState::Finished);
    assert_eq!(state_of(&s, high), TaskState::Finished);
    assert!(task(&s, high).task.started_at < task(&s, low).task.started_at, "the higher priority started first");
    assert!(task(&s, a).task.ended_at.unwrap() <= task(&s, high).task.started_at.unwrap() + 0.5, "one slot: one at a time");
    assert_eq!(state_of(&s, fails), TaskState::Failed);
    assert!(task(&s, fails).task.message.contains("exited with code 1"), "{}", task(&s, fails).task.message);
    assert_eq!(task(&s, fails).task.exit.as_ref().unwrap().code, Some(1));
    assert_eq!(state_of(&s, after_fail), TaskState::DepFailed);
    assert_eq!(state_of(&s, chained), TaskState::DepFailed, "dependency failure propagates");
    assert_eq!(state_of(&s, after_any), TaskState::Finished);
    assert!(task(&s, after_any).task.started_at > task(&s, fails).task.ended_at.map(|t| t - 0.5));

    // Slots and GPUs reach the workers' environment.
    for (id, slot) in [(g0, 0), (g1, 1)] {
        let out = read(task(&s, id).task.run_dir.join("logs/stdout.log"));
        assert!(out.contains(&format!("slot={slot} cuda_visible_devices={slot} ")), "{out}");
    }
    // The hook ran once per finished task of the default group with run id, status, code.
    let hook = std::time::Instant::now();
    let lines = loop {
        let text = std::fs::read_to_string(&hook_out).unwrap_or_default();
        if text.lines().count() >= 7 || hook.elapsed() > Duration::from_secs(10) {
            break text;
        }
        std::thread::sleep(Duration::from_millis(100));
    };
    let fail_line = format!("{} failed 1 {fails}", task(&s, fails).task.run_id);
    assert!(lines.lines().any(|l| l == fail_line), "{lines}");
    let ok_line = format!("{} finished 0 {a}", task(&s, a).task.run_id);
    assert!(lines.lines().any(|l| l == ok_line), "{lines}");
    assert!(lines.lines().any(|l| l.contains(" dep_failed ")), "{lines}");
    // Metrics of a finished run cover every step; the status says finished.
    let run = &task(&s, a).task.run_dir;
    assert!(covers(&metric_steps(run, "loss/g_total"), 15));
    assert!(read(run.join("status.json")).contains("\"finished\""));
}

#[test]
fn invalid_configs_are_refused_and_snapshots_tell_of_later_changes() {
    let h = Home::new();
    write(h.path().join("cfg/bad.yml"), "CONFIG_NAME: 'bird'\nTRAIN:\n  FLAGG: False\n  BATCH_SIZE: 4\n");
    write(h.path().join("cfg/good.yml"), "CONFIG_NAME: 'bird'\nTRAIN:\n  FLAG: False\n  BATCH_SIZE: 4\n");
    let before = h.status();
    let out = h.run(&["queue", "add", "cfg/bad.yml"]);
    assert!(!out.status.success());
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(err.contains("cfg/bad.yml:3:3") && err.contains("FLAGG") && err.contains("nothing was queued"), "{err}");
    let after = h.status();
    assert!(after.tasks.is_empty() && before.tasks.is_empty(), "the queue is unchanged");
    assert!(std::fs::read_dir(h.path().join("runs")).unwrap().next().is_none(), "no run folder was made");

    // A valid one: the job is inferred (TRAIN.FLAG false: eval), the text is kept.
    let out = h.ok(&["queue", "add", "cfg/good.yml", "--held", "--json"]);
    let v: serde_json::Value = serde_json::from_str(&out).unwrap();
    let id = v["id"].as_u64().unwrap();
    let s = h.status();
    let t = task(&s, id);
    assert_eq!(t.task.job, JobKind::Eval);
    assert_eq!(t.task.state, TaskState::Held);
    assert_eq!(t.config_changed, Some(false));
    let snapshot = t.task.run_dir.join("config.source.yml");
    assert_eq!(read(&snapshot), read(h.path().join("cfg/good.yml")));
    write(h.path().join("cfg/good.yml"), "CONFIG_NAME: 'bird'\nTRAIN:\n  FLAG: False\n  BATCH_SIZE: 8\n");
    let s = h.status();
    assert_eq!(task(&s, id).config_changed, Some(true), "the change after queueing is reported");
    assert!(read(&snapshot).contains("BATCH_SIZE: 4"), "the snapshot keeps the queued text");
    assert!(h.ok(&["status"]).contains("CONFIG CHANGED"));

    // The daemon's config index: errors with file:line:col, temp files ignored, new
    // files noticed without a rescan request.
    let mut c = h.client();
    let idx = c.configs(false).unwrap();
    assert_eq!(idx.files.iter().map(|f| (f.rel.as_str(), f.ok)).collect::<Vec<_>>(), [("bad.yml", false), ("good.yml", true)]);
    assert!(idx.files[0].diagnostics[0].contains("bad.yml:3:3"));
    write(h.path().join("cfg/.good.yml.swp"), "x");
    write(h.path().join("cfg/4913"), "");
    write(h.path().join("cfg/new/damsm.yml"), "CONFIG_NAME: 'DAMSM'\nTRAIN:\n  BATCH_SIZE: 4\n");
    let deadline = std::time::Instant::now() + Duration::from_secs(8);
    let idx = loop {
        let idx = c.configs(false).unwrap();
        if idx.files.len() >= 3 || std::time::Instant::now() > deadline {
            break idx;
        }
        std::thread::sleep(Duration::from_millis(100));
    };
    let rels: Vec<&str> = idx.files.iter().map(|f| f.rel.as_str()).collect();
    assert_eq!(rels, ["bad.yml", "good.yml", "new/damsm.yml"], "watch: {}", idx.watch);
    assert_eq!(idx.files[2].job, Some(JobKind::Pretrain));

    // Change notification: `wait` answers when the revision moves, or at its timeout.
    let rev = c.status().unwrap().rev;
    let t0 = std::time::Instant::now();
    assert_eq!(c.wait_change(rev, Duration::from_millis(300)).unwrap(), rev, "no change: answered at the timeout");
    assert!(t0.elapsed() >= Duration::from_millis(250));
    let paths = h.paths.clone();
    let waiter = std::thread::spawn(move || {
        let mut c2 = clipgan::supervisor::client::Client::connect(&paths).unwrap();
        let t0 = std::time::Instant::now();
        (c2.wait_change(rev, Duration::from_secs(20)).unwrap(), t0.elapsed())
    });
    std::thread::sleep(Duration::from_millis(300));
    c.call_ok(Request::GroupAdd { name: "other".into(), change: GroupChange::default() }).unwrap();
    let (new_rev, waited) = waiter.join().unwrap();
    assert!(new_rev > rev && waited < Duration::from_secs(10), "{new_rev} {waited:?}");

    // Malformed lines and other protocol versions get an error; the connection goes on.
    use std::io::{BufRead, BufReader, Write};
    let mut sock = std::os::unix::net::UnixStream::connect(&h.paths.socket).unwrap();
    let mut lines = BufReader::new(sock.try_clone().unwrap());
    let mut ask = |line: &str| {
        sock.write_all(line.as_bytes()).unwrap();
        let mut answer = String::new();
        lines.read_line(&mut answer).unwrap();
        answer
    };
    let a = ask("this is not json\n");
    assert!(a.contains("\"resp\":\"error\"") && a.contains("malformed"), "{a}");
    let a = ask("{\"v\":2,\"req\":\"hello\"}\n");
    assert!(a.contains("protocol version 2"), "{a}");
    let a = ask("{\"v\":1,\"req\":\"no_such_request\"}\n");
    assert!(a.contains("malformed request"), "{a}");
    let a = ask("{\"v\":1,\"req\":\"hello\"}\n");
    assert!(a.contains("\"resp\":\"hello\""), "{a}");
}

#[test]
fn a_corrupt_state_file_stops_the_daemon_with_a_message_and_is_kept() {
    let h = Home::new();
    write(h.paths.state.clone(), "{\"version\": 1, \"tasks\": [");
    let out = h.run(&["status"]);
    assert!(!out.status.success());
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(err.contains("state.json") && err.contains("corrupt"), "{err}");
    assert_eq!(read(&h.paths.state), "{\"version\": 1, \"tasks\": [");
    assert!(h.daemon_pids().is_empty());
}

#[test]
fn a_sigkilled_worker_fails_with_its_signal_and_is_retried_from_its_checkpoint() {
    let h = Home::new();
    let mut c = h.client();
    c.call_ok(Request::GroupSet { name: "default".into(), change: GroupChange { slots: Some(2), ..Default::default() } }).unwrap();
    c.group_add("pof", GroupChange { pause_on_failure: Some(true), ..Default::default() }).unwrap();
    let args = ["--steps", "40", "--step-ms", "40", "--checkpoint-every", "5"];
    let retried = h.add_fake(&mut c, &args, |t| t.retries = 1);
    let plain = h.add_fake(&mut c, &args, |t| t.group = Some("pof".into()));
    let behind = h.add_fake(&mut c, &["--steps", "2"], |t| t.group = Some("pof".into()));
    let s = h.wait_for(30, "both past step 12", |s| step_of(s, retried) >= 12 && step_of(s, plain) >= 12);
    let (w1, w2) = (worker_of(&s, retried).unwrap(), worker_of(&s, plain).unwrap());
    for w in [w1, w2] {
        unsafe { libc::kill(w.pid as i32, libc::SIGKILL) };
    }
    let s = h.wait_for(30, "the plain task failed", |s| state_of(s, plain) == TaskState::Failed);
    let t = &task(&s, plain).task;
    assert_eq!(t.exit.as_ref().unwrap().signal, Some(libc::SIGKILL));
    assert!(t.message.contains("killed by SIGKILL"), "{}", t.message);
    // Its group pauses on failure: the task behind it does not start.
    let g = s.groups.iter().find(|g| g.name == "pof").unwrap();
    assert!(g.group.paused && g.group.paused_reason.contains("pauses on failure"), "{:?}", g.group);
    assert_eq!(state_of(&s, behind), TaskState::Queued);
    let s = h.wait_for(30, "the retried task finished", |s| state_of(s, retried).is_final());
    let t = &task(&s, retried).task;
    assert_eq!(t.state, TaskState::Finished, "{}", t.message);
    assert_eq!(t.attempts, 2);
    assert_eq!(t.retried, 1);
    // The retry continued from the checkpoint in the same run folder: no gap in steps,
    // and it did not start over from step 1.
    let steps = metric_steps(&t.run_dir, "loss/g_total");
    assert!(covers(&steps, 40), "{steps:?}");
    assert!(steps.len() < 40 + 12, "resumed near the kill, not from the start: {steps:?}");
    let shim_log = read(t.run_dir.join("logs/shim.log"));
    assert!(shim_log.contains("attempt 2") && shim_log.contains("--resume"), "{shim_log}");
    assert_eq!(state_of(&c.status().unwrap(), behind), TaskState::Queued, "still held back by the paused group");
}

#[test]
fn a_restarted_daemon_readopts_running_workers_and_their_metrics_have_no_gap() {
    let h = Home::new();
    let mut c = h.client();
    c.call_ok(Request::GroupSet { name: "default".into(), change: GroupChange { slots: Some(2), ..Default::default() } }).unwrap();
    let args = ["--steps", "120", "--step-ms", "50"];
    let a = h.add_fake(&mut c, &args, |_| {});
    let b = h.add_fake(&mut c, &args, |_| {});
    let queued = h.add_fake(&mut c, &["--steps", "2", "--step-ms", "1"], |_| {});
    h.wait_for(30, "both running", |s| step_of(s, a) >= 5 && step_of(s, b) >= 5);
    let (old_pid, _) = c.hello().unwrap();
    let daemons = h.daemon_pids();
    assert_eq!(daemons, vec![old_pid]);
    unsafe { libc::kill(old_pid as i32, libc::SIGKILL) };
    drop(c);
    std::thread::sleep(Duration::from_millis(1000));
    let mut c = h.client();
    let (new_pid, _) = c.hello().unwrap();
    assert_ne!(new_pid, old_pid);
    let s = c.status().unwrap();
    for id in [a, b] {
        let t = &task(&s, id).task;
        assert_eq!(t.state, TaskState::Running, "{}", t.message);
        assert!(t.message.contains("re-adopted"), "{}", t.message);
    }
    // Nothing starts by surprise: the queued task waits for `resume --group`.
    assert_eq!(state_of(&s, queued), TaskState::Queued);
    let g = s.groups.iter().find(|g| g.name == "default").unwrap();
    assert!(g.group.paused && g.group.paused_reason.contains("restarted"), "{:?}", g.group);
    let s = h.wait_for(30, "both re-adopted tasks finished", |s| state_of(s, a).is_final() && state_of(s, b).is_final());
    for id in [a, b] {
        let t = &task(&s, id).task;
        assert_eq!(t.state, TaskState::Finished, "{}", t.message);
        assert_eq!(t.attempts, 1, "not started twice");
        let steps = metric_steps(&t.run_dir, "loss/g_total");
        assert_eq!(steps, (1..=120).collect::<Vec<_>>(), "every step exactly once");
    }
    assert_eq!(state_of(&s, queued), TaskState::Queued);
    c.resume(Target::Group("default".into())).unwrap();
    h.wait_for(20, "the queued task ran after resume", |s| state_of(s, queued) == TaskState::Finished);
}

#[test]
fn two_daemons_started_at_once_leave_exactly_one() {
    let h = Home::new();
    let spawn = || {
        std::process::Command::new(BIN)
            .args(["daemon", "--foreground"])
            .env("CLIPGAN_HOME", h.path())
            .stdout(std::process::Stdio::null())
            .stderr(std::process::Stdio::piped())
            .spawn()
            .unwrap()
    };
    let (mut d1, mut d2) = (spawn(), spawn());
    let deadline = std::time::Instant::now() + Duration::from_secs(20);
    let loser = loop {
        if let Some(st) = d1.try_wait().unwrap() {
            break (st, d1, d2);
        }
        if let Some(st) = d2.try_wait().unwrap() {
            break (st, d2, d1);
        }
        assert!(std::time::Instant::now() < deadline, "neither daemon gave way");
        std::thread::sleep(Duration::from_millis(50));
    };
    let (status, lost, mut won) = loser;
    assert!(!status.success());
    let out = lost.wait_with_output().unwrap();
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(err.contains("a daemon already runs"), "{err}");
    let (pid, _) = h.client().hello().unwrap();
    assert_eq!(pid, won.id());
    assert_eq!(h.daemon_pids(), vec![won.id()]);
    // Clients racing to auto-start one on a fresh home also end with exactly one.
    let h2 = Home::new();
    let racers: Vec<_> = (0..3)
        .map(|_| {
            std::process::Command::new(BIN)
                .arg("status")
                .env("CLIPGAN_HOME", h2.path())
                .stdout(std::process::Stdio::piped())
                .stderr(std::process::Stdio::piped())
                .spawn()
                .unwrap()
        })
        .collect();
    for r in racers {
        let out = r.wait_with_output().unwrap();
        assert!(out.status.success(), "{}", String::from_utf8_lossy(&out.stderr));
    }
    // A losing daemon may still be tearing down when its client returns: wait for the
    // count to settle, then there must be exactly one.
    let settle = std::time::Instant::now() + Duration::from_secs(10);
    while h2.daemon_pids().len() > 1 && std::time::Instant::now() < settle {
        std::thread::sleep(Duration::from_millis(50));
    }
    assert_eq!(h2.daemon_pids().len(), 1);
    // `daemon --stop` returns once it is gone.
    let out = h2.ok(&["daemon", "--stop"]);
    assert!(out.contains("the daemon stops"), "{out}");
    assert!(h2.daemon_pids().is_empty());
    let _ = won.kill();
    let _ = won.wait();
}

#[test]
fn a_client_of_another_user_is_refused() {
    let h = Home::new();
    let (pid, _) = h.client().hello().unwrap();
    assert!(pid > 0);
    let python = std::path::Path::new("/usr/bin/python3");
    if procs_own_uid() != 0 || !python.exists() {
        // Not root: cannot become another user here. The check itself is tested in
        // supervisor_unit (the_peer_check_accepts_only_the_daemons_own_user).
        eprintln!("skipped: needs root and /usr/bin/python3 to connect as another user");
        return;
    }
    // Loosen the file modes so that only the credential check stands in the way.
    use std::os::unix::fs::PermissionsExt;
    std::fs::set_permissions(h.path(), std::fs::Permissions::from_mode(0o755)).unwrap();
    std::fs::set_permissions(&h.paths.state_dir, std::fs::Permissions::from_mode(0o755)).unwrap();
    std::fs::set_permissions(&h.paths.socket, std::fs::Permissions::from_mode(0o666)).unwrap();
    let script = format!(
        "import socket\ns=socket.socket(socket.AF_UNIX)\ns.settimeout(10)\ns.connect({:?})\nprint(s.makefile().readline())",
        h.paths.socket.display().to_string()
    );
    use std::os::unix::process::CommandExt;
    let out = std::process::Command::new(python).arg("-c").arg(&script).uid(65534).gid(65534).env_clear().output().unwrap();
    let reply = String::from_utf8_lossy(&out.stdout);
    assert!(out.status.success(), "{}", String::from_utf8_lossy(&out.stderr));
    assert!(reply.contains("\"resp\":\"error\"") && reply.contains("permission denied"), "{reply}");
    assert!(!reply.contains("\"tasks\""));
    // The owner is still served.
    assert!(h.client().status().is_ok());
}

fn procs_own_uid() -> u32 {
    clipgan::supervisor::procs::own_uid()
}

#[test]
fn pause_resume_graceful_kill_resume_run_signal_kill_and_restart() {
    let h = Home::new();
    let mut c = h.client();
    c.call_ok(Request::GroupSet { name: "default".into(), change: GroupChange { slots: Some(2), ..Default::default() } }).unwrap();
    c.call_ok(Request::Settings(SettingsChange { log_cap_bytes: Some(8192), ..Default::default() })).unwrap();
    let t = h.add_fake(&mut c, &["--steps", "80", "--step-ms", "30", "--checkpoint-every", "0"], |_| {});
    let noisy = h.add_fake(&mut c, &["--steps", "150", "--step-ms", "1", "--print-bytes", "300"], |_| {});
    let s = h.wait_for(20, "running", |s| step_of(s, t) >= 5);
    let w = worker_of(&s, t).unwrap();
    c.pause(Target::Task(t), false).unwrap();
    std::thread::sleep(Duration::from_millis(300));
    assert_eq!(w.state(), Some('T'), "the worker's group is stopped");
    let s1 = step_of(&c.status().unwrap(), t);
    std::thread::sleep(Duration::from_millis(1200));
    let s2 = c.status().unwrap();
    assert_eq!(state_of(&s2, t), TaskState::Paused);
    assert_eq!(step_of(&s2, t), s1, "no progress while paused");
    c.resume(Target::Task(t)).unwrap();
    h.wait_for(10, "progress after resume", |s| step_of(s, t) > s1 + 2);
    assert_ne!(w.state(), Some('T'));

    // Graceful kill: SIGTERM, the worker checkpoints and stops.
    c.kill(t, None, Some(20.0)).unwrap();
    let s = h.wait_for(20, "stopped", |s| state_of(s, t).is_final());
    let tv = &task(&s, t).task;
    assert_eq!(tv.state, TaskState::Stopped, "{}", tv.message);
    let stopped_at = metric_steps(&tv.run_dir, "loss/g_total").into_iter().max().unwrap();
    assert!(stopped_at < 80);
    // Continue from its checkpoint: steps go on from where it stopped.
    c.resume_run(t).unwrap();
    let s = h.wait_for(30, "finished after resume-run", |s| state_of(s, t) == TaskState::Finished);
    let tv = &task(&s, t).task;
    assert_eq!(tv.attempts, 2);
    let steps = metric_steps(&tv.run_dir, "loss/g_total");
    assert_eq!(steps, (1..=80).collect::<Vec<_>>(), "stopped and continued without a gap or a repeat");

    // The noisy task's log stayed under its cap and kept head and tail.
    let s = h.wait_for(20, "noisy finished", |s| state_of(s, noisy).is_final());
    let log = read(task(&s, noisy).task.run_dir.join("logs/stdout.log"));
    assert!(log.len() < 8192 + 1024, "{} bytes", log.len());
    assert!(log.contains("step 1/150 ") && log.contains("step 150/150 "));
    assert!(log.contains("[clipgan: this log went over its size cap"));
    let out = h.ok(&["logs", &noisy.to_string()]);
    assert_eq!(out, log);

    // A chosen signal: killed, and not retried although retries remain.
    let k = h.add_fake(&mut c, &["--steps", "200", "--step-ms", "20"], |t| t.retries = 2);
    h.wait_for(20, "running", |s| step_of(s, k) >= 2);
    let out = h.ok(&["kill", &k.to_string(), "--signal", "KILL"]);
    assert!(out.contains("SIGKILL"), "{out}");
    let s = h.wait_for(20, "killed", |s| state_of(s, k).is_final());
    let kv = &task(&s, k).task;
    assert_eq!(kv.state, TaskState::Killed, "{}", kv.message);
    assert_eq!(kv.attempts, 1);
    assert!(c.kill(k, None, None).is_err(), "nothing left to kill");

    // Restart: from scratch in a new run folder, the old one kept.
    let old = kv.run_dir.clone();
    c.restart(k).unwrap();
    let s = h.wait_for(20, "restarted and running", |s| step_of(s, k) >= 1);
    let kv = &task(&s, k).task;
    assert_ne!(kv.run_dir, old);
    assert_eq!(kv.previous_runs, vec![old.file_name().unwrap().to_string_lossy().into_owned()]);
    assert!(old.join("run.json").exists());
    c.kill(k, Some("KILL"), None).unwrap();
    h.wait_for(20, "killed again", |s| state_of(s, k) == TaskState::Killed);
    assert!(c.remove(k).is_ok());
    assert!(c.status().unwrap().tasks.iter().all(|t| t.task.id != k));
    assert!(old.exists(), "removing a task keeps its run folders");
}
