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
mod parse;
pub mod path;
pub mod ports;
pub mod task;
#[cfg(test)]
mod tests;
pub mod timestamp;
mod update;
mod validate;

use std::collections::BTreeMap;

use serde::ser::SerializeMap;
use serde::{Deserialize, Deserializer, Serialize, Serializer};
use serde_json::Value;

pub use path::{PathId, PathIdError};
pub use task::{TaskIdError, TaskIdParts, instance_id, marathon_task_id, parse_task_id, task_env};
pub use timestamp::{Timestamp, TimestampError};
pub use update::{is_scale_only_change, is_upgrade, rollback_version};

/// Server-side settings that fill in what an app leaves out.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct AppDefaults {
    /// The role of apps that name none (`--mesos_role`, normally `*`).
    pub role: String,
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

/// An environment variable's value: a literal, or a reference to one of the
/// app's `secrets`.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
#[serde(untagged)]
pub enum EnvValue {
    /// `"KEY": "value"`.
    Value(String),
    /// `"KEY": {"secret": "name"}`.
    Secret {
        /// The key into the app's `secrets`.
        secret: String,
    },
}

/// A secret the app may reference from `env` or volumes.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct Secret {
    /// Where the secret store keeps it.
    pub source: String,
}

/// Which containerizer runs the app.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
pub enum ContainerType {
    /// The Docker containerizer.
    #[serde(rename = "DOCKER")]
    Docker,
    /// The Mesos (universal) containerizer, with or without a Docker image.
    #[serde(rename = "MESOS")]
    Mesos,
}

/// `container`.
#[derive(Debug, Clone, PartialEq, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct Container {
    /// `type`: DOCKER (default) or MESOS.
    #[serde(rename = "type")]
    pub kind: ContainerType,
    /// The image and Docker options.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub docker: Option<Docker>,
    /// Volumes, always written.
    pub volumes: Vec<Volume>,
    /// Port mappings (non-host networking only); always written, so that
    /// an explicit `[]` stays empty when read back.
    pub port_mappings: Vec<PortMapping>,
    /// `linuxInfo`, passed through.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub linux_info: Option<Value>,
}

/// `container.docker`.
#[derive(Debug, Clone, PartialEq, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct Docker {
    /// The image, e.g. `nginx:1.25`.
    pub image: String,
    /// Pull even when the agent has the image.
    pub force_pull_image: bool,
    /// Run privileged (Docker containerizer).
    pub privileged: bool,
    /// `docker run` parameters (Docker containerizer).
    pub parameters: Vec<DockerParameter>,
    /// `pullConfig` (`{"secret": name}`), passed through.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub pull_config: Option<Value>,
}

/// One `docker run --key value`.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct DockerParameter {
    /// The option name without dashes.
    pub key: String,
    /// Its value.
    pub value: String,
}

/// How a volume is mounted.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
pub enum VolumeMode {
    /// Read-write.
    #[serde(rename = "RW")]
    ReadWrite,
    /// Read-only.
    #[serde(rename = "RO")]
    ReadOnly,
}

/// A volume: a host path, a persistent (local) volume, an external volume,
/// or a secret file, told apart by which of the fields is set.
#[derive(Debug, Clone, PartialEq, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct Volume {
    /// Where it appears in the container.
    pub container_path: String,
    /// Host volumes: the agent's path.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub host_path: Option<String>,
    /// RW or RO (defaults to RW for every kind but secret volumes).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub mode: Option<VolumeMode>,
    /// Persistent volumes: `{size, type, …}`, passed through.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub persistent: Option<Value>,
    /// External volumes: `{name, provider, options, …}`, passed through.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub external: Option<Value>,
    /// Secret volumes: the key into the app's `secrets`.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub secret: Option<String>,
}

/// `container.portMappings[]`.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct PortMapping {
    /// The port inside the container; 0 means "the host port".
    pub container_port: u16,
    /// The host port: `None` for none (container networks), 0 for any.
    /// Bridge networking defaults it to 0.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub host_port: Option<u16>,
    /// The cluster-wide service port; 0 until one is assigned.
    pub service_port: u16,
    /// `tcp`, `udp` or `udp,tcp`.
    pub protocol: String,
    /// The port's name (`PORT_<NAME>`, DiscoveryInfo, readiness checks).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub name: Option<String>,
    /// Free-form metadata, e.g. VIP labels.
    pub labels: BTreeMap<String, String>,
    /// The container networks it applies to (all when empty).
    #[serde(skip_serializing_if = "Vec::is_empty")]
    pub network_names: Vec<String>,
}

