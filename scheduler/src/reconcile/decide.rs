//! What to do about one app, as a pure function of its definition, its
//! instances and the time (kube-rs's level-triggered reconcile: the same
//! inputs always give the same decisions, whatever event led here).
//!
//! - too few instances wanted running → schedule new ones;
//! - too many → decommission the surplus, cheapest first: waiting ones,
//!   then unreachable, launching, and finally running ones in
//!   `killSelection` order;
//! - a task that ended while its instance should run → relaunch it (the
//!   launch queue applies the backoff);
//! - a task stuck before RUNNING past `--task_launch_timeout` → kill it
//!   (it is relaunched when the kill lands);
//! - an unreachable task past `inactiveAfterSeconds` no longer counts, so a
//!   replacement is scheduled; past `expungeAfterSeconds` it is forgotten
//!   (and killed should it come back, as an unknown task);
//! - a decommissioned instance is killed, and forgotten once its task ended;
//! - an app that no longer exists: all of the above with zero instances.

use std::time::Duration;

use crate::state::app::{AppDefinition, KillSelection, Timestamp, UnreachableStrategy};
use crate::state::instance::{Condition, Goal, Instance};

/// Knobs that are not part of the app.
#[derive(Debug, Clone, Copy)]
pub struct Limits {
    /// `--task_launch_timeout`: longest a task may take to reach RUNNING.
    pub task_launch_timeout: Duration,
    /// How long to wait for a kill to land before asking again.
    pub kill_retry: Duration,
}

impl Default for Limits {
    fn default() -> Self {
        Limits {
            task_launch_timeout: Duration::from_secs(300),
            kill_retry: Duration::from_secs(30),
        }
    }
}

/// One decision. Instances are named by index into the slice passed in.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Action {
    /// Create this many new instances, waiting for offers.
    Schedule(usize),
    /// Stop wanting this instance: set its goal to Decommissioned.
    Decommission(usize),
    /// Ask Mesos to kill this instance's task.
    Kill(usize),
    /// Forget this instance for good.
    Expunge(usize),
}

/// Decides what to do about `app` (or its absence) given all its instances.
pub fn decide(
    app: Option<&AppDefinition>,
    instances: &[&Instance],
    now: Timestamp,
    limits: &Limits,
) -> Vec<Action> {
    let mut actions = Vec::new();
    let wanted = app.map_or(0, |a| a.instances as usize);
    let strategy = app.map_or(UnreachableStrategy::DEFAULT, |a| a.unreachable_strategy);

    // Which instances count towards `instances`.
    let mut counted: Vec<usize> = Vec::new();
    for (i, instance) in instances.iter().enumerate() {
        let unreachable_for = unreachable_for(instance, now);
        match instance.goal {
            Goal::Running if is_inactive(strategy, unreachable_for) => {
                // Replaced: no longer counts. Forget it once past expunge.
                if is_expunged(strategy, unreachable_for) {
                    actions.push(Action::Expunge(i));
                }
            }
            Goal::Running => counted.push(i),
            Goal::Stopped | Goal::Decommissioned => {
                if !instance.is_active() {
                    actions.push(Action::Expunge(i));
                } else if is_expunged(strategy, unreachable_for) {
                    // An unreachable task we no longer want: forget it; if it
                    // returns it is an unknown task and gets killed.
                    actions.push(Action::Expunge(i));
                } else if kill_due(instance, now, limits) {
                    actions.push(Action::Kill(i));
                }
            }
        }
    }

    if counted.len() < wanted {
        actions.push(Action::Schedule(wanted - counted.len()));
    } else if counted.len() > wanted {
        let kill_selection = app.map_or(KillSelection::YoungestFirst, |a| a.kill_selection);
        counted.sort_by_key(|&i| scale_down_rank(instances[i], kill_selection));
        for &i in &counted[..counted.len() - wanted] {
            actions.push(Action::Decommission(i));
            if instances[i].is_active() {
                actions.push(Action::Kill(i));
            }
        }
        counted.truncate(wanted);
    }

    // Launches that never got going are killed; their relaunch follows.
    for &i in &counted {
        let instance = instances[i];
        if let Some(task) = &instance.task
            && task.condition.is_launching()
            && elapsed(task.launched_at, now) >= limits.task_launch_timeout
            && kill_due(instance, now, limits)
        {
            actions.push(Action::Kill(i));
        }
    }
    actions
}

fn elapsed(since: Timestamp, now: Timestamp) -> Duration {
    Duration::from_millis(u64::try_from(now.as_millis() - since.as_millis()).unwrap_or(0))
}

