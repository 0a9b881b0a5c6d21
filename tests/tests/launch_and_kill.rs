//! Acceptance: across real processes and real HTTP, Baton subscribes to a
//! `mesos-local` process, accepts an offer, the agent starts
//! `baton-executor`, a real `python3 -m http.server $PORT0` reaches
//! TASK_RUNNING (acknowledged) and answers HTTP on the agent's address; a
//! KILL with a grace period ends a task that traps SIGTERM cleanly, and
//! SIGKILLs one that ignores it after the grace. Over protobuf and JSON.

use std::collections::BTreeMap;
use std::time::{Duration, Instant};

use baton::state::TaskSpec;
use baton_e2e::cluster::{MesosLocalProcess, fast_session, settings};
use baton_e2e::{procs, wait};
use mesos_proto::Encoding;

const DEADLINE: Duration = Duration::from_secs(60);

fn spec(name: &str, cmd: &str, ports: u32, grace: Option<f64>) -> TaskSpec {
    TaskSpec {
        name: name.into(),
        cmd: cmd.into(),
        cpus: 0.1,
        mem: 64.0,
        disk: 0.0,
        ports,
        env: BTreeMap::new(),
        kill_grace_seconds: grace,
    }
}

async fn task_state(scheduler: &baton::reconcile::SchedulerHandle, task_id: &str, state: &str) {
    let what = format!("{task_id} to reach {state}");
    let found = scheduler
        .wait_for(DEADLINE, |view| {
            view.tasks
                .get(task_id)
                .is_some_and(|t| t.state.as_deref() == Some(state))
        })
        .await;
    assert!(
        found.is_some(),
        "timed out waiting for {what}; tasks: {:#?}",
        scheduler.view().tasks
    );
}

async fn scenario(encoding: Encoding) {
    baton_e2e::init_tracing();
    let dir = tempfile::tempdir().unwrap();
    let mesos = MesosLocalProcess::start(&dir.path().join("mesos"), encoding).await;
    let running = baton::config::run(
        settings(&mesos.url, &dir.path().join("baton"), encoding),
        fast_session,
    )
    .await
    .unwrap();
    let scheduler = running.scheduler.clone();
    let marker = procs::marker(&format!("kill-{encoding}"));

    // 1. A real HTTP server on the agent's address.
    let web = scheduler
        .launch(spec(
            "web",
            &format!("exec python3 -m http.server $PORT0 --bind $HOST # {marker}"),
            1,
            None,
        ))
        .await
        .unwrap();
    task_state(&scheduler, &web, "TASK_RUNNING").await;
    let task = scheduler.view().tasks[&web].clone();
    let host = task.hostname.clone().unwrap();
    assert!(host.starts_with("127.0.0."), "agent hostname {host}");
    let url = format!("http://{host}:{}/", task.host_ports[0]);
    let body = wait::until(DEADLINE, "the task's HTTP server to answer", || {
        let url = url.clone();
        async move {
            reqwest::get(&url)
                .await
                .ok()
                .filter(|r| r.status().is_success())
        }
    })
    .await;
    assert!(body.text().await.unwrap().contains("Directory listing"));
    // RUNNING reached us only because STARTING was acknowledged (one update
    // in flight per task); the master shows RUNNING as the latest state.
    let view = scheduler.view();
    assert!(view.stats.acks_sent >= 2, "{:?}", view.stats);
    let state = mesos.state().await;
    let master_task = state["frameworks"][0]["tasks"]
        .as_array()
        .unwrap()
        .iter()
        .find(|t| t["id"] == web.as_str())
        .cloned()
        .expect("task in /master/state");
    assert_eq!(master_task["state"], "TASK_RUNNING");
    assert_eq!(master_task["name"], "web");

    // 2. A task that traps SIGTERM exits well within its grace.
    let polite = scheduler
        .launch(spec(
            "polite",
            &format!("trap 'exit 0' TERM; while :; do sleep 0.1; done # {marker}"),
            0,
            Some(10.0),
        ))
        .await
        .unwrap();
    // 3. A task that ignores SIGTERM is SIGKILLed after its grace.
    let stubborn = scheduler
        .launch(spec(
            "stubborn",
            &format!("trap '' TERM; while :; do sleep 0.1; done # {marker}-stubborn"),
            0,
            Some(2.0),
        ))
        .await
        .unwrap();
    task_state(&scheduler, &polite, "TASK_RUNNING").await;
    task_state(&scheduler, &stubborn, "TASK_RUNNING").await;

    let started = Instant::now();
    scheduler.kill(&polite, None).await.unwrap();
    task_state(&scheduler, &polite, "TASK_KILLED").await;
    let polite_took = started.elapsed();
    assert!(
        polite_took < Duration::from_secs(8),
        "a task that honours SIGTERM took {polite_took:?}"
    );

    let started = Instant::now();
    scheduler.kill(&stubborn, None).await.unwrap();
    task_state(&scheduler, &stubborn, "TASK_KILLED").await;
    let stubborn_took = started.elapsed();
    assert!(
        stubborn_took >= Duration::from_millis(1900),
        "SIGKILL came before the 2 s grace: {stubborn_took:?}"
    );
    assert!(
        procs::with_marker(&format!("{marker}-stubborn")).is_empty(),
        "the stubborn task survived its kill"
    );

    scheduler
        .kill(&web, Some(Duration::from_secs(1)))
        .await
        .unwrap();
    task_state(&scheduler, &web, "TASK_KILLED").await;

    running.stop().await;
    mesos.stop().await;
    procs::assert_all_gone(&marker).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn launch_http_server_and_kill_with_grace_over_protobuf() {
    scenario(Encoding::Protobuf).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn launch_http_server_and_kill_with_grace_over_json() {
    scenario(Encoding::Json).await;
}
