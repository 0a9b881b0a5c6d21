//! Scaling apps by their traffic: autoscaling by request rate, and sleep
//! and wake.
//!
//! Rules come from app labels; decisions are the pure [`autoscale`] and
//! [`should_sleep`], applied through Marathon's REST API (`PUT
//! /v2/apps/{id}`, never with `force`, so a running deployment is not
//! cancelled: a refused change is retried 5 s later). Every decision is logged
//! and kept, with its outcome, for `/_router/autoscale`.
//!
//! This module is the pure part: the rules and verdicts, the state the
//! controller keeps per app between ticks ([`ScaleState`]) and the
//! [`DecisionLog`]. The controller itself (the one-second loop, wakes, the
//! `PUT`s, `/_router/autoscale`) is `scaler`, above the routing table.
//!
//! **Autoscaling** (`BATON_AUTOSCALE_MIN`, `_MAX`,
//! `_TARGET_RPS_PER_INSTANCE`, `_WINDOW` (default 60 s), `_COOLDOWN`
//! (default 30 s)): the app's mean request rate over the window, divided by
//! the target per instance, rounded up, is the wanted count, kept within
//! min and max. Up at once; down only when the rate would fit the smaller
//! count at [`DOWN_MARGIN`] of the target (hysteresis), and never before
//! the router has watched the app for a whole window (a fresh router has
//! no history and would read "idle"). After any change the app is left
//! alone for the cooldown.
//!
//! **Sleep** (`BATON_SLEEP_AFTER`): an app without a request for that long
//! is scaled to 0 and labelled `BATON_SLEEPING=<its count>`, which is how
//! it shows as sleeping in Marathon's API. **Wake**: a request for a
//! sleeping app scales it back (dropping the label) and is held until an
//! instance is routable, for up to `BATON_WAKE_TIMEOUT` (default 60 s);
//! then 503 with `Retry-After`, or for browsers (`Accept: text/html`) a
//! small page that reloads itself. Durations are seconds or humantime
//! (`90`, `90s`, `5m`).
//!
//! Each router decides from its own traffic: run one router per app set
//! when scaling by rate, or the routers' views add up wrongly.

use std::collections::{BTreeMap, VecDeque};
use std::sync::{Mutex, MutexGuard, PoisonError};
use std::time::Duration;

use serde_json::{Value, json};

use crate::stats::RATE_WINDOW_SECS;

/// Label: least instances the autoscaler keeps.
pub const LABEL_MIN: &str = "BATON_AUTOSCALE_MIN";
/// Label: most instances the autoscaler makes.
pub const LABEL_MAX: &str = "BATON_AUTOSCALE_MAX";
/// Label: requests per second one instance should take.
pub const LABEL_TARGET: &str = "BATON_AUTOSCALE_TARGET_RPS_PER_INSTANCE";
/// Label: the window the rate is averaged over.
pub const LABEL_WINDOW: &str = "BATON_AUTOSCALE_WINDOW";
/// Label: quiet time after a change.
pub const LABEL_COOLDOWN: &str = "BATON_AUTOSCALE_COOLDOWN";
/// Label: idle time after which the app sleeps.
pub const LABEL_SLEEP_AFTER: &str = "BATON_SLEEP_AFTER";
/// Label: how long a request waits for a waking app.
pub const LABEL_WAKE_TIMEOUT: &str = "BATON_WAKE_TIMEOUT";
/// Label set on a sleeping app: the instance count to wake to.
pub const LABEL_SLEEPING: &str = "BATON_SLEEPING";

const DEFAULT_WINDOW: Duration = Duration::from_secs(60);
const DEFAULT_COOLDOWN: Duration = Duration::from_secs(30);
const DEFAULT_WAKE_TIMEOUT: Duration = Duration::from_secs(60);
/// Scale down only when the rate fits the smaller count at this fraction of
/// the target, so a rate hovering at a boundary does not flap.
pub const DOWN_MARGIN: f64 = 0.8;
/// The longest window the rate counters keep.
const MAX_WINDOW: Duration = Duration::from_secs(RATE_WINDOW_SECS - 1);
/// Decisions kept for `/_router/autoscale`.
const KEPT_DECISIONS: usize = 200;

/// An app's autoscaling rule.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct AutoscaleRule {
    /// Least instances.
    pub min: u64,
    /// Most instances.
    pub max: u64,
    /// Requests per second per instance.
    pub target_rps: f64,
    /// Averaging window.
    pub window: Duration,
    /// Quiet time after a change.
    pub cooldown: Duration,
}

/// An app's sleep rule.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct SleepRule {
    /// Idle time before sleeping.
    pub after: Duration,
}

