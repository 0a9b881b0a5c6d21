//! Building the LAUNCH_GROUP of one pod instance placed on an offer: one
//! `TaskInfo` per container, all under one executor, as Marathon's
//! `TaskGroupBuilder` does.
//!
//! The placement allocated the instance's whole share (its containers plus
//! the executor's) from one pool; it is cut here into each container's
//! and the executor's, and each endpoint with a host port gets its port
//! in the order [`PodDefinition::host_port_endpoints`] gives. Pod volumes
//! are shared through the executor's sandbox: an ephemeral volume `v`
//! mounted at `p` is a `SANDBOX_PATH` volume of type PARENT, path
//! `volumes/v`, at `p` in each container that mounts it (what Mesos's
//! `volume/sandbox_path` isolator and `baton-executor` both provide). A
//! persistent volume is among the executor's resources, so Mesos mounts it
//! in the executor's sandbox at its name; containers mount it from there
//! the same way.
//!
//! The executor is Mesos's default executor (`DEFAULT`, no command; what
//! Marathon uses, and what `mesos-local` runs `baton-executor` for) or,
//! with `--pod_executor baton`, `baton-executor` as a custom executor
//! fetched from Baton.

use std::time::Duration;

use mesos_proto::util::{agent_id, duration_info, executor_id, framework_id, task_id};
use mesos_proto::v1::{
    self, CommandInfo, Environment, ExecutorInfo, KillPolicy, Resource, TaskInfo, executor_info,
};

use super::Allocation;
use super::executor::{ExecutorSettings, baton_executor_info, carve};
use super::task_info::{labels, variable};
use crate::state::app::pod::{
    HttpScheme, PodCheck, PodCommand, PodContainer, PodDefinition, PodVolume,
};
use crate::state::app::{EnvValue, Timestamp};
use crate::state::instance::ContainerTask;

/// Which executor runs a pod's task group.
#[derive(Debug, Clone, Copy)]
pub enum PodExecutor<'a> {
    /// Mesos's default executor.
    Default,
    /// `baton-executor`, as a custom executor.
    Baton(&'a ExecutorSettings),
}

/// A pod instance's launch: the group's executor and tasks, and the
/// containers' tasks to remember.
#[derive(Debug, Clone)]
pub struct PodLaunch {
    /// The executor the group runs under.
    pub executor: ExecutorInfo,
    /// One task per container, in container order.
    pub tasks: Vec<TaskInfo>,
    /// What the instance keeps of each.
    pub containers: Vec<ContainerTask>,
}

/// Why a pod instance cannot be launched on an allocation.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum TaskGroupError {
    /// The allocation holds less than the containers and executor need.
    #[error("the allocation has too little {0} for the pod's containers and executor")]
    Insufficient(&'static str),
    /// A container has nothing to run.
    #[error("container {0:?} has no exec command, and images are not run here")]
    NoCommand(String),
}

/// `<pod>.instance-<uuid>.<container>.<incarnation>`, Marathon's pod task
/// id (which [`crate::state::app::parse_task_id`] reads back).
pub fn pod_task_id(instance_id: &str, container: &str, incarnation: u64) -> String {
    format!("{instance_id}.{container}.{incarnation}")
}

