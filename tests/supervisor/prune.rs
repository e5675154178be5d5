//! Sweeps that prune, through the real daemon: fake-runs whose loss is shifted by
//! CLIPGAN.FAKE_OFFSET, so the members with the larger offsets are worse than the median
//! at every step; those are stopped with a checkpoint and end `pruned` (never failed),
//! a dependent of one behaves as for a killed task, and a pruned member resumes and
//! finishes. Bad pruning settings queue nothing.
use crate::common::*;
use clipgan::supervisor::prune::{Direction, PruneSpec, Rule};
use clipgan::supervisor::state::{self, TaskState};

const CFG: &str = "CONFIG_NAME: t\nDATASET_NAME: birds\nTRAIN:\n  FLAG: true\n  BATCH_SIZE: 4\nCLIPGAN:\n  SEED: 100\n";

fn stderr(o: &std::process::Output) -> String {
    String::from_utf8_lossy(&o.stderr).into_owned()
}

fn offset_of(t: &clipgan::supervisor::state::Task) -> String {
    t.overrides.iter().find_map(|o| o.strip_prefix("CLIPGAN.FAKE_OFFSET=")).unwrap_or_default().to_string()
}

#[test]
fn the_members_worse_than_the_median_are_pruned_with_a_checkpoint_and_resume() {
    let h = Home::new();
    write(h.path().join("cfg/t.yml"), CFG);
    h.ok(&["groups", "add", "w", "--slots", "4"]);
    // The members share their seed, so their curves differ by the offset alone: at every
    // step 0.5 and 5 are above the median of the others, 0 and 0.1 never are.
    let out = h.ok(&[
        "sweep",
        "cfg/t.yml",
        "--job",
        "fake-run",
        "--group",
        "w",
        "--grid",
        "CLIPGAN.FAKE_OFFSET=0,0.1,0.5,5",
        "--prune",
        "median",
        "--metric",
        "loss/g_total",
        "--after-steps",
        "4",
        "--json",
        "--",
        "--steps",
        "40",
        "--step-ms",
        "100",
        "--sample-every",
        "0",
    ]);
    let (sweep, ids) = sweep_answer(&out);
    assert_eq!(ids.len(), 4);
    // A task that runs after the worst member: it behaves as after a killed task.
    let after = h.ok(&["queue", "add", "cfg/t.yml", "--job", "fake-run", "--after", &ids[3].to_string(), "--json"]);
    let dependent = serde_json::from_str::<serde_json::Value>(after.trim()).unwrap()["id"].as_u64().unwrap();

    let s = h.wait_for(90, "the sweep to end", |s| ids.iter().all(|id| task(s, *id).task.state.is_final()));
    for id in &ids {
        let t = &task(&s, *id).task;
        let offset = offset_of(t);
        if offset == "0.5" || offset == "5" {
            assert_eq!(t.state, TaskState::Pruned, "offset {offset}: {}", t.message);
            assert!(t.message.starts_with("pruned at step ") && t.message.contains("loss/g_total"), "{}", t.message);
            assert!(t.message.contains(&format!("resume-run {id}")), "{}", t.message);
            let p = t.pruned.as_ref().expect("the prune is recorded");
            assert!(p.step >= 4 && p.value > p.median && p.others >= 2, "{p:?}");
            // Stopped gracefully: a checkpoint at the last step it logged, short of 40.
            let status = clipgan::rundir::read_status(&t.run_dir).unwrap().unwrap();
            assert_eq!(status.state, clipgan::rundir::RunState::Stopped);
            assert!(status.last_checkpoint.is_some_and(|c| t.run_dir.join(c).is_file()));
            let steps = metric_steps(&t.run_dir, "loss/g_total");
            assert!(steps.len() < 40 && covers(&steps, steps.len() as u64), "{} steps", steps.len());
        } else {
            assert_eq!(t.state, TaskState::Finished, "offset {offset}: {}", t.message);
            assert!(covers(&metric_steps(&t.run_dir, "loss/g_total"), 40));
        }
    }
    assert!(s.tasks.iter().all(|t| t.task.state != TaskState::Failed), "nobody is marked failed");
    let s = h.wait_for(20, "the dependent to settle", |s| task(s, dependent).task.state.is_final());
    let d = &task(&s, dependent).task;
    assert_eq!(d.state, TaskState::DepFailed);
    assert!(d.message.contains(&format!("task {} it runs after ended pruned", ids[3])), "{}", d.message);

    // status, status --json and the sweep's record say so.
    let status = h.ok(&["status"]);
    assert!(status.contains(&format!("{sweep} t: 4/4 ended, 100% done (")) && status.contains("2 pruned"), "{status}");
    assert!(status.lines().filter(|l| l.contains(" pruned ")).count() >= 2, "{status}");
    let json: serde_json::Value = serde_json::from_str(&h.ok(&["status", "--json"])).unwrap();
    let states: Vec<&str> = json["tasks"].as_array().unwrap().iter().filter_map(|t| t["state"].as_str()).collect();
    assert_eq!(states.iter().filter(|s| **s == "pruned").count(), 2, "{states:?}");
    assert_eq!(
        s.sweeps[&sweep].prune,
        Some(PruneSpec { rule: Rule::Median, metric: "loss/g_total".into(), after_steps: 4, direction: Direction::Min })
    );
    // plot names the pruned members.
    h.ok(&["plot", &sweep, "--tag", "loss/g_total", "--out", "s.csv"]);
    let csv = read(h.path().join("s.csv"));
    assert!(csv.contains("FAKE_OFFSET=5 (pruned)") && csv.contains("FAKE_OFFSET=0.5 (pruned)"), "{}", &csv[..csv.len().min(300)]);

    // A pruned member resumes from its checkpoint and finishes: it is not pruned again,
    // though it is still worse than the others.
    let worst = ids[3];
    h.ok(&["resume-run", &worst.to_string()]);
    let s = h.wait_for(60, "the resumed member to finish", |s| task(s, worst).task.state.is_final());
    let t = &task(&s, worst).task;
    assert_eq!(t.state, TaskState::Finished, "{}", t.message);
    assert_eq!(t.attempts, 2);
    assert!(covers(&metric_steps(&t.run_dir, "loss/g_total"), 40));

    // A state file from before pruning (no `prune`, no `pruned`) still loads.
    let mut old: serde_json::Value = serde_json::from_str(&read(&h.paths.state)).unwrap();
    old["sweeps"][&sweep].as_object_mut().unwrap().remove("prune");
    for t in old["tasks"].as_array_mut().unwrap() {
        t.as_object_mut().unwrap().remove("pruned");
    }
    let old_path = h.path().join("old-state.json");
    write(&old_path, &old.to_string());
    let loaded = state::load(&old_path).unwrap();
    assert!(loaded.sweeps[&sweep].prune.is_none() && loaded.tasks.iter().all(|t| t.pruned.is_none()));
}

