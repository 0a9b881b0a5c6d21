//! What the launcher derives from an app: Marathon's task ids
//! (`core/task/Task.scala`) and the environment every task gets
//! (`mesos/TaskBuilder.scala`, `mesos/EnvironmentHelper.scala`; see
//! style-and-crates.md C.3).

use std::sync::LazyLock;

use regex::Regex;
use uuid::Uuid;

use super::{AppDefinition, EnvValue, PathId, Timestamp};

/// Why a string is not a Marathon task id.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum TaskIdError {
    /// No known task id form matches.
    #[error("taskId {0} no valid identifier")]
    Unrecognized(String),
    /// The app part is not a valid safe path.
    #[error("taskId {0} names no valid app id")]
    BadAppId(String),
}

/// What a task id says.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct TaskIdParts {
    /// The app the task belongs to.
    pub app_id: PathId,
    /// The instance's uuid (for legacy ids, the task's own uuid).
    pub uuid: String,
    /// `instance-` (1.4+) or `marathon-` (older instance ids); `None` for
    /// legacy `app.<uuid>` ids.
    pub prefix: Option<String>,
    /// `_app` for apps (pods name a container); `None` for legacy ids.
    pub container: Option<String>,
    /// The launch attempt (1.8+ ids and legacy resident ids).
    pub incarnation: Option<u64>,
}

impl TaskIdParts {
    /// The instance id this task belongs to: `<safe>.instance-<uuid>`
    /// (for legacy ids, `<safe>.marathon-<uuid>`, as Marathon maps them).
    pub fn instance_id(&self) -> String {
        let prefix = self.prefix.as_deref().unwrap_or("marathon-");
        format!("{}.{prefix}{}", self.app_id.safe(), self.uuid)
    }
}

/// The instance id of `app`'s instance `uuid`: `<safe path>.instance-<uuid>`.
pub fn instance_id(app: &PathId, uuid: Uuid) -> String {
    format!("{}.instance-{uuid}", app.safe())
}

/// The Mesos task id of an app instance's `incarnation`-th launch:
/// `<safe path>.instance-<uuid>._app.<incarnation>` (Marathon 1.8+).
pub fn marathon_task_id(app: &PathId, uuid: Uuid, incarnation: u64) -> String {
    format!("{}._app.{incarnation}", instance_id(app, uuid))
}

/// 1.8+: `app.instance-<uuid>._app.<n>`.
static WITH_INCARNATION: LazyLock<Regex> = LazyLock::new(|| {
    Regex::new(r"^(.+)\.(instance-|marathon-)([^_.]+)[._]([^.]+)\.(\d+)$").expect("valid regex")
});
/// 1.4–1.7: `app.instance-<uuid>._app`.
static WITH_INSTANCE: LazyLock<Regex> = LazyLock::new(|| {
    Regex::new(r"^(.+)\.(instance-|marathon-)([^_.]+)[._]([^.]+)$").expect("valid regex")
});
/// Legacy resident: `app.<uuid>.<attempt>`.
static LEGACY_RESIDENT: LazyLock<Regex> =
    LazyLock::new(|| Regex::new(r"^(.+)[._]([^_.]+)\.(\d+)$").expect("valid regex"));
/// Legacy: `app.<uuid>` (or `app_<uuid>`).
static LEGACY: LazyLock<Regex> =
    LazyLock::new(|| Regex::new(r"^(.+)[._]([^_.]+)$").expect("valid regex"));