/// The LAUNCH_GROUP of `pod`'s instance `instance_id` (its `incarnation`-th
/// launch) on `offer`, with `allocation` from the placement.
#[allow(clippy::too_many_arguments)]
pub fn build_pod_launch(
    pod: &PodDefinition,
    version: Timestamp,
    instance_id: &str,
    incarnation: u64,
    framework: &str,
    offer: &v1::Offer,
    allocation: &Allocation,
    choice: PodExecutor<'_>,
) -> Result<PodLaunch, TaskGroupError> {
    // Persistent volumes are the executor's: Mesos mounts them in its
    // sandbox, and the containers mount them from there.
    let (volumes, mut pool): (Vec<Resource>, Vec<Resource>) = allocation
        .resources
        .iter()
        .filter(|r| r.name != "ports")
        .cloned()
        .partition(is_persistent_volume);
    let ports_template = allocation.resources.iter().find(|r| r.name == "ports");
    let endpoints = pod.host_port_endpoints();
    // Each endpoint's port: the one allocated for it, else (container
    // networking) its container port.
    let port_of = |container: &str, name: &str| -> Option<u64> {
        endpoints
            .iter()
            .position(|e| e.container == container && e.endpoint.name == name)
            .and_then(|i| allocation.ports.get(i).copied())
            .or_else(|| {
                pod.containers
                    .iter()
                    .find(|c| c.name == container)?
                    .endpoints
                    .iter()
                    .find(|e| e.name == name)?
                    .container_port
                    .map(u64::from)
            })
    };
    let mut env: Vec<(String, String)> = pod
        .environment
        .iter()
        .filter_map(|(k, v)| match v {
            EnvValue::Value(v) => Some((k.clone(), v.clone())),
            EnvValue::Secret { .. } => None,
        })
        .collect();
    env.push(("MARATHON_APP_ID".into(), pod.id.to_string()));
    env.push(("MARATHON_APP_VERSION".into(), version.to_string()));
    env.push(("HOST".into(), offer.hostname.clone()));
    for container in &pod.containers {
        for endpoint in &container.endpoints {
            if let Some(port) = port_of(&container.name, &endpoint.name) {
                env.push((
                    format!("ENDPOINT_{}", env_name(&endpoint.name)),
                    port.to_string(),
                ));
            }
        }
    }

    let mut tasks = Vec::new();
    let mut containers = Vec::new();
    for container in &pod.containers {
        let mut resources = Vec::new();
        for (name, amount) in [
            ("cpus", container.resources.cpus),
            ("mem", container.resources.mem),
            ("disk", container.resources.disk),
            ("gpus", f64::from(container.resources.gpus)),
        ] {
            resources.extend(
                carve(&mut pool, name, amount).map_err(|_| TaskGroupError::Insufficient(name))?,
            );
        }
        let ports: Vec<u64> = endpoints
            .iter()
            .enumerate()
            .filter(|(_, e)| e.container == container.name)
            .filter_map(|(i, _)| allocation.ports.get(i).copied())
            .collect();
        if let (false, Some(template)) = (ports.is_empty(), ports_template) {
            resources.push(Resource {
                ranges: Some(v1::value::Ranges {
                    range: ports
                        .iter()
                        .map(|&p| v1::value::Range { begin: p, end: p })
                        .collect(),
                }),
                ..template.clone()
            });
        }
        let id = pod_task_id(instance_id, &container.name, incarnation);
        let mut task_env = env.clone();
        task_env.extend(container.environment.iter().filter_map(|(k, v)| match v {
            EnvValue::Value(v) => Some((k.clone(), v.clone())),
            EnvValue::Secret { .. } => None,
        }));
        task_env.push(("MESOS_TASK_ID".into(), id.clone()));
        tasks.push(TaskInfo {
            name: container.name.clone(),
            task_id: task_id(&id),
            agent_id: agent_id(offer.agent_id.value.clone()),
            resources,
            command: Some(command(container, task_env, pod.user.as_deref())?),
            container: Some(container_info(pod, container)),
            health_check: health_check(container, |e| port_of(&container.name, e)),
            kill_policy: container
                .lifecycle
                .as_ref()
                .and_then(|l| l.kill_grace_period_seconds)
                .map(|s| KillPolicy {
                    grace_period: Some(duration_info(Duration::from_secs_f64(s.max(0.0)))),
                }),
            labels: labels(&container.labels),
            ..Default::default()
        });
        containers.push(ContainerTask {
            name: container.name.clone(),
            task_id: id,
            condition: crate::state::instance::Condition::Provisioned,
            checked: container.health_check.is_some(),
            healthy: None,
            message: None,
        });
    }

    // What is left is the executor's.
    let share = pod.executor_resources;
    let mut executor_resources = volumes;
    for (name, amount) in [
        ("cpus", share.cpus),
        ("mem", share.mem),
        ("disk", share.disk),
    ] {
        executor_resources.extend(
            carve(&mut pool, name, amount).map_err(|_| TaskGroupError::Insufficient(name))?,
        );
    }
    let id = executor_id(format!("instance-{instance_id}.{incarnation}"));
    let executor = match choice {
        PodExecutor::Default => ExecutorInfo {
            r#type: Some(executor_info::Type::Default as i32),
            executor_id: id,
            framework_id: Some(framework_id(framework)),
            resources: executor_resources,
            container: Some(v1::ContainerInfo {
                r#type: v1::container_info::Type::Mesos as i32,
                ..Default::default()
            }),
            ..Default::default()
        },
        PodExecutor::Baton(settings) => baton_executor_info(
            id,
            framework,
            instance_id,
            settings,
            Vec::new(),
            executor_resources,
        ),
    };
    Ok(PodLaunch {
        executor,
        tasks,
        containers,
    })
}

