//! The per-app response cache (`BATON_CACHE`) against the fake Marathon
//! and a loopback instance that counts the requests it gets: a fresh
//! response is fetched once and served to every client with `Age` and
//! `X-Cache: HIT`; `Vary: Accept-Encoding` keeps variants apart;
//! `no-store`, `private` and `Set-Cookie` responses never come from the
//! cache (unless `BATON_CACHE_PRIVATE=allow`, for cookies: stored without
//! them); a flood of URLs stays within the router's and the app's bounds,
//! and a body larger than an entry may be streams through whole; HEAD
//! and conditional requests are answered from a stored GET; an app
//! without the label is never cached; a redeploy drops an app's entries.

use std::collections::HashMap;
use std::convert::Infallible;
use std::net::SocketAddr;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use bytes::Bytes;
use http_body_util::{BodyExt, StreamBody};
use hyper::body::{Frame, Incoming};
use hyper::service::service_fn;
use hyper::{Request, Response};
use hyper_util::rt::TokioIo;
use reqwest::header::HeaderMap;
use serde_json::{Value, json};
use tokio::net::TcpListener;
use tokio::task::JoinSet;

use super::proxy::{Body, DEADLINE, FakeMarathon, Router, app, config, full};

/// `Last-Modified` of `/fresh`.
const LAST_MODIFIED: &str = "Tue, 15 Nov 1994 08:12:31 GMT";

/// The size of `/big`'s body: sent in chunks, without a length.
const BIG: usize = 256 * 1024;

/// `/big`'s byte at `i`.
fn big_byte(i: usize) -> u8 {
    (i % 251) as u8
}

/// An instance on loopback that answers by path (see [`answer`]) and
/// counts the requests it gets, by method and path; stopped (with its
/// connections) when dropped.
struct Instance {
    addr: SocketAddr,
    seen: Arc<Mutex<HashMap<String, usize>>>,
    server: tokio::task::JoinHandle<()>,
}

impl Instance {
    async fn start() -> Instance {
        let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
        let addr = listener.local_addr().unwrap();
        let seen = Arc::new(Mutex::new(HashMap::new()));
        let counts = seen.clone();
        let server = tokio::spawn(async move {
            // Dropped with this task: its connections stop too.
            let mut connections = JoinSet::new();
            while let Ok((stream, _)) = listener.accept().await {
                let counts = counts.clone();
                connections.spawn(async move {
                    let service = service_fn(move |req: Request<Incoming>| {
                        let counts = counts.clone();
                        async move {
                            let seen = format!("{} {}", req.method(), req.uri().path());
                            let n = {
                                let mut counts = counts.lock().unwrap();
                                let n = counts.entry(seen).or_insert(0);
                                *n += 1;
                                *n
                            };
                            Ok::<_, Infallible>(answer(&req, n))
                        }
                    });
                    let _ = hyper::server::conn::http1::Builder::new()
                        .serve_connection(TokioIo::new(stream), service)
                        .await;
                });
            }
        });
        Instance { addr, seen, server }
    }

    /// Requests it got as `"GET /path"`.
    fn seen(&self, what: &str) -> usize {
        self.seen.lock().unwrap().get(what).copied().unwrap_or(0)
    }
}

impl Drop for Instance {
    fn drop(&mut self) {
        self.server.abort();
    }
}

