//! The scaling controller: every second it evaluates each app's scale
//! rules (from [`crate::scale`]) against the current routing table and the
//! app's traffic, and applies the verdicts through Marathon; it also wakes
//! a sleeping app when a request for it arrives, and renders
//! `/_router/autoscale`.
//!
//! Between ticks it remembers, per app, when it first saw the app, the
//! last change and refusal, the count it expects and any wake under way
//! (the app's [`ScaleState`](crate::scale::ScaleState), kept across table
//! generations). An app is left alone while a change settles, during its
//! rule's cooldown, for a few seconds after a refusal, and while it sleeps
//! or wakes.

use std::collections::HashMap;
use std::sync::Arc;
use std::sync::atomic::Ordering::Relaxed;
use std::time::{Duration, SystemTime, UNIX_EPOCH};

use serde_json::{Value, json};
use tokio_util::sync::CancellationToken;
use tracing::{info, warn};

use crate::marathon::Marathon;
use crate::scale::{
    autoscale, autoscale_rule, should_sleep, sleep_labels, sleep_rule, sleeping, wake_labels,
    wake_timeout,
};
use crate::shared::Shared;
use crate::table::Route;
use baton_probe::error_chain;

/// After applying a change, the app is skipped until the table reflects it
/// or this long has passed.
const SETTLE: Duration = Duration::from_secs(10);
/// How often rules are evaluated.
const TICK: Duration = Duration::from_secs(1);
/// After a refused change (say, 409 while a deployment runs), the app is
/// left alone this long, so the decision log is not flooded.
const RETRY_REFUSED: Duration = Duration::from_secs(5);

fn unix_ms() -> u64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map_or(0, |d| d.as_millis() as u64)
}

/// Applies one decision through Marathon and records it.
async fn apply(
    shared: &Shared,
    marathon: &Marathon,
    route: &Route,
    kind: &str,
    to: u64,
    body: Value,
    reason: &str,
) -> bool {
    let result = marathon.put_app(&route.app_id, &body).await;
    let outcome = match &result {
        Ok(()) => {
            info!(app = %route.app_id, kind, from = route.instances, to, reason, "scaling");
            "applied".to_string()
        }
        Err(e) => {
            warn!(app = %route.app_id, kind, from = route.instances, to, reason, error = %error_chain(e), "scaling failed");
            format!("failed: {}", error_chain(e))
        }
    };
    shared.decisions.push(json!({
        "at": unix_ms(),
        "app": route.app_id,
        "kind": kind,
        "from": route.instances,
        "to": to,
        "reason": reason,
        "outcome": outcome,
    }));
    result.is_ok()
}

/// Wakes `route`'s app unless a wake is already under way: scales it back
/// to the count its sleeping label names. Returns at once; the PUT runs in
/// the background.
pub(crate) fn wake(shared: &Arc<Shared>, marathon: &Marathon, route: &Arc<Route>) {
    let Some(to) = sleeping(&route.labels) else {
        return;
    };
    {
        let mut state = route.runtime.scale.lock();
        if state.waking_since_ms.is_some() {
            return;
        }
        state.waking_since_ms = Some(shared.clock.now_ms());
    }
    route.runtime.stats.wakes.fetch_add(1, Relaxed);
    let (background, shared, marathon, route) = (
        shared.background.clone(),
        shared.clone(),
        marathon.clone(),
        route.clone(),
    );
    // On the background runtime: Marathon's client pools its connections
    // there, and a serving thread's runtime ends first at shutdown.
    background.spawn(async move {
        let body = json!({ "instances": to, "labels": wake_labels(&route.labels) });
        if !apply(
            &shared,
            &marathon,
            &route,
            "wake",
            to,
            body,
            "a request arrived",
        )
        .await
        {
            // Let the next request try again.
            route.runtime.scale.lock().waking_since_ms = None;
        }
    });
}

/// What the routers share through Baton's `/v2/routers` (see
/// `scheduler/src/api/routers.rs`): the router elected to decide, whether
/// the sums are complete, and each app's summed rates by window and most
/// recent request.
#[derive(Debug, Default)]
struct Sharing {
    elected: Option<String>,
    complete: bool,
    apps: HashMap<String, (HashMap<u64, f64>, Option<u64>)>,
}

