//! Sweeps as data: the grid, random and seed axes of `clipgan sweep` (from flags or a
//! sweep file), checked against the config schema, and their expansion into members,
//! each a list of `--set KEY=VALUE` overrides and a label naming its values. Pure: the
//! CLI (and later the console) expand here and send one `add_sweep` request.
//!
//! Order of the members: grid combinations (the first `--grid` varies slowest), then
//! random trials, then seeds. Random draws depend only on (random seed, trial, axis),
//! so the same sweep expands to the same members every time.
use crate::config::Override;
use serde::Deserialize;
use std::path::{Path, PathBuf};

/// The seed key that `--seeds` varies.
pub const SEED_KEY: &str = "CLIPGAN.SEED";
/// Sweeps with more members ask for `--yes` unless the limit is raised.
pub const DEFAULT_LIMIT: usize = 256;
/// The most tasks one sweep request may hold.
pub const MAX_SWEEP_TASKS: usize = 10_000;

/// One `--grid KEY=v1,v2,...`: the values as YAML texts.
#[derive(Clone, Debug, PartialEq)]
pub struct GridAxis {
    pub key: String,
    pub values: Vec<String>,
}

#[derive(Clone, Debug, PartialEq)]
pub enum Dist {
    Uniform(f64, f64),
    LogUniform(f64, f64),
    /// YAML texts.
    Choice(Vec<String>),
}

/// One `--random KEY=uniform(a,b)|loguniform(a,b)|choice(x,y,...)`.
#[derive(Clone, Debug, PartialEq)]
pub struct RandomAxis {
    pub key: String,
    pub dist: Dist,
}

/// The axes of a sweep.
#[derive(Clone, Debug, Default, PartialEq)]
pub struct Axes {
    pub grid: Vec<GridAxis>,
    pub random: Vec<RandomAxis>,
    /// Trials of the random axes (each draws every random axis once).
    pub trials: u32,
    /// Seeds per combination: CLIPGAN.SEED = base, base+1, ... (0 or 1: the config's own).
    pub seeds: u32,
    /// Seed of the random draws.
    pub random_seed: u64,
}

/// One task of a sweep.
#[derive(Clone, Debug, PartialEq)]
pub struct Member {
    /// `KEY=VALUE` arguments, as for `--set`.
    pub overrides: Vec<String>,
    /// The values it varies, short (`LAMBDA=0.5 seed=101`), at most 64 characters.
    pub label: String,
}

/// Split at the commas that are outside brackets and quotes (`[1,2],[3,4]` is two values).
fn split_top(s: &str) -> Vec<String> {
    let (mut out, mut cur, mut depth, mut quote) = (Vec::new(), String::new(), 0i32, None::<char>);
    for c in s.chars() {
        match (quote, c) {
            (Some(q), c) if c == q => quote = None,
            (Some(_), _) => {}
            (None, '\'' | '"') => quote = Some(c),
            (None, '[' | '{' | '(') => depth += 1,
            (None, ']' | '}' | ')') => depth -= 1,
            (None, ',') if depth == 0 => {
                out.push(std::mem::take(&mut cur).trim().to_string());
                continue;
            }
            _ => {}
        }
        cur.push(c);
    }
    out.push(cur.trim().to_string());
    out
}

/// Check `KEY=VALUE` against the schema (key and the value's type).
fn check(key: &str, value: &str, flag: &str) -> Result<(), String> {
    Override::parse(&format!("{key}={value}"))
        .map(|_| ())
        .map_err(|e| format!("{flag} {key}: {}", e.split_once(": ").map_or(e.as_str(), |x| x.1)))
}

/// Parse `--grid KEY=v1,v2,...`; every value is checked against the schema.
pub fn parse_grid(arg: &str) -> Result<GridAxis, String> {
    let Some((key, values)) = arg.split_once('=') else {
        return Err(format!("--grid {arg}: expected KEY=v1,v2,... (such as TRAIN.SMOOTH.LAMBDA=0.1,1,10)"));
    };
    let values: Vec<String> = if values.trim().is_empty() { Vec::new() } else { split_top(values) };
    grid_axis(key.trim(), values)
}

fn grid_axis(key: &str, values: Vec<String>) -> Result<GridAxis, String> {
    if values.is_empty() {
        return Err(format!("--grid {key}: the grid is empty; give at least one value"));
    }
    for v in &values {
        check(key, v, "--grid")?;
    }
    let mut seen = Vec::new();
    for v in &values {
        if seen.contains(&v) {
            return Err(format!("--grid {key}: the value {v} is listed twice"));
        }
        seen.push(v);
    }
    Ok(GridAxis { key: key.to_string(), values })
}

