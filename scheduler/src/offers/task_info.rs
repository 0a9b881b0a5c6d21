//! Building the `TaskInfo` Mesos launches for a placed task.

use std::time::Duration;

use mesos_proto::util::{agent_id, duration_info, task_id};
use mesos_proto::v1::{
    self, CommandInfo, Environment, KillPolicy, TaskInfo, environment::Variable,
};

use super::Allocation;
use crate::state::TaskSpec;

/// A command task (no ExecutorInfo): Mesos's command executor runs it, which
/// in local mode is `baton-executor`. The environment carries what
/// Marathon's tasks get for their ports and host.
pub fn build_task_info(
    id: &str,
    spec: &TaskSpec,
    offer: &v1::Offer,
    allocation: &Allocation,
) -> TaskInfo {
    let mut env: Vec<(String, String)> = vec![
        ("MESOS_TASK_ID".into(), id.to_string()),
        ("HOST".into(), offer.hostname.clone()),
        (
            "PORTS".into(),
            allocation
                .ports
                .iter()
                .map(u64::to_string)
                .collect::<Vec<_>>()
                .join(","),
        ),
    ];
    for (i, port) in allocation.ports.iter().enumerate() {
        env.push((format!("PORT{i}"), port.to_string()));
        if i == 0 {
            env.push(("PORT".into(), port.to_string()));
        }
    }
    env.extend(spec.env.iter().map(|(k, v)| (k.clone(), v.clone())));
    TaskInfo {
        name: spec.name.clone(),
        task_id: task_id(id),
        agent_id: agent_id(offer.agent_id.value.clone()),
        resources: allocation.resources.clone(),
        command: Some(CommandInfo {
            value: Some(spec.cmd.clone()),
            shell: Some(true),
            environment: Some(Environment {
                variables: env
                    .into_iter()
                    .map(|(name, value)| Variable {
                        name,
                        value: Some(value),
                        r#type: Some(v1::environment::variable::Type::Value as i32),
                    })
                    .collect(),
            }),
            ..Default::default()
        }),
        kill_policy: spec
            .kill_grace_seconds
            .filter(|s| s.is_finite() && *s >= 0.0)
            .map(|s| KillPolicy {
                grace_period: Some(duration_info(Duration::from_secs_f64(s))),
            }),
        ..Default::default()
    }
}
