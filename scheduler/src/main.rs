//! `baton`: parses Marathon-style flags (each also read from `BATON_<FLAG>`)
//! and runs the scheduler, or, given a command (`baton app list`, ...),
//! runs the operator CLI. All logic lives in the library.

use std::net::{IpAddr, SocketAddr};
use std::path::PathBuf;
use std::time::Duration;

use anyhow::Context;
use baton::config::{self, MasterSpec, Settings};
use clap::Parser;
use mesos_proto::Encoding;

/// A Mesos framework for long-running services that speaks Marathon's REST API.
///
/// `baton [FLAGS]` runs the scheduler; `baton <COMMAND>` is the operator
/// CLI over the REST API of a Baton (or Marathon) at --url.
#[derive(Debug, Parser)]
#[command(
    name = "baton",
    version,
    args_conflicts_with_subcommands = true,
    after_help = baton::cli::EXIT_CODES
)]
struct Baton {
    #[command(subcommand)]
    command: Option<baton::cli::Command>,
    #[command(flatten)]
    flags: Flags,
}

// The scheduler's flags (a plain comment: a doc comment would replace the
// command's description).
#[derive(Debug, clap::Args)]
struct Flags {
    /// Mesos master: `local` (embedded cluster), `host:5050`, `http://host:5050`, or a comma list.
    #[arg(long, env = "BATON_MASTER", default_value = "local")]
    master: String,
    /// Port of the REST API.
    #[arg(long = "http_port", env = "BATON_HTTP_PORT", default_value_t = 8080)]
    http_port: u16,
    /// Address the REST API binds to.
    #[arg(
        long = "http_address",
        env = "BATON_HTTP_ADDRESS",
        default_value = "0.0.0.0"
    )]
    http_address: IpAddr,
    /// Hostname advertised to Mesos (mesos-dns uses it).
    #[arg(long, env = "BATON_HOSTNAME")]
    hostname: Option<String>,
    /// Framework name registered with Mesos.
    #[arg(
        long = "framework_name",
        env = "BATON_FRAMEWORK_NAME",
        default_value = "marathon"
    )]
    framework_name: String,
    /// Seconds Mesos keeps our tasks while Baton is away (default one week).
    #[arg(long = "failover_timeout", env = "BATON_FAILOVER_TIMEOUT", default_value_t = config::DEFAULT_FAILOVER_TIMEOUT.as_secs())]
    failover_timeout: u64,
    /// Mesos role for resources, or a comma list of roles (Baton then
    /// subscribes MULTI_ROLE); the first is the role of apps that name none.
    #[arg(long = "mesos_role", env = "BATON_MESOS_ROLE", default_value = "*")]
    mesos_role: String,
    /// Principal Baton authenticates to Mesos with (HTTP Basic), also set
    /// as FrameworkInfo.principal.
    #[arg(
        long = "mesos_authentication_principal",
        env = "BATON_MESOS_AUTHENTICATION_PRINCIPAL"
    )]
    mesos_authentication_principal: Option<String>,
    /// File holding the principal's secret; read again at every
    /// subscription, so fixing it needs no restart.
    #[arg(
        long = "mesos_authentication_secret_file",
        env = "BATON_MESOS_AUTHENTICATION_SECRET_FILE"
    )]
    mesos_authentication_secret_file: Option<PathBuf>,
    /// PEM certificates trusted for https:// masters, besides the system's.
    #[arg(long = "mesos_ca_file", env = "BATON_MESOS_CA_FILE")]
    mesos_ca_file: Option<PathBuf>,
    /// Speak https to masters found in ZooKeeper (Mesos's MasterInfo has
    /// no scheme); LIBPROCESS_SSL_ENABLED=true does the same.
    #[arg(long = "mesos_ssl", env = "BATON_MESOS_SSL")]
    mesos_ssl: bool,
    /// Users of the REST API: `user:password[,user:password]` (HTTP Basic).
    #[arg(long = "http_credentials", env = "BATON_HTTP_CREDENTIALS")]
    http_credentials: Option<String>,
    /// Realm named in 401 answers.
    #[arg(
        long = "http_realm",
        env = "BATON_HTTP_REALM",
        default_value = "Mesosphere"
    )]
    http_realm: String,
    /// Front-proxy mode: trust this request header as the authenticated
    /// user (only safe when Baton is reachable through that proxy alone).
    #[arg(long = "http_user_header", env = "BATON_HTTP_USER_HEADER")]
    http_user_header: Option<String>,
    /// Peers (CIDR blocks, comma list) whose --http_user_header is
    /// believed: the front proxy and the standbys forwarding for it.
    #[arg(
        long = "http_trusted_proxies",
        env = "BATON_HTTP_TRUSTED_PROXIES",
        default_value = "127.0.0.0/8,::1/128"
    )]
    http_trusted_proxies: String,
    /// ACL file: actions granted to users and groups on app paths (JSON;
    /// see the README).
    #[arg(long = "acl_file", env = "BATON_ACL_FILE")]
    acl_file: Option<PathBuf>,
    /// Serve /v2/events without authentication.
    #[arg(long = "http_open_events", env = "BATON_HTTP_OPEN_EVENTS")]
    http_open_events: bool,
    /// Serve /metrics without authentication.
    #[arg(long = "http_open_metrics", env = "BATON_HTTP_OPEN_METRICS")]
    http_open_metrics: bool,
    /// Origins allowed cross-origin requests (comma list, or `*`).
    #[arg(
        long = "access_control_allow_origin",
        env = "BATON_ACCESS_CONTROL_ALLOW_ORIGIN"
    )]
    access_control_allow_origin: Option<String>,
    /// The most bytes of request headers accepted (431 beyond).
    #[arg(
        long = "http_max_header_bytes",
        env = "BATON_HTTP_MAX_HEADER_BYTES",
        default_value_t = baton::api::guard::DEFAULT_MAX_HEADER_BYTES
    )]
    http_max_header_bytes: usize,
    /// Writes per second allowed to each client (a user, else an address),
    /// with a burst of as many; 429 with Retry-After beyond. 0: no limit.
    #[arg(
        long = "http_write_rate_limit",
        env = "BATON_HTTP_WRITE_RATE_LIMIT",
        default_value_t = 0.0
    )]
    http_write_rate_limit: f64,
    /// Port of the HTTPS REST API (needs --ssl_cert and --ssl_key).
    #[arg(long = "https_port", env = "BATON_HTTPS_PORT")]
    https_port: Option<u16>,
    /// Address the HTTPS REST API binds to (default: --http_address).
    #[arg(long = "https_address", env = "BATON_HTTPS_ADDRESS")]
    https_address: Option<IpAddr>,
    /// The HTTPS certificate chain, PEM (reloaded on SIGHUP or change).
    #[arg(long = "ssl_cert", env = "BATON_SSL_CERT")]
    ssl_cert: Option<PathBuf>,
    /// The HTTPS certificate's private key, PEM.
    #[arg(long = "ssl_key", env = "BATON_SSL_KEY")]
    ssl_key: Option<PathBuf>,
    /// Milliseconds between checks of the certificate files for changes
    /// (0: reload on SIGHUP only).
    #[arg(
        long = "ssl_reload_interval",
        env = "BATON_SSL_RELOAD_INTERVAL",
        default_value_t = baton::api::tls::DEFAULT_RELOAD_POLL.as_millis() as u64
    )]
    ssl_reload_interval: u64,
    /// Serve the REST API over HTTPS only.
    #[arg(long = "disable_http", env = "BATON_DISABLE_HTTP")]
    disable_http: bool,
    /// baton-router instances (`http://host:port`, comma list) whose
    /// `/_router/stats` the web UI's Traffic page shows.
    #[arg(long = "router_url", env = "BATON_ROUTER_URL", value_delimiter = ',')]
    router_url: Vec<String>,
    /// User tasks run as (default: the current user).
    #[arg(long = "mesos_user", env = "BATON_MESOS_USER")]
    mesos_user: Option<String>,
    /// Directory of the embedded store.
    #[arg(
        long = "data_dir",
        env = "BATON_DATA_DIR",
        default_value = "./baton-data"
    )]
    data_dir: PathBuf,
    /// Wire encoding towards Mesos: protobuf or json.
    #[arg(
        long = "mesos_encoding",
        env = "BATON_MESOS_ENCODING",
        default_value = "protobuf"
    )]
    mesos_encoding: Encoding,
    /// Local mode: number of agents.
    #[arg(long = "local_agents", env = "BATON_LOCAL_AGENTS", default_value_t = 3)]
    local_agents: usize,
    /// Local mode: number of racks the agents spread over.
    #[arg(long = "local_racks", env = "BATON_LOCAL_RACKS", default_value_t = 2)]
    local_racks: usize,
    /// Local mode: port of the embedded master (0 = any free port).
    #[arg(
        long = "local_master_port",
        env = "BATON_LOCAL_MASTER_PORT",
        default_value_t = 5050
    )]
    local_master_port: u16,
    /// Local mode: first host port of agent 1 (agent i gets the next range).
    #[arg(
        long = "local_port_range_start",
        env = "BATON_LOCAL_PORT_RANGE_START",
        default_value_t = 31000
    )]
    local_port_range_start: u16,
    /// Local mode: host ports per agent.
    #[arg(
        long = "local_ports_per_agent",
        env = "BATON_LOCAL_PORTS_PER_AGENT",
        default_value_t = 1000
    )]
    local_ports_per_agent: u16,
    /// Local mode: how agents hold containers to their cpus and mem, as
    /// Mesos's `--isolation`: `cgroups/cpu,cgroups/mem` (a cgroup per
    /// container; a watchdog where cgroups cannot be written) or
    /// `posix/cpu,posix/mem` (the watchdog).
    #[arg(
        long = "local_isolation",
        env = "BATON_LOCAL_ISOLATION",
        default_value = "cgroups/cpu,cgroups/mem"
    )]
    local_isolation: mesos_local::config::Isolation,
    /// Local mode: cap each container's CPU at its `cpus` with a CFS quota
    /// (Mesos's `--cgroups_enable_cfs`; else CPU shares only).
    #[arg(
        long = "local_cgroups_enable_cfs",
        env = "BATON_LOCAL_CGROUPS_ENABLE_CFS"
    )]
    local_cgroups_enable_cfs: bool,
    /// Executor for app tasks: `baton` (fetched from this server) or `command` (Mesos's).
    #[arg(long, env = "BATON_EXECUTOR", default_value = "baton")]
    executor: config::ExecutorKind,
    /// The baton-executor binary agents fetch (default: next to this binary).
    #[arg(long = "executor_path", env = "BATON_EXECUTOR_PATH")]
    executor_path: Option<PathBuf>,
    /// Milliseconds between reconciliations of every task with Mesos.
    #[arg(
        long = "reconciliation_interval",
        env = "BATON_RECONCILIATION_INTERVAL",
        default_value_t = 600_000
    )]
    reconciliation_interval: u64,
    /// Milliseconds a task may take to reach TASK_RUNNING before it is killed and replaced.
    #[arg(
        long = "task_launch_timeout",
        env = "BATON_TASK_LAUNCH_TIMEOUT",
        default_value_t = 300_000
    )]
    task_launch_timeout: u64,
    /// Milliseconds a resident instance waits for Mesos to show the
    /// resources it reserved before it reserves elsewhere.
    #[arg(
        long = "task_reservation_timeout",
        env = "BATON_TASK_RESERVATION_TIMEOUT",
        default_value_t = 20_000
    )]
    task_reservation_timeout: u64,
    /// Milliseconds after which a kill that has not landed is sent again.
    #[arg(
        long = "kill_retry_timeout",
        env = "BATON_KILL_RETRY_TIMEOUT",
        default_value_t = 10_000
    )]
    kill_retry_timeout: u64,
    /// What runs pods' task groups: `default` (Mesos's default executor,
    /// as Marathon does) or `baton` (baton-executor as a custom executor).
    #[arg(
        long = "pod_executor",
        env = "BATON_POD_EXECUTOR",
        default_value = "default",
        value_parser = ["default", "baton"]
    )]
    pod_executor: String,
    /// Milliseconds between baton-executor's load reports (task CPU and
    /// memory, host load) for load-aware balancing; 0 turns them off.
    #[arg(
        long = "load_report_interval",
        env = "BATON_LOAD_REPORT_INTERVAL",
        default_value_t = 5_000
    )]
    load_report_interval: u64,
    /// ZooKeeper for state and leader election among every baton with the
    /// same URL, e.g. `zk://h1:2181,h2:2181/baton` (default: the embedded
    /// store under --data_dir, leading alone).
    #[arg(long, env = "BATON_ZK")]
    zk: Option<String>,
    /// Milliseconds ZooKeeper keeps a silent session: how long a dead
    /// leader keeps its leadership when standbys do not probe it.
    #[arg(
        long = "zk_session_timeout",
        env = "BATON_ZK_SESSION_TIMEOUT",
        default_value_t = 10_000
    )]
    zk_session_timeout: u64,
    /// Milliseconds between a standby's liveness probes of the leader
    /// (with --zk); 0 turns probing off (a dead leader then leads until
    /// its ZooKeeper session expires).
    #[arg(
        long = "leader_probe_interval",
        env = "BATON_LEADER_PROBE_INTERVAL",
        default_value_t = baton::ha::probe::ProbeSettings::DEFAULT_INTERVAL.as_millis() as u64
    )]
    leader_probe_interval: u64,
    /// Milliseconds a liveness probe of the leader may take before it
    /// counts as failed.
    #[arg(
        long = "leader_probe_timeout",
        env = "BATON_LEADER_PROBE_TIMEOUT",
        default_value_t = baton::ha::probe::ProbeSettings::DEFAULT_TIMEOUT.as_millis() as u64
    )]
    leader_probe_timeout: u64,
    /// Failed probes in a row after which the next standby in line deposes
    /// the leader (deletes its election znode) and the next contender
    /// takes over; keep the same on every node.
    #[arg(
        long = "leader_probe_failures",
        env = "BATON_LEADER_PROBE_FAILURES",
        default_value_t = baton::ha::probe::ProbeSettings::DEFAULT_FAILURES
    )]
    leader_probe_failures: u32,
    /// The most instances one app may ask for; more is refused with 422.
    #[arg(
        long = "max_instances_per_app",
        env = "BATON_MAX_INSTANCES_PER_APP",
        default_value_t = baton::state::app::DEFAULT_MAX_INSTANCES_PER_APP
    )]
    max_instances_per_app: u32,
    /// Fault injection for crash tests: kill this process (SIGKILL) right
    /// after this many store writes, counted from the first write that
    /// stores a deployment.
    #[arg(
        long = "crash_after_store_writes",
        env = "BATON_CRASH_AFTER_STORE_WRITES",
        hide = true
    )]
    crash_after_store_writes: Option<u64>,
}

