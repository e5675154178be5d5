//! A sweep in the curves view as one experiment: its members are the shown runs,
//! coloured by the value of one of its varied keys (`v` cycles the key; one colour per
//! value, numeric values in numeric order, the theme's run palette), members that
//! differ only in `CLIPGAN.SEED` grouped into one combination (drawn as their mean with
//! a min-max band), and the sweep table: per combination its varied values, the number
//! of seeds, the states, and per metric tag its final and best value (mean ± std over
//! the seeds), sortable by any column. Final evaluation results (`results.json` of
//! ended members) count as metrics too. Drawn by `views::curves` and
//! `views::sweep_table`.
use super::app::App;
use crate::supervisor::protocol::TaskView;
use crate::supervisor::sweep::SEED_KEY;
use ratatui::style::Color;
use std::cell::RefCell;
use std::collections::{BTreeMap, BTreeSet, HashMap};
use std::path::PathBuf;

/// A run's data version and its series' final and best value at that version.
type Summary = (u64, Option<(f64, f64)>);

/// The curves view's sweep state (part of `CurvesState`).
#[derive(Default)]
pub struct SweepCurves {
    /// The sweep shown as one experiment (its members are the shown runs).
    pub sweep: Option<String>,
    /// Index into [`App::colour_keys`] of the key that picks the colours.
    pub colour_key: usize,
    /// The sweep table under the charts.
    pub table: bool,
    /// Sort column of the table (index into [`SweepTable::headers`]) and direction.
    pub sort: usize,
    pub descending: bool,
    /// Final evaluation results of ended members (`results.json`), by run folder, as
    /// (tag, value); read once per run when it has ended.
    pub results: HashMap<PathBuf, Vec<(String, f64)>>,
    /// Final and best value per (run folder, tag), by the run's data version (a pass over
    /// the series only when it grew).
    summaries: RefCell<HashMap<(PathBuf, String), Summary>>,
}

/// Whether larger values of a metric are better: R-precision, accuracy, precision,
/// recall, scores and the Inception Score; every other tag (losses, FID, KID, FD_CLIP,
/// errors) is better lower. The one rule the sweep table's "best" column follows.
pub fn higher_is_better(tag: &str) -> bool {
    let name = tag.rsplit('/').next().unwrap_or(tag).to_lowercase();
    name == "is" || name.starts_with("is_") || ["precision", "accuracy", "acc", "recall", "score"].iter().any(|k| name.contains(k))
}

/// The final (last finite) and best (by [`higher_is_better`]) of a series' raw values;
/// `None` when it has no finite value.
pub fn final_and_best(values: &[f64], higher: bool) -> Option<(f64, f64)> {
    let last = values.iter().rev().copied().find(|v| v.is_finite())?;
    let finite = values.iter().copied().filter(|v| v.is_finite());
    let best = if higher { finite.fold(f64::NEG_INFINITY, f64::max) } else { finite.fold(f64::INFINITY, f64::min) };
    Some((last, best))
}

/// A task's `--set KEY=VALUE` overrides as key -> value (the last one of a key wins).
pub fn overrides_map(overrides: &[String]) -> BTreeMap<String, String> {
    overrides.iter().filter_map(|o| o.split_once('=')).map(|(k, v)| (k.trim().to_string(), v.trim().to_string())).collect()
}

/// What a member sets a key to; `(config)` when it does not override it.
pub fn value_of(t: &TaskView, key: &str) -> String {
    let prefix = format!("{key}=");
    t.task.overrides.iter().rev().find_map(|o| o.strip_prefix(&prefix)).map(|v| v.trim().to_string()).unwrap_or_else(|| "(config)".into())
}

