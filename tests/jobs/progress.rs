//! The live progress of a job run by hand (jobs::live), through the binary: plain lines
//! in a pipe (from the real finetuning job and from fake-run), silence with --quiet or
//! CLIPGAN_PROGRESS=off, a line a minute for a worker the daemon started, and the line
//! redrawn in place on a terminal (a pty from util-linux's `script`).
use crate::common::bin;
use crate::pretrain::write_cfg;
use std::process::{Command, Output};

fn stderr(o: &Output) -> String {
    String::from_utf8_lossy(&o.stderr).into_owned()
}

fn fake_run(tmp: &std::path::Path, args: &[&str]) -> Command {
    let mut c = bin();
    c.env("CLIPGAN_HOME", tmp).env_remove("CLIPGAN_SLOT").env_remove("CLIPGAN_PROGRESS").env_remove("CLIPGAN_PROGRESS_EVERY");
    c.args(["fake-run", "--steps", "20", "--step-ms", "20", "--sample-every", "0"]).args(args);
    c
}

#[test]
fn a_piped_finetuning_run_prints_plain_progress_lines() {
    let tmp = tempfile::tempdir().unwrap();
    let cfg = write_cfg(tmp.path(), "p.yml", 1, 2e-3, "  MAX_STEPS: 6\n");
    let out = bin()
        .args(["pretrain", "--cfg"])
        .arg(&cfg)
        .arg("--run-dir")
        .arg(tmp.path().join("run"))
        .args(["--progress-every", "0"])
        .env_remove("CLIPGAN_SLOT")
        .output()
        .unwrap();
    let err = stderr(&out);
    assert!(out.status.success(), "{err}");
    let lines: Vec<&str> = err.lines().filter(|l| l.starts_with("pretrain step ")).collect();
    // One line per step (every 0 s), with speed, ETA and the losses once logged.
    assert!(lines.len() >= 6, "{err}");
    assert!(lines.iter().any(|l| l.starts_with("pretrain step 6/6 (100%)")), "{err}");
    let l3 = lines.iter().find(|l| l.starts_with("pretrain step 3/6")).unwrap();
    for part in ["epoch 1/1", "it/s", "ETA ", "total ", "words ", "sentence ", "nt_xent "] {
        assert!(l3.contains(part), "{part:?} missing in {l3:?}");
    }
    assert!(err.lines().any(|l| l.starts_with("pretrain finished: step 6/6 in ")), "{err}");
    assert!(!err.contains('\r') && !err.contains("\x1b["), "no terminal codes in a pipe: {err:?}");
}

#[test]
fn plain_lines_come_at_the_interval_and_quiet_silences_them() {
    let tmp = tempfile::tempdir().unwrap();
    // 20 steps of 20 ms with a line every 0.1 s: the first line, a few more, the end.
    let out = fake_run(tmp.path(), &["--progress-every", "0.1"]).output().unwrap();
    let err = stderr(&out);
    let n = err.lines().filter(|l| l.starts_with("fake-run step ")).count();
    assert!((2..=8).contains(&n), "{n} lines: {err}");
    assert!(err.contains("g_total ") && err.lines().any(|l| l.starts_with("fake-run finished: step 20/20")), "{err}");

    for (args, env) in [(&["--quiet"][..], None), (&["--progress", "off"][..], None), (&[][..], Some("off"))] {
        let mut c = fake_run(tmp.path(), args);
        if let Some(v) = env {
            c.env("CLIPGAN_PROGRESS", v);
        }
        let out = c.output().unwrap();
        assert!(out.status.success());
        assert!(!stderr(&out).contains("fake-run"), "{args:?} {env:?}: {}", stderr(&out));
        // The job's own output (stdout) is unchanged.
        assert!(String::from_utf8_lossy(&out.stdout).contains("step 20/20 loss/g_total"));
    }
}

#[test]
fn a_worker_of_the_daemon_writes_a_line_a_minute() {
    let tmp = tempfile::tempdir().unwrap();
    let out = fake_run(tmp.path(), &[]).env("CLIPGAN_SLOT", "0").output().unwrap();
    let err = stderr(&out);
    // 0.4 s of work: the first line and the end only.
    assert_eq!(err.lines().filter(|l| l.starts_with("fake-run step ")).count(), 1, "{err}");
    assert_eq!(err.lines().filter(|l| l.starts_with("fake-run finished")).count(), 1, "{err}");
    // The interval can still be set for it.
    let out = fake_run(tmp.path(), &[]).env("CLIPGAN_SLOT", "0").env("CLIPGAN_PROGRESS_EVERY", "0").output().unwrap();
    assert!(stderr(&out).lines().filter(|l| l.starts_with("fake-run step ")).count() >= 20);
}

#[test]
fn on_a_terminal_the_line_is_redrawn_in_place() {
    if Command::new("script").arg("--version").output().is_err() {
        panic!("util-linux's `script` is needed for this test (apt-get install bsdutils)");
    }
    let tmp = tempfile::tempdir().unwrap();
    let exe = env!("CARGO_BIN_EXE_clipgan");
    let cmd = format!("{exe} fake-run --steps 30 --step-ms 40 --sample-every 0 > /dev/null");
    let out = Command::new("script")
        .args(["-q", "-e", "-c", &cmd, "/dev/null"])
        .env("CLIPGAN_HOME", tmp.path())
        .env("CLIPGAN_DEVICE", "cpu")
        .env("TERM", "xterm")
        .env("COLUMNS", "120")
        .env_remove("CLIPGAN_RUN_DIR")
        .env_remove("CLIPGAN_SLOT")
        .env_remove("CLIPGAN_PROGRESS")
        .output()
        .unwrap();
    let tty = String::from_utf8_lossy(&out.stdout).into_owned();
    assert!(out.status.success(), "{tty}");
    // Redrawn: carriage return and erase-line before each new state of the bar, and
    // no plain lines.
    let redraws = tty.matches("\r\x1b[2K").count();
    assert!(redraws >= 3, "{redraws} redraws: {tty:?}");
    assert!(tty.contains("30/30") && tty.contains("it/s") && tty.contains("g_total "), "{tty:?}");
    assert!(!tty.contains("fake-run step "), "no plain lines on a terminal: {tty:?}");
    assert!(tty.contains("fake-run finished: step 30/30"), "{tty:?}");
}
