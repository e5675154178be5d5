//! The index of `<home>/cfg/**/*.yml|yaml` with each file's validation state.
//!
//! Change events come from `notify` through `notify-debouncer-full` watching the folder
//! recursively (editors save by writing a new file and renaming it, so watching files
//! would lose them); editor temp files are ignored. Every event just triggers a rescan,
//! which stats every file and re-validates only those whose size or mtime changed:
//! cheap for a config folder, and right whatever the events were (renames, moved
//! folders). A periodic rescan covers file systems that deliver no events (NFS, WSL's
//! Windows drives) and a `rescan` request forces one.
//!
//! The daemon validates off its loop ([`CfgIndex::stale`] on the loop, [`validate`] on
//! a blocking thread, [`CfgIndex::apply`] back on the loop): a config that is slow to
//! read or parse must not delay the answers to clients.
use super::protocol::{ConfigEntry, ConfigIndex};
use std::collections::BTreeMap;
use std::path::{Path, PathBuf};
use std::time::{Duration, SystemTime, UNIX_EPOCH};

/// Whether a file name is an editor's temporary or backup file (vim's `.swp`/`.swx`/
/// `4913` probe, emacs' `.#lock` and `~` backups, and hidden files in general).
pub fn is_editor_temp(name: &str) -> bool {
    name.starts_with('.')
        || name.ends_with('~')
        || name == "4913"
        || name.ends_with(".swp")
        || name.ends_with(".swx")
        || name.ends_with(".swo")
        || name.ends_with(".tmp")
}

/// A config file the index tracks: `.yml`/`.yaml`, not an editor temp file.
pub fn is_config_file(path: &Path) -> bool {
    let Some(name) = path.file_name().and_then(|n| n.to_str()) else { return false };
    !is_editor_temp(name) && (name.ends_with(".yml") || name.ends_with(".yaml"))
}

/// Whether a change event about `path` can matter to the index (a config file, or a
/// folder that may hold some).
pub fn is_relevant(path: &Path) -> bool {
    let Some(name) = path.file_name().and_then(|n| n.to_str()) else { return true };
    if is_editor_temp(name) {
        return false;
    }
    is_config_file(path) || path.extension().is_none()
}

/// A file's (size, mtime): when it changes, the file is validated again.
pub type Sig = (u64, Option<SystemTime>);

struct Tracked {
    sig: Sig,
    entry: ConfigEntry,
}

pub struct CfgIndex {
    root: PathBuf,
    files: BTreeMap<PathBuf, Tracked>,
    /// How changes are noticed (shown to clients).
    pub watch: String,
}

impl CfgIndex {
    pub fn new(root: &Path) -> CfgIndex {
        CfgIndex { root: root.to_path_buf(), files: BTreeMap::new(), watch: "polling".into() }
    }

    pub fn root(&self) -> &Path {
        &self.root
    }

    /// Bring the index up to date here and now; returns whether anything changed.
    pub fn rescan(&mut self) -> bool {
        let (mut changed, todo) = self.stale();
        for (path, sig) in todo {
            let entry = validate(&self.root, &path, sig.1);
            changed |= self.apply(path, sig, entry);
        }
        changed
    }

    /// The cheap half of a rescan (stat only): forget files that are gone, and list those
    /// new or changed since they were validated. Returns whether files were forgotten.
    pub fn stale(&mut self) -> (bool, Vec<(PathBuf, Sig)>) {
        let mut found = Vec::new();
        walk(&self.root, &mut found, 0);
        let keep: std::collections::BTreeSet<&PathBuf> = found.iter().map(|(p, _)| p).collect();
        let before = self.files.len();
        self.files.retain(|p, _| keep.contains(p));
        let forgot = self.files.len() != before;
        found.retain(|(path, sig)| self.files.get(path).is_none_or(|t| t.sig != *sig));
        (forgot, found)
    }

    /// Record a validation made by [`validate`]; returns whether the index changed.
    pub fn apply(&mut self, path: PathBuf, sig: Sig, entry: ConfigEntry) -> bool {
        if self.files.get(&path).is_some_and(|t| t.sig == sig) {
            return false;
        }
        self.files.insert(path, Tracked { sig, entry });
        true
    }
}

/// Read and validate one config file of the index under `root` (slow work: the daemon
/// runs it on a blocking thread).
pub fn validate(root: &Path, path: &Path, mtime: Option<SystemTime>) -> ConfigEntry {
    let rel = path.strip_prefix(root).unwrap_or(path).display().to_string();
    let modified = mtime.and_then(|t| t.duration_since(UNIX_EPOCH).ok()).map(|d| d.as_secs_f64()).unwrap_or(0.0);
    match crate::config::load(path) {
        Ok(c) => ConfigEntry {
            path: path.to_path_buf(),
            rel,
            modified,
            ok: true,
            job: Some(c.config.job().kind()),
            diagnostics: c.warnings.iter().chain(c.path_warnings().iter()).map(|d| d.to_string()).collect(),
        },
        Err(e) => ConfigEntry {
            path: path.to_path_buf(),
            rel,
            modified,
            ok: false,
            job: None,
            diagnostics: e.0.iter().map(|d| d.to_string()).collect(),
        },
    }
}

impl CfgIndex {
    pub fn view(&self, rev: u64) -> ConfigIndex {
        ConfigIndex {
            rev,
            root: self.root.clone(),
            watch: self.watch.clone(),
            files: self.files.values().map(|t| t.entry.clone()).collect(),
        }
    }
}

/// Config files under `dir` with their (size, mtime); symlinked folders are not
/// followed (no loops), depth is bounded.
fn walk(dir: &Path, out: &mut Vec<(PathBuf, (u64, Option<SystemTime>))>, depth: usize) {
    if depth > 16 {
        return;
    }
    let Ok(entries) = std::fs::read_dir(dir) else { return };
    for e in entries.flatten() {
        let path = e.path();
        let Ok(ft) = e.file_type() else { continue };
        let name = e.file_name();
        let name = name.to_string_lossy();
        if ft.is_dir() {
            if !name.starts_with('.') {
                walk(&path, out, depth + 1);
            }
        } else if is_config_file(&path) {
            // Follows a symlinked file to its target's size and mtime.
            if let Ok(m) = std::fs::metadata(&path) {
                if m.is_file() {
                    out.push((path, (m.len(), m.modified().ok())));
                }
            }
        }
    }
}

/// A running watcher; dropping it stops it.
pub type Watcher = notify_debouncer_full::Debouncer<notify::RecommendedWatcher, notify_debouncer_full::RecommendedCache>;

/// Watch `root` recursively; `on_change` is called (on the debouncer's thread) after a
/// burst of relevant events has settled for 400 ms.
pub fn watch(root: &Path, on_change: impl Fn() + Send + 'static) -> Result<Watcher, String> {
    use notify_debouncer_full::{new_debouncer, DebounceEventResult};
    let mut debouncer = new_debouncer(Duration::from_millis(400), None, move |res: DebounceEventResult| match res {
        Ok(events) => {
            if events.iter().any(|e| e.paths.iter().any(|p| is_relevant(p))) {
                on_change();
            }
        }
        // Errors (e.g. an event queue overflow) may hide changes: rescan.
        Err(_) => on_change(),
    })
    .map_err(|e| e.to_string())?;
    debouncer.watch(root, notify::RecursiveMode::Recursive).map_err(|e| e.to_string())?;
    Ok(debouncer)
}
