//! How far a deployment is, as a pure function of what the API shows: its
//! entry in `/v2/deployments` (steps, current step, readiness results)
//! and each affected app (`/v2/apps/{id}`: `instances`, health checks,
//! tasks with their version and health).
//!
//! An app's instance counts once it runs the app's current configuration
//! (`version` not older than `versionInfo.lastConfigChangeAt`), is
//! `TASK_RUNNING`, passes every health check when it has some, and is not
//! reported not ready by a readiness check — what Baton (and Marathon)
//! wait for before a step is done. A stopped app counts once it is gone.

use std::collections::BTreeMap;

use serde_json::Value;

/// Where a step is.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum StepState {
    /// Completed.
    Done,
    /// Being carried out.
    Current,
    /// Not started.
    Waiting,
}

impl StepState {
    fn word(self) -> &'static str {
        match self {
            StepState::Done => "done",
            StepState::Current => "in progress",
            StepState::Waiting => "waiting",
        }
    }
}

/// One app of a step.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct AppProgress {
    /// The app id.
    pub app: String,
    /// Marathon's action (`StartApplication`, `ScaleApplication`, ...).
    pub action: String,
    /// Instances there as wanted.
    pub done: u64,
    /// Instances wanted.
    pub wanted: u64,
    /// What `done` counts: `healthy`, `running`, or `stopped`.
    pub unit: &'static str,
}

/// One step of a deployment.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct StepProgress {
    /// 1-based.
    pub number: usize,
    /// Steps in the deployment.
    pub total: usize,
    /// Done, current or waiting.
    pub state: StepState,
    /// Its apps.
    pub apps: Vec<AppProgress>,
}

impl StepProgress {
    /// Instances there and wanted over the step's apps (a bar's position
    /// and length).
    pub fn counts(&self) -> (u64, u64) {
        self.apps
            .iter()
            .fold((0, 0), |(d, w), a| (d + a.done, w + a.wanted))
    }

    /// `step 1/2 in progress: StartApplication /web 2/3 running`.
    pub fn summary(&self) -> String {
        let apps: Vec<String> = self.apps.iter().map(app_text).collect();
        format!(
            "step {}/{} {}: {}",
            self.number,
            self.total,
            self.state.word(),
            apps.join(", ")
        )
    }
}

fn app_text(a: &AppProgress) -> String {
    if a.unit == "stopped" {
        let word = if a.done >= a.wanted {
            "stopped"
        } else {
            "stopping"
        };
        return format!("{} {} {word}", a.action, a.app);
    }
    format!("{} {} {}/{} {}", a.action, a.app, a.done, a.wanted, a.unit)
}

/// The steps as `(action, app)` lists.
pub fn steps_of(deployment: &Value) -> Vec<Vec<(String, String)>> {
    let text = |v: &Value, k: &str| v.get(k).and_then(Value::as_str).unwrap_or("").to_string();
    deployment
        .get("steps")
        .and_then(Value::as_array)
        .map(|steps| {
            steps
                .iter()
                .map(|s| {
                    // Marathon before 1.1.2 wrote steps as bare arrays of
                    // actions named by `type`.
                    let actions = s.get("actions").or(Some(s)).and_then(Value::as_array);
                    actions
                        .map(|a| {
                            a.iter()
                                .map(|x| {
                                    let action = Some(text(x, "action"))
                                        .filter(|a| !a.is_empty())
                                        .unwrap_or_else(|| text(x, "type"));
                                    // A pod's action names it as `pod`.
                                    let id = Some(text(x, "app"))
                                        .filter(|a| !a.is_empty())
                                        .unwrap_or_else(|| text(x, "pod"));
                                    (action, id)
                                })
                                .collect()
                        })
                        .unwrap_or_default()
                })
                .collect()
        })
        .unwrap_or_default()
}

/// Every app the deployment touches, in step order, once each.
pub fn affected_apps(deployment: &Value) -> Vec<String> {
    let mut out: Vec<String> = Vec::new();
    for (_, app) in steps_of(deployment).into_iter().flatten() {
        if !out.contains(&app) {
            out.push(app);
        }
    }
    out
}

/// The 1-based current step.
pub fn current_step(deployment: &Value) -> usize {
    deployment
        .get("currentStep")
        .and_then(Value::as_u64)
        .unwrap_or(1) as usize
}

