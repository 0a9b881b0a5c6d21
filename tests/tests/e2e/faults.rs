//! Baton against an in-process mesos-local with injected faults: heartbeat
//! loss, a master restart, a duplicated status update, and an executor that
//! reconnects with unacknowledged updates after its agent restarts. The
//! executors and tasks are still real processes. Each runs over protobuf
//! and JSON. Tasks are the instances of one-instance apps; a test ends by
//! deleting its apps, which kills their tasks, unless Mesos took them
//! already.

use std::net::SocketAddr;
use std::time::Duration;

use baton::reconcile::{KillOptions, SchedulerHandle};
use baton::state::app::AppDefinition;
use baton::state::instance::{Condition, InstanceTask};
use baton_e2e::apps::{self, DEADLINE, condition_of, next_incarnation, wait_view};
use baton_e2e::binaries::binary;
use baton_e2e::cluster::{fast_session, find_named, reserved_disk, settings, wait_volume_lines};
use baton_e2e::ports::{PORTS_PER_AGENT, port_range_start};
use baton_e2e::{procs, wait};
use mesos_local::{ClusterConfig, LocalCluster};
use mesos_proto::Encoding;
use serde_json::json;

struct Setup {
    cluster: LocalCluster,
    running: baton::config::Running,
    scheduler: SchedulerHandle,
    _dir: tempfile::TempDir,
    marker: String,
}

async fn setup(test: &str, encoding: Encoding, tune: impl FnOnce(&mut ClusterConfig)) -> Setup {
    setup_via(test, encoding, tune, |cluster| cluster.master_url(), |_| {}).await
}

/// Like [`setup`], but Baton is pointed at the master `master_for` names
/// (for instance a standby that redirects).
async fn setup_via(
    test: &str,
    encoding: Encoding,
    tune: impl FnOnce(&mut ClusterConfig),
    master_for: impl FnOnce(&LocalCluster) -> String,
    tune_baton: impl FnOnce(&mut baton::config::Settings),
) -> Setup {
    baton_e2e::init_tracing();
    let dir = tempfile::tempdir().unwrap();
    let mut config = ClusterConfig {
        master_addr: SocketAddr::from(([127, 0, 0, 1], 0)),
        port_range_start: port_range_start(),
        ports_per_agent: PORTS_PER_AGENT,
        heartbeat_interval: Duration::from_millis(300),
        allocation_interval: Duration::from_millis(100),
        executor_path: binary("baton-executor"),
        work_dir: dir.path().join("mesos"),
        agent_unreachable_timeout: Duration::from_secs(1),
        status_update_retry: Duration::from_millis(500),
        ..ClusterConfig::default()
    };
    tune(&mut config);
    let cluster = LocalCluster::start(config).await.unwrap();
    let master = master_for(&cluster);
    let mut baton_settings = settings(&master, &dir.path().join("baton"), encoding);
    tune_baton(&mut baton_settings);
    let running = baton::config::run(baton_settings, fast_session)
        .await
        .unwrap();
    let scheduler = running.scheduler().expect("leading alone");
    wait_view(&scheduler, "the first subscription", |v| v.subscribed).await;
    Setup {
        cluster,
        running,
        scheduler,
        _dir: dir,
        marker: procs::marker(test),
    }
}

impl Setup {
    /// Deletes every app (their tasks are killed), then stops Baton and the
    /// cluster; no task process may outlive it.
    async fn teardown(self) {
        apps::delete_all(&self.scheduler).await;
        self.shutdown().await;
    }

    /// Stops Baton and the cluster (which destroys any container left);
    /// no task process may outlive it.
    async fn shutdown(self) {
        self.running.stop().await;
        self.cluster.shutdown().await;
        procs::assert_all_gone(&self.marker).await;
    }

    /// A one-instance app `/<name>` running `cmd`, marked as this test's,
    /// with the fields of `extra` on top of [`apps::app`]'s.
    fn app(&self, name: &str, cmd: &str, extra: serde_json::Value) -> AppDefinition {
        apps::app_with(
            &format!("/{name}"),
            &format!("{cmd} # {}", self.marker),
            extra,
        )
    }

