//! `clipgan doctor`
use crate::device;
use anyhow::Result;
use std::process::ExitCode;

pub fn run() -> Result<ExitCode> {
    let backend = device::init_torch();
    let mut ok = true;
    let lib = device::loaded_libtorch_dir();
    let version = device::libtorch_version();
    println!("clipgan         {}", env!("CARGO_PKG_VERSION"));
    println!("libtorch        {version}");
    match &lib {
        Some(dir) => println!("loaded from     {}", dir.display()),
        None => {
            println!("loaded from     (not found in this process's memory map)");
            ok = false;
        }
    }
    println!("built against   {}", option_env!("CLIPGAN_BUILD_LIBTORCH_LIB").unwrap_or("(unknown)"));
    if !version.starts_with("2.11.0") {
        eprintln!("clipgan: error: libtorch {version} is loaded, but clipgan (tch 0.24) is built for 2.11.0");
        ok = false;
    }
    match backend {
        device::CudaBackend::Loaded(p) => println!("CUDA backend    loaded ({})", p.display()),
        device::CudaBackend::Absent => println!("CUDA backend    none (CPU-only libtorch)"),
        device::CudaBackend::Failed(e) => println!("CUDA backend    failed to load: {e}"),
    }
    // A real computation proves the library works, not just that it is mapped.
    match tch::Tensor::f_arange(6, (tch::Kind::Float, tch::Device::Cpu)).and_then(|t| t.f_sum(tch::Kind::Float)) {
        Ok(t) if f64::try_from(&t).ok() == Some(15.0) => println!("CPU tensor op   ok"),
        Ok(t) => {
            eprintln!("clipgan: error: libtorch computed a wrong sum: {t}");
            ok = false;
        }
        Err(e) => {
            eprintln!("clipgan: error: libtorch cannot compute on the CPU: {e}");
            ok = false;
        }
    }
    let count = tch::Cuda::device_count();
    println!("CUDA available  {}", tch::Cuda::is_available());
    println!("CUDA devices    {count}");
    let names = device::cuda_device_names();
    for i in 0..count {
        let name = names.get(i as usize).map(String::as_str).unwrap_or("(name unknown: nvidia-smi not found)");
        let check = tch::Tensor::f_ones([4], (tch::Kind::Float, tch::Device::Cuda(i as usize)))
            .and_then(|t| t.f_sum(tch::Kind::Float))
            .map(|t| f64::try_from(&t).ok() == Some(4.0));
        let status = match check {
            Ok(true) => "tensor op ok".to_string(),
            Ok(false) => {
                ok = false;
                "tensor op gave a wrong result".to_string()
            }
            Err(e) => {
                ok = false;
                format!("tensor op failed: {e}")
            }
        };
        println!("  cuda:{i}        {name} ({status})");
    }
    println!("cuDNN           {}", tch::Cuda::cudnn_is_available());
    println!(
        "threads         {} intra-op (libtorch), {} cores online",
        tch::get_num_threads(),
        std::thread::available_parallelism().map(|n| n.get()).unwrap_or(1)
    );
    println!("default device  {}", if count > 0 { "cuda:0" } else { "cpu" });
    Ok(if ok { ExitCode::SUCCESS } else { ExitCode::FAILURE })
}
