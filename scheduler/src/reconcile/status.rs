//! A task status update as a pure transition: the instance, the status, the
//! app's launch delay and the time in; the instance as it is now, the
//! app's last failure and its next launch delay out. The driver stores
//! the result before it acknowledges the update.

use mesos_proto::util::state_of;
use mesos_proto::v1;

use super::backoff::{self, LaunchDelay};
use super::view::TaskFailure;
use crate::state::StatusRecord;
use crate::state::app::{AppDefinition, Timestamp};
use crate::state::instance::{
    Condition, Goal, Instance, InstanceTask, UpdateUuid, pod_condition, pod_health,
};
use crate::state::model::RECENT_UUIDS;

/// What a status update is applied to.
#[derive(Debug, Clone, Copy)]
pub struct StatusInput<'a> {
    /// The instance whose task it reports on (the task is its current one).
    pub instance: &'a Instance,
    /// The update.
    pub status: &'a v1::TaskStatus,
    /// The app's current definition (its backoff), if it still exists.
    pub app: Option<&'a AppDefinition>,
    /// The app's launch delay so far.
    pub delay: Option<&'a LaunchDelay>,
    /// Now.
    pub now: Timestamp,
    /// The task ended for a reason that is Baton's, not the app's (its
    /// agent could not fetch baton-executor): no failure, no delay.
    pub not_the_apps_fault: bool,
}

/// What the update changes.
#[derive(Debug, Clone, PartialEq)]
pub struct StatusOutcome {
    /// The instance with its task updated.
    pub next: Instance,
    /// The app's last failure, when the task failed (not a kill).
    pub failure: Option<TaskFailure>,
    /// The app's next launch delay, when the failure makes the next
    /// launch wait.
    pub delay: Option<LaunchDelay>,
    /// How long the task took from launch to its first TASK_RUNNING.
    pub launch_latency_ms: Option<u64>,
}

/// The status's uuid, as kept to recognise redeliveries.
fn update_uuid(status: &v1::TaskStatus) -> Option<UpdateUuid> {
    status.uuid.as_deref().map(UpdateUuid::of)
}

/// Whether `status` is a redelivery of an update already applied (its
/// acknowledgement may have been lost: acknowledge it again, change
/// nothing).
pub fn redelivered(task: &InstanceTask, status: &v1::TaskStatus) -> bool {
    update_uuid(status).is_some_and(|u| task.recent_update_uuids.contains(&u))
}

