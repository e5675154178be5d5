//! TensorBoard event files (`events.out.tfevents.*`), read and written: the record
//! framing (TFRecord: length, masked CRC-32C of the length, data, masked CRC-32C of the
//! data), the few protobuf messages scalars need (TensorFlow's `event.proto`,
//! `summary.proto`, `tensor.proto`: only the fields read or written here, with their
//! numbers; prost skips the others), a follower of a run folder's event files that
//! yields [`MetricEvent`]s like `JsonlTail` does for `metrics.jsonl`, and the writer the
//! jobs use (through `RunWriter`). See docs/run-format.md for the choices.
use super::format::MetricEvent;
use std::collections::BTreeMap;
use std::io::{Read, Seek, SeekFrom, Write};
use std::path::{Path, PathBuf};

/// `event.proto`'s `Event`.
#[derive(Clone, PartialEq, prost::Message)]
pub struct Event {
    #[prost(double, tag = "1")]
    pub wall_time: f64,
    #[prost(int64, tag = "2")]
    pub step: i64,
    #[prost(oneof = "What", tags = "3, 5")]
    pub what: Option<What>,
}

#[derive(Clone, PartialEq, prost::Oneof)]
pub enum What {
    #[prost(string, tag = "3")]
    FileVersion(String),
    #[prost(message, tag = "5")]
    Summary(Summary),
}

/// `summary.proto`'s `Summary`.
#[derive(Clone, PartialEq, prost::Message)]
pub struct Summary {
    #[prost(message, repeated, tag = "1")]
    pub value: Vec<SummaryValue>,
}

/// `Summary.Value`: a scalar is `simple_value` (PyTorch's SummaryWriter, tensorboardX,
/// TF1) or a rank-0 float `tensor` (TF2, `new_style` PyTorch).
#[derive(Clone, PartialEq, prost::Message)]
pub struct SummaryValue {
    #[prost(string, tag = "1")]
    pub tag: String,
    #[prost(message, optional, tag = "9")]
    pub metadata: Option<SummaryMetadata>,
    #[prost(oneof = "Value", tags = "2, 4, 8")]
    pub value: Option<Value>,
}

#[derive(Clone, PartialEq, prost::Oneof)]
pub enum Value {
    #[prost(float, tag = "2")]
    SimpleValue(f32),
    #[prost(message, tag = "4")]
    Image(Image),
    #[prost(message, tag = "8")]
    Tensor(TensorProto),
}

#[derive(Clone, PartialEq, prost::Message)]
pub struct SummaryMetadata {
    #[prost(message, optional, tag = "1")]
    pub plugin_data: Option<PluginData>,
}

#[derive(Clone, PartialEq, prost::Message)]
pub struct PluginData {
    #[prost(string, tag = "1")]
    pub plugin_name: String,
    #[prost(bytes = "vec", tag = "2")]
    pub content: Vec<u8>,
}

/// `Summary.Image` (an encoded PNG/JPEG); counted and skipped by the reader.
#[derive(Clone, PartialEq, prost::Message)]
pub struct Image {
    #[prost(int32, tag = "1")]
    pub height: i32,
    #[prost(int32, tag = "2")]
    pub width: i32,
}

/// `tensor.proto`'s `TensorProto`, the fields a scalar uses.
#[derive(Clone, PartialEq, prost::Message)]
pub struct TensorProto {
    /// `types.proto`'s `DataType`: 1 float, 2 double.
    #[prost(int32, tag = "1")]
    pub dtype: i32,
    #[prost(message, optional, tag = "2")]
    pub tensor_shape: Option<TensorShape>,
    #[prost(bytes = "vec", tag = "4")]
    pub tensor_content: Vec<u8>,
    #[prost(float, repeated, tag = "5")]
    pub float_val: Vec<f32>,
    #[prost(double, repeated, tag = "6")]
    pub double_val: Vec<f64>,
}

#[derive(Clone, PartialEq, prost::Message)]
pub struct TensorShape {
    #[prost(message, repeated, tag = "2")]
    pub dim: Vec<TensorDim>,
}

#[derive(Clone, PartialEq, prost::Message)]
pub struct TensorDim {
    #[prost(int64, tag = "1")]
    pub size: i64,
}

