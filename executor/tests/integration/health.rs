//! Health checks (`TaskInfo.health_check`) with the real `baton-executor`
//! binary against the fake agent, over both encodings: passing checks
//! report `healthy = true` once, failing ones report every failure and kill
//! the task after `consecutive_failures`. HTTPS checks probe a server of the
//! test's own, with a certificate made at test time.

use super::common;

use std::net::TcpListener;
use std::sync::Arc;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::time::Duration;

use common::{Executor, FakeAgent, Options, shell_task, wait_for, wait_group_gone};
use mesos_proto::Encoding;
use mesos_proto::v1::{
    self, TaskState, environment::Variable, health_check, task_status::Reason, task_status::Source,
};
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::task::JoinSet;

const EXIT: Duration = Duration::from_secs(20);
/// Long enough for a Python HTTP server to start on a loaded machine.
const SLOW_START: Duration = Duration::from_secs(30);

/// A port nothing listens on: bound on 127.0.0.1, then released.
fn free_port() -> u16 {
    TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port()
}

/// An HTTPS server on 127.0.0.1 whose certificate, self-signed and made now,
/// names `localhost`: verification would fail twice. Its first `healthy`
/// requests get 200, the others 500; it counts requests. Aborting the handle
/// stops it and its connections.
async fn https_server(healthy: usize) -> (u16, Arc<AtomicUsize>, tokio::task::JoinHandle<()>) {
    use rustls::pki_types::{PrivateKeyDer, PrivatePkcs8KeyDer};
    let made = rcgen::generate_simple_self_signed(vec!["localhost".to_string()]).unwrap();
    let key = PrivateKeyDer::Pkcs8(PrivatePkcs8KeyDer::from(made.signing_key.serialize_der()));
    let provider = Arc::new(rustls::crypto::ring::default_provider());
    let config = rustls::ServerConfig::builder_with_provider(provider)
        .with_safe_default_protocol_versions()
        .unwrap()
        .with_no_client_auth()
        .with_single_cert(vec![made.cert.der().clone()], key)
        .unwrap();
    let acceptor = tokio_rustls::TlsAcceptor::from(Arc::new(config));
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let port = listener.local_addr().unwrap().port();
    let hits = Arc::new(AtomicUsize::new(0));
    let counted = Arc::clone(&hits);
    let server = tokio::spawn(async move {
        // Dropped with the server: its connections end too.
        let mut connections = JoinSet::new();
        while let Ok((socket, _)) = listener.accept().await {
            while connections.try_join_next().is_some() {}
            let (acceptor, counted) = (acceptor.clone(), Arc::clone(&counted));
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
                let status = if counted.fetch_add(1, Ordering::SeqCst) < healthy {
                    "200 OK"
                } else {
                    "500 Internal Server Error"
                };
                let response =
                    format!("HTTP/1.1 {status}\r\nContent-Length: 0\r\nConnection: close\r\n\r\n");
                let _ = tls.write_all(response.as_bytes()).await;
                let _ = tls.shutdown().await;
            });
        }
    });
    (port, hits, server)
}

/// A task that records its process group id and runs until SIGTERM.
fn looping_task(id: &str) -> v1::TaskInfo {
    shell_task(
        id,
        "trap 'exit 0' TERM; echo $$ > pid; while :; do sleep 0.1; done",
    )
}

/// A check of `type` that starts at once and runs every 100 ms.
fn quick_check(
    r#type: health_check::Type,
    grace: f64,
    consecutive_failures: u32,
) -> v1::HealthCheck {
    v1::HealthCheck {
        r#type: Some(r#type as i32),
        delay_seconds: Some(0.0),
        interval_seconds: Some(0.1),
        timeout_seconds: Some(2.0),
        consecutive_failures: Some(consecutive_failures),
        grace_period_seconds: Some(grace),
        ..Default::default()
    }
}

fn http_check(port: u16, grace: f64, consecutive_failures: u32) -> v1::HealthCheck {
    v1::HealthCheck {
        http: Some(health_check::HttpCheckInfo {
            port: u32::from(port),
            path: Some("/".into()),
            ..Default::default()
        }),
        ..quick_check(health_check::Type::Http, grace, consecutive_failures)
    }
}

