//! The REST API: Marathon's v2 paths, JSON shapes, status codes and error
//! bodies (shared/reference/marathon-api.md §1). Handlers read immutable
//! snapshots of the scheduler's state and send it commands; they never
//! mutate state themselves.
//!
//! - [`error`] holds [`ApiError`], Marathon's error bodies and status codes.
//! - [`shapes`] writes task and app-status JSON as Marathon writes it.
//! - [`system`] serves `/ping`, `/v2/info`, `/v2/leader`, `/metrics`.
//! - [`apps`] serves `/v2/apps` and everything under it; [`pods`]
//!   serves `/v2/pods`.
//! - [`tasks`] serves `/v2/tasks`, `/v2/tasks/delete`, `/v2/tasks/load`.
//! - [`services`] serves `/v2/services`, the service registry.
//! - [`routers`] serves `/v2/routers`: the request rates `baton-router`s
//!   share, so that one of them scales from all of an app's traffic.
//! - [`queue`] serves `/v2/queue`, `/v2/queue/{id}/delay`.
//! - [`deployments`] serves `/v2/deployments`.
//! - [`groups`] serves `/v2/groups`: groups are implicit in app ids, and a
//!   group write is one all-or-nothing change of the apps below it.
//! - [`events`] serves `/v2/events`, the event bus as Server-Sent Events;
//!   [`event_json`] renders each event in Marathon's JSON.
//! - [`files`] serves the `baton-executor` binary agents fetch.
//! - [`lists`] answers the list endpoints (`/v2/apps`, `/v2/groups`,
//!   `/v2/tasks`, `/v2/queue`, `/v2/deployments`): bodies kept in the
//!   [`cache`] while the snapshot shows the same, gzipped once, with
//!   `ETag`s and 304s ([`encoding`]); streamed when too large to keep.
//!   The endpoints render them with [`render`]'s vocabulary.
//! - [`params`] reads query parameters, bodies, deployment results.
//! - [`guard`] is what every request passes first: CORS, header limits,
//!   authentication, write rate limits; [`Api`] carries the [`Caller`] it
//!   found to handlers, which authorize each app they touch and read a
//!   view restricted to what the caller may see.
//! - [`tls`] serves the API over HTTPS, reloading its certificate.
//! - [`standby`] is the whole API of a standby: every request proxied to
//!   the leader, event streams redirected there.
//!
//! [`serve`] takes a bound listener and a shutdown future (mini-redis
//! style), so tests bind port 0. It serves whichever router the HA terms
//! put in its `watch` channel at each request: the leader's [`router`] or
//! the standby's. It gives handlers the client's address
//! ([`events::ClientAddr`]) and ends open event streams when the shutdown
//! begins ([`events::StreamShutdown`]).

pub mod apps;
pub mod cache;
pub mod deployments;
pub mod encoding;
pub mod error;
pub mod event_json;
pub mod events;
pub mod files;
pub mod groups;
pub mod guard;
pub mod lists;
pub mod params;
pub mod pods;
pub mod queue;
pub mod render;
pub mod routers;
pub mod services;
pub mod shapes;
pub mod standby;
pub mod system;
pub mod tasks;
pub mod tls;

use std::future::Future;
use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::Instant;

use axum::Router;
use axum::extract::{DefaultBodyLimit, Request, State};
use axum::http::{HeaderName, HeaderValue, header};
use axum::middleware::{self, Next};
use axum::response::Response;
use tracing::{Instrument, info_span};

pub use error::ApiError;

use crate::auth::{Action, Caller};
use crate::reconcile::{SchedulerHandle, View};

/// Largest request body accepted (413 beyond). An app definition is a few
/// kilobytes; a megabyte leaves room for big groups without inviting abuse.
pub const MAX_BODY_BYTES: usize = 1024 * 1024;

