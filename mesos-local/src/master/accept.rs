//! ACCEPT validation, as `src/master/validation.cpp` does it: first the
//! offers, then each operation in order against what is left of them:
//! RESERVE, UNRESERVE, CREATE and DESTROY convert the offered resources
//! (see [`super::operations`]), so a later LAUNCH in the same ACCEPT can use
//! what they made; each task is authorized (`run_tasks`) before it is
//! validated, as `Master::_accept` does. Pure functions; the master applies
//! the outcome.

use std::collections::{BTreeMap, HashSet};

use mesos_proto::util;
use mesos_proto::v1::{self, TaskState, executor_info, offer::operation, task_status::Reason};

use super::operations::{self, Conversion, OperationContext};
use crate::resources::Resources;
use crate::security::acl::{self, Acls};
use crate::wire::validate_id;

/// What the master knows about one offer id named in an ACCEPT.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct OfferRef {
    /// Owner.
    pub framework_id: String,
    /// 1-based agent index.
    pub agent: usize,
    /// The role it is allocated to.
    pub role: String,
}

/// Checks the offers of an ACCEPT or DECLINE: known, this framework's,
/// one agent, one allocation role (a MULTI_ROLE framework gets an offer
/// per role), no duplicates. Returns the agent and the role.
pub fn check_offers(
    offer_ids: &[String],
    framework_id: &str,
    lookup: impl Fn(&str) -> Option<OfferRef>,
) -> Result<(usize, String), String> {
    if offer_ids.is_empty() {
        return Err("No offers specified".into());
    }
    let mut seen = HashSet::new();
    let mut agent = None;
    for id in offer_ids {
        if !seen.insert(id.as_str()) {
            return Err(format!("Duplicate offer {id} in offer list"));
        }
        let Some(offer) = lookup(id) else {
            return Err(format!("Offer {id} is no longer valid"));
        };
        if offer.framework_id != framework_id {
            return Err(format!(
                "Offer {id} has invalid framework {} while framework {framework_id} is expected",
                offer.framework_id
            ));
        }
        match &agent {
            None => agent = Some((offer.agent, offer.role)),
            Some((a, _)) if *a != offer.agent => {
                return Err("Aggregated offers must belong to one single agent".into());
            }
            Some((_, role)) if *role != offer.role => {
                return Err("Aggregated offers must be allocated to the same role".into());
            }
            Some(_) => {}
        }
    }
    agent.ok_or_else(|| "No offers specified".into())
}

/// A valid launch to carry out. Returned once and consumed at once, so
/// the size difference between variants costs nothing.
#[allow(clippy::large_enum_variant)]
#[derive(Debug, Clone, PartialEq)]
pub enum Launch {
    /// LAUNCH of one task.
    Task {
        /// The task, `executor.framework_id` filled in.
        task: v1::TaskInfo,
        /// Its own resources.
        resources: Resources,
        /// The executor to start with it, if not already running there.
        new_executor: Option<(v1::ExecutorInfo, Resources)>,
    },
    /// LAUNCH_GROUP.
    Group {
        /// The group's executor, `framework_id` filled in.
        executor: v1::ExecutorInfo,
        /// Its resources if it is new on the agent.
        new_executor: Option<Resources>,
        /// The tasks and their resources.
        tasks: Vec<(v1::TaskInfo, Resources)>,
    },
}

/// The context of one ACCEPT.
#[derive(Debug, Clone)]
pub struct AcceptInput<'a> {
    /// The framework accepting.
    pub framework_id: &'a str,
    /// The offers' agent.
    pub agent_id: &'a str,
    /// Union of the accepted offers.
    pub offered: Resources,
    /// Ids of the framework's active and unreachable tasks.
    pub active_task_ids: &'a HashSet<String>,
    /// The framework's executors already on that agent.
    pub executors: &'a BTreeMap<String, v1::ExecutorInfo>,
    /// `--acls` and the framework (principal, user, id) to authorize each
    /// task with (`run_tasks`); `None` (no `--acls`) authorizes all.
    pub run_tasks: Option<(&'a Acls, &'a v1::FrameworkInfo)>,
    /// What RESERVE, UNRESERVE, CREATE and DESTROY are checked against
    /// (its `checkpointed` as before the ACCEPT).
    pub operations: OperationContext<'a>,
}

