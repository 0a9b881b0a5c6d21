//! The Mesos session against a scripted fake master: redirects, heartbeat
//! loss, hostile answers, lost subscriptions. Each test runs over both
//! encodings.
// Waits in real time, so reads the real clock.
#![allow(clippy::disallowed_methods)]

use super::support;

use std::sync::atomic::Ordering;
use std::time::Duration;

use baton::mesos::session::{self, SessionConfig, SessionEvent};
use baton::mesos::{MasterEndpoint, MesosHandle, calls};
use mesos_proto::Encoding;
use mesos_proto::scheduler::call;
use support::fake_master::{Answer, FakeMaster};
use tokio::sync::mpsc;
use tokio_util::sync::CancellationToken;

const DEADLINE: Duration = Duration::from_secs(10);

fn config(masters: &[String], encoding: Encoding) -> SessionConfig {
    let masters = masters
        .iter()
        .map(|m| MasterEndpoint::parse(m).unwrap())
        .collect();
    let info = mesos_proto::v1::FrameworkInfo {
        user: "test".into(),
        name: "baton".into(),
        ..Default::default()
    };
    let mut config = SessionConfig::new(masters, info);
    config.encoding = encoding;
    config.backoff_min = Duration::from_millis(20);
    config.backoff_max = Duration::from_millis(200);
    config.call_timeout = Duration::from_secs(2);
    config
}

fn subscribed(id: &str, stream: &str) -> Answer {
    Answer::Subscribed {
        framework_id: id.into(),
        stream_id: stream.into(),
        heartbeat: Duration::from_millis(100),
        beat: true,
    }
}

/// Waits for the next `Subscribed` session event, skipping others.
async fn next_subscribed(events: &mut mpsc::Receiver<SessionEvent>) -> (String, String) {
    tokio::time::timeout(DEADLINE, async {
        loop {
            match events.recv().await.expect("session running") {
                SessionEvent::Subscribed {
                    framework_id,
                    stream_id,
                    ..
                } => return (framework_id.value, stream_id),
                _ => continue,
            }
        }
    })
    .await
    .expect("subscribed before the deadline")
}

async fn wait_until(mut check: impl FnMut() -> bool) {
    let deadline = tokio::time::Instant::now() + DEADLINE;
    while !check() {
        assert!(
            tokio::time::Instant::now() < deadline,
            "condition not met before the deadline"
        );
        tokio::time::sleep(Duration::from_millis(10)).await;
    }
}

fn start(
    config: SessionConfig,
    id: Option<&str>,
) -> (MesosHandle, mpsc::Receiver<SessionEvent>, CancellationToken) {
    let stop = CancellationToken::new();
    let (handle, events) = session::spawn(
        config,
        id.map(mesos_proto::util::framework_id),
        stop.clone(),
    );
    (handle, events, stop)
}

const ENCODINGS: [Encoding; 2] = [Encoding::Protobuf, Encoding::Json];

#[tokio::test]
async fn redirect_307_is_followed_to_the_leading_master() {
    for encoding in ENCODINGS {
        let leader = FakeMaster::start(encoding, vec![subscribed("fw-1", "stream-a")]).await;
        let standby = FakeMaster::start(encoding, vec![Answer::Redirect(leader.addr)]).await;
        // A dead master first: the list is tried in turn.
        let dead = {
            let l = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
            l.local_addr().unwrap()
        };
        let (handle, mut events, stop) = start(
            config(&[format!("http://{dead}"), standby.url()], encoding),
            None,
        );
        let (framework_id, stream_id) = next_subscribed(&mut events).await;
        assert_eq!(
            (framework_id.as_str(), stream_id.as_str()),
            ("fw-1", "stream-a"),
            "{encoding}"
        );
        assert_eq!(standby.subscribes().len(), 1);
        assert_eq!(leader.subscribes().len(), 1);
        assert!(handle.stats().redirects.load(Ordering::Relaxed) >= 1);
        // Calls go to the leader with its stream id.
        handle.call(calls::revive(vec![])).await.unwrap();
        let calls = leader.calls();
        assert_eq!(calls.len(), 1);
        assert_eq!(calls[0].1.as_deref(), Some("stream-a"));
        assert_eq!(calls[0].0.framework_id.as_ref().unwrap().value, "fw-1");
        stop.cancel();
        leader.stop();
        standby.stop();
    }
}

