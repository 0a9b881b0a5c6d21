//! `baton-router` in front of the embedded local cluster (`baton --master
//! local`), both as real binaries: requests for a vhost spread over every
//! instance; when an instance's process is killed no client request fails
//! (retried on another instance) and the routing table drops it; a sticky
//! cookie keeps a client on one instance until that instance dies, and
//! then moves it on without an error.

use std::collections::{BTreeMap, BTreeSet};
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::time::Duration;

use baton_e2e::baton::{BatonProcess, Master};
use baton_e2e::router::{RouterProcess, task_app};
use baton_e2e::{procs, wait};
use nix::sys::signal::{Signal, kill};
use nix::unistd::Pid;
use reqwest::Method;
use serde_json::{Value, json};

const DEADLINE: Duration = Duration::from_secs(90);

fn app(id: &str, marker: &str, instances: u32, labels: Value) -> Value {
    task_app(id, marker, instances, json!({ "labels": labels }))
}

/// POSTs `app` and waits until the router routes to `n` of its instances;
/// their task ids.
async fn deploy_routed(
    baton: &BatonProcess,
    router: &RouterProcess,
    app: &Value,
    n: usize,
) -> Vec<String> {
    let id = app["id"].as_str().unwrap().to_string();
    let (status, body) = baton.request(Method::POST, "/v2/apps", Some(app)).await;
    assert_eq!(status, 201, "{body}");
    routed(router, &id, n).await
}

/// Waits until the router's table routes `id` to `n` instances.
async fn routed(router: &RouterProcess, id: &str, n: usize) -> Vec<String> {
    wait::until(
        DEADLINE,
        &format!("the router to route {id} to {n} instances"),
        || async {
            let upstreams = router.upstreams(id).await;
            (upstreams.len() == n).then_some(upstreams)
        },
    )
    .await
}

/// The pid of the server process of `task` (a task JSON from Baton).
fn server_pid(marker: &str, task: &Value) -> i32 {
    let needle = format!(
        " {} {} {marker}",
        task["ports"][0],
        task["host"].as_str().unwrap()
    );
    let pids: Vec<i32> = procs::with_marker(marker)
        .into_iter()
        .filter(|pid| procs::cmdline(*pid).contains(&needle))
        .collect();
    assert_eq!(pids.len(), 1, "one server process for {task}: {pids:?}");
    pids[0]
}

/// The task JSON of `task_id` of app `id`.
async fn task(baton: &BatonProcess, id: &str, task_id: &str) -> Value {
    baton
        .tasks(id)
        .await
        .into_iter()
        .find(|t| t["id"] == task_id)
        .unwrap_or_else(|| panic!("task {task_id} of {id}"))
}

/// SIGKILLs the process serving `task_id` and waits until it is gone.
async fn kill_task_process(baton: &BatonProcess, marker: &str, id: &str, task_id: &str) {
    let pid = server_pid(marker, &task(baton, id, task_id).await);
    kill(Pid::from_raw(pid), Signal::SIGKILL).expect("SIGKILL the task's server");
    wait::until(DEADLINE, "the killed server to be gone", || async {
        (!procs::with_marker(marker).contains(&pid)).then_some(())
    })
    .await;
}

