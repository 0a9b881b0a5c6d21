//! What readers see: an immutable snapshot of the scheduler's state.
//!
//! The loop publishes a new [`View`] after every change. Its maps are
//! persistent (`imbl`): publishing shares everything that did not change,
//! so a status update costs O(log n), not a copy of every app and task —
//! and `GET /v2/apps` with thousands of apps reads a snapshot without ever
//! waiting for the writer.

use std::sync::Arc;

use imbl::OrdMap;
use serde::{Deserialize, Serialize};
use uuid::Uuid;

use super::backoff::LaunchDelay;
pub use crate::deploy::{Deployment, DeploymentAction, DeploymentFailure};
use crate::health::{CheckState, ReadinessResult};
use crate::offers::placement::RejectSummary;
use crate::state::app::{AppDefinition, PathId, Timestamp};
use crate::state::instance::Instance;

/// Counters, for tests and metrics.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Stats {
    /// Offers received.
    pub offers_received: u64,
    /// Offers used in an ACCEPT.
    pub offers_accepted: u64,
    /// Offers declined.
    pub offers_declined: u64,
    /// UPDATE events received, duplicates included.
    pub updates_received: u64,
    /// Status updates applied to state (each distinct uuid once).
    pub updates_applied: u64,
    /// Redelivered updates recognised by uuid and not applied again.
    pub duplicate_updates: u64,
    /// ACKNOWLEDGE calls sent.
    pub acks_sent: u64,
    /// Tasks launched (in ACCEPT calls).
    pub tasks_launched: u64,
    /// Tasks Mesos reported that Baton did not know, and killed.
    pub unknown_tasks_killed: u64,
    /// Launches that failed because the agent could not fetch
    /// `baton-executor` (not counted against the app).
    pub executor_fetch_failures: u64,
    /// KILL calls sent for instances Baton manages.
    pub kills_sent: u64,
    /// SUBSCRIBED events seen.
    pub subscriptions: u64,
    /// Explicit reconciliation requests sent (retries included).
    pub reconcile_requests: u64,
    /// Explicit reconciliation rounds that every task answered.
    pub reconcile_cycles: u64,
    /// Per-app reconcile passes run.
    pub app_reconciles: u64,
    /// Sum and count of launch latencies (launch sent → TASK_RUNNING), ms.
    pub launch_latency_ms_sum: u64,
    /// Launches that reached RUNNING.
    pub launch_latency_count: u64,
    /// Launch latency histogram: counts at or below each of
    /// [`LAUNCH_LATENCY_BUCKETS_MS`] (cumulative, Prometheus style).
    pub launch_latency_buckets: [u64; LAUNCH_LATENCY_BUCKETS_MS.len()],
}

/// Upper bounds of the launch latency histogram, in milliseconds.
pub const LAUNCH_LATENCY_BUCKETS_MS: [u64; 8] = [100, 250, 500, 1000, 2500, 5000, 10000, 30000];

impl Stats {
    /// Records one launch that reached RUNNING after `ms`.
    pub fn observe_launch_latency(&mut self, ms: u64) {
        self.launch_latency_ms_sum += ms;
        self.launch_latency_count += 1;
        for (bucket, bound) in self
            .launch_latency_buckets
            .iter_mut()
            .zip(LAUNCH_LATENCY_BUCKETS_MS)
        {
            if ms <= bound {
                *bucket += 1;
            }
        }
    }
}

/// The last task of an app that failed (`lastTaskFailure`).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct TaskFailure {
    /// The app.
    pub app_id: PathId,
    /// Agent hostname.
    pub host: String,
    /// Mesos's message.
    pub message: String,
    /// `TASK_FAILED` etc.
    pub state: String,
    /// The task.
    pub task_id: String,
    /// When it ended.
    pub timestamp: Timestamp,
    /// The app version it ran.
    pub version: Timestamp,
    /// The agent.
    pub slave_id: String,
}

