//! Loading, validating and resolving configuration files.
//!
//! Errors carry `file:line:column`: serde_yaml_ng reports positions for syntax errors,
//! unknown keys and wrong types; for the semantic checks done after parsing we find the
//! key's line with [`locate_key`], which is enough for the block-style YAML configs use.
use super::schema::{Config, Job};
use std::fmt;
use std::path::{Path, PathBuf};

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Severity {
    Error,
    Warning,
    /// Worth knowing, nothing wrong (e.g. a seed key that nothing reads).
    Note,
}

/// One finding about a config file, printed as `file:line:col: severity: message`.
#[derive(Clone, Debug, PartialEq)]
pub struct Diagnostic {
    pub file: PathBuf,
    pub line: Option<usize>,
    pub column: Option<usize>,
    pub severity: Severity,
    pub message: String,
}

impl fmt::Display for Diagnostic {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}", self.file.display())?;
        if let Some(l) = self.line {
            write!(f, ":{l}")?;
            if let Some(c) = self.column {
                write!(f, ":{c}")?;
            }
        }
        let sev = match self.severity {
            Severity::Error => "error",
            Severity::Warning => "warning",
            Severity::Note => "note",
        };
        write!(f, ": {sev}: {}", self.message)
    }
}

/// A config that could not be loaded: every error found (at least one).
#[derive(Debug, Clone)]
pub struct ConfigError(pub Vec<Diagnostic>);

impl fmt::Display for ConfigError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        for (i, d) in self.0.iter().enumerate() {
            if i > 0 {
                writeln!(f)?;
            }
            write!(f, "{d}")?;
        }
        Ok(())
    }
}

impl std::error::Error for ConfigError {}

/// A loaded, valid configuration together with where it came from.
#[derive(Clone, Debug)]
pub struct LoadedConfig {
    /// The file as given (for messages).
    pub path: PathBuf,
    /// The folder relative paths in the file are resolved against.
    pub base_dir: PathBuf,
    /// The file's text, kept to locate keys in later messages and to snapshot it.
    pub text: String,
    pub config: Config,
    /// The `--set KEY=VALUE` overrides applied on top of the file, in order.
    pub overrides: Vec<Override>,
    /// Non-fatal findings (unused keys, suspicious values). Missing paths are checked
    /// separately: see [`LoadedConfig::path_warnings`].
    pub warnings: Vec<Diagnostic>,
}

/// The folder relative paths are resolved against: the folder that holds the `cfg/`
/// folder the file lives in (the seed resolved `../data/birds` against its code folder,
/// which is our project root), else the file's own folder.
pub fn base_dir_for(path: &Path) -> PathBuf {
    let abs = std::path::absolute(path).unwrap_or_else(|_| path.to_path_buf());
    let mut dir = abs.parent();
    while let Some(d) = dir {
        if d.file_name().is_some_and(|n| n == "cfg") {
            if let Some(p) = d.parent() {
                return p.to_path_buf();
            }
        }
        dir = d.parent();
    }
    abs.parent().map(Path::to_path_buf).unwrap_or_else(|| PathBuf::from("."))
}

/// The largest config file read: the seed's are about 2 KB (`config check /dev/zero`
/// once grew memory without limit).
pub const MAX_CONFIG_BYTES: u64 = 1 << 20;
/// The deepest nesting of flow collections (`[`, `{`) accepted: the YAML parser's time
/// grows with the square of it (200 KB of `[` took 38 s), and configs use at most 2.
pub const MAX_FLOW_DEPTH: usize = 32;

/// Read and validate a config file.
pub fn load(path: &Path) -> Result<LoadedConfig, ConfigError> {
    load_with(path, &[])
}

/// Read a config file, apply `--set KEY=VALUE` overrides (see [`parse_with`]) and validate.
pub fn load_with(path: &Path, overrides: &[String]) -> Result<LoadedConfig, ConfigError> {
    let text = read_text(path)?;
    parse_with(path, &text, base_dir_for(path), overrides)
}

