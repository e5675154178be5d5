//! The worker's side of the run folder: make it, and write config, status, metrics,
//! samples and results into it.
use super::format::*;
use crate::util::{fsx, unix_now};
use anyhow::{bail, Context, Result};
use std::fs::File;
use std::io::{BufWriter, Write};
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

/// A run folder (`runs/<id>/`).
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct RunDir {
    path: PathBuf,
}

impl RunDir {
    /// Make a new, uniquely named run folder `<runs_root>/<UTC time>-<name>` with its
    /// sub-folders and `run.json`.
    pub fn create(runs_root: &Path, name: &str, job: &str, config_source: Option<&Path>) -> Result<RunDir> {
        check_name("run name", name).map_err(anyhow::Error::msg)?;
        fsx::create_dir_all(runs_root)?;
        let stamp = chrono::Utc::now().format("%Y%m%d-%H%M%S");
        let clean: String = name.chars().map(|c| if c.is_ascii_alphanumeric() || c == '-' || c == '_' { c } else { '_' }).collect();
        let base = format!("{stamp}-{job}-{clean}");
        for n in 1..10_000 {
            let id = if n == 1 { base.clone() } else { format!("{base}-{n}") };
            let path = runs_root.join(&id);
            // create_dir (not _all) fails if it exists, so two workers never share one.
            match std::fs::create_dir(&path) {
                Ok(()) => {
                    let dir = RunDir { path };
                    dir.init(&id, name, job, config_source)?;
                    return Ok(dir);
                }
                Err(e) if e.kind() == std::io::ErrorKind::AlreadyExists => continue,
                Err(e) => return Err(e).with_context(|| format!("cannot create the run folder {}", path.display())),
            }
        }
        bail!("no free run folder name under {} for {base}", runs_root.display())
    }

    /// Make the run folder at exactly `path` (the daemon chooses names itself). It may
    /// exist already but must not hold a run yet.
    pub fn create_at(path: &Path, name: &str, job: &str, config_source: Option<&Path>) -> Result<RunDir> {
        check_name("run name", name).map_err(anyhow::Error::msg)?;
        fsx::create_dir_all(path)?;
        if path.join(MANIFEST_FILE).exists() {
            bail!("{} already holds a run", path.display());
        }
        let id = path.file_name().map(|n| n.to_string_lossy().into_owned()).unwrap_or_default();
        let dir = RunDir { path: path.to_path_buf() };
        dir.init(&id, name, job, config_source)?;
        Ok(dir)
    }

    fn init(&self, id: &str, name: &str, job: &str, config_source: Option<&Path>) -> Result<()> {
        for sub in [SAMPLES_DIR, CHECKPOINTS_DIR, LOGS_DIR] {
            fsx::create_dir_all(&self.path.join(sub))?;
        }
        let manifest = Manifest {
            format: FORMAT_VERSION,
            id: id.to_string(),
            job: job.to_string(),
            name: name.to_string(),
            created: unix_now(),
            config_source: config_source.map(|p| p.display().to_string()),
            command: std::env::args().collect(),
            host: hostname(),
            clipgan_version: env!("CARGO_PKG_VERSION").to_string(),
        };
        self.write_json_atomic(MANIFEST_FILE, &manifest)?;
        self.write_status(&Status { pid: None, ..Status::new(RunState::Created) })
    }

    /// Open an existing run folder, checking that its format is one we read.
    pub fn open(path: &Path) -> Result<RunDir> {
        let dir = RunDir { path: path.to_path_buf() };
        // The version first: a newer format may not parse as this one's manifest.
        let raw: serde_json::Value = dir.read_json(MANIFEST_FILE)?;
        let format = raw.get("format").and_then(serde_json::Value::as_u64).unwrap_or(0);
        if format > FORMAT_VERSION as u64 {
            let by = raw.get("clipgan_version").and_then(|v| v.as_str()).map(|v| crate::util::cut(v, 40)).unwrap_or_else(|| "?".into());
            bail!(
                "{} was written in run format {format} by clipgan {by}; this clipgan reads format {FORMAT_VERSION} and older",
                path.join(MANIFEST_FILE).display(),
            );
        }
        dir.manifest()?;
        Ok(dir)
    }