    /// Stores the app `/<name>` running `cmd` and waits for its task to run.
    async fn run(&self, name: &str, cmd: &str) -> InstanceTask {
        apps::run(&self.scheduler, self.app(name, cmd, json!({}))).await
    }
}

async fn heartbeat_loss(encoding: Encoding) {
    let s = setup("heartbeat", encoding, |_| {}).await;
    let before = s.scheduler.view();
    let framework_id = before.framework_id.clone().unwrap();
    let stream_before = s.scheduler.mesos().stream_id().unwrap();
    // The master keeps the connection open but goes silent: only the
    // heartbeat watchdog (5 × 300 ms) can notice.
    s.cluster.faults().pause_heartbeats(true);
    wait_view(
        &s.scheduler,
        "the watchdog to drop the silent stream",
        |v| !v.subscribed,
    )
    .await;
    s.cluster.faults().pause_heartbeats(false);
    let after = wait_view(&s.scheduler, "a new subscription", |v| {
        v.subscribed && v.stats.subscriptions >= 2
    })
    .await;
    assert_eq!(
        after.framework_id.as_deref(),
        Some(framework_id.as_str()),
        "resubscribed with the same FrameworkID"
    );
    assert_ne!(s.scheduler.mesos().stream_id().unwrap(), stream_before);
    // And the framework is still the one Mesos knows, with tasks working.
    s.run("after-heartbeat", "sleep 60").await;
    assert_eq!(s.cluster.state()["frameworks"].as_array().unwrap().len(), 1);
    s.teardown().await;
}

async fn master_restart(encoding: Encoding) {
    let s = setup("restart", encoding, |_| {}).await;
    let first = s.run("before-restart", "sleep 60").await.task_id;
    let stream_before = s.scheduler.mesos().stream_id().unwrap();
    s.cluster.faults().restart_master();
    wait_view(&s.scheduler, "a resubscription", |v| {
        v.subscribed && v.stats.subscriptions >= 2
    })
    .await;
    let stream_after = s.scheduler.mesos().stream_id().unwrap();
    assert_ne!(
        stream_before, stream_after,
        "a restarted master hands out a new stream id"
    );
    // Calls on the new stream work: a launch and a kill go through.
    s.run("after-restart", "sleep 60").await;
    let killed = s
        .scheduler
        .kill_tasks(vec![first.clone()], KillOptions::default())
        .await
        .unwrap();
    assert_eq!(killed.killed.len(), 1, "{killed:?}");
    // The killed task's instance is still wanted running: once the kill is
    // reported, it is relaunched as its second incarnation.
    let relaunched = next_incarnation(&first);
    wait_view(&s.scheduler, "the first instance to run again", |v| {
        condition_of(v, &relaunched) == Some(Condition::Running)
    })
    .await;
    let state = s.cluster.state();
    let completed = state["frameworks"][0]["completed_tasks"]
        .as_array()
        .unwrap()
        .iter()
        .find(|t| t["id"] == first.as_str())
        .cloned()
        .unwrap_or_else(|| panic!("{first} among the completed tasks: {state:#}"));
    assert_eq!(completed["state"], "TASK_KILLED", "{completed:#}");
    s.teardown().await;
}

async fn duplicate_update(encoding: Encoding) {
    let s = setup("duplicate", encoding, |_| {}).await;
    s.cluster.faults().duplicate_next_status_update();
    let id = s.run("dup", "sleep 60").await.task_id;
    let view = wait_view(&s.scheduler, "the duplicate to arrive", |v| {
        v.stats.duplicate_updates >= 1
    })
    .await;
    let task = apps::task(&view, &id).unwrap();
    // STARTING and RUNNING: two distinct updates applied, one redelivery
    // recognised; every delivery was acknowledged.
    assert_eq!(task.condition, Condition::Running, "{task:#?}");
    assert_eq!(task.recent_update_uuids.len(), 2, "{task:#?}");
    assert_eq!(view.stats.updates_applied, 2);
    assert_eq!(view.stats.duplicate_updates, 1);
    assert_eq!(view.stats.updates_received, view.stats.updates_applied + 1);
    assert_eq!(view.stats.acks_sent, view.stats.updates_received);
    s.teardown().await;
}

