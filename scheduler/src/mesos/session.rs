//! The subscription controller: keeps one live SUBSCRIBE stream to the
//! leading master and hands its events to the scheduler, in order.
//!
//! A single loop owns the session state machine
//! `Disconnected → Subscribing → Subscribed`. Any stream error, EOF, ERROR
//! event, heartbeat timeout, or a call answered 403/307 drops back to
//! Disconnected; it then resubscribes with capped, jittered exponential
//! backoff, the stored FrameworkID in both id fields, following 307s to the
//! leader and trying each `--master` in turn. Outstanding offers die with the
//! subscription, which the consumer learns from [`SessionEvent::Disconnected`].
//! TEARDOWN is never sent from here.

use std::sync::Arc;
use std::time::Duration;

use futures::StreamExt;
use mesos_proto::scheduler::{Call, Event, event};
use mesos_proto::{Encoding, v1};
use tokio::sync::{mpsc, watch};
use tokio_util::sync::CancellationToken;
use tracing::{Instrument, debug, info, info_span, warn};

use super::calls;
use super::error::MesosError;
use super::http::{CallerSecurity, HttpCaller};
use super::masters::MasterEndpoint;

/// How the session talks to Mesos.
#[derive(Debug, Clone)]
pub struct SessionConfig {
    /// Masters to try in turn; a 307 may lead elsewhere.
    pub masters: Vec<MasterEndpoint>,
    /// Our FrameworkInfo; its `id` is filled in by the session.
    pub framework_info: v1::FrameworkInfo,
    /// Wire encoding of calls and events.
    pub encoding: Encoding,
    /// Bound on a non-streaming call and on SUBSCRIBE's response headers.
    pub call_timeout: Duration,
    /// First reconnect delay; doubles per failed attempt.
    pub backoff_min: Duration,
    /// Cap on the reconnect delay.
    pub backoff_max: Duration,
    /// Missed heartbeat intervals before the stream counts as dead.
    pub heartbeat_misses: u32,
    /// The leading master as ZooKeeper says (`--master zk://…`): used
    /// instead of `masters`, and a change of leader resubscribes there.
    pub detected: Option<watch::Receiver<Option<MasterEndpoint>>>,
    /// Trust roots for `https://` masters and the framework's credentials.
    pub security: CallerSecurity,
    /// The leadership term's lease (with ZooKeeper): every call and
    /// SUBSCRIBE waits for it and is not sent once it is lost, so a
    /// deposed leader sends nothing (see [`crate::lease`]).
    pub lease: Option<crate::lease::LeaseGate>,
}

impl SessionConfig {
    /// Defaults from the Mesos docs: 1 s → 15 s backoff, 5 missed heartbeats.
    pub fn new(masters: Vec<MasterEndpoint>, framework_info: v1::FrameworkInfo) -> SessionConfig {
        SessionConfig {
            masters,
            framework_info,
            encoding: Encoding::Protobuf,
            call_timeout: Duration::from_secs(15),
            backoff_min: Duration::from_secs(1),
            backoff_max: Duration::from_secs(15),
            heartbeat_misses: 5,
            detected: None,
            security: CallerSecurity::default(),
            lease: None,
        }
    }
}

/// Waits for `lease` (if any) to allow acting; the error says why not.
async fn leading(lease: Option<&crate::lease::LeaseGate>) -> Result<(), MesosError> {
    match lease {
        Some(lease) => lease
            .confirm()
            .await
            .map_err(|e| MesosError::NotLeading(e.to_string())),
        None => Ok(()),
    }
}

/// What the session tells its consumer.
#[derive(Debug, Clone)]
pub enum SessionEvent {
    /// A new subscription is live. Offers from before are gone; reconcile.
    Subscribed {
        /// The id Mesos knows us by; persist it before relying on it.
        framework_id: v1::FrameworkId,
        /// The master serving the subscription.
        master: MasterEndpoint,
        /// The stream id calls carry.
        stream_id: String,
        /// The master's heartbeat interval.
        heartbeat_interval: Duration,
    },
    /// An event other than SUBSCRIBED and HEARTBEAT.
    Event(Box<Event>),
    /// The subscription ended; outstanding offers are void.
    Disconnected {
        /// Why, for logs.
        reason: String,
    },
    /// The master removed our framework (failover timeout expired or
    /// TEARDOWN): the old id is dead and its tasks are gone. The session
    /// subscribes afresh without an id.
    FrameworkRemoved {
        /// The master's message.
        message: String,
    },
}

