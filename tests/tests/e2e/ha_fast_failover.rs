//! Fast, safe failover with ZooKeeper's stock timing (tickTime 2000) and
//! Baton's default flags (a 10 s session; standbys probe the leader every
//! 250 ms and depose it after 4 failed probes):
//!
//! - `kill -9` of the leader: the standby deposes it and answers writes
//!   within seconds (measured; asserted under 8 s only, to catch a
//!   regression to session expiry), every acknowledged write survives and
//!   the running tasks are kept;
//! - SIGSTOP of the leader for longer than the takeover (but not its
//!   ZooKeeper session: 30 s here, so that only the fences stop it), then
//!   SIGCONT: nothing the resumed process does is applied — ZooKeeper's records and
//!   the service registry are exactly as the new leader left them, it does
//!   not subscribe to Mesos again, no task is launched twice, a write
//!   queued in its socket is either refused or served by the new leader —
//!   and it becomes a standby naming the new leader, without exiting;
//! - at the store itself: writes in flight when the leader's election
//!   znode is deleted land before the deletion or not at all, and a lapsed
//!   lease whose znode is gone refuses a write before it is tried.

use std::collections::{BTreeMap, BTreeSet};
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use baton::lease::{GatedStore, LeaseGate};
use baton::state::{Category, Change, Store, StoreError, ZkStore};
use baton::zk::ZkUrl;
use baton_e2e::baton::{BatonProcess, Master};
use baton_e2e::cluster::MesosLocalProcess;
use baton_e2e::failover::{
    address, first_acknowledged_write, leader_of, leads_and_subscribed, until_leading, write_body,
};
use baton_e2e::router::task_app;
use baton_e2e::zookeeper::ZooKeeper;
use baton_e2e::{procs, wait};
use mesos_proto::Encoding;
use nix::sys::signal::Signal;
use reqwest::Method;
use serde_json::{Value, json};
use tokio::time::Instant;
use zookeeper_client as zk;

const DEADLINE: Duration = Duration::from_secs(120);
/// Far above the expected ~1–2 s, far below session expiry (10 s + load):
/// catches a regression to waiting for ZooKeeper, not jitter.
const TAKEOVER_LIMIT: Duration = Duration::from_secs(8);
/// The least time the leader stays stopped: well past the takeover.
const PAUSE: Duration = Duration::from_secs(5);
/// The stopped leader's ZooKeeper session outlives its pause (and the new
/// leader's scale-up and quiet check), so that on SIGCONT its session is
/// alive and only the fences stand in its way: the hardest case.
const LONG_SESSION_MS: &str = "30000";

/// A `baton` with `--zk` and otherwise default flags, plus `extra`.
async fn start_baton_with(
    mesos: &MesosLocalProcess,
    zk: &ZooKeeper,
    dir: &std::path::Path,
    extra: &[&str],
) -> BatonProcess {
    let url = zk.url("/baton");
    let mut flags = vec!["--zk", url.as_str()];
    flags.extend_from_slice(extra);
    BatonProcess::start(Master::Url(mesos.url.clone()), dir, &flags).await
}

/// A `baton` with `--zk` and otherwise default flags.
async fn start_baton(
    mesos: &MesosLocalProcess,
    zk: &ZooKeeper,
    dir: &std::path::Path,
) -> BatonProcess {
    start_baton_with(mesos, zk, dir, &[]).await
}

/// Waits until both name `leader` as the leader.
async fn both_follow(leader: &BatonProcess, standby: &BatonProcess) {
    let want = address(leader);
    wait::until(DEADLINE, "both to name the same leader", || async {
        let a = leader_of(leader).await?;
        let b = leader_of(standby).await?;
        (a == want && b == want).then_some(())
    })
    .await;
}

/// Writes acknowledged by `url`, sent every 50 ms until stopped.
struct Writer {
    acknowledged: Arc<Mutex<Vec<String>>>,
    stop: Arc<AtomicBool>,
    task: tokio::task::JoinHandle<()>,
}

