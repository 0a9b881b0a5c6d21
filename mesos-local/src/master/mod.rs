//! The master: framework registry, offers, task bookkeeping, status-update
//! forwarding, reconciliation, failover timers.
//!
//! # Concurrency
//!
//! All master state is one [`MasterState`] behind a `std::sync::Mutex`.
//! Every operation (an HTTP call, a message from an agent, a timer) locks
//! it, mutates, and unlocks without awaiting: it never waits on I/O while
//! holding the lock. Its outputs are non-blocking sends: a push on each
//! subscriber's [`wire::Outbox`] (a closed stream, or one whose reader has
//! fallen too far behind, marks that framework disconnected instead of
//! blocking) and unbounded sends to agents. Tasks that must be spawned (timers, a stream's heartbeat) are
//! queued in [`MasterState::deferred`] and spawned by [`Master::with_state`]
//! after the lock is released. A tokio mutex would buy nothing here and
//! would let a slow await stall every caller.

pub(crate) mod accept;
pub(crate) mod allocator;
pub(crate) mod http;
pub(crate) mod operations;
pub(crate) mod reconcile;
pub(crate) mod validation;

use std::collections::btree_map::Entry;
use std::collections::{BTreeMap, BTreeSet, HashMap, HashSet, VecDeque};
use std::net::SocketAddr;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex, MutexGuard};
use std::time::Duration;

use axum::http::StatusCode;
use bytes::Bytes;
use mesos_proto::Encoding;
use mesos_proto::scheduler::{Call, Event, call, event};
use mesos_proto::util::{self, is_terminal};
use mesos_proto::v1::{
    self, TaskState, framework_info::capability, offer::operation, task_status::Reason,
};
use tokio::sync::{Notify, mpsc};
use tokio::time::Instant;
use tokio_util::sync::CancellationToken;
use tracing::{debug, info, warn};

use crate::config::ClusterConfig;
use crate::messages::{AgentReport, FromAgent, Scope, ToAgent};
use crate::resources::{Format, Resources};
use crate::security::acl;
use crate::wire::{self, Inbox, Outbox, Rejection};
use allocator::RefuseFilter;
use validation::{framework_roles, has_capability};

/// The Mesos version the master claims (tools such as mesos-dns read it).
pub const MESOS_VERSION: &str = "1.11.0";
const MAX_COMPLETED_FRAMEWORKS: usize = 50;
const MAX_COMPLETED_TASKS: usize = 1000;
const MAX_UNREACHABLE_TASKS: usize = 1000;
const MAX_STATUSES: usize = 100;
const MAX_REMOVED_IDS: usize = 10_000;
/// Longest timer we arm (a failover_timeout of a century is "forever").
const MAX_TIMER: Duration = Duration::from_secs(100 * 365 * 24 * 3600);

/// An agent as the master sees it.
#[derive(Debug, Clone, PartialEq)]
pub enum AgentStatus {
    /// Known but not (re)registered yet (at start, after a master failover).
    Registering,
    /// Registered and connected.
    Active,
    /// Link broken; becomes unreachable after the timeout.
    Disconnected,
    /// Marked unreachable at this time.
    Unreachable(v1::TimeInfo),
    /// Its registration was refused (`--acls` `register_agents`): not an
    /// agent of the cluster (not in `/master/state` `slaves`, no offers);
    /// each later attempt is decided again.
    Refused,
}

/// One agent's registry entry.
#[derive(Debug)]
pub struct AgentEntry {
    /// 1-based index.
    pub index: usize,
    /// `<master>-S<i>`.
    pub id: String,
    /// `127.0.0.<i>`.
    pub hostname: String,
    /// Its HTTP address.
    pub endpoint: SocketAddr,
    /// `rack_id`.
    pub attributes: Vec<v1::Attribute>,
    /// Everything it has.
    pub total: Resources,
    /// Link state.
    pub status: AgentStatus,
    /// Bumped on every status change; stale timers compare it.
    pub generation: u64,
    /// When it first registered.
    pub registered_time: Option<f64>,
    /// When it last reregistered.
    pub reregistered_time: Option<f64>,
    /// Messages to it.
    pub tx: mpsc::UnboundedSender<ToAgent>,
}

/// A live SUBSCRIBE stream.
#[derive(Debug)]
pub struct Connection {
    /// Distinguishes this stream from later ones of the same framework.
    pub conn_id: u64,
    /// `Mesos-Stream-Id`.
    pub stream_id: String,
    /// Records to the response body.
    pub tx: Outbox,
    /// The negotiated encoding.
    pub encoding: Encoding,
    /// Stops the stream's heartbeat task (which holds a sender too).
    pub cancel: CancellationToken,
}

impl Connection {
    fn close(self) {
        self.cancel.cancel();
    }
}

/// A custom executor of a framework on an agent.
#[derive(Debug, Clone)]
pub struct ExecutorEntry {
    /// As launched.
    pub info: v1::ExecutorInfo,
    /// What it holds.
    pub resources: Resources,
}

/// A task as the master tracks it.
#[derive(Debug, Clone)]
pub struct Task {
    /// As launched.
    pub info: v1::TaskInfo,
    /// Owner.
    pub framework_id: String,
    /// `None` for command tasks.
    pub executor_id: Option<String>,
    /// 1-based agent index.
    pub agent: usize,
    /// Latest state (resources are freed when it is terminal).
    pub state: TaskState,
    /// State of the update being delivered to the framework.
    pub status_update_state: Option<TaskState>,
    /// Its uuid.
    pub status_update_uuid: Option<Vec<u8>>,
    /// History (without `data`).
    pub statuses: Vec<v1::TaskStatus>,
    /// The latest status received.
    pub latest: Option<v1::TaskStatus>,
    /// What it holds.
    pub resources: Resources,
    /// The role it runs as.
    pub role: String,
}

impl Task {
    fn record(&mut self, status: &v1::TaskStatus) {
        let mut s = status.clone();
        s.data = None;
        // As the master's `updateTask`: an update of the state the last
        // one had replaces it (a health change, a resent update), so the
        // history holds each state change once, with its latest status.
        if self
            .statuses
            .last()
            .is_some_and(|last| last.state == s.state)
        {
            self.statuses.pop();
        }
        if self.statuses.len() >= MAX_STATUSES {
            self.statuses.remove(0);
        }
        self.statuses.push(s);
        self.latest = Some(status.clone());
    }

    fn known(&self, agent_id: &str) -> reconcile::KnownTask {
        reconcile::KnownTask {
            task_id: self.info.task_id.value.clone(),
            state: self.status_update_state.unwrap_or(self.state),
            agent_id: agent_id.to_string(),
            executor_id: self.executor_id.clone(),
            latest: self.latest.clone(),
        }
    }
}

/// A framework the master knows.
#[derive(Debug)]
pub struct Framework {
    /// Its id.
    pub id: String,
    /// Latest FrameworkInfo, id set.
    pub info: v1::FrameworkInfo,
    /// The live stream, if connected.
    pub conn: Option<Connection>,
    /// Learnt from agents after a master failover, not yet resubscribed.
    pub recovered: bool,
    /// Connected and not deactivated.
    pub active: bool,
    /// Roles that get no offers.
    pub suppressed_roles: BTreeSet<String>,
    /// Refusals by (role, agent): as in Mesos, a refusal of one role's
    /// offer does not hold back the framework's other roles.
    pub filters: HashMap<(String, usize), RefuseFilter>,
    /// Non-completed tasks by id.
    pub tasks: BTreeMap<String, Task>,
    /// Tasks on unreachable agents.
    pub unreachable_tasks: BTreeMap<String, Task>,
    /// Recently completed tasks.
    pub completed_tasks: VecDeque<Task>,
    /// Custom executors by (agent, executor id).
    pub executors: BTreeMap<(usize, String), ExecutorEntry>,
    /// Bumped whenever a pending failover timer must be ignored.
    pub failover_generation: u64,
    /// First SUBSCRIBE.
    pub registered_time: f64,
    /// Latest re-SUBSCRIBE.
    pub reregistered_time: Option<f64>,
    /// Latest disconnection.
    pub unregistered_time: Option<f64>,
}

impl Framework {
    fn new(id: String, info: v1::FrameworkInfo, now: f64) -> Framework {
        Framework {
            id,
            info,
            conn: None,
            recovered: false,
            active: false,
            suppressed_roles: BTreeSet::new(),
            filters: HashMap::new(),
            tasks: BTreeMap::new(),
            unreachable_tasks: BTreeMap::new(),
            completed_tasks: VecDeque::new(),
            executors: BTreeMap::new(),
            failover_generation: 0,
            registered_time: now,
            reregistered_time: None,
            unregistered_time: None,
        }
    }

    /// Whether it has the PARTITION_AWARE capability.
    pub fn partition_aware(&self) -> bool {
        has_capability(&self.info, capability::Type::PartitionAware)
    }

    /// Whether it has the MULTI_ROLE capability.
    pub fn multi_role(&self) -> bool {
        has_capability(&self.info, capability::Type::MultiRole)
    }

    /// Whether it has RESERVATION_REFINEMENT: it reads reservations as the
    /// `reservations` stack; the others get `role` + `reservation`.
    pub fn refinement(&self) -> bool {
        has_capability(&self.info, capability::Type::ReservationRefinement)
    }

    /// The format its offers are written in.
    pub fn format(&self) -> Format {
        if self.refinement() {
            Format::Post
        } else {
            Format::Pre
        }
    }

    /// The role it gets offers for (the first of its roles).
    pub fn offer_role(&self) -> Option<String> {
        framework_roles(&self.info).into_iter().next()
    }

    /// A new SUBSCRIBE for this framework: ERROR("Framework failed over")
    /// on the old stream, which then closes; the new info is kept and the
    /// failover timer, if any, is disarmed.
    fn fail_over(&mut self, info: v1::FrameworkInfo, now: f64) {
        if let Some(old) = self.conn.take() {
            info!(framework_id = %self.id, "framework failed over to a new stream");
            let _ = old.tx.push(wire::record(
                old.encoding,
                &error_event("Framework failed over"),
            ));
            old.close();
        }
        self.info = info;
        self.reregistered_time = Some(now);
        self.recovered = false;
        self.failover_generation += 1;
    }

    fn complete(&mut self, task: Task) {
        if self.completed_tasks.len() >= MAX_COMPLETED_TASKS {
            self.completed_tasks.pop_front();
        }
        self.completed_tasks.push_back(task);
    }
}

/// An outstanding offer.
#[derive(Debug, Clone)]
pub struct OfferEntry {
    /// Owner.
    pub framework_id: String,
    /// Agent index.
    pub agent: usize,
    /// What it offers.
    pub resources: Resources,
    /// The role it is allocated to.
    pub role: String,
    /// As sent.
    pub offer: v1::Offer,
}

/// Work to spawn once the lock is released.
#[derive(Debug)]
pub enum Deferred {
    /// Remove the framework unless it reconnects before `after`.
    Failover {
        /// Which.
        framework_id: String,
        /// Its `failover_generation` now.
        generation: u64,
        /// `failover_timeout`.
        after: Duration,
    },
    /// Mark the agent unreachable unless it comes back before `after`.
    AgentUnreachable {
        /// Which.
        index: usize,
        /// Its `generation` now.
        generation: u64,
        /// `agent_unreachable_timeout`.
        after: Duration,
    },
    /// Heartbeats and close detection of a new stream.
    Connection {
        /// Owner.
        framework_id: String,
        /// The stream.
        conn_id: u64,
        /// A sender to it.
        tx: Outbox,
        /// HEARTBEAT in the stream's encoding.
        heartbeat: Bytes,
        /// Stops the task.
        cancel: CancellationToken,
    },
}

