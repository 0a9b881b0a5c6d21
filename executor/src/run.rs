//! The event loop: connects the [`Executor`] state machine to the agent, to
//! the task processes and to the clock.
//!
//! One `select!` waits on whichever comes first: the connection (a backoff
//! timer, a SUBSCRIBE in flight, or the event stream), a task process
//! exiting, a health check finishing, the next kill, health check or exit
//! deadline, the next load report ([`crate::load`]), or SIGTERM/SIGINT. UPDATE calls go out through an
//! `UpdateSender` per connection, one at a time so the agent sees each
//! task's updates in order. Health checks run as tokio tasks in
//! [`Probes`], at most one per task.
//!
//! Reconnecting: the first SUBSCRIBE is retried for up to
//! [`REGISTRATION_TIMEOUT`] (the agent destroys executors that do not
//! register within its `--executor_registration_timeout`, 1 min by
//! default). After a lost connection, with checkpointing, SUBSCRIBE is
//! retried after a random wait in `[BACKOFF_FLOOR, MESOS_SUBSCRIPTION_BACKOFF_MAX]`
//! until `MESOS_RECOVERY_TIMEOUT`; without it the tasks are killed.

use std::future::Future;
use std::pin::Pin;
use std::time::Duration;

use futures::StreamExt;
use mesos_proto::executor::Call;
use rand::Rng;
use tokio::signal::unix::{Signal, SignalKind, signal};
use tokio::sync::mpsc;
use tokio::task::JoinHandle;
use tokio::time::{Instant, sleep_until};

use crate::agent::{AgentClient, AgentError, EventStream};
use crate::config::Config;
use crate::executor::{Executor, Flow, Outcome, Reconnect};
use crate::health::probe::Probes;
use crate::load;
use crate::task::ProcessLauncher;

/// How long the first SUBSCRIBE is retried.
pub const REGISTRATION_TIMEOUT: Duration = Duration::from_secs(60);
/// The shortest wait between SUBSCRIBE attempts, so a tiny
/// `MESOS_SUBSCRIPTION_BACKOFF_MAX` cannot make a busy loop.
pub const BACKOFF_FLOOR: Duration = Duration::from_millis(100);
/// How often to send HEARTBEAT calls (as the C++ executor library does).
pub const HEARTBEAT_INTERVAL: Duration = Duration::from_secs(30 * 60);
/// Attempts at delivering one UPDATE before leaving it to the next
/// SUBSCRIBE.
const UPDATE_ATTEMPTS: u32 = 5;
const UPDATE_RETRY_DELAY: Duration = Duration::from_millis(500);

