//! What to do about one app, as a pure function of its definition, its
//! instances and the time (kube-rs's level-triggered reconcile: the same
//! inputs always give the same decisions, whatever event led here).
//!
//! - too few instances wanted running → schedule new ones, at most
//!   [`MAX_WAITING_INSTANCES`] waiting for offers at a time;
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
//!
//! Rolling upgrade: instances launched for an older config version
//! (`lastConfigChangeAt`) are *old*. Old ones are kept only while needed to
//! hold `ceil(instances × minimumHealthCapacity)` ready, or while the
//! `floor(instances × (1 + maximumOverCapacity))` cap leaves room for them;
//! the rest go, not-ready ones first. New ones are scheduled up to
//! `instances` within that cap (forced to `instances + 1` when both bounds
//! equal `instances`, as Marathon does, so the upgrade can move at all).

use std::time::Duration;

use crate::state::app::{AppDefinition, KillSelection, Timestamp, UnreachableStrategy};
use crate::state::instance::{Condition, Goal, Instance};

/// The most instances of one app that wait for offers at a time. Instances
/// are created (and stored) as launches can use them, never all at once: an
/// app asking for a million instances costs memory and store space for the
/// ones launched plus this many, and the next ones are created as these
/// launch.
pub const MAX_WAITING_INSTANCES: usize = 1024;

