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
//!   checks behind each 4xx; `allocator.rs` (offers, refusal filters,
//!   reserved resources only to their role), `accept.rs` (ACCEPT
//!   validation, operations applied in order), `operations.rs` (RESERVE,
//!   UNRESERVE, CREATE and DESTROY checked and turned into conversions of
//!   the offered resources) and `reconcile.rs` (RECONCILE answers) are pure
//!   functions over values; `/master/slaves` lists agents with their
//!   `*_full` resources.
//! - `agent/`: one agent per `127.0.0.<i>`. `mod.rs` runs executors and
//!   their tasks; `http.rs` is the `/api/v1/executor`, `/state` and
//!   `/monitor/statistics` endpoints; `sandboxes.rs` keeps every executor
//!   run's sandbox (ended ones too), which `files.rs` serves as Mesos's `/files/read`,
//!   `/files/browse` and `/files/debug` do and `state_json.rs` lists
//!   (`directory`) in the agent's `/state`;
//!   `isolation.rs` holds containers to their `cpus` and `mem` (a cgroup
//!   per container, v1 or v2, or a `/proc` watchdog where cgroups cannot
//!   be written), tells a memory limitation, and measures usage for
//!   `/monitor/statistics`;
//!   `containers.rs` starts executors as sessions (`setsid`), fetches
//!   sandboxes and kills whole sessions; `checkpoint.rs` notes each
//!   running session so that a cluster started on the same work directory
//!   destroys what a `kill -9` left behind; `volumes.rs` checkpoints the
//!   agent's dynamic reservations and persistent volumes, keeps the
//!   volumes' directories and links them into sandboxes; `status_updates.rs`
//!   is the per-task reliable update stream.
//! - `messages`: the in-process master↔agent messages and the task scope
//!   every background task is spawned in.
//! - `wire`: what both APIs share: exact Content-Type / Accept handling,
//!   4xx answers, RecordIO event streams whose backlog is bounded in bytes
//!   (a slow reader is dropped, never waited for), ID rules.
//! - `resources`: resource arithmetic (scalars, port ranges), keyed by
//!   reservation stack and persistent volume, written in the pre- or
//!   post-refinement format.
//! - `state_json`: the legacy `/master/state` document.
//! - [`faults`]: [`Faults`], fault injection for tests.
//! - [`redirector`]: [`serve_redirector`], a non-leading master.
//! - [`security`]: [`SecurityConfig`], HTTP Basic authentication, ACLs and
//!   TLS of the master, as a secured Mesos master has them.
//!
//! Start a cluster with [`LocalCluster::start`]; the `mesos-local` binary
//! only parses flags and wires this up.

pub mod config;
pub mod faults;
pub mod redirector;
pub mod security;
pub mod zk;

mod agent;
mod master;
mod messages;
mod resources;
mod state_json;
mod wire;

use std::net::SocketAddr;
use std::sync::Arc;
use std::time::Duration;

use futures::FutureExt;
use mesos_proto::util;
use tokio::net::TcpListener;
use tokio::sync::mpsc;
use tokio_util::sync::CancellationToken;
use tracing::{Instrument, info, warn};

