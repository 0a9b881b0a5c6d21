//! Unit tests of the loop under tokio's paused time: the loop runs whole
//! (its store in memory, Mesos replaced by a recorder of calls and a
//! channel of events), and every timing rule is watched on the
//! scheduler's clock, which follows the paused time: launch delays that
//! grow, launch timeouts, drains before kills, deployment deadlines,
//! reconciliation retries that back off, and a store that refuses writes.
//!
//! Time jumps ahead whenever the runtime idles (auto-advance), also while
//! a store write runs on the blocking pool, so the tests bound times from
//! below (nothing early) and from above by a margin, never exactly.

use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use futures::future::BoxFuture;
use mesos_proto::scheduler::{Call, Event as MesosEvent, call, event};
use mesos_proto::util::{agent_id, framework_id, offer_id, ranges_resource, scalar_resource};
use mesos_proto::v1::{self, TaskState, task_status::Source};
use tokio::sync::{broadcast, mpsc};
use tokio_util::sync::CancellationToken;

use crate::clock::Clock;
use crate::mesos::session::{SessionConfig, SessionEvent};
use crate::mesos::{MasterEndpoint, MesosError, MesosHandle};
use crate::reconcile::events::{BusEvent, Event};
use crate::reconcile::{ExecutorChoice, MesosPort, Scheduler, SchedulerConfig, SchedulerHandle};
use crate::state::app::{AppDefaults, AppDefinition, PathId, Timestamp};
use crate::state::{Category, Change, GroupError, MemoryStore, Snapshot, Store, StoreError};

const START_MS: i64 = 1_700_000_000_000;
/// Longest a test waits for anything, in (paused) time.
const PATIENCE: Duration = Duration::from_secs(3_600);

/// Records the calls the loop sends.
struct Recorder(mpsc::UnboundedSender<Call>);

impl MesosPort for Recorder {
    fn call(&self, call: Call) -> BoxFuture<'static, Result<(), MesosError>> {
        let _ = self.0.send(call);
        Box::pin(async { Ok(()) })
    }

    fn reconnect(&self) {}
}

/// A memory store whose writes can be made to fail, and which remembers
/// every write it took (as its batches: one for `apply`, several for a
/// group commit).
#[derive(Default)]
struct FlakyStore {
    inner: MemoryStore,
    refuse: AtomicBool,
    writes: Mutex<Vec<Vec<Vec<Change>>>>,
}

impl FlakyStore {
    /// The writes so far that stored an app definition, as their batches.
    fn app_writes(&self) -> Vec<Vec<Vec<Change>>> {
        let stores_app = |c: &Change| {
            matches!(
                c,
                Change::Put {
                    category: Category::App,
                    ..
                }
            )
        };
        self.writes
            .lock()
            .unwrap()
            .iter()
            .filter(|w| w.iter().flatten().any(stores_app))
            .cloned()
            .collect()
    }

    fn write_count(&self) -> usize {
        self.writes.lock().unwrap().len()
    }
}

impl Store for FlakyStore {
    fn load(&self) -> Result<Snapshot, StoreError> {
        self.inner.load()
    }

    fn apply(&self, changes: &[Change]) -> Result<(), StoreError> {
        if self.refuse.load(Ordering::SeqCst) {
            return Err(StoreError::Backend("disk full".into()));
        }
        self.writes.lock().unwrap().push(vec![changes.to_vec()]);
        self.inner.apply(changes)
    }

    fn apply_group(&self, batches: &[Vec<Change>]) -> Result<(), GroupError> {
        if self.refuse.load(Ordering::SeqCst) {
            return Err(GroupError {
                committed: 0,
                error: StoreError::Backend("disk full".into()),
            });
        }
        self.writes.lock().unwrap().push(batches.to_vec());
        self.inner
            .apply(&batches.concat())
            .map_err(|error| GroupError {
                committed: 0,
                error,
            })
    }
}

struct Harness {
    scheduler: SchedulerHandle,
    mesos: mpsc::Sender<SessionEvent>,
    calls: mpsc::UnboundedReceiver<Call>,
    bus: broadcast::Receiver<Arc<BusEvent>>,
    store: Arc<FlakyStore>,
    clock: Clock,
    shutdown: CancellationToken,
    stopped: tokio::task::JoinHandle<()>,
}

impl Harness {
    /// The loop over `store`, subscribed; `tune` adjusts its settings.
    async fn start(store: Arc<FlakyStore>, tune: impl FnOnce(&mut SchedulerConfig)) -> Harness {
        let clock = Clock::following_tokio(Timestamp::from_millis(START_MS));
        let session = SessionConfig::new(
            vec![MasterEndpoint::parse("127.0.0.1:5050").unwrap()],
            v1::FrameworkInfo::default(),
        );
        let mut config = SchedulerConfig::new(session, "*".into(), ExecutorChoice::Command);
        config.clock = clock;
        config.drain = Duration::ZERO;
        tune(&mut config);
        let (mesos, events) = mpsc::channel(64);
        let (calls_tx, calls) = mpsc::unbounded_channel();
        let shutdown = CancellationToken::new();
        let (scheduler, stopped) = Scheduler::start_with(
            config,
            store.clone(),
            events,
            Arc::new(Recorder(calls_tx)),
            MesosHandle::detached(),
            shutdown.clone(),
        )
        .unwrap();
        let bus = scheduler.subscribe_events();
        mesos
            .send(SessionEvent::Subscribed {
                framework_id: framework_id("fw"),
                master: MasterEndpoint::parse("127.0.0.1:5050").unwrap(),
                stream_id: "stream".into(),
                heartbeat_interval: Duration::from_secs(15),
            })
            .await
            .unwrap();
        Harness {
            scheduler,
            mesos,
            calls,
            bus,
            store,
            clock,
            shutdown,
            stopped,
        }
    }

