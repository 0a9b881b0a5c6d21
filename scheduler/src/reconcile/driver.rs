//! The loop itself; see the module docs.

use std::collections::{BTreeMap, BTreeSet};
use std::sync::Arc;
use std::time::Duration;

use mesos_proto::scheduler::{Call, Event, event};
use mesos_proto::util::{is_terminal, state_of};
use mesos_proto::v1::{self, TaskState};
use tokio::sync::{broadcast, mpsc, oneshot, watch};
use tokio::time::Instant;
use tokio_util::sync::CancellationToken;
use tracing::{Instrument, debug, error, info, info_span, warn};
use uuid::Uuid;

use super::backoff::{self, LaunchDelay};
use super::decide::{self, Action, Limits};
use super::events::{self, BusEvent};
use super::load;
use super::plan;
use super::view::{Deployment, DeploymentAction, DeploymentFailure, OfferStats, TaskFailure, View};
use crate::health::{
    self, CheckState, HealthChecker, HealthResult, ReadinessResult, ReadinessTarget, Target,
};
use crate::mesos::session::{self, SessionConfig, SessionEvent};
use crate::mesos::{MesosHandle, calls};
use crate::offers::constraints::offer_fields;
use crate::offers::executor::{ExecutorSettings, failed_fetching_executor, with_baton_executor};
use crate::offers::known::{self, KnownAgents};
use crate::offers::placement::{Demand, PlacementOptions, place};
use crate::offers::task_info::build_app_task_info;
use crate::state::app::{AppDefinition, AppError, PathId, Timestamp};
use crate::state::instance::{Condition, Goal, Instance, InstanceTask};
use crate::state::{Category, Change, StatusRecord, Store, StoreError};

/// Which executor runs app tasks.
#[derive(Debug, Clone, PartialEq)]
pub enum ExecutorChoice {
    /// `baton-executor`, fetched by agents from Baton's HTTP server.
    Baton(ExecutorSettings),
    /// Mesos's built-in command executor (`--executor command`).
    Command,
}

/// How the scheduler runs.
#[derive(Debug, Clone)]
pub struct SchedulerConfig {
    /// How to reach Mesos and who we are.
    pub session: SessionConfig,
    /// The role whose resources we use.
    pub role: String,
    /// Refuse seconds for offers declined while tasks wait (short: we want
    /// them back soon).
    pub refuse_seconds_while_waiting: f64,
    /// Refuse seconds for offers declined with nothing to launch.
    pub refuse_seconds_idle: f64,
    /// Launch timeout and kill retry.
    pub limits: Limits,
    /// `--reconciliation_interval`: how often every task is reconciled.
    pub reconciliation_interval: Duration,
    /// Which executor runs tasks.
    pub executor: ExecutorChoice,
    /// Placement knobs.
    pub placement: PlacementOptions,
    /// How many versions of each app are kept.
    pub max_versions: usize,
    /// First retry of an unanswered explicit reconciliation; doubles up to
    /// a minute (the Mesos reconciliation algorithm).
    pub reconcile_retry: Duration,
    /// How long a healthy task is drained (shown as TASK_KILLING, still
    /// running) before Baton kills it for a scale-down, an upgrade or a
    /// delete; the `BATON_DRAIN_SECONDS` label overrides it per app.
    pub drain: Duration,
    /// Marathon-level health checks in flight at most
    /// (`--max_concurrent_marathon_health_checks`).
    pub max_concurrent_health_checks: usize,
    /// What one "second" of a health check's timing lasts (tests shrink it).
    pub health_check_second: Duration,
    /// `--max_instances_per_app`: no write may ask for more.
    pub max_instances_per_app: u32,
}

impl SchedulerConfig {
    /// Defaults around a session.
    pub fn new(session: SessionConfig, role: String, executor: ExecutorChoice) -> SchedulerConfig {
        SchedulerConfig {
            session,
            role,
            refuse_seconds_while_waiting: 5.0,
            refuse_seconds_idle: 120.0,
            limits: Limits::default(),
            reconciliation_interval: Duration::from_secs(600),
            executor,
            placement: PlacementOptions::default(),
            max_versions: 50,
            reconcile_retry: Duration::from_secs(5),
            drain: Duration::from_secs(2),
            max_concurrent_health_checks: 256,
            health_check_second: Duration::from_secs(1),
            max_instances_per_app: crate::state::app::DEFAULT_MAX_INSTANCES_PER_APP,
        }
    }
}

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

type Reply<T> = oneshot::Sender<Result<T, SchedulerError>>;

enum Command {
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

/// A handle to the running scheduler.
#[derive(Clone)]
pub struct SchedulerHandle {
    commands: mpsc::Sender<Command>,
    view: watch::Receiver<Arc<View>>,
    mesos: MesosHandle,
    events: broadcast::Sender<Arc<BusEvent>>,
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

    /// The event bus: everything `/v2/events` streams. A subscriber more
    /// than [`events::EVENT_BUFFER`] events behind is told it lagged.
    pub fn subscribe_events(&self) -> broadcast::Receiver<Arc<BusEvent>> {
        self.events.subscribe()
    }

    /// Puts an event on the bus (for events the API originates, such as
    /// `api_post_event`).
    pub fn publish_event(&self, event: Arc<BusEvent>) {
        let _ = self.events.send(event);
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
        let (view_tx, view_rx) = watch::channel(Arc::new(view.clone()));
        let (commands_tx, commands_rx) = mpsc::channel(256);
        let (events_tx, _) = broadcast::channel(events::EVENT_BUFFER);
        let (calls_tx, calls_rx) = mpsc::channel(CALL_QUEUE);
        tokio::spawn(send_calls(mesos.clone(), calls_rx).instrument(info_span!("mesos_calls")));
        let dirty = everything(&view);
        let next_periodic_reconcile = Instant::now() + config.reconciliation_interval;
        let mut health_options = health::Options::new(config.max_concurrent_health_checks);
        health_options.second = config.health_check_second;
        let (checker, health_results, readiness_results) =
            HealthChecker::spawn_with_readiness(health_options, shutdown.clone());
        let health_dirty = view.instances.keys().cloned().collect();
        let driver = Driver {
            config,
            store,
            calls: calls_tx,
            mesos: mesos.clone(),
            view,
            view_tx,
            events: events_tx.clone(),
            outbox: Outbox::default(),
            wants_offers: None,
            dirty,
            wakeups: BTreeMap::new(),
            launchable: BTreeSet::new(),
            known_agents: KnownAgents::default(),
            reconciling: None,
            next_periodic_reconcile,
            checker,
            check_states: BTreeMap::new(),
            health_causes: BTreeMap::new(),
            targets: BTreeMap::new(),
            readiness_targets: BTreeMap::new(),
            readiness: BTreeMap::new(),
            health_dirty,
            executor_fetch_streaks: BTreeMap::new(),
        };
        let stopped = tokio::spawn(
            driver
                .run(
                    events,
                    commands_rx,
                    health_results,
                    readiness_results,
                    shutdown,
                )
                .instrument(info_span!("reconcile_loop")),
        );
        let handle = SchedulerHandle {
            commands: commands_tx,
            view: view_rx,
            mesos,
            events: events_tx,
        };
        Ok((handle, stopped))
    }
}

/// Reads the stored state into a view.
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

/// Calls waiting to be sent; beyond this the loop waits (backpressure).
const CALL_QUEUE: usize = 4096;

/// The app label that sets how long its deployments may take before they
/// are reported as failed (seconds).
pub const DEPLOYMENT_TIMEOUT_LABEL: &str = "BATON_DEPLOYMENT_TIMEOUT_SECONDS";

/// How long a deployment may take without a label saying otherwise.
const DEFAULT_DEPLOYMENT_TIMEOUT: Duration = Duration::from_secs(600);

/// How often an app that is still moving is looked at again.
const REQUEUE_AFTER: Duration = Duration::from_secs(1);

/// Failed fetches of baton-executor in a row that cost an app nothing; past
/// them its launch delay applies (a fetch that keeps failing is not a
/// restart's hiccup, and launches must not spin).
const FREE_EXECUTOR_FETCH_RETRIES: u32 = 10;

/// The longest wait between retries of an explicit reconciliation.
const RECONCILE_RETRY_CAP: Duration = Duration::from_secs(60);

/// Sends calls one after another, in the order the loop decided them: a
/// SUPPRESS overtaken by a later REVIVE would starve waiting tasks.
async fn send_calls(mesos: MesosHandle, mut calls: mpsc::Receiver<Call>) {
    while let Some(call) = calls.recv().await {
        // Failures are logged by the handle; a lost subscription makes the
        // session resubscribe, after which the loop re-decides.
        let _ = mesos.call(call).await;
    }
}

/// An explicit reconciliation in progress: the tasks that have not answered.
struct Reconciling {
    pending: BTreeMap<String, Option<String>>,
    retry_at: Instant,
    retry_after: Duration,
}

/// What the loop has decided to tell the world and holds back until the
/// state it describes is durable and published.
#[derive(Default)]
struct Outbox {
    events: Vec<Arc<BusEvent>>,
    calls: Vec<Call>,
}

struct Driver {
    config: SchedulerConfig,
    store: Arc<dyn Store>,
    /// Calls for [`send_calls`], in order.
    calls: mpsc::Sender<Call>,
    /// To force a resubscribe when state cannot be persisted.
    mesos: MesosHandle,
    /// The working copy; published after every change.
    view: View,
    view_tx: watch::Sender<Arc<View>>,
    /// The event bus.
    events: broadcast::Sender<Arc<BusEvent>>,
    /// Events and calls decided but not yet released (see [`Driver::flush`]).
    outbox: Outbox,
    /// What we last told Mesos about offers: `Some(true)` = REVIVE'd,
    /// `Some(false)` = SUPPRESS'ed, `None` = nothing since (re)subscribing,
    /// when filters left by a previous run may still hold offers back.
    wants_offers: Option<bool>,
    /// Apps whose desired or actual state changed since their last pass.
    dirty: BTreeSet<PathId>,
    /// Apps to look at again at a given time (launch timeouts, delays,
    /// deployments in progress).
    wakeups: BTreeMap<PathId, Instant>,
    /// Apps with instances that may launch now.
    launchable: BTreeSet<PathId>,
    /// The agents that may still offer, and their fields (for GROUP_BY).
    known_agents: KnownAgents,
    /// The explicit reconciliation in progress, if any.
    reconciling: Option<Reconciling>,
    next_periodic_reconcile: Instant,
    /// Runs the Marathon-level (HTTP, TCP) health checks.
    checker: HealthChecker,
    /// Per task and check: what its results add up to (both kinds of check).
    check_states: BTreeMap<(String, usize), CheckState>,
    /// The last failure cause of each task's checks, even one the grace
    /// period ignores (what a stuck deployment names as its cause).
    health_causes: BTreeMap<String, String>,
    /// Marathon-level checks by app, as last handed to the checker.
    targets: BTreeMap<PathId, Vec<Target>>,
    /// Readiness checks by app, as last handed to the checker.
    readiness_targets: BTreeMap<PathId, Vec<ReadinessTarget>>,
    /// The last readiness result per task and check.
    readiness: BTreeMap<(String, usize), ReadinessResult>,
    /// Apps whose health targets may have changed.
    health_dirty: BTreeSet<PathId>,
    /// Failed fetches of baton-executor in a row, by app (until one of its
    /// tasks runs).
    executor_fetch_streaks: BTreeMap<PathId, u32>,
}

impl Driver {
    async fn run(
        mut self,
        mut events: mpsc::Receiver<SessionEvent>,
        mut commands: mpsc::Receiver<Command>,
        mut health_results: mpsc::Receiver<HealthResult>,
        mut readiness_results: mpsc::Receiver<ReadinessResult>,
        shutdown: CancellationToken,
    ) {
        loop {
            let deadline = self.next_deadline();
            tokio::select! {
                () = shutdown.cancelled() => break,
                event = events.recv() => match event {
                    Some(event) => self.on_session_event(event).await,
                    None => break,
                },
                command = commands.recv() => match command {
                    Some(command) => self.on_command(command).await,
                    None => break,
                },
                () = tokio::time::sleep_until(deadline) => self.on_timer().await,
                Some(result) = health_results.recv() => {
                    let span = info_span!("health_result", task_id = %result.task_id);
                    self.on_health_result(result).instrument(span).await;
                }
                Some(result) = readiness_results.recv() => {
                    let span = info_span!("readiness_result", task_id = %result.task_id);
                    self.on_readiness_result(result).instrument(span).await;
                }
            }
            self.reconcile_dirty().await;
            self.refresh_health_targets();
            self.flush().await;
        }
        info!("reconcile loop stopped");
    }

