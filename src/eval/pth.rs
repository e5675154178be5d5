//! Reading a PyTorch state_dict saved by `torch.save` (the zip format PyTorch writes
//! since 1.6: `<name>/data.pkl` + one raw storage per tensor under `<name>/data/<key>`)
//! without Python: a stored-entries zip reader and the subset of the pickle machine a
//! state_dict uses (OrderedDict, `torch._utils._rebuild_tensor_v2`, persistent storage
//! ids). Enough for `pt_inception-2015-12-05-6726825d.pth`; anything else is an error
//! that names the file and the unsupported construct.
use anyhow::{anyhow, bail, Context, Result};
use std::collections::HashMap;
use std::path::Path;
use tch::{Kind, Tensor};

struct ZipEntry {
    offset: usize,
    size: usize,
    method: u16,
}

fn u16le(b: &[u8], at: usize) -> Result<u16> {
    b.get(at..at + 2).map(|s| u16::from_le_bytes([s[0], s[1]])).ok_or_else(|| anyhow!("truncated zip"))
}
fn u32le(b: &[u8], at: usize) -> Result<u32> {
    b.get(at..at + 4).map(|s| u32::from_le_bytes(s.try_into().unwrap())).ok_or_else(|| anyhow!("truncated zip"))
}
fn u64le(b: &[u8], at: usize) -> Result<u64> {
    b.get(at..at + 8).map(|s| u64::from_le_bytes(s.try_into().unwrap())).ok_or_else(|| anyhow!("truncated zip"))
}

/// Central directory of a zip (zip64 sizes and offsets included).
fn zip_entries(b: &[u8]) -> Result<HashMap<String, ZipEntry>> {
    let search_from = b.len().saturating_sub(65_557);
    let eocd = (search_from..b.len().saturating_sub(21))
        .rev()
        .find(|&i| b[i..i + 4] == [0x50, 0x4b, 0x05, 0x06])
        .ok_or_else(|| anyhow!("not a zip archive (no end of central directory)"))?;
    let mut count = u16le(b, eocd + 10)? as u64;
    let mut cd = u32le(b, eocd + 16)? as u64;
    if (count == 0xFFFF || cd == 0xFFFF_FFFF) && eocd >= 20 && b[eocd - 20..eocd - 16] == [0x50, 0x4b, 0x06, 0x07] {
        let z64 = u64le(b, eocd - 12)? as usize;
        count = u64le(b, z64 + 32)?;
        cd = u64le(b, z64 + 48)?;
    }
    let mut at = cd as usize;
    let mut out = HashMap::new();
    for _ in 0..count {
        if u32le(b, at)? != 0x0201_4b50 {
            bail!("corrupt zip central directory");
        }
        let method = u16le(b, at + 10)?;
        let mut size = u32le(b, at + 20)? as u64;
        let name_len = u16le(b, at + 28)? as usize;
        let extra_len = u16le(b, at + 30)? as usize;
        let comment_len = u16le(b, at + 32)? as usize;
        let mut local = u32le(b, at + 42)? as u64;
        let name = String::from_utf8_lossy(b.get(at + 46..at + 46 + name_len).ok_or_else(|| anyhow!("truncated zip"))?).into_owned();
        // zip64 extra field: the 0xFFFFFFFF fields, in order (uncompressed, compressed, offset).
        let mut e = at + 46 + name_len;
        let end = e + extra_len;
        while e + 4 <= end {
            let (id, len) = (u16le(b, e)?, u16le(b, e + 2)? as usize);
            if id == 1 {
                let mut f = e + 4;
                if size == 0xFFFF_FFFF {
                    size = u64le(b, f)?;
                    f += 16; // uncompressed then compressed: stored, so equal
                }
                if local == 0xFFFF_FFFF {
                    local = u64le(b, f)?;
                }
            }
            e += 4 + len;
        }
        let l = local as usize;
        if u32le(b, l)? != 0x0403_4b50 {
            bail!("corrupt zip local header for {name}");
        }
        let data = l + 30 + u16le(b, l + 26)? as usize + u16le(b, l + 28)? as usize;
        out.insert(name, ZipEntry { offset: data, size: size as usize, method });
        at += 46 + name_len + extra_len + comment_len;
    }
    Ok(out)
}

