//! The runner against real loopback servers, with 50 ms "seconds"; HTTPS
//! ones present a self-signed certificate made at test time. These run on
//! real time (real sockets), so they read the real clock.
#![allow(clippy::disallowed_methods)]

use std::sync::Arc;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::time::Duration;

use axum::Router;
use axum::extract::State;
use axum::http::StatusCode as AxumStatus;
use axum::routing::get;
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::TcpListener;
use tokio::sync::mpsc;
use tokio::task::JoinSet;
use tokio::time::Instant;
use tokio_util::sync::CancellationToken;
use tokio_util::task::AbortOnDropHandle;

use super::*;
use crate::health::test_support::check;
use crate::state::app::{AppDefinition, PathId, Timestamp};

const SECOND: Duration = Duration::from_millis(50);
const DEADLINE: Duration = Duration::from_secs(10);

fn options(max_concurrent: usize) -> Options {
    Options {
        second: SECOND,
        ..Options::new(max_concurrent)
    }
}

/// A target probed every "second" (50 ms), first after one.
fn target(task_id: &str, port: u16, protocol: HealthCheckProtocol) -> Target {
    Target {
        task_id: task_id.into(),
        instance_id: format!("{task_id}-instance"),
        app_id: PathId::parse("/app", &PathId::root()).unwrap(),
        host: "127.0.0.1".into(),
        port,
        check_index: 0,
        check: HealthCheck {
            path: protocol.is_http().then(|| "/health".into()),
            interval_seconds: 1,
            ..check(protocol)
        },
        started_at: Timestamp::now(),
    }
}

/// The next result matching `wanted`, failing the test after `deadline`.
async fn next_where(
    rx: &mut mpsc::Receiver<HealthResult>,
    deadline: Instant,
    what: &str,
    mut wanted: impl FnMut(&HealthResult) -> bool,
) -> HealthResult {
    loop {
        match tokio::time::timeout_at(deadline, rx.recv()).await {
            Ok(Some(r)) if wanted(&r) => return r,
            Ok(Some(_)) => {}
            Ok(None) => panic!("result channel closed while waiting for {what}"),
            Err(_) => panic!("no result for {what} before the deadline"),
        }
    }
}

/// An HTTP server whose `/health` answers 200 for the first `healthy`
/// requests, then 500; it counts requests.
async fn http_server(healthy: usize) -> (u16, Arc<AtomicUsize>) {
    let hits = Arc::new(AtomicUsize::new(0));
    let app = Router::new()
        .route(
            "/health",
            get(move |State(hits): State<Arc<AtomicUsize>>| async move {
                if hits.fetch_add(1, Ordering::SeqCst) < healthy {
                    AxumStatus::OK
                } else {
                    AxumStatus::INTERNAL_SERVER_ERROR
                }
            }),
        )
        .with_state(Arc::clone(&hits));
    let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
    let port = listener.local_addr().unwrap().port();
    tokio::spawn(async move { axum::serve(listener, app).await });
    (port, hits)
}

