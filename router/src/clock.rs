//! The router's one clock: milliseconds since it started. The rules that
//! depend on time (ejections, rates, idleness) take its readings as plain
//! numbers, so they are tested without waiting.

use std::time::Instant;

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
}

impl Default for Clock {
    fn default() -> Self {
        Clock::new()
    }
}
