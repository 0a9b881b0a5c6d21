//! Blue/green and canary through the router: a switch record moves a
//! vhost from one app to another at once under load (no failed request,
//! no client back on the old colour, the old one scaled to 0 only after
//! its requests ended), and weights split a vhost 90/10 and then 50/50
//! without a failed request.

use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use hyper::Request;
use hyper::Response;
use hyper::body::Incoming;
use serde_json::{Value, json};

use super::proxy::{DEADLINE, FakeMarathon, Router, app, config, full, http_server};

/// An instance answering `name`; `/slow` takes `slow` and counts as done
/// in `finished` once answered.
async fn colour(
    name: &'static str,
    slow: Duration,
    finished: Arc<AtomicBool>,
) -> std::net::SocketAddr {
    http_server(move |req: Request<Incoming>| {
        let finished = finished.clone();
        async move {
            if req.uri().path() == "/slow" {
                tokio::time::sleep(slow).await;
                finished.store(true, Ordering::SeqCst);
            } else {
                // Requests stay in flight a little, as real ones do.
                tokio::time::sleep(Duration::from_millis(5)).await;
            }
            Response::new(full(name))
        }
    })
    .await
}

/// Applies the router's `PUT /v2/apps/{id}` to the fake Marathon as
/// Marathon would, and announces each change with an event; notes when
/// the old colour's scale-down arrived and whether its slow request had
/// ended by then.
fn apply_puts(
    marathon: Arc<FakeMarathon>,
    apps: Arc<Mutex<Vec<Value>>>,
    slow_done: Arc<AtomicBool>,
    scaled_after_drain: Arc<Mutex<Option<bool>>>,
) -> tokio::task::JoinHandle<()> {
    tokio::spawn(async move {
        let mut applied = 0;
        // Bounded by the test, which aborts it.
        loop {
            let puts = marathon.puts.lock().unwrap().clone();
            for (path, body) in puts.iter().skip(applied) {
                let id = path.trim_start_matches("/v2/apps").to_string();
                let mut all = apps.lock().unwrap();
                match all.iter_mut().find(|a| a["id"] == id.as_str()) {
                    Some(existing) => {
                        if let Some(labels) = body.get("labels") {
                            existing["labels"] = labels.clone();
                        }
                        if body.get("instances") == Some(&json!(0)) {
                            *scaled_after_drain.lock().unwrap() =
                                Some(slow_done.load(Ordering::SeqCst));
                            existing["instances"] = json!(0);
                            existing["tasks"] = json!([]);
                        }
                    }
                    None => {
                        let mut created = body.clone();
                        created["tasks"] = json!([]);
                        all.push(created);
                    }
                }
                marathon.set_apps(all.clone());
                drop(all);
                marathon.emit("api_post_event", json!({"appDefinition": {"id": id}}));
            }
            applied = puts.len();
            tokio::time::sleep(Duration::from_millis(5)).await;
        }
    })
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn a_blue_green_switch_moves_every_client_at_once_and_scales_blue_down_after_it_drained() {
    let slow_done = Arc::new(AtomicBool::new(false));
    let blue = colour("blue", Duration::from_millis(1500), slow_done.clone()).await;
    let green = colour("green", Duration::ZERO, Arc::new(AtomicBool::new(false))).await;
    let apps = vec![
        app(
            "/shop/blue",
            json!({"BATON_VHOST": "shop.test", "BATON_COLOR": "blue"}),
            &[("b1", blue)],
        ),
        app(
            "/shop/green",
            json!({"BATON_VHOST": "shop.test", "BATON_COLOR": "green"}),
            &[("g1", green)],
        ),
    ];
    let marathon = Arc::new(FakeMarathon::start(apps.clone()).await);
    let router = Router::start(config(&marathon)).await;
    let state = Arc::new(Mutex::new(apps));
    let scaled_after_drain = Arc::new(Mutex::new(None));
    let applier = apply_puts(
        marathon.clone(),
        state,
        slow_done.clone(),
        scaled_after_drain.clone(),
    );

    // Three clients, each noting when it sent each request and what came back.
    let stop = Arc::new(AtomicBool::new(false));
    let failures = Arc::new(AtomicUsize::new(0));
    let mut clients = Vec::new();
    for _ in 0..3 {
        let (http, url) = (router.http.clone(), router.url.clone());
        let (stop, failures) = (stop.clone(), failures.clone());
        clients.push(tokio::spawn(async move {
            let mut seen: Vec<(Instant, String)> = Vec::new();
            // Bounded: the test stops it, and at most 100,000 requests.
            while !stop.load(Ordering::SeqCst) && seen.len() < 100_000 {
                let sent = Instant::now();
                match http
                    .get(format!("{url}/"))
                    .header("Host", "shop.test")
                    .send()
                    .await
                {
                    Ok(r) if r.status() == 200 => {
                        seen.push((sent, r.text().await.unwrap_or_default()))
                    }
                    _ => {
                        failures.fetch_add(1, Ordering::SeqCst);
                    }
                }
            }
            seen
        }));
    }
    // Blue serves, and holds a slow request when the switch starts.
    let table = router
        .until("blue serving", |t| t["groups"][0]["split"] == "first")
        .await;
    assert_eq!(
        table["groups"][0]["apps"],
        json!(["/shop/blue", "/shop/green"])
    );
    let slow = {
        let (http, url) = (router.http.clone(), router.url.clone());
        tokio::spawn(async move {
            let r = http
                .get(format!("{url}/slow"))
                .header("Host", "shop.test")
                .send()
                .await
                .unwrap();
            (r.status().as_u16(), r.text().await.unwrap())
        })
    };
    // Wait until the slow request is at blue.
    let deadline = tokio::time::Instant::now() + DEADLINE;
    loop {
        let t = router.admin("/_router/table").await;
        let blue = t["apps"]
            .as_array()
            .unwrap()
            .iter()
            .find(|a| a["id"] == "/shop/blue")
            .cloned()
            .unwrap();
        if blue["upstreams"][0]["outstanding"].as_u64().unwrap_or(0) >= 1 {
            break;
        }
        assert!(
            tokio::time::Instant::now() < deadline,
            "the slow request never reached blue: {t}"
        );
        tokio::time::sleep(Duration::from_millis(5)).await;
    }

    // A client on another network is refused; this host starts it.
    let answer = router
        .http
        .post(format!("{}/_router/switch", router.url))
        .json(&json!({"vhost": "shop.test", "to": "/shop/green", "drainTimeoutSeconds": 10}))
        .send()
        .await
        .unwrap();
    assert_eq!(answer.status(), 202);
    let started: Value = answer.json().await.unwrap();
    let id = started["id"].as_u64().unwrap();
    // Once the router routes by the record, every request sent is green's.
    let mut switched_seen_at = None;
    let deadline = tokio::time::Instant::now() + DEADLINE;
    let done = loop {
        let progress = router.admin(&format!("/_router/switch/{id}")).await;
        if switched_seen_at.is_none() && !progress["switchedAtGeneration"].is_null() {
            switched_seen_at = Some(Instant::now());
        }
        if progress["phase"] == "done" || progress["phase"] == "failed" {
            break progress;
        }
        assert!(
            tokio::time::Instant::now() < deadline,
            "switch stuck: {progress}"
        );
        tokio::time::sleep(Duration::from_millis(10)).await;
    };
    assert_eq!(done["phase"], "done", "{done}");
    assert_eq!(done["from"], json!(["/shop/blue"]));
    assert_eq!(done["record"], "/baton-switch/shop.test");
    // Keep the clients going a little on green, then stop them.
    let after = Instant::now();
    while after.elapsed() < Duration::from_millis(200) {
        tokio::task::yield_now().await;
        tokio::time::sleep(Duration::from_millis(10)).await;
    }
    stop.store(true, Ordering::SeqCst);
    let switched_seen_at = switched_seen_at.expect("the switch's generation was shown");

    assert_eq!(failures.load(Ordering::SeqCst), 0, "failed requests");
    let mut totals = (0, 0);
    for client in clients {
        let seen = client.await.unwrap();
        let first_green = seen
            .iter()
            .position(|(_, a)| a == "green")
            .expect("every client reached green");
        assert!(
            seen[first_green..].iter().all(|(_, a)| a == "green"),
            "a client saw blue after green"
        );
        assert!(
            seen.iter()
                .filter(|(sent, _)| *sent > switched_seen_at)
                .all(|(_, a)| a == "green"),
            "a request sent after the switch was routed went to blue"
        );
        totals.0 += first_green;
        totals.1 += seen.len() - first_green;
    }
    assert!(
        totals.0 > 0 && totals.1 > 0,
        "blue {} green {}",
        totals.0,
        totals.1
    );
    // The slow request finished on blue, and blue went to 0 only after.
    assert_eq!(slow.await.unwrap(), (200, "blue".to_string()));
    assert_eq!(
        *scaled_after_drain.lock().unwrap(),
        Some(true),
        "blue scaled down before it drained"
    );
    let table = router.admin("/_router/table").await;
    assert_eq!(table["groups"][0]["split"], "live");
    assert_eq!(table["groups"][0]["live"], "/shop/green");
    eprintln!(
        "switch: {} requests on blue, {} on green, 0 failed; {done}",
        totals.0, totals.1
    );
    applier.abort();
    router.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_canary_takes_its_weight_and_a_new_weight_applies_without_a_failed_request() {
    let (stable, canary) = (
        colour("stable", Duration::ZERO, Arc::new(AtomicBool::new(false))).await,
        colour("canary", Duration::ZERO, Arc::new(AtomicBool::new(false))).await,
    );
    let record = |weights: &str| {
        json!({"id": "/shop/weights", "instances": 0, "tasks": [], "labels": {
            "BATON_SWITCH": "shop.test", "BATON_WEIGHTS": weights}})
    };
    let apps = vec![
        app(
            "/shop/stable",
            json!({"BATON_VHOST": "shop.test"}),
            &[("s1", stable)],
        ),
        app(
            "/shop/canary",
            json!({"BATON_VHOST": "shop.test"}),
            &[("c1", canary)],
        ),
        record("/shop/stable:90,/shop/canary:10"),
    ];
    let marathon = FakeMarathon::start(apps.clone()).await;
    let router = Router::start(config(&marathon)).await;
    let count = |router: &Router| {
        let (http, url) = (router.http.clone(), router.url.clone());
        async move {
            let mut canary = 0;
            for _ in 0..2000 {
                let r = http
                    .get(format!("{url}/"))
                    .header("Host", "shop.test")
                    .send()
                    .await
                    .unwrap();
                assert_eq!(r.status(), 200);
                if r.text().await.unwrap() == "canary" {
                    canary += 1;
                }
            }
            canary
        }
    };
    router
        .until("weights in force", |t| {
            t["groups"][0]["split"] == "recordWeights"
        })
        .await;
    let share = count(&router).await;
    eprintln!("canary at weight 10/100: {share} of 2000");
    assert!(
        (140..=260).contains(&share),
        "{share} of 2000, want 10 % ± 3 %"
    );

    // New weights, through the record alone: no app restarts, no request fails.
    let mut changed = apps;
    changed[2] = record("/shop/stable:50,/shop/canary:50");
    marathon.set_apps(changed);
    marathon.emit(
        "api_post_event",
        json!({"appDefinition": {"id": "/shop/weights"}}),
    );
    router
        .until("the new weights", |t| {
            t["groups"][0]["weights"] == json!([50, 50])
        })
        .await;
    let share = count(&router).await;
    eprintln!("canary at weight 50/100: {share} of 2000");
    assert!(
        (940..=1060).contains(&share),
        "{share} of 2000, want 50 % ± 3 %"
    );
    router.stop().await;
}

#[tokio::test]
async fn switches_are_refused_from_other_networks_and_bad_requests_are_named() {
    let marathon = FakeMarathon::start(vec![]).await;
    let mut settings = config(&marathon);
    settings.admin_allow = baton_router::access::DenyList::parse("10.0.0.0/8").0;
    let router = Router::start(settings).await;
    let post = |body: Value| {
        router
            .http
            .post(format!("{}/_router/switch", router.url))
            .json(&body)
            .send()
    };
    let refused = post(json!({"vhost": "a", "to": "/a"})).await.unwrap();
    assert_eq!(refused.status(), 403);
    router.stop().await;

    let router = Router::start(config(&marathon)).await;
    let post = |body: Value| {
        router
            .http
            .post(format!("{}/_router/switch", router.url))
            .json(&body)
            .send()
    };
    let bad = post(json!({"to": "/a"})).await.unwrap();
    assert_eq!(bad.status(), 422);
    let message: Value = bad.json().await.unwrap();
    assert_eq!(message["message"], "vhost: a non-empty string is required");
    // An app the router does not know: the switch fails and says why.
    let started: Value = post(json!({"vhost": "a.test", "to": "/nope"}))
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    let id = started["id"].as_u64().unwrap();
    let deadline = tokio::time::Instant::now() + DEADLINE;
    let failed = loop {
        let progress = router.admin(&format!("/_router/switch/{id}")).await;
        if progress["phase"] == "failed" {
            break progress;
        }
        assert!(tokio::time::Instant::now() < deadline, "{progress}");
        tokio::time::sleep(Duration::from_millis(10)).await;
    };
    let events = failed["events"].to_string();
    assert!(events.contains("the router knows no app /nope"), "{events}");
    assert!(marathon.puts.lock().unwrap().is_empty(), "nothing written");
    router.stop().await;
}