/// Who we are, as `/v2/info` and `/v2/leader` report it.
#[derive(Debug, Clone)]
pub struct Identity {
    /// `--framework_name`.
    pub framework_name: String,
    /// `host:port` of this API, which is also the leader while there is
    /// no HA.
    pub leader: String,
    /// `--http_port`.
    pub http_port: u16,
    /// `--master` as given.
    pub master: String,
    /// `--mesos_role`: the framework's roles, the first apps' default.
    pub mesos_roles: Vec<String>,
    /// `--mesos_user`.
    pub mesos_user: String,
    /// `--failover_timeout` in seconds.
    pub failover_timeout_seconds: u64,
    /// `--zk` and `--zk_session_timeout` (ms), with ZooKeeper.
    pub zk: Option<(String, u64)>,
    /// `--max_instances_per_app`.
    pub max_instances_per_app: u32,
}

/// What handlers share.
#[derive(Clone)]
pub struct ApiState {
    /// The scheduler.
    pub scheduler: SchedulerHandle,
    /// Who we are.
    pub identity: Arc<Identity>,
    /// Requests served, by route and status class, for `/metrics`.
    pub requests: Arc<RequestCounters>,
    /// The `baton-executor` binary agents fetch.
    pub executor_file: Arc<files::ExecutorFile>,
    /// Ends this leadership term (`DELETE /v2/leader`).
    pub abdicate: tokio::sync::mpsc::Sender<()>,
    /// Authentication and request policy.
    pub guard: Arc<guard::Guard>,
    /// Rendered list bodies, kept while the snapshot shows the same.
    pub cache: Arc<lists::ResponseCache>,
    /// What the routers reported of their traffic this term.
    pub router_loads: Arc<routers::RouterLoads>,
}

/// What a handler works with: the shared state and who is asking.
pub struct Api {
    /// Shared by reference: `ApiState` holds the scheduler's handle, whose
    /// clone is a dozen atomic increments (channels, the Mesos client),
    /// which every request paid, more than once, when it was cloned.
    state: Arc<ApiState>,
    /// Who the guard found the request comes from.
    pub caller: Caller,
}

impl std::ops::Deref for Api {
    type Target = ApiState;
    fn deref(&self) -> &ApiState {
        &self.state
    }
}

impl axum::extract::FromRequestParts<Arc<ApiState>> for Api {
    type Rejection = ApiError;

    async fn from_request_parts(
        parts: &mut axum::http::request::Parts,
        state: &Arc<ApiState>,
    ) -> Result<Api, ApiError> {
        // No caller means the guard did not run: refuse rather than
        // assume anyone.
        let caller = parts.extensions.get::<Caller>().cloned().ok_or_else(|| {
            ApiError::Internal("a request reached a handler without passing the guard".into())
        })?;
        Ok(Api {
            state: state.clone(),
            caller,
        })
    }
}

impl Api {
    /// The state as the caller may see it: apps (and their tasks,
    /// versions, deployments, queue entries) they may not view are absent.
    pub fn view(&self) -> Arc<View> {
        lists::visible(&self.scheduler.view(), &self.caller)
    }

    /// The answer to the list request `key` for this caller, from the
    /// current snapshot (see [`lists::respond`]).
    pub async fn list(
        &self,
        key: impl Into<lists::ListKey>,
        headers: &axum::http::HeaderMap,
    ) -> Response {
        lists::respond(
            &self.cache,
            self.scheduler.view(),
            &self.caller,
            self.scheduler.now(),
            key.into(),
            headers,
        )
        .await
    }

    /// `edit`, refused with 403 in the loop unless the caller may do what
    /// it turns out to do there, against the app as it is then: create
    /// what is absent, update what exists, delete. (The handlers' own
    /// checks answer early from a snapshot; this one cannot be raced.)
    pub fn authorized_edit(
        &self,
        app: crate::state::app::PathId,
        edit: crate::reconcile::AppEdit,
    ) -> crate::reconcile::AppEdit {
        if self.caller.is_unrestricted() {
            return edit;
        }
        let caller = self.caller.clone();
        Box::new(move |ctx| {
            let existed = ctx.current.is_some();
            let next = edit(ctx)?;
            let action = match (existed, &next) {
                (false, Some(_)) => Action::Create,
                (true, Some(_)) => Action::Update,
                (true, None) => Action::Delete,
                (false, None) => return Ok(None),
            };
            caller
                .check(action, &app)
                .map_err(crate::reconcile::SchedulerError::Forbidden)?;
            Ok(next)
        })
    }

