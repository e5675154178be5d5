//! Reading log files (a run folder's `logs/*.log`, the daemon's `daemon.log`): the end of
//! a log (the console's logs view), what a process wrote from an offset on (the daemon's
//! start-up error), and following a log as it grows (`clipgan queue logs --follow`).
//!
//! The logs are plain text written by other processes, so a missing file is not an error
//! where the caller can show nothing instead, and bytes are passed on as read.
use std::fs::File;
use std::io::{Read, Seek, SeekFrom};
use std::path::{Path, PathBuf};

/// The lines of the last `max_bytes` of a file (invalid UTF-8 replaced, line ends
/// removed). When the file is longer than that, the first line read is dropped: it may
/// be the end of a line. A missing or unreadable file has no lines.
pub fn tail_lines(path: &Path, max_bytes: u64) -> Vec<String> {
    let Ok(mut f) = File::open(path) else { return Vec::new() };
    let len = f.metadata().map(|m| m.len()).unwrap_or(0);
    let start = len.saturating_sub(max_bytes);
    let Ok(bytes) = read_at(&mut f, start, u64::MAX) else { return Vec::new() };
    let mut lines: Vec<String> = String::from_utf8_lossy(&bytes).lines().map(str::to_string).collect();
    if start > 0 && !lines.is_empty() {
        lines.remove(0);
    }
    lines
}

/// Up to `max_bytes` of a file from byte `offset` on (what a process wrote after the file
/// had `offset` bytes). A missing or unreadable file gives nothing.
pub fn read_from(path: &Path, offset: u64, max_bytes: u64) -> Vec<u8> {
    let Ok(mut f) = File::open(path) else { return Vec::new() };
    read_at(&mut f, offset, max_bytes).unwrap_or_default()
}

/// At most `limit` bytes of `f` from `offset` to its end.
fn read_at(f: &mut File, offset: u64, limit: u64) -> std::io::Result<Vec<u8>> {
    f.seek(SeekFrom::Start(offset))?;
    let mut buf = Vec::new();
    f.take(limit).read_to_end(&mut buf)?;
    Ok(buf)
}

/// Follows a log that its writer appends to and, past its size cap, rewrites as head +
/// marker + tail (`supervisor::logcap`). Each [`read_new`](Self::read_new) returns the
/// bytes written since the previous one; after a rewrite it finds where it was by the
/// last bytes it returned (from the start of the file when they are gone).
pub struct LogFollower {
    path: PathBuf,
    offset: u64,
    /// The end of what was returned so far (at most [`LogFollower::RECOGNISE_BYTES`]).
    last: Vec<u8>,
}

impl LogFollower {
    /// How many of the last bytes returned are kept to recognise the place in a rewritten log.
    const RECOGNISE_BYTES: usize = 256;

    pub fn new(path: &Path) -> LogFollower {
        LogFollower { path: path.to_path_buf(), offset: 0, last: Vec::new() }
    }

    pub fn path(&self) -> &Path {
        &self.path
    }