/// What an ACCEPT comes to.
#[derive(Debug, Clone, PartialEq, Default)]
pub struct AcceptOutcome {
    /// Valid launches, in order.
    pub launches: Vec<Launch>,
    /// TASK_ERROR updates for invalid tasks (SOURCE_MASTER, no uuid).
    pub errors: Vec<v1::TaskStatus>,
    /// Offered resources left unused: declined with the call's filters.
    pub leftover: Resources,
    /// RESERVE, UNRESERVE, CREATE and DESTROY applied, in order.
    pub conversions: Vec<Conversion>,
    /// Those dropped as invalid, with why (their resources stay in
    /// `leftover`).
    pub dropped: Vec<(i32, String)>,
    /// Operation types ignored (GROW_VOLUME, CREATE_DISK, ...).
    pub ignored: Vec<i32>,
}

/// A master-generated update for a task, no uuid.
pub fn master_status(
    task: &v1::TaskInfo,
    state: TaskState,
    reason: Reason,
    message: impl Into<String>,
) -> v1::TaskStatus {
    let mut s = util::with_reason(
        util::status(task.task_id.clone(), state, v1::task_status::Source::Master),
        reason,
        message,
    );
    if !task.agent_id.value.is_empty() {
        s.agent_id = Some(task.agent_id.clone());
    }
    s.executor_id = task.executor.as_ref().map(|e| e.executor_id.clone());
    s
}

/// Every task of the LAUNCH and LAUNCH_GROUP operations.
pub fn launched_tasks(operations: &[v1::offer::Operation]) -> Vec<&v1::TaskInfo> {
    let mut out = Vec::new();
    for op in operations {
        if let Some(l) = &op.launch {
            out.extend(l.task_infos.iter());
        }
        if let Some(g) = &op.launch_group {
            out.extend(g.task_group.tasks.iter());
        }
    }
    out
}

/// TASK_LOST (or TASK_DROPPED for PARTITION_AWARE frameworks) with
/// REASON_INVALID_OFFERS for every task of an ACCEPT whose offers are bad.
pub fn invalid_offer_statuses(
    operations: &[v1::offer::Operation],
    partition_aware: bool,
    error: &str,
) -> Vec<v1::TaskStatus> {
    let state = if partition_aware {
        TaskState::TaskDropped
    } else {
        TaskState::TaskLost
    };
    launched_tasks(operations)
        .into_iter()
        .map(|t| {
            master_status(
                t,
                state,
                Reason::InvalidOffers,
                format!("Task launched with invalid offers: {error}"),
            )
        })
        .collect()
}