fn unreachable_for(instance: &Instance, now: Timestamp) -> Option<Duration> {
    let task = instance.task.as_ref()?;
    (task.condition == Condition::Unreachable)
        .then(|| elapsed(task.unreachable_since.unwrap_or(task.launched_at), now))
}

fn is_inactive(strategy: UnreachableStrategy, unreachable_for: Option<Duration>) -> bool {
    match (strategy, unreachable_for) {
        (
            UnreachableStrategy::Enabled {
                inactive_after_seconds,
                ..
            },
            Some(d),
        ) => d >= Duration::from_secs(inactive_after_seconds),
        _ => false,
    }
}

fn is_expunged(strategy: UnreachableStrategy, unreachable_for: Option<Duration>) -> bool {
    match (strategy, unreachable_for) {
        (
            UnreachableStrategy::Enabled {
                expunge_after_seconds,
                ..
            },
            Some(d),
        ) => d >= Duration::from_secs(expunge_after_seconds),
        _ => false,
    }
}

/// A kill is due if none was asked for, or the last ask is old (lost kills
/// are retried, as Marathon's kill service does).
fn kill_due(instance: &Instance, now: Timestamp, limits: &Limits) -> bool {
    let Some(task) = &instance.task else {
        return false;
    };
    if task.condition.is_terminal() {
        return false;
    }
    task.kill_requested_at
        .is_none_or(|at| elapsed(at, now) >= limits.kill_retry)
}

/// Scale-down order: cheapest to lose first. Waiting instances (nothing to
/// kill), then unreachable, launching, running; ties by `killSelection`.
fn scale_down_rank(instance: &Instance, selection: KillSelection) -> (u8, i64) {
    let class = match instance.condition() {
        None => 0,
        Some(c) if c.is_terminal() => 0,
        Some(Condition::Unreachable) => 1,
        Some(c) if c.is_launching() => 2,
        Some(_) => 3,
    };
    let started = instance
        .task
        .as_ref()
        .map_or(instance.scheduled_at, |t| {
            t.started_at.unwrap_or(t.launched_at)
        })
        .as_millis();
    let age_key = match selection {
        KillSelection::YoungestFirst => -started,
        KillSelection::OldestFirst => started,
    };
    (class, age_key)
}

#[cfg(test)]
mod tests {
    use std::collections::BTreeMap;

    use super::*;
    use crate::state::app::{AppDefaults, PathId};
    use crate::state::instance::InstanceTask;

    const NOW: i64 = 1_000_000_000;

    fn app(instances: u32, extra: serde_json::Value) -> AppDefinition {
        let mut json = serde_json::json!({"id": "/web", "cmd": "x", "instances": instances});
        if let (Some(o), Some(e)) = (json.as_object_mut(), extra.as_object()) {
            o.extend(e.clone());
        }
        AppDefinition::from_value(&json, &PathId::root(), &AppDefaults::default())
            .unwrap()
            .with_version(Timestamp::from_millis(1), false)
    }

    fn instance(condition: Option<Condition>, launched_ago_s: i64) -> Instance {
        let mut i = Instance::schedule(
            PathId::parse("/web", &PathId::root()).unwrap(),
            Timestamp::from_millis(1),
            Timestamp::from_millis(NOW - launched_ago_s * 1000),
        );
        i.task = condition.map(|condition| InstanceTask {
            task_id: i.next_task_id(),
            agent_id: "a".into(),
            hostname: "h".into(),
            fields: BTreeMap::new(),
            host_ports: vec![],
            condition,
            last_status: None,
            launched_at: Timestamp::from_millis(NOW - launched_ago_s * 1000),
            started_at: (condition == Condition::Running)
                .then(|| Timestamp::from_millis(NOW - launched_ago_s * 1000)),
            unreachable_since: (condition == Condition::Unreachable)
                .then(|| Timestamp::from_millis(NOW - launched_ago_s * 1000)),
            kill_requested_at: None,
            recent_update_uuids: vec![],
        });
        i
    }

    fn run(app: Option<&AppDefinition>, instances: &[Instance]) -> Vec<Action> {
        let refs: Vec<&Instance> = instances.iter().collect();
        decide(app, &refs, Timestamp::from_millis(NOW), &Limits::default())
    }

    #[test]
    fn too_few_schedules_the_difference() {
        let a = app(3, serde_json::json!({}));
        assert_eq!(run(Some(&a), &[]), vec![Action::Schedule(3)]);
        let have = [instance(Some(Condition::Running), 10)];
        assert_eq!(run(Some(&a), &have), vec![Action::Schedule(2)]);
    }