impl Writer {
    fn start(urls: Vec<String>, prefix: &'static str) -> Writer {
        let acknowledged = Arc::new(Mutex::new(Vec::new()));
        let stop = Arc::new(AtomicBool::new(false));
        let task = {
            let (acknowledged, stop) = (acknowledged.clone(), stop.clone());
            tokio::spawn(async move {
                let http = reqwest::Client::builder()
                    .timeout(Duration::from_secs(10))
                    .no_proxy()
                    .build()
                    .unwrap();
                for n in 0..4000 {
                    if stop.load(Ordering::Relaxed) {
                        return;
                    }
                    let id = format!("{prefix}/w{n}");
                    let url = &urls[n % urls.len()];
                    if let Ok(r) = http
                        .post(format!("{url}/v2/apps"))
                        .json(&write_body(&id))
                        .send()
                        .await
                        && r.status().is_success()
                    {
                        acknowledged.lock().unwrap().push(id);
                    }
                    tokio::time::sleep(Duration::from_millis(50)).await;
                }
            })
        };
        Writer {
            acknowledged,
            stop,
            task,
        }
    }

    fn count(&self) -> usize {
        self.acknowledged.lock().unwrap().len()
    }

    async fn finish(self) -> Vec<String> {
        self.stop.store(true, Ordering::Relaxed);
        self.task.await.unwrap();
        self.acknowledged.lock().unwrap().clone()
    }
}

/// Asserts every id in `written` is an app `baton` knows.
async fn all_there(baton: &BatonProcess, written: &[String]) {
    assert!(!written.is_empty(), "no write was acknowledged");
    for id in written {
        let (status, _) = baton.get(&format!("/v2/apps{id}")).await;
        assert_eq!(status, 200, "{id} was acknowledged and lost");
    }
}

