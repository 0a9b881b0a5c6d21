//! The loop itself: the one writer of scheduler state (see the module docs
//! of [`crate::reconcile`]).
//!
//! Every handler decides with the pure functions of `reconcile` and
//! `deploy`, gathers what that means as [`Effects`], and hands them to
//! [`Driver::apply`], which carries them out in the one order: persist →
//! update the view → queue events → queue Mesos calls → queue the
//! acknowledgement. The queues are released by [`Driver::flush`] at the
//! end of each pass, after the view is published, so that a client that
//! reads the API after an event sees its change.
//!
//! - [`commands`]: app writes, kills, launch delays, deployment cancels;
//! - [`apps`]: the per-app reconcile, deployments, offer interest;
//! - [`mesos`]: subscriptions, reconciliation, status updates, messages;
//! - [`offers`]: matching offers and launching;
//! - [`checks`]: Marathon-level health and readiness results.

mod apps;
mod checks;
mod commands;
mod mesos;
mod offers;
#[cfg(test)]
mod tests;

use std::collections::{BTreeMap, BTreeSet};
use std::sync::Arc;
use std::time::Duration;

use mesos_proto::scheduler::{Call, call};
use tokio::sync::{broadcast, mpsc, watch};
use tokio::time::Instant;
use tokio_util::sync::CancellationToken;
use tracing::{Instrument, error, info, info_span, warn};

use super::config::SchedulerConfig;
use super::effects::{Effects, StateChange};
use super::events::{BusEvent, Event};
use super::requests::{Command, MesosPort};
use super::view::View;
use crate::health::{CheckState, HealthChecker, ReadinessResult, ReadinessTarget, Target};
use crate::mesos::session::SessionEvent;
use crate::offers::known::KnownAgents;
use crate::state::app::{PathId, Timestamp};
use crate::state::{Change, Store, StoreError};

/// Calls waiting to be sent; beyond this the loop waits (backpressure).
const CALL_QUEUE: usize = 4096;

/// The longest wait between retries of an explicit reconciliation.
const RECONCILE_RETRY_CAP: Duration = Duration::from_secs(60);

/// Starts the loop over `view` (loaded from `store`).
#[allow(clippy::too_many_arguments)]
pub(super) fn spawn(
    config: SchedulerConfig,
    store: Arc<dyn Store>,
    view: View,
    view_tx: watch::Sender<Arc<View>>,
    events: broadcast::Sender<Arc<BusEvent>>,
    port: Arc<dyn MesosPort>,
    session_events: mpsc::Receiver<SessionEvent>,
    commands: mpsc::Receiver<Command>,
    shutdown: CancellationToken,
) -> tokio::task::JoinHandle<()> {
    let (calls_tx, calls_rx) = mpsc::channel(CALL_QUEUE);
    tokio::spawn(send_calls(port.clone(), calls_rx).instrument(info_span!("mesos_calls")));
    let clock = config.clock;
    let mut health_options = crate::health::Options::new(config.max_concurrent_health_checks);
    health_options.second = config.health_check_second;
    health_options.clock = clock;
    let (checker, health_results, readiness_results) =
        HealthChecker::spawn_with_readiness(health_options, shutdown.clone());
    let driver = Driver {
        next_periodic_reconcile: clock.instant() + config.reconciliation_interval,
        dirty: everything(&view),
        health_dirty: view.instances.keys().cloned().collect(),
        config,
        store,
        port,
        calls: calls_tx,
        view,
        view_tx,
        events,
        outbox: Outbox::default(),
        wants_offers: None,
        wakeups: BTreeMap::new(),
        launchable: BTreeSet::new(),
        known_agents: KnownAgents::default(),
        reconciling: None,
        checker,
        check_states: BTreeMap::new(),
        health_causes: BTreeMap::new(),
        targets: BTreeMap::new(),
        readiness_targets: BTreeMap::new(),
        readiness: BTreeMap::new(),
        executor_fetch_streaks: BTreeMap::new(),
    };
    tokio::spawn(
        driver
            .run(
                session_events,
                commands,
                health_results,
                readiness_results,
                shutdown,
            )
            .instrument(info_span!("reconcile_loop")),
    )
}

/// Sends calls one after another, in the order the loop decided them: a
/// SUPPRESS overtaken by a later REVIVE would starve waiting tasks.
async fn send_calls(port: Arc<dyn MesosPort>, mut calls: mpsc::Receiver<Call>) {
    while let Some(call) = calls.recv().await {
        // Failures are logged by the port; a lost subscription makes the
        // session resubscribe, after which the loop re-decides.
        let _ = port.call(call).await;
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
                .flat_map(|d| d.affected_apps().cloned()),
        )
        .collect()
}

/// An explicit reconciliation in progress: the tasks that have not answered.
struct Reconciling {
    /// Task id → agent id.
    pending: BTreeMap<String, String>,
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
    /// Mesos: to force a resubscribe when state cannot be persisted.
    port: Arc<dyn MesosPort>,
    /// Calls for [`send_calls`], in order.
    calls: mpsc::Sender<Call>,
    /// The working copy; published after every pass.
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
        mut health_results: mpsc::Receiver<crate::health::HealthResult>,
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

    /// The time, from the scheduler's clock.
    fn now(&self) -> Timestamp {
        self.config.clock.now()
    }

    /// The runtime's instant (for timers), from the scheduler's clock.
    fn instant(&self) -> Instant {
        self.config.clock.instant()
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
        let now = self.instant();
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
                self.retry_reconciliation();
            }
            if self.next_periodic_reconcile <= now {
                self.start_reconciliation();
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

    /// Carries out what a decision means, in the one order: persist the
    /// state changes (all or nothing), then change the view, then queue
    /// the events, the Mesos calls and the acknowledgement. When the store
    /// refuses, nothing of it happens: no event, no call, no ack (Mesos
    /// resends an unacknowledged update).
    async fn apply(&mut self, effects: Effects) -> Result<(), StoreError> {
        let Effects {
            changes,
            events,
            calls,
            ack,
        } = effects;
        let mut records = Vec::new();
        for change in &changes {
            records.extend(change.records()?);
        }
        self.persist(records).await?;
        for change in changes {
            let instances_moved = matches!(
                change,
                StateChange::Instance(_) | StateChange::InstanceGone { .. }
            );
            if let Some(app) = change.apply_to(&mut self.view) {
                if instances_moved {
                    self.health_dirty.insert(app.clone());
                }
                self.dirty.insert(app);
            }
        }
        for event in events {
            self.emit(event);
        }
        for call in calls {
            self.send(call);
        }
        if let Some(ack) = ack {
            self.view.stats.acks_sent += 1;
            self.send(ack);
        }
        Ok(())
    }

    /// Queues an event for the bus, stamped now; it goes out with the next
    /// [`Driver::flush`], after the snapshot holding its change.
    fn emit(&mut self, event: Event) {
        let event = BusEvent::new(event, self.now());
        self.outbox.events.push(event);
    }

    /// Queues a call for Mesos; it goes out with the next
    /// [`Driver::flush`], in the order decided.
    fn send(&mut self, call: Call) {
        if call.r#type == Some(call::Type::Kill as i32) {
            self.view.stats.kills_sent += 1;
        }
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

    /// Logs a decision the store refused (it is taken again on the next
    /// look, from the unchanged state).
    fn refused(what: &str, e: &StoreError) {
        error!(error = %e, "cannot persist {what}");
    }
}
