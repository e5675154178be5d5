//! `clipgan report`: the evaluation results of runs (their `results.json`, written by
//! `clipgan eval`) as one table in Markdown, CSV or LaTeX, optionally beside the published
//! rows of `eval::reference` (docs/evaluation.md, "Reports"). One row per evaluated
//! generator; a value a run does not have is shown as missing ("—", "--" or an empty CSV
//! cell), never as a number.
use crate::eval::reference::{Published, PUBLISHED};
use crate::rundir::{self, RunDir};
use anyhow::{bail, Context, Result};
use serde_json::Value;
use std::path::Path;

/// Output format of the table.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Format {
    Markdown,
    Csv,
    Latex,
}

impl std::str::FromStr for Format {
    type Err = String;

    fn from_str(s: &str) -> Result<Format, String> {
        match s.to_ascii_lowercase().as_str() {
            "markdown" | "md" => Ok(Format::Markdown),
            "csv" => Ok(Format::Csv),
            "latex" | "tex" => Ok(Format::Latex),
            _ => Err(format!("unknown format {s:?}; expected markdown, csv or latex")),
        }
    }
}

/// A mean with its std where one was reported.
#[derive(Clone, Copy, Debug, PartialEq)]
pub struct Metric {
    pub mean: f64,
    pub std: Option<f64>,
}

/// One line of the table: an evaluated generator, a published model, or a run that could
/// not be read (`failed`, with `--keep-going`).
#[derive(Clone, Debug, Default, PartialEq)]
pub struct Row {
    pub model: String,
    pub dataset: String,
    pub step: Option<u64>,
    /// As a fraction (shown in percent).
    pub r_precision: Option<Metric>,
    pub fid: Option<f64>,
    pub is: Option<Metric>,
    pub kid: Option<Metric>,
    pub fd_clip: Option<f64>,
    /// Generated images FID / IS / KID used.
    pub images: Option<u64>,
    /// R-precision trials.
    pub trials: Option<u64>,
    /// The encoder of the R-precision.
    pub encoder: String,
    /// The Inception of the IS (`imagenet`, `cub-stackgan`).
    pub inception: String,
    /// The results file, or the publication.
    pub source: String,
    /// Why a value is missing, the independent encoder's R-precision, an error.
    pub notes: Vec<String>,
    pub failed: bool,
}

impl Row {
    /// A published row (method.md §10).
    pub fn published(p: &Published) -> Row {
        Row {
            model: p.model.to_string(),
            dataset: p.dataset.to_string(),
            r_precision: p.r_precision.map(|(m, s)| Metric { mean: m, std: Some(s) }),
            fid: p.fid,
            is: p.is.map(|(m, s)| Metric { mean: m, std: s }),
            encoder: p.r_encoder.to_string(),
            inception: p.is_inception.to_string(),
            source: p.source.to_string(),
            ..Row::default()
        }
    }

    /// The marked row of a run that could not be read (`--keep-going`).
    pub fn failed(model: &str, source: &str, error: &anyhow::Error) -> Row {
        Row {
            model: model.to_string(),
            source: source.to_string(),
            notes: vec![format!("error: {error:#}")],
            failed: true,
            ..Row::default()
        }
    }
}

/// Every published row.
pub fn reference_rows() -> Vec<Row> {
    PUBLISHED.iter().map(Row::published).collect()
}

/// The dataset as the published table names it.
fn dataset_label(name: &str) -> String {
    match name.to_ascii_lowercase().as_str() {
        "birds" | "bird" | "cub" => "CUB".into(),
        "coco" => "COCO".into(),
        _ => name.to_string(),
    }
}

/// A reason shortened to its first sentence (the weights help text is long).
fn short(reason: &str) -> String {
    let first = reason.split(". ").next().unwrap_or(reason).trim_end_matches('.');
    crate::util::cut(first, 120)
}

