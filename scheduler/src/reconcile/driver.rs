//! The loop itself; see the module docs.

use std::collections::BTreeMap;
use std::sync::Arc;
use std::time::Duration;

use mesos_proto::scheduler::{Event, event};
use mesos_proto::util::{is_terminal, state_of};
use mesos_proto::v1::{self, TaskState};
use tokio::sync::{mpsc, oneshot, watch};
use tokio_util::sync::CancellationToken;
use tracing::{Instrument, debug, error, info, info_span, warn};

use crate::mesos::session::{self, SessionConfig, SessionEvent};
use crate::mesos::{MesosHandle, calls};
use crate::offers::{Remaining, build_task_info};
use crate::state::model::RECENT_UUIDS;
use crate::state::{Category, Change, StatusRecord, Store, StoreError, TaskRecord, TaskSpec};

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
}

/// A request the loop could not carry out.
#[derive(Debug, thiserror::Error)]
pub enum SchedulerError {
    /// The durable store failed; nothing was changed.
    #[error(transparent)]
    Store(#[from] StoreError),
    /// No such task.
    #[error("task {0} does not exist")]
    UnknownTask(String),
    /// The loop has stopped.
    #[error("scheduler is shutting down")]
    Stopped,
}

/// Counters, for tests and metrics.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Stats {
    /// Offers received.
    pub offers_received: u64,
    /// Offers used in an ACCEPT.
    pub offers_accepted: u64,
    /// Offers declined.
    pub offers_declined: u64,
    /// UPDATE events received, duplicates included.
    pub updates_received: u64,
    /// Status updates applied to state (each distinct uuid once).
    pub updates_applied: u64,
    /// Redelivered updates recognised by uuid and not applied again.
    pub duplicate_updates: u64,
    /// ACKNOWLEDGE calls sent.
    pub acks_sent: u64,
    /// Tasks launched (in ACCEPT calls).
    pub tasks_launched: u64,
    /// Tasks Mesos reported that Baton did not know, and killed.
    pub unknown_tasks_killed: u64,
    /// SUBSCRIBED events seen.
    pub subscriptions: u64,
}

/// An immutable snapshot of what the scheduler knows.
#[derive(Debug, Clone, Default)]
pub struct View {
    /// Whether a subscription is live.
    pub subscribed: bool,
    /// Our FrameworkID, once Mesos assigned one.
    pub framework_id: Option<String>,
    /// Every known task by id.
    pub tasks: BTreeMap<String, Arc<TaskRecord>>,
    /// Counters.
    pub stats: Stats,
}

enum Command {
    Launch {
        spec: TaskSpec,
        reply: oneshot::Sender<Result<String, SchedulerError>>,
    },
    Kill {
        task_id: String,
        grace: Option<Duration>,
        reply: oneshot::Sender<Result<(), SchedulerError>>,
    },
}

/// A handle to the running scheduler.
#[derive(Clone)]
pub struct SchedulerHandle {
    commands: mpsc::Sender<Command>,
    view: watch::Receiver<Arc<View>>,
    mesos: MesosHandle,
}

impl SchedulerHandle {
    /// Queues a task for launch; it is durable when this returns.
    pub async fn launch(&self, spec: TaskSpec) -> Result<String, SchedulerError> {
        let (reply, rx) = oneshot::channel();
        self.commands
            .send(Command::Launch { spec, reply })
            .await
            .map_err(|_| SchedulerError::Stopped)?;
        rx.await.map_err(|_| SchedulerError::Stopped)?
    }

    /// Asks Mesos to kill a task, with an optional grace period override.
    pub async fn kill(&self, task_id: &str, grace: Option<Duration>) -> Result<(), SchedulerError> {
        let (reply, rx) = oneshot::channel();
        let task_id = task_id.to_string();
        self.commands
            .send(Command::Kill {
                task_id,
                grace,
                reply,
            })
            .await
            .map_err(|_| SchedulerError::Stopped)?;
        rx.await.map_err(|_| SchedulerError::Stopped)?
    }

