//! `GET /v2/services`: Baton's service registry over HTTP — the same
//! entries the leader keeps in ZooKeeper under `<zk>/services`, for
//! gateways and clients without ZooKeeper: every running, healthy
//! instance (health checks all passing, or none declared; not being
//! drained or killed). `?app=/id` keeps one app's.
//!
//! ```json
//! {"services": [{"appId": "/web", "version": "2026-…Z", "taskId": "web.instance-….1",
//!   "host": "10.0.0.7", "ports": [31002], "healthy": true,
//!   "path": "/services/web/2026-…Z/web.instance-….1"}]}
//! ```

use axum::Router;
use axum::extract::RawQuery;
use axum::response::{IntoResponse, Response};
use axum::routing::get;
use serde_json::json;

use super::params::Params;
use super::{Api, ApiError, ApiState};

/// The `/v2/services` route.
pub fn routes() -> Router<std::sync::Arc<ApiState>> {
    Router::new().route("/v2/services", get(list))
}

async fn list(state: Api, RawQuery(query): RawQuery) -> Result<Response, ApiError> {
    let params = Params::parse(query.as_deref())?;
    let app = params.app_filter()?;
    let services: Vec<_> = state
        .view()
        .services()
        .into_iter()
        .filter(|entry| app.as_ref().is_none_or(|a| *a == entry.app_id))
        .map(|entry| {
            let mut shown = entry.json();
            shown["appId"] = json!(entry.app_id.to_string());
            shown["version"] = json!(entry.version.to_string());
            shown["taskId"] = json!(entry.task_id);
            shown["path"] = json!(entry.path());
            shown
        })
        .collect();
    Ok(axum::Json(json!({ "services": services })).into_response())
}
