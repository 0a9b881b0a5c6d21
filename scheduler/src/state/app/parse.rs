//! Reading an app from a JSON value: type checks with play-json's error
//! codes, Marathon's defaults, and the translation of deprecated fields
//! (`api/v2/AppNormalization.scala`). Nothing here stops at the first
//! problem: every one is collected with its path, then reported at once.

use std::collections::BTreeMap;

use serde_json::Value;

use super::json::{Obj, Problems, as_int, as_number, as_port, as_string};
use super::validate;
use super::{
    AppDefaults, AppDefinition, AppError, CommandCheck, Container, ContainerType, Docker,
    DockerParameter, EnvValue, ExecutorResources, FetchUri, HealthCheck, HealthCheckProtocol,
    IpProtocol, KillSelection, Labels, Network, NetworkMode, PathId, PortDefinition, PortMapping,
    ReadinessCheck, ReadinessProtocol, ResourceLimit, ResourceLimits, Secret, UnreachableStrategy,
    UpgradeStrategy, VersionInfo, Volume, VolumeMode,
};

/// How strictly to read.
#[derive(Debug, Clone, Copy)]
pub(super) struct Options {
    /// Apply the semantic rules of `validate.rs` (off for stored apps).
    pub validate: bool,
    /// The port definitions come from the stored app, not from the
    /// request: when the new networking makes them moot, drop them instead
    /// of refusing the app.
    pub inherited_port_definitions: bool,
    /// The same for `container.portMappings` under host networking.
    pub inherited_port_mappings: bool,
}

impl Options {
    /// A request body.
    pub const VALIDATE: Options = Options {
        validate: true,
        inherited_port_definitions: false,
        inherited_port_mappings: false,
    };
    /// A stored app.
    pub const STORED: Options = Options {
        validate: false,
        inherited_port_definitions: true,
        inherited_port_mappings: true,
    };
}

