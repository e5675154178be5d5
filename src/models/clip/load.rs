//! Loading CLIP weights: resolving a user's setting to a source ([`resolve_source`]),
//! reading HuggingFace `model.safetensors` or clipgan checkpoints, and the strict
//! name-and-shape check with its error messages ([`load_clip`]).
use super::{Clip, ClipConfig, SUBR_PREFIX};
use crate::checkpoint;
use anyhow::{bail, Context, Result};
use std::collections::HashMap;
use std::path::{Path, PathBuf};
use tch::{nn, Device, Kind, Tensor};

/// Prefix of the CLIP weights (and `linear_subr`) inside clipgan checkpoints.
pub const CHECKPOINT_PREFIX: &str = "clip.";
/// Checkpoint metadata key holding the architecture (a HuggingFace `config.json` text).
pub const CONFIG_META_KEY: &str = "clip_config";

/// Where CLIP weights come from, once a user's setting has been resolved.
#[derive(Clone, Debug, PartialEq)]
pub enum ClipSource {
    /// A HuggingFace folder: `config.json` + `model.safetensors`.
    HfFolder(PathBuf),
    /// A `.safetensors` file: HuggingFace weights (architecture from a `config.json`
    /// beside it, else the preset) or a clipgan checkpoint (architecture inside).
    File(PathBuf),
}

/// Turn a weights setting into a source: an existing folder or file; a pretraining run
/// folder (its `checkpoints/latest.safetensors`); or a hub name (`openai/clip-vit-base-patch32`)
/// found in the local HuggingFace cache (`$HF_HUB_CACHE`, `$HF_HOME/hub`, or
/// `~/.cache/huggingface/hub`). Nothing is downloaded.
pub fn resolve_source(spec: &Path) -> Result<ClipSource> {
    if spec.is_dir() {
        if spec.join("config.json").is_file() {
            return Ok(ClipSource::HfFolder(spec.to_path_buf()));
        }
        let latest = spec.join("checkpoints").join("latest.safetensors");
        if latest.is_file() {
            return Ok(ClipSource::File(latest));
        }
        bail!(
            "{} is a folder without config.json (a HuggingFace CLIP folder has config.json + model.safetensors) and without checkpoints/latest.safetensors (a clipgan pretraining run)",
            spec.display()
        );
    }
    if spec.is_file() {
        return Ok(ClipSource::File(spec.to_path_buf()));
    }
    let s = spec.to_string_lossy();
    let looks_like_hub = !s.starts_with('/') && !s.starts_with('.') && s.matches('/').count() == 1 && !s.ends_with(".safetensors");
    if !looks_like_hub {
        bail!("{} does not exist", spec.display());
    }
    let cache_dirs: Vec<PathBuf> = [
        std::env::var_os("HF_HUB_CACHE").map(PathBuf::from),
        std::env::var_os("HF_HOME").map(|h| PathBuf::from(h).join("hub")),
        std::env::var_os("HOME").map(|h| PathBuf::from(h).join(".cache/huggingface/hub")),
    ]
    .into_iter()
    .flatten()
    .collect();
    let repo = format!("models--{}", s.replace('/', "--"));
    for dir in &cache_dirs {
        let snapshots = dir.join(&repo).join("snapshots");
        // Prefer the snapshot that refs/main points at, else any complete one.
        let main = std::fs::read_to_string(dir.join(&repo).join("refs/main")).ok().map(|h| snapshots.join(h.trim()));
        let mut candidates: Vec<PathBuf> = main.into_iter().collect();
        if let Ok(rd) = std::fs::read_dir(&snapshots) {
            let mut others: Vec<PathBuf> = rd.flatten().map(|e| e.path()).collect();
            others.sort();
            candidates.extend(others);
        }
        if let Some(found) = candidates.into_iter().find(|c| c.join("config.json").is_file() && c.join("model.safetensors").is_file()) {
            return Ok(ClipSource::HfFolder(found));
        }
    }
    bail!(
        "{s:?} is not a local path and is not in the HuggingFace cache (looked in {}). Download config.json and model.safetensors of https://huggingface.co/{s} (e.g. `huggingface-cli download {s} config.json model.safetensors`) on a machine with network access, then copy the cache or the folder here and point CLIPGAN.CLIP_WEIGHTS (or TRAIN.CLIP_MODEL_BASE) at it",
        cache_dirs.iter().map(|d| d.join(&repo).display().to_string()).collect::<Vec<_>>().join(", ")
    )
}

/// Whether a tensor name of a HuggingFace file is a buffer rather than a parameter
/// (older transformers saved `position_ids`); such entries are checked and skipped.
fn is_hf_buffer(name: &str) -> bool {
    name == "text_model.embeddings.position_ids" || name == "vision_model.embeddings.position_ids"
}

