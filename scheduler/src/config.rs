//! Baton's settings (what the flags become) and the wiring from settings to
//! a running scheduler, shared by the binary and the tests.

use std::net::SocketAddr;
use std::path::PathBuf;
use std::sync::Arc;
use std::time::Duration;

use mesos_proto::{Encoding, v1};
use tokio_util::sync::CancellationToken;
use tracing::info;

use crate::ha::{Role, election, terms};
use crate::mesos::{MasterEndpoint, MasterSpecError, SessionConfig};
use crate::offers::ExecutorSettings;
use crate::reconcile::{
    ExecutorChoice, Scheduler, SchedulerConfig, SchedulerError, SchedulerHandle,
};
use crate::state::{RedbStore, Store, StoreError, ZkStore};
use crate::zk::ZkUrl;

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
    /// The leading master as registered in ZooKeeper (`zk://h:2181/mesos`).
    Zk(ZkUrl),
}

impl MasterSpec {
    /// Parses `--master`: `local`, `host:port`, `http://host:port`, or a comma list.
    pub fn parse(text: &str) -> Result<MasterSpec, MasterSpecError> {
        if text.trim() == "local" {
            return Ok(MasterSpec::Local(Box::default()));
        }
        if text.trim().starts_with("zk://") {
            return ZkUrl::parse(text)
                .map(MasterSpec::Zk)
                .map_err(|e| MasterSpecError::ZooKeeper(e.to_string()));
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
    /// `--mesos_role`: one role, or a comma list (then Baton subscribes
    /// MULTI_ROLE); the first is the role of apps that name none.
    pub mesos_roles: Vec<String>,
    /// `--mesos_authentication_principal` and
    /// `--mesos_authentication_secret_file`.
    pub mesos_credentials: Option<crate::mesos::MesosCredentials>,
    /// `--mesos_ca_file`: trusted, besides the system's roots, for
    /// `https://` masters.
    pub mesos_ca_file: Option<PathBuf>,
    /// `--mesos_ssl`: masters found in ZooKeeper are spoken to over https.
    pub mesos_ssl: bool,
    /// Authentication and authorization of the API.
    pub http_security: crate::auth::HttpSecurity,
    /// What the API accepts besides: CORS, header limits, write rates.
    pub http_policy: crate::api::guard::HttpPolicy,
    /// `--https_port`, `--ssl_cert`, `--ssl_key`: the API over TLS too.
    pub https: Option<crate::api::tls::HttpsSettings>,
    /// `--disable_http`: the API over TLS only.
    pub disable_http: bool,
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
    /// `--executor`: which executor runs app tasks.
    pub executor: ExecutorKind,
    /// `--executor_path`: the `baton-executor` binary agents fetch from
    /// us (default: next to the `baton` binary).
    pub executor_path: Option<PathBuf>,
    /// `--reconciliation_interval`.
    pub reconciliation_interval: Duration,
    /// `--task_launch_timeout`.
    pub task_launch_timeout: Duration,
    /// `--task_reservation_timeout`.
    pub task_reservation_timeout: Duration,
    /// `--kill_retry_timeout`.
    pub kill_retry_timeout: Duration,
    /// `--pod_executor baton`.
    pub pods_under_baton_executor: bool,
    /// `--load_report_interval`: how often baton-executor reports load
    /// (zero: never).
    pub load_report_interval: Duration,
    /// `--zk`: state in ZooKeeper and leader election among every `baton`
    /// with the same URL (else the embedded store, leading alone).
    pub zk: Option<ZkUrl>,
    /// `--zk_session_timeout`: how long ZooKeeper keeps a silent session
    /// (and so a dead leader's leadership, without probing).
    pub zk_session_timeout: Duration,
    /// `--leader_probe_interval`, `--leader_probe_timeout`,
    /// `--leader_probe_failures`: how standbys find a dead leader and
    /// depose it without waiting for its session to expire.
    pub leader_probe: crate::ha::probe::ProbeSettings,
    /// `--max_instances_per_app`: writes asking for more are refused.
    pub max_instances_per_app: u32,
    /// How many rendered list bodies the API keeps (`api::cache`); no
    /// flag yet, the default suits 10,000 apps.
    pub api_cache: crate::api::cache::CacheLimits,
    /// `--crash_after_store_writes` (fault injection for tests): the
    /// process kills itself after this many store writes, counted from the
    /// first that stores a deployment.
    pub crash_after_store_writes: Option<u64>,
    /// `--router_url`: the `baton-router`s (base URLs, `http://host:port`)
    /// whose statistics the web UI's Traffic page shows.
    pub router_urls: Vec<String>,
}

/// `--executor`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ExecutorKind {
    /// `baton`: Baton's own executor, fetched from Baton over HTTP.
    Baton,
    /// `command`: Mesos's built-in command executor.
    Command,
}

impl std::str::FromStr for ExecutorKind {
    type Err = String;
    fn from_str(s: &str) -> Result<ExecutorKind, String> {
        match s {
            "baton" => Ok(ExecutorKind::Baton),
            "command" => Ok(ExecutorKind::Command),
            other => Err(format!(
                "unknown executor '{other}' (expected baton or command)"
            )),
        }
    }
}

impl Settings {
    /// Settings with defaults for everything but where Mesos is, where
    /// state lives and where the API listens.
    pub fn new(master: MasterSpec, data_dir: PathBuf, http_addr: SocketAddr) -> Settings {
        Settings {
            master,
            framework_name: "marathon".into(),
            mesos_user: "root".into(),
            mesos_roles: vec!["*".into()],
            mesos_credentials: None,
            mesos_ca_file: None,
            mesos_ssl: false,
            http_security: crate::auth::HttpSecurity::default(),
            http_policy: crate::api::guard::HttpPolicy::default(),
            https: None,
            disable_http: false,
            hostname: "127.0.0.1".into(),
            failover_timeout: DEFAULT_FAILOVER_TIMEOUT,
            data_dir,
            http_addr,
            mesos_encoding: Encoding::Protobuf,
            executor: ExecutorKind::Baton,
            executor_path: None,
            reconciliation_interval: Duration::from_secs(600),
            task_launch_timeout: Duration::from_secs(300),
            task_reservation_timeout: Duration::from_secs(20),
            kill_retry_timeout: Duration::from_secs(10),
            pods_under_baton_executor: false,
            load_report_interval: ExecutorSettings::DEFAULT_LOAD_REPORT_INTERVAL,
            zk: None,
            zk_session_timeout: Duration::from_secs(10),
            leader_probe: crate::ha::probe::ProbeSettings::default(),
            max_instances_per_app: crate::state::app::DEFAULT_MAX_INSTANCES_PER_APP,
            api_cache: crate::api::cache::CacheLimits::DEFAULT,
            crash_after_store_writes: None,
            router_urls: Vec::new(),
        }
    }

