//! Pure. The rules of the per-app response cache: a shared cache after
//! RFC 9111, the practical subset. Everything here takes headers and
//! numbers (times in seconds or the router's milliseconds) and returns
//! decisions; the store is [`crate::cache_store`], the hook in the
//! request path is `proxy`'s.
//!
//! - An app opts in by label ([`settings`]): `BATON_CACHE=on` (or a size
//!   such as `64MiB`, the app's share of the router-wide bound),
//!   `BATON_CACHE_MAX_TTL` (a cap on any response's freshness) and
//!   `BATON_CACHE_PRIVATE=allow` (responses to requests carrying the app's
//!   own `Authorization`, and responses setting cookies, are cached too;
//!   the cookies are never stored).
//! - A request is for the cache ([`plan_request`]) when it is a GET or a
//!   HEAD (answered from a stored GET, never stored itself) without a
//!   body, a range, an upgrade, `If-Match`/`If-Unmodified-Since`/
//!   `If-Range`, `Cache-Control: no-store`, or (unless allowed) an
//!   `Authorization` that reaches the app. Its `no-cache` (or `Pragma:
//!   no-cache`, or `max-age=0`) skips stored responses but lets the new
//!   one be stored; `max-age`, `min-fresh` and `only-if-cached` are
//!   honoured; `max-stale` is moot (nothing stale is ever served). An
//!   unsafe method (POST, PUT, DELETE, PATCH…) bypasses the cache, and
//!   its success drops the URL's stored responses.
//! - A response is stored ([`storable`]) only with a status the RFC calls
//!   heuristically cacheable (200, 203, 204, 300, 301, 308, 404, 405, 410,
//!   414, 501) and explicit freshness (`s-maxage`, else `max-age`, else
//!   `Expires` against `Date`): never without it (no heuristics), never
//!   with `no-store`, `private` or `no-cache` (with or without field
//!   names: a response that must be revalidated at every use saves no
//!   round trip), `Vary: *`, or (unless allowed) `Set-Cookie` other than
//!   the router's own.
//! - Stored responses are keyed by Host and target, then told apart by
//!   the scheme and the request's values of the headers their `Vary`
//!   names ([`Variant`]); they answer while fresh ([`usable`]), with an
//!   `Age`, and conditional requests (`If-None-Match` against the `ETag`,
//!   else `If-Modified-Since` against `Last-Modified`) get a 304
//!   ([`not_modified`]).

use std::collections::BTreeMap;
use std::time::UNIX_EPOCH;

use hyper::header::{self, HeaderMap, HeaderName, HeaderValue};
use hyper::{Method, StatusCode};

/// Label: `on` (or `true`, `yes`) to cache the app's responses, or a size
/// (`64MiB`, `512KiB`, `10MB`, plain bytes) capping the app's share of
/// the router's cache; `off` (or `false`, `no`, empty) or absent: no cache.
pub const LABEL_CACHE: &str = "BATON_CACHE";
/// Label: a cap on any response's freshness lifetime (seconds, or `90s`,
/// `5m`, `1h`).
pub const LABEL_CACHE_MAX_TTL: &str = "BATON_CACHE_MAX_TTL";
/// Label: `allow` to cache responses to requests with the app's own
/// `Authorization` and responses with `Set-Cookie` (stored without it);
/// `deny` (the default) not to.
pub const LABEL_CACHE_PRIVATE: &str = "BATON_CACHE_PRIVATE";

/// Statuses a shared cache may store with explicit freshness (RFC 9110
/// §15.1 lists them as heuristically cacheable; this cache never uses
/// heuristics, so they need `max-age`, `s-maxage` or `Expires` here).
pub const CACHEABLE_STATUSES: [u16; 11] = [200, 203, 204, 300, 301, 308, 404, 405, 410, 414, 501];

/// Why a label or a size cannot be read.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum Error {
    /// Not a size.
    #[error("{0:?} is not a size above zero (bytes, or a number with kB, KiB, MB, MiB, GB or GiB)")]
    Size(String),
    /// A cache label with a value it does not take.
    #[error("{label}={value:?}: {expected}")]
    Label {
        /// The label.
        label: &'static str,
        /// Its value.
        value: String,
        /// What it takes.
        expected: &'static str,
    },
}

/// An app's cache, from its labels.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Settings {
    /// The app's share of the cache in bytes (`None`: bounded by the
    /// router-wide size only).
    pub max_bytes: Option<u64>,
    /// Cap on any response's freshness lifetime, in seconds.
    pub max_ttl_secs: Option<u64>,
    /// Whether responses to requests with the app's own `Authorization`,
    /// and responses with `Set-Cookie`, are cached (`BATON_CACHE_PRIVATE`).
    pub private: bool,
}

impl Settings {
    /// The settings as `/_router/table` shows them.
    pub fn to_json(&self) -> serde_json::Value {
        serde_json::json!({
            "maxBytes": self.max_bytes,
            "maxTtlSeconds": self.max_ttl_secs,
            "private": self.private,
        })
    }
}

