//! The semantic rules an app must satisfy (`api/v2/validation/AppValidation.scala`,
//! `state/AppDefinition.scala` `validBasicAppDefinition`), applied to the
//! normalized app. Messages and paths are Marathon's where it has them.

use std::collections::BTreeSet;

use serde_json::Value;

use super::constraint::Constraint;
use super::json::{Problems, above_max, below_min};
use super::{
    AppDefinition, AppError, ContainerType, HealthCheckProtocol, IpProtocol, NetworkMode,
    ResourceLimit, UnreachableStrategy,
};

const CMD_ARGS_OR_CONTAINER: &str =
    "AppDefinition must either contain one of 'cmd' or 'args', and/or a 'container'.";
const HEALTH_PORT_INDEX: &str = "Health check port indices must address an element of the ports array or container port mappings.";
const HEALTH_IPV6: &str =
    "IPv6 can only be used for container type DOCKER and Mesos http/https/tcp health checks";
const EXECUTOR_PATTERN: &str = "^(//cmd)|(/?[^/]+(/[^/]+)*)|$";
const PROTOCOLS: [&str; 4] = ["tcp", "udp", "udp,tcp", "tcp,udp"];
const PROTOCOL_MESSAGE: &str = "Invalid protocol. Only 'udp', 'tcp' and 'udp,tcp' are allowed.";

/// Records every rule `app` breaks.
pub(super) fn validate(app: &AppDefinition, p: &mut Problems) {
    command(app, p);
    resources(app, p);
    scheduling(app, p);
    ports(app, p);
    networks(app, p);
    container(app, p);
    health_checks(app, p);
    readiness_checks(app, p);
    env_and_secrets(app, p);
    fetch(app, p);
}

fn command(app: &AppDefinition, p: &mut Problems) {
    let cmd = app.cmd.is_some();
    let args = !app.args.is_empty();
    let container = app
        .container
        .as_ref()
        .is_some_and(|c| c.docker.is_some() || c.kind == ContainerType::Mesos);
    if !((cmd ^ args) || (!(cmd && args) && container)) {
        p.invalid("/", CMD_ARGS_OR_CONTAINER);
    }
    if app.cmd.as_deref() == Some("") {
        p.invalid("/cmd", "must not be an empty string");
    }
    if !executor_is_valid(&app.executor) {
        p.invalid(
            "/executor",
            format!("must fully match regular expression '{EXECUTOR_PATTERN}'"),
        );
    }
}

/// `^(//cmd)|(/?[^/]+(/[^/]+)*)|$`, matched fully: empty, `//cmd`, or a
/// path without empty segments.
fn executor_is_valid(executor: &str) -> bool {
    executor.is_empty()
        || executor == "//cmd"
        || executor
            .strip_prefix('/')
            .unwrap_or(executor)
            .split('/')
            .all(|s| !s.is_empty())
}

fn resources(app: &AppDefinition, p: &mut Problems) {
    for (path, value) in [("/cpus", app.cpus), ("/mem", app.mem), ("/disk", app.disk)] {
        if value < 0.0 {
            p.invalid(path, below_min(value, 0.0));
        }
    }
    if let Some(er) = &app.executor_resources {
        for (path, value) in [
            ("/executorResources/cpus", er.cpus),
            ("/executorResources/mem", er.mem),
            ("/executorResources/disk", er.disk),
        ] {
            if value < 0.0 {
                p.invalid(path, below_min(value, 0.0));
            }
        }
    }
    if let Some(limits) = &app.resource_limits {
        for (path, limit, request) in [
            ("/resourceLimits/cpus", limits.cpus, app.cpus),
            ("/resourceLimits/mem", limits.mem, app.mem),
        ] {
            if let Some(ResourceLimit::Value(v)) = limit
                && v < request
            {
                p.invalid(
                    path,
                    format!(
                        "resource limit must be greater than or equal to requested resource ({request:?})"
                    ),
                );
            }
        }
    }
    let docker = app
        .container
        .as_ref()
        .is_some_and(|c| c.kind == ContainerType::Docker);
    if app.gpus > 0 && docker {
        p.invalid("/", "GPU resources only work with the Mesos containerizer");
    }
    if app.check.is_some() && docker {
        p.invalid("/", "AppDefinition must not use 'checks' if using docker");
    }
    if app.role.is_empty() {
        p.invalid("/role", "must not be empty");
    }
    if app
        .accepted_resource_roles
        .as_ref()
        .is_some_and(|roles| roles.is_empty())
    {
        p.invalid("/acceptedResourceRoles", "must not be empty");
    }
}