fn is_persistent_volume(resource: &Resource) -> bool {
    resource
        .disk
        .as_ref()
        .is_some_and(|d| d.persistence.is_some())
}

/// `ENDPOINT_<NAME>`: upper case, non-alphanumerics as `_`.
fn env_name(name: &str) -> String {
    name.chars()
        .map(|c| {
            if c.is_ascii_alphanumeric() {
                c.to_ascii_uppercase()
            } else {
                '_'
            }
        })
        .collect()
}

fn command(
    container: &PodContainer,
    env: Vec<(String, String)>,
    pod_user: Option<&str>,
) -> Result<CommandInfo, TaskGroupError> {
    let exec = container
        .exec
        .as_ref()
        .ok_or_else(|| TaskGroupError::NoCommand(container.name.clone()))?;
    let (value, shell, arguments) = match &exec.command {
        PodCommand::Shell(shell) => (Some(shell.clone()), true, Vec::new()),
        PodCommand::Argv(argv) => (argv.first().cloned(), false, argv.clone()),
    };
    Ok(CommandInfo {
        value,
        shell: Some(shell),
        arguments,
        user: container.user.clone().or(pod_user.map(str::to_string)),
        uris: container
            .artifacts
            .iter()
            .map(|a| v1::command_info::Uri {
                value: a.uri.clone(),
                executable: Some(a.executable),
                extract: Some(a.extract),
                cache: Some(a.cache),
                output_file: a.dest_path.clone(),
            })
            .collect(),
        environment: Some(Environment {
            variables: env
                .into_iter()
                .map(|(name, value)| variable(name, value))
                .collect(),
        }),
    })
}

