//! `baton-router` scaling apps on the embedded local cluster, real binaries
//! throughout (baton, mesos-local agents, baton-executor, baton-router):
//!
//! - load-aware balancing: an instance made busy (a CPU burner in its
//!   process group) is reported so by its executor, and gets measurably
//!   fewer requests than its peers;
//! - autoscaling: a request rate above the target scales the app up to its
//!   maximum, and back down to its minimum once the load stops;
//! - sleep and wake: an idle app goes to 0 instances (labelled sleeping);
//!   the next request wakes it and is held until it succeeds.

use std::cell::Cell;
use std::collections::BTreeMap;
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::time::Duration;

use baton_e2e::baton::{BatonProcess, Master};
use baton_e2e::router::{RouterProcess, task_app};
use baton_e2e::{procs, wait};
use reqwest::Method;
use serde_json::{Value, json};

const DEADLINE: Duration = Duration::from_secs(90);

fn app(id: &str, marker: &str, instances: u32, labels: Value) -> Value {
    let mut app = task_app(
        id,
        marker,
        instances,
        json!({ "labels": labels, "cpus": 0.1, "mem": 48 }),
    );
    app["healthChecks"][0]["maxConsecutiveFailures"] = json!(10);
    app
}

async fn start(
    name: &str,
    router_flags: &[&str],
) -> (tempfile::TempDir, String, BatonProcess, RouterProcess) {
    baton_e2e::init_tracing();
    let marker = procs::marker(name);
    let dir = tempfile::tempdir().unwrap();
    let baton = BatonProcess::start(
        Master::Local,
        dir.path(),
        &["--load_report_interval", "500"],
    )
    .await;
    let router = RouterProcess::start(&baton.url, &dir.path().join("router"), router_flags).await;
    (dir, marker, baton, router)
}

async fn stop_all(router: RouterProcess, baton: BatonProcess, marker: &str) {
    router.stop().await;
    baton.stop().await;
    procs::assert_all_gone(marker).await;
}

/// The app as Baton shows it.
async fn app_json(baton: &BatonProcess, id: &str) -> Value {
    let (status, body) = baton.get(&format!("/v2/apps{id}")).await;
    assert_eq!(status, 200, "{body}");
    body["app"].clone()
}

/// Waits until the router routes `id` to `n` instances; their task ids.
async fn routed(router: &RouterProcess, id: &str, n: usize) -> Vec<String> {
    wait::until(
        DEADLINE,
        &format!("{id} routed to {n} instances"),
        || async {
            let upstreams = router.upstreams(id).await;
            (upstreams.len() == n).then_some(upstreams)
        },
    )
    .await
}