/// Reads, normalizes and (with `opts.validate`) validates an app.
pub(super) fn read_app(
    value: &Value,
    base: &PathId,
    defaults: &AppDefaults,
    opts: Options,
) -> Result<AppDefinition, AppError> {
    let mut problems = Problems::default();
    let p = &mut problems;
    let Some(o) = Obj::new(value, String::new(), p) else {
        return problems.finish(AppDefinition::new(PathId::root(), defaults));
    };

    let id = o
        .require("id", p)
        .and_then(|v| as_string(v, "/id", p))
        .and_then(|s| match PathId::parse_app(&s, base) {
            Ok(id) => Some(id),
            Err(e) => {
                p.invalid("/id", e.to_string());
                None
            }
        });
    let mut app = AppDefinition::new(id.unwrap_or_else(PathId::root), defaults);

    app.cmd = o.string("cmd", p);
    app.args = o.strings("args", p).unwrap_or_default();
    app.user = o.string("user", p);
    app.env = read_env(&o, p);
    app.secrets = read_secrets(&o, p);
    if let Some(n) = o.u32("instances", p) {
        if opts.validate && n > defaults.max_instances_per_app {
            p.invalid(
                "/instances",
                super::too_many_instances(n.into(), defaults.max_instances_per_app),
            );
        }
        app.instances = n;
    }
    if let Some(n) = o.number("cpus", p) {
        app.cpus = n;
    }
    if let Some(n) = o.number("mem", p) {
        app.mem = n;
    }
    if let Some(n) = o.number("disk", p) {
        app.disk = n;
    }
    if let Some(n) = o.u32("gpus", p) {
        app.gpus = n;
    }
    if let Some(s) = o.string("executor", p) {
        app.executor = s;
    }
    app.constraints = o
        .list("constraints", p, |v, path, p| {
            Obj::list_value(v, path, p, as_string)
        })
        .unwrap_or_default();
    app.accepted_resource_roles = o.strings("acceptedResourceRoles", p);
    if let Some(role) = o.string("role", p) {
        if opts.validate
            && !defaults.allowed_roles.is_empty()
            && !defaults.allowed_roles.contains(&role)
        {
            p.invalid(
                "/role",
                format!(
                    "got '{role}', expected one of the framework's roles: {} (--mesos_role)",
                    defaults.allowed_roles.join(", ")
                ),
            );
        }
        app.role = role;
    }
    if let Some(b) = o.bool("requirePorts", p) {
        app.require_ports = b;
    }
    app.labels = o.string_map("labels", p).unwrap_or_default().into();
    app.dependencies = o
        .list("dependencies", p, |v, path, p| {
            let s = as_string(v, path, p)?;
            PathId::parse(&s, base)
                .map_err(|e| p.invalid(path, e.to_string()))
                .ok()
        })
        .unwrap_or_default();
    if let Some(us) = o.obj("upgradeStrategy", p) {
        let mut strategy = UpgradeStrategy::DEFAULT;
        if let Some(n) = us.number("minimumHealthCapacity", p) {
            strategy.minimum_health_capacity = n;
        }
        if let Some(n) = us.number("maximumOverCapacity", p) {
            strategy.maximum_over_capacity = n;
        }
        app.upgrade_strategy = strategy;
    }
    if let Some(n) = o.u32("backoffSeconds", p) {
        app.backoff_seconds = n;
    }
    if let Some(n) = o.number("backoffFactor", p) {
        app.backoff_factor = n;
    }
    if let Some(n) = o.u32("maxLaunchDelaySeconds", p) {
        app.max_launch_delay_seconds = n;
    }
    app.task_kill_grace_period_seconds = o.u32("taskKillGracePeriodSeconds", p);
    if let Some(k) = o.enumeration("killSelection", p, |s| match s {
        "YOUNGEST_FIRST" => Some(KillSelection::YoungestFirst),
        "OLDEST_FIRST" => Some(KillSelection::OldestFirst),
        _ => None,
    }) {
        app.kill_selection = k;
    }
    let unreachable = read_unreachable(&o, p);
    app.check = o.raw_object("check", p);
    app.tty = o.bool("tty", p);
    app.resource_limits = read_resource_limits(&o, p);
    app.executor_resources = o.obj("executorResources", p).map(|er| ExecutorResources {
        cpus: er.number("cpus", p).unwrap_or(0.1),
        mem: er.number("mem", p).unwrap_or(32.0),
        disk: er.number("disk", p).unwrap_or(10.0),
    });
    app.version = o.timestamp("version", p);
    app.version_info = o.obj("versionInfo", p).and_then(|vi| {
        let last_scaling_at = vi.timestamp("lastScalingAt", p);
        let last_config_change_at = vi.timestamp("lastConfigChangeAt", p);
        Some(VersionInfo {
            last_scaling_at: last_scaling_at?,
            last_config_change_at: last_config_change_at?,
        })
    });
    app.health_checks = o
        .list("healthChecks", p, read_health_check)
        .unwrap_or_default();
    app.readiness_checks = o
        .list("readinessChecks", p, read_readiness_check)
        .unwrap_or_default();

    // Deprecated `uris` → `fetch`.
    let fetch = o.list("fetch", p, read_fetch);
    let uris = o.strings("uris", p);
    app.fetch = match (fetch, uris) {
        (Some(fetch), Some(uris)) if !fetch.is_empty() && !uris.is_empty() => {
            if !fetch.iter().map(|f| &f.uri).eq(uris.iter()) {
                p.invalid("/uris", "may not be set in conjunction with fetch");
            }
            fetch
        }
        (Some(fetch), uris) if !fetch.is_empty() || uris.is_none() => fetch,
        (_, Some(uris)) => uris.iter().map(|u| FetchUri::from_uri(u)).collect(),
        (fetch, None) => fetch.unwrap_or_default(),
    };

    // Deprecated `ports` → `portDefinitions`.
    let port_definitions = o.list("portDefinitions", p, read_port_definition);
    let ports = o.list("ports", p, as_port);
    let port_definitions = match (port_definitions, ports) {
        (Some(defs), Some(ports)) if !defs.is_empty() && !ports.is_empty() => {
            if !defs.iter().map(|d| d.port).eq(ports.iter().copied()) {
                p.invalid("/", "cannot specify both ports and port definitions");
            }
            Some(defs)
        }
        (Some(defs), ports) if !defs.is_empty() || ports.is_none() => Some(defs),
        (_, Some(ports)) => Some(
            ports
                .into_iter()
                .map(|port| PortDefinition {
                    port,
                    protocol: "tcp".into(),
                    name: None,
                    labels: Labels::new(),
                })
                .collect(),
        ),
        (defs, None) => defs,
    };

    // Networks, from the canonical field or the deprecated `ipAddress` and
    // `container.docker.network`.
    let raw_container = o.obj("container", p).map(|c| read_container(&c, p));
    let ip_address = o.obj("ipAddress", p).map(|ip| read_ip_address(&ip, p));
    let networks = o
        .list("networks", p, read_network)
        .filter(|n| !n.is_empty());
    let docker_network = raw_container
        .as_ref()
        .and_then(|c| c.docker_network.as_deref());
    app.networks = translate_networks(ip_address.as_ref(), docker_network, networks, defaults, p)
        .unwrap_or_else(|| vec![Network::host()]);
    let host_networking = app.is_host_networking();
    let bridge = app
        .networks
        .iter()
        .any(|n| n.mode == NetworkMode::ContainerBridge);

    // The container: docker.portMappings and ipAddress.discovery moved to
    // container.portMappings; an implicit MESOS container for ipAddress or
    // non-host networks.
    let mut container = raw_container.map(|raw| {
        let mut c = raw.container;
        match (c.port_mappings.is_empty(), raw.docker_port_mappings) {
            (false, Some(docker)) if !docker.is_empty() => p.invalid(
                "/container",
                "cannot specify both portMappings and docker.portMappings",
            ),
            (true, Some(docker)) => c.port_mappings = docker,
            _ => {}
        }
        (c, raw.port_mappings_given)
    });
    if container.is_none() && (ip_address.is_some() || !host_networking) {
        container = Some((
            Container {
                kind: ContainerType::Mesos,
                docker: None,
                volumes: Vec::new(),
                port_mappings: Vec::new(),
                linux_info: None,
            },
            false,
        ));
    }
    let discovery = ip_address
        .as_ref()
        .map(|ip| &ip.discovery_ports)
        .filter(|ports| !ports.is_empty());
    if let (Some(discovery), Some((c, given))) = (discovery, container.as_mut()) {
        if c.kind == ContainerType::Docker {
            p.invalid(
                "/ipAddress",
                "ipAddress/discovery is not allowed for Docker containers",
            );
        } else if !c.port_mappings.is_empty() {
            p.invalid(
                "/",
                "container.portMappings and ipAddress.discovery.ports must not both be set",
            );
        } else {
            c.port_mappings = discovery.clone();
            *given = true;
        }
    }
    app.container = container.map(|(mut c, given)| {
        if host_networking {
            if !c.port_mappings.is_empty() && !opts.inherited_port_mappings {
                p.invalid("/", "portMappings are not allowed with host-networking");
            }
            c.port_mappings.clear();
        } else if c.port_mappings.is_empty() && !given {
            c.port_mappings = vec![PortMapping::default_mapping()];
        }
        if bridge {
            for m in &mut c.port_mappings {
                m.host_port.get_or_insert(0);
            }
        }
        Box::new(c)
    });

    // Port definitions: host networking only; one `default` port unless
    // given. Under other networking, bare port numbers (the service ports
    // Marathon before 1.5 wrote next to docker port mappings, and that
    // clients such as marathon-lb's zdd.py send back) are dropped as
    // Marathon does; named or labelled definitions are refused.
    app.port_definitions = match port_definitions {
        Some(defs) if host_networking => defs,
        None if host_networking => vec![PortDefinition::default_definition()],
        Some(defs) => {
            let bare = defs.iter().all(|d| d.name.is_none() && d.labels.is_empty());
            if !bare && !opts.inherited_port_definitions {
                p.invalid("/", "portDefinitions are only allowed with host-networking");
            }
            Vec::new()
        }
        None => Vec::new(),
    };
    if !host_networking {
        app.require_ports = false;
    }

    // Health checks address port 0 unless told otherwise.
    let has_ports = !app.declared_ports().is_empty();
    for check in &mut app.health_checks {
        if check.protocol != HealthCheckProtocol::Command
            && check.port.is_none()
            && check.port_index.is_none()
            && has_ports
        {
            check.port_index = Some(0);
        }
    }

    // Resident apps (persistent volumes) have their own defaults.
    let resident = app.is_resident();
    if resident && !o.has("upgradeStrategy") {
        app.upgrade_strategy = UpgradeStrategy::RESIDENT;
    }
    app.unreachable_strategy = unreachable.unwrap_or(if resident {
        UnreachableStrategy::Disabled
    } else {
        UnreachableStrategy::DEFAULT
    });

    if opts.validate {
        validate::validate(&app, p);
    }
    problems.finish(app)
}