/// Distinct values in order: numerically when every value is a number, else as text.
pub fn sort_values(values: impl IntoIterator<Item = String>) -> Vec<String> {
    let v: Vec<String> = values.into_iter().collect::<BTreeSet<_>>().into_iter().collect();
    let nums: Option<Vec<f64>> = v.iter().map(|s| s.parse::<f64>().ok()).collect();
    match nums {
        Some(n) => {
            let mut pairs: Vec<(f64, String)> = n.into_iter().zip(v).collect();
            pairs.sort_by(|a, b| a.0.total_cmp(&b.0).then_with(|| a.1.cmp(&b.1)));
            pairs.into_iter().map(|p| p.1).collect()
        }
        None => v,
    }
}

/// Member ids grouped by their values of `keys` (the varied keys but the seed), groups
/// in order of their first member; `members` are (id, key -> value).
pub fn group_by_combination(members: &[(u64, BTreeMap<String, String>)], keys: &[String]) -> Vec<Vec<u64>> {
    let mut groups: Vec<(Vec<Option<&String>>, Vec<u64>)> = Vec::new();
    for (id, vals) in members {
        let combo: Vec<Option<&String>> = keys.iter().map(|k| vals.get(k)).collect();
        match groups.iter_mut().find(|g| g.0 == combo) {
            Some(g) => g.1.push(*id),
            None => groups.push((combo, vec![*id])),
        }
    }
    groups.into_iter().map(|g| g.1).collect()
}

/// The colour of value `i` of `n`: the palette's colours in order when they suffice,
/// else evenly spread along it (blending neighbouring RGB colours), so that every value
/// has its own colour.
pub fn palette_color(palette: &[Color], i: usize, n: usize) -> Color {
    if palette.is_empty() {
        return Color::Reset;
    }
    if n <= palette.len() {
        return palette[i % palette.len()];
    }
    let pos = i as f64 * (palette.len() - 1) as f64 / (n - 1).max(1) as f64;
    let (a, b) = (pos.floor() as usize, (pos.ceil() as usize).min(palette.len() - 1));
    let w = pos - a as f64;
    match (palette[a], palette[b]) {
        (Color::Rgb(r0, g0, b0), Color::Rgb(r1, g1, b1)) => {
            let mix = |p: u8, q: u8| (p as f64 + (q as f64 - p as f64) * w).round() as u8;
            Color::Rgb(mix(r0, r1), mix(g0, g1), mix(b0, b1))
        }
        _ => palette[i % palette.len()],
    }
}

/// Mean, standard deviation (population) and count of the finite values.
#[derive(Clone, Copy, Debug, PartialEq)]
pub struct Stat {
    pub mean: f64,
    pub std: f64,
    pub n: usize,
}

impl Stat {
    pub fn of(values: &[f64]) -> Option<Stat> {
        let v: Vec<f64> = values.iter().copied().filter(|x| x.is_finite()).collect();
        if v.is_empty() {
            return None;
        }
        let mean = v.iter().sum::<f64>() / v.len() as f64;
        let var = v.iter().map(|x| (x - mean).powi(2)).sum::<f64>() / v.len() as f64;
        Some(Stat { mean, std: var.sqrt(), n: v.len() })
    }
}

/// The colouring of a shown sweep: the key, its values in order with their colours, and
/// each member's colour.
pub struct Colouring {
    pub key: String,
    pub values: Vec<(String, Color)>,
    pub by_id: HashMap<u64, Color>,
}

/// One row of the sweep table: a combination of the varied values (seeds aggregated).
#[derive(Clone, Debug)]
pub struct TableRow {
    pub ids: Vec<u64>,
    /// The values of [`SweepTable::keys`].
    pub values: Vec<String>,
    pub color: Color,
    /// The members' states, distinct, joined by `,`.
    pub state: String,
    /// Per tag of [`SweepTable::tags`]: final and best, over the seeds.
    pub metrics: Vec<(Option<Stat>, Option<Stat>)>,
}

/// The sweep table, sorted.
pub struct SweepTable {
    /// The varied keys but the seed.
    pub keys: Vec<String>,
    pub tags: Vec<String>,
    pub rows: Vec<TableRow>,
}