    /// With `force`, a write to `apps` supersedes the deployments running
    /// on them, changing every app those touch: the caller must be allowed
    /// to update each of them.
    pub fn authorize_superseding(
        &self,
        apps: &[crate::state::app::PathId],
        force: bool,
    ) -> Result<(), ApiError> {
        if !force || self.caller.is_unrestricted() {
            return Ok(());
        }
        let whole = self.scheduler.view();
        for app in apps {
            for deployment in whole.deployments_of(app) {
                for other in deployment.affected_apps() {
                    self.authorize(Action::Update, other)?;
                }
            }
        }
        Ok(())
    }

    /// `Ok` if the caller may do `action` to `app`, else 403.
    pub fn authorize(
        &self,
        action: Action,
        app: &crate::state::app::PathId,
    ) -> Result<(), ApiError> {
        self.caller.check(action, app).map_err(ApiError::Forbidden)
    }
}

impl ApiState {
    /// What app bodies are read with: the flags that give apps their
    /// defaults and limits.
    pub fn app_defaults(&self) -> crate::state::app::AppDefaults {
        crate::state::app::AppDefaults {
            role: self
                .identity
                .mesos_roles
                .first()
                .cloned()
                .unwrap_or_else(|| "*".into()),
            allowed_roles: self.identity.mesos_roles.clone(),
            max_instances_per_app: self.identity.max_instances_per_app,
            ..crate::state::app::AppDefaults::default()
        }
    }
}

/// HTTP request counts by matched route and status code.
#[derive(Debug, Default)]
pub struct RequestCounters {
    counts: std::sync::Mutex<std::collections::BTreeMap<(&'static str, u16), u64>>,
    total: AtomicU64,
}

impl RequestCounters {
    fn record(&self, route: &'static str, status: u16) {
        self.total.fetch_add(1, Ordering::Relaxed);
        if let Ok(mut counts) = self.counts.lock() {
            *counts.entry((route, status)).or_insert(0) += 1;
        }
    }