/// A size: plain bytes, or a number with `kB`/`KiB`, `MB`/`MiB`, `GB`/`GiB`
/// (case-insensitive, `B` optional: `64m` is 64 MiB); above zero.
pub fn parse_size(text: &str) -> Result<u64, Error> {
    let trimmed = text.trim();
    let split = trimmed
        .find(|c: char| !c.is_ascii_digit())
        .unwrap_or(trimmed.len());
    let (digits, unit) = trimmed.split_at(split);
    let unit = unit.trim().to_ascii_lowercase();
    let multiplier: u64 = match unit.as_str() {
        "" | "b" => 1,
        "kb" => 1000,
        "k" | "kib" => 1 << 10,
        "mb" => 1000 * 1000,
        "m" | "mib" => 1 << 20,
        "gb" => 1000 * 1000 * 1000,
        "g" | "gib" => 1 << 30,
        _ => return Err(Error::Size(text.to_string())),
    };
    digits
        .parse::<u64>()
        .ok()
        .and_then(|n| n.checked_mul(multiplier))
        .filter(|n| *n > 0)
        .ok_or_else(|| Error::Size(text.to_string()))
}

/// The app's cache from its labels: `None` when it has none, an error
/// naming the label that is wrong (then the app is not cached at all).
pub fn settings(labels: &BTreeMap<String, String>) -> Result<Option<Settings>, Error> {
    let value = |name: &str| labels.get(name).map(|v| v.trim());
    let max_bytes = match value(LABEL_CACHE) {
        None => return Ok(None),
        Some(v) if v.is_empty() || is_one_of(v, &["off", "false", "no"]) => return Ok(None),
        Some(v) if is_one_of(v, &["on", "true", "yes"]) => None,
        Some(v) => Some(parse_size(v).map_err(|_| Error::Label {
            label: LABEL_CACHE,
            value: v.to_string(),
            expected: "on, off, or a size above zero such as 64MiB",
        })?),
    };
    let max_ttl_secs = match value(LABEL_CACHE_MAX_TTL) {
        None | Some("") => None,
        Some(v) => Some(
            parse_secs(v)
                .filter(|secs| *secs > 0)
                .ok_or_else(|| Error::Label {
                    label: LABEL_CACHE_MAX_TTL,
                    value: v.to_string(),
                    expected: "a duration above zero: seconds, or such as 90s or 5m",
                })?,
        ),
    };
    let private = match value(LABEL_CACHE_PRIVATE) {
        None | Some("") => false,
        Some(v) if is_one_of(v, &["allow", "true"]) => true,
        Some(v) if is_one_of(v, &["deny", "false"]) => false,
        Some(v) => {
            return Err(Error::Label {
                label: LABEL_CACHE_PRIVATE,
                value: v.to_string(),
                expected: "allow or deny",
            });
        }
    };
    Ok(Some(Settings {
        max_bytes,
        max_ttl_secs,
        private,
    }))
}

fn is_one_of(value: &str, words: &[&str]) -> bool {
    words.iter().any(|w| value.eq_ignore_ascii_case(w))
}

/// Whole seconds, or a humantime duration (`90s`, `5m`), as the other
/// duration labels are read.
fn parse_secs(text: &str) -> Option<u64> {
    crate::scale::parse_duration(text).ok().map(|d| d.as_secs())
}

/// The `Cache-Control` directives of `headers` (every field line, comma
/// separated), names lower-cased, arguments unquoted. Commas inside
/// quoted arguments (`private="a, b"`) do not split.
pub fn directives(headers: &HeaderMap) -> Vec<(String, Option<String>)> {
    let mut out = Vec::new();
    for value in headers.get_all(header::CACHE_CONTROL) {
        let Ok(text) = value.to_str() else {
            continue;
        };
        for item in split_outside_quotes(text) {
            let item = item.trim();
            if item.is_empty() {
                continue;
            }
            let (name, argument) = match item.split_once('=') {
                Some((name, arg)) => {
                    let arg = arg.trim();
                    let arg = arg
                        .strip_prefix('"')
                        .and_then(|a| a.strip_suffix('"'))
                        .unwrap_or(arg);
                    (name.trim(), Some(arg.to_string()))
                }
                None => (item, None),
            };
            out.push((name.to_ascii_lowercase(), argument));
        }
    }
    out
}

/// `text` split at commas that are not inside double quotes.
fn split_outside_quotes(text: &str) -> Vec<&str> {
    let mut parts = Vec::new();
    let (mut start, mut quoted, mut escaped) = (0, false, false);
    for (i, c) in text.char_indices() {
        match c {
            _ if escaped => escaped = false,
            '\\' if quoted => escaped = true,
            '"' => quoted = !quoted,
            ',' if !quoted => {
                parts.push(&text[start..i]);
                start = i + 1;
            }
            _ => {}
        }
    }
    parts.push(&text[start..]);
    parts
}

fn has(directives: &[(String, Option<String>)], name: &str) -> bool {
    directives.iter().any(|(n, _)| n == name)
}

/// A directive's seconds (`max-age=60`); an unreadable number counts as
/// zero (RFC 9111 §1.2.2: treat it as stale).
fn seconds(directives: &[(String, Option<String>)], name: &str) -> Option<u64> {
    directives
        .iter()
        .find(|(n, _)| n == name)
        .map(|(_, arg)| arg.as_deref().and_then(delta_seconds).unwrap_or(0))
}

/// A delta-seconds value; larger than `u32` is capped (RFC 9111 §1.2.2).
fn delta_seconds(text: &str) -> Option<u64> {
    let text = text.trim();
    if text.is_empty() || !text.bytes().all(|b| b.is_ascii_digit()) {
        return None;
    }
    Some(text.parse::<u64>().unwrap_or(u64::MAX).min(1 << 31))
}

