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
//! Resident apps (persistent volumes) keep their instances where their
//! volumes are (`resident`): a scale-down stops the surplus but keeps its
//! reservation (goal Stopped), a scale-up resumes stopped ones first, and
//! an upgrade kills old-version tasks within `minimumHealthCapacity` so
//! that they relaunch, at the new version, on their own reservation. A
//! reservation Mesos never confirmed is given up after
//! `--task_reservation_timeout`.
//!
//! Around that: how a kill is carried out ([`kill_step`]: healthy tasks
//! are drained first), whether a sick instance may be replaced now
//! ([`may_retire`], under the same capacity rule as upgrades), and when to
//! look at the app again and whether it can launch ([`next_look`], the
//! reconcile's "requeue after").
//!
//! Rolling upgrade: instances launched for an older config version
//! (`lastConfigChangeAt`) are *old*. Old ones are kept only while needed to
//! hold `ceil(instances × minimumHealthCapacity)` ready, or while the
//! `floor(instances × (1 + maximumOverCapacity))` cap leaves room for them;
//! the rest go, not-ready ones first. New ones are scheduled up to
//! `instances` within that cap (forced to `instances + 1` when both bounds
//! equal `instances`, as Marathon does, so the upgrade can move at all).

use std::time::Duration;

use super::backoff::{self, LaunchDelay};
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
    /// `--task_reservation_timeout`: how long a resident instance waits
    /// for Mesos to show a new reservation before reserving elsewhere.
    pub reservation_timeout: Duration,
}