#[tokio::test]
async fn heartbeat_loss_reconnects_and_resubscribes_with_the_same_framework_id() {
    for encoding in ENCODINGS {
        let silent = Answer::Subscribed {
            framework_id: "fw-7".into(),
            stream_id: "s1".into(),
            heartbeat: Duration::from_millis(100),
            beat: false,
        };
        let master = FakeMaster::start(encoding, vec![silent, subscribed("fw-7", "s2")]).await;
        let (handle, mut events, stop) = start(config(&[master.url()], encoding), None);
        assert_eq!(
            next_subscribed(&mut events).await,
            ("fw-7".to_string(), "s1".to_string())
        );
        // No event for 5 × 100 ms: the watchdog drops the stream.
        let reason = tokio::time::timeout(DEADLINE, async {
            loop {
                if let SessionEvent::Disconnected { reason } = events.recv().await.unwrap() {
                    return reason;
                }
            }
        })
        .await
        .unwrap();
        assert!(reason.contains("no event from master"), "{reason}");
        assert_eq!(
            next_subscribed(&mut events).await,
            ("fw-7".to_string(), "s2".to_string())
        );
        let subscribes = master.subscribes();
        assert_eq!(subscribes.len(), 2);
        assert!(
            subscribes[0].framework_id.is_none(),
            "first subscribe has no id"
        );
        let again = &subscribes[1];
        assert_eq!(
            again.framework_id.as_ref().unwrap().value,
            "fw-7",
            "{encoding}"
        );
        assert_eq!(
            again
                .subscribe
                .as_ref()
                .unwrap()
                .framework_info
                .id
                .as_ref()
                .unwrap()
                .value,
            "fw-7"
        );
        assert_eq!(handle.stream_id().as_deref(), Some("s2"));
        stop.cancel();
        master.stop();
    }
}

#[tokio::test]
async fn a_new_stream_id_is_used_after_the_master_restarts() {
    for encoding in ENCODINGS {
        let master = FakeMaster::start(
            encoding,
            vec![subscribed("fw-2", "before"), subscribed("fw-2", "after")],
        )
        .await;
        let (handle, mut events, stop) = start(config(&[master.url()], encoding), Some("fw-2"));
        next_subscribed(&mut events).await;
        handle.call(calls::suppress(vec![])).await.unwrap();
        master.cut_streams();
        assert_eq!(next_subscribed(&mut events).await.1, "after");
        handle.call(calls::revive(vec![])).await.unwrap();
        let ids: Vec<Option<String>> = master.calls().into_iter().map(|(_, s)| s).collect();
        assert_eq!(
            ids,
            vec![Some("before".to_string()), Some("after".to_string())],
            "{encoding}"
        );
        // The stored id was used from the very first subscribe.
        assert!(
            master
                .subscribes()
                .iter()
                .all(|c| c.framework_id.as_ref().unwrap().value == "fw-2")
        );
        stop.cancel();
        master.stop();
    }
}

#[tokio::test]
async fn hostile_master_answers_lead_to_reconnects_not_panics_or_hangs() {
    for encoding in ENCODINGS {
        let script = vec![
            Answer::Garbage,
            Answer::HugeLength,
            Answer::WrongContentType,
            Answer::NoStreamId,
            Answer::HeartbeatFirst,
            Answer::Unavailable,
            subscribed("fw-9", "good"),
        ];
        let master = FakeMaster::start(encoding, script).await;
        let (handle, mut events, stop) = start(config(&[master.url()], encoding), None);
        assert_eq!(
            next_subscribed(&mut events).await,
            ("fw-9".to_string(), "good".to_string()),
            "{encoding}"
        );
        assert_eq!(master.subscribes().len(), 7);
        assert_eq!(handle.stats().subscriptions.load(Ordering::Relaxed), 1);
        stop.cancel();
        master.stop();
    }
}

#[tokio::test]
async fn a_call_answered_403_makes_the_session_resubscribe() {
    let encoding = Encoding::Protobuf;
    let master = FakeMaster::start(
        encoding,
        vec![subscribed("fw-3", "one"), subscribed("fw-3", "two")],
    )
    .await;
    let (handle, mut events, stop) = start(config(&[master.url()], encoding), None);
    next_subscribed(&mut events).await;
    master.answer_calls_with(axum::http::StatusCode::FORBIDDEN);
    let err = handle.call(calls::revive(vec![])).await.unwrap_err();
    assert!(err.subscription_lost(), "{err}");
    assert_eq!(next_subscribed(&mut events).await.1, "two");
    master.answer_calls_with(axum::http::StatusCode::ACCEPTED);
    handle.call(calls::revive(vec![])).await.unwrap();
    wait_until(|| {
        master
            .calls()
            .last()
            .is_some_and(|(_, s)| s.as_deref() == Some("two"))
    })
    .await;
    stop.cancel();
    master.stop();
}

#[tokio::test]
async fn shutdown_never_sends_teardown() {
    let encoding = Encoding::Json;
    let master = FakeMaster::start(encoding, vec![subscribed("fw-4", "s")]).await;
    let (_handle, mut events, stop) = start(config(&[master.url()], encoding), None);
    next_subscribed(&mut events).await;
    stop.cancel();
    // The session loop ends: its event channel closes.
    tokio::time::timeout(DEADLINE, async { while events.recv().await.is_some() {} })
        .await
        .unwrap();
    assert!(
        master
            .calls()
            .iter()
            .all(|(c, _)| c.r#type != Some(call::Type::Teardown as i32))
    );
    master.stop();
}