/// What became of the offers an app's waiting instances looked at: the
/// raw material of `/v2/queue`'s `processedOffersSummary`.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct OfferStats {
    /// Since when instances of the app wait.
    pub since: Option<Timestamp>,
    /// Offers looked at since then.
    pub processed_offers: u64,
    /// Of those, offers not used.
    pub unused_offers: u64,
    /// When an offer was last passed over.
    pub last_unused_offer_at: Option<Timestamp>,
    /// When an offer was last used.
    pub last_used_offer_at: Option<Timestamp>,
    /// Why the offers of the last cycle were not used.
    pub last_cycle: RejectSummary,
    /// Accumulated reasons over every cycle since `since`.
    pub since_waiting: RejectSummary,
}

/// What one health check has seen of one task: a `healthCheckResults`
/// entry.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct CheckResults {
    /// The task's instance (`<app>.instance-<uuid>`).
    pub instance_id: String,
    /// The task.
    pub task_id: String,
    /// What the check's results add up to.
    pub state: CheckState,
}

/// One registered instance (see [`View::services`]).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ServiceEntry {
    /// Its app.
    pub app_id: PathId,
    /// The app version it runs.
    pub version: crate::state::app::Timestamp,
    /// Its Mesos task.
    pub task_id: String,
    /// Where it runs.
    pub host: String,
    /// Its host ports.
    pub ports: Vec<u64>,
}

impl ServiceEntry {
    /// Its registry path: `/services/<app id>/<version>/<task id>`.
    pub fn path(&self) -> String {
        format!("/services{}/{}/{}", self.app_id, self.version, self.task_id)
    }

    /// What the registry holds for it.
    pub fn json(&self) -> serde_json::Value {
        serde_json::json!({ "host": self.host, "ports": self.ports, "healthy": true })
    }
}

/// An immutable snapshot of what the scheduler knows.
#[derive(Debug, Clone, Default)]
pub struct View {
    /// State is loaded and the loop is running.
    pub loaded: bool,
    /// Whether a subscription is live.
    pub subscribed: bool,
    /// Our FrameworkID, once Mesos assigned one.
    pub framework_id: Option<String>,
    /// The current definition of every app.
    pub apps: OrdMap<PathId, Arc<AppDefinition>>,
    /// Stored versions of each app, oldest first (the current one last).
    pub versions: OrdMap<PathId, Arc<Vec<Arc<AppDefinition>>>>,
    /// Instances by app (including apps being deleted), then uuid.
    pub instances: OrdMap<PathId, crate::state::InstanceMap>,
    /// Launch delays in force or remembered, by app.
    pub delays: OrdMap<PathId, LaunchDelay>,
    /// Offer statistics of apps with waiting instances.
    pub offer_stats: OrdMap<PathId, Arc<OfferStats>>,
    /// The last failed task per app.
    pub last_failures: OrdMap<PathId, Arc<TaskFailure>>,
    /// Running deployments by id.
    pub deployments: OrdMap<String, Arc<Deployment>>,
    /// The readiness results of each app's tasks (`readinessCheckResults`),
    /// by app.
    pub readiness: OrdMap<PathId, Arc<Vec<ReadinessResult>>>,
    /// The results of each task's Marathon-level checks
    /// (`healthCheckResults`), by task id.
    pub health: OrdMap<String, Arc<Vec<CheckResults>>>,
    /// The latest load report of each running task, by task id.
    pub loads: OrdMap<String, Arc<super::load::TaskLoad>>,
    /// Counters.
    pub stats: Stats,
}

impl View {
    /// The instances of an app, in uuid order.
    pub fn instances_of(&self, app: &PathId) -> impl Iterator<Item = &Arc<Instance>> {
        self.instances.get(app).into_iter().flat_map(|m| m.values())
    }

    /// Every instance of every app.
    pub fn all_instances(&self) -> impl Iterator<Item = &Arc<Instance>> {
        self.instances.values().flat_map(|m| m.values())
    }

    /// The instance `<app>.instance-<uuid>` (as reservations are
    /// labelled), found by its app and uuid.
    pub fn instance_by_id(&self, instance_id: &str) -> Option<&Arc<Instance>> {
        let (app, uuid) = instance_id.rsplit_once(".instance-")?;
        let app = PathId::from_safe(app)?;
        let uuid: Uuid = uuid.parse().ok()?;
        self.instances.get(&app)?.get(&uuid)
    }

