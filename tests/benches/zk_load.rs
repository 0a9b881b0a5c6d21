//! A large state in ZooKeeper: 10,000 apps × 10 running instances (plus
//! each app's stored version), written through Baton's ZooKeeper store in
//! the records Baton itself writes, then loaded by a new session the way a
//! new leader loads it (read every znode, decode, build the state).
//!
//! Prints the write time, the largest znode against ZooKeeper's 1 MB
//! limit, and the new leader's load time (goal: under 5 s).
//!
//! `cargo bench -p baton-e2e --bench zk_load` (needs Debian's `zookeeper`;
//! `APPS` and `INSTANCES` override the sizes).

use std::sync::Arc;
use std::time::{Duration, Instant};

use baton::reconcile::{instance_change, load_view, version_key};
use baton::state::app::{AppDefaults, AppDefinition, PathId, Timestamp};
use baton::state::instance::{Condition, Instance, InstanceTask};
use baton::state::zk_store::{MAX_RECORD, encode_value};
use baton::state::{Category, Change, Store, ZkStore};
use baton::zk::ZkUrl;
use baton_e2e::zookeeper::ZooKeeper;

/// ZooKeeper's default `jute.maxbuffer`, the znode size limit.
const ZNODE_LIMIT: usize = 1024 * 1024;
/// Apps per store batch (each: app, version, instances).
const APPS_PER_BATCH: usize = 40;

fn size(name: &str, default: usize) -> usize {
    std::env::var(name)
        .ok()
        .and_then(|v| v.parse().ok())
        .unwrap_or(default)
}

/// The records of app `a` with `instances` running instances.
fn app_records(a: usize, instances: usize) -> Vec<Change> {
    let app = AppDefinition::from_value(
        &serde_json::json!({
            "id": format!("/team-{}/app-{a}", a % 100),
            "cmd": format!("python3 -m http.server $PORT0 # {a}"),
            "cpus": 0.1, "mem": 64, "instances": instances,
            "env": {"TEAM": format!("team-{}", a % 100), "LOG_LEVEL": "info"},
            "labels": {"team": format!("team-{}", a % 100), "HAPROXY_0_VHOST": format!("app-{a}.example.com")},
            "constraints": [["hostname", "UNIQUE"]],
            "healthChecks": [{"protocol": "HTTP", "path": "/health", "portIndex": 0}],
        }),
        &PathId::root(),
        &AppDefaults::default(),
    )
    .expect("valid app")
    .with_version(Timestamp::from_millis(1_700_000_000_000), false);
    let version = app.version.expect("versioned");
    let mut changes = vec![
        Change::put_json(Category::App, app.id.as_str(), &app).expect("app record"),
        Change::put_json(Category::AppVersion, version_key(&app.id, version), &app)
            .expect("version record"),
    ];
    for i in 0..instances {
        let mut instance = Instance::schedule(app.id.clone(), version, version);
        let task_id = instance.next_task_id();
        instance.incarnation = 1;
        instance.task = Some(InstanceTask {
            condition: Condition::Running,
            started_at: Some(version.plus_millis(1500)),
            healthy: Some(true),
            recent_update_uuids: vec![baton::state::instance::UpdateUuid(
                0x0011_2233_4455_6677_8899_aabb_ccdd_eeff,
            )],
            ..InstanceTask::launched(
                task_id,
                format!("agent-{}", (a + i) % 1000),
                format!("10.0.{}.{}", (a + i) % 250, i),
                vec![31_000 + i as u64],
                version,
            )
        });
        changes.push(instance_change(&instance).expect("instance record"));
    }
    changes
}

fn main() {
    let apps = size("APPS", 10_000);
    let instances = size("INSTANCES", 10);
    let runtime = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .enable_all()
        .build()
        .expect("runtime");
    runtime.block_on(async move {
        let zk = ZooKeeper::start().await;
        let url = ZkUrl::parse(&zk.url("/baton")).expect("URL");
        let connect = || url.connect(Duration::from_secs(10));
        println!("ZooKeeper state: {apps} apps × {instances} instances, on a 2-CPU machine");

        let writer = Arc::new(ZkStore::open(connect().await.expect("session"), None).await.expect("store"));
        let started = Instant::now();
        let mut records = 0usize;
        let mut largest = (0usize, String::new());
        for first in (0..apps).step_by(APPS_PER_BATCH) {
            let batch: Vec<Change> = (first..(first + APPS_PER_BATCH).min(apps))
                .flat_map(|a| app_records(a, instances))
                .collect();
            for change in &batch {
                if let Change::Put { key, value, .. } = change {
                    let stored = encode_value(value).len();
                    if stored > largest.0 {
                        largest = (stored, key.clone());
                    }
                }
            }
            records += batch.len();
            let store = writer.clone();
            tokio::task::spawn_blocking(move || store.apply(&batch))
                .await
                .expect("write task")
                .expect("write");
        }
        let wrote = started.elapsed();
        println!(
            "wrote {records} records (one znode each) in {:.2} s ({:.0} records/s)",
            wrote.as_secs_f64(),
            records as f64 / wrote.as_secs_f64()
        );
        println!(
            "largest znode: {} bytes ({}), {:.2} % of ZooKeeper's 1 MB limit; Baton refuses records above {MAX_RECORD} bytes",
            largest.0,
            largest.1,
            100.0 * largest.0 as f64 / ZNODE_LIMIT as f64
        );

        // A new leader: new session, read everything, build the state.
        let started = Instant::now();
        let store = ZkStore::open(connect().await.expect("session"), None).await.expect("open");
        let read = started.elapsed();
        let view = load_view(&store).expect("load");
        let loaded = started.elapsed();
        let loaded_instances: usize = view.instances.values().map(|m| m.len()).sum();
        assert_eq!(view.apps.len(), apps);
        assert_eq!(loaded_instances, apps * instances);
        println!(
            "new leader load: {:.2} s ({:.2} s reading znodes, {:.2} s decoding) for {} apps and {loaded_instances} instances (goal: under 5 s)",
            loaded.as_secs_f64(),
            read.as_secs_f64(),
            (loaded - read).as_secs_f64(),
            view.apps.len(),
        );
        drop(zk);
    });
}
