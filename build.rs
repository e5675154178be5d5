//! Link-time set-up for libtorch (see docs/architecture.md, "libtorch").
//!
//! The binary gets an rpath to the folder torch-sys linked against, so it finds
//! `libtorch_cpu.so` / `libc10.so` without `LD_LIBRARY_PATH`, from any working folder.
//! torch-sys exports that folder as `DEP_TCH_LIBTORCH_LIB` only to crates that depend on
//! it directly, hence the explicit `torch-sys` dependency in Cargo.toml.
//!
//! `libtorch_cuda.so` is deliberately *not* linked: nothing references it by symbol,
//! and mapping it costs every process ~240 MB and 0.1 s, which the daemon, the console
//! and quick CLI calls don't need. Subcommands that compute load it at start-up instead
//! (`device::init_torch`), before the first CUDA query, which is what makes CUDA usable.
fn main() {
    println!("cargo:rerun-if-env-changed=DEP_TCH_LIBTORCH_LIB");
    let Some(lib) = std::env::var_os("DEP_TCH_LIBTORCH_LIB") else {
        println!("cargo:warning=DEP_TCH_LIBTORCH_LIB is not set; the binary will need LD_LIBRARY_PATH");
        return;
    };
    let lib = std::path::PathBuf::from(lib);
    if std::env::var("CARGO_CFG_TARGET_OS").as_deref() == Ok("linux") {
        println!("cargo:rustc-link-arg=-Wl,-rpath,{}", lib.display());
    }
    // Where the build found libtorch, for `clipgan doctor` to compare with what it loads.
    println!("cargo:rustc-env=CLIPGAN_BUILD_LIBTORCH_LIB={}", lib.display());
    // The torch version built against (pip layout: `torch/version.py` beside `torch/lib`),
    // so that a prebuilt binary can say which torch it needs (`clipgan doctor --json`).
    let version_py = lib.parent().map(|torch| torch.join("version.py"));
    if let Some(v) = version_py.as_deref().and_then(|p| std::fs::read_to_string(p).ok()).and_then(|t| torch_version_of(&t)) {
        println!("cargo:rerun-if-changed={}", version_py.as_deref().unwrap().display());
        println!("cargo:rustc-env=CLIPGAN_BUILD_TORCH_VERSION={v}");
    }
}

/// `__version__` of a torch `version.py`.
fn torch_version_of(text: &str) -> Option<String> {
    text.lines().find_map(|l| l.strip_prefix("__version__ = ").map(|v| v.trim().trim_matches('\'').trim_matches('"').to_string()))
}