    /// The current snapshot.
    pub fn view(&self) -> Arc<View> {
        self.view.borrow().clone()
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
        let snapshot = store.load()?;
        let stored_framework_id = snapshot.framework_id();
        let framework_id = stored_framework_id
            .clone()
            .map(mesos_proto::util::framework_id);
        let (mesos, events) =
            session::spawn(config.session.clone(), framework_id, shutdown.clone());
        let tasks: BTreeMap<String, Arc<TaskRecord>> = snapshot
            .decode_all::<TaskRecord>(Category::Task)?
            .into_iter()
            .map(|t| (t.task_id.clone(), Arc::new(t)))
            .collect();
        info!(tasks = tasks.len(), framework_id = ?stored_framework_id, "loaded state");
        let view = View {
            subscribed: false,
            framework_id: stored_framework_id,
            tasks,
            stats: Stats::default(),
        };
        let (view_tx, view_rx) = watch::channel(Arc::new(view.clone()));
        let (commands_tx, commands_rx) = mpsc::channel(256);
        let (calls_tx, calls_rx) = mpsc::channel(CALL_QUEUE);
        tokio::spawn(send_calls(mesos.clone(), calls_rx).instrument(info_span!("mesos_calls")));
        let driver = Driver {
            config,
            store,
            calls: calls_tx,
            mesos: mesos.clone(),
            view,
            view_tx,
            suppressed: false,
        };
        let stopped = tokio::spawn(
            driver
                .run(events, commands_rx, shutdown)
                .instrument(info_span!("reconcile_loop")),
        );
        let handle = SchedulerHandle {
            commands: commands_tx,
            view: view_rx,
            mesos,
        };
        Ok((handle, stopped))
    }
}

/// Calls waiting to be sent; beyond this the loop waits (backpressure).
const CALL_QUEUE: usize = 4096;

/// Sends calls one after another, in the order the loop decided them: a
/// SUPPRESS overtaken by a later REVIVE would starve waiting tasks.
async fn send_calls(mesos: MesosHandle, mut calls: mpsc::Receiver<mesos_proto::scheduler::Call>) {
    while let Some(call) = calls.recv().await {
        // Failures are logged by the handle; a lost subscription makes the
        // session resubscribe, after which the loop re-decides.
        let _ = mesos.call(call).await;
    }
}

struct Driver {
    config: SchedulerConfig,
    store: Arc<dyn Store>,
    /// Calls for [`send_calls`], in order.
    calls: mpsc::Sender<mesos_proto::scheduler::Call>,
    /// To force a resubscribe when state cannot be persisted.
    mesos: MesosHandle,
    /// The working copy; published after every change.
    view: View,
    view_tx: watch::Sender<Arc<View>>,
    /// Whether we told Mesos to stop sending offers.
    suppressed: bool,
}

