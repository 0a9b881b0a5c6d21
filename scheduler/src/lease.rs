//! The leader's own fence: a *lease* on its election znode that every Mesos
//! call and every store write of a term waits on, so that a leader that
//! was paused (SIGSTOP, a stalled VM, swapping) and comes back after its
//! standbys deposed it does not even *attempt* to act.
//!
//! # Why a lease on top of the fences
//!
//! Two fences already refuse whatever a deposed leader sends:
//!
//! - **ZooKeeper**: every multi-op of [`crate::state::ZkStore`] (and of
//!   `ha::registry`) starts with a check that the writer's election
//!   znode still exists. Deposing a leader deletes that znode, and
//!   ZooKeeper orders every write: a write processed after the deletion
//!   fails as a whole, whenever it was sent — also one already in flight
//!   when the leader was paused. An election znode is never created again
//!   (its name carries a fresh UUID and a sequence number), so its
//!   existence is a fencing token as good as an epoch counter.
//! - **Mesos**: the next leader subscribes with the same FrameworkID, the
//!   master fails the old stream over, and every call carrying the old
//!   `Mesos-Stream-Id` is refused (400).
//!
//! Mesos's fence only holds from the new leader's SUBSCRIBE on, a few
//! hundred milliseconds after the deposition. A paused leader resuming in
//! that window could still launch or kill. The lease closes that window for
//! everything but a pause that falls *between* a successful check and the
//! bytes leaving the process:
//!
//! - While leading, the election renews the lease about every probe
//!   interval by rewriting our znode's data (its `host:port`, unchanged):
//!   a write, so linearizable, that fails once the znode is gone. A renewal
//!   counts from when it was *sent*: the znode existed at some point after
//!   that. Each renewal bumps the znode's version, which standbys watch as
//!   the leader's heartbeat ([`crate::ha::probe`]).
//! - A Mesos call, a SUBSCRIBE or a store write goes ahead only while the
//!   lease is fresh: renewed less than [`crate::ha::probe::ProbeSettings::lease`]
//!   ago. That is shorter than the least time standbys need to depose a
//!   leader that stopped answering ([`crate::ha::probe`]): a process that was
//!   paused has a stale lease when it resumes (the monotonic clock ran on),
//!   so it asks ZooKeeper first, finds its znode gone and stops — the term
//!   ends ([`LeaseGate::end`]) before anything is sent.
//! - Ending a term ends its gate at once (the election does it before it
//!   publishes the new role), so calls still queued in the term's channels
//!   are refused too, not sent after the scheduler is gone.
//!
//! A stale lease is not an error: the caller waits while it is confirmed
//! again (one ZooKeeper round trip), and fails only once it is lost.

use std::fmt;
use std::sync::{Arc, Mutex, PoisonError};
use std::time::Duration;

use tokio::time::Instant;
use tokio_util::sync::CancellationToken;
use tracing::{debug, warn};
use zookeeper_client as zk;

use crate::clock::Clock;
use crate::state::{Change, GroupError, Snapshot, Store, StoreError};

/// One attempt at confirming the lease waits this long for ZooKeeper.
const CONFIRM_ATTEMPT: Duration = Duration::from_secs(1);
/// A confirmation gives up after this long without an answer (the
/// election's session has usually been declared lost well before).
const CONFIRM_LIMIT: Duration = Duration::from_secs(30);
/// Pause between unanswered confirmation attempts.
const CONFIRM_PAUSE: Duration = Duration::from_millis(50);

/// Why the gate refused.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum LeaseError {
    /// The term is over: deposed, session lost, abdicated, shut down.
    #[error("this process no longer leads: {0}")]
    Lost(String),
    /// ZooKeeper did not confirm the lease for a long time (30 s).
    #[error("cannot confirm leadership with ZooKeeper: {0}")]
    Unconfirmed(String),
}

/// A leading term's lease; cheap to clone, shared by everything the term
/// sends. See the module documentation.
#[derive(Clone)]
pub struct LeaseGate {
    inner: Arc<Inner>,
}

struct Inner {
    client: zk::Client,
    znode: String,
    /// What the znode holds (rewritten by each renewal).
    data: Vec<u8>,
    valid_for: Duration,
    /// When the latest confirmation that succeeded was sent.
    renewed: Mutex<Instant>,
    ended: CancellationToken,
    why: Mutex<Option<String>>,
}