fn scheduling(app: &AppDefinition, p: &mut Problems) {
    if app.backoff_factor < 1.0 {
        p.invalid("/backoffFactor", below_min(app.backoff_factor, 1.0));
    }
    let us = &app.upgrade_strategy;
    for (path, value) in [
        (
            "/upgradeStrategy/minimumHealthCapacity",
            us.minimum_health_capacity,
        ),
        (
            "/upgradeStrategy/maximumOverCapacity",
            us.maximum_over_capacity,
        ),
    ] {
        if value < 0.0 {
            p.invalid(path, "is less than 0");
        } else if value > 1.0 {
            p.invalid(path, "is greater than 1");
        }
    }
    if app.is_single_instance() {
        if app.instances > 1 {
            p.invalid("/", "Single instance app may only have one instance");
        }
        for (path, value) in [
            (
                "/upgradeStrategy/minimumHealthCapacity",
                us.minimum_health_capacity,
            ),
            (
                "/upgradeStrategy/maximumOverCapacity",
                us.maximum_over_capacity,
            ),
        ] {
            if value != 0.0 {
                p.invalid(path, format!("got {value:?}, expected 0.0"));
            }
        }
    }
    if app.is_resident() {
        if app.role == "*" {
            p.invalid(
                "/role",
                "resident apps need a role other than '*': Mesos reserves their resources and volumes for a role",
            );
        }
        if us.maximum_over_capacity != 0.0 {
            p.invalid(
                "/upgradeStrategy/maximumOverCapacity",
                format!("got {:?}, expected 0.0", us.maximum_over_capacity),
            );
        }
        if app.unreachable_strategy != UnreachableStrategy::Disabled {
            p.invalid(
                "/",
                "unreachableStrategy must be disabled for resident tasks",
            );
        }
    }
    if let UnreachableStrategy::Enabled {
        inactive_after_seconds,
        expunge_after_seconds,
    } = app.unreachable_strategy
        && inactive_after_seconds > expunge_after_seconds
    {
        p.invalid(
            "/unreachableStrategy/inactiveAfterSeconds",
            format!(
                "inactiveAfterSeconds ({inactive_after_seconds}) must be less or equal to expungeAfterSeconds, which is {expunge_after_seconds}"
            ),
        );
    }
    for (i, constraint) in app.constraints.iter().enumerate() {
        if let Err(e) = Constraint::parse(constraint) {
            p.invalid(&format!("/constraints({i})"), e.to_string());
        }
    }
}

/// Whether some value occurs twice.
fn has_duplicates<'a>(values: impl Iterator<Item = &'a str>) -> bool {
    let mut seen = BTreeSet::new();
    values.into_iter().any(|v| !seen.insert(v))
}

