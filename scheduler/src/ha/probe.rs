//! Fast failover: standbys probe the leader, and the next one in line
//! deposes a leader that is gone, instead of waiting for ZooKeeper to
//! expire its session (`--zk_session_timeout`, 10 s).
//!
//! # How
//!
//! Two signals, both of which must say the leader is gone:
//!
//! - **HTTP**: every process answers [`PROBE_PATH`] itself, whatever its
//!   role, with the election znode it leads with (`{"leading":
//!   "/leader/_c_…"}`, or `null`), outside the API's guard and the
//!   standby's proxy (so a leader still loading its state answers too). A
//!   standby probes the leader it follows every `--leader_probe_interval`
//!   (250 ms) at the `host:port` the leader's znode holds, each probe
//!   bounded by `--leader_probe_timeout` (300 ms). A probe succeeds when
//!   that process says it leads with *that* znode (a process that took a
//!   dead leader's port does not keep it alive); a refused connection —
//!   what `kill -9` leaves — fails at once.
//! - **ZooKeeper heartbeats**: the leader rewrites its znode's data at
//!   every renewal of its lease ([`crate::lease`], about every 190 ms), so
//!   the znode's version moves while the leader runs and reaches
//!   ZooKeeper. The standby reads it at each probe.
//!
//! After `--leader_probe_failures` (4) failed probes in a row, spanning at
//! least `failures − 1` intervals, with no new heartbeat over that span
//! either ([`Suspicion`]), the standby *next in line* (the second lowest
//! sequence) deletes the leader's election znode. ZooKeeper lets any
//! session delete another's ephemeral node; the lock recipe then hands
//! leadership to the next contender, which loads the state and subscribes
//! to Mesos. Standbys further back wait `k` times as long (`k`: their place
//! in line), in case the next in line is dead too. A znode is named once,
//! for one term: deleting it can only ever depose that term.
//!
//! A killed or stopped leader fails both at once, so the second signal
//! costs no time: deposition comes 750 ms to 1 s after the death, the
//! takeover some tens of milliseconds later.
//!
//! # Why it is safe
//!
//! Deposing never relies on the old leader cooperating. Its store writes
//! are fenced by ZooKeeper (each carries a check of its election znode;
//! see [`crate::lease`]), its Mesos calls by the master once the new
//! leader has subscribed, and, before that, by its own lease, which
//! lapses before standbys can depose it ([`ProbeSettings::lease`]). A
//! leader that is alive notices the deletion through its znode's watch and
//! steps down at once (`Role::Electing`), then contends again as a
//! standby.
//!
//! # False positives
//!
//! A leader is deposed only after it failed to answer *and* to heartbeat
//! for about a second: one slow probe, or a few hundred milliseconds of
//! scheduling jitter on a busy machine, is not enough. A standby cut off
//! from the leader but not from ZooKeeper sees the heartbeats go on and
//! deposes no one ([`Verdict::Unreachable`], logged once): failover then
//! waits, as before, for the leader to lose ZooKeeper. What can still
//! depose a live leader is one that stalls for over a second (its
//! heartbeats stop too) — a stop-the-world pause, swapping — or one that
//! keeps its ZooKeeper session but can no longer write to ZooKeeper for
//! that long while its HTTP server does not answer; that is safe by the
//! fences above and costs one failover: the old leader becomes a standby.
//! `--leader_probe_interval 0` turns probing off: a dead leader then leads
//! until its ZooKeeper session expires.

use std::time::Duration;

use axum::Router;
use axum::routing::get;
use tokio::sync::watch;
use tokio::time::Instant;
use tokio_util::sync::CancellationToken;
use tracing::{debug, info, warn};
use zookeeper_client as zk;

use super::Lease;
use crate::clock::Clock;

/// Where every process says which election znode it leads with.
pub const PROBE_PATH: &str = "/_baton/election";

/// The standbys' probing of the leader (`--leader_probe_*`).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct ProbeSettings {
    /// `--leader_probe_interval`: between probes (zero: no probing).
    pub interval: Duration,
    /// `--leader_probe_timeout`: a probe unanswered this long fails.
    pub timeout: Duration,
    /// `--leader_probe_failures`: failed probes in a row that depose.
    pub failures: u32,
}

impl Default for ProbeSettings {
    fn default() -> ProbeSettings {
        ProbeSettings {
            interval: ProbeSettings::DEFAULT_INTERVAL,
            timeout: ProbeSettings::DEFAULT_TIMEOUT,
            failures: ProbeSettings::DEFAULT_FAILURES,
        }
    }
}