/// What the instance answers to the `n`th request of its method and path:
///
/// - `/fresh`: `fresh #n`, fresh for a minute, with an `ETag` and a
///   `Last-Modified`;
/// - `/vary`: `gzip #n` (as `Content-Encoding: gzip`) to clients that
///   accept gzip, `identity #n` to others, with `Vary: Accept-Encoding`;
/// - `/no-store`, `/private`, `/cookie`: fresh for a minute, but with
///   `no-store`, `private`, or a `Set-Cookie`;
/// - `/empty`: 204, fresh for a minute;
/// - `/page/…`: 1,000 bytes, fresh for a minute;
/// - `/big`: [`BIG`] bytes in chunks, fresh for a minute;
/// - anything else: `other #n` without freshness.
fn answer(req: &Request<Incoming>, n: usize) -> Response<Body> {
    let path = req.uri().path();
    let fresh = ("cache-control", "max-age=60".to_string());
    let (headers, body): (Vec<(&str, String)>, Body) = match path {
        "/fresh" => (
            vec![
                fresh,
                ("etag", "\"v1\"".into()),
                ("last-modified", LAST_MODIFIED.into()),
            ],
            full(format!("fresh #{n}")),
        ),
        "/vary" => {
            let gzip = req
                .headers()
                .get("accept-encoding")
                .and_then(|v| v.to_str().ok())
                .is_some_and(|v| v.contains("gzip"));
            let mut headers = vec![fresh, ("vary", "Accept-Encoding".into())];
            if gzip {
                headers.push(("content-encoding", "gzip".into()));
            }
            let name = if gzip { "gzip" } else { "identity" };
            (headers, full(format!("{name} #{n}")))
        }
        "/no-store" => (
            vec![("cache-control", "no-store, max-age=60".into())],
            full(format!("no-store #{n}")),
        ),
        "/private" => (
            vec![("cache-control", "private, max-age=60".into())],
            full(format!("private #{n}")),
        ),
        "/cookie" => (
            vec![fresh, ("set-cookie", format!("sid={n}; Path=/"))],
            full(format!("cookie #{n}")),
        ),
        "/empty" => {
            let mut response = Response::new(full(""));
            *response.status_mut() = hyper::StatusCode::NO_CONTENT;
            response
                .headers_mut()
                .insert("cache-control", "max-age=60".parse().unwrap());
            return response;
        }
        "/big" => {
            let chunks = (0..BIG).step_by(16 * 1024).map(|start| {
                let chunk: Vec<u8> = (start..start + 16 * 1024).map(big_byte).collect();
                Ok::<_, Infallible>(Frame::data(Bytes::from(chunk)))
            });
            let body = StreamBody::new(futures::stream::iter(chunks)).boxed();
            (vec![fresh], body)
        }
        p if p.starts_with("/page/") => (vec![fresh], full(vec![b'p'; 1000])),
        _ => (vec![], full(format!("other #{n}"))),
    };
    let mut response = Response::new(body);
    for (name, value) in headers {
        response.headers_mut().append(name, value.parse().unwrap());
    }
    response
}

/// `app` with the instance as its one task, at vhost `host`.
fn cached_app(id: &str, host: &str, labels: Value, instance: &Instance) -> Value {
    let mut labels = labels;
    labels["BATON_VHOST"] = json!(host);
    app(id, labels, &[(&format!("{id}.1"), instance.addr)])
}

/// A response as a client got it.
struct Got {
    status: u16,
    headers: HeaderMap,
    body: Bytes,
}

impl Got {
    fn x_cache(&self) -> Option<&str> {
        self.headers.get("x-cache").map(|v| v.to_str().unwrap())
    }

    fn text(&self) -> &str {
        std::str::from_utf8(&self.body).unwrap()
    }
}

/// `method path` to `host` through the router with `headers`, on
/// `client`'s connections.
async fn send(
    client: &reqwest::Client,
    router: &Router,
    method: &str,
    host: &str,
    path: &str,
    headers: &[(&str, &str)],
) -> Got {
    let mut request = client
        .request(method.parse().unwrap(), format!("{}{path}", router.url))
        .header("host", host);
    for (name, value) in headers {
        request = request.header(*name, *value);
    }
    let response = request.send().await.unwrap();
    let status = response.status().as_u16();
    let headers = response.headers().clone();
    let body = response.bytes().await.unwrap();
    Got {
        status,
        headers,
        body,
    }
}

async fn get(router: &Router, host: &str, path: &str, headers: &[(&str, &str)]) -> Got {
    send(&router.http, router, "GET", host, path, headers).await
}

/// An app's cache figures in `/_router/stats`.
async fn cache_stats(router: &Router, app: &str) -> Value {
    router.admin("/_router/stats").await["apps"][app]["cache"].clone()
}

