//! The parts of a pod definition (`types/pod.raml`, `podContainer.raml`,
//! `volumes.raml`, `healthCheck.raml`): containers and what they declare,
//! pod volumes, placement constraints in the object form, backoff.
//! Networks, environment values, secrets, artifacts, strategies and
//! resource limits are the app model's types: the JSON is the same.

use serde::ser::SerializeMap;
use serde::{Serialize, Serializer};
use serde_json::Value;

use crate::state::app::{EnvValue, FetchUri, Labels, ResourceLimits};

use std::collections::BTreeMap;

/// `resources` of a container, or the sum for one pod instance.
#[derive(Debug, Clone, Copy, PartialEq, Serialize)]
pub struct PodResources {
    /// CPU shares (default 1.0, at least 0.001).
    pub cpus: f64,
    /// Memory in MB (default 128.0, at least 0.001).
    pub mem: f64,
    /// Disk in MB (default 0).
    pub disk: f64,
    /// GPUs (default 0).
    pub gpus: u32,
}

impl PodResources {
    /// Marathon's defaults for a container.
    pub const DEFAULT: PodResources = PodResources {
        cpus: 1.0,
        mem: 128.0,
        disk: 0.0,
        gpus: 0,
    };
}

/// A command as Mesos takes it (`mesosCommand.raml`): one or the other,
/// never both.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum PodCommand {
    /// `{"shell": "..."}`: run by `/bin/sh -c`.
    Shell(String),
    /// `{"argv": [...]}`: the executable first.
    Argv(Vec<String>),
}

impl Serialize for PodCommand {
    fn serialize<S: Serializer>(&self, serializer: S) -> Result<S::Ok, S::Error> {
        let mut m = serializer.serialize_map(Some(1))?;
        match self {
            PodCommand::Shell(shell) => m.serialize_entry("shell", shell)?,
            PodCommand::Argv(argv) => m.serialize_entry("argv", argv)?,
        }
        m.end()
    }
}

/// `exec` of a container.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct PodExec {
    /// What to run.
    pub command: PodCommand,
    /// Run `argv[0]` instead of the image's entrypoint (implied by a shell
    /// command).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub override_entrypoint: Option<bool>,
}

/// The image formats a pod container may start from.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
pub enum ImageKind {
    /// A Docker image, run by the Mesos containerizer.
    #[serde(rename = "DOCKER")]
    Docker,
    /// An AppC image (Marathon up to 1.8; removed in 1.9).
    #[serde(rename = "APPC")]
    Appc,
}

/// `image.pullConfig`: registry credentials held in a secret.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct PullConfig {
    /// The name of one of the pod's `secrets`.
    pub secret: String,
}

/// `image` of a container.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct PodImage {
    /// DOCKER or APPC.
    pub kind: ImageKind,
    /// The image name, e.g. `nginx:1.25`.
    pub id: String,
    /// Registry credentials.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub pull_config: Option<PullConfig>,
    /// Pull even when the agent has the image.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub force_pull: Option<bool>,
    /// Image discovery labels (AppC).
    #[serde(skip_serializing_if = "Labels::is_empty")]
    pub labels: Labels,
}

/// `endpoints[]` of a container: a named port of the pod.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct Endpoint {
    /// Unique across the pod; health checks and `PORT_<NAME>` use it.
    pub name: String,
    /// The port the process listens on inside a container network; 0
    /// means "the host port".
    #[serde(skip_serializing_if = "Option::is_none")]
    pub container_port: Option<u16>,
    /// The host port: `None` for none (container networks), 0 for any
    /// offered port. Host and bridge networking default it to 0.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub host_port: Option<u16>,
    /// Protocols advertised in DiscoveryInfo (`tcp`, `udp`).
    #[serde(skip_serializing_if = "Vec::is_empty")]
    pub protocol: Vec<String>,
    /// Free-form metadata, e.g. VIP labels.
    #[serde(skip_serializing_if = "Labels::is_empty")]
    pub labels: Labels,
    /// The container networks it applies to (all when empty).
    #[serde(skip_serializing_if = "Vec::is_empty")]
    pub network_names: Vec<String>,
}

/// `scheme` of an HTTP health check.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "SCREAMING_SNAKE_CASE")]
pub enum HttpScheme {
    /// Plain HTTP (default).
    Http,
    /// HTTPS, certificates not verified.
    Https,
}

/// What a pod health check probes; Mesos runs it next to the container.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum PodCheck {
    /// `http`: a GET of `path` on an endpoint.
    Http {
        /// The name of one of the container's endpoints.
        endpoint: String,
        /// The request path (Mesos asks for `/` when absent).
        path: Option<String>,
        /// HTTP or HTTPS.
        scheme: HttpScheme,
    },
    /// `tcp`: a connect to an endpoint.
    Tcp {
        /// The name of one of the container's endpoints.
        endpoint: String,
    },
    /// `exec`: a command whose exit status 0 means healthy.
    Exec(PodCommand),
}

