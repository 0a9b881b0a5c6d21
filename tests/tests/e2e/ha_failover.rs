//! High availability with a real ZooKeeper and two `baton` processes
//! sharing a standalone `mesos-local`:
//!
//! - a standby answers writes by proxying them to the leader;
//! - `kill -9` of the leader in the middle of a rolling deployment: the
//!   standby leads within seconds (measured), the deployment completes,
//!   no instance is restarted or duplicated, no acknowledged write is lost;
//! - ZooKeeper stopped for 10 s and started again: no process exits, one
//!   leader afterwards, nothing lost, nothing restarted.

use std::collections::BTreeSet;
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::Duration;

use baton_e2e::baton::{BatonProcess, Master};
use baton_e2e::cluster::MesosLocalProcess;
use baton_e2e::router::task_app;
use baton_e2e::zookeeper::ZooKeeper;
use baton_e2e::{procs, wait};
use mesos_proto::Encoding;
use reqwest::Method;
use serde_json::{Value, json};

const DEADLINE: Duration = Duration::from_secs(120);
/// Short sessions, so that a dead leader's leadership ends quickly.
const SESSION_TIMEOUT_MS: &str = "1000";

fn app(id: &str, marker: &str, version: &str) -> Value {
    task_app(
        id,
        marker,
        4,
        json!({
            "env": {"VERSION": version},
            "upgradeStrategy": {"minimumHealthCapacity": 0.5, "maximumOverCapacity": 0.25},
        }),
    )
}

async fn start_baton(
    mesos: &MesosLocalProcess,
    zk: &ZooKeeper,
    dir: &std::path::Path,
) -> BatonProcess {
    BatonProcess::start(
        Master::Url(mesos.url.clone()),
        dir,
        &[
            "--zk",
            &zk.url("/baton"),
            "--zk_session_timeout",
            SESSION_TIMEOUT_MS,
            "--reconciliation_interval",
            "5000",
        ],
    )
    .await
}

/// `host:port` of a baton's API.
fn address(baton: &BatonProcess) -> String {
    baton.url.trim_start_matches("http://").to_string()
}

/// The leader as `baton` reports it (proxied when it is a standby).
async fn leader_of(baton: &BatonProcess) -> Option<String> {
    let reply = baton.try_get("/v2/leader").await.ok()?;
    reply.json?["leader"].as_str().map(str::to_string)
}

