//! The launch delay of an app (Marathon's rate limiter), as pure values.
//!
//! A failed launch (crash, error, exit, drop — not a kill) makes the next
//! launch of the app wait: `backoffSeconds` after the first failure, then
//! the delay grows by `backoffFactor` per failure, up to
//! `maxLaunchDelaySeconds`. The delay belongs to one configuration of the
//! app: a new config version starts from zero, as does
//! `DELETE /v2/queue/{id}/delay`.
//!
//! Better than Marathon (pain point: crash loops filling agent disks
//! because the delay reset on the first TASK_RUNNING): a task that reaches
//! RUNNING does not reset the delay. It is forgiven only after a whole
//! `maxLaunchDelaySeconds` window without a new failure.

use serde::{Deserialize, Serialize};

use crate::state::app::{AppDefinition, Timestamp};

/// The delay state of one app configuration.
#[derive(Debug, Clone, Copy, PartialEq, Serialize, Deserialize)]
pub struct LaunchDelay {
    /// The app configuration (its last config change) this delay is for.
    pub config_version: Timestamp,
    /// The current delay in milliseconds.
    pub delay_ms: u64,
    /// No launch before this.
    pub until: Timestamp,
    /// The last failure.
    pub last_failure: Timestamp,
}

fn max_delay_ms(app: &AppDefinition) -> u64 {
    u64::from(app.max_launch_delay_seconds) * 1000
}

/// The delay after one more failed launch at `now`.
pub fn after_failure(
    previous: Option<&LaunchDelay>,
    app: &AppDefinition,
    now: Timestamp,
) -> LaunchDelay {
    let version = app.config_version();
    let max = max_delay_ms(app);
    let current = current(previous, app, now);
    let delay_ms = match current {
        Some(d) if d.delay_ms > 0 => {
            let grown = (d.delay_ms as f64 * app.backoff_factor.max(1.0)).min(max as f64);
            grown as u64
        }
        _ => (u64::from(app.backoff_seconds) * 1000).min(max),
    };
    LaunchDelay {
        config_version: version,
        delay_ms,
        until: now.plus_millis(i64::try_from(delay_ms).unwrap_or(i64::MAX)),
        last_failure: now,
    }
}

/// The delay that still applies at `now`, if any: `None` once the config
/// changed or a whole max-delay window passed without a failure.
pub fn current<'a>(
    delay: Option<&'a LaunchDelay>,
    app: &AppDefinition,
    now: Timestamp,
) -> Option<&'a LaunchDelay> {
    let delay = delay?;
    let forgiven_at = delay
        .last_failure
        .plus_millis(i64::try_from(max_delay_ms(app)).unwrap_or(i64::MAX));
    (delay.config_version == app.config_version() && now < forgiven_at).then_some(delay)
}

/// Milliseconds until the app may launch again (0 = now).
pub fn time_left_ms(delay: Option<&LaunchDelay>, app: &AppDefinition, now: Timestamp) -> u64 {
    current(delay, app, now).map_or(0, |d| {
        u64::try_from(d.until.as_millis() - now.as_millis()).unwrap_or(0)
    })
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::state::app::{AppDefaults, PathId};

    fn app(backoff: u32, factor: f64, max: u32) -> AppDefinition {
        let json = serde_json::json!({
            "id": "/a", "cmd": "x", "backoffSeconds": backoff, "backoffFactor": factor, "maxLaunchDelaySeconds": max
        });
        AppDefinition::from_value(&json, &PathId::root(), &AppDefaults::default())
            .unwrap()
            .with_version(Timestamp::from_millis(1_000), false)
    }

    const T0: i64 = 10_000_000;

    #[test]
    fn delay_grows_by_the_factor_up_to_the_maximum() {
        let a = app(1, 2.0, 5);
        let now = Timestamp::from_millis(T0);
        let d1 = after_failure(None, &a, now);
        assert_eq!(d1.delay_ms, 1000);
        assert_eq!(time_left_ms(Some(&d1), &a, now), 1000);
        let d2 = after_failure(Some(&d1), &a, now.plus_millis(1500));
        assert_eq!(d2.delay_ms, 2000);
        let d3 = after_failure(Some(&d2), &a, now.plus_millis(4000));
        assert_eq!(d3.delay_ms, 4000);
        // Within the 5 s quiet window of the last failure: still growing.
        let d4 = after_failure(Some(&d3), &a, now.plus_millis(8000));
        assert_eq!(d4.delay_ms, 5000, "capped at maxLaunchDelaySeconds");
        assert_eq!(time_left_ms(Some(&d4), &a, now.plus_millis(8000)), 5000);
        assert_eq!(time_left_ms(Some(&d4), &a, now.plus_millis(13_001)), 0);
    }

    #[test]
    fn a_new_config_version_starts_from_zero() {
        let a = app(10, 2.0, 300);
        let d = after_failure(None, &a, Timestamp::from_millis(T0));
        let changed = a.clone().with_version(Timestamp::from_millis(2_000), false);
        assert_eq!(
            time_left_ms(Some(&d), &changed, Timestamp::from_millis(T0)),
            0
        );
        let scaled = a.clone().with_version(Timestamp::from_millis(2_000), true);
        assert!(
            time_left_ms(Some(&d), &scaled, Timestamp::from_millis(T0)) > 0,
            "scaling keeps the delay"
        );
    }

    #[test]
    fn regression_running_does_not_forgive_a_crash_loop_only_a_quiet_window_does() {
        let a = app(1, 2.0, 60);
        let now = Timestamp::from_millis(T0);
        let d1 = after_failure(None, &a, now);
        // The task ran for 30 s and crashed again: the delay still grows.
        let d2 = after_failure(Some(&d1), &a, now.plus_millis(30_000));
        assert_eq!(d2.delay_ms, 2000);
        // After 60 s without a failure the delay is forgiven.
        assert!(current(Some(&d2), &a, now.plus_millis(90_001)).is_none());
        let fresh = after_failure(Some(&d2), &a, now.plus_millis(90_001));
        assert_eq!(fresh.delay_ms, 1000);
    }

    #[test]
    fn zero_backoff_means_no_wait() {
        let a = app(0, 1.15, 300);
        let d = after_failure(None, &a, Timestamp::from_millis(T0));
        assert_eq!(d.delay_ms, 0);
        assert_eq!(time_left_ms(Some(&d), &a, Timestamp::from_millis(T0)), 0);
        let again = after_failure(Some(&d), &a, Timestamp::from_millis(T0 + 1));
        assert_eq!(again.delay_ms, 0);
    }
}