/// A container's ContainerInfo: a Mesos container with its mounts of the
/// pod's ephemeral volumes (shared through the executor's sandbox) and
/// host volumes, and its image if it has one.
fn container_info(pod: &PodDefinition, container: &PodContainer) -> v1::ContainerInfo {
    use v1::volume::{Mode, Source, source};
    let volumes = container
        .volume_mounts
        .iter()
        .filter_map(|mount| {
            let volume = pod.volumes.iter().find(|v| v.name() == mount.name)?;
            let mode = if mount.read_only { Mode::Ro } else { Mode::Rw } as i32;
            let in_executor_sandbox = |path: String| v1::Volume {
                mode,
                container_path: mount.mount_path.clone(),
                source: Some(Source {
                    r#type: Some(source::Type::SandboxPath as i32),
                    sandbox_path: Some(source::SandboxPath {
                        r#type: Some(source::sandbox_path::Type::Parent as i32),
                        path,
                    }),
                    ..Default::default()
                }),
                ..Default::default()
            };
            match volume {
                PodVolume::Ephemeral { name } => {
                    Some(in_executor_sandbox(format!("volumes/{name}")))
                }
                // Mounted in the executor's sandbox under its name
                // (`reservation::persistent_volumes`).
                PodVolume::Persistent { name, .. } => Some(in_executor_sandbox(name.clone())),
                PodVolume::Host { host, .. } => Some(v1::Volume {
                    mode,
                    container_path: mount.mount_path.clone(),
                    host_path: Some(host.clone()),
                    ..Default::default()
                }),
                // Refused when the pod is written (not supported yet).
                PodVolume::Secret { .. } => None,
            }
        })
        .collect();
    v1::ContainerInfo {
        r#type: v1::container_info::Type::Mesos as i32,
        volumes,
        mesos: container
            .image
            .as_ref()
            .map(|image| v1::container_info::MesosInfo {
                image: Some(v1::Image {
                    r#type: v1::image::Type::Docker as i32,
                    docker: Some(v1::image::Docker {
                        name: image.id.clone(),
                    }),
                    ..Default::default()
                }),
            }),
        ..Default::default()
    }
}