/// The outcome of a SUBSCRIBE.
#[derive(Debug)]
pub enum Subscribed {
    /// 200 with a live stream.
    Stream {
        /// The body.
        rx: Inbox,
        /// `Mesos-Stream-Id`.
        stream_id: String,
    },
    /// 200 with one ERROR event, then close.
    Refused {
        /// The ERROR record.
        record: Bytes,
    },
}

/// Everything the master knows. See the module docs for the locking rule.
#[derive(Debug)]
pub struct MasterState {
    /// The current master's id (changes on a simulated failover).
    pub master_id: String,
    /// The master's address.
    pub addr: SocketAddr,
    /// When this master process started.
    pub start_time: f64,
    /// When the current master was elected.
    pub elected_time: f64,
    next_framework: u64,
    next_offer: u64,
    next_conn: u64,
    /// The agents' isolation in effect (`cgroups/cpu,cgroups/mem`, or
    /// `posix/cpu,posix/mem` also when cgroups could not be used), shown in
    /// the flags of `/master/state`.
    pub isolation: String,
    /// Frameworks by id.
    pub frameworks: BTreeMap<String, Framework>,
    /// Removed frameworks, newest last.
    pub completed_frameworks: VecDeque<Framework>,
    removed_ids: HashSet<String>,
    /// Agents, index `i - 1`.
    pub agents: Vec<AgentEntry>,
    /// Outstanding offers by id.
    pub offers: BTreeMap<String, OfferEntry>,
    /// SUBSCRIBE calls answered with SUBSCRIBED.
    pub subscribe_count: u64,
    /// Reliable updates still to drop (fault injection).
    pub drop_updates: u32,
    /// Reliable updates still to deliver twice (fault injection).
    pub duplicate_updates: u32,
    /// Spawned after unlocking.
    pub deferred: Vec<Deferred>,
    /// Run an allocation soon (new framework, REVIVE).
    pub allocate_soon: bool,
    /// The cluster is shutting down: calls get 503.
    pub closing: bool,
    config: Arc<ClusterConfig>,
    paused: Arc<AtomicBool>,
}

/// The master: its state and what runs it.
#[derive(Debug)]
pub struct Master {
    config: Arc<ClusterConfig>,
    scope: Scope,
    state: Mutex<MasterState>,
    /// Set by `Faults::pause_heartbeats`: nothing reaches any stream.
    pub paused: Arc<AtomicBool>,
    allocate_now: Notify,
}

fn event(ty: event::Type) -> Event {
    Event {
        r#type: Some(ty as i32),
        ..Default::default()
    }
}

fn update_event(status: v1::TaskStatus) -> Event {
    Event {
        update: Some(event::Update { status }),
        ..event(event::Type::Update)
    }
}

fn error_event(message: &str) -> Event {
    Event {
        error: Some(event::Error {
            message: message.to_string(),
        }),
        ..event(event::Type::Error)
    }
}

fn shutting_down() -> Rejection {
    Rejection::ServiceUnavailable("Master is shutting down".into())
}

fn time_now() -> v1::TimeInfo {
    v1::TimeInfo {
        nanoseconds: (util::now_timestamp() * 1e9) as i64,
    }
}

/// Resources as Mesos's `stringify(Resources)` prints an agent's: in the
/// order an agent reports them (`cpus`, `gpus`, `mem`, `disk`, then the
/// other scalars, then ranges and sets), `name:value` joined by `; `,
/// ranges as `[a-b, c-d]`, sets as `{a, b}`.
pub(crate) fn mesos_resources_text(r: &Resources) -> String {
    const FIRST: [&str; 4] = ["cpus", "gpus", "mem", "disk"];
    let rank = |name: &str| FIRST.iter().position(|f| *f == name).unwrap_or(FIRST.len());
    let r = r.flatten();
    let mut scalars: Vec<(&String, &f64)> = r.scalars.iter().map(|(k, v)| (&k.name, v)).collect();
    scalars.sort_by_key(|(name, _)| rank(name));
    let mut out: Vec<String> = scalars
        .into_iter()
        .map(|(name, v)| format!("{name}:{v}"))
        .collect();
    for (key, ranges) in &r.ranges {
        let name = &key.name;
        let ranges: Vec<String> = ranges.iter().map(|(b, e)| format!("{b}-{e}")).collect();
        out.push(format!("{name}:[{}]", ranges.join(", ")));
    }
    for (key, items) in &r.sets {
        let name = &key.name;
        let items: Vec<&str> = items.iter().map(String::as_str).collect();
        out.push(format!("{name}:{{{}}}", items.join(", ")));
    }
    out.join("; ")
}

impl MasterState {
    /// A fresh master for these agents.
    pub fn new(
        config: Arc<ClusterConfig>,
        addr: SocketAddr,
        agents: Vec<AgentEntry>,
        master_id: String,
        paused: Arc<AtomicBool>,
    ) -> MasterState {
        let now = util::now_timestamp();
        MasterState {
            master_id,
            addr,
            start_time: now,
            elected_time: now,
            next_framework: 0,
            next_offer: 0,
            next_conn: 0,
            frameworks: BTreeMap::new(),
            completed_frameworks: VecDeque::new(),
            isolation: config.isolation.isolation.to_string(),
            removed_ids: HashSet::new(),
            agents,
            offers: BTreeMap::new(),
            subscribe_count: 0,
            drop_updates: 0,
            duplicate_updates: 0,
            deferred: Vec::new(),
            allocate_soon: false,
            closing: false,
            config,
            paused,
        }
    }

    /// The cluster's configuration.
    pub fn config(&self) -> &ClusterConfig {
        &self.config
    }

    /// MasterInfo as SUBSCRIBED and `/master/state` carry it.
    pub fn master_info(&self) -> v1::MasterInfo {
        let ip = match self.addr.ip() {
            std::net::IpAddr::V4(v4) => u32::from_le_bytes(v4.octets()),
            std::net::IpAddr::V6(_) => 0,
        };
        let host = self.addr.ip().to_string();
        v1::MasterInfo {
            id: self.master_id.clone(),
            ip,
            port: u32::from(self.addr.port()),
            pid: Some(format!("master@{}", self.addr)),
            hostname: Some(host.clone()),
            version: Some(MESOS_VERSION.into()),
            address: Some(v1::Address {
                hostname: Some(host.clone()),
                ip: Some(host),
                port: i32::from(self.addr.port()),
            }),
            ..Default::default()
        }
    }

    fn agent_index(&self, agent_id: &str) -> Option<usize> {
        self.agents
            .iter()
            .find(|a| a.id == agent_id)
            .map(|a| a.index)
    }

    fn agent(&self, index: usize) -> Option<&AgentEntry> {
        index.checked_sub(1).and_then(|i| self.agents.get(i))
    }

    fn agent_mut(&mut self, index: usize) -> Option<&mut AgentEntry> {
        index.checked_sub(1).and_then(|i| self.agents.get_mut(i))
    }

    fn agent_id_of(&self, index: usize) -> String {
        self.agent(index).map(|a| a.id.clone()).unwrap_or_default()
    }

    fn to_agent(&self, index: usize, msg: ToAgent) {
        if let Some(a) = self.agent(index) {
            // The receiver lives as long as the agent; a send can only fail
            // during shutdown.
            let _ = a.tx.send(msg);
        }
    }

    // ----- streams -------------------------------------------------------

    /// Sends an event on a framework's stream. A full or closed stream
    /// disconnects the framework. While heartbeats are paused everything is
    /// silently eaten.
    fn send(&mut self, framework_id: &str, ev: &Event) -> bool {
        if self.paused.load(Ordering::Relaxed) {
            return true;
        }
        let Some(conn) = self
            .frameworks
            .get(framework_id)
            .and_then(|f| f.conn.as_ref())
        else {
            return false;
        };
        let rec = wire::record(conn.encoding, ev);
        match conn.tx.push(rec) {
            Ok(()) => true,
            Err(gone) => {
                warn!(
                    framework_id,
                    ?gone,
                    "subscriber stream closed or too far behind; disconnecting"
                );
                self.disconnect(framework_id);
                false
            }
        }
    }

    /// Forwards a status update; `reliable` ones are subject to the
    /// drop/duplicate faults.
    fn forward_update(&mut self, framework_id: &str, status: v1::TaskStatus, reliable: bool) {
        if reliable && self.drop_updates > 0 && self.is_connected(framework_id) {
            self.drop_updates -= 1;
            info!(framework_id, task_id = %status.task_id.value, "fault: dropping a status update");
            return;
        }
        let twice = reliable && self.duplicate_updates > 0 && self.is_connected(framework_id);
        if twice {
            self.duplicate_updates -= 1;
            info!(framework_id, task_id = %status.task_id.value, "fault: duplicating a status update");
        }
        let ev = update_event(status);
        if self.send(framework_id, &ev) && twice {
            self.send(framework_id, &ev);
        }
    }

    fn is_connected(&self, framework_id: &str) -> bool {
        self.frameworks
            .get(framework_id)
            .is_some_and(|f| f.conn.is_some())
    }

    /// The framework's stream broke (or was cut): deactivate it, drop its
    /// offers and start its failover timer.
    pub fn disconnect(&mut self, framework_id: &str) {
        let Some(fw) = self.frameworks.get_mut(framework_id) else {
            return;
        };
        let Some(conn) = fw.conn.take() else {
            return;
        };
        info!(framework_id, "framework disconnected");
        conn.close();
        fw.active = false;
        fw.unregistered_time = Some(util::now_timestamp());
        fw.failover_generation += 1;
        let generation = fw.failover_generation;
        let timeout = fw.info.failover_timeout.unwrap_or(0.0);
        self.remove_offers_of(framework_id);
        if timeout > 0.0 {
            self.deferred.push(Deferred::Failover {
                framework_id: framework_id.to_string(),
                generation,
                after: Duration::try_from_secs_f64(timeout)
                    .unwrap_or(MAX_TIMER)
                    .min(MAX_TIMER),
            });
        } else {
            self.remove_framework(framework_id, "failover timeout 0 expired");
        }
    }

    /// A stream's body was dropped by the client.
    pub fn connection_closed(&mut self, framework_id: &str, conn_id: u64) {
        let current = self
            .frameworks
            .get(framework_id)
            .and_then(|f| f.conn.as_ref())
            .is_some_and(|c| c.conn_id == conn_id);
        if current {
            self.disconnect(framework_id);
        }
    }

    /// The failover timer fired.
    pub fn failover_expired(&mut self, framework_id: &str, generation: u64) {
        let due = self
            .frameworks
            .get(framework_id)
            .is_some_and(|f| f.conn.is_none() && f.failover_generation == generation);
        if due {
            self.remove_framework(framework_id, "failover timeout expired");
        }
    }

