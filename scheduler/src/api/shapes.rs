//! JSON shapes of tasks and app status, as Marathon writes them and its
//! clients read them (shared/reference/marathon-api.md §2.7, §2.8;
//! style-and-crates.md C.1). Pure functions from state to JSON.
//!
//! Where clients and server disagree, both names are written: `taskId` and
//! `instanceId` in health results, `taskStats` and `tasksStats` in apps. Not
//! `agentId` next to `slaveId` in tasks: the Python client refuses task
//! fields it does not know, and Marathon only ever wrote `slaveId`.
//!
//! Apps and tasks are borrowing [`Serialize`] structs ([`AppInfo`],
//! [`TaskJson`]) written straight to the response, not `Value` trees: with
//! thousands of apps, `GET /v2/apps` is mostly this code
//! (`cargo bench -p baton --bench api`).

use serde::Serialize;
use serde_json::{Value, json};

use crate::health::{HttpResponse, ReadinessResult};
use crate::reconcile::{CheckResults, Deployment, TaskFailure, View};
use crate::state::app::{AppDefinition, PathId, Timestamp};
use crate::state::instance::{Condition, Instance};

/// What `embed` asks to add to an app (`apps.`, `app.` and `group.apps.`
/// prefixes are interchangeable; unknown values are ignored, as Marathon
/// does).
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct Embed {
    /// `tasks` (which also brings deployments).
    pub tasks: bool,
    /// The four `tasks*` counters.
    pub counts: bool,
    /// Deployment ids.
    pub deployments: bool,
    /// `lastTaskFailure`.
    pub last_task_failure: bool,
    /// `taskStats` / `tasksStats`.
    pub task_stats: bool,
    /// `readinessCheckResults`.
    pub readiness: bool,
}

impl Embed {
    /// Reads `embed` values.
    pub fn parse<'a>(values: impl IntoIterator<Item = &'a str>) -> Embed {
        let mut e = Embed::default();
        for value in values {
            let name = ["group.apps.", "apps.", "app."]
                .iter()
                .find_map(|p| value.strip_prefix(p))
                .unwrap_or(value);
            match name {
                "tasks" => {
                    e.tasks = true;
                    e.deployments = true;
                }
                "counts" => e.counts = true,
                "deployments" => e.deployments = true,
                "lastTaskFailure" => e.last_task_failure = true,
                "failures" => {
                    e.tasks = true;
                    e.last_task_failure = true;
                    e.deployments = true;
                }
                "taskStats" => e.task_stats = true,
                "readiness" => e.readiness = true,
                other => tracing::debug!(embed = other, "unknown embed value ignored"),
            }
        }
        e
    }
}

/// The tasks of an app that Mesos may be running (terminal ones are gone;
/// instances waiting for an offer have none).
pub fn app_tasks<'a>(view: &'a View, app: &PathId) -> Vec<TaskJson<'a>> {
    view.instances_of(app)
        .filter(|i| i.is_active())
        .filter_map(|i| TaskJson::in_view(i, view))
        .collect()
}

/// A deployment reference in an app: `{"id": ...}`.
#[derive(Debug, Serialize)]
pub struct DeploymentRef<'a> {
    /// The deployment.
    pub id: &'a str,
}

/// An app as `GET /v2/apps` shows it: the definition plus what `embed`
/// asks for.
#[derive(Debug)]
pub struct AppInfo<'a> {
    app: &'a AppDefinition,
    counts: Option<Counts>,
    /// Deployment refs (set by callers that know better than the snapshot).
    pub deployments: Option<Vec<DeploymentRef<'a>>>,
    tasks: Option<Vec<TaskJson<'a>>>,
    last_task_failure: Option<&'a TaskFailure>,
    task_stats: Option<Value>,
    readiness: Option<Vec<ReadinessJson<'a>>>,
}