/// Validates the operations of an ACCEPT whose offers are valid.
pub fn plan_accept(input: &AcceptInput<'_>, operations: &[v1::offer::Operation]) -> AcceptOutcome {
    let mut out = AcceptOutcome::default();
    let mut remaining = input.offered.clone();
    let mut seen: HashSet<String> = HashSet::new();
    // Executors on the agent, including those this ACCEPT starts.
    let mut executors = input.executors.clone();
    // The agent's reservations and volumes as the operations change them.
    let mut checkpointed = input.operations.checkpointed.clone();

    for op in operations {
        let ty = op.r#type.and_then(|t| operation::Type::try_from(t).ok());
        match ty {
            Some(operation::Type::Launch) => {
                let tasks = op
                    .launch
                    .as_ref()
                    .map(|l| l.task_infos.as_slice())
                    .unwrap_or(&[]);
                for task in tasks {
                    // Refused first, and then never launched nor tracked.
                    if let Some((acls, framework)) = input.run_tasks
                        && !acl::may_run_task(acls, framework, task)
                    {
                        out.errors.push(master_status(
                            task,
                            TaskState::TaskError,
                            Reason::TaskUnauthorized,
                            acl::run_task_refusal(task, framework),
                        ));
                        continue;
                    }
                    let result =
                        validate_task(input, task, op.id.is_some(), &remaining, &seen, &executors);
                    seen.insert(task.task_id.value.clone());
                    match result {
                        Ok(launch) => {
                            if let Launch::Task {
                                resources,
                                new_executor,
                                ..
                            } = &launch
                            {
                                remaining.subtract(resources);
                                if let Some((info, res)) = new_executor {
                                    remaining.subtract(res);
                                    executors.insert(info.executor_id.value.clone(), info.clone());
                                }
                            }
                            out.launches.push(launch);
                        }
                        Err(msg) => out.errors.push(master_status(
                            task,
                            TaskState::TaskError,
                            Reason::TaskInvalid,
                            msg,
                        )),
                    }
                }
            }
            Some(operation::Type::LaunchGroup) => {
                let Some(lg) = &op.launch_group else {
                    continue;
                };
                // Every task is authorized; the last refusal is reported
                // for all of them (Mesos keeps overwriting its `error`).
                let refused = input.run_tasks.and_then(|(acls, framework)| {
                    lg.task_group
                        .tasks
                        .iter()
                        .rev()
                        .find(|t| !acl::may_run_task(acls, framework, t))
                        .map(|t| acl::run_task_group_refusal(t, framework))
                });
                if let Some(msg) = refused {
                    for t in &lg.task_group.tasks {
                        let mut s = master_status(
                            t,
                            TaskState::TaskError,
                            Reason::TaskGroupUnauthorized,
                            msg.clone(),
                        );
                        s.executor_id = Some(lg.executor.executor_id.clone());
                        out.errors.push(s);
                    }
                    continue;
                }
                let result =
                    validate_group(input, lg, op.id.is_some(), &remaining, &seen, &executors);
                for t in &lg.task_group.tasks {
                    seen.insert(t.task_id.value.clone());
                }
                match result {
                    Ok(launch) => {
                        if let Launch::Group {
                            executor,
                            new_executor,
                            tasks,
                        } = &launch
                        {
                            for (_, r) in tasks {
                                remaining.subtract(r);
                            }
                            if let Some(r) = new_executor {
                                remaining.subtract(r);
                                executors
                                    .insert(executor.executor_id.value.clone(), executor.clone());
                            }
                        }
                        out.launches.push(launch);
                    }
                    Err(msg) => {
                        for t in &lg.task_group.tasks {
                            let mut s = master_status(
                                t,
                                TaskState::TaskError,
                                Reason::TaskGroupInvalid,
                                msg.clone(),
                            );
                            s.executor_id = Some(lg.executor.executor_id.clone());
                            out.errors.push(s);
                        }
                    }
                }
            }
            _ => {
                let ctx = OperationContext {
                    checkpointed: &checkpointed,
                    ..input.operations.clone()
                };
                let checked = operations::check(&ctx, op).map(|c| {
                    c.and_then(|c| operations::apply(&remaining, &c).map(|left| (c, left)))
                });
                match checked {
                    Some(Ok((c, left))) => {
                        remaining = left;
                        checkpointed.subtract(&c.consumed.checkpointed());
                        checkpointed.add(&c.converted.checkpointed());
                        out.conversions.push(c);
                    }
                    Some(Err(why)) => out.dropped.push((op.r#type.unwrap_or(0), why)),
                    None => out.ignored.push(op.r#type.unwrap_or(0)),
                }
            }
        }
    }
    out.leftover = remaining;
    out
}

/// The checks every task gets, alone or in a group.
fn validate_common(
    input: &AcceptInput<'_>,
    task: &v1::TaskInfo,
    has_operation_id: bool,
    seen: &HashSet<String>,
) -> Result<Resources, String> {
    if has_operation_id {
        return Err("The 'id' field was set in the offer operation. Operation IDs are not supported for LAUNCH or LAUNCH_GROUP operations".into());
    }
    let id = &task.task_id.value;
    validate_id(id).map_err(|e| format!("Task ID '{id}' is invalid: {e}"))?;
    if input.active_task_ids.contains(id) || seen.contains(id) {
        return Err(format!("Task has duplicate ID: {id}"));
    }
    if task.agent_id.value != input.agent_id {
        return Err(format!(
            "Task uses invalid agent: {} (the offers are for {})",
            task.agent_id.value, input.agent_id
        ));
    }
    if let Some(kp) = &task.kill_policy
        && kp.grace_period.as_ref().is_some_and(|g| g.nanoseconds < 0)
    {
        return Err("Task's 'kill_policy.grace_period' must be non-negative".into());
    }
    if let Some(hc) = &task.health_check {
        validate_health_check(hc)?;
    }
    let resources = Resources::from_protos(&task.resources)
        .map_err(|e| format!("Task uses invalid resources: {e}"))?;
    if resources.is_empty() {
        return Err("Task uses no resources".into());
    }
    Ok(resources)
}

fn validate_health_check(hc: &v1::HealthCheck) -> Result<(), String> {
    use v1::health_check::Type;
    let ty = hc.r#type.and_then(|t| Type::try_from(t).ok());
    let ok = match ty {
        Some(Type::Command) => hc.command.is_some(),
        Some(Type::Http) => hc.http.is_some(),
        Some(Type::Tcp) => hc.tcp.is_some(),
        // Pre-1.2 health checks without a type: command or http.
        _ => hc.command.is_some() || hc.http.is_some(),
    };
    let non_negative = [
        hc.delay_seconds,
        hc.interval_seconds,
        hc.timeout_seconds,
        hc.grace_period_seconds,
    ]
    .iter()
    .all(|v| v.is_none_or(|v| v >= 0.0));
    if ok && non_negative {
        Ok(())
    } else {
        Err("Task's health check is invalid".into())
    }
}

/// Fills in `framework_id` and checks an ExecutorInfo; `Ok(Some(..))` when
/// it is new on the agent.
fn validate_executor(
    input: &AcceptInput<'_>,
    executor: &v1::ExecutorInfo,
    executors: &BTreeMap<String, v1::ExecutorInfo>,
    group: bool,
) -> Result<(v1::ExecutorInfo, Option<Resources>), String> {
    let id = &executor.executor_id.value;
    validate_id(id).map_err(|e| format!("Executor ID '{id}' is invalid: {e}"))?;
    if let Some(fid) = &executor.framework_id
        && fid.value != input.framework_id
    {
        return Err(format!(
            "ExecutorInfo has an invalid FrameworkID (Actual: {} vs Expected: {})",
            fid.value, input.framework_id
        ));
    }
    let ty = executor
        .r#type
        .and_then(|t| executor_info::Type::try_from(t).ok());
    match (group, ty) {
        (false, None | Some(executor_info::Type::Custom)) => {}
        (false, _) => return Err("'ExecutorInfo.type' must be 'CUSTOM'".into()),
        (true, None | Some(executor_info::Type::Unknown)) => {
            return Err("'ExecutorInfo.type' must be set".into());
        }
        (true, _) => {}
    }
    if executor
        .shutdown_grace_period
        .as_ref()
        .is_some_and(|g| g.nanoseconds < 0)
    {
        return Err("ExecutorInfo's 'shutdown_grace_period' must be non-negative".into());
    }
    let custom = !matches!(ty, Some(executor_info::Type::Default));
    if custom && executor.command.is_none() {
        return Err("'ExecutorInfo.command' must be set for 'CUSTOM' executor".into());
    }
    if !custom && executor.command.is_some() {
        return Err("'ExecutorInfo.command' must not be set for 'DEFAULT' executor".into());
    }
    let mut info = executor.clone();
    info.framework_id = Some(util::framework_id(input.framework_id));
    let resources = Resources::from_protos(&info.resources)
        .map_err(|e| format!("Executor uses invalid resources: {e}"))?;
    match executors.get(id) {
        Some(existing) if *existing != info => {
            Err("ExecutorInfo is not compatible with existing ExecutorInfo".into())
        }
        Some(_) => Ok((info, None)),
        None => Ok((info, Some(resources))),
    }
}

fn validate_task(
    input: &AcceptInput<'_>,
    task: &v1::TaskInfo,
    has_operation_id: bool,
    remaining: &Resources,
    seen: &HashSet<String>,
    executors: &BTreeMap<String, v1::ExecutorInfo>,
) -> Result<Launch, String> {
    let resources = validate_common(input, task, has_operation_id, seen)?;
    if task.executor.is_some() == task.command.is_some() {
        return Err(
            "Task should have at least one (but not both) of CommandInfo or ExecutorInfo present"
                .into(),
        );
    }
    let mut task = task.clone();
    let mut new_executor = None;
    let mut needed = resources.clone();
    if let Some(executor) = &task.executor {
        let (info, new) = validate_executor(input, executor, executors, false)?;
        if let Some(r) = new {
            needed.add(&r);
            new_executor = Some((info.clone(), r));
        }
        task.executor = Some(info);
    }
    if !remaining.contains(&needed) {
        return Err(format!(
            "Task uses more resources {} than available {}",
            needed.to_state_json(),
            remaining.to_state_json()
        ));
    }
    Ok(Launch::Task {
        task,
        resources,
        new_executor,
    })
}

fn validate_group(
    input: &AcceptInput<'_>,
    lg: &operation::LaunchGroup,
    has_operation_id: bool,
    remaining: &Resources,
    seen: &HashSet<String>,
    executors: &BTreeMap<String, v1::ExecutorInfo>,
) -> Result<Launch, String> {
    if lg.task_group.tasks.is_empty() {
        return Err("Task group is empty".into());
    }
    let (executor, new) = validate_executor(input, &lg.executor, executors, true)?;
    let mut needed = new.clone().unwrap_or_default();
    let mut tasks = Vec::new();
    let mut group_seen = seen.clone();
    for t in &lg.task_group.tasks {
        let r = validate_common(input, t, has_operation_id, &group_seen)?;
        group_seen.insert(t.task_id.value.clone());
        if t.executor.is_some() {
            return Err(format!(
                "'TaskInfo.executor' must not be set for task {}",
                t.task_id.value
            ));
        }
        needed.add(&r);
        tasks.push((t.clone(), r));
    }
    if !remaining.contains(&needed) {
        return Err(format!(
            "Task group uses more resources {} than available {}",
            needed.to_state_json(),
            remaining.to_state_json()
        ));
    }
    Ok(Launch::Group {
        executor,
        new_executor: new,
        tasks,
    })
}

#[cfg(test)]
mod tests {
    use super::*;
    use mesos_proto::util::{ranges_resource, scalar_resource};

    fn offer() -> Resources {
        Resources::agent(4.0, 4096.0, 10240.0, (31000, 31999))
    }

    fn task(id: &str, cpus: f64) -> v1::TaskInfo {
        v1::TaskInfo {
            name: id.into(),
            task_id: util::task_id(id),
            agent_id: util::agent_id("m-S1"),
            resources: vec![scalar_resource("cpus", cpus), scalar_resource("mem", 64.0)],
            command: Some(v1::CommandInfo {
                value: Some("sleep 30".into()),
                ..Default::default()
            }),
            ..Default::default()
        }
    }

    fn custom(id: &str, cpus: f64) -> v1::ExecutorInfo {
        v1::ExecutorInfo {
            executor_id: util::executor_id(id),
            command: Some(v1::CommandInfo {
                value: Some("./exec".into()),
                ..Default::default()
            }),
            resources: vec![scalar_resource("cpus", cpus), scalar_resource("mem", 32.0)],
            ..Default::default()
        }
    }

    static ROLES: [String; 0] = [];
    static NOTHING: Resources = Resources {
        scalars: BTreeMap::new(),
        ranges: BTreeMap::new(),
        sets: BTreeMap::new(),
    };

    fn ops_context<'a>(
        roles: &'a [String],
        checkpointed: &'a Resources,
        used: &'a Resources,
    ) -> OperationContext<'a> {
        OperationContext {
            principal: None,
            roles,
            allocation_role: "*",
            refinement: false,
            checkpointed,
            used,
        }
    }

    fn launch(tasks: Vec<v1::TaskInfo>) -> v1::offer::Operation {
        v1::offer::Operation {
            r#type: Some(operation::Type::Launch as i32),
            launch: Some(operation::Launch { task_infos: tasks }),
            ..Default::default()
        }
    }

    fn run(
        ops: &[v1::offer::Operation],
        active: &[&str],
        execs: &[v1::ExecutorInfo],
    ) -> AcceptOutcome {
        let active: HashSet<String> = active.iter().map(|s| s.to_string()).collect();
        let executors: BTreeMap<String, v1::ExecutorInfo> = execs
            .iter()
            .map(|e| {
                let mut e = e.clone();
                e.framework_id = Some(util::framework_id("m-0000"));
                (e.executor_id.value.clone(), e)
            })
            .collect();
        let input = AcceptInput {
            framework_id: "m-0000",
            agent_id: "m-S1",
            offered: offer(),
            active_task_ids: &active,
            executors: &executors,
            run_tasks: None,
            operations: ops_context(&ROLES, &NOTHING, &NOTHING),
        };
        plan_accept(&input, ops)
    }

    fn error_of(out: &AcceptOutcome) -> &str {
        let s = &out.errors[0];
        assert_eq!(s.state(), TaskState::TaskError);
        assert_eq!(s.reason(), Reason::TaskInvalid);
        assert_eq!(s.source(), v1::task_status::Source::Master);
        assert!(s.uuid.is_none());
        s.message.as_deref().unwrap()
    }

    #[test]
    fn offers_must_be_outstanding_owned_single_agent_and_unique() {
        let lookup = |id: &str| match id {
            "o1" => Some(OfferRef {
                framework_id: "f".into(),
                agent: 1,
                role: "*".into(),
            }),
            "o2" => Some(OfferRef {
                framework_id: "f".into(),
                agent: 2,
                role: "*".into(),
            }),
            "o3" => Some(OfferRef {
                framework_id: "g".into(),
                agent: 1,
                role: "*".into(),
            }),
            "o4" => Some(OfferRef {
                framework_id: "f".into(),
                agent: 1,
                role: "*".into(),
            }),
            "o5" => Some(OfferRef {
                framework_id: "f".into(),
                agent: 1,
                role: "db".into(),
            }),
            _ => None,
        };
        let ids = |v: &[&str]| v.iter().map(|s| s.to_string()).collect::<Vec<_>>();
        assert_eq!(
            check_offers(&ids(&["o1", "o4"]), "f", lookup),
            Ok((1, "*".to_string()))
        );
        // A MULTI_ROLE framework's offers of two roles are not one ACCEPT.
        assert!(
            check_offers(&ids(&["o1", "o5"]), "f", lookup)
                .unwrap_err()
                .contains("same role")
        );
        assert!(
            check_offers(&ids(&["o1", "o1"]), "f", lookup)
                .unwrap_err()
                .contains("Duplicate")
        );
        assert!(
            check_offers(&ids(&["o9"]), "f", lookup)
                .unwrap_err()
                .contains("no longer valid")
        );
        assert!(
            check_offers(&ids(&["o3"]), "f", lookup)
                .unwrap_err()
                .contains("invalid framework")
        );
        assert!(
            check_offers(&ids(&["o1", "o2"]), "f", lookup)
                .unwrap_err()
                .contains("single agent")
        );
        assert!(check_offers(&[], "f", lookup).is_err());
    }

    #[test]
    fn invalid_offers_lose_or_drop_every_task() {
        let ops = [launch(vec![task("a", 1.0), task("b", 1.0)])];
        let lost = invalid_offer_statuses(&ops, false, "Offer x is no longer valid");
        assert_eq!(lost.len(), 2);
        assert!(lost.iter().all(|s| s.state() == TaskState::TaskLost
            && s.reason() == Reason::InvalidOffers
            && s.source() == v1::task_status::Source::Master
            && s.uuid.is_none()));
        let dropped = invalid_offer_statuses(&ops, true, "x");
        assert!(dropped.iter().all(|s| s.state() == TaskState::TaskDropped));
    }

    #[test]
    fn valid_tasks_consume_resources_and_leave_the_rest() {
        let mut t = task("a", 1.5);
        t.resources
            .push(ranges_resource("ports", &[(31000, 31000)]));
        let out = run(&[launch(vec![t, task("b", 2.0)])], &[], &[]);
        assert!(out.errors.is_empty());
        assert_eq!(out.launches.len(), 2);
        assert_eq!(out.leftover.scalar("cpus"), 0.5);
        assert_eq!(out.leftover.ranges_of("ports"), vec![(31001, 31999)]);
    }

    #[test]
    fn tasks_beyond_the_offer_fail_others_launch() {
        let out = run(&[launch(vec![task("a", 3.0), task("b", 3.0)])], &[], &[]);
        assert_eq!(out.launches.len(), 1);
        assert!(error_of(&out).contains("more resources"));
        let mut t = task("p", 0.1);
        t.resources
            .push(ranges_resource("ports", &[(40000, 40000)]));
        let out = run(&[launch(vec![t])], &[], &[]);
        assert!(error_of(&out).contains("more resources"));
    }

    #[test]
    fn each_task_rule_gives_task_error() {
        let cases: Vec<(v1::TaskInfo, &str)> = vec![
            (task("a/b", 0.1), "invalid"),
            (task("dup", 0.1), "duplicate"),
            (
                {
                    let mut t = task("x", 0.1);
                    t.agent_id = util::agent_id("m-S2");
                    t
                },
                "invalid agent",
            ),
            (
                {
                    let mut t = task("x", 0.1);
                    t.command = None;
                    t
                },
                "at least one",
            ),
            (
                {
                    let mut t = task("x", 0.1);
                    t.executor = Some(custom("e", 0.1));
                    t
                },
                "at least one",
            ),
            (
                {
                    let mut t = task("x", 0.1);
                    t.resources.clear();
                    t
                },
                "no resources",
            ),
            (
                {
                    let mut t = task("x", 0.1);
                    t.resources = vec![scalar_resource("cpus", -1.0)];
                    t
                },
                "invalid resources",
            ),
            (
                {
                    let mut t = task("x", 0.1);
                    t.command = None;
                    let mut e = custom("e", 0.1);
                    e.command = None;
                    t.executor = Some(e);
                    t
                },
                "must be set",
            ),
            (
                {
                    let mut t = task("x", 0.1);
                    t.kill_policy = Some(v1::KillPolicy {
                        grace_period: Some(v1::DurationInfo { nanoseconds: -1 }),
                    });
                    t
                },
                "kill_policy",
            ),
            (
                {
                    let mut t = task("x", 0.1);
                    t.command = None;
                    let mut e = custom("e", 0.1);
                    e.shutdown_grace_period = Some(v1::DurationInfo { nanoseconds: -1 });
                    t.executor = Some(e);
                    t
                },
                "shutdown_grace_period",
            ),
        ];
        for (t, expected) in cases {
            let out = run(&[launch(vec![t.clone()])], &["dup"], &[]);
            assert!(out.launches.is_empty(), "{t:?}");
            let msg = error_of(&out);
            assert!(msg.contains(expected), "{msg} vs {expected}");
        }
        let out = run(
            &[launch(vec![task("same", 0.1), task("same", 0.1)])],
            &[],
            &[],
        );
        assert_eq!(out.launches.len(), 1);
        assert!(error_of(&out).contains("duplicate"));
        let mut op = launch(vec![task("x", 0.1)]);
        op.id = Some(v1::OperationId { value: "op".into() });
        assert!(error_of(&run(&[op], &[], &[])).contains("Operation ID"));
    }

    #[test]
    fn executors_add_resources_once_and_must_match() {
        let with_exec = |id: &str, e: v1::ExecutorInfo| {
            let mut t = task(id, 1.0);
            t.command = None;
            t.executor = Some(e);
            t
        };
        // New executor: its resources count; the second task reuses it.
        let out = run(
            &[launch(vec![
                with_exec("a", custom("e", 0.5)),
                with_exec("b", custom("e", 0.5)),
            ])],
            &[],
            &[],
        );
        assert!(out.errors.is_empty(), "{:?}", out.errors);
        assert_eq!(out.leftover.scalar("cpus"), 1.5);
        match &out.launches[0] {
            Launch::Task {
                task, new_executor, ..
            } => {
                assert!(new_executor.is_some());
                assert_eq!(
                    task.executor
                        .as_ref()
                        .unwrap()
                        .framework_id
                        .as_ref()
                        .unwrap()
                        .value,
                    "m-0000"
                );
            }
            other => panic!("{other:?}"),
        }
        assert!(matches!(
            &out.launches[1],
            Launch::Task {
                new_executor: None,
                ..
            }
        ));
        // Already running there: no executor resources.
        let out = run(
            &[launch(vec![with_exec("a", custom("e", 0.5))])],
            &[],
            &[custom("e", 0.5)],
        );
        assert_eq!(out.leftover.scalar("cpus"), 3.0);
        // Same id, different info.
        let out = run(
            &[launch(vec![with_exec("a", custom("e", 0.7))])],
            &[],
            &[custom("e", 0.5)],
        );
        assert!(error_of(&out).contains("not compatible"));
    }

    #[test]
    fn task_groups_are_atomic() {
        let mut exec = custom("g", 0.1);
        exec.r#type = Some(executor_info::Type::Custom as i32);
        let group = |tasks: Vec<v1::TaskInfo>, exec: v1::ExecutorInfo| v1::offer::Operation {
            r#type: Some(operation::Type::LaunchGroup as i32),
            launch_group: Some(operation::LaunchGroup {
                executor: exec,
                task_group: v1::TaskGroupInfo { tasks },
            }),
            ..Default::default()
        };
        let out = run(
            &[group(vec![task("a", 1.0), task("b", 1.0)], exec.clone())],
            &[],
            &[],
        );
        assert!(out.errors.is_empty());
        assert_eq!(out.leftover.scalar("cpus"), 1.9);
        let out = run(
            &[group(vec![task("a", 1.0), task("b", 9.0)], exec.clone())],
            &[],
            &[],
        );
        assert!(out.launches.is_empty());
        assert_eq!(out.errors.len(), 2);
        assert!(
            out.errors
                .iter()
                .all(|s| s.reason() == Reason::TaskGroupInvalid)
        );
        let mut untyped = exec;
        untyped.r#type = None;
        let out = run(&[group(vec![task("a", 1.0)], untyped)], &[], &[]);
        assert_eq!(out.errors.len(), 1);
    }

    #[test]
    fn reserve_and_create_convert_the_offer_for_a_later_launch() {
        use v1::resource::{DiskInfo, ReservationInfo, disk_info::Persistence};
        let reserved = |mut r: v1::Resource| {
            #[allow(deprecated)]
            {
                r.role = Some("web".into());
            }
            r.reservation = Some(ReservationInfo::default());
            r
        };
        let mut volume = reserved(scalar_resource("disk", 100.0));
        volume.disk = Some(DiskInfo {
            persistence: Some(Persistence {
                id: "v1".into(),
                principal: None,
            }),
            volume: Some(v1::Volume {
                container_path: "data".into(),
                mode: v1::volume::Mode::Rw as i32,
                ..Default::default()
            }),
        });
        let op = |ty: operation::Type, resources: Vec<v1::Resource>| {
            let mut o = v1::offer::Operation {
                r#type: Some(ty as i32),
                ..Default::default()
            };
            match ty {
                operation::Type::Reserve => o.reserve = Some(operation::Reserve { resources }),
                operation::Type::Create => {
                    o.create = Some(operation::Create { volumes: resources })
                }
                _ => {}
            }
            o
        };
        let mut t = task("resident", 0.0);
        t.resources = vec![reserved(scalar_resource("cpus", 1.0)), volume.clone()];
        let mut other_role = reserved(scalar_resource("cpus", 1.0));
        #[allow(deprecated)]
        {
            other_role.role = Some("db".into());
        }
        let roles = vec!["web".to_string()];
        let active = HashSet::new();
        let executors = BTreeMap::new();
        let input = AcceptInput {
            framework_id: "m-0000",
            agent_id: "m-S1",
            offered: offer(),
            active_task_ids: &active,
            executors: &executors,
            run_tasks: None,
            operations: OperationContext {
                allocation_role: "web",
                ..ops_context(&roles, &NOTHING, &NOTHING)
            },
        };
        let out = plan_accept(
            &input,
            &[
                op(
                    operation::Type::Reserve,
                    vec![
                        reserved(scalar_resource("cpus", 1.0)),
                        reserved(scalar_resource("disk", 100.0)),
                    ],
                ),
                op(operation::Type::Reserve, vec![other_role]),
                op(operation::Type::Create, vec![volume]),
                launch(vec![t]),
                op(operation::Type::GrowVolume, vec![]),
            ],
        );
        assert!(out.errors.is_empty(), "{:?}", out.errors);
        assert_eq!(out.launches.len(), 1);
        assert_eq!(out.conversions.len(), 2);
        assert_eq!(out.dropped.len(), 1);
        assert!(out.dropped[0].1.contains("role 'db'"), "{:?}", out.dropped);
        assert_eq!(out.ignored, vec![operation::Type::GrowVolume as i32]);
        // The launch used the reserved cpus and the volume; the rest is
        // unreserved and goes back.
        assert_eq!(out.leftover.scalar("cpus"), 3.0);
        assert_eq!(out.leftover.total_scalar("cpus"), 3.0);
        assert_eq!(out.leftover.total_scalar("disk"), 10140.0);
    }

    #[test]
    fn run_tasks_refusals_are_task_errors_before_validation() {
        let acls = Acls::parse(
            r#"{"permissive":false,"run_tasks":[
                {"principals":{"values":["baton"]},"users":{"values":["app"]}}]}"#,
        )
        .unwrap();
        let framework = v1::FrameworkInfo {
            user: "root".into(),
            name: "f".into(),
            id: Some(util::framework_id("m-0000")),
            principal: Some("baton".into()),
            ..Default::default()
        };
        let active = HashSet::new();
        let executors = BTreeMap::new();
        let input = AcceptInput {
            framework_id: "m-0000",
            agent_id: "m-S1",
            offered: offer(),
            active_task_ids: &active,
            executors: &executors,
            run_tasks: Some((&acls, &framework)),
            operations: ops_context(&ROLES, &NOTHING, &NOTHING),
        };
        let mut as_app = task("ok", 1.0);
        as_app.command.as_mut().unwrap().user = Some("app".into());
        // Refused even though it is also invalid (too big): authorization
        // comes first. The refused id stays free for the next task.
        let out = plan_accept(
            &input,
            &[launch(vec![task("no", 99.0), {
                let mut t = as_app.clone();
                t.task_id.value = "no".into();
                t
            }])],
        );
        assert_eq!(out.errors.len(), 1);
        let s = &out.errors[0];
        assert_eq!(
            (s.state(), s.reason(), s.source()),
            (
                TaskState::TaskError,
                Reason::TaskUnauthorized,
                v1::task_status::Source::Master
            )
        );
        assert_eq!(
            s.message.as_deref(),
            Some(
                "Principal 'baton' no authorized to launch task no of framework m-0000 under user 'root'"
            )
        );
        assert_eq!(out.launches.len(), 1);
        assert_eq!(out.leftover.scalar("cpus"), 3.0);

        // A group with one refused task: all of it, the group reason.
        let mut exec = custom("g", 0.1);
        exec.r#type = Some(executor_info::Type::Custom as i32);
        let mut b = as_app.clone();
        b.task_id.value = "b".into();
        let group = v1::offer::Operation {
            r#type: Some(operation::Type::LaunchGroup as i32),
            launch_group: Some(operation::LaunchGroup {
                executor: exec,
                task_group: v1::TaskGroupInfo {
                    tasks: vec![task("a", 1.0), b],
                },
            }),
            ..Default::default()
        };
        let out = plan_accept(&input, &[group]);
        assert!(out.launches.is_empty());
        assert_eq!(out.errors.len(), 2);
        for s in &out.errors {
            assert_eq!(s.reason(), Reason::TaskGroupUnauthorized);
            assert_eq!(
                s.message.as_deref(),
                Some(
                    "Task 'a' is not authorized tolaunch task a of framework m-0000 under user 'root'"
                )
            );
        }
        assert_eq!(out.leftover, offer());
    }
}