impl ProbeSettings {
    /// Default `--leader_probe_interval`.
    pub const DEFAULT_INTERVAL: Duration = Duration::from_millis(250);
    /// Default `--leader_probe_timeout`.
    pub const DEFAULT_TIMEOUT: Duration = Duration::from_millis(300);
    /// Default `--leader_probe_failures`.
    pub const DEFAULT_FAILURES: u32 = 4;

    /// Whether standbys probe (and so depose) at all.
    pub fn enabled(&self) -> bool {
        !self.interval.is_zero() && self.failures > 0
    }

    /// Failed probes in a row after which the standby at `position` in
    /// line (1: next after the leader) deposes the leader.
    pub fn needed(&self, position: usize) -> u32 {
        let position = u32::try_from(position.max(1)).unwrap_or(u32::MAX);
        self.failures.max(1).saturating_mul(position)
    }

    /// How long the leader may act after its lease was last confirmed:
    /// less than standbys need to depose it once it stops answering. A
    /// probe failing late may have started up to a timeout before the
    /// leader stopped, and [`Suspicion`] deposes only after `failures`
    /// probes spanning `failures − 1` intervals (less its slack), so the
    /// least time from a leader's stop to its deposition is about
    /// `(failures − 1) × interval − timeout`; the lease is a fifth of an
    /// interval shorter still. Without probing, deposition is by session
    /// expiry: half the session timeout.
    pub fn lease(&self, session_timeout: Duration) -> Duration {
        if !self.enabled() {
            return session_timeout / 2;
        }
        self.span(self.failures)
            .saturating_sub(self.timeout)
            .saturating_sub(self.interval / 5)
    }

    /// The least time `needed` failed probes in a row must span: `needed −
    /// 1` intervals, less a tenth of one (timer jitter: the first probe of
    /// a run may start a little late).
    pub fn span(&self, needed: u32) -> Duration {
        self.interval
            .saturating_mul(needed.max(1) - 1)
            .saturating_sub(self.interval / 10)
    }

    /// How often the leader renews its lease — and so heartbeats: twice
    /// per lease, but at least every probe interval and at most every half
    /// interval (a lease too short to matter does not make it write in a
    /// loop). Standbys then see a new heartbeat at every probe.
    pub fn renew_every(&self, session_timeout: Duration) -> Duration {
        let half_lease = self.lease(session_timeout) / 2;
        let every = if self.enabled() {
            half_lease.clamp(self.interval / 2, self.interval)
        } else {
            half_lease
        };
        every.max(Duration::from_millis(10))
    }
}

/// Answers [`PROBE_PATH`] from this process's lease.
pub fn routes<S>(lease: watch::Receiver<Option<Lease>>) -> Router<S>
where
    S: Clone + Send + Sync + 'static,
{
    Router::new().route(
        PROBE_PATH,
        get(move || {
            let leading = lease.borrow().as_ref().map(|l| l.lock_path.clone());
            async move { axum::Json(serde_json::json!({ "leading": leading })) }
        }),
    )
}

/// The leader a standby watches, as the election last read it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Target {
    /// The leader's election znode (`/leader/_c_…-latch-…`).
    pub znode: String,
    /// Its `host:port`.
    pub address: String,
    /// Our place in line: 1 right after the leader (0: we are first, and
    /// the lock is about to say so).
    pub position: usize,
}

/// What [`Suspicion::observe`] concludes.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Verdict {
    /// The probe succeeded.
    Alive,
    /// Failed probes in a row, not yet enough.
    Suspect {
        /// How many.
        failed: u32,
    },
    /// The probes fail, but the leader's znode shows its heartbeats: it
    /// is alive and talks to ZooKeeper; only we cannot reach it. Not
    /// deposed.
    Unreachable {
        /// Failed probes in a row.
        failed: u32,
    },
    /// Enough: depose it.
    Dead {
        /// Failed probes in a row.
        failed: u32,
        /// From the start of the first to the start of the last.
        over: Duration,
    },
}

/// Failed probes in a row of one leader, and its heartbeats (pure:
/// instants come in).
#[derive(Debug, Default)]
pub struct Suspicion {
    znode: Option<String>,
    failed: u32,
    since: Option<Instant>,
    /// The leader's znode version last seen, and when it was first seen.
    heartbeat: Option<(i32, Instant)>,
}

