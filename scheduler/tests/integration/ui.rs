//! The web UI's routes over real HTTP on loopback, with authentication and
//! an ACL on: every asset with its content type, ETag and 304 (public: the
//! page must load before anyone logs in), `/ui/api/traffic` reading two
//! routers (one down) as each user may see them, and a standby that serves
//! the assets itself, even while the leader is unreachable, and relays the
//! leader's event stream to the page.

use super::support;

use std::sync::Arc;
use std::time::Duration;

use baton::auth::{Acl, HttpSecurity, Users};
use baton::config::{MasterSpec, Settings};
use baton::mesos::MasterEndpoint;
use baton::ui::assets::ASSETS;
use reqwest::StatusCode;
use serde_json::{Value, json};
use support::fake_master::FakeMaster;

const ACL: &str = r#"{"rules": [
    {"principals": ["alice"], "actions": ["*"], "paths": ["/team-a/"]},
    {"principals": ["root"], "actions": ["*"], "paths": ["/"]}
]}"#;

/// A router's `/_router/stats`, in its shape, with two apps.
fn router_stats() -> Value {
    let app = |requests: u64| {
        json!({
            "requests": requests,
            "responses": {"1xx": 0, "2xx": requests, "3xx": 0, "4xx": 0, "5xx": 0},
            "requestsPerSecond": {"10s": 1.5, "1m": 1.0, "5m": 0.5},
            "latency": {"count": requests, "sumSeconds": 0.5, "p50": 0.005, "p99": 0.05,
                "buckets": [{"le": 0.005, "count": requests}, {"le": "+Inf", "count": requests}]},
            "upstreams": [{"taskId": "t1", "address": "127.0.0.1:31000"}],
        })
    };
    json!({
        "unmatched": 3,
        "marathon": {"eventsConnected": true},
        "tableGeneration": 7,
        "apps": {"/team-a/web": app(10), "/team-b/db": app(20)},
    })
}

/// A stand-in `baton-router` answering `/_router/stats`.
async fn fake_router() -> String {
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = listener.local_addr().unwrap();
    let app = axum::Router::new().route(
        "/_router/stats",
        axum::routing::get(|| async { axum::Json(router_stats()) }),
    );
    tokio::spawn(async move {
        let _ = axum::serve(listener, app).await;
    });
    format!("http://{addr}")
}

/// A loopback address nothing listens on.
fn dead_address() -> String {
    let listener = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
    format!("http://{}", listener.local_addr().unwrap())
}

struct Running {
    running: baton::config::Running,
    _master: FakeMaster,
    _dir: tempfile::TempDir,
    base: String,
    http: reqwest::Client,
    settings: Settings,
}

async fn start(router_urls: Vec<String>) -> Running {
    let b = support::BatonOnFakeMaster::start("fw-ui", |settings| {
        settings.http_security = HttpSecurity {
            users: Some(Users::parse("alice:alice-pw,root:root-pw").unwrap()),
            acl: Some(Acl::parse(ACL).unwrap()),
            ..HttpSecurity::default()
        };
        settings.router_urls = router_urls;
    })
    .await;
    Running {
        base: b.base,
        running: b.running,
        _master: b.master,
        _dir: b.dir,
        http: reqwest::Client::builder().no_proxy().build().unwrap(),
        settings: b.settings,
    }
}

async fn get(http: &reqwest::Client, url: &str, user: Option<&str>) -> reqwest::Response {
    let mut request = http.get(url).header("Accept", "application/json");
    if let Some(user) = user {
        request = request.basic_auth(user, Some(format!("{user}-pw")));
    }
    request.send().await.unwrap()
}

/// Every asset from `base`, without credentials: 200 with its type, ETag
/// and caching headers, then 304 when the ETag is offered back.
async fn check_assets(http: &reqwest::Client, base: &str) {
    for asset in ASSETS {
        let url = format!("{base}{}", asset.path);
        let response = get(http, &url, None).await;
        assert_eq!(response.status(), StatusCode::OK, "{}", asset.path);
        let headers = response.headers().clone();
        assert_eq!(
            headers["content-type"], asset.content_type,
            "{}",
            asset.path
        );
        assert_eq!(headers["cache-control"], "no-cache", "{}", asset.path);
        assert_eq!(headers["x-content-type-options"], "nosniff");
        let etag = headers["etag"].to_str().unwrap().to_string();
        assert!(etag.starts_with('"') && etag.len() == 18, "{etag}");
        assert_eq!(
            response.bytes().await.unwrap(),
            asset.body,
            "{}",
            asset.path
        );
        let again = http
            .get(&url)
            .header("If-None-Match", &etag)
            .send()
            .await
            .unwrap();
        assert_eq!(again.status(), StatusCode::NOT_MODIFIED, "{}", asset.path);
        assert_eq!(again.headers()["etag"], etag.as_str());
        assert!(again.bytes().await.unwrap().is_empty());
    }
    let page = get(http, &format!("{base}/ui/"), None).await;
    assert_eq!(page.status(), StatusCode::OK);
    let csp = page.headers()["content-security-policy"].to_str().unwrap();
    assert!(
        csp.contains("script-src 'self'") && csp.contains("frame-ancestors 'none'"),
        "{csp}"
    );
    assert!(page.text().await.unwrap().contains("/ui/main.js"));
}

