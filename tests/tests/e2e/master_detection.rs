//! `--master zk://…`: two `mesos-local` masters registered in a real
//! ZooKeeper as Mesos masters register (`json.info_<seq>`); Baton
//! subscribes to the one with the lower sequence, and moves to the other
//! when the first goes away — at once when ZooKeeper names the new leader,
//! however long Baton had been backing off from the old one.

use std::time::{Duration, Instant};

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

/// Subscribe attempts so far (`/metrics`).
async fn subscribe_attempts(baton: &BatonProcess) -> u64 {
    baton
        .metric("marathon_mesos_subscribe_attempts_total")
        .await
}

/// The `json.info_` znodes under `/mesos`, lowest (leading) first.
async fn registered_masters(zk: &zookeeper_client::Client) -> Vec<String> {
    let mut names: Vec<String> = zk
        .list_children("/mesos")
        .await
        .unwrap_or_default()
        .into_iter()
        .filter(|n| n.starts_with("json.info_"))
        .collect();
    names.sort();
    names
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn a_new_leader_in_zookeeper_ends_the_backoff_from_the_dead_one() {
    baton_e2e::init_tracing();
    let dir = tempfile::tempdir().unwrap();
    let zk = ZooKeeper::start().await;
    let registry = zk.url("/mesos");
    let watcher = zookeeper_client::Client::connector()
        .with_session_timeout(Duration::from_secs(5))
        .connect(&zk.connect_string())
        .await
        .expect("connect to ZooKeeper");
    let first = MesosLocalProcess::start_with(
        &dir.path().join("m1"),
        Encoding::Protobuf,
        &["--zk", &registry],
    )
    .await;
    let first_address = first.url.trim_start_matches("http://").to_string();
    let baton = BatonProcess::start(
        Master::Url(registry.clone()),
        &dir.path().join("baton"),
        &[],
    )
    .await;
    wait::until(DEADLINE, "Baton subscribed to the first master", || async {
        (!connected_frameworks(&first.state().await).is_empty()).then_some(())
    })
    .await;

    // The first master dies (kill -9), and a registration of its address
    // that this test holds stays next in line, so that ZooKeeper keeps
    // naming the dead master for as long as the test wants (as a real
    // master's znode outlives it by its session timeout). Baton keeps
    // failing against it, backing off longer each time.
    let (ip, port) = first_address.rsplit_once(':').expect("host:port");
    let dead = serde_json::json!({"address": {"ip": ip, "port": port.parse::<u64>().unwrap()}});
    let (_, sequence) = watcher
        .create(
            "/mesos/json.info_",
            dead.to_string().as_bytes(),
            &zookeeper_client::CreateMode::EphemeralSequential
                .with_acls(zookeeper_client::Acls::anyone_all()),
        )
        .await
        .expect("register the dead master's stand-in");
    let stand_in = format!("/mesos/json.info_{sequence}");
    let attempts_before = subscribe_attempts(&baton).await;
    first.kill9().await;
    let second = MesosLocalProcess::start_with(
        &dir.path().join("m2"),
        Encoding::Protobuf,
        &["--zk", &registry],
    )
    .await;
    // Five failures: the wait before the sixth try is 7.5 to 15 s.
    let failed = wait::until(Duration::from_secs(120), "five failed attempts", || async {
        let failed = subscribe_attempts(&baton).await - attempts_before;
        (failed >= 5).then_some(failed)
    })
    .await;
    assert!(
        connected_frameworks(&second.state().await).is_empty(),
        "not yet on the second master"
    );
    watcher
        .delete(&stand_in, None)
        .await
        .expect("remove the stand-in");
    let leads_since = Instant::now();
    wait::until(
        DEADLINE,
        "Baton subscribed to the second master",
        || async { (!connected_frameworks(&second.state().await).is_empty()).then_some(()) },
    )
    .await;
    let took = leads_since.elapsed();
    eprintln!(
        "subscribed to the new leader {took:?} after ZooKeeper named it ({failed} failed attempts before)"
    );
    // Before: the rest of a 7.5-15 s backoff.
    assert!(
        took < Duration::from_millis(2_500),
        "subscribed {took:?} after ZooKeeper named the new leader"
    );
    assert!(
        registered_masters(&watcher).await.len() == 1,
        "only the second is registered"
    );
    baton.stop().await;
    second.stop().await;
}