    fn now(&self) -> Timestamp {
        self.clock.now()
    }

    /// Milliseconds since `since` on the scheduler's clock.
    fn since(&self, since: Timestamp) -> i64 {
        self.now().as_millis() - since.as_millis()
    }

    /// The next call of `kind` (others are skipped), and when it came.
    async fn next_call(&mut self, kind: call::Type) -> (Call, Timestamp) {
        let wanted = Some(kind as i32);
        tokio::time::timeout(PATIENCE, async {
            loop {
                let call = self.calls.recv().await.expect("the loop runs");
                if call.r#type == wanted {
                    return (call, self.clock.now());
                }
            }
        })
        .await
        .unwrap_or_else(|_| panic!("no {kind:?} call within {PATIENCE:?}"))
    }

    /// The next event matching `predicate`.
    async fn next_event(&mut self, what: &str, predicate: impl Fn(&Event) -> bool) -> Event {
        tokio::time::timeout(PATIENCE, async {
            loop {
                let e = self.bus.recv().await.expect("the bus is open");
                if predicate(&e.event) {
                    return e.event.clone();
                }
            }
        })
        .await
        .unwrap_or_else(|_| panic!("no event: {what}"))
    }

    async fn mesos(&self, event: MesosEvent) {
        self.mesos
            .send(SessionEvent::Event(Box::new(event)))
            .await
            .unwrap();
    }

    /// An offer of a whole small agent.
    async fn offer(&self, n: u32) {
        self.offer_of(
            n,
            vec![
                scalar_resource("cpus", 4.0),
                scalar_resource("mem", 4096.0),
                scalar_resource("disk", 4096.0),
                ranges_resource("ports", &[(31000, 31100)]),
            ],
        )
        .await;
    }

    /// An offer on agent-1 of exactly `resources`.
    async fn offer_of(&self, n: u32, resources: Vec<v1::Resource>) {
        self.mesos(MesosEvent {
            r#type: Some(event::Type::Offers as i32),
            offers: Some(event::Offers {
                offers: vec![v1::Offer {
                    id: offer_id(format!("offer-{n}")),
                    framework_id: framework_id("fw"),
                    agent_id: agent_id("agent-1"),
                    hostname: "10.0.0.1".into(),
                    resources,
                    ..Default::default()
                }],
            }),
            ..Default::default()
        })
        .await;
    }

    /// A status update of `task_id` from its executor (with a uuid: it
    /// must be acknowledged).
    async fn update(&self, task_id: &str, state: TaskState, uuid: u8) {
        self.update_with_health(task_id, state, uuid, None).await;
    }

    /// [`Harness::update`] carrying a Mesos-level health verdict.
    async fn update_with_health(
        &self,
        task_id: &str,
        state: TaskState,
        uuid: u8,
        healthy: Option<bool>,
    ) {
        let mut status =
            mesos_proto::util::status(mesos_proto::util::task_id(task_id), state, Source::Executor);
        status.agent_id = Some(agent_id("agent-1"));
        status.uuid = Some(vec![uuid]);
        status.timestamp = None;
        status.healthy = healthy;
        self.mesos(MesosEvent {
            r#type: Some(event::Type::Update as i32),
            update: Some(event::Update { status }),
            ..Default::default()
        })
        .await;
    }

    /// Stores `app` (as the API would) and returns once it is written.
    async fn put(&self, json: serde_json::Value) {
        self.scheduler.put_app(app(json)).await.expect("stored");
    }

    async fn stop(self) {
        self.shutdown.cancel();
        self.stopped.await.unwrap();
    }
}

/// An app definition from its JSON.
fn app(json: serde_json::Value) -> AppDefinition {
    AppDefinition::from_value(&json, &PathId::root(), &AppDefaults::default()).expect("a valid app")
}

/// The task ids an ACCEPT launches.
fn launched(call: &Call) -> Vec<String> {
    call.accept
        .iter()
        .flat_map(|a| &a.operations)
        .filter_map(|o| o.launch.as_ref())
        .flat_map(|l| &l.task_infos)
        .map(|t| t.task_id.value.clone())
        .collect()
}

fn killed(call: &Call) -> String {
    call.kill
        .as_ref()
        .map(|k| k.task_id.value.clone())
        .unwrap_or_default()
}

/// Launches the one waiting instance of the app and returns its task id.
async fn launch(h: &mut Harness, offer: u32) -> (String, Timestamp) {
    h.offer(offer).await;
    let (accept, at) = h.next_call(call::Type::Accept).await;
    let tasks = launched(&accept);
    assert_eq!(tasks.len(), 1, "{accept:?}");
    (tasks[0].clone(), at)
}

