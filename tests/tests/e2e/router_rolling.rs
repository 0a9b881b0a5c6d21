//! A rolling upgrade behind `baton-router` (issue 6's acceptance point):
//! while Baton replaces the 4 instances of an app with a new version,
//! clients that keep sending requests through the router for its vhost see
//! no failed request, and their answers switch from the old version to the
//! new one.

use std::collections::{BTreeMap, BTreeSet};
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use baton_e2e::baton::{BatonProcess, Master};
use baton_e2e::events::EventLog;
use baton_e2e::router::{RouterProcess, task_app};
use baton_e2e::{procs, wait};
use reqwest::Method;
use serde_json::{Value, json};

const DEADLINE: Duration = Duration::from_secs(90);
const CLIENTS: usize = 3;
/// How many answers, at least, must come after the switch (all `v2`).
const LAST: usize = 60;

fn app(id: &str, marker: &str) -> Value {
    let mut app = task_app(
        id,
        marker,
        4,
        json!({
            "env": {"VERSION": "v1"},
            "labels": {"BATON_VHOST": "roll.test"},
            "upgradeStrategy": {"minimumHealthCapacity": 0.5, "maximumOverCapacity": 0.25},
        }),
    );
    app["healthChecks"][0]["maxConsecutiveFailures"] = json!(3);
    app
}

/// Waits until the router's table routes `id` to exactly the 4 tasks
/// `pick` accepts (given all of them).
async fn routed_to_4(
    router: &RouterProcess,
    id: &str,
    what: &str,
    pick: impl Fn(&[String]) -> bool,
) -> Vec<String> {
    wait::until(DEADLINE, what, || async {
        let upstreams = router.upstreams(id).await;
        (upstreams.len() == 4 && pick(&upstreams)).then_some(upstreams)
    })
    .await
}

/// What the clients saw: `(version, task)` per successful answer, in the
/// order they arrived, and every failure.
#[derive(Default)]
struct Seen {
    answers: Vec<(String, String)>,
    failures: Vec<String>,
}

