//! What Mesos says: subscriptions, the framework's removal, reconciliation,
//! task status updates, offers (handed to [`super::offers`]) and executor
//! messages.

use std::collections::BTreeMap;
use std::sync::Arc;

use mesos_proto::scheduler::{Event as MesosEvent, event};
use mesos_proto::util::{is_terminal, state_of};
use mesos_proto::v1::{self, TaskState};
use tracing::{Instrument, debug, error, info, info_span, warn};

use super::{Driver, RECONCILE_RETRY_CAP, Reconciling, everything};
use crate::health::HealthResult;
use crate::mesos::calls;
use crate::mesos::session::SessionEvent;
use crate::offers::executor::failed_fetching_executor;
use crate::offers::known;
use crate::reconcile::effects::{Effects, StateChange};
use crate::reconcile::events::Event;
use crate::reconcile::load;
use crate::reconcile::status::{self, StatusInput};
use crate::state::StatusRecord;
use crate::state::app::PathId;
use crate::state::instance::{Condition, Instance, InstanceTask};

/// Failed fetches of baton-executor in a row that cost an app nothing; past
/// them its launch delay applies (a fetch that keeps failing is not a
/// restart's hiccup, and launches must not spin).
const FREE_EXECUTOR_FETCH_RETRIES: u32 = 10;

