//! The executor's state machine: tasks by id, the updates the agent has not
//! acknowledged yet, what each event does, and when to stop.
//!
//! [`Executor`] does no network I/O and reads no clock: callers pass `now`
//! and collect the UPDATE calls it wants sent with
//! [`take_outbox`](Executor::take_outbox). Processes are started and
//! signalled through a [`Launcher`], so the unit tests below drive it with a
//! fake one. [`crate::run()`] connects it to the agent, the processes and the
//! clock.
//!
//! Rules it implements (`shared/reference/mesos-v1-api.md` §4.7, §5):
//! - every update has a fresh uuid and `source = SOURCE_EXECUTOR`, and stays
//!   unacknowledged until the agent's ACKNOWLEDGED names that uuid;
//! - unacknowledged updates are never resent on a live connection, only in
//!   the next SUBSCRIBE, together with the tasks no update of which was
//!   acknowledged yet;
//! - KILL sends SIGTERM to the task's process group and SIGKILL when the
//!   grace period ends; a later KILL may shorten the grace, never extend it;
//! - a task group fails as a unit: when one task fails or is killed, the
//!   others are killed;
//! - a task's `health_check` runs while the task runs (not once it is
//!   being killed), as [`crate::health`] describes: the checks to start or
//!   cancel come out of [`take_health_actions`](Executor::take_health_actions),
//!   their results go into [`on_health_result`](Executor::on_health_result);
//!   every counted failure is reported as TASK_RUNNING with
//!   `healthy = false`, the first pass after the start or after failures
//!   with `healthy = true` (reason `REASON_TASK_HEALTH_CHECK_STATUS_UPDATED`
//!   both); after `consecutive_failures` failures the task is killed as on a
//!   KILL, and its TASK_KILLING and TASK_KILLED say `healthy = false`;
//! - the executor is done once every task is terminal and the agent has
//!   acknowledged every terminal update.

use std::collections::BTreeMap;
use std::path::PathBuf;
use std::time::Duration;

use mesos_proto::executor::{Call, Event, call, event};
use mesos_proto::util;
use mesos_proto::v1::{
    self, TaskState, framework_info::capability::Type as Capability, task_status::Reason,
    task_status::Source,
};
use nix::sys::signal::Signal;
use tokio::time::Instant;

use crate::config::Config;
use crate::health::{self, Checker, Verdict};
use crate::load;
use crate::task::{self, Launcher, Termination};

/// The total of scalar resource `name`.
fn scalar(resources: &[v1::Resource], name: &str) -> f64 {
    resources
        .iter()
        .filter(|r| r.name == name)
        .filter_map(|r| r.scalar.as_ref())
        .map(|s| s.value)
        .sum()
}

/// Grace between SIGTERM and SIGKILL when neither the KILL nor the task
/// names one (the Mesos command executor's default).
pub const DEFAULT_KILL_GRACE: Duration = Duration::from_secs(3);
/// How long to wait for the acknowledgement of the last terminal update
/// before exiting anyway (the command executor's fail-safe over HTTP).
pub const ACK_FAIL_SAFE: Duration = Duration::from_secs(60);
/// Part of the shutdown grace kept for reaping the tasks and sending their
/// terminal updates before the agent destroys the container.
pub const SHUTDOWN_MARGIN: Duration = Duration::from_secs(1);

/// The grace period of a kill: the KILL event's policy, else the task's,
/// else `default`.
pub fn kill_grace(
    task_policy: Option<&v1::KillPolicy>,
    kill_policy: Option<&v1::KillPolicy>,
    default: Duration,
) -> Duration {
    kill_policy
        .and_then(|p| p.grace_period.as_ref())
        .or_else(|| task_policy.and_then(|p| p.grace_period.as_ref()))
        .map(util::from_duration_info)
        .unwrap_or(default)
}

/// When SIGKILL is due after a kill with `grace` at `now`, given the
/// deadline of an earlier kill: the earlier of the two, so a repeated KILL
/// can only shorten the grace.
pub fn sigkill_deadline(current: Option<Instant>, now: Instant, grace: Duration) -> Instant {
    let requested = now + grace;
    current.map_or(requested, |current| current.min(requested))
}

/// The kill grace for tasks on SHUTDOWN: the shutdown grace minus a margin
/// for the terminal updates, at least zero.
pub fn shutdown_kill_grace(shutdown_grace: Duration) -> Duration {
    shutdown_grace.saturating_sub(SHUTDOWN_MARGIN)
}

/// A status update as this executor sends it: fresh 16-byte uuid,
/// `SOURCE_EXECUTOR`, its executor id and the current time.
pub fn executor_status(
    task_id: &v1::TaskId,
    executor_id: &v1::ExecutorId,
    state: TaskState,
    message: Option<String>,
    reason: Option<Reason>,
) -> v1::TaskStatus {
    let mut status = util::status(task_id.clone(), state, Source::Executor);
    status.uuid = Some(util::new_status_uuid());
    status.executor_id = Some(executor_id.clone());
    status.message = message;
    status.reason = reason.map(|r| r as i32);
    status
}

/// The health checking of a task that started at `now` as `spec`, if its
/// TaskInfo has a `health_check`. An invalid one is logged and the task runs
/// unchecked, as under the Mesos command executor (the master rejects such
/// tasks before they get here).
fn task_health(info: &v1::TaskInfo, spec: &task::CommandSpec, now: Instant) -> Option<TaskHealth> {
    let check = info.health_check.as_ref()?;
    match health::Spec::parse(check, spec) {
        Ok(health::Spec { probe, policy }) => {
            tracing::info!(kind = probe.kind(), ?policy, "health checking the task");
            Some(TaskHealth {
                probe,
                checker: Checker::new(policy, now),
            })
        }
        Err(e) => {
            tracing::error!(error = %e, "the task runs without its health check");
            None
        }
    }
}

/// Why the executor stopped.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Outcome {
    /// Every task ended and the agent acknowledged every terminal update.
    Completed,
    /// Every task ended, but the acknowledgement of a terminal update did
    /// not come within [`ACK_FAIL_SAFE`].
    AcknowledgementsTimedOut,
    /// The agent (SHUTDOWN) or a signal asked the executor to stop.
    Shutdown,
    /// The agent is gone for good (or refused us); the tasks were killed.
    AgentLost(String),
}

impl Outcome {
    /// The process exit code: 0 unless the agent was lost.
    pub fn exit_code(&self) -> u8 {
        match self {
            Outcome::Completed | Outcome::AcknowledgementsTimedOut | Outcome::Shutdown => 0,
            Outcome::AgentLost(_) => 1,
        }
    }
}

/// What an event asks of the connection.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Flow {
    /// Keep reading events.
    Continue,
    /// Drop this connection (the agent sent ERROR).
    Disconnect,
}

/// What to do after the connection to the agent broke.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Reconnect {
    /// SUBSCRIBE again (checkpointing: the agent can recover us).
    Yes,
    /// Do not; the executor is stopping.
    No,
}

/// Why the executor is stopping before its tasks ended on their own.
#[derive(Debug, Clone, PartialEq, Eq)]
enum Ending {
    Shutdown { deadline: Instant },
    AgentLost { deadline: Instant, reason: String },
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Phase {
    Running {
        pgid: i32,
    },
    /// SIGTERM sent; SIGKILL at `sigkill_at` unless already sent.
    Killing {
        pgid: i32,
        sigkill_at: Instant,
        sigkilled: bool,
    },
    Terminal(TaskState),
}

#[derive(Debug)]
struct Task {
    info: v1::TaskInfo,
    group: Option<usize>,
    phase: Phase,
    /// The agent acknowledged some update of this task.
    acknowledged: bool,
    /// The uuid of the terminal update, until the agent acknowledged it.
    terminal_uuid: Option<Vec<u8>>,
    /// Its health check, while it runs.
    health: Option<TaskHealth>,
    /// Killed for failing its health check: later updates say
    /// `healthy = false`.
    unhealthy: bool,
    span: tracing::Span,
}

#[derive(Debug)]
struct TaskHealth {
    probe: health::Probe,
    checker: Checker,
}

impl Task {
    fn is_terminal(&self) -> bool {
        matches!(self.phase, Phase::Terminal(_))
    }

    fn pgid(&self) -> Option<i32> {
        match self.phase {
            Phase::Running { pgid } | Phase::Killing { pgid, .. } => Some(pgid),
            Phase::Terminal(_) => None,
        }
    }