/// Load CLIP from a HuggingFace folder, a `.safetensors` file (HuggingFace weights with
/// the architecture of `preset` unless a `config.json` sits beside it, or a clipgan
/// checkpoint that names its own architecture), a pretraining run folder, or a hub name
/// in the local HuggingFace cache. Every tensor of the file must be a parameter of the
/// model and every parameter must be in the file, with its shape; the only exception is
/// `linear_subr`, which HuggingFace files do not have: it is then freshly initialised
/// (from the current libtorch seed) and `clip.subr_loaded` is false. Use
/// [`load_finetuned_clip`] where a trained `linear_subr` is required.
pub fn load_clip(path: &Path, preset: &str, device: Device) -> Result<(nn::VarStore, Clip, ClipConfig)> {
    let source = resolve_source(path)?;
    let (file, cfg_from_json) = match &source {
        ClipSource::HfFolder(dir) => {
            let weights = dir.join("model.safetensors");
            if !weights.is_file() {
                if dir.join("pytorch_model.bin").is_file() {
                    bail!("{} has pytorch_model.bin but no model.safetensors: convert it (e.g. with transformers: `CLIPModel.from_pretrained(dir).save_pretrained(dir, safe_serialization=True)`)", dir.display());
                }
                bail!("{} has no model.safetensors", dir.display());
            }
            (weights, Some(ClipConfig::from_hf_json(&dir.join("config.json"))?))
        }
        ClipSource::File(f) => {
            let beside = f.with_file_name("config.json");
            (f.clone(), if beside.is_file() { Some(ClipConfig::from_hf_json(&beside)?) } else { None })
        }
    };
    let header = checkpoint::read_header(&file)?;
    let is_clipgan = header.meta.get("format").is_some_and(|f| f == checkpoint::FORMAT);
    let (cfg, prefix) = if is_clipgan {
        let text = header.meta.get(CONFIG_META_KEY).with_context(|| {
            format!(
                "{} is a clipgan checkpoint without CLIP weights (no `{CONFIG_META_KEY}` metadata): is it a GAN checkpoint?",
                file.display()
            )
        })?;
        let cfg =
            ClipConfig::from_hf_json_str(text).with_context(|| format!("{}: the stored CLIP architecture is invalid", file.display()))?;
        (cfg, CHECKPOINT_PREFIX)
    } else {
        let cfg = match cfg_from_json {
            Some(c) => c,
            None => ClipConfig::preset(preset)
                .with_context(|| format!("{} has no config.json beside it, so the preset names the architecture", file.display()))?,
        };
        (cfg, "")
    };
    let (tensors, _) = if is_clipgan {
        checkpoint::load(&file, Device::Cpu).map(|c| (c.tensors, c.meta))?
    } else {
        checkpoint::read_safetensors(&file, Device::Cpu)?
    };
    let mut map: HashMap<String, Tensor> = HashMap::new();
    for (name, t) in tensors {
        if !name.starts_with(prefix) {
            continue; // optimizer state and other job data in clipgan checkpoints
        }
        if prefix.is_empty() && is_hf_buffer(&name) {
            let n = t.size().last().copied().unwrap_or(0);
            let want = Tensor::arange(n, (Kind::Int64, Device::Cpu)).view([1, n]);
            if t.size() != [1, n] || t.to_kind(Kind::Int64) != want {
                bail!("{}: {name} is not the positions 0..{n} that HuggingFace stores there", file.display());
            }
            continue;
        }
        map.insert(name, t);
    }
    let vs = nn::VarStore::new(device);
    let mut clip = Clip::new(vs.root(), &cfg);
    let allow_subr_missing = !is_clipgan;
    let missing =
        checkpoint::load_var_store(&vs, &map, prefix, |n| allow_subr_missing && n.starts_with(SUBR_PREFIX)).with_context(|| {
            let origin = if is_clipgan {
                "the architecture stored in the checkpoint".to_string()
            } else if let ClipSource::HfFolder(d) = &source {
                format!("{}", d.join("config.json").display())
            } else {
                format!("CLIP preset {preset:?} (put the checkpoint's config.json beside it, or set CLIPGAN.CLIP_PRESET)")
            };
            format!("{} does not fit {origin}", file.display())
        })?;
    clip.subr_loaded = missing.is_empty();
    Ok((vs, clip, cfg))
}

/// [`load_clip`] for users of the finetuned model (GAN training, evaluation): the file
/// must carry a trained `linear_subr` (a clipgan pretraining checkpoint or snapshot),
/// never a random one.
pub fn load_finetuned_clip(path: &Path, device: Device) -> Result<(nn::VarStore, Clip, ClipConfig)> {
    let (vs, clip, cfg) = load_clip(path, "vit-b-32", device)?;
    if !clip.subr_loaded {
        bail!(
            "{} holds CLIP weights without linear_subr: it is not a finetuned CLIP. Use a checkpoint of `clipgan pretrain` (checkpoints/latest.safetensors or a snapshot)",
            path.display()
        );
    }
    Ok((vs, clip, cfg))
}