    /// The instance whose current or last task has this id.
    pub fn instance_by_task(&self, task_id: &str) -> Option<&Arc<Instance>> {
        let parts = crate::state::app::parse_task_id(task_id).ok()?;
        let uuid: Uuid = parts.uuid.parse().ok()?;
        let instance = self.instances.get(&parts.app_id)?.get(&uuid)?;
        instance
            .task
            .as_ref()
            .is_some_and(|t| t.has_task_id(task_id))
            .then_some(instance)
    }

    /// The service registry: every instance that is running (not being
    /// drained or killed) and healthy — all its health checks passing, or
    /// none declared — in app, then task order.
    pub fn services(&self) -> Vec<ServiceEntry> {
        let mut out = Vec::new();
        for (app_id, instances) in &self.instances {
            let health_checked = self
                .apps
                .get(app_id)
                .is_some_and(|app| !app.health_checks.is_empty());
            for instance in instances.values() {
                let Some(task) = &instance.task else {
                    continue;
                };
                let live = task.condition == crate::state::instance::Condition::Running
                    && task.draining_since.is_none()
                    && task.kill_requested_at.is_none()
                    && instance.goal == crate::state::instance::Goal::Running;
                let healthy = !health_checked || task.healthy == Some(true);
                if live && healthy {
                    out.push(ServiceEntry {
                        app_id: app_id.clone(),
                        version: instance.app_version,
                        task_id: task.task_id.clone(),
                        host: task.hostname.to_string(),
                        ports: task.host_ports.clone(),
                    });
                }
            }
        }
        out.sort_by(|a, b| (&a.app_id, &a.task_id).cmp(&(&b.app_id, &b.task_id)));
        out
    }

