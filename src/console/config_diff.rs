//! The difference between two runs' configs (the runs view's `D`): both YAML documents
//! flattened to `a.b.c -> value` and compared key by key.
use serde_yaml_ng::Value;
use std::collections::{BTreeMap, BTreeSet};

/// A line of the config diff: a key and its value in run A and run B (`None`: absent).
#[derive(Clone, Debug, PartialEq)]
pub struct DiffLine {
    pub key: String,
    pub a: Option<String>,
    pub b: Option<String>,
}

/// Flatten a YAML document to `A.B.C -> value` (lists indexed `A.0`).
pub fn flatten_yaml(v: &Value, prefix: &str, out: &mut BTreeMap<String, String>) {
    let key = |k: &str| if prefix.is_empty() { k.to_string() } else { format!("{prefix}.{k}") };
    match v {
        Value::Mapping(m) => {
            for (k, v) in m {
                let k = match k {
                    Value::String(s) => s.clone(),
                    other => serde_yaml_ng::to_string(other).unwrap_or_default().trim().to_string(),
                };
                flatten_yaml(v, &key(&k), out);
            }
        }
        Value::Sequence(s) => {
            for (i, v) in s.iter().enumerate() {
                flatten_yaml(v, &key(&i.to_string()), out);
            }
        }
        Value::Tagged(t) => flatten_yaml(&t.value, prefix, out),
        other => {
            out.insert(prefix.to_string(), serde_yaml_ng::to_string(other).unwrap_or_default().trim().to_string());
        }
    }
}

/// The keys whose values differ between two configs, sorted.
pub fn config_diff(a: &Value, b: &Value) -> Vec<DiffLine> {
    let (mut fa, mut fb) = (BTreeMap::new(), BTreeMap::new());
    flatten_yaml(a, "", &mut fa);
    flatten_yaml(b, "", &mut fb);
    let keys: BTreeSet<&String> = fa.keys().chain(fb.keys()).collect();
    keys.into_iter()
        .filter(|k| fa.get(*k) != fb.get(*k))
        .map(|k| DiffLine { key: k.clone(), a: fa.get(k).cloned(), b: fb.get(k).cloned() })
        .collect()
}