    fn publish(&self) {
        // Cheap: the view's maps share structure.
        self.view_tx.send_replace(Arc::new(self.view.clone()));
    }

    fn next_deadline(&self) -> Instant {
        let mut deadline = self.next_periodic_reconcile;
        if let Some(r) = &self.reconciling {
            deadline = deadline.min(r.retry_at);
        }
        if let Some(&at) = self.wakeups.values().min() {
            deadline = deadline.min(at);
        }
        deadline
    }

    async fn on_timer(&mut self) {
        let now = Instant::now();
        let due: Vec<PathId> = self
            .wakeups
            .iter()
            .filter(|(_, at)| **at <= now)
            .map(|(id, _)| id.clone())
            .collect();
        for id in due {
            self.wakeups.remove(&id);
            self.dirty.insert(id);
        }
        if self.view.subscribed {
            if self.reconciling.as_ref().is_some_and(|r| r.retry_at <= now) {
                self.retry_reconciliation().await;
            }
            if self.next_periodic_reconcile <= now {
                self.start_reconciliation().await;
            }
        }
        if self.next_periodic_reconcile <= now {
            self.next_periodic_reconcile = now + self.config.reconciliation_interval;
        }
    }

    async fn persist(&self, changes: Vec<Change>) -> Result<(), StoreError> {
        if changes.is_empty() {
            return Ok(());
        }
        let store = self.store.clone();
        tokio::task::spawn_blocking(move || store.apply(&changes))
            .await
            .map_err(|e| StoreError::Backend(format!("store task panicked: {e}")))?
    }

    /// Queues an event for the bus; it goes out with the next
    /// [`Driver::flush`], after the snapshot holding its change.
    fn emit(&mut self, event: Arc<BusEvent>) {
        self.outbox.events.push(event);
    }

    /// Queues a call for Mesos; it goes out with the next
    /// [`Driver::flush`], in the order decided.
    fn send(&mut self, call: Call) {
        self.outbox.calls.push(call);
    }

    /// Releases what this pass decided, in the one order every change
    /// follows: (already persisted) → publish the snapshot the API reads →
    /// events → Mesos calls (acknowledgements among them, in order). A
    /// client that reads the API after an event therefore sees its change,
    /// as Marathon guarantees and marathon-lb relies on.
    async fn flush(&mut self) {
        self.publish();
        for event in std::mem::take(&mut self.outbox.events) {
            // Nobody listening is fine.
            let _ = self.events.send(event);
        }
        for call in std::mem::take(&mut self.outbox.calls) {
            if self.calls.send(call).await.is_err() {
                warn!("call sender stopped; call dropped");
            }
        }
    }

    fn put_instance(&mut self, instance: Instance) {
        let app = instance.app_id.clone();
        self.view
            .instances
            .entry(app.clone())
            .or_default()
            .insert(instance.uuid, Arc::new(instance));
        self.health_dirty.insert(app.clone());
        self.dirty.insert(app);
    }

    fn remove_instance(&mut self, app: &PathId, uuid: Uuid) {
        if let Some(map) = self.view.instances.get_mut(app) {
            map.remove(&uuid);
            if map.is_empty() {
                self.view.instances.remove(app);
            }
        }
        self.health_dirty.insert(app.clone());
        self.dirty.insert(app.clone());
    }

    // ---- health -------------------------------------------------------------

    /// The definition an instance runs: its own version's, else the app's.
    fn definition_for(&self, instance: &Instance) -> Option<Arc<AppDefinition>> {
        self.view
            .app_version(&instance.app_id, instance.app_version)
            .or_else(|| self.view.apps.get(&instance.app_id))
            .cloned()
    }

    /// Hands the checker the Marathon-level checks of every running task,
    /// and the readiness checks of every running task of an app's current
    /// configuration that has not been ready yet, when some app's may have
    /// changed (level-triggered).
    fn refresh_health_targets(&mut self) {
        if self.health_dirty.is_empty() {
            return;
        }
        let (mut health_changed, mut readiness_changed) = (false, false);
        for id in std::mem::take(&mut self.health_dirty) {
            let targets: Vec<Target> = self
                .view
                .instances_of(&id)
                .filter(|i| i.goal == Goal::Running)
                .filter_map(|i| {
                    self.definition_for(i)
                        .map(|app| health::targets_for(&app, i))
                })
                .flatten()
                .collect();
            health_changed |= replace_targets(&mut self.targets, &id, targets);
            let readiness: Vec<ReadinessTarget> = match self.view.apps.get(&id) {
                Some(app) if !app.readiness_checks.is_empty() => self
                    .view
                    .instances_of(&id)
                    .filter(|i| i.goal == Goal::Running && i.app_version == config_version(app))
                    .filter(|i| i.task.as_ref().is_some_and(|t| t.ready != Some(true)))
                    .flat_map(|i| health::readiness_targets_for(app, i))
                    .collect(),
                _ => Vec::new(),
            };
            readiness_changed |= replace_targets(&mut self.readiness_targets, &id, readiness);
        }
        if health_changed {
            self.checker
                .set_targets(self.targets.values().flatten().cloned().collect());
        }
        if readiness_changed {
            self.checker.set_readiness_targets(
                self.readiness_targets.values().flatten().cloned().collect(),
            );
        }
    }

