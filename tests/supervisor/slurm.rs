//! The Slurm executor against a real Slurm: the one-node cluster of
//! `scripts/slurm-local.sh` (munge, slurmctld, slurmd from Debian's packages), which
//! `.ci/run` starts and these tests start themselves when it is not up (as root). No
//! Slurm command is mocked here. Jobs run the test binary's `clipgan` on this machine,
//! writing the run folders directly, as they would on a compute node of a shared file
//! system.
use crate::common::*;
use clipgan::supervisor::protocol::*;
use clipgan::supervisor::state::TaskState;
use std::path::{Path, PathBuf};
use std::process::Command;
use std::sync::OnceLock;
use std::time::Duration;

/// The cluster's config file, once the cluster is up (set in this process's environment,
/// which the daemons the tests start inherit).
fn cluster() -> &'static Path {
    static CONF: OnceLock<PathBuf> = OnceLock::new();
    CONF.get_or_init(|| {
        let script = Path::new(env!("CARGO_MANIFEST_DIR")).join("scripts/slurm-local.sh");
        let out = Command::new(&script).arg("start").output().expect("run scripts/slurm-local.sh");
        assert!(
            out.status.success(),
            "these tests need a real Slurm cluster: `sudo scripts/slurm-local.sh start` makes one on this machine (as .ci/run does)\n{}",
            String::from_utf8_lossy(&out.stderr)
        );
        let env = Command::new(&script).arg("env").output().expect("slurm-local.sh env");
        let line = String::from_utf8_lossy(&env.stdout).trim().to_string();
        let conf = PathBuf::from(line.strip_prefix("export SLURM_CONF=").expect("an export line"));
        std::env::set_var("SLURM_CONF", &conf);
        conf
    })
}

/// A home with a Slurm group `gpu`; its jobs are cancelled when the test ends.
struct SlurmHome {
    h: Home,
}

impl SlurmHome {
    fn new(extra: &[&str]) -> SlurmHome {
        cluster();
        let h = Home::new();
        let mut args = vec!["groups", "add", "gpu", "--executor", "slurm", "--slurm-arg=--time=10", "--max-submitted", "2"];
        args.extend_from_slice(extra);
        h.ok(&args);
        SlurmHome { h }
    }

    fn job_of(&self, s: &Snapshot, id: u64) -> u64 {
        task(s, id).task.slurm.as_ref().expect("a Slurm job").job_id
    }
}

impl Drop for SlurmHome {
    fn drop(&mut self) {
        let prefix = clipgan::supervisor::slurm::job_name_prefix(self.h.path());
        let prefix = prefix.as_str();
        let out = Command::new("squeue").args(["-h", "--me", "-o", "%i %j"]).output();
        if let Ok(out) = out {
            for line in String::from_utf8_lossy(&out.stdout).lines() {
                let mut f = line.split_whitespace();
                if let (Some(id), Some(name)) = (f.next(), f.next()) {
                    if name.starts_with(prefix) {
                        let _ = Command::new("scancel").arg(id).status();
                    }
                }
            }
        }
    }
}

fn state_of(s: &Snapshot, id: u64) -> TaskState {
    task(s, id).task.state
}

fn step_of(s: &Snapshot, id: u64) -> u64 {
    task(s, id).status.as_ref().map(|st| st.step).unwrap_or(0)
}

fn scontrol(args: &[&str]) {
    let out = Command::new("scontrol").args(args).output().expect("scontrol");
    assert!(out.status.success(), "scontrol {args:?}: {}", String::from_utf8_lossy(&out.stderr));
}

/// A requeued job waits for its BeginTime (Slurm's requeue delay); the tests start it
/// sooner, again while Slurm still holds it back, until it has run again. Not at once:
/// a job started again while the node still cleans up its last run is refused by slurmd
/// ("Job credential revoked") and fails, which is what the delay is for.
fn start_now_when_pending(job: u64) {
    let mut pending = false;
    let mut since = None;
    for _ in 0..240 {
        let out = Command::new("squeue").args(["-h", "-j", &job.to_string(), "-o", "%T %r"]).output().expect("squeue");
        let line = String::from_utf8_lossy(&out.stdout).trim().to_string();
        if line.starts_with("PENDING") {
            pending = true;
            let first = *since.get_or_insert_with(std::time::Instant::now);
            if line.ends_with("BeginTime") && first.elapsed() > Duration::from_secs(3) {
                let _ = Command::new("scontrol").args(["update", &format!("JobId={job}"), "StartTime=now"]).output();
            }
        } else if pending {
            return;
        }
        std::thread::sleep(Duration::from_millis(250));
    }
    panic!("job {job} did not go back to PENDING and run again (pending seen: {pending})");
}

