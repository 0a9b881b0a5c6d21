//! The I/O part of health and readiness checking: one timer per [`Target`]
//! or [`ReadinessTarget`], probes over HTTP, HTTPS or TCP under a shared
//! bound on concurrency, results on a channel per kind.
//!
//! Each target gets a task of its own, started by
//! [`HealthChecker::set_targets`] or [`HealthChecker::set_readiness_targets`]
//! and stopped (through a cancellation token dropped with its entry) when the
//! target disappears or changes. A probe first waits for a permit of the
//! shared semaphore, so however many targets of either kind are due, at most
//! `max_concurrent` sockets are open for checks; its timeout starts once it
//! holds the permit.
//!
//! HTTP goes through reqwest; HTTPS through [`https::HttpsClient`] (rustls
//! with ring, certificates not verified, as in Marathon), with the same
//! verdicts and the same kinds of causes.

use std::collections::HashMap;
use std::fmt::Debug;
use std::future::Future;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use baton_probe::host_port;
use reqwest::StatusCode;
use reqwest::header::CONTENT_TYPE;
use tokio::runtime::Handle;
use tokio::sync::{Semaphore, mpsc};
use tokio::time::MissedTickBehavior;
use tokio_util::sync::{CancellationToken, DropGuard};

use super::{HealthResult, HttpResponse, MAX_BODY_BYTES, ReadinessResult, ReadinessTarget, Target};
use crate::state::app::{HealthCheck, HealthCheckProtocol, ReadinessCheck, ReadinessProtocol};
use baton_probe::{HttpsClient, error_chain};

/// Marathon's `DefaultFirstHealthCheckAfter`: a new target is first probed
/// after `min(intervalSeconds, this)`.
pub const FIRST_CHECK_AFTER_SECONDS: u32 = 5;

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
    /// The HTTP(S) request failed: refused, reset, TLS handshake failed,
    /// malformed answer, ….
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
    /// Where results get their time.
    pub clock: crate::clock::Clock,
}

impl Options {
    /// Real seconds and `max_concurrent` probes at once.
    pub fn new(max_concurrent: usize) -> Options {
        Options {
            max_concurrent,
            second: Duration::from_secs(1),
            clock: crate::clock::Clock::wall(),
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

    /// The schedule of a readiness check when a second lasts `second`: the
    /// first probe at once (as Marathon's), then every `intervalSeconds`,
    /// each bounded by `timeoutSeconds` (both at least one second).
    pub fn of_readiness(check: &ReadinessCheck, second: Duration) -> Schedule {
        let second = second.max(Duration::from_millis(1));
        Schedule {
            first: Duration::ZERO,
            interval: second * check.interval_seconds.max(1),
            timeout: second * check.timeout_seconds.max(1),
        }
    }
}

/// Runs Marathon-level health checks against the targets it was last given
/// and sends a [`HealthResult`] per probe; when spawned by
/// [`HealthChecker::spawn_with_readiness`], runs readiness checks too and
/// sends a [`ReadinessResult`] per probe on a second channel. Both kinds
/// share one client and one bound on concurrent probes. Cloning gives
/// another handle to the same runner; dropping the last handle, or
/// cancelling the shutdown token, stops every probe, after which the result
/// channels end.
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
    /// For HTTP.
    client: reqwest::Client,
    /// For HTTPS.
    https: HttpsClient,
    permits: Semaphore,
    second: Duration,
    clock: crate::clock::Clock,
}

struct Probes {
    /// `None` once shut down: no new probes, and the channel can end.
    results: Option<mpsc::Sender<HealthResult>>,
    /// `None` once shut down, or when spawned without readiness results.
    readiness_results: Option<mpsc::Sender<ReadinessResult>>,
    running: HashMap<(String, usize), Running<Target>>,
    readiness: HashMap<(String, usize), Running<ReadinessTarget>>,
}

/// A target being probed; dropping it stops its task.
struct Running<T> {
    target: T,
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

