//! `mesos-local`: a Mesos master and N agents in one process.
//!
//! Parses flags (each also readable from `MESOS_LOCAL_<FLAG>`; the TLS ones
//! from Mesos's `LIBPROCESS_SSL_CERT_FILE` / `LIBPROCESS_SSL_KEY_FILE` /
//! `LIBPROCESS_SSL_ENABLED`), starts a
//! [`mesos_local::LocalCluster`] and shuts it down on SIGINT or SIGTERM:
//! executors get SIGTERM and their shutdown grace, then whatever is left
//! is destroyed. A second signal destroys every container at once.

use std::net::{Ipv4Addr, SocketAddr};
use std::path::PathBuf;
use std::time::Duration;

use anyhow::Context;
use clap::{ArgAction, Parser};
use mesos_local::{Acls, ClusterConfig, Credentials, LocalCluster, SecurityConfig, TlsConfig};

/// A local Mesos cluster: one master and N agents speaking the v1 APIs.
#[derive(Debug, Parser)]
#[command(name = "mesos-local", version)]
struct Flags {
    /// Port of the master API (`/api/v1/scheduler`, `/master/state`).
    #[arg(long, env = "MESOS_LOCAL_PORT", default_value_t = 5050)]
    port: u16,
    /// Number of agents; agent i is 127.0.0.<i>.
    #[arg(long, env = "MESOS_LOCAL_AGENTS", default_value_t = 3)]
    agents: usize,
    /// Racks the agents' `rack_id` attribute is spread over.
    #[arg(long, env = "MESOS_LOCAL_RACKS", default_value_t = 2)]
    racks: usize,
    /// CPUs per agent.
    #[arg(long, env = "MESOS_LOCAL_CPUS", default_value_t = 4.0)]
    cpus: f64,
    /// Memory per agent, MB.
    #[arg(long, env = "MESOS_LOCAL_MEM", default_value_t = 4096.0)]
    mem: f64,
    /// Disk per agent, MB.
    #[arg(long, env = "MESOS_LOCAL_DISK", default_value_t = 10240.0)]
    disk: f64,
    /// First port of agent 1's range; agents' ranges follow one another.
    #[arg(
        long = "port_range_start",
        env = "MESOS_LOCAL_PORT_RANGE_START",
        default_value_t = 31000
    )]
    port_range_start: u16,
    /// Ports in each agent's range.
    #[arg(
        long = "ports_per_agent",
        env = "MESOS_LOCAL_PORTS_PER_AGENT",
        default_value_t = 1000
    )]
    ports_per_agent: u16,
    /// Seconds between HEARTBEAT events.
    #[arg(
        long = "heartbeat_interval_secs",
        env = "MESOS_LOCAL_HEARTBEAT_INTERVAL_SECS",
        default_value_t = 15.0
    )]
    heartbeat_interval_secs: f64,
    /// The baton-executor binary (default: next to this one, else on PATH).
    #[arg(long = "executor_path", env = "MESOS_LOCAL_EXECUTOR_PATH")]
    executor_path: Option<PathBuf>,
    /// Directory for sandboxes.
    #[arg(long = "work_dir", env = "MESOS_LOCAL_WORK_DIR")]
    work_dir: Option<PathBuf>,
    /// Register the master in ZooKeeper as a Mesos master does
    /// (`zk://host:2181/mesos`), for `--master zk://…` detection.
    #[arg(long, env = "MESOS_LOCAL_ZK")]
    zk: Option<String>,
    /// Require HTTP Basic credentials on every `/api/v1/scheduler` request
    /// (Mesos `--authenticate_http_frameworks`).
    #[arg(
        long = "authenticate_http_frameworks",
        alias = "authenticate_frameworks",
        env = "MESOS_LOCAL_AUTHENTICATE_HTTP_FRAMEWORKS",
        num_args = 0..=1,
        default_missing_value = "true",
        default_value_t = false,
        action = ArgAction::Set
    )]
    authenticate_http_frameworks: bool,
    /// Require credentials on the read-write endpoints (`/master/teardown`).
    #[arg(
        long = "authenticate_http_readwrite",
        env = "MESOS_LOCAL_AUTHENTICATE_HTTP_READWRITE",
        num_args = 0..=1,
        default_missing_value = "true",
        default_value_t = false,
        action = ArgAction::Set
    )]
    authenticate_http_readwrite: bool,
    /// Require credentials on the read-only endpoints (`/master/state`).
    #[arg(
        long = "authenticate_http_readonly",
        env = "MESOS_LOCAL_AUTHENTICATE_HTTP_READONLY",
        num_args = 0..=1,
        default_missing_value = "true",
        default_value_t = false,
        action = ArgAction::Set
    )]
    authenticate_http_readonly: bool,
    /// Authenticator of the scheduler API; only `basic` exists here.
    #[arg(
        long = "http_framework_authenticators",
        env = "MESOS_LOCAL_HTTP_FRAMEWORK_AUTHENTICATORS",
        default_value = "basic"
    )]
    http_framework_authenticators: String,
    /// Authenticator of the operator endpoints; only `basic` exists here.
    #[arg(
        long = "http_authenticators",
        env = "MESOS_LOCAL_HTTP_AUTHENTICATORS",
        default_value = "basic"
    )]
    http_authenticators: String,
    /// Principals and secrets: Mesos's JSON
    /// (`{"credentials":[{"principal":"p","secret":"s"}]}`) or
    /// `principal secret` lines; a path, optionally `file://`.
    #[arg(long, env = "MESOS_LOCAL_CREDENTIALS")]
    credentials: Option<PathBuf>,
    /// Mesos's ACLs JSON, inline or a path (`permissive`,
    /// `register_frameworks`, `register_agents`, `run_tasks` and
    /// `view_frameworks`/`view_tasks`/`view_executors` are enforced).
    #[arg(long, env = "MESOS_LOCAL_ACLS")]
    acls: Option<String>,
    /// PEM certificate chain: the master serves https only.
    #[arg(long = "ssl_cert_file", env = "LIBPROCESS_SSL_CERT_FILE")]
    ssl_cert_file: Option<PathBuf>,
    /// PEM private key of `--ssl_cert_file`.
    #[arg(long = "ssl_key_file", env = "LIBPROCESS_SSL_KEY_FILE")]
    ssl_key_file: Option<PathBuf>,
    /// Mesos's `LIBPROCESS_SSL_ENABLED`: `true` requires the certificate and
    /// key; `false` refuses them (no silent plain HTTP).
    #[arg(long = "ssl_enabled", env = "LIBPROCESS_SSL_ENABLED", hide = true)]
    ssl_enabled: Option<String>,
    /// How agents hold containers to their cpus and mem, as Mesos's
    /// `--isolation`: `cgroups/cpu,cgroups/mem` (a cgroup per container;
    /// where cgroups cannot be written, a watchdog that kills containers
    /// over their memory) or `posix/cpu,posix/mem` (the watchdog).
    #[arg(
        long,
        env = "MESOS_LOCAL_ISOLATION",
        default_value = "cgroups/cpu,cgroups/mem"
    )]
    isolation: mesos_local::config::Isolation,
    /// The cgroup containers' cgroups go in, in each hierarchy.
    #[arg(
        long = "cgroups_root",
        env = "MESOS_LOCAL_CGROUPS_ROOT",
        default_value = "mesos-local"
    )]
    cgroups_root: String,
    /// Caps each container's CPU at its `cpus` with a CFS quota (else CPU
    /// shares only, which divide the CPU only under contention).
    #[arg(long = "cgroups_enable_cfs", env = "MESOS_LOCAL_CGROUPS_ENABLE_CFS")]
    cgroups_enable_cfs: bool,
    /// PEM certificates the fetcher trusts besides the system's, for
    /// `https://` URIs.
    #[arg(long = "fetcher_ca_file", env = "MESOS_LOCAL_FETCHER_CA_FILE")]
    fetcher_ca_file: Option<PathBuf>,
}

