//! HTTP/2 towards clients — prior knowledge (`curl --http2-prior-knowledge`)
//! on the plain listener and ALPN `h2` on the TLS one, proxied to HTTP/1.1
//! instances — and gRPC passed through to instances that speak HTTP/2: a
//! standard health check (`grpc.health.v1.Health/Check`), its trailers
//! included.

use std::convert::Infallible;
use std::net::SocketAddr;
use std::time::Duration;

use bytes::Bytes;
use http_body_util::{BodyExt, Full, StreamBody};
use hyper::body::{Frame, Incoming};
use hyper::header::{CONTENT_TYPE, HeaderMap, HeaderValue};
use hyper::{Request, Response};
use hyper_util::rt::{TokioExecutor, TokioIo};
use serde_json::json;
use tokio::net::TcpListener;

use super::proxy::{DEADLINE, FakeMarathon, Router, app, config, upstream};
use super::tls::{Pki, install};

/// Runs curl with `args`; its standard output. curl comes with the
/// machine (Debian's, with nghttp2); the test fails without it.
async fn curl(args: &[&str]) -> (bool, String) {
    let output = tokio::time::timeout(
        DEADLINE,
        tokio::process::Command::new("curl")
            .args(["-sS", "--max-time", "5"])
            .args(args)
            .kill_on_drop(true)
            .output(),
    )
    .await
    .expect("curl ends in time")
    .expect("curl runs (apt-get install curl)");
    (
        output.status.success(),
        String::from_utf8_lossy(&output.stdout).into_owned(),
    )
}

#[tokio::test]
async fn curl_speaks_http2_with_prior_knowledge_and_gets_the_http1_instances_answer() {
    let web = upstream("web").await;
    let marathon = FakeMarathon::start(vec![app(
        "/web",
        json!({"BATON_VHOST": "web.test"}),
        &[("w1", web)],
    )])
    .await;
    let router = Router::start(config(&marathon)).await;
    let (ok, out) = curl(&[
        "--http2-prior-knowledge",
        "-H",
        "Host: web.test",
        "-w",
        " %{http_version}",
        &format!("{}/", router.url),
    ])
    .await;
    assert!(ok, "{out}");
    assert_eq!(out, "web 2");
    // HTTP/1.1 clients are served as before on the same listener.
    let (ok, out) = curl(&[
        "-H",
        "Host: web.test",
        "-w",
        " %{http_version}",
        &format!("{}/", router.url),
    ])
    .await;
    assert!(ok, "{out}");
    assert_eq!(out, "web 1.1");
    router.stop().await;

    // Turned off: HTTP/1.1 only.
    let mut http1_only = config(&marathon);
    http1_only.http2 = false;
    let router = Router::start(http1_only).await;
    let (ok, _) = curl(&[
        "--http2-prior-knowledge",
        "-H",
        "Host: web.test",
        &format!("{}/", router.url),
    ])
    .await;
    assert!(!ok, "prior knowledge refused without HTTP/2");
    router.stop().await;
}

#[tokio::test]
async fn tls_clients_get_http2_by_alpn() {
    let pki = Pki::new();
    let dir = tempfile::tempdir().unwrap();
    install(dir.path(), "web", &pki.leaf(&["web.test"]));
    let web = upstream("web").await;
    let marathon = FakeMarathon::start(vec![app(
        "/web",
        json!({"BATON_VHOST": "web.test"}),
        &[("w1", web)],
    )])
    .await;
    let certs = baton_router::tls::Certificates::load(baton_router::tls::Settings {
        cert_dir: Some(dir.path().to_path_buf()),
        default_cert: None,
        default_key: None,
        reload_interval: Duration::ZERO,
    })
    .unwrap();
    let router = Router::start_with(config(&marathon), Some(certs)).await;
    let port = router.https.unwrap().port();
    let resolve = format!("web.test:{port}:127.0.0.1");
    let url = format!("https://web.test:{port}/");
    let (ok, out) = curl(&[
        "-k",
        "--http2",
        "--resolve",
        &resolve,
        "-w",
        " %{http_version}",
        &url,
    ])
    .await;
    assert!(ok, "{out}");
    assert_eq!(out, "web 2");
    let (ok, out) = curl(&[
        "-k",
        "--http1.1",
        "--resolve",
        &resolve,
        "-w",
        " %{http_version}",
        &url,
    ])
    .await;
    assert!(ok, "{out}");
    assert_eq!(out, "web 1.1");
    router.stop().await;
}

