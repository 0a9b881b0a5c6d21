//! Running an app task under `baton-executor`, Baton's own Mesos v1 HTTP
//! executor, instead of Mesos's built-in command executor.
//!
//! [`build_app_task_info`](super::task_info::build_app_task_info) builds a
//! command task. [`with_baton_executor`] turns it into a task with a CUSTOM
//! `ExecutorInfo`: the agent fetches the executor binary from Baton
//! ([`ExecutorSettings::fetch_url`]), starts it, and the executor runs the
//! task's own `CommandInfo` — carried in `TaskInfo.data`, because Mesos
//! refuses a task with both a CommandInfo and an ExecutorInfo. A custom executor's resources are its own, not
//! the task's, so the executor's share is moved out of the task's resources.
//! The caller placed the task asking for the app's resources plus that share
//! ([`ExecutorSettings::cpus`], [`mem`](ExecutorSettings::mem),
//! [`disk`](ExecutorSettings::disk)), so the amounts are there to move.
//!
//! Pure: no I/O.

use std::time::Duration;

use mesos_proto::util::{executor_id, framework_id};
use mesos_proto::v1::{self, CommandInfo, ExecutorInfo, Resource, TaskInfo, executor_info};

/// The executor's name, the file agents save the fetched binary as, and the
/// prefix of every executor id.
pub const EXECUTOR_NAME: &str = "baton-executor";

/// Amounts below this count as nothing left; float subtraction leaves dust.
const EPSILON: f64 = 1e-9;

/// Why a task could not be given the executor.
#[derive(Debug, Clone, PartialEq, thiserror::Error)]
pub enum ExecutorError {
    /// The task's resources hold less of `resource` than the executor's
    /// share: the placement did not include the share.
    #[error("task resources lack the executor's share of {resource}")]
    Insufficient {
        /// `cpus`, `mem` or `disk`.
        resource: &'static str,
    },
}

/// Where agents fetch the executor from and what it runs with.
#[derive(Debug, Clone, PartialEq)]
pub struct ExecutorSettings {
    /// The URL agents fetch the `baton-executor` binary from, typically
    /// Baton's own `/executor/<version>/baton-executor`.
    pub fetch_url: String,
    /// Whether agents may keep the binary in their fetcher cache: only
    /// when the URL names the build (its hash), so that a new build is a
    /// new URL and is fetched anew.
    pub cache: bool,
    /// CPUs the executor itself takes, on top of the task's.
    pub cpus: f64,
    /// Memory in MB the executor itself takes, on top of the task's.
    pub mem: f64,
    /// Disk in MB the executor itself takes (its sandbox holds the binary).
    pub disk: f64,
    /// How often the executor reports its tasks' load (zero: never);
    /// passed as `BATON_LOAD_REPORT_INTERVAL`.
    pub load_report_interval: Duration,
}

impl ExecutorSettings {
    /// Default CPUs for the executor: it mostly sleeps in `waitpid`.
    pub const DEFAULT_CPUS: f64 = 0.1;
    /// Default memory (MB) for the executor: a small static binary.
    pub const DEFAULT_MEM: f64 = 32.0;
    /// Default disk (MB) for the executor: room for the fetched binary.
    pub const DEFAULT_DISK: f64 = 10.0;
    /// Default interval of load reports.
    pub const DEFAULT_LOAD_REPORT_INTERVAL: Duration = Duration::from_secs(5);

    /// Settings fetching from `fetch_url` with the default share.
    pub fn new(fetch_url: impl Into<String>) -> Self {
        ExecutorSettings {
            fetch_url: fetch_url.into(),
            cache: false,
            cpus: Self::DEFAULT_CPUS,
            mem: Self::DEFAULT_MEM,
            disk: Self::DEFAULT_DISK,
            load_report_interval: Self::DEFAULT_LOAD_REPORT_INTERVAL,
        }
    }
}