impl Suspicion {
    /// Counts the outcome of a probe of `znode`'s leader started `at`,
    /// with the znode's `version` read then (`None`: not read). Dead once
    /// `needed` probes in a row failed *and* they span at least `span`
    /// from the start of the first to the start of the last
    /// ([`ProbeSettings::span`]: so a burst of failures — after this
    /// process itself was paused, say — deposes no one early) *and* the
    /// version has not moved for `span` either: a leader whose heartbeats
    /// go on is [`Verdict::Unreachable`], never dead. A new leader starts
    /// a new count.
    pub fn observe(
        &mut self,
        znode: &str,
        alive: bool,
        version: Option<i32>,
        at: Instant,
        needed: u32,
        span: Duration,
    ) -> Verdict {
        if self.znode.as_deref() != Some(znode) {
            *self = Suspicion {
                znode: Some(znode.to_string()),
                ..Suspicion::default()
            };
        }
        if let Some(version) = version
            && self.heartbeat.is_none_or(|(seen, _)| seen != version)
        {
            self.heartbeat = Some((version, at));
        }
        let beating = self
            .heartbeat
            .is_some_and(|(_, seen)| at.saturating_duration_since(seen) < span);
        if alive {
            self.failed = 0;
            self.since = None;
            return Verdict::Alive;
        }
        self.failed = self.failed.saturating_add(1);
        let since = *self.since.get_or_insert(at);
        let over = at.saturating_duration_since(since);
        if self.failed >= needed.max(1) && over >= span {
            if beating {
                return Verdict::Unreachable {
                    failed: self.failed,
                };
            }
            Verdict::Dead {
                failed: self.failed,
                over,
            }
        } else {
            Verdict::Suspect {
                failed: self.failed,
            }
        }
    }
}

/// One probe: `Ok` when the process at `target.address` says it leads
/// with `target.znode`.
async fn probe(http: &reqwest::Client, target: &Target) -> Result<(), String> {
    let url = format!("http://{}{PROBE_PATH}", target.address);
    let response = http
        .get(&url)
        .send()
        .await
        .map_err(|e| baton_probe::error_chain(&e))?;
    let status = response.status();
    // A Baton from before probing (a rolling upgrade) answers 404: alive.
    if status == reqwest::StatusCode::NOT_FOUND {
        return Ok(());
    }
    if !status.is_success() {
        return Err(format!("answered {status}"));
    }
    let body: serde_json::Value = response
        .json()
        .await
        .map_err(|e| format!("unreadable answer: {e}"))?;
    match body["leading"].as_str() {
        Some(znode) if znode == target.znode => Ok(()),
        other => Err(format!(
            "it does not lead with {} (it says {other:?})",
            target.znode
        )),
    }
}

