//! `/v2/tasks`: every task of every app, and killing tasks by id
//! (marathon-api.md §1.4); and Baton's `/v2/tasks/load`: each running
//! task's last load report, for load-aware gateways.

use axum::Router;
use axum::body::Bytes;
use axum::extract::RawQuery;
use axum::extract::rejection::BytesRejection;
use axum::http::{HeaderMap, StatusCode};
use axum::response::{IntoResponse, Response};
use axum::routing::{get, post};
use serde_json::{Value, json};

use super::params::{self, Params};
use super::render::{RenderError, Seq};
use super::shapes::TaskJson;
use super::{Api, ApiError, ApiState};
use crate::reconcile::View;
use crate::state::app::parse_task_id;
use crate::state::instance::Condition;

/// The `/v2/tasks` routes.
pub fn routes() -> Router<std::sync::Arc<ApiState>> {
    Router::new()
        .route("/v2/tasks", get(list))
        .route("/v2/tasks/delete", post(delete))
        .route("/v2/tasks/load", get(loads))
}

/// `GET /v2/tasks/load`: `{"tasks": [{taskId, appId, host, cpusUsed,
/// cpusAllocated, memRssBytes, memAllocatedBytes, hostLoad1, hostCpus,
/// reportedAt}]}` for every running task with a report (`cpusUsed` and
/// the host fields may be absent). `?app=/id` keeps one app's tasks.
async fn loads(state: Api, RawQuery(query): RawQuery) -> Result<Response, ApiError> {
    let params = Params::parse(query.as_deref())?;
    let app = params.app_filter()?;
    let view = state.view();
    let mut tasks = Vec::new();
    for (task_id, task_load) in &view.loads {
        let Some(instance) = view.instance_by_task(task_id) else {
            continue;
        };
        if app.as_ref().is_some_and(|a| *a != instance.app_id) {
            continue;
        }
        let Ok(mut entry) = serde_json::to_value(task_load.as_ref()) else {
            continue;
        };
        entry["taskId"] = json!(task_id);
        let age = state.scheduler.now().as_millis() - task_load.reported_at.as_millis();
        entry["ageMs"] = json!(age.max(0));
        entry["appId"] = json!(instance.app_id.to_string());
        entry["host"] = json!(instance.task.as_ref().map(|t| t.hostname.as_str()));
        tasks.push(entry);
    }
    Ok(axum::Json(json!({ "tasks": tasks })).into_response())
}

/// `GET /v2/tasks`'s query, normalised: the `status` values it filters
/// by (`running`, `staging`; others are ignored, as Marathon does), sorted
/// and without repeats; none keeps every task.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct TasksQuery {
    wanted: Vec<&'static str>,
}

impl TasksQuery {
    pub(super) fn parse(params: &Params) -> TasksQuery {
        let mut wanted: Vec<&'static str> = params
            .all("status")
            .filter_map(|s| match s {
                "running" => Some("running"),
                "staging" => Some("staging"),
                _ => None,
            })
            .collect();
        wanted.sort_unstable();
        wanted.dedup();
        TasksQuery { wanted }
    }

    /// `{"tasks": [...]}`. Each task goes through a JSON value, as it did
    /// through `json!`: its members are written in name order.
    pub(super) fn render<W: std::io::Write>(&self, view: &View, out: W) -> Result<(), RenderError> {
        #[derive(serde::Serialize)]
        struct Tasks<S> {
            tasks: S,
        }
        let tasks = view
            .all_instances()
            .filter(|i| i.is_active())
            .filter_map(|instance| {
                let app = view.apps.get(&instance.app_id);
                // Pods' tasks are shown under /v2/pods, as Marathon does.
                if app.is_some_and(|a| a.is_pod()) {
                    return None;
                }
                let condition = instance.condition()?;
                let status = match condition {
                    Condition::Running => "running",
                    c if c.is_launching() => "staging",
                    _ => "other",
                };
                if !self.wanted.is_empty() && !self.wanted.contains(&status) {
                    return None;
                }
                let mut task = TaskJson::in_view(instance, view)?;
                // The only listing that carries service ports.
                let service_ports: Vec<u16> = app
                    .map(|app| app.declared_ports().iter().map(|p| p.port).collect())
                    .unwrap_or_default();
                task.service_ports = Some(service_ports);
                Some(serde_json::to_value(task).unwrap_or(Value::Null))
            });
        serde_json::to_writer(
            out,
            &Tasks {
                tasks: Seq::new(tasks),
            },
        )?;
        Ok(())
    }
}

async fn list(
    state: Api,
    headers: HeaderMap,
    RawQuery(query): RawQuery,
) -> Result<Response, ApiError> {
    let params = Params::parse(query.as_deref())?;
    Ok(state.list(TasksQuery::parse(&params), &headers).await)
}

async fn delete(
    state: Api,
    RawQuery(query): RawQuery,
    body: Result<Bytes, BytesRejection>,
) -> Result<Response, ApiError> {
    let params = Params::parse(query.as_deref())?;
    let options = params::kill_options(&params)?;
    let body = params::json_body(&params::body(body)?)?;
    let ids = match body.get("ids") {
        Some(Value::Array(ids)) => ids,
        _ => {
            return Err(ApiError::Body {
                status: StatusCode::BAD_REQUEST,
                body: json!({"message": "Invalid JSON", "details": [{"path": "/ids", "errors": ["error.expected.jsarray"]}]}),
            });
        }
    };
    let mut task_ids = Vec::with_capacity(ids.len());
    for (i, id) in ids.iter().enumerate() {
        let Some(id) = id.as_str() else {
            return Err(ApiError::Body {
                status: StatusCode::BAD_REQUEST,
                body: json!({"message": "Invalid JSON", "details": [{"path": format!("/ids({i})"), "errors": ["error.expected.jsstring"]}]}),
            });
        };
        let Ok(parts) = parse_task_id(id) else {
            return Err(ApiError::BadRequest(format!(
                "Invalid task id '{id}'. Expected <app>.instance-<uuid>._app.<n>."
            )));
        };
        super::apps::authorize_kill(&state, &parts.app_id, &options)?;
        task_ids.push(id.to_string());
    }
    let outcome = state.scheduler.kill_tasks(task_ids, options).await?;
    Ok(params::killed(outcome, false))
}