/// Makes `task` run under `baton-executor`: moves the executor's share of
/// cpus, mem and disk out of `task.resources` into a CUSTOM `ExecutorInfo`
/// (id `baton-executor.<task id>`) that fetches the binary from
/// `settings.fetch_url`. The task keeps its command, which the executor
/// runs, and its container.
///
/// The share is taken from the task's entries in order, from as many
/// entries (pools) as it takes; each executor resource keeps the role,
/// reservations, allocation info and disk info of the entry it came from,
/// so the master accepts it under the same offer. Entries left with nothing
/// are dropped from the task.
///
/// # Errors
///
/// [`ExecutorError::Insufficient`] when the task holds less of a resource
/// than the share; `task` is not returned then.
pub fn with_baton_executor(
    mut task: TaskInfo,
    framework_id_value: &str,
    settings: &ExecutorSettings,
) -> Result<TaskInfo, ExecutorError> {
    let mut executor_resources = Vec::new();
    for (name, amount) in [
        ("cpus", settings.cpus),
        ("mem", settings.mem),
        ("disk", settings.disk),
    ] {
        executor_resources.extend(carve(&mut task.resources, name, amount)?);
    }
    task.resources.retain(|r| !is_emptied_scalar(r));

    // Mesos accepts a CommandInfo or an ExecutorInfo on a task, not both:
    // the command travels in `data` (baton-executor reads it there), and the
    // app's `fetch` URIs move to the executor, whose sandbox the agent fills.
    let mut uris = Vec::new();
    if let Some(mut command) = task.command.take() {
        uris.append(&mut command.uris);
        task.data = Some(prost::Message::encode_to_vec(&command));
    }
    task.executor = Some(baton_executor_info(
        executor_id(format!("{EXECUTOR_NAME}.{}", task.task_id.value)),
        framework_id_value,
        &task.name,
        settings,
        uris,
        executor_resources,
    ));
    Ok(task)
}

/// `baton-executor` as a custom executor: fetched from Baton (with `uris`
/// after it), run from the sandbox, told how often to report load.
/// `source` names whose executor it is (deprecated in Mesos, but the agent
/// still reports it with the executor's usage).
pub fn baton_executor_info(
    id: v1::ExecutorId,
    framework_id_value: &str,
    source: &str,
    settings: &ExecutorSettings,
    uris: Vec<v1::command_info::Uri>,
    resources: Vec<Resource>,
) -> ExecutorInfo {
    let mut all_uris = vec![v1::command_info::Uri {
        value: settings.fetch_url.clone(),
        executable: Some(true),
        extract: Some(false),
        cache: Some(settings.cache),
        output_file: Some(EXECUTOR_NAME.to_string()),
    }];
    all_uris.extend(uris);
    #[allow(deprecated)]
    ExecutorInfo {
        r#type: Some(executor_info::Type::Custom as i32),
        executor_id: id,
        framework_id: Some(framework_id(framework_id_value)),
        name: Some(EXECUTOR_NAME.to_string()),
        command: Some(CommandInfo {
            value: Some(format!("./{EXECUTOR_NAME}")),
            shell: Some(true),
            uris: all_uris,
            environment: Some(v1::Environment {
                variables: vec![v1::environment::Variable {
                    name: "BATON_LOAD_REPORT_INTERVAL".into(),
                    r#type: None,
                    value: Some(format!("{}ms", settings.load_report_interval.as_millis())),
                }],
            }),
            ..Default::default()
        }),
        source: Some(source.to_string()),
        resources,
        ..Default::default()
    }
}

/// Takes `amount` of scalar `name` from `resources` in order, shrinking the
/// entries it takes from, and returns the pieces taken, each a copy of its
/// entry's metadata. Leaves `resources` untouched on error.
pub(crate) fn carve(
    resources: &mut [Resource],
    name: &'static str,
    amount: f64,
) -> Result<Vec<Resource>, ExecutorError> {
    if amount <= EPSILON {
        return Ok(Vec::new());
    }
    let available: f64 = resources
        .iter()
        .filter(|r| splittable(r, name))
        .map(scalar_value)
        .sum();
    if available + EPSILON < amount {
        return Err(ExecutorError::Insufficient { resource: name });
    }
    let mut wanted = amount;
    let mut taken = Vec::new();
    for resource in resources.iter_mut().filter(|r| splittable(r, name)) {
        if wanted <= EPSILON {
            break;
        }
        let have = scalar_value(resource);
        let take = have.min(wanted);
        if take <= EPSILON {
            continue;
        }
        let mut piece = resource.clone();
        piece.scalar = Some(v1::value::Scalar { value: take });
        taken.push(piece);
        resource.scalar = Some(v1::value::Scalar {
            value: mesos_scalar(have - take),
        });
        wanted -= take;
    }
    Ok(taken)
}