    /// The role of apps that name none: the first of `--mesos_role`.
    pub fn default_role(&self) -> &str {
        self.mesos_roles.first().map_or("*", String::as_str)
    }

    /// Where the `baton-executor` binary is.
    pub fn executor_binary(&self) -> PathBuf {
        self.executor_path.clone().unwrap_or_else(|| {
            std::env::current_exe()
                .ok()
                .and_then(|exe| exe.parent().map(|dir| dir.join("baton-executor")))
                .unwrap_or_else(|| PathBuf::from("baton-executor"))
        })
    }
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
    /// Leading could not start (without ZooKeeper, where no one else can
    /// lead, that is fatal).
    #[error("cannot start leading: {0}")]
    Term(String),
    /// The security settings are unusable (a CA file, credentials, an
    /// ACL, a certificate).
    #[error("{0}")]
    Security(String),
    /// The web UI's settings are unusable (a `--router_url`).
    #[error(transparent)]
    Ui(#[from] crate::ui::UiError),
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
    /// With several roles it is MULTI_ROLE (`roles`, not `role`, as the
    /// master requires); the principal is the one Baton authenticates as.
    pub fn framework_info(&self) -> v1::FrameworkInfo {
        use v1::framework_info::{Capability, capability::Type};
        let multi_role = self.mesos_roles.len() > 1;
        let mut capabilities = vec![Type::PartitionAware, Type::TaskKillingState];
        if multi_role {
            capabilities.push(Type::MultiRole);
        }
        let role = self.default_role();
        v1::FrameworkInfo {
            user: self.mesos_user.clone(),
            name: self.framework_name.clone(),
            failover_timeout: Some(self.failover_timeout.as_secs_f64()),
            checkpoint: Some(true),
            role: (!multi_role && role != "*").then(|| role.to_string()),
            roles: if multi_role {
                self.mesos_roles.clone()
            } else {
                Vec::new()
            },
            principal: self.mesos_credentials.as_ref().map(|c| c.principal.clone()),
            hostname: Some(self.hostname.clone()),
            webui_url: Some(format!(
                "http://{}:{}",
                self.hostname,
                self.http_addr.port()
            )),
            capabilities: capabilities
                .into_iter()
                .map(|t| Capability {
                    r#type: Some(t as i32),
                })
                .collect(),
            ..Default::default()
        }
    }
}

/// A running Baton: leadership terms (each with its scheduler), the REST
/// API, and in local mode the embedded cluster.
pub struct Running {
    /// The scheduler of the term in progress (none while not leading).
    current: tokio::sync::watch::Receiver<Option<SchedulerHandle>>,
    /// This process's role.
    pub roles: tokio::sync::watch::Receiver<Role>,
    /// The embedded cluster, in local mode.
    pub local: Option<mesos_local::LocalCluster>,
    /// Where the REST API listens (the bound address, so port 0 works).
    pub http_addr: SocketAddr,
    /// Where the HTTPS REST API listens, with `--https_port`.
    pub https_addr: Option<SocketAddr>,
    shutdown: CancellationToken,
    terms: tokio::task::JoinHandle<Result<(), String>>,
}

impl Running {
    /// The scheduler of the term in progress, if this process leads.
    pub fn scheduler(&self) -> Option<SchedulerHandle> {
        self.current.borrow().clone()
    }