pub const DT_FLOAT: i32 = 1;
pub const DT_DOUBLE: i32 = 2;

impl TensorProto {
    /// The value of a one-element float32/float64 tensor; `None` for anything else
    /// (strings, integers, histograms, images as tensors).
    pub fn scalar(&self) -> Option<f64> {
        let elems: i64 = self.tensor_shape.as_ref().map_or(1, |s| s.dim.iter().map(|d| d.size).product());
        if elems != 1 {
            return None;
        }
        match self.dtype {
            DT_FLOAT => match (self.float_val.first(), self.tensor_content.get(..4)) {
                (Some(&v), _) => Some(v as f64),
                (None, Some(b)) => Some(f32::from_le_bytes(b.try_into().ok()?) as f64),
                _ => None,
            },
            DT_DOUBLE => match (self.double_val.first(), self.tensor_content.get(..8)) {
                (Some(&v), _) => Some(v),
                (None, Some(b)) => Some(f64::from_le_bytes(b.try_into().ok()?)),
                _ => None,
            },
            _ => None,
        }
    }
}

/// TensorBoard's name for event files: `events.out.tfevents.<time>.<host>[...]`.
pub fn is_event_file_name(name: &str) -> bool {
    name.starts_with("events.out.tfevents.")
}

/// The record checksum: CRC-32C, rotated and offset ("masked") as TFRecord does.
pub fn masked_crc(data: &[u8]) -> u32 {
    let c = crc32c::crc32c(data);
    (c.rotate_right(15)).wrapping_add(0xa282_ead8)
}

/// The largest record accepted: a header claiming more is treated as corrupt (images
/// are the largest records TensorBoard writes, a few MB).
pub const MAX_RECORD: u64 = 256 << 20;

/// Frame one record (header, data, checksum) into `out`.
pub fn frame_record(data: &[u8], out: &mut Vec<u8>) {
    let len = (data.len() as u64).to_le_bytes();
    out.extend_from_slice(&len);
    out.extend_from_slice(&masked_crc(&len).to_le_bytes());
    out.extend_from_slice(data);
    out.extend_from_slice(&masked_crc(data).to_le_bytes());
}

/// What [`parse_records`] stopped at.
#[derive(Debug, PartialEq, Eq)]
enum Stop {
    /// The buffer ends inside a record that needs this many bytes from its start.
    Need(u64),
    /// Every byte was consumed.
    Done,
}

/// Counts of what a reader skipped.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct Skipped {
    /// Records with a bad checksum or undecodable message, and stretches of bytes that
    /// were no record (skipped up to the next valid header).
    pub corrupt: u64,
    /// Image summaries (not shown as curves).
    pub images: u64,
    /// Other non-scalar values (histograms, text, audio, tensors that are not scalars).
    pub other: u64,
}

/// Decode the scalars of one event's data into `out`.
fn decode_event(data: &[u8], skipped: &mut Skipped, out: &mut Vec<MetricEvent>) {
    use prost::Message;
    let Ok(ev) = Event::decode(data) else {
        skipped.corrupt += 1;
        return;
    };
    let Some(What::Summary(s)) = ev.what else { return };
    for v in s.value {
        let value = match v.value {
            Some(Value::SimpleValue(x)) => Some(x as f64),
            Some(Value::Tensor(t)) => {
                let is_scalar_plugin = v.metadata.as_ref().and_then(|m| m.plugin_data.as_ref()).is_none_or(|p| p.plugin_name == "scalars");
                if is_scalar_plugin {
                    t.scalar()
                } else {
                    None
                }
            }
            Some(Value::Image(_)) => {
                skipped.images += 1;
                continue;
            }
            None => None,
        };
        match value {
            Some(value) => out.push(MetricEvent { step: ev.step.max(0) as u64, epoch: 0, wall: ev.wall_time, tag: v.tag, value }),
            None => skipped.other += 1,
        }
    }
}