impl PortMapping {
    /// Marathon's default mapping for non-host networks without any:
    /// `{"containerPort":0,"name":"default","protocol":"tcp"}`.
    pub fn default_mapping() -> PortMapping {
        PortMapping {
            container_port: 0,
            host_port: None,
            service_port: 0,
            protocol: "tcp".into(),
            name: Some("default".into()),
            labels: BTreeMap::new(),
            network_names: Vec::new(),
        }
    }
}

/// A network mode.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
pub enum NetworkMode {
    /// The agent's network namespace.
    #[serde(rename = "host")]
    Host,
    /// A named (CNI) container network with an IP per task.
    #[serde(rename = "container")]
    Container,
    /// The bridge network, with host ports mapped to container ports.
    #[serde(rename = "container/bridge")]
    ContainerBridge,
}

/// `networks[]`.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct Network {
    /// The mode (an item without one means `container`).
    pub mode: NetworkMode,
    /// The container network's name.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub name: Option<String>,
    /// Labels passed to the network.
    #[serde(skip_serializing_if = "BTreeMap::is_empty")]
    pub labels: BTreeMap<String, String>,
}

impl Network {
    /// `{"mode":"host"}`.
    pub fn host() -> Network {
        Network {
            mode: NetworkMode::Host,
            name: None,
            labels: BTreeMap::new(),
        }
    }
}

/// `portDefinitions[]` (host networking).
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct PortDefinition {
    /// The service port (0 until one is assigned); with `requirePorts`
    /// also the literal host port.
    pub port: u16,
    /// `tcp`, `udp` or `udp,tcp`.
    pub protocol: String,
    /// The port's name.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub name: Option<String>,
    /// Free-form metadata.
    #[serde(skip_serializing_if = "BTreeMap::is_empty")]
    pub labels: BTreeMap<String, String>,
}

impl PortDefinition {
    /// Marathon's default for host networking: `{"port":0,"name":"default","protocol":"tcp"}`.
    pub fn default_definition() -> PortDefinition {
        PortDefinition {
            port: 0,
            protocol: "tcp".into(),
            name: Some("default".into()),
            labels: BTreeMap::new(),
        }
    }
}

/// `fetch[]`: what the Mesos fetcher downloads into the sandbox.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct FetchUri {
    /// The URI.
    pub uri: String,
    /// Unpack archives (default true).
    pub extract: bool,
    /// Make the file executable.
    pub executable: bool,
    /// Use the fetcher cache.
    pub cache: bool,
    /// The file name in the sandbox.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub dest_path: Option<String>,
}

impl FetchUri {
    /// The Mesos fetcher's archive extensions: a deprecated `uris` entry
    /// ending in one of them is extracted.
    pub const EXTRACTABLE: [&'static str; 9] = [
        ".tar", ".tar.gz", ".tar.bz2", ".tar.xz", ".gz", ".tgz", ".tbz2", ".txz", ".zip",
    ];

    /// A `fetch` entry for a deprecated `uris` item, `extract` inferred from
    /// the URI's path.
    pub fn from_uri(uri: &str) -> FetchUri {
        let path = uri.split(['?', '#']).next().unwrap_or(uri);
        FetchUri {
            uri: uri.to_string(),
            extract: Self::EXTRACTABLE.iter().any(|ext| path.ends_with(ext)),
            executable: false,
            cache: false,
            dest_path: None,
        }
    }
}

/// Health check protocols.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "SCREAMING_SNAKE_CASE")]
pub enum HealthCheckProtocol {
    /// Marathon-level HTTP check, run by the scheduler.
    Http,
    /// Marathon-level HTTPS check (certificates not verified).
    Https,
    /// Marathon-level TCP connect check.
    Tcp,
    /// A command run next to the task (Mesos-level).
    Command,
    /// HTTP check run by the agent.
    MesosHttp,
    /// HTTPS check run by the agent.
    MesosHttps,
    /// TCP check run by the agent.
    MesosTcp,
}

