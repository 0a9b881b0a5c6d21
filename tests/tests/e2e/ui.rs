//! The web UI in a real headless Chromium (Debian's `chromium` through
//! `chromedriver` over WebDriver), against `baton --master local` with
//! authentication on: logging in through the page, creating an app from
//! the form and seeing it run and turn healthy without a reload, a
//! validation error shown next to its field, scaling, a configuration edit,
//! a version diff and rollback, the launch queue's reasons, destroying with
//! a confirmation, and an ACL's 403 shown to a restricted user; a thousand
//! apps rendered and filtered (timed in the page, printed); the Traffic
//! page drawing a real `baton-router`'s numbers; a pod followed, scaled,
//! one of its instances killed and the pod deleted from the Pods page.
//!
//! Screenshots of the main pages go to `target/ui-screenshots/`.

use std::time::{Duration, Instant};

use baton_e2e::apps::http_server;
use baton_e2e::baton::{BatonProcess, Master};
use baton_e2e::browser::{Browser, screenshot_dir};
use baton_e2e::cluster::{MesosLocalProcess, fast_session, settings};
use baton_e2e::ports::free_port;
use baton_e2e::procs;
use baton_e2e::router::{RouterProcess, task_app};
use baton_e2e::wait;
use mesos_proto::Encoding;
use reqwest::Method;
use serde_json::{Value, json};

const ACL: &str = r#"{"rules": [
    {"principals": ["alice"], "actions": ["*"], "paths": ["/team-a/"]},
    {"principals": ["root"], "actions": ["*"], "paths": ["/"]}
]}"#;

/// How long the page may take to show something the API already shows.
const PAGE: Duration = Duration::from_secs(20);
/// How long tasks may take to start and pass their health checks.
const TASKS: Duration = Duration::from_secs(90);

/// A request to Baton's API as `user` (password `<user>-pw`).
async fn send(
    url: &str,
    method: Method,
    path: &str,
    user: &str,
    body: Option<Value>,
) -> (u16, Value) {
    let http = reqwest::Client::builder().no_proxy().build().unwrap();
    let mut request = http
        .request(method, format!("{url}{path}"))
        .basic_auth(user, Some(format!("{user}-pw")));
    if let Some(body) = body {
        request = request.json(&body);
    }
    let response = request.send().await.unwrap();
    let status = response.status().as_u16();
    let text = response.text().await.unwrap();
    (
        status,
        serde_json::from_str(&text).unwrap_or(Value::String(text)),
    )
}

async fn start_baton(dir: &std::path::Path) -> BatonProcess {
    let acl = dir.join("acl.json");
    std::fs::create_dir_all(dir).unwrap();
    std::fs::write(&acl, ACL).unwrap();
    BatonProcess::start(
        Master::Local,
        &dir.join("baton"),
        &[
            "--http_credentials",
            "root:root-pw,alice:alice-pw",
            "--acl_file",
            acl.to_str().unwrap(),
            // The harness checks the subscription in /metrics.
            "--http_open_metrics",
        ],
    )
    .await
}

/// Logs in through the page's form and waits for the Apps page.
async fn log_in(browser: &Browser, user: &str) {
    browser.wait_for("#login-user", PAGE).await;
    browser.fill("#login-user", user).await;
    browser.fill("#login-password", &format!("{user}-pw")).await;
    browser.click("#login-submit").await;
    browser.wait_for("#apps-summary", PAGE).await;
    browser.wait_text("#user", user, PAGE).await;
}

/// The app `id` as the API shows it once `done` holds for it.
async fn wait_app(url: &str, id: &str, what: &str, done: impl Fn(&Value) -> bool) -> Value {
    wait::until(TASKS, what, || async {
        let (status, body) = send(url, Method::GET, &format!("/v2/apps{id}"), "root", None).await;
        (status == 200 && done(&body["app"])).then(|| body["app"].clone())
    })
    .await
}