impl Sharing {
    fn read(summed: &Value, fresh_after: Duration) -> Sharing {
        let apps = summed["apps"]
            .as_object()
            .map(|apps| {
                apps.iter()
                    .map(|(id, app)| {
                        let rates = app["rps"]
                            .as_object()
                            .map(|r| {
                                r.iter()
                                    .filter_map(|(w, v)| Some((w.parse().ok()?, v.as_f64()?)))
                                    .collect()
                            })
                            .unwrap_or_default();
                        (id.clone(), (rates, app["lastRequestAgeMs"].as_u64()))
                    })
                    .collect()
            })
            .unwrap_or_default();
        Sharing {
            elected: summed["elected"].as_str().map(str::to_string),
            // A new Baton leader starts empty: decide on its sums only once
            // every router had time to report to it again.
            complete: summed["collectingForMs"]
                .as_u64()
                .is_some_and(|ms| ms >= fresh_after.as_millis() as u64),
            apps,
        }
    }
}

/// How long a new Baton leader collects before its sums are used.
const COLLECT_BEFORE_DECIDING: Duration = Duration::from_secs(3);

/// How long a router following a server without `/v2/routers` (a real
/// Marathon) decides alone before it asks again: not a 404 every second.
const ASK_AGAIN_AFTER_NO_SHARING: Duration = Duration::from_secs(60);

/// Whether the server shares rates: after a 404 this router decides alone
/// for [`ASK_AGAIN_AFTER_NO_SHARING`] (the server may be upgraded to Baton,
/// or a Baton may lead again), and says so once, not every second.
#[derive(Debug, Default)]
struct SharingProbe {
    /// Router ms until which sharing is not tried.
    absent_until_ms: u64,
    /// Whether the absence was logged (since sharing last worked).
    told: bool,
}

impl SharingProbe {
    /// Whether to try sharing at `now_ms`.
    fn wanted(&self, now_ms: u64) -> bool {
        now_ms >= self.absent_until_ms
    }

    /// The server answered 404 at `now_ms`: whether to say so (the first
    /// time only).
    fn absent(&mut self, now_ms: u64) -> bool {
        self.absent_until_ms = now_ms + ASK_AGAIN_AFTER_NO_SHARING.as_millis() as u64;
        !std::mem::replace(&mut self.told, true)
    }

    /// Sharing worked.
    fn present(&mut self) {
        self.told = false;
    }
}

/// Reports this router's rates to Baton and reads everyone's; `None` when
/// there is nothing to share (no rule) or nowhere to share it (a real
/// Marathon, or Baton unreachable): then this router decides alone.
async fn share(
    shared: &Shared,
    marathon: &Marathon,
    now_ms: u64,
    probe: &mut SharingProbe,
) -> Option<Sharing> {
    if !probe.wanted(now_ms) {
        return None;
    }
    let table = shared.table();
    let mut apps = serde_json::Map::new();
    for route in table.routes() {
        let autoscaling = autoscale_rule(&route.labels).and_then(Result::ok);
        let sleep = sleep_rule(&route.labels).and_then(Result::ok);
        if autoscaling.is_none() && sleep.is_none() {
            continue;
        }
        let window = autoscaling.map_or(60, |r| r.window.as_secs().max(1));
        let last = route.runtime.last_request_ms.load(Relaxed);
        apps.insert(
            route.app_id.clone(),
            json!({
                "rps": route.runtime.stats.rate.rate(now_ms / 1000, window),
                "windowSeconds": window,
                "lastRequestAgeMs": (last > 0).then(|| now_ms.saturating_sub(last)),
            }),
        );
    }
    if apps.is_empty() {
        return None;
    }
    let id = &shared.config.router_id;
    match marathon.put_router_load(id, &json!({ "apps": apps })).await {
        Ok(()) => probe.present(),
        Err(crate::marathon::Error::Status { status: 404, .. }) => {
            if probe.absent(now_ms) {
                info!(
                    again_in_s = ASK_AGAIN_AFTER_NO_SHARING.as_secs(),
                    "the server has no /v2/routers (a Marathon): this router decides alone"
                );
            }
            return None;
        }
        Err(e) => {
            warn!(error = %error_chain(&e), "cannot share this router's rates; deciding alone");
            return None;
        }
    }
    match marathon.router_loads().await {
        Ok(Some(summed)) => {
            let sharing = Sharing::read(&summed, COLLECT_BEFORE_DECIDING);
            shared.set_sharing(json!({
                "routerId": id,
                "elected": sharing.elected,
                "deciding": sharing.elected.as_deref() == Some(id.as_str()) && sharing.complete,
                "complete": sharing.complete,
                "routers": summed["routers"],
            }));
            Some(sharing)
        }
        Ok(None) => None,
        Err(e) => {
            warn!(error = %error_chain(&e), "cannot read the routers' rates; deciding alone");
            None
        }
    }
}

