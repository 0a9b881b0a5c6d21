//! Marathon's readiness checks (shared/reference/marathon-api.md §2.4) as
//! values: what to probe for one task ([`ReadinessTarget`]) and what a probe
//! found ([`ReadinessResult`]). The [`HealthChecker`](super::HealthChecker)
//! runs them.

use crate::state::app::ports::host_port_at;
use crate::state::app::{AppDefinition, PathId, ReadinessCheck, Timestamp};
use crate::state::instance::{Condition, Instance};

/// The most of a response body a [`ReadinessResult`] keeps; the rest is not
/// read.
pub const MAX_BODY_BYTES: usize = 4096;

/// One readiness check of one running task: what to probe and where.
#[derive(Debug, Clone, PartialEq)]
pub struct ReadinessTarget {
    /// The Mesos task id.
    pub task_id: String,
    /// The app.
    pub app_id: PathId,
    /// The agent's hostname (or IP) to connect to.
    pub host: String,
    /// The host port of the port named `portName` ([`readiness_port_of`]).
    pub port: u16,
    /// The check's position in the app's `readinessChecks`.
    pub check_index: usize,
    /// The check.
    pub check: ReadinessCheck,
}

impl ReadinessTarget {
    /// What identifies it across
    /// [`HealthChecker::set_readiness_targets`](super::HealthChecker::set_readiness_targets)
    /// calls and in [`ReadinessResult`]s: the task id and the check's index.
    pub fn key(&self) -> (&str, usize) {
        (&self.task_id, self.check_index)
    }
}

/// An HTTP answer to a readiness probe, as Marathon keeps it with
/// `preserveLastResponse`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct HttpResponse {
    /// The HTTP status.
    pub status: u16,
    /// The media type of `Content-Type`, without parameters
    /// (`application/json`); empty without the header.
    pub content_type: String,
    /// The body as UTF-8 (invalid sequences replaced), cut after
    /// [`MAX_BODY_BYTES`] bytes at a character boundary.
    pub body: String,
}

/// The outcome of one probe of one [`ReadinessTarget`].
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ReadinessResult {
    /// The probed task.
    pub task_id: String,
    /// The check's position in the app's `readinessChecks`.
    pub check_index: usize,
    /// The check's `name`.
    pub name: String,
    /// Whether the answer's status is in `httpStatusCodesForReady`.
    pub ready: bool,
    /// The answer, only with `preserveLastResponse`. When no answer came
    /// (refused, timed out, TLS handshake failed), Marathon's stand-in:
    /// status 504, `text/plain`, body `Baton could not query <url>: <cause>`.
    pub last_response: Option<HttpResponse>,
    /// Why it is not ready (`503 Service Unavailable`, a connect error, a
    /// timeout, …); `None` when ready. Not part of Marathon's JSON: for logs and events.
    pub cause: Option<String>,
    /// When the probe ended.
    pub at: Timestamp,
}

/// The port a readiness check probes on a task: the host port of the
/// declared port ([`AppDefinition::declared_ports`]) named `portName`.
/// `None` when no port has that name, the port has no host port (a
/// container-network port), or the task lacks that host port. `host_ports`
/// as for [`port_of`](crate::state::app::ports::port_of).
pub fn readiness_port_of(
    app: &AppDefinition,
    check: &ReadinessCheck,
    host_ports: &[u64],
) -> Option<u16> {
    let declared = app.declared_ports();
    let index = declared
        .iter()
        .position(|d| d.name == Some(check.port_name.as_str()))?;
    host_port_at(&declared, index, host_ports)
}

/// The readiness targets of one instance running `app` (the definition of
/// the version it runs): one per readiness check whose port resolves, if its
/// task is RUNNING.
///
/// Marathon runs readiness checks only for the instances of the version a
/// deployment is bringing up, and only while that deployment lasts; picking
/// those instances is the caller's part.
pub fn readiness_targets_for(app: &AppDefinition, instance: &Instance) -> Vec<ReadinessTarget> {
    let Some(task) = instance
        .task
        .as_ref()
        .filter(|t| t.condition == Condition::Running)
    else {
        return Vec::new();
    };
    app.readiness_checks
        .iter()
        .enumerate()
        .filter_map(|(check_index, check)| {
            Some(ReadinessTarget {
                task_id: task.task_id.clone(),
                app_id: instance.app_id.clone(),
                host: task.hostname.to_string(),
                port: readiness_port_of(app, check, &task.host_ports)?,
                check_index,
                check: check.clone(),
            })
        })
        .collect()
}

