//! Marathon's event bus: what `/v2/events` streams (shared/reference/
//! marathon-api.md §1.8), built as JSON once when it happens and shared by
//! every subscriber.
//!
//! Every event has `eventType` and `timestamp`; the other fields are
//! Marathon's, plus the older names clients still read (`taskId` next to
//! `instanceId` in `health_status_changed_event`, for go-marathon).

use std::sync::Arc;

use serde_json::{Value, json};

use super::view::{Deployment, DeploymentAction};
use crate::state::app::{AppDefinition, PathId, Timestamp};
use crate::state::instance::{Condition, Instance};

/// How many events a subscriber may fall behind before it is dropped
/// (Marathon's `--event_stream_max_outstanding_messages`).
pub const EVENT_BUFFER: usize = 1024;

/// One event, ready to send.
#[derive(Debug, Clone, PartialEq)]
pub struct BusEvent {
    /// `eventType`.
    pub event_type: &'static str,
    /// The whole event as one line of JSON.
    pub data: String,
}

/// An event of `event_type` with `fields` (an object), stamped now.
pub fn event(event_type: &'static str, fields: Value) -> Arc<BusEvent> {
    let mut body = match fields {
        Value::Object(map) => map,
        _ => serde_json::Map::new(),
    };
    body.insert("eventType".into(), json!(event_type));
    body.insert("timestamp".into(), json!(Timestamp::now()));
    Arc::new(BusEvent {
        event_type,
        data: Value::Object(body).to_string(),
    })
}

fn step_json(step: &[(PathId, DeploymentAction)]) -> Value {
    json!({
        "actions": step
            .iter()
            .map(|(app, action)| json!({"action": action, "app": app}))
            .collect::<Vec<_>>()
    })
}

/// The light plan of deployment events: `{id, steps, version}`, plus
/// empty `original` and `target` groups: Marathon 1.8+ dropped them, but the
/// Python `marathon` client still reads them and fails without.
pub fn plan_json(d: &Deployment) -> Value {
    let empty_group = json!({"id": "/", "apps": [], "groups": [], "pods": [], "dependencies": []});
    json!({
        "id": d.id,
        "steps": d.steps.iter().map(|s| step_json(s)).collect::<Vec<_>>(),
        "version": d.version,
        "original": empty_group,
        "target": empty_group,
    })
}

/// `deployment_info` (a step starts), `deployment_step_success` or
/// `deployment_step_failure`.
pub fn deployment_step(event_type: &'static str, d: &Deployment) -> Arc<BusEvent> {
    event(
        event_type,
        json!({"plan": plan_json(d), "currentStep": step_json(d.current_actions())}),
    )
}

/// `deployment_success`.
pub fn deployment_success(d: &Deployment) -> Arc<BusEvent> {
    event(
        "deployment_success",
        json!({"id": d.id, "plan": plan_json(d)}),
    )
}

/// `deployment_failed` with the reason.
pub fn deployment_failed(d: &Deployment, reason: &str) -> Arc<BusEvent> {
    event(
        "deployment_failed",
        json!({"id": d.id, "plan": plan_json(d), "reason": reason}),
    )
}

/// `status_update_event` for a task's new status.
pub fn status_update(instance: &Instance, message: Option<&str>) -> Option<Arc<BusEvent>> {
    let task = instance.task.as_ref()?;
    let ip = task.hostname.parse::<std::net::IpAddr>().ok().map(|ip| {
        json!([{"ipAddress": ip.to_string(), "protocol": if ip.is_ipv4() { "IPv4" } else { "IPv6" }}])
    });
    Some(event(
        "status_update_event",
        json!({
            "slaveId": task.agent_id,
            "taskId": task.task_id,
            "taskStatus": task.shown_state(),
            "message": message.unwrap_or_default(),
            "appId": instance.app_id,
            "host": task.hostname,
            "ipAddresses": ip.unwrap_or_else(|| json!([])),
            "ports": task.host_ports,
            "version": instance.app_version,
        }),
    ))
}