/// Parse `--random KEY=uniform(a,b)|loguniform(a,b)|choice(x,y,...)`.
pub fn parse_random(arg: &str) -> Result<RandomAxis, String> {
    let Some((key, spec)) = arg.split_once('=') else {
        return Err(format!("--random {arg}: expected KEY=uniform(a,b), KEY=loguniform(a,b) or KEY=choice(x,y,...)"));
    };
    random_axis(key.trim(), spec.trim())
}

fn random_axis(key: &str, spec: &str) -> Result<RandomAxis, String> {
    let bad = || format!("--random {key}: expected uniform(a,b), loguniform(a,b) or choice(x,y,...), not {spec:?}");
    let (name, inner) = spec.split_once('(').ok_or_else(bad)?;
    let inner = inner.strip_suffix(')').ok_or_else(bad)?;
    let args = split_top(inner);
    let dist = match name.trim() {
        "uniform" | "loguniform" => {
            let nums: Vec<f64> = args.iter().map(|a| a.parse::<f64>()).collect::<Result<_, _>>().map_err(|_| bad())?;
            let [a, b] = nums[..] else { return Err(bad()) };
            if !(a.is_finite() && b.is_finite() && a < b) {
                return Err(format!("--random {key}: expected finite bounds a < b, not {spec}"));
            }
            if name.trim() == "loguniform" {
                if a <= 0.0 {
                    return Err(format!("--random {key}: loguniform needs bounds above 0, not {spec}"));
                }
                Dist::LogUniform(a, b)
            } else {
                Dist::Uniform(a, b)
            }
        }
        "choice" => {
            if args.iter().all(|a| a.is_empty()) {
                return Err(format!("--random {key}: choice() needs at least one value"));
            }
            Dist::Choice(args)
        }
        _ => return Err(bad()),
    };
    // The key and the type of what it draws (a number, or each choice).
    match &dist {
        Dist::Uniform(a, b) | Dist::LogUniform(a, b) => {
            check(key, &fmt_f64(*a), "--random")?;
            check(key, &fmt_f64(*b), "--random")?;
        }
        Dist::Choice(v) => {
            for x in v {
                check(key, x, "--random")?;
            }
        }
    }
    Ok(RandomAxis { key: key.to_string(), dist })
}

/// A float as YAML that reads back as the same number (always with a `.` or exponent,
/// so that an integer setting refuses it as a float, as the file would).
fn fmt_f64(v: f64) -> String {
    let s = format!("{v:?}");
    if s.contains(['.', 'e', 'E']) || !v.is_finite() {
        s
    } else {
        format!("{s}.0")
    }
}

/// A short form of a value for labels (4 significant digits for floats).
fn short(v: &str) -> String {
    match v.parse::<f64>() {
        Ok(f) if v.contains(['.', 'e', 'E']) && f.is_finite() && f != 0.0 => {
            let a = f.abs();
            if (1e-3..1e4).contains(&a) {
                let digits = (3 - a.log10().floor() as i32).max(0) as usize;
                let s = format!("{f:.digits$}");
                if s.contains('.') {
                    s.trim_end_matches('0').trim_end_matches('.').to_string()
                } else {
                    s
                }
            } else {
                format!("{f:.2e}")
            }
        }
        _ => v.to_string(),
    }
}

/// splitmix64: the draws of trial `t`, axis `k` under `seed`, uniform in [0, 1).
fn unit(seed: u64, t: u64, k: u64) -> f64 {
    let mut z = seed ^ t.wrapping_mul(0x9E37_79B9_7F4A_7C15) ^ k.wrapping_mul(0xD1B5_4A32_D192_ED03);
    z = z.wrapping_add(0x9E37_79B9_7F4A_7C15);
    z = (z ^ (z >> 30)).wrapping_mul(0xBF58_476D_1CE4_E5B9);
    z = (z ^ (z >> 27)).wrapping_mul(0x94D0_49BB_1331_11EB);
    z ^= z >> 31;
    (z >> 11) as f64 / (1u64 << 53) as f64
}

impl Axes {
    /// The dotted keys the sweep varies.
    pub fn keys(&self) -> Vec<String> {
        let mut k: Vec<String> = self.grid.iter().map(|g| g.key.clone()).chain(self.random.iter().map(|r| r.key.clone())).collect();
        if self.seeds > 1 {
            k.push(SEED_KEY.to_string());
        }
        k
    }