/// A container's health check as Mesos runs it: the executor kills the
/// container after `maxConsecutiveFailures`, and the group goes with it.
fn health_check(
    container: &PodContainer,
    port_of: impl Fn(&str) -> Option<u64>,
) -> Option<v1::HealthCheck> {
    use v1::health_check::{HttpCheckInfo, TcpCheckInfo, Type};
    let check = container.health_check.as_ref()?;
    let port = |endpoint: &str| port_of(endpoint).and_then(|p| u32::try_from(p).ok());
    let (r#type, http, tcp, command) = match &check.check {
        PodCheck::Http {
            endpoint,
            path,
            scheme,
        } => (
            Type::Http,
            Some(HttpCheckInfo {
                scheme: Some(
                    match scheme {
                        HttpScheme::Https => "https",
                        HttpScheme::Http => "http",
                    }
                    .into(),
                ),
                port: port(endpoint)?,
                path: Some(path.clone().unwrap_or_else(|| "/".into())),
                ..Default::default()
            }),
            None,
            None,
        ),
        PodCheck::Tcp { endpoint } => (
            Type::Tcp,
            None,
            Some(TcpCheckInfo {
                port: port(endpoint)?,
                ..Default::default()
            }),
            None,
        ),
        PodCheck::Exec(command) => {
            let (value, shell, arguments) = match command {
                PodCommand::Shell(s) => (Some(s.clone()), true, Vec::new()),
                PodCommand::Argv(argv) => (argv.first().cloned(), false, argv.clone()),
            };
            (
                Type::Command,
                None,
                None,
                Some(CommandInfo {
                    value,
                    shell: Some(shell),
                    arguments,
                    ..Default::default()
                }),
            )
        }
    };
    Some(v1::HealthCheck {
        r#type: Some(r#type as i32),
        http,
        tcp,
        command,
        delay_seconds: Some(f64::from(check.delay_seconds)),
        interval_seconds: Some(f64::from(check.interval_seconds)),
        timeout_seconds: Some(f64::from(check.timeout_seconds)),
        grace_period_seconds: Some(f64::from(check.grace_period_seconds)),
        consecutive_failures: Some(check.max_consecutive_failures),
    })
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::state::app::{AppDefaults, PathId};
    use mesos_proto::util::{ranges_resource, scalar_resource};

    fn pod() -> PodDefinition {
        PodDefinition::from_value(
            &serde_json::json!({
                "id": "/shop/web",
                "environment": {"TIER": "web"},
                "volumes": [{"name": "shared"}],
                "containers": [
                    {"name": "writer", "resources": {"cpus": 0.1, "mem": 32},
                     "exec": {"command": {"shell": "echo hi > out/index.html; sleep 600"}},
                     "volumeMounts": [{"name": "shared", "mountPath": "out"}]},
                    {"name": "server", "resources": {"cpus": 0.2, "mem": 64},
                     "exec": {"command": {"argv": ["python3", "-m", "http.server"]}},
                     "endpoints": [{"name": "http", "hostPort": 0}],
                     "healthCheck": {"http": {"endpoint": "http", "path": "/index.html"}},
                     "volumeMounts": [{"name": "shared", "mountPath": "www", "readOnly": true}]}
                ]
            }),
            &PathId::root(),
            &AppDefaults::default(),
        )
        .expect("a valid pod")
    }

    fn offer() -> v1::Offer {
        v1::Offer {
            agent_id: agent_id("S1"),
            hostname: "127.0.0.1".into(),
            ..Default::default()
        }
    }

    fn allocation() -> Allocation {
        Allocation {
            resources: vec![
                scalar_resource("cpus", 0.4),
                scalar_resource("mem", 128.0),
                scalar_resource("disk", 10.0),
                ranges_resource("ports", &[(31005, 31005)]),
            ],
            ports: vec![31005],
        }
    }

    fn scalar(resources: &[Resource], name: &str) -> f64 {
        resources
            .iter()
            .filter(|r| r.name == name)
            .filter_map(|r| r.scalar.as_ref())
            .map(|s| s.value)
            .sum()
    }

    #[test]
    fn a_resident_pods_volume_is_the_executors_and_mounted_from_its_sandbox() {
        let pod = PodDefinition::from_value(
            &serde_json::json!({
                "id": "/db",
                "role": "db",
                "volumes": [{"name": "data", "persistent": {"size": 20}}],
                "containers": [
                    {"name": "store", "resources": {"cpus": 0.1, "mem": 32, "disk": 5},
                     "exec": {"command": {"shell": "sleep 600"}},
                     "volumeMounts": [{"name": "data", "mountPath": "var/data"}]}
                ]
            }),
            &PathId::root(),
            &AppDefaults::default(),
        )
        .expect("a valid resident pod");
        let app = crate::state::app::AppDefinition::for_pod(pod.clone());
        assert!(app.is_resident());
        let volumes = super::super::reservation::persistent_volumes(&app);
        assert_eq!(volumes.len(), 1);
        assert_eq!(volumes[0].container_path, "data");
        // Containers, executor, and the volume's 20 MB: what placement asks.
        let allocation = Allocation {
            resources: vec![
                scalar_resource("cpus", 0.2),
                scalar_resource("mem", 64.0),
                scalar_resource("disk", 35.0),
            ],
            ports: Vec::new(),
        };
        let owner = super::super::reservation::Owner {
            framework_id: "fw",
            role: "db",
            principal: None,
            instance_id: "db.instance-u",
        };
        let reserved =
            super::super::reservation::reserve_and_create(&allocation, &volumes, &owner).unwrap();
        let launch = build_pod_launch(
            &pod,
            Timestamp::from_millis(1),
            "db.instance-u",
            1,
            "fw",
            &offer(),
            &Allocation {
                resources: reserved.task_resources,
                ports: Vec::new(),
            },
            PodExecutor::Default,
        )
        .unwrap();
        // The volume is among the executor's resources, whole, and no
        // container's disk was cut from it.
        let volume = launch
            .executor
            .resources
            .iter()
            .find(|r| is_persistent_volume(r))
            .expect("the executor holds the volume");
        assert_eq!(volume.scalar.as_ref().unwrap().value, 20.0);
        let disk = volume.disk.as_ref().unwrap();
        assert_eq!(disk.persistence.as_ref().unwrap().id, "db.instance-u#data");
        assert_eq!(disk.volume.as_ref().unwrap().container_path, "data");
        assert!(!launch.tasks[0].resources.iter().any(is_persistent_volume));
        assert_eq!(scalar(&launch.tasks[0].resources, "disk"), 5.0);
        // The container mounts it from the executor's sandbox.
        let mount = &launch.tasks[0].container.as_ref().unwrap().volumes[0];
        assert_eq!(mount.container_path, "var/data");
        let source = mount.source.as_ref().unwrap();
        assert_eq!(
            source.r#type,
            Some(v1::volume::source::Type::SandboxPath as i32)
        );
        assert_eq!(source.sandbox_path.as_ref().unwrap().path, "data");
    }

    #[test]
    fn the_allocation_is_cut_per_container_and_for_the_executor() {
        let launch = build_pod_launch(
            &pod(),
            Timestamp::from_millis(1),
            "shop_web.instance-u",
            1,
            "fw",
            &offer(),
            &allocation(),
            PodExecutor::Default,
        )
        .unwrap();
        let ids: Vec<&str> = launch
            .tasks
            .iter()
            .map(|t| t.task_id.value.as_str())
            .collect();
        assert_eq!(
            ids,
            [
                "shop_web.instance-u.writer.1",
                "shop_web.instance-u.server.1"
            ]
        );
        assert_eq!(scalar(&launch.tasks[0].resources, "cpus"), 0.1);
        assert_eq!(scalar(&launch.tasks[1].resources, "mem"), 64.0);
        assert_eq!(scalar(&launch.executor.resources, "cpus"), 0.1);
        assert_eq!(scalar(&launch.executor.resources, "mem"), 32.0);
        assert_eq!(
            launch.executor.r#type,
            Some(executor_info::Type::Default as i32)
        );
        assert!(launch.executor.command.is_none());
        // The server's port, its health check on it, and the environment.
        let ports = launch.tasks[1]
            .resources
            .iter()
            .find(|r| r.name == "ports")
            .unwrap();
        assert_eq!(ports.ranges.as_ref().unwrap().range[0].begin, 31005);
        let check = launch.tasks[1].health_check.as_ref().unwrap();
        assert_eq!(check.http.as_ref().unwrap().port, 31005);
        assert_eq!(check.consecutive_failures, Some(3));
        let env = &launch.tasks[0]
            .command
            .as_ref()
            .unwrap()
            .environment
            .as_ref()
            .unwrap()
            .variables;
        let var = |n: &str| {
            env.iter()
                .find(|v| v.name == n)
                .and_then(|v| v.value.clone())
        };
        assert_eq!(var("ENDPOINT_HTTP").as_deref(), Some("31005"));
        assert_eq!(var("TIER").as_deref(), Some("web"));
        assert_eq!(var("MARATHON_APP_ID").as_deref(), Some("/shop/web"));
        // The shared volume: the same sandbox path in both, read-only for one.
        let mounts: Vec<(String, i32, String)> = launch
            .tasks
            .iter()
            .flat_map(|t| t.container.as_ref().unwrap().volumes.iter())
            .map(|v| {
                (
                    v.container_path.clone(),
                    v.mode,
                    v.source
                        .as_ref()
                        .unwrap()
                        .sandbox_path
                        .as_ref()
                        .unwrap()
                        .path
                        .clone(),
                )
            })
            .collect();
        assert_eq!(
            mounts,
            [
                (
                    "out".into(),
                    v1::volume::Mode::Rw as i32,
                    "volumes/shared".into()
                ),
                (
                    "www".into(),
                    v1::volume::Mode::Ro as i32,
                    "volumes/shared".into()
                ),
            ]
        );
        assert!(launch.containers[1].checked && !launch.containers[0].checked);
    }

    #[test]
    fn too_small_an_allocation_is_refused() {
        let mut small = allocation();
        small.resources[1] = scalar_resource("mem", 64.0);
        let err = build_pod_launch(
            &pod(),
            Timestamp::from_millis(1),
            "i",
            1,
            "fw",
            &offer(),
            &small,
            PodExecutor::Default,
        )
        .unwrap_err();
        assert_eq!(err, TaskGroupError::Insufficient("mem"));
    }
}
