//! RECONCILE answers (`Master::reconcile`, `docs/reconciliation.md`), as a
//! pure function of what the master knows. Every answer is SOURCE_MASTER,
//! REASON_RECONCILIATION, without uuid; non-PARTITION_AWARE frameworks see
//! TASK_LOST where a partition-aware one would see UNREACHABLE, GONE,
//! GONE_BY_OPERATOR, UNKNOWN or DROPPED.

use mesos_proto::util;
use mesos_proto::v1::{self, TaskState, task_status::Reason, task_status::Source};

/// What the master knows about the agent a task was asked about.
#[derive(Debug, Clone, PartialEq)]
pub enum AgentKnowledge {
    /// Registered (connected or briefly disconnected).
    Registered,
    /// Marked unreachable at this time.
    Unreachable(v1::TimeInfo),
    /// Known from before a master failover but not yet reregistered.
    Recovering,
    /// Marked gone by the operator (no MARK_AGENT_GONE operator call yet).
    #[allow(dead_code)]
    Gone,
    /// Never heard of.
    Unknown,
}

/// A task the master knows.
#[derive(Debug, Clone, PartialEq)]
pub struct KnownTask {
    /// Its id.
    pub task_id: String,
    /// `status_update_state` if set, else `state`.
    pub state: TaskState,
    /// Its agent.
    pub agent_id: String,
    /// Its executor, if not a command task.
    pub executor_id: Option<String>,
    /// The latest status (for `healthy`, `check_status`, `container_status`).
    pub latest: Option<v1::TaskStatus>,
}

/// The state a framework is told: partition-aware states become TASK_LOST
/// for frameworks without the capability.
pub fn visible_state(state: TaskState, partition_aware: bool) -> TaskState {
    if partition_aware {
        return state;
    }
    match state {
        TaskState::TaskUnreachable
        | TaskState::TaskGone
        | TaskState::TaskGoneByOperator
        | TaskState::TaskUnknown
        | TaskState::TaskDropped => TaskState::TaskLost,
        other => other,
    }
}

fn answer(
    task_id: &str,
    state: TaskState,
    partition_aware: bool,
    agent_id: Option<&str>,
    message: &str,
) -> v1::TaskStatus {
    let mut s = util::with_reason(
        util::status(
            util::task_id(task_id),
            visible_state(state, partition_aware),
            Source::Master,
        ),
        Reason::Reconciliation,
        message,
    );
    s.agent_id = agent_id.map(util::agent_id);
    s
}

fn known_answer(task: &KnownTask, partition_aware: bool) -> v1::TaskStatus {
    let mut s = answer(
        &task.task_id,
        task.state,
        partition_aware,
        Some(&task.agent_id),
        "Reconciliation: Latest task state",
    );
    s.executor_id = task.executor_id.as_deref().map(util::executor_id);
    if let Some(latest) = &task.latest {
        s.healthy = latest.healthy;
        s.check_status = latest.check_status;
        s.container_status = latest.container_status.clone();
    }
    s
}

/// Explicit reconciliation of `(task_id, agent_id)` pairs (cases 1-6).
pub fn explicit(
    partition_aware: bool,
    requests: &[(String, Option<String>)],
    known: impl Fn(&str) -> Option<KnownTask>,
    agent: impl Fn(&str) -> AgentKnowledge,
    any_agent_recovering: bool,
) -> Vec<v1::TaskStatus> {
    let mut out = Vec::new();
    for (task_id, agent_id) in requests {
        // 1. Known task: its latest state.
        if let Some(task) = known(task_id) {
            out.push(known_answer(&task, partition_aware));
            continue;
        }
        let Some(agent_id) = agent_id else {
            // Without an agent, stay silent while any agent may still bring
            // the task back; otherwise the task is unknown.
            if !any_agent_recovering {
                out.push(answer(
                    task_id,
                    TaskState::TaskUnknown,
                    partition_aware,
                    None,
                    "Reconciliation: Task is unknown",
                ));
            }
            continue;
        };
        let reply = match agent(agent_id) {
            // 2. The agent may still reregister with it: no answer.
            AgentKnowledge::Recovering => None,
            // 3. Registered agent that does not have it.
            AgentKnowledge::Registered => Some(answer(
                task_id,
                TaskState::TaskGone,
                partition_aware,
                Some(agent_id),
                "Reconciliation: Task is unknown to the agent",
            )),
            // 4. Unreachable agent.
            AgentKnowledge::Unreachable(time) => {
                let mut s = answer(
                    task_id,
                    TaskState::TaskUnreachable,
                    partition_aware,
                    Some(agent_id),
                    "Reconciliation: Task is unreachable",
                );
                s.unreachable_time = Some(time);
                Some(s)
            }
            // 5. Agent marked gone.
            AgentKnowledge::Gone => Some(answer(
                task_id,
                TaskState::TaskGoneByOperator,
                partition_aware,
                Some(agent_id),
                "Reconciliation: Task is gone",
            )),
            // 6. Unknown agent.
            AgentKnowledge::Unknown => Some(answer(
                task_id,
                TaskState::TaskUnknown,
                partition_aware,
                Some(agent_id),
                "Reconciliation: Task is unknown",
            )),
        };
        out.extend(reply);
    }
    out
}

