//! Command tasks run by the real `baton-executor` (built on demand; the
//! tests fail if it cannot be built).

use super::common;

use std::time::Duration;

use common::*;
use mesos_proto::Encoding;
use mesos_proto::v1::{self, TaskState, task_status::Reason};

/// Acknowledges every reliable update of `task_id` until one in `state`
/// arrives; returns the states seen in order.
async fn until_state(s: &mut Sched, task_id: &str, state: TaskState) -> Vec<TaskState> {
    let mut seen = Vec::new();
    loop {
        let u = s.update(task_id).await;
        if u.uuid.is_some() {
            s.ack(&u).await;
        }
        seen.push(u.state());
        if u.state() == state {
            return seen;
        }
        assert!(
            !mesos_proto::util::is_terminal(u.state()),
            "{task_id} ended in {:?} ({}) while waiting for {state:?}",
            u.state(),
            u.message()
        );
    }
}

async fn command_task_lifecycle(encoding: Encoding, ports: u16) {
    ensure_baton_executor();
    let (cluster, dir) = start(ports).await;
    let mut s = Sched::subscribe(
        &cluster.master_url(),
        encoding,
        framework_info("cmd", true, 60.0),
    )
    .await;
    let offer = s.offers_from(1).await.remove(0);
    let mut sleeper = command_task("sleeper", &offer, "sleep 30");
    sleeper.discovery = Some(v1::DiscoveryInfo {
        visibility: v1::discovery_info::Visibility::Framework as i32,
        name: Some("sleepy".into()),
        ..Default::default()
    });
    s.accept(vec![offer.id.clone()], vec![launch(vec![sleeper])], None)
        .await;
    let states = until_state(&mut s, "sleeper", TaskState::TaskRunning).await;
    assert!(
        states == [TaskState::TaskRunning]
            || states == [TaskState::TaskStarting, TaskState::TaskRunning],
        "{states:?}"
    );
    let sandbox_dir = sandbox(dir.path(), "sleeper").await;
    assert!(sandbox_dir.join("stdout").exists() && sandbox_dir.join("stderr").exists());
    let state = cluster.state();
    let task = &state["frameworks"][0]["tasks"][0];
    assert_eq!(task["state"], "TASK_RUNNING");
    assert_eq!(task["executor_id"], "");
    // What mesos-dns reads.
    assert_eq!(task["name"], "sleeper");
    assert_eq!(task["discovery"]["name"], "sleepy");
    let port = first_port(&offer);
    assert_eq!(task["resources"]["ports"], format!("[{port}-{port}]"));
    let running = task["statuses"]
        .as_array()
        .unwrap()
        .iter()
        .find(|st| st["state"] == "TASK_RUNNING")
        .unwrap();
    assert_eq!(
        running["container_status"]["network_infos"][0]["ip_addresses"][0]["ip_address"],
        offer.hostname.as_str()
    );
    let fw = &state["frameworks"][0];
    assert_eq!(
        (&fw["name"], &fw["hostname"]),
        (&"cmd".into(), &"localhost".into())
    );

    // Reconciliation: explicit and implicit both report RUNNING, no uuid.
    s.reconcile(vec![("sleeper", Some(&offer.agent_id.value))])
        .await;
    let r = s.update("sleeper").await;
    assert_eq!(
        (r.state(), r.reason(), r.uuid.is_none()),
        (TaskState::TaskRunning, Reason::Reconciliation, true)
    );
    s.reconcile(vec![]).await;
    assert_eq!(s.update("sleeper").await.state(), TaskState::TaskRunning);

    s.kill("sleeper").await;
    let states = until_state(&mut s, "sleeper", TaskState::TaskKilled).await;
    assert_eq!(states.first(), Some(&TaskState::TaskKilling), "{states:?}");
    eventually("task completed", || {
        cluster.state()["frameworks"][0]["completed_tasks"][0]["state"] == "TASK_KILLED"
    })
    .await;
    stop(cluster, dir.path()).await;
}

#[tokio::test]
async fn command_task_runs_under_baton_executor_json() {
    command_task_lifecycle(Encoding::Json, 40000).await;
}

#[tokio::test]
async fn command_task_runs_under_baton_executor_protobuf() {
    command_task_lifecycle(Encoding::Protobuf, 40300).await;
}