/// One evaluation of every app's rules at `now_ms`.
async fn tick(shared: &Shared, marathon: &Marathon, now_ms: u64, probe: &mut SharingProbe) {
    let sharing = share(shared, marathon, now_ms, probe).await;
    if let Some(sharing) = &sharing
        && (sharing.elected.as_deref() != Some(shared.config.router_id.as_str())
            || !sharing.complete)
    {
        // Another router decides (from everyone's traffic), or the sums
        // are not complete yet: nothing to do here this second.
        return;
    }
    let table = shared.table();
    for route in table.routes() {
        let everyone = sharing.as_ref().and_then(|s| s.apps.get(&route.app_id));
        let labels = &route.labels;
        let autoscaling = autoscale_rule(labels);
        let sleep = sleep_rule(labels);
        if autoscaling.is_none() && sleep.is_none() && sleeping(labels).is_none() {
            continue;
        }
        let (observed, idle_from) = {
            let mut state = route.runtime.scale.lock();
            let first_seen = *state.first_seen_ms.get_or_insert(now_ms);
            if state.waking_since_ms.is_some() && !route.upstreams.is_empty() {
                state.waking_since_ms = None;
                state.woke_ms = Some(now_ms);
            }
            if let Some(since) = state.waking_since_ms
                && now_ms.saturating_sub(since) > 2 * wake_timeout(labels).as_millis() as u64
            {
                // Never came up: a later request may try again.
                state.waking_since_ms = None;
            }
            let settled = state.expected.is_none_or(|e| e == route.instances)
                || state
                    .last_change_ms
                    .is_none_or(|at| now_ms.saturating_sub(at) > SETTLE.as_millis() as u64);
            let cooling = |cooldown: Duration| {
                state
                    .last_change_ms
                    .is_some_and(|at| now_ms.saturating_sub(at) < cooldown.as_millis() as u64)
            };
            let refused_lately = state
                .last_refusal_ms
                .is_some_and(|at| now_ms.saturating_sub(at) < RETRY_REFUSED.as_millis() as u64);
            if !settled
                || refused_lately
                || state.waking_since_ms.is_some()
                || sleeping(labels).is_some()
            {
                continue;
            }
            if let Some(Ok(rule)) = &autoscaling
                && cooling(rule.cooldown)
            {
                continue;
            }
            state.expected = None;
            let idle_from = [
                Some(first_seen),
                state.woke_ms,
                Some(route.runtime.last_request_ms.load(Relaxed)),
            ]
            .into_iter()
            .flatten()
            // The most recent request any router saw.
            .chain(
                everyone
                    .and_then(|(_, age)| *age)
                    .map(|age| now_ms.saturating_sub(age)),
            )
            .max()
            .unwrap_or(now_ms);
            (Duration::from_millis(now_ms - first_seen), idle_from)
        };

        let decision = match (&sleep, &autoscaling) {
            (Some(Ok(rule)), _)
                if should_sleep(
                    rule,
                    route.instances,
                    Duration::from_millis(now_ms.saturating_sub(idle_from)),
                ) =>
            {
                let reason = format!("no request for {}s", rule.after.as_secs());
                Some((
                    "sleep",
                    0,
                    json!({ "instances": 0, "labels": sleep_labels(labels, route.instances) }),
                    reason,
                ))
            }
            (_, Some(Ok(rule))) => {
                let window = rule.window.as_secs();
                let rps = match everyone.and_then(|(rates, _)| rates.get(&window.max(1))) {
                    Some(all) => *all,
                    None => route.runtime.stats.rate.rate(now_ms / 1000, window),
                };
                autoscale(rule, route.instances, rps, observed).map(|(to, reason)| {
                    let kind = if to > route.instances {
                        "scale_up"
                    } else {
                        "scale_down"
                    };
                    (kind, to, json!({ "instances": to }), reason)
                })
            }
            _ => None,
        };
        if let Some((kind, to, body, reason)) = decision {
            let applied = apply(shared, marathon, route, kind, to, body, &reason).await;
            let mut state = route.runtime.scale.lock();
            if applied {
                state.last_change_ms = Some(now_ms);
                state.expected = Some(to);
                state.last_refusal_ms = None;
            } else {
                state.last_refusal_ms = Some(now_ms);
            }
        }
    }
}