#[tokio::test]
async fn the_assets_are_public_typed_and_revalidated_by_etag() {
    let api = start(Vec::new()).await;
    check_assets(&api.http, &api.base).await;
    let head = api
        .http
        .head(format!("{}/ui/style.css", api.base))
        .send()
        .await
        .unwrap();
    assert_eq!(head.status(), StatusCode::OK);
    assert_eq!(head.headers()["content-type"], "text/css; charset=utf-8");
    // What is not an asset stays behind the guard, and is a JSON 404 past it.
    let unknown = get(&api.http, &format!("{}/ui/nope.js", api.base), None).await;
    assert_eq!(unknown.status(), StatusCode::UNAUTHORIZED);
    let unknown = get(&api.http, &format!("{}/ui/nope.js", api.base), Some("root")).await;
    assert_eq!(unknown.status(), StatusCode::NOT_FOUND);
    let body: Value = unknown.json().await.unwrap();
    assert!(body["message"].is_string(), "{body}");
    // The data is not public.
    let apps = get(&api.http, &format!("{}/v2/apps", api.base), None).await;
    assert_eq!(apps.status(), StatusCode::UNAUTHORIZED);
    api.running.stop().await;
}

#[tokio::test]
async fn traffic_reads_every_router_and_shows_each_user_only_their_apps() {
    let router = fake_router().await;
    let dead = dead_address();
    let api = start(vec![router.clone(), dead.clone()]).await;
    let url = format!("{}/ui/api/traffic", api.base);
    assert_eq!(
        get(&api.http, &url, None).await.status(),
        StatusCode::UNAUTHORIZED
    );

    let root: Value = get(&api.http, &url, Some("root"))
        .await
        .json()
        .await
        .unwrap();
    assert!(root["sampledAt"].as_i64().unwrap() > 0, "{root}");
    let routers = root["routers"].as_array().unwrap();
    assert_eq!(routers.len(), 2, "{root}");
    assert_eq!(routers[0]["url"], router.as_str());
    let apps = routers[0]["stats"]["apps"].as_object().unwrap();
    assert_eq!(
        apps.keys().collect::<Vec<_>>(),
        ["/team-a/web", "/team-b/db"]
    );
    assert_eq!(routers[0]["stats"]["unmatched"], 3);
    assert_eq!(routers[1]["url"], dead.as_str());
    let error = routers[1]["error"].as_str().unwrap();
    assert!(error.starts_with(&format!("router {dead}")), "{error}");
    assert!(routers[1].get("stats").is_none());

    let alice: Value = get(&api.http, &url, Some("alice"))
        .await
        .json()
        .await
        .unwrap();
    let apps = alice["routers"][0]["stats"]["apps"].as_object().unwrap();
    assert_eq!(apps.keys().collect::<Vec<_>>(), ["/team-a/web"], "{alice}");
    api.running.stop().await;
}

#[tokio::test]
async fn a_router_url_that_is_not_http_stops_the_start() {
    let dir = tempfile::tempdir().unwrap();
    let mut settings = Settings::new(
        MasterSpec::Masters(vec![MasterEndpoint::parse("127.0.0.1:1").unwrap()]),
        dir.path().to_path_buf(),
        "127.0.0.1:0".parse().unwrap(),
    );
    settings.router_urls = vec!["127.0.0.1:8000".into()];
    let Err(error) = baton::config::run(settings, |_| {}).await else {
        panic!("started with a bad --router_url");
    };
    assert!(error.to_string().contains("--router_url"), "{error}");
}

