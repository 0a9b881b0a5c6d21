//! Marathon-level health checks: the HTTP, HTTPS and TCP checks Marathon
//! runs from the scheduler (shared/reference/marathon-api.md §2.3, §5.5).
//! Mesos-level checks (COMMAND, MESOS_*) run on the agent and arrive as the
//! `healthy` flag of task statuses; they are not handled here.
//!
//! The reconcile loop drives it in three steps:
//!
//! 1. it derives the [`Target`]s from its state — one per running task and
//!    Marathon-level check, [`targets_for`] builds them for one instance — and
//!    hands the whole set to [`HealthChecker::set_targets`] whenever it
//!    changes (level-triggered: what is absent stops being checked, what is
//!    unchanged keeps its schedule);
//! 2. the [`HealthChecker`] probes each target on its own timer (first after
//!    `min(intervalSeconds, 5 s)`, then every `intervalSeconds`), all probes
//!    sharing one bound on concurrent checks (Marathon's
//!    `--max_concurrent_marathon_health_checks`, default 256), and sends a
//!    [`HealthResult`] per probe;
//! 3. the loop feeds each result to that target's [`CheckState`]
//!    ([`CheckState::record`], pure), whose [`Verdict`] says whether the
//!    health changed (events) and whether the task is due to be killed
//!    (`consecutiveFailures ≥ maxConsecutiveFailures > 0`);
//!    the REST API renders a task's `healthCheckResults` from those states.
//!
//! A probe passes on HTTP status 200–399 within `timeoutSeconds` (redirects
//! are not followed; a 3xx passes, as in Marathon), or on a TCP connect
//! within `timeoutSeconds`. With `ignoreHttp1xx` a 1xx answer yields no
//! result at all, as in Marathon's `HealthCheckWorker`. HTTPS is judged as
//! HTTP; as in Marathon, the task's certificate is not verified (any chain,
//! any name).
//!
//! Results may trail a target's removal by one probe already in the channel;
//! the loop drops results for tasks it no longer tracks.
//!
//! Readiness checks (§2.4) run on the same [`HealthChecker`] — same client,
//! same bound on concurrent probes — when it was spawned by
//! [`HealthChecker::spawn_with_readiness`], whose second channel carries
//! their [`ReadinessResult`]s. The loop derives the [`ReadinessTarget`]s
//! ([`readiness_targets_for`]: the host port named `portName`) only for the
//! instances of an app version a deployment is bringing up, while it lasts,
//! and hands them to [`HealthChecker::set_readiness_targets`] (level-
//! triggered, independent of the health targets). A target is probed at once,
//! then every `intervalSeconds` (each probe bounded by `timeoutSeconds`) until
//! an answer's status is in `httpStatusCodesForReady`; that ready result is
//! final, as in Marathon. With `preserveLastResponse` a result carries the
//! answer (its first [`MAX_BODY_BYTES`]); the REST API
//! renders Marathon's `{name, taskId, ready, lastResponse}`. HTTPS readiness
//! checks, like HTTPS health checks, accept any certificate.

mod checker;
mod readiness;
mod state;

pub use checker::{CheckError, FIRST_CHECK_AFTER_SECONDS, HealthChecker, Options, Schedule};
pub use readiness::{
    HttpResponse, MAX_BODY_BYTES, ReadinessResult, ReadinessTarget, readiness_port_of,
    readiness_targets_for,
};
pub use state::{CheckState, Verdict, instance_alive};

use crate::state::app::ports::port_of;
use crate::state::app::{AppDefinition, HealthCheck, PathId, Timestamp};
use crate::state::instance::{Condition, Instance};

/// One Marathon-level check of one running task: what to probe and where.
#[derive(Debug, Clone, PartialEq)]
pub struct Target {
    /// The Mesos task id.
    pub task_id: String,
    /// The instance the task belongs to (`<app>.instance-<uuid>`).
    pub instance_id: String,
    /// The app.
    pub app_id: PathId,
    /// The agent's hostname (or IP) to connect to.
    pub host: String,
    /// The port to probe ([`port_of`]).
    pub port: u16,
    /// The check's position in the app's `healthChecks`.
    pub check_index: usize,
    /// The check.
    pub check: HealthCheck,
    /// When the task was reported RUNNING (the grace period counts from it).
    pub started_at: Timestamp,
}

