//! What the router keeps per app across routing-table generations: the
//! app's counters, the balancer's turn, the time of its last request and
//! the scaling controller's memory. A table is rebuilt on every change
//! from Marathon; each app's [`AppRuntime`] is carried over by app id
//! (behind an `Arc`), so a rebuild loses neither statistics nor turns nor
//! scaling state. (Each instance's own state, carried over by task id, is
//! `balance::UpstreamState`.)
//!
//! Data only, written on the request path and by the controllers: built
//! from the pure [`crate::stats`] and [`crate::scale`] types, it imports
//! nothing that knows of tables.

use std::sync::atomic::{AtomicU64, AtomicUsize};

use crate::scale::ScaleState;
use crate::stats::AppStats;

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
}
