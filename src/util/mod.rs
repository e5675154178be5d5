//! Small helpers shared by every module.
pub mod fsx;
pub mod grid;

/// Seconds since the Unix epoch, as a float (the run format's wall-clock unit).
pub fn unix_now() -> f64 {
    std::time::SystemTime::now().duration_since(std::time::UNIX_EPOCH).map(|d| d.as_secs_f64()).unwrap_or(0.0)
}