/// Each (tag, step) at most once, and the steps of `loss/g_total` exactly 1..=n.
fn one_value_per_step(run_dir: &Path, n: u64) {
    let m = clipgan::rundir::read_metrics(run_dir).expect("metrics");
    let mut seen = std::collections::HashSet::new();
    for e in &m.events {
        assert!(seen.insert((e.tag.clone(), e.step)), "{} at step {} written twice", e.tag, e.step);
    }
    assert!(covers(&metric_steps(run_dir, "loss/g_total"), n));
}

#[test]
fn fake_runs_through_slurm_report_progress_and_finish_exactly_once() {
    let sh = SlurmHome::new(&[]);
    let h = &sh.h;
    let mut c = h.client();
    let ids: Vec<u64> = (0..3)
        .map(|_| h.add_fake(&mut c, &["--steps", "30", "--step-ms", "60", "--checkpoint-every", "10"], |t| t.group = Some("gpu".into())))
        .collect();
    // At most 2 in Slurm at once; progress is read from the run folder as for local tasks.
    let s = h.wait_for(60, "progress through Slurm", |s| ids.iter().any(|&id| step_of(s, id) >= 5));
    assert!(s.tasks.iter().filter(|t| t.task.slurm.is_some() && t.task.state.is_active()).count() <= 2);
    let out = h.ok(&["status"]);
    assert!(out.contains("slurm ") && out.contains("RUNNING on "), "{out}");
    let s = h.wait_for(90, "all finished", |s| ids.iter().all(|&id| state_of(s, id).is_final()));
    for &id in &ids {
        let t = &task(&s, id).task;
        assert_eq!(t.state, TaskState::Finished, "{}", t.message);
        assert_eq!(t.attempts, 1, "started exactly once");
        let job = t.slurm.as_ref().unwrap();
        assert!(job.script.is_file(), "the job script is kept in the run folder");
        assert!(t.run_dir.join(format!("logs/slurm-{}.out", job.job_id)).is_file());
        one_value_per_step(&t.run_dir, 30);
    }
}

#[test]
fn bad_options_and_a_missing_sbatch_are_clear_errors_with_slurms_message() {
    cluster();
    let h = Home::new();
    let out = h.run(&["groups", "add", "g", "--executor", "slurm", "--slurm-arg=--no-such-option"]);
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(!out.status.success() && err.contains("unrecognized option") && err.contains("--no-such-option"), "{err}");
    let out = h.run(&["groups", "add", "g", "--executor", "slurm", "--slurm-arg=--partition=nowhere"]);
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(!out.status.success() && err.contains("invalid partition"), "{err}");
    assert!(!h.ok(&["groups"]).lines().any(|l| l.starts_with("g ")), "nothing half-added");
    let out = h.run(&["groups", "add", "g", "--slurm-arg=--time=5"]);
    assert!(String::from_utf8_lossy(&out.stderr).contains("--executor slurm"), "Slurm options on a local group");

    // A daemon on a machine without Slurm's commands.
    let h = Home::new();
    let out = Command::new(BIN)
        .args(["groups", "add", "g", "--executor", "slurm"])
        .env("CLIPGAN_HOME", h.path())
        .env("PATH", "/nonexistent")
        .output()
        .unwrap();
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(!out.status.success() && err.contains("`sbatch` was not found"), "{err}");
}

#[test]
fn kill_reaches_the_job_and_the_worker_checkpoints_without_a_requeue() {
    let sh = SlurmHome::new(&[]);
    let h = &sh.h;
    let mut c = h.client();
    let id = h.add_fake(&mut c, &["--steps", "400", "--step-ms", "50", "--checkpoint-every", "0"], |t| t.group = Some("gpu".into()));
    h.wait_for(60, "running", |s| step_of(s, id) >= 5);
    c.kill(id, None, Some(30.0)).unwrap();
    let s = h.wait_for(60, "stopped", |s| state_of(s, id).is_final());
    let t = &task(&s, id).task;
    assert_eq!(t.state, TaskState::Stopped, "{}", t.message);
    assert_eq!(t.attempts, 1, "not requeued");
    let stopped_at = metric_steps(&t.run_dir, "loss/g_total").into_iter().max().unwrap();
    assert!(stopped_at < 400);
    // It continues from its checkpoint through Slurm again.
    c.resume_run(id).unwrap();
    let s = h.wait_for(90, "finished", |s| state_of(s, id).is_final());
    let t = &task(&s, id).task;
    assert_eq!(t.state, TaskState::Finished, "{}", t.message);
    one_value_per_step(&t.run_dir, 400);

    // A job that never started is cancelled.
    // Pause holds a pending job (or stops a running one); kill then ends it either way.
    let held = h.add_fake(&mut c, &["--steps", "400", "--step-ms", "50"], |t| t.group = Some("gpu".into()));
    h.wait_for(30, "submitted", |s| task(s, held).task.slurm.is_some());
    c.pause(Target::Task(held), false).unwrap();
    assert_eq!(state_of(&c.status().unwrap(), held), TaskState::Paused);
    c.kill(held, None, Some(30.0)).unwrap();
    let s = h.wait_for(60, "ended", |s| state_of(s, held).is_final());
    let t = &task(&s, held).task;
    assert!(matches!(t.state, TaskState::Killed | TaskState::Stopped), "{:?}: {}", t.state, t.message);
}

