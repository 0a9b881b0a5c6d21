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
        let kill = self.apply_health(&mut next, &result);
        self.store_health_change(&instance, next, kill).await;
    }

    /// Records a result in its check's state and the task's overall verdict
    /// (`healthy`); returns whether the task is due to be replaced.
    pub(super) fn apply_health(&mut self, instance: &mut Instance, result: &HealthResult) -> bool {
        let Some(app) = self.definition_for(instance) else {
            return false;
        };
        let Some(check) = app.health_checks.get(result.check_index) else {
            return false;
        };
        let instance_id = instance.instance_id();
        let Some(task) = instance.task.as_mut() else {
            return false;
        };
        let started_at = task.started_at.unwrap_or(task.launched_at);
        if !result.alive {
            let cause = result.cause.clone().unwrap_or_else(|| "failed".into());
            self.health_causes.insert(result.task_id.clone(), cause);
        }
        let verdict = self
            .check_states
            .entry((result.task_id.clone(), result.check_index))
            .or_default()
            .record(result, check, started_at);
        // All of the task's checks together: healthy once every one passed.
        let states: Vec<&CheckState> = (0..app.health_checks.len())
            .filter_map(|i| self.check_states.get(&(result.task_id.clone(), i)))
            .collect();
        let all_spoke = states.len() == app.health_checks.len();
        let alive = health::instance_alive(states.iter().copied());
        task.healthy = match alive {
            Some(true) if !all_spoke => None,
            other => other,
        };
        let shown: Vec<CheckResults> = (0..app.health_checks.len())
            .filter_map(|i| {
                self.check_states
                    .get(&(result.task_id.clone(), i))
                    .map(|state| CheckResults {
                        instance_id: instance_id.clone(),
                        task_id: result.task_id.clone(),
                        state: state.clone(),
                    })
            })
            .collect();
        self.view
            .health
            .insert(result.task_id.clone(), Arc::new(shown));
        // Mesos-level checks: 0 means "kill after the first failure".
        let kill_after = match check.max_consecutive_failures {
            0 if check.protocol.is_mesos() => 1,
            n => n,
        };
        let due = kill_after > 0
            && !verdict.ignored
            && verdict.alive == Some(false)
            && self
                .check_states
                .get(&(result.task_id.clone(), result.check_index))
                .is_some_and(|s| s.consecutive_failures >= kill_after);
        due && task.retire_for_health.is_none()
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
