//! Marathon's JSON for the events `/v2/events` streams
//! (shared/reference/marathon-api.md §1.8), rendered from the loop's typed
//! events once per event and shared by every subscriber.
//!
//! Every event has `eventType` and `timestamp`; the other fields are
//! Marathon's, plus the older names clients still read (`taskId` next to
//! `instanceId` in `health_status_changed_event`, for go-marathon).

use serde_json::{Value, json};

use super::shapes::ip_addresses;
use crate::reconcile::events::{BusEvent, Event};
use crate::reconcile::view::{Deployment, DeploymentAction};
use crate::state::app::PathId;
use crate::state::instance::{Condition, Instance};

/// The event as one line of JSON, rendered on first use.
pub fn render(event: &BusEvent) -> &str {
    event.rendered.get_or_init(|| {
        let mut body = match fields(&event.event) {
            Value::Object(map) => map,
            _ => serde_json::Map::new(),
        };
        body.insert("eventType".into(), json!(event.event_type()));
        body.insert("timestamp".into(), json!(event.at));
        Value::Object(body).to_string()
    })
}

fn step_json(d: &Deployment, step: &[(PathId, DeploymentAction)]) -> Value {
    json!({
        "actions": step
            .iter()
            .map(|(id, action)| d.action_json(id, *action))
            .collect::<Vec<_>>()
    })
}

/// The light plan of deployment events: `{id, steps, version}`, plus
/// empty `original` and `target` groups: Marathon 1.8+ dropped them, but the
/// Python `marathon` client still reads them and fails without.
fn plan_json(d: &Deployment) -> Value {
    let empty_group = json!({"id": "/", "apps": [], "groups": [], "pods": [], "dependencies": []});
    json!({
        "id": d.id,
        "steps": d.steps.iter().map(|s| step_json(d, s)).collect::<Vec<_>>(),
        "version": d.version,
        "original": empty_group,
        "target": empty_group,
    })
}

