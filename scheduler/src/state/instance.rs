//! Instances: Marathon's split of desired goal from observed condition.
//!
//! An [`Instance`] is one slot of an app: it has a stable id, a [`Goal`]
//! (what we want: keep it running, stop it, or remove it for good) and, once
//! launched, the [`InstanceTask`] Mesos reports on, whose [`Condition`] is
//! what we observe. A task that ends while its goal is Running is relaunched
//! under the same instance id with the next incarnation, so task ids read
//! `<app>.instance-<uuid>._app.<incarnation>` as in Marathon 1.8+.

use std::collections::BTreeMap;

use mesos_proto::v1::{TaskState, TaskStatus, task_status::Reason};
use serde::{Deserialize, Serialize};
use uuid::Uuid;

use super::StatusRecord;
use super::app::{PathId, Timestamp, marathon_task_id};

/// What we want of an instance.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
pub enum Goal {
    /// Keep it running: relaunch it whenever its task ends.
    Running,
    /// Stop its task but keep the instance (not used by apps yet).
    Stopped,
    /// Stop its task and forget the instance once the task is terminal.
    Decommissioned,
}

/// What Mesos last told us about an instance's task, condensed the way
/// Marathon does (`TaskConditionMapping`): TASK_LOST is split by reason into
/// "maybe still running somewhere" and "gone".
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize, Deserialize)]
pub enum Condition {
    /// Sent to Mesos in an ACCEPT; no status yet.
    Provisioned,
    /// TASK_STAGING.
    Staging,
    /// TASK_STARTING.
    Starting,
    /// TASK_RUNNING.
    Running,
    /// TASK_KILLING.
    Killing,
    /// TASK_UNREACHABLE, or TASK_LOST for a partition: may still run.
    Unreachable,
    /// TASK_FINISHED.
    Finished,
    /// TASK_FAILED.
    Failed,
    /// TASK_KILLED.
    Killed,
    /// TASK_ERROR.
    Error,
    /// TASK_DROPPED.
    Dropped,
    /// TASK_GONE, TASK_GONE_BY_OPERATOR, or TASK_LOST for other reasons.
    Gone,
    /// TASK_UNKNOWN: the master has never heard of it.
    Unknown,
}

impl Condition {
    /// The condition a status puts a task in.
    pub fn of(status: &TaskStatus) -> Condition {
        match status.state() {
            TaskState::TaskStaging => Condition::Staging,
            TaskState::TaskStarting => Condition::Starting,
            TaskState::TaskRunning => Condition::Running,
            TaskState::TaskKilling => Condition::Killing,
            TaskState::TaskFinished => Condition::Finished,
            TaskState::TaskFailed => Condition::Failed,
            TaskState::TaskKilled => Condition::Killed,
            TaskState::TaskError => Condition::Error,
            TaskState::TaskDropped => Condition::Dropped,
            TaskState::TaskUnreachable => Condition::Unreachable,
            TaskState::TaskGone | TaskState::TaskGoneByOperator => Condition::Gone,
            TaskState::TaskUnknown => Condition::Unknown,
            TaskState::TaskLost => match status.reason() {
                Reason::Reconciliation | Reason::AgentDisconnected | Reason::AgentRemoved
                    if status.reason.is_some() =>
                {
                    Condition::Unreachable
                }
                Reason::TaskUnknown if status.reason.is_some() => Condition::Unknown,
                _ => Condition::Gone,
            },
        }
    }

    /// The task will never run again.
    pub fn is_terminal(self) -> bool {
        matches!(
            self,
            Condition::Finished
                | Condition::Failed
                | Condition::Killed
                | Condition::Error
                | Condition::Dropped
                | Condition::Gone
                | Condition::Unknown
        )
    }

    /// Launched but not yet running.
    pub fn is_launching(self) -> bool {
        matches!(
            self,
            Condition::Provisioned | Condition::Staging | Condition::Starting
        )
    }