    /// Removes a framework: its tasks are killed (executors shut down), its
    /// id is remembered as completed.
    pub fn remove_framework(&mut self, framework_id: &str, why: &str) {
        self.remove_offers_of(framework_id);
        let Some(mut fw) = self.frameworks.remove(framework_id) else {
            return;
        };
        info!(framework_id, why, "removing framework");
        if let Some(conn) = fw.conn.take() {
            conn.close();
        }
        fw.active = false;
        fw.unregistered_time = Some(util::now_timestamp());
        let tasks: Vec<Task> = std::mem::take(&mut fw.tasks)
            .into_values()
            .chain(std::mem::take(&mut fw.unreachable_tasks).into_values())
            .collect();
        for mut task in tasks {
            if !is_terminal(task.state) {
                let status = util::with_reason(
                    util::status(
                        task.info.task_id.clone(),
                        TaskState::TaskKilled,
                        v1::task_status::Source::Master,
                    ),
                    Reason::FrameworkRemoved,
                    format!("Framework {framework_id} removed"),
                );
                task.state = TaskState::TaskKilled;
                task.record(&status);
            }
            fw.complete(task);
        }
        fw.executors.clear();
        for a in &self.agents {
            let _ = a.tx.send(ToAgent::ShutdownFramework {
                framework_id: framework_id.to_string(),
            });
        }
        if self.removed_ids.len() >= MAX_REMOVED_IDS {
            self.removed_ids.clear();
        }
        self.removed_ids.insert(framework_id.to_string());
        if self.completed_frameworks.len() >= MAX_COMPLETED_FRAMEWORKS {
            self.completed_frameworks.pop_front();
        }
        self.completed_frameworks.push_back(fw);
    }

    /// `POST /master/teardown` (`frameworkId=<id>`): removes the framework
    /// as its own TEARDOWN would.
    pub fn teardown(
        &mut self,
        framework_id: &str,
        principal: Option<&str>,
    ) -> Result<(), Rejection> {
        if self.closing {
            return Err(shutting_down());
        }
        if !self.frameworks.contains_key(framework_id) {
            return Err(Rejection::BadRequest(
                "No framework found with specified ID".into(),
            ));
        }
        info!(framework_id, operator = ?principal, "operator teardown");
        self.remove_framework(framework_id, "operator teardown");
        Ok(())
    }

    fn remove_offers_of(&mut self, framework_id: &str) {
        self.offers.retain(|_, o| o.framework_id != framework_id);
    }

    /// Rescinds (with a RESCIND event) every offer on an agent.
    fn rescind_offers_on(&mut self, index: usize) {
        let ids: Vec<(String, String)> = self
            .offers
            .iter()
            .filter(|(_, o)| o.agent == index)
            .map(|(id, o)| (id.clone(), o.framework_id.clone()))
            .collect();
        for (id, fw) in ids {
            self.offers.remove(&id);
            let ev = Event {
                rescind: Some(event::Rescind {
                    offer_id: util::offer_id(id),
                }),
                ..event(event::Type::Rescind)
            };
            self.send(&fw, &ev);
        }
    }

    // ----- SUBSCRIBE ----------------------------------------------------

    /// Handles a validated SUBSCRIBE: a live stream (SUBSCRIBED, HEARTBEAT,
    /// ...), a refusal (200 with one ERROR event), or 503 while the cluster
    /// shuts down.
    pub fn subscribe(&mut self, call: &Call, encoding: Encoding) -> Result<Subscribed, Rejection> {
        if self.closing {
            return Err(shutting_down());
        }
        let sub = call.subscribe.clone().unwrap_or_default();
        match self.admit(sub.framework_info) {
            Ok(info) => Ok(self.open_stream(info, sub.suppressed_roles, encoding)),
            Err(message) => {
                info!(message, "refusing SUBSCRIBE");
                Ok(Subscribed::Refused {
                    record: wire::record(encoding, &error_event(&message)),
                })
            }
        }
    }

    /// The semantic checks of a SUBSCRIBE (those answered with an ERROR
    /// event); the FrameworkInfo to keep, its id set.
    fn admit(&mut self, mut info: v1::FrameworkInfo) -> Result<v1::FrameworkInfo, String> {
        validation::validate_framework_info(&info)?;
        if let Some(id) = &info.id
            && self.removed_ids.contains(&id.value)
        {
            return Err("Framework has been removed".into());
        }
        // After validation, before the id is assigned (Mesos's message names
        // no id for a first SUBSCRIBE) and before the update checks.
        self.authorize_roles(&info)?;
        let framework_id = match &info.id {
            Some(id) => id.value.clone(),
            None => {
                let id = format!("{}-{:04}", self.master_id, self.next_framework);
                self.next_framework += 1;
                id
            }
        };
        info.id = Some(util::framework_id(&framework_id));
        if let Some(fw) = self.frameworks.get(&framework_id) {
            if fw.info.principal.is_some() && fw.info.principal != info.principal {
                return Err("Changing framework's principal is not allowed".into());
            }
            // `user` and `checkpoint` cannot change; Mesos silently keeps
            // the old ones.
            info.user = fw.info.user.clone();
            info.checkpoint = fw.info.checkpoint;
        }
        Ok(info)
    }

    /// `Err` with Mesos's refusal when `--acls` do not let the framework's
    /// principal register with all of its roles.
    fn authorize_roles(&self, info: &v1::FrameworkInfo) -> Result<(), String> {
        let Some(acls) = self.config.security.as_ref().and_then(|s| s.acls.as_ref()) else {
            return Ok(());
        };
        let roles: BTreeSet<String> = framework_roles(info).into_iter().collect();
        if acl::may_register_framework(acls, info.principal.as_deref(), &roles) {
            return Ok(());
        }
        info!(principal = ?info.principal, ?roles, "framework not authorized for its roles");
        let id = info.id.as_ref().map_or("", |i| i.value.as_str());
        Err(acl::not_authorized_message(id, &roles))
    }

    /// Registers the framework (or fails it over from its old stream) and
    /// opens its new stream, SUBSCRIBED and a first HEARTBEAT queued.
    fn open_stream(
        &mut self,
        info: v1::FrameworkInfo,
        suppressed_roles: Vec<String>,
        encoding: Encoding,
    ) -> Subscribed {
        let framework_id = info
            .id
            .as_ref()
            .map(|i| i.value.clone())
            .unwrap_or_default();
        // Old offers are discarded without RESCIND (`_failoverFramework`).
        self.remove_offers_of(&framework_id);
        let now = util::now_timestamp();
        let (tx, rx) = wire::event_stream();
        let stream_id = uuid::Uuid::new_v4().to_string();
        let conn_id = self.next_conn;
        self.next_conn += 1;
        let cancel = CancellationToken::new();
        let subscribed = Event {
            subscribed: Some(event::Subscribed {
                framework_id: util::framework_id(&framework_id),
                heartbeat_interval_seconds: Some(self.config.heartbeat_interval.as_secs_f64()),
                master_info: Some(self.master_info()),
            }),
            ..event(event::Type::Subscribed)
        };
        let heartbeat = wire::record(encoding, &event(event::Type::Heartbeat));
        // A fresh stream has room for both.
        let _ = tx.push(wire::record(encoding, &subscribed));
        let _ = tx.push(heartbeat.clone());

        let fw = match self.frameworks.entry(framework_id.clone()) {
            Entry::Occupied(e) => {
                let fw = e.into_mut();
                fw.fail_over(info.clone(), now);
                fw
            }
            Entry::Vacant(e) => {
                info!(framework_id, name = %info.name, "framework registered");
                e.insert(Framework::new(framework_id.clone(), info.clone(), now))
            }
        };
        fw.suppressed_roles = suppressed_roles.into_iter().collect();
        fw.active = true;
        fw.conn = Some(Connection {
            conn_id,
            stream_id: stream_id.clone(),
            tx: tx.clone(),
            encoding,
            cancel: cancel.clone(),
        });
        self.subscribe_count += 1;
        self.deferred.push(Deferred::Connection {
            framework_id,
            conn_id,
            tx,
            heartbeat,
            cancel,
        });
        self.allocate_soon = true;
        for a in &self.agents {
            let _ = a.tx.send(ToAgent::UpdateFramework {
                framework: info.clone(),
            });
        }
        Subscribed::Stream { rx, stream_id }
    }

    // ----- other calls --------------------------------------------------

    /// Handles a validated non-SUBSCRIBE call. `principal` is the
    /// authenticated one, if the scheduler realm authenticates: it must be
    /// the framework's (a 400 otherwise, as Mesos).
    pub fn call(
        &mut self,
        call: Call,
        ty: call::Type,
        stream_id: Option<&str>,
        principal: Option<&str>,
    ) -> Result<StatusCode, Rejection> {
        if self.closing {
            return Err(shutting_down());
        }
        let framework_id = call
            .framework_id
            .as_ref()
            .map(|f| f.value.clone())
            .unwrap_or_default();
        let Some(fw) = self.frameworks.get(&framework_id) else {
            return Err(Rejection::BadRequest("Framework cannot be found".into()));
        };
        if let Some(p) = principal
            && fw.info.principal.as_deref() != Some(p)
        {
            return Err(Rejection::BadRequest(format!(
                "Authenticated principal '{p}' does not match principal '{}' set in `FrameworkInfo`",
                fw.info.principal.as_deref().unwrap_or("")
            )));
        }
        let Some(conn) = &fw.conn else {
            return Err(Rejection::Forbidden("Framework is not subscribed".into()));
        };
        match stream_id {
            None => {
                return Err(Rejection::BadRequest(
                    "All non-subscribe calls should include the 'Mesos-Stream-Id' header".into(),
                ));
            }
            Some(s) if s != conn.stream_id => {
                return Err(Rejection::BadRequest(format!(
                    "The stream ID '{s}' included in this request didn't match the stream ID currently associated with framework ID {framework_id}"
                )));
            }
            Some(_) => {}
        }
        let fid = framework_id.as_str();
        match ty {
            call::Type::Teardown => self.remove_framework(fid, "TEARDOWN"),
            call::Type::Accept => {
                let accept = call.accept.unwrap_or_default();
                self.accept(fid, accept);
            }
            call::Type::Decline => {
                let d = call.decline.unwrap_or_default();
                let ids: Vec<String> = d.offer_ids.into_iter().map(|o| o.value).collect();
                self.decline(fid, &ids, d.filters.as_ref());
            }
            call::Type::Revive => {
                let roles = call.revive.map(|r| r.roles).unwrap_or_default();
                self.revive(fid, &roles);
            }
            call::Type::Suppress => {
                let roles = call.suppress.map(|r| r.roles).unwrap_or_default();
                self.suppress(fid, &roles);
            }
            call::Type::Kill => self.kill(fid, call.kill.unwrap_or_default()),
            call::Type::Shutdown => {
                let s = call.shutdown.unwrap_or_default();
                if let Some(index) = self.agent_index(&s.agent_id.value) {
                    self.to_agent(
                        index,
                        ToAgent::ShutdownExecutor {
                            framework_id: fid.to_string(),
                            executor_id: s.executor_id.value,
                        },
                    );
                }
            }
            call::Type::Acknowledge => self.acknowledge(fid, call.acknowledge.unwrap_or_default()),
            call::Type::Reconcile => {
                let tasks = call.reconcile.map(|r| r.tasks).unwrap_or_default();
                self.reconcile(fid, &tasks);
            }
            call::Type::Message => {
                let m = call.message.unwrap_or_default();
                if let Some(index) = self.agent_index(&m.agent_id.value) {
                    self.to_agent(
                        index,
                        ToAgent::FrameworkMessage {
                            framework_id: fid.to_string(),
                            executor_id: m.executor_id.value,
                            data: m.data,
                        },
                    );
                }
            }
            call::Type::UpdateFramework => {
                let u = call.update_framework.unwrap_or_default();
                self.update_framework(fid, u)?;
                return Ok(StatusCode::OK);
            }
            call::Type::Request
            | call::Type::AcceptInverseOffers
            | call::Type::DeclineInverseOffers
            | call::Type::AcknowledgeOperationStatus
            | call::Type::ReconcileOperations => {
                debug!(?ty, "call accepted and ignored");
            }
            call::Type::Subscribe | call::Type::Unknown => {
                return Err(Rejection::NotImplemented(format!(
                    "Call type {ty:?} is not supported"
                )));
            }
        }
        Ok(StatusCode::ACCEPTED)
    }

