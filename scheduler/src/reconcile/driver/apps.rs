//! The per-app reconcile (decide, then apply), deployments moving on, when
//! to look at an app again, and whether Baton wants offers.

use std::collections::BTreeMap;
use std::sync::Arc;

use tracing::{Instrument, debug, info, info_span, warn};
use uuid::Uuid;

use super::commands::kill_calls;
use super::{Driver, MAX_GROUP_BYTES, RESERVATION_FREE_PATIENCE};
use crate::deploy::{self, Advance};
use crate::mesos::calls;
use crate::reconcile::decide::{self, Action, KillStep};
use crate::reconcile::effects::{Effects, StateChange};
use crate::reconcile::events::Event;
use crate::reconcile::view::{Deployment, DeploymentAction, DeploymentFailure, OfferStats};
use crate::state::app::{PathId, Timestamp};
use crate::state::instance::{Goal, Instance};

/// What undoing a pass's decisions takes ([`Driver::undo_pass`]): the
/// apps it looked at, and whether each could launch before (that is not
/// in the view; a look changes it for its own app only).
#[derive(Default)]
pub(super) struct Pass {
    apps: Vec<(PathId, bool)>,
}

impl Driver {
    /// One pass over the dirty apps, committed as one group: what it
    /// decides for all of them — instances scheduled, killed, expunged,
    /// deployments moved on — is one store write rather than one per app
    /// (after a group of app writes, every app of it is dirty at once).
    pub(super) async fn reconcile_dirty(&mut self) {
        // Nothing acts until Mesos has said SUBSCRIBED.
        if !self.view.subscribed {
            return;
        }
        self.begin_group();
        let pass = self.decide_dirty().await;
        if self.commit_group().await.is_err() {
            self.undo_pass(pass);
        }
        self.update_offer_interest();
    }

    /// The pass's decisions, applied inside the open group (not yet
    /// durable); returns what undoing them takes should the group's commit
    /// fail. Once the group holds [`MAX_GROUP_BYTES`], the apps not looked
    /// at yet stay dirty for a pass of their own, at once.
    pub(super) async fn decide_dirty(&mut self) -> Pass {
        let mut pass = Pass::default();
        if !self.view.subscribed {
            return pass;
        }
        let dirty = std::mem::take(&mut self.dirty);
        let span = info_span!("reconcile_pass", apps = dirty.len());
        async {
            let now = self.instant();
            let mut apps = dirty.into_iter();
            for id in apps.by_ref() {
                let launchable = self.launchable.contains(&id);
                let span = info_span!("app_reconcile", app = %id);
                self.reconcile_app(&id).instrument(span).await;
                pass.apps.push((id, launchable));
                if self.group_size().1 >= MAX_GROUP_BYTES {
                    break;
                }
            }
            for id in apps {
                self.wakeups.insert(id.clone(), now);
                self.dirty.insert(id);
            }
        }
        .instrument(span)
        .await;
        pass
    }

    /// After the store refused a pass's decisions (and the group went back
    /// to before them): as for any refused decision, its apps are looked
    /// at again shortly, from the state as it was.
    pub(super) fn undo_pass(&mut self, pass: Pass) {
        let retry = self.instant() + decide::REQUEUE_AFTER;
        for (id, launchable) in pass.apps {
            if launchable {
                self.launchable.insert(id.clone());
            } else {
                self.launchable.remove(&id);
            }
            self.wakeups.insert(id, retry);
        }
    }

