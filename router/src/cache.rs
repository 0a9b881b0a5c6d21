//! The response cache in a request's path, for apps labelled
//! `BATON_CACHE`: [`begin`] looks the request up ([`crate::cache_rules`]
//! decides, [`crate::cache_store`] holds) and either answers it from a
//! stored response or lets it be forwarded, with a [`Pending`] that takes
//! the instance's response head and gives the [`Fill`] its body is
//! collected into when it is to be stored. No I/O: `proxy` forwards and
//! streams; times come in as numbers.
//!
//! Answers from the cache carry `Age` and `X-Cache: HIT` (a 304 instead
//! when the request's `If-None-Match` or `If-Modified-Since` matches);
//! every other response of a cached app `X-Cache: MISS`.

use std::sync::Arc;

use bytes::Bytes;
use hyper::header::{self, HeaderMap, HeaderName, HeaderValue};
use hyper::{Method, Request, Response, StatusCode, Uri};

use crate::balance::STICKY_COOKIE;
use crate::cache_rules::{self, Lookup, RequestPlan, Variant};
use crate::cache_store::{AppCache, Entry, Epoch, Fill, Found, ResponseCache};
use crate::table::Route;

/// The header that tells a client whether the cache answered.
pub const X_CACHE: HeaderName = HeaderName::from_static("x-cache");
const HIT: HeaderValue = HeaderValue::from_static("HIT");
const MISS: HeaderValue = HeaderValue::from_static("MISS");

/// What a request to a cached app does.
#[derive(Debug)]
pub enum Begin {
    /// It is answered from the cache (a stored response, a 304, or a 504
    /// for `only-if-cached`); an empty body for HEAD and 304.
    Answer(Response<Bytes>),
    /// It goes to an instance; the response head goes to
    /// [`Pending::response`].
    Forward(Pending),
}

/// What the cache does once a forwarded request's response arrives.
#[derive(Debug)]
pub struct Pending {
    cache: Arc<ResponseCache>,
    app: String,
    app_cache: AppCache,
    key: String,
    after: After,
    request_unix: u64,
}

#[derive(Debug)]
enum After {
    /// Nothing but the `X-Cache` header.
    Nothing,
    /// A success drops the URL's stored responses.
    Invalidate,
    /// A storable response is stored, told apart by the request's
    /// headers (those its `Vary` names) and scheme, unless its URL is
    /// invalidated after `since`, the epoch of the lookup.
    Store {
        https: bool,
        request: HeaderMap,
        since: Epoch,
    },
}

/// The cache's key of a request: its Host (lower case, with the port)
/// and target.
pub fn key(uri: &Uri, headers: &HeaderMap) -> String {
    let host = uri
        .authority()
        .map(|a| a.as_str())
        .or_else(|| headers.get(header::HOST)?.to_str().ok())
        .unwrap_or("");
    let target = uri.path_and_query().map_or("/", |p| p.as_str());
    let mut key = String::with_capacity(host.len() + target.len());
    key.push_str(&host.to_ascii_lowercase());
    key.push_str(target);
    key
}

/// Looks `request` (over TLS or not: `https`) to `route`'s app up in
/// `cache` at `now_ms` (router clock; `unix_secs` by the wall clock):
/// answered from it, or to be forwarded. `route` must have a cache.
pub fn begin<B>(
    cache: &Arc<ResponseCache>,
    route: &Route,
    request: &Request<B>,
    https: bool,
    now_ms: u64,
    unix_secs: u64,
) -> Begin {
    let (method, uri, headers) = (request.method(), request.uri(), request.headers());
    let app_cache = route
        .cache
        .clone()
        .expect("begin is called for cached apps only");
    let app = route.app_id.as_str();
    let key = key(uri, headers);
    let plan =
        cache_rules::plan_request(method, headers, route.auth.is_some(), &app_cache.settings);
    let after = match plan {
        RequestPlan::Bypass | RequestPlan::Invalidate => {
            cache.bypassed(app, &app_cache);
            match plan {
                RequestPlan::Invalidate => After::Invalidate,
                _ => After::Nothing,
            }
        }
        RequestPlan::Cacheable(lookup) => {
            let selects = |entry: &Entry| entry.variant.matches(https, headers);
            match cache.lookup(app, &app_cache, &key, selects, &lookup, now_ms) {
                Found::Fresh(entry, age) => {
                    return Begin::Answer(answer(&entry, age, headers, *method == Method::HEAD));
                }
                Found::Miss(_) if lookup.only_if_cached => return Begin::Answer(not_cached()),
                Found::Miss(since) => match lookup {
                    Lookup { store: true, .. } => After::Store {
                        https,
                        request: headers.clone(),
                        since,
                    },
                    _ => After::Nothing,
                },
            }
        }
    };
    Begin::Forward(Pending {
        cache: cache.clone(),
        app: app.to_string(),
        app_cache,
        key,
        after,
        request_unix: unix_secs,
    })
}

