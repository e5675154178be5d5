//! Pruning of sweep members, as Optuna's MedianPruner: the settings a sweep carries
//! (`--prune median --metric TAG --after-steps N`, or `prune:` in a sweep file), and the
//! rule as a pure function of the members' metric series. The daemon reads the series
//! off its loop (`prune_watch`) and stops the members this rule names (`core/prune.rs`).
//!
//! The rule: a member is judged at each step `s >= after_steps` it logged the metric at,
//! once at least [`MIN_OTHERS`] other members of the sweep have reached `s` (logged the
//! metric at `s` or later). Its value at `s` is compared with the median of the others'
//! values at `s` (each other's latest value at or before `s`); if it is worse (above
//! the median for `min`, below for `max`; a tie is not worse) it is pruned. Values that
//! are not finite are left out: a NaN member is not judged (it ends as diverged by
//! itself) and a NaN other does not count towards the median; a step where fewer than
//! [`MIN_OTHERS`] others have a finite value at or before it is passed over.
use serde::{Deserialize, Serialize};

/// Other members that must have reached a step before a member is judged there (with
/// fewer, a median says little: Optuna's default warm-up is similar).
pub const MIN_OTHERS: usize = 2;

#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Rule {
    Median,
}

/// Whether smaller or larger values of the metric are better.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Direction {
    Min,
    Max,
}

impl Direction {
    pub fn name(self) -> &'static str {
        match self {
            Direction::Min => "min",
            Direction::Max => "max",
        }
    }

    /// The direction a tag's name implies: losses and FID/KID go down, R-precision,
    /// accuracy and the Inception Score go up; `None` when the name does not say.
    pub fn infer(tag: &str) -> Option<Direction> {
        let t = tag.to_ascii_lowercase();
        let last = t.rsplit('/').next().unwrap_or(&t);
        if t.starts_with("loss") || last.starts_with("loss") || last.contains("fid") || last.contains("kid") {
            Some(Direction::Min)
        } else if last.contains("r_precision") || last.contains("accuracy") || last == "is" || last.starts_with("inception_score") {
            Some(Direction::Max)
        } else {
            None
        }
    }
}

/// A sweep's pruning, as stored in its record of `state.json` (the direction always
/// explicit, even when it was inferred from the tag).
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct PruneSpec {
    pub rule: Rule,
    /// The metric's tag in `metrics.jsonl` (`loss/g_total`, `val/r_precision`).
    pub metric: String,
    /// No member is judged before this step.
    pub after_steps: u64,
    pub direction: Direction,
}

/// `prune:` in a sweep file; every field optional so that what is missing is named.
#[derive(Clone, Debug, Default, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct PruneFile {
    pub rule: Option<String>,
    pub metric: Option<String>,
    pub after_steps: Option<u64>,
    pub direction: Option<String>,
}

impl PruneSpec {
    /// Build from the flags (or a sweep file's fields): `rule` `None` with nothing else
    /// given is no pruning; anything half given is an error naming the flag.
    pub fn build(
        rule: Option<&str>,
        metric: Option<&str>,
        after_steps: Option<u64>,
        direction: Option<&str>,
    ) -> Result<Option<PruneSpec>, String> {
        let Some(rule) = rule else {
            if metric.is_some() || after_steps.is_some() || direction.is_some() {
                return Err("--metric, --after-steps and --prune-direction go with --prune median".into());
            }
            return Ok(None);
        };
        let rule = match rule.trim() {
            "median" => Rule::Median,
            other => return Err(format!("--prune {other}: unknown rule (the one rule is `median`)")),
        };
        let metric = metric.map(str::trim).filter(|m| !m.is_empty()).ok_or("--prune median needs --metric TAG (such as loss/g_total)")?;
        let after_steps = after_steps.ok_or("--prune median needs --after-steps N (no member is judged before step N)")?;
        if after_steps == 0 {
            return Err("--after-steps 0: give a step of at least 1 (members need some steps before they are compared)".into());
        }
        let direction = match direction.map(str::trim) {
            Some("min") => Direction::Min,
            Some("max") => Direction::Max,
            Some(other) => return Err(format!("--prune-direction {other}: expected min or max")),
            None => Direction::infer(metric).ok_or_else(|| {
                format!("--metric {metric}: cannot tell whether smaller or larger is better; add --prune-direction min|max")
            })?,
        };
        Ok(Some(PruneSpec { rule, metric: metric.to_string(), after_steps, direction }))
    }

