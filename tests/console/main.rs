//! The console: views as snapshots, images, samples, resources, and the binary in a pseudo-terminal.
//! One test binary per area (each links libtorch once); one module per topic.
mod disk_runs;
mod e2e;
mod eval_results;
mod images;
mod resources;
mod resume;
mod samples;
mod sweeps;
mod views;