fn num(v: &Value, field: &str, ctx: &str) -> Result<Option<f64>> {
    match v.get(field) {
        None | Some(Value::Null) => Ok(None),
        Some(x) => x.as_f64().map(Some).with_context(|| format!("{ctx}.{field} is {x}, not a number")),
    }
}

/// A metric entry of results.json: `{mean, std}` (or `{value}`), `{"unavailable": why}`,
/// or absent. Returns the value and, when unavailable, the reason.
fn metric(entry: &Value, key: &str, ctx: &str) -> Result<(Option<Metric>, Option<String>)> {
    let ctx = format!("{ctx}.{key}");
    let Some(m) = entry.get(key).filter(|m| !m.is_null()) else {
        return Ok((None, None));
    };
    if !m.is_object() {
        bail!("{ctx} is {m}, not an object");
    }
    if let Some(why) = m.get("unavailable") {
        return Ok((None, Some(why.as_str().map(short).unwrap_or_else(|| why.to_string()))));
    }
    let mean = match num(m, "mean", &ctx)? {
        Some(v) => Some(v),
        None => num(m, "value", &ctx)?,
    };
    let Some(mean) = mean else {
        bail!("{ctx} has neither \"mean\" nor \"value\"");
    };
    Ok((Some(Metric { mean, std: num(m, "std", &ctx)? }), None))
}

fn uint(entry: &Value, key: &str, ctx: &str) -> Result<Option<u64>> {
    match entry.get(key) {
        None | Some(Value::Null) => Ok(None),
        Some(x) => x.as_u64().map(Some).with_context(|| format!("{ctx}.{key} is {x}, not a count")),
    }
}

/// The label of a generator: its file stem (`netG_epoch_0600`) or folder name.
fn generator_label(entry: &Value) -> Option<String> {
    let g = entry.get("generator")?.as_str()?;
    Path::new(g).file_stem().map(|s| s.to_string_lossy().into_owned())
}

/// The rows of one results.json (`run`: the run's name; `source`: the file as shown;
/// `dataset`: used when the file does not say).
pub fn rows_from_results(run: &str, source: &str, dataset: &str, results: &Value) -> Result<Vec<Row>> {
    let Some(list) = results.get("results").and_then(Value::as_array) else {
        bail!("{source} has no \"results\" list (not an evaluation's results)");
    };
    if list.is_empty() {
        bail!("{source} lists no evaluated generator (the evaluation stopped before the first one finished)");
    }
    let dataset = results.get("dataset").and_then(Value::as_str).unwrap_or(dataset);
    let mut rows = Vec::new();
    for (i, e) in list.iter().enumerate() {
        let ctx = format!("{source}: results[{i}]");
        if !e.is_object() {
            bail!("{ctx} is not an object");
        }
        let model = match (list.len(), generator_label(e)) {
            (n, Some(g)) if n > 1 => format!("{run} / {g}"),
            _ => run.to_string(),
        };
        let mut notes = Vec::new();
        let mut take = |key: &str, name: &str| -> Result<Option<Metric>> {
            let (m, why) = metric(e, key, &ctx)?;
            if let Some(why) = why {
                notes.push(format!("{name} unavailable: {why}"));
            }
            Ok(m)
        };
        let r_precision = take("r_precision", "R-precision")?;
        let fid = take("fid", "FID")?.map(|m| m.mean);
        let is = take("is", "IS")?;
        let kid = take("kid", "KID")?;
        let fd_clip = take("fd_clip", "FD_CLIP")?.map(|m| m.mean);
        if let (Some(r), _) = metric(e, "r_precision_independent", &ctx)? {
            let label = e.pointer("/r_precision_independent/encoder").and_then(Value::as_str).unwrap_or("independent encoder");
            notes.push(format!("R-precision {} with {label}", pct(&r)));
        }
        let trials = match uint(e, "trials", &ctx)? {
            Some(t) => Some(t),
            None => e.get("r_precision").map(|r| uint(r, "trials", &ctx)).transpose()?.flatten(),
        };
        let encoder = e.pointer("/r_precision/encoder").and_then(Value::as_str).unwrap_or("").to_string();
        let inception = match (&is, e.pointer("/is/model").and_then(Value::as_str)) {
            (_, Some(m)) => m.to_string(),
            (Some(_), None) => "not recorded".to_string(),
            (None, None) => String::new(),
        };
        rows.push(Row {
            model,
            dataset: dataset_label(dataset),
            step: uint(e, "step", &ctx)?,
            r_precision,
            fid,
            is,
            kid,
            fd_clip,
            images: uint(e, "images", &ctx)?,
            trials,
            encoder,
            inception,
            source: source.to_string(),
            notes,
            failed: false,
        });
    }
    Ok(rows)
}