    /// The bytes written since the last call (empty when none). A missing file is an
    /// error of kind `NotFound`: the caller decides whether to wait for it.
    pub fn read_new(&mut self) -> std::io::Result<Vec<u8>> {
        let mut f = File::open(&self.path)?;
        let len = f.metadata()?.len();
        if len < self.offset {
            // Rewritten by the cap: continue after the last bytes returned, if still there.
            let mut all = Vec::new();
            f.read_to_end(&mut all)?;
            let last = self.last.as_slice();
            self.offset = match (!last.is_empty()).then(|| all.windows(last.len()).rposition(|w| w == last)).flatten() {
                Some(p) => (p + last.len()) as u64,
                None => 0,
            };
        }
        let buf = read_at(&mut f, self.offset, u64::MAX)?;
        self.offset += buf.len() as u64;
        self.last.extend_from_slice(&buf);
        let drop = self.last.len().saturating_sub(Self::RECOGNISE_BYTES);
        self.last.drain(..drop);
        Ok(buf)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::io::Write;

    fn write(path: &Path, bytes: &[u8]) {
        std::fs::write(path, bytes).unwrap();
    }

    #[test]
    fn tail_lines_of_a_missing_file_is_empty() {
        let d = tempfile::tempdir().unwrap();
        assert!(tail_lines(&d.path().join("nope.log"), 1024).is_empty());
    }

    #[test]
    fn tail_lines_keeps_every_line_of_a_file_within_the_cap() {
        let d = tempfile::tempdir().unwrap();
        let p = d.path().join("a.log");
        write(&p, b"one\r\ntwo\n\nthree");
        assert_eq!(tail_lines(&p, 1024), ["one", "two", "", "three"]);
        // Exactly at the cap: nothing is cut, so nothing is dropped.
        assert_eq!(tail_lines(&p, 15), ["one", "two", "", "three"]);
    }

    #[test]
    fn tail_lines_drops_the_partial_first_line_of_a_file_over_the_cap() {
        let d = tempfile::tempdir().unwrap();
        let p = d.path().join("a.log");
        write(&p, b"first line\nsecond\nthird\n");
        // The last 10 bytes are "ond\nthird\n": "ond" is the end of a line.
        assert_eq!(tail_lines(&p, 10), ["third"]);
        // The first line read is dropped even when the cut falls on a line start.
        assert_eq!(tail_lines(&p, 13), ["third"]);
        assert_eq!(tail_lines(&p, 3), Vec::<String>::new());
    }

    #[test]
    fn tail_lines_replaces_invalid_utf8() {
        let d = tempfile::tempdir().unwrap();
        let p = d.path().join("a.log");
        write(&p, b"ok\nbad \xff\xfe end\n\xc3");
        assert_eq!(tail_lines(&p, 1024), ["ok", "bad \u{fffd}\u{fffd} end", "\u{fffd}"]);
    }

    #[test]
    fn read_from_reads_at_most_max_bytes_after_offset() {
        let d = tempfile::tempdir().unwrap();
        let p = d.path().join("daemon.log");
        write(&p, b"old run\nnew: error\n");
        assert_eq!(read_from(&p, 8, 1024), b"new: error\n");
        assert_eq!(read_from(&p, 8, 3), b"new");
        assert_eq!(read_from(&p, 100, 1024), b"");
        assert_eq!(read_from(&d.path().join("missing.log"), 0, 1024), b"");
        // Bytes are passed on as they are, valid UTF-8 or not.
        write(&p, b"\xff\xfe");
        assert_eq!(read_from(&p, 0, 1024), b"\xff\xfe");
    }

    #[test]
    fn follower_returns_what_was_appended_since_the_last_call() {
        let d = tempfile::tempdir().unwrap();
        let p = d.path().join("stdout.log");
        let mut follower = LogFollower::new(&p);
        assert_eq!(follower.read_new().unwrap_err().kind(), std::io::ErrorKind::NotFound);
        write(&p, b"a\nb");
        assert_eq!(follower.read_new().unwrap(), b"a\nb");
        assert_eq!(follower.read_new().unwrap(), b"");
        let mut f = std::fs::OpenOptions::new().append(true).open(&p).unwrap();
        f.write_all(b"c\n\xff\n").unwrap();
        assert_eq!(follower.read_new().unwrap(), b"c\n\xff\n");
    }

    #[test]
    fn follower_finds_its_place_in_a_rewritten_log() {
        let d = tempfile::tempdir().unwrap();
        let p = d.path().join("stdout.log");
        let lines = |r: std::ops::Range<u32>| -> String { r.map(|i| format!("line {i:02}\n")).collect() };
        let mut follower = LogFollower::new(&p);
        write(&p, format!("head\n{}", lines(0..40)).as_bytes());
        follower.read_new().unwrap();
        // The cap keeps the head and the tail (shorter than before), then the writer goes on.
        write(&p, format!("head\n[cut]\n{}", lines(5..41)).as_bytes());
        assert_eq!(follower.read_new().unwrap(), b"line 40\n");
        // When what was returned last is gone, the whole file again.
        write(&p, b"x\n");
        assert_eq!(follower.read_new().unwrap(), b"x\n");
    }
}