/// An HTTPS server, stopped (with its connections) when the handle is
/// dropped. Its certificate is self-signed and for `localhost`, while probes
/// go to 127.0.0.1: both would fail verification. Request `n` (from 0) gets
/// `answers[n]`, or the last one, as `(status, text/plain body)`; it counts
/// requests.
async fn https_server(
    answers: Vec<(u16, &'static str)>,
) -> (u16, Arc<AtomicUsize>, AbortOnDropHandle<()>) {
    use rustls::pki_types::{PrivateKeyDer, PrivatePkcs8KeyDer};
    assert!(!answers.is_empty());
    let made = rcgen::generate_simple_self_signed(vec!["localhost".to_string()]).unwrap();
    let key = PrivateKeyDer::Pkcs8(PrivatePkcs8KeyDer::from(made.signing_key.serialize_der()));
    let config = rustls::ServerConfig::builder_with_provider(Arc::new(
        rustls::crypto::ring::default_provider(),
    ))
    .with_safe_default_protocol_versions()
    .unwrap()
    .with_no_client_auth()
    .with_single_cert(vec![made.cert.der().clone()], key)
    .unwrap();
    let acceptor = tokio_rustls::TlsAcceptor::from(Arc::new(config));
    let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
    let port = listener.local_addr().unwrap().port();
    let hits = Arc::new(AtomicUsize::new(0));
    let counted = Arc::clone(&hits);
    let answers = Arc::new(answers);
    let server = tokio::spawn(async move {
        // Dropped with the server: its connections end too.
        let mut connections = JoinSet::new();
        while let Ok((socket, _)) = listener.accept().await {
            while connections.try_join_next().is_some() {}
            let (acceptor, counted, answers) =
                (acceptor.clone(), Arc::clone(&counted), Arc::clone(&answers));
            connections.spawn(async move {
                let Ok(mut tls) = acceptor.accept(socket).await else {
                    return;
                };
                let mut request = Vec::new();
                let mut buf = [0u8; 1024];
                while !request.windows(4).any(|w| w == b"\r\n\r\n") {
                    match tls.read(&mut buf).await {
                        Ok(0) | Err(_) => return,
                        Ok(n) => request.extend_from_slice(&buf[..n]),
                    }
                }
                let n = counted.fetch_add(1, Ordering::SeqCst);
                let (code, body) = answers[n.min(answers.len() - 1)];
                let reason = StatusCode::from_u16(code)
                    .unwrap()
                    .canonical_reason()
                    .unwrap_or("");
                let answer = format!(
                    "HTTP/1.1 {code} {reason}\r\ncontent-type: text/plain; charset=utf-8\r\n\
                     content-length: {}\r\nconnection: close\r\n\r\n{body}",
                    body.len()
                );
                let _ = tls.write_all(answer.as_bytes()).await;
                let _ = tls.shutdown().await;
            });
        }
    });
    (port, hits, AbortOnDropHandle::new(server))
}

/// A port nothing listens on.
async fn closed_port() -> u16 {
    let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
    listener.local_addr().unwrap().port()
}

#[test]
fn the_first_probe_comes_after_the_interval_but_at_most_five_seconds() {
    let s = Duration::from_secs(1);
    let hc = check(HealthCheckProtocol::Http);
    assert_eq!(
        Schedule::of(&hc, s),
        Schedule {
            first: Duration::from_secs(5),
            interval: Duration::from_secs(60),
            timeout: Duration::from_secs(20),
        }
    );
    let fast = HealthCheck {
        interval_seconds: 2,
        ..hc.clone()
    };
    assert_eq!(Schedule::of(&fast, s).first, Duration::from_secs(2));
    let zero = HealthCheck {
        interval_seconds: 0,
        timeout_seconds: 0,
        ..hc
    };
    let z = Schedule::of(&zero, s);
    assert_eq!((z.first, z.interval, z.timeout), (s, s, s));
}

#[test]
fn http_statuses_are_judged_as_marathon_does() {
    let pass = |code: u16, ignore| http_outcome(StatusCode::from_u16(code).unwrap(), ignore);
    for code in [200, 204, 301, 302, 399] {
        assert!(matches!(pass(code, false), Some(Ok(()))), "{code}");
    }
    for code in [101, 400, 404, 500, 503] {
        assert!(matches!(pass(code, false), Some(Err(_))), "{code}");
    }
    assert!(pass(101, true).is_none(), "an ignored 1xx is no verdict");
    assert!(matches!(pass(500, true), Some(Err(_))));
    let cause = pass(500, false).unwrap().unwrap_err().to_string();
    assert_eq!(cause, "500 Internal Server Error");
}

#[test]
fn urls_are_absolute_and_bracket_ipv6_hosts() {
    assert_eq!(http_url(false, "h", 80, None), "http://h:80/");
    assert_eq!(
        http_url(false, "h", 80, Some("health")),
        "http://h:80/health"
    );
    assert_eq!(
        http_url(false, "h", 80, Some("/a?b=c")),
        "http://h:80/a?b=c"
    );
    assert_eq!(http_url(false, "::1", 8, Some("/")), "http://[::1]:8/");
    assert_eq!(http_url(true, "::1", 443, Some("/")), "https://[::1]:443/");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_http_target_turns_unhealthy_when_its_server_answers_500() {
    let (port, _) = http_server(2).await;
    let (checker, mut rx) = HealthChecker::spawn_with(options(8), CancellationToken::new());
    checker.set_targets(vec![target("web", port, HealthCheckProtocol::Http)]);
    let deadline = Instant::now() + DEADLINE;

    let up = next_where(&mut rx, deadline, "a pass", |_| true).await;
    assert_eq!((up.task_id.as_str(), up.check_index), ("web", 0));
    assert!(up.alive, "{up:?}");
    assert_eq!(up.cause, None);
    let down = next_where(&mut rx, deadline, "a failure", |r| !r.alive).await;
    assert_eq!(down.cause.as_deref(), Some("500 Internal Server Error"));
    assert!(down.at >= up.at);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn tcp_targets_pass_when_something_listens_and_fail_with_a_cause_otherwise() {
    let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
    let open = listener.local_addr().unwrap().port();
    tokio::spawn(async move {
        // Accept and drop, for as long as the test runs.
        while listener.accept().await.is_ok() {}
    });
    let closed = closed_port().await;
    let (checker, mut rx) = HealthChecker::spawn_with(options(8), CancellationToken::new());
    checker.set_targets(vec![
        target("open", open, HealthCheckProtocol::Tcp),
        target("closed", closed, HealthCheckProtocol::Tcp),
    ]);
    let deadline = Instant::now() + DEADLINE;

    let ok = next_where(&mut rx, deadline, "open", |r| r.task_id == "open").await;
    assert!(ok.alive && ok.cause.is_none(), "{ok:?}");
    let refused = next_where(&mut rx, deadline, "closed", |r| r.task_id == "closed").await;
    assert!(!refused.alive);
    let cause = refused.cause.unwrap();
    assert!(
        cause.starts_with(&format!("cannot connect to 127.0.0.1:{closed}: ")),
        "{cause}"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_https_target_turns_unhealthy_when_its_server_answers_500() {
    let (port, hits, _server) = https_server(vec![(200, "ok"), (200, "ok"), (500, "")]).await;
    let (checker, mut rx) = HealthChecker::spawn_with(options(8), CancellationToken::new());
    checker.set_targets(vec![target("tls", port, HealthCheckProtocol::Https)]);
    let deadline = Instant::now() + DEADLINE;

    // Alive despite a certificate for another name, signed by nobody.
    let up = next_where(&mut rx, deadline, "a pass", |_| true).await;
    assert_eq!((up.task_id.as_str(), up.check_index), ("tls", 0));
    assert!(up.alive, "{up:?}");
    assert_eq!(up.cause, None);
    let mut results = 1;
    let down = next_where(&mut rx, deadline, "a failure", |r| {
        results += 1;
        !r.alive
    })
    .await;
    assert_eq!(down.cause.as_deref(), Some("500 Internal Server Error"));
    assert!(down.at >= up.at);
    assert_eq!(results, 3, "two passes, then the 500");
    // One request per probe; the next probe (every 50 ms) may already be
    // under way on a busy machine.
    let hits = hits.load(Ordering::SeqCst);
    assert!((3..=4).contains(&hits), "{hits} requests for 3 probes");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn https_to_a_plain_http_server_or_a_closed_port_fails_with_the_cause() {
    let (plain, _) = http_server(usize::MAX).await;
    let closed = closed_port().await;
    let (checker, mut rx) = HealthChecker::spawn_with(options(8), CancellationToken::new());
    checker.set_targets(vec![
        target("plain", plain, HealthCheckProtocol::Https),
        target("closed", closed, HealthCheckProtocol::Https),
    ]);
    let deadline = Instant::now() + DEADLINE;

    let plain_result = next_where(&mut rx, deadline, "plain", |r| r.task_id == "plain").await;
    assert!(!plain_result.alive);
    let cause = plain_result.cause.unwrap();
    assert!(
        cause.starts_with(&format!(
            "GET https://127.0.0.1:{plain}/health failed: TLS handshake failed: "
        )),
        "{cause}"
    );
    let refused = next_where(&mut rx, deadline, "closed", |r| r.task_id == "closed").await;
    assert!(!refused.alive);
    let cause = refused.cause.unwrap();
    assert!(
        cause.starts_with(&format!(
            "GET https://127.0.0.1:{closed}/health failed: cannot connect to 127.0.0.1:{closed}: "
        )),
        "{cause}"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn silence_fails_by_timeout_over_http_and_https() {
    // A server that accepts and never answers.
    let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
    let port = listener.local_addr().unwrap().port();
    tokio::spawn(async move {
        let mut held = Vec::new();
        while let Ok((socket, _)) = listener.accept().await {
            held.push(socket);
        }
    });
    let (checker, mut rx) = HealthChecker::spawn_with(options(8), CancellationToken::new());
    let mut silent = target("silent", port, HealthCheckProtocol::Http);
    silent.check.timeout_seconds = 2;
    let mut silent_tls = target("silent-tls", port, HealthCheckProtocol::Https);
    silent_tls.check.timeout_seconds = 2;
    checker.set_targets(vec![silent, silent_tls]);
    let deadline = Instant::now() + DEADLINE;

    for task in ["silent", "silent-tls"] {
        let timeout = next_where(&mut rx, deadline, task, |r| r.task_id == task).await;
        assert!(!timeout.alive);
        assert_eq!(timeout.cause.as_deref(), Some("no answer within 100ms"));
    }
}

/// An HTTP server that holds each request 100 ms and records the most
/// connections it served at once. A connection stops counting before its
/// answer is written, so the count never exceeds the probes in flight.
async fn counting_server() -> (u16, Arc<AtomicUsize>) {
    let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
    let port = listener.local_addr().unwrap().port();
    let peak = Arc::new(AtomicUsize::new(0));
    let current = Arc::new(AtomicUsize::new(0));
    let peak_seen = Arc::clone(&peak);
    tokio::spawn(async move {
        while let Ok((mut socket, _)) = listener.accept().await {
            let now = current.fetch_add(1, Ordering::SeqCst) + 1;
            peak_seen.fetch_max(now, Ordering::SeqCst);
            let current = Arc::clone(&current);
            tokio::spawn(async move {
                let mut request = Vec::new();
                let mut buf = [0u8; 1024];
                while !request.windows(4).any(|w| w == b"\r\n\r\n") && request.len() < 64 * 1024 {
                    match socket.read(&mut buf).await {
                        Ok(0) | Err(_) => break,
                        Ok(n) => request.extend_from_slice(&buf[..n]),
                    }
                }
                tokio::time::sleep(Duration::from_millis(100)).await;
                current.fetch_sub(1, Ordering::SeqCst);
                let answer = b"HTTP/1.1 200 OK\r\ncontent-length: 0\r\nconnection: close\r\n\r\n";
                let _ = socket.write_all(answer).await;
            });
        }
    });
    (port, peak)
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn all_probes_share_the_concurrency_bound() {
    let (port, peak) = counting_server().await;
    let (checker, mut rx) = HealthChecker::spawn_with(options(3), CancellationToken::new());
    let targets: Vec<Target> = (0..20)
        .map(|i| target(&format!("t{i}"), port, HealthCheckProtocol::Http))
        .collect();
    checker.set_targets(targets);
    assert_eq!(checker.target_count(), 20);
    let deadline = Instant::now() + DEADLINE;

    // Every target once, then some: 20 probes of 100 ms, 3 at a time.
    let mut seen = std::collections::HashSet::new();
    let mut results = 0;
    while seen.len() < 20 || results < 30 {
        let r = next_where(&mut rx, deadline, "probes", |_| true).await;
        assert!(r.alive, "{r:?}");
        seen.insert(r.task_id);
        results += 1;
    }
    assert_eq!(
        peak.load(Ordering::SeqCst),
        3,
        "at most 3 at once, and 20 due targets fill the 3"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn removed_targets_stop_producing_results() {
    let (port, _) = http_server(usize::MAX).await;
    let (checker, mut rx) = HealthChecker::spawn_with(options(8), CancellationToken::new());
    let a = target("a", port, HealthCheckProtocol::Http);
    let b = target("b", port, HealthCheckProtocol::Http);
    checker.set_targets(vec![a, b.clone()]);
    let deadline = Instant::now() + DEADLINE;
    next_where(&mut rx, deadline, "a", |r| r.task_id == "a").await;
    next_where(&mut rx, deadline, "b", |r| r.task_id == "b").await;

    checker.set_targets(vec![b]);
    let removed_at = Timestamp::now();
    assert_eq!(checker.target_count(), 1);
    // Five probes of b take as long as five of a would have.
    let mut b_results = 0;
    while b_results < 5 {
        let r = next_where(&mut rx, deadline, "b", |_| true).await;
        if r.task_id == "a" {
            assert!(
                r.at <= removed_at,
                "a probe of a ended after its removal: {r:?}"
            );
        } else {
            b_results += 1;
        }
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn unchanged_targets_keep_their_schedule_and_changed_ones_restart() {
    let (port, _) = http_server(usize::MAX).await;
    let (checker, mut rx) = HealthChecker::spawn_with(options(8), CancellationToken::new());
    // First probe after 2 "seconds" (100 ms); re-set every 20 ms, it would
    // never come if each set restarted the timer.
    let mut wrong_path = target("web", port, HealthCheckProtocol::Http);
    wrong_path.check.interval_seconds = 2;
    wrong_path.check.path = Some("/nope".into());
    let deadline = Instant::now() + DEADLINE;
    let mut resets = tokio::time::interval(Duration::from_millis(20));
    let first = loop {
        tokio::select! {
            _ = resets.tick() => checker.set_targets(vec![wrong_path.clone()]),
            r = next_where(&mut rx, deadline, "web", |_| true) => break r,
        }
    };
    assert!(!first.alive);
    assert_eq!(first.cause.as_deref(), Some("404 Not Found"));

    // A changed definition replaces the old one.
    let mut fixed = wrong_path.clone();
    fixed.check.path = Some("/health".into());
    checker.set_targets(vec![fixed]);
    assert_eq!(checker.target_count(), 1);
    next_where(&mut rx, deadline, "a pass on /health", |r| r.alive).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn mesos_checks_are_not_run_and_shutdown_ends_the_results() {
    let (port, _) = http_server(usize::MAX).await;
    let shutdown = CancellationToken::new();
    let (checker, mut rx) = HealthChecker::spawn_with(options(8), shutdown.clone());
    checker.set_targets(vec![
        target("agent-side", port, HealthCheckProtocol::MesosHttp),
        target("ours", port, HealthCheckProtocol::Http),
    ]);
    assert_eq!(checker.target_count(), 1);
    let deadline = Instant::now() + DEADLINE;
    next_where(&mut rx, deadline, "ours", |r| r.task_id == "ours").await;

    shutdown.cancel();
    loop {
        match tokio::time::timeout_at(deadline, rx.recv()).await {
            Ok(Some(r)) => assert_eq!(r.task_id, "ours"),
            Ok(None) => break,
            Err(_) => panic!("results did not end after shutdown"),
        }
    }
    checker.set_targets(vec![target("late", port, HealthCheckProtocol::Http)]);
    assert_eq!(checker.target_count(), 0, "no probes after shutdown");
}

// Readiness checks.

/// A readiness target probed every "second" (50 ms), first at once.
fn readiness_target(task_id: &str, port: u16, path: &str) -> ReadinessTarget {
    ReadinessTarget {
        task_id: task_id.into(),
        app_id: PathId::parse("/app", &PathId::root()).unwrap(),
        host: "127.0.0.1".into(),
        port,
        check_index: 0,
        check: ReadinessCheck {
            name: "readinessCheck".into(),
            protocol: ReadinessProtocol::Http,
            path: path.into(),
            port_name: "http-api".into(),
            interval_seconds: 1,
            timeout_seconds: 1,
            http_status_codes_for_ready: vec![200],
            preserve_last_response: false,
        },
    }
}

/// The next readiness result matching `wanted`, failing the test after
/// `deadline`.
async fn next_ready_where(
    rx: &mut mpsc::Receiver<ReadinessResult>,
    deadline: Instant,
    what: &str,
    mut wanted: impl FnMut(&ReadinessResult) -> bool,
) -> ReadinessResult {
    loop {
        match tokio::time::timeout_at(deadline, rx.recv()).await {
            Ok(Some(r)) if wanted(&r) => return r,
            Ok(Some(_)) => {}
            Ok(None) => panic!("readiness channel closed while waiting for {what}"),
            Err(_) => panic!("no readiness result for {what} before the deadline"),
        }
    }
}

/// The body `/big` answers: more than [`MAX_BODY_BYTES`], of two-byte
/// characters, so that the cut falls inside one.
fn big_body() -> String {
    format!("x{}", "é".repeat(MAX_BODY_BYTES))
}

/// A server for readiness checks, counting requests to `/warmup`:
/// - `/warmup` answers 503 to the first `cold` requests, then 200;
/// - `/status/{code}` answers `code`;
/// - `/json` answers 200 `{"migrated":true}` as `application/json`;
/// - `/big` answers 200 with [`big_body`] as `text/plain; charset=utf-8`.
async fn readiness_server(cold: usize) -> (u16, Arc<AtomicUsize>) {
    use axum::extract::Path;
    use axum::http::header;
    let hits = Arc::new(AtomicUsize::new(0));
    let app = Router::new()
        .route(
            "/warmup",
            get(move |State(hits): State<Arc<AtomicUsize>>| async move {
                if hits.fetch_add(1, Ordering::SeqCst) < cold {
                    (AxumStatus::SERVICE_UNAVAILABLE, "warming up")
                } else {
                    (AxumStatus::OK, "ready")
                }
            }),
        )
        .route(
            "/status/{code}",
            get(|Path(code): Path<u16>| async move { AxumStatus::from_u16(code).unwrap() }),
        )
        .route(
            "/json",
            get(|| async {
                (
                    [(header::CONTENT_TYPE, "application/json")],
                    r#"{"migrated":true}"#,
                )
            }),
        )
        .route("/big", get(|| async { big_body() }))
        .with_state(Arc::clone(&hits));
    let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
    let port = listener.local_addr().unwrap().port();
    tokio::spawn(async move { axum::serve(listener, app).await });
    (port, hits)
}

fn readiness_options() -> (
    HealthChecker,
    mpsc::Receiver<HealthResult>,
    mpsc::Receiver<ReadinessResult>,
) {
    HealthChecker::spawn_with_readiness(options(8), CancellationToken::new())
}

#[test]
fn readiness_is_first_probed_at_once_then_every_interval() {
    let s = Duration::from_secs(1);
    let check = readiness_target("t", 1, "/").check;
    let mut slow = check.clone();
    slow.interval_seconds = 30;
    slow.timeout_seconds = 10;
    assert_eq!(
        Schedule::of_readiness(&slow, s),
        Schedule {
            first: Duration::ZERO,
            interval: Duration::from_secs(30),
            timeout: Duration::from_secs(10),
        }
    );
    let mut zero = check;
    zero.interval_seconds = 0;
    zero.timeout_seconds = 0;
    let z = Schedule::of_readiness(&zero, s);
    assert_eq!((z.first, z.interval, z.timeout), (Duration::ZERO, s, s));
}

#[test]
fn media_types_drop_parameters_and_bodies_are_cut_at_a_character() {
    assert_eq!(media_type("Text/HTML; charset=utf-8"), "text/html");
    assert_eq!(media_type("application/json"), "application/json");
    assert_eq!(media_type(""), "");
    assert_eq!(truncated_utf8(b"abc".to_vec(), 4), "abc");
    assert_eq!(truncated_utf8(b"abcdef".to_vec(), 4), "abcd");
    // "aé" is 61 C3 A9: a cut after 2 bytes splits the é, which goes.
    assert_eq!(truncated_utf8("aéb".as_bytes().to_vec(), 2), "a");
    assert_eq!(truncated_utf8("aéb".as_bytes().to_vec(), 3), "aé");
    assert_eq!(truncated_utf8(vec![0xff, b'a'], 4), "\u{fffd}a");
    assert_eq!(status_text(503), "503 Service Unavailable");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_task_is_not_ready_until_its_server_answers_200_then_probing_ends() {
    let (port, hits) = readiness_server(2).await;
    // The target as the loop derives it: the host port named `portName`.
    let mut app = AppDefinition::from_json(
        br#"{"id":"/app","cmd":"x","portDefinitions":[{"port":0,"name":"metrics"},{"port":0,"name":"http-api"}]}"#,
        &PathId::root(),
        &crate::state::app::AppDefaults::default(),
    )
    .unwrap();
    let mut check = readiness_target("web", port, "/warmup").check;
    check.name = "warmup".into();
    app.readiness_checks = vec![check.clone()];
    assert_eq!(
        super::super::readiness_port_of(&app, &check, &[1, u64::from(port)]),
        Some(port)
    );

    let (checker, _health, mut rx) = readiness_options();
    let mut target = readiness_target("web", port, "/warmup");
    target.check = check;
    checker.set_readiness_targets(vec![target.clone()]);
    assert_eq!(checker.readiness_target_count(), 1);
    assert_eq!(checker.target_count(), 0, "health targets are apart");
    let deadline = Instant::now() + DEADLINE;

    let mut seen = Vec::new();
    loop {
        let r = next_ready_where(&mut rx, deadline, "web", |_| true).await;
        assert_eq!((r.task_id.as_str(), r.check_index), ("web", 0));
        assert_eq!(r.name, "warmup");
        assert_eq!(r.last_response, None, "not preserved");
        seen.push((r.ready, r.cause.clone()));
        if r.ready {
            break;
        }
    }
    let unavailable = (false, Some("503 Service Unavailable".to_string()));
    assert_eq!(
        seen,
        vec![unavailable.clone(), unavailable, (true, None)],
        "not ready twice, then ready"
    );
    assert_eq!(hits.load(Ordering::SeqCst), 3);

    // Ready is final: while another target is probed five times, the
    // ready one, still in the set, is not probed again.
    let other = readiness_target("other", port, "/status/503");
    checker.set_readiness_targets(vec![target, other]);
    assert_eq!(checker.readiness_target_count(), 2);
    for _ in 0..5 {
        let r = next_ready_where(&mut rx, deadline, "other", |_| true).await;
        assert_eq!(r.task_id, "other");
        assert!(!r.ready);
    }
    assert_eq!(hits.load(Ordering::SeqCst), 3);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn ready_means_a_status_in_http_status_codes_for_ready() {
    let (port, _) = readiness_server(0).await;
    let (checker, _health, mut rx) = readiness_options();
    let with_codes = |task_id: &str, path: &str| {
        let mut t = readiness_target(task_id, port, path);
        t.check.http_status_codes_for_ready = vec![200, 204];
        t
    };
    checker.set_readiness_targets(vec![
        with_codes("no-content", "/status/204"),
        with_codes("ok", "/status/200"),
        with_codes("created", "/status/201"),
        // The default list: 204 is not ready.
        readiness_target("default", port, "/status/204"),
    ]);
    let deadline = Instant::now() + DEADLINE;
    let mut verdicts = std::collections::BTreeMap::new();
    while verdicts.len() < 4 {
        let r = next_ready_where(&mut rx, deadline, "all four", |_| true).await;
        verdicts
            .entry(r.task_id.clone())
            .or_insert((r.ready, r.cause));
    }
    assert_eq!(verdicts["no-content"], (true, None));
    assert_eq!(verdicts["ok"], (true, None));
    assert_eq!(verdicts["created"], (false, Some("201 Created".into())));
    assert_eq!(verdicts["default"], (false, Some("204 No Content".into())));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn preserve_last_response_keeps_status_content_type_and_a_cut_body() {
    let (port, _) = readiness_server(1).await;
    let (checker, _health, mut rx) = readiness_options();
    let preserved = |task_id: &str, path: &str| {
        let mut t = readiness_target(task_id, port, path);
        t.check.preserve_last_response = true;
        t
    };
    checker.set_readiness_targets(vec![
        preserved("json", "/json"),
        preserved("big", "/big"),
        preserved("warmup", "/warmup"),
    ]);
    let deadline = Instant::now() + DEADLINE;
    // Ready results are final: collect each target's results until ready.
    let mut results: std::collections::HashMap<String, Vec<ReadinessResult>> = Default::default();
    while results.len() < 3 || results.values().any(|rs| !rs.last().unwrap().ready) {
        let r = next_ready_where(&mut rx, deadline, "all ready", |_| true).await;
        results.entry(r.task_id.clone()).or_default().push(r);
    }

    let json = results["json"].last().unwrap().clone();
    assert!(json.ready);
    assert_eq!(
        json.last_response,
        Some(HttpResponse {
            status: 200,
            content_type: "application/json".into(),
            body: r#"{"migrated":true}"#.into(),
        })
    );
    // (Its JSON is rendered by the API; see api::shapes' tests.)
    assert_eq!(
        (json.name.as_str(), json.task_id.as_str()),
        ("readinessCheck", "json")
    );

    let big = results["big"].last().unwrap().clone();
    assert!(big.ready);
    let response = big.last_response.expect("preserved");
    assert_eq!(response.content_type, "text/plain");
    // "x" then two-byte characters: the cut at 4096 bytes splits one.
    assert_eq!(response.body.len(), MAX_BODY_BYTES - 1);
    assert!(big_body().starts_with(&response.body));

    let [cold, warm] = &results["warmup"][..] else {
        panic!("not ready once, then ready: {:?}", results["warmup"]);
    };
    assert!(!cold.ready);
    let response = cold
        .last_response
        .clone()
        .expect("not-ready answers are kept too");
    assert_eq!(
        (response.status, response.body.as_str()),
        (503, "warming up")
    );
    assert!(warm.ready);
    assert_eq!(warm.last_response.as_ref().unwrap().body, "ready");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_https_task_becomes_ready_and_its_last_response_is_kept() {
    let (port, hits, _server) = https_server(vec![
        (503, "warming up"),
        (503, "warming up"),
        (200, "ready"),
    ])
    .await;
    let (checker, _health, mut rx) = readiness_options();
    let mut tls = readiness_target("tls", port, "/warmup");
    tls.check.protocol = ReadinessProtocol::Https;
    tls.check.preserve_last_response = true;
    checker.set_readiness_targets(vec![tls]);
    let deadline = Instant::now() + DEADLINE;

    let mut seen = Vec::new();
    let ready = loop {
        let r = next_ready_where(&mut rx, deadline, "tls", |_| true).await;
        seen.push((r.ready, r.cause.clone()));
        if r.ready {
            break r;
        }
    };
    let unavailable = (false, Some("503 Service Unavailable".to_string()));
    assert_eq!(seen, vec![unavailable.clone(), unavailable, (true, None)]);
    assert_eq!(
        ready.last_response,
        Some(HttpResponse {
            status: 200,
            content_type: "text/plain".into(),
            body: "ready".into(),
        })
    );
    assert_eq!(hits.load(Ordering::SeqCst), 3);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn refusal_and_silence_are_not_ready_with_a_cause() {
    // A server that accepts and never answers.
    let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
    let silent = listener.local_addr().unwrap().port();
    tokio::spawn(async move {
        let mut held = Vec::new();
        while let Ok((socket, _)) = listener.accept().await {
            held.push(socket);
        }
    });
    let closed = closed_port().await;
    let (checker, _health, mut rx) = readiness_options();
    let mut tls = readiness_target("tls", closed, "/");
    tls.check.protocol = ReadinessProtocol::Https;
    tls.check.preserve_last_response = true;
    let mut quiet = readiness_target("silent", silent, "/");
    quiet.check.timeout_seconds = 2;
    quiet.check.interval_seconds = 3;
    checker.set_readiness_targets(vec![tls, quiet, readiness_target("closed", closed, "/")]);
    let deadline = Instant::now() + DEADLINE;

    let tls = next_ready_where(&mut rx, deadline, "tls", |r| r.task_id == "tls").await;
    assert!(!tls.ready);
    let cause = tls.cause.unwrap();
    assert!(
        cause.starts_with(&format!(
            "GET https://127.0.0.1:{closed}/ failed: cannot connect to 127.0.0.1:{closed}: "
        )),
        "{cause}"
    );
    // Marathon's stand-in for a missing answer.
    let stand_in = tls.last_response.expect("preserved");
    assert_eq!(
        (stand_in.status, stand_in.content_type.as_str()),
        (504, "text/plain")
    );
    assert_eq!(
        stand_in.body,
        format!("Baton could not query https://127.0.0.1:{closed}/: {cause}")
    );

    let quiet = next_ready_where(&mut rx, deadline, "silent", |r| r.task_id == "silent").await;
    assert!(!quiet.ready);
    assert_eq!(quiet.cause.as_deref(), Some("no answer within 100ms"));
    assert_eq!(quiet.last_response, None);

    let refused = next_ready_where(&mut rx, deadline, "closed", |r| r.task_id == "closed").await;
    assert!(!refused.ready);
    let cause = refused.cause.unwrap();
    assert!(
        cause.starts_with(&format!("GET http://127.0.0.1:{closed}/ failed: ")),
        "{cause}"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn health_and_readiness_probes_share_the_concurrency_bound() {
    let (port, peak) = counting_server().await;
    let (checker, mut health, mut readiness) =
        HealthChecker::spawn_with_readiness(options(2), CancellationToken::new());
    checker.set_targets(
        (0..6)
            .map(|i| target(&format!("h{i}"), port, HealthCheckProtocol::Http))
            .collect(),
    );
    let mut never_ready: Vec<ReadinessTarget> = (0..6)
        .map(|i| readiness_target(&format!("r{i}"), port, "/"))
        .collect();
    for t in &mut never_ready {
        t.check.http_status_codes_for_ready = vec![299];
        // Longer than the server's 100 ms: a timed-out probe would free its
        // permit while the server still counts its connection.
        t.check.timeout_seconds = 20;
    }
    checker.set_readiness_targets(never_ready);
    let deadline = Instant::now() + DEADLINE;

    let (mut health_seen, mut readiness_seen) = (0, 0);
    while health_seen < 12 || readiness_seen < 12 {
        tokio::select! {
            r = next_where(&mut health, deadline, "health", |_| true) => {
                assert!(r.alive, "{r:?}");
                health_seen += 1;
            }
            r = next_ready_where(&mut readiness, deadline, "readiness", |_| true) => {
                assert!(!r.ready, "{r:?}");
                readiness_seen += 1;
            }
        }
    }
    assert_eq!(
        peak.load(Ordering::SeqCst),
        2,
        "at most 2 at once over both kinds"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn readiness_targets_need_the_readiness_channel_and_stop_at_shutdown() {
    let (port, _) = readiness_server(usize::MAX).await;
    let (plain, _rx) = HealthChecker::spawn_with(options(8), CancellationToken::new());
    plain.set_readiness_targets(vec![readiness_target("w", port, "/warmup")]);
    assert_eq!(plain.readiness_target_count(), 0, "no channel, no probes");

    let shutdown = CancellationToken::new();
    let (checker, _health, mut rx) =
        HealthChecker::spawn_with_readiness(options(8), shutdown.clone());
    checker.set_readiness_targets(vec![readiness_target("w", port, "/warmup")]);
    let deadline = Instant::now() + DEADLINE;
    next_ready_where(&mut rx, deadline, "w", |_| true).await;
    // Removed targets stop; an emptied set leaves none.
    checker.set_readiness_targets(Vec::new());
    assert_eq!(checker.readiness_target_count(), 0);
    checker.set_readiness_targets(vec![readiness_target("w", port, "/warmup")]);
    next_ready_where(&mut rx, deadline, "w again", |_| true).await;

    shutdown.cancel();
    loop {
        match tokio::time::timeout_at(deadline, rx.recv()).await {
            Ok(Some(r)) => assert_eq!(r.task_id, "w"),
            Ok(None) => break,
            Err(_) => panic!("readiness results did not end after shutdown"),
        }
    }
    checker.set_readiness_targets(vec![readiness_target("late", port, "/warmup")]);
    assert_eq!(
        checker.readiness_target_count(),
        0,
        "no probes after shutdown"
    );
}
