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
//! Group commit: writes decided together — the app writes that are
//! waiting when one arrives ([`commands`]), the decisions of one pass over
//! the dirty apps ([`apps`]) — are held in a [`Group`] and made durable by
//! one store write ([`Store::apply_group`]: one redb transaction, one
//! fsync) instead of one each. Held writes change only the loop's working
//! copy and outbox, which nothing outside sees before [`Driver::flush`],
//! so the order above holds for each of them; a group the store refuses is
//! undone from its first write not committed ([`Checkpoint`]).
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
use crate::state::{Change, GroupError, Store, StoreError};

/// Calls waiting to be sent; beyond this the loop waits (backpressure).
const CALL_QUEUE: usize = 4096;

/// How long offers are wanted to free the reservation of a forgotten
/// resident instance: its agent may be gone for good.
const RESERVATION_FREE_PATIENCE: Duration = Duration::from_secs(600);

/// How long offers are still wanted for the rest of a reservation once a
/// part of it was freed: a pod's executor holds the volumes and its own
/// share, which come back when it exits, moments after its tasks' (on a
/// real Mesos 100-250 ms later).
const RESERVATION_REST_PATIENCE: Duration = Duration::from_secs(30);

/// The longest wait between retries of an explicit reconciliation.
const RECONCILE_RETRY_CAP: Duration = Duration::from_secs(60);

/// The most app writes committed together: every client waiting at once
/// fits (the command queue holds 256), and a group's latency stays bounded.
const MAX_GROUP_WRITES: usize = 256;

/// A group stops taking writes once their records pass this many bytes:
/// a bound on what is held in memory and on one transaction's size (the
/// ZooKeeper store cuts its multi-ops far below it anyway).
const MAX_GROUP_BYTES: usize = 4 << 20;

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
        reservations_to_free: BTreeMap::new(),
        known_agents: KnownAgents::default(),
        reconciling: None,
        checker,
        check_states: BTreeMap::new(),
        health_causes: BTreeMap::new(),
        targets: BTreeMap::new(),
        readiness_targets: BTreeMap::new(),
        readiness: BTreeMap::new(),
        executor_fetch_streaks: BTreeMap::new(),
        group: None,
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

/// Writes held for one group commit, each already applied to the working
/// copy and the outbox (neither leaves the loop before it is committed).
#[derive(Default)]
struct Group {
    /// One batch per [`Driver::apply`], in order; each atomic on its own.
    batches: Vec<Vec<Change>>,
    /// The loop's state before each batch: what to go back to when the
    /// store did not commit that batch (and so none after it).
    before: Vec<Checkpoint>,
    /// The size of the batches' records.
    bytes: usize,
}

/// What a held write changes, before it: the working copy (its maps are
/// persistent, so this costs a few pointer copies) and the outbox's length.
struct Checkpoint {
    view: View,
    events: usize,
    calls: usize,
}