#[test]
fn preemption_and_the_time_limit_signal_requeue_and_resume_without_duplicate_steps() {
    let sh = SlurmHome::new(&["--slurm-signal", "USR1"]);
    let h = &sh.h;
    let mut c = h.client();
    let args = ["--steps", "120", "--step-ms", "50", "--checkpoint-every", "10"];
    let pre = h.add_fake(&mut c, &args, |t| t.group = Some("gpu".into()));
    let lim = h.add_fake(&mut c, &args, |t| t.group = Some("gpu".into()));
    let s = h.wait_for(60, "both running", |s| step_of(s, pre) >= 15 && step_of(s, lim) >= 15);
    let (jp, jl) = (sh.job_of(&s, pre), sh.job_of(&s, lim));
    // Preemption as Slurm does it: the job is requeued, its processes get SIGTERM.
    scontrol(&["requeue", &jp.to_string()]);
    // The time limit's warning: the group's signal to the batch step; the shim requeues.
    let out = Command::new("scancel").args(["--batch", "--signal=USR1", &jl.to_string()]).output().unwrap();
    assert!(out.status.success(), "{}", String::from_utf8_lossy(&out.stderr));
    start_now_when_pending(jp);
    start_now_when_pending(jl);
    let s = h.wait_for(120, "both finished", |s| state_of(s, pre).is_final() && state_of(s, lim).is_final());
    for id in [pre, lim] {
        let t = &task(&s, id).task;
        assert_eq!(t.state, TaskState::Finished, "{}", t.message);
        assert_eq!(t.attempts, 2, "one requeue, the same job: {:?}", t.slurm);
        let log = std::fs::read_to_string(t.run_dir.join(format!("logs/slurm-{}.out", t.slurm.as_ref().unwrap().job_id))).unwrap();
        assert!(log.contains("--resume"), "the second attempt continued from the checkpoint:\n{log}");
        one_value_per_step(&t.run_dir, 120);
    }
    assert_eq!(sh.job_of(&s, pre), jp);
    assert_eq!(sh.job_of(&s, lim), jl);
}

#[test]
fn a_job_stopped_again_and_again_without_progress_fails_with_the_reason() {
    let sh = SlurmHome::new(&["--slurm-max-stalls", "2"]);
    let h = &sh.h;
    let mut c = h.client();
    // Slow steps: each signal comes before the first step is done, so no start makes
    // progress (the first start has nothing to compare with; two more stall).
    let id = h.add_fake(&mut c, &["--steps", "10", "--step-ms", "20000", "--checkpoint-every", "1"], |t| t.group = Some("gpu".into()));
    let s = h.wait_for(60, "submitted", |s| task(s, id).task.slurm.is_some());
    let job = sh.job_of(&s, id);
    for round in 1..=2u32 {
        h.wait_for(60, "attempt running", |s| task(s, id).task.procs.as_ref().is_some_and(|p| p.attempt == round && p.worker.is_some()));
        std::thread::sleep(Duration::from_millis(1500));
        let out = Command::new("scancel").args(["--batch", "--signal=TERM", &job.to_string()]).output().unwrap();
        assert!(out.status.success(), "round {round}: {}", String::from_utf8_lossy(&out.stderr));
        start_now_when_pending(job);
    }
    let s = h.wait_for(60, "failed", |s| state_of(s, id).is_final());
    let t = &task(&s, id).task;
    assert_eq!(t.state, TaskState::Failed, "{}", t.message);
    assert!(t.message.contains("without progress"), "{}", t.message);
}