    /// No more health checks; the one in flight, if any, is to be
    /// cancelled.
    fn stop_health(&mut self) -> Option<health::Action> {
        let health = self.health.as_mut()?;
        health.checker.stop().map(|_| health::Action::Cancel {
            task_id: self.info.task_id.value.clone(),
        })
    }
}

/// An update the agent has not acknowledged.
#[derive(Debug)]
struct Pending {
    update: call::Update,
    /// Sent as an UPDATE, or part of a SUBSCRIBE, since the last
    /// SUBSCRIBE was built; otherwise it goes out when SUBSCRIBED arrives.
    delivered: bool,
}

/// The executor's state; see the module documentation.
#[derive(Debug)]
pub struct Executor<L> {
    framework_id: v1::FrameworkId,
    executor_id: v1::ExecutorId,
    sandbox: PathBuf,
    checkpoint: bool,
    shutdown_grace: Duration,
    launcher: L,
    tasks: BTreeMap<String, Task>,
    /// Tasks launched so far, including those that failed to start.
    launched: usize,
    groups: usize,
    pending: Vec<Pending>,
    outbox: Vec<Call>,
    /// Health checks to start or cancel.
    health_actions: Vec<health::Action>,
    /// SUBSCRIBED arrived on the current connection.
    live: bool,
    /// The framework understands TASK_KILLING.
    killing_capable: bool,
    ending: Option<Ending>,
    /// Since when every task has been terminal.
    all_terminal_since: Option<Instant>,
}

impl<L: Launcher> Executor<L> {
    /// A fresh executor with no tasks.
    pub fn new(config: &Config, launcher: L) -> Executor<L> {
        Executor {
            framework_id: util::framework_id(config.framework_id.clone()),
            executor_id: util::executor_id(config.executor_id.clone()),
            sandbox: config.sandbox.clone(),
            checkpoint: config.checkpoint,
            shutdown_grace: config.shutdown_grace_period,
            launcher,
            tasks: BTreeMap::new(),
            launched: 0,
            groups: 0,
            pending: Vec::new(),
            outbox: Vec::new(),
            health_actions: Vec::new(),
            live: false,
            killing_capable: false,
            ending: None,
            all_terminal_since: None,
        }
    }

    /// The SUBSCRIBE call for a (re)connection: it carries every update and
    /// task the agent has not acknowledged, so the agent can re-feed them.
    pub fn subscribe_call(&mut self) -> Call {
        for pending in &mut self.pending {
            pending.delivered = true;
        }
        let subscribe = call::Subscribe {
            unacknowledged_tasks: self
                .tasks
                .values()
                .filter(|t| !t.acknowledged)
                .map(|t| t.info.clone())
                .collect(),
            unacknowledged_updates: self.pending.iter().map(|p| p.update.clone()).collect(),
        };
        let mut call = self.call(call::Type::Subscribe);
        call.subscribe = Some(subscribe);
        call
    }

    /// A HEARTBEAT call, which keeps intermediaries from closing the idle
    /// call connection.
    pub fn heartbeat_call(&self) -> Call {
        self.call(call::Type::Heartbeat)
    }

    /// The tasks running now (not being killed), for load reports.
    pub fn running_tasks(&self) -> Vec<load::RunningTask> {
        self.tasks
            .values()
            .filter_map(|task| match task.phase {
                Phase::Running { pgid } => Some(load::RunningTask {
                    task_id: task.info.task_id.value.clone(),
                    pgid,
                    cpus: scalar(&task.info.resources, "cpus"),
                    mem_mb: scalar(&task.info.resources, "mem"),
                }),
                _ => None,
            })
            .collect()
    }

    /// A MESSAGE call to the framework carrying `data`.
    pub fn message_call(&self, data: Vec<u8>) -> Call {
        let mut call = self.call(call::Type::Message);
        call.message = Some(call::Message { data });
        call
    }

    /// The UPDATE calls to send now, in order.
    pub fn take_outbox(&mut self) -> Vec<Call> {
        std::mem::take(&mut self.outbox)
    }

    /// The health checks to start or cancel now, in order.
    pub fn take_health_actions(&mut self) -> Vec<health::Action> {
        std::mem::take(&mut self.health_actions)
    }

    /// Whether SUBSCRIBED arrived on the current connection.
    pub fn is_live(&self) -> bool {
        self.live
    }

    /// Whether a connection to the agent is still wanted (it is not once
    /// the executor is stopping).
    pub fn wants_connection(&self) -> bool {
        self.ending.is_none()
    }

    /// Handles one event from the agent.
    pub fn handle_event(&mut self, event: Event, now: Instant) -> Flow {
        use event::Type;
        match event.r#type() {
            Type::Subscribed => match event.subscribed {
                Some(subscribed) => self.subscribed(&subscribed),
                None => tracing::warn!("SUBSCRIBED without its body; ignored"),
            },
            Type::Launch => match event.launch {
                Some(launch) => {
                    self.all_terminal_since = None;
                    self.launch(launch.task, None, now);
                }
                None => tracing::warn!("LAUNCH without its body; ignored"),
            },
            Type::LaunchGroup => match event.launch_group {
                Some(launch_group) => {
                    self.all_terminal_since = None;
                    let group = self.groups;
                    self.groups += 1;
                    for task in launch_group.task_group.tasks {
                        self.launch(task, Some(group), now);
                    }
                }
                None => tracing::warn!("LAUNCH_GROUP without its body; ignored"),
            },
            Type::Kill => match event.kill {
                Some(kill) => {
                    self.kill(&kill.task_id.value, kill.kill_policy.as_ref(), None, now);
                }
                None => tracing::warn!("KILL without its body; ignored"),
            },
            Type::Acknowledged => match event.acknowledged {
                Some(ack) => self.acknowledged(&ack.task_id, &ack.uuid),
                None => tracing::warn!("ACKNOWLEDGED without its body; ignored"),
            },
            Type::Shutdown => {
                tracing::info!("the agent asked us to shut down");
                self.shutdown(now);
            }
            Type::Error => {
                let message = event.error.map(|e| e.message).unwrap_or_default();
                tracing::warn!(%message, "the agent sent ERROR; dropping the connection");
                return Flow::Disconnect;
            }
            Type::Message => {
                let bytes = event.message.map_or(0, |m| m.data.len());
                tracing::debug!(bytes, "framework message ignored");
            }
            Type::Heartbeat => tracing::trace!("heartbeat"),
            Type::Unknown => tracing::warn!(r#type = ?event.r#type, "unknown event ignored"),
        }
        Flow::Continue
    }

    /// A task's process ended.
    pub fn on_exit(&mut self, task_id: &str, termination: Termination, now: Instant) {
        let Some(task) = self.tasks.get_mut(task_id) else {
            tracing::warn!(task_id, "exit of an unknown task");
            return;
        };
        let _span = task.span.clone().entered();
        let (pgid, killing) = match task.phase {
            Phase::Running { pgid } => (pgid, false),
            Phase::Killing { pgid, .. } => (pgid, true),
            Phase::Terminal(_) => return,
        };
        // The task is over: nothing it forked may outlive it.
        self.launcher.signal(pgid, Signal::SIGKILL);
        let state = if killing {
            TaskState::TaskKilled
        } else if termination.success() {
            TaskState::TaskFinished
        } else {
            TaskState::TaskFailed
        };
        tracing::info!(state = state.as_str_name(), "{}", termination.describe());
        self.finish(task_id, state, Some(termination.describe()), None, now);
    }

    /// The result of a health check started by a
    /// [`health::Action::Run`]. Results for a task no longer running, or of a
    /// cancelled check, are ignored.
    pub fn on_health_result(&mut self, finished: health::Finished, now: Instant) {
        let Some(task) = self.tasks.get_mut(&finished.task_id) else {
            tracing::debug!(task_id = %finished.task_id, "health check result of an unknown task");
            return;
        };
        let Some(health) = task.health.as_mut() else {
            return;
        };
        let passed = finished.result.is_ok();
        let Some(verdict) = health.checker.record(finished.attempt, passed, now) else {
            tracing::debug!(task_id = %finished.task_id, "late health check result ignored");
            return;
        };
        let _span = task.span.clone().entered();
        let kind = health.probe.kind();
        let task_id = task.info.task_id.clone();
        let cause = finished.result.err().unwrap_or_default();
        match verdict {
            Verdict::IgnoredInGrace => {
                tracing::info!(%cause, "{kind} health check failed within the grace period; ignored");
            }
            Verdict::StillHealthy => tracing::debug!("{kind} health check passed"),
            Verdict::BecameHealthy => {
                tracing::info!("{kind} health check passed; reporting the task healthy");
                self.emit_health(&task_id, true, None);
            }
            Verdict::Unhealthy { consecutive, kill } => {
                let message =
                    format!("{kind} health check failed: {cause} ({consecutive} in a row)");
                tracing::warn!("{message}");
                self.emit_health(&task_id, false, Some(message));
                if kill {
                    tracing::warn!(consecutive, "killing the task: it failed its health check");
                    if let Some(task) = self.tasks.get_mut(&task_id.value) {
                        task.unhealthy = true;
                    }
                    self.kill(&task_id.value, None, None, now);
                }
            }
        }
    }

    /// Sends SIGKILL to every task whose grace period is over, and starts
    /// the health checks that are due.
    pub fn on_timer(&mut self, now: Instant) {
        for task in self.tasks.values_mut() {
            if let Some(health) = &mut task.health
                && let Some(attempt) = health.checker.start_if_due(now)
            {
                self.health_actions.push(health::Action::Run {
                    task_id: task.info.task_id.value.clone(),
                    attempt,
                    probe: health.probe.clone(),
                    timeout: health.checker.policy().timeout,
                });
            }
            if let Phase::Killing {
                pgid,
                sigkill_at,
                sigkilled: sigkilled @ false,
            } = &mut task.phase
                && *sigkill_at <= now
            {
                let _span = task.span.enter();
                tracing::info!("grace period over; sending SIGKILL");
                self.launcher.signal(*pgid, Signal::SIGKILL);
                *sigkilled = true;
            }
        }
    }

    /// The next time [`on_timer`](Executor::on_timer) or
    /// [`outcome`](Executor::outcome) has something to do.
    pub fn next_deadline(&self) -> Option<Instant> {
        let kills = self.tasks.values().filter_map(|t| match t.phase {
            Phase::Killing {
                sigkill_at,
                sigkilled: false,
                ..
            } => Some(sigkill_at),
            _ => None,
        });
        let ending = self.ending.as_ref().map(|e| match e {
            Ending::Shutdown { deadline } | Ending::AgentLost { deadline, .. } => *deadline,
        });
        let checks = self
            .tasks
            .values()
            .filter_map(|t| t.health.as_ref()?.checker.due());
        let fail_safe = self.fail_safe_deadline();
        kills.chain(ending).chain(checks).chain(fail_safe).min()
    }