impl HealthCheckProtocol {
    /// Whether the agent runs it (COMMAND and MESOS_*), as opposed to the
    /// scheduler (HTTP, HTTPS, TCP).
    pub fn is_mesos(self) -> bool {
        !matches!(self, Self::Http | Self::Https | Self::Tcp)
    }

    /// Whether it speaks HTTP(S) and so has a `path`.
    pub fn is_http(self) -> bool {
        matches!(
            self,
            Self::Http | Self::Https | Self::MesosHttp | Self::MesosHttps
        )
    }
}

/// IP version a health check uses.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
pub enum IpProtocol {
    /// IPv4 (default).
    #[serde(rename = "IPv4")]
    V4,
    /// IPv6 (Docker containers with MESOS_* checks only).
    #[serde(rename = "IPv6")]
    V6,
}

/// `healthChecks[].command`.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct CommandCheck {
    /// Shell command; exit 0 means healthy.
    pub value: String,
}

/// `healthChecks[]` (§2.3).
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct HealthCheck {
    /// Default HTTP; COMMAND when `command` is given.
    pub protocol: HealthCheckProtocol,
    /// HTTP path (HTTP protocols; default `/`).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub path: Option<String>,
    /// Index into the app's ports (default 0 when no `port` is given and
    /// the app has ports).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub port_index: Option<u32>,
    /// A literal port (wins over `portIndex`).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub port: Option<u16>,
    /// COMMAND checks: what to run.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub command: Option<CommandCheck>,
    /// HTTP/HTTPS: treat 1xx as "keep waiting" rather than a verdict.
    #[serde(skip_serializing_if = "Option::is_none", rename = "ignoreHttp1xx")]
    pub ignore_http1xx: Option<bool>,
    /// Failures are ignored this long after start (default 300).
    pub grace_period_seconds: u32,
    /// Between checks (default 60).
    pub interval_seconds: u32,
    /// Per check (default 20).
    pub timeout_seconds: u32,
    /// Kill after this many failures in a row (default 3).
    pub max_consecutive_failures: u32,
    /// Mesos checks: wait this long before the first check (default 15).
    pub delay_seconds: u32,
    /// IPv4 (default) or IPv6.
    pub ip_protocol: IpProtocol,
}

/// Readiness check protocols.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "SCREAMING_SNAKE_CASE")]
pub enum ReadinessProtocol {
    /// Plain HTTP (default).
    Http,
    /// HTTPS.
    Https,
}

/// `readinessChecks[]` (§2.4).
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct ReadinessCheck {
    /// Default `readinessCheck`.
    pub name: String,
    /// Default HTTP.
    pub protocol: ReadinessProtocol,
    /// Default `/`.
    pub path: String,
    /// The name of the port to probe (default `http-api`); must name one of
    /// the app's ports.
    pub port_name: String,
    /// Default 30.
    pub interval_seconds: u32,
    /// Default 10; less than the interval.
    pub timeout_seconds: u32,
    /// Statuses that mean ready (default `[200]`).
    pub http_status_codes_for_ready: Vec<u16>,
    /// Keep the last response for the API (default false).
    pub preserve_last_response: bool,
}

/// `upgradeStrategy`.
#[derive(Debug, Clone, Copy, PartialEq, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct UpgradeStrategy {
    /// Fraction of `instances` that must stay healthy during an upgrade.
    pub minimum_health_capacity: f64,
    /// Fraction of `instances` that may run in excess during an upgrade.
    pub maximum_over_capacity: f64,
}

impl UpgradeStrategy {
    /// `{1, 1}`: the default.
    pub const DEFAULT: UpgradeStrategy = UpgradeStrategy {
        minimum_health_capacity: 1.0,
        maximum_over_capacity: 1.0,
    };
    /// `{0.5, 0}`: the default for apps with persistent volumes.
    pub const RESIDENT: UpgradeStrategy = UpgradeStrategy {
        minimum_health_capacity: 0.5,
        maximum_over_capacity: 0.0,
    };
}

/// Which instances go first when scaling down.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, Serialize)]
#[serde(rename_all = "SCREAMING_SNAKE_CASE")]
pub enum KillSelection {
    /// The most recently started (default).
    #[default]
    YoungestFirst,
    /// The longest running.
    OldestFirst,
}