/// `deployment_info`, `deployment_step_success`, `deployment_step_failure`.
fn step_event(d: &Deployment, step: usize) -> Value {
    let current = d.steps.get(step).map_or(&[][..], Vec::as_slice);
    json!({"plan": plan_json(d), "currentStep": step_json(d, current)})
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

fn status_update(
    instance: &Instance,
    message: Option<&str>,
    container_task: Option<&str>,
) -> Value {
    let Some(task) = instance.task.as_ref() else {
        return json!({"appId": instance.app_id});
    };
    // A pod's container: its own task id and state, not the instance's sum.
    let container =
        container_task.and_then(|id| task.containers.as_ref()?.iter().find(|c| c.task_id == id));
    json!({
        "slaveId": task.agent_id,
        "taskId": container.map_or(task.task_id.as_str(), |c| c.task_id.as_str()),
        "taskStatus": container.map_or(task.shown_state(), |c| c.condition.mesos_state()),
        "message": message.unwrap_or_default(),
        "appId": instance.app_id,
        "host": task.hostname,
        "ipAddresses": ip_addresses(&task.hostname),
        "ports": task.host_ports,
        "version": instance.app_version,
    })
}

fn instance_changed(instance: &Instance) -> Value {
    let task = instance.task.as_ref();
    json!({
        "instanceId": instance.instance_id(),
        "condition": condition_name(instance.condition()),
        "runSpecId": instance.app_id,
        "agentId": task.map(|t| t.agent_id.as_str()),
        "host": task.map(|t| t.hostname.as_str()),
        "runSpecVersion": instance.app_version,
        "goal": format!("{:?}", instance.goal),
    })
}

fn unhealthy_kill(instance: &Instance, reason: &str) -> Value {
    let task = instance.task.as_ref();
    json!({
        "appId": instance.app_id,
        "taskId": task.map(|t| t.task_id.as_str()),
        "instanceId": instance.instance_id(),
        "version": instance.app_version,
        "reason": reason,
        "host": task.map(|t| t.hostname.as_str()),
        "slaveId": task.map(|t| t.agent_id.as_str()),
    })
}

/// The event's own fields.
fn fields(event: &Event) -> Value {
    match event {
        Event::StatusUpdate {
            instance,
            message,
            container_task,
        } => status_update(instance, message.as_deref(), container_task.as_deref()),
        Event::InstanceChanged(instance) => instance_changed(instance),
        Event::HealthChanged {
            instance,
            task_id,
            alive,
        } => json!({
            "appId": instance.app_id,
            "instanceId": instance.instance_id(),
            "taskId": task_id,
            "version": instance.app_version,
            "alive": alive,
        }),
        Event::UnhealthyKill { instance, reason } => unhealthy_kill(instance, reason),
        Event::DeploymentInfo { deployment, step }
        | Event::StepSuccess { deployment, step }
        | Event::StepFailure { deployment, step } => step_event(deployment, *step),
        Event::DeploymentSuccess(d) => json!({"id": d.id, "plan": plan_json(d)}),
        Event::DeploymentFailed { deployment, reason } => {
            json!({"id": deployment.id, "plan": plan_json(deployment), "reason": reason})
        }
        Event::AppTerminated(app) => json!({"appId": app}),
        Event::ApiPost {
            app,
            uri,
            client_ip,
        } => json!({"clientIp": client_ip, "uri": uri, "appDefinition": &**app}),
        Event::PodWritten { uri, client_ip, .. } => json!({"clientIp": client_ip, "uri": uri}),
        Event::GroupChangeSuccess { group, version } => {
            json!({"groupId": group, "version": version})
        }
        Event::Registered {
            first: true,
            framework_id,
            master,
        } => json!({"frameworkId": framework_id, "master": master}),
        Event::Registered { master, .. } => json!({"master": master}),
        Event::Disconnected => json!({}),
        Event::StreamAttached { remote } | Event::StreamDetached { remote } => {
            json!({"remoteAddress": remote})
        }
    }
}

#[cfg(test)]
mod tests {
    use std::sync::Arc;

    use super::*;
    use crate::state::app::{AppDefaults, AppDefinition, Timestamp};

    fn rendered(event: Event) -> Value {
        let bus = BusEvent::new(event, Timestamp::from_millis(1_000));
        serde_json::from_str(render(&bus)).unwrap()
    }

    fn assert_has(event: Event, names: &[&str]) {
        let kind = event.event_type();
        let v = rendered(event);
        assert_eq!(v["eventType"], kind);
        for name in names.iter().chain(&["eventType", "timestamp"]) {
            // Present and set: a field rendered as `null` is as good as
            // missing to a client.
            assert!(!v[*name].is_null(), "{kind} lacks {name}: {v}");
        }
    }

    fn running_instance() -> Arc<Instance> {
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
        Arc::new(i)
    }

    fn deployment(
        steps: Vec<Vec<(PathId, DeploymentAction)>>,
        current_step: usize,
    ) -> Arc<Deployment> {
        Arc::new(Deployment {
            id: "d1".into(),
            version: Timestamp::from_millis(0),
            steps,
            current_step,
            started_at: Timestamp::from_millis(0),
            step_started_at: None,
            failure: None,
            pods: Default::default(),
        })
    }

    /// The fields marathon-lb, go-marathon (`events.go`) and the Python
    /// client (`models/events.py`) read, per the reference's table.
    #[test]
    fn events_carry_the_fields_clients_read() {
        let i = running_instance();
        let task_id = i.task.as_ref().unwrap().task_id.clone();
        assert_has(
            Event::StatusUpdate {
                instance: i.clone(),
                message: Some("ok".into()),
                container_task: None,
            },
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
            Event::InstanceChanged(i.clone()),
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
            Event::HealthChanged {
                instance: i.clone(),
                task_id,
                alive: true,
            },
            &["appId", "instanceId", "taskId", "version", "alive"],
        );
        assert_has(
            Event::UnhealthyKill {
                instance: i.clone(),
                reason: "FailedHealthChecks",
            },
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
        let app = AppDefinition::new(
            PathId::parse("/prod/web", &PathId::root()).unwrap(),
            &AppDefaults::default(),
        );
        assert_has(
            Event::ApiPost {
                app: Arc::new(app.clone()),
                uri: "/v2/apps".into(),
                client_ip: "127.0.0.1".into(),
            },
            &["clientIp", "uri", "appDefinition"],
        );
        assert_has(Event::AppTerminated(app.id.clone()), &["appId"]);
        assert_has(
            Event::GroupChangeSuccess {
                group: app.id.clone(),
                version: Timestamp::from_millis(1),
            },
            &["groupId", "version"],
        );
        assert_has(
            Event::Registered {
                first: true,
                framework_id: "fw".into(),
                master: "127.0.0.1:5050".into(),
            },
            &["frameworkId", "master"],
        );
        assert_has(
            Event::Registered {
                first: false,
                framework_id: "fw".into(),
                master: "127.0.0.1:5050".into(),
            },
            &["master"],
        );
        let d = deployment(
            vec![vec![(app.id.clone(), DeploymentAction::ScaleApplication)]],
            0,
        );
        assert_has(Event::DeploymentSuccess(d.clone()), &["id", "plan"]);
        assert_has(
            Event::DeploymentFailed {
                deployment: d.clone(),
                reason: "why".into(),
            },
            &["id", "plan", "reason"],
        );
        let info = rendered(Event::DeploymentInfo {
            deployment: d,
            step: 0,
        });
        assert!(!info["plan"].is_null() && !info["currentStep"].is_null());
        assert_eq!(
            info["currentStep"]["actions"][0]["action"],
            "ScaleApplication"
        );
        assert_eq!(
            rendered(Event::StatusUpdate {
                instance: i.clone(),
                message: None,
                container_task: None,
            })["taskStatus"],
            "TASK_RUNNING"
        );
        assert_eq!(
            rendered(Event::InstanceChanged(i.clone()))["condition"],
            "Running"
        );
        // A pod's container update names the container's task and state.
        let mut pod = (*i).clone();
        let task = pod.task.as_mut().unwrap();
        task.containers = Some(Box::new(vec![
            crate::state::instance::ContainerTask {
                name: "a".into(),
                task_id: "p.instance-u.a.1".into(),
                condition: Condition::Running,
                checked: false,
                healthy: None,
                message: None,
            },
            crate::state::instance::ContainerTask {
                name: "b".into(),
                task_id: "p.instance-u.b.1".into(),
                condition: Condition::Failed,
                checked: false,
                healthy: None,
                message: None,
            },
        ]));
        let event = rendered(Event::StatusUpdate {
            instance: Arc::new(pod),
            message: None,
            container_task: Some("p.instance-u.b.1".into()),
        });
        assert_eq!(event["taskId"], "p.instance-u.b.1");
        assert_eq!(event["taskStatus"], "TASK_FAILED");
    }

    #[test]
    fn every_event_carries_its_type_and_a_timestamp_on_one_line() {
        let bus = BusEvent::new(
            Event::AppTerminated(PathId::parse("/a", &PathId::root()).unwrap()),
            Timestamp::from_millis(1_000),
        );
        let text = render(&bus);
        assert!(!text.contains('\n'));
        let v: Value = serde_json::from_str(text).unwrap();
        assert_eq!(v["eventType"], "app_terminated_event");
        assert_eq!(v["appId"], "/a");
        assert!(v["timestamp"].as_str().unwrap().ends_with('Z'));
        assert!(std::ptr::eq(render(&bus), text), "rendered once");
    }

    #[test]
    fn deployment_events_carry_the_light_plan_and_the_current_step() {
        let d = deployment(
            vec![
                vec![(
                    PathId::parse("/db", &PathId::root()).unwrap(),
                    DeploymentAction::StartApplication,
                )],
                vec![(
                    PathId::parse("/web", &PathId::root()).unwrap(),
                    DeploymentAction::StartApplication,
                )],
            ],
            1,
        );
        let v = rendered(Event::DeploymentInfo {
            deployment: d,
            step: 1,
        });
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
