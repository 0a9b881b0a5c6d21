//! The API's security over real HTTP and HTTPS on loopback: 401 on every
//! endpoint but `/ping` without credentials, per-app authorization from an
//! ACL file (lists filtered, writes refused with 403 and nothing changed,
//! events filtered), a bad-input sweep of the auth surface, CORS, the
//! write rate limit, and HTTPS with a generated certificate that is
//! reloaded when its files change.

use super::support;

use std::sync::Arc;
use std::time::Duration;

use base64::Engine;
use baton::auth::{Acl, HttpSecurity, Users};
use baton::config::Settings;
use reqwest::StatusCode;
use serde_json::{Value, json};
use support::fake_master::FakeMaster;

const ACL: &str = r#"{
    "groups": {"team-a": ["alice"]},
    "rules": [
        {"principals": ["group:team-a"], "actions": ["*"], "paths": ["/team-a/", "/shared/alice/"]},
        {"principals": ["root"], "actions": ["*"], "paths": ["/"]},
        {"principals": ["bot"], "actions": ["create"], "paths": ["/"]}
    ]
}"#;

struct Api {
    running: baton::config::Running,
    _master: FakeMaster,
    _dir: tempfile::TempDir,
    base: String,
    http: reqwest::Client,
}

async fn start(tune: impl FnOnce(&mut Settings)) -> Api {
    let b = support::BatonOnFakeMaster::start("fw-sec", |settings| {
        settings.http_security = HttpSecurity {
            users: Some(Users::parse("alice:alice-pw,root:root-pw,bot:bot-pw").unwrap()),
            acl: Some(Acl::parse(ACL).unwrap()),
            realm: "baton-test".into(),
            ..HttpSecurity::default()
        };
        tune(settings);
    })
    .await;
    Api {
        base: b.base,
        running: b.running,
        _master: b.master,
        _dir: b.dir,
        http: reqwest::Client::new(),
    }
}

impl Api {
    async fn send(
        &self,
        method: reqwest::Method,
        path: &str,
        user: Option<&str>,
        body: Option<Value>,
    ) -> (StatusCode, Value) {
        let mut request = self.http.request(method, format!("{}{path}", self.base));
        if let Some(user) = user {
            request = request.basic_auth(user, Some(format!("{user}-pw")));
        }
        if let Some(body) = body {
            request = request.json(&body);
        }
        let response = request.send().await.unwrap();
        let status = response.status();
        let text = response.text().await.unwrap();
        (
            status,
            serde_json::from_str(&text).unwrap_or(Value::String(text)),
        )
    }

    async fn app_ids(&self, user: &str) -> Vec<String> {
        let (status, body) = self
            .send(reqwest::Method::GET, "/v2/apps", Some(user), None)
            .await;
        assert_eq!(status, 200, "{body}");
        let mut ids: Vec<String> = body["apps"]
            .as_array()
            .unwrap()
            .iter()
            .map(|a| a["id"].as_str().unwrap().to_string())
            .collect();
        ids.sort();
        ids
    }
}

fn app(id: &str) -> Value {
    json!({"id": id, "cmd": "sleep 1000", "cpus": 0.1, "mem": 16, "instances": 0})
}

#[tokio::test]
async fn without_credentials_every_endpoint_but_ping_answers_401() {
    let api = start(|_| {}).await;
    use reqwest::Method;
    let endpoints = [
        (Method::GET, "/v2/apps"),
        (Method::GET, "/v2/apps/team-a/x"),
        (Method::POST, "/v2/apps"),
        (Method::PUT, "/v2/apps/team-a/x"),
        (Method::DELETE, "/v2/apps/team-a/x"),
        (Method::GET, "/v2/groups"),
        (Method::GET, "/v2/tasks"),
        (Method::POST, "/v2/tasks/delete"),
        (Method::GET, "/v2/deployments"),
        (Method::GET, "/v2/queue"),
        (Method::GET, "/v2/info"),
        (Method::GET, "/v2/leader"),
        (Method::DELETE, "/v2/leader"),
        (Method::GET, "/v2/events"),
        (Method::GET, "/v2/services"),
        (Method::GET, "/metrics"),
        (Method::GET, "/no/such/path"),
    ];
    for (method, path) in endpoints {
        let response = api
            .http
            .request(method.clone(), format!("{}{path}", api.base))
            .header("accept", "text/event-stream, application/json")
            .send()
            .await
            .unwrap();
        assert_eq!(response.status(), 401, "{method} {path}");
        assert_eq!(
            response.headers()["www-authenticate"],
            "Basic realm=\"baton-test\"",
            "{method} {path}"
        );
        let body: Value = response.json().await.unwrap();
        assert_eq!(
            body["message"], "Authentication required",
            "{method} {path}"
        );
    }
    let ping = api
        .http
        .get(format!("{}/ping", api.base))
        .send()
        .await
        .unwrap();
    assert_eq!(ping.status(), 200);
    // Agents fetch the executor without credentials.
    let fetch = api
        .http
        .get(format!("{}/executor/baton-executor", api.base))
        .send()
        .await
        .unwrap();
    assert_ne!(fetch.status(), 401);
    api.running.stop().await;
}

