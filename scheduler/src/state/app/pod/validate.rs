//! The rules a pod must satisfy, applied to the normalized pod: the RAML
//! constraints Marathon's generated readers enforce (name patterns,
//! minimums) and `api/v2/validation/PodsValidation.scala` with its helpers
//! (`SchedulingValidation`, `NetworkValidation`, `EnvVarValidation`,
//! `ResourceRole`). Messages are Marathon's where it has them.

use std::collections::BTreeSet;

use regex::Regex;

use super::{
    CONSTRAINT_OPERATORS, PodCheck, PodCommand, PodConstraint, PodContainer, PodDefinition,
    PodVolume,
};
use crate::state::app::constraint::Constraint;
use crate::state::app::json::{Problems, above_max, below_min};
use crate::state::app::{
    AppDefaults, EnvValue, NetworkMode, ResourceLimit, Secret, UnreachableStrategy,
    too_many_instances,
};

/// `strings.Name`: container, endpoint, volume and mount names.
const NAME_PATTERN: &str = "^[a-z0-9]([-a-z0-9]*[a-z0-9])?$";
/// `strings.NetworkName`.
const NETWORK_NAME_PATTERN: &str = "^[a-z0-9]([-a-z0-9_]*[a-z0-9])?$";
/// `env.EnvVars` keys.
const ENV_NAME_MESSAGE: &str = "must contain only alphanumeric chars or underscore, must not begin with a number, and must be 254 chars or less";
/// `strings.Path` and `strings.Uri`.
const MAX_PATH_LENGTH: usize = 1024;

// Marathon's PodsValidationMessages; the "nust" is theirs, kept so that
// tools matching the message still do.
const ENDPOINT_NAMES_UNIQUE: &str = "endpoint names nust be unique across all containers";
const CONTAINER_PORTS_UNIQUE: &str = "container ports must be unique across all containers";
const HOST_PORTS_UNIQUE: &str = "host ports must be unique across all containers";
const VOLUME_NAMES_UNIQUE: &str = "volume names must be unique";
const CONTAINER_NAMES_UNIQUE: &str = "container names must be unique";
const SECRET_VOLUME_REFERENCE: &str = "volume.secret must refer to an existing secret";
const NETWORK_NAME_FOR_HOST_PORT: &str = "networkNames must be a single item list when hostPort is specified and more than 1 container network is defined";

/// Records every rule `pod` breaks.
pub(super) fn validate(pod: &PodDefinition, defaults: &AppDefaults, p: &mut Problems) {
    top_level(pod, p);
    environment("/environment", &pod.environment, &pod.secrets, p);
    secrets(pod, p);
    volumes(pod, p);
    containers(pod, p);
    networks(pod, p);
    endpoints_unique(pod, p);
    scheduling(pod, defaults, p);
    resident(pod, p);
}

/// Whether `name` fully matches `strings.Name` (at most 63 characters).
pub(super) fn is_valid_name(name: &str) -> bool {
    is_dns_label(name, false)
}

/// `^[a-z0-9]([-a-z0-9]*[a-z0-9])?$` (with `_` inside when
/// `underscore`), 1 to 63 characters.
fn is_dns_label(name: &str, underscore: bool) -> bool {
    let bytes = name.as_bytes();
    let alnum = |b: &u8| b.is_ascii_lowercase() || b.is_ascii_digit();
    match (bytes.first(), bytes.last()) {
        (Some(first), Some(last)) => {
            bytes.len() <= 63
                && alnum(first)
                && alnum(last)
                && bytes
                    .iter()
                    .all(|b| alnum(b) || *b == b'-' || (underscore && *b == b'_'))
        }
        _ => false,
    }
}

fn name(path: &str, name: &str, p: &mut Problems) {
    if !is_valid_name(name) {
        p.invalid(
            path,
            format!(
                "must fully match regular expression '{NAME_PATTERN}' and be at most 63 characters"
            ),
        );
    }
}