fn read_env(o: &Obj<'_>, p: &mut Problems) -> BTreeMap<String, EnvValue> {
    let Some(env) = o.obj("env", p) else {
        return BTreeMap::new();
    };
    let mut out = BTreeMap::new();
    for (key, v) in env.map {
        let path = env.path(key);
        let value = match v {
            Value::String(s) => EnvValue::Value(s.clone()),
            Value::Object(secret) => match secret.get("secret") {
                Some(Value::String(name)) => EnvValue::Secret {
                    secret: name.clone(),
                },
                Some(_) => {
                    p.wrong_type(&format!("{path}/secret"), "error.expected.jsstring");
                    continue;
                }
                None => {
                    p.wrong_type(&format!("{path}/secret"), "error.path.missing");
                    continue;
                }
            },
            _ => {
                p.wrong_type(&path, "error.expected.jsstring");
                continue;
            }
        };
        out.insert(key.clone(), value);
    }
    out
}

fn read_secrets(o: &Obj<'_>, p: &mut Problems) -> BTreeMap<String, Secret> {
    let Some(secrets) = o.obj("secrets", p) else {
        return BTreeMap::new();
    };
    secrets
        .map
        .iter()
        .filter_map(|(name, v)| {
            let s = Obj::new(v, secrets.path(name), p)?;
            let source = as_string(s.require("source", p)?, &s.path("source"), p)?;
            Some((name.clone(), Secret { source }))
        })
        .collect()
}

