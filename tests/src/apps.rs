//! Apps for tests: task commands (an HTTP server, one whose health the
//! test flips); for tests that drive the scheduler library directly,
//! building app definitions, reading an app's tasks from a [`View`], and
//! waiting (with a deadline, never a fixed sleep) for the scheduler to get
//! somewhere; for tests against a [`BatonProcess`], its health counts.

use std::sync::Arc;
use std::time::Duration;

use baton::reconcile::{SchedulerHandle, View};
use baton::state::app::{AppDefaults, AppDefinition, PathId};
use baton::state::instance::{Condition, InstanceTask};
use serde_json::{Value, json};

use crate::baton::BatonProcess;
use crate::wait;

/// How long a test waits for the scheduler to get somewhere.
pub const DEADLINE: Duration = Duration::from_secs(60);

/// An absolute app id.
pub fn path(id: &str) -> PathId {
    PathId::parse(id, &PathId::root()).expect("valid app id")
}

/// One instance of `cmd`, small (0.1 CPU, 32 MB), with no ports and a 2 s
/// kill grace period.
pub fn app(id: &str, cmd: &str) -> AppDefinition {
    app_with(id, cmd, json!({}))
}

/// Like [`app`], with the fields of `extra` (an object) replacing the
/// defaults, e.g. `{"portDefinitions": [{"port": 0}]}`.
pub fn app_with(id: &str, cmd: &str, extra: Value) -> AppDefinition {
    let mut value = json!({
        "id": id,
        "cmd": cmd,
        "cpus": 0.1,
        "mem": 32,
        "instances": 1,
        "portDefinitions": [],
        "taskKillGracePeriodSeconds": 2,
    });
    if let (Some(base), Some(extra)) = (value.as_object_mut(), extra.as_object()) {
        base.extend(extra.clone());
    }
    AppDefinition::from_value(&value, &PathId::root(), &AppDefaults::default())
        .unwrap_or_else(|e| panic!("invalid test app {value}: {e:?}"))
}

/// `python3 -m http.server` on `$HOST:$PORT0`, as the process itself (no
/// shell left around it) and with `marker` on its command line (an ignored
/// argument), so the test can find it and prove it gone.
pub fn http_server(marker: &str) -> String {
    format!(
        "exec python3 -c 'import runpy, sys; sys.argv = [\"http.server\", sys.argv[1], \"--bind\", sys.argv[2]]; runpy.run_module(\"http.server\", run_name=\"__main__\")' $PORT0 $HOST {marker}"
    )
}

/// An HTTP server on `$HOST:$PORT0` whose health the test flips: `/health`
/// answers 500 after `/sick` (or from the start when `$BROKEN` is 1) and
/// 200 again after `/well`; `/ready` answers 503 for the first
/// `$READY_AFTER` seconds; anything else 200. Every body is `$VERSION`.
/// Python, as the process itself, with `marker` as an ignored argument.
pub fn sick_well_server(marker: &str) -> String {
    let script = [
        "import http.server, os, sys, time",
        "state = {\"sick\": os.environ.get(\"BROKEN\") == \"1\"}",
        "start = time.time()",
        "class H(http.server.BaseHTTPRequestHandler):",
        "    def do_GET(self):",
        "        if self.path == \"/sick\": state[\"sick\"] = True",
        "        if self.path == \"/well\": state[\"sick\"] = False",
        "        code = 500 if self.path == \"/health\" and state[\"sick\"] else 200",
        "        late = time.time() - start < float(os.environ.get(\"READY_AFTER\", \"0\"))",
        "        code = 503 if self.path == \"/ready\" and late else code",
        "        body = os.environ.get(\"VERSION\", \"\").encode()",
        "        self.send_response(code)",
        "        self.send_header(\"Content-Length\", str(len(body)))",
        "        self.end_headers()",
        "        self.wfile.write(body)",
        "    def log_message(self, *args): pass",
        "http.server.ThreadingHTTPServer((sys.argv[2], int(sys.argv[1])), H).serve_forever()",
    ]
    .join("\n");
    format!("exec python3 -c '{script}' $PORT0 $HOST {marker}")
}

/// An app's task counts, as `GET /v2/apps/{id}` shows them.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct HealthCounts {
    /// `tasksRunning`.
    pub running: u64,
    /// `tasksHealthy`.
    pub healthy: u64,
    /// `tasksUnhealthy`.
    pub unhealthy: u64,
}

/// The counts `baton` shows for the app `id` (all 0 when it has none).
pub async fn health_counts(baton: &BatonProcess, id: &str) -> HealthCounts {
    let (_, body) = baton.get(&format!("/v2/apps{id}")).await;
    let n = |field: &str| body["app"][field].as_u64().unwrap_or(0);
    HealthCounts {
        running: n("tasksRunning"),
        healthy: n("tasksHealthy"),
        unhealthy: n("tasksUnhealthy"),
    }
}