    /// [`HealthChecker::spawn`] with every option. A runner spawned so
    /// runs no readiness checks ([`HealthChecker::spawn_with_readiness`]
    /// does).
    pub fn spawn_with(
        options: Options,
        shutdown: CancellationToken,
    ) -> (HealthChecker, mpsc::Receiver<HealthResult>) {
        let (tx, rx) = mpsc::channel(RESULT_BUFFER);
        (HealthChecker::start(options, shutdown, tx, None), rx)
    }

    /// [`HealthChecker::spawn_with`], plus the channel the results of
    /// readiness checks ([`HealthChecker::set_readiness_targets`]) arrive
    /// on.
    pub fn spawn_with_readiness(
        options: Options,
        shutdown: CancellationToken,
    ) -> (
        HealthChecker,
        mpsc::Receiver<HealthResult>,
        mpsc::Receiver<ReadinessResult>,
    ) {
        let (tx, rx) = mpsc::channel(RESULT_BUFFER);
        let (readiness_tx, readiness_rx) = mpsc::channel(RESULT_BUFFER);
        let checker = HealthChecker::start(options, shutdown, tx, Some(readiness_tx));
        (checker, rx, readiness_rx)
    }

    fn start(
        options: Options,
        shutdown: CancellationToken,
        results: mpsc::Sender<HealthResult>,
        readiness_results: Option<mpsc::Sender<ReadinessResult>>,
    ) -> HealthChecker {
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
                https: HttpsClient::new(),
                permits: Semaphore::new(permits),
                second: options.second,
                clock: options.clock,
            }),
            handle: Handle::current(),
            stop_all: shutdown.child_token(),
            probes: Mutex::new(Probes {
                results: Some(results),
                readiness_results,
                running: HashMap::new(),
                readiness: HashMap::new(),
            }),
        });
        let stop_all = inner.stop_all.clone();
        let weak = Arc::downgrade(&inner);
        inner.handle.spawn(async move {
            stop_all.cancelled().await;
            if let Some(inner) = weak.upgrade() {
                let mut probes = inner.lock();
                probes.results = None;
                probes.readiness_results = None;
                probes.running.clear();
                probes.readiness.clear();
            }
        });
        HealthChecker { inner }
    }

    /// Makes `targets` the whole set to probe. Targets no longer present
    /// stop being probed; new ones get their first probe after
    /// [`Schedule::first`]; a target equal to one already running keeps its
    /// schedule, while a changed one (same task and check index, other
    /// fields differ) starts over. Targets of Mesos-level checks are
    /// ignored; of two with the same key, the last wins. Does nothing after
    /// shutdown.
    pub fn set_targets(&self, targets: Vec<Target>) {
        let wanted: HashMap<(String, usize), Target> = targets
            .into_iter()
            .filter(|t| !t.check.protocol.is_mesos())
            .map(|t| ((t.task_id.clone(), t.check_index), t))
            .collect();
        let mut probes = self.inner.lock();
        let Some(results) = probes.results.clone() else {
            return;
        };
        let (started, stopped) = self.replace(&mut probes.running, wanted, &results);
        if started > 0 || stopped > 0 {
            tracing::debug!(
                started,
                stopped,
                total = probes.running.len(),
                "health check targets updated"
            );
        }
    }

    /// Makes `targets` the whole set of readiness checks to run, as
    /// [`HealthChecker::set_targets`] does for health checks (the two sets
    /// are independent). A new target is first probed at once, then every
    /// `intervalSeconds` until a probe finds it ready: as in Marathon, that
    /// result is final, and the target, while it stays in the set, is not
    /// probed again. Does nothing after shutdown, or on a runner spawned
    /// without readiness results ([`HealthChecker::spawn_with`]).
    pub fn set_readiness_targets(&self, targets: Vec<ReadinessTarget>) {
        let wanted: HashMap<(String, usize), ReadinessTarget> = targets
            .into_iter()
            .map(|t| ((t.task_id.clone(), t.check_index), t))
            .collect();
        let mut probes = self.inner.lock();
        if probes.results.is_none() {
            return;
        }
        let Some(results) = probes.readiness_results.clone() else {
            if !wanted.is_empty() {
                tracing::warn!(
                    targets = wanted.len(),
                    "readiness targets ignored: the checker has no readiness channel"
                );
            }
            return;
        };
        let (started, stopped) = self.replace(&mut probes.readiness, wanted, &results);
        if started > 0 || stopped > 0 {
            tracing::debug!(
                started,
                stopped,
                total = probes.readiness.len(),
                "readiness check targets updated"
            );
        }
    }

    /// Makes `wanted` the targets in `running`: stops those absent or
    /// changed, starts those new or changed, keeps the rest. Returns how
    /// many started and stopped.
    fn replace<P: Probe>(
        &self,
        running: &mut HashMap<(String, usize), Running<P>>,
        mut wanted: HashMap<(String, usize), P>,
        results: &mpsc::Sender<P::Output>,
    ) -> (usize, usize) {
        let before = running.len();
        running.retain(|key, probe| wanted.get(key) == Some(&probe.target));
        let stopped = before - running.len();
        wanted.retain(|key, _| !running.contains_key(key));
        let started = wanted.len();
        for (key, target) in wanted {
            let stop = self.inner.stop_all.child_token();
            self.inner.handle.spawn(probe_loop(
                target.clone(),
                Arc::clone(&self.inner.shared),
                results.clone(),
                stop.clone(),
            ));
            running.insert(
                key,
                Running {
                    target,
                    _stop: stop.drop_guard(),
                },
            );
        }
        (started, stopped)
    }

    /// How many health-check targets are being probed.
    pub fn target_count(&self) -> usize {
        self.inner.lock().running.len()
    }

    /// How many readiness targets are being probed or found ready.
    pub fn readiness_target_count(&self) -> usize {
        self.inner.lock().readiness.len()
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

/// What a target kind needs for [`probe_loop`] to run it.
trait Probe: Clone + PartialEq + Send + Sync + 'static {
    /// What a probe sends.
    type Output: Debug + Send + 'static;
    /// When it is probed.
    fn schedule(&self, second: Duration) -> Schedule;
    /// One probe: `None` when it yields no result this time.
    fn run(
        &self,
        timeout: Duration,
        shared: &Shared,
    ) -> impl Future<Output = Option<Self::Output>> + Send;
    /// Whether `output` ends the probing of this target.
    fn is_final(output: &Self::Output) -> bool;
}

