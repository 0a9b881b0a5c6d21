//! The Marathon app model: what `POST /v2/apps` accepts and `GET
//! /v2/apps/{id}` returns (shared/reference/marathon-api.md §2).
//!
//! This module owns, as pure code without I/O:
//!
//! - the types: [`AppDefinition`] and its parts, [`PathId`] ids and
//!   [`Timestamp`] versions;
//! - reading an app from JSON ([`AppDefinition::from_json`]): Marathon's
//!   defaults applied, deprecated fields (`ports`, `uris`, `ipAddress`,
//!   `container.docker.network`, `container.docker.portMappings`) translated,
//!   and every problem reported at once in Marathon's error shapes
//!   ([`AppError`]);
//! - writing an app ([`Serialize`]): the Marathon 1.9.100+ shape plus the
//!   deprecated `ports` and `uris` mirrored for old clients;
//! - updates: PUT/PATCH merges ([`AppDefinition::merge_update`]), rollback
//!   bodies ([`rollback_version`]), scale-only versus upgrade
//!   ([`is_scale_only_change`]) and version bookkeeping
//!   ([`AppDefinition::with_version`]);
//! - what the launcher derives from an app: task ids and their parsing, and
//!   the task environment ([`task`]).
//!
//! Paths in errors follow Marathon: `/field/sub` for object members and
//! `(i)` for array items, e.g. `/healthChecks(0)/portIndex`; `/` is the app
//! as a whole.
//!
//! ```
//! use baton::state::app::{AppDefaults, AppDefinition, PathId, Timestamp, is_scale_only_change};
//!
//! let defaults = AppDefaults::default();
//! let app = AppDefinition::from_json(br#"{"id":"sleep","cmd":"sleep 1000"}"#, &PathId::root(), &defaults)
//!     .expect("valid")
//!     .with_version(Timestamp::now(), false);
//! assert_eq!(app.id.as_str(), "/sleep");
//! assert_eq!(app.mem, 128.0);
//!
//! let scaled = app.merge_update(&serde_json::json!({"instances": 3}), &defaults).expect("valid");
//! assert!(is_scale_only_change(&app, &scaled));
//!
//! let err = AppDefinition::from_json(br#"{"id":"/x","cmd":"a","cpus":-1}"#, &PathId::root(), &defaults)
//!     .unwrap_err();
//! assert_eq!(err.status(), 422);
//! assert_eq!(err.body()["details"][0]["path"], "/cpus");
//! ```

pub mod constraint;
pub(crate) mod json;
pub mod labels;
pub(crate) mod parse;
pub mod path;
pub mod pod;
pub mod ports;
pub mod task;
#[cfg(test)]
mod tests;
pub mod timestamp;
mod types;
mod update;
pub(crate) mod validate;

use std::collections::BTreeMap;

use serde::ser::SerializeMap;
use serde::{Deserialize, Deserializer, Serialize, Serializer};
use serde_json::Value;

pub use labels::Labels;
pub use path::{PathId, PathIdError};
pub use task::{TaskIdError, TaskIdParts, instance_id, marathon_task_id, parse_task_id, task_env};
pub use timestamp::{Timestamp, TimestampError};
pub use types::*;
pub use update::{is_scale_only_change, is_upgrade, rollback_version};

/// Server-side settings that fill in what an app leaves out.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct AppDefaults {
    /// The role of apps that name none (the first of `--mesos_role`,
    /// normally `*`).
    pub role: String,
    /// The roles an app may name (`--mesos_role`); empty: any.
    pub allowed_roles: Vec<String>,
    /// The network name that `ipAddress.networkName` uses to ask for bridge
    /// networking (`--mesos_bridge_name`, default `mesos-bridge`).
    pub mesos_bridge_name: String,
    /// The most `instances` an app may ask for (`--max_instances_per_app`).
    pub max_instances_per_app: u32,
}

/// `--max_instances_per_app` when not given: far above what one app runs
/// on the largest Mesos clusters, far below what a typo asks for.
pub const DEFAULT_MAX_INSTANCES_PER_APP: u32 = 10_000;

/// The violation message for `instances` above the maximum.
pub fn too_many_instances(instances: u64, max: u32) -> String {
    format!("got {instances}, expected at most {max} (the --max_instances_per_app limit)")
}

