//! A size-capped log file: it keeps the head of the output and a rotating tail, with a
//! line in between that says how much was dropped. A worker that prints gigabytes
//! costs at most `head + tail + slack` bytes of disk, and the file always shows how the
//! run began and how it ended.
//!
//! The file is appended to until it passes `head + tail + slack`; then it is rewritten
//! (temporary file + rename) as head + marker + the last `tail` bytes, cut at line
//! boundaries where there are any. Readers that follow the file see it replaced by a
//! shorter one (`clipgan logs -f` handles that).
use crate::util::fsx;
use anyhow::{Context, Result};
use std::fs::File;
use std::io::{Read, Seek, SeekFrom, Write};
use std::path::{Path, PathBuf};

const MARKER_PREFIX: &str = "\n[clipgan: this log went over its size cap; ";

pub struct CappedLog {
    path: PathBuf,
    file: File,
    len: u64,
    head_cap: u64,
    tail_cap: u64,
    slack: u64,
    /// Where the head ends and the marker starts, once the log has been cut.
    head_end: Option<u64>,
    marker_len: u64,
    dropped: u64,
}

impl CappedLog {
    /// Open (append to) `path`, keeping at most about `cap` bytes: a quarter of it for
    /// the head, half for the tail, the rest as slack between rewrites.
    pub fn open(path: &Path, cap: u64) -> Result<CappedLog> {
        let cap = cap.max(64);
        let file = std::fs::OpenOptions::new()
            .create(true)
            .append(true)
            .open(path)
            .with_context(|| format!("cannot open the log {}", path.display()))?;
        let len = file.metadata().map(|m| m.len()).unwrap_or(0);
        let mut log = CappedLog {
            path: path.to_path_buf(),
            file,
            len,
            head_cap: cap / 4,
            tail_cap: cap / 2,
            slack: cap - cap / 4 - cap / 2,
            head_end: None,
            marker_len: 0,
            dropped: 0,
        };
        log.find_marker();
        Ok(log)
    }

    /// An earlier attempt's log may already have been cut: find its marker so the head
    /// stays the same and the dropped count adds up.
    fn find_marker(&mut self) {
        let Ok(mut f) = File::open(&self.path) else { return };
        let mut buf = Vec::new();
        if Read::by_ref(&mut f).take(self.head_cap + 512).read_to_end(&mut buf).is_err() {
            return;
        }
        let Some(pos) = find(&buf, MARKER_PREFIX.as_bytes()) else { return };
        let Some(end) = buf[pos + 1..].iter().position(|&b| b == b'\n') else { return };
        let line = String::from_utf8_lossy(&buf[pos + MARKER_PREFIX.len()..pos + 1 + end]).into_owned();
        self.dropped = line.split_whitespace().next().and_then(|n| n.parse().ok()).unwrap_or(0);
        self.head_end = Some(pos as u64);
        self.marker_len = (end + 2) as u64;
    }

    pub fn write(&mut self, data: &[u8]) -> Result<()> {
        self.file.write_all(data).with_context(|| format!("cannot write the log {}", self.path.display()))?;
        self.len += data.len() as u64;
        if self.len > self.head_cap + self.tail_cap + self.slack {
            self.cut()?;
        }
        Ok(())
    }

    /// Bytes dropped from the middle so far.
    pub fn dropped(&self) -> u64 {
        self.dropped
    }

    /// Rewrite the file as head + marker + tail.
    fn cut(&mut self) -> Result<()> {
        let mut src = File::open(&self.path).with_context(|| format!("cannot read the log {}", self.path.display()))?;
        let len = src.metadata()?.len();
        let (head_end, old_marker) = match self.head_end {
            Some(h) => (h, self.marker_len),
            None => {
                // Cut the head after its last newline, if it has one.
                let mut head = vec![0u8; self.head_cap.min(len) as usize];
                src.read_exact(&mut head)?;
                let end = head.iter().rposition(|&b| b == b'\n').map(|i| i + 1).unwrap_or(head.len());
                (end as u64, 0)
            }
        };
        let mut tail_start = len.saturating_sub(self.tail_cap).max(head_end + old_marker);
        // Start the tail on a line boundary when one is near.
        src.seek(SeekFrom::Start(tail_start))?;
        let mut probe = vec![0u8; 4096.min(len - tail_start) as usize];
        src.read_exact(&mut probe)?;
        if let Some(i) = probe.iter().position(|&b| b == b'\n') {
            tail_start += i as u64 + 1;
        }
        self.dropped += tail_start - head_end - old_marker;
        let marker = format!("{MARKER_PREFIX}{} bytes of output were dropped here; the tail follows]\n", self.dropped);
        fsx::atomic_write_with(&self.path, |out| {
            src.seek(SeekFrom::Start(0))?;
            std::io::copy(&mut (&mut src).take(head_end), out)?;
            out.write_all(marker.as_bytes())?;
            src.seek(SeekFrom::Start(tail_start))?;
            std::io::copy(&mut src, out)?;
            Ok(())
        })?;
        self.file = std::fs::OpenOptions::new()
            .append(true)
            .open(&self.path)
            .with_context(|| format!("cannot reopen the log {}", self.path.display()))?;
        self.len = self.file.metadata()?.len();
        self.head_end = Some(head_end);
        self.marker_len = marker.len() as u64;
        Ok(())
    }
}

fn find(hay: &[u8], needle: &[u8]) -> Option<usize> {
    hay.windows(needle.len()).position(|w| w == needle)
}
