//! Apps for tests that drive the scheduler library directly: building app
//! definitions, reading an app's tasks from a [`View`], and waiting (with a
//! deadline, never a fixed sleep) for the scheduler to get somewhere.

use std::sync::Arc;
use std::time::Duration;

use baton::reconcile::{SchedulerHandle, View};
use baton::state::app::{AppDefaults, AppDefinition, PathId};
use baton::state::instance::{Condition, InstanceTask};
use serde_json::{Value, json};

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
