//! Keeping the routing table in step with Marathon, as marathon-lb does:
//! the app list (`GET /v2/apps?embed=apps.tasks`) plus the event stream
//! (`GET /v2/events`, Server-Sent Events).
//!
//! Two tasks:
//!
//! - the **follower** holds the event stream open (`Accept:
//!   text/event-stream`, only the event types that can change a route),
//!   parses it ([`SseParser`]), maps each event to the apps it affects
//!   ([`affected`]) and queues refreshes. On every (re)connect it queues a
//!   full resync: events missed while disconnected are covered by it. A
//!   lost or idle stream is reopened with jittered exponential backoff.
//! - the **refresher** takes everything queued at once (a burst of events
//!   for one app costs one fetch), fetches the affected apps
//!   (`GET /v2/apps/{id}`; 404 removes the app) or the whole list, and
//!   publishes the next [`Table`]. It also resyncs fully every
//!   `resync_interval`, in case an event never came. A failed fetch is
//!   retried, escalated to a full resync, after a backoff.
//!
//! The stream subscribes before the list is fetched, so nothing that
//! happens between the two is lost; Marathon's events are only
//! invalidation signals (their order is not guaranteed), so every change
//! is read back from the API rather than applied from the event body.
//! Both talk to Marathon through the client in [`crate::marathon`].
//!
//! The credentials files that apps' `BATON_AUTH_FILE` labels name are part
//! of their routes: each table is published only once the files it names
//! have been read (a new app behind authentication is never reachable
//! before its users are known), and a third task, the **credentials
//! watcher**, re-reads files whose stamp changed every
//! `auth_reload_interval`.

use std::collections::BTreeSet;
use std::sync::Arc;
use std::sync::atomic::Ordering::Relaxed;
use std::time::{Duration, Instant};

use rand::Rng;
use serde_json::Value;
use tokio::sync::mpsc;
use tokio_util::sync::CancellationToken;
use tracing::{Instrument, debug, info, info_span, warn};

use crate::marathon::{Error, Marathon};
use crate::shared::Shared;
use crate::table::Table;
use baton_probe::error_chain;

/// Event types that can change a route; the stream asks for these only.
pub const EVENT_TYPES: [&str; 14] = [
    "status_update_event",
    "health_status_changed_event",
    "failed_health_check_event",
    "unhealthy_instance_kill_event",
    "instance_changed_event",
    "instance_health_changed_event",
    "api_post_event",
    "app_terminated_event",
    "deployment_info",
    "deployment_success",
    "deployment_failed",
    "deployment_step_success",
    "deployment_step_failure",
    "group_change_success",
];

/// One Server-Sent Event.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct SseEvent {
    /// The `event:` field ("message" without one).
    pub name: String,
    /// The `data:` lines, joined by newlines.
    pub data: String,
}

/// An incremental Server-Sent Events parser (the subset Marathon uses:
/// `event`, `data`, comments; `id` and `retry` are ignored).
#[derive(Debug, Default)]
pub struct SseParser {
    /// Bytes of an unfinished line.
    partial: Vec<u8>,
    name: String,
    data: Vec<String>,
}

impl SseParser {
    /// Feeds a chunk; returns the events it completed.
    pub fn push(&mut self, chunk: &[u8]) -> Vec<SseEvent> {
        let mut events = Vec::new();
        self.partial.extend_from_slice(chunk);
        while let Some(end) = self.partial.iter().position(|b| *b == b'\n') {
            let mut line: Vec<u8> = self.partial.drain(..=end).collect();
            line.pop();
            if line.last() == Some(&b'\r') {
                line.pop();
            }
            let line = String::from_utf8_lossy(&line);
            if line.is_empty() {
                if !self.data.is_empty() {
                    events.push(SseEvent {
                        name: if self.name.is_empty() {
                            "message".into()
                        } else {
                            std::mem::take(&mut self.name)
                        },
                        data: self.data.join("\n"),
                    });
                }
                self.name.clear();
                self.data.clear();
                continue;
            }
            if line.starts_with(':') {
                continue;
            }
            let (field, value) = line.split_once(':').unwrap_or((&line, ""));
            let value = value.strip_prefix(' ').unwrap_or(value);
            match field {
                "event" => self.name = value.to_string(),
                "data" => self.data.push(value.to_string()),
                _ => {}
            }
        }
        events
    }
}