    /// A readiness check's result: the task is ready once every readiness
    /// check of its app answered ready (and stays so: Marathon's checks end
    /// with the first ready answer).
    async fn on_readiness_result(&mut self, result: ReadinessResult) {
        let Some(instance) = self.view.instance_by_task(&result.task_id).cloned() else {
            return;
        };
        let Some(app) = self.view.apps.get(&instance.app_id).cloned() else {
            return;
        };
        let task_id = result.task_id.clone();
        self.readiness
            .insert((task_id.clone(), result.check_index), result);
        let results: Vec<&ReadinessResult> = (0..app.readiness_checks.len())
            .filter_map(|i| self.readiness.get(&(task_id.clone(), i)))
            .collect();
        let ready = results.len() == app.readiness_checks.len() && results.iter().all(|r| r.ready);
        let json: Vec<serde_json::Value> = self
            .view
            .instances_of(&app.id)
            .filter_map(|i| i.task.as_ref())
            .flat_map(|t| {
                (0..app.readiness_checks.len())
                    .filter_map(|c| {
                        self.readiness
                            .get(&(t.task_id.clone(), c))
                            .map(|r| r.to_json())
                    })
                    .collect::<Vec<_>>()
            })
            .collect();
        self.view.readiness.insert(app.id.clone(), Arc::new(json));
        let mut next = (*instance).clone();
        let Some(task) = next.task.as_mut() else {
            return;
        };
        if task.ready == Some(ready) {
            return;
        }
        task.ready = Some(ready);
        match instance_change(&next) {
            Ok(change) => {
                if let Err(e) = self.persist(vec![change]).await {
                    error!(error = %e, "cannot persist readiness");
                    return;
                }
            }
            Err(e) => {
                error!(error = %e, "cannot encode instance");
                return;
            }
        }
        if ready {
            info!(%task_id, "ready");
        }
        self.put_instance(next);
    }

    /// A Marathon-level check's result.
    async fn on_health_result(&mut self, result: HealthResult) {
        let Some(instance) = self.view.instance_by_task(&result.task_id).cloned() else {
            return; // a task we stopped tracking
        };
        if !self.targets.get(&instance.app_id).is_some_and(|t| {
            t.iter()
                .any(|t| t.key() == (result.task_id.as_str(), result.check_index))
        }) {
            return;
        }
        let mut next = (*instance).clone();
        let kill = self.apply_health(&mut next, &result);
        self.store_health_change(&instance, next, kill).await;
    }

    /// Records a result in its check's state and the task's overall verdict
    /// (`healthy`); returns whether the task is due to be replaced.
    fn apply_health(&mut self, instance: &mut Instance, result: &HealthResult) -> bool {
        let Some(app) = self.definition_for(instance) else {
            return false;
        };
        let Some(check) = app.health_checks.get(result.check_index) else {
            return false;
        };
        let instance_id = instance.instance_id();
        let Some(task) = instance.task.as_mut() else {
            return false;
        };
        let started_at = task.started_at.unwrap_or(task.launched_at);
        if !result.alive {
            let cause = result.cause.clone().unwrap_or_else(|| "failed".into());
            self.health_causes.insert(result.task_id.clone(), cause);
        }
        let verdict = self
            .check_states
            .entry((result.task_id.clone(), result.check_index))
            .or_default()
            .record(result, check, started_at);
        // All of the task's checks together: healthy once every one passed.
        let states: Vec<&CheckState> = (0..app.health_checks.len())
            .filter_map(|i| self.check_states.get(&(result.task_id.clone(), i)))
            .collect();
        let all_spoke = states.len() == app.health_checks.len();
        let alive = health::instance_alive(states.iter().copied());
        task.healthy = match alive {
            Some(true) if !all_spoke => None,
            other => other,
        };
        let json: Vec<serde_json::Value> = (0..app.health_checks.len())
            .filter_map(|i| {
                self.check_states
                    .get(&(result.task_id.clone(), i))
                    .map(|s| s.to_json(&instance_id, &result.task_id))
            })
            .collect();
        self.view
            .health
            .insert(result.task_id.clone(), Arc::new(json));
        // Mesos-level checks: 0 means "kill after the first failure".
        let kill_after = match check.max_consecutive_failures {
            0 if check.protocol.is_mesos() => 1,
            n => n,
        };
        let due = kill_after > 0
            && !verdict.ignored
            && verdict.alive == Some(false)
            && self
                .check_states
                .get(&(result.task_id.clone(), result.check_index))
                .is_some_and(|s| s.consecutive_failures >= kill_after);
        due && task.retire_for_health.is_none()
    }

    /// Persists an instance whose health changed, tells the bus, and
    /// retires it when due and allowed.
    async fn store_health_change(&mut self, before: &Instance, mut next: Instance, kill: bool) {
        let was = before.task.as_ref().and_then(|t| t.healthy);
        let now_healthy = next.task.as_ref().and_then(|t| t.healthy);
        let task_id = next
            .task
            .as_ref()
            .map(|t| t.task_id.clone())
            .unwrap_or_default();
        let retire = kill && self.may_retire(&next);
        if retire && let Some(task) = next.task.as_mut() {
            task.retire_for_health = Some(Timestamp::now());
        }
        if was == now_healthy && !retire {
            // Only timestamps moved; the view's results are already fresh.
            return;
        }
        match instance_change(&next) {
            Ok(change) => {
                if let Err(e) = self.persist(vec![change]).await {
                    error!(error = %e, "cannot persist a health change");
                    return;
                }
            }
            Err(e) => {
                error!(error = %e, "cannot encode instance");
                return;
            }
        }
        if was != now_healthy
            && let Some(alive) = now_healthy
        {
            info!(%task_id, alive, "health changed");
            self.emit(events::health_changed(&next, &task_id, alive));
        }
        if retire {
            self.announce_retirement(&next, &task_id);
        }
        self.put_instance(next);
    }

    /// The per-app limit on health kills, so that an outage of something
    /// every instance depends on does not kill them all: one instance of
    /// an app is replaced at a time, and only while enough others are
    /// healthy — or, when the upgrade strategy leaves room above
    /// `instances`, while the replacement can start before the sick one is
    /// killed (decide keeps the sick one until its replacement is ready).
    fn may_retire(&self, sick: &Instance) -> bool {
        let Some(app) = self.view.apps.get(&sick.app_id) else {
            return false;
        };
        let others: Vec<&Arc<Instance>> = self
            .view
            .instances_of(&sick.app_id)
            .filter(|i| i.uuid != sick.uuid && i.goal == Goal::Running)
            .collect();
        let replacing = others.iter().any(|i| {
            i.task
                .as_ref()
                .is_some_and(|t| t.retire_for_health.is_some() && !t.condition.is_terminal())
                || i.condition().is_none_or(|c| c.is_launching())
        });
        if replacing {
            return false;
        }
        let n = app.instances as usize;
        let min_healthy =
            (n as f64 * app.upgrade_strategy.minimum_health_capacity - 1e-9).ceil() as usize;
        let max_total =
            (n as f64 * (1.0 + app.upgrade_strategy.maximum_over_capacity) + 1e-9).floor() as usize;
        let room_for_replacement = max_total > n || min_healthy >= n;
        let healthy = others.iter().filter(|i| decide::is_ready(app, i)).count();
        room_for_replacement || healthy >= min_healthy
    }

    fn announce_retirement(&mut self, instance: &Instance, task_id: &str) {
        warn!(%task_id, "failing its health checks: replaced (the replacement first, when capacity allows)");
        if let Some(e) = events::unhealthy_kill(instance, "FailedHealthChecks") {
            self.emit(e);
        }
    }

    /// Forgets the health of a task that ended.
    fn forget_health(&mut self, task_id: &str) {
        self.check_states.retain(|(t, _), _| t != task_id);
        self.readiness.retain(|(t, _), _| t != task_id);
        self.health_causes.remove(task_id);
        self.view.health.remove(task_id);
    }

    // ---- commands -------------------------------------------------------

    async fn on_command(&mut self, command: Command) {
        // Every reply goes out after the change is published: a client that
        // reads right after its write sees it (read-your-writes).
        match command {
            Command::Edit {
                edits,
                force,
                reply,
            } => {
                let apps: Vec<&str> = edits.iter().map(|(id, _)| id.as_str()).collect();
                let span = info_span!("app_write", apps = ?apps);
                let result = self.edit_apps(edits, force).instrument(span).await;
                self.flush().await;
                let _ = reply.send(result);
            }
            Command::Kill {
                task_ids,
                options,
                reply,
            } => {
                let result = self.kill_tasks(task_ids, options).await;
                self.flush().await;
                let _ = reply.send(result);
            }
            Command::ResetDelay { id, reply } => {
                let result = self.reset_delay(&id).await;
                self.flush().await;
                let _ = reply.send(result);
            }
            Command::CancelDeployment { id, reply } => {
                let result = self.cancel_deployment(&id).await;
                self.flush().await;
                let _ = reply.send(result);
            }
        }
    }

    fn check_lock(&self, id: &PathId, force: bool) -> Result<Vec<String>, SchedulerError> {
        let holding: Vec<String> = self.view.deployments_of(id).map(|d| d.id.clone()).collect();
        if !holding.is_empty() && !force {
            return Err(SchedulerError::Locked {
                deployments: holding,
            });
        }
        Ok(holding)
    }

    /// A version later than every version of `id` so far.
    fn next_version(&self, id: &PathId) -> Timestamp {
        let now = Timestamp::now();
        match self.view.apps.get(id).and_then(|a| a.version) {
            Some(v) if v >= now => v.plus_millis(1),
            _ => now,
        }
    }