impl Pending {
    /// Takes the instance's response head (`status`, `headers`; `length`
    /// its body's, if announced) as it arrived at `now_ms` (`unix_secs`
    /// by the wall clock): drops the URL's entries after an unsafe
    /// request's success, marks the response a miss, and gives the fill
    /// to collect its body into when it is to be stored.
    pub fn response(
        self,
        status: StatusCode,
        headers: &mut HeaderMap,
        length: Option<u64>,
        now_ms: u64,
        unix_secs: u64,
    ) -> Option<Fill> {
        let fill = match &self.after {
            After::Nothing => None,
            After::Invalidate => {
                if status.is_success() || status.is_redirection() {
                    self.cache.invalidate(&self.app, &self.app_cache, &self.key);
                }
                None
            }
            After::Store {
                https,
                request,
                since,
            } => cache_rules::storable(
                status,
                headers,
                &self.app_cache.settings,
                &[STICKY_COOKIE],
                self.request_unix,
                unix_secs,
            )
            .ok()
            .and_then(|freshness| {
                let names = cache_rules::vary(headers)?;
                let entry = Entry {
                    status,
                    headers: cache_rules::stored_headers(headers, &[X_CACHE]),
                    body: Bytes::new(),
                    freshness,
                    stored_at_ms: now_ms,
                    variant: Variant::of(*https, &names, request),
                };
                Fill::new(
                    self.cache.clone(),
                    &self.app,
                    &self.app_cache,
                    self.key.clone(),
                    entry,
                    length,
                    *since,
                )
            }),
        };
        headers.insert(X_CACHE, MISS);
        fill
    }
}

/// The answer from stored `entry`, `age_secs` old, to a request with
/// `request` headers (HEAD: without the body). Only a 2xx entry answers
/// preconditions (RFC 9110 §13.2.1).
fn answer(entry: &Entry, age_secs: u64, request: &HeaderMap, head: bool) -> Response<Bytes> {
    let not_modified =
        entry.status.is_success() && cache_rules::not_modified(request, &entry.headers);
    let (status, mut headers, body) = if not_modified {
        let headers = cache_rules::not_modified_headers(&entry.headers);
        (StatusCode::NOT_MODIFIED, headers, Bytes::new())
    } else {
        let mut headers = entry.headers.clone();
        if entry.status != StatusCode::NO_CONTENT {
            // Set here, not from the body, so that HEAD gets it too.
            headers.insert(header::CONTENT_LENGTH, HeaderValue::from(entry.body.len()));
        }
        let body = if head {
            Bytes::new()
        } else {
            entry.body.clone()
        };
        (entry.status, headers, body)
    };
    headers.insert(header::AGE, HeaderValue::from(age_secs));
    headers.insert(X_CACHE, HIT);
    let mut response = Response::new(body);
    *response.status_mut() = status;
    *response.headers_mut() = headers;
    response
}