async fn stop_all(router: RouterProcess, baton: BatonProcess, marker: &str) {
    router.stop().await;
    baton.stop().await;
    procs::assert_all_gone(marker).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn requests_spread_over_instances_and_survive_a_killed_one() {
    baton_e2e::init_tracing();
    let marker = procs::marker("router-basics");
    let dir = tempfile::tempdir().unwrap();
    let baton = BatonProcess::start(Master::Local, dir.path(), &[]).await;
    let router = RouterProcess::start(&baton.url, &dir.path().join("router"), &[]).await;
    let id = "/router/web";
    let tasks = deploy_routed(
        &baton,
        &router,
        &app(id, &marker, 3, json!({"BATON_VHOST": "web.test"})),
        3,
    )
    .await;

    // (a) 30 requests reach all three instances.
    let mut seen: BTreeMap<String, u32> = BTreeMap::new();
    for _ in 0..30 {
        let reply = router.get("web.test", "/", None).await.unwrap();
        assert_eq!(reply.status, 200, "{reply:?}");
        *seen.entry(reply.text).or_default() += 1;
    }
    println!("30 requests over the instances: {seen:?}");
    assert_eq!(
        seen.keys().cloned().collect::<BTreeSet<_>>(),
        tasks.iter().cloned().collect::<BTreeSet<_>>(),
        "every instance answered, and only they did"
    );
    // Host matching ignores the port and case; other hosts are not routed.
    let reply = router.get("WEB.test:8000", "/x", None).await.unwrap();
    assert_eq!(reply.status, 200, "{reply:?}");
    let reply = router.get("other.test", "/", None).await.unwrap();
    assert_eq!(reply.status, 404, "{reply:?}");
    let metrics = router.metrics().await;
    assert!(
        metrics.contains(&format!("baton_router_requests_total{{app=\"{id}\"}} 31")),
        "{metrics}"
    );
    assert!(
        metrics.contains(&format!(
            "baton_router_responses_total{{app=\"{id}\",class=\"2xx\"}} 31"
        )),
        "{metrics}"
    );

    // (b) Clients keep asking while one instance is SIGKILLed.
    let stop = Arc::new(AtomicBool::new(false));
    let ok = Arc::new(AtomicU64::new(0));
    let failures = Arc::new(std::sync::Mutex::new(Vec::<String>::new()));
    let clients: Vec<_> = (0..4)
        .map(|_| {
            let (stop, ok, failures) = (stop.clone(), ok.clone(), failures.clone());
            let url = router.url.clone();
            tokio::spawn(async move {
                let http = reqwest::Client::builder()
                    .timeout(Duration::from_secs(10))
                    .no_proxy()
                    .build()
                    .unwrap();
                while !stop.load(Ordering::Relaxed) {
                    let reply = http
                        .get(format!("{url}/"))
                        .header("Host", "web.test")
                        .send()
                        .await;
                    match reply {
                        Ok(r) if r.status() == 200 => {
                            ok.fetch_add(1, Ordering::Relaxed);
                        }
                        Ok(r) => {
                            let status = r.status();
                            let text = r.text().await.unwrap_or_default();
                            failures.lock().unwrap().push(format!("{status}: {text}"));
                        }
                        Err(e) => failures.lock().unwrap().push(format!("{e:?}")),
                    }
                }
            })
        })
        .collect();
    wait::until(DEADLINE, "clients under way", || async {
        (ok.load(Ordering::Relaxed) >= 20).then_some(())
    })
    .await;
    let victim = tasks[0].clone();
    kill_task_process(&baton, &marker, id, &victim).await;
    let killed_at = ok.load(Ordering::Relaxed);
    // The table drops it (the task's status update is the one event)...
    wait::until(DEADLINE, "the router to drop the killed task", || async {
        (!router.upstreams(id).await.contains(&victim)).then_some(())
    })
    .await;
    let dropped_at = ok.load(Ordering::Relaxed);
    // ...and routes to its healthy replacement once Baton has one; the
    // clients keep going all along.
    let after = routed(&router, id, 3).await;
    assert!(!after.contains(&victim), "{after:?}");
    wait::until(DEADLINE, "more requests after the replacement", || async {
        (ok.load(Ordering::Relaxed) >= dropped_at + 50).then_some(())
    })
    .await;
    stop.store(true, Ordering::Relaxed);
    for client in clients {
        client.await.unwrap();
    }
    let failures = failures.lock().unwrap().clone();
    let stats = router.try_admin("/_router/stats").await.unwrap();
    let app_stats = &stats["apps"][id];
    println!(
        "during the kill: {} requests succeeded ({killed_at} before the kill, {dropped_at} when the table dropped it), {} failed; retries {}, upstream failures {}",
        ok.load(Ordering::Relaxed),
        failures.len(),
        app_stats["retries"],
        app_stats["upstreamFailures"],
    );
    assert!(
        failures.is_empty(),
        "no client request may fail: {failures:#?}\n{}",
        router.log_tail()
    );
    let new_task = after.iter().find(|t| !tasks.contains(t)).unwrap();
    let seen_new = wait::until(DEADLINE, "the replacement to answer", || async {
        let reply = router.get("web.test", "/", None).await.ok()?;
        (reply.text == *new_task).then_some(reply.status)
    })
    .await;
    assert_eq!(seen_new, 200);

    stop_all(router, baton, &marker).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_sticky_cookie_keeps_a_client_on_its_instance_until_it_dies() {
    baton_e2e::init_tracing();
    let marker = procs::marker("router-sticky");
    let dir = tempfile::tempdir().unwrap();
    let baton = BatonProcess::start(Master::Local, dir.path(), &[]).await;
    let router = RouterProcess::start(&baton.url, &dir.path().join("router"), &[]).await;
    let id = "/router/sticky";
    let tasks = deploy_routed(
        &baton,
        &router,
        &app(
            id,
            &marker,
            3,
            json!({"BATON_VHOST": "sticky.test", "BATON_STICKY": "true"}),
        ),
        3,
    )
    .await;

    // The first answer pins the client.
    let first = router.get("sticky.test", "/", None).await.unwrap();
    assert_eq!(first.status, 200, "{first:?}");
    let pinned = first.text.clone();
    assert!(tasks.contains(&pinned), "{pinned} among {tasks:?}");
    let key = first
        .sticky_cookie()
        .unwrap_or_else(|| panic!("a sticky cookie: {first:?}"));
    let cookie = format!("BATON_STICKY={key}");

    // 100 in a row reach the same instance (and need no new cookie).
    for i in 0..100 {
        let reply = router.get("sticky.test", "/", Some(&cookie)).await.unwrap();
        assert_eq!(reply.status, 200, "request {i}: {reply:?}");
        assert_eq!(reply.text, pinned, "request {i} left its instance");
        assert_eq!(reply.sticky_cookie(), None, "request {i}: {reply:?}");
    }
    // Without the cookie, clients are spread as usual.
    let mut spread = BTreeSet::new();
    for _ in 0..6 {
        spread.insert(router.get("sticky.test", "/", None).await.unwrap().text);
    }
    assert_eq!(spread.len(), 3, "{spread:?}");

    // The pinned instance dies: the very next request succeeds elsewhere
    // and re-pins the client.
    kill_task_process(&baton, &marker, id, &pinned).await;
    let moved = router.get("sticky.test", "/", Some(&cookie)).await.unwrap();
    assert_eq!(moved.status, 200, "{moved:?}\n{}", router.log_tail());
    assert_ne!(moved.text, pinned);
    assert!(tasks.contains(&moved.text), "{moved:?}");
    let new_key = moved
        .sticky_cookie()
        .unwrap_or_else(|| panic!("a new sticky cookie: {moved:?}"));
    assert_ne!(new_key, key);
    let new_cookie = format!("BATON_STICKY={new_key}");
    for i in 0..20 {
        let reply = router
            .get("sticky.test", "/", Some(&new_cookie))
            .await
            .unwrap();
        assert_eq!(reply.status, 200, "request {i}: {reply:?}");
        assert_eq!(reply.text, moved.text, "request {i} left its new instance");
    }
    // The old cookie keeps working (re-pinned each time) while the dead
    // instance is still in or already out of the table.
    let reply = router.get("sticky.test", "/", Some(&cookie)).await.unwrap();
    assert_eq!(reply.status, 200, "{reply:?}");
    assert_ne!(reply.text, pinned);
    assert!(reply.sticky_cookie().is_some(), "{reply:?}");

    stop_all(router, baton, &marker).await;
}