    /// Applies edits of several apps as one change: every edit is checked
    /// first, then all are written in one batch under one deployment — or
    /// nothing is written.
    async fn edit_apps(
        &mut self,
        edits: Vec<(PathId, AppEdit)>,
        force: bool,
    ) -> Result<WriteOutcome, SchedulerError> {
        struct Planned {
            id: PathId,
            created: bool,
            new: Option<AppDefinition>,
            versions: Vec<Arc<AppDefinition>>,
        }
        let mut superseded = BTreeSet::new();
        let mut seen = BTreeSet::new();
        for (id, _) in &edits {
            if !seen.insert(id.clone()) {
                return Err(AppError::invalid("/", format!("app {id} is listed twice")).into());
            }
            superseded.extend(self.check_lock(id, force)?);
        }
        let now = edits
            .iter()
            .map(|(id, _)| self.next_version(id))
            .max()
            .unwrap_or_else(Timestamp::now);
        let mut planned = Vec::with_capacity(edits.len());
        let mut actions = Vec::with_capacity(edits.len());
        for (id, edit) in edits {
            let current = self.view.apps.get(&id).cloned();
            let versions = self.view.versions.get(&id).cloned().unwrap_or_default();
            let new = edit(EditContext {
                current: current.as_deref(),
                versions: &versions,
                now,
            })?;
            // Every write path ends here (bodies, scaleBy, rollbacks to an
            // old version, kills with scale): one bound for all of them.
            if let Some(app) = &new
                && app.instances > self.config.max_instances_per_app
            {
                return Err(AppError::invalid(
                    "/instances",
                    format!(
                        "{}: {}",
                        app.id,
                        crate::state::app::too_many_instances(
                            app.instances.into(),
                            self.config.max_instances_per_app
                        )
                    ),
                )
                .into());
            }
            let action = match (&current, &new) {
                (None, None) => return Err(SchedulerError::UnknownApp(id)),
                (None, Some(_)) => DeploymentAction::StartApplication,
                (Some(_), None) => DeploymentAction::StopApplication,
                (Some(old), Some(new)) if config_version(old) != config_version(new) => {
                    DeploymentAction::RestartApplication
                }
                (Some(_), Some(_)) => DeploymentAction::ScaleApplication,
            };
            actions.push((id.clone(), action));
            planned.push(Planned {
                id,
                created: current.is_none(),
                new,
                versions: versions.iter().cloned().collect(),
            });
        }
        let dependencies: BTreeMap<PathId, Vec<PathId>> = planned
            .iter()
            .filter_map(|p| {
                p.new
                    .as_ref()
                    .map(|a| (p.id.clone(), a.dependencies.clone()))
            })
            .collect();
        let steps = plan::steps(&actions, |id| {
            dependencies.get(id).cloned().unwrap_or_default()
        })
        .map_err(|e| AppError::invalid("/dependencies", e.to_string()))?;
        if steps.is_empty() {
            return Err(AppError::invalid("/", "the change names no app").into());
        }
        let deployment = Deployment {
            id: Uuid::new_v4().to_string(),
            version: now,
            steps,
            current_step: 0,
            started_at: Timestamp::now(),
            step_started_at: None,
            failure: None,
        };
        let mut changes = Vec::new();
        for old in &superseded {
            changes.push(Change::delete(Category::Deployment, old.clone()));
        }
        changes.push(Change::put_json(
            Category::Deployment,
            deployment.id.clone(),
            &deployment,
        )?);
        for p in &mut planned {
            let id = &p.id;
            match &p.new {
                Some(app) => {
                    let version = app.version.unwrap_or(now);
                    changes.push(Change::put_json(Category::App, id.as_str(), app)?);
                    changes.push(Change::put_json(
                        Category::AppVersion,
                        version_key(id, version),
                        app,
                    )?);
                    p.versions.push(Arc::new(app.clone()));
                    let excess = p
                        .versions
                        .len()
                        .saturating_sub(self.config.max_versions.max(1));
                    for old in p.versions.drain(..excess) {
                        if let Some(v) = old.version {
                            changes.push(Change::delete(Category::AppVersion, version_key(id, v)));
                        }
                    }
                }
                None => {
                    changes.push(Change::delete(Category::App, id.as_str()));
                    for old in p.versions.drain(..) {
                        if let Some(v) = old.version {
                            changes.push(Change::delete(Category::AppVersion, version_key(id, v)));
                        }
                    }
                    changes.push(Change::delete(Category::Delay, id.as_str()));
                }
            }
        }
        self.persist(changes).await?;
        for old in superseded {
            info!(deployment = %old, "superseded by a forced change");
            self.view.deployments.remove(&old);
        }
        let single = planned.len() == 1;
        let mut outcome = WriteOutcome {
            deployment_id: deployment.id.clone(),
            version: now,
            app: None,
            created: false,
        };
        for p in planned {
            let stored = p.new.map(Arc::new);
            match &stored {
                Some(app) => {
                    self.view.apps.insert(p.id.clone(), app.clone());
                    self.view
                        .versions
                        .insert(p.id.clone(), Arc::new(p.versions));
                }
                None => {
                    self.view.apps.remove(&p.id);
                    self.view.versions.remove(&p.id);
                    self.view.delays.remove(&p.id);
                    self.view.offer_stats.remove(&p.id);
                }
            }
            if single {
                outcome.version = stored.as_ref().and_then(|a| a.version).unwrap_or(now);
                outcome.app = stored;
                outcome.created = p.created;
            }
            self.dirty.insert(p.id);
        }
        info!(deployment = %deployment.id, steps = ?deployment.steps, version = %now, "apps written");
        self.emit(events::deployment_step("deployment_info", &deployment));
        self.view
            .deployments
            .insert(deployment.id.clone(), Arc::new(deployment));
        Ok(outcome)
    }

    async fn kill_tasks(
        &mut self,
        task_ids: Vec<String>,
        options: KillOptions,
    ) -> Result<KillOutcome, SchedulerError> {
        let mut found: Vec<Arc<Instance>> = Vec::new();
        let mut seen = BTreeSet::new();
        for task_id in &task_ids {
            if let Some(instance) = self.view.instance_by_task(task_id)
                && seen.insert(instance.uuid)
            {
                found.push(instance.clone());
            }
        }
        let mut per_app: BTreeMap<PathId, u32> = BTreeMap::new();
        for instance in &found {
            *per_app.entry(instance.app_id.clone()).or_default() += 1;
        }
        let mut outcome = KillOutcome::default();
        if options.scale {
            let mut edits: Vec<(PathId, AppEdit)> = Vec::new();
            for (id, count) in &per_app {
                let Some(app) = self.view.apps.get(id).cloned() else {
                    continue;
                };
                let count = *count;
                edits.push((
                    id.clone(),
                    Box::new(move |ctx| {
                        let mut scaled = (*app).clone();
                        scaled.instances = scaled.instances.saturating_sub(count);
                        Ok(Some(scaled.with_version(ctx.now, true)))
                    }),
                ));
            }
            if !edits.is_empty() {
                let written = self.edit_apps(edits, options.force).await?;
                outcome.deployment = Some((written.deployment_id, written.version));
            }
        }
        let now = Timestamp::now();
        let mut changes = Vec::new();
        let mut updated = Vec::new();
        for instance in &found {
            let mut next = (**instance).clone();
            if options.scale || options.wipe {
                next.goal = Goal::Decommissioned;
            }
            if let Some(task) = next.task.as_mut()
                && !task.condition.is_terminal()
            {
                task.kill_requested_at = Some(now);
            }
            changes.push(instance_change(&next)?);
            updated.push(next);
        }
        self.persist(changes).await?;
        for next in updated {
            if let Some(task) = next.task.as_ref().filter(|t| !t.condition.is_terminal()) {
                info!(task_id = %task.task_id, "killing task on request");
                self.send_kill(task);
            }
            self.put_instance(next);
        }
        outcome.killed = found;
        Ok(outcome)
    }

    async fn reset_delay(&mut self, id: &PathId) -> Result<(), SchedulerError> {
        if !self.view.apps.contains_key(id) {
            return Err(SchedulerError::UnknownApp(id.clone()));
        }
        self.persist(vec![Change::delete(Category::Delay, id.as_str())])
            .await?;
        self.view.delays.remove(id);
        self.dirty.insert(id.clone());
        Ok(())
    }

    async fn cancel_deployment(&mut self, id: &str) -> Result<(), SchedulerError> {
        let Some(deployment) = self.view.deployments.get(id).cloned() else {
            return Err(SchedulerError::NotFound(format!(
                "DeploymentPlan {id} does not exist"
            )));
        };
        self.persist(vec![Change::delete(Category::Deployment, id)])
            .await?;
        info!(deployment = %id, "deployment cancelled");
        self.view.deployments.remove(id);
        self.dirty.extend(deployment.affected_apps().cloned());
        Ok(())
    }

    fn send_kill(&mut self, task: &InstanceTask) {
        self.view.stats.kills_sent += 1;
        self.send(calls::kill(
            mesos_proto::util::task_id(&task.task_id),
            Some(mesos_proto::util::agent_id(&task.agent_id)),
            None,
        ));
    }

    // ---- per-app reconcile ------------------------------------------------

    async fn reconcile_dirty(&mut self) {
        // Nothing acts until Mesos has said SUBSCRIBED.
        if !self.view.subscribed {
            return;
        }
        let dirty = std::mem::take(&mut self.dirty);
        for id in dirty {
            let span = info_span!("app_reconcile", app = %id);
            self.reconcile_app(&id).instrument(span).await;
        }
        self.update_offer_interest().await;
    }

