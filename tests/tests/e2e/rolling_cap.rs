//! `maximumOverCapacity: 0` as Mesos sees it: during a rolling restart of
//! a 3-instance app with `{minimumHealthCapacity: 0.5, maximumOverCapacity:
//! 0}`, no more than 3 of its tasks are ever alive on the master — a task
//! drained (shown as TASK_KILLING) or being killed keeps its slot until
//! Mesos reports it ended. (A real Mesos 1.12 showed 4 alive: a new task
//! was launched while the last old one was still draining.)

use std::collections::BTreeSet;
use std::time::Duration;

use baton_e2e::baton::{BatonProcess, Master};
use baton_e2e::cluster::MesosLocalProcess;
use baton_e2e::{procs, wait};
use mesos_proto::Encoding;
use reqwest::Method;
use serde_json::json;

const DEADLINE: Duration = Duration::from_secs(90);
const APP: &str = "/capped/web";

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_rolling_restart_with_maximum_over_capacity_zero_never_runs_more_than_instances() {
    let dir = tempfile::tempdir().expect("temp dir");
    let mesos = MesosLocalProcess::start(&dir.path().join("mesos"), Encoding::Protobuf).await;
    let baton = BatonProcess::start(
        Master::Url(mesos.url.clone()),
        &dir.path().join("baton"),
        &[],
    )
    .await;
    let marker = format!("rolling-cap-{}", std::process::id());
    let app = json!({
        "id": APP, "cmd": format!("sleep 100000 # {marker}"), "cpus": 0.01, "mem": 8,
        "instances": 3,
        "upgradeStrategy": {"minimumHealthCapacity": 0.5, "maximumOverCapacity": 0.0},
        // Drained for longer than an offer round (1 s), so that a launch
        // during the drain would show on the master.
        "labels": {"BATON_DRAIN_SECONDS": "3"},
    });
    let (status, body) = baton.request(Method::POST, "/v2/apps", Some(&app)).await;
    assert_eq!(status, 201, "{body}");
    let running_ids = || async {
        baton
            .wait_running(APP, 3, DEADLINE)
            .await
            .iter()
            .filter_map(|t| t["id"].as_str().map(str::to_string))
            .collect::<BTreeSet<String>>()
    };
    let before = running_ids().await;

    let (status, body) = baton
        .request(Method::POST, &format!("/v2/apps{APP}/restart"), None)
        .await;
    assert_eq!(status, 200, "{body}");
    let deployment = body["deploymentId"]
        .as_str()
        .expect("the restart's deployment")
        .to_string();
    let mut most = 0;
    let mut seen = BTreeSet::new();
    let deadline = tokio::time::Instant::now() + DEADLINE;
    loop {
        let alive = mesos.live_task_ids().await;
        if alive.len() > most {
            most = alive.len();
            seen = alive;
        }
        let (_, deployments) = baton.get("/v2/deployments").await;
        let running = deployments
            .as_array()
            .into_iter()
            .flatten()
            .any(|d| d["id"] == deployment.as_str());
        if !running {
            break;
        }
        assert!(
            tokio::time::Instant::now() < deadline,
            "the restart did not finish within {DEADLINE:?}"
        );
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    assert!(
        most <= 3,
        "{most} tasks alive on the master at once: {seen:?}"
    );
    assert_eq!(most, 3, "the polls saw the app");
    // The restart replaced every task.
    let after = running_ids().await;
    assert!(
        before.is_disjoint(&after),
        "tasks {:?} survived the restart",
        before.intersection(&after).collect::<Vec<_>>()
    );
    let (status, body) = baton
        .request(Method::DELETE, &format!("/v2/apps{APP}"), None)
        .await;
    assert_eq!(status, 200, "{body}");
    wait::until(DEADLINE, "the app's tasks to end", || async {
        mesos.live_task_ids().await.is_empty().then_some(())
    })
    .await;
    baton.stop().await;
    mesos.stop().await;
    procs::assert_all_gone(&marker).await;
}
