//! Building the `TaskInfo` Mesos launches for a placed task.

use std::time::Duration;

use mesos_proto::util::{agent_id, duration_info};
use mesos_proto::v1::{
    self, CommandInfo, Environment, KillPolicy, TaskInfo, environment::Variable,
};

use super::Allocation;

/// The `TaskInfo` for one instance of a Marathon app placed on `offer`:
/// Marathon's task naming and environment, so mesos-dns and apps written
/// for Marathon see what they expect.
///
/// - `name` is the app path reversed and dot-joined (`/shop/web` →
///   `web.shop`), the DNS name mesos-dns derives;
/// - the command is `cmd` through the shell, or `args` as argv;
/// - `fetch` entries become CommandInfo URIs;
/// - the environment is [`task_env`](crate::state::app::task_env);
/// - app labels become task labels; DiscoveryInfo names the ports;
/// - `taskKillGracePeriodSeconds` becomes the kill policy;
/// - a container becomes a ContainerInfo (Docker image, network, port
///   mappings, volumes; or a Mesos container with a Docker image).
///
/// The task is a command task: Mesos's command executor (in local mode
/// `baton-executor`) runs it.
pub fn build_app_task_info(
    app: &crate::state::app::AppDefinition,
    app_version: crate::state::app::Timestamp,
    task_id: &str,
    offer: &v1::Offer,
    allocation: &Allocation,
) -> TaskInfo {
    use crate::state::app::{NetworkMode, task_env};

    let env = task_env(
        app,
        app_version,
        &offer.hostname,
        &allocation.ports,
        task_id,
    );
    let (value, shell, arguments) = match (&app.cmd, app.args.is_empty()) {
        (Some(cmd), _) => (Some(cmd.clone()), true, Vec::new()),
        (None, false) => (app.args.first().cloned(), false, app.args.clone()),
        // A container with an entrypoint and no command.
        (None, true) => (None, false, Vec::new()),
    };
    let command = CommandInfo {
        value,
        shell: Some(shell),
        arguments,
        user: app.user.clone(),
        uris: app
            .fetch
            .iter()
            .map(|f| v1::command_info::Uri {
                value: f.uri.clone(),
                executable: Some(f.executable),
                extract: Some(f.extract),
                cache: Some(f.cache),
                output_file: f.dest_path.clone(),
            })
            .collect(),
        environment: Some(Environment {
            variables: env
                .into_iter()
                .map(|(name, value)| variable(name, value))
                .collect(),
        }),
    };
    let labels = labels(&app.labels);
    let mut host_ports = allocation.ports.iter().copied();
    let discovery_ports = app
        .declared_ports()
        .iter()
        .filter_map(|d| {
            let number = match d.host_port {
                Some(_) => host_ports.next()?,
                None => u64::from(d.port),
            };
            Some(v1::Port {
                number: u32::try_from(number).ok()?,
                name: d.name.map(str::to_string),
                protocol: Some(d.protocol.split(',').next().unwrap_or("tcp").to_string()),
                visibility: None,
                labels: None,
            })
        })
        .collect();
    let network_mode = app.networks.first().map_or(NetworkMode::Host, |n| n.mode);
    TaskInfo {
        name: app.id.hostname(),
        task_id: mesos_proto::util::task_id(task_id),
        agent_id: agent_id(offer.agent_id.value.clone()),
        resources: allocation.resources.clone(),
        command: Some(command),
        container: app
            .container
            .as_ref()
            .map(|c| container_info(c, network_mode, &allocation.ports)),
        labels,
        discovery: Some(v1::DiscoveryInfo {
            visibility: v1::discovery_info::Visibility::Framework as i32,
            name: Some(app.id.hostname()),
            ports: Some(v1::Ports {
                ports: discovery_ports,
            }),
            ..Default::default()
        }),
        kill_policy: app.task_kill_grace_period_seconds.map(|s| KillPolicy {
            grace_period: Some(duration_info(Duration::from_secs(u64::from(s)))),
        }),
        health_check: mesos_health_check(app, &allocation.ports),
        ..Default::default()
    }
}