#[tokio::test]
async fn command_task_finishes_and_frees_its_resources() {
    ensure_baton_executor();
    let (cluster, dir) = start(40600).await;
    let mut s = Sched::subscribe(
        &cluster.master_url(),
        Encoding::Protobuf,
        framework_info("fin", false, 0.0),
    )
    .await;
    let offer = s.offers_from(1).await.remove(0);
    s.accept(
        vec![offer.id.clone()],
        vec![launch(vec![command_task("quick", &offer, "echo hello")])],
        None,
    )
    .await;
    until_state(&mut s, "quick", TaskState::TaskFinished).await;
    eventually("resources freed", || {
        let st = cluster.state();
        st["slaves"]
            .as_array()
            .unwrap()
            .iter()
            .all(|a| a["used_resources"]["cpus"] == 0.0)
    })
    .await;
    stop(cluster, dir.path()).await;
}

#[tokio::test]
async fn baton_executor_survives_an_agent_restart() {
    ensure_baton_executor();
    let (cluster, dir) = start(40900).await;
    let faults = cluster.faults();
    let mut s = Sched::subscribe(
        &cluster.master_url(),
        Encoding::Protobuf,
        framework_info("survivor", true, 60.0),
    )
    .await;
    let offer = s.offers_from(1).await.remove(0);
    let agent = agent_index(&offer);
    s.accept(
        vec![offer.id.clone()],
        vec![launch(vec![command_task("durable", &offer, "sleep 60")])],
        None,
    )
    .await;
    until_state(&mut s, "durable", TaskState::TaskRunning).await;

    faults.stop_agent(agent).await;
    assert_eq!(
        s.update_in("durable", TaskState::TaskUnreachable)
            .await
            .reason(),
        Reason::AgentRemoved
    );
    faults.start_agent(agent).await;
    let back = s.update("durable").await;
    assert_eq!(
        (back.state(), back.reason()),
        (TaskState::TaskRunning, Reason::AgentReregistered)
    );
    // The executor resubscribed within the reregistration timeout: no
    // TASK_GONE follows. Nothing observable marks the agent's timer
    // firing, so watch past it: the timeout (2 s in `common::config`,
    // started with the agent above) plus a second.
    let past_the_timer = Duration::from_secs(3);
    assert!(
        !s.sees(past_the_timer, |e| e.update.as_ref().is_some_and(|u| {
            mesos_proto::util::is_terminal(u.status.state())
        }))
        .await
    );
    s.kill("durable").await;
    until_state(&mut s, "durable", TaskState::TaskKilled).await;
    stop(cluster, dir.path()).await;
}

#[tokio::test]
async fn shutdown_lets_baton_executor_stop_its_tasks_gracefully() {
    ensure_baton_executor();
    // A grace far longer than the test may take: shutting down must not
    // wait for it when the executor is done early.
    let (cluster, dir) = start_with(41200, |c| {
        c.executor_shutdown_grace_period = Duration::from_secs(20);
    })
    .await;
    let mut s = Sched::subscribe(
        &cluster.master_url(),
        Encoding::Protobuf,
        framework_info("graceful", true, 60.0),
    )
    .await;
    let offer = s.offers_from(1).await.remove(0);
    // The task notes the SIGTERM its executor forwards, then exits.
    let cmd = "trap 'echo bye > bye; exit 0' TERM; while :; do sleep 0.1; done";
    s.accept(
        vec![offer.id.clone()],
        vec![launch(vec![command_task("polite", &offer, cmd)])],
        None,
    )
    .await;
    until_state(&mut s, "polite", TaskState::TaskRunning).await;
    let sandbox_dir = sandbox(dir.path(), "polite").await;
    let t0 = tokio::time::Instant::now();
    stop(cluster, dir.path()).await;
    let took = t0.elapsed();
    assert!(sandbox_dir.join("bye").exists(), "the task got no SIGTERM");
    // Its executor's last updates were taken, so it did not wait out the
    // grace for acknowledgements.
    assert!(took < Duration::from_secs(10), "{took:?}");
}