impl SweepTable {
    /// Column headers: the keys' last parts, `n`, `state`, then per tag `final` and `best`.
    pub fn headers(&self) -> Vec<String> {
        let mut h: Vec<String> = self.keys.iter().map(|k| k.rsplit('.').next().unwrap_or(k).to_string()).collect();
        h.push("n".into());
        h.push("state".into());
        for t in &self.tags {
            let name = t.rsplit('/').next().unwrap_or(t);
            h.push(format!("{name} final"));
            h.push(format!("{name} best{}", if higher_is_better(t) { "↑" } else { "↓" }));
        }
        h
    }

    /// Sort by column `col` of [`SweepTable::headers`]: numbers numerically, text as
    /// text; rows without a value last in either direction.
    pub fn sort(&mut self, col: usize, descending: bool) {
        let nk = self.keys.len();
        let key = |r: &TableRow| -> (Option<f64>, String) {
            if col < nk {
                let v = &r.values[col];
                (v.parse::<f64>().ok(), v.clone())
            } else if col == nk {
                (Some(r.ids.len() as f64), String::new())
            } else if col == nk + 1 {
                (None, r.state.clone())
            } else {
                let m = (col - nk - 2) / 2;
                let s = r.metrics.get(m).and_then(|p| if (col - nk - 2).is_multiple_of(2) { p.0 } else { p.1 });
                (s.map(|s| s.mean), if s.is_some() { String::new() } else { "\u{10FFFF}".into() })
            }
        };
        self.rows.sort_by(|a, b| {
            let (ka, kb) = (key(a), key(b));
            let missing = |k: &(Option<f64>, String)| k.0.is_none() && k.1 == "\u{10FFFF}";
            let ord = match (&ka.0, &kb.0) {
                (Some(x), Some(y)) => x.total_cmp(y),
                (Some(_), None) => std::cmp::Ordering::Less,
                (None, Some(_)) => std::cmp::Ordering::Greater,
                (None, None) => ka.1.cmp(&kb.1),
            };
            let ord = match (missing(&ka), missing(&kb)) {
                (true, false) => std::cmp::Ordering::Greater,
                (false, true) => std::cmp::Ordering::Less,
                _ if descending => ord.reverse(),
                _ => ord,
            };
            ord.then(a.ids.cmp(&b.ids))
        });
    }
}

impl App {
    /// The sweep the curves view shows as one experiment, if any.
    pub fn shown_sweep(&self) -> Option<&str> {
        self.curves.sweep.sweep.as_deref()
    }

    /// Show a sweep's members in the curves view, coloured by its first varied key, seed
    /// bands on.
    pub fn open_sweep_curves(&mut self, sweep: String) {
        self.message = format!("curves of {sweep}: v colour key, m seed bands, t table (o sort, O reverse), esc back");
        self.curves.sweep.sweep = Some(sweep);
        self.curves.sweep.colour_key = 0;
        self.curves.group_mean = true;
        self.curves.focus = 0;
        self.refresh_sweep_results();
        self.view = super::app::View::Curves;
    }

    /// The keys a sweep varies: as the daemon recorded them, else those its members
    /// override, in order of appearance.
    pub fn sweep_keys(&self, sweep: &str) -> Vec<String> {
        let recorded = self.snapshot.as_ref().and_then(|s| s.sweeps.get(sweep)).map(|s| s.keys.clone()).unwrap_or_default();
        if !recorded.is_empty() {
            return recorded;
        }
        let mut keys: Vec<String> = Vec::new();
        for t in self.sweep_members(sweep) {
            for k in overrides_map(&t.task.overrides).into_keys() {
                if !keys.contains(&k) {
                    keys.push(k);
                }
            }
        }
        keys
    }

