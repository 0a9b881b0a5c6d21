//! Failover time over repeated `kill -9` of the leader, with ZooKeeper's
//! stock timing (tickTime 2000) and Baton's default flags (a 10 s ZooKeeper
//! session; standbys probe the leader every 250 ms and depose it after 4
//! failed probes).
//!
//! Two `baton` processes share a ZooKeeper and a standalone `mesos-local`
//! (running two tasks). Each round waits until both name the same leader
//! and the standby has been probing for a second, kills the leader with
//! SIGKILL, and measures from the kill:
//!
//! - **first write**: the first write (`POST /v2/apps`, an app without
//!   instances) the survivor acknowledges, sent every 25 ms — the failover
//!   a client sees (the headline number);
//! - **leading**: the survivor's `/v2/leader` naming itself while its
//!   `/metrics` says it is subscribed to Mesos.
//!
//! The killed process is then started again (it becomes the standby) for
//! the next round. A real death falls anywhere between two probes; the
//! rounds here would not (the standby's probes start when it learns the
//! leader, which is when a round's wait ends), so round `i` of `n` waits a
//! further `i/n` of a probe interval: the kills sample the interval
//! evenly. Prints each round and the medians; asserts nothing.
//!
//! `cargo bench -p baton-e2e --bench failover` (needs Debian's `zookeeper`;
//! brings the release binaries up to date first; `KILLS` overrides the 10
//! rounds).

use std::time::Duration;

use baton_e2e::baton::{BatonProcess, Master};
use baton_e2e::cluster::MesosLocalProcess;
use baton_e2e::failover::{address, first_acknowledged_write, leader_of, median, until_leading};
use baton_e2e::router::task_app;
use baton_e2e::wait;
use baton_e2e::zookeeper::ZooKeeper;
use mesos_proto::Encoding;
use reqwest::Method;
use serde_json::json;
use tokio::time::Instant;

const DEADLINE: Duration = Duration::from_secs(120);
/// How long the standby probes the leader before a kill (its probing
/// starts with its place in line).
const SETTLE: Duration = Duration::from_secs(1);
/// The default `--leader_probe_interval`, whose phase the kills sample.
const PROBE_INTERVAL: Duration = Duration::from_millis(250);

/// `cargo build --release` of the binaries the benchmark runs: the harness
/// builds missing ones only, and a stale `baton` would measure old code.
fn build_binaries() {
    let cargo = std::env::var("CARGO").unwrap_or_else(|_| "cargo".into());
    let status = std::process::Command::new(cargo)
        .args(["build", "--release", "--bins"])
        .args(["-p", "baton", "-p", "baton-executor", "-p", "mesos-local"])
        .status()
        .expect("run cargo build");
    assert!(status.success(), "building the release binaries failed");
}

fn main() {
    build_binaries();
    let kills: usize = std::env::var("KILLS")
        .ok()
        .and_then(|v| v.parse().ok())
        .unwrap_or(10);
    let runtime = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .enable_all()
        .build()
        .expect("runtime");
    runtime.block_on(run(kills));
}

async fn run(kills: usize) {
    let dir = tempfile::tempdir().expect("temporary directory");
    let zk = ZooKeeper::start_stock().await;
    let mesos = MesosLocalProcess::start(&dir.path().join("mesos"), Encoding::Protobuf).await;
    let start = |name: &str| {
        let data = dir.path().join(name);
        let zk_url = zk.url("/baton");
        let master = mesos.url.clone();
        async move { BatonProcess::start(Master::Url(master), &data, &["--zk", &zk_url]).await }
    };
    let mut nodes = vec![start("a").await, start("b").await];
    let marker = baton_e2e::procs::marker("bench-failover");
    let (status, body) = nodes[0]
        .request(
            Method::POST,
            "/v2/apps",
            Some(&task_app("/bench/web", &marker, 2, json!({}))),
        )
        .await;
    assert_eq!(status, 201, "{body}");
    println!(
        "failover benchmark: {kills} × kill -9 of the leader; 2 baton processes, stock ZooKeeper \
         (tickTime 2000), default flags (--zk_session_timeout 10000, --leader_probe_interval 250, \
         --leader_probe_timeout 300, --leader_probe_failures 4), on a {}-CPU machine",
        std::thread::available_parallelism().map_or(0, |n| n.get())
    );
    println!(
        "time from kill -9 to: the survivor's first acknowledged write | it leads and is subscribed to Mesos"
    );
    let mut first_writes = Vec::new();
    let mut leading = Vec::new();
    for round in 1..=kills {
        // Both agree on the leader, and the standby has been probing it.
        let leader_index = wait::until(DEADLINE, "one leader both agree on", || async {
            let a = leader_of(&nodes[0]).await?;
            let b = leader_of(&nodes[1]).await?;
            (a == b)
                .then(|| nodes.iter().position(|n| address(n) == a))
                .flatten()
        })
        .await;
        let phase = PROBE_INTERVAL * (round - 1) as u32 / kills as u32;
        tokio::time::sleep(SETTLE + phase).await;
        let mut leader = nodes.remove(leader_index);
        let survivor = &nodes[0];
        let prefix = format!("/bench/round{round}");
        let killed_at = Instant::now();
        leader.kill9().await;
        let ((write_after, _), leads_after) = tokio::join!(
            first_acknowledged_write(&survivor.url, &prefix, killed_at, DEADLINE),
            until_leading(survivor, killed_at, DEADLINE),
        );
        println!(
            "kill {round:>2}: {:>6.0} ms | {:>6.0} ms",
            write_after.as_secs_f64() * 1000.0,
            leads_after.as_secs_f64() * 1000.0
        );
        first_writes.push(write_after);
        leading.push(leads_after);
        // The killed one comes back as the standby.
        nodes.push(leader.restart().await);
    }
    let ms = |d: Duration| d.as_secs_f64() * 1000.0;
    let (min, max) = (
        first_writes.iter().min().copied().unwrap_or_default(),
        first_writes.iter().max().copied().unwrap_or_default(),
    );
    println!(
        "median over {kills} kills: first acknowledged write {:.0} ms (min {:.0}, max {:.0}); \
         leading and subscribed {:.0} ms",
        ms(median(&first_writes)),
        ms(min),
        ms(max),
        ms(median(&leading)),
    );
    for node in nodes {
        node.stop().await;
    }
    mesos.stop().await;
    drop(zk);
}
