//! TLS termination against the fake Marathon and loopback instances:
//! certificates chosen by SNI (per vhost, wildcard, the default for an
//! unknown or absent name), verified by a hyper + tokio-rustls client
//! against the test's own CA; a bad file skipped; reloads — by the
//! directory poller in-process, by SIGHUP to the binary — serving new
//! handshakes the new certificate while a connection opened before keeps
//! working; and `BATON_REDIRECT_TO_HTTPS` sending plain HTTP to HTTPS
//! while the same request over TLS is proxied.

use std::net::SocketAddr;
use std::path::Path;
use std::process::Stdio;
use std::sync::Arc;
use std::time::Duration;

use baton_router::tls::{Certificates, Settings};
use bytes::Bytes;
use http_body_util::{BodyExt, Full};
use hyper::body::Incoming;
use hyper::client::conn::http1::SendRequest;
use hyper::{Request, Response};
use hyper_util::rt::TokioIo;
use rustls::client::WebPkiServerVerifier;
use rustls::client::danger::{HandshakeSignatureValid, ServerCertVerified, ServerCertVerifier};
use rustls::pki_types::{CertificateDer, ServerName, UnixTime};
use rustls::{ClientConfig, DigitallySignedStruct, RootCertStore, SignatureScheme};
use serde_json::json;
use tokio_rustls::TlsConnector;

use super::proxy::{DEADLINE, FakeMarathon, Router, app, config, full, http_server};

/// A test certificate authority and the client's trust in it.
pub(crate) struct Pki {
    ca: rcgen::CertifiedIssuer<'static, rcgen::KeyPair>,
    roots: Arc<RootCertStore>,
}

/// A certificate issued by [`Pki`].
pub(crate) struct Leaf {
    cert_pem: String,
    key_pem: String,
    pub(crate) der: CertificateDer<'static>,
}

impl Pki {
    pub(crate) fn new() -> Pki {
        let mut params = rcgen::CertificateParams::new(Vec::<String>::new()).unwrap();
        params.is_ca = rcgen::IsCa::Ca(rcgen::BasicConstraints::Unconstrained);
        let ca = rcgen::CertifiedIssuer::self_signed(params, rcgen::KeyPair::generate().unwrap())
            .unwrap();
        let mut roots = RootCertStore::empty();
        roots.add(ca.der().clone()).unwrap();
        Pki {
            ca,
            roots: Arc::new(roots),
        }
    }

    /// A certificate for `names` (DNS names or IP addresses).
    pub(crate) fn leaf(&self, names: &[&str]) -> Leaf {
        let key = rcgen::KeyPair::generate().unwrap();
        let names: Vec<String> = names.iter().map(|n| n.to_string()).collect();
        let cert = rcgen::CertificateParams::new(names)
            .unwrap()
            .signed_by(&key, &self.ca)
            .unwrap();
        Leaf {
            cert_pem: cert.pem(),
            key_pem: key.serialize_pem(),
            der: cert.der().clone(),
        }
    }
}

/// Writes `<stem>.crt` and `<stem>.key` into `dir`, each replaced whole
/// (written aside, then renamed), as deployment tools do.
pub(crate) fn install(dir: &Path, stem: &str, leaf: &Leaf) {
    for (ext, text) in [("key", &leaf.key_pem), ("crt", &leaf.cert_pem)] {
        let aside = dir.join(format!(".{stem}.{ext}.new"));
        std::fs::write(&aside, text).unwrap();
        std::fs::rename(&aside, dir.join(format!("{stem}.{ext}"))).unwrap();
    }
}

/// Verifies the chain against the test CA and the certificate against
/// `expect` — whatever name was sent as SNI — so that a test can check
/// which certificate answered an unknown name.
#[derive(Debug)]
struct Expecting {
    inner: Arc<WebPkiServerVerifier>,
    expect: ServerName<'static>,
}

