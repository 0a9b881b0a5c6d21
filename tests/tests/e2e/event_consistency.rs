//! Read-after-event consistency, the way marathon-lb and Traefik rely on
//! it: a client that re-reads the REST API the moment an event reaches it
//! must see that event's change. One subscriber follows `/v2/events` while
//! apps are deployed, scaled, restarted, made sick and well, and have tasks
//! killed; for every event it reads the API at once and checks the change
//! is there (or already overtaken by a later change: one whose event, seen
//! later on the stream, is stamped no later than the read's answer; or, for
//! a task missing with its whole app, the app's deletion, stamped so too).
//!
//! Events' `timestamp`s are Baton's wall clock, in milliseconds, taken
//! before the snapshot holding the change is published; Baton runs on this
//! machine, so a read's answer time from this process's wall clock is
//! comparable. A change the read could have seen was therefore stamped at
//! or before the read's answer: a later event stamped after it explains
//! nothing, however surely the test's own script brings one.

use std::collections::{BTreeMap, BTreeSet};
use std::sync::atomic::{AtomicBool, AtomicI64, AtomicUsize, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use baton::state::app::Timestamp;
use baton_e2e::apps::{self, HealthCounts};
use baton_e2e::baton::{BatonProcess, Master};
use baton_e2e::{events, procs, wait};
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
    /// The change is missing: stale, unless the explanation holds as of
    /// the read's answer.
    MissingUnless(String, Explanation),
    /// The read shows an older state than the event: stale.
    Stale(String),
}

/// What shows a read missing a change had overtaken it rather than lagged.
enum Explanation {
    /// A later event on the stream that matches, stamped no later than the
    /// read's answer.
    Later(Box<dyn Fn(&Value) -> bool + Send>),
    /// The app was deleted by the read's answer: of the deployments stamped
    /// by then, the last (in the stream's order) acting on it stops it.
    /// `/v2/apps` lists no deleted app, nor the tasks it is still killing.
    AppDeleted(String),
}

/// A task missing from its app's tasks (`app_listed`: whether the app was
/// listed at all): explained by the app's deletion when the app is
/// missing too, else by `later`.
fn not_listed(
    why: String,
    app: &str,
    app_listed: bool,
    later: Box<dyn Fn(&Value) -> bool + Send>,
) -> Verdict {
    if app_listed {
        Verdict::MissingUnless(why, Explanation::Later(later))
    } else {
        Verdict::MissingUnless(
            format!("{why} (nor is {app})"),
            Explanation::AppDeleted(app.to_string()),
        )
    }
}

