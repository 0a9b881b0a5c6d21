//! Builders for scheduler `Call`s: plain values, no I/O (kube-core style).
//! The session fills in `framework_id` before sending.

use mesos_proto::scheduler::{Call, call};
use mesos_proto::v1::{self, Filters, KillPolicy, Offer, TaskInfo};

/// SUBSCRIBE. With a known FrameworkID it is set in *both* places, as the
/// master requires them equal.
pub fn subscribe(mut info: v1::FrameworkInfo, framework_id: Option<&v1::FrameworkId>) -> Call {
    info.id = framework_id.cloned();
    Call {
        framework_id: framework_id.cloned(),
        r#type: Some(call::Type::Subscribe as i32),
        subscribe: Some(call::Subscribe {
            framework_info: info,
            suppressed_roles: Vec::new(),
        }),
        ..Default::default()
    }
}

/// ACCEPT with LAUNCH of `tasks` on `offer_ids` (all of one agent).
pub fn accept_launch(
    offer_ids: Vec<v1::OfferId>,
    tasks: Vec<TaskInfo>,
    refuse_seconds: f64,
) -> Call {
    let operations = if tasks.is_empty() {
        Vec::new()
    } else {
        vec![launch(tasks)]
    };
    accept(offer_ids, operations, refuse_seconds)
}

/// The LAUNCH operation of `tasks`.
pub fn launch(tasks: Vec<TaskInfo>) -> v1::offer::Operation {
    v1::offer::Operation {
        r#type: Some(v1::offer::operation::Type::Launch as i32),
        launch: Some(v1::offer::operation::Launch { task_infos: tasks }),
        ..Default::default()
    }
}

/// The LAUNCH_GROUP operation of `tasks` under `executor`.
pub fn launch_group(executor: v1::ExecutorInfo, tasks: Vec<TaskInfo>) -> v1::offer::Operation {
    v1::offer::Operation {
        r#type: Some(v1::offer::operation::Type::LaunchGroup as i32),
        launch_group: Some(v1::offer::operation::LaunchGroup {
            executor,
            task_group: v1::TaskGroupInfo { tasks },
        }),
        ..Default::default()
    }
}

/// ACCEPT of `offer_ids` with `operations`, applied in order (a RESERVE
/// before the LAUNCH that uses what it reserved); what they leave is
/// refused for `refuse_seconds`.
pub fn accept(
    offer_ids: Vec<v1::OfferId>,
    operations: Vec<v1::offer::Operation>,
    refuse_seconds: f64,
) -> Call {
    Call {
        r#type: Some(call::Type::Accept as i32),
        accept: Some(call::Accept {
            offer_ids,
            operations,
            filters: Some(Filters {
                refuse_seconds: Some(refuse_seconds),
            }),
        }),
        ..Default::default()
    }
}

/// ACCEPT with LAUNCH_GROUP: `tasks` run together under `executor`.
pub fn accept_launch_group(
    offer_ids: Vec<v1::OfferId>,
    executor: v1::ExecutorInfo,
    tasks: Vec<TaskInfo>,
    refuse_seconds: f64,
) -> Call {
    accept(
        offer_ids,
        vec![launch_group(executor, tasks)],
        refuse_seconds,
    )
}

/// DECLINE offers, refusing their resources for `refuse_seconds`.
pub fn decline(offer_ids: Vec<v1::OfferId>, refuse_seconds: f64) -> Call {
    Call {
        r#type: Some(call::Type::Decline as i32),
        decline: Some(call::Decline {
            offer_ids,
            filters: Some(Filters {
                refuse_seconds: Some(refuse_seconds),
            }),
        }),
        ..Default::default()
    }
}

/// REVIVE offers for `roles` (empty = every subscribed role); clears filters.
pub fn revive(roles: Vec<String>) -> Call {
    Call {
        r#type: Some(call::Type::Revive as i32),
        revive: Some(call::Revive { roles }),
        ..Default::default()
    }
}

