//! Checkpoints: one safetensors file holding every tensor a job needs to resume (model
//! weights under their VarStore names, optimizer moments, ...) behind name prefixes, and
//! string metadata (format, job, epoch, step, config hash, ...), with a CRC-32 of the
//! tensor data.
//!
//! Writes are atomic (temporary file, fsync, rename), so a kill or a full disk never
//! leaves a half-written checkpoint under the real name. Loading validates the header,
//! the file's length (truncation) and the checksum (corruption), and every error names
//! the file. The file is plain safetensors: HuggingFace tools (and `safetensors` in
//! Python) read it.
use crate::util::fsx;
use anyhow::{bail, Context, Result};
use safetensors::tensor::{Dtype, Metadata, TensorInfo};
use std::collections::{BTreeMap, HashMap, HashSet};
use std::io::{BufWriter, Read, Seek, SeekFrom, Write};
use std::path::Path;
use tch::{nn, Device, Kind, Tensor};

/// Named tensors, in order (a checkpoint's content, a parameter group, ...).
pub type NamedTensors = Vec<(String, Tensor)>;
/// One tensor of a safetensors header: name, dtype, shape, byte range in the data section.
pub type TensorEntry = (String, Dtype, Vec<usize>, (usize, usize));

/// Value of the `format` metadata key in every clipgan checkpoint.
pub const FORMAT: &str = "clipgan-checkpoint";
/// Version of the layout; bumped on changes old readers cannot handle.
pub const FORMAT_VERSION: u32 = 1;
const CHECKSUM_KEY: &str = "checksum";

/// A checkpoint in memory: named tensors (any device) and string metadata.
#[derive(Debug, Default)]
pub struct Checkpoint {
    pub meta: BTreeMap<String, String>,
    pub tensors: Vec<(String, Tensor)>,
}

impl Checkpoint {
    /// An empty checkpoint of `job` (`pretrain`, `train`, ...) with the format keys set.
    pub fn new(job: &str) -> Checkpoint {
        let mut meta = BTreeMap::new();
        meta.insert("format".into(), FORMAT.into());
        meta.insert("format_version".into(), FORMAT_VERSION.to_string());
        meta.insert("job".into(), job.into());
        meta.insert("clipgan_version".into(), env!("CARGO_PKG_VERSION").into());
        Checkpoint { meta, tensors: Vec::new() }
    }

    pub fn set_meta(&mut self, key: &str, value: impl ToString) {
        self.meta.insert(key.to_string(), value.to_string());
    }

    /// A metadata value, or an error naming the key.
    pub fn meta_str(&self, key: &str) -> Result<&str> {
        self.meta.get(key).map(String::as_str).with_context(|| format!("the checkpoint has no `{key}` entry"))
    }

    /// A metadata value parsed as `T`, or an error naming the key and the value.
    pub fn meta_parse<T: std::str::FromStr>(&self, key: &str) -> Result<T> {
        let s = self.meta_str(key)?;
        s.parse().map_err(|_| anyhow::anyhow!("the checkpoint's `{key}` entry is not valid: {s:?}"))
    }

    pub fn push(&mut self, name: impl Into<String>, tensor: Tensor) {
        self.tensors.push((name.into(), tensor));
    }

    /// Add every variable of `vs` as `{prefix}{name}` (sorted by name).
    pub fn push_var_store(&mut self, prefix: &str, vs: &nn::VarStore) {
        let mut vars: Vec<(String, Tensor)> = vs.variables().into_iter().collect();
        vars.sort_by(|a, b| a.0.cmp(&b.0));
        for (name, t) in vars {
            self.tensors.push((format!("{prefix}{name}"), t.detach()));
        }
    }

    /// The tensors by name (consumes the checkpoint's tensor list).
    pub fn tensor_map(&mut self) -> HashMap<String, Tensor> {
        std::mem::take(&mut self.tensors).into_iter().collect()
    }

    /// Whether this is a clipgan checkpoint (not a plain safetensors file).
    pub fn is_clipgan(&self) -> bool {
        self.meta.get("format").is_some_and(|f| f == FORMAT)
    }
}

