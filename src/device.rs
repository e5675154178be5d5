//! Which libtorch we run against, which devices it sees, and the device a job uses.
use crate::config::{parse_device_string, Config, DeviceChoice};
use anyhow::{bail, Result};
use std::path::{Path, PathBuf};
use std::sync::OnceLock;

/// The folder libtorch was loaded from at run time, read from the process's own memory
/// map (so it is the truth, not what the build expected).
pub fn loaded_libtorch_dir() -> Option<PathBuf> {
    let maps = std::fs::read_to_string("/proc/self/maps").ok()?;
    maps.lines()
        .filter_map(|l| l.split_whitespace().nth(5))
        .find(|p| p.ends_with("/libtorch_cpu.so"))
        .and_then(|p| Path::new(p).parent().map(Path::to_path_buf))
}

/// libtorch's version, from the `version.py` beside its library folder (pip layout),
/// else the version tch was built for.
pub fn libtorch_version() -> String {
    loaded_libtorch_dir()
        .and_then(|lib| std::fs::read_to_string(lib.parent()?.join("version.py")).ok())
        .and_then(|text| {
            text.lines().find_map(|l| l.strip_prefix("__version__ = ").map(|v| v.trim().trim_matches('\'').trim_matches('"').to_string()))
        })
        .unwrap_or_else(|| "2.11.0 (version.py not found; the version tch 0.24 is built for)".into())
}

/// The torch version clipgan was built against (from the build's `torch/version.py`),
/// when the build could read it.
pub fn built_torch_version() -> Option<&'static str> {
    option_env!("CLIPGAN_BUILD_TORCH_VERSION")
}

/// Whether two torch versions are the same release: equal before any local tag
/// (`2.11.0+cu130` and `2.11.0+cpu` share libtorch's C++ API; `2.11.1` does not).
pub fn same_torch_release(a: &str, b: &str) -> bool {
    let public = |v: &str| v.split(['+', ' ']).next().unwrap_or("").trim().to_string();
    !public(a).is_empty() && public(a) == public(b)
}

/// A C function of an already loaded library (the CUDA runtime, cuDNN), by name.
fn loaded_symbol(name: &std::ffi::CStr) -> Option<*mut libc::c_void> {
    // SAFETY: dlsym on the global scope with a valid C string; nothing is loaded.
    let p = unsafe { libc::dlsym(libc::RTLD_DEFAULT, name.as_ptr()) };
    (!p.is_null()).then_some(p)
}

/// The CUDA runtime's version ("13.0"), asked from the `libcudart` that libtorch's CUDA
/// backend loaded; None without it.
pub fn cuda_runtime_version() -> Option<String> {
    if !matches!(init_torch(), CudaBackend::Loaded(_)) {
        return None;
    }
    let f = loaded_symbol(c"cudaRuntimeGetVersion")?;
    // SAFETY: cudaRuntimeGetVersion(int*) -> cudaError_t (0 = success).
    let f: extern "C" fn(*mut libc::c_int) -> libc::c_int = unsafe { std::mem::transmute(f) };
    let mut v: libc::c_int = 0;
    (f(&mut v) == 0).then(|| format!("{}.{}", v / 1000, (v % 1000) / 10))
}

/// cuDNN's version ("9.10.2") from the loaded `libcudnn`; None without it.
pub fn cudnn_version() -> Option<String> {
    if !matches!(init_torch(), CudaBackend::Loaded(_)) {
        return None;
    }
    let f = loaded_symbol(c"cudnnGetVersion")?;
    // SAFETY: size_t cudnnGetVersion(void).
    let f: extern "C" fn() -> libc::size_t = unsafe { std::mem::transmute(f) };
    Some(cudnn_version_string(f() as u64))
}

/// cuDNN's version number as text: cuDNN 9 encodes major*10000 + minor*100 + patch,
/// earlier ones major*1000 + minor*100 + patch.
fn cudnn_version_string(v: u64) -> String {
    let (major, rest) = if v >= 90000 { (v / 10000, v % 10000) } else { (v / 1000, v % 1000) };
    format!("{major}.{}.{}", rest / 100, rest % 100)
}