// Payloads of scalars are kept for error messages ({:?}), not read otherwise.
#[allow(dead_code)]
#[derive(Clone, Debug)]
enum V {
    Mark,
    None,
    Bool(bool),
    Int(i64),
    Float(f64),
    Str(String),
    Bytes(Vec<u8>),
    Tuple(Vec<V>),
    List(Vec<V>),
    Dict(Vec<(V, V)>),
    Global(String),
    Storage { key: String, kind: Kind },
    Tensor { key: String, kind: Kind, offset: i64, size: Vec<i64>, stride: Vec<i64> },
    Other,
}

fn storage_kind(global: &str) -> Result<Kind> {
    Ok(match global.rsplit('.').next().unwrap_or("") {
        "FloatStorage" => Kind::Float,
        "DoubleStorage" => Kind::Double,
        "HalfStorage" => Kind::Half,
        "BFloat16Storage" => Kind::BFloat16,
        "LongStorage" => Kind::Int64,
        "IntStorage" => Kind::Int,
        "ByteStorage" => Kind::Uint8,
        "BoolStorage" => Kind::Bool,
        other => bail!("unsupported storage type {other}"),
    })
}

fn ints(v: &V) -> Result<Vec<i64>> {
    match v {
        V::Tuple(x) | V::List(x) => x.iter().map(|i| if let V::Int(i) = i { Ok(*i) } else { bail!("expected an int tuple") }).collect(),
        _ => bail!("expected an int tuple"),
    }
}

fn reduce(f: V, args: V) -> Result<V> {
    let V::Global(name) = f else { return Ok(V::Other) };
    let V::Tuple(a) = args else { bail!("REDUCE of {name} without an argument tuple") };
    Ok(match name.as_str() {
        "collections.OrderedDict" => V::Dict(Vec::new()),
        "torch._utils._rebuild_tensor_v2" | "torch._utils._rebuild_tensor" => {
            let V::Storage { key, kind } = a.first().cloned().unwrap_or(V::None) else { bail!("{name}: first argument is not a storage") };
            let V::Int(offset) = a.get(1).cloned().unwrap_or(V::None) else { bail!("{name}: bad storage offset") };
            V::Tensor { key, kind, offset, size: ints(a.get(2).unwrap_or(&V::None))?, stride: ints(a.get(3).unwrap_or(&V::None))? }
        }
        "torch._utils._rebuild_parameter" => a.into_iter().next().unwrap_or(V::None),
        _ => V::Other,
    })
}

