//! The agent side, with the test playing a custom executor over the v1
//! executor API: the agent starts a placeholder process (`sleep`) as the
//! executor's container, and the test SUBSCRIBEs and sends UPDATEs in its
//! name. Covers the executor environment, SUBSCRIBED/LAUNCH, per-task
//! one-at-a-time delivery and retries, faults, KILL, executor exit, agent
//! loss and recovery, framework failover expiry.

use super::common;

use std::collections::HashMap;

use common::*;
use mesos_proto::executor::{self as exec_api, event as ex_event};
use mesos_proto::scheduler::event;
use mesos_proto::v1::{self, TaskState, task_status::Reason, task_status::Source};
use mesos_proto::{Encoding, util};
use reqwest::StatusCode;

/// The placeholder executor process: records its pid and environment.
const PLACEHOLDER: &str =
    "echo $$ > pid.tmp && mv pid.tmp pid; env > env.tmp && mv env.tmp env.txt; exec sleep 600";

fn parse_env(text: &str) -> HashMap<String, String> {
    text.lines()
        .filter_map(|l| l.split_once('='))
        .map(|(k, v)| (k.to_string(), v.to_string()))
        .collect()
}

async fn placeholder_pid(work_dir: &std::path::Path, executor_id: &str) -> i32 {
    let dir = sandbox(work_dir, executor_id).await;
    file_content(&dir.join("pid")).await.trim().parse().unwrap()
}

/// Live processes whose working directory is `dir`.
fn processes_in(dir: &std::path::Path) -> usize {
    std::fs::read_dir("/proc")
        .map(|d| {
            d.flatten()
                .filter(|e| e.file_name().to_string_lossy().parse::<i32>().is_ok())
                .filter(|e| std::fs::read_link(e.path().join("cwd")).is_ok_and(|c| c == dir))
                .filter(|e| alive(e.file_name().to_string_lossy().parse().unwrap_or(0)))
                .count()
        })
        .unwrap_or(0)
}

