//! Pods through the REST API of the real `baton` binary on the embedded
//! local cluster: two containers sharing a volume (one writes a page, the
//! other serves it), running and healthy, scaled to 3 under `hostname
//! UNIQUE`, rolled to a new version within its upgrade strategy, shown in
//! groups and events, and deleted with nothing left running; the same
//! pod under `--pod_executor baton`; and a resident pod, whose persistent
//! volume outlives its incarnations on their agent.

use std::collections::BTreeSet;
use std::time::Duration;

use baton_e2e::baton::{BatonProcess, Master};
use baton_e2e::cluster::{MesosLocalProcess, find_named, reserved_disk, wait_volume_lines};
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
    // Its deployment names it as a pod, as Marathon's does.
    let (_, deployments) = baton.get("/v2/deployments").await;
    assert_eq!(
        deployments.as_array().map(Vec::len),
        Some(1),
        "{deployments}"
    );
    assert_eq!(deployments[0]["affectedPods"], json!(["/shop/web"]));
    assert_eq!(deployments[0]["affectedApps"], json!([]));
    assert_eq!(
        deployments[0]["steps"][0]["actions"][0],
        json!({"action": "RestartPod", "pod": "/shop/web"})
    );
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

/// A resident pod: `store` appends its task id to `data/history` on the
/// pod's persistent volume, after copying what it found there to `seen` in
/// its own directory.
fn resident_pod(marker: &str, round: u32, size: u32) -> Value {
    json!({
        "id": "/db/store",
        "role": "db",
        "environment": {"ROUND": round.to_string()},
        "volumes": [{"name": "data", "persistent": {"size": size}}],
        "scaling": {"kind": "fixed", "instances": 1},
        "backoff": {"backoff": 1, "backoffFactor": 1.0},
        "containers": [
            {"name": "store", "resources": {"cpus": 0.05, "mem": 32},
             "exec": {"command": {"shell": format!(
                 "cat data/history > seen 2>/dev/null; echo \"$MESOS_TASK_ID\" >> data/history; while :; do sleep 1; done # {marker}")}},
             "volumeMounts": [{"name": "data", "mountPath": "data"}]}
        ]
    })
}

/// The pod's one running instance in `::status`: its id, agent and
/// `store` container task id.
async fn running_store(baton: &BatonProcess) -> Option<(Value, String, String, String)> {
    let (_, status) = baton.get("/v2/pods/db/store::status").await;
    let instance = status["instances"]
        .as_array()?
        .iter()
        .find(|i| i["status"] == "STABLE")?
        .clone();
    let container = instance["containers"][0]["containerId"]
        .as_str()?
        .to_string();
    let id = instance["id"].as_str()?.to_string();
    let agent = instance["agentId"].as_str()?.to_string();
    Some((instance, id, agent, container))
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_resident_pod_keeps_its_volume_on_its_agent_across_incarnations() {
    baton_e2e::init_tracing();
    let marker = procs::marker("pods-resident");
    let dir = tempfile::tempdir().unwrap();
    let work_dir = dir.path().join("mesos");
    let mesos = MesosLocalProcess::start(&work_dir, Encoding::Protobuf).await;
    let baton = BatonProcess::start(
        Master::Url(mesos.url.clone()),
        &dir.path().join("baton"),
        &["--mesos_role", "*,db"],
    )
    .await;
    let (status, body) = baton
        .request(
            Method::POST,
            "/v2/pods",
            Some(&resident_pod(&marker, 1, 16)),
        )
        .await;
    assert_eq!(status, 201, "{body}");
    // Marathon's defaults for resident pods.
    assert_eq!(body["scheduling"]["upgrade"]["maximumOverCapacity"], 0.0);
    assert_eq!(body["scheduling"]["unreachableStrategy"], "disabled");
    let (instance, instance_id, agent, first) =
        wait::until(DEADLINE, "the resident pod to run", || {
            running_store(&baton)
        })
        .await;
    let persistence_id = format!("{instance_id}#data");
    assert_eq!(
        instance["localVolumes"][0]["persistenceId"], persistence_id,
        "{instance}"
    );
    assert_eq!(instance["localVolumes"][0]["containerPath"], "data");
    let wait_history = |want: Vec<String>, what: &'static str| {
        let (work_dir, persistence_id) = (work_dir.clone(), persistence_id.clone());
        async move {
            wait_volume_lines(&work_dir, &persistence_id, "history", &want, DEADLINE, what).await;
        }
    };
    wait_history(vec![first.clone()], "the first incarnation's line").await;
    let reserved_for_db = |state: Value| reserved_disk(&state, "db");
    assert!(reserved_for_db(mesos.state().await) >= 16.0);

    // A new version relaunches the instance in place: same instance, same
    // agent, and the new incarnation reads what the first wrote.
    let (status, body) = baton
        .request(
            Method::PUT,
            "/v2/pods/db/store",
            Some(&resident_pod(&marker, 2, 16)),
        )
        .await;
    assert_eq!(status, 200, "{body}");
    let (_, again, again_agent, second) =
        wait::until(DEADLINE, "the second incarnation to run", || async {
            running_store(&baton)
                .await
                .filter(|(_, _, _, c)| *c != first)
        })
        .await;
    assert_eq!(
        (again.as_str(), again_agent.as_str()),
        (instance_id.as_str(), agent.as_str())
    );
    wait_history(vec![first.clone(), second.clone()], "the second line").await;
    let seen = |want: String| {
        find_named(&work_dir, "seen", false)
            .into_iter()
            .filter_map(|p| std::fs::read_to_string(p).ok())
            .any(|t| t == want)
    };
    assert!(
        seen(format!("{first}\n")),
        "the second incarnation read the first's line"
    );

    // Its volume cannot change under it.
    let (status, body) = baton
        .request(
            Method::PUT,
            "/v2/pods/db/store",
            Some(&resident_pod(&marker, 2, 32)),
        )
        .await;
    assert_eq!(status, 422, "{body}");
    assert_eq!(body["details"][0]["path"], "/volumes", "{body}");

    // Its instance killed (not wiped), it comes back on its volume.
    let (status, body) = baton
        .request(
            Method::DELETE,
            &format!("/v2/pods/db/store::instances/{instance_id}"),
            None,
        )
        .await;
    assert_eq!(status, 200, "{body}");
    let (_, third_instance, third_agent, third) =
        wait::until(DEADLINE, "the third incarnation to run", || async {
            running_store(&baton)
                .await
                .filter(|(_, _, _, c)| *c != first && *c != second)
        })
        .await;
    assert_eq!(
        (third_instance.as_str(), third_agent.as_str()),
        (instance_id.as_str(), agent.as_str())
    );
    wait_history(
        vec![first.clone(), second.clone(), third.clone()],
        "the third line",
    )
    .await;
    assert!(seen(format!("{first}\n{second}\n")), "the third read both");

    // Deleted: nothing left running, the volume destroyed, the
    // reservation given back.
    let (status, _) = baton
        .request(Method::DELETE, "/v2/pods/db/store", None)
        .await;
    assert_eq!(status, 202);
    wait::until(
        DEADLINE,
        "the reservation and the volume to be gone",
        || async {
            let freed = reserved_for_db(mesos.state().await) == 0.0;
            let destroyed = find_named(&work_dir, &persistence_id, true).is_empty();
            (freed && destroyed && mesos.live_task_ids().await.is_empty()).then_some(())
        },
    )
    .await;
    procs::assert_all_gone(&marker).await;
    baton.stop().await;
    mesos.stop().await;
}