/// What the cache does with a request.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum RequestPlan {
    /// Passed by: neither answered from the cache nor stored.
    Bypass,
    /// An unsafe method, passed by; when it succeeds (2xx, 3xx) the stored
    /// responses of its URL are dropped (RFC 9111 §4.4).
    Invalidate,
    /// For the cache.
    Cacheable(Lookup),
}

/// How a request that is for the cache uses it.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Lookup {
    /// Whether a stored response may answer it (not with `no-cache`).
    pub serve: bool,
    /// Its `max-age`: the oldest stored response it accepts, seconds.
    pub max_age: Option<u64>,
    /// Its `min-fresh`: the freshness a stored response must have left.
    pub min_fresh: Option<u64>,
    /// Whether the response it gets may be stored (GET only).
    pub store: bool,
    /// `only-if-cached`: answered 504 rather than forwarded on a miss.
    pub only_if_cached: bool,
}

/// What the cache does with a request of `method` with `headers` to an
/// app cached with `settings`; `gated` when the app is behind the
/// router's basic authentication (whose `Authorization` never reaches
/// the app, so it does not make a request private).
pub fn plan_request(
    method: &Method,
    headers: &HeaderMap,
    gated: bool,
    settings: &Settings,
) -> RequestPlan {
    let head = match *method {
        Method::GET => false,
        Method::HEAD => true,
        Method::OPTIONS | Method::TRACE => return RequestPlan::Bypass,
        _ => return RequestPlan::Invalidate,
    };
    let has_body = headers.contains_key(header::TRANSFER_ENCODING)
        || headers
            .get(header::CONTENT_LENGTH)
            .is_some_and(|v| v.as_bytes() != b"0");
    let private = !gated && !settings.private && headers.contains_key(header::AUTHORIZATION);
    if has_body
        || private
        || headers.contains_key(header::UPGRADE)
        || headers.contains_key(header::RANGE)
        || headers.contains_key(header::IF_RANGE)
        || headers.contains_key(header::IF_MATCH)
        || headers.contains_key(header::IF_UNMODIFIED_SINCE)
    {
        return RequestPlan::Bypass;
    }
    let cc = directives(headers);
    if has(&cc, "no-store") {
        return RequestPlan::Bypass;
    }
    // `Pragma: no-cache` counts only without `Cache-Control` (RFC 9111 §5.4).
    let pragma_no_cache = !headers.contains_key(header::CACHE_CONTROL)
        && headers
            .get_all(header::PRAGMA)
            .iter()
            .filter_map(|v| v.to_str().ok())
            .any(|v| {
                v.split(',')
                    .any(|p| p.trim().eq_ignore_ascii_case("no-cache"))
            });
    let max_age = seconds(&cc, "max-age");
    RequestPlan::Cacheable(Lookup {
        // `max-age=0` is how browsers ask for a reload.
        serve: !has(&cc, "no-cache") && !pragma_no_cache && max_age != Some(0),
        max_age,
        min_fresh: seconds(&cc, "min-fresh"),
        store: !head,
        only_if_cached: has(&cc, "only-if-cached"),
    })
}

/// Why a response is not stored.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum NotStored {
    /// Its status is not one a shared cache stores.
    Status,
    /// `Cache-Control: no-store`.
    NoStore,
    /// `Cache-Control: private`.
    Private,
    /// `Cache-Control: no-cache`: it would need a revalidation at every use.
    NoCache,
    /// `Vary: *`.
    VaryAll,
    /// `Set-Cookie` (not allowed by `BATON_CACHE_PRIVATE`).
    SetCookie,
    /// A part of a representation (`Content-Range`).
    Partial,
    /// No explicit freshness (`s-maxage`, `max-age`, `Expires`).
    NoFreshness,
    /// Fresh for no time at all (`max-age=0`, an `Expires` in the past).
    Stale,
}

/// How long a stored response stays fresh, and how old it was when it
/// arrived (RFC 9111 §4.2).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Freshness {
    /// Its freshness lifetime, seconds (capped by `BATON_CACHE_MAX_TTL`).
    pub lifetime_secs: u64,
    /// Its corrected initial age, seconds.
    pub initial_age_secs: u64,
}

/// Whether a response with `status` and `headers` may be stored for an
/// app cached with `settings`, and its freshness if so. `request_unix`
/// and `response_unix` are when the request went out and its response
/// arrived (seconds since the epoch). Cookies named in `router_cookies`
/// are the router's own (set after the instance answered) and do not
/// count as the app's `Set-Cookie`.
pub fn storable(
    status: StatusCode,
    headers: &HeaderMap,
    settings: &Settings,
    router_cookies: &[&str],
    request_unix: u64,
    response_unix: u64,
) -> Result<Freshness, NotStored> {
    if !CACHEABLE_STATUSES.contains(&status.as_u16()) {
        return Err(NotStored::Status);
    }
    let cc = directives(headers);
    if has(&cc, "no-store") {
        return Err(NotStored::NoStore);
    }
    if has(&cc, "private") {
        return Err(NotStored::Private);
    }
    if has(&cc, "no-cache") {
        return Err(NotStored::NoCache);
    }
    if vary(headers).is_none() {
        return Err(NotStored::VaryAll);
    }
    if headers.contains_key(header::CONTENT_RANGE) {
        return Err(NotStored::Partial);
    }
    if !settings.private && sets_cookie(headers, router_cookies) {
        return Err(NotStored::SetCookie);
    }
    let lifetime = freshness_lifetime(&cc, headers, response_unix).ok_or(NotStored::NoFreshness)?;
    let lifetime = settings
        .max_ttl_secs
        .map_or(lifetime, |cap| lifetime.min(cap));
    let initial_age = initial_age(headers, request_unix, response_unix);
    if lifetime <= initial_age {
        return Err(NotStored::Stale);
    }
    Ok(Freshness {
        lifetime_secs: lifetime,
        initial_age_secs: initial_age,
    })
}