/// Copy `{prefix}{name}` tensors into the variables of `vs`. Every variable must be
/// there with its shape, except those for which `may_be_missing(name)` holds (they keep
/// their values and are returned); a tensor under `prefix` that matches no variable is
/// an error. The error lists every missing, unexpected and mis-shaped name.
pub fn load_var_store(
    vs: &nn::VarStore,
    tensors: &HashMap<String, Tensor>,
    prefix: &str,
    may_be_missing: impl Fn(&str) -> bool,
) -> Result<Vec<String>> {
    let vars = vs.variables();
    let mut missing = Vec::new();
    let mut allowed_missing = Vec::new();
    let mut misshaped = Vec::new();
    let mut used = HashSet::new();
    let mut names: Vec<&String> = vars.keys().collect();
    names.sort();
    for name in names {
        let key = format!("{prefix}{name}");
        match tensors.get(&key) {
            None if may_be_missing(name) => allowed_missing.push(name.clone()),
            None => missing.push(key),
            Some(t) => {
                let want = vars[name].size();
                if t.size() != want {
                    misshaped.push(format!("{key}: {:?} in the file, {want:?} in the model", t.size()));
                }
                used.insert(key);
            }
        }
    }
    let mut unexpected: Vec<&String> = tensors.keys().filter(|k| k.starts_with(prefix) && !used.contains(*k)).collect();
    unexpected.sort();
    if !missing.is_empty() || !misshaped.is_empty() || !unexpected.is_empty() {
        bail!(
            "the weights do not match the model:{}{}{}",
            name_list("missing", &missing),
            name_list("unexpected", &unexpected),
            name_list("wrong shape", &misshaped)
        );
    }
    tch::no_grad(|| {
        for (name, var) in &vars {
            if let Some(t) = tensors.get(&format!("{prefix}{name}")) {
                var.shallow_clone().copy_(t);
            }
        }
    });
    Ok(allowed_missing)
}

fn dtype_of(kind: Kind) -> Result<Dtype> {
    Ok(match kind {
        Kind::Bool => Dtype::BOOL,
        Kind::Uint8 => Dtype::U8,
        Kind::Int8 => Dtype::I8,
        Kind::Int16 => Dtype::I16,
        Kind::Int => Dtype::I32,
        Kind::Int64 => Dtype::I64,
        Kind::Half => Dtype::F16,
        Kind::BFloat16 => Dtype::BF16,
        Kind::Float => Dtype::F32,
        Kind::Double => Dtype::F64,
        other => bail!("tensors of type {other:?} cannot be stored in a checkpoint"),
    })
}

fn kind_of(dtype: Dtype) -> Result<Kind> {
    Ok(match dtype {
        Dtype::BOOL => Kind::Bool,
        Dtype::U8 => Kind::Uint8,
        Dtype::I8 => Kind::Int8,
        Dtype::I16 => Kind::Int16,
        Dtype::I32 => Kind::Int,
        Dtype::I64 => Kind::Int64,
        Dtype::F16 => Kind::Half,
        Dtype::BF16 => Kind::BFloat16,
        Dtype::F32 => Kind::Float,
        Dtype::F64 => Kind::Double,
        other => bail!("tensors of type {other:?} are not supported"),
    })
}

/// The bytes of a contiguous CPU tensor.
fn bytes_of(t: &Tensor) -> &[u8] {
    let n = t.numel() * t.kind().elt_size_in_bytes();
    if n == 0 {
        return &[];
    }
    // SAFETY: `t` is a contiguous CPU tensor (checked by the callers' preparation) that
    // owns at least numel * element-size bytes at data_ptr, and it outlives the slice.
    unsafe { std::slice::from_raw_parts(t.data_ptr() as *const u8, n) }
}

/// Remove the temporary files of checkpoint writes that never finished (a worker killed
/// mid-write) from `dir`; the checkpoints themselves are never touched.
pub fn remove_stale_temp_files(dir: &Path) {
    if let Ok(entries) = std::fs::read_dir(dir) {
        for e in entries.flatten() {
            let name = e.file_name().to_string_lossy().into_owned();
            if name.starts_with('.') && name.contains(".safetensors.tmp.") {
                let _ = std::fs::remove_file(e.path());
            }
        }
    }
}

