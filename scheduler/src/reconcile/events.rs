//! The event bus: what happened, as typed values. `/v2/events` streams them
//! in Marathon's JSON (rendered by the REST API, once per event, with the
//! same shapes as its answers); the loop emits them only after the
//! snapshot holding their change is published.

use std::sync::{Arc, OnceLock};

use super::view::Deployment;
use crate::state::app::{AppDefinition, PathId, Timestamp};
use crate::state::instance::Instance;

/// How many events a subscriber may fall behind before it is dropped
/// (Marathon's `--event_stream_max_outstanding_messages`).
pub const EVENT_BUFFER: usize = 1024;

/// What happened.
#[derive(Debug, Clone, PartialEq)]
pub enum Event {
    /// A task's status changed (`status_update_event`).
    StatusUpdate {
        /// The instance as it is now.
        instance: Arc<Instance>,
        /// Mesos's message, or why Baton changed what it shows.
        message: Option<String>,
        /// For a pod instance, the container task the update was about
        /// (the event names it and its own state).
        container_task: Option<String>,
    },
    /// An instance's condition changed (`instance_changed_event`).
    InstanceChanged(Arc<Instance>),
    /// A task's health flipped (`health_status_changed_event`).
    HealthChanged {
        /// The instance as it is now.
        instance: Arc<Instance>,
        /// Its task.
        task_id: String,
        /// Whether it is healthy now.
        alive: bool,
    },
    /// A task failing its health checks is being replaced
    /// (`unhealthy_instance_kill_event`).
    UnhealthyKill {
        /// The instance.
        instance: Arc<Instance>,
        /// Why (`FailedHealthChecks`).
        reason: &'static str,
    },
    /// A deployment step starts (`deployment_info`).
    DeploymentInfo {
        /// The deployment.
        deployment: Arc<Deployment>,
        /// The step (0-based).
        step: usize,
    },
    /// A deployment step is done (`deployment_step_success`).
    StepSuccess {
        /// The deployment.
        deployment: Arc<Deployment>,
        /// The step (0-based).
        step: usize,
    },
    /// A deployment step is past its deadline (`deployment_step_failure`).
    StepFailure {
        /// The deployment.
        deployment: Arc<Deployment>,
        /// The step (0-based).
        step: usize,
    },
    /// A deployment is done (`deployment_success`).
    DeploymentSuccess(Arc<Deployment>),
    /// A deployment is past its deadline (`deployment_failed`).
    DeploymentFailed {
        /// The deployment.
        deployment: Arc<Deployment>,
        /// Why, in words.
        reason: String,
    },
    /// A deleted app's last instance is gone (`app_terminated_event`).
    AppTerminated(PathId),
    /// An app was written through the API (`api_post_event`).
    ApiPost {
        /// The app as stored.
        app: Arc<AppDefinition>,
        /// The request's path.
        uri: String,
        /// The client's address.
        client_ip: String,
    },
    /// A pod was created, updated or deleted through `/v2/pods`
    /// (`pod_created_event`, `pod_updated_event`, `pod_deleted_event`).
    PodWritten {
        /// Which of the three.
        change: PodChange,
        /// The pod.
        pod: PathId,
        /// The request's path.
        uri: String,
        /// The client's address.
        client_ip: String,
    },
    /// A group write was accepted (`group_change_success`).
    GroupChangeSuccess {
        /// The group.
        group: PathId,
        /// The version written.
        version: Timestamp,
    },
    /// Subscribed to Mesos (`scheduler_registered_event` the first time,
    /// `scheduler_reregistered_event` after).
    Registered {
        /// The first subscription of this process.
        first: bool,
        /// Our FrameworkID.
        framework_id: String,
        /// The master.
        master: String,
    },
    /// The Mesos subscription ended (`scheduler_disconnected_event`).
    Disconnected,
    /// An event stream opened (`event_stream_attached`).
    StreamAttached {
        /// The client's address.
        remote: String,
    },
    /// An event stream closed (`event_stream_detached`).
    StreamDetached {
        /// The client's address.
        remote: String,
    },
}

