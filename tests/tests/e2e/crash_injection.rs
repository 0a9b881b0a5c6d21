//! `kill -9` between every pair of consecutive store writes of a delete, a
//! scale-down and a rolling restart, on purpose rather than by luck of
//! timing: Baton runs with the hidden `--crash_after_store_writes N` and
//! kills itself right after the N-th durable write of the change (counted
//! from the write that stores its deployment), for N = 1, 2, … until the
//! change completes without reaching N. After each crash a Baton started
//! on the same data must finish every stored deployment (none is left
//! without an owner, none keeps its app locked), reach the change's end
//! state, and agree with the master on the set of tasks.
//!
//! Mesos is a standalone `mesos-local`, which outlives each Baton (as a
//! real master does); its tasks are `sleep`s.

use std::collections::BTreeSet;
use std::path::Path;
use std::time::Duration;

use baton_e2e::baton::{BatonProcess, Master};
use baton_e2e::cluster::MesosLocalProcess;
use baton_e2e::{procs, wait};
use mesos_proto::Encoding;
use reqwest::Method;
use serde_json::{Value, json};

const DEADLINE: Duration = Duration::from_secs(60);
/// How long a new Baton may take to finish what a crashed one left: well
/// under the 30 s after which a kill is asked again anyway, so that a kill
/// lost with the crash must be resent at once.
const RECOVERY_DEADLINE: Duration = Duration::from_secs(20);
/// No change here takes more writes; a bound on the loop.
const MAX_WRITES: u64 = 40;
/// What `--crash_after_store_writes` logs as it kills the process.
const CRASH_LOG_LINE: &str = "crash injection: killing this process";

/// A change under test: how its app starts, the request, and what the app
/// looks like once it is done.
#[derive(Clone, Copy)]
enum Change {
    Delete,
    ScaleDown,
    RollingRestart,
}

impl Change {
    fn name(self) -> &'static str {
        match self {
            Change::Delete => "delete",
            Change::ScaleDown => "scale",
            Change::RollingRestart => "restart",
        }
    }

    /// Two instances deleted, three scaled down to one, one rolled over (a
    /// rolling restart of one instance makes every kind of write a rolling
    /// restart makes; more would only repeat them).
    fn instances(self) -> u64 {
        match self {
            Change::ScaleDown => 3,
            Change::Delete => 2,
            Change::RollingRestart => 1,
        }
    }

    /// The app the `n`-th crash works on, as the change expects it: a new
    /// one per delete; for the others the same app again (the previous
    /// round left it converged), scaled back up after a scale-down.
    async fn prepare(self, baton: &BatonProcess, n: u64, marker: &str) -> String {
        let app = match self {
            Change::Delete => format!("/crash/delete-{n}"),
            _ => format!("/crash/{}-app", self.name()),
        };
        if n == 1 || matches!(self, Change::Delete) {
            create(baton, &app, self.instances(), marker).await;
        } else if matches!(self, Change::ScaleDown) {
            let (status, body) = baton
                .request(
                    Method::PUT,
                    &format!("/v2/apps{app}"),
                    Some(&json!({"instances": self.instances()})),
                )
                .await;
            assert_eq!(status, 200, "scaling {app} back up: {body}");
            baton
                .wait_running(&app, self.instances() as usize, DEADLINE)
                .await;
            baton.wait_no_deployments(DEADLINE).await;
        }
        app
    }

    async fn request(self, baton: &BatonProcess, app: &str) {
        let (method, path, body) = match self {
            Change::Delete => (Method::DELETE, format!("/v2/apps{app}"), None),
            Change::ScaleDown => (
                Method::PUT,
                format!("/v2/apps{app}"),
                Some(json!({"instances": 1}).to_string().into_bytes()),
            ),
            Change::RollingRestart => (Method::POST, format!("/v2/apps{app}/restart"), None),
        };
        // The answer may never come: the process may die on the first write.
        let _ = baton.try_request(method, &path, body).await;
    }

    /// Whether `app` is as the change leaves it (running tasks of the
    /// current version, as many as wanted; or gone).
    async fn done(self, baton: &BatonProcess, app: &str) -> bool {
        let Ok(reply) = baton
            .try_get(&format!("/v2/apps{app}?embed=app.tasks"))
            .await
        else {
            return false;
        };
        let wanted = match self {
            Change::Delete => return reply.status == 404,
            Change::ScaleDown => 1,
            Change::RollingRestart => 1,
        };
        let Some(body) = reply.json.filter(|_| reply.status == 200) else {
            return false;
        };
        let app = &body["app"];
        let version = app["versionInfo"]["lastConfigChangeAt"]
            .as_str()
            .unwrap_or("");
        let tasks = app["tasks"].as_array().cloned().unwrap_or_default();
        app["instances"] == wanted
            && tasks.len() == wanted as usize
            && tasks.iter().all(|t| t["state"] == "TASK_RUNNING")
            && (!matches!(self, Change::RollingRestart)
                || tasks.iter().all(|t| t["version"] == version))
    }
}

/// Task ids not yet ended, as Baton lists them.
async fn baton_tasks(baton: &BatonProcess) -> BTreeSet<String> {
    let (_, body) = baton.get("/v2/tasks").await;
    body["tasks"]
        .as_array()
        .into_iter()
        .flatten()
        .filter(|t| !is_terminal(&t["state"]))
        .filter_map(|t| t["id"].as_str().map(str::to_string))
        .collect()
}