    /// A copy of the counts.
    pub fn snapshot(&self) -> Vec<((String, u16), u64)> {
        self.counts
            .lock()
            .map(|c| {
                c.iter()
                    .map(|((route, status), n)| ((route.to_string(), *status), *n))
                    .collect()
            })
            .unwrap_or_default()
    }
}

/// The whole API. Inside a tokio runtime, the cache follows the
/// scheduler's snapshots to drop what they change.
pub fn router(state: ApiState) -> Router {
    if tokio::runtime::Handle::try_current().is_ok() {
        state.cache.follow(state.scheduler.watch_view());
    }
    let executor_file = state.executor_file.clone();
    let observed = Observed {
        requests: state.requests.clone(),
        leader: HeaderValue::from_str(&format!("http://{}", state.identity.leader)).ok(),
    };
    let state = Arc::new(state);
    Router::new()
        .merge(system::routes())
        .merge(apps::routes())
        .merge(pods::routes())
        .merge(tasks::routes())
        .merge(routers::routes())
        .merge(services::routes())
        .merge(queue::routes())
        .merge(deployments::routes())
        .merge(groups::routes())
        .merge(events::routes())
        // The web UI's own API (the Traffic page), behind the guard.
        .merge(crate::ui::api_routes())
        .fallback(|| async { ApiError::NotFound("URI not found".into()) })
        .method_not_allowed_fallback(|request: Request| async move {
            ApiError::Body {
                status: axum::http::StatusCode::METHOD_NOT_ALLOWED,
                body: serde_json::json!({
                    "message": format!("{} is not supported on {}", request.method(), request.uri().path()),
                }),
            }
        })
        .layer(DefaultBodyLimit::max(MAX_BODY_BYTES))
        .layer(middleware::from_fn(limit_body))
        .layer(middleware::from_fn_with_state(
            state.guard.clone(),
            guard::guard,
        ))
        .layer(middleware::from_fn_with_state(observed, observe))
        .with_state(state)
        // Agents fetch the executor here; outside the API's middleware.
        .merge(files::routes(executor_file))
        // The web UI's pages and scripts: public, cached by ETag (see `ui`).
        .merge(crate::ui::asset_routes())
}

/// Bodies past this are not even drained: the connection is closed.
const DRAIN_LIMIT_BYTES: usize = 64 * 1024 * 1024;

/// Reads the body before the handler runs and answers 413 (JSON, naming
/// the limit) past [`MAX_BODY_BYTES`]. An oversized body is read to its end
/// (up to [`DRAIN_LIMIT_BYTES`]) before the answer: a client still writing
/// would otherwise get a broken pipe instead of the 413, and its keep-alive
/// connection would be lost.
async fn limit_body(request: Request, next: Next) -> Response {
    use axum::response::IntoResponse;
    use futures::StreamExt;

    // A request without a body (every GET) goes on as it is.
    if axum::body::HttpBody::is_end_stream(request.body()) {
        return next.run(request).await;
    }
    let (parts, body) = request.into_parts();
    let mut stream = body.into_data_stream();
    let mut kept = bytes::BytesMut::new();
    let mut total = 0usize;
    let mut drained = true;
    while let Some(chunk) = stream.next().await {
        let Ok(chunk) = chunk else {
            return ApiError::BadRequest("The request body could not be read".into())
                .into_response();
        };
        total += chunk.len();
        if total <= MAX_BODY_BYTES {
            kept.extend_from_slice(&chunk);
        } else if total > DRAIN_LIMIT_BYTES {
            drained = false;
            break;
        }
    }
    if total > MAX_BODY_BYTES {
        let mut response = ApiError::Body {
            status: axum::http::StatusCode::PAYLOAD_TOO_LARGE,
            body: serde_json::json!({
                "message": format!(
                    "Request body too large: {}{total} bytes, the limit is {MAX_BODY_BYTES} bytes",
                    if drained { "" } else { "over " }
                ),
            }),
        }
        .into_response();
        if !drained {
            response
                .headers_mut()
                .insert(header::CONNECTION, HeaderValue::from_static("close"));
        }
        return response;
    }
    next.run(Request::from_parts(
        parts,
        axum::body::Body::from(kept.freeze()),
    ))
    .await
}

/// One span per request, request counts for `/metrics`, and the headers
/// Marathon always sends.
async fn observe(State(observed): State<Observed>, request: Request, next: Next) -> Response {
    let route = route_label(request.uri().path());
    let span =
        info_span!("request", method = %request.method(), uri = %request.uri(), route = %route);
    // How long answering took, for the log: a measurement, not a decision.
    #[allow(clippy::disallowed_methods)]
    let started = Instant::now();
    let mut response = next.run(request).instrument(span.clone()).await;
    let status = response.status().as_u16();
    span.in_scope(|| {
        tracing::debug!(
            status,
            elapsed_ms = started.elapsed().as_millis() as u64,
            "answered"
        )
    });
    observed.requests.record(route, status);
    let headers = response.headers_mut();
    headers.insert(
        header::CACHE_CONTROL,
        HeaderValue::from_static("no-cache, no-store, must-revalidate"),
    );
    headers.insert(header::PRAGMA, HeaderValue::from_static("no-cache"));
    headers.insert(header::EXPIRES, HeaderValue::from_static("0"));
    if let Some(leader) = &observed.leader {
        headers.insert(HeaderName::from_static("x-marathon-leader"), leader.clone());
    }
    response
}

/// What [`observe`] needs: the counters, and `X-Marathon-Leader` made
/// once rather than formatted for every request.
#[derive(Clone)]
struct Observed {
    requests: Arc<RequestCounters>,
    leader: Option<HeaderValue>,
}

/// The `/v2/<resource>` names Baton knows, with their labels; others are
/// labelled `/v2/other`.
const V2_RESOURCES: [(&str, &str); 10] = [
    ("apps", "/v2/apps"),
    ("groups", "/v2/groups"),
    ("tasks", "/v2/tasks"),
    ("deployments", "/v2/deployments"),
    ("queue", "/v2/queue"),
    ("info", "/v2/info"),
    ("leader", "/v2/leader"),
    ("events", "/v2/events"),
    ("pods", "/v2/pods"),
    ("services", "/v2/services"),
];

/// A bounded label for a request path: its first two segments, since app
/// ids make the rest unbounded (`/v2/apps/prod/web/tasks` → `/v2/apps`).
/// Static, so that counting a request allocates nothing.
fn route_label(path: &str) -> &'static str {
    let mut segments = path.split('/').filter(|s| !s.is_empty());
    match (segments.next(), segments.next()) {
        (Some("v2"), Some(second)) => V2_RESOURCES
            .iter()
            .find(|(name, _)| *name == second)
            .map_or("/v2/other", |(_, label)| label),
        (Some("v2"), None) => "/v2/other",
        (Some("ping"), _) => "/ping",
        (Some("metrics"), _) => "/metrics",
        (Some(_), _) => "other",
        (None, _) => "/",
    }
}

