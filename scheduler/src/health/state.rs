//! The health of one check of one task, as pure values: Marathon's `Health`
//! and the rules of its `HealthCheckActor` for ignoring and acting on
//! results.

use super::HealthResult;
use crate::state::app::{HealthCheck, Timestamp};

/// What one check has seen of one task.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct CheckState {
    /// Failures since the last success (ignored ones not counted).
    pub consecutive_failures: u32,
    /// The first passing probe.
    pub first_success: Option<Timestamp>,
    /// The last passing probe.
    pub last_success: Option<Timestamp>,
    /// The last counted failure.
    pub last_failure: Option<Timestamp>,
    /// Why the last counted failure failed.
    pub last_failure_cause: Option<String>,
    /// The last counted result: `None` until there is one.
    pub alive: Option<bool>,
}

/// What recording one result means for the reconcile loop.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Verdict {
    /// The health before the result.
    pub previous: Option<bool>,
    /// The health after it.
    pub alive: Option<bool>,
    /// `alive` differs from `previous` (`health_status_changed_event`;
    /// unknown → unhealthy counts as a change).
    pub changed: bool,
    /// A failure ignored under the grace period: nothing was recorded.
    pub ignored: bool,
    /// `consecutiveFailures ≥ maxConsecutiveFailures > 0` after a counted
    /// failure: the task should be killed (`unhealthy_instance_kill_event`,
    /// reason `FailedHealthChecks`). Repeats on every further failure until
    /// the task is gone; the loop dedupes its kills.
    pub kill: bool,
}

impl CheckState {
    /// Applies a probe's result for a task RUNNING since `started_at`.
    ///
    /// A success resets the failure count. A failure is ignored (nothing
    /// recorded) while no success has been seen yet and the result falls
    /// within `gracePeriodSeconds` of `started_at` (Marathon's
    /// `ignoreFailures`); otherwise it counts. `maxConsecutiveFailures = 0`
    /// never asks for a kill.
    ///
    /// Marathon compares the count from *before* the failure against the
    /// maximum, killing on failure `max + 1`; this uses the count after it,
    /// so the kill comes on failure `max`, as the field's documentation
    /// ("kill after this many failures in a row") says.
    pub fn record(
        &mut self,
        result: &HealthResult,
        check: &HealthCheck,
        started_at: Timestamp,
    ) -> Verdict {
        let previous = self.alive;
        if result.alive {
            self.first_success.get_or_insert(result.at);
            self.last_success = Some(result.at);
            self.consecutive_failures = 0;
            self.alive = Some(true);
        } else {
            let grace_ms = i64::from(check.grace_period_seconds) * 1000;
            if self.first_success.is_none() && result.at < started_at.plus_millis(grace_ms) {
                return Verdict {
                    previous,
                    alive: previous,
                    changed: false,
                    ignored: true,
                    kill: false,
                };
            }
            self.last_failure = Some(result.at);
            self.last_failure_cause = result.cause.clone();
            self.consecutive_failures = self.consecutive_failures.saturating_add(1);
            self.alive = Some(false);
        }
        let max = check.max_consecutive_failures;
        Verdict {
            previous,
            alive: self.alive,
            changed: previous != self.alive,
            ignored: false,
            kill: !result.alive && max > 0 && self.consecutive_failures >= max,
        }
    }
}