fn ports(app: &AppDefinition, p: &mut Problems) {
    let defs = &app.port_definitions;
    if has_duplicates(defs.iter().filter_map(|d| d.name.as_deref())) {
        p.invalid("/portDefinitions", "Port names must be unique.");
    }
    let numbers: Vec<String> = defs
        .iter()
        .filter(|d| d.port != 0)
        .map(|d| d.port.to_string())
        .collect();
    if has_duplicates(numbers.iter().map(String::as_str)) {
        p.invalid("/portDefinitions", "Ports must be unique.");
    }
    for (i, d) in defs.iter().enumerate() {
        if !PROTOCOLS.contains(&d.protocol.as_str()) {
            p.invalid(&format!("/portDefinitions({i})/protocol"), PROTOCOL_MESSAGE);
        }
    }
    let Some(container) = &app.container else {
        return;
    };
    let mappings = &container.port_mappings;
    if has_duplicates(mappings.iter().filter_map(|m| m.name.as_deref())) {
        p.invalid("/container/portMappings", "Port names must be unique.");
    }
    let network_names: Vec<&str> = app
        .networks
        .iter()
        .filter_map(|n| n.name.as_deref())
        .collect();
    let container_networks = app
        .networks
        .iter()
        .filter(|n| n.mode == NetworkMode::Container)
        .count();
    for (i, m) in mappings.iter().enumerate() {
        if !PROTOCOLS.contains(&m.protocol.as_str()) {
            p.invalid(
                &format!("/container/portMappings({i})/protocol"),
                PROTOCOL_MESSAGE,
            );
        }
        for (j, name) in m.network_names.iter().enumerate() {
            if !network_names.contains(&name.as_str()) {
                p.invalid(
                    &format!("/container/portMappings({i})/networkNames({j})"),
                    format!("got {name:?}, expected one of: {network_names:?}"),
                );
            }
        }
        if container_networks > 1 && m.host_port.is_some() && m.network_names.len() != 1 {
            p.invalid(
                &format!("/container/portMappings({i})"),
                "networkNames must be a single item list when hostPort is specified and more than 1 container network is defined",
            );
        }
    }
}

/// The rules every `networks` list follows, an app's or a pod's
/// (Marathon's `NetworkValidation`): no names or labels on host networks, no
/// names on bridge ones, no duplicates, one host or one bridge or 1-to-n
/// container networks, and container networks named (Baton has no
/// `--default_network_name`).
pub(crate) fn network_rules(nets: &[crate::state::app::Network], p: &mut Problems) {
    let count = |mode| nets.iter().filter(|n| n.mode == mode).count();
    let (host, bridge, container) = (
        count(NetworkMode::Host),
        count(NetworkMode::ContainerBridge),
        count(NetworkMode::Container),
    );
    if nets
        .iter()
        .filter(|n| n.mode == NetworkMode::Host)
        .any(|n| n.name.as_deref().is_some_and(|s| !s.is_empty()) || !n.labels.is_empty())
    {
        p.invalid("/networks", "Host networks may not have names or labels");
    }
    if nets
        .iter()
        .filter(|n| n.mode == NetworkMode::ContainerBridge)
        .any(|n| n.name.as_deref().is_some_and(|s| !s.is_empty()))
    {
        p.invalid("/networks", "Bridge networks may not have names");
    }
    let unnamed = nets
        .iter()
        .filter(|n| n.mode == NetworkMode::Container && n.name.is_none())
        .count();
    if unnamed > 1 || has_duplicates(nets.iter().filter_map(|n| n.name.as_deref())) {
        p.invalid("/networks", "Duplicate networks are not allowed");
    }
    if !((host <= 1 && bridge == 0 && container == 0)
        || (host == 0 && bridge <= 1 && container == 0)
        || (host == 0 && bridge == 0 && container > 0))
    {
        p.invalid(
            "/networks",
            "May specify a single host network, single bridge network, or else 1-to-n container networks",
        );
    }
    if unnamed > 0 {
        p.invalid(
            "/networks",
            "Network name must be specified when container network is selected.",
        );
    }
}

fn networks(app: &AppDefinition, p: &mut Problems) {
    network_rules(&app.networks, p);
    let container = app
        .networks
        .iter()
        .filter(|n| n.mode == NetworkMode::Container)
        .count();
    let docker = app
        .container
        .as_ref()
        .is_some_and(|c| c.kind == ContainerType::Docker);
    if docker && container > 1 {
        p.invalid(
            "/networks",
            "may only specify a single container network when using the Docker container engine",
        );
    }
}