    /// The keys the colours can follow: the varied keys but the seed (the seed itself
    /// when nothing else varies).
    pub fn colour_keys(&self) -> Vec<String> {
        let Some(s) = self.shown_sweep() else { return Vec::new() };
        let keys = self.sweep_keys(s);
        let other: Vec<String> = keys.iter().filter(|k| *k != SEED_KEY).cloned().collect();
        if other.is_empty() {
            keys
        } else {
            other
        }
    }

    /// The shown sweep's colouring by the chosen key.
    pub fn colouring(&self) -> Option<Colouring> {
        let s = self.shown_sweep()?;
        let keys = self.colour_keys();
        let key = keys.get(self.curves.sweep.colour_key % keys.len().max(1))?.clone();
        let members = self.sweep_members(s);
        let values = sort_values(members.iter().map(|t| value_of(t, &key)));
        let n = values.len();
        let values: Vec<(String, Color)> =
            values.into_iter().enumerate().map(|(i, v)| (v, palette_color(&self.theme.runs, i, n))).collect();
        let by_id = members
            .iter()
            .map(|t| {
                let v = value_of(t, &key);
                (t.task.id, values.iter().find(|p| p.0 == v).map_or(Color::Reset, |p| p.1))
            })
            .collect();
        Some(Colouring { key, values, by_id })
    }

    /// The shown sweep's members grouped by combination (same values of every varied
    /// key but the seed), groups in order of their first member.
    pub fn sweep_combinations(&self) -> Vec<Vec<&TaskView>> {
        let Some(s) = self.shown_sweep() else { return Vec::new() };
        let keys: Vec<String> = self.sweep_keys(s).into_iter().filter(|k| k != SEED_KEY).collect();
        let members = self.sweep_members(s);
        let vals: Vec<(u64, BTreeMap<String, String>)> =
            members.iter().map(|t| (t.task.id, keys.iter().map(|k| (k.clone(), value_of(t, k))).collect())).collect();
        group_by_combination(&vals, &keys)
            .into_iter()
            .map(|ids| ids.iter().filter_map(|id| members.iter().find(|t| t.task.id == *id).copied()).collect())
            .collect()
    }

    /// Read `results.json` of the shown sweep's ended members not read yet.
    pub fn refresh_sweep_results(&mut self) {
        let Some(s) = self.shown_sweep() else { return };
        let todo: Vec<PathBuf> = self
            .sweep_members(s)
            .iter()
            .filter(|t| t.task.state.is_final() && !self.curves.sweep.results.contains_key(&t.task.run_dir))
            .map(|t| t.task.run_dir.clone())
            .collect();
        for dir in todo {
            // Unreadable or absent: no results (a training run has none).
            let r = crate::rundir::read_results(&dir).ok().flatten().map(|v| results_metrics(&v)).unwrap_or_default();
            self.curves.sweep.results.insert(dir, r);
        }
    }

    /// The final and best value of a run's tag: from its series (cached by data
    /// version), else from its `results.json` (both the result).
    fn final_best(&self, t: &TaskView, tag: &str) -> Option<(f64, f64)> {
        if let Some(run) = self.store.get(&t.task.run_dir) {
            if let Some(s) = run.tags.get(tag) {
                let key = (t.task.run_dir.clone(), tag.to_string());
                if let Some((v, fb)) = self.curves.sweep.summaries.borrow().get(&key) {
                    if *v == run.version {
                        return *fb;
                    }
                }
                let fb = final_and_best(&s.values, higher_is_better(tag));
                self.curves.sweep.summaries.borrow_mut().insert(key, (run.version, fb));
                return fb;
            }
        }
        let r = self.curves.sweep.results.get(&t.task.run_dir)?;
        r.iter().find(|(k, _)| k == tag).map(|(_, v)| (*v, *v))
    }