/// The live subscription, as calls need it.
#[derive(Debug, Clone)]
struct Connection {
    master: MasterEndpoint,
    stream_id: String,
    framework_id: v1::FrameworkId,
    /// Cancelled to make the session drop this subscription and resubscribe.
    lost: CancellationToken,
}

/// A cloneable handle for sending calls on the current subscription.
#[derive(Clone)]
pub struct MesosHandle {
    caller: HttpCaller,
    connection: watch::Receiver<Option<Connection>>,
    stats: Arc<SessionStats>,
    lease: Option<crate::lease::LeaseGate>,
}

/// Counters for tests and metrics.
#[derive(Debug, Default)]
pub struct SessionStats {
    /// SUBSCRIBE requests sent.
    pub subscribe_attempts: std::sync::atomic::AtomicU64,
    /// SUBSCRIBED events received.
    pub subscriptions: std::sync::atomic::AtomicU64,
    /// Redirects followed.
    pub redirects: std::sync::atomic::AtomicU64,
    /// Why the latest subscription attempt failed (cleared on success):
    /// for operators and tests, the same words as the log.
    last_failure: std::sync::Mutex<Option<String>>,
}

impl SessionStats {
    /// Why the latest subscription attempt failed, if it did.
    pub fn last_failure(&self) -> Option<String> {
        self.last_failure.lock().expect("never poisoned").clone()
    }

    fn set_last_failure(&self, failure: Option<String>) {
        *self.last_failure.lock().expect("never poisoned") = failure;
    }
}

impl MesosHandle {
    /// Sends a call on the live subscription, stamping our FrameworkID and
    /// the stream id. An answer meaning the subscription is gone (403, 307,
    /// unknown framework) makes the session resubscribe. With a lease,
    /// nothing is sent unless it allows (a deposed leader sends nothing).
    pub async fn call(&self, mut call: Call) -> Result<(), MesosError> {
        if let Err(e) = leading(self.lease.as_ref()).await {
            debug!(call = ?calls::call_type(&call), error = %e, "call not sent");
            return Err(e);
        }
        let connection = self
            .connection
            .borrow()
            .clone()
            .ok_or(MesosError::NotSubscribed)?;
        call.framework_id = Some(connection.framework_id.clone());
        let kind = calls::call_type(&call);
        let result = self
            .caller
            .call(&connection.master, &connection.stream_id, &call)
            .await;
        match &result {
            Ok(()) => debug!(call = ?kind, "call accepted"),
            Err(e) if e.subscription_lost() => {
                warn!(call = ?kind, error = %e, "call shows the subscription is lost; resubscribing");
                connection.lost.cancel();
            }
            Err(e) => warn!(call = ?kind, error = %e, "call failed"),
        }
        result
    }

    /// A handle on no subscription, for a loop driven without Mesos (its
    /// calls go elsewhere; these fail with `NotSubscribed`).
    #[cfg(test)]
    pub fn detached() -> MesosHandle {
        let (_, connection) = watch::channel(None);
        MesosHandle {
            caller: HttpCaller::new(
                Encoding::Protobuf,
                Duration::from_secs(1),
                CallerSecurity::default(),
            ),
            connection,
            stats: Arc::default(),
            lease: None,
        }
    }

    /// Whether a subscription is live right now.
    pub fn is_subscribed(&self) -> bool {
        self.connection.borrow().is_some()
    }

    /// The current stream id, if subscribed (for tests and diagnostics).
    pub fn stream_id(&self) -> Option<String> {
        self.connection
            .borrow()
            .as_ref()
            .map(|c| c.stream_id.clone())
    }

    /// Session counters.
    pub fn stats(&self) -> &SessionStats {
        &self.stats
    }

    /// Drops the current subscription and resubscribes (e.g. a leader hint).
    pub fn reconnect(&self) {
        if let Some(c) = self.connection.borrow().as_ref() {
            c.lost.cancel();
        }
    }
}

/// Starts the session loop. Events arrive on the returned receiver; the loop
/// stops when `shutdown` is cancelled or the receiver is dropped.
pub fn spawn(
    config: SessionConfig,
    framework_id: Option<v1::FrameworkId>,
    shutdown: CancellationToken,
) -> (MesosHandle, mpsc::Receiver<SessionEvent>) {
    let caller = HttpCaller::new(
        config.encoding,
        config.call_timeout,
        config.security.clone(),
    );
    let (connection_tx, connection_rx) = watch::channel(None);
    let (events_tx, events_rx) = mpsc::channel(1024);
    let stats = Arc::new(SessionStats::default());
    let handle = MesosHandle {
        caller: caller.clone(),
        connection: connection_rx,
        stats: stats.clone(),
        lease: config.lease.clone(),
    };
    let session = Session {
        config,
        caller,
        framework_id,
        connection: connection_tx,
        events: events_tx,
        stats,
    };
    tokio::spawn(
        session
            .run(shutdown)
            .instrument(info_span!("mesos_session")),
    );
    (handle, events_rx)
}