impl Default for AppDefaults {
    fn default() -> Self {
        AppDefaults {
            role: "*".into(),
            allowed_roles: Vec::new(),
            mesos_bridge_name: "mesos-bridge".into(),
            max_instances_per_app: DEFAULT_MAX_INSTANCES_PER_APP,
        }
    }
}

/// One path's problems, as Marathon lists them in `details`.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Violation {
    /// Where: `/cpus`, `/healthChecks(0)/portIndex`, or `/` for the app.
    pub path: String,
    /// What, one message per rule broken.
    pub errors: Vec<String>,
}

/// Why an app body was refused, in the three shapes Marathon answers with.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum AppError {
    /// Not JSON at all: 400 `{"message":"Invalid JSON","details":"<parser message>"}`.
    #[error("Invalid JSON: {details}")]
    InvalidJson {
        /// The parser's message.
        details: String,
    },
    /// JSON of the wrong type or shape (a string where a number belongs, a
    /// missing `id`, an unknown enum value): 400 `{"message":"Invalid
    /// JSON","details":[{"path":"/cpus","errors":["error.expected.jsnumber"]}]}`.
    #[error("Invalid JSON: {}", summary(details))]
    WrongType {
        /// Every offending path with play-json's error codes.
        details: Vec<Violation>,
    },
    /// Well-formed but breaking a rule: 422 `{"message":"Object is not
    /// valid","details":[{"path":"/upgradeStrategy/minimumHealthCapacity","errors":["is greater than 1"]}]}`.
    #[error("Object is not valid: {}", summary(.0))]
    Invalid(Vec<Violation>),
}

fn summary(details: &[Violation]) -> String {
    details
        .iter()
        .map(|v| format!("{}: {}", v.path, v.errors.join(", ")))
        .collect::<Vec<_>>()
        .join("; ")
}

impl AppError {
    /// A single 422 violation, for callers with rules of their own (for
    /// instance "an app with this id exists as a group").
    pub fn invalid(path: impl Into<String>, message: impl Into<String>) -> AppError {
        AppError::Invalid(vec![Violation {
            path: path.into(),
            errors: vec![message.into()],
        }])
    }

    /// The HTTP status Marathon answers with: 400 for malformed JSON and
    /// wrong types, 422 for rule violations.
    ///
    /// (Marathon 1.4 answered wrong types with 400; from 1.5 its exception
    /// mapper turns them into 422 too. 400 is kept here as specified in
    /// marathon-api.md §2.9.)
    pub fn status(&self) -> u16 {
        match self {
            AppError::InvalidJson { .. } | AppError::WrongType { .. } => 400,
            AppError::Invalid(_) => 422,
        }
    }

    /// The response body.
    pub fn body(&self) -> Value {
        match self {
            AppError::InvalidJson { details } => {
                serde_json::json!({"message": "Invalid JSON", "details": details})
            }
            AppError::WrongType { details } => {
                serde_json::json!({"message": "Invalid JSON", "details": details})
            }
            AppError::Invalid(details) => {
                serde_json::json!({"message": "Object is not valid", "details": details})
            }
        }
    }

    /// The violations (empty for [`AppError::InvalidJson`]).
    pub fn violations(&self) -> &[Violation] {
        match self {
            AppError::InvalidJson { .. } => &[],
            AppError::WrongType { details } | AppError::Invalid(details) => details,
        }
    }
}

