//! What every API request passes before a handler sees it, on the leader
//! and on a standby alike: CORS, the header size limit, cross-site write
//! refusal, authentication (401 with `WWW-Authenticate`; repeated failures
//! from one address get 429), the per-client write rate limit (429 with
//! `Retry-After`). The [`Caller`] it finds rides on the request for the
//! handlers' authorization (see [`super::Api`]).
//!
//! Open without credentials: `/ping` always, `/v2/events` and `/metrics`
//! when `--http_open_events` / `--http_open_metrics` say so (with an ACL, an
//! anonymous reader there sees no app), and CORS preflights (browsers send
//! them without credentials). The executor binary agents fetch is served
//! outside this guard.
//!
//! A browser that holds Basic credentials for Baton would send them with a
//! write a hostile page makes it send (a form posts cross-site without a
//! preflight), so writes whose `Origin` is another site not allowed by
//! `--access_control_allow_origin` are refused with 403.

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
/// Clients tracked by the rate limiters before idle ones are dropped.
const MAX_TRACKED_CLIENTS: usize = 10_000;
/// Failed authentications one address may make in a burst...
const AUTH_FAILURE_BURST: f64 = 20.0;
/// ...and per second after it.
const AUTH_FAILURES_PER_SECOND: f64 = 1.0;
/// Headers a browser may read from cross-origin answers.
const EXPOSED_HEADERS: &str = "Location, Marathon-Deployment-Id, X-Marathon-Leader";

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

/// A token bucket: `tokens` left at `at_ms`, refilled at `rate` per
/// second up to `burst`.
#[derive(Debug, Clone, Copy, PartialEq)]
struct Bucket {
    tokens: f64,
    at_ms: i64,
    rate: f64,
    burst: f64,
}

impl Bucket {
    /// The tokens in it at `now_ms`.
    fn refilled(&self, now_ms: i64) -> f64 {
        (self.tokens + (now_ms - self.at_ms).max(0) as f64 / 1000.0 * self.rate).min(self.burst)
    }
}