fn tcp_check(port: u16, grace: f64, consecutive_failures: u32) -> v1::HealthCheck {
    v1::HealthCheck {
        tcp: Some(health_check::TcpCheckInfo {
            port: u32::from(port),
            protocol: None,
        }),
        ..quick_check(health_check::Type::Tcp, grace, consecutive_failures)
    }
}

fn command_check(command: &str, grace: f64, consecutive_failures: u32) -> v1::HealthCheck {
    v1::HealthCheck {
        command: Some(v1::CommandInfo {
            value: Some(command.into()),
            ..Default::default()
        }),
        ..quick_check(health_check::Type::Command, grace, consecutive_failures)
    }
}

/// The health updates of `task` so far, checked for their fixed fields.
fn health_updates(agent: &FakeAgent, task: &str) -> Vec<v1::TaskStatus> {
    let updates: Vec<_> = agent
        .updates()
        .into_iter()
        .filter(|s| s.task_id.value == task && s.reason() == Reason::TaskHealthCheckStatusUpdated)
        .collect();
    for status in &updates {
        assert_eq!(status.state(), TaskState::TaskRunning, "{status:?}");
        assert_eq!(status.source(), Source::Executor);
        assert!(status.healthy.is_some(), "{status:?}");
        common::validate_status(status).unwrap();
    }
    updates
}

/// `(state, healthy)` of every update of `task`, in order.
fn states_and_health(agent: &FakeAgent, task: &str) -> Vec<(TaskState, Option<bool>)> {
    agent
        .updates()
        .iter()
        .filter(|s| s.task_id.value == task)
        .map(|s| (s.state(), s.healthy))
        .collect()
}

/// The process group of the task the executor started first, from its log
/// (a task killed at once may never get to write its `pid` file).
async fn first_task_pgid(executor: &Executor) -> i32 {
    wait_for("the task to start", EXIT, || {
        let log = executor.log();
        let (_, rest) = log.split_once("started pgid=")?;
        let digits: String = rest.chars().take_while(char::is_ascii_digit).collect();
        digits.parse().ok()
    })
    .await
}

/// Waits until the executor logged `n` passed checks.
async fn wait_passes(executor: &Executor, kind: &str, n: usize) {
    let needle = format!("{kind} health check passed");
    wait_for(&format!("{n} passed {kind} checks"), EXIT, || {
        (executor.log().matches(&needle).count() >= n).then_some(())
    })
    .await;
}

async fn a_passing_http_check_reports_healthy_once(encoding: Encoding) {
    let agent = FakeAgent::start(encoding).await;
    let mut executor = Executor::spawn(&agent, Options::default());
    agent.wait_subscribe(1).await;
    let port = free_port();
    let mut task = shell_task(
        "web",
        &format!("echo $$ > pid; exec python3 -m http.server --bind 127.0.0.1 {port}"),
    );
    // Failures while Python starts fall in the grace period.
    task.health_check = Some(http_check(port, SLOW_START.as_secs_f64(), 3));
    agent.launch(task);
    let pgid = executor.task_pgid("pid").await;

    let healthy = wait_for("a healthy update", SLOW_START, || {
        health_updates(&agent, "web")
            .into_iter()
            .find(|s| s.healthy == Some(true))
    })
    .await;
    assert_eq!(healthy.executor_id.unwrap().value, common::EXECUTOR_ID);
    // More checks pass, but only the first one is reported.
    let passes = executor.log().matches("HTTP health check passed").count();
    wait_passes(&executor, "HTTP", passes + 3).await;
    assert_eq!(
        states_and_health(&agent, "web"),
        [
            (TaskState::TaskStarting, None),
            (TaskState::TaskRunning, None),
            (TaskState::TaskRunning, Some(true)),
        ]
    );

    agent.kill("web", None);
    let killed = agent.wait_update("web", TaskState::TaskKilled).await;
    // Killed by the framework: the health bit is not repeated.
    assert_eq!(killed.healthy, None);
    assert!(executor.wait_exit(EXIT).await.success());
    wait_group_gone(pgid).await;
    agent.assert_no_violations();
}