impl Flags {
    fn config(&self) -> anyhow::Result<ClusterConfig> {
        let defaults = ClusterConfig::default();
        let heartbeat = Duration::try_from_secs_f64(self.heartbeat_interval_secs)
            .ok()
            .filter(|d| !d.is_zero())
            .context("--heartbeat_interval_secs must be a positive number")?;
        Ok(ClusterConfig {
            master_addr: SocketAddr::from((Ipv4Addr::LOCALHOST, self.port)),
            agents: self.agents,
            racks: self.racks,
            cpus: self.cpus,
            mem: self.mem,
            disk: self.disk,
            port_range_start: self.port_range_start,
            ports_per_agent: self.ports_per_agent,
            heartbeat_interval: heartbeat,
            executor_path: self
                .executor_path
                .clone()
                .unwrap_or(defaults.executor_path.clone()),
            work_dir: self.work_dir.clone().unwrap_or(defaults.work_dir.clone()),
            security: self.security()?,
            fetcher_ca_file: self.fetcher_ca_file.clone(),
            isolation: mesos_local::config::IsolationConfig {
                isolation: self.isolation,
                root: self.cgroups_root.clone(),
                enable_cfs: self.cgroups_enable_cfs,
                ..defaults.isolation.clone()
            },
            ..defaults
        })
    }

