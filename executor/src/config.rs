//! The executor's settings, read from the environment the agent gives it
//! (`shared/reference/mesos-v1-api.md` §5.1).
//!
//! [`Config::from_env`] takes a getter instead of reading the process
//! environment so tests can feed it a map. It reports every missing or
//! invalid variable at once: an operator fixing a broken launch should not
//! have to rerun it once per variable.

use std::fmt;
use std::path::PathBuf;
use std::time::Duration;

use mesos_proto::Encoding;
use mesos_proto::util::parse_duration;

/// `MESOS_EXECUTOR_SHUTDOWN_GRACE_PERIOD` when unset (the agent's default).
pub const DEFAULT_SHUTDOWN_GRACE_PERIOD: Duration = Duration::from_secs(5);
/// `MESOS_RECOVERY_TIMEOUT` when unset (the agent's `--recovery_timeout`).
pub const DEFAULT_RECOVERY_TIMEOUT: Duration = Duration::from_secs(15 * 60);
/// `MESOS_SUBSCRIPTION_BACKOFF_MAX` when unset (the agent's
/// `--executor_reregistration_timeout`).
pub const DEFAULT_SUBSCRIPTION_BACKOFF_MAX: Duration = Duration::from_secs(2);
/// `BATON_LOAD_REPORT_INTERVAL` when unset.
pub const DEFAULT_LOAD_REPORT_INTERVAL: Duration = Duration::from_secs(5);

/// Everything the executor needs to know about where it runs.
#[derive(Debug, Clone, PartialEq)]
pub struct Config {
    /// `MESOS_FRAMEWORK_ID`.
    pub framework_id: String,
    /// `MESOS_EXECUTOR_ID`.
    pub executor_id: String,
    /// `MESOS_AGENT_ENDPOINT`: the agent's `ip:port`.
    pub agent_endpoint: String,
    /// `MESOS_SANDBOX`, else `MESOS_DIRECTORY`: the executor's sandbox.
    pub sandbox: PathBuf,
    /// `MESOS_CHECKPOINT` = `1`: the agent can recover us, so a lost
    /// connection means "reconnect", not "give up".
    pub checkpoint: bool,
    /// `MESOS_EXECUTOR_SHUTDOWN_GRACE_PERIOD`: how long SHUTDOWN may take.
    pub shutdown_grace_period: Duration,
    /// `MESOS_RECOVERY_TIMEOUT`: how long to keep reconnecting.
    pub recovery_timeout: Duration,
    /// `MESOS_SUBSCRIPTION_BACKOFF_MAX`: upper bound of the random wait
    /// between SUBSCRIBE attempts.
    pub subscription_backoff_max: Duration,
    /// `MESOS_EXECUTOR_AUTHENTICATION_TOKEN`, sent as a bearer token.
    pub auth_token: Option<String>,
    /// `BATON_EXECUTOR_ENCODING` (`protobuf`, the default, or `json`).
    pub encoding: Encoding,
    /// `BATON_LOAD_REPORT_INTERVAL`: how often to report the tasks' load
    /// to the framework (`None`: never, when set to zero).
    pub load_report_interval: Option<Duration>,
}

/// One environment variable that is missing or does not parse.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Problem {
    /// The variable's name.
    pub variable: &'static str,
    /// What is wrong with it.
    pub reason: String,
}

/// The environment does not describe a usable executor; lists every problem.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub struct ConfigError {
    /// All problems found, in a stable order.
    pub problems: Vec<Problem>,
}

impl fmt::Display for ConfigError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("invalid executor environment: ")?;
        for (i, p) in self.problems.iter().enumerate() {
            if i > 0 {
                f.write_str("; ")?;
            }
            write!(f, "{} {}", p.variable, p.reason)?;
        }
        Ok(())
    }
}

impl Config {
    /// Reads the settings through `get` (for the real process:
    /// `|name| std::env::var(name).ok()`).
    pub fn from_env(get: impl Fn(&str) -> Option<String>) -> Result<Config, ConfigError> {
        let mut problems = Vec::new();
        // Empty values count as unset: an agent never sends them on purpose.
        let get = |name: &str| get(name).filter(|v| !v.trim().is_empty());
        let mut required = |name: &'static str| {
            get(name).unwrap_or_else(|| {
                problems.push(Problem {
                    variable: name,
                    reason: "is not set".into(),
                });
                String::new()
            })
        };
        let framework_id = required("MESOS_FRAMEWORK_ID");
        let executor_id = required("MESOS_EXECUTOR_ID");
        let agent_endpoint = required("MESOS_AGENT_ENDPOINT");
        if !agent_endpoint.is_empty() && !is_host_port(&agent_endpoint) {
            problems.push(Problem {
                variable: "MESOS_AGENT_ENDPOINT",
                reason: format!("is {agent_endpoint:?}, expected ip:port"),
            });
        }