impl ServerCertVerifier for Expecting {
    fn verify_server_cert(
        &self,
        end_entity: &CertificateDer<'_>,
        intermediates: &[CertificateDer<'_>],
        _server_name: &ServerName<'_>,
        ocsp_response: &[u8],
        now: UnixTime,
    ) -> Result<ServerCertVerified, rustls::Error> {
        self.inner
            .verify_server_cert(end_entity, intermediates, &self.expect, ocsp_response, now)
    }

    fn verify_tls12_signature(
        &self,
        message: &[u8],
        cert: &CertificateDer<'_>,
        dss: &DigitallySignedStruct,
    ) -> Result<HandshakeSignatureValid, rustls::Error> {
        self.inner.verify_tls12_signature(message, cert, dss)
    }

    fn verify_tls13_signature(
        &self,
        message: &[u8],
        cert: &CertificateDer<'_>,
        dss: &DigitallySignedStruct,
    ) -> Result<HandshakeSignatureValid, rustls::Error> {
        self.inner.verify_tls13_signature(message, cert, dss)
    }

    fn supported_verify_schemes(&self) -> Vec<SignatureScheme> {
        self.inner.supported_verify_schemes()
    }
}

/// An HTTP/1.1 connection over TLS.
pub(crate) struct TlsClient {
    sender: SendRequest<Full<Bytes>>,
    /// The certificate the router presented.
    pub(crate) leaf: CertificateDer<'static>,
}

/// An answer: status, headers, body.
pub(crate) type Answer = (u16, hyper::HeaderMap, String);

impl TlsClient {
    /// Connects to `addr` sending `sni` as the server name (none when it
    /// is an IP address, as clients do), and verifies the certificate
    /// against `pki` for the name `expect`.
    pub(crate) async fn connect(
        addr: SocketAddr,
        sni: &str,
        expect: &str,
        pki: &Pki,
    ) -> Result<TlsClient, String> {
        let provider = Arc::new(rustls::crypto::ring::default_provider());
        let inner =
            WebPkiServerVerifier::builder_with_provider(pki.roots.clone(), provider.clone())
                .build()
                .unwrap();
        let verifier = Expecting {
            inner,
            expect: ServerName::try_from(expect.to_string()).unwrap(),
        };
        let config = ClientConfig::builder_with_provider(provider)
            .with_safe_default_protocol_versions()
            .unwrap()
            .dangerous()
            .with_custom_certificate_verifier(Arc::new(verifier))
            .with_no_client_auth();
        let tcp = tokio::net::TcpStream::connect(addr).await.unwrap();
        let name = ServerName::try_from(sni.to_string()).unwrap();
        let tls = tokio::time::timeout(
            DEADLINE,
            TlsConnector::from(Arc::new(config)).connect(name, tcp),
        )
        .await
        .expect("a handshake in time")
        .map_err(|e| e.to_string())?;
        let leaf = tls.get_ref().1.peer_certificates().unwrap()[0].clone();
        let (sender, connection) = hyper::client::conn::http1::handshake(TokioIo::new(tls))
            .await
            .unwrap();
        // Ends when the client (the sender) is dropped.
        tokio::spawn(connection);
        Ok(TlsClient { sender, leaf })
    }