/// Parses a task id of any form Marathon ever produced, in Marathon's
/// order: 1.8+ (`app.instance-<uuid>._app.<n>`), 1.4–1.7
/// (`app.instance-<uuid>._app`), legacy resident (`app.<uuid>.<n>`), and
/// legacy (`app.<uuid>`).
pub fn parse_task_id(id: &str) -> Result<TaskIdParts, TaskIdError> {
    let app = |safe: &str| PathId::from_safe(safe).ok_or_else(|| TaskIdError::BadAppId(id.into()));
    if let Some(c) = WITH_INCARNATION.captures(id) {
        return Ok(TaskIdParts {
            app_id: app(&c[1])?,
            uuid: c[3].to_string(),
            prefix: Some(c[2].to_string()),
            container: Some(c[4].to_string()),
            incarnation: c[5].parse().ok(),
        });
    }
    if let Some(c) = WITH_INSTANCE.captures(id) {
        return Ok(TaskIdParts {
            app_id: app(&c[1])?,
            uuid: c[3].to_string(),
            prefix: Some(c[2].to_string()),
            container: Some(c[4].to_string()),
            incarnation: None,
        });
    }
    if let Some(c) = LEGACY_RESIDENT.captures(id) {
        return Ok(TaskIdParts {
            app_id: app(&c[1])?,
            uuid: c[2].to_string(),
            prefix: None,
            container: None,
            incarnation: c[3].parse().ok(),
        });
    }
    if let Some(c) = LEGACY.captures(id) {
        return Ok(TaskIdParts {
            app_id: app(&c[1])?,
            uuid: c[2].to_string(),
            prefix: None,
            container: None,
            incarnation: None,
        });
    }
    Err(TaskIdError::Unrecognized(id.into()))
}

/// `EnvironmentHelper.maxEnvironmentVarLength`.
const MAX_ENV_LENGTH: usize = 512;
const LABEL_PREFIX: &str = "MARATHON_APP_LABEL_";

/// An environment under construction: insertion order, later values win.
#[derive(Default)]
struct Env(Vec<(String, String)>);

impl Env {
    fn set(&mut self, key: impl Into<String>, value: impl Into<String>) {
        let (key, value) = (key.into(), value.into());
        match self.0.iter_mut().find(|(k, _)| *k == key) {
            Some(slot) => slot.1 = value,
            None => self.0.push((key, value)),
        }
    }
}

/// Java's `Double.toString` for the values resources take (`1.0`, `0.25`,
/// `128.0`).
fn java_double(v: f64) -> String {
    format!("{v:?}")
}

/// `[^a-zA-Z0-9_]+` → `_`, upper-cased.
fn escape_label_key(key: &str) -> String {
    let mut out = String::with_capacity(key.len());
    let mut in_run = false;
    for c in key.chars() {
        if c.is_ascii_alphanumeric() || c == '_' {
            out.push(c.to_ascii_uppercase());
            in_run = false;
        } else if !in_run {
            out.push('_');
            in_run = true;
        }
    }
    out
}

fn utf16_len(s: &str) -> usize {
    s.encode_utf16().count()
}

