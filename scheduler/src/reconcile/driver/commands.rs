//! What users ask for: app writes (as deployments), kills, launch delay
//! resets and deployment cancels. Every reply goes out after the change is
//! published: a client that reads right after its write sees it.
//!
//! App writes are group-committed: the writes already waiting when one
//! arrives are applied with it, one after another against the state the
//! earlier ones leave, and made durable — with what the pass over their
//! apps decides — by one store write; then the snapshot holding all of it
//! is published, the events go out, and each write is answered with its
//! own outcome: its deployment and version, or its error, which leaves no
//! trace. See [`Driver::write_group`].

use std::collections::{BTreeMap, BTreeSet};
use std::sync::Arc;

use tokio::sync::mpsc;
use tracing::{Instrument, info, info_span};
use uuid::Uuid;

use super::{Driver, MAX_GROUP_BYTES, MAX_GROUP_WRITES};
use crate::deploy::plan;
use crate::mesos::calls;
use crate::reconcile::effects::{Effects, StateChange};
use crate::reconcile::events::Event;
use crate::reconcile::requests::{
    AppEdit, Command, EditContext, KillOptions, KillOutcome, Reply, SchedulerError, WriteOutcome,
};
use crate::reconcile::view::{Deployment, DeploymentAction};
use crate::state::app::{AppDefinition, AppError, PathId, Timestamp};
use crate::state::instance::{Goal, Instance, InstanceTask};

/// An app write waiting for its group.
struct Write {
    edits: Vec<(PathId, AppEdit)>,
    force: bool,
    reply: Reply<WriteOutcome>,
}

/// A write of a group, to be answered once the group is committed: where
/// the answer goes, and its outcome with the index of its batch in the
/// group — or why it was refused.
type Answer = (
    Reply<WriteOutcome>,
    Result<(WriteOutcome, usize), SchedulerError>,
);

/// Whether a write taken from the queue may join a group whose writes
/// touch `touched`: not when it touches one of those apps too. Such a
/// write waits for the next group, so that it sees the earlier write as
/// sent on its own it would — published, and its deployment moved on by
/// the pass that follows (a create then an update of one app is never
/// refused as locked by the create's own deployment just for arriving
/// together).
fn may_join(touched: &BTreeSet<PathId>, edits: &[(PathId, AppEdit)]) -> bool {
    edits.iter().all(|(id, _)| !touched.contains(id))
}

/// Whether a group may take another write: under both bounds.
fn group_has_room(writes: usize, bytes: usize) -> bool {
    writes < MAX_GROUP_WRITES && bytes < MAX_GROUP_BYTES
}

impl Driver {
    /// Handles a command; an app write takes every write waiting behind it
    /// into its group. Returns a command taken from `queue` that could not
    /// join, to be handled next.
    pub(super) async fn on_command(
        &mut self,
        command: Command,
        queue: &mut mpsc::Receiver<Command>,
    ) -> Option<Command> {
        match command {
            Command::Edit {
                edits,
                force,
                reply,
            } => {
                return self
                    .write_group(
                        Write {
                            edits,
                            force,
                            reply,
                        },
                        queue,
                    )
                    .await;
            }
            Command::Kill {
                task_ids,
                options,
                reply,
            } => {
                let result = self.kill_tasks(task_ids, options).await;
                self.flush().await;
                let _ = reply.send(result);
            }
            Command::ResetDelay { id, reply } => {
                let result = self.reset_delay(&id).await;
                self.flush().await;
                let _ = reply.send(result);
            }
            Command::CancelDeployment { id, reply } => {
                let result = self.cancel_deployment(&id).await;
                self.flush().await;
                let _ = reply.send(result);
            }
        }
        None
    }

