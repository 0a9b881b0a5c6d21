//! Acceptance: bad input on every endpoint (malformed JSON, wrong types,
//! invalid ids, unknown apps, bad query parameters, oversized bodies, a
//! 10 MB label, writes to an app a deployment holds, unknown routes) gets
//! the 4xx Marathon answers, with a JSON body whose `message` says why
//! (shared/reference/marathon-api.md §1.1–1.6, §2.9); and the server keeps
//! serving: after every request `/ping` and `/v2/apps` answer 200 and the
//! process is alive.
//!
//! One `baton` process in local mode serves every case; no task ever runs.
//! A table holds the plain cases (method, path, body, expected status, a
//! substring of the body, the field `details[].path` must name); a few
//! special checks follow. Every failure is collected and reported at the
//! end, so one run lists every discrepancy.

use std::time::Duration;

use baton_e2e::baton::{BatonProcess, Master, Reply};
use baton_e2e::procs;
use reqwest::Method;
use serde_json::{Value, json};

const DEADLINE: Duration = Duration::from_secs(30);

/// A task id of the 1.8+ form for an app that does not exist.
const NO_TASK: &str = "nope.instance-00000000-0000-0000-0000-000000000000._app.1";

/// Problems with the server's health: `/ping` and `/v2/apps` answer 200
/// and the process runs.
async fn serving(baton: &mut BatonProcess) -> Vec<String> {
    let mut problems = Vec::new();
    if !baton.alive() {
        problems.push("the baton process exited".to_string());
        return problems;
    }
    match baton.try_get("/ping").await {
        Ok(r) if r.status == 200 => {}
        Ok(r) => problems.push(format!("GET /ping answered {}: {}", r.status, r.text)),
        Err(e) => problems.push(e),
    }
    match baton.try_get("/v2/apps").await {
        Ok(r) if r.status == 200 && r.json.as_ref().is_some_and(|j| j["apps"].is_array()) => {}
        Ok(r) => problems.push(format!("GET /v2/apps answered {}: {}", r.status, r.text)),
        Err(e) => problems.push(e),
    }
    problems
}

