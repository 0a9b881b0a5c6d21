//! The agent's `GET /state` (also `/slave(1)/state`): the part of a Mesos
//! agent's document that tools read to find a task's sandbox — frameworks
//! (and completed ones), their executors (and completed ones) with `id`,
//! `name`, `source`, `container`, `directory` and their tasks — plus the
//! agent's `id`, `pid`, `hostname` and `flags.work_dir`, and its
//! resources with their reservations and persistent volumes
//! (`reserved_resources`, `reserved_resources_full`, ...). The master's
//! `/master/state` has no `directory`; the Mesos CLIs read it here, as do
//! `baton task logs`.

use serde_json::{Value, json};

use super::AgentState;
use super::sandboxes::Run;
use crate::master::MESOS_VERSION;

fn task_json(st: &AgentState, framework_id: &str, t: &super::AgentTask) -> Value {
    json!({
        "id": t.info.task_id.value,
        "name": t.info.name,
        "framework_id": framework_id,
        "executor_id": if t.command { String::new() } else { t.executor_id.clone() },
        "slave_id": st.agent_id,
        "state": t.state.as_str_name(),
    })
}

/// A run's executor: its live tasks from the agent's state while it runs;
/// only task ids once it has ended (the agent forgets ended tasks).
fn executor_json(st: &AgentState, run: &Run) -> Value {
    let live = st.frameworks.get(&run.framework_id);
    let (mut tasks, mut completed) = (Vec::new(), Vec::new());
    for id in &run.tasks {
        let known = live.and_then(|f| f.tasks.get(id));
        let shown = known.map_or_else(
            || {
                json!({
                    "id": id,
                    "framework_id": run.framework_id,
                    "executor_id": run.executor_id,
                    "slave_id": st.agent_id,
                })
            },
            |t| task_json(st, &run.framework_id, t),
        );
        let ended = run.completed || known.is_none_or(|t| mesos_proto::util::is_terminal(t.state));
        if ended {
            completed.push(shown);
        } else {
            tasks.push(shown);
        }
    }
    json!({
        "id": run.executor_id,
        "name": run.executor_name,
        "source": run.source,
        "container": run.container_id,
        "directory": run.directory.display().to_string(),
        "type": "CUSTOM",
        "tasks": tasks,
        "queued_tasks": [],
        "completed_tasks": completed,
    })
}

fn framework_json(st: &AgentState, id: &str, runs: &[&Run]) -> Value {
    let live = st.frameworks.get(id);
    let name = live.map_or_else(
        || {
            runs.first()
                .map(|r| r.framework_name.clone())
                .unwrap_or_default()
        },
        |f| f.info.name.clone(),
    );
    let (done, running): (Vec<&&Run>, Vec<&&Run>) = runs.iter().partition(|r| r.completed);
    json!({
        "id": id,
        "name": name,
        "user": live.map(|f| f.info.user.clone()).unwrap_or_default(),
        "checkpoint": live.and_then(|f| f.info.checkpoint).unwrap_or(false),
        "executors": running.iter().map(|r| executor_json(st, r)).collect::<Vec<_>>(),
        "completed_executors": done.iter().map(|r| executor_json(st, r)).collect::<Vec<_>>(),
    })
}

/// The whole document.
pub fn render(st: &AgentState) -> Value {
    let mut ids: Vec<&str> = st.frameworks.keys().map(String::as_str).collect();
    for run in st.sandboxes.runs() {
        if !ids.contains(&run.framework_id.as_str()) {
            ids.push(&run.framework_id);
        }
    }
    let (mut frameworks, mut completed) = (Vec::new(), Vec::new());
    for id in ids {
        let runs: Vec<&Run> = st
            .sandboxes
            .runs()
            .iter()
            .filter(|r| r.framework_id == id)
            .collect();
        let shown = framework_json(st, id, &runs);
        if st.frameworks.contains_key(id) {
            frameworks.push(shown);
        } else {
            completed.push(shown);
        }
    }
    let base =
        crate::resources::Resources::from_protos(&st.agent_info.resources).unwrap_or_default();
    let total = crate::resources::Resources::with_checkpointed(&base, &st.checkpointed);
    let mut doc = json!({
        "version": MESOS_VERSION,
        "resources": total.to_state_json(),
        "id": st.agent_id,
        "pid": format!("slave(1)@{}", st.endpoint),
        "hostname": st.agent_info.hostname,
        "flags": {
            "work_dir": st.config.work_dir.display().to_string(),
            "port": st.endpoint.port().to_string(),
            "isolation": st.isolator.active().to_string(),
            "cgroups_enable_cfs": st.config.isolation.enable_cfs.to_string(),
        },
        "frameworks": frameworks,
        "completed_frameworks": completed,
    });
    if let Value::Object(m) = &mut doc {
        m.extend(crate::state_json::reservation_fields(&total, true));
    }
    doc
}