async fn unacknowledged_updates_resent_after_executor_reconnects(encoding: Encoding) {
    let s = setup("reconnect", encoding, |_| {}).await;
    let go = s._dir.path().join("go");
    // Each task waits for the go file and takes it, so the instance's next
    // task (it is relaunched once this one finishes) waits again.
    let cmd = format!(
        "while [ ! -e {go} ]; do sleep 0.05; done; rm -f {go}; exit 0",
        go = go.display()
    );
    // The instance must survive its agent's absence: an unreachable task is
    // neither replaced nor forgotten for minutes (the default would replace
    // it at once and treat its late update as an unknown task's).
    let app = s.app(
        "waits",
        &cmd,
        json!({"unreachableStrategy": {"inactiveAfterSeconds": 300, "expungeAfterSeconds": 600}}),
    );
    let task = apps::run(&s.scheduler, app).await;
    let id = task.task_id;
    let agent: usize = task.hostname.rsplit('.').next().unwrap().parse().unwrap();
    // The agent goes away; meanwhile the task finishes, so the executor
    // holds TASK_FINISHED unacknowledged.
    s.cluster.faults().stop_agent(agent).await;
    std::fs::write(&go, b"").unwrap();
    wait_view(
        &s.scheduler,
        "the master to report the agent's task unreachable",
        |v| condition_of(v, &id) == Some(Condition::Unreachable),
    )
    .await;
    // The agent returns; the executor re-subscribes with its unacknowledged
    // update, which flows to Baton.
    s.cluster.faults().start_agent(agent).await;
    let view = wait_view(
        &s.scheduler,
        "TASK_FINISHED after the executor reconnects",
        |v| condition_of(v, &id) == Some(Condition::Finished),
    )
    .await;
    let status = apps::task(&view, &id).unwrap().last_status.unwrap();
    assert_eq!(
        status.source.as_deref(),
        Some("SOURCE_EXECUTOR"),
        "{status:#?}"
    );
    // The instance is still wanted running: it is relaunched.
    let relaunched = next_incarnation(&id);
    wait_view(&s.scheduler, "the instance's next task to run", |v| {
        condition_of(v, &relaunched) == Some(Condition::Running)
    })
    .await;
    s.teardown().await;
}

