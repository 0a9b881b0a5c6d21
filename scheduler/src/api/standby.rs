//! The REST API of a standby: every request goes to the leader, as
//! Marathon's `LeaderProxyFilter` does (marathon-api.md §1).
//!
//! - Requests are forwarded with their method, path, query, headers and
//!   streamed body; the leader's answer streams back unchanged (it carries
//!   `X-Marathon-Leader`). `X-Marathon-Via` names each proxy a request went
//!   through, so a loop (two standbys each believing the other leads) is
//!   answered 502 instead of bouncing forever; `X-Forwarded-For` keeps the
//!   client.
//! - `/v2/events` is not proxied: a 302 sends the client to the leader.
//! - While no leader is known the request waits up to 2.5 s (10 × 250 ms,
//!   as Marathon) for one, then gets 502 "Could not determine the current
//!   leader".
//! - The executor binary is served locally on every node (agents fetch it
//!   from whichever node launched the task).

use std::net::SocketAddr;
use std::sync::Arc;
use std::time::Duration;

use axum::Router;
use axum::body::Body;
use axum::extract::{ConnectInfo, Request, State};
use axum::http::{HeaderMap, HeaderName, HeaderValue, StatusCode, header};
use axum::response::{IntoResponse, Response};
use futures::TryStreamExt;
use tokio::sync::watch;
use tracing::{Instrument, debug, info_span, warn};

use super::ApiError;
use crate::ha::Role;

/// Header listing the proxies a request went through.
pub const VIA_HEADER: &str = "x-marathon-via";
/// How often, and how long apart, a request looks for a leader.
const LEADER_TRIES: u32 = 10;
const LEADER_TRY_PAUSE: Duration = Duration::from_millis(250);

/// What the standby router needs.
#[derive(Clone)]
pub struct StandbyState {
    /// This process's role, as the election publishes it.
    pub roles: watch::Receiver<Role>,
    /// This node's `host:port`, for `X-Marathon-Via`.
    pub me: Arc<str>,
    /// The client towards the leader (no redirects followed).
    pub http: reqwest::Client,
}

impl StandbyState {
    /// A standby state for node `me` following `roles`.
    pub fn new(roles: watch::Receiver<Role>, me: &str) -> Result<StandbyState, reqwest::Error> {
        let http = reqwest::Client::builder()
            .redirect(reqwest::redirect::Policy::none())
            .connect_timeout(Duration::from_secs(2))
            .no_proxy()
            .build()?;
        Ok(StandbyState {
            roles,
            me: me.into(),
            http,
        })
    }
}

/// The standby's API: everything forwarded to the leader.
pub fn router(state: StandbyState) -> Router {
    Router::new().fallback(forward).with_state(state)
}

/// The leader's `host:port`, waiting a little for one to be known.
async fn current_leader(state: &StandbyState) -> Option<String> {
    let mut roles = state.roles.clone();
    for attempt in 0..LEADER_TRIES {
        if let Role::Following { leader } = &*roles.borrow_and_update() {
            return Some(leader.clone());
        }
        if attempt + 1 < LEADER_TRIES {
            // Woken early by a role change.
            let _ = tokio::time::timeout(LEADER_TRY_PAUSE, roles.changed()).await;
        }
    }
    None
}

fn hop_by_hop(name: &HeaderName) -> bool {
    matches!(
        name.as_str(),
        "connection"
            | "keep-alive"
            | "proxy-connection"
            | "proxy-authenticate"
            | "proxy-authorization"
            | "te"
            | "trailer"
            | "transfer-encoding"
            | "upgrade"
            | "host"
            | "content-length"
    )
}

/// The headers sent to the leader: the client's, less hop-by-hop ones,
/// plus `X-Marathon-Via` and `X-Forwarded-For`.
fn forwarded_headers(incoming: &HeaderMap, me: &str, client: Option<SocketAddr>) -> HeaderMap {
    let mut out = HeaderMap::new();
    for (name, value) in incoming {
        if !hop_by_hop(name) && name != VIA_HEADER && name != "x-forwarded-for" {
            out.append(name.clone(), value.clone());
        }
    }
    let via = match incoming.get(VIA_HEADER).and_then(|v| v.to_str().ok()) {
        Some(earlier) => format!("{earlier}, 1.1 {me}"),
        None => format!("1.1 {me}"),
    };
    if let Ok(v) = HeaderValue::from_str(&via) {
        out.insert(HeaderName::from_static(VIA_HEADER), v);
    }
    let earlier = incoming
        .get("x-forwarded-for")
        .and_then(|v| v.to_str().ok());
    let forwarded = match (earlier, client) {
        (Some(e), Some(c)) => Some(format!("{e}, {}", c.ip())),
        (None, Some(c)) => Some(c.ip().to_string()),
        (Some(e), None) => Some(e.to_string()),
        (None, None) => None,
    };
    if let Some(v) = forwarded.and_then(|f| HeaderValue::from_str(&f).ok()) {
        out.insert(HeaderName::from_static("x-forwarded-for"), v);
    }
    out
}

