//! `/v2/deployments`: the changes being carried out (marathon-api.md §1.5).

use axum::Router;
use axum::extract::{Path, RawQuery};
use axum::http::{HeaderMap, StatusCode};
use axum::response::{IntoResponse, Response};
use axum::routing::{delete, get};
use serde_json::{Value, json};

use super::params::{self, Params};
use super::render::{RenderError, Seq};
use super::shapes::ReadinessJson;
use super::{Api, ApiError, ApiState};
use crate::reconcile::{AppEdit, Deployment, DeploymentAction, SchedulerError, View};

/// The `/v2/deployments` routes.
pub fn routes() -> Router<std::sync::Arc<ApiState>> {
    Router::new()
        .route("/v2/deployments", get(list))
        .route("/v2/deployments/{id}", delete(cancel))
}

/// Actions of `d` as Marathon lists them; with a view, each carries its
/// app's `readinessCheckResults` (current actions).
fn actions_json(
    d: &Deployment,
    actions: &[(crate::state::app::PathId, DeploymentAction)],
    readiness: Option<&View>,
) -> Vec<Value> {
    actions
        .iter()
        .map(|(app, action)| {
            let mut a = d.action_json(app, *action);
            if let Some(view) = readiness {
                a["readinessCheckResults"] = view.readiness.get(app).map_or_else(
                    || json!([]),
                    |r| json!(r.iter().map(ReadinessJson::from).collect::<Vec<_>>()),
                );
            }
            a
        })
        .collect()
}

/// A deployment as Marathon shows it, plus — better than Marathon — why it
/// is stuck (`failure`) once it passed its deadline.
pub fn deployment_json(d: &Deployment, view: &View) -> Value {
    let (apps, pods) = d.affected_apps_and_pods();
    let mut out = json!({
        "id": d.id,
        "version": d.version,
        "affectedApps": apps,
        "affectedPods": pods,
        "steps": d.steps.iter().map(|s| json!({"actions": actions_json(d, s, None)})).collect::<Vec<_>>(),
        "currentActions": actions_json(d, d.current_actions(), Some(view)),
        "currentStep": (d.current_step + 1).min(d.steps.len()),
        "totalSteps": d.steps.len(),
    });
    if let Some(failure) = &d.failure {
        out["failure"] = json!(failure);
    }
    out
}

/// `GET /v2/deployments`, which takes no query: every running
/// deployment.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct DeploymentsQuery;

async fn list(state: Api, headers: HeaderMap) -> Response {
    state.list(DeploymentsQuery, &headers).await
}

/// `[...]`, every running deployment.
pub(super) fn render<W: std::io::Write>(view: &View, out: W) -> Result<(), RenderError> {
    let list = view.deployments.values().map(|d| deployment_json(d, view));
    serde_json::to_writer(out, &Seq::new(list))?;
    Ok(())
}

/// `force=true` stops tracking the deployment (202); otherwise a new,
/// forced deployment reverts each app to the version before it.
async fn cancel(
    state: Api,
    Path(id): Path<String>,
    RawQuery(query): RawQuery,
) -> Result<Response, ApiError> {
    let params = Params::parse(query.as_deref())?;
    let force = params.flag("force", false)?;
    let view = state.view();
    let Some(deployment) = view.deployments.get(&id).cloned() else {
        return Err(ApiError::NotFound(format!(
            "DeploymentPlan {id} does not exist"
        )));
    };
    // Cancelling changes every app of the deployment (a rollback of a
    // start deletes the app).
    for (app, action) in deployment.actions() {
        state.authorize(crate::auth::Action::Update, app)?;
        if matches!(action, DeploymentAction::StartApplication) && !force {
            state.authorize(crate::auth::Action::Delete, app)?;
        }
    }
    if force {
        state.scheduler.cancel_deployment(id).await?;
        return Ok(StatusCode::ACCEPTED.into_response());
    }
    let mut last = None;
    for (app, action) in deployment.actions() {
        let outcome = match action {
            DeploymentAction::StartApplication => {
                state.scheduler.delete_app(app.clone(), true).await?
            }
            DeploymentAction::StopApplication => {
                return Err(ApiError::Conflict(format!(
                    "The deletion of {app} cannot be reverted: its definition is gone"
                )));
            }
            DeploymentAction::ScaleApplication | DeploymentAction::RestartApplication => {
                let before = deployment.version;
                let missing = app.clone();
                let edit: AppEdit = Box::new(move |ctx| {
                    let previous = ctx
                        .versions
                        .iter()
                        .rev()
                        .find(|a| a.version.is_some_and(|v| v < before))
                        .ok_or_else(|| {
                            SchedulerError::NotFound(format!(
                                "App '{missing}' has no version before {before} to revert to"
                            ))
                        })?;
                    Ok(Some((**previous).clone().restored_at(ctx.now)))
                });
                let edit = state.authorized_edit(app.clone(), edit);
                state.scheduler.edit_app(app.clone(), true, edit).await?
            }
        };
        last = Some(outcome);
    }
    match last {
        Some(outcome) => Ok(params::written(StatusCode::OK, &outcome)),
        None => Err(ApiError::NotFound(format!(
            "DeploymentPlan {id} does not exist"
        ))),
    }
}
