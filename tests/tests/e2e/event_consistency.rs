//! Read-after-event consistency, the way marathon-lb and Traefik rely on
//! it: a client that re-reads the REST API the moment an event reaches it
//! must see that event's change. One subscriber follows `/v2/events` while
//! apps are deployed, scaled, restarted, made sick and well, and have tasks
//! killed; for every event it reads the API at once and checks the change
//! is there (or already overtaken by a later change, which a later event
//! then announces).

use std::collections::{BTreeMap, BTreeSet};
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering};
use std::time::Duration;

use baton_e2e::baton::{BatonProcess, Master};
use baton_e2e::{events, wait};
use reqwest::Method;
use serde_json::{Value, json};
use tokio::sync::mpsc;

const DEADLINE: Duration = Duration::from_secs(120);
/// Events checked before the test stops making more.
const WANTED_CHECKS: usize = 2_000;
/// Rounds of changes at most (each makes a few hundred events).
const MAX_ROUNDS: usize = 30;
const BULK: &str = "/consistency/bulk";
const WEB: &str = "/consistency/web";
const WEB_INSTANCES: u64 = 4;
const BULK_INSTANCES: u64 = 36;

/// An HTTP server on `$PORT0` whose `/health` answers 500 after `/sick`
/// and 200 again after `/well`.
fn flipping_server(marker: &str) -> String {
    let script = [
        "import http.server, sys",
        "state = {\"sick\": False}",
        "class H(http.server.BaseHTTPRequestHandler):",
        "    def do_GET(self):",
        "        if self.path == \"/sick\": state[\"sick\"] = True",
        "        if self.path == \"/well\": state[\"sick\"] = False",
        "        code = 500 if self.path == \"/health\" and state[\"sick\"] else 200",
        "        self.send_response(code)",
        "        self.send_header(\"Content-Length\", \"0\")",
        "        self.end_headers()",
        "    def log_message(self, *args): pass",
        "http.server.ThreadingHTTPServer((sys.argv[2], int(sys.argv[1])), H).serve_forever()",
    ]
    .join("\n");
    format!("exec python3 -c '{script}' $PORT0 $HOST {marker}")
}

/// How far along its life a task is, as the API shows it; terminal states
/// (and absence from the app's task list) come last.
fn rank(state: &str) -> u8 {
    match state {
        "TASK_STAGING" => 0,
        "TASK_STARTING" => 1,
        "TASK_RUNNING" => 2,
        "TASK_KILLING" => 3,
        _ => 4,
    }
}

fn instance_condition_rank(condition: &str) -> u8 {
    match condition {
        "Provisioned" | "Staging" => 0,
        "Starting" => 1,
        "Running" => 2,
        "Killing" => 3,
        _ => 4,
    }
}

/// What a read found against one event.
enum Verdict {
    /// The change is there.
    Seen,
    /// Not a change this test checks.
    Unchecked,
    /// The change is missing: stale, unless a later event (matching the
    /// predicate) shows the read had overtaken it.
    MissingUnless(String, Box<dyn Fn(&Value) -> bool + Send>),
    /// The read shows an older state than the event: stale.
    Stale(String),
}

/// The incarnation (`._app.<n>`) of a Marathon task id.
fn incarnation(task_id: &str) -> u64 {
    task_id
        .rsplit_once("._app.")
        .and_then(|(_, n)| n.parse().ok())
        .unwrap_or(0)
}

fn ended_later(task_id: String) -> Box<dyn Fn(&Value) -> bool + Send> {
    Box::new(move |e| {
        e["eventType"] == "status_update_event"
            && e["taskId"] == task_id.as_str()
            && rank(e["taskStatus"].as_str().unwrap_or("")) == 4
    })
}