/// Applies `input.status` to its instance's task.
pub fn apply_status(input: StatusInput<'_>) -> StatusOutcome {
    let StatusInput {
        instance,
        status,
        app,
        delay,
        now,
        not_the_apps_fault,
    } = input;
    let mut condition = Condition::of(status);
    let mut next = instance.clone();
    let mut outcome_failure = None;
    let mut outcome_delay = None;
    let mut launch_latency_ms = None;
    if let Some(task) = next.task.as_mut() {
        let was_terminal = task.condition.is_terminal();
        // A pod instance: the update is one container's; the instance's
        // condition and health are what its containers add up to.
        if let Some(containers) = task.containers.as_mut() {
            if let Some(container) = containers
                .iter_mut()
                .find(|c| c.task_id == status.task_id.value)
            {
                container.condition = condition;
                if status.healthy.is_some() {
                    container.healthy = status.healthy;
                }
                container.message = status.message.clone();
            }
            task.healthy = pod_health(containers);
            condition = pod_condition(containers);
        }
        task.condition = condition;
        task.last_status = Some(StatusRecord::from_status(status));
        if condition == Condition::Running && task.started_at.is_none() {
            let started = status
                .timestamp
                .map_or(now, |t| Timestamp::from_millis((t * 1000.0) as i64));
            task.started_at = Some(started);
            launch_latency_ms =
                Some(u64::try_from(now.as_millis() - task.launched_at.as_millis()).unwrap_or(0));
        }
        task.unreachable_since = match condition {
            Condition::Unreachable => task.unreachable_since.or(Some(now)),
            _ => None,
        };
        if let Some(u) = update_uuid(status) {
            task.recent_update_uuids.push(u);
            let excess = task.recent_update_uuids.len().saturating_sub(RECENT_UUIDS);
            task.recent_update_uuids.drain(..excess);
        }
        if condition.is_terminal()
            && !was_terminal
            && condition.counts_as_launch_failure()
            && !not_the_apps_fault
        {
            outcome_failure = Some(TaskFailure {
                app_id: next.app_id.clone(),
                host: task.hostname.to_string(),
                message: status.message.clone().unwrap_or_default(),
                state: state_of(status).as_str_name().to_string(),
                task_id: task.task_id.clone(),
                timestamp: now,
                version: next.app_version,
                slave_id: task.agent_id.to_string(),
            });
            if next.goal == Goal::Running
                && let Some(app) = app
            {
                outcome_delay = Some(backoff::after_failure(delay, app, now));
            }
        }
    }
    // A task going on a reservation shows the reservation exists; so does
    // any word of its agent or executor about it, even its failure (the
    // master applies an ACCEPT's RESERVE before its launch, and refuses
    // the launch itself when the RESERVE was dropped). Else a first launch
    // failing early, then held back by its delay, would see its
    // reservation given up while Mesos offers it.
    let from_the_agent = status.source() != v1::task_status::Source::Master;
    if (from_the_agent || matches!(condition, Condition::Starting | Condition::Running))
        && let Some(held) = next.reservation.as_mut()
    {
        held.confirmed = true;
    }
    StatusOutcome {
        next,
        failure: outcome_failure,
        delay: outcome_delay,
        launch_latency_ms,
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::state::app::{AppDefaults, PathId};
    use mesos_proto::util::{status, task_id};
    use mesos_proto::v1::TaskState;
    use mesos_proto::v1::task_status::Source;

    fn app() -> AppDefinition {
        let json = serde_json::json!({"id": "/web", "cmd": "x", "backoffSeconds": 2});
        AppDefinition::from_value(&json, &PathId::root(), &AppDefaults::default())
            .unwrap()
            .with_version(Timestamp::from_millis(1), false)
    }

    fn launched(app: &AppDefinition) -> Instance {
        let mut i = Instance::schedule(
            app.id.clone(),
            app.config_version(),
            Timestamp::from_millis(1),
        );
        i.task = Some(InstanceTask::launched(
            i.next_task_id(),
            "agent".into(),
            "host".into(),
            vec![],
            Timestamp::from_millis(1_000),
        ));
        i
    }

    fn update(instance: &Instance, state: TaskState, uuid: u8) -> v1::TaskStatus {
        let mut s = status(
            task_id(&instance.task.as_ref().unwrap().task_id),
            state,
            Source::Executor,
        );
        s.uuid = Some(vec![uuid]);
        // Started when Baton hears of it (a status may carry its own time).
        s.timestamp = None;
        s
    }

    fn input<'a>(
        i: &'a Instance,
        s: &'a v1::TaskStatus,
        app: &'a AppDefinition,
        now: i64,
    ) -> StatusInput<'a> {
        StatusInput {
            instance: i,
            status: s,
            app: Some(app),
            delay: None,
            now: Timestamp::from_millis(now),
            not_the_apps_fault: false,
        }
    }

    #[test]
    fn a_reservation_is_confirmed_by_any_word_of_the_agent_not_by_the_master() {
        let app = app();
        let mut i = launched(&app);
        i.reservation = Some(Box::new(crate::state::instance::Reservation {
            agent_id: crate::state::instance::SharedStr::new("agent"),
            reserved_at: Timestamp::from_millis(1_000),
            confirmed: false,
        }));
        let confirmed = |state: TaskState, source: Source| {
            let mut s = update(&i, state, 1);
            s.source = Some(source as i32);
            apply_status(input(&i, &s, &app, 2_000))
                .next
                .reservation
                .is_some_and(|r| r.confirmed)
        };
        // A launch that failed on the agent ran on the reservation.
        assert!(confirmed(TaskState::TaskFailed, Source::Agent));
        assert!(confirmed(TaskState::TaskStarting, Source::Executor));
        // One the master refused (its RESERVE dropped, say) proves nothing.
        assert!(!confirmed(TaskState::TaskDropped, Source::Master));
        assert!(!confirmed(TaskState::TaskError, Source::Master));
    }

    #[test]
    fn running_records_the_start_and_the_launch_latency_once() {
        let a = app();
        let i = launched(&a);
        let running = update(&i, TaskState::TaskRunning, 1);
        let out = apply_status(input(&i, &running, &a, 1_500));
        let task = out.next.task.as_ref().unwrap();
        assert_eq!(task.condition, Condition::Running);
        assert_eq!(task.started_at, Some(Timestamp::from_millis(1_500)));
        assert_eq!(out.launch_latency_ms, Some(500));
        assert!(redelivered(task, &running), "its uuid is remembered");
        let again = apply_status(input(
            &out.next,
            &update(&i, TaskState::TaskRunning, 2),
            &a,
            9_000,
        ));
        assert_eq!(again.launch_latency_ms, None);
        assert_eq!(
            again.next.task.unwrap().started_at,
            Some(Timestamp::from_millis(1_500))
        );
    }

    #[test]
    fn a_failure_is_the_apps_and_delays_its_next_launch_but_a_kill_is_not() {
        let a = app();
        let i = launched(&a);
        let failed = update(&i, TaskState::TaskFailed, 1);
        let out = apply_status(input(&i, &failed, &a, 5_000));
        assert_eq!(out.failure.as_ref().unwrap().state, "TASK_FAILED");
        let delay = out.delay.unwrap();
        assert_eq!(delay.delay_ms, 2_000);
        assert_eq!(delay.until, Timestamp::from_millis(7_000));
        let killed = update(&i, TaskState::TaskKilled, 2);
        let out = apply_status(input(&i, &killed, &a, 5_000));
        assert_eq!((out.failure, out.delay), (None, None));
        let out = apply_status(StatusInput {
            not_the_apps_fault: true,
            ..input(&i, &failed, &a, 5_000)
        });
        assert_eq!(
            (out.failure, out.delay),
            (None, None),
            "Baton's own failure"
        );
    }

    #[test]
    fn unreachable_remembers_since_when_until_it_is_back() {
        let a = app();
        let i = launched(&a);
        let out = apply_status(input(
            &i,
            &update(&i, TaskState::TaskUnreachable, 1),
            &a,
            3_000,
        ));
        assert_eq!(
            out.next.task.as_ref().unwrap().unreachable_since,
            Some(Timestamp::from_millis(3_000))
        );
        let later = apply_status(input(
            &out.next,
            &update(&i, TaskState::TaskUnreachable, 2),
            &a,
            4_000,
        ));
        assert_eq!(
            later.next.task.as_ref().unwrap().unreachable_since,
            Some(Timestamp::from_millis(3_000))
        );
        let back = apply_status(input(
            &later.next,
            &update(&i, TaskState::TaskRunning, 3),
            &a,
            5_000,
        ));
        assert_eq!(back.next.task.unwrap().unreachable_since, None);
    }

    #[test]
    fn a_pod_containers_updates_add_up_to_its_instance() {
        use crate::state::instance::ContainerTask;
        let a = app();
        let mut i = launched(&a);
        let names = ["writer", "server"];
        i.task.as_mut().unwrap().containers = Some(Box::new(
            names
                .iter()
                .map(|n| ContainerTask {
                    name: n.to_string(),
                    task_id: format!("web.instance-u.{n}.1"),
                    condition: Condition::Provisioned,
                    checked: *n == "server",
                    healthy: None,
                    message: None,
                })
                .collect(),
        ));
        let of = |id: &str, state: TaskState, healthy: Option<bool>| {
            let mut s = status(task_id(id), state, Source::Executor);
            s.uuid = Some(vec![state as u8, healthy.map_or(2, u8::from)]);
            s.healthy = healthy;
            s
        };
        // One running: the instance is still starting.
        let s = of("web.instance-u.writer.1", TaskState::TaskRunning, None);
        let i = apply_status(input(&i, &s, &a, 1_100)).next;
        assert_eq!(i.condition(), Some(Condition::Provisioned));
        // Both running: running, not yet healthy; then healthy.
        let s = of("web.instance-u.server.1", TaskState::TaskRunning, None);
        let i = apply_status(input(&i, &s, &a, 1_200)).next;
        assert_eq!(i.condition(), Some(Condition::Running));
        assert_eq!(i.task.as_ref().unwrap().healthy, None);
        assert!(i.task.as_ref().unwrap().started_at.is_some());
        let s = of(
            "web.instance-u.server.1",
            TaskState::TaskRunning,
            Some(true),
        );
        let i = apply_status(input(&i, &s, &a, 1_300)).next;
        assert_eq!(i.task.as_ref().unwrap().healthy, Some(true));
        // The server fails: the group goes down (the rest is being killed),
        // and once all ended the instance has failed, counted as such.
        let s = of("web.instance-u.server.1", TaskState::TaskFailed, None);
        let out = apply_status(input(&i, &s, &a, 1_400));
        assert_eq!(out.next.condition(), Some(Condition::Killing));
        assert!(out.failure.is_none());
        let s = of("web.instance-u.writer.1", TaskState::TaskKilled, None);
        let out = apply_status(input(&out.next, &s, &a, 1_500));
        assert_eq!(out.next.condition(), Some(Condition::Failed));
        assert!(out.failure.is_some(), "a failed pod instance is a failure");
    }
}