    /// Group commit of app writes: `first`, then every write already
    /// waiting in `queue` (up to [`MAX_GROUP_WRITES`] and
    /// [`MAX_GROUP_BYTES`]), each applied in order against the state the
    /// ones before leave — each with its own checks, deployment and
    /// version, a failing one changing nothing — then, with the pass over
    /// the apps they touched, made durable by one store write, published
    /// once, announced, and only then answered, each with its own outcome.
    /// When the store refuses, every write it did not commit is undone and
    /// answered with its error. Returns the command that stopped the
    /// gathering, if it could not join.
    async fn write_group(
        &mut self,
        first: Write,
        queue: &mut mpsc::Receiver<Command>,
    ) -> Option<Command> {
        let span = info_span!("write_group", writes = tracing::field::Empty);
        let group_span = span.clone();
        async move {
            let mut answers: Vec<Answer> = Vec::new();
            let mut touched: BTreeSet<PathId> = BTreeSet::new();
            let mut next = Some(first);
            let mut held = None;
            self.begin_group();
            while let Some(Write {
                edits,
                force,
                reply,
            }) = next.take()
            {
                touched.extend(edits.iter().map(|(id, _)| id.clone()));
                let apps: Vec<&str> = edits.iter().map(|(id, _)| id.as_str()).collect();
                let span = info_span!("app_write", apps = ?apps);
                let result = self.edit_apps(edits, force).instrument(span).await;
                let (writes, bytes) = self.group_size();
                // A write that succeeded applied exactly one batch: the last.
                answers.push((reply, result.map(|outcome| (outcome, writes - 1))));
                if !group_has_room(answers.len(), bytes) {
                    break;
                }
                let waiting = match queue.try_recv() {
                    Err(mpsc::error::TryRecvError::Empty) => {
                        // Requests already being handled (runnable on this
                        // runtime) get to reach the queue and join this
                        // commit rather than wait for the next; costs next
                        // to nothing when there are none.
                        tokio::task::yield_now().await;
                        queue.try_recv()
                    }
                    taken => taken,
                };
                match waiting {
                    Ok(Command::Edit {
                        edits,
                        force,
                        reply,
                    }) if may_join(&touched, &edits) => {
                        next = Some(Write {
                            edits,
                            force,
                            reply,
                        });
                    }
                    Ok(other) => held = Some(other),
                    Err(_) => {}
                }
            }
            group_span.record("writes", answers.len());
            // The pass over the apps just written joins their commit (it
            // would follow at once anyway): one durable write, not two,
            // before anyone is answered.
            let pass = self.decide_dirty().await;
            let committed = match self.commit_group().await {
                Ok(()) => None,
                Err(failed) => {
                    self.undo_pass(pass);
                    Some(failed)
                }
            };
            self.update_offer_interest();
            self.flush().await;
            for (reply, result) in answers {
                let answer = match (result, &committed) {
                    (Ok((_, batch)), Some(failed)) if batch >= failed.committed => {
                        Err(SchedulerError::Store(failed.error.again()))
                    }
                    (Ok((outcome, _)), _) => Ok(outcome),
                    (Err(e), _) => Err(e),
                };
                let _ = reply.send(answer);
            }
            held
        }
        .instrument(span)
        .await
    }

    fn check_lock(&self, id: &PathId, force: bool) -> Result<Vec<String>, SchedulerError> {
        let holding: Vec<String> = self.view.deployments_of(id).map(|d| d.id.clone()).collect();
        if !holding.is_empty() && !force {
            return Err(SchedulerError::Locked {
                deployments: holding,
            });
        }
        Ok(holding)
    }

    /// A version later than every version of `id` so far.
    fn next_version(&self, id: &PathId) -> Timestamp {
        let now = self.now();
        match self.view.apps.get(id).and_then(|a| a.version) {
            Some(v) if v >= now => v.plus_millis(1),
            _ => now,
        }
    }

