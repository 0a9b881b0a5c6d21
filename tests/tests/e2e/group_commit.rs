//! Group commit under `kill -9`: 16 clients create and update apps at
//! once, so that Baton commits their writes in groups; Baton is killed
//! with SIGKILL in the middle of the burst, after some writes were
//! answered and while others are in flight, then started again on the
//! same data directory. Every write it answered must be there, as
//! answered; a write it did not answer may be there or not, but whole —
//! nothing half-applied, no deployment left over.

use std::collections::BTreeMap;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use baton_e2e::baton::{BatonProcess, Master};
use baton_e2e::wait;
use serde_json::{Value, json};

const CLIENTS: usize = 16;
/// Baton is killed once this many writes were answered.
const KILL_AFTER_ACKS: usize = 300;
const DEADLINE: Duration = Duration::from_secs(60);
const PREFIX: &str = "/burst";

/// A write Baton answered 2xx: the app, the version it answered with, and
/// the `cmd` the write set.
#[derive(Debug, Clone)]
struct Ack {
    app: String,
    version: String,
    cmd: String,
}

fn definition(id: &str, cmd: &str) -> Value {
    json!({"id": id, "cmd": cmd, "cpus": 0.01, "mem": 8, "instances": 0})
}

/// One client: creates its apps one after another and updates each right
/// after creating it, recording what was answered, until Baton stops
/// answering. Returns how many of its requests got no answer.
async fn client(http: reqwest::Client, url: String, n: usize, acks: Arc<Mutex<Vec<Ack>>>) -> usize {
    for i in 0.. {
        let id = format!("{PREFIX}/client-{n}/app-{i}");
        let steps = [
            (
                http.post(format!("{url}/v2/apps")),
                format!("sleep 1 # {id} created"),
            ),
            (
                http.put(format!("{url}/v2/apps{id}")),
                format!("sleep 2 # {id} updated"),
            ),
        ];
        for (request, cmd) in steps {
            let Ok(response) = request.json(&definition(&id, &cmd)).send().await else {
                return 1;
            };
            let status = response.status();
            let Ok(body) = response.json::<Value>().await else {
                return 1;
            };
            assert!(status.is_success(), "{id}: {status} {body}");
            // A create answers the app; an update its deployment and
            // version.
            let version = body["version"]
                .as_str()
                .unwrap_or_else(|| panic!("{id}: no version in {body}"))
                .to_string();
            acks.lock().unwrap().push(Ack {
                app: id.clone(),
                version,
                cmd,
            });
        }
    }
    0
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn every_acknowledged_concurrent_write_survives_a_kill_9_mid_burst() {
    let dir = tempfile::tempdir().expect("temp dir");
    let mut baton = BatonProcess::start(Master::Local, &dir.path().join("baton"), &[]).await;
    let http = reqwest::Client::builder()
        .pool_max_idle_per_host(CLIENTS)
        .timeout(Duration::from_secs(30))
        .build()
        .expect("HTTP client");
    let acks = Arc::new(Mutex::new(Vec::new()));
    let clients: Vec<_> = (0..CLIENTS)
        .map(|n| tokio::spawn(client(http.clone(), baton.url.clone(), n, acks.clone())))
        .collect();

    // Mid-burst: once enough writes were answered, with the clients still
    // sending.
    wait::until(
        DEADLINE,
        &format!("{KILL_AFTER_ACKS} acknowledged writes"),
        || async { (acks.lock().unwrap().len() >= KILL_AFTER_ACKS).then_some(()) },
    )
    .await;
    baton.kill9().await;
    let mut unanswered = 0;
    for c in clients {
        unanswered += c.await.expect("a client");
    }
    let acks = acks.lock().unwrap().clone();
    eprintln!(
        "{} writes acknowledged before the kill, {unanswered} in flight",
        acks.len()
    );

    let baton = baton.restart().await;
    // Every stored deployment is driven to its end: none is left half done.
    baton.wait_no_deployments(DEADLINE).await;

    // Every acknowledged write is there: the app at the version answered,
    // or at the later one of its own update (durable, maybe unanswered).
    let mut last: BTreeMap<String, Ack> = BTreeMap::new();
    for ack in &acks {
        last.insert(ack.app.clone(), ack.clone());
    }
    let (status, body) = baton.get(&format!("/v2/apps?id={PREFIX}")).await;
    assert_eq!(status, 200, "{body}");
    let apps: BTreeMap<String, Value> = body["apps"]
        .as_array()
        .expect("apps")
        .iter()
        .map(|a| (a["id"].as_str().unwrap_or_default().to_string(), a.clone()))
        .collect();
    for (id, ack) in &last {
        let app = apps
            .get(id)
            .unwrap_or_else(|| panic!("{id}: acknowledged ({ack:?}) but lost"));
        let version = app["version"].as_str().unwrap_or_default();
        assert!(
            version >= ack.version.as_str(),
            "{id}: version {version} older than the acknowledged {}",
            ack.version
        );
        if version == ack.version {
            assert_eq!(app["cmd"], ack.cmd.as_str(), "{id}");
        }
        let (status, versions) = baton.get(&format!("/v2/apps{id}/versions")).await;
        assert_eq!(status, 200, "{versions}");
        assert!(
            versions["versions"]
                .as_array()
                .is_some_and(|v| v.iter().any(|v| v == ack.version.as_str())),
            "{id}: acknowledged version {} not among {versions}",
            ack.version
        );
    }
    // Nothing half-applied: every app there is one a client wrote, whole
    // (its definition one that was sent, its version stored with it).
    for (id, app) in &apps {
        let cmd = app["cmd"].as_str().unwrap_or_default();
        assert!(
            cmd == format!("sleep 1 # {id} created") || cmd == format!("sleep 2 # {id} updated"),
            "{id}: {cmd:?} was never sent"
        );
        let (_, versions) = baton.get(&format!("/v2/apps{id}/versions")).await;
        assert!(
            versions["versions"]
                .as_array()
                .is_some_and(|v| v.iter().any(|v| *v == app["version"])),
            "{id}: its version {} is not stored: {versions}",
            app["version"]
        );
    }
    assert!(apps.len() >= last.len());
    eprintln!(
        "after the restart: {} apps, {} of them acknowledged",
        apps.len(),
        last.len()
    );
    baton.stop().await;
}