/// Whether `headers` set a cookie other than those named in `ignored`.
fn sets_cookie(headers: &HeaderMap, ignored: &[&str]) -> bool {
    headers.get_all(header::SET_COOKIE).iter().any(|v| {
        let name = v
            .as_bytes()
            .split(|b| *b == b'=')
            .next()
            .unwrap_or_default()
            .trim_ascii();
        !ignored.iter().any(|i| i.as_bytes() == name)
    })
}

/// A shared cache's freshness lifetime (RFC 9111 §4.2.1): `s-maxage`,
/// else `max-age`, else `Expires` minus `Date` (the arrival time without
/// a valid `Date`; an invalid `Expires` is already expired). `None`
/// without any of them.
fn freshness_lifetime(
    cc: &[(String, Option<String>)],
    headers: &HeaderMap,
    response_unix: u64,
) -> Option<u64> {
    if let Some(secs) = seconds(cc, "s-maxage").or_else(|| seconds(cc, "max-age")) {
        return Some(secs);
    }
    let expires = headers.get(header::EXPIRES)?;
    let Some(expires) = http_date(expires) else {
        return Some(0);
    };
    let date = headers
        .get(header::DATE)
        .and_then(http_date)
        .unwrap_or(response_unix);
    Some(expires.saturating_sub(date))
}

/// The corrected initial age (RFC 9111 §4.2.3): the larger of how old
/// its `Date` says it is and its `Age` plus the time the exchange took.
fn initial_age(headers: &HeaderMap, request_unix: u64, response_unix: u64) -> u64 {
    let age_value = headers
        .get(header::AGE)
        .and_then(|v| v.to_str().ok())
        .and_then(delta_seconds)
        .unwrap_or(0);
    let apparent_age = headers
        .get(header::DATE)
        .and_then(http_date)
        .map_or(0, |date| response_unix.saturating_sub(date));
    let response_delay = response_unix.saturating_sub(request_unix);
    apparent_age.max(age_value.saturating_add(response_delay))
}

/// An HTTP date as seconds since the epoch.
pub fn http_date(value: &HeaderValue) -> Option<u64> {
    let time = httpdate::parse_http_date(value.to_str().ok()?).ok()?;
    time.duration_since(UNIX_EPOCH).ok().map(|d| d.as_secs())
}

/// The header names a response's `Vary` lists, lower case, sorted, once
/// each; `None` for `Vary: *` (a response that varies on more than
/// headers, never stored).
pub fn vary(headers: &HeaderMap) -> Option<Vec<HeaderName>> {
    let mut names = Vec::new();
    for value in headers.get_all(header::VARY) {
        let text = value.to_str().ok()?;
        for name in text.split(',').map(str::trim).filter(|n| !n.is_empty()) {
            if name == "*" {
                return None;
            }
            names.push(HeaderName::from_bytes(name.as_bytes()).ok()?);
        }
    }
    names.sort_by(|a, b| a.as_str().cmp(b.as_str()));
    names.dedup();
    Some(names)
}

/// What tells stored responses to one URL apart: the scheme the client
/// used (instances may build links from `X-Forwarded-Proto`) and the
/// request's values of the headers the response's `Vary` names.
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub struct Variant {
    /// Whether the request came over TLS.
    pub https: bool,
    /// Each `Vary` header name with the request's values, normalized
    /// (lines joined, whitespace around commas dropped); `None` when the
    /// request had none.
    pub values: Vec<(HeaderName, Option<Vec<u8>>)>,
}

impl Variant {
    /// The variant of a request with `headers` for a response varying on
    /// `names`.
    pub fn of(https: bool, names: &[HeaderName], headers: &HeaderMap) -> Variant {
        let values = names
            .iter()
            .map(|name| (name.clone(), normalized(headers, name)))
            .collect();
        Variant { https, values }
    }

    /// Whether a request with `headers` over TLS or not (`https`) selects
    /// this variant.
    pub fn matches(&self, https: bool, headers: &HeaderMap) -> bool {
        self.https == https
            && self
                .values
                .iter()
                .all(|(name, value)| normalized(headers, name) == *value)
    }

    /// The header names it varies on.
    pub fn names(&self) -> impl Iterator<Item = &HeaderName> {
        self.values.iter().map(|(name, _)| name)
    }

    /// Bytes it takes, roughly (for the cache's accounting).
    pub fn size(&self) -> usize {
        self.values
            .iter()
            .map(|(n, v)| n.as_str().len() + v.as_ref().map_or(0, Vec::len))
            .sum()
    }
}

/// A header's values as one comparable string: every line joined by
/// commas, whitespace around each element dropped (RFC 9111 §4.1 allows
/// such normalization).
fn normalized(headers: &HeaderMap, name: &HeaderName) -> Option<Vec<u8>> {
    let mut out: Option<Vec<u8>> = None;
    for value in headers.get_all(name) {
        for element in value.as_bytes().split(|b| *b == b',') {
            let element = element.trim_ascii();
            if element.is_empty() {
                continue;
            }
            let joined = out.get_or_insert_with(Vec::new);
            if !joined.is_empty() {
                joined.push(b',');
            }
            joined.extend_from_slice(element);
        }
    }
    out
}

