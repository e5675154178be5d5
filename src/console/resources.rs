//! The console's resources panel: per worker process CPU % and resident memory (from
//! /proc), and GPU utilisation and memory per device and per process through NVML.
//! NVML (libnvidia-ml.so) is loaded at run time by nvml-wrapper: without the driver the
//! panel says "no NVIDIA GPU / driver: <reason>" and everything else works unchanged.
//! [`ResourceMonitor`] samples on a background thread (about 1 Hz).
use ratatui::buffer::Buffer;
use ratatui::layout::Rect;
use ratatui::style::{Color, Style};
use ratatui::text::Line;
use ratatui::widgets::{Paragraph, Widget};
use std::collections::HashMap;
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

/// Overrides where libnvidia-ml is loaded from (tests point it at nothing to take the
/// no-driver path on any machine).
pub const NVML_LIB_ENV: &str = "CLIPGAN_NVML_LIB";
/// The prefix of the message shown when NVML can't be used.
pub const NO_GPU: &str = "no NVIDIA GPU / driver";

/// One watched process.
#[derive(Debug, Clone, PartialEq)]
pub struct ProcUsage {
    pub pid: u32,
    /// What the console calls it (the run's name).
    pub label: String,
    /// Over the last sampling interval, 100 = one core busy; `None` on the first sample.
    pub cpu_percent: Option<f64>,
    /// Resident memory in bytes; `None` when the process is gone or unreadable.
    pub rss_bytes: Option<u64>,
    /// GPU memory this process holds, per device index.
    pub gpu_mem: Vec<(u32, u64)>,
    /// GPU SM utilisation (%) of this process, per device index, when the driver reports it.
    pub gpu_util: Vec<(u32, u32)>,
}

/// One GPU.
#[derive(Debug, Clone, PartialEq)]
pub struct GpuUsage {
    pub index: u32,
    pub name: String,
    pub util_percent: Option<u32>,
    pub mem_used: u64,
    pub mem_total: u64,
}

/// What the panel draws.
#[derive(Debug, Clone, PartialEq)]
pub struct ResourceSnapshot {
    pub procs: Vec<ProcUsage>,
    /// The GPUs, or why there are none to show.
    pub gpus: Result<Vec<GpuUsage>, String>,
}

impl Default for ResourceSnapshot {
    fn default() -> Self {
        ResourceSnapshot { procs: Vec::new(), gpus: Ok(Vec::new()) }
    }
}

fn sysconf(name: libc::c_int, fallback: u64) -> u64 {
    // SAFETY: sysconf has no preconditions.
    let v = unsafe { libc::sysconf(name) };
    if v > 0 {
        v as u64
    } else {
        fallback
    }
}

/// CPU ticks (user + system) of `pid` from /proc/PID/stat.
fn cpu_ticks(pid: u32) -> Option<u64> {
    let s = std::fs::read_to_string(format!("/proc/{pid}/stat")).ok()?;
    // The command name (field 2) may hold spaces and parentheses: fields after its
    // closing parenthesis start at field 3 (state); utime and stime are fields 14, 15.
    let rest = &s[s.rfind(')')? + 1..];
    let f: Vec<&str> = rest.split_whitespace().collect();
    Some(f.get(11)?.parse::<u64>().ok()? + f.get(12)?.parse::<u64>().ok()?)
}

/// Resident memory of `pid` in bytes from /proc/PID/statm.
fn rss_bytes(pid: u32, page: u64) -> Option<u64> {
    let s = std::fs::read_to_string(format!("/proc/{pid}/statm")).ok()?;
    Some(s.split_whitespace().nth(1)?.parse::<u64>().ok()? * page)
}

/// CPU % and RSS of processes between calls (CPU % needs two samples).
pub struct ProcSampler {
    last: HashMap<u32, (u64, Instant)>,
    clk_tck: u64,
    page: u64,
}

impl Default for ProcSampler {
    fn default() -> Self {
        Self::new()
    }
}

impl ProcSampler {
    pub fn new() -> Self {
        ProcSampler { last: HashMap::new(), clk_tck: sysconf(libc::_SC_CLK_TCK, 100), page: sysconf(libc::_SC_PAGESIZE, 4096) }
    }

    /// Sample `pids` (with their labels).
    pub fn sample(&mut self, pids: &[(u32, String)]) -> Vec<ProcUsage> {
        let now = Instant::now();
        let mut next = HashMap::new();
        let out = pids
            .iter()
            .map(|(pid, label)| {
                let ticks = cpu_ticks(*pid);
                let cpu_percent = match (ticks, self.last.get(pid)) {
                    (Some(t), Some(&(t0, when))) if t >= t0 => {
                        let secs = now.duration_since(when).as_secs_f64();
                        (secs > 0.0).then(|| (t - t0) as f64 / self.clk_tck as f64 / secs * 100.0)
                    }
                    _ => None,
                };
                if let Some(t) = ticks {
                    next.insert(*pid, (t, now));
                }
                ProcUsage {
                    pid: *pid,
                    label: label.clone(),
                    cpu_percent,
                    rss_bytes: rss_bytes(*pid, self.page),
                    gpu_mem: Vec::new(),
                    gpu_util: Vec::new(),
                }
            })
            .collect();
        self.last = next;
        out
    }
}