/// Task ids a readiness check reports not ready, from the deployment's
/// `currentActions`.
pub fn not_ready(deployment: &Value) -> Vec<String> {
    deployment
        .get("currentActions")
        .and_then(Value::as_array)
        .into_iter()
        .flatten()
        .filter_map(|a| a.get("readinessCheckResults").and_then(Value::as_array))
        .flatten()
        .filter(|r| r.get("ready") == Some(&Value::Bool(false)))
        .filter_map(|r| r.get("taskId").and_then(Value::as_str).map(str::to_string))
        .collect()
}

/// Whether `task` counts for `app`: current configuration, running,
/// healthy when checked, not reported not ready.
fn task_counts(app: &Value, task: &Value, not_ready: &[String]) -> bool {
    let config = app
        .pointer("/versionInfo/lastConfigChangeAt")
        .or_else(|| app.get("version"))
        .and_then(Value::as_str);
    let version_ok = match (config, task.get("version").and_then(Value::as_str)) {
        // ISO-8601 in one format: text order is time order.
        (Some(config), Some(version)) => version >= config,
        _ => true,
    };
    let checked = app
        .get("healthChecks")
        .and_then(Value::as_array)
        .is_some_and(|c| !c.is_empty());
    let healthy = !checked
        || task
            .get("healthCheckResults")
            .and_then(Value::as_array)
            .is_some_and(|r| {
                !r.is_empty() && r.iter().all(|c| c.get("alive") == Some(&Value::Bool(true)))
            });
    let id = task.get("id").and_then(Value::as_str).unwrap_or_default();
    version_ok
        && task.get("state").and_then(Value::as_str) == Some("TASK_RUNNING")
        && healthy
        && !not_ready.iter().any(|t| t == id)
}

/// A pod's `/v2/pods/{id}::status` as [`app_progress`] reads an app for
/// `action`: its wanted instances, and a running task per STABLE instance
/// (every container running, every checked one healthy) at the version
/// its `specReference` names. The pod's version is the one instances must
/// have reached, except for a scale: that moves the pod's version, not its
/// configuration's, which the instances keep (a pod shows no
/// `lastConfigChangeAt`).
pub fn pod_as_app(status: &Value, action: &str) -> Value {
    let version = match action.starts_with("Scale") {
        true => Value::Null,
        false => status
            .pointer("/spec/version")
            .cloned()
            .unwrap_or(Value::Null),
    };
    let tasks: Vec<Value> = status
        .get("instances")
        .and_then(Value::as_array)
        .into_iter()
        .flatten()
        .filter(|i| i.get("status").and_then(Value::as_str) == Some("STABLE"))
        .map(|i| {
            let version = i
                .get("specReference")
                .and_then(Value::as_str)
                .and_then(|r| r.rsplit_once("::versions/"))
                .map(|(_, v)| v);
            serde_json::json!({"id": i.get("id"), "state": "TASK_RUNNING", "version": version})
        })
        .collect();
    serde_json::json!({
        "instances": status.pointer("/spec/scaling/instances").cloned().unwrap_or(Value::Null),
        "version": version,
        "tasks": tasks,
    })
}

/// One app's progress for `action`; `app` is its `/v2/apps/{id}` `app`
/// object (a pod's: [`pod_as_app`]), `None` when it does not exist (or is
/// not readable).
pub fn app_progress(
    id: &str,
    action: &str,
    app: Option<&Value>,
    not_ready: &[String],
) -> AppProgress {
    let mut progress = AppProgress {
        app: id.to_string(),
        action: action.to_string(),
        done: 0,
        wanted: 0,
        unit: "running",
    };
    if action == "StopApplication" || action == "StopPod" {
        progress.unit = "stopped";
        progress.wanted = 1;
        progress.done = u64::from(app.is_none());
        return progress;
    }
    let Some(app) = app else {
        return progress;
    };
    if app
        .get("healthChecks")
        .and_then(Value::as_array)
        .is_some_and(|c| !c.is_empty())
    {
        progress.unit = "healthy";
    }
    progress.wanted = app.get("instances").and_then(Value::as_u64).unwrap_or(0);
    let ready = app
        .get("tasks")
        .and_then(Value::as_array)
        .into_iter()
        .flatten()
        .filter(|t| task_counts(app, t, not_ready))
        .count() as u64;
    progress.done = ready.min(progress.wanted);
    progress
}