    /// The Mesos state name shown in task JSON (`Provisioned` shows as
    /// TASK_STAGING, as Marathon does).
    pub fn mesos_state(self) -> &'static str {
        match self {
            Condition::Provisioned | Condition::Staging => "TASK_STAGING",
            Condition::Starting => "TASK_STARTING",
            Condition::Running => "TASK_RUNNING",
            Condition::Killing => "TASK_KILLING",
            Condition::Unreachable => "TASK_UNREACHABLE",
            Condition::Finished => "TASK_FINISHED",
            Condition::Failed => "TASK_FAILED",
            Condition::Killed => "TASK_KILLED",
            Condition::Error => "TASK_ERROR",
            Condition::Dropped => "TASK_DROPPED",
            Condition::Gone => "TASK_GONE",
            Condition::Unknown => "TASK_UNKNOWN",
        }
    }

    /// Whether this end should make the next launch wait longer (Marathon's
    /// `limitWorthy`): a crash, an error, an exit, a drop. A kill does not.
    pub fn counts_as_launch_failure(self) -> bool {
        matches!(
            self,
            Condition::Failed
                | Condition::Error
                | Condition::Dropped
                | Condition::Gone
                | Condition::Finished
        )
    }
}

/// The current (or last) task of an instance.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct InstanceTask {
    /// Mesos TaskID.
    pub task_id: String,
    /// Agent it runs on.
    pub agent_id: String,
    /// The agent's hostname.
    pub hostname: String,
    /// The agent's fields constraints look at (`@hostname`, attributes),
    /// as `offers::constraints::offer_fields` renders them.
    pub fields: BTreeMap<String, String>,
    /// Host ports it got, in declaration order.
    pub host_ports: Vec<u64>,
    /// What Mesos last said.
    pub condition: Condition,
    /// Details of the last status.
    pub last_status: Option<StatusRecord>,
    /// When Baton sent the launch.
    pub launched_at: Timestamp,
    /// When Mesos first reported it running.
    pub started_at: Option<Timestamp>,
    /// Since when it is unreachable, if it is.
    pub unreachable_since: Option<Timestamp>,
    /// When Baton last asked Mesos to kill it.
    pub kill_requested_at: Option<Timestamp>,
    /// Hex uuids of the last few updates applied, to recognise redeliveries.
    pub recent_update_uuids: Vec<String>,
    /// What its health checks say, all of them together: `None` until
    /// every check has spoken (or without checks).
    #[serde(default)]
    pub healthy: Option<bool>,
    /// When Baton decided to replace it for failing its health checks: it
    /// is then treated like an instance of an old version, so that its
    /// replacement can start before it is killed.
    #[serde(default)]
    pub retire_for_health: Option<Timestamp>,
    /// Since when it is drained before its kill: shown as TASK_KILLING so
    /// that clients and load balancers stop sending it requests while it
    /// still serves them.
    #[serde(default)]
    pub draining_since: Option<Timestamp>,
    /// Whether its app's readiness checks have all passed once (`None`
    /// until they spoke, or without readiness checks).
    #[serde(default)]
    pub ready: Option<bool>,
}

impl InstanceTask {
    /// The Mesos state clients are shown: TASK_KILLING while it is drained
    /// before a kill (it still runs and serves), else its condition's.
    pub fn shown_state(&self) -> &'static str {
        if self.draining_since.is_some() && self.condition == Condition::Running {
            "TASK_KILLING"
        } else {
            self.condition.mesos_state()
        }
    }

    /// A task just sent to Mesos, with nothing heard of it yet.
    pub fn launched(
        task_id: String,
        agent_id: String,
        hostname: String,
        host_ports: Vec<u64>,
        launched_at: Timestamp,
    ) -> InstanceTask {
        InstanceTask {
            task_id,
            agent_id,
            hostname,
            fields: BTreeMap::new(),
            host_ports,
            condition: Condition::Provisioned,
            last_status: None,
            launched_at,
            started_at: None,
            unreachable_since: None,
            kill_requested_at: None,
            recent_update_uuids: Vec::new(),
            healthy: None,
            retire_for_health: None,
            draining_since: None,
            ready: None,
        }
    }
}