/// A scalar as Mesos keeps it: fixed point with three decimals, so that
/// `0.11 - 0.1` is sent as `0.01`, not `0.009999999999999995`.
pub(crate) fn mesos_scalar(value: f64) -> f64 {
    (value * 1000.0).round() / 1000.0
}

/// A scalar entry named `name` that may be cut in two. Persistent volumes
/// and shared resources are indivisible: a piece of one is not a resource
/// the master would accept.
fn splittable(resource: &Resource, name: &str) -> bool {
    resource.name == name
        && resource.r#type == v1::value::Type::Scalar as i32
        && resource.shared.is_none()
        && resource
            .disk
            .as_ref()
            .is_none_or(|disk| disk.persistence.is_none())
}

pub(crate) fn scalar_value(resource: &Resource) -> f64 {
    resource.scalar.as_ref().map_or(0.0, |s| s.value)
}

fn is_emptied_scalar(resource: &Resource) -> bool {
    resource.r#type == v1::value::Type::Scalar as i32 && scalar_value(resource) <= EPSILON
}

/// Whether a task ended because its agent could not fetch `baton-executor`
/// itself (Baton restarting, or unreachable): Baton's own failure, not the
/// app's, so it must not slow the app's launches down. An agent says only
/// that fetching failed ("Failed to fetch all URIs for container …"; which
/// URI and why is in the sandbox), so it is the executor's when the app
/// fetches nothing of its own (with URIs of its own the failure stays the
/// app's: it may be theirs).
pub fn failed_fetching_executor(status: &v1::TaskStatus, app_fetches_uris: bool) -> bool {
    if status.reason.is_none() || status.reason() != v1::task_status::Reason::ContainerLaunchFailed
    {
        return false;
    }
    let message = status.message.as_deref().unwrap_or("").to_ascii_lowercase();
    message.contains("fetch") && !app_fetches_uris
}

#[cfg(test)]
mod tests {
    use super::*;
    use mesos_proto::util::{agent_id, ranges_resource, scalar_resource, task_id};
    use mesos_proto::v1::resource::{AllocationInfo, ReservationInfo, reservation_info};

    const FETCH_URL: &str = "http://10.0.0.1:8080/executor/baton-executor";

    fn settings() -> ExecutorSettings {
        ExecutorSettings::new(FETCH_URL)
    }

    fn allocated(mut r: Resource, role: &str) -> Resource {
        r.allocation_info = Some(AllocationInfo {
            role: Some(role.to_string()),
        });
        r
    }

    fn reserved(mut r: Resource, role: &str) -> Resource {
        r.reservations = vec![ReservationInfo {
            r#type: Some(reservation_info::Type::Static as i32),
            role: Some(role.to_string()),
            ..Default::default()
        }];
        allocated(r, role)
    }

    fn task(resources: Vec<Resource>) -> TaskInfo {
        TaskInfo {
            name: "web.shop".into(),
            task_id: task_id("shop_web.instance-1._app.1"),
            agent_id: agent_id("agent-S1"),
            resources,
            command: Some(CommandInfo {
                value: Some("python3 -m http.server $PORT0".into()),
                shell: Some(true),
                ..Default::default()
            }),
            container: Some(v1::ContainerInfo {
                r#type: v1::container_info::Type::Mesos as i32,
                ..Default::default()
            }),
            ..Default::default()
        }
    }

    /// Sum of scalar `name` over `resources`.
    fn total(resources: &[Resource], name: &str) -> f64 {
        resources
            .iter()
            .filter(|r| r.name == name)
            .map(scalar_value)
            .sum()
    }

    fn close(a: f64, b: f64) -> bool {
        (a - b).abs() < 1e-9
    }

