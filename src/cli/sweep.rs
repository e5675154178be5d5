//! `clipgan sweep`: expand a sweep (flags and/or a sweep file, `supervisor::sweep`),
//! validate every member's config here, then queue them all in one request.
use crate::config;
use crate::rundir::JobKind;
use crate::supervisor::prune::PruneSpec;
use crate::supervisor::sweep::{self, Axes, SweepFile, DEFAULT_LIMIT};
use crate::supervisor::sweep_plan::Plan;
use anyhow::{anyhow, bail, Context, Result};
use clap::Args;
use std::path::PathBuf;
use std::process::ExitCode;

#[derive(Args, Debug)]
pub struct SweepArgs {
    /// A config (YAML), or a sweep file (YAML with `config:`, `grid:`, `random:`,
    /// `trials:`, `seeds:`, ...; flags given as well add to it).
    pub file: PathBuf,
    /// A grid axis: a dotted key and its values (`TRAIN.SMOOTH.LAMBDA=0.1,1,10`); repeatable.
    #[arg(long, value_name = "KEY=V1,V2,...")]
    pub grid: Vec<String>,
    /// A random axis: `KEY=uniform(a,b)`, `KEY=loguniform(a,b)` or `KEY=choice(x,y,...)`;
    /// repeatable, drawn --trials times.
    #[arg(long, value_name = "KEY=DIST")]
    pub random: Vec<String>,
    /// Draws of the random axes.
    #[arg(long)]
    pub trials: Option<u32>,
    /// Seed of the random draws (the same seed gives the same sweep).
    #[arg(long)]
    pub random_seed: Option<u64>,
    /// Seeds per combination: CLIPGAN.SEED = the config's, +1, ... (K tasks each).
    #[arg(long)]
    pub seeds: Option<u32>,
    /// Overrides every member shares (as `queue add --set`); repeatable.
    #[arg(long = "set", value_name = "KEY=VALUE")]
    pub set: Vec<String>,
    /// pretrain, train, eval or fake-run (default: inferred from the config).
    #[arg(long)]
    pub job: Option<JobKind>,
    /// A name for the sweep (default: the config's file name).
    #[arg(long)]
    pub name: Option<String>,
    #[arg(short, long)]
    pub group: Option<String>,
    /// Every member starts only after these tasks finished successfully.
    #[arg(long, value_delimiter = ',')]
    pub after: Vec<u64>,
    /// Queue the members held (`clipgan resume ID` releases one).
    #[arg(long)]
    pub held: bool,
    /// Stop (gracefully, resumable) members whose --metric is worse than the median of
    /// the other members at the same step; the one rule is `median`.
    #[arg(long, value_name = "RULE")]
    pub prune: Option<String>,
    /// The metric tag pruning compares (`loss/g_total`, `val/r_precision`).
    #[arg(long, value_name = "TAG")]
    pub metric: Option<String>,
    /// No member is pruned before this step.
    #[arg(long, value_name = "N")]
    pub after_steps: Option<u64>,
    /// Whether smaller (min) or larger (max) values of --metric are better (default:
    /// from the tag: loss*, fid, kid: min; r_precision, accuracy: max).
    #[arg(long, value_name = "min|max")]
    pub prune_direction: Option<String>,
    /// List what would be queued, queue nothing.
    #[arg(long)]
    pub dry_run: bool,
    /// Sweeps with more members than this ask for --yes.
    #[arg(long, default_value_t = DEFAULT_LIMIT)]
    pub limit: usize,
    /// Queue a sweep larger than --limit.
    #[arg(short, long)]
    pub yes: bool,
    /// Print the answer as JSON.
    #[arg(long)]
    pub json: bool,
    /// Arguments for every member's job.
    #[arg(last = true)]
    pub args: Vec<String>,
}