    pub fn path(&self) -> &Path {
        &self.path
    }

    /// Absolute path of a run-folder-relative file.
    pub fn file(&self, rel: &str) -> PathBuf {
        self.path.join(rel)
    }

    pub fn id(&self) -> String {
        self.path.file_name().map(|n| n.to_string_lossy().into_owned()).unwrap_or_default()
    }

    pub fn checkpoints_dir(&self) -> PathBuf {
        self.path.join(CHECKPOINTS_DIR)
    }

    pub fn samples_dir(&self) -> PathBuf {
        self.path.join(SAMPLES_DIR)
    }

    pub fn manifest(&self) -> Result<Manifest> {
        self.read_json(MANIFEST_FILE)
    }

    /// The status file; `Ok(None)` when there is none yet.
    pub fn status(&self) -> Result<Option<Status>> {
        super::reader::read_status(&self.path)
    }

    pub fn write_status(&self, status: &Status) -> Result<()> {
        self.write_json_atomic(STATUS_FILE, status)
    }

    /// Store the resolved config (YAML) the run uses.
    pub fn write_config(&self, yaml: &str) -> Result<()> {
        fsx::atomic_write(&self.file(CONFIG_FILE), yaml.as_bytes())
    }

    pub fn config_text(&self) -> Result<String> {
        fsx::read_to_string(&self.file(CONFIG_FILE))
    }

    /// Store final results (evaluation metrics and the like) as `results.json`.
    pub fn write_results(&self, results: &serde_json::Value) -> Result<()> {
        self.write_json_atomic(RESULTS_FILE, results)
    }

    pub fn write_json_atomic<T: serde::Serialize>(&self, rel: &str, value: &T) -> Result<()> {
        let mut bytes = serde_json::to_vec_pretty(value)?;
        bytes.push(b'\n');
        fsx::atomic_write(&self.file(rel), &bytes)
    }

    pub fn read_json<T: serde::de::DeserializeOwned>(&self, rel: &str) -> Result<T> {
        let path = self.file(rel);
        let bytes = std::fs::read(&path).with_context(|| format!("cannot read {}", path.display()))?;
        serde_json::from_slice(&bytes)
            .with_context(|| format!("{} is not valid: the file is corrupt or from another program", path.display()))
    }
}

fn hostname() -> String {
    std::fs::read_to_string("/proc/sys/kernel/hostname").map(|s| s.trim().to_string()).unwrap_or_default()
}

/// An append-only JSON-lines file, buffered, flushed by a background thread at least
/// once a second and when dropped. Shared by clones.
#[derive(Clone)]
pub struct JsonlWriter {
    inner: Arc<JsonlInner>,
}

struct JsonlInner {
    path: PathBuf,
    file: Mutex<BufWriter<File>>,
    /// The first write error, reported by the next call (the flusher thread can't).
    error: Mutex<Option<String>>,
    stop: AtomicBool,
}

impl JsonlWriter {
    pub fn open(path: &Path) -> Result<JsonlWriter> {
        let file = std::fs::OpenOptions::new()
            .create(true)
            .append(true)
            .open(path)
            .with_context(|| format!("cannot open {} for appending", path.display()))?;
        let inner = Arc::new(JsonlInner {
            path: path.to_path_buf(),
            file: Mutex::new(BufWriter::with_capacity(64 * 1024, file)),
            error: Mutex::new(None),
            stop: AtomicBool::new(false),
        });
        let weak = Arc::downgrade(&inner);
        std::thread::Builder::new()
            .name("jsonl-flush".into())
            .spawn(move || loop {
                std::thread::sleep(Duration::from_millis(500));
                let Some(inner) = weak.upgrade() else { return };
                if inner.stop.load(Ordering::Relaxed) {
                    return;
                }
                inner.flush_now();
            })
            .context("cannot start the metrics flusher thread")?;
        Ok(JsonlWriter { inner })
    }

