//! The Marathon pod model: what `POST /v2/pods` accepts and `GET
//! /v2/pods/{id}` returns (shared/reference/marathon-api.md §1.7;
//! Marathon's `types/pod.raml` and `podContainer.raml`).
//!
//! This module owns, as pure code without I/O:
//!
//! - the types: [`PodDefinition`] and its parts ([`PodContainer`],
//!   [`Endpoint`], [`PodVolume`], [`PodHealthCheck`], …), reusing the app
//!   model's ids, labels, environment, secrets, networks, strategies and
//!   resource types where the JSON is the same;
//! - reading a pod from JSON ([`PodDefinition::from_json`]): Marathon's
//!   defaults and normalization applied, every problem reported at once in
//!   the app model's error shapes ([`AppError`]: 400 for wrong types, 422
//!   `{"message":"Object is not valid","details":[{"path":"/containers(0)/name","errors":[…]}]}`
//!   for broken rules);
//! - writing it back ([`Serialize`], [`PodDefinition::serialize_fields`]):
//!   the shape of Marathon's `GET /v2/pods/{id}`, defaults filled in; and
//!   the stored form ([`PodDefinition::stored`], read by [`Deserialize`]);
//! - what the scheduler derives from a pod: the resources of one instance,
//!   placement constraints in the offer matcher's type, host-port
//!   endpoints in assignment order, volume sharing, residency, versions.
//!
//! Paths in errors follow Marathon: `/field/sub` for members, `(i)` for
//! array items, `/` for the pod as a whole.
//!
//! ```
//! use baton::state::app::{AppDefaults, PathId};
//! use baton::state::app::pod::PodDefinition;
//!
//! let body = br#"{"id":"/web","containers":[{"name":"nginx","resources":{"cpus":0.5,"mem":64},
//!     "image":{"kind":"DOCKER","id":"nginx"},"endpoints":[{"name":"http"}]}]}"#;
//! let pod = PodDefinition::from_json(body, &PathId::root(), &AppDefaults::default()).expect("valid");
//! assert_eq!(pod.container_resources().cpus, 0.5);
//! assert_eq!(pod.host_port_endpoints()[0].host_port, 0);
//!
//! let err = PodDefinition::from_json(br#"{"id":"/p","containers":[]}"#, &PathId::root(), &AppDefaults::default())
//!     .unwrap_err();
//! assert_eq!(err.status(), 422);
//! assert_eq!(err.body()["details"][0]["path"], "/containers");
//! ```

mod parse;
#[cfg(test)]
mod tests;
mod types;
mod validate;

use std::collections::BTreeMap;

use serde::ser::SerializeMap;
use serde::{Deserialize, Deserializer, Serialize, Serializer};
use serde_json::Value;

use crate::state::app::{
    AppDefaults, AppError, EnvValue, ExecutorResources, KillSelection, Labels, Network,
    NetworkMode, PathId, Secret, Timestamp, UnreachableStrategy, UpgradeStrategy, VersionInfo,
};

pub use types::*;

/// A Marathon pod, normalized: defaults applied. See the module
/// documentation for reading and writing it.
#[derive(Debug, Clone, PartialEq)]
pub struct PodDefinition {
    /// The pod's id.
    pub id: PathId,
    /// Free-form metadata.
    pub labels: Labels,
    /// This definition's version (set by the server).
    pub version: Option<Timestamp>,
    /// Scaling and config-change versions (set by the server; stored, not
    /// part of Marathon's pod JSON).
    pub version_info: Option<VersionInfo>,
    /// The OS user of containers that name none.
    pub user: Option<String>,
    /// Environment of every container.
    pub environment: BTreeMap<String, EnvValue>,
    /// The containers, at least one, names unique.
    pub containers: Vec<PodContainer>,
    /// Secrets by name.
    pub secrets: BTreeMap<String, Secret>,
    /// Volumes the containers mount.
    pub volumes: Vec<PodVolume>,
    /// The network stack all containers share; empty means the agent's
    /// (host networking), as in Marathon.
    pub networks: Vec<Network>,
    /// Desired instance count (`scaling.instances`, default 1).
    pub instances: u32,
    /// `scaling.maxInstances` (Marathon before 1.4; still accepted).
    pub max_instances: Option<u32>,
    /// Launch backoff (`scheduling.backoff`).
    pub backoff: PodBackoff,
    /// Rolling upgrade limits (`scheduling.upgrade`; `{1, 1}`, or
    /// `{0.5, 0}` for resident pods).
    pub upgrade_strategy: UpgradeStrategy,
    /// Placement constraints as given, repeats dropped
    /// (`scheduling.placement.constraints`).
    pub constraints: Vec<PodConstraint>,
    /// Offer roles to accept; empty: the server's default
    /// (`scheduling.placement.acceptedResourceRoles`).
    pub accepted_resource_roles: Vec<String>,
    /// Scale-down order (`scheduling.killSelection`).
    pub kill_selection: KillSelection,
    /// Unreachable handling (`scheduling.unreachableStrategy`; `{0, 0}`,
    /// or disabled for resident pods).
    pub unreachable_strategy: UnreachableStrategy,
    /// The executor's own resources (default `{0.1, 32, 10}`).
    pub executor_resources: ExecutorResources,
    /// The Mesos role (default `--mesos_role`).
    pub role: String,
    /// `linuxInfo`, passed through.
    pub linux_info: Option<Box<Value>>,
    /// Launch all containers in one cgroup (pods from before Mesos
    /// sub-cgroups).
    pub legacy_shared_cgroups: bool,
}

