//! The shape of a local cluster: how many agents, what each offers, and the
//! timers a real Mesos has as flags.

use std::fmt;
use std::net::{Ipv4Addr, SocketAddr};
use std::path::PathBuf;
use std::str::FromStr;
use std::time::Duration;

use crate::security::SecurityConfig;

/// Everything [`crate::LocalCluster::start`] needs. `Default` gives the
/// cluster `baton --master local` runs: 3 agents over 2 racks on port 5050.
#[derive(Debug, Clone)]
pub struct ClusterConfig {
    /// Where the master listens; tests pass port 0.
    pub master_addr: SocketAddr,
    /// Number of agents; agent *i* (1-based) is `127.0.0.<i>`.
    pub agents: usize,
    /// Agent *i* gets TEXT attribute `rack_id = "rack-{((i-1) % racks) + 1}"`.
    pub racks: usize,
    /// CPUs per agent.
    pub cpus: f64,
    /// Memory per agent, MB.
    pub mem: f64,
    /// Disk per agent, MB.
    pub disk: f64,
    /// First port of agent 1's `ports` range.
    pub port_range_start: u16,
    /// Size of each agent's port range; agent *i* gets
    /// `[start + (i-1)*n, start + i*n - 1]`.
    pub ports_per_agent: u16,
    /// HEARTBEAT period on scheduler streams (Mesos: 15 s, not settable).
    pub heartbeat_interval: Duration,
    /// How often offers are made (Mesos `--allocation_interval`).
    pub allocation_interval: Duration,
    /// The `baton-executor` binary agents start for command tasks.
    pub executor_path: PathBuf,
    /// Sandboxes live under
    /// `<work_dir>/agents/<agent>/frameworks/<fw>/executors/<ex>/runs/<container>`.
    pub work_dir: PathBuf,
    /// How long a stopped agent stays "disconnected" before the master marks
    /// it unreachable (Mesos: 15 s ping timeout × 5 pings).
    pub agent_unreachable_timeout: Duration,
    /// First retry of an unacknowledged status update; doubles up to 10 min.
    pub status_update_retry: Duration,
    /// How long a restarted agent waits for its executors to re-SUBSCRIBE.
    pub executor_reregistration_timeout: Duration,
    /// How long a freshly started executor has to SUBSCRIBE (Mesos: 1 min).
    pub executor_registration_timeout: Duration,
    /// Time between SHUTDOWN to an executor and destroying its container,
    /// unless `ExecutorInfo.shutdown_grace_period` says otherwise.
    pub executor_shutdown_grace_period: Duration,
    /// Extra environment for every executor (Mesos
    /// `--executor_environment_variables`), e.g. `BATON_EXECUTOR_ENCODING`.
    pub executor_environment: Vec<(String, String)>,
    /// Authentication, ACLs and TLS of the master; `None` (the default) is
    /// an open master on plain HTTP, as Mesos without those flags.
    pub security: Option<SecurityConfig>,
    /// Trust roots (PEM) the fetcher adds to the system's for `https://`
    /// URIs.
    pub fetcher_ca_file: Option<PathBuf>,
    /// How agents hold containers to their `cpus` and `mem` (Mesos's
    /// `--isolation`, `--cgroups_root`, `--cgroups_enable_cfs`).
    pub isolation: IsolationConfig,
}

impl Default for ClusterConfig {
    fn default() -> Self {
        ClusterConfig {
            master_addr: SocketAddr::from((Ipv4Addr::LOCALHOST, 5050)),
            agents: 3,
            racks: 2,
            cpus: 4.0,
            mem: 4096.0,
            disk: 10240.0,
            port_range_start: 31000,
            ports_per_agent: 1000,
            heartbeat_interval: Duration::from_secs(15),
            allocation_interval: Duration::from_secs(1),
            executor_path: default_executor_path(),
            work_dir: std::env::temp_dir().join("mesos-local"),
            agent_unreachable_timeout: Duration::from_secs(75),
            status_update_retry: Duration::from_secs(10),
            executor_reregistration_timeout: Duration::from_secs(2),
            executor_registration_timeout: Duration::from_secs(60),
            executor_shutdown_grace_period: Duration::from_secs(5),
            executor_environment: Vec::new(),
            security: None,
            fetcher_ca_file: None,
            isolation: IsolationConfig::default(),
        }
    }
}

/// What `--isolation` asks for.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Isolation {
    /// `cgroups/cpu,cgroups/mem` (falls back to the watchdog where cgroups
    /// cannot be written).
    Cgroups,
    /// `posix/cpu,posix/mem`: the watchdog.
    Posix,
}

impl FromStr for Isolation {
    type Err = ConfigError;

