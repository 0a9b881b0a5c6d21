//! `baton-router`: parses flags (each also read from `BATON_ROUTER_<FLAG>`),
//! binds the listeners, loads the TLS certificates and runs the router
//! until SIGINT or SIGTERM; SIGHUP reloads the certificates. All logic
//! lives in the library.
//!
//! Flags are kebab-case (`--tls-listen`); the TLS, redirect, auth,
//! access-log and cache flags also answer to the underscore spelling of Baton's
//! other binaries (`--tls_listen`).

use std::net::SocketAddr;
use std::path::PathBuf;
use std::sync::Arc;
use std::time::Duration;

use anyhow::Context;
use baton_router::access_log::{self, Destination};
use baton_router::{Config, Listeners, tls};
use clap::Parser;

/// Rotated access-log files kept per app at most.
const MAX_ACCESS_LOG_KEEP: usize = 1000;

/// HTTP gateway for apps run by Baton or Marathon: routes by Host and path
/// to live instances, balances, keeps sessions sticky, counts.
#[derive(Debug, Parser)]
#[command(name = "baton-router", version)]
struct Flags {
    /// Marathon's (or Baton's) URL.
    #[arg(
        long,
        env = "BATON_ROUTER_MARATHON",
        default_value = "http://127.0.0.1:8080"
    )]
    marathon: String,
    /// Address to serve on.
    #[arg(long, env = "BATON_ROUTER_LISTEN", default_value = "127.0.0.1:8000")]
    listen: SocketAddr,
    /// Bound on connecting to an instance, e.g. `1s`, `500ms`.
    #[arg(long, env = "BATON_ROUTER_CONNECT_TIMEOUT", default_value = "1s", value_parser = humantime::parse_duration)]
    connect_timeout: Duration,
    /// Bound on an instance's response head.
    #[arg(long, env = "BATON_ROUTER_UPSTREAM_TIMEOUT", default_value = "60s", value_parser = humantime::parse_duration)]
    upstream_timeout: Duration,
    /// Consecutive failures that eject an instance (0: never).
    #[arg(long, env = "BATON_ROUTER_EJECT_AFTER", default_value_t = 3)]
    eject_after: u32,
    /// How long an ejected instance stays out of rotation.
    #[arg(long, env = "BATON_ROUTER_EJECT_FOR", default_value = "10s", value_parser = humantime::parse_duration)]
    eject_for: Duration,
    /// Full re-read of /v2/apps besides the event stream.
    #[arg(long, env = "BATON_ROUTER_RESYNC_INTERVAL", default_value = "30s", value_parser = humantime::parse_duration)]
    resync_interval: Duration,
    /// Bound on each request to Marathon's API (the app list can be large).
    #[arg(long, env = "BATON_ROUTER_MARATHON_TIMEOUT", default_value = "10s", value_parser = humantime::parse_duration)]
    marathon_timeout: Duration,
    /// Reopen the event stream after this long without a byte.
    #[arg(long, env = "BATON_ROUTER_EVENT_IDLE_TIMEOUT", default_value = "60s", value_parser = humantime::parse_duration)]
    event_idle_timeout: Duration,
    /// Request bodies up to this many bytes are buffered so that a failed
    /// attempt can be retried on another instance.
    #[arg(long, env = "BATON_ROUTER_MAX_BUFFERED_BODY", default_value_t = 64 * 1024)]
    max_buffered_body: usize,
    /// How long shutdown waits for open requests.
    #[arg(long, env = "BATON_ROUTER_SHUTDOWN_GRACE", default_value = "10s", value_parser = humantime::parse_duration)]
    shutdown_grace: Duration,
    /// Client networks refused on every route, comma-separated CIDR blocks
    /// (e.g. `10.0.0.0/8,192.0.2.7`). Apps add their own with `BATON_DENY`.
    #[arg(long, env = "BATON_ROUTER_DENY", default_value = "")]
    deny: String,
    /// Client networks allowed to act through the admin endpoints
    /// (`POST /_router/switch`), comma-separated CIDR blocks; reading
    /// `/_router/*` stays open to all.
    #[arg(long, visible_alias = "admin_allow", env = "BATON_ROUTER_ADMIN_ALLOW", default_value = baton_router::config::DEFAULT_ADMIN_ALLOW)]
    admin_allow: String,
    /// This router's name among the routers that share their request
    /// rates through Baton (`/v2/routers`): the least one decides
    /// autoscaling and sleep from all of them (default: random at start).
    #[arg(long, visible_alias = "router_id", env = "BATON_ROUTER_ID")]
    router_id: Option<String>,
    /// How often to read Baton's load reports for apps balanced by `load`
    /// (`0s`: never).
    #[arg(long, env = "BATON_ROUTER_LOAD_INTERVAL", default_value = "2s", value_parser = humantime::parse_duration)]
    load_interval: Duration,
    /// Load reports older than this are ignored.
    #[arg(long, env = "BATON_ROUTER_LOAD_MAX_AGE", default_value = "30s", value_parser = humantime::parse_duration)]
    load_max_age: Duration,
    /// Let clients speak HTTP/2: prior knowledge (h2c) on the plain
    /// listener, ALPN `h2` on the TLS one (`false`: HTTP/1.1 only).
    #[arg(long, env = "BATON_ROUTER_HTTP2", default_value_t = true, action = clap::ArgAction::Set)]
    http2: bool,
    /// Act on apps' autoscaling and sleep labels (`false`: only report).
    #[arg(long, env = "BATON_ROUTER_AUTOSCALE", default_value_t = true, action = clap::ArgAction::Set)]
    autoscale: bool,
    /// Threads serving requests (default: one per CPU).
    #[arg(long, env = "BATON_ROUTER_WORKERS")]
    workers: Option<usize>,
    /// Address to serve HTTPS on (TLS terminated here; `--listen` stays
    /// plain HTTP). Needs `--tls-cert-dir` or `--tls-default-cert`.
    #[arg(long, visible_alias = "tls_listen", env = "BATON_ROUTER_TLS_LISTEN")]
    tls_listen: Option<SocketAddr>,
    /// Directory of per-host certificates: `<name>.crt` + `<name>.key`, or
    /// `<name>.pem` with both (PEM, chain leaf first). Each is served for
    /// the DNS names in its subjectAltName, wildcards included.
    #[arg(
        long,
        visible_alias = "tls_cert_dir",
        env = "BATON_ROUTER_TLS_CERT_DIR"
    )]
    tls_cert_dir: Option<PathBuf>,
    /// Certificate (PEM) served when the SNI matches no certificate of the
    /// directory, or is absent.
    #[arg(
        long,
        visible_alias = "tls_default_cert",
        env = "BATON_ROUTER_TLS_DEFAULT_CERT"
    )]
    tls_default_cert: Option<PathBuf>,
    /// The default certificate's private key (PEM; default: in the
    /// certificate's file).
    #[arg(
        long,
        visible_alias = "tls_default_key",
        env = "BATON_ROUTER_TLS_DEFAULT_KEY"
    )]
    tls_default_key: Option<PathBuf>,
    /// How often certificate files are checked for changes (`0s`: only on
    /// SIGHUP).
    #[arg(long, visible_alias = "tls_reload_interval", env = "BATON_ROUTER_TLS_RELOAD_INTERVAL", default_value = "5s", value_parser = humantime::parse_duration)]
    tls_reload_interval: Duration,
    /// The port in `Location` when redirecting to HTTPS (apps labelled
    /// `BATON_REDIRECT_TO_HTTPS=true`); 443 is left out. Default: the
    /// `--tls-listen` port, else 443.
    #[arg(
        long,
        visible_alias = "https_redirect_port",
        env = "BATON_ROUTER_HTTPS_REDIRECT_PORT"
    )]
    https_redirect_port: Option<u16>,
    /// How often apps' basic-auth files (`BATON_AUTH_FILE`) are checked
    /// for changes (`0s`: only when their apps change).
    #[arg(long, visible_alias = "auth_reload_interval", env = "BATON_ROUTER_AUTH_RELOAD_INTERVAL", default_value = "2s", value_parser = humantime::parse_duration)]
    auth_reload_interval: Duration,
    /// Access log: a directory (one `<app id, / as _>.log` per app,
    /// created if missing) or `-` for standard output. Default (or
    /// empty): none.
    /// Apps opt out with the label `BATON_ACCESS_LOG=off`.
    #[arg(long, visible_alias = "access_log", env = "BATON_ROUTER_ACCESS_LOG")]
    access_log: Option<String>,
    /// The access log's lines: `combined` (Apache's and nginx's) or
    /// `json` (one object per line).
    #[arg(
        long,
        visible_alias = "access_log_format",
        env = "BATON_ROUTER_ACCESS_LOG_FORMAT",
        default_value = "combined"
    )]
    access_log_format: access_log::Format,
    /// An app's log file is rotated before it would pass this many bytes
    /// (`0`: never).
    #[arg(long, visible_alias = "access_log_max_bytes", env = "BATON_ROUTER_ACCESS_LOG_MAX_BYTES", default_value_t = 100 * 1024 * 1024)]
    access_log_max_bytes: u64,
    /// Rotated files kept per app (`<name>.log.1` newest; up to 1000);
    /// `0` keeps none.
    #[arg(
        long,
        visible_alias = "access_log_keep",
        env = "BATON_ROUTER_ACCESS_LOG_KEEP",
        default_value_t = 5
    )]
    access_log_keep: usize,
    /// Bytes the response cache holds at most, all apps together (e.g.
    /// `64MiB`, `512KiB`, `10MB`, or bytes); least recently used responses
    /// go first. Apps opt in with the label `BATON_CACHE`.
    #[arg(long, visible_alias = "cache_max_bytes", env = "BATON_ROUTER_CACHE_MAX_BYTES", default_value = "64MiB", value_parser = parse_size)]
    cache_max_bytes: u64,
    /// The largest response body the cache stores; larger ones stream
    /// through unstored.
    #[arg(long, visible_alias = "cache_max_entry_bytes", env = "BATON_ROUTER_CACHE_MAX_ENTRY_BYTES", default_value = "1MiB", value_parser = parse_size)]
    cache_max_entry_bytes: u64,
}

