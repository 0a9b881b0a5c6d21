//! An agent: the v1 executor API on `127.0.0.<i>`, executors in
//! containers (sessions), and the reliable per-task status-update streams.
//!
//! # Concurrency
//!
//! As in the master, all state is one [`AgentState`] behind a
//! `std::sync::Mutex` that is never held across an await. Outputs are
//! non-blocking: pushes on executor streams (whose backlog is bounded),
//! unbounded sends to the master. Anything to spawn (a container launch, a
//! timer, a stream's watcher, a container's destruction, which scans
//! `/proc` and may take a while) is queued in [`AgentState::deferred`] and
//! spawned by [`Agent::with_state`] once the lock is released.
//!
//! A stopped agent keeps its state (as if checkpointed): its server is down,
//! executor streams are closed, messages from the master wait in the inbox,
//! status-update retries pause, and executor exits are remembered until it
//! starts again.

pub(crate) mod checkpoint;
pub(crate) mod containers;
pub(crate) mod files;
pub(crate) mod http;
pub mod isolation;
pub(crate) mod sandboxes;
pub(crate) mod state_json;
pub(crate) mod status_updates;
pub(crate) mod volumes;

use std::collections::{BTreeMap, HashSet};
use std::net::SocketAddr;
use std::path::PathBuf;
use std::sync::{Arc, Mutex, MutexGuard};
use std::time::Duration;

use bytes::Bytes;
use mesos_proto::Encoding;
use mesos_proto::executor::{self, event};
use mesos_proto::util::{self, is_terminal, state_of};
use mesos_proto::v1::{
    self, TaskState, executor_info, framework_info::capability, task_status::Reason,
};
use tokio::net::TcpListener;
use tokio::sync::{Notify, mpsc, watch};
use tokio::time::Instant;
use tokio_util::sync::CancellationToken;
use tracing::{Instrument, debug, info, warn};

use crate::config::ClusterConfig;
use crate::master::validation::has_capability;
use crate::messages::{AgentReport, FromAgent, ReportedTask, Scope, ToAgent};
use crate::resources::Resources;
use crate::wire::{self, Inbox, Outbox, Rejection};
use baton_probe::https::HttpsClient;
use containers::{ExecutorEnv, Program};
use isolation::{Isolator, Limits};
use status_updates::{Acked, Pushed, UpdateStream};

/// Mesos's `DEFAULT_EXECUTOR_HEARTBEAT_INTERVAL`.
const EXECUTOR_HEARTBEAT: Duration = Duration::from_secs(30 * 60);

/// Where an executor is in its life.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Phase {
    /// Sandbox being prepared, process not started yet.
    Launching,
    /// Started, waiting for its first SUBSCRIBE.
    Registering,
    /// Subscribed.
    Running,
    /// The agent restarted; waiting for it to SUBSCRIBE again.
    Reregistering,
    /// SHUTDOWN sent or container being destroyed.
    Terminating,
}

/// What remaining tasks become when an executor ends.
#[derive(Debug, Clone)]
pub struct Termination {
    /// For PARTITION_AWARE frameworks.
    pub state_pa: TaskState,
    /// For the others.
    pub state: TaskState,
    /// Why.
    pub reason: Reason,
    /// Human text.
    pub message: String,
}

/// What a container over its memory limit ends its tasks with.
fn memory_limitation(message: String) -> Termination {
    Termination {
        state_pa: TaskState::TaskFailed,
        state: TaskState::TaskFailed,
        reason: Reason::ContainerLimitationMemory,
        message,
    }
}

impl Termination {
    fn executor_terminated() -> Termination {
        Termination {
            state_pa: TaskState::TaskFailed,
            state: TaskState::TaskFailed,
            reason: Reason::ExecutorTerminated,
            message: "Executor terminated".into(),
        }
    }
}

/// The `cpus` and `mem` of an executor's resources and its tasks'.
fn limits_of(executor: &[v1::Resource], tasks: &[v1::TaskInfo]) -> Limits {
    let all = executor
        .iter()
        .chain(tasks.iter().flat_map(|t| &t.resources));
    let sum = |name: &str| {
        all.clone()
            .filter(|r| r.name == name)
            .filter_map(|r| r.scalar.as_ref().map(|s| s.value))
            .sum::<f64>()
    };
    Limits {
        cpus: sum("cpus"),
        mem_mb: sum("mem"),
    }
}

/// How often a container's memory is checked against its limit (the
/// cgroup's OOM count, or the watchdog's reading of `/proc`).
const LIMIT_POLL: Duration = Duration::from_millis(200);

/// Work queued for an executor until it subscribes.
#[derive(Debug, Clone)]
pub enum Queued {
    /// LAUNCH.
    Task(Box<v1::TaskInfo>),
    /// LAUNCH_GROUP.
    Group(v1::TaskGroupInfo),
}

impl Queued {
    fn task_ids(&self) -> Vec<String> {
        match self {
            Queued::Task(t) => vec![t.task_id.value.clone()],
            Queued::Group(g) => g.tasks.iter().map(|t| t.task_id.value.clone()).collect(),
        }
    }
}

/// A live executor stream.
#[derive(Debug)]
pub struct ExecConn {
    conn_id: u64,
    tx: Outbox,
    encoding: Encoding,
    cancel: CancellationToken,
}

/// One executor (= one container).
#[derive(Debug)]
pub struct Executor {
    /// As launched (framework_id set).
    pub info: v1::ExecutorInfo,
    /// The built-in command executor for a command task.
    pub command: bool,
    /// Container id.
    pub container_id: String,
    /// Life-cycle phase.
    pub phase: Phase,
    /// Process id = session id, once started.
    pub pid: Option<u32>,
    conn: Option<ExecConn>,
    /// Not yet delivered.
    pub queued: Vec<Queued>,
    /// Some task was delivered to it.
    pub ever_sent: bool,
    /// It has SUBSCRIBEd at least once (Mesos's executor has left
    /// REGISTERING): its UPDATE and MESSAGE calls are taken from then on,
    /// also while it is terminating or between two connections.
    pub subscribed: bool,
    /// What its tasks become when it ends, if not TASK_FAILED.
    pub termination: Option<Termination>,
    /// For stale timers.
    pub generation: u64,
    /// What its container may use: its own and its tasks' resources.
    pub limits: Limits,
}

/// A container with a process, as `/monitor/statistics` lists it.
#[derive(Debug, Clone)]
pub struct RunningContainer {
    /// Owner.
    pub framework_id: String,
    /// Its executor.
    pub executor_id: String,
    /// The executor's name.
    pub executor_name: String,
    /// The executor's `source`.
    pub source: String,
    /// Which.
    pub container_id: String,
    /// The executor's pid, the session id.
    pub pid: u32,
    /// What it may use.
    pub limits: Limits,
}

/// A task on this agent.
#[derive(Debug, Clone)]
pub struct AgentTask {
    /// As launched.
    pub info: v1::TaskInfo,
    /// Its executor (= task id for command tasks).
    pub executor_id: String,
    /// Run by the command executor.
    pub command: bool,
    /// Latest state.
    pub state: TaskState,
    /// Latest status.
    pub latest: Option<v1::TaskStatus>,
    /// Delivered to the executor.
    pub delivered: bool,
}

/// A framework with executors, tasks or pending updates here.
#[derive(Debug)]
pub struct AgentFramework {
    /// Latest FrameworkInfo, id set.
    pub info: v1::FrameworkInfo,
    /// By executor id.
    pub executors: BTreeMap<String, Executor>,
    /// By task id.
    pub tasks: BTreeMap<String, AgentTask>,
    /// Status-update streams by task id.
    pub streams: BTreeMap<String, UpdateStream>,
    /// Removed by the master: executors are shutting down.
    pub shutting_down: bool,
}

impl AgentFramework {
    fn partition_aware(&self) -> bool {
        has_capability(&self.info, capability::Type::PartitionAware)
    }
}

/// Work to spawn once the lock is released.
#[derive(Debug)]
pub enum Deferred {
    /// Prepare the sandbox and start the executor.
    Launch {
        /// Owner.
        framework_id: String,
        /// Which.
        executor_id: String,
        /// Its container.
        container_id: String,
        /// Sandbox.
        directory: PathBuf,
        /// What to run.
        program: Program,
        /// Its environment.
        env: Vec<(String, String)>,
        /// What to fetch.
        uris: Vec<v1::command_info::Uri>,
        /// Persistent volumes to link into the sandbox: directory, where.
        volumes: Vec<(PathBuf, String)>,
    },

    /// Destroy the executor if it has not subscribed by then.
    RegistrationTimeout {
        /// Owner.
        framework_id: String,
        /// Which.
        executor_id: String,
        /// Its generation.
        generation: u64,
    },
    /// After a restart: destroy executors that have not resubscribed.
    ReregistrationTimeout,
    /// Destroy the container after the shutdown grace.
    ShutdownGrace {
        /// Owner.
        framework_id: String,
        /// Which.
        executor_id: String,
        /// Its generation.
        generation: u64,
        /// The grace.
        after: Duration,
    },
    /// SIGKILL every process of a container's session (off the lock and
    /// the async workers: it scans `/proc`).
    Destroy {
        /// The executor's pid, the session id.
        pid: u32,
    },
    /// Watch a new executor stream.
    Connection {
        /// Owner.
        framework_id: String,
        /// Which.
        executor_id: String,
        /// The stream.
        conn_id: u64,
        /// A sender to it.
        tx: Outbox,
        /// HEARTBEAT in its encoding.
        heartbeat: Bytes,
        /// Stops the watcher.
        cancel: CancellationToken,
    },
}

/// An executor process exit seen while the agent was down.
#[derive(Debug, Clone)]
struct Exit {
    framework_id: String,
    executor_id: String,
    container_id: String,
    status: i32,
}