/// Whether the current age is young enough for the request: fresh, and
/// within its `max-age` and `min-fresh`.
pub fn usable(lookup: &Lookup, freshness: &Freshness, age_secs: u64) -> bool {
    let lifetime = freshness.lifetime_secs;
    age_secs < lifetime
        && lookup.max_age.is_none_or(|max| age_secs <= max)
        && lookup
            .min_fresh
            .is_none_or(|min| lifetime.saturating_sub(age_secs) >= min)
}

/// A stored response's current age (RFC 9111 §4.2.3): its initial age
/// plus the whole seconds since it was stored (router clock, ms).
pub fn current_age(freshness: &Freshness, stored_at_ms: u64, now_ms: u64) -> u64 {
    freshness
        .initial_age_secs
        .saturating_add(now_ms.saturating_sub(stored_at_ms) / 1000)
}

/// Whether a conditional request with `request` headers is answered 304
/// by a stored response with `stored` headers (RFC 9110 §13.2.2):
/// `If-None-Match` against its `ETag` (weak comparison; `*` matches any),
/// else `If-Modified-Since` against its `Last-Modified`.
pub fn not_modified(request: &HeaderMap, stored: &HeaderMap) -> bool {
    if request.contains_key(header::IF_NONE_MATCH) {
        let Some(etag) = stored.get(header::ETAG).and_then(|v| v.to_str().ok()) else {
            return false;
        };
        let etag = opaque_tag(etag.trim());
        return request
            .get_all(header::IF_NONE_MATCH)
            .iter()
            .filter_map(|v| v.to_str().ok())
            .any(|list| list.trim() == "*" || entity_tags(list).any(|t| opaque_tag(t) == etag));
    }
    let since = request.get(header::IF_MODIFIED_SINCE).and_then(http_date);
    let modified = stored.get(header::LAST_MODIFIED).and_then(http_date);
    matches!((since, modified), (Some(since), Some(modified)) if modified <= since)
}

/// An entity tag without its weakness mark (`W/"x"` → `"x"`).
fn opaque_tag(tag: &str) -> &str {
    tag.strip_prefix("W/").unwrap_or(tag)
}

/// The entity tags of an `If-None-Match` list. Tags are quoted and may
/// hold commas, so the list is scanned quote to quote.
fn entity_tags(list: &str) -> impl Iterator<Item = &str> {
    let mut rest = list;
    std::iter::from_fn(move || {
        let start = rest.find('"')?;
        let open = start + 1;
        let close = open + rest[open..].find('"')?;
        let weak = rest[..start].trim_end().ends_with("W/");
        let from = if weak {
            rest[..start].rfind("W/").unwrap_or(start)
        } else {
            start
        };
        let tag = &rest[from..=close];
        rest = &rest[close + 1..];
        Some(tag)
    })
}

/// The headers kept with a stored response: the instance's, without
/// `Set-Cookie` (a cookie is for the client it was sent to), `Age`
/// (recomputed at each use) and the length (set from the stored body).
pub fn stored_headers(headers: &HeaderMap, drop: &[HeaderName]) -> HeaderMap {
    let mut kept = headers.clone();
    for name in [header::SET_COOKIE, header::AGE, header::CONTENT_LENGTH]
        .iter()
        .chain(drop)
    {
        kept.remove(name);
    }
    kept
}