impl Serialize for AppInfo<'_> {
    fn serialize<S: serde::Serializer>(&self, serializer: S) -> Result<S::Ok, S::Error> {
        use serde::ser::SerializeMap;
        // The app's members and ours in one map, without buffering the app
        // (what `#[serde(flatten)]` would do).
        let mut m = serializer.serialize_map(None)?;
        self.app.serialize_fields(&mut m)?;
        if let Some(c) = self.counts {
            m.serialize_entry("tasksStaged", &c.staged)?;
            m.serialize_entry("tasksRunning", &c.running)?;
            m.serialize_entry("tasksHealthy", &c.healthy)?;
            m.serialize_entry("tasksUnhealthy", &c.unhealthy)?;
        }
        if let Some(d) = &self.deployments {
            m.serialize_entry("deployments", d)?;
        }
        if let Some(t) = &self.tasks {
            m.serialize_entry("tasks", t)?;
        }
        if let Some(f) = self.last_task_failure {
            m.serialize_entry("lastTaskFailure", f)?;
        }
        if let Some(s) = &self.task_stats {
            m.serialize_entry("tasksStats", s)?;
            m.serialize_entry("taskStats", s)?;
        }
        if let Some(results) = &self.readiness {
            m.serialize_entry("readinessCheckResults", results)?;
        }
        m.end()
    }
}

impl<'a> AppInfo<'a> {
    /// `app` with what `embed` asks for, from `view`.
    pub fn new(view: &'a View, app: &'a AppDefinition, embed: &Embed, now: Timestamp) -> Self {
        let counted = embed
            .counts
            .then(|| counts(view.instances_of(&app.id).map(|i| &**i)));
        let stats = embed.task_stats.then(|| {
            let instances: Vec<&Instance> = view.instances_of(&app.id).map(|i| &**i).collect();
            task_stats(app, &instances, now)
        });
        AppInfo {
            app,
            counts: counted,
            deployments: embed.deployments.then(|| {
                view.deployments_of(&app.id)
                    .map(|d: &'a std::sync::Arc<Deployment>| DeploymentRef { id: &d.id })
                    .collect()
            }),
            tasks: embed.tasks.then(|| app_tasks(view, &app.id)),
            last_task_failure: if embed.last_task_failure {
                view.last_failures.get(&app.id).map(|f| &**f)
            } else {
                None
            },
            task_stats: stats,
            readiness: embed.readiness.then(|| {
                view.readiness
                    .get(&app.id)
                    .map_or_else(Vec::new, |r| r.iter().map(ReadinessJson::from).collect())
            }),
        }
    }
}

/// [`AppInfo`] as a JSON value.
pub fn app_info(view: &View, app: &AppDefinition, embed: &Embed, now: Timestamp) -> Value {
    serde_json::to_value(AppInfo::new(view, app, embed, now)).unwrap_or_else(|_| json!({}))
}

/// An address of a task (`ipAddresses`).
#[derive(Debug, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct IpAddress {
    ip_address: String,
    protocol: &'static str,
}

/// A task of an instance, as `GET /v2/apps/{id}/tasks` lists it.
#[derive(Debug, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct TaskJson<'a> {
    id: &'a str,
    app_id: &'a str,
    host: &'a str,
    slave_id: &'a str,
    state: &'static str,
    ports: &'a [u64],
    ip_addresses: Vec<IpAddress>,
    health_check_results: Vec<HealthCheckJson<'a>>,
    local_volumes: Vec<LocalVolumeJson>,
    #[serde(skip_serializing_if = "Option::is_none")]
    staged_at: Option<Timestamp>,
    #[serde(skip_serializing_if = "Option::is_none")]
    started_at: Option<Timestamp>,
    #[serde(skip_serializing_if = "Option::is_none")]
    version: Option<Timestamp>,
    /// Only `GET /v2/tasks` fills these.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub service_ports: Option<Vec<u16>>,
}