    /// Mesos-style: a comma list of `cgroups/cpu`, `cgroups/mem` (or
    /// `posix/…`); one family at a time.
    fn from_str(s: &str) -> Result<Isolation, ConfigError> {
        let parts: Vec<&str> = s
            .split(',')
            .map(str::trim)
            .filter(|p| !p.is_empty())
            .collect();
        let all = |prefix: &str| {
            !parts.is_empty()
                && parts.iter().all(|p| {
                    p.strip_prefix(prefix)
                        .is_some_and(|r| r == "cpu" || r == "mem")
                })
        };
        if all("cgroups/") {
            Ok(Isolation::Cgroups)
        } else if all("posix/") {
            Ok(Isolation::Posix)
        } else {
            Err(ConfigError::Isolation(s.to_string()))
        }
    }
}

impl fmt::Display for Isolation {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(match self {
            Isolation::Cgroups => "cgroups/cpu,cgroups/mem",
            Isolation::Posix => "posix/cpu,posix/mem",
        })
    }
}

/// How the cluster isolates containers.
#[derive(Debug, Clone, PartialEq)]
pub struct IsolationConfig {
    /// What is asked for.
    pub isolation: Isolation,
    /// Where the cgroup hierarchies are mounted (`/sys/fs/cgroup`).
    pub hierarchy: PathBuf,
    /// The cgroup (under each hierarchy) containers' cgroups go in
    /// (Mesos's `--cgroups_root`).
    pub root: String,
    /// Hard CPU caps (CFS quota) besides shares (Mesos's
    /// `--cgroups_enable_cfs`).
    pub enable_cfs: bool,
}

impl Default for IsolationConfig {
    fn default() -> IsolationConfig {
        IsolationConfig {
            isolation: Isolation::Cgroups,
            hierarchy: PathBuf::from("/sys/fs/cgroup"),
            root: "mesos-local".into(),
            enable_cfs: false,
        }
    }
}