/// Reads the API as marathon-lb does right after `event` and judges it.
async fn judge(baton: &BatonProcess, event: &Value, log: &[Value]) -> Verdict {
    let kind = event["eventType"].as_str().unwrap_or("");
    match kind {
        "status_update_event" => {
            let task_id = event["taskId"].as_str().unwrap_or("").to_string();
            let shown = task_state(baton, event["appId"].as_str().unwrap_or(""), &task_id).await;
            let wanted = rank(event["taskStatus"].as_str().unwrap_or(""));
            match shown {
                Some(state) if rank(&state) >= wanted => Verdict::Seen,
                Some(state) => Verdict::Stale(format!(
                    "{task_id} is {state} after an event saying {}",
                    event["taskStatus"]
                )),
                None if wanted == 4 => Verdict::Seen,
                None => Verdict::MissingUnless(
                    format!("{task_id} is not listed after {}", event["taskStatus"]),
                    ended_later(task_id),
                ),
            }
        }
        "instance_changed_event" => {
            // The task it is about: the last one of the instance announced
            // (its status_update_event comes first).
            let instance = event["instanceId"].as_str().unwrap_or("").to_string();
            let Some(task_id) = log.iter().rev().find_map(|e| {
                let id = e["taskId"].as_str()?;
                (e["eventType"] == "status_update_event" && id.starts_with(&format!("{instance}.")))
                    .then(|| id.to_string())
            }) else {
                return Verdict::Stale(format!("no status update announced {instance}'s task"));
            };
            let wanted = instance_condition_rank(event["condition"].as_str().unwrap_or(""));
            let tasks = app_tasks(baton, event["runSpecId"].as_str().unwrap_or("")).await;
            let newer = tasks.iter().any(|t| {
                let id = t["id"].as_str().unwrap_or("");
                id.starts_with(&format!("{instance}.")) && incarnation(id) > incarnation(&task_id)
            });
            let shown = tasks
                .iter()
                .find(|t| t["id"] == task_id.as_str())
                .map(|t| t["state"].as_str().unwrap_or("").to_string());
            match shown {
                _ if newer => Verdict::Seen,
                Some(state) if rank(&state) >= wanted => Verdict::Seen,
                Some(state) => Verdict::Stale(format!(
                    "{task_id} is {state} after instance {instance} became {}",
                    event["condition"]
                )),
                None if wanted == 4 => Verdict::Seen,
                None => Verdict::MissingUnless(
                    format!(
                        "{task_id} is not listed after its instance became {}",
                        event["condition"]
                    ),
                    ended_later(task_id),
                ),
            }
        }
        "health_status_changed_event" => {
            let task_id = event["taskId"].as_str().unwrap_or("").to_string();
            let alive = event["alive"].as_bool().unwrap_or(false);
            let tasks = app_tasks(baton, event["appId"].as_str().unwrap_or("")).await;
            let results: Vec<bool> = tasks
                .iter()
                .find(|t| t["id"] == task_id.as_str())
                .and_then(|t| t["healthCheckResults"].as_array())
                .map(|r| r.iter().map(|c| c["alive"] == true).collect())
                .unwrap_or_default();
            if !results.is_empty() && results.iter().all(|a| *a == alive) {
                return Verdict::Seen;
            }
            let flip_id = task_id.clone();
            Verdict::MissingUnless(
                format!("{task_id}'s healthCheckResults are {results:?} after alive={alive}"),
                Box::new(move |e| {
                    (e["eventType"] == "health_status_changed_event"
                        && e["taskId"] == flip_id.as_str()
                        && e["alive"] != alive)
                        || ended_later(flip_id.clone())(e)
                }),
            )
        }
        "deployment_info" | "deployment_step_success" => {
            let id = event["plan"]["id"].as_str().unwrap_or("").to_string();
            if baton
                .deployment_ids()
                .await
                .unwrap_or_default()
                .contains(&id)
            {
                return Verdict::Seen;
            }
            Verdict::MissingUnless(
                format!("deployment {id} is not listed after {kind}"),
                Box::new(move |e| {
                    matches!(
                        e["eventType"].as_str(),
                        Some("deployment_success" | "deployment_failed")
                    ) && e["id"] == id.as_str()
                }),
            )
        }
        "deployment_success" => {
            let id = event["id"].as_str().unwrap_or("");
            if baton
                .deployment_ids()
                .await
                .unwrap_or_default()
                .iter()
                .any(|d| d == id)
            {
                Verdict::Stale(format!("deployment {id} is still listed after its success"))
            } else {
                Verdict::Seen
            }
        }
        "app_terminated_event" => {
            let id = event["appId"].as_str().unwrap_or("");
            let (status, _) = baton.get(&format!("/v2/apps{id}")).await;
            if status == 404 {
                Verdict::Seen
            } else {
                Verdict::Stale(format!("{id} answers {status} after app_terminated_event"))
            }
        }
        "api_post_event" => {
            let id = event["appDefinition"]["id"].as_str().unwrap_or("");
            let version = event["appDefinition"]["version"].as_str().unwrap_or("");
            let (_, body) = baton.get(&format!("/v2/apps{id}")).await;
            let shown = body["app"]["version"].as_str().unwrap_or("");
            if !shown.is_empty() && shown >= version {
                Verdict::Seen
            } else {
                Verdict::Stale(format!(
                    "{id} shows version {shown:?} after a post of {version}"
                ))
            }
        }
        _ => Verdict::Unchecked,
    }
}