    /// Append one record (a whole line: a reader never sees half of it after a flush).
    pub fn append<T: serde::Serialize>(&self, record: &T) -> Result<()> {
        let mut line = serde_json::to_vec(record)?;
        line.push(b'\n');
        self.check_error()?;
        let mut f = self.inner.file.lock().unwrap_or_else(|p| p.into_inner());
        // A line larger than the buffer is written through directly, still whole.
        f.write_all(&line).with_context(|| format!("cannot write to {}", self.inner.path.display()))
    }

    pub fn flush(&self) -> Result<()> {
        self.inner.flush_now();
        self.check_error()
    }

    fn check_error(&self) -> Result<()> {
        if let Some(e) = self.inner.error.lock().unwrap_or_else(|p| p.into_inner()).take() {
            bail!("{e}");
        }
        Ok(())
    }
}

impl JsonlInner {
    fn flush_now(&self) {
        let mut f = self.file.lock().unwrap_or_else(|p| p.into_inner());
        if let Err(e) = f.flush() {
            let mut err = self.error.lock().unwrap_or_else(|p| p.into_inner());
            if err.is_none() {
                *err = Some(format!("cannot write to {}: {e}", self.path.display()));
            }
        }
    }
}

impl Drop for JsonlInner {
    fn drop(&mut self) {
        self.stop.store(true, Ordering::Relaxed);
        self.flush_now();
    }
}

/// The TensorBoard copy of the scalars (docs/run-format.md): opened at the first scalar
/// (a new event file per attempt), flushed with the status (about once a second) and
/// at the end. A failure to write it is reported once on stderr and turns it off: the
/// run's record is `metrics.jsonl`.
enum Events {
    Off,
    Pending,
    Open(super::tfevents::EventWriter),
}

/// The environment variable that turns the event file off for every job (`0`, `false`,
/// `off`, `no`).
pub const TENSORBOARD_ENV: &str = "CLIPGAN_TENSORBOARD";

fn tensorboard_env_allows() -> bool {
    !std::env::var(TENSORBOARD_ENV).is_ok_and(|v| matches!(v.trim().to_ascii_lowercase().as_str(), "0" | "false" | "off" | "no"))
}

/// Everything a worker writes into its run folder while it runs: metrics (and their
/// TensorBoard copy), samples, status with progress and ETA.
pub struct RunWriter {
    dir: RunDir,
    metrics: JsonlWriter,
    events: std::sync::Mutex<Events>,
    samples: JsonlWriter,
    status: Status,
    last_status_write: Option<Instant>,
    speed: SpeedMeter,
    /// Who else hears of progress and scalars (the job's live progress line).
    observer: Option<Mutex<Box<dyn Observer>>>,
}

/// Told of what a worker records, as it records it: the job's live progress line on
/// the terminal or in its log (`jobs::live`). The run folder stays the contract; an
/// observer only shows.
pub trait Observer: Send {
    /// After each step's progress (the status holds step, totals, speed, ETA, message).
    fn progress(&mut self, status: &Status);
    /// Scalars logged at `step`.
    fn scalars(&mut self, step: u64, values: &[(&str, f64)]);
    /// The run ended with this status.
    fn finished(&mut self, status: &Status);
}

impl RunWriter {
    /// Start writing into `dir`: status `starting` with this process's pid.
    pub fn start(dir: RunDir) -> Result<RunWriter> {
        let metrics = JsonlWriter::open(&dir.file(METRICS_FILE))?;
        fsx::create_dir_all(&dir.samples_dir())?;
        let samples = JsonlWriter::open(&dir.file(SAMPLES_INDEX))?;
        // Keep what an earlier attempt at this run recorded (resume), but take over.
        let mut status = match dir.status() {
            Ok(Some(old)) => Status { state: RunState::Starting, pid: Some(std::process::id()), message: String::new(), ..old },
            _ => Status::new(RunState::Starting),
        };
        status.started = unix_now();
        let events = std::sync::Mutex::new(if tensorboard_env_allows() { Events::Pending } else { Events::Off });
        let mut w =
            RunWriter { dir, metrics, events, samples, status, last_status_write: None, speed: SpeedMeter::default(), observer: None };
        w.write_status_now()?;
        Ok(w)
    }