/// A config file's text, at most [`MAX_CONFIG_BYTES`] of UTF-8; errors name the file.
pub fn read_text(path: &Path) -> Result<String, ConfigError> {
    use std::io::Read;
    let fail = |message: String| {
        ConfigError(vec![Diagnostic { file: path.to_path_buf(), line: None, column: None, severity: Severity::Error, message }])
    };
    let file = std::fs::File::open(path).map_err(|e| fail(format!("cannot read the file: {e}")))?;
    let mut bytes = Vec::new();
    file.take(MAX_CONFIG_BYTES + 1).read_to_end(&mut bytes).map_err(|e| fail(format!("cannot read the file: {e}")))?;
    if bytes.len() as u64 > MAX_CONFIG_BYTES {
        return Err(fail(format!("the file is larger than {} KiB, too large for a config", MAX_CONFIG_BYTES >> 10)));
    }
    String::from_utf8(bytes)
        .map_err(|e| fail(format!("the file is not UTF-8 text (invalid byte at offset {})", e.utf8_error().valid_up_to())))
}

/// Where flow collections nest deeper than [`MAX_FLOW_DEPTH`]: the 1-based line and
/// column of the bracket that goes too deep. Quoted strings and comments are skipped.
fn too_deep(text: &str) -> Option<(usize, usize)> {
    let mut depth = 0usize;
    for (i, line) in text.lines().enumerate() {
        let mut quote: Option<char> = None;
        let mut prev = ' ';
        for (col, ch) in line.chars().enumerate() {
            match (quote, ch) {
                (Some(q), c) if c == q => quote = None,
                (Some(_), _) => {}
                (None, '\'' | '"') => quote = Some(ch),
                (None, '#') if prev.is_whitespace() => break,
                (None, '[' | '{') => {
                    depth += 1;
                    if depth > MAX_FLOW_DEPTH {
                        return Some((i + 1, col + 1));
                    }
                }
                (None, ']' | '}') => depth = depth.saturating_sub(1),
                _ => {}
            }
            prev = ch;
        }
    }
    None
}

/// Parse and validate config text (the file name is used in messages only).
pub fn parse(path: &Path, text: &str, base_dir: PathBuf) -> Result<LoadedConfig, ConfigError> {
    parse_with(path, text, base_dir, &[])
}

/// Parse config text, apply `--set KEY=VALUE` overrides in order (a later one wins), and
/// validate the result exactly as a file: the file's own errors keep their
/// `file:line:column`; an override with an unknown key, a value of the wrong type or a
/// value out of range is an error naming the `--set` argument.
pub fn parse_with(path: &Path, text: &str, base_dir: PathBuf, overrides: &[String]) -> Result<LoadedConfig, ConfigError> {
    let err = |line, column, message: String| Diagnostic { file: path.to_path_buf(), line, column, severity: Severity::Error, message };
    if text.trim().lines().all(|l| l.trim().is_empty() || l.trim_start().starts_with('#')) {
        return Err(ConfigError(vec![err(None, None, "the file holds no settings".into())]));
    }
    if text.len() as u64 > MAX_CONFIG_BYTES {
        return Err(ConfigError(vec![err(
            None,
            None,
            format!("the text is larger than {} KiB, too large for a config", MAX_CONFIG_BYTES >> 10),
        )]));
    }
    if let Some((line, column)) = too_deep(text) {
        return Err(ConfigError(vec![err(
            Some(line),
            Some(column),
            format!("lists or mappings nest deeper than {MAX_FLOW_DEPTH} levels"),
        )]));
    }
    let config: Config = serde_yaml_ng::from_str(text).map_err(|e| {
        let (line, column) = match e.location() {
            Some(l) => (Some(l.line()), Some(l.column())),
            None => (None, None),
        };
        // Cut: the message can quote the input (a 10 MB key once made a 10 MB message).
        ConfigError(vec![err(line, column, crate::util::cut(&explain_serde_error(&e.to_string()), 600))])
    })?;
    let mut doc = serde_yaml_ng::from_str::<serde_yaml_ng::Value>(text).unwrap_or(serde_yaml_ng::Value::Null);
    let mut config = config;
    let mut parsed = Vec::new();
    if !overrides.is_empty() {
        let mut errors = Vec::new();
        for arg in overrides {
            match Override::parse(arg) {
                Ok(o) => parsed.push(o),
                Err(message) => errors.push(err(None, None, message)),
            }
        }
        if !errors.is_empty() {
            return Err(ConfigError(errors));
        }
        for o in &parsed {
            o.apply(&mut doc);
        }
        config = serde_yaml_ng::from_value(doc.clone()).map_err(|e| {
            let args: Vec<&str> = parsed.iter().map(|o| o.arg.as_str()).collect();
            ConfigError(vec![err(
                None,
                None,
                format!("with --set {}: {}", args.join(" --set "), crate::util::cut(&explain_serde_error(&e.to_string()), 600)),
            )])
        })?;
    }
    seed_schedule_defaults(&mut config, &doc);
    let mut loaded =
        LoadedConfig { path: path.to_path_buf(), base_dir, text: text.to_string(), config, overrides: parsed, warnings: Vec::new() };
    let (errors, warnings): (Vec<_>, Vec<_>) = loaded.semantic_checks().into_iter().partition(|d| d.severity == Severity::Error);
    if !errors.is_empty() {
        return Err(ConfigError(errors));
    }
    loaded.warnings = warnings;
    Ok(loaded)
}