impl fmt::Debug for LeaseGate {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("LeaseGate")
            .field("znode", &self.inner.znode)
            .field("valid_for", &self.inner.valid_for)
            .field("ended", &self.inner.ended.is_cancelled())
            .finish()
    }
}

/// Whether a lease renewed at `renewed` is still good at `now`.
pub fn fresh(renewed: Instant, valid_for: Duration, now: Instant) -> bool {
    now.saturating_duration_since(renewed) < valid_for
}

fn now() -> Instant {
    Clock::wall().instant()
}

impl LeaseGate {
    /// The lease of the term holding `znode` (which holds `data`) on
    /// `client`, confirmed by a request sent at `confirmed_at`, good for
    /// `valid_for` after each confirmation.
    pub fn new(
        client: zk::Client,
        znode: String,
        data: Vec<u8>,
        valid_for: Duration,
        confirmed_at: Instant,
    ) -> LeaseGate {
        LeaseGate {
            inner: Arc::new(Inner {
                client,
                znode,
                data,
                valid_for,
                renewed: Mutex::new(confirmed_at),
                ended: CancellationToken::new(),
                why: Mutex::new(None),
            }),
        }
    }

    /// The election znode this lease is on.
    pub fn znode(&self) -> &str {
        &self.inner.znode
    }

    /// How long a confirmation is good for.
    pub fn valid_for(&self) -> Duration {
        self.inner.valid_for
    }

    /// Ends the term's lease for good (the first reason is kept).
    pub fn end(&self, why: &str) {
        {
            let mut kept = self
                .inner
                .why
                .lock()
                .unwrap_or_else(PoisonError::into_inner);
            if kept.is_none() {
                *kept = Some(why.to_string());
            }
        }
        self.inner.ended.cancel();
    }

    /// Why the lease ended, once it has.
    pub fn lost(&self) -> Option<String> {
        if !self.inner.ended.is_cancelled() {
            return None;
        }
        let why = self
            .inner
            .why
            .lock()
            .unwrap_or_else(PoisonError::into_inner);
        Some(why.clone().unwrap_or_else(|| "the term ended".into()))
    }

    /// Resolves once the lease has ended.
    pub async fn ended(&self) {
        self.inner.ended.cancelled().await;
    }

    /// Whether the lease is held and was confirmed recently enough to act
    /// without asking ZooKeeper.
    pub fn is_fresh(&self) -> bool {
        if self.inner.ended.is_cancelled() {
            return false;
        }
        let renewed = *self
            .inner
            .renewed
            .lock()
            .unwrap_or_else(PoisonError::into_inner);
        fresh(renewed, self.inner.valid_for, now())
    }

    fn renewed_at(&self, sent: Instant) {
        let mut renewed = self
            .inner
            .renewed
            .lock()
            .unwrap_or_else(PoisonError::into_inner);
        *renewed = (*renewed).max(sent);
    }

    /// Rewrites our znode's data (a heartbeat, and a linearizable proof
    /// that the znode is still there). `Ok(true)`: renewed; `Ok(false)`: no
    /// answer (try again); `Err`: lost — the znode is gone, which also ends
    /// the lease.
    pub async fn renew(&self) -> Result<bool, LeaseError> {
        if let Some(why) = self.lost() {
            return Err(LeaseError::Lost(why));
        }
        let sent = now();
        let written = self
            .inner
            .client
            .set_data(&self.inner.znode, &self.inner.data, None);
        let answer = tokio::select! {
            answer = tokio::time::timeout(CONFIRM_ATTEMPT, written) => answer,
            () = self.inner.ended.cancelled() => {
                return Err(LeaseError::Lost(self.lost().unwrap_or_default()));
            }
        };
        match answer {
            Ok(Ok(_)) => {
                self.renewed_at(sent);
                Ok(true)
            }
            Ok(Err(zk::Error::NoNode)) => {
                let why = format!(
                    "our election znode {} is gone: a standby deposed this leader",
                    self.inner.znode
                );
                warn!(znode = %self.inner.znode, "lease lost: {why}");
                self.end(&why);
                Err(LeaseError::Lost(why))
            }
            Ok(Err(e @ (zk::Error::SessionExpired | zk::Error::ClientClosed))) => {
                let why = format!("ZooKeeper session: {e}");
                self.end(&why);
                Err(LeaseError::Lost(why))
            }
            Ok(Err(e)) => {
                debug!(error = %e, "lease renewal failed");
                Ok(false)
            }
            Err(_) => {
                debug!(limit = ?CONFIRM_ATTEMPT, "lease renewal unanswered");
                Ok(false)
            }
        }
    }