/// `unreachableStrategy`: `"disabled"` or `{inactiveAfterSeconds,
/// expungeAfterSeconds}` (pods read it the same way).
pub(crate) fn read_unreachable(o: &Obj<'_>, p: &mut Problems) -> Option<UnreachableStrategy> {
    let path = o.path("unreachableStrategy");
    match o.get("unreachableStrategy")? {
        Value::String(s) if s == "disabled" => Some(UnreachableStrategy::Disabled),
        Value::String(_) => {
            p.wrong_type(&path, "error.unknown.enum.literal");
            None
        }
        v => {
            let us = Obj::new(v, path, p)?;
            Some(UnreachableStrategy::Enabled {
                inactive_after_seconds: us.u64("inactiveAfterSeconds", p).unwrap_or(0),
                expunge_after_seconds: us.u64("expungeAfterSeconds", p).unwrap_or(0),
            })
        }
    }
}

/// `resourceLimits`: `{cpus, mem}`, each a number or `"unlimited"` (pods
/// read it the same way).
pub(crate) fn read_resource_limits(o: &Obj<'_>, p: &mut Problems) -> Option<ResourceLimits> {
    let rl = o.obj("resourceLimits", p)?;
    let limit = |key: &str, p: &mut Problems| -> Option<ResourceLimit> {
        match rl.get(key)? {
            Value::String(s) if s == "unlimited" => Some(ResourceLimit::Unlimited),
            Value::String(s) => {
                p.invalid(
                    &rl.path(key),
                    format!(
                        "'{s}' is an invalid resource limit. It must be 'unlimited' or a number"
                    ),
                );
                None
            }
            v => as_number(v, &rl.path(key), p).map(ResourceLimit::Value),
        }
    };
    Some(ResourceLimits {
        cpus: limit("cpus", p),
        mem: limit("mem", p),
    })
}

