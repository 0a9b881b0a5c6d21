//! `GET /master/state`: the legacy JSON of `src/master/readonly_handler.cpp`
//! with v0 names (`slaves`, `slave_id`). Tools read it: mesos-dns takes
//! task `name`, `discovery`, `resources.ports` and
//! `statuses[].container_status.network_infos`, framework `name` and
//! `hostname`; tests assert on frameworks, agents and tasks.
//!
//! With `--acls`, an HTTP reader sees what `view_frameworks`,
//! `view_tasks` and `view_executors` let it see, as
//! `Master::ReadOnlyHandler::state` filters: frameworks (and completed
//! ones) and tasks it may not view are left out; an executor it may not
//! view is written as `{}` (Mesos's writer skips its fields but not the
//! element). Agents whose registration was refused are not listed.

use mesos_proto::v1;
use serde_json::{Map, Value, json};

use crate::master::{AgentStatus, Framework, MESOS_VERSION, MasterState, Task};
use crate::resources::Resources;
use crate::security::acl::{self, Acls};

/// Who reads: what `--acls` let them see.
#[derive(Clone, Copy)]
struct Viewer<'a> {
    /// `None`: no authorizer, everything is visible.
    acls: Option<&'a Acls>,
    /// The authenticated principal; `None` is Mesos's `ANY` subject.
    principal: Option<&'a str>,
}

impl Viewer<'_> {
    fn framework(&self, fw: &Framework) -> bool {
        self.acls
            .is_none_or(|a| acl::may_view_framework(a, self.principal, &fw.info))
    }

    fn task(&self, t: &Task, fw: &Framework) -> bool {
        self.acls
            .is_none_or(|a| acl::may_view_task(a, self.principal, &t.info, &fw.info))
    }

    fn executor(&self, e: &v1::ExecutorInfo, fw: &Framework) -> bool {
        self.acls
            .is_none_or(|a| acl::may_view_executor(a, self.principal, e, &fw.info))
    }
}

fn proto<M: prost::Message + prost::Name>(m: &M) -> Value {
    mesos_proto::json::to_value(m).unwrap_or(Value::Null)
}

/// A CommandInfo as the master's `/master/state` writes it
/// (`src/common/http.cpp`'s `json(ObjectWriter*, const CommandInfo&)`):
/// `shell` and `value` when set, `argv` and `uris` (value and executable
/// only) always, `environment` when set — `{"argv":[],"uris":[]}` for the
/// default executor, which has none.
fn command_json(c: &v1::CommandInfo) -> Value {
    let mut m = Map::new();
    if let Some(shell) = c.shell {
        m.insert("shell".into(), json!(shell));
    }
    if let Some(value) = &c.value {
        m.insert("value".into(), json!(value));
    }
    m.insert("argv".into(), json!(c.arguments));
    if let Some(env) = &c.environment {
        m.insert("environment".into(), proto(env));
    }
    m.insert(
        "uris".into(),
        Value::Array(
            c.uris
                .iter()
                .map(|u| json!({"value": u.value, "executable": u.executable.unwrap_or(false)}))
                .collect(),
        ),
    );
    Value::Object(m)
}

fn labels(l: &Option<v1::Labels>) -> Value {
    match l {
        Some(l) => Value::Array(l.labels.iter().map(proto).collect()),
        None => Value::Array(Vec::new()),
    }
}

fn state_name(s: i32) -> &'static str {
    v1::TaskState::try_from(s)
        .map(|s| s.as_str_name())
        .unwrap_or("TASK_UNKNOWN")
}

fn status_json(s: &v1::TaskStatus) -> Value {
    let mut m = Map::new();
    m.insert("state".into(), json!(state_name(s.state)));
    m.insert("timestamp".into(), json!(s.timestamp.unwrap_or(0.0)));
    if let Some(h) = s.healthy {
        m.insert("healthy".into(), json!(h));
    }
    if s.labels.is_some() {
        m.insert("labels".into(), labels(&s.labels));
    }
    if let Some(cs) = &s.container_status {
        m.insert("container_status".into(), proto(cs));
    }
    Value::Object(m)
}