/// Marathon's name for a condition in `instance_changed_event`.
fn condition_name(condition: Option<Condition>) -> &'static str {
    match condition {
        None | Some(Condition::Provisioned) => "Provisioned",
        Some(Condition::Staging) => "Staging",
        Some(Condition::Starting) => "Starting",
        Some(Condition::Running) => "Running",
        Some(Condition::Killing) => "Killing",
        Some(Condition::Unreachable) => "Unreachable",
        Some(Condition::Finished) => "Finished",
        Some(Condition::Failed) => "Failed",
        Some(Condition::Killed) => "Killed",
        Some(Condition::Error) => "Error",
        Some(Condition::Dropped) => "Dropped",
        Some(Condition::Gone) => "Gone",
        Some(Condition::Unknown) => "Unknown",
    }
}

/// `instance_changed_event`.
pub fn instance_changed(instance: &Instance) -> Arc<BusEvent> {
    let task = instance.task.as_ref();
    event(
        "instance_changed_event",
        json!({
            "instanceId": instance.instance_id(),
            "condition": condition_name(instance.condition()),
            "runSpecId": instance.app_id,
            "agentId": task.map(|t| t.agent_id.as_str()),
            "host": task.map(|t| t.hostname.as_str()),
            "runSpecVersion": instance.app_version,
            "goal": format!("{:?}", instance.goal),
        }),
    )
}

/// `health_status_changed_event` (and `instance_health_changed_event`'s
/// fields) when a task's health flips.
pub fn health_changed(instance: &Instance, task_id: &str, alive: bool) -> Arc<BusEvent> {
    event(
        "health_status_changed_event",
        json!({
            "appId": instance.app_id,
            "instanceId": instance.instance_id(),
            "taskId": task_id,
            "version": instance.app_version,
            "alive": alive,
        }),
    )
}

/// `unhealthy_instance_kill_event`.
pub fn unhealthy_kill(instance: &Instance, reason: &str) -> Option<Arc<BusEvent>> {
    let task = instance.task.as_ref()?;
    Some(event(
        "unhealthy_instance_kill_event",
        json!({
            "appId": instance.app_id,
            "taskId": task.task_id,
            "instanceId": instance.instance_id(),
            "version": instance.app_version,
            "reason": reason,
            "host": task.hostname,
            "slaveId": task.agent_id,
        }),
    ))
}

/// `api_post_event` for a written app.
pub fn api_post(app: &AppDefinition, uri: &str, client_ip: &str) -> Arc<BusEvent> {
    event(
        "api_post_event",
        json!({"clientIp": client_ip, "uri": uri, "appDefinition": app}),
    )
}

/// `app_terminated_event`: a deleted app's last instance is gone.
pub fn app_terminated(app: &PathId) -> Arc<BusEvent> {
    event("app_terminated_event", json!({"appId": app}))
}

/// `group_change_success`.
pub fn group_change_success(group: &PathId, version: Timestamp) -> Arc<BusEvent> {
    event(
        "group_change_success",
        json!({"groupId": group, "version": version}),
    )
}

/// `scheduler_registered_event` / `scheduler_reregistered_event`.
pub fn registered(first: bool, framework_id: &str, master: &str) -> Arc<BusEvent> {
    if first {
        event(
            "scheduler_registered_event",
            json!({"frameworkId": framework_id, "master": master}),
        )
    } else {
        event("scheduler_reregistered_event", json!({"master": master}))
    }
}