/// `rack_id:GROUP_BY` over two racks, one instance each; the only agent of
/// rack-2 goes away. The lost instance is replaced on rack-1 (which holds
/// the minimum of the racks still offering) instead of waiting for rack-2
/// to return; when it does, its old task is killed as unknown and nothing
/// is moved back.
async fn group_by_outage(encoding: Encoding) {
    let s = setup("group-by-outage", encoding, |_| {}).await;
    let mut app = s.app(
        "spread",
        "sleep 100000",
        json!({"constraints": [["rack_id", "GROUP_BY"]]}),
    );
    app.instances = 2;
    s.scheduler.put_app(app).await.expect("put the app");
    let tasks = apps::wait_running(&s.scheduler, "/spread", 2).await;
    let rack = |t: &InstanceTask| t.fields.get("rack_id").cloned().unwrap_or_default();
    let mut racks: Vec<String> = tasks.iter().map(rack).collect();
    racks.sort();
    assert_eq!(racks, ["rack-1", "rack-2"], "one instance per rack");
    // Agent 2 is rack-2's only agent.
    let lost = tasks.iter().find(|t| rack(t) == "rack-2").unwrap().clone();
    s.cluster.faults().stop_agent(2).await;
    let view = wait_view(&s.scheduler, "the lost instance replaced on rack-1", |v| {
        let tasks = apps::tasks_of(v, &apps::path("/spread"));
        tasks.len() == 2
            && tasks
                .iter()
                .all(|t| t.condition == Condition::Running && rack(t) == "rack-1")
    })
    .await;
    assert!(
        apps::task(&view, &lost.task_id).is_none(),
        "the unreachable task is forgotten (default unreachableStrategy)"
    );
    // Rack-2 returns: its old task is an unknown task, killed; the app
    // stays as it is.
    s.cluster.faults().start_agent(2).await;
    wait::until(DEADLINE, "the returning task killed", || async {
        let killed = s.scheduler.view().stats.unknown_tasks_killed;
        (killed >= 1).then_some(())
    })
    .await;
    let tasks = apps::wait_running(&s.scheduler, "/spread", 2).await;
    assert!(
        tasks.iter().all(|t| rack(t) == "rack-1"),
        "not moved back: {tasks:#?}"
    );
    s.teardown().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn group_by_replaces_an_instance_lost_with_its_rack_on_the_other_rack_protobuf() {
    group_by_outage(Encoding::Protobuf).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn group_by_replaces_an_instance_lost_with_its_rack_on_the_other_rack_json() {
    group_by_outage(Encoding::Json).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn heartbeat_loss_resubscribes_with_the_same_framework_id_protobuf() {
    heartbeat_loss(Encoding::Protobuf).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn heartbeat_loss_resubscribes_with_the_same_framework_id_json() {
    heartbeat_loss(Encoding::Json).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn master_restart_uses_the_new_stream_id_protobuf() {
    master_restart(Encoding::Protobuf).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn master_restart_uses_the_new_stream_id_json() {
    master_restart(Encoding::Json).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn duplicated_update_is_acknowledged_and_counted_once_protobuf() {
    duplicate_update(Encoding::Protobuf).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn duplicated_update_is_acknowledged_and_counted_once_json() {
    duplicate_update(Encoding::Json).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn unacknowledged_updates_are_resent_after_the_executor_reconnects_protobuf() {
    unacknowledged_updates_resent_after_executor_reconnects(Encoding::Protobuf).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn unacknowledged_updates_are_resent_after_the_executor_reconnects_json() {
    unacknowledged_updates_resent_after_executor_reconnects(Encoding::Json).await;
}

async fn redirect_from_a_standby_master(encoding: Encoding) {
    let standby = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let standby_url = format!("http://{}", standby.local_addr().unwrap());
    let stop = tokio_util::sync::CancellationToken::new();
    let s = setup_via(
        "redirect",
        encoding,
        |_| {},
        |cluster| {
            let leader = cluster.master_addr();
            let stop = stop.clone();
            tokio::spawn(mesos_local::serve_redirector(
                standby,
                leader,
                stop.cancelled_owned(),
            ));
            standby_url.clone()
        },
        |_| {},
    )
    .await;
    // Subscribed through the 307; calls go to the leader with its stream id.
    assert!(
        s.scheduler
            .mesos()
            .stats()
            .redirects
            .load(std::sync::atomic::Ordering::Relaxed)
            >= 1
    );
    s.run("redirected", "sleep 60").await;
    stop.cancel();
    s.teardown().await;
}

async fn restart_resubscribes_with_the_stored_framework_id(encoding: Encoding) {
    let s = setup("restart-baton", encoding, |_| {}).await;
    let id = s.run("survivor", "sleep 60").await.task_id;
    let framework_id = s.scheduler.view().framework_id.clone().unwrap();
    // Stop Baton (no TEARDOWN) and start a new one on the same data dir.
    let Setup {
        cluster,
        running,
        _dir,
        marker,
        ..
    } = s;
    running.stop().await;
    let running = baton::config::run(
        settings(&cluster.master_url(), &_dir.path().join("baton"), encoding),
        fast_session,
    )
    .await
    .unwrap();
    let scheduler = running.scheduler().expect("leading alone");
    // The stored instance says RUNNING from the start; the master's answer
    // to the reconciliation after subscribing is what confirms it.
    let after = wait_view(&scheduler, "the restarted scheduler to reconcile", |v| {
        v.subscribed
            && apps::task(v, &id).is_some_and(|t| {
                t.condition == Condition::Running
                    && t.last_status.as_ref().and_then(|s| s.reason.as_deref())
                        == Some("REASON_RECONCILIATION")
            })
    })
    .await;
    assert_eq!(after.framework_id.as_deref(), Some(framework_id.as_str()));
    // The task was adopted, not relaunched.
    assert_eq!(after.stats.tasks_launched, 0, "{:?}", after.stats);
    assert_eq!(after.all_instances().count(), 1);
    // Mesos still has exactly one framework, with the task still running.
    let state = cluster.state();
    assert_eq!(state["frameworks"].as_array().unwrap().len(), 1);
    assert_eq!(state["frameworks"][0]["id"], framework_id.as_str());
    assert_eq!(state["frameworks"][0]["tasks"][0]["id"], id.as_str());
    assert_eq!(state["frameworks"][0]["tasks"][0]["state"], "TASK_RUNNING");
    let s = Setup {
        cluster,
        running,
        scheduler,
        _dir,
        marker,
    };
    s.teardown().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn redirect_307_from_a_standby_master_reaches_the_leader_protobuf() {
    redirect_from_a_standby_master(Encoding::Protobuf).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn redirect_307_from_a_standby_master_reaches_the_leader_json() {
    redirect_from_a_standby_master(Encoding::Json).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_restarted_baton_resubscribes_with_its_stored_framework_id_protobuf() {
    restart_resubscribes_with_the_stored_framework_id(Encoding::Protobuf).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_restarted_baton_resubscribes_with_its_stored_framework_id_json() {
    restart_resubscribes_with_the_stored_framework_id(Encoding::Json).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn operator_teardown_removes_the_framework_and_its_tasks() {
    let s = setup("teardown", Encoding::Protobuf, |_| {}).await;
    let id = s.run("doomed", "sleep 60").await.task_id;
    let framework_id = s.scheduler.view().framework_id.clone().unwrap();
    s.scheduler.teardown().await.unwrap();
    let cluster = &s.cluster;
    wait::until(
        DEADLINE,
        "the framework to be completed with its task killed",
        || async {
            let state = cluster.state();
            let done = state["completed_frameworks"]
                .as_array()?
                .iter()
                .find(|f| f["id"] == framework_id.as_str())?
                .clone();
            done["completed_tasks"]
                .as_array()?
                .iter()
                .any(|t| t["id"] == id.as_str() && t["state"] == "TASK_KILLED")
                .then_some(())
        },
    )
    .await;
    // Refused as a removed framework, Baton registers anew and runs what
    // it is still asked to run (the app was not deleted) — it neither
    // stalls nor exits.
    let view = apps::wait_view(&s.scheduler, "a new framework running the app again", |v| {
        v.subscribed
            && v.framework_id.as_deref().is_some_and(|f| f != framework_id)
            && apps::tasks_of(v, &apps::path("/doomed"))
                .iter()
                .any(|t| t.condition == Condition::Running && t.task_id != id)
    })
    .await;
    let new_framework = view.framework_id.clone().unwrap();
    let state = cluster.state();
    assert!(
        state["frameworks"]
            .as_array()
            .unwrap()
            .iter()
            .any(|f| f["id"] == new_framework.as_str()),
        "{state}"
    );
    s.teardown().await;
}

/// The agent (1-based index) whose address is `hostname`.
fn agent_index(hostname: &str) -> usize {
    let last = hostname
        .rsplit('.')
        .next()
        .and_then(|n| n.parse::<usize>().ok());
    last.unwrap_or_else(|| panic!("an agent address, not {hostname}"))
}

/// The isolation the agents report in `/master/state`, for the test's log
/// and to prove it ran with cgroups.
fn isolation_mode(cluster: &LocalCluster) -> String {
    let state = cluster.state();
    let mode = state["flags"]["isolation"]
        .as_str()
        .unwrap_or_default()
        .to_string();
    eprintln!("isolation in effect: {mode}");
    mode
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_task_over_its_memory_limit_fails_with_the_containers_limitation_and_is_replaced() {
    let s = setup("memory-limit", Encoding::Protobuf, |_| {}).await;
    // This machine has writable cgroup v1 controllers: the kernel enforces.
    assert_eq!(isolation_mode(&s.cluster), "cgroups/cpu,cgroups/mem");
    // 32 MB for the task and 32 for Baton's executor: a 64 MB container,
    // in which the task touches 96.
    let app = s.app(
        "hog",
        r#"python3 -c 'import time; x = b"\x01" * (96 << 20); time.sleep(600)'"#,
        json!({"mem": 32, "backoffSeconds": 1, "backoffFactor": 1.0}),
    );
    let posted = std::time::Instant::now();
    s.scheduler.put_app(app).await.expect("put the app");
    let limited = |t: &InstanceTask| {
        t.condition == Condition::Failed
            && t.last_status.as_ref().and_then(|s| s.reason.as_deref())
                == Some("REASON_CONTAINER_LIMITATION_MEMORY")
    };
    let view = wait_view(&s.scheduler, "the task to fail over its memory", |v| {
        apps::tasks_of(v, &apps::path("/hog")).iter().any(limited)
    })
    .await;
    let failed = apps::tasks_of(&view, &apps::path("/hog"))
        .into_iter()
        .find(limited)
        .unwrap();
    eprintln!(
        "failed over its memory {:?} after posting",
        posted.elapsed()
    );
    let status = failed.last_status.clone().unwrap();
    assert_eq!(status.state, "TASK_FAILED");
    assert_eq!(status.source.as_deref(), Some("SOURCE_AGENT"));
    // Worded as a Mesos 1.12 agent words it (checked on one).
    let message = status.message.as_deref().unwrap_or_default();
    assert!(
        message.starts_with("Memory limit exceeded: Requested: 64MB Maximum Used: ")
            && message.contains("\n\nMEMORY STATISTICS: \n")
            && message.contains("\nhierarchical_memory_limit 67108864\n"),
        "{message}"
    );
    // Replaced per its backoff: the instance's next task is launched, and
    // not before a second after the failure.
    let failed_at_ms = (status.timestamp.unwrap() * 1000.0) as i64;
    let next = next_incarnation(&failed.task_id);
    let view = wait_view(&s.scheduler, "the replacement's launch", |v| {
        apps::task(v, &next).is_some()
    })
    .await;
    let replacement = apps::task(&view, &next).unwrap();
    let waited_ms = replacement.launched_at.as_millis() - failed_at_ms;
    assert!(
        waited_ms >= 900,
        "relaunched {waited_ms} ms after the failure"
    );
    s.teardown().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_cpu_bound_task_is_held_to_its_cpus_by_the_cfs_quota() {
    let s = setup("cpu-limit", Encoding::Protobuf, |c| {
        c.isolation.enable_cfs = true;
    })
    .await;
    assert_eq!(isolation_mode(&s.cluster), "cgroups/cpu,cgroups/mem");
    let app = s.app(
        "spin",
        "while :; do :; done",
        json!({"cpus": 0.2, "mem": 64}),
    );
    let task = apps::run(&s.scheduler, app).await;
    let agent = s.cluster.agent_endpoint(agent_index(&task.hostname));
    let client = reqwest::Client::new();
    let sample = || async {
        let stats: serde_json::Value = client
            .get(format!("http://{agent}/monitor/statistics"))
            .send()
            .await
            .expect("statistics")
            .json()
            .await
            .expect("json");
        // The test's own cluster runs this one container.
        let all = stats.as_array().expect("an array");
        assert_eq!(all.len(), 1, "{stats}");
        all[0]["statistics"].clone()
    };
    let first = sample().await;
    // The container holds the task's 0.2 CPU and 64 MB and Baton's
    // executor's 0.1 and 32, as on Mesos.
    assert!(
        (first["cpus_limit"].as_f64().unwrap() - 0.3).abs() < 1e-9,
        "{first}"
    );
    assert_eq!(first["mem_limit_bytes"], 96u64 << 20, "{first}");
    let busy = |s: &serde_json::Value| {
        s["cpus_user_time_secs"].as_f64().unwrap() + s["cpus_system_time_secs"].as_f64().unwrap()
    };
    // Measured over ten seconds of the agent's own clock. The quota is
    // granted per 100 ms period, so a window can hold one burst more than
    // it has whole periods, and `cpuacct.stat` counts in 10 ms ticks:
    // the cap shows as 0.3 CPU within that sampling error (0.305 at 10 s).
    let at = |s: &serde_json::Value| s["timestamp"].as_f64().unwrap();
    let last = wait::until(
        Duration::from_secs(40),
        "ten seconds of statistics",
        || async {
            let later = sample().await;
            (at(&later) - at(&first) >= 10.0).then_some(later)
        },
    )
    .await;
    let window = at(&last) - at(&first);
    let cpu = (busy(&last) - busy(&first)) / window;
    let bound = (0.3 * (window + 0.1) + 0.02) / window;
    eprintln!(
        "a busy loop given cpus 0.2 (0.3 with its executor) used {cpu:.3} CPU over {window:.1} s \
         (bound with sampling error {bound:.3}); throttled {} of {} periods",
        last["cpus_nr_throttled"], last["cpus_nr_periods"]
    );
    assert!(cpu <= bound, "{cpu} CPU used: {last}");
    // It ran (an idle executor alone uses next to nothing); how much it got
    // under the CFS cap depends on what else this machine runs.
    assert!(cpu > 0.02, "{cpu} CPU used: the loop did not run? {last}");
    s.teardown().await;
}

/// The resident instance of `/db` and its task, once that task runs.
fn running_db(
    view: &baton::reconcile::View,
) -> Option<(baton::state::instance::Instance, InstanceTask)> {
    let instance = view
        .instances_of(&apps::path("/db"))
        .find(|i| i.goal == baton::state::instance::Goal::Running)?;
    let task = instance.task.clone()?;
    (task.condition == Condition::Running).then(|| ((**instance).clone(), task))
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_resident_app_keeps_its_volume_across_restarts_of_the_app_and_its_agent() {
    let s = setup_via(
        "resident",
        Encoding::Protobuf,
        |_| {},
        |cluster| cluster.master_url(),
        |settings| settings.mesos_roles = vec!["*".into(), "db".into()],
    )
    .await;
    // Each incarnation appends its task id to a file on its volume and
    // copies what it found there into its sandbox.
    let app = s.app(
        "db",
        r#"cat data/history > seen 2>/dev/null; echo "$MESOS_TASK_ID" >> data/history && sleep 600"#,
        json!({"role": "db", "mem": 32, "backoffSeconds": 1, "backoffFactor": 1.0,
               "container": {"type": "MESOS", "volumes": [
                   {"containerPath": "data", "mode": "RW", "persistent": {"size": 16}}]}}),
    );
    s.scheduler.put_app(app.clone()).await.expect("put the app");
    let view = wait_view(&s.scheduler, "the resident task to run", |v| {
        running_db(v).is_some()
    })
    .await;
    let (instance, first) = running_db(&view).unwrap();
    let held = instance.reservation.clone().expect("a reservation");
    assert_eq!(held.agent_id.as_str(), first.agent_id.as_str());
    let persistence_id =
        baton::offers::reservation::persistence_id(&instance.instance_id(), "data");
    let work_dir = s._dir.path().join("mesos");
    let wait_history = |want: Vec<String>, what: &'static str| {
        let (work_dir, persistence_id) = (work_dir.clone(), persistence_id.clone());
        async move {
            wait_volume_lines(&work_dir, &persistence_id, "history", &want, DEADLINE, what).await;
        }
    };
    wait_history(vec![first.task_id.clone()], "the first incarnation's line").await;
    let master_state = || async {
        reqwest::get(format!("{}/master/state", s.cluster.master_url()))
            .await
            .unwrap()
            .json::<serde_json::Value>()
            .await
            .unwrap()
    };
    let reserved_for_db = |state: &serde_json::Value| reserved_disk(state, "db");
    assert!(
        reserved_for_db(&master_state().await) >= 16.0,
        "{}",
        master_state().await
    );

    // 1. The app is restarted (a new config version): the instance is
    // relaunched in place, on its reservation, and finds its data.
    let mut changed = app.clone();
    changed.env.insert(
        "ROUND".into(),
        baton::state::app::EnvValue::Value("2".into()),
    );
    s.scheduler.put_app(changed).await.expect("change the app");
    let second_id = next_incarnation(&first.task_id);
    let view = wait_view(&s.scheduler, "the restarted incarnation to run", |v| {
        running_db(v).is_some_and(|(_, t)| t.task_id == second_id)
    })
    .await;
    let (again, second) = running_db(&view).unwrap();
    assert_eq!(again.uuid, instance.uuid, "the same instance");
    assert_eq!(
        second.agent_id.as_str(),
        held.agent_id.as_str(),
        "the same agent"
    );
    wait_history(
        vec![first.task_id.clone(), second.task_id.clone()],
        "the second incarnation's line",
    )
    .await;

    // 2. Its agent restarts, and the task is killed (not wiped) meanwhile:
    // the next incarnation comes on the same agent, with the same volume.
    let agent: usize = first
        .hostname
        .as_str()
        .rsplit('.')
        .next()
        .unwrap()
        .parse()
        .unwrap();
    s.cluster.faults().stop_agent(agent).await;
    s.cluster.faults().start_agent(agent).await;
    s.scheduler
        .kill_tasks(vec![second.task_id.clone()], KillOptions::default())
        .await
        .expect("kill the task");
    let third_id = next_incarnation(&second.task_id);
    let view = wait_view(
        &s.scheduler,
        "the incarnation after the agent restart",
        |v| running_db(v).is_some_and(|(_, t)| t.task_id == third_id),
    )
    .await;
    let (_, third) = running_db(&view).unwrap();
    assert_eq!(third.agent_id.as_str(), held.agent_id.as_str());
    wait_history(
        vec![
            first.task_id.clone(),
            second.task_id.clone(),
            third.task_id.clone(),
        ],
        "the third incarnation's line",
    )
    .await;
    // And it read what the earlier ones wrote: its sandbox's copy.
    let seen = find_named(&work_dir, "seen", false)
        .into_iter()
        .filter_map(|p| std::fs::read_to_string(p).ok())
        .any(|t| t == format!("{}\n{}\n", first.task_id, second.task_id));
    assert!(seen, "the third incarnation read the first two's lines");

    // 3. Scaled to 0 the instance stops but keeps its volume; scaled back
    // to 1 it resumes on it.
    let mut none = app.clone();
    none.instances = 0;
    s.scheduler.put_app(none).await.expect("scale to 0");
    wait_view(&s.scheduler, "the instance to stop", |v| {
        v.instances_of(&apps::path("/db")).all(|i| {
            i.goal == baton::state::instance::Goal::Stopped
                && i.condition().is_some_and(Condition::is_terminal)
        }) && v.instances_of(&apps::path("/db")).count() == 1
    })
    .await;
    assert!(
        reserved_for_db(&master_state().await) >= 16.0,
        "kept while stopped"
    );
    s.scheduler.put_app(app.clone()).await.expect("scale to 1");
    let fourth_id = next_incarnation(&third.task_id);
    wait_view(&s.scheduler, "the resumed incarnation", |v| {
        running_db(v).is_some_and(|(_, t)| t.task_id == fourth_id)
    })
    .await;
    wait_history(
        vec![
            first.task_id.clone(),
            second.task_id.clone(),
            third.task_id.clone(),
            fourth_id.clone(),
        ],
        "the resumed incarnation's line",
    )
    .await;

    // 4. Deleted: its volume is destroyed and its resources unreserved.
    apps::delete_all(&s.scheduler).await;
    wait::until(DEADLINE, "the reservation to be freed", || {
        let state = master_state();
        async move { (reserved_for_db(&state.await) == 0.0).then_some(()) }
    })
    .await;
    wait::until(DEADLINE, "the volume to be destroyed", || {
        let gone = find_named(&work_dir, &persistence_id, true).is_empty();
        async move { gone.then_some(()) }
    })
    .await;
    s.shutdown().await;
}
