//! The supervisor's parts without a daemon: capped logs, process identity, signals,
//! the peer check, GPU mapping, state files (corrupt, disk full), the config index.

use crate::common::{read, write, BIN};
use clipgan::rundir::JobKind;
use clipgan::supervisor::cfgindex::{is_config_file, is_editor_temp, CfgIndex};
use clipgan::supervisor::core::Core;
use clipgan::supervisor::logcap::CappedLog;
use clipgan::supervisor::procs::{self, ProcId};
use clipgan::supervisor::protocol::*;
use clipgan::supervisor::state::{self, Group, State, TaskState};
use clipgan::supervisor::Paths;
use std::io::Write;
use std::path::{Path, PathBuf};
use std::sync::{Arc, Mutex};

#[test]
fn capped_log_keeps_head_and_tail_and_says_how_much_was_dropped() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("out.log");
    let cap = 4096;
    let mut all = Vec::new();
    {
        let mut log = CappedLog::open(&path, cap).unwrap();
        for i in 0..3000 {
            let line = format!("line {i:05} of the worker's output\n");
            all.extend_from_slice(line.as_bytes());
            log.write(line.as_bytes()).unwrap();
        }
    }
    let text = read(&path);
    assert!(text.len() as u64 <= cap + 200, "log is {} bytes for a cap of {cap}", text.len());
    assert!(text.starts_with("line 00000 of"), "the head is kept");
    assert!(text.ends_with("line 02999 of the worker's output\n"), "the tail is kept");
    let marker = text.lines().find(|l| l.starts_with("[clipgan: this log went over its size cap")).expect("a marker line");
    let dropped: usize = marker.split("; ").nth(1).unwrap().split_whitespace().next().unwrap().parse().unwrap();
    // head + dropped + tail = everything written.
    let (head, rest) = text.split_at(text.find("\n[clipgan:").unwrap());
    let tail = &rest[rest.find("follows]\n").unwrap() + "follows]\n".len()..];
    assert_eq!(head.len() + dropped + tail.len(), all.len());
    let all = String::from_utf8(all).unwrap();
    assert!(all.starts_with(head) && all.ends_with(tail));
    assert!(tail.starts_with("line "), "the tail starts on a line boundary");

    // A second attempt appends to the same log: the head and the count carry on.
    {
        let mut log = CappedLog::open(&path, cap).unwrap();
        assert_eq!(log.dropped(), dropped as u64);
        for i in 0..500 {
            log.write(format!("second attempt {i:05}\n").as_bytes()).unwrap();
        }
        assert!(log.dropped() > dropped as u64);
    }
    let text2 = read(&path);
    assert!(text2.starts_with("line 00000 of"));
    assert!(text2.ends_with("second attempt 00499\n"));
    assert_eq!(text2.matches("[clipgan: this log went over").count(), 1, "one marker, not one per cut");
}

#[test]
fn process_identity_tells_a_live_process_from_a_reused_pid() {
    let mut child = std::process::Command::new("sleep").arg("30").spawn().unwrap();
    let id = ProcId::of(child.id()).expect("a live process");
    assert!(id.alive());
    assert!(id.state().is_some_and(|c| c != 'Z'));
    let impostor = ProcId { pid: id.pid, start: id.start + 1 };
    assert!(!impostor.alive(), "same pid, other start time: not our process");
    procs::signal_pid(child.id(), libc::SIGKILL).unwrap();
    child.wait().unwrap();
    assert!(!id.alive());
    assert!(ProcId::of(id.pid).is_none_or(|p| p.start != id.start));
}

#[test]
fn signals_parse_by_name_and_number() {
    assert_eq!(procs::parse_signal("KILL").unwrap(), libc::SIGKILL);
    assert_eq!(procs::parse_signal("sigterm").unwrap(), libc::SIGTERM);
    assert_eq!(procs::parse_signal("SIGUSR1").unwrap(), libc::SIGUSR1);
    assert_eq!(procs::parse_signal("9").unwrap(), 9);
    assert!(procs::parse_signal("FOO").is_err());
    assert!(procs::parse_signal("99").is_err());
    assert_eq!(procs::signal_name(libc::SIGKILL), "SIGKILL");
}

#[test]
fn the_peer_check_accepts_only_the_daemons_own_user() {
    let me = procs::own_uid();
    assert!(procs::peer_allowed(me, me));
    assert!(!procs::peer_allowed(me + 1, me));
    assert!(!procs::peer_allowed(65534, 0));
}