struct Session {
    config: SessionConfig,
    caller: HttpCaller,
    framework_id: Option<v1::FrameworkId>,
    connection: watch::Sender<Option<Connection>>,
    events: mpsc::Sender<SessionEvent>,
    stats: Arc<SessionStats>,
}

/// How one subscription ended.
enum Ended {
    /// Try again (after backoff unless `immediately`), at `next` if known.
    Retry {
        error: MesosError,
        next: Option<MasterEndpoint>,
        was_subscribed: bool,
    },
    /// Shutdown requested or the consumer went away.
    Stop,
}

impl Session {
    async fn run(mut self, shutdown: CancellationToken) {
        let mut master_index = 0;
        let mut detected = self.config.detected.clone();
        let mut target = match &mut detected {
            Some(detected) => match Self::detected_leader(detected, &shutdown).await {
                Some(leader) => leader,
                None => return,
            },
            None => self.config.masters[0].clone(),
        };
        let mut failures: u32 = 0;
        let mut redirects_in_a_row: u32 = 0;
        loop {
            let ended = tokio::select! {
                () = shutdown.cancelled() => Ended::Stop,
                ended = self.subscribe_once(&target) => ended,
                leader = Self::leader_moved(detected.as_mut(), &target) => Ended::Retry {
                    error: MesosError::NotLeader { location: leader.as_ref().map(ToString::to_string).unwrap_or_default() },
                    next: leader,
                    was_subscribed: self.connection.borrow().is_some(),
                },
            };
            self.connection.send_replace(None);
            let (error, next, was_subscribed) = match ended {
                Ended::Stop => {
                    info!(
                        "mesos session stopped (no TEARDOWN: the framework stays registered for its failover timeout)"
                    );
                    return;
                }
                Ended::Retry {
                    error,
                    next,
                    was_subscribed,
                } => (error, next, was_subscribed),
            };
            if was_subscribed {
                failures = 0;
                if self
                    .events
                    .send(SessionEvent::Disconnected {
                        reason: error.to_string(),
                    })
                    .await
                    .is_err()
                {
                    return;
                }
            }
            let delay = match next {
                // A redirect is not a failure: follow it now, but back off if
                // masters keep bouncing us (an election in progress).
                Some(leader) => {
                    redirects_in_a_row += 1;
                    self.stats
                        .redirects
                        .fetch_add(1, std::sync::atomic::Ordering::Relaxed);
                    info!(from = %target, to = %leader, "following redirect to the leading master");
                    target = leader;
                    if redirects_in_a_row <= 3 {
                        Duration::ZERO
                    } else {
                        backoff(&self.config, redirects_in_a_row - 3)
                    }
                }
                None => {
                    redirects_in_a_row = 0;
                    failures += 1;
                    warn!(master = %target, error = %error, attempt = failures, "subscription failed");
                    self.stats.set_last_failure(Some(error.to_string()));
                    let mut delay = match &error {
                        // A master just elected answers 503 until it has
                        // recovered its state, usually for tens of
                        // milliseconds: ask again soon rather than after a
                        // whole backoff step.
                        MesosError::Unavailable { status: 503, .. } => {
                            backoff(&self.config, failures).min(recovering_retry(failures))
                        }
                        _ => backoff(&self.config, failures),
                    };
                    // Transport trouble or an unusable answer: next master in the list.
                    if !was_subscribed
                        || matches!(
                            error,
                            MesosError::Transport { .. } | MesosError::Unavailable { .. }
                        )
                    {
                        match &mut detected {
                            // Whoever ZooKeeper says leads now: a master
                            // other than the one that failed is tried at
                            // once (the failures were the old one's).
                            Some(detected) => {
                                match Self::detected_leader(detected, &shutdown).await {
                                    Some(leader) if leader != target => {
                                        info!(from = %target, to = %leader, "ZooKeeper names a new leading master; subscribing at once");
                                        target = leader;
                                        failures = 0;
                                        delay = Duration::ZERO;
                                    }
                                    Some(_) => {}
                                    None => return,
                                }
                            }
                            None => {
                                master_index = (master_index + 1) % self.config.masters.len();
                                target = self.config.masters[master_index].clone();
                            }
                        }
                    }
                    delay
                }
            };
            // A leader change seen in ZooKeeper ends the wait: the backoff
            // was for the master that failed, not for its successor.
            tokio::select! {
                () = shutdown.cancelled() => return,
                () = tokio::time::sleep(delay) => {}
                moved = Self::leader_moved(detected.as_mut(), &target) => {
                    if let Some(leader) = moved {
                        info!(from = %target, to = %leader, "leading master changed during the backoff; subscribing at once");
                        target = leader;
                        failures = 0;
                    }
                }
            }
        }
    }

