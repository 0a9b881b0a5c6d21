//! Baton's settings (what the flags become) and the wiring from settings to
//! a running scheduler, shared by the binary and the tests.

use std::net::SocketAddr;
use std::path::PathBuf;
use std::sync::Arc;
use std::time::Duration;

use mesos_proto::{Encoding, v1};
use tokio_util::sync::CancellationToken;
use tracing::info;

use crate::mesos::{MasterEndpoint, MasterSpecError, SessionConfig};
use crate::reconcile::{Scheduler, SchedulerConfig, SchedulerError, SchedulerHandle};
use crate::state::{RedbStore, Store, StoreError};

/// Marathon's default failover timeout: one week. Mesos's own default of 0
/// would kill every task on the first network blip.
pub const DEFAULT_FAILOVER_TIMEOUT: Duration = Duration::from_secs(7 * 24 * 3600);

/// Where Mesos is.
#[derive(Debug, Clone)]
pub enum MasterSpec {
    /// Start an embedded mesos-local cluster.
    Local(Box<mesos_local::ClusterConfig>),
    /// One or more masters, tried in turn.
    Masters(Vec<MasterEndpoint>),
}

impl MasterSpec {
    /// Parses `--master`: `local`, `host:port`, `http://host:port`, or a comma list.
    pub fn parse(text: &str) -> Result<MasterSpec, MasterSpecError> {
        if text.trim() == "local" {
            return Ok(MasterSpec::Local(Box::default()));
        }
        MasterEndpoint::parse_list(text).map(MasterSpec::Masters)
    }
}

/// Everything Baton needs to run.
#[derive(Debug, Clone)]
pub struct Settings {
    /// `--master`.
    pub master: MasterSpec,
    /// `--framework_name`.
    pub framework_name: String,
    /// `--mesos_user`.
    pub mesos_user: String,
    /// `--mesos_role`.
    pub mesos_role: String,
    /// `--hostname`: advertised in FrameworkInfo (mesos-dns uses it).
    pub hostname: String,
    /// `--failover_timeout`.
    pub failover_timeout: Duration,
    /// `--data_dir`: where the embedded store lives.
    pub data_dir: PathBuf,
    /// `--http_port` (the REST API arrives with the apps work).
    pub http_addr: SocketAddr,
    /// Wire encoding towards Mesos.
    pub mesos_encoding: Encoding,
}