    async fn reconcile_app(&mut self, id: &PathId) {
        if self.held(id) {
            // A later step of its deployment: untouched until its turn.
            self.launchable.remove(id);
            return;
        }
        self.view.stats.app_reconciles += 1;
        let app = self.view.apps.get(id).cloned();
        let instances: Vec<Arc<Instance>> = self.view.instances_of(id).cloned().collect();
        let refs: Vec<&Instance> = instances.iter().map(|i| &**i).collect();
        let now = self.now();
        let actions = decide::decide(app.as_deref(), &refs, now, &self.config.limits);
        let mut puts: BTreeMap<Uuid, Instance> = BTreeMap::new();
        let mut expunged = Vec::new();
        let mut drain_started = Vec::new();
        let mut effects = Effects::default();
        for action in &actions {
            match *action {
                Action::Schedule(count) => {
                    let Some(app) = &app else { continue };
                    for _ in 0..count {
                        effects.change(StateChange::Instance(Arc::new(Instance::schedule(
                            id.clone(),
                            app.config_version(),
                            now,
                        ))));
                    }
                }
                Action::Decommission(i) => {
                    let entry = puts.entry(refs[i].uuid).or_insert_with(|| refs[i].clone());
                    entry.goal = Goal::Decommissioned;
                }
                Action::Stop(i) => {
                    let entry = puts.entry(refs[i].uuid).or_insert_with(|| refs[i].clone());
                    entry.goal = Goal::Stopped;
                    // When it stopped: a scale-up resumes the last stopped
                    // first (`decide::resident`).
                    entry.scheduled_at = now;
                }
                Action::Resume(i) => {
                    let entry = puts.entry(refs[i].uuid).or_insert_with(|| refs[i].clone());
                    entry.goal = Goal::Running;
                    entry.scheduled_at = now;
                }
                Action::ForgetReservation(i) => {
                    let entry = puts.entry(refs[i].uuid).or_insert_with(|| refs[i].clone());
                    warn!(instance = %entry.instance_id(), "its reservation never showed; reserving anew");
                    entry.reservation = None;
                    // Should it show after all, it is freed as an orphan.
                    self.reservations_to_free.insert(
                        entry.instance_id(),
                        self.instant() + RESERVATION_FREE_PATIENCE,
                    );
                }
                Action::Kill(i) => {
                    // (Decommissioned by this same pass, possibly.)
                    let entry = puts.entry(refs[i].uuid).or_insert_with(|| refs[i].clone());
                    let step = decide::kill_step(app.as_deref(), entry, now, self.config.drain);
                    let Some(task) = entry.task.as_mut() else {
                        continue;
                    };
                    match step {
                        Some(KillStep::StartDrain) => {
                            task.draining_since = Some(now);
                            drain_started.push(refs[i].uuid);
                        }
                        Some(KillStep::Kill) => {
                            task.kill_requested_at = Some(now);
                            info!(task_id = %task.task_id, "killing task");
                            for call in kill_calls(task) {
                                effects.call(call);
                            }
                        }
                        Some(KillStep::Draining) | None => {}
                    }
                }
                Action::Expunge(i) => {
                    if refs[i].reservation.is_some() {
                        self.reservations_to_free.insert(
                            refs[i].instance_id(),
                            self.instant() + RESERVATION_FREE_PATIENCE,
                        );
                    }
                    expunged.push(refs[i].uuid);
                }
            }
        }
        for uuid in &expunged {
            puts.remove(uuid);
            effects.change(StateChange::InstanceGone {
                app: id.clone(),
                uuid: *uuid,
            });
        }
        let puts: BTreeMap<Uuid, Arc<Instance>> =
            puts.into_iter().map(|(u, i)| (u, Arc::new(i))).collect();
        for instance in puts.values() {
            effects.change(StateChange::Instance(instance.clone()));
        }
        // Tell followers (load balancers) at once that these stop serving.
        for uuid in &drain_started {
            if let Some(instance) = puts.get(uuid).filter(|i| i.task.is_some()) {
                effects.emit(Event::StatusUpdate {
                    instance: instance.clone(),
                    message: Some("draining before kill".into()),
                    container_task: None,
                });
            }
        }
        if let Err(e) = self.apply(effects).await {
            Self::refused("reconcile decisions; retrying shortly", &e);
            self.wakeups
                .insert(id.clone(), self.instant() + decide::REQUEUE_AFTER);
            return;
        }
        if !actions.is_empty() {
            debug!(?actions, "reconciled");
        }
        self.dirty.remove(id);
        self.advance_deployments(id).await;
        self.schedule_next_look(id, now);
    }

    pub(super) fn converged(&self, app: &PathId) -> bool {
        let instances: Vec<&Instance> = self.view.instances_of(app).map(|i| &**i).collect();
        decide::converged(self.view.apps.get(app).map(|a| &**a), &instances)
    }

    /// Moves the deployments of `id` on ([`deploy::advance`]): a step whose
    /// apps have all converged is done, the next one starts (its apps are
    /// no longer held), and after the last the deployment ends; one past
    /// its deadline says why.
    async fn advance_deployments(&mut self, id: &PathId) {
        let touched: Vec<Arc<Deployment>> = self.view.deployments_of(id).cloned().collect();
        for deployment in touched {
            let now = self.now();
            let advanced = deploy::advance(
                &deployment,
                |app| self.converged(app),
                |app| deploy::timeout_of(self.view.apps.get(app).map(|a| &**a)),
                now,
            );
            match advanced {
                Advance::Unchanged => {}
                Advance::PastDeadline { app } => {
                    let reason = self.stuck_reason(&app);
                    warn!(deployment = %deployment.id, app = %app, reason = %reason, "deployment past its deadline");
                    let mut failed = (*deployment).clone();
                    failed.failure = Some(DeploymentFailure {
                        app_id: app,
                        reason: reason.clone(),
                        at: now,
                    });
                    let failed = Arc::new(failed);
                    let mut effects = Effects::default();
                    effects
                        .change(StateChange::Deployment(failed.clone()))
                        .emit(Event::StepFailure {
                            deployment: failed.clone(),
                            step: failed.current_step,
                        })
                        .emit(Event::DeploymentFailed {
                            deployment: failed,
                            reason,
                        });
                    if let Err(e) = self.apply(effects).await {
                        Self::refused("a deployment failure", &e);
                    }
                }
                Advance::Stepped {
                    next,
                    completed,
                    finished,
                } => {
                    let next = Arc::new(next);
                    let mut effects = Effects::default();
                    let mut released = Vec::new();
                    for step in completed {
                        effects.emit(Event::StepSuccess {
                            deployment: next.clone(),
                            step,
                        });
                        if let Some(apps) = next.steps.get(step + 1) {
                            effects.emit(Event::DeploymentInfo {
                                deployment: next.clone(),
                                step: step + 1,
                            });
                            released.extend(apps.iter().map(|(a, _)| a.clone()));
                        }
                    }
                    if finished {
                        effects.change(StateChange::DeploymentGone(next.id.clone()));
                        for (app, action) in next.actions() {
                            if *action == DeploymentAction::StopApplication {
                                effects.emit(Event::AppTerminated(app.clone()));
                            }
                        }
                        effects.emit(Event::DeploymentSuccess(next.clone()));
                    } else {
                        effects.change(StateChange::Deployment(next.clone()));
                    }
                    if let Err(e) = self.apply(effects).await {
                        Self::refused("deployment progress", &e);
                        continue;
                    }
                    self.dirty.extend(released);
                    if finished {
                        info!(deployment = %next.id, "deployment finished");
                    } else {
                        info!(deployment = %next.id, step = next.current_step + 1, "deployment step started");
                    }
                }
            }
        }
    }