/// Run the pickle machine over `data` (a state_dict), returning its (name, tensor info) items.
fn unpickle(data: &[u8]) -> Result<V> {
    // Bounded before running: copies and drops of `V` recurse over nesting, and the memo
    // copies a value at each reference.
    crate::util::pickle_shape::check(data).map_err(|e| anyhow!("{e}"))?;
    let mut stack: Vec<V> = Vec::new();
    let mut memo: HashMap<u64, V> = HashMap::new();
    let mut i = 0usize;
    let take = |i: &mut usize, n: usize| -> Result<&[u8]> {
        let s = data.get(*i..*i + n).ok_or_else(|| anyhow!("truncated pickle"))?;
        *i += n;
        Ok(s)
    };
    let pop_mark = |stack: &mut Vec<V>| -> Result<Vec<V>> {
        let m = stack.iter().rposition(|v| matches!(v, V::Mark)).ok_or_else(|| anyhow!("pickle: MARK expected"))?;
        let items = stack.split_off(m + 1);
        stack.pop();
        Ok(items)
    };
    let line = |i: &mut usize| -> Result<String> {
        let rest = data.get(*i..).unwrap_or(&[]);
        let n = rest.iter().position(|&c| c == b'\n').ok_or_else(|| anyhow!("truncated pickle"))?;
        *i += n + 1;
        Ok(String::from_utf8_lossy(&rest[..n]).into_owned())
    };
    loop {
        let op = *data.get(i).ok_or_else(|| anyhow!("pickle without STOP"))?;
        i += 1;
        match op {
            0x80 => i += 1, // PROTO
            0x95 => i += 8, // FRAME
            b'.' => return stack.pop().ok_or_else(|| anyhow!("empty pickle")),
            b'(' => stack.push(V::Mark),
            b'N' => stack.push(V::None),
            0x88 => stack.push(V::Bool(true)),
            0x89 => stack.push(V::Bool(false)),
            b'}' => stack.push(V::Dict(Vec::new())),
            b']' => stack.push(V::List(Vec::new())),
            b')' => stack.push(V::Tuple(Vec::new())),
            b'K' => stack.push(V::Int(take(&mut i, 1)?[0] as i64)),
            b'M' => stack.push(V::Int(u16::from_le_bytes(take(&mut i, 2)?.try_into()?) as i64)),
            b'J' => stack.push(V::Int(i32::from_le_bytes(take(&mut i, 4)?.try_into()?) as i64)),
            0x8a => {
                let n = take(&mut i, 1)?[0] as usize;
                let b = take(&mut i, n)?;
                let mut v: i64 = 0;
                for (k, byte) in b.iter().enumerate().take(8) {
                    v |= (*byte as i64) << (8 * k);
                }
                if n > 0 && n < 8 && b[n - 1] & 0x80 != 0 {
                    v -= 1i64 << (8 * n);
                }
                stack.push(V::Int(v));
            }
            b'G' => stack.push(V::Float(f64::from_be_bytes(take(&mut i, 8)?.try_into()?))),
            b'X' => {
                let n = u32::from_le_bytes(take(&mut i, 4)?.try_into()?) as usize;
                stack.push(V::Str(String::from_utf8_lossy(take(&mut i, n)?).into_owned()));
            }
            0x8c => {
                let n = take(&mut i, 1)?[0] as usize;
                stack.push(V::Str(String::from_utf8_lossy(take(&mut i, n)?).into_owned()));
            }
            b'U' | b'C' => {
                let n = take(&mut i, 1)?[0] as usize;
                stack.push(V::Bytes(take(&mut i, n)?.to_vec()));
            }
            b'B' | b'T' => {
                let n = u32::from_le_bytes(take(&mut i, 4)?.try_into()?) as usize;
                stack.push(V::Bytes(take(&mut i, n)?.to_vec()));
            }
            b'c' => {
                let module = line(&mut i)?;
                let name = line(&mut i)?;
                stack.push(V::Global(format!("{module}.{name}")));
            }
            0x93 => {
                let name = stack.pop();
                let module = stack.pop();
                match (module, name) {
                    (Some(V::Str(m)), Some(V::Str(n))) => stack.push(V::Global(format!("{m}.{n}"))),
                    _ => bail!("pickle: bad STACK_GLOBAL"),
                }
            }
            b'q' => {
                let k = take(&mut i, 1)?[0] as u64;
                memo.insert(k, stack.last().cloned().ok_or_else(|| anyhow!("pickle: PUT on empty stack"))?);
            }
            b'r' => {
                let k = u32::from_le_bytes(take(&mut i, 4)?.try_into()?) as u64;
                memo.insert(k, stack.last().cloned().ok_or_else(|| anyhow!("pickle: PUT on empty stack"))?);
            }
            0x94 => {
                let k = memo.len() as u64;
                memo.insert(k, stack.last().cloned().ok_or_else(|| anyhow!("pickle: MEMOIZE on empty stack"))?);
            }
            b'h' => {
                let k = take(&mut i, 1)?[0] as u64;
                stack.push(memo.get(&k).cloned().ok_or_else(|| anyhow!("pickle: bad memo key {k}"))?);
            }
            b'j' => {
                let k = u32::from_le_bytes(take(&mut i, 4)?.try_into()?) as u64;
                stack.push(memo.get(&k).cloned().ok_or_else(|| anyhow!("pickle: bad memo key {k}"))?);
            }
            b't' => {
                let items = pop_mark(&mut stack)?;
                stack.push(V::Tuple(items));
            }
            0x85..=0x87 => {
                let n = (op - 0x84) as usize;
                if stack.len() < n {
                    bail!("pickle: stack underflow");
                }
                let items = stack.split_off(stack.len() - n);
                stack.push(V::Tuple(items));
            }
            b'Q' => {
                let pid = stack.pop().ok_or_else(|| anyhow!("pickle: stack underflow"))?;
                let V::Tuple(p) = pid else { bail!("pickle: persistent id is not a tuple") };
                match (p.get(1), p.get(2)) {
                    (Some(V::Global(t)), Some(V::Str(key))) => stack.push(V::Storage { key: key.clone(), kind: storage_kind(t)? }),
                    _ => bail!("pickle: unsupported persistent id {p:?}"),
                }
            }
            b'R' | 0x81 => {
                let args = stack.pop().ok_or_else(|| anyhow!("pickle: stack underflow"))?;
                let f = stack.pop().ok_or_else(|| anyhow!("pickle: stack underflow"))?;
                stack.push(reduce(f, args)?);
            }
            b'b' => {
                stack.pop(); // BUILD: object state (an OrderedDict's _metadata) is not needed
            }
            b's' => {
                let v = stack.pop();
                let k = stack.pop();
                match (stack.last_mut(), k, v) {
                    (Some(V::Dict(d)), Some(k), Some(v)) => d.push((k, v)),
                    _ => bail!("pickle: SETITEM outside a dict"),
                }
            }
            b'u' => {
                let items = pop_mark(&mut stack)?;
                let Some(V::Dict(d)) = stack.last_mut() else { bail!("pickle: SETITEMS outside a dict") };
                let mut it = items.into_iter();
                while let (Some(k), Some(v)) = (it.next(), it.next()) {
                    d.push((k, v));
                }
            }
            b'a' => {
                let v = stack.pop().ok_or_else(|| anyhow!("pickle: stack underflow"))?;
                if let Some(V::List(l)) = stack.last_mut() {
                    l.push(v);
                }
            }
            b'e' => {
                let items = pop_mark(&mut stack)?;
                if let Some(V::List(l)) = stack.last_mut() {
                    l.extend(items);
                }
            }
            other => bail!("pickle: unsupported opcode 0x{other:02x} at byte {}", i - 1),
        }
    }
}