    /// Check a spec that came over the socket or from a file (the daemon does not trust
    /// its clients to have built it).
    pub fn validate(&self) -> Result<(), String> {
        if self.metric.trim().is_empty() {
            return Err("prune: the metric is empty".into());
        }
        if self.after_steps == 0 {
            return Err("prune: after_steps must be at least 1".into());
        }
        Ok(())
    }

    /// One line for people: `median of loss/g_total (min) after step 10`.
    pub fn describe(&self) -> String {
        format!("median of {} ({}) after step {}", self.metric, self.direction.name(), self.after_steps)
    }
}

impl PruneFile {
    pub fn spec(&self) -> Result<Option<PruneSpec>, String> {
        let Some(rule) = self.rule.as_deref() else { return Err("prune: give the rule (rule: median)".into()) };
        PruneSpec::build(Some(rule), self.metric.as_deref(), self.after_steps, self.direction.as_deref()).map_err(|e| {
            format!(
                "prune: {}",
                e.replace("--prune-direction", "direction")
                    .replace("--after-steps", "after_steps")
                    .replace("--metric", "metric")
                    .replace("--prune", "rule")
            )
        })
    }
}

/// One member's values of the metric: steps strictly increasing.
#[derive(Clone, Debug, Default, PartialEq)]
pub struct Series {
    pub steps: Vec<u64>,
    pub values: Vec<f64>,
}

impl Series {
    /// Add a point; a step at or below the last one first cuts the series there (a
    /// resumed run rewriting its steps: one value per step, docs/run-format.md).
    pub fn push(&mut self, step: u64, value: f64) {
        if let Some(k) = crate::rundir::rewind_len(&self.steps, step) {
            self.steps.truncate(k);
            self.values.truncate(k);
        }
        self.steps.push(step);
        self.values.push(value);
    }

    pub fn last_step(&self) -> Option<u64> {
        self.steps.last().copied()
    }

    /// The latest value at or before `step`.
    pub fn at(&self, step: u64) -> Option<f64> {
        let k = self.steps.partition_point(|&s| s <= step);
        k.checked_sub(1).map(|i| self.values[i])
    }
}

/// What the rule says of one member.
#[derive(Clone, Debug, PartialEq)]
pub enum Verdict {
    /// Worse than the median at `step`.
    Prune { step: u64, value: f64, median: f64, others: usize },
    /// Not worse at any step up to `judged` (the next call starts after it).
    Keep { judged: u64 },
}

fn median(v: &mut [f64]) -> f64 {
    v.sort_by(f64::total_cmp);
    let n = v.len();
    if n % 2 == 1 {
        v[n / 2]
    } else {
        (v[n / 2 - 1] + v[n / 2]) / 2.0
    }
}

