//! `/v2/events` and `/v2/groups` against the real `baton` binary in local
//! mode:
//!
//! - the event stream: `event_stream_attached` first, then what an app's
//!   creation brings (`api_post_event`, `deployment_info`, the task's
//!   `status_update_event`s up to TASK_RUNNING, `deployment_success`);
//!   `event_type` filters; without `Accept: text/event-stream`, a 405;
//! - groups: a PUT of `/proj` with `db` and `web` (web depends on db)
//!   deploys db first — the event stream shows db's task RUNNING before
//!   any status of a web task —, GET shows the group, `scaleBy` doubles
//!   both apps, DELETE removes them;
//! - the Python `marathon` client's `event_stream()` reads a
//!   `status_update_event` (tests/python/event_stream_check.py).
//!
//! Each test stops Baton at the end and proves no task outlived it.

use std::path::Path;
use std::process::Stdio;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use baton_e2e::baton::{BatonProcess, Master};
use baton_e2e::{procs, wait};
use reqwest::Method;
use serde_json::{Value, json};

const DEADLINE: Duration = Duration::from_secs(60);

/// A process that runs until killed and whose command line carries `marker`.
fn sleeper(marker: &str) -> String {
    format!("while :; do sleep 1; done # {marker}")
}

/// A small app running [`sleeper`].
fn app(id: &str, marker: &str, extra: Value) -> Value {
    let mut app =
        json!({"id": id, "cmd": sleeper(marker), "cpus": 0.05, "mem": 16, "instances": 1});
    if let (Some(app), Some(extra)) = (app.as_object_mut(), extra.as_object()) {
        app.extend(extra.clone());
    }
    app
}

/// An open `/v2/events` stream, read in the background: every event
/// received, in order, as (`event:` type, parsed `data:`).
struct EventStream {
    seen: Arc<Mutex<Vec<(String, Value)>>>,
    reader: tokio::task::JoinHandle<()>,
}

impl EventStream {
    /// Connects to `/v2/events{query}` and checks the response is a stream.
    async fn open(baton: &BatonProcess, query: &str) -> EventStream {
        let response = reqwest::Client::new()
            .get(format!("{}/v2/events{query}", baton.url))
            .header("Accept", "text/event-stream")
            .send()
            .await
            .expect("connect to /v2/events");
        assert_eq!(response.status().as_u16(), 200, "GET /v2/events{query}");
        let content_type = response
            .headers()
            .get("content-type")
            .and_then(|v| v.to_str().ok())
            .unwrap_or_default()
            .to_string();
        assert!(
            content_type.starts_with("text/event-stream"),
            "content type {content_type:?}"
        );
        let seen = Arc::new(Mutex::new(Vec::new()));
        let sink = seen.clone();
        let reader = tokio::spawn(async move {
            // `chunk()` reads the body as it streams in, like
            // `bytes_stream()`, without needing `futures` here.
            let mut response = response;
            let mut buffer: Vec<u8> = Vec::new();
            while let Ok(Some(chunk)) = response.chunk().await {
                buffer.extend_from_slice(&chunk);
                while let Some(end) = buffer.windows(2).position(|w| w == b"\n\n") {
                    let frame: Vec<u8> = buffer.drain(..end + 2).collect();
                    if let Some(event) = parse_frame(&String::from_utf8_lossy(&frame)) {
                        sink.lock().unwrap().push(event);
                    }
                }
            }
        });
        EventStream { seen, reader }
    }

    /// Everything received so far.
    fn events(&self) -> Vec<(String, Value)> {
        self.seen.lock().unwrap().clone()
    }

    /// Waits for an event of `event_type` whose data satisfies `matches`;
    /// returns its data.
    async fn wait_for(&self, event_type: &str, matches: impl Fn(&Value) -> bool) -> Value {
        wait::until(DEADLINE, &format!("a {event_type} event"), || {
            let found = self
                .events()
                .into_iter()
                .find(|(t, data)| t == event_type && matches(data))
                .map(|(_, data)| data);
            async move { found }
        })
        .await
    }
}

impl Drop for EventStream {
    fn drop(&mut self) {
        self.reader.abort();
    }
}