/// Read the tensors of a `torch.save`d state_dict (zip format) as contiguous CPU tensors.
pub fn read_state_dict(path: &Path) -> Result<HashMap<String, Tensor>> {
    let bytes = std::fs::read(path).with_context(|| format!("cannot read {}", path.display()))?;
    let what = || format!("{}: not a readable PyTorch state_dict (torch.save zip format)", path.display());
    let entries = zip_entries(&bytes).with_context(what)?;
    let (pkl_name, pkl) =
        entries.iter().find(|(n, _)| n.ends_with("/data.pkl")).ok_or_else(|| anyhow!("no data.pkl in the archive")).with_context(what)?;
    let prefix = pkl_name.trim_end_matches("data.pkl").to_string();
    let slice = |e: &ZipEntry| -> Result<&[u8]> {
        if e.method != 0 {
            bail!("compressed zip entries are not supported (method {})", e.method);
        }
        bytes.get(e.offset..e.offset + e.size).ok_or_else(|| anyhow!("truncated zip entry"))
    };
    let root = unpickle(slice(pkl).with_context(what)?).with_context(what)?;
    let V::Dict(items) = root else { return Err(anyhow!("the pickle is not a dict")).with_context(what) };
    let mut out = HashMap::new();
    for (k, v) in items {
        let (V::Str(name), V::Tensor { key, kind, offset, size, stride }) = (k, v) else { continue };
        let entry =
            entries.get(&format!("{prefix}data/{key}")).ok_or_else(|| anyhow!("storage {key} of {name} missing")).with_context(what)?;
        let raw = slice(entry).with_context(what)?;
        let elem = kind.elt_size_in_bytes();
        let storage = Tensor::from_data_size(raw, &[(raw.len() / elem) as i64], kind);
        let t = storage.as_strided(size.as_slice(), stride.as_slice(), Some(offset)).contiguous();
        out.insert(name, t);
    }
    if out.is_empty() {
        return Err(anyhow!("no tensors found")).with_context(what);
    }
    Ok(out)
}