#[test]
fn slots_get_their_share_of_the_gpus() {
    let g = |slots, gpus: &[&str]| Group { slots, gpus: gpus.iter().map(|s| s.to_string()).collect(), ..Group::default() };
    assert_eq!(g(2, &[]).gpus_for_slot(0), None);
    assert_eq!(g(2, &["0", "1", "2", "3"]).gpus_for_slot(0).as_deref(), Some("0,1"));
    assert_eq!(g(2, &["0", "1", "2", "3"]).gpus_for_slot(1).as_deref(), Some("2,3"));
    assert_eq!(g(4, &["0", "1"]).gpus_for_slot(3).as_deref(), Some("1"));
    assert_eq!(g(1, &["5"]).gpus_for_slot(0).as_deref(), Some("5"));
}

#[test]
fn a_corrupt_state_file_is_refused_by_name_and_left_alone() {
    let dir = tempfile::tempdir().unwrap();
    let p = dir.path().join("state.json");
    assert_eq!(state::load(&p).unwrap(), State::default(), "a missing file is a fresh state");
    std::fs::write(&p, b"{\"version\": 1, \"next_id\": 3, \"tasks\": [").unwrap();
    let e = format!("{:#}", state::load(&p).unwrap_err());
    assert!(e.contains("state.json") && e.contains("corrupt"), "{e}");
    assert_eq!(std::fs::read(&p).unwrap(), b"{\"version\": 1, \"next_id\": 3, \"tasks\": [");
}

/// A writer that fails like a full disk half-way through the temporary file, when told.
fn flaky_writer(full: Arc<Mutex<bool>>) -> state::StateWriter {
    Box::new(move |path: &Path, bytes: &[u8]| {
        let is_full = *full.lock().unwrap();
        clipgan::util::fsx::atomic_write_with(path, |f| {
            if is_full {
                f.write_all(&bytes[..bytes.len() / 2])?;
                return Err(std::io::Error::from_raw_os_error(libc::ENOSPC));
            }
            f.write_all(bytes)
        })
    })
}

#[test]
fn disk_full_while_saving_keeps_the_old_state_and_says_so() {
    let home = tempfile::tempdir().unwrap();
    let paths = Paths::for_home(home.path());
    std::fs::create_dir_all(&paths.state_dir).unwrap();
    let full = Arc::new(Mutex::new(false));
    let mut core = Core::open(paths.clone(), flaky_writer(full.clone()), PathBuf::from(BIN)).unwrap();
    assert!(core.commit().is_empty());
    let fake = |label: &str| AddTask { job: Some(JobKind::FakeRun), label: Some(label.into()), held: true, ..Default::default() };
    assert!(matches!(core.handle(Request::Add(fake("one"))), Response::Added { id: 1, .. }));
    assert!(core.commit().is_empty());
    let saved = std::fs::read(&paths.state).unwrap();

    *full.lock().unwrap() = true;
    assert!(matches!(core.handle(Request::Add(fake("two"))), Response::Added { id: 2, .. }));
    let warnings = core.commit();
    assert_eq!(warnings.len(), 1, "{warnings:?}");
    assert!(warnings[0].contains("NOT saved") && warnings[0].contains("state.json"), "{}", warnings[0]);
    assert_eq!(std::fs::read(&paths.state).unwrap(), saved, "the old state file is intact");
    let leftovers: Vec<_> =
        std::fs::read_dir(&paths.state_dir).unwrap().flatten().filter(|e| e.file_name().to_string_lossy().contains(".tmp.")).collect();
    assert!(leftovers.is_empty(), "no temporary file left behind");
    assert!(core.snapshot().save_error.is_some(), "clients see the failure");
    let on_disk = state::load(&paths.state).unwrap();
    assert_eq!(on_disk.tasks.len(), 1);

    // Space again: the next commit saves everything, and the error clears.
    *full.lock().unwrap() = false;
    assert!(core.commit().is_empty());
    assert!(core.snapshot().save_error.is_none());
    let on_disk = state::load(&paths.state).unwrap();
    assert_eq!(on_disk.tasks.iter().map(|t| t.label.clone().unwrap()).collect::<Vec<_>>(), ["one", "two"]);
    assert!(on_disk.tasks.iter().all(|t| t.state == TaskState::Held));
}