fn read_labels_at(o: &Obj<'_>, p: &mut Problems) -> Labels {
    o.string_map("labels", p).unwrap_or_default().into()
}

fn read_protocol(o: &Obj<'_>, p: &mut Problems) -> String {
    o.string("protocol", p).unwrap_or_else(|| "tcp".into())
}

fn read_port_definition(v: &Value, path: &str, p: &mut Problems) -> Option<PortDefinition> {
    let o = Obj::new(v, path.to_string(), p)?;
    Some(PortDefinition {
        port: o.port("port", p).unwrap_or(0),
        protocol: read_protocol(&o, p),
        name: o.string("name", p),
        labels: read_labels_at(&o, p),
    })
}

fn read_port_mapping(v: &Value, path: &str, p: &mut Problems) -> Option<PortMapping> {
    let o = Obj::new(v, path.to_string(), p)?;
    Some(PortMapping {
        container_port: o.port("containerPort", p).unwrap_or(0),
        host_port: o.port("hostPort", p),
        service_port: o.port("servicePort", p).unwrap_or(0),
        protocol: read_protocol(&o, p),
        name: o.string("name", p),
        labels: read_labels_at(&o, p),
        network_names: o.strings("networkNames", p).unwrap_or_default(),
    })
}

fn read_network(v: &Value, path: &str, p: &mut Problems) -> Option<Network> {
    let o = Obj::new(v, path.to_string(), p)?;
    Some(Network {
        mode: o
            .enumeration("mode", p, |s| match s {
                "host" => Some(NetworkMode::Host),
                "container" => Some(NetworkMode::Container),
                "container/bridge" => Some(NetworkMode::ContainerBridge),
                _ => None,
            })
            .unwrap_or(NetworkMode::Container),
        name: o.string("name", p),
        labels: read_labels_at(&o, p),
    })
}

fn read_fetch(v: &Value, path: &str, p: &mut Problems) -> Option<FetchUri> {
    let o = Obj::new(v, path.to_string(), p)?;
    let uri = as_string(o.require("uri", p)?, &o.path("uri"), p)?;
    Some(FetchUri {
        uri,
        extract: o.bool("extract", p).unwrap_or(true),
        executable: o.bool("executable", p).unwrap_or(false),
        cache: o.bool("cache", p).unwrap_or(false),
        dest_path: o.string("destPath", p),
    })
}

fn read_health_check(v: &Value, path: &str, p: &mut Problems) -> Option<HealthCheck> {
    let o = Obj::new(v, path.to_string(), p)?;
    let command = o.obj("command", p).and_then(|c| {
        let value = as_string(c.require("value", p)?, &c.path("value"), p)?;
        Some(CommandCheck { value })
    });
    let protocol = o.enumeration("protocol", p, |s| match s {
        "HTTP" => Some(HealthCheckProtocol::Http),
        "HTTPS" => Some(HealthCheckProtocol::Https),
        "TCP" => Some(HealthCheckProtocol::Tcp),
        "COMMAND" => Some(HealthCheckProtocol::Command),
        "MESOS_HTTP" => Some(HealthCheckProtocol::MesosHttp),
        "MESOS_HTTPS" => Some(HealthCheckProtocol::MesosHttps),
        "MESOS_TCP" => Some(HealthCheckProtocol::MesosTcp),
        _ => None,
    });
    // A `command` makes it a COMMAND check whatever the protocol says.
    let protocol = if command.is_some() {
        HealthCheckProtocol::Command
    } else {
        protocol.unwrap_or(HealthCheckProtocol::Http)
    };
    let path_value = o.string("path", p);
    Some(HealthCheck {
        protocol,
        path: if protocol.is_http() {
            path_value.or_else(|| Some("/".into()))
        } else {
            path_value
        },
        port_index: o.u32("portIndex", p),
        port: o.port("port", p),
        command,
        ignore_http1xx: o.bool("ignoreHttp1xx", p),
        grace_period_seconds: o.u32("gracePeriodSeconds", p).unwrap_or(300),
        interval_seconds: o.u32("intervalSeconds", p).unwrap_or(60),
        timeout_seconds: o.u32("timeoutSeconds", p).unwrap_or(20),
        max_consecutive_failures: o.u32("maxConsecutiveFailures", p).unwrap_or(3),
        delay_seconds: o.u32("delaySeconds", p).unwrap_or(15),
        ip_protocol: o
            .enumeration("ipProtocol", p, |s| match s {
                "IPv4" => Some(IpProtocol::V4),
                "IPv6" => Some(IpProtocol::V6),
                _ => None,
            })
            .unwrap_or(IpProtocol::V4),
    })
}

