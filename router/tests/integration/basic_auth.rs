//! Basic authentication per app (`BATON_AUTH_FILE`, `BATON_AUTH_REALM`)
//! against the fake Marathon and a loopback instance that echoes the
//! headers it gets: 401 with a challenge without valid credentials
//! (missing, wrong, malformed, huge — never a 500), the request proxied
//! without its `Authorization` with them, deny lists first, redirects to
//! HTTPS before the challenge, over TLS alike; and the credentials file
//! followed as it appears, changes and disappears, denying everyone while
//! it cannot be read.

use std::path::Path;
use std::time::Duration;

use base64::Engine;
use base64::engine::general_purpose::STANDARD as BASE64;
use reqwest::header::HeaderValue;
use serde_json::{Value, json};

use super::proxy::{DEADLINE, FakeMarathon, Router, app, config};
use super::tls::{Pki, TlsClient, echo_upstream, install};

fn basic(user_password: &str) -> String {
    format!("Basic {}", BASE64.encode(user_password))
}

/// `GET /` for `host` with `authorization` (raw bytes allowed): status,
/// `WWW-Authenticate`, body.
async fn get(
    router: &Router,
    host: &str,
    authorization: Option<&[u8]>,
) -> (u16, Option<String>, String) {
    let mut request = router
        .http
        .get(format!("{}/", router.url))
        .header("Host", host);
    if let Some(value) = authorization {
        request = request.header("Authorization", HeaderValue::from_bytes(value).unwrap());
    }
    let response = request.send().await.unwrap();
    let status = response.status().as_u16();
    let challenge = response
        .headers()
        .get("www-authenticate")
        .map(|v| v.to_str().unwrap().to_string());
    (status, challenge, response.text().await.unwrap())
}

fn route<'a>(table: &'a Value, id: &str) -> &'a Value {
    table["apps"]
        .as_array()
        .unwrap()
        .iter()
        .find(|a| a["id"] == id)
        .unwrap_or_else(|| panic!("{id} in {table:#}"))
}

#[tokio::test]
async fn basic_auth_lets_only_valid_credentials_through_and_never_forwards_them() {
    let dir = tempfile::tempdir().unwrap();
    let users = dir.path().join("users");
    let hunter2 = ring::digest::digest(&ring::digest::SHA256, b"hunter2");
    std::fs::write(
        &users,
        format!(
            "# staff\nalice:s3cret:x\nbob:{{SHA256}}{}\n",
            BASE64.encode(hunter2.as_ref())
        ),
    )
    .unwrap();
    let file = users.to_str().unwrap();
    let pki = Pki::new();
    let leaf = pki.leaf(&["both.test"]);
    install(dir.path(), "both", &leaf);

    let one = echo_upstream("one").await;
    let marathon = FakeMarathon::start(vec![
        app(
            "/private",
            json!({"BATON_VHOST": "private.test", "BATON_AUTH_FILE": file,
                   "BATON_AUTH_REALM": "Staff \"only\"", "BATON_DENY": "127.0.0.5"}),
            &[("p.1", one)],
        ),
        app(
            "/both",
            json!({"BATON_VHOST": "both.test", "BATON_AUTH_FILE": file,
                   "BATON_REDIRECT_TO_HTTPS": "true"}),
            &[("b.1", one)],
        ),
        app(
            "/open",
            json!({"BATON_VHOST": "open.test"}),
            &[("o.1", one)],
        ),
    ])
    .await;
    let certs = baton_router::tls::Certificates::load(baton_router::tls::Settings {
        cert_dir: Some(dir.path().to_path_buf()),
        ..Default::default()
    })
    .unwrap();
    let router = Router::start_with(config(&marathon), Some(certs)).await;

    // No credentials: a challenge naming the realm.
    let (status, challenge, _) = get(&router, "private.test", None).await;
    assert_eq!(status, 401);
    assert_eq!(
        challenge.as_deref(),
        Some("Basic realm=\"Staff \\\"only\\\"\", charset=\"UTF-8\"")
    );
    // Wrong password, unknown user, malformed headers: 401, never 500.
    let huge = format!("Basic {}", "QUFB".repeat(5000));
    let refused: Vec<Vec<u8>> = vec![
        basic("alice:wrong").into_bytes(),
        basic("alice:s3cret").into_bytes(),
        basic("mallory:s3cret:x").into_bytes(),
        b"Bearer abc".to_vec(),
        b"Basic !!!".to_vec(),
        basic("alice").into_bytes(),
        b"Basic".to_vec(),
        huge.into_bytes(),
        b"Basic \xff\xfe".to_vec(),
    ];
    for value in &refused {
        let (status, challenge, body) = get(&router, "private.test", Some(value)).await;
        let shown = String::from_utf8_lossy(&value[..value.len().min(40)]).into_owned();
        assert_eq!(status, 401, "{shown}: {body}");
        assert!(challenge.is_some(), "{shown}");
    }
    // Valid: proxied, without the credentials.
    for user in ["alice:s3cret:x", "bob:hunter2"] {
        let (status, _, body) = get(&router, "private.test", Some(basic(user).as_bytes())).await;
        assert_eq!(status, 200, "{user}: {body}");
        assert!(body.starts_with("one\n"), "{body}");
        assert!(!body.contains("authorization"), "forwarded: {body}");
    }
    // A denied network is refused before credentials are looked at.
    let from_denied = reqwest::Client::builder()
        .no_proxy()
        .local_address(std::net::IpAddr::from([127, 0, 0, 5]))
        .build()
        .unwrap();
    let denied = from_denied
        .get(format!("{}/", router.url))
        .header("Host", "private.test")
        .header("Authorization", basic("alice:s3cret:x"))
        .send()
        .await
        .unwrap();
    assert_eq!(denied.status().as_u16(), 403);
    // An app without the label passes the client's Authorization on.
    let (status, _, body) = get(&router, "open.test", Some(basic("app:own").as_bytes())).await;
    assert_eq!(status, 200);
    assert!(
        body.contains(&format!("authorization: {}\n", basic("app:own"))),
        "{body}"
    );

    // Redirected to HTTPS before credentials are asked for...
    let redirect = reqwest::Client::builder()
        .no_proxy()
        .redirect(reqwest::redirect::Policy::none())
        .build()
        .unwrap()
        .get(format!("{}/", router.url))
        .header("Host", "both.test")
        .send()
        .await
        .unwrap();
    assert_eq!(redirect.status().as_u16(), 301);
    // ...and asked for over TLS.
    let mut client = TlsClient::connect(router.https.unwrap(), "both.test", "both.test", &pki)
        .await
        .unwrap();
    let (status, headers, _) = client.send("GET", "both.test", "/", &[]).await;
    assert_eq!(status, 401);
    assert!(
        headers["www-authenticate"]
            .to_str()
            .unwrap()
            .starts_with("Basic realm=\"Restricted\"")
    );
    let right = basic("bob:hunter2");
    let (status, _, body) = client
        .send("GET", "both.test", "/", &[("authorization", &right)])
        .await;
    assert_eq!(status, 200, "{body}");
    assert!(!body.contains("authorization"), "forwarded: {body}");
    assert!(body.contains("\nx-forwarded-proto: https\n"), "{body}");

    // What the table shows: the file's state, no secrets.
    let table = router.admin("/_router/table").await;
    let auth = &route(&table, "/private")["auth"];
    assert_eq!(auth["state"], "loaded", "{auth}");
    assert_eq!(auth["users"], 2, "{auth}");
    assert_eq!(auth["realm"], "Staff \"only\"");
    assert!(!table.to_string().contains("s3cret"));
    let stats = router.admin("/_router/stats").await;
    assert_eq!(
        stats["apps"]["/private"]["responses"]["4xx"], 11,
        "{stats:#}"
    );
    router.stop().await;
}