    /// `method path` for `host` with `headers`, answered within the
    /// deadline.
    pub(crate) async fn send(
        &mut self,
        method: &str,
        host: &str,
        path: &str,
        headers: &[(&str, &str)],
    ) -> Answer {
        let mut request = Request::builder()
            .method(method)
            .uri(path)
            .header("host", host);
        for (name, value) in headers {
            request = request.header(*name, *value);
        }
        let request = request.body(Full::new(Bytes::new())).unwrap();
        let response = tokio::time::timeout(DEADLINE, self.sender.send_request(request))
            .await
            .expect("an answer in time")
            .unwrap();
        let status = response.status().as_u16();
        let headers = response.headers().clone();
        let body = response.into_body().collect().await.unwrap().to_bytes();
        (status, headers, String::from_utf8_lossy(&body).into_owned())
    }
}

/// An instance answering `name`, then the request's headers, one
/// `name: value` line each (names lower case).
pub(crate) async fn echo_upstream(name: &'static str) -> SocketAddr {
    http_server(move |req: Request<Incoming>| async move {
        let mut text = format!("{name}\n");
        for (header, value) in req.headers() {
            text.push_str(&format!("{header}: {}\n", value.to_str().unwrap_or("?")));
        }
        Response::new(full(text))
    })
    .await
}

/// Loads `dir` (and the default, if any) with the given poll interval.
fn certificates(dir: &Path, default: Option<&Path>, reload: Duration) -> Arc<Certificates> {
    Certificates::load(Settings {
        cert_dir: Some(dir.to_path_buf()),
        default_cert: default.map(Path::to_path_buf),
        default_key: None,
        reload_interval: reload,
    })
    .unwrap()
}

/// Writes `leaf` as one file with its key (the default certificate).
fn install_combined(path: &Path, leaf: &Leaf) {
    std::fs::write(path, format!("{}{}", leaf.cert_pem, leaf.key_pem)).unwrap();
}

/// Polls new handshakes with `sni` until one is answered with `want`.
async fn until_served(addr: SocketAddr, sni: &str, pki: &Pki, want: &CertificateDer<'_>) {
    let deadline = tokio::time::Instant::now() + DEADLINE;
    loop {
        if let Ok(client) = TlsClient::connect(addr, sni, sni, pki).await
            && client.leaf == *want
        {
            return;
        }
        assert!(
            tokio::time::Instant::now() < deadline,
            "{sni}: the new certificate is not served"
        );
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
}

#[tokio::test]
async fn each_vhost_gets_its_certificate_by_sni_and_other_names_get_the_default() {
    let pki = Pki::new();
    let dir = tempfile::tempdir().unwrap();
    let (a, b) = (pki.leaf(&["a.example.com"]), pki.leaf(&["b.example.com"]));
    let wild = pki.leaf(&["*.wild.example.com"]);
    let default = pki.leaf(&["default.test", "127.0.0.1"]);
    install(dir.path(), "a", &a);
    install(dir.path(), "b", &b);
    install(dir.path(), "wild", &wild);
    // The default lives outside the directory, key and chain in one file.
    let elsewhere = tempfile::tempdir().unwrap();
    let default_file = elsewhere.path().join("default.pem");
    install_combined(&default_file, &default);

    let (one, two) = (echo_upstream("one").await, echo_upstream("two").await);
    let marathon = FakeMarathon::start(vec![
        app(
            "/a",
            json!({"BATON_VHOST": "a.example.com"}),
            &[("a.1", one)],
        ),
        app(
            "/b",
            json!({"BATON_VHOST": "b.example.com"}),
            &[("b.1", two)],
        ),
    ])
    .await;
    let certs = certificates(dir.path(), Some(&default_file), Duration::ZERO);
    let router = Router::start_with(config(&marathon), Some(certs)).await;
    let https = router.https.unwrap();

    for (sni, leaf, body) in [("a.example.com", &a, "one"), ("b.example.com", &b, "two")] {
        let mut client = TlsClient::connect(https, sni, sni, &pki).await.unwrap();
        assert!(client.leaf == leaf.der, "{sni}: its own certificate");
        let (status, _, text) = client.send("GET", sni, "/x?y=1", &[]).await;
        assert_eq!(status, 200, "{text}");
        assert!(text.starts_with(&format!("{body}\n")), "{text}");
        // Proxied like plain requests, marked as HTTPS (whatever the
        // client claims).
        assert!(text.contains("\nx-forwarded-proto: https\n"), "{text}");
        assert!(text.contains("\nx-forwarded-for: 127.0.0.1\n"), "{text}");
        let (_, _, text) = client
            .send("GET", sni, "/", &[("x-forwarded-proto", "http")])
            .await;
        assert_eq!(text.matches("x-forwarded-proto").count(), 1, "{text}");
        assert!(text.contains("\nx-forwarded-proto: https\n"), "{text}");
    }
    // A wildcard serves one label under it.
    let client = TlsClient::connect(https, "x.wild.example.com", "x.wild.example.com", &pki)
        .await
        .unwrap();
    assert!(client.leaf == wild.der);
    // An unknown name, and no name at all: the default.
    let client = TlsClient::connect(https, "unknown.test", "default.test", &pki)
        .await
        .unwrap();
    assert!(client.leaf == default.der, "unknown SNI: the default");
    let client = TlsClient::connect(https, "127.0.0.1", "default.test", &pki)
        .await
        .unwrap();
    assert!(client.leaf == default.der, "no SNI: the default");
    // The names' own certificates do not verify for another name.
    let wrong = TlsClient::connect(https, "a.example.com", "b.example.com", &pki).await;
    assert!(wrong.is_err(), "the client really verifies");
    router.stop().await;
}

#[tokio::test]
async fn a_bad_certificate_file_is_skipped_and_the_good_ones_are_still_served() {
    let pki = Pki::new();
    let dir = tempfile::tempdir().unwrap();
    let (a, b) = (pki.leaf(&["a.example.com"]), pki.leaf(&["b.example.com"]));
    install(dir.path(), "a", &a);
    install(dir.path(), "b", &b);
    // Garbage, a certificate whose key is another's, a lonely key.
    std::fs::write(
        dir.path().join("junk.crt"),
        "-----BEGIN CERTIFICATE-----\n!!\n",
    )
    .unwrap();
    std::fs::write(dir.path().join("junk.key"), "nothing").unwrap();
    let c = pki.leaf(&["c.example.com"]);
    std::fs::write(dir.path().join("c.crt"), &c.cert_pem).unwrap();
    std::fs::write(dir.path().join("c.key"), &a.key_pem).unwrap();
    std::fs::write(dir.path().join("orphan.key"), &a.key_pem).unwrap();

    let one = echo_upstream("one").await;
    let marathon = FakeMarathon::start(vec![app(
        "/a",
        json!({"BATON_VHOST": "a.example.com"}),
        &[("a.1", one)],
    )])
    .await;
    let certs = certificates(dir.path(), None, Duration::from_millis(50));
    let router = Router::start_with(config(&marathon), Some(certs.clone())).await;
    let https = router.https.unwrap();
    for (sni, leaf) in [("a.example.com", &a), ("b.example.com", &b)] {
        let client = TlsClient::connect(https, sni, sni, &pki).await.unwrap();
        assert!(client.leaf == leaf.der, "{sni}");
    }
    // No certificate and no default for c: the handshake fails.
    let c_client = TlsClient::connect(https, "c.example.com", "c.example.com", &pki).await;
    assert!(c_client.is_err(), "c's pair does not load");

    // b's files turn bad: b keeps its previous certificate; a's new one
    // is taken at the same reload.
    std::fs::write(dir.path().join("b.crt"), "truncated").unwrap();
    let a2 = pki.leaf(&["a.example.com"]);
    install(dir.path(), "a", &a2);
    until_served(https, "a.example.com", &pki, &a2.der).await;
    let client = TlsClient::connect(https, "b.example.com", "b.example.com", &pki)
        .await
        .unwrap();
    assert!(client.leaf == b.der, "the previous good b stays");
    let summary = certs.reload();
    assert_eq!(
        summary.names,
        ["a.example.com", "b.example.com"],
        "{summary:?}"
    );
    assert_eq!(summary.problems.len(), 4, "{summary:?}");
    router.stop().await;
}

#[tokio::test]
async fn new_handshakes_get_replaced_certificates_while_open_connections_keep_working() {
    let pki = Pki::new();
    let dir = tempfile::tempdir().unwrap();
    let old = pki.leaf(&["a.example.com"]);
    install(dir.path(), "a", &old);
    let one = echo_upstream("one").await;
    let marathon = FakeMarathon::start(vec![app(
        "/a",
        json!({"BATON_VHOST": "a.example.com"}),
        &[("a.1", one)],
    )])
    .await;
    let certs = certificates(dir.path(), None, Duration::from_millis(50));
    let router = Router::start_with(config(&marathon), Some(certs)).await;
    let https = router.https.unwrap();

    let mut before = TlsClient::connect(https, "a.example.com", "a.example.com", &pki)
        .await
        .unwrap();
    assert!(before.leaf == old.der);
    assert_eq!(before.send("GET", "a.example.com", "/", &[]).await.0, 200);

    let new = pki.leaf(&["a.example.com"]);
    install(dir.path(), "a", &new);
    until_served(https, "a.example.com", &pki, &new.der).await;

    // The connection from before the reload still serves requests.
    for _ in 0..3 {
        let (status, _, text) = before.send("GET", "a.example.com", "/", &[]).await;
        assert_eq!(status, 200, "{text}");
        assert!(text.starts_with("one\n"), "{text}");
    }
    router.stop().await;
}

#[tokio::test]
async fn plain_http_to_an_app_asking_for_https_is_redirected_and_tls_is_proxied() {
    let pki = Pki::new();
    let dir = tempfile::tempdir().unwrap();
    let leaf = pki.leaf(&["secure.test", "legacy.test"]);
    install(dir.path(), "secure", &leaf);
    let one = echo_upstream("one").await;
    let marathon = FakeMarathon::start(vec![
        app(
            "/secure",
            json!({"BATON_VHOST": "secure.test", "BATON_REDIRECT_TO_HTTPS": "true"}),
            &[("s.1", one)],
        ),
        app(
            "/legacy",
            json!({"HAPROXY_0_VHOST": "legacy.test", "HAPROXY_0_REDIRECT_TO_HTTPS": "true"}),
            &[("l.1", one)],
        ),
        app(
            "/open",
            json!({"BATON_VHOST": "open.test"}),
            &[("o.1", one)],
        ),
    ])
    .await;
    let mut cfg = config(&marathon);
    cfg.https_port = 8443;
    let certs = certificates(dir.path(), None, Duration::ZERO);
    let router = Router::start_with(cfg, Some(certs)).await;
    let http = reqwest::Client::builder()
        .no_proxy()
        .redirect(reqwest::redirect::Policy::none())
        .build()
        .unwrap();
    let send = |method: &str, host: &str, path: &str| {
        let request = http
            .request(method.parse().unwrap(), format!("{}{path}", router.url))
            .header("Host", host);
        async move {
            let r = request.send().await.unwrap();
            let location = r
                .headers()
                .get("location")
                .map(|l| l.to_str().unwrap().to_string());
            (r.status().as_u16(), location)
        }
    };
    assert_eq!(
        send("GET", "secure.test:8000", "/a/b?x=1&y=%20").await,
        (301, Some("https://secure.test:8443/a/b?x=1&y=%20".into()))
    );
    assert_eq!(
        send("HEAD", "Secure.Test", "/").await,
        (301, Some("https://secure.test:8443/".into()))
    );
    assert_eq!(
        send("POST", "legacy.test", "/form").await,
        (308, Some("https://legacy.test:8443/form".into())),
        "a method with a body keeps it"
    );
    assert_eq!(
        send("GET", "open.test", "/").await,
        (200, None),
        "unlabelled"
    );

    // The same requests over TLS reach the app.
    let mut client = TlsClient::connect(router.https.unwrap(), "secure.test", "secure.test", &pki)
        .await
        .unwrap();
    let (status, headers, text) = client.send("GET", "secure.test", "/a/b?x=1", &[]).await;
    assert_eq!(status, 200, "{text}");
    assert!(headers.get("location").is_none());
    assert!(text.contains("\nx-forwarded-proto: https\n"), "{text}");
    let (status, _, _) = client.send("POST", "legacy.test", "/form", &[]).await;
    assert_eq!(status, 200);
    let stats = router.admin("/_router/stats").await;
    assert_eq!(stats["apps"]["/secure"]["responses"]["3xx"], 2, "{stats:#}");
    let table = router.admin("/_router/table").await;
    let secure = table["apps"]
        .as_array()
        .unwrap()
        .iter()
        .find(|a| a["id"] == "/secure")
        .unwrap();
    assert_eq!(secure["redirectToHttps"], true);
    router.stop().await;
}

/// The binary, started and stopped by the test: SIGHUP reloads its
/// certificates (the poller is off), the flags and their environment
/// names are wired, and redirects name the TLS listener's port.
#[tokio::test]
async fn sighup_makes_the_binary_serve_replaced_certificates() {
    use nix::sys::signal::{Signal, kill};
    use nix::unistd::Pid;

    let pki = Pki::new();
    let dir = tempfile::tempdir().unwrap();
    let certs_dir = dir.path().join("certs");
    std::fs::create_dir(&certs_dir).unwrap();
    let old = pki.leaf(&["a.example.com"]);
    install(&certs_dir, "a", &old);
    let one = echo_upstream("one").await;
    let marathon = FakeMarathon::start(vec![app(
        "/a",
        json!({"BATON_VHOST": "a.example.com", "BATON_REDIRECT_TO_HTTPS": "true"}),
        &[("a.1", one)],
    )])
    .await;
    let free = || {
        std::net::TcpListener::bind("127.0.0.1:0")
            .unwrap()
            .local_addr()
            .unwrap()
    };
    let (http_addr, https_addr) = (free(), free());
    let log = dir.path().join("router.log");
    let out = std::fs::File::create(&log).unwrap();
    let mut child = tokio::process::Command::new(env!("CARGO_BIN_EXE_baton-router"))
        .args(["--marathon", &marathon.url])
        .args(["--listen", &http_addr.to_string()])
        .args(["--tls_listen", &https_addr.to_string()])
        .env("BATON_ROUTER_TLS_CERT_DIR", &certs_dir)
        .args(["--tls-reload-interval", "0s"])
        .args(["--workers", "1"])
        .env("RUST_LOG", "info")
        .stdin(Stdio::null())
        .stdout(out.try_clone().unwrap())
        .stderr(out)
        .kill_on_drop(true)
        .spawn()
        .unwrap();
    let pid = Pid::from_raw(child.id().unwrap() as i32);
    let log_text = || std::fs::read_to_string(&log).unwrap_or_default();

    // Ready once its table is loaded.
    let http = reqwest::Client::builder()
        .no_proxy()
        .redirect(reqwest::redirect::Policy::none())
        .build()
        .unwrap();
    let deadline = tokio::time::Instant::now() + DEADLINE;
    loop {
        let table = http
            .get(format!("http://{http_addr}/_router/table"))
            .send()
            .await;
        if let Ok(table) = table
            && let Ok(table) = table.json::<serde_json::Value>().await
            && table["loaded"] == true
        {
            break;
        }
        assert!(
            child.try_wait().unwrap().is_none(),
            "exited:\n{}",
            log_text()
        );
        assert!(
            tokio::time::Instant::now() < deadline,
            "not ready:\n{}",
            log_text()
        );
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    let redirect = http
        .get(format!("http://{http_addr}/p?q"))
        .header("Host", "a.example.com")
        .send()
        .await
        .unwrap();
    assert_eq!(redirect.status().as_u16(), 301);
    assert_eq!(
        redirect.headers()["location"],
        format!("https://a.example.com:{}/p?q", https_addr.port()).as_str()
    );

    let mut before = TlsClient::connect(https_addr, "a.example.com", "a.example.com", &pki)
        .await
        .unwrap();
    assert!(before.leaf == old.der);
    let new = pki.leaf(&["a.example.com"]);
    install(&certs_dir, "a", &new);
    // Not polled: still the old one until the signal.
    let still = TlsClient::connect(https_addr, "a.example.com", "a.example.com", &pki)
        .await
        .unwrap();
    assert!(still.leaf == old.der, "reloaded without SIGHUP");
    kill(pid, Signal::SIGHUP).unwrap();
    until_served(https_addr, "a.example.com", &pki, &new.der).await;
    let (status, _, text) = before.send("GET", "a.example.com", "/", &[]).await;
    assert_eq!((status, text.lines().next()), (200, Some("one")), "{text}");
    drop(before);

    kill(pid, Signal::SIGTERM).unwrap();
    let status = tokio::time::timeout(DEADLINE, child.wait())
        .await
        .expect("the router stops")
        .unwrap();
    assert!(status.success(), "{status}:\n{}", log_text());
    let log = log_text();
    assert!(
        log.contains("SIGHUP: reloading the TLS certificates"),
        "{log}"
    );
}