pub use config::{ClusterConfig, ConfigError};
pub use faults::Faults;
pub use redirector::serve_redirector;
pub use security::{Acls, Credentials, SecurityConfig, TlsConfig};

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
    /// The fetcher's trust roots could not be read.
    #[error("fetcher trust roots")]
    FetcherCa(#[source] baton_probe::https::RootsError),
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

/// The longest [`LocalCluster::shutdown`] lets an executor take to stop
/// after SIGTERM, whatever its `shutdown_grace_period` asks for.
pub const MAX_SHUTDOWN_GRACE: Duration = Duration::from_secs(30);

/// A running master and its agents.
#[derive(Debug)]
pub struct LocalCluster {
    master: Arc<Master>,
    agents: Vec<Arc<Agent>>,
    scope: Scope,
    /// Stops the master's HTTP server (before the rest of the scope).
    master_server: CancellationToken,
    master_addr: SocketAddr,
    /// The master serves https.
    tls: bool,
    master_id: String,
    /// [`LocalCluster::shutdown`] completed; until then `Drop` destroys
    /// every container.
    stopped: bool,
}

/// Serves the master's routes on `listener` (plain TCP or TLS) until
/// `stop` is cancelled, then lets the open connections finish.
async fn serve<L>(listener: L, app: axum::Router, stop: CancellationToken)
where
    L: axum::serve::Listener,
    L::Addr: std::fmt::Debug,
{
    if let Err(e) = axum::serve(listener, app)
        .with_graceful_shutdown(stop.cancelled_owned())
        .await
    {
        warn!(error = %e, "master server failed");
    }
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
        let roots = baton_probe::https::trust_roots(config.fetcher_ca_file.as_deref())
            .map_err(Error::FetcherCa)?;
        let https = baton_probe::https::HttpsClient::verifying(roots);
        let isolator = Arc::new(agent::isolation::Isolator::new(&config.isolation));
        match &isolator.fallback {
            Some(why) => warn!(
                isolation = %isolator.describe(),
                "cgroups cannot be used ({why}); containers are held to their memory by a watchdog"
            ),
            None => info!(isolation = %isolator.describe(), "containers isolated"),
        }
        // Before anything new runs: what a killed predecessor on this work
        // directory left behind could never reconnect.
        let work_dir = config.work_dir.clone();
        let orphans = isolator.clone();
        let _ = tokio::task::spawn_blocking(move || {
            agent::checkpoint::destroy_orphans(&work_dir, |container_id| {
                orphans.destroy(container_id)
            })
        })
        .await;
        let config = Arc::new(config);
        let scope = Scope::new();
        let master_listener = bind(config.master_addr).await?;
        let master_addr = master_listener.local_addr().map_err(|source| Error::Bind {
            addr: config.master_addr,
            source,
        })?;
        let master_id = uuid::Uuid::new_v4().to_string();
        let master_id_for_info = master_id.clone();
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
                resources: total.to_protos(None, resources::Format::Pre),
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
        let mut state = MasterState::new(config.clone(), master_addr, entries, master_id, paused);
        state.isolation = isolator.active().to_string();
        let master = Master::new(config.clone(), scope.clone(), state);
        scope.spawn(master.clone().run_inbox(from_agents));
        scope.spawn(master.clone().run_allocator());
        let app = master::http::router(master.clone());
        let master_server = scope.token.child_token();
        let token = master_server.clone();
        let tls = config.security.as_ref().and_then(|s| s.tls.as_ref());
        let served = match tls {
            Some(tls) => {
                let listener = security::tls::TlsListener::start(
                    master_listener,
                    master_addr,
                    tls,
                    token.clone(),
                    &scope.tracker,
                );
                serve(listener, app, token).boxed()
            }
            None => serve(master_listener, app, token).boxed(),
        };
        scope
            .tracker
            .spawn(served.instrument(tracing::info_span!("master")));

        let mut agents = Vec::new();
        for (i, id, endpoint, info, listener, rx) in agent_parts {
            let agent = Agent::new(
                i,
                id,
                endpoint,
                info,
                agent::ClusterParts {
                    config: config.clone(),
                    scope: scope.clone(),
                    to_master: to_master.clone(),
                    isolator: isolator.clone(),
                    https: https.clone(),
                },
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
        info!(
            master = %master_addr,
            agents = agents.len(),
            https = tls.is_some(),
            "mesos-local cluster started"
        );
        Ok(LocalCluster {
            tls: tls.is_some(),
            master,
            agents,
            scope,
            master_server,
            master_addr,
            master_id: master_id_for_info,
            stopped: false,
        })
    }

    /// `http://127.0.0.1:<port>`, or `https://…` when the master serves TLS.
    pub fn master_url(&self) -> String {
        let scheme = if self.tls { "https" } else { "http" };
        format!("{scheme}://{}", self.master_addr)
    }

    /// The master's address.
    pub fn master_addr(&self) -> SocketAddr {
        self.master_addr
    }

    /// The master's `MasterInfo` as JSON, as registered in ZooKeeper.
    pub fn master_info_json(&self) -> serde_json::Value {
        zk::master_info_json(&self.master_id, self.master_addr, master::MESOS_VERSION)
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

    /// Stops the cluster and leaves nothing running. The master stops
    /// listening, closes every scheduler stream and answers calls still in
    /// flight with 503; agents launch nothing more. Every executor is sent
    /// SIGTERM (`baton-executor` then stops its tasks as on SHUTDOWN, under
    /// their kill policies) and given its shutdown grace, at most
    /// [`MAX_SHUTDOWN_GRACE`], while its agent is still up to acknowledge
    /// its last updates; what is left of a container after its grace is
    /// SIGKILLed. Then the agents stop and the background tasks are awaited.
    ///
    /// Dropping the returned future before it completes destroys every
    /// container at once (see `Drop`).
    pub async fn shutdown(mut self) {
        info!("mesos-local cluster shutting down");
        self.master_server.cancel();
        self.master.with_state(MasterState::close_all);
        let sessions: Vec<(u32, Duration)> = self
            .agents
            .iter()
            .flat_map(|a| a.terminate_all())
            .map(|(sid, grace)| (sid, grace.min(MAX_SHUTDOWN_GRACE)))
            .collect();
        agent::containers::stop_sessions(sessions).await;
        for a in &self.agents {
            a.stop().await;
        }
        // Anything that slipped through (an executor starting meanwhile).
        self.kill_containers();
        self.scope.token.cancel();
        self.scope.tracker.close();
        if tokio::time::timeout(Duration::from_secs(10), self.scope.tracker.wait())
            .await
            .is_err()
        {
            warn!("background tasks did not finish in time");
        }
        self.stopped = true;
    }
}

/// Without a completed [`LocalCluster::shutdown`] (a test that panicked, a
/// shutdown cut short) there is no time for grace: every container is
/// SIGKILLed.
impl Drop for LocalCluster {
    fn drop(&mut self) {
        if !self.stopped {
            self.kill_containers();
            self.scope.token.cancel();
        }
    }
}
