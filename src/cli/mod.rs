//! The `clipgan` command line: one thin file per subcommand group, parsing arguments
//! and calling the library modules.
mod bench;
mod clip;
mod config_cmd;
mod console;
mod data;
mod demo;
mod doctor;
mod eval;
mod fake_run;
mod import;
mod model;
mod plot;
mod pretrain;
mod progress;
mod queue;
mod report;
mod resources;
mod shell;
mod sweep;
mod train;

use clap::{Parser, Subcommand};
use std::process::ExitCode;

#[derive(Parser, Debug)]
#[command(
    name = "clipgan",
    version,
    about = "Text-to-image research workbench: CLIP + DAMSM finetuning, DM-GAN, evaluation, and a terminal experiment console"
)]
pub struct Cli {
    #[command(subcommand)]
    pub command: Command,
}

#[derive(Subcommand, Debug)]
pub enum Command {
    /// Report libtorch's version and location, the devices it sees and its threads.
    Doctor(doctor::DoctorArgs),
    /// Configuration files: validate and show them resolved.
    #[command(subcommand)]
    Config(config_cmd::ConfigCommand),
    /// Benchmarks: speed and memory of the parts that have targets.
    #[command(subcommand)]
    Bench(bench::BenchCommand),
    /// A worker that trains nothing but behaves like one (metrics, status, samples,
    /// checkpoints, SIGTERM), for trying the supervisor and the console.
    FakeRun(fake_run::FakeRunCmd),
    #[command(flatten)]
    Supervisor(queue::SupervisorCommand),
    /// Datasets: write the synthetic one, check one.
    #[command(subcommand)]
    Data(data::DataCommand),
    /// CLIP checkpoints: embed texts and images, rank texts per image.
    #[command(subcommand)]
    Clip(clip::ClipCommand),
    /// Finetune CLIP with DAMSM + contrastive losses (method.md stage 1).
    Pretrain(pretrain::PretrainArgs),
    /// Train DM-GAN on frozen finetuned-CLIP text features (method.md stage 2).
    Train(train::TrainArgs),
    /// Models: print the DM-GAN summary of a config.
    #[command(subcommand)]
    Model(model::ModelCommand),
    /// FID between two image folders or .npz statistics (pytorch-fid's FID Inception).
    Fid(eval::FidArgs),
    /// Inception Score of an image folder (10 splits, mean ± std).
    Is(eval::IsArgs),
    /// Evaluate a generator (or every snapshot of a train run): images, R-precision,
    /// FD_CLIP, FID and IS when the Inception weights are configured.
    Eval(eval::EvalArgs),
    /// The evaluation results of runs as one table (Markdown, CSV or LaTeX), optionally
    /// beside the published numbers.
    Report(report::ReportArgs),
    /// The terminal console: runs, configs, live curves, logs (a client of the daemon).
    Console(console::ConsoleArgs),
    /// The demo: synthetic data, then CLIP finetuning -> DM-GAN -> evaluation queued on the
    /// daemon and shown in the console (headless progress lines without a terminal).
    Demo(demo::DemoArgs),
    /// Curves of runs to PNG, SVG or CSV (no TUI needed).
    Plot(plot::PlotArgs),
    /// Convert runs logged by other tools (TensorBoard event files) to run folders.
    #[command(subcommand)]
    Import(import::ImportCmd),
    /// Shell completions to stdout (`make install` puts them where shells look).
    Completions(shell::CompletionsArgs),
    /// Man pages generated from this command line (`make install` puts them in man1/).
    Man(shell::ManArgs),
    /// The console's resources data source for given processes (CPU, memory, GPU memory
    /// and utilisation through NVML), without the console.
    Resources(resources::ResourcesArgs),
}

pub fn main() -> ExitCode {
    let cli = Cli::parse();
    // The last boundary for allocation failures (a job's own boundary also records them
    // in its run folder): an error saying how much memory was asked for, not a panic.
    let result = crate::util::oom::catch_out_of_memory(|| match cli.command {
        Command::Doctor(a) => doctor::run(a),
        Command::Config(c) => config_cmd::run(c),
        Command::Bench(c) => bench::run(c),
        Command::FakeRun(c) => fake_run::run(c),
        Command::Supervisor(c) => queue::run(c),
        Command::Data(c) => data::run(c),
        Command::Clip(c) => clip::run(c),
        Command::Pretrain(a) => pretrain::run(a),
        Command::Train(a) => train::run(a),
        Command::Model(c) => model::run(c),
        Command::Fid(a) => eval::fid(a),
        Command::Is(a) => eval::is(a),
        Command::Eval(a) => eval::eval(a),
        Command::Report(a) => report::run(a),
        Command::Console(a) => console::run(a),
        Command::Demo(a) => demo::run(a),
        Command::Plot(a) => plot::run(a),
        Command::Import(c) => import::run(c),
        Command::Completions(a) => shell::completions(a),
        Command::Man(a) => shell::man(a),
        Command::Resources(a) => resources::run(a),
    });
    match result {
        Ok(code) => code,
        Err(e) => {
            eprintln!("clipgan: error: {e:#}");
            ExitCode::FAILURE
        }
    }
}