/// How many of `missing` instances to create when `waiting` already wait:
/// topped up to [`MAX_WAITING_INSTANCES`] at most.
fn to_schedule(missing: usize, waiting: usize) -> usize {
    missing.min(MAX_WAITING_INSTANCES.saturating_sub(waiting))
}

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
    let strategy = app.map_or(UnreachableStrategy::DEFAULT, |a| a.unreachable_strategy);

    // Which instances count towards `instances`.
    let mut counted: Vec<usize> = Vec::new();
    for (i, instance) in instances.iter().enumerate() {
        let unreachable_for = unreachable_for(instance, now);
        if is_counted(strategy, instance, unreachable_for) {
            counted.push(i);
            continue;
        }
        match instance.goal {
            Goal::Running => {
                // Replaced: no longer counts. Forget it once past expunge.
                if is_expunged(strategy, unreachable_for) {
                    actions.push(Action::Expunge(i));
                }
            }
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

    // Unwanted instances whose task may still run (being drained or
    // killed) keep their slot under the cap until Mesos says they ended:
    // with `maximumOverCapacity: 0` a replacement waits for them. An
    // unreachable one does not: it may never answer, and availability
    // comes first.
    let lingering = instances
        .iter()
        .filter(|i| {
            i.goal != Goal::Running
                && i.is_active()
                && i.condition() != Some(Condition::Unreachable)
        })
        .count();
    let kept = match app {
        Some(app) => {
            let (new, old): (Vec<usize>, Vec<usize>) =
                counted.iter().partition(|&&i| is_new(app, instances[i]));
            if old.is_empty() {
                let n = app.instances as usize;
                let (_, max_total) = capacity(n, app);
                scale(
                    instances,
                    new,
                    n,
                    max_total.saturating_sub(lingering),
                    app.kill_selection,
                    &mut actions,
                )
            } else {
                roll(app, instances, new, old, lingering, &mut actions)
            }
        }
        None => scale(
            instances,
            counted,
            0,
            0,
            KillSelection::YoungestFirst,
            &mut actions,
        ),
    };

    // Launches that never got going are killed; their relaunch follows.
    for &i in &kept {
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

/// Whether an instance is up for its app: its task runs and, when the app
/// has health checks, they have all passed, and its readiness checks too
/// (an instance whose checks have not spoken yet is not ready: a
/// deployment waits for the verdict).
pub fn is_ready(app: &AppDefinition, instance: &Instance) -> bool {
    let Some(task) = &instance.task else {
        return false;
    };
    task.condition == Condition::Running
        && (app.health_checks.is_empty() || task.healthy == Some(true))
        && (app.readiness_checks.is_empty() || task.ready == Some(true))
}

/// Whether a deployment touching this app is done: with no app, no
/// instances are left at all; with an app, no unwanted instance still has
/// a task, and exactly `instances` counted instances exist, all of the
/// current config version and ready.
///
/// There is no clock here, so an unreachable instance is taken as already
/// replaced whenever its `unreachableStrategy` allows replacing at all.
/// That never makes a not-ready app look done: an unreachable instance is
/// not ready, and one still counting would be the first surplus `decide`
/// removes.
pub fn converged(app: Option<&AppDefinition>, instances: &[&Instance]) -> bool {
    let Some(app) = app else {
        return instances.is_empty();
    };
    let mut ready = 0;
    for instance in instances {
        let unreachable_for =
            (instance.condition() == Some(Condition::Unreachable)).then_some(Duration::MAX);
        if is_counted(app.unreachable_strategy, instance, unreachable_for) {
            if !is_new(app, instance) || !is_ready(app, instance) {
                return false;
            }
            ready += 1;
        } else if instance.goal != Goal::Running && instance.is_active() {
            return false;
        }
    }
    ready == app.instances as usize
}

/// Counts towards `instances`: wanted running, and not an unreachable one
/// that its `unreachableStrategy` has given up on (`unreachable_for` is how
/// long it has been unreachable, `None` if it is not).
fn is_counted(
    strategy: UnreachableStrategy,
    instance: &Instance,
    unreachable_for: Option<Duration>,
) -> bool {
    instance.goal == Goal::Running && !is_inactive(strategy, unreachable_for)
}

/// Launched for the app's current config version (`lastConfigChangeAt`,
/// else `version`; an app without either has nothing to upgrade from).
fn is_new(app: &AppDefinition, instance: &Instance) -> bool {
    let retiring = instance
        .task
        .as_ref()
        .is_some_and(|t| t.retire_for_health.is_some() && !t.condition.is_terminal());
    !retiring
        && app
            .last_config_change()
            .is_none_or(|version| instance.app_version == version)
}

/// Plain scaling to `wanted`: schedule the missing (as long as the counted
/// instances stay within `room`), decommission the surplus in scale-down
/// order. Returns the counted instances kept.
fn scale(
    instances: &[&Instance],
    mut counted: Vec<usize>,
    wanted: usize,
    room: usize,
    kill_selection: KillSelection,
    actions: &mut Vec<Action>,
) -> Vec<usize> {
    if counted.len() < wanted {
        let waiting = counted
            .iter()
            .filter(|&&i| instances[i].is_waiting())
            .count();
        let missing = (wanted - counted.len()).min(room.saturating_sub(counted.len()));
        let count = to_schedule(missing, waiting);
        if count > 0 {
            actions.push(Action::Schedule(count));
        }
    } else if counted.len() > wanted {
        counted.sort_by_key(|&i| scale_down_rank(instances[i], kill_selection));
        decommission(instances, &counted[..counted.len() - wanted], actions);
        counted.truncate(wanted);
    }
    counted
}

/// One step of a rolling upgrade with some `old` instances left (see the
/// module docs). Returns the counted instances kept, old and new.
fn roll(
    app: &AppDefinition,
    instances: &[&Instance],
    mut new: Vec<usize>,
    mut old: Vec<usize>,
    lingering: usize,
    actions: &mut Vec<Action>,
) -> Vec<usize> {
    let n = app.instances as usize;
    let (min_healthy, max_total) = capacity(n, app);
    let new_ready = new.iter().filter(|&&i| is_ready(app, instances[i])).count();

    // Old ones stay while they hold up the health floor, or while the cap
    // leaves room for them next to the new ones still to come up.
    let health_floor = min_healthy.saturating_sub(new_ready);
    let room = max_total - n;
    let old_target = health_floor
        .max(room.min(n.saturating_sub(new_ready)))
        .min(old.len());
    // Not-ready ones first (waiting, then unreachable and launching), then
    // ready ones in `killSelection` order.
    old.sort_by_key(|&i| {
        let instance = instances[i];
        (
            is_ready(app, instance),
            scale_down_rank(instance, app.kill_selection),
        )
    });
    let victims = &old[..old.len() - old_target];
    // Victims still running keep taking room until their kill lands.
    let mut lingering = lingering
        + victims
            .iter()
            .filter(|&&i| instances[i].is_active())
            .count();
    decommission(instances, victims, actions);
    old.drain(..old.len() - old_target);

    // More new ones than wanted (scaled down mid-upgrade): the surplus goes
    // in scale-down order.
    if new.len() > n {
        new.sort_by_key(|&i| scale_down_rank(instances[i], app.kill_selection));
        let surplus = &new[..new.len() - n];
        lingering += surplus
            .iter()
            .filter(|&&i| instances[i].is_active())
            .count();
        decommission(instances, surplus, actions);
        new.truncate(n);
    }

    let waiting = new.iter().filter(|&&i| instances[i].is_waiting()).count();
    let schedule = to_schedule(
        n.saturating_sub(new.len())
            .min(max_total.saturating_sub(old.len() + new.len() + lingering)),
        waiting,
    );
    if schedule > 0 {
        actions.push(Action::Schedule(schedule));
    }
    old.extend(new);
    old
}

/// `(min_healthy, max_total)` for `n` instances under the app's
/// `upgradeStrategy`: `ceil(n × minimumHealthCapacity)` and
/// `floor(n × (1 + maximumOverCapacity))`, the latter raised to `n + 1`
/// when both equal `n` (else no instance could ever be replaced).
fn capacity(n: usize, app: &AppDefinition) -> (usize, usize) {
    // Products like 10 × 0.7 land a hair off the integer; don't round
    // across it.
    const EPSILON: f64 = 1e-9;
    let strategy = app.upgrade_strategy;
    let nf = n as f64;
    let min_healthy = ((nf * strategy.minimum_health_capacity - EPSILON)
        .ceil()
        .max(0.0) as usize)
        .min(n);
    let mut max_total =
        ((nf * (1.0 + strategy.maximum_over_capacity) + EPSILON).floor() as usize).max(n);
    if n > 0 && min_healthy == n && max_total == n {
        max_total = n + 1;
    }
    (min_healthy, max_total)
}

/// Decommissions these instances, killing those with a task that may run.
fn decommission(instances: &[&Instance], victims: &[usize], actions: &mut Vec<Action>) {
    for &i in victims {
        actions.push(Action::Decommission(i));
        if instances[i].is_active() {
            actions.push(Action::Kill(i));
        }
    }
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
        let at = Timestamp::from_millis(NOW - launched_ago_s * 1000);
        i.task = condition.map(|condition| InstanceTask {
            condition,
            started_at: (condition == Condition::Running).then_some(at),
            unreachable_since: (condition == Condition::Unreachable).then_some(at),
            ..InstanceTask::launched(i.next_task_id(), "a".into(), "h".into(), vec![], at)
        });
        i
    }

    /// [`instance`] launched for config version `version_ms`.
    fn instance_of(version_ms: i64, condition: Option<Condition>, launched_ago_s: i64) -> Instance {
        let mut i = instance(condition, launched_ago_s);
        i.app_version = Timestamp::from_millis(version_ms);
        i
    }

    /// [`app`] whose config then changed at 2 ms: instances of version 1
    /// (what [`instance`] builds) are old, those of version 2 new.
    fn changed_app(instances: u32, extra: serde_json::Value) -> AppDefinition {
        app(instances, extra).with_version(Timestamp::from_millis(2), false)
    }

    fn strategy(min_health: f64, max_over: f64) -> serde_json::Value {
        serde_json::json!({"upgradeStrategy": {
            "minimumHealthCapacity": min_health, "maximumOverCapacity": max_over}})
    }

    fn with_health(mut i: Instance, healthy: Option<bool>) -> Instance {
        i.task.as_mut().unwrap().healthy = healthy;
        i
    }

    fn done(app: Option<&AppDefinition>, instances: &[Instance]) -> bool {
        let refs: Vec<&Instance> = instances.iter().collect();
        converged(app, &refs)
    }

    fn run(app: Option<&AppDefinition>, instances: &[Instance]) -> Vec<Action> {
        let refs: Vec<&Instance> = instances.iter().collect();
        decide(app, &refs, Timestamp::from_millis(NOW), &Limits::default())
    }

    #[test]
    fn a_huge_app_creates_its_instances_a_batch_at_a_time() {
        let mut a = app(1, serde_json::json!({}));
        a.instances = 1_000_000;
        assert_eq!(
            run(Some(&a), &[]),
            vec![Action::Schedule(MAX_WAITING_INSTANCES)]
        );
        // Ten run, a thousand wait (a failed one among them): topped up.
        let mut have: Vec<Instance> = (0..10)
            .map(|_| instance(Some(Condition::Running), 10))
            .collect();
        have.push(instance(Some(Condition::Failed), 10));
        have.extend((1..1000).map(|_| instance(None, 0)));
        assert_eq!(
            run(Some(&a), &have),
            vec![Action::Schedule(MAX_WAITING_INSTANCES - 1000)]
        );
        have.extend((0..MAX_WAITING_INSTANCES - 1000).map(|_| instance(None, 0)));
        assert_eq!(run(Some(&a), &have), vec![], "the batch is full");
        // A rolling upgrade to a million new instances: the same bound.
        let mut changed = changed_app(1, strategy(0.0, 1.0));
        changed.instances = 1_000_000;
        let old: Vec<Instance> = (0..10)
            .map(|_| instance(Some(Condition::Running), 10))
            .collect();
        let actions = run(Some(&changed), &old);
        assert!(
            actions.contains(&Action::Schedule(MAX_WAITING_INSTANCES)),
            "{actions:?}"
        );
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

    #[test]
    fn rolling_upgrade_starts_new_before_killing_old_at_full_health_capacity() {
        // min 3 healthy, max 3 total: forced to 4 so that one new can start.
        let a = changed_app(3, strategy(1.0, 0.0));
        let mut have = vec![
            instance(Some(Condition::Running), 30),
            instance(Some(Condition::Running), 20),
            instance(Some(Condition::Running), 10),
        ];
        assert_eq!(run(Some(&a), &have), vec![Action::Schedule(1)]);

        have.push(instance_of(2, None, 0));
        assert_eq!(run(Some(&a), &have), vec![], "new one waits for an offer");
        have[3] = instance_of(2, Some(Condition::Staging), 5);
        assert_eq!(run(Some(&a), &have), vec![], "new one not ready yet");

        // Ready: the youngest old one goes; the next new one starts only
        // once its kill landed (it runs until then: 4 is the cap).
        have[3] = instance_of(2, Some(Condition::Running), 5);
        assert_eq!(
            run(Some(&a), &have),
            vec![Action::Decommission(2), Action::Kill(2)]
        );
        let mut going = have[2].clone();
        going.goal = Goal::Decommissioned;
        going.task.as_mut().unwrap().kill_requested_at = Some(Timestamp::from_millis(NOW));
        have[2] = going;
        assert_eq!(run(Some(&a), &have), vec![], "still running: no room yet");
        have[2].task.as_mut().unwrap().condition = Condition::Killed;
        assert_eq!(
            run(Some(&a), &have),
            vec![Action::Expunge(2), Action::Schedule(1)]
        );
    }

    #[test]
    fn rolling_upgrade_kills_down_to_minimum_health_first_without_over_capacity() {
        let a = changed_app(4, strategy(0.5, 0.0));
        let have = [
            instance(Some(Condition::Running), 40),
            instance(Some(Condition::Running), 30),
            instance(Some(Condition::Running), 20),
            instance(Some(Condition::Running), 10),
        ];
        // Two go; their replacements start once they are gone (the cap is 4).
        assert_eq!(
            run(Some(&a), &have),
            vec![
                Action::Decommission(3),
                Action::Kill(3),
                Action::Decommission(2),
                Action::Kill(2),
            ]
        );
        let mut have = have.to_vec();
        for i in [2, 3] {
            have[i].goal = Goal::Decommissioned;
            have[i].task.as_mut().unwrap().condition = Condition::Killed;
        }
        assert_eq!(
            run(Some(&a), &have),
            vec![Action::Expunge(2), Action::Expunge(3), Action::Schedule(2)]
        );
    }

    #[test]
    fn rolling_upgrade_with_full_over_capacity_starts_all_new_at_once() {
        let a = changed_app(4, strategy(1.0, 1.0));
        let mut have: Vec<Instance> = (0..4)
            .map(|k| instance(Some(Condition::Running), 10 * (k + 1)))
            .collect();
        assert_eq!(run(Some(&a), &have), vec![Action::Schedule(4)]);

        have.extend((0..4).map(|_| instance_of(2, Some(Condition::Starting), 5)));
        assert_eq!(
            run(Some(&a), &have),
            vec![],
            "no kill until new ones are ready"
        );

        for i in &mut have[4..] {
            *i = instance_of(2, Some(Condition::Running), 5);
        }
        let actions = run(Some(&a), &have);
        assert_eq!(actions.len(), 8, "{actions:?}");
        for old in 0..4 {
            assert!(actions.contains(&Action::Decommission(old)), "{actions:?}");
            assert!(actions.contains(&Action::Kill(old)), "{actions:?}");
        }
    }

    #[test]
    fn old_instances_that_are_not_ready_are_replaced_first() {
        // min 1 healthy, no over capacity: three of the four old ones go.
        let mut extra = strategy(0.25, 0.0);
        extra["healthChecks"] = serde_json::json!([{"protocol": "MESOS_HTTP", "path": "/h"}]);
        let a = changed_app(4, extra);
        let have = [
            with_health(instance(Some(Condition::Running), 50), Some(false)),
            with_health(instance(Some(Condition::Running), 40), Some(true)),
            instance(Some(Condition::Staging), 30),
            instance(Some(Condition::Failed), 20),
        ];
        assert!(!is_ready(&a, &have[0]), "unhealthy is not ready");
        assert!(is_ready(&a, &have[1]));
        assert_eq!(
            run(Some(&a), &have),
            vec![
                // Waiting (nothing to kill), then launching, then unhealthy;
                // only one replacement fits beside the two still running.
                Action::Decommission(3),
                Action::Decommission(2),
                Action::Kill(2),
                Action::Decommission(0),
                Action::Kill(0),
                Action::Schedule(1),
            ]
        );
    }

    #[test]
    fn ready_needs_a_healthy_verdict_when_the_app_has_checks() {
        let checked = app(
            1,
            serde_json::json!({"healthChecks": [{"protocol": "MESOS_HTTP", "path": "/h"}]}),
        );
        let unchecked = app(1, serde_json::json!({}));
        let unknown = with_health(instance(Some(Condition::Running), 10), None);
        let unhealthy = with_health(instance(Some(Condition::Running), 10), Some(false));
        let healthy = with_health(instance(Some(Condition::Running), 10), Some(true));
        assert!(!is_ready(&checked, &unknown), "checks have not spoken yet");
        assert!(!is_ready(&checked, &unhealthy));
        assert!(is_ready(&checked, &healthy));
        assert!(is_ready(&unchecked, &unhealthy));
        assert!(!is_ready(
            &unchecked,
            &instance(Some(Condition::Starting), 10)
        ));
        assert!(!is_ready(&unchecked, &instance(None, 10)));
    }

    #[test]
    fn rolling_upgrade_kills_launches_stuck_past_the_timeout_old_or_new() {
        let a = changed_app(2, strategy(1.0, 1.0));
        let have = [
            instance(Some(Condition::Staging), 301),
            instance(Some(Condition::Running), 400),
            instance_of(2, Some(Condition::Staging), 301),
            instance_of(2, Some(Condition::Starting), 10),
        ];
        assert_eq!(run(Some(&a), &have), vec![Action::Kill(0), Action::Kill(2)]);
    }

    #[test]
    fn scale_down_mid_upgrade_drops_surplus_new_and_old() {
        // 3 new (1 ready) and 2 old, now wanted 2 with min 2 / max 3.
        let a = changed_app(2, strategy(1.0, 0.5));
        let have = [
            instance(Some(Condition::Running), 100),
            instance(Some(Condition::Running), 90),
            instance_of(2, Some(Condition::Running), 30),
            instance_of(2, Some(Condition::Starting), 20),
            instance_of(2, None, 10),
        ];
        assert_eq!(
            run(Some(&a), &have),
            vec![
                Action::Decommission(1),
                Action::Kill(1),
                Action::Decommission(4),
            ]
        );
    }

    #[test]
    fn scale_only_change_does_not_restart() {
        // Scaled at 5 ms; the config last changed at 1 ms, which is what the
        // running instances were launched for.
        let a = app(3, serde_json::json!({})).with_version(Timestamp::from_millis(5), true);
        assert_eq!(a.version, Some(Timestamp::from_millis(5)));
        let have = [
            instance(Some(Condition::Running), 20),
            instance(Some(Condition::Running), 10),
        ];
        assert_eq!(run(Some(&a), &have), vec![Action::Schedule(1)]);
        let scaled_down =
            app(1, serde_json::json!({})).with_version(Timestamp::from_millis(5), true);
        assert_eq!(
            run(Some(&scaled_down), &have),
            vec![Action::Decommission(1), Action::Kill(1)]
        );
    }

    #[test]
    fn capacity_rounds_like_marathon() {
        let cap = |n: u32, min: f64, max: f64| capacity(n as usize, &app(n, strategy(min, max)));
        assert_eq!(cap(4, 0.5, 0.0), (2, 4));
        assert_eq!(cap(3, 0.5, 0.5), (2, 4));
        assert_eq!(cap(10, 0.7, 0.1), (7, 11));
        assert_eq!(cap(3, 1.0, 0.0), (3, 4), "forced one over capacity");
        assert_eq!(cap(0, 1.0, 0.0), (0, 0));
        assert_eq!(cap(1, 0.0, 0.0), (0, 1));
    }

    #[test]
    fn converged_requires_target_count_ready_and_no_old() {
        let a = changed_app(2, serde_json::json!({}));
        let ready = || instance_of(2, Some(Condition::Running), 10);
        assert!(done(Some(&a), &[ready(), ready()]));
        assert!(!done(Some(&a), &[ready()]), "too few");
        assert!(!done(Some(&a), &[ready(), ready(), ready()]), "too many");
        assert!(
            !done(
                Some(&a),
                &[ready(), instance_of(2, Some(Condition::Starting), 1)]
            ),
            "not ready"
        );
        assert!(
            !done(
                Some(&a),
                &[ready(), ready(), instance(Some(Condition::Running), 10)]
            ),
            "an old one left"
        );
        let mut leaving = instance(Some(Condition::Killing), 10);
        leaving.goal = Goal::Decommissioned;
        assert!(
            !done(Some(&a), &[ready(), ready(), leaving.clone()]),
            "still stopping"
        );
        leaving.task.as_mut().unwrap().condition = Condition::Killed;
        assert!(done(Some(&a), &[ready(), ready(), leaving]), "stopped");
        // Replaced unreachable ones do not hold it up; kept ones do.
        let lost = instance_of(2, Some(Condition::Unreachable), 10);
        assert!(done(Some(&a), &[ready(), ready(), lost.clone()]));
        let disabled = changed_app(2, serde_json::json!({"unreachableStrategy": "disabled"}));
        assert!(!done(Some(&disabled), &[ready(), lost]));
    }

    #[test]
    fn converged_for_deleted_app_requires_no_instances() {
        assert!(done(None, &[]));
        let mut gone = instance(Some(Condition::Killed), 10);
        gone.goal = Goal::Decommissioned;
        assert!(!done(None, &[gone]), "not yet expunged");
    }
}