    /// How many members the sweep has.
    pub fn count(&self) -> u128 {
        let grid: u128 = self.grid.iter().map(|g| g.values.len() as u128).product();
        let trials = if self.random.is_empty() { 1 } else { self.trials as u128 };
        grid * trials * self.seeds.max(1) as u128
    }

    /// Check the axes together: something to vary, no key twice, trials with random axes.
    pub fn validate(&self) -> Result<(), String> {
        if self.grid.is_empty() && self.random.is_empty() && self.seeds <= 1 {
            return Err("the sweep varies nothing: give --grid KEY=v1,v2,..., --random KEY=... --trials N, or --seeds K".into());
        }
        if !self.random.is_empty() && self.trials == 0 {
            return Err("--random needs --trials N (how many draws)".into());
        }
        if self.random.is_empty() && self.trials > 0 {
            return Err("--trials goes with --random".into());
        }
        let keys = self.keys();
        for (i, k) in keys.iter().enumerate() {
            if keys[..i].contains(k) {
                if k == SEED_KEY && self.seeds > 1 {
                    return Err(format!("{SEED_KEY} is varied twice: by --seeds and by --grid/--random"));
                }
                return Err(format!("{k} is varied twice"));
            }
        }
        Ok(())
    }

    /// Every member, in order (see the module doc). `base_seed` is the config's
    /// CLIPGAN.SEED, the first of `--seeds`.
    pub fn expand(&self, base_seed: u64) -> Result<Vec<Member>, String> {
        self.validate()?;
        let count = self.count();
        if count > MAX_SWEEP_TASKS as u128 {
            return Err(format!("the sweep has {count} members, more than the {} one sweep may queue", MAX_SWEEP_TASKS));
        }
        let trials = if self.random.is_empty() { 1 } else { self.trials as u64 };
        let seeds = self.seeds.max(1) as u64;
        let mut combos: Vec<Vec<(String, String)>> = vec![Vec::new()];
        for g in &self.grid {
            combos = combos
                .into_iter()
                .flat_map(|c| g.values.iter().map(move |v| [c.clone(), vec![(g.key.clone(), v.clone())]].concat()))
                .collect();
        }
        let mut out = Vec::with_capacity(count as usize);
        for combo in &combos {
            for t in 0..trials {
                let mut kv = combo.clone();
                for (k, r) in self.random.iter().enumerate() {
                    let u = unit(self.random_seed, t, k as u64);
                    let v = match &r.dist {
                        Dist::Uniform(a, b) => fmt_f64(a + u * (b - a)),
                        Dist::LogUniform(a, b) => fmt_f64((a.ln() + u * (b.ln() - a.ln())).exp().clamp(*a, *b)),
                        Dist::Choice(v) => v[((u * v.len() as f64) as usize).min(v.len() - 1)].clone(),
                    };
                    kv.push((r.key.clone(), v));
                }
                for s in 0..seeds {
                    let mut kv = kv.clone();
                    if self.seeds > 1 {
                        kv.push((SEED_KEY.to_string(), (base_seed.wrapping_add(s)).to_string()));
                    }
                    let label: Vec<String> = kv
                        .iter()
                        .map(|(k, v)| {
                            let name = if k == SEED_KEY { "seed" } else { k.rsplit('.').next().unwrap_or(k) };
                            format!("{name}={}", short(v))
                        })
                        .collect();
                    let label: String = label.join(" ").chars().take(crate::rundir::MAX_NAME_CHARS).collect();
                    out.push(Member { overrides: kv.iter().map(|(k, v)| format!("{k}={v}")).collect(), label });
                }
            }
        }
        Ok(out)
    }
}

/// A sweep file (YAML): the same content as the flags. Paths are relative to the file.
///
/// ```yaml
/// config: train.yml
/// grid:
///   TRAIN.SMOOTH.LAMBDA: [0.1, 1, 10]
/// random:
///   TRAIN.GENERATOR_LR: loguniform(1e-5, 1e-3)
/// trials: 4
/// seeds: 2
/// prune: {rule: median, metric: loss/g_total, after_steps: 100}
/// ```
#[derive(Clone, Debug, Default, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct SweepFile {
    pub config: Option<PathBuf>,
    pub name: Option<String>,
    pub job: Option<crate::rundir::JobKind>,
    pub grid: serde_yaml_ng::Mapping,
    pub random: serde_yaml_ng::Mapping,
    pub trials: u32,
    pub seeds: u32,
    pub random_seed: u64,
    pub group: Option<String>,
    pub after: Vec<u64>,
    pub held: bool,
    /// Arguments for the job (as after `--`).
    pub args: Vec<String>,
    /// `prune: {rule: median, metric: TAG, after_steps: N, direction: min|max}`.
    pub prune: Option<super::prune::PruneFile>,
}