impl<'a> TaskJson<'a> {
    /// The task of `instance`; `None` when it has none yet. Ended tasks
    /// omit times and ports, as Marathon does.
    pub fn of(instance: &'a Instance) -> Option<TaskJson<'a>> {
        let task = instance.task.as_ref()?;
        let active = !task.condition.is_terminal();
        Some(TaskJson {
            id: &task.task_id,
            app_id: instance.app_id.as_str(),
            host: &task.hostname,
            slave_id: &task.agent_id,
            state: task.shown_state(),
            ports: if active { &task.host_ports } else { &[] },
            ip_addresses: ip_addresses(&task.hostname),
            health_check_results: Vec::new(),
            local_volumes: Vec::new(),
            staged_at: active.then_some(task.launched_at),
            started_at: task.started_at.filter(|_| active),
            version: active.then_some(instance.app_version),
            service_ports: None,
        })
    }
}

/// A resident task's `localVolumes` entry, as Marathon writes it.
#[derive(Debug, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct LocalVolumeJson {
    run_spec_id: String,
    container_path: String,
    uuid: String,
    persistence_id: String,
}

/// The `localVolumes` of `instance` of `app` (task or pod instance): its
/// persistent volumes, while it holds a reservation.
pub fn local_volumes(app: &AppDefinition, instance: &Instance) -> Vec<LocalVolumeJson> {
    if instance.reservation.is_none() {
        return Vec::new();
    }
    let instance_id = instance.instance_id();
    crate::offers::reservation::persistent_volumes(app)
        .into_iter()
        .map(|v| LocalVolumeJson {
            run_spec_id: instance.app_id.to_string(),
            persistence_id: crate::offers::reservation::persistence_id(
                &instance_id,
                &v.container_path,
            ),
            container_path: v.container_path,
            uuid: instance.uuid.to_string(),
        })
        .collect()
}

impl<'a> TaskJson<'a> {
    /// The task of `instance` with what `view` adds: its health check
    /// results and, for a resident instance, its persistent volumes.
    pub fn in_view(instance: &'a Instance, view: &'a View) -> Option<TaskJson<'a>> {
        let mut task = TaskJson::of(instance)?.with_health(view);
        // Most instances hold no reservation: no app lookup for them.
        if instance.reservation.is_some()
            && let Some(app) = view.apps.get(&instance.app_id)
        {
            task.local_volumes = local_volumes(app, instance);
        }
        Some(task)
    }

    /// Adds the task's `healthCheckResults` from `view`.
    pub fn with_health(mut self, view: &'a View) -> TaskJson<'a> {
        if let Some(results) = view.health.get(self.id) {
            self.health_check_results = results.iter().map(HealthCheckJson::from).collect();
        }
        self
    }
}

/// A task's `healthCheckResults` entry, in Marathon's shape: `{alive,
/// consecutiveFailures, firstSuccess, lastSuccess, lastFailure,
/// lastFailureCause, instanceId, taskId}`. Missing times and cause are
/// `null`; `alive` is `false` until a success, as Marathon writes it.
/// (Members in name order, as the JSON maps elsewhere write them.)
#[derive(Debug, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct HealthCheckJson<'a> {
    alive: bool,
    consecutive_failures: u32,
    first_success: Option<Timestamp>,
    instance_id: &'a str,
    last_failure: Option<Timestamp>,
    last_failure_cause: Option<&'a str>,
    last_success: Option<Timestamp>,
    task_id: &'a str,
}

impl<'a> From<&'a CheckResults> for HealthCheckJson<'a> {
    fn from(r: &'a CheckResults) -> Self {
        HealthCheckJson {
            alive: r.state.alive == Some(true),
            consecutive_failures: r.state.consecutive_failures,
            first_success: r.state.first_success,
            instance_id: &r.instance_id,
            last_failure: r.state.last_failure,
            last_failure_cause: r.state.last_failure_cause.as_deref(),
            last_success: r.state.last_success,
            task_id: &r.task_id,
        }
    }
}

/// A readiness result in Marathon's shape, as in a task's or a
/// deployment's `readinessCheckResults`: `{name, taskId, ready,
/// lastResponse}`, with `lastResponse` `{status, contentType, body}` or
/// `null` (without `preserveLastResponse`).
#[derive(Debug, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct ReadinessJson<'a> {
    last_response: Option<ResponseJson<'a>>,
    name: &'a str,
    ready: bool,
    task_id: &'a str,
}