/// A Marathon app, normalized: defaults applied, deprecated fields
/// translated. See the module documentation for reading and writing it.
#[derive(Debug, Clone, PartialEq)]
pub struct AppDefinition {
    /// The app's id.
    pub id: PathId,
    /// Shell command (`/bin/sh -c`).
    pub cmd: Option<String>,
    /// Argv form, instead of `cmd`.
    pub args: Vec<String>,
    /// The OS user to run as.
    pub user: Option<String>,
    /// Extra environment.
    pub env: BTreeMap<String, EnvValue>,
    /// Desired instance count (default 1).
    pub instances: u32,
    /// CPU shares per instance (default 1).
    pub cpus: f64,
    /// Memory in MB per instance (default 128).
    pub mem: f64,
    /// Disk in MB per instance (default 0).
    pub disk: f64,
    /// GPUs per instance (default 0).
    pub gpus: u32,
    /// The executor (`""` = the default; `//cmd` = the command executor).
    pub executor: String,
    /// Placement constraints as given; see `crate::offers::constraints`.
    pub constraints: Vec<Vec<String>>,
    /// Offer roles to accept; `None` = the server's default.
    pub accepted_resource_roles: Option<Vec<String>>,
    /// The Mesos role (default `--mesos_role`).
    pub role: String,
    /// The container, if any (boxed: most apps have none, and apps are
    /// kept by the ten thousand).
    pub container: Option<Box<Container>>,
    /// Networks (default `[{"mode":"host"}]`).
    pub networks: Vec<Network>,
    /// Host-networking ports (default one, `default`, in host mode).
    pub port_definitions: Vec<PortDefinition>,
    /// Use the port definitions' numbers as literal host ports.
    pub require_ports: bool,
    /// Labels, passed through exactly.
    pub labels: Labels,
    /// What to download before start.
    pub fetch: Vec<FetchUri>,
    /// Health checks.
    pub health_checks: Vec<HealthCheck>,
    /// Readiness checks (at most one).
    pub readiness_checks: Vec<ReadinessCheck>,
    /// Apps to deploy before this one.
    pub dependencies: Vec<PathId>,
    /// Rolling upgrade limits (default `{1, 1}`).
    pub upgrade_strategy: UpgradeStrategy,
    /// Launch backoff start in seconds (default 1).
    pub backoff_seconds: u32,
    /// Launch backoff growth (default 1.15).
    pub backoff_factor: f64,
    /// Launch backoff cap in seconds (default 300).
    pub max_launch_delay_seconds: u32,
    /// SIGTERM to SIGKILL grace.
    pub task_kill_grace_period_seconds: Option<u32>,
    /// Scale-down order (default YOUNGEST_FIRST).
    pub kill_selection: KillSelection,
    /// Unreachable handling (default `{0, 0}`).
    pub unreachable_strategy: UnreachableStrategy,
    /// Secrets by name.
    pub secrets: BTreeMap<String, Secret>,
    /// A Mesos `CheckInfo`-like check (`{http|tcp|exec, …}`), passed through.
    pub check: Option<Value>,
    /// Allocate a TTY.
    pub tty: Option<bool>,
    /// Burst limits.
    pub resource_limits: Option<ResourceLimits>,
    /// The executor's own resources.
    pub executor_resources: Option<ExecutorResources>,
    /// This definition's version (set by the server).
    pub version: Option<Timestamp>,
    /// Scaling and config-change versions (set by the server).
    pub version_info: Option<VersionInfo>,
    /// A pod (`/v2/pods`) rather than an app: its definition, from which
    /// every field above that the scheduler reads is derived
    /// ([`AppDefinition::for_pod`]), so that pods share the apps' store,
    /// versions, deployments, placement and reconciliation. The REST API
    /// shows them only under `/v2/pods`.
    pub pod: Option<Box<crate::state::app::pod::PodDefinition>>,
}

/// The label that marks an app as single-instance.
pub const LABEL_SINGLE_INSTANCE_APP: &str = "MARATHON_SINGLE_INSTANCE_APP";

impl AppDefinition {
    /// Defaults for every field: no command, host networking with one
    /// `default` port. (Not valid until it gets a `cmd`, `args` or
    /// container.)
    pub fn new(id: PathId, defaults: &AppDefaults) -> AppDefinition {
        AppDefinition {
            id,
            cmd: None,
            args: Vec::new(),
            user: None,
            env: BTreeMap::new(),
            instances: 1,
            cpus: 1.0,
            mem: 128.0,
            disk: 0.0,
            gpus: 0,
            executor: String::new(),
            constraints: Vec::new(),
            accepted_resource_roles: None,
            role: defaults.role.clone(),
            container: None,
            networks: vec![Network::host()],
            port_definitions: vec![PortDefinition::default_definition()],
            require_ports: false,
            labels: Labels::new(),
            fetch: Vec::new(),
            health_checks: Vec::new(),
            readiness_checks: Vec::new(),
            dependencies: Vec::new(),
            upgrade_strategy: UpgradeStrategy::DEFAULT,
            backoff_seconds: 1,
            backoff_factor: 1.15,
            max_launch_delay_seconds: 300,
            task_kill_grace_period_seconds: None,
            kill_selection: KillSelection::YoungestFirst,
            unreachable_strategy: UnreachableStrategy::DEFAULT,
            secrets: BTreeMap::new(),
            check: None,
            tty: None,
            resource_limits: None,
            executor_resources: None,
            version: None,
            version_info: None,
            pod: None,
        }
    }