/// Serves a standby's router (following `leader`) on a loopback port.
async fn standby(api: &Running, leader: &str) -> (String, tokio_util::sync::CancellationToken) {
    let (_roles_tx, roles) = tokio::sync::watch::channel(baton::ha::Role::Following {
        leader: leader.to_string(),
    });
    // The sender is dropped: the role stays as it is.
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = listener.local_addr().unwrap();
    let state = baton::api::standby::StandbyState::new(roles, &addr.to_string()).unwrap();
    let guard = Arc::new(baton::api::guard::Guard::new(
        api.settings.http_security.clone(),
        api.settings.http_policy.clone(),
    ));
    let shutdown = tokio_util::sync::CancellationToken::new();
    let ui = baton::ui::Ui::new(&api.settings.router_urls, shutdown.clone()).unwrap();
    let executor = Arc::new(baton::api::files::ExecutorFile::new("/nonexistent".into()));
    let router = baton::config::standby_router(state, guard, executor, &ui);
    let (_serving, serving_rx) = tokio::sync::watch::channel(router);
    let stop = shutdown.clone();
    tokio::spawn(async move {
        let _ = baton::api::serve(listener, serving_rx, stop.cancelled_owned()).await;
    });
    (format!("http://{addr}"), shutdown)
}

#[tokio::test]
async fn a_standby_serves_the_ui_itself_and_relays_the_leaders_events() {
    let router = fake_router().await;
    let api = start(vec![router]).await;
    let leader = api.base.trim_start_matches("http://").to_string();

    // A standby whose leader is unreachable still serves the page.
    let (lost, lost_stop) = standby(&api, dead_address().trim_start_matches("http://")).await;
    check_assets(&api.http, &lost).await;
    let apps = get(&api.http, &format!("{lost}/v2/apps"), Some("root")).await;
    assert_eq!(apps.status(), StatusCode::BAD_GATEWAY);
    let relayed = api
        .http
        .get(format!("{lost}/ui/api/events"))
        .basic_auth("root", Some("root-pw"))
        .send()
        .await
        .unwrap();
    assert_eq!(relayed.status(), StatusCode::BAD_GATEWAY);
    let body: Value = relayed.json().await.unwrap();
    assert!(
        body["message"]
            .as_str()
            .unwrap()
            .starts_with("Could not reach the leader"),
        "{body}"
    );
    lost_stop.cancel();

    // Following the real leader.
    let (base, stop) = standby(&api, &leader).await;
    check_assets(&api.http, &base).await;
    // Data still needs credentials, checked here and again by the leader.
    for path in ["/v2/apps", "/ui/api/traffic", "/ui/api/events"] {
        let refused = get(&api.http, &format!("{base}{path}"), None).await;
        assert_eq!(refused.status(), StatusCode::UNAUTHORIZED, "{path}");
    }
    let alice: Value = get(&api.http, &format!("{base}/ui/api/traffic"), Some("alice"))
        .await
        .json()
        .await
        .unwrap();
    let apps = alice["routers"][0]["stats"]["apps"].as_object().unwrap();
    assert_eq!(apps.keys().collect::<Vec<_>>(), ["/team-a/web"], "{alice}");

    // /v2/events is a redirect (as Marathon's standbys answer), which a page
    // cannot follow with its credentials; /ui/api/events relays the stream.
    let no_redirects = reqwest::Client::builder()
        .no_proxy()
        .redirect(reqwest::redirect::Policy::none())
        .build()
        .unwrap();
    let redirected = no_redirects
        .get(format!("{base}/v2/events"))
        .basic_auth("root", Some("root-pw"))
        .header("Accept", "text/event-stream")
        .send()
        .await
        .unwrap();
    assert_eq!(redirected.status(), StatusCode::FOUND);
    let mut stream = api
        .http
        .get(format!(
            "{base}/ui/api/events?event_type=event_stream_attached"
        ))
        .basic_auth("root", Some("root-pw"))
        .header("Accept", "text/event-stream")
        .send()
        .await
        .unwrap();
    assert_eq!(stream.status(), StatusCode::OK);
    assert!(
        stream.headers()["content-type"]
            .to_str()
            .unwrap()
            .starts_with("text/event-stream")
    );
    let mut text = String::new();
    while !text.contains("\n\n") {
        let chunk = tokio::time::timeout(Duration::from_secs(10), stream.chunk())
            .await
            .expect("an event within 10 s")
            .unwrap()
            .expect("the stream goes on");
        text.push_str(&String::from_utf8_lossy(&chunk));
    }
    assert!(
        text.starts_with("event: event_stream_attached\ndata: {"),
        "{text}"
    );
    // The leader authenticated the relayed request itself: a wrong password
    // at the standby never gets there.
    let wrong = api
        .http
        .get(format!("{base}/ui/api/events"))
        .basic_auth("root", Some("nope"))
        .send()
        .await
        .unwrap();
    assert_eq!(wrong.status(), StatusCode::UNAUTHORIZED);
    drop(stream);
    stop.cancel();
    api.running.stop().await;
}