    /// Applies edits of several apps as one change: every edit is checked
    /// first, then all are written in one batch under one deployment — or
    /// nothing is written.
    pub(super) async fn edit_apps(
        &mut self,
        edits: Vec<(PathId, AppEdit)>,
        force: bool,
    ) -> Result<WriteOutcome, SchedulerError> {
        struct Planned {
            id: PathId,
            created: bool,
            new: Option<AppDefinition>,
            versions: Vec<Arc<AppDefinition>>,
        }
        let mut superseded = BTreeSet::new();
        let mut seen = BTreeSet::new();
        for (id, _) in &edits {
            if !seen.insert(id.clone()) {
                return Err(AppError::invalid("/", format!("app {id} is listed twice")).into());
            }
            superseded.extend(self.check_lock(id, force)?);
        }
        let now = edits
            .iter()
            .map(|(id, _)| self.next_version(id))
            .max()
            .unwrap_or_else(|| self.now());
        let mut planned = Vec::with_capacity(edits.len());
        let mut actions = Vec::with_capacity(edits.len());
        for (id, edit) in edits {
            let current = self.view.apps.get(&id).cloned();
            let versions = self.view.versions.get(&id).cloned().unwrap_or_default();
            let new = edit(EditContext {
                current: current.as_deref(),
                versions: &versions,
                now,
            })?;
            // Every write path ends here (bodies, scaleBy, rollbacks to an
            // old version, kills with scale): one bound for all of them.
            // (Bodies are also checked as they are parsed, so that the 422
            // names the field's full path, e.g. `/apps(2)/instances`, among
            // the body's other problems.)
            if let Some(app) = &new
                && app.instances > self.config.max_instances_per_app
            {
                return Err(AppError::invalid(
                    "/instances",
                    format!(
                        "{}: {}",
                        app.id,
                        crate::state::app::too_many_instances(
                            app.instances.into(),
                            self.config.max_instances_per_app
                        )
                    ),
                )
                .into());
            }
            // A resident app's volumes hold its instances' data where they
            // are reserved: they cannot change under them (Marathon refuses
            // it too); a new app id is the way to new volumes.
            if let (Some(old), Some(app)) = (&current, &new)
                && old.is_resident()
                && crate::offers::reservation::persistent_volumes(old)
                    != crate::offers::reservation::persistent_volumes(app)
            {
                let (path, what) = match app.is_pod() {
                    true => ("/volumes", "pod"),
                    false => ("/container/volumes", "app"),
                };
                return Err(AppError::invalid(
                    path,
                    format!(
                        "{}: persistent volumes cannot be changed, added or removed once the {what} runs with them",
                        app.id
                    ),
                )
                .into());
            }
            // An app never replaces a pod, nor a pod an app, whichever
            // route wrote it (a group's apps, say).
            if let (Some(old), Some(next)) = (&current, &new)
                && old.is_pod() != next.is_pod()
            {
                let (is, route) = match old.is_pod() {
                    true => ("a pod", "/v2/pods"),
                    false => ("an app", "/v2/apps"),
                };
                return Err(AppError::invalid(
                    "/id",
                    format!("{} is {is}; write it through {route}", old.id),
                )
                .into());
            }
            // An app's persistent volumes are judged when it becomes
            // resident; once it is, they cannot change (above).
            if let Some(app) = &new
                && app.is_resident()
                && !current.as_ref().is_some_and(|old| old.is_resident())
            {
                crate::state::app::validate::persistent_volumes(app)?;
            }
            if let (Some(old), Some(next)) = (&current, &new)
                && let Some((path, message)) = old.resident_change_problem(next)
            {
                return Err(AppError::invalid(path, format!("{}: {message}", next.id)).into());
            }
            let action = match (&current, &new) {
                (None, None) => return Err(SchedulerError::UnknownApp(id)),
                (None, Some(_)) => DeploymentAction::StartApplication,
                (Some(_), None) => DeploymentAction::StopApplication,
                (Some(old), Some(new)) if old.config_version() != new.config_version() => {
                    DeploymentAction::RestartApplication
                }
                (Some(_), Some(_)) => DeploymentAction::ScaleApplication,
            };
            actions.push((id.clone(), action));
            planned.push(Planned {
                id,
                created: current.is_none(),
                new,
                versions: versions.iter().cloned().collect(),
            });
        }
        let dependencies: BTreeMap<PathId, Vec<PathId>> = planned
            .iter()
            .filter_map(|p| {
                p.new
                    .as_ref()
                    .map(|a| (p.id.clone(), a.dependencies.clone()))
            })
            .collect();
        let steps = plan::steps(&actions, |id| {
            dependencies.get(id).cloned().unwrap_or_default()
        })
        .map_err(|e| AppError::invalid("/dependencies", e.to_string()))?;
        if steps.is_empty() {
            return Err(AppError::invalid("/", "the change names no app").into());
        }
        let pods = planned
            .iter()
            .filter(|p| {
                p.new.as_ref().is_some_and(AppDefinition::is_pod)
                    || self.view.apps.get(&p.id).is_some_and(|a| a.is_pod())
            })
            .map(|p| p.id.clone())
            .collect();
        let deployment = Arc::new(Deployment {
            id: Uuid::new_v4().to_string(),
            version: now,
            steps,
            current_step: 0,
            started_at: self.now(),
            step_started_at: None,
            failure: None,
            pods,
        });
        let mut effects = Effects::default();
        for old in &superseded {
            info!(deployment = %old, "superseded by a forced change");
            effects.change(StateChange::DeploymentGone(old.clone()));
        }
        effects.change(StateChange::Deployment(deployment.clone()));
        let single = planned.len() == 1;
        let mut outcome = WriteOutcome {
            deployment_id: deployment.id.clone(),
            version: now,
            app: None,
            created: false,
        };
        for p in planned {
            let stored = p.new.map(Arc::new);
            match &stored {
                Some(app) => {
                    let mut versions = p.versions;
                    versions.push(app.clone());
                    let excess = versions
                        .len()
                        .saturating_sub(self.config.max_versions.max(1));
                    let dropped = versions
                        .drain(..excess)
                        .filter_map(|old| old.version)
                        .collect();
                    effects.change(StateChange::App {
                        app: app.clone(),
                        versions: Arc::new(versions),
                        dropped,
                    });
                }
                None => {
                    effects.change(StateChange::AppGone {
                        app: p.id.clone(),
                        versions: p.versions.iter().filter_map(|v| v.version).collect(),
                    });
                }
            }
            if single {
                outcome.version = stored.as_ref().and_then(|a| a.version).unwrap_or(now);
                outcome.app = stored;
                outcome.created = p.created;
            }
        }
        effects.emit(Event::DeploymentInfo {
            deployment: deployment.clone(),
            step: 0,
        });
        self.apply(effects).await?;
        info!(deployment = %deployment.id, steps = ?deployment.steps, version = %now, "apps written");
        Ok(outcome)
    }