impl Target {
    /// What identifies it across [`HealthChecker::set_targets`] calls and in
    /// [`HealthResult`]s: the task id and the check's index.
    pub fn key(&self) -> (&str, usize) {
        (&self.task_id, self.check_index)
    }
}

/// The outcome of one probe of one [`Target`].
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct HealthResult {
    /// The probed task.
    pub task_id: String,
    /// The check's position in the app's `healthChecks`.
    pub check_index: usize,
    /// Whether the probe passed.
    pub alive: bool,
    /// Why it failed (`500 Internal Server Error`, a connect error, …);
    /// `None` when it passed.
    pub cause: Option<String>,
    /// When the probe ended.
    pub at: Timestamp,
}

/// The targets of one instance running `app` (the definition of the version
/// it runs): one per Marathon-level check whose port resolves, if its task
/// is RUNNING. Mesos-level checks and unresolvable ports are skipped.
pub fn targets_for(app: &AppDefinition, instance: &Instance) -> Vec<Target> {
    let Some(task) = instance
        .task
        .as_ref()
        .filter(|t| t.condition == Condition::Running)
    else {
        return Vec::new();
    };
    let instance_id = instance.instance_id();
    app.health_checks
        .iter()
        .enumerate()
        .filter(|(_, check)| !check.protocol.is_mesos())
        .filter_map(|(check_index, check)| {
            Some(Target {
                task_id: task.task_id.clone(),
                instance_id: instance_id.clone(),
                app_id: instance.app_id.clone(),
                host: task.hostname.to_string(),
                port: port_of(app, check, &task.host_ports)?,
                check_index,
                check: check.clone(),
                started_at: task.started_at.unwrap_or(task.launched_at),
            })
        })
        .collect()
}

#[cfg(test)]
pub(crate) mod test_support {
    use crate::state::app::{HealthCheck, HealthCheckProtocol, IpProtocol};

    /// A check with Marathon's defaults and the given protocol.
    pub fn check(protocol: HealthCheckProtocol) -> HealthCheck {
        HealthCheck {
            protocol,
            path: protocol.is_http().then(|| "/".to_string()),
            port_index: Some(0),
            port: None,
            command: None,
            ignore_http1xx: None,
            grace_period_seconds: 300,
            interval_seconds: 60,
            timeout_seconds: 20,
            max_consecutive_failures: 3,
            delay_seconds: 15,
            ip_protocol: IpProtocol::V4,
        }
    }
}

#[cfg(test)]
mod tests {

    use super::test_support::check;
    use super::*;
    use crate::state::app::{AppDefaults, HealthCheckProtocol};
    use crate::state::instance::InstanceTask;

    fn app(json: &str) -> AppDefinition {
        AppDefinition::from_json(json.as_bytes(), &PathId::root(), &AppDefaults::default())
            .expect("valid app")
    }

    fn with_index(index: u32) -> HealthCheck {
        HealthCheck {
            port_index: Some(index),
            ..check(HealthCheckProtocol::Http)
        }
    }