/// What an event invalidates.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Affects {
    /// Nothing the router keeps.
    Nothing,
    /// These apps.
    Apps(Vec<String>),
    /// Possibly anything: resync fully.
    All,
}

/// The apps an event may have changed.
pub fn affected(event_type: &str, data: &Value) -> Affects {
    let one = |field: &Value| match field.as_str() {
        Some(id) if !id.is_empty() => Affects::Apps(vec![id.to_string()]),
        _ => Affects::All,
    };
    match event_type {
        "status_update_event"
        | "health_status_changed_event"
        | "failed_health_check_event"
        | "unhealthy_instance_kill_event"
        | "unhealthy_task_kill_event"
        | "app_terminated_event"
        | "add_health_check_event"
        | "remove_health_check_event" => one(&data["appId"]),
        "instance_changed_event" | "instance_health_changed_event" => one(&data["runSpecId"]),
        "api_post_event" => one(&data["appDefinition"]["id"]),
        "deployment_info"
        | "deployment_success"
        | "deployment_failed"
        | "deployment_step_success"
        | "deployment_step_failure" => {
            let steps = data["plan"]["steps"].as_array().into_iter().flatten();
            let mut apps: Vec<String> = steps
                .chain([&data["currentStep"]])
                .flat_map(|step| step["actions"].as_array().into_iter().flatten())
                .filter_map(|action| action["app"].as_str().map(str::to_string))
                .collect();
            apps.sort();
            apps.dedup();
            if apps.is_empty() {
                Affects::All
            } else {
                Affects::Apps(apps)
            }
        }
        "group_change_success" => Affects::All,
        _ => Affects::Nothing,
    }
}

/// A request for the refresher.
#[derive(Debug, Clone, PartialEq, Eq)]
enum Refresh {
    All,
    App(String),
}

/// Exponential backoff with jitter.
#[derive(Debug)]
struct Backoff {
    next: Duration,
}

impl Backoff {
    const FIRST: Duration = Duration::from_millis(100);
    const MAX: Duration = Duration::from_secs(5);

    fn new() -> Backoff {
        Backoff { next: Self::FIRST }
    }

    fn reset(&mut self) {
        self.next = Self::FIRST;
    }

    /// The delay to wait now (±20 %), doubling the next one.
    fn delay(&mut self) -> Duration {
        let base = self.next;
        self.next = (self.next * 2).min(Self::MAX);
        base.mul_f64(rand::rng().random_range(0.8..1.2))
    }
}

/// Follows Marathon until `shutdown`: the follower, the refresher and the
/// credentials watcher.
pub(crate) async fn run(shared: Arc<Shared>, marathon: Marathon, shutdown: CancellationToken) {
    let (tx, rx) = mpsc::unbounded_channel();
    let refresher = tokio::spawn(
        refresher(shared.clone(), marathon.clone(), rx, shutdown.clone())
            .instrument(info_span!("refresher")),
    );
    let credentials = tokio::spawn(
        watch_credentials(shared.clone(), shutdown.clone()).instrument(info_span!("credentials")),
    );
    follower(shared, marathon, tx, shutdown)
        .instrument(info_span!("event_stream"))
        .await;
    let _ = refresher.await;
    let _ = credentials.await;
}

/// Reads the credentials files `table` names that changed since they were
/// last read (or never were), on a blocking thread.
async fn refresh_credentials(table: &Table) {
    let files = table.credential_files();
    if files.is_empty() {
        return;
    }
    let _ = tokio::task::spawn_blocking(move || {
        for file in files {
            file.refresh();
        }
    })
    .await;
}

/// Re-reads changed credentials files every `auth_reload_interval` until
/// `shutdown`.
async fn watch_credentials(shared: Arc<Shared>, shutdown: CancellationToken) {
    let interval = shared.config.auth_reload_interval;
    if interval.is_zero() {
        return;
    }
    loop {
        tokio::select! {
            () = tokio::time::sleep(interval) => {}
            () = shutdown.cancelled() => return,
        }
        refresh_credentials(&shared.table()).await;
    }
}

async fn follower(
    shared: Arc<Shared>,
    marathon: Marathon,
    tx: mpsc::UnboundedSender<Refresh>,
    shutdown: CancellationToken,
) {
    let mut backoff = Backoff::new();
    loop {
        let started = Instant::now();
        let result = tokio::select! {
            r = stream_once(&shared, &marathon, &tx) => r,
            () = shutdown.cancelled() => return,
        };
        shared.stats.events_connected.store(false, Relaxed);
        if let Err(e) = result {
            shared.stats.marathon_errors.fetch_add(1, Relaxed);
            warn!(error = %error_chain(&e), "event stream lost; reconnecting");
        }
        if started.elapsed() > Duration::from_secs(10) {
            backoff.reset();
        }
        tokio::select! {
            () = tokio::time::sleep(backoff.delay()) => {}
            () = shutdown.cancelled() => return,
        }
    }
}