/// `/_router/autoscale`: each app's rules and state, and the decisions.
pub fn status_json(shared: &Shared) -> Value {
    let table = shared.table();
    let now_ms = shared.clock.now_ms();
    let apps: serde_json::Map<String, Value> = table
        .routes()
        .filter_map(|route| {
            let labels = &route.labels;
            let autoscaling = autoscale_rule(labels);
            let sleep = sleep_rule(labels);
            if autoscaling.is_none() && sleep.is_none() && sleeping(labels).is_none() {
                return None;
            }
            let rule_json = |rule: &Option<Result<Value, String>>| match rule {
                None => Value::Null,
                Some(Ok(v)) => v.clone(),
                Some(Err(e)) => json!({ "error": e }),
            };
            let autoscale_json = autoscaling.map(|r| {
                r.map(|r| {
                    json!({
                        "min": r.min, "max": r.max, "targetRpsPerInstance": r.target_rps,
                        "windowSeconds": r.window.as_secs(), "cooldownSeconds": r.cooldown.as_secs(),
                        "rps": route.runtime.stats.rate.rate(now_ms / 1000, r.window.as_secs()),
                    })
                })
            });
            let sleep_json = sleep.map(|r| r.map(|r| json!({ "afterSeconds": r.after.as_secs() })));
            let idle_ms = now_ms.saturating_sub(route.runtime.last_request_ms.load(Relaxed));
            Some((
                route.app_id.clone(),
                json!({
                    "instances": route.instances,
                    "routable": route.upstreams.len(),
                    "autoscale": rule_json(&autoscale_json),
                    "sleep": rule_json(&sleep_json),
                    "sleeping": sleeping(labels).is_some(),
                    "waking": route.runtime.scale.waking(),
                    "wakeTimeoutSeconds": wake_timeout(labels).as_secs(),
                    "idleSeconds": idle_ms / 1000,
                }),
            ))
        })
        .collect();
    json!({ "apps": apps, "decisions": shared.decisions.to_json(), "sharing": shared.sharing() })
}

/// Evaluates the rules every second until `shutdown`.
pub(crate) async fn run(shared: Arc<Shared>, marathon: Marathon, shutdown: CancellationToken) {
    if !shared.config.autoscale {
        return;
    }
    let mut ticks = tokio::time::interval(TICK);
    ticks.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
    let mut probe = SharingProbe::default();
    loop {
        tokio::select! {
            _ = ticks.tick() => {}
            () = shutdown.cancelled() => return,
        }
        if shared.table().loaded {
            tick(&shared, &marathon, shared.clock.now_ms(), &mut probe).await;
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_server_without_router_sharing_is_asked_again_a_minute_later_and_told_once() {
        let mut probe = SharingProbe::default();
        assert!(probe.wanted(0));
        assert!(probe.absent(1_000), "said the first time");
        assert!(!probe.wanted(1_001));
        assert!(!probe.wanted(60_999));
        assert!(probe.wanted(61_000));
        assert!(!probe.absent(61_000), "not said again");
        // Once sharing worked, a later absence is news again.
        probe.present();
        assert!(probe.absent(200_000));
    }

    #[test]
    fn shared_sums_are_used_only_once_a_new_baton_leader_collected_long_enough() {
        let summed = |collecting: u64| {
            json!({
                "collectingForMs": collecting,
                "elected": "router-a",
                "apps": {"/web": {"rps": {"3": 20.5, "60": 1.0}, "lastRequestAgeMs": 120}},
            })
        };
        let young = Sharing::read(&summed(1_000), COLLECT_BEFORE_DECIDING);
        assert!(!young.complete, "a leader of a second may miss routers");
        let sharing = Sharing::read(&summed(3_000), COLLECT_BEFORE_DECIDING);
        assert!(sharing.complete);
        assert_eq!(sharing.elected.as_deref(), Some("router-a"));
        let (rates, last) = &sharing.apps["/web"];
        assert_eq!((rates[&3], rates[&60], *last), (20.5, 1.0, Some(120)));
        // Whatever Baton answers that is not its shape shares nothing.
        let nothing = Sharing::read(&json!({"message": "?"}), COLLECT_BEFORE_DECIDING);
        assert!(!nothing.complete && nothing.elected.is_none() && nothing.apps.is_empty());
    }
}