    #[test]
    fn executor_share_moves_out_of_task_and_amounts_sum_to_the_original() {
        let original = vec![
            allocated(scalar_resource("cpus", 1.1), "*"),
            allocated(scalar_resource("mem", 160.0), "*"),
            allocated(scalar_resource("disk", 10.0), "*"),
            allocated(ranges_resource("ports", &[(31000, 31000)]), "*"),
        ];
        let out = with_baton_executor(task(original.clone()), "fw-1", &settings()).unwrap();
        let executor = out.executor.as_ref().unwrap();
        for name in ["cpus", "mem", "disk"] {
            assert!(
                close(
                    total(&out.resources, name) + total(&executor.resources, name),
                    total(&original, name)
                ),
                "{name} is conserved"
            );
        }
        assert!(close(total(&executor.resources, "cpus"), 0.1));
        assert_eq!(mesos_scalar(0.11 - 0.1), 0.01, "no float dust on the wire");
        assert!(close(total(&executor.resources, "mem"), 32.0));
        assert!(close(total(&out.resources, "cpus"), 1.0));
        assert!(close(total(&out.resources, "mem"), 128.0));
        // All of the disk went to the executor, so the entry is gone.
        assert!(out.resources.iter().all(|r| r.name != "disk"));
        // Ports stay with the task.
        assert!(out.resources.iter().any(|r| r.name == "ports"));
        assert!(executor.resources.iter().all(|r| r.name != "ports"));
        // Pieces keep the allocation info, so the master accepts them.
        assert!(
            executor
                .resources
                .iter()
                .all(|r| r.allocation_info == original[0].allocation_info)
        );
    }

    #[test]
    fn share_split_across_two_pools_keeps_each_pools_reservation() {
        let original = vec![
            reserved(scalar_resource("cpus", 0.05), "web"),
            allocated(scalar_resource("cpus", 1.0), "web"),
            reserved(scalar_resource("mem", 32.0), "web"),
            allocated(scalar_resource("mem", 64.0), "web"),
        ];
        let settings = ExecutorSettings {
            disk: 0.0,
            ..settings()
        };
        let out = with_baton_executor(task(original.clone()), "fw-1", &settings).unwrap();
        let executor = out.executor.unwrap();
        let cpus: Vec<_> = executor
            .resources
            .iter()
            .filter(|r| r.name == "cpus")
            .collect();
        assert_eq!(cpus.len(), 2, "taken from both pools: {cpus:?}");
        assert!(close(scalar_value(cpus[0]), 0.05));
        assert_eq!(cpus[0].reservations, original[0].reservations);
        assert!(close(scalar_value(cpus[1]), 0.05));
        assert!(cpus[1].reservations.is_empty());
        // The reserved cpus were used up; the unreserved pool shrank.
        let task_cpus: Vec<_> = out.resources.iter().filter(|r| r.name == "cpus").collect();
        assert_eq!(task_cpus.len(), 1);
        assert!(task_cpus[0].reservations.is_empty());
        assert!(close(scalar_value(task_cpus[0]), 0.95));
        // Mem came wholly from the reserved entry, which left the task.
        let mem: Vec<_> = executor
            .resources
            .iter()
            .filter(|r| r.name == "mem")
            .collect();
        assert_eq!(mem.len(), 1);
        assert_eq!(mem[0].reservations, original[2].reservations);
        assert!(out.resources.iter().all(
            |r| r.name != "mem" || (r.reservations.is_empty() && close(scalar_value(r), 64.0))
        ));
    }

    #[test]
    fn persistent_volumes_are_not_cut_for_the_executor() {
        let mut volume = scalar_resource("disk", 100.0);
        volume.disk = Some(v1::resource::DiskInfo {
            persistence: Some(v1::resource::disk_info::Persistence {
                id: "data".into(),
                principal: None,
            }),
            volume: None,
        });
        let resources = vec![
            scalar_resource("cpus", 1.0),
            scalar_resource("mem", 64.0),
            volume,
        ];
        assert_eq!(
            with_baton_executor(task(resources), "fw-1", &settings()).unwrap_err(),
            ExecutorError::Insufficient { resource: "disk" }
        );
    }

    #[test]
    fn missing_share_is_insufficient() {
        let resources = vec![
            scalar_resource("cpus", 1.0),
            scalar_resource("mem", 16.0),
            scalar_resource("disk", 10.0),
        ];
        assert_eq!(
            with_baton_executor(task(resources), "fw-1", &settings()).unwrap_err(),
            ExecutorError::Insufficient { resource: "mem" }
        );
    }