fn settled(app: &Value, instances: u64) -> bool {
    app["instances"] == instances
        && app["tasksRunning"] == instances
        && app["tasksHealthy"] == instances
        && app["deployments"].as_array().is_some_and(|d| d.is_empty())
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_app_goes_through_its_life_in_the_browser_with_credentials_and_an_acl() {
    baton_e2e::init_tracing();
    let dir = tempfile::tempdir().unwrap();
    let baton = start_baton(dir.path()).await;
    let url = baton.url.clone();
    let shots = screenshot_dir();
    let marker = procs::marker("ui-life");
    // Something alice may not see.
    let (status, body) = send(
        &url,
        Method::POST,
        "/v2/apps",
        "root",
        Some(json!({"id": "/team-b/db", "cmd": "sleep 1000", "cpus": 0.01, "mem": 16, "instances": 0})),
    )
    .await;
    assert_eq!(status, 201, "{body}");

    let browser = Browser::start(&dir.path().join("browser"), 1280, 900).await;
    browser.goto(&format!("{url}/")).await;

    // Baton asks for credentials: the page's own form, which shows a
    // refusal's message.
    browser.wait_for("#login-user", PAGE).await;
    browser.screenshot(&shots, "login").await;
    browser.fill("#login-user", "root").await;
    browser.fill("#login-password", "wrong").await;
    browser.click("#login-submit").await;
    let refused = browser.wait_text("#login-errors", "401", PAGE).await;
    assert!(
        refused.contains("Invalid username or password"),
        "{refused}"
    );
    log_in(&browser, "root").await;
    browser.wait_text("#live-text", "live", PAGE).await;
    // A mark that a reload would erase.
    browser
        .js("window.noReload = 'still here'; return true", vec![])
        .await;

    // A bad definition: Baton's 422 is shown next to the field it names.
    browser.click("a[data-nav=create]").await;
    browser.wait_for("#new-id", PAGE).await;
    browser.fill("#new-id", "/team-a/web").await;
    browser.fill("#new-cmd", &http_server(&marker)).await;
    browser.fill("#new-cpus", "-1").await;
    browser.fill("#new-mem", "64").await;
    browser.select("#new-health", "HTTP").await;
    browser.fill("#new-health-interval", "1").await;
    browser.fill("#new-health-grace", "10").await;
    browser.click("#create-submit").await;
    let error = browser.wait_text("#new-cpus-error", "/cpus", PAGE).await;
    assert!(error.contains("0.0 or more"), "{error}");
    assert_eq!(
        browser
            .js(
                "return document.getElementById('new-cpus').getAttribute('aria-invalid')",
                vec![]
            )
            .await,
        "true"
    );
    browser.wait_text("#create-errors", "422", PAGE).await;
    browser.screenshot(&shots, "create-error").await;

    // Fixed, it is created, and the App page follows it to running and
    // healthy from the event stream.
    browser.fill("#new-cpus", "0.1").await;
    browser.click("#create-submit").await;
    browser
        .wait_js(
            "the App page of /team-a/web",
            PAGE,
            "return location.hash === '#/app/team-a/web'",
        )
        .await;
    browser
        .wait_text(".app-summary", "1 of 1 running · 1 healthy", TASKS)
        .await;
    let first = wait_app(&url, "/team-a/web", "/team-a/web created", |a| {
        settled(a, 1)
    })
    .await;
    let address = browser
        .wait_for("#tasks-title ~ .table-wrap a.address", PAGE)
        .await;
    assert!(address.starts_with("127.0.0."), "task address {address}");

    // Scale.
    browser.fill("#scale-input", "2").await;
    browser.click("#scale-button").await;
    browser
        .wait_text(".app-summary", "2 of 2 running · 2 healthy", TASKS)
        .await;
    wait_app(&url, "/team-a/web", "2 instances", |a| settled(a, 2)).await;
    browser.screenshot(&shots, "app").await;
    browser.resize(400, 900).await;
    browser.screenshot(&shots, "app-narrow").await;
    browser.resize(1280, 900).await;

    // A configuration change through the editor: a new version.
    browser
        .js(
            "const e = document.getElementById('config-editor'); const v = JSON.parse(e.value); \
             v.env = Object.assign({}, v.env, {GREETING: 'two'}); e.value = JSON.stringify(v, null, 2); \
             e.dispatchEvent(new Event('input', {bubbles: true})); return true",
            vec![],
        )
        .await;
    browser.click("#config-save").await;
    browser
        .wait_text("#status", "Saved /team-a/web", PAGE)
        .await;
    wait_app(&url, "/team-a/web", "the new configuration deployed", |a| {
        settled(a, 2) && a["env"]["GREETING"] == "two"
    })
    .await;
    browser
        .wait_text(".app-summary", "2 of 2 running · 2 healthy", TASKS)
        .await;
    browser
        .wait_js(
            "the editor to show the new version",
            PAGE,
            "return document.getElementById('config-editor').value.includes('GREETING')",
        )
        .await;

    // Versions: the first one against the current, and a rollback to it.
    browser
        .wait_js(
            "three versions listed",
            PAGE,
            "return document.querySelectorAll('ol.versions li').length >= 3",
        )
        .await;
    browser.click("ol.versions li:last-child button").await;
    let changes = browser
        .wait_text("#version-diff table.diff", "/env/GREETING", PAGE)
        .await;
    assert!(changes.contains("/instances"), "{changes}");
    browser.screenshot(&shots, "versions-diff").await;
    browser.click("#rollback-version").await;
    let rolled = wait_app(
        &url,
        "/team-a/web",
        "the rollback to the first version",
        |a| settled(a, 1) && a["env"].get("GREETING").is_none(),
    )
    .await;
    assert_eq!(rolled["cmd"], first["cmd"]);
    browser
        .wait_text(".app-summary", "1 of 1 running · 1 healthy", TASKS)
        .await;

    // Why instances wait: a constraint no fourth agent can meet.
    let (status, body) = send(
        &url,
        Method::POST,
        "/v2/apps",
        "root",
        Some(
            json!({"id": "/team-a/unique", "cmd": "sleep 1000", "cpus": 0.01, "mem": 16,
            "instances": 4, "constraints": [["hostname", "UNIQUE"]]}),
        ),
    )
    .await;
    assert_eq!(status, 201, "{body}");
    browser.goto(&format!("{url}/#/app/team-a/unique")).await;
    let queue = browser
        .wait_text("section[aria-labelledby=queue-title]", "hostname", TASKS)
        .await;
    println!("queue section: {queue}");
    browser.wait_for("#deployment-title", PAGE).await;
    browser.screenshot(&shots, "app-waiting").await;
    browser.click("a[data-nav=deployments]").await;
    browser
        .wait_text("#deployments-list", "/team-a/unique", PAGE)
        .await;
    browser.screenshot(&shots, "deployments").await;

    // A launch delay after a crash, and the button that resets it.
    let (status, body) = send(
        &url,
        Method::POST,
        "/v2/apps",
        "root",
        Some(
            json!({"id": "/team-a/crash", "cmd": "exit 1", "cpus": 0.01, "mem": 16,
            "instances": 1, "backoffSeconds": 600}),
        ),
    )
    .await;
    assert_eq!(status, 201, "{body}");
    browser.goto(&format!("{url}/#/app/team-a/crash")).await;
    browser.wait_for("#reset-delay", TASKS).await;
    browser.wait_text(".app-summary", "delayed", PAGE).await;
    browser.click("#reset-delay").await;
    browser
        .wait_text("#status", "Launch delay reset", PAGE)
        .await;

    // The Apps page: the tree, with the statuses.
    browser.click("a[data-nav=apps]").await;
    browser.wait_text("#apps-table", "unique", PAGE).await;
    browser.screenshot(&shots, "apps").await;
    browser.resize(400, 900).await;
    browser.screenshot(&shots, "apps-narrow").await;
    browser.resize(1280, 900).await;
    browser.click("a[data-nav=events]").await;
    browser.wait_for("#event-log li", PAGE).await;
    browser.screenshot(&shots, "events").await;

    // Destroy, after the confirmation.
    browser.goto(&format!("{url}/#/app/team-a/web")).await;
    browser.wait_text(".app-summary", "running", PAGE).await;
    browser.click("#destroy-button").await;
    browser.wait_for("dialog[open] #confirm-ok", PAGE).await;
    browser.screenshot(&shots, "destroy-confirm").await;
    browser.click("#confirm-ok").await;
    browser
        .wait_js(
            "the Apps page after destroying",
            PAGE,
            "return location.hash === '#/apps'",
        )
        .await;
    wait::until(TASKS, "/team-a/web gone", || async {
        let (status, _) = send(&url, Method::GET, "/v2/apps/team-a/web", "root", None).await;
        (status == 404).then_some(())
    })
    .await;
    browser
        .wait_js(
            "the Apps page to drop /team-a/web",
            PAGE,
            "return !document.querySelector('#apps-table a[href=\"#/app/team-a/web\"]')",
        )
        .await;
    assert_eq!(
        browser.js("return window.noReload", vec![]).await,
        "still here",
        "the page reloaded"
    );

    // Alice: only /team-a/ is hers. She does not see /team-b/db, and a
    // refused write shows Baton's 403 message.
    browser.click("#logout").await;
    log_in(&browser, "alice").await;
    browser.wait_text("#apps-table", "unique", PAGE).await;
    assert!(
        !browser.text("#apps-table").await.contains("db"),
        "alice sees /team-b/db"
    );
    browser.click("a[data-nav=create]").await;
    browser.wait_for("#new-id", PAGE).await;
    browser.fill("#new-id", "/team-b/web").await;
    browser.fill("#new-cmd", "sleep 1000").await;
    browser.click("#create-submit").await;
    let forbidden = browser.wait_text("#create-errors", "403", PAGE).await;
    assert!(forbidden.contains("not authorized"), "{forbidden}");
    println!("alice's refusal: {forbidden}");
    browser.screenshot(&shots, "forbidden").await;
    let errors = browser.js("return window.batonErrors", vec![]).await;
    assert_eq!(errors, json!([]), "script errors in the page");

    browser.stop().await;
    baton.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_thousand_apps_render_and_filter_quickly_in_the_browser() {
    baton_e2e::init_tracing();
    let dir = tempfile::tempdir().unwrap();
    let baton = start_baton(dir.path()).await;
    let url = baton.url.clone();
    // One group write: 20 groups of 50 apps, none running.
    let groups: Vec<Value> = (0..20)
        .map(|g| {
            let apps: Vec<Value> = (0..50)
                .map(|i| {
                    let n = g * 50 + i;
                    json!({"id": format!("/load/g{g:02}/app-{n}"), "cmd": "sleep 1000", "cpus": 0.01,
                        "mem": 8, "instances": 0,
                        "labels": {"tier": if n % 2 == 0 { "web" } else { "batch" }}})
                })
                .collect();
            json!({"id": format!("/load/g{g:02}"), "apps": apps})
        })
        .collect();
    let (status, body) = send(
        &url,
        Method::POST,
        "/v2/groups",
        "root",
        Some(json!({"id": "/load", "groups": groups})),
    )
    .await;
    assert_eq!(status, 201, "{body}");
    wait::until(TASKS, "1,000 apps listed", || async {
        let (_, apps) = send(&url, Method::GET, "/v2/apps", "root", None).await;
        (apps["apps"].as_array().map_or(0, Vec::len) == 1000).then_some(())
    })
    .await;

    let browser = Browser::start(&dir.path().join("browser"), 1280, 900).await;
    browser.goto(&format!("{url}/")).await;
    browser.wait_for("#login-user", PAGE).await;
    browser.fill("#login-user", "root").await;
    browser.fill("#login-password", "root-pw").await;
    // WebDriver's view: from the click to the table of 1,000 apps shown
    // (logging in, reading /v2/apps, rendering; polled every 50 ms).
    let clicked = Instant::now();
    browser.click("#login-submit").await;
    browser
        .wait_text("#apps-summary", "1,000 apps", Duration::from_secs(10))
        .await;
    let shown = clicked.elapsed();
    let perf = browser.js("return window.batonPerf.apps", vec![]).await;
    let first = perf
        .as_array()
        .and_then(|all| all.iter().find(|p| p["apps"] == 1000))
        .cloned()
        .unwrap_or(Value::Null);
    browser.screenshot(&screenshot_dir(), "apps-1000").await;

    // Filters, timed in the page: the input event's handler filters,
    // renders the page of rows and lays it out before returning.
    let filter = |field: &str, value: &str| {
        format!(
            "const e = document.getElementById({}); const t = performance.now(); e.value = {}; \
             e.dispatchEvent(new Event(e.tagName === 'SELECT' ? 'change' : 'input')); \
             return [performance.now() - t, document.querySelectorAll('#apps-table tbody tr').length, \
             document.getElementById('apps-summary').textContent]",
            json!(field),
            json!(value)
        )
    };
    let mut timings = Vec::new();
    for (field, value, expect) in [
        ("app-search", "app-7", "111 of 1,000 apps match"),
        ("app-search", "", "1,000 apps"),
        ("label-filter", "tier=web", "500 of 1,000 apps match"),
        ("status-filter", "suspended", "500 of 1,000 apps match"),
        ("label-filter", "", "1,000 apps"),
        ("status-filter", "", "1,000 apps"),
    ] {
        let result = browser.js(&filter(field, value), vec![]).await;
        let ms = result[0].as_f64().unwrap();
        assert_eq!(result[2], expect, "{field}={value}: {result}");
        assert!(ms < 10_000.0, "filtering took {ms} ms");
        timings.push(format!(
            "{field}={value:?}: {ms:.1} ms ({} rows)",
            result[1]
        ));
    }
    // Typed key by key, as a user would: each key filters once.
    browser.fill("#app-search", "app-42").await;
    browser
        .wait_text("#apps-summary", "11 of 1,000 apps match", PAGE)
        .await;
    let typed = browser
        .js("return window.batonPerf.apps.filter(p => p.kind === 'filter').slice(-6).map(p => p.ms)", vec![])
        .await;
    browser
        .screenshot(&screenshot_dir(), "apps-1000-filtered")
        .await;
    let cleared = browser.js(&filter("app-search", ""), vec![]).await;
    assert_eq!(cleared[2], "1,000 apps", "{cleared}");
    let paging = browser
        .js(
            "const t = performance.now(); document.getElementById('page-next').click(); \
             return [performance.now() - t, document.querySelector('.pager span').textContent]",
            vec![],
        )
        .await;

    println!("1,000 apps: shown {shown:?} after the login click (WebDriver, polled every 50 ms)");
    println!(
        "1,000 apps: first full render in the page {} ms (filter, rows, layout)",
        first["ms"]
    );
    for t in &timings {
        println!("1,000 apps: filter {t}");
    }
    println!("1,000 apps: typing 'app-42', per key: {typed} ms");
    println!("1,000 apps: next page {} ms ({})", paging[0], paging[1]);
    assert!(shown < Duration::from_secs(10), "{shown:?}");
    assert!(
        first["ms"].as_f64().is_some_and(|ms| ms < 10_000.0),
        "{first}"
    );
    let errors = browser.js("return window.batonErrors", vec![]).await;
    assert_eq!(errors, json!([]), "script errors in the page");

    browser.stop().await;
    baton.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_traffic_page_charts_a_routers_numbers() {
    baton_e2e::init_tracing();
    let dir = tempfile::tempdir().unwrap();
    let mesos = MesosLocalProcess::start(&dir.path().join("mesos"), Encoding::Protobuf).await;
    // Baton first, naming the router's port; then the router, reading Baton.
    let router_port = free_port();
    let mut config = settings(&mesos.url, &dir.path().join("baton"), Encoding::Protobuf);
    config.router_urls = vec![format!("http://127.0.0.1:{router_port}")];
    let running = baton::config::run(config, fast_session).await.unwrap();
    let url = format!("http://{}", running.http_addr);
    let http = reqwest::Client::builder().no_proxy().build().unwrap();
    let marker = procs::marker("ui-traffic");
    let app = task_app(
        "/shop/web",
        &marker,
        2,
        json!({"labels": {"BATON_VHOST": "shop.test"}}),
    );
    let created = http
        .post(format!("{url}/v2/apps"))
        .json(&app)
        .send()
        .await
        .unwrap();
    assert_eq!(created.status(), 201);
    wait::until(TASKS, "2 healthy instances of /shop/web", || async {
        let app: Value = http
            .get(format!("{url}/v2/apps/shop/web"))
            .send()
            .await
            .ok()?
            .json()
            .await
            .ok()?;
        (app["app"]["tasksHealthy"] == 2).then_some(())
    })
    .await;
    let router = RouterProcess::start_on(router_port, &url, &dir.path().join("router"), &[]).await;
    wait::until(PAGE, "the router to route /shop/web", || async {
        (router.upstreams("/shop/web").await.len() == 2).then_some(())
    })
    .await;

    let browser = Browser::start(&dir.path().join("browser"), 1280, 900).await;
    browser.goto(&format!("{url}/#/traffic")).await;
    browser.wait_text("#traffic-body", "/shop/web", PAGE).await;
    // Traffic through the router while the page samples (every 3 s), until
    // it has drawn a rate line.
    let load = tokio_util::sync::CancellationToken::new();
    let sender = {
        let (load, router_url) = (load.clone(), router.url.clone());
        tokio::spawn(async move {
            let http = reqwest::Client::builder().no_proxy().build().unwrap();
            let mut sent = 0u32;
            while !load.is_cancelled() && sent < 20_000 {
                let _ = http
                    .get(format!("{router_url}/hello"))
                    .header("Host", "shop.test")
                    .send()
                    .await;
                sent += 1;
                tokio::time::sleep(Duration::from_millis(10)).await;
            }
            sent
        })
    };
    browser
        .wait_js("a request-rate line of four samples above zero", Duration::from_secs(60),
            "const c = document.querySelector('#traffic-body figcaption small'); \
             const line = document.querySelector('#traffic-body polyline.rate'); \
             return line && line.getAttribute('points').split(' ').length >= 4 && c && !c.textContent.startsWith(' 0 req/s')")
        .await;
    browser.screenshot(&screenshot_dir(), "traffic").await;
    load.cancel();
    let sent = sender.await.unwrap();
    let sample: Value = http
        .get(format!("{url}/ui/api/traffic"))
        .send()
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    let requests = sample["routers"][0]["stats"]["apps"]["/shop/web"]["requests"]
        .as_u64()
        .unwrap_or(0);
    println!(
        "traffic: {sent} requests sent, the router counted {requests}; caption: {}",
        browser.text("#traffic-body figcaption").await
    );
    assert!(requests > 0, "{sample}");
    let errors = browser.js("return window.batonErrors", vec![]).await;
    assert_eq!(errors, json!([]), "script errors in the page");

    browser.stop().await;
    router.stop().await;
    running.stop().await;
    mesos.stop().await;
}

/// An id as the Pods page puts it in element ids (`slug` in pods.js).
fn slug(text: &str) -> String {
    text.encode_utf16()
        .map(|u| match char::from_u32(u32::from(u)) {
            Some(c) if c.is_ascii_alphanumeric() => c.to_string(),
            _ => format!("_{u:04x}"),
        })
        .collect()
}

/// The pod `/shop/cache`'s `::status` once `done` holds for it.
async fn wait_pod(url: &str, what: &str, done: impl Fn(&Value) -> bool) -> Value {
    wait::until(TASKS, what, || async {
        let (status, body) = send(
            url,
            Method::GET,
            "/v2/pods/shop/cache::status",
            "root",
            None,
        )
        .await;
        (status == 200 && done(&body)).then_some(body)
    })
    .await
}

fn stable_ids(status: &Value) -> Vec<String> {
    status["instances"]
        .as_array()
        .into_iter()
        .flatten()
        .filter(|i| i["status"] == "STABLE")
        .filter_map(|i| i["id"].as_str().map(str::to_string))
        .collect()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_pod_is_followed_scaled_killed_and_deleted_in_the_browser() {
    baton_e2e::init_tracing();
    let dir = tempfile::tempdir().unwrap();
    let baton = start_baton(dir.path()).await;
    let url = baton.url.clone();
    let shots = screenshot_dir();
    let marker = procs::marker("ui-pod");
    let browser = Browser::start(&dir.path().join("browser"), 1280, 900).await;
    browser.goto(&format!("{url}/")).await;
    log_in(&browser, "root").await;
    browser.click("a[data-nav=pods]").await;
    browser.wait_text("#pods-list", "No pods.", PAGE).await;

    // A pod created through the API appears, and turns stable, from the
    // event stream.
    let (status, body) = send(
        &url,
        Method::POST,
        "/v2/pods",
        "root",
        Some(
            json!({"id": "/shop/cache", "scaling": {"kind": "fixed", "instances": 1},
            "volumes": [{"name": "scratch"}],
            "containers": [{"name": "main", "resources": {"cpus": 0.05, "mem": 16},
                "exec": {"command": {"shell": format!("while :; do sleep 1; done # {marker}")}},
                "volumeMounts": [{"name": "scratch", "mountPath": "scratch"}]}]}),
        ),
    )
    .await;
    assert_eq!(status, 201, "{body}");
    let card = format!("#pod-{}", slug("/shop/cache"));
    browser
        .wait_text(&format!("{card} .pod-stable"), "1/1", TASKS)
        .await;
    // Its deployment over (the badge says stable, not deploying).
    browser
        .wait_text(&format!("{card} h2"), "stable", TASKS)
        .await;
    let text = browser.text(&card).await;
    assert!(
        text.contains("stable")
            && text.contains("scratch (ephemeral)")
            && text.contains("TASK_RUNNING"),
        "{text}"
    );
    browser.screenshot(&shots, "pods").await;

    // Scaled to 2 from the page.
    let pod = slug("/shop/cache");
    browser.fill(&format!("#pod-scale-{pod}"), "2").await;
    browser.click(&format!("#pod-scale-button-{pod}")).await;
    let scaled = wait_pod(&url, "2 stable instances", |s| stable_ids(s).len() == 2).await;
    browser
        .wait_text(&format!("{card} .pod-stable"), "2/2", PAGE)
        .await;

    // One instance killed from the page: relaunched as the same instance.
    let victim = stable_ids(&scaled)[0].clone();
    let first_task = scaled["instances"]
        .as_array()
        .unwrap()
        .iter()
        .find(|i| i["id"] == victim.as_str())
        .unwrap()["containers"][0]["containerId"]
        .clone();
    browser.click(&format!("#pod-kill-{}", slug(&victim))).await;
    wait_pod(&url, "the killed instance relaunched", |s| {
        s["instances"].as_array().into_iter().flatten().any(|i| {
            i["id"] == victim.as_str()
                && i["status"] == "STABLE"
                && i["containers"][0]["containerId"] != first_task
        })
    })
    .await;

    // Deleted after a confirmation: the page says so, nothing runs.
    browser.click(&format!("#pod-delete-{pod}")).await;
    browser.wait_for("#confirm-ok", PAGE).await;
    browser.click("#confirm-ok").await;
    browser.wait_text("#pods-list", "No pods.", TASKS).await;
    procs::assert_all_gone(&marker).await;
    let errors = browser.js("return window.batonErrors", vec![]).await;
    assert_eq!(errors, json!([]), "script errors");
    browser.stop().await;
    baton.stop().await;
}
