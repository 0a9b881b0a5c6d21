//! What every API request passes before a handler sees it, on the leader
//! and on a standby alike: CORS, the header size limit, authentication
//! (401 with `WWW-Authenticate`), the per-client write rate limit (429 with
//! `Retry-After`). The [`Caller`] it finds rides on the request for the
//! handlers' authorization (see [`super::Api`]).
//!
//! Open without credentials: `/ping` always, `/v2/events` and `/metrics`
//! when `--http_open_events` / `--http_open_metrics` say so, and CORS
//! preflights (browsers send them without credentials). The executor binary
//! agents fetch is served outside this guard.

use std::collections::HashMap;
use std::sync::{Arc, Mutex};

use axum::extract::{ConnectInfo, Request, State};
use axum::http::{HeaderMap, HeaderValue, Method, StatusCode, header};
use axum::middleware::Next;
use axum::response::{IntoResponse, Response};
use tracing::debug;

use super::ApiError;
use crate::auth::{Caller, HttpSecurity};
use crate::clock::Clock;

/// Headers past this many bytes in all are refused with 431.
pub const DEFAULT_MAX_HEADER_BYTES: usize = 16 * 1024;
/// Clients tracked by the write rate limiter before idle ones are dropped.
const MAX_TRACKED_CLIENTS: usize = 10_000;

/// The API's request policy besides authentication.
#[derive(Debug, Clone, PartialEq)]
pub struct HttpPolicy {
    /// `--access_control_allow_origin`: origins allowed cross-origin
    /// requests (`*`: any).
    pub cors_origins: Vec<String>,
    /// `--http_max_header_bytes`: the most header bytes a request may send.
    pub max_header_bytes: usize,
    /// `--http_write_rate_limit`: writes per second per client (a user, or
    /// an address when unauthenticated), with a burst of as many; `None`:
    /// unlimited.
    pub write_rate_per_client: Option<f64>,
}

impl Default for HttpPolicy {
    fn default() -> HttpPolicy {
        HttpPolicy {
            cors_origins: Vec::new(),
            max_header_bytes: DEFAULT_MAX_HEADER_BYTES,
            write_rate_per_client: None,
        }
    }
}

/// The guard's settings and its one piece of state, shared by every
/// router this process serves (the leader's and the standby's).
#[derive(Debug)]
pub struct Guard {
    /// Who may use the API.
    pub security: HttpSecurity,
    /// CORS, limits.
    pub policy: HttpPolicy,
    buckets: Mutex<HashMap<String, Bucket>>,
}

/// A token bucket: `tokens` left at `at_ms`.
#[derive(Debug, Clone, Copy, PartialEq)]
struct Bucket {
    tokens: f64,
    at_ms: i64,
}

/// Takes one token from a bucket refilled at `rate` per second up to
/// `rate` tokens; `Err` carries the seconds until one is there.
fn take_token(bucket: Option<Bucket>, rate: f64, now_ms: i64) -> (Bucket, Result<(), u64>) {
    let capacity = rate.max(1.0);
    let tokens = match bucket {
        Some(b) => (b.tokens + (now_ms - b.at_ms).max(0) as f64 / 1000.0 * rate).min(capacity),
        None => capacity,
    };
    if tokens >= 1.0 {
        (
            Bucket {
                tokens: tokens - 1.0,
                at_ms: now_ms,
            },
            Ok(()),
        )
    } else {
        let wait = ((1.0 - tokens) / rate).ceil().max(1.0) as u64;
        (
            Bucket {
                tokens,
                at_ms: now_ms,
            },
            Err(wait),
        )
    }
}

impl Guard {
    /// A guard with no history.
    pub fn new(security: HttpSecurity, policy: HttpPolicy) -> Guard {
        Guard {
            security,
            policy,
            buckets: Mutex::default(),
        }
    }