/// `scheduler_disconnected_event`.
pub fn disconnected() -> Arc<BusEvent> {
    event("scheduler_disconnected_event", json!({}))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn fields(e: &BusEvent) -> Value {
        serde_json::from_str(&e.data).unwrap()
    }

    fn assert_has(e: &BusEvent, names: &[&str]) {
        let v = fields(e);
        for name in names.iter().chain(&["eventType", "timestamp"]) {
            assert!(v.get(*name).is_some(), "{} lacks {name}: {v}", e.event_type);
        }
    }

    fn running_instance() -> Instance {
        use crate::state::instance::InstanceTask;
        let app = PathId::parse("/prod/web", &PathId::root()).unwrap();
        let mut i = Instance::schedule(app, Timestamp::from_millis(1), Timestamp::from_millis(1));
        i.task = Some(InstanceTask {
            condition: Condition::Running,
            started_at: Some(Timestamp::from_millis(2)),
            healthy: Some(true),
            ..InstanceTask::launched(
                i.next_task_id(),
                "S1".into(),
                "127.0.0.2".into(),
                vec![31000],
                Timestamp::from_millis(1),
            )
        });
        i
    }

    /// The fields marathon-lb, go-marathon (`events.go`) and the Python
    /// client (`models/events.py`) read, per the reference's table.
    #[test]
    fn events_carry_the_fields_clients_read() {
        let i = running_instance();
        let task_id = i.task.as_ref().unwrap().task_id.clone();
        assert_has(
            &status_update(&i, Some("ok")).unwrap(),
            &[
                "slaveId",
                "taskId",
                "taskStatus",
                "message",
                "appId",
                "host",
                "ipAddresses",
                "ports",
                "version",
            ],
        );
        assert_has(
            &instance_changed(&i),
            &[
                "instanceId",
                "condition",
                "runSpecId",
                "agentId",
                "host",
                "runSpecVersion",
            ],
        );
        assert_has(
            &health_changed(&i, &task_id, true),
            &["appId", "instanceId", "taskId", "version", "alive"],
        );
        assert_has(
            &unhealthy_kill(&i, "FailedHealthChecks").unwrap(),
            &[
                "appId",
                "taskId",
                "instanceId",
                "version",
                "reason",
                "host",
                "slaveId",
            ],
        );
        let app = crate::state::app::AppDefinition::new(
            PathId::parse("/prod/web", &PathId::root()).unwrap(),
            &crate::state::app::AppDefaults::default(),
        );
        assert_has(
            &api_post(&app, "/v2/apps", "127.0.0.1"),
            &["clientIp", "uri", "appDefinition"],
        );
        assert_has(&app_terminated(&app.id), &["appId"]);
        assert_has(
            &group_change_success(&app.id, Timestamp::from_millis(1)),
            &["groupId", "version"],
        );
        assert_has(
            &registered(true, "fw", "127.0.0.1:5050"),
            &["frameworkId", "master"],
        );
        assert_has(&registered(false, "fw", "127.0.0.1:5050"), &["master"]);
        let d = Deployment {
            id: "d".into(),
            version: Timestamp::from_millis(1),
            steps: vec![vec![(app.id.clone(), DeploymentAction::ScaleApplication)]],
            current_step: 0,
            started_at: Timestamp::from_millis(1),
            step_started_at: None,
            failure: None,
        };
        assert_has(&deployment_success(&d), &["id", "plan"]);
        assert_has(&deployment_failed(&d, "why"), &["id", "plan", "reason"]);
        let info = deployment_step("deployment_info", &d);
        assert_has(&info, &["plan", "currentStep"]);
        let v = fields(&info);
        assert_eq!(v["currentStep"]["actions"][0]["action"], "ScaleApplication");
        assert_eq!(
            fields(&status_update(&i, None).unwrap())["taskStatus"],
            "TASK_RUNNING"
        );
        assert_eq!(fields(&instance_changed(&i))["condition"], "Running");
    }

    #[test]
    fn every_event_carries_its_type_and_a_timestamp_on_one_line() {
        let e = app_terminated(&PathId::parse("/a", &PathId::root()).unwrap());
        assert!(!e.data.contains('\n'));
        let v: Value = serde_json::from_str(&e.data).unwrap();
        assert_eq!(v["eventType"], "app_terminated_event");
        assert_eq!(v["appId"], "/a");
        assert!(v["timestamp"].as_str().unwrap().ends_with('Z'));
    }

    #[test]
    fn deployment_events_carry_the_light_plan_and_the_current_step() {
        let d = Deployment {
            id: "d1".into(),
            version: Timestamp::from_millis(0),
            steps: vec![
                vec![(
                    PathId::parse("/db", &PathId::root()).unwrap(),
                    DeploymentAction::StartApplication,
                )],
                vec![(
                    PathId::parse("/web", &PathId::root()).unwrap(),
                    DeploymentAction::StartApplication,
                )],
            ],
            current_step: 1,
            started_at: Timestamp::from_millis(0),
            step_started_at: None,
            failure: None,
        };
        let v: Value = serde_json::from_str(&deployment_step("deployment_info", &d).data).unwrap();
        assert_eq!(v["plan"]["id"], "d1");
        assert_eq!(
            v["plan"]["steps"][0]["actions"][0]["action"],
            "StartApplication"
        );
        assert_eq!(v["currentStep"]["actions"][0]["app"], "/web");
        assert_eq!(
            v["plan"]["original"]["apps"],
            json!([]),
            "light plan, groups left empty"
        );
    }
}