/// Polls until `path` answers `status`.
async fn wait_status(baton: &BatonProcess, path: &str, status: u16) -> Result<(), String> {
    let deadline = tokio::time::Instant::now() + DEADLINE;
    loop {
        let reply = baton.try_get(path).await?;
        if reply.status == status {
            return Ok(());
        }
        if tokio::time::Instant::now() >= deadline {
            return Err(format!(
                "GET {path} still answers {} after {DEADLINE:?} (waiting for {status}): {}",
                reply.status, reply.text
            ));
        }
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
}

/// Polls until no deployment runs.
async fn wait_no_deployments(baton: &BatonProcess) -> Result<(), String> {
    let deadline = tokio::time::Instant::now() + DEADLINE;
    loop {
        let reply = baton.try_get("/v2/deployments").await?;
        if reply.status == 200
            && reply
                .json
                .as_ref()
                .and_then(Value::as_array)
                .is_some_and(Vec::is_empty)
        {
            return Ok(());
        }
        if tokio::time::Instant::now() >= deadline {
            return Err(format!(
                "deployments still run after {DEADLINE:?}: {} {}",
                reply.status, reply.text
            ));
        }
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
}

/// One row of the table.
struct Case {
    method: Method,
    path: String,
    body: Option<Vec<u8>>,
    /// Acceptable statuses (Marathon's; two where its versions differ).
    status: &'static [u16],
    /// A substring the body must contain ("" for none beyond a message).
    contains: &'static str,
    /// A `details[].path` that must name the offending field.
    detail_path: Option<&'static str>,
}

fn case(
    method: Method,
    path: impl Into<String>,
    body: Option<&str>,
    status: &'static [u16],
    contains: &'static str,
) -> Case {
    Case {
        method,
        path: path.into(),
        body: body.map(|b| b.as_bytes().to_vec()),
        status,
        contains,
        detail_path: None,
    }
}

impl Case {
    fn naming(mut self, field: &'static str) -> Case {
        self.detail_path = Some(field);
        self
    }

    fn with_body(mut self, body: Vec<u8>) -> Case {
        self.body = Some(body);
        self
    }

    fn describe(&self) -> String {
        let body = match &self.body {
            None => String::new(),
            Some(b) if b.len() > 200 => format!(" <{} bytes>", b.len()),
            Some(b) => format!(" {}", String::from_utf8_lossy(b)),
        };
        format!("{} {}{body}", self.method, self.path)
    }
}

/// Problems with a 4xx reply: Marathon always sends a JSON object with a
/// non-empty `message`.
fn error_body_problems(reply: &Reply) -> Vec<String> {
    let mut problems = Vec::new();
    if !reply.content_type.starts_with("application/json") {
        problems.push(format!(
            "Content-Type is {:?}, not application/json",
            reply.content_type
        ));
    }
    let message = reply
        .json
        .as_ref()
        .and_then(|j| j.get("message"))
        .and_then(Value::as_str);
    if message.is_none_or(|m| m.trim().is_empty()) {
        problems.push(format!(
            "no JSON body with a non-empty `message`: {:?}",
            reply.text
        ));
    }
    problems
}

/// Whether some `details[].path` names `field`: exactly, inside it
/// (`/env/A`, `/constraints(0)`), or inside an array item (`(0)/cpus`).
fn details_name(reply: &Reply, field: &str) -> bool {
    let names = |path: &str| {
        path == field
            || path.ends_with(field)
            || path.starts_with(&format!("{field}/"))
            || path.starts_with(&format!("{field}("))
    };
    reply
        .json
        .as_ref()
        .and_then(|j| j.get("details"))
        .and_then(Value::as_array)
        .is_some_and(|details| {
            details
                .iter()
                .any(|d| d.get("path").and_then(Value::as_str).is_some_and(names))
        })
}

/// At most 400 characters of `text`, for messages.
fn short(text: &str) -> String {
    match text.char_indices().nth(400) {
        Some((end, _)) => format!("{}… ({} bytes)", &text[..end], text.len()),
        None => text.to_string(),
    }
}

/// Runs one case; returns its problems.
async fn run_case(baton: &mut BatonProcess, case: &Case) -> Vec<String> {
    let mut problems = Vec::new();
    match baton
        .try_request(case.method.clone(), &case.path, case.body.clone())
        .await
    {
        Err(e) => problems.push(e),
        Ok(reply) => {
            if !case.status.contains(&reply.status) {
                problems.push(format!(
                    "status {} (expected {:?}): {}",
                    reply.status,
                    case.status,
                    short(&reply.text)
                ));
            }
            if (400..500).contains(&reply.status) {
                problems.extend(error_body_problems(&reply));
            }
            if !reply.text.contains(case.contains) {
                problems.push(format!(
                    "the body does not contain {:?}: {}",
                    case.contains,
                    short(&reply.text)
                ));
            }
            if let Some(field) = case.detail_path
                && !details_name(&reply, field)
            {
                problems.push(format!(
                    "no details[].path names {field:?}: {}",
                    short(&reply.text)
                ));
            }
        }
    }
    for problem in serving(baton).await {
        problems.push(format!("afterwards: {problem}"));
    }
    problems
}

/// `{"id": id, "cmd": <size bytes of x>}`: a well-formed app, too big.
fn big_app(id: &str, size: usize) -> Vec<u8> {
    json!({"id": id, "cmd": "x".repeat(size)})
        .to_string()
        .into_bytes()
}

/// The plain cases. Bodies are written as sent, one case a line.
#[rustfmt::skip]
fn table() -> Vec<Case> {
    use Method as M;
    const MALFORMED: &str = r#"{"id": "/bad/malformed", "cmd": "#;
    const TWO_MB: usize = 2 * 1024 * 1024;
    const APPS: &str = "/v2/apps";
    const EXISTS: &str = "/v2/apps/bad/exists";
    let mut cases = Vec::new();

    // Malformed JSON: 400 "Invalid JSON" on every endpoint with a body.
    for (method, path) in [
        (M::POST, APPS),
        (M::PUT, EXISTS),
        (M::PATCH, EXISTS),
        (M::PUT, "/v2/apps/bad/missing"),
        (M::PUT, APPS),
        (M::PATCH, APPS),
        (M::POST, "/v2/tasks/delete"),
    ] {
        cases.push(case(method.clone(), path, Some(MALFORMED), &[400], "Invalid JSON"));
        cases.push(case(method, path, Some("not json"), &[400], "Invalid JSON"));
    }
    cases.push(case(M::POST, APPS, Some(""), &[400], "Invalid JSON"));
    cases.push(case(M::POST, APPS, Some("null"), &[400], "Invalid JSON"));
    cases.push(case(M::POST, APPS, Some("[1]"), &[400], "Invalid JSON"));

    // Wrong types: 400 "Invalid JSON" naming the field (§2.9). Limits
    // broken by a well-typed value: 422 (400 before Marathon 1.5).
    cases.extend([
        case(M::POST, APPS, Some(r#"{"id":"/x","cmd":"a","cpus":"lots"}"#), &[400], "Invalid JSON").naming("/cpus"),
        case(M::POST, APPS, Some(r#"{"id":5}"#), &[400], "Invalid JSON").naming("/id"),
        case(M::POST, APPS, Some(r#"{"id":"/x","cmd":"a","instances":-1}"#), &[400, 422], "").naming("/instances"),
        case(M::POST, APPS, Some(r#"{"id":"/x","cmd":"a","mem":-5}"#), &[400, 422], "").naming("/mem"),
        case(M::POST, APPS, Some(r#"{"id":"/x","cmd":"a","instances":"two"}"#), &[400], "Invalid JSON").naming("/instances"),
        case(M::POST, APPS, Some(r#"{"id":"/x","cmd":["a"]}"#), &[400], "Invalid JSON").naming("/cmd"),
        case(M::POST, APPS, Some(r#"{"id":"/x","cmd":"a","env":{"A":5}}"#), &[400, 422], "").naming("/env"),
        case(M::POST, APPS, Some(r#"{"id":"/x","cmd":"a","labels":{"a":1}}"#), &[400], "Invalid JSON").naming("/labels"),
        case(M::POST, APPS, Some(r#"{"id":"/x","cmd":"a","constraints":"UNIQUE"}"#), &[400], "Invalid JSON").naming("/constraints"),
        case(M::POST, APPS, Some(r#"{"id":"/x","cmd":"a","constraints":[["hostname","BOGUS"]]}"#), &[422], "").naming("/constraints"),
        case(M::POST, APPS, Some(r#"{"id":"/x","cmd":"a","upgradeStrategy":{"minimumHealthCapacity":2}}"#), &[422], "Object is not valid").naming("/upgradeStrategy/minimumHealthCapacity"),
        case(M::POST, APPS, Some(r#"{"id":"/x"}"#), &[422], "cmd"),
        case(M::POST, APPS, Some(r#"{"id":"/x","cmd":"a","args":["b"]}"#), &[422], "cmd"),
        case(M::PUT, EXISTS, Some(r#"{"cpus":"lots"}"#), &[400], "Invalid JSON").naming("/cpus"),
        case(M::PUT, EXISTS, Some(r#"{"instances":-1}"#), &[400, 422], "").naming("/instances"),
        case(M::PUT, EXISTS, Some(r#"{"version":"garbage"}"#), &[400], "").naming("/version"),
        case(M::PUT, EXISTS, Some(r#"{"version":"2020-01-01T00:00:00.000Z","cmd":"b"}"#), &[422], "version"),
        case(M::PUT, EXISTS, Some(r#"{"id":"/other","cmd":"b"}"#), &[422], "").naming("/id"),
        case(M::PUT, "/v2/apps/bad/missing", Some(r#"{"cmd":"a","cpus":"lots"}"#), &[400], "Invalid JSON").naming("/cpus"),
        case(M::PATCH, EXISTS, Some(r#"{"cpus":"lots"}"#), &[400], "Invalid JSON").naming("/cpus"),
        case(M::PATCH, EXISTS, Some(r#"{"instances":-1}"#), &[400, 422], "").naming("/instances"),
        case(M::PUT, APPS, Some(r#"{"id":"/bad/exists","instances":1}"#), &[400], "Invalid JSON"),
        case(M::PUT, APPS, Some(r#"[{"id":"/bad/exists","cpus":"lots"}]"#), &[400], "").naming("/cpus"),
        case(M::PUT, APPS, Some(r#"[{"cmd":"a"}]"#), &[400, 422], "").naming("/id"),
        case(M::PATCH, APPS, Some(r#"[{"id":"/bad/exists","instances":"two"}]"#), &[400], "").naming("/instances"),
        case(M::POST, "/v2/tasks/delete", Some(r#"{"ids":"x"}"#), &[400], "Invalid JSON").naming("/ids"),
        case(M::POST, "/v2/tasks/delete", Some(r#"{"ids":[5]}"#), &[400], "Invalid JSON").naming("/ids"),
        case(M::POST, "/v2/tasks/delete", Some("[]"), &[400], "Invalid JSON"),
        case(M::POST, "/v2/tasks/delete", Some(r#"{"ids":["garbage"]}"#), &[400], "Invalid task id 'garbage'"),
    ]);

    // Invalid ids: 422 naming /id.
    for id in ["Bad_Id", "/bad/Upper", "/bad/-dash", "/bad/x/tasks", "/bad/x/versions", "/", "/a/../.."] {
        let body = json!({"id": id, "cmd": "a"}).to_string();
        cases.push(case(M::POST, APPS, Some(&body), &[422], "Object is not valid").naming("/id"));
    }
    cases.push(case(M::PUT, APPS, Some(r#"[{"id":"Bad_Id","cmd":"a"}]"#), &[422], "").naming("/id"));

    // Unknown app: 404 with Marathon's message.
    let nope = "App '/nope' does not exist";
    let in_version = "/nope' does not exist";
    cases.extend([
        case(M::GET, "/v2/apps/nope", None, &[404], nope),
        case(M::GET, "/v2/apps/nope/", None, &[404], nope),
        case(M::PUT, "/v2/apps/nope", Some(r#"{"version":"2020-01-01T00:00:00.000Z"}"#), &[404], in_version),
        case(M::PATCH, "/v2/apps/nope", Some(r#"{"instances":1}"#), &[404], nope),
        case(M::DELETE, "/v2/apps/nope", None, &[404], nope),
        case(M::DELETE, "/v2/apps/nope?force=true", None, &[404], nope),
        case(M::GET, "/v2/apps/nope/tasks", None, &[404], nope),
        case(M::DELETE, "/v2/apps/nope/tasks", None, &[404], nope),
        case(M::DELETE, "/v2/apps/nope/tasks?scale=true", None, &[404], nope),
        case(M::GET, "/v2/apps/nope/versions", None, &[404], nope),
        case(M::GET, "/v2/apps/nope/versions/2020-01-01T00:00:00.000Z", None, &[404], in_version),
        case(M::POST, "/v2/apps/nope/restart", None, &[404], nope),
        case(M::DELETE, format!("/v2/apps/nope/tasks/{NO_TASK}"), None, &[404], "does not exist"),
        case(M::DELETE, format!("{EXISTS}/tasks/{NO_TASK}"), None, &[404], "Task 'nope.instance-"),
        case(M::GET, format!("{EXISTS}/versions/2020-01-01T00:00:00.000Z"), None, &[404], "does not exist"),
        case(M::PUT, EXISTS, Some(r#"{"version":"2020-01-01T00:00:00.000Z"}"#), &[404], "does not exist"),
        case(M::DELETE, "/v2/queue/nope/delay", None, &[404], "/nope not found in tasks queue"),
        case(M::DELETE, "/v2/deployments/nope", None, &[404], "DeploymentPlan nope does not exist"),
        case(M::DELETE, "/v2/deployments/nope?force=true", None, &[404], "does not exist"),
    ]);

    // Query parameters: booleans must be booleans; scale and wipe exclude
    // each other.
    let valid_app = r#"{"id":"/bad/forced","cmd":"sleep 1","instances":0}"#;
    cases.extend([
        case(M::POST, "/v2/apps?force=maybe", Some(valid_app), &[400], "force"),
        case(M::PUT, "/v2/apps/bad/exists?force=maybe", Some(r#"{"instances":0}"#), &[400], "force"),
        case(M::PUT, "/v2/apps/bad/exists?partialUpdate=maybe", Some(r#"{"instances":0}"#), &[400], "partialUpdate"),
        case(M::PATCH, "/v2/apps/bad/exists?force=maybe", Some(r#"{"instances":0}"#), &[400], "force"),
        case(M::PUT, "/v2/apps?force=maybe", Some(r#"[{"id":"/bad/exists","instances":0}]"#), &[400], "force"),
        case(M::DELETE, "/v2/apps/bad/exists?force=maybe", None, &[400], "force"),
        case(M::POST, "/v2/apps/bad/exists/restart?force=maybe", None, &[400], "force"),
        case(M::DELETE, "/v2/apps/bad/exists/tasks?scale=maybe", None, &[400], "scale"),
        case(M::DELETE, "/v2/apps/bad/exists/tasks?wipe=maybe", None, &[400], "wipe"),
        case(M::DELETE, "/v2/apps/bad/exists/tasks?scale=true&wipe=true", None, &[400], "You cannot use scale and wipe at the same time."),
        case(M::DELETE, format!("{EXISTS}/tasks/{NO_TASK}?scale=true&wipe=true"), None, &[400], "scale and wipe"),
        case(M::POST, "/v2/tasks/delete?scale=true&wipe=true", Some(r#"{"ids":[]}"#), &[400], "scale and wipe"),
        case(M::POST, "/v2/tasks/delete?force=maybe", Some(r#"{"ids":[]}"#), &[400], "force"),
        case(M::DELETE, "/v2/deployments/nope?force=maybe", None, &[400], "force"),
        case(M::GET, "/v2/apps?label=a%20in%20(b", None, &[400, 422], "label"),
    ]);

    // Oversized bodies: 413 with a JSON message, whatever the endpoint.
    for (method, path) in [
        (M::POST, APPS),
        (M::PUT, EXISTS),
        (M::PATCH, EXISTS),
        (M::PUT, "/v2/apps/bad/big"),
        (M::PUT, APPS),
        (M::PATCH, APPS),
        (M::POST, "/v2/tasks/delete"),
    ] {
        cases.push(case(method, path, None, &[413], "").with_body(big_app("/bad/big", TWO_MB)));
    }
    let label = json!({
        "id": "/bad/label", "cmd": "sleep 1", "instances": 0,
        "labels": {"big": "x".repeat(10 * 1024 * 1024)},
    });
    cases.push(case(M::POST, APPS, None, &[413], "").with_body(label.to_string().into_bytes()));

    // Unknown routes: 404; known routes with a method they lack: 405. Both
    // with a JSON message, as Marathon's exception mapper writes them.
    cases.extend([
        case(M::GET, "/v2/nope", None, &[404], ""),
        case(M::GET, "/nope", None, &[404], ""),
        case(M::POST, "/v2/nope", Some("{}"), &[404], ""),
        case(M::DELETE, "/v2/queue/nope", None, &[404], ""),
        case(M::DELETE, APPS, None, &[405], ""),
        case(M::POST, "/v2/tasks", Some("{}"), &[405], ""),
        case(M::GET, "/v2/tasks/delete", None, &[405], ""),
        case(M::POST, "/v2/deployments", Some("{}"), &[405], ""),
        case(M::POST, EXISTS, Some("{}"), &[405], ""),
    ]);
    // Paths that are not UTF-8 once decoded, and a query the extractor
    // cannot read: rejected before any handler runs, still as JSON.
    cases.extend([
        case(M::GET, "/v2/apps/x/tasks/%FF", None, &[400, 404], ""),
        case(M::DELETE, "/v2/apps/x/tasks/%FF", None, &[400, 404], ""),
        case(M::GET, "/v2/deployments/%FF", None, &[400, 404, 405], ""),
        case(M::DELETE, "/v2/deployments/%FF", None, &[400, 404], ""),
        case(M::DELETE, "/v2/queue/%FF/delay", None, &[400, 404], ""),
        case(M::GET, "/v2/apps/%FF%FE", None, &[400, 404], ""),
        case(M::GET, "/v2/groups/%C3%28", None, &[400, 404], ""),
        case(M::GET, "/v2/apps?embed=%FF", None, &[200, 400], ""),
    ]);
    cases
}

/// Creates `/bad/exists` (no instances) and waits for its deployment.
async fn create_existing(baton: &BatonProcess) -> Result<(), String> {
    let app =
        json!({"id": "/bad/exists", "cmd": "sleep 1", "instances": 0, "cpus": 0.1, "mem": 16});
    let reply = baton.try_send_json(Method::POST, "/v2/apps", &app).await?;
    if reply.status != 201 {
        return Err(format!(
            "creating /bad/exists answered {}: {}",
            reply.status, reply.text
        ));
    }
    wait_no_deployments(baton).await
}

/// A second POST of an existing id: 409 with a message and no
/// `deployments` key (go-marathon tells a duplicate from a lock by it).
async fn duplicate_post(baton: &mut BatonProcess) -> Vec<String> {
    let mut problems = Vec::new();
    let app =
        json!({"id": "/bad/exists", "cmd": "sleep 1", "instances": 0, "cpus": 0.1, "mem": 16});
    match baton.try_send_json(Method::POST, "/v2/apps", &app).await {
        Err(e) => problems.push(e),
        Ok(reply) => {
            if reply.status != 409 {
                problems.push(format!("status {}: {}", reply.status, reply.text));
            }
            problems.extend(error_body_problems(&reply));
            if !reply
                .text
                .contains("An app with id [/bad/exists] already exists.")
            {
                problems.push(format!("message: {}", reply.text));
            }
            if reply
                .json
                .as_ref()
                .is_some_and(|j| j.get("deployments").is_some())
            {
                problems.push(format!(
                    "a duplicate id carries `deployments`: {}",
                    reply.text
                ));
            }
        }
    }
    problems.extend(serving(baton).await);
    problems
}

/// Writes without `force` to an app whose deployment cannot finish (3
/// instances of 100 cpus never fit): 409 with `deployments:[{id}]` naming
/// that deployment. With `force=true` the write goes through.
async fn locked_app(baton: &mut BatonProcess) -> Vec<String> {
    let mut problems = Vec::new();
    let app =
        json!({"id": "/bad/locked", "cmd": "sleep 600", "instances": 3, "cpus": 100, "mem": 16});
    let created = match baton.try_send_json(Method::POST, "/v2/apps", &app).await {
        Ok(r) if r.status == 201 => r,
        Ok(r) => {
            return vec![format!(
                "creating /bad/locked answered {}: {}",
                r.status, r.text
            )];
        }
        Err(e) => return vec![e],
    };
    let Some(deployment) = created.deployment_id.clone() else {
        return vec![format!(
            "POST /v2/apps answered 201 without Marathon-Deployment-Id: {}",
            created.text
        )];
    };
    let writes: Vec<(Method, &str, Option<Value>)> = vec![
        (
            Method::PUT,
            "/v2/apps/bad/locked",
            Some(json!({"instances": 1})),
        ),
        (
            Method::PATCH,
            "/v2/apps/bad/locked",
            Some(json!({"instances": 1})),
        ),
        (
            Method::PUT,
            "/v2/apps/bad/locked?force=false",
            Some(json!({"cmd": "sleep 601"})),
        ),
        (
            Method::PUT,
            "/v2/apps",
            Some(json!([{"id": "/bad/locked", "instances": 1}])),
        ),
        (Method::POST, "/v2/apps/bad/locked/restart", None),
        (Method::DELETE, "/v2/apps/bad/locked?force=false", None),
    ];
    for (method, path, body) in writes {
        let what = format!("{method} {path} while {deployment} runs");
        let reply = match &body {
            Some(body) => baton.try_send_json(method, path, body).await,
            None => baton.try_request(method, path, None).await,
        };
        match reply {
            Err(e) => problems.push(e),
            Ok(reply) => {
                if reply.status != 409 {
                    problems.push(format!("{what}: status {}: {}", reply.status, reply.text));
                    continue;
                }
                for p in error_body_problems(&reply) {
                    problems.push(format!("{what}: {p}"));
                }
                let named = reply
                    .json
                    .as_ref()
                    .and_then(|j| j.get("deployments"))
                    .is_some_and(|d| *d == json!([{"id": deployment}]));
                if !named {
                    problems.push(format!(
                        "{what}: `deployments` is not [{{\"id\":\"{deployment}\"}}]: {}",
                        reply.text
                    ));
                }
                if !reply.text.contains("force") {
                    problems.push(format!(
                        "{what}: the message does not mention force: {}",
                        reply.text
                    ));
                }
            }
        }
        problems.extend(serving(baton).await);
    }
    // The deployment is listed, and force=true overrides the lock.
    match baton.try_get("/v2/deployments").await {
        Ok(r) if r.text.contains(&deployment) => {}
        Ok(r) => problems.push(format!(
            "GET /v2/deployments does not list {deployment}: {}",
            r.text
        )),
        Err(e) => problems.push(e),
    }
    match baton
        .try_send_json(
            Method::PUT,
            "/v2/apps/bad/locked?force=true",
            &json!({"instances": 2}),
        )
        .await
    {
        Ok(r) if r.status == 200 => {}
        Ok(r) => problems.push(format!("PUT ?force=true answered {}: {}", r.status, r.text)),
        Err(e) => problems.push(e),
    }
    // DELETE defaults to force=true.
    match baton
        .try_request(Method::DELETE, "/v2/apps/bad/locked", None)
        .await
    {
        Ok(r) if r.status == 200 => {}
        Ok(r) => problems.push(format!(
            "DELETE /v2/apps/bad/locked answered {}: {}",
            r.status, r.text
        )),
        Err(e) => problems.push(e),
    }
    if let Err(e) = wait_status(baton, "/v2/apps/bad/locked", 404).await {
        problems.push(e);
    }
    if let Err(e) = wait_no_deployments(baton).await {
        problems.push(e);
    }
    problems.extend(serving(baton).await);
    problems
}

/// A bulk update is one change: when one of its apps is bad, none is
/// written (Marathon validates the whole body, then deploys once).
async fn bulk_is_all_or_nothing(baton: &mut BatonProcess) -> Vec<String> {
    let mut problems = Vec::new();
    let body = json!([
        {"id": "/bad/bulk-ok", "cmd": "sleep 1", "instances": 0},
        {"id": "/bad/bulk-bad", "cmd": "sleep 1", "cpus": "lots"},
    ]);
    match baton.try_send_json(Method::PUT, "/v2/apps", &body).await {
        Err(e) => problems.push(e),
        Ok(reply) => {
            if reply.status != 400 {
                problems.push(format!("status {}: {}", reply.status, reply.text));
            }
            problems.extend(error_body_problems(&reply));
            if !details_name(&reply, "/cpus") {
                problems.push(format!("no details[].path names /cpus: {}", reply.text));
            }
        }
    }
    for id in ["/bad/bulk-ok", "/bad/bulk-bad"] {
        match baton.try_get(&format!("/v2/apps{id}")).await {
            Ok(r) if r.status == 404 => {}
            Ok(r) => {
                problems.push(format!(
                    "{id} exists ({}) although the bulk PUT that named it answered 400",
                    r.status
                ));
                // Leave a clean slate for the checks that follow.
                let _ = baton
                    .try_request(Method::DELETE, &format!("/v2/apps{id}"), None)
                    .await;
                if let Err(e) = wait_status(baton, &format!("/v2/apps{id}"), 404).await {
                    problems.push(e);
                }
            }
            Err(e) => problems.push(e),
        }
    }
    problems.extend(serving(baton).await);
    problems
}

/// `/a/../b`: Marathon resolves `.` and `..` in ids (§2.1), so the app is
/// `/b` — or, if the id is refused, a 422 naming `/id`. Never an app whose
/// id keeps the dots.
async fn dot_dot_id(baton: &mut BatonProcess) -> Vec<String> {
    let mut problems = Vec::new();
    let app = json!({"id": "/a/../b", "cmd": "sleep 1", "instances": 0});
    match baton.try_send_json(Method::POST, "/v2/apps", &app).await {
        Err(e) => problems.push(e),
        Ok(reply) if reply.status == 422 => {
            if !details_name(&reply, "/id") {
                problems.push(format!("422 without details[].path /id: {}", reply.text));
            }
        }
        Ok(reply) if reply.status == 201 => {
            let id = reply
                .json
                .as_ref()
                .and_then(|j| j["id"].as_str().map(str::to_string));
            if id.as_deref() != Some("/b") {
                problems.push(format!("created with id {id:?}, not /b: {}", reply.text));
            }
            println!("note: POST /v2/apps with id /a/../b created /b (Marathon resolves `..`)");
            let _ = baton.try_request(Method::DELETE, "/v2/apps/b", None).await;
            if let Err(e) = wait_status(baton, "/v2/apps/b", 404).await {
                problems.push(e);
            }
        }
        Ok(reply) => problems.push(format!("status {}: {}", reply.status, reply.text)),
    }
    problems.extend(serving(baton).await);
    problems
}

/// A client that keeps its connection open (as python-requests and
/// go-marathon do) can go on after a 413: either the 413 says
/// `Connection: close`, or the next request on that connection is
/// answered. Tried 20 times, since a server that closes the connection
/// silently loses the race only sometimes.
async fn keep_alive_after_413(baton: &mut BatonProcess) -> Vec<String> {
    let mut problems = Vec::new();
    let pooled = reqwest::Client::builder()
        .timeout(Duration::from_secs(30))
        .build()
        .expect("HTTP client");
    let body = big_app("/bad/big", 2 * 1024 * 1024);
    let mut lost = 0;
    for _ in 0..20 {
        let reply = pooled
            .put(format!("{}/v2/apps", baton.url))
            .header("Content-Type", "application/json")
            .body(body.clone())
            .send()
            .await;
        let reply = match reply {
            Ok(r) => r,
            Err(e) => {
                problems.push(format!("PUT /v2/apps <2 MB>: no response: {e:?}"));
                break;
            }
        };
        let status = reply.status().as_u16();
        let closes = reply
            .headers()
            .get("connection")
            .and_then(|v| v.to_str().ok())
            .is_some_and(|v| v.eq_ignore_ascii_case("close"));
        let _ = reply.bytes().await;
        if status != 413 {
            problems.push(format!("PUT /v2/apps <2 MB>: status {status}"));
            break;
        }
        if closes {
            continue;
        }
        if let Err(e) = pooled.get(format!("{}/ping", baton.url)).send().await {
            lost += 1;
            if lost == 1 {
                problems.push(format!(
                    "a 413 without `Connection: close`, then the next request on the \
                     same keep-alive connection failed: {e:?}"
                ));
            }
        }
    }
    if lost > 1 {
        problems.push(format!("(that happened {lost} times out of 20)"));
    }
    problems.extend(serving(baton).await);
    problems
}

/// Nothing a rejected request named was created.
async fn nothing_created(baton: &mut BatonProcess) -> Vec<String> {
    let mut problems = Vec::new();
    let reply = match baton.try_get("/v2/apps").await {
        Ok(r) => r,
        Err(e) => return vec![e],
    };
    let ids: Vec<String> = reply
        .json
        .as_ref()
        .and_then(|j| j["apps"].as_array().cloned())
        .unwrap_or_default()
        .iter()
        .filter_map(|a| a["id"].as_str().map(str::to_string))
        .collect();
    if ids != ["/bad/exists"] {
        problems.push(format!(
            "after the rejected requests the apps are {ids:?}, expected only /bad/exists"
        ));
    }
    problems
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn bad_input_gets_marathons_4xx_and_the_server_keeps_serving() {
    let marker = procs::marker("bad-input");
    // The data directory's name carries the marker, so everything Baton
    // starts is found by `procs`.
    let dir = tempfile::Builder::new()
        .prefix(&format!("{marker}-"))
        .tempdir()
        .expect("temporary directory");
    let mut baton = BatonProcess::start(Master::Local, &dir.path().join("data"), &[]).await;
    if let Err(e) = create_existing(&baton).await {
        panic!("{e}\n{}", baton.log_tail());
    }

    let mut failures: Vec<String> = Vec::new();
    let cases = table();
    for case in &cases {
        for problem in run_case(&mut baton, case).await {
            failures.push(format!("{}: {problem}", case.describe()));
        }
    }
    println!("{} table cases run", cases.len());

    let special: [(&str, Vec<String>); 6] = [
        ("duplicate POST", duplicate_post(&mut baton).await),
        (
            "bulk PUT with one bad app",
            bulk_is_all_or_nothing(&mut baton).await,
        ),
        ("POST of /a/../b", dot_dot_id(&mut baton).await),
        (
            "nothing created by rejected requests",
            nothing_created(&mut baton).await,
        ),
        ("writes to a locked app", locked_app(&mut baton).await),
        (
            "keep-alive after a 413",
            keep_alive_after_413(&mut baton).await,
        ),
    ];
    for (name, problems) in special {
        for problem in problems {
            failures.push(format!("{name}: {problem}"));
        }
    }

    for problem in serving(&mut baton).await {
        failures.push(format!("at the end: {problem}"));
    }
    let report = format!(
        "{} problem(s):\n  {}",
        failures.len(),
        failures.join("\n  ")
    );
    if !failures.is_empty() {
        println!("{report}");
    }

    // Shut down cleanly whatever was found, then report it.
    baton.stop().await;
    procs::assert_all_gone(&marker).await;
    assert!(failures.is_empty(), "{report}");
}