/// The executor could not even start.
#[derive(Debug, thiserror::Error)]
pub enum RunError {
    /// The HTTP client could not be built.
    #[error(transparent)]
    Agent(#[from] AgentError),
    /// The HTTP client for health checks could not be built.
    #[error("building the health check HTTP client failed: {0}")]
    HealthClient(#[source] reqwest::Error),
    /// Signal handlers could not be installed.
    #[error("installing signal handlers failed: {0}")]
    Signals(#[source] std::io::Error),
}

/// Runs the executor until it is done; the [`Outcome`] gives the exit code.
pub async fn run(config: Config) -> Result<Outcome, RunError> {
    let client = AgentClient::new(
        config.agent_url(),
        config.encoding,
        config.auth_token.clone(),
    )?;
    let (exits_tx, mut exits) = mpsc::unbounded_channel();
    let mut core = Executor::new(&config, ProcessLauncher::new(exits_tx));
    let mut signals = Signals::new().map_err(RunError::Signals)?;
    // Dropped on return, which cancels the checks still running.
    let mut probes = Probes::new().map_err(RunError::HealthClient)?;

    tracing::info!(
        agent = %config.agent_endpoint,
        encoding = %config.encoding,
        checkpoint = config.checkpoint,
        sandbox = %config.sandbox.display(),
        "subscribing"
    );
    let mut link = Link::Subscribing(subscribe(&client, core.subscribe_call()));
    let mut retry = Retry {
        backoff_max: config.subscription_backoff_max,
        give_up_at: Instant::now() + REGISTRATION_TIMEOUT,
    };
    let mut sender: Option<UpdateSender> = None;
    let mut meter = load::Meter::default();
    let mut load_ticks = config.load_report_interval.map(|every| {
        let mut ticks = tokio::time::interval(every);
        ticks.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
        ticks
    });

    loop {
        let outbox = core.take_outbox();
        match &sender {
            Some(sender) => outbox.into_iter().for_each(|call| sender.send(call)),
            // Not live: the updates stay pending for the next SUBSCRIBE.
            None => drop(outbox),
        }
        for action in core.take_health_actions() {
            probes.apply(action);
        }
        if let Some(outcome) = core.outcome(Instant::now()) {
            core.kill_all_now();
            return Ok(outcome);
        }
        if !core.wants_connection() && !matches!(link, Link::Connected(_)) {
            link = Link::Down;
        }
        let deadline = core.next_deadline();

        tokio::select! {
            step = link.step() => {
                let now = Instant::now();
                match step {
                    Step::Attempt => {
                        tracing::info!("re-subscribing");
                        link = Link::Subscribing(subscribe(&client, core.subscribe_call()));
                    }
                    Step::Subscribed(stream) => {
                        link = Link::Connected(stream);
                        sender = Some(UpdateSender::start(client.clone(), core.heartbeat_call()));
                    }
                    Step::Failed(err) => {
                        match retry.next_attempt(now).filter(|_| err.is_retryable()) {
                            Some(at) => {
                                tracing::warn!(error = %err, "SUBSCRIBE failed; will retry");
                                link = Link::Backoff(at);
                            }
                            None => {
                                link = Link::Down;
                                let reason = if err.is_retryable() {
                                    format!("no subscription before the deadline; last error: {err}")
                                } else {
                                    format!("SUBSCRIBE failed: {err}")
                                };
                                core.lose_agent(reason, now);
                            }
                        }
                    }
                    Step::Event(event) => {
                        if core.handle_event(*event, now) == Flow::Disconnect {
                            sender = None;
                            link = reconnect(&mut core, now, &config, &mut retry);
                        }
                    }
                    Step::Closed(why) => {
                        tracing::warn!(%why, "connection to the agent lost");
                        sender = None;
                        link = reconnect(&mut core, now, &config, &mut retry);
                    }
                }
            }
            Some((task_id, termination)) = exits.recv() => {
                core.on_exit(&task_id, termination, Instant::now());
            }
            finished = probes.next() => core.on_health_result(finished, Instant::now()),
            () = sleep_until_some(deadline) => core.on_timer(Instant::now()),
            Some(()) = next_tick(&mut load_ticks) => {
                if let Some(sender) = &sender {
                    let tasks = core.running_tasks();
                    let pgids: Vec<i32> = tasks.iter().map(|t| t.pgid).collect();
                    let samples = load::sample_groups(&pgids);
                    if let Some(report) = meter.report(&tasks, &samples, load::host_load(), Instant::now()) {
                        sender.send(core.message_call(report));
                    }
                }
            }
            name = signals.recv() => {
                tracing::info!(signal = name, "shutting down on signal");
                core.shutdown(Instant::now());
            }
        }
    }
}

/// After a lost connection: back off and SUBSCRIBE again, or stop.
fn reconnect(
    core: &mut Executor<ProcessLauncher>,
    now: Instant,
    config: &Config,
    retry: &mut Retry,
) -> Link {
    // A new recovery window opens only after a real subscription, so an
    // agent that accepts SUBSCRIBE and hangs up at once cannot keep us
    // retrying forever.
    let was_subscribed = core.is_live();
    match core.on_disconnected(now) {
        Reconnect::No => Link::Down,
        Reconnect::Yes => {
            if was_subscribed {
                retry.give_up_at = now + config.recovery_timeout;
            }
            match retry.next_attempt(now) {
                Some(at) => Link::Backoff(at),
                None => {
                    core.lose_agent("no subscription before the deadline".into(), now);
                    Link::Down
                }
            }
        }
    }
}

/// When to SUBSCRIBE again, and until when.
struct Retry {
    backoff_max: Duration,
    /// End of the registration window, or of the recovery window
    /// (`MESOS_RECOVERY_TIMEOUT`) after a lost subscription.
    give_up_at: Instant,
}

impl Retry {
    /// The time of the next attempt; `None` once the window is over.
    fn next_attempt(&self, now: Instant) -> Option<Instant> {
        let at = now + backoff(self.backoff_max);
        (at < self.give_up_at).then_some(at)
    }
}

/// A uniformly random wait in `[0, max]`, but at least [`BACKOFF_FLOOR`].
fn backoff(max: Duration) -> Duration {
    let jitter = rand::rng().random_range(Duration::ZERO..=max);
    jitter.max(BACKOFF_FLOOR)
}

/// The next load-report tick; never, without reports.
async fn next_tick(ticks: &mut Option<tokio::time::Interval>) -> Option<()> {
    match ticks {
        Some(ticks) => {
            ticks.tick().await;
            Some(())
        }
        None => std::future::pending().await,
    }
}

async fn sleep_until_some(deadline: Option<Instant>) {
    match deadline {
        Some(deadline) => sleep_until(deadline).await,
        None => std::future::pending().await,
    }
}

type Subscribing = Pin<Box<dyn Future<Output = Result<EventStream, AgentError>> + Send>>;

fn subscribe(client: &AgentClient, call: Call) -> Subscribing {
    let client = client.clone();
    Box::pin(async move { client.subscribe(&call).await })
}

/// The connection to the agent.
enum Link {
    /// Waiting before the next SUBSCRIBE.
    Backoff(Instant),
    /// A SUBSCRIBE in flight.
    Subscribing(Subscribing),
    /// Reading events.
    Connected(EventStream),
    /// No connection wanted any more.
    Down,
}

enum Step {
    Attempt,
    Subscribed(EventStream),
    Failed(AgentError),
    // Events are large (a LAUNCH holds a whole TaskInfo); box to keep the
    // other steps small.
    Event(Box<mesos_proto::executor::Event>),
    Closed(String),
}

impl Link {
    /// Waits for the connection's next step. Cancel-safe: `select!` may drop
    /// it and call again.
    async fn step(&mut self) -> Step {
        match self {
            Link::Backoff(at) => {
                sleep_until(*at).await;
                Step::Attempt
            }
            Link::Subscribing(future) => match future.await {
                Ok(stream) => Step::Subscribed(stream),
                Err(e) => Step::Failed(e),
            },
            Link::Connected(stream) => match stream.next().await {
                Some(Ok(event)) => Step::Event(Box::new(event)),
                Some(Err(e)) => Step::Closed(e.to_string()),
                None => Step::Closed("end of stream".into()),
            },
            Link::Down => std::future::pending().await,
        }
    }
}

/// Sends one connection's calls in order on the call client. Dropping it
/// stops it: whatever it had not sent goes into the next SUBSCRIBE.
struct UpdateSender {
    queue: mpsc::UnboundedSender<Call>,
    task: JoinHandle<()>,
}

impl UpdateSender {
    fn start(client: AgentClient, heartbeat: Call) -> UpdateSender {
        let (queue, calls) = mpsc::unbounded_channel();
        let task = tokio::spawn(send_loop(client, calls, heartbeat));
        UpdateSender { queue, task }
    }

    fn send(&self, call: Call) {
        // The loop only ends when this sender is dropped.
        let _ = self.queue.send(call);
    }
}

impl Drop for UpdateSender {
    fn drop(&mut self) {
        self.task.abort();
    }
}

async fn send_loop(client: AgentClient, mut calls: mpsc::UnboundedReceiver<Call>, heartbeat: Call) {
    let mut heartbeats =
        tokio::time::interval_at(Instant::now() + HEARTBEAT_INTERVAL, HEARTBEAT_INTERVAL);
    loop {
        tokio::select! {
            call = calls.recv() => match call {
                Some(call) => deliver(&client, &call).await,
                None => return,
            },
            _ = heartbeats.tick() => {
                if let Err(e) = client.call(&heartbeat).await {
                    tracing::debug!(error = %e, "HEARTBEAT failed");
                }
            }
        }
    }
}

/// Sends one call, retrying while the agent could not have received it.
async fn deliver(client: &AgentClient, call: &Call) {
    let status = call.update.as_ref().map(|u| &u.status);
    let task_id = status.map_or("", |s| s.task_id.value.as_str());
    let state = status.map_or("", |s| s.state().as_str_name());
    for attempt in 1..=UPDATE_ATTEMPTS {
        match client.call(call).await {
            Ok(()) => {
                tracing::debug!(task_id, state, "update sent");
                return;
            }
            Err(e) if e.is_retryable() && attempt < UPDATE_ATTEMPTS => {
                tracing::warn!(task_id, state, error = %e, "sending the update failed; retrying");
                tokio::time::sleep(UPDATE_RETRY_DELAY).await;
            }
            Err(e) => {
                tracing::error!(task_id, state, error = %e,
                    "update not delivered; it goes into the next SUBSCRIBE");
                return;
            }
        }
    }
}

/// SIGTERM and SIGINT, both meaning "shut down like SHUTDOWN".
struct Signals {
    term: Signal,
    int: Signal,
}

impl Signals {
    fn new() -> std::io::Result<Signals> {
        Ok(Signals {
            term: signal(SignalKind::terminate())?,
            int: signal(SignalKind::interrupt())?,
        })
    }

    async fn recv(&mut self) -> &'static str {
        tokio::select! {
            Some(()) = self.term.recv() => "SIGTERM",
            Some(()) = self.int.recv() => "SIGINT",
            // Both streams closed: no signal can come any more.
            else => std::future::pending().await,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn backoff_stays_within_its_bounds() {
        for _ in 0..200 {
            let d = backoff(Duration::from_secs(2));
            assert!(d >= BACKOFF_FLOOR && d <= Duration::from_secs(2), "{d:?}");
        }
        assert_eq!(backoff(Duration::ZERO), BACKOFF_FLOOR);
    }
}
