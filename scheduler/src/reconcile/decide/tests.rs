//! Unit tests of the per-app decisions.

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
    let scaled_down = app(1, serde_json::json!({})).with_version(Timestamp::from_millis(5), true);
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

#[test]
fn a_ready_task_no_longer_wanted_is_drained_then_killed() {
    let a = app(
        1,
        serde_json::json!({"labels": {"BATON_DRAIN_SECONDS": "3"}}),
    );
    let now = Timestamp::from_millis(NOW);
    let mut i = instance(Some(Condition::Running), 10);
    assert_eq!(
        kill_step(Some(&a), &i, now, Duration::from_secs(2)),
        Some(KillStep::Kill),
        "still wanted (a launch timeout, say): no drain"
    );
    i.goal = Goal::Decommissioned;
    assert_eq!(
        kill_step(Some(&a), &i, now, Duration::from_secs(2)),
        Some(KillStep::StartDrain)
    );
    i.task.as_mut().unwrap().draining_since = Some(Timestamp::from_millis(NOW - 2_999));
    assert_eq!(
        kill_step(Some(&a), &i, now, Duration::ZERO),
        Some(KillStep::Draining),
        "the label wins"
    );
    i.task.as_mut().unwrap().draining_since = Some(Timestamp::from_millis(NOW - 3_000));
    assert_eq!(
        kill_step(Some(&a), &i, now, Duration::ZERO),
        Some(KillStep::Kill)
    );
    // Nothing to drain: a launching task, or a deleted app's.
    let mut launching = instance(Some(Condition::Staging), 1);
    launching.goal = Goal::Decommissioned;
    assert_eq!(
        kill_step(Some(&a), &launching, now, Duration::from_secs(2)),
        Some(KillStep::Kill)
    );
    i.task.as_mut().unwrap().draining_since = None;
    assert_eq!(
        kill_step(None, &i, now, Duration::from_secs(2)),
        Some(KillStep::Kill)
    );
    assert_eq!(
        kill_step(Some(&a), &instance(None, 0), now, Duration::ZERO),
        None
    );
}

#[test]
fn one_sick_instance_at_a_time_and_only_while_capacity_allows() {
    // {1, 1}: room above instances, so the replacement starts first.
    let a = app(3, serde_json::json!({}));
    let have = [
        instance(Some(Condition::Running), 30),
        instance(Some(Condition::Running), 20),
        instance(Some(Condition::Running), 10),
    ];
    let refs: Vec<&Instance> = have.iter().collect();
    assert!(may_retire(&a, &refs, &have[0]));
    // Not while another is being replaced or launching.
    let mut replacing = have.clone();
    replacing[1].task.as_mut().unwrap().retire_for_health = Some(Timestamp::from_millis(NOW));
    let refs: Vec<&Instance> = replacing.iter().collect();
    assert!(!may_retire(&a, &refs, &replacing[0]));
    // {1, 0}: forced to one extra, still room.
    let tight = app(3, strategy(1.0, 0.0));
    let refs: Vec<&Instance> = have.iter().collect();
    assert!(may_retire(&tight, &refs, &have[0]));
    // {0.5, 0}: no room; the others must hold the floor of 2.
    let half = app(3, strategy(0.5, 0.0));
    assert!(may_retire(&half, &refs, &have[0]));
    let mut sick_too = have.clone();
    sick_too[1].task.as_mut().unwrap().condition = Condition::Failed;
    let refs: Vec<&Instance> = sick_too.iter().collect();
    assert!(
        !may_retire(&half, &refs, &sick_too[0]),
        "one healthy other is below the floor"
    );
}

#[test]
fn an_app_is_looked_at_again_while_it_moves_or_when_its_delay_ends() {
    let a = app(1, serde_json::json!({}));
    let now = Timestamp::from_millis(NOW);
    let running = [instance(Some(Condition::Running), 10)];
    let refs: Vec<&Instance> = running.iter().collect();
    let look = next_look(Some(&a), &refs, None, false, now);
    assert_eq!(
        look,
        NextLook {
            requeue_after: None,
            launchable: false,
            waiting: false
        },
        "settled"
    );
    let look = next_look(Some(&a), &refs, None, true, now);
    assert_eq!(
        look.requeue_after,
        Some(REQUEUE_AFTER),
        "a deployment holds it"
    );
    let waiting = [instance(None, 0)];
    let refs: Vec<&Instance> = waiting.iter().collect();
    let look = next_look(Some(&a), &refs, None, false, now);
    assert_eq!(
        (look.launchable, look.waiting, look.requeue_after),
        (true, true, None)
    );
    let delay = backoff::LaunchDelay {
        config_version: a.config_version(),
        delay_ms: 7_000,
        until: Timestamp::from_millis(NOW + 7_000),
        last_failure: now,
    };
    let look = next_look(Some(&a), &refs, Some(&delay), false, now);
    assert_eq!(
        (look.launchable, look.waiting, look.requeue_after),
        (false, true, Some(Duration::from_secs(7)))
    );
    let launching = [instance(Some(Condition::Staging), 1)];
    let refs: Vec<&Instance> = launching.iter().collect();
    assert_eq!(
        next_look(Some(&a), &refs, None, false, now).requeue_after,
        Some(REQUEUE_AFTER)
    );
}