/// What a `/v2/pods` write did.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum PodChange {
    /// POST, or a PUT of a new pod.
    Created,
    /// PUT of an existing pod.
    Updated,
    /// DELETE.
    Deleted,
}

impl Event {
    /// Whether a caller who sees only the apps `visible` admits may see
    /// this event: events about apps need their app (a deployment, all of
    /// its apps); events about Baton itself are for everyone.
    pub fn visible_to(&self, visible: impl Fn(&PathId) -> bool) -> bool {
        match self {
            Event::StatusUpdate { instance, .. }
            | Event::InstanceChanged(instance)
            | Event::HealthChanged { instance, .. }
            | Event::UnhealthyKill { instance, .. } => visible(&instance.app_id),
            Event::DeploymentInfo { deployment, .. }
            | Event::StepSuccess { deployment, .. }
            | Event::StepFailure { deployment, .. }
            | Event::DeploymentSuccess(deployment)
            | Event::DeploymentFailed { deployment, .. } => deployment.affected_apps().all(visible),
            Event::AppTerminated(app) => visible(app),
            Event::ApiPost { app, .. } => visible(&app.id),
            Event::PodWritten { pod, .. } => visible(pod),
            Event::GroupChangeSuccess { group, .. } => visible(group),
            Event::Registered { .. }
            | Event::Disconnected
            | Event::StreamAttached { .. }
            | Event::StreamDetached { .. } => true,
        }
    }

    /// Marathon's `eventType`.
    pub fn event_type(&self) -> &'static str {
        match self {
            Event::StatusUpdate { .. } => "status_update_event",
            Event::InstanceChanged(_) => "instance_changed_event",
            Event::HealthChanged { .. } => "health_status_changed_event",
            Event::UnhealthyKill { .. } => "unhealthy_instance_kill_event",
            Event::DeploymentInfo { .. } => "deployment_info",
            Event::StepSuccess { .. } => "deployment_step_success",
            Event::StepFailure { .. } => "deployment_step_failure",
            Event::DeploymentSuccess(_) => "deployment_success",
            Event::DeploymentFailed { .. } => "deployment_failed",
            Event::AppTerminated(_) => "app_terminated_event",
            Event::ApiPost { .. } => "api_post_event",
            Event::PodWritten {
                change: PodChange::Created,
                ..
            } => "pod_created_event",
            Event::PodWritten {
                change: PodChange::Updated,
                ..
            } => "pod_updated_event",
            Event::PodWritten {
                change: PodChange::Deleted,
                ..
            } => "pod_deleted_event",
            Event::GroupChangeSuccess { .. } => "group_change_success",
            Event::Registered { first: true, .. } => "scheduler_registered_event",
            Event::Registered { first: false, .. } => "scheduler_reregistered_event",
            Event::Disconnected => "scheduler_disconnected_event",
            Event::StreamAttached { .. } => "event_stream_attached",
            Event::StreamDetached { .. } => "event_stream_detached",
        }
    }
}

/// One event on the bus: what happened and when, shared by every
/// subscriber; its JSON is rendered once, by the first stream that sends
/// it.
#[derive(Debug)]
pub struct BusEvent {
    /// What happened.
    pub event: Event,
    /// When (`timestamp`).
    pub at: Timestamp,
    /// Its Marathon JSON, once rendered.
    pub rendered: OnceLock<String>,
}

impl BusEvent {
    /// `event`, happening at `at`.
    pub fn new(event: Event, at: Timestamp) -> Arc<BusEvent> {
        Arc::new(BusEvent {
            event,
            at,
            rendered: OnceLock::new(),
        })
    }

    /// Marathon's `eventType`.
    pub fn event_type(&self) -> &'static str {
        self.event.event_type()
    }
}