/// `lastResponse` of a readiness result.
#[derive(Debug, Serialize)]
#[serde(rename_all = "camelCase")]
struct ResponseJson<'a> {
    body: &'a str,
    content_type: &'a str,
    status: u16,
}

impl<'a> From<&'a ReadinessResult> for ReadinessJson<'a> {
    fn from(r: &'a ReadinessResult) -> Self {
        ReadinessJson {
            last_response: r
                .last_response
                .as_ref()
                .map(|r: &HttpResponse| ResponseJson {
                    body: &r.body,
                    content_type: &r.content_type,
                    status: r.status,
                }),
            name: &r.name,
            ready: r.ready,
            task_id: &r.task_id,
        }
    }
}

/// A task of an instance as a JSON value; `None` for an instance that has
/// no task yet.
pub fn task_json(instance: &Instance) -> Option<Value> {
    TaskJson::of(instance).and_then(|t| serde_json::to_value(t).ok())
}

/// The agent's address as Marathon reports host-network tasks: its IP when
/// the hostname is one.
pub(crate) fn ip_addresses(host: &str) -> Vec<IpAddress> {
    match host.parse::<std::net::IpAddr>() {
        Ok(ip) => vec![IpAddress {
            ip_address: ip.to_string(),
            protocol: if ip.is_ipv4() { "IPv4" } else { "IPv6" },
        }],
        Err(_) => Vec::new(),
    }
}

/// The four `tasks*` counters of an app.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct Counts {
    /// Launched, not yet running.
    pub staged: u64,
    /// Running.
    pub running: u64,
    /// Running and reported healthy.
    pub healthy: u64,
    /// Running and reported unhealthy.
    pub unhealthy: u64,
}

/// Counts an app's instances as Marathon does.
pub fn counts<'a>(instances: impl IntoIterator<Item = &'a Instance>) -> Counts {
    let mut c = Counts::default();
    for task in instances.into_iter().filter_map(|i| i.task.as_ref()) {
        match task.condition {
            cond if cond.is_launching() => c.staged += 1,
            Condition::Running => {
                c.running += 1;
                match task.healthy {
                    Some(true) => c.healthy += 1,
                    Some(false) => c.unhealthy += 1,
                    None => {}
                }
            }
            _ => {}
        }
    }
    c
}

/// Marathon's `taskStats` object for a set of instances: counts and task
/// life times (seconds since start) at `now`. Empty groups are omitted.
fn stats(instances: &[&Instance], now: Timestamp) -> Option<Value> {
    if instances.is_empty() {
        return None;
    }
    let c = counts(instances.iter().copied());
    let mut lifetimes: Vec<f64> = instances
        .iter()
        .filter_map(|i| i.task.as_ref())
        .filter(|t| t.condition == Condition::Running)
        .filter_map(|t| t.started_at)
        .map(|s| (now.as_millis() - s.as_millis()).max(0) as f64 / 1000.0)
        .collect();
    lifetimes.sort_by(f64::total_cmp);
    let mut stats = json!({
        "counts": {"staged": c.staged, "running": c.running, "healthy": c.healthy, "unhealthy": c.unhealthy},
    });
    if !lifetimes.is_empty() {
        let average = lifetimes.iter().sum::<f64>() / lifetimes.len() as f64;
        let median = lifetimes[lifetimes.len() / 2];
        stats["lifeTime"] = json!({"averageSeconds": average, "medianSeconds": median});
    }
    Some(json!({ "stats": stats }))
}

