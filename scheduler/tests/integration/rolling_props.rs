//! Property tests of the rolling-upgrade planner (`baton::reconcile::decide`)
//! over every `upgradeStrategy` corner — `minimumHealthCapacity` and
//! `maximumOverCapacity` each 0, 1 or in between — and random timing of
//! launches, starts and kills: a simulated cluster applies `decide`'s
//! actions and moves tasks along one random event at a time.
//!
//! What must hold after every decision:
//!
//! - **the cap**: tasks that may be alive (launched and not yet terminal,
//!   including the ones being drained or killed) plus instances waiting to
//!   launch never exceed `floor(n × (1 + maximumOverCapacity))` (raised to
//!   `n + 1` when both bounds equal `n`) — a task being killed keeps its
//!   slot until Mesos says it ended;
//! - **the floor**: ready instances still wanted never drop below
//!   `ceil(n × minimumHealthCapacity)`;
//! - **progress**: once events stop being random, the upgrade finishes with
//!   exactly `n` ready instances, all of the new version.

use baton::reconcile::decide::{Action, Limits, decide};
use baton::state::app::{AppDefaults, AppDefinition, PathId, Timestamp};
use baton::state::instance::{Condition, Goal, Instance, InstanceTask};
use proptest::prelude::*;

const START_MS: i64 = 1_000_000;

fn app(n: u32, min_health: f64, max_over: f64) -> AppDefinition {
    let json = serde_json::json!({
        "id": "/roll", "cmd": "x", "instances": n,
        "upgradeStrategy": {"minimumHealthCapacity": min_health, "maximumOverCapacity": max_over},
    });
    AppDefinition::from_value(&json, &PathId::root(), &AppDefaults::default())
        .expect("valid app")
        .with_version(Timestamp::from_millis(1), false)
}

fn launch(instance: &mut Instance, now: Timestamp) {
    instance.task = Some(InstanceTask::launched(
        instance.next_task_id(),
        "agent".into(),
        "host".into(),
        vec![],
        now,
    ));
    instance.incarnation += 1;
}

fn set_condition(instance: &mut Instance, condition: Condition, now: Timestamp) {
    if let Some(task) = instance.task.as_mut() {
        task.condition = condition;
        if condition == Condition::Running && task.started_at.is_none() {
            task.started_at = Some(now);
        }
    }
}

/// `(min_healthy, max_total)` as the README states them.
fn bounds(n: usize, min_health: f64, max_over: f64) -> (usize, usize) {
    let nf = n as f64;
    let min_healthy = ((nf * min_health - 1e-9).ceil().max(0.0) as usize).min(n);
    let mut max_total = ((nf * (1.0 + max_over) + 1e-9).floor() as usize).max(n);
    if min_healthy == n && max_total == n {
        max_total = n + 1;
    }
    (min_healthy, max_total)
}

/// A simulated cluster: the instances, and which tasks were asked to die.
struct Sim {
    app: AppDefinition,
    instances: Vec<Instance>,
    now: Timestamp,
    min_healthy: usize,
    max_total: usize,
}

impl Sim {
    fn new(n: u32, min_health: f64, max_over: f64) -> Sim {
        let old = app(n, min_health, max_over);
        let now = Timestamp::from_millis(START_MS);
        let mut instances = Vec::new();
        for _ in 0..n {
            let mut i = Instance::schedule(old.id.clone(), Timestamp::from_millis(1), now);
            launch(&mut i, now);
            set_condition(&mut i, Condition::Running, now);
            instances.push(i);
        }
        // The configuration changes: every running instance is now old.
        let new = old.with_version(Timestamp::from_millis(2), false);
        let (min_healthy, max_total) = bounds(n as usize, min_health, max_over);
        Sim {
            app: new,
            instances,
            now,
            min_healthy,
            max_total,
        }
    }

    fn version(&self) -> Timestamp {
        self.app.last_config_change().expect("a version")
    }

    /// Runs `decide` and applies what it says, as the driver does.
    fn decide(&mut self) -> Result<(), String> {
        let refs: Vec<&Instance> = self.instances.iter().collect();
        let actions = decide(Some(&self.app), &refs, self.now, &Limits::default());
        let mut expunged = Vec::new();
        for action in &actions {
            match *action {
                Action::Schedule(count) => {
                    for _ in 0..count {
                        self.instances.push(Instance::schedule(
                            self.app.id.clone(),
                            self.version(),
                            self.now,
                        ));
                    }
                }
                Action::Decommission(i) => self.instances[i].goal = Goal::Decommissioned,
                Action::Kill(i) => {
                    // Still alive (drained, then killed) until Mesos says
                    // it ended: a later event.
                    if let Some(task) = self.instances[i].task.as_mut() {
                        task.kill_requested_at = Some(self.now);
                        if !task.condition.is_terminal() && !task.condition.is_launching() {
                            task.condition = Condition::Killing;
                        }
                    }
                }
                Action::Expunge(i) => expunged.push(i),
                Action::Stop(i) => self.instances[i].goal = Goal::Stopped,
                Action::Resume(i) => self.instances[i].goal = Goal::Running,
                Action::ForgetReservation(i) => self.instances[i].reservation = None,
            }
        }
        expunged.sort_unstable();
        for i in expunged.into_iter().rev() {
            self.instances.remove(i);
        }
        self.check(&actions)
    }