fn length(path: &str, value: &str, p: &mut Problems) {
    let len = value.chars().count();
    if !(1..=MAX_PATH_LENGTH).contains(&len) {
        p.invalid(
            path,
            format!("got {len}, expected between 1 and {MAX_PATH_LENGTH}"),
        );
    }
}

fn has_duplicates<'a>(values: impl IntoIterator<Item = &'a str>) -> bool {
    let mut seen = BTreeSet::new();
    values.into_iter().any(|v| !seen.insert(v))
}

fn at_least(path: &str, value: f64, min: f64, p: &mut Problems) {
    if value < min {
        p.invalid(path, below_min(value, min));
    }
}

fn top_level(pod: &PodDefinition, p: &mut Problems) {
    if pod.user.as_deref() == Some("") {
        p.invalid("/user", "must not be empty");
    }
    if pod.role.is_empty() {
        p.invalid("/role", "must not be empty");
    }
    for (path, value, min) in [
        ("/executorResources/cpus", pod.executor_resources.cpus, 0.1),
        ("/executorResources/mem", pod.executor_resources.mem, 32.0),
        ("/executorResources/disk", pod.executor_resources.disk, 10.0),
    ] {
        at_least(path, value, min, p);
    }
}

/// `EnvVars`: names as the RAML pattern `^[a-zA-Z_][a-zA-Z0-9_]{0,253}$`
/// wants, secret references to declared secrets.
fn environment(
    path: &str,
    env: &std::collections::BTreeMap<String, EnvValue>,
    secrets: &std::collections::BTreeMap<String, Secret>,
    p: &mut Problems,
) {
    for (key, value) in env {
        let bytes = key.as_bytes();
        let valid = bytes.len() <= 254
            && bytes
                .first()
                .is_some_and(|b| b.is_ascii_alphabetic() || *b == b'_')
            && bytes
                .iter()
                .all(|b| b.is_ascii_alphanumeric() || *b == b'_');
        if !valid {
            p.invalid(&format!("{path}/{key}"), ENV_NAME_MESSAGE);
        }
        if let EnvValue::Secret { secret } = value
            && !secrets.contains_key(secret)
        {
            p.invalid(
                &format!("{path}/{key}/secret"),
                "references an undefined secret",
            );
        }
    }
}

fn secrets(pod: &PodDefinition, p: &mut Problems) {
    for (name, secret) in &pod.secrets {
        if name.is_empty() {
            p.invalid("/secrets", "must not be empty");
        }
        if secret.source.is_empty() {
            p.invalid(&format!("/secrets/{name}/source"), "must not be empty");
        }
    }
}

fn volumes(pod: &PodDefinition, p: &mut Problems) {
    if has_duplicates(pod.volumes.iter().map(PodVolume::name)) {
        p.invalid("/volumes", VOLUME_NAMES_UNIQUE);
    }
    for (i, volume) in pod.volumes.iter().enumerate() {
        let path = format!("/volumes({i})");
        match volume {
            // The RAML only asks persistent and secret volume names to be
            // non-empty, but a mount names them with a strings.Name.
            PodVolume::Ephemeral { name: n } | PodVolume::Host { name: n, .. } => {
                name(&format!("{path}/name"), n, p)
            }
            PodVolume::Secret { name: n, .. } | PodVolume::Persistent { name: n, .. } => {
                if n.is_empty() {
                    p.invalid(&format!("{path}/name"), "must not be empty");
                }
            }
        }
        match volume {
            PodVolume::Host { host, .. } if host.is_empty() => {
                p.invalid(&format!("{path}/host"), "must not be empty");
            }
            PodVolume::Secret { secret, .. } if !pod.secrets.contains_key(secret) => {
                p.invalid(&format!("{path}/secret"), SECRET_VOLUME_REFERENCE);
            }
            PodVolume::Persistent { persistent, .. } => {
                if let Some(max) = persistent.max_size
                    && max < persistent.size
                {
                    p.invalid(
                        &format!("{path}/persistent/maxSize"),
                        below_min(max, persistent.size),
                    );
                }
            }
            _ => {}
        }
        let mounted = pod
            .containers
            .iter()
            .any(|c| c.volume_mounts.iter().any(|m| m.name == volume.name()));
        if !mounted {
            p.invalid(&path, "volume must be referenced by at least one container");
        }
    }
}