/// The headers of a 304 from a stored response (RFC 9110 §15.4.5): those
/// that describe it, not its content.
pub fn not_modified_headers(stored: &HeaderMap) -> HeaderMap {
    let mut out = HeaderMap::new();
    for name in [
        header::CACHE_CONTROL,
        header::CONTENT_LOCATION,
        header::DATE,
        header::ETAG,
        header::EXPIRES,
        header::LAST_MODIFIED,
        header::VARY,
    ] {
        for value in stored.get_all(&name) {
            out.append(name.clone(), value.clone());
        }
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::time::Duration;

    fn headers(pairs: &[(&str, &str)]) -> HeaderMap {
        let mut map = HeaderMap::new();
        for (name, value) in pairs {
            map.append(
                HeaderName::from_bytes(name.as_bytes()).unwrap(),
                HeaderValue::from_str(value).unwrap(),
            );
        }
        map
    }

    fn labels(pairs: &[(&str, &str)]) -> BTreeMap<String, String> {
        pairs
            .iter()
            .map(|(k, v)| (k.to_string(), v.to_string()))
            .collect()
    }

    const ON: Settings = Settings {
        max_bytes: None,
        max_ttl_secs: None,
        private: false,
    };

    /// `storable` at unix time 1000 for a request sent then.
    fn stored(status: u16, pairs: &[(&str, &str)]) -> Result<Freshness, NotStored> {
        stored_with(&ON, status, pairs)
    }

    fn stored_with(
        settings: &Settings,
        status: u16,
        pairs: &[(&str, &str)],
    ) -> Result<Freshness, NotStored> {
        storable(
            StatusCode::from_u16(status).unwrap(),
            &headers(pairs),
            settings,
            &["BATON_STICKY"],
            1000,
            1000,
        )
    }

    fn date(unix: u64) -> String {
        httpdate::fmt_http_date(UNIX_EPOCH + Duration::from_secs(unix))
    }

    #[test]
    fn sizes_read_with_binary_and_decimal_units() {
        assert_eq!(parse_size("1048576"), Ok(1 << 20));
        assert_eq!(parse_size("64MiB"), Ok(64 << 20));
        assert_eq!(parse_size(" 64 mib "), Ok(64 << 20));
        assert_eq!(parse_size("64m"), Ok(64 << 20));
        assert_eq!(parse_size("512KiB"), Ok(512 << 10));
        assert_eq!(parse_size("10MB"), Ok(10_000_000));
        assert_eq!(parse_size("2GiB"), Ok(2 << 30));
        for bad in [
            "",
            "0",
            "MiB",
            "-1",
            "1.5MiB",
            "64 parsecs",
            "99999999999999999999",
        ] {
            assert!(parse_size(bad).is_err(), "{bad:?}");
        }
    }

    #[test]
    fn labels_turn_the_cache_on_with_a_size_a_ttl_cap_and_private_allowance() {
        assert_eq!(settings(&labels(&[])), Ok(None));
        for off in ["off", "FALSE", "no", " "] {
            assert_eq!(settings(&labels(&[(LABEL_CACHE, off)])), Ok(None), "{off}");
        }
        assert_eq!(settings(&labels(&[(LABEL_CACHE, "on")])), Ok(Some(ON)));
        assert_eq!(
            settings(&labels(&[
                (LABEL_CACHE, "8MiB"),
                (LABEL_CACHE_MAX_TTL, "5m"),
                (LABEL_CACHE_PRIVATE, "allow"),
            ])),
            Ok(Some(Settings {
                max_bytes: Some(8 << 20),
                max_ttl_secs: Some(300),
                private: true,
            }))
        );
        assert_eq!(
            settings(&labels(&[
                (LABEL_CACHE, "yes"),
                (LABEL_CACHE_MAX_TTL, "90")
            ]))
            .unwrap()
            .unwrap()
            .max_ttl_secs,
            Some(90)
        );
        // Other cache labels mean nothing without BATON_CACHE.
        assert_eq!(
            settings(&labels(&[(LABEL_CACHE_PRIVATE, "allow")])),
            Ok(None)
        );
        for (label, value) in [
            (LABEL_CACHE, "lots"),
            (LABEL_CACHE, "0"),
            (LABEL_CACHE_MAX_TTL, "soon"),
            (LABEL_CACHE_MAX_TTL, "0"),
            (LABEL_CACHE_PRIVATE, "maybe"),
        ] {
            let mut l = labels(&[(LABEL_CACHE, "on")]);
            l.insert(label.to_string(), value.to_string());
            let error = settings(&l).unwrap_err();
            assert!(error.to_string().starts_with(label), "{error}");
        }
    }

    #[test]
    fn cache_control_directives_split_outside_quotes() {
        let h = headers(&[
            (
                "cache-control",
                "Public, MAX-AGE=60, private=\"set-cookie, x\"",
            ),
            ("cache-control", "s-maxage=\"30\""),
        ]);
        assert_eq!(
            directives(&h),
            [
                ("public".to_string(), None),
                ("max-age".to_string(), Some("60".to_string())),
                ("private".to_string(), Some("set-cookie, x".to_string())),
                ("s-maxage".to_string(), Some("30".to_string())),
            ]
        );
    }

    fn plan(method: Method, pairs: &[(&str, &str)]) -> RequestPlan {
        plan_request(&method, &headers(pairs), false, &ON)
    }

    fn lookup(pairs: &[(&str, &str)]) -> Lookup {
        match plan(Method::GET, pairs) {
            RequestPlan::Cacheable(lookup) => lookup,
            other => panic!("{pairs:?}: {other:?}"),
        }
    }

    #[test]
    fn only_plain_gets_and_heads_are_for_the_cache() {
        let get = lookup(&[]);
        assert!(get.serve && get.store && !get.only_if_cached);
        match plan(Method::HEAD, &[]) {
            RequestPlan::Cacheable(head) => assert!(head.serve && !head.store, "{head:?}"),
            other => panic!("{other:?}"),
        }
        for method in [Method::POST, Method::PUT, Method::DELETE, Method::PATCH] {
            assert_eq!(plan(method, &[]), RequestPlan::Invalidate);
        }
        assert_eq!(plan(Method::OPTIONS, &[]), RequestPlan::Bypass);
        for passed in [
            &[("cache-control", "no-store")][..],
            &[("range", "bytes=0-10")],
            &[("if-range", "\"x\"")],
            &[("if-match", "\"x\"")],
            &[("if-unmodified-since", "Tue, 15 Nov 1994 08:12:31 GMT")],
            &[("upgrade", "websocket")],
            &[("content-length", "5")],
            &[("transfer-encoding", "chunked")],
            &[("authorization", "Bearer abc")],
        ] {
            assert_eq!(plan(Method::GET, passed), RequestPlan::Bypass, "{passed:?}");
        }
        assert!(matches!(
            plan(Method::GET, &[("content-length", "0")]),
            RequestPlan::Cacheable(_)
        ));
    }

    #[test]
    fn authorization_bypasses_unless_the_gate_took_it_or_the_app_allows() {
        let h = headers(&[("authorization", "Basic dTpw")]);
        assert_eq!(
            plan_request(&Method::GET, &h, false, &ON),
            RequestPlan::Bypass
        );
        assert!(matches!(
            plan_request(&Method::GET, &h, true, &ON),
            RequestPlan::Cacheable(_)
        ));
        let allow = Settings {
            private: true,
            ..ON
        };
        assert!(matches!(
            plan_request(&Method::GET, &h, false, &allow),
            RequestPlan::Cacheable(_)
        ));
    }

    #[test]
    fn request_directives_skip_stored_responses_but_let_new_ones_be_stored() {
        for reload in [
            &[("cache-control", "no-cache")][..],
            &[("cache-control", "max-age=0")],
            &[("pragma", "no-cache")],
        ] {
            let l = lookup(reload);
            assert!(!l.serve && l.store, "{reload:?}");
        }
        // Pragma is ignored next to Cache-Control.
        assert!(lookup(&[("pragma", "no-cache"), ("cache-control", "max-age=5")]).serve);
        let l = lookup(&[("cache-control", "max-age=5, min-fresh=2, only-if-cached")]);
        assert_eq!(
            (l.max_age, l.min_fresh, l.only_if_cached),
            (Some(5), Some(2), true)
        );
    }

    #[test]
    fn freshness_comes_from_s_maxage_then_max_age_then_expires() {
        let f = |pairs: &[(&str, &str)]| stored(200, pairs).map(|f| f.lifetime_secs);
        assert_eq!(f(&[("cache-control", "max-age=60")]), Ok(60));
        assert_eq!(f(&[("cache-control", "max-age=60, s-maxage=10")]), Ok(10));
        assert_eq!(
            f(&[("date", &date(1000)), ("expires", &date(1300))]),
            Ok(300)
        );
        // max-age wins over Expires.
        assert_eq!(
            f(&[("cache-control", "max-age=5"), ("expires", &date(1300))]),
            Ok(5)
        );
        // Without Date, Expires counts from the arrival.
        assert_eq!(f(&[("expires", &date(1030))]), Ok(30));
        assert_eq!(f(&[]), Err(NotStored::NoFreshness));
        assert_eq!(
            f(&[("cache-control", "public")]),
            Err(NotStored::NoFreshness)
        );
        // Already expired or never fresh.
        assert_eq!(f(&[("expires", "0")]), Err(NotStored::Stale));
        assert_eq!(f(&[("expires", &date(900))]), Err(NotStored::Stale));
        assert_eq!(f(&[("cache-control", "max-age=0")]), Err(NotStored::Stale));
        assert_eq!(
            f(&[("cache-control", "max-age=soon")]),
            Err(NotStored::Stale)
        );
        // Huge values are capped, not overflowed.
        assert_eq!(
            f(&[("cache-control", "max-age=99999999999999999999")]),
            Ok(1 << 31)
        );
    }

    #[test]
    fn the_ttl_label_caps_freshness() {
        let capped = Settings {
            max_ttl_secs: Some(30),
            ..ON
        };
        let f = stored_with(&capped, 200, &[("cache-control", "max-age=3600")]).unwrap();
        assert_eq!(f.lifetime_secs, 30);
        let f = stored_with(&capped, 200, &[("cache-control", "max-age=10")]).unwrap();
        assert_eq!(f.lifetime_secs, 10);
    }

    #[test]
    fn initial_age_counts_the_age_header_the_date_and_the_delay() {
        let at = |pairs: &[(&str, &str)], request: u64, response: u64| {
            storable(StatusCode::OK, &headers(pairs), &ON, &[], request, response)
                .map(|f| f.initial_age_secs)
        };
        let fresh = ("cache-control", "max-age=100");
        assert_eq!(at(&[fresh], 1000, 1000), Ok(0));
        assert_eq!(at(&[fresh, ("age", "20")], 1000, 1002), Ok(22));
        assert_eq!(at(&[fresh, ("date", &date(990))], 1000, 1000), Ok(10));
        // A Date from the future (clock skew) is no age.
        assert_eq!(at(&[fresh, ("date", &date(2000))], 1000, 1000), Ok(0));
        assert_eq!(
            at(&[fresh, ("age", "100")], 1000, 1000),
            Err(NotStored::Stale)
        );
    }

    #[test]
    fn only_cacheable_statuses_are_stored() {
        let fresh = [("cache-control", "max-age=60")];
        for status in CACHEABLE_STATUSES {
            assert!(stored(status, &fresh).is_ok(), "{status}");
        }
        for status in [201, 206, 302, 303, 304, 307, 400, 403, 500, 502, 503] {
            assert_eq!(stored(status, &fresh), Err(NotStored::Status), "{status}");
        }
    }

    #[test]
    fn no_store_private_no_cache_vary_star_and_ranges_are_never_stored() {
        for (pairs, why) in [
            (
                &[("cache-control", "max-age=60, no-store")][..],
                NotStored::NoStore,
            ),
            (
                &[("cache-control", "private, max-age=60")],
                NotStored::Private,
            ),
            (
                &[("cache-control", "max-age=60, private=\"x\"")],
                NotStored::Private,
            ),
            (
                &[("cache-control", "no-cache, max-age=60")],
                NotStored::NoCache,
            ),
            (
                &[("cache-control", "max-age=60"), ("vary", "accept, *")],
                NotStored::VaryAll,
            ),
            (
                &[
                    ("cache-control", "max-age=60"),
                    ("content-range", "bytes 0-1/2"),
                ],
                NotStored::Partial,
            ),
        ] {
            assert_eq!(stored(200, pairs), Err(why), "{pairs:?}");
            // Not even when private responses are allowed.
            let allow = Settings {
                private: true,
                ..ON
            };
            assert_eq!(stored_with(&allow, 200, pairs), Err(why), "{pairs:?}");
        }
    }

    #[test]
    fn set_cookie_is_stored_only_when_allowed_and_the_routers_cookie_does_not_count() {
        let cookie = [
            ("cache-control", "max-age=60"),
            ("set-cookie", "sid=1; Path=/"),
        ];
        assert_eq!(stored(200, &cookie), Err(NotStored::SetCookie));
        let allow = Settings {
            private: true,
            ..ON
        };
        assert!(stored_with(&allow, 200, &cookie).is_ok());
        let sticky = [
            ("cache-control", "max-age=60"),
            ("set-cookie", "BATON_STICKY=abc; Path=/; HttpOnly"),
        ];
        assert!(stored(200, &sticky).is_ok());
        // What is kept never carries a cookie.
        let kept = stored_headers(&headers(&cookie), &[]);
        assert!(!kept.contains_key(header::SET_COOKIE));
        assert_eq!(kept[header::CACHE_CONTROL], "max-age=60");
    }

    #[test]
    fn vary_names_are_lower_case_sorted_and_star_is_none() {
        let names = vary(&headers(&[
            ("vary", "Accept-Encoding, accept-language"),
            ("vary", "Accept-Encoding"),
        ]))
        .unwrap();
        let names: Vec<&str> = names.iter().map(HeaderName::as_str).collect();
        assert_eq!(names, ["accept-encoding", "accept-language"]);
        assert_eq!(vary(&headers(&[])), Some(vec![]));
        assert_eq!(vary(&headers(&[("vary", "*")])), None);
    }

    #[test]
    fn variants_tell_requests_apart_by_the_varying_headers_and_the_scheme() {
        let names = [header::ACCEPT_ENCODING];
        let gzip = Variant::of(false, &names, &headers(&[("accept-encoding", "gzip, br")]));
        assert!(gzip.matches(false, &headers(&[("accept-encoding", "gzip,br")])));
        assert!(gzip.matches(
            false,
            &headers(&[("accept-encoding", "gzip"), ("accept-encoding", " br ")])
        ));
        assert!(!gzip.matches(false, &headers(&[("accept-encoding", "br, gzip")])));
        assert!(!gzip.matches(false, &headers(&[])));
        assert!(!gzip.matches(true, &headers(&[("accept-encoding", "gzip, br")])));
        // Other headers do not matter.
        assert!(gzip.matches(
            false,
            &headers(&[("accept-encoding", "gzip, br"), ("accept-language", "fr")])
        ));
        let identity = Variant::of(false, &names, &headers(&[]));
        assert!(identity.matches(false, &headers(&[("user-agent", "x")])));
        assert!(!identity.matches(false, &headers(&[("accept-encoding", "gzip")])));
        let none = Variant::of(true, &[], &headers(&[("accept-encoding", "gzip")]));
        assert!(none.matches(true, &headers(&[])));
        assert_eq!(gzip.names().count(), 1);
    }

    #[test]
    fn stored_responses_answer_while_fresh_and_as_young_as_asked() {
        let f = Freshness {
            lifetime_secs: 60,
            initial_age_secs: 5,
        };
        assert_eq!(current_age(&f, 1_000, 1_999), 5);
        assert_eq!(current_age(&f, 1_000, 11_000), 15);
        let any = lookup(&[]);
        assert!(usable(&any, &f, 59));
        assert!(!usable(&any, &f, 60));
        let young = lookup(&[("cache-control", "max-age=10")]);
        assert!(usable(&young, &f, 10) && !usable(&young, &f, 11));
        let lasting = lookup(&[("cache-control", "min-fresh=30")]);
        assert!(usable(&lasting, &f, 30) && !usable(&lasting, &f, 31));
    }

    #[test]
    fn conditional_requests_match_etags_weakly_then_dates() {
        let stored = headers(&[("etag", "W/\"v1,a\""), ("last-modified", &date(1000))]);
        let nm = |value: &str| not_modified(&headers(&[("if-none-match", value)]), &stored);
        assert!(nm("\"v1,a\""));
        assert!(nm("W/\"v1,a\""));
        assert!(nm("\"other\", W/\"v1,a\""));
        assert!(nm("*"));
        assert!(!nm("\"v1\""));
        assert!(!nm("\"v2\""));
        let ims =
            |unix: u64| not_modified(&headers(&[("if-modified-since", &date(unix))]), &stored);
        assert!(ims(1000) && ims(2000));
        assert!(!ims(999));
        // If-None-Match wins over If-Modified-Since.
        let both = headers(&[
            ("if-none-match", "\"v2\""),
            ("if-modified-since", &date(2000)),
        ]);
        assert!(!not_modified(&both, &stored));
        // Without validators nothing matches.
        assert!(!not_modified(
            &headers(&[("if-none-match", "\"v1,a\"")]),
            &HeaderMap::new()
        ));
        assert!(!not_modified(&headers(&[]), &stored));
    }

    #[test]
    fn a_304_keeps_only_the_headers_that_describe_the_response() {
        let stored = headers(&[
            ("etag", "\"v1\""),
            ("cache-control", "max-age=60"),
            ("vary", "accept-encoding"),
            ("content-type", "text/plain"),
            ("x-app", "1"),
        ]);
        let out = not_modified_headers(&stored);
        assert_eq!(out.len(), 3);
        assert!(!out.contains_key(header::CONTENT_TYPE) && !out.contains_key("x-app"));
    }
}