fn container(app: &AppDefinition, p: &mut Problems) {
    let Some(c) = &app.container else {
        return;
    };
    match (&c.docker, c.kind) {
        (None, ContainerType::Docker) => p.invalid("/container/docker", "not defined"),
        (Some(d), kind) => {
            if d.image.is_empty() {
                p.invalid("/container/docker/image", "must not be empty");
            }
            if kind == ContainerType::Docker && d.pull_config.is_some() {
                p.invalid(
                    "/container/docker/pullConfig",
                    "pullConfig is not supported with Docker containerizer",
                );
            }
            if kind == ContainerType::Mesos {
                if !d.parameters.is_empty() {
                    p.invalid("/container/docker/parameters", "must be empty");
                }
                if let Some(pull) = &d.pull_config {
                    let known = pull
                        .get("secret")
                        .and_then(|s| s.as_str())
                        .is_some_and(|s| app.secrets.contains_key(s));
                    if !known {
                        p.invalid(
                            "/container/docker/pullConfig",
                            "pullConfig.secret must refer to an existing secret",
                        );
                    }
                }
            }
        }
        (None, ContainerType::Mesos) => {}
    }
    for (i, v) in c.volumes.iter().enumerate() {
        let path = format!("/container/volumes({i})");
        if v.container_path.is_empty() {
            p.invalid(&format!("{path}/containerPath"), "must not be empty");
        }
        let kinds = [
            v.host_path.is_some(),
            v.persistent.is_some(),
            v.external.is_some(),
            v.secret.is_some(),
        ]
        .iter()
        .filter(|k| **k)
        .count();
        if kinds != 1 {
            p.invalid(
                &path,
                "a volume needs exactly one of hostPath, persistent, external or secret",
            );
        }
        if v.host_path.as_deref() == Some("") {
            p.invalid(&format!("{path}/hostPath"), "must not be empty");
        }
        if let Some(secret) = &v.secret
            && !app.secrets.contains_key(secret)
        {
            p.invalid(
                &format!("{path}/secret"),
                "volume.secret must refer to an existing secret",
            );
        }
    }
}

/// The rules of `app`'s persistent volumes as Baton runs them
/// ([`persistent_volume`]). Checked where volumes are first written (an
/// app becoming resident), not on every change: a resident app's volumes
/// cannot change afterwards, and one stored before these rules must stay
/// scalable.
pub fn persistent_volumes(app: &AppDefinition) -> Result<(), AppError> {
    let mut p = Problems::default();
    for (i, v) in app
        .container
        .iter()
        .flat_map(|c| c.volumes.iter())
        .enumerate()
    {
        if let Some(persistent) = &v.persistent {
            let path = format!("/container/volumes({i})");
            persistent_volume(&path, &v.container_path, persistent, &mut p);
        }
    }
    p.finish(())
}

/// A persistent volume's `persistent: {size, …}` (Marathon's
/// `PersistentVolumeInfo`), as far as Baton runs it: a size in MB on the
/// agent's root disk, at a path directly in the sandbox (Mesos mounts a
/// persistent volume there only: it skips a `container_path` with a `/`).
/// Other disks are refused rather than ignored.
fn persistent_volume(path: &str, container_path: &str, persistent: &Value, p: &mut Problems) {
    let Some(fields) = persistent.as_object() else {
        p.invalid(&format!("{path}/persistent"), "must be an object");
        return;
    };
    match fields.get("size").and_then(Value::as_f64) {
        Some(size) if size >= 1.0 && size.fract() == 0.0 => {}
        _ => p.invalid(
            &format!("{path}/persistent/size"),
            "must be a whole number of MB greater than 0",
        ),
    }
    if container_path.contains('/') || container_path == "." || container_path == ".." {
        p.invalid(
            &format!("{path}/containerPath"),
            "a persistent volume's containerPath must be a name directly in the sandbox (no '/', not '.' or '..')",
        );
    }
    let unsupported = fields
        .get("type")
        .is_some_and(|t| !t.is_null() && t.as_str() != Some("root"))
        || ["profileName", "maxSize"]
            .iter()
            .any(|k| fields.get(*k).is_some_and(|v| !v.is_null()))
        || fields
            .get("constraints")
            .and_then(Value::as_array)
            .is_some_and(|c| !c.is_empty());
    if unsupported {
        p.invalid(
            &format!("{path}/persistent"),
            "only root-disk persistent volumes are supported yet (no type path or mount, profileName, maxSize or constraints)",
        );
    }
}

