//! What the benches share for measuring: process and thread CPU clocks, the median, and
//! two timing loops. Wall time and process CPU time (all threads) are both reported,
//! since a shared machine skews wall time.
use anyhow::Result;
use std::time::Instant;
use tch::Device;

/// Process CPU seconds (user + system, all threads): the steadier figure on a shared machine.
pub(super) fn cpu_seconds() -> f64 {
    // SAFETY: getrusage fills the struct we pass.
    let mut u: libc::rusage = unsafe { std::mem::zeroed() };
    unsafe { libc::getrusage(libc::RUSAGE_SELF, &mut u) };
    let tv = |t: libc::timeval| t.tv_sec as f64 + t.tv_usec as f64 * 1e-6;
    tv(u.ru_utime) + tv(u.ru_stime)
}

/// CPU time used by the calling thread, in seconds.
pub(super) fn thread_cpu_seconds() -> f64 {
    let mut ts: libc::timespec = unsafe { std::mem::zeroed() };
    // SAFETY: clock_gettime writes into the struct we own.
    if unsafe { libc::clock_gettime(libc::CLOCK_THREAD_CPUTIME_ID, &mut ts) } != 0 {
        return 0.0;
    }
    ts.tv_sec as f64 + ts.tv_nsec as f64 * 1e-9
}

/// The median (mean of the middle two for an even count); NaN for no values.
pub(super) fn median(v: &[f64]) -> f64 {
    let mut s = v.to_vec();
    s.sort_by(f64::total_cmp);
    let n = s.len();
    match n {
        0 => f64::NAN,
        _ if n % 2 == 1 => s[n / 2],
        _ => (s[n / 2 - 1] + s[n / 2]) / 2.0,
    }
}

/// Time `f` `iters` times after one warm-up call: (wall seconds, CPU seconds) per call.
/// On CUDA the device is synchronised before and after each call.
pub(super) fn time_calls(iters: usize, device: Device, mut f: impl FnMut()) -> (Vec<f64>, Vec<f64>) {
    f();
    let (mut wall, mut cpu) = (Vec::new(), Vec::new());
    for _ in 0..iters {
        if let Device::Cuda(_) = device {
            tch::Cuda::synchronize(0);
        }
        let (t0, c0) = (Instant::now(), cpu_seconds());
        f();
        if let Device::Cuda(_) = device {
            tch::Cuda::synchronize(0);
        }
        wall.push(t0.elapsed().as_secs_f64());
        cpu.push(cpu_seconds() - c0);
    }
    (wall, cpu)
}

/// Time `f` `iters` times after one warm-up call; prints each (to stderr with `to_stderr`,
/// keeping stdout for a `--json` result) and returns (wall, cpu) medians.
pub(super) fn time_calls_printing(iters: usize, to_stderr: bool, mut f: impl FnMut() -> Result<()>) -> Result<(f64, f64)> {
    f()?;
    let (mut wall, mut cpu) = (Vec::new(), Vec::new());
    for i in 0..iters.max(1) {
        let (t, c) = (Instant::now(), cpu_seconds());
        f()?;
        wall.push(t.elapsed().as_secs_f64());
        cpu.push(cpu_seconds() - c);
        let line = format!("  iter {i}: {:.3} s wall, {:.3} s CPU", wall[i], cpu[i]);
        if to_stderr {
            eprintln!("{line}");
        } else {
            println!("{line}");
        }
    }
    Ok((median(&wall), median(&cpu)))
}
