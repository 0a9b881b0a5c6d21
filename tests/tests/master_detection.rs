//! `--master zk://…`: two `mesos-local` masters registered in a real
//! ZooKeeper as Mesos masters register (`json.info_<seq>`); Baton
//! subscribes to the one with the lower sequence, and moves to the other
//! when the first goes away.

use std::time::Duration;

use baton_e2e::baton::{BatonProcess, Master};
use baton_e2e::cluster::MesosLocalProcess;
use baton_e2e::wait;
use baton_e2e::zookeeper::ZooKeeper;
use mesos_proto::Encoding;
use serde_json::Value;

const DEADLINE: Duration = Duration::from_secs(60);

/// The frameworks a master has connected.
fn connected_frameworks(state: &Value) -> Vec<String> {
    state["frameworks"]
        .as_array()
        .map(|fs| {
            fs.iter()
                .filter(|f| f["active"] == true && f["connected"] != false)
                .filter_map(|f| f["id"].as_str().map(str::to_string))
                .collect()
        })
        .unwrap_or_default()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn baton_follows_the_lowest_registered_master_and_moves_when_it_goes() {
    baton_e2e::init_tracing();
    let dir = tempfile::tempdir().unwrap();
    let zk = ZooKeeper::start().await;
    let registry = zk.url("/mesos");
    let first = MesosLocalProcess::start_with(
        &dir.path().join("m1"),
        Encoding::Protobuf,
        &["--zk", &registry],
    )
    .await;
    let second = MesosLocalProcess::start_with(
        &dir.path().join("m2"),
        Encoding::Protobuf,
        &["--zk", &registry],
    )
    .await;

    let baton = BatonProcess::start(
        Master::Url(registry.clone()),
        &dir.path().join("baton"),
        &[],
    )
    .await;
    let framework = wait::until(DEADLINE, "Baton subscribed to the first master", || async {
        connected_frameworks(&first.state().await)
            .into_iter()
            .next()
    })
    .await;
    assert!(
        connected_frameworks(&second.state().await).is_empty(),
        "not subscribed to the second master"
    );

    first.stop().await;
    let moved = wait::until(
        DEADLINE,
        "Baton subscribed to the second master",
        || async {
            connected_frameworks(&second.state().await)
                .into_iter()
                .next()
        },
    )
    .await;
    assert_eq!(moved, framework, "the same FrameworkID on the new master");
    wait::until(DEADLINE, "Baton to report the subscription", || async {
        let metrics = baton.try_get("/metrics").await.ok()?;
        metrics
            .text
            .contains("marathon_mesos_connected 1")
            .then_some(())
    })
    .await;
    let (_, info) = baton.get("/v2/info").await;
    assert_eq!(info["marathon_config"]["master"], registry.as_str());

    baton.stop().await;
    second.stop().await;
}
