//! Baton's `/v2/routers`: where several `baton-router`s share the request
//! rates they see, so that autoscaling and sleep decide from all of an
//! app's traffic, by one router.
//!
//! - `PUT /v2/routers/{id}/load` `{"apps": {"/app": {"rps": 12.5,
//!   "windowSeconds": 60, "lastRequestAgeMs": 800}}}`: a router's report
//!   (every second or so), kept while fresh ([`FRESH_MS`]).
//! - `GET /v2/routers/load`: the fresh reports summed per app (`rps` per
//!   window, the most recent request), the routers with their ages, the
//!   one elected to decide (the least id among fresh reports), and how
//!   long this leader has been collecting (`collectingForMs`): a new
//!   leader starts empty, so routers wait until every one of them had
//!   time to report again before deciding on its sums.
//!
//! Reports live in the leader's memory only: they are re-sent every
//! second, and a router that stops sending is dropped after [`FRESH_MS`].

use std::collections::BTreeMap;
use std::sync::Mutex;

use axum::Router;
use axum::extract::Path;
use axum::response::{IntoResponse, Response};
use axum::routing::{get, put};
use serde_json::{Value, json};

use super::error::ApiError;
use super::{Api, ApiState};
use crate::auth::acl::Action;
use crate::state::app::{PathId, Timestamp};

/// How long a report counts.
pub const FRESH_MS: i64 = 5_000;
/// Most routers kept (a bound on what reports can make us hold).
const MAX_ROUTERS: usize = 256;
/// Most apps per report.
const MAX_APPS: usize = 10_000;

/// One app in one router's report.
#[derive(Debug, Clone, PartialEq)]
struct AppLoad {
    rps: f64,
    window_seconds: u64,
    last_request_age_ms: Option<u64>,
}

/// One router's report, as received.
#[derive(Debug, Clone)]
struct Report {
    received: Timestamp,
    apps: BTreeMap<String, AppLoad>,
}

/// The reports of this leadership term.
#[derive(Debug)]
pub struct RouterLoads {
    since: Timestamp,
    reports: Mutex<BTreeMap<String, Report>>,
}

impl RouterLoads {
    /// Collecting from `now` on.
    pub fn new(now: Timestamp) -> RouterLoads {
        RouterLoads {
            since: now,
            reports: Mutex::new(BTreeMap::new()),
        }
    }
}

/// The `/v2/routers` routes.
pub fn routes() -> Router<std::sync::Arc<ApiState>> {
    Router::new()
        .route("/v2/routers/load", get(summed))
        .route("/v2/routers/{id}/load", put(report))
}

/// Reads a report body; errors name the field.
fn parse(body: &Value) -> Result<BTreeMap<String, AppLoad>, ApiError> {
    let apps = body["apps"]
        .as_object()
        .ok_or_else(|| ApiError::BadRequest("/apps: an object of app ids is required".into()))?;
    if apps.len() > MAX_APPS {
        return Err(ApiError::BadRequest(format!(
            "/apps: at most {MAX_APPS} apps"
        )));
    }
    let mut parsed = BTreeMap::new();
    for (id, load) in apps {
        let field = |name: &str| format!("/apps/{id}/{name}");
        let rps = load["rps"]
            .as_f64()
            .filter(|r| r.is_finite() && *r >= 0.0)
            .ok_or_else(|| {
                ApiError::BadRequest(format!("{}: a number ≥ 0 is required", field("rps")))
            })?;
        let window_seconds = load["windowSeconds"]
            .as_u64()
            .filter(|w| *w > 0)
            .ok_or_else(|| {
                ApiError::BadRequest(format!(
                    "{}: a whole number > 0 is required",
                    field("windowSeconds")
                ))
            })?;
        let last_request_age_ms = match &load["lastRequestAgeMs"] {
            Value::Null => None,
            age => Some(age.as_u64().ok_or_else(|| {
                ApiError::BadRequest(format!(
                    "{}: a whole number ≥ 0 is required",
                    field("lastRequestAgeMs")
                ))
            })?),
        };
        parsed.insert(
            id.clone(),
            AppLoad {
                rps,
                window_seconds,
                last_request_age_ms,
            },
        );
    }
    Ok(parsed)
}