fn task_json(st: &MasterState, t: &Task) -> Value {
    let mut m = Map::new();
    m.insert("id".into(), json!(t.info.task_id.value));
    m.insert("name".into(), json!(t.info.name));
    m.insert("framework_id".into(), json!(t.framework_id));
    m.insert(
        "executor_id".into(),
        json!(t.executor_id.clone().unwrap_or_default()),
    );
    let slave_id = st
        .agents
        .get(t.agent.saturating_sub(1))
        .map(|a| a.id.clone())
        .unwrap_or_default();
    m.insert("slave_id".into(), json!(slave_id));
    m.insert("state".into(), json!(t.state.as_str_name()));
    m.insert("resources".into(), t.resources.to_state_json());
    m.insert("role".into(), json!(t.role));
    m.insert(
        "statuses".into(),
        Value::Array(t.statuses.iter().map(status_json).collect()),
    );
    m.insert("labels".into(), labels(&t.info.labels));
    if let Some(d) = &t.info.discovery {
        m.insert("discovery".into(), proto(d));
    }
    if let Some(c) = &t.info.container {
        m.insert("container".into(), proto(c));
    }
    if let Some(h) = &t.info.health_check {
        m.insert("health_check".into(), proto(h));
    }
    if let Some(k) = &t.info.kill_policy {
        m.insert("kill_policy".into(), proto(k));
    }
    Value::Object(m)
}

fn capability_names(info: &v1::FrameworkInfo) -> Value {
    Value::Array(
        info.capabilities
            .iter()
            .filter_map(|c| c.r#type)
            .filter_map(|t| v1::framework_info::capability::Type::try_from(t).ok())
            .map(|t| json!(t.as_str_name()))
            .collect(),
    )
}

#[allow(deprecated)] // `role`, still how non-MULTI_ROLE frameworks name theirs
fn framework_json(st: &MasterState, fw: &Framework, viewer: Viewer<'_>) -> Value {
    let info = &fw.info;
    let mut used = Resources::default();
    for t in fw
        .tasks
        .values()
        .filter(|t| !mesos_proto::util::is_terminal(t.state))
    {
        used.add(&t.resources);
    }
    for e in fw.executors.values() {
        used.add(&e.resources);
    }
    let mut offered = Resources::default();
    let offers: Vec<Value> = st
        .offers
        .iter()
        .filter(|(_, o)| o.framework_id == fw.id)
        .map(|(id, o)| {
            offered.add(&o.resources);
            json!({
                "id": id,
                "framework_id": fw.id,
                "slave_id": o.offer.agent_id.value,
                "resources": o.resources.to_state_json(),
            })
        })
        .collect();
    let executors: Vec<Value> = fw
        .executors
        .iter()
        .map(|((agent, id), e)| {
            if !viewer.executor(&e.info, fw) {
                return json!({});
            }
            let slave_id = st
                .agents
                .get(agent.saturating_sub(1))
                .map(|a| a.id.clone())
                .unwrap_or_default();
            let mut m = json!({
                "executor_id": id,
                "name": e.info.name.clone().unwrap_or_default(),
                "framework_id": fw.id,
                "command": command_json(&e.info.command.clone().unwrap_or_default()),
                "resources": e.resources.to_state_json(),
                "labels": labels(&e.info.labels),
                "slave_id": slave_id,
            });
            // Set for a DEFAULT or CUSTOM executor (a LAUNCH_GROUP's always is).
            if let Some(t) = e.info.r#type {
                m["type"] = json!(
                    v1::executor_info::Type::try_from(t)
                        .map(|t| t.as_str_name())
                        .unwrap_or("UNKNOWN")
                );
            }
            m
        })
        .collect();
    let mut m = Map::new();
    m.insert("id".into(), json!(fw.id));
    m.insert("name".into(), json!(info.name));
    m.insert(
        "hostname".into(),
        json!(info.hostname.clone().unwrap_or_default()),
    );
    m.insert(
        "webui_url".into(),
        json!(info.webui_url.clone().unwrap_or_default()),
    );
    m.insert("user".into(), json!(info.user));
    m.insert(
        "failover_timeout".into(),
        json!(info.failover_timeout.unwrap_or(0.0)),
    );
    m.insert("checkpoint".into(), json!(info.checkpoint.unwrap_or(false)));
    m.insert("capabilities".into(), capability_names(info));
    if fw.multi_role() {
        m.insert("roles".into(), json!(info.roles));
    } else {
        m.insert(
            "role".into(),
            json!(info.role.clone().unwrap_or_else(|| "*".into())),
        );
    }
    if let Some(p) = &info.principal {
        m.insert("principal".into(), json!(p));
    }
    m.insert("active".into(), json!(fw.active));
    m.insert("connected".into(), json!(fw.conn.is_some()));
    m.insert("recovered".into(), json!(fw.recovered));
    m.insert("registered_time".into(), json!(fw.registered_time));
    if let Some(t) = fw.reregistered_time {
        m.insert("reregistered_time".into(), json!(t));
    }
    m.insert(
        "unregistered_time".into(),
        json!(fw.unregistered_time.unwrap_or(0.0)),
    );
    m.insert("labels".into(), labels(&info.labels));
    m.insert("used_resources".into(), used.to_state_json());
    m.insert("offered_resources".into(), offered.to_state_json());
    let tasks = |tasks: &mut dyn Iterator<Item = &Task>| {
        Value::Array(
            tasks
                .filter(|t| viewer.task(t, fw))
                .map(|t| task_json(st, t))
                .collect(),
        )
    };
    m.insert("tasks".into(), tasks(&mut fw.tasks.values()));
    m.insert(
        "unreachable_tasks".into(),
        tasks(&mut fw.unreachable_tasks.values()),
    );
    m.insert(
        "completed_tasks".into(),
        tasks(&mut fw.completed_tasks.iter()),
    );
    m.insert("offers".into(), Value::Array(offers));
    m.insert("executors".into(), Value::Array(executors));
    m.insert("completed_executors".into(), Value::Array(Vec::new()));
    Value::Object(m)
}