/// DATASET_NAME of a run's config file, for results that do not name their dataset.
fn config_dataset(run_dir: &Path) -> String {
    let Some(cfg) = rundir::config_file(run_dir) else {
        return String::new();
    };
    let text = std::fs::read_to_string(cfg).unwrap_or_default();
    let yaml: serde_yaml_ng::Value = serde_yaml_ng::from_str(&text).unwrap_or(serde_yaml_ng::Value::Null);
    yaml.get("DATASET_NAME").and_then(|v| v.as_str()).unwrap_or("").to_string()
}

/// The rows of one run folder (or of its results.json given directly). A folder that is
/// no run, a run without results, a corrupt results.json: errors naming the file.
pub fn rows_of_run(path: &Path) -> Result<Vec<Row>> {
    let dir_path = if path.is_file() && path.file_name().is_some_and(|n| n == rundir::RESULTS_FILE) {
        path.parent().unwrap_or(Path::new(".")).to_path_buf()
    } else {
        path.to_path_buf()
    };
    if !dir_path.is_dir() {
        bail!("{}: no such run folder", path.display());
    }
    let dir = RunDir::open(&dir_path).with_context(|| format!("{} is not a clipgan run folder", dir_path.display()))?;
    let manifest = dir.manifest()?;
    let source = dir_path.join(rundir::RESULTS_FILE).display().to_string();
    let Some(results) = rundir::read_results(&dir_path)? else {
        if manifest.job == "train" {
            bail!(
                "{source} does not exist: a train run keeps no evaluation results; evaluate its snapshots \
                 (clipgan eval --cfg CFG --snapshots {}) and report that eval run",
                dir_path.display()
            );
        }
        let state =
            rundir::read_status(&dir_path).ok().flatten().map(|s| format!(" (the {} run is {:?})", manifest.job, s.state).to_lowercase());
        bail!("{source} does not exist: the run has no evaluation results{}", state.unwrap_or_default());
    };
    let run_name = dir_path.file_name().map(|n| n.to_string_lossy().into_owned()).unwrap_or_else(|| manifest.id.clone());
    rows_from_results(&run_name, &source, &config_dataset(&dir_path), &results)
}

const MISSING_MD: &str = "—";

fn pct(m: &Metric) -> String {
    match m.std {
        Some(s) => format!("{:.2} ± {:.2}", m.mean * 100.0, s * 100.0),
        None => format!("{:.2}", m.mean * 100.0),
    }
}

fn pm(m: &Metric, decimals: usize) -> String {
    match m.std {
        Some(s) => format!("{:.*} ± {:.*}", decimals, m.mean, decimals, s),
        None => format!("{:.*}", decimals, m.mean),
    }
}

/// The display cells of a row (None = missing), in column order.
fn cells(r: &Row) -> Vec<Option<String>> {
    let text = |s: &str| (!s.is_empty()).then(|| s.to_string());
    vec![
        Some(if r.failed { format!("{} (not read)", r.model) } else { r.model.clone() }),
        text(&r.dataset),
        r.step.map(|s| s.to_string()),
        r.r_precision.as_ref().map(pct),
        r.fid.map(|v| format!("{v:.2}")),
        r.is.as_ref().map(|m| pm(m, 2)),
        r.kid.as_ref().map(|m| pm(m, 4)),
        r.fd_clip.map(|v| format!("{v:.4}")),
        r.images.map(|v| v.to_string()),
        r.trials.map(|v| v.to_string()),
        text(&r.encoder),
        text(&r.inception),
        text(&r.source),
    ]
}

