//! Pods through the REST API of the real `baton` binary on the embedded
//! local cluster: two containers sharing a volume (one writes a page, the
//! other serves it), running and healthy, scaled to 3 under `hostname
//! UNIQUE`, rolled to a new version within its upgrade strategy, shown in
//! groups and events, and deleted with nothing left running; and the same
//! pod under `--pod_executor baton`.

use std::collections::BTreeSet;
use std::time::Duration;

use baton_e2e::baton::{BatonProcess, Master};
use baton_e2e::cluster::MesosLocalProcess;
use baton_e2e::events::EventLog;
use baton_e2e::{procs, wait};
use mesos_proto::Encoding;
use reqwest::Method;
use serde_json::{Value, json};

const DEADLINE: Duration = Duration::from_secs(90);

/// The pod: `writer` puts `<text> <its task id>` into the shared volume,
/// `server` serves that volume on its endpoint `http`, health-checked (on
/// every address: Mesos's checks, like baton-executor's, go to 127.0.0.1).
fn pod(marker: &str, text: &str, instances: u32) -> Value {
    let server = format!(
        "cd www && exec python3 -c 'import runpy, sys; sys.argv = [\"http.server\", sys.argv[1], \"--bind\", sys.argv[2]]; runpy.run_module(\"http.server\", run_name=\"__main__\")' $ENDPOINT_HTTP 0.0.0.0 {marker}"
    );
    json!({
        "id": "/shop/web",
        "labels": {"team": "shop"},
        "volumes": [{"name": "shared"}],
        "scaling": {"kind": "fixed", "instances": instances},
        "scheduling": {
            "placement": {"constraints": [{"fieldName": "hostname", "operator": "UNIQUE"}]},
            "upgrade": {"minimumHealthCapacity": 0.5, "maximumOverCapacity": 0}
        },
        "containers": [
            {"name": "writer", "resources": {"cpus": 0.05, "mem": 32},
             "exec": {"command": {"shell": format!(
                 "echo \"{text} $MESOS_TASK_ID\" > out/index.html; while :; do sleep 1; done # {marker}")}},
             "volumeMounts": [{"name": "shared", "mountPath": "out"}]},
            {"name": "server", "resources": {"cpus": 0.05, "mem": 32},
             "exec": {"command": {"shell": server}},
             "endpoints": [{"name": "http", "hostPort": 0}],
             "healthCheck": {"http": {"endpoint": "http", "path": "/index.html"},
                             "gracePeriodSeconds": 30, "intervalSeconds": 2,
                             "timeoutSeconds": 1, "maxConsecutiveFailures": 3,
                             "delaySeconds": 0},
             "volumeMounts": [{"name": "shared", "mountPath": "www", "readOnly": true}]}
        ]
    })
}

/// `::status`'s instances that are STABLE, with what each serves.
async fn stable(baton: &BatonProcess) -> (Value, Vec<Value>) {
    let (_, status) = baton.get("/v2/pods/shop/web::status").await;
    let up = status["instances"]
        .as_array()
        .into_iter()
        .flatten()
        .filter(|i| i["status"] == "STABLE")
        .cloned()
        .collect();
    (status, up)
}

/// What an instance's `server` container serves at `/index.html`.
async fn page(instance: &Value) -> Option<String> {
    let server = instance["containers"]
        .as_array()?
        .iter()
        .find(|c| c["name"] == "server")?;
    let port = server["endpoints"][0]["allocatedHostPort"].as_u64()?;
    let host = instance["agentHostname"].as_str()?;
    let response = reqwest::get(format!("http://{host}:{port}/index.html"))
        .await
        .ok()?;
    if !response.status().is_success() {
        return None;
    }
    response.text().await.ok()
}