    async fn reconcile_app(&mut self, id: &PathId) {
        if self.held(id) {
            // A later step of its deployment: untouched until its turn.
            self.launchable.remove(id);
            return;
        }
        self.view.stats.app_reconciles += 1;
        let app = self.view.apps.get(id).cloned();
        let instances: Vec<Arc<Instance>> = self.view.instances_of(id).cloned().collect();
        let refs: Vec<&Instance> = instances.iter().map(|i| &**i).collect();
        let now = Timestamp::now();
        let actions = decide::decide(app.as_deref(), &refs, now, &self.config.limits);
        let mut changes = Vec::new();
        let mut puts: BTreeMap<Uuid, Instance> = BTreeMap::new();
        let mut expunged = Vec::new();
        let mut kills = Vec::new();
        let mut draining = false;
        let mut drain_started = Vec::new();
        let mut created = Vec::new();
        for action in &actions {
            match *action {
                Action::Schedule(count) => {
                    let Some(app) = &app else { continue };
                    for _ in 0..count {
                        created.push(Instance::schedule(id.clone(), config_version(app), now));
                    }
                }
                Action::Decommission(i) => {
                    let entry = puts.entry(refs[i].uuid).or_insert_with(|| refs[i].clone());
                    entry.goal = Goal::Decommissioned;
                }
                Action::Kill(i) => {
                    // A healthy task that is still wanted by nobody is first
                    // drained: shown as TASK_KILLING while it serves on, so
                    // that clients stop picking it before it goes.
                    let entry = puts.entry(refs[i].uuid).or_insert_with(|| refs[i].clone());
                    // (Decommissioned by this same pass, possibly.)
                    let drain = match &app {
                        Some(app)
                            if entry.goal != Goal::Running && decide::is_ready(app, entry) =>
                        {
                            drain_of(app, self.config.drain)
                        }
                        _ => Duration::ZERO,
                    };
                    let Some(task) = entry.task.as_mut() else {
                        continue;
                    };
                    let drained_for = task
                        .draining_since
                        .map(|since| (now.as_millis() - since.as_millis()).max(0) as u128);
                    match drained_for {
                        None if !drain.is_zero() => {
                            task.draining_since = Some(now);
                            draining = true;
                            drain_started.push(refs[i].uuid);
                        }
                        Some(ms) if ms < drain.as_millis() => draining = true,
                        _ => {
                            task.kill_requested_at = Some(now);
                            kills.push(task.clone());
                        }
                    }
                }
                Action::Expunge(i) => expunged.push(refs[i].uuid),
            }
        }
        for instance in puts.values().chain(&created) {
            match instance_change(instance) {
                Ok(c) => changes.push(c),
                Err(e) => error!(error = %e, "cannot encode instance"),
            }
        }
        for uuid in &expunged {
            changes.push(Change::delete(
                Category::Instance,
                crate::state::app::instance_id(id, *uuid),
            ));
            puts.remove(uuid);
        }
        if let Err(e) = self.persist(changes).await {
            error!(error = %e, "cannot persist reconcile decisions; retrying shortly");
            self.wakeups
                .insert(id.clone(), Instant::now() + REQUEUE_AFTER);
            return;
        }
        if !actions.is_empty() {
            debug!(?actions, "reconciled");
        }
        // Tell followers (load balancers) at once that these stop serving.
        for uuid in &drain_started {
            if let Some(e) = puts
                .get(uuid)
                .and_then(|i| events::status_update(i, Some("draining before kill")))
            {
                self.emit(e);
            }
        }
        for uuid in expunged {
            self.remove_instance(id, uuid);
        }
        for instance in puts.into_values().chain(created) {
            self.put_instance(instance);
        }
        self.dirty.remove(id);
        for task in kills {
            info!(task_id = %task.task_id, "killing task");
            self.send_kill(&task);
        }
        self.advance_deployments(id).await;
        self.schedule_next_look(id, now);
        if draining {
            // Back when the drain may be over (the usual requeue is 1 s).
            self.wakeups
                .entry(id.clone())
                .and_modify(|at| *at = (*at).min(Instant::now() + REQUEUE_AFTER))
                .or_insert_with(|| Instant::now() + REQUEUE_AFTER);
        }
    }

    fn converged(&self, app: &PathId) -> bool {
        let instances: Vec<&Instance> = self.view.instances_of(app).map(|i| &**i).collect();
        decide::converged(self.view.apps.get(app).map(|a| &**a), &instances)
    }

    /// Moves the deployments of `id` on: a step whose apps have all
    /// converged is done, the next one starts (its apps are no longer
    /// held), and after the last the deployment ends.
    async fn advance_deployments(&mut self, id: &PathId) {
        let touched: Vec<Arc<Deployment>> = self.view.deployments_of(id).cloned().collect();
        for deployment in touched {
            let mut d = (*deployment).clone();
            let mut stepped = false;
            while d.current_step < d.steps.len()
                && d.current_actions()
                    .iter()
                    .all(|(app, _)| self.converged(app))
            {
                self.emit(events::deployment_step("deployment_step_success", &d));
                d.current_step += 1;
                d.step_started_at = Some(Timestamp::now());
                stepped = true;
                if d.current_step < d.steps.len() {
                    self.emit(events::deployment_step("deployment_info", &d));
                    self.dirty
                        .extend(d.current_actions().iter().map(|(a, _)| a.clone()));
                }
            }
            if !stepped {
                if let Some(failure) = self.deadline_failure(&d) {
                    warn!(deployment = %d.id, app = %failure.app_id, reason = %failure.reason, "deployment past its deadline");
                    d.failure = Some(failure.clone());
                    match Change::put_json(Category::Deployment, d.id.clone(), &d) {
                        Ok(change) => {
                            if let Err(e) = self.persist(vec![change]).await {
                                error!(error = %e, "cannot persist deployment failure");
                                continue;
                            }
                        }
                        Err(e) => {
                            error!(error = %e, "cannot encode deployment");
                            continue;
                        }
                    }
                    self.emit(events::deployment_step("deployment_step_failure", &d));
                    self.emit(events::deployment_failed(&d, &failure.reason));
                    self.view.deployments.insert(d.id.clone(), Arc::new(d));
                }
                continue;
            }
            let finished = d.current_step >= d.steps.len();
            let change = if finished {
                Change::delete(Category::Deployment, d.id.clone())
            } else {
                match Change::put_json(Category::Deployment, d.id.clone(), &d) {
                    Ok(c) => c,
                    Err(e) => {
                        error!(error = %e, "cannot encode deployment");
                        continue;
                    }
                }
            };
            if let Err(e) = self.persist(vec![change]).await {
                error!(error = %e, "cannot persist deployment progress");
                continue;
            }
            if finished {
                info!(deployment = %d.id, "deployment finished");
                for (app, action) in d.actions() {
                    if *action == DeploymentAction::StopApplication {
                        self.emit(events::app_terminated(app));
                    }
                }
                self.emit(events::deployment_success(&d));
                self.view.deployments.remove(&d.id);
            } else {
                info!(deployment = %d.id, step = d.current_step + 1, "deployment step started");
                self.view.deployments.insert(d.id.clone(), Arc::new(d));
            }
        }
    }

    /// Why a deployment that has not failed yet is now past its deadline
    /// (`BATON_DEPLOYMENT_TIMEOUT_SECONDS` on the app, else
    /// [`DEFAULT_DEPLOYMENT_TIMEOUT`]), naming the first app of the current
    /// step that has not converged and what holds it back.
    fn deadline_failure(&self, d: &Deployment) -> Option<DeploymentFailure> {
        if d.failure.is_some() {
            return None;
        }
        let now = Timestamp::now();
        let (app_id, _) = d
            .current_actions()
            .iter()
            .find(|(app, _)| !self.converged(app))?;
        let app = self.view.apps.get(app_id);
        let timeout_ms = app
            .and_then(|a| a.labels.get(DEPLOYMENT_TIMEOUT_LABEL))
            .and_then(|v| v.parse::<u64>().ok())
            .map_or(DEFAULT_DEPLOYMENT_TIMEOUT, Duration::from_secs)
            .as_millis();
        let step_start = d.step_started_at.unwrap_or(d.started_at);
        let elapsed = (now.as_millis() - step_start.as_millis()).max(0) as u128;
        if elapsed < timeout_ms {
            return None;
        }
        let version = app.map(|a| config_version(a));
        let reason = match (self.view.last_failures.get(app_id), version) {
            (Some(f), Some(v)) if f.version == v => format!(
                "task {} of the new version ended {} on {}: {}",
                f.task_id, f.state, f.host, f.message
            ),
            _ => match self.view.offer_stats.get(app_id) {
                Some(stats) if stats.processed_offers > 0 => {
                    let top = stats
                        .since_waiting
                        .funnel()
                        .into_iter()
                        .filter(|step| step.declined > 0)
                        .max_by_key(|step| step.declined);
                    match top {
                        Some(step) => format!(
                            "instances wait for offers: {} of the last {} offers were declined for {}",
                            step.declined,
                            stats.processed_offers,
                            step.reason.as_str()
                        ),
                        None => "instances wait for offers".to_string(),
                    }
                }
                _ => {
                    let instances: Vec<&Instance> =
                        self.view.instances_of(app_id).map(|i| &**i).collect();
                    let ready = app.map_or(0, |a| {
                        instances
                            .iter()
                            .filter(|i| Some(i.app_version) == version && decide::is_ready(a, i))
                            .count()
                    });
                    // Why the others are not: the last health check
                    // failure of one of them, when there is one.
                    let cause = instances
                        .iter()
                        .filter(|i| Some(i.app_version) == version)
                        .filter_map(|i| i.task.as_ref())
                        .find_map(|t| {
                            self.health_causes.get(&t.task_id).map(|cause| {
                                format!("; health check of {} failing: {cause}", t.task_id)
                            })
                        })
                        .unwrap_or_default();
                    format!(
                        "{ready} of {} instances of the new version are running, healthy and ready{cause}",
                        app.map_or(0, |a| a.instances)
                    )
                }
            },
        };
        Some(DeploymentFailure {
            app_id: app_id.clone(),
            reason,
            at: now,
        })
    }

