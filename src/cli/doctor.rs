//! `clipgan doctor [--json]`: which libtorch is loaded and whether it is the one clipgan
//! was built for, the CUDA backend, devices (with a tensor op on each), driver, CUDA
//! runtime and cuDNN versions, threads. `--json` is for scripts (scripts/gpu-check.sh).
use crate::device;
use anyhow::Result;
use clap::Args;
use serde::Serialize;
use std::process::ExitCode;

#[derive(Args, Debug)]
pub struct DoctorArgs {
    /// Print the report as one JSON object (for scripts) instead of text.
    #[arg(long)]
    pub json: bool,
}

#[derive(Serialize, Debug)]
struct CudaDevice {
    index: i64,
    /// From NVML (else nvidia-smi); None when neither is there.
    name: Option<String>,
    memory_total_bytes: Option<u64>,
    /// "ok", or what went wrong with a small tensor op on the device.
    tensor_op: String,
}

#[derive(Serialize, Debug)]
struct Report {
    clipgan: &'static str,
    /// The torch version clipgan was built against (None: the build could not tell).
    torch_built_for: Option<&'static str>,
    torch_loaded: String,
    /// Whether the loaded torch's public version (before any `+cu130`-like local tag)
    /// is the one clipgan was built for.
    torch_matches: bool,
    loaded_from: Option<String>,
    built_against: Option<&'static str>,
    /// "loaded", "absent" (CPU-only libtorch) or "failed: <why>".
    cuda_backend: String,
    cpu_tensor_op: String,
    cuda_available: bool,
    cuda_devices: Vec<CudaDevice>,
    cudnn_available: bool,
    /// Versions as "major.minor[.patch]" when the libraries can be asked.
    cuda_runtime: Option<String>,
    cudnn_version: Option<String>,
    driver_version: Option<String>,
    /// The highest CUDA version the driver supports.
    driver_cuda: Option<String>,
    /// Why NVML could not be asked, when it could not.
    nvml_error: Option<String>,
    threads: i32,
    cores_online: usize,
    default_device: String,
    /// Every check above passed.
    ok: bool,
}

pub fn run(args: DoctorArgs) -> Result<ExitCode> {
    let r = report();
    if args.json {
        println!("{}", serde_json::to_string_pretty(&r)?);
    } else {
        print_text(&r);
    }
    Ok(if r.ok { ExitCode::SUCCESS } else { ExitCode::FAILURE })
}