/// `healthCheck` of a container (`types/healthCheck.raml` `HealthCheck`).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct PodHealthCheck {
    /// What it probes.
    pub check: PodCheck,
    /// Failures are ignored this long after start (default 300).
    pub grace_period_seconds: u32,
    /// Between checks (default 60).
    pub interval_seconds: u32,
    /// Kill after this many failures in a row (default 3).
    pub max_consecutive_failures: u32,
    /// Per check (default 20); less than the interval.
    pub timeout_seconds: u32,
    /// Before the first check (default 15).
    pub delay_seconds: u32,
}

impl PodHealthCheck {
    /// The endpoint it probes (none for `exec`).
    pub fn endpoint(&self) -> Option<&str> {
        match &self.check {
            PodCheck::Http { endpoint, .. } | PodCheck::Tcp { endpoint } => Some(endpoint),
            PodCheck::Exec(_) => None,
        }
    }
}

impl Serialize for PodHealthCheck {
    fn serialize<S: Serializer>(&self, serializer: S) -> Result<S::Ok, S::Error> {
        #[derive(Serialize)]
        struct Http<'a> {
            endpoint: &'a str,
            #[serde(skip_serializing_if = "Option::is_none")]
            path: &'a Option<String>,
            scheme: HttpScheme,
        }
        #[derive(Serialize)]
        struct Exec<'a> {
            command: &'a PodCommand,
        }
        let mut m = serializer.serialize_map(None)?;
        match &self.check {
            PodCheck::Http {
                endpoint,
                path,
                scheme,
            } => m.serialize_entry(
                "http",
                &Http {
                    endpoint,
                    path,
                    scheme: *scheme,
                },
            )?,
            PodCheck::Tcp { endpoint } => {
                m.serialize_entry("tcp", &serde_json::json!({ "endpoint": endpoint }))?
            }
            PodCheck::Exec(command) => m.serialize_entry("exec", &Exec { command })?,
        }
        m.serialize_entry("gracePeriodSeconds", &self.grace_period_seconds)?;
        m.serialize_entry("intervalSeconds", &self.interval_seconds)?;
        m.serialize_entry("maxConsecutiveFailures", &self.max_consecutive_failures)?;
        m.serialize_entry("timeoutSeconds", &self.timeout_seconds)?;
        m.serialize_entry("delaySeconds", &self.delay_seconds)?;
        m.end()
    }
}

/// `volumeMounts[]` of a container.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct VolumeMount {
    /// The name of one of the pod's `volumes`.
    pub name: String,
    /// Where it appears in the container.
    pub mount_path: String,
    /// Mounted read-only (default false; always written).
    pub read_only: bool,
}

/// `lifecycle` of a container.
#[derive(Debug, Clone, Copy, PartialEq, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct Lifecycle {
    /// SIGTERM to SIGKILL grace for this container.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub kill_grace_period_seconds: Option<f64>,
}

/// `containers[]`: one Mesos container of the pod's task group.
#[derive(Debug, Clone, PartialEq, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct PodContainer {
    /// Unique within the pod; part of task ids.
    pub name: String,
    /// What to run (none: the image's entrypoint).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub exec: Option<PodExec>,
    /// What it needs.
    pub resources: PodResources,
    /// How far it may burst.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub resource_limits: Option<ResourceLimits>,
    /// Its named ports.
    #[serde(skip_serializing_if = "Vec::is_empty")]
    pub endpoints: Vec<Endpoint>,
    /// `linuxInfo`, passed through.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub linux_info: Option<Box<Value>>,
    /// The filesystem image (none: the agent's filesystem).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub image: Option<Box<PodImage>>,
    /// Environment on top of the pod's.
    #[serde(skip_serializing_if = "BTreeMap::is_empty")]
    pub environment: BTreeMap<String, EnvValue>,
    /// The OS user, overriding the pod's.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub user: Option<String>,
    /// Its health check.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub health_check: Option<Box<PodHealthCheck>>,
    /// A Mesos check (`check.raml`), passed through.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub check: Option<Box<Value>>,
    /// Which pod volumes it mounts where.
    #[serde(skip_serializing_if = "Vec::is_empty")]
    pub volume_mounts: Vec<VolumeMount>,
    /// What to fetch into the sandbox first (`artifacts`, the shape of an
    /// app's `fetch`).
    #[serde(skip_serializing_if = "Vec::is_empty")]
    pub artifacts: Vec<FetchUri>,
    /// Free-form metadata.
    #[serde(skip_serializing_if = "Labels::is_empty")]
    pub labels: Labels,
    /// Kill grace.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub lifecycle: Option<Lifecycle>,
    /// Allocate a TTY.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub tty: Option<bool>,
}

impl PodContainer {
    /// A container with Marathon's defaults and nothing else.
    pub fn new(name: impl Into<String>) -> PodContainer {
        PodContainer {
            name: name.into(),
            exec: None,
            resources: PodResources::DEFAULT,
            resource_limits: None,
            endpoints: Vec::new(),
            linux_info: None,
            image: None,
            environment: BTreeMap::new(),
            user: None,
            health_check: None,
            check: None,
            volume_mounts: Vec::new(),
            artifacts: Vec::new(),
            labels: Labels::new(),
            lifecycle: None,
            tty: None,
        }
    }