    fn update_framework(
        &mut self,
        framework_id: &str,
        u: call::UpdateFramework,
    ) -> Result<(), Rejection> {
        let mut info = u.framework_info;
        validation::validate_framework_info(&info).map_err(Rejection::BadRequest)?;
        let fw = self
            .frameworks
            .get(framework_id)
            .ok_or_else(|| Rejection::BadRequest("Framework cannot be found".into()))?;
        if fw.info.principal != info.principal {
            return Err(Rejection::BadRequest(
                "Changing framework's principal is not allowed".into(),
            ));
        }
        info.user = fw.info.user.clone();
        info.checkpoint = fw.info.checkpoint;
        // As Mesos: a role the ACLs refuse is 403 here, not an ERROR event.
        self.authorize_roles(&info).map_err(Rejection::Forbidden)?;
        let Some(fw) = self.frameworks.get_mut(framework_id) else {
            return Err(Rejection::BadRequest("Framework cannot be found".into()));
        };
        let old_role = fw.offer_role();
        fw.info = info.clone();
        fw.suppressed_roles = u.suppressed_roles.into_iter().collect();
        if fw.offer_role() != old_role {
            let ids: Vec<(String, usize)> = self
                .offers
                .iter()
                .filter(|(_, o)| o.framework_id == framework_id)
                .map(|(id, o)| (id.clone(), o.agent))
                .collect();
            for (id, _) in ids {
                self.offers.remove(&id);
                let ev = Event {
                    rescind: Some(event::Rescind {
                        offer_id: util::offer_id(id),
                    }),
                    ..event(event::Type::Rescind)
                };
                self.send(framework_id, &ev);
            }
        }
        for a in &self.agents {
            let _ = a.tx.send(ToAgent::UpdateFramework {
                framework: info.clone(),
            });
        }
        self.allocate_soon = true;
        Ok(())
    }

    fn install_filter(
        &mut self,
        framework_id: &str,
        role: &str,
        agent: usize,
        refused: Resources,
        filters: Option<&v1::Filters>,
    ) {
        let Some(d) = allocator::filter_duration(
            filters.and_then(|f| f.refuse_seconds),
            self.config.allocation_interval,
        ) else {
            return;
        };
        if refused.is_empty() {
            return;
        }
        if let Some(fw) = self.frameworks.get_mut(framework_id) {
            fw.filters.insert(
                (role.to_string(), agent),
                RefuseFilter {
                    resources: refused,
                    expires: Instant::now() + d.min(MAX_TIMER),
                },
            );
        }
    }

    fn decline(&mut self, framework_id: &str, offer_ids: &[String], filters: Option<&v1::Filters>) {
        for id in offer_ids {
            let owned = self
                .offers
                .get(id)
                .is_some_and(|o| o.framework_id == framework_id);
            if !owned {
                continue;
            }
            if let Some(o) = self.offers.remove(id) {
                let role = o.role.clone();
                self.install_filter(framework_id, &role, o.agent, o.resources, filters);
            }
        }
    }

    fn revive(&mut self, framework_id: &str, roles: &[String]) {
        if let Some(fw) = self.frameworks.get_mut(framework_id) {
            if roles.is_empty() {
                fw.suppressed_roles.clear();
            } else {
                for r in roles {
                    fw.suppressed_roles.remove(r);
                }
            }
            fw.filters.clear();
        }
        self.allocate_soon = true;
    }

    fn suppress(&mut self, framework_id: &str, roles: &[String]) {
        if let Some(fw) = self.frameworks.get_mut(framework_id) {
            if roles.is_empty() {
                fw.suppressed_roles.extend(framework_roles(&fw.info));
            } else {
                fw.suppressed_roles.extend(roles.iter().cloned());
            }
        }
    }

    fn accept(&mut self, framework_id: &str, accept: call::Accept) {
        let offer_ids: Vec<String> = accept.offer_ids.iter().map(|o| o.value.clone()).collect();
        let pa = match self.frameworks.get(framework_id) {
            Some(fw) => fw.partition_aware(),
            None => return,
        };
        let checked = accept::check_offers(&offer_ids, framework_id, |id| {
            self.offers.get(id).map(|o| accept::OfferRef {
                framework_id: o.framework_id.clone(),
                agent: o.agent,
                role: o.role.clone(),
            })
        });
        let (agent, role) = match checked {
            Ok(checked) => checked,
            Err(e) => {
                warn!(framework_id, error = %e, "ACCEPT with invalid offers");
                // Still-valid offers of this framework named in the call are
                // discarded (their resources return to the allocator).
                for id in &offer_ids {
                    if self
                        .offers
                        .get(id)
                        .is_some_and(|o| o.framework_id == framework_id)
                    {
                        self.offers.remove(id);
                    }
                }
                for s in accept::invalid_offer_statuses(&accept.operations, pa, &e) {
                    self.forward_update(framework_id, s, false);
                }
                return;
            }
        };
        let mut offered = Resources::default();
        for id in &offer_ids {
            if let Some(o) = self.offers.remove(id) {
                offered.add(&o.resources);
            }
        }
        let agent_id = self.agent_id_of(agent);
        // What only reservations and volumes need: most ACCEPTs only launch,
        // and should not walk every task of the agent for it.
        let converts = accept.operations.iter().any(|o| {
            !matches!(
                o.r#type(),
                operation::Type::Launch | operation::Type::LaunchGroup | operation::Type::Unknown
            )
        });
        let (checkpointed, used) = match (converts, self.agent(agent)) {
            (true, Some(a)) => (a.total.checkpointed(), self.used_on(agent)),
            _ => Default::default(),
        };
        let (outcome, info) = {
            let Some(fw) = self.frameworks.get(framework_id) else {
                return;
            };
            let roles = framework_roles(&fw.info);
            let active: HashSet<String> = fw
                .tasks
                .keys()
                .chain(fw.unreachable_tasks.keys())
                .cloned()
                .collect();
            let executors: BTreeMap<String, v1::ExecutorInfo> = fw
                .executors
                .iter()
                .filter(|((a, _), _)| *a == agent)
                .map(|((_, id), e)| (id.clone(), e.info.clone()))
                .collect();
            let acls = self.config.security.as_ref().and_then(|s| s.acls.as_ref());
            let input = accept::AcceptInput {
                framework_id,
                agent_id: &agent_id,
                offered,
                active_task_ids: &active,
                executors: &executors,
                run_tasks: acls.map(|a| (a, &fw.info)),
                operations: operations::OperationContext {
                    principal: fw.info.principal.as_deref(),
                    roles: &roles,
                    allocation_role: &role,
                    refinement: fw.refinement(),
                    checkpointed: &checkpointed,
                    used: &used,
                },
            };
            (
                accept::plan_accept(&input, &accept.operations),
                fw.info.clone(),
            )
        };
        for ty in &outcome.ignored {
            info!(
                framework_id,
                operation = ty,
                "ignoring unsupported offer operation"
            );
        }
        for (ty, why) in &outcome.dropped {
            let name = operation::Type::try_from(*ty).map_or("UNKNOWN", |t| t.as_str_name());
            warn!(framework_id, agent, "Dropping {name} operation: {why}");
        }
        self.apply_conversions(agent, &outcome.conversions);
        for launch in outcome.launches {
            self.launch(framework_id, agent, &info, launch, &role);
        }
        for s in outcome.errors {
            warn!(framework_id, task_id = %s.task_id.value, message = s.message.as_deref().unwrap_or(""), "task invalid");
            self.forward_update(framework_id, s, false);
        }
        self.install_filter(
            framework_id,
            &role,
            agent,
            outcome.leftover,
            accept.filters.as_ref(),
        );
    }

    /// Applies RESERVE, UNRESERVE, CREATE and DESTROY to the agent's total
    /// and sends it its new reservations and volumes to checkpoint (before
    /// any launch of the same ACCEPT, which may use them).
    fn apply_conversions(&mut self, agent: usize, conversions: &[operations::Conversion]) {
        if conversions.is_empty() {
            return;
        }
        let Some(a) = self.agent_mut(agent) else {
            return;
        };
        for c in conversions {
            info!(
                agent,
                operation = c.kind.as_str_name(),
                "applying offer operation"
            );
            a.total.subtract(&c.consumed);
            a.total.add(&c.converted);
        }
        let resources = a.total.checkpointed().to_protos(None, Format::Post);
        self.to_agent(agent, ToAgent::CheckpointResources { resources });
    }

    fn launch(
        &mut self,
        framework_id: &str,
        agent: usize,
        info: &v1::FrameworkInfo,
        launch: accept::Launch,
        role: &str,
    ) {
        let Some(fw) = self.frameworks.get_mut(framework_id) else {
            return;
        };
        let new_task = |t: &v1::TaskInfo, resources: Resources, executor_id: Option<String>| Task {
            info: t.clone(),
            framework_id: framework_id.to_string(),
            executor_id,
            agent,
            state: TaskState::TaskStaging,
            status_update_state: None,
            status_update_uuid: None,
            statuses: Vec::new(),
            latest: None,
            resources,
            role: role.to_string(),
        };
        let msg = match launch {
            accept::Launch::Task {
                task,
                resources,
                new_executor,
            } => {
                info!(framework_id, task_id = %task.task_id.value, agent, "launching task");
                let executor_id = task.executor.as_ref().map(|e| e.executor_id.value.clone());
                fw.tasks.insert(
                    task.task_id.value.clone(),
                    new_task(&task, resources, executor_id),
                );
                if let Some((exec, resources)) = new_executor {
                    fw.executors.insert(
                        (agent, exec.executor_id.value.clone()),
                        ExecutorEntry {
                            info: exec,
                            resources,
                        },
                    );
                }
                ToAgent::RunTask {
                    framework: info.clone(),
                    task,
                }
            }
            accept::Launch::Group {
                executor,
                new_executor,
                tasks,
            } => {
                let exec_id = executor.executor_id.value.clone();
                for (t, r) in &tasks {
                    info!(framework_id, task_id = %t.task_id.value, agent, "launching task in group");
                    fw.tasks.insert(
                        t.task_id.value.clone(),
                        new_task(t, r.clone(), Some(exec_id.clone())),
                    );
                }
                if let Some(resources) = new_executor {
                    fw.executors.insert(
                        (agent, exec_id),
                        ExecutorEntry {
                            info: executor.clone(),
                            resources,
                        },
                    );
                }
                ToAgent::RunTaskGroup {
                    framework: info.clone(),
                    executor,
                    group: v1::TaskGroupInfo {
                        tasks: tasks.into_iter().map(|(t, _)| t).collect(),
                    },
                }
            }
        };
        self.to_agent(agent, msg);
    }

    fn kill(&mut self, framework_id: &str, kill: call::Kill) {
        let task_id = kill.task_id.value.clone();
        let found = self
            .frameworks
            .get(framework_id)
            .and_then(|fw| fw.tasks.get(&task_id))
            .map(|t| t.agent);
        match found {
            Some(agent) => {
                if let Some(asked) = &kill.agent_id
                    && asked.value != self.agent_id_of(agent)
                {
                    debug!(
                        framework_id,
                        task_id, "KILL with mismatched agent_id dropped"
                    );
                    return;
                }
                self.to_agent(
                    agent,
                    ToAgent::KillTask {
                        framework_id: framework_id.to_string(),
                        task_id,
                        kill_policy: kill.kill_policy,
                    },
                );
            }
            None => {
                let req = call::reconcile::Task {
                    task_id: kill.task_id,
                    agent_id: kill.agent_id,
                };
                self.reconcile(framework_id, &[req]);
            }
        }
    }

