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