#[tokio::test(start_paused = true)]
async fn launch_delays_grow_with_each_failure_and_hold_launches_back() {
    let mut h = Harness::start(Arc::default(), |_| {}).await;
    h.put(serde_json::json!({
        "id": "/crashy", "cmd": "exit 1", "cpus": 0.1, "mem": 16, "instances": 1,
        "backoffSeconds": 10, "backoffFactor": 2, "maxLaunchDelaySeconds": 3600,
    }))
    .await;
    let (first, _) = launch(&mut h, 1).await;
    h.update(&first, TaskState::TaskFailed, 1).await;
    let failed_at = h.now();
    h.next_call(call::Type::Acknowledge).await;
    // The instance waits 10 s: no launch on an offer before then.
    h.next_call(call::Type::Revive).await;
    assert!(
        h.since(failed_at) >= 10_000,
        "revived {} ms after the failure",
        h.since(failed_at)
    );
    let (second, launched_at) = launch(&mut h, 2).await;
    assert!(launched_at.as_millis() - failed_at.as_millis() >= 10_000);
    assert_ne!(first, second, "the next incarnation");
    let view = h.scheduler.view();
    let delay = view.delays.values().next().expect("a delay");
    assert_eq!(delay.delay_ms, 10_000);

    // The second failure doubles it.
    h.update(&second, TaskState::TaskFailed, 2).await;
    let failed_again = h.now();
    h.next_call(call::Type::Revive).await;
    let waited = h.since(failed_again);
    assert!((20_000..25_000).contains(&waited), "waited {waited} ms");
    assert_eq!(
        h.scheduler.view().delays.values().next().unwrap().delay_ms,
        20_000
    );
    h.stop().await;
}

#[tokio::test(start_paused = true)]
async fn a_task_stuck_before_running_is_killed_after_the_launch_timeout_and_replaced() {
    let mut h = Harness::start(Arc::default(), |c| {
        c.limits.task_launch_timeout = Duration::from_secs(60);
    })
    .await;
    h.put(serde_json::json!({"id": "/slow", "cmd": "sleep 1", "cpus": 0.1, "mem": 16, "instances": 1}))
    .await;
    let (task, launched_at) = launch(&mut h, 1).await;
    h.update(&task, TaskState::TaskStaging, 1).await;
    let (kill, killed_at) = h.next_call(call::Type::Kill).await;
    assert_eq!(killed(&kill), task);
    let waited = killed_at.as_millis() - launched_at.as_millis();
    assert!(
        (60_000..65_000).contains(&waited),
        "killed {waited} ms after the launch"
    );
    // Once the kill lands, the instance is launched again.
    h.update(&task, TaskState::TaskKilled, 2).await;
    let (again, _) = launch(&mut h, 2).await;
    assert!(again.ends_with("._app.2"), "{again}");
    h.stop().await;
}

#[tokio::test(start_paused = true)]
async fn a_healthy_task_is_drained_before_it_is_killed() {
    let mut h = Harness::start(Arc::default(), |c| c.drain = Duration::from_secs(5)).await;
    h.put(
        serde_json::json!({"id": "/web", "cmd": "serve", "cpus": 0.1, "mem": 16, "instances": 1}),
    )
    .await;
    let (task, _) = launch(&mut h, 1).await;
    h.update(&task, TaskState::TaskRunning, 1).await;
    h.next_event("running", |e| matches!(e, Event::StatusUpdate { instance, .. }
        if instance.task.as_ref().is_some_and(|t| t.condition == crate::state::instance::Condition::Running)))
    .await;
    h.put(
        serde_json::json!({"id": "/web", "cmd": "serve", "cpus": 0.1, "mem": 16, "instances": 0}),
    )
    .await;
    let draining_from = h.now();
    // At once: shown as TASK_KILLING while it still serves.
    let shown = h
        .next_event("the drain", |e| {
            matches!(e, Event::StatusUpdate { message, .. }
            if message.as_deref() == Some("draining before kill"))
        })
        .await;
    let Event::StatusUpdate { instance, .. } = shown else {
        unreachable!()
    };
    assert_eq!(
        instance.task.as_ref().unwrap().shown_state(),
        "TASK_KILLING"
    );
    assert!(h.since(draining_from) < 1_000);
    // The kill comes once the drain is over.
    let (kill, at) = h.next_call(call::Type::Kill).await;
    assert_eq!(killed(&kill), task);
    let drained = at.as_millis() - draining_from.as_millis();
    assert!(
        (5_000..7_000).contains(&drained),
        "killed after {drained} ms"
    );
    h.stop().await;
}

#[tokio::test(start_paused = true)]
async fn a_deployment_past_its_deadline_says_why_and_keeps_going() {
    let mut h = Harness::start(Arc::default(), |_| {}).await;
    let started = h.now();
    h.put(serde_json::json!({
        "id": "/stuck", "cmd": "serve", "cpus": 0.1, "mem": 16, "instances": 1,
        "labels": {"BATON_DEPLOYMENT_TIMEOUT_SECONDS": "30"},
    }))
    .await;
    // No offer ever comes.
    let failed = h
        .next_event("deployment_failed", |e| {
            matches!(e, Event::DeploymentFailed { .. })
        })
        .await;
    let late = h.since(started);
    assert!((30_000..32_000).contains(&late), "reported after {late} ms");
    let Event::DeploymentFailed { deployment, reason } = failed else {
        unreachable!()
    };
    assert_eq!(
        reason,
        "0 of 1 instances of the new version are running, healthy and ready"
    );
    let stored = h.scheduler.view().deployments.get(&deployment.id).cloned();
    let failure = stored
        .expect("still in progress")
        .failure
        .clone()
        .expect("stored");
    assert_eq!(failure.app_id.as_str(), "/stuck");
    // An offer later, the deployment still finishes.
    let (task, _) = launch(&mut h, 1).await;
    h.update(&task, TaskState::TaskRunning, 1).await;
    h.next_event("deployment_success", |e| {
        matches!(e, Event::DeploymentSuccess(_))
    })
    .await;
    h.stop().await;
}