/// NVML, loaded at run time. Errors are already worded for the panel.
pub struct Gpus {
    nvml: nvml_wrapper::Nvml,
    /// Per device, the last process-utilisation timestamp seen (NVML returns samples
    /// newer than it).
    last_seen: HashMap<u32, u64>,
}

impl Gpus {
    /// Load libnvidia-ml (or the library named by `CLIPGAN_NVML_LIB`) and initialise it.
    pub fn init() -> Result<Gpus, String> {
        Self::init_from(std::env::var_os(NVML_LIB_ENV).as_deref())
    }

    /// Load NVML from `lib` (a path or library name), else from the driver's default.
    pub fn init_from(lib: Option<&std::ffi::OsStr>) -> Result<Gpus, String> {
        let nvml = match lib {
            Some(path) => nvml_wrapper::Nvml::builder().lib_path(path).init(),
            None => nvml_wrapper::Nvml::init(),
        }
        .map_err(|e| format!("{NO_GPU}: {e}"))?;
        Ok(Gpus { nvml, last_seen: HashMap::new() })
    }

    /// Every device, and the GPU memory and utilisation of `procs` on each.
    pub fn sample(&mut self, procs: &mut [ProcUsage]) -> Result<Vec<GpuUsage>, String> {
        let n = self.nvml.device_count().map_err(|e| format!("NVML: counting devices: {e}"))?;
        let mut out = Vec::new();
        for index in 0..n {
            let dev = self.nvml.device_by_index(index).map_err(|e| format!("NVML: device {index}: {e}"))?;
            let name = dev.name().unwrap_or_else(|_| format!("GPU {index}"));
            let util_percent = dev.utilization_rates().ok().map(|u| u.gpu);
            let (mem_used, mem_total) = dev.memory_info().map(|m| (m.used, m.total)).unwrap_or((0, 0));
            let mut listed = dev.running_compute_processes().unwrap_or_default();
            listed.extend(dev.running_graphics_processes().unwrap_or_default());
            for pi in listed {
                if let (Some(p), nvml_wrapper::enums::device::UsedGpuMemory::Used(b)) =
                    (procs.iter_mut().find(|p| p.pid == pi.pid), pi.used_gpu_memory)
                {
                    match p.gpu_mem.iter_mut().find(|(d, _)| *d == index) {
                        Some(e) => e.1 = e.1.max(b),
                        None => p.gpu_mem.push((index, b)),
                    }
                }
            }
            let since = self.last_seen.get(&index).copied();
            if let Ok(samples) = dev.process_utilization_stats(since) {
                // Newest sample per pid.
                let mut newest: HashMap<u32, (u64, u32)> = HashMap::new();
                for s in samples {
                    let e = newest.entry(s.pid).or_insert((s.timestamp, s.sm_util));
                    if s.timestamp >= e.0 {
                        *e = (s.timestamp, s.sm_util);
                    }
                    self.last_seen.insert(index, self.last_seen.get(&index).copied().unwrap_or(0).max(s.timestamp));
                }
                for p in procs.iter_mut() {
                    if let Some(&(_, u)) = newest.get(&p.pid) {
                        p.gpu_util.push((index, u));
                    }
                }
            }
            out.push(GpuUsage { index, name, util_percent, mem_used, mem_total });
        }
        Ok(out)
    }
}

/// Samples the watched processes and the GPUs on a background thread.
pub struct ResourceMonitor {
    /// The latest sample.
    latest: Arc<Mutex<ResourceSnapshot>>,
    /// New watch lists for the thread; dropping it stops the thread.
    pids: Option<std::sync::mpsc::Sender<Vec<(u32, String)>>>,
    thread: Option<std::thread::JoinHandle<()>>,
}

impl ResourceMonitor {
    /// Start sampling every `interval`; `on_update` gets each sample that differs from
    /// the one before (e.g. to send it to the app). With no process to watch and no GPU
    /// the thread sleeps until [`set_pids`](Self::set_pids), so an idle console is not
    /// woken every second.
    pub fn start(interval: Duration, on_update: impl Fn(&ResourceSnapshot) + Send + 'static) -> Self {
        use std::sync::mpsc::RecvTimeoutError;
        let latest: Arc<Mutex<ResourceSnapshot>> = Arc::default();
        let (tx, rx) = std::sync::mpsc::channel::<Vec<(u32, String)>>();
        let latest2 = latest.clone();
        let thread = std::thread::Builder::new()
            .name("clipgan-resources".into())
            .spawn(move || {
                let mut procs = ProcSampler::new();
                let mut gpus = Gpus::init();
                let mut last: Option<ResourceSnapshot> = None;
                let mut pids: Vec<(u32, String)> = Vec::new();
                loop {
                    let mut usage = procs.sample(&pids);
                    let g = match &mut gpus {
                        Ok(g) => g.sample(&mut usage),
                        Err(e) => Err(e.clone()),
                    };
                    let snap = ResourceSnapshot { procs: usage, gpus: g };
                    if let Ok(mut s) = latest2.lock() {
                        *s = snap.clone();
                    }
                    if last.as_ref() != Some(&snap) {
                        on_update(&snap);
                        last = Some(snap);
                    }
                    // Wait for the next sample or a new watch list; the monitor's drop
                    // disconnects the channel and ends the thread.
                    let idle = pids.is_empty() && gpus.is_err();
                    let next = if idle { rx.recv().map_err(|_| RecvTimeoutError::Disconnected) } else { rx.recv_timeout(interval) };
                    match next {
                        Ok(p) => pids = p,
                        Err(RecvTimeoutError::Timeout) => {}
                        Err(RecvTimeoutError::Disconnected) => return,
                    }
                    // Only the newest of several lists matters.
                    while let Ok(p) = rx.try_recv() {
                        pids = p;
                    }
                }
            })
            .expect("spawning the resources thread");
        ResourceMonitor { latest, pids: Some(tx), thread: Some(thread) }
    }

