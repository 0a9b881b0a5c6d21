//! `mesos-local`: a Mesos master and N agents in one process.
//!
//! Parses flags (each also readable from `MESOS_LOCAL_<FLAG>`), starts a
//! [`mesos_local::LocalCluster`] and shuts it down on SIGINT or SIGTERM:
//! executors get SIGTERM and their shutdown grace, then whatever is left
//! is destroyed. A second signal destroys every container at once.

use std::net::{Ipv4Addr, SocketAddr};
use std::path::PathBuf;
use std::time::Duration;

use anyhow::Context;
use clap::Parser;
use mesos_local::{ClusterConfig, LocalCluster};

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
            ..defaults
        })
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