/// Waits up to `deadline` until the app `id` shows exactly `want`.
pub async fn wait_health_counts(
    baton: &BatonProcess,
    id: &str,
    want: HealthCounts,
    deadline: Duration,
) {
    let what = format!(
        "{id}: {} running, {} healthy, {} unhealthy",
        want.running, want.healthy, want.unhealthy
    );
    wait_counts(baton, id, &what, deadline, |c| c == want).await;
}

/// Waits up to `deadline` until the app `id` shows `n` healthy tasks
/// (whatever its other counts).
pub async fn wait_healthy(baton: &BatonProcess, id: &str, n: u64, deadline: Duration) {
    let what = format!("{n} healthy tasks of {id}");
    wait_counts(baton, id, &what, deadline, |c| c.healthy == n).await;
}

async fn wait_counts(
    baton: &BatonProcess,
    id: &str,
    what: &str,
    deadline: Duration,
    done: impl Fn(HealthCounts) -> bool,
) {
    wait::until(deadline, what, || async {
        done(health_counts(baton, id).await).then_some(())
    })
    .await;
}

/// The current (or last) tasks of the instances of `app`.
pub fn tasks_of(view: &View, app: &PathId) -> Vec<InstanceTask> {
    view.instances_of(app)
        .filter_map(|i| i.task.clone())
        .collect()
}

/// The condition of the task `task_id`, while it is its instance's current
/// (or last) task.
pub fn condition_of(view: &View, task_id: &str) -> Option<Condition> {
    view.instance_by_task(task_id)
        .and_then(|i| i.task.as_ref())
        .map(|t| t.condition)
}

/// The task `task_id`, while it is its instance's current (or last) task.
pub fn task(view: &View, task_id: &str) -> Option<InstanceTask> {
    view.instance_by_task(task_id).and_then(|i| i.task.clone())
}

/// The id the task after `task_id` of the same instance gets
/// (`…._app.<n>` becomes `…._app.<n+1>`).
pub fn next_incarnation(task_id: &str) -> String {
    let (instance, n) = task_id
        .rsplit_once('.')
        .unwrap_or_else(|| panic!("{task_id} has no incarnation"));
    let n: u64 = n
        .parse()
        .unwrap_or_else(|_| panic!("{task_id} has no incarnation"));
    format!("{instance}.{}", n + 1)
}

/// Waits up to [`DEADLINE`] for `predicate`; panics naming `what` and
/// showing the scheduler's apps, instances and counters otherwise.
pub async fn wait_view(
    scheduler: &SchedulerHandle,
    what: &str,
    predicate: impl Fn(&View) -> bool,
) -> Arc<View> {
    match scheduler.wait_for(DEADLINE, predicate).await {
        Some(view) => view,
        None => {
            let view = scheduler.view();
            panic!(
                "timed out after {DEADLINE:?} waiting for {what}; subscribed: {}, \
                 instances: {:#?}, delays: {:#?}, deployments: {:#?}, stats: {:#?}",
                view.subscribed, view.instances, view.delays, view.deployments, view.stats
            )
        }
    }
}

/// Waits until `app` has exactly `n` instances, each with a TASK_RUNNING
/// task, and returns those tasks.
pub async fn wait_running(scheduler: &SchedulerHandle, app: &str, n: usize) -> Vec<InstanceTask> {
    let id = path(app);
    let view = wait_view(scheduler, &format!("{n} running tasks of {app}"), |v| {
        let tasks = tasks_of(v, &id);
        v.instances_of(&id).count() == n
            && tasks.len() == n
            && tasks.iter().all(|t| t.condition == Condition::Running)
    })
    .await;
    tasks_of(&view, &id)
}

/// Stores `app` and waits until its one instance runs; returns its task.
pub async fn run(scheduler: &SchedulerHandle, app: AppDefinition) -> InstanceTask {
    let id = app.id.to_string();
    let instances = app.instances as usize;
    scheduler.put_app(app).await.expect("put the app");
    let mut tasks = wait_running(scheduler, &id, instances).await;
    tasks.remove(0)
}

/// Deletes every app (forced) and waits until no instance is left: every
/// task was killed and reported terminal.
pub async fn delete_all(scheduler: &SchedulerHandle) {
    for id in scheduler.view().apps.keys() {
        scheduler
            .delete_app(id.clone(), true)
            .await
            .unwrap_or_else(|e| panic!("delete {id}: {e}"));
    }
    wait_view(scheduler, "every app's instances to be gone", |v| {
        v.apps.is_empty() && v.instances.is_empty()
    })
    .await;
}