    /// The detected leader, waiting while there is none; `None` on shutdown.
    async fn detected_leader(
        detected: &mut watch::Receiver<Option<MasterEndpoint>>,
        shutdown: &CancellationToken,
    ) -> Option<MasterEndpoint> {
        tokio::select! {
            leader = detected.wait_for(Option::is_some) => leader.ok().and_then(|l| l.clone()),
            () = shutdown.cancelled() => None,
        }
    }

    /// Resolves with the new leader (or `None`: no leader) when detection
    /// names another master than `target`; never without detection.
    async fn leader_moved(
        detected: Option<&mut watch::Receiver<Option<MasterEndpoint>>>,
        target: &MasterEndpoint,
    ) -> Option<MasterEndpoint> {
        let Some(detected) = detected else {
            return std::future::pending().await;
        };
        loop {
            let now = detected.borrow_and_update().clone();
            if now.as_ref() != Some(target) {
                return now;
            }
            if detected.changed().await.is_err() {
                return std::future::pending().await;
            }
        }
    }

    /// One SUBSCRIBE, then the event loop until the stream ends.
    async fn subscribe_once(&mut self, master: &MasterEndpoint) -> Ended {
        // A deposed leader must not take the framework back from the new
        // one: no SUBSCRIBE without the lease.
        if let Err(error) = leading(self.config.lease.as_ref()).await {
            return Ended::Retry {
                error,
                next: None,
                was_subscribed: false,
            };
        }
        let call = calls::subscribe(
            self.config.framework_info.clone(),
            self.framework_id.as_ref(),
        );
        self.stats
            .subscribe_attempts
            .fetch_add(1, std::sync::atomic::Ordering::Relaxed);
        debug!(%master, framework_id = ?self.framework_id.as_ref().map(|id| &id.value), "subscribing");
        let subscription = match self.caller.subscribe(master, &call).await {
            Ok(s) => s,
            Err(MesosError::NotLeader { location }) => {
                let next = master.redirected(&location);
                let error = MesosError::NotLeader { location };
                return Ended::Retry {
                    next,
                    error,
                    was_subscribed: false,
                };
            }
            Err(error) => {
                return Ended::Retry {
                    error,
                    next: None,
                    was_subscribed: false,
                };
            }
        };
        let mut events = subscription.events;
        let lost = CancellationToken::new();
        // Before SUBSCRIBED we only know the call timeout.
        let mut silence_limit = self.config.call_timeout;
        let mut subscribed = false;
        loop {
            let next = tokio::select! {
                () = lost.cancelled() => {
                    return Ended::Retry { error: MesosError::Forbidden("a call found the subscription lost".into()), next: None, was_subscribed: subscribed };
                }
                next = tokio::time::timeout(silence_limit, events.next()) => next,
            };
            let event = match next {
                Err(_) => {
                    return Ended::Retry {
                        error: MesosError::HeartbeatTimeout(silence_limit),
                        next: None,
                        was_subscribed: subscribed,
                    };
                }
                Ok(None) => {
                    return Ended::Retry {
                        error: MesosError::StreamClosed,
                        next: None,
                        was_subscribed: subscribed,
                    };
                }
                Ok(Some(Err(error))) => {
                    return Ended::Retry {
                        error,
                        next: None,
                        was_subscribed: subscribed,
                    };
                }
                Ok(Some(Ok(event))) => event,
            };
            let kind = event
                .r#type
                .and_then(|t| event::Type::try_from(t).ok())
                .unwrap_or(event::Type::Unknown);
            match kind {
                event::Type::Subscribed => {
                    let Some(info) = event.subscribed else {
                        return Ended::Retry {
                            error: MesosError::Protocol("SUBSCRIBED without body".into()),
                            next: None,
                            was_subscribed: subscribed,
                        };
                    };
                    if let Some(old) = &self.framework_id
                        && *old != info.framework_id
                    {
                        warn!(old = %old.value, new = %info.framework_id.value, "master assigned a different FrameworkID; the old one's failover timeout must have expired");
                    }
                    let heartbeat = info
                        .heartbeat_interval_seconds
                        .filter(|s| s.is_finite() && *s > 0.0)
                        .map_or(Duration::from_secs(15), Duration::from_secs_f64);
                    silence_limit = heartbeat.saturating_mul(self.config.heartbeat_misses.max(1));
                    self.framework_id = Some(info.framework_id.clone());
                    subscribed = true;
                    self.stats
                        .subscriptions
                        .fetch_add(1, std::sync::atomic::Ordering::Relaxed);
                    self.stats.set_last_failure(None);
                    info!(%master, framework_id = %info.framework_id.value, stream_id = %subscription.stream_id, ?heartbeat, "subscribed");
                    self.connection.send_replace(Some(Connection {
                        master: master.clone(),
                        stream_id: subscription.stream_id.clone(),
                        framework_id: info.framework_id.clone(),
                        lost: lost.clone(),
                    }));
                    let ev = SessionEvent::Subscribed {
                        framework_id: info.framework_id,
                        master: master.clone(),
                        stream_id: subscription.stream_id.clone(),
                        heartbeat_interval: heartbeat,
                    };
                    if self.events.send(ev).await.is_err() {
                        return Ended::Stop;
                    }
                }
                event::Type::Heartbeat => {}
                event::Type::Error => {
                    let message = event.error.map(|e| e.message).unwrap_or_default();
                    if message.contains("Framework has been removed") {
                        warn!(%message, "master removed our framework; its tasks are gone; subscribing again as a new framework");
                        self.framework_id = None;
                        if self
                            .events
                            .send(SessionEvent::FrameworkRemoved {
                                message: message.clone(),
                            })
                            .await
                            .is_err()
                        {
                            return Ended::Stop;
                        }
                    }
                    return Ended::Retry {
                        error: MesosError::ErrorEvent(message),
                        next: None,
                        was_subscribed: subscribed,
                    };
                }
                _ if !subscribed => {
                    return Ended::Retry {
                        error: MesosError::Protocol(format!(
                            "first event was {kind:?}, not SUBSCRIBED"
                        )),
                        next: None,
                        was_subscribed: false,
                    };
                }
                _ => {
                    if self
                        .events
                        .send(SessionEvent::Event(Box::new(event)))
                        .await
                        .is_err()
                    {
                        return Ended::Stop;
                    }
                }
            }
        }
    }
}

