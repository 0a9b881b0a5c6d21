//! Health and readiness as the loop sees them: which targets the checker
//! probes (level-triggered), what each result adds up to per task, and
//! when a sick task is retired — the replacement first, when capacity
//! allows, one instance of an app at a time ([`decide::may_retire`]).

use std::collections::BTreeMap;
use std::sync::Arc;

use tracing::{error, info, warn};

use super::Driver;
use crate::health::{self, CheckState, HealthResult, ReadinessResult, ReadinessTarget, Target};
use crate::reconcile::decide;
use crate::reconcile::effects::{Effects, StateChange};
use crate::reconcile::events::Event;
use crate::reconcile::view::CheckResults;
use crate::state::app::{AppDefinition, PathId};
use crate::state::instance::{Goal, Instance};

impl Driver {
    /// The definition an instance runs: its own version's, else the app's.
    pub(super) fn definition_for(&self, instance: &Instance) -> Option<Arc<AppDefinition>> {
        self.view
            .app_version(&instance.app_id, instance.app_version)
            .or_else(|| self.view.apps.get(&instance.app_id))
            .cloned()
    }

    /// Hands the checker the Marathon-level checks of every running task,
    /// and the readiness checks of every running task of an app's current
    /// configuration that has not been ready yet, when some app's may have
    /// changed (level-triggered).
    pub(super) fn refresh_health_targets(&mut self) {
        if self.health_dirty.is_empty() {
            return;
        }
        let (mut health_changed, mut readiness_changed) = (false, false);
        for id in std::mem::take(&mut self.health_dirty) {
            let targets: Vec<Target> = self
                .view
                .instances_of(&id)
                .filter(|i| i.goal == Goal::Running)
                .filter_map(|i| {
                    self.definition_for(i)
                        .map(|app| health::targets_for(&app, i))
                })
                .flatten()
                .collect();
            health_changed |= replace_targets(&mut self.targets, &id, targets);
            let readiness: Vec<ReadinessTarget> = match self.view.apps.get(&id) {
                Some(app) if !app.readiness_checks.is_empty() => self
                    .view
                    .instances_of(&id)
                    .filter(|i| i.goal == Goal::Running && i.app_version == app.config_version())
                    .filter(|i| i.task.as_ref().is_some_and(|t| t.ready != Some(true)))
                    .flat_map(|i| health::readiness_targets_for(app, i))
                    .collect(),
                _ => Vec::new(),
            };
            readiness_changed |= replace_targets(&mut self.readiness_targets, &id, readiness);
        }
        if health_changed {
            self.checker
                .set_targets(self.targets.values().flatten().cloned().collect());
        }
        if readiness_changed {
            self.checker.set_readiness_targets(
                self.readiness_targets.values().flatten().cloned().collect(),
            );
        }
    }

    /// A readiness check's result: the task is ready once every readiness
    /// check of its app answered ready (and stays so: Marathon's checks end
    /// with the first ready answer).
    pub(super) async fn on_readiness_result(&mut self, result: ReadinessResult) {
        let Some(instance) = self.view.instance_by_task(&result.task_id).cloned() else {
            return;
        };
        let Some(app) = self.view.apps.get(&instance.app_id).cloned() else {
            return;
        };
        let task_id = result.task_id.clone();
        self.readiness
            .insert((task_id.clone(), result.check_index), result);
        let results: Vec<&ReadinessResult> = (0..app.readiness_checks.len())
            .filter_map(|i| self.readiness.get(&(task_id.clone(), i)))
            .collect();
        let ready = results.len() == app.readiness_checks.len() && results.iter().all(|r| r.ready);
        let shown: Vec<ReadinessResult> = self
            .view
            .instances_of(&app.id)
            .filter_map(|i| i.task.as_ref())
            .flat_map(|t| {
                (0..app.readiness_checks.len())
                    .filter_map(|c| self.readiness.get(&(t.task_id.clone(), c)).cloned())
                    .collect::<Vec<_>>()
            })
            .collect();
        self.view.readiness.insert(app.id.clone(), Arc::new(shown));
        let mut next = (*instance).clone();
        let Some(task) = next.task.as_mut() else {
            return;
        };
        if task.ready == Some(ready) {
            return;
        }
        task.ready = Some(ready);
        let mut effects = Effects::default();
        effects.change(StateChange::Instance(Arc::new(next)));
        if let Err(e) = self.apply(effects).await {
            error!(error = %e, "cannot persist readiness");
            return;
        }
        if ready {
            info!(%task_id, "ready");
        }
    }

    /// A Marathon-level check's result.
    pub(super) async fn on_health_result(&mut self, result: HealthResult) {
        let Some(instance) = self.view.instance_by_task(&result.task_id).cloned() else {
            return; // a task we stopped tracking
        };
        if !self.targets.get(&instance.app_id).is_some_and(|t| {
            t.iter()
                .any(|t| t.key() == (result.task_id.as_str(), result.check_index))
        }) {
            return;
        }
        let mut next = (*instance).clone();
        // Counted even when nothing else changes (only timestamps moved):
        // a check's results are kept in memory, not stored.
        let Some((kept, kill)) = self.assess_health(&mut next, &result) else {
            return;
        };
        self.keep_health(kept);
        self.store_health_change(&instance, next, kill).await;
    }

