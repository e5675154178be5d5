//! The files clipgan reads and writes: configs, the run folder, plots and CSV.
//! One test binary per area (each links libtorch once); one module per topic.
mod config;
mod fuzz;
mod overrides;
mod plot_export;
mod report;
mod rundir;
mod tensorboard;
