//! `/v2/queue`: the instances waiting for offers, their launch delay, and
//! why offers were passed over (marathon-api.md §1.6).

use axum::Router;
use axum::extract::Path;
use axum::http::{HeaderMap, StatusCode};
use axum::response::{IntoResponse, Response};
use axum::routing::{delete, get};
use serde_json::{Value, json};

use super::render::{Now, RenderError, Seq};
use super::{Api, ApiError, ApiState};
use crate::offers::placement::RejectSummary;
use crate::reconcile::{View, backoff};
use crate::state::app::{AppDefinition, PathId};
use crate::state::instance::Goal;

/// The `/v2/queue` routes.
pub fn routes() -> Router<std::sync::Arc<ApiState>> {
    Router::new()
        .route("/v2/queue", get(list))
        .route("/v2/queue/{*path}", delete(reset_delay))
}

fn funnel(summary: &RejectSummary) -> Value {
    summary
        .funnel()
        .iter()
        .map(|step| {
            json!({
                "reason": step.reason.as_str(),
                "declined": step.declined,
                "processed": step.processed,
            })
        })
        .collect()
}

/// `GET /v2/queue`, which takes no query: every app with instances
/// waiting.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct QueueQuery;

async fn list(state: Api, headers: HeaderMap) -> Response {
    state.list(QueueQuery, &headers).await
}

/// One app's entry, if it has instances waiting. Reads the clock only
/// for a launch delay that may still hold, or a wait whose start is not
/// known (then it started now).
fn entry(view: &View, id: &PathId, app: &AppDefinition, now: &Now) -> Option<Value> {
    let (mut waiting, mut wanted) = (0, 0);
    for instance in view.instances_of(id) {
        waiting += usize::from(instance.is_waiting());
        wanted += usize::from(instance.goal == Goal::Running);
    }
    // Instances are created a batch at a time (decide's
    // MAX_WAITING_INSTANCES): the ones not created yet wait too.
    let waiting = waiting + (app.instances as usize).saturating_sub(wanted);
    if waiting == 0 {
        return None;
    }
    let stats = view
        .offer_stats
        .get(id)
        .map(|s| (**s).clone())
        .unwrap_or_default();
    let delay = view.delays.get(id);
    let time_left_ms = match delay {
        Some(_) => backoff::time_left_ms(delay, app, now.read()),
        None => 0,
    };
    let since = stats.since.unwrap_or_else(|| now.read());
    let mut summary = json!({
        "processedOffersCount": stats.processed_offers,
        "unusedOffersCount": stats.unused_offers,
        "rejectSummaryLastOffers": funnel(&stats.last_cycle),
        "rejectSummaryLaunchAttempt": funnel(&stats.since_waiting),
        "rejectedByConstraint": stats.last_cycle.constraints.iter()
            .map(|c| json!({"constraint": c.constraint, "declined": c.declined}))
            .collect::<Vec<_>>(),
    });
    if let Some(at) = stats.last_unused_offer_at {
        summary["lastUnusedOfferAt"] = json!(at);
    }
    if let Some(at) = stats.last_used_offer_at {
        summary["lastUsedOfferAt"] = json!(at);
    }
    let mut entry = json!({
        "app": app,
        "count": waiting,
        "role": app.role,
        "delay": {
            "timeLeftSeconds": time_left_ms.div_ceil(1000),
            // Waiting although no delay holds it back.
            "overdue": time_left_ms == 0 && stats.processed_offers > 0,
        },
        "since": since,
        "processedOffersSummary": summary,
    });
    // A pod waits as a `pod`, as Marathon's queue shows it.
    if let Some(pod) = app.pod_definition()
        && let Some(o) = entry.as_object_mut()
    {
        o.remove("app");
        o.insert("pod".into(), json!(pod));
    }
    // Beyond Marathon: why the last launch failed (say, an agent that
    // cannot run the app's container), next to why offers were declined.
    if let Some(failure) = view.last_failures.get(id) {
        entry["lastTaskFailure"] = json!(&**failure);
    }
    Some(entry)
}

/// `{"queue": [...]}`, an entry per app with instances waiting.
pub(super) fn render<W: std::io::Write>(view: &View, now: &Now, out: W) -> Result<(), RenderError> {
    #[derive(serde::Serialize)]
    struct Queue<S> {
        queue: S,
    }
    let queue = view
        .apps
        .iter()
        .filter_map(|(id, app)| entry(view, id, app, now));
    serde_json::to_writer(
        out,
        &Queue {
            queue: Seq::new(queue),
        },
    )?;
    Ok(())
}

async fn reset_delay(state: Api, Path(path): Path<String>) -> Result<Response, ApiError> {
    let Some(app) = path.strip_suffix("/delay") else {
        return Err(ApiError::NotFound("URI not found".into()));
    };
    let id = PathId::parse_app(app, &PathId::root())
        .map_err(|e| ApiError::BadRequest(format!("Invalid app id '{app}': {e}")))?;
    state.authorize(crate::auth::Action::Update, &id)?;
    let view = state.view();
    if !view.instances_of(&id).any(|i| i.is_waiting()) {
        return Err(ApiError::NotFound(format!(
            "Application {id} not found in tasks queue."
        )));
    }
    state.scheduler.reset_delay(id).await?;
    Ok(StatusCode::NO_CONTENT.into_response())
}