/// Probes the leader `targets` names until `cancel`, and deposes it (one
/// `delete` of its znode on `client`) when [`Suspicion`] says so.
pub async fn run(
    client: zk::Client,
    settings: ProbeSettings,
    mut targets: watch::Receiver<Option<Target>>,
    cancel: CancellationToken,
) {
    if !settings.enabled() {
        return;
    }
    let http = match reqwest::Client::builder()
        .timeout(settings.timeout)
        .connect_timeout(settings.timeout)
        .pool_max_idle_per_host(1)
        .redirect(reqwest::redirect::Policy::none())
        .no_proxy()
        .build()
    {
        Ok(http) => http,
        Err(e) => {
            warn!(error = %e, "cannot build the leader probe's HTTP client; failover waits for session expiry");
            return;
        }
    };
    let clock = Clock::wall();
    let mut suspicion = Suspicion::default();
    let mut warned: Option<String> = None;
    let mut ticks = tokio::time::interval(settings.interval);
    ticks.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
    loop {
        tokio::select! {
            _ = ticks.tick() => {}
            () = cancel.cancelled() => return,
        }
        let target = targets.borrow_and_update().clone();
        let Some(target) = target.filter(|t| t.position > 0) else {
            continue;
        };
        let started = clock.instant();
        let heartbeat = async {
            match client.check_stat(&target.znode).await {
                Ok(stat) => stat.map(|s| s.version),
                Err(_) => None,
            }
        };
        let (outcome, version) = tokio::select! {
            both = futures::future::join(probe(&http, &target), heartbeat) => both,
            () = cancel.cancelled() => return,
        };
        // The leader changed while the probe ran: it proves nothing.
        if targets.has_changed().unwrap_or(false) {
            continue;
        }
        let needed = settings.needed(target.position);
        let verdict = suspicion.observe(
            &target.znode,
            outcome.is_ok(),
            version,
            started,
            needed,
            settings.span(needed),
        );
        match (verdict, outcome) {
            (Verdict::Alive, _) => {}
            (Verdict::Suspect { failed }, Err(why)) => {
                debug!(leader = %target.address, znode = %target.znode, failed, needed, %why, "leader probe failed");
            }
            (Verdict::Unreachable { failed }, Err(why)) => {
                // Once per leader, then quietly.
                if warned.as_deref() != Some(target.znode.as_str()) {
                    warned = Some(target.znode.clone());
                    warn!(
                        leader = %target.address,
                        znode = %target.znode,
                        %why,
                        "cannot reach the leader, but it heartbeats in ZooKeeper: not deposing it (is its --hostname:--http_port reachable from here?)"
                    );
                } else {
                    debug!(leader = %target.address, failed, %why, "leader unreachable but heartbeating");
                }
            }
            (Verdict::Dead { failed, over }, Err(why)) => {
                warn!(
                    leader = %target.address,
                    znode = %target.znode,
                    failed,
                    ?over,
                    %why,
                    "the leader does not answer: deposing it (deleting its election znode)"
                );
                match client.delete(&target.znode, None).await {
                    Ok(()) => info!(znode = %target.znode, "leader deposed"),
                    Err(zk::Error::NoNode) => {
                        debug!(znode = %target.znode, "the leader's znode was already gone");
                    }
                    Err(e) => warn!(error = %e, znode = %target.znode, "cannot depose the leader"),
                }
            }
            (_, Ok(())) => {}
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const MS: Duration = Duration::from_millis(1);
    const A: &str = "/leader/a";

    fn t0() -> Instant {
        Clock::wall().instant()
    }

    /// Probes of `A` every `interval` from `start`, all failing, with no
    /// heartbeat seen; the verdicts.
    fn failing(s: &mut Suspicion, start: Instant, times: std::ops::Range<u32>) -> Vec<Verdict> {
        let settings = ProbeSettings::default();
        times
            .map(|i| {
                s.observe(
                    A,
                    false,
                    None,
                    start + settings.interval * i,
                    4,
                    settings.span(4),
                )
            })
            .collect()
    }

    #[test]
    fn defaults_depose_within_about_a_second_and_the_lease_lapses_first() {
        let s = ProbeSettings::default();
        assert!(s.enabled());
        assert_eq!(s.needed(1), 4);
        assert_eq!(s.needed(2), 8, "further back in line waits longer");
        assert_eq!(s.needed(0), 4);
        // 4 failures span 3 intervals less a tenth of one.
        assert_eq!(s.span(4), 725 * MS);
        assert_eq!(s.span(1), Duration::ZERO);
        // (4 − 1) × 250 ms − 25 ms − 300 ms − 50 ms.
        let session = Duration::from_secs(10);
        assert_eq!(s.lease(session), 375 * MS);
        // Heartbeats twice per lease: more often than standbys probe.
        assert_eq!(s.renew_every(session), Duration::from_micros(187_500));
        assert!(s.renew_every(session) < s.interval);
        let off = ProbeSettings {
            interval: Duration::ZERO,
            ..s
        };
        assert!(!off.enabled());
        assert_eq!(off.lease(session), Duration::from_secs(5));
        // A timeout longer than the failures' span: the leader asks
        // ZooKeeper before every act, and heartbeats every half interval.
        let tight = ProbeSettings { failures: 2, ..s };
        assert_eq!(tight.lease(session), Duration::ZERO);
        assert_eq!(tight.renew_every(session), 125 * MS);
        assert!(tight.renew_every(session) < tight.span(2));
    }

    #[test]
    fn four_failures_in_a_row_over_three_intervals_depose() {
        let start = t0();
        let verdicts = failing(&mut Suspicion::default(), start, 0..4);
        assert_eq!(verdicts[0], Verdict::Suspect { failed: 1 });
        assert_eq!(verdicts[2], Verdict::Suspect { failed: 3 });
        assert_eq!(
            verdicts[3],
            Verdict::Dead {
                failed: 4,
                over: 750 * MS
            }
        );
        // The first probe started a few milliseconds late: still dead.
        let span = ProbeSettings::default().span(4);
        let mut late = Suspicion::default();
        late.observe(A, false, None, start + 4 * MS, 4, span);
        failing(&mut late, start, 1..3);
        assert!(matches!(
            late.observe(A, false, None, start + 750 * MS, 4, span),
            Verdict::Dead { failed: 4, .. }
        ));
    }

    #[test]
    fn one_answer_resets_the_count() {
        let start = t0();
        let span = ProbeSettings::default().span(4);
        let mut s = Suspicion::default();
        failing(&mut s, start, 0..3);
        // A slow leader answers the fourth: alive, and counting restarts.
        assert_eq!(
            s.observe(A, true, None, start + 750 * MS, 4, span),
            Verdict::Alive
        );
        let again = failing(&mut s, start, 4..8);
        assert!(matches!(again[2], Verdict::Suspect { failed: 3 }));
        assert!(matches!(again[3], Verdict::Dead { failed: 4, .. }));
    }

    #[test]
    fn a_burst_of_failures_is_not_enough_without_the_time_they_should_span() {
        // Failures 20 ms apart (a prober that was itself paused and fires
        // its missed ticks at once): not yet.
        let start = t0();
        let span = ProbeSettings::default().span(4);
        let mut s = Suspicion::default();
        for i in 0..6u32 {
            assert!(matches!(
                s.observe(A, false, None, start + 20 * MS * i, 4, span),
                Verdict::Suspect { .. }
            ));
        }
        assert!(matches!(
            s.observe(A, false, None, start + 750 * MS, 4, span),
            Verdict::Dead { failed: 7, .. }
        ));
    }

    #[test]
    fn a_new_leader_starts_a_new_count() {
        let start = t0();
        let span = ProbeSettings::default().span(4);
        let mut s = Suspicion::default();
        failing(&mut s, start, 0..3);
        assert_eq!(
            s.observe("/leader/b", false, None, start + 750 * MS, 4, span),
            Verdict::Suspect { failed: 1 },
            "failures of the old leader do not count against the new one"
        );
    }

    #[test]
    fn further_back_in_line_needs_more_failures() {
        let settings = ProbeSettings::default();
        let start = t0();
        let mut s = Suspicion::default();
        let needed = settings.needed(2);
        let dead_at = (0..20u32).find_map(|i| {
            match s.observe(
                A,
                false,
                None,
                start + settings.interval * i,
                needed,
                settings.span(needed),
            ) {
                Verdict::Dead { failed, .. } => Some(failed),
                _ => None,
            }
        });
        assert_eq!(dead_at, Some(8));
    }

    #[test]
    fn a_leader_that_heartbeats_is_unreachable_not_dead() {
        // A standby cut off from the leader, both talking to ZooKeeper:
        // every probe fails, but the znode's version keeps moving.
        let settings = ProbeSettings::default();
        let (start, span) = (t0(), settings.span(4));
        let mut s = Suspicion::default();
        let verdicts: Vec<Verdict> = (0..40u32)
            .map(|i| {
                s.observe(
                    A,
                    false,
                    Some(i as i32),
                    start + settings.interval * i,
                    4,
                    span,
                )
            })
            .collect();
        assert!(
            verdicts.iter().all(|v| !matches!(v, Verdict::Dead { .. })),
            "{verdicts:?}"
        );
        assert!(matches!(verdicts[39], Verdict::Unreachable { failed: 40 }));
        // Its heartbeats stop (it died): dead once they have been still
        // for the span too.
        let verdicts: Vec<Verdict> = (40..44u32)
            .map(|i| s.observe(A, false, Some(40), start + settings.interval * i, 4, span))
            .collect();
        assert!(
            matches!(verdicts[2], Verdict::Unreachable { .. }),
            "{verdicts:?}"
        );
        assert!(matches!(verdicts[3], Verdict::Dead { .. }), "{verdicts:?}");
    }

    #[test]
    fn the_last_heartbeat_before_a_death_adds_no_delay() {
        // The leader's last heartbeat is seen by the same probe that first
        // fails: dead after the usual four.
        let settings = ProbeSettings::default();
        let (start, span) = (t0(), settings.span(4));
        let mut s = Suspicion::default();
        assert_eq!(s.observe(A, true, Some(6), start, 4, span), Verdict::Alive);
        let verdicts: Vec<Verdict> = (1..5u32)
            .map(|i| s.observe(A, false, Some(7), start + settings.interval * i, 4, span))
            .collect();
        assert!(
            matches!(verdicts[3], Verdict::Dead { failed: 4, .. }),
            "{verdicts:?}"
        );
    }
}