#[tokio::test]
async fn a_failed_fetch_is_reported_as_a_mesos_agent_reports_it() {
    ensure_baton_executor();
    let (cluster, dir) = start(41200).await;
    let mut s = Sched::subscribe(
        &cluster.master_url(),
        Encoding::Json,
        framework_info("fetch", true, 60.0),
    )
    .await;
    let offer = s.offers_from(1).await.remove(0);
    let mut task = command_task("fetcher", &offer, "true");
    let missing = "file:///nonexistent/baton-fetch-test.tgz";
    task.command.as_mut().expect("a command task").uris = vec![v1::command_info::Uri {
        value: missing.into(),
        ..Default::default()
    }];
    s.accept(vec![offer.id.clone()], vec![launch(vec![task])], None)
        .await;
    let u = s.update("fetcher").await;
    assert_eq!(u.state(), TaskState::TaskFailed, "{}", u.message());
    assert_eq!(u.reason(), Reason::ContainerLaunchFailed);
    // The agent's words, without the URI...
    let message = u.message();
    assert!(
        message.starts_with("Failed to launch container: Failed to fetch all URIs for container '")
            && message.ends_with("': exited with status 1"),
        "{message}"
    );
    assert!(!message.contains(missing), "{message}");
    // ...which is in the sandbox, where the fetcher writes.
    let stderr = file_content(&sandbox(dir.path(), "fetcher").await.join("stderr")).await;
    assert!(stderr.contains(missing), "{stderr}");
    stop(cluster, dir.path()).await;
}

/// With `posix/cpu,posix/mem` (and wherever cgroups cannot be written), a
/// watchdog holds containers to their memory: a task whose processes grow
/// past the container's limit fails as Mesos's memory isolator fails it,
/// and `/monitor/statistics` shows the container's limits and use.
#[tokio::test]
async fn the_posix_watchdog_fails_a_container_over_its_memory_and_reports_usage() {
    ensure_baton_executor();
    let (cluster, dir) = start_with(23900, |c| {
        c.isolation.isolation = mesos_local::config::Isolation::Posix;
    })
    .await;
    assert_eq!(cluster.state()["flags"]["isolation"], "posix/cpu,posix/mem");
    let mut s = Sched::subscribe(
        &cluster.master_url(),
        Encoding::Json,
        framework_info("watchdog", true, 60.0),
    )
    .await;
    let offers = s.offers_from(2).await;
    let calm = command_task("calm", &offers[0], "sleep 60");
    // 32 MB for the task and 32 for the command executor; it holds 128.
    let hog = command_task(
        "hog",
        &offers[1],
        r#"python3 -c 'import time; x = b"\x01" * (128 << 20); time.sleep(60)'"#,
    );
    s.accept(vec![offers[0].id.clone()], vec![launch(vec![calm])], None)
        .await;
    s.accept(vec![offers[1].id.clone()], vec![launch(vec![hog])], None)
        .await;
    until_state(&mut s, "calm", TaskState::TaskRunning).await;

    // Its updates acknowledged in order until the terminal one.
    let failed = loop {
        let u = s.update("hog").await;
        s.ack(&u).await;
        if mesos_proto::util::is_terminal(u.state()) {
            break u;
        }
    };
    assert_eq!(
        failed.state(),
        TaskState::TaskFailed,
        "{}",
        failed.message()
    );
    assert_eq!(failed.reason(), Reason::ContainerLimitationMemory);
    assert_eq!(failed.source(), v1::task_status::Source::Agent);
    assert!(
        failed
            .message()
            .starts_with("Memory limit exceeded: Requested: 64MB Maximum Used: ")
            && !failed.message().contains("MEMORY STATISTICS"),
        "{}",
        failed.message()
    );

    let agent = cluster.agent_endpoint(agent_index(&offers[0]));
    let stats: serde_json::Value = http()
        .get(format!("http://{agent}/monitor/statistics"))
        .send()
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    let calm_stats = stats
        .as_array()
        .unwrap()
        .iter()
        .find(|c| c["executor_id"] == "calm")
        .unwrap_or_else(|| panic!("no container of calm in {stats}"));
    assert_eq!(calm_stats["source"], "calm");
    let st = &calm_stats["statistics"];
    assert!(
        (st["cpus_soft_limit"].as_f64().unwrap() - 0.2).abs() < 1e-9,
        "{st}"
    );
    assert!(st.get("cpus_limit").is_none(), "no quota: {st}");
    assert_eq!(st["mem_limit_bytes"], 64u64 << 20, "{st}");
    assert!(st["mem_rss_bytes"].as_u64().unwrap() > 0, "{st}");
    assert!(st["timestamp"].as_f64().unwrap() > 1.6e9, "{st}");
    stop(cluster, dir.path()).await;
}