/// `unreachableStrategy`: what to do with instances on unreachable agents.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum UnreachableStrategy {
    /// `"disabled"`: wait forever (resident apps).
    Disabled,
    /// `{inactiveAfterSeconds, expungeAfterSeconds}`; default `{0, 0}`.
    Enabled {
        /// Replace the instance after this long.
        inactive_after_seconds: u64,
        /// Forget it (and kill it if it returns) after this long.
        expunge_after_seconds: u64,
    },
}

impl UnreachableStrategy {
    /// `{0, 0}`: the default since Marathon 1.5.
    pub const DEFAULT: UnreachableStrategy = UnreachableStrategy::Enabled {
        inactive_after_seconds: 0,
        expunge_after_seconds: 0,
    };
}

impl Serialize for UnreachableStrategy {
    fn serialize<S: Serializer>(&self, serializer: S) -> Result<S::Ok, S::Error> {
        match self {
            UnreachableStrategy::Disabled => serializer.serialize_str("disabled"),
            UnreachableStrategy::Enabled {
                inactive_after_seconds,
                expunge_after_seconds,
            } => {
                let mut map = serializer.serialize_map(Some(2))?;
                map.serialize_entry("inactiveAfterSeconds", inactive_after_seconds)?;
                map.serialize_entry("expungeAfterSeconds", expunge_after_seconds)?;
                map.end()
            }
        }
    }
}

/// One `resourceLimits` entry.
#[derive(Debug, Clone, Copy, PartialEq)]
pub enum ResourceLimit {
    /// `"unlimited"`.
    Unlimited,
    /// A number at least the request.
    Value(f64),
}

impl Serialize for ResourceLimit {
    fn serialize<S: Serializer>(&self, serializer: S) -> Result<S::Ok, S::Error> {
        match self {
            ResourceLimit::Unlimited => serializer.serialize_str("unlimited"),
            ResourceLimit::Value(v) => serializer.serialize_f64(*v),
        }
    }
}

/// `resourceLimits`: how far a task may burst above its request.
#[derive(Debug, Clone, Copy, PartialEq, Default, Serialize)]
pub struct ResourceLimits {
    /// CPU limit.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub cpus: Option<ResourceLimit>,
    /// Memory limit in MB.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub mem: Option<ResourceLimit>,
}

/// `executorResources`: what the executor itself gets.
#[derive(Debug, Clone, Copy, PartialEq, Serialize)]
pub struct ExecutorResources {
    /// Default 0.1.
    pub cpus: f64,
    /// Default 32 MB.
    pub mem: f64,
    /// Default 10 MB.
    pub disk: f64,
}

/// `versionInfo`: when the app last scaled and last changed otherwise.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct VersionInfo {
    /// The last version that changed only `instances` (or any change).
    pub last_scaling_at: Timestamp,
    /// The last version that changed anything but `instances`: tasks older
    /// than this are replaced by deployments.
    pub last_config_change_at: Timestamp,
}

/// A port an app declares, from `container.portMappings` when it has any,
/// else from `portDefinitions` — the order `PORT0…n`, health-check
/// `portIndex` and the host ports handed to [`task_env`] follow.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct DeclaredPort<'a> {
    /// The port's name.
    pub name: Option<&'a str>,
    /// `tcp`, `udp` or `udp,tcp`.
    pub protocol: &'a str,
    /// The container port of a mapping, or the port of a definition.
    pub port: u16,
    /// The host port wanted: `None` for none (container networks without a
    /// host port), `Some(0)` for any offered port, `Some(p)` for exactly `p`.
    pub host_port: Option<u16>,
    /// The service port (0 while unassigned).
    pub service_port: u16,
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
    /// The container, if any.
    pub container: Option<Container>,
    /// Networks (default `[{"mode":"host"}]`).
    pub networks: Vec<Network>,
    /// Host-networking ports (default one, `default`, in host mode).
    pub port_definitions: Vec<PortDefinition>,
    /// Use the port definitions' numbers as literal host ports.
    pub require_ports: bool,
    /// Labels, passed through exactly.
    pub labels: BTreeMap<String, String>,
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
            labels: BTreeMap::new(),
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
        }
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

    /// Whether it has persistent volumes (Marathon's "resident" apps).
    pub fn is_resident(&self) -> bool {
        self.container
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
        parse::read_app(
            &value,
            &PathId::root(),
            &AppDefaults::default(),
            parse::Options::STORED,
        )
        .map_err(serde::de::Error::custom)
    }
}
