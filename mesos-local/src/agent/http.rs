//! The agent's HTTP server: `/api/v1/executor` (`Http::executor` in
//! `src/slave/http.cpp`), `/state` (sandbox directories; see
//! [`super::state_json`]) and `/files/*` ([`super::files`]).

use std::sync::Arc;

use axum::Router;
use axum::body::Bytes;
use axum::extract::{DefaultBodyLimit, State};
use axum::http::{HeaderMap, Method, StatusCode};
use axum::response::{IntoResponse, Response};
use axum::routing::{any, get};
use mesos_proto::executor::{Call, call};
use mesos_proto::v1::{TaskState, TaskStatus, task_status::Source};
use tracing::Instrument;

use super::Agent;
use crate::wire::{self, MAX_BODY, Rejection, valid_uuid};

/// The agent's routes.
pub fn router(agent: Arc<Agent>) -> Router {
    Router::new()
        .route("/api/v1/executor", any(executor_api))
        .route("/slave(1)/api/v1/executor", any(executor_api))
        .route("/health", get(|| async { StatusCode::OK }))
        .route("/state", get(state))
        .route("/slave(1)/state", get(state))
        .route("/monitor/statistics", get(statistics))
        .route("/monitor/statistics.json", get(statistics))
        .merge(super::files::routes())
        .layer(DefaultBodyLimit::max(MAX_BODY))
        .with_state(agent)
}

/// `GET /state`.
async fn state(State(agent): State<Arc<Agent>>) -> Response {
    axum::Json(super::state_json::render(&agent.lock())).into_response()
}

/// `GET /monitor/statistics`: each running container's limits and usage,
/// in Mesos's shape (what the Mesos UI and `mesos-ps` read).
async fn statistics(State(agent): State<Arc<Agent>>) -> Response {
    let containers = agent.lock().running_containers();
    let isolator = agent.isolator.clone();
    let rendered = tokio::task::spawn_blocking(move || {
        let now = std::time::SystemTime::now()
            .duration_since(std::time::UNIX_EPOCH)
            .map_or(0.0, |d| d.as_secs_f64());
        containers
            .into_iter()
            .map(|c| {
                let usage = isolator.usage(&c.container_id, c.pid);
                // The fields a Mesos 1.12 agent shows: `cpus_soft_limit`
                // (shares) always; `cpus_limit` and the CFS counters only
                // with a quota.
                let mem_limit = c.limits.mem_bytes();
                let mut statistics = serde_json::json!({
                    "timestamp": now,
                    "cpus_soft_limit": c.limits.cpus,
                    "cpus_user_time_secs": usage.cpus_user_time_secs,
                    "cpus_system_time_secs": usage.cpus_system_time_secs,
                    "mem_limit_bytes": mem_limit,
                    "mem_soft_limit_bytes": mem_limit,
                    "mem_rss_bytes": usage.mem_rss_bytes,
                    "mem_anon_bytes": usage.mem_rss_bytes,
                    "mem_total_bytes": usage.mem_total_bytes,
                    "mem_cache_bytes": usage.mem_cache_bytes,
                    "mem_file_bytes": usage.mem_cache_bytes,
                    "mem_mapped_file_bytes": usage.mem_mapped_file_bytes,
                    "mem_swap_bytes": usage.mem_swap_bytes,
                    "mem_unevictable_bytes": usage.mem_unevictable_bytes,
                });
                if let Some((periods, throttled, secs)) = usage.throttling {
                    statistics["cpus_limit"] = c.limits.cpus.max(super::isolation::MIN_CPUS).into();
                    statistics["cpus_nr_periods"] = periods.into();
                    statistics["cpus_nr_throttled"] = throttled.into();
                    statistics["cpus_throttled_time_secs"] = secs.into();
                }
                serde_json::json!({
                    "framework_id": c.framework_id,
                    "executor_id": c.executor_id,
                    "executor_name": c.executor_name,
                    "source": c.source,
                    "statistics": statistics,
                })
            })
            .collect::<Vec<_>>()
    })
    .await
    .unwrap_or_default();
    axum::Json(rendered).into_response()
}

/// `validateExecutorCall`; the text follows "Failed to validate
/// executor::Call: ".
pub fn validate(call: &Call) -> Result<call::Type, String> {
    let Some(raw) = call.r#type else {
        return Err("Expecting 'type' to be present".into());
    };
    let ty = call::Type::try_from(raw).unwrap_or(call::Type::Unknown);
    if call.executor_id.value.is_empty() {
        return Err("Expecting 'executor_id' to be present".into());
    }
    if call.framework_id.value.is_empty() {
        return Err("Expecting 'framework_id' to be present".into());
    }
    match ty {
        call::Type::Subscribe if call.subscribe.is_none() => {
            Err("Expecting 'subscribe' to be present".into())
        }
        call::Type::Update => {
            let Some(update) = &call.update else {
                return Err("Expecting 'update' to be present".into());
            };
            validate_status(
                &call.framework_id.value,
                &call.executor_id.value,
                &update.status,
            )?;
            Ok(ty)
        }
        call::Type::Message if call.message.is_none() => {
            Err("Expecting 'message' to be present".into())
        }
        _ => Ok(ty),
    }
}