impl Seen {
    fn sent(&self) -> usize {
        self.answers.len() + self.failures.len()
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn a_rolling_upgrade_through_the_router_fails_no_request() {
    baton_e2e::init_tracing();
    let marker = procs::marker("router-rolling");
    let dir = tempfile::tempdir().unwrap();
    let baton = BatonProcess::start(Master::Local, dir.path(), &[]).await;
    let router = RouterProcess::start(&baton.url, &dir.path().join("router"), &[]).await;
    let id = "/router/roll";
    let (status, body) = baton
        .request(Method::POST, "/v2/apps", Some(&app(id, &marker)))
        .await;
    assert_eq!(status, 201, "{body}");
    let old: BTreeSet<String> =
        routed_to_4(&router, id, "the router to route to the 4 v1 tasks", |_| {
            true
        })
        .await
        .into_iter()
        .collect();
    // Each of them answers through the router, as v1.
    let first = Mutex::new(BTreeSet::new());
    wait::until(DEADLINE, "answers from all 4 v1 tasks", || async {
        let reply = router.get("roll.test", "/", None).await.unwrap();
        assert_eq!(reply.status, 200, "{reply:?}");
        let (version, task) = reply.text.split_once(' ').unwrap();
        assert_eq!(version, "v1", "{reply:?}");
        assert!(old.contains(task), "{reply:?} from one of {old:?}");
        let mut first = first.lock().unwrap();
        first.insert(task.to_string());
        (first.len() == 4).then_some(())
    })
    .await;

    // Clients keep asking through the router, each on its own keep-alive
    // connection(s).
    let stop = Arc::new(AtomicBool::new(false));
    let seen = Arc::new(Mutex::new(Seen::default()));
    let clients: Vec<_> = (0..CLIENTS)
        .map(|_| {
            let (stop, seen, url) = (stop.clone(), seen.clone(), router.url.clone());
            tokio::spawn(async move {
                let http = reqwest::Client::builder()
                    .timeout(Duration::from_secs(10))
                    .no_proxy()
                    .build()
                    .unwrap();
                while !stop.load(Ordering::Relaxed) {
                    let reply = http
                        .get(format!("{url}/"))
                        .header("Host", "roll.test")
                        .send()
                        .await;
                    let outcome = match reply {
                        Ok(r) if r.status().is_success() => match r.text().await {
                            Ok(text) => match text.split_once(' ') {
                                Some((v, t)) => Ok((v.to_string(), t.to_string())),
                                None => Err(format!("unexpected body {text:?}")),
                            },
                            Err(e) => Err(format!("body: {e:?}")),
                        },
                        Ok(r) => {
                            let status = r.status();
                            Err(format!("{status}: {}", r.text().await.unwrap_or_default()))
                        }
                        Err(e) => Err(format!("{e:?}")),
                    };
                    let mut seen = seen.lock().unwrap();
                    match outcome {
                        Ok(answer) => seen.answers.push(answer),
                        Err(failure) => seen.failures.push(failure),
                    }
                }
            })
        })
        .collect();
    let answered = |n: usize| {
        let seen = seen.clone();
        async move { (seen.lock().unwrap().answers.len() >= n).then_some(()) }
    };
    wait::until(DEADLINE, "clients under way", || answered(30)).await;

    // The upgrade, to its end.
    let events = EventLog::attach(&baton.url).await;
    let started_at = seen.lock().unwrap().sent();
    let (status, answer) = baton
        .request(
            Method::PUT,
            &format!("/v2/apps{id}"),
            Some(&json!({"env": {"VERSION": "v2"}})),
        )
        .await;
    assert_eq!(status, 200, "{answer}");
    let deployment = answer["deploymentId"].as_str().unwrap().to_string();
    events
        .wait_for("the deployment to succeed", |e| {
            e["eventType"] == "deployment_success" && e["id"] == deployment.as_str()
        })
        .await;
    let succeeded_at = seen.lock().unwrap().sent();
    // The router follows: 4 new tasks, none of the old; from then on,
    // LAST more answers.
    let new = routed_to_4(&router, id, "the router to route to 4 new tasks", |u| {
        u.iter().all(|t| !old.contains(t))
    })
    .await;
    let switched_at = seen.lock().unwrap().answers.len();
    wait::until(DEADLINE, "answers after the switch", || {
        answered(switched_at + LAST)
    })
    .await;
    stop.store(true, Ordering::Relaxed);
    for client in clients {
        client.await.unwrap();
    }
    drop(events);

    let seen = std::mem::take(&mut *seen.lock().unwrap());
    let stats = router.try_admin("/_router/stats").await.unwrap_or_default();
    let app_stats = &stats["apps"][id];
    let mut by_version: BTreeMap<&str, BTreeMap<&str, u32>> = BTreeMap::new();
    for (version, task) in &seen.answers {
        *by_version
            .entry(version)
            .or_default()
            .entry(task)
            .or_default() += 1;
    }
    let first_v2 = seen.answers.iter().position(|(v, _)| v == "v2");
    let last_v1 = seen.answers.iter().rposition(|(v, _)| v == "v1");
    println!(
        "rolling upgrade through the router: {} requests sent by {CLIENTS} clients \
         ({started_at} before the PUT, {succeeded_at} at deployment_success), {} failed; \
         {} answers after the table switched; first v2 answer #{first_v2:?}, last v1 answer \
         #{last_v1:?}; router retries {}, upstream failures {}",
        seen.sent(),
        seen.failures.len(),
        seen.answers.len() - switched_at,
        app_stats["retries"],
        app_stats["upstreamFailures"],
    );
    for (version, tasks) in &by_version {
        println!("  {version}: {tasks:?}");
    }
    assert!(
        seen.failures.is_empty(),
        "no request may fail during the upgrade ({} of {}): {:#?}\n{}",
        seen.failures.len(),
        seen.sent(),
        seen.failures,
        router.log_tail()
    );
    // Versions: only v1 and v2, old tasks answered v1 and new ones v2.
    assert_eq!(
        by_version.keys().copied().collect::<Vec<_>>(),
        ["v1", "v2"],
        "{by_version:?}"
    );
    assert!(
        by_version["v1"].keys().all(|t| old.contains(*t)),
        "{by_version:?}"
    );
    assert!(
        by_version["v2"].keys().all(|t| !old.contains(*t)),
        "{by_version:?}"
    );
    // Switched: the first answers v1, the last ones (everything after the
    // table held only new tasks) v2, from all 4 new tasks.
    assert_eq!(seen.answers[0].0, "v1");
    let last = &seen.answers[switched_at..];
    assert!(last.len() >= LAST);
    let stale: Vec<_> = last.iter().filter(|(v, _)| v != "v2").collect();
    assert!(stale.is_empty(), "v1 answers after the switch: {stale:?}");
    let last_tasks: BTreeSet<&str> = last.iter().map(|(_, t)| t.as_str()).collect();
    let new: BTreeSet<&str> = new.iter().map(String::as_str).collect();
    assert_eq!(
        last_tasks, new,
        "the last answers come from the 4 new tasks"
    );

    router.stop().await;
    baton.stop().await;
    procs::assert_all_gone(&marker).await;
}