    /// The sweep table of the shown sweep over the shown tags (and the results' tags),
    /// sorted as chosen.
    pub fn sweep_table(&self) -> Option<SweepTable> {
        let s = self.shown_sweep()?;
        let keys: Vec<String> = self.sweep_keys(s).into_iter().filter(|k| k != SEED_KEY).collect();
        let mut tags: Vec<String> = self.curve_tags().into_iter().filter(|t| !t.ends_with("_std")).collect();
        let f = self.curves.filter.to_lowercase();
        let members = self.sweep_members(s);
        let mut extra = BTreeSet::new();
        for t in &members {
            for (tag, _) in self.curves.sweep.results.get(&t.task.run_dir).into_iter().flatten() {
                if !tags.contains(tag) && (f.is_empty() || tag.to_lowercase().contains(&f)) {
                    extra.insert(tag.clone());
                }
            }
        }
        tags.extend(extra);
        let colouring = self.colouring();
        let rows = self
            .sweep_combinations()
            .into_iter()
            .map(|group| {
                let values = keys.iter().map(|k| value_of(group[0], k)).collect();
                let states: BTreeSet<&str> = group.iter().map(|t| t.task.state.name()).collect();
                let metrics = tags
                    .iter()
                    .map(|tag| {
                        let fb: Vec<(f64, f64)> = group.iter().filter_map(|t| self.final_best(t, tag)).collect();
                        let finals: Vec<f64> = fb.iter().map(|p| p.0).collect();
                        let bests: Vec<f64> = fb.iter().map(|p| p.1).collect();
                        (Stat::of(&finals), Stat::of(&bests))
                    })
                    .collect();
                let color = colouring.as_ref().and_then(|c| c.by_id.get(&group[0].task.id).copied()).unwrap_or(Color::Reset);
                TableRow {
                    ids: group.iter().map(|t| t.task.id).collect(),
                    values,
                    color,
                    state: states.into_iter().collect::<Vec<_>>().join(","),
                    metrics,
                }
            })
            .collect();
        let mut table = SweepTable { keys, tags, rows };
        let ncol = table.headers().len();
        table.sort(self.curves.sweep.sort % ncol.max(1), self.curves.sweep.descending);
        Some(table)
    }
}

