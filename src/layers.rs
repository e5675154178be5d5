//! Which top-level module may use which (docs/architecture.md, "Who may use whom"),
//! checked by a test that reads every `crate::` path in `src/`. Keep this table and the
//! one in the docs in step; a new top-level module must be added to both.

/// Each top-level module and the modules it may import. `cli` may use everything.
pub const ALLOWED: &[(&str, &[&str])] = &[
    ("util", &[]),
    ("seed", &[]),
    ("home", &[]),
    ("rundir", &["util"]),
    ("checkpoint", &["util"]),
    ("config", &["rundir", "home", "util"]),
    ("device", &["config"]),
    ("data", &["config", "seed", "util"]),
    ("models", &["checkpoint", "config", "device", "rundir", "seed", "util"]),
    ("plot", &["rundir", "home", "util"]),
    ("train", &["models", "data", "checkpoint", "config", "device", "rundir", "seed", "util"]),
    ("eval", &["models", "data", "checkpoint", "config", "device", "rundir", "seed", "home", "util"]),
    ("jobs", &["train", "eval", "models", "data", "checkpoint", "config", "device", "rundir", "seed", "home", "util"]),
    // The daemon starts jobs as processes (argv), never by calling them.
    ("supervisor", &["config", "rundir", "home", "util"]),
    // A client of the daemon and a reader of run folders; no model code (no libtorch work).
    ("console", &["supervisor", "plot", "rundir", "config", "home", "util"]),
    ("cli", &["*"]),
    // This file: its tests name other modules in strings.
    ("layers", &["*"]),
];

#[cfg(test)]
mod tests {
    use super::ALLOWED;
    use std::collections::BTreeSet;
    use std::path::{Path, PathBuf};

    fn rust_files(dir: &Path, out: &mut Vec<PathBuf>) {
        for e in std::fs::read_dir(dir).unwrap() {
            let p = e.unwrap().path();
            if p.is_dir() {
                rust_files(&p, out);
            } else if p.extension().is_some_and(|x| x == "rs") {
                out.push(p);
            }
        }
    }

    /// The top-level modules named by `crate::x` and `crate::{x, y::z}` in `text`.
    fn crate_uses(text: &str) -> BTreeSet<String> {
        let mut used = BTreeSet::new();
        let mut rest = text;
        while let Some(i) = rest.find("crate::") {
            rest = &rest[i + "crate::".len()..];
            if let Some(group) = rest.strip_prefix('{') {
                let end = group.find('}').unwrap_or(group.len());
                for item in group[..end].split(',') {
                    let name: String = item.trim().chars().take_while(|c| c.is_ascii_alphanumeric() || *c == '_').collect();
                    if !name.is_empty() && name != "self" {
                        used.insert(name);
                    }
                }
            } else {
                let name: String = rest.chars().take_while(|c| c.is_ascii_alphanumeric() || *c == '_').collect();
                if !name.is_empty() {
                    used.insert(name);
                }
            }
        }
        used
    }

    #[test]
    fn crate_uses_reads_paths_and_groups() {
        let got = crate_uses("use crate::rundir::X;\nuse crate::{device, util::fsx};\nlet a = crate::seed::derive(1, &[]);");
        assert_eq!(got.into_iter().collect::<Vec<_>>(), ["device", "rundir", "seed", "util"]);
    }

    #[test]
    fn no_module_imports_what_the_table_does_not_allow() {
        let src = Path::new(env!("CARGO_MANIFEST_DIR")).join("src");
        let mut files = Vec::new();
        rust_files(&src, &mut files);
        let mut problems = Vec::new();
        for file in files {
            let rel = file.strip_prefix(&src).unwrap();
            let first = rel.components().next().unwrap().as_os_str().to_string_lossy().into_owned();
            let module = first.trim_end_matches(".rs").to_string();
            if module == "lib" || module == "main" {
                continue;
            }
            let Some((_, allowed)) = ALLOWED.iter().find(|(m, _)| *m == module) else {
                problems.push(format!("src/{first} is a top-level module missing from src/layers.rs's table"));
                continue;
            };
            if allowed.contains(&"*") {
                continue;
            }
            let text = std::fs::read_to_string(&file).unwrap();
            for used in crate_uses(&text) {
                if used != module && !allowed.contains(&used.as_str()) {
                    problems.push(format!("src/{} uses crate::{used}, which `{module}` may not use", rel.display()));
                }
            }
        }
        assert!(problems.is_empty(), "imports against docs/architecture.md's rule:\n{}", problems.join("\n"));
    }
}
