//! An offer cycle: the demands of every app that may launch, placed on
//! the offers (pure, [`crate::offers::place`]); the cycle's launches
//! written ahead of its ACCEPTs, in one write; what was not used declined;
//! the offer funnel per app for `/v2/queue`. Resident instances relaunch
//! on the resources reserved for them, found by label, ahead of placement;
//! a first launch of one reserves and creates its volumes in the same
//! ACCEPT; reservations no instance holds are given back
//! ([`crate::offers::reservation`]).

use std::sync::Arc;

use mesos_proto::v1;
use tracing::{error, info};

use super::Driver;
use crate::mesos::calls;
use crate::offers::constraints::offer_fields;
use crate::offers::executor::with_baton_executor;
use crate::offers::placement::{Demand, place};
use crate::offers::reservation::{self, Owner};
use crate::offers::resources::Allocation;
use crate::offers::task_group::build_pod_launch;
use crate::offers::task_info::build_app_task_info;
use crate::reconcile::effects::{Effects, StateChange};
use crate::reconcile::view::OfferStats;
use crate::state::app::PathId;
use crate::state::instance::{Condition, Goal, Instance, InstanceTask, Reservation};

impl Driver {
    pub(super) async fn on_offers(&mut self, offers: Vec<v1::Offer>) {
        self.view.stats.offers_received += offers.len() as u64;
        let now = self.now();
        for offer in &offers {
            self.known_agents.offered(offer, now);
        }
        let known_values = self.known_agents.values(now);
        let framework_id = self.view.framework_id.clone().unwrap_or_default();
        // Per offer, the operations its ACCEPT carries before the LAUNCH.
        let mut operations: Vec<Vec<v1::offer::Operation>> = vec![Vec::new(); offers.len()];
        self.free_orphaned_reservations(&offers, &framework_id, &mut operations);
        // Per offer, the resident relaunches on their own reservations.
        let mut relaunches: Vec<Vec<(Arc<Instance>, Allocation)>> = vec![Vec::new(); offers.len()];
        // The demands: every app with instances that may launch now.
        let mut demands = Vec::new();
        let mut waiting: Vec<Vec<Arc<Instance>>> = Vec::new();
        // Per demand, its app's persistent volumes.
        let mut volumes_of: Vec<Vec<reservation::VolumeRequest>> = Vec::new();
        for id in self.launchable.clone() {
            let Some(app) = self.view.apps.get(&id).cloned() else {
                continue;
            };
            let volumes = reservation::persistent_volumes(&app);
            let mut instances: Vec<Arc<Instance>> = Vec::new();
            for instance in self.view.instances_of(&id).filter(|i| i.is_waiting()) {
                let Some(held) = &instance.reservation else {
                    instances.push(instance.clone());
                    continue;
                };
                // A resident instance relaunches where its volumes are, or
                // waits for that agent to offer them.
                let instance_id = instance.instance_id();
                let found = offers.iter().enumerate().find_map(|(i, offer)| {
                    (offer.agent_id.value == held.agent_id.as_str())
                        .then(|| {
                            reservation::reserved_for(offer, &framework_id, &instance_id, &volumes)
                        })
                        .flatten()
                        .map(|resources| (i, resources))
                });
                if let Some((offer_index, resources)) = found {
                    let ports = relaunch_ports(instance, &resources);
                    relaunches[offer_index]
                        .push((instance.clone(), Allocation { resources, ports }));
                }
            }
            // Relaunches first: an instance keeps its identity when it can.
            instances.sort_by_key(|i| (i.incarnation == 0, i.scheduled_at));
            if instances.is_empty() {
                continue;
            }
            // Where its instances run. An unreachable one does not hold its
            // group or host: it is being replaced, and availability first.
            let placed = self
                .view
                .instances_of(&id)
                .filter(|i| i.goal == Goal::Running && i.is_active())
                .filter(|i| i.condition() != Some(Condition::Unreachable))
                .filter_map(|i| i.task.as_ref().map(|t| t.fields.as_ref().clone()))
                .collect();
            let mut demand = match Demand::for_app(&app, instances.len() as u32, placed) {
                Ok(d) => d,
                Err(e) => {
                    error!(app = %id, error = %e, "stored app has an invalid constraint");
                    continue;
                }
            };
            if let Some(executor) = self.config.executor.baton_for(&app) {
                demand.resources.cpus += executor.cpus;
                demand.resources.mem += executor.mem;
                demand.resources.disk += executor.disk;
            }
            // A pod's executor share is the pod's own.
            if let Some(pod) = &app.pod {
                demand.resources.cpus += pod.executor_resources.cpus;
                demand.resources.mem += pod.executor_resources.mem;
                demand.resources.disk += pod.executor_resources.disk;
            }
            // A first launch of a resident instance also takes its volumes'
            // disk, to reserve.
            demand.resources.disk += reservation::volumes_disk(&volumes);
            demands.push(demand);
            waiting.push(instances);
            volumes_of.push(volumes);
        }
        let plan = place(&offers, &demands, &known_values, &self.config.placement);

        // Offer statistics for /v2/queue.
        for (demand, outcome) in demands.iter().zip(&plan.demands) {
            let Ok(id) = PathId::parse(&demand.app_id, &PathId::root()) else {
                continue;
            };
            let mut stats = self
                .view
                .offer_stats
                .get(&id)
                .map(|s| (**s).clone())
                .unwrap_or_else(|| OfferStats {
                    since: Some(now),
                    ..OfferStats::default()
                });
            let r = &outcome.rejections;
            stats.processed_offers += u64::from(r.processed_offers);
            stats.unused_offers += u64::from(r.unused_offers());
            if r.unused_offers() > 0 {
                stats.last_unused_offer_at = Some(now);
            }
            if r.used_offers > 0 {
                stats.last_used_offer_at = Some(now);
            }
            stats.since_waiting.absorb(r);
            stats.last_cycle = r.clone();
            self.view.offer_stats.insert(id, Arc::new(stats));
        }

        // Launches, an ACCEPT per offer.
        let mut next_waiting: Vec<usize> = vec![0; waiting.len()];
        let mut unused: Vec<v1::OfferId> = Vec::new();
        let mut launching = Effects::default();
        // Offer, agent and task count of each ACCEPT.
        let mut accepted: Vec<(v1::OfferId, String, usize)> = Vec::new();
        let principal = self.config.session.framework_info.principal.clone();
        for (offer_index, placements) in plan.offers.iter().enumerate() {
            let offer = &offers[offer_index];
            let mut ops = std::mem::take(&mut operations[offer_index]);
            let relaunching = std::mem::take(&mut relaunches[offer_index]);
            if placements.is_empty() && relaunching.is_empty() && ops.is_empty() {
                unused.push(offer.id.clone());
                continue;
            }
            let fields = crate::state::instance::shared_fields(offer_fields(offer));
            let mut launches = Vec::new();
            let mut launched = Vec::new();
            // Resident relaunches: on their reservations, as they are.
            for (instance, allocation) in relaunching {
                let Some(app) = self.view.apps.get(&instance.app_id).cloned() else {
                    continue;
                };
                let mut next = (*instance).clone();
                if let Some(held) = next.reservation.as_mut() {
                    held.confirmed = true;
                }
                if let Some((launch, task)) =
                    self.task_for(&app, &mut next, offer, &allocation, &fields, now)
                {
                    next.task = Some(task);
                    launches.push(launch);
                    launched.push(next);
                }
            }
            for placement in placements {
                let d = placement.demand;
                let Some(instance) = waiting[d].get(next_waiting[d]) else {
                    continue;
                };
                next_waiting[d] += 1;
                let Some(app) = self.view.apps.get(&instance.app_id).cloned() else {
                    continue;
                };
                let mut next = (**instance).clone();
                let mut allocation = placement.allocation.clone();
                // Sent only with the launch they are for: a reservation no
                // instance holds would be freed as an orphan next cycle.
                let mut reserving = Vec::new();
                if app.is_resident() {
                    // First launch of a resident instance: reserve what it
                    // takes and create its volumes, in this same ACCEPT.
                    let volumes = &volumes_of[placement.demand];
                    let instance_id = next.instance_id();
                    let owner = Owner {
                        framework_id: &framework_id,
                        role: &app.role,
                        principal: principal.as_deref(),
                        instance_id: &instance_id,
                    };
                    match reservation::reserve_and_create(&allocation, volumes, &owner) {
                        Ok(reserved) => {
                            reserving = reserved.operations;
                            allocation.resources = reserved.task_resources;
                        }
                        Err(e) => {
                            error!(instance = %instance_id, error = %e, "cannot reserve");
                            continue;
                        }
                    }
                    next.reservation = Some(Box::new(Reservation {
                        agent_id: crate::state::instance::SharedStr::new(&offer.agent_id.value),
                        reserved_at: now,
                        confirmed: false,
                    }));
                }
                if let Some((launch, task)) =
                    self.task_for(&app, &mut next, offer, &allocation, &fields, now)
                {
                    ops.extend(reserving);
                    next.task = Some(task);
                    launches.push(launch);
                    launched.push(next);
                }
            }
            if launches.is_empty() && ops.is_empty() {
                unused.push(offer.id.clone());
                continue;
            }
            accepted.push((offer.id.clone(), offer.hostname.clone(), launches.len()));
            for instance in launched {
                launching.change(StateChange::Instance(Arc::new(instance)));
            }
            // Tasks in one LAUNCH; each pod instance in a LAUNCH_GROUP.
            let mut tasks = Vec::new();
            for launch in launches {
                match launch {
                    Launch::Task(info) => tasks.push(*info),
                    Launch::Group(executor, group) => {
                        ops.push(calls::launch_group(*executor, group))
                    }
                }
            }
            if !tasks.is_empty() {
                ops.push(calls::launch(tasks));
            }
            launching.call(calls::accept(
                vec![offer.id.clone()],
                ops,
                self.config.refuse_seconds_while_waiting,
            ));
        }
        // Write-ahead: the launches are on disk before Mesos hears of them,
        // so a crash cannot leave a task we do not know about.
        if !accepted.is_empty() {
            if let Err(e) = self.apply(launching).await {
                error!(error = %e, "cannot persist launches; declining the offers");
                unused.extend(accepted.drain(..).map(|(offer, _, _)| offer));
            }
            for (_, agent, count) in &accepted {
                info!(%agent, tasks = count, "launching");
                self.view.stats.offers_accepted += 1;
                self.view.stats.tasks_launched += *count as u64;
            }
        }
        if !unused.is_empty() {
            let still_waiting = plan
                .demands
                .iter()
                .zip(&demands)
                .any(|(o, d)| o.placed < d.count);
            let refuse = if still_waiting {
                self.config.refuse_seconds_while_waiting
            } else {
                self.config.refuse_seconds_idle
            };
            self.view.stats.offers_declined += unused.len() as u64;
            self.send(calls::decline(unused, refuse));
        }
    }
    /// The TaskInfo of `next`'s next incarnation on `allocation`, and the
    /// task to remember; `next` gets its new incarnation and version.
    /// `None` when the executor's share does not fit (logged).
    fn task_for(
        &self,
        app: &crate::state::app::AppDefinition,
        next: &mut Instance,
        offer: &v1::Offer,
        allocation: &Allocation,
        fields: &Arc<std::collections::BTreeMap<String, String>>,
        now: crate::state::app::Timestamp,
    ) -> Option<(Launch, InstanceTask)> {
        if let Some(pod) = &app.pod {
            let framework_id = self.view.framework_id.clone().unwrap_or_default();
            let instance_id = next.instance_id();
            let launch = match build_pod_launch(
                pod,
                app.config_version(),
                &instance_id,
                next.incarnation + 1,
                &framework_id,
                offer,
                allocation,
                self.config.pod_executor(),
            ) {
                Ok(launch) => launch,
                Err(e) => {
                    error!(instance = %instance_id, error = %e, "cannot build the pod's task group");
                    return None;
                }
            };
            next.incarnation += 1;
            next.app_version = app.config_version();
            let task = InstanceTask {
                fields: fields.clone(),
                containers: Some(Box::new(launch.containers)),
                ..InstanceTask::launched(
                    launch.tasks.first()?.task_id.value.clone(),
                    offer.agent_id.value.clone(),
                    offer.hostname.clone(),
                    allocation.ports.clone(),
                    now,
                )
            };
            return Some((Launch::Group(Box::new(launch.executor), launch.tasks), task));
        }
        let task_id = next.next_task_id();
        let mut info = build_app_task_info(app, app.config_version(), &task_id, offer, allocation);
        if let Some(executor) = self.config.executor.baton_for(app) {
            let framework_id = self.view.framework_id.clone().unwrap_or_default();
            info = match with_baton_executor(info, &framework_id, executor) {
                Ok(info) => info,
                Err(e) => {
                    error!(%task_id, error = %e, "cannot carve executor resources");
                    return None;
                }
            };
        }
        next.incarnation += 1;
        next.app_version = app.config_version();
        let task = InstanceTask {
            fields: fields.clone(),
            ..InstanceTask::launched(
                task_id,
                offer.agent_id.value.clone(),
                offer.hostname.clone(),
                allocation.ports.clone(),
                now,
            )
        };
        Some((Launch::Task(Box::new(info)), task))
    }