const HEADER: [&str; 13] = [
    "model",
    "dataset",
    "step",
    "R-precision %",
    "FID",
    "IS",
    "KID",
    "FD_CLIP",
    "images",
    "trials",
    "R-precision encoder",
    "IS Inception",
    "source",
];

fn markdown(rows: &[Row]) -> String {
    let esc = |s: &str| s.replace('|', "\\|");
    let mut out = format!("| {} |\n", HEADER.join(" | "));
    let align = ["---", "---", "---:", "---:", "---:", "---:", "---:", "---:", "---:", "---:", "---", "---", "---"];
    out += &format!("|{}|\n", align.join("|"));
    for r in rows {
        let c: Vec<String> = cells(r).into_iter().map(|c| c.map(|s| esc(&s)).unwrap_or_else(|| MISSING_MD.into())).collect();
        out += &format!("| {} |\n", c.join(" | "));
    }
    let notes: Vec<String> = rows.iter().flat_map(|r| r.notes.iter().map(move |n| format!("- {}: {}", esc(&r.model), n))).collect();
    if !notes.is_empty() {
        out += "\nNotes:\n\n";
        out += &notes.join("\n");
        out += "\n";
    }
    out
}

fn csv_field(s: &str) -> String {
    if s.contains([',', '"', '\n', '\r']) {
        format!("\"{}\"", s.replace('"', "\"\""))
    } else {
        s.to_string()
    }
}

/// Machine-readable: full precision, means and stds in their own columns, R-precision as
/// a fraction (as in results.json), a missing value an empty cell.
fn csv(rows: &[Row]) -> String {
    let mut out = String::from(
        "model,dataset,step,r_precision,r_precision_std,fid,is,is_std,kid,kid_std,fd_clip,images,trials,r_precision_encoder,is_inception,source,failed,notes\n",
    );
    let f = |v: Option<f64>| v.map(|v| v.to_string()).unwrap_or_default();
    let u = |v: Option<u64>| v.map(|v| v.to_string()).unwrap_or_default();
    for r in rows {
        let fields = [
            csv_field(&r.model),
            csv_field(&r.dataset),
            u(r.step),
            f(r.r_precision.map(|m| m.mean)),
            f(r.r_precision.and_then(|m| m.std)),
            f(r.fid),
            f(r.is.map(|m| m.mean)),
            f(r.is.and_then(|m| m.std)),
            f(r.kid.map(|m| m.mean)),
            f(r.kid.and_then(|m| m.std)),
            f(r.fd_clip),
            u(r.images),
            u(r.trials),
            csv_field(&r.encoder),
            csv_field(&r.inception),
            csv_field(&r.source),
            r.failed.to_string(),
            csv_field(&r.notes.join("; ")),
        ];
        out += &fields.join(",");
        out += "\n";
    }
    out
}

fn latex_escape(s: &str) -> String {
    let mut out = String::with_capacity(s.len());
    for ch in s.chars() {
        match ch {
            '\\' => out += "\\textbackslash{}",
            '&' | '%' | '$' | '#' | '_' | '{' | '}' => {
                out.push('\\');
                out.push(ch);
            }
            '~' => out += "\\textasciitilde{}",
            '^' => out += "\\textasciicircum{}",
            '±' => out += "$\\pm$",
            '—' => out += "---",
            '§' => out += "\\S{}",
            _ => out.push(ch),
        }
    }
    out
}

