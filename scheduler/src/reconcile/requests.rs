//! What passes between the scheduler's handle and its loop: the requests
//! a handle sends (app edits, kills, delay resets, deployment cancels), the
//! answers and errors that come back, and how the loop reaches Mesos.

use futures::future::BoxFuture;
use mesos_proto::scheduler::Call;
use tokio::sync::oneshot;

use crate::mesos::{MesosError, MesosHandle};
use crate::state::StoreError;
use crate::state::app::{AppDefinition, AppError, PathId, Timestamp};
use crate::state::instance::Instance;
use std::sync::Arc;

/// A request the loop could not carry out.
#[derive(Debug, thiserror::Error)]
pub enum SchedulerError {
    /// The durable store failed; nothing was changed.
    #[error(transparent)]
    Store(#[from] StoreError),
    /// The request is invalid (Marathon's 4xx shapes).
    #[error(transparent)]
    App(#[from] AppError),
    /// No such app.
    #[error("App '{0}' does not exist")]
    UnknownApp(PathId),
    /// Something else does not exist (the message says what).
    #[error("{0}")]
    NotFound(String),
    /// The app exists already (a create).
    #[error("An app with id [{0}] already exists.")]
    AlreadyExists(PathId),
    /// A running deployment holds the app; `force` overrides.
    #[error(
        "App is locked by one or more deployments. Override with the option '?force=true'. View details at '/v2/deployments/<DEPLOYMENT_ID>'."
    )]
    Locked {
        /// The deployments.
        deployments: Vec<String>,
    },
    /// The loop has stopped.
    #[error("scheduler is shutting down")]
    Stopped,
    /// The caller may not do what the edit turned out to do (decided in
    /// the loop, against the app as it is).
    #[error("{0}")]
    Forbidden(String),
}

/// What an app write did.
#[derive(Debug, Clone)]
pub struct WriteOutcome {
    /// The deployment carrying it out.
    pub deployment_id: String,
    /// The new version (for a delete, the time of the delete).
    pub version: Timestamp,
    /// The app as stored now (`None` after a delete).
    pub app: Option<Arc<AppDefinition>>,
    /// Whether the app did not exist before.
    pub created: bool,
}

/// What an app edit sees.
pub struct EditContext<'a> {
    /// The app as it is (`None` if it does not exist).
    pub current: Option<&'a AppDefinition>,
    /// Its stored versions, oldest first.
    pub versions: &'a [Arc<AppDefinition>],
    /// The version a change made now must carry (later than the current).
    pub now: Timestamp,
}

/// An edit of one app, run inside the loop against the current state so
/// that concurrent writers cannot lose each other's changes. Returns the new
/// definition (already stamped with its version), or `None` to delete.
pub type AppEdit =
    Box<dyn FnOnce(EditContext<'_>) -> Result<Option<AppDefinition>, SchedulerError> + Send>;

/// How to kill tasks.
#[derive(Debug, Clone, Copy, Default)]
pub struct KillOptions {
    /// Lower the app's `instances` by the number killed.
    pub scale: bool,
    /// Forget the instances (a new one replaces each unless `scale`).
    pub wipe: bool,
    /// Override deployment locks (only matters with `scale`).
    pub force: bool,
}

/// What a kill did.
#[derive(Debug, Clone, Default)]
pub struct KillOutcome {
    /// The instances whose tasks were killed, as they were.
    pub killed: Vec<Arc<Instance>>,
    /// With `scale`: the deployment and version of the scale-down.
    pub deployment: Option<(String, Timestamp)>,
}

pub(crate) type Reply<T> = oneshot::Sender<Result<T, SchedulerError>>;

pub(crate) enum Command {
    Edit {
        edits: Vec<(PathId, AppEdit)>,
        force: bool,
        reply: Reply<WriteOutcome>,
    },
    Kill {
        task_ids: Vec<String>,
        options: KillOptions,
        reply: Reply<KillOutcome>,
    },
    ResetDelay {
        id: PathId,
        reply: Reply<()>,
    },
    CancelDeployment {
        id: String,
        reply: Reply<()>,
    },
}

/// How the loop reaches Mesos: calls, sent in the order decided, and a way
/// to drop the subscription and resubscribe. [`MesosHandle`] in
/// production; tests drive the loop with a recorder instead.
pub trait MesosPort: Send + Sync + 'static {
    /// Sends a call on the live subscription.
    fn call(&self, call: Call) -> BoxFuture<'static, Result<(), MesosError>>;
    /// Drops the subscription; the session subscribes again.
    fn reconnect(&self);
}

impl MesosPort for MesosHandle {
    fn call(&self, call: Call) -> BoxFuture<'static, Result<(), MesosError>> {
        let handle = self.clone();
        Box::pin(async move { MesosHandle::call(&handle, call).await })
    }

    fn reconnect(&self) {
        MesosHandle::reconnect(self);
    }
}