/// An evaluation's `results.json` as (tag, value): its last entry's measurements (the
/// fields that are objects with a `mean` or `value`; plain numbers such as `step` or
/// `images` describe the run), named `eval/<field>` as `clipgan eval` logs them.
pub fn results_metrics(v: &serde_json::Value) -> Vec<(String, f64)> {
    let entry = match v.get("results") {
        Some(serde_json::Value::Array(a)) => a.last(),
        Some(o @ serde_json::Value::Object(_)) => Some(o),
        _ => None,
    };
    let Some(serde_json::Value::Object(m)) = entry else { return Vec::new() };
    let mut out = Vec::new();
    for (k, x) in m {
        let num = match x {
            serde_json::Value::Object(o) => o.get("mean").or_else(|| o.get("value")).and_then(|n| n.as_f64()),
            _ => None,
        };
        if let Some(n) = num.filter(|n| n.is_finite()) {
            out.push((format!("eval/{k}"), n));
        }
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn best_is_min_for_losses_and_fid_and_max_for_precision_like_tags() {
        assert!(!higher_is_better("loss/g_total"));
        assert!(!higher_is_better("eval/fid"));
        assert!(!higher_is_better("eval/kid"));
        assert!(!higher_is_better("eval/fd_clip"));
        assert!(higher_is_better("eval/r_precision"));
        assert!(higher_is_better("val/r_precision"));
        assert!(higher_is_better("val/accuracy"));
        assert!(higher_is_better("eval/is"));
        let v = [3.0, 1.0, f64::NAN, 2.0, f64::INFINITY];
        assert_eq!(final_and_best(&v, false), Some((2.0, 1.0)), "final: the last finite value; best: the min");
        assert_eq!(final_and_best(&v, true), Some((2.0, 3.0)), "best: the max");
        assert_eq!(final_and_best(&[f64::NAN], true), None);
        assert_eq!(final_and_best(&[], true), None);
    }

    #[test]
    fn members_that_differ_only_in_seed_form_one_combination() {
        let m = |id: u64, lambda: &str, seed: &str, gamma: &str| {
            let o = [format!("TRAIN.SMOOTH.LAMBDA={lambda}"), format!("CLIPGAN.SEED={seed}"), format!("TRAIN.SMOOTH.GAMMA1={gamma}")];
            (id, overrides_map(&o))
        };
        let members =
            [m(1, "0.1", "100", "4"), m(2, "0.1", "101", "4"), m(3, "1", "100", "4"), m(4, "0.1", "100", "5"), m(5, "1", "101", "4")];
        let keys = vec!["TRAIN.SMOOTH.LAMBDA".to_string(), "TRAIN.SMOOTH.GAMMA1".to_string()];
        assert_eq!(group_by_combination(&members, &keys), vec![vec![1, 2], vec![3, 5], vec![4]]);
        // Grouped by one key only, gamma's runs join lambda's.
        assert_eq!(group_by_combination(&members, &keys[..1]), vec![vec![1, 2, 4], vec![3, 5]]);
    }

    #[test]
    fn values_sort_numerically_when_all_are_numbers() {
        let v = |s: &[&str]| s.iter().map(|x| x.to_string()).collect::<Vec<_>>();
        assert_eq!(sort_values(v(&["10", "0.5", "2", "0.5"])), v(&["0.5", "2", "10"]));
        assert_eq!(sort_values(v(&["b", "10", "a"])), v(&["10", "a", "b"]));
    }

    #[test]
    fn each_value_gets_its_own_colour_from_the_palette() {
        let p = [Color::Rgb(0, 0, 0), Color::Rgb(200, 100, 0), Color::Rgb(0, 0, 250)];
        assert_eq!(palette_color(&p, 1, 3), p[1]);
        let many: Vec<Color> = (0..9).map(|i| palette_color(&p, i, 9)).collect();
        assert_eq!(many[0], p[0]);
        assert_eq!(many[8], p[2]);
        assert_eq!(many[4], p[1], "the middle value lands on the middle colour");
        assert_eq!(many.iter().collect::<std::collections::HashSet<_>>().len(), 9, "{many:?}");
    }

    #[test]
    fn table_sorts_by_a_metric_with_missing_values_last() {
        let row = |id: u64, v: Option<f64>| TableRow {
            ids: vec![id],
            values: vec![format!("{id}")],
            color: Color::Reset,
            state: "finished".into(),
            metrics: vec![(v.map(|m| Stat { mean: m, std: 0.0, n: 1 }), None)],
        };
        let mut t = SweepTable {
            keys: vec!["K".into()],
            tags: vec!["eval/fid".into()],
            rows: vec![row(1, Some(3.0)), row(2, None), row(3, Some(1.0))],
        };
        assert_eq!(t.headers(), vec!["K", "n", "state", "fid final", "fid best↓"]);
        t.sort(3, false);
        assert_eq!(t.rows.iter().map(|r| r.ids[0]).collect::<Vec<_>>(), vec![3, 1, 2]);
        t.sort(3, true);
        assert_eq!(t.rows.iter().map(|r| r.ids[0]).collect::<Vec<_>>(), vec![1, 3, 2]);
        let s = Stat::of(&[1.0, 3.0, f64::NAN]).unwrap();
        assert_eq!((s.mean, s.std, s.n), (2.0, 1.0, 2));
    }

    #[test]
    fn results_json_entries_become_eval_tags() {
        let v = serde_json::json!({"job": "eval", "results": [
            {"r_precision": {"mean": 0.5, "std": 0.01}, "fid": {"value": 30.0}},
            {"r_precision": {"mean": 0.7, "std": 0.01}, "fid": {"value": 20.0}, "is": null, "step": 600}
        ]});
        let mut m = results_metrics(&v);
        m.sort_by(|a, b| a.0.cmp(&b.0));
        assert_eq!(m, vec![("eval/fid".into(), 20.0), ("eval/r_precision".into(), 0.7)]);
    }
}