    /// Deployments that change `app`.
    pub fn deployments_of<'a>(
        &'a self,
        app: &'a PathId,
    ) -> impl Iterator<Item = &'a Arc<Deployment>> + 'a {
        self.deployments
            .values()
            .filter(move |d| d.affected_apps().any(|a| a == app))
    }

    /// This view with only the apps `visible` admits: their instances,
    /// versions, delays, health and load results, failures; and the
    /// deployments that change one of them, with the other apps taken out
    /// of their steps (so that a client waiting for its app's deployment
    /// to end sees it, and no hidden app is named).
    pub fn visible_to(&self, visible: impl Fn(&PathId) -> bool) -> View {
        fn keep<V: Clone>(
            map: &OrdMap<PathId, V>,
            visible: &impl Fn(&PathId) -> bool,
        ) -> OrdMap<PathId, V> {
            map.iter()
                .filter(|(id, _)| visible(id))
                .map(|(id, v)| (id.clone(), v.clone()))
                .collect()
        }
        let task_visible = |task_id: &String| {
            crate::state::app::parse_task_id(task_id).is_ok_and(|parts| visible(&parts.app_id))
        };
        View {
            loaded: self.loaded,
            subscribed: self.subscribed,
            framework_id: self.framework_id.clone(),
            apps: keep(&self.apps, &visible),
            versions: keep(&self.versions, &visible),
            instances: keep(&self.instances, &visible),
            delays: keep(&self.delays, &visible),
            offer_stats: keep(&self.offer_stats, &visible),
            last_failures: keep(&self.last_failures, &visible),
            deployments: self
                .deployments
                .iter()
                .filter(|(_, d)| d.affected_apps().any(&visible))
                .map(|(id, d)| {
                    if d.affected_apps().all(&visible) {
                        return (id.clone(), d.clone());
                    }
                    let mut shown = (**d).clone();
                    for step in &mut shown.steps {
                        step.retain(|(app, _)| visible(app));
                    }
                    if shown.failure.as_ref().is_some_and(|f| !visible(&f.app_id)) {
                        shown.failure = None;
                    }
                    (id.clone(), Arc::new(shown))
                })
                .collect(),
            readiness: keep(&self.readiness, &visible),
            health: self
                .health
                .iter()
                .filter(|(task, _)| task_visible(task))
                .map(|(k, v)| (k.clone(), v.clone()))
                .collect(),
            loads: self
                .loads
                .iter()
                .filter(|(task, _)| task_visible(task))
                .map(|(k, v)| (k.clone(), v.clone()))
                .collect(),
            stats: self.stats.clone(),
        }
    }

    /// A stored version of an app.
    pub fn app_version(&self, app: &PathId, version: Timestamp) -> Option<&Arc<AppDefinition>> {
        self.versions
            .get(app)?
            .iter()
            .find(|a| a.version == Some(version))
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::state::app::{AppDefaults, AppDefinition, Timestamp};
    use crate::state::instance::{Condition, Instance, InstanceTask};

    fn app(id: &str, health_checked: bool) -> AppDefinition {
        let mut json = serde_json::json!({"id": id, "cmd": "serve", "instances": 1});
        if health_checked {
            json["healthChecks"] = serde_json::json!([{"protocol": "HTTP", "path": "/h"}]);
        }
        AppDefinition::from_value(&json, &PathId::root(), &AppDefaults::default())
            .unwrap()
            .with_version(Timestamp::from_millis(1_000), false)
    }

    /// Adds an instance of `app` whose task `change` shapes; its task id.
    fn add(view: &mut View, app: &AppDefinition, change: impl FnOnce(&mut InstanceTask)) -> String {
        let version = app.version.unwrap();
        let mut instance = Instance::schedule(app.id.clone(), version, version);
        let mut task = InstanceTask::launched(
            instance.next_task_id(),
            "agent-1".into(),
            "10.0.0.1".into(),
            vec![31_000],
            version,
        );
        task.condition = Condition::Running;
        change(&mut task);
        let task_id = task.task_id.clone();
        instance.task = Some(task);
        view.instances
            .entry(app.id.clone())
            .or_default()
            .insert(instance.uuid, Arc::new(instance));
        task_id
    }

    #[test]
    fn an_instance_is_found_by_its_id_as_reservations_are_labelled() {
        let mut view = View::default();
        let web = app("/shop/web", false);
        let task_id = add(&mut view, &web, |_| {});
        let instance = view.instance_by_task(&task_id).unwrap().clone();
        let found = view.instance_by_id(&instance.instance_id()).unwrap();
        assert_eq!(found.uuid, instance.uuid);
        assert!(
            view.instance_by_id("shop_web.instance-not-a-uuid")
                .is_none()
        );
        assert!(view.instance_by_id("nope").is_none());
    }

    #[test]
    fn the_registry_holds_running_healthy_instances_only() {
        let mut view = View::default();
        let checked = app("/checked", true);
        let unchecked = app("/unchecked", false);
        view.apps
            .insert(checked.id.clone(), Arc::new(checked.clone()));
        view.apps
            .insert(unchecked.id.clone(), Arc::new(unchecked.clone()));
        let healthy = add(&mut view, &checked, |t| t.healthy = Some(true));
        add(&mut view, &checked, |t| t.healthy = Some(false));
        add(&mut view, &checked, |t| t.healthy = None);
        add(&mut view, &checked, |t| {
            t.healthy = Some(true);
            t.draining_since = Some(Timestamp::from_millis(2_000));
        });
        add(&mut view, &checked, |t| {
            t.healthy = Some(true);
            t.kill_requested_at = Some(Timestamp::from_millis(2_000));
        });
        add(&mut view, &checked, |t| {
            t.healthy = Some(true);
            t.condition = Condition::Staging;
        });
        let no_checks = add(&mut view, &unchecked, |_| {});

        let services = view.services();
        let ids: Vec<&str> = services.iter().map(|s| s.task_id.as_str()).collect();
        assert_eq!(ids, [healthy.as_str(), no_checks.as_str()]);
        let entry = &services[0];
        assert_eq!(
            entry.path(),
            format!("/services/checked/{}/{healthy}", entry.version)
        );
        assert_eq!(
            entry.json(),
            serde_json::json!({"host": "10.0.0.1", "ports": [31_000], "healthy": true})
        );
    }
}
