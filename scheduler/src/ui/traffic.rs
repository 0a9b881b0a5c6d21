//! `GET /ui/api/traffic`: the statistics of every `baton-router` named by
//! `--router_url`, fetched here (the page may not call a router on another
//! origin) and answered together:
//!
//! ```json
//! {"sampledAt": 1700000000000,
//!  "routers": [{"url": "http://127.0.0.1:8000", "stats": {…/_router/stats…}},
//!              {"url": "http://127.0.0.1:8001", "error": "…"}]}
//! ```
//!
//! `stats` is the router's own JSON (per app under `apps`: `requests`,
//! `requestsPerSecond` over 10 s / 1 m / 5 m, `latency` with `p50`/`p99`
//! bounds and buckets, `upstreams`), less the apps the caller may not
//! view. A router that does not answer within [`FETCH_TIMEOUT`] is an
//! `error` entry, not a failure of the whole answer. Nothing is fetched
//! unless the Traffic page asks, every few seconds while it is open.

use std::time::Duration;

use axum::Router;
use axum::extract::Extension;
use axum::response::{IntoResponse, Response};
use axum::routing::get;
use serde_json::{Value, json};

use super::{Ui, UiError};
use crate::auth::{Action, Caller};
use crate::state::app::PathId;

/// How long one router may take to answer.
pub const FETCH_TIMEOUT: Duration = Duration::from_secs(3);
/// The largest statistics body read from a router (a router with
/// thousands of apps and instances stays well below).
const MAX_STATS_BYTES: usize = 16 * 1024 * 1024;

/// The routers and the client that reads them.
#[derive(Debug)]
pub struct Traffic {
    routers: Vec<String>,
    http: reqwest::Client,
}

impl Traffic {
    /// Reads `routers` (base URLs such as `http://127.0.0.1:8000`).
    pub fn new(routers: &[String]) -> Result<Traffic, UiError> {
        let routers = routers
            .iter()
            .map(|url| {
                let url = url.trim().trim_end_matches('/').to_string();
                if url.starts_with("http://") && url.len() > "http://".len() {
                    Ok(url)
                } else {
                    Err(UiError::RouterUrl(url))
                }
            })
            .collect::<Result<Vec<_>, _>>()?;
        let http = reqwest::Client::builder()
            .connect_timeout(super::CONNECT_TIMEOUT)
            .timeout(FETCH_TIMEOUT)
            .redirect(reqwest::redirect::Policy::none())
            .no_proxy()
            .build()
            .map_err(|e| UiError::Client(e.to_string()))?;
        Ok(Traffic { routers, http })
    }

    /// The routers' base URLs.
    pub fn routers(&self) -> &[String] {
        &self.routers
    }

    /// One router's `/_router/stats`.
    async fn fetch(&self, url: &str) -> Result<Value, UiError> {
        let failed = |reason: String| UiError::Router {
            url: url.to_string(),
            reason,
        };
        let mut response = self
            .http
            .get(format!("{url}/_router/stats"))
            .header("Accept", "application/json")
            .send()
            .await
            .map_err(|e| failed(one_line(&e)))?;
        if !response.status().is_success() {
            return Err(failed(format!("answered {}", response.status())));
        }
        let mut body = Vec::new();
        while let Some(chunk) = response.chunk().await.map_err(|e| failed(one_line(&e)))? {
            if body.len() + chunk.len() > MAX_STATS_BYTES {
                return Err(failed(format!(
                    "statistics larger than {MAX_STATS_BYTES} bytes"
                )));
            }
            body.extend_from_slice(&chunk);
        }
        serde_json::from_slice(&body).map_err(|e| failed(format!("statistics are not JSON: {e}")))
    }

    /// Every router's statistics as `caller` may see them.
    pub async fn sample(&self, caller: &Caller) -> Value {
        let fetched =
            futures::future::join_all(self.routers.iter().map(|url| self.fetch(url))).await;
        let routers: Vec<Value> = self
            .routers
            .iter()
            .zip(fetched)
            .map(|(url, result)| match result {
                Ok(mut stats) => {
                    visible_only(&mut stats, caller);
                    json!({"url": url, "stats": stats})
                }
                Err(e) => json!({"url": url, "error": e.to_string()}),
            })
            .collect();
        json!({
            "sampledAt": crate::clock::Clock::wall().now().as_millis(),
            "routers": routers,
        })
    }
}

/// An error and its causes on one line.
fn one_line(error: &dyn std::error::Error) -> String {
    let mut text = error.to_string();
    let mut source = error.source();
    while let Some(cause) = source {
        text.push_str(": ");
        text.push_str(&cause.to_string());
        source = cause.source();
    }
    text
}

/// Drops the apps `caller` may not view from a router's `apps`.
fn visible_only(stats: &mut Value, caller: &Caller) {
    if caller.is_unrestricted() {
        return;
    }
    if let Some(apps) = stats.get_mut("apps").and_then(Value::as_object_mut) {
        apps.retain(|id, _| {
            PathId::parse(id, &PathId::root()).is_ok_and(|id| caller.may(Action::View, &id))
        });
    }
}

/// The `/ui/api/traffic` route.
pub fn routes<S: Clone + Send + Sync + 'static>() -> Router<S> {
    Router::new().route("/ui/api/traffic", get(sample))
}

async fn sample(caller: Option<Extension<Caller>>, ui: Option<Extension<Ui>>) -> Response {
    // The guard attaches the caller; without one, see nothing rather than
    // everything.
    let Some(Extension(caller)) = caller else {
        return super::json_error(
            axum::http::StatusCode::INTERNAL_SERVER_ERROR,
            "a request reached the UI's API without passing the guard",
        );
    };
    match ui {
        Some(Extension(ui)) => axum::Json(ui.traffic.sample(&caller).await).into_response(),
        // A router built without the UI's settings knows no routers.
        None => axum::Json(json!({"routers": []})).into_response(),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn router_urls_must_be_http() {
        let t = Traffic::new(&["http://127.0.0.1:8000/".into()]).unwrap();
        assert_eq!(t.routers(), ["http://127.0.0.1:8000"]);
        assert!(matches!(
            Traffic::new(&["127.0.0.1:8000".into()]),
            Err(UiError::RouterUrl(_))
        ));
        assert!(Traffic::new(&["https://r".into()]).is_err());
    }

    #[test]
    fn an_unrestricted_caller_sees_every_app() {
        let mut stats = json!({"apps": {"/a/x": {}, "/b/y": {}}});
        visible_only(&mut stats, &Caller::unrestricted(None));
        assert_eq!(stats["apps"].as_object().unwrap().len(), 2);
    }
}