/// Make serde's message read well: drop the trailing position (we print it in front)
/// and suggest the closest key for a misspelt one.
fn explain_serde_error(msg: &str) -> String {
    let msg = match msg.rfind(" at line ") {
        Some(i) => &msg[..i],
        None => msg,
    };
    if let Some(start) = msg.find("unknown field `") {
        let rest = &msg[start + "unknown field `".len()..];
        if let Some(end) = rest.find('`') {
            let unknown = &rest[..end];
            let expected: Vec<&str> = rest[end + 1..].split('`').enumerate().filter(|(i, _)| i % 2 == 1).map(|(_, s)| s).collect();
            let section = msg[..start].trim_end_matches(": ").trim();
            let section = if section.is_empty() { "the top level".to_string() } else { section.to_string() };
            let mut out = format!("unknown key `{unknown}` in {section}");
            if let Some(best) = closest(unknown, &expected) {
                out.push_str(&format!(" (did you mean `{best}`?)"));
            }
            out.push_str(&format!("; expected one of: {}", expected.join(", ")));
            return out;
        }
    }
    msg.to_string()
}

fn closest<'a>(word: &str, candidates: &[&'a str]) -> Option<&'a str> {
    let w = word.to_ascii_uppercase();
    candidates
        .iter()
        .map(|c| (strsim::damerau_levenshtein(&w, c), *c))
        .filter(|(d, c)| *d <= 2.max(c.len() / 4))
        .min_by_key(|(d, _)| *d)
        .map(|(_, c)| c)
}

/// The finetuning schedule the seed ran for its dataset (method.md section 6), as
/// (warm-up epochs, cycle epochs): birds 2 / 5, COCO 5 / 10.
pub fn seed_schedule(dataset_name: &str) -> (u32, u32) {
    if dataset_name.eq_ignore_ascii_case("coco") {
        (5, 10)
    } else {
        (2, 5)
    }
}

/// When a config sets neither CLIPGAN.WARMUP_EPOCHS nor CYCLE_EPOCHS (the seed's own
/// DAMSM files), the schedule is the seed's for its DATASET_NAME; setting either one
/// keeps the plain defaults for the other.
fn seed_schedule_defaults(config: &mut Config, doc: &serde_yaml_ng::Value) {
    let clipgan = doc.get("CLIPGAN");
    let set = |key: &str| clipgan.is_some_and(|c| c.get(key).is_some());
    if !set("WARMUP_EPOCHS") && !set("CYCLE_EPOCHS") {
        let (warmup, cycle) = seed_schedule(&config.dataset_name);
        config.clipgan.warmup_epochs = warmup;
        config.clipgan.cycle_epochs = cycle;
    }
}

/// Find the line and column of a nested key (`["TRAIN", "SMOOTH", "GAMMA1"]`) in
/// block-style YAML by following indentation. 1-based, like serde_yaml_ng's positions.
pub fn locate_key(text: &str, key_path: &[&str]) -> Option<(usize, usize)> {
    let mut stack: Vec<(usize, String)> = Vec::new();
    for (i, raw) in text.lines().enumerate() {
        let trimmed = raw.trim_start();
        if trimmed.is_empty() || trimmed.starts_with('#') || trimmed.starts_with('-') {
            continue;
        }
        let indent = raw.len() - trimmed.len();
        let Some(colon) = trimmed.find(':') else { continue };
        let key = trimmed[..colon].trim().trim_matches(|c| c == '\'' || c == '"');
        while stack.last().is_some_and(|(ind, _)| *ind >= indent) {
            stack.pop();
        }
        stack.push((indent, key.to_string()));
        if stack.len() == key_path.len() && stack.iter().zip(key_path).all(|((_, k), p)| k == p) {
            return Some((i + 1, indent + 1));
        }
    }
    None
}