    /// What `result` makes of the task's checks, without keeping it yet:
    /// sets the task's overall verdict (`healthy`) in `instance`; returns
    /// the check state to keep ([`Driver::keep_health`]) and whether the
    /// task is due to be replaced. `None` if the result is for no check of
    /// the task's app.
    pub(super) fn assess_health(
        &self,
        instance: &mut Instance,
        result: &HealthResult,
    ) -> Option<(KeptHealth, bool)> {
        let app = self.definition_for(instance)?;
        let check = app.health_checks.get(result.check_index)?;
        let instance_id = instance.instance_id();
        let task = instance.task.as_mut()?;
        let started_at = task.started_at.unwrap_or(task.launched_at);
        let key = |i: usize| (result.task_id.clone(), i);
        let mut state = self
            .check_states
            .get(&key(result.check_index))
            .cloned()
            .unwrap_or_default();
        let verdict = state.record(result, check, started_at);
        // All of the task's checks together, this one as it is now.
        let states: Vec<&CheckState> = (0..app.health_checks.len())
            .filter_map(|i| {
                if i == result.check_index {
                    Some(&state)
                } else {
                    self.check_states.get(&key(i))
                }
            })
            .collect();
        let all_spoke = states.len() == app.health_checks.len();
        let alive = health::instance_alive(states.iter().copied());
        task.healthy = match alive {
            Some(true) if !all_spoke => None,
            other => other,
        };
        let shown: Vec<CheckResults> = states
            .iter()
            .map(|state| CheckResults {
                instance_id: instance_id.clone(),
                task_id: result.task_id.clone(),
                state: (*state).clone(),
            })
            .collect();
        // Mesos-level checks: 0 means "kill after the first failure".
        let kill_after = match check.max_consecutive_failures {
            0 if check.protocol.is_mesos() => 1,
            n => n,
        };
        let due = kill_after > 0
            && !verdict.ignored
            && verdict.alive == Some(false)
            && state.consecutive_failures >= kill_after;
        let kept = KeptHealth {
            task_id: result.task_id.clone(),
            check_index: result.check_index,
            state,
            cause: (!result.alive).then(|| result.cause.clone().unwrap_or_else(|| "failed".into())),
            shown,
        };
        Some((kept, due && task.retire_for_health.is_none()))
    }

    /// Keeps what [`Driver::assess_health`] made of a result: the check's
    /// state, the failure's cause, and the results the API shows.
    pub(super) fn keep_health(&mut self, kept: KeptHealth) {
        let KeptHealth {
            task_id,
            check_index,
            state,
            cause,
            shown,
        } = kept;
        if let Some(cause) = cause {
            self.health_causes.insert(task_id.clone(), cause);
        }
        self.check_states
            .insert((task_id.clone(), check_index), state);
        self.view.health.insert(task_id, Arc::new(shown));
    }

    /// Persists an instance whose health changed, tells the bus, and
    /// retires it when due and allowed.
    async fn store_health_change(&mut self, before: &Instance, mut next: Instance, kill: bool) {
        let was = before.task.as_ref().and_then(|t| t.healthy);
        let now_healthy = next.task.as_ref().and_then(|t| t.healthy);
        let task_id = next
            .task
            .as_ref()
            .map(|t| t.task_id.clone())
            .unwrap_or_default();
        let retire = kill && self.may_retire(&next);
        if retire && let Some(task) = next.task.as_mut() {
            task.retire_for_health = Some(self.config.clock.now());
        }
        if was == now_healthy && !retire {
            // Only timestamps moved; the view's results are already fresh.
            return;
        }
        let next = Arc::new(next);
        let mut effects = Effects::default();
        effects.change(StateChange::Instance(next.clone()));
        if was != now_healthy
            && let Some(alive) = now_healthy
        {
            info!(%task_id, alive, "health changed");
            effects.emit(Event::HealthChanged {
                instance: next.clone(),
                task_id,
                alive,
            });
        }
        if retire {
            self.announce_retirement(&next, &mut effects);
        }
        if let Err(e) = self.apply(effects).await {
            error!(error = %e, "cannot persist a health change");
        }
    }

    /// [`decide::may_retire`] for `sick`, among the instances of its app.
    pub(super) fn may_retire(&self, sick: &Instance) -> bool {
        let Some(app) = self.view.apps.get(&sick.app_id) else {
            return false;
        };
        let instances: Vec<&Instance> =
            self.view.instances_of(&sick.app_id).map(|i| &**i).collect();
        decide::may_retire(app, &instances, sick)
    }

    /// Says that `instance` is being replaced for failing its checks.
    pub(super) fn announce_retirement(&self, instance: &Arc<Instance>, effects: &mut Effects) {
        let task_id = instance
            .task
            .as_ref()
            .map(|t| t.task_id.as_str())
            .unwrap_or_default();
        warn!(%task_id, "failing its health checks: replaced (the replacement first, when capacity allows)");
        if instance.task.is_some() {
            effects.emit(Event::UnhealthyKill {
                instance: instance.clone(),
                reason: "FailedHealthChecks",
            });
        }
    }

    /// Forgets the health of a task that ended.
    pub(super) fn forget_health(&mut self, task_id: &str) {
        self.check_states.retain(|(t, _), _| t != task_id);
        self.readiness.retain(|(t, _), _| t != task_id);
        self.health_causes.remove(task_id);
        self.view.health.remove(task_id);
    }
}

/// A health result's effect on the driver's check bookkeeping, kept once
/// the decision it is part of holds ([`Driver::keep_health`]).
pub(super) struct KeptHealth {
    task_id: String,
    check_index: usize,
    state: CheckState,
    /// Why it failed, if it did.
    cause: Option<String>,
    /// The task's results as the API shows them.
    shown: Vec<CheckResults>,
}

/// Replaces `id`'s entry of a target table; whether anything changed.
fn replace_targets<T: PartialEq>(
    table: &mut BTreeMap<PathId, Vec<T>>,
    id: &PathId,
    targets: Vec<T>,
) -> bool {
    if table.get(id).map_or(&[][..], Vec::as_slice) == targets.as_slice() {
        return false;
    }
    if targets.is_empty() {
        table.remove(id);
    } else {
        table.insert(id.clone(), targets);
    }
    true
}