    /// Stops the scheduler (without TEARDOWN: tasks keep running for the
    /// failover timeout), the election and the embedded cluster, if any.
    pub async fn stop(self) {
        self.shutdown.cancel();
        // Wait for the term to end, so that the store is released and a
        // new process can open it.
        match self.terms.await {
            Ok(Ok(())) => {}
            Ok(Err(e)) => tracing::error!(error = %e, "leadership terms ended with an error"),
            Err(e) => tracing::error!(error = %e, "leadership terms ended abnormally"),
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
    // Without ZooKeeper the embedded store is opened once, up front, so a
    // bad --data_dir fails the start.
    let crash_after = settings.crash_after_store_writes;
    let with_faults = move |store: Arc<dyn Store>| -> Arc<dyn Store> {
        match crash_after {
            Some(n) => Arc::new(crate::state::crash::CrashAfterWrites::new(store, n)),
            None => store,
        }
    };
    let embedded: Option<Arc<dyn Store>> = match settings.zk {
        None => Some(with_faults(Arc::new(RedbStore::open(&settings.data_dir)?))),
        Some(_) => None,
    };
    let shutdown = CancellationToken::new();
    let mut detected = None;
    let (masters, local) = match &settings.master {
        MasterSpec::Masters(list) => (list.clone(), None),
        MasterSpec::Zk(url) => {
            detected = Some(crate::mesos::detector::spawn(
                url.clone(),
                settings.mesos_ssl,
                shutdown.clone(),
            ));
            (Vec::new(), None)
        }
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
    session.detected = detected;
    session.security = crate::mesos::CallerSecurity {
        tls: crate::mesos::auth::tls_client_config(settings.mesos_ca_file.as_deref())
            .map_err(|e| StartError::Security(e.to_string()))?,
        credentials: settings.mesos_credentials.clone(),
    };
    session_tuning(&mut session);
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
    settings
        .http_security
        .validate()
        .map_err(|e| StartError::Security(e.to_string()))?;
    if settings.disable_http && (settings.https.is_none() || settings.zk.is_some()) {
        return Err(StartError::Security(
            "--disable_http needs --https_port, and is not supported with --zk yet (standbys proxy to the leader over HTTP)"
                .into(),
        ));
    }
    if settings.zk.is_some() && settings.https.is_some() && settings.http_security.authenticates() {
        tracing::warn!(
            "with --zk, a standby proxies to the leader over plain HTTP: credentials sent to a standby over HTTPS cross that hop unencrypted; keep the nodes on a trusted network"
        );
    }
    let (https, https_addr) = match &settings.https {
        Some(https) => {
            let certs = Arc::new(
                crate::api::tls::ReloadingCert::load(&https.cert, &https.key)
                    .map_err(|e| StartError::Security(e.to_string()))?,
            );
            let listener = tokio::net::TcpListener::bind(https.addr)
                .await
                .map_err(|source| StartError::Listen {
                    addr: https.addr,
                    source,
                })?;
            let addr = listener.local_addr().map_err(|source| StartError::Listen {
                addr: https.addr,
                source,
            })?;
            (Some((listener, certs)), Some(addr))
        }
        None => (None, None),
    };
    let me = format!("{}:{}", settings.hostname, http_addr.port());
    let master_text = match (&settings.master, &local) {
        // The embedded master's URL, so that clients (`baton task logs`)
        // can reach its `/master/state` and its agents.
        (MasterSpec::Local(_), Some(cluster)) => cluster.master_url(),
        (MasterSpec::Local(_), None) => "local".to_string(),
        (MasterSpec::Zk(url), _) => url.to_string(),
        (MasterSpec::Masters(list), _) => list
            .iter()
            .map(ToString::to_string)
            .collect::<Vec<_>>()
            .join(","),
    };
    let executor_file = Arc::new(crate::api::files::ExecutorFile::new(
        settings.executor_binary(),
    ));
    // Read (and hashed) now, so that the URL agents fetch names the build
    // and their fetcher cache can keep it.
    let executor_version = match settings.executor {
        ExecutorKind::Baton => executor_file.load().await.map(str::to_string),
        ExecutorKind::Command => None,
    };
    let executor = match settings.executor {
        ExecutorKind::Command => ExecutorChoice::Command,
        ExecutorKind::Baton => ExecutorChoice::Baton(ExecutorSettings {
            // Over HTTPS only when plain HTTP is off: agents must then
            // trust the API's certificate.
            fetch_url: match https_addr {
                Some(addr) if settings.disable_http => format!(
                    "https://{}:{}{}",
                    settings.hostname,
                    addr.port(),
                    executor_file.fetch_path()
                ),
                _ => format!("http://{me}{}", executor_file.fetch_path()),
            },
            cache: executor_version.is_some(),
            cpus: ExecutorSettings::DEFAULT_CPUS,
            mem: ExecutorSettings::DEFAULT_MEM,
            disk: ExecutorSettings::DEFAULT_DISK,
            load_report_interval: settings.load_report_interval,
        }),
    };
    let mut config = SchedulerConfig::new(session, settings.default_role().to_string(), executor);
    config.reconciliation_interval = settings.reconciliation_interval;
    config.limits.task_launch_timeout = settings.task_launch_timeout;
    config.limits.reservation_timeout = settings.task_reservation_timeout;
    config.limits.kill_retry = settings.kill_retry_timeout;
    config.pods_under_baton_executor = settings.pods_under_baton_executor;
    config.max_instances_per_app = settings.max_instances_per_app;

    // Who leads: ZooKeeper's election, or this process alone.
    let (roles, leases, abdicate) = match &settings.zk {
        Some(url) => {
            let election = election::spawn(
                url.clone(),
                me.clone(),
                settings.zk_session_timeout,
                settings.leader_probe,
                shutdown.clone(),
            );
            (election.roles, Some(election.lease), election.abdicate)
        }
        None => {
            let (roles, abdicate) = sole_leader(shutdown.clone());
            (roles, None, abdicate)
        }
    };
    // With ZooKeeper, every process answers standbys' liveness probes
    // itself, leading or not (outside the guard and the proxy).
    let probe_routes: Option<axum::Router> = leases.clone().map(crate::ha::probe::routes);

    let identity = Arc::new(crate::api::Identity {
        framework_name: settings.framework_name.clone(),
        leader: me.clone(),
        http_port: http_addr.port(),
        master: master_text,
        mesos_roles: settings.mesos_roles.clone(),
        mesos_user: settings.mesos_user.clone(),
        failover_timeout_seconds: settings.failover_timeout.as_secs(),
        zk: settings.zk.as_ref().map(|url| {
            (
                url.to_string(),
                settings.zk_session_timeout.as_millis() as u64,
            )
        }),
        max_instances_per_app: settings.max_instances_per_app,
    });
    let requests: Arc<crate::api::RequestCounters> = Arc::default();
    let guard = Arc::new(crate::api::guard::Guard::new(
        settings.http_security.clone(),
        settings.http_policy.clone(),
    ));
    let ui = crate::ui::Ui::new(&settings.router_urls, shutdown.clone())?;
    let api_cache = settings.api_cache;
    let start = {
        let ui = ui.clone();
        let probe_routes = probe_routes.clone();
        let (identity, requests, executor_file, abdicate, guard) = (
            identity.clone(),
            requests.clone(),
            executor_file.clone(),
            abdicate.clone(),
            guard.clone(),
        );
        move |role: Role, cancel: CancellationToken| {
            let mut config = config.clone();
            let embedded = embedded.clone();
            let lease = leases.as_ref().and_then(|l| l.borrow().clone());
            let (identity, requests, executor_file, abdicate, guard) = (
                identity.clone(),
                requests.clone(),
                executor_file.clone(),
                abdicate.clone(),
                guard.clone(),
            );
            let ui = ui.clone();
            let probe_routes = probe_routes.clone();
            async move {
                let mut registry = None;
                let store: Arc<dyn Store> = match (embedded, lease) {
                    (Some(store), _) => store,
                    (None, Some(lease)) if role == (Role::Leading { term: lease.term }) => {
                        registry = Some((lease.client.clone(), lease.lock_path.clone()));
                        // Fenced twice: ZooKeeper checks the election znode
                        // in every multi-op, and nothing is even tried
                        // without the term's lease; the same lease gates
                        // every Mesos call (crate::lease).
                        config.session.lease = Some(lease.gate.clone());
                        let store = ZkStore::open(lease.client, Some(lease.lock_path)).await?;
                        with_faults(Arc::new(crate::lease::GatedStore::new(
                            Arc::new(store),
                            lease.gate,
                        )))
                    }
                    (None, _) => {
                        return Err(StartError::Store(StoreError::Fenced(
                            "the election moved on before the term started".into(),
                        )));
                    }
                };
                let (scheduler, stopped) = Scheduler::start(config, store, cancel.clone())?;
                if let Some((client, fence)) = registry {
                    tokio::spawn(crate::ha::registry::run(
                        client,
                        fence,
                        scheduler.watch_view(),
                        cancel,
                    ));
                }
                let router = crate::api::router(crate::api::ApiState {
                    scheduler: scheduler.clone(),
                    identity,
                    requests,
                    executor_file,
                    abdicate,
                    guard,
                    cache: Arc::new(crate::api::cache::ResponseCache::new(api_cache)),
                    router_loads: Arc::new(crate::api::routers::RouterLoads::new(scheduler.now())),
                })
                // The UI's settings, for its handlers behind the guard.
                .layer(axum::Extension(ui));
                let router = match probe_routes {
                    Some(probes) => router.merge(probes),
                    None => router,
                };
                Ok::<_, StartError>(terms::Term {
                    router,
                    scheduler,
                    stopped,
                })
            }
        }
    };
    let standby_state = crate::api::standby::StandbyState::new(roles.clone(), &me)
        .map_err(|e| StartError::Local(format!("cannot build the standby's HTTP client: {e}")))?;
    let standby = standby_router(standby_state, guard.clone(), executor_file.clone(), &ui);
    let standby = match probe_routes {
        Some(probes) => standby.merge(probes),
        None => standby,
    };
    let (serving, serving_rx) = tokio::sync::watch::channel(standby.clone());
    if let Some((listener, certs)) = https {
        let (serving_rx, api_shutdown) = (serving_rx.clone(), shutdown.clone());
        let poll = settings.https.as_ref().and_then(|h| h.reload_poll);
        tokio::spawn(certs.clone().watch(poll, shutdown.clone()));
        tokio::spawn(async move {
            if let Err(e) =
                crate::api::serve_https(listener, certs, serving_rx, api_shutdown.cancelled_owned())
                    .await
            {
                tracing::error!(error = %e, "HTTPS REST API server failed");
            }
        });
        info!(addr = %https_addr.expect("bound with the listener"), "HTTPS REST API listening");
    }
    if settings.disable_http {
        drop(listener);
    } else {
        let api_shutdown = shutdown.clone();
        tokio::spawn(async move {
            if let Err(e) =
                crate::api::serve(listener, serving_rx, api_shutdown.cancelled_owned()).await
            {
                tracing::error!(error = %e, "REST API server failed");
            }
        });
        info!(%http_addr, zk = ?settings.zk.as_ref().map(ToString::to_string), "REST API listening");
    }

    let (current_tx, mut current) = tokio::sync::watch::channel(None);
    // Without ZooKeeper a term that cannot start is fatal (there is no one
    // else to lead); with it, the start is retried while leading.
    let retry_failed_start = settings.zk.is_some();
    let terms = tokio::spawn(terms::run(
        roles.clone(),
        start,
        serving,
        standby,
        current_tx,
        shutdown.clone(),
        retry_failed_start,
    ));
    let mut running = Running {
        current: current.clone(),
        roles,
        local,
        http_addr,
        https_addr,
        shutdown,
        terms,
    };
    if !retry_failed_start {
        // Alone, this process leads at once: return once it does.
        tokio::select! {
            started = current.wait_for(Option::is_some) => { let _ = started; }
            ended = &mut running.terms => {
                let reason = match ended {
                    Ok(Err(e)) => e,
                    Ok(Ok(())) => "stopped before leading".into(),
                    Err(e) => e.to_string(),
                };
                if let Some(local) = running.local.take() {
                    local.shutdown().await;
                }
                return Err(StartError::Term(reason));
            }
        }
    }
    Ok(running)
}

/// The API of a standby: every request proxied to the leader behind the
/// guard, except what a standby serves itself: the executor binary, the
/// web UI's pages and its API (the Traffic page's statistics, the leader's
/// event stream relayed).
pub fn standby_router(
    state: crate::api::standby::StandbyState,
    guard: Arc<crate::api::guard::Guard>,
    executor_file: Arc<crate::api::files::ExecutorFile>,
    ui: &crate::ui::Ui,
) -> axum::Router {
    let ui_api = crate::ui::standby_routes(ui, state.roles.clone(), state.http.clone());
    crate::api::standby::router(state)
        .merge(ui_api)
        .layer(axum::middleware::from_fn_with_state(
            guard,
            crate::api::guard::guard,
        ))
        .layer(axum::Extension(ui.clone()))
        .merge(crate::api::files::routes(executor_file))
        .merge(crate::ui::asset_routes())
}

/// The roles of a process leading alone: leading from the start; an
/// abdication starts a new term.
fn sole_leader(
    shutdown: CancellationToken,
) -> (
    tokio::sync::watch::Receiver<Role>,
    tokio::sync::mpsc::Sender<()>,
) {
    let (roles_tx, roles) = tokio::sync::watch::channel(Role::sole_leader());
    let (abdicate, mut abdications) = tokio::sync::mpsc::channel(4);
    tokio::spawn(async move {
        let mut term = 1;
        loop {
            tokio::select! {
                Some(()) = abdications.recv() => {
                    term += 1;
                    roles_tx.send_replace(Role::Electing);
                    roles_tx.send_replace(Role::Leading { term });
                }
                () = shutdown.cancelled() => return,
            }
        }
    });
    (roles, abdicate)
}