/// One slot of an app.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Instance {
    /// The app it belongs to.
    pub app_id: PathId,
    /// Stable across relaunches.
    pub uuid: Uuid,
    /// How many tasks this instance has had; the next task's number.
    pub incarnation: u64,
    /// What we want.
    pub goal: Goal,
    /// The app version it runs (or will run).
    pub app_version: Timestamp,
    /// Since when it waits for an offer (meaningful without a live task).
    pub scheduled_at: Timestamp,
    /// The current task, or the last one if it ended.
    pub task: Option<InstanceTask>,
}

impl Instance {
    /// A new instance waiting for its first launch.
    pub fn schedule(app_id: PathId, app_version: Timestamp, now: Timestamp) -> Instance {
        Instance {
            app_id,
            uuid: Uuid::new_v4(),
            incarnation: 0,
            goal: Goal::Running,
            app_version,
            scheduled_at: now,
            task: None,
        }
    }

    /// `<app>.instance-<uuid>`.
    pub fn instance_id(&self) -> String {
        super::app::instance_id(&self.app_id, self.uuid)
    }

    /// The task id the next launch uses.
    pub fn next_task_id(&self) -> String {
        marathon_task_id(&self.app_id, self.uuid, self.incarnation + 1)
    }

    /// The condition of its task, if it has one.
    pub fn condition(&self) -> Option<Condition> {
        self.task.as_ref().map(|t| t.condition)
    }

    /// Waits for an offer: wanted running, and no task or only an ended one.
    pub fn is_waiting(&self) -> bool {
        self.goal == Goal::Running && self.condition().is_none_or(Condition::is_terminal)
    }

    /// Has a task that may be running (not terminal).
    pub fn is_active(&self) -> bool {
        self.condition().is_some_and(|c| !c.is_terminal())
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use mesos_proto::util::{status, task_id, with_reason};
    use mesos_proto::v1::task_status::Source;

    fn lost(reason: Option<Reason>) -> TaskStatus {
        let s = status(task_id("t"), TaskState::TaskLost, Source::Master);
        match reason {
            Some(r) => with_reason(s, r, "lost"),
            None => s,
        }
    }

    #[test]
    fn task_lost_is_split_by_reason_as_marathon_does() {
        assert_eq!(
            Condition::of(&lost(Some(Reason::Reconciliation))),
            Condition::Unreachable
        );
        assert_eq!(
            Condition::of(&lost(Some(Reason::AgentDisconnected))),
            Condition::Unreachable
        );
        assert_eq!(
            Condition::of(&lost(Some(Reason::AgentRemoved))),
            Condition::Unreachable
        );
        assert_eq!(
            Condition::of(&lost(Some(Reason::TaskUnknown))),
            Condition::Unknown
        );
        assert_eq!(
            Condition::of(&lost(Some(Reason::ExecutorTerminated))),
            Condition::Gone
        );
        // An unset reason reads as reason 0 through the getter; it must not
        // be mistaken for a partition.
        assert_eq!(Condition::of(&lost(None)), Condition::Gone);
    }

    #[test]
    fn killed_does_not_count_as_a_launch_failure_but_finished_does() {
        assert!(!Condition::Killed.counts_as_launch_failure());
        assert!(Condition::Finished.counts_as_launch_failure());
        assert!(Condition::Failed.counts_as_launch_failure());
        assert!(Condition::Killed.is_terminal());
        assert!(!Condition::Unreachable.is_terminal());
    }

    #[test]
    fn task_ids_count_incarnations() {
        let app = PathId::parse("/prod/web", &PathId::root()).unwrap();
        let i = Instance::schedule(app, Timestamp::from_millis(0), Timestamp::from_millis(0));
        let first = i.next_task_id();
        assert!(first.starts_with("prod_web.instance-"), "{first}");
        assert!(first.ends_with("._app.1"), "{first}");
        assert!(i.is_waiting());
        assert!(!i.is_active());
    }
}
