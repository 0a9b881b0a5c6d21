//! The reconcile loop against a fake master that never answers: what Baton
//! stored is reconciled explicitly, again and again with growing pauses,
//! and a task it still wants is neither killed nor launched twice.
// Waits in real time, so reads the real clock.
#![allow(clippy::disallowed_methods)]

use super::support;

use std::sync::Arc;
use std::time::Duration;

use baton::mesos::{MasterEndpoint, SessionConfig};
use baton::reconcile::{ExecutorChoice, Scheduler, SchedulerConfig};
use baton::state::app::{AppDefaults, AppDefinition, PathId, Timestamp};
use baton::state::instance::{Condition, Instance, InstanceTask};
use baton::state::{Category, Change, MemoryStore, Store};
use mesos_proto::Encoding;
use mesos_proto::scheduler::{Call, call};
use support::fake_master::{Answer, FakeMaster};
use tokio_util::sync::CancellationToken;

fn stored_running_app(store: &MemoryStore) -> String {
    let app = AppDefinition::from_value(
        &serde_json::json!({"id": "/web", "cmd": "sleep 100", "instances": 1}),
        &PathId::root(),
        &AppDefaults::default(),
    )
    .unwrap()
    .with_version(Timestamp::from_millis(1_000), false);
    let mut instance = Instance::schedule(
        app.id.clone(),
        app.version.unwrap(),
        Timestamp::from_millis(1_000),
    );
    let task_id = instance.next_task_id();
    instance.incarnation = 1;
    instance.task = Some(InstanceTask {
        condition: Condition::Running,
        started_at: Some(Timestamp::from_millis(2_000)),
        ..InstanceTask::launched(
            task_id.clone(),
            "agent-1".into(),
            "127.0.0.1".into(),
            vec![31000],
            Timestamp::from_millis(1_000),
        )
    });
    store
        .apply(&[
            Change::framework_id(Some("fw-1")),
            Change::put_json(Category::App, app.id.as_str(), &app).unwrap(),
            Change::put_json(Category::Instance, instance.instance_id(), &instance).unwrap(),
        ])
        .unwrap();
    task_id
}

fn names_task(call: &Call, task_id: &str) -> bool {
    call.reconcile
        .as_ref()
        .is_some_and(|r| r.tasks.iter().any(|t| t.task_id.value == task_id))
}

fn of_type(call: &Call, ty: call::Type) -> bool {
    call.r#type == Some(ty as i32)
}

#[tokio::test]
async fn unanswered_explicit_reconciliation_is_retried_with_backoff_and_nothing_else_acts() {
    let master = FakeMaster::start(
        Encoding::Protobuf,
        vec![Answer::Subscribed {
            framework_id: "fw-1".into(),
            stream_id: "s1".into(),
            heartbeat: Duration::from_millis(200),
            beat: true,
        }],
    )
    .await;
    let store = Arc::new(MemoryStore::default());
    let task_id = stored_running_app(&store);
    let info = mesos_proto::v1::FrameworkInfo {
        user: "test".into(),
        name: "baton".into(),
        ..Default::default()
    };
    let session = SessionConfig::new(vec![MasterEndpoint::parse(&master.url()).unwrap()], info);
    let mut config = SchedulerConfig::new(session, "*".into(), ExecutorChoice::Command);
    config.reconcile_retry = Duration::from_millis(100);
    let shutdown = CancellationToken::new();
    let (scheduler, stopped) = Scheduler::start(config, store, shutdown.clone()).unwrap();

    // 100 + 200 + 400 ms: a fourth request proves the pauses grow but go on.
    let deadline = tokio::time::Instant::now() + Duration::from_secs(10);
    let explicit = loop {
        let explicit: Vec<Call> = master
            .calls()
            .into_iter()
            .map(|(c, _)| c)
            .filter(|c| names_task(c, &task_id))
            .collect();
        if explicit.len() >= 4 {
            break explicit;
        }
        assert!(
            tokio::time::Instant::now() < deadline,
            "explicit reconciliation was not retried: {:?}",
            master.calls()
        );
        tokio::time::sleep(Duration::from_millis(20)).await;
    };
    assert!(explicit.iter().all(|c| of_type(c, call::Type::Reconcile)));
    let subscribe = &master.subscribes()[0];
    assert_eq!(
        subscribe.framework_id.as_ref().map(|f| f.value.as_str()),
        Some("fw-1"),
        "resubscribes as the stored framework"
    );
    let calls: Vec<Call> = master.calls().into_iter().map(|(c, _)| c).collect();
    assert!(
        !calls
            .iter()
            .any(|c| of_type(c, call::Type::Kill) || of_type(c, call::Type::Accept)),
        "a task Baton still wants is neither killed nor launched again: {calls:?}"
    );
    assert!(
        calls.iter().any(|c| of_type(c, call::Type::Suppress)),
        "nothing waits, so offers are suppressed: {calls:?}"
    );
    let view = scheduler.view();
    assert!(view.stats.reconcile_requests >= 4);
    assert_eq!(
        view.stats.reconcile_cycles, 0,
        "never answered, never complete"
    );
    shutdown.cancel();
    stopped.await.unwrap();
    master.stop();
}