#[test]
fn removing_and_dependencies_are_checked() {
    let home = tempfile::tempdir().unwrap();
    let paths = Paths::for_home(home.path());
    std::fs::create_dir_all(&paths.state_dir).unwrap();
    let mut core = Core::open(paths, state::atomic_writer(), PathBuf::from(BIN)).unwrap();
    let held = |after: Vec<u64>| AddTask { job: Some(JobKind::FakeRun), held: true, after, ..Default::default() };
    assert!(matches!(core.handle(Request::Add(held(vec![]))), Response::Added { id: 1, .. }));
    assert!(matches!(core.handle(Request::Add(held(vec![1]))), Response::Added { id: 2, .. }));
    match core.handle(Request::Add(held(vec![7]))) {
        Response::Error { message, .. } => assert!(message.contains("no task 7"), "{message}"),
        r => panic!("{r:?}"),
    }
    match core.handle(Request::Remove { id: 1 }) {
        Response::Error { message, .. } => assert!(message.contains("wait for task 1"), "{message}"),
        r => panic!("{r:?}"),
    }
    match core.handle(Request::Add(AddTask { job: Some(JobKind::Train), ..Default::default() })) {
        Response::Error { message, .. } => assert!(message.contains("needs a config"), "{message}"),
        r => panic!("{r:?}"),
    }
    match core.handle(Request::Add(AddTask { job: Some(JobKind::FakeRun), group: Some("nope".into()), ..Default::default() })) {
        Response::Error { message, .. } => assert!(message.contains("no group"), "{message}"),
        r => panic!("{r:?}"),
    }
    assert!(matches!(core.handle(Request::Remove { id: 2 }), Response::Ok { .. }));
    assert!(matches!(core.handle(Request::Remove { id: 1 }), Response::Ok { .. }));
    core.commit();
    assert!(core.state.tasks.is_empty());
}

#[test]
fn the_config_index_validates_files_and_ignores_editor_temp_files() {
    for t in [".bird.yml.swp", "bird.yml~", "4913", ".#bird.yml", "x.swx"] {
        assert!(is_editor_temp(t), "{t}");
    }
    assert!(is_config_file(Path::new("/a/cfg/bird.yml")));
    assert!(is_config_file(Path::new("/a/cfg/bird.yaml")));
    assert!(!is_config_file(Path::new("/a/cfg/bird.yml~")));
    assert!(!is_config_file(Path::new("/a/cfg/notes.txt")));

    let dir = tempfile::tempdir().unwrap();
    let cfg = dir.path().join("cfg");
    write(cfg.join("good.yml"), "CONFIG_NAME: 'bird'\nTRAIN:\n  FLAG: False\n");
    write(cfg.join("sub/damsm.yaml"), "CONFIG_NAME: 'DAMSM'\nTRAIN:\n  BATCH_SIZE: 4\n");
    write(cfg.join("bad.yml"), "CONFIG_NAME: 'bird'\nTRAIN:\n  FLAGG: False\n");
    write(cfg.join(".good.yml.swp"), "garbage");
    write(cfg.join("good.yml~"), "garbage");
    let mut idx = CfgIndex::new(&cfg);
    assert!(idx.rescan());
    let v = idx.view(1);
    let names: Vec<&str> = v.files.iter().map(|f| f.rel.as_str()).collect();
    assert_eq!(names, ["bad.yml", "good.yml", "sub/damsm.yaml"]);
    let bad = &v.files[0];
    assert!(!bad.ok);
    assert!(bad.diagnostics[0].contains("bad.yml:3:"), "{:?}", bad.diagnostics);
    assert!(bad.diagnostics[0].contains("FLAGG"));
    assert_eq!(v.files[1].job, Some(JobKind::Eval));
    assert_eq!(v.files[2].job, Some(JobKind::Pretrain));
    assert!(!idx.rescan(), "nothing changed");
    write(cfg.join("bad.yml"), "CONFIG_NAME: 'bird'\nTRAIN:\n  FLAG: True\n  BATCH_SIZE: 8\n");
    std::fs::remove_file(cfg.join("sub/damsm.yaml")).unwrap();
    assert!(idx.rescan());
    let v = idx.view(2);
    assert_eq!(v.files.len(), 2);
    assert!(v.files[0].ok && v.files[0].job == Some(JobKind::Train));
}

#[test]
fn the_command_line_definitions_are_consistent() {
    use clap::CommandFactory;
    clipgan::cli::Cli::command().debug_assert();
    use clap::Parser;
    let cli = clipgan::cli::Cli::try_parse_from([
        "clipgan",
        "queue",
        "add",
        "--job",
        "fake-run",
        "--after",
        "1,2",
        "--priority",
        "-3",
        "--",
        "--steps",
        "5",
    ])
    .unwrap();
    let text = format!("{cli:?}");
    assert!(text.contains("after: [1, 2]") && text.contains("priority: -3") && text.contains("\"--steps\", \"5\""), "{text}");
    assert!(clipgan::cli::Cli::try_parse_from(["clipgan", "pause"]).is_err(), "a task id or --group is required");
}