    #[test]
    fn level_triggered_no_action_when_desired_equals_actual() {
        let a = app(2, serde_json::json!({}));
        let have = [
            instance(Some(Condition::Running), 10),
            instance(Some(Condition::Failed), 10),
        ];
        // The failed one still counts: it is relaunched by the launch queue.
        assert_eq!(run(Some(&a), &have), vec![]);
    }

    #[test]
    fn scale_down_picks_waiting_then_unreachable_then_youngest() {
        // Unreachable tasks count for 5 minutes here, so they are candidates.
        let a = app(
            1,
            serde_json::json!({"unreachableStrategy": {"inactiveAfterSeconds": 300, "expungeAfterSeconds": 600}}),
        );
        let have = [
            instance(Some(Condition::Running), 100),
            instance(Some(Condition::Running), 10),
            instance(None, 5),
            instance(Some(Condition::Unreachable), 0),
        ];
        let actions = run(Some(&a), &have);
        // Keep the oldest running one (index 0).
        assert_eq!(
            actions,
            vec![
                Action::Decommission(2),
                Action::Decommission(3),
                Action::Kill(3),
                Action::Decommission(1),
                Action::Kill(1),
            ]
        );
    }

    #[test]
    fn oldest_first_kill_selection_is_honoured() {
        let a = app(1, serde_json::json!({"killSelection": "OLDEST_FIRST"}));
        let have = [
            instance(Some(Condition::Running), 100),
            instance(Some(Condition::Running), 10),
        ];
        assert_eq!(
            run(Some(&a), &have),
            vec![Action::Decommission(0), Action::Kill(0)]
        );
    }

    #[test]
    fn a_deleted_app_decommissions_everything_and_expunges_the_ended() {
        let mut gone = instance(Some(Condition::Killed), 10);
        gone.goal = Goal::Decommissioned;
        let have = [instance(Some(Condition::Running), 10), gone];
        assert_eq!(
            run(None, &have),
            vec![Action::Expunge(1), Action::Decommission(0), Action::Kill(0)]
        );
    }

    #[test]
    fn decommissioned_kills_are_retried_but_not_every_pass() {
        let mut i = instance(Some(Condition::Running), 10);
        i.goal = Goal::Decommissioned;
        i.task.as_mut().unwrap().kill_requested_at = Some(Timestamp::from_millis(NOW - 1_000));
        assert_eq!(
            run(None, std::slice::from_ref(&i)),
            vec![],
            "asked a second ago"
        );
        i.task.as_mut().unwrap().kill_requested_at = Some(Timestamp::from_millis(NOW - 31_000));
        assert_eq!(
            run(None, &[i]),
            vec![Action::Kill(0)],
            "asked 31 s ago: retry"
        );
    }

    #[test]
    fn unreachable_with_zero_strategy_is_replaced_and_expunged_at_once() {
        let a = app(1, serde_json::json!({}));
        let have = [instance(Some(Condition::Unreachable), 0)];
        assert_eq!(
            run(Some(&a), &have),
            vec![Action::Expunge(0), Action::Schedule(1)]
        );
    }

    #[test]
    fn unreachable_within_inactive_after_still_counts() {
        let a = app(
            1,
            serde_json::json!({"unreachableStrategy": {"inactiveAfterSeconds": 60, "expungeAfterSeconds": 120}}),
        );
        assert_eq!(
            run(Some(&a), &[instance(Some(Condition::Unreachable), 30)]),
            vec![]
        );
        assert_eq!(
            run(Some(&a), &[instance(Some(Condition::Unreachable), 90)]),
            vec![Action::Schedule(1)]
        );
        assert_eq!(
            run(Some(&a), &[instance(Some(Condition::Unreachable), 150)]),
            vec![Action::Expunge(0), Action::Schedule(1)]
        );
        let disabled = app(1, serde_json::json!({"unreachableStrategy": "disabled"}));
        assert_eq!(
            run(
                Some(&disabled),
                &[instance(Some(Condition::Unreachable), 100_000)]
            ),
            vec![]
        );
    }

    #[test]
    fn tasks_stuck_before_running_are_killed_after_the_launch_timeout() {
        let a = app(2, serde_json::json!({}));
        let have = [
            instance(Some(Condition::Staging), 301),
            instance(Some(Condition::Starting), 10),
        ];
        assert_eq!(run(Some(&a), &have), vec![Action::Kill(0)]);
    }
}