/// The first Mesos-level health check of `app` (COMMAND, MESOS_HTTP(S),
/// MESOS_TCP) as the executor runs it; Mesos allows one per task.
///
/// `consecutive_failures` is set out of reach: the executor reports every
/// failure and Baton decides the kill, so that a replacement can start
/// first and kills can be rate-limited (README, "Health checks").
fn mesos_health_check(
    app: &crate::state::app::AppDefinition,
    host_ports: &[u64],
) -> Option<v1::HealthCheck> {
    use crate::state::app::HealthCheckProtocol as P;
    use v1::health_check::{HttpCheckInfo, TcpCheckInfo, Type};

    let check = app.health_checks.iter().find(|c| c.protocol.is_mesos())?;
    let port = || crate::state::app::ports::port_of(app, check, host_ports).map(u32::from);
    let (r#type, http, tcp, command) = match check.protocol {
        P::Command => (
            Type::Command,
            None,
            None,
            check.command.as_ref().map(|c| CommandInfo {
                value: Some(c.value.clone()),
                shell: Some(true),
                ..Default::default()
            }),
        ),
        P::MesosHttp | P::MesosHttps => (
            Type::Http,
            Some(HttpCheckInfo {
                scheme: Some(
                    if check.protocol == P::MesosHttps {
                        "https"
                    } else {
                        "http"
                    }
                    .into(),
                ),
                port: port()?,
                path: Some(check.path.clone().unwrap_or_else(|| "/".into())),
                ..Default::default()
            }),
            None,
            None,
        ),
        P::MesosTcp => (
            Type::Tcp,
            None,
            Some(TcpCheckInfo {
                port: port()?,
                ..Default::default()
            }),
            None,
        ),
        P::Http | P::Https | P::Tcp => return None,
    };
    Some(v1::HealthCheck {
        r#type: Some(r#type as i32),
        http,
        tcp,
        command,
        delay_seconds: Some(f64::from(check.delay_seconds)),
        interval_seconds: Some(f64::from(check.interval_seconds)),
        timeout_seconds: Some(f64::from(check.timeout_seconds)),
        // As Marathon passes it (Mesos counts the delay inside the grace).
        grace_period_seconds: Some(f64::from(check.grace_period_seconds)),
        consecutive_failures: Some(u32::MAX),
    })
}

/// Labels as Mesos carries them; `None` when there are none.
pub(crate) fn labels(labels: &crate::state::app::Labels) -> Option<v1::Labels> {
    (!labels.is_empty()).then(|| v1::Labels {
        labels: labels
            .iter()
            .map(|(k, v)| v1::Label {
                key: k.to_string(),
                value: Some(v.to_string()),
            })
            .collect(),
    })
}

/// A VALUE environment variable.
pub(crate) fn variable(name: String, value: String) -> Variable {
    Variable {
        name,
        value: Some(value),
        r#type: Some(v1::environment::variable::Type::Value as i32),
    }
}

