//! The I/O part of health checking: one timer per [`Target`], probes over
//! HTTP or TCP under a shared bound on concurrency, results on a channel.
//!
//! Each target gets a task of its own, started by
//! [`HealthChecker::set_targets`] and stopped (through a cancellation token
//! dropped with its entry) when the target disappears or changes. A probe
//! first waits for a permit of the shared semaphore, so however many targets
//! are due, at most `max_concurrent` sockets are open for checks; its timeout
//! starts once it holds the permit.

use std::collections::HashMap;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use reqwest::StatusCode;
use tokio::net::TcpStream;
use tokio::runtime::Handle;
use tokio::sync::{Semaphore, mpsc};
use tokio::time::{Instant, MissedTickBehavior};
use tokio_util::sync::{CancellationToken, DropGuard};

use super::{HealthResult, Target};
use crate::state::app::{HealthCheck, HealthCheckProtocol, Timestamp};

/// Marathon's `DefaultFirstHealthCheckAfter`: a new target is first probed
/// after `min(intervalSeconds, this)`.
pub const FIRST_CHECK_AFTER_SECONDS: u32 = 5;

/// The cause of every HTTPS check's failure: reqwest is built without TLS
/// here, and the workspace adds no TLS stack.
pub const TLS_UNSUPPORTED: &str = "HTTPS health checks need TLS support, which this build lacks";

/// Results waiting for the reconcile loop before probes block on sending.
const RESULT_BUFFER: usize = 1024;

/// Why a probe failed; its `Display` is the result's `cause`.
#[derive(Debug, thiserror::Error)]
pub enum CheckError {
    /// An HTTP answer outside 200–399 (`500 Internal Server Error`, as
    /// Marathon words it).
    #[error("{0}")]
    Status(StatusCode),
    /// No answer, or no connection, within `timeoutSeconds`.
    #[error("no answer within {0:?}")]
    Timeout(Duration),
    /// The HTTP request failed: refused, reset, malformed answer, ….
    #[error("GET {url} failed: {message}")]
    Http {
        /// The probed URL.
        url: String,
        /// reqwest's error with its causes.
        message: String,
    },
    /// The TCP connection failed.
    #[error("cannot connect to {address}: {source}")]
    Connect {
        /// `host:port`.
        address: String,
        /// What the connect returned.
        #[source]
        source: std::io::Error,
    },
    /// An HTTPS check in a build without TLS.
    #[error("{}", TLS_UNSUPPORTED)]
    TlsUnsupported,
}

/// How a [`HealthChecker`] runs.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Options {
    /// Probes in flight at once, over all targets
    /// (`--max_concurrent_marathon_health_checks`, default 256); at least 1.
    pub max_concurrent: usize,
    /// How long one second of a check's `intervalSeconds` and
    /// `timeoutSeconds` lasts: one second, except in tests.
    pub second: Duration,
}

impl Options {
    /// Real seconds and `max_concurrent` probes at once.
    pub fn new(max_concurrent: usize) -> Options {
        Options {
            max_concurrent,
            second: Duration::from_secs(1),
        }
    }
}

/// When a target is probed, and how long a probe may take.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Schedule {
    /// From the target's arrival to its first probe:
    /// `min(interval, FIRST_CHECK_AFTER_SECONDS)`.
    pub first: Duration,
    /// Between probes (`intervalSeconds`, at least one second).
    pub interval: Duration,
    /// Per probe, once it may start (`timeoutSeconds`, at least one
    /// second).
    pub timeout: Duration,
}

impl Schedule {
    /// The schedule of `check` when a second lasts `second`.
    pub fn of(check: &HealthCheck, second: Duration) -> Schedule {
        // A zero "second" would make the interval zero, which tokio refuses.
        let second = second.max(Duration::from_millis(1));
        let interval = second * check.interval_seconds.max(1);
        Schedule {
            first: interval.min(second * FIRST_CHECK_AFTER_SECONDS),
            interval,
            timeout: second * check.timeout_seconds.max(1),
        }
    }
}

/// Runs Marathon-level health checks against the targets it was last given
/// and sends a [`HealthResult`] per probe. Cloning gives another handle to
/// the same runner; dropping the last handle, or cancelling the shutdown
/// token, stops every probe, after which the result channel ends.
#[derive(Clone)]
pub struct HealthChecker {
    inner: Arc<Inner>,
}

struct Inner {
    shared: Arc<Shared>,
    handle: Handle,
    /// Parent of every probe's token; a child of the shutdown token,
    /// cancelled when the last handle goes.
    stop_all: CancellationToken,
    probes: Mutex<Probes>,
}