impl Default for Limits {
    fn default() -> Self {
        Limits {
            task_launch_timeout: Duration::from_secs(300),
            kill_retry: Duration::from_secs(10),
            reservation_timeout: Duration::from_secs(20),
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
    /// Stop a resident instance: goal Stopped, its reservation kept.
    Stop(usize),
    /// Want a stopped resident instance running again.
    Resume(usize),
    /// Give up a reservation Mesos never showed.
    ForgetReservation(usize),
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
            Goal::Stopped if instance.reservation.is_some() && app.is_some() => {
                // Kept, with its volumes, for a later scale-up.
                if instance.is_active() && kill_due(instance, now, limits) {
                    actions.push(Action::Kill(i));
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
        Some(app) if app.is_resident() => {
            resident(app, instances, counted, now, limits, &mut actions)
        }
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
    // A kill asked for earlier (a user's, or an upgrade's) that has not
    // landed is asked again: the agent may have dropped it (its executor
    // was reconnecting), as Marathon's kill service retries.
    for &i in &kept {
        let instance = instances[i];
        if let Some(task) = &instance.task
            && (task.kill_requested_at.is_some()
                || (task.condition.is_launching()
                    && elapsed(task.launched_at, now) >= limits.task_launch_timeout))
            && kill_due(instance, now, limits)
            && !actions.contains(&Action::Kill(i))
        {
            actions.push(Action::Kill(i));
        }
    }
    actions
}

/// Scaling and upgrading a resident app (see the module docs). Returns
/// the counted instances kept.
fn resident(
    app: &AppDefinition,
    instances: &[&Instance],
    mut counted: Vec<usize>,
    now: Timestamp,
    limits: &Limits,
    actions: &mut Vec<Action>,
) -> Vec<usize> {
    let n = app.instances as usize;
    for &i in &counted {
        let instance = instances[i];
        if let Some(held) = &instance.reservation
            && !held.confirmed
            && instance.is_waiting()
            && elapsed(held.reserved_at, now) >= limits.reservation_timeout
        {
            actions.push(Action::ForgetReservation(i));
        }
    }
    if counted.len() > n {
        counted.sort_by_key(|&i| scale_down_rank(instances[i], app.kill_selection));
        for &i in &counted[..counted.len() - n] {
            actions.push(Action::Stop(i));
            if instances[i].is_active() {
                actions.push(Action::Kill(i));
            }
        }
        counted.drain(..counted.len() - n);
    } else if counted.len() < n {
        let mut stopped: Vec<usize> = (0..instances.len())
            .filter(|&i| instances[i].goal == Goal::Stopped && instances[i].reservation.is_some())
            .collect();
        // Those stopped last go first: their volumes are the freshest (a
        // stopped instance's `scheduled_at` is when it was stopped).
        stopped.sort_by_key(|&i| std::cmp::Reverse(instances[i].scheduled_at));
        stopped.truncate(n - counted.len());
        for &i in &stopped {
            actions.push(Action::Resume(i));
        }
        counted.extend(stopped);
        let waiting = counted
            .iter()
            .filter(|&&i| instances[i].is_waiting())
            .count();
        let count = to_schedule(n.saturating_sub(counted.len()), waiting);
        if count > 0 {
            actions.push(Action::Schedule(count));
        }
    }

    // Upgrade in place: an old-version task is killed and relaunched on its
    // own reservation at the new version (a waiting one simply launches at
    // the new version). Ready instances not being killed stay at least
    // `ceil(n × minimumHealthCapacity)`; when that leaves no room and
    // nothing is down, one goes anyway, as Marathon does for resident apps.
    let (min_healthy, _) = capacity(n, app);
    let going = |i: &Instance| {
        i.task
            .as_ref()
            .is_some_and(|t| t.kill_requested_at.is_some() || t.draining_since.is_some())
    };
    let ready = counted
        .iter()
        .filter(|&&i| is_ready(app, instances[i]) && !going(instances[i]))
        .count();
    let down = counted.len() - ready;
    let mut budget = ready.saturating_sub(min_healthy);
    if budget == 0 && down == 0 {
        budget = 1;
    }
    let mut old: Vec<usize> = counted
        .iter()
        .copied()
        .filter(|&i| !is_new(app, instances[i]) && instances[i].is_active())
        .collect();
    old.sort_by_key(|&i| {
        (
            is_ready(app, instances[i]),
            scale_down_rank(instances[i], app.kill_selection),
        )
    });
    for i in old {
        let instance = instances[i];
        if going(instance) {
            if kill_due(instance, now, limits) {
                actions.push(Action::Kill(i));
            }
        } else if !is_ready(app, instance) {
            actions.push(Action::Kill(i));
        } else if budget > 0 {
            budget -= 1;
            actions.push(Action::Kill(i));
        }
    }
    counted
}

/// Whether an instance is up for its app: its task runs and, when the app
/// has health checks, they have all passed, and its readiness checks too
/// (an instance whose checks have not spoken yet is not ready: a
/// deployment waits for the verdict).
pub fn is_ready(app: &AppDefinition, instance: &Instance) -> bool {
    let Some(task) = &instance.task else {
        return false;
    };
    // A pod's containers' checks count as the app's checks do.
    let checked = !app.health_checks.is_empty()
        || app
            .pod
            .as_ref()
            .is_some_and(|p| p.containers.iter().any(|c| c.health_check.is_some()));
    task.condition == Condition::Running
        && (!checked || task.healthy == Some(true))
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

/// How often an app that is still moving is looked at again.
pub const REQUEUE_AFTER: Duration = Duration::from_secs(1);

/// The app label that sets how long its tasks are drained before a kill.
pub const DRAIN_LABEL: &str = "BATON_DRAIN_SECONDS";

/// How long `app`'s tasks are drained: its label, else `default`.
pub fn drain_of(app: &AppDefinition, default: Duration) -> Duration {
    app.labels
        .get(DRAIN_LABEL)
        .and_then(|v| v.parse::<f64>().ok())
        .filter(|s| s.is_finite() && *s >= 0.0)
        .map_or(default, Duration::from_secs_f64)
}

/// How a [`Action::Kill`] is carried out now.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum KillStep {
    /// Start draining: the task is shown as TASK_KILLING while it still
    /// serves, so that clients and load balancers stop picking it first.
    StartDrain,
    /// Draining; killed once the drain is over.
    Draining,
    /// Ask Mesos to kill it now.
    Kill,
}

/// How to kill `instance` (as this pass leaves it: decommissioned, maybe)
/// at `now`: a ready task no longer wanted is drained for its app's drain
/// time (`default_drain` without the label) before it is killed; anything
/// else is killed at once. `None` for an instance without a task.
pub fn kill_step(
    app: Option<&AppDefinition>,
    instance: &Instance,
    now: Timestamp,
    default_drain: Duration,
) -> Option<KillStep> {
    let task = instance.task.as_ref()?;
    let drain = match app {
        Some(app) if instance.goal != Goal::Running && is_ready(app, instance) => {
            drain_of(app, default_drain)
        }
        _ => Duration::ZERO,
    };
    Some(match task.draining_since {
        None if !drain.is_zero() => KillStep::StartDrain,
        Some(since) if elapsed(since, now) < drain => KillStep::Draining,
        _ => KillStep::Kill,
    })
}

/// The per-app limit on health kills, so that an outage of something every
/// instance depends on does not kill them all: one instance of an app is
/// replaced at a time (none while another is launching or being replaced),
/// and only while enough others are ready — or, when the upgrade strategy
/// leaves room above `instances`, while the replacement can start before
/// the sick one is killed (decide keeps the sick one until its replacement
/// is ready).
pub fn may_retire(app: &AppDefinition, instances: &[&Instance], sick: &Instance) -> bool {
    let others: Vec<&Instance> = instances
        .iter()
        .copied()
        .filter(|i| i.uuid != sick.uuid && i.goal == Goal::Running)
        .collect();
    let replacing = others.iter().any(|i| {
        i.task
            .as_ref()
            .is_some_and(|t| t.retire_for_health.is_some() && !t.condition.is_terminal())
            || i.condition().is_none_or(|c| c.is_launching())
    });
    if replacing {
        return false;
    }
    let n = app.instances as usize;
    let (min_healthy, max_total) = capacity(n, app);
    max_total > n || others.iter().filter(|i| is_ready(app, i)).count() >= min_healthy
}

/// When to look at an app again without news, and whether it may launch.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct NextLook {
    /// Look again after this long: every [`REQUEUE_AFTER`] while anything
    /// moves (a deployment, a launch, a kill, a drain, an unreachable or
    /// retiring task), or when a launch delay ends; `None` to wait for news.
    pub requeue_after: Option<Duration>,
    /// Instances wait for offers and no launch delay holds them back.
    pub launchable: bool,
    /// Instances wait for offers (delayed or not).
    pub waiting: bool,
}

/// [`NextLook`] for `app` (or its absence) with these instances, its
/// launch delay, and whether a deployment still holds it.
pub fn next_look(
    app: Option<&AppDefinition>,
    instances: &[&Instance],
    delay: Option<&LaunchDelay>,
    deploying: bool,
    now: Timestamp,
) -> NextLook {
    let mut moving = deploying;
    let mut waiting = false;
    for instance in instances {
        match instance.condition() {
            _ if instance.goal != Goal::Running => moving |= instance.is_active(),
            Some(c) if c.is_launching() || c == Condition::Killing => moving = true,
            Some(Condition::Unreachable) => moving = true,
            Some(c)
                if !c.is_terminal()
                    && instance
                        .task
                        .as_ref()
                        .is_some_and(|t| t.retire_for_health.is_some()) =>
            {
                moving = true;
            }
            _ => {}
        }
        // A kill asked for is watched until it lands (to ask again).
        moving |= instance
            .task
            .as_ref()
            .is_some_and(|t| t.kill_requested_at.is_some() && !t.condition.is_terminal());
        waiting |= instance.is_waiting();
        // A new reservation is watched until Mesos shows it.
        moving |=
            instance.is_waiting() && instance.reservation.as_ref().is_some_and(|r| !r.confirmed);
    }
    let delay_left = app.map_or(0, |a| backoff::time_left_ms(delay, a, now));
    let mut requeue_after = moving.then_some(REQUEUE_AFTER);
    if waiting && delay_left > 0 {
        let left = Duration::from_millis(delay_left);
        requeue_after = Some(requeue_after.map_or(left, |r| r.min(left)));
    }
    NextLook {
        requeue_after,
        launchable: waiting && app.is_some() && delay_left == 0,
        waiting,
    }
}

#[cfg(test)]
mod tests;