#[tokio::test(start_paused = true)]
async fn unanswered_reconciliation_is_asked_again_at_doubling_intervals() {
    // A task Baton knows runs.
    let store = Arc::new(FlakyStore::default());
    {
        let mut h = Harness::start(store.clone(), |_| {}).await;
        h.put(serde_json::json!({"id": "/kept", "cmd": "serve", "cpus": 0.1, "mem": 16, "instances": 1}))
            .await;
        let (task, _) = launch(&mut h, 1).await;
        h.update(&task, TaskState::TaskRunning, 1).await;
        h.next_call(call::Type::Acknowledge).await;
        h.stop().await;
    }
    let mut h = Harness::start(store, |c| c.reconcile_retry = Duration::from_secs(5)).await;
    let explicit = |call: &Call| call.reconcile.as_ref().is_some_and(|r| !r.tasks.is_empty());
    let mut asked = Vec::new();
    while asked.len() < 4 {
        let (call, at) = h.next_call(call::Type::Reconcile).await;
        assert!(
            explicit(&call),
            "no implicit round before every task answered"
        );
        asked.push(at.as_millis());
    }
    let gaps: Vec<i64> = asked.windows(2).map(|w| w[1] - w[0]).collect();
    for (gap, wanted) in gaps.iter().zip([5_000, 10_000, 20_000]) {
        assert!((wanted..wanted + 2_000).contains(gap), "gaps {gaps:?}");
    }
    assert_eq!(h.scheduler.view().stats.reconcile_cycles, 0);
    h.stop().await;
}

#[tokio::test(start_paused = true)]
async fn an_update_the_store_refuses_is_not_acknowledged_and_counts_when_resent() {
    let store = Arc::new(FlakyStore::default());
    let mut h = Harness::start(store.clone(), |_| {}).await;
    h.put(
        serde_json::json!({"id": "/web", "cmd": "serve", "cpus": 0.1, "mem": 16, "instances": 1}),
    )
    .await;
    let (task, _) = launch(&mut h, 1).await;
    while h.bus.try_recv().is_ok() {}
    h.store.refuse.store(true, Ordering::SeqCst);
    h.update(&task, TaskState::TaskRunning, 7).await;
    // Nothing is acknowledged, announced or changed while the store refuses.
    tokio::time::sleep(Duration::from_secs(10)).await;
    while let Ok(call) = h.calls.try_recv() {
        assert_ne!(
            call.r#type,
            Some(call::Type::Acknowledge as i32),
            "nothing acknowledged: {call:?}"
        );
    }
    while let Ok(e) = h.bus.try_recv() {
        assert!(
            !matches!(
                e.event,
                Event::StatusUpdate { .. } | Event::InstanceChanged(_)
            ),
            "nothing announced: {:?}",
            e.event.event_type()
        );
    }
    let view = h.scheduler.view();
    let instance = view.all_instances().next().unwrap();
    assert_ne!(
        instance.condition(),
        Some(crate::state::instance::Condition::Running)
    );
    // A write a client asks for fails whole, with the store's error.
    let refused = h
        .scheduler
        .put_app(
            AppDefinition::from_value(
                &serde_json::json!({"id": "/other", "cmd": "x"}),
                &PathId::root(),
                &AppDefaults::default(),
            )
            .unwrap(),
        )
        .await;
    assert!(matches!(
        refused,
        Err(crate::reconcile::SchedulerError::Store(_))
    ));
    assert!(
        h.scheduler
            .view()
            .apps
            .keys()
            .all(|id| id.as_str() != "/other")
    );
    // Mesos resends the unacknowledged update; the store is back.
    h.store.refuse.store(false, Ordering::SeqCst);
    h.update(&task, TaskState::TaskRunning, 7).await;
    let (ack, _) = h.next_call(call::Type::Acknowledge).await;
    assert_eq!(ack.acknowledge.unwrap().uuid, vec![7]);
    let view = h.scheduler.view();
    let instance = view.all_instances().next().unwrap();
    assert_eq!(
        instance.condition(),
        Some(crate::state::instance::Condition::Running)
    );
    assert_eq!(view.stats.updates_applied, 1);
    h.stop().await;
}

#[tokio::test(start_paused = true)]
async fn a_mesos_health_failure_the_store_refused_counts_once_when_resent() {
    let store = Arc::new(FlakyStore::default());
    let mut h = Harness::start(store, |_| {}).await;
    h.put(serde_json::json!({
        "id": "/web", "cmd": "serve", "cpus": 0.1, "mem": 16, "instances": 1,
        "portDefinitions": [{"port": 0}],
        "healthChecks": [{"protocol": "MESOS_TCP", "portIndex": 0,
                          "maxConsecutiveFailures": 2, "gracePeriodSeconds": 0}],
    }))
    .await;
    let (task, _) = launch(&mut h, 1).await;
    h.update_with_health(&task, TaskState::TaskRunning, 1, Some(true))
        .await;
    h.next_call(call::Type::Acknowledge).await;
    let failures = |h: &Harness| {
        h.scheduler
            .view()
            .health
            .get(&task)
            .and_then(|results| results.first().map(|r| r.state.consecutive_failures))
    };
    // A failure the store refuses is not kept...
    h.store.refuse.store(true, Ordering::SeqCst);
    h.update_with_health(&task, TaskState::TaskRunning, 2, Some(false))
        .await;
    tokio::time::sleep(Duration::from_secs(10)).await;
    assert_eq!(failures(&h), Some(0));
    // ...so Mesos resending it makes one failure of two, not two.
    h.store.refuse.store(false, Ordering::SeqCst);
    h.update_with_health(&task, TaskState::TaskRunning, 2, Some(false))
        .await;
    let (ack, _) = h.next_call(call::Type::Acknowledge).await;
    assert_eq!(ack.acknowledge.unwrap().uuid, vec![2]);
    assert_eq!(failures(&h), Some(1));
    let view = h.scheduler.view();
    let instance = view.all_instances().next().unwrap();
    assert_eq!(instance.task.as_ref().unwrap().retire_for_health, None);
    // The second one in a row replaces it.
    h.update_with_health(&task, TaskState::TaskRunning, 3, Some(false))
        .await;
    h.next_event("replaced for failing its checks", |e| {
        matches!(e, Event::UnhealthyKill { .. })
    })
    .await;
    assert_eq!(failures(&h), Some(2));
    h.stop().await;
}