/// The rules an executor's status update must follow, in an UPDATE call
/// and among a SUBSCRIBE's unacknowledged updates alike.
pub fn validate_status(
    framework_id: &str,
    executor_id: &str,
    status: &TaskStatus,
) -> Result<(), String> {
    match &status.uuid {
        None => return Err("Expecting 'uuid' to be present".into()),
        Some(u) if !valid_uuid(u) => {
            return Err(format!("'uuid' of {} bytes is not a valid UUID", u.len()));
        }
        Some(_) => {}
    }
    if status.source != Some(Source::Executor as i32) {
        return Err(format!(
            "Received Call from executor {executor_id} of framework {framework_id} with invalid source, expecting 'SOURCE_EXECUTOR'"
        ));
    }
    // A number that names no state (possible in protobuf) is as missing as
    // the required field Mesos's parser would then find unset.
    match TaskState::try_from(status.state) {
        Err(_) => Err(format!(
            "Expecting 'state' to be a task state, got {}",
            status.state
        )),
        Ok(TaskState::TaskStaging) => Err(format!(
            "Received TASK_STAGING from executor {executor_id} of framework {framework_id} which is not allowed"
        )),
        Ok(_) => match &status.executor_id {
            Some(eid) if eid.value != executor_id => Err(format!(
                "ExecutorID in Call: {executor_id} does not match ExecutorID in TaskStatus: {}",
                eid.value
            )),
            _ => Ok(()),
        },
    }
}

async fn executor_api(
    State(agent): State<Arc<Agent>>,
    method: Method,
    headers: HeaderMap,
    body: Bytes,
) -> Response {
    let (call, _) = match wire::decode_call::<Call>(&method, &headers, &body) {
        Ok(v) => v,
        Err(r) => return r.into_response(),
    };
    let ty = match validate(&call) {
        Ok(ty) => ty,
        Err(e) => {
            return Rejection::BadRequest(format!("Failed to validate executor::Call: {e}"))
                .into_response();
        }
    };
    let span = tracing::info_span!(
        "executor_call",
        agent = agent.index,
        call = ?ty,
        executor_id = %call.executor_id.value
    );
    async move {
        let result = match ty {
            call::Type::Heartbeat => Ok(StatusCode::ACCEPTED.into_response()),
            call::Type::Subscribe => match wire::negotiate(&headers) {
                Err(r) => Err(r),
                Ok(encoding) => agent
                    .with_state(|st| st.executor_subscribe(call, encoding))
                    .map(|rx| wire::stream_response(encoding, rx, &[])),
            },
            call::Type::Update => agent
                .with_state(|st| st.executor_update(call))
                .map(|()| StatusCode::ACCEPTED.into_response()),
            call::Type::Message => agent
                .with_state(|st| st.executor_message(call))
                .map(|()| StatusCode::ACCEPTED.into_response()),
            call::Type::Unknown => Err(Rejection::NotImplemented("Unknown call type".into())),
        };
        result.unwrap_or_else(|r| {
            tracing::debug!(status = %r.status(), error = %r, "executor call rejected");
            r.into_response()
        })
    }
    .instrument(span)
    .await
}

#[cfg(test)]
mod tests {
    use super::*;
    use mesos_proto::util;

    fn update(state: TaskState, source: Source, uuid: Option<Vec<u8>>, exec: Option<&str>) -> Call {
        let mut status = util::status(util::task_id("t"), state, source);
        status.uuid = uuid;
        status.executor_id = exec.map(util::executor_id);
        Call {
            executor_id: util::executor_id("e"),
            framework_id: util::framework_id("f"),
            r#type: Some(call::Type::Update as i32),
            update: Some(call::Update { status }),
            ..Default::default()
        }
    }

    #[test]
    fn update_rules() {
        let good = update(
            TaskState::TaskRunning,
            Source::Executor,
            Some(vec![1; 16]),
            Some("e"),
        );
        assert_eq!(validate(&good), Ok(call::Type::Update));
        let cases = [
            update(TaskState::TaskRunning, Source::Executor, None, None),
            update(
                TaskState::TaskRunning,
                Source::Executor,
                Some(vec![1; 3]),
                None,
            ),
            update(
                TaskState::TaskRunning,
                Source::Agent,
                Some(vec![1; 16]),
                None,
            ),
            update(
                TaskState::TaskStaging,
                Source::Executor,
                Some(vec![1; 16]),
                None,
            ),
            update(
                TaskState::TaskRunning,
                Source::Executor,
                Some(vec![1; 16]),
                Some("other"),
            ),
            {
                let mut c = update(
                    TaskState::TaskRunning,
                    Source::Executor,
                    Some(vec![1; 16]),
                    None,
                );
                if let Some(u) = c.update.as_mut() {
                    u.status.state = 999;
                }
                c
            },
        ];
        for c in cases {
            assert!(validate(&c).is_err(), "{c:?}");
        }
        let no_ids = Call {
            r#type: Some(call::Type::Heartbeat as i32),
            ..Default::default()
        };
        assert!(validate(&no_ids).is_err());
        let sub = Call {
            executor_id: util::executor_id("e"),
            framework_id: util::framework_id("f"),
            r#type: Some(call::Type::Subscribe as i32),
            ..Default::default()
        };
        assert!(validate(&sub).is_err());
    }
}