/// What probes share.
struct Shared {
    client: reqwest::Client,
    permits: Semaphore,
    second: Duration,
}

struct Probes {
    /// `None` once shut down: no new probes, and the channel can end.
    results: Option<mpsc::Sender<HealthResult>>,
    running: HashMap<(String, usize), Probe>,
}

/// A target being probed; dropping it stops its task.
struct Probe {
    target: Target,
    _stop: DropGuard,
}

impl Drop for Inner {
    fn drop(&mut self) {
        self.stop_all.cancel();
    }
}

impl HealthChecker {
    /// A runner with real seconds and at most `max_concurrent` probes in
    /// flight, plus the channel its results arrive on. Must be called
    /// within a tokio runtime.
    pub fn spawn(
        max_concurrent: usize,
        shutdown: CancellationToken,
    ) -> (HealthChecker, mpsc::Receiver<HealthResult>) {
        HealthChecker::spawn_with(Options::new(max_concurrent), shutdown)
    }

    /// [`HealthChecker::spawn`] with every option.
    pub fn spawn_with(
        options: Options,
        shutdown: CancellationToken,
    ) -> (HealthChecker, mpsc::Receiver<HealthResult>) {
        let (tx, rx) = mpsc::channel(RESULT_BUFFER);
        let client = reqwest::Client::builder()
            // Marathon counts a 3xx as healthy and does not follow it.
            .redirect(reqwest::redirect::Policy::none())
            // Tasks are reached directly, never through the scheduler's
            // HTTP_PROXY.
            .no_proxy()
            // One connection per probe, closed after it: the semaphore then
            // bounds open sockets, not just requests.
            .pool_max_idle_per_host(0)
            .tcp_nodelay(true)
            .build()
            .expect("static reqwest config is valid");
        let permits = options.max_concurrent.clamp(1, Semaphore::MAX_PERMITS);
        let inner = Arc::new(Inner {
            shared: Arc::new(Shared {
                client,
                permits: Semaphore::new(permits),
                second: options.second,
            }),
            handle: Handle::current(),
            stop_all: shutdown.child_token(),
            probes: Mutex::new(Probes {
                results: Some(tx),
                running: HashMap::new(),
            }),
        });
        let stop_all = inner.stop_all.clone();
        let weak = Arc::downgrade(&inner);
        inner.handle.spawn(async move {
            stop_all.cancelled().await;
            if let Some(inner) = weak.upgrade() {
                let mut probes = inner.lock();
                probes.results = None;
                probes.running.clear();
            }
        });
        (HealthChecker { inner }, rx)
    }

    /// Makes `targets` the whole set to probe. Targets no longer present
    /// stop being probed; new ones get their first probe after
    /// [`Schedule::first`]; a target equal to one already running keeps its
    /// schedule, while a changed one (same task and check index, other
    /// fields differ) starts over. Targets of Mesos-level checks are
    /// ignored; of two with the same key, the last wins. Does nothing after
    /// shutdown.
    pub fn set_targets(&self, targets: Vec<Target>) {
        let mut wanted: HashMap<(String, usize), Target> = targets
            .into_iter()
            .filter(|t| !t.check.protocol.is_mesos())
            .map(|t| ((t.task_id.clone(), t.check_index), t))
            .collect();
        let mut probes = self.inner.lock();
        let Some(results) = probes.results.clone() else {
            return;
        };
        let before = probes.running.len();
        probes
            .running
            .retain(|key, probe| wanted.get(key) == Some(&probe.target));
        let kept = probes.running.len();
        wanted.retain(|key, _| !probes.running.contains_key(key));
        let started = wanted.len();
        for (key, target) in wanted {
            let stop = self.inner.stop_all.child_token();
            self.inner.handle.spawn(probe_loop(
                target.clone(),
                Arc::clone(&self.inner.shared),
                results.clone(),
                stop.clone(),
            ));
            probes.running.insert(
                key,
                Probe {
                    target,
                    _stop: stop.drop_guard(),
                },
            );
        }
        if started > 0 || kept < before {
            tracing::debug!(
                started,
                stopped = before - kept,
                total = probes.running.len(),
                "health check targets updated"
            );
        }
    }

    /// How many targets are being probed.
    pub fn target_count(&self) -> usize {
        self.inner.lock().running.len()
    }
}

impl Inner {
    fn lock(&self) -> std::sync::MutexGuard<'_, Probes> {
        // A panic while holding the lock leaves the map consistent.
        self.probes
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner)
    }
}