#[tokio::test]
async fn a_user_limited_to_team_a_sees_and_changes_only_team_a() {
    let api = start(|_| {}).await;
    use reqwest::Method;
    for id in ["/team-a/web", "/team-b/db"] {
        let (status, body) = api
            .send(Method::POST, "/v2/apps", Some("root"), Some(app(id)))
            .await;
        assert_eq!(status, 201, "{body}");
    }
    assert_eq!(api.app_ids("root").await, ["/team-a/web", "/team-b/db"]);
    assert_eq!(api.app_ids("alice").await, ["/team-a/web"]);

    // Reads of what alice may not view: as if absent.
    let (status, _) = api
        .send(Method::GET, "/v2/apps/team-b/db", Some("alice"), None)
        .await;
    assert_eq!(status, 404);
    let (_, groups) = api
        .send(Method::GET, "/v2/groups", Some("alice"), None)
        .await;
    assert!(!groups.to_string().contains("team-b"), "{groups}");

    // Writes to team-b: 403 with a message, nothing changed.
    let before = api
        .send(Method::GET, "/v2/apps/team-b/db", Some("root"), None)
        .await
        .1;
    let refused = [
        (
            Method::PUT,
            "/v2/apps/team-b/db",
            Some(json!({"cmd": "sleep 1", "instances": 0})),
        ),
        (
            Method::PATCH,
            "/v2/apps/team-b/db",
            Some(json!({"instances": 0})),
        ),
        (Method::DELETE, "/v2/apps/team-b/db", None),
        (Method::POST, "/v2/apps/team-b/db/restart", None),
        (Method::POST, "/v2/apps", Some(app("/team-b/new"))),
        (
            Method::PUT,
            "/v2/apps",
            Some(json!([{"id": "/team-b/db", "instances": 0}])),
        ),
        (
            Method::POST,
            "/v2/groups",
            Some(json!({"id": "/team-b/g", "apps": [app("/team-b/g/x")]})),
        ),
        (Method::DELETE, "/v2/apps/team-b/db/tasks", None),
        (Method::DELETE, "/v2/leader", None),
    ];
    for (method, path, body) in refused {
        let (status, answer) = api.send(method.clone(), path, Some("alice"), body).await;
        assert_eq!(status, 403, "{method} {path}: {answer}");
        let message = answer["message"].as_str().unwrap();
        assert!(
            message.starts_with("User 'alice' is not authorized to"),
            "{message}"
        );
    }
    // A group write is planned on the whole tree: deleting team-b's group
    // would delete an app she may not delete.
    let (status, _) = api
        .send(Method::DELETE, "/v2/groups/team-b", Some("alice"), None)
        .await;
    assert_eq!(status, 403);
    let after = api
        .send(Method::GET, "/v2/apps/team-b/db", Some("root"), None)
        .await
        .1;
    assert_eq!(before["app"]["version"], after["app"]["version"]);
    assert_eq!(api.app_ids("root").await, ["/team-a/web", "/team-b/db"]);

    // Her own apps she may change.
    let (status, body) = api
        .send(
            Method::PUT,
            "/v2/apps/team-a/web",
            Some("alice"),
            Some(json!({"cmd": "sleep 2", "instances": 0})),
        )
        .await;
    assert_eq!(status, 200, "{body}");
    let (status, body) = api
        .send(
            Method::POST,
            "/v2/apps",
            Some("alice"),
            Some(app("/team-a/worker")),
        )
        .await;
    assert_eq!(status, 201, "{body}");
    let (status, _) = api
        .send(
            Method::DELETE,
            "/v2/apps/team-a/worker",
            Some("alice"),
            None,
        )
        .await;
    assert_eq!(status, 200);
    api.running.stop().await;
}