async fn report(
    api: Api,
    Path(id): Path<String>,
    body: axum::body::Bytes,
) -> Result<Response, ApiError> {
    let body: Value = serde_json::from_slice(&body)
        .map_err(|e| ApiError::BadRequest(format!("the body is not JSON: {e}")))?;
    let apps = parse(&body)?;
    // A report steers scaling: the reporter must be allowed to scale what
    // it reports on.
    for id in apps.keys() {
        let path = PathId::parse(id, &PathId::root())
            .map_err(|e| ApiError::BadRequest(format!("/apps/{id}: {e}")))?;
        api.authorize(Action::Update, &path)?;
    }
    let now = api.scheduler.now();
    let mut reports = api
        .router_loads
        .reports
        .lock()
        .unwrap_or_else(|e| e.into_inner());
    reports.retain(|_, r| now.as_millis() - r.received.as_millis() <= FRESH_MS);
    if !reports.contains_key(&id) && reports.len() >= MAX_ROUTERS {
        return Err(ApiError::BadRequest(format!(
            "at most {MAX_ROUTERS} routers report"
        )));
    }
    reports.insert(
        id,
        Report {
            received: now,
            apps,
        },
    );
    Ok(axum::http::StatusCode::NO_CONTENT.into_response())
}

/// One app over the fresh reports.
#[derive(Debug, Default)]
struct Summed {
    /// The sum of the rates, per window (seconds).
    rates: BTreeMap<u64, f64>,
    /// The most recent request any router saw, ms ago.
    last_request_age_ms: Option<u64>,
    /// How many routers reported it.
    routers: usize,
}

async fn summed(api: Api) -> Result<Response, ApiError> {
    let now = api.scheduler.now();
    let reports = api
        .router_loads
        .reports
        .lock()
        .unwrap_or_else(|e| e.into_inner());
    let fresh: Vec<(&String, &Report)> = reports
        .iter()
        .filter(|(_, r)| now.as_millis() - r.received.as_millis() <= FRESH_MS)
        .collect();
    let mut apps: BTreeMap<&str, Summed> = BTreeMap::new();
    for (_, report) in &fresh {
        let age = (now.as_millis() - report.received.as_millis()).max(0) as u64;
        for (id, load) in &report.apps {
            let visible = PathId::parse(id, &PathId::root())
                .is_ok_and(|path| api.caller.check(Action::View, &path).is_ok());
            if !visible {
                continue;
            }
            let entry = apps.entry(id).or_default();
            *entry.rates.entry(load.window_seconds).or_default() += load.rps;
            if let Some(last) = load.last_request_age_ms {
                let last = last + age;
                entry.last_request_age_ms =
                    Some(entry.last_request_age_ms.map_or(last, |e| e.min(last)));
            }
            entry.routers += 1;
        }
    }
    let apps: serde_json::Map<String, Value> = apps
        .into_iter()
        .map(|(id, summed)| {
            (
                id.to_string(),
                json!({
                    "rps": summed.rates.iter().map(|(w, r)| (w.to_string(), json!(r))).collect::<serde_json::Map<_, _>>(),
                    "lastRequestAgeMs": summed.last_request_age_ms,
                    "routers": summed.routers,
                }),
            )
        })
        .collect();
    Ok(axum::Json(json!({
        "collectingForMs": (now.as_millis() - api.router_loads.since.as_millis()).max(0),
        "freshMs": FRESH_MS,
        "elected": fresh.first().map(|(id, _)| id),
        "routers": fresh.iter().map(|(id, r)| json!({
            "id": id,
            "ageMs": (now.as_millis() - r.received.as_millis()).max(0),
        })).collect::<Vec<_>>(),
        "apps": apps,
    }))
    .into_response())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn reports_are_read_strictly_with_the_field_named() {
        let ok = parse(
            &json!({"apps": {"/a": {"rps": 2.5, "windowSeconds": 60, "lastRequestAgeMs": 10}}}),
        )
        .unwrap();
        assert_eq!(ok["/a"].rps, 2.5);
        for (body, field) in [
            (json!({}), "/apps"),
            (
                json!({"apps": {"/a": {"rps": -1, "windowSeconds": 60}}}),
                "/apps//a/rps",
            ),
            (
                json!({"apps": {"/a": {"rps": 1, "windowSeconds": 0}}}),
                "/apps//a/windowSeconds",
            ),
            (
                json!({"apps": {"/a": {"rps": 1, "windowSeconds": 5, "lastRequestAgeMs": "x"}}}),
                "/apps//a/lastRequestAgeMs",
            ),
        ] {
            let e = parse(&body).unwrap_err().to_string();
            assert!(e.contains(field), "{e}");
        }
    }
}