/// A gRPC server in cleartext HTTP/2 implementing the standard health
/// check: `SERVING` (1) for any service, `grpc-status: 0` in trailers; it
/// also says which `:authority` and `te` it got, in response headers.
async fn grpc_health_server() -> SocketAddr {
    let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = listener.local_addr().unwrap();
    tokio::spawn(async move {
        while let Ok((tcp, _)) = listener.accept().await {
            tokio::spawn(async move {
                let service = hyper::service::service_fn(|req: Request<Incoming>| async move {
                    let path = req.uri().path().to_string();
                    let authority = req
                        .uri()
                        .authority()
                        .map(|a| a.to_string())
                        .unwrap_or_default();
                    let te = req.headers().get("te").cloned();
                    let forwarded = ["x-forwarded-for", "x-forwarded-host", "x-forwarded-proto"]
                        .map(|h| req.headers().get(h).cloned());
                    let body = req
                        .into_body()
                        .collect()
                        .await
                        .map(|b| b.to_bytes())
                        .unwrap_or_default();
                    // One length-prefixed message: flag 0, length, bytes.
                    let framed_ok = body.len() >= 5 && body[0] == 0;
                    let mut trailers = HeaderMap::new();
                    let status = if path == "/grpc.health.v1.Health/Check" && framed_ok {
                        "0"
                    } else {
                        "12"
                    };
                    trailers.insert("grpc-status", HeaderValue::from_static(status));
                    // HealthCheckResponse { status: SERVING }: field 1, varint 1.
                    let message = Bytes::from_static(&[0, 0, 0, 0, 2, 0x08, 0x01]);
                    let frames = futures::stream::iter([
                        Ok::<_, Infallible>(Frame::data(message)),
                        Ok(Frame::trailers(trailers)),
                    ]);
                    let mut response = Response::new(StreamBody::new(frames));
                    response
                        .headers_mut()
                        .insert(CONTENT_TYPE, HeaderValue::from_static("application/grpc"));
                    response.headers_mut().insert(
                        "x-seen-authority",
                        HeaderValue::from_str(&authority).unwrap(),
                    );
                    for (name, value) in ["x-seen-for", "x-seen-host", "x-seen-proto"]
                        .into_iter()
                        .zip(forwarded)
                    {
                        if let Some(value) = value {
                            response.headers_mut().insert(name, value);
                        }
                    }
                    if let Some(te) = te {
                        response.headers_mut().insert("x-seen-te", te);
                    }
                    Ok::<_, Infallible>(response)
                });
                let _ = hyper::server::conn::http2::Builder::new(TokioExecutor::new())
                    .serve_connection(TokioIo::new(tcp), service)
                    .await;
            });
        }
    });
    addr
}

#[tokio::test]
async fn a_grpc_health_check_passes_through_the_router_with_its_trailers() {
    let grpc = grpc_health_server().await;
    let marathon = FakeMarathon::start(vec![app(
        "/grpc",
        json!({"BATON_VHOST": "grpc.test", "BATON_BACKEND_PROTOCOL": "grpc"}),
        &[("g1", grpc)],
    )])
    .await;
    let router = Router::start(config(&marathon)).await;
    let table = router.admin("/_router/table").await;
    assert_eq!(table["apps"][0]["backendProtocol"], "h2");

    // A gRPC client: HTTP/2 with prior knowledge to the router.
    let address = router.url.strip_prefix("http://").unwrap().to_string();
    let tcp = tokio::net::TcpStream::connect(&address).await.unwrap();
    let (mut sender, connection) =
        hyper::client::conn::http2::handshake(TokioExecutor::new(), TokioIo::new(tcp))
            .await
            .unwrap();
    let driver = tokio::spawn(connection);
    for _ in 0..3 {
        // HealthCheckRequest { service: "" }: an empty message.
        let request = Request::post("http://grpc.test/grpc.health.v1.Health/Check")
            .header(CONTENT_TYPE, "application/grpc")
            .header("te", "trailers")
            .body(Full::new(Bytes::from_static(&[0, 0, 0, 0, 0])))
            .unwrap();
        let response = tokio::time::timeout(DEADLINE, sender.send_request(request))
            .await
            .expect("an answer in time")
            .unwrap();
        assert_eq!(response.status(), 200);
        assert_eq!(response.headers()[CONTENT_TYPE], "application/grpc");
        assert_eq!(
            response.headers()["x-seen-authority"],
            "grpc.test",
            "the client's authority"
        );
        assert_eq!(response.headers()["x-seen-te"], "trailers");
        // Forwarded as HTTP/1.1 instances see it.
        assert_eq!(response.headers()["x-seen-for"], "127.0.0.1");
        assert_eq!(response.headers()["x-seen-host"], "grpc.test");
        assert_eq!(response.headers()["x-seen-proto"], "http");
        let collected = tokio::time::timeout(DEADLINE, response.into_body().collect())
            .await
            .expect("the body in time")
            .unwrap();
        let trailers = collected
            .trailers()
            .cloned()
            .expect("trailers passed through");
        assert_eq!(trailers["grpc-status"], "0");
        assert_eq!(
            &collected.to_bytes()[..],
            &[0, 0, 0, 0, 2, 0x08, 0x01],
            "SERVING"
        );
    }
    let stats = router.admin("/_router/stats").await;
    assert_eq!(stats["apps"]["/grpc"]["requests"], 3, "{stats}");
    driver.abort();
    router.stop().await;
}

#[tokio::test]
async fn a_request_for_a_sleeping_grpc_app_wakes_it() {
    let marathon = FakeMarathon::start(vec![app(
        "/nap",
        json!({"BATON_VHOST": "nap.test", "BATON_BACKEND_PROTOCOL": "grpc",
               "BATON_SLEEP_AFTER": "1h", "BATON_WAKE_TIMEOUT": "300ms",
               "BATON_SLEEPING": "1"}),
        &[],
    )])
    .await;
    let router = Router::start(config(&marathon)).await;
    let response = router
        .http
        .get(format!("{}/", router.url))
        .header("Host", "nap.test")
        .send()
        .await
        .unwrap();
    // Asked to wake (one PUT), held, and answered as still starting when
    // no instance came in time.
    assert_eq!(response.status().as_u16(), 503);
    assert!(response.text().await.unwrap().contains("starting"));
    let puts = marathon.puts.lock().unwrap().clone();
    assert_eq!(puts.len(), 1, "{puts:?}");
    assert_eq!(puts[0].0, "/v2/apps/nap");
    assert_eq!(puts[0].1["instances"], 1);
    router.stop().await;
}