impl PodDefinition {
    /// Defaults for every field and no containers (not valid until it gets
    /// one).
    pub fn new(id: PathId, defaults: &AppDefaults) -> PodDefinition {
        PodDefinition {
            id,
            labels: Labels::new(),
            version: None,
            version_info: None,
            user: None,
            environment: BTreeMap::new(),
            containers: Vec::new(),
            secrets: BTreeMap::new(),
            volumes: Vec::new(),
            networks: Vec::new(),
            instances: 1,
            max_instances: None,
            backoff: PodBackoff::DEFAULT,
            upgrade_strategy: UpgradeStrategy::DEFAULT,
            constraints: Vec::new(),
            accepted_resource_roles: Vec::new(),
            kill_selection: KillSelection::YoungestFirst,
            unreachable_strategy: UnreachableStrategy::DEFAULT,
            executor_resources: DEFAULT_EXECUTOR_RESOURCES,
            role: defaults.role.clone(),
            linux_info: None,
            legacy_shared_cgroups: false,
        }
    }

    /// Reads a pod from a request body (`POST /v2/pods`, `PUT
    /// /v2/pods/{id}`): parses, applies defaults and validates, reporting
    /// every problem at once. A relative `id` is resolved against `base`.
    /// Unknown fields are ignored.
    pub fn from_json(
        body: &[u8],
        base: &PathId,
        defaults: &AppDefaults,
    ) -> Result<PodDefinition, AppError> {
        let value: Value = serde_json::from_slice(body).map_err(|e| AppError::InvalidJson {
            details: e.to_string(),
        })?;
        PodDefinition::from_value(&value, base, defaults)
    }

    /// [`PodDefinition::from_json`] for an already parsed body.
    pub fn from_value(
        value: &Value,
        base: &PathId,
        defaults: &AppDefaults,
    ) -> Result<PodDefinition, AppError> {
        parse::read_pod(value, base, defaults, true)
    }

    /// The container named `name`.
    pub fn container(&self, name: &str) -> Option<&PodContainer> {
        self.containers.iter().find(|c| c.name == name)
    }

    /// What its containers take together (the executor's share is
    /// `executor_resources`). Summed in thousandths, Mesos' scalar
    /// precision, so that `0.1 + 0.2` asks for `0.3` and not a hair more.
    pub fn container_resources(&self) -> PodResources {
        fn millis(v: f64) -> i64 {
            // `as` saturates; validation keeps values finite.
            (v * 1000.0).round() as i64
        }
        let (mut cpus, mut mem, mut disk, mut gpus) = (0i64, 0i64, 0i64, 0u32);
        for r in self.containers.iter().map(|c| &c.resources) {
            cpus = cpus.saturating_add(millis(r.cpus));
            mem = mem.saturating_add(millis(r.mem));
            disk = disk.saturating_add(millis(r.disk));
            gpus = gpus.saturating_add(r.gpus);
        }
        PodResources {
            cpus: cpus as f64 / 1000.0,
            mem: mem as f64 / 1000.0,
            disk: disk as f64 / 1000.0,
            gpus,
        }
    }

    /// The constraints in the app form, `[field, OPERATOR(, value)]`.
    pub fn constraint_parts(&self) -> Vec<Vec<String>> {
        self.constraints
            .iter()
            .map(PodConstraint::to_parts)
            .collect()
    }

    /// Every endpoint of every container, in declaration order.
    pub fn endpoints(&self) -> impl Iterator<Item = (&PodContainer, &Endpoint)> {
        self.containers
            .iter()
            .flat_map(|c| c.endpoints.iter().map(move |e| (c, e)))
    }