impl Probe for Target {
    type Output = HealthResult;

    fn schedule(&self, second: Duration) -> Schedule {
        Schedule::of(&self.check, second)
    }

    async fn run(&self, timeout: Duration, shared: &Shared) -> Option<HealthResult> {
        // An ignored 1xx answer: no verdict this time.
        let outcome = probe(self, timeout, shared).await?;
        let result = HealthResult {
            task_id: self.task_id.clone(),
            check_index: self.check_index,
            alive: outcome.is_ok(),
            cause: outcome.err().map(|e| e.to_string()),
            at: shared.clock.now(),
        };
        tracing::debug!(
            task_id = %result.task_id,
            check_index = result.check_index,
            alive = result.alive,
            cause = result.cause.as_deref().unwrap_or(""),
            "health check result"
        );
        Some(result)
    }

    fn is_final(_: &HealthResult) -> bool {
        false
    }
}

impl Probe for ReadinessTarget {
    type Output = ReadinessResult;

    fn schedule(&self, second: Duration) -> Schedule {
        Schedule::of_readiness(&self.check, second)
    }

    async fn run(&self, timeout: Duration, shared: &Shared) -> Option<ReadinessResult> {
        let result = readiness_probe(self, timeout, shared).await?;
        tracing::debug!(
            task_id = %result.task_id,
            check_index = result.check_index,
            name = %result.name,
            ready = result.ready,
            cause = result.cause.as_deref().unwrap_or(""),
            "readiness check result"
        );
        Some(result)
    }

    fn is_final(result: &ReadinessResult) -> bool {
        result.ready
    }
}