/// Every step of `deployment` with its apps' progress (`apps`: each app
/// id's `app` object, `None` when absent). Steps before the current one
/// are shown complete.
pub fn progress(deployment: &Value, apps: &BTreeMap<String, Option<Value>>) -> Vec<StepProgress> {
    let steps = steps_of(deployment);
    let current = current_step(deployment);
    let not_ready = not_ready(deployment);
    let total = steps.len();
    steps
        .into_iter()
        .enumerate()
        .map(|(i, actions)| {
            let number = i + 1;
            let state = match number.cmp(&current) {
                std::cmp::Ordering::Less => StepState::Done,
                std::cmp::Ordering::Equal => StepState::Current,
                std::cmp::Ordering::Greater => StepState::Waiting,
            };
            let apps = actions
                .iter()
                .map(|(action, id)| {
                    let mut p = app_progress(
                        id,
                        action,
                        apps.get(id).and_then(Option::as_ref),
                        &not_ready,
                    );
                    if state == StepState::Done {
                        p.done = p.wanted;
                    }
                    p
                })
                .collect();
            StepProgress {
                number,
                total,
                state,
                apps,
            }
        })
        .collect()
}

/// The same steps, all complete: a deployment that left
/// `/v2/deployments` without failing.
pub fn completed(steps: &[StepProgress]) -> Vec<StepProgress> {
    steps
        .iter()
        .map(|s| StepProgress {
            state: StepState::Done,
            apps: s
                .apps
                .iter()
                .map(|a| AppProgress {
                    done: a.wanted,
                    ..a.clone()
                })
                .collect(),
            ..s.clone()
        })
        .collect()
}