    /// The app-shaped form of a pod: what one instance needs (its
    /// containers' resources; the executor's share stays in
    /// `executor_resources`), its scaling, placement, strategies, backoff,
    /// role, labels and versions. Ports come from the pod's endpoints
    /// ([`crate::offers::ResourceRequest::for_app`]), not from port
    /// definitions.
    pub fn for_pod(pod: crate::state::app::pod::PodDefinition) -> AppDefinition {
        let resources = pod.container_resources();
        AppDefinition {
            id: pod.id.clone(),
            user: pod.user.clone(),
            instances: pod.instances,
            cpus: resources.cpus,
            mem: resources.mem,
            disk: resources.disk,
            gpus: resources.gpus,
            constraints: pod.constraint_parts(),
            accepted_resource_roles: (!pod.accepted_resource_roles.is_empty())
                .then(|| pod.accepted_resource_roles.clone()),
            role: pod.role.clone(),
            networks: if pod.networks.is_empty() {
                vec![Network::host()]
            } else {
                pod.networks.clone()
            },
            port_definitions: Vec::new(),
            labels: pod.labels.clone(),
            upgrade_strategy: pod.upgrade_strategy,
            backoff_seconds: (pod.backoff.backoff.ceil() as u32).max(1),
            backoff_factor: pod.backoff.backoff_factor,
            max_launch_delay_seconds: pod.backoff.max_launch_delay.ceil() as u32,
            kill_selection: pod.kill_selection,
            unreachable_strategy: pod.unreachable_strategy,
            secrets: pod.secrets.clone(),
            executor_resources: Some(pod.executor_resources),
            version: pod.version,
            version_info: pod.version_info,
            pod: Some(Box::new(pod)),
            ..AppDefinition::new(PathId::root(), &AppDefaults::default())
        }
    }

    /// Whether this is a pod.
    pub fn is_pod(&self) -> bool {
        self.pod.is_some()
    }

    /// The pod as it stands: its definition with this app's instances and
    /// versions, which scaling and writes change on the app side.
    pub fn pod_definition(&self) -> Option<crate::state::app::pod::PodDefinition> {
        let mut pod = (**self.pod.as_ref()?).clone();
        pod.instances = self.instances;
        pod.version = self.version;
        pod.version_info = self.version_info;
        Some(pod)
    }

    /// Reads an app from a request body (`POST /v2/apps`, `PUT` with
    /// `partialUpdate=false`): parses, applies defaults, translates
    /// deprecated fields and validates, reporting every problem at once.
    /// A relative `id` is resolved against `base` (`/` for `/v2/apps`, the
    /// group for `/v2/groups`). Unknown fields are ignored.
    pub fn from_json(
        body: &[u8],
        base: &PathId,
        defaults: &AppDefaults,
    ) -> Result<AppDefinition, AppError> {
        let value: Value = serde_json::from_slice(body).map_err(|e| AppError::InvalidJson {
            details: e.to_string(),
        })?;
        AppDefinition::from_value(&value, base, defaults)
    }

    /// [`AppDefinition::from_json`] for an already parsed body (for
    /// instance one element of a `PUT /v2/apps` array).
    pub fn from_value(
        value: &Value,
        base: &PathId,
        defaults: &AppDefaults,
    ) -> Result<AppDefinition, AppError> {
        parse::read_app(value, base, defaults, parse::Options::VALIDATE)
    }

    /// Whether the app runs in the agent's network namespace (no
    /// container or bridge networks).
    pub fn is_host_networking(&self) -> bool {
        self.networks.iter().all(|n| n.mode == NetworkMode::Host)
    }