/// Write `ckpt` to `path` atomically, with a checksum of the tensor data.
pub fn save(path: &Path, ckpt: &Checkpoint) -> Result<()> {
    let mut seen = HashSet::new();
    let mut prepared = Vec::with_capacity(ckpt.tensors.len());
    let mut infos = Vec::with_capacity(ckpt.tensors.len());
    let mut offset = 0usize;
    let mut crc = crc32fast::Hasher::new();
    for (name, t) in &ckpt.tensors {
        if !seen.insert(name.as_str()) {
            bail!("cannot write {}: the tensor name {name:?} is used twice", path.display());
        }
        let cpu = t.detach().to_device(Device::Cpu).contiguous();
        let dtype = dtype_of(cpu.kind()).with_context(|| format!("cannot write {}: tensor {name}", path.display()))?;
        let n = cpu.numel() * cpu.kind().elt_size_in_bytes();
        crc.update(bytes_of(&cpu));
        let shape = cpu.size().iter().map(|&d| d as usize).collect();
        infos.push((name.clone(), TensorInfo { dtype, shape, data_offsets: (offset, offset + n) }));
        offset += n;
        prepared.push(cpu);
    }
    let mut meta = ckpt.meta.clone();
    meta.insert(CHECKSUM_KEY.into(), format!("crc32:{:08x}", crc.finalize()));
    // Written as a JSON object with sorted keys (serde_json's map), so that the same
    // content always gives the same bytes; Metadata::new validates the layout first.
    let mut object = serde_json::Map::new();
    object.insert("__metadata__".into(), serde_json::to_value(&meta)?);
    for (name, info) in &infos {
        object.insert(name.clone(), serde_json::to_value(info)?);
    }
    Metadata::new(Some(meta.into_iter().collect()), infos)
        .with_context(|| format!("cannot write {}: bad tensor layout", path.display()))?;
    let mut header = serde_json::to_vec(&object)?;
    header.resize(header.len().next_multiple_of(8), b' ');
    fsx::atomic_write_with(path, |f| {
        let mut w = BufWriter::with_capacity(1 << 20, f);
        w.write_all(&(header.len() as u64).to_le_bytes())?;
        w.write_all(&header)?;
        for t in &prepared {
            w.write_all(bytes_of(t))?;
        }
        w.flush()
    })
}

/// A safetensors file's header: its metadata and tensor layout, read without the data.
pub struct Header {
    pub meta: BTreeMap<String, String>,
    /// (name, dtype, shape, byte range in the data section), in file order.
    pub tensors: Vec<TensorEntry>,
    /// Where the data section starts in the file.
    pub data_start: u64,
    pub data_len: usize,
}

/// Read and validate a safetensors header (also checks that the file is as long as the
/// header says, so a truncated file is refused here).
pub fn read_header(path: &Path) -> Result<Header> {
    let mut f = std::fs::File::open(path).with_context(|| format!("cannot open {}", path.display()))?;
    read_header_from(&mut f, path)
}

fn read_header_from(f: &mut std::fs::File, path: &Path) -> Result<Header> {
    let file_len = f.metadata().with_context(|| format!("cannot read {}", path.display()))?.len();
    let bad = |why: String| anyhow::anyhow!("{} is not a valid safetensors file: {why}", path.display());
    if file_len < 8 {
        return Err(bad(format!("it is {file_len} bytes long (empty or truncated)")));
    }
    let mut n = [0u8; 8];
    f.read_exact(&mut n).with_context(|| format!("cannot read {}", path.display()))?;
    let n = u64::from_le_bytes(n);
    if n > 100_000_000 || 8 + n > file_len {
        return Err(bad(format!("its header claims {n} bytes but the file has {file_len} (truncated or not safetensors)")));
    }
    let mut hbytes = vec![0u8; n as usize];
    f.read_exact(&mut hbytes).with_context(|| format!("cannot read {}", path.display()))?;
    let md: Metadata = serde_json::from_slice(&hbytes).map_err(|e| bad(format!("its header is damaged ({e})")))?;
    let data_len = md.data_len();
    let expected = 8 + n + data_len as u64;
    if file_len != expected {
        return Err(bad(if file_len < expected {
            format!("the file is truncated: {file_len} bytes, the header describes {expected}")
        } else {
            format!("the file has {} bytes more than its header describes", file_len - expected)
        }));
    }
    let meta = md.metadata().clone().unwrap_or_default().into_iter().collect();
    let map = md.tensors();
    let tensors = md
        .offset_keys()
        .into_iter()
        .map(|name| {
            let info = map[&name];
            (name.clone(), info.dtype, info.shape.clone(), info.data_offsets)
        })
        .collect();
    Ok(Header { meta, tensors, data_start: 8 + n, data_len })
}