pub fn run(a: SweepArgs) -> Result<ExitCode> {
    let file = std::path::absolute(&a.file).with_context(|| format!("cannot make {} absolute", a.file.display()))?;
    let text = config::read_text(&file)?;
    let (mut axes, spec) = if sweep::is_sweep_file(&text) {
        let f = SweepFile::load(&file).map_err(|e| anyhow!(e))?;
        (f.axes(&file).map_err(|e| anyhow!(e))?, Some(f))
    } else {
        (Axes::default(), None)
    };
    for g in &a.grid {
        axes.grid.push(sweep::parse_grid(g).map_err(|e| anyhow!(e))?);
    }
    for r in &a.random {
        axes.random.push(sweep::parse_random(r).map_err(|e| anyhow!(e))?);
    }
    axes.trials = a.trials.unwrap_or(axes.trials);
    axes.seeds = a.seeds.unwrap_or(axes.seeds);
    axes.random_seed = a.random_seed.unwrap_or(axes.random_seed);
    let config_path = match &spec {
        Some(f) => f.config.clone().ok_or_else(|| anyhow!("{}: the sweep file names no `config:`", file.display()))?,
        None => file.clone(),
    };
    let config = std::path::absolute(&config_path)?;
    let mut after = spec.as_ref().map(|f| f.after.clone()).unwrap_or_default();
    after.extend(&a.after);
    let mut args = spec.as_ref().map(|f| f.args.clone()).unwrap_or_default();
    args.extend(a.args.iter().cloned());
    // Pruning: the flags, else the sweep file's `prune:`.
    let flags_prune = a.prune.is_some() || a.metric.is_some() || a.after_steps.is_some() || a.prune_direction.is_some();
    let prune = match spec.as_ref().and_then(|f| f.prune.as_ref()) {
        Some(p) if !flags_prune => p.spec().map_err(|e| anyhow!("{}: {e}", file.display()))?,
        _ => PruneSpec::build(a.prune.as_deref(), a.metric.as_deref(), a.after_steps, a.prune_direction.as_deref())
            .map_err(|e| anyhow!(e))?,
    };
    let plan = Plan {
        name: a.name.clone().or(spec.as_ref().and_then(|f| f.name.clone())).unwrap_or_else(|| Plan::default_name(&config)),
        job: a.job.or(spec.as_ref().and_then(|f| f.job)),
        group: a.group.clone().or(spec.as_ref().and_then(|f| f.group.clone())),
        held: a.held || spec.as_ref().is_some_and(|f| f.held),
        config,
        args,
        after,
        sets: a.set.clone(),
        axes,
        prune,
    };

    // Everything is checked before anything is queued.
    let members = plan.members().map_err(|e| anyhow!(e))?;
    let (name, config_path) = (&plan.name, &plan.config);
    let keys = plan.axes.keys();
    if a.dry_run {
        use std::io::Write;
        // Write errors (a closed pipe, `| head`) end the listing quietly.
        let mut out = std::io::stdout().lock();
        let _ = writeln!(out, "sweep {name}: {} task(s) over {} from {}", members.len(), keys.join(", "), config_path.display());
        if let Some(p) = &plan.prune {
            let _ = writeln!(out, "pruning: {}", p.describe());
        }
        for (i, m) in members.iter().enumerate() {
            let sets = m.overrides.iter().map(|o| format!("--set {o}")).collect::<Vec<_>>().join(" ");
            if writeln!(out, "{:>4}  {:<32} {sets}", i + 1, m.label).is_err() {
                break;
            }
        }
        if members.len() > a.limit && !a.yes {
            eprintln!("note: more than --limit {} tasks: queueing it needs --yes", a.limit);
        }
        return Ok(ExitCode::SUCCESS);
    }
    if members.len() > a.limit && !a.yes {
        bail!(
            "the sweep has {} tasks, more than --limit {}; add --yes to queue them all (or --dry-run to list them); nothing was queued",
            members.len(),
            a.limit
        );
    }
    let added =
        crate::supervisor::client::Client::connect_or_spawn(&crate::supervisor::Paths::current())?.add_sweep(plan.request(&members))?;
    if a.json {
        println!("{}", serde_json::json!({"sweep": added.sweep, "ids": added.ids, "run_ids": added.run_ids, "warnings": added.warnings}));
    } else {
        let (first, last) = (added.ids.first().copied().unwrap_or(0), added.ids.last().copied().unwrap_or(0));
        println!("queued sweep {}: {} task(s), ids {first}-{last}", added.sweep, added.ids.len());
        for w in &added.warnings {
            eprintln!("warning: {w}");
        }
    }
    Ok(ExitCode::SUCCESS)
}