/// Waits until the loop is subscribed and no deployment runs (passes run,
/// and apps without instances are done with their deployments).
async fn settled(h: &Harness) {
    h.scheduler
        .wait_for(PATIENCE, |v| v.subscribed && v.deployments.is_empty())
        .await
        .expect("subscribed, no deployment left");
}

/// A create as `POST /v2/apps` makes it: refused when the app exists.
fn create_only(definition: AppDefinition) -> (PathId, crate::reconcile::AppEdit) {
    let id = definition.id.clone();
    (
        id,
        Box::new(move |ctx| match ctx.current {
            Some(existing) => Err(crate::reconcile::SchedulerError::AlreadyExists(
                existing.id.clone(),
            )),
            None => Ok(Some(definition.with_version(ctx.now, false))),
        }),
    )
}

/// The keys of the records of `category` in `batches`.
fn keys(batches: &[Vec<Change>], category: Category) -> Vec<String> {
    batches
        .iter()
        .flatten()
        .filter_map(|c| match c {
            Change::Put {
                category: c, key, ..
            } if *c == category => Some(key.clone()),
            _ => None,
        })
        .collect()
}

#[tokio::test(start_paused = true)]
async fn queued_app_writes_are_one_store_write_and_each_gets_its_own_answer() {
    let store = Arc::new(FlakyStore::default());
    let mut h = Harness::start(store.clone(), |_| {}).await;
    settled(&h).await;
    // Sent at once: all are waiting when the loop takes the first.
    let ids: Vec<String> = (0..8).map(|i| format!("/group/app-{i}")).collect();
    let outcomes = futures::future::join_all(ids.iter().map(|id| {
        h.scheduler.put_app(app(serde_json::json!({
            "id": id, "cmd": "serve", "cpus": 0.1, "mem": 16, "instances": 1,
        })))
    }))
    .await;
    let outcomes: Vec<_> = outcomes
        .into_iter()
        .map(|o| o.expect("every write succeeds"))
        .collect();
    // One store write for the eight, each its own atomic batch, first;
    // then, in the same write, what the pass over their apps decided
    // (their instances).
    let writes = store.app_writes();
    assert_eq!(writes.len(), 1, "{} store writes", writes.len());
    let group = &writes[0];
    assert!(group.len() >= 8, "{} batches", group.len());
    for (batch, id) in group.iter().zip(&ids) {
        assert_eq!(
            keys(std::slice::from_ref(batch), Category::App),
            std::slice::from_ref(id)
        );
        assert_eq!(
            keys(std::slice::from_ref(batch), Category::Deployment).len(),
            1
        );
    }
    assert!(keys(&group[8..], Category::App).is_empty());
    assert_eq!(keys(&group[8..], Category::Instance).len(), 8);
    // Each its own deployment and version, as if sent one by one.
    let deployments: std::collections::BTreeSet<&str> =
        outcomes.iter().map(|o| o.deployment_id.as_str()).collect();
    assert_eq!(deployments.len(), 8);
    for (outcome, id) in outcomes.iter().zip(&ids) {
        let stored = outcome.app.as_ref().expect("the app as stored");
        assert_eq!(stored.id.as_str(), id);
        assert_eq!(stored.version, Some(outcome.version));
        assert!(outcome.created);
    }
    // Answered only once published, and announced: every deployment.
    let view = h.scheduler.view();
    for id in &ids {
        assert!(view.apps.keys().any(|a| a.as_str() == id), "{id} published");
    }
    let mut announced = std::collections::BTreeSet::new();
    while announced.len() < 8 {
        if let Event::DeploymentInfo { deployment, .. } = h
            .next_event("deployment_info", |e| {
                matches!(e, Event::DeploymentInfo { .. })
            })
            .await
        {
            announced.insert(deployment.id.clone());
        }
    }
    assert_eq!(
        announced,
        deployments.iter().map(|d| d.to_string()).collect()
    );
    h.stop().await;
}