/// One connection of the event stream, until it fails.
async fn stream_once(
    shared: &Shared,
    marathon: &Marathon,
    tx: &mpsc::UnboundedSender<Refresh>,
) -> Result<(), Error> {
    let mut response = marathon.events(&EVENT_TYPES).await?;
    shared.stats.events_connected.store(true, Relaxed);
    shared.stats.event_connects.fetch_add(1, Relaxed);
    info!("event stream connected; resyncing");
    let _ = tx.send(Refresh::All);
    let idle = shared.config.event_idle_timeout;
    let mut parser = SseParser::default();
    loop {
        let chunk = match tokio::time::timeout(idle, response.chunk()).await {
            Err(_) => return Err(Error::Idle(idle)),
            Ok(Ok(None)) => return Err(Error::Ended),
            Ok(Err(source)) => {
                return Err(Error::Request {
                    what: "reading /v2/events".into(),
                    source,
                });
            }
            Ok(Ok(Some(chunk))) => chunk,
        };
        for event in parser.push(&chunk) {
            shared.stats.events.fetch_add(1, Relaxed);
            let data: Value = serde_json::from_str(&event.data).unwrap_or(Value::Null);
            let event_type = data["eventType"].as_str().unwrap_or(&event.name);
            let affects = affected(event_type, &data);
            debug!(event_type, ?affects, "event");
            match affects {
                Affects::Nothing => {}
                Affects::All => {
                    let _ = tx.send(Refresh::All);
                }
                Affects::Apps(apps) => {
                    for app in apps {
                        let _ = tx.send(Refresh::App(app));
                    }
                }
            }
        }
    }
}

async fn refresher(
    shared: Arc<Shared>,
    marathon: Marathon,
    mut rx: mpsc::UnboundedReceiver<Refresh>,
    shutdown: CancellationToken,
) {
    let mut all = false;
    let mut apps: BTreeSet<String> = BTreeSet::new();
    let mut backoff = Backoff::new();
    let mut resync = tokio::time::interval(shared.config.resync_interval);
    resync.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
    resync.reset();
    loop {
        if !all && apps.is_empty() {
            tokio::select! {
                message = rx.recv() => match message {
                    Some(Refresh::All) => all = true,
                    Some(Refresh::App(id)) => { apps.insert(id); }
                    None => return,
                },
                _ = resync.tick() => all = true,
                () = shutdown.cancelled() => return,
            }
        }
        while let Ok(message) = rx.try_recv() {
            match message {
                Refresh::All => all = true,
                Refresh::App(id) => {
                    apps.insert(id);
                }
            }
        }
        let result = if all {
            resync_all(&shared, &marathon).await
        } else {
            refresh_apps(&shared, &marathon, &apps).await
        };
        match result {
            Ok(()) => {
                if all {
                    // A full resync just happened: the next one is due an
                    // interval from now.
                    resync.reset();
                }
                all = false;
                apps.clear();
                backoff.reset();
            }
            Err(e) => {
                shared.stats.marathon_errors.fetch_add(1, Relaxed);
                warn!(error = %error_chain(&e), "cannot read apps from Marathon; retrying");
                all = true;
                tokio::select! {
                    () = tokio::time::sleep(backoff.delay()) => {}
                    () = shutdown.cancelled() => return,
                }
            }
        }
    }
}

async fn resync_all(shared: &Shared, marathon: &Marathon) -> Result<(), Error> {
    let apps = marathon.apps().await?;
    shared.stats.resyncs.fetch_add(1, Relaxed);
    let current = shared.table();
    let next = Table::from_apps(&apps, &current);
    log_changes(&current, &next);
    refresh_credentials(&next).await;
    shared.publish(next);
    Ok(())
}