/// Accepted device strings: `auto`, `cpu`, `cuda`, `cuda:N`.
pub fn parse_device_string(s: &str) -> Option<DeviceChoice> {
    match s.trim().to_ascii_lowercase().as_str() {
        "" | "auto" => Some(DeviceChoice::Auto),
        "cpu" => Some(DeviceChoice::Cpu),
        "cuda" | "gpu" => Some(DeviceChoice::Cuda(None)),
        other => other.strip_prefix("cuda:").and_then(|n| n.parse().ok()).map(|n| DeviceChoice::Cuda(Some(n))),
    }
}

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum DeviceChoice {
    Auto,
    Cpu,
    Cuda(Option<usize>),
}

impl LoadedConfig {
    /// The override that set this key (the last one, as it wins).
    pub fn override_of(&self, key_path: &[&str]) -> Option<&Override> {
        self.overrides.iter().rev().find(|o| o.key.len() == key_path.len() && o.key.iter().zip(key_path).all(|(a, b)| a == b))
    }

    fn diag(&self, severity: Severity, key_path: &[&str], message: String) -> Diagnostic {
        if let Some(o) = self.override_of(key_path) {
            return Diagnostic {
                file: self.path.clone(),
                line: None,
                column: None,
                severity,
                message: format!("--set {}: {message}", o.arg),
            };
        }
        let pos = locate_key(&self.text, key_path);
        Diagnostic {
            file: self.path.clone(),
            line: pos.map(|p| p.0),
            column: pos.map(|p| p.1),
            severity,
            message: format!("{}: {message}", key_path.join(".")),
        }
    }

