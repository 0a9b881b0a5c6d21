//! mesos-local: one process that is a Mesos master and N agents, speaking
//! the real v1 scheduler API and v1 executor API, so the same scheduler and
//! executor code runs unmodified against it and against Apache Mesos.
//!
//! # Layout
//!
//! - [`config`]: [`ClusterConfig`], the cluster's shape and timers.
//! - `master/`: the master. `mod.rs` holds the framework registry, task
//!   bookkeeping, status-update forwarding, failover and agent-loss
//!   handling; `http.rs` the `/api/v1/scheduler`, `/master/state`,
//!   `/master/redirect` and `/health` endpoints; `validation.rs` the call
//!   checks behind each 4xx; `allocator.rs` (offers, refusal filters),
//!   `accept.rs` (ACCEPT validation) and `reconcile.rs` (RECONCILE answers)
//!   are pure functions over values.
//! - `agent/`: one agent per `127.0.0.<i>`. `mod.rs` runs executors and
//!   their tasks; `http.rs` is the `/api/v1/executor` endpoint;
//!   `containers.rs` starts executors as sessions (`setsid`), fetches
//!   sandboxes and kills whole sessions; `status_updates.rs` is the
//!   per-task reliable update stream.
//! - `messages`: the in-process master↔agent messages and the task scope
//!   every background task is spawned in.
//! - `wire`: what both APIs share: exact Content-Type / Accept handling,
//!   4xx answers, RecordIO streams over bounded channels, ID rules.
//! - `resources`: resource arithmetic (scalars, port ranges).
//! - `state_json`: the legacy `/master/state` document.
//! - [`faults`]: [`Faults`], fault injection for tests.
//! - [`redirector`]: [`serve_redirector`], a non-leading master.
//!
//! Start a cluster with [`LocalCluster::start`]; the `mesos-local` binary
//! only parses flags and wires this up.

pub mod config;
pub mod faults;
pub mod redirector;

mod agent;
mod master;
mod messages;
mod resources;
mod state_json;
mod wire;

use std::net::SocketAddr;
use std::sync::Arc;
use std::time::Duration;

use mesos_proto::util;
use tokio::net::TcpListener;
use tokio::sync::mpsc;
use tracing::{Instrument, info, warn};

pub use config::{ClusterConfig, ConfigError};
pub use faults::Faults;
pub use redirector::serve_redirector;

use agent::Agent;
use master::{AgentEntry, AgentStatus, Master, MasterState};
use messages::Scope;
use resources::Resources;

