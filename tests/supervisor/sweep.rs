//! Sweeps through the real daemon: `clipgan sweep` expands, validates every member and
//! queues them all in one request; each member runs once with its overrides recorded in
//! its run's config.yml; errors queue nothing; `status` and `plot` take the sweep whole.
use crate::common::*;
use clipgan::rundir::JobKind;
use clipgan::supervisor::protocol::*;
use clipgan::supervisor::state::{self, TaskState};
use std::collections::{BTreeMap, BTreeSet};

const CFG: &str =
    "CONFIG_NAME: t\nDATASET_NAME: birds\nTRAIN:\n  FLAG: true\n  BATCH_SIZE: 4\n  SMOOTH:\n    LAMBDA: 1.0\nCLIPGAN:\n  SEED: 100\n";

fn stderr(o: &std::process::Output) -> String {
    String::from_utf8_lossy(&o.stderr).into_owned()
}

fn run_folders(h: &Home) -> usize {
    std::fs::read_dir(h.path().join("runs")).map(|d| d.count()).unwrap_or(0)
}

#[test]
fn a_sweep_of_12_fake_runs_on_3_slots_runs_each_member_exactly_once() {
    let h = Home::new();
    write(h.path().join("cfg/t.yml"), CFG);
    let hook_out = h.path().join("ended.txt");
    h.ok(&["groups", "add", "w", "--slots", "3", "--on-finish", &format!("echo \"$1 $2\" >> {}", hook_out.display())]);
    let out = h.ok(&[
        "sweep",
        "cfg/t.yml",
        "--job",
        "fake-run",
        "--group",
        "w",
        "--grid",
        "TRAIN.SMOOTH.LAMBDA=0.1,1,10",
        "--grid",
        "GAN.GF_DIM=32,64",
        "--seeds",
        "2",
        "--json",
        "--",
        "--steps",
        "6",
        "--step-ms",
        "40",
        "--sample-every",
        "0",
    ]);
    let (sweep, ids) = sweep_answer(&out);
    assert_eq!(ids.len(), 12);

    // Never more than 3 at once, and the slots are used.
    let mut c = h.client();
    let mut most = 0;
    let deadline = std::time::Instant::now() + std::time::Duration::from_secs(90);
    let s = loop {
        let s = c.status().unwrap();
        most = most.max(s.tasks.iter().filter(|t| t.task.state.is_active()).count());
        if s.tasks.iter().all(|t| t.task.state.is_final()) {
            break s;
        }
        assert!(std::time::Instant::now() < deadline, "the sweep did not end: {}", serde_json::to_string_pretty(&s).unwrap());
        std::thread::sleep(std::time::Duration::from_millis(20));
    };
    assert!((2..=3).contains(&most), "at most 3 ran at once (saw {most})");

    let info = &s.sweeps[&sweep];
    assert_eq!(info.keys, vec!["TRAIN.SMOOTH.LAMBDA", "GAN.GF_DIM", "CLIPGAN.SEED"]);
    assert_eq!(info.name, "t");
    let mut combos = BTreeSet::new();
    for id in &ids {
        let t = &task(&s, *id).task;
        assert_eq!(t.sweep.as_deref(), Some(sweep.as_str()));
        assert_eq!(t.state, TaskState::Finished, "task {id}: {}", t.message);
        assert_eq!(t.attempts, 1, "task {id} ran once");
        let exit: serde_json::Value = serde_json::from_str(&read(t.run_dir.join("exit.json"))).unwrap();
        assert_eq!(exit["attempt"], 1);
        // Its own values are what its run recorded.
        let cfg: serde_yaml_ng::Value = serde_yaml_ng::from_str(&read(t.run_dir.join("config.yml"))).unwrap();
        let got = (
            cfg["TRAIN"]["SMOOTH"]["LAMBDA"].as_f64().unwrap().to_string(),
            cfg["GAN"]["GF_DIM"].as_u64().unwrap(),
            cfg["CLIPGAN"]["SEED"].as_u64().unwrap(),
        );
        let want: BTreeMap<&str, &str> = t.overrides.iter().map(|o| o.split_once('=').unwrap()).collect();
        assert_eq!(got.0, want["TRAIN.SMOOTH.LAMBDA"].parse::<f64>().unwrap().to_string());
        assert_eq!(got.1.to_string(), want["GAN.GF_DIM"]);
        assert_eq!(got.2.to_string(), want["CLIPGAN.SEED"]);
        assert_eq!(t.label.as_deref().unwrap(), format!("LAMBDA={} GF_DIM={} seed={}", want["TRAIN.SMOOTH.LAMBDA"], got.1, got.2));
        assert!(combos.insert(got.clone()), "{got:?} twice");
        assert!(covers(&metric_steps(&t.run_dir, "loss/g_total"), 6));
    }
    assert_eq!(combos.len(), 12);
    // The console's config diff of two members shows exactly the keys they differ in.
    let cfg_of =
        |id: u64| -> serde_yaml_ng::Value { serde_yaml_ng::from_str(&read(task(&s, id).task.run_dir.join("config.yml"))).unwrap() };
    let diff = clipgan::console::config_diff::config_diff(&cfg_of(ids[0]), &cfg_of(ids[3]));
    let keys: Vec<&str> = diff.iter().map(|d| d.key.as_str()).collect();
    assert_eq!(keys, ["CLIPGAN.SEED", "GAN.GF_DIM"], "{diff:?}");
    // The finish hook saw each run end exactly once.
    let hook_deadline = std::time::Instant::now() + std::time::Duration::from_secs(10);
    while read(&hook_out).lines().count() < 12 && std::time::Instant::now() < hook_deadline {
        std::thread::sleep(std::time::Duration::from_millis(50));
    }
    let lines = read(&hook_out);
    for id in &ids {
        let run_id = &task(&s, *id).task.run_id;
        assert_eq!(lines.lines().filter(|l| *l == format!("{run_id} finished")).count(), 1, "{run_id} in\n{lines}");
    }
    assert_eq!(lines.lines().count(), 12);

    // status groups the sweep under one line with its progress.
    let status = h.ok(&["status"]);
    assert!(
        status.contains(&format!("{sweep} t: 12/12 ended, 100% done (12 finished); varies TRAIN.SMOOTH.LAMBDA, GAN.GF_DIM, CLIPGAN.SEED")),
        "{status}"
    );
    // plot takes the sweep id: one curve per member, named by its values.
    h.ok(&["plot", &sweep, "--tag", "loss/g_total", "--out", "s.csv"]);
    let csv = read(h.path().join("s.csv"));
    assert!(
        csv.contains("LAMBDA=10 GF_DIM=64 seed=101") && csv.contains("LAMBDA=0.1 GF_DIM=32 seed=100"),
        "{}",
        &csv[..csv.len().min(400)]
    );

    // report takes the sweep id too: its members are fake-runs, not evaluations, so with
    // --keep-going each is a marked row naming its run folder.
    let out = h.run(&["report", &sweep, "--keep-going", "--format", "csv"]);
    let text = String::from_utf8_lossy(&out.stdout);
    assert!(!out.status.success(), "fake-runs have no evaluation results");
    // One CSV row per member, each marked failed (`failed` column true) with its folder.
    assert_eq!(text.lines().filter(|l| l.contains("fake-run-LAMBDA_") && l.contains("results.json,true,")).count(), 12, "{text}");
    assert!(String::from_utf8_lossy(&out.stderr).contains("12 of 12 run(s) could not be read"));

    // state.json keeps the sweep; a state file from before sweeps still loads.
    let saved = state::load(&h.paths.state).unwrap();
    assert!(saved.sweeps.contains_key(&sweep) && saved.next_sweep == 2);
    let mut old: serde_json::Value = serde_json::from_str(&read(&h.paths.state)).unwrap();
    old.as_object_mut().unwrap().remove("sweeps");
    old.as_object_mut().unwrap().remove("next_sweep");
    for t in old["tasks"].as_array_mut().unwrap() {
        t.as_object_mut().unwrap().remove("sweep");
        t.as_object_mut().unwrap().remove("overrides");
    }
    let old_path = h.path().join("old-state.json");
    write(&old_path, &old.to_string());
    let loaded = state::load(&old_path).unwrap();
    assert!(loaded.sweeps.is_empty() && loaded.next_sweep == 1 && loaded.tasks.len() == 12);
    assert!(loaded.tasks.iter().all(|t| t.sweep.is_none() && t.overrides.is_empty()));
}