        let sandbox = get("MESOS_SANDBOX").or_else(|| get("MESOS_DIRECTORY"));
        if sandbox.is_none() {
            problems.push(Problem {
                variable: "MESOS_SANDBOX",
                reason: "is not set (nor MESOS_DIRECTORY)".into(),
            });
        }

        let checkpoint = match get("MESOS_CHECKPOINT").as_deref() {
            None | Some("0") => false,
            Some("1") => true,
            Some(other) => {
                problems.push(Problem {
                    variable: "MESOS_CHECKPOINT",
                    reason: format!("is {other:?}, expected \"1\" or \"0\""),
                });
                false
            }
        };

        let mut duration = |name: &'static str, default: Duration| match get(name) {
            None => default,
            Some(text) => parse_duration(&text).unwrap_or_else(|| {
                problems.push(Problem {
                    variable: name,
                    reason: format!("is {text:?}, expected a duration such as 5secs"),
                });
                default
            }),
        };
        let shutdown_grace_period = duration(
            "MESOS_EXECUTOR_SHUTDOWN_GRACE_PERIOD",
            DEFAULT_SHUTDOWN_GRACE_PERIOD,
        );
        let recovery_timeout = duration("MESOS_RECOVERY_TIMEOUT", DEFAULT_RECOVERY_TIMEOUT);
        let load_report_interval = Some(duration(
            "BATON_LOAD_REPORT_INTERVAL",
            DEFAULT_LOAD_REPORT_INTERVAL,
        ))
        .filter(|d| !d.is_zero());
        let subscription_backoff_max = duration(
            "MESOS_SUBSCRIPTION_BACKOFF_MAX",
            DEFAULT_SUBSCRIPTION_BACKOFF_MAX,
        );

        let encoding = match get("BATON_EXECUTOR_ENCODING") {
            None => Encoding::Protobuf,
            Some(text) => text.parse().unwrap_or_else(|e: String| {
                problems.push(Problem {
                    variable: "BATON_EXECUTOR_ENCODING",
                    reason: e,
                });
                Encoding::Protobuf
            }),
        };

        if !problems.is_empty() {
            return Err(ConfigError { problems });
        }
        Ok(Config {
            framework_id,
            executor_id,
            agent_endpoint,
            sandbox: PathBuf::from(sandbox.unwrap_or_default()),
            checkpoint,
            shutdown_grace_period,
            recovery_timeout,
            subscription_backoff_max,
            auth_token: get("MESOS_EXECUTOR_AUTHENTICATION_TOKEN"),
            encoding,
            load_report_interval,
        })
    }

    /// The executor API's URL on the agent.
    pub fn agent_url(&self) -> String {
        format!("http://{}/api/v1/executor", self.agent_endpoint)
    }
}