#[tokio::test]
async fn a_restricted_event_stream_carries_only_its_apps() {
    let api = start(|_| {}).await;
    use futures::StreamExt;
    let mut stream = api
        .http
        .get(format!("{}/v2/events?event_type=api_post_event", api.base))
        .basic_auth("alice", Some("alice-pw"))
        .header("accept", "text/event-stream")
        .send()
        .await
        .unwrap()
        .bytes_stream();
    // Written in this order: whatever alice reads first after team-b's
    // write must be team-a's.
    for id in ["/team-b/hidden", "/team-a/shown"] {
        let (status, _) = api
            .send(
                reqwest::Method::POST,
                "/v2/apps",
                Some("root"),
                Some(app(id)),
            )
            .await;
        assert_eq!(status, 201);
    }
    let mut seen = String::new();
    tokio::time::timeout(Duration::from_secs(10), async {
        while !seen.contains("/team-a/shown") {
            let chunk = stream.next().await.expect("stream open").unwrap();
            seen.push_str(&String::from_utf8_lossy(&chunk));
        }
    })
    .await
    .expect("alice's stream shows her app within 10 s");
    assert!(!seen.contains("team-b"), "{seen}");
    api.running.stop().await;
}

#[tokio::test]
async fn malformed_or_huge_auth_headers_get_clear_errors_and_the_api_keeps_serving() {
    let api = start(|_| {}).await;
    let b64 = |s: &[u8]| base64::engine::general_purpose::STANDARD.encode(s);
    let cases: Vec<(String, u16, &str)> = vec![
        ("Bearer abc".into(), 401, "only the Basic scheme"),
        ("Basic".into(), 401, "expected 'Basic <credentials>'"),
        ("Basic !!!".into(), 401, "not base64"),
        (
            format!("Basic {}", b64(b"no-colon")),
            401,
            "not user:password",
        ),
        (
            format!("Basic {}", b64(&[0xff, b':', b'x'])),
            401,
            "not UTF-8",
        ),
        (
            format!("Basic {}", b64(b"alice:wrong")),
            401,
            "invalid username or password",
        ),
        (
            format!("Basic {}", b64(b"mallory:alice-pw")),
            401,
            "invalid username or password",
        ),
        (format!("Basic {}", "A".repeat(6000)), 401, "too long"),
        (
            format!("Basic {}", "A".repeat(20_000)),
            431,
            "Request headers too large",
        ),
    ];
    for (header, status, message) in cases {
        let response = api
            .http
            .get(format!("{}/v2/apps", api.base))
            .header("authorization", header.as_str())
            .send()
            .await
            .unwrap();
        assert_eq!(
            response.status().as_u16(),
            status,
            "{}",
            &header[..20.min(header.len())]
        );
        let body: Value = response.json().await.unwrap();
        let text = body["message"].as_str().unwrap().to_lowercase();
        assert!(text.contains(&message.to_lowercase()), "{text}");
        assert!(
            !text.contains("alice-pw") && !text.contains("wrong"),
            "{text}"
        );
    }
    // Many headers add up too.
    let mut request = api.http.get(format!("{}/v2/apps", api.base));
    for i in 0..100 {
        request = request.header(format!("x-filler-{i}"), "x".repeat(200));
    }
    assert_eq!(request.send().await.unwrap().status(), 431);
    assert_eq!(api.app_ids("root").await, Vec::<String>::new());
    // No secret in /v2/info.
    let (_, info) = api
        .send(reqwest::Method::GET, "/v2/info", Some("root"), None)
        .await;
    assert!(!info.to_string().contains("-pw"), "{info}");
    api.running.stop().await;
}