/// Whether a YAML file is a sweep file rather than a config: its top level has one of
/// the sweep's lower-case keys (configs use upper-case keys only).
pub fn is_sweep_file(text: &str) -> bool {
    serde_yaml_ng::from_str::<serde_yaml_ng::Value>(text)
        .ok()
        .and_then(|v| v.as_mapping().map(|m| m.keys().any(|k| matches!(k.as_str(), Some("config" | "grid" | "random")))))
        .unwrap_or(false)
}

fn yaml_text(v: &serde_yaml_ng::Value) -> String {
    match v {
        serde_yaml_ng::Value::String(s) => s.clone(),
        other => serde_yaml_ng::to_string(other).unwrap_or_default().trim_end().to_string(),
    }
}

impl SweepFile {
    /// Read a sweep file; errors name it.
    pub fn load(path: &Path) -> Result<SweepFile, String> {
        let text = crate::config::read_text(path).map_err(|e| e.to_string())?;
        let mut f: SweepFile =
            serde_yaml_ng::from_str(&text).map_err(|e| format!("{}: {}", path.display(), crate::util::cut(&e.to_string(), 600)))?;
        let base = path.parent().unwrap_or(Path::new("."));
        f.config = f.config.map(|c| if c.is_absolute() { c } else { base.join(c) });
        Ok(f)
    }

    /// Its axes (flags given as well are added by the caller).
    pub fn axes(&self, path: &Path) -> Result<Axes, String> {
        let at = |e: String| format!("{}: {e}", path.display());
        let mut axes = Axes { trials: self.trials, seeds: self.seeds, random_seed: self.random_seed, ..Default::default() };
        for (k, v) in &self.grid {
            let key = k.as_str().ok_or_else(|| at("grid keys are dotted setting names".into()))?;
            let values: Vec<String> = match v {
                serde_yaml_ng::Value::Sequence(s) => s.iter().map(yaml_text).collect(),
                other => vec![yaml_text(other)],
            };
            axes.grid.push(grid_axis(key, values).map_err(at)?);
        }
        for (k, v) in &self.random {
            let key = k.as_str().ok_or_else(|| at("random keys are dotted setting names".into()))?;
            let spec = v.as_str().ok_or_else(|| at(format!("random {key}: expected uniform(a,b), loguniform(a,b) or choice(x,y,...)")))?;
            axes.random.push(random_axis(key, spec).map_err(at)?);
        }
        Ok(axes)
    }
}

/// Progress of a sweep as a whole, in [0, 1]: ended members count whole, running ones by
/// their steps, the rest as nothing.
pub fn progress(members: &[&super::protocol::TaskView]) -> f64 {
    if members.is_empty() {
        return 0.0;
    }
    let done: f64 = members
        .iter()
        .map(|m| {
            if m.task.state.is_final() {
                1.0
            } else {
                m.status
                    .as_ref()
                    .and_then(|st| st.total_steps.filter(|t| *t > 0).map(|t| (st.step as f64 / t as f64).min(1.0)))
                    .unwrap_or(0.0)
            }
        })
        .sum();
    done / members.len() as f64
}

#[cfg(test)]
mod tests {
    use super::*;

    fn axes(grid: &[&str], random: &[&str], trials: u32, seeds: u32) -> Axes {
        Axes {
            grid: grid.iter().map(|g| parse_grid(g).unwrap()).collect(),
            random: random.iter().map(|r| parse_random(r).unwrap()).collect(),
            trials,
            seeds,
            random_seed: 7,
        }
    }

    #[test]
    fn grid_expands_to_the_product_first_key_slowest() {
        let a = axes(&["TRAIN.SMOOTH.LAMBDA=0.1,1,10", "GAN.GF_DIM=32,64"], &[], 0, 0);
        let m = a.expand(100).unwrap();
        assert_eq!(m.len(), 6);
        assert_eq!(m[0].overrides, vec!["TRAIN.SMOOTH.LAMBDA=0.1", "GAN.GF_DIM=32"]);
        assert_eq!(m[1].overrides, vec!["TRAIN.SMOOTH.LAMBDA=0.1", "GAN.GF_DIM=64"]);
        assert_eq!(m[5].label, "LAMBDA=10 GF_DIM=64");
        assert_eq!(a.keys(), vec!["TRAIN.SMOOTH.LAMBDA", "GAN.GF_DIM"]);
    }