fn containers(pod: &PodDefinition, p: &mut Problems) {
    if pod.containers.is_empty() {
        p.invalid("/containers", "must not be empty");
    }
    if has_duplicates(pod.containers.iter().map(|c| c.name.as_str())) {
        p.invalid("/containers", CONTAINER_NAMES_UNIQUE);
    }
    for (i, c) in pod.containers.iter().enumerate() {
        container(pod, &format!("/containers({i})"), c, p);
    }
}

fn command(path: &str, command: &PodCommand, p: &mut Problems) {
    match command {
        PodCommand::Shell(shell) if shell.is_empty() => {
            p.invalid(&format!("{path}/shell"), "must not be empty");
        }
        PodCommand::Argv(argv) if argv.is_empty() => {
            p.invalid(&format!("{path}/argv"), "must not be empty");
        }
        _ => {}
    }
}

fn container(pod: &PodDefinition, path: &str, c: &PodContainer, p: &mut Problems) {
    name(&format!("{path}/name"), &c.name, p);
    if let Some(exec) = &c.exec {
        command(&format!("{path}/exec/command"), &exec.command, p);
        if matches!(exec.command, PodCommand::Shell(_)) && exec.override_entrypoint == Some(false) {
            p.invalid(
                &format!("{path}/exec/overrideEntrypoint"),
                "must not be false with command.shell",
            );
        }
    }

    let r = &c.resources;
    at_least(&format!("{path}/resources/cpus"), r.cpus, 0.001, p);
    at_least(&format!("{path}/resources/mem"), r.mem, 0.001, p);
    at_least(&format!("{path}/resources/disk"), r.disk, 0.0, p);
    if let Some(limits) = &c.resource_limits {
        if pod.legacy_shared_cgroups {
            p.invalid(
                &format!("{path}/resourceLimits"),
                "resourceLimits cannot be defined if legacySharedCgroups is enabled",
            );
        }
        for (key, limit, request) in [("cpus", limits.cpus, r.cpus), ("mem", limits.mem, r.mem)] {
            if let Some(ResourceLimit::Value(v)) = limit
                && v < request
            {
                p.invalid(
                    &format!("{path}/resourceLimits/{key}"),
                    format!(
                        "resource limit must be greater than or equal to requested resource ({request:?})"
                    ),
                );
            }
        }
    }

    if let Some(image) = &c.image {
        if image.id.is_empty() {
            p.invalid(&format!("{path}/image/id"), "must not be empty");
        }
        if let Some(pull) = &image.pull_config
            && !pod.secrets.contains_key(&pull.secret)
        {
            p.invalid(
                &format!("{path}/image/pullConfig"),
                "pullConfig.secret must refer to an existing secret",
            );
        }
    }
    environment(
        &format!("{path}/environment"),
        &c.environment,
        &pod.secrets,
        p,
    );
    if c.user.as_deref() == Some("") {
        p.invalid(&format!("{path}/user"), "must not be empty");
    }

    endpoints(pod, path, c, p);
    health_check(path, c, p);

    for (j, m) in c.volume_mounts.iter().enumerate() {
        let mpath = format!("{path}/volumeMounts({j})");
        name(&format!("{mpath}/name"), &m.name, p);
        length(&format!("{mpath}/mountPath"), &m.mount_path, p);
        if !pod.volumes.iter().any(|v| v.name() == m.name) {
            p.invalid(
                &format!("{mpath}/name"),
                "Referenced Volume in VolumeMount should exist",
            );
        }
    }
    for (j, a) in c.artifacts.iter().enumerate() {
        let apath = format!("{path}/artifacts({j})");
        length(&format!("{apath}/uri"), &a.uri, p);
        if let Some(dest) = &a.dest_path {
            length(&format!("{apath}/destPath"), dest, p);
        }
    }
    if let Some(grace) = c.kill_grace_period_seconds() {
        at_least(
            &format!("{path}/lifecycle/killGracePeriodSeconds"),
            grace,
            0.0,
            p,
        );
    }
}