/// The whole document, everything in it (no authorizer's view).
pub fn render(st: &MasterState) -> Value {
    render_view(
        st,
        Viewer {
            acls: None,
            principal: None,
        },
    )
}

/// The document as an HTTP reader with `principal` (`None`: not
/// authenticated) may see it under the cluster's `--acls`.
pub fn render_for(st: &MasterState, principal: Option<&str>) -> Value {
    let acls = st.config().security.as_ref().and_then(|s| s.acls.as_ref());
    render_view(st, Viewer { acls, principal })
}

fn render_view(st: &MasterState, viewer: Viewer<'_>) -> Value {
    let info = st.master_info();
    let pid = info.pid.clone().unwrap_or_default();
    let mut slaves = Vec::new();
    let (mut activated, mut deactivated, mut unreachable) = (0, 0, 0);
    for a in &st.agents {
        match a.status {
            AgentStatus::Refused => continue,
            AgentStatus::Active => activated += 1,
            AgentStatus::Unreachable(_) => {
                unreachable += 1;
                continue;
            }
            _ => deactivated += 1,
        }
        slaves.push(slave_json(st, a, false));
    }
    let mut flags = Map::new();
    for (k, v) in [
        ("port", st.addr.port().to_string()),
        ("hostname", st.addr.ip().to_string()),
        (
            "allocation_interval",
            mesos_proto::util::format_duration(st.config().allocation_interval),
        ),
        ("agent_ping_timeout", "15secs".to_string()),
        ("max_agent_ping_timeouts", "5".to_string()),
        ("authenticate_frameworks", "false".to_string()),
        ("roles", String::new()),
        ("isolation", st.isolation.clone()),
    ] {
        flags.insert(k.into(), json!(v));
    }
    json!({
        "version": MESOS_VERSION,
        "git_sha": "",
        "git_tag": MESOS_VERSION,
        "build_date": "",
        "build_time": 0,
        "build_user": "mesos-local",
        "start_time": st.start_time,
        "elected_time": st.elected_time,
        "id": st.master_id,
        "pid": pid,
        "hostname": info.hostname,
        "capabilities": ["AGENT_UPDATE", "AGENT_DRAINING", "QUOTA_V2"],
        "activated_slaves": activated,
        "deactivated_slaves": deactivated,
        "unreachable_slaves": unreachable,
        "leader": pid,
        "leader_info": proto(&info),
        "flags": flags,
        "slaves": slaves,
        "recovered_slaves": [],
        "frameworks": st.frameworks.values().filter(|f| viewer.framework(f)).map(|f| framework_json(st, f, viewer)).collect::<Vec<_>>(),
        "completed_frameworks": st.completed_frameworks.iter().filter(|f| viewer.framework(f)).map(|f| framework_json(st, f, viewer)).collect::<Vec<_>>(),
        "orphan_tasks": [],
        "unregistered_frameworks": [],
    })
}