/// Whether the request already went through this node.
fn looped(incoming: &HeaderMap, me: &str) -> bool {
    incoming
        .get_all(VIA_HEADER)
        .iter()
        .filter_map(|v| v.to_str().ok())
        .flat_map(|v| v.split(','))
        .any(|hop| hop.trim().trim_start_matches("1.1 ") == me)
}

async fn forward(State(state): State<StandbyState>, request: Request) -> Response {
    let span = info_span!("proxy", method = %request.method(), uri = %request.uri());
    let client = request
        .extensions()
        .get::<ConnectInfo<SocketAddr>>()
        .map(|c| c.0);
    forward_to_leader(state, client, request)
        .instrument(span)
        .await
}

async fn forward_to_leader(
    state: StandbyState,
    client: Option<SocketAddr>,
    request: Request,
) -> Response {
    if looped(request.headers(), &state.me) {
        warn!("request came back to this standby: leaders disagree");
        return ApiError::Body {
            status: StatusCode::BAD_GATEWAY,
            body: serde_json::json!({"message": "Detected proxying loop."}),
        }
        .into_response();
    }
    let Some(leader) = current_leader(&state).await else {
        return ApiError::Body {
            status: StatusCode::BAD_GATEWAY,
            body: serde_json::json!({"message": "Could not determine the current leader"}),
        }
        .into_response();
    };
    let path_and_query = request
        .uri()
        .path_and_query()
        .map_or("/", |p| p.as_str())
        .to_string();
    if request.uri().path() == "/v2/events" {
        // As Marathon 1.8+: event streams are redirected, not proxied.
        let location = format!("http://{leader}{path_and_query}");
        return match HeaderValue::from_str(&location) {
            Ok(location) => (StatusCode::FOUND, [(header::LOCATION, location)]).into_response(),
            Err(_) => ApiError::BadRequest("unusable request path".into()).into_response(),
        };
    }
    let headers = forwarded_headers(request.headers(), &state.me, client);
    let method = request.method().clone();
    let body = reqwest::Body::wrap_stream(request.into_body().into_data_stream());
    let sent = state
        .http
        .request(method, format!("http://{leader}{path_and_query}"))
        .headers(headers)
        .body(body)
        .send()
        .await;
    let reply = match sent {
        Ok(reply) => reply,
        Err(e) => {
            debug!(%leader, error = %e, "cannot reach the leader");
            return ApiError::Body {
                status: StatusCode::BAD_GATEWAY,
                body: serde_json::json!({"message": format!("Could not reach the leader {leader}")}),
            }
            .into_response();
        }
    };
    let mut response = Response::builder().status(reply.status());
    for (name, value) in reply.headers() {
        if !hop_by_hop(name) {
            response = response.header(name, value);
        }
    }
    let body = Body::from_stream(reply.bytes_stream().map_err(std::io::Error::other));
    response
        .body(body)
        .unwrap_or_else(|_| StatusCode::BAD_GATEWAY.into_response())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn forwarded_headers_drop_hop_by_hop_and_name_the_proxy_and_client() {
        let mut h = HeaderMap::new();
        h.insert(header::HOST, HeaderValue::from_static("standby:8080"));
        h.insert(header::CONNECTION, HeaderValue::from_static("keep-alive"));
        h.insert(
            header::CONTENT_TYPE,
            HeaderValue::from_static("application/json"),
        );
        h.insert("x-forwarded-for", HeaderValue::from_static("10.0.0.1"));
        let client: SocketAddr = "127.0.0.9:4000".parse().unwrap();
        let out = forwarded_headers(&h, "127.0.0.1:8081", Some(client));
        assert!(out.get(header::HOST).is_none());
        assert!(out.get(header::CONNECTION).is_none());
        assert_eq!(out[header::CONTENT_TYPE], "application/json");
        assert_eq!(out[VIA_HEADER], "1.1 127.0.0.1:8081");
        assert_eq!(out["x-forwarded-for"], "10.0.0.1, 127.0.0.9");
        assert!(looped(&out, "127.0.0.1:8081"));
        assert!(!looped(&out, "127.0.0.1:8082"));
        let twice = forwarded_headers(&out, "127.0.0.1:8082", None);
        assert_eq!(twice[VIA_HEADER], "1.1 127.0.0.1:8081, 1.1 127.0.0.1:8082");
        assert!(looped(&twice, "127.0.0.1:8081"));
    }
}
