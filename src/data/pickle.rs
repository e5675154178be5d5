//! Reading AttnGAN's `.pickle` files (serde-pickle), with errors that name the file and
//! say what shape was expected. Python 2 wrote `str` as byte strings: both byte and
//! unicode strings are accepted (byte strings must be UTF-8).
use anyhow::{bail, Context, Result};
use serde_pickle::{DeOptions, HashableValue, Value};
use std::collections::BTreeMap;
use std::path::Path;

pub fn read(path: &Path) -> Result<Value> {
    let bytes = std::fs::read(path).with_context(|| format!("cannot read {}", path.display()))?;
    // Bounded before parsing: serde-pickle recurses over nesting (10,000 levels overflowed
    // the stack) and copies memoized values at each reference.
    crate::util::pickle_shape::check(&bytes).map_err(|e| anyhow::anyhow!("{}: not a readable pickle ({e})", path.display()))?;
    serde_pickle::value_from_slice(&bytes, DeOptions::new()).map_err(|e| anyhow::anyhow!("{}: not a readable pickle ({e})", path.display()))
}

/// Short description of a value's Python type, for messages.
pub fn type_name(v: &Value) -> &'static str {
    match v {
        Value::None => "None",
        Value::Bool(_) => "bool",
        Value::I64(_) | Value::Int(_) => "int",
        Value::F64(_) => "float",
        Value::Bytes(_) => "bytes",
        Value::String(_) => "str",
        Value::List(_) => "list",
        Value::Tuple(_) => "tuple",
        Value::Set(_) | Value::FrozenSet(_) => "set",
        Value::Dict(_) => "dict",
    }
}

fn items<'a>(v: &'a Value, path: &Path, what: &str) -> Result<&'a [Value]> {
    match v {
        Value::List(x) | Value::Tuple(x) => Ok(x),
        other => bail!("{}: expected {what} (a list), found type {}", path.display(), type_name(other)),
    }
}

pub fn string(v: &Value) -> Option<String> {
    match v {
        Value::String(s) => Some(s.clone()),
        Value::Bytes(b) => String::from_utf8(b.clone()).ok(),
        _ => None,
    }
}

pub fn int(v: &Value) -> Option<i64> {
    match v {
        Value::I64(i) => Some(*i),
        Value::Bool(b) => Some(*b as i64),
        _ => None,
    }
}

/// A list of strings (`filenames.pickle`).
pub fn string_list(v: &Value, path: &Path, what: &str) -> Result<Vec<String>> {
    items(v, path, what)?
        .iter()
        .enumerate()
        .map(|(i, x)| {
            string(x).with_context(|| format!("{}: expected {what}: item {i} is of type {}, not a string", path.display(), type_name(x)))
        })
        .collect()
}

/// A list of integers (`class_info.pickle`).
pub fn int_list(v: &Value, path: &Path, what: &str) -> Result<Vec<i64>> {
    items(v, path, what)?
        .iter()
        .enumerate()
        .map(|(i, x)| {
            int(x).with_context(|| format!("{}: expected {what}: item {i} is of type {}, not an integer", path.display(), type_name(x)))
        })
        .collect()
}

/// AttnGAN's `captions.pickle`: `[train_captions, test_captions, ixtoword, wordtoix]`,
/// captions as lists of word indices. Returns the caption counts of both splits.
pub fn attngan_captions(v: &Value, path: &Path) -> Result<(usize, usize, usize)> {
    let what = "[train_captions, test_captions, ixtoword, wordtoix]";
    let parts = items(v, path, what)?;
    if parts.len() != 4 {
        bail!("{}: expected {what}, found a list of {} items", path.display(), parts.len());
    }
    let count = |v: &Value, name: &str| -> Result<usize> {
        let caps = items(v, path, name)?;
        for (i, c) in caps.iter().enumerate() {
            let ok = matches!(c, Value::List(w) | Value::Tuple(w) if w.iter().all(|x| int(x).is_some()));
            if !ok {
                bail!("{}: {name}[{i}] is not a list of word indices", path.display());
            }
        }
        Ok(caps.len())
    };
    let train = count(&parts[0], "train_captions")?;
    let test = count(&parts[1], "test_captions")?;
    let dict = |v: &Value, name: &str| -> Result<usize> {
        match v {
            Value::Dict(d) => Ok(d.len()),
            other => bail!("{}: expected {name} (a dict), found type {}", path.display(), type_name(other)),
        }
    };
    let words = dict(&parts[2], "ixtoword")?;
    dict(&parts[3], "wordtoix")?;
    Ok((train, test, words))
}

/// Build `[train, test, ixtoword, wordtoix]` for writing (`data synth`).
pub fn attngan_captions_value(train: &[Vec<i64>], test: &[Vec<i64>], words: &[String]) -> Value {
    let caps = |c: &[Vec<i64>]| Value::List(c.iter().map(|w| Value::List(w.iter().map(|&i| Value::I64(i)).collect())).collect());
    let ixtoword: BTreeMap<HashableValue, Value> =
        words.iter().enumerate().map(|(i, w)| (HashableValue::I64(i as i64), Value::String(w.clone()))).collect();
    let wordtoix: BTreeMap<HashableValue, Value> =
        words.iter().enumerate().map(|(i, w)| (HashableValue::String(w.clone()), Value::I64(i as i64))).collect();
    Value::List(vec![caps(train), caps(test), Value::Dict(ixtoword), Value::Dict(wordtoix)])
}

/// Serialise with protocol 2 (what AttnGAN's files use; Python 2 and 3 both read it).
pub fn to_bytes(v: &Value) -> Result<Vec<u8>> {
    serde_pickle::value_to_vec(v, serde_pickle::SerOptions::new().proto_v2()).context("cannot serialise a pickle")
}
