//! What the router needs to run: [`Config`], with defaults for everything
//! but Marathon's URL. The binary fills it from flags; tests build it
//! directly.

use std::time::Duration;

use crate::access;
use crate::access_log;
use crate::balance;

/// What the router needs to run.
#[derive(Debug, Clone)]
pub struct Config {
    /// Marathon's (or Baton's) base URL, e.g. `http://127.0.0.1:8080`.
    pub marathon: String,
    /// Bound on connecting to an instance (and to Marathon).
    pub connect_timeout: Duration,
    /// Bound on an instance's response head.
    pub upstream_timeout: Duration,
    /// Consecutive failures that eject an instance.
    pub eject_after_failures: u32,
    /// How long an ejected instance stays out.
    pub eject_for: Duration,
    /// Full re-read of the app list, besides events.
    pub resync_interval: Duration,
    /// An event stream silent this long is reopened.
    pub event_idle_timeout: Duration,
    /// Bound on each request to Marathon's API (not on the stream).
    pub marathon_timeout: Duration,
    /// Request bodies up to this size (with a known length) are buffered,
    /// so that a failed attempt can be repeated elsewhere.
    pub max_buffered_body: usize,
    /// How long shutdown waits for open requests.
    pub shutdown_grace: Duration,
    /// Client networks refused on every route.
    pub deny: access::DenyList,
    /// Whether clients may speak HTTP/2 (prior knowledge in clear, ALPN
    /// `h2` over TLS) besides HTTP/1.1.
    pub http2: bool,
    /// This router's name among the routers sharing their rates through
    /// Baton (the least fresh one decides scaling).
    pub router_id: String,
    /// Client networks allowed to act through the admin endpoints
    /// (`POST /_router/switch`); reading them stays open.
    pub admin_allow: access::DenyList,
    /// How often load reports are read (zero: never).
    pub load_interval: Duration,
    /// Load reports older than this are ignored.
    pub load_max_age: Duration,
    /// Whether the autoscaling and sleep rules act.
    pub autoscale: bool,
    /// Threads serving requests, each with its own runtime.
    pub workers: usize,
    /// The HTTPS port named in redirects to HTTPS (443: none named).
    pub https_port: u16,
    /// How often apps' credentials files are checked for changes (zero:
    /// only when their apps change).
    pub auth_reload_interval: Duration,
    /// Where and how requests are logged (none: not at all).
    pub access_log: Option<access_log::Settings>,
    /// Bytes the response cache holds at most, all apps together (apps
    /// opt in with `BATON_CACHE`).
    pub cache_max_bytes: u64,
    /// The largest response body the cache stores; larger ones stream
    /// through unstored.
    pub cache_max_entry_bytes: u64,
}

/// Who may act through the admin endpoints by default: this host.
pub const DEFAULT_ADMIN_ALLOW: &str = "127.0.0.0/8,::1/128";

impl Config {
    /// Defaults for everything but Marathon's URL.
    pub fn new(marathon: impl Into<String>) -> Config {
        Config {
            marathon: marathon.into(),
            connect_timeout: Duration::from_secs(1),
            upstream_timeout: Duration::from_secs(60),
            eject_after_failures: 3,
            eject_for: Duration::from_secs(10),
            resync_interval: Duration::from_secs(30),
            event_idle_timeout: Duration::from_secs(60),
            marathon_timeout: Duration::from_secs(10),
            max_buffered_body: 64 * 1024,
            shutdown_grace: Duration::from_secs(10),
            deny: access::DenyList::default(),
            admin_allow: access::DenyList::parse(DEFAULT_ADMIN_ALLOW).0,
            router_id: format!("router-{:016x}", rand::random::<u64>()),
            http2: true,
            load_interval: Duration::from_secs(2),
            load_max_age: Duration::from_secs(30),
            autoscale: true,
            workers: std::thread::available_parallelism().map_or(1, |n| n.get()),
            https_port: 443,
            auth_reload_interval: Duration::from_secs(2),
            access_log: None,
            cache_max_bytes: 64 << 20,
            cache_max_entry_bytes: 1 << 20,
        }
    }

    /// The passive-health rule.
    pub fn ejection(&self) -> balance::Ejection {
        balance::Ejection {
            after_failures: self.eject_after_failures,
            for_ms: self.eject_for.as_millis() as u64,
        }
    }
}
