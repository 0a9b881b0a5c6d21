//! What every part of the router shares, behind one `Arc`: the current
//! routing table (published whole by the refresher, read per request), the
//! router-wide counters, the clock, the configuration, the Marathon client,
//! the scaling decisions, the access log's queue, the response cache, and
//! the runtime that background work runs on.
//! Built once by `serve`; the follower, load poller, scaler and proxy all
//! sit above it.

use std::collections::HashMap;
use std::sync::Arc;

use tokio::sync::watch;

use crate::access_log::AccessLog;
use crate::cache_store::{AppCache, ResponseCache};
use crate::clock::Clock;
use crate::config::Config;
use crate::marathon::Marathon;
use crate::pool_h2::H2Pool;
use crate::scale::DecisionLog;
use crate::split::SwitchLog;
use crate::stats::GlobalStats;
use crate::table::Table;

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
    pub marathon: Marathon,
    /// Scaling decisions, for `/_router/autoscale`.
    pub decisions: DecisionLog,
    /// Blue/green switches, for `/_router/switch`.
    pub switches: SwitchLog,
    /// HTTP/2 connections to instances of apps that speak it.
    pub h2: H2Pool,
    /// What sharing rates with the other routers last gave, for
    /// `/_router/autoscale`.
    sharing: std::sync::Mutex<serde_json::Value>,
    /// The access log's queue (disabled without `--access-log`).
    pub access_log: AccessLog,
    /// The response cache of apps labelled `BATON_CACHE`.
    pub cache: Arc<ResponseCache>,
    /// The runtime of background work (following Marathon, scaling), which
    /// outlives the serving threads' runtimes.
    pub(crate) background: tokio::runtime::Handle,
}

impl Shared {
    /// Everything starts empty: an empty table (not loaded), zero counters,
    /// the clock at zero; background work runs on the current runtime.
    pub(crate) fn new(config: Config, marathon: Marathon, access_log: AccessLog) -> Shared {
        let cache = Arc::new(ResponseCache::new(
            config.cache_max_bytes,
            config.cache_max_entry_bytes,
        ));
        Shared {
            table: watch::Sender::new(Arc::new(Table::default())),
            stats: GlobalStats::default(),
            clock: Clock::new(),
            config,
            marathon,
            decisions: DecisionLog::default(),
            switches: SwitchLog::default(),
            h2: H2Pool::default(),
            sharing: std::sync::Mutex::new(serde_json::Value::Null),
            access_log,
            cache,
            background: tokio::runtime::Handle::current(),
        }
    }

    /// What sharing rates last gave (`null`: nothing shared).
    pub fn sharing(&self) -> serde_json::Value {
        self.sharing
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .clone()
    }

    pub(crate) fn set_sharing(&self, value: serde_json::Value) {
        *self.sharing.lock().unwrap_or_else(|e| e.into_inner()) = value;
    }

    /// The current routing table.
    pub fn table(&self) -> Arc<Table> {
        self.table.borrow().clone()
    }

    /// Notified at every new table.
    pub fn subscribe(&self) -> watch::Receiver<Arc<Table>> {
        self.table.subscribe()
    }

    /// Replaces the current table (the refresher's alone), and drops the
    /// cached responses of apps that changed version or left.
    pub(crate) fn publish(&self, table: Table) {
        let current: HashMap<&str, &AppCache> = table
            .routes()
            .filter_map(|r| Some((r.app_id.as_str(), r.cache.as_ref()?)))
            .collect();
        self.cache.forget(&current);
        drop(current);
        self.table.send_replace(Arc::new(table));
    }
}