/// A size flag: bytes, or a number with kB, KiB, MB, MiB, GB or GiB.
fn parse_size(text: &str) -> Result<u64, baton_router::cache_rules::Error> {
    baton_router::cache_rules::parse_size(text)
}

impl Flags {
    fn config(self) -> anyhow::Result<Config> {
        let (deny, errors) = baton_router::access::DenyList::parse(&self.deny);
        if let Some(e) = errors.first() {
            anyhow::bail!("--deny: {e}");
        }
        let (admin_allow, errors) = baton_router::access::DenyList::parse(&self.admin_allow);
        if let Some(e) = errors.first() {
            anyhow::bail!("--admin-allow: {e}");
        }
        let mut config = Config::new(self.marathon);
        config.admin_allow = admin_allow;
        if let Some(id) = self.router_id.clone() {
            anyhow::ensure!(
                !id.is_empty()
                    && id
                        .chars()
                        .all(|c| c.is_ascii_alphanumeric() || "-_.".contains(c)),
                "--router-id: letters, digits, '-', '_' and '.' only"
            );
            config.router_id = id;
        }
        config.connect_timeout = self.connect_timeout;
        config.upstream_timeout = self.upstream_timeout;
        config.eject_after_failures = self.eject_after;
        config.eject_for = self.eject_for;
        config.resync_interval = self.resync_interval;
        config.event_idle_timeout = self.event_idle_timeout;
        config.marathon_timeout = self.marathon_timeout;
        config.max_buffered_body = self.max_buffered_body;
        config.shutdown_grace = self.shutdown_grace;
        config.deny = deny;
        config.load_interval = self.load_interval;
        config.load_max_age = self.load_max_age;
        config.autoscale = self.autoscale;
        config.http2 = self.http2;
        if let Some(workers) = self.workers {
            anyhow::ensure!(workers > 0, "--workers: at least 1");
            config.workers = workers;
        }
        config.https_port = self
            .https_redirect_port
            .or(self.tls_listen.map(|a| a.port()))
            .unwrap_or(443);
        config.auth_reload_interval = self.auth_reload_interval;
        config.cache_max_bytes = self.cache_max_bytes;
        config.cache_max_entry_bytes = self.cache_max_entry_bytes;
        // Empty (as an unset variable often is): no access log.
        let log_to = self.access_log.as_deref().map(str::trim);
        config.access_log = log_to.filter(|to| !to.is_empty()).map(|to| {
            let mut settings = access_log::Settings::new(Destination::parse(to));
            settings.format = self.access_log_format;
            settings.max_bytes = self.access_log_max_bytes;
            settings.keep = self.access_log_keep;
            settings
        });
        // Each rotation renames every kept file.
        anyhow::ensure!(
            self.access_log_keep <= MAX_ACCESS_LOG_KEEP,
            "--access-log-keep: at most {MAX_ACCESS_LOG_KEEP}"
        );
        if let Some(access_log::Settings {
            destination: Destination::Directory(dir),
            ..
        }) = &config.access_log
        {
            // A directory that cannot be made fails now, not at the first line.
            std::fs::create_dir_all(dir)
                .with_context(|| format!("--access-log: creating {}", dir.display()))?;
        }
        Ok(config)
    }