/// Parse the whole records of `buf`; returns the bytes consumed and why it stopped. A
/// header whose checksum fails (or whose length is past [`MAX_RECORD`]) is skipped byte
/// by byte up to the next valid header (one corrupt count per stretch); a record whose
/// data checksum fails is skipped whole. At `eof`, trailing bytes too short for a header
/// are a torn record: they wait.
fn parse_records(buf: &[u8], skipped: &mut Skipped, out: &mut Vec<MetricEvent>) -> (usize, Stop) {
    let mut i = 0;
    let mut in_garbage = false;
    loop {
        if buf.len() - i < 12 {
            return if i == buf.len() { (i, Stop::Done) } else { (i, Stop::Need(12)) };
        }
        let len_bytes: [u8; 8] = buf[i..i + 8].try_into().expect("8 bytes");
        let len = u64::from_le_bytes(len_bytes);
        let crc = u32::from_le_bytes(buf[i + 8..i + 12].try_into().expect("4 bytes"));
        if crc != masked_crc(&len_bytes) || len > MAX_RECORD {
            if !in_garbage {
                skipped.corrupt += 1;
                in_garbage = true;
            }
            i += 1;
            continue;
        }
        in_garbage = false;
        let total = 12 + len as usize + 4;
        if buf.len() - i < total {
            return (i, Stop::Need(total as u64));
        }
        let data = &buf[i + 12..i + 12 + len as usize];
        let dcrc = u32::from_le_bytes(buf[i + 12 + len as usize..i + total].try_into().expect("4 bytes"));
        if dcrc == masked_crc(data) {
            decode_event(data, skipped, out);
        } else {
            skipped.corrupt += 1;
        }
        i += total;
    }
}

/// Bytes read at a time.
const CHUNK: u64 = 4 << 20;

/// Follows one event file: each poll decodes the records completed since the last.
#[derive(Debug)]
struct FileTail {
    path: PathBuf,
    offset: u64,
}

impl FileTail {
    fn poll(&mut self, skipped: &mut Skipped, resets: &mut u64, out: &mut Vec<MetricEvent>) -> std::io::Result<()> {
        let mut f = match std::fs::File::open(&self.path) {
            Ok(f) => f,
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => return Ok(()),
            Err(e) => return Err(e),
        };
        let len = f.metadata()?.len();
        if len < self.offset {
            self.offset = 0;
            *resets += 1;
        }
        let mut need = 0u64;
        let mut buf = Vec::new();
        while self.offset < len {
            let want = (len - self.offset).min(CHUNK.max(need));
            if want < need {
                break; // A torn last record: wait for the rest.
            }
            f.seek(SeekFrom::Start(self.offset))?;
            buf.clear();
            (&mut f).take(want).read_to_end(&mut buf)?;
            if (buf.len() as u64) < want {
                break; // The file shrank under us; the next poll sees it.
            }
            let (used, stop) = parse_records(&buf, skipped, out);
            self.offset += used as u64;
            match stop {
                Stop::Done => need = 0,
                Stop::Need(n) => {
                    if self.offset + n > len {
                        break;
                    }
                    need = n;
                }
            }
        }
        Ok(())
    }
}

/// Follows every event file of a TensorBoard run folder (files that appear are picked
/// up), in file-name order (TensorBoard's names start with the creation time), yielding
/// scalars as [`MetricEvent`]s. A torn last record waits; corrupt records are skipped and
/// counted; images and other values are counted and skipped.
#[derive(Debug)]
pub struct EventsTail {
    dir: PathBuf,
    files: BTreeMap<(u64, String), FileTail>,
    pub skipped: Skipped,
    /// Times a file was found shorter than already read (read again from its start).
    pub resets: u64,
}

/// Sort key of an event file: its time field, then its name.
fn file_key(name: &str) -> (u64, String) {
    let t = name.strip_prefix("events.out.tfevents.").and_then(|r| r.split('.').next()).and_then(|t| t.parse().ok()).unwrap_or(0);
    (t, name.to_string())
}

impl EventsTail {
    pub fn new(dir: &Path) -> EventsTail {
        EventsTail { dir: dir.to_path_buf(), files: BTreeMap::new(), skipped: Skipped::default(), resets: 0 }
    }

    pub fn dir(&self) -> &Path {
        &self.dir
    }