/// Read every tensor of a safetensors file onto `device`, with its metadata. When the
/// file carries a clipgan checksum it is verified.
pub fn read_safetensors(path: &Path, device: Device) -> Result<(NamedTensors, BTreeMap<String, String>)> {
    let mut f = std::fs::File::open(path).with_context(|| format!("cannot open {}", path.display()))?;
    let header = read_header_from(&mut f, path)?;
    f.seek(SeekFrom::Start(header.data_start)).with_context(|| format!("cannot read {}", path.display()))?;
    let mut reader = std::io::BufReader::with_capacity(1 << 20, f);
    let mut crc = crc32fast::Hasher::new();
    let mut out = Vec::with_capacity(header.tensors.len());
    let mut buf = Vec::new();
    for (name, dtype, shape, (s, e)) in &header.tensors {
        buf.resize(e - s, 0);
        reader.read_exact(&mut buf).with_context(|| format!("cannot read tensor {name} of {}", path.display()))?;
        crc.update(&buf);
        let kind = kind_of(*dtype).with_context(|| format!("{}: tensor {name}", path.display()))?;
        let dims: Vec<i64> = shape.iter().map(|&d| d as i64).collect();
        let t = Tensor::f_from_data_size(&buf, &dims, kind).with_context(|| format!("{}: tensor {name}", path.display()))?;
        out.push((name.clone(), t.to_device(device)));
    }
    if let Some(want) = header.meta.get(CHECKSUM_KEY) {
        let got = format!("crc32:{:08x}", crc.finalize());
        if *want != got {
            bail!("{} is corrupt: its tensor data does not match its checksum ({got}, expected {want})", path.display());
        }
    }
    Ok((out, header.meta))
}

/// Load a clipgan checkpoint (written by [`save`]) onto `device`. A plain safetensors
/// file without clipgan's format key, a newer format, a damaged, truncated or corrupt
/// file are each refused with an error naming the file.
pub fn load(path: &Path, device: Device) -> Result<Checkpoint> {
    let header = read_header(path)?;
    check_format(path, &header.meta)?;
    let (tensors, meta) = read_safetensors(path, device)?;
    Ok(Checkpoint { meta, tensors })
}

/// The metadata of a clipgan checkpoint, without reading its tensors.
pub fn read_meta(path: &Path) -> Result<BTreeMap<String, String>> {
    let header = read_header(path)?;
    check_format(path, &header.meta)?;
    Ok(header.meta)
}

fn check_format(path: &Path, meta: &BTreeMap<String, String>) -> Result<()> {
    match meta.get("format") {
        Some(f) if f == FORMAT => {}
        _ => bail!("{} is not a clipgan checkpoint (no `format: {FORMAT}` metadata)", path.display()),
    }
    let version: u32 = meta.get("format_version").and_then(|v| v.parse().ok()).unwrap_or(0);
    if version == 0 || version > FORMAT_VERSION {
        bail!(
            "{} is a clipgan checkpoint of format version {} which this clipgan (reads {FORMAT_VERSION}) does not know",
            path.display(),
            meta.get("format_version").map(String::as_str).unwrap_or("?")
        );
    }
    if !meta.contains_key(CHECKSUM_KEY) {
        bail!("{} has no checksum: it was not written by clipgan, or its header was damaged", path.display());
    }
    Ok(())
}

/// A short hash of a text (the resolved config), stored in checkpoints to notice a
/// resume under a changed config.
pub fn text_hash(text: &str) -> String {
    format!("{:08x}", crc32fast::hash(text.as_bytes()))
}

/// ` missing (3): a, b, c` (at most 10 names shown), or nothing for an empty list.
pub(crate) fn name_list<S: std::fmt::Display>(what: &str, names: &[S]) -> String {
    if names.is_empty() {
        return String::new();
    }
    let shown: Vec<String> = names.iter().take(10).map(|n| n.to_string()).collect();
    let more = if names.len() > 10 { format!(", ... ({} more)", names.len() - 10) } else { String::new() };
    format!("\n  {what} ({}): {}{more}", names.len(), shown.join(", "))
}