#[test]
fn bad_pruning_settings_queue_nothing() {
    let h = Home::new();
    write(h.path().join("cfg/t.yml"), CFG);
    let refused = |args: &[&str], what: &str| {
        let mut all = vec!["sweep", "cfg/t.yml", "--job", "fake-run", "--grid", "CLIPGAN.FAKE_OFFSET=0,1,2"];
        all.extend_from_slice(args);
        let o = h.run(&all);
        assert!(!o.status.success(), "{args:?} should be refused");
        assert!(stderr(&o).contains(what), "{args:?}: {}", stderr(&o));
    };
    refused(&["--prune", "mean", "--metric", "loss/g_total", "--after-steps", "3"], "--prune mean: unknown rule");
    refused(&["--prune", "median", "--metric", "loss/g_total", "--after-steps", "0"], "--after-steps 0");
    refused(&["--prune", "median", "--after-steps", "3"], "needs --metric");
    refused(&["--prune", "median", "--metric", "loss/g_total"], "needs --after-steps");
    refused(&["--prune", "median", "--metric", "lr/generator", "--after-steps", "3"], "--prune-direction");
    refused(&["--metric", "loss/g_total"], "go with --prune median");
    // A sweep file's `prune:` is checked the same way, its errors naming the file.
    write(
        h.path().join("cfg/s.yml"),
        "config: t.yml\njob: fake-run\ngrid:\n  CLIPGAN.FAKE_OFFSET: [0, 1]\nprune: {rule: median, metric: loss/g_total}\n",
    );
    let o = h.run(&["sweep", "cfg/s.yml"]);
    assert!(!o.status.success() && stderr(&o).contains("s.yml: prune: rule median needs after_steps"), "{}", stderr(&o));
    assert!(h.status().tasks.is_empty());
    assert_eq!(std::fs::read_dir(h.path().join("runs")).map(|d| d.count()).unwrap_or(0), 0, "no run folder was made");
    // A good one is listed by --dry-run with its direction inferred.
    write(
        h.path().join("cfg/s.yml"),
        "config: t.yml\njob: fake-run\ngrid:\n  CLIPGAN.FAKE_OFFSET: [0, 1]\nprune: {rule: median, metric: val/r_precision, after_steps: 10}\n",
    );
    let dry = h.ok(&["sweep", "cfg/s.yml", "--dry-run"]);
    assert!(dry.contains("pruning: median of val/r_precision (max) after step 10"), "{dry}");
}