/// Everything an agent knows.
#[derive(Debug)]
pub struct AgentState {
    index: usize,
    agent_id: String,
    endpoint: SocketAddr,
    agent_info: v1::AgentInfo,
    config: Arc<ClusterConfig>,
    to_master: mpsc::UnboundedSender<FromAgent>,
    /// Up (server listening) or stopped.
    pub running: bool,
    started_once: bool,
    /// By framework id.
    pub frameworks: BTreeMap<String, AgentFramework>,
    pending_exits: Vec<Exit>,
    next_conn: u64,
    next_generation: u64,
    /// Spawned after unlocking.
    pub deferred: Vec<Deferred>,
    wake: bool,
    /// The cluster is shutting down: no new executors.
    closing: bool,
    /// Every executor run's sandbox, served by `/files` and listed in `/state`.
    pub sandboxes: sandboxes::Sandboxes,
    /// The cluster's isolator.
    pub isolator: Arc<Isolator>,
    /// Its dynamic reservations and persistent volumes, as checkpointed.
    pub checkpointed: Resources,
}

fn exec_event(ty: event::Type) -> executor::Event {
    executor::Event {
        r#type: Some(ty as i32),
        ..Default::default()
    }
}

fn send_exec(ex: &mut Executor, ev: &executor::Event) -> bool {
    let Some(conn) = &ex.conn else {
        return false;
    };
    let rec = wire::record(conn.encoding, ev);
    let gone = match conn.tx.push(rec) {
        Ok(()) => return true,
        Err(gone) => gone,
    };
    warn!(executor_id = %ex.info.executor_id.value, ?gone, "executor stream closed or too far behind; dropping it");
    if let Some(c) = ex.conn.take() {
        c.cancel.cancel();
    }
    false
}

/// Sends a LAUNCH/LAUNCH_GROUP to a connected executor and marks its tasks
/// delivered; if the stream refuses it, keeps it queued for the next
/// SUBSCRIBE.
fn deliver_or_queue(ex: &mut Executor, tasks: &mut BTreeMap<String, AgentTask>, item: Queued) {
    if send_exec(ex, &launch_event(&item)) {
        ex.ever_sent = true;
        for id in item.task_ids() {
            if let Some(t) = tasks.get_mut(&id) {
                t.delivered = true;
            }
        }
    } else {
        ex.queued.push(item);
    }
}

/// How long an executor has between SHUTDOWN (or SIGTERM) and the
/// destruction of its container.
fn shutdown_grace(info: &v1::ExecutorInfo, default: Duration) -> Duration {
    info.shutdown_grace_period
        .as_ref()
        .map_or(default, util::from_duration_info)
}

fn launch_event(item: &Queued) -> executor::Event {
    match item {
        Queued::Task(t) => executor::Event {
            launch: Some(event::Launch {
                task: (**t).clone(),
            }),
            ..exec_event(event::Type::Launch)
        },
        Queued::Group(g) => executor::Event {
            launch_group: Some(event::LaunchGroup {
                task_group: g.clone(),
            }),
            ..exec_event(event::Type::LaunchGroup)
        },
    }
}

/// Why a container cannot run on a mesos-local agent, if it cannot: the
/// agents have no Docker containerizer and no image provisioner.
fn unsupported_container(container: Option<&v1::ContainerInfo>) -> Option<&'static str> {
    let container = container?;
    match container.r#type() {
        v1::container_info::Type::Docker => Some(
            "Failed to launch container: the docker containerizer is not enabled on this agent (mesos-local runs processes only)",
        ),
        v1::container_info::Type::Mesos
            if container.mesos.as_ref().is_some_and(|m| m.image.is_some()) =>
        {
            Some(
                "Failed to launch container: container images are not supported on this agent (mesos-local runs processes only)",
            )
        }
        _ => None,
    }
}

impl AgentState {
    fn framework_state(&self, pa: bool, t: &Termination) -> TaskState {
        if pa { t.state_pa } else { t.state }
    }

    /// An agent-generated update (SOURCE_AGENT, with uuid).
    fn agent_status(
        &self,
        task_id: &str,
        executor_id: &str,
        state: TaskState,
        reason: Reason,
        message: &str,
    ) -> v1::TaskStatus {
        let mut s = util::with_reason(
            util::status(
                util::task_id(task_id),
                state,
                v1::task_status::Source::Agent,
            ),
            reason,
            message,
        );
        s.uuid = Some(util::new_status_uuid());
        s.executor_id = Some(util::executor_id(executor_id));
        s
    }

    /// Puts an update on its task's stream; forwards it if it is the head.
    fn push_update(&mut self, framework_id: &str, mut status: v1::TaskStatus) -> Pushed {
        status.agent_id = Some(util::agent_id(&self.agent_id));
        if status.timestamp.is_none() {
            status.timestamp = Some(util::now_timestamp());
        }
        let Some(f) = self.frameworks.get_mut(framework_id) else {
            return Pushed::AfterTerminal;
        };
        let task_id = status.task_id.value.clone();
        if f.shutting_down {
            if let Some(t) = f.tasks.get_mut(&task_id) {
                t.state = state_of(&status);
            }
            return Pushed::AfterTerminal;
        }
        let pushed = f
            .streams
            .entry(task_id.clone())
            .or_default()
            .push(status.clone());
        if matches!(pushed, Pushed::Queued(_))
            && let Some(t) = f.tasks.get_mut(&task_id)
        {
            t.state = state_of(&status);
            t.latest = Some(status);
        }
        if pushed == Pushed::Queued(true) {
            self.forward_head(framework_id, &task_id);
        }
        pushed
    }

    /// Sends the head of a task's stream to the master and schedules its
    /// retry.
    fn forward_head(&mut self, framework_id: &str, task_id: &str) {
        if !self.running {
            return;
        }
        let retry = self.config.status_update_retry;
        let Some(f) = self.frameworks.get_mut(framework_id) else {
            return;
        };
        let latest = f.tasks.get(task_id).map(|t| t.state);
        let Some(stream) = f.streams.get_mut(task_id) else {
            return;
        };
        let Some(head) = stream.head().cloned() else {
            return;
        };
        stream.mark_sent(Instant::now(), retry);
        let latest_state = latest.unwrap_or_else(|| state_of(&head));
        let _ = self.to_master.send(FromAgent::StatusUpdate {
            index: self.index,
            framework_id: framework_id.to_string(),
            status: head,
            latest_state,
        });
        self.wake = true;
    }

    fn resend_heads(&mut self, framework_id: Option<&str>) {
        let mut heads = Vec::new();
        for (fid, f) in &mut self.frameworks {
            if framework_id.is_some_and(|only| only != fid) {
                continue;
            }
            for (tid, s) in &mut f.streams {
                if !s.is_empty() {
                    s.reset_retry();
                    heads.push((fid.clone(), tid.clone()));
                }
            }
        }
        for (f, t) in heads {
            self.forward_head(&f, &t);
        }
    }

    /// Resends overdue heads; returns the next deadline.
    pub fn retry_due(&mut self, now: Instant) -> Option<Instant> {
        if !self.running {
            return None;
        }
        let mut due = Vec::new();
        for (fid, f) in &self.frameworks {
            for (tid, s) in &f.streams {
                if s.next_retry().is_some_and(|t| t <= now) {
                    due.push((fid.clone(), tid.clone()));
                }
            }
        }
        for (f, t) in due {
            debug!(framework_id = %f, task_id = %t, "retrying unacknowledged status update");
            self.forward_head(&f, &t);
        }
        self.frameworks
            .values()
            .flat_map(|f| f.streams.values())
            .filter_map(UpdateStream::next_retry)
            .min()
    }

    fn maybe_remove_framework(&mut self, framework_id: &str) {
        let remove = self.frameworks.get(framework_id).is_some_and(|f| {
            f.executors.is_empty()
                && (f.shutting_down || (f.tasks.is_empty() && f.streams.is_empty()))
        });
        if remove {
            debug!(framework_id, "framework has nothing left on the agent");
            self.frameworks.remove(framework_id);
        }
    }

    // ----- master messages ------------------------------------------------

    /// Handles a message from the master.
    pub fn handle(&mut self, msg: ToAgent) {
        if self.closing && matches!(msg, ToAgent::RunTask { .. } | ToAgent::RunTaskGroup { .. }) {
            debug!("launch refused: the cluster is shutting down");
            return;
        }
        match msg {
            ToAgent::RunTask { framework, task } => self.run_task(framework, task),
            ToAgent::RunTaskGroup {
                framework,
                executor,
                group,
            } => self.run(
                framework,
                executor,
                false,
                Queued::Group(group.clone()),
                group.tasks,
            ),
            ToAgent::KillTask {
                framework_id,
                task_id,
                kill_policy,
            } => self.kill_task(&framework_id, &task_id, kill_policy),
            ToAgent::ShutdownExecutor {
                framework_id,
                executor_id,
            } => self.shutdown_executor(&framework_id, &executor_id),
            ToAgent::ShutdownFramework { framework_id } => self.shutdown_framework(&framework_id),
            ToAgent::Acknowledge {
                framework_id,
                task_id,
                uuid,
            } => self.acknowledge(&framework_id, &task_id, &uuid),
            ToAgent::UpdateFramework { framework } => {
                let Some(id) = framework.id.as_ref().map(|i| i.value.clone()) else {
                    return;
                };
                if let Some(f) = self.frameworks.get_mut(&id) {
                    f.info = framework;
                    self.resend_heads(Some(&id));
                }
            }
            ToAgent::FrameworkMessage {
                framework_id,
                executor_id,
                data,
            } => {
                if let Some(ex) = self
                    .frameworks
                    .get_mut(&framework_id)
                    .and_then(|f| f.executors.get_mut(&executor_id))
                {
                    let ev = executor::Event {
                        message: Some(event::Message { data }),
                        ..exec_event(event::Type::Message)
                    };
                    send_exec(ex, &ev);
                }
            }
            ToAgent::Reregister => {
                if self.running {
                    self.register();
                    self.resend_heads(None);
                }
            }
            ToAgent::CheckpointResources { resources } => self.checkpoint_resources(&resources),
        }
    }

    /// The master changed the reservations and volumes: volume directories
    /// first (a launch of the same ACCEPT follows), then the checkpoint.
    fn checkpoint_resources(&mut self, resources: &[v1::Resource]) {
        let new = match Resources::from_protos(resources) {
            Ok(r) => r,
            Err(e) => {
                warn!(error = %e, "checkpointed resources refused");
                return;
            }
        };
        let work_dir = &self.config.work_dir;
        if let Err(e) = volumes::sync(work_dir, self.index, &self.checkpointed, &new) {
            warn!(error = %e, "persistent volumes not synced");
        }
        if let Err(e) = volumes::save(work_dir, self.index, &new) {
            warn!(error = %e, "resources not checkpointed");
        }
        info!(
            volumes = new.volumes().len(),
            "checkpointed reservations and volumes"
        );
        self.checkpointed = new;
    }