#[test]
fn a_killed_daemon_readopts_pending_and_running_jobs_and_nothing_is_submitted_twice() {
    let sh = SlurmHome::new(&[]);
    let h = &sh.h;
    let mut c = h.client();
    let ids: Vec<u64> = (0..3)
        .map(|_| h.add_fake(&mut c, &["--steps", "60", "--step-ms", "80", "--checkpoint-every", "10"], |t| t.group = Some("gpu".into())))
        .collect();
    let s = h.wait_for(60, "two running", |s| ids.iter().filter(|&&id| step_of(s, id) >= 3).count() == 2);
    let jobs: Vec<Option<u64>> = ids.iter().map(|&id| task(&s, id).task.slurm.as_ref().map(|j| j.job_id)).collect();
    for pid in h.daemon_pids() {
        unsafe { libc::kill(pid as i32, libc::SIGKILL) };
    }
    std::thread::sleep(Duration::from_millis(500));
    // A new daemon: the running jobs are re-adopted; the group waits for `resume` (as for
    // local tasks) before it submits the third.
    let s = h.status();
    for (k, &id) in ids.iter().enumerate() {
        if let Some(j) = jobs[k] {
            assert_eq!(sh.job_of(&s, id), j, "task {id} keeps its job");
        }
    }
    h.ok(&["resume", "--group", "gpu"]);
    let s = h.wait_for(120, "all finished", |s| ids.iter().all(|&id| state_of(s, id).is_final()));
    for &id in &ids {
        let t = &task(&s, id).task;
        assert_eq!(t.state, TaskState::Finished, "{}", t.message);
        assert_eq!(t.attempts, 1, "task {id} ran once");
        one_value_per_step(&t.run_dir, 60);
    }
    let names = Command::new("squeue").args(["-h", "--me", "--states=all", "-o", "%j"]).output().unwrap();
    let prefix = clipgan::supervisor::slurm::job_name_prefix(h.path());
    let n = String::from_utf8_lossy(&names.stdout).lines().filter(|l| l.starts_with(prefix.as_str())).count();
    assert_eq!(n, 3, "one job per task");
}

#[test]
fn a_real_finetuning_runs_to_the_end_under_slurm() {
    let sh = SlurmHome::new(&[]);
    let h = &sh.h;
    // The demo's finetuning at test size: tiny CLIP from scratch on tiny synthetic data.
    let data = h.path().join("data");
    clipgan::data::synth::generate(&data, &clipgan::data::synth::SynthConfig { train: 96, test: 32, size: 32, seed: 5 }).unwrap();
    let cfg = h.path().join("cfg-pretrain.yml");
    std::fs::write(
        &cfg,
        format!(
            "CONFIG_NAME: 'DAMSM'\nDATASET_NAME: 'birds'\nDATA_DIR: '{}'\nWORKERS: 1\nTREE:\n  BRANCH_NUM: 1\n  BASE_SIZE: 32\n\
             TRAIN:\n  BATCH_SIZE: 16\n  MAX_EPOCH: 2\n  SNAPSHOT_INTERVAL: 1\n  BACKBONE_LR: 2e-3\n  LINEAR_LR: 0.002\n\
             TEXT:\n  EMBEDDING_DIM: 32\n  CAPTIONS_PER_IMAGE: 10\n  WORDS_NUM: 24\n\
             CLIPGAN:\n  CLIP_PRESET: 'tiny'\n  CLIP_FROM_SCRATCH: true\n  THREADS: 1\n  DEVICE: 'cpu'\n  LOG_EVERY: 1\n  WARMUP_EPOCHS: 1\n  CYCLE_EPOCHS: 2\n",
            data.display()
        ),
    )
    .unwrap();
    let out = h.ok(&["queue", "add", cfg.to_str().unwrap(), "--group", "gpu", "--json"]);
    let id: u64 = serde_json::from_str::<serde_json::Value>(&out).unwrap()["id"].as_u64().expect("an id");
    let s = h.wait_for(300, "the finetuning ended", |s| state_of(s, id).is_final());
    let t = &task(&s, id).task;
    assert_eq!(t.state, TaskState::Finished, "{}", t.message);
    assert!(t.slurm.as_ref().is_some_and(|j| j.state == "COMPLETED"), "{:?}", t.slurm);
    let st = clipgan::rundir::RunDir::open(&t.run_dir).unwrap().status().unwrap().unwrap();
    assert_eq!(st.state, clipgan::rundir::RunState::Finished);
    assert!(st.last_checkpoint.is_some_and(|c| t.run_dir.join(c).is_file()));
    assert!(!metric_steps(&t.run_dir, "loss/total").is_empty());
}
