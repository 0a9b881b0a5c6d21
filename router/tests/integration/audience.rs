//! Page views, unique visitors and top paths per app, through the router
//! in-process against the fake Marathon and loopback instances: visitors
//! told apart by the app's own cookie (`BATON_UV_COOKIE`), or by the
//! router's visitor cookie, issued on a first response and recognised
//! when it comes back; the figures in `/_router/stats` and
//! `/_router/metrics`.

use std::time::SystemTime;

use futures::StreamExt;
use hyper::body::Incoming;
use hyper::{Request, Response};
use serde_json::{Value, json};

use super::proxy::{FakeMarathon, Router, app, config, full, http_server, upstream};

/// The wall clock's second (the windows are UTC minutes, hours, days).
fn unix_now() -> u64 {
    SystemTime::now()
        .duration_since(SystemTime::UNIX_EPOCH)
        .unwrap()
        .as_secs()
}

/// Whether it is still the UTC day of `started` (a day's visitors are
/// compared only within one day).
fn same_day(started: u64) -> bool {
    started / 86_400 == unix_now() / 86_400
}

/// Asserts an app's page views in every window: `current` when the
/// test ran within one window of that span, else the current and the
/// previous window together (the test straddled a boundary).
fn assert_views(app: &Value, started: u64, ended: u64, views: u64) {
    for (window, secs) in [("minute", 60), ("hour", 3600), ("day", 86_400)] {
        let current = app["pv"][window].as_u64().unwrap();
        if started / secs == ended / secs {
            assert_eq!(current, views, "pv {window}: {app:#}");
        } else {
            let previous = app["pvPrevious"][window].as_u64().unwrap();
            assert_eq!(current + previous, views, "pv {window}: {app:#}");
        }
    }
}

/// A metric's sample value in Prometheus text.
fn sample(metrics: &str, series: &str) -> Option<f64> {
    metrics
        .lines()
        .find_map(|l| l.strip_prefix(series)?.strip_prefix(' ')?.parse().ok())
}