async fn failing_http_checks_kill_the_task(encoding: Encoding) {
    let agent = FakeAgent::start(encoding).await;
    let mut executor = Executor::spawn(&agent, Options::default());
    agent.wait_subscribe(1).await;
    let mut task = looping_task("t1");
    task.health_check = Some(http_check(free_port(), 0.0, 2));
    agent.launch(task);
    let pgid = first_task_pgid(&executor).await;

    let killed = agent.wait_update("t1", TaskState::TaskKilled).await;
    assert_eq!(killed.healthy, Some(false));
    assert_eq!(killed.reason, None);
    assert_eq!(
        states_and_health(&agent, "t1"),
        [
            (TaskState::TaskStarting, None),
            (TaskState::TaskRunning, None),
            (TaskState::TaskRunning, Some(false)),
            (TaskState::TaskRunning, Some(false)),
            (TaskState::TaskKilled, Some(false)),
        ]
    );
    let failures = health_updates(&agent, "t1");
    for (status, n) in failures.iter().zip(1..) {
        let message = status.message.as_deref().unwrap_or_default();
        assert!(message.contains("HTTP health check failed"), "{message}");
        assert!(message.contains("127.0.0.1"), "{message}");
        assert!(message.ends_with(&format!("({n} in a row)")), "{message}");
    }
    assert_ne!(failures[0].uuid, failures[1].uuid);
    assert!(executor.wait_exit(EXIT).await.success());
    wait_group_gone(pgid).await;
    agent.assert_no_violations();
}

async fn a_command_check_runs_in_the_task_sandbox_with_its_environment(encoding: Encoding) {
    let agent = FakeAgent::start(encoding).await;
    let mut executor = Executor::spawn(&agent, Options::default());
    agent.wait_subscribe(1).await;
    let mut task = looping_task("t1");
    task.command.as_mut().unwrap().environment = Some(v1::Environment {
        variables: vec![Variable {
            name: "GREETING".into(),
            value: Some("hello".into()),
            r#type: None,
        }],
    });
    task.health_check = Some(command_check(
        "[ \"$GREETING\" = hello ] && [ \"$MESOS_TASK_ID\" = t1 ] && [ -e pid ]",
        EXIT.as_secs_f64(),
        3,
    ));
    agent.launch(task);
    let pgid = executor.task_pgid("pid").await;
    wait_for("a healthy update", EXIT, || {
        health_updates(&agent, "t1")
            .into_iter()
            .find(|s| s.healthy == Some(true))
    })
    .await;
    assert!(
        health_updates(&agent, "t1")
            .iter()
            .all(|s| s.healthy == Some(true))
    );

    agent.kill("t1", None);
    agent.wait_update("t1", TaskState::TaskKilled).await;
    assert!(executor.wait_exit(EXIT).await.success());
    wait_group_gone(pgid).await;
    agent.assert_no_violations();
}

async fn a_command_check_that_times_out_is_killed_and_fails(encoding: Encoding) {
    let agent = FakeAgent::start(encoding).await;
    let mut executor = Executor::spawn(&agent, Options::default());
    agent.wait_subscribe(1).await;
    let mut task = looping_task("t1");
    let mut check = command_check("echo $$ > check-pid; exec sleep 30", 0.0, 1);
    check.timeout_seconds = Some(1.0);
    task.health_check = Some(check);
    agent.launch(task);
    let pgid = first_task_pgid(&executor).await;
    let check_pgid = executor.task_pgid("check-pid").await;

    let killed = agent.wait_update("t1", TaskState::TaskKilled).await;
    assert_eq!(killed.healthy, Some(false));
    let failures = health_updates(&agent, "t1");
    assert_eq!(failures.len(), 1);
    let message = failures[0].message.as_deref().unwrap_or_default();
    assert!(
        message.contains("COMMAND health check failed: timed out after 1s"),
        "{message}"
    );
    // The timed-out check was killed with its process group.
    wait_group_gone(check_pgid).await;
    assert!(executor.wait_exit(EXIT).await.success());
    wait_group_gone(pgid).await;
    agent.assert_no_violations();
}

