//! The configs view's sweep form (`S` on a config): one setting per line,
//!
//! ```text
//! TRAIN.SMOOTH.LAMBDA=0.1,1,10     a grid axis (as --grid)
//! seeds 3                          seeds per combination (as --seeds)
//! group gpu                        the group (as --group)
//! prune median loss/g_total 100    pruning: rule, metric, after step [min|max]
//! job fake-run                     the job (default: from the config)
//! held                             queue the members held
//! args --steps 50                  arguments for every member's job
//! ```
//!
//! expanded and checked with the same code as `clipgan sweep` (`supervisor::sweep` and
//! `sweep_plan`) on every edit, so the form shows how many tasks it would queue, or the
//! first error, before anything is sent; `enter` sends one `add_sweep` request.
use crate::rundir::JobKind;
use crate::supervisor::protocol::AddSweep;
use crate::supervisor::prune::PruneSpec;
use crate::supervisor::sweep::{self, DEFAULT_LIMIT};
use crate::supervisor::sweep_plan::Plan;
use std::path::{Path, PathBuf};

/// The form's state: the text and what it expands to.
#[derive(Clone, Debug, PartialEq)]
pub struct SweepForm {
    pub config: PathBuf,
    /// The config as the configs view names it (relative to `cfg/`).
    pub rel: String,
    pub text: String,
    /// The request and how many tasks it queues, or the first problem.
    pub result: Result<(usize, String), String>,
}

impl SweepForm {
    pub fn new(config: &Path, rel: &str) -> SweepForm {
        let mut f = SweepForm { config: config.to_path_buf(), rel: rel.to_string(), text: String::new(), result: Ok((0, String::new())) };
        f.update();
        f
    }

    /// Expand the text again (after each edit).
    pub fn update(&mut self) {
        self.result = parse(&self.text, &self.config).and_then(|p| {
            let n = p.members()?.len();
            Ok((n, p.axes.keys().join(", ")))
        });
    }

    /// The request to send, when the text expands to at least one task.
    pub fn request(&self) -> Result<AddSweep, String> {
        let plan = parse(&self.text, &self.config)?;
        let members = plan.members()?;
        Ok(plan.request(&members))
    }

    /// Whether the sweep is larger than `clipgan sweep` queues without `--yes`.
    pub fn over_limit(&self) -> bool {
        matches!(self.result, Ok((n, _)) if n > DEFAULT_LIMIT)
    }
}

/// The form's text as a plan for `config` (errors name the line).
pub fn parse(text: &str, config: &Path) -> Result<Plan, String> {
    let mut plan = Plan { name: Plan::default_name(config), config: config.to_path_buf(), ..Plan::default() };
    for (n, line) in text.lines().enumerate() {
        let line = line.trim();
        let at = |e: String| format!("line {}: {e}", n + 1);
        let (word, rest) = line.split_once(char::is_whitespace).map_or((line, ""), |(w, r)| (w, r.trim()));
        match word {
            "" => {}
            "seeds" => plan.axes.seeds = rest.parse().map_err(|_| at(format!("seeds {rest:?}: expected a number of seeds")))?,
            "group" if !rest.is_empty() => plan.group = Some(rest.to_string()),
            "job" => plan.job = Some(rest.parse::<JobKind>().map_err(|e| at(format!("job {rest:?}: {e}")))?),
            "held" if rest.is_empty() => plan.held = true,
            "args" => plan.args = rest.split_whitespace().map(str::to_string).collect(),
            "prune" => {
                let w: Vec<&str> = rest.split_whitespace().collect();
                if !(3..=4).contains(&w.len()) {
                    return Err(at("expected prune median TAG AFTER_STEPS [min|max]".into()));
                }
                let after = w[2].parse::<u64>().map_err(|_| at(format!("prune: after-steps {:?} is not a step", w[2])))?;
                plan.prune = PruneSpec::build(Some(w[0]), Some(w[1]), Some(after), w.get(3).copied()).map_err(at)?;
            }
            _ if line.contains('=') => plan.axes.grid.push(sweep::parse_grid(line).map_err(at)?),
            _ => {
                return Err(at(format!(
                    "{line:?}: expected KEY=v1,v2,..., seeds N, group G, prune median TAG N [min|max], job J, held or args ..."
                )))
            }
        }
    }
    Ok(plan)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn lines_become_the_plan_and_errors_name_the_line() {
        let p = parse(
            "GAN.GF_DIM=32,64\n\nseeds 2\ngroup g\nprune median loss/g_total 5\njob fake-run\nheld\nargs --steps 3",
            Path::new("/x/t.yml"),
        )
        .unwrap();
        assert_eq!(p.axes.grid.len(), 1);
        assert_eq!((p.axes.seeds, p.group.as_deref(), p.held, p.job), (2, Some("g"), true, Some(JobKind::FakeRun)));
        assert_eq!(p.args, vec!["--steps", "3"]);
        assert_eq!(p.prune.unwrap().after_steps, 5);
        assert_eq!(p.name, "t");
        let e = parse("GAN.GF_DIM=32\nGAN.NOPE=1,2", Path::new("t.yml")).unwrap_err();
        assert!(e.starts_with("line 2: --grid GAN.NOPE"), "{e}");
        assert!(parse("seeds many", Path::new("t.yml")).unwrap_err().contains("line 1: seeds"));
        assert!(parse("prune median loss/x 0", Path::new("t.yml")).unwrap_err().contains("--after-steps 0"));
        assert!(parse("prune median loss/x", Path::new("t.yml")).unwrap_err().contains("prune median TAG"));
        assert!(parse("frobnicate", Path::new("t.yml")).unwrap_err().contains("expected KEY=v1"));
    }
}
