//! Health checks and rolling deployments on the embedded local cluster,
//! watched through `/v2/events`: a sick instance is replaced before it is
//! killed; a rolling upgrade keeps the health floor and the capacity cap
//! while a client sees no failed request; a version that never becomes
//! healthy keeps the old instances, says why, and can be rolled back.

use std::collections::{BTreeMap, BTreeSet};
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::time::Duration;

use baton_e2e::baton::{BatonProcess, Master};
use baton_e2e::events::EventLog;
use baton_e2e::{apps, procs, wait};
use reqwest::Method;
use serde_json::{Value, json};

const DEADLINE: Duration = Duration::from_secs(90);

fn app(id: &str, marker: &str, instances: u32, extra: Value) -> Value {
    let mut app = json!({
        "id": id,
        "cmd": apps::sick_well_server(marker),
        "cpus": 0.05, "mem": 32, "instances": instances,
        "env": {"VERSION": "v1"},
        "healthChecks": [{
            "protocol": "HTTP", "path": "/health", "portIndex": 0,
            "gracePeriodSeconds": 10, "intervalSeconds": 1, "timeoutSeconds": 1,
            "maxConsecutiveFailures": 2,
        }],
        "backoffSeconds": 1,
    });
    if let (Some(app), Some(extra)) = (app.as_object_mut(), extra.as_object()) {
        for (k, v) in extra {
            app.insert(k.clone(), v.clone());
        }
    }
    app
}

/// POSTs `app` and waits until its `n` instances are healthy; their task ids.
async fn deploy_healthy(baton: &BatonProcess, app: &Value, n: u64) -> BTreeSet<String> {
    let id = app["id"].as_str().unwrap_or_default().to_string();
    let (status, body) = baton.request(Method::POST, "/v2/apps", Some(app)).await;
    assert_eq!(status, 201, "{body}");
    apps::wait_healthy(baton, &id, n, DEADLINE).await;
    task_ids(&baton.tasks(&id).await)
}

/// PUTs a change to `id`; the deployment's id.
async fn change(baton: &BatonProcess, id: &str, body: Value) -> String {
    let (status, answer) = baton
        .request(Method::PUT, &format!("/v2/apps{id}"), Some(&body))
        .await;
    assert_eq!(status, 200, "{answer}");
    answer["deploymentId"].as_str().unwrap().to_string()
}

fn task_ids(tasks: &[Value]) -> BTreeSet<String> {
    tasks
        .iter()
        .map(|t| t["id"].as_str().unwrap_or_default().to_string())
        .collect()
}

fn task_url(task: &Value, path: &str) -> String {
    format!(
        "http://{}:{}{path}",
        task["host"].as_str().unwrap_or_default(),
        task["ports"][0]
    )
}

/// The position of the first event matching `predicate`.
fn position(events: &[Value], predicate: impl Fn(&Value) -> bool) -> Option<usize> {
    events.iter().position(predicate)
}