/// Why a cluster could not start.
#[derive(Debug, thiserror::Error)]
pub enum Error {
    /// The configuration is impossible.
    #[error(transparent)]
    Config(#[from] ConfigError),
    /// An address could not be bound.
    #[error("cannot listen on {addr}: {source}")]
    Bind {
        /// The address.
        addr: SocketAddr,
        /// The error.
        #[source]
        source: std::io::Error,
    },
}

/// A running master and its agents.
#[derive(Debug)]
pub struct LocalCluster {
    master: Arc<Master>,
    agents: Vec<Arc<Agent>>,
    scope: Scope,
    master_addr: SocketAddr,
    stopped: bool,
}

async fn bind(addr: SocketAddr) -> Result<TcpListener, Error> {
    TcpListener::bind(addr)
        .await
        .map_err(|source| Error::Bind { addr, source })
}

impl LocalCluster {
    /// Binds the master and the agents, registers the agents and starts the
    /// allocation loop.
    pub async fn start(config: ClusterConfig) -> Result<LocalCluster, Error> {
        config.validate()?;
        let config = Arc::new(config);
        let scope = Scope::new();
        let master_listener = bind(config.master_addr).await?;
        let master_addr = master_listener.local_addr().map_err(|source| Error::Bind {
            addr: config.master_addr,
            source,
        })?;
        let master_id = uuid::Uuid::new_v4().to_string();
        let (to_master, from_agents) = mpsc::unbounded_channel();

        let mut entries = Vec::new();
        let mut agent_parts = Vec::new();
        for i in 1..=config.agents {
            let ip = ClusterConfig::agent_ip(i);
            let listener = bind(SocketAddr::from((ip, 0))).await?;
            let endpoint = listener.local_addr().map_err(|source| Error::Bind {
                addr: SocketAddr::from((ip, 0)),
                source,
            })?;
            let id = format!("{master_id}-S{i}");
            let total =
                Resources::agent(config.cpus, config.mem, config.disk, config.agent_ports(i));
            let attributes = vec![util::text_attribute("rack_id", &config.agent_rack(i))];
            let info = mesos_proto::v1::AgentInfo {
                hostname: ip.to_string(),
                port: Some(i32::from(endpoint.port())),
                resources: total.to_protos(None),
                attributes: attributes.clone(),
                id: Some(util::agent_id(&id)),
                ..Default::default()
            };
            let (tx, rx) = mpsc::unbounded_channel();
            entries.push(AgentEntry {
                index: i,
                id: id.clone(),
                hostname: ip.to_string(),
                endpoint,
                attributes,
                total,
                status: AgentStatus::Registering,
                generation: 0,
                registered_time: None,
                reregistered_time: None,
                tx,
            });
            agent_parts.push((i, id, endpoint, info, listener, rx));
        }

        let paused = Arc::new(std::sync::atomic::AtomicBool::new(false));
        let state = MasterState::new(config.clone(), master_addr, entries, master_id, paused);
        let master = Master::new(config.clone(), scope.clone(), state);
        scope.spawn(master.clone().run_inbox(from_agents));
        scope.spawn(master.clone().run_allocator());
        let app = master::http::router(master.clone());
        let token = scope.token.clone();
        scope.tracker.spawn(
            async move {
                let shutdown = token.cancelled_owned();
                if let Err(e) = axum::serve(master_listener, app)
                    .with_graceful_shutdown(shutdown)
                    .await
                {
                    warn!(error = %e, "master server failed");
                }
            }
            .instrument(tracing::info_span!("master")),
        );

        let mut agents = Vec::new();
        for (i, id, endpoint, info, listener, rx) in agent_parts {
            let agent = Agent::new(
                i,
                id,
                endpoint,
                info,
                config.clone(),
                scope.clone(),
                to_master.clone(),
            );
            scope.spawn(agent.clone().run_inbox(rx));
            scope.spawn(agent.clone().run_retries());
            agent
                .start(Some(listener))
                .await
                .map_err(|source| Error::Bind {
                    addr: endpoint,
                    source,
                })?;
            agents.push(agent);
        }
        info!(master = %master_addr, agents = agents.len(), "mesos-local cluster started");
        Ok(LocalCluster {
            master,
            agents,
            scope,
            master_addr,
            stopped: false,
        })
    }

    /// `http://127.0.0.1:<port>`.
    pub fn master_url(&self) -> String {
        format!("http://{}", self.master_addr)
    }

    /// The master's address.
    pub fn master_addr(&self) -> SocketAddr {
        self.master_addr
    }

    /// Agent `i`'s (1-based) executor API address, `127.0.0.<i>:<port>`.
    ///
    /// # Panics
    ///
    /// If there is no agent `i`.
    pub fn agent_endpoint(&self, i: usize) -> SocketAddr {
        self.agents[i - 1].endpoint
    }

    /// The `/master/state` document.
    pub fn state(&self) -> serde_json::Value {
        state_json::render(&self.master.lock())
    }

    /// Fault injection.
    pub fn faults(&self) -> Faults {
        Faults {
            master: self.master.clone(),
            agents: self.agents.clone(),
        }
    }

    fn kill_containers(&self) {
        for a in &self.agents {
            a.kill_all();
        }
    }

    /// Stops the servers, destroys every container (SIGKILL of whole
    /// sessions) and waits for the background tasks.
    pub async fn shutdown(mut self) {
        info!("mesos-local cluster shutting down");
        self.stopped = true;
        self.master.with_state(MasterState::close_all);
        self.kill_containers();
        for a in &self.agents {
            a.stop().await;
        }
        // Processes started while we were stopping.
        self.kill_containers();
        self.scope.token.cancel();
        self.scope.tracker.close();
        if tokio::time::timeout(Duration::from_secs(10), self.scope.tracker.wait())
            .await
            .is_err()
        {
            warn!("background tasks did not finish in time");
        }
    }
}

impl Drop for LocalCluster {
    fn drop(&mut self) {
        if !self.stopped {
            self.kill_containers();
            self.scope.token.cancel();
        }
    }
}