    /// Value checks that serde's types cannot express.
    fn semantic_checks(&self) -> Vec<Diagnostic> {
        use super::limits::*;
        use Severity::*;
        let c = &self.config;
        let mut out = Vec::new();
        let mut check = |ok: bool, sev: Severity, path: &[&str], msg: &str| {
            if !ok {
                out.push(self.diag(sev, path, msg.to_string()));
            }
        };
        let name_ok = crate::rundir::check_name("name", &c.config_name);
        check(name_ok.is_ok(), Error, &["CONFIG_NAME"], &name_ok.err().unwrap_or_default());
        check(
            ["birds", "coco"].iter().any(|d| c.dataset_name.eq_ignore_ascii_case(d)),
            Error,
            &["DATASET_NAME"],
            "expected birds or coco (birds: classes and CUB bounding boxes; coco: no classes)",
        );
        check((1..=3).contains(&c.tree.branch_num), Error, &["TREE", "BRANCH_NUM"], "expected 1, 2 or 3 generator stages");
        let at_most = |max: u32| format!("expected at most {max} (a bound against absurd sizes that would need hundreds of GB)");
        check(c.tree.base_size >= 8, Error, &["TREE", "BASE_SIZE"], "expected an image size of at least 8 pixels");
        check(c.tree.base_size <= MAX_IMAGE_SIZE, Error, &["TREE", "BASE_SIZE"], &at_most(MAX_IMAGE_SIZE));
        check(c.train.batch_size >= 1, Error, &["TRAIN", "BATCH_SIZE"], "expected a batch size of at least 1");
        check(c.train.batch_size <= MAX_BATCH_SIZE, Error, &["TRAIN", "BATCH_SIZE"], &at_most(MAX_BATCH_SIZE));
        check(c.workers <= MAX_WORKERS, Error, &["WORKERS"], &at_most(MAX_WORKERS));
        check(c.clipgan.threads <= MAX_THREADS, Error, &["CLIPGAN", "THREADS"], &at_most(MAX_THREADS));
        if c.job() != Job::Eval {
            check(
                c.train.batch_size >= 2,
                Error,
                &["TRAIN", "BATCH_SIZE"],
                "training needs a batch of at least 2 (mismatched pairs and NT-Xent compare samples within a batch)",
            );
            check(c.train.max_epoch >= 1, Error, &["TRAIN", "MAX_EPOCH"], "expected at least 1 epoch");
        }
        check(c.train.snapshot_interval >= 1, Error, &["TRAIN", "SNAPSHOT_INTERVAL"], "expected an interval of at least 1");
        for (key, v) in [
            ("DISCRIMINATOR_LR", c.train.discriminator_lr),
            ("GENERATOR_LR", c.train.generator_lr),
            ("BACKBONE_LR", c.train.backbone_lr),
            ("LINEAR_LR", c.train.linear_lr),
            ("RNN_GRAD_CLIP", c.train.rnn_grad_clip),
        ] {
            check(v.is_finite() && v >= 0.0, Error, &["TRAIN", key], "expected a finite number >= 0");
        }
        check(
            c.train.linear_lr <= 1.0,
            Warning,
            &["TRAIN", "LINEAR_LR"],
            "a learning rate above 1 diverges (the seed's 20.0 is a known bug; method.md uses 2e-3)",
        );
        let s = &c.train.smooth;
        for (key, v) in [("GAMMA1", s.gamma1), ("GAMMA2", s.gamma2), ("GAMMA3", s.gamma3)] {
            check(v.is_finite() && v > 0.0, Error, &["TRAIN", "SMOOTH", key], "expected a finite number > 0");
        }
        check(s.lambda.is_finite() && s.lambda >= 0.0, Error, &["TRAIN", "SMOOTH", "LAMBDA"], "expected a finite number >= 0");
        for (key, v, max) in [
            ("DF_DIM", c.gan.df_dim, MAX_GAN_WIDTH),
            ("GF_DIM", c.gan.gf_dim, MAX_GAN_WIDTH),
            ("Z_DIM", c.gan.z_dim, MAX_GAN_CODE),
            ("CONDITION_DIM", c.gan.condition_dim, MAX_GAN_CODE),
        ] {
            check(v >= 1, Error, &["GAN", key], "expected at least 1");
            check(v <= max, Error, &["GAN", key], &at_most(max));
        }
        check(c.gan.r_num <= MAX_RESIDUAL_BLOCKS, Error, &["GAN", "R_NUM"], &at_most(MAX_RESIDUAL_BLOCKS));
        check(c.text.embedding_dim >= 1, Error, &["TEXT", "EMBEDDING_DIM"], "expected at least 1");
        check(c.text.embedding_dim <= MAX_EMBEDDING_DIM, Error, &["TEXT", "EMBEDDING_DIM"], &at_most(MAX_EMBEDDING_DIM));
        check(c.text.captions_per_image >= 1, Error, &["TEXT", "CAPTIONS_PER_IMAGE"], "expected at least 1 caption per image");
        check(
            c.text.captions_per_image <= MAX_CAPTIONS_PER_IMAGE,
            Error,
            &["TEXT", "CAPTIONS_PER_IMAGE"],
            &at_most(MAX_CAPTIONS_PER_IMAGE),
        );
        if c.job() != Job::Eval {
            check(
                c.text.captions_per_image >= 2,
                Error,
                &["TEXT", "CAPTIONS_PER_IMAGE"],
                "training uses two different captions of each image, so it needs at least 2",
            );
        }
        check(
            (3..=4096).contains(&c.text.words_num),
            Error,
            &["TEXT", "WORDS_NUM"],
            "expected a token length between 3 and 4096 (CLIP: 77)",
        );
        check(parse_device_string(&c.train.device).is_some(), Error, &["TRAIN", "DEVICE"], "expected cpu, cuda or cuda:N");
        let g = &c.clipgan;
        check(parse_device_string(&g.device).is_some(), Error, &["CLIPGAN", "DEVICE"], "expected auto, cpu, cuda or cuda:N");
        check(
            super::CLIP_PRESETS.contains(&g.clip_preset.as_str()),
            Error,
            &["CLIPGAN", "CLIP_PRESET"],
            &format!("expected one of: {}", super::CLIP_PRESETS.join(", ")),
        );
        check(g.log_every >= 1, Error, &["CLIPGAN", "LOG_EVERY"], "expected at least 1");
        check(g.fake_offset.is_finite(), Error, &["CLIPGAN", "FAKE_OFFSET"], "expected a finite number");
        check(
            g.checkpoint_minutes.is_finite() && g.checkpoint_minutes >= 0.0,
            Error,
            &["CLIPGAN", "CHECKPOINT_MINUTES"],
            "expected a number of minutes >= 0",
        );
        check(g.cycle_epochs >= 1, Error, &["CLIPGAN", "CYCLE_EPOCHS"], "expected at least 1");
        check(
            g.warmup_epochs < g.cycle_epochs.max(1) || g.cycle_epochs == 1 && g.warmup_epochs <= 1,
            Error,
            &["CLIPGAN", "WARMUP_EPOCHS"],
            "the warm-up must be shorter than the cycle (CYCLE_EPOCHS)",
        );
        check(
            g.cycle_decay.is_finite() && g.cycle_decay > 0.0 && g.cycle_decay <= 1.0,
            Error,
            &["CLIPGAN", "CYCLE_DECAY"],
            "expected a factor in (0, 1]",
        );
        check((0.0..1.0).contains(&g.ema_decay), Error, &["CLIPGAN", "EMA_DECAY"], "expected a decay in [0, 1)");
        check(
            super::CAPTION_FORMS.contains(&g.caption_form.trim().to_ascii_lowercase().as_str()),
            Error,
            &["CLIPGAN", "CAPTION_FORM"],
            &format!("expected one of: {}", super::CAPTION_FORMS.join(", ")),
        );
        let e = &g.eval;
        check(e.images >= 1, Error, &["CLIPGAN", "EVAL", "IMAGES"], "expected at least 1");
        check(
            super::EVAL_SAMPLINGS.contains(&e.sampling.trim().to_ascii_lowercase().as_str()),
            Error,
            &["CLIPGAN", "EVAL", "SAMPLING"],
            &format!("expected one of: {}", super::EVAL_SAMPLINGS.join(", ")),
        );
        check(
            super::IS_MODELS.contains(&e.is_model.trim().to_ascii_lowercase().as_str()),
            Error,
            &["CLIPGAN", "EVAL", "IS_MODEL"],
            &format!("expected one of: {}", super::IS_MODELS.join(", ")),
        );
        check(
            e.passes == 0 || !e.sampling.trim().eq_ignore_ascii_case("captions"),
            Error,
            &["CLIPGAN", "EVAL", "PASSES"],
            "PASSES counts passes over the test split: not with SAMPLING: captions",
        );
        check(e.passes <= MAX_EVAL_PASSES, Error, &["CLIPGAN", "EVAL", "PASSES"], &at_most(MAX_EVAL_PASSES));
        check(e.r_trials <= MAX_R_TRIALS, Error, &["CLIPGAN", "EVAL", "R_TRIALS"], &at_most(MAX_R_TRIALS));
        check(e.r_candidates <= MAX_R_CANDIDATES, Error, &["CLIPGAN", "EVAL", "R_CANDIDATES"], &at_most(MAX_R_CANDIDATES));
        check(
            e.r_candidates >= 2,
            Error,
            &["CLIPGAN", "EVAL", "R_CANDIDATES"],
            "expected at least 2 candidates (the ground truth and one other)",
        );
        let trials = if e.r_trials > 0 { e.r_trials } else { e.images };
        check(
            e.r_folds >= 1 && (e.passes > 0 || trials >= e.r_folds),
            Error,
            &["CLIPGAN", "EVAL", "R_FOLDS"],
            "expected 1 <= R_FOLDS <= R_TRIALS (or IMAGES when R_TRIALS is 0)",
        );
        check(
            e.r_trials == 0 || e.passes > 0 || e.r_trials <= e.images,
            Error,
            &["CLIPGAN", "EVAL", "R_TRIALS"],
            "each trial uses its own generated image: expected R_TRIALS <= IMAGES (0: one per image)",
        );
        for key in c.unused_keys_set() {
            let path: Vec<&str> = key.split('.').collect();
            out.push(self.diag(Severity::Note, &path, "set, but nothing reads it (accepted for compatibility with the seed)".into()));
        }
        out
    }