    /// SHUTDOWN (or SIGTERM): kill every task within the shutdown grace.
    pub fn shutdown(&mut self, now: Instant) {
        if self.ending.is_some() {
            return;
        }
        self.ending = Some(Ending::Shutdown {
            deadline: now + self.shutdown_grace,
        });
        self.kill_all(now);
    }

    /// The agent is gone for good: kill every task and stop.
    pub fn lose_agent(&mut self, reason: String, now: Instant) {
        self.live = false;
        if matches!(self.ending, Some(Ending::AgentLost { .. })) {
            return;
        }
        tracing::error!(%reason, "giving up on the agent; killing all tasks");
        self.ending = Some(Ending::AgentLost {
            deadline: now + self.shutdown_grace,
            reason,
        });
        self.kill_all(now);
    }

    /// The connection to the agent broke (EOF, error or ERROR event).
    /// Without checkpointing the agent cannot recover us, so the tasks are
    /// killed (Mesos's rule); with it, the caller re-SUBSCRIBEs.
    pub fn on_disconnected(&mut self, now: Instant) -> Reconnect {
        self.live = false;
        if self.ending.is_some() {
            return Reconnect::No;
        }
        if self.checkpoint {
            return Reconnect::Yes;
        }
        self.lose_agent(
            "disconnected from the agent, and checkpointing is off".into(),
            now,
        );
        Reconnect::No
    }

    /// Whether, and how, the executor should stop now.
    pub fn outcome(&self, now: Instant) -> Option<Outcome> {
        let all_terminal = self.tasks.values().all(Task::is_terminal);
        let all_acknowledged = self.tasks.values().all(|t| t.terminal_uuid.is_none());
        match &self.ending {
            Some(Ending::Shutdown { deadline }) => {
                // After SHUTDOWN the agent often closes the stream; then no
                // acknowledgement can come.
                let settled = all_terminal && (all_acknowledged || !self.live);
                (settled || now >= *deadline).then_some(Outcome::Shutdown)
            }
            Some(Ending::AgentLost { deadline, reason }) => {
                (all_terminal || now >= *deadline).then(|| Outcome::AgentLost(reason.clone()))
            }
            None if self.tasks.is_empty() => None,
            None if all_terminal && all_acknowledged => Some(Outcome::Completed),
            None => self
                .fail_safe_deadline()
                .is_some_and(|at| now >= at)
                .then_some(Outcome::AcknowledgementsTimedOut),
        }
    }

    /// SIGKILL to every task still running; the last thing before exiting.
    pub fn kill_all_now(&mut self) {
        for task in self.tasks.values() {
            if let Some(pgid) = task.pgid() {
                let _span = task.span.enter();
                tracing::warn!("still running at exit; sending SIGKILL");
                self.launcher.signal(pgid, Signal::SIGKILL);
            }
        }
    }

    /// The launcher (tests inspect their fake one).
    pub fn launcher(&self) -> &L {
        &self.launcher
    }

    fn call(&self, r#type: call::Type) -> Call {
        Call {
            executor_id: self.executor_id.clone(),
            framework_id: self.framework_id.clone(),
            r#type: Some(r#type as i32),
            ..Default::default()
        }
    }

    /// The fail-safe applies only on a live connection: while reconnecting
    /// the recovery timeout bounds the wait instead.
    fn fail_safe_deadline(&self) -> Option<Instant> {
        if self.ending.is_some() || !self.live {
            return None;
        }
        self.all_terminal_since.map(|since| since + ACK_FAIL_SAFE)
    }

