//! The router's one clock: milliseconds since it started. The rules that
//! depend on time (ejections, rates, idleness) take its readings as plain
//! numbers, so they are tested without waiting. Calendar windows (page
//! views and visitors per UTC minute, hour, day) read the wall clock
//! through it too.

use std::time::{Instant, SystemTime};

/// Milliseconds since the router started: the one clock of ejections and
/// rates.
#[derive(Debug, Clone, Copy)]
pub struct Clock(Instant);

impl Clock {
    /// A clock starting now.
    pub fn new() -> Clock {
        Clock(Instant::now())
    }

    /// Milliseconds since start.
    pub fn now_ms(&self) -> u64 {
        self.0.elapsed().as_millis() as u64
    }

    /// Seconds since the Unix epoch, by the wall clock (which may step).
    pub fn unix_secs(&self) -> u64 {
        SystemTime::now()
            .duration_since(SystemTime::UNIX_EPOCH)
            .map_or(0, |d| d.as_secs())
    }
}

impl Default for Clock {
    fn default() -> Self {
        Clock::new()
    }
}