/// The app's tasks as `GET /v2/apps?embed=apps.tasks` lists them (what
/// marathon-lb reads on every event).
async fn app_tasks(baton: &BatonProcess, app: &str) -> Vec<Value> {
    let (status, body) = baton.get("/v2/apps?embed=apps.tasks").await;
    assert_eq!(status, 200, "{body}");
    body["apps"]
        .as_array()
        .into_iter()
        .flatten()
        .filter(|a| a["id"] == app)
        .flat_map(|a| a["tasks"].as_array().cloned().unwrap_or_default())
        .collect()
}

async fn task_state(baton: &BatonProcess, app: &str, task_id: &str) -> Option<String> {
    app_tasks(baton, app)
        .await
        .into_iter()
        .find(|t| t["id"] == task_id)
        .map(|t| t["state"].as_str().unwrap_or("").to_string())
}

/// What the checker found, shared with the test body.
#[derive(Default)]
struct Findings {
    checked: AtomicUsize,
    by_type: std::sync::Mutex<BTreeMap<String, usize>>,
    stale: std::sync::Mutex<Vec<String>>,
    /// Reads that were missing a change, with the event's position and
    /// what later event would explain them.
    #[allow(clippy::type_complexity)]
    pending: std::sync::Mutex<Vec<(usize, String, Box<dyn Fn(&Value) -> bool + Send>)>>,
    log: std::sync::Mutex<Vec<Value>>,
}

async fn check_events(
    baton: Arc<BatonProcess>,
    mut incoming: mpsc::UnboundedReceiver<Value>,
    findings: Arc<Findings>,
    stop: Arc<AtomicBool>,
) {
    while let Some(event) = incoming.recv().await {
        if stop.load(Ordering::SeqCst) {
            return;
        }
        let log = findings.log.lock().unwrap().clone();
        let verdict = judge(&baton, &event, &log).await;
        let position = {
            let mut log = findings.log.lock().unwrap();
            log.push(event.clone());
            log.len() - 1
        };
        let kind = event["eventType"].as_str().unwrap_or("").to_string();
        if !matches!(verdict, Verdict::Unchecked) {
            findings.checked.fetch_add(1, Ordering::SeqCst);
            *findings.by_type.lock().unwrap().entry(kind).or_default() += 1;
        }
        match verdict {
            Verdict::Seen | Verdict::Unchecked => {}
            Verdict::Stale(why) => findings.stale.lock().unwrap().push(why),
            Verdict::MissingUnless(why, explained_by) => {
                findings
                    .pending
                    .lock()
                    .unwrap()
                    .push((position, why, explained_by));
            }
        }
    }
}

