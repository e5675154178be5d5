//! Small helpers shared by every module.
pub mod fsx;
pub mod grid;
pub mod oom;
pub mod pickle_shape;

/// `s` for a message: whole when it has at most `max_chars` characters, else its start
/// and how long it was (a 10 MB name once made a 10 MB error message).
pub fn cut(s: &str, max_chars: usize) -> String {
    match s.char_indices().nth(max_chars) {
        None => s.to_string(),
        Some((end, _)) => format!("{}... ({} characters in all)", &s[..end], s.chars().count()),
    }
}

/// Seconds since the Unix epoch, as a float (the run format's wall-clock unit).
pub fn unix_now() -> f64 {
    std::time::SystemTime::now().duration_since(std::time::UNIX_EPOCH).map(|d| d.as_secs_f64()).unwrap_or(0.0)
}
