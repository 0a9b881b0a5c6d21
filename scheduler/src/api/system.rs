//! System endpoints: `/ping`, `/v2/info`, `/v2/leader`, `/metrics`.

use std::fmt::Write as _;

use axum::Router;
use axum::http::{HeaderMap, StatusCode, header};
use axum::response::{IntoResponse, Response};
use axum::routing::get;
use serde_json::json;

use super::{Api, ApiError, ApiState};

/// The Marathon API level Baton implements; dcos-cli compares it with 0.8.1.
pub const MARATHON_API_VERSION: &str = "1.10.0";

pub(super) fn routes() -> Router<std::sync::Arc<ApiState>> {
    Router::new()
        .route("/ping", get(ping))
        .route("/v2/info", get(info))
        .route("/v2/leader", get(leader).delete(abdicate))
        .route("/metrics", get(metrics))
}

/// `pong` as text by default, `"pong"` for JSON clients, 204 when the
/// client accepts neither (as Marathon's SystemResource does).
async fn ping(headers: HeaderMap) -> Response {
    let accept = headers
        .get(header::ACCEPT)
        .and_then(|v| v.to_str().ok())
        .unwrap_or("*/*");
    let accepts = |media: &str| {
        accept.split(',').any(|a| {
            let a = a.split(';').next().unwrap_or("").trim();
            a == media
                || a == "*/*"
                || a.is_empty()
                || (a.ends_with("/*") && media.starts_with(a.trim_end_matches('*')))
        })
    };
    if accepts("text/plain") {
        ([(header::CONTENT_TYPE, "text/plain")], "pong").into_response()
    } else if accepts("application/json") {
        ([(header::CONTENT_TYPE, "application/json")], "\"pong\"").into_response()
    } else {
        StatusCode::NO_CONTENT.into_response()
    }
}

async fn info(state: Api) -> impl IntoResponse {
    let view = state.view();
    let id = &state.identity;
    axum::Json(json!({
        "name": "baton",
        "version": MARATHON_API_VERSION,
        "buildref": concat!("baton-", env!("CARGO_PKG_VERSION")),
        "elected": true,
        "leader": id.leader,
        "frameworkId": view.framework_id,
        "marathon_config": {
            "master": id.master,
            "framework_name": id.framework_name,
            "mesos_role": id.mesos_roles.join(","),
            "mesos_user": id.mesos_user,
            "failover_timeout": id.failover_timeout_seconds,
            "checkpoint": true,
            "max_instances_per_app": id.max_instances_per_app,
            "hostname": id.leader.rsplit_once(':').map_or(id.leader.as_str(), |(h, _)| h),
        },
        "zookeeper_config": id.zk.as_ref().map_or_else(
            || json!({}),
            |(zk, session_ms)| json!({ "zk": zk, "zk_session_timeout": session_ms }),
        ),
        "http_config": { "http_port": id.http_port },
    }))
}

async fn leader(state: Api) -> impl IntoResponse {
    axum::Json(json!({ "leader": state.identity.leader }))
}

/// `DELETE /v2/leader`: this term ends; the election runs again (another
/// node may win) and this process stays up, as a standby or leading again.
async fn abdicate(state: Api) -> Result<Response, ApiError> {
    state.authorize(
        crate::auth::Action::Update,
        &crate::state::app::PathId::root(),
    )?;
    // The reply goes out first; the term ends right after.
    let abdicate = state.abdicate.clone();
    tokio::spawn(async move {
        tokio::time::sleep(std::time::Duration::from_millis(200)).await;
        let _ = abdicate.send(()).await;
    });
    Ok(axum::Json(json!({ "message": "Leadership abdicated" })).into_response())
}