/// Reservations as the endpoints write them: `reserved_resources` (role →
/// the map form), `unreserved_resources` and, with `full`, the same as
/// `Resource` arrays (`reserved_resources_full`,
/// `unreserved_resources_full`), volumes with their `disk.persistence`.
pub(crate) fn reservation_fields(total: &Resources, full: bool) -> Map<String, Value> {
    let by_role = total.reserved_by_role();
    let mut m = Map::new();
    m.insert(
        "reserved_resources".into(),
        Value::Object(
            by_role
                .iter()
                .map(|(role, r)| (role.clone(), r.to_state_json()))
                .collect(),
        ),
    );
    m.insert(
        "unreserved_resources".into(),
        total.unreserved().to_state_json(),
    );
    if full {
        m.insert(
            "reserved_resources_full".into(),
            Value::Object(
                by_role
                    .iter()
                    .map(|(role, r)| (role.clone(), r.to_full_json()))
                    .collect(),
            ),
        );
        m.insert(
            "unreserved_resources_full".into(),
            total.unreserved().to_full_json(),
        );
    }
    m
}

/// One agent of `slaves`; `full` (as `/master/slaves` writes it) adds the
/// `*_full` arrays.
fn slave_json(st: &MasterState, a: &crate::master::AgentEntry, full: bool) -> Value {
    let mut attributes = Map::new();
    for attr in &a.attributes {
        let v = match (&attr.text, &attr.scalar) {
            (Some(t), _) => json!(t.value),
            (None, Some(s)) => json!(s.value),
            _ => Value::Null,
        };
        attributes.insert(attr.name.clone(), v);
    }
    let used = st.used_on(a.index);
    let offered = st.offered_on(a.index);
    let mut m = json!({
        "id": a.id,
        "pid": format!("slave(1)@{}", a.endpoint),
        "hostname": a.hostname,
        "port": a.endpoint.port(),
        "registered_time": a.registered_time.unwrap_or(0.0),
        "reregistered_time": a.reregistered_time,
        "resources": a.total.to_state_json(),
        "used_resources": used.to_state_json(),
        "offered_resources": offered.to_state_json(),
        "attributes": attributes,
        "active": a.status == AgentStatus::Active,
        "deactivated": false,
        "version": MESOS_VERSION,
        "capabilities": ["MULTI_ROLE", "HIERARCHICAL_ROLE", "RESERVATION_REFINEMENT"],
    });
    if let Value::Object(m) = &mut m {
        m.extend(reservation_fields(&a.total, full));
        if full {
            m.insert("used_resources_full".into(), used.to_full_json());
            m.insert("offered_resources_full".into(), offered.to_full_json());
        }
    }
    m
}

/// `GET /master/slaves`: every registered agent, with the `*_full`
/// resource arrays.
pub fn render_slaves(st: &MasterState) -> Value {
    let slaves: Vec<Value> = st
        .agents
        .iter()
        .filter(|a| !matches!(a.status, AgentStatus::Refused | AgentStatus::Unreachable(_)))
        .map(|a| slave_json(st, a, true))
        .collect();
    json!({ "slaves": slaves, "recovered_slaves": [] })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_command_is_written_as_the_master_writes_it() {
        // The default executor's (none): what a real 1.12 master shows.
        assert_eq!(
            command_json(&v1::CommandInfo::default()),
            json!({"argv": [], "uris": []})
        );
        let custom = v1::CommandInfo {
            value: Some("./baton-executor".into()),
            shell: Some(true),
            uris: vec![v1::command_info::Uri {
                value: "http://h/e".into(),
                executable: Some(true),
                extract: Some(false),
                ..Default::default()
            }],
            ..Default::default()
        };
        assert_eq!(
            command_json(&custom),
            json!({"shell": true, "value": "./baton-executor", "argv": [],
                   "uris": [{"value": "http://h/e", "executable": true}]})
        );
    }
}