fn read_readiness_check(v: &Value, path: &str, p: &mut Problems) -> Option<ReadinessCheck> {
    let o = Obj::new(v, path.to_string(), p)?;
    let codes = o.list("httpStatusCodesForReady", p, |v, path, p| {
        as_int(v, path, p, 100, 999).and_then(|i| u16::try_from(i).ok())
    });
    Some(ReadinessCheck {
        name: o
            .string("name", p)
            .unwrap_or_else(|| "readinessCheck".into()),
        protocol: o
            .enumeration("protocol", p, |s| match s {
                "HTTP" => Some(ReadinessProtocol::Http),
                "HTTPS" => Some(ReadinessProtocol::Https),
                _ => None,
            })
            .unwrap_or(ReadinessProtocol::Http),
        path: o.string("path", p).unwrap_or_else(|| "/".into()),
        port_name: o.string("portName", p).unwrap_or_else(|| "http-api".into()),
        interval_seconds: o.u32("intervalSeconds", p).unwrap_or(30),
        timeout_seconds: o.u32("timeoutSeconds", p).unwrap_or(10),
        http_status_codes_for_ready: codes.filter(|c| !c.is_empty()).unwrap_or_else(|| vec![200]),
        preserve_last_response: o.bool("preserveLastResponse", p).unwrap_or(false),
    })
}

/// A container as given, with its deprecated parts still apart.
struct RawContainer {
    container: Container,
    /// `docker.network`: BRIDGE, HOST, NONE or USER.
    docker_network: Option<String>,
    /// `docker.portMappings`.
    docker_port_mappings: Option<Vec<PortMapping>>,
    /// Whether `portMappings` was given (an explicit `[]` stays empty).
    port_mappings_given: bool,
}

fn read_container(o: &Obj<'_>, p: &mut Problems) -> RawContainer {
    let kind = o
        .enumeration("type", p, |s| match s {
            "DOCKER" => Some(ContainerType::Docker),
            "MESOS" => Some(ContainerType::Mesos),
            _ => None,
        })
        .unwrap_or(ContainerType::Docker);
    let mut docker_network = None;
    let mut docker_port_mappings = None;
    let docker = o.obj("docker", p).map(|d| {
        docker_network = d.enumeration("network", p, |s| {
            ["BRIDGE", "HOST", "NONE", "USER"]
                .contains(&s)
                .then(|| s.to_string())
        });
        docker_port_mappings = d.list("portMappings", p, read_port_mapping);
        let image = d
            .require("image", p)
            .and_then(|v| as_string(v, &d.path("image"), p))
            .unwrap_or_default();
        Docker {
            image,
            force_pull_image: d.bool("forcePullImage", p).unwrap_or(false),
            privileged: d.bool("privileged", p).unwrap_or(false),
            parameters: d
                .list("parameters", p, |v, path, p| {
                    let o = Obj::new(v, path.to_string(), p)?;
                    let key = as_string(o.require("key", p)?, &o.path("key"), p)?;
                    let value = o.string("value", p).unwrap_or_default();
                    Some(DockerParameter { key, value })
                })
                .unwrap_or_default(),
            pull_config: d.raw_object("pullConfig", p),
        }
    });
    let port_mappings = o.list("portMappings", p, read_port_mapping);
    let port_mappings_given = port_mappings.is_some();
    RawContainer {
        container: Container {
            kind,
            docker,
            volumes: o.list("volumes", p, read_volume).unwrap_or_default(),
            port_mappings: port_mappings.unwrap_or_default(),
            linux_info: o.raw_object("linuxInfo", p),
        },
        docker_network,
        docker_port_mappings,
        port_mappings_given,
    }
}