#[test]
fn sweep_errors_and_limits_queue_nothing() {
    let h = Home::new();
    write(h.path().join("cfg/t.yml"), CFG);
    let mut c = h.client();
    let refused = |args: &[&str], what: &str| {
        let mut all = vec!["sweep", "cfg/t.yml", "--job", "fake-run"];
        all.extend_from_slice(args);
        let o = h.run(&all);
        assert!(!o.status.success(), "{args:?} should be refused");
        assert!(stderr(&o).contains(what), "{args:?}: {}", stderr(&o));
    };
    refused(&["--grid", "TRAIN.SMOOTH.LAMBDA="], "the grid is empty");
    refused(&["--grid", "TRAIN.SMOOTH.LAMDA=1,2"], "--grid TRAIN.SMOOTH.LAMDA");
    refused(&["--grid", "GAN.GF_DIM=32,abc"], "--grid GAN.GF_DIM");
    refused(&["--grid", "GAN.GF_DIM=32,2000"], "sweep member GF_DIM=2000");
    refused(&["--random", "TRAIN.GENERATOR_LR=loguniform(1e-5,1e-3)"], "--trials");
    refused(&[], "varies nothing");
    refused(&["--grid", "GAN.GF_DIM=8,16,24,32,40", "--limit", "4"], "more than --limit 4; add --yes");
    refused(&["--grid", "GAN.GF_DIM=8,16", "--set", "TRAIN.NOPE=1"], "--set TRAIN.NOPE=1");
    assert!(c.status().unwrap().tasks.is_empty());
    assert_eq!(run_folders(&h), 0, "no run folder was made");

    // The daemon checks every member before it queues any: one bad member, nothing queued.
    let member = |o: &str| AddTask {
        job: Some(JobKind::FakeRun),
        config: Some(h.path().join("cfg/t.yml")),
        overrides: vec![o.to_string()],
        label: Some(o.to_string()),
        ..Default::default()
    };
    let e = c
        .add_sweep(AddSweep {
            name: "x".into(),
            tasks: vec![member("GAN.GF_DIM=32"), member("GAN.GF_DIM=64"), member("GAN.GF_DIM=5000")],
            ..Default::default()
        })
        .unwrap_err()
        .to_string();
    assert!(e.contains("sweep member 3 of 3") && e.contains("nothing was queued") && e.contains("--set GAN.GF_DIM=5000"), "{e}");
    assert!(c.status().unwrap().tasks.is_empty());
    assert_eq!(run_folders(&h), 0);
    assert!(c.add_sweep(AddSweep::default()).unwrap_err().to_string().contains("no tasks"));

    // --dry-run lists; random draws are the same for the same --random-seed.
    let dry = |seed: &str| {
        h.ok(&[
            "sweep",
            "cfg/t.yml",
            "--job",
            "fake-run",
            "--random",
            "TRAIN.GENERATOR_LR=loguniform(1e-5,1e-3)",
            "--trials",
            "3",
            "--grid",
            "GAN.GF_DIM=32,64",
            "--random-seed",
            seed,
            "--dry-run",
        ])
    };
    let a = dry("1");
    assert!(a.starts_with("sweep t: 6 task(s) over GAN.GF_DIM, TRAIN.GENERATOR_LR"), "{a}");
    assert_eq!(a.lines().count(), 7);
    assert_eq!(a, dry("1"));
    assert_ne!(a, dry("2"));
    // A sweep file with the same content as the flags; flags add to it.
    write(h.path().join("cfg/s.yml"), "config: t.yml\nname: lam\ngrid:\n  TRAIN.SMOOTH.LAMBDA: [0.1, 1, 10]\nseeds: 2\njob: fake-run\n");
    let f = h.ok(&["sweep", "cfg/s.yml", "--grid", "GAN.GF_DIM=32,64", "--dry-run"]);
    assert!(f.starts_with("sweep lam: 12 task(s) over TRAIN.SMOOTH.LAMBDA, GAN.GF_DIM, CLIPGAN.SEED"), "{f}");
    assert!(f.contains("--set TRAIN.SMOOTH.LAMBDA=10 --set GAN.GF_DIM=64 --set CLIPGAN.SEED=101"), "{f}");
    // Over the limit: --yes queues it, held members wait.
    let out = h.ok(&["sweep", "cfg/t.yml", "--job", "fake-run", "--grid", "GAN.GF_DIM=8,16,24", "--limit", "2", "--yes", "--held"]);
    assert!(out.starts_with("queued sweep sweep-1: 3 task(s), ids 1-3"), "{out}");
    let s = c.status().unwrap();
    assert!(s.tasks.iter().all(|t| t.task.state == TaskState::Held && t.task.sweep.as_deref() == Some("sweep-1")));
    assert!(c.status().unwrap().tasks.iter().all(|t| t.task.state == TaskState::Held));
    // Removing its tasks removes the sweep.
    for id in 1..=3 {
        c.remove(id).unwrap();
    }
    assert!(c.status().unwrap().sweeps.is_empty());
}

