//! An offer cycle: the demands of every app that may launch, placed on
//! the offers (pure, [`crate::offers::place`]); the cycle's launches
//! written ahead of its ACCEPTs, in one write; what was not used declined;
//! the offer funnel per app for `/v2/queue`.

use std::sync::Arc;

use mesos_proto::v1;
use tracing::{error, info};

use super::Driver;
use crate::mesos::calls;
use crate::offers::constraints::offer_fields;
use crate::offers::executor::with_baton_executor;
use crate::offers::placement::{Demand, place};
use crate::offers::task_info::build_app_task_info;
use crate::reconcile::effects::{Effects, StateChange};
use crate::reconcile::view::OfferStats;
use crate::state::app::PathId;
use crate::state::instance::{Condition, Goal, Instance, InstanceTask};

impl Driver {
    pub(super) async fn on_offers(&mut self, offers: Vec<v1::Offer>) {
        self.view.stats.offers_received += offers.len() as u64;
        let now = self.now();
        for offer in &offers {
            self.known_agents.offered(offer, now);
        }
        let known_values = self.known_agents.values(now);
        // The demands: every app with instances that may launch now.
        let mut demands = Vec::new();
        let mut waiting: Vec<Vec<Arc<Instance>>> = Vec::new();
        for id in self.launchable.clone() {
            let Some(app) = self.view.apps.get(&id).cloned() else {
                continue;
            };
            let mut instances: Vec<Arc<Instance>> = self
                .view
                .instances_of(&id)
                .filter(|i| i.is_waiting())
                .cloned()
                .collect();
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
            demands.push(demand);
            waiting.push(instances);
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
        for (offer_index, placements) in plan.offers.iter().enumerate() {
            let offer = &offers[offer_index];
            if placements.is_empty() {
                unused.push(offer.id.clone());
                continue;
            }
            let fields = crate::state::instance::shared_fields(offer_fields(offer));
            let mut launches = Vec::new();
            let mut launched = Vec::new();
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
                let task_id = next.next_task_id();
                next.incarnation += 1;
                next.app_version = app.config_version();
                let mut info = build_app_task_info(
                    &app,
                    next.app_version,
                    &task_id,
                    offer,
                    &placement.allocation,
                );
                if let Some(executor) = self.config.executor.baton_for(&app) {
                    let framework_id = self.view.framework_id.clone().unwrap_or_default();
                    info = match with_baton_executor(info, &framework_id, executor) {
                        Ok(info) => info,
                        Err(e) => {
                            error!(%task_id, error = %e, "cannot carve executor resources");
                            continue;
                        }
                    };
                }
                next.task = Some(InstanceTask {
                    fields: fields.clone(),
                    ..InstanceTask::launched(
                        task_id.clone(),
                        offer.agent_id.value.clone(),
                        offer.hostname.clone(),
                        placement.allocation.ports.clone(),
                        now,
                    )
                });
                launches.push(info);
                launched.push(next);
            }
            if launches.is_empty() {
                unused.push(offer.id.clone());
                continue;
            }
            accepted.push((offer.id.clone(), offer.hostname.clone(), launches.len()));
            for instance in launched {
                launching.change(StateChange::Instance(Arc::new(instance)));
            }
            launching.call(calls::accept_launch(
                vec![offer.id.clone()],
                launches,
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
}
