//! What the router keeps per app across routing-table generations: the
//! app's counters, its audience (page views, unique visitors, top
//! paths), the balancer's turn, the time of its last request and the
//! scaling controller's memory. A table is rebuilt on every change
//! from Marathon; each app's [`AppRuntime`] is carried over by app id
//! (behind an `Arc`), so a rebuild loses neither statistics nor turns nor
//! scaling state. (Each instance's own state, carried over by task id, is
//! `balance::UpstreamState`.)
//!
//! Data only, written on the request path and by the controllers: built
//! from the pure [`crate::stats`], [`crate::visitors`],
//! [`crate::top_paths`] and [`crate::scale`] types, it imports nothing
//! that knows of tables.

use std::sync::atomic::{AtomicU64, AtomicUsize};
use std::sync::{Mutex, MutexGuard, PoisonError};

use crate::scale::ScaleState;
use crate::stats::AppStats;
use crate::top_paths::TopPaths;
use crate::visitors::Traffic;

/// An app's audience: page views and unique visitors per window, and its
/// busiest paths. Empty (no memory) until the app's first request.
#[derive(Debug, Default)]
pub struct Audience {
    /// Page views and visitors per UTC minute, hour and day.
    pub traffic: Traffic,
    /// The most requested paths.
    pub paths: TopPaths,
}

impl Audience {
    /// Counts a request for `path` by the visitor with `visitor_hash`
    /// at `unix_secs`.
    pub fn record(&mut self, unix_secs: u64, visitor_hash: u64, path: &str) {
        self.traffic.record(unix_secs, visitor_hash);
        self.paths.record(path);
    }
}

/// What the router keeps per app across table generations.
#[derive(Debug, Default)]
pub struct AppRuntime {
    /// The app's counters.
    pub stats: AppStats,
    /// The balancer's turn counter.
    pub rotor: AtomicUsize,
    /// When the last request arrived (router clock, ms).
    pub last_request_ms: AtomicU64,
    /// The autoscaler's and sleep/wake's state.
    pub scale: ScaleState,
    /// Page views, visitors and top paths, behind one lock: the serving
    /// threads each hold it for the few hundred nanoseconds a request's
    /// counting takes.
    pub audience: Mutex<Audience>,
}

impl AppRuntime {
    /// The app's audience, locked.
    pub fn audience(&self) -> MutexGuard<'_, Audience> {
        self.audience.lock().unwrap_or_else(PoisonError::into_inner)
    }
}
