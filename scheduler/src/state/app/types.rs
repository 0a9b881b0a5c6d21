//! The parts of an app definition: environment, secrets, containers and
//! volumes, ports and networks, fetch URIs, health and readiness checks,
//! upgrade and unreachable strategies, resource limits, versions.

use serde::ser::SerializeMap;
use serde::{Serialize, Serializer};
use serde_json::Value;

use super::{Labels, Timestamp};

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
    pub labels: Labels,
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
            labels: Labels::new(),
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
    #[serde(skip_serializing_if = "Labels::is_empty")]
    pub labels: Labels,
}

impl Network {
    /// `{"mode":"host"}`.
    pub fn host() -> Network {
        Network {
            mode: NetworkMode::Host,
            name: None,
            labels: Labels::new(),
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
    #[serde(skip_serializing_if = "Labels::is_empty")]
    pub labels: Labels,
}

impl PortDefinition {
    /// Marathon's default for host networking: `{"port":0,"name":"default","protocol":"tcp"}`.
    pub fn default_definition() -> PortDefinition {
        PortDefinition {
            port: 0,
            protocol: "tcp".into(),
            name: Some("default".into()),
            labels: Labels::new(),
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
/// `portIndex` and the host ports handed to [`task_env`](super::task_env) follow.
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