fn settings(flags: Flags) -> anyhow::Result<Settings> {
    let mut master = MasterSpec::parse(&flags.master).context("--master")?;
    if let MasterSpec::Local(cluster) = &mut master {
        cluster.agents = flags.local_agents;
        cluster.racks = flags.local_racks;
        cluster.master_addr = SocketAddr::from(([127, 0, 0, 1], flags.local_master_port));
        cluster.work_dir = flags.data_dir.join("mesos-local");
        cluster.port_range_start = flags.local_port_range_start;
        cluster.ports_per_agent = flags.local_ports_per_agent;
        cluster.isolation.isolation = flags.local_isolation;
        cluster.isolation.enable_cfs = flags.local_cgroups_enable_cfs;
    }
    let hostname = match flags.hostname {
        Some(h) => h,
        None => nix::unistd::gethostname()
            .ok()
            .and_then(|h| h.into_string().ok())
            .unwrap_or_else(|| "localhost".into()),
    };
    let mesos_user = match flags.mesos_user {
        Some(u) => u,
        None => nix::unistd::User::from_uid(nix::unistd::getuid())
            .ok()
            .flatten()
            .map_or_else(|| "root".into(), |u| u.name),
    };
    let mut settings = Settings::new(
        master,
        flags.data_dir,
        SocketAddr::new(flags.http_address, flags.http_port),
    );
    settings.framework_name = flags.framework_name;
    settings.mesos_user = mesos_user;
    settings.mesos_roles = flags
        .mesos_role
        .split(',')
        .map(str::trim)
        .filter(|r| !r.is_empty())
        .map(str::to_string)
        .collect();
    if settings.mesos_roles.is_empty() {
        anyhow::bail!("--mesos_role names no role");
    }
    settings.mesos_credentials = match (
        flags.mesos_authentication_principal,
        flags.mesos_authentication_secret_file,
    ) {
        (Some(principal), secret_file) => Some(baton::mesos::MesosCredentials {
            principal,
            secret_file,
        }),
        (None, Some(_)) => anyhow::bail!(
            "--mesos_authentication_secret_file needs --mesos_authentication_principal"
        ),
        (None, None) => None,
    };
    settings.mesos_ca_file = flags.mesos_ca_file;
    settings.mesos_ssl = flags.mesos_ssl
        || std::env::var("LIBPROCESS_SSL_ENABLED")
            .is_ok_and(|v| matches!(v.as_str(), "1" | "true" | "TRUE" | "True"));
    settings.http_security = baton::auth::HttpSecurity {
        users: flags
            .http_credentials
            .as_deref()
            .map(baton::auth::Users::parse)
            .transpose()?,
        realm: flags.http_realm,
        user_header: flags.http_user_header.map(|h| h.to_ascii_lowercase()),
        trusted_proxies: flags
            .http_trusted_proxies
            .split(',')
            .map(str::trim)
            .filter(|c| !c.is_empty())
            .map(|c| {
                c.parse()
                    .with_context(|| format!("--http_trusted_proxies: {c:?} is not a CIDR block"))
            })
            .collect::<anyhow::Result<_>>()?,
        acl: flags
            .acl_file
            .as_deref()
            .map(baton::auth::Acl::load)
            .transpose()?,
        open_events: flags.http_open_events,
        open_metrics: flags.http_open_metrics,
    };
    settings.http_policy = baton::api::guard::HttpPolicy {
        cors_origins: flags
            .access_control_allow_origin
            .iter()
            .flat_map(|o| o.split(','))
            .map(str::trim)
            .filter(|o| !o.is_empty())
            .map(str::to_string)
            .collect(),
        max_header_bytes: flags.http_max_header_bytes,
        write_rate_per_client: (flags.http_write_rate_limit > 0.0)
            .then_some(flags.http_write_rate_limit),
    };
    settings.https = match (flags.https_port, flags.ssl_cert, flags.ssl_key) {
        (Some(port), Some(cert), Some(key)) => Some(baton::api::tls::HttpsSettings {
            addr: SocketAddr::new(flags.https_address.unwrap_or(flags.http_address), port),
            cert,
            key,
            reload_poll: (flags.ssl_reload_interval > 0)
                .then(|| Duration::from_millis(flags.ssl_reload_interval)),
        }),
        (None, None, None) => None,
        _ => anyhow::bail!("--https_port, --ssl_cert and --ssl_key go together"),
    };
    settings.disable_http = flags.disable_http;
    settings.router_urls = flags.router_url;
    settings.hostname = hostname;
    settings.failover_timeout = Duration::from_secs(flags.failover_timeout);
    settings.mesos_encoding = flags.mesos_encoding;
    settings.executor = flags.executor;
    settings.executor_path = flags.executor_path;
    settings.reconciliation_interval = Duration::from_millis(flags.reconciliation_interval);
    settings.task_launch_timeout = Duration::from_millis(flags.task_launch_timeout);
    settings.task_reservation_timeout = Duration::from_millis(flags.task_reservation_timeout);
    settings.kill_retry_timeout = Duration::from_millis(flags.kill_retry_timeout);
    settings.pods_under_baton_executor = flags.pod_executor == "baton";
    settings.load_report_interval = Duration::from_millis(flags.load_report_interval);
    settings.zk = flags
        .zk
        .as_deref()
        .map(baton::zk::ZkUrl::parse)
        .transpose()
        .context("--zk")?;
    settings.zk_session_timeout = Duration::from_millis(flags.zk_session_timeout);
    settings.leader_probe = baton::ha::probe::ProbeSettings {
        interval: Duration::from_millis(flags.leader_probe_interval),
        timeout: Duration::from_millis(flags.leader_probe_timeout),
        failures: flags.leader_probe_failures,
    };
    settings.max_instances_per_app = flags.max_instances_per_app;
    settings.crash_after_store_writes = flags.crash_after_store_writes;
    Ok(settings)
}

#[tokio::main]
async fn main() -> anyhow::Result<()> {
    let baton = Baton::parse();
    if let Some(command) = baton.command {
        // The CLI's diagnostics go to stderr, warnings only unless asked.
        tracing_subscriber::fmt()
            .with_env_filter(
                tracing_subscriber::EnvFilter::try_from_default_env()
                    .unwrap_or_else(|_| "warn".into()),
            )
            .with_writer(std::io::stderr)
            .init();
        std::process::exit(baton::cli::run(command).await);
    }
    tracing_subscriber::fmt()
        .with_env_filter(
            tracing_subscriber::EnvFilter::try_from_default_env().unwrap_or_else(|_| "info".into()),
        )
        .init();
    let settings = settings(baton.flags)?;
    let running = config::run(settings, |_| {})
        .await
        .context("starting baton")?;
    let mut terminate = tokio::signal::unix::signal(tokio::signal::unix::SignalKind::terminate())?;
    tokio::select! {
        _ = tokio::signal::ctrl_c() => {}
        _ = terminate.recv() => {}
    }
    tracing::info!("shutting down (the framework stays registered; tasks keep running)");
    running.stop().await;
    Ok(())
}