    #[test]
    fn literal_port_wins_over_port_index() {
        let a = app(r#"{"id":"/a","cmd":"x","portDefinitions":[{"port":0},{"port":0}]}"#);
        let hc = HealthCheck {
            port: Some(8080),
            ..with_index(1)
        };
        assert_eq!(port_of(&a, &hc, &[31000, 31001]), Some(8080));
    }

    #[test]
    fn port_index_addresses_the_host_ports_in_declaration_order() {
        let a = app(r#"{"id":"/a","cmd":"x","portDefinitions":[{"port":0},{"port":0}]}"#);
        assert_eq!(port_of(&a, &with_index(0), &[31000, 31001]), Some(31000));
        assert_eq!(port_of(&a, &with_index(1), &[31000, 31001]), Some(31001));
        let default_index = HealthCheck {
            port_index: None,
            ..with_index(0)
        };
        assert_eq!(port_of(&a, &default_index, &[31000, 31001]), Some(31000));
        // Beyond the declared ports, or a host port the task did not get.
        assert_eq!(port_of(&a, &with_index(2), &[31000, 31001, 31002]), None);
        assert_eq!(port_of(&a, &with_index(1), &[31000]), None);
    }

    #[test]
    fn port_index_skips_mappings_without_a_host_port() {
        // Container networking: the first mapping has no host port, so the
        // task's only host port belongs to the second mapping.
        let a = app(r#"{"id":"/a","networks":[{"mode":"container","name":"n"}],
                "container":{"type":"DOCKER","docker":{"image":"nginx"},
                  "portMappings":[{"containerPort":80},{"containerPort":81,"hostPort":0}]}}"#);
        let declared: Vec<Option<u16>> = a.declared_ports().iter().map(|d| d.host_port).collect();
        assert_eq!(declared, vec![None, Some(0)]);
        assert_eq!(port_of(&a, &with_index(1), &[31005]), Some(31005));
        assert_eq!(port_of(&a, &with_index(0), &[31005]), None);

        // Mesos-level checks probe from inside: the container port.
        let mesos = |index| HealthCheck {
            port_index: Some(index),
            ..check(HealthCheckProtocol::MesosHttp)
        };
        assert_eq!(port_of(&a, &mesos(0), &[31005]), Some(80));
        assert_eq!(port_of(&a, &mesos(1), &[31005]), Some(81));
    }

    #[test]
    fn mesos_checks_take_the_host_port_without_port_mappings() {
        let a = app(r#"{"id":"/a","cmd":"x","portDefinitions":[{"port":0},{"port":0}]}"#);
        let hc = HealthCheck {
            port_index: Some(1),
            ..check(HealthCheckProtocol::MesosTcp)
        };
        assert_eq!(port_of(&a, &hc, &[31000, 31001]), Some(31001));
        // A bridge mapping whose container port is 0 means "the host port".
        let b = app(r#"{"id":"/b","networks":[{"mode":"container/bridge"}],
                "container":{"type":"DOCKER","docker":{"image":"nginx"},
                  "portMappings":[{"containerPort":0,"hostPort":0}]}}"#);
        let hc = HealthCheck {
            port_index: Some(0),
            ..check(HealthCheckProtocol::MesosHttp)
        };
        assert_eq!(port_of(&b, &hc, &[31007]), Some(31007));
    }

    #[test]
    fn targets_are_the_marathon_checks_of_a_running_task() {
        let mut a = app(r#"{"id":"/shop/web","cmd":"x","portDefinitions":[{"port":0}]}"#);
        a.health_checks = vec![
            check(HealthCheckProtocol::MesosHttp),
            check(HealthCheckProtocol::Tcp),
            with_index(3),
        ];
        let started = Timestamp::from_millis(5_000);
        let mut instance = Instance::schedule(a.id.clone(), started, started);
        assert!(targets_for(&a, &instance).is_empty());
        instance.task = Some(InstanceTask {
            condition: Condition::Starting,
            ..InstanceTask::launched(
                "shop_web.instance-x._app.1".into(),
                "agent".into(),
                "10.0.0.7".into(),
                vec![31000],
                Timestamp::from_millis(1_000),
            )
        });
        assert!(targets_for(&a, &instance).is_empty(), "not running yet");
        let task = instance.task.as_mut().unwrap();
        task.condition = Condition::Running;
        task.started_at = Some(started);

        let targets = targets_for(&a, &instance);
        assert_eq!(targets.len(), 1, "{targets:?}");
        let t = &targets[0];
        assert_eq!(t.key(), ("shop_web.instance-x._app.1", 1));
        assert_eq!(t.instance_id, instance.instance_id());
        assert_eq!(t.app_id, a.id);
        assert_eq!((t.host.as_str(), t.port), ("10.0.0.7", 31000));
        assert_eq!(t.check.protocol, HealthCheckProtocol::Tcp);
        assert_eq!(t.started_at, started);
    }
}