    /// A running container gets its new tasks' volumes, as Mesos's posix
    /// filesystem isolator's `update` links them.
    fn link_into_running(&self, fid: &str, eid: &str, tasks: &[v1::TaskInfo]) {
        let Some(ex) = self.frameworks.get(fid).and_then(|f| f.executors.get(eid)) else {
            return;
        };
        let links = self.volume_links(&[], tasks);
        let sandbox = self
            .sandboxes
            .runs()
            .iter()
            .find(|r| r.container_id == ex.container_id)
            .map(|r| r.directory.clone());
        if let (Some(sandbox), false) = (sandbox, links.is_empty())
            && let Err(e) = volumes::link(&sandbox, &links)
        {
            warn!(error = %e, "persistent volume not linked");
        }
    }

    /// A task's end takes its volumes out of its container: the agent
    /// shrinks the container to what its executor and other live tasks
    /// use, and Mesos's posix filesystem isolator's `update` removes the
    /// sandbox links of the volumes no longer in it, before the update is
    /// forwarded (a real 1.12 agent logs "Removing symlink" right after
    /// "Handling status update TASK_KILLED").
    fn unlink_ended(&self, fid: &str, eid: &str, task_id: &str) {
        let Some(f) = self.frameworks.get(fid) else {
            return;
        };
        let (Some(ex), Some(ended)) = (f.executors.get(eid), f.tasks.get(task_id)) else {
            return;
        };
        let live: Vec<v1::TaskInfo> = f
            .tasks
            .iter()
            .filter(|(id, t)| *id != task_id && t.executor_id == eid && !is_terminal(t.state))
            .map(|(_, t)| t.info.clone())
            .collect();
        let keep = self.volume_links(&ex.info.resources, &live);
        let gone: Vec<(PathBuf, String)> = self
            .volume_links(&[], std::slice::from_ref(&ended.info))
            .into_iter()
            .filter(|l| !keep.contains(l))
            .collect();
        if gone.is_empty() {
            return;
        }
        if let Some(run) = self
            .sandboxes
            .runs()
            .iter()
            .find(|r| r.container_id == ex.container_id)
        {
            volumes::unlink(&run.directory, &gone);
        }
    }

    /// The volume links of a container running `executor` and `tasks`.
    fn volume_links(
        &self,
        executor: &[v1::Resource],
        tasks: &[v1::TaskInfo],
    ) -> Vec<(PathBuf, String)> {
        let mut used = Resources::from_protos(executor).unwrap_or_default();
        for t in tasks {
            used.add(&Resources::from_protos(&t.resources).unwrap_or_default());
        }
        volumes::links(&self.config.work_dir, self.index, &used)
    }

    #[allow(deprecated)] // `source` is deprecated upstream; Mesos still sets it
    fn command_executor_info(&self, framework_id: &str, task: &v1::TaskInfo) -> v1::ExecutorInfo {
        let path = self.config.executor_path.display().to_string();
        let cmd = task
            .command
            .as_ref()
            .and_then(|c| c.value.clone())
            .unwrap_or_default();
        let id = task.task_id.value.clone();
        v1::ExecutorInfo {
            r#type: Some(executor_info::Type::Custom as i32),
            executor_id: util::executor_id(&id),
            framework_id: Some(util::framework_id(framework_id)),
            command: Some(v1::CommandInfo {
                value: Some(path.clone()),
                shell: Some(false),
                arguments: vec![path],
                ..Default::default()
            }),
            resources: vec![
                util::scalar_resource("cpus", 0.1),
                util::scalar_resource("mem", 32.0),
            ],
            name: Some(format!(
                "Command Executor (Task: {id}) (Command: sh -c '{cmd}')"
            )),
            source: Some(id),
            labels: task.labels.clone(),
            ..Default::default()
        }
    }

    fn run_task(&mut self, framework: v1::FrameworkInfo, task: v1::TaskInfo) {
        let fid = framework
            .id
            .as_ref()
            .map(|i| i.value.clone())
            .unwrap_or_default();
        let (info, command) = match &task.executor {
            Some(e) => (e.clone(), false),
            None => (self.command_executor_info(&fid, &task), true),
        };
        self.run(
            framework,
            info,
            command,
            Queued::Task(Box::new(task.clone())),
            vec![task],
        );
    }

    fn run(
        &mut self,
        framework: v1::FrameworkInfo,
        exec_info: v1::ExecutorInfo,
        command: bool,
        item: Queued,
        tasks: Vec<v1::TaskInfo>,
    ) {
        let Some(fid) = framework.id.as_ref().map(|i| i.value.clone()) else {
            return;
        };
        let eid = exec_info.executor_id.value.clone();
        self.link_into_running(&fid, &eid, &tasks);
        let f = self
            .frameworks
            .entry(fid.clone())
            .or_insert_with(|| AgentFramework {
                info: framework.clone(),
                executors: BTreeMap::new(),
                tasks: BTreeMap::new(),
                streams: BTreeMap::new(),
                shutting_down: false,
            });
        if f.shutting_down {
            warn!(framework_id = %fid, "task for a framework being shut down ignored");
            return;
        }
        f.info = framework;
        for t in &tasks {
            info!(framework_id = %fid, task_id = %t.task_id.value, executor_id = %eid, "running task");
            f.tasks.insert(
                t.task_id.value.clone(),
                AgentTask {
                    info: t.clone(),
                    executor_id: eid.clone(),
                    command,
                    state: TaskState::TaskStaging,
                    latest: None,
                    delivered: false,
                },
            );
        }
        let pa = f.partition_aware();
        if let Some(why) = tasks
            .iter()
            .find_map(|t| unsupported_container(t.container.as_ref()))
            .or_else(|| unsupported_container(exec_info.container.as_ref()))
        {
            // These agents run plain processes: a task that needs an image
            // fails the way an agent without that containerizer fails it.
            for t in tasks {
                let s = self.agent_status(
                    &t.task_id.value,
                    &eid,
                    TaskState::TaskFailed,
                    Reason::ContainerLaunchFailed,
                    why,
                );
                self.push_update(&fid, s);
            }
            return;
        }
        let terminating = f
            .executors
            .get(&eid)
            .is_some_and(|ex| ex.phase == Phase::Terminating);
        if terminating {
            let state = if pa {
                TaskState::TaskDropped
            } else {
                TaskState::TaskLost
            };
            for t in tasks {
                let s = self.agent_status(
                    &t.task_id.value,
                    &eid,
                    state,
                    Reason::ExecutorTerminated,
                    "Executor terminating",
                );
                self.push_update(&fid, s);
            }
            return;
        }
        if let Some(ex) = f.executors.get_mut(&eid) {
            // Its container grows by the new tasks, as Mesos updates it.
            let added = limits_of(&[], &tasks);
            ex.limits.cpus += added.cpus;
            ex.limits.mem_mb += added.mem_mb;
            if ex.pid.is_some()
                && let Err(e) = self.isolator.update(&ex.container_id, ex.limits)
            {
                warn!(error = %e, container_id = %ex.container_id, "container limits not updated");
            }
        }
        match f.executors.get_mut(&eid) {
            Some(ex) if ex.phase == Phase::Running && ex.conn.is_some() => {
                deliver_or_queue(ex, &mut f.tasks, item);
            }
            Some(ex) => ex.queued.push(item),
            None => self.create_executor(&fid, exec_info, command, item, &tasks),
        }
        self.sandboxes
            .add_tasks(&fid, &eid, tasks.iter().map(|t| t.task_id.value.as_str()));
    }

    fn create_executor(
        &mut self,
        fid: &str,
        mut info: v1::ExecutorInfo,
        command: bool,
        item: Queued,
        tasks: &[v1::TaskInfo],
    ) {
        let eid = info.executor_id.value.clone();
        info.framework_id = Some(util::framework_id(fid));
        let container_id = uuid::Uuid::new_v4().to_string();
        let directory = self
            .config
            .work_dir
            .join("agents")
            .join(&self.agent_id)
            .join("frameworks")
            .join(fid)
            .join("executors")
            .join(&eid)
            .join("runs")
            .join(&container_id);
        let Some(f) = self.frameworks.get(fid) else {
            return;
        };
        #[allow(deprecated)] // `source`: Mesos still reports it
        self.sandboxes.launched(sandboxes::Run {
            framework_id: fid.to_string(),
            framework_name: f.info.name.clone(),
            executor_id: eid.clone(),
            executor_name: info.name.clone().unwrap_or_default(),
            source: info.source.clone().unwrap_or_default(),
            container_id: container_id.clone(),
            directory: directory.clone(),
            tasks: Vec::new(),
            completed: false,
        });
        let checkpoint = f.info.checkpoint.unwrap_or(false);
        let shutdown_grace = shutdown_grace(&info, self.config.executor_shutdown_grace_period);
        let mut extra = self.config.executor_environment.clone();
        let (program, uris) = if command || info.command.is_none() {
            let uris = if command {
                tasks
                    .first()
                    .and_then(|t| t.command.as_ref())
                    .map(|c| c.uris.clone())
                    .unwrap_or_default()
            } else {
                Vec::new()
            };
            (
                Ok(Program::Argv(
                    self.config.executor_path.display().to_string(),
                    Vec::new(),
                )),
                uris,
            )
        } else {
            let cmd = info.command.clone().unwrap_or_default();
            if let Some(env) = &cmd.environment {
                extra.extend(
                    env.variables
                        .iter()
                        .map(|v| (v.name.clone(), v.value.clone().unwrap_or_default())),
                );
            }
            (Program::from_command(&cmd), cmd.uris.clone())
        };
        let env = ExecutorEnv {
            framework_id: fid,
            executor_id: &eid,
            directory: &directory,
            agent_endpoint: self.endpoint,
            agent_id: &self.agent_id,
            checkpoint,
            shutdown_grace,
            reregistration_timeout: self.config.executor_reregistration_timeout,
            extra,
        }
        .vars();
        self.next_generation += 1;
        let generation = self.next_generation;
        let limits = limits_of(&info.resources, tasks);
        let volumes = self.volume_links(&info.resources, tasks);
        let executor = Executor {
            info,
            command,
            container_id: container_id.clone(),
            phase: Phase::Launching,
            pid: None,
            conn: None,
            queued: vec![item],
            ever_sent: false,
            subscribed: false,
            termination: None,
            generation,
            limits,
        };
        let Some(f) = self.frameworks.get_mut(fid) else {
            return;
        };
        f.executors.insert(eid.clone(), executor);
        match program {
            Ok(program) => self.deferred.push(Deferred::Launch {
                framework_id: fid.to_string(),
                executor_id: eid,
                container_id,
                directory,
                program,
                env,
                uris,
                volumes,
            }),
            Err(e) => self.executor_launch_failed(fid, &eid, &container_id, &e.to_string()),
        }
    }