    /// The app's ports in declaration order: the container's port mappings
    /// when it has any, else the port definitions.
    pub fn declared_ports(&self) -> Vec<DeclaredPort<'_>> {
        match &self.container {
            Some(c) if !c.port_mappings.is_empty() => c
                .port_mappings
                .iter()
                .map(|m| DeclaredPort {
                    name: m.name.as_deref(),
                    protocol: &m.protocol,
                    port: m.container_port,
                    host_port: m.host_port,
                    service_port: m.service_port,
                })
                .collect(),
            _ => self
                .port_definitions
                .iter()
                .map(|d| DeclaredPort {
                    name: d.name.as_deref(),
                    protocol: &d.protocol,
                    port: d.port,
                    host_port: Some(if self.require_ports { d.port } else { 0 }),
                    service_port: d.port,
                })
                .collect(),
        }
    }

    /// The names of the app's ports, in declaration order.
    pub fn port_names(&self) -> Vec<&str> {
        self.declared_ports()
            .iter()
            .filter_map(|p| p.name)
            .collect()
    }

    /// Why `next` cannot replace this resident app or pod (Marathon's
    /// `residentUpdateIsValid`): its instances relaunch on the resources
    /// they reserved, so what they take, and their host ports, stay as
    /// they were. The path and message of the first problem; `None` when
    /// it may, or when this is not resident. (Persistent volumes are
    /// compared where every write passes.)
    pub fn resident_change_problem(&self, next: &AppDefinition) -> Option<(&'static str, String)> {
        if !self.is_resident() {
            return None;
        }
        if let (Some(old), Some(new)) = (self.pod.as_deref(), next.pod.as_deref()) {
            return old.resident_change_problem(new);
        }
        let why = "once the app runs with persistent volumes: its instances relaunch on the resources they reserved";
        for (path, before, after) in [
            ("/cpus", self.cpus, next.cpus),
            ("/mem", self.mem, next.mem),
            ("/disk", self.disk, next.disk),
            ("/gpus", f64::from(self.gpus), f64::from(next.gpus)),
        ] {
            if (before - after).abs() > 1e-3 {
                return Some((
                    path,
                    format!("cannot be changed from {before} to {after} {why}"),
                ));
            }
        }
        let host_ports = |app: &AppDefinition| {
            let mut ports: Vec<u16> = app
                .declared_ports()
                .iter()
                .filter_map(|p| p.host_port)
                .collect();
            ports.sort_unstable();
            ports
        };
        (host_ports(self) != host_ports(next)).then(|| {
            (
                "/portDefinitions",
                format!("host ports cannot be added, removed or changed {why}"),
            )
        })
    }

    /// Whether it has persistent volumes (Marathon's "resident" apps and
    /// pods).
    pub fn is_resident(&self) -> bool {
        self.pod.as_ref().is_some_and(|p| p.is_resident())
            || self
                .container
                .as_ref()
                .is_some_and(|c| c.volumes.iter().any(|v| v.persistent.is_some()))
    }

    /// Whether it carries `MARATHON_SINGLE_INSTANCE_APP=true`.
    pub fn is_single_instance(&self) -> bool {
        self.labels
            .get(LABEL_SINGLE_INSTANCE_APP)
            .is_some_and(|v| v == "true")
    }

    /// The Docker image when the Docker containerizer runs it.
    pub fn docker_image(&self) -> Option<&str> {
        self.container
            .as_ref()
            .filter(|c| c.kind == ContainerType::Docker)
            .and_then(|c| c.docker.as_ref())
            .map(|d| d.image.as_str())
    }

    /// The version tasks older than which are replaced: `lastConfigChangeAt`,
    /// else `version`.
    pub fn last_config_change(&self) -> Option<Timestamp> {
        self.version_info
            .map(|v| v.last_config_change_at)
            .or(self.version)
    }

    /// The configuration version its instances run:
    /// [`last_config_change`](Self::last_config_change), or the epoch for an
    /// app never stamped.
    pub fn config_version(&self) -> Timestamp {
        self.last_config_change()
            .unwrap_or(Timestamp::from_millis(0))
    }
}

/// Writes the Marathon 1.9.100+ shape (§2.7): `None` omitted; empty
/// `args`, `constraints`, `dependencies`, `env`, `fetch`, `healthChecks`,
/// `readinessChecks` and `secrets` omitted; other collections always
/// written. Plus, for old clients and marathon-lb, the deprecated `ports`
/// (the port definitions' numbers) and `uris` (the fetch URIs).
impl Serialize for AppDefinition {
    fn serialize<S: Serializer>(&self, serializer: S) -> Result<S::Ok, S::Error> {
        let mut m = serializer.serialize_map(None)?;
        self.serialize_fields(&mut m)?;
        m.end()
    }
}

