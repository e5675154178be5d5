//! `settings`: the daemon-wide stop timeout and log cap.
use super::{err, ok, Core};
use crate::supervisor::protocol::*;

impl Core {
    pub(super) fn settings(&mut self, s: SettingsChange) -> Response {
        if let Some(t) = s.stop_timeout_s {
            if !(t.is_finite() && t >= 0.0) {
                return err("the stop timeout must be a number of seconds >= 0");
            }
            self.state.settings.stop_timeout_s = t;
        }
        if let Some(c) = s.log_cap_bytes {
            if c < 4096 {
                return err("the log cap must be at least 4096 bytes");
            }
            self.state.settings.log_cap_bytes = c;
        }
        self.dirty = true;
        ok(format!("stop timeout {} s, log cap {} bytes", self.state.settings.stop_timeout_s, self.state.settings.log_cap_bytes))
    }
}