#[cfg(test)]
mod tests {

    use super::*;
    use crate::state::app::{AppDefaults, ReadinessProtocol};
    use crate::state::instance::InstanceTask;

    fn app(json: &str) -> AppDefinition {
        AppDefinition::from_json(json.as_bytes(), &PathId::root(), &AppDefaults::default())
            .expect("valid app")
    }

    fn named(port_name: &str) -> ReadinessCheck {
        ReadinessCheck {
            name: "readinessCheck".into(),
            protocol: ReadinessProtocol::Http,
            path: "/ready".into(),
            port_name: port_name.into(),
            interval_seconds: 30,
            timeout_seconds: 10,
            http_status_codes_for_ready: vec![200],
            preserve_last_response: false,
        }
    }

    #[test]
    fn the_port_is_the_host_port_of_the_port_named_port_name() {
        let a = app(r#"{"id":"/a","cmd":"x","portDefinitions":[
                {"port":0,"name":"admin"},{"port":0},{"port":0,"name":"http-api"}]}"#);
        let ports = [31000, 31001, 31002];
        assert_eq!(
            readiness_port_of(&a, &named("http-api"), &ports),
            Some(31002)
        );
        assert_eq!(readiness_port_of(&a, &named("admin"), &ports), Some(31000));
        assert_eq!(readiness_port_of(&a, &named("nope"), &ports), None);
        assert_eq!(
            readiness_port_of(&a, &named("http-api"), &ports[..2]),
            None,
            "a host port the task lacks"
        );
    }

    #[test]
    fn port_names_skip_mappings_without_a_host_port() {
        let a = app(r#"{"id":"/a","networks":[{"mode":"container","name":"n"}],
                "container":{"type":"DOCKER","docker":{"image":"nginx"},
                  "portMappings":[{"containerPort":80,"name":"inside"},
                                  {"containerPort":81,"hostPort":0,"name":"web"}]}}"#);
        assert_eq!(readiness_port_of(&a, &named("web"), &[31005]), Some(31005));
        assert_eq!(
            readiness_port_of(&a, &named("inside"), &[31005]),
            None,
            "a container-network port is not reachable from the scheduler"
        );
    }

    #[test]
    fn targets_are_the_resolvable_checks_of_a_running_task() {
        let mut a = app(r#"{"id":"/shop/web","cmd":"x",
                "portDefinitions":[{"port":0,"name":"metrics"},{"port":0,"name":"http-api"}]}"#);
        a.readiness_checks = vec![named("missing"), named("http-api")];
        let at = Timestamp::from_millis(5_000);
        let mut instance = Instance::schedule(a.id.clone(), at, at);
        assert!(readiness_targets_for(&a, &instance).is_empty());
        instance.task = Some(InstanceTask {
            condition: Condition::Staging,
            ..InstanceTask::launched(
                "shop_web.instance-x._app.1".into(),
                "agent".into(),
                "10.0.0.7".into(),
                vec![31000, 31001],
                Timestamp::from_millis(1_000),
            )
        });
        assert!(
            readiness_targets_for(&a, &instance).is_empty(),
            "not running yet"
        );
        let task = instance.task.as_mut().unwrap();
        task.condition = Condition::Running;
        task.started_at = Some(at);

        let targets = readiness_targets_for(&a, &instance);
        assert_eq!(targets.len(), 1, "{targets:?}");
        let t = &targets[0];
        assert_eq!(t.key(), ("shop_web.instance-x._app.1", 1));
        assert_eq!(t.app_id, a.id);
        assert_eq!((t.host.as_str(), t.port), ("10.0.0.7", 31001));
        assert_eq!(t.check, named("http-api"));
    }
}