/// The size of a batch's records, for [`MAX_GROUP_BYTES`].
fn record_bytes(records: &[Change]) -> usize {
    records
        .iter()
        .map(|r| match r {
            Change::Put { key, value, .. } => key.len() + value.len(),
            Change::Delete { key, .. } => key.len(),
        })
        .sum()
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
    /// Instances forgotten while they held a reservation, and until when
    /// offers are wanted to free it (else a SUPPRESS could keep it reserved
    /// for ever): [`RESERVATION_FREE_PATIENCE`] at most, and
    /// [`RESERVATION_REST_PATIENCE`] after a part of it was freed (it may
    /// come back in parts: a pod's tasks' share when they end, its
    /// executor's with the volumes when that exits).
    reservations_to_free: BTreeMap<String, Instant>,
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
    /// While writes are being gathered for one commit: those held so far
    /// (see [`Driver::begin_group`]).
    group: Option<Group>,
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
        // A command taken from the queue while gathering a group that
        // could not join it: handled next, ahead of the queue.
        let mut held: Option<Command> = None;
        loop {
            if let Some(command) = held.take() {
                held = self.on_command(command, &mut commands).await;
                self.end_pass().await;
                continue;
            }
            let deadline = self.next_deadline();
            tokio::select! {
                () = shutdown.cancelled() => break,
                event = events.recv() => match event {
                    Some(event) => self.on_session_event(event).await,
                    None => break,
                },
                command = commands.recv() => match command {
                    Some(command) => held = self.on_command(command, &mut commands).await,
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
            self.end_pass().await;
        }
        info!("reconcile loop stopped");
    }

    /// What follows every event or command: the dirty apps are looked at,
    /// health targets follow, and what was decided is released.
    async fn end_pass(&mut self) {
        self.reconcile_dirty().await;
        self.refresh_health_targets();
        self.flush().await;
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
        // When offers stop being wanted for a reservation (SUPPRESS).
        if let Some(&until) = self.reservations_to_free.values().min() {
            deadline = deadline.min(until);
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
        // Past their patience even while unsubscribed (or the deadline
        // would stay in the past).
        self.reservations_to_free.retain(|_, until| *until > now);
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

    /// Commits the batches of a group with one store write.
    async fn persist_group(&self, batches: Vec<Vec<Change>>) -> Result<(), GroupError> {
        let store = self.store.clone();
        tokio::task::spawn_blocking(move || store.apply_group(&batches))
            .await
            .unwrap_or_else(|e| {
                Err(GroupError {
                    committed: 0,
                    error: StoreError::Backend(format!("store task panicked: {e}")),
                })
            })
    }

    /// From now until [`Driver::commit_group`], [`Driver::apply`] holds
    /// the records of what it applies instead of writing them, to be
    /// committed together.
    fn begin_group(&mut self) {
        debug_assert!(self.group.is_none(), "groups do not nest");
        self.group = Some(Group::default());
    }

    /// How many writes the open group holds, and their records' size.
    fn group_size(&self) -> (usize, usize) {
        self.group
            .as_ref()
            .map_or((0, 0), |g| (g.batches.len(), g.bytes))
    }

    /// Makes the open group durable with one store write. When the store
    /// refuses (all of it, or the batches from `committed` on), the loop
    /// goes back to its state before the first batch not written: the
    /// working copy and the outbox lose those writes, so nothing of them
    /// is published, announced or sent. The caller says what that means
    /// for whoever asked (an error answer, a look again shortly).
    async fn commit_group(&mut self) -> Result<(), GroupError> {
        let Some(group) = self.group.take() else {
            return Ok(());
        };
        if group.batches.iter().all(Vec::is_empty) {
            return Ok(());
        }
        let writes = group.batches.len();
        let span = info_span!("group_commit", writes, bytes = group.bytes);
        let result = self.persist_group(group.batches).instrument(span).await;
        if let Err(failed) = &result {
            error!(
                error = %failed.error, writes, committed = failed.committed,
                "cannot persist a group of writes; undoing the ones not written"
            );
            if let Some(back) = group.before.into_iter().nth(failed.committed) {
                self.view = back.view;
                self.outbox.events.truncate(back.events);
                self.outbox.calls.truncate(back.calls);
            }
        }
        result
    }

    /// Carries out what a decision means, in the one order: persist the
    /// state changes (all or nothing), then change the view, then queue
    /// the events, the Mesos calls and the acknowledgement. When the store
    /// refuses, nothing of it happens: no event, no call, no ack (Mesos
    /// resends an unacknowledged update).
    ///
    /// Inside a group ([`Driver::begin_group`]) the records are held
    /// instead, and written with the group's others by
    /// [`Driver::commit_group`] before anything is released: the events,
    /// calls and answers wait in the outbox, the view in the working copy.
    async fn apply(&mut self, effects: Effects) -> Result<(), StoreError> {
        let records = effects.records()?;
        if self.group.is_some() {
            let before = Checkpoint {
                view: self.view.clone(),
                events: self.outbox.events.len(),
                calls: self.outbox.calls.len(),
            };
            if let Some(group) = self.group.as_mut() {
                group.bytes += record_bytes(&records);
                group.batches.push(records);
                group.before.push(before);
            }
        } else {
            self.persist(records).await?;
        }
        self.applied(effects);
        Ok(())
    }

    /// What follows once (or as good as once: see [`Driver::apply`]) the
    /// effects' changes are durable: the working copy changes, and the
    /// events, calls and acknowledgement are queued, in that order.
    fn applied(&mut self, effects: Effects) {
        let Effects {
            changes,
            events,
            calls,
            ack,
        } = effects;
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
        debug_assert!(
            self.group.is_none(),
            "a group's writes are committed before anything is released"
        );
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