impl AppDefinition {
    /// Writes the app's members into a map being serialized, so that the
    /// API can add its own (`tasks`, counts, …) without buffering the app.
    pub fn serialize_fields<M: SerializeMap>(&self, m: &mut M) -> Result<(), M::Error> {
        fn some<M: SerializeMap, T: Serialize>(
            m: &mut M,
            key: &str,
            value: &Option<T>,
        ) -> Result<(), M::Error> {
            match value {
                Some(v) => m.serialize_entry(key, v),
                None => Ok(()),
            }
        }
        fn non_empty<M: SerializeMap, T: Serialize>(
            m: &mut M,
            key: &str,
            value: &T,
            empty: bool,
        ) -> Result<(), M::Error> {
            if empty {
                Ok(())
            } else {
                m.serialize_entry(key, value)
            }
        }

        let m = &mut *m;
        m.serialize_entry("id", &self.id)?;
        // A pod is kept as its own definition; the rest derives from it.
        if let Some(pod) = self.pod_definition() {
            m.serialize_entry("pod", &pod.stored())?;
            return Ok(());
        }
        some(m, "cmd", &self.cmd)?;
        non_empty(m, "args", &self.args, self.args.is_empty())?;
        some(m, "user", &self.user)?;
        non_empty(m, "env", &self.env, self.env.is_empty())?;
        m.serialize_entry("instances", &self.instances)?;
        m.serialize_entry("cpus", &self.cpus)?;
        m.serialize_entry("mem", &self.mem)?;
        m.serialize_entry("disk", &self.disk)?;
        m.serialize_entry("gpus", &self.gpus)?;
        m.serialize_entry("executor", &self.executor)?;
        non_empty(
            m,
            "constraints",
            &self.constraints,
            self.constraints.is_empty(),
        )?;
        some(m, "acceptedResourceRoles", &self.accepted_resource_roles)?;
        m.serialize_entry("role", &self.role)?;
        some(m, "container", &self.container)?;
        m.serialize_entry("networks", &self.networks)?;
        m.serialize_entry("portDefinitions", &self.port_definitions)?;
        let ports: Vec<u16> = self.port_definitions.iter().map(|p| p.port).collect();
        m.serialize_entry("ports", &ports)?;
        m.serialize_entry("requirePorts", &self.require_ports)?;
        m.serialize_entry("labels", &self.labels)?;
        non_empty(m, "fetch", &self.fetch, self.fetch.is_empty())?;
        let uris: Vec<&str> = self.fetch.iter().map(|f| f.uri.as_str()).collect();
        m.serialize_entry("uris", &uris)?;
        non_empty(
            m,
            "healthChecks",
            &self.health_checks,
            self.health_checks.is_empty(),
        )?;
        non_empty(
            m,
            "readinessChecks",
            &self.readiness_checks,
            self.readiness_checks.is_empty(),
        )?;
        some(m, "check", &self.check)?;
        non_empty(
            m,
            "dependencies",
            &self.dependencies,
            self.dependencies.is_empty(),
        )?;
        m.serialize_entry("upgradeStrategy", &self.upgrade_strategy)?;
        m.serialize_entry("backoffSeconds", &self.backoff_seconds)?;
        m.serialize_entry("backoffFactor", &self.backoff_factor)?;
        m.serialize_entry("maxLaunchDelaySeconds", &self.max_launch_delay_seconds)?;
        some(
            m,
            "taskKillGracePeriodSeconds",
            &self.task_kill_grace_period_seconds,
        )?;
        m.serialize_entry("killSelection", &self.kill_selection)?;
        m.serialize_entry("unreachableStrategy", &self.unreachable_strategy)?;
        non_empty(m, "secrets", &self.secrets, self.secrets.is_empty())?;
        some(m, "tty", &self.tty)?;
        some(m, "resourceLimits", &self.resource_limits)?;
        some(m, "executorResources", &self.executor_resources)?;
        some(m, "version", &self.version)?;
        some(m, "versionInfo", &self.version_info)?;
        Ok(())
    }
}

/// Reads what [`Serialize`] wrote (for the store): types are checked and
/// defaults applied as for [`AppDefinition::from_json`], but the app is not
/// re-validated, so rules added later do not make stored apps unreadable.
impl<'de> Deserialize<'de> for AppDefinition {
    fn deserialize<D: Deserializer<'de>>(deserializer: D) -> Result<Self, D::Error> {
        let value = Value::deserialize(deserializer)?;
        if let Some(pod) = value.get("pod") {
            let pod = crate::state::app::pod::PodDefinition::deserialize(pod)
                .map_err(serde::de::Error::custom)?;
            return Ok(AppDefinition::for_pod(pod));
        }
        parse::read_app(
            &value,
            &PathId::root(),
            &AppDefaults::default(),
            parse::Options::STORED,
        )
        .map_err(serde::de::Error::custom)
    }
}