fn health_checks(app: &AppDefinition, p: &mut Problems) {
    let port_count = app.declared_ports().len();
    let docker = app
        .container
        .as_ref()
        .is_some_and(|c| c.kind == ContainerType::Docker);
    let mut mesos_checks = 0;
    for (i, hc) in app.health_checks.iter().enumerate() {
        let path = format!("/healthChecks({i})");
        if hc.protocol == HealthCheckProtocol::Command {
            if hc.command.is_none() {
                p.invalid(&format!("{path}/command"), "not defined");
            }
        } else {
            let addressed = match hc.port_index {
                Some(index) => usize::try_from(index).is_ok_and(|i| i < port_count),
                None => hc.port.is_some(),
            };
            if !addressed {
                p.invalid(&path, HEALTH_PORT_INDEX);
            }
            if hc.protocol.is_mesos() {
                mesos_checks += 1;
            }
        }
        let ipv6_ok =
            hc.protocol.is_mesos() && hc.protocol != HealthCheckProtocol::Command && docker;
        if hc.ip_protocol == IpProtocol::V6 && !ipv6_ok {
            p.invalid(&path, HEALTH_IPV6);
        }
    }
    if mesos_checks > 1 {
        p.invalid(
            "/",
            "AppDefinition can contain at most one Mesos health check",
        );
    }
}

fn readiness_checks(app: &AppDefinition, p: &mut Problems) {
    let checks = &app.readiness_checks;
    if checks.len() > 1 {
        p.invalid("/readinessChecks", above_max(checks.len(), 1));
    }
    let names = app.port_names();
    for (i, rc) in checks.iter().enumerate() {
        if rc.timeout_seconds >= rc.interval_seconds {
            p.invalid(
                &format!("/readinessChecks({i})/timeoutSeconds"),
                format!(
                    "got {}, expected less than {}",
                    rc.timeout_seconds, rc.interval_seconds
                ),
            );
        }
        if !names.contains(&rc.port_name.as_str()) {
            p.invalid(
                &format!("/readinessChecks({i})/portName"),
                format!("No port definition reference for portName {}", rc.port_name),
            );
        }
    }
}

fn env_and_secrets(app: &AppDefinition, p: &mut Problems) {
    for (key, value) in &app.env {
        if key.is_empty() {
            p.invalid("/env", "must not be empty");
        }
        if let super::EnvValue::Secret { secret } = value
            && !app.secrets.contains_key(secret)
        {
            p.invalid(
                &format!("/env/{key}/secret"),
                "references an undefined secret",
            );
        }
    }
    for (name, secret) in &app.secrets {
        if name.is_empty() {
            p.invalid("/secrets", "must not be empty");
        }
        if secret.source.is_empty() {
            p.invalid(&format!("/secrets/{name}/source"), "must not be empty");
        }
    }
}

fn fetch(app: &AppDefinition, p: &mut Problems) {
    for (i, f) in app.fetch.iter().enumerate() {
        let path = format!("/fetch({i})/uri");
        if f.uri.is_empty() {
            p.invalid(&path, "must not be empty");
        } else if f
            .uri
            .chars()
            .any(|c| c.is_whitespace() || c.is_control() || "\"<>\\^`{|}".contains(c))
        {
            p.invalid(&path, "URI has invalid syntax.");
        }
    }
}