/// Probes one target on its schedule until `stop` is cancelled, nobody
/// listens for results, or a result is final.
async fn probe_loop<P: Probe>(
    target: P,
    shared: Arc<Shared>,
    results: mpsc::Sender<P::Output>,
    stop: CancellationToken,
) {
    let schedule = target.schedule(shared.second);
    let mut ticks =
        tokio::time::interval_at(shared.clock.instant() + schedule.first, schedule.interval);
    // A probe that waited long for a permit does not cause a burst after.
    ticks.set_missed_tick_behavior(MissedTickBehavior::Delay);
    loop {
        tokio::select! {
            biased;
            () = stop.cancelled() => return,
            _ = ticks.tick() => {}
        }
        let result = tokio::select! {
            biased;
            () = stop.cancelled() => return,
            result = target.run(schedule.timeout, &shared) => result,
        };
        let Some(result) = result else { continue };
        let last = P::is_final(&result);
        tokio::select! {
            biased;
            () = stop.cancelled() => return,
            sent = results.send(result) => if sent.is_err() { return },
        }
        if last {
            return;
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
        HealthCheckProtocol::Http | HealthCheckProtocol::Https => {
            let _permit = shared.permits.acquire().await.ok()?;
            let tls = check.protocol == HealthCheckProtocol::Https;
            let url = http_url(tls, &target.host, target.port, check.path.as_deref());
            match get(shared, &url, tls, 0, timeout).await {
                Ok(answer) => http_outcome(answer.status, check.ignore_http1xx == Some(true)),
                Err(e) => Some(Err(e)),
            }
        }
        HealthCheckProtocol::Tcp => {
            let _permit = shared.permits.acquire().await.ok()?;
            Some(
                baton_probe::tcp(&target.host, target.port, timeout)
                    .await
                    .map_err(|e| match e {
                        baton_probe::TcpError::Connect { address, error } => CheckError::Connect {
                            address,
                            source: error,
                        },
                        baton_probe::TcpError::Timeout(limit) => CheckError::Timeout(limit),
                    }),
            )
        }
        // Run by the agent; `set_targets` does not start these.
        HealthCheckProtocol::Command
        | HealthCheckProtocol::MesosHttp
        | HealthCheckProtocol::MesosHttps
        | HealthCheckProtocol::MesosTcp => None,
    }
}

/// One probe of a readiness target: `None` only when the runner is going
/// away (the semaphore closed).
async fn readiness_probe(
    target: &ReadinessTarget,
    timeout: Duration,
    shared: &Shared,
) -> Option<ReadinessResult> {
    let check = &target.check;
    let tls = check.protocol == ReadinessProtocol::Https;
    let url = http_url(tls, &target.host, target.port, Some(&check.path));
    let answer = {
        let _permit = shared.permits.acquire().await.ok()?;
        let max_body = if check.preserve_last_response {
            MAX_BODY_BYTES
        } else {
            0
        };
        let get = get(shared, &url, tls, max_body, timeout);
        // `get`'s timeout covers the body too; this one is a backstop.
        match tokio::time::timeout(timeout, get).await {
            Ok(answer) => answer
                .map(|answer| HttpResponse {
                    status: answer.status.as_u16(),
                    content_type: answer.content_type,
                    body: truncated_utf8(answer.body, MAX_BODY_BYTES),
                })
                .map_err(|e| e.to_string()),
            Err(_) => Err(CheckError::Timeout(timeout).to_string()),
        }
    };
    let (ready, cause, response) = match answer {
        Ok(response) => {
            let ready = check.http_status_codes_for_ready.contains(&response.status);
            let cause = (!ready).then(|| status_text(response.status));
            (ready, cause, response)
        }
        // Marathon's stand-in for a missing answer.
        Err(cause) => {
            let response = HttpResponse {
                status: StatusCode::GATEWAY_TIMEOUT.as_u16(),
                content_type: "text/plain".into(),
                body: format!("Baton could not query {url}: {cause}"),
            };
            (false, Some(cause), response)
        }
    };
    Some(ReadinessResult {
        task_id: target.task_id.clone(),
        check_index: target.check_index,
        name: check.name.clone(),
        ready,
        last_response: check.preserve_last_response.then_some(response),
        cause,
        at: shared.clock.now(),
    })
}

/// What a `GET` answered.
struct Answer {
    status: StatusCode,
    /// The `Content-Type`'s media type ([`media_type`]); empty without one.
    content_type: String,
    /// The body's first bytes, at least `max_body` of them when it has
    /// that many (the rest is not read).
    body: Vec<u8>,
}

/// `GET url` (`https://…` when `tls`) on a connection of its own, bounded
/// by `timeout`, reading the body's first `max_body` bytes.
async fn get(
    shared: &Shared,
    url: &str,
    tls: bool,
    max_body: usize,
    timeout: Duration,
) -> Result<Answer, CheckError> {
    let failed = |message: String| CheckError::Http {
        url: url.to_string(),
        message,
    };
    if tls {
        let parsed = reqwest::Url::parse(url).map_err(|e| failed(e.to_string()))?;
        return match tokio::time::timeout(timeout, shared.https.get(&parsed, max_body)).await {
            Ok(Ok(response)) => Ok(Answer {
                status: response.status(),
                content_type: content_type(response.headers()),
                body: response.into_body(),
            }),
            Ok(Err(e)) => Err(failed(error_chain(&e))),
            Err(_) => Err(CheckError::Timeout(timeout)),
        };
    }
    let failed = |e: reqwest::Error| {
        if e.is_timeout() {
            CheckError::Timeout(timeout)
        } else {
            failed(error_chain(&e))
        }
    };
    let mut response = shared
        .client
        .get(url)
        .timeout(timeout)
        .send()
        .await
        .map_err(failed)?;
    let status = response.status();
    let content_type = content_type(response.headers());
    let mut body = Vec::new();
    while body.len() < max_body {
        match response.chunk().await.map_err(failed)? {
            Some(chunk) => body.extend_from_slice(&chunk),
            None => break,
        }
    }
    Ok(Answer {
        status,
        content_type,
        body,
    })
}

/// The media type of `headers`' `Content-Type`, empty without one.
fn content_type(headers: &reqwest::header::HeaderMap) -> String {
    headers
        .get(CONTENT_TYPE)
        .and_then(|v| v.to_str().ok())
        .map(media_type)
        .unwrap_or_default()
}

/// A `Content-Type` value's media type, lower-cased, without parameters:
/// `Text/HTML; charset=utf-8` → `text/html`.
fn media_type(content_type: &str) -> String {
    let media = content_type.split(';').next().unwrap_or_default();
    media.trim().to_ascii_lowercase()
}

/// At most `max` bytes of `bytes` as text: cut at a character boundary,
/// invalid sequences replaced.
fn truncated_utf8(mut bytes: Vec<u8>, max: usize) -> String {
    if bytes.len() > max {
        bytes.truncate(max);
        // Drop a character the cut split (at most 3 bytes of it).
        if let Err(e) = std::str::from_utf8(&bytes[max.saturating_sub(3)..])
            && e.error_len().is_none()
        {
            bytes.truncate(max.saturating_sub(3) + e.valid_up_to());
        }
    }
    String::from_utf8_lossy(&bytes).into_owned()
}

/// An HTTP status as health-check causes word it: `503 Service
/// Unavailable`.
fn status_text(status: u16) -> String {
    match StatusCode::from_u16(status) {
        Ok(code) => CheckError::Status(code).to_string(),
        Err(_) => status.to_string(),
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

/// `http://host:port/path` (`https://` when `tls`), with the path made
/// absolute as Marathon does and an IPv6 host bracketed.
fn http_url(tls: bool, host: &str, port: u16, path: Option<&str>) -> String {
    let scheme = if tls { "https" } else { "http" };
    let path = path.unwrap_or("");
    let slash = if path.starts_with('/') { "" } else { "/" };
    format!("{scheme}://{}{slash}{path}", host_port(host, port))
}

#[cfg(test)]
mod tests;