impl Driver {
    pub(super) async fn on_session_event(&mut self, event: SessionEvent) {
        match event {
            SessionEvent::Subscribed {
                framework_id,
                master,
                ..
            } => self.on_subscribed(framework_id, master.to_string()).await,
            SessionEvent::Disconnected { reason } => {
                warn!(%reason, "disconnected from Mesos; outstanding offers are void");
                if self.view.subscribed {
                    self.emit(Event::Disconnected);
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
            let mut effects = Effects::default();
            effects.change(StateChange::FrameworkId(Some(framework_id.value.clone())));
            if let Err(e) = self.apply(effects).await {
                error!(error = %e, "cannot persist the FrameworkID; resubscribing");
                self.port.reconnect();
                return;
            }
        }
        self.view.subscribed = true;
        self.view.stats.subscriptions += 1;
        self.emit(Event::Registered {
            first: self.view.stats.subscriptions == 1,
            framework_id: framework_id.value.clone(),
            master,
        });
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
            for call in super::commands::kill_calls(task) {
                self.send(call);
            }
        }
        self.start_reconciliation();
        self.next_periodic_reconcile = self.instant() + self.config.reconciliation_interval;
    }

    /// Explicit reconciliation of every task we believe may be alive; the
    /// implicit one follows once all have answered (or retries gave up).
    pub(super) fn start_reconciliation(&mut self) {
        let pending: BTreeMap<String, String> = self
            .view
            .all_instances()
            .filter_map(|i| i.task.as_ref())
            .filter(|t| !t.condition.is_terminal())
            .flat_map(|t| {
                t.task_ids()
                    .into_iter()
                    .map(|id| (id.to_string(), t.agent_id.to_string()))
            })
            .collect();
        info!(tasks = pending.len(), "explicit reconciliation");
        self.reconciling = Some(Reconciling {
            pending,
            retry_at: self.instant(),
            retry_after: self.config.reconcile_retry,
        });
        self.retry_reconciliation();
    }

    /// Asks again for the tasks that have not answered, waiting twice as
    /// long before the next ask (up to a minute); once all answered, the
    /// implicit reconciliation follows.
    pub(super) fn retry_reconciliation(&mut self) {
        let now = self.instant();
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
                    Some(mesos_proto::util::agent_id(a)),
                )
            })
            .collect();
        r.retry_at = now + r.retry_after;
        r.retry_after = (r.retry_after * 2).min(RECONCILE_RETRY_CAP);
        self.view.stats.reconcile_requests += 1;
        self.send(calls::reconcile(tasks));
    }

    async fn on_framework_removed(&mut self, message: String) {
        let now = self.now();
        let mut effects = Effects::default();
        effects.change(StateChange::FrameworkId(None));
        for instance in self.view.all_instances().filter(|i| i.is_active()) {
            let mut next = (**instance).clone();
            if let Some(task) = next.task.as_mut() {
                task.condition = Condition::Gone;
                task.last_status = Some(StatusRecord {
                    state: TaskState::TaskGone.as_str_name().into(),
                    message: Some(format!("framework removed by master: {message}").into()),
                    reason: Some(
                        v1::task_status::Reason::FrameworkRemoved
                            .as_str_name()
                            .into(),
                    ),
                    source: None,
                    healthy: None,
                    timestamp: Some(now.as_millis() as f64 / 1000.0),
                });
            }
            effects.change(StateChange::Instance(Arc::new(next)));
        }
        if let Err(e) = self.apply(effects).await {
            Self::refused("the framework's removal", &e);
        }
    }

    async fn on_event(&mut self, event: MesosEvent) {
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
        match load::parse_report(&message.data, self.now()) {
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

    async fn on_update(&mut self, status: v1::TaskStatus) {
        self.view.stats.updates_received += 1;
        let state = state_of(&status);
        let task_id = status.task_id.value.clone();
        if let Some(r) = self.reconciling.as_mut()
            && r.pending.remove(&task_id).is_some()
            && r.pending.is_empty()
        {
            // Every task answered: the implicit round follows at once.
            self.retry_reconciliation();
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
                        .map(|t| t.agent_id.to_string())
                });
            if let Some(agent) = agent
                && self.known_agents.lost(&agent)
            {
                info!(%agent, %task_id, "agent gone or unreachable: its values no longer hold GROUP_BY back");
            }
        }
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
        if status::redelivered(task, &status) {
            // A redelivery of an update we applied and acknowledged already;
            // the earlier ACK may have been lost, so acknowledge again.
            debug!(%task_id, "duplicate status update");
            self.view.stats.duplicate_updates += 1;
            self.acknowledge(&status).await;
            return;
        }
        let now = self.now();
        let condition = Condition::of(&status);
        let executor_fetch = self.executor_fetch(&instance, &status, condition);
        let app = self.view.apps.get(&instance.app_id).cloned();
        let outcome = status::apply_status(StatusInput {
            instance: &instance,
            status: &status,
            app: app.as_deref(),
            delay: self.view.delays.get(&instance.app_id),
            now,
            not_the_apps_fault: executor_fetch.is_batons(),
        });
        let mut next = outcome.next;
        // A Mesos-level health verdict rides on the status (`healthy`).
        let mut retired = false;
        let mut kept_health = None;
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
            if let Some((kept, due)) = self.assess_health(&mut next, &result) {
                kept_health = Some(kept);
                if due
                    && self.may_retire(&next)
                    && let Some(task) = next.task.as_mut()
                {
                    task.retire_for_health = Some(now);
                    retired = true;
                }
            }
        }
        let next = Arc::new(next);
        let mut effects = Effects::default();
        effects.change(StateChange::Instance(next.clone()));
        if let Some(failure) = outcome.failure {
            effects.change(StateChange::LastFailure(Arc::new(failure)));
        }
        if let Some(delay) = outcome.delay {
            info!(app = %next.app_id, delay_ms = delay.delay_ms, "launch delayed after a failure");
            effects.change(StateChange::Delay(next.app_id.clone(), delay));
        }
        if next.task.is_some() {
            let container_task = next
                .task
                .as_ref()
                .is_some_and(|t| t.containers.is_some())
                .then(|| task_id.clone());
            effects.emit(Event::StatusUpdate {
                instance: next.clone(),
                message: status.message.clone(),
                container_task,
            });
        }
        if instance.condition() != next.condition() {
            effects.emit(Event::InstanceChanged(next.clone()));
        }
        let healthy = next.task.as_ref().and_then(|t| t.healthy);
        if healthy != instance.task.as_ref().and_then(|t| t.healthy)
            && let Some(alive) = healthy
        {
            effects.emit(Event::HealthChanged {
                instance: next.clone(),
                task_id: task_id.clone(),
                alive,
            });
        }
        if retired {
            self.announce_retirement(&next, &mut effects);
        }
        // Persisted before the acknowledgement: an ACK tells Mesos it may
        // forget the update, so it must be durable here first.
        effects.ack = calls::acknowledge(&status);
        if let Err(e) = self.apply(effects).await {
            // Nothing of it is kept: the resent update counts once.
            error!(%task_id, error = %e, "cannot persist status update; not acknowledging (Mesos will resend)");
            return;
        }
        if let Some(kept) = kept_health {
            self.keep_health(kept);
        }
        if condition.is_terminal() {
            self.forget_health(&task_id);
            self.view.loads.remove(&task_id);
        }
        self.keep_executor_fetch(&instance.app_id, executor_fetch, &status);
        info!(
            %task_id,
            state = state.as_str_name(),
            reason = status.reason.map(|_| status.reason().as_str_name()),
            source = status.source.map(|_| status.source().as_str_name()),
            message = ?status.message,
            "task status"
        );
        self.view.stats.updates_applied += 1;
        if let Some(ms) = outcome.launch_latency_ms {
            self.view.stats.observe_launch_latency(ms);
        }
    }

    /// Whether `status` ends the task because its agent could not fetch
    /// baton-executor from us (Baton restarting, say): ours, not the app's
    /// — no launch delay, no app failure, relaunched with the next offer.
    /// Only so many times in a row, though: a fetch that keeps failing is
    /// throttled by the app's backoff like any failing launch.
    fn executor_fetch(
        &self,
        instance: &Instance,
        status: &v1::TaskStatus,
        condition: Condition,
    ) -> ExecutorFetch {
        let fetch_failed = condition.is_terminal()
            && self.definition_for(instance).is_some_and(|app| {
                self.config.executor.baton_for(&app).is_some()
                    && failed_fetching_executor(status, !app.fetch.is_empty())
            });
        if !fetch_failed {
            return ExecutorFetch::Unrelated {
                running: condition == Condition::Running,
            };
        }
        let streak = self
            .executor_fetch_streaks
            .get(&instance.app_id)
            .copied()
            .unwrap_or(0)
            + 1;
        ExecutorFetch::Failed { streak }
    }

    /// Keeps an app's executor-fetch streak once its update is stored.
    fn keep_executor_fetch(&mut self, app: &PathId, fetch: ExecutorFetch, status: &v1::TaskStatus) {
        let task_id = &status.task_id.value;
        match fetch {
            ExecutorFetch::Unrelated { running: true } => {
                self.executor_fetch_streaks.remove(app);
            }
            ExecutorFetch::Unrelated { running: false } => {}
            ExecutorFetch::Failed { streak } => {
                self.executor_fetch_streaks.insert(app.clone(), streak);
                self.view.stats.executor_fetch_failures += 1;
                if fetch.is_batons() {
                    warn!(%task_id, message = ?status.message, "the agent could not fetch baton-executor; relaunching without a launch delay");
                } else {
                    warn!(%task_id, message = ?status.message, failures = streak, "the agents keep failing to fetch baton-executor; the app's launch delay applies until a launch gets going");
                }
            }
        }
    }

    /// Acknowledges an update that changes nothing Baton keeps (a
    /// redelivery, a task it does not know): through the one `apply`, so
    /// that every acknowledgement goes out after what came before it.
    async fn acknowledge(&mut self, status: &v1::TaskStatus) {
        let effects = Effects {
            ack: calls::acknowledge(status),
            ..Effects::default()
        };
        // Nothing to persist: this cannot fail.
        let _ = self.apply(effects).await;
    }
}

/// What an update says of fetching baton-executor.
#[derive(Debug, Clone, Copy)]
enum ExecutorFetch {
    /// Not a failure to fetch it; `running` ends a streak.
    Unrelated { running: bool },
    /// The agent could not fetch it, `streak` times in a row with this one.
    Failed { streak: u32 },
}

impl ExecutorFetch {
    /// Whether the failure is Baton's, not the app's (a free relaunch).
    fn is_batons(self) -> bool {
        matches!(self, ExecutorFetch::Failed { streak } if streak <= FREE_EXECUTOR_FETCH_RETRIES)
    }
}