    /// The scalars completed since the last call (a missing folder yields nothing).
    pub fn poll(&mut self) -> std::io::Result<Vec<MetricEvent>> {
        if let Ok(rd) = std::fs::read_dir(&self.dir) {
            for e in rd.flatten() {
                let Some(name) = e.file_name().to_str().map(str::to_string) else { continue };
                if is_event_file_name(&name) && e.file_type().is_ok_and(|t| t.is_file() || t.is_symlink()) {
                    self.files.entry(file_key(&name)).or_insert_with(|| FileTail { path: e.path(), offset: 0 });
                }
            }
        }
        let mut out = Vec::new();
        for f in self.files.values_mut() {
            f.poll(&mut self.skipped, &mut self.resets, &mut out)?;
        }
        Ok(out)
    }
}

/// Read every scalar of a TensorBoard run folder at once.
pub fn read_event_dir(dir: &Path) -> std::io::Result<(Vec<MetricEvent>, Skipped)> {
    let mut t = EventsTail::new(dir);
    let events = t.poll()?;
    Ok((events, t.skipped))
}

/// Appends scalars to an event file as PyTorch's SummaryWriter does (`simple_value`
/// summaries, one event per step and call, a `file_version` event first), so TensorBoard
/// and its `EventAccumulator` read it. Buffered: [`flush`](Self::flush) writes out.
pub struct EventWriter {
    file: std::io::BufWriter<std::fs::File>,
    path: PathBuf,
    buf: Vec<u8>,
}

impl EventWriter {
    /// A new event file in `dir` named `events.out.tfevents.<time>.<host>.<pid>.clipgan`
    /// (a new one per attempt, as TensorBoard's writers do; readers read them in order).
    pub fn create(dir: &Path, wall: f64, host: &str) -> std::io::Result<EventWriter> {
        let host: String = host.chars().map(|c| if c.is_ascii_alphanumeric() || c == '-' { c } else { '_' }).collect();
        let mut n = 0;
        let path = loop {
            let p = dir.join(format!("events.out.tfevents.{}.{host}.{}.{n}.clipgan", wall.floor() as u64, std::process::id()));
            if !p.exists() {
                break p;
            }
            n += 1;
        };
        let file = std::fs::OpenOptions::new().create_new(true).append(true).open(&path)?;
        let mut w = EventWriter { file: std::io::BufWriter::with_capacity(64 * 1024, file), path, buf: Vec::new() };
        w.write_event(&Event { wall_time: wall, step: 0, what: Some(What::FileVersion("brain.Event:2".into())) })?;
        Ok(w)
    }

    pub fn path(&self) -> &Path {
        &self.path
    }

    fn write_event(&mut self, ev: &Event) -> std::io::Result<()> {
        use prost::Message;
        let data = ev.encode_to_vec();
        self.buf.clear();
        frame_record(&data, &mut self.buf);
        self.file.write_all(&self.buf)
    }

    /// One scalar event (a `simple_value`, float32 as TensorBoard stores scalars).
    pub fn scalar(&mut self, e: &MetricEvent) -> std::io::Result<()> {
        let v = SummaryValue { tag: e.tag.clone(), metadata: None, value: Some(Value::SimpleValue(e.value as f32)) };
        self.write_event(&Event {
            wall_time: e.wall,
            step: e.step.min(i64::MAX as u64) as i64,
            what: Some(What::Summary(Summary { value: vec![v] })),
        })
    }