#[tokio::test(start_paused = true)]
async fn a_failing_write_in_a_group_leaves_no_trace_and_the_others_are_applied() {
    let store = Arc::new(FlakyStore::default());
    let mut h = Harness::start(store.clone(), |c| c.max_instances_per_app = 10).await;
    h.put(
        serde_json::json!({"id": "/exists", "cmd": "old", "cpus": 0.1, "mem": 16, "instances": 0}),
    )
    .await;
    settled(&h).await;
    let old_version = h.scheduler.view().apps.values().next().unwrap().version;
    while h.bus.try_recv().is_ok() {}
    let definition = |id: &str, instances: u32| {
        app(serde_json::json!({
            "id": id, "cmd": "new", "cpus": 0.1, "mem": 16, "instances": instances,
        }))
    };
    let s = &h.scheduler;
    let (a, exists, too_big, b) = tokio::join!(
        s.put_app(definition("/a", 1)),
        async {
            let (id, edit) = create_only(definition("/exists", 1));
            s.edit_app(id, false, edit).await
        },
        s.put_app(definition("/too-big", 11)),
        s.put_app(definition("/b", 1)),
    );
    let (a, b) = (a.expect("/a written"), b.expect("/b written"));
    assert!(
        matches!(
            exists,
            Err(crate::reconcile::SchedulerError::AlreadyExists(_))
        ),
        "{exists:?}"
    );
    assert!(
        matches!(too_big, Err(crate::reconcile::SchedulerError::App(_))),
        "{too_big:?}"
    );
    // One store write holding exactly the two writes that succeeded (and
    // their instances, scheduled by the pass that joined it).
    let writes = store.app_writes();
    let group = writes.last().expect("the group's write");
    assert_eq!(keys(&group[..2], Category::App), ["/a", "/b"]);
    assert_eq!(keys(group, Category::App), ["/a", "/b"]);
    let mut stored_deployments = keys(group, Category::Deployment);
    stored_deployments.sort();
    let mut answered = vec![a.deployment_id.clone(), b.deployment_id.clone()];
    answered.sort();
    assert_eq!(stored_deployments, answered);
    // No trace of the failures: neither stored, nor shown, nor announced.
    let stored = store.inner.load().unwrap();
    let stored_apps: Vec<&String> = stored.records[&Category::App].keys().collect();
    assert_eq!(stored_apps, ["/a", "/b", "/exists"]);
    let view = h.scheduler.view();
    assert!(view.apps.keys().all(|id| id.as_str() != "/too-big"));
    let exists_now = view.apps.values().find(|a| a.id.as_str() == "/exists");
    assert_eq!(exists_now.and_then(|a| a.version), old_version);
    assert_eq!(exists_now.map(|a| a.cmd.clone()), Some(Some("old".into())));
    let mut announced = Vec::new();
    while let Ok(e) = h.bus.try_recv() {
        if let Event::DeploymentInfo { deployment, .. } = &e.event {
            announced.push(deployment.id.clone());
        }
    }
    announced.sort();
    assert_eq!(announced, answered);
    h.stop().await;
}

#[tokio::test(start_paused = true)]
async fn writes_to_the_same_app_wait_for_the_next_group() {
    let store = Arc::new(FlakyStore::default());
    let h = Harness::start(store.clone(), |_| {}).await;
    settled(&h).await;
    let s = &h.scheduler;
    let zero = |cmd: &str| {
        app(serde_json::json!({"id": "/same", "cmd": cmd, "cpus": 0.1, "mem": 16, "instances": 0}))
    };
    // A create, then an update without force, sent together: the update
    // sees the create published and its deployment over, as it would have
    // one at a time — not refused as locked by the create's deployment.
    let (created, updated) = tokio::join!(
        async {
            let (id, edit) = create_only(zero("first"));
            s.edit_app(id, false, edit).await
        },
        async {
            let next = zero("second");
            s.edit_app(
                PathId::parse("/same", &PathId::root()).unwrap(),
                false,
                Box::new(move |ctx| Ok(Some(next.next_version_of(ctx.current, ctx.now)))),
            )
            .await
        },
    );
    let (created, updated) = (created.expect("created"), updated.expect("updated"));
    assert!(created.created && !updated.created);
    assert!(updated.version > created.version);
    assert_eq!(store.app_writes().len(), 2);
    h.stop().await;
}

#[tokio::test(start_paused = true)]
async fn a_group_the_store_refuses_fails_every_write_in_it_and_changes_nothing() {
    let store = Arc::new(FlakyStore::default());
    let mut h = Harness::start(store.clone(), |_| {}).await;
    h.put(serde_json::json!({"id": "/before", "cmd": "x", "cpus": 0.1, "mem": 16, "instances": 0}))
        .await;
    settled(&h).await;
    while h.bus.try_recv().is_ok() {}
    let writes_before = store.write_count();
    store.refuse.store(true, Ordering::SeqCst);
    let results = futures::future::join_all((0..4).map(|i| {
        h.scheduler.put_app(app(serde_json::json!({
            "id": format!("/refused-{i}"), "cmd": "x", "cpus": 0.1, "mem": 16, "instances": 1,
        })))
    }))
    .await;
    for result in &results {
        assert!(
            matches!(result, Err(crate::reconcile::SchedulerError::Store(_))),
            "{result:?}"
        );
    }
    let view = h.scheduler.view();
    assert_eq!(
        view.apps.keys().map(PathId::as_str).collect::<Vec<_>>(),
        ["/before"]
    );
    assert!(view.deployments.is_empty());
    while let Ok(e) = h.bus.try_recv() {
        assert!(
            !matches!(e.event, Event::DeploymentInfo { .. }),
            "nothing announced"
        );
    }
    assert_eq!(store.write_count(), writes_before);
    // The store back, the next write goes through.
    store.refuse.store(false, Ordering::SeqCst);
    h.put(serde_json::json!({"id": "/after", "cmd": "x", "cpus": 0.1, "mem": 16, "instances": 0}))
        .await;
    h.stop().await;
}

