//! The web UI: apps and groups with their status, one app's tasks,
//! configuration, versions, launch queue and deployment, the actions on
//! them, pods with their instances' containers, deployments, the event
//! stream and the gateway's traffic. Served by
//! `baton` itself at `/`, on the leader and on a standby alike.
//!
//! # Why it is built this way
//!
//! - **No JavaScript build step.** The UI is hand-written HTML, CSS and a
//!   few small vanilla ES modules in `web/`, compiled into the binary with
//!   `include_bytes!` ([`assets`]). Nothing to install, bundle or reproduce
//!   (the toolchain stays `cargo`), nothing fetched at run time (no CDN: it
//!   works offline), and what runs in the browser is what is in the tree.
//! - **Assets are public, data is not.** The pages, scripts and styles are
//!   the same bytes for everyone and reveal nothing about the cluster, so
//!   they are served outside the API's guard (like the executor binary);
//!   every piece of data comes from the API behind it. That lets the page
//!   show its own login form instead of the browser's Basic dialog, which
//!   cannot log out and whose credentials `EventSource` could not use
//!   anyway.
//! - **How the page authenticates.** With `--http_credentials` the first
//!   API call answers 401: the page asks for a user and password, keeps
//!   `Basic <base64>` in `sessionStorage` (this tab only, gone when it
//!   closes, never attached by the browser on its own, so another site
//!   cannot forge requests with it) and sends it as `Authorization` on
//!   every `fetch` (with `credentials: "omit"`, so a wrong password never
//!   pops the browser's dialog). `/v2/events` is read with `fetch` and a
//!   streaming Server-Sent Events parser, since `EventSource` cannot send
//!   headers. With the front-proxy mode (`--http_user_header`) or without
//!   authentication, the first call succeeds and no form is shown. Errors
//!   show Baton's `message`, and a 422's `details` next to the fields they
//!   name. The HTML carries a strict Content-Security-Policy (scripts from
//!   this origin only) and the scripts never put API data into `innerHTML`.
//! - **Live, without polling.** The page re-reads what an event names
//!   (one app, the queue, the deployments; the pods while the Pods page
//!   shows them), debounced. Two things have no
//!   events and are sampled every few seconds, only while shown: the
//!   routers' traffic (the Traffic page), and why an app's instances wait
//!   (declined offers, the launch delay; the App page of a waiting app).
//!
//! # Routes
//!
//! - [`asset_routes`]: `/`, `/ui/` and `/ui/<asset>`, outside the guard,
//!   with an `ETag` (304 on `If-None-Match`) and `Cache-Control: no-cache`
//!   (the URLs do not change with a release, so browsers revalidate).
//! - [`api_routes`]: `GET /ui/api/traffic` behind the guard: each
//!   `--router_url`'s `/_router/stats`, fetched here because the browser
//!   may not call the routers cross-origin ([`traffic`]), with the apps the
//!   caller may not view left out. It reads the [`Ui`] the router carries
//!   as an `Extension`.
//! - [`standby_routes`]: the same on a standby, plus `GET /ui/api/events`:
//!   a standby answers `/v2/events` with a redirect to the leader, which a
//!   page cannot follow with its credentials, so the page reads the
//!   leader's stream relayed through here instead ([`relay`]).

pub mod assets;
pub mod relay;
pub mod traffic;

use std::sync::Arc;
use std::time::Duration;

use axum::Router;
use axum::http::StatusCode;
use axum::response::{IntoResponse, Response};
use tokio_util::sync::CancellationToken;

/// What the UI's own endpoints can fail with; answered as JSON with
/// `message`, as every API error is.
#[derive(Debug, thiserror::Error)]
pub enum UiError {
    /// The HTTP client towards routers and the leader could not be built.
    #[error("cannot build the UI's HTTP client: {0}")]
    Client(String),
    /// A `--router_url` is not an `http://` URL.
    #[error("--router_url {0:?} is not an http:// URL")]
    RouterUrl(String),
    /// A router did not answer, or not with its statistics.
    #[error("router {url}: {reason}")]
    Router {
        /// The router's base URL.
        url: String,
        /// What went wrong, on one line.
        reason: String,
    },
    /// A standby knows no leader to relay events from.
    #[error("Could not determine the current leader")]
    NoLeader,
    /// The leader did not answer the relayed event stream.
    #[error("Could not reach the leader {leader}: {reason}")]
    Leader {
        /// The leader's `host:port`.
        leader: String,
        /// Why.
        reason: String,
    },
}

impl IntoResponse for UiError {
    fn into_response(self) -> Response {
        let status = match self {
            UiError::Client(_) | UiError::RouterUrl(_) => StatusCode::INTERNAL_SERVER_ERROR,
            UiError::Router { .. } | UiError::NoLeader | UiError::Leader { .. } => {
                StatusCode::BAD_GATEWAY
            }
        };
        json_error(status, &self.to_string())
    }
}

/// Marathon's error shape, `{"message": …}`.
fn json_error(status: StatusCode, message: &str) -> Response {
    (
        status,
        axum::Json(serde_json::json!({ "message": message })),
    )
        .into_response()
}

/// How long a router or the leader may take to accept a connection.
const CONNECT_TIMEOUT: Duration = Duration::from_secs(2);

/// The UI's settings and clients, shared by the leader's and the
/// standby's routers (cheap to clone).
#[derive(Debug, Clone)]
pub struct Ui {
    traffic: Arc<traffic::Traffic>,
    /// Ends relayed event streams when the server shuts down, so the
    /// graceful shutdown does not wait for browsers that never hang up.
    shutdown: CancellationToken,
}

impl Ui {
    /// The UI with the routers whose statistics the Traffic page shows
    /// (`--router_url`), ending relayed streams when `shutdown` is
    /// cancelled.
    pub fn new(router_urls: &[String], shutdown: CancellationToken) -> Result<Ui, UiError> {
        Ok(Ui {
            traffic: Arc::new(traffic::Traffic::new(router_urls)?),
            shutdown,
        })
    }
}

/// The UI's pages, scripts and styles (public: see the module doc).
pub fn asset_routes<S: Clone + Send + Sync + 'static>() -> Router<S> {
    assets::routes()
}

/// The UI's API on the leader, to be put behind the guard: its handlers
/// read the caller the guard found and the [`Ui`] extension.
pub fn api_routes<S: Clone + Send + Sync + 'static>() -> Router<S> {
    traffic::routes()
}

/// The UI's API on a standby, to be put behind the guard: the leader's
/// plus the relayed event stream from the leader `roles` names.
pub fn standby_routes<S: Clone + Send + Sync + 'static>(
    ui: &Ui,
    roles: tokio::sync::watch::Receiver<crate::ha::Role>,
    http: reqwest::Client,
) -> Router<S> {
    traffic::routes().merge(relay::routes(relay::Relay {
        roles,
        http,
        shutdown: ui.shutdown.clone(),
    }))
}
