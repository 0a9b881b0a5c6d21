//! `GET /ui/api/events` on a standby: the leader's `/v2/events`, relayed.
//!
//! A standby answers `/v2/events` with a 302 to the leader (as Marathon
//! does). A page cannot follow that: the leader is another origin, so the
//! browser would need CORS there and would drop the `Authorization` header
//! on the way. So a page whose `/v2/events` answers with a redirect reads
//! this instead: the same query, sent to the leader with the page's
//! `Authorization` and `Accept` (the leader authenticates and filters the
//! stream itself, so the relay adds no identity), streamed back as it
//! comes. The stream ends when the leader's does, or when this server
//! shuts down; the page then reconnects (to `/v2/events` first, in case
//! this node leads by then).

use axum::Router;
use axum::body::Body;
use axum::extract::{Request, State};
use axum::http::{HeaderValue, header};
use axum::response::{IntoResponse, Response};
use axum::routing::get;
use futures::StreamExt;
use tokio::sync::watch;
use tokio_util::sync::CancellationToken;

use super::UiError;
use crate::ha::Role;

/// What the relay needs.
#[derive(Debug, Clone)]
pub struct Relay {
    /// This process's role: who leads.
    pub roles: watch::Receiver<Role>,
    /// The client towards the leader: no redirects, no overall timeout
    /// (streams are long).
    pub http: reqwest::Client,
    /// Ends relayed streams at shutdown.
    pub shutdown: CancellationToken,
}

/// The `/ui/api/events` route.
pub fn routes<S: Clone + Send + Sync + 'static>(relay: Relay) -> Router<S> {
    Router::new()
        .route("/ui/api/events", get(relay_events))
        .with_state(relay)
}

async fn relay_events(State(relay): State<Relay>, request: Request) -> Result<Response, UiError> {
    let leader = match &*relay.roles.borrow() {
        Role::Following { leader } => leader.clone(),
        _ => return Err(UiError::NoLeader),
    };
    let query = request
        .uri()
        .query()
        .map(|q| format!("?{q}"))
        .unwrap_or_default();
    let mut upstream = relay
        .http
        .get(format!("http://{leader}/v2/events{query}"))
        .header(header::ACCEPT, "text/event-stream");
    if let Some(authorization) = request.headers().get(header::AUTHORIZATION) {
        upstream = upstream.header(header::AUTHORIZATION, authorization);
    }
    let reply = upstream.send().await.map_err(|e| UiError::Leader {
        leader: leader.clone(),
        reason: e.to_string(),
    })?;
    let status = reply.status();
    let content_type = reply
        .headers()
        .get(header::CONTENT_TYPE)
        .cloned()
        .unwrap_or_else(|| HeaderValue::from_static("application/json"));
    let shutdown = relay.shutdown.clone();
    let body = reply
        .bytes_stream()
        .take_until(async move { shutdown.cancelled_owned().await })
        .map(|chunk| chunk.map_err(std::io::Error::other));
    let mut response = (status, Body::from_stream(body)).into_response();
    let headers = response.headers_mut();
    headers.insert(header::CONTENT_TYPE, content_type);
    headers.insert(header::CACHE_CONTROL, HeaderValue::from_static("no-cache"));
    Ok(response)
}