    /// The executor process started.
    pub fn executor_started(&mut self, fid: &str, eid: &str, container_id: &str, pid: u32) -> bool {
        let Some(ex) = self
            .frameworks
            .get_mut(fid)
            .and_then(|f| f.executors.get_mut(eid))
            .filter(|ex| ex.container_id == container_id)
        else {
            return false;
        };
        ex.pid = Some(pid);
        info!(
            framework_id = fid,
            executor_id = eid,
            pid,
            "executor started"
        );
        match ex.phase {
            Phase::Terminating => false,
            Phase::Launching => {
                ex.phase = Phase::Registering;
                self.deferred.push(Deferred::RegistrationTimeout {
                    framework_id: fid.to_string(),
                    executor_id: eid.to_string(),
                    generation: ex.generation,
                });
                true
            }
            _ => true,
        }
    }

    /// The sandbox or process could not be set up.
    pub fn executor_launch_failed(
        &mut self,
        fid: &str,
        eid: &str,
        container_id: &str,
        error: &str,
    ) {
        warn!(
            framework_id = fid,
            executor_id = eid,
            error,
            "executor launch failed"
        );
        if let Some(ex) = self
            .frameworks
            .get_mut(fid)
            .and_then(|f| f.executors.get_mut(eid))
            .filter(|ex| ex.container_id == container_id)
        {
            ex.termination = Some(Termination {
                state_pa: TaskState::TaskFailed,
                state: TaskState::TaskFailed,
                reason: Reason::ContainerLaunchFailed,
                message: format!("Failed to launch container: {error}"),
            });
        }
        self.executor_exited(fid, eid, container_id, None);
    }

    /// The executor's process exited (or never started) and its container
    /// is destroyed: its remaining tasks get terminal updates, the master
    /// hears of custom executors.
    pub fn executor_exited(
        &mut self,
        fid: &str,
        eid: &str,
        container_id: &str,
        status: Option<i32>,
    ) {
        if !self.running {
            self.pending_exits.push(Exit {
                framework_id: fid.to_string(),
                executor_id: eid.to_string(),
                container_id: container_id.to_string(),
                status: status.unwrap_or(-1),
            });
            return;
        }
        let Some(f) = self.frameworks.get_mut(fid) else {
            return;
        };
        if f.executors
            .get(eid)
            .is_none_or(|ex| ex.container_id != container_id)
        {
            return;
        }
        let Some(mut ex) = f.executors.remove(eid) else {
            return;
        };
        self.sandboxes.exited(fid, container_id);
        info!(
            framework_id = fid,
            executor_id = eid,
            ?status,
            "executor exited"
        );
        if let Some(c) = ex.conn.take() {
            c.cancel.cancel();
        }
        let pa = f.partition_aware();
        let termination = ex
            .termination
            .clone()
            .unwrap_or_else(Termination::executor_terminated);
        let open: Vec<String> = f
            .tasks
            .values()
            .filter(|t| t.executor_id == eid && !is_terminal(t.state))
            .map(|t| t.info.task_id.value.clone())
            .collect();
        let state = self.framework_state(pa, &termination);
        for task_id in open {
            let s = self.agent_status(
                &task_id,
                eid,
                state,
                termination.reason,
                &termination.message,
            );
            self.push_update(fid, s);
        }
        if !ex.command {
            let _ = self.to_master.send(FromAgent::ExecutorExited {
                index: self.index,
                framework_id: fid.to_string(),
                executor_id: eid.to_string(),
                status: status.unwrap_or(-1),
            });
        }
        // Tasks that were only queued and are terminal now have no
        // executor; they leave with their acknowledged updates.
        self.maybe_remove_framework(fid);
    }

    fn kill_task(&mut self, fid: &str, task_id: &str, kill_policy: Option<v1::KillPolicy>) {
        let Some(f) = self.frameworks.get_mut(fid) else {
            return;
        };
        let Some(eid) = f.tasks.get(task_id).map(|t| t.executor_id.clone()) else {
            debug!(
                framework_id = fid,
                task_id, "KILL for an unknown task ignored"
            );
            return;
        };
        let Some(ex) = f.executors.get_mut(&eid) else {
            return;
        };
        let Some(pos) = ex
            .queued
            .iter()
            .position(|q| q.task_ids().iter().any(|id| id == task_id))
        else {
            if ex.conn.is_some() {
                let ev = executor::Event {
                    kill: Some(event::Kill {
                        task_id: util::task_id(task_id),
                        kill_policy,
                    }),
                    ..exec_event(event::Type::Kill)
                };
                send_exec(ex, &ev);
            } else {
                debug!(
                    framework_id = fid,
                    task_id, "executor not connected; KILL dropped"
                );
            }
            return;
        };
        let item = ex.queued.remove(pos);
        let idle = ex.queued.is_empty() && !ex.ever_sent;
        for id in item.task_ids() {
            let s = self.agent_status(
                &id,
                &eid,
                TaskState::TaskKilled,
                Reason::TaskKilledDuringLaunch,
                "Task killed before it was launched",
            );
            self.push_update(fid, s);
        }
        if idle {
            self.shutdown_executor(fid, &eid);
        }
    }

    /// Asks an executor to stop and destroys its container if it has not
    /// gone after its shutdown grace: SHUTDOWN on its stream if it is
    /// connected, else SIGTERM (which `baton-executor` takes as SHUTDOWN).
    /// One not started yet is killed as soon as it is.
    fn shutdown_executor(&mut self, fid: &str, eid: &str) {
        let default_grace = self.config.executor_shutdown_grace_period;
        let Some(ex) = self
            .frameworks
            .get_mut(fid)
            .and_then(|f| f.executors.get_mut(eid))
        else {
            return;
        };
        if ex.phase == Phase::Terminating {
            return;
        }
        info!(
            framework_id = fid,
            executor_id = eid,
            "shutting down executor"
        );
        ex.phase = Phase::Terminating;
        if !send_exec(ex, &exec_event(event::Type::Shutdown)) {
            let Some(pid) = ex.pid else {
                return;
            };
            containers::terminate(pid);
        }
        self.deferred.push(Deferred::ShutdownGrace {
            framework_id: fid.to_string(),
            executor_id: eid.to_string(),
            generation: ex.generation,
            after: shutdown_grace(&ex.info, default_grace),
        });
    }

    fn shutdown_framework(&mut self, fid: &str) {
        let Some(f) = self.frameworks.get_mut(fid) else {
            return;
        };
        info!(framework_id = fid, "shutting down framework");
        f.shutting_down = true;
        f.streams.clear();
        let eids: Vec<String> = f.executors.keys().cloned().collect();
        for eid in eids {
            self.shutdown_executor(fid, &eid);
        }
        self.maybe_remove_framework(fid);
    }

    /// The shutdown grace passed: destroy the container.
    pub fn grace_expired(&mut self, fid: &str, eid: &str, generation: u64) {
        if let Some(ex) = self.frameworks.get(fid).and_then(|f| f.executors.get(eid))
            && ex.generation == generation
            && let Some(pid) = ex.pid
        {
            self.deferred.push(Deferred::Destroy { pid });
        }
    }

    /// The registration timeout passed.
    pub fn registration_expired(&mut self, fid: &str, eid: &str, generation: u64) {
        let Some(ex) = self
            .frameworks
            .get_mut(fid)
            .and_then(|f| f.executors.get_mut(eid))
        else {
            return;
        };
        if ex.generation != generation || ex.phase != Phase::Registering {
            return;
        }
        warn!(
            framework_id = fid,
            executor_id = eid,
            "executor did not subscribe in time"
        );
        ex.phase = Phase::Terminating;
        ex.termination = Some(Termination {
            state_pa: TaskState::TaskFailed,
            state: TaskState::TaskFailed,
            reason: Reason::ExecutorRegistrationTimeout,
            message: "Executor did not register in time".into(),
        });
        if let Some(pid) = ex.pid {
            self.deferred.push(Deferred::Destroy { pid });
        }
    }

    /// Every container with a process, for `/monitor/statistics`.
    pub fn running_containers(&self) -> Vec<RunningContainer> {
        let mut out = Vec::new();
        for (fid, f) in &self.frameworks {
            for (eid, ex) in &f.executors {
                let Some(pid) = ex.pid else { continue };
                #[allow(deprecated)] // `source`: Mesos still reports it
                out.push(RunningContainer {
                    framework_id: fid.clone(),
                    executor_id: eid.clone(),
                    executor_name: ex.info.name.clone().unwrap_or_default(),
                    source: ex.info.source.clone().unwrap_or_default(),
                    container_id: ex.container_id.clone(),
                    pid,
                    limits: ex.limits,
                });
            }
        }
        out
    }

    /// The limits of a container that still runs, if it is this executor's.
    pub fn container_limits(&self, fid: &str, eid: &str, container_id: &str) -> Option<Limits> {
        self.frameworks
            .get(fid)?
            .executors
            .get(eid)
            .filter(|ex| ex.container_id == container_id && ex.phase != Phase::Terminating)
            .map(|ex| ex.limits)
    }