/// The router's JSON for one upstream of `id`.
async fn upstream(router: &RouterProcess, id: &str, task_id: &str) -> Option<Value> {
    let table = router.table().await;
    let route = table["apps"].as_array()?.iter().find(|a| a["id"] == id)?;
    route["upstreams"]
        .as_array()?
        .iter()
        .find(|u| u["taskId"] == task_id)
        .cloned()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn a_busy_instance_gets_fewer_requests_under_the_load_policy() {
    let (_dir, marker, baton, router) = start("router-load", &["--load-interval", "300ms"]).await;
    let id = "/scaling/busy";
    let (status, body) = baton
        .request(
            Method::POST,
            "/v2/apps",
            Some(&app(
                id,
                &marker,
                3,
                json!({"BATON_VHOST": "busy.test", "BATON_BALANCE": "load"}),
            )),
        )
        .await;
    assert_eq!(status, 201, "{body}");
    let tasks = routed(&router, id, 3).await;

    // The executors' reports reach Baton's /v2/tasks/load.
    let loads = wait::until(
        DEADLINE,
        "load reports with CPU use for 3 tasks",
        || async {
            let (_, body) = baton.get(&format!("/v2/tasks/load?app={id}")).await;
            let tasks = body["tasks"].as_array()?.clone();
            (tasks.len() == 3 && tasks.iter().all(|t| t["cpusUsed"].is_number())).then_some(tasks)
        },
    )
    .await;
    assert!(
        loads.iter().all(|t| t["memRssBytes"].as_u64() > Some(0)),
        "{loads:?}"
    );
    assert!(loads.iter().all(|t| t["cpusAllocated"] == 0.1), "{loads:?}");

    // Make one instance busy, directly (not through the router).
    let busy = tasks[0].clone();
    let task = baton
        .tasks(id)
        .await
        .into_iter()
        .find(|t| t["id"] == busy.as_str())
        .unwrap();
    let burn = format!(
        "http://{}:{}/burn",
        task["host"].as_str().unwrap(),
        task["ports"][0]
    );
    let reply = reqwest::Client::builder()
        .no_proxy()
        .build()
        .unwrap()
        .get(burn)
        .send()
        .await
        .unwrap();
    assert_eq!(reply.text().await.unwrap(), "burning");
    let weight = wait::until(DEADLINE, "the busy instance's weight to fall", || async {
        let w = upstream(&router, id, &busy).await?["weight"].as_u64()?;
        (w <= 250).then_some(w)
    })
    .await;

    let mut counts: BTreeMap<String, u32> = BTreeMap::new();
    for _ in 0..300 {
        let reply = router.get("busy.test", "/", None).await.unwrap();
        assert_eq!(reply.status, 200, "{reply:?}");
        *counts.entry(reply.text).or_default() += 1;
    }
    let weights: Vec<Value> =
        futures::future::join_all(tasks.iter().map(|t| upstream(&router, id, t)))
            .await
            .into_iter()
            .map(|u| u.map_or(Value::Null, |u| u["weight"].clone()))
            .collect();
    let busy_n = counts.get(&busy).copied().unwrap_or(0);
    let others: Vec<u32> = tasks[1..]
        .iter()
        .map(|t| counts.get(t).copied().unwrap_or(0))
        .collect();
    let others_mean = f64::from(others.iter().sum::<u32>()) / others.len() as f64;
    println!(
        "load policy, 300 requests: busy instance {busy_n} (weight {weight} when it fell), \
         others {others:?}; weights after: {weights:?}"
    );
    assert!(
        f64::from(busy_n) < 0.6 * others_mean,
        "busy {busy_n} vs others {others:?}"
    );
    stop_all(router, baton, &marker).await;
}

/// Sends GETs for `host` through the router about every `every` until
/// `stop`; counts the answers that were not 200.
fn load(
    router: &RouterProcess,
    host: &'static str,
    every: Duration,
    stop: Arc<AtomicBool>,
) -> (tokio::task::JoinHandle<()>, Arc<AtomicU64>, Arc<AtomicU64>) {
    let (ok, failed) = (Arc::new(AtomicU64::new(0)), Arc::new(AtomicU64::new(0)));
    let url = router.url.clone();
    let (ok_count, failed_count) = (ok.clone(), failed.clone());
    let task = tokio::spawn(async move {
        let http = reqwest::Client::builder()
            .timeout(Duration::from_secs(10))
            .no_proxy()
            .build()
            .unwrap();
        let mut ticks = tokio::time::interval(every);
        // A slow request must not be made up for by a burst (the default):
        // the load is at most one request per `every`, or a loaded machine
        // shows the routers a higher rate than the test means (and the
        // app scales past the count it asserts).
        ticks.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
        // Bounded: at most ten minutes of ticks.
        for _ in 0..(600_000 / every.as_millis().max(1) as u64) {
            if stop.load(Ordering::Relaxed) {
                return;
            }
            ticks.tick().await;
            match http
                .get(format!("{url}/"))
                .header("Host", host)
                .send()
                .await
            {
                Ok(r) if r.status() == 200 => ok_count.fetch_add(1, Ordering::Relaxed),
                _ => failed_count.fetch_add(1, Ordering::Relaxed),
            };
        }
    });
    (task, ok, failed)
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn a_request_rate_above_target_scales_up_and_back_down_within_bounds() {
    let (_dir, marker, baton, router) = start("router-autoscale", &[]).await;
    let id = "/scaling/auto";
    let labels = json!({
        "BATON_VHOST": "auto.test",
        "BATON_AUTOSCALE_MIN": "1",
        "BATON_AUTOSCALE_MAX": "3",
        "BATON_AUTOSCALE_TARGET_RPS_PER_INSTANCE": "5",
        "BATON_AUTOSCALE_WINDOW": "3s",
        "BATON_AUTOSCALE_COOLDOWN": "2s",
    });
    let (status, body) = baton
        .request(Method::POST, "/v2/apps", Some(&app(id, &marker, 1, labels)))
        .await;
    assert_eq!(status, 201, "{body}");
    routed(&router, id, 1).await;

    // About 40 requests per second: 8 instances' worth, capped at 3.
    let stop = Arc::new(AtomicBool::new(false));
    let (client, ok, failed) = load(
        &router,
        "auto.test",
        Duration::from_millis(25),
        stop.clone(),
    );
    let most = Cell::new(1);
    wait::until(
        DEADLINE,
        "the app to scale up to its maximum, 3",
        || async {
            let instances = app_json(&baton, id).await["instances"].as_u64()?;
            most.set(most.get().max(instances));
            (instances == 3).then_some(())
        },
    )
    .await;
    routed(&router, id, 3).await;
    stop.store(true, Ordering::Relaxed);
    client.await.unwrap();
    println!(
        "autoscale: under load {} ok, {} failed",
        ok.load(Ordering::Relaxed),
        failed.load(Ordering::Relaxed)
    );
    assert_eq!(
        failed.load(Ordering::Relaxed),
        0,
        "no request failed while scaling up"
    );

    // The load stopped: back to the minimum, never below it.
    let least = Cell::new(3);
    wait::until(
        DEADLINE,
        "the app to scale down to its minimum, 1",
        || async {
            let instances = app_json(&baton, id).await["instances"].as_u64()?;
            least.set(least.get().min(instances));
            (instances == 1).then_some(())
        },
    )
    .await;
    let (most, least) = (most.get(), least.get());
    assert!(
        most <= 3 && least >= 1,
        "within bounds: most {most}, least {least}"
    );
    let status = router.try_admin("/_router/autoscale").await.unwrap();
    let kinds: Vec<&str> = status["decisions"]
        .as_array()
        .unwrap()
        .iter()
        .filter(|d| d["app"] == id && d["outcome"] == "applied")
        .map(|d| d["kind"].as_str().unwrap())
        .collect();
    println!("autoscale decisions: {:#}", status["decisions"]);
    assert!(
        kinds.contains(&"scale_up") && kinds.contains(&"scale_down"),
        "{kinds:?}"
    );
    assert_eq!(status["apps"][id]["autoscale"]["max"], 3);
    stop_all(router, baton, &marker).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn an_idle_app_sleeps_and_the_next_request_wakes_it_and_succeeds() {
    let (_dir, marker, baton, router) = start("router-sleep", &[]).await;
    let id = "/scaling/nap";
    let labels = json!({
        "BATON_VHOST": "nap.test",
        "BATON_SLEEP_AFTER": "3s",
        "BATON_WAKE_TIMEOUT": "60s",
    });
    let (status, body) = baton
        .request(Method::POST, "/v2/apps", Some(&app(id, &marker, 2, labels)))
        .await;
    assert_eq!(status, 201, "{body}");
    routed(&router, id, 2).await;

    // Idle: scaled to 0 and labelled with the count to wake to.
    wait::until(
        DEADLINE,
        "the idle app to sleep with no task left",
        || async {
            let app = app_json(&baton, id).await;
            (app["instances"] == 0
                && app["labels"]["BATON_SLEEPING"] == "2"
                && baton.tasks(id).await.is_empty())
            .then_some(())
        },
    )
    .await;
    routed(&router, id, 0).await;

    // The next request wakes it, is held, and succeeds.
    let started = tokio::time::Instant::now();
    let reply = router.get("nap.test", "/", None).await.unwrap();
    let held_for = started.elapsed();
    println!(
        "a request for the sleeping app was held {held_for:?}, then answered {}",
        reply.status
    );
    assert_eq!(reply.status, 200, "{reply:?}");
    assert!(reply.text.starts_with("scaling_nap."), "{reply:?}");
    let app = app_json(&baton, id).await;
    assert_eq!(app["instances"], 2, "{app}");
    assert!(app["labels"].get("BATON_SLEEPING").is_none(), "{app}");
    let stats = router.try_admin("/_router/stats").await.unwrap();
    assert_eq!(stats["apps"][id]["wakes"], 1);
    stop_all(router, baton, &marker).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn two_routers_share_their_rates_and_one_of_them_scales_to_the_right_count() {
    let (dir, marker, baton, first) = start("router-shared", &["--router-id", "router-a"]).await;
    let second = RouterProcess::start(
        &baton.url,
        &dir.path().join("router-b"),
        &["--router-id", "router-b"],
    )
    .await;
    let id = "/scaling/shared";
    let labels = json!({
        "BATON_VHOST": "shared.test",
        "BATON_AUTOSCALE_MIN": "1",
        "BATON_AUTOSCALE_MAX": "6",
        "BATON_AUTOSCALE_TARGET_RPS_PER_INSTANCE": "5",
        "BATON_AUTOSCALE_WINDOW": "3s",
        "BATON_AUTOSCALE_COOLDOWN": "2s",
    });
    let (status, body) = baton
        .request(Method::POST, "/v2/apps", Some(&app(id, &marker, 1, labels)))
        .await;
    assert_eq!(status, 201, "{body}");
    routed(&first, id, 1).await;
    routed(&second, id, 1).await;

    // About 10 requests per second through each router: 20 in all, four
    // instances' worth; each router alone sees two instances' worth.
    let stop = Arc::new(AtomicBool::new(false));
    let (a, a_ok, a_failed) = load(
        &first,
        "shared.test",
        Duration::from_millis(100),
        stop.clone(),
    );
    let (b, b_ok, b_failed) = load(
        &second,
        "shared.test",
        Duration::from_millis(100),
        stop.clone(),
    );
    let most = Cell::new(1);
    wait::until(DEADLINE, "the app to scale to 4 instances", || async {
        let instances = app_json(&baton, id).await["instances"].as_u64()?;
        most.set(most.get().max(instances));
        (instances >= 4).then_some(())
    })
    .await;
    // Under the same load for a while more: it stays at the right count
    // (a router deciding from its own half would pull it to 2; both
    // deciding from the sum could not push it past 4).
    let watched = std::time::Instant::now();
    while watched.elapsed() < Duration::from_secs(4) {
        let instances = app_json(&baton, id).await["instances"]
            .as_u64()
            .unwrap_or(0);
        most.set(most.get().max(instances));
        assert!(
            instances >= 4,
            "scaled back to {instances} under the same load"
        );
        tokio::time::sleep(Duration::from_millis(200)).await;
    }
    stop.store(true, Ordering::Relaxed);
    a.await.unwrap();
    b.await.unwrap();
    assert_eq!(most.get(), 4, "the right count, not more");
    assert_eq!(
        a_failed.load(Ordering::Relaxed) + b_failed.load(Ordering::Relaxed),
        0
    );
    println!(
        "two routers: {} + {} requests, app scaled to {}",
        a_ok.load(Ordering::Relaxed),
        b_ok.load(Ordering::Relaxed),
        most.get()
    );

    // One router decided, the elected one; both saw the same election.
    let (a_status, b_status) = (
        first.try_admin("/_router/autoscale").await.unwrap(),
        second.try_admin("/_router/autoscale").await.unwrap(),
    );
    let applied = |status: &Value| {
        status["decisions"]
            .as_array()
            .unwrap()
            .iter()
            .filter(|d| d["app"] == id && d["outcome"] == "applied")
            .count()
    };
    println!("router-a: {a_status:#}\nrouter-b: {b_status:#}");
    assert_eq!(a_status["sharing"]["elected"], "router-a");
    assert_eq!(b_status["sharing"]["elected"], "router-a");
    assert_eq!(a_status["sharing"]["routers"].as_array().unwrap().len(), 2);
    assert!(applied(&a_status) >= 1);
    assert_eq!(applied(&b_status), 0, "the other router decided nothing");
    second.stop().await;
    stop_all(first, baton, &marker).await;
}