    /// Whether an earlier step of a deployment holds `id` back.
    fn held(&self, id: &PathId) -> bool {
        self.view.deployments_of(id).any(|d| d.holds(id))
    }

    /// Decides when `id` needs looking at again, and whether it can launch.
    fn schedule_next_look(&mut self, id: &PathId, now: Timestamp) {
        let app = self.view.apps.get(id).cloned();
        let mut moving = self.view.deployments_of(id).next().is_some();
        let mut waiting = false;
        for instance in self.view.instances_of(id) {
            match instance.condition() {
                _ if instance.goal != Goal::Running => moving |= instance.is_active(),
                Some(c) if c.is_launching() || c == Condition::Killing => moving = true,
                Some(Condition::Unreachable) => moving = true,
                Some(c)
                    if !c.is_terminal()
                        && instance
                            .task
                            .as_ref()
                            .is_some_and(|t| t.retire_for_health.is_some()) =>
                {
                    moving = true;
                }
                _ => {}
            }
            waiting |= instance.is_waiting();
        }
        let delay_left = app.as_ref().map_or(0, |a| {
            backoff::time_left_ms(self.view.delays.get(id), a, now)
        });
        let launchable = waiting && app.is_some() && delay_left == 0;
        if launchable {
            self.launchable.insert(id.clone());
        } else {
            self.launchable.remove(id);
        }
        if !waiting {
            self.view.offer_stats.remove(id);
        } else if !self.view.offer_stats.contains_key(id) {
            self.view.offer_stats.insert(
                id.clone(),
                Arc::new(OfferStats {
                    since: Some(now),
                    ..OfferStats::default()
                }),
            );
        }
        let mut next = None;
        if moving {
            next = Some(Instant::now() + REQUEUE_AFTER);
        }
        if waiting && delay_left > 0 {
            let at = Instant::now() + Duration::from_millis(delay_left);
            next = Some(next.map_or(at, |n: Instant| n.min(at)));
        }
        match next {
            Some(at) => {
                self.wakeups.insert(id.clone(), at);
            }
            None => {
                self.wakeups.remove(id);
            }
        }
    }

    /// SUPPRESS when nothing can launch, REVIVE as soon as something can.
    async fn update_offer_interest(&mut self) {
        if !self.view.subscribed {
            return;
        }
        let wants = !self.launchable.is_empty();
        if self.wants_offers == Some(wants) {
            return;
        }
        self.wants_offers = Some(wants);
        if wants {
            // REVIVE also clears the refuse filters of earlier declines.
            info!(
                apps = self.launchable.len(),
                "instances are waiting: REVIVE"
            );
            self.known_agents.revived(Timestamp::now());
            self.send(calls::revive(Vec::new()));
        } else {
            info!("nothing waits for offers: SUPPRESS");
            self.send(calls::suppress(Vec::new()));
        }
    }

    // ---- Mesos events -----------------------------------------------------

    async fn on_session_event(&mut self, event: SessionEvent) {
        match event {
            SessionEvent::Subscribed {
                framework_id,
                master,
                ..
            } => self.on_subscribed(framework_id, master.to_string()).await,
            SessionEvent::Disconnected { reason } => {
                warn!(%reason, "disconnected from Mesos; outstanding offers are void");
                if self.view.subscribed {
                    self.emit(events::disconnected());
                }
                self.view.subscribed = false;
                self.reconciling = None;
            }
            SessionEvent::FrameworkRemoved { message } => self.on_framework_removed(message).await,
            SessionEvent::Event(event) => self.on_event(*event).await,
        }
    }

    async fn on_subscribed(&mut self, framework_id: v1::FrameworkId, master: String) {
        if self.view.framework_id.as_deref() != Some(framework_id.value.as_str()) {
            // Persist before relying on it: a restart must resubscribe as us.
            if let Err(e) = self
                .persist(vec![Change::framework_id(Some(&framework_id.value))])
                .await
            {
                error!(error = %e, "cannot persist the FrameworkID; resubscribing");
                self.mesos.reconnect();
                return;
            }
            self.view.framework_id = Some(framework_id.value.clone());
        }
        self.view.subscribed = true;
        self.view.stats.subscriptions += 1;
        self.emit(events::registered(
            self.view.stats.subscriptions == 1,
            &framework_id.value,
            &master,
        ));
        // The next pass says whether we want offers.
        self.wants_offers = None;
        self.dirty.extend(everything(&self.view));
        // Kills asked for before (by a previous run, or on a subscription
        // that ended) may never have reached Mesos: ask again now rather
        // than after the kill retry, so that a stop is not held up (nor
        // its app locked) by a crash. Reconciliation tells what still runs.
        let outstanding: Vec<InstanceTask> = self
            .view
            .all_instances()
            .filter_map(|i| i.task.as_ref())
            .filter(|t| t.kill_requested_at.is_some() && !t.condition.is_terminal())
            .cloned()
            .collect();
        if !outstanding.is_empty() {
            info!(tasks = outstanding.len(), "resending outstanding kills");
        }
        for task in &outstanding {
            self.send_kill(task);
        }
        self.start_reconciliation().await;
        self.next_periodic_reconcile = Instant::now() + self.config.reconciliation_interval;
    }

    /// Explicit reconciliation of every task we believe may be alive; the
    /// implicit one follows once all have answered (or retries gave up).
    async fn start_reconciliation(&mut self) {
        let pending: BTreeMap<String, Option<String>> = self
            .view
            .all_instances()
            .filter_map(|i| i.task.as_ref())
            .filter(|t| !t.condition.is_terminal())
            .map(|t| (t.task_id.clone(), Some(t.agent_id.clone())))
            .collect();
        info!(tasks = pending.len(), "explicit reconciliation");
        self.reconciling = Some(Reconciling {
            pending,
            retry_at: Instant::now(),
            retry_after: self.config.reconcile_retry,
        });
        self.retry_reconciliation().await;
    }

    async fn retry_reconciliation(&mut self) {
        let Some(r) = self.reconciling.as_mut() else {
            return;
        };
        if r.pending.is_empty() {
            self.reconciling = None;
            self.view.stats.reconcile_cycles += 1;
            self.send(calls::reconcile(Vec::new()));
            return;
        }
        let tasks = r
            .pending
            .iter()
            .map(|(t, a)| {
                (
                    mesos_proto::util::task_id(t),
                    a.clone().map(mesos_proto::util::agent_id),
                )
            })
            .collect();
        r.retry_at = Instant::now() + r.retry_after;
        r.retry_after = (r.retry_after * 2).min(RECONCILE_RETRY_CAP);
        self.view.stats.reconcile_requests += 1;
        self.send(calls::reconcile(tasks));
    }

    async fn on_framework_removed(&mut self, message: String) {
        let now = Timestamp::now();
        let mut changes = vec![Change::framework_id(None)];
        let mut gone = Vec::new();
        for instance in self.view.all_instances().filter(|i| i.is_active()) {
            let mut next = (**instance).clone();
            if let Some(task) = next.task.as_mut() {
                task.condition = Condition::Gone;
                task.last_status = Some(StatusRecord {
                    state: TaskState::TaskGone.as_str_name().to_string(),
                    message: Some(format!("framework removed by master: {message}")),
                    reason: Some(
                        v1::task_status::Reason::FrameworkRemoved
                            .as_str_name()
                            .to_string(),
                    ),
                    source: None,
                    healthy: None,
                    timestamp: Some(now.as_millis() as f64 / 1000.0),
                });
            }
            match instance_change(&next) {
                Ok(c) => changes.push(c),
                Err(e) => error!(error = %e, "cannot encode instance"),
            }
            gone.push(next);
        }
        if let Err(e) = self.persist(changes).await {
            error!(error = %e, "cannot persist framework removal");
            return;
        }
        self.view.framework_id = None;
        for instance in gone {
            self.put_instance(instance);
        }
    }