#[tokio::test]
async fn a_fresh_response_is_fetched_once_and_served_to_every_client_with_its_age() {
    let instance = Instance::start().await;
    let marathon = FakeMarathon::start(vec![cached_app(
        "/web",
        "web.test",
        json!({"BATON_CACHE": "on"}),
        &instance,
    )])
    .await;
    let router = Router::start(config(&marathon)).await;

    let first = get(&router, "web.test", "/fresh", &[]).await;
    assert_eq!((first.status, first.text()), (200, "fresh #1"));
    assert_eq!(first.x_cache(), Some("MISS"));
    assert!(!first.headers.contains_key("age"));
    // Many clients, each on its own connection (spread over the serving
    // threads, which share the cache).
    for _ in 0..20 {
        let client = reqwest::Client::builder().no_proxy().build().unwrap();
        let hit = send(&client, &router, "GET", "web.test", "/fresh", &[]).await;
        assert_eq!((hit.status, hit.text()), (200, "fresh #1"));
        assert_eq!(hit.x_cache(), Some("HIT"));
        assert_eq!(hit.headers["etag"], "\"v1\"");
        assert_eq!(hit.headers["content-length"], "8");
        let age: u64 = hit.headers["age"].to_str().unwrap().parse().unwrap();
        assert!(age < 60, "{age}");
    }
    assert_eq!(
        instance.seen("GET /fresh"),
        1,
        "the instance saw one request"
    );
    // The age grows with time.
    let deadline = tokio::time::Instant::now() + DEADLINE;
    loop {
        let hit = get(&router, "web.test", "/fresh", &[]).await;
        assert_eq!(hit.text(), "fresh #1");
        if hit.headers["age"] != "0" {
            break;
        }
        assert!(tokio::time::Instant::now() < deadline, "Age stays 0");
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    assert_eq!(instance.seen("GET /fresh"), 1);
    // A 204 has no body to wait for: stored at once.
    for expected in ["MISS", "HIT"] {
        let empty = get(&router, "web.test", "/empty", &[]).await;
        assert_eq!((empty.status, empty.x_cache()), (204, Some(expected)));
    }
    // No freshness: never stored.
    for n in 1..=3 {
        let other = get(&router, "web.test", "/other", &[]).await;
        assert_eq!(other.text(), format!("other #{n}"));
        assert_eq!(other.x_cache(), Some("MISS"));
    }
    // A reload asks for a fresh one, which is stored in its place.
    let reload = get(
        &router,
        "web.test",
        "/fresh",
        &[("cache-control", "no-cache")],
    )
    .await;
    assert_eq!(
        (reload.text(), reload.x_cache()),
        ("fresh #2", Some("MISS"))
    );
    let after = get(&router, "web.test", "/fresh", &[]).await;
    assert_eq!((after.text(), after.x_cache()), ("fresh #2", Some("HIT")));
    // An unsafe request to the URL drops it.
    let posted = send(&router.http, &router, "POST", "web.test", "/fresh", &[]).await;
    assert_eq!(posted.status, 200);
    let refetched = get(&router, "web.test", "/fresh", &[]).await;
    assert_eq!(
        (refetched.text(), refetched.x_cache()),
        ("fresh #3", Some("MISS"))
    );

    let stats = cache_stats(&router, "/web").await;
    assert_eq!(stats["stores"], 4, "{stats:#}");
    assert_eq!(stats["invalidations"], 1, "{stats:#}");
    assert!(stats["hits"].as_u64().unwrap() >= 22, "{stats:#}");
    assert_eq!(stats["entries"], 2, "{stats:#}");
    let app_stats = &router.admin("/_router/stats").await["apps"]["/web"];
    assert!(
        app_stats["requests"].as_u64().unwrap() >= 30,
        "{app_stats:#}"
    );
    let metrics = router
        .http
        .get(format!("{}/_router/metrics", router.url))
        .send()
        .await
        .unwrap()
        .text()
        .await
        .unwrap();
    let hits = format!(
        "baton_router_cache_requests_total{{app=\"/web\",result=\"hit\"}} {}",
        stats["hits"]
    );
    assert!(metrics.contains(&hits), "{metrics}");
    assert!(
        metrics.contains("baton_router_cache_entries{app=\"/web\"} 2"),
        "{metrics}"
    );
    router.stop().await;
}

#[tokio::test]
async fn vary_accept_encoding_keeps_gzip_and_identity_apart() {
    let instance = Instance::start().await;
    let marathon = FakeMarathon::start(vec![cached_app(
        "/web",
        "web.test",
        json!({"BATON_CACHE": "on"}),
        &instance,
    )])
    .await;
    let router = Router::start(config(&marathon)).await;
    let gzip = [("accept-encoding", "gzip, deflate")];
    for round in 0..3 {
        let zipped = get(&router, "web.test", "/vary", &gzip).await;
        assert_eq!(zipped.text(), "gzip #1", "round {round}");
        assert_eq!(zipped.headers["content-encoding"], "gzip");
        let plain = get(&router, "web.test", "/vary", &[]).await;
        assert_eq!(plain.text(), "identity #2", "round {round}");
        assert!(!plain.headers.contains_key("content-encoding"));
        let expected = if round == 0 { "MISS" } else { "HIT" };
        assert_eq!(
            (zipped.x_cache(), plain.x_cache()),
            (Some(expected), Some(expected))
        );
    }
    // The same values, spelled with other spaces: the same variant.
    let spaced = get(
        &router,
        "web.test",
        "/vary",
        &[("accept-encoding", "gzip,deflate")],
    )
    .await;
    assert_eq!((spaced.text(), spaced.x_cache()), ("gzip #1", Some("HIT")));
    // Another value: another variant.
    let br = get(&router, "web.test", "/vary", &[("accept-encoding", "br")]).await;
    assert_eq!((br.text(), br.x_cache()), ("identity #3", Some("MISS")));
    assert_eq!(instance.seen("GET /vary"), 3);
    assert_eq!(cache_stats(&router, "/web").await["entries"], 3);
    router.stop().await;
}

#[tokio::test]
async fn no_store_private_and_cookie_setting_responses_never_come_from_the_cache() {
    let instance = Instance::start().await;
    let marathon = FakeMarathon::start(vec![
        cached_app("/web", "web.test", json!({"BATON_CACHE": "on"}), &instance),
        cached_app(
            "/shared",
            "shared.test",
            json!({"BATON_CACHE": "on", "BATON_CACHE_PRIVATE": "allow"}),
            &instance,
        ),
    ])
    .await;
    let router = Router::start(config(&marathon)).await;
    for path in ["/no-store", "/private", "/cookie"] {
        for n in 1..=4 {
            let got = get(&router, "web.test", path, &[]).await;
            assert_eq!(got.text(), format!("{} #{n}", &path[1..]));
            assert_eq!(got.x_cache(), Some("MISS"), "{path}");
        }
        assert_eq!(instance.seen(&format!("GET {path}")), 4, "{path}");
    }
    // With the app's own credentials: passed by.
    for _ in 0..3 {
        let got = get(
            &router,
            "web.test",
            "/page/1",
            &[("authorization", "Bearer x")],
        )
        .await;
        assert_eq!(got.x_cache(), Some("MISS"));
    }
    assert_eq!(instance.seen("GET /page/1"), 3);
    let stats = cache_stats(&router, "/web").await;
    assert_eq!(
        (stats["stores"].as_u64(), stats["hits"].as_u64()),
        (Some(0), Some(0)),
        "{stats:#}"
    );
    assert_eq!(stats["bypasses"], 3, "{stats:#}");

    // An app that allows it: the cookie response is stored, without its
    // cookie, and answers a request with credentials; no-store and
    // private still are not.
    // (The router's own visitor cookie comes with every answer here: the
    // client keeps no cookies.)
    let sid = |got: &Got| {
        got.headers
            .get_all("set-cookie")
            .iter()
            .any(|v| v.to_str().unwrap().starts_with("sid="))
    };
    let first = get(&router, "shared.test", "/cookie", &[]).await;
    assert!(sid(&first), "its own client gets it");
    let hit = get(
        &router,
        "shared.test",
        "/cookie",
        &[("authorization", "Bearer y")],
    )
    .await;
    assert_eq!((hit.text(), hit.x_cache()), ("cookie #5", Some("HIT")));
    assert!(!sid(&hit), "{:?}", hit.headers);
    for path in ["/no-store", "/private"] {
        get(&router, "shared.test", path, &[]).await;
        let again = get(&router, "shared.test", path, &[]).await;
        assert_eq!(again.x_cache(), Some("MISS"), "{path}");
    }
    router.stop().await;
}

#[tokio::test]
async fn a_flood_of_urls_stays_within_the_bounds_and_a_large_body_streams_through_whole() {
    let instance = Instance::start().await;
    let marathon = FakeMarathon::start(vec![
        cached_app(
            "/flood",
            "flood.test",
            json!({"BATON_CACHE": "on"}),
            &instance,
        ),
        cached_app(
            "/small",
            "small.test",
            json!({"BATON_CACHE": "16KiB"}),
            &instance,
        ),
    ])
    .await;
    let mut config = config(&marathon);
    config.cache_max_bytes = 64 * 1024;
    config.cache_max_entry_bytes = 32 * 1024;
    let router = Router::start(config).await;

    for n in 0..200 {
        let got = get(&router, "flood.test", &format!("/page/{n}"), &[]).await;
        assert_eq!((got.status, got.body.len()), (200, 1000));
        if n < 60 {
            get(&router, "small.test", &format!("/page/{n}"), &[]).await;
        }
    }
    let stats = router.admin("/_router/stats").await;
    let cache = &stats["cache"];
    assert_eq!(cache["maxBytes"], 64 * 1024);
    assert!(cache["bytes"].as_u64().unwrap() <= 64 * 1024, "{cache:#}");
    assert!(cache["evictions"].as_u64().unwrap() > 0, "{cache:#}");
    let (flood, small) = (
        &stats["apps"]["/flood"]["cache"],
        &stats["apps"]["/small"]["cache"],
    );
    assert_eq!(flood["stores"], 200, "{flood:#}");
    assert!(flood["evictions"].as_u64().unwrap() > 0, "{flood:#}");
    assert!(flood["entries"].as_u64().unwrap() < 200, "{flood:#}");
    assert_eq!(small["maxBytes"], 16 * 1024, "{small:#}");
    assert!(small["bytes"].as_u64().unwrap() <= 16 * 1024, "{small:#}");
    assert!(small["evictions"].as_u64().unwrap() > 0, "{small:#}");
    let held = flood["bytes"].as_u64().unwrap() + small["bytes"].as_u64().unwrap();
    assert_eq!(cache["bytes"].as_u64(), Some(held), "{stats:#}");
    // The most recent pages are still there, the first long gone.
    assert_eq!(
        get(&router, "flood.test", "/page/199", &[]).await.x_cache(),
        Some("HIT")
    );
    assert_eq!(
        get(&router, "flood.test", "/page/0", &[]).await.x_cache(),
        Some("MISS")
    );

    // Larger than an entry may be: the client gets every byte, the cache
    // keeps none.
    for _ in 0..2 {
        let big = get(&router, "flood.test", "/big", &[]).await;
        assert_eq!(big.x_cache(), Some("MISS"));
        assert_eq!(big.body.len(), BIG);
        assert!(big.body.iter().enumerate().all(|(i, b)| *b == big_byte(i)));
    }
    assert_eq!(instance.seen("GET /big"), 2);
    let flood = cache_stats(&router, "/flood").await;
    assert_eq!(flood["tooLarge"], 2, "{flood:#}");
    router.stop().await;
}

#[tokio::test]
async fn head_and_conditional_requests_are_answered_from_a_stored_get() {
    let instance = Instance::start().await;
    let marathon = FakeMarathon::start(vec![cached_app(
        "/web",
        "web.test",
        json!({"BATON_CACHE": "on"}),
        &instance,
    )])
    .await;
    let router = Router::start(config(&marathon)).await;
    let head = |path: &'static str, headers: &'static [(&'static str, &'static str)]| {
        send(&router.http, &router, "HEAD", "web.test", path, headers)
    };

    // A HEAD before any GET goes to the instance and stores nothing.
    let before = head("/fresh", &[]).await;
    assert_eq!((before.status, before.x_cache()), (200, Some("MISS")));
    assert_eq!(instance.seen("HEAD /fresh"), 1);
    let stored = get(&router, "web.test", "/fresh", &[]).await;
    assert_eq!(
        (stored.text(), stored.x_cache()),
        ("fresh #1", Some("MISS"))
    );

    let hit = head("/fresh", &[]).await;
    assert_eq!((hit.status, hit.x_cache()), (200, Some("HIT")));
    assert!(hit.body.is_empty());
    assert_eq!(hit.headers["content-length"], "8");
    assert_eq!(hit.headers["etag"], "\"v1\"");

    for (headers, status) in [
        (&[("if-none-match", "\"v1\"")][..], 304),
        (&[("if-none-match", "\"v0\", W/\"v1\"")], 304),
        (&[("if-none-match", "\"v2\"")], 200),
        (&[("if-modified-since", LAST_MODIFIED)], 304),
        (
            &[("if-modified-since", "Mon, 14 Nov 1994 08:12:31 GMT")],
            200,
        ),
    ] {
        let got = get(&router, "web.test", "/fresh", headers).await;
        assert_eq!(
            (got.status, got.x_cache()),
            (status, Some("HIT")),
            "{headers:?}"
        );
        if status == 304 {
            assert!(got.body.is_empty());
            assert_eq!(got.headers["etag"], "\"v1\"");
            assert!(got.headers.contains_key("age"));
        } else {
            assert_eq!(got.text(), "fresh #1");
        }
    }
    let conditional_head = head("/fresh", &[("if-none-match", "\"v1\"")]).await;
    assert_eq!(conditional_head.status, 304);
    assert_eq!(
        instance.seen("GET /fresh"),
        1,
        "every answer from the one GET"
    );
    assert_eq!(instance.seen("HEAD /fresh"), 1);
    router.stop().await;
}

#[tokio::test]
async fn an_app_without_the_label_is_never_cached() {
    let instance = Instance::start().await;
    let marathon = FakeMarathon::start(vec![
        cached_app("/plain", "plain.test", json!({}), &instance),
        cached_app("/off", "off.test", json!({"BATON_CACHE": "off"}), &instance),
        cached_app(
            "/wrong",
            "wrong.test",
            json!({"BATON_CACHE": "lots"}),
            &instance,
        ),
    ])
    .await;
    let router = Router::start(config(&marathon)).await;
    for (host, app) in [
        ("plain.test", "/plain"),
        ("off.test", "/off"),
        ("wrong.test", "/wrong"),
    ] {
        for _ in 0..5 {
            let got = get(&router, host, "/fresh", &[]).await;
            assert_eq!(got.status, 200);
            assert_eq!(got.x_cache(), None, "{host}");
            assert!(!got.headers.contains_key("age"), "{host}");
        }
        let stats = router.admin("/_router/stats").await;
        assert!(
            stats["apps"][app].get("cache").is_none(),
            "{app}: {stats:#}"
        );
    }
    assert_eq!(instance.seen("GET /fresh"), 15, "every request reached it");
    let stats = router.admin("/_router/stats").await;
    assert_eq!(stats["cache"]["entries"], 0);
    let table = router.admin("/_router/table").await;
    let shown = |id: &str| {
        table["apps"]
            .as_array()
            .unwrap()
            .iter()
            .find(|a| a["id"] == id)
            .unwrap()["cache"]
            .clone()
    };
    assert_eq!(shown("/plain"), Value::Null);
    assert_eq!(shown("/off"), Value::Null);
    let error = shown("/wrong")["error"].as_str().unwrap().to_string();
    assert!(error.starts_with("BATON_CACHE=\"lots\""), "{error}");
    router.stop().await;
}

#[tokio::test]
async fn a_redeployed_app_loses_its_cached_responses() {
    let instance = Instance::start().await;
    let deployed = |version: &str| {
        let mut app = cached_app("/web", "web.test", json!({"BATON_CACHE": "on"}), &instance);
        app["version"] = json!(version);
        app["versionInfo"] = json!({"lastConfigChangeAt": version});
        app
    };
    let marathon = FakeMarathon::start(vec![deployed("2024-01-01T00:00:00.000Z")]).await;
    let router = Router::start(config(&marathon)).await;
    get(&router, "web.test", "/fresh", &[]).await;
    let hit = get(&router, "web.test", "/fresh", &[]).await;
    assert_eq!((hit.text(), hit.x_cache()), ("fresh #1", Some("HIT")));

    // Scaled (a new `version`, the same configuration): kept.
    let mut scaled = deployed("2024-01-01T00:00:00.000Z");
    scaled["version"] = json!("2024-01-02T00:00:00.000Z");
    let generation = router.admin("/_router/table").await["generation"]
        .as_u64()
        .unwrap();
    marathon.set_apps(vec![scaled]);
    marathon.emit("api_post_event", json!({"appDefinition": {"id": "/web"}}));
    router
        .until("the scale to be read", |t| {
            t["generation"].as_u64() > Some(generation)
        })
        .await;
    let kept = get(&router, "web.test", "/fresh", &[]).await;
    assert_eq!((kept.text(), kept.x_cache()), ("fresh #1", Some("HIT")));

    marathon.set_apps(vec![deployed("2024-02-01T00:00:00.000Z")]);
    marathon.emit("api_post_event", json!({"appDefinition": {"id": "/web"}}));
    router
        .until("the new version", |t| {
            t["apps"][0]["cache"]["version"] == "2024-02-01T00:00:00.000Z"
        })
        .await;
    let stats = cache_stats(&router, "/web").await;
    assert_eq!(
        (stats["entries"].as_u64(), stats["invalidations"].as_u64()),
        (Some(0), Some(1)),
        "{stats:#}"
    );
    let fetched = get(&router, "web.test", "/fresh", &[]).await;
    assert_eq!(
        (fetched.text(), fetched.x_cache()),
        ("fresh #2", Some("MISS"))
    );
    router.stop().await;
}
