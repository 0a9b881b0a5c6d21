//! Authorization through a standby: two `baton` processes on a real
//! ZooKeeper with `--http_credentials`, an `--acl_file` and the front-proxy
//! user header trusted from 127.0.0.1 only. The standby forwards a request
//! with its `Authorization` untouched and the leader authenticates it
//! itself, so what a user sees and may change is the same on either node;
//! a user header from an untrusted client is dropped by the standby, so
//! the leader (which trusts the standby's address) never sees it.

use std::time::Duration;

use baton_e2e::baton::{BatonProcess, Master};
use baton_e2e::cluster::MesosLocalProcess;
use baton_e2e::wait;
use baton_e2e::zookeeper::ZooKeeper;
use mesos_proto::Encoding;
use serde_json::{Value, json};

const ACL: &str = r#"{"rules": [
    {"principals": ["alice"], "actions": ["*"], "paths": ["/team-a/"]},
    {"principals": ["root"], "actions": ["*"], "paths": ["/"]}
]}"#;

async fn start_baton(
    mesos: &MesosLocalProcess,
    zk: &ZooKeeper,
    dir: &std::path::Path,
    acl: &std::path::Path,
) -> BatonProcess {
    BatonProcess::start(
        Master::Url(mesos.url.clone()),
        dir,
        &[
            "--zk",
            &zk.url("/baton"),
            "--zk_session_timeout",
            "1000",
            "--http_credentials",
            "alice:alice-pw,root:root-pw",
            "--acl_file",
            acl.to_str().unwrap(),
            "--http_user_header",
            "x-forwarded-user",
            "--http_trusted_proxies",
            "127.0.0.1/32",
            // The harness waits for the Mesos subscription on /metrics.
            "--http_open_metrics",
        ],
    )
    .await
}

async fn send(
    url: &str,
    method: reqwest::Method,
    path: &str,
    user: &str,
    body: Option<Value>,
    extra_header: Option<(&str, &str)>,
) -> (u16, Value) {
    let http = reqwest::Client::new();
    let mut request = http
        .request(method, format!("{url}{path}"))
        .basic_auth(user, Some(format!("{user}-pw")));
    if let Some(body) = body {
        request = request.json(&body);
    }
    if let Some((name, value)) = extra_header {
        request = request.header(name, value);
    }
    let response = request.send().await.unwrap();
    let status = response.status().as_u16();
    let text = response.text().await.unwrap();
    (
        status,
        serde_json::from_str(&text).unwrap_or(Value::String(text)),
    )
}

fn app(id: &str) -> Value {
    json!({"id": id, "cmd": "sleep 1000", "cpus": 0.1, "mem": 16, "instances": 0})
}

fn ids(apps: &Value) -> Vec<String> {
    let mut ids: Vec<String> = apps["apps"]
        .as_array()
        .map(|a| {
            a.iter()
                .filter_map(|x| x["id"].as_str().map(String::from))
                .collect()
        })
        .unwrap_or_default();
    ids.sort();
    ids
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_standby_enforces_the_same_acl_and_cannot_be_tricked_into_another_identity() {
    baton_e2e::init_tracing();
    let dir = tempfile::tempdir().unwrap();
    let acl = dir.path().join("acl.json");
    std::fs::write(&acl, ACL).unwrap();
    let zk = ZooKeeper::start().await;
    let mesos = MesosLocalProcess::start(&dir.path().join("mesos"), Encoding::Protobuf).await;
    let leader = start_baton(&mesos, &zk, &dir.path().join("a"), &acl).await;
    let standby = start_baton(&mesos, &zk, &dir.path().join("b"), &acl).await;
    use reqwest::Method;
    let (status, body) = send(&leader.url, Method::GET, "/v2/leader", "root", None, None).await;
    assert_eq!(status, 200, "{body}");
    assert_eq!(
        body["leader"].as_str().unwrap(),
        leader.url.trim_start_matches("http://")
    );

    // Written through the standby.
    for id in ["/team-a/web", "/team-b/db"] {
        let (status, body) = send(
            &standby.url,
            Method::POST,
            "/v2/apps",
            "root",
            Some(app(id)),
            None,
        )
        .await;
        assert_eq!(status, 201, "{body}");
    }
    let everything = wait::until(Duration::from_secs(30), "both apps listed", || async {
        let (_, apps) = send(&standby.url, Method::GET, "/v2/apps", "root", None, None).await;
        (ids(&apps).len() == 2).then_some(ids(&apps))
    })
    .await;
    assert_eq!(everything, ["/team-a/web", "/team-b/db"]);

    for url in [&leader.url, &standby.url] {
        let (status, apps) = send(url, Method::GET, "/v2/apps", "alice", None, None).await;
        assert_eq!(status, 200);
        assert_eq!(ids(&apps), ["/team-a/web"], "through {url}");
        let (status, body) = send(
            url,
            Method::PUT,
            "/v2/apps/team-b/db",
            "alice",
            Some(json!({"cmd": "sleep 1", "instances": 0})),
            None,
        )
        .await;
        assert_eq!(status, 403, "through {url}: {body}");
        assert_eq!(
            body["message"],
            "User 'alice' is not authorized to update '/team-b/db'"
        );
    }
    // The standby proxies: it names the leader.
    let (_, leader_seen) = send(&standby.url, Method::GET, "/v2/leader", "root", None, None).await;
    assert_eq!(leader_seen["leader"], body["leader"]);
    // A user header from an untrusted address (127.0.0.3) is dropped by
    // the standby: the leader, which trusts the standby's 127.0.0.1, would
    // otherwise have believed it.
    let untrusted = reqwest::Client::builder()
        .local_address(std::net::IpAddr::from([127, 0, 0, 3]))
        .build()
        .unwrap();
    let spoofed = untrusted
        .delete(format!("{}/v2/apps/team-b/db", standby.url))
        .header("x-forwarded-user", "root")
        .send()
        .await
        .unwrap();
    assert_eq!(spoofed.status(), 401);
    // From the trusted address the header names the user, through the
    // standby as on the leader.
    let trusted = reqwest::Client::new()
        .get(format!("{}/v2/apps", standby.url))
        .header("x-forwarded-user", "alice")
        .send()
        .await
        .unwrap();
    assert_eq!(trusted.status(), 200);
    let seen: Value = trusted.json().await.unwrap();
    assert_eq!(ids(&seen), ["/team-a/web"]);
    let unauthenticated = reqwest::Client::new()
        .get(format!("{}/v2/apps", standby.url))
        .send()
        .await
        .unwrap();
    assert_eq!(unauthenticated.status(), 401);
    let (_, apps) = send(&leader.url, Method::GET, "/v2/apps", "root", None, None).await;
    assert_eq!(ids(&apps), ["/team-a/web", "/team-b/db"], "nothing changed");
    for id in ["/team-a/web", "/team-b/db"] {
        send(
            &standby.url,
            Method::DELETE,
            &format!("/v2/apps{id}?force=true"),
            "root",
            None,
            None,
        )
        .await;
    }
    standby.stop().await;
    leader.stop().await;
}