/// Issue 13 item 6: a 240-character CONFIG_NAME passed `config check`, then `queue add`
/// failed with "File name too long"; a 10 MB label came back as a 10 MB message.
#[test]
fn long_names_are_refused_with_a_short_message() {
    let home = tempfile::tempdir().unwrap();
    let paths = Paths::for_home(home.path());
    std::fs::create_dir_all(&paths.state_dir).unwrap();
    let mut core = Core::open(paths, state::atomic_writer(), PathBuf::from(BIN)).unwrap();
    let cfg = home.path().join("long.yml");
    write(&cfg, &format!("CONFIG_NAME: {}\nTRAIN:\n  FLAG: false\n", "n".repeat(240)));
    match core.handle(Request::Add(AddTask { config: Some(cfg), ..Default::default() })) {
        Response::Error { message, details } => {
            assert!(message.contains("not a valid config"), "{message}");
            assert!(details.iter().any(|d| d.contains("long.yml:1:1") && d.contains("240 characters")), "{details:?}");
        }
        r => panic!("{r:?}"),
    }
    let label = "x".repeat(10 << 20);
    match core.handle(Request::Add(AddTask { job: Some(JobKind::FakeRun), label: Some(label), held: true, ..Default::default() })) {
        Response::Error { message, .. } => {
            assert!(message.contains("10485760 characters, more than the 64 allowed"), "{}", &message[..message.len().min(300)]);
            assert!(message.len() < 300, "the message is {} bytes", message.len());
        }
        r => panic!("{:?}", std::mem::discriminant(&r)),
    }
    // At the limit the run folder's name stays short enough.
    let label = "é".repeat(64);
    match core.handle(Request::Add(AddTask { job: Some(JobKind::FakeRun), label: Some(label), held: true, ..Default::default() })) {
        Response::Added { run_dir, .. } => assert!(run_dir.file_name().unwrap().len() < 120, "{}", run_dir.display()),
        r => panic!("{r:?}"),
    }
}

/// Issue 13 item 7: inconsistent states were loaded silently (`next_id` below an existing
/// id gave two tasks id 1). A low `next_id` is repaired; the rest is refused by name and
/// the file left as it is.
#[test]
fn an_inconsistent_state_is_repaired_or_refused() {
    let home = tempfile::tempdir().unwrap();
    let paths = Paths::for_home(home.path());
    std::fs::create_dir_all(&paths.state_dir).unwrap();
    let mut core = Core::open(paths.clone(), state::atomic_writer(), PathBuf::from(BIN)).unwrap();
    for _ in 0..2 {
        let add = AddTask { job: Some(JobKind::FakeRun), held: true, ..Default::default() };
        assert!(matches!(core.handle(Request::Add(add)), Response::Added { .. }));
    }
    assert!(core.commit().is_empty());
    drop(core);
    let good: serde_json::Value = serde_json::from_slice(&std::fs::read(&paths.state).unwrap()).unwrap();
    let edited = |f: &dyn Fn(&mut serde_json::Value)| {
        let mut v = good.clone();
        f(&mut v);
        std::fs::write(&paths.state, serde_json::to_vec(&v).unwrap()).unwrap();
    };

    edited(&|v| v["next_id"] = 1.into());
    let s = state::load(&paths.state).unwrap();
    assert_eq!(s.next_id, 3, "repaired above the largest id");
    let mut core = Core::open(paths.clone(), state::atomic_writer(), PathBuf::from(BIN)).unwrap();
    let add = AddTask { job: Some(JobKind::FakeRun), held: true, ..Default::default() };
    assert!(matches!(core.handle(Request::Add(add)), Response::Added { id: 3, .. }), "no duplicate id");
    drop(core);

    type Edit<'a> = &'a dyn Fn(&mut serde_json::Value);
    let refused: [(&str, Edit); 5] = [
        ("task 1 is listed twice", &|v| {
            let t = v["tasks"][0].clone();
            v["tasks"].as_array_mut().unwrap().push(t);
        }),
        ("task 2 waits for itself", &|v| v["tasks"][1]["after"] = serde_json::json!([2])),
        ("task 2 waits for task 9, which does not exist", &|v| v["tasks"][1]["after_any"] = serde_json::json!([9])),
        ("wait for each other in a circle", &|v| {
            v["tasks"][0]["after"] = serde_json::json!([2]);
            v["tasks"][1]["after"] = serde_json::json!([1]);
        }),
        ("in group \"gone\", which does not exist", &|v| v["tasks"][0]["group"] = "gone".into()),
    ];
    for (problem, edit) in refused {
        edited(edit);
        let before = std::fs::read(&paths.state).unwrap();
        let e = format!("{:#}", state::load(&paths.state).unwrap_err());
        assert!(e.contains("state.json is inconsistent") && e.contains(problem), "{e}");
        assert!(Core::open(paths.clone(), state::atomic_writer(), PathBuf::from(BIN)).is_err());
        assert_eq!(std::fs::read(&paths.state).unwrap(), before, "the refused file is left as it is");
    }
}