/// Per endpoint (`PodsValidation.endpointValidator`): names, the
/// networks it names, and which ports the networking allows.
fn endpoints(pod: &PodDefinition, path: &str, c: &PodContainer, p: &mut Problems) {
    let network_names: Vec<&str> = pod
        .networks
        .iter()
        .filter_map(|n| n.name.as_deref())
        .collect();
    let has = |mode| pod.networks.iter().any(|n| n.mode == mode);
    let container_networks = pod
        .networks
        .iter()
        .filter(|n| n.mode == NetworkMode::Container)
        .count();
    for (j, e) in c.endpoints.iter().enumerate() {
        let epath = format!("{path}/endpoints({j})");
        name(&format!("{epath}/name"), &e.name, p);
        for (k, network) in e.network_names.iter().enumerate() {
            if !network_names.contains(&network.as_str()) {
                p.invalid(
                    &format!("{epath}/networkNames({k})"),
                    format!("got {network:?}, expected one of: {network_names:?}"),
                );
            }
        }
        // Marathon tests the explicit host network only: a pod without
        // networks runs on the host too but may keep container ports.
        if has(NetworkMode::Host) && e.container_port.is_some() {
            p.invalid(
                &format!("{epath}/containerPort"),
                "is not allowed when using host-mode networking",
            );
        }
        if has(NetworkMode::Container) && e.container_port.is_none() {
            p.invalid(
                &format!("{epath}/containerPort"),
                "is required when using container-mode networking",
            );
        }
        if has_duplicates(e.protocol.iter().map(String::as_str)) {
            p.invalid(
                &format!("{epath}/protocol"),
                "Duplicate protocols within the same endpoint are not allowed",
            );
        }
        for (k, protocol) in e.protocol.iter().enumerate() {
            name(&format!("{epath}/protocol({k})"), protocol, p);
        }
        if container_networks > 1 && e.host_port.is_some() && e.network_names.len() != 1 {
            p.invalid(&epath, NETWORK_NAME_FOR_HOST_PORT);
        }
    }
}

fn health_check(path: &str, c: &PodContainer, p: &mut Problems) {
    let Some(hc) = &c.health_check else {
        return;
    };
    let path = format!("{path}/healthCheck");
    if hc.timeout_seconds >= hc.interval_seconds {
        p.invalid(
            &format!("{path}/timeoutSeconds"),
            format!(
                "got {}, expected less than {}",
                hc.timeout_seconds, hc.interval_seconds
            ),
        );
    }
    let (kind, endpoint) = match &hc.check {
        PodCheck::Http {
            endpoint,
            path: Some(http_path),
            ..
        } => {
            length(&format!("{path}/http/path"), http_path, p);
            ("http", endpoint)
        }
        PodCheck::Http { endpoint, .. } => ("http", endpoint),
        PodCheck::Tcp { endpoint } => ("tcp", endpoint),
        PodCheck::Exec(cmd) => {
            command(&format!("{path}/exec/command"), cmd, p);
            return;
        }
    };
    let epath = format!("{path}/{kind}/endpoint");
    name(&epath, endpoint, p);
    // The container's own endpoints, not the pod's.
    if !c.endpoints.iter().any(|e| e.name == *endpoint) {
        p.invalid(&epath, "contained in the container endpoints");
    }
}

/// Pod-wide uniqueness of endpoint names and of fixed ports.
fn endpoints_unique(pod: &PodDefinition, p: &mut Problems) {
    let all: Vec<_> = pod.endpoints().map(|(_, e)| e).collect();
    if has_duplicates(all.iter().map(|e| e.name.as_str())) {
        p.invalid("/", ENDPOINT_NAMES_UNIQUE);
    }
    let fixed = |ports: Vec<u16>| {
        let mut seen = BTreeSet::new();
        ports
            .into_iter()
            .filter(|p| *p != 0)
            .any(|p| !seen.insert(p))
    };
    if fixed(all.iter().filter_map(|e| e.container_port).collect()) {
        p.invalid("/", CONTAINER_PORTS_UNIQUE);
    }
    if fixed(all.iter().filter_map(|e| e.host_port).collect()) {
        p.invalid("/", HOST_PORTS_UNIQUE);
    }
}

