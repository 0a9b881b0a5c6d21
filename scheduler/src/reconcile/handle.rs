//! The scheduler from outside: its handle (writes, kills, snapshots, the
//! event bus), the errors it answers with, and starting it.

use std::collections::BTreeMap;
use std::sync::Arc;
use std::time::Duration;

use tokio::sync::{broadcast, mpsc, oneshot, watch};
use tokio_util::sync::CancellationToken;
use tracing::{info, warn};

use super::backoff::LaunchDelay;
use super::config::SchedulerConfig;
use super::driver;
use super::events::{BusEvent, EVENT_BUFFER, Event};
use super::requests::{
    AppEdit, Command, KillOptions, KillOutcome, MesosPort, Reply, SchedulerError, WriteOutcome,
};
use super::view::{Deployment, View};
use crate::clock::Clock;
use crate::mesos::session::{self, SessionEvent};
use crate::mesos::{MesosHandle, calls};
use crate::state::app::{AppDefinition, PathId, Timestamp};
use crate::state::instance::Instance;
use crate::state::{Category, Store};

/// A handle to the running scheduler.
#[derive(Clone)]
pub struct SchedulerHandle {
    commands: mpsc::Sender<Command>,
    view: watch::Receiver<Arc<View>>,
    mesos: MesosHandle,
    events: broadcast::Sender<Arc<BusEvent>>,
    clock: Clock,
}

impl SchedulerHandle {
    async fn ask<T>(&self, make: impl FnOnce(Reply<T>) -> Command) -> Result<T, SchedulerError> {
        let (reply, rx) = oneshot::channel();
        self.commands
            .send(make(reply))
            .await
            .map_err(|_| SchedulerError::Stopped)?;
        rx.await.map_err(|_| SchedulerError::Stopped)?
    }

    /// Creates, changes or deletes an app; durable when this returns.
    pub async fn edit_app(
        &self,
        id: PathId,
        force: bool,
        edit: AppEdit,
    ) -> Result<WriteOutcome, SchedulerError> {
        self.edit_apps(vec![(id, edit)], force).await
    }

    /// Creates, changes or deletes several apps at once, under one
    /// deployment: all or nothing.
    pub async fn edit_apps(
        &self,
        edits: Vec<(PathId, AppEdit)>,
        force: bool,
    ) -> Result<WriteOutcome, SchedulerError> {
        self.ask(|reply| Command::Edit {
            edits,
            force,
            reply,
        })
        .await
    }

    /// Stores `app` as the new definition of its id (create or replace).
    pub async fn put_app(&self, app: AppDefinition) -> Result<WriteOutcome, SchedulerError> {
        let id = app.id.clone();
        self.edit_app(
            id,
            true,
            Box::new(move |ctx| Ok(Some(app.next_version_of(ctx.current, ctx.now)))),
        )
        .await
    }

    /// Deletes an app: its instances are killed.
    pub async fn delete_app(
        &self,
        id: PathId,
        force: bool,
    ) -> Result<WriteOutcome, SchedulerError> {
        self.edit_app(
            id.clone(),
            force,
            Box::new(move |ctx| match ctx.current {
                Some(_) => Ok(None),
                None => Err(SchedulerError::UnknownApp(id)),
            }),
        )
        .await
    }

    /// Kills tasks by id; unknown ids are skipped.
    pub async fn kill_tasks(
        &self,
        task_ids: Vec<String>,
        options: KillOptions,
    ) -> Result<KillOutcome, SchedulerError> {
        self.ask(|reply| Command::Kill {
            task_ids,
            options,
            reply,
        })
        .await
    }

    /// Forgets the launch delay of an app (`DELETE /v2/queue/{id}/delay`).
    pub async fn reset_delay(&self, id: PathId) -> Result<(), SchedulerError> {
        self.ask(|reply| Command::ResetDelay { id, reply }).await
    }

    /// Stops tracking a deployment without touching its apps
    /// (`DELETE /v2/deployments/{id}?force=true`).
    pub async fn cancel_deployment(&self, id: String) -> Result<(), SchedulerError> {
        self.ask(|reply| Command::CancelDeployment { id, reply })
            .await
    }

    /// The scheduler's clock (the API stamps what it writes with it).
    pub fn now(&self) -> Timestamp {
        self.clock.now()
    }

    /// The event bus: everything `/v2/events` streams. A subscriber more
    /// than [`EVENT_BUFFER`] events behind is told it lagged.
    pub fn subscribe_events(&self) -> broadcast::Receiver<Arc<BusEvent>> {
        self.events.subscribe()
    }

    /// Puts an event on the bus, stamped now (for events the API
    /// originates, such as `api_post_event`); returns it as sent.
    pub fn publish_event(&self, event: Event) -> Arc<BusEvent> {
        let event = BusEvent::new(event, self.clock.now());
        let _ = self.events.send(event.clone());
        event
    }

    /// The current snapshot.
    pub fn view(&self) -> Arc<View> {
        self.view.borrow().clone()
    }

    /// Every new snapshot, as it is published.
    pub fn watch_view(&self) -> watch::Receiver<Arc<View>> {
        self.view.clone()
    }