#[test]
fn the_reader_follows_the_metrics_files_incrementally_and_reports_a_member_once() {
    use clipgan::supervisor::prune_watch::{Member, Reader, Watch};
    use std::io::Write;
    let dir = tempfile::tempdir().unwrap();
    let runs: Vec<std::path::PathBuf> = (0..4).map(|k| dir.path().join(format!("run{k}"))).collect();
    let append = |run: &std::path::Path, from: u64, to: u64, offset: f64| {
        std::fs::create_dir_all(run).unwrap();
        let mut f = std::fs::OpenOptions::new().create(true).append(true).open(run.join("metrics.jsonl")).unwrap();
        for s in from..=to {
            writeln!(f, "{{\"step\":{s},\"wall\":0,\"tag\":\"loss/g_total\",\"value\":{}}}", 10.0 - s as f64 * 0.1 + offset).unwrap();
            writeln!(f, "{{\"step\":{s},\"wall\":0,\"tag\":\"loss/d_total\",\"value\":0}}").unwrap();
        }
    };
    let spec = PruneSpec { rule: Rule::Median, metric: "loss/g_total".into(), after_steps: 3, direction: Direction::Min };
    let watch = |candidates: bool| {
        vec![Watch {
            spec: spec.clone(),
            members: runs
                .iter()
                .enumerate()
                .map(|(k, r)| Member { task: k as u64 + 1, run_dir: r.clone(), candidate: candidates })
                .collect(),
        }]
    };
    let mut reader = Reader::default();
    // Nothing written yet: nothing to judge, no error.
    assert!(reader.scan(&watch(true)).is_empty());
    for (k, r) in runs.iter().enumerate() {
        append(r, 1, 2, [0.0, 0.1, 0.2, 3.0][k]);
    }
    // Before after_steps: nobody is judged.
    assert!(reader.scan(&watch(true)).is_empty());
    for (k, r) in runs.iter().enumerate() {
        append(r, 3, 5, [0.0, 0.1, 0.2, 3.0][k]);
    }
    let found = reader.scan(&watch(true));
    let tasks: Vec<u64> = found.iter().map(|f| f.task).collect();
    assert_eq!(tasks, vec![3, 4], "{found:?}");
    assert_eq!((found[1].step, found[1].others), (3, 3));
    // Reported once: more steps bring nothing new about them.
    for r in &runs {
        append(r, 6, 7, 0.0);
    }
    assert!(reader.scan(&watch(true)).is_empty());
    // Members that are not candidates are never reported.
    let mut fresh = Reader::default();
    assert!(fresh.scan(&watch(false)).is_empty());
}