/// The health of a task from the states of its Marathon-level checks (one
/// per check that has a state): `Some(false)` when any is failing,
/// `Some(true)` when there is at least one and all pass, else `None`
/// (unknown: no counted result yet). Callers that need "every check has
/// passed" pass one state per check of the app.
pub fn instance_alive<'a>(states: impl IntoIterator<Item = &'a CheckState>) -> Option<bool> {
    let (mut passing, mut unknown) = (false, false);
    for state in states {
        match state.alive {
            Some(false) => return Some(false),
            Some(true) => passing = true,
            None => unknown = true,
        }
    }
    (passing && !unknown).then_some(true)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::health::test_support::check;
    use crate::state::app::HealthCheckProtocol;

    const START: i64 = 1_000_000;

    fn hc(grace: u32, max: u32) -> HealthCheck {
        HealthCheck {
            grace_period_seconds: grace,
            max_consecutive_failures: max,
            ..check(HealthCheckProtocol::Http)
        }
    }

    /// A result `secs` seconds after START.
    fn result(alive: bool, secs: i64) -> HealthResult {
        HealthResult {
            task_id: "t".into(),
            check_index: 0,
            alive,
            cause: (!alive).then(|| "500 Internal Server Error".to_string()),
            at: Timestamp::from_millis(START + secs * 1000),
        }
    }

    fn started() -> Timestamp {
        Timestamp::from_millis(START)
    }

    #[test]
    fn failures_in_the_grace_period_are_ignored_until_the_first_success() {
        let check = hc(60, 3);
        let mut s = CheckState::default();
        for secs in [1, 10, 59] {
            let v = s.record(&result(false, secs), &check, started());
            assert!(v.ignored && !v.changed && !v.kill, "{v:?}");
        }
        assert_eq!(s, CheckState::default(), "ignored failures record nothing");

        let v = s.record(&result(true, 30), &check, started());
        assert_eq!(
            (v.previous, v.alive, v.changed, v.ignored),
            (None, Some(true), true, false)
        );
        // After a success, failures count even inside the grace period.
        let v = s.record(&result(false, 40), &check, started());
        assert!(!v.ignored && v.changed, "{v:?}");
        assert_eq!(v.alive, Some(false));
        assert_eq!(s.consecutive_failures, 1);
    }

    #[test]
    fn failures_after_the_grace_period_count_without_any_success() {
        let check = hc(60, 3);
        let mut s = CheckState::default();
        let v = s.record(&result(false, 60), &check, started());
        assert!(!v.ignored, "the grace period ends at start + 60 s");
        assert_eq!((v.previous, v.alive, v.changed), (None, Some(false), true));
        assert_eq!(s.consecutive_failures, 1);
        assert_eq!(s.first_success, None);
    }

    #[test]
    fn consecutive_failures_make_a_kill_due_at_the_maximum() {
        let check = hc(0, 3);
        let mut s = CheckState::default();
        let kills: Vec<bool> = (1..=4)
            .map(|i| s.record(&result(false, i), &check, started()).kill)
            .collect();
        assert_eq!(kills, vec![false, false, true, true]);
        assert_eq!(s.consecutive_failures, 4);
        assert_eq!(
            s.last_failure_cause.as_deref(),
            Some("500 Internal Server Error")
        );
        assert_eq!(s.last_failure, Some(Timestamp::from_millis(START + 4000)));
    }

    #[test]
    fn zero_max_consecutive_failures_never_kills() {
        let check = hc(0, 0);
        let mut s = CheckState::default();
        for i in 1..=50 {
            assert!(!s.record(&result(false, i), &check, started()).kill);
        }
        assert_eq!(s.consecutive_failures, 50);
    }

    #[test]
    fn a_success_resets_the_failure_count() {
        let check = hc(0, 2);
        let mut s = CheckState::default();
        assert!(!s.record(&result(false, 1), &check, started()).kill);
        let v = s.record(&result(true, 2), &check, started());
        assert_eq!(
            (v.previous, v.alive, v.changed),
            (Some(false), Some(true), true)
        );
        assert_eq!(s.consecutive_failures, 0);
        assert!(!s.record(&result(false, 3), &check, started()).kill);
        assert!(s.record(&result(false, 4), &check, started()).kill);
        // Successes keep the first one and move the last one.
        s.record(&result(true, 5), &check, started());
        let v = s.record(&result(true, 6), &check, started());
        assert!(!v.changed);
        assert_eq!(s.first_success, Some(Timestamp::from_millis(START + 2000)));
        assert_eq!(s.last_success, Some(Timestamp::from_millis(START + 6000)));
        // The last failure is kept for the JSON.
        assert_eq!(s.last_failure, Some(Timestamp::from_millis(START + 4000)));
    }

    #[test]
    fn a_task_is_healthy_when_all_its_checks_pass() {
        let up = CheckState {
            alive: Some(true),
            ..CheckState::default()
        };
        let down = CheckState {
            alive: Some(false),
            ..CheckState::default()
        };
        let unknown = CheckState::default();
        assert_eq!(instance_alive([]), None);
        assert_eq!(instance_alive([&up, &up]), Some(true));
        assert_eq!(instance_alive([&up, &unknown]), None);
        assert_eq!(instance_alive([&unknown, &up]), None);
        assert_eq!(instance_alive([&unknown, &down]), Some(false));
        assert_eq!(instance_alive([&up, &down]), Some(false));
    }
}