/// A resident app: a persistent volume, role `db`.
fn resident_app(instances: u32) -> AppDefinition {
    app(
        instances,
        serde_json::json!({"role": "db", "container": {"type": "MESOS", "volumes": [
            {"containerPath": "data", "mode": "RW", "persistent": {"size": 10}}]}}),
    )
}

/// [`instance`] holding a reservation (confirmed or not), reserved
/// `reserved_ago_s` seconds ago.
fn resident(condition: Option<Condition>, confirmed: bool, reserved_ago_s: i64) -> Instance {
    let mut i = instance(condition, reserved_ago_s);
    i.reservation = Some(Box::new(crate::state::instance::Reservation {
        agent_id: crate::state::instance::SharedStr::new("a"),
        reserved_at: Timestamp::from_millis(NOW - reserved_ago_s * 1000),
        confirmed,
    }));
    i
}

#[test]
fn a_resident_scale_down_stops_the_surplus_and_keeps_its_reservation() {
    let a = resident_app(1);
    let have = vec![
        resident(Some(Condition::Running), true, 100),
        resident(Some(Condition::Running), true, 50),
    ];
    // The youngest goes: stopped (not decommissioned), and killed.
    assert_eq!(run(Some(&a), &have), vec![Action::Stop(1), Action::Kill(1)]);
    // Once stopped and ended, it is kept, not expunged.
    let mut stopped = have.clone();
    stopped[1].goal = Goal::Stopped;
    stopped[1].task.as_mut().unwrap().condition = Condition::Killed;
    assert_eq!(run(Some(&a), &stopped), vec![]);
    assert!(done(Some(&a), &stopped));
    // Without its app it goes for good (its reservation is then freed).
    assert!(run(None, &stopped).contains(&Action::Expunge(1)));
}

#[test]
fn a_resident_scale_up_resumes_stopped_instances_before_scheduling_new_ones() {
    let a = resident_app(3);
    let mut stopped = resident(Some(Condition::Killed), true, 50);
    stopped.goal = Goal::Stopped;
    let have = vec![resident(Some(Condition::Running), true, 100), stopped];
    assert_eq!(
        run(Some(&a), &have),
        vec![Action::Resume(1), Action::Schedule(1)]
    );
}

#[test]
fn a_resident_upgrade_kills_old_tasks_in_place_within_the_health_floor() {
    // {0.5, 0}, the resident default: of 4, two may go down at once.
    let a = resident_app(4).with_version(Timestamp::from_millis(2), false);
    let have: Vec<Instance> = (0..4)
        .map(|k| resident(Some(Condition::Running), true, 100 + k))
        .collect();
    let actions = run(Some(&a), &have);
    let kills = actions
        .iter()
        .filter(|a| matches!(a, Action::Kill(_)))
        .count();
    assert_eq!(kills, 2, "{actions:?}");
    // Nothing new is scheduled and nothing decommissioned: the killed ones
    // relaunch on their own reservations.
    assert!(
        actions.iter().all(|a| matches!(a, Action::Kill(_))),
        "{actions:?}"
    );
    // Two being killed: no more kills until they are back.
    let mut going = have.clone();
    for i in &mut going[..2] {
        i.task.as_mut().unwrap().kill_requested_at = Some(Timestamp::from_millis(NOW));
    }
    assert!(run(Some(&a), &going).is_empty());
    // One at {1, 0} still moves: one at a time.
    let strict = app(
        2,
        serde_json::json!({"role": "db", "upgradeStrategy": {"minimumHealthCapacity": 1, "maximumOverCapacity": 0},
            "container": {"type": "MESOS", "volumes": [
            {"containerPath": "data", "mode": "RW", "persistent": {"size": 10}}]}}),
    )
    .with_version(Timestamp::from_millis(2), false);
    assert_eq!(run(Some(&strict), &have[..2]).len(), 1);
    // Relaunched at the new version and running: converged.
    let mut upgraded = have.clone();
    for i in &mut upgraded {
        i.app_version = Timestamp::from_millis(2);
    }
    assert!(run(Some(&a), &upgraded).is_empty());
    assert!(done(Some(&a), &upgraded));
}

#[test]
fn a_reservation_mesos_never_showed_is_given_up_after_the_timeout() {
    let a = resident_app(1);
    let fresh = resident(Some(Condition::Dropped), false, 5);
    assert!(run(Some(&a), std::slice::from_ref(&fresh)).is_empty());
    let stale = resident(Some(Condition::Dropped), false, 30);
    assert_eq!(
        run(Some(&a), std::slice::from_ref(&stale)),
        vec![Action::ForgetReservation(0)]
    );
    // A confirmed one is waited for, however long its agent takes.
    let confirmed = resident(Some(Condition::Failed), true, 3600);
    assert!(run(Some(&a), &[confirmed]).is_empty());
}

#[test]
fn a_kill_that_did_not_land_is_asked_again_after_the_retry_timeout() {
    let a = app(1, serde_json::json!({}));
    let mut asked = instance(Some(Condition::Running), 100);
    asked.task.as_mut().unwrap().kill_requested_at = Some(Timestamp::from_millis(NOW - 2_000));
    // Just asked: left to land.
    assert!(run(Some(&a), std::slice::from_ref(&asked)).is_empty());
    // Asked past the retry timeout and still running: asked again.
    asked.task.as_mut().unwrap().kill_requested_at = Some(Timestamp::from_millis(NOW - 11_000));
    assert_eq!(run(Some(&a), &[asked]), vec![Action::Kill(0)]);
}