/// Replaces `path` whole with `text`.
fn replace(path: &Path, text: &str) {
    let aside = path.with_extension("new");
    std::fs::write(&aside, text).unwrap();
    std::fs::rename(&aside, path).unwrap();
}

#[tokio::test]
async fn a_missing_credentials_file_denies_everyone_and_its_changes_are_followed() {
    let dir = tempfile::tempdir().unwrap();
    let users = dir.path().join("users");
    let one = echo_upstream("one").await;
    let marathon = FakeMarathon::start(vec![app(
        "/private",
        json!({"BATON_VHOST": "private.test", "BATON_AUTH_FILE": users.to_str().unwrap()}),
        &[("p.1", one)],
    )])
    .await;
    let mut cfg = config(&marathon);
    cfg.auth_reload_interval = Duration::from_millis(50);
    let router = Router::start(cfg).await;
    let status_as = |user: &'static str| {
        let router = &router;
        async move { get(router, "private.test", Some(basic(user).as_bytes())).await }
    };
    let until = |user: &'static str, want: u16| async move {
        let deadline = tokio::time::Instant::now() + DEADLINE;
        loop {
            let (status, _, body) = status_as(user).await;
            if status == want {
                return body;
            }
            assert!(
                tokio::time::Instant::now() < deadline,
                "{user}: still {status} ({body}), want {want}"
            );
            tokio::time::sleep(Duration::from_millis(20)).await;
        }
    };

    // Missing: nobody gets in, whatever they send.
    let (status, challenge, body) = status_as("alice:one").await;
    assert_eq!(status, 503, "{body}");
    assert!(challenge.is_none());
    assert!(body.contains("credentials cannot be read"), "{body}");
    assert_eq!(get(&router, "private.test", None).await.0, 503);
    let table = router.admin("/_router/table").await;
    let auth = &route(&table, "/private")["auth"];
    assert_eq!(auth["state"], "failed", "{auth}");
    assert!(auth["error"].as_str().unwrap().contains("users"), "{auth}");

    // It appears; it changes; it goes.
    replace(&users, "alice:one\n");
    until("alice:one", 200).await;
    assert_eq!(status_as("alice:two").await.0, 401);
    replace(&users, "alice:two\n");
    until("alice:one", 401).await;
    assert_eq!(status_as("alice:two").await.0, 200);
    std::fs::remove_file(&users).unwrap();
    until("alice:two", 503).await;
    router.stop().await;
}
