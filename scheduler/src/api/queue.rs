//! `/v2/queue`: the instances waiting for offers, their launch delay, and
//! why offers were passed over (marathon-api.md §1.6).

use axum::Router;
use axum::extract::Path;
use axum::http::StatusCode;
use axum::response::{IntoResponse, Response};
use axum::routing::{delete, get};
use serde_json::{Value, json};

use super::{Api, ApiError, ApiState};
use crate::offers::placement::RejectSummary;
use crate::reconcile::backoff;
use crate::state::app::PathId;
use crate::state::instance::Goal;

/// The `/v2/queue` routes.
pub fn routes() -> Router<ApiState> {
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

async fn list(state: Api) -> Result<Response, ApiError> {
    let view = state.view();
    let now = state.scheduler.now();
    let mut queue = Vec::new();
    for (id, app) in &view.apps {
        let (mut waiting, mut wanted) = (0, 0);
        for instance in view.instances_of(id) {
            waiting += usize::from(instance.is_waiting());
            wanted += usize::from(instance.goal == Goal::Running);
        }
        // Instances are created a batch at a time (decide's
        // MAX_WAITING_INSTANCES): the ones not created yet wait too.
        let waiting = waiting + (app.instances as usize).saturating_sub(wanted);
        if waiting == 0 {
            continue;
        }
        let stats = view
            .offer_stats
            .get(id)
            .map(|s| (**s).clone())
            .unwrap_or_default();
        let time_left_ms = backoff::time_left_ms(view.delays.get(id), app, now);
        let since = stats.since.unwrap_or(now);
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
            "app": &**app,
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
        // Beyond Marathon: why the last launch failed (say, an agent that
        // cannot run the app's container), next to why offers were declined.
        if let Some(failure) = view.last_failures.get(id) {
            entry["lastTaskFailure"] = json!(&**failure);
        }
        queue.push(entry);
    }
    Ok(axum::Json(json!({ "queue": queue })).into_response())
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