/// The plain progress lines between two looks: one per app whose count
/// or step changed, and one per step that completed.
pub fn changes(before: &[StepProgress], after: &[StepProgress]) -> Vec<String> {
    let mut lines = Vec::new();
    for step in after {
        let old = before.iter().find(|s| s.number == step.number);
        for app in &step.apps {
            let was = old.and_then(|s| {
                s.apps
                    .iter()
                    .find(|a| a.app == app.app && a.action == app.action)
            });
            if was != Some(app)
                || old.is_none_or(|s| {
                    s.state == StepState::Waiting && step.state == StepState::Current
                })
            {
                lines.push(format!(
                    "step {}/{} {}",
                    step.number,
                    step.total,
                    app_text(app)
                ));
            }
        }
        if step.state == StepState::Done && old.is_none_or(|s| s.state != StepState::Done) {
            lines.push(format!("step {}/{} done", step.number, step.total));
        }
    }
    lines
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    fn deployment(current: u64) -> Value {
        json!({
            "id": "d1",
            "steps": [
                {"actions": [{"action": "StartApplication", "app": "/db"}]},
                {"actions": [{"action": "StartApplication", "app": "/web"},
                             {"action": "StopApplication", "app": "/old"}]},
            ],
            "currentActions": [{"action": "StartApplication", "app": "/web",
                "readinessCheckResults": [{"taskId": "web.3", "ready": false}]}],
            "currentStep": current,
            "totalSteps": 2,
        })
    }

    fn task(id: &str, version: &str, state: &str, alive: Option<bool>) -> Value {
        let results = alive.map_or_else(|| json!([]), |a| json!([{"alive": a}]));
        json!({"id": id, "version": version, "state": state, "healthCheckResults": results})
    }

    fn web() -> Value {
        json!({
            "id": "/web", "instances": 4, "version": "2024-01-02T00:00:00.000Z",
            "versionInfo": {"lastConfigChangeAt": "2024-01-02T00:00:00.000Z"},
            "healthChecks": [{"protocol": "HTTP"}],
            "tasks": [
                task("web.1", "2024-01-02T00:00:00.000Z", "TASK_RUNNING", Some(true)),
                task("web.2", "2024-01-02T00:00:00.000Z", "TASK_RUNNING", Some(false)),
                task("web.3", "2024-01-02T00:00:00.000Z", "TASK_RUNNING", Some(true)),
                task("old.1", "2024-01-01T00:00:00.000Z", "TASK_RUNNING", Some(true)),
                task("web.4", "2024-01-02T00:00:00.000Z", "TASK_STAGING", None),
            ],
        })
    }

    #[test]
    fn only_current_healthy_ready_running_instances_count() {
        let p = app_progress(
            "/web",
            "StartApplication",
            Some(&web()),
            &not_ready(&deployment(2)),
        );
        assert_eq!((p.done, p.wanted, p.unit), (1, 4, "healthy"));
        let no_checks = json!({"instances": 2, "tasks": [
            task("a", "2024", "TASK_RUNNING", None), task("b", "2024", "TASK_RUNNING", None),
            task("c", "2024", "TASK_RUNNING", None)]});
        let p = app_progress("/x", "ScaleApplication", Some(&no_checks), &[]);
        assert_eq!(
            (p.done, p.wanted, p.unit),
            (2, 2, "running"),
            "capped at wanted"
        );
        let p = app_progress("/gone", "StopApplication", None, &[]);
        assert_eq!((p.done, p.wanted, p.unit), (1, 1, "stopped"));
        let p = app_progress("/new", "StartApplication", None, &[]);
        assert_eq!((p.done, p.wanted), (0, 0));
    }

    #[test]
    fn steps_before_the_current_one_are_complete() {
        let apps = BTreeMap::from([
            (
                "/db".to_string(),
                Some(json!({"instances": 1, "tasks": []})),
            ),
            ("/web".to_string(), Some(web())),
            ("/old".to_string(), Some(json!({"instances": 1}))),
        ]);
        let steps = progress(&deployment(2), &apps);
        assert_eq!(steps.len(), 2);
        assert_eq!(steps[0].state, StepState::Done);
        assert_eq!(steps[0].counts(), (1, 1));
        assert_eq!(steps[1].state, StepState::Current);
        assert_eq!(steps[1].counts(), (1, 5));
        assert_eq!(
            steps[1].summary(),
            "step 2/2 in progress: StartApplication /web 1/4 healthy, StopApplication /old stopping"
        );
        let done = completed(&steps);
        assert!(done.iter().all(|s| s.state == StepState::Done));
        assert_eq!(done[1].counts(), (5, 5));
        let first = progress(&deployment(1), &apps);
        assert_eq!(first[0].state, StepState::Current);
        assert_eq!(first[0].counts(), (0, 1));
        assert_eq!(first[1].state, StepState::Waiting);
    }

    #[test]
    fn plain_lines_say_each_change_once() {
        let apps = BTreeMap::from([
            (
                "/db".to_string(),
                Some(json!({"instances": 1, "tasks": []})),
            ),
            (
                "/web".to_string(),
                Some(json!({"instances": 2, "tasks": []})),
            ),
            ("/old".to_string(), Some(json!({}))),
        ]);
        let start = progress(&deployment(1), &apps);
        assert_eq!(
            changes(&[], &start),
            vec![
                "step 1/2 StartApplication /db 0/1 running",
                "step 2/2 StartApplication /web 0/2 running",
                "step 2/2 StopApplication /old stopping",
            ]
        );
        assert!(changes(&start, &start).is_empty());
        let mut apps2 = apps.clone();
        apps2.insert(
            "/db".into(),
            Some(json!({"instances": 1, "tasks": [task("d", "x", "TASK_RUNNING", None)]})),
        );
        let db_up = progress(&deployment(1), &apps2);
        assert_eq!(
            changes(&start, &db_up),
            vec!["step 1/2 StartApplication /db 1/1 running"]
        );
        let stepped = progress(&deployment(2), &apps2);
        assert_eq!(
            changes(&db_up, &stepped),
            vec![
                "step 1/2 done",
                "step 2/2 StartApplication /web 0/2 running",
                "step 2/2 StopApplication /old stopping",
            ]
        );
        assert_eq!(
            changes(&stepped, &completed(&stepped)),
            vec![
                "step 2/2 StartApplication /web 2/2 running",
                "step 2/2 StopApplication /old stopped",
                "step 2/2 done",
            ]
        );
    }

    #[test]
    fn old_step_shapes_are_read() {
        let old = json!({"steps": [[{"type": "ScaleApplication", "app": "/a"}]], "currentStep": 1});
        assert_eq!(
            steps_of(&old),
            vec![vec![("ScaleApplication".to_string(), "/a".to_string())]]
        );
        assert_eq!(affected_apps(&deployment(1)), vec!["/db", "/web", "/old"]);
    }

    #[test]
    fn a_pod_counts_its_stable_instances_at_its_version() {
        let status = serde_json::json!({"spec": {"version": "v2", "scaling": {"instances": 3}},
            "instances": [
                {"id": "p.instance-1", "status": "STABLE", "specReference": "/v2/pods/p::versions/v2"},
                {"id": "p.instance-2", "status": "STABLE", "specReference": "/v2/pods/p::versions/v1"},
                {"id": "p.instance-3", "status": "STAGING", "specReference": "/v2/pods/p::versions/v2"}]});
        let app = pod_as_app(&status, "RestartPod");
        let p = app_progress("/p", "RestartPod", Some(&app), &[]);
        assert_eq!((p.done, p.wanted), (1, 3));
        // A scale moves the pod's version past its instances' (whose
        // configuration it leaves): every stable one counts.
        let mut scaled = status.clone();
        scaled["spec"]["version"] = "v3".into();
        let app = pod_as_app(&scaled, "ScalePod");
        let p = app_progress("/p", "ScalePod", Some(&app), &[]);
        assert_eq!((p.done, p.wanted), (2, 3));
    }
}