/// `taskStats`: totals, and split by whether the instance runs the app's
/// latest configuration.
pub fn task_stats(app: &AppDefinition, instances: &[&Instance], now: Timestamp) -> Value {
    let latest = app.last_config_change().or(app.version);
    let (current, outdated): (Vec<&Instance>, Vec<&Instance>) = instances
        .iter()
        .partition(|i| latest.is_none_or(|v| i.app_version >= v));
    let mut out = serde_json::Map::new();
    if let Some(s) = stats(instances, now) {
        out.insert("totalSummary".into(), s);
    }
    if let Some(s) = stats(&current, now) {
        out.insert("withLatestConfig".into(), s);
    }
    if let Some(s) = stats(&outdated, now) {
        out.insert("withOutdatedConfig".into(), s);
    }
    Value::Object(out)
}

#[cfg(test)]
mod tests {

    use super::*;
    use crate::state::StatusRecord;
    use crate::state::app::PathId;
    use crate::state::instance::InstanceTask;

    fn instance(condition: Condition, healthy: Option<bool>) -> Instance {
        let mut i = Instance::schedule(
            PathId::parse("/prod/web", &PathId::root()).unwrap(),
            Timestamp::from_millis(1_000),
            Timestamp::from_millis(1_000),
        );
        i.task = Some(InstanceTask {
            condition,
            last_status: Some(StatusRecord {
                state: condition.mesos_state().into(),
                message: None,
                reason: None,
                source: None,
                healthy,
                timestamp: None,
            }),
            started_at: (condition == Condition::Running).then(|| Timestamp::from_millis(3_000)),
            healthy,
            ..InstanceTask::launched(
                i.next_task_id(),
                "agent-S1".into(),
                "127.0.0.2".into(),
                vec![31002],
                Timestamp::from_millis(2_000),
            )
        });
        i
    }

    #[test]
    fn task_json_has_what_marathon_lb_and_traefik_read() {
        let i = instance(Condition::Running, Some(true));
        let t = task_json(&i).unwrap();
        for field in [
            "id",
            "appId",
            "host",
            "ports",
            "ipAddresses",
            "slaveId",
            "stagedAt",
            "startedAt",
            "version",
            "state",
            "healthCheckResults",
        ] {
            assert!(t.get(field).is_some(), "task JSON lacks {field}: {t}");
        }
        assert!(
            t.get("agentId").is_none(),
            "regression: marathon-python refuses task fields it does not know"
        );
        assert_eq!(t["appId"], "/prod/web");
        assert_eq!(t["state"], "TASK_RUNNING");
        assert_eq!(t["ports"], json!([31002]));
        assert_eq!(
            t["ipAddresses"],
            json!([{"ipAddress": "127.0.0.2", "protocol": "IPv4"}])
        );
        assert_eq!(t["startedAt"], "1970-01-01T00:00:03.000Z");
        assert!(t["id"].as_str().unwrap().starts_with("prod_web.instance-"));
    }

    #[test]
    fn ended_tasks_omit_times_and_ports_as_marathon_does() {
        let t = task_json(&instance(Condition::Killed, None)).unwrap();
        assert_eq!(t["ports"], json!([]));
        assert!(
            t.get("stagedAt").is_none()
                && t.get("startedAt").is_none()
                && t.get("version").is_none()
        );
        let waiting = Instance::schedule(
            PathId::parse("/a", &PathId::root()).unwrap(),
            Timestamp::from_millis(0),
            Timestamp::from_millis(0),
        );
        assert!(task_json(&waiting).is_none());
    }

    #[test]
    fn counts_split_staged_running_healthy_unhealthy() {
        let all = [
            instance(Condition::Staging, None),
            instance(Condition::Provisioned, None),
            instance(Condition::Running, Some(true)),
            instance(Condition::Running, Some(false)),
            instance(Condition::Running, None),
            instance(Condition::Failed, None),
        ];
        assert_eq!(
            counts(&all),
            Counts {
                staged: 2,
                running: 3,
                healthy: 1,
                unhealthy: 1
            }
        );
    }