    /// The container went over its memory limit: its tasks fail with
    /// `REASON_CONTAINER_LIMITATION_MEMORY` and it is destroyed, as Mesos's
    /// memory isolator has it.
    pub fn container_limited(&mut self, fid: &str, eid: &str, container_id: &str, message: String) {
        let Some(ex) = self
            .frameworks
            .get_mut(fid)
            .and_then(|f| f.executors.get_mut(eid))
            .filter(|ex| ex.container_id == container_id)
        else {
            return;
        };
        if ex.phase == Phase::Terminating {
            return;
        }
        warn!(framework_id = fid, executor_id = eid, container_id, %message, "container over its memory limit");
        ex.phase = Phase::Terminating;
        ex.termination = Some(memory_limitation(message));
        if let Some(pid) = ex.pid {
            self.deferred.push(Deferred::Destroy { pid });
        }
    }

    /// After a restart, executors that did not resubscribe are destroyed.
    pub fn reregistration_expired(&mut self) {
        let timeout = self.config.executor_reregistration_timeout;
        for (fid, f) in &mut self.frameworks {
            for (eid, ex) in &mut f.executors {
                if ex.phase != Phase::Reregistering {
                    continue;
                }
                warn!(framework_id = %fid, executor_id = %eid, "executor did not reregister in time");
                ex.phase = Phase::Terminating;
                ex.termination = Some(Termination {
                    state_pa: TaskState::TaskGone,
                    state: TaskState::TaskLost,
                    reason: Reason::ExecutorReregistrationTimeout,
                    message: format!(
                        "Executor did not reregister within {}",
                        util::format_duration(timeout)
                    ),
                });
                if let Some(pid) = ex.pid {
                    self.deferred.push(Deferred::Destroy { pid });
                }
            }
        }
    }

    fn acknowledge(&mut self, fid: &str, task_id: &str, uuid: &[u8]) {
        let Some(stream) = self
            .frameworks
            .get_mut(fid)
            .and_then(|f| f.streams.get_mut(task_id))
        else {
            return;
        };
        match stream.ack(uuid) {
            Acked::Ignored => {
                debug!(
                    framework_id = fid,
                    task_id, "acknowledgement of a stale uuid ignored"
                );
            }
            Acked::Done { next, finished } => {
                if next {
                    self.forward_head(fid, task_id);
                }
                if finished && let Some(f) = self.frameworks.get_mut(fid) {
                    f.streams.remove(task_id);
                    if f.tasks.get(task_id).is_some_and(|t| is_terminal(t.state)) {
                        f.tasks.remove(task_id);
                    }
                    self.maybe_remove_framework(fid);
                }
            }
        }
    }

    // ----- executor API ---------------------------------------------------

    /// A stopped agent answers nothing; a request that raced with the stop
    /// gets 503 (which executors retry) rather than a stream no one ends.
    fn ensure_running(&self) -> Result<(), Rejection> {
        if self.running {
            Ok(())
        } else {
            Err(Rejection::ServiceUnavailable("Agent is not running".into()))
        }
    }

    fn executor(&self, fid: &str, eid: &str) -> Result<&Executor, Rejection> {
        self.frameworks
            .get(fid)
            .ok_or_else(|| Rejection::BadRequest("Framework cannot be found".into()))?
            .executors
            .get(eid)
            .ok_or_else(|| Rejection::BadRequest("Executor cannot be found".into()))
    }

    /// Fills in what the agent knows: its id, the executor, the container
    /// and its address (mesos-dns reads `container_status.network_infos`).
    fn normalize(&self, ex: &Executor, mut status: v1::TaskStatus) -> v1::TaskStatus {
        status.agent_id = Some(util::agent_id(&self.agent_id));
        if status.executor_id.is_none() {
            status.executor_id = Some(ex.info.executor_id.clone());
        }
        let cs = status.container_status.get_or_insert_with(Default::default);
        if cs.container_id.is_none() {
            cs.container_id = Some(v1::ContainerId {
                value: ex.container_id.clone(),
                parent: None,
            });
        }
        if cs.executor_pid.is_none() {
            cs.executor_pid = ex.pid;
        }
        if cs.network_infos.is_empty() {
            cs.network_infos.push(v1::NetworkInfo {
                ip_addresses: vec![v1::network_info::IpAddress {
                    protocol: Some(v1::network_info::Protocol::IPv4 as i32),
                    ip_address: Some(self.endpoint.ip().to_string()),
                }],
                ..Default::default()
            });
        }
        status
    }

    fn ack_to_executor(&mut self, fid: &str, eid: &str, status: &v1::TaskStatus) {
        if let Some(ex) = self
            .frameworks
            .get_mut(fid)
            .and_then(|f| f.executors.get_mut(eid))
        {
            let ev = executor::Event {
                acknowledged: Some(event::Acknowledged {
                    task_id: status.task_id.clone(),
                    uuid: status.uuid.clone().unwrap_or_default(),
                }),
                ..exec_event(event::Type::Acknowledged)
            };
            send_exec(ex, &ev);
        }
    }

    /// SUBSCRIBE from an executor (§5.3): its previous stream closes, its
    /// unacknowledged updates are fed again, tasks launched during an agent
    /// restart that it does not know are dropped (or lost), then it gets
    /// SUBSCRIBED and the queued LAUNCH / LAUNCH_GROUP events.
    pub fn executor_subscribe(
        &mut self,
        call: executor::Call,
        encoding: Encoding,
    ) -> Result<Inbox, Rejection> {
        self.ensure_running()?;
        let fid = call.framework_id.value;
        let eid = call.executor_id.value;
        let sub = call.subscribe.unwrap_or_default();
        let (tx, rx) = wire::event_stream();
        let Some(was_reregistering) = self.attach(&fid, &eid, tx, encoding)? else {
            return Ok(rx);
        };
        self.refeed(&fid, &eid, sub.unacknowledged_updates);
        if was_reregistering {
            self.drop_tasks_lost_in_restart(&fid, &eid, &sub.unacknowledged_tasks);
        }
        self.deliver_queued(&fid, &eid, was_reregistering);
        Ok(rx)
    }

    /// Makes `tx` the executor's stream. `Some(was_reregistering)` once
    /// SUBSCRIBED is sent; `None` if the executor is being shut down, when
    /// it gets only SHUTDOWN and the stream ends.
    fn attach(
        &mut self,
        fid: &str,
        eid: &str,
        tx: Outbox,
        encoding: Encoding,
    ) -> Result<Option<bool>, Rejection> {
        let Some(f) = self.frameworks.get_mut(fid) else {
            return Err(Rejection::BadRequest("Framework cannot be found".into()));
        };
        let Some(ex) = f.executors.get_mut(eid) else {
            return Err(Rejection::BadRequest("Executor cannot be found".into()));
        };
        if let Some(old) = ex.conn.take() {
            old.cancel.cancel();
        }
        info!(framework_id = %fid, executor_id = %eid, "executor subscribed");
        ex.subscribed = true;
        if ex.phase == Phase::Terminating || f.shutting_down || self.closing {
            let _ = tx.push(wire::record(encoding, &exec_event(event::Type::Shutdown)));
            return Ok(None);
        }
        let was_reregistering = ex.phase == Phase::Reregistering;
        ex.phase = Phase::Running;
        ex.generation += 1;
        let conn_id = self.next_conn;
        self.next_conn += 1;
        let cancel = CancellationToken::new();
        ex.conn = Some(ExecConn {
            conn_id,
            tx: tx.clone(),
            encoding,
            cancel: cancel.clone(),
        });
        let subscribed = executor::Event {
            subscribed: Some(event::Subscribed {
                executor_info: ex.info.clone(),
                framework_info: f.info.clone(),
                agent_info: self.agent_info.clone(),
                container_id: Some(v1::ContainerId {
                    value: ex.container_id.clone(),
                    parent: None,
                }),
            }),
            ..exec_event(event::Type::Subscribed)
        };
        send_exec(ex, &subscribed);
        self.deferred.push(Deferred::Connection {
            framework_id: fid.to_string(),
            executor_id: eid.to_string(),
            conn_id,
            tx,
            heartbeat: wire::record(encoding, &exec_event(event::Type::Heartbeat)),
            cancel,
        });
        Ok(Some(was_reregistering))
    }

    /// Feeds a re-subscribing executor's unacknowledged updates into the
    /// status-update streams again (duplicates are ignored by uuid). One
    /// that breaks the UPDATE rules (no uuid, ...) is skipped, as Mesos's
    /// status-update manager refuses it: queued, an update without uuid
    /// could never be acknowledged and would block its task's stream.
    fn refeed(&mut self, fid: &str, eid: &str, updates: Vec<executor::call::Update>) {
        let Ok(ex) = self.executor(fid, eid) else {
            return;
        };
        let mut accepted = Vec::new();
        for update in updates {
            match http::validate_status(fid, eid, &update.status) {
                Ok(()) => accepted.push(self.normalize(ex, update.status)),
                Err(e) => warn!(
                    framework_id = fid,
                    executor_id = eid,
                    task_id = %update.status.task_id.value,
                    error = %e,
                    "invalid unacknowledged update in SUBSCRIBE ignored"
                ),
            }
        }
        for status in accepted {
            self.push_update(fid, status.clone());
            self.ack_to_executor(fid, eid, &status);
        }
    }

    /// After an agent restart, tasks still STAGING that were delivered to
    /// the executor but that it does not list as unacknowledged never
    /// reached it: TASK_DROPPED (TASK_LOST for frameworks that are not
    /// PARTITION_AWARE), REASON_AGENT_RESTARTED.
    fn drop_tasks_lost_in_restart(&mut self, fid: &str, eid: &str, known: &[v1::TaskInfo]) {
        let Some(f) = self.frameworks.get(fid) else {
            return;
        };
        let known: HashSet<&str> = known.iter().map(|t| t.task_id.value.as_str()).collect();
        let lost: Vec<String> = f
            .tasks
            .values()
            .filter(|t| {
                t.executor_id == eid
                    && t.delivered
                    && t.state == TaskState::TaskStaging
                    && !known.contains(t.info.task_id.value.as_str())
            })
            .map(|t| t.info.task_id.value.clone())
            .collect();
        let state = if f.partition_aware() {
            TaskState::TaskDropped
        } else {
            TaskState::TaskLost
        };
        for id in lost {
            let s = self.agent_status(
                &id,
                eid,
                state,
                Reason::AgentRestarted,
                "Task launched during agent restart",
            );
            self.push_update(fid, s);
        }
    }