    async fn kill_tasks(
        &mut self,
        task_ids: Vec<String>,
        options: KillOptions,
    ) -> Result<KillOutcome, SchedulerError> {
        let mut found: Vec<Arc<Instance>> = Vec::new();
        let mut seen = BTreeSet::new();
        for task_id in &task_ids {
            if let Some(instance) = self.view.instance_by_task(task_id)
                && seen.insert(instance.uuid)
            {
                found.push(instance.clone());
            }
        }
        let mut per_app: BTreeMap<PathId, u32> = BTreeMap::new();
        for instance in &found {
            *per_app.entry(instance.app_id.clone()).or_default() += 1;
        }
        let mut outcome = KillOutcome::default();
        if options.scale {
            let mut edits: Vec<(PathId, AppEdit)> = Vec::new();
            for (id, count) in &per_app {
                let Some(app) = self.view.apps.get(id).cloned() else {
                    continue;
                };
                let count = *count;
                edits.push((
                    id.clone(),
                    Box::new(move |ctx| {
                        let mut scaled = (*app).clone();
                        scaled.instances = scaled.instances.saturating_sub(count);
                        Ok(Some(scaled.with_version(ctx.now, true)))
                    }),
                ));
            }
            if !edits.is_empty() {
                let written = self.edit_apps(edits, options.force).await?;
                outcome.deployment = Some((written.deployment_id, written.version));
            }
        }
        let now = self.now();
        let mut effects = Effects::default();
        for instance in &found {
            let mut next = (**instance).clone();
            if options.scale || options.wipe {
                next.goal = Goal::Decommissioned;
            }
            if let Some(task) = next.task.as_mut()
                && !task.condition.is_terminal()
            {
                task.kill_requested_at = Some(now);
                info!(task_id = %task.task_id, "killing task on request");
                for call in kill_calls(task) {
                    effects.call(call);
                }
            }
            effects.change(StateChange::Instance(Arc::new(next)));
        }
        self.apply(effects).await?;
        outcome.killed = found;
        Ok(outcome)
    }

    async fn reset_delay(&mut self, id: &PathId) -> Result<(), SchedulerError> {
        if !self.view.apps.contains_key(id) {
            return Err(SchedulerError::UnknownApp(id.clone()));
        }
        let mut effects = Effects::default();
        effects.change(StateChange::DelayGone(id.clone()));
        Ok(self.apply(effects).await?)
    }

    async fn cancel_deployment(&mut self, id: &str) -> Result<(), SchedulerError> {
        let Some(deployment) = self.view.deployments.get(id).cloned() else {
            return Err(SchedulerError::NotFound(format!(
                "DeploymentPlan {id} does not exist"
            )));
        };
        let mut effects = Effects::default();
        effects.change(StateChange::DeploymentGone(id.to_string()));
        self.apply(effects).await?;
        info!(deployment = %id, "deployment cancelled");
        self.dirty.extend(deployment.affected_apps().cloned());
        Ok(())
    }
}

/// Mesos's KILLs of a task Baton manages: one, or one per container of a
/// pod instance (the executor would take the group down after any one,
/// but every container is asked, so none is left should it not).
pub(super) fn kill_calls(task: &InstanceTask) -> Vec<mesos_proto::scheduler::Call> {
    task.task_ids()
        .into_iter()
        .map(|id| {
            calls::kill(
                mesos_proto::util::task_id(id),
                Some(mesos_proto::util::agent_id(task.agent_id.as_str())),
                None,
            )
        })
        .collect()
}