/// Probes one target on its schedule until `stop` is cancelled or nobody
/// listens for results.
async fn probe_loop(
    target: Target,
    shared: Arc<Shared>,
    results: mpsc::Sender<HealthResult>,
    stop: CancellationToken,
) {
    let schedule = Schedule::of(&target.check, shared.second);
    let mut ticks = tokio::time::interval_at(Instant::now() + schedule.first, schedule.interval);
    // A probe that waited long for a permit does not cause a burst after.
    ticks.set_missed_tick_behavior(MissedTickBehavior::Delay);
    loop {
        tokio::select! {
            biased;
            () = stop.cancelled() => return,
            _ = ticks.tick() => {}
        }
        let outcome = tokio::select! {
            biased;
            () = stop.cancelled() => return,
            outcome = probe(&target, schedule.timeout, &shared) => outcome,
        };
        // An ignored 1xx answer: no verdict this time.
        let Some(outcome) = outcome else { continue };
        let result = HealthResult {
            task_id: target.task_id.clone(),
            check_index: target.check_index,
            alive: outcome.is_ok(),
            cause: outcome.err().map(|e| e.to_string()),
            at: Timestamp::now(),
        };
        tracing::debug!(
            task_id = %result.task_id,
            check_index = result.check_index,
            alive = result.alive,
            cause = result.cause.as_deref().unwrap_or(""),
            "health check result"
        );
        tokio::select! {
            biased;
            () = stop.cancelled() => return,
            sent = results.send(result) => if sent.is_err() { return },
        }
    }
}

/// One probe of `target`: `None` when the answer is no verdict (an ignored
/// 1xx).
async fn probe(
    target: &Target,
    timeout: Duration,
    shared: &Shared,
) -> Option<Result<(), CheckError>> {
    let check = &target.check;
    match check.protocol {
        HealthCheckProtocol::Https => Some(Err(CheckError::TlsUnsupported)),
        HealthCheckProtocol::Http => {
            let _permit = shared.permits.acquire().await.ok()?;
            let url = http_url(&target.host, target.port, check.path.as_deref());
            let answer = shared.client.get(&url).timeout(timeout).send().await;
            match answer {
                Ok(response) => http_outcome(response.status(), check.ignore_http1xx == Some(true)),
                Err(e) if e.is_timeout() => Some(Err(CheckError::Timeout(timeout))),
                Err(e) => Some(Err(CheckError::Http {
                    url,
                    message: error_chain(&e),
                })),
            }
        }
        HealthCheckProtocol::Tcp => {
            let _permit = shared.permits.acquire().await.ok()?;
            let host = target.host.as_str();
            let connect = TcpStream::connect((host, target.port));
            Some(match tokio::time::timeout(timeout, connect).await {
                // The stream is dropped, so the connection closes at once.
                Ok(Ok(_stream)) => Ok(()),
                Ok(Err(source)) => Err(CheckError::Connect {
                    address: host_port(host, target.port),
                    source,
                }),
                Err(_) => Err(CheckError::Timeout(timeout)),
            })
        }
        // Run by the agent; `set_targets` does not start these.
        HealthCheckProtocol::Command
        | HealthCheckProtocol::MesosHttp
        | HealthCheckProtocol::MesosHttps
        | HealthCheckProtocol::MesosTcp => None,
    }
}

/// Marathon's verdict on an HTTP status: 200–399 passes; with
/// `ignoreHttp1xx` a 1xx is no verdict (`None`); anything else fails.
fn http_outcome(status: StatusCode, ignore_http1xx: bool) -> Option<Result<(), CheckError>> {
    match status.as_u16() {
        200..=399 => Some(Ok(())),
        100..=199 if ignore_http1xx => None,
        _ => Some(Err(CheckError::Status(status))),
    }
}

/// `http://host:port/path`, with the path made absolute as Marathon does
/// and an IPv6 host bracketed.
fn http_url(host: &str, port: u16, path: Option<&str>) -> String {
    let path = path.unwrap_or("");
    let slash = if path.starts_with('/') { "" } else { "/" };
    format!("http://{}{slash}{path}", host_port(host, port))
}

fn host_port(host: &str, port: u16) -> String {
    if host.contains(':') && !host.starts_with('[') {
        format!("[{host}]:{port}")
    } else {
        format!("{host}:{port}")
    }
}

/// An error and its sources, `: `-joined (reqwest's own message is only
/// "error sending request for url (…)").
fn error_chain(e: &dyn std::error::Error) -> String {
    let mut message = e.to_string();
    let mut source = e.source();
    while let Some(s) = source {
        message.push_str(": ");
        message.push_str(&s.to_string());
        source = s.source();
    }
    message
}

#[cfg(test)]
mod tests;