/// Baton could not start.
#[derive(Debug, thiserror::Error)]
pub enum StartError {
    /// The store could not be opened or read.
    #[error(transparent)]
    Store(#[from] StoreError),
    /// The scheduler could not start.
    #[error(transparent)]
    Scheduler(#[from] SchedulerError),
    /// The embedded cluster could not start.
    #[error("embedded mesos-local cluster failed to start: {0}")]
    Local(String),
    /// The REST API could not bind its address.
    #[error("cannot listen on {addr}: {source}")]
    Listen {
        /// The `--http_address`/`--http_port` pair.
        addr: SocketAddr,
        /// Why.
        #[source]
        source: std::io::Error,
    },
}

impl Settings {
    /// The FrameworkInfo Baton subscribes with: checkpointing on (so agents
    /// can recover executors), partition-aware, with a long failover timeout.
    pub fn framework_info(&self) -> v1::FrameworkInfo {
        use v1::framework_info::{Capability, capability::Type};
        v1::FrameworkInfo {
            user: self.mesos_user.clone(),
            name: self.framework_name.clone(),
            failover_timeout: Some(self.failover_timeout.as_secs_f64()),
            checkpoint: Some(true),
            role: (self.mesos_role != "*").then(|| self.mesos_role.clone()),
            hostname: Some(self.hostname.clone()),
            webui_url: Some(format!(
                "http://{}:{}",
                self.hostname,
                self.http_addr.port()
            )),
            capabilities: [Type::PartitionAware, Type::TaskKillingState]
                .into_iter()
                .map(|t| Capability {
                    r#type: Some(t as i32),
                })
                .collect(),
            ..Default::default()
        }
    }
}

/// A running Baton: the scheduler and, in local mode, its embedded cluster.
pub struct Running {
    /// The scheduler.
    pub scheduler: SchedulerHandle,
    /// The embedded cluster, in local mode.
    pub local: Option<mesos_local::LocalCluster>,
    /// Where the REST API listens (the bound address, so port 0 works).
    pub http_addr: SocketAddr,
    shutdown: CancellationToken,
    stopped: tokio::task::JoinHandle<()>,
}

impl Running {
    /// Stops the scheduler (without TEARDOWN: tasks keep running for the
    /// failover timeout) and the embedded cluster, if any.
    pub async fn stop(self) {
        self.shutdown.cancel();
        // Wait for the loop to finish its current step and release the
        // store, so that a new instance can open it.
        if let Err(e) = self.stopped.await {
            tracing::error!(error = %e, "reconcile loop ended abnormally");
        }
        if let Some(local) = self.local {
            local.shutdown().await;
        }
    }
}

/// Opens the store, starts the embedded cluster when asked, and starts the
/// scheduler against it.
pub async fn run(
    settings: Settings,
    session_tuning: impl FnOnce(&mut SessionConfig),
) -> Result<Running, StartError> {
    let store: Arc<dyn Store> = Arc::new(RedbStore::open(&settings.data_dir)?);
    let (masters, local) = match &settings.master {
        MasterSpec::Masters(list) => (list.clone(), None),
        MasterSpec::Local(cluster) => {
            let cluster = mesos_local::LocalCluster::start((**cluster).clone())
                .await
                .map_err(|e| StartError::Local(e.to_string()))?;
            info!(master = %cluster.master_url(), "embedded mesos-local cluster started");
            let endpoint = MasterEndpoint::parse(&cluster.master_url())
                .map_err(|e| StartError::Local(e.to_string()))?;
            (vec![endpoint], Some(cluster))
        }
    };
    let mut session = SessionConfig::new(masters, settings.framework_info());
    session.encoding = settings.mesos_encoding;
    session_tuning(&mut session);
    let config = SchedulerConfig {
        session,
        role: settings.mesos_role.clone(),
        refuse_seconds_while_waiting: 5.0,
        refuse_seconds_idle: 120.0,
    };
    let shutdown = CancellationToken::new();
    let listener = tokio::net::TcpListener::bind(settings.http_addr)
        .await
        .map_err(|source| StartError::Listen {
            addr: settings.http_addr,
            source,
        })?;
    let http_addr = listener.local_addr().map_err(|source| StartError::Listen {
        addr: settings.http_addr,
        source,
    })?;
    let master_text = match &settings.master {
        MasterSpec::Local(_) => "local".to_string(),
        MasterSpec::Masters(list) => list
            .iter()
            .map(ToString::to_string)
            .collect::<Vec<_>>()
            .join(","),
    };
    let (scheduler, stopped) = Scheduler::start(config, store, shutdown.clone())?;
    let api_state = crate::api::ApiState {
        scheduler: scheduler.clone(),
        identity: Arc::new(crate::api::Identity {
            framework_name: settings.framework_name.clone(),
            leader: format!("{}:{}", settings.hostname, http_addr.port()),
            http_port: http_addr.port(),
            master: master_text,
            mesos_role: settings.mesos_role.clone(),
            mesos_user: settings.mesos_user.clone(),
            failover_timeout_seconds: settings.failover_timeout.as_secs(),
        }),
        requests: Arc::default(),
    };
    let api_shutdown = shutdown.clone();
    tokio::spawn(async move {
        if let Err(e) = crate::api::serve(listener, api_state, api_shutdown.cancelled_owned()).await
        {
            tracing::error!(error = %e, "REST API server failed");
        }
    });
    info!(%http_addr, "REST API listening");
    Ok(Running {
        scheduler,
        local,
        http_addr,
        shutdown,
        stopped,
    })
}