    /// The security flags, files read and checked: `None` when none is set.
    fn security(&self) -> anyhow::Result<Option<SecurityConfig>> {
        for (flag, value) in [
            (
                "--http_framework_authenticators",
                &self.http_framework_authenticators,
            ),
            ("--http_authenticators", &self.http_authenticators),
        ] {
            anyhow::ensure!(
                value == "basic",
                "{flag}: only the 'basic' authenticator is supported, got '{value}'"
            );
        }
        let credentials = match &self.credentials {
            Some(path) => Credentials::load(path).context("--credentials")?,
            None => Credentials::default(),
        };
        let acls = match &self.acls {
            Some(value) => {
                let acls = Acls::load(value).context("--acls")?;
                if !acls.ignored.is_empty() {
                    tracing::warn!(
                        ignored = ?acls.ignored,
                        "--acls: these ACL kinds are not enforced by mesos-local (a Mesos master would)"
                    );
                }
                Some(acls)
            }
            None => None,
        };
        let tls = self.tls()?;
        let security = SecurityConfig {
            authenticate_http_frameworks: self.authenticate_http_frameworks,
            authenticate_http_readwrite: self.authenticate_http_readwrite,
            authenticate_http_readonly: self.authenticate_http_readonly,
            credentials,
            acls,
            tls,
        };
        let any = security.authenticates()
            || security.acls.is_some()
            || security.tls.is_some()
            || self.credentials.is_some();
        Ok(any.then_some(security))
    }

    fn tls(&self) -> anyhow::Result<Option<TlsConfig>> {
        let enabled = match self.ssl_enabled.as_deref().map(str::to_ascii_lowercase) {
            None => None,
            Some(v) if v == "true" || v == "1" => Some(true),
            Some(v) if v == "false" || v == "0" => Some(false),
            Some(v) => anyhow::bail!("LIBPROCESS_SSL_ENABLED must be true or false, got '{v}'"),
        };
        match (&self.ssl_cert_file, &self.ssl_key_file, enabled) {
            (None, None, Some(true)) => {
                anyhow::bail!(
                    "LIBPROCESS_SSL_ENABLED=true needs --ssl_cert_file and --ssl_key_file"
                )
            }
            (None, None, _) => Ok(None),
            (Some(_), Some(_), Some(false)) => anyhow::bail!(
                "LIBPROCESS_SSL_ENABLED=false contradicts --ssl_cert_file/--ssl_key_file"
            ),
            (Some(cert), Some(key), _) => Ok(Some(
                TlsConfig::from_pem_files(cert, key).context("--ssl_cert_file/--ssl_key_file")?,
            )),
            (Some(_), None, _) => anyhow::bail!("--ssl_cert_file needs --ssl_key_file"),
            (None, Some(_), _) => anyhow::bail!("--ssl_key_file needs --ssl_cert_file"),
        }
    }
}