impl Driver {
    async fn run(
        mut self,
        mut events: mpsc::Receiver<SessionEvent>,
        mut commands: mpsc::Receiver<Command>,
        shutdown: CancellationToken,
    ) {
        loop {
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
            }
            self.publish();
        }
        info!("reconcile loop stopped");
    }

    fn publish(&self) {
        self.view_tx.send_replace(Arc::new(self.view.clone()));
    }

    /// Persists a batch; the caller acts only on success.
    /// Persists tasks along with other changes, in one batch.
    async fn persist_tasks<'a>(
        &self,
        tasks: impl IntoIterator<Item = &'a TaskRecord>,
        mut changes: Vec<Change>,
    ) -> Result<(), StoreError> {
        for task in tasks {
            changes.push(Change::put_json(
                Category::Task,
                task.task_id.clone(),
                task,
            )?);
        }
        self.persist(changes).await
    }

    async fn persist(&self, changes: Vec<Change>) -> Result<(), StoreError> {
        let store = self.store.clone();
        tokio::task::spawn_blocking(move || store.apply(&changes))
            .await
            .map_err(|e| StoreError::Backend(format!("store task panicked: {e}")))?
    }

    /// Queues a call for the sender, which keeps their order.
    async fn send(&self, call: mesos_proto::scheduler::Call) {
        if self.calls.send(call).await.is_err() {
            warn!("call sender stopped; call dropped");
        }
    }

    fn waiting(&self) -> impl Iterator<Item = &Arc<TaskRecord>> {
        self.view
            .tasks
            .values()
            .filter(|t| t.state.is_none() && !t.kill_requested)
    }

    async fn on_command(&mut self, command: Command) {
        match command {
            Command::Launch { spec, reply } => {
                let task_id = format!(
                    "{}.instance-{}._app.1",
                    spec.name.replace('/', "_"),
                    uuid::Uuid::new_v4()
                );
                let record = TaskRecord {
                    task_id: task_id.clone(),
                    spec,
                    agent_id: None,
                    hostname: None,
                    host_ports: Vec::new(),
                    state: None,
                    last_status: None,
                    staged_at: None,
                    started_at: None,
                    updates_applied: 0,
                    recent_update_uuids: Vec::new(),
                    kill_requested: false,
                };
                let result = self.persist_tasks([&record], Vec::new()).await;
                if result.is_ok() {
                    info!(%task_id, "task queued for launch");
                    self.view.tasks.insert(task_id.clone(), Arc::new(record));
                    self.revive_if_suppressed().await;
                }
                let _ = reply.send(result.map(|()| task_id).map_err(SchedulerError::from));
            }
            Command::Kill {
                task_id,
                grace,
                reply,
            } => {
                let _ = reply.send(self.kill(&task_id, grace).await);
            }
        }
    }

    async fn kill(&mut self, task_id: &str, grace: Option<Duration>) -> Result<(), SchedulerError> {
        let Some(task) = self.view.tasks.get(task_id) else {
            return Err(SchedulerError::UnknownTask(task_id.to_string()));
        };
        let mut task = (**task).clone();
        task.kill_requested = true;
        let launched = task.agent_id.is_some();
        if !launched {
            // Never launched: nothing runs in Mesos; it simply stops waiting.
            task.state = Some(TaskState::TaskKilled.as_str_name().to_string());
        }
        self.persist_tasks([&task], Vec::new()).await?;
        let agent = task.agent_id.clone().map(mesos_proto::util::agent_id);
        self.view.tasks.insert(task_id.to_string(), Arc::new(task));
        if launched {
            info!(%task_id, ?grace, "killing task");
            self.send(calls::kill(
                mesos_proto::util::task_id(task_id),
                agent,
                grace,
            ))
            .await;
        }
        Ok(())
    }

    async fn revive_if_suppressed(&mut self) {
        if self.suppressed && self.view.subscribed {
            info!("tasks are waiting: REVIVE");
            self.suppressed = false;
            self.send(calls::revive(Vec::new())).await;
        }
    }

    async fn on_session_event(&mut self, event: SessionEvent) {
        match event {
            SessionEvent::Subscribed { framework_id, .. } => self.on_subscribed(framework_id).await,
            SessionEvent::Disconnected { reason } => {
                warn!(%reason, "disconnected from Mesos; outstanding offers are void");
                self.view.subscribed = false;
            }
            SessionEvent::FrameworkRemoved { message } => self.on_framework_removed(message).await,
            SessionEvent::Event(event) => self.on_event(*event).await,
        }
    }

    async fn on_subscribed(&mut self, framework_id: v1::FrameworkId) {
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
        // Explicit reconciliation of what we believe is alive, then implicit
        // to learn of tasks we do not know.
        let alive: Vec<(v1::TaskId, Option<v1::AgentId>)> = self
            .view
            .tasks
            .values()
            .filter(|t| t.state.is_some() && !t.is_terminal())
            .map(|t| {
                (
                    mesos_proto::util::task_id(&t.task_id),
                    t.agent_id.clone().map(mesos_proto::util::agent_id),
                )
            })
            .collect();
        info!(tasks = alive.len(), "reconciling after subscribe");
        if !alive.is_empty() {
            self.send(calls::reconcile(alive)).await;
        }
        self.send(calls::reconcile(Vec::new())).await;
        // Offers flow after SUBSCRIBE unless suppressed; say which we want.
        if self.waiting().next().is_none() {
            self.suppressed = true;
            self.send(calls::suppress(Vec::new())).await;
        } else {
            self.suppressed = false;
            self.send(calls::revive(Vec::new())).await;
        }
    }

    async fn on_framework_removed(&mut self, message: String) {
        let changes = vec![Change::framework_id(None)];
        let mut gone = Vec::new();
        for task in self
            .view
            .tasks
            .values()
            .filter(|t| t.state.is_some() && !t.is_terminal())
        {
            let mut task = (**task).clone();
            task.state = Some(TaskState::TaskLost.as_str_name().to_string());
            task.last_status = Some(StatusRecord {
                state: TaskState::TaskLost.as_str_name().to_string(),
                message: Some(format!("framework removed by master: {message}")),
                reason: Some(
                    v1::task_status::Reason::FrameworkRemoved
                        .as_str_name()
                        .to_string(),
                ),
                source: None,
                healthy: None,
                timestamp: Some(mesos_proto::util::now_timestamp()),
            });
            gone.push(task);
        }
        if let Err(e) = self.persist_tasks(&gone, changes).await {
            error!(error = %e, "cannot persist framework removal");
            return;
        }
        self.view.framework_id = None;
        for task in gone {
            self.view.tasks.insert(task.task_id.clone(), Arc::new(task));
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
                    warn!(agent = ?f.agent_id.map(|a| a.value), executor = ?f.executor_id.map(|e| e.value), status = ?f.status, "FAILURE from master");
                }
            }
            event::Type::Message => debug!("framework message ignored"),
            other => debug!(event = ?other, "event ignored"),
        }
    }

    async fn on_offers(&mut self, offers: Vec<v1::Offer>) {
        self.view.stats.offers_received += offers.len() as u64;
        let mut waiting: Vec<Arc<TaskRecord>> = self.waiting().cloned().collect();
        let mut unused = Vec::new();
        for offer in offers {
            let mut remaining = Remaining::of(&offer, &self.config.role);
            let mut launches = Vec::new();
            let mut placed = Vec::new();
            waiting.retain(|task| match remaining.allocate(&task.spec) {
                Some(allocation) => {
                    launches.push(build_task_info(
                        &task.task_id,
                        &task.spec,
                        &offer,
                        &allocation,
                    ));
                    let mut task = (**task).clone();
                    task.agent_id = Some(offer.agent_id.value.clone());
                    task.hostname = Some(offer.hostname.clone());
                    task.host_ports = allocation.ports;
                    task.state = Some(TaskState::TaskStaging.as_str_name().to_string());
                    task.staged_at = Some(mesos_proto::util::now_timestamp());
                    placed.push(task);
                    false
                }
                None => true,
            });
            if launches.is_empty() {
                unused.push(offer.id);
                continue;
            }
            // Write-ahead: the launch is on disk before Mesos hears of it,
            // so a crash cannot leave a task we do not know about.
            if let Err(e) = self.persist_tasks(&placed, Vec::new()).await {
                error!(error = %e, "cannot persist launches; declining the offer");
                unused.push(offer.id);
                continue;
            }
            info!(agent = %offer.hostname, tasks = launches.len(), "launching");
            self.view.stats.offers_accepted += 1;
            self.view.stats.tasks_launched += launches.len() as u64;
            for task in placed {
                self.view.tasks.insert(task.task_id.clone(), Arc::new(task));
            }
            self.send(calls::accept_launch(
                vec![offer.id],
                launches,
                self.config.refuse_seconds_while_waiting,
            ))
            .await;
        }
        if !unused.is_empty() {
            let nothing_waits = waiting.is_empty();
            let refuse = if nothing_waits {
                self.config.refuse_seconds_idle
            } else {
                self.config.refuse_seconds_while_waiting
            };
            self.view.stats.offers_declined += unused.len() as u64;
            self.send(calls::decline(unused, refuse)).await;
            if nothing_waits && !self.suppressed {
                info!("nothing waits for offers: SUPPRESS");
                self.suppressed = true;
                self.send(calls::suppress(Vec::new())).await;
            }
        }
    }

    async fn on_update(&mut self, status: v1::TaskStatus) {
        self.view.stats.updates_received += 1;
        let state = state_of(&status);
        let task_id = status.task_id.value.clone();
        let uuid_hex = status.uuid.as_deref().map(hex);
        let Some(task) = self.view.tasks.get(&task_id).cloned() else {
            // A task we never launched (or forgot): kill it, per Marathon.
            if !is_terminal(state) {
                warn!(%task_id, state = state.as_str_name(), "unknown task reported by Mesos; killing it");
                self.view.stats.unknown_tasks_killed += 1;
                self.send(calls::kill(
                    status.task_id.clone(),
                    status.agent_id.clone(),
                    None,
                ))
                .await;
            }
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
        let mut task = (*task).clone();
        task.state = Some(state.as_str_name().to_string());
        task.last_status = Some(StatusRecord::from_status(&status));
        task.updates_applied += 1;
        if state == TaskState::TaskRunning && task.started_at.is_none() {
            task.started_at = status
                .timestamp
                .or_else(|| Some(mesos_proto::util::now_timestamp()));
        }
        if task.agent_id.is_none() {
            task.agent_id = status.agent_id.as_ref().map(|a| a.value.clone());
        }
        if let Some(u) = uuid_hex {
            task.recent_update_uuids.push(u);
            let excess = task.recent_update_uuids.len().saturating_sub(RECENT_UUIDS);
            task.recent_update_uuids.drain(..excess);
        }
        // Persist before acknowledging: an ACK tells Mesos it may forget
        // the update, so it must be durable here first.
        if let Err(e) = self.persist_tasks([&task], Vec::new()).await {
            error!(%task_id, error = %e, "cannot persist status update; not acknowledging (Mesos will resend)");
            return;
        }
        info!(%task_id, state = state.as_str_name(), message = ?status.message, "task status");
        self.view.stats.updates_applied += 1;
        self.view.tasks.insert(task_id, Arc::new(task));
        self.acknowledge(&status).await;
    }

    async fn acknowledge(&mut self, status: &v1::TaskStatus) {
        if let Some(ack) = calls::acknowledge(status) {
            self.view.stats.acks_sent += 1;
            self.send(ack).await;
        }
    }
}

fn hex(bytes: &[u8]) -> String {
    bytes.iter().map(|b| format!("{b:02x}")).collect()
}