    /// Why `app_id` holds its deployment up, in words: the new version's
    /// last task failure, else why offers are declined, else how many of
    /// its instances are up and what one of the others' health checks say.
    fn stuck_reason(&self, app_id: &PathId) -> String {
        let app = self.view.apps.get(app_id);
        let version = app.map(|a| a.config_version());
        if let (Some(f), Some(v)) = (self.view.last_failures.get(app_id), version)
            && f.version == v
        {
            return format!(
                "task {} of the new version ended {} on {}: {}",
                f.task_id, f.state, f.host, f.message
            );
        }
        if let Some(stats) = self
            .view
            .offer_stats
            .get(app_id)
            .filter(|s| s.processed_offers > 0)
        {
            let top = stats
                .since_waiting
                .funnel()
                .into_iter()
                .filter(|step| step.declined > 0)
                .max_by_key(|step| step.declined);
            return match top {
                Some(step) => format!(
                    "instances wait for offers: {} of the last {} offers were declined for {}",
                    step.declined,
                    stats.processed_offers,
                    step.reason.as_str()
                ),
                None => "instances wait for offers".to_string(),
            };
        }
        let instances: Vec<&Instance> = self.view.instances_of(app_id).map(|i| &**i).collect();
        let ready = app.map_or(0, |a| {
            instances
                .iter()
                .filter(|i| Some(i.app_version) == version && decide::is_ready(a, i))
                .count()
        });
        // Why the others are not: the last health check failure of one of
        // them, when there is one.
        let cause = instances
            .iter()
            .filter(|i| Some(i.app_version) == version)
            .filter_map(|i| i.task.as_ref())
            .find_map(|t| {
                self.health_causes
                    .get(&t.task_id)
                    .map(|cause| format!("; health check of {} failing: {cause}", t.task_id))
            })
            .unwrap_or_default();
        format!(
            "{ready} of {} instances of the new version are running, healthy and ready{cause}",
            app.map_or(0, |a| a.instances)
        )
    }

    /// Whether an earlier step of a deployment holds `id` back.
    fn held(&self, id: &PathId) -> bool {
        self.view.deployments_of(id).any(|d| d.holds(id))
    }

    /// When `id` needs looking at again, and whether it can launch
    /// ([`decide::next_look`]).
    fn schedule_next_look(&mut self, id: &PathId, now: Timestamp) {
        let app = self.view.apps.get(id).cloned();
        let look = {
            let instances: Vec<&Instance> = self.view.instances_of(id).map(|i| &**i).collect();
            decide::next_look(
                app.as_deref(),
                &instances,
                self.view.delays.get(id),
                self.view.deployments_of(id).next().is_some(),
                now,
            )
        };
        if look.launchable {
            self.launchable.insert(id.clone());
        } else {
            self.launchable.remove(id);
        }
        if !look.waiting {
            self.view.offer_stats.remove(id);
        } else if !self.view.offer_stats.contains_key(id) {
            self.view.offer_stats.insert(
                id.clone(),
                Arc::new(OfferStats {
                    since: Some(now),
                    ..OfferStats::default()
                }),
            );
        }
        match look.requeue_after {
            Some(after) => {
                let at = self.instant() + after;
                self.wakeups.insert(id.clone(), at);
            }
            None => {
                self.wakeups.remove(id);
            }
        }
    }

    /// SUPPRESS when nothing can launch, REVIVE as soon as something can.
    pub(super) fn update_offer_interest(&mut self) {
        if !self.view.subscribed {
            return;
        }
        let now = self.instant();
        self.reservations_to_free.retain(|_, until| *until > now);
        let wants = !self.launchable.is_empty() || !self.reservations_to_free.is_empty();
        if self.wants_offers == Some(wants) {
            return;
        }
        self.wants_offers = Some(wants);
        if wants {
            // REVIVE also clears the refuse filters of earlier declines.
            info!(
                apps = self.launchable.len(),
                "instances are waiting: REVIVE"
            );
            let now = self.now();
            self.known_agents.revived(now);
            self.send(calls::revive(Vec::new()));
        } else {
            info!("nothing waits for offers: SUPPRESS");
            self.send(calls::suppress(Vec::new()));
        }
    }
}