    fn check(&self, actions: &[Action]) -> Result<(), String> {
        let alive_or_waiting = self
            .instances
            .iter()
            .filter(|i| i.is_active() || i.is_waiting())
            .count();
        if alive_or_waiting > self.max_total {
            return Err(format!(
                "{alive_or_waiting} instances alive or waiting, cap {} (after {actions:?}): {:#?}",
                self.max_total,
                self.summary()
            ));
        }
        let ready = self
            .instances
            .iter()
            .filter(|i| i.goal == Goal::Running && i.condition() == Some(Condition::Running))
            .count();
        if ready < self.min_healthy {
            return Err(format!(
                "{ready} ready, floor {} (after {actions:?}): {:#?}",
                self.min_healthy,
                self.summary()
            ));
        }
        Ok(())
    }

    fn summary(&self) -> Vec<String> {
        self.instances
            .iter()
            .map(|i| {
                format!(
                    "v{} {:?} {:?}",
                    i.app_version.as_millis(),
                    i.goal,
                    i.condition()
                )
            })
            .collect()
    }

    /// One event, picked by `choice`: a waiting instance launches, a
    /// launching task runs, or a task being killed ends.
    fn event(&mut self, choice: usize) {
        let now = self.now;
        let candidates: Vec<usize> = (0..self.instances.len())
            .filter(|&i| {
                let instance = &self.instances[i];
                instance.is_waiting()
                    || instance
                        .condition()
                        .is_some_and(|c| c.is_launching() || c == Condition::Killing)
            })
            .collect();
        if candidates.is_empty() {
            return;
        }
        let i = candidates[choice % candidates.len()];
        let instance = &mut self.instances[i];
        match instance.condition() {
            Some(Condition::Killing) => set_condition(instance, Condition::Killed, now),
            Some(Condition::Provisioned) => set_condition(instance, Condition::Staging, now),
            Some(c) if c.is_launching() => set_condition(instance, Condition::Running, now),
            _ => launch(instance, now),
        }
    }

    /// A second later, two passes: the loop looks at an app again on
    /// every change and every second, with or without news.
    fn tick_and_decide(&mut self) -> Result<(), String> {
        self.now = self.now.plus_millis(1_000);
        self.decide()?;
        self.decide()
    }

    fn done(&self) -> bool {
        self.instances.len() == self.app.instances as usize
            && self.instances.iter().all(|i| {
                i.goal == Goal::Running
                    && i.app_version == self.version()
                    && i.condition() == Some(Condition::Running)
            })
    }
}

/// `minimumHealthCapacity` and `maximumOverCapacity`: the corners 0 and 1
/// as often as values in between.
fn fraction() -> impl Strategy<Value = f64> {
    prop_oneof![Just(0.0), Just(1.0), Just(0.5), 0.0..=1.0f64]
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(512))]

    #[test]
    fn rolling_upgrades_keep_the_cap_and_the_floor_and_finish(
        n in 1u32..=6,
        min_health in fraction(),
        max_over in fraction(),
        events in proptest::collection::vec(any::<usize>(), 0..80),
    ) {
        let mut sim = Sim::new(n, min_health, max_over);
        sim.decide().map_err(TestCaseError::fail)?;
        for choice in events {
            sim.event(choice);
            sim.tick_and_decide().map_err(TestCaseError::fail)?;
        }
        // Then every pending event happens, one at a time, in order.
        for _ in 0..400 {
            if sim.done() {
                break;
            }
            sim.event(0);
            sim.tick_and_decide().map_err(TestCaseError::fail)?;
        }
        prop_assert!(sim.done(), "not finished: {:#?}", sim.summary());
    }
}

#[test]
fn a_drained_old_task_keeps_its_slot_under_maximum_over_capacity_zero() {
    // The case a real Mesos showed: 3 instances, {0.5, 0}, the last old
    // instance being drained while the new ones run.
    let mut sim = Sim::new(3, 0.5, 0.0);
    sim.decide().expect("first decision");
    for _ in 0..200 {
        if sim.done() {
            return;
        }
        // Launch and run new ones as soon as possible, but let kills land
        // only when nothing else can happen.
        let progressing = sim
            .instances
            .iter()
            .position(|i| i.is_waiting() || i.condition().is_some_and(Condition::is_launching));
        match progressing {
            Some(i) => {
                let instance = &mut sim.instances[i];
                match instance.condition() {
                    Some(c) if c.is_launching() => {
                        set_condition(instance, Condition::Running, sim.now)
                    }
                    _ => launch(instance, sim.now),
                }
            }
            None => sim.event(0),
        }
        sim.tick_and_decide().expect("cap and floor hold");
    }
    panic!("not finished: {:#?}", sim.summary());
}