/// `NetworkValidation.ramlNetworksValidator` and the name rules.
fn networks(pod: &PodDefinition, p: &mut Problems) {
    let nets = &pod.networks;
    crate::state::app::validate::network_rules(nets, p);
    for (i, n) in nets.iter().enumerate() {
        if n.mode == NetworkMode::Container
            && let Some(name) = &n.name
            && !is_dns_label(name, true)
        {
            p.invalid(
                &format!("/networks({i})/name"),
                format!("must fully match regular expression '{NETWORK_NAME_PATTERN}' and be at most 63 characters"),
            );
        }
    }
}

fn scheduling(pod: &PodDefinition, defaults: &AppDefaults, p: &mut Problems) {
    if pod.instances > defaults.max_instances_per_app {
        p.invalid(
            "/scaling/instances",
            too_many_instances(pod.instances.into(), defaults.max_instances_per_app),
        );
    }
    if let Some(max) = pod.max_instances
        && pod.instances > max
    {
        p.invalid("/scaling/instances", above_max(pod.instances, max));
    }

    let b = &pod.backoff;
    for (key, value) in [
        ("backoff", b.backoff),
        ("backoffFactor", b.backoff_factor),
        ("maxLaunchDelay", b.max_launch_delay),
    ] {
        at_least(&format!("/scheduling/backoff/{key}"), value, 0.0, p);
    }
    // Durations Baton keeps in milliseconds: refuse what would overflow.
    const MAX_SECONDS: f64 = 1.0e12;
    for (key, value) in [
        ("backoff", b.backoff),
        ("maxLaunchDelay", b.max_launch_delay),
    ] {
        if value > MAX_SECONDS {
            p.invalid(
                &format!("/scheduling/backoff/{key}"),
                above_max(value, MAX_SECONDS),
            );
        }
    }

    let us = &pod.upgrade_strategy;
    for (key, value) in [
        ("minimumHealthCapacity", us.minimum_health_capacity),
        ("maximumOverCapacity", us.maximum_over_capacity),
    ] {
        let path = format!("/scheduling/upgrade/{key}");
        if value < 0.0 {
            p.invalid(&path, below_min(value, 0.0));
        } else if value > 1.0 {
            p.invalid(&path, above_max(value, 1.0));
        }
    }

    for (i, c) in pod.constraints.iter().enumerate() {
        constraint(&format!("/scheduling/placement/constraints({i})"), c, p);
    }
    let roles_path = "/scheduling/placement/acceptedResourceRoles";
    for role in &pod.accepted_resource_roles {
        if let Some(problem) = role_problem(role) {
            p.invalid(roles_path, problem);
        }
    }
    // ResourceRole.validForRole: only the unreserved role and the pod's own.
    if pod
        .accepted_resource_roles
        .iter()
        .any(|r| r != "*" && *r != pod.role)
    {
        let allowed = if pod.role == "*" {
            "*".to_string()
        } else {
            format!("* and {}", pod.role)
        };
        p.invalid(
            roles_path,
            format!("acceptedResourceRoles can only contain {allowed}"),
        );
    }

    if let UnreachableStrategy::Enabled {
        inactive_after_seconds,
        expunge_after_seconds,
    } = pod.unreachable_strategy
        && inactive_after_seconds > expunge_after_seconds
    {
        p.invalid(
            "/scheduling/unreachableStrategy/inactiveAfterSeconds",
            format!(
                "inactiveAfterSeconds ({inactive_after_seconds}) must be less or equal to expungeAfterSeconds, which is {expunge_after_seconds}"
            ),
        );
    }
}

