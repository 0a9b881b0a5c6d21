//! Per-app authorization with running tasks (a local cluster): a user may
//! kill and scale only their own app's tasks, whatever app a task id is
//! sent under, and sees only their apps' tasks.

use std::time::Duration;

use baton_e2e::baton::{BatonProcess, Master};
use baton_e2e::{procs, wait};
use serde_json::{Value, json};

const ACL: &str = r#"{"rules": [
    {"principals": ["alice"], "actions": ["*"], "paths": ["/team-a/"]},
    {"principals": ["root"], "actions": ["*"], "paths": ["/"]}
]}"#;

/// `baton --master local` under `dir` with alice and root and the ACL.
async fn start(dir: &std::path::Path) -> BatonProcess {
    let acl = dir.join("acl.json");
    std::fs::write(&acl, ACL).unwrap();
    BatonProcess::start(
        Master::Local,
        &dir.join("baton"),
        &[
            "--http_credentials",
            "alice:alice-pw,root:root-pw",
            "--acl_file",
            acl.to_str().unwrap(),
            "--http_open_metrics",
        ],
    )
    .await
}

async fn send(
    baton: &BatonProcess,
    method: reqwest::Method,
    path: &str,
    user: &str,
    body: Option<Value>,
) -> (u16, Value) {
    let mut request = reqwest::Client::new()
        .request(method, format!("{}{path}", baton.url))
        .basic_auth(user, Some(format!("{user}-pw")));
    if let Some(body) = body {
        request = request.json(&body);
    }
    let response = request.send().await.unwrap();
    let status = response.status().as_u16();
    let text = response.text().await.unwrap();
    (
        status,
        serde_json::from_str(&text).unwrap_or(Value::String(text)),
    )
}

async fn running_task(baton: &BatonProcess, app: &str) -> String {
    wait::until(Duration::from_secs(60), "a running task", || async {
        let (_, tasks) = send(
            baton,
            reqwest::Method::GET,
            &format!("/v2/apps{app}/tasks"),
            "root",
            None,
        )
        .await;
        tasks["tasks"]
            .as_array()?
            .iter()
            .find(|t| t["state"] == "TASK_RUNNING")
            .and_then(|t| t["id"].as_str().map(str::to_string))
    })
    .await
}

#[tokio::test]
async fn a_task_id_sent_under_another_app_is_not_killed() {
    let dir = tempfile::tempdir().unwrap();
    let marker = procs::marker("api-acl");
    let baton = start(dir.path()).await;
    use reqwest::Method;
    for id in ["/team-a/web", "/team-b/db"] {
        let app = json!({"id": id, "cmd": format!("sleep 600 # {marker}"), "cpus": 0.1, "mem": 16, "instances": 1});
        let (status, body) = send(&baton, Method::POST, "/v2/apps", "root", Some(app)).await;
        assert_eq!(status, 201, "{body}");
    }
    let theirs = running_task(&baton, "/team-b/db").await;
    running_task(&baton, "/team-a/web").await;

    let (status, body) = send(
        &baton,
        Method::DELETE,
        &format!("/v2/apps/team-a/web/tasks/{theirs}?scale=true"),
        "alice",
        None,
    )
    .await;
    assert_eq!(status, 404, "{body}");
    let (status, _) = send(
        &baton,
        Method::POST,
        "/v2/tasks/delete?scale=true",
        "alice",
        Some(json!({"ids": [theirs]})),
    )
    .await;
    assert_eq!(status, 403);
    let (_, tasks) = send(&baton, Method::GET, "/v2/tasks", "alice", None).await;
    let visible: Vec<&str> = tasks["tasks"]
        .as_array()
        .unwrap()
        .iter()
        .filter_map(|t| t["appId"].as_str())
        .collect();
    assert_eq!(visible, ["/team-a/web"]);

    // Team-b's task and instance count are as they were.
    let (_, app) = send(&baton, Method::GET, "/v2/apps/team-b/db", "root", None).await;
    assert_eq!(app["app"]["instances"], 1);
    assert_eq!(running_task(&baton, "/team-b/db").await, theirs);
    for id in ["/team-a/web", "/team-b/db"] {
        send(
            &baton,
            Method::DELETE,
            &format!("/v2/apps{id}?force=true"),
            "root",
            None,
        )
        .await;
    }
    // No password in the log, whatever was refused or accepted.
    for secret in ["alice-pw", "root-pw"] {
        assert_eq!(baton.log_lines_with(secret), 0, "{secret} in the log");
    }
    baton.stop().await;
    procs::assert_all_gone(&marker).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_user_sees_and_changes_only_the_pods_the_acl_gives_them() {
    use reqwest::Method;
    let dir = tempfile::tempdir().unwrap();
    let baton = start(dir.path()).await;
    for id in ["/team-a/cache", "/team-b/cache"] {
        let pod = json!({"id": id, "scaling": {"kind": "fixed", "instances": 0},
            "containers": [{"name": "main", "resources": {"cpus": 0.05, "mem": 16},
                "exec": {"command": {"shell": "sleep 600"}}}]});
        let (status, body) = send(&baton, Method::POST, "/v2/pods", "root", Some(pod)).await;
        assert_eq!(status, 201, "{body}");
    }
    let ids = |list: &Value| -> Vec<String> {
        list.as_array()
            .into_iter()
            .flatten()
            .filter_map(|p| p["id"].as_str().map(str::to_string))
            .collect()
    };
    // Lists hold only alice's pods; another team's is not there for her.
    let (_, pods) = send(&baton, Method::GET, "/v2/pods", "alice", None).await;
    assert_eq!(ids(&pods), ["/team-a/cache"]);
    let (_, statuses) = send(&baton, Method::GET, "/v2/pods/::status", "alice", None).await;
    assert_eq!(ids(&statuses), ["/team-a/cache"]);
    for path in [
        "/v2/pods/team-b/cache",
        "/v2/pods/team-b/cache::status",
        "/v2/pods/team-b/cache::versions",
    ] {
        let (status, body) = send(&baton, Method::GET, path, "alice", None).await;
        assert_eq!(status, 404, "{path}: {body}");
    }
    let (status, _) = send(
        &baton,
        Method::GET,
        "/v2/pods/team-a/cache::status",
        "alice",
        None,
    )
    .await;
    assert_eq!(status, 200);
    // Nor may she change or delete it.
    let (status, body) = send(
        &baton,
        Method::DELETE,
        "/v2/pods/team-b/cache",
        "alice",
        None,
    )
    .await;
    assert_eq!(status, 403, "{body}");
    let (_, pods) = send(&baton, Method::GET, "/v2/pods", "root", None).await;
    assert_eq!(ids(&pods), ["/team-a/cache", "/team-b/cache"]);
    baton.stop().await;
}