    /// One write by `client` now: `Err(seconds)` when over its rate.
    fn admit_write(&self, client: &str, now_ms: i64) -> Result<(), u64> {
        let Some(rate) = self.policy.write_rate_per_client.filter(|r| *r > 0.0) else {
            return Ok(());
        };
        let mut buckets = self.buckets.lock().expect("never poisoned");
        if buckets.len() >= MAX_TRACKED_CLIENTS && !buckets.contains_key(client) {
            // Full buckets say nothing: forget them first.
            buckets.retain(|_, b| take_token(Some(*b), rate, now_ms).0.tokens < rate.max(1.0));
            if buckets.len() >= MAX_TRACKED_CLIENTS {
                buckets.clear();
            }
        }
        let (bucket, admitted) = take_token(buckets.get(client).copied(), rate, now_ms);
        buckets.insert(client.to_string(), bucket);
        admitted
    }

    /// The `Access-Control-Allow-Origin` for a request's `Origin`, if allowed.
    fn allowed_origin(&self, headers: &HeaderMap) -> Option<HeaderValue> {
        let origin = headers.get(header::ORIGIN)?;
        let origins = &self.policy.cors_origins;
        if origins.iter().any(|o| o == "*") {
            return Some(HeaderValue::from_static("*"));
        }
        let text = origin.to_str().ok()?;
        origins
            .iter()
            .any(|o| o.trim_end_matches('/') == text)
            .then(|| origin.clone())
    }
}

/// Whether a path is open without credentials.
fn is_open(security: &HttpSecurity, path: &str) -> bool {
    path == "/ping"
        || (security.open_events && path == "/v2/events")
        || (security.open_metrics && path == "/metrics")
}

fn is_write(method: &Method) -> bool {
    matches!(
        *method,
        Method::POST | Method::PUT | Method::PATCH | Method::DELETE
    )
}

fn header_bytes(headers: &HeaderMap) -> usize {
    headers
        .iter()
        .map(|(name, value)| name.as_str().len() + value.len() + 4)
        .sum()
}

fn error(status: StatusCode, message: String) -> Response {
    ApiError::Body {
        status,
        body: serde_json::json!({ "message": message }),
    }
    .into_response()
}

/// The middleware.
pub async fn guard(State(guard): State<Arc<Guard>>, mut request: Request, next: Next) -> Response {
    let origin = guard.allowed_origin(request.headers());
    let response = match guarded(&guard, &mut request, origin.is_some()) {
        Some(answer) => answer,
        None => next.run(request).await,
    };
    with_cors(response, origin)
}

/// `Some(answer)` when the request is answered here (refused, or a CORS
/// preflight); `None` when it goes on, with its [`Caller`] attached.
fn guarded(guard: &Guard, request: &mut Request, cors: bool) -> Option<Response> {
    if cors
        && request.method() == Method::OPTIONS
        && request
            .headers()
            .contains_key(header::ACCESS_CONTROL_REQUEST_METHOD)
    {
        return Some(preflight());
    }
    let size = header_bytes(request.headers());
    if size > guard.policy.max_header_bytes {
        return Some(error(
            StatusCode::REQUEST_HEADER_FIELDS_TOO_LARGE,
            format!(
                "Request headers too large: {size} bytes, the limit is {} bytes",
                guard.policy.max_header_bytes
            ),
        ));
    }
    let security = &guard.security;
    let caller = if is_open(security, request.uri().path()) {
        Caller::unrestricted(None)
    } else {
        let authorization = request.headers().get(header::AUTHORIZATION);
        let proxy_user = security
            .user_header
            .as_ref()
            .and_then(|h| request.headers().get(h.as_str()));
        match security.authenticate(
            authorization.map(HeaderValue::as_bytes),
            proxy_user.map(HeaderValue::as_bytes),
        ) {
            Ok(caller) => caller,
            Err(reason) => {
                debug!(%reason, path = request.uri().path(), "request refused: not authenticated");
                let mut refused = error(StatusCode::UNAUTHORIZED, capitalised(&reason.to_string()));
                let challenge = format!("Basic realm=\"{}\"", security.realm.replace('"', "'"));
                if let Ok(value) = HeaderValue::from_str(&challenge) {
                    refused
                        .headers_mut()
                        .insert(header::WWW_AUTHENTICATE, value);
                }
                return Some(refused);
            }
        }
    };
    if is_write(request.method()) {
        let client = match &caller.user {
            Some(user) => format!("user:{user}"),
            None => request
                .extensions()
                .get::<ConnectInfo<std::net::SocketAddr>>()
                .map_or_else(|| "unknown".into(), |c| format!("ip:{}", c.0.ip())),
        };
        if let Err(seconds) = guard.admit_write(&client, Clock::wall().now().as_millis()) {
            let mut refused = error(
                StatusCode::TOO_MANY_REQUESTS,
                format!(
                    "Too many writes: at most {} per second per client (--http_write_rate_limit); retry in {seconds} s",
                    guard.policy.write_rate_per_client.unwrap_or_default()
                ),
            );
            refused
                .headers_mut()
                .insert(header::RETRY_AFTER, HeaderValue::from(seconds));
            return Some(refused);
        }
    }
    request.extensions_mut().insert(caller);
    None
}

