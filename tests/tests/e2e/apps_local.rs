//! The apps acceptance runs, through the REST API of the real `baton`
//! binary: an app on the embedded local cluster under `hostname UNIQUE`
//! (placed, answering, scaled past what the constraint allows, replaced
//! after a SIGKILL, deleted), and `kill -9` of baton with tasks running
//! against a standalone `mesos-local` (re-adopted, not restarted).

use std::time::{Duration, Instant};

use baton_e2e::baton::{BatonProcess, Master};
use baton_e2e::cluster::MesosLocalProcess;
use baton_e2e::{procs, wait};
use mesos_proto::Encoding;
use reqwest::Method;
use serde_json::{Value, json};

const DEADLINE: Duration = Duration::from_secs(60);

/// An HTTP server on `$HOST:$PORT0` whose command line carries `marker`
/// (as an ignored argument), so the test can find and kill it.
fn http_server(marker: &str) -> String {
    format!(
        "exec python3 -c 'import runpy, sys; sys.argv = [\"http.server\", sys.argv[1], \"--bind\", sys.argv[2]]; runpy.run_module(\"http.server\", run_name=\"__main__\")' $PORT0 $HOST {marker}"
    )
}

/// A process that runs until killed and whose command line carries `marker`.
fn sleeper(marker: &str) -> String {
    format!("while :; do sleep 1; done # {marker}")
}