    /// Waits until `predicate` holds for a snapshot, or `timeout` passes.
    pub async fn wait_for(
        &self,
        timeout: Duration,
        predicate: impl Fn(&View) -> bool,
    ) -> Option<Arc<View>> {
        let mut rx = self.view.clone();
        tokio::time::timeout(timeout, async {
            loop {
                let view = rx.borrow_and_update().clone();
                if predicate(&view) {
                    return Some(view);
                }
                if rx.changed().await.is_err() {
                    return None;
                }
            }
        })
        .await
        .ok()
        .flatten()
    }

    /// TEARDOWN: Mesos removes the framework and kills every task it runs.
    /// Only for an operator who asks for exactly that; Baton never sends it
    /// on shutdown or after an error.
    pub async fn teardown(&self) -> Result<(), crate::mesos::MesosError> {
        warn!("operator requested TEARDOWN: every task of this framework will be killed");
        self.mesos.call(calls::teardown()).await
    }

    /// The Mesos session (for diagnostics and tests).
    pub fn mesos(&self) -> &MesosHandle {
        &self.mesos
    }
}

/// The scheduler: start it with [`Scheduler::start`].
pub struct Scheduler;

impl Scheduler {
    /// Loads state from `store`, subscribes to Mesos and runs the loop until
    /// `shutdown` is cancelled. The join handle completes once the loop has
    /// stopped and released the store.
    pub fn start(
        config: SchedulerConfig,
        store: Arc<dyn Store>,
        shutdown: CancellationToken,
    ) -> Result<(SchedulerHandle, tokio::task::JoinHandle<()>), SchedulerError> {
        let view = load_view(store.as_ref())?;
        let framework_id = view
            .framework_id
            .clone()
            .map(mesos_proto::util::framework_id);
        let (mesos, events) =
            session::spawn(config.session.clone(), framework_id, shutdown.clone());
        let port: Arc<dyn MesosPort> = Arc::new(mesos.clone());
        Ok(Self::run_with(
            config, store, view, events, port, mesos, shutdown,
        ))
    }

    /// Runs the loop over `store` with Mesos reached through `port` and its
    /// events from `events` (session events as [`session::spawn`] sends
    /// them); `mesos` is what [`SchedulerHandle::mesos`] answers.
    pub fn start_with(
        config: SchedulerConfig,
        store: Arc<dyn Store>,
        events: mpsc::Receiver<SessionEvent>,
        port: Arc<dyn MesosPort>,
        mesos: MesosHandle,
        shutdown: CancellationToken,
    ) -> Result<(SchedulerHandle, tokio::task::JoinHandle<()>), SchedulerError> {
        let view = load_view(store.as_ref())?;
        Ok(Self::run_with(
            config, store, view, events, port, mesos, shutdown,
        ))
    }

    fn run_with(
        config: SchedulerConfig,
        store: Arc<dyn Store>,
        view: View,
        events: mpsc::Receiver<SessionEvent>,
        port: Arc<dyn MesosPort>,
        mesos: MesosHandle,
        shutdown: CancellationToken,
    ) -> (SchedulerHandle, tokio::task::JoinHandle<()>) {
        let (view_tx, view_rx) = watch::channel(Arc::new(view.clone()));
        let (commands_tx, commands_rx) = mpsc::channel(256);
        let (events_tx, _) = broadcast::channel(EVENT_BUFFER);
        let clock = config.clock;
        let stopped = driver::spawn(
            config,
            store,
            view,
            view_tx,
            events_tx.clone(),
            port,
            events,
            commands_rx,
            shutdown,
        );
        let handle = SchedulerHandle {
            commands: commands_tx,
            view: view_rx,
            mesos,
            events: events_tx,
            clock,
        };
        (handle, stopped)
    }
}

/// Reads the whole state from `store` into a view, as a new leader does.
pub fn load_view(store: &dyn Store) -> Result<View, SchedulerError> {
    let snapshot = store.load()?;
    let mut view = View {
        framework_id: snapshot.framework_id(),
        loaded: true,
        ..View::default()
    };
    for app in snapshot.decode_all::<AppDefinition>(Category::App)? {
        view.apps.insert(app.id.clone(), Arc::new(app));
    }
    let mut versions: BTreeMap<PathId, Vec<Arc<AppDefinition>>> = BTreeMap::new();
    for app in snapshot.decode_all::<AppDefinition>(Category::AppVersion)? {
        versions
            .entry(app.id.clone())
            .or_default()
            .push(Arc::new(app));
    }
    for (id, mut list) in versions {
        list.sort_by_key(|a| a.version);
        view.versions.insert(id, Arc::new(list));
    }
    for instance in snapshot.decode_all::<Instance>(Category::Instance)? {
        view.instances
            .entry(instance.app_id.clone())
            .or_default()
            .insert(instance.uuid, Arc::new(instance));
    }
    for (id, delay) in snapshot.decode_all::<(PathId, LaunchDelay)>(Category::Delay)? {
        view.delays.insert(id, delay);
    }
    for deployment in snapshot.decode_all::<Deployment>(Category::Deployment)? {
        view.deployments
            .insert(deployment.id.clone(), Arc::new(deployment));
    }
    info!(
        apps = view.apps.len(),
        instances = view.all_instances().count(),
        deployments = view.deployments.len(),
        framework_id = ?view.framework_id,
        "loaded state"
    );
    Ok(view)
}