/// A booktabs `tabular` (needs `\usepackage{booktabs}`); notes as comments below it.
fn latex(rows: &[Row]) -> String {
    let mut out =
        String::from("% clipgan report: R-precision in %, mean $\\pm$ std over folds; IS and KID mean $\\pm$ std over splits/subsets\n");
    out += "\\begin{tabular}{lllrrrrrrrlll}\n\\toprule\n";
    let head: Vec<String> = HEADER.iter().map(|h| latex_escape(h)).collect();
    out += &format!("{} \\\\\n\\midrule\n", head.join(" & "));
    for r in rows {
        let c: Vec<String> = cells(r).into_iter().map(|c| c.map(|s| latex_escape(&s)).unwrap_or_else(|| "--".into())).collect();
        out += &format!("{} \\\\\n", c.join(" & "));
    }
    out += "\\bottomrule\n\\end{tabular}\n";
    for r in rows {
        for n in &r.notes {
            out += &format!("% {}: {}\n", r.model, n.replace('\n', " "));
        }
    }
    out
}

/// The table of `rows` in `format`.
pub fn render(rows: &[Row], format: Format) -> String {
    match format {
        Format::Markdown => markdown(rows),
        Format::Csv => csv(rows),
        Format::Latex => latex(rows),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    #[test]
    fn a_results_entry_becomes_a_row_with_missing_values_missing() {
        let results = json!({"job": "eval", "dataset": "birds", "results": [{
            "generator": "/x/netG_epoch_0600.safetensors", "step": 12, "images": 30000, "trials": 30000,
            "r_precision": {"encoder": "finetuned CLIP (c.safetensors)", "mean": 0.7, "std": 0.01, "trials": 30000},
            "fd_clip": {"value": 0.5},
            "fid": {"unavailable": "CLIPGAN.EVAL.FID_WEIGHTS is not set. pytorch-fid's FID Inception weights are needed: ..."},
            "kid": {"unavailable": "CLIPGAN.EVAL.FID_WEIGHTS is not set. more"},
            "is": {"mean": 4.5, "std": 0.05, "splits": 10, "model": "cub-stackgan"}
        }]});
        let rows = rows_from_results("run1", "run1/results.json", "", &results).unwrap();
        assert_eq!(rows.len(), 1);
        let r = &rows[0];
        assert_eq!((r.model.as_str(), r.dataset.as_str(), r.step, r.images, r.trials), ("run1", "CUB", Some(12), Some(30000), Some(30000)));
        assert_eq!(r.fid, None);
        assert_eq!(r.is, Some(Metric { mean: 4.5, std: Some(0.05) }));
        assert_eq!(r.inception, "cub-stackgan");
        assert_eq!(r.notes[0], "FID unavailable: CLIPGAN.EVAL.FID_WEIGHTS is not set");
        let md = render(&rows, Format::Markdown);
        assert!(md.contains("| run1 | CUB | 12 | 70.00 ± 1.00 | — | 4.50 ± 0.05 | — | 0.5000 | 30000 | 30000 |"), "{md}");
    }

    #[test]
    fn a_malformed_value_is_an_error_naming_the_file_and_field() {
        let results = json!({"results": [{"fid": {"value": "low"}}]});
        let e = rows_from_results("r", "r/results.json", "", &results).unwrap_err().to_string();
        assert_eq!(e, "r/results.json: results[0].fid.value is \"low\", not a number");
        let e = rows_from_results("r", "r/results.json", "", &json!({"job": "train"})).unwrap_err().to_string();
        assert!(e.contains("r/results.json has no \"results\" list"), "{e}");
    }

    #[test]
    fn latex_and_csv_escape_their_special_characters() {
        assert_eq!(latex_escape("a_b 50% & §10 ± x"), "a\\_b 50\\% \\& \\S{}10 $\\pm$ x");
        assert_eq!(csv_field("a, \"b\""), "\"a, \"\"b\"\"\"");
        assert_eq!(csv_field("plain"), "plain");
        assert_eq!("tex".parse::<Format>(), Ok(Format::Latex));
        assert!("html".parse::<Format>().is_err());
    }
}