async fn put(baton: &BatonProcess, path: &str, body: Value) -> Value {
    let (status, answer) = baton.request(Method::PUT, path, Some(&body)).await;
    assert!(
        status == 200 || status == 201,
        "PUT {path}: {status} {answer}"
    );
    answer
}

async fn counts(baton: &BatonProcess, app: &str) -> (u64, u64, u64) {
    let (_, body) = baton.get(&format!("/v2/apps{app}")).await;
    let a = &body["app"];
    let n = |f: &str| a[f].as_u64().unwrap_or(0);
    (n("tasksRunning"), n("tasksHealthy"), n("tasksUnhealthy"))
}

async fn wait_counts(baton: &BatonProcess, app: &str, running: u64, healthy: u64, unhealthy: u64) {
    let what = format!("{app}: {running} running, {healthy} healthy, {unhealthy} unhealthy");
    wait::until(DEADLINE, &what, || async {
        (counts(baton, app).await == (running, healthy, unhealthy)).then_some(())
    })
    .await;
}

async fn get_task_url(client: &reqwest::Client, task: &Value, path: &str) {
    let url = format!(
        "http://{}:{}{path}",
        task["host"].as_str().unwrap_or_default(),
        task["ports"][0]
    );
    let answer = client.get(&url).send().await;
    assert!(answer.is_ok(), "GET {url}: {answer:?}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn every_event_is_visible_to_a_read_issued_after_it() {
    let dir = tempfile::tempdir().expect("temp dir");
    let baton = Arc::new(BatonProcess::start(Master::Local, dir.path(), &[]).await);
    let marker = format!("event-consistency-{}", std::process::id());

    let findings = Arc::new(Findings::default());
    let stop = Arc::new(AtomicBool::new(false));
    let (tx, rx) = mpsc::unbounded_channel();
    let reader = events::follow(&baton.url, move |event| {
        let _ = tx.send(event);
    })
    .await;
    let checker = tokio::spawn(check_events(
        baton.clone(),
        rx,
        findings.clone(),
        stop.clone(),
    ));

    let web = json!({
        "id": WEB, "cmd": flipping_server(&marker), "cpus": 0.02, "mem": 32,
        "instances": WEB_INSTANCES,
        "healthChecks": [{
            "protocol": "HTTP", "path": "/health", "portIndex": 0,
            "gracePeriodSeconds": 5, "intervalSeconds": 1, "timeoutSeconds": 1,
            // Never killed for failing: the flips below are health events only.
            "maxConsecutiveFailures": 0,
        }],
        "labels": {"BATON_DRAIN_SECONDS": "0.2"},
        "backoffSeconds": 1,
    });
    let bulk = json!({
        "id": BULK, "cmd": format!("sleep 100000 # {marker}"), "cpus": 0.01, "mem": 8,
        "instances": 0, "labels": {"BATON_DRAIN_SECONDS": "0.1"},
    });
    for app in [&web, &bulk] {
        let (status, body) = baton.request(Method::POST, "/v2/apps", Some(app)).await;
        assert_eq!(status, 201, "{body}");
    }
    wait_counts(&baton, WEB, WEB_INSTANCES, WEB_INSTANCES, 0).await;
    baton.wait_no_deployments(DEADLINE).await;

    let client = reqwest::Client::new();
    let mut rounds = 0;
    while findings.checked.load(Ordering::SeqCst) < WANTED_CHECKS && rounds < MAX_ROUNDS {
        rounds += 1;
        // Scale: many instances up, then all down.
        put(
            &baton,
            &format!("/v2/apps{BULK}"),
            json!({"instances": BULK_INSTANCES}),
        )
        .await;
        baton
            .wait_running(BULK, BULK_INSTANCES as usize, DEADLINE)
            .await;
        // Health flips: every web task sick, then well again.
        let tasks = baton.tasks(WEB).await;
        for task in &tasks {
            get_task_url(&client, task, "/sick").await;
        }
        wait_counts(&baton, WEB, WEB_INSTANCES, 0, WEB_INSTANCES).await;
        for task in &tasks {
            get_task_url(&client, task, "/well").await;
        }
        wait_counts(&baton, WEB, WEB_INSTANCES, WEB_INSTANCES, 0).await;
        put(&baton, &format!("/v2/apps{BULK}"), json!({"instances": 0})).await;
        // Kills: one web task killed (relaunched), or a rolling restart.
        if rounds % 2 == 1 {
            let victim = tasks[0]["id"].as_str().unwrap_or_default();
            let (status, body) = baton
                .request(
                    Method::DELETE,
                    &format!("/v2/apps{WEB}/tasks/{victim}"),
                    None,
                )
                .await;
            assert_eq!(status, 200, "{body}");
        } else {
            let (status, body) = baton
                .request(Method::POST, &format!("/v2/apps{WEB}/restart"), None)
                .await;
            assert_eq!(status, 200, "{body}");
        }
        baton.wait_no_deployments(DEADLINE).await;
        wait_counts(&baton, WEB, WEB_INSTANCES, WEB_INSTANCES, 0).await;
        baton.wait_running(BULK, 0, DEADLINE).await;
    }

    // Deleting both ends with app_terminated_event for each.
    for app in [WEB, BULK] {
        let (status, body) = baton
            .request(Method::DELETE, &format!("/v2/apps{app}"), None)
            .await;
        assert_eq!(status, 200, "{body}");
    }
    baton.wait_no_deployments(DEADLINE).await;
    wait::until(
        DEADLINE,
        "both apps' app_terminated_event checked",
        || async {
            let by_type = findings.by_type.lock().unwrap();
            (by_type.get("app_terminated_event") == Some(&2)).then_some(())
        },
    )
    .await;
    // And the end of every deployment announced, which explains a read
    // that no longer lists a deployment it was told about.
    wait::until(DEADLINE, "every deployment's end checked", || async {
        let log = findings.log.lock().unwrap();
        let ids = |types: &[&str], field: fn(&Value) -> &Value| -> BTreeSet<String> {
            log.iter()
                .filter(|e| types.iter().any(|t| e["eventType"] == *t))
                .filter_map(|e| field(e).as_str().map(str::to_string))
                .collect()
        };
        let started = ids(&["deployment_info"], |e| &e["plan"]["id"]);
        let ended = ids(&["deployment_success", "deployment_failed"], |e| &e["id"]);
        started.is_subset(&ended).then_some(())
    })
    .await;
    stop.store(true, Ordering::SeqCst);
    reader.abort();
    checker.abort();
    let _ = checker.await;

    let log = findings.log.lock().unwrap().clone();
    let mut stale = findings.stale.lock().unwrap().clone();
    for (position, why, explained_by) in findings.pending.lock().unwrap().iter() {
        if !log[position + 1..].iter().any(explained_by) {
            stale.push(why.clone());
        }
    }
    let checked = findings.checked.load(Ordering::SeqCst);
    let by_type = findings.by_type.lock().unwrap().clone();
    eprintln!(
        "{checked} events checked in {rounds} rounds: {by_type:?}; {} stale",
        stale.len()
    );
    assert!(
        stale.is_empty(),
        "{} of {checked} reads right after an event did not show its change: {:#?}",
        stale.len(),
        &stale[..stale.len().min(20)]
    );
    assert!(
        checked >= WANTED_CHECKS,
        "only {checked} events checked in {rounds} rounds"
    );
    for kind in [
        "status_update_event",
        "instance_changed_event",
        "health_status_changed_event",
        "deployment_info",
        "deployment_step_success",
        "deployment_success",
        "app_terminated_event",
        "api_post_event",
    ] {
        assert!(
            by_type.get(kind).is_some_and(|n| *n > 0),
            "no {kind} checked: {by_type:?}"
        );
    }
    drop(baton);
}
