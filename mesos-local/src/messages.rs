//! The in-process equivalent of the master↔agent libprocess messages.
//!
//! Both directions are unbounded channels: the master never waits for an
//! agent and the reverse, neither holds the other's lock, and per-agent
//! order is kept (as a TCP link would). Their volume is bounded by the
//! bounded inputs that cause them (HTTP calls, executor updates). Messages to
//! a stopped agent wait in its channel and are handled when it comes back,
//! which is how Mesos retries a KILL sent to a disconnected agent.

use std::future::Future;

use mesos_proto::v1;
use tokio_util::sync::CancellationToken;
use tokio_util::task::TaskTracker;

/// Master → agent. Each value is moved once through a channel; boxing
/// the large variants would buy nothing.
#[allow(clippy::large_enum_variant)]
#[derive(Debug, Clone)]
pub enum ToAgent {
    /// LAUNCH of one task (command task, or with its ExecutorInfo).
    RunTask {
        /// The framework, with its id.
        framework: v1::FrameworkInfo,
        /// The task as validated (ExecutorInfo.framework_id filled in).
        task: v1::TaskInfo,
    },
    /// LAUNCH_GROUP.
    RunTaskGroup {
        /// The framework, with its id.
        framework: v1::FrameworkInfo,
        /// The group's executor.
        executor: v1::ExecutorInfo,
        /// The tasks, launched atomically.
        group: v1::TaskGroupInfo,
    },
    /// Scheduler KILL.
    KillTask {
        /// Owner.
        framework_id: String,
        /// The task.
        task_id: String,
        /// Overrides the task's kill policy.
        kill_policy: Option<v1::KillPolicy>,
    },
    /// Scheduler SHUTDOWN of one executor.
    ShutdownExecutor {
        /// Owner.
        framework_id: String,
        /// The executor.
        executor_id: String,
    },
    /// The framework was removed: shut down all its executors.
    ShutdownFramework {
        /// The removed framework.
        framework_id: String,
    },
    /// Scheduler ACKNOWLEDGE, routed to the agent's status-update manager.
    Acknowledge {
        /// Owner.
        framework_id: String,
        /// The task.
        task_id: String,
        /// The uuid acknowledged.
        uuid: Vec<u8>,
    },
    /// The framework (re)subscribed: new FrameworkInfo, resend pending
    /// updates now rather than at the next retry.
    UpdateFramework {
        /// The new info, with id.
        framework: v1::FrameworkInfo,
    },
    /// Scheduler MESSAGE to an executor.
    FrameworkMessage {
        /// Owner.
        framework_id: String,
        /// The executor.
        executor_id: String,
        /// Opaque bytes.
        data: Vec<u8>,
    },
    /// A new master was elected: reregister now.
    Reregister,
    /// RESERVE, UNRESERVE, CREATE or DESTROY changed the agent's
    /// reservations and volumes: all of them now (Mesos's
    /// `CheckpointResourcesMessage`), in the post-refinement format. The
    /// agent checkpoints them and creates or removes volume directories.
    CheckpointResources {
        /// Every dynamic reservation and persistent volume of the agent.
        resources: Vec<v1::Resource>,
    },
}

/// A task as an agent reports it when (re)registering.
#[derive(Debug, Clone)]
pub struct ReportedTask {
    /// Owner.
    pub framework_id: String,
    /// As launched.
    pub info: v1::TaskInfo,
    /// `None` for command tasks.
    pub executor_id: Option<String>,
    /// The agent's latest state of the task.
    pub state: v1::TaskState,
    /// The latest status the agent has for it.
    pub latest: Option<v1::TaskStatus>,
    /// The state and uuid of the head of its status-update stream.
    pub pending: Option<(v1::TaskState, Vec<u8>)>,
}

/// What an agent tells the master when it (re)registers.
#[derive(Debug, Clone, Default)]
pub struct AgentReport {
    /// Frameworks with executors or tasks there.
    pub frameworks: Vec<v1::FrameworkInfo>,
    /// Custom executors running there, by framework.
    pub executors: Vec<(String, v1::ExecutorInfo)>,
    /// Tasks known there.
    pub tasks: Vec<ReportedTask>,
    /// Its checkpointed reservations and volumes.
    pub checkpointed: crate::resources::Resources,
}

/// Agent → master, tagged with the agent's 1-based index.
#[allow(clippy::large_enum_variant)]
#[derive(Debug, Clone)]
pub enum FromAgent {
    /// The agent (re)registered.
    Registered {
        /// Which agent.
        index: usize,
        /// What runs there.
        report: AgentReport,
    },
    /// The agent went down (its link broke).
    Disconnected {
        /// Which agent.
        index: usize,
    },
    /// The head of a task's status-update stream.
    StatusUpdate {
        /// Which agent.
        index: usize,
        /// Owner.
        framework_id: String,
        /// The update, uuid and agent_id set.
        status: v1::TaskStatus,
        /// The agent's latest state of the task (may be ahead of `status`).
        latest_state: v1::TaskState,
    },
    /// A custom executor exited.
    ExecutorExited {
        /// Which agent.
        index: usize,
        /// Owner.
        framework_id: String,
        /// The executor.
        executor_id: String,
        /// Raw wait status.
        status: i32,
    },
    /// An executor's MESSAGE call, for the framework.
    ExecutorMessage {
        /// Which agent.
        index: usize,
        /// Owner.
        framework_id: String,
        /// The executor.
        executor_id: String,
        /// Opaque bytes.
        data: Vec<u8>,
    },
}

/// The background-task scope of a cluster: everything spawned through it is
/// cancelled and awaited on shutdown, so no timer outlives the cluster.
#[derive(Debug, Clone)]
pub struct Scope {
    /// Cancelled on shutdown.
    pub token: CancellationToken,
    /// Tracks every spawned task.
    pub tracker: TaskTracker,
    /// The runtime the cluster started on, so synchronous fault-injection
    /// calls can spawn timers from any thread.
    runtime: tokio::runtime::Handle,
}

impl Scope {
    /// A fresh scope on the current runtime.
    ///
    /// # Panics
    ///
    /// Outside a tokio runtime.
    pub fn new() -> Scope {
        Scope {
            token: CancellationToken::new(),
            tracker: TaskTracker::new(),
            runtime: tokio::runtime::Handle::current(),
        }
    }

    /// Spawns `fut`, dropped as soon as the scope is cancelled.
    pub fn spawn<F>(&self, fut: F)
    where
        F: Future<Output = ()> + Send + 'static,
    {
        let token = self.token.clone();
        self.tracker.spawn_on(
            async move {
                tokio::select! {
                    _ = token.cancelled() => {}
                    _ = fut => {}
                }
            },
            &self.runtime,
        );
    }

    /// Spawns `fut` to run to its end even after the scope is cancelled;
    /// shutdown still waits for it. For work that owns a process: dropping
    /// it midway would leave the process running.
    pub fn spawn_to_completion<F>(&self, fut: F)
    where
        F: Future<Output = ()> + Send + 'static,
    {
        self.tracker.spawn_on(fut, &self.runtime);
    }
}