    /// Tell `observer` of every step's progress, the scalars and the end.
    pub fn set_observer(&mut self, observer: Box<dyn Observer>) {
        self.observer = Some(Mutex::new(observer));
    }

    fn observe(&self, f: impl FnOnce(&mut dyn Observer)) {
        if let Some(o) = &self.observer {
            // A panic inside an observer must not stop the run's records.
            let mut g = o.lock().unwrap_or_else(|p| p.into_inner());
            f(g.as_mut());
        }
    }

    pub fn dir(&self) -> &RunDir {
        &self.dir
    }

    pub fn status(&self) -> &Status {
        &self.status
    }

    /// Set the planned totals (for progress and ETA).
    pub fn set_totals(&mut self, total_steps: Option<u64>, total_epochs: Option<u32>) {
        self.status.total_steps = total_steps;
        self.status.total_epochs = total_epochs;
    }

    pub fn set_epoch(&mut self, epoch: u32) {
        self.status.epoch = epoch;
    }

    /// Whether to also write the scalars to a TensorBoard event file (on by default;
    /// the config's `CLIPGAN.TENSORBOARD`; `CLIPGAN_TENSORBOARD=0` keeps it off).
    pub fn set_tensorboard(&mut self, on: bool) {
        let events = self.events.get_mut().unwrap_or_else(|e| e.into_inner());
        match (on && tensorboard_env_allows(), &*events) {
            (false, _) => *events = Events::Off,
            (true, Events::Off) => *events = Events::Pending,
            (true, _) => {}
        }
    }

    /// The event file being written, if any.
    pub fn event_file(&self) -> Option<PathBuf> {
        match &*self.events.lock().unwrap_or_else(|e| e.into_inner()) {
            Events::Open(w) => Some(w.path().to_path_buf()),
            _ => None,
        }
    }

    fn append_scalar(&self, e: &MetricEvent) -> Result<()> {
        self.metrics.append(e)?;
        let mut events = self.events.lock().unwrap_or_else(|e| e.into_inner());
        if matches!(*events, Events::Pending) {
            *events = match super::tfevents::EventWriter::create(self.dir.path(), e.wall, &hostname()) {
                Ok(w) => Events::Open(w),
                Err(err) => {
                    eprintln!(
                        "clipgan: cannot create a TensorBoard event file in {}: {err}; writing metrics.jsonl only",
                        self.dir.path().display()
                    );
                    Events::Off
                }
            };
        }
        if let Events::Open(w) = &mut *events {
            if let Err(err) = w.scalar(e) {
                eprintln!("clipgan: cannot write {}: {err}; writing metrics.jsonl only", w.path().display());
                *events = Events::Off;
            }
        }
        Ok(())
    }

    fn flush_events(&self) {
        let mut events = self.events.lock().unwrap_or_else(|e| e.into_inner());
        if let Events::Open(w) = &mut *events {
            if let Err(err) = w.flush() {
                eprintln!("clipgan: cannot write {}: {err}; writing metrics.jsonl only", w.path().display());
                *events = Events::Off;
            }
        }
    }

    /// Log one scalar.
    pub fn scalar(&self, step: u64, tag: &str, value: f64) -> Result<()> {
        self.observe(|o| o.scalars(step, &[(tag, value)]));
        self.append_scalar(&MetricEvent { step, epoch: self.status.epoch, wall: unix_now(), tag: tag.to_string(), value })
    }

    /// Log several scalars of one step.
    pub fn scalars(&self, step: u64, values: &[(&str, f64)]) -> Result<()> {
        self.observe(|o| o.scalars(step, values));
        let wall = unix_now();
        for (tag, value) in values {
            self.append_scalar(&MetricEvent { step, epoch: self.status.epoch, wall, tag: tag.to_string(), value: *value })?;
        }
        Ok(())
    }