#[tokio::test(start_paused = true)]
async fn a_resident_apps_volumes_resources_and_host_ports_cannot_change() {
    let store = Arc::new(FlakyStore::default());
    let h = Harness::start(store, |_| {}).await;
    let with_volume = |size: u32, instances: u32| {
        serde_json::json!({"id": "/db", "cmd": "x", "cpus": 0.1, "mem": 16, "role": "db",
            "instances": instances,
            "container": {"type": "MESOS", "volumes": [
                {"containerPath": "data", "mode": "RW", "persistent": {"size": size}}]}})
    };
    h.put(with_volume(10, 0)).await;
    // Scaling, or any change leaving the volumes be, is fine.
    h.put(with_volume(10, 1)).await;
    // Resizing the volume is refused, naming the field; nothing changes.
    let err = h
        .scheduler
        .put_app(app(with_volume(20, 1)))
        .await
        .expect_err("refused");
    let crate::reconcile::SchedulerError::App(e) = err else {
        panic!("{err}")
    };
    assert_eq!(e.status(), 422);
    assert_eq!(e.body()["details"][0]["path"], "/container/volumes");
    let stored = h.scheduler.view().apps.values().next().unwrap().clone();
    assert_eq!(
        crate::offers::reservation::persistent_volumes(&stored)[0].size_mb,
        10.0
    );
    // Nor what its instances reserved: resources and host ports (Marathon's
    // "Resident Tasks may not change resource requirements").
    let mut more_mem = with_volume(10, 1);
    more_mem["mem"] = serde_json::json!(32);
    let mut a_port = with_volume(10, 1);
    a_port["portDefinitions"] = serde_json::json!([{"port": 0}, {"port": 0}]);
    for (changed, path) in [(more_mem, "/mem"), (a_port, "/portDefinitions")] {
        let err = h
            .scheduler
            .put_app(app(changed))
            .await
            .expect_err("refused");
        let crate::reconcile::SchedulerError::App(e) = err else {
            panic!("{err}")
        };
        assert_eq!(e.status(), 422);
        assert_eq!(e.body()["details"][0]["path"], path, "{}", e.body());
    }
    h.stop().await;
}

#[tokio::test(start_paused = true)]
async fn a_resident_pods_volumes_resources_and_host_ports_cannot_change() {
    let store = Arc::new(FlakyStore::default());
    let h = Harness::start(store, |_| {}).await;
    let pod = |size: u32, mem: u32, host_port: u32, instances: u32| {
        let pod = crate::state::app::pod::PodDefinition::from_value(
            &serde_json::json!({"id": "/db", "role": "db", "scaling": {"instances": instances},
                "volumes": [{"name": "data", "persistent": {"size": size}}],
                "containers": [{"name": "store", "resources": {"cpus": 0.1, "mem": mem},
                    "exec": {"command": {"shell": "sleep 600"}},
                    "endpoints": [{"name": "peer", "hostPort": host_port}],
                    "volumeMounts": [{"name": "data", "mountPath": "data"}]}]}),
            &PathId::root(),
            &AppDefaults::default(),
        )
        .expect("a valid resident pod");
        AppDefinition::for_pod(pod)
    };
    h.scheduler
        .put_app(pod(10, 32, 31000, 0))
        .await
        .expect("created");
    // Scaling leaves what the instances reserved be.
    h.scheduler
        .put_app(pod(10, 32, 31000, 1))
        .await
        .expect("scaled");
    for (changed, path) in [
        (pod(20, 32, 31000, 1), "/volumes"),
        (pod(10, 64, 31000, 1), "/containers"),
        (pod(10, 32, 31001, 1), "/containers"),
    ] {
        let err = h.scheduler.put_app(changed).await.expect_err("refused");
        let crate::reconcile::SchedulerError::App(e) = err else {
            panic!("{err}")
        };
        assert_eq!(e.status(), 422);
        assert_eq!(e.body()["details"][0]["path"], path, "{}", e.body());
    }
    let stored = h.scheduler.view().apps.values().next().unwrap().clone();
    let stored = stored.pod_definition().unwrap();
    assert_eq!(stored.containers[0].resources.mem, 32.0);
    assert_eq!(stored.instances, 1);
    h.stop().await;
}