    /// Resolve a path setting: empty means unset; relative paths are taken from
    /// [`Self::base_dir`]; `~/` is the home folder.
    pub fn resolve(&self, value: &str) -> Option<PathBuf> {
        resolve_against(&self.base_dir, value)
    }

    /// The path settings of this config that are set, with their key paths
    /// (CLIP_MODEL_BASE is left out: it is usually a HuggingFace hub name).
    pub fn path_settings(&self) -> Vec<(&'static str, &str)> {
        let mut v = self.path_settings_all();
        v.retain(|(k, s)| {
            !s.trim().is_empty() && *k != "TRAIN.CLIP_MODEL_BASE" && !(*k == "CLIPGAN.TOKENIZER" && s.eq_ignore_ascii_case("builtin"))
        });
        v
    }

    /// A warning for each path setting that points at nothing (data may live on
    /// another machine, so `config check` only warns; jobs use [`Self::require`]).
    pub fn path_warnings(&self) -> Vec<Diagnostic> {
        self.path_settings()
            .into_iter()
            .filter_map(|(key, value)| {
                let p = self.resolve(value)?;
                if p.exists() {
                    return None;
                }
                let key_path: Vec<&str> = key.split('.').collect();
                Some(self.diag(Severity::Warning, &key_path, format!("{value:?} resolves to {}, which does not exist", p.display())))
            })
            .collect()
    }