    /// The processes to watch: (pid, label), e.g. the running workers.
    pub fn set_pids(&self, pids: Vec<(u32, String)>) {
        if let Some(tx) = &self.pids {
            let _ = tx.send(pids);
        }
    }

    /// The latest sample.
    pub fn snapshot(&self) -> ResourceSnapshot {
        self.latest.lock().map(|s| s.clone()).unwrap_or_default()
    }
}

impl Drop for ResourceMonitor {
    fn drop(&mut self) {
        drop(self.pids.take());
        if let Some(t) = self.thread.take() {
            let _ = t.join();
        }
    }
}

/// Bytes as a short human figure (binary units).
pub fn human_bytes(b: u64) -> String {
    const UNITS: [&str; 5] = ["B", "KiB", "MiB", "GiB", "TiB"];
    let mut v = b as f64;
    let mut u = 0;
    while v >= 1024.0 && u < UNITS.len() - 1 {
        v /= 1024.0;
        u += 1;
    }
    if u == 0 {
        format!("{b} B")
    } else {
        format!("{v:.1} {}", UNITS[u])
    }
}

/// The panel: one line per GPU (or why there is none), then one per process.
pub struct ResourcesPanel<'a>(pub &'a ResourceSnapshot);

/// Why there are no GPUs, in a few words for the panel (the whole reason is in the
/// help overlay, `?`): NVML's loader errors run to a hundred characters.
pub fn gpu_problem_short(e: &str) -> String {
    if e.starts_with(NO_GPU) {
        format!("{NO_GPU} (details: ?)")
    } else {
        "GPUs: NVML error (details: ?)".to_string()
    }
}

impl ResourcesPanel<'_> {
    /// The lines with the whole reason when there are no GPUs (`clipgan resources`).
    pub fn lines(&self) -> Vec<Line<'static>> {
        self.lines_with(|e| e.to_string())
    }

    /// The lines as the console draws them: the reason shortened.
    pub fn screen_lines(&self) -> Vec<Line<'static>> {
        self.lines_with(gpu_problem_short)
    }

    fn lines_with(&self, gpu_problem: impl Fn(&str) -> String) -> Vec<Line<'static>> {
        let dim = Style::default().fg(Color::DarkGray);
        let mut lines = Vec::new();
        match &self.0.gpus {
            Err(e) => lines.push(Line::styled(gpu_problem(e), dim)),
            Ok(g) if g.is_empty() => lines.push(Line::styled("GPUs: not sampled yet", dim)),
            Ok(g) => {
                for d in g {
                    let util = d.util_percent.map_or("-".to_string(), |u| format!("{u:>3}%"));
                    lines.push(Line::raw(format!(
                        "GPU{} {util} {}/{} {}",
                        d.index,
                        human_bytes(d.mem_used),
                        human_bytes(d.mem_total),
                        d.name
                    )));
                }
            }
        }
        if self.0.procs.is_empty() {
            lines.push(Line::styled("no running workers", dim));
        }
        for p in &self.0.procs {
            let cpu = p.cpu_percent.map_or("   -".to_string(), |c| format!("{c:>3.0}%"));
            let rss = p.rss_bytes.map_or("gone".to_string(), human_bytes);
            // The label first: a narrow panel cuts the end of the line.
            let mut s = format!("{} cpu {cpu} rss {rss}", p.label);
            for (d, b) in &p.gpu_mem {
                s.push_str(&format!(" gpu{d} {}", human_bytes(*b)));
                if let Some((_, u)) = p.gpu_util.iter().find(|(i, _)| i == d) {
                    s.push_str(&format!(" {u}%"));
                }
            }
            s.push_str(&format!(" pid {}", p.pid));
            lines.push(Line::raw(s));
        }
        lines
    }
}

impl Widget for ResourcesPanel<'_> {
    fn render(self, area: Rect, buf: &mut Buffer) {
        Paragraph::new(self.screen_lines()).render(area, buf);
    }
}