/// Serves the API on `listener` until `shutdown` resolves. Requests carry
/// the peer's address (`ConnectInfo`); event streams end as soon as
/// `shutdown` resolves, so the graceful shutdown does not wait on them.
pub async fn serve(
    listener: tokio::net::TcpListener,
    current: tokio::sync::watch::Receiver<Router>,
    shutdown: impl Future<Output = ()> + Send + 'static,
) -> std::io::Result<()> {
    use axum::serve::ListenerExt;
    let streams = tokio_util::sync::CancellationToken::new();
    // Without TCP_NODELAY the last, short segment of a large answer waits
    // for the client's delayed ACK (Nagle): up to 40 ms on Linux.
    let listener = listener.tap_io(|tcp| {
        if let Err(e) = tcp.set_nodelay(true) {
            tracing::debug!(error = %e, "cannot set TCP_NODELAY");
        }
    });
    axum::serve(
        listener,
        serving(current, streams.clone())
            .into_make_service_with_connect_info::<std::net::SocketAddr>(),
    )
    .with_graceful_shutdown(async move {
        shutdown.await;
        streams.cancel();
    })
    .await
}

/// [`serve`] over TLS ([`tls`]), with the certificate `certs` keeps
/// current.
pub async fn serve_https(
    listener: tokio::net::TcpListener,
    certs: Arc<tls::ReloadingCert>,
    current: tokio::sync::watch::Receiver<Router>,
    shutdown: impl Future<Output = ()> + Send + 'static,
) -> std::io::Result<()> {
    let streams = tokio_util::sync::CancellationToken::new();
    let app = serving(current, streams.clone());
    tls::serve(listener, certs, app, async move {
        shutdown.await;
        streams.cancel();
    })
    .await
}

/// What both listeners serve: whichever router is current at each request,
/// event streams that end with `streams`, errors in Marathon's shape.
fn serving(
    current: tokio::sync::watch::Receiver<Router>,
    streams: tokio_util::sync::CancellationToken,
) -> Router {
    use tower::ServiceExt;
    Router::new()
        .fallback(move |request: Request| {
            let router = current.borrow().clone();
            async move {
                match router.oneshot(request).await {
                    Ok(response) => response,
                    Err(never) => match never {},
                }
            }
        })
        .layer(axum::Extension(events::StreamShutdown(Arc::new(streams))))
        .layer(middleware::from_fn(error::json_errors))
}