/// 504 for `only-if-cached` without a stored response (RFC 9111 §5.2.1.7).
fn not_cached() -> Response<Bytes> {
    let mut response = Response::new(Bytes::from_static(b"not in the cache\n"));
    *response.status_mut() = StatusCode::GATEWAY_TIMEOUT;
    let headers = response.headers_mut();
    headers.insert(
        header::CONTENT_TYPE,
        HeaderValue::from_static("text/plain; charset=utf-8"),
    );
    headers.insert(X_CACHE, MISS);
    response
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::cache_rules::{Freshness, Settings};
    use serde_json::json;

    fn route(labels: serde_json::Value) -> Route {
        let app = json!({"id": "/web", "labels": labels, "version": "v1"});
        crate::table::parse_app(&app, None).unwrap()
    }

    fn headers(pairs: &[(&str, &str)]) -> HeaderMap {
        pairs
            .iter()
            .map(|(n, v)| {
                (
                    HeaderName::from_bytes(n.as_bytes()).unwrap(),
                    HeaderValue::from_str(v).unwrap(),
                )
            })
            .collect()
    }

    /// One `method` request to `/page?x=1` with `request_headers`,
    /// answered (on a miss) 200 with `response` headers and `hello`;
    /// what the client got.
    fn exchange(
        cache: &Arc<ResponseCache>,
        route: &Route,
        method: Method,
        request_headers: &[(&str, &str)],
        response: &[(&str, &str)],
        now_ms: u64,
    ) -> (StatusCode, HeaderMap, Bytes) {
        let mut request = Request::builder()
            .method(method)
            .uri("/page?x=1")
            .body(())
            .unwrap();
        *request.headers_mut() = headers(request_headers);
        request
            .headers_mut()
            .insert(header::HOST, HeaderValue::from_static("Web.Test:8000"));
        match begin(cache, route, &request, false, now_ms, 1000) {
            Begin::Answer(answer) => {
                let (parts, body) = answer.into_parts();
                (parts.status, parts.headers, body)
            }
            Begin::Forward(pending) => {
                let mut response = headers(response);
                let body = Bytes::from_static(b"hello");
                if let Some(mut fill) =
                    pending.response(StatusCode::OK, &mut response, None, now_ms, 1000)
                {
                    fill.data(&body);
                    fill.end();
                }
                (StatusCode::OK, response, body)
            }
        }
    }

    #[test]
    fn the_route_carries_the_cache_settings_and_the_configuration_version() {
        let mut app = json!({
            "id": "/web",
            "labels": {"BATON_CACHE": "1MiB", "BATON_CACHE_MAX_TTL": "2m"},
            "version": "2024-01-03T00:00:00.000Z",
            "versionInfo": {"lastConfigChangeAt": "2024-01-01T00:00:00.000Z"},
        });
        let route = crate::table::parse_app(&app, None).unwrap();
        let cache = route.cache.as_ref().unwrap();
        assert_eq!(cache.settings.max_bytes, Some(1 << 20));
        assert_eq!(cache.settings.max_ttl_secs, Some(120));
        // A scale changes `version` only: the cache's version stays.
        assert_eq!(&*cache.version, "2024-01-01T00:00:00.000Z");
        let shown = route.to_json(0)["cache"].clone();
        assert_eq!(shown["version"], "2024-01-01T00:00:00.000Z");
        assert_eq!(shown["maxBytes"], 1 << 20);
        // Without versionInfo (older Marathons), `version`.
        app.as_object_mut().unwrap().remove("versionInfo");
        let route = crate::table::parse_app(&app, None).unwrap();
        assert_eq!(&*route.cache.unwrap().version, "2024-01-03T00:00:00.000Z");
        // Wrong labels: no cache, and the table says why.
        app["labels"]["BATON_CACHE_PRIVATE"] = json!("sometimes");
        let route = crate::table::parse_app(&app, None).unwrap();
        assert!(route.cache.is_none());
        let error = route.to_json(0)["cache"]["error"]
            .as_str()
            .unwrap()
            .to_string();
        assert!(error.starts_with("BATON_CACHE_PRIVATE="), "{error}");
        // No label: nothing shown.
        let plain = crate::table::parse_app(&json!({"id": "/x"}), None).unwrap();
        assert!(plain.cache.is_none() && plain.to_json(0)["cache"].is_null());
    }

    #[test]
    fn keys_are_the_lower_case_host_and_the_target() {
        let h = headers(&[("host", "Web.Test:8000")]);
        assert_eq!(key(&"/a?b=1".parse().unwrap(), &h), "web.test:8000/a?b=1");
        let absolute: Uri = "http://Other.Test/x".parse().unwrap();
        assert_eq!(key(&absolute, &h), "other.test/x");
    }

    #[test]
    fn a_stored_response_answers_with_its_age_and_a_hit() {
        let cache = Arc::new(ResponseCache::new(1 << 20, 1 << 10));
        let route = route(json!({"BATON_CACHE": "on"}));
        let fresh = [("cache-control", "max-age=60"), ("etag", "\"v1\"")];
        let (_, first, _) = exchange(&cache, &route, Method::GET, &[], &fresh, 0);
        assert_eq!(first[X_CACHE], "MISS");
        let (status, h, body) = exchange(&cache, &route, Method::GET, &[], &fresh, 12_500);
        assert_eq!((status, &body[..]), (StatusCode::OK, &b"hello"[..]));
        assert_eq!(
            (&h[X_CACHE], &h[header::AGE]),
            (&HIT, &HeaderValue::from(12))
        );
        assert_eq!(h[header::CONTENT_LENGTH], "5");
        assert_eq!(h[header::ETAG], "\"v1\"");
        // HEAD: the same head, no body.
        let (status, h, body) = exchange(&cache, &route, Method::HEAD, &[], &fresh, 13_000);
        assert_eq!((status, body.len()), (StatusCode::OK, 0));
        assert_eq!(h[header::CONTENT_LENGTH], "5");
        // A matching validator: 304.
        let (status, h, body) = exchange(
            &cache,
            &route,
            Method::GET,
            &[("if-none-match", "\"v1\"")],
            &fresh,
            14_000,
        );
        assert_eq!((status, body.len()), (StatusCode::NOT_MODIFIED, 0));
        assert_eq!(h[header::ETAG], "\"v1\"");
        assert!(!h.contains_key(header::CONTENT_LENGTH));
        let counters = cache.snapshot().apps["/web"].counters;
        assert_eq!((counters.hits, counters.misses, counters.stores), (3, 1, 1));
    }

    #[test]
    fn only_if_cached_without_an_entry_is_a_504() {
        let cache = Arc::new(ResponseCache::new(1 << 20, 1 << 10));
        let route = route(json!({"BATON_CACHE": "on"}));
        let (status, h, _) = exchange(
            &cache,
            &route,
            Method::GET,
            &[("cache-control", "only-if-cached")],
            &[],
            0,
        );
        assert_eq!(status, StatusCode::GATEWAY_TIMEOUT);
        assert_eq!(h[X_CACHE], "MISS");
    }

    #[test]
    fn an_unsafe_requests_success_drops_the_urls_entries() {
        let cache = Arc::new(ResponseCache::new(1 << 20, 1 << 10));
        let route = route(json!({"BATON_CACHE": "on"}));
        let fresh = [("cache-control", "max-age=60")];
        exchange(&cache, &route, Method::GET, &[], &fresh, 0);
        assert_eq!(cache.snapshot().entries, 1);
        exchange(&cache, &route, Method::POST, &[], &[], 0);
        assert_eq!(cache.snapshot().entries, 0);
        assert_eq!(cache.snapshot().apps["/web"].counters.invalidations, 1);
    }

    #[test]
    fn a_get_under_way_while_a_post_changes_its_url_is_not_stored() {
        let cache = Arc::new(ResponseCache::new(1 << 20, 1 << 10));
        let route = route(json!({"BATON_CACHE": "on"}));
        let request = |method: Method| {
            let mut request = Request::builder()
                .method(method)
                .uri("/page?x=1")
                .body(())
                .unwrap();
            request
                .headers_mut()
                .insert(header::HOST, HeaderValue::from_static("web.test:8000"));
            request
        };
        let Begin::Forward(get) = begin(&cache, &route, &request(Method::GET), false, 0, 1000)
        else {
            panic!("a miss is forwarded");
        };
        // The POST is answered first; the GET's answer, read before the
        // POST's change, arrives after it.
        let Begin::Forward(post) = begin(&cache, &route, &request(Method::POST), false, 0, 1000)
        else {
            panic!("a POST is forwarded");
        };
        assert!(
            post.response(StatusCode::OK, &mut HeaderMap::new(), None, 0, 1000)
                .is_none()
        );
        let mut fresh = headers(&[("cache-control", "max-age=60")]);
        let mut fill = get
            .response(StatusCode::OK, &mut fresh, None, 0, 1000)
            .expect("storable");
        fill.data(b"old");
        fill.end();
        assert_eq!(cache.snapshot().entries, 0);
        // The next GET is sent after the change, and is stored.
        exchange(
            &cache,
            &route,
            Method::GET,
            &[],
            &[("cache-control", "max-age=60")],
            0,
        );
        assert_eq!(cache.snapshot().entries, 1);
    }

    #[test]
    fn stored_entries_keep_no_cookie_and_no_cache_header() {
        let cache = Arc::new(ResponseCache::new(1 << 20, 1 << 10));
        let route = route(json!({"BATON_CACHE": "on", "BATON_CACHE_PRIVATE": "allow"}));
        assert_eq!(
            route.cache.as_ref().unwrap().settings,
            Settings {
                max_bytes: None,
                max_ttl_secs: None,
                private: true,
            }
        );
        let cookie = [("cache-control", "max-age=60"), ("set-cookie", "sid=1")];
        let (_, first, _) = exchange(&cache, &route, Method::GET, &[], &cookie, 0);
        assert_eq!(
            first[header::SET_COOKIE],
            "sid=1",
            "the first client gets it"
        );
        let (_, h, _) = exchange(&cache, &route, Method::GET, &[], &cookie, 0);
        assert_eq!(h[X_CACHE], "HIT");
        assert!(!h.contains_key(header::SET_COOKIE));
        let entry = Entry {
            status: StatusCode::NOT_FOUND,
            headers: headers(&[("etag", "\"x\"")]),
            body: Bytes::new(),
            freshness: Freshness {
                lifetime_secs: 1,
                initial_age_secs: 0,
            },
            stored_at_ms: 0,
            variant: Variant::of(false, &[], &HeaderMap::new()),
        };
        // A 404 ignores preconditions.
        let answered = answer(&entry, 0, &headers(&[("if-none-match", "*")]), false);
        assert_eq!(answered.status(), StatusCode::NOT_FOUND);
    }
}