/// A duration label: whole seconds, or humantime (`90s`, `5m`).
pub fn parse_duration(text: &str) -> Result<Duration, String> {
    let text = text.trim();
    if let Ok(secs) = text.parse::<u64>() {
        return Ok(Duration::from_secs(secs));
    }
    humantime::parse_duration(text).map_err(|e| format!("{text:?} is not a duration ({e})"))
}

fn duration_label(
    labels: &BTreeMap<String, String>,
    name: &str,
) -> Result<Option<Duration>, String> {
    labels
        .get(name)
        .map(|v| parse_duration(v).map_err(|e| format!("{name}: {e}")))
        .transpose()
}

fn count_label(labels: &BTreeMap<String, String>, name: &str) -> Result<Option<u64>, String> {
    labels
        .get(name)
        .map(|v| {
            v.trim()
                .parse()
                .map_err(|_| format!("{name}: {v:?} is not a whole number"))
        })
        .transpose()
}

/// The app's autoscaling rule: `None` without `BATON_AUTOSCALE_*` labels,
/// an error naming the label that is wrong.
pub fn autoscale_rule(labels: &BTreeMap<String, String>) -> Option<Result<AutoscaleRule, String>> {
    if !labels.keys().any(|k| k.starts_with("BATON_AUTOSCALE_")) {
        return None;
    }
    Some((|| {
        let max = count_label(labels, LABEL_MAX)?.ok_or(format!("{LABEL_MAX} is required"))?;
        let min = count_label(labels, LABEL_MIN)?.unwrap_or(1);
        if min > max {
            return Err(format!("{LABEL_MIN} ({min}) is above {LABEL_MAX} ({max})"));
        }
        let target = labels
            .get(LABEL_TARGET)
            .ok_or(format!("{LABEL_TARGET} is required"))?;
        let target_rps: f64 = target
            .trim()
            .parse()
            .ok()
            .filter(|t: &f64| t.is_finite() && *t > 0.0)
            .ok_or(format!(
                "{LABEL_TARGET}: {target:?} is not a positive number"
            ))?;
        let window = duration_label(labels, LABEL_WINDOW)?.unwrap_or(DEFAULT_WINDOW);
        if window < Duration::from_secs(1) || window > MAX_WINDOW {
            return Err(format!(
                "{LABEL_WINDOW} must be between 1s and {}s",
                MAX_WINDOW.as_secs()
            ));
        }
        Ok(AutoscaleRule {
            min,
            max,
            target_rps,
            window,
            cooldown: duration_label(labels, LABEL_COOLDOWN)?.unwrap_or(DEFAULT_COOLDOWN),
        })
    })())
}

/// The app's sleep rule: `None` without `BATON_SLEEP_AFTER`.
pub fn sleep_rule(labels: &BTreeMap<String, String>) -> Option<Result<SleepRule, String>> {
    let after = duration_label(labels, LABEL_SLEEP_AFTER).transpose()?;
    Some(after.and_then(|after| {
        if after.is_zero() {
            Err(format!("{LABEL_SLEEP_AFTER} must be above zero"))
        } else {
            Ok(SleepRule { after })
        }
    }))
}

/// How long a request may wait for the app to wake.
pub fn wake_timeout(labels: &BTreeMap<String, String>) -> Duration {
    duration_label(labels, LABEL_WAKE_TIMEOUT)
        .ok()
        .flatten()
        .unwrap_or(DEFAULT_WAKE_TIMEOUT)
}

/// The count a sleeping app wakes to; `None` when it is not asleep.
pub fn sleeping(labels: &BTreeMap<String, String>) -> Option<u64> {
    labels
        .get(LABEL_SLEEPING)
        .map(|v| v.trim().parse().unwrap_or(1).max(1))
}

/// The autoscaler's verdict for an app at `current` instances with `rps`
/// over the rule's window, watched for `observed`: the new count and why,
/// or `None` to leave it.
pub fn autoscale(
    rule: &AutoscaleRule,
    current: u64,
    rps: f64,
    observed: Duration,
) -> Option<(u64, String)> {
    let wanted = |per_instance: f64| ((rps / per_instance).ceil() as u64).clamp(rule.min, rule.max);
    let up = wanted(rule.target_rps);
    if current < rule.min || up > current {
        let to = up.max(rule.min);
        return Some((
            to,
            format!(
                "{rps:.1} req/s over {}s needs {to} at {} req/s each",
                rule.window.as_secs(),
                rule.target_rps
            ),
        ));
    }
    if current > rule.max {
        return Some((rule.max, format!("above the maximum {}", rule.max)));
    }
    let down = wanted(rule.target_rps * DOWN_MARGIN);
    if down < current && observed >= rule.window {
        return Some((
            down,
            format!(
                "{rps:.1} req/s over {}s fits {down} at {:.0}% of {} req/s each",
                rule.window.as_secs(),
                DOWN_MARGIN * 100.0,
                rule.target_rps
            ),
        ));
    }
    None
}