    /// The resolved path of a setting that a job cannot run without: an error naming
    /// the key, the value and the resolved path when it is unset or missing.
    pub fn require(&self, key: &str) -> anyhow::Result<PathBuf> {
        let value = self
            .path_settings_all()
            .into_iter()
            .find(|(k, _)| *k == key)
            .map(|(_, v)| v)
            .ok_or_else(|| anyhow::anyhow!("internal: {key} is not a path setting"))?;
        let key_path: Vec<&str> = key.split('.').collect();
        let pos = match self.override_of(&key_path) {
            Some(o) => format!(" (--set {})", o.arg),
            None => locate_key(&self.text, &key_path).map(|(l, c)| format!(":{l}:{c}")).unwrap_or_default(),
        };
        let Some(p) = self.resolve(value) else {
            anyhow::bail!("{}{pos}: {key} is not set, and this job needs it", self.path.display());
        };
        if !p.exists() {
            anyhow::bail!("{}{pos}: {key} = {value:?} resolves to {}, which does not exist", self.path.display(), p.display());
        }
        Ok(p)
    }

    fn path_settings_all(&self) -> Vec<(&'static str, &str)> {
        let c = &self.config;
        vec![
            ("DATA_DIR", c.data_dir.as_str()),
            ("TRAIN.NET_E", c.train.net_e.as_str()),
            ("TRAIN.NET_G", c.train.net_g.as_str()),
            ("TRAIN.CLIP_MODEL_CHECKPOINT", c.train.clip_model_checkpoint.as_str()),
            ("TRAIN.CLIP_MODEL_BASE", c.train.clip_model_base.as_str()),
            ("CLIPGAN.CLIP_WEIGHTS", c.clipgan.clip_weights.as_str()),
            ("CLIPGAN.TOKENIZER", c.clipgan.tokenizer.as_str()),
            ("CLIPGAN.EVAL.INDEPENDENT_CLIP", c.clipgan.eval.independent_clip.as_str()),
            ("CLIPGAN.EVAL.FID_WEIGHTS", c.clipgan.eval.fid_weights.as_str()),
            ("CLIPGAN.EVAL.IS_WEIGHTS", c.clipgan.eval.is_weights.as_str()),
            ("CLIPGAN.EVAL.FID_REAL_STATS", c.clipgan.eval.fid_real_stats.as_str()),
        ]
    }

    /// The config with every path setting made absolute: what a run folder stores, so
    /// the run does not depend on where it was started from.
    pub fn resolved(&self) -> Config {
        let mut c = self.config.clone();
        let fix = |s: &mut String| {
            if let Some(p) = resolve_against(&self.base_dir, s) {
                *s = p.display().to_string();
            }
        };
        fix(&mut c.data_dir);
        fix(&mut c.train.net_e);
        fix(&mut c.train.net_g);
        fix(&mut c.train.clip_model_checkpoint);
        if resolve_against(&self.base_dir, &c.train.clip_model_base).is_some_and(|p| p.exists()) {
            fix(&mut c.train.clip_model_base);
        }
        fix(&mut c.clipgan.clip_weights);
        if !c.clipgan.tokenizer.eq_ignore_ascii_case("builtin") {
            fix(&mut c.clipgan.tokenizer);
        }
        fix(&mut c.clipgan.eval.independent_clip);
        fix(&mut c.clipgan.eval.fid_weights);
        fix(&mut c.clipgan.eval.is_weights);
        fix(&mut c.clipgan.eval.fid_real_stats);
        c
    }

    /// The resolved config as YAML (what `config check` prints and run folders keep).
    pub fn resolved_yaml(&self) -> String {
        serde_yaml_ng::to_string(&self.resolved()).expect("a Config always serialises")
    }
}

/// See [`LoadedConfig::resolve`].
pub fn resolve_against(base: &Path, value: &str) -> Option<PathBuf> {
    let v = value.trim();
    if v.is_empty() {
        return None;
    }
    if let Some(rest) = v.strip_prefix("~/") {
        if let Some(home) = std::env::var_os("HOME") {
            return Some(PathBuf::from(home).join(rest));
        }
    }
    let p = Path::new(v);
    let joined = if p.is_absolute() { p.to_path_buf() } else { base.join(p) };
    Some(normalize(&joined))
}

/// Remove `.` and `..` components lexically (the folder may not exist yet).
fn normalize(p: &Path) -> PathBuf {
    use std::path::Component;
    let mut out = PathBuf::new();
    for c in p.components() {
        match c {
            Component::CurDir => {}
            Component::ParentDir => {
                if !out.pop() {
                    out.push("..");
                }
            }
            other => out.push(other.as_os_str()),
        }
    }
    out
}