async fn refresh_apps(
    shared: &Shared,
    marathon: &Marathon,
    ids: &BTreeSet<String>,
) -> Result<(), Error> {
    let fetched = futures::future::join_all(ids.iter().map(|id| marathon.app(id))).await;
    shared
        .stats
        .app_refreshes
        .fetch_add(ids.len() as u64, Relaxed);
    let current = shared.table();
    let mut next = (*current).clone();
    for (id, app) in ids.iter().zip(fetched) {
        next = match app? {
            Some(app) => next.with_app(&app),
            None => next.without_app(id),
        };
    }
    log_changes(&current, &next);
    refresh_credentials(&next).await;
    shared.publish(next);
    Ok(())
}

/// Logs which apps gained or lost routable instances.
fn log_changes(before: &Table, after: &Table) {
    let tasks = |t: &Table, id: &str| -> Vec<String> {
        t.app(id)
            .map(|r| r.upstreams.iter().map(|u| u.task_id.clone()).collect())
            .unwrap_or_default()
    };
    let ids: BTreeSet<&str> = before
        .routes()
        .chain(after.routes())
        .map(|r| r.app_id.as_str())
        .collect();
    for id in ids {
        let (old, new) = (tasks(before, id), tasks(after, id));
        if old != new || before.app(id).is_some() != after.app(id).is_some() {
            info!(
                app = id,
                present = after.app(id).is_some(),
                upstreams = ?new,
                "routing table changed"
            );
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    #[test]
    fn sse_frames_across_chunks() {
        let mut p = SseParser::default();
        assert!(
            p.push(b"event: status_update_event\ndata: {\"a\"")
                .is_empty()
        );
        let events = p.push(b":1}\n\n:ping\n\nevent: x\r\ndata: one\r\ndata: two\r\n\r\n");
        assert_eq!(
            events,
            [
                SseEvent {
                    name: "status_update_event".into(),
                    data: "{\"a\":1}".into()
                },
                SseEvent {
                    name: "x".into(),
                    data: "one\ntwo".into()
                },
            ]
        );
        assert_eq!(
            p.push(b"data:no-space\n\n"),
            [SseEvent {
                name: "message".into(),
                data: "no-space".into()
            }]
        );
        assert!(p.push(b"event: lonely\n\n").is_empty(), "no data, no event");
        assert_eq!(p.push(b"data: after\n\n")[0].name, "message");
    }

    #[test]
    fn events_name_the_apps_they_touch() {
        let apps = |ids: &[&str]| Affects::Apps(ids.iter().map(|s| s.to_string()).collect());
        assert_eq!(
            affected(
                "status_update_event",
                &json!({"appId": "/web", "taskStatus": "TASK_RUNNING"})
            ),
            apps(&["/web"])
        );
        assert_eq!(
            affected(
                "health_status_changed_event",
                &json!({"appId": "/web", "alive": false})
            ),
            apps(&["/web"])
        );
        assert_eq!(
            affected("app_terminated_event", &json!({"appId": "/gone"})),
            apps(&["/gone"])
        );
        assert_eq!(
            affected("api_post_event", &json!({"appDefinition": {"id": "/web"}})),
            apps(&["/web"])
        );
        assert_eq!(
            affected("instance_changed_event", &json!({"runSpecId": "/w"})),
            apps(&["/w"])
        );
        assert_eq!(
            affected(
                "deployment_info",
                &json!({
                    "plan": {"steps": [
                        {"actions": [{"action": "StartApplication", "app": "/b"}]},
                        {"actions": [{"action": "ScaleApplication", "app": "/a"}]},
                    ]},
                    "currentStep": {"actions": [{"action": "ScaleApplication", "app": "/b"}]},
                })
            ),
            apps(&["/a", "/b"])
        );
        assert_eq!(
            affected("deployment_success", &json!({"plan": {}})),
            Affects::All
        );
        assert_eq!(affected("status_update_event", &json!({})), Affects::All);
        assert_eq!(affected("group_change_success", &json!({})), Affects::All);
        assert_eq!(
            affected("event_stream_attached", &json!({})),
            Affects::Nothing
        );
        assert_eq!(
            affected("framework_message_event", &json!({})),
            Affects::Nothing
        );
    }

    #[test]
    fn backoff_doubles_to_a_cap() {
        let mut b = Backoff::new();
        let d: Vec<Duration> = (0..10).map(|_| b.delay()).collect();
        assert!(d[0] >= Duration::from_millis(80) && d[0] <= Duration::from_millis(120));
        assert!(d[1] >= Duration::from_millis(160) && d[1] <= Duration::from_millis(240));
        assert!(d[9] <= Duration::from_secs(6));
        b.reset();
        assert!(b.delay() <= Duration::from_millis(120));
    }
}
