//! Deployments: a change Baton carries out in steps (Marathon's
//! `DeploymentPlan`, shared/reference/marathon-api.md §4), as pure values.
//!
//! - [`plan`]: which apps a change touches, in which steps (stops first,
//!   then dependency layers).
//! - [`mod@advance`]: what a running deployment becomes when its apps are
//!   looked at: steps completed, finished, or past its deadline.
//!
//! The reconcile loop stores deployments, carries out their current step
//! app by app, and asks [`advance()`] after each pass; nothing here does
//! I/O or reads a clock.

pub mod advance;
pub mod plan;

pub use advance::{
    Advance, DEFAULT_DEPLOYMENT_TIMEOUT, DEPLOYMENT_TIMEOUT_LABEL, advance, timeout_of,
};

use serde::{Deserialize, Serialize};

use crate::state::app::{PathId, Timestamp};

/// What a deployment step does to an app, in Marathon's words.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
pub enum DeploymentAction {
    /// A new app.
    StartApplication,
    /// Only `instances` changed.
    ScaleApplication,
    /// The configuration changed: replace every instance.
    RestartApplication,
    /// The app is deleted.
    StopApplication,
}

impl DeploymentAction {
    /// Marathon's name of the action on a pod.
    pub fn pod_name(self) -> &'static str {
        match self {
            DeploymentAction::StartApplication => "StartPod",
            DeploymentAction::ScaleApplication => "ScalePod",
            DeploymentAction::RestartApplication => "RestartPod",
            DeploymentAction::StopApplication => "StopPod",
        }
    }
}

/// A running deployment: a change Baton is carrying out, in steps. A step
/// is done when every app in it has converged on its target; then the next
/// starts. The deployment ends with its last step.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Deployment {
    /// Uuid.
    pub id: String,
    /// The version it deploys.
    pub version: Timestamp,
    /// What it does, step by step, per app.
    pub steps: Vec<Vec<(PathId, DeploymentAction)>>,
    /// The step being carried out (0-based).
    pub current_step: usize,
    /// When it started.
    pub started_at: Timestamp,
    /// When its current step started (the deadline counts from there).
    #[serde(default)]
    pub step_started_at: Option<Timestamp>,
    /// Why it is stuck, once it is past its deadline without converging.
    #[serde(default)]
    pub failure: Option<DeploymentFailure>,
    /// Which of the ids it changes are pods (Marathon lists them apart:
    /// `affectedPods`, actions naming a `pod`).
    #[serde(default, skip_serializing_if = "std::collections::BTreeSet::is_empty")]
    pub pods: std::collections::BTreeSet<PathId>,
}

/// Why a deployment did not finish in time.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct DeploymentFailure {
    /// The app that did not converge.
    pub app_id: PathId,
    /// What went wrong, in words.
    pub reason: String,
    /// When the deadline passed.
    pub at: Timestamp,
}

impl Deployment {
    /// The apps and pods it changes.
    pub fn affected_apps(&self) -> impl Iterator<Item = &PathId> {
        self.steps.iter().flatten().map(|(app, _)| app)
    }

    /// Whether `id`, one of the ids it changes, is a pod.
    pub fn is_pod(&self, id: &PathId) -> bool {
        self.pods.contains(id)
    }

    /// Its actions' ids as Marathon lists them: `(affectedApps,
    /// affectedPods)`.
    pub fn affected_apps_and_pods(&self) -> (Vec<&PathId>, Vec<&PathId>) {
        self.affected_apps().partition(|id| !self.is_pod(id))
    }

    /// `{"action", "app"}`, or for a pod `{"action", "pod"}` with the
    /// action named for pods (`StartPod`, `ScalePod`, `RestartPod`,
    /// `StopPod`): an action as Marathon writes it.
    pub fn action_json(&self, id: &PathId, action: DeploymentAction) -> serde_json::Value {
        if self.is_pod(id) {
            serde_json::json!({"action": action.pod_name(), "pod": id})
        } else {
            serde_json::json!({"action": action, "app": id})
        }
    }

    /// Every action, in step order.
    pub fn actions(&self) -> impl Iterator<Item = &(PathId, DeploymentAction)> {
        self.steps.iter().flatten()
    }

    /// The actions of the step being carried out.
    pub fn current_actions(&self) -> &[(PathId, DeploymentAction)] {
        self.steps.get(self.current_step).map_or(&[], Vec::as_slice)
    }

    /// Whether `app` waits for an earlier step of this deployment.
    pub fn holds(&self, app: &PathId) -> bool {
        self.steps
            .iter()
            .skip(self.current_step + 1)
            .flatten()
            .any(|(a, _)| a == app)
    }
}