    /// Save an image under `samples/` (PNG, atomically) and index it.
    pub fn sample(&self, step: u64, tag: &str, image: &image::RgbImage, captions: &[String], rows: u32, cols: u32) -> Result<PathBuf> {
        let safe_tag: String = tag.chars().map(|c| if c.is_ascii_alphanumeric() { c } else { '-' }).collect();
        let rel = format!("{SAMPLES_DIR}/{step:09}_{safe_tag}.png");
        let path = self.dir.file(&rel);
        let mut png = Vec::new();
        image::DynamicImage::ImageRgb8(image.clone())
            .write_to(&mut std::io::Cursor::new(&mut png), image::ImageFormat::Png)
            .context("cannot encode the sample image as PNG")?;
        fsx::atomic_write(&path, &png)?;
        self.samples.append(&SampleEvent {
            step,
            epoch: self.status.epoch,
            wall: unix_now(),
            tag: tag.to_string(),
            file: rel,
            captions: captions.to_vec(),
            rows,
            cols,
        })?;
        self.samples.flush()?;
        Ok(path)
    }

    /// Record that `step` steps are done; rewrites the status at most once a second.
    pub fn progress(&mut self, step: u64) -> Result<()> {
        if self.status.state != RunState::Running {
            self.status.state = RunState::Running;
            self.last_status_write = None;
        }
        self.status.step = step;
        let rate = self.speed.observe(step);
        self.status.steps_per_s = rate;
        self.status.eta_s = match (rate, self.status.total_steps) {
            (Some(r), Some(t)) if r > 0.0 => Some(t.saturating_sub(step) as f64 / r),
            _ => None,
        };
        self.observe(|o| o.progress(&self.status));
        if self.last_status_write.is_none_or(|t| t.elapsed() >= Duration::from_secs(1)) {
            self.write_status_now()?;
        }
        Ok(())
    }

    /// Change the state (written at once).
    pub fn set_state(&mut self, state: RunState, message: impl Into<String>) -> Result<()> {
        self.status.state = state;
        self.status.message = message.into();
        self.write_status_now()
    }

    /// A one-line message shown by the console (written with the next status write).
    pub fn set_message(&mut self, message: impl Into<String>) {
        self.status.message = message.into();
    }

    /// Record the newest resumable checkpoint (run-folder-relative path).
    pub fn set_checkpoint(&mut self, rel: &str) -> Result<()> {
        self.status.last_checkpoint = Some(rel.to_string());
        self.write_status_now()
    }

    /// Flush everything and write the final state.
    pub fn finish(mut self, state: RunState, message: impl Into<String>) -> Result<()> {
        self.metrics.flush()?;
        self.flush_events();
        self.samples.flush()?;
        self.status.state = state;
        self.status.message = message.into();
        self.status.eta_s = None;
        self.observe(|o| o.finished(&self.status));
        self.write_status_now()
    }

    pub fn flush(&self) -> Result<()> {
        self.metrics.flush()?;
        self.flush_events();
        self.samples.flush()
    }

    fn write_status_now(&mut self) -> Result<()> {
        // The event file goes out with the status, about once a second.
        self.flush_events();
        self.status.updated = unix_now();
        self.status.pid = Some(std::process::id());
        self.dir.write_status(&self.status)?;
        self.last_status_write = Some(Instant::now());
        Ok(())
    }
}

/// Steps per second over a sliding window of about 30 s (so the ETA follows changes
/// of speed without jumping at every step).
#[derive(Default)]
struct SpeedMeter {
    samples: std::collections::VecDeque<(Instant, u64)>,
}

impl SpeedMeter {
    fn observe(&mut self, step: u64) -> Option<f64> {
        let now = Instant::now();
        self.samples.push_back((now, step));
        while self.samples.len() > 2 && now.duration_since(self.samples[0].0) > Duration::from_secs(30) {
            self.samples.pop_front();
        }
        let (t0, s0) = *self.samples.front()?;
        let dt = now.duration_since(t0).as_secs_f64();
        (dt > 0.0 && step > s0).then(|| (step - s0) as f64 / dt)
    }
}