    /// Returns once this process may act: at once while the lease is
    /// fresh, else after ZooKeeper confirms it. Fails once the lease is
    /// lost (or unconfirmed for a long time).
    pub async fn confirm(&self) -> Result<(), LeaseError> {
        let started = now();
        loop {
            if let Some(why) = self.lost() {
                return Err(LeaseError::Lost(why));
            }
            if self.is_fresh() {
                return Ok(());
            }
            if now().saturating_duration_since(started) > CONFIRM_LIMIT {
                return Err(LeaseError::Unconfirmed(format!(
                    "no answer from ZooKeeper for {CONFIRM_LIMIT:?}"
                )));
            }
            // A renewal that succeeded but answered later than the lease
            // lasts leaves it stale: ask again.
            if !self.renew().await? {
                tokio::select! {
                    () = tokio::time::sleep(CONFIRM_PAUSE) => {}
                    () = self.inner.ended.cancelled() => {}
                }
            }
        }
    }

    /// Renews the lease every `every` until it ends.
    pub async fn keep_renewing(self, every: Duration) {
        let mut ticks = tokio::time::interval(every.max(Duration::from_millis(10)));
        ticks.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
        loop {
            tokio::select! {
                _ = ticks.tick() => {}
                () = self.inner.ended.cancelled() => return,
            }
            if self.renew().await.is_err() {
                return;
            }
        }
    }
}

/// A leader's store behind its lease: writes wait for [`LeaseGate::confirm`]
/// and are refused ([`StoreError::Fenced`]) once the lease is lost. The
/// store's own fence (ZooKeeper's check of the election znode) still
/// decides; this only keeps a deposed leader from trying.
pub struct GatedStore {
    inner: Arc<dyn Store>,
    gate: LeaseGate,
    runtime: tokio::runtime::Handle,
}

impl GatedStore {
    /// `inner` behind `gate`. Must be made on the runtime (writes block
    /// their thread on it, as [`crate::state::ZkStore`]'s do).
    pub fn new(inner: Arc<dyn Store>, gate: LeaseGate) -> GatedStore {
        GatedStore {
            inner,
            gate,
            runtime: tokio::runtime::Handle::current(),
        }
    }

    fn confirm(&self) -> Result<(), StoreError> {
        if self.gate.is_fresh() {
            return Ok(());
        }
        self.runtime
            .block_on(self.gate.confirm())
            .map_err(|e| StoreError::Fenced(e.to_string()))
    }
}

impl Store for GatedStore {
    fn load(&self) -> Result<Snapshot, StoreError> {
        self.inner.load()
    }

    fn apply(&self, changes: &[Change]) -> Result<(), StoreError> {
        self.confirm()?;
        self.inner.apply(changes)
    }

    fn apply_group(&self, batches: &[Vec<Change>]) -> Result<(), GroupError> {
        self.confirm().map_err(|error| GroupError {
            committed: 0,
            error,
        })?;
        self.inner.apply_group(batches)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_lease_is_fresh_for_its_length_after_the_renewal_was_sent() {
        let renewed = now();
        let valid = Duration::from_millis(450);
        assert!(fresh(renewed, valid, renewed));
        assert!(fresh(renewed, valid, renewed + Duration::from_millis(449)));
        assert!(!fresh(renewed, valid, renewed + Duration::from_millis(450)));
        // Resuming after a 5 s pause: stale.
        assert!(!fresh(renewed, valid, renewed + Duration::from_secs(5)));
        // A clock read before the renewal (another thread): still fresh.
        assert!(fresh(renewed + Duration::from_millis(10), valid, renewed));
        // A zero-length lease is never fresh: every act asks ZooKeeper.
        assert!(!fresh(renewed, Duration::ZERO, renewed));
    }
}
