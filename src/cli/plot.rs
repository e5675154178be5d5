//! `clipgan plot`: curves of run folders to PNG, SVG or CSV, without the console.
use crate::plot::export::{self, ChartSpec, SeriesSpec};
use crate::plot::series::Smoothing;
use crate::plot::{self, csv, XAxis};
use anyhow::{bail, Context, Result};
use clap::Args;
use std::path::PathBuf;
use std::process::ExitCode;

#[derive(Args, Debug)]
pub struct PlotArgs {
    /// Run folders (clipgan's, or folders of TensorBoard event files), run names under
    /// the project's runs/, or sweep ids (`sweep-N`: every run of the sweep, named by the
    /// values it varies).
    #[arg(required_unless_present = "logdirs")]
    runs: Vec<String>,
    /// Also plot every run in this folder (repeatable): clipgan run folders and
    /// TensorBoard runs (nested folders of events.out.tfevents.* files), as the console's
    /// --logdir lists them.
    #[arg(long = "logdir", value_name = "DIR")]
    logdirs: Vec<PathBuf>,
    /// Metric tag to plot (repeatable); all of them go on one chart.
    #[arg(long = "tag", required = true)]
    tags: Vec<String>,
    /// Output file: .png, .svg or .csv.
    #[arg(long)]
    out: PathBuf,
    /// x axis: step, wall (UTC time) or rel (seconds since the run's first event).
    #[arg(long, value_enum, default_value_t = XAxis::Step)]
    x: XAxis,
    /// Debiased EMA smoothing weight in [0, 1) (the raw curve is drawn faintly behind).
    #[arg(long)]
    smooth: Option<f64>,
    /// Logarithmic y axis (values <= 0 are marked, not drawn).
    #[arg(long)]
    log_y: bool,
    /// Quantile clipped from each end of each curve for the y range (0 = everything).
    #[arg(long, default_value_t = 0.0)]
    y_clip: f64,
    #[arg(long)]
    title: Option<String>,
    #[arg(long, default_value_t = 1024)]
    width: u32,
    #[arg(long, default_value_t = 640)]
    height: u32,
}

pub fn run(a: PlotArgs) -> Result<ExitCode> {
    if let Some(w) = a.smooth {
        if !(0.0..1.0).contains(&w) {
            bail!("--smooth {w}: the EMA weight must be in [0, 1)");
        }
    }
    let ext = a.out.extension().and_then(|e| e.to_str()).map(|e| e.to_ascii_lowercase()).unwrap_or_default();
    if !matches!(ext.as_str(), "png" | "svg" | "csv") {
        bail!("{}: --out must end in .png, .svg or .csv", a.out.display());
    }
    // (folder, label): runs and sweep members as given, then the runs under each --logdir.
    let mut dirs: Vec<(std::path::PathBuf, Option<String>)> = Vec::new();
    for (r, label, _) in expand_sweeps(&a.runs)? {
        dirs.push((plot::resolve_run(&r)?, label));
    }
    for d in &a.logdirs {
        if !d.is_dir() {
            bail!("--logdir {}: not a folder", d.display());
        }
        let found = crate::rundir::find_runs(d);
        if found.is_empty() {
            eprintln!("clipgan plot: --logdir {}: no runs found", d.display());
        }
        for (p, _) in found {
            if !dirs.iter().any(|(q, _)| *q == p) {
                dirs.push((p, None));
            }
        }
    }
    let mut curves = Vec::new();
    for (dir, label) in &dirs {
        let dir = dir.clone();
        let (mut c, corrupt) = plot::load_run_curves(&dir, &a.tags)?;
        if let Some(l) = label {
            for c in c.iter_mut() {
                c.run = l.clone();
            }
        }
        if corrupt > 0 {
            eprintln!("clipgan plot: {}: skipped {corrupt} corrupt line(s) or record(s)", dir.display());
        }
        for t in &a.tags {
            if !c.iter().any(|c| &c.tag == t) {
                eprintln!("clipgan plot: {}: no points for tag {t}", dir.display());
            }
        }
        curves.append(&mut c);
    }
    if curves.is_empty() {
        bail!("no points for tag(s) {} in the given run(s)", a.tags.join(", "));
    }
    let points: usize = curves.iter().map(|c| c.len()).sum();
    if ext == "csv" {
        crate::util::fsx::atomic_write_with(&a.out, |f| {
            let mut w = std::io::BufWriter::new(f);
            csv::write_csv(&curves, &mut w)?;
            std::io::Write::flush(&mut w)
        })
        .with_context(|| format!("writing {}", a.out.display()))?;
    } else {
        let one_tag = a.tags.len() == 1;
        let one_run = dirs.len() == 1;
        let series = curves
            .iter()
            .enumerate()
            .map(|(i, c)| SeriesSpec {
                name: match (one_run, one_tag) {
                    (_, true) => c.run.clone(),
                    (true, false) => c.tag.clone(),
                    _ => format!("{} {}", c.run, c.tag),
                },
                color: plot::palette_color(i),
                points: c.xs(a.x).into_iter().zip(c.value.iter().copied()).collect(),
            })
            .collect();
        let spec = ChartSpec {
            title: a.title.clone().unwrap_or_else(|| a.tags.join(", ")),
            x_label: a.x.label().into(),
            y_label: if one_tag { a.tags[0].clone() } else { String::new() },
            x_axis: a.x,
            series,
            log_y: a.log_y,
            smoothing: a.smooth.map_or(Smoothing::Off, Smoothing::Ema),
            y_clip: a.y_clip,
            width: a.width,
            height: a.height,
            ..ChartSpec::default()
        };
        export::write_chart(&spec, &a.out)?;
    }
    eprintln!("clipgan plot: wrote {} ({} curve(s), {points} points)", a.out.display(), curves.len());
    Ok(ExitCode::SUCCESS)
}

/// The runs to plot: each argument as given, except a sweep id (`sweep-N`, a sweep of
/// this home's daemon state), which stands for its tasks' run folders, labelled with the
/// values each varies (and `(pruned)` for a member its sweep's pruning stopped, also
/// returned as the third field).
pub(super) fn expand_sweeps(args: &[String]) -> Result<Vec<(String, Option<String>, bool)>> {
    let mut out = Vec::new();
    let mut state = None;
    for r in args {
        let is_sweep_id = r.strip_prefix("sweep-").is_some_and(|n| !n.is_empty() && n.bytes().all(|b| b.is_ascii_digit()));
        if !is_sweep_id || std::path::Path::new(r).exists() {
            out.push((r.clone(), None, false));
            continue;
        }
        if state.is_none() {
            let paths = crate::supervisor::Paths::current();
            state = Some(
                crate::supervisor::state::load(&paths.state).with_context(|| format!("reading the sweeps of {}", paths.home.display()))?,
            );
        }
        let st = state.as_ref().expect("loaded above");
        let members: Vec<_> = st.tasks.iter().filter(|t| t.sweep.as_deref() == Some(r.as_str())).collect();
        if members.is_empty() {
            bail!("{r}: no such sweep in this project's queue (clipgan status lists them)");
        }
        for t in members {
            let label = t.label.clone().unwrap_or_else(|| t.run_id.clone());
            let pruned = t.state == crate::supervisor::state::TaskState::Pruned;
            let label = if pruned { format!("{label} (pruned)") } else { label };
            out.push((t.run_dir.display().to_string(), Some(label), pruned));
        }
    }
    Ok(out)
}