    fn subscribed(&mut self, subscribed: &event::Subscribed) {
        self.killing_capable = subscribed
            .framework_info
            .capabilities
            .iter()
            .any(|c| c.r#type() == Capability::TaskKillingState);
        self.live = true;
        tracing::info!(
            agent = %subscribed.agent_info.hostname,
            task_killing = self.killing_capable,
            "subscribed"
        );
        // Updates made after the SUBSCRIBE call was built were not in it.
        for pending in self.pending.iter_mut().filter(|p| !p.delivered) {
            pending.delivered = true;
            let mut call = Call {
                executor_id: self.executor_id.clone(),
                framework_id: self.framework_id.clone(),
                r#type: Some(call::Type::Update as i32),
                ..Default::default()
            };
            call.update = Some(pending.update.clone());
            self.outbox.push(call);
        }
    }

    fn launch(&mut self, info: v1::TaskInfo, group: Option<usize>, now: Instant) {
        let id = info.task_id.value.clone();
        if self.tasks.contains_key(&id) {
            tracing::warn!(task_id = %id, "LAUNCH of a task we already have; ignored");
            return;
        }
        let span = tracing::info_span!("task", task_id = %id);
        let _span = span.clone().entered();
        let mut task = Task {
            info,
            group,
            phase: Phase::Terminal(TaskState::TaskKilled),
            acknowledged: false,
            terminal_uuid: None,
            health: None,
            unhealthy: false,
            span,
        };
        let refusal = if self.ending.is_some() {
            Some("The executor is shutting down")
        } else if group.is_some_and(|g| self.group_failed(g)) {
            Some("Another task of the group failed")
        } else {
            None
        };
        if let Some(message) = refusal {
            tracing::info!("{message}; not starting the task");
            self.tasks.insert(id.clone(), task);
            let reason = Some(Reason::TaskKilledDuringLaunch);
            self.finish(
                &id,
                TaskState::TaskKilled,
                Some(message.into()),
                reason,
                now,
            );
            return;
        }

        // A task group's tasks each get a directory, as under the default
        // executor, and share the group's volumes through the sandbox.
        let container = uuid::Uuid::new_v4().to_string();
        let (dir, task_link) = task::task_dir(
            &self.sandbox,
            self.launched == 0 && group.is_none(),
            &id,
            &container,
        );
        self.launched += 1;
        self.emit(&task.info.task_id, TaskState::TaskStarting, None, None);
        let started = task::command_spec(&task.info, &dir)
            .map_err(task::LaunchError::from)
            .and_then(|mut spec| {
                spec.volumes = task::sandbox_volumes(&task.info, &self.sandbox, &dir)?;
                spec.volumes.extend(task_link);
                Ok(spec)
            })
            .and_then(|spec| Ok((self.launcher.launch(&id, &spec)?, spec)));
        match started {
            Ok((pgid, spec)) => {
                tracing::info!(pgid, dir = %dir.display(), "started");
                task.phase = Phase::Running { pgid };
                task.health = task_health(&task.info, &spec, now);
                self.emit(&task.info.task_id, TaskState::TaskRunning, None, None);
                self.tasks.insert(id, task);
            }
            Err(e) => {
                tracing::warn!(error = %e, "failed to start");
                self.tasks.insert(id.clone(), task);
                let message = format!("Failed to launch the command: {e}");
                self.finish(&id, TaskState::TaskFailed, Some(message), None, now);
            }
        }
    }

    fn group_failed(&self, group: usize) -> bool {
        self.tasks.values().any(|t| {
            t.group == Some(group)
                && matches!(t.phase, Phase::Terminal(s) if s != TaskState::TaskFinished)
        })
    }

    /// Starts killing a task; `grace` overrides the kill policies.
    fn kill(
        &mut self,
        task_id: &str,
        kill_policy: Option<&v1::KillPolicy>,
        grace: Option<Duration>,
        now: Instant,
    ) {
        let Some(task) = self.tasks.get_mut(task_id) else {
            // As the Mesos command executor does: nothing to kill.
            tracing::warn!(task_id, "KILL of an unknown task; ignored");
            return;
        };
        let _span = task.span.clone().entered();
        let grace = grace.unwrap_or_else(|| {
            kill_grace(
                task.info.kill_policy.as_ref(),
                kill_policy,
                DEFAULT_KILL_GRACE,
            )
        });
        match &mut task.phase {
            Phase::Running { pgid } => {
                let pgid = *pgid;
                let sigkill_at = sigkill_deadline(None, now, grace);
                tracing::info!(?grace, "killing: SIGTERM to the process group");
                task.phase = Phase::Killing {
                    pgid,
                    sigkill_at,
                    sigkilled: false,
                };
                let task_id = task.info.task_id.clone();
                self.health_actions.extend(task.stop_health());
                if self.killing_capable {
                    self.emit(&task_id, TaskState::TaskKilling, None, None);
                }
                self.launcher.signal(pgid, Signal::SIGTERM);
                // A zero grace means SIGKILL right away.
                self.on_timer(now);
            }
            Phase::Killing {
                sigkill_at,
                sigkilled,
                ..
            } => {
                let shortened = sigkill_deadline(Some(*sigkill_at), now, grace);
                if !*sigkilled && shortened < *sigkill_at {
                    tracing::info!(?grace, "repeated KILL shortens the grace period");
                    *sigkill_at = shortened;
                    self.on_timer(now);
                } else {
                    tracing::debug!("already being killed");
                }
            }
            Phase::Terminal(_) => tracing::debug!("KILL of a terminal task; ignored"),
        }
    }

    fn kill_all(&mut self, now: Instant) {
        let grace = shutdown_kill_grace(self.shutdown_grace);
        let running: Vec<String> = self
            .tasks
            .iter()
            .filter(|(_, t)| !t.is_terminal())
            .map(|(id, _)| id.clone())
            .collect();
        for id in running {
            self.kill(&id, None, Some(grace), now);
        }
    }

    fn acknowledged(&mut self, task_id: &v1::TaskId, uuid: &[u8]) {
        let before = self.pending.len();
        self.pending
            .retain(|p| p.update.status.uuid.as_deref() != Some(uuid));
        if self.pending.len() == before {
            tracing::debug!(task_id = %task_id.value, "acknowledgement of an unknown update");
        }
        let Some(task) = self.tasks.get_mut(&task_id.value) else {
            return;
        };
        task.acknowledged = true;
        if task.terminal_uuid.as_deref() == Some(uuid) {
            task.terminal_uuid = None;
            // The agent has the last word on this task; earlier updates
            // it did not acknowledge need not be resent.
            self.pending
                .retain(|p| p.update.status.task_id.value != task_id.value);
            let _span = task.span.enter();
            tracing::info!("terminal update acknowledged");
        }
    }

    /// Moves a task to a terminal state and reports it.
    fn finish(
        &mut self,
        task_id: &str,
        state: TaskState,
        message: Option<String>,
        reason: Option<Reason>,
        now: Instant,
    ) {
        let Some(task) = self.tasks.get_mut(task_id) else {
            return;
        };
        task.phase = Phase::Terminal(state);
        self.health_actions.extend(task.stop_health());
        let (id, group) = (task.info.task_id.clone(), task.group);
        let uuid = self.emit(&id, state, message, reason);
        if let Some(task) = self.tasks.get_mut(task_id) {
            task.terminal_uuid = Some(uuid);
        }
        if let Some(group) = group
            && state != TaskState::TaskFinished
        {
            self.fail_group(group, task_id, now);
        }
        if self.tasks.values().all(Task::is_terminal) {
            self.all_terminal_since.get_or_insert(now);
        }
    }

    /// The default executor's rule: a group lives and dies together.
    fn fail_group(&mut self, group: usize, culprit: &str, now: Instant) {
        let members: Vec<String> = self
            .tasks
            .iter()
            .filter(|(_, t)| t.group == Some(group) && !t.is_terminal())
            .map(|(id, _)| id.clone())
            .collect();
        for id in members {
            tracing::info!(task_id = %id, culprit, "killing the rest of the task group");
            self.kill(&id, None, None, now);
        }
    }

    /// Queues an update; returns its uuid. A task killed for failing its
    /// health check stays `healthy = false`.
    fn emit(
        &mut self,
        task_id: &v1::TaskId,
        state: TaskState,
        message: Option<String>,
        reason: Option<Reason>,
    ) -> Vec<u8> {
        let mut status = executor_status(task_id, &self.executor_id, state, message, reason);
        if self.tasks.get(&task_id.value).is_some_and(|t| t.unhealthy) {
            status.healthy = Some(false);
        }
        self.emit_status(status)
    }

    /// Queues a health update: TASK_RUNNING with `healthy` and reason
    /// `REASON_TASK_HEALTH_CHECK_STATUS_UPDATED`.
    fn emit_health(&mut self, task_id: &v1::TaskId, healthy: bool, message: Option<String>) {
        let mut status = executor_status(
            task_id,
            &self.executor_id,
            TaskState::TaskRunning,
            message,
            Some(Reason::TaskHealthCheckStatusUpdated),
        );
        status.healthy = Some(healthy);
        self.emit_status(status);
    }

    /// Queues `status`; returns its uuid.
    fn emit_status(&mut self, status: v1::TaskStatus) -> Vec<u8> {
        let uuid = status.uuid.clone().unwrap_or_default();
        tracing::debug!(
            state = status.state().as_str_name(),
            healthy = ?status.healthy,
            "status update"
        );
        let update = call::Update { status };
        if self.live {
            let mut call = self.call(call::Type::Update);
            call.update = Some(update.clone());
            self.outbox.push(call);
        }
        self.pending.push(Pending {
            update,
            delivered: self.live,
        });
        uuid
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    /// The `tasks/<id>` link of a task run as a nested container: its
    /// directory is `/sb/containers/<uuid>`, linked from there.
    fn nested_task_link(spec: &task::CommandSpec) -> PathBuf {
        assert!(spec.dir.starts_with("/sb/containers"), "{spec:?}");
        spec.volumes
            .iter()
            .find(|v| v.target == spec.dir)
            .map(|v| v.link.clone())
            .expect("a link to the task's directory")
    }
    use crate::task::{CommandSpec, LaunchError};
    use mesos_proto::v1::framework_info::Capability as FrameworkCapability;

    /// Records launches and signals; fails to launch programs named
    /// `/nonexistent`.
    #[derive(Debug, Default)]
    struct FakeLauncher {
        launched: Vec<(String, CommandSpec)>,
        signals: Vec<(i32, Signal)>,
    }

    impl Launcher for FakeLauncher {
        fn launch(&mut self, task_id: &str, spec: &CommandSpec) -> Result<i32, LaunchError> {
            if spec.args.iter().any(|a| a == "/nonexistent") {
                return Err(LaunchError::Spawn {
                    program: "/nonexistent".into(),
                    source: std::io::Error::from(std::io::ErrorKind::NotFound),
                });
            }
            self.launched.push((task_id.to_string(), spec.clone()));
            Ok(1000 + self.launched.len() as i32)
        }
        fn signal(&mut self, pgid: i32, signal: Signal) {
            self.signals.push((pgid, signal));
        }
    }

    fn config(checkpoint: bool) -> Config {
        Config {
            framework_id: "fw".into(),
            executor_id: "ex".into(),
            agent_endpoint: "127.0.0.1:5051".into(),
            sandbox: "/sb".into(),
            checkpoint,
            shutdown_grace_period: Duration::from_secs(5),
            recovery_timeout: Duration::from_secs(900),
            subscription_backoff_max: Duration::from_secs(2),
            auth_token: None,
            encoding: Default::default(),
            load_report_interval: None,
        }
    }

    fn executor(checkpoint: bool) -> Executor<FakeLauncher> {
        Executor::new(&config(checkpoint), FakeLauncher::default())
    }

    fn policy(secs: u64) -> v1::KillPolicy {
        v1::KillPolicy {
            grace_period: Some(util::duration_info(Duration::from_secs(secs))),
        }
    }

    fn task_info(id: &str, command: &str) -> v1::TaskInfo {
        v1::TaskInfo {
            name: id.into(),
            task_id: util::task_id(id),
            command: Some(v1::CommandInfo {
                value: Some(command.into()),
                ..Default::default()
            }),
            ..Default::default()
        }
    }

    fn subscribed(killing: bool) -> Event {
        let mut framework_info = v1::FrameworkInfo::default();
        if killing {
            framework_info.capabilities.push(FrameworkCapability {
                r#type: Some(Capability::TaskKillingState as i32),
            });
        }
        Event {
            r#type: Some(event::Type::Subscribed as i32),
            subscribed: Some(event::Subscribed {
                framework_info,
                ..Default::default()
            }),
            ..Default::default()
        }
    }

    fn launch(task: v1::TaskInfo) -> Event {
        Event {
            r#type: Some(event::Type::Launch as i32),
            launch: Some(event::Launch { task }),
            ..Default::default()
        }
    }

    fn launch_group(tasks: Vec<v1::TaskInfo>) -> Event {
        Event {
            r#type: Some(event::Type::LaunchGroup as i32),
            launch_group: Some(event::LaunchGroup {
                task_group: v1::TaskGroupInfo { tasks },
            }),
            ..Default::default()
        }
    }

    fn kill(id: &str, policy: Option<v1::KillPolicy>) -> Event {
        Event {
            r#type: Some(event::Type::Kill as i32),
            kill: Some(event::Kill {
                task_id: util::task_id(id),
                kill_policy: policy,
            }),
            ..Default::default()
        }
    }

    fn ack(status: &v1::TaskStatus) -> Event {
        Event {
            r#type: Some(event::Type::Acknowledged as i32),
            acknowledged: Some(event::Acknowledged {
                task_id: status.task_id.clone(),
                uuid: status.uuid.clone().unwrap(),
            }),
            ..Default::default()
        }
    }

    fn simple(r#type: event::Type) -> Event {
        Event {
            r#type: Some(r#type as i32),
            ..Default::default()
        }
    }

    /// The statuses in the outbox, drained.
    fn sent<L: Launcher>(ex: &mut Executor<L>) -> Vec<v1::TaskStatus> {
        ex.take_outbox()
            .into_iter()
            .map(|c| {
                assert_eq!(c.r#type(), call::Type::Update);
                c.update.unwrap().status
            })
            .collect()
    }

    fn states(statuses: &[v1::TaskStatus]) -> Vec<(String, TaskState)> {
        statuses
            .iter()
            .map(|s| (s.task_id.value.clone(), s.state()))
            .collect()
    }

    fn st(id: &str, state: TaskState) -> (String, TaskState) {
        (id.to_string(), state)
    }

    #[test]
    fn kill_grace_prefers_the_kill_then_the_task_then_the_default() {
        let d = DEFAULT_KILL_GRACE;
        let (one, two) = (policy(1), policy(2));
        assert_eq!(kill_grace(None, None, d), d);
        assert_eq!(kill_grace(Some(&one), None, d), Duration::from_secs(1));
        assert_eq!(
            kill_grace(Some(&one), Some(&two), d),
            Duration::from_secs(2)
        );
        assert_eq!(kill_grace(None, Some(&two), d), Duration::from_secs(2));
        // A policy without a grace period does not count.
        let empty = v1::KillPolicy::default();
        assert_eq!(
            kill_grace(Some(&one), Some(&empty), d),
            Duration::from_secs(1)
        );
    }

    #[test]
    fn a_repeated_kill_only_shortens() {
        let now = Instant::now();
        let first = sigkill_deadline(None, now, Duration::from_secs(10));
        assert_eq!(first, now + Duration::from_secs(10));
        let later = now + Duration::from_secs(1);
        assert_eq!(
            sigkill_deadline(Some(first), later, Duration::from_secs(20)),
            first
        );
        assert_eq!(
            sigkill_deadline(Some(first), later, Duration::from_secs(2)),
            later + Duration::from_secs(2)
        );
    }

    #[test]
    fn shutdown_grace_keeps_a_margin() {
        assert_eq!(
            shutdown_kill_grace(Duration::from_secs(5)),
            Duration::from_secs(4)
        );
        assert_eq!(
            shutdown_kill_grace(Duration::from_millis(500)),
            Duration::ZERO
        );
    }

    #[test]
    fn executor_statuses_carry_what_the_agent_validates() {
        let a = executor_status(
            &util::task_id("t"),
            &util::executor_id("ex"),
            TaskState::TaskFailed,
            Some("Command exited with status 3".into()),
            None,
        );
        let b = executor_status(
            &util::task_id("t"),
            &util::executor_id("ex"),
            TaskState::TaskRunning,
            None,
            Some(Reason::TaskKilledDuringLaunch),
        );
        assert_eq!(a.state(), TaskState::TaskFailed);
        assert_eq!(a.source(), Source::Executor);
        assert_eq!(a.executor_id.as_ref().unwrap().value, "ex");
        assert_eq!(a.uuid.as_ref().unwrap().len(), 16);
        assert_ne!(a.uuid, b.uuid);
        assert!(a.timestamp.unwrap() > 1.0e9);
        assert_eq!(a.message.as_deref(), Some("Command exited with status 3"));
        assert_eq!(b.reason(), Reason::TaskKilledDuringLaunch);
    }

    #[test]
    fn launch_reports_starting_then_running_and_finishes() {
        let now = Instant::now();
        let mut ex = executor(false);
        assert_eq!(ex.handle_event(subscribed(false), now), Flow::Continue);
        ex.handle_event(launch(task_info("a", "sleep 1")), now);
        let statuses = sent(&mut ex);
        assert_eq!(
            states(&statuses),
            [
                st("a", TaskState::TaskStarting),
                st("a", TaskState::TaskRunning)
            ]
        );
        assert_ne!(statuses[0].uuid, statuses[1].uuid);
        let (id, spec) = &ex.launcher().launched[0];
        assert_eq!(id, "a");
        assert_eq!(spec.dir, PathBuf::from("/sb"));

        ex.on_exit("a", Termination::Exited(0), now);
        let finished = sent(&mut ex);
        assert_eq!(states(&finished), [st("a", TaskState::TaskFinished)]);
        // The rest of the group is swept.
        assert_eq!(ex.launcher().signals, [(1001, Signal::SIGKILL)]);

        // Not done until the terminal update is acknowledged.
        assert_eq!(ex.outcome(now), None);
        ex.handle_event(ack(&statuses[0]), now);
        assert_eq!(ex.outcome(now), None);
        ex.handle_event(ack(&finished[0]), now);
        assert_eq!(ex.outcome(now), Some(Outcome::Completed));
        assert_eq!(Outcome::Completed.exit_code(), 0);
    }

    #[test]
    fn a_failing_command_reports_its_exit_status() {
        let now = Instant::now();
        let mut ex = executor(false);
        ex.handle_event(subscribed(false), now);
        ex.handle_event(launch(task_info("a", "exit 3")), now);
        sent(&mut ex);
        ex.on_exit("a", Termination::Exited(3), now);
        let statuses = sent(&mut ex);
        assert_eq!(states(&statuses), [st("a", TaskState::TaskFailed)]);
        assert_eq!(
            statuses[0].message.as_deref(),
            Some("Command exited with status 3")
        );
    }

    #[test]
    fn a_task_that_cannot_start_fails() {
        let now = Instant::now();
        let mut ex = executor(false);
        ex.handle_event(subscribed(false), now);
        let mut info = task_info("a", "");
        info.command = None;
        ex.handle_event(launch(info), now);
        let statuses = sent(&mut ex);
        assert_eq!(
            states(&statuses),
            [
                st("a", TaskState::TaskStarting),
                st("a", TaskState::TaskFailed)
            ]
        );
        assert!(
            statuses[1]
                .message
                .as_deref()
                .unwrap()
                .contains("no command")
        );
    }

    #[test]
    fn kill_terms_then_kills_after_the_grace() {
        let t0 = Instant::now();
        let mut ex = executor(false);
        ex.handle_event(subscribed(true), t0);
        let mut info = task_info("a", "sleep 100");
        info.kill_policy = Some(policy(10));
        ex.handle_event(launch(info), t0);
        sent(&mut ex);

        ex.handle_event(kill("a", Some(policy(4))), t0);
        assert_eq!(states(&sent(&mut ex)), [st("a", TaskState::TaskKilling)]);
        assert_eq!(ex.launcher().signals, [(1001, Signal::SIGTERM)]);
        assert_eq!(ex.next_deadline(), Some(t0 + Duration::from_secs(4)));

        // A retried KILL with a longer grace changes nothing and says nothing.
        let t1 = t0 + Duration::from_secs(1);
        ex.handle_event(kill("a", Some(policy(30))), t1);
        assert!(sent(&mut ex).is_empty());
        assert_eq!(ex.next_deadline(), Some(t0 + Duration::from_secs(4)));
        // A shorter one moves SIGKILL earlier.
        ex.handle_event(kill("a", Some(policy(1))), t1);
        assert_eq!(ex.next_deadline(), Some(t1 + Duration::from_secs(1)));

        ex.on_timer(t1 + Duration::from_millis(999));
        assert_eq!(ex.launcher().signals.len(), 1);
        ex.on_timer(t1 + Duration::from_secs(1));
        assert_eq!(
            ex.launcher().signals,
            [(1001, Signal::SIGTERM), (1001, Signal::SIGKILL)]
        );
        assert_eq!(ex.next_deadline(), None);

        // Exited because of the kill, whatever the exit code says.
        ex.on_exit("a", Termination::Signaled(9), t1 + Duration::from_secs(1));
        let statuses = sent(&mut ex);
        assert_eq!(states(&statuses), [st("a", TaskState::TaskKilled)]);
    }

    #[test]
    fn kill_uses_the_task_policy_and_no_killing_state_without_the_capability() {
        let t0 = Instant::now();
        let mut ex = executor(false);
        ex.handle_event(subscribed(false), t0);
        let mut info = task_info("a", "sleep 100");
        info.kill_policy = Some(policy(7));
        ex.handle_event(launch(info), t0);
        ex.handle_event(launch(task_info("b", "sleep 100")), t0);
        sent(&mut ex);
        ex.handle_event(kill("a", None), t0);
        assert!(sent(&mut ex).is_empty());
        assert_eq!(ex.next_deadline(), Some(t0 + Duration::from_secs(7)));
        ex.handle_event(kill("b", None), t0);
        assert_eq!(ex.next_deadline(), Some(t0 + DEFAULT_KILL_GRACE));
        // The second task runs in its own directory.
        assert_eq!(
            nested_task_link(&ex.launcher().launched[1].1),
            PathBuf::from("/sb/tasks/b")
        );
    }

    #[test]
    fn a_zero_grace_kills_at_once_and_unknown_kills_are_ignored() {
        let t0 = Instant::now();
        let mut ex = executor(false);
        ex.handle_event(subscribed(false), t0);
        ex.handle_event(launch(task_info("a", "sleep 100")), t0);
        sent(&mut ex);
        ex.handle_event(kill("nope", None), t0);
        assert!(ex.launcher().signals.is_empty());
        assert!(sent(&mut ex).is_empty());
        ex.handle_event(kill("a", Some(policy(0))), t0);
        assert_eq!(
            ex.launcher().signals,
            [(1001, Signal::SIGTERM), (1001, Signal::SIGKILL)]
        );
    }

    #[test]
    fn a_group_dies_together_when_one_task_fails() {
        let t0 = Instant::now();
        let mut ex = executor(false);
        ex.handle_event(subscribed(false), t0);
        ex.handle_event(
            launch_group(vec![
                task_info("a", "sleep 100"),
                task_info("b", "sleep 100"),
                task_info("c", "exit 1"),
            ]),
            t0,
        );
        ex.handle_event(launch(task_info("other", "sleep 100")), t0);
        sent(&mut ex);
        // Every task of a group gets a directory of its own, as under the
        // default executor, even the executor's first.
        assert_eq!(
            nested_task_link(&ex.launcher().launched[0].1),
            PathBuf::from("/sb/tasks/a")
        );
        assert_eq!(
            nested_task_link(&ex.launcher().launched[2].1),
            PathBuf::from("/sb/tasks/c")
        );

        ex.on_exit("c", Termination::Exited(1), t0);
        let statuses = sent(&mut ex);
        assert_eq!(states(&statuses), [st("c", TaskState::TaskFailed)]);
        // a (1001) and b (1002) get SIGTERM; "other" is not in the group.
        assert!(ex.launcher().signals.contains(&(1001, Signal::SIGTERM)));
        assert!(ex.launcher().signals.contains(&(1002, Signal::SIGTERM)));
        assert!(!ex.launcher().signals.contains(&(1004, Signal::SIGTERM)));
    }

    #[test]
    fn a_group_member_that_cannot_start_stops_the_rest() {
        let t0 = Instant::now();
        let mut ex = executor(false);
        ex.handle_event(subscribed(false), t0);
        let mut broken = task_info("b", "");
        broken.command = Some(v1::CommandInfo {
            value: Some("/nonexistent".into()),
            ..Default::default()
        });
        ex.handle_event(
            launch_group(vec![
                task_info("a", "sleep 100"),
                broken,
                task_info("c", "sleep 100"),
            ]),
            t0,
        );
        let statuses = sent(&mut ex);
        assert_eq!(
            states(&statuses),
            [
                st("a", TaskState::TaskStarting),
                st("a", TaskState::TaskRunning),
                st("b", TaskState::TaskStarting),
                st("b", TaskState::TaskFailed),
                st("c", TaskState::TaskKilled),
            ]
        );
        assert_eq!(statuses[4].reason(), Reason::TaskKilledDuringLaunch);
        assert_eq!(ex.launcher().launched.len(), 1);
        assert_eq!(ex.launcher().signals, [(1001, Signal::SIGTERM)]);
    }

    #[test]
    fn a_group_member_finishing_leaves_the_rest_alone() {
        let t0 = Instant::now();
        let mut ex = executor(false);
        ex.handle_event(subscribed(false), t0);
        ex.handle_event(
            launch_group(vec![task_info("a", "true"), task_info("b", "sleep 100")]),
            t0,
        );
        ex.on_exit("a", Termination::Exited(0), t0);
        // Only the sweep of a's own group.
        assert_eq!(ex.launcher().signals, [(1001, Signal::SIGKILL)]);
    }

    #[test]
    fn updates_wait_for_subscribed_and_are_not_sent_twice() {
        let t0 = Instant::now();
        let mut ex = executor(true);
        let first = ex.subscribe_call();
        assert!(first.subscribe.unwrap().unacknowledged_updates.is_empty());
        // Launched before SUBSCRIBED: e.g. queued LAUNCHes race it.
        ex.handle_event(launch(task_info("a", "sleep 100")), t0);
        assert!(ex.take_outbox().is_empty());
        ex.handle_event(subscribed(false), t0);
        let statuses = sent(&mut ex);
        assert_eq!(
            states(&statuses),
            [
                st("a", TaskState::TaskStarting),
                st("a", TaskState::TaskRunning)
            ]
        );
        ex.handle_event(subscribed(false), t0);
        assert!(ex.take_outbox().is_empty());
    }

    #[test]
    fn reconnect_carries_unacknowledged_tasks_and_updates() {
        let t0 = Instant::now();
        let mut ex = executor(true);
        ex.subscribe_call();
        ex.handle_event(subscribed(false), t0);
        ex.handle_event(launch(task_info("a", "sleep 100")), t0);
        ex.handle_event(launch(task_info("b", "sleep 100")), t0);
        let statuses = sent(&mut ex);
        // The agent acknowledged b's STARTING only.
        ex.handle_event(ack(&statuses[2]), t0);

        assert_eq!(ex.on_disconnected(t0), Reconnect::Yes);
        assert!(ex.wants_connection());
        // a finishes while we are disconnected: nothing is sent now...
        ex.on_exit("a", Termination::Exited(0), t0);
        assert!(ex.take_outbox().is_empty());
        assert_eq!(ex.outcome(t0 + Duration::from_secs(3600)), None);

        // ...but everything goes into the next SUBSCRIBE.
        let subscribe = ex.subscribe_call().subscribe.unwrap();
        let tasks: Vec<_> = subscribe
            .unacknowledged_tasks
            .iter()
            .map(|t| t.task_id.value.as_str())
            .collect();
        assert_eq!(tasks, ["a"]);
        let updates: Vec<_> = subscribe
            .unacknowledged_updates
            .iter()
            .map(|u| u.status.clone())
            .collect();
        assert_eq!(
            states(&updates),
            [
                st("a", TaskState::TaskStarting),
                st("a", TaskState::TaskRunning),
                st("b", TaskState::TaskRunning),
                st("a", TaskState::TaskFinished),
            ]
        );
        // ...and not again once re-subscribed.
        ex.handle_event(subscribed(false), t0);
        assert!(ex.take_outbox().is_empty());

        // The terminal ack settles a; b still runs.
        ex.handle_event(ack(&updates[3]), t0);
        let again = ex.subscribe_call().subscribe.unwrap();
        assert_eq!(
            states(
                &again
                    .unacknowledged_updates
                    .iter()
                    .map(|u| u.status.clone())
                    .collect::<Vec<_>>()
            ),
            [st("b", TaskState::TaskRunning)]
        );
        assert!(again.unacknowledged_tasks.is_empty());
        assert_eq!(ex.outcome(t0), None);
    }

    #[test]
    fn disconnect_without_checkpoint_kills_everything() {
        let t0 = Instant::now();
        let mut ex = executor(false);
        ex.handle_event(subscribed(true), t0);
        ex.handle_event(launch(task_info("a", "sleep 100")), t0);
        sent(&mut ex);
        assert_eq!(ex.on_disconnected(t0), Reconnect::No);
        assert!(!ex.wants_connection());
        assert_eq!(ex.launcher().signals, [(1001, Signal::SIGTERM)]);
        // Nobody to tell: the update is kept, not sent.
        assert!(ex.take_outbox().is_empty());
        assert_eq!(ex.next_deadline(), Some(t0 + Duration::from_secs(4)));
        assert_eq!(ex.outcome(t0), None);
        ex.on_exit("a", Termination::Signaled(15), t0);
        let outcome = ex.outcome(t0).unwrap();
        assert!(matches!(outcome, Outcome::AgentLost(_)), "{outcome:?}");
        assert_eq!(outcome.exit_code(), 1);
    }

    #[test]
    fn shutdown_kills_with_the_shutdown_grace_and_waits_for_acks() {
        let t0 = Instant::now();
        let mut ex = executor(false);
        ex.handle_event(subscribed(false), t0);
        let mut info = task_info("a", "sleep 100");
        info.kill_policy = Some(policy(60));
        ex.handle_event(launch(info), t0);
        sent(&mut ex);
        ex.handle_event(simple(event::Type::Shutdown), t0);
        assert_eq!(ex.next_deadline(), Some(t0 + Duration::from_secs(4)));
        ex.on_exit("a", Termination::Signaled(15), t0);
        let killed = sent(&mut ex);
        assert_eq!(states(&killed), [st("a", TaskState::TaskKilled)]);
        assert_eq!(ex.outcome(t0), None);
        ex.handle_event(ack(&killed[0]), t0);
        assert_eq!(ex.outcome(t0), Some(Outcome::Shutdown));
        // A LAUNCH racing the SHUTDOWN is refused.
        ex.handle_event(launch(task_info("late", "true")), t0);
        assert_eq!(states(&sent(&mut ex)), [st("late", TaskState::TaskKilled)]);
    }

    #[test]
    fn shutdown_is_bounded_by_its_grace() {
        let t0 = Instant::now();
        let mut ex = executor(false);
        ex.handle_event(subscribed(false), t0);
        ex.handle_event(launch(task_info("a", "sleep 100")), t0);
        ex.handle_event(simple(event::Type::Shutdown), t0);
        assert_eq!(ex.outcome(t0 + Duration::from_millis(4999)), None);
        assert_eq!(
            ex.outcome(t0 + Duration::from_secs(5)),
            Some(Outcome::Shutdown)
        );
        ex.kill_all_now();
        assert_eq!(ex.launcher().signals.last(), Some(&(1001, Signal::SIGKILL)));
    }

    #[test]
    fn shutdown_with_nothing_to_do_ends_at_once() {
        let t0 = Instant::now();
        let mut ex = executor(false);
        ex.handle_event(subscribed(false), t0);
        assert_eq!(ex.outcome(t0 + Duration::from_secs(3600)), None);
        ex.handle_event(simple(event::Type::Shutdown), t0);
        assert_eq!(ex.outcome(t0), Some(Outcome::Shutdown));
    }

    #[test]
    fn exit_waits_at_most_the_fail_safe_for_acks() {
        let t0 = Instant::now();
        let mut ex = executor(false);
        ex.handle_event(subscribed(false), t0);
        ex.handle_event(launch(task_info("a", "true")), t0);
        ex.on_exit("a", Termination::Exited(0), t0);
        assert_eq!(ex.next_deadline(), Some(t0 + ACK_FAIL_SAFE));
        assert_eq!(ex.outcome(t0 + ACK_FAIL_SAFE / 2), None);
        assert_eq!(
            ex.outcome(t0 + ACK_FAIL_SAFE),
            Some(Outcome::AcknowledgementsTimedOut)
        );
    }

    #[test]
    fn error_event_drops_the_connection_and_odd_events_are_harmless() {
        let t0 = Instant::now();
        let mut ex = executor(true);
        let error = Event {
            r#type: Some(event::Type::Error as i32),
            error: Some(event::Error {
                message: "boom".into(),
            }),
            ..Default::default()
        };
        assert_eq!(ex.handle_event(error, t0), Flow::Disconnect);
        for ty in [
            event::Type::Launch,
            event::Type::LaunchGroup,
            event::Type::Kill,
            event::Type::Acknowledged,
            event::Type::Subscribed,
            event::Type::Message,
            event::Type::Heartbeat,
            event::Type::Unknown,
        ] {
            assert_eq!(ex.handle_event(simple(ty), t0), Flow::Continue);
        }
        let weird = Event {
            r#type: Some(42),
            ..Default::default()
        };
        assert_eq!(ex.handle_event(weird, t0), Flow::Continue);
        assert!(ex.take_outbox().is_empty());
        assert_eq!(ex.outcome(t0), None);
    }

    fn http_health(consecutive_failures: u32, grace: f64) -> v1::HealthCheck {
        use mesos_proto::v1::health_check;
        v1::HealthCheck {
            r#type: Some(health_check::Type::Http as i32),
            http: Some(health_check::HttpCheckInfo {
                port: 8080,
                ..Default::default()
            }),
            delay_seconds: Some(0.0),
            interval_seconds: Some(1.0),
            timeout_seconds: Some(0.5),
            consecutive_failures: Some(consecutive_failures),
            grace_period_seconds: Some(grace),
            ..Default::default()
        }
    }

    fn checked_task(id: &str, consecutive_failures: u32, grace: f64) -> v1::TaskInfo {
        let mut info = task_info(id, "sleep 100");
        info.health_check = Some(http_health(consecutive_failures, grace));
        info
    }

    /// Fires the timer at `now` and returns the checks it started.
    fn start_checks<L: Launcher>(ex: &mut Executor<L>, now: Instant) -> Vec<(String, u64)> {
        ex.on_timer(now);
        ex.take_health_actions()
            .into_iter()
            .map(|action| match action {
                health::Action::Run {
                    task_id, attempt, ..
                } => (task_id, attempt),
                other => panic!("expected a check to start, got {other:?}"),
            })
            .collect()
    }

    /// Runs the one due check of `id` at `now` with `result`.
    fn check_once<L: Launcher>(
        ex: &mut Executor<L>,
        id: &str,
        now: Instant,
        result: Result<(), &str>,
    ) {
        assert_eq!(ex.next_deadline(), Some(now), "a check is due");
        let started = start_checks(ex, now);
        assert_eq!(started.len(), 1, "{started:?}");
        let (task_id, attempt) = started.into_iter().next().unwrap();
        assert_eq!(task_id, id);
        ex.on_health_result(
            health::Finished {
                task_id,
                attempt,
                result: result.map_err(str::to_string),
            },
            now,
        );
    }

    /// `(healthy, message)` of health updates; panics on other updates.
    fn health_updates(statuses: &[v1::TaskStatus]) -> Vec<(bool, String)> {
        statuses
            .iter()
            .map(|s| {
                assert_eq!(s.state(), TaskState::TaskRunning, "{s:?}");
                assert_eq!(s.reason(), Reason::TaskHealthCheckStatusUpdated);
                assert_eq!(s.source(), Source::Executor);
                assert_eq!(s.uuid.as_ref().map(Vec::len), Some(16));
                (
                    s.healthy.expect("healthy is set"),
                    s.message.clone().unwrap_or_default(),
                )
            })
            .collect()
    }

    #[test]
    fn health_updates_report_every_counted_failure_and_each_first_pass() {
        let t0 = Instant::now();
        let secs = Duration::from_secs;
        let mut ex = executor(false);
        ex.handle_event(subscribed(false), t0);
        ex.handle_event(launch(checked_task("a", 3, 0.0)), t0);
        sent(&mut ex);

        check_once(&mut ex, "a", t0, Ok(()));
        assert_eq!(health_updates(&sent(&mut ex)), [(true, String::new())]);
        // Still healthy: nothing to say.
        check_once(&mut ex, "a", t0 + secs(1), Ok(()));
        assert!(sent(&mut ex).is_empty());
        check_once(&mut ex, "a", t0 + secs(2), Err("connection refused"));
        check_once(&mut ex, "a", t0 + secs(3), Err("connection refused"));
        let failures = health_updates(&sent(&mut ex));
        assert_eq!(failures.len(), 2);
        for ((healthy, message), n) in failures.iter().zip(1..) {
            assert!(!healthy);
            assert!(message.contains("HTTP health check failed"), "{message}");
            assert!(message.contains("connection refused"), "{message}");
            assert!(message.ends_with(&format!("({n} in a row)")), "{message}");
        }
        check_once(&mut ex, "a", t0 + secs(4), Ok(()));
        assert_eq!(health_updates(&sent(&mut ex)), [(true, String::new())]);
        assert!(ex.launcher().signals.is_empty(), "never killed");
    }

    #[test]
    fn failures_within_the_grace_period_are_not_reported() {
        let t0 = Instant::now();
        let mut ex = executor(false);
        ex.handle_event(subscribed(false), t0);
        ex.handle_event(launch(checked_task("a", 1, 5.0)), t0);
        sent(&mut ex);
        // Its end (5 s) included.
        for s in 0..=5 {
            check_once(&mut ex, "a", t0 + Duration::from_secs(s), Err("refused"));
        }
        assert!(sent(&mut ex).is_empty());
        assert!(ex.launcher().signals.is_empty());
        // Past the grace period the first failure kills (limit 1).
        check_once(&mut ex, "a", t0 + Duration::from_secs(6), Err("refused"));
        assert_eq!(health_updates(&sent(&mut ex)).len(), 1);
        assert_eq!(ex.launcher().signals, [(1001, Signal::SIGTERM)]);
    }

    #[test]
    fn consecutive_health_check_failures_kill_the_task_which_ends_unhealthy() {
        let t0 = Instant::now();
        let secs = Duration::from_secs;
        let mut ex = executor(false);
        ex.handle_event(subscribed(true), t0);
        let mut info = checked_task("a", 2, 0.0);
        info.kill_policy = Some(policy(7));
        ex.handle_event(launch(info), t0);
        sent(&mut ex);

        check_once(&mut ex, "a", t0, Err("refused"));
        assert!(ex.launcher().signals.is_empty());
        check_once(&mut ex, "a", t0 + secs(1), Err("refused"));
        let statuses = sent(&mut ex);
        assert_eq!(health_updates(&statuses[..2]).len(), 2);
        // Killed as on a KILL: TASK_KILLING (the framework can), SIGTERM,
        // SIGKILL after the task's own grace.
        assert_eq!(states(&statuses[2..]), [st("a", TaskState::TaskKilling)]);
        assert_eq!(statuses[2].healthy, Some(false));
        assert_eq!(ex.launcher().signals, [(1001, Signal::SIGTERM)]);
        assert_eq!(ex.next_deadline(), Some(t0 + secs(8)));
        // No more checks once the kill began.
        assert!(start_checks(&mut ex, t0 + secs(5)).is_empty());

        ex.on_exit("a", Termination::Signaled(15), t0 + secs(5));
        let killed = sent(&mut ex);
        assert_eq!(states(&killed), [st("a", TaskState::TaskKilled)]);
        assert_eq!(killed[0].healthy, Some(false));
        // The Mesos command executor gives no special reason.
        assert_eq!(killed[0].reason, None);
        assert!(ex.take_health_actions().is_empty());
        assert_eq!(ex.next_deadline(), Some(t0 + secs(5) + ACK_FAIL_SAFE));
    }

    #[test]
    fn a_kill_cancels_the_running_check_and_its_late_result_is_ignored() {
        let t0 = Instant::now();
        let mut ex = executor(false);
        ex.handle_event(subscribed(false), t0);
        ex.handle_event(launch(checked_task("a", 1, 0.0)), t0);
        sent(&mut ex);
        let started = start_checks(&mut ex, t0);
        assert_eq!(started, [("a".to_string(), 1)]);
        assert_eq!(ex.next_deadline(), None, "one check at a time");

        ex.handle_event(kill("a", None), t0);
        assert_eq!(
            ex.take_health_actions(),
            [health::Action::Cancel {
                task_id: "a".into()
            }]
        );
        ex.on_health_result(
            health::Finished {
                task_id: "a".into(),
                attempt: 1,
                result: Err("refused".into()),
            },
            t0,
        );
        ex.on_exit("a", Termination::Signaled(15), t0);
        let statuses = sent(&mut ex);
        assert_eq!(states(&statuses), [st("a", TaskState::TaskKilled)]);
        // Killed by the framework, not for its health.
        assert_eq!(statuses[0].healthy, None);
    }

    #[test]
    fn a_task_that_ends_during_a_check_cancels_it() {
        let t0 = Instant::now();
        let mut ex = executor(false);
        ex.handle_event(subscribed(false), t0);
        ex.handle_event(launch(checked_task("a", 1, 0.0)), t0);
        start_checks(&mut ex, t0);
        ex.on_exit("a", Termination::Exited(0), t0);
        assert_eq!(
            ex.take_health_actions(),
            [health::Action::Cancel {
                task_id: "a".into()
            }]
        );
        assert_eq!(
            states(&sent(&mut ex)).last(),
            Some(&st("a", TaskState::TaskFinished))
        );
    }

    #[test]
    fn checks_start_after_the_delay_and_follow_the_interval_from_the_result() {
        let t0 = Instant::now();
        let ms = Duration::from_millis;
        let mut ex = executor(false);
        ex.handle_event(subscribed(false), t0);
        let mut info = checked_task("a", 3, 0.0);
        let check = info.health_check.as_mut().unwrap();
        check.delay_seconds = Some(2.0);
        check.interval_seconds = Some(0.5);
        ex.handle_event(launch(info), t0);
        assert_eq!(ex.next_deadline(), Some(t0 + ms(2000)));
        assert!(start_checks(&mut ex, t0 + ms(1999)).is_empty());
        let started = start_checks(&mut ex, t0 + ms(2000));
        assert_eq!(started.len(), 1);
        ex.on_health_result(
            health::Finished {
                task_id: "a".into(),
                attempt: started[0].1,
                result: Ok(()),
            },
            t0 + ms(2300),
        );
        assert_eq!(ex.next_deadline(), Some(t0 + ms(2800)));
    }

    #[test]
    fn an_invalid_health_check_leaves_the_task_unchecked() {
        let t0 = Instant::now();
        let mut ex = executor(false);
        ex.handle_event(subscribed(false), t0);
        let mut info = checked_task("a", 1, 0.0);
        info.health_check.as_mut().unwrap().r#type = None;
        ex.handle_event(launch(info), t0);
        assert_eq!(
            states(&sent(&mut ex)),
            [
                st("a", TaskState::TaskStarting),
                st("a", TaskState::TaskRunning)
            ]
        );
        assert_eq!(ex.next_deadline(), None);
        assert!(start_checks(&mut ex, t0 + Duration::from_secs(100)).is_empty());
    }

    mod properties {
        use super::*;
        use proptest::prelude::*;
        use prost::Message;
        use std::collections::HashMap;

        #[derive(Debug, Clone)]
        enum Op {
            Subscribed(bool),
            Launch(usize, bool),
            LaunchGroup(Vec<(usize, bool)>),
            Kill(usize, Option<u64>),
            AckLatest(usize),
            Exit(usize, i32),
            Advance(u64),
            Shutdown,
            Disconnect,
            Error,
            /// The `i`th running health check (modulo their number) ends,
            /// passing or not.
            HealthResult(usize, bool),
        }

        const IDS: [&str; 4] = ["a", "b", "c", "d"];

        fn op() -> impl Strategy<Value = Op> {
            let id = 0..IDS.len();
            prop_oneof![
                1 => any::<bool>().prop_map(Op::Subscribed),
                2 => (id.clone(), any::<bool>()).prop_map(|(i, ok)| Op::Launch(i, ok)),
                1 => proptest::collection::vec((id.clone(), any::<bool>()), 1..4)
                    .prop_map(Op::LaunchGroup),
                1 => (id.clone(), proptest::option::of(0u64..5)).prop_map(|(i, g)| Op::Kill(i, g)),
                1 => id.clone().prop_map(Op::AckLatest),
                1 => (id, -1i32..3).prop_map(|(i, c)| Op::Exit(i, c)),
                3 => (0u64..6).prop_map(Op::Advance),
                1 => Just(Op::Shutdown),
                1 => Just(Op::Disconnect),
                1 => Just(Op::Error),
                6 => (0..IDS.len(), any::<bool>()).prop_map(|(i, ok)| Op::HealthResult(i, ok)),
            ]
        }

        /// Every task is health checked each second and killed after 2
        /// failures; "a" and "b" have a grace period of 1 s.
        fn command(id: &str, ok: bool) -> v1::TaskInfo {
            let mut info = task_info(id, if ok { "sleep 100" } else { "/nonexistent" });
            let grace = if matches!(id, "a" | "b") { 1.0 } else { 0.0 };
            info.health_check = Some(http_health(2, grace));
            info
        }

        proptest! {
            /// Whatever the agent, the processes and the health checks do,
            /// every update is valid for the agent, a task's updates follow
            /// its life cycle, nothing follows a terminal update, and health
            /// checks run one at a time per task and only while it runs.
            #[test]
            fn updates_follow_the_task_life_cycle(
                checkpoint in any::<bool>(),
                ops in proptest::collection::vec(op(), 0..40),
            ) {
                let mut now = Instant::now();
                let mut ex = executor(checkpoint);
                ex.subscribe_call();
                // Every status ever emitted, per task, in order.
                let mut history: HashMap<String, Vec<v1::TaskStatus>> = HashMap::new();
                // The health check running per task, as the event loop sees it.
                let mut checking: HashMap<String, u64> = HashMap::new();
                for op in ops {
                    match op {
                        Op::Subscribed(killing) => {
                            ex.handle_event(subscribed(killing), now);
                        }
                        Op::Launch(i, ok) => {
                            ex.handle_event(launch(command(IDS[i], ok)), now);
                        }
                        Op::LaunchGroup(members) => {
                            let tasks = members.iter().map(|&(i, ok)| command(IDS[i], ok)).collect();
                            ex.handle_event(launch_group(tasks), now);
                        }
                        Op::Kill(i, grace) => {
                            ex.handle_event(kill(IDS[i], grace.map(policy)), now);
                        }
                        Op::AckLatest(i) => {
                            if let Some(last) = history.get(IDS[i]).and_then(|h| h.last()) {
                                ex.handle_event(ack(last), now);
                            }
                        }
                        Op::Exit(i, code) => {
                            let termination = if code < 0 {
                                Termination::Signaled(15)
                            } else {
                                Termination::Exited(code)
                            };
                            ex.on_exit(IDS[i], termination, now);
                        }
                        Op::Advance(secs) => {
                            now += Duration::from_secs(secs);
                            ex.on_timer(now);
                        }
                        Op::Shutdown => ex.shutdown(now),
                        Op::Disconnect => {
                            ex.on_disconnected(now);
                            ex.subscribe_call();
                        }
                        Op::Error => {
                            let error = Event {
                                r#type: Some(event::Type::Error as i32),
                                ..Default::default()
                            };
                            prop_assert_eq!(ex.handle_event(error, now), Flow::Disconnect);
                        }
                        Op::HealthResult(i, passed) => {
                            let mut running: Vec<String> = checking.keys().cloned().collect();
                            running.sort();
                            if !running.is_empty() {
                                let task_id = running.swap_remove(i % running.len());
                                let attempt = checking.remove(&task_id).unwrap();
                                let result = if passed { Ok(()) } else { Err("refused".into()) };
                                ex.on_health_result(health::Finished { task_id, attempt, result }, now);
                            }
                        }
                    }
                    // Everything emitted stays pending until acknowledged,
                    // and acks come only for updates recorded here.
                    ex.take_outbox();
                    for status in ex.pending.iter().map(|p| &p.update.status) {
                        let entry = history.entry(status.task_id.value.clone()).or_default();
                        if !entry.iter().any(|s| s.uuid == status.uuid) {
                            entry.push(status.clone());
                        }
                    }
                    ex.on_timer(now);
                    let _ = ex.outcome(now);
                    for action in ex.take_health_actions() {
                        match action {
                            health::Action::Run { task_id, attempt, .. } => {
                                prop_assert!(!checking.contains_key(&task_id), "two checks of {}", task_id);
                                checking.insert(task_id, attempt);
                            }
                            health::Action::Cancel { task_id } => {
                                prop_assert!(checking.remove(&task_id).is_some(), "cancel of no check of {}", task_id);
                            }
                        }
                    }
                    for id in checking.keys() {
                        let running = matches!(ex.tasks[id].phase, Phase::Running { .. });
                        prop_assert!(running, "{} is checked but not running", id);
                    }
                }

                let mut uuids = std::collections::HashSet::new();
                for (id, statuses) in &history {
                    let mut terminal = false;
                    let mut previous: Option<TaskState> = None;
                    for status in statuses {
                        prop_assert!(!terminal, "{} has an update after its terminal one", id);
                        prop_assert_eq!(status.source(), Source::Executor);
                        prop_assert_ne!(status.state(), TaskState::TaskStaging);
                        let uuid = status.uuid.clone().unwrap_or_default();
                        prop_assert_eq!(uuid.len(), 16);
                        prop_assert!(uuids.insert(uuid), "uuid reused");
                        let state = status.state();
                        let health_update = status.reason() == Reason::TaskHealthCheckStatusUpdated;
                        prop_assert_eq!(health_update, previous == Some(TaskState::TaskRunning) && state == TaskState::TaskRunning);
                        prop_assert_eq!(health_update, status.healthy.is_some() && state == TaskState::TaskRunning);
                        if state != TaskState::TaskRunning {
                            prop_assert_ne!(status.healthy, Some(true));
                        }
                        let allowed = match previous {
                            None => matches!(state, TaskState::TaskStarting | TaskState::TaskKilled),
                            Some(TaskState::TaskStarting) => matches!(state, TaskState::TaskRunning | TaskState::TaskFailed),
                            Some(TaskState::TaskRunning) => matches!(state, TaskState::TaskRunning | TaskState::TaskKilling | TaskState::TaskFinished | TaskState::TaskFailed | TaskState::TaskKilled),
                            Some(TaskState::TaskKilling) => state == TaskState::TaskKilled,
                            Some(_) => false,
                        };
                        prop_assert!(allowed, "{}: {:?} after {:?}", id, state, previous);
                        terminal = util::is_terminal(state);
                        previous = Some(state);
                    }
                }
            }

            /// Arbitrary bytes from the agent, decoded as far as they go,
            /// never make the executor panic.
            #[test]
            fn arbitrary_events_never_panic(records in proptest::collection::vec(proptest::collection::vec(any::<u8>(), 0..64), 0..20)) {
                let now = Instant::now();
                let mut ex = executor(true);
                for bytes in records {
                    if let Ok(event) = Event::decode(bytes.as_slice()) {
                        ex.handle_event(event, now);
                    }
                    ex.on_timer(now);
                    let _ = ex.outcome(now);
                }
            }
        }
    }
}