    /// The endpoints that need a port from the offer, in the order host
    /// ports are assigned: containers, then their endpoints, as declared.
    pub fn host_port_endpoints(&self) -> Vec<HostPortEndpoint<'_>> {
        self.endpoints()
            .filter_map(|(c, e)| {
                e.host_port.map(|host_port| HostPortEndpoint {
                    container: &c.name,
                    endpoint: e,
                    host_port,
                })
            })
            .collect()
    }

    /// Why `next` cannot replace this resident pod (Marathon's
    /// `residentUpdateIsValid`): its instances relaunch on what they
    /// reserved, so the resources they take together, and their host
    /// ports, stay as they were. The path and message of the first
    /// problem; `None` when it may (the volumes are checked where every
    /// write passes, for apps and pods alike).
    pub fn resident_change_problem(&self, next: &PodDefinition) -> Option<(&'static str, String)> {
        if !self.is_resident() {
            return None;
        }
        let (old, new) = (self.container_resources(), next.container_resources());
        for (what, before, after) in [
            ("cpus", old.cpus, new.cpus),
            ("mem", old.mem, new.mem),
            ("disk", old.disk, new.disk),
            ("gpus", f64::from(old.gpus), f64::from(new.gpus)),
            (
                "executor cpus",
                self.executor_resources.cpus,
                next.executor_resources.cpus,
            ),
            (
                "executor mem",
                self.executor_resources.mem,
                next.executor_resources.mem,
            ),
            (
                "executor disk",
                self.executor_resources.disk,
                next.executor_resources.disk,
            ),
        ] {
            if (before - after).abs() > 1e-3 {
                return Some((
                    "/containers",
                    format!(
                        "{what} cannot be changed from {before} to {after} once the pod runs with persistent volumes: its instances relaunch on the resources they reserved"
                    ),
                ));
            }
        }
        let host_ports = |pod: &PodDefinition| {
            let mut ports: Vec<u32> = pod
                .host_port_endpoints()
                .iter()
                .map(|e| u32::from(e.host_port))
                .collect();
            ports.sort_unstable();
            ports
        };
        (host_ports(self) != host_ports(next)).then(|| {
            (
                "/containers",
                "host ports cannot be added, removed or changed once the pod runs with persistent volumes: its instances relaunch on the ports they reserved".to_string(),
            )
        })
    }

    /// Whether it has persistent volumes.
    pub fn has_persistent_volumes(&self) -> bool {
        self.volumes.iter().any(PodVolume::is_persistent)
    }

    /// Whether it is resident (Marathon's term: it has persistent volumes,
    /// so its instances stay where their reservations are).
    pub fn is_resident(&self) -> bool {
        self.has_persistent_volumes()
    }

    /// Whether the containers share the agent's network namespace (no
    /// container or bridge network).
    pub fn is_host_networking(&self) -> bool {
        self.networks.iter().all(|n| n.mode == NetworkMode::Host)
    }

    /// The version older instances are replaced from: `lastConfigChangeAt`,
    /// else `version`.
    pub fn last_config_change(&self) -> Option<Timestamp> {
        self.version_info
            .map(|v| v.last_config_change_at)
            .or(self.version)
    }

    /// The configuration version its instances run (the epoch for a pod
    /// never stamped).
    pub fn config_version(&self) -> Timestamp {
        self.last_config_change()
            .unwrap_or(Timestamp::from_millis(0))
    }

    /// This pod as the version stored at `now`: `scale_only` keeps the
    /// last config change, anything else makes `now` one.
    pub fn with_version(mut self, now: Timestamp, scale_only: bool) -> PodDefinition {
        let last_config_change_at = match (scale_only, self.last_config_change()) {
            (true, Some(previous)) => previous,
            _ => now,
        };
        self.version = Some(now);
        self.version_info = Some(VersionInfo {
            last_scaling_at: now,
            last_config_change_at,
        });
        self
    }

    /// Whether going from `self` to `to` replaces instances: anything but
    /// `instances`, versions and the kill and unreachable policies
    /// changed. Marathon's `PodDefinition.isUpgrade`, except that executor
    /// resources and `legacySharedCgroups` count too: running instances
    /// cannot pick those up.
    pub fn is_upgrade(&self, to: &PodDefinition) -> bool {
        let neutral = |p: &PodDefinition| PodDefinition {
            instances: 0,
            max_instances: None,
            version: None,
            version_info: None,
            kill_selection: KillSelection::YoungestFirst,
            unreachable_strategy: UnreachableStrategy::DEFAULT,
            ..p.clone()
        };
        self.id == to.id && neutral(self) != neutral(to)
    }

    /// The stored form: the Marathon shape plus `versionInfo`, read back
    /// by [`Deserialize`].
    pub fn stored(&self) -> StoredPod<'_> {
        StoredPod(self)
    }
}

/// `executorResources` when not given: `{0.1, 32, 10}`.
pub const DEFAULT_EXECUTOR_RESOURCES: ExecutorResources = ExecutorResources {
    cpus: 0.1,
    mem: 32.0,
    disk: 10.0,
};