/// What [`init_torch`] did about the CUDA backend.
#[derive(Clone, Debug)]
pub enum CudaBackend {
    /// `libtorch_cuda.so` was loaded from this path.
    Loaded(PathBuf),
    /// This libtorch has no CUDA library (a CPU build).
    Absent,
    /// It exists but could not be loaded (the message says why).
    Failed(String),
}

static CUDA_BACKEND: OnceLock<CudaBackend> = OnceLock::new();

/// Load libtorch's CUDA backend (when this libtorch has one) so that CUDA works. Must run
/// before anything asks libtorch about CUDA: libtorch decides once, at the first
/// question, whether CUDA exists. Every subcommand that computes calls this first.
pub fn init_torch() -> &'static CudaBackend {
    CUDA_BACKEND.get_or_init(|| {
        tune_malloc();
        let Some(dir) = loaded_libtorch_dir() else {
            return CudaBackend::Failed("libtorch_cpu.so is not mapped in this process".into());
        };
        let lib = dir.join("libtorch_cuda.so");
        if !lib.exists() {
            return CudaBackend::Absent;
        }
        let c_path = match std::ffi::CString::new(lib.as_os_str().as_encoded_bytes()) {
            Ok(p) => p,
            Err(_) => return CudaBackend::Failed(format!("bad path {}", lib.display())),
        };
        // SAFETY: dlopen with a valid C string; the handle is intentionally never closed.
        let handle = unsafe { libc::dlopen(c_path.as_ptr(), libc::RTLD_NOW | libc::RTLD_GLOBAL) };
        if handle.is_null() {
            // SAFETY: dlerror returns a thread-local C string or null.
            let msg = unsafe {
                let e = libc::dlerror();
                if e.is_null() {
                    "unknown error".to_string()
                } else {
                    std::ffi::CStr::from_ptr(e).to_string_lossy().into_owned()
                }
            };
            return CudaBackend::Failed(msg);
        }
        CudaBackend::Loaded(lib)
    })
}

/// glibc malloc settings for a process that allocates and frees large tensors all the
/// time (a training step frees and reallocates every activation). By default glibc
/// serves blocks above its (adaptive, at most 32 MiB) mmap threshold with fresh `mmap`s
/// and returns freed heap tops to the kernel, so every step page-faults and zeroes its
/// activations again: a third of the CPU time of a small-model step was in the kernel.
/// Keeping blocks up to 256 MiB in the heap, trimming only above 256 MiB free and
/// growing it 64 MiB at a time made the demo-preset DM-GAN step about 15 % faster
/// (docs/training.md), at the price of up to that much freed memory kept resident.
/// Left alone when the user set glibc's own knobs (`MALLOC_*_`, `GLIBC_TUNABLES`).
fn tune_malloc() {
    if std::env::vars_os().any(|(k, _)| k.to_str().is_some_and(|k| k == "GLIBC_TUNABLES" || (k.starts_with("MALLOC_") && k.ends_with('_'))))
    {
        return;
    }
    #[cfg(all(target_os = "linux", target_env = "gnu"))]
    // SAFETY: mallopt only changes allocator parameters; called before the tensor work.
    unsafe {
        if libc::mallopt(libc::M_MMAP_THRESHOLD, 256 << 20) == 0 {
            libc::mallopt(libc::M_MMAP_THRESHOLD, 32 << 20);
        }
        libc::mallopt(libc::M_TRIM_THRESHOLD, 256 << 20);
        libc::mallopt(libc::M_TOP_PAD, 64 << 20);
    }
}

/// The device a `--device` flag names (auto, cpu, cuda, cuda:N), with the CUDA backend
/// loaded first; the same rules as `CLIPGAN.DEVICE` in a config.
pub fn from_flag(s: &str) -> Result<tch::Device> {
    if parse_device_string(s).is_none() {
        bail!("--device {s:?}: expected auto, cpu, cuda or cuda:N");
    }
    init_torch();
    let mut c = crate::config::Config::default();
    c.clipgan.device = s.to_string();
    select(&c)
}

/// Whether `libtorch_cuda.so` is mapped into this process.
pub fn cuda_library_mapped() -> bool {
    std::fs::read_to_string("/proc/self/maps").map(|m| m.contains("/libtorch_cuda.so")).unwrap_or(false)
}