    fn acknowledge(&mut self, framework_id: &str, ack: call::Acknowledge) {
        let task_id = ack.task_id.value.clone();
        let agent = self.agent_index(&ack.agent_id.value);
        let Some(fw) = self.frameworks.get_mut(framework_id) else {
            return;
        };
        if let Some(task) = fw.tasks.get(&task_id)
            && Some(task.agent) == agent
            && task.status_update_uuid.as_deref() == Some(ack.uuid.as_slice())
            && task.status_update_state.is_some_and(is_terminal)
            && let Some(task) = fw.tasks.remove(&task_id)
        {
            debug!(
                framework_id,
                task_id, "terminal update acknowledged; task completed"
            );
            fw.complete(task);
        }
        if let Some(index) = agent {
            self.to_agent(
                index,
                ToAgent::Acknowledge {
                    framework_id: framework_id.to_string(),
                    task_id,
                    uuid: ack.uuid,
                },
            );
        }
    }

    fn agent_knowledge(&self, agent_id: &str) -> reconcile::AgentKnowledge {
        match self.agent_index(agent_id).and_then(|i| self.agent(i)) {
            None => reconcile::AgentKnowledge::Unknown,
            Some(a) => match &a.status {
                AgentStatus::Refused => reconcile::AgentKnowledge::Unknown,
                AgentStatus::Registering => reconcile::AgentKnowledge::Recovering,
                AgentStatus::Active | AgentStatus::Disconnected => {
                    reconcile::AgentKnowledge::Registered
                }
                AgentStatus::Unreachable(t) => reconcile::AgentKnowledge::Unreachable(*t),
            },
        }
    }

    fn reconcile(&mut self, framework_id: &str, tasks: &[call::reconcile::Task]) {
        let Some(fw) = self.frameworks.get(framework_id) else {
            return;
        };
        let pa = fw.partition_aware();
        let answers = if tasks.is_empty() {
            let known: Vec<reconcile::KnownTask> = fw
                .tasks
                .values()
                .map(|t| t.known(&self.agent_id_of(t.agent)))
                .collect();
            reconcile::implicit(pa, &known)
        } else {
            let requests: Vec<(String, Option<String>)> = tasks
                .iter()
                .map(|t| {
                    (
                        t.task_id.value.clone(),
                        t.agent_id.as_ref().map(|a| a.value.clone()),
                    )
                })
                .collect();
            let recovering = self
                .agents
                .iter()
                .any(|a| a.status == AgentStatus::Registering);
            reconcile::explicit(
                pa,
                &requests,
                |id| {
                    fw.tasks
                        .get(id)
                        .map(|t| t.known(&self.agent_id_of(t.agent)))
                },
                |agent_id| self.agent_knowledge(agent_id),
                recovering,
            )
        };
        for s in answers {
            self.forward_update(framework_id, s, false);
        }
    }

    // ----- allocation ---------------------------------------------------

    /// Resources used on each agent (index `i - 1`) and held by each
    /// framework (tasks with a non-terminal latest state, and executors).
    fn usage(&self) -> (Vec<Resources>, HashMap<String, Resources>) {
        let mut per_agent = vec![Resources::default(); self.agents.len()];
        let mut per_fw: HashMap<String, Resources> = HashMap::new();
        for fw in self.frameworks.values() {
            let held = per_fw.entry(fw.id.clone()).or_default();
            for t in fw.tasks.values().filter(|t| !is_terminal(t.state)) {
                if let Some(slot) = t.agent.checked_sub(1).and_then(|i| per_agent.get_mut(i)) {
                    slot.add(&t.resources);
                }
                held.add(&t.resources);
            }
            for ((agent, _), e) in &fw.executors {
                if let Some(slot) = agent.checked_sub(1).and_then(|i| per_agent.get_mut(i)) {
                    slot.add(&e.resources);
                }
                held.add(&e.resources);
            }
        }
        (per_agent, per_fw)
    }

    /// Resources used on agent `index`.
    pub fn used_on(&self, index: usize) -> Resources {
        let (per_agent, _) = self.usage();
        index
            .checked_sub(1)
            .and_then(|i| per_agent.into_iter().nth(i))
            .unwrap_or_default()
    }

    /// Resources offered on agent `index`.
    pub fn offered_on(&self, index: usize) -> Resources {
        let mut r = Resources::default();
        for o in self.offers.values().filter(|o| o.agent == index) {
            r.add(&o.resources);
        }
        r
    }

    /// Makes this round's offers.
    pub fn allocate(&mut self, now: Instant) {
        for fw in self.frameworks.values_mut() {
            fw.filters.retain(|_, f| f.expires > now);
        }
        let (used, mut held) = self.usage();
        let mut total = Resources::default();
        let mut slots = Vec::new();
        for (a, used) in self.agents.iter().zip(&used) {
            total.add(&a.total);
            if a.status != AgentStatus::Active {
                continue;
            }
            let mut available = a.total.minus(used);
            available.subtract(&self.offered_on(a.index));
            slots.push(allocator::AgentSlot {
                index: a.index,
                available,
            });
        }
        for o in self.offers.values() {
            held.entry(o.framework_id.clone())
                .or_default()
                .add(&o.resources);
        }
        let roles: Vec<(&Framework, String)> = self
            .frameworks
            .values()
            .filter(|fw| fw.active && fw.conn.is_some())
            // A multi-role framework is a candidate once per role, as
            // Mesos's allocator offers to each of its roles.
            .flat_map(|fw| framework_roles(&fw.info).into_iter().map(move |r| (fw, r)))
            .filter(|(fw, r)| !fw.suppressed_roles.contains(r))
            .collect();
        let mut candidates: Vec<allocator::Candidate<'_>> = roles
            .iter()
            .map(|(fw, role)| allocator::Candidate {
                framework_id: &fw.id,
                role,
                share: held
                    .get(&fw.id)
                    .map(|r| r.dominant_share(&total))
                    .unwrap_or(0.0),
                filters: &fw.filters,
                refinement: fw.refinement(),
            })
            .collect();
        let allocations = allocator::allocate(&slots, &mut candidates, &total, now);
        let mut by_fw: BTreeMap<String, Vec<v1::Offer>> = BTreeMap::new();
        for alloc in allocations {
            let offer_id = format!("{}-O{}", self.master_id, self.next_offer);
            self.next_offer += 1;
            let Some(fw) = self.frameworks.get(&alloc.framework_id) else {
                continue;
            };
            let Some(agent) = self.agent(alloc.agent) else {
                continue;
            };
            let executor_ids: Vec<String> = fw
                .executors
                .keys()
                .filter(|(a, _)| *a == alloc.agent)
                .map(|(_, id)| id.clone())
                .collect();
            let view = allocator::AgentView {
                agent_id: &agent.id,
                hostname: &agent.hostname,
                endpoint: agent.endpoint,
                attributes: &agent.attributes,
            };
            let multi = fw.multi_role().then_some(alloc.role.as_str());
            let offer = allocator::build_offer(
                &offer_id,
                &alloc.framework_id,
                &view,
                &alloc.resources,
                multi,
                fw.format(),
                executor_ids,
            );
            self.offers.insert(
                offer_id,
                OfferEntry {
                    framework_id: alloc.framework_id.clone(),
                    agent: alloc.agent,
                    resources: alloc.resources,
                    role: alloc.role.clone(),
                    offer: offer.clone(),
                },
            );
            by_fw.entry(alloc.framework_id).or_default().push(offer);
        }
        for (fw, offers) in by_fw {
            debug!(framework_id = %fw, count = offers.len(), "sending offers");
            let ev = Event {
                offers: Some(event::Offers { offers }),
                ..event(event::Type::Offers)
            };
            self.send(&fw, &ev);
        }
    }

    // ----- agents -------------------------------------------------------

    /// Handles a message from an agent.
    pub fn handle_agent_message(&mut self, msg: FromAgent) {
        match msg {
            FromAgent::Registered { index, report } => self.agent_registered(index, report),
            FromAgent::Disconnected { index } => self.agent_disconnected(index),
            FromAgent::StatusUpdate {
                index,
                framework_id,
                status,
                latest_state,
            } => self.status_update(index, &framework_id, status, latest_state),
            FromAgent::ExecutorExited {
                index,
                framework_id,
                executor_id,
                status,
            } => {
                let agent_id = self.agent_id_of(index);
                if let Some(fw) = self.frameworks.get_mut(&framework_id) {
                    fw.executors.remove(&(index, executor_id.clone()));
                    let ev = Event {
                        failure: Some(event::Failure {
                            agent_id: Some(util::agent_id(agent_id)),
                            executor_id: Some(util::executor_id(executor_id)),
                            status: Some(status),
                        }),
                        ..event(event::Type::Failure)
                    };
                    self.send(&framework_id, &ev);
                }
            }
            FromAgent::ExecutorMessage {
                index,
                framework_id,
                executor_id,
                data,
            } => {
                let ev = Event {
                    message: Some(event::Message {
                        agent_id: util::agent_id(self.agent_id_of(index)),
                        executor_id: util::executor_id(executor_id),
                        data,
                    }),
                    ..event(event::Type::Message)
                };
                self.send(&framework_id, &ev);
            }
        }
    }

    fn status_update(
        &mut self,
        index: usize,
        framework_id: &str,
        status: v1::TaskStatus,
        latest_state: TaskState,
    ) {
        let Some(fw) = self.frameworks.get_mut(framework_id) else {
            debug!(
                framework_id,
                "status update for an unknown framework dropped"
            );
            return;
        };
        let task_id = status.task_id.value.clone();
        if let Some(task) = fw.tasks.get_mut(&task_id) {
            task.state = latest_state;
            task.status_update_state = Some(util::state_of(&status));
            task.status_update_uuid = status.uuid.clone();
            task.record(&status);
        } else if !fw
            .completed_tasks
            .iter()
            .any(|t| t.info.task_id.value == task_id)
        {
            debug!(
                framework_id,
                task_id, index, "update for a task the master does not track"
            );
        }
        self.forward_update(framework_id, status, true);
    }

    fn agent_disconnected(&mut self, index: usize) {
        let after = self.config.agent_unreachable_timeout;
        let Some(a) = self.agent_mut(index) else {
            return;
        };
        if matches!(a.status, AgentStatus::Unreachable(_) | AgentStatus::Refused) {
            return;
        }
        info!(agent = index, "agent disconnected");
        a.status = AgentStatus::Disconnected;
        a.generation += 1;
        let generation = a.generation;
        self.rescind_offers_on(index);
        self.deferred.push(Deferred::AgentUnreachable {
            index,
            generation,
            after,
        });
    }