async fn a_tcp_check_turns_unhealthy_when_the_port_closes(encoding: Encoding) {
    let agent = FakeAgent::start(encoding).await;
    let mut executor = Executor::spawn(&agent, Options::default());
    agent.wait_subscribe(1).await;
    let listener = TcpListener::bind("127.0.0.1:0").unwrap();
    let port = listener.local_addr().unwrap().port();
    let mut task = looping_task("t1");
    task.health_check = Some(tcp_check(port, 0.0, 1));
    agent.launch(task);
    let pgid = first_task_pgid(&executor).await;
    wait_for("a healthy update", EXIT, || {
        health_updates(&agent, "t1")
            .into_iter()
            .find(|s| s.healthy == Some(true))
    })
    .await;

    drop(listener);
    let killed = agent.wait_update("t1", TaskState::TaskKilled).await;
    assert_eq!(killed.healthy, Some(false));
    assert_eq!(
        states_and_health(&agent, "t1"),
        [
            (TaskState::TaskStarting, None),
            (TaskState::TaskRunning, None),
            (TaskState::TaskRunning, Some(true)),
            (TaskState::TaskRunning, Some(false)),
            (TaskState::TaskKilled, Some(false)),
        ]
    );
    let failure = &health_updates(&agent, "t1")[1];
    let message = failure.message.as_deref().unwrap_or_default();
    assert!(message.contains("TCP health check failed"), "{message}");
    assert!(executor.wait_exit(EXIT).await.success());
    wait_group_gone(pgid).await;
    agent.assert_no_violations();
}

async fn an_https_check_reports_healthy_then_unhealthy(encoding: Encoding) {
    let (port, hits, server) = https_server(1).await;
    let agent = FakeAgent::start(encoding).await;
    let mut executor = Executor::spawn(&agent, Options::default());
    agent.wait_subscribe(1).await;
    // MESOS_HTTPS as Baton sends it: an HTTP check with scheme "https".
    let mut check = http_check(port, 0.0, 1);
    check.http.as_mut().unwrap().scheme = Some("https".into());
    let mut task = looping_task("t1");
    task.health_check = Some(check);
    agent.launch(task);
    let pgid = first_task_pgid(&executor).await;

    let healthy = wait_for("a healthy update", EXIT, || {
        health_updates(&agent, "t1")
            .into_iter()
            .find(|s| s.healthy == Some(true))
    })
    .await;
    assert_eq!(healthy.executor_id.unwrap().value, common::EXECUTOR_ID);
    let killed = agent.wait_update("t1", TaskState::TaskKilled).await;
    assert_eq!(killed.healthy, Some(false));
    assert_eq!(
        states_and_health(&agent, "t1"),
        [
            (TaskState::TaskStarting, None),
            (TaskState::TaskRunning, None),
            (TaskState::TaskRunning, Some(true)),
            (TaskState::TaskRunning, Some(false)),
            (TaskState::TaskKilled, Some(false)),
        ]
    );
    let failure = &health_updates(&agent, "t1")[1];
    let message = failure.message.as_deref().unwrap_or_default();
    assert!(
        message.contains(
            "HTTPS health check failed: Unexpected HTTP response code: 500 Internal Server Error"
        ),
        "{message}"
    );
    assert!(hits.load(Ordering::SeqCst) >= 2);
    assert!(executor.wait_exit(EXIT).await.success());
    wait_group_gone(pgid).await;
    server.abort();
    agent.assert_no_violations();
}

macro_rules! both_encodings {
    ($($scenario:ident),* $(,)?) => {$(
        mod $scenario {
            #[tokio::test]
            async fn protobuf() {
                super::$scenario(mesos_proto::Encoding::Protobuf).await;
            }
            #[tokio::test]
            async fn json() {
                super::$scenario(mesos_proto::Encoding::Json).await;
            }
        }
    )*};
}

both_encodings!(
    a_passing_http_check_reports_healthy_once,
    failing_http_checks_kill_the_task,
    a_command_check_runs_in_the_task_sandbox_with_its_environment,
    a_command_check_that_times_out_is_killed_and_fails,
    a_tcp_check_turns_unhealthy_when_the_port_closes,
    an_https_check_reports_healthy_then_unhealthy,
);
