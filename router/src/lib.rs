//! `baton-router`: the HTTP gateway in front of apps run by Baton (or by
//! Marathon: it reads only Marathon's public API, as marathon-lb does).
//! It follows the apps and their tasks live, routes requests by Host and
//! path to instances that are running, healthy and not being killed,
//! balances, keeps sessions sticky, retries and ejects failing instances,
//! and counts.
//!
//! # Layout
//!
//! - [`table`]: pure. Apps JSON → the routing table (which instances are
//!   routable and why not, vhosts, path prefixes, labels) and the lookup
//!   of a request's app by Host and longest path prefix. Tables are
//!   immutable; each change publishes the next generation.
//! - [`balance`]: pure-ish. Per-instance state (in flight, failure streak,
//!   ejection) kept across table generations, the policies (round-robin,
//!   least outstanding requests), sticky cookies, and [`balance::pick`].
//! - [`sync`]: I/O towards Marathon. `GET /v2/apps?embed=apps.tasks` on
//!   every (re)connect and periodically, and the `/v2/events` stream whose
//!   events trigger per-app re-reads.
//! - [`proxy`]: the hyper server, one single-threaded runtime per CPU
//!   (new connections handed to the least busy): admin endpoints under
//!   `/_router/`, deny lists, forwarding, bodies that can be replayed, one
//!   retry on another instance, passive health, counted responses,
//!   requests held while a sleeping app wakes, and WebSocket tunnels.
//! - [`pool`]: HTTP/1.1 towards instances, run in the request's own task
//!   (head out in one write, response head parsed with `httparse`, body
//!   read as the client takes it), over keep-alive connections pooled per
//!   serving thread; tells a request that never went out from one that
//!   failed.
//! - [`access`]: pure. CIDR deny lists, router-wide (`--deny`) and per app
//!   (`BATON_DENY`).
//! - [`load`]: load-aware weights: reads Baton's `/v2/tasks/load` (what
//!   each task's executor reported) and turns CPU use and host load into
//!   each instance's weight for the `load` policy.
//! - [`scale`]: autoscaling by request rate and sleep/wake, from
//!   `BATON_AUTOSCALE_*`, `BATON_SLEEP_AFTER` and `BATON_WAKE_TIMEOUT`:
//!   pure rules, a one-second controller applying them through
//!   `PUT /v2/apps/{id}`, and the decision log behind `/_router/autoscale`.
//! - [`stats`]: per-app and router-wide counters, rendered as Prometheus
//!   text (`/_router/metrics`) and JSON (`/_router/stats`).
//!
//! The binary (`src/main.rs`) only parses flags, binds the listener and
//! calls [`serve`]. Background work (following Marathon, reading loads,
//! scaling) runs as tasks that stop with the server.

pub mod access;
pub mod balance;
pub mod load;
pub mod pool;
pub mod proxy;
pub mod scale;
pub mod stats;
pub mod sync;
pub mod table;

use std::future::Future;
use std::sync::Arc;
use std::time::{Duration, Instant};

use tokio::net::TcpListener;
use tokio::sync::watch;
use tokio_util::sync::CancellationToken;

use crate::stats::GlobalStats;
use crate::table::Table;

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
    /// How often load reports are read (zero: never).
    pub load_interval: Duration,
    /// Load reports older than this are ignored.
    pub load_max_age: Duration,
    /// Whether the autoscaling and sleep rules act.
    pub autoscale: bool,
    /// Threads serving requests, each with its own runtime.
    pub workers: usize,
}

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
            load_interval: Duration::from_secs(2),
            load_max_age: Duration::from_secs(30),
            autoscale: true,
            workers: std::thread::available_parallelism().map_or(1, |n| n.get()),
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

/// Milliseconds since the router started: the one clock of ejections and
/// rates.
#[derive(Debug, Clone, Copy)]
pub struct Clock(Instant);

impl Clock {
    /// A clock starting now.
    pub fn new() -> Clock {
        Clock(Instant::now())
    }

    /// Milliseconds since start.
    pub fn now_ms(&self) -> u64 {
        self.0.elapsed().as_millis() as u64
    }
}

impl Default for Clock {
    fn default() -> Self {
        Clock::new()
    }
}

/// What every part of the router shares.
#[derive(Debug)]
pub struct Shared {
    /// The current table; published whole by the refresher (its only
    /// writer), read per request.
    table: watch::Sender<Arc<Table>>,
    /// Router-wide counters.
    pub stats: GlobalStats,
    /// The router's clock.
    pub clock: Clock,
    /// The configuration.
    pub config: Config,
    /// Marathon's API (read by the follower, written by scaling).
    pub marathon: sync::Marathon,
    /// Scaling decisions, for `/_router/autoscale`.
    pub decisions: scale::DecisionLog,
    /// The runtime of background work (following Marathon, scaling), which
    /// outlives the serving threads' runtimes.
    background: tokio::runtime::Handle,
}

impl Shared {
    fn new(config: Config, marathon: sync::Marathon) -> Shared {
        Shared {
            table: watch::Sender::new(Arc::new(Table::default())),
            stats: GlobalStats::default(),
            clock: Clock::new(),
            config,
            marathon,
            decisions: scale::DecisionLog::default(),
            background: tokio::runtime::Handle::current(),
        }
    }

    /// The current routing table.
    pub fn table(&self) -> Arc<Table> {
        self.table.borrow().clone()
    }

    /// Notified at every new table.
    pub fn subscribe(&self) -> watch::Receiver<Arc<Table>> {
        self.table.subscribe()
    }

    fn publish(&self, table: Table) {
        self.table.send_replace(Arc::new(table));
    }
}

/// Why the router could not run.
#[derive(Debug, thiserror::Error)]
pub enum Error {
    /// The client for Marathon could not be set up.
    #[error("cannot set up the Marathon client")]
    Marathon(#[from] sync::Error),
    /// The serving threads could not be started.
    #[error("cannot start the serving threads")]
    Workers(#[source] std::io::Error),
}

/// Runs the router on `listener` until `shutdown` completes: follows
/// Marathon at `config.marathon` and proxies requests. On shutdown it stops
/// accepting, lets open requests finish (within `shutdown_grace`), and
/// stops following Marathon.
pub async fn serve(
    listener: TcpListener,
    config: Config,
    shutdown: impl Future<Output = ()>,
) -> Result<(), Error> {
    let marathon = sync::Marathon::new(
        &config.marathon,
        config.connect_timeout,
        config.marathon_timeout,
    )?;
    let shared = Arc::new(Shared::new(config, marathon.clone()));
    let stop = CancellationToken::new();
    let background = [
        tokio::spawn(sync::run(shared.clone(), marathon.clone(), stop.clone())),
        tokio::spawn(load::run(shared.clone(), marathon.clone(), stop.clone())),
        tokio::spawn(scale::run(shared.clone(), marathon, stop.clone())),
    ];
    let served = proxy::run(listener, shared, shutdown).await;
    stop.cancel();
    for task in background {
        let _ = task.await;
    }
    served
}