/// SIGTERM and SIGINT, which both mean "stop".
struct StopSignals {
    term: tokio::signal::unix::Signal,
    int: tokio::signal::unix::Signal,
}

impl StopSignals {
    fn install() -> anyhow::Result<StopSignals> {
        use tokio::signal::unix::{SignalKind, signal};
        Ok(StopSignals {
            term: signal(SignalKind::terminate()).context("installing the SIGTERM handler")?,
            int: signal(SignalKind::interrupt()).context("installing the SIGINT handler")?,
        })
    }

    async fn recv(&mut self) -> &'static str {
        tokio::select! {
            Some(()) = self.term.recv() => "SIGTERM",
            Some(()) = self.int.recv() => "SIGINT",
            else => std::future::pending().await,
        }
    }
}

#[tokio::main]
async fn main() -> anyhow::Result<()> {
    // Logs go to stderr: stdout carries the master's address, for scripts.
    tracing_subscriber::fmt()
        .with_writer(std::io::stderr)
        .with_env_filter(
            tracing_subscriber::EnvFilter::try_from_default_env()
                .unwrap_or_else(|_| tracing_subscriber::EnvFilter::new("info")),
        )
        .init();
    let flags = Flags::parse();
    let config = flags.config()?;
    let mut signals = StopSignals::install()?;
    let cluster = LocalCluster::start(config)
        .await
        .context("starting the local cluster")?;
    let registration = match &flags.zk {
        Some(url) => Some(
            mesos_local::zk::register(url, cluster.master_info_json())
                .await
                .map_err(|e| anyhow::anyhow!("--zk: {e}"))?,
        ),
        None => None,
    };
    println!("mesos-local master at {}", cluster.master_url());
    let signal = signals.recv().await;
    tracing::info!(
        signal,
        "shutting down; a second signal destroys every container at once"
    );
    if let Some(registration) = registration {
        registration.close().await;
    }
    tokio::select! {
        () = cluster.shutdown() => {}
        // Dropping the unfinished shutdown SIGKILLs every container.
        signal = signals.recv() => tracing::warn!(signal, "destroying every container now"),
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    fn parse(args: &[&str]) -> Flags {
        Flags::try_parse_from(std::iter::once("mesos-local").chain(args.iter().copied())).unwrap()
    }

    #[test]
    fn security_flags_take_mesos_spellings() {
        let dir = tempfile::tempdir().unwrap();
        let creds = dir.path().join("creds");
        std::fs::write(&creds, "baton secret\n").unwrap();
        let creds = creds.to_str().unwrap();
        let f = parse(&[
            "--authenticate_frameworks",
            "--authenticate_http_readwrite=true",
            "--http_framework_authenticators=basic",
            "--credentials",
            creds,
            "--acls",
            r#"{"permissive":false}"#,
        ]);
        let s = f.security().unwrap().unwrap();
        assert!(s.authenticate_http_frameworks && s.authenticate_http_readwrite);
        assert!(!s.authenticate_http_readonly);
        assert!(!s.credentials.is_empty());
        assert!(!s.acls.unwrap().permissive);
        assert!(s.tls.is_none());

        assert!(parse(&[]).security().unwrap().is_none());
        let f = parse(&["--authenticate_http_frameworks=false"]);
        assert!(f.security().unwrap().is_none());
        let f = parse(&["--http_framework_authenticators=custom"]);
        assert!(f.security().is_err());
        let f = parse(&["--ssl_cert_file=/x.pem"]);
        assert!(f.security().is_err());
        let f = parse(&["--credentials=/no/such/file"]);
        let err = format!("{:#}", f.security().unwrap_err());
        assert!(err.contains("/no/such/file"), "{err}");
    }
}