fn read_volume(v: &Value, path: &str, p: &mut Problems) -> Option<Volume> {
    let o = Obj::new(v, path.to_string(), p)?;
    let secret = o.string("secret", p);
    let mode = o.enumeration("mode", p, |s| match s {
        "RW" => Some(VolumeMode::ReadWrite),
        "RO" => Some(VolumeMode::ReadOnly),
        _ => None,
    });
    Some(Volume {
        container_path: o.string("containerPath", p).unwrap_or_default(),
        host_path: o.string("hostPath", p),
        mode: if secret.is_some() {
            mode
        } else {
            mode.or(Some(VolumeMode::ReadWrite))
        },
        persistent: o.raw_object("persistent", p),
        external: o.raw_object("external", p),
        secret,
    })
}

/// The deprecated `ipAddress`.
struct IpAddress {
    network_name: Option<String>,
    labels: Labels,
    /// `discovery.ports` as port mappings (no host ports).
    discovery_ports: Vec<PortMapping>,
}

fn read_ip_address(o: &Obj<'_>, p: &mut Problems) -> IpAddress {
    let discovery_ports = o
        .obj("discovery", p)
        .and_then(|d| {
            d.list("ports", p, |v, path, p| {
                let o = Obj::new(v, path.to_string(), p)?;
                Some(PortMapping {
                    container_port: o.port("number", p).unwrap_or(0),
                    host_port: None,
                    service_port: 0,
                    protocol: read_protocol(&o, p),
                    name: o.string("name", p),
                    labels: read_labels_at(&o, p),
                    network_names: Vec::new(),
                })
            })
        })
        .unwrap_or_default();
    IpAddress {
        network_name: o.string("networkName", p),
        labels: read_labels_at(o, p),
        discovery_ports,
    }
}

/// `AppNormalization.NetworkTranslation`: the networks an app asks for
/// through `networks`, `ipAddress` or `container.docker.network`.
fn translate_networks(
    ip: Option<&IpAddress>,
    docker_network: Option<&str>,
    networks: Option<Vec<Network>>,
    defaults: &AppDefaults,
    p: &mut Problems,
) -> Option<Vec<Network>> {
    let network = |mode, name: Option<String>, labels: Labels| Network { mode, name, labels };
    let from_docker = |kind: &str, ip: Option<&IpAddress>, p: &mut Problems| {
        let labels = ip.map(|ip| ip.labels.clone()).unwrap_or_default();
        match kind {
            "HOST" => Some(vec![Network::host()]),
            "USER" => Some(vec![network(
                NetworkMode::Container,
                ip.and_then(|ip| ip.network_name.clone()),
                labels,
            )]),
            "BRIDGE" => Some(vec![network(NetworkMode::ContainerBridge, None, labels)]),
            other => {
                p.invalid(
                    "/container/docker/network",
                    format!("unsupported docker network type {other}"),
                );
                None
            }
        }
    };
    match (ip, docker_network, networks) {
        (_, Some(kind), None) => from_docker(kind, ip, p),
        (Some(ip), None, None) => Some(match &ip.network_name {
            Some(name) if *name == defaults.mesos_bridge_name => vec![network(
                NetworkMode::ContainerBridge,
                None,
                ip.labels.clone(),
            )],
            name => vec![network(
                NetworkMode::Container,
                name.clone(),
                ip.labels.clone(),
            )],
        }),
        (None, None, networks) => networks,
        (ip, docker_network, networks) => {
            if docker_network.is_some() {
                p.invalid(
                    "/",
                    "must not specify both container.docker.network and networks",
                );
            }
            if ip.is_some() {
                p.invalid("/", "must not specify both networks and ipAddress");
            }
            networks
        }
    }
}
