//! The metric reading behind pruning, off the daemon's loop: a thread follows the
//! `metrics.jsonl` of every member of the sweeps that prune (incrementally: each file is
//! read on from where the last read ended, through `rundir::MetricsTail`), keeps only
//! the pruned metric's series, and judges the running members with `prune::judge`. The
//! daemon's tick hands it the sweeps to watch and takes what it found; it never waits on
//! a file (a slow disk delays a prune, never an answer to a client).
use super::prune::{judge, PruneSpec, Series, Verdict};
use crate::rundir::{MetricsTail, METRICS_FILE};
use std::collections::HashMap;
use std::path::PathBuf;
use std::sync::{Arc, Mutex};
use std::time::Duration;

/// How often the thread reads the members' metrics.
const READ_EVERY: Duration = Duration::from_millis(500);

/// One member of a watched sweep.
#[derive(Clone, Debug, PartialEq)]
pub struct Member {
    pub task: u64,
    pub run_dir: PathBuf,
    /// Whether it may be pruned (running, not stopping, not resumed after a prune); the
    /// others only count towards the median.
    pub candidate: bool,
}

/// A sweep to watch.
#[derive(Clone, Debug, PartialEq)]
pub struct Watch {
    pub spec: PruneSpec,
    pub members: Vec<Member>,
}

/// A member the rule says to prune.
#[derive(Clone, Debug, PartialEq)]
pub struct Found {
    pub task: u64,
    pub run_dir: PathBuf,
    pub step: u64,
    pub value: f64,
    pub median: f64,
    pub others: usize,
}

/// What is known of one run's metric.
struct Tracked {
    tail: MetricsTail,
    series: Series,
    /// Steps up to this one were judged and found not worse.
    judged: u64,
    /// A prune was reported for it (once per run folder).
    reported: bool,
}

/// The series of every watched member, keyed by (run folder, metric tag).
#[derive(Default)]
pub struct Reader {
    tracked: HashMap<(PathBuf, String), Tracked>,
}

impl Reader {
    /// Read what the members appended since the last call and judge the candidates.
    /// Runs that are no longer watched are forgotten.
    pub fn scan(&mut self, watches: &[Watch]) -> Vec<Found> {
        self.tracked.retain(|(dir, tag), _| watches.iter().any(|w| &w.spec.metric == tag && w.members.iter().any(|m| &m.run_dir == dir)));
        let mut found = Vec::new();
        for w in watches {
            for m in &w.members {
                let key = (m.run_dir.clone(), w.spec.metric.clone());
                let t = self.tracked.entry(key).or_insert_with(|| Tracked {
                    tail: MetricsTail::new(&m.run_dir.join(METRICS_FILE)),
                    series: Series::default(),
                    judged: 0,
                    reported: false,
                });
                let before = t.tail.resets;
                // A file that cannot be read now (not written yet) is tried again later.
                let events = t.tail.poll().unwrap_or_default();
                if t.tail.resets != before {
                    t.series = Series::default();
                    t.judged = 0;
                }
                for e in events.into_iter().filter(|e| e.tag == w.spec.metric) {
                    t.series.push(e.step, e.value);
                }
            }
            for m in w.members.iter().filter(|m| m.candidate) {
                let key = (m.run_dir.clone(), w.spec.metric.clone());
                if self.tracked[&key].reported {
                    continue;
                }
                let others: Vec<&Series> = w
                    .members
                    .iter()
                    .filter(|o| o.run_dir != m.run_dir)
                    .filter_map(|o| self.tracked.get(&(o.run_dir.clone(), w.spec.metric.clone())).map(|t| &t.series))
                    .collect();
                let t = &self.tracked[&key];
                let verdict = judge(&w.spec, &t.series, &others, t.judged);
                let t = self.tracked.get_mut(&key).expect("inserted above");
                match verdict {
                    Verdict::Keep { judged } => t.judged = judged,
                    Verdict::Prune { step, value, median, others } => {
                        t.reported = true;
                        found.push(Found { task: m.task, run_dir: m.run_dir.clone(), step, value, median, others });
                    }
                }
            }
        }
        found
    }
}

#[derive(Default)]
struct Shared {
    started: bool,
    watches: Vec<Watch>,
    found: Vec<Found>,
}

/// The thread and what it shares with the daemon.
#[derive(Default)]
pub struct Watcher {
    inner: Arc<Mutex<Shared>>,
}

impl Watcher {
    /// Say which sweeps to watch (starting the thread on first use) and take what was
    /// found since the last call.
    pub fn watch(&self, watches: Vec<Watch>) -> Vec<Found> {
        let mut s = self.inner.lock().unwrap_or_else(|p| p.into_inner());
        if !s.started && !watches.is_empty() {
            s.started = true;
            let inner = self.inner.clone();
            if let Err(e) = std::thread::Builder::new().name("prune".into()).spawn(move || read_loop(inner)) {
                eprintln!("clipgan daemon: cannot start the pruning thread: {e}");
            }
        }
        s.watches = watches;
        std::mem::take(&mut s.found)
    }
}

fn read_loop(inner: Arc<Mutex<Shared>>) {
    let mut reader = Reader::default();
    loop {
        let watches = inner.lock().map(|s| s.watches.clone()).unwrap_or_default();
        // Read without the lock: the daemon's tick never waits for the files.
        let found = reader.scan(&watches);
        if !found.is_empty() {
            inner.lock().unwrap_or_else(|p| p.into_inner()).found.extend(found);
        }
        std::thread::sleep(READ_EVERY);
    }
}
