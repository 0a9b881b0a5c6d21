//! How agents get `baton-executor`: through the Mesos fetcher cache, from a
//! URL that names the build (so each agent downloads a build once), and a
//! failure to fetch it is Baton's, not the app's — no launch delay, no
//! `lastTaskFailure`, the launch is retried with the next offer — for ten
//! failures in a row; a fetch that keeps failing then slows the app down
//! like any failing launch, so that launches do not spin.

use std::path::Path;
use std::time::Duration;

use baton_e2e::baton::{BatonProcess, Master};
use baton_e2e::binaries::binary;
use baton_e2e::wait;
use reqwest::Method;
use serde_json::json;

const DEADLINE: Duration = Duration::from_secs(60);

/// Files in every local agent's fetcher cache (hidden partial files left
/// out).
fn cached_files(data: &Path) -> Vec<(String, String)> {
    let root = data.join("mesos-local").join("fetcher-cache");
    let mut found = Vec::new();
    for agent in std::fs::read_dir(&root).into_iter().flatten().flatten() {
        for file in std::fs::read_dir(agent.path())
            .into_iter()
            .flatten()
            .flatten()
        {
            let name = file.file_name().to_string_lossy().to_string();
            if !name.starts_with('.') {
                found.push((agent.file_name().to_string_lossy().to_string(), name));
            }
        }
    }
    found.sort();
    found
}

/// What the sandboxes of the executor that ran `task_id` on the local
/// agents have in `stderr` (its directory is named after the task).
fn sandbox_stderr(data: &Path, task_id: &str) -> String {
    // agents/<agent>/frameworks/<fw>/executors/<executor>/runs/<container>
    const DEPTH: usize = 8;
    let mut said = String::new();
    let mut pending = vec![(data.join("mesos-local").join("agents"), 0)];
    while let Some((dir, depth)) = pending.pop() {
        for path in std::fs::read_dir(&dir)
            .into_iter()
            .flatten()
            .flatten()
            .map(|e| e.path())
        {
            if path.is_dir() && depth < DEPTH {
                pending.push((path, depth + 1));
            } else if path.ends_with("stderr") && path.to_string_lossy().contains(task_id) {
                said.push_str(&std::fs::read_to_string(&path).unwrap_or_default());
            }
        }
    }
    said
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_failed_executor_fetch_is_retried_without_delay_ten_times_then_throttled() {
    let dir = tempfile::tempdir().expect("temp dir");
    // Not there yet: every fetch from Baton answers 404.
    let executor = dir.path().join("bin").join("baton-executor");
    let executor_arg = executor.display().to_string();
    let baton = BatonProcess::start(
        Master::Local,
        &dir.path().join("baton"),
        &["--executor_path", &executor_arg],
    )
    .await;
    let app = json!({
        "id": "/fetch/app", "cmd": "sleep 100000", "cpus": 0.01, "mem": 8, "instances": 1,
        // Were it counted against the app, the second launch would wait a minute.
        "backoffSeconds": 60, "maxLaunchDelaySeconds": 600,
    });
    let (status, body) = baton.request(Method::POST, "/v2/apps", Some(&app)).await;
    assert_eq!(status, 201, "{body}");
    // The launch fails and is retried at once, ten times; then the app's
    // backoff applies (had the first failure counted, its 60 s delay
    // would have stopped the launches after one).
    let entry = wait::until(
        DEADLINE,
        "the launch delay after ten free retries",
        || async {
            let (_, queue) = baton.get("/v2/queue").await;
            queue["queue"]
                .as_array()
                .and_then(|q| q.iter().find(|e| e["app"]["id"] == "/fetch/app"))
                .filter(|e| e["delay"]["timeLeftSeconds"].as_u64().unwrap_or(0) > 0)
                .cloned()
        },
    )
    .await;
    let failures = baton.metric("baton_executor_fetch_failures_total").await;
    assert_eq!(failures, 11, "ten free, the eleventh delayed: {entry}");
    let failure = &entry["lastTaskFailure"];
    assert!(
        failure["taskId"]
            .as_str()
            .is_some_and(|t| t.ends_with("._app.11")),
        "the app's last failure is the eleventh launch: {entry}"
    );
    // Worded as a Mesos agent words it; which URI failed, and why, is in
    // the task's sandbox, where the fetcher writes.
    assert!(
        failure["message"]
            .as_str()
            .is_some_and(|m| m.contains("Failed to fetch all URIs")),
        "{entry}"
    );
    let task_id = failure["taskId"].as_str().unwrap_or_default();
    let fetcher_said = sandbox_stderr(&dir.path().join("baton"), task_id);
    assert!(
        fetcher_said.contains("/executor/") && fetcher_said.contains("404"),
        "the sandbox of {task_id} says: {fetcher_said:?}"
    );

    // The binary arrives and the delay is reset: the next launch runs.
    std::fs::create_dir_all(executor.parent().unwrap()).unwrap();
    std::fs::copy(binary("baton-executor"), &executor).unwrap();
    let (status, body) = baton
        .request(Method::DELETE, "/v2/queue/fetch/app/delay", None)
        .await;
    assert_eq!(status, 204, "{body}");
    baton.wait_running("/fetch/app", 1, DEADLINE).await;
    baton.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn each_agent_fetches_the_executor_build_once_through_its_cache() {
    let dir = tempfile::tempdir().expect("temp dir");
    let data = dir.path().join("baton");
    let baton = BatonProcess::start(Master::Local, &data, &[]).await;
    let app = json!({
        "id": "/fetch/many", "cmd": "sleep 100000", "cpus": 0.01, "mem": 8, "instances": 6,
    });
    let (status, body) = baton.request(Method::POST, "/v2/apps", Some(&app)).await;
    assert_eq!(status, 201, "{body}");
    let tasks = baton.wait_running("/fetch/many", 6, DEADLINE).await;
    let hosts: std::collections::BTreeSet<&str> =
        tasks.iter().filter_map(|t| t["host"].as_str()).collect();
    let cached = cached_files(&data);
    // One cached file per agent that ran a task: the same build, whatever
    // the number of tasks there.
    assert_eq!(
        cached.len(),
        hosts.len(),
        "{cached:?} for tasks on {hosts:?}"
    );
    assert!(
        cached.iter().all(|(_, f)| f.ends_with("-baton-executor")),
        "{cached:?}"
    );
    // The URL names the build: the cache key is the same on every agent.
    let keys: std::collections::BTreeSet<&str> = cached.iter().map(|(_, f)| f.as_str()).collect();
    assert_eq!(keys.len(), 1, "{cached:?}");
    let (status, body) = baton
        .request(Method::DELETE, "/v2/apps/fetch/many", None)
        .await;
    assert_eq!(status, 200, "{body}");
    baton.stop().await;
}
