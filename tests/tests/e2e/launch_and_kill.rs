//! Acceptance: across real processes and real HTTP, Baton subscribes to a
//! `mesos-local` process, accepts an offer, the agent fetches
//! `baton-executor` from Baton and starts it, a real `python3 -m
//! http.server $PORT0` (an app's one instance) reaches TASK_RUNNING
//! (acknowledged) and answers HTTP on the agent's address; a KILL with a
//! grace period ends a task that traps SIGTERM cleanly, and SIGKILLs one
//! that ignores it after the grace; a killed instance that is still wanted
//! is relaunched. Over protobuf and JSON.

use std::time::{Duration, Instant};

use baton::reconcile::{KillOptions, SchedulerHandle};
use baton::state::instance::Condition;
use baton_e2e::apps::{
    self, DEADLINE, app_with, condition_of, next_incarnation, path, wait_running, wait_view,
};
use baton_e2e::cluster::{MesosLocalProcess, fast_session, settings};
use baton_e2e::{procs, wait};
use mesos_proto::Encoding;
use serde_json::{Value, json};

/// The task `task_id` as `/master/state` shows it, active or completed.
async fn master_task(mesos: &MesosLocalProcess, task_id: &str) -> Option<Value> {
    let state = mesos.state().await;
    state["frameworks"]
        .as_array()?
        .iter()
        .flat_map(|f| {
            let tasks = f["tasks"].as_array().into_iter().flatten();
            tasks.chain(f["completed_tasks"].as_array().into_iter().flatten())
        })
        .find(|t| t["id"] == task_id)
        .cloned()
}

/// Kills the one task of `app` and scales the app down to nothing, so it
/// is not relaunched; waits until the instance is gone, which it is once
/// its task was reported terminal. Returns how long the kill took, after
/// checking that the master saw the task KILLED.
async fn kill_and_scale_down(
    scheduler: &SchedulerHandle,
    mesos: &MesosLocalProcess,
    app: &str,
    task_id: &str,
) -> Duration {
    let id = path(app);
    let started = Instant::now();
    let outcome = scheduler
        .kill_tasks(
            vec![task_id.to_string()],
            KillOptions {
                scale: true,
                ..KillOptions::default()
            },
        )
        .await
        .unwrap();
    assert_eq!(outcome.killed.len(), 1, "{outcome:?}");
    wait_view(scheduler, &format!("{task_id} to end"), |v| {
        v.instances_of(&id).next().is_none()
    })
    .await;
    let took = started.elapsed();
    assert_eq!(scheduler.view().apps[&id].instances, 0);
    let task = master_task(mesos, task_id).await;
    assert_eq!(
        task.as_ref().map(|t| t["state"].clone()),
        Some(json!("TASK_KILLED")),
        "{task:?}"
    );
    took
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
    let scheduler = running.scheduler().expect("leading alone");
    let marker = procs::marker(&format!("kill-{encoding}"));

    // 1. A real HTTP server on the agent's address.
    let web_app = app_with(
        "/web",
        &apps::http_server(&marker),
        json!({"mem": 64, "portDefinitions": [{"port": 0}], "taskKillGracePeriodSeconds": 1}),
    );
    scheduler.put_app(web_app).await.unwrap();
    let task = wait_running(&scheduler, "/web", 1).await.remove(0);
    let web = task.task_id.clone();
    let host = task.hostname.clone();
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
    let master = master_task(&mesos, &web)
        .await
        .expect("task in /master/state");
    assert_eq!(master["state"], "TASK_RUNNING");
    assert_eq!(master["name"], "web");
    // The task runs under baton-executor, a custom executor of its own.
    assert_eq!(
        master["executor_id"],
        format!("baton-executor.{web}").as_str(),
        "{master:#}"
    );

    // 2. A task that traps SIGTERM exits well within its grace.
    let polite_app = app_with(
        "/polite",
        &format!("trap 'exit 0' TERM; while :; do sleep 0.1; done # {marker}"),
        json!({"mem": 64, "taskKillGracePeriodSeconds": 10}),
    );
    // 3. A task that ignores SIGTERM is SIGKILLed after its grace.
    let stubborn_app = app_with(
        "/stubborn",
        &format!("trap '' TERM; while :; do sleep 0.1; done # {marker}-stubborn"),
        json!({"mem": 64, "taskKillGracePeriodSeconds": 2}),
    );
    scheduler.put_app(polite_app).await.unwrap();
    scheduler.put_app(stubborn_app).await.unwrap();
    let polite = wait_running(&scheduler, "/polite", 1)
        .await
        .remove(0)
        .task_id;
    let stubborn = wait_running(&scheduler, "/stubborn", 1)
        .await
        .remove(0)
        .task_id;

    let polite_took = kill_and_scale_down(&scheduler, &mesos, "/polite", &polite).await;
    assert!(
        polite_took < Duration::from_secs(8),
        "a task that honours SIGTERM took {polite_took:?}"
    );

    let stubborn_took = kill_and_scale_down(&scheduler, &mesos, "/stubborn", &stubborn).await;
    assert!(
        stubborn_took >= Duration::from_millis(1900),
        "SIGKILL came before the 2 s grace: {stubborn_took:?}"
    );
    assert!(
        procs::with_marker(&format!("{marker}-stubborn")).is_empty(),
        "the stubborn task survived its kill"
    );

    // 4. A plain kill ends the server (1 s grace), and its instance, still
    // wanted running, is relaunched as its second incarnation.
    scheduler
        .kill_tasks(vec![web.clone()], KillOptions::default())
        .await
        .unwrap();
    let relaunched = next_incarnation(&web);
    wait_view(&scheduler, "the web instance to run again", |v| {
        condition_of(v, &relaunched) == Some(Condition::Running)
    })
    .await;
    let killed = master_task(&mesos, &web).await;
    assert_eq!(
        killed.as_ref().map(|t| t["state"].clone()),
        Some(json!("TASK_KILLED")),
        "{killed:?}"
    );

    // Deleting the apps kills what is left.
    apps::delete_all(&scheduler).await;
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