    pub fn flush(&mut self) -> std::io::Result<()> {
        self.file.flush()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn scalar_event(step: i64, wall: f64, tag: &str, v: Value) -> Vec<u8> {
        use prost::Message;
        let ev = Event {
            wall_time: wall,
            step,
            what: Some(What::Summary(Summary { value: vec![SummaryValue { tag: tag.into(), metadata: None, value: Some(v) }] })),
        };
        let mut out = Vec::new();
        frame_record(&ev.encode_to_vec(), &mut out);
        out
    }

    #[test]
    fn crc32c_is_the_castagnoli_crc() {
        // The standard check value of CRC-32C; the masking is checked end to end by the
        // tests that read files of the real SummaryWriter and write files for the real
        // EventAccumulator (tests/formats/tensorboard.rs).
        assert_eq!(crc32c::crc32c(b"123456789"), 0xe306_9283);
    }

    #[test]
    fn simple_value_tensor_float_and_double_and_images() {
        let mut file = Vec::new();
        file.extend(scalar_event(1, 10.0, "a", Value::SimpleValue(0.5)));
        let t = |dtype, f: Vec<f32>, d: Vec<f64>, content: Vec<u8>| TensorProto {
            dtype,
            tensor_shape: Some(TensorShape { dim: vec![] }),
            tensor_content: content,
            float_val: f,
            double_val: d,
        };
        file.extend(scalar_event(2, 11.0, "b", Value::Tensor(t(DT_FLOAT, vec![1.5], vec![], vec![]))));
        file.extend(scalar_event(3, 12.0, "c", Value::Tensor(t(DT_DOUBLE, vec![], vec![2.25], vec![]))));
        file.extend(scalar_event(4, 13.0, "d", Value::Tensor(t(DT_DOUBLE, vec![], vec![], 3.125f64.to_le_bytes().to_vec()))));
        file.extend(scalar_event(5, 14.0, "img", Value::Image(Image { height: 2, width: 2 })));
        let (mut sk, mut out) = (Skipped::default(), Vec::new());
        let (used, stop) = parse_records(&file, &mut sk, &mut out);
        assert_eq!((used, stop), (file.len(), Stop::Done));
        let got: Vec<(u64, f64, &str, f64)> = out.iter().map(|e| (e.step, e.wall, e.tag.as_str(), e.value)).collect();
        assert_eq!(got, vec![(1, 10.0, "a", 0.5), (2, 11.0, "b", 1.5), (3, 12.0, "c", 2.25), (4, 13.0, "d", 3.125)]);
        assert_eq!(sk, Skipped { corrupt: 0, images: 1, other: 0 });
    }

    #[test]
    fn torn_records_wait_and_bad_crcs_are_skipped() {
        let d = tempfile::tempdir().unwrap();
        let path = d.path().join("events.out.tfevents.1.h");
        let (a, b, c) = (
            scalar_event(1, 1.0, "x", Value::SimpleValue(1.0)),
            scalar_event(2, 2.0, "x", Value::SimpleValue(2.0)),
            scalar_event(3, 3.0, "x", Value::SimpleValue(3.0)),
        );
        let mut bad = b.clone();
        let n = bad.len();
        bad[n - 6] ^= 0xff; // data byte: the data checksum fails
        let mut file = a.clone();
        file.extend(&bad);
        file.extend(&c[..7]);
        std::fs::write(&path, &file).unwrap();
        let mut t = EventsTail::new(d.path());
        let got: Vec<u64> = t.poll().unwrap().iter().map(|e| e.step).collect();
        assert_eq!(got, vec![1]);
        assert_eq!(t.skipped.corrupt, 1);
        // The rest of the torn record arrives, then garbage, then a good record.
        let mut more = c[7..].to_vec();
        more.extend([0x55; 40]);
        more.extend(&a);
        std::fs::OpenOptions::new().append(true).open(&path).unwrap().write_all(&more).unwrap();
        let got: Vec<u64> = t.poll().unwrap().iter().map(|e| e.step).collect();
        assert_eq!(got, vec![3, 1]);
        assert_eq!(t.skipped.corrupt, 2);
        assert!(t.poll().unwrap().is_empty());
    }

    #[test]
    fn writer_output_reads_back_and_files_are_read_in_order() {
        let d = tempfile::tempdir().unwrap();
        let mut w = EventWriter::create(d.path(), 1000.0, "host.name").unwrap();
        let evs: Vec<MetricEvent> = (0..5)
            .map(|s| MetricEvent { step: s, epoch: 0, wall: 1000.0 + s as f64, tag: "loss/g".into(), value: s as f64 * 0.5 })
            .collect();
        for e in &evs {
            w.scalar(e).unwrap();
        }
        w.flush().unwrap();
        let mut w2 = EventWriter::create(d.path(), 2000.0, "h").unwrap();
        w2.scalar(&MetricEvent { step: 9, epoch: 0, wall: 2000.0, tag: "loss/g".into(), value: 7.0 }).unwrap();
        w2.flush().unwrap();
        let (got, sk) = read_event_dir(d.path()).unwrap();
        assert_eq!(sk, Skipped::default());
        let mut want = evs.clone();
        want.push(MetricEvent { step: 9, epoch: 0, wall: 2000.0, tag: "loss/g".into(), value: 7.0 });
        assert_eq!(got, want);
    }
}