/// The types of an ACCEPT's operations.
fn operation_types(call: &Call) -> Vec<v1::offer::operation::Type> {
    call.accept
        .iter()
        .flat_map(|a| &a.operations)
        .map(|o| o.r#type())
        .collect()
}

/// A resident pod launched on offer 1 (RESERVE, CREATE, LAUNCH_GROUP),
/// running, then deleted and its task ended: offers are wanted again. Its
/// executor and task as launched.
async fn deleted_resident_pod(h: &mut Harness) -> (v1::ExecutorInfo, v1::TaskInfo) {
    use v1::offer::operation::Type as Op;
    let pod = crate::state::app::pod::PodDefinition::from_value(
        &serde_json::json!({"id": "/db", "role": "db",
            "volumes": [{"name": "data", "persistent": {"size": 16}}],
            "containers": [{"name": "store", "resources": {"cpus": 0.1, "mem": 32},
                "exec": {"command": {"shell": "sleep 600"}},
                "volumeMounts": [{"name": "data", "mountPath": "data"}]}]}),
        &PathId::root(),
        &AppDefaults::default(),
    )
    .expect("a valid resident pod");
    h.scheduler
        .put_app(AppDefinition::for_pod(pod))
        .await
        .expect("created");
    h.offer(1).await;
    let (accept, _) = h.next_call(call::Type::Accept).await;
    assert_eq!(
        operation_types(&accept),
        [Op::Reserve, Op::Create, Op::LaunchGroup]
    );
    let group = accept.accept.as_ref().unwrap().operations[2]
        .launch_group
        .clone()
        .unwrap();
    let task = group.task_group.tasks[0].clone();
    h.update(&task.task_id.value, TaskState::TaskRunning, 1)
        .await;
    // Forced: the update above may not have ended the start's deployment
    // yet.
    h.scheduler
        .delete_app(PathId::parse("/db", &PathId::root()).unwrap(), true)
        .await
        .expect("deleted");
    h.next_call(call::Type::Kill).await;
    h.update(&task.task_id.value, TaskState::TaskKilled, 2)
        .await;
    h.next_call(call::Type::Revive).await;
    (group.executor, task)
}

#[tokio::test(start_paused = true)]
async fn a_resident_pods_reservation_coming_back_in_parts_is_freed_whole() {
    use v1::offer::operation::Type as Op;
    let store = Arc::new(FlakyStore::default());
    let mut h = Harness::start(store, |_| {}).await;
    let (executor, task) = deleted_resident_pod(&mut h).await;
    // The task's share comes back alone (the executor still holds its
    // own and the volume, as Mesos's default executor does for a moment):
    // it is unreserved, and offers are still wanted.
    h.offer_of(2, task.resources.clone()).await;
    let (accept, second_at) = h.next_call(call::Type::Accept).await;
    assert_eq!(operation_types(&accept), [Op::Unreserve]);
    // The rest comes 10 s later: offers are still wanted meanwhile.
    tokio::time::advance(Duration::from_secs(10)).await;
    // The executor's share with the volume: destroyed and unreserved, and
    // nothing was suppressed before it.
    h.offer_of(3, executor.resources.clone()).await;
    let mut before = Vec::new();
    let accept = tokio::time::timeout(PATIENCE, async {
        loop {
            let call = h.calls.recv().await.expect("the loop runs");
            if call.r#type == Some(call::Type::Accept as i32) {
                return call;
            }
            before.push(call.r#type());
        }
    })
    .await
    .expect("an ACCEPT");
    assert!(!before.contains(&call::Type::Suppress), "{before:?}");
    assert_eq!(operation_types(&accept), [Op::Destroy, Op::Unreserve]);
    let (_, suppressed) = h.next_call(call::Type::Suppress).await;
    // Offers were wanted 30 s from the first part freed (a part cuts the
    // wait, it does not restart it), in case more came.
    let after_second = suppressed.as_millis() - second_at.as_millis();
    assert!(
        (30_000..40_000).contains(&after_second),
        "{after_second} ms"
    );
    h.stop().await;
}

#[tokio::test(start_paused = true)]
async fn persistent_volumes_are_judged_when_an_app_becomes_resident_not_when_it_scales() {
    let with_volume = |id: &str, path: &str, instances: u32| {
        app(
            serde_json::json!({"id": id, "cmd": "x", "cpus": 0.1, "mem": 16, "role": "db",
            "instances": instances,
            "container": {"type": "MESOS", "volumes": [
                {"containerPath": path, "mode": "RW", "persistent": {"size": 10}}]}}),
        )
    };
    // A resident app stored before the rules, with a path Mesos would
    // not mount.
    let store = Arc::new(FlakyStore::default());
    let mut old = with_volume("/old", "var/data", 0);
    old.version = Some(Timestamp::from_millis(START_MS - 1_000));
    store
        .apply(&[Change::put_json(Category::App, "/old", &old).unwrap()])
        .unwrap();
    let h = Harness::start(store, |_| {}).await;
    // It still scales.
    h.scheduler
        .put_app(with_volume("/old", "var/data", 1))
        .await
        .expect("a stored resident app scales");
    // A new one like it is refused, naming the field.
    let err = h
        .scheduler
        .put_app(with_volume("/new", "var/data", 1))
        .await
        .expect_err("refused");
    let crate::reconcile::SchedulerError::App(e) = err else {
        panic!("{err}")
    };
    assert_eq!(e.status(), 422);
    assert_eq!(
        e.body()["details"][0]["path"],
        "/container/volumes(0)/containerPath"
    );
    h.stop().await;
}

#[tokio::test(start_paused = true)]
async fn an_app_never_replaces_a_pod_nor_a_pod_an_app() {
    let store = Arc::new(FlakyStore::default());
    let h = Harness::start(store, |_| {}).await;
    let pod = |id: &str| {
        AppDefinition::for_pod(
            crate::state::app::pod::PodDefinition::from_value(
                &serde_json::json!({"id": id, "scaling": {"instances": 0},
                    "containers": [{"name": "c", "exec": {"command": {"shell": "x"}}}]}),
                &PathId::root(),
                &AppDefaults::default(),
            )
            .expect("a valid pod"),
        )
    };
    let plain = |id: &str| app(serde_json::json!({"id": id, "cmd": "x", "instances": 0}));
    h.scheduler.put_app(pod("/shop/web")).await.expect("a pod");
    h.scheduler
        .put_app(plain("/shop/db"))
        .await
        .expect("an app");
    for (write, path_says) in [
        (plain("/shop/web"), "is a pod; write it through /v2/pods"),
        (pod("/shop/db"), "is an app; write it through /v2/apps"),
    ] {
        let err = h.scheduler.put_app(write).await.expect_err("refused");
        let crate::reconcile::SchedulerError::App(e) = err else {
            panic!("{err}")
        };
        assert_eq!(e.status(), 422);
        assert!(e.body().to_string().contains(path_says), "{}", e.body());
    }
    let view = h.scheduler.view();
    assert!(view.apps[&PathId::parse("/shop/web", &PathId::root()).unwrap()].is_pod());
    assert!(!view.apps[&PathId::parse("/shop/db", &PathId::root()).unwrap()].is_pod());
    h.stop().await;
}