/// Whether an app at `current` instances, idle for `idle`, goes to sleep.
pub fn should_sleep(rule: &SleepRule, current: u64, idle: Duration) -> bool {
    current > 0 && idle >= rule.after
}

/// The labels of a sleeping app: its own plus [`LABEL_SLEEPING`].
pub fn sleep_labels(labels: &BTreeMap<String, String>, wake_to: u64) -> Value {
    let mut labels = labels.clone();
    labels.insert(LABEL_SLEEPING.into(), wake_to.to_string());
    json!(labels)
}

/// The labels of a woken app: without [`LABEL_SLEEPING`].
pub fn wake_labels(labels: &BTreeMap<String, String>) -> Value {
    let mut labels = labels.clone();
    labels.remove(LABEL_SLEEPING);
    json!(labels)
}

/// The page a browser gets while the app is still starting.
pub fn starting_page(app_id: &str, retry_after_secs: u64) -> String {
    let app = app_id
        .replace('&', "&amp;")
        .replace('<', "&lt;")
        .replace('>', "&gt;")
        .replace('"', "&quot;");
    format!(
        "<!doctype html>\n<html><head><meta charset=\"utf-8\">\
         <meta http-equiv=\"refresh\" content=\"{retry_after_secs}\">\
         <title>Starting {app}</title></head>\
         <body><h1>Starting {app}…</h1>\
         <p>The app was asleep and is starting. This page reloads itself.</p>\
         </body></html>\n"
    )
}

/// What the controller keeps per app between ticks (inside the app's
/// runtime state, so it outlives routing-table rebuilds).
#[derive(Debug, Default)]
pub struct ScaleState {
    inner: Mutex<ScaleInner>,
}

/// [`ScaleState`]'s fields, read and written by the controller under the
/// lock.
#[derive(Debug, Default)]
pub(crate) struct ScaleInner {
    /// When the controller first saw the app (router clock, ms).
    pub(crate) first_seen_ms: Option<u64>,
    /// When the last change was applied.
    pub(crate) last_change_ms: Option<u64>,
    /// When the last change was refused (a deployment in progress: 409).
    pub(crate) last_refusal_ms: Option<u64>,
    /// The count the last change asked for, until the table shows it.
    pub(crate) expected: Option<u64>,
    /// Since when a wake is under way.
    pub(crate) waking_since_ms: Option<u64>,
    /// When the app last woke (idle time counts from there too).
    pub(crate) woke_ms: Option<u64>,
}

impl ScaleState {
    /// The fields, for the controller.
    pub(crate) fn lock(&self) -> MutexGuard<'_, ScaleInner> {
        self.inner.lock().unwrap_or_else(PoisonError::into_inner)
    }

    /// Whether a wake is under way.
    pub fn waking(&self) -> bool {
        self.lock().waking_since_ms.is_some()
    }
}

/// Decisions, newest last, for `/_router/autoscale`.
#[derive(Debug, Default)]
pub struct DecisionLog {
    entries: Mutex<VecDeque<Value>>,
}

impl DecisionLog {
    /// Keeps `entry`, dropping the oldest when full.
    pub(crate) fn push(&self, entry: Value) {
        let mut entries = self.entries.lock().unwrap_or_else(PoisonError::into_inner);
        if entries.len() == KEPT_DECISIONS {
            entries.pop_front();
        }
        entries.push_back(entry);
    }