/// Judge `me` at its steps after `judged` (0 when never judged) against `others`,
/// stopping at the first step that fewer than [`MIN_OTHERS`] others have reached (it is
/// judged on a later call, when they have).
pub fn judge(spec: &PruneSpec, me: &Series, others: &[&Series], judged: u64) -> Verdict {
    let mut done = judged;
    let from = me.steps.partition_point(|&s| s <= judged.max(spec.after_steps.saturating_sub(1)));
    let mut vals = Vec::with_capacity(others.len());
    for (&step, &value) in me.steps[from..].iter().zip(&me.values[from..]) {
        let reached: Vec<&&Series> = others.iter().filter(|o| o.last_step().is_some_and(|l| l >= step)).collect();
        if reached.len() < MIN_OTHERS {
            break;
        }
        done = step;
        // Others that reached the step without a value at or before it (they log
        // less often) will never have one there: the step is judged without them.
        vals.clear();
        vals.extend(reached.iter().filter_map(|o| o.at(step)).filter(|v| v.is_finite()));
        if vals.len() < MIN_OTHERS || !value.is_finite() {
            continue;
        }
        let m = median(&mut vals);
        let worse = match spec.direction {
            Direction::Min => value > m,
            Direction::Max => value < m,
        };
        if worse {
            return Verdict::Prune { step, value, median: m, others: vals.len() };
        }
    }
    Verdict::Keep { judged: done }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn spec(after: u64, direction: Direction) -> PruneSpec {
        PruneSpec { rule: Rule::Median, metric: "loss/g_total".into(), after_steps: after, direction }
    }

    fn series(points: &[(u64, f64)]) -> Series {
        let mut s = Series::default();
        for &(st, v) in points {
            s.push(st, v);
        }
        s
    }

    impl Series {
        fn clone_to(&self, step: u64) -> Series {
            let k = self.steps.partition_point(|&s| s <= step);
            Series { steps: self.steps[..k].to_vec(), values: self.values[..k].to_vec() }
        }
    }

    #[test]
    fn the_worst_of_four_is_pruned_at_the_first_step_it_is_worse() {
        let a = series(&[(1, 1.0), (2, 1.0), (3, 1.0)]);
        let b = series(&[(1, 2.0), (2, 2.0), (3, 2.0)]);
        let c = series(&[(1, 3.0), (2, 3.0), (3, 3.0)]);
        let bad = series(&[(1, 0.5), (2, 9.0), (3, 9.0)]);
        let s = spec(1, Direction::Min);
        assert_eq!(judge(&s, &bad, &[&a, &b, &c], 0), Verdict::Prune { step: 2, value: 9.0, median: 2.0, others: 3 });
        // The best one stays, judged up to its last step.
        assert_eq!(judge(&s, &a, &[&b, &c, &bad], 0), Verdict::Keep { judged: 3 });
        // Nothing before after_steps counts.
        assert_eq!(judge(&spec(3, Direction::Min), &bad, &[&a, &b, &c], 0), Verdict::Prune { step: 3, value: 9.0, median: 2.0, others: 3 });
    }

    #[test]
    fn a_tie_with_the_median_is_not_worse() {
        let (a, b) = (series(&[(5, 1.0)]), series(&[(5, 3.0)]));
        let me = series(&[(5, 2.0)]);
        assert_eq!(judge(&spec(1, Direction::Min), &me, &[&a, &b], 0), Verdict::Keep { judged: 5 });
        assert_eq!(judge(&spec(1, Direction::Max), &me, &[&a, &b], 0), Verdict::Keep { judged: 5 });
    }

    #[test]
    fn direction_max_prunes_the_low_ones() {
        let (a, b) = (series(&[(5, 0.8)]), series(&[(5, 0.9)]));
        let me = series(&[(5, 0.3)]);
        assert!(matches!(judge(&spec(1, Direction::Max), &me, &[&a, &b], 0), Verdict::Prune { step: 5, .. }));
        assert_eq!(judge(&spec(1, Direction::Min), &me, &[&a, &b], 0), Verdict::Keep { judged: 5 });
    }

    #[test]
    fn fewer_others_than_needed_waits_and_judges_later() {
        let a = series(&[(1, 1.0), (2, 1.0), (3, 1.0)]);
        let slow = series(&[(1, 1.0)]);
        let me = series(&[(1, 5.0), (2, 5.0), (3, 5.0)]);
        let s = spec(2, Direction::Min);
        // Only one other reached step 2: nothing judged yet.
        assert_eq!(judge(&s, &me, &[&a, &slow], 0), Verdict::Keep { judged: 0 });
        assert_eq!(judge(&s, &me, &[&a], 0), Verdict::Keep { judged: 0 });
        // Once the slow one catches up (logging at step 3 counts as having reached 2,
        // its value at 2 being its latest at or before 2).
        let caught_up = series(&[(1, 1.0), (3, 1.0)]);
        assert!(matches!(judge(&s, &me, &[&a, &caught_up], 0), Verdict::Prune { step: 2, median, .. } if median == 1.0));
    }

    #[test]
    fn missing_steps_use_the_latest_value_before_and_judged_steps_are_skipped() {
        // The others log every 10 steps, the member every 5.
        let a = series(&[(10, 1.0), (20, 1.0)]);
        let b = series(&[(10, 2.0), (20, 2.0)]);
        let me = series(&[(5, 1.0), (10, 1.0), (15, 1.0), (20, 1.6)]);
        let s = spec(5, Direction::Min);
        // At 5 both others reached it but have no value there yet: step 5 is passed
        // over; at 10 and 15 the member is at the median or better; at 20 the median is
        // 1.5 and 1.6 is worse.
        assert_eq!(judge(&s, &me, &[&a, &b], 0), Verdict::Prune { step: 20, value: 1.6, median: 1.5, others: 2 });
        assert_eq!(judge(&s, &me.clone_to(15), &[&a, &b], 0), Verdict::Keep { judged: 15 });
        // Already judged up to 20: nothing new.
        assert_eq!(judge(&s, &me, &[&a, &b], 20), Verdict::Keep { judged: 20 });
    }

    #[test]
    fn values_that_are_not_finite_are_left_out() {
        let (a, b, nan) = (series(&[(1, 1.0)]), series(&[(1, 2.0)]), series(&[(1, f64::NAN)]));
        assert_eq!(judge(&spec(1, Direction::Min), &nan, &[&a, &b], 0), Verdict::Keep { judged: 1 });
        // A NaN other does not count: one finite other is too few, the step passes.
        let me = series(&[(1, 9.0)]);
        assert_eq!(judge(&spec(1, Direction::Min), &me, &[&a, &nan], 0), Verdict::Keep { judged: 1 });
    }

    #[test]
    fn a_rewritten_step_replaces_the_tail() {
        let s = series(&[(1, 1.0), (2, 2.0), (3, 3.0), (2, 5.0)]);
        assert_eq!(s.steps, vec![1, 2]);
        assert_eq!(s.at(7), Some(5.0));
        assert_eq!(s.at(0), None);
    }

    #[test]
    fn settings_are_checked_and_the_direction_inferred_or_asked_for() {
        let p = PruneSpec::build(Some("median"), Some("loss/g_total"), Some(10), None).unwrap().unwrap();
        assert_eq!(p.direction, Direction::Min);
        let p = PruneSpec::build(Some("median"), Some("val/r_precision"), Some(10), None).unwrap().unwrap();
        assert_eq!(p.direction, Direction::Max);
        assert_eq!(PruneSpec::build(Some("median"), Some("val/fid"), Some(1), None).unwrap().unwrap().direction, Direction::Min);
        assert!(PruneSpec::build(Some("median"), Some("lr/generator"), Some(1), None).unwrap_err().contains("--prune-direction"));
        assert_eq!(PruneSpec::build(Some("median"), Some("x"), Some(1), Some("max")).unwrap().unwrap().direction, Direction::Max);
        assert!(PruneSpec::build(Some("percentile"), Some("x"), Some(1), None).unwrap_err().contains("unknown rule"));
        assert!(PruneSpec::build(Some("median"), Some("loss/x"), Some(0), None).unwrap_err().contains("--after-steps 0"));
        assert!(PruneSpec::build(Some("median"), None, Some(3), None).unwrap_err().contains("--metric"));
        assert!(PruneSpec::build(Some("median"), Some("loss/x"), None, None).unwrap_err().contains("--after-steps"));
        assert!(PruneSpec::build(Some("median"), Some("loss/x"), Some(1), Some("down")).unwrap_err().contains("min or max"));
        assert!(PruneSpec::build(None, Some("loss/x"), None, None).unwrap_err().contains("--prune median"));
        assert_eq!(PruneSpec::build(None, None, None, None), Ok(None));
        let f = PruneFile { rule: Some("median".into()), metric: Some("loss/d".into()), after_steps: Some(0), direction: None };
        assert!(f.spec().unwrap_err().contains("after_steps 0"), "{}", f.spec().unwrap_err());
        let f = PruneFile { rule: None, metric: Some("loss/d".into()), after_steps: Some(3), direction: None };
        assert!(f.spec().unwrap_err().contains("rule"));
    }
}