    /// Sends the queued launches; an executor that was never given a task
    /// and has none queued is shut down (as Mesos does).
    fn deliver_queued(&mut self, fid: &str, eid: &str, was_reregistering: bool) {
        let Some(f) = self.frameworks.get_mut(fid) else {
            return;
        };
        let Some(ex) = f.executors.get_mut(eid) else {
            return;
        };
        if ex.queued.is_empty() && !ex.ever_sent && !was_reregistering {
            self.shutdown_executor(fid, eid);
            return;
        }
        for item in std::mem::take(&mut ex.queued) {
            deliver_or_queue(ex, &mut f.tasks, item);
        }
    }

    /// The executor of a non-SUBSCRIBE call: 403 only while it has never
    /// subscribed (Mesos's REGISTERING). A terminating executor must still
    /// be able to report its tasks' ends, and one between two connections
    /// (agent restart) may report before it re-subscribes.
    fn subscribed_executor(&self, fid: &str, eid: &str) -> Result<&Executor, Rejection> {
        let ex = self.executor(fid, eid)?;
        if !ex.subscribed {
            return Err(Rejection::Forbidden("Executor is not subscribed".into()));
        }
        Ok(ex)
    }

    /// UPDATE from an executor: queued on its task's stream, ACKNOWLEDGED
    /// at once. 503 while that stream already holds
    /// [`status_updates::MAX_PENDING`] unacknowledged updates (a scheduler
    /// that never acknowledges must not make the agent grow without bound;
    /// the executor keeps the update and sends it again).
    pub fn executor_update(&mut self, call: executor::Call) -> Result<(), Rejection> {
        self.ensure_running()?;
        let fid = call.framework_id.value;
        let eid = call.executor_id.value;
        let status = call.update.map(|u| u.status).unwrap_or_default();
        let mut status = self.normalize(self.subscribed_executor(&fid, &eid)?, status);
        if is_terminal(status.state()) {
            self.blame_memory_limit(&fid, &eid, &mut status);
        }
        let backlog = self
            .frameworks
            .get(&fid)
            .and_then(|f| f.streams.get(&status.task_id.value))
            .map_or(0, UpdateStream::len);
        if backlog >= status_updates::MAX_PENDING {
            return Err(Rejection::ServiceUnavailable(format!(
                "Too many unacknowledged status updates for task {}",
                status.task_id.value
            )));
        }
        debug!(framework_id = %fid, task_id = %status.task_id.value, state = ?status.state(), "status update from executor");
        if is_terminal(status.state()) {
            self.unlink_ended(&fid, &eid, &status.task_id.value);
        }
        self.push_update(&fid, status.clone());
        self.ack_to_executor(&fid, &eid, &status);
        Ok(())
    }

    /// A task of a container that went over its memory limit ends as the
    /// container does (`TASK_FAILED`, `REASON_CONTAINER_LIMITATION_MEMORY`,
    /// from the agent), whatever its executor saw (its process killed): the
    /// kernel's OOM kill usually reaches the executor before the watcher.
    fn blame_memory_limit(&mut self, fid: &str, eid: &str, status: &mut v1::TaskStatus) {
        let Some(ex) = self.frameworks.get(fid).and_then(|f| f.executors.get(eid)) else {
            return;
        };
        let message = match &ex.termination {
            Some(t) if t.reason == Reason::ContainerLimitationMemory => Some(t.message.clone()),
            // The watchdog's verdict comes from its own poll, off the lock.
            _ => self.isolator.oom_killed(&ex.container_id, ex.limits),
        };
        let Some(message) = message else {
            return;
        };
        let container_id = ex.container_id.clone();
        status.state = TaskState::TaskFailed as i32;
        status.reason = Some(Reason::ContainerLimitationMemory as i32);
        status.source = Some(v1::task_status::Source::Agent as i32);
        status.message = Some(message.clone());
        self.container_limited(fid, eid, &container_id, message);
    }

    /// MESSAGE from an executor.
    pub fn executor_message(&mut self, call: executor::Call) -> Result<(), Rejection> {
        self.ensure_running()?;
        let fid = call.framework_id.value;
        let eid = call.executor_id.value;
        self.subscribed_executor(&fid, &eid)?;
        let _ = self.to_master.send(FromAgent::ExecutorMessage {
            index: self.index,
            framework_id: fid,
            executor_id: eid,
            data: call.message.map(|m| m.data).unwrap_or_default(),
        });
        Ok(())
    }

    /// An executor stream's body was dropped.
    pub fn connection_closed(&mut self, fid: &str, eid: &str, conn_id: u64) {
        if let Some(ex) = self
            .frameworks
            .get_mut(fid)
            .and_then(|f| f.executors.get_mut(eid))
            && ex.conn.as_ref().is_some_and(|c| c.conn_id == conn_id)
        {
            debug!(
                framework_id = fid,
                executor_id = eid,
                "executor stream closed"
            );
            ex.conn = None;
        }
    }

    // ----- life cycle -----------------------------------------------------

    fn report(&self) -> AgentReport {
        let mut report = AgentReport {
            checkpointed: self.checkpointed.clone(),
            ..Default::default()
        };
        for (fid, f) in &self.frameworks {
            report.frameworks.push(f.info.clone());
            for ex in f.executors.values().filter(|e| !e.command) {
                report.executors.push((fid.clone(), ex.info.clone()));
            }
            for t in f.tasks.values() {
                report.tasks.push(ReportedTask {
                    framework_id: fid.clone(),
                    info: t.info.clone(),
                    executor_id: (!t.command).then(|| t.executor_id.clone()),
                    state: t.state,
                    latest: t.latest.clone(),
                    pending: f
                        .streams
                        .get(&t.info.task_id.value)
                        .and_then(UpdateStream::head_summary),
                });
            }
        }
        report
    }

    fn register(&mut self) {
        let _ = self.to_master.send(FromAgent::Registered {
            index: self.index,
            report: self.report(),
        });
    }

    /// The agent comes up: (re)register, recover executors, resume updates.
    fn start(&mut self) {
        self.running = true;
        let restarted = self.started_once;
        self.started_once = true;
        if restarted {
            // Recovered from disk, as a restarted Mesos agent does.
            match volumes::load(&self.config.work_dir, self.index) {
                Ok(r) => self.checkpointed = r,
                Err(e) => warn!(error = %e, "checkpointed resources not recovered"),
            }
            for f in self.frameworks.values_mut() {
                for ex in f.executors.values_mut() {
                    if ex.pid.is_some() && matches!(ex.phase, Phase::Running | Phase::Registering) {
                        ex.phase = Phase::Reregistering;
                        ex.generation += 1;
                    }
                }
            }
            self.deferred.push(Deferred::ReregistrationTimeout);
        }
        self.register();
        for exit in std::mem::take(&mut self.pending_exits) {
            self.executor_exited(
                &exit.framework_id,
                &exit.executor_id,
                &exit.container_id,
                Some(exit.status),
            );
        }
        self.resend_heads(None);
    }

    /// The agent goes down; its state stays.
    fn stop(&mut self) {
        self.running = false;
        for f in self.frameworks.values_mut() {
            for ex in f.executors.values_mut() {
                if let Some(c) = ex.conn.take() {
                    c.cancel.cancel();
                }
            }
        }
        let _ = self
            .to_master
            .send(FromAgent::Disconnected { index: self.index });
    }

    /// The first step of a cluster shutdown: no new executors from now on,
    /// and every executor gets SIGTERM (`baton-executor` stops its tasks as
    /// on SHUTDOWN), and SHUTDOWN too if it is connected. Returns each
    /// container's session with its shutdown grace, after which it is to be
    /// destroyed.
    pub fn terminate_all(&mut self) -> Vec<(u32, Duration)> {
        self.closing = true;
        let default_grace = self.config.executor_shutdown_grace_period;
        let mut sessions = Vec::new();
        for ex in self
            .frameworks
            .values_mut()
            .flat_map(|f| f.executors.values_mut())
        {
            ex.phase = Phase::Terminating;
            send_exec(ex, &exec_event(event::Type::Shutdown));
            if let Some(pid) = ex.pid {
                containers::terminate(pid);
                sessions.push((pid, shutdown_grace(&ex.info, default_grace)));
            }
        }
        sessions
    }

    /// Destroys every container (shutdown).
    pub fn kill_all(&mut self) {
        for f in self.frameworks.values_mut() {
            for ex in f.executors.values_mut() {
                if let Some(c) = ex.conn.take() {
                    c.cancel.cancel();
                }
                if let Some(pid) = ex.pid {
                    containers::kill_session(pid);
                }
            }
        }
    }
}

struct ServerHandle {
    token: CancellationToken,
    join: tokio::task::JoinHandle<()>,
}

/// An agent and what runs it.
pub struct Agent {
    /// 1-based index.
    pub index: usize,
    /// `<master>-S<i>`.
    pub id: String,
    /// `127.0.0.<i>:<port>`.
    pub endpoint: SocketAddr,
    config: Arc<ClusterConfig>,
    /// The cluster's isolator.
    pub isolator: Arc<Isolator>,
    /// The fetcher's HTTPS client.
    https: HttpsClient,
    scope: Scope,
    state: Mutex<AgentState>,
    running: watch::Sender<bool>,
    wake: Notify,
    server: tokio::sync::Mutex<Option<ServerHandle>>,
}

impl std::fmt::Debug for Agent {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Agent")
            .field("index", &self.index)
            .field("id", &self.id)
            .field("endpoint", &self.endpoint)
            .finish_non_exhaustive()
    }
}

/// What every agent of a cluster shares.
#[derive(Debug, Clone)]
pub struct ClusterParts {
    /// The cluster's configuration.
    pub config: Arc<ClusterConfig>,
    /// Where background work is spawned.
    pub scope: Scope,
    /// To the master.
    pub to_master: mpsc::UnboundedSender<FromAgent>,
    /// How containers are isolated.
    pub isolator: Arc<Isolator>,
    /// The fetcher's HTTPS client (the system's roots and
    /// `fetcher_ca_file`).
    pub https: HttpsClient,
}