/// Waits until `n` instances are STABLE, each serving a page that starts
/// with `text` and names that instance's own writer task; returns them.
async fn wait_serving(baton: &BatonProcess, n: usize, text: &str) -> Vec<Value> {
    wait::until(
        DEADLINE,
        &format!("{n} stable instances serving {text:?}"),
        || async {
            let (status, up) = stable(baton).await;
            if up.len() != n || status["instances"].as_array().map(Vec::len) != Some(n) {
                return None;
            }
            for instance in &up {
                let writer = instance["containers"]
                    .as_array()?
                    .iter()
                    .find(|c| c["name"] == "writer")?["containerId"]
                    .as_str()?
                    .to_string();
                let served = page(instance).await?;
                if served.trim() != format!("{text} {writer}") {
                    return None;
                }
            }
            Some(up)
        },
    )
    .await
}

fn without_versions(mut pod: Value) -> Value {
    if let Some(o) = pod.as_object_mut() {
        o.remove("version");
        o.remove("versionInfo");
    }
    pod
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_pod_shares_a_volume_scales_unique_rolls_and_is_deleted() {
    baton_e2e::init_tracing();
    let marker = procs::marker("pods");
    let dir = tempfile::tempdir().unwrap();
    let baton = BatonProcess::start(Master::Local, dir.path(), &[]).await;
    let events = EventLog::attach(&baton.url).await;

    // Created: 201, the pod as Marathon writes it, its event.
    let (status, created) = baton
        .request(Method::POST, "/v2/pods", Some(&pod(&marker, "v1", 1)))
        .await;
    assert_eq!(status, 201, "{created}");
    assert_eq!(created["id"], "/shop/web");
    assert_eq!(created["containers"][1]["endpoints"][0]["name"], "http");
    assert_eq!(created["executorResources"]["mem"], 32.0);
    events
        .wait_for("pod_created_event", |e| {
            e["eventType"] == "pod_created_event" && e["uri"] == "/v2/pods"
        })
        .await;

    // Running and healthy: the server serves what the writer wrote in the
    // volume they share.
    let up = wait_serving(&baton, 1, "v1").await;
    let server = &up[0]["containers"][1];
    assert_eq!(server["status"], "TASK_RUNNING");
    assert_eq!(server["conditions"][0]["name"], "healthy");
    assert_eq!(server["conditions"][0]["value"], "true");
    let (status, _) = stable(&baton).await;
    assert_eq!(status["status"], "STABLE", "{status}");
    // Each container's updates are its own in the event stream.
    for container in ["writer", "server"] {
        events
            .wait_for(&format!("{container}'s status_update_event"), |e| {
                e["eventType"] == "status_update_event"
                    && e["appId"] == "/shop/web"
                    && e["taskStatus"] == "TASK_RUNNING"
                    && e["taskId"]
                        .as_str()
                        .is_some_and(|t| t.ends_with(&format!(".{container}.1")))
            })
            .await;
    }

    // Round trip: what GET shows, PUT back, is what GET shows again, and
    // it restarts nothing.
    let (_, shown) = baton.get("/v2/pods/shop/web").await;
    let (status, put) = baton
        .request(Method::PUT, "/v2/pods/shop/web", Some(&shown))
        .await;
    assert_eq!(status, 200, "{put}");
    let (_, again) = baton.get("/v2/pods/shop/web").await;
    assert_eq!(without_versions(again), without_versions(shown.clone()));
    let first_writer = up[0]["containers"][0]["containerId"].clone();

    // Not an app; a pod of its group.
    let (_, apps) = baton.get("/v2/apps").await;
    assert_eq!(apps["apps"], json!([]), "{apps}");
    let (status, _) = baton.get("/v2/apps/shop/web").await;
    assert_eq!(status, 404);
    let (_, tasks) = baton.get("/v2/tasks").await;
    assert_eq!(tasks["tasks"], json!([]), "{tasks}");
    let (_, group) = baton.get("/v2/groups/shop").await;
    assert_eq!(group["pods"][0]["id"], "/shop/web", "{group}");

    // Scaled to 3, one per host.
    baton.wait_no_deployments(DEADLINE).await;
    let (status, body) = baton
        .request(
            Method::PUT,
            "/v2/pods/shop/web",
            Some(&pod(&marker, "v1", 3)),
        )
        .await;
    assert_eq!(status, 200, "{body}");
    let up = wait_serving(&baton, 3, "v1").await;
    let hosts: BTreeSet<&str> = up
        .iter()
        .filter_map(|i| i["agentHostname"].as_str())
        .collect();
    assert_eq!(hosts.len(), 3, "UNIQUE: {up:?}");
    assert!(
        up.iter()
            .any(|i| i["containers"][0]["containerId"] == first_writer),
        "scaling kept the first instance"
    );

    // Rolled to v2 within {0.5, 0}: never fewer than 2 stable, never more
    // than 3 instances with a task (on 3 hosts, under UNIQUE).
    baton.wait_no_deployments(DEADLINE).await;
    let (status, body) = baton
        .request(
            Method::PUT,
            "/v2/pods/shop/web",
            Some(&pod(&marker, "v2", 3)),
        )
        .await;
    assert_eq!(status, 200, "{body}");
    let mut samples = 0;
    wait::until(DEADLINE, "the roll to v2", || {
        samples += 1;
        let baton = &baton;
        async move {
            let (status, up) = stable(baton).await;
            let live = status["instances"].as_array().map_or(0, |is| {
                is.iter().filter(|i| i["status"] != "TERMINAL").count()
            });
            assert!(
                up.len() >= 2,
                "fewer than 2 stable during the roll: {status}"
            );
            assert!(live <= 3, "more than 3 instances during the roll: {status}");
            let mut all_v2 = up.len() == 3;
            for instance in &up {
                all_v2 &= page(instance).await.is_some_and(|p| p.starts_with("v2 "));
            }
            all_v2.then_some(())
        }
    })
    .await;
    assert!(samples > 1, "the roll was watched");
    wait_serving(&baton, 3, "v2").await;

    // Deleted: 202, gone, its event, and nothing of it left running.
    let (status, _) = baton
        .request(Method::DELETE, "/v2/pods/shop/web", None)
        .await;
    assert_eq!(status, 202);
    events
        .wait_for("pod_deleted_event", |e| {
            e["eventType"] == "pod_deleted_event"
        })
        .await;
    wait::until(DEADLINE, "the pod and its tasks to be gone", || async {
        let (status, _) = baton.get("/v2/pods/shop/web").await;
        let (_, all) = baton.get("/v2/pods/::status").await;
        (status == 404 && all == json!([])).then_some(())
    })
    .await;
    baton.wait_no_deployments(DEADLINE).await;
    procs::assert_all_gone(&marker).await;
    drop(events);
    baton.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn with_pod_executor_baton_a_pod_runs_under_baton_executor() {
    baton_e2e::init_tracing();
    let marker = procs::marker("pods-baton");
    let dir = tempfile::tempdir().unwrap();
    let mesos = MesosLocalProcess::start(&dir.path().join("mesos"), Encoding::Protobuf).await;
    let baton = BatonProcess::start(
        Master::Url(mesos.url.clone()),
        &dir.path().join("baton"),
        &["--pod_executor", "baton"],
    )
    .await;
    let (status, body) = baton
        .request(Method::POST, "/v2/pods", Some(&pod(&marker, "v1", 1)))
        .await;
    assert_eq!(status, 201, "{body}");
    wait_serving(&baton, 1, "v1").await;
    // The group's executor is baton-executor, fetched from Baton, not
    // Mesos's default executor (which has no command).
    let state = mesos.state().await;
    let commands: Vec<String> = state["frameworks"]
        .as_array()
        .into_iter()
        .flatten()
        .flat_map(|f| f["executors"].as_array().cloned().unwrap_or_default())
        .map(|e| {
            e["command"]["value"]
                .as_str()
                .unwrap_or_default()
                .to_string()
        })
        .collect();
    assert_eq!(commands, vec!["./baton-executor".to_string()], "{state}");
    let (status, _) = baton
        .request(Method::DELETE, "/v2/pods/shop/web", None)
        .await;
    assert_eq!(status, 202);
    wait::until(DEADLINE, "the pod's tasks to be gone", || async {
        let (_, all) = baton.get("/v2/pods/::status").await;
        (all == json!([]) && mesos.live_task_ids().await.is_empty()).then_some(())
    })
    .await;
    procs::assert_all_gone(&marker).await;
    baton.stop().await;
    mesos.stop().await;
}