/// Capped exponential backoff with jitter: attempt `n` (1-based) waits a
/// random time in `[d/2, d]` where `d = min(max, min * 2^(n-1))`.
fn backoff(config: &SessionConfig, attempt: u32) -> Duration {
    let exp = config
        .backoff_min
        .saturating_mul(1u32 << attempt.saturating_sub(1).min(16));
    let capped = exp.min(config.backoff_max);
    capped.mul_f64(0.5 + rand::random::<f64>() * 0.5)
}

/// How soon a master still recovering (503) is asked again: 25 ms, then
/// doubling (the usual backoff caps it).
fn recovering_retry(attempt: u32) -> Duration {
    Duration::from_millis(25).saturating_mul(1u32 << attempt.saturating_sub(1).min(16))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_recovering_master_is_asked_again_within_tens_of_milliseconds() {
        assert_eq!(recovering_retry(1), Duration::from_millis(25));
        assert_eq!(recovering_retry(3), Duration::from_millis(100));
        assert_eq!(recovering_retry(60), Duration::from_millis(25 << 16));
    }

    #[test]
    fn backoff_grows_is_capped_and_jittered() {
        let mut config = SessionConfig::new(
            vec![MasterEndpoint::parse("h:1").unwrap()],
            v1::FrameworkInfo::default(),
        );
        config.backoff_min = Duration::from_millis(100);
        config.backoff_max = Duration::from_secs(1);
        for _ in 0..50 {
            let first = backoff(&config, 1);
            assert!(
                first >= Duration::from_millis(50) && first <= Duration::from_millis(100),
                "{first:?}"
            );
            let third = backoff(&config, 3);
            assert!(
                third >= Duration::from_millis(200) && third <= Duration::from_millis(400),
                "{third:?}"
            );
            let late = backoff(&config, 40);
            assert!(
                late >= Duration::from_millis(500) && late <= Duration::from_secs(1),
                "{late:?}"
            );
        }
    }
}
