//! Hardening of the daemon and its clients (issue 13): a stopped daemon is reported, not
//! waited on forever; a config that is slow to parse does not stall the answers.
use crate::common::{Home, BIN};
use std::process::Command;
use std::time::{Duration, Instant};

/// Item 5: with the daemon stopped by SIGSTOP, `clipgan status` waited forever. Now it
/// gives up after the client timeout, naming the daemon's pid and what to do.
#[test]
fn a_stopped_daemon_is_reported_with_its_pid() {
    let home = Home::new();
    let pid = home.client().hello().unwrap().0;
    unsafe { libc::kill(pid as i32, libc::SIGSTOP) };
    let start = Instant::now();
    let out = Command::new(BIN)
        .args(["status"])
        .env("CLIPGAN_HOME", home.path())
        .env("CLIPGAN_CLIENT_TIMEOUT", "1")
        .current_dir(home.path())
        .output()
        .unwrap();
    let took = start.elapsed();
    unsafe { libc::kill(pid as i32, libc::SIGCONT) };
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(!out.status.success());
    assert!(took < Duration::from_secs(15), "took {took:?}");
    assert!(err.contains(&format!("the daemon (pid {pid}) is not answering (no reply in 1 s)")), "{err}");
    assert!(err.contains(&format!("kill -CONT {pid}")), "{err}");
    // Resumed, it answers again.
    assert_eq!(home.client().hello().unwrap().0, pid);
}

/// Item 4: 200 KB of nested brackets dropped into `cfg/` blocked `clipgan status` for
/// 38 s (the watcher parsed on the daemon's loop, in quadratic time). Now the config is
/// refused at once, validation runs off the loop, and the answers keep coming.
#[test]
fn a_pathological_config_does_not_stall_the_daemon() {
    let home = Home::new();
    std::fs::create_dir_all(home.path().join("cfg")).unwrap();
    let mut c = home.client();
    let mut text = b"TRAIN: ".to_vec();
    text.extend(b"[".repeat(100_000));
    text.extend(b"]".repeat(100_000));
    std::fs::write(home.path().join("cfg/deep.yml"), text).unwrap();
    let start = Instant::now();
    loop {
        let asked = Instant::now();
        c.status().unwrap();
        assert!(asked.elapsed() < Duration::from_secs(3), "status took {:?}", asked.elapsed());
        let index = c.configs(false).unwrap();
        if let Some(e) = index.files.iter().find(|f| f.rel == "deep.yml") {
            assert!(!e.ok);
            assert!(e.diagnostics.iter().any(|d| d.contains("nest deeper than 32 levels")), "{:?}", e.diagnostics);
            break;
        }
        assert!(start.elapsed() < Duration::from_secs(20), "deep.yml never appeared in the index");
        std::thread::sleep(Duration::from_millis(100));
    }
}

/// The socket protocol under mutated request lines (issue 13, "keep it that way"): every
/// UTF-8 line gets exactly one answer that parses, a line that is not UTF-8 at most
/// closes its own connection, and the daemon keeps serving. `PROPTEST_CASES` sets the
/// number of lines (default 64).
#[test]
fn mutated_request_lines_get_an_answer_and_the_daemon_lives() {
    use clipgan::supervisor::protocol::{Request, RequestLine, ResponseLine};
    use proptest::prelude::*;
    use proptest::test_runner::{Config, TestRunner};
    use std::io::{BufRead, BufReader, Write};
    use std::os::unix::net::UnixStream;

    let home = Home::new();
    let pid = home.client().hello().unwrap().0;
    let samples: &[&[u8]] = &[
        br#"{"v":1,"req":"hello"}"#,
        br#"{"v":1,"req":"status"}"#,
        br#"{"v":1,"req":"configs"}"#,
        br#"{"v":1,"req":"logs","id":1}"#,
        br#"{"v":1,"req":"wait","since":0,"timeout_ms":0}"#,
    ];
    let edit = (any::<prop::sample::Index>(), 0usize..4, prop::collection::vec(any::<u8>(), 0..6));
    let line = (prop::sample::select(samples), prop::collection::vec(edit, 0..5)).prop_map(|(s, edits)| {
        let mut v = s.to_vec();
        for (at, len, bytes) in edits {
            let start = at.index(v.len().max(1)).min(v.len());
            let end = (start + len).min(v.len());
            v.splice(start..end, bytes);
        }
        v.iter().map(|&b| if b == b'\n' { b' ' } else { b }).collect::<Vec<u8>>()
    });
    let cases = std::env::var("PROPTEST_CASES").ok().and_then(|v| v.parse().ok()).unwrap_or(64);
    let mut runner = TestRunner::new(Config { cases, failure_persistence: None, ..Config::default() });
    let connect = || {
        let s = UnixStream::connect(&home.paths.socket).unwrap();
        s.set_read_timeout(Some(Duration::from_secs(10))).unwrap();
        (BufReader::new(s.try_clone().unwrap()), s)
    };
    let conn = std::cell::RefCell::new(connect());
    runner
        .run(&line, |bytes| {
            let text = std::str::from_utf8(&bytes).ok();
            if text.is_some_and(|t| t.trim().is_empty()) {
                return Ok(()); // blank lines are skipped by the daemon, unanswered
            }
            // A mutation that became a valid request changing something is not sent.
            if let Ok(r) = serde_json::from_slice::<RequestLine>(&bytes) {
                if !matches!(r.req, Request::Hello | Request::Status | Request::Configs | Request::Logs { .. } | Request::Wait { .. }) {
                    return Ok(());
                }
            }
            let mut c = conn.borrow_mut();
            c.1.write_all(&bytes).unwrap();
            c.1.write_all(b"\n").unwrap();
            let mut answer = String::new();
            let n = c.0.read_line(&mut answer).unwrap_or(0);
            if text.is_none() && n == 0 {
                *c = connect(); // not UTF-8: the daemon closed this connection
                return Ok(());
            }
            prop_assert!(n > 0, "no answer to {:?}", String::from_utf8_lossy(&bytes));
            prop_assert!(serde_json::from_str::<ResponseLine>(&answer).is_ok(), "bad answer {answer:?}");
            Ok(())
        })
        .unwrap();
    assert_eq!(home.client().hello().unwrap().0, pid, "the same daemon still serves");
}