impl Agent {
    /// A stopped agent.
    pub fn new(
        index: usize,
        id: String,
        endpoint: SocketAddr,
        agent_info: v1::AgentInfo,
        parts: ClusterParts,
    ) -> Arc<Agent> {
        let ClusterParts {
            config,
            scope,
            to_master,
            isolator,
            https,
        } = parts;
        let state = AgentState {
            index,
            agent_id: id.clone(),
            endpoint,
            agent_info,
            config: config.clone(),
            to_master,
            running: false,
            started_once: false,
            frameworks: BTreeMap::new(),
            pending_exits: Vec::new(),
            next_conn: 0,
            next_generation: 0,
            deferred: Vec::new(),
            wake: false,
            closing: false,
            sandboxes: sandboxes::Sandboxes::default(),
            isolator: isolator.clone(),
            checkpointed: volumes::load(&config.work_dir, index).unwrap_or_else(|e| {
                warn!(agent = index, error = %e, "checkpointed resources not recovered");
                Resources::default()
            }),
        };
        Arc::new(Agent {
            index,
            id,
            endpoint,
            isolator,
            https,
            config,
            scope,
            state: Mutex::new(state),
            running: watch::Sender::new(false),
            wake: Notify::new(),
            server: tokio::sync::Mutex::new(None),
        })
    }

    /// The state. Poisoning is ignored (see the master's `lock`).
    pub fn lock(&self) -> MutexGuard<'_, AgentState> {
        self.state.lock().unwrap_or_else(|e| e.into_inner())
    }

    /// Runs `f` under the lock, then spawns what it deferred.
    pub fn with_state<R>(self: &Arc<Self>, f: impl FnOnce(&mut AgentState) -> R) -> R {
        let (r, deferred, wake) = {
            let mut st = self.lock();
            let r = f(&mut st);
            (
                r,
                std::mem::take(&mut st.deferred),
                std::mem::take(&mut st.wake),
            )
        };
        for d in deferred {
            self.spawn_deferred(d);
        }
        if wake {
            self.wake.notify_one();
        }
        r
    }

    fn span(&self) -> tracing::Span {
        tracing::info_span!("agent", i = self.index)
    }

    /// Creates the container's cgroups with its current limits; gives the
    /// `cgroup.procs` files its executor joins before it runs.
    fn isolate(
        &self,
        framework_id: &str,
        executor_id: &str,
        container_id: &str,
    ) -> Result<Vec<PathBuf>, containers::ContainerError> {
        let limits = self
            .lock()
            .container_limits(framework_id, executor_id, container_id);
        let Some(limits) = limits else {
            return Ok(Vec::new());
        };
        self.isolator
            .prepare(container_id, limits)
            .map_err(|e| containers::ContainerError::Isolation(e.to_string()))
    }

    /// Until the container ends: checks its memory every
    /// [`LIMIT_POLL`]; over its limit, its tasks fail with
    /// `REASON_CONTAINER_LIMITATION_MEMORY` and it is destroyed.
    async fn watch_limits(
        self: Arc<Self>,
        framework_id: String,
        executor_id: String,
        container_id: String,
        pid: u32,
    ) {
        loop {
            tokio::time::sleep(LIMIT_POLL).await;
            let limits = self
                .lock()
                .container_limits(&framework_id, &executor_id, &container_id);
            let Some(limits) = limits else {
                return;
            };
            let isolator = self.isolator.clone();
            let id = container_id.clone();
            let verdict =
                tokio::task::spawn_blocking(move || isolator.memory_limitation(&id, pid, limits))
                    .await
                    .ok()
                    .flatten();
            if let Some(message) = verdict {
                self.with_state(|st| {
                    st.container_limited(&framework_id, &executor_id, &container_id, message)
                });
                return;
            }
        }
    }

    /// Where this agent's fetcher cache lives (Mesos's
    /// `--fetcher_cache_dir`); it survives the agent's restarts.
    fn fetcher_cache_dir(&self) -> PathBuf {
        self.config
            .work_dir
            .join("fetcher-cache")
            .join(format!("agent-{}", self.index))
    }

    fn spawn_deferred(self: &Arc<Self>, d: Deferred) {
        let agent = self.clone();
        let span = self.span();
        match d {
            Deferred::Launch {
                framework_id,
                executor_id,
                container_id,
                directory,
                program,
                env,
                uris,
                volumes,
            } => self.scope.spawn(
                async move {
                    let cache = agent.fetcher_cache_dir();
                    let started =
                        match containers::prepare_sandbox(&directory, &uris, &cache, &agent.https)
                            .await
                            .and_then(|()| {
                                volumes::link(&directory, &volumes)
                                    .map_err(|e| containers::ContainerError::Volume(e.to_string()))
                            }) {
                            Ok(()) => agent
                                .isolate(&framework_id, &executor_id, &container_id)
                                .and_then(|join| {
                                    containers::spawn(&program, &directory, &env, &join)
                                }),
                            Err(e) => Err(e),
                        };
                    let mut child = match started {
                        Ok(child) => child,
                        Err(e) => {
                            // Its cgroups may exist already: nothing joined them.
                            let (isolator, id) = (agent.isolator.clone(), container_id.clone());
                            let _ =
                                tokio::task::spawn_blocking(move || isolator.destroy(&id)).await;
                            agent.with_state(|st| {
                                st.executor_launch_failed(
                                    &framework_id,
                                    &executor_id,
                                    &container_id,
                                    &e.launch_message(&container_id),
                                )
                            });
                            return;
                        }
                    };
                    let pid = child.id().unwrap_or(0);
                    let work_dir = agent.config.work_dir.clone();
                    checkpoint::record(&work_dir, &container_id, pid);
                    let keep = agent.with_state(|st| {
                        st.executor_started(&framework_id, &executor_id, &container_id, pid)
                    });
                    if keep {
                        agent.scope.spawn(agent.clone().watch_limits(
                            framework_id.clone(),
                            executor_id.clone(),
                            container_id.clone(),
                            pid,
                        ));
                    }
                    // From here on the task owns a process: it runs to the
                    // end even when the cluster shuts down (which waits for
                    // it), so that no executor outlives the cluster.
                    let owner = agent.clone();
                    agent.scope.spawn_to_completion(
                        async move {
                            let agent = owner;
                            if !keep {
                                // The child may not have called setsid(2) yet, so
                                // kill it directly too (it is unreaped: no pid reuse).
                                let _ = child.start_kill();
                                let _ = tokio::task::spawn_blocking(move || {
                                    containers::kill_session(pid)
                                })
                                .await;
                            }
                            let status = child.wait().await;
                            let raw = status
                                .ok()
                                .map(std::os::unix::process::ExitStatusExt::into_raw);
                            // Destroy what the executor left in its session before
                            // its tasks are reported gone, as Mesos reports them only
                            // once the container is destroyed.
                            let forgotten = container_id.clone();
                            let isolator = agent.isolator.clone();
                            let _ = tokio::task::spawn_blocking(move || {
                                containers::kill_session(pid);
                                isolator.destroy(&forgotten);
                                checkpoint::forget(&work_dir, &forgotten);
                            })
                            .await;
                            agent.with_state(|st| {
                                st.executor_exited(&framework_id, &executor_id, &container_id, raw)
                            });
                        }
                        .instrument(tracing::Span::current()),
                    );
                }
                .instrument(span),
            ),
            Deferred::RegistrationTimeout {
                framework_id,
                executor_id,
                generation,
            } => {
                let after = self.config.executor_registration_timeout;
                self.scope.spawn(async move {
                    tokio::time::sleep(after).await;
                    agent.with_state(|st| {
                        st.registration_expired(&framework_id, &executor_id, generation)
                    });
                });
            }
            Deferred::ReregistrationTimeout => {
                let after = self.config.executor_reregistration_timeout;
                self.scope.spawn(async move {
                    tokio::time::sleep(after).await;
                    agent.with_state(AgentState::reregistration_expired);
                });
            }
            Deferred::Destroy { pid } => {
                self.scope
                    .tracker
                    .spawn_blocking(move || containers::kill_session(pid));
            }
            Deferred::ShutdownGrace {
                framework_id,
                executor_id,
                generation,
                after,
            } => self.scope.spawn(async move {
                tokio::time::sleep(after).await;
                agent.with_state(|st| st.grace_expired(&framework_id, &executor_id, generation));
            }),
            Deferred::Connection {
                framework_id,
                executor_id,
                conn_id,
                tx,
                heartbeat,
                cancel,
            } => self.scope.spawn(async move {
                let start = Instant::now() + EXECUTOR_HEARTBEAT;
                let mut ticker = tokio::time::interval_at(start, EXECUTOR_HEARTBEAT);
                loop {
                    tokio::select! {
                        _ = cancel.cancelled() => return,
                        _ = tx.closed() => break,
                        _ = ticker.tick() => {
                            if tx.push(heartbeat.clone()).is_err() {
                                break;
                            }
                        }
                    }
                }
                drop(tx);
                agent.with_state(|st| st.connection_closed(&framework_id, &executor_id, conn_id));
            }),
        }
    }

    /// Starts (or restarts) the agent on its address. The first start is
    /// given the listener bound by the cluster.
    pub async fn start(self: &Arc<Self>, listener: Option<TcpListener>) -> std::io::Result<()> {
        let mut server = self.server.lock().await;
        if server.is_some() {
            return Ok(());
        }
        let listener = match listener {
            Some(l) => l,
            None => bind_again(self.endpoint).await?,
        };
        info!(agent = self.index, endpoint = %self.endpoint, "agent starting");
        self.with_state(AgentState::start);
        let token = self.scope.token.child_token();
        let app = http::router(self.clone());
        let shutdown = token.clone().cancelled_owned();
        let join = self.scope.tracker.spawn(
            async move {
                if let Err(e) = axum::serve(listener, app)
                    .with_graceful_shutdown(shutdown)
                    .await
                {
                    warn!(error = %e, "agent server failed");
                }
            }
            .instrument(self.span()),
        );
        self.running.send_replace(true);
        *server = Some(ServerHandle { token, join });
        Ok(())
    }

    /// Stops the agent: server down, executor streams closed, state kept.
    pub async fn stop(self: &Arc<Self>) {
        let mut server = self.server.lock().await;
        let Some(handle) = server.take() else {
            return;
        };
        info!(agent = self.index, "agent stopping");
        self.running.send_replace(false);
        self.with_state(AgentState::stop);
        handle.token.cancel();
        let abort = handle.join.abort_handle();
        if tokio::time::timeout(Duration::from_secs(5), handle.join)
            .await
            .is_err()
        {
            warn!(
                agent = self.index,
                "agent server did not stop in time; aborting it"
            );
            abort.abort();
        }
    }

    /// Handles master messages in order, only while the agent is up.
    pub async fn run_inbox(self: Arc<Self>, mut rx: mpsc::UnboundedReceiver<ToAgent>) {
        let mut running = self.running.subscribe();
        loop {
            let Some(msg) = rx.recv().await else {
                return;
            };
            if running.wait_for(|r| *r).await.is_err() {
                return;
            }
            self.with_state(|st| st.handle(msg));
        }
    }

    /// Retries unacknowledged status updates when due.
    pub async fn run_retries(self: Arc<Self>) {
        loop {
            let next = self.with_state(|st| st.retry_due(Instant::now()));
            let until = next.unwrap_or_else(|| Instant::now() + Duration::from_secs(60));
            tokio::select! {
                _ = tokio::time::sleep_until(until) => {}
                _ = self.wake.notified() => {}
            }
        }
    }

    /// SIGTERMs every executor and refuses new ones (see
    /// [`AgentState::terminate_all`]).
    pub fn terminate_all(&self) -> Vec<(u32, Duration)> {
        self.lock().terminate_all()
    }

    /// SIGKILLs every container (shutdown).
    pub fn kill_all(&self) {
        self.lock().kill_all();
    }
}