async fn delete_and_stop(baton: BatonProcess, ids: &[&str], marker: &str) {
    for id in ids {
        let (status, body) = baton
            .request(Method::DELETE, &format!("/v2/apps{id}?force=true"), None)
            .await;
        assert_eq!(status, 200, "{body}");
    }
    wait::until(DEADLINE, "the apps' processes to end", || async {
        procs::with_marker(marker).is_empty().then_some(())
    })
    .await;
    baton.stop().await;
    procs::assert_all_gone(marker).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_sick_instance_is_replaced_and_its_replacement_is_healthy_before_it_is_killed() {
    baton_e2e::init_tracing();
    let marker = procs::marker("health-replace");
    let dir = tempfile::tempdir().unwrap();
    let baton = BatonProcess::start(Master::Local, dir.path(), &[]).await;
    let id = "/health/web";
    deploy_healthy(&baton, &app(id, &marker, 3, json!({})), 3).await;
    let events = EventLog::attach(&baton.url).await;
    let tasks = baton.wait_running(id, 3, DEADLINE).await;
    let sick = tasks[0]["id"].as_str().unwrap().to_string();
    let r = reqwest::get(task_url(&tasks[0], "/sick")).await.unwrap();
    assert!(r.status().is_success());

    events
        .wait_for("the sick task's kill", |e| {
            e["eventType"] == "status_update_event"
                && e["taskId"] == sick.as_str()
                && e["taskStatus"] == "TASK_KILLED"
        })
        .await;
    let log = events.all();
    let retired = position(&log, |e| {
        e["eventType"] == "unhealthy_instance_kill_event" && e["taskId"] == sick.as_str()
    })
    .expect("an unhealthy_instance_kill_event for the sick task");
    let killing = position(&log, |e| {
        e["eventType"] == "status_update_event"
            && e["taskId"] == sick.as_str()
            && matches!(
                e["taskStatus"].as_str(),
                Some("TASK_KILLING" | "TASK_KILLED")
            )
    })
    .unwrap();
    let replacement_healthy = position(&log, |e| {
        e["eventType"] == "health_status_changed_event"
            && e["alive"] == true
            && e["taskId"] != sick.as_str()
    })
    .expect("a replacement became healthy");
    assert!(
        retired < replacement_healthy && replacement_healthy < killing,
        "replacement healthy (event {replacement_healthy}) before the kill (event {killing}): {log:#?}"
    );
    apps::wait_healthy(&baton, id, 3, DEADLINE).await;
    let running = baton.wait_running(id, 3, DEADLINE).await;
    assert!(running.iter().all(|t| t["id"] != sick.as_str()));
    // Each task shows its check's result (polled: a check can miss its
    // 1 s timeout on a loaded machine and flip for a moment).
    let results = wait::until(DEADLINE, "every task's health result alive", || async {
        let (_, app) = baton.get(&format!("/v2/apps{id}")).await;
        let tasks = app["app"]["tasks"].as_array()?.clone();
        let results: Vec<Value> = tasks
            .iter()
            .map(|t| t["healthCheckResults"][0].clone())
            .collect();
        (results.len() == 3 && results.iter().all(|r| r["alive"] == true)).then_some(results)
    })
    .await;
    for r in &results {
        assert!(
            r["instanceId"].is_string() && r["taskId"].is_string(),
            "{r}"
        );
        assert!(r["lastSuccess"].is_string(), "{r}");
    }
    drop(events);
    delete_and_stop(baton, &[id], &marker).await;
}

/// Healthy and running task ids from the event stream, replayed in order.
#[derive(Default)]
struct Replay {
    running: BTreeSet<String>,
    healthy: BTreeSet<String>,
    min_healthy: Option<usize>,
    max_running: usize,
}

impl Replay {
    fn apply(&mut self, e: &Value, app: &str) {
        let task = e["taskId"].as_str().unwrap_or_default().to_string();
        match e["eventType"].as_str() {
            Some("status_update_event") if e["appId"] == app => match e["taskStatus"].as_str() {
                Some("TASK_RUNNING") => {
                    self.running.insert(task);
                }
                Some("TASK_STAGING" | "TASK_STARTING") => {}
                _ => {
                    self.running.remove(&task);
                    self.healthy.remove(&task);
                }
            },
            Some("health_status_changed_event") if e["appId"] == app => {
                if e["alive"] == true {
                    self.healthy.insert(task);
                } else {
                    self.healthy.remove(&task);
                }
            }
            _ => return,
        }
        self.max_running = self.max_running.max(self.running.len());
        self.min_healthy = Some(
            self.min_healthy
                .map_or(self.healthy.len(), |m| m.min(self.healthy.len())),
        );
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_rolling_upgrade_keeps_the_health_floor_and_the_cap_and_no_request_fails() {
    baton_e2e::init_tracing();
    let marker = procs::marker("rolling");
    let dir = tempfile::tempdir().unwrap();
    let baton = BatonProcess::start(Master::Local, dir.path(), &[]).await;
    let id = "/rolling";
    let strategy =
        json!({"upgradeStrategy": {"minimumHealthCapacity": 0.5, "maximumOverCapacity": 0.25}});
    let before = deploy_healthy(&baton, &app(id, &marker, 4, strategy), 4).await;
    let events = EventLog::attach(&baton.url).await;

    // A client sends requests throughout, each to a task the task list
    // shows healthy right now.
    let stop = Arc::new(AtomicBool::new(false));
    let (sent, failed) = (Arc::new(AtomicU64::new(0)), Arc::new(AtomicU64::new(0)));
    let client = {
        let (stop, sent, failed, base) = (
            stop.clone(),
            sent.clone(),
            failed.clone(),
            baton.url.clone(),
        );
        tokio::spawn(async move {
            let http = reqwest::Client::builder()
                .timeout(Duration::from_secs(5))
                .build()
                .unwrap();
            let mut failures = Vec::new();
            for _ in 0..100_000 {
                if stop.load(Ordering::Relaxed) {
                    break;
                }
                let Ok(r) = http
                    .get(format!("{base}/v2/apps/rolling/tasks"))
                    .send()
                    .await
                else {
                    continue;
                };
                let Ok(list) = r.json::<Value>().await else {
                    continue;
                };
                let healthy: Vec<Value> = list["tasks"]
                    .as_array()
                    .cloned()
                    .unwrap_or_default()
                    .into_iter()
                    .filter(|t| {
                        t["state"] == "TASK_RUNNING" && t["healthCheckResults"][0]["alive"] == true
                    })
                    .collect();
                for task in healthy {
                    sent.fetch_add(1, Ordering::Relaxed);
                    match http.get(task_url(&task, "/")).send().await {
                        Ok(r) if r.status().is_success() => {}
                        other => {
                            failed.fetch_add(1, Ordering::Relaxed);
                            failures.push(format!("{}: {other:?}", task["id"]));
                        }
                    }
                }
            }
            failures
        })
    };

    let deployment = change(&baton, id, json!({"env": {"VERSION": "v2"}})).await;
    events
        .wait_for("the deployment to succeed", |e| {
            e["eventType"] == "deployment_success" && e["id"] == deployment.as_str()
        })
        .await;
    stop.store(true, Ordering::Relaxed);
    let failures = client.await.unwrap();

    // Replay the stream from the 4 healthy v1 tasks.
    let mut replay = Replay {
        running: before.clone(),
        healthy: before.clone(),
        ..Replay::default()
    };
    for e in events.all() {
        replay.apply(&e, id);
        if std::env::var("REPLAY_DEBUG").is_ok() {
            println!(
                "{} {} {} -> running {} healthy {}",
                e["eventType"],
                e["taskId"],
                e["taskStatus"],
                replay.running.len(),
                replay.healthy.len()
            );
        }
    }
    println!(
        "rolling upgrade: min healthy {:?}, max running {}, requests {} sent / {} failed",
        replay.min_healthy,
        replay.max_running,
        sent.load(Ordering::Relaxed),
        failed.load(Ordering::Relaxed)
    );
    assert!(
        replay.min_healthy.unwrap_or(4) >= 2,
        "healthy never below ceil(4 × 0.5)"
    );
    assert!(
        replay.max_running <= 5,
        "running never above floor(4 × 1.25)"
    );
    assert!(failures.is_empty(), "failed requests: {failures:?}");
    assert!(sent.load(Ordering::Relaxed) > 0);
    let after = baton.wait_running(id, 4, DEADLINE).await;
    for task in &after {
        assert!(
            !before.contains(task["id"].as_str().unwrap()),
            "every instance replaced"
        );
        let body = reqwest::get(task_url(task, "/"))
            .await
            .unwrap()
            .text()
            .await
            .unwrap();
        assert_eq!(body, "v2");
    }
    drop(events);
    delete_and_stop(baton, &[id], &marker).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_version_that_never_gets_healthy_keeps_the_old_instances_says_why_and_rolls_back() {
    baton_e2e::init_tracing();
    let marker = procs::marker("broken");
    let dir = tempfile::tempdir().unwrap();
    let baton = BatonProcess::start(Master::Local, dir.path(), &[]).await;
    let id = "/broken";
    let extra = json!({
        "upgradeStrategy": {"minimumHealthCapacity": 1.0, "maximumOverCapacity": 0.5},
        "labels": {"BATON_DEPLOYMENT_TIMEOUT_SECONDS": "8"},
    });
    let old = deploy_healthy(&baton, &app(id, &marker, 2, extra), 2).await;
    let events = EventLog::attach(&baton.url).await;
    let deployment = change(&baton, id, json!({"env": {"VERSION": "v2", "BROKEN": "1"}})).await;
    let failed = events
        .wait_for("deployment_failed", |e| {
            e["eventType"] == "deployment_failed" && e["id"] == deployment.as_str()
        })
        .await;
    println!("deployment_failed: {failed}");
    let reason = failed["reason"].as_str().unwrap_or_default();
    assert!(reason.contains("500"), "the cause is named: {failed}");
    let (_, deployments) = baton.get("/v2/deployments").await;
    let listed = deployments
        .as_array()
        .unwrap()
        .iter()
        .find(|d| d["id"] == deployment.as_str())
        .cloned()
        .expect("the failed deployment is still listed");
    assert!(listed["failure"]["reason"].is_string(), "{listed}");
    // No old instance was killed.
    let log = events.all();
    for task in &old {
        assert!(
            !log.iter().any(|e| e["eventType"] == "status_update_event"
                && e["taskId"] == task.as_str()
                && e["taskStatus"] != "TASK_RUNNING"),
            "old task {task} was touched: {log:#?}"
        );
    }
    assert_eq!(
        apps::health_counts(&baton, id).await.healthy,
        2,
        "the old ones keep serving"
    );

    // DELETE the deployment: back to v1.
    let (status, body) = baton
        .request(
            Method::DELETE,
            &format!("/v2/deployments/{deployment}"),
            None,
        )
        .await;
    assert_eq!(status, 200, "{body}");
    let rollback = body["deploymentId"].as_str().unwrap().to_string();
    events
        .wait_for("the rollback to succeed", |e| {
            e["eventType"] == "deployment_success" && e["id"] == rollback.as_str()
        })
        .await;
    let (_, app) = baton.get(&format!("/v2/apps{id}")).await;
    assert_eq!(app["app"]["env"]["VERSION"], "v1", "{app}");
    let running = baton.wait_running(id, 2, DEADLINE).await;
    let ids: BTreeMap<String, Value> = running
        .iter()
        .map(|t| (t["id"].as_str().unwrap().to_string(), t.clone()))
        .collect();
    assert!(
        ids.keys().all(|t| old.contains(t)),
        "the old instances survived: {ids:?}"
    );
    drop(events);
    delete_and_stop(baton, &[id], &marker).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn kill9_in_the_middle_of_a_rolling_upgrade_resumes_it_without_duplicates_or_losses() {
    baton_e2e::init_tracing();
    let marker = procs::marker("resume");
    let dir = tempfile::tempdir().unwrap();
    let mesos = baton_e2e::cluster::MesosLocalProcess::start(
        &dir.path().join("mesos"),
        mesos_proto::Encoding::Protobuf,
    )
    .await;
    let mut baton = BatonProcess::start(
        Master::Url(mesos.url.clone()),
        &dir.path().join("baton"),
        &[],
    )
    .await;
    let id = "/resume";
    let strategy =
        json!({"upgradeStrategy": {"minimumHealthCapacity": 1.0, "maximumOverCapacity": 0.5}});
    let old = deploy_healthy(&baton, &app(id, &marker, 4, strategy), 4).await;
    let events = EventLog::attach(&baton.url).await;
    change(&baton, id, json!({"env": {"VERSION": "v2"}})).await;
    // Mid-way: a new instance is healthy, and an old one is on its way out.
    events
        .wait_for("a new task healthy", |e| {
            e["eventType"] == "health_status_changed_event"
                && e["alive"] == true
                && !old.contains(e["taskId"].as_str().unwrap_or_default())
        })
        .await;
    drop(events);
    baton.kill9().await;
    let baton = baton.restart().await;

    wait::until(
        DEADLINE,
        "the deployment to finish after the restart",
        || async {
            let (_, deployments) = baton.get("/v2/deployments").await;
            deployments
                .as_array()
                .is_some_and(Vec::is_empty)
                .then_some(())
        },
    )
    .await;
    apps::wait_healthy(&baton, id, 4, DEADLINE).await;
    let tasks = baton.wait_running(id, 4, DEADLINE).await;
    for task in &tasks {
        assert!(
            !old.contains(task["id"].as_str().unwrap()),
            "all on the new version: {task}"
        );
        let body = reqwest::get(task_url(task, "/"))
            .await
            .unwrap()
            .text()
            .await
            .unwrap();
        assert_eq!(body, "v2");
    }
    // Mesos agrees: exactly 4 tasks of the app run, none twice; and every
    // instance ever launched is one of the old 4 or at most 4 new (one
    // incarnation each: nothing was launched again because of the crash).
    let state = mesos.state().await;
    let mut running: Vec<String> = Vec::new();
    let mut launched: BTreeSet<String> = BTreeSet::new();
    for framework in state["frameworks"].as_array().unwrap() {
        for key in ["tasks", "completed_tasks"] {
            for t in framework[key].as_array().cloned().unwrap_or_default() {
                let task_id = t["id"].as_str().unwrap_or_default().to_string();
                if !task_id.starts_with("resume.") {
                    continue;
                }
                if t["state"] == "TASK_RUNNING" {
                    running.push(task_id.clone());
                }
                launched.insert(task_id);
            }
        }
    }
    running.sort();
    let mut expected: Vec<String> = tasks
        .iter()
        .map(|t| t["id"].as_str().unwrap().to_string())
        .collect();
    expected.sort();
    assert_eq!(running, expected, "{state}");
    let new_launched: Vec<&String> = launched.iter().filter(|t| !old.contains(*t)).collect();
    assert_eq!(
        new_launched.len(),
        4,
        "one launch per new instance: {new_launched:?}"
    );
    delete_and_stop(baton, &[id], &marker).await;
    mesos.stop().await;
    procs::assert_all_gone(&marker).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn readiness_checks_gate_the_deployment_and_show_in_it() {
    baton_e2e::init_tracing();
    let marker = procs::marker("readiness");
    let dir = tempfile::tempdir().unwrap();
    let baton = BatonProcess::start(Master::Local, dir.path(), &[]).await;
    let id = "/ready";
    let extra = json!({
        "portDefinitions": [{"port": 0, "name": "http"}],
        "readinessChecks": [{
            "name": "warm", "protocol": "HTTP", "path": "/ready", "portName": "http",
            "intervalSeconds": 2, "timeoutSeconds": 1, "httpStatusCodesForReady": [200],
            "preserveLastResponse": true,
        }],
        "upgradeStrategy": {"minimumHealthCapacity": 1.0, "maximumOverCapacity": 1.0},
    });
    let (status, body) = baton
        .request(Method::POST, "/v2/apps", Some(&app(id, &marker, 1, extra)))
        .await;
    assert_eq!(status, 201, "{body}");
    wait::until(DEADLINE, "the first deployment to finish", || async {
        let (_, d) = baton.get("/v2/deployments").await;
        d.as_array().is_some_and(Vec::is_empty).then_some(())
    })
    .await;
    let old = baton.wait_running(id, 1, DEADLINE).await[0]["id"]
        .as_str()
        .unwrap()
        .to_string();
    let events = EventLog::attach(&baton.url).await;
    let deployment = change(
        &baton,
        id,
        json!({"env": {"VERSION": "v2", "READY_AFTER": "5"}}),
    )
    .await;
    // While the new task warms up, the deployment shows it not ready.
    let not_ready = wait::until(DEADLINE, "a not-ready result in the deployment", || async {
        let (_, d) = baton.get("/v2/deployments").await;
        let results = d
            .as_array()?
            .iter()
            .find(|d| d["id"] == deployment.as_str())?["currentActions"][0]["readinessCheckResults"]
            .as_array()?
            .clone();
        results
            .into_iter()
            .find(|r| r["ready"] == false && r["taskId"] != old.as_str())
    })
    .await;
    assert_eq!(not_ready["name"], "warm", "{not_ready}");
    // 503 from the warming server, or Marathon's 504 placeholder when it
    // was not even listening yet.
    let status = not_ready["lastResponse"]["status"].as_u64();
    assert!(matches!(status, Some(503 | 504)), "{not_ready}");
    let tasks = baton.tasks(id).await;
    assert!(
        tasks
            .iter()
            .any(|t| t["id"] == old.as_str() && t["state"] == "TASK_RUNNING"),
        "the old one serves on"
    );
    events
        .wait_for("the deployment to succeed", |e| {
            e["eventType"] == "deployment_success" && e["id"] == deployment.as_str()
        })
        .await;
    let (_, app) = baton
        .get(&format!("/v2/apps{id}?embed=apps.readiness"))
        .await;
    let results = app["app"]["readinessCheckResults"]
        .as_array()
        .cloned()
        .unwrap_or_default();
    assert!(results.iter().any(|r| r["ready"] == true), "{app}");
    let running = baton.wait_running(id, 1, DEADLINE).await;
    assert_ne!(running[0]["id"], old.as_str(), "replaced once ready");
    drop(events);
    delete_and_stop(baton, &[id], &marker).await;
}