/// Prometheus text format.
async fn metrics(state: Api) -> Result<Response, ApiError> {
    let view = state.view();
    let s = &view.stats;
    let mut out = String::new();
    let mut counter = |name: &str, help: &str, value: u64| {
        let _ = writeln!(
            out,
            "# HELP {name} {help}\n# TYPE {name} counter\n{name} {value}"
        );
    };
    counter(
        "marathon_mesos_offers_received_total",
        "Offers received from Mesos.",
        s.offers_received,
    );
    counter(
        "marathon_mesos_offers_used_total",
        "Offers used to launch tasks.",
        s.offers_accepted,
    );
    counter(
        "marathon_mesos_offers_declined_total",
        "Offers declined.",
        s.offers_declined,
    );
    counter(
        "marathon_mesos_status_updates_total",
        "Status updates received, duplicates included.",
        s.updates_received,
    );
    counter(
        "marathon_mesos_status_updates_duplicate_total",
        "Redelivered status updates recognised.",
        s.duplicate_updates,
    );
    counter(
        "marathon_tasks_launched_total",
        "Tasks launched.",
        s.tasks_launched,
    );
    counter(
        "marathon_tasks_killed_total",
        "KILL calls sent for managed tasks.",
        s.kills_sent,
    );
    counter(
        "marathon_tasks_unknown_killed_total",
        "Tasks Mesos reported that Baton did not know, killed.",
        s.unknown_tasks_killed,
    );
    counter(
        "marathon_reconcile_cycles_total",
        "Explicit reconciliations that every task answered.",
        s.reconcile_cycles,
    );
    counter(
        "marathon_reconcile_requests_total",
        "Explicit reconciliation requests sent, retries included.",
        s.reconcile_requests,
    );
    counter(
        "marathon_app_reconciles_total",
        "Per-app reconcile passes.",
        s.app_reconciles,
    );
    counter(
        "marathon_mesos_subscriptions_total",
        "Subscriptions to a Mesos master.",
        s.subscriptions,
    );
    counter(
        "baton_executor_fetch_failures_total",
        "Launches that failed because the agent could not fetch baton-executor (not counted against the app).",
        s.executor_fetch_failures,
    );
    counter(
        "marathon_mesos_subscribe_attempts_total",
        "SUBSCRIBE calls sent to a Mesos master, failed ones included.",
        state
            .scheduler
            .mesos()
            .stats()
            .subscribe_attempts
            .load(std::sync::atomic::Ordering::Relaxed),
    );
    let _ = writeln!(
        out,
        "# HELP marathon_tasks Tasks by Mesos state.\n# TYPE marathon_tasks gauge"
    );
    let mut by_state = std::collections::BTreeMap::<&str, u64>::new();
    for instance in view.all_instances() {
        let state = instance
            .task
            .as_ref()
            .filter(|_| !instance.is_waiting())
            .map_or("WAITING", |t| t.condition.mesos_state());
        *by_state.entry(state).or_insert(0) += 1;
    }
    for (task_state, n) in by_state {
        let _ = writeln!(out, "marathon_tasks{{state=\"{task_state}\"}} {n}");
    }
    let _ = writeln!(
        out,
        "# HELP marathon_apps Apps defined.\n# TYPE marathon_apps gauge\nmarathon_apps {}",
        view.apps.len()
    );
    let _ = writeln!(
        out,
        "# HELP marathon_deployments Deployments in progress.\n# TYPE marathon_deployments gauge\nmarathon_deployments {}",
        view.deployments.len()
    );
    let _ = writeln!(
        out,
        "# HELP marathon_launch_latency_seconds Time from launch to TASK_RUNNING.\n# TYPE marathon_launch_latency_seconds histogram"
    );
    for (bound, n) in crate::reconcile::view::LAUNCH_LATENCY_BUCKETS_MS
        .iter()
        .zip(s.launch_latency_buckets)
    {
        let _ = writeln!(
            out,
            "marathon_launch_latency_seconds_bucket{{le=\"{}\"}} {n}",
            *bound as f64 / 1000.0
        );
    }
    let _ = writeln!(
        out,
        "marathon_launch_latency_seconds_bucket{{le=\"+Inf\"}} {c}\nmarathon_launch_latency_seconds_sum {}\nmarathon_launch_latency_seconds_count {c}",
        s.launch_latency_ms_sum as f64 / 1000.0,
        c = s.launch_latency_count
    );
    let _ = writeln!(
        out,
        "# HELP marathon_http_requests_total HTTP requests by route and status.\n# TYPE marathon_http_requests_total counter"
    );
    for ((route, status), n) in state.requests.snapshot() {
        let _ = writeln!(
            out,
            "marathon_http_requests_total{{route=\"{route}\",status=\"{status}\"}} {n}"
        );
    }
    let cache = &state.cache.counters;
    let load = |c: &std::sync::atomic::AtomicU64| c.load(std::sync::atomic::Ordering::Relaxed);
    for (name, help, value) in [
        (
            "baton_api_cache_hits_total",
            "List requests answered with a kept body.",
            load(&cache.hits),
        ),
        (
            "baton_api_cache_misses_total",
            "List requests that rendered a body to keep, or waited for one.",
            load(&cache.misses),
        ),
        (
            "baton_api_cache_uncached_total",
            "List requests answered with a body rendered for them alone.",
            load(&cache.uncached),
        ),
        (
            "baton_api_cache_not_modified_total",
            "List requests answered 304 Not Modified.",
            load(&cache.not_modified),
        ),
    ] {
        let _ = writeln!(
            out,
            "# HELP {name} {help}\n# TYPE {name} counter\n{name} {value}"
        );
    }
    let (entries, bytes) = state.cache.size();
    let _ = writeln!(
        out,
        "# HELP baton_api_cache_entries List bodies kept.\n# TYPE baton_api_cache_entries gauge\nbaton_api_cache_entries {entries}\n# HELP baton_api_cache_bytes Bytes of list bodies kept, gzipped copies included.\n# TYPE baton_api_cache_bytes gauge\nbaton_api_cache_bytes {bytes}"
    );
    let _ = writeln!(
        out,
        "# HELP marathon_mesos_connected Whether a Mesos subscription is live.\n# TYPE marathon_mesos_connected gauge\nmarathon_mesos_connected {}",
        u8::from(view.subscribed)
    );
    Ok(([(header::CONTENT_TYPE, "text/plain; version=0.0.4")], out).into_response())
}