    #[test]
    fn executor_info_fetches_and_runs_baton_executor() {
        let resources = vec![
            scalar_resource("cpus", 0.2),
            scalar_resource("mem", 64.0),
            scalar_resource("disk", 10.0),
        ];
        let out = with_baton_executor(task(resources), "fw-1", &settings()).unwrap();
        let executor = out.executor.as_ref().unwrap();
        assert_eq!(executor.r#type, Some(executor_info::Type::Custom as i32));
        assert_eq!(
            executor.executor_id.value,
            "baton-executor.shop_web.instance-1._app.1"
        );
        assert_eq!(executor.framework_id.as_ref().unwrap().value, "fw-1");
        assert_eq!(executor.name.as_deref(), Some("baton-executor"));
        #[allow(deprecated)]
        let source = executor.source.as_deref();
        assert_eq!(source, Some("web.shop"));
        let command = executor.command.as_ref().unwrap();
        assert_eq!(command.value.as_deref(), Some("./baton-executor"));
        assert_eq!(command.shell, Some(true));
        let variables = &command.environment.as_ref().unwrap().variables;
        assert_eq!(variables[0].name, "BATON_LOAD_REPORT_INTERVAL");
        assert_eq!(variables[0].value.as_deref(), Some("5000ms"));
        assert_eq!(
            command.uris,
            vec![v1::command_info::Uri {
                value: FETCH_URL.into(),
                executable: Some(true),
                extract: Some(false),
                cache: Some(false),
                output_file: Some("baton-executor".into()),
            }]
        );
    }

    #[test]
    fn a_versioned_executor_url_is_fetched_through_the_agents_cache() {
        let resources = vec![
            scalar_resource("cpus", 0.2),
            scalar_resource("mem", 64.0),
            scalar_resource("disk", 10.0),
        ];
        let settings = ExecutorSettings {
            fetch_url: "http://10.0.0.1:8080/executor/0123456789abcdef/baton-executor".into(),
            cache: true,
            ..settings()
        };
        let out = with_baton_executor(task(resources), "fw-1", &settings).unwrap();
        let uris = &out.executor.unwrap().command.unwrap().uris;
        assert_eq!(uris[0].value, settings.fetch_url);
        assert_eq!(uris[0].cache, Some(true));
    }

    #[test]
    fn failing_to_fetch_the_executor_is_batons_failure_not_the_apps() {
        use mesos_proto::v1::task_status::{Reason, Source};
        let failed = |reason: Option<Reason>, message: &str| {
            let mut s =
                mesos_proto::util::status(task_id("t"), v1::TaskState::TaskFailed, Source::Agent);
            s.reason = reason.map(|r| r as i32);
            s.message = Some(message.into());
            s
        };
        // The agent does not name the URI: the executor's when the app
        // fetches nothing itself.
        let real = failed(
            Some(Reason::ContainerLaunchFailed),
            "Failed to launch container: Failed to fetch all URIs for container 'c': exited with status 1",
        );
        assert!(failed_fetching_executor(&real, false));
        assert!(
            !failed_fetching_executor(&real, true),
            "maybe the app's URI"
        );
        // Other launch failures and task failures are the app's.
        let other = failed(
            Some(Reason::ContainerLaunchFailed),
            "Failed to launch container: no such image",
        );
        assert!(!failed_fetching_executor(&other, false));
        let crashed = failed(
            Some(Reason::CommandExecutorFailed),
            "fetch failed in the app's own code",
        );
        assert!(!failed_fetching_executor(&crashed, false));
        assert!(!failed_fetching_executor(
            &failed(None, "failed to fetch"),
            false
        ));
    }

    #[test]
    fn regression_the_command_moves_to_data_since_mesos_refuses_both_command_and_executor() {
        let resources = vec![
            scalar_resource("cpus", 0.2),
            scalar_resource("mem", 64.0),
            scalar_resource("disk", 10.0),
        ];
        let before = task(resources);
        let out = with_baton_executor(before.clone(), "fw-1", &settings()).unwrap();
        assert_eq!(out.command, None);
        let carried: v1::CommandInfo =
            prost::Message::decode(out.data.as_deref().unwrap()).unwrap();
        assert_eq!(Some(carried), before.command);
        assert_eq!(out.container, before.container);
        assert_eq!(
            (&out.name, &out.task_id, &out.agent_id),
            (&before.name, &before.task_id, &before.agent_id)
        );
    }
}