/// Names of the CUDA devices, from the NVIDIA driver's `nvidia-smi` when present.
pub fn cuda_device_names() -> Vec<String> {
    std::process::Command::new("nvidia-smi")
        .args(["--query-gpu=name,memory.total", "--format=csv,noheader"])
        .output()
        .ok()
        .filter(|o| o.status.success())
        .map(|o| String::from_utf8_lossy(&o.stdout).lines().map(|l| l.trim().to_string()).filter(|l| !l.is_empty()).collect())
        .unwrap_or_default()
}

/// The device a job runs on, from its config:
/// `CLIPGAN.DEVICE` if not `auto`, else `TRAIN.DEVICE` if set, else CUDA device GPU_ID
/// when `CUDA` is true, GPU_ID >= 0 and CUDA is available, else the CPU. Under the
/// daemon (`CLIPGAN_SLOT` set) the slot's GPUs are already chosen through
/// `CUDA_VISIBLE_DEVICES`, so GPU_ID is ignored and the first visible one is used.
/// The environment variable `CLIPGAN_DEVICE` overrides all of it.
pub fn select(cfg: &Config) -> Result<tch::Device> {
    init_torch();
    let env = std::env::var("CLIPGAN_DEVICE").ok();
    let explicit = env
        .as_deref()
        .map(|s| parse_device_string(s).ok_or_else(|| anyhow::anyhow!("CLIPGAN_DEVICE={s:?}: expected auto, cpu, cuda or cuda:N")))
        .transpose()?
        .filter(|c| *c != DeviceChoice::Auto)
        .or_else(|| parse_device_string(&cfg.clipgan.device).filter(|c| *c != DeviceChoice::Auto))
        .or_else(|| parse_device_string(&cfg.train.device).filter(|c| *c != DeviceChoice::Auto));
    let count = tch::Cuda::device_count() as usize;
    let under_daemon = std::env::var_os("CLIPGAN_SLOT").is_some();
    match explicit {
        Some(DeviceChoice::Cpu) => Ok(tch::Device::Cpu),
        Some(DeviceChoice::Cuda(n)) => {
            let n = if under_daemon { 0 } else { n.unwrap_or(0) };
            if n >= count {
                bail!("CUDA device {n} was asked for, but {count} CUDA device(s) are available ({})", cuda_help());
            }
            Ok(tch::Device::Cuda(n))
        }
        Some(DeviceChoice::Auto) | None => {
            if !cfg.cuda || cfg.gpu_id < 0 || count == 0 {
                return Ok(tch::Device::Cpu);
            }
            let n = if under_daemon { 0 } else { cfg.gpu_id as usize };
            if n >= count {
                bail!("GPU_ID {n} was asked for, but {count} CUDA device(s) are available");
            }
            Ok(tch::Device::Cuda(n))
        }
    }
}

fn cuda_help() -> String {
    match init_torch() {
        CudaBackend::Loaded(_) => "libtorch's CUDA backend is loaded; is the NVIDIA driver installed?".into(),
        CudaBackend::Absent => "this libtorch is a CPU-only build".into(),
        CudaBackend::Failed(e) => format!("libtorch's CUDA backend failed to load: {e}"),
    }
}

/// Set libtorch's thread count from the config (0 keeps libtorch's default).
pub fn apply_threads(cfg: &Config) {
    if cfg.clipgan.threads > 0 {
        tch::set_num_threads(cfg.clipgan.threads as i32);
    }
}

#[cfg(test)]
mod tests {
    use super::{cudnn_version_string, same_torch_release};

    #[test]
    fn cudnn_versions_decode_in_both_encodings() {
        assert_eq!(cudnn_version_string(91900), "9.19.0");
        assert_eq!(cudnn_version_string(90100), "9.1.0");
        assert_eq!(cudnn_version_string(8902), "8.9.2");
    }

    #[test]
    fn torch_releases_compare_without_their_local_tags() {
        assert!(same_torch_release("2.11.0+cu130", "2.11.0+cpu"));
        assert!(same_torch_release("2.11.0", "2.11.0+cu130"));
        assert!(same_torch_release("2.11.0 (version.py not found; the version tch 0.24 is built for)", "2.11.0"));
        assert!(!same_torch_release("2.11.1+cu130", "2.11.0+cu130"));
        assert!(!same_torch_release("2.10.0", "2.11.0"));
        assert!(!same_torch_release("", ""));
    }
}
