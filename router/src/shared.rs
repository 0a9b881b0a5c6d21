//! What every part of the router shares, behind one `Arc`: the current
//! routing table (published whole by the refresher, read per request), the
//! router-wide counters, the clock, the configuration, the Marathon client,
//! the scaling decisions, the access log's queue, and the runtime that
//! background work runs on.
//! Built once by `serve`; the follower, load poller, scaler and proxy all
//! sit above it.

use std::sync::Arc;

use tokio::sync::watch;

use crate::access_log::AccessLog;
use crate::clock::Clock;
use crate::config::Config;
use crate::marathon::Marathon;
use crate::scale::DecisionLog;
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
    /// The access log's queue (disabled without `--access-log`).
    pub access_log: AccessLog,
    /// The runtime of background work (following Marathon, scaling), which
    /// outlives the serving threads' runtimes.
    pub(crate) background: tokio::runtime::Handle,
}

impl Shared {
    /// Everything starts empty: an empty table (not loaded), zero counters,
    /// the clock at zero; background work runs on the current runtime.
    pub(crate) fn new(config: Config, marathon: Marathon, access_log: AccessLog) -> Shared {
        Shared {
            table: watch::Sender::new(Arc::new(Table::default())),
            stats: GlobalStats::default(),
            clock: Clock::new(),
            config,
            marathon,
            decisions: DecisionLog::default(),
            access_log,
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

    /// Replaces the current table (the refresher's alone).
    pub(crate) fn publish(&self, table: Table) {
        self.table.send_replace(Arc::new(table));
    }
}