#[tokio::test]
async fn cors_preflights_pass_and_writes_over_the_rate_get_429_with_retry_after() {
    let api = start(|s| {
        s.http_policy.cors_origins = vec!["https://ui.example".into()];
        s.http_policy.write_rate_per_client = Some(2.0);
    })
    .await;
    let preflight = api
        .http
        .request(reqwest::Method::OPTIONS, format!("{}/v2/apps", api.base))
        .header("origin", "https://ui.example")
        .header("access-control-request-method", "POST")
        .send()
        .await
        .unwrap();
    assert_eq!(preflight.status(), 204);
    assert_eq!(
        preflight.headers()["access-control-allow-origin"],
        "https://ui.example"
    );
    assert!(
        preflight.headers()["access-control-allow-headers"]
            .to_str()
            .unwrap()
            .contains("Authorization")
    );
    let other = api
        .http
        .get(format!("{}/v2/apps", api.base))
        .basic_auth("root", Some("root-pw"))
        .header("origin", "https://evil.example")
        .send()
        .await
        .unwrap();
    assert!(!other.headers().contains_key("access-control-allow-origin"));

    let mut statuses = Vec::new();
    let mut retry_after = None;
    for i in 0..4 {
        let response = api
            .http
            .post(format!("{}/v2/apps", api.base))
            .basic_auth("root", Some("root-pw"))
            .json(&app(&format!("/rate/a{i}")))
            .send()
            .await
            .unwrap();
        statuses.push(response.status().as_u16());
        if response.status() == 429 {
            retry_after = response.headers().get("retry-after").cloned();
        }
    }
    // A burst of two, then refusals (a token may come back meanwhile).
    assert_eq!(&statuses[..2], [201, 201]);
    assert!(statuses.contains(&429), "{statuses:?}");
    assert_eq!(retry_after.unwrap(), "1");
    // Reads are not limited.
    assert_eq!(
        api.app_ids("root").await.len(),
        statuses.iter().filter(|s| **s == 201).count()
    );
    api.running.stop().await;
}

/// An HTTPS GET trusting only `ca`: the status and the server's leaf
/// certificate, or `(0, [])` when the handshake fails.
async fn https_get(addr: std::net::SocketAddr, ca: &[u8], path: &str) -> (u16, Vec<u8>) {
    use tokio::io::{AsyncReadExt, AsyncWriteExt};
    let mut roots = rustls::RootCertStore::empty();
    roots
        .add(rustls_pki_types::CertificateDer::from(ca.to_vec()))
        .unwrap();
    let config = rustls::ClientConfig::builder_with_provider(Arc::new(
        rustls::crypto::ring::default_provider(),
    ))
    .with_safe_default_protocol_versions()
    .unwrap()
    .with_root_certificates(roots)
    .with_no_client_auth();
    let connector = tokio_rustls::TlsConnector::from(Arc::new(config));
    let tcp = tokio::net::TcpStream::connect(addr).await.unwrap();
    let name = rustls_pki_types::ServerName::try_from("localhost").unwrap();
    let Ok(mut tls) = connector.connect(name, tcp).await else {
        return (0, Vec::new());
    };
    let leaf = tls.get_ref().1.peer_certificates().unwrap()[0].to_vec();
    let auth = base64::engine::general_purpose::STANDARD.encode("root:root-pw");
    tls.write_all(
        format!("GET {path} HTTP/1.1\r\nHost: localhost\r\nAuthorization: Basic {auth}\r\nConnection: close\r\n\r\n")
            .as_bytes(),
    )
    .await
    .unwrap();
    let mut answer = Vec::new();
    tls.read_to_end(&mut answer).await.unwrap();
    let text = String::from_utf8_lossy(&answer);
    let status = text
        .split(' ')
        .nth(1)
        .and_then(|s| s.parse().ok())
        .unwrap_or(0);
    (status, leaf)
}

#[tokio::test]
async fn https_serves_a_generated_certificate_and_reloads_it_when_its_files_change() {
    let certs = tempfile::tempdir().unwrap();
    let write_pair = |dir: &std::path::Path| {
        let generated = rcgen::generate_simple_self_signed(vec!["localhost".into()]).unwrap();
        std::fs::write(dir.join("api.crt"), generated.cert.pem()).unwrap();
        std::fs::write(dir.join("api.key"), generated.signing_key.serialize_pem()).unwrap();
        generated.cert.der().to_vec()
    };
    let first = write_pair(certs.path());
    let cert_dir = certs.path().to_path_buf();
    let api = start(move |s| {
        s.https = Some(baton::api::tls::HttpsSettings {
            addr: "127.0.0.1:0".parse().unwrap(),
            cert: cert_dir.join("api.crt"),
            key: cert_dir.join("api.key"),
            reload_poll: Some(Duration::from_millis(200)),
        });
    })
    .await;
    let addr = api.running.https_addr.expect("HTTPS listening");
    let (status, leaf) = https_get(addr, &first, "/v2/apps").await;
    assert_eq!(status, 200);
    assert_eq!(leaf, first);
    // Plain HTTP still answers (no --disable_http).
    assert_eq!(api.app_ids("root").await, Vec::<String>::new());

    // New files: the next handshakes get the new certificate.
    let staged = tempfile::tempdir().unwrap();
    let second = write_pair(staged.path());
    for name in ["api.key", "api.crt"] {
        std::fs::rename(staged.path().join(name), certs.path().join(name)).unwrap();
    }
    tokio::time::timeout(Duration::from_secs(20), async {
        loop {
            let (status, leaf) = https_get(addr, &second, "/ping").await;
            if status == 200 && leaf == second {
                break;
            }
            tokio::time::sleep(Duration::from_millis(200)).await;
        }
    })
    .await
    .expect("the new certificate is served within 20 s");
    api.running.stop().await;
}