    /// The SIGTERM-to-SIGKILL grace it asks for, if any.
    pub fn kill_grace_period_seconds(&self) -> Option<f64> {
        self.lifecycle.and_then(|l| l.kill_grace_period_seconds)
    }
}

/// The Mesos disk a persistent volume lives on.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "lowercase")]
pub enum DiskType {
    /// The agent's root disk (default without a profile).
    Root,
    /// A `PATH` disk resource.
    Path,
    /// A `MOUNT` disk resource, used whole (default with a profile).
    Mount,
}

/// `persistent` of a persistent volume (`PersistentVolumeInfo`).
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct PersistentVolumeInfo {
    /// Which disk (always written).
    #[serde(rename = "type")]
    pub disk_type: DiskType,
    /// Size in MB.
    pub size: u64,
    /// For mount disks: the largest disk to accept.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub max_size: Option<u64>,
    /// Only disks with this storage profile.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub profile_name: Option<String>,
    /// Where the disk may be, as `[field, OPERATOR, value]` (always
    /// written).
    pub constraints: Vec<Vec<String>>,
}

/// `volumes[]`: a volume of the pod, mounted by its containers through
/// `volumeMounts`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum PodVolume {
    /// `{name}`: an empty directory in the executor's sandbox, shared by
    /// the containers that mount it.
    Ephemeral {
        /// Its name.
        name: String,
    },
    /// `{name, host}`: a path on the agent (or in the sandbox).
    Host {
        /// Its name.
        name: String,
        /// The path.
        host: String,
    },
    /// `{name, secret}`: a secret as a file.
    Secret {
        /// Its name.
        name: String,
        /// The name of one of the pod's `secrets`.
        secret: String,
    },
    /// `{name, persistent}`: a reserved local volume that outlives the
    /// instance (makes the pod resident).
    Persistent {
        /// Its name.
        name: String,
        /// Size and disk.
        persistent: Box<PersistentVolumeInfo>,
    },
}

impl PodVolume {
    /// The volume's name.
    pub fn name(&self) -> &str {
        match self {
            PodVolume::Ephemeral { name }
            | PodVolume::Host { name, .. }
            | PodVolume::Secret { name, .. }
            | PodVolume::Persistent { name, .. } => name,
        }
    }

    /// Whether it is a persistent (local, reserved) volume.
    pub fn is_persistent(&self) -> bool {
        matches!(self, PodVolume::Persistent { .. })
    }
}

impl Serialize for PodVolume {
    fn serialize<S: Serializer>(&self, serializer: S) -> Result<S::Ok, S::Error> {
        let mut m = serializer.serialize_map(None)?;
        m.serialize_entry("name", self.name())?;
        match self {
            PodVolume::Ephemeral { .. } => {}
            PodVolume::Host { host, .. } => m.serialize_entry("host", host)?,
            PodVolume::Secret { secret, .. } => m.serialize_entry("secret", secret)?,
            PodVolume::Persistent { persistent, .. } => {
                m.serialize_entry("persistent", persistent)?
            }
        }
        m.end()
    }
}

/// The operators of placement constraints (`constraint.raml`).
pub const CONSTRAINT_OPERATORS: [&str; 7] = [
    "UNIQUE", "CLUSTER", "GROUP_BY", "LIKE", "UNLIKE", "MAX_PER", "IS",
];

/// `scheduling.placement.constraints[]`: a constraint in the object form
/// pods use (`{fieldName, operator, value}`), kept as given; see
/// [`PodDefinition::constraint_parts`](super::PodDefinition::constraint_parts)
/// for the parsed form.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct PodConstraint {
    /// The attribute, `hostname`, `@region` or `@zone`.
    pub field_name: String,
    /// One of [`CONSTRAINT_OPERATORS`].
    pub operator: String,
    /// The operator's argument.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub value: Option<String>,
}

impl PodConstraint {
    /// The app form: `[field, OPERATOR]` or `[field, OPERATOR, value]`.
    pub fn to_parts(&self) -> Vec<String> {
        let mut parts = vec![self.field_name.clone(), self.operator.clone()];
        parts.extend(self.value.clone());
        parts
    }
}

/// `scheduling.backoff`: the launch delay after failures, in seconds
/// (fractions allowed, unlike an app's).
#[derive(Debug, Clone, Copy, PartialEq, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct PodBackoff {
    /// The first delay (default 1).
    pub backoff: f64,
    /// Growth per failure (default 1.15).
    pub backoff_factor: f64,
    /// The cap (default 300).
    pub max_launch_delay: f64,
}

impl PodBackoff {
    /// `{1, 1.15, 300}`.
    pub const DEFAULT: PodBackoff = PodBackoff {
        backoff: 1.0,
        backoff_factor: 1.15,
        max_launch_delay: 300.0,
    };
}

/// An endpoint that needs a port from the offer, in the order host ports
/// are assigned (containers, then their endpoints, as declared).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct HostPortEndpoint<'a> {
    /// The container declaring it.
    pub container: &'a str,
    /// The endpoint.
    pub endpoint: &'a Endpoint,
    /// 0 for any offered port, else exactly this one.
    pub host_port: u16,
}