    #[test]
    fn seeds_multiply_and_count_from_the_base_seed() {
        let a = axes(&["TRAIN.SMOOTH.LAMBDA=1,2"], &[], 0, 3);
        let m = a.expand(100).unwrap();
        assert_eq!(m.len(), 6);
        assert_eq!(m[2].overrides, vec!["TRAIN.SMOOTH.LAMBDA=1", "CLIPGAN.SEED=102"]);
        assert_eq!(m[3].label, "LAMBDA=2 seed=100");
        // Seeds alone are a sweep too.
        assert_eq!(axes(&[], &[], 0, 4).expand(5).unwrap().len(), 4);
    }

    #[test]
    fn random_is_reproducible_within_bounds_and_changes_with_the_seed() {
        let a = axes(
            &["GAN.GF_DIM=32,64"],
            &["TRAIN.GENERATOR_LR=loguniform(1e-5,1e-3)", "TRAIN.SMOOTH.GAMMA1=uniform(4,6)", "CLIPGAN.CAPTION_FORM=choice(raw,words)"],
            5,
            0,
        );
        let m1 = a.expand(0).unwrap();
        assert_eq!(m1.len(), 10);
        assert_eq!(m1, a.expand(0).unwrap());
        for m in &m1 {
            let lr: f64 = m.overrides[1].split_once('=').unwrap().1.parse().unwrap();
            assert!((1e-5..=1e-3).contains(&lr), "{lr}");
            let g: f64 = m.overrides[2].split_once('=').unwrap().1.parse().unwrap();
            assert!((4.0..6.0).contains(&g), "{g}");
            assert!(["CLIPGAN.CAPTION_FORM=raw", "CLIPGAN.CAPTION_FORM=words"].contains(&m.overrides[3].as_str()));
        }
        // The grid's two values share the same trials.
        assert_eq!(m1[0].overrides[1..], m1[5].overrides[1..]);
        let other = Axes { random_seed: 8, ..a.clone() }.expand(0).unwrap();
        assert_ne!(m1, other);
    }

    #[test]
    fn bad_axes_are_errors_naming_the_flag_and_key() {
        assert!(parse_grid("TRAIN.SMOOTH.LAMBDA=").unwrap_err().contains("empty"));
        let e = parse_grid("TRAIN.SMOOTH.LAMDA=1,2").unwrap_err();
        assert!(e.contains("--grid TRAIN.SMOOTH.LAMDA") && e.contains("LAMBDA"), "{e}");
        assert!(parse_grid("GAN.GF_DIM=32,abc").unwrap_err().contains("--grid GAN.GF_DIM"));
        assert!(parse_grid("GAN.GF_DIM=32,32").unwrap_err().contains("twice"));
        assert!(parse_grid("nothing").is_err());
        assert!(parse_random("TRAIN.GENERATOR_LR=loguniform(0,1)").unwrap_err().contains("above 0"));
        assert!(parse_random("TRAIN.GENERATOR_LR=uniform(2,1)").is_err());
        assert!(parse_random("TRAIN.GENERATOR_LR=normal(0,1)").is_err());
        // An integer setting refuses a continuous draw, as a file would refuse 32.5.
        assert!(parse_random("GAN.GF_DIM=uniform(16,64)").unwrap_err().contains("--random GAN.GF_DIM"));
        assert!(axes(&[], &[], 0, 0).validate().unwrap_err().contains("varies nothing"));
        assert!(axes(&[], &["TRAIN.SMOOTH.GAMMA1=uniform(4,6)"], 0, 0).validate().unwrap_err().contains("--trials"));
        assert!(axes(&["CLIPGAN.SEED=1,2"], &[], 0, 2).validate().unwrap_err().contains("twice"));
    }

    #[test]
    fn grid_values_split_at_top_level_commas_only() {
        assert_eq!(split_top("1,[2,3],'a,b'"), vec!["1", "[2,3]", "'a,b'"]);
    }

    #[test]
    fn labels_are_short() {
        assert_eq!(short("0.000123456"), "1.23e-4");
        assert_eq!(short("0.123456"), "0.1235");
        assert_eq!(short("2.0"), "2");
        assert_eq!(short("cuda:0"), "cuda:0");
    }

    #[test]
    fn sweep_files_are_told_from_configs() {
        assert!(is_sweep_file("config: a.yml\ngrid:\n  GAN.GF_DIM: [32, 64]\n"));
        assert!(!is_sweep_file("CONFIG_NAME: x\nTRAIN:\n  FLAG: true\n"));
    }
}