fn task_ids(tasks: &[Value]) -> Vec<String> {
    let mut ids: Vec<String> = tasks
        .iter()
        .map(|t| t["id"].as_str().unwrap_or_default().to_string())
        .collect();
    ids.sort();
    ids
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn local_cluster_app_is_placed_unique_scaled_replaced_and_deleted() {
    baton_e2e::init_tracing();
    let marker = procs::marker("apps-local");
    let dir = tempfile::tempdir().unwrap();
    let baton = BatonProcess::start(Master::Local, dir.path(), &[]).await;

    // POST: 3 instances, one per host.
    let app = json!({
        "id": "/acceptance/web",
        "cmd": http_server(&marker),
        "cpus": 0.1, "mem": 64, "instances": 3,
        "constraints": [["hostname", "UNIQUE"]],
    });
    let (status, body) = baton.request(Method::POST, "/v2/apps", Some(&app)).await;
    assert_eq!(status, 201, "{body}");
    let tasks = baton.wait_running("/acceptance/web", 3, DEADLINE).await;
    let mut hosts: Vec<&str> = tasks.iter().map(|t| t["host"].as_str().unwrap()).collect();
    hosts.sort();
    hosts.dedup();
    assert_eq!(
        hosts.len(),
        3,
        "UNIQUE puts each instance on its own host: {tasks:?}"
    );
    for task in &tasks {
        let url = format!(
            "http://{}:{}/",
            task["host"].as_str().unwrap(),
            task["ports"][0]
        );
        wait::until(Duration::from_secs(20), &format!("{url} to answer"), || {
            let url = url.clone();
            async move {
                let r = reqwest::get(&url).await.ok()?;
                r.status().is_success().then_some(())
            }
        })
        .await;
    }

    // Scale to 4: the fourth cannot go anywhere, and /v2/queue says why.
    let (status, body) = baton
        .request(
            Method::PUT,
            "/v2/apps/acceptance/web",
            Some(&json!({"instances": 4})),
        )
        .await;
    assert_eq!(status, 200, "{body}");
    assert!(body["deploymentId"].is_string(), "{body}");
    let entry = wait::until(
        DEADLINE,
        "the 4th instance queued with its reason",
        || async {
            let (_, queue) = baton.get("/v2/queue").await;
            let entry = queue["queue"]
                .as_array()?
                .iter()
                .find(|e| e["app"]["id"] == "/acceptance/web")?
                .clone();
            let declined_by_constraint = entry["processedOffersSummary"]["rejectSummaryLastOffers"]
                .as_array()?
                .iter()
                .any(|r| {
                    r["reason"] == "UnfulfilledConstraint" && r["declined"].as_u64() > Some(0)
                });
            declined_by_constraint.then_some(entry)
        },
    )
    .await;
    assert_eq!(entry["count"], 1, "{entry}");
    let by_constraint = &entry["processedOffersSummary"]["rejectedByConstraint"];
    assert!(
        by_constraint.to_string().contains("hostname:UNIQUE"),
        "the constraint is named: {entry}"
    );
    let running = baton.wait_running("/acceptance/web", 3, DEADLINE).await;
    assert_eq!(
        task_ids(&running),
        task_ids(&tasks),
        "scaling restarts nothing"
    );

    // SIGKILL one task's process: a replacement runs within 5 s.
    let victim = &running[0];
    let victim_id = victim["id"].as_str().unwrap().to_string();
    let port = victim["ports"][0].to_string();
    let pids: Vec<i32> = procs::with_marker(&marker)
        .into_iter()
        .filter(|pid| {
            std::fs::read(format!("/proc/{pid}/cmdline"))
                .map(|c| String::from_utf8_lossy(&c).contains(&format!("\0{port}\0")))
                .unwrap_or(false)
        })
        .collect();
    assert_eq!(pids.len(), 1, "one server on port {port}: {pids:?}");
    let killed_at = Instant::now();
    nix::sys::signal::kill(
        nix::unistd::Pid::from_raw(pids[0]),
        nix::sys::signal::Signal::SIGKILL,
    )
    .unwrap();
    let replaced = wait::until(Duration::from_secs(5), "a replacement running", || async {
        let running: Vec<Value> = baton
            .tasks("/acceptance/web")
            .await
            .into_iter()
            .filter(|t| t["state"] == "TASK_RUNNING")
            .collect();
        (running.len() == 3 && !task_ids(&running).contains(&victim_id)).then_some(running)
    })
    .await;
    println!(
        "replacement running {:?} after the SIGKILL",
        killed_at.elapsed()
    );
    let instance = victim_id.rsplit_once('.').unwrap().0.to_string();
    assert!(
        task_ids(&replaced)
            .iter()
            .any(|id| id.starts_with(&instance) && id.ends_with(".2")),
        "the instance is relaunched as its second incarnation: {replaced:?}"
    );

    // DELETE: every process is gone.
    let (status, body) = baton
        .request(Method::DELETE, "/v2/apps/acceptance/web", None)
        .await;
    assert_eq!(status, 200, "{body}");
    assert!(body["deploymentId"].is_string(), "{body}");
    wait::until(DEADLINE, "the app's processes to end", || async {
        procs::with_marker(&marker).is_empty().then_some(())
    })
    .await;
    let (status, _) = baton.get("/v2/apps/acceptance/web").await;
    assert_eq!(status, 404);
    baton.stop().await;
    procs::assert_all_gone(&marker).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn host_unique_and_rack_group_by_spread_over_hosts_and_racks_under_the_command_executor() {
    baton_e2e::init_tracing();
    let marker = procs::marker("apps-spread");
    let dir = tempfile::tempdir().unwrap();
    // Also the other executor: Mesos's command executor runs these tasks.
    let baton = BatonProcess::start(Master::Local, dir.path(), &["--executor", "command"]).await;
    let app = json!({
        "id": "/spread", "cmd": sleeper(&marker), "cpus": 0.1, "mem": 32, "instances": 3,
        "constraints": [["hostname", "UNIQUE"], ["rack_id", "GROUP_BY"]],
    });
    let (status, body) = baton.request(Method::POST, "/v2/apps", Some(&app)).await;
    assert_eq!(status, 201, "{body}");
    let tasks = baton.wait_running("/spread", 3, DEADLINE).await;
    // Agents 1..3 are 127.0.0.1..3 over racks 1, 2, 1 (agent i on rack
    // ((i-1) mod 2) + 1): three hosts use both racks, 2 + 1.
    let mut hosts: Vec<String> = tasks
        .iter()
        .map(|t| t["host"].as_str().unwrap().to_string())
        .collect();
    hosts.sort();
    assert_eq!(hosts, ["127.0.0.1", "127.0.0.2", "127.0.0.3"]);
    let (status, _) = baton.request(Method::DELETE, "/v2/apps/spread", None).await;
    assert_eq!(status, 200);
    wait::until(DEADLINE, "the app's processes to end", || async {
        procs::with_marker(&marker).is_empty().then_some(())
    })
    .await;
    baton.stop().await;
    procs::assert_all_gone(&marker).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_container_app_the_agents_cannot_run_waits_with_the_reason_in_the_queue() {
    baton_e2e::init_tracing();
    let dir = tempfile::tempdir().unwrap();
    let baton = BatonProcess::start(Master::Local, dir.path(), &[]).await;
    let app = json!({
        "id": "/boxed", "cpus": 0.1, "mem": 32, "instances": 1,
        "container": {"type": "DOCKER", "docker": {"image": "nginx:1.25"}},
    });
    let (status, body) = baton.request(Method::POST, "/v2/apps", Some(&app)).await;
    assert_eq!(status, 201, "{body}");
    let entry = wait::until(
        DEADLINE,
        "the app queued with its launch failure",
        || async {
            let (_, queue) = baton.get("/v2/queue").await;
            queue["queue"]
                .as_array()?
                .iter()
                .find(|e| e["app"]["id"] == "/boxed" && e["lastTaskFailure"].is_object())
                .cloned()
        },
    )
    .await;
    assert_eq!(entry["count"], 1, "{entry}");
    let message = entry["lastTaskFailure"]["message"]
        .as_str()
        .unwrap_or_default();
    assert!(message.contains("docker containerizer"), "{entry}");
    let (_, app) = baton.get("/v2/apps/boxed").await;
    assert_eq!(app["app"]["tasksRunning"], 0, "{app}");
    assert_eq!(
        app["app"]["container"]["docker"]["image"], "nginx:1.25",
        "{app}"
    );
    let (status, _) = baton.request(Method::DELETE, "/v2/apps/boxed", None).await;
    assert_eq!(status, 200);
    baton.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn kill9_of_baton_readopts_running_tasks_and_keeps_acknowledged_apps() {
    baton_e2e::init_tracing();
    let marker = procs::marker("apps-kill9");
    let dir = tempfile::tempdir().unwrap();
    let mesos = MesosLocalProcess::start(&dir.path().join("mesos"), Encoding::Protobuf).await;
    let mut baton = BatonProcess::start(
        Master::Url(mesos.url.clone()),
        &dir.path().join("baton"),
        &["--reconciliation_interval", "2000"],
    )
    .await;

    let app =
        json!({"id": "/survivor", "cmd": sleeper(&marker), "cpus": 0.1, "mem": 32, "instances": 2});
    let (status, body) = baton.request(Method::POST, "/v2/apps", Some(&app)).await;
    assert_eq!(status, 201, "{body}");
    let before = baton.wait_running("/survivor", 2, DEADLINE).await;
    let processes_before = {
        let mut p = procs::with_marker(&marker);
        p.sort();
        p
    };
    assert!(!processes_before.is_empty());

    // An app acknowledged just before the crash must survive it.
    let late =
        json!({"id": "/late", "cmd": sleeper(&format!("{marker}-late")), "cpus": 0.1, "mem": 32});
    let (status, body) = baton.request(Method::POST, "/v2/apps", Some(&late)).await;
    assert_eq!(status, 201, "{body}");
    baton.kill9().await;

    let baton = baton.restart().await;
    let (status, body) = baton.get("/v2/apps/late").await;
    assert_eq!(status, 200, "the acknowledged app is there: {body}");
    let after = baton.wait_running("/survivor", 2, DEADLINE).await;
    assert_eq!(
        task_ids(&after),
        task_ids(&before),
        "same task ids, none replaced"
    );
    for (a, b) in after.iter().zip(&before) {
        assert_eq!(a["startedAt"], b["startedAt"], "not restarted: {a} vs {b}");
    }
    // Mesos agrees: exactly these tasks run, no duplicates.
    let state = mesos.state().await;
    let mut running_in_mesos: Vec<String> = state["frameworks"]
        .as_array()
        .unwrap()
        .iter()
        .flat_map(|f| f["tasks"].as_array().cloned().unwrap_or_default())
        .filter(|t| t["state"] == "TASK_RUNNING")
        .filter_map(|t| t["id"].as_str().map(str::to_string))
        .filter(|id| id.starts_with("survivor."))
        .collect();
    running_in_mesos.sort();
    assert_eq!(running_in_mesos, task_ids(&before), "{state}");
    let processes_after = {
        let mut p: Vec<i32> = procs::with_marker(&marker)
            .into_iter()
            .filter(|pid| !procs_cmdline(*pid).contains(&format!("{marker}-late")))
            .collect();
        p.sort();
        p
    };
    let processes_before: Vec<i32> = processes_before
        .into_iter()
        .filter(|pid| !procs_cmdline(*pid).contains(&format!("{marker}-late")))
        .collect();
    assert_eq!(
        processes_after, processes_before,
        "the same processes still run"
    );
    baton.wait_running("/late", 1, DEADLINE).await;

    for id in ["/survivor", "/late"] {
        let (status, body) = baton
            .request(Method::DELETE, &format!("/v2/apps{id}"), None)
            .await;
        assert_eq!(status, 200, "{body}");
    }
    wait::until(DEADLINE, "the apps' processes to end", || async {
        procs::with_marker(&marker).is_empty().then_some(())
    })
    .await;
    baton.stop().await;
    mesos.stop().await;
    procs::assert_all_gone(&marker).await;
}

fn procs_cmdline(pid: i32) -> String {
    std::fs::read(format!("/proc/{pid}/cmdline"))
        .map(|c| String::from_utf8_lossy(&c).into_owned())
        .unwrap_or_default()
}