/// Takes one token from a bucket refilled at `rate` per second up to
/// `burst` tokens; `Err` carries the seconds until one is there.
fn take_token(
    bucket: Option<Bucket>,
    rate: f64,
    burst: f64,
    now_ms: i64,
) -> (Bucket, Result<(), u64>) {
    let tokens = bucket.map_or(burst, |b| b.refilled(now_ms));
    let after = |tokens| Bucket {
        tokens,
        at_ms: now_ms,
        rate,
        burst,
    };
    if tokens >= 1.0 {
        (after(tokens - 1.0), Ok(()))
    } else {
        let wait = ((1.0 - tokens) / rate).ceil().max(1.0) as u64;
        (after(tokens), Err(wait))
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
        self.take(&format!("write {client}"), rate, rate.max(1.0), now_ms)
    }

    /// One failed authentication from `client` now: `Err(seconds)` when
    /// it has failed too often (a password being guessed).
    fn admit_failure(&self, client: &str, now_ms: i64) -> Result<(), u64> {
        self.take(
            &format!("failure {client}"),
            AUTH_FAILURES_PER_SECOND,
            AUTH_FAILURE_BURST,
            now_ms,
        )
    }

    /// Takes a token from `key`'s bucket, forgetting full (idle) buckets
    /// when too many are tracked.
    fn take(&self, key: &str, rate: f64, burst: f64, now_ms: i64) -> Result<(), u64> {
        let mut buckets = self.buckets.lock().expect("never poisoned");
        if buckets.len() >= MAX_TRACKED_CLIENTS && !buckets.contains_key(key) {
            // A full bucket is the same as none: forget those first.
            buckets.retain(|_, b| b.refilled(now_ms) < b.burst);
            if buckets.len() >= MAX_TRACKED_CLIENTS {
                return Err(1);
            }
        }
        let (bucket, admitted) = take_token(buckets.get(key).copied(), rate, burst, now_ms);
        buckets.insert(key.to_string(), bucket);
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

/// A client's address as rate limits count it: IPv6 by /64, since one
/// host holds a whole /64.
fn client_key(ip: std::net::IpAddr) -> String {
    match ip {
        std::net::IpAddr::V6(v6) if v6.to_ipv4_mapped().is_none() => {
            let s = v6.segments();
            format!("{:x}:{:x}:{:x}:{:x}::/64", s[0], s[1], s[2], s[3])
        }
        other => other.to_canonical().to_string(),
    }
}

/// Whether a write comes from another site than Baton's own page and one
/// not allowed by `--access_control_allow_origin`.
fn cross_site_write(headers: &HeaderMap, origin_allowed: bool) -> bool {
    if origin_allowed {
        return false;
    }
    if headers
        .get("sec-fetch-site")
        .is_some_and(|v| v.as_bytes() == b"cross-site")
    {
        return true;
    }
    let Some(origin) = headers.get(header::ORIGIN).and_then(|o| o.to_str().ok()) else {
        return false;
    };
    let origin_host = origin.split_once("://").map(|(_, rest)| rest);
    let host = headers.get(header::HOST).and_then(|h| h.to_str().ok());
    origin_host.is_none_or(|o| Some(o) != host)
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
    if is_write(request.method()) && cross_site_write(request.headers(), cors) {
        return Some(error(
            StatusCode::FORBIDDEN,
            "Cross-site write refused: its Origin is not allowed (--access_control_allow_origin)"
                .into(),
        ));
    }
    let security = &guard.security;
    let peer = request
        .extensions()
        .get::<ConnectInfo<std::net::SocketAddr>>()
        .map(|c| c.0.ip());
    let now_ms = Clock::wall().now().as_millis();
    // The user header counts only from a trusted proxy; from anyone else
    // it is dropped, so that a standby never forwards it either.
    let mut proxy_user = None;
    if let Some(name) = &security.user_header {
        let values: Vec<HeaderValue> = request
            .headers()
            .get_all(name.as_str())
            .iter()
            .cloned()
            .collect();
        if security.trusts_proxy(peer) {
            if values.len() > 1 {
                return Some(error(
                    StatusCode::BAD_REQUEST,
                    format!("The header {name} appears more than once"),
                ));
            }
            proxy_user = values.into_iter().next();
        } else if !values.is_empty() {
            debug!(header = %name, ?peer, "user header from an untrusted peer dropped");
            request.headers_mut().remove(name.as_str());
        }
    }
    let authorization = request.headers().get(header::AUTHORIZATION);
    let authenticated = security.authenticate(
        authorization.map(HeaderValue::as_bytes),
        proxy_user.as_ref().map(HeaderValue::as_bytes),
    );
    let caller = if is_open(security, request.uri().path()) {
        match (authenticated, &security.acl) {
            (_, None) => Caller::unrestricted(None),
            (Ok(caller), Some(_)) => caller,
            (Err(_), Some(_)) => Caller::nobody(),
        }
    } else {
        match authenticated {
            Ok(caller) => caller,
            Err(reason) => {
                debug!(%reason, path = request.uri().path(), "request refused: not authenticated");
                let address = peer.map_or_else(|| "unknown".into(), client_key);
                if reason != crate::auth::BasicError::Missing
                    && let Err(seconds) = guard.admit_failure(&address, now_ms)
                {
                    let mut refused = error(
                        StatusCode::TOO_MANY_REQUESTS,
                        format!(
                            "Too many failed authentications from this address; retry in {seconds} s"
                        ),
                    );
                    refused
                        .headers_mut()
                        .insert(header::RETRY_AFTER, HeaderValue::from(seconds));
                    return Some(refused);
                }
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
            None => format!("ip:{}", peer.map_or_else(|| "unknown".into(), client_key)),
        };
        if let Err(seconds) = guard.admit_write(&client, now_ms) {
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
        headers.insert(
            header::ACCESS_CONTROL_EXPOSE_HEADERS,
            HeaderValue::from_static(EXPOSED_HEADERS),
        );
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
    fn a_bucket_allows_its_burst_then_refills_at_its_rate() {
        let mut bucket = None;
        for _ in 0..5 {
            let (b, admitted) = take_token(bucket, 5.0, 5.0, 0);
            assert_eq!(admitted, Ok(()));
            bucket = Some(b);
        }
        let (b, refused) = take_token(bucket, 5.0, 5.0, 0);
        assert_eq!(refused, Err(1));
        // 200 ms later one token is back.
        let (_, admitted) = take_token(Some(b), 5.0, 5.0, 200);
        assert_eq!(admitted, Ok(()));
    }

    #[test]
    fn a_slow_rate_says_how_long_to_wait() {
        let (b, _) = take_token(None, 0.1, 1.0, 0);
        assert_eq!(take_token(Some(b), 0.1, 1.0, 0).1, Err(10));
    }

    #[test]
    fn idle_clients_are_forgotten_and_busy_ones_keep_their_limit() {
        let guard = Guard::new(
            HttpSecurity::default(),
            HttpPolicy {
                write_rate_per_client: Some(1.0),
                ..HttpPolicy::default()
            },
        );
        assert!(guard.admit_write("busy", 0).is_ok());
        assert!(guard.admit_write("busy", 0).is_err());
        for i in 0..MAX_TRACKED_CLIENTS {
            // Each spends its one token at 0: all are full again by 1 s.
            let _ = guard.admit_write(&format!("idle-{i}"), 0);
        }
        // A new client past the limit, 0.5 s on: nobody is full yet, so
        // nothing is forgotten and the newcomer is refused, not everyone
        // reset.
        assert!(guard.admit_write("new", 500).is_err());
        assert!(guard.admit_write("busy", 500).is_err());
        // At 10 s every idle bucket is full again and forgotten.
        assert!(guard.admit_write("new", 10_000).is_ok());
        assert!(guard.buckets.lock().unwrap().len() < 10);
    }

    #[test]
    fn ipv6_clients_count_by_their_64() {
        let a: std::net::IpAddr = "2001:db8:1:2::1".parse().unwrap();
        let b: std::net::IpAddr = "2001:db8:1:2:ffff::9".parse().unwrap();
        assert_eq!(client_key(a), client_key(b));
        let v4: std::net::IpAddr = "10.0.0.1".parse().unwrap();
        assert_eq!(client_key(v4), "10.0.0.1");
        let mapped: std::net::IpAddr = "::ffff:10.0.0.1".parse().unwrap();
        assert_eq!(client_key(mapped), "10.0.0.1");
    }

    #[test]
    fn cross_site_writes_are_told_apart_from_same_origin_ones() {
        let mut headers = HeaderMap::new();
        headers.insert(header::HOST, HeaderValue::from_static("baton:8080"));
        assert!(!cross_site_write(&headers, false), "curl sends no Origin");
        headers.insert(
            header::ORIGIN,
            HeaderValue::from_static("http://baton:8080"),
        );
        assert!(!cross_site_write(&headers, false), "Baton's own page");
        headers.insert(
            header::ORIGIN,
            HeaderValue::from_static("https://evil.example"),
        );
        assert!(cross_site_write(&headers, false));
        assert!(!cross_site_write(&headers, true), "an allowed origin");
        headers.insert(header::ORIGIN, HeaderValue::from_static("null"));
        assert!(cross_site_write(&headers, false));
        let mut fetch = HeaderMap::new();
        fetch.insert("sec-fetch-site", HeaderValue::from_static("cross-site"));
        assert!(cross_site_write(&fetch, false));
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