/// Task ids of `app` that `baton` reports running.
async fn running_ids(baton: &BatonProcess, app: &str) -> BTreeSet<String> {
    baton
        .tasks(app)
        .await
        .iter()
        .filter(|t| t["state"] == "TASK_RUNNING")
        .filter_map(|t| t["id"].as_str().map(str::to_string))
        .collect()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn ha_kill_9_of_the_leader_with_default_flags_fails_over_within_seconds() {
    baton_e2e::init_tracing();
    let marker = procs::marker("ha-fast-kill");
    let dir = tempfile::tempdir().unwrap();
    let zk = ZooKeeper::start_stock().await;
    let mesos = MesosLocalProcess::start(&dir.path().join("mesos"), Encoding::Protobuf).await;
    let mut first = start_baton(&mesos, &zk, &dir.path().join("a")).await;
    let second = start_baton(&mesos, &zk, &dir.path().join("b")).await;
    both_follow(&first, &second).await;

    // Running tasks, to show the failover keeps them.
    let id = "/fast/web";
    let (status, body) = second
        .request(
            Method::POST,
            "/v2/apps",
            Some(&task_app(id, &marker, 2, json!({}))),
        )
        .await;
    assert_eq!(status, 201, "{body}");
    wait::until(DEADLINE, "2 healthy instances", || async {
        let (_, app) = second.get(&format!("/v2/apps{id}")).await;
        (app["app"]["tasksHealthy"].as_u64()? == 2).then_some(())
    })
    .await;
    let tasks_before = running_ids(&second, id).await;

    // Writes through both nodes, before and across the failover.
    let writer = Writer::start(vec![first.url.clone(), second.url.clone()], "/fast/writes");
    wait::until(DEADLINE, "some acknowledged writes", || async {
        (writer.count() >= 6).then_some(())
    })
    .await;

    let killed_at = Instant::now();
    first.kill9().await;
    let ((write_after, written_id), leads_after) = tokio::join!(
        first_acknowledged_write(&second.url, "/fast/first", killed_at, DEADLINE),
        until_leading(&second, killed_at, DEADLINE),
    );
    println!(
        "failover after kill -9 (stock ZooKeeper, default flags): first acknowledged write \
         {write_after:?}, leading and subscribed {leads_after:?}"
    );
    assert!(
        write_after < TAKEOVER_LIMIT,
        "the standby answered writes only {write_after:?} after kill -9 of the leader\n{}",
        second.log_tail()
    );
    assert!(
        second.log_lines_with("leader deposed") >= 1,
        "the standby took over by deposing the dead leader, not by session expiry\n{}",
        second.log_tail()
    );

    // Let the writer run on the new leader a little, then check.
    let count = writer.count();
    wait::until(
        DEADLINE,
        "writes acknowledged by the new leader",
        || async { (writer.count() >= count + 4).then_some(()) },
    )
    .await;
    let mut written = writer.finish().await;
    written.push(written_id);
    all_there(&second, &written).await;
    println!("{} acknowledged writes, none lost", written.len());
    let tasks_after = wait::until(DEADLINE, "the tasks to be running", || async {
        let ids = running_ids(&second, id).await;
        (ids.len() == 2).then_some(ids)
    })
    .await;
    assert_eq!(tasks_before, tasks_after, "no task was restarted");

    second.stop().await;
    drop(first);
    mesos.stop().await;
    procs::assert_all_gone(&marker).await;
}

/// Sends SIGCONT to a stopped process when dropped (a failing test must not
/// leave it stopped).
struct Resume(Option<u32>);

impl Drop for Resume {
    fn drop(&mut self) {
        if let Some(pid) = self.0.take() {
            let _ = nix::sys::signal::kill(nix::unistd::Pid::from_raw(pid as i32), Signal::SIGCONT);
        }
    }
}

/// What ZooKeeper holds under `/state` and `/services`: path → (version,
/// mzxid, data) of every znode (a change of a directory's children alone
/// does not count).
async fn records(client: &zk::Client) -> BTreeMap<String, (i32, i64, Vec<u8>)> {
    let mut out = BTreeMap::new();
    let mut frontier = vec!["/state".to_string(), "/services".to_string()];
    while let Some(path) = frontier.pop() {
        let Ok((data, stat)) = client.get_data(&path).await else {
            continue;
        };
        out.insert(path.clone(), (stat.version, stat.mzxid, data));
        for child in client.list_children(&path).await.unwrap_or_default() {
            frontier.push(format!("{path}/{child}"));
        }
    }
    out
}

/// [`records`] once the new leader is quiet: two reads a second apart agree.
async fn quiet_records(client: &zk::Client) -> BTreeMap<String, (i32, i64, Vec<u8>)> {
    let give_up = Instant::now() + DEADLINE;
    let mut last = records(client).await;
    loop {
        tokio::time::sleep(Duration::from_secs(1)).await;
        let now = records(client).await;
        if now == last {
            return now;
        }
        assert!(
            Instant::now() < give_up,
            "the new leader kept writing for {DEADLINE:?}"
        );
        last = now;
    }
}

/// Every task Mesos ever had of `prefix`'s app (running, completed,
/// unreachable): id → state.
fn mesos_tasks(state: &Value, prefix: &str) -> BTreeMap<String, String> {
    let mut out = BTreeMap::new();
    for framework in state["frameworks"].as_array().into_iter().flatten() {
        for list in ["tasks", "completed_tasks", "unreachable_tasks"] {
            for task in framework[list].as_array().into_iter().flatten() {
                let id = task["id"].as_str().unwrap_or_default();
                if id.starts_with(prefix) {
                    let previous = out.insert(
                        id.to_string(),
                        task["state"].as_str().unwrap_or_default().to_string(),
                    );
                    assert!(previous.is_none(), "task {id} listed twice: {state}");
                }
            }
        }
    }
    out
}

/// The framework's subscription as the master records it.
fn subscription(state: &Value) -> Vec<(Value, Value)> {
    state["frameworks"]
        .as_array()
        .into_iter()
        .flatten()
        .map(|f| (f["id"].clone(), f["reregistered_time"].clone()))
        .collect()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn ha_a_leader_stopped_past_its_takeover_changes_nothing_when_it_resumes() {
    baton_e2e::init_tracing();
    let marker = procs::marker("ha-fast-pause");
    let dir = tempfile::tempdir().unwrap();
    let zk = ZooKeeper::start_stock().await;
    let mesos = MesosLocalProcess::start(&dir.path().join("mesos"), Encoding::Protobuf).await;
    let session = ["--zk_session_timeout", LONG_SESSION_MS];
    let mut first = start_baton_with(&mesos, &zk, &dir.path().join("a"), &session).await;
    let second = start_baton_with(&mesos, &zk, &dir.path().join("b"), &session).await;
    both_follow(&first, &second).await;
    let reader = ZkUrl::parse(&zk.url("/baton"))
        .unwrap()
        .connect(Duration::from_secs(10))
        .await
        .unwrap();

    let id = "/pause/web";
    let (status, body) = first
        .request(
            Method::POST,
            "/v2/apps",
            Some(&task_app(id, &marker, 2, json!({}))),
        )
        .await;
    assert_eq!(status, 201, "{body}");
    wait::until(DEADLINE, "2 healthy instances", || async {
        let (_, app) = second.get(&format!("/v2/apps{id}")).await;
        (app["app"]["tasksHealthy"].as_u64()? == 2).then_some(())
    })
    .await;
    let writer = Writer::start(vec![second.url.clone()], "/pause/writes");
    wait::until(DEADLINE, "some acknowledged writes", || async {
        (writer.count() >= 4).then_some(())
    })
    .await;

    // A scale-up the leader has just accepted, likely with launches still
    // to send, when it stops.
    let (status, body) = first
        .request(
            Method::PUT,
            &format!("/v2/apps{id}"),
            Some(&json!({"instances": 4})),
        )
        .await;
    assert_eq!(status, 200, "{body}");
    first.signal(Signal::SIGSTOP);
    let stopped_at = Instant::now();
    let resume = Resume(first.pid());

    // A write waiting in the stopped leader's socket: it is read only
    // after SIGCONT, by whatever the process then is.
    let queued_id = "/pause/queued";
    let queued = {
        let url = format!("{}/v2/apps", first.url);
        tokio::spawn(async move {
            let http = reqwest::Client::builder()
                .timeout(Duration::from_secs(60))
                .no_proxy()
                .build()
                .unwrap();
            let reply = http
                .post(url)
                .json(&write_body(queued_id))
                .send()
                .await
                .expect("an answer once the process resumes");
            let leader = reply
                .headers()
                .get("x-marathon-leader")
                .and_then(|v| v.to_str().ok())
                .map(str::to_string);
            (reply.status().as_u16(), leader)
        })
    };

    let ((write_after, written_id), leads_after) = tokio::join!(
        first_acknowledged_write(&second.url, "/pause/first", stopped_at, DEADLINE),
        until_leading(&second, stopped_at, DEADLINE),
    );
    println!(
        "failover after SIGSTOP of the leader: first acknowledged write {write_after:?}, \
         leading and subscribed {leads_after:?}"
    );
    assert!(write_after < TAKEOVER_LIMIT, "{write_after:?}");

    // The new leader finishes the scale-up, then goes quiet.
    wait::until(DEADLINE, "the scale-up done by the new leader", || async {
        let deployments = second.deployment_ids().await?;
        let (_, app) = second.get(&format!("/v2/apps{id}")).await;
        (deployments.is_empty() && app["app"]["tasksHealthy"].as_u64()? == 4).then_some(())
    })
    .await;
    let mut written = writer.finish().await;
    written.push(written_id);
    let pause = PAUSE.max(leads_after + Duration::from_secs(2));
    tokio::time::sleep_until(stopped_at + pause).await;
    let before = quiet_records(&reader).await;
    let subscribed_before = subscription(&mesos.state().await);
    let tasks_before = mesos_tasks(&mesos.state().await, "pause_web.");

    // Resume the old leader.
    assert!(first.alive(), "the stopped process is still there");
    drop(resume);
    let resumed_at = Instant::now();
    let me = address(&second);
    wait::until(
        DEADLINE,
        "the resumed process to name the new leader",
        || async { (leader_of(&first).await.as_deref() == Some(me.as_str())).then_some(()) },
    )
    .await;
    // Its term is over: its scheduler stopped, nothing of it can send.
    wait::until(DEADLINE, "the resumed process's term to end", || async {
        (first.log_lines_with("term over") >= 1).then_some(())
    })
    .await;
    println!(
        "the resumed process was stopped for {:?} and became a standby {:?} after SIGCONT",
        resumed_at - stopped_at,
        resumed_at.elapsed()
    );
    let (queued_status, queued_leader) = queued.await.unwrap();
    println!(
        "the write queued in its socket was answered {queued_status} (leader {queued_leader:?})"
    );
    if (200..300).contains(&queued_status) {
        // Served by the new leader through the resumed standby.
        assert_eq!(queued_leader.as_deref(), Some(second.url.as_str()));
        written.push(queued_id.to_string());
    }
    second.wait_no_deployments(DEADLINE).await;

    // Nothing in ZooKeeper changed after the resume, but for the test's own
    // app writes: one a standby forwarded to the stopped leader sits in its
    // socket and lands, through the new leader, after the resume.
    let after = records(&reader).await;
    let ours = [
        "%2Fpause%2Fwrites%2F",
        "%2Fpause%2Ffirst%2F",
        "%2Fpause%2Fqueued",
    ];
    let kept = |path: &String| !ours.iter().any(|o| path.contains(o));
    let changed: BTreeSet<&String> = after
        .keys()
        .chain(before.keys())
        .filter(|path| kept(path) && before.get(*path) != after.get(*path))
        .collect();
    assert!(
        changed.is_empty(),
        "records changed after the deposed leader resumed: {changed:?}\n{}",
        first.log_tail()
    );
    // And every app in ZooKeeper is one the new leader wrote: nothing
    // landed behind its back.
    for path in after.keys() {
        if let Some(name) = path.strip_prefix("/state/apps/") {
            let app = baton::state::zk_store::decode_key(name);
            let (status, _) = second.get(&format!("/v2/apps{app}")).await;
            assert_eq!(
                status, 200,
                "{app} is in ZooKeeper, unknown to the new leader"
            );
        }
    }
    if !(200..300).contains(&queued_status) {
        assert!(
            !after.keys().any(|p| p.contains("%2Fpause%2Fqueued")),
            "a refused write landed"
        );
        let (status, _) = second.get(&format!("/v2/apps{queued_id}")).await;
        assert_eq!(status, 404, "a refused write landed");
    }

    // Mesos: no new subscription (the resumed process did not take the
    // framework back), and every instance launched exactly once.
    let state = mesos.state().await;
    assert_eq!(
        subscribed_before,
        subscription(&state),
        "nobody subscribed again after the resume"
    );
    assert!(leads_and_subscribed(&second).await);
    let tasks = mesos_tasks(&state, "pause_web.");
    assert_eq!(
        tasks, tasks_before,
        "no task launched or ended since the resume"
    );
    assert_eq!(tasks.len(), 4, "4 instances, each launched once: {tasks:?}");
    assert!(tasks.values().all(|s| s == "TASK_RUNNING"), "{tasks:?}");
    let known = running_ids(&second, id).await;
    assert_eq!(
        known,
        tasks.keys().cloned().collect::<BTreeSet<_>>(),
        "the new leader knows exactly the tasks Mesos runs"
    );

    all_there(&second, &written).await;
    println!("{} acknowledged writes, none lost", written.len());
    let deposed = first.log_lines_with("deposed");
    // Within its session it finds its znode deleted; past it, its session
    // expired (a machine too slow for this test's timing).
    if resumed_at - stopped_at < Duration::from_secs(25) {
        assert!(
            deposed >= 1,
            "the resumed process saw it was deposed\n{}",
            first.log_tail()
        );
    }
    println!(
        "the resumed process logged: {deposed} lines on its deposition, {} refused writes, {} calls not sent",
        first.log_lines_with("write refused"),
        first.log_lines_with("not sent")
    );

    assert!(first.alive(), "the deposed leader did not exit");
    first.stop().await;
    second.stop().await;
    mesos.stop().await;
    procs::assert_all_gone(&marker).await;
}

async fn session(server: &ZooKeeper) -> zk::Client {
    ZkUrl::parse(&server.url("/baton"))
        .unwrap()
        .connect(Duration::from_secs(5))
        .await
        .unwrap()
}

/// A leader's session holding `/leader/me`.
async fn leading_session(server: &ZooKeeper) -> zk::Client {
    let leader = session(server).await;
    leader
        .mkdir(
            "/leader",
            &zk::CreateMode::Persistent.with_acls(zk::Acls::anyone_all()),
        )
        .await
        .unwrap();
    leader
        .create(
            "/leader/me",
            b"127.0.0.1:1",
            &zk::CreateMode::Ephemeral.with_acls(zk::Acls::anyone_all()),
        )
        .await
        .unwrap();
    leader
}

fn put(key: &str) -> Change {
    Change::Put {
        category: Category::App,
        key: key.into(),
        value: b"{}".to_vec(),
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn ha_writes_in_flight_when_the_election_znode_goes_land_before_it_or_not_at_all() {
    let server = ZooKeeper::start().await;
    let leader = leading_session(&server).await;
    let store = Arc::new(
        ZkStore::open(leader.clone(), Some("/leader/me".into()))
            .await
            .unwrap(),
    );
    let acknowledged = Arc::new(Mutex::new(BTreeSet::new()));
    // Writers back to back, each ending after 20 refusals in a row.
    let writers: Vec<_> = (0..4)
        .map(|w| {
            let (store, acknowledged) = (store.clone(), acknowledged.clone());
            tokio::task::spawn_blocking(move || {
                let mut refused = 0;
                for n in 0.. {
                    let key = format!("/w{w}/{n}");
                    match store.apply(&[put(&key)]) {
                        Ok(()) => {
                            assert_eq!(refused, 0, "a write landed after one was refused");
                            acknowledged.lock().unwrap().insert(key);
                        }
                        Err(StoreError::Fenced(_)) => {
                            refused += 1;
                            if refused == 20 {
                                return;
                            }
                        }
                        Err(e) => panic!("{e}"),
                    }
                }
            })
        })
        .collect();
    wait::until(DEADLINE, "writes under way", || async {
        (acknowledged.lock().unwrap().len() >= 200).then_some(())
    })
    .await;
    let other = session(&server).await;
    other.delete("/leader/me", None).await.unwrap();
    let deleted_at = other.check_stat("/leader").await.unwrap().unwrap().pzxid;
    for writer in writers {
        writer.await.unwrap();
    }

    let acknowledged = acknowledged.lock().unwrap().clone();
    let mut present = BTreeSet::new();
    for name in other.list_children("/state/apps").await.unwrap() {
        let stat = other
            .check_stat(&format!("/state/apps/{name}"))
            .await
            .unwrap()
            .unwrap();
        assert!(
            stat.mzxid < deleted_at,
            "{name} was written (zxid {:#x}) after the fence went (zxid {deleted_at:#x})",
            stat.mzxid
        );
        present.insert(baton::state::zk_store::decode_key(&name));
    }
    assert_eq!(
        present, acknowledged,
        "exactly the acknowledged writes are there"
    );
    println!(
        "{} writes acknowledged before the fence went, none after",
        acknowledged.len()
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn ha_a_lapsed_lease_is_confirmed_again_and_a_lost_one_refuses_before_writing() {
    let server = ZooKeeper::start().await;
    let leader = leading_session(&server).await;
    let lease = Duration::from_millis(200);
    let gate = LeaseGate::new(
        leader.clone(),
        "/leader/me".into(),
        b"127.0.0.1:1".to_vec(),
        lease,
        Instant::now(),
    );
    assert!(gate.is_fresh());
    // Unfenced underneath: only the lease can refuse here.
    let store: Arc<dyn Store> = Arc::new(GatedStore::new(
        Arc::new(ZkStore::open(leader.clone(), None).await.unwrap()),
        gate.clone(),
    ));
    let apply = |changes: Vec<Change>| {
        let store = store.clone();
        async move {
            tokio::task::spawn_blocking(move || store.apply(&changes))
                .await
                .unwrap()
        }
    };

    // As after a pause: stale, but confirmed again since the znode is there.
    tokio::time::sleep(lease + Duration::from_millis(100)).await;
    assert!(!gate.is_fresh());
    let before = leader.check_stat("/leader/me").await.unwrap().unwrap();
    apply(vec![put("/while-leading")]).await.unwrap();
    assert!(gate.is_fresh(), "confirmed by the write's check");
    let after = leader.check_stat("/leader/me").await.unwrap().unwrap();
    assert!(after.version > before.version, "the renewal is a heartbeat");

    // Deposed while paused.
    let other = session(&server).await;
    other.delete("/leader/me", None).await.unwrap();
    tokio::time::sleep(lease + Duration::from_millis(100)).await;
    let err = apply(vec![put("/after")]).await.unwrap_err();
    assert!(matches!(err, StoreError::Fenced(_)), "{err}");
    assert!(err.to_string().contains("deposed"), "{err}");
    assert!(gate.lost().is_some());
    assert!(gate.confirm().await.is_err(), "lost for good");
    assert!(
        other
            .check_stat("/state/apps/%2Fafter")
            .await
            .unwrap()
            .is_none()
    );
    assert!(
        other
            .check_stat("/state/apps/%2Fwhile-leading")
            .await
            .unwrap()
            .is_some()
    );
}