/// `ResourceRole.validResourceRole`.
fn role_problem(role: &str) -> Option<String> {
    match role {
        "" => return Some(r#"A role name must not be ""."#.into()),
        "." => return Some(r#"A role name must not be ".""#.into()),
        ".." => return Some(r#"A role name must not be "..""#.into()),
        _ => {}
    }
    if role.starts_with('-') {
        return Some("A role name must not start with a '-'.".into());
    }
    let bad = [
        ('\u{09}', "horizontal tab (\\x09)"),
        ('\u{0a}', "line feed (\\x0a)"),
        ('\u{0b}', "vertical tab (\\x0b)"),
        ('\u{0c}', "form feed (\\x0c)"),
        ('\u{0d}', "carriage return (\\x0d)"),
        (' ', "space (\\x20)"),
        ('/', "slash (\\x2f)"),
        ('\u{7f}', "backspace (\\x7f)"),
    ];
    bad.iter()
        .find(|(c, _)| role.contains(*c))
        .map(|(_, name)| format!("A role name must not include a {name} character."))
}

/// `SchedulingValidation.complyWithConstraintRules`, then the app model's
/// parser, so that whatever passes is something the offer matcher runs.
fn constraint(path: &str, c: &PodConstraint, p: &mut Problems) {
    let value = c.value.as_deref();
    let is_int = |v: Option<&str>| v.is_some_and(|v| v.trim().parse::<i32>().is_ok());
    let message = if c.field_name.is_empty() {
        Some("missing field for constraint declaration")
    } else {
        match c.operator.as_str() {
            "UNIQUE" if value.is_some() => Some("UNIQUE does not accept a value"),
            "GROUP_BY" if value.is_some() && !is_int(value) => {
                Some("GROUP BY must define an integer value or else no value at all")
            }
            "MAX_PER" if !is_int(value) => Some("MAX_PER requires an integer value"),
            "LIKE" | "UNLIKE" if value.is_none_or(str::is_empty) => {
                Some("LIKE and UNLIKE require a non-empty, regular expression value")
            }
            "LIKE" | "UNLIKE" if value.is_some_and(|v| Regex::new(v).is_err()) => {
                Some("is not a valid regular expression")
            }
            "IS" if !value
                .unwrap_or("")
                .bytes()
                .all(|b| b.is_ascii_alphanumeric() || matches!(b, b'_' | b'/' | b'.' | b'-')) =>
            {
                Some(
                    "IS only supports Mesos text and float values (see http://mesos.apache.org/documentation/latest/attributes-resources/)",
                )
            }
            op if !CONSTRAINT_OPERATORS.contains(&op) => {
                p.invalid(
                    &format!("{path}/operator"),
                    "operator must be one of the following UNIQUE, CLUSTER, GROUP_BY, LIKE, MAX_PER, UNLIKE or IS",
                );
                return;
            }
            _ => None,
        }
    };
    match message {
        Some(m) => p.invalid(path, m),
        None => {
            if let Err(e) = Constraint::parse(&c.to_parts()) {
                p.invalid(path, e.to_string());
            }
        }
    }
}

/// The rules for pods with persistent volumes
/// (`SchedulingValidation.validForResidentPods`,
/// `haveUnreachableDisabledForResidentPods`, `validAcceptedResourceRoles`,
/// `validPodDefinitionWithRoleEnforcement`).
fn resident(pod: &PodDefinition, p: &mut Problems) {
    if !pod.is_resident() {
        return;
    }
    let over = pod.upgrade_strategy.maximum_over_capacity;
    if over != 0.0 {
        p.invalid(
            "/scheduling/upgrade/maximumOverCapacity",
            format!("got {over:?}, expected 0.0"),
        );
    }
    if pod.unreachable_strategy != UnreachableStrategy::Disabled {
        p.invalid(
            "/",
            "unreachableStrategy must be disabled for pods with persistent volumes",
        );
    }
    if !pod.accepted_resource_roles.is_empty() && pod.accepted_resource_roles != ["*"] {
        p.invalid(
            "/scheduling/placement/acceptedResourceRoles",
            r#"A resident pod must have `acceptedResourceRoles = ["*"]`."#,
        );
    }
    if pod.role == "*" {
        p.invalid("/role", "Resident pods cannot have the role *");
    }
}