    /// Where certificates come from; `None` without `--tls-listen`.
    fn tls(&self) -> anyhow::Result<Option<tls::Settings>> {
        let given = self.tls_cert_dir.is_some()
            || self.tls_default_cert.is_some()
            || self.tls_default_key.is_some();
        if self.tls_listen.is_none() {
            anyhow::ensure!(
                !given,
                "--tls-cert-dir, --tls-default-cert and --tls-default-key need --tls-listen"
            );
            return Ok(None);
        }
        anyhow::ensure!(
            self.tls_cert_dir.is_some() || self.tls_default_cert.is_some(),
            "--tls-listen needs --tls-cert-dir or --tls-default-cert"
        );
        anyhow::ensure!(
            self.tls_default_key.is_none() || self.tls_default_cert.is_some(),
            "--tls-default-key needs --tls-default-cert"
        );
        Ok(Some(tls::Settings {
            cert_dir: self.tls_cert_dir.clone(),
            default_cert: self.tls_default_cert.clone(),
            default_key: self.tls_default_key.clone(),
            reload_interval: self.tls_reload_interval,
        }))
    }
}

/// Reloads the certificates at every SIGHUP. Without TLS a SIGHUP is
/// only logged (rather than ending the process, its default).
fn reload_on_hangup(certificates: Option<Arc<tls::Certificates>>) -> anyhow::Result<()> {
    use tokio::signal::unix::{SignalKind, signal};
    let mut hangups = signal(SignalKind::hangup())?;
    tokio::spawn(async move {
        while hangups.recv().await.is_some() {
            let Some(certificates) = certificates.clone() else {
                tracing::info!("SIGHUP: no TLS certificates to reload");
                continue;
            };
            tracing::info!("SIGHUP: reloading the TLS certificates");
            let _ = tokio::task::spawn_blocking(move || certificates.reload()).await;
        }
    });
    Ok(())
}