#[test]
fn queue_add_and_config_check_take_overrides_and_restart_keeps_them() {
    let h = Home::new();
    write(h.path().join("cfg/t.yml"), CFG);
    let o = h.run(&["config", "check", "-q", "cfg/t.yml", "--set", "GAN.GF_DIM=32.5"]);
    assert!(!o.status.success() && stderr(&o).contains("--set GAN.GF_DIM=32.5"), "{}", stderr(&o));
    assert!(h.ok(&["config", "check", "cfg/t.yml", "--set", "GAN.GF_DIM=48"]).contains("GF_DIM: 48"));
    let o = h.run(&["queue", "add", "cfg/t.yml", "--job", "fake-run", "--set", "TRAIN.NOPE=1"]);
    assert!(
        !o.status.success() && stderr(&o).contains("--set TRAIN.NOPE=1") && stderr(&o).contains("nothing was queued"),
        "{}",
        stderr(&o)
    );
    assert_eq!(run_folders(&h), 0);
    let args = [
        "queue",
        "add",
        "cfg/t.yml",
        "--job",
        "fake-run",
        "--set",
        "TRAIN.SMOOTH.LAMBDA=0.5",
        "--json",
        "--",
        "--steps",
        "2",
        "--step-ms",
        "10",
    ];
    let added: serde_json::Value = serde_json::from_str(h.ok(&args).trim()).unwrap();
    let id = added["id"].as_u64().unwrap();
    let lambda_of = |run_dir: &std::path::Path| -> f64 {
        let v: serde_yaml_ng::Value = serde_yaml_ng::from_str(&read(run_dir.join("config.yml"))).unwrap();
        v["TRAIN"]["SMOOTH"]["LAMBDA"].as_f64().unwrap()
    };
    let s = h.wait_for(30, "the task to finish", |s| task(s, id).task.state == TaskState::Finished);
    let first = task(&s, id).task.clone();
    assert_eq!(first.overrides, vec!["TRAIN.SMOOTH.LAMBDA=0.5"]);
    assert_eq!(lambda_of(&first.run_dir), 0.5);
    // A restart runs with the same overrides, in a new run folder.
    h.ok(&["restart", &id.to_string()]);
    let s = h.wait_for(30, "the restarted task to finish", |s| {
        let t = &task(s, id).task;
        t.state == TaskState::Finished && t.run_dir != first.run_dir
    });
    assert_eq!(lambda_of(&task(&s, id).task.run_dir), 0.5);
}