#[tokio::test]
async fn ten_thousand_requests_from_a_thousand_app_cookies_count_a_thousand_visitors() {
    let web = upstream("web").await;
    let marathon = FakeMarathon::start(vec![app(
        "/web",
        json!({"BATON_VHOST": "web.test", "BATON_UV_COOKIE": "sid"}),
        &[("web.1", web)],
    )])
    .await;
    let router = Router::start(config(&marathon)).await;

    let started = unix_now();
    let statuses: Vec<(u16, bool)> = futures::stream::iter(0..10_000u32)
        .map(|i| {
            let request = router
                .http
                .get(format!("{}/page/{}?n={i}", router.url, i % 3))
                .header("Host", "web.test")
                .header("Cookie", format!("theme=dark; sid=visitor-{}", i % 1000));
            async move {
                let response = request.send().await.unwrap();
                let issued = response
                    .headers()
                    .get_all("set-cookie")
                    .iter()
                    .any(|c| c.to_str().unwrap().starts_with("baton_uv="));
                let status = response.status().as_u16();
                assert_eq!(response.text().await.unwrap(), "web");
                (status, issued)
            }
        })
        .buffer_unordered(32)
        .collect()
        .await;
    let ended = unix_now();
    assert!(statuses.iter().all(|(status, _)| *status == 200));
    assert!(
        statuses.iter().all(|(_, issued)| !issued),
        "an app with its own cookie gets none of the router's"
    );

    let stats = router.admin("/_router/stats").await;
    let web = &stats["apps"]["/web"];
    assert_eq!(web["requests"], 10_000);
    assert_views(web, started, ended, 10_000);
    // Counted per window: the day's is whole unless the test ran over
    // midnight UTC.
    if same_day(started) {
        let visitors = web["uv"]["day"].as_u64().unwrap();
        let error = visitors.abs_diff(1000) as f64 / 1000.0;
        assert!(error <= 0.02, "uv {visitors} for 1,000 visitors: {web:#}");
        eprintln!(
            "unique visitors estimated: {visitors} of 1000 (pv {})",
            web["pv"]["day"]
        );
    }
    let top = web["topPaths"].as_array().unwrap();
    let counted: Vec<(&str, u64, u64)> = top
        .iter()
        .map(|p| {
            let path = p["path"].as_str().unwrap();
            (
                path,
                p["count"].as_u64().unwrap(),
                p["error"].as_u64().unwrap(),
            )
        })
        .collect();
    assert_eq!(
        counted,
        [
            ("/page/0", 3334, 0),
            ("/page/1", 3333, 0),
            ("/page/2", 3333, 0)
        ],
        "paths without their query strings"
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
    let day = |name: &str| {
        let series = format!("{name}{{app=\"/web\",window=\"day\",period=\"current\"}}");
        sample(&metrics, &series).unwrap_or_else(|| panic!("{series} in {metrics}"))
    };
    if same_day(started) {
        assert_eq!(day("baton_router_page_views"), 10_000.0);
        assert_eq!(
            day("baton_router_unique_visitors"),
            web["uv"]["day"].as_f64().unwrap()
        );
    }
    assert!(metrics.contains("# TYPE baton_router_unique_visitors gauge"));
    router.stop().await;
}

/// `GET /` for `host`, with `cookie` if given: the status and the router's
/// visitor cookie it set, if any, whole; the instance's cookies must
/// stay.
async fn visit(router: &Router, host: &str, cookie: Option<&str>) -> (u16, Option<String>) {
    let mut request = router
        .http
        .get(format!("{}/", router.url))
        .header("Host", host);
    if let Some(cookie) = cookie {
        request = request.header("Cookie", cookie);
    }
    let response = request.send().await.unwrap();
    let cookies: Vec<String> = response
        .headers()
        .get_all("set-cookie")
        .iter()
        .map(|c| c.to_str().unwrap().to_string())
        .collect();
    assert!(
        cookies.iter().any(|c| c == "app=1; Path=/"),
        "the instance's own cookie is kept: {cookies:?}"
    );
    let ours = cookies.into_iter().find(|c| c.starts_with("baton_uv="));
    (response.status().as_u16(), ours)
}

#[tokio::test]
async fn the_routers_visitor_cookie_is_issued_once_and_counts_its_holder_as_one_visitor() {
    let instance = http_server(|_req: Request<Incoming>| async {
        Response::builder()
            .header("set-cookie", "app=1; Path=/")
            .body(full("hello"))
            .unwrap()
    })
    .await;
    let marathon = FakeMarathon::start(vec![app(
        "/site",
        json!({"BATON_VHOST": "site.test"}),
        &[("site.1", instance)],
    )])
    .await;
    let router = Router::start(config(&marathon)).await;

    let started = unix_now();
    let (status, issued) = visit(&router, "site.test", None).await;
    assert_eq!(status, 200);
    let issued = issued.expect("a first visit gets the router's cookie");
    let attributes: Vec<&str> = issued.split("; ").collect();
    let id = attributes[0].strip_prefix("baton_uv=").unwrap();
    assert_eq!(id.len(), 32, "{issued}");
    assert!(id.bytes().all(|b| b.is_ascii_hexdigit()), "{issued}");
    for wanted in ["Path=/", "HttpOnly", "SameSite=Lax", "Max-Age=31536000"] {
        assert!(attributes.contains(&wanted), "{wanted} in {issued}");
    }

    // The cookie comes back (among others): the same visitor, no new cookie.
    let returned = format!("other=x; baton_uv={id}");
    for _ in 0..3 {
        assert_eq!(
            visit(&router, "site.test", Some(&returned)).await,
            (200, None)
        );
    }
    let stats = router.admin("/_router/stats").await;
    let site = &stats["apps"]["/site"];
    assert_views(site, started, unix_now(), 4);
    if same_day(started) {
        assert_eq!(site["uv"]["day"], 1, "{site:#}");
    }

    // Someone new (the same address, no cookie): another visitor, another id.
    let (_, second) = visit(&router, "site.test", None).await;
    let second = second.expect("a new visitor gets a cookie");
    assert_ne!(second.split(';').next(), issued.split(';').next());
    let stats = router.admin("/_router/stats").await;
    let site = &stats["apps"]["/site"];
    assert_views(site, started, unix_now(), 5);
    if same_day(started) {
        assert_eq!(site["uv"]["day"], 2, "{site:#}");
    }
    router.stop().await;
}

#[tokio::test]
async fn without_its_cookie_an_apps_visitor_is_its_address() {
    let web = upstream("web").await;
    let marathon = FakeMarathon::start(vec![app(
        "/shop",
        json!({"BATON_VHOST": "shop.test", "BATON_UV_COOKIE": "sid"}),
        &[("shop.1", web)],
    )])
    .await;
    let router = Router::start(config(&marathon)).await;
    let started = unix_now();
    for cookie in [None, None, Some("sid=a"), Some("sid=a"), Some("sid=b")] {
        let mut request = router
            .http
            .get(format!("{}/", router.url))
            .header("Host", "shop.test");
        if let Some(cookie) = cookie {
            request = request.header("Cookie", cookie);
        }
        let response = request.send().await.unwrap();
        assert_eq!(response.status(), 200);
        assert!(response.headers().get("set-cookie").is_none());
    }
    let stats = router.admin("/_router/stats").await;
    let shop = &stats["apps"]["/shop"];
    assert_views(shop, started, unix_now(), 5);
    if same_day(started) {
        // 127.0.0.1, `a` and `b`.
        assert_eq!(shop["uv"]["day"], 3, "{shop:#}");
    }
    assert_eq!(
        shop["topPaths"],
        json!([{"path": "/", "count": 5, "error": 0}])
    );
    router.stop().await;
}