/// mimalloc: the hot path allocates per request (header maps, bodies,
/// futures), and the profile showed glibc's malloc at ~10 % of the
/// router's CPU against ~5 % with mimalloc (one small C file to build).
#[global_allocator]
static ALLOCATOR: mimalloc::MiMalloc = mimalloc::MiMalloc;

#[tokio::main]
async fn main() -> anyhow::Result<()> {
    tracing_subscriber::fmt()
        .with_env_filter(
            tracing_subscriber::EnvFilter::try_from_default_env().unwrap_or_else(|_| "info".into()),
        )
        .init();
    let flags = Flags::parse();
    let listen = flags.listen;
    let tls_settings = flags.tls()?;
    let tls_listen = flags.tls_listen;
    let config = flags.config()?;
    let listener = tokio::net::TcpListener::bind(listen)
        .await
        .with_context(|| format!("binding {listen}"))?;
    let http = listener.local_addr()?;
    let https = match (tls_listen, tls_settings) {
        (Some(address), Some(settings)) => {
            let certificates =
                tokio::task::spawn_blocking(move || tls::Certificates::load(settings))
                    .await?
                    .context("loading the TLS certificates")?;
            let listener = tokio::net::TcpListener::bind(address)
                .await
                .with_context(|| format!("binding {address}"))?;
            Some((listener, certificates))
        }
        _ => None,
    };
    let https_address = match &https {
        Some((listener, _)) => Some(listener.local_addr()?),
        None => None,
    };
    reload_on_hangup(https.as_ref().map(|(_, c)| c.clone()))?;
    tracing::info!(
        %http,
        https = ?https_address,
        marathon = %config.marathon,
        "baton-router serving"
    );
    let mut terminate = tokio::signal::unix::signal(tokio::signal::unix::SignalKind::terminate())?;
    let shutdown = async move {
        tokio::select! {
            _ = tokio::signal::ctrl_c() => {}
            _ = terminate.recv() => {}
        }
        tracing::info!("shutting down");
    };
    let listeners = Listeners {
        http: listener,
        https,
    };
    baton_router::serve_on(listeners, config, shutdown).await?;
    Ok(())
}