fn capitalised(text: &str) -> String {
    let mut chars = text.chars();
    match chars.next() {
        Some(first) => first.to_uppercase().chain(chars).collect(),
        None => String::new(),
    }
}

fn preflight() -> Response {
    let mut response = StatusCode::NO_CONTENT.into_response();
    let headers = response.headers_mut();
    headers.insert(
        header::ACCESS_CONTROL_ALLOW_METHODS,
        HeaderValue::from_static("GET, HEAD, POST, PUT, PATCH, DELETE, OPTIONS"),
    );
    headers.insert(
        header::ACCESS_CONTROL_ALLOW_HEADERS,
        HeaderValue::from_static("Authorization, Content-Type, Accept"),
    );
    headers.insert(
        header::ACCESS_CONTROL_MAX_AGE,
        HeaderValue::from_static("86400"),
    );
    response
}

fn with_cors(mut response: Response, origin: Option<HeaderValue>) -> Response {
    if let Some(origin) = origin {
        let credentials = origin != "*";
        let headers = response.headers_mut();
        headers.insert(header::ACCESS_CONTROL_ALLOW_ORIGIN, origin);
        headers.append(header::VARY, HeaderValue::from_static("Origin"));
        if credentials {
            headers.insert(
                header::ACCESS_CONTROL_ALLOW_CREDENTIALS,
                HeaderValue::from_static("true"),
            );
        }
    }
    response
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_bucket_allows_its_rate_as_a_burst_then_refills() {
        let mut bucket = None;
        for _ in 0..5 {
            let (b, admitted) = take_token(bucket, 5.0, 0);
            assert_eq!(admitted, Ok(()));
            bucket = Some(b);
        }
        let (b, refused) = take_token(bucket, 5.0, 0);
        assert_eq!(refused, Err(1));
        // 200 ms later one token is back.
        let (_, admitted) = take_token(Some(b), 5.0, 200);
        assert_eq!(admitted, Ok(()));
    }

    #[test]
    fn a_slow_rate_says_how_long_to_wait() {
        let (b, _) = take_token(None, 0.1, 0);
        assert_eq!(take_token(Some(b), 0.1, 0).1, Err(10));
    }

    #[test]
    fn clients_are_limited_one_by_one() {
        let guard = Guard::new(
            HttpSecurity::default(),
            HttpPolicy {
                write_rate_per_client: Some(2.0),
                ..HttpPolicy::default()
            },
        );
        assert!(guard.admit_write("a", 0).is_ok());
        assert!(guard.admit_write("a", 0).is_ok());
        assert!(guard.admit_write("a", 0).is_err());
        assert!(guard.admit_write("b", 0).is_ok());
        let unlimited = Guard::new(HttpSecurity::default(), HttpPolicy::default());
        assert!((0..1000).all(|_| unlimited.admit_write("a", 0).is_ok()));
    }

    #[test]
    fn only_listed_origins_get_cors_headers() {
        let guard = Guard::new(
            HttpSecurity::default(),
            HttpPolicy {
                cors_origins: vec!["https://ui.example".into()],
                ..HttpPolicy::default()
            },
        );
        let mut headers = HeaderMap::new();
        headers.insert(
            header::ORIGIN,
            HeaderValue::from_static("https://ui.example"),
        );
        assert_eq!(
            guard.allowed_origin(&headers).unwrap(),
            "https://ui.example"
        );
        headers.insert(
            header::ORIGIN,
            HeaderValue::from_static("https://evil.example"),
        );
        assert!(guard.allowed_origin(&headers).is_none());
        assert!(guard.allowed_origin(&HeaderMap::new()).is_none());
    }
}
