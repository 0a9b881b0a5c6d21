//! What a decision does to the world, as values: the state it changes, the
//! events it announces, the Mesos calls it makes, and the status update it
//! acknowledges. The driver's one `apply` carries them out in one order —
//! persist → update the view → emit events → send Mesos calls →
//! acknowledge — so no handler can get the order wrong.

use std::sync::Arc;

use mesos_proto::scheduler::Call;
use uuid::Uuid;

use super::backoff::LaunchDelay;
use super::events::Event;
use super::view::{Deployment, TaskFailure, View};
use crate::state::app::{AppDefinition, PathId, Timestamp};
use crate::state::instance::Instance;
use crate::state::{Category, Change, StoreError};

/// One change of the scheduler's state. Durable ones are written to the
/// store first; all of them then change the view readers see.
#[derive(Debug, Clone)]
pub enum StateChange {
    /// An instance, new or changed.
    Instance(Arc<Instance>),
    /// An instance forgotten.
    InstanceGone {
        /// Its app.
        app: PathId,
        /// Its uuid.
        uuid: Uuid,
    },
    /// An app's new definition, with its stored versions after the write
    /// (oldest first) and the versions dropped from the store.
    App {
        /// The definition.
        app: Arc<AppDefinition>,
        /// Every version kept, the new one last.
        versions: Arc<Vec<Arc<AppDefinition>>>,
        /// Versions no longer kept.
        dropped: Vec<Timestamp>,
    },
    /// An app deleted, with every stored version of it.
    AppGone {
        /// The app.
        app: PathId,
        /// Its stored versions.
        versions: Vec<Timestamp>,
    },
    /// An app's launch delay.
    Delay(PathId, LaunchDelay),
    /// An app's launch delay forgotten.
    DelayGone(PathId),
    /// A deployment, new or moved on.
    Deployment(Arc<Deployment>),
    /// A deployment over (finished, cancelled or superseded).
    DeploymentGone(String),
    /// The FrameworkID Mesos gave us (or its loss).
    FrameworkId(Option<String>),
    /// An app's last task failure (`lastTaskFailure`; not persisted).
    LastFailure(Arc<TaskFailure>),
}

impl StateChange {
    /// The store records it writes (none for what is not persisted).
    pub fn records(&self) -> Result<Vec<Change>, StoreError> {
        Ok(match self {
            StateChange::Instance(instance) => vec![instance_change(instance)?],
            StateChange::InstanceGone { app, uuid } => vec![Change::delete(
                Category::Instance,
                crate::state::app::instance_id(app, *uuid),
            )],
            StateChange::App {
                app,
                versions,
                dropped,
            } => {
                let mut records = vec![Change::put_json(Category::App, app.id.as_str(), &**app)?];
                if let Some(latest) = versions.last() {
                    let version = latest.version.unwrap_or(Timestamp::from_millis(0));
                    records.push(Change::put_json(
                        Category::AppVersion,
                        version_key(&app.id, version),
                        &**latest,
                    )?);
                }
                records.extend(
                    dropped
                        .iter()
                        .map(|v| Change::delete(Category::AppVersion, version_key(&app.id, *v))),
                );
                records
            }
            StateChange::AppGone { app, versions } => {
                let mut records = vec![Change::delete(Category::App, app.as_str())];
                records.extend(
                    versions
                        .iter()
                        .map(|v| Change::delete(Category::AppVersion, version_key(app, *v))),
                );
                records.push(Change::delete(Category::Delay, app.as_str()));
                records
            }
            StateChange::Delay(app, delay) => vec![Change::put_json(
                Category::Delay,
                app.as_str(),
                &(app, delay),
            )?],
            StateChange::DelayGone(app) => vec![Change::delete(Category::Delay, app.as_str())],
            StateChange::Deployment(d) => {
                vec![Change::put_json(Category::Deployment, d.id.clone(), &**d)?]
            }
            StateChange::DeploymentGone(id) => {
                vec![Change::delete(Category::Deployment, id.clone())]
            }
            StateChange::FrameworkId(id) => vec![Change::framework_id(id.as_deref())],
            StateChange::LastFailure(_) => Vec::new(),
        })
    }

    /// Applies it to `view`; returns the app whose state changed, if any
    /// (for the loop to look at it again).
    pub fn apply_to(self, view: &mut View) -> Option<PathId> {
        match self {
            StateChange::Instance(instance) => {
                let app = instance.app_id.clone();
                view.instances
                    .entry(app.clone())
                    .or_default()
                    .insert(instance.uuid, instance);
                Some(app)
            }
            StateChange::InstanceGone { app, uuid } => {
                if let Some(map) = view.instances.get_mut(&app) {
                    map.remove(&uuid);
                    if map.is_empty() {
                        view.instances.remove(&app);
                    }
                }
                Some(app)
            }
            StateChange::App { app, versions, .. } => {
                let id = app.id.clone();
                view.apps.insert(id.clone(), app);
                view.versions.insert(id.clone(), versions);
                Some(id)
            }
            StateChange::AppGone { app, .. } => {
                view.apps.remove(&app);
                view.versions.remove(&app);
                view.delays.remove(&app);
                view.offer_stats.remove(&app);
                Some(app)
            }
            StateChange::Delay(app, delay) => {
                view.delays.insert(app.clone(), delay);
                Some(app)
            }
            StateChange::DelayGone(app) => {
                view.delays.remove(&app);
                Some(app)
            }
            StateChange::Deployment(d) => {
                view.deployments.insert(d.id.clone(), d);
                None
            }
            StateChange::DeploymentGone(id) => {
                view.deployments.remove(&id);
                None
            }
            StateChange::FrameworkId(id) => {
                view.framework_id = id;
                None
            }
            StateChange::LastFailure(failure) => {
                view.last_failures.insert(failure.app_id.clone(), failure);
                None
            }
        }
    }
}

/// What one decision changes and says, carried out by the driver's
/// `apply` in one order.
#[derive(Debug, Default)]
pub struct Effects {
    /// State changes, persisted as one batch.
    pub changes: Vec<StateChange>,
    /// Events, emitted once the view shows the changes.
    pub events: Vec<Event>,
    /// Mesos calls, in order, after the events.
    pub calls: Vec<Call>,
    /// The acknowledgement of the status update handled, last.
    pub ack: Option<Call>,
}

impl Effects {
    /// Adds a state change.
    pub fn change(&mut self, change: StateChange) -> &mut Self {
        self.changes.push(change);
        self
    }

    /// Adds an event.
    pub fn emit(&mut self, event: Event) -> &mut Self {
        self.events.push(event);
        self
    }

    /// Adds a Mesos call.
    pub fn call(&mut self, call: Call) -> &mut Self {
        self.calls.push(call);
        self
    }

    /// The store records of its state changes: one atomic batch.
    pub fn records(&self) -> Result<Vec<Change>, StoreError> {
        let mut records = Vec::new();
        for change in &self.changes {
            records.extend(change.records()?);
        }
        Ok(records)
    }
}

/// The store key of an app's stored version.
pub fn version_key(id: &PathId, version: Timestamp) -> String {
    format!("{id}@{version}")
}

/// The store record of an instance.
pub fn instance_change(instance: &Instance) -> Result<Change, StoreError> {
    Change::put_json(Category::Instance, instance.instance_id(), instance)
}