/// What the deployment a `deployment_info` announces does to `app`, if
/// anything (`StopApplication`, `ScaleApplication`, …).
fn action_on<'a>(event: &'a Value, app: &str) -> Option<&'a str> {
    if event["eventType"] != "deployment_info" {
        return None;
    }
    event["plan"]["steps"]
        .as_array()?
        .iter()
        .flat_map(|step| step["actions"].as_array().into_iter().flatten())
        .find(|action| action["app"] == app)
        .and_then(|action| action["action"].as_str())
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
            let app = event["appId"].as_str().unwrap_or("");
            let listed = app_tasks(baton, app).await;
            let shown = listed
                .iter()
                .flatten()
                .find(|t| t["id"] == task_id.as_str())
                .map(|t| t["state"].as_str().unwrap_or("").to_string());
            let wanted = rank(event["taskStatus"].as_str().unwrap_or(""));
            match shown {
                Some(state) if rank(&state) >= wanted => Verdict::Seen,
                Some(state) => Verdict::Stale(format!(
                    "{task_id} is {state} after an event saying {}",
                    event["taskStatus"]
                )),
                None if wanted == 4 => Verdict::Seen,
                None => not_listed(
                    format!("{task_id} is not listed after {}", event["taskStatus"]),
                    app,
                    listed.is_some(),
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
            let app = event["runSpecId"].as_str().unwrap_or("");
            let listed = app_tasks(baton, app).await;
            let tasks = listed.clone().unwrap_or_default();
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
                None => not_listed(
                    format!(
                        "{task_id} is not listed after its instance became {}",
                        event["condition"]
                    ),
                    app,
                    listed.is_some(),
                    ended_later(task_id),
                ),
            }
        }
        "health_status_changed_event" => {
            let task_id = event["taskId"].as_str().unwrap_or("").to_string();
            let alive = event["alive"].as_bool().unwrap_or(false);
            let app = event["appId"].as_str().unwrap_or("");
            let listed = app_tasks(baton, app).await;
            let results: Vec<bool> = listed
                .iter()
                .flatten()
                .find(|t| t["id"] == task_id.as_str())
                .and_then(|t| t["healthCheckResults"].as_array())
                .map(|r| r.iter().map(|c| c["alive"] == true).collect())
                .unwrap_or_default();
            if !results.is_empty() && results.iter().all(|a| *a == alive) {
                return Verdict::Seen;
            }
            let flip_id = task_id.clone();
            not_listed(
                format!("{task_id}'s healthCheckResults are {results:?} after alive={alive}"),
                app,
                listed.is_some(),
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
                Explanation::Later(Box::new(move |e| {
                    matches!(
                        e["eventType"].as_str(),
                        Some("deployment_success" | "deployment_failed")
                    ) && e["id"] == id.as_str()
                })),
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
/// marathon-lb reads on every event); `None` when it lists no such app.
async fn app_tasks(baton: &BatonProcess, app: &str) -> Option<Vec<Value>> {
    let (status, body) = baton.get("/v2/apps?embed=apps.tasks").await;
    assert_eq!(status, 200, "{body}");
    body["apps"]
        .as_array()
        .into_iter()
        .flatten()
        .find(|a| a["id"] == app)
        .map(|a| a["tasks"].as_array().cloned().unwrap_or_default())
}

/// An event's `timestamp`.
fn stamped(event: &Value) -> Option<Timestamp> {
    event["timestamp"].as_str()?.parse().ok()
}

/// A read that was missing its event's change, waiting for a later event
/// to explain it.
struct Pending {
    /// The event's position in the log.
    position: usize,
    /// What was missing.
    why: String,
    /// When the read's answer was in (this process's wall clock).
    answered: Timestamp,
    /// The event's type.
    kind: String,
    /// What would explain it, as of `answered`.
    explanation: Explanation,
}

/// What the checker found, shared with the test body.
#[derive(Default)]
struct Findings {
    /// Events the stream delivered.
    received: AtomicUsize,
    /// Events the checker is done with (read and judged, or unchecked).
    judged: AtomicUsize,
    /// The most events delivered but not yet judged, as each judgment
    /// ended: how far behind the stream the checker's reads were.
    max_backlog: AtomicUsize,
    /// The most milliseconds from an event's timestamp to its read's
    /// answer.
    max_lag_ms: AtomicI64,
    checked: AtomicUsize,
    /// Reads that showed the event's change itself.
    exact: AtomicUsize,
    by_type: Mutex<BTreeMap<String, usize>>,
    stale: Mutex<Vec<String>>,
    /// Reads that were missing a change.
    pending: Mutex<Vec<Pending>>,
    log: Mutex<Vec<Value>>,
}

impl Findings {
    /// Events delivered but not yet judged.
    fn backlog(&self) -> usize {
        let judged = self.judged.load(Ordering::SeqCst);
        self.received.load(Ordering::SeqCst).saturating_sub(judged)
    }
}

async fn check_events(
    baton: Arc<BatonProcess>,
    mut incoming: mpsc::UnboundedReceiver<Value>,
    findings: Arc<Findings>,
    stop: Arc<AtomicBool>,
) {
    // The checker's own copy of the log, read without copying it per event.
    let mut log = Vec::new();
    while let Some(event) = incoming.recv().await {
        if stop.load(Ordering::SeqCst) {
            return;
        }
        let verdict = judge(&baton, &event, &log).await;
        let answered = Timestamp::now();
        log.push(event.clone());
        let position = log.len() - 1;
        findings.log.lock().unwrap().push(event.clone());
        findings.judged.fetch_add(1, Ordering::SeqCst);
        let backlog = findings.backlog();
        findings.max_backlog.fetch_max(backlog, Ordering::SeqCst);
        let kind = event["eventType"].as_str().unwrap_or("").to_string();
        if !matches!(verdict, Verdict::Unchecked) {
            findings.checked.fetch_add(1, Ordering::SeqCst);
            *findings.by_type.lock().unwrap().entry(kind).or_default() += 1;
            if let Some(at) = stamped(&event) {
                let lag = answered.as_millis() - at.as_millis();
                findings.max_lag_ms.fetch_max(lag, Ordering::SeqCst);
            }
        }
        match verdict {
            Verdict::Unchecked => {}
            Verdict::Seen => {
                findings.exact.fetch_add(1, Ordering::SeqCst);
            }
            Verdict::Stale(why) => findings
                .stale
                .lock()
                .unwrap()
                .push(format!("{why} (event {position}, backlog {backlog})")),
            Verdict::MissingUnless(why, explanation) => {
                findings.pending.lock().unwrap().push(Pending {
                    position,
                    why: format!("{why} (event {position}, backlog {backlog})"),
                    answered,
                    kind: event["eventType"].as_str().unwrap_or("").to_string(),
                    explanation,
                });
            }
        }
    }
}

/// Whether the pending read is explained as of its answer; otherwise why
/// not, for the failure message. Timestamps have millisecond resolution on
/// both sides, so an event stamped the very millisecond of the answer
/// counts.
fn excuse(log: &[Value], pending: &Pending) -> Result<(), String> {
    let by_answer = |e: &Value| stamped(e).is_some_and(|at| at <= pending.answered);
    match &pending.explanation {
        Explanation::Later(explains) => {
            let mut explaining = log[pending.position + 1..].iter().filter(|e| explains(e));
            let Some(first) = explaining.next() else {
                return Err(format!("{}; no later event explains it", pending.why));
            };
            if std::iter::once(first).chain(explaining).any(by_answer) {
                return Ok(());
            }
            Err(format!(
                "{}; read answered at {}, the first later event explaining it is stamped {}",
                pending.why, pending.answered, first["timestamp"]
            ))
        }
        Explanation::AppDeleted(app) => {
            let last = log
                .iter()
                .filter(|e| by_answer(e))
                .filter_map(|e| action_on(e, app))
                .next_back();
            if last == Some("StopApplication") {
                return Ok(());
            }
            Err(format!(
                "{}; read answered at {}, when the last deployment acting on {app} was {last:?}",
                pending.why, pending.answered
            ))
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

/// Every web task running and healthy.
const WEB_WELL: HealthCounts = HealthCounts {
    running: WEB_INSTANCES,
    healthy: WEB_INSTANCES,
    unhealthy: 0,
};
/// Every web task running and unhealthy.
const WEB_SICK: HealthCounts = HealthCounts {
    running: WEB_INSTANCES,
    healthy: 0,
    unhealthy: WEB_INSTANCES,
};

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
    let marker = procs::marker("event-consistency");

    let findings = Arc::new(Findings::default());
    let stop = Arc::new(AtomicBool::new(false));
    let (tx, rx) = mpsc::unbounded_channel();
    let received = findings.clone();
    let reader = events::follow(&baton.url, move |event| {
        received.received.fetch_add(1, Ordering::SeqCst);
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
        "id": WEB, "cmd": apps::sick_well_server(&marker), "cpus": 0.02, "mem": 32,
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
    apps::wait_health_counts(&baton, WEB, WEB_WELL, DEADLINE).await;
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
        apps::wait_health_counts(&baton, WEB, WEB_SICK, DEADLINE).await;
        for task in &tasks {
            get_task_url(&client, task, "/well").await;
        }
        apps::wait_health_counts(&baton, WEB, WEB_WELL, DEADLINE).await;
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
        apps::wait_health_counts(&baton, WEB, WEB_WELL, DEADLINE).await;
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
    let unstamped: Vec<&Value> = log.iter().filter(|e| stamped(e).is_none()).collect();
    assert!(
        unstamped.is_empty(),
        "events without a timestamp: {unstamped:#?}"
    );
    let mut stale = findings.stale.lock().unwrap().clone();
    let mut excused = 0;
    let mut excused_by_type: BTreeMap<String, usize> = BTreeMap::new();
    for pending in findings.pending.lock().unwrap().iter() {
        match excuse(&log, pending) {
            Ok(()) => {
                excused += 1;
                let why = match pending.explanation {
                    Explanation::Later(_) => "overtaken",
                    Explanation::AppDeleted(_) => "app deleted",
                };
                *excused_by_type
                    .entry(format!("{} ({why})", pending.kind))
                    .or_default() += 1;
            }
            Err(why) => stale.push(why),
        }
    }
    let checked = findings.checked.load(Ordering::SeqCst);
    let exact = findings.exact.load(Ordering::SeqCst);
    let by_type = findings.by_type.lock().unwrap().clone();
    let backlog = format!(
        "backlog: largest {}, at the end {} ({} events received, {} judged); \
         largest lag from an event's timestamp to its read's answer {} ms",
        findings.max_backlog.load(Ordering::SeqCst),
        findings.backlog(),
        findings.received.load(Ordering::SeqCst),
        findings.judged.load(Ordering::SeqCst),
        findings.max_lag_ms.load(Ordering::SeqCst),
    );
    eprintln!(
        "{checked} events checked in {rounds} rounds: {by_type:?}; reads: {exact} exact, \
         {excused} excused {excused_by_type:?}, {} stale; {backlog}",
        stale.len()
    );
    assert!(
        stale.is_empty(),
        "{} of {checked} reads right after an event did not show its change \
         ({exact} exact, {excused} excused; {backlog}): {:#?}",
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

    // Every task ended with its app; Baton stops its embedded cluster on
    // SIGTERM, and nothing carrying the marker outlives them.
    let baton = Arc::into_inner(baton).expect("the checker let go of Baton");
    baton.stop().await;
    procs::assert_all_gone(&marker).await;
}
