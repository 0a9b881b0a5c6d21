//! `--max_instances_per_app`, and what a huge `instances` costs: a write
//! above the limit is a 422 that names the field, whichever way it comes
//! (POST, PUT, PATCH, bulk PUT, a group, a group's `scaleBy`); an app at
//! the limit costs memory and store space for the instances launched plus
//! one bounded batch waiting, not for every instance asked for — before and
//! after a `kill -9`.

use std::path::Path;
use std::time::Duration;

use baton_e2e::baton::{BatonProcess, Master};
use baton_e2e::wait;
use reqwest::Method;
use serde_json::{Value, json};

const DEADLINE: Duration = Duration::from_secs(60);
/// Baton's resident memory may not pass this while it holds a million
/// wanted instances (before the bound, a million cost 1.3 GB).
const RSS_BOUND: u64 = 200 * 1024 * 1024;
/// Nor may its store (before the bound, a million took 376 MB on disk).
const STORE_BOUND: u64 = 64 * 1024 * 1024;

fn violation_paths(body: &Value) -> Vec<String> {
    body["details"]
        .as_array()
        .into_iter()
        .flatten()
        .filter_map(|d| d["path"].as_str().map(str::to_string))
        .collect()
}

async fn assert_refused(
    baton: &BatonProcess,
    method: Method,
    path: &str,
    body: Value,
    field: &str,
) {
    let (status, answer) = baton.request(method.clone(), path, Some(&body)).await;
    assert_eq!(status, 422, "{method} {path}: {answer}");
    let paths = violation_paths(&answer);
    assert!(
        paths.iter().any(|p| p.ends_with(field)),
        "{method} {path}: no violation names {field}: {answer}"
    );
    assert!(
        answer.to_string().contains("max_instances_per_app"),
        "{method} {path}: the message names the limit: {answer}"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn instances_above_the_limit_are_refused_with_422_naming_the_field() {
    let dir = tempfile::tempdir().expect("temp dir");
    let mut baton = BatonProcess::start(
        Master::Local,
        dir.path(),
        &["--max_instances_per_app", "50"],
    )
    .await;
    let (_, info) = baton.get("/v2/info").await;
    assert_eq!(
        info["marathon_config"]["max_instances_per_app"], 50,
        "{info}"
    );

    let app = |id: &str, n: u64| json!({"id": id, "cmd": "sleep 1000", "cpus": 0.01, "mem": 8, "instances": n});
    // i32::MAX parses as an instance count: refused by the limit, not stored.
    for n in [2_147_483_647u64, 51] {
        assert_refused(
            &baton,
            Method::POST,
            "/v2/apps",
            app("/limits/a", n),
            "/instances",
        )
        .await;
    }
    // Past i32::MAX the parser itself refuses it.
    let (status, body) = baton
        .request(
            Method::POST,
            "/v2/apps",
            Some(&app("/limits/a", 4_294_967_295)),
        )
        .await;
    assert_eq!(status, 422, "{body}");
    assert_eq!(violation_paths(&body), ["/instances"], "{body}");
    let (status, body) = baton.get("/v2/apps/limits/a").await;
    assert_eq!(status, 404, "nothing was stored: {body}");

    let (status, body) = baton
        .request(Method::POST, "/v2/apps", Some(&app("/limits/g/b", 3)))
        .await;
    assert_eq!(status, 201, "{body}");
    baton.wait_running("/limits/g/b", 3, DEADLINE).await;
    baton.wait_no_deployments(DEADLINE).await;
    let one_app = "/v2/apps/limits/g/b";
    let too_many = json!({"instances": 51});
    for (method, path, body) in [
        (Method::PUT, one_app, too_many.clone()),
        (Method::PATCH, one_app, too_many),
        (
            Method::PUT,
            "/v2/apps",
            json!([{"id": "/limits/g/b", "instances": 51}]),
        ),
    ] {
        assert_refused(&baton, method, path, body, "/instances").await;
    }
    assert_refused(
        &baton,
        Method::POST,
        "/v2/groups",
        json!({"id": "/limits/h", "apps": [app("/limits/h/c", 1), app("/limits/h/d", 60)]}),
        "/apps(1)/instances",
    )
    .await;
    // scaleBy computes the count: the scheduler's own check refuses it.
    assert_refused(
        &baton,
        Method::PUT,
        "/v2/groups/limits/g?force=true",
        json!({"scaleBy": 20}),
        "/instances",
    )
    .await;
    let (_, body) = baton.get("/v2/apps/limits/g/b").await;
    assert_eq!(body["app"]["instances"], 3, "unchanged: {body}");
    // At the limit is fine.
    let (status, body) = baton
        .request(
            Method::PUT,
            "/v2/apps/limits/g/b?force=true",
            Some(&json!({"instances": 50})),
        )
        .await;
    assert_eq!(status, 200, "{body}");
    assert!(baton.alive(), "{}", baton.log_tail());
}

fn dir_size(dir: &Path) -> u64 {
    let Ok(entries) = std::fs::read_dir(dir) else {
        return 0;
    };
    entries
        .flatten()
        .map(|e| match e.file_type() {
            Ok(t) if t.is_dir() => dir_size(&e.path()),
            _ => e.metadata().map_or(0, |m| m.len()),
        })
        .sum()
}

/// The store's files (the embedded cluster's sandboxes left out).
fn store_size(data_dir: &Path) -> u64 {
    dir_size(data_dir) - dir_size(&data_dir.join("mesos-local"))
}

/// The process's peak resident memory so far.
fn peak_rss(baton: &BatonProcess) -> u64 {
    baton.peak_rss_bytes().expect("baton's VmHWM")
}

/// Polls `/v2/queue` until `app` waits with `count`.
async fn wait_queued(baton: &BatonProcess, app: &str, count: u64) {
    wait::until(
        DEADLINE,
        &format!("{app} queued with {count}"),
        || async move {
            let (_, queue) = baton.get("/v2/queue").await;
            queue["queue"]
                .as_array()
                .into_iter()
                .flatten()
                .find(|e| e["app"]["id"] == app && e["count"] == count)
                .map(|_| ())
        },
    )
    .await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_app_at_a_million_instances_costs_only_what_it_launched() {
    const MILLION: u64 = 1_000_000;
    let dir = tempfile::tempdir().expect("temp dir");
    let data = dir.path().join("baton");
    let baton = BatonProcess::start(
        Master::Local,
        &data,
        &["--max_instances_per_app", &MILLION.to_string()],
    )
    .await;

    // No agent matches: every instance waits.
    let nowhere = json!({
        "id": "/huge/nowhere", "cmd": "sleep 1000", "cpus": 0.01, "mem": 8, "instances": MILLION,
        "constraints": [["hostname", "LIKE", "nowhere"]],
    });
    let (status, body) = baton
        .request(Method::POST, "/v2/apps", Some(&nowhere))
        .await;
    assert_eq!(status, 201, "{body}");
    wait_queued(&baton, "/huge/nowhere", MILLION).await;

    // One instance per agent fits; scaled from 2 to a million, 3 launch.
    let capped = json!({
        "id": "/huge/capped", "cmd": "sleep 1000", "cpus": 0.01, "mem": 8, "instances": 2,
        "constraints": [["hostname", "MAX_PER", "1"]],
    });
    let (status, body) = baton.request(Method::POST, "/v2/apps", Some(&capped)).await;
    assert_eq!(status, 201, "{body}");
    baton.wait_running("/huge/capped", 2, DEADLINE).await;
    let (status, body) = baton
        .request(
            Method::PUT,
            "/v2/apps/huge/capped",
            Some(&json!({"instances": MILLION})),
        )
        .await;
    assert_eq!(status, 200, "{body}");
    baton.wait_running("/huge/capped", 3, DEADLINE).await;
    wait_queued(&baton, "/huge/capped", MILLION - 3).await;
    let peak = peak_rss(&baton);
    let store = store_size(&data);
    eprintln!("peak RSS {} MiB, store {} KiB", peak >> 20, store >> 10);
    assert!(peak < RSS_BOUND, "peak RSS {} MiB", peak >> 20);
    assert!(store < STORE_BOUND, "store {} KiB", store >> 10);

    // kill -9: the restart loads both apps and stays within the bound.
    let baton = baton.restart().await;
    wait_queued(&baton, "/huge/nowhere", MILLION).await;
    baton.wait_running("/huge/capped", 3, DEADLINE).await;
    wait_queued(&baton, "/huge/capped", MILLION - 3).await;
    let peak = peak_rss(&baton);
    eprintln!("after the restart: peak RSS {} MiB", peak >> 20);
    assert!(
        peak < RSS_BOUND,
        "peak RSS after the restart {} MiB",
        peak >> 20
    );
    assert!(store_size(&data) < STORE_BOUND);

    for app in ["/huge/nowhere", "/huge/capped"] {
        let (status, body) = baton
            .request(Method::DELETE, &format!("/v2/apps{app}"), None)
            .await;
        assert_eq!(status, 200, "{body}");
    }
    baton.wait_no_deployments(DEADLINE).await;
    baton.stop().await;
}