/// Implicit reconciliation: the latest state of every task the master has
/// for the framework (staging, running, terminal but unacknowledged).
pub fn implicit<'a>(
    partition_aware: bool,
    tasks: impl IntoIterator<Item = &'a KnownTask>,
) -> Vec<v1::TaskStatus> {
    tasks
        .into_iter()
        .map(|t| known_answer(t, partition_aware))
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    fn running() -> KnownTask {
        KnownTask {
            task_id: "t1".into(),
            state: TaskState::TaskRunning,
            agent_id: "m-S1".into(),
            executor_id: Some("e1".into()),
            latest: Some(v1::TaskStatus {
                healthy: Some(true),
                uuid: Some(vec![1; 16]),
                ..util::status(
                    util::task_id("t1"),
                    TaskState::TaskRunning,
                    Source::Executor,
                )
            }),
        }
    }

    fn ask(pa: bool, task: &str, agent: Option<&str>, recovering: bool) -> Vec<v1::TaskStatus> {
        let known = |id: &str| (id == "t1").then(running);
        let agents = |id: &str| match id {
            "m-S1" => AgentKnowledge::Registered,
            "m-S2" => AgentKnowledge::Unreachable(v1::TimeInfo { nanoseconds: 42 }),
            "m-S3" => AgentKnowledge::Recovering,
            "m-S4" => AgentKnowledge::Gone,
            _ => AgentKnowledge::Unknown,
        };
        explicit(
            pa,
            &[(task.to_string(), agent.map(str::to_string))],
            known,
            agents,
            recovering,
        )
    }

    fn only(v: Vec<v1::TaskStatus>) -> v1::TaskStatus {
        assert_eq!(v.len(), 1, "{v:?}");
        let s = v.into_iter().next().unwrap();
        assert_eq!(s.source(), Source::Master);
        assert_eq!(s.reason(), Reason::Reconciliation);
        assert!(s.uuid.is_none());
        s
    }

    #[test]
    fn case_1_known_task_reports_latest_state_and_health() {
        let s = only(ask(true, "t1", Some("m-S1"), false));
        assert_eq!(s.state(), TaskState::TaskRunning);
        assert_eq!(s.healthy, Some(true));
        assert_eq!(s.executor_id.unwrap().value, "e1");
    }

    #[test]
    fn case_2_recovering_agent_gets_no_answer() {
        assert!(ask(true, "t9", Some("m-S3"), true).is_empty());
        assert!(ask(true, "t9", None, true).is_empty());
        assert_eq!(
            only(ask(true, "t9", None, false)).state(),
            TaskState::TaskUnknown
        );
    }

    #[test]
    fn cases_3_to_6_by_agent_and_capability() {
        assert_eq!(
            only(ask(true, "t9", Some("m-S1"), false)).state(),
            TaskState::TaskGone
        );
        let s = only(ask(true, "t9", Some("m-S2"), false));
        assert_eq!(s.state(), TaskState::TaskUnreachable);
        assert_eq!(s.unreachable_time.unwrap().nanoseconds, 42);
        assert_eq!(
            only(ask(true, "t9", Some("m-S4"), false)).state(),
            TaskState::TaskGoneByOperator
        );
        assert_eq!(
            only(ask(true, "t9", Some("m-S9"), false)).state(),
            TaskState::TaskUnknown
        );
        for agent in ["m-S1", "m-S2", "m-S4", "m-S9"] {
            assert_eq!(
                only(ask(false, "t9", Some(agent), false)).state(),
                TaskState::TaskLost
            );
        }
    }

    #[test]
    fn implicit_lists_every_known_task() {
        let tasks = [running()];
        let out = implicit(false, &tasks);
        assert_eq!(out.len(), 1);
        assert_eq!(out[0].state(), TaskState::TaskRunning);
        assert!(out[0].uuid.is_none());
    }
}