    /// The kept decisions, oldest first.
    pub fn to_json(&self) -> Vec<Value> {
        let entries = self.entries.lock().unwrap_or_else(PoisonError::into_inner);
        entries.iter().cloned().collect()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn labels(pairs: &[(&str, &str)]) -> BTreeMap<String, String> {
        pairs
            .iter()
            .map(|(k, v)| (k.to_string(), v.to_string()))
            .collect()
    }

    fn rule() -> AutoscaleRule {
        AutoscaleRule {
            min: 1,
            max: 4,
            target_rps: 10.0,
            window: Duration::from_secs(30),
            cooldown: Duration::from_secs(10),
        }
    }

    #[test]
    fn rules_from_labels_and_their_errors_name_the_label() {
        assert!(autoscale_rule(&labels(&[("OTHER", "1")])).is_none());
        let parsed = autoscale_rule(&labels(&[
            (LABEL_MIN, "2"),
            (LABEL_MAX, "5"),
            (LABEL_TARGET, "12.5"),
            (LABEL_WINDOW, "2m"),
        ]))
        .unwrap()
        .unwrap();
        assert_eq!((parsed.min, parsed.max, parsed.target_rps), (2, 5, 12.5));
        assert_eq!(parsed.window, Duration::from_secs(120));
        assert_eq!(parsed.cooldown, DEFAULT_COOLDOWN);
        let err = |pairs: &[(&str, &str)]| autoscale_rule(&labels(pairs)).unwrap().unwrap_err();
        assert_eq!(err(&[(LABEL_MIN, "1")]), format!("{LABEL_MAX} is required"));
        assert!(err(&[(LABEL_MAX, "3"), (LABEL_TARGET, "0")]).starts_with(LABEL_TARGET));
        assert!(err(&[(LABEL_MAX, "3"), (LABEL_MIN, "4"), (LABEL_TARGET, "1")]).contains("above"));
        assert!(err(&[(LABEL_MAX, "x"), (LABEL_TARGET, "1")]).starts_with(LABEL_MAX));
        assert!(
            err(&[(LABEL_MAX, "3"), (LABEL_TARGET, "1"), (LABEL_WINDOW, "1h")])
                .starts_with(LABEL_WINDOW)
        );

        assert!(sleep_rule(&labels(&[])).is_none());
        assert_eq!(
            sleep_rule(&labels(&[(LABEL_SLEEP_AFTER, "90")])),
            Some(Ok(SleepRule {
                after: Duration::from_secs(90)
            }))
        );
        assert!(
            sleep_rule(&labels(&[(LABEL_SLEEP_AFTER, "soon")]))
                .unwrap()
                .is_err()
        );
        assert_eq!(
            wake_timeout(&labels(&[(LABEL_WAKE_TIMEOUT, "5s")])),
            Duration::from_secs(5)
        );
        assert_eq!(wake_timeout(&labels(&[])), DEFAULT_WAKE_TIMEOUT);
        assert_eq!(sleeping(&labels(&[(LABEL_SLEEPING, "3")])), Some(3));
        assert_eq!(sleeping(&labels(&[])), None);
    }

    #[test]
    fn scales_up_at_once_within_the_bounds() {
        let r = rule();
        let observed = Duration::ZERO;
        assert_eq!(autoscale(&r, 1, 25.0, observed).map(|d| d.0), Some(3));
        assert_eq!(autoscale(&r, 1, 500.0, observed).map(|d| d.0), Some(4));
        assert_eq!(autoscale(&r, 0, 0.0, observed).map(|d| d.0), Some(1));
        assert_eq!(autoscale(&r, 3, 25.0, observed), None);
        assert_eq!(autoscale(&r, 6, 25.0, observed).map(|d| d.0), Some(4));
    }

    #[test]
    fn scales_down_with_hysteresis_after_a_whole_window() {
        let r = rule();
        let watched = Duration::from_secs(30);
        // 25 req/s needs 3; at 80 % of the target 4 would be needed: stay.
        assert_eq!(autoscale(&r, 4, 25.0, watched), None);
        // 15 req/s: 2 at 8 req/s each.
        assert_eq!(autoscale(&r, 4, 15.0, watched).map(|d| d.0), Some(2));
        // Not before the router has watched a whole window.
        assert_eq!(autoscale(&r, 4, 0.0, Duration::from_secs(29)), None);
        // Never below the minimum.
        assert_eq!(autoscale(&r, 4, 0.0, watched).map(|d| d.0), Some(1));
        assert_eq!(autoscale(&r, 1, 0.0, watched), None);
    }

    #[test]
    fn sleeps_when_idle_long_enough() {
        let r = SleepRule {
            after: Duration::from_secs(60),
        };
        assert!(should_sleep(&r, 2, Duration::from_secs(60)));
        assert!(!should_sleep(&r, 2, Duration::from_secs(59)));
        assert!(!should_sleep(&r, 0, Duration::from_secs(600)));
    }

    #[test]
    fn sleeping_label_round_trip_keeps_the_other_labels() {
        let own = labels(&[("BATON_VHOST", "a.test")]);
        let asleep = sleep_labels(&own, 3);
        assert_eq!(
            asleep,
            json!({"BATON_VHOST": "a.test", "BATON_SLEEPING": "3"})
        );
        let asleep: BTreeMap<String, String> = serde_json::from_value(asleep).unwrap();
        assert_eq!(sleeping(&asleep), Some(3));
        assert_eq!(wake_labels(&asleep), json!({"BATON_VHOST": "a.test"}));
    }

    #[test]
    fn the_starting_page_refreshes_and_escapes_the_app_id() {
        let page = starting_page("/a<b>", 5);
        assert!(page.contains("http-equiv=\"refresh\" content=\"5\""));
        assert!(page.contains("/a&lt;b&gt;"));
        assert!(!page.contains("<b>"));
    }
}