/// Writes Marathon's `GET /v2/pods/{id}` shape: defaults filled in, empty
/// optional collections omitted as Marathon's `omitEmpty` does.
impl Serialize for PodDefinition {
    fn serialize<S: Serializer>(&self, serializer: S) -> Result<S::Ok, S::Error> {
        let mut m = serializer.serialize_map(None)?;
        self.serialize_fields(&mut m)?;
        m.end()
    }
}

/// [`PodDefinition::stored`]: the API shape plus `versionInfo`.
#[derive(Debug, Clone, Copy)]
pub struct StoredPod<'a>(&'a PodDefinition);

impl Serialize for StoredPod<'_> {
    fn serialize<S: Serializer>(&self, serializer: S) -> Result<S::Ok, S::Error> {
        let mut m = serializer.serialize_map(None)?;
        self.0.serialize_fields(&mut m)?;
        if let Some(info) = &self.0.version_info {
            m.serialize_entry("versionInfo", info)?;
        }
        m.end()
    }
}

impl PodDefinition {
    /// Writes the pod's members into a map being serialized, so that the
    /// API can add its own (a status's `spec` neighbours, …) without
    /// buffering the pod.
    pub fn serialize_fields<M: SerializeMap>(&self, m: &mut M) -> Result<(), M::Error> {
        #[derive(Serialize)]
        #[serde(rename_all = "camelCase")]
        struct Scaling {
            kind: &'static str,
            instances: u32,
            #[serde(skip_serializing_if = "Option::is_none")]
            max_instances: Option<u32>,
        }
        #[derive(Serialize)]
        #[serde(rename_all = "camelCase")]
        struct Placement<'a> {
            #[serde(skip_serializing_if = "<[_]>::is_empty")]
            constraints: &'a [PodConstraint],
            #[serde(skip_serializing_if = "<[_]>::is_empty")]
            accepted_resource_roles: &'a [String],
        }
        #[derive(Serialize)]
        #[serde(rename_all = "camelCase")]
        struct Scheduling<'a> {
            backoff: &'a PodBackoff,
            upgrade: &'a UpgradeStrategy,
            // Marathon omits an empty placement object.
            #[serde(skip_serializing_if = "Option::is_none")]
            placement: Option<Placement<'a>>,
            kill_selection: KillSelection,
            unreachable_strategy: UnreachableStrategy,
        }

        m.serialize_entry("id", &self.id)?;
        if !self.labels.is_empty() {
            m.serialize_entry("labels", &self.labels)?;
        }
        if let Some(version) = &self.version {
            m.serialize_entry("version", version)?;
        }
        if let Some(user) = &self.user {
            m.serialize_entry("user", user)?;
        }
        if !self.environment.is_empty() {
            m.serialize_entry("environment", &self.environment)?;
        }
        m.serialize_entry("containers", &self.containers)?;
        if !self.secrets.is_empty() {
            m.serialize_entry("secrets", &self.secrets)?;
        }
        if !self.volumes.is_empty() {
            m.serialize_entry("volumes", &self.volumes)?;
        }
        if !self.networks.is_empty() {
            m.serialize_entry("networks", &self.networks)?;
        }
        m.serialize_entry(
            "scaling",
            &Scaling {
                kind: "fixed",
                instances: self.instances,
                max_instances: self.max_instances,
            },
        )?;
        let placement = (!self.constraints.is_empty() || !self.accepted_resource_roles.is_empty())
            .then_some(Placement {
                constraints: &self.constraints,
                accepted_resource_roles: &self.accepted_resource_roles,
            });
        m.serialize_entry(
            "scheduling",
            &Scheduling {
                backoff: &self.backoff,
                upgrade: &self.upgrade_strategy,
                placement,
                kill_selection: self.kill_selection,
                unreachable_strategy: self.unreachable_strategy,
            },
        )?;
        m.serialize_entry("executorResources", &self.executor_resources)?;
        m.serialize_entry("role", &self.role)?;
        if let Some(linux_info) = &self.linux_info {
            m.serialize_entry("linuxInfo", linux_info)?;
        }
        if self.legacy_shared_cgroups {
            m.serialize_entry("legacySharedCgroups", &true)?;
        }
        Ok(())
    }
}

/// Reads what [`PodDefinition::stored`] (or [`Serialize`]) wrote: types
/// checked and defaults applied, but not re-validated, so rules added
/// later do not make stored pods unreadable.
impl<'de> Deserialize<'de> for PodDefinition {
    fn deserialize<D: Deserializer<'de>>(deserializer: D) -> Result<Self, D::Error> {
        let value = Value::deserialize(deserializer)?;
        parse::read_pod(&value, &PathId::root(), &AppDefaults::default(), false)
            .map_err(serde::de::Error::custom)
    }
}