fn container_info(
    container: &crate::state::app::Container,
    network: crate::state::app::NetworkMode,
    host_ports: &[u64],
) -> v1::ContainerInfo {
    use crate::state::app::{ContainerType, NetworkMode, VolumeMode};
    use v1::container_info::{DockerInfo, MesosInfo, Type, docker_info};

    let volumes = container
        .volumes
        .iter()
        .filter(|v| v.persistent.is_none() && v.external.is_none() && v.secret.is_none())
        .map(|v| v1::Volume {
            container_path: v.container_path.clone(),
            host_path: v.host_path.clone(),
            mode: match v.mode {
                Some(VolumeMode::ReadOnly) => v1::volume::Mode::Ro as i32,
                _ => v1::volume::Mode::Rw as i32,
            },
            image: None,
            source: None,
        })
        .collect();
    let image = container.docker.as_ref().map(|d| d.image.clone());
    match container.kind {
        ContainerType::Docker => {
            let mut ports = host_ports.iter().copied();
            let port_mappings = if network == NetworkMode::ContainerBridge {
                container
                    .port_mappings
                    .iter()
                    .filter(|m| m.host_port.is_some())
                    .filter_map(|m| {
                        Some(docker_info::PortMapping {
                            host_port: u32::try_from(ports.next()?).ok()?,
                            container_port: u32::from(m.container_port),
                            protocol: Some(m.protocol.clone()),
                        })
                    })
                    .collect()
            } else {
                Vec::new()
            };
            let docker = container.docker.as_ref();
            v1::ContainerInfo {
                r#type: Type::Docker as i32,
                volumes,
                docker: Some(DockerInfo {
                    image: image.unwrap_or_default(),
                    network: Some(match network {
                        NetworkMode::Host => docker_info::Network::Host,
                        NetworkMode::ContainerBridge => docker_info::Network::Bridge,
                        NetworkMode::Container => docker_info::Network::User,
                    } as i32),
                    port_mappings,
                    privileged: docker.map(|d| d.privileged),
                    parameters: docker
                        .map(|d| {
                            d.parameters
                                .iter()
                                .map(|p| v1::Parameter {
                                    key: p.key.clone(),
                                    value: p.value.clone(),
                                })
                                .collect()
                        })
                        .unwrap_or_default(),
                    force_pull_image: docker.map(|d| d.force_pull_image),
                }),
                ..Default::default()
            }
        }
        ContainerType::Mesos => v1::ContainerInfo {
            r#type: Type::Mesos as i32,
            volumes,
            mesos: Some(MesosInfo {
                image: image.map(|name| v1::Image {
                    r#type: v1::image::Type::Docker as i32,
                    docker: Some(v1::image::Docker { name }),
                    cached: None,
                }),
            }),
            ..Default::default()
        },
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::state::app::{AppDefaults, AppDefinition, PathId, Timestamp};
    use mesos_proto::util::{framework_id, offer_id, scalar_resource};

    fn offer() -> v1::Offer {
        v1::Offer {
            id: offer_id("o"),
            framework_id: framework_id("f"),
            agent_id: agent_id("agent-S2"),
            hostname: "127.0.0.2".into(),
            resources: vec![scalar_resource("cpus", 4.0)],
            ..Default::default()
        }
    }

    fn app(json: serde_json::Value) -> AppDefinition {
        AppDefinition::from_value(&json, &PathId::root(), &AppDefaults::default())
            .unwrap()
            .with_version(Timestamp::from_millis(5_000), false)
    }

    fn env_of(info: &TaskInfo) -> std::collections::BTreeMap<String, String> {
        info.command
            .as_ref()
            .and_then(|c| c.environment.as_ref())
            .map(|e| {
                e.variables
                    .iter()
                    .map(|v| (v.name.clone(), v.value.clone().unwrap_or_default()))
                    .collect()
            })
            .unwrap_or_default()
    }

    #[test]
    fn app_task_has_marathons_name_env_labels_and_discovery() {
        let a = app(serde_json::json!({
            "id": "/shop/web", "cmd": "python3 -m http.server $PORT0", "labels": {"team": "a"},
            "portDefinitions": [{"port": 0, "name": "http"}], "taskKillGracePeriodSeconds": 7,
            "fetch": [{"uri": "http://127.0.0.1/x.tgz"}]
        }));
        let allocation = Allocation {
            resources: vec![scalar_resource("cpus", 1.0)],
            ports: vec![31005],
        };
        let info = build_app_task_info(
            &a,
            a.version.unwrap(),
            "shop_web.instance-1._app.1",
            &offer(),
            &allocation,
        );
        assert_eq!(
            info.name, "web.shop",
            "mesos-dns name: the app path reversed"
        );
        assert_eq!(info.agent_id.value, "agent-S2");
        let command = info.command.as_ref().unwrap();
        assert_eq!(
            command.value.as_deref(),
            Some("python3 -m http.server $PORT0")
        );
        assert_eq!(command.shell, Some(true));
        assert_eq!(command.uris[0].value, "http://127.0.0.1/x.tgz");
        let env = env_of(&info);
        assert_eq!(env["PORT0"], "31005");
        assert_eq!(env["PORT_HTTP"], "31005");
        assert_eq!(env["HOST"], "127.0.0.2");
        assert_eq!(env["MARATHON_APP_ID"], "/shop/web");
        assert_eq!(env["MESOS_TASK_ID"], "shop_web.instance-1._app.1");
        assert_eq!(info.labels.as_ref().unwrap().labels[0].key, "team");
        let discovery = info.discovery.as_ref().unwrap();
        assert_eq!(discovery.name.as_deref(), Some("web.shop"));
        let port = &discovery.ports.as_ref().unwrap().ports[0];
        assert_eq!(
            (port.number, port.name.as_deref(), port.protocol.as_deref()),
            (31005, Some("http"), Some("tcp"))
        );
        assert_eq!(
            info.kill_policy.unwrap().grace_period.unwrap().nanoseconds,
            7_000_000_000
        );
        assert!(info.container.is_none() && info.executor.is_none());
    }

    #[test]
    fn args_run_without_a_shell_and_docker_bridge_maps_host_ports() {
        let a = app(serde_json::json!({
            "id": "/web", "args": ["nginx", "-g", "daemon off;"],
            "networks": [{"mode": "container/bridge"}],
            "container": {"type": "DOCKER", "docker": {"image": "nginx:1.25"},
                          "portMappings": [{"containerPort": 80, "hostPort": 0, "name": "http"}]}
        }));
        let allocation = Allocation {
            resources: vec![],
            ports: vec![31010],
        };
        let info = build_app_task_info(
            &a,
            a.version.unwrap(),
            "web.instance-1._app.1",
            &offer(),
            &allocation,
        );
        let command = info.command.as_ref().unwrap();
        assert_eq!(command.shell, Some(false));
        assert_eq!(command.arguments, vec!["nginx", "-g", "daemon off;"]);
        let docker = info.container.as_ref().unwrap().docker.as_ref().unwrap();
        assert_eq!(docker.image, "nginx:1.25");
        assert_eq!(
            docker.network,
            Some(v1::container_info::docker_info::Network::Bridge as i32)
        );
        assert_eq!(
            (
                docker.port_mappings[0].host_port,
                docker.port_mappings[0].container_port
            ),
            (31010, 80)
        );
        assert_eq!(env_of(&info)["PORT_HTTP"], "31010");
    }
}
