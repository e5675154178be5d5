//! Curves as CSV, one row per point (long format, so runs with different steps share a
//! file): `run,tag,step,wall,rel,value`. Floats are written in Rust's shortest exact
//! form (NaN, inf, -inf included), so reading a file back gives the same numbers.
use super::Curve;
use anyhow::{bail, Context, Result};
use std::io::{BufRead, Write};

pub const HEADER: &str = "run,tag,step,wall,rel,value";

/// A field, quoted when it holds a comma, quote or line break (RFC 4180).
fn field(s: &str) -> std::borrow::Cow<'_, str> {
    if s.contains([',', '"', '\n', '\r']) {
        format!("\"{}\"", s.replace('"', "\"\"")).into()
    } else {
        s.into()
    }
}

pub fn write_csv(curves: &[Curve], mut w: impl Write) -> std::io::Result<()> {
    writeln!(w, "{HEADER}")?;
    for c in curves {
        let (run, tag) = (field(&c.run), field(&c.tag));
        for i in 0..c.len() {
            writeln!(w, "{run},{tag},{},{},{},{}", c.step[i], c.wall[i], c.wall[i] - c.t0, c.value[i])?;
        }
    }
    Ok(())
}

/// Split one CSV record (no line breaks inside fields: `write_csv` never writes any
/// unless a name holds one, which run folders and tags don't).
fn split_record(line: &str) -> Result<Vec<String>> {
    let mut out = Vec::new();
    let mut cur = String::new();
    let mut chars = line.chars().peekable();
    let mut quoted = false;
    while let Some(ch) = chars.next() {
        match (quoted, ch) {
            (true, '"') if chars.peek() == Some(&'"') => {
                chars.next();
                cur.push('"');
            }
            (true, '"') => quoted = false,
            (false, '"') if cur.is_empty() => quoted = true,
            (false, ',') => out.push(std::mem::take(&mut cur)),
            (_, c) => cur.push(c),
        }
    }
    if quoted {
        bail!("unterminated quoted field");
    }
    out.push(cur);
    Ok(out)
}

/// Read what [`write_csv`] wrote: curves in file order, `t0` recovered from wall - rel.
pub fn read_csv(r: impl BufRead, name: &str) -> Result<Vec<Curve>> {
    let mut curves: Vec<Curve> = Vec::new();
    let mut lines = r.lines();
    let header = lines.next().transpose().with_context(|| format!("{name}: reading"))?.unwrap_or_default();
    if header.trim_end() != HEADER {
        bail!("{name}:1: expected the header `{HEADER}`, found `{header}`");
    }
    for (i, line) in lines.enumerate() {
        let lineno = i + 2;
        let line = line.with_context(|| format!("{name}:{lineno}: reading"))?;
        if line.trim().is_empty() {
            continue;
        }
        let f = split_record(&line).with_context(|| format!("{name}:{lineno}"))?;
        if f.len() != 6 {
            bail!("{name}:{lineno}: expected 6 fields, found {}", f.len());
        }
        let num = |k: usize| -> Result<f64> {
            f[k].parse::<f64>().with_context(|| format!("{name}:{lineno}: field {} is not a number: {:?}", k + 1, f[k]))
        };
        let step: u64 = f[2].parse().with_context(|| format!("{name}:{lineno}: step is not an integer: {:?}", f[2]))?;
        let (wall, rel, value) = (num(3)?, num(4)?, num(5)?);
        let idx = match curves.iter().position(|c| c.run == f[0] && c.tag == f[1]) {
            Some(i) => i,
            None => {
                curves.push(Curve { run: f[0].clone(), tag: f[1].clone(), t0: wall - rel, ..Curve::default() });
                curves.len() - 1
            }
        };
        let c = &mut curves[idx];
        c.step.push(step);
        c.wall.push(wall);
        c.value.push(value);
    }
    Ok(curves)
}