/// The environment Marathon gives a task of `app` (version `version`)
/// launched on `host` as `task_id`, in the order Marathon layers it, later
/// entries overriding earlier ones (each key appears once):
///
/// 1. `MESOS_TASK_ID`, `MARATHON_APP_ID`, `MARATHON_APP_VERSION`,
///    `MARATHON_APP_DOCKER_IMAGE` (Docker containerizer only),
///    `MARATHON_APP_RESOURCE_{CPUS,MEM,DISK,GPUS}` (Java number format:
///    `1.0`, `128.0`, GPUs as an integer);
/// 2. `MARATHON_APP_LABELS` (the escaped keys, space-separated) and
///    `MARATHON_APP_LABEL_<KEY>` per label — keys upper-cased with runs of
///    characters outside `[A-Za-z0-9_]` turned into `_`; labels with keys of
///    493+ or values of 512+ characters are left out;
/// 3. the ports: `PORT<i>` per declared port, `PORT_<declared port>` (or
///    `PORT_<host port>` when the declared port is 0), `PORT_<NAME>` for
///    named ports (name upper-cased as is), `PORT` (the first host port)
///    and `PORTS` (all host ports, comma-separated);
/// 4. `HOST`;
/// 5. the app's own `env` literals, which win (secret references are left
///    to the launcher).
///
/// `host_ports` are the host ports the task got, one for each
/// [`super::DeclaredPort`] that wants one (`host_port` not `None`), in
/// declaration order. A declared port without a host port (container
/// networking) exports its container port instead; one whose container port
/// is also 0 exports nothing (Marathon would invent a random port).
pub fn task_env(
    app: &AppDefinition,
    version: Timestamp,
    host: &str,
    host_ports: &[u64],
    task_id: &str,
) -> Vec<(String, String)> {
    let mut env = Env::default();
    env.set("MESOS_TASK_ID", task_id);
    env.set("MARATHON_APP_ID", app.id.as_str());
    env.set("MARATHON_APP_VERSION", version.to_string());
    if let Some(image) = app.docker_image() {
        env.set("MARATHON_APP_DOCKER_IMAGE", image);
    }
    env.set("MARATHON_APP_RESOURCE_CPUS", java_double(app.cpus));
    env.set("MARATHON_APP_RESOURCE_MEM", java_double(app.mem));
    env.set("MARATHON_APP_RESOURCE_DISK", java_double(app.disk));
    env.set("MARATHON_APP_RESOURCE_GPUS", app.gpus.to_string());

    let mut label_keys: Vec<String> = Vec::new();
    let mut label_values: Vec<(String, &str)> = Vec::new();
    for (key, value) in &app.labels {
        if utf16_len(key) < MAX_ENV_LENGTH - LABEL_PREFIX.len() && utf16_len(value) < MAX_ENV_LENGTH
        {
            let escaped = escape_label_key(key);
            if !label_keys.contains(&escaped) {
                label_keys.push(escaped.clone());
            }
            label_values.push((escaped, value));
        }
    }
    env.set("MARATHON_APP_LABELS", label_keys.join(" "));
    for (key, value) in label_values {
        env.set(format!("{LABEL_PREFIX}{key}"), value);
    }

    ports_env(app, host_ports, &mut env);
    env.set("HOST", host);
    for (key, value) in &app.env {
        if let EnvValue::Value(v) = value {
            env.set(key.clone(), v.clone());
        }
    }
    env.0
}

/// `EnvironmentHelper.portsEnv` without the random container ports.
fn ports_env(app: &AppDefinition, host_ports: &[u64], env: &mut Env) {
    let declared = app.declared_ports();
    if declared.is_empty() {
        return;
    }
    let mut given = host_ports.iter().copied();
    let effective: Vec<Option<u64>> = declared
        .iter()
        .map(|d| d.host_port.and_then(|_| given.next()))
        .collect();
    for (i, (d, host)) in declared.iter().zip(&effective).enumerate() {
        match host {
            Some(port) => env.set(format!("PORT{i}"), port.to_string()),
            None if d.port != 0 => env.set(format!("PORT{i}"), d.port.to_string()),
            None => {}
        }
    }
    for (d, host) in declared.iter().zip(&effective) {
        match (d.port, host) {
            (0, Some(port)) => env.set(format!("PORT_{port}"), port.to_string()),
            (requested, Some(port)) => env.set(format!("PORT_{requested}"), port.to_string()),
            (0, None) => {}
            (requested, None) => env.set(format!("PORT_{requested}"), requested.to_string()),
        }
    }
    for (d, host) in declared.iter().zip(&effective) {
        let Some(name) = d.name else { continue };
        let key = format!("PORT_{}", name.to_uppercase());
        match host {
            Some(port) => env.set(key, port.to_string()),
            None if d.port != 0 => env.set(key, d.port.to_string()),
            None => {}
        }
    }
    let assigned: Vec<String> = effective.iter().flatten().map(u64::to_string).collect();
    if let Some(first) = assigned.first() {
        env.set("PORT", first.clone());
    }
    env.set("PORTS", assigned.join(","));
}