/// Binds the agent's address again after a stop; the old socket may linger
/// for a moment.
async fn bind_again(addr: SocketAddr) -> std::io::Result<TcpListener> {
    let mut last = None;
    for _ in 0..50 {
        match TcpListener::bind(addr).await {
            Ok(l) => return Ok(l),
            Err(e) => {
                last = Some(e);
                tokio::time::sleep(Duration::from_millis(100)).await;
            }
        }
    }
    Err(last.unwrap_or_else(|| std::io::Error::other("bind failed")))
}

#[cfg(test)]
mod tests {
    use super::*;

    const FID: &str = "m-0000";
    const EID: &str = "e";

    /// A running agent with framework `m-0000`, whose executor `e` has been
    /// started (not subscribed yet) with task `t` queued.
    fn agent_with_executor() -> (AgentState, mpsc::UnboundedReceiver<FromAgent>) {
        let (to_master, from_agent) = mpsc::unbounded_channel();
        let mut st = AgentState {
            index: 1,
            agent_id: "m-S1".into(),
            endpoint: "127.0.0.1:5051".parse().unwrap(),
            agent_info: v1::AgentInfo::default(),
            config: Arc::new(ClusterConfig::default()),
            to_master,
            running: true,
            started_once: true,
            frameworks: BTreeMap::new(),
            pending_exits: Vec::new(),
            next_conn: 0,
            next_generation: 0,
            deferred: Vec::new(),
            wake: false,
            closing: false,
            sandboxes: sandboxes::Sandboxes::default(),
            isolator: Arc::new(Isolator::new(&crate::config::IsolationConfig {
                isolation: crate::config::Isolation::Posix,
                ..Default::default()
            })),
            checkpointed: Resources::default(),
        };
        let task = v1::TaskInfo {
            name: "t".into(),
            task_id: util::task_id("t"),
            ..Default::default()
        };
        let executor = Executor {
            info: v1::ExecutorInfo {
                executor_id: util::executor_id(EID),
                ..Default::default()
            },
            command: false,
            container_id: "c".into(),
            phase: Phase::Registering,
            pid: None,
            conn: None,
            queued: vec![Queued::Task(Box::new(task.clone()))],
            ever_sent: false,
            subscribed: false,
            termination: None,
            generation: 0,
            limits: limits_of(&[], &[]),
        };
        st.frameworks.insert(
            FID.into(),
            AgentFramework {
                info: v1::FrameworkInfo {
                    id: Some(util::framework_id(FID)),
                    ..Default::default()
                },
                executors: BTreeMap::from([(EID.to_string(), executor)]),
                tasks: BTreeMap::from([(
                    "t".to_string(),
                    AgentTask {
                        info: task,
                        executor_id: EID.into(),
                        command: false,
                        state: TaskState::TaskStaging,
                        latest: None,
                        delivered: false,
                    },
                )]),
                streams: BTreeMap::new(),
                shutting_down: false,
            },
        );
        (st, from_agent)
    }

    fn call(ty: executor::call::Type) -> executor::Call {
        executor::Call {
            executor_id: util::executor_id(EID),
            framework_id: util::framework_id(FID),
            r#type: Some(ty as i32),
            ..Default::default()
        }
    }

    fn subscribe(updates: Vec<v1::TaskStatus>) -> executor::Call {
        executor::Call {
            subscribe: Some(executor::call::Subscribe {
                unacknowledged_tasks: Vec::new(),
                unacknowledged_updates: updates
                    .into_iter()
                    .map(|status| executor::call::Update { status })
                    .collect(),
            }),
            ..call(executor::call::Type::Subscribe)
        }
    }

    fn running(uuid: Option<Vec<u8>>) -> v1::TaskStatus {
        let mut s = util::status(
            util::task_id("t"),
            TaskState::TaskRunning,
            v1::task_status::Source::Executor,
        );
        s.uuid = uuid;
        s
    }

    fn update(uuid: Vec<u8>) -> executor::Call {
        executor::Call {
            update: Some(executor::call::Update {
                status: running(Some(uuid)),
            }),
            ..call(executor::call::Type::Update)
        }
    }

    /// The status updates the agent forwarded to the master.
    fn forwarded(rx: &mut mpsc::UnboundedReceiver<FromAgent>) -> Vec<v1::TaskStatus> {
        let mut out = Vec::new();
        while let Ok(msg) = rx.try_recv() {
            if let FromAgent::StatusUpdate { status, .. } = msg {
                out.push(status);
            }
        }
        out
    }

    #[test]
    fn executor_calls_on_a_stopped_agent_get_503() {
        let (mut st, _rx) = agent_with_executor();
        st.running = false;
        let unavailable = |r: Result<(), Rejection>| matches!(r, Err(e) if e.status() == axum::http::StatusCode::SERVICE_UNAVAILABLE);
        assert!(unavailable(
            st.executor_subscribe(subscribe(vec![]), Encoding::Json)
                .map(drop)
        ));
        assert!(unavailable(
            st.executor_update(update(util::new_status_uuid()))
        ));
        assert!(unavailable(
            st.executor_message(call(executor::call::Type::Message))
        ));
        // Nothing was attached to the stopped agent.
        assert!(st.frameworks[FID].executors[EID].conn.is_none());
    }

    #[test]
    fn updates_are_refused_before_subscribe_and_taken_while_shutting_down() {
        let (mut st, mut rx) = agent_with_executor();
        let early = st.executor_update(update(util::new_status_uuid()));
        assert!(
            matches!(&early, Err(e) if e.status() == axum::http::StatusCode::FORBIDDEN),
            "{early:?}"
        );
        let mut stream = st
            .executor_subscribe(subscribe(vec![]), Encoding::Json)
            .unwrap();
        st.shutdown_executor(FID, EID);
        assert_eq!(st.frameworks[FID].executors[EID].phase, Phase::Terminating);
        let killed = util::new_status_uuid();
        let mut call = update(killed.clone());
        if let Some(u) = call.update.as_mut() {
            u.status.state = TaskState::TaskKilled as i32;
        }
        st.executor_update(call).unwrap();
        let sent = forwarded(&mut rx);
        assert_eq!(sent.len(), 1);
        assert_eq!(
            (sent[0].state(), sent[0].uuid.as_ref()),
            (TaskState::TaskKilled, Some(&killed))
        );
        // The executor heard SHUTDOWN, then ACKNOWLEDGED for its update.
        let mut decoder = mesos_proto::recordio::Decoder::default();
        while let Some(b) = stream.try_recv() {
            decoder.feed(&b);
        }
        let mut types = Vec::new();
        while let Ok(Some(r)) = decoder.next_record() {
            types.push(
                Encoding::Json
                    .decode::<executor::Event>(&r)
                    .unwrap()
                    .r#type(),
            );
        }
        assert_eq!(
            types,
            [
                event::Type::Subscribed,
                event::Type::Launch,
                event::Type::Shutdown,
                event::Type::Acknowledged
            ]
        );
    }

    #[test]
    fn resubscribing_with_an_update_without_uuid_does_not_block_the_task() {
        let (mut st, mut rx) = agent_with_executor();
        let valid = util::new_status_uuid();
        let _stream = st
            .executor_subscribe(
                subscribe(vec![running(None), running(Some(valid.clone()))]),
                Encoding::Json,
            )
            .unwrap();
        let sent = forwarded(&mut rx);
        assert_eq!(sent.len(), 1, "{sent:?}");
        assert_eq!(sent[0].uuid.as_ref(), Some(&valid));
        // Acknowledging it lets the next update through.
        st.acknowledge(FID, "t", &valid);
        let next = util::new_status_uuid();
        st.executor_update(update(next.clone())).unwrap();
        assert_eq!(forwarded(&mut rx)[0].uuid.as_ref(), Some(&next));
    }

    #[test]
    fn a_task_stream_refuses_updates_beyond_its_backlog() {
        let (mut st, mut rx) = agent_with_executor();
        let _stream = st
            .executor_subscribe(subscribe(vec![]), Encoding::Protobuf)
            .unwrap();
        let first = util::new_status_uuid();
        st.executor_update(update(first.clone())).unwrap();
        for _ in 1..status_updates::MAX_PENDING {
            st.executor_update(update(util::new_status_uuid())).unwrap();
        }
        let refused = st.executor_update(update(util::new_status_uuid()));
        assert!(
            matches!(&refused, Err(e) if e.status() == axum::http::StatusCode::SERVICE_UNAVAILABLE),
            "{refused:?}"
        );
        // Once the head is acknowledged there is room again.
        assert_eq!(forwarded(&mut rx).len(), 1);
        st.acknowledge(FID, "t", &first);
        st.executor_update(update(util::new_status_uuid())).unwrap();
    }
}