async fn protocol_round_trip(encoding: Encoding, ports: u16) {
    let (cluster, dir) = start(ports).await;
    let mut s = Sched::subscribe(
        &cluster.master_url(),
        encoding,
        framework_info("exec", true, 60.0),
    )
    .await;
    let offers = s.offers_from(1).await;
    let offer = &offers[0];
    let agent = agent_index(offer);
    let endpoint = cluster.agent_endpoint(agent);
    s.accept(
        vec![offer.id.clone()],
        vec![launch(vec![custom_task(
            "task-1",
            offer,
            "exec-1",
            PLACEHOLDER,
        )])],
        None,
    )
    .await;

    // The container: sandbox layout and MESOS_* environment.
    let sandbox_dir = sandbox(dir.path(), "exec-1").await;
    let rel = sandbox_dir
        .strip_prefix(dir.path())
        .unwrap()
        .display()
        .to_string();
    let expected_prefix = format!(
        "agents/{}/frameworks/{}/executors/exec-1/runs/",
        offer.agent_id.value, s.framework_id
    );
    assert!(rel.starts_with(&expected_prefix), "{rel}");
    let env = parse_env(&file_content(&sandbox_dir.join("env.txt")).await);
    assert_eq!(env["MESOS_FRAMEWORK_ID"], s.framework_id);
    assert_eq!(env["MESOS_EXECUTOR_ID"], "exec-1");
    assert_eq!(env["MESOS_SANDBOX"], sandbox_dir.display().to_string());
    assert_eq!(env["MESOS_DIRECTORY"], sandbox_dir.display().to_string());
    assert_eq!(env["MESOS_AGENT_ENDPOINT"], endpoint.to_string());
    assert_eq!(env["MESOS_SLAVE_ID"], offer.agent_id.value);
    assert_eq!(env["MESOS_CHECKPOINT"], "1");
    assert_eq!(env["MESOS_HTTP_COMMAND_EXECUTOR"], "1");
    assert_eq!(env["MESOS_EXECUTOR_SHUTDOWN_GRACE_PERIOD"], "1secs");
    assert_eq!(env["MESOS_RECOVERY_TIMEOUT"], "15mins");
    assert_eq!(env["MESOS_SUBSCRIPTION_BACKOFF_MAX"], "2secs");
    assert!(env.contains_key("PATH"), "inherits the agent's environment");

    // Before SUBSCRIBE: 403; unknown executor: 400; HEARTBEAT: 202.
    let api = format!("http://{endpoint}/api/v1/executor");
    let mut upd = Exec::call(&s.framework_id, "exec-1", exec_api::call::Type::Update);
    let mut st = util::status(
        util::task_id("task-1"),
        TaskState::TaskRunning,
        Source::Executor,
    );
    st.uuid = Some(util::new_status_uuid());
    upd.update = Some(exec_api::call::Update { status: st });
    let r = raw_post(
        &api,
        Some(encoding.media_type()),
        None,
        None,
        encoding.encode(&upd).unwrap(),
    )
    .await;
    assert_eq!(r.status(), StatusCode::FORBIDDEN);
    upd.executor_id = util::executor_id("nobody");
    upd.update.as_mut().unwrap().status.executor_id = None;
    let r = raw_post(
        &api,
        Some(encoding.media_type()),
        None,
        None,
        encoding.encode(&upd).unwrap(),
    )
    .await;
    assert_eq!(r.status(), StatusCode::BAD_REQUEST);
    assert_eq!(r.text().await.unwrap(), "Executor cannot be found");
    let hb = Exec::call("any", "thing", exec_api::call::Type::Heartbeat);
    let r = raw_post(
        &api,
        Some(encoding.media_type()),
        None,
        None,
        encoding.encode(&hb).unwrap(),
    )
    .await;
    assert_eq!(r.status(), StatusCode::ACCEPTED);

    // SUBSCRIBE: SUBSCRIBED then the queued LAUNCH.
    let mut e = Exec::subscribe_retry(endpoint, encoding, &s.framework_id, "exec-1").await;
    let sub = e
        .expect("SUBSCRIBED", |ev| ev.r#type() == ex_event::Type::Subscribed)
        .await
        .subscribed
        .unwrap();
    assert_eq!(sub.executor_info.executor_id.value, "exec-1");
    assert_eq!(sub.framework_info.id.unwrap().value, s.framework_id);
    assert_eq!(sub.agent_info.hostname, offer.hostname);
    assert_eq!(sub.agent_info.id.unwrap(), offer.agent_id);
    assert!(sub.container_id.is_some());
    let l = e
        .expect("LAUNCH", |ev| ev.r#type() == ex_event::Type::Launch)
        .await
        .launch
        .unwrap();
    assert_eq!(l.task.task_id.value, "task-1");

    // UPDATE → agent ACKNOWLEDGED → scheduler UPDATE with uuid.
    let running = e.update("task-1", TaskState::TaskRunning).await;
    let ack = e
        .expect("ACKNOWLEDGED", |ev| {
            ev.r#type() == ex_event::Type::Acknowledged
        })
        .await
        .acknowledged
        .unwrap();
    assert_eq!(ack.uuid, running);
    let got = s.update_in("task-1", TaskState::TaskRunning).await;
    assert_eq!(got.uuid.as_deref(), Some(running.as_slice()));
    assert_eq!(got.agent_id.as_ref().unwrap(), &offer.agent_id);
    assert_eq!(got.executor_id.as_ref().unwrap().value, "exec-1");
    assert_eq!(got.source(), Source::Executor);
    let ip = &got.container_status.as_ref().unwrap().network_infos[0].ip_addresses[0];
    assert_eq!(ip.ip_address.as_deref(), Some(offer.hostname.as_str()));

    // One at a time: FINISHED waits for the ACK of RUNNING. The agent
    // tells the master the latest state with each (re)sent head, so once
    // the master knows FINISHED the head has been sent since FINISHED was
    // queued; everything it forwarded (its `statuses`) is still RUNNING,
    // and so is everything the scheduler has seen.
    let finished = e.update("task-1", TaskState::TaskFinished).await;
    eventually("master sees the latest state", || {
        cluster.state()["frameworks"][0]["tasks"][0]["state"] == "TASK_FINISHED"
    })
    .await;
    let state = cluster.state();
    let forwarded = state["frameworks"][0]["tasks"][0]["statuses"]
        .as_array()
        .unwrap()
        .clone();
    assert!(
        forwarded.iter().all(|st| st["state"] == "TASK_RUNNING"),
        "{forwarded:?}"
    );
    while let Ok(ev) = s.events.try_recv() {
        let state = ev.update.map(|u| u.status.state());
        assert_ne!(state, Some(TaskState::TaskFinished));
    }
    s.ack(&got).await;
    let fin = s.update_in("task-1", TaskState::TaskFinished).await;
    assert_eq!(fin.uuid.as_deref(), Some(finished.as_slice()));
    s.ack(&fin).await;
    eventually("task completed", || {
        let fw = &cluster.state()["frameworks"][0];
        fw["tasks"].as_array().is_some_and(|t| t.is_empty())
            && fw["completed_tasks"][0]["state"] == "TASK_FINISHED"
    })
    .await;
    let state = cluster.state();
    let done = &state["frameworks"][0]["completed_tasks"][0];
    assert_eq!(done["executor_id"], "exec-1");
    assert_eq!(done["slave_id"], offer.agent_id.value);
    assert_eq!(done["statuses"].as_array().unwrap().len(), 2);

    // Executor MESSAGE reaches the framework.
    let mut m = Exec::call(&s.framework_id, "exec-1", exec_api::call::Type::Message);
    m.message = Some(exec_api::call::Message {
        data: b"hi".to_vec(),
    });
    assert_eq!(e.post(&m).await.0, StatusCode::ACCEPTED);
    let msg = s
        .expect("MESSAGE", |ev| ev.r#type() == event::Type::Message)
        .await
        .message
        .unwrap();
    assert_eq!(msg.data, b"hi");

    // TEARDOWN: SHUTDOWN to the executor; after the grace its container
    // is destroyed.
    let pid = placeholder_pid(dir.path(), "exec-1").await;
    assert!(alive(pid));
    s.send(s.call(mesos_proto::scheduler::call::Type::Teardown))
        .await;
    e.expect("SHUTDOWN", |ev| ev.r#type() == ex_event::Type::Shutdown)
        .await;
    assert!(
        e.ends().await,
        "executor stream closes when the container is destroyed"
    );
    eventually("placeholder killed", || !alive(pid)).await;
    stop(cluster, dir.path()).await;
}

#[tokio::test]
async fn custom_executor_protocol_round_trip_json() {
    protocol_round_trip(Encoding::Json, 30000).await;
}

#[tokio::test]
async fn custom_executor_protocol_round_trip_protobuf() {
    protocol_round_trip(Encoding::Protobuf, 30300).await;
}

/// Subscribes a scheduler, launches `tasks` custom tasks on the first
/// offered agent, subscribes as each executor and reports TASK_RUNNING
/// (acknowledged).
async fn running_tasks(
    cluster: &mesos_local::LocalCluster,
    info: v1::FrameworkInfo,
    ids: &[&str],
) -> (Sched, v1::Offer, Vec<Exec>) {
    let mut s = Sched::subscribe(&cluster.master_url(), Encoding::Protobuf, info).await;
    let offer = s.offers_from(1).await.remove(0);
    let agent = agent_index(&offer);
    let tasks = ids
        .iter()
        .map(|id| custom_task(id, &offer, &format!("exec-{id}"), PLACEHOLDER))
        .collect();
    s.accept(vec![offer.id.clone()], vec![launch(tasks)], Some(0.0))
        .await;
    let mut execs = Vec::new();
    for id in ids {
        // The process may not have started yet: the agent knows the
        // executor as soon as the launch reaches it.
        let mut e = Exec::subscribe_retry(
            cluster.agent_endpoint(agent),
            Encoding::Protobuf,
            &s.framework_id,
            &format!("exec-{id}"),
        )
        .await;
        e.expect("LAUNCH", |ev| ev.r#type() == ex_event::Type::Launch)
            .await;
        e.update(id, TaskState::TaskRunning).await;
        let st = s.update_in(id, TaskState::TaskRunning).await;
        s.ack(&st).await;
        execs.push(e);
    }
    (s, offer, execs)
}

#[tokio::test]
async fn dropped_and_duplicated_updates() {
    let (cluster, dir) = start(30600).await;
    let faults = cluster.faults();
    let (mut s, _offer, execs) = running_tasks(
        &cluster,
        framework_info("faults", true, 60.0),
        &["t-faults"],
    )
    .await;
    let e = &execs[0];

    faults.drop_next_status_update();
    let uuid = e.update("t-faults", TaskState::TaskRunning).await;
    // The first forward is dropped; the agent's retry (300 ms) delivers it.
    let got = s.update("t-faults").await;
    assert_eq!(got.uuid.as_deref(), Some(uuid.as_slice()));
    s.ack(&got).await;

    faults.duplicate_next_status_update();
    let uuid = e.update("t-faults", TaskState::TaskRunning).await;
    let a = s.update("t-faults").await;
    let b = s.update("t-faults").await;
    assert_eq!(a.uuid.as_deref(), Some(uuid.as_slice()));
    assert_eq!(a.uuid, b.uuid);
    s.ack(&a).await;
    s.ack(&b).await; // a second ACK of the same uuid is harmless
    let last = e.update("t-faults", TaskState::TaskFinished).await;
    let fin = s.update_in("t-faults", TaskState::TaskFinished).await;
    assert_eq!(fin.uuid.as_deref(), Some(last.as_slice()));
    stop(cluster, dir.path()).await;
}

#[tokio::test]
async fn kill_reaches_the_executor_and_executor_exit_fails_its_tasks() {
    let (cluster, dir) = start(30900).await;
    let (mut s, offer, mut execs) =
        running_tasks(&cluster, framework_info("kill", true, 60.0), &["t-kill"]).await;
    s.kill("t-kill").await;
    let k = execs[0]
        .expect("KILL", |ev| ev.r#type() == ex_event::Type::Kill)
        .await
        .kill
        .unwrap();
    assert_eq!(k.task_id.value, "t-kill");

    // The executor dies with its task still running.
    let pid = placeholder_pid(dir.path(), "exec-t-kill").await;
    let kill_sandbox = sandbox(dir.path(), "exec-t-kill").await;
    // The script's last commands may still be finishing before its `exec`.
    eventually("only the placeholder runs", || {
        processes_in(&kill_sandbox) == 1
    })
    .await;
    nix::sys::signal::kill(
        nix::unistd::Pid::from_raw(pid),
        nix::sys::signal::Signal::SIGKILL,
    )
    .unwrap();
    let failed = s.update_in("t-kill", TaskState::TaskFailed).await;
    assert_eq!(failed.reason(), Reason::ExecutorTerminated);
    assert_eq!(failed.source(), Source::Agent);
    assert!(failed.uuid.is_some());
    let failure = s
        .expect("FAILURE", |ev| ev.r#type() == event::Type::Failure)
        .await
        .failure
        .unwrap();
    assert_eq!(failure.executor_id.unwrap().value, "exec-t-kill");
    assert_eq!(failure.agent_id.unwrap(), offer.agent_id);
    assert_eq!(failure.status, Some(9), "raw wait status of SIGKILL");
    s.ack(&failed).await;
    assert_eq!(processes_in(&kill_sandbox), 0);
    eventually("task completed, executor gone", || {
        let st = cluster.state();
        let fw = &st["frameworks"][0];
        fw["completed_tasks"][0]["state"] == "TASK_FAILED"
            && fw["executors"].as_array().is_some_and(|e| e.is_empty())
    })
    .await;
    stop(cluster, dir.path()).await;
}

/// The id of an offer the master holds out on `agent_id`, per `/master/state`.
fn outstanding_offer_on(state: &serde_json::Value, agent_id: &str) -> Option<String> {
    state["frameworks"]
        .as_array()?
        .iter()
        .flat_map(|fw| fw["offers"].as_array().into_iter().flatten())
        .find(|o| o["slave_id"] == agent_id)
        .and_then(|o| o["id"].as_str().map(str::to_owned))
}

#[tokio::test]
async fn stopped_agent_makes_tasks_unreachable_and_restart_recovers_them() {
    let (cluster, dir) = start(31200).await;
    let faults = cluster.faults();
    let (mut s, offer, mut execs) = running_tasks(
        &cluster,
        framework_info("partition", true, 60.0),
        &["t-a", "t-b"],
    )
    .await;
    let agent = agent_index(&offer);
    // Hold an offer on that agent so its rescind can be seen. It is read
    // from the master's state: the OFFERS event carrying it may already
    // have been skipped while the tasks were waited for.
    let mut held_id = None;
    eventually("an outstanding offer on the tasks' agent", || {
        held_id = outstanding_offer_on(&cluster.state(), &offer.agent_id.value);
        held_id.is_some()
    })
    .await;
    let pid_b = placeholder_pid(dir.path(), "exec-t-b").await;

    faults.stop_agent(agent).await;
    for e in &mut execs {
        assert!(e.ends().await, "executor streams drop with the agent");
    }
    let rescind = s
        .expect("RESCIND", |ev| ev.r#type() == event::Type::Rescind)
        .await;
    assert_eq!(rescind.rescind.unwrap().offer_id.value, held_id.unwrap());
    for id in ["t-a", "t-b"] {
        let u = s.update_in(id, TaskState::TaskUnreachable).await;
        assert_eq!(u.reason(), Reason::AgentRemoved);
        assert!(u.unreachable_time.is_some());
        assert!(u.uuid.is_none());
    }
    s.reconcile(vec![("t-a", Some(&offer.agent_id.value))])
        .await;
    let r = s.update("t-a").await;
    assert_eq!(r.state(), TaskState::TaskUnreachable);
    assert_eq!(r.reason(), Reason::Reconciliation);
    assert_eq!(cluster.state()["unreachable_slaves"], 1);
    // Processes survive the agent.
    assert!(alive(pid_b));

    faults.start_agent(agent).await;
    for id in ["t-a", "t-b"] {
        let u = s.update(id).await;
        assert_eq!(u.state(), TaskState::TaskRunning, "{id}");
        assert_eq!(u.reason(), Reason::AgentReregistered);
        assert_eq!(u.source(), v1::task_status::Source::Master);
        assert!(u.uuid.is_none());
    }
    // exec-t-a comes back in time; exec-t-b does not.
    let endpoint = cluster.agent_endpoint(agent);
    let mut a = Exec::subscribe_retry(endpoint, Encoding::Json, &s.framework_id, "exec-t-a").await;
    a.expect("SUBSCRIBED", |ev| ev.r#type() == ex_event::Type::Subscribed)
        .await;
    let gone = s.update_in("t-b", TaskState::TaskGone).await;
    assert_eq!(gone.reason(), Reason::ExecutorReregistrationTimeout);
    assert!(gone.uuid.is_some());
    s.ack(&gone).await;
    eventually("container of exec-t-b destroyed", || !alive(pid_b)).await;
    a.update("t-a", TaskState::TaskFinished).await;
    let fin = s.update_in("t-a", TaskState::TaskFinished).await;
    s.ack(&fin).await;
    stop(cluster, dir.path()).await;
}

#[tokio::test]
async fn zero_failover_timeout_and_a_cut_stream_kill_the_tasks() {
    let (cluster, dir) = start(31500).await;
    let faults = cluster.faults();
    let (mut s, _offer, mut execs) =
        running_tasks(&cluster, framework_info("fragile", false, 0.0), &["t-frag"]).await;
    let pid = placeholder_pid(dir.path(), "exec-t-frag").await;
    faults.cut_framework_streams();
    while s.next().await.is_some() {}
    execs[0]
        .expect("SHUTDOWN", |ev| ev.r#type() == ex_event::Type::Shutdown)
        .await;
    eventually("container destroyed after the grace", || !alive(pid)).await;
    eventually("framework removed", || {
        let st = cluster.state();
        st["frameworks"].as_array().is_some_and(|f| f.is_empty())
            && st["completed_frameworks"][0]["completed_tasks"][0]["state"] == "TASK_KILLED"
    })
    .await;
    let api = format!("{}/api/v1/scheduler", cluster.master_url());
    let r = raw_post(
        &api,
        Some("application/json"),
        None,
        None,
        Encoding::Json.encode(&subscribe_call(&s.info)).unwrap(),
    )
    .await;
    assert_eq!(r.status(), StatusCode::OK);
    assert!(
        String::from_utf8_lossy(&r.bytes().await.unwrap()).contains("Framework has been removed")
    );
    stop(cluster, dir.path()).await;
}

#[tokio::test]
async fn failover_within_the_timeout_keeps_tasks_and_redelivers_updates() {
    let (cluster, dir) = start(31800).await;
    let faults = cluster.faults();
    let (mut s, _offer, execs) = running_tasks(
        &cluster,
        framework_info("durable", true, 3600.0),
        &["t-dur"],
    )
    .await;
    faults.cut_framework_streams();
    while s.next().await.is_some() {}
    // An update while disconnected reaches the master, which has no stream
    // to put it on; the agent keeps retrying it.
    let uuid = execs[0].update("t-dur", TaskState::TaskFinished).await;
    eventually("the master got the update while disconnected", || {
        cluster.state()["frameworks"][0]["tasks"][0]["state"] == "TASK_FINISHED"
    })
    .await;
    let mut again = Sched::subscribe(&cluster.master_url(), Encoding::Json, s.info.clone()).await;
    assert_eq!(again.framework_id, s.framework_id);
    let fin = again.update_in("t-dur", TaskState::TaskFinished).await;
    assert_eq!(fin.uuid.as_deref(), Some(uuid.as_slice()));
    again.ack(&fin).await;
    assert_eq!(cluster.faults().subscribe_count(), 2);
    stop(cluster, dir.path()).await;
}

#[tokio::test]
async fn executor_api_status_codes() {
    let (cluster, dir) = start(32100).await;
    let api = format!("http://{}/api/v1/executor", cluster.agent_endpoint(1));
    let hb = Exec::call("f", "e", exec_api::call::Type::Heartbeat);
    let json = Encoding::Json.encode(&hb).unwrap();
    assert_eq!(
        http().get(&api).send().await.unwrap().status(),
        StatusCode::METHOD_NOT_ALLOWED
    );
    assert_eq!(
        raw_post(&api, None, None, None, json.clone())
            .await
            .status(),
        StatusCode::BAD_REQUEST
    );
    assert_eq!(
        raw_post(
            &api,
            Some("application/json; charset=utf-8"),
            None,
            None,
            json.clone()
        )
        .await
        .status(),
        StatusCode::UNSUPPORTED_MEDIA_TYPE
    );
    assert_eq!(
        raw_post(&api, Some("application/json"), None, None, b"[]".to_vec())
            .await
            .status(),
        StatusCode::BAD_REQUEST
    );
    let mut sub = Exec::call("f", "e", exec_api::call::Type::Subscribe);
    sub.subscribe = Some(Default::default());
    let body = Encoding::Json.encode(&sub).unwrap();
    assert_eq!(
        raw_post(
            &api,
            Some("application/json"),
            Some("text/plain"),
            None,
            body.clone()
        )
        .await
        .status(),
        StatusCode::NOT_ACCEPTABLE
    );
    let r = raw_post(&api, Some("application/json"), None, None, body).await;
    assert_eq!(r.status(), StatusCode::BAD_REQUEST);
    assert_eq!(r.text().await.unwrap(), "Framework cannot be found");
    for (state, source, uuid) in [
        (
            TaskState::TaskStaging,
            Source::Executor,
            Some(util::new_status_uuid()),
        ),
        (
            TaskState::TaskRunning,
            Source::Agent,
            Some(util::new_status_uuid()),
        ),
        (TaskState::TaskRunning, Source::Executor, Some(vec![1, 2])),
        (TaskState::TaskRunning, Source::Executor, None),
        // A number that names no state.
        (
            TaskState::TaskUnknown,
            Source::Executor,
            Some(util::new_status_uuid()),
        ),
    ] {
        let mut c = Exec::call("f", "e", exec_api::call::Type::Update);
        let mut st = util::status(util::task_id("t"), state, source);
        st.uuid = uuid;
        if state == TaskState::TaskUnknown {
            st.state = 999;
        }
        c.update = Some(exec_api::call::Update { status: st });
        let r = raw_post(
            &api,
            Some("application/x-protobuf"),
            None,
            None,
            Encoding::Protobuf.encode(&c).unwrap(),
        )
        .await;
        assert_eq!(r.status(), StatusCode::BAD_REQUEST, "{state:?} {source:?}");
    }
    stop(cluster, dir.path()).await;
}

#[tokio::test]
async fn kill_before_delivery_and_shutdown_call() {
    let (cluster, dir) = start(32400).await;
    let mut s = Sched::subscribe(
        &cluster.master_url(),
        Encoding::Json,
        framework_info("early", true, 60.0),
    )
    .await;
    let offer = s.offers_from(1).await.remove(0);
    let agent = agent_index(&offer);
    s.accept(
        vec![offer.id.clone()],
        vec![launch(vec![
            custom_task("t-early", &offer, "exec-early", PLACEHOLDER),
            custom_task("t-shut", &offer, "exec-shut", PLACEHOLDER),
        ])],
        None,
    )
    .await;
    // Nobody subscribed as exec-early: the task was never delivered.
    s.kill("t-early").await;
    let killed = s.update_in("t-early", TaskState::TaskKilled).await;
    assert_eq!(killed.reason(), Reason::TaskKilledDuringLaunch);
    assert_eq!(killed.source(), Source::Agent);
    s.ack(&killed).await;
    // The idle executor is destroyed (perhaps before its shell ran).
    let early = sandbox(dir.path(), "exec-early").await;
    eventually("no process left in the idle executor's sandbox", || {
        processes_in(&early) == 0
    })
    .await;

    // SHUTDOWN: the executor is told, ignores it, and is destroyed after
    // the grace; its task fails.
    let mut e = Exec::subscribe_retry(
        cluster.agent_endpoint(agent),
        Encoding::Json,
        &s.framework_id,
        "exec-shut",
    )
    .await;
    e.expect("LAUNCH", |ev| ev.r#type() == ex_event::Type::Launch)
        .await;
    e.update("t-shut", TaskState::TaskRunning).await;
    let running = s.update_in("t-shut", TaskState::TaskRunning).await;
    s.ack(&running).await;
    let mut shutdown = s.call(mesos_proto::scheduler::call::Type::Shutdown);
    shutdown.shutdown = Some(mesos_proto::scheduler::call::Shutdown {
        executor_id: util::executor_id("exec-shut"),
        agent_id: offer.agent_id.clone(),
    });
    s.send(shutdown).await;
    e.expect("SHUTDOWN", |ev| ev.r#type() == ex_event::Type::Shutdown)
        .await;
    let failed = s.update_in("t-shut", TaskState::TaskFailed).await;
    assert_eq!(failed.reason(), Reason::ExecutorTerminated);
    s.expect("FAILURE", |ev| ev.r#type() == event::Type::Failure)
        .await;
    stop(cluster, dir.path()).await;
}

#[tokio::test]
async fn launch_group_reaches_the_executor_as_one_event() {
    let (cluster, dir) = start(32700).await;
    let mut s = Sched::subscribe(
        &cluster.master_url(),
        Encoding::Protobuf,
        framework_info("group", true, 60.0),
    )
    .await;
    let offer = s.offers_from(1).await.remove(0);
    let agent = agent_index(&offer);
    let mut executor = custom_task("x", &offer, "exec-group", PLACEHOLDER)
        .executor
        .unwrap();
    executor.r#type = Some(v1::executor_info::Type::Custom as i32);
    let member = |id: &str| {
        let mut t = custom_task(id, &offer, "unused", PLACEHOLDER);
        t.executor = None;
        t
    };
    let op = v1::offer::Operation {
        r#type: Some(v1::offer::operation::Type::LaunchGroup as i32),
        launch_group: Some(v1::offer::operation::LaunchGroup {
            executor,
            task_group: v1::TaskGroupInfo {
                tasks: vec![member("g-1"), member("g-2")],
            },
        }),
        ..Default::default()
    };
    s.accept(vec![offer.id.clone()], vec![op], None).await;
    let mut e = Exec::subscribe_retry(
        cluster.agent_endpoint(agent),
        Encoding::Protobuf,
        &s.framework_id,
        "exec-group",
    )
    .await;
    let group = e
        .expect("LAUNCH_GROUP", |ev| {
            ev.r#type() == ex_event::Type::LaunchGroup
        })
        .await
        .launch_group
        .unwrap();
    let ids: Vec<String> = group
        .task_group
        .tasks
        .iter()
        .map(|t| t.task_id.value.clone())
        .collect();
    assert_eq!(ids, vec!["g-1", "g-2"]);
    let state = cluster.state();
    let tasks = state["frameworks"][0]["tasks"].as_array().unwrap();
    assert_eq!(tasks.len(), 2);
    assert!(tasks.iter().all(|t| t["executor_id"] == "exec-group"));
    assert_eq!(
        state["frameworks"][0]["executors"][0]["executor_id"],
        "exec-group"
    );
    stop(cluster, dir.path()).await;
}

#[tokio::test]
async fn master_restart_keeps_tasks_and_needs_resubscription() {
    let (cluster, dir) = start(33000).await;
    let faults = cluster.faults();
    let (mut s, offer, execs) =
        running_tasks(&cluster, framework_info("restart", true, 3600.0), &["t-rs"]).await;
    faults.restart_master();
    while s.next().await.is_some() {}
    // Known from the agent's reregistration, not subscribed: 403.
    eventually("agent reregistered", || {
        cluster.state()["activated_slaves"] == 3
    })
    .await;
    let (code, body) = s
        .post(&s.call(mesos_proto::scheduler::call::Type::Revive))
        .await;
    assert_eq!(code, StatusCode::FORBIDDEN, "{body}");
    assert_eq!(cluster.state()["frameworks"][0]["recovered"], true);
    let mut again = Sched::subscribe(&cluster.master_url(), Encoding::Json, s.info.clone()).await;
    assert_ne!(again.stream_id, s.stream_id);
    again
        .reconcile(vec![("t-rs", Some(&offer.agent_id.value))])
        .await;
    assert_eq!(again.update("t-rs").await.state(), TaskState::TaskRunning);
    execs[0].update("t-rs", TaskState::TaskFinished).await;
    let fin = again.update_in("t-rs", TaskState::TaskFinished).await;
    again.ack(&fin).await;
    stop(cluster, dir.path()).await;
}

#[tokio::test]
async fn shutdown_of_an_unsubscribed_executor_is_sigterm_then_destroy() {
    let (cluster, dir) = start(33300).await;
    let mut s = Sched::subscribe(
        &cluster.master_url(),
        Encoding::Json,
        framework_info("term", true, 60.0),
    )
    .await;
    let offer = s.offers_from(1).await.remove(0);
    // It notes SIGTERM, then stops (and its background child with it).
    let script = "trap 'echo term > got-term; kill $!; exit 0' TERM; \
                  echo $$ > pid.tmp && mv pid.tmp pid; sleep 600 & wait";
    s.accept(
        vec![offer.id.clone()],
        vec![launch(vec![custom_task(
            "t-term",
            &offer,
            "exec-term",
            script,
        )])],
        None,
    )
    .await;
    let pid = placeholder_pid(dir.path(), "exec-term").await;
    let mut shutdown = s.call(mesos_proto::scheduler::call::Type::Shutdown);
    shutdown.shutdown = Some(mesos_proto::scheduler::call::Shutdown {
        executor_id: util::executor_id("exec-term"),
        agent_id: offer.agent_id.clone(),
    });
    s.send(shutdown).await;
    let failed = s.update_in("t-term", TaskState::TaskFailed).await;
    assert_eq!(failed.reason(), Reason::ExecutorTerminated);
    let sandbox_dir = sandbox(dir.path(), "exec-term").await;
    assert!(sandbox_dir.join("got-term").exists(), "no SIGTERM first");
    eventually("executor gone", || !alive(pid)).await;
    stop(cluster, dir.path()).await;
}