/// The longest `--set` argument accepted (a value is a scalar or a short list).
pub const MAX_OVERRIDE_CHARS: usize = 4096;

/// One `--set KEY=VALUE`: a dotted key of the schema (`TRAIN.SMOOTH.LAMBDA`) and a value
/// read as YAML (`0.5`, `true`, `cuda:0`, `''`), checked on its own against the schema.
#[derive(Clone, Debug, PartialEq)]
pub struct Override {
    /// The argument as given (for messages and to pass it on).
    pub arg: String,
    pub key: Vec<String>,
    pub value: serde_yaml_ng::Value,
}

impl Override {
    /// Parse and check one argument: the key must be a setting of the schema (not a
    /// section) and the value must have its type. Errors start with `--set ARG:`.
    pub fn parse(arg: &str) -> Result<Override, String> {
        use serde_yaml_ng::Value;
        let shown = crate::util::cut(arg, 200);
        let fail = |m: String| format!("--set {shown}: {m}");
        if arg.chars().count() > MAX_OVERRIDE_CHARS {
            return Err(fail(format!("longer than {MAX_OVERRIDE_CHARS} characters")));
        }
        let Some((key, value)) = arg.split_once('=') else {
            return Err(fail("expected KEY=VALUE (a dotted key such as TRAIN.SMOOTH.LAMBDA=0.5)".into()));
        };
        let key: Vec<String> = key.trim().split('.').map(|k| k.trim().to_string()).collect();
        if key.iter().any(String::is_empty) {
            return Err(fail("expected KEY=VALUE (a dotted key such as TRAIN.SMOOTH.LAMBDA=0.5)".into()));
        }
        let schema = serde_yaml_ng::to_value(Config::default()).expect("the default config serialises");
        let mut node = &schema;
        for (i, k) in key.iter().enumerate() {
            let section = if i == 0 { "the top level".to_string() } else { key[..i].join(".") };
            let Value::Mapping(m) = node else {
                return Err(fail(format!("{section} is a setting, not a section")));
            };
            match m.get(k.as_str()) {
                Some(v) => node = v,
                None => {
                    let expected: Vec<&str> = m.keys().filter_map(Value::as_str).collect();
                    let mut msg = format!("unknown key `{k}` in {section}");
                    if let Some(best) = closest(k, &expected) {
                        msg.push_str(&format!(" (did you mean `{best}`?)"));
                    }
                    msg.push_str(&format!("; expected one of: {}", expected.join(", ")));
                    return Err(fail(msg));
                }
            }
        }
        if matches!(node, Value::Mapping(_)) {
            return Err(fail(format!(
                "{} is a section; set one of its keys (such as {}.{})",
                key.join("."),
                key.join("."),
                first_key(node)
            )));
        }
        if let Some((line, column)) = too_deep(value) {
            return Err(fail(format!("the value nests deeper than {MAX_FLOW_DEPTH} levels (at {line}:{column})")));
        }
        let value: Value = serde_yaml_ng::from_str(value)
            .map_err(|e| fail(format!("the value is not YAML: {}", crate::util::cut(&explain_serde_error(&e.to_string()), 300))))?;
        let o = Override { arg: arg.to_string(), key, value };
        // The type, checked alone: a document holding just this key.
        let mut doc = Value::Mapping(Default::default());
        o.apply(&mut doc);
        if let Err(e) = serde_yaml_ng::from_value::<Config>(doc) {
            return Err(fail(crate::util::cut(&explain_serde_error(&e.to_string()), 600)));
        }
        Ok(o)
    }

    /// Set this key in a YAML document, making the sections on the way as needed.
    pub fn apply(&self, doc: &mut serde_yaml_ng::Value) {
        use serde_yaml_ng::Value;
        let mut node = doc;
        for k in &self.key {
            if !matches!(node, Value::Mapping(_)) {
                *node = Value::Mapping(Default::default());
            }
            let Value::Mapping(m) = node else { unreachable!("made a mapping above") };
            node = m.entry(Value::String(k.clone())).or_insert(Value::Null);
        }
        *node = self.value.clone();
    }
}

fn first_key(node: &serde_yaml_ng::Value) -> String {
    node.as_mapping().and_then(|m| m.keys().next()).and_then(|k| k.as_str()).unwrap_or("KEY").to_string()
}