fn report() -> Report {
    let backend = device::init_torch();
    let loaded = device::libtorch_version();
    let built_for = device::built_torch_version();
    let torch_matches = device::same_torch_release(&loaded, built_for.unwrap_or("2.11.0"));
    let lib = device::loaded_libtorch_dir();
    // A real computation proves the library works, not just that it is mapped.
    let cpu_tensor_op = match tch::Tensor::f_arange(6, (tch::Kind::Float, tch::Device::Cpu)).and_then(|t| t.f_sum(tch::Kind::Float)) {
        Ok(t) if f64::try_from(&t).ok() == Some(15.0) => "ok".to_string(),
        Ok(t) => format!("wrong sum: {t}"),
        Err(e) => format!("failed: {e}"),
    };
    let nvml = nvml_wrapper::Nvml::init().map_err(|e| e.to_string());
    let smi_names = device::cuda_device_names();
    let count = tch::Cuda::device_count();
    let cuda_devices: Vec<CudaDevice> = (0..count)
        .map(|i| {
            let nvml_dev = nvml.as_ref().ok().and_then(|n| n.device_by_index(i as u32).ok());
            let name = nvml_dev.as_ref().and_then(|d| d.name().ok()).or_else(|| smi_names.get(i as usize).cloned());
            let memory_total_bytes = nvml_dev.as_ref().and_then(|d| d.memory_info().ok()).map(|m| m.total);
            let tensor_op = match tch::Tensor::f_ones([4], (tch::Kind::Float, tch::Device::Cuda(i as usize)))
                .and_then(|t| t.f_sum(tch::Kind::Float))
                .map(|t| f64::try_from(&t).ok() == Some(4.0))
            {
                Ok(true) => "ok".to_string(),
                Ok(false) => "wrong result".to_string(),
                Err(e) => format!("failed: {e}"),
            };
            CudaDevice { index: i, name, memory_total_bytes, tensor_op }
        })
        .collect();
    let cuda_backend = match backend {
        device::CudaBackend::Loaded(_) => "loaded".to_string(),
        device::CudaBackend::Absent => "absent".to_string(),
        device::CudaBackend::Failed(e) => format!("failed: {e}"),
    };
    let ok = lib.is_some() && torch_matches && cpu_tensor_op == "ok" && cuda_devices.iter().all(|d| d.tensor_op == "ok");
    Report {
        clipgan: env!("CARGO_PKG_VERSION"),
        torch_built_for: built_for,
        torch_loaded: loaded,
        torch_matches,
        loaded_from: lib.map(|d| d.display().to_string()),
        built_against: option_env!("CLIPGAN_BUILD_LIBTORCH_LIB"),
        cuda_backend,
        cpu_tensor_op,
        cuda_available: tch::Cuda::is_available(),
        cudnn_available: tch::Cuda::cudnn_is_available(),
        cuda_runtime: device::cuda_runtime_version(),
        cudnn_version: device::cudnn_version(),
        driver_version: nvml.as_ref().ok().and_then(|n| n.sys_driver_version().ok()),
        driver_cuda: nvml.as_ref().ok().and_then(|n| n.sys_cuda_driver_version().ok()).map(|v| format!("{}.{}", v / 1000, (v % 1000) / 10)),
        nvml_error: nvml.as_ref().err().cloned(),
        threads: tch::get_num_threads(),
        cores_online: std::thread::available_parallelism().map(|n| n.get()).unwrap_or(1),
        default_device: if count > 0 { "cuda:0".into() } else { "cpu".into() },
        cuda_devices,
        ok,
    }
}

fn print_text(r: &Report) {
    let or = |v: &Option<String>, none: &str| v.clone().unwrap_or_else(|| none.to_string());
    println!("clipgan         {}", r.clipgan);
    println!("libtorch        {}", r.torch_loaded);
    println!("loaded from     {}", or(&r.loaded_from, "(not found in this process's memory map)"));
    println!("built against   {} (torch {})", r.built_against.unwrap_or("(unknown)"), r.torch_built_for.unwrap_or("unknown"));
    if !r.torch_matches {
        eprintln!(
            "clipgan: error: libtorch {} is loaded, but clipgan is built for torch {}",
            r.torch_loaded,
            r.torch_built_for.unwrap_or("2.11.0")
        );
    }
    match r.cuda_backend.as_str() {
        "loaded" => println!("CUDA backend    loaded"),
        "absent" => println!("CUDA backend    none (CPU-only libtorch)"),
        other => println!("CUDA backend    {other}"),
    }
    if r.cpu_tensor_op == "ok" {
        println!("CPU tensor op   ok");
    } else {
        eprintln!("clipgan: error: libtorch on the CPU: {}", r.cpu_tensor_op);
    }
    println!("CUDA available  {}", r.cuda_available);
    println!("CUDA devices    {}", r.cuda_devices.len());
    for d in &r.cuda_devices {
        let mem = d.memory_total_bytes.map(|b| format!(", {:.1} GiB", b as f64 / (1u64 << 30) as f64)).unwrap_or_default();
        let name = d.name.as_deref().unwrap_or("(name unknown: no NVML or nvidia-smi)");
        println!("  cuda:{}        {name}{mem} (tensor op {})", d.index, d.tensor_op);
    }
    println!("cuDNN           {} (version {})", r.cudnn_available, or(&r.cudnn_version, "unknown"));
    println!("CUDA runtime    {}", or(&r.cuda_runtime, "unknown"));
    match &r.nvml_error {
        Some(e) => println!("driver          unknown (NVML: {e})"),
        None => println!("driver          {} (CUDA {})", or(&r.driver_version, "unknown"), or(&r.driver_cuda, "unknown")),
    }
    println!("threads         {} intra-op (libtorch), {} cores online", r.threads, r.cores_online);
    println!("default device  {}", r.default_device);
}