    async fn on_event(&mut self, event: Event) {
        let kind = event
            .r#type
            .and_then(|t| event::Type::try_from(t).ok())
            .unwrap_or(event::Type::Unknown);
        match kind {
            event::Type::Offers => {
                let offers = event.offers.map(|o| o.offers).unwrap_or_default();
                let span = info_span!("offer_cycle", offers = offers.len());
                self.on_offers(offers).instrument(span).await;
            }
            event::Type::Update => {
                if let Some(update) = event.update {
                    let span = info_span!("status_update", task_id = %update.status.task_id.value);
                    self.on_update(update.status).instrument(span).await;
                }
            }
            event::Type::Rescind => debug!("offer rescinded (offers are never held)"),
            event::Type::Failure => {
                if let Some(f) = event.failure {
                    let agent = f.agent_id.map(|a| a.value);
                    let executor = f.executor_id.map(|e| e.value);
                    // Mesos reports every executor exit; a clean one is news,
                    // not trouble (each task's own update says how it ended).
                    if executor.is_none()
                        && let Some(agent) = &agent
                    {
                        // No executor named: the agent itself is lost.
                        warn!(%agent, "agent lost (FAILURE from master)");
                        self.known_agents.lost(agent);
                    } else if f.status == Some(0) {
                        debug!(?agent, ?executor, "executor exited cleanly");
                    } else {
                        warn!(?agent, ?executor, status = ?f.status, "FAILURE from master");
                    }
                }
            }
            event::Type::Message => {
                if let Some(message) = event.message {
                    self.on_message(message);
                }
            }
            other => debug!(event = ?other, "event ignored"),
        }
    }

    /// An executor's MESSAGE: a load report is kept for the tasks it names
    /// that are ours and running; anything else is logged and dropped.
    fn on_message(&mut self, message: mesos_proto::scheduler::event::Message) {
        let executor = message.executor_id.value;
        match load::parse_report(&message.data, Timestamp::now()) {
            Ok(loads) => {
                for (task_id, task_load) in loads {
                    let running = self
                        .view
                        .instance_by_task(&task_id)
                        .and_then(|i| i.task.as_ref())
                        .is_some_and(|t| !t.condition.is_terminal());
                    if running {
                        self.view.loads.insert(task_id, Arc::new(task_load));
                    }
                }
            }
            Err(e) => debug!(%executor, error = %e, "executor message dropped"),
        }
    }

    async fn on_offers(&mut self, offers: Vec<v1::Offer>) {
        self.view.stats.offers_received += offers.len() as u64;
        let now = Timestamp::now();
        for offer in &offers {
            self.known_agents.offered(offer, now);
        }
        let known_values = self.known_agents.values(now);
        // The demands: every app with instances that may launch now.
        let mut demands = Vec::new();
        let mut waiting: Vec<Vec<Arc<Instance>>> = Vec::new();
        for id in self.launchable.clone() {
            let Some(app) = self.view.apps.get(&id).cloned() else {
                continue;
            };
            let mut instances: Vec<Arc<Instance>> = self
                .view
                .instances_of(&id)
                .filter(|i| i.is_waiting())
                .cloned()
                .collect();
            // Relaunches first: an instance keeps its identity when it can.
            instances.sort_by_key(|i| (i.incarnation == 0, i.scheduled_at));
            if instances.is_empty() {
                continue;
            }
            // Where its instances run. An unreachable one does not hold its
            // group or host: it is being replaced, and availability first.
            let placed = self
                .view
                .instances_of(&id)
                .filter(|i| i.goal == Goal::Running && i.is_active())
                .filter(|i| i.condition() != Some(Condition::Unreachable))
                .filter_map(|i| i.task.as_ref().map(|t| t.fields.clone()))
                .collect();
            let mut demand = match Demand::for_app(&app, instances.len() as u32, placed) {
                Ok(d) => d,
                Err(e) => {
                    error!(app = %id, error = %e, "stored app has an invalid constraint");
                    continue;
                }
            };
            if let ExecutorChoice::Baton(executor) = &self.config.executor
                && uses_baton_executor(&app)
            {
                demand.resources.cpus += executor.cpus;
                demand.resources.mem += executor.mem;
                demand.resources.disk += executor.disk;
            }
            demands.push(demand);
            waiting.push(instances);
        }
        let plan = place(&offers, &demands, &known_values, &self.config.placement);

        // Offer statistics for /v2/queue.
        for (demand, outcome) in demands.iter().zip(&plan.demands) {
            let Ok(id) = PathId::parse(&demand.app_id, &PathId::root()) else {
                continue;
            };
            let mut stats = self
                .view
                .offer_stats
                .get(&id)
                .map(|s| (**s).clone())
                .unwrap_or_else(|| OfferStats {
                    since: Some(now),
                    ..OfferStats::default()
                });
            let r = &outcome.rejections;
            stats.processed_offers += u64::from(r.processed_offers);
            stats.unused_offers += u64::from(r.unused_offers());
            if r.unused_offers() > 0 {
                stats.last_unused_offer_at = Some(now);
            }
            if r.used_offers > 0 {
                stats.last_used_offer_at = Some(now);
            }
            stats.since_waiting.absorb(r);
            stats.last_cycle = r.clone();
            self.view.offer_stats.insert(id, Arc::new(stats));
        }

        // Launches, offer by offer; write-ahead of each ACCEPT.
        let mut next_waiting: Vec<usize> = vec![0; waiting.len()];
        let mut unused: Vec<v1::OfferId> = Vec::new();
        for (offer_index, placements) in plan.offers.iter().enumerate() {
            let offer = &offers[offer_index];
            if placements.is_empty() {
                unused.push(offer.id.clone());
                continue;
            }
            let fields = offer_fields(offer);
            let mut launches = Vec::new();
            let mut launched = Vec::new();
            let mut changes = Vec::new();
            for placement in placements {
                let d = placement.demand;
                let Some(instance) = waiting[d].get(next_waiting[d]) else {
                    continue;
                };
                next_waiting[d] += 1;
                let Some(app) = self.view.apps.get(&instance.app_id).cloned() else {
                    continue;
                };
                let mut next = (**instance).clone();
                let task_id = next.next_task_id();
                next.incarnation += 1;
                next.app_version = config_version(&app);
                let mut info = build_app_task_info(
                    &app,
                    next.app_version,
                    &task_id,
                    offer,
                    &placement.allocation,
                );
                if let ExecutorChoice::Baton(executor) = &self.config.executor
                    && uses_baton_executor(&app)
                {
                    let framework_id = self.view.framework_id.clone().unwrap_or_default();
                    info = match with_baton_executor(info, &framework_id, executor) {
                        Ok(info) => info,
                        Err(e) => {
                            error!(%task_id, error = %e, "cannot carve executor resources");
                            continue;
                        }
                    };
                }
                next.task = Some(InstanceTask {
                    fields: fields.clone(),
                    ..InstanceTask::launched(
                        task_id.clone(),
                        offer.agent_id.value.clone(),
                        offer.hostname.clone(),
                        placement.allocation.ports.clone(),
                        now,
                    )
                });
                match instance_change(&next) {
                    Ok(c) => changes.push(c),
                    Err(e) => {
                        error!(error = %e, "cannot encode instance");
                        continue;
                    }
                }
                launches.push(info);
                launched.push(next);
            }
            if launches.is_empty() {
                unused.push(offer.id.clone());
                continue;
            }
            // Write-ahead: the launch is on disk before Mesos hears of it,
            // so a crash cannot leave a task we do not know about.
            if let Err(e) = self.persist(changes).await {
                error!(error = %e, "cannot persist launches; declining the offer");
                unused.push(offer.id.clone());
                continue;
            }
            info!(agent = %offer.hostname, tasks = launches.len(), "launching");
            self.view.stats.offers_accepted += 1;
            self.view.stats.tasks_launched += launches.len() as u64;
            for instance in launched {
                self.put_instance(instance);
            }
            self.send(calls::accept_launch(
                vec![offer.id.clone()],
                launches,
                self.config.refuse_seconds_while_waiting,
            ));
        }
        if !unused.is_empty() {
            let still_waiting = plan
                .demands
                .iter()
                .zip(&demands)
                .any(|(o, d)| o.placed < d.count);
            let refuse = if still_waiting {
                self.config.refuse_seconds_while_waiting
            } else {
                self.config.refuse_seconds_idle
            };
            self.view.stats.offers_declined += unused.len() as u64;
            self.send(calls::decline(unused, refuse));
        }
    }