/// SUPPRESS offers for `roles` (empty = every subscribed role).
pub fn suppress(roles: Vec<String>) -> Call {
    Call {
        r#type: Some(call::Type::Suppress as i32),
        suppress: Some(call::Suppress { roles }),
        ..Default::default()
    }
}

/// KILL a task, optionally overriding its kill policy's grace period.
pub fn kill(
    task_id: v1::TaskId,
    agent_id: Option<v1::AgentId>,
    grace: Option<std::time::Duration>,
) -> Call {
    Call {
        r#type: Some(call::Type::Kill as i32),
        kill: Some(call::Kill {
            task_id,
            agent_id,
            kill_policy: grace.map(|g| KillPolicy {
                grace_period: Some(mesos_proto::util::duration_info(g)),
            }),
        }),
        ..Default::default()
    }
}

/// ACKNOWLEDGE a status update. Only for updates that carry a uuid
/// ([`mesos_proto::util::needs_ack`]); returns `None` otherwise.
pub fn acknowledge(status: &v1::TaskStatus) -> Option<Call> {
    if !mesos_proto::util::needs_ack(status) {
        return None;
    }
    Some(Call {
        r#type: Some(call::Type::Acknowledge as i32),
        acknowledge: Some(call::Acknowledge {
            agent_id: status.agent_id.clone()?,
            task_id: status.task_id.clone(),
            uuid: status.uuid.clone()?,
        }),
        ..Default::default()
    })
}

/// RECONCILE the given tasks (explicit), or every task (implicit) when empty.
pub fn reconcile(tasks: Vec<(v1::TaskId, Option<v1::AgentId>)>) -> Call {
    Call {
        r#type: Some(call::Type::Reconcile as i32),
        reconcile: Some(call::Reconcile {
            tasks: tasks
                .into_iter()
                .map(|(task_id, agent_id)| call::reconcile::Task { task_id, agent_id })
                .collect(),
        }),
        ..Default::default()
    }
}

/// TEARDOWN: removes the framework and kills every task. Only ever sent on
/// an operator's explicit request — never on shutdown or after an error.
pub fn teardown() -> Call {
    Call {
        r#type: Some(call::Type::Teardown as i32),
        ..Default::default()
    }
}

/// The offer ids of a batch of offers.
pub fn offer_ids(offers: &[Offer]) -> Vec<v1::OfferId> {
    offers.iter().map(|o| o.id.clone()).collect()
}

/// The type of a call, for logs and metrics.
pub fn call_type(call: &Call) -> call::Type {
    call.r#type
        .and_then(|t| call::Type::try_from(t).ok())
        .unwrap_or(call::Type::Unknown)
}

#[cfg(test)]
mod tests {
    use super::*;
    use mesos_proto::util::{agent_id, framework_id, task_id};

    #[test]
    fn subscribe_sets_both_framework_ids() {
        let info = v1::FrameworkInfo {
            user: "u".into(),
            name: "baton".into(),
            ..Default::default()
        };
        let id = framework_id("fw-1");
        let c = subscribe(info.clone(), Some(&id));
        assert_eq!(c.framework_id.as_ref(), Some(&id));
        assert_eq!(c.subscribe.unwrap().framework_info.id, Some(id));
        let first = subscribe(info, None);
        assert!(first.framework_id.is_none());
        assert!(first.subscribe.unwrap().framework_info.id.is_none());
    }

    #[test]
    fn acknowledge_only_updates_with_a_uuid() {
        let mut status = mesos_proto::util::status(
            task_id("t"),
            v1::TaskState::TaskRunning,
            v1::task_status::Source::Master,
        );
        status.agent_id = Some(agent_id("a"));
        assert!(
            acknowledge(&status).is_none(),
            "reconciliation answers carry no uuid"
        );
        status.uuid = Some(vec![]);
        assert!(acknowledge(&status).is_none());
        status.uuid = Some(vec![7; 16]);
        let ack = acknowledge(&status).unwrap().acknowledge.unwrap();
        assert_eq!(ack.uuid, vec![7; 16]);
        assert_eq!(ack.task_id, task_id("t"));
    }
}