    /// Adds to `operations` the DESTROY and UNRESERVE of what each offer
    /// holds reserved by this framework for an instance that no longer
    /// holds it there, and forgets those it was waiting to free.
    fn free_orphaned_reservations(
        &mut self,
        offers: &[v1::Offer],
        framework_id: &str,
        operations: &mut [Vec<v1::offer::Operation>],
    ) {
        if framework_id.is_empty() {
            return;
        }
        // Whether `instance` holds its reservation on `agent`: looked up
        // by the label's id, not by a pass over every instance (a stopped
        // resident instance's reservation comes in every offer of its
        // agent).
        let view = &self.view;
        let holds = |instance: &str, agent: &str| {
            view.instance_by_id(instance)
                .and_then(|i| i.reservation.as_ref())
                .is_some_and(|r| r.agent_id.as_str() == agent)
        };
        let mut freed_parts: Vec<String> = Vec::new();
        for (offer, ops) in offers.iter().zip(operations.iter_mut()) {
            let agent = offer.agent_id.value.as_str();
            let freed =
                reservation::orphaned(offer, framework_id, |instance| holds(instance, agent));
            if freed.is_empty() {
                continue;
            }
            freed_parts.extend(
                offer
                    .resources
                    .iter()
                    .filter_map(|r| reservation::reserved_instance(r, framework_id))
                    .filter(|instance| !holds(instance, agent))
                    .map(str::to_string),
            );
            info!(agent = %offer.hostname, "freeing reservations no instance holds");
            ops.extend(freed);
        }
        // A part freed cuts the wait for the rest to a moment: a
        // reservation comes back in parts (a pod's tasks' share when they
        // end, its executor's with the volumes when that exits; after an
        // agent's return, in whatever order its updates go), and none says
        // it was the last.
        let soon = self.instant() + super::RESERVATION_REST_PATIENCE;
        for instance in freed_parts {
            if let Some(until) = self.reservations_to_free.get_mut(&instance) {
                *until = (*until).min(soon);
            }
        }
    }
}

/// What one instance's launch sends: a task, or a pod's task group.
enum Launch {
    Task(Box<v1::TaskInfo>),
    Group(Box<v1::ExecutorInfo>, Vec<v1::TaskInfo>),
}

/// The host ports of a relaunch: the previous task's, in declaration
/// order, when they are exactly the reserved ones; else the reserved ones
/// in ascending order.
fn relaunch_ports(instance: &Instance, resources: &[v1::Resource]) -> Vec<u64> {
    let reserved = reservation::reserved_ports(resources);
    match instance.task.as_ref().map(|t| &t.host_ports) {
        Some(previous) => {
            let mut sorted = previous.clone();
            sorted.sort_unstable();
            if sorted == reserved {
                previous.clone()
            } else {
                reserved
            }
        }
        None => reserved,
    }
}