/// One SSE frame → (type, data); comments (keepalives) and frames
/// without data → None.
fn parse_frame(frame: &str) -> Option<(String, Value)> {
    let mut event_type = String::from("message");
    let mut data = Vec::new();
    for line in frame.lines() {
        if let Some(t) = line.strip_prefix("event:") {
            event_type = t.trim().to_string();
        } else if let Some(d) = line.strip_prefix("data:") {
            data.push(d.strip_prefix(' ').unwrap_or(d));
        }
    }
    if data.is_empty() {
        return None;
    }
    let data = data.join("\n");
    // Kept as a string when it is not JSON: the checks on `eventType` fail
    // on it, naming it.
    let value = serde_json::from_str(&data).unwrap_or(Value::String(data));
    Some((event_type, value))
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn event_stream_shows_an_app_deploying_and_filters_by_type() {
    baton_e2e::init_tracing();
    let marker = procs::marker("events");
    let dir = tempfile::tempdir().unwrap();
    let baton = BatonProcess::start(Master::Local, dir.path(), &[]).await;

    // Without `Accept: text/event-stream`: 405, in JSON.
    let reply = baton.try_get("/v2/events").await.expect("GET /v2/events");
    assert_eq!(reply.status, 405, "{}", reply.text);
    assert!(
        reply
            .json
            .as_ref()
            .is_some_and(|j| j["message"].is_string()),
        "{}",
        reply.text
    );

    let all = EventStream::open(&baton, "").await;
    let attached = all.wait_for("event_stream_attached", |_| true).await;
    assert_eq!(attached["remoteAddress"], "127.0.0.1", "{attached}");
    assert_eq!(attached["eventType"], "event_stream_attached");
    assert_eq!(
        all.events()[0].0,
        "event_stream_attached",
        "the stream starts with its own attachment"
    );
    let statuses = EventStream::open(&baton, "?event_type=status_update_event").await;
    // The second subscriber's attachment is on the bus for the first.
    wait::until(DEADLINE, "the second stream's attachment", || {
        let n = all
            .events()
            .iter()
            .filter(|(t, _)| t == "event_stream_attached")
            .count();
        async move { (n == 2).then_some(()) }
    })
    .await;

    let (status, body) = baton
        .request(
            Method::POST,
            "/v2/apps",
            Some(&app("/events/sleeper", &marker, json!({}))),
        )
        .await;
    assert_eq!(status, 201, "{body}");
    let is_app = |d: &Value| d["appId"] == "/events/sleeper";
    let posted = all
        .wait_for("api_post_event", |d| {
            d["appDefinition"]["id"] == "/events/sleeper"
        })
        .await;
    assert_eq!(posted["uri"], "/v2/apps", "{posted}");
    assert_eq!(posted["clientIp"], "127.0.0.1", "{posted}");
    let info = all
        .wait_for("deployment_info", |d| {
            d["plan"]["steps"][0]["actions"][0]["app"] == "/events/sleeper"
        })
        .await;
    assert_eq!(
        info["currentStep"]["actions"][0]["action"], "StartApplication",
        "{info}"
    );
    let running = all
        .wait_for("status_update_event", |d| {
            is_app(d) && d["taskStatus"] == "TASK_RUNNING"
        })
        .await;
    assert!(running["taskId"].as_str().is_some_and(|t| !t.is_empty()));
    assert_eq!(running["host"], "127.0.0.1", "{running}");
    all.wait_for("deployment_success", |d| d["id"] == info["plan"]["id"])
        .await;

    // The filtered stream saw the same task statuses, and nothing else.
    statuses
        .wait_for("status_update_event", |d| {
            is_app(d) && d["taskStatus"] == "TASK_RUNNING"
        })
        .await;
    let types: Vec<String> = statuses.events().into_iter().map(|(t, _)| t).collect();
    assert!(
        types.iter().all(|t| t == "status_update_event"),
        "the filtered stream got {types:?}"
    );

    // Each data line is the whole event: its type and a timestamp.
    for (event_type, data) in all.events() {
        assert_eq!(data["eventType"], event_type.as_str(), "{data}");
        assert!(data["timestamp"].is_string(), "{data}");
    }

    drop(statuses);
    // A closed stream is announced to the others.
    all.wait_for("event_stream_detached", |_| true).await;

    let (status, body) = baton
        .request(Method::DELETE, "/v2/apps/events/sleeper", None)
        .await;
    assert_eq!(status, 200, "{body}");
    all.wait_for("app_terminated_event", |d| d["appId"] == "/events/sleeper")
        .await;
    procs::assert_none_carrying(&marker, Duration::from_secs(30), "after the delete").await;
    baton.stop().await;
    procs::assert_all_gone(&marker).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn group_deploys_in_dependency_order_scales_and_is_deleted() {
    baton_e2e::init_tracing();
    let marker = procs::marker("groups");
    let dir = tempfile::tempdir().unwrap();
    let baton = BatonProcess::start(Master::Local, dir.path(), &[]).await;
    let events = EventStream::open(&baton, "").await;
    events.wait_for("event_stream_attached", |_| true).await;

    let (status, body) = baton.get("/v2/groups").await;
    assert_eq!(status, 200, "{body}");
    assert_eq!(body["id"], "/");
    assert_eq!(body["apps"], json!([]));
    let (status, body) = baton.get("/v2/groups/proj").await;
    assert_eq!(status, 404, "{body}");
    assert_eq!(body["message"], "Group '/proj' does not exist");

    let group = json!({
        "id": "/proj",
        "apps": [
            app("db", &marker, json!({})),
            app("web", &marker, json!({"dependencies": ["/proj/db"]})),
        ],
    });

    // A dry run shows the steps and deploys nothing.
    let (status, body) = baton
        .request(Method::PUT, "/v2/groups/proj?dryRun=true", Some(&group))
        .await;
    assert_eq!(status, 200, "{body}");
    assert_eq!(
        body,
        json!({"steps": [
            {"actions": [{"action": "StartApplication", "app": "/proj/db"}]},
            {"actions": [{"action": "StartApplication", "app": "/proj/web"}]},
        ]})
    );
    let (_, apps) = baton.get("/v2/apps").await;
    assert_eq!(apps["apps"], json!([]), "a dry run deploys nothing");

    // Invalid apps are refused with their path in the body.
    let (status, body) = baton
        .request(
            Method::PUT,
            "/v2/groups/proj",
            Some(&json!({"apps": [app("db", &marker, json!({"cpus": -1}))]})),
        )
        .await;
    assert_eq!(status, 422, "{body}");
    assert_eq!(body["details"][0]["path"], "/apps(0)/cpus", "{body}");

    let reply = baton
        .try_send_json(Method::PUT, "/v2/groups/proj", &group)
        .await
        .expect("PUT /v2/groups/proj");
    assert_eq!(reply.status, 200, "{}", reply.text);
    let json = reply.json.clone().unwrap_or_default();
    let deployment = json["deploymentId"].as_str().expect("deploymentId");
    assert_eq!(reply.deployment_id.as_deref(), Some(deployment));
    events
        .wait_for("group_change_success", |d| d["groupId"] == "/proj")
        .await;

    baton.wait_running("/proj/db", 1, DEADLINE).await;
    baton.wait_running("/proj/web", 1, DEADLINE).await;
    events
        .wait_for("deployment_success", |d| d["id"] == deployment)
        .await;
    let statuses: Vec<(String, String)> = events
        .events()
        .into_iter()
        .filter(|(t, _)| t == "status_update_event")
        .map(|(_, d)| {
            (
                d["appId"].as_str().unwrap_or_default().to_string(),
                d["taskStatus"].as_str().unwrap_or_default().to_string(),
            )
        })
        .collect();
    let db_running = statuses
        .iter()
        .position(|(app, s)| app == "/proj/db" && s == "TASK_RUNNING")
        .unwrap_or_else(|| panic!("no RUNNING status of /proj/db: {statuses:?}"));
    let web_first = statuses
        .iter()
        .position(|(app, _)| app == "/proj/web")
        .unwrap_or_else(|| panic!("no status of /proj/web: {statuses:?}"));
    assert!(
        db_running < web_first,
        "web was launched before db ran: {statuses:?}"
    );

    let (status, body) = baton.get("/v2/groups/proj").await;
    assert_eq!(status, 200, "{body}");
    assert_eq!(body["id"], "/proj");
    let mut ids: Vec<&str> = body["apps"]
        .as_array()
        .expect("apps")
        .iter()
        .filter_map(|a| a["id"].as_str())
        .collect();
    ids.sort();
    assert_eq!(ids, ["/proj/db", "/proj/web"], "{body}");
    assert_eq!(body["groups"], json!([]));
    let (status, root) = baton.get("/v2/groups?embed=group.groups").await;
    assert_eq!(status, 200, "{root}");
    assert_eq!(root["groups"][0]["id"], "/proj", "{root}");
    assert_eq!(root["apps"], json!([]), "only groups were embedded");
    let (status, counted) = baton
        .get("/v2/groups/proj?embed=group.apps&embed=group.apps.counts")
        .await;
    assert_eq!(status, 200, "{counted}");
    assert_eq!(counted["apps"][0]["tasksRunning"], 1, "{counted}");
    let (status, versions) = baton.get("/v2/groups/proj/versions").await;
    assert_eq!(status, 200, "{versions}");
    assert!(!versions.as_array().expect("versions").is_empty());

    // POST on a group with apps is a conflict.
    let (status, body) = baton
        .request(Method::POST, "/v2/groups", Some(&json!({"id": "/proj"})))
        .await;
    assert_eq!(status, 409, "{body}");
    assert_eq!(
        body["message"],
        "Group /proj is already created. Use PUT to change this group."
    );

    // scaleBy: every app of the group doubles.
    baton.wait_no_deployments(DEADLINE).await;
    let (status, body) = baton
        .request(Method::PUT, "/v2/groups/proj", Some(&json!({"scaleBy": 2})))
        .await;
    assert_eq!(status, 200, "{body}");
    baton.wait_running("/proj/db", 2, DEADLINE).await;
    baton.wait_running("/proj/web", 2, DEADLINE).await;
    for app in ["/proj/db", "/proj/web"] {
        let (_, body) = baton.get(&format!("/v2/apps{app}")).await;
        assert_eq!(body["app"]["instances"], 2, "{body}");
    }

    // DELETE: every app of the group goes, and its tasks with it.
    baton.wait_no_deployments(DEADLINE).await;
    let (status, body) = baton.request(Method::DELETE, "/v2/groups/proj", None).await;
    assert_eq!(status, 200, "{body}");
    assert!(body["deploymentId"].is_string(), "{body}");
    wait::until(DEADLINE, "the group's apps to be gone", || async {
        let (_, apps) = baton.get("/v2/apps").await;
        apps["apps"]
            .as_array()
            .is_some_and(Vec::is_empty)
            .then_some(())
    })
    .await;
    let (status, _) = baton.get("/v2/groups/proj").await;
    assert_eq!(status, 404);
    procs::assert_none_carrying(&marker, Duration::from_secs(30), "after the group delete").await;

    baton.stop().await;
    procs::assert_all_gone(&marker).await;
}

/// Fails (never skips) when `python3` cannot import the client.
fn require_python_client() {
    let fix = "install it with scripts/test.sh (it runs `python3 -m pip install 'marathon>=0.13'`)";
    let output = std::process::Command::new("python3")
        .args(["-c", "import marathon"])
        .output()
        .unwrap_or_else(|e| panic!("python3 cannot be run ({e}); {fix}"));
    assert!(
        output.status.success(),
        "the Python `marathon` client is not importable by python3: {}\n{fix}",
        String::from_utf8_lossy(&output.stderr).trim()
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn python_client_reads_the_event_stream() {
    require_python_client();
    baton_e2e::init_tracing();
    let marker = procs::marker("pyevents");
    let dir = tempfile::tempdir().unwrap();
    let baton = BatonProcess::start(Master::Local, dir.path(), &[]).await;
    let events = EventStream::open(&baton, "").await;
    events.wait_for("event_stream_attached", |_| true).await;

    let script = Path::new(env!("CARGO_MANIFEST_DIR")).join("python/event_stream_check.py");
    assert!(script.exists(), "{} is missing", script.display());
    let run = tokio::process::Command::new("python3")
        .arg(&script)
        .arg(&baton.url)
        .arg("/pyevents/sleeper")
        .arg("60")
        .stdin(Stdio::null())
        .kill_on_drop(true)
        .output();
    let script_run =
        tokio::spawn(async move { tokio::time::timeout(Duration::from_secs(90), run).await });

    // The script is listening once its attachment is on the bus.
    wait::until(DEADLINE, "the Python client to attach", || {
        let n = events
            .events()
            .iter()
            .filter(|(t, _)| t == "event_stream_attached")
            .count();
        async move { (n >= 2).then_some(()) }
    })
    .await;
    let (status, body) = baton
        .request(
            Method::POST,
            "/v2/apps",
            Some(&app("/pyevents/sleeper", &marker, json!({}))),
        )
        .await;
    assert_eq!(status, 201, "{body}");

    let output = script_run
        .await
        .expect("script task")
        .expect("the script finished within 90 s")
        .expect("run python3");
    let stdout = String::from_utf8_lossy(&output.stdout);
    let stderr = String::from_utf8_lossy(&output.stderr);
    println!("--- event_stream_check.py stdout ---\n{stdout}");
    println!("--- event_stream_check.py stderr ---\n{stderr}");
    assert!(
        output.status.success(),
        "event_stream_check.py failed ({}):\n{stdout}\n{stderr}",
        output.status
    );
    assert!(
        stdout.contains("[event_stream_check] OK status_update_event"),
        "{stdout}"
    );

    let (status, body) = baton
        .request(Method::DELETE, "/v2/apps/pyevents/sleeper", None)
        .await;
    assert_eq!(status, 200, "{body}");
    procs::assert_none_carrying(&marker, Duration::from_secs(30), "after the delete").await;
    baton.stop().await;
    procs::assert_all_gone(&marker).await;
}
