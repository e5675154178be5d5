//! `clipgan report RUN...`: the evaluation results of runs as one table (Markdown, CSV or
//! LaTeX), optionally beside the published rows (src/eval/report.rs).
use crate::eval::report::{self, Format, Row};
use anyhow::{bail, Result};
use clap::Args;
use std::path::PathBuf;
use std::process::ExitCode;

#[derive(Args, Debug)]
pub struct ReportArgs {
    /// Run folders of `clipgan eval` runs (or their results.json files), or sweep ids
    /// (`sweep-N`: every run of the sweep).
    #[arg(required = true)]
    pub runs: Vec<String>,
    /// markdown, csv or latex.
    #[arg(long, default_value = "markdown")]
    pub format: Format,
    /// Add the published rows (method.md section 10) for side-by-side comparison.
    #[arg(long)]
    pub reference: bool,
    /// A run that cannot be read becomes a marked row instead of stopping the report
    /// (the exit status is still 1).
    #[arg(long)]
    pub keep_going: bool,
}

pub fn run(a: ReportArgs) -> Result<ExitCode> {
    let mut rows = Vec::new();
    let mut failed = 0;
    let runs: Vec<(PathBuf, bool)> = super::plot::expand_sweeps(&a.runs)?.into_iter().map(|(r, _, p)| (PathBuf::from(r), p)).collect();
    for (path, pruned) in &runs {
        match report::rows_of_run(path) {
            Ok(r) if *pruned => rows.extend(r.into_iter().map(|mut r| {
                r.notes.insert(0, "pruned".into());
                r
            })),
            Ok(r) => rows.extend(r),
            // A sweep member stopped by pruning has no results: a row that says so, not
            // an error.
            Err(_) if *pruned => rows.push(Row {
                model: path.display().to_string(),
                source: path.join(crate::rundir::RESULTS_FILE).display().to_string(),
                notes: vec!["pruned (stopped by its sweep's pruning; no results)".into()],
                ..Row::default()
            }),
            Err(e) if a.keep_going => {
                eprintln!("clipgan: {e:#}");
                failed += 1;
                rows.push(Row::failed(&path.display().to_string(), &path.join(crate::rundir::RESULTS_FILE).display().to_string(), &e));
            }
            Err(e) => bail!(e),
        }
    }
    if a.reference {
        rows.extend(report::reference_rows());
    }
    print!("{}", report::render(&rows, a.format));
    if failed > 0 {
        eprintln!("clipgan: {failed} of {} run(s) could not be read (marked in the table)", runs.len());
        return Ok(ExitCode::FAILURE);
    }
    Ok(ExitCode::SUCCESS)
}