    #[test]
    fn task_stats_split_by_config_version() {
        let app = AppDefinition::from_value(
            &json!({"id": "/prod/web", "cmd": "x"}),
            &PathId::root(),
            &Default::default(),
        )
        .unwrap()
        .with_version(Timestamp::from_millis(1_000), false);
        let a = instance(Condition::Running, None);
        let mut old = instance(Condition::Running, None);
        old.app_version = Timestamp::from_millis(500);
        let stats = task_stats(&app, &[&a, &old], Timestamp::from_millis(13_000));
        assert_eq!(stats["totalSummary"]["stats"]["counts"]["running"], 2);
        assert_eq!(stats["withLatestConfig"]["stats"]["counts"]["running"], 1);
        assert_eq!(stats["withOutdatedConfig"]["stats"]["counts"]["running"], 1);
        assert_eq!(
            stats["totalSummary"]["stats"]["lifeTime"]["medianSeconds"],
            10.0
        );
    }

    #[test]
    fn health_results_have_marathons_shape_with_instance_and_task_ids() {
        use crate::health::{CheckState, HealthResult};
        let check = crate::state::app::HealthCheck {
            grace_period_seconds: 0,
            ..crate::health::test_support::check(crate::state::app::HealthCheckProtocol::Http)
        };
        let started = Timestamp::from_millis(1_000_000);
        let result = |alive: bool, s: i64| HealthResult {
            task_id: "app.instance-1._app.1".into(),
            check_index: 0,
            alive,
            cause: (!alive).then(|| "500 Internal Server Error".into()),
            at: Timestamp::from_millis(1_000_000 + s * 1000),
        };
        let mut results = CheckResults {
            instance_id: "app.instance-1".into(),
            task_id: "app.instance-1._app.1".into(),
            state: CheckState::default(),
        };
        let json = |r: &CheckResults| serde_json::to_value(HealthCheckJson::from(r)).unwrap();
        assert_eq!(
            json(&results),
            json!({
                "alive": false,
                "consecutiveFailures": 0,
                "firstSuccess": null,
                "lastSuccess": null,
                "lastFailure": null,
                "lastFailureCause": null,
                "instanceId": "app.instance-1",
                "taskId": "app.instance-1._app.1",
            })
        );
        results.state.record(&result(true, 1), &check, started);
        results.state.record(&result(false, 2), &check, started);
        results.state.record(&result(true, 3), &check, started);
        let j = json(&results);
        assert_eq!(j["alive"], true);
        assert_eq!(j["consecutiveFailures"], 0);
        assert_eq!(j["firstSuccess"], "1970-01-01T00:16:41.000Z");
        assert_eq!(j["lastSuccess"], "1970-01-01T00:16:43.000Z");
        assert_eq!(j["lastFailure"], "1970-01-01T00:16:42.000Z");
        assert_eq!(j["lastFailureCause"], "500 Internal Server Error");
        assert_eq!(j["instanceId"], "app.instance-1");
        assert_eq!(j["taskId"], "app.instance-1._app.1");
    }

    #[test]
    fn readiness_results_have_marathons_shape() {
        use crate::health::{HttpResponse, ReadinessResult};
        let mut r = ReadinessResult {
            task_id: "app.instance-1._app.1".into(),
            check_index: 0,
            name: "warmup".into(),
            ready: false,
            last_response: None,
            cause: Some("503 Service Unavailable".into()),
            at: Timestamp::from_millis(1_000),
        };
        let json = |r: &ReadinessResult| serde_json::to_value(ReadinessJson::from(r)).unwrap();
        assert_eq!(
            json(&r),
            json!({
                "name": "warmup",
                "taskId": "app.instance-1._app.1",
                "ready": false,
                "lastResponse": null,
            })
        );
        r.ready = true;
        r.cause = None;
        r.last_response = Some(HttpResponse {
            status: 200,
            content_type: "application/json".into(),
            body: r#"{"migrated":true}"#.into(),
        });
        assert_eq!(
            json(&r),
            json!({
                "name": "warmup",
                "taskId": "app.instance-1._app.1",
                "ready": true,
                "lastResponse": {
                    "status": 200,
                    "contentType": "application/json",
                    "body": "{\"migrated\":true}",
                },
            })
        );
    }
}
