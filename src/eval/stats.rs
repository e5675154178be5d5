//! FID statistics of a path: a folder of images (features through the FID Inception,
//! cached) or a saved `.npz` with `mu` and `sigma` (pytorch-fid's format).
//!
//! Cache: `<home>/.clipgan/fid-stats/<hash>.npz`, a pytorch-fid-readable npz plus a
//! `fingerprint` entry; the hash names the folder and `--dims`, the fingerprint covers
//! every image's relative path, size and modification time and the weights file's
//! path, size and modification time, so adding, removing or rewriting an image (or
//! changing the weights) recomputes the statistics.
use super::folders;
use super::frechet::Stats;
use super::inception::FidInception;
use anyhow::{bail, Context, Result};
use std::hash::Hasher;
use std::path::{Path, PathBuf};
use tch::{Device, Kind, Tensor};

/// Read `mu` and `sigma` from a pytorch-fid `.npz`.
pub fn read_npz(path: &Path) -> Result<Stats> {
    if !path.is_file() {
        bail!("statistics file {} does not exist", path.display());
    }
    let entries = Tensor::read_npz(path).with_context(|| format!("{}: not a readable .npz", path.display()))?;
    let get = |name: &str| {
        entries
            .iter()
            .find(|(n, _)| n == name)
            .map(|(_, t)| t.to_kind(Kind::Double))
            .with_context(|| format!("{}: no '{name}' array (pytorch-fid statistics hold mu and sigma)", path.display()))
    };
    let (mu, sigma) = (get("mu")?, get("sigma")?);
    let d = mu.size();
    if d.len() != 1 || sigma.size() != [d[0], d[0]] {
        bail!("{}: mu of shape {:?} and sigma of shape {:?} do not fit", path.display(), mu.size(), sigma.size());
    }
    Ok(Stats { mu, sigma })
}

/// Write statistics as a pytorch-fid `.npz` (atomically), with an optional fingerprint.
pub fn write_npz(path: &Path, stats: &Stats, fingerprint: Option<u64>) -> Result<()> {
    if let Some(parent) = path.parent() {
        crate::util::fsx::create_dir_all(parent)?;
    }
    let tmp = crate::util::fsx::temp_path_for(path);
    let mut items = vec![("mu", stats.mu.shallow_clone()), ("sigma", stats.sigma.shallow_clone())];
    if let Some(f) = fingerprint {
        items.push(("fingerprint", Tensor::from_slice(&[f as i64])));
    }
    Tensor::write_npz(&items, &tmp).with_context(|| format!("cannot write {}", tmp.display()))?;
    std::fs::rename(&tmp, path).with_context(|| format!("cannot rename {} to {}", tmp.display(), path.display()))?;
    Ok(())
}

fn file_id(h: &mut impl Hasher, path: &Path) -> Result<()> {
    let m = std::fs::metadata(path).with_context(|| format!("cannot stat {}", path.display()))?;
    h.write_u64(m.len());
    let t = m.modified().ok().and_then(|t| t.duration_since(std::time::UNIX_EPOCH).ok()).unwrap_or_default();
    h.write_u128(t.as_nanos());
    Ok(())
}

/// Fingerprint of a folder's images (relative paths, sizes, mtimes) and the weights.
pub fn fingerprint(dir: &Path, images: &[PathBuf], weights: &Path, dims: i64) -> Result<u64> {
    // DefaultHasher with fixed keys (SipHash 1-3, zero keys): stable across runs.
    #[allow(deprecated)]
    let mut h = std::hash::SipHasher::new();
    h.write_i64(dims);
    h.write(weights.to_string_lossy().as_bytes());
    file_id(&mut h, weights)?;
    for p in images {
        h.write(p.strip_prefix(dir).unwrap_or(p).to_string_lossy().as_bytes());
        h.write_u8(0);
        file_id(&mut h, p)?;
    }
    Ok(h.finish() >> 1)
}

/// Cache file for (folder, dims).
pub fn cache_path(dir: &Path, dims: i64) -> PathBuf {
    let abs = std::path::absolute(dir).unwrap_or_else(|_| dir.to_path_buf());
    #[allow(deprecated)]
    let mut h = std::hash::SipHasher::new();
    h.write(abs.to_string_lossy().as_bytes());
    h.write_i64(dims);
    crate::home::state_dir().join("fid-stats").join(format!("{:016x}.npz", h.finish()))
}

/// Where statistics came from (for messages).
#[derive(Debug, PartialEq, Eq)]
pub enum Source {
    File,
    Cache,
    Computed { images: usize },
}

pub struct Extractor<'a> {
    pub net: &'a FidInception,
    pub weights: &'a Path,
    pub dims: i64,
    pub batch_size: usize,
    pub device: Device,
    /// Use and write the per-folder cache.
    pub cache: bool,
}

impl Extractor<'_> {
    /// Statistics of `path`: an `.npz` file as is, a folder through the network (cached).
    pub fn stats(&self, path: &Path) -> Result<(Stats, Source)> {
        if path.is_file() {
            return Ok((read_npz(path)?, Source::File));
        }
        if !path.exists() {
            bail!("{} does not exist (expected a folder of images or a .npz of statistics)", path.display());
        }
        let images = folders::list_images(path)?;
        if images.len() < 2 {
            bail!("{} holds {} image(s) (png/jpg/jpeg, searched recursively); statistics need at least 2", path.display(), images.len());
        }
        let fp = fingerprint(path, &images, self.weights, self.dims)?;
        let cache = cache_path(path, self.dims);
        if self.cache && cache.is_file() {
            if let Ok(entries) = Tensor::read_npz(&cache) {
                let hit = entries.iter().any(|(n, t)| n == "fingerprint" && t.int64_value(&[0]) as u64 == fp);
                if hit {
                    if let Ok(s) = read_npz(&cache) {
                        return Ok((s, Source::Cache));
                    }
                }
            }
        }
        let (feats, _) = folders::extract(self.net, &images, self.dims, false, self.batch_size, self.device, |_, _| {})
            .with_context(|| format!("extracting features of {}", path.display()))?;
        let stats = Stats::from_features(&feats)?;
        if self.cache {
            write_npz(&cache, &stats, Some(fp))?;
        }
        Ok((stats, Source::Computed { images: images.len() }))
    }
}