    async fn on_update(&mut self, status: v1::TaskStatus) {
        self.view.stats.updates_received += 1;
        let state = state_of(&status);
        let task_id = status.task_id.value.clone();
        if let Some(r) = self.reconciling.as_mut()
            && r.pending.remove(&task_id).is_some()
            && r.pending.is_empty()
        {
            // Every task answered: the implicit round follows at once.
            self.retry_reconciliation().await;
        }
        if known::agent_lost(&status) {
            let agent = status
                .agent_id
                .as_ref()
                .map(|a| a.value.clone())
                .or_else(|| {
                    self.view
                        .instance_by_task(&task_id)
                        .and_then(|i| i.task.as_ref())
                        .map(|t| t.agent_id.clone())
                });
            if let Some(agent) = agent
                && self.known_agents.lost(&agent)
            {
                info!(%agent, %task_id, "agent gone or unreachable: its values no longer hold GROUP_BY back");
            }
        }
        let uuid_hex = status.uuid.as_deref().map(hex);
        let Some(instance) = self.view.instance_by_task(&task_id).cloned() else {
            // A task we never launched, forgot, or replaced: kill it.
            if !is_terminal(state) {
                warn!(%task_id, state = state.as_str_name(), "unknown task reported by Mesos; killing it");
                self.view.stats.unknown_tasks_killed += 1;
                self.send(calls::kill(
                    status.task_id.clone(),
                    status.agent_id.clone(),
                    None,
                ));
            }
            self.acknowledge(&status).await;
            return;
        };
        let Some(task) = instance.task.as_ref() else {
            self.acknowledge(&status).await;
            return;
        };
        if uuid_hex
            .as_ref()
            .is_some_and(|u| task.recent_update_uuids.contains(u))
        {
            // A redelivery of an update we applied and acknowledged already;
            // the earlier ACK may have been lost, so acknowledge again.
            debug!(%task_id, "duplicate status update");
            self.view.stats.duplicate_updates += 1;
            self.acknowledge(&status).await;
            return;
        }
        let now = Timestamp::now();
        let condition = Condition::of(&status);
        // The agent could not fetch baton-executor from us (Baton was
        // restarting, say): ours, not the app's — no launch delay, no app
        // failure, relaunched with the next offer. Only so many times in a
        // row, though: a fetch that keeps failing is throttled by the app's
        // backoff like any failing launch.
        let fetch_failed = condition.is_terminal()
            && matches!(self.config.executor, ExecutorChoice::Baton(_))
            && self.definition_for(&instance).is_some_and(|app| {
                uses_baton_executor(&app)
                    && failed_fetching_executor(&status, !app.fetch.is_empty())
            });
        let executor_fetch_failed = if fetch_failed {
            let streak = self
                .executor_fetch_streaks
                .entry(instance.app_id.clone())
                .or_default();
            *streak += 1;
            self.view.stats.executor_fetch_failures += 1;
            if *streak <= FREE_EXECUTOR_FETCH_RETRIES {
                warn!(%task_id, message = ?status.message, "the agent could not fetch baton-executor; relaunching without a launch delay");
                true
            } else {
                warn!(%task_id, message = ?status.message, failures = *streak, "the agents keep failing to fetch baton-executor; the app's launch delay applies until a launch gets going");
                false
            }
        } else {
            if condition == Condition::Running {
                self.executor_fetch_streaks.remove(&instance.app_id);
            }
            false
        };
        let mut next = (*instance).clone();
        let mut changes = Vec::new();
        let mut failure = None;
        let mut delay = None;
        if let Some(task) = next.task.as_mut() {
            let was_terminal = task.condition.is_terminal();
            task.condition = condition;
            task.last_status = Some(StatusRecord::from_status(&status));
            if condition == Condition::Running && task.started_at.is_none() {
                let started = status
                    .timestamp
                    .map_or(now, |t| Timestamp::from_millis((t * 1000.0) as i64));
                task.started_at = Some(started);
                let latency = (now.as_millis() - task.launched_at.as_millis()).max(0);
                self.view.stats.observe_launch_latency(latency as u64);
            }
            task.unreachable_since = match condition {
                Condition::Unreachable => task.unreachable_since.or(Some(now)),
                _ => None,
            };
            if let Some(u) = uuid_hex {
                task.recent_update_uuids.push(u);
                let excess = task
                    .recent_update_uuids
                    .len()
                    .saturating_sub(crate::state::model::RECENT_UUIDS);
                task.recent_update_uuids.drain(..excess);
            }
            if condition.is_terminal()
                && !was_terminal
                && condition.counts_as_launch_failure()
                && !executor_fetch_failed
            {
                failure = Some(TaskFailure {
                    app_id: next.app_id.clone(),
                    host: task.hostname.clone(),
                    message: status.message.clone().unwrap_or_default(),
                    state: state.as_str_name().to_string(),
                    task_id: task_id.clone(),
                    timestamp: now,
                    version: next.app_version,
                    slave_id: task.agent_id.clone(),
                });
                if next.goal == Goal::Running
                    && let Some(app) = self.view.apps.get(&next.app_id)
                {
                    let d = backoff::after_failure(self.view.delays.get(&next.app_id), app, now);
                    match Change::put_json(
                        Category::Delay,
                        next.app_id.as_str(),
                        &(&next.app_id, &d),
                    ) {
                        Ok(c) => changes.push(c),
                        Err(e) => error!(error = %e, "cannot encode delay"),
                    }
                    delay = Some(d);
                }
            }
        }
        // A Mesos-level health verdict rides on the status (`healthy`).
        let mut retired = false;
        if let (Some(alive), Condition::Running) = (status.healthy, condition)
            && let Some(check_index) = self
                .definition_for(&next)
                .and_then(|app| app.health_checks.iter().position(|c| c.protocol.is_mesos()))
        {
            let result = HealthResult {
                task_id: task_id.clone(),
                check_index,
                alive,
                cause: (!alive).then(|| status.message.clone().unwrap_or_default()),
                at: now,
            };
            if self.apply_health(&mut next, &result)
                && self.may_retire(&next)
                && let Some(task) = next.task.as_mut()
            {
                task.retire_for_health = Some(now);
                retired = true;
            }
        }
        if condition.is_terminal() {
            self.forget_health(&task_id);
            self.view.loads.remove(&task_id);
        }
        match instance_change(&next) {
            Ok(c) => changes.push(c),
            Err(e) => error!(error = %e, "cannot encode instance"),
        }
        // Persist before acknowledging: an ACK tells Mesos it may forget
        // the update, so it must be durable here first.
        if let Err(e) = self.persist(changes).await {
            error!(%task_id, error = %e, "cannot persist status update; not acknowledging (Mesos will resend)");
            return;
        }
        info!(%task_id, state = state.as_str_name(), message = ?status.message, "task status");
        self.view.stats.updates_applied += 1;
        if let Some(f) = failure {
            self.view
                .last_failures
                .insert(f.app_id.clone(), Arc::new(f));
        }
        if let Some(d) = delay {
            info!(app = %next.app_id, delay_ms = d.delay_ms, "launch delayed after a failure");
            self.view.delays.insert(next.app_id.clone(), d);
        }
        if let Some(e) = events::status_update(&next, status.message.as_deref()) {
            self.emit(e);
        }
        if instance.condition() != next.condition() {
            self.emit(events::instance_changed(&next));
        }
        let healthy = next.task.as_ref().and_then(|t| t.healthy);
        if healthy != instance.task.as_ref().and_then(|t| t.healthy)
            && let Some(alive) = healthy
        {
            self.emit(events::health_changed(&next, &task_id, alive));
        }
        if retired {
            self.announce_retirement(&next, &task_id);
        }
        self.put_instance(next);
        self.acknowledge(&status).await;
    }

    async fn acknowledge(&mut self, status: &v1::TaskStatus) {
        if let Some(ack) = calls::acknowledge(status) {
            self.view.stats.acks_sent += 1;
            self.send(ack);
        }
    }
}

/// Every app the loop must look at after a (re)start: the ones defined,
/// the ones with instances, and the ones a stored deployment names (a
/// deleted app whose last instance went may have left its deployment
/// behind: it must still be driven to its end).
fn everything(view: &View) -> BTreeSet<PathId> {
    view.apps
        .keys()
        .chain(view.instances.keys())
        .cloned()
        .chain(
            view.deployments
                .values()
                .flat_map(|d| d.affected_apps().cloned().collect::<Vec<_>>()),
        )
        .collect()
}

/// The configuration version instances of `app` run.
pub fn config_version(app: &AppDefinition) -> Timestamp {
    app.last_config_change()
        .or(app.version)
        .unwrap_or(Timestamp::from_millis(0))
}

/// Container apps and apps that name their own executor keep theirs;
/// everything else runs under `baton-executor`.
fn uses_baton_executor(app: &AppDefinition) -> bool {
    app.container.is_none() && app.executor.is_empty()
}

/// Replaces `id`'s entry of a target table; whether anything changed.
fn replace_targets<T: PartialEq>(
    table: &mut BTreeMap<PathId, Vec<T>>,
    id: &PathId,
    targets: Vec<T>,
) -> bool {
    if table.get(id).map_or(&[][..], Vec::as_slice) == targets.as_slice() {
        return false;
    }
    if targets.is_empty() {
        table.remove(id);
    } else {
        table.insert(id.clone(), targets);
    }
    true
}

/// The app label that sets how long its tasks are drained before a kill.
pub const DRAIN_LABEL: &str = "BATON_DRAIN_SECONDS";

/// How long `app`'s tasks are drained: its label, else `default`.
fn drain_of(app: &AppDefinition, default: Duration) -> Duration {
    app.labels
        .get(DRAIN_LABEL)
        .and_then(|v| v.parse::<f64>().ok())
        .filter(|s| s.is_finite() && *s >= 0.0)
        .map_or(default, Duration::from_secs_f64)
}

/// The store key of an app's stored version.
pub fn version_key(id: &PathId, version: Timestamp) -> String {
    format!("{id}@{version}")
}

/// The store record of an instance.
pub fn instance_change(instance: &Instance) -> Result<Change, StoreError> {
    Change::put_json(Category::Instance, instance.instance_id(), instance)
}

fn hex(bytes: &[u8]) -> String {
    bytes.iter().map(|b| format!("{b:02x}")).collect()
}