#[tokio::test]
async fn with_http_disabled_only_https_answers() {
    let certs = tempfile::tempdir().unwrap();
    let generated = rcgen::generate_simple_self_signed(vec!["localhost".into()]).unwrap();
    std::fs::write(certs.path().join("api.crt"), generated.cert.pem()).unwrap();
    std::fs::write(
        certs.path().join("api.key"),
        generated.signing_key.serialize_pem(),
    )
    .unwrap();
    let cert_dir = certs.path().to_path_buf();
    let api = start(move |s| {
        s.https = Some(baton::api::tls::HttpsSettings {
            addr: "127.0.0.1:0".parse().unwrap(),
            cert: cert_dir.join("api.crt"),
            key: cert_dir.join("api.key"),
            reload_poll: None,
        });
        s.disable_http = true;
    })
    .await;
    let plain = api.http.get(format!("{}/ping", api.base)).send().await;
    assert!(plain.is_err(), "plain HTTP must not answer: {plain:?}");
    let addr = api.running.https_addr.unwrap();
    let (status, _) = https_get(addr, generated.cert.der(), "/v2/apps").await;
    assert_eq!(status, 200);
    api.running.stop().await;
}

#[tokio::test]
async fn writes_are_planned_and_checked_on_the_whole_tree_not_the_callers_view() {
    let api = start(|_| {}).await;
    use reqwest::Method;
    for id in ["/team-b/db", "/shared"] {
        let (status, body) = api
            .send(Method::POST, "/v2/apps", Some("root"), Some(app(id)))
            .await;
        assert_eq!(status, 201, "{body}");
    }
    let before = api
        .send(Method::GET, "/v2/apps/team-b/db", Some("root"), None)
        .await
        .1;
    // A create-only grant cannot replace an app it cannot see through a
    // group write.
    let (status, body) = api
        .send(
            Method::PUT,
            "/v2/groups/team-b",
            Some("bot"),
            Some(json!({"apps": [{"id": "db", "cmd": "evil", "instances": 0}]})),
        )
        .await;
    assert_eq!(status, 403, "{body}");
    let after = api
        .send(Method::GET, "/v2/apps/team-b/db", Some("root"), None)
        .await
        .1;
    assert_eq!(before["app"]["cmd"], after["app"]["cmd"]);
    assert_eq!(before["app"]["version"], after["app"]["version"]);
    // An app may not land under an app, hidden or not.
    let (status, body) = api
        .send(
            Method::POST,
            "/v2/apps",
            Some("alice"),
            Some(app("/shared/alice/web")),
        )
        .await;
    assert_eq!(status, 422, "{body}");
    api.running.stop().await;
}

#[tokio::test]
async fn a_task_is_killed_only_through_its_own_app() {
    let api = start(|_| {}).await;
    use reqwest::Method;
    // Without running tasks (no offers here) the id of another app's task
    // still must not be accepted under alice's app.
    let foreign = "team-b_db.instance-3f3a7a3e-7c43-4d0f-9a1e-0f0d1e2c3b4a._app.1";
    let (status, body) = api
        .send(
            Method::DELETE,
            &format!("/v2/apps/team-a/web/tasks/{foreign}?scale=true"),
            Some("root"),
            None,
        )
        .await;
    // The app does not exist yet: 404 either way, never a kill.
    assert_eq!(status, 404, "{body}");
    let (status, _) = api
        .send(
            Method::POST,
            "/v2/apps",
            Some("root"),
            Some(app("/team-a/web")),
        )
        .await;
    assert_eq!(status, 201);
    let (status, body) = api
        .send(
            Method::DELETE,
            &format!("/v2/apps/team-a/web/tasks/{foreign}?scale=true"),
            Some("alice"),
            None,
        )
        .await;
    assert_eq!(status, 404, "{body}");
    assert!(body["message"].as_str().unwrap().contains("does not exist"));
    api.running.stop().await;
}