/// `ip:port`, `[v6]:port` or `host:port` with a numeric port.
fn is_host_port(text: &str) -> bool {
    if let Ok(addr) = text.parse::<std::net::SocketAddr>() {
        return addr.port() != 0;
    }
    match text.rsplit_once(':') {
        Some((host, port)) => {
            !host.is_empty()
                && !host.contains([':', '/', ' '])
                && port.parse::<u16>().is_ok_and(|p| p != 0)
        }
        None => false,
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::collections::HashMap;

    fn env(pairs: &[(&str, &str)]) -> impl Fn(&str) -> Option<String> {
        let map: HashMap<String, String> = pairs
            .iter()
            .map(|(k, v)| (k.to_string(), v.to_string()))
            .collect();
        move |name| map.get(name).cloned()
    }

    const MINIMAL: &[(&str, &str)] = &[
        ("MESOS_FRAMEWORK_ID", "fw-1"),
        ("MESOS_EXECUTOR_ID", "ex-1"),
        ("MESOS_AGENT_ENDPOINT", "127.0.0.1:5051"),
        ("MESOS_SANDBOX", "/tmp/sandbox"),
    ];

    #[test]
    fn minimal_environment_uses_the_agent_defaults() {
        let config = Config::from_env(env(MINIMAL)).unwrap();
        assert_eq!(config.framework_id, "fw-1");
        assert_eq!(config.executor_id, "ex-1");
        assert_eq!(config.agent_url(), "http://127.0.0.1:5051/api/v1/executor");
        assert_eq!(config.sandbox, PathBuf::from("/tmp/sandbox"));
        assert!(!config.checkpoint);
        assert_eq!(config.shutdown_grace_period, Duration::from_secs(5));
        assert_eq!(config.recovery_timeout, Duration::from_secs(900));
        assert_eq!(config.subscription_backoff_max, Duration::from_secs(2));
        assert_eq!(config.auth_token, None);
        assert_eq!(config.encoding, Encoding::Protobuf);
        assert_eq!(config.load_report_interval, Some(Duration::from_secs(5)));
    }

    #[test]
    fn every_setting_is_read() {
        let config = Config::from_env(env(&[
            ("MESOS_FRAMEWORK_ID", "fw-1"),
            ("MESOS_EXECUTOR_ID", "ex-1"),
            ("MESOS_AGENT_ENDPOINT", "10.0.0.7:5051"),
            ("MESOS_DIRECTORY", "/var/lib/mesos/sandbox"),
            ("MESOS_CHECKPOINT", "1"),
            ("MESOS_EXECUTOR_SHUTDOWN_GRACE_PERIOD", "10secs"),
            ("MESOS_RECOVERY_TIMEOUT", "1.5hrs"),
            ("MESOS_SUBSCRIPTION_BACKOFF_MAX", "500ms"),
            ("MESOS_EXECUTOR_AUTHENTICATION_TOKEN", "jwt"),
            ("BATON_EXECUTOR_ENCODING", "json"),
            ("BATON_LOAD_REPORT_INTERVAL", "0secs"),
        ]))
        .unwrap();
        assert_eq!(config.sandbox, PathBuf::from("/var/lib/mesos/sandbox"));
        assert!(config.checkpoint);
        assert_eq!(config.shutdown_grace_period, Duration::from_secs(10));
        assert_eq!(config.recovery_timeout, Duration::from_secs(5400));
        assert_eq!(config.subscription_backoff_max, Duration::from_millis(500));
        assert_eq!(config.auth_token.as_deref(), Some("jwt"));
        assert_eq!(config.encoding, Encoding::Json);
    }

    #[test]
    fn sandbox_wins_over_directory() {
        let mut pairs = MINIMAL.to_vec();
        pairs.push(("MESOS_DIRECTORY", "/host/path"));
        let config = Config::from_env(env(&pairs)).unwrap();
        assert_eq!(config.sandbox, PathBuf::from("/tmp/sandbox"));
    }

    #[test]
    fn all_missing_variables_are_reported_together() {
        let err = Config::from_env(env(&[])).unwrap_err();
        let names: Vec<_> = err.problems.iter().map(|p| p.variable).collect();
        assert_eq!(
            names,
            [
                "MESOS_FRAMEWORK_ID",
                "MESOS_EXECUTOR_ID",
                "MESOS_AGENT_ENDPOINT",
                "MESOS_SANDBOX"
            ]
        );
        let text = err.to_string();
        assert!(text.contains("MESOS_FRAMEWORK_ID is not set"), "{text}");
        assert!(text.contains("MESOS_SANDBOX is not set"), "{text}");
    }

    #[test]
    fn invalid_values_are_reported_together() {
        let mut pairs = MINIMAL.to_vec();
        pairs.retain(|(k, _)| *k != "MESOS_AGENT_ENDPOINT");
        pairs.extend([
            ("MESOS_AGENT_ENDPOINT", "http://127.0.0.1:5051"),
            ("MESOS_CHECKPOINT", "true"),
            ("MESOS_EXECUTOR_SHUTDOWN_GRACE_PERIOD", "5"),
            ("MESOS_RECOVERY_TIMEOUT", "15 minutes"),
            ("BATON_EXECUTOR_ENCODING", "xml"),
        ]);
        let err = Config::from_env(env(&pairs)).unwrap_err();
        let names: Vec<_> = err.problems.iter().map(|p| p.variable).collect();
        assert_eq!(
            names,
            [
                "MESOS_AGENT_ENDPOINT",
                "MESOS_CHECKPOINT",
                "MESOS_EXECUTOR_SHUTDOWN_GRACE_PERIOD",
                "MESOS_RECOVERY_TIMEOUT",
                "BATON_EXECUTOR_ENCODING"
            ]
        );
        assert!(err.to_string().contains("\"5\""), "{err}");
    }

    #[test]
    fn endpoints() {
        for ok in ["127.0.0.1:5051", "[::1]:5051", "agent-1.example:5051"] {
            assert!(is_host_port(ok), "{ok}");
        }
        for bad in [
            "127.0.0.1",
            "127.0.0.1:",
            ":5051",
            "127.0.0.1:99999",
            "127.0.0.1:0",
            "http://127.0.0.1:5051",
            "::1:5051",
        ] {
            assert!(!is_host_port(bad), "{bad}");
        }
    }
}