    /// The unreachable timer fired: tasks become TASK_UNREACHABLE (or
    /// TASK_LOST for frameworks that are not PARTITION_AWARE).
    pub fn agent_unreachable_expired(&mut self, index: usize, generation: u64) {
        let Some(a) = self.agent_mut(index) else {
            return;
        };
        if a.generation != generation || a.status != AgentStatus::Disconnected {
            return;
        }
        let when = time_now();
        a.status = AgentStatus::Unreachable(when);
        a.generation += 1;
        let agent_id = a.id.clone();
        info!(agent = index, "agent marked unreachable");
        self.rescind_offers_on(index);
        let fw_ids: Vec<String> = self.frameworks.keys().cloned().collect();
        for fid in fw_ids {
            let mut updates = Vec::new();
            {
                let Some(fw) = self.frameworks.get_mut(&fid) else {
                    continue;
                };
                let pa = fw.partition_aware();
                let on_agent: Vec<String> = fw
                    .tasks
                    .iter()
                    .filter(|(_, t)| t.agent == index)
                    .map(|(id, _)| id.clone())
                    .collect();
                for id in on_agent {
                    let Some(mut task) = fw.tasks.remove(&id) else {
                        continue;
                    };
                    if is_terminal(task.state) {
                        fw.complete(task);
                        continue;
                    }
                    let state = if pa {
                        TaskState::TaskUnreachable
                    } else {
                        TaskState::TaskLost
                    };
                    let mut s = util::with_reason(
                        util::status(
                            task.info.task_id.clone(),
                            state,
                            v1::task_status::Source::Master,
                        ),
                        Reason::AgentRemoved,
                        format!("Agent {agent_id} is unreachable"),
                    );
                    s.agent_id = Some(util::agent_id(&agent_id));
                    s.executor_id = task.executor_id.as_deref().map(util::executor_id);
                    s.unreachable_time = Some(when);
                    task.state = state;
                    task.record(&s);
                    if fw.unreachable_tasks.len() >= MAX_UNREACHABLE_TASKS
                        && let Some(oldest) = fw.unreachable_tasks.keys().next().cloned()
                    {
                        fw.unreachable_tasks.remove(&oldest);
                    }
                    fw.unreachable_tasks.insert(id, task);
                    updates.push(s);
                }
                fw.executors.retain(|(a, _), _| *a != index);
            }
            for s in updates {
                self.forward_update(&fid, s, false);
            }
            let ev = Event {
                failure: Some(event::Failure {
                    agent_id: Some(util::agent_id(&agent_id)),
                    ..Default::default()
                }),
                ..event(event::Type::Failure)
            };
            if self.is_connected(&fid) {
                self.send(&fid, &ev);
            }
        }
    }

    /// `Some(refusal)` when `--acls` (`register_agents`) do not let agent
    /// `index` (which has no principal) register: Mesos's
    /// `Master::_registerSlave` (`_reregisterSlave` for an agent admitted
    /// before) log line.
    fn agent_refusal(&self, index: usize) -> Option<String> {
        let acls = self.config.security.as_ref()?.acls.as_ref()?;
        if acl::may_register_agent(acls, None) {
            return None;
        }
        let a = self.agent(index)?;
        let pid = format!("slave(1)@{}", a.endpoint);
        let resources = mesos_resources_text(&a.total);
        Some(if a.registered_time.is_some() {
            format!(
                "Refusing re-registration of agent {} at {pid} ({}): {}",
                a.id,
                a.hostname,
                acl::agent_refusal(&resources, None, true)
            )
        } else {
            format!(
                "Refusing registration of agent at {pid} ({}): {}",
                a.hostname,
                acl::agent_refusal(&resources, None, false)
            )
        })
    }

    fn agent_registered(&mut self, index: usize, report: AgentReport) {
        let now = util::now_timestamp();
        if let Some(refusal) = self.agent_refusal(index) {
            warn!("{refusal}");
            self.rescind_offers_on(index);
            if let Some(a) = self.agent_mut(index) {
                a.status = AgentStatus::Refused;
                a.generation += 1;
            }
            return;
        }
        let Some(a) = self.agent_mut(index) else {
            return;
        };
        let first = a.registered_time.is_none();
        if first {
            a.registered_time = Some(now);
        } else {
            a.reregistered_time = Some(now);
        }
        a.status = AgentStatus::Active;
        a.generation += 1;
        // Its checkpointed reservations and volumes, as a Mesos agent sends
        // them when it (re)registers.
        a.total = Resources::with_checkpointed(&a.total, &report.checkpointed);
        let agent_id = a.id.clone();
        info!(agent = index, first, "agent registered");

        for info in report.frameworks {
            let Some(id) = info.id.as_ref().map(|i| i.value.clone()) else {
                continue;
            };
            if self.removed_ids.contains(&id) {
                self.to_agent(index, ToAgent::ShutdownFramework { framework_id: id });
                continue;
            }
            self.frameworks.entry(id.clone()).or_insert_with(|| {
                let mut fw = Framework::new(id, info, now);
                fw.recovered = true;
                fw
            });
        }
        for (fid, exec) in report.executors {
            if let Some(fw) = self.frameworks.get_mut(&fid) {
                let resources = Resources::from_protos(&exec.resources).unwrap_or_default();
                fw.executors
                    .entry((index, exec.executor_id.value.clone()))
                    .or_insert(ExecutorEntry {
                        info: exec,
                        resources,
                    });
            }
        }
        for rt in report.tasks {
            let mut resurrected = None;
            let Some(fw) = self.frameworks.get_mut(&rt.framework_id) else {
                continue;
            };
            let id = rt.info.task_id.value.clone();
            if let Some(mut task) = fw.unreachable_tasks.remove(&id) {
                task.state = rt.state;
                task.agent = index;
                let mut s = rt.latest.clone().unwrap_or_else(|| {
                    util::status(
                        rt.info.task_id.clone(),
                        rt.state,
                        v1::task_status::Source::Master,
                    )
                });
                s.state = rt.state as i32;
                s.source = Some(v1::task_status::Source::Master as i32);
                s.reason = Some(Reason::AgentReregistered as i32);
                s.message = Some(format!("Agent {agent_id} reregistered"));
                s.uuid = None;
                s.data = None;
                s.unreachable_time = None;
                s.timestamp = Some(util::now_timestamp());
                s.agent_id = Some(util::agent_id(&agent_id));
                task.record(&s);
                fw.tasks.insert(id, task);
                resurrected = Some(s);
            } else if let Some(task) = fw.tasks.get_mut(&id) {
                task.state = rt.state;
                if let Some((state, uuid)) = rt.pending {
                    task.status_update_state = Some(state);
                    task.status_update_uuid = Some(uuid);
                }
            } else {
                let resources = Resources::from_protos(&rt.info.resources).unwrap_or_default();
                let mut task = Task {
                    info: rt.info.clone(),
                    framework_id: rt.framework_id.clone(),
                    executor_id: rt.executor_id.clone(),
                    agent: index,
                    state: rt.state,
                    status_update_state: rt.pending.as_ref().map(|p| p.0),
                    status_update_uuid: rt.pending.as_ref().map(|p| p.1.clone()),
                    statuses: Vec::new(),
                    latest: None,
                    resources,
                    role: fw.offer_role().unwrap_or_else(|| "*".into()),
                };
                if let Some(latest) = &rt.latest {
                    task.record(latest);
                }
                fw.tasks.insert(id, task);
            }
            if let Some(s) = resurrected {
                let fid = rt.framework_id.clone();
                self.forward_update(&fid, s, false);
            }
        }
    }

    // ----- faults -------------------------------------------------------

    /// Closes every SUBSCRIBE stream (frameworks disconnect).
    pub fn cut_streams(&mut self) {
        let ids: Vec<String> = self
            .frameworks
            .iter()
            .filter(|(_, f)| f.conn.is_some())
            .map(|(id, _)| id.clone())
            .collect();
        for id in ids {
            self.disconnect(&id);
        }
    }

    /// A new master takes over: streams close, stream ids and offers are
    /// forgotten, frameworks must re-SUBSCRIBE; frameworks with tasks are
    /// kept as "recovered" (as the agents would report them), the rest and
    /// completed ones are forgotten; agents reregister at once.
    pub fn restart(&mut self) {
        let new_id = uuid::Uuid::new_v4().to_string();
        info!(old = %self.master_id, new = %new_id, "simulating master failover");
        self.master_id = new_id;
        self.elected_time = util::now_timestamp();
        self.next_framework = 0;
        self.offers.clear();
        self.completed_frameworks.clear();
        self.removed_ids.clear();
        for fw in self.frameworks.values_mut() {
            if let Some(conn) = fw.conn.take() {
                conn.close();
            }
            fw.active = false;
            fw.recovered = true;
            fw.failover_generation += 1;
            fw.filters.clear();
            fw.suppressed_roles.clear();
            fw.completed_tasks.clear();
            fw.unreachable_tasks.clear();
            fw.tasks
                .retain(|_, t| !is_terminal(t.state) || t.status_update_state.is_some());
        }
        self.frameworks
            .retain(|_, fw| !fw.tasks.is_empty() || !fw.executors.is_empty());
        for a in &mut self.agents {
            if a.status == AgentStatus::Active {
                a.status = AgentStatus::Registering;
                a.generation += 1;
                let _ = a.tx.send(ToAgent::Reregister);
            }
        }
    }

    /// Closes every stream for shutdown; calls get 503 from now on.
    pub fn close_all(&mut self) {
        self.closing = true;
        for fw in self.frameworks.values_mut() {
            if let Some(conn) = fw.conn.take() {
                conn.close();
            }
            fw.active = false;
        }
    }
}

impl Master {
    /// A master over `state`.
    pub fn new(config: Arc<ClusterConfig>, scope: Scope, state: MasterState) -> Arc<Master> {
        let paused = state.paused.clone();
        Arc::new(Master {
            config,
            scope,
            state: Mutex::new(state),
            paused,
            allocate_now: Notify::new(),
        })
    }