#[tokio::test]
async fn the_user_header_counts_only_from_trusted_proxies_and_only_once() {
    use reqwest::Method;
    let untrusted = start(|s| {
        s.http_security.user_header = Some("x-forwarded-user".into());
        s.http_security.trusted_proxies = vec!["10.0.0.0/8".parse().unwrap()];
    })
    .await;
    let response = untrusted
        .http
        .get(format!("{}/v2/apps", untrusted.base))
        .header("x-forwarded-user", "root")
        .send()
        .await
        .unwrap();
    assert_eq!(
        response.status(),
        401,
        "a loopback client is not a trusted proxy here"
    );
    // Basic still works beside it.
    assert_eq!(untrusted.app_ids("root").await, Vec::<String>::new());
    untrusted.running.stop().await;

    let trusted = start(|s| {
        s.http_security.user_header = Some("x-forwarded-user".into());
    })
    .await;
    let (status, _) = trusted
        .send(
            Method::POST,
            "/v2/apps",
            Some("root"),
            Some(app("/team-b/db")),
        )
        .await;
    assert_eq!(status, 201);
    let as_alice = trusted
        .http
        .get(format!("{}/v2/apps", trusted.base))
        .header("x-forwarded-user", "alice")
        .send()
        .await
        .unwrap();
    assert_eq!(as_alice.status(), 200);
    let body: Value = as_alice.json().await.unwrap();
    assert_eq!(body["apps"], json!([]), "alice sees none of team-b");
    let twice = trusted
        .http
        .get(format!("{}/v2/apps", trusted.base))
        .header("x-forwarded-user", "alice")
        .header("x-forwarded-user", "root")
        .send()
        .await
        .unwrap();
    assert_eq!(twice.status(), 400);
    trusted.running.stop().await;
}

#[tokio::test]
async fn cross_site_writes_and_guessed_passwords_are_refused() {
    let api = start(|_| {}).await;
    let host = api.base.trim_start_matches("http://").to_string();
    let write = |origin: Option<String>| {
        let mut request = api
            .http
            .post(format!("{}/v2/apps", api.base))
            .basic_auth("root", Some("root-pw"))
            .json(&app(&format!("/csrf/{}", uuid::Uuid::new_v4().simple())));
        if let Some(origin) = origin {
            request = request.header("origin", origin);
        }
        request.send()
    };
    assert_eq!(
        write(Some("https://evil.example".into()))
            .await
            .unwrap()
            .status(),
        403
    );
    assert_eq!(
        write(Some(format!("http://{host}")))
            .await
            .unwrap()
            .status(),
        201
    );
    assert_eq!(write(None).await.unwrap().status(), 201);

    let mut statuses = Vec::new();
    for _ in 0..30 {
        let response = api
            .http
            .get(format!("{}/v2/apps", api.base))
            .basic_auth("root", Some("guess"))
            .send()
            .await
            .unwrap();
        statuses.push(response.status().as_u16());
    }
    assert_eq!(statuses[0], 401);
    assert_eq!(*statuses.last().unwrap(), 429, "{statuses:?}");
    api.running.stop().await;
}

#[tokio::test]
async fn an_open_event_stream_shows_anonymous_readers_no_app_under_an_acl() {
    let api = start(|s| s.http_security.open_events = true).await;
    use futures::StreamExt;
    let mut stream = api
        .http
        .get(format!("{}/v2/events", api.base))
        .header("accept", "text/event-stream")
        .send()
        .await
        .unwrap()
        .bytes_stream();
    let (status, _) = api
        .send(
            reqwest::Method::POST,
            "/v2/apps",
            Some("root"),
            Some(app("/team-b/secret")),
        )
        .await;
    assert_eq!(status, 201);
    // The write's deployment runs and ends; a Baton-level event follows
    // the app's (a detach of a second stream) so the reader knows when it
    // has seen everything before it.
    let second = api
        .http
        .get(format!("{}/v2/events", api.base))
        .header("accept", "text/event-stream")
        .send()
        .await
        .unwrap();
    drop(second);
    let mut seen = String::new();
    tokio::time::timeout(Duration::from_secs(10), async {
        while !seen.contains("event_stream_detached") {
            let chunk = stream.next().await.expect("stream open").unwrap();
            seen.push_str(&String::from_utf8_lossy(&chunk));
        }
    })
    .await
    .expect("the detach event within 10 s");
    assert!(!seen.contains("team-b"), "{seen}");
    api.running.stop().await;
}
