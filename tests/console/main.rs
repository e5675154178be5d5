//! The console: views as snapshots, images, samples, resources, the binary in a pseudo-terminal, in xterm (sixel) and over SSH.
//! One test binary per area (each links libtorch once); one module per topic.
mod disk_runs;
mod e2e;
mod eval_results;
mod images;
mod plot_canvas;
mod resources;
mod resume;
mod samples;
mod sweep_curves;
mod sweeps;
mod terminals;
mod views;

/// A small deterministic generator for the randomised tests: uniform in [0, 1).
fn xorshift(seed: u64) -> impl FnMut() -> f64 {
    let mut z = seed;
    move || {
        z ^= z << 13;
        z ^= z >> 7;
        z ^= z << 17;
        (z >> 11) as f64 / (1u64 << 53) as f64
    }
}