    /// The state, for reading. Poisoning is ignored: every mutation leaves
    /// the state consistent between statements that can panic.
    pub fn lock(&self) -> MutexGuard<'_, MasterState> {
        self.state.lock().unwrap_or_else(|e| e.into_inner())
    }

    /// Runs `f` under the lock, then spawns what it deferred.
    pub fn with_state<R>(self: &Arc<Self>, f: impl FnOnce(&mut MasterState) -> R) -> R {
        let (r, deferred, allocate) = {
            let mut st = self.lock();
            let r = f(&mut st);
            let allocate = std::mem::take(&mut st.allocate_soon);
            (r, std::mem::take(&mut st.deferred), allocate)
        };
        for d in deferred {
            self.spawn_deferred(d);
        }
        if allocate {
            self.allocate_now.notify_one();
        }
        r
    }

    fn spawn_deferred(self: &Arc<Self>, d: Deferred) {
        let master = self.clone();
        match d {
            Deferred::Failover {
                framework_id,
                generation,
                after,
            } => self.scope.spawn(async move {
                tokio::time::sleep(after).await;
                master.with_state(|st| st.failover_expired(&framework_id, generation));
            }),
            Deferred::AgentUnreachable {
                index,
                generation,
                after,
            } => self.scope.spawn(async move {
                tokio::time::sleep(after).await;
                master.with_state(|st| st.agent_unreachable_expired(index, generation));
            }),
            Deferred::Connection {
                framework_id,
                conn_id,
                tx,
                heartbeat,
                cancel,
            } => {
                let interval = self.config.heartbeat_interval;
                self.scope.spawn(async move {
                    let start = tokio::time::Instant::now() + interval;
                    let mut ticker = tokio::time::interval_at(start, interval);
                    ticker.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
                    loop {
                        tokio::select! {
                            _ = cancel.cancelled() => return,
                            _ = tx.closed() => break,
                            _ = ticker.tick() => {
                                if master.paused.load(Ordering::Relaxed) {
                                    continue;
                                }
                                if tx.push(heartbeat.clone()).is_err() {
                                    break;
                                }
                            }
                        }
                    }
                    drop(tx);
                    master.with_state(|st| st.connection_closed(&framework_id, conn_id));
                });
            }
        }
    }

    /// The allocation loop: every interval, and soon after a SUBSCRIBE or
    /// REVIVE.
    pub async fn run_allocator(self: Arc<Self>) {
        let mut ticker = tokio::time::interval(self.config.allocation_interval);
        ticker.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
        loop {
            tokio::select! {
                _ = ticker.tick() => {}
                _ = self.allocate_now.notified() => {}
            }
            self.with_state(|st| st.allocate(Instant::now()));
        }
    }

    /// Handles agent messages in order.
    pub async fn run_inbox(self: Arc<Self>, mut rx: mpsc::UnboundedReceiver<FromAgent>) {
        while let Some(msg) = rx.recv().await {
            self.with_state(|st| st.handle_agent_message(msg));
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn state_with_agents(n: usize) -> (MasterState, Vec<mpsc::UnboundedReceiver<ToAgent>>) {
        state_with_config(n, ClusterConfig::default())
    }

    fn state_with_config(
        n: usize,
        config: ClusterConfig,
    ) -> (MasterState, Vec<mpsc::UnboundedReceiver<ToAgent>>) {
        let config = Arc::new(config);
        let mut agents = Vec::new();
        let mut rxs = Vec::new();
        for i in 1..=n {
            let (tx, rx) = mpsc::unbounded_channel();
            rxs.push(rx);
            agents.push(AgentEntry {
                index: i,
                id: format!("m-S{i}"),
                hostname: format!("127.0.0.{i}"),
                endpoint: format!("127.0.0.{i}:5051").parse().unwrap(),
                attributes: vec![],
                total: Resources::agent(4.0, 4096.0, 1000.0, config.agent_ports(i)),
                status: AgentStatus::Active,
                generation: 0,
                registered_time: Some(0.0),
                reregistered_time: None,
                tx,
            });
        }
        let st = MasterState::new(
            config,
            "127.0.0.1:5050".parse().unwrap(),
            agents,
            "m".into(),
            Arc::new(AtomicBool::new(false)),
        );
        (st, rxs)
    }

    fn subscribe_call(id: Option<&str>, failover: f64) -> Call {
        Call {
            r#type: Some(call::Type::Subscribe as i32),
            framework_id: id.map(util::framework_id),
            subscribe: Some(call::Subscribe {
                framework_info: v1::FrameworkInfo {
                    user: "u".into(),
                    name: "n".into(),
                    id: id.map(util::framework_id),
                    failover_timeout: Some(failover),
                    ..Default::default()
                },
                ..Default::default()
            }),
            ..Default::default()
        }
    }

    fn drain(rx: &mut Inbox) -> Vec<Event> {
        let mut out = Vec::new();
        let mut d = mesos_proto::recordio::Decoder::default();
        while let Some(b) = rx.try_recv() {
            d.feed(&b);
        }
        while let Ok(Some(r)) = d.next_record() {
            out.push(Encoding::Json.decode::<Event>(&r).unwrap());
        }
        out
    }

    fn types(events: &[Event]) -> Vec<event::Type> {
        events.iter().map(|e| e.r#type()).collect()
    }

    #[test]
    fn subscribe_ids_failover_and_removed_ids() {
        let (mut st, _rxs) = state_with_agents(1);
        let Ok(Subscribed::Stream { mut rx, stream_id }) =
            st.subscribe(&subscribe_call(None, 60.0), Encoding::Json)
        else {
            panic!("refused");
        };
        let evs = drain(&mut rx);
        assert_eq!(
            types(&evs),
            vec![event::Type::Subscribed, event::Type::Heartbeat]
        );
        assert_eq!(
            evs[0].subscribed.as_ref().unwrap().framework_id.value,
            "m-0000"
        );

        // Failover: ERROR on the old stream, which then ends.
        let Ok(Subscribed::Stream {
            rx: mut rx2,
            stream_id: s2,
        }) = st.subscribe(&subscribe_call(Some("m-0000"), 60.0), Encoding::Json)
        else {
            panic!("refused");
        };
        assert_ne!(stream_id, s2);
        let old = drain(&mut rx);
        assert_eq!(types(&old), vec![event::Type::Error]);
        assert_eq!(
            old[0].error.as_ref().unwrap().message,
            "Framework failed over"
        );
        assert_eq!(
            types(&drain(&mut rx2)),
            vec![event::Type::Subscribed, event::Type::Heartbeat]
        );

        // Old stream id: 400; missing: 400; right one: 202.
        let teardown = Call {
            r#type: Some(call::Type::Revive as i32),
            framework_id: Some(util::framework_id("m-0000")),
            ..Default::default()
        };
        assert!(matches!(
            st.call(teardown.clone(), call::Type::Revive, Some(&stream_id), None),
            Err(Rejection::BadRequest(_))
        ));
        assert!(matches!(
            st.call(teardown.clone(), call::Type::Revive, None, None),
            Err(Rejection::BadRequest(_))
        ));
        assert_eq!(
            st.call(teardown.clone(), call::Type::Revive, Some(&s2), None),
            Ok(StatusCode::ACCEPTED)
        );

        // Disconnected: 403; the failover timer is armed.
        st.disconnect("m-0000");
        assert!(matches!(
            st.call(teardown.clone(), call::Type::Revive, Some(&s2), None),
            Err(Rejection::Forbidden(_))
        ));
        assert!(matches!(
            st.deferred.last(),
            Some(Deferred::Failover { .. })
        ));
        let generation = st.frameworks["m-0000"].failover_generation;
        st.failover_expired("m-0000", generation);
        assert!(matches!(
            st.call(teardown, call::Type::Revive, Some(&s2), None),
            Err(Rejection::BadRequest(_))
        ));
        assert!(matches!(
            st.subscribe(&subscribe_call(Some("m-0000"), 60.0), Encoding::Json),
            Ok(Subscribed::Refused { .. })
        ));
    }

    #[test]
    fn a_subscriber_that_stops_reading_is_disconnected_not_waited_for() {
        let (mut st, _rxs) = state_with_agents(1);
        let Ok(Subscribed::Stream { rx: _unread, .. }) =
            st.subscribe(&subscribe_call(None, 60.0), Encoding::Protobuf)
        else {
            panic!("refused");
        };
        let big = Event {
            message: Some(event::Message {
                agent_id: util::agent_id("m-S1"),
                executor_id: util::executor_id("e"),
                data: vec![0; 1 << 20],
            }),
            ..event(event::Type::Message)
        };
        let mut sent = 0;
        while st.send("m-0000", &big) {
            sent += 1;
            assert!(sent <= wire::STREAM_BACKLOG >> 20, "never refused");
        }
        assert!(!st.is_connected("m-0000"));
        assert!(!st.frameworks["m-0000"].active);
        // Disconnected, not removed: the failover timer runs.
        assert!(matches!(
            st.deferred.last(),
            Some(Deferred::Failover { .. })
        ));
    }

    #[test]
    fn calls_during_shutdown_get_503() {
        let (mut st, _rxs) = state_with_agents(1);
        let Ok(Subscribed::Stream { mut rx, stream_id }) =
            st.subscribe(&subscribe_call(None, 60.0), Encoding::Json)
        else {
            panic!("refused");
        };
        st.close_all();
        let revive = Call {
            r#type: Some(call::Type::Revive as i32),
            framework_id: Some(util::framework_id("m-0000")),
            ..Default::default()
        };
        fn unavailable<T>(r: &Result<T, Rejection>) -> bool {
            matches!(r, Err(e) if e.status() == StatusCode::SERVICE_UNAVAILABLE)
        }
        assert!(unavailable(&st.call(
            revive,
            call::Type::Revive,
            Some(&stream_id),
            None
        )));
        assert!(unavailable(
            &st.subscribe(&subscribe_call(None, 60.0), Encoding::Json)
        ));
        // The stream was closed: what was queued, then its end.
        assert_eq!(
            types(&drain(&mut rx)),
            vec![event::Type::Subscribed, event::Type::Heartbeat]
        );
        assert!(!st.is_connected("m-0000"));
    }

    #[tokio::test(start_paused = true)]
    async fn heartbeats_come_every_interval_and_not_while_paused() {
        let (st, _rxs) = state_with_agents(1);
        let config = Arc::new(ClusterConfig::default());
        let interval = config.heartbeat_interval;
        let master = Master::new(config, Scope::new(), st);
        let Ok(Subscribed::Stream { mut rx, .. }) =
            master.with_state(|st| st.subscribe(&subscribe_call(None, 60.0), Encoding::Json))
        else {
            panic!("refused");
        };
        // SUBSCRIBED and an immediate HEARTBEAT, then one per interval.
        assert_eq!(
            types(&drain(&mut rx)),
            vec![event::Type::Subscribed, event::Type::Heartbeat]
        );
        let just_after = |n: u32| interval * n + Duration::from_millis(1);
        tokio::time::sleep(just_after(3)).await;
        assert_eq!(types(&drain(&mut rx)), vec![event::Type::Heartbeat; 3]);
        master.paused.store(true, Ordering::Relaxed);
        tokio::time::sleep(interval * 10).await;
        assert!(drain(&mut rx).is_empty());
        master.paused.store(false, Ordering::Relaxed);
        tokio::time::sleep(interval).await;
        assert_eq!(types(&drain(&mut rx)), vec![event::Type::Heartbeat]);
        master.scope.token.cancel();
    }

    #[test]
    fn offers_go_out_per_agent_and_decline_filters_then_revive() {
        let (mut st, _rxs) = state_with_agents(3);
        let Ok(Subscribed::Stream { mut rx, stream_id }) =
            st.subscribe(&subscribe_call(None, 0.0), Encoding::Json)
        else {
            panic!()
        };
        drain(&mut rx);
        let now = Instant::now();
        st.allocate(now);
        let evs = drain(&mut rx);
        let offers = evs[0].offers.as_ref().unwrap().offers.clone();
        assert_eq!(offers.len(), 3);
        // Outstanding offers are not offered again.
        st.allocate(now);
        assert!(drain(&mut rx).is_empty());
        let decline = Call {
            r#type: Some(call::Type::Decline as i32),
            framework_id: Some(util::framework_id("m-0000")),
            decline: Some(call::Decline {
                offer_ids: offers.iter().map(|o| o.id.clone()).collect(),
                filters: Some(v1::Filters {
                    refuse_seconds: Some(3600.0),
                }),
            }),
            ..Default::default()
        };
        assert_eq!(
            st.call(decline, call::Type::Decline, Some(&stream_id), None),
            Ok(StatusCode::ACCEPTED)
        );
        st.allocate(now);
        assert!(drain(&mut rx).is_empty(), "filtered");
        st.revive("m-0000", &[]);
        st.allocate(now);
        assert_eq!(drain(&mut rx)[0].offers.as_ref().unwrap().offers.len(), 3);
        // Suppressed: nothing more even after the offers are declined.
        st.suppress("m-0000", &[]);
        let ids: Vec<String> = st.offers.keys().cloned().collect();
        st.decline(
            "m-0000",
            &ids,
            Some(&v1::Filters {
                refuse_seconds: Some(0.0),
            }),
        );
        st.allocate(now);
        assert!(drain(&mut rx).is_empty());
    }

    #[test]
    fn unreachable_agent_loses_tasks_and_comes_back() {
        let (mut st, _rxs) = state_with_agents(1);
        let mut call = subscribe_call(None, 60.0);
        call.subscribe.as_mut().unwrap().framework_info.capabilities =
            vec![v1::framework_info::Capability {
                r#type: Some(capability::Type::PartitionAware as i32),
            }];
        let Ok(Subscribed::Stream { mut rx, .. }) = st.subscribe(&call, Encoding::Json) else {
            panic!()
        };
        st.allocate(Instant::now());
        let evs = drain(&mut rx);
        let offer = evs.iter().find_map(|e| e.offers.clone()).unwrap().offers[0].clone();
        let task = v1::TaskInfo {
            name: "t".into(),
            task_id: util::task_id("t1"),
            agent_id: offer.agent_id.clone(),
            resources: vec![util::scalar_resource("cpus", 1.0)],
            command: Some(v1::CommandInfo::default()),
            ..Default::default()
        };
        st.accept(
            "m-0000",
            call::Accept {
                offer_ids: vec![offer.id.clone()],
                operations: vec![v1::offer::Operation {
                    r#type: Some(v1::offer::operation::Type::Launch as i32),
                    launch: Some(v1::offer::operation::Launch {
                        task_infos: vec![task.clone()],
                    }),
                    ..Default::default()
                }],
                filters: None,
            },
        );
        assert_eq!(
            st.frameworks["m-0000"].tasks["t1"].state,
            TaskState::TaskStaging
        );
        assert_eq!(st.used_on(1).scalar("cpus"), 1.0);
        st.agent_disconnected(1);
        let generation = st.agents[0].generation;
        st.agent_unreachable_expired(1, generation);
        let evs = drain(&mut rx);
        let upd = evs.iter().find_map(|e| e.update.clone()).unwrap().status;
        assert_eq!(upd.state(), TaskState::TaskUnreachable);
        assert_eq!(upd.reason(), Reason::AgentRemoved);
        assert!(upd.unreachable_time.is_some() && upd.uuid.is_none());
        assert!(st.frameworks["m-0000"].unreachable_tasks.contains_key("t1"));

        st.agent_registered(
            1,
            AgentReport {
                frameworks: vec![],
                executors: vec![],
                tasks: vec![crate::messages::ReportedTask {
                    framework_id: "m-0000".into(),
                    info: task,
                    executor_id: None,
                    state: TaskState::TaskRunning,
                    latest: None,
                    pending: None,
                }],
                checkpointed: Resources::default(),
            },
        );
        let evs = drain(&mut rx);
        let upd = evs.iter().find_map(|e| e.update.clone()).unwrap().status;
        assert_eq!(upd.state(), TaskState::TaskRunning);
        assert_eq!(upd.reason(), Reason::AgentReregistered);
        assert!(st.frameworks["m-0000"].tasks.contains_key("t1"));
    }

    fn with_acls(json: &str) -> ClusterConfig {
        ClusterConfig {
            security: Some(crate::SecurityConfig {
                acls: Some(acl::Acls::parse(json).unwrap()),
                ..Default::default()
            }),
            ..Default::default()
        }
    }

    #[test]
    fn resources_print_as_mesos_stringifies_an_agents() {
        let mut r = Resources::agent(4.0, 4096.0, 4096.0, (31000, 31099));
        assert_eq!(
            mesos_resources_text(&r),
            "cpus:4; mem:4096; disk:4096; ports:[31000-31099]"
        );
        r.scalars.insert("gpus".into(), 1.0);
        r.scalars.insert("cpus".into(), 0.5);
        r.scalars.insert("bandwidth".into(), 10.0);
        r.ranges.insert("ports".into(), vec![(1, 2), (5, 9)]);
        r.sets
            .insert("zones".into(), ["b".to_string(), "a".to_string()].into());
        assert_eq!(
            mesos_resources_text(&r),
            "cpus:0.5; gpus:1; mem:4096; disk:4096; bandwidth:10; ports:[1-2, 5-9]; zones:{a, b}"
        );
    }

    #[test]
    fn register_agents_refuses_agents_without_a_principal() {
        let unregistered = |st: &mut MasterState| {
            for a in &mut st.agents {
                a.status = AgentStatus::Registering;
                a.registered_time = None;
            }
        };
        // Not permissive, no register_agents rule: refused, as a real master.
        let (mut st, _rx) = state_with_config(
            2,
            with_acls(
                r#"{"permissive":false,"register_frameworks":[
                    {"principals":{"type":"ANY"},"roles":{"type":"ANY"}}]}"#,
            ),
        );
        unregistered(&mut st);
        let ports = st.config.agent_ports(1);
        assert_eq!(
            st.agent_refusal(1).unwrap(),
            format!(
                "Refusing registration of agent at slave(1)@127.0.0.1:5051 (127.0.0.1): Not \
                 authorized to register agent providing resources 'cpus:4; mem:4096; \
                 disk:1000; ports:[{}-{}]' without a principal",
                ports.0, ports.1
            )
        );
        for index in [1, 2] {
            st.handle_agent_message(FromAgent::Registered {
                index,
                report: AgentReport::default(),
            });
        }
        assert!(st.agents.iter().all(|a| a.status == AgentStatus::Refused));
        assert!(st.agents.iter().all(|a| a.registered_time.is_none()));
        // A refused agent going down is not an agent becoming unreachable.
        st.handle_agent_message(FromAgent::Disconnected { index: 1 });
        assert_eq!(st.agents[0].status, AgentStatus::Refused);
        assert!(st.deferred.is_empty());
        assert_eq!(
            st.agent_knowledge("m-S1"),
            reconcile::AgentKnowledge::Unknown
        );
        let json = crate::state_json::render(&st);
        assert_eq!(json["slaves"], serde_json::json!([]));
        assert_eq!(json["activated_slaves"], 0);
        assert_eq!(json["deactivated_slaves"], 0);
        st.allocate(Instant::now());
        assert!(st.offers.is_empty());
        // An agent admitted before would be refused re-registration.
        st.agents[1].registered_time = Some(1.0);
        assert!(
            st.agent_refusal(2)
                .unwrap()
                .starts_with("Refusing re-registration of agent m-S2 at slave(1)@127.0.0.2:5051 (127.0.0.2): Not authorized to reregister agent")
        );

        // An ANY/ANY register_agents rule, no ACLs, or permissive: admitted.
        for config in [
            with_acls(
                r#"{"permissive":false,"register_agents":[
                    {"principals":{"type":"ANY"},"agents":{"type":"ANY"}}]}"#,
            ),
            with_acls(r#"{"register_frameworks":[]}"#),
            ClusterConfig::default(),
        ] {
            let (mut st, _rx) = state_with_config(1, config);
            unregistered(&mut st);
            assert_eq!(st.agent_refusal(1), None);
            st.handle_agent_message(FromAgent::Registered {
                index: 1,
                report: AgentReport::default(),
            });
            assert_eq!(st.agents[0].status, AgentStatus::Active);
        }
    }

    #[test]
    fn master_state_shows_a_reader_what_the_view_acls_grant() {
        let (mut st, _rx) = state_with_config(
            1,
            with_acls(
                r#"{"permissive":false,
                "view_frameworks":[{"principals":{"type":"ANY"},"users":{"type":"ANY"}}],
                "view_tasks":[{"principals":{"values":["ops"]},"users":{"values":["app"]}}],
                "view_executors":[{"principals":{"values":["ops"]},"users":{"values":["exec"]}}]}"#,
            ),
        );
        let fw_info = |name: &str, user: &str| v1::FrameworkInfo {
            user: user.into(),
            name: name.into(),
            id: Some(util::framework_id(name)),
            ..Default::default()
        };
        let mut fw = Framework::new("f1".into(), fw_info("f1", "root"), 0.0);
        let task = |id: &str, user: Option<&str>| Task {
            info: v1::TaskInfo {
                name: id.into(),
                task_id: util::task_id(id),
                command: Some(v1::CommandInfo {
                    user: user.map(Into::into),
                    ..Default::default()
                }),
                ..Default::default()
            },
            framework_id: "f1".into(),
            executor_id: None,
            agent: 1,
            state: TaskState::TaskRunning,
            status_update_state: None,
            status_update_uuid: None,
            statuses: Vec::new(),
            latest: None,
            resources: Resources::default(),
            role: "*".into(),
        };
        fw.tasks
            .insert("as-app".into(), task("as-app", Some("app")));
        fw.tasks.insert("as-root".into(), task("as-root", None));
        fw.completed_tasks
            .push_back(task("done-as-app", Some("app")));
        for (id, user) in [("e-exec", Some("exec")), ("e-root", None)] {
            fw.executors.insert(
                (1, id.into()),
                ExecutorEntry {
                    info: v1::ExecutorInfo {
                        executor_id: util::executor_id(id),
                        command: Some(v1::CommandInfo {
                            user: user.map(Into::into),
                            ..Default::default()
                        }),
                        ..Default::default()
                    },
                    resources: Resources::default(),
                },
            );
        }
        st.frameworks.insert("f1".into(), fw);
        let ids = |v: &serde_json::Value, key: &str, field: &str| -> Vec<String> {
            v["frameworks"][0][key]
                .as_array()
                .unwrap()
                .iter()
                .map(|t| t[field].as_str().unwrap_or("{}").to_string())
                .collect()
        };
        let ops = crate::state_json::render_for(&st, Some("ops"));
        assert_eq!(ids(&ops, "tasks", "id"), ["as-app"]);
        assert_eq!(ids(&ops, "completed_tasks", "id"), ["done-as-app"]);
        // As Mesos's writer: a hidden executor is an empty object.
        assert_eq!(ids(&ops, "executors", "executor_id"), ["e-exec", "{}"]);
        assert_eq!(ops["frameworks"][0]["executors"][1], serde_json::json!({}));
        // An anonymous reader: the framework (ANY rule), nothing in it.
        let anonymous = crate::state_json::render_for(&st, None);
        assert_eq!(anonymous["frameworks"][0]["id"], "f1");
        assert_eq!(ids(&anonymous, "tasks", "id"), Vec::<String>::new());
        assert_eq!(ids(&anonymous, "executors", "executor_id"), ["{}", "{}"]);
        // The unfiltered document (LocalCluster::state) has everything.
        let full = crate::state_json::render(&st);
        assert_eq!(ids(&full, "tasks", "id"), ["as-app", "as-root"]);
        assert_eq!(ids(&full, "executors", "executor_id"), ["e-exec", "e-root"]);
        // No --acls: an HTTP reader sees everything too.
        let (mut open, _rx) = state_with_agents(1);
        let fw = st.frameworks.remove("f1").unwrap();
        open.frameworks.insert("f1".into(), fw);
        assert_eq!(
            crate::state_json::render_for(&open, None),
            crate::state_json::render(&open)
        );
    }
}