/// Running tasks of `id` as (task id, VERSION it answers with).
async fn running(baton: &BatonProcess, id: &str) -> Vec<(String, String)> {
    let tasks = baton.tasks(id).await;
    let mut out = Vec::new();
    for t in tasks.iter().filter(|t| t["state"] == "TASK_RUNNING") {
        let url = format!(
            "http://{}:{}/",
            t["host"].as_str().unwrap_or(""),
            t["ports"][0]
        );
        let version = reqwest::get(url)
            .await
            .ok()
            .map(|r| async { r.text().await.unwrap_or_default() });
        let version = match version {
            Some(text) => text.await.split(' ').next().unwrap_or("").to_string(),
            None => String::new(),
        };
        out.push((t["id"].as_str().unwrap_or("").to_string(), version));
    }
    out
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn the_standby_takes_over_a_rolling_deployment_after_kill_9_of_the_leader() {
    baton_e2e::init_tracing();
    let marker = procs::marker("ha-failover");
    let dir = tempfile::tempdir().unwrap();
    let zk = ZooKeeper::start().await;
    let mesos = MesosLocalProcess::start(&dir.path().join("mesos"), Encoding::Protobuf).await;
    let mut first = start_baton(&mesos, &zk, &dir.path().join("a")).await;
    let second = start_baton(&mesos, &zk, &dir.path().join("b")).await;
    assert_eq!(leader_of(&first).await, Some(address(&first)));
    assert_eq!(
        leader_of(&second).await,
        Some(address(&first)),
        "the standby knows the leader"
    );
    let (leader, standby) = (&mut first, &second);

    // A write to the standby works (proxied).
    let id = "/ha/web";
    let (status, body) = standby
        .request(Method::POST, "/v2/apps", Some(&app(id, &marker, "v1")))
        .await;
    assert_eq!(status, 201, "{body}");
    wait::until(DEADLINE, "4 healthy v1 instances", || async {
        let (_, app) = standby.get(&format!("/v2/apps{id}")).await;
        let healthy = app["app"]["tasksHealthy"].as_u64()? == 4;
        healthy.then_some(())
    })
    .await;

    // Writes acknowledged through either node, before and across the failover.
    let acknowledged = Arc::new(std::sync::Mutex::new(Vec::<String>::new()));
    let stop_writes = Arc::new(AtomicBool::new(false));
    let writer = {
        let (acknowledged, stop) = (acknowledged.clone(), stop_writes.clone());
        let urls = [leader.url.clone(), standby.url.clone()];
        tokio::spawn(async move {
            let http = reqwest::Client::builder()
                .timeout(Duration::from_secs(10))
                .no_proxy()
                .build()
                .unwrap();
            for n in 0..2000 {
                if stop.load(Ordering::Relaxed) {
                    return;
                }
                let write_id = format!("/ha/writes/w{n}");
                let body = json!({"id": write_id, "cmd": "sleep 1000", "cpus": 0.01, "mem": 8, "instances": 0});
                let url = &urls[n % 2];
                if let Ok(r) = http.post(format!("{url}/v2/apps")).json(&body).send().await
                    && r.status().is_success()
                {
                    acknowledged.lock().unwrap().push(write_id);
                }
                tokio::time::sleep(Duration::from_millis(50)).await;
            }
        })
    };

    // The rolling deployment starts, and once it is under way (some v2
    // instance running, some v1 left) the leader dies.
    let (status, body) = standby
        .request(
            Method::PUT,
            &format!("/v2/apps{id}"),
            Some(&json!({"env": {"VERSION": "v2"}})),
        )
        .await;
    assert_eq!(status, 200, "{body}");
    let before = wait::until(DEADLINE, "the deployment half way", || async {
        let tasks = running(standby, id).await;
        let v2 = tasks.iter().filter(|t| t.1 == "v2").count();
        let v1 = tasks.iter().filter(|t| t.1 == "v1").count();
        (v2 >= 1 && v1 >= 1).then_some(tasks)
    })
    .await;
    let killed_at = tokio::time::Instant::now();
    leader.kill9().await;

    let took_over = wait::until(
        DEADLINE,
        "the standby to lead and be subscribed",
        || async {
            let me = address(standby);
            let leads = leader_of(standby).await.as_deref() == Some(me.as_str());
            let metrics = standby.try_get("/metrics").await.ok()?;
            (leads && metrics.text.contains("marathon_mesos_connected 1"))
                .then(|| killed_at.elapsed())
        },
    )
    .await;
    println!(
        "failover: the standby leads and is subscribed {took_over:?} after kill -9 of the leader \
         (ZooKeeper session timeout {SESSION_TIMEOUT_MS} ms)"
    );

    let after = wait::until(
        DEADLINE,
        "the deployment to complete on the new leader",
        || async {
            let (_, deployments) = standby.get("/v2/deployments").await;
            if !deployments.as_array()?.is_empty() {
                return None;
            }
            let tasks = running(standby, id).await;
            (tasks.len() == 4 && tasks.iter().all(|t| t.1 == "v2")).then_some(tasks)
        },
    )
    .await;
    stop_writes.store(true, Ordering::Relaxed);
    writer.await.unwrap();

    // Nothing restarted or duplicated: the v2 instances running at the
    // kill still run with the same task ids; every task is a first launch
    // of its instance; Mesos runs exactly these four.
    let final_ids: BTreeSet<&str> = after.iter().map(|t| t.0.as_str()).collect();
    for (task, version) in &before {
        if version == "v2" {
            assert!(
                final_ids.contains(task.as_str()),
                "{task} was restarted: {after:?}"
            );
        }
    }
    assert!(
        final_ids.iter().all(|t| t.ends_with("._app.1")),
        "{final_ids:?}"
    );
    let state = mesos.state().await;
    let live_tasks: BTreeSet<String> = state["frameworks"]
        .as_array()
        .unwrap()
        .iter()
        .flat_map(|f| f["tasks"].as_array().cloned().unwrap_or_default())
        .filter(|t| {
            t["state"] == "TASK_RUNNING"
                && t["id"].as_str().is_some_and(|i| i.starts_with("ha_web."))
        })
        .map(|t| t["id"].as_str().unwrap().to_string())
        .collect();
    assert_eq!(
        live_tasks,
        final_ids
            .iter()
            .map(|s| s.to_string())
            .collect::<BTreeSet<_>>(),
        "Mesos runs exactly the four v2 tasks"
    );

    // Every acknowledged write is there.
    let written = acknowledged.lock().unwrap().clone();
    assert!(written.len() > 10, "{} writes acknowledged", written.len());
    for write_id in &written {
        let (status, _) = standby.get(&format!("/v2/apps{write_id}")).await;
        assert_eq!(status, 200, "{write_id} was acknowledged and lost");
    }
    println!("{} acknowledged writes, none lost", written.len());

    second.stop().await;
    // The first was killed with -9.
    drop(first);
    mesos.stop().await;
    procs::assert_all_gone(&marker).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn zookeeper_stopped_for_10_s_leaves_one_leader_and_nothing_lost() {
    baton_e2e::init_tracing();
    let marker = procs::marker("ha-zk-outage");
    let dir = tempfile::tempdir().unwrap();
    let mut zk = ZooKeeper::start().await;
    let mesos = MesosLocalProcess::start(&dir.path().join("mesos"), Encoding::Protobuf).await;
    let mut first = start_baton(&mesos, &zk, &dir.path().join("a")).await;
    let mut second = start_baton(&mesos, &zk, &dir.path().join("b")).await;
    let id = "/ha/steady";
    let (status, body) = second
        .request(Method::POST, "/v2/apps", Some(&app(id, &marker, "v1")))
        .await;
    assert_eq!(status, 201, "{body}");
    let before: BTreeSet<String> = wait::until(DEADLINE, "4 healthy instances", || async {
        let (_, app) = first.get(&format!("/v2/apps{id}?embed=apps.tasks")).await;
        let app = &app["app"];
        (app["tasksHealthy"].as_u64()? == 4).then(|| {
            app["tasks"]
                .as_array()
                .unwrap()
                .iter()
                .map(|t| t["id"].as_str().unwrap().to_string())
                .collect()
        })
    })
    .await;

    zk.stop().await;
    // Both step down at once (no ZooKeeper, no leader): the API says so.
    wait::until(DEADLINE, "no leader while ZooKeeper is down", || async {
        let a = first.try_get("/v2/leader").await.ok()?;
        let b = second.try_get("/v2/leader").await.ok()?;
        (a.status == 502 && b.status == 502).then_some(())
    })
    .await;
    // A write now is refused by both (no leader), not acknowledged.
    let during =
        json!({"id": "/ha/during", "cmd": "sleep 1000", "cpus": 0.01, "mem": 8, "instances": 0});
    for node in [&first, &second] {
        let reply = node
            .try_request(
                Method::POST,
                "/v2/apps",
                Some(serde_json::to_vec(&during).unwrap()),
            )
            .await;
        assert!(
            reply
                .as_ref()
                .is_ok_and(|r| !(200..300).contains(&r.status)),
            "a write without a leader was acknowledged: {reply:?}"
        );
    }
    tokio::time::sleep(Duration::from_secs(10)).await;
    assert!(first.alive() && second.alive(), "no process exits");
    zk.start_again().await;

    let leader = wait::until(DEADLINE, "one leader again, subscribed", || async {
        let a = leader_of(&first).await?;
        let b = leader_of(&second).await?;
        let leading = if a == address(&first) {
            &first
        } else {
            &second
        };
        let metrics = leading.try_get("/metrics").await.ok()?;
        (a == b && metrics.text.contains("marathon_mesos_connected 1")).then_some(a)
    })
    .await;
    println!("after the outage {leader} leads");
    let (_, app) = second.get(&format!("/v2/apps{id}?embed=apps.tasks")).await;
    let after: BTreeSet<String> = app["app"]["tasks"]
        .as_array()
        .unwrap()
        .iter()
        .map(|t| t["id"].as_str().unwrap().to_string())
        .collect();
    assert_eq!(before, after, "nothing restarted or lost");
    let (status, _) = second.get("/v2/apps/ha/during").await;
    assert_eq!(status, 404, "the refused write did not happen later either");
    assert!(first.alive() && second.alive());
    second.stop().await;
    first.stop().await;
    mesos.stop().await;
    procs::assert_all_gone(&marker).await;
}

/// Entries under `<zk>/baton/services/<app>/…`: task id → JSON.
async fn registered(
    zk: &zookeeper_client::Client,
    app: &str,
) -> std::collections::BTreeMap<String, Value> {
    let mut out = std::collections::BTreeMap::new();
    let app_dir = format!("/services{app}");
    let Ok(versions) = zk.list_children(&app_dir).await else {
        return out;
    };
    for version in versions {
        let dir = format!("{app_dir}/{version}");
        for task in zk.list_children(&dir).await.unwrap_or_default() {
            if let Ok((data, _)) = zk.get_data(&format!("{dir}/{task}")).await {
                out.insert(task, serde_json::from_slice(&data).unwrap_or(Value::Null));
            }
        }
    }
    out
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn the_registry_lists_healthy_instances_and_drops_dead_ones_within_a_health_interval() {
    baton_e2e::init_tracing();
    let marker = procs::marker("ha-registry");
    let dir = tempfile::tempdir().unwrap();
    let zk = ZooKeeper::start().await;
    let mesos = MesosLocalProcess::start(&dir.path().join("mesos"), Encoding::Protobuf).await;
    let baton = start_baton(&mesos, &zk, &dir.path().join("a")).await;
    let reader = baton::zk::ZkUrl::parse(&zk.url("/baton"))
        .unwrap()
        .connect(Duration::from_secs(10))
        .await
        .unwrap();
    let id = "/reg/web";
    let mut definition = app(id, &marker, "v1");
    definition["instances"] = json!(2);
    definition["healthChecks"][0]["intervalSeconds"] = json!(2);
    let (status, body) = baton
        .request(Method::POST, "/v2/apps", Some(&definition))
        .await;
    assert_eq!(status, 201, "{body}");

    let entries = wait::until(DEADLINE, "2 registry entries", || async {
        let entries = registered(&reader, id).await;
        (entries.len() == 2).then_some(entries)
    })
    .await;
    // Only healthy instances are there, with where they listen.
    let tasks = baton.tasks(id).await;
    for (task_id, entry) in &entries {
        let task = tasks
            .iter()
            .find(|t| t["id"] == task_id.as_str())
            .expect("a known task");
        assert!(
            task["healthCheckResults"]
                .as_array()
                .unwrap()
                .iter()
                .all(|h| h["alive"] == true),
            "{task}"
        );
        assert_eq!(entry["host"], task["host"]);
        assert_eq!(entry["ports"], task["ports"]);
        assert_eq!(entry["healthy"], true);
    }
    // The same over HTTP.
    let (_, services) = baton.get(&format!("/v2/services?app={id}")).await;
    let listed: BTreeSet<&str> = services["services"]
        .as_array()
        .unwrap()
        .iter()
        .map(|s| s["taskId"].as_str().unwrap())
        .collect();
    assert_eq!(
        listed,
        entries.keys().map(String::as_str).collect::<BTreeSet<_>>()
    );

    // An instance dies: its entry goes within one health interval (2 s).
    let victim = entries.keys().next().unwrap().clone();
    let task = tasks.iter().find(|t| t["id"] == victim.as_str()).unwrap();
    let needle = format!(
        " {} {} {marker}",
        task["ports"][0],
        task["host"].as_str().unwrap()
    );
    let pid = procs::with_marker(&marker)
        .into_iter()
        .find(|pid| procs::cmdline(*pid).contains(&needle))
        .expect("the victim's server process");
    let died = tokio::time::Instant::now();
    nix::sys::signal::kill(
        nix::unistd::Pid::from_raw(pid),
        nix::sys::signal::Signal::SIGKILL,
    )
    .unwrap();
    let gone_after = wait::until(DEADLINE, "the dead instance's entry to go", || async {
        (!registered(&reader, id).await.contains_key(&victim)).then(|| died.elapsed())
    })
    .await;
    println!(
        "registry: a dead instance's entry was removed {gone_after:?} after its process was killed"
    );
    assert!(gone_after < Duration::from_secs(2), "{gone_after:?}");

    // Its replacement registers once healthy; deleting the app empties it.
    wait::until(DEADLINE, "the replacement registered", || async {
        (registered(&reader, id).await.len() == 2).then_some(())
    })
    .await;
    let (status, _) = baton
        .request(Method::DELETE, &format!("/v2/apps{id}"), None)
        .await;
    assert_eq!(status, 200);
    wait::until(DEADLINE, "no entry left for the deleted app", || async {
        registered(&reader, id).await.is_empty().then_some(())
    })
    .await;
    baton.stop().await;
    mesos.stop().await;
    procs::assert_all_gone(&marker).await;
}
