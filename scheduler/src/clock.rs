//! The scheduler's clock: the one place the scheduler reads the time, so
//! that every timing rule (launch delays, launch timeouts, drains, kill
//! retries, deployment deadlines, reconciliation retries) runs the same on
//! the wall clock and on tokio's paused clock in tests.
//!
//! Elsewhere in the scheduler, reading a clock directly is refused by
//! `clippy.toml`'s `disallowed-methods`.

use crate::state::app::Timestamp;

/// Where the time comes from.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct Clock {
    /// `None`: the wall clock. `Some`: a start time and the tokio instant
    /// it corresponds to; the time moves with tokio's clock from there.
    tokio_origin: Option<(Timestamp, tokio::time::Instant)>,
}

impl Clock {
    /// The wall clock (what Baton runs on).
    pub fn wall() -> Clock {
        Clock::default()
    }

    /// A clock that reads `start` now and moves with tokio's clock: under
    /// `tokio::time::pause()` it advances only as the runtime's time does.
    pub fn following_tokio(start: Timestamp) -> Clock {
        #[allow(clippy::disallowed_methods)] // the clock itself
        let origin = tokio::time::Instant::now();
        Clock {
            tokio_origin: Some((start, origin)),
        }
    }

    /// The current time.
    pub fn now(&self) -> Timestamp {
        match self.tokio_origin {
            #[allow(clippy::disallowed_methods)] // the clock itself
            None => Timestamp::now(),
            Some((start, origin)) => {
                start.plus_millis(i64::try_from(origin.elapsed().as_millis()).unwrap_or(i64::MAX))
            }
        }
    }

    /// The current instant of the runtime's timers (for `sleep_until`).
    pub fn instant(&self) -> tokio::time::Instant {
        #[allow(clippy::disallowed_methods)] // the clock itself
        tokio::time::Instant::now()
    }
}

#[cfg(test)]
mod tests {
    use std::time::Duration;

    use super::*;

    #[tokio::test(start_paused = true)]
    async fn a_tokio_clock_moves_with_paused_time_only() {
        let clock = Clock::following_tokio(Timestamp::from_millis(1_000));
        assert_eq!(clock.now(), Timestamp::from_millis(1_000));
        tokio::time::advance(Duration::from_millis(2_500)).await;
        assert_eq!(clock.now(), Timestamp::from_millis(3_500));
    }

    #[test]
    fn the_wall_clock_reads_the_wall() {
        assert!(Clock::wall().now().as_millis() > 1_577_836_800_000);
    }
}