#[cfg(test)]
mod status_history_tests {
    use super::*;

    fn status(state: TaskState, healthy: Option<bool>) -> v1::TaskStatus {
        v1::TaskStatus {
            state: state as i32,
            healthy,
            ..Default::default()
        }
    }

    /// A real master keeps one status per state change: a health update
    /// of a running task replaces the running one (found by the `pod`
    /// scenario of scripts/real-mesos-conformance.sh).
    #[test]
    fn an_update_of_the_same_state_replaces_the_last_status() {
        let mut task = Task {
            info: v1::TaskInfo::default(),
            framework_id: "fw".into(),
            executor_id: None,
            agent: 1,
            state: TaskState::TaskStaging,
            status_update_state: None,
            status_update_uuid: None,
            statuses: Vec::new(),
            latest: None,
            resources: Resources::default(),
            role: "*".into(),
        };
        task.record(&status(TaskState::TaskStarting, None));
        task.record(&status(TaskState::TaskRunning, None));
        task.record(&status(TaskState::TaskRunning, Some(true)));
        let history: Vec<(i32, Option<bool>)> =
            task.statuses.iter().map(|s| (s.state, s.healthy)).collect();
        assert_eq!(
            history,
            [
                (TaskState::TaskStarting as i32, None),
                (TaskState::TaskRunning as i32, Some(true))
            ]
        );
    }
}