/// A configuration that cannot describe a cluster.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum ConfigError {
    /// Agents are numbered 1..=254 so each gets its own `127.0.0.<i>`.
    #[error("agents must be between 1 and 254, got {0}")]
    Agents(usize),
    /// At least one rack.
    #[error("racks must be at least 1")]
    Racks,
    /// Resources must be finite and non-negative.
    #[error("{0} must be a finite, non-negative number")]
    Resource(&'static str),
    /// The port ranges run past 65535 or are empty.
    #[error(
        "port ranges of {per_agent} ports from {start} for {agents} agents do not fit below 65536"
    )]
    Ports {
        /// `port_range_start`.
        start: u16,
        /// `ports_per_agent`.
        per_agent: u16,
        /// `agents`.
        agents: usize,
    },
    /// Intervals must be positive.
    #[error("{0} must be positive")]
    Interval(&'static str),
    /// Timers are armed as `now + duration`, which must not overflow.
    #[error("{0} must be at most {max:?}", max = MAX_TIMER)]
    TooLong(&'static str),
    /// Authentication is on but nobody could ever pass it (Mesos refuses
    /// to start too).
    #[error("HTTP authentication is enabled but no credentials are given (--credentials)")]
    NoCredentials,
    /// `--isolation` names something else.
    #[error("unknown isolation '{0}': use 'cgroups/cpu,cgroups/mem' or 'posix/cpu,posix/mem'")]
    Isolation(String),
}

/// The longest interval or timeout a cluster accepts.
pub const MAX_TIMER: Duration = Duration::from_secs(365 * 24 * 3600);

impl ClusterConfig {
    /// Checks the values a cluster cannot be built from.
    pub fn validate(&self) -> Result<(), ConfigError> {
        if self.agents == 0 || self.agents > 254 {
            return Err(ConfigError::Agents(self.agents));
        }
        if self.racks == 0 {
            return Err(ConfigError::Racks);
        }
        for (name, v) in [("cpus", self.cpus), ("mem", self.mem), ("disk", self.disk)] {
            if !v.is_finite() || v < 0.0 {
                return Err(ConfigError::Resource(name));
            }
        }
        let end =
            u64::from(self.port_range_start) + u64::from(self.ports_per_agent) * self.agents as u64;
        if self.ports_per_agent == 0 || end > 65536 {
            return Err(ConfigError::Ports {
                start: self.port_range_start,
                per_agent: self.ports_per_agent,
                agents: self.agents,
            });
        }
        for (name, d) in [
            ("heartbeat_interval", self.heartbeat_interval),
            ("allocation_interval", self.allocation_interval),
            ("status_update_retry", self.status_update_retry),
        ] {
            if d.is_zero() {
                return Err(ConfigError::Interval(name));
            }
        }
        for (name, d) in [
            ("heartbeat_interval", self.heartbeat_interval),
            ("allocation_interval", self.allocation_interval),
            ("status_update_retry", self.status_update_retry),
            ("agent_unreachable_timeout", self.agent_unreachable_timeout),
            (
                "executor_reregistration_timeout",
                self.executor_reregistration_timeout,
            ),
            (
                "executor_registration_timeout",
                self.executor_registration_timeout,
            ),
            (
                "executor_shutdown_grace_period",
                self.executor_shutdown_grace_period,
            ),
        ] {
            if d > MAX_TIMER {
                return Err(ConfigError::TooLong(name));
            }
        }
        if let Some(s) = &self.security
            && s.authenticates()
            && s.credentials.is_empty()
        {
            return Err(ConfigError::NoCredentials);
        }
        Ok(())
    }

    /// Agent `i`'s (1-based) hostname and IP.
    pub fn agent_ip(i: usize) -> Ipv4Addr {
        Ipv4Addr::new(127, 0, 0, u8::try_from(i).unwrap_or(254))
    }

    /// Agent `i`'s inclusive port range.
    pub fn agent_ports(&self, i: usize) -> (u64, u64) {
        let start = u64::from(self.port_range_start)
            + (i as u64).saturating_sub(1) * u64::from(self.ports_per_agent);
        (start, start + u64::from(self.ports_per_agent) - 1)
    }

    /// Agent `i`'s `rack_id` attribute value.
    pub fn agent_rack(&self, i: usize) -> String {
        format!("rack-{}", (i.saturating_sub(1) % self.racks.max(1)) + 1)
    }
}

/// `baton-executor` next to the running binary (or one directory up, which
/// is where cargo puts it relative to a test binary in `target/*/deps`),
/// else the bare name, to be found on `PATH`.
pub fn default_executor_path() -> PathBuf {
    const NAME: &str = "baton-executor";
    if let Ok(exe) = std::env::current_exe()
        && let Some(dir) = exe.parent()
    {
        let beside = dir.join(NAME);
        if beside.is_file() {
            return beside;
        }
        if dir.file_name().is_some_and(|n| n == "deps")
            && let Some(up) = dir.parent()
        {
            let above = up.join(NAME);
            if above.is_file() {
                return above;
            }
        }
    }
    PathBuf::from(NAME)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn isolation_flags_are_read_mesos_style() {
        assert_eq!(
            "cgroups/cpu,cgroups/mem".parse::<Isolation>().unwrap(),
            Isolation::Cgroups
        );
        assert_eq!(
            "cgroups/mem".parse::<Isolation>().unwrap(),
            Isolation::Cgroups
        );
        assert_eq!(
            " posix/cpu, posix/mem ".parse::<Isolation>().unwrap(),
            Isolation::Posix
        );
        for bad in [
            "",
            "cgroups/cpu,posix/mem",
            "filesystem/linux",
            "cgroups/net",
        ] {
            let e = bad.parse::<Isolation>().unwrap_err().to_string();
            assert!(e.contains("cgroups/cpu,cgroups/mem"), "{e}");
        }
        assert_eq!(
            Isolation::Cgroups.to_string().parse::<Isolation>().unwrap(),
            Isolation::Cgroups
        );
    }

    #[test]
    fn agents_get_disjoint_port_ranges_and_racks() {
        let c = ClusterConfig::default();
        assert_eq!(c.agent_ports(1), (31000, 31999));
        assert_eq!(c.agent_ports(2), (32000, 32999));
        assert_eq!(c.agent_ports(3), (33000, 33999));
        assert_eq!(c.agent_rack(1), "rack-1");
        assert_eq!(c.agent_rack(2), "rack-2");
        assert_eq!(c.agent_rack(3), "rack-1");
        assert_eq!(ClusterConfig::agent_ip(3), Ipv4Addr::new(127, 0, 0, 3));
        assert_eq!(c.validate(), Ok(()));
    }

    #[test]
    fn impossible_configs_are_refused() {
        let c = ClusterConfig {
            agents: 0,
            ..Default::default()
        };
        assert_eq!(c.validate(), Err(ConfigError::Agents(0)));
        let c = ClusterConfig {
            port_range_start: 65000,
            ..Default::default()
        };
        assert!(matches!(c.validate(), Err(ConfigError::Ports { .. })));
        let c = ClusterConfig {
            cpus: f64::NAN,
            ..Default::default()
        };
        assert_eq!(c.validate(), Err(ConfigError::Resource("cpus")));
        // A timer of `now + Duration::MAX` would panic when armed.
        let c = ClusterConfig {
            heartbeat_interval: Duration::MAX,
            ..Default::default()
        };
        assert_eq!(
            c.validate(),
            Err(ConfigError::TooLong("heartbeat_interval"))
        );
        let c = ClusterConfig {
            security: Some(SecurityConfig {
                authenticate_http_readwrite: true,
                ..Default::default()
            }),
            ..Default::default()
        };
        assert_eq!(c.validate(), Err(ConfigError::NoCredentials));
    }

    #[test]
    fn agent_zero_does_not_underflow() {
        let c = ClusterConfig::default();
        assert_eq!(c.agent_ports(0), c.agent_ports(1));
        assert_eq!(c.agent_rack(0), "rack-1");
    }
}