fn is_terminal(state: &Value) -> bool {
    !matches!(
        state.as_str(),
        Some("TASK_STAGING" | "TASK_STARTING" | "TASK_RUNNING" | "TASK_KILLING")
    )
}

/// Creates `app` and waits until it runs and its deployment is over.
async fn create(baton: &BatonProcess, app: &str, instances: u64, marker: &str) {
    let definition = json!({
        "id": app, "cmd": format!("sleep 100000 # {marker}"), "cpus": 0.01, "mem": 8,
        "instances": instances,
        // Drained briefly, so that the drain's own write is among the ones
        // crashed after.
        "labels": {"BATON_DRAIN_SECONDS": "0.2"},
    });
    let (status, body) = baton
        .request(Method::POST, "/v2/apps", Some(&definition))
        .await;
    assert_eq!(status, 201, "{body}");
    baton.wait_running(app, instances as usize, DEADLINE).await;
    baton.wait_no_deployments(DEADLINE).await;
}

/// Every stored deployment ends, the app reaches the change's end state,
/// and Baton and the master agree on the tasks.
async fn assert_recovered(
    baton: &BatonProcess,
    mesos: &MesosLocalProcess,
    change: Change,
    app: &str,
    n: u64,
) {
    let what = format!("{} crashed after write {n}", change.name());
    wait::until(
        RECOVERY_DEADLINE,
        &format!("{what}: every deployment to end"),
        || async {
            baton
                .deployment_ids()
                .await
                .is_some_and(|d| d.is_empty())
                .then_some(())
        },
    )
    .await;
    wait::until(
        RECOVERY_DEADLINE,
        &format!("{what}: {app} in its end state"),
        || async { change.done(baton, app).await.then_some(()) },
    )
    .await;
    wait::until(
        RECOVERY_DEADLINE,
        &format!("{what}: Baton and the master to agree on tasks"),
        || async { (baton_tasks(baton).await == mesos.live_task_ids().await).then_some(()) },
    )
    .await;
    // (No deployment left: the app is not locked either.)
}

/// Runs `change` with a crash after each write in turn; returns how many
/// writes the change took (the last N that crashed).
async fn crash_after_every_write(change: Change, dir: &Path) -> u64 {
    let mesos = MesosLocalProcess::start(&dir.join("mesos"), Encoding::Protobuf).await;
    let data = dir.join("baton");
    let marker = format!("crash-{}-{}", change.name(), std::process::id());
    let mut baton = BatonProcess::start(Master::Url(mesos.url.clone()), &data, &[]).await;
    let mut crashed_at = 0;
    for n in 1..=MAX_WRITES {
        let crashes_logged = baton.log_lines_with(CRASH_LOG_LINE);
        let app = change.prepare(&baton, n, &marker).await;
        let mut armed = baton
            .restart_with(&["--crash_after_store_writes", &n.to_string()])
            .await;
        change.request(&armed, &app).await;
        // It dies right after write n, or the change completes first.
        let deadline = tokio::time::Instant::now() + DEADLINE;
        let crashed = loop {
            if !armed.alive() {
                break true;
            }
            if armed.deployment_ids().await.is_some_and(|d| d.is_empty())
                && change.done(&armed, &app).await
            {
                break false;
            }
            assert!(
                tokio::time::Instant::now() < deadline,
                "neither a crash after write {n} nor the end of the {}\n{}",
                change.name(),
                armed.log_tail()
            );
            tokio::time::sleep(Duration::from_millis(20)).await;
        };
        // Its death was the injected crash, not some other way to die.
        assert_eq!(
            armed.log_lines_with(CRASH_LOG_LINE),
            crashes_logged + usize::from(crashed),
            "write {n}: crashed {crashed}\n{}",
            armed.log_tail()
        );
        baton = armed.restart_with(&[]).await;
        assert_recovered(&baton, &mesos, change, &app, n).await;
        if !crashed {
            break;
        }
        crashed_at = n;
    }
    assert!(
        crashed_at < MAX_WRITES,
        "the change never completed within {MAX_WRITES} writes"
    );
    baton.stop().await;
    mesos.stop().await;
    procs::assert_all_gone(&marker).await;
    crashed_at
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_delete_recovers_from_a_crash_after_any_of_its_writes() {
    let dir = tempfile::tempdir().expect("temp dir");
    let writes = crash_after_every_write(Change::Delete, dir.path()).await;
    eprintln!("delete: crashed after each of its {writes} writes");
    assert!(
        writes >= 3,
        "a delete of two instances writes more than {writes} times"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_scale_down_recovers_from_a_crash_after_any_of_its_writes() {
    let dir = tempfile::tempdir().expect("temp dir");
    let writes = crash_after_every_write(Change::ScaleDown, dir.path()).await;
    eprintln!("scale-down: crashed after each of its {writes} writes");
    assert!(
        writes >= 3,
        "a scale-down by two writes more than {writes} times"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_rolling_restart_recovers_from_a_crash_after_any_of_its_writes() {
    let dir = tempfile::tempdir().expect("temp dir");
    let writes = crash_after_every_write(Change::RollingRestart, dir.path()).await;
    eprintln!("rolling restart: crashed after each of its {writes} writes");
    assert!(
        writes >= 5,
        "a rolling restart of one instance writes more than {writes} times"
    );
}
