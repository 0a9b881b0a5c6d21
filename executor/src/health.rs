//! Health checks of tasks, per `TaskInfo.health_check` (Mesos `HealthCheck`),
//! the way the Mesos built-in executors run them. For a task with a custom
//! executor Mesos itself checks nothing: the executor must
//! (`shared/reference/mesos-v1-api.md` §3.7, §4.6).
//!
//! This module is pure; [`probe`] holds the I/O of running one check.
//!
//! - [`Spec::parse`] turns a `HealthCheck` into what to probe ([`Probe`])
//!   and when ([`Policy`]), rejecting what Mesos's `validateHealthCheck`
//!   rejects.
//! - [`Checker`] is one task's schedule and verdicts: the first check
//!   `delay_seconds` after the task started, each next one
//!   `interval_seconds` after the previous result, one at a time; a failure
//!   within `grace_period_seconds` of the start (the delay included) is
//!   ignored until a check has passed; every other failure is reported, and
//!   so is the first pass after the start or after failures; after
//!   `consecutive_failures` failures in a row the task is to be killed.
//! - [`Action`] and [`Finished`] are what the executor's state machine and
//!   the event loop exchange: checks to start or cancel, and their results.
//!
//! The host is always the loopback address (the task shares the executor's
//! network). HTTP passes on a status in `statuses` when that list is given,
//! else on 200–399 (as the built-in executors, which follow redirects).
//! HTTPS is judged the same way; as in Mesos (`curl -k`), the task's
//! certificate is not verified.

pub mod probe;

use std::net::{Ipv4Addr, Ipv6Addr, SocketAddr};
use std::time::Duration;

use mesos_proto::v1::{self, health_check, network_info};
use tokio::time::Instant;

use crate::task::{self, CommandSpec};

/// Stand-in for durations too long to matter (an `Infinity` in JSON): about
/// a century, still safe to add to an [`Instant`].
const FOREVER: Duration = Duration::from_secs(100 * 365 * 24 * 3600);

/// A `HealthCheck` baton-executor cannot run; the reason is Mesos's
/// `validateHealthCheck` wording where it has one.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("invalid health check: {0}")]
pub struct InvalidHealthCheck(String);

fn invalid<T>(why: impl Into<String>) -> Result<T, InvalidHealthCheck> {
    Err(InvalidHealthCheck(why.into()))
}

/// What one check does.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Probe {
    /// `GET url`; passes on a status in `statuses`, or on 200–399 when
    /// `statuses` is empty.
    Http {
        /// `http://127.0.0.1:<port><path>` (or `[::1]`).
        url: String,
        /// The statuses that pass; empty means 200–399.
        statuses: Vec<u32>,
    },
    /// `GET url` over TLS, accepting any certificate; passes as
    /// [`Probe::Http`] does.
    Https {
        /// `https://127.0.0.1:<port><path>` (or `[::1]`).
        url: String,
        /// The statuses that pass; empty means 200–399.
        statuses: Vec<u32>,
    },
    /// Passes when a TCP connection to `addr` is established.
    Tcp {
        /// The port on the loopback address.
        addr: SocketAddr,
    },
    /// Runs a command in the task's directory with the task's environment;
    /// passes on exit status 0.
    Command(CommandSpec),
}

impl Probe {
    /// `HTTP`, `HTTPS`, `TCP` or `COMMAND`, for messages.
    pub fn kind(&self) -> &'static str {
        match self {
            Probe::Http { .. } => "HTTP",
            Probe::Https { .. } => "HTTPS",
            Probe::Tcp { .. } => "TCP",
            Probe::Command(_) => "COMMAND",
        }
    }

    /// Whether `status` passes an HTTP check with these `statuses`.
    pub fn http_status_passes(statuses: &[u32], status: u16) -> bool {
        if statuses.is_empty() {
            (200..400).contains(&status)
        } else {
            statuses.contains(&u32::from(status))
        }
    }
}

/// When checks run and what their results mean, from the `HealthCheck`
/// fields (proto defaults in brackets).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Policy {
    /// From the task's start to the first check (`delay_seconds` \[15\]).
    pub delay: Duration,
    /// From one check's result to the next check (`interval_seconds` \[10\]).
    pub interval: Duration,
    /// Bound on one check; `None` for `timeout_seconds` 0 (`[20]`).
    pub timeout: Option<Duration>,
    /// Failures in a row that kill the task (`consecutive_failures` \[3\]).
    pub consecutive_failures: u32,
    /// From the task's start (so the delay included), the time in which
    /// failures are ignored until a check passed
    /// (`grace_period_seconds` \[10\]).
    pub grace_period: Duration,
}

impl Policy {
    /// The policy of `check`, with the proto defaults for unset fields.
    pub fn of(check: &v1::HealthCheck) -> Result<Policy, InvalidHealthCheck> {
        let timeout = seconds("timeout_seconds", check.timeout_seconds())?;
        Ok(Policy {
            delay: seconds("delay_seconds", check.delay_seconds())?,
            interval: seconds("interval_seconds", check.interval_seconds())?,
            timeout: (!timeout.is_zero() && timeout < FOREVER).then_some(timeout),
            consecutive_failures: check.consecutive_failures(),
            grace_period: seconds("grace_period_seconds", check.grace_period_seconds())?,
        })
    }
}

/// A non-negative number of seconds; huge or infinite ones become
/// [`FOREVER`].
fn seconds(field: &str, value: f64) -> Result<Duration, InvalidHealthCheck> {
    if value.is_nan() || value < 0.0 {
        return invalid(format!("Expecting '{field}' to be non-negative"));
    }
    Ok(Duration::try_from_secs_f64(value).map_or(FOREVER, |d| d.min(FOREVER)))
}

/// A task's health check, ready to run.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Spec {
    /// What one check does.
    pub probe: Probe,
    /// When checks run and what their results mean.
    pub policy: Policy,
}

impl Spec {
    /// The check `check` of the task that runs `task` (whose directory and
    /// environment a COMMAND check gets). Rejects what Mesos's
    /// `validateHealthCheck` rejects: no `type` (or UNKNOWN), the field of
    /// the type missing, a command without a value, a scheme other than
    /// `http`/`https`, a path not starting with `/`, negative durations;
    /// and, as no socket could have them, ports above 65535 and HTTP
    /// statuses outside 100–599.
    pub fn parse(check: &v1::HealthCheck, task: &CommandSpec) -> Result<Spec, InvalidHealthCheck> {
        use health_check::Type;
        let probe = match check.r#type.map(Type::try_from) {
            None => return invalid("HealthCheck must specify 'type'"),
            Some(Err(_)) | Some(Ok(Type::Unknown)) => {
                return invalid("'UNKNOWN' is not a valid health check type");
            }
            Some(Ok(Type::Command)) => {
                let Some(command) = &check.command else {
                    return invalid("Expecting 'command' to be set for COMMAND health check");
                };
                match task::check_command_spec(command, task) {
                    Ok(spec) => Probe::Command(spec),
                    Err(task::SpecError::NoCommand) => {
                        let what = if command.shell() {
                            "'shell command'"
                        } else {
                            "'executable path'"
                        };
                        return invalid(format!("Command health check must contain {what}"));
                    }
                }
            }
            Some(Ok(Type::Http)) => {
                let Some(http) = &check.http else {
                    return invalid("Expecting 'http' to be set for HTTP health check");
                };
                let addr = loopback(http.protocol(), http.port)?;
                let path = http.path.as_deref().unwrap_or("");
                if !path.is_empty() && !path.starts_with('/') {
                    return invalid(format!(
                        "The path '{path}' of HTTP health check must start with '/'"
                    ));
                }
                if let Some(status) = http.statuses.iter().find(|s| !(100..600).contains(*s)) {
                    return invalid(format!("Invalid HTTP status {status} in 'statuses'"));
                }
                match http.scheme.as_deref().unwrap_or("http") {
                    "http" => Probe::Http {
                        url: format!("http://{addr}{path}"),
                        statuses: http.statuses.clone(),
                    },
                    "https" => Probe::Https {
                        url: format!("https://{addr}{path}"),
                        statuses: http.statuses.clone(),
                    },
                    other => {
                        return invalid(format!("Unsupported HTTP health check scheme: '{other}'"));
                    }
                }
            }
            Some(Ok(Type::Tcp)) => {
                let Some(tcp) = &check.tcp else {
                    return invalid("Expecting 'tcp' to be set for TCP health check");
                };
                Probe::Tcp {
                    addr: loopback(tcp.protocol(), tcp.port)?,
                }
            }
        };
        Ok(Spec {
            probe,
            policy: Policy::of(check)?,
        })
    }
}

/// `127.0.0.1:port`, or `[::1]:port` for IPv6.
fn loopback(protocol: network_info::Protocol, port: u32) -> Result<SocketAddr, InvalidHealthCheck> {
    let Ok(port) = u16::try_from(port) else {
        return invalid(format!("Port {port} of the health check is out of range"));
    };
    Ok(match protocol {
        network_info::Protocol::IPv4 => SocketAddr::from((Ipv4Addr::LOCALHOST, port)),
        network_info::Protocol::IPv6 => SocketAddr::from((Ipv6Addr::LOCALHOST, port)),
    })
}

/// What a check's result means for the task.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Verdict {
    /// A failure within the grace period before any check passed: neither
    /// counted nor reported.
    IgnoredInGrace,
    /// A pass while already healthy: not reported.
    StillHealthy,
    /// Report `healthy = true`: the first pass since the task started, or
    /// since failures.
    BecameHealthy,
    /// Report `healthy = false`: a counted failure, the `consecutive`th in
    /// a row; `kill` once that reached the policy's `consecutive_failures`.
    Unhealthy {
        /// Counted failures in a row, this one included.
        consecutive: u32,
        /// The task is to be killed.
        kill: bool,
    },
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Schedule {
    /// The next check is due then; `None` when never (an endless delay or
    /// interval).
    Waiting(Option<Instant>),
    /// Check number `attempt` runs.
    Running(u64),
    /// No more checks: the task is being killed or ended.
    Stopped,
}

/// One task's health-check state; see the module documentation. Pure: the
/// caller passes the time, starts the checks and feeds back their results.
#[derive(Debug, Clone)]
pub struct Checker {
    policy: Policy,
    started: Instant,
    /// A check passed since the task started (Mesos: not `initializing`).
    passed_once: bool,
    consecutive_failures: u32,
    attempts: u64,
    schedule: Schedule,
}

impl Checker {
    /// The checker of a task that started at `started`.
    pub fn new(policy: Policy, started: Instant) -> Checker {
        Checker {
            policy,
            started,
            passed_once: false,
            consecutive_failures: 0,
            attempts: 0,
            schedule: Schedule::Waiting(started.checked_add(policy.delay)),
        }
    }

    /// The policy.
    pub fn policy(&self) -> &Policy {
        &self.policy
    }

    /// Counted failures in a row so far.
    pub fn consecutive_failures(&self) -> u32 {
        self.consecutive_failures
    }

    /// When the next check is due; `None` while one runs, after
    /// [`stop`](Checker::stop), or when no check will ever be due.
    pub fn due(&self) -> Option<Instant> {
        match self.schedule {
            Schedule::Waiting(due) => due,
            Schedule::Running(_) | Schedule::Stopped => None,
        }
    }

    /// Starts the next check if it is due at `now`, returning its attempt
    /// number (to match its result with).
    pub fn start_if_due(&mut self, now: Instant) -> Option<u64> {
        let due = self.due()?;
        if due > now {
            return None;
        }
        self.attempts += 1;
        self.schedule = Schedule::Running(self.attempts);
        Some(self.attempts)
    }

    /// The result of check `attempt` at `now`; the next check is due one
    /// interval later. `None` (and nothing changes) when `attempt` is not
    /// the check that runs: a late result after [`stop`](Checker::stop).
    pub fn record(&mut self, attempt: u64, passed: bool, now: Instant) -> Option<Verdict> {
        if self.schedule != Schedule::Running(attempt) {
            return None;
        }
        self.schedule = Schedule::Waiting(now.checked_add(self.policy.interval));
        if passed {
            let report = !self.passed_once || self.consecutive_failures > 0;
            self.passed_once = true;
            self.consecutive_failures = 0;
            return Some(if report {
                Verdict::BecameHealthy
            } else {
                Verdict::StillHealthy
            });
        }
        if !self.passed_once && self.in_grace(now) {
            return Some(Verdict::IgnoredInGrace);
        }
        self.consecutive_failures = self.consecutive_failures.saturating_add(1);
        Some(Verdict::Unhealthy {
            consecutive: self.consecutive_failures,
            kill: self.consecutive_failures >= self.policy.consecutive_failures,
        })
    }

    /// Stops checking for good; returns the attempt that runs, if any, so
    /// the caller can cancel it.
    pub fn stop(&mut self) -> Option<u64> {
        let running = match self.schedule {
            Schedule::Running(attempt) => Some(attempt),
            Schedule::Waiting(_) | Schedule::Stopped => None,
        };
        self.schedule = Schedule::Stopped;
        running
    }

    /// Mesos's rule: a zero grace period means none; otherwise `now` is in
    /// it up to and including its end.
    fn in_grace(&self, now: Instant) -> bool {
        !self.policy.grace_period.is_zero()
            && now.saturating_duration_since(self.started) <= self.policy.grace_period
    }
}

/// A check for the event loop to start, or one to cancel.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Action {
    /// Run check `attempt` of task `task_id`, bounded by `timeout`.
    Run {
        /// The task.
        task_id: String,
        /// Echoed in the [`Finished`].
        attempt: u64,
        /// What to do.
        probe: Probe,
        /// The bound on the check; `None` for none.
        timeout: Option<Duration>,
    },
    /// Cancel the check of `task_id` that runs (killing its command, if
    /// any): the task is being killed or ended.
    Cancel {
        /// The task.
        task_id: String,
    },
}

/// A check that ran to its end.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Finished {
    /// The task.
    pub task_id: String,
    /// From the [`Action::Run`].
    pub attempt: u64,
    /// `Ok` when it passed, else why it failed.
    pub result: Result<(), String>,
}

#[cfg(test)]
mod tests {
    use super::*;
    use mesos_proto::v1::environment::Variable;
    use std::path::PathBuf;

    fn secs(s: f64) -> Duration {
        Duration::from_secs_f64(s)
    }

    fn policy(delay: f64, interval: f64, grace: f64, consecutive_failures: u32) -> Policy {
        Policy {
            delay: secs(delay),
            interval: secs(interval),
            timeout: Some(secs(1.0)),
            consecutive_failures,
            grace_period: secs(grace),
        }
    }

    /// Starts the due check at `at` and records its result.
    fn check(c: &mut Checker, at: Instant, passed: bool) -> Verdict {
        let attempt = c.start_if_due(at).expect("a check is due");
        assert_eq!(c.due(), None, "one check at a time");
        c.record(attempt, passed, at).expect("the running attempt")
    }

    fn unhealthy(consecutive: u32, kill: bool) -> Verdict {
        Verdict::Unhealthy { consecutive, kill }
    }

    #[test]
    fn the_first_check_waits_for_the_delay() {
        let t0 = Instant::now();
        let mut c = Checker::new(policy(2.0, 1.0, 0.0, 3), t0);
        assert_eq!(c.due(), Some(t0 + secs(2.0)));
        assert_eq!(c.start_if_due(t0 + secs(1.999)), None);
        assert_eq!(c.start_if_due(t0 + secs(2.0)), Some(1));
    }

    #[test]
    fn the_next_check_is_an_interval_after_the_previous_result() {
        let t0 = Instant::now();
        let mut c = Checker::new(policy(0.0, 1.0, 0.0, 3), t0);
        let attempt = c.start_if_due(t0).unwrap();
        // A slow check: the interval counts from its result, not its start.
        let done = t0 + secs(0.7);
        c.record(attempt, true, done).unwrap();
        assert_eq!(c.due(), Some(done + secs(1.0)));
        assert_eq!(c.start_if_due(done + secs(0.9)), None);
        assert_eq!(c.start_if_due(done + secs(1.0)), Some(2));
    }

    #[test]
    fn failures_inside_the_grace_period_are_ignored_before_any_pass() {
        let t0 = Instant::now();
        let mut c = Checker::new(policy(0.0, 1.0, 2.5, 1), t0);
        assert_eq!(check(&mut c, t0, false), Verdict::IgnoredInGrace);
        assert_eq!(
            check(&mut c, t0 + secs(1.0), false),
            Verdict::IgnoredInGrace
        );
        // The end of the grace period still belongs to it (Mesos: `<=`).
        c.start_if_due(t0 + secs(2.5)).unwrap();
        assert_eq!(
            c.record(3, false, t0 + secs(2.5)),
            Some(Verdict::IgnoredInGrace)
        );
        assert_eq!(c.consecutive_failures(), 0);
        assert_eq!(check(&mut c, t0 + secs(3.5), false), unhealthy(1, true));
    }

    #[test]
    fn the_grace_period_counts_from_the_task_start_so_it_includes_the_delay() {
        let t0 = Instant::now();
        // Delay 2 s, grace 3 s: only the first second of checks is graced.
        let mut c = Checker::new(policy(2.0, 1.0, 3.0, 3), t0);
        assert_eq!(
            check(&mut c, t0 + secs(2.0), false),
            Verdict::IgnoredInGrace
        );
        assert_eq!(
            check(&mut c, t0 + secs(3.0), false),
            Verdict::IgnoredInGrace
        );
        assert_eq!(check(&mut c, t0 + secs(4.0), false), unhealthy(1, false));
    }

    #[test]
    fn a_pass_ends_the_grace_period_early() {
        let t0 = Instant::now();
        let mut c = Checker::new(policy(0.0, 1.0, 60.0, 3), t0);
        assert_eq!(check(&mut c, t0, true), Verdict::BecameHealthy);
        assert_eq!(check(&mut c, t0 + secs(1.0), false), unhealthy(1, false));
    }

    #[test]
    fn zero_grace_means_no_grace() {
        let t0 = Instant::now();
        let mut c = Checker::new(policy(0.0, 1.0, 0.0, 3), t0);
        assert_eq!(check(&mut c, t0, false), unhealthy(1, false));
    }

    #[test]
    fn only_the_first_pass_after_start_or_after_failures_is_reported() {
        let t0 = Instant::now();
        let mut c = Checker::new(policy(0.0, 1.0, 0.0, 3), t0);
        assert_eq!(check(&mut c, t0, true), Verdict::BecameHealthy);
        assert_eq!(check(&mut c, t0 + secs(1.0), true), Verdict::StillHealthy);
        assert_eq!(check(&mut c, t0 + secs(2.0), true), Verdict::StillHealthy);
        assert_eq!(check(&mut c, t0 + secs(3.0), false), unhealthy(1, false));
        assert_eq!(check(&mut c, t0 + secs(4.0), true), Verdict::BecameHealthy);
        assert_eq!(check(&mut c, t0 + secs(5.0), true), Verdict::StillHealthy);
    }

    #[test]
    fn a_pass_after_ignored_failures_is_the_first_pass() {
        let t0 = Instant::now();
        let mut c = Checker::new(policy(0.0, 1.0, 10.0, 3), t0);
        assert_eq!(check(&mut c, t0, false), Verdict::IgnoredInGrace);
        assert_eq!(check(&mut c, t0 + secs(1.0), true), Verdict::BecameHealthy);
    }

    #[test]
    fn consecutive_failures_decide_the_kill_and_a_pass_resets_the_count() {
        let t0 = Instant::now();
        let mut c = Checker::new(policy(0.0, 1.0, 0.0, 3), t0);
        assert_eq!(check(&mut c, t0, false), unhealthy(1, false));
        assert_eq!(check(&mut c, t0 + secs(1.0), false), unhealthy(2, false));
        assert_eq!(check(&mut c, t0 + secs(2.0), true), Verdict::BecameHealthy);
        assert_eq!(c.consecutive_failures(), 0);
        assert_eq!(check(&mut c, t0 + secs(3.0), false), unhealthy(1, false));
        assert_eq!(check(&mut c, t0 + secs(4.0), false), unhealthy(2, false));
        assert_eq!(check(&mut c, t0 + secs(5.0), false), unhealthy(3, true));
    }

    #[test]
    fn zero_consecutive_failures_kills_on_the_first_counted_failure() {
        // Mesos compares `failures >= consecutive_failures`.
        let t0 = Instant::now();
        let mut c = Checker::new(policy(0.0, 1.0, 0.0, 0), t0);
        assert_eq!(check(&mut c, t0, false), unhealthy(1, true));
    }

    #[test]
    fn stop_cancels_the_running_check_and_ignores_its_late_result() {
        let t0 = Instant::now();
        let mut c = Checker::new(policy(0.0, 1.0, 0.0, 3), t0);
        let attempt = c.start_if_due(t0).unwrap();
        assert_eq!(c.stop(), Some(attempt));
        assert_eq!(c.record(attempt, false, t0), None);
        assert_eq!(c.due(), None);
        assert_eq!(c.start_if_due(t0 + secs(100.0)), None);
        // Stopping while waiting has nothing to cancel.
        let mut idle = Checker::new(policy(0.0, 1.0, 0.0, 3), t0);
        assert_eq!(idle.stop(), None);
        assert_eq!(idle.due(), None);
    }

    #[test]
    fn results_of_other_attempts_change_nothing() {
        let t0 = Instant::now();
        let mut c = Checker::new(policy(0.0, 1.0, 0.0, 3), t0);
        let attempt = c.start_if_due(t0).unwrap();
        assert_eq!(c.record(attempt + 1, false, t0), None);
        assert_eq!(c.record(attempt, false, t0), Some(unhealthy(1, false)));
        assert_eq!(c.record(attempt, false, t0), None, "recorded once");
    }

    #[test]
    fn endless_delays_never_come_due() {
        let t0 = Instant::now();
        let mut check = http_check(http_info(80));
        check.delay_seconds = Some(f64::INFINITY);
        let endless = Policy::of(&check).unwrap();
        assert_eq!(endless.delay, FOREVER);
        let mut c = Checker::new(endless, t0);
        assert!(c.due().is_some_and(|d| d > t0 + secs(1e9)));
        assert_eq!(c.start_if_due(t0 + secs(1e6)), None);
    }

    fn task_spec() -> CommandSpec {
        CommandSpec {
            program: "/bin/sh".into(),
            arg0: "sh".into(),
            args: vec!["-c".into(), "sleep 100".into()],
            env: vec![
                ("MESOS_SANDBOX".into(), "/sb".into()),
                ("MESOS_TASK_ID".into(), "t1".into()),
                ("GREETING".into(), "hello".into()),
            ],
            dir: PathBuf::from("/sb"),
            volumes: Vec::new(),
        }
    }

    fn http_check(http: health_check::HttpCheckInfo) -> v1::HealthCheck {
        v1::HealthCheck {
            r#type: Some(health_check::Type::Http as i32),
            http: Some(http),
            ..Default::default()
        }
    }

    fn http_info(port: u32) -> health_check::HttpCheckInfo {
        health_check::HttpCheckInfo {
            port,
            ..Default::default()
        }
    }

    #[test]
    fn unset_fields_take_the_proto_defaults() {
        let spec = Spec::parse(&http_check(http_info(8080)), &task_spec()).unwrap();
        assert_eq!(
            spec.policy,
            Policy {
                delay: secs(15.0),
                interval: secs(10.0),
                timeout: Some(secs(20.0)),
                consecutive_failures: 3,
                grace_period: secs(10.0),
            }
        );
        assert_eq!(
            spec.probe,
            Probe::Http {
                url: "http://127.0.0.1:8080".into(),
                statuses: vec![],
            }
        );
    }

    #[test]
    fn a_zero_or_endless_timeout_means_none() {
        for timeout in [0.0, f64::INFINITY] {
            let mut check = http_check(http_info(80));
            check.timeout_seconds = Some(timeout);
            assert_eq!(Policy::of(&check).unwrap().timeout, None, "{timeout}");
        }
    }

    #[test]
    fn http_checks_address_the_loopback_with_scheme_path_and_protocol() {
        let mut info = http_info(8080);
        info.path = Some("/health?deep=1".into());
        info.statuses = vec![200, 204];
        info.scheme = Some("http".into());
        let spec = Spec::parse(&http_check(info.clone()), &task_spec()).unwrap();
        assert_eq!(
            spec.probe,
            Probe::Http {
                url: "http://127.0.0.1:8080/health?deep=1".into(),
                statuses: vec![200, 204],
            }
        );
        info.protocol = Some(network_info::Protocol::IPv6 as i32);
        let v6 = Spec::parse(&http_check(info.clone()), &task_spec()).unwrap();
        assert_eq!(
            v6.probe,
            Probe::Http {
                url: "http://[::1]:8080/health?deep=1".into(),
                statuses: vec![200, 204],
            }
        );
        info.scheme = Some("https".into());
        let https = Spec::parse(&http_check(info), &task_spec()).unwrap();
        assert_eq!(
            https.probe,
            Probe::Https {
                url: "https://[::1]:8080/health?deep=1".into(),
                statuses: vec![200, 204],
            }
        );
    }

    #[test]
    fn http_statuses_default_to_200_through_399() {
        assert!(!Probe::http_status_passes(&[], 199));
        assert!(Probe::http_status_passes(&[], 200));
        assert!(Probe::http_status_passes(&[], 399));
        assert!(!Probe::http_status_passes(&[], 400));
        assert!(!Probe::http_status_passes(&[], 503));
        assert!(Probe::http_status_passes(&[503], 503));
        assert!(!Probe::http_status_passes(&[503], 200));
    }

    #[test]
    fn tcp_checks_connect_to_the_loopback() {
        let check = v1::HealthCheck {
            r#type: Some(health_check::Type::Tcp as i32),
            tcp: Some(health_check::TcpCheckInfo {
                protocol: None,
                port: 9000,
            }),
            ..Default::default()
        };
        let spec = Spec::parse(&check, &task_spec()).unwrap();
        assert_eq!(
            spec.probe,
            Probe::Tcp {
                addr: "127.0.0.1:9000".parse().unwrap()
            }
        );
    }

    #[test]
    fn command_checks_run_in_the_task_directory_with_the_task_environment() {
        let check = v1::HealthCheck {
            r#type: Some(health_check::Type::Command as i32),
            command: Some(v1::CommandInfo {
                value: Some("test -e ready".into()),
                environment: Some(v1::Environment {
                    variables: vec![Variable {
                        name: "GREETING".into(),
                        value: Some("bye".into()),
                        r#type: None,
                    }],
                }),
                ..Default::default()
            }),
            ..Default::default()
        };
        let Probe::Command(spec) = Spec::parse(&check, &task_spec()).unwrap().probe else {
            panic!("not a command probe");
        };
        assert_eq!(spec.program, "/bin/sh");
        assert_eq!(spec.args, ["-c", "test -e ready"]);
        assert_eq!(spec.dir, PathBuf::from("/sb"));
        let env: Vec<_> = spec.env.iter().map(|(k, v)| format!("{k}={v}")).collect();
        // The check's own variables come last, so they win.
        assert_eq!(
            env,
            [
                "MESOS_SANDBOX=/sb",
                "MESOS_TASK_ID=t1",
                "GREETING=hello",
                "GREETING=bye"
            ]
        );
    }

    #[test]
    fn checks_mesos_would_reject_are_rejected() {
        let task = task_spec();
        let reject = |check: v1::HealthCheck, why: &str| {
            let err = Spec::parse(&check, &task).unwrap_err();
            assert!(err.to_string().contains(why), "{err} lacks {why:?}");
        };
        let mut untyped = http_check(http_info(80));
        untyped.r#type = None;
        reject(untyped, "must specify 'type'");
        let mut unknown = http_check(http_info(80));
        unknown.r#type = Some(health_check::Type::Unknown as i32);
        reject(unknown, "not a valid health check type");
        let mut bad_number = http_check(http_info(80));
        bad_number.r#type = Some(42);
        reject(bad_number, "not a valid health check type");
        let mut no_http = http_check(http_info(80));
        no_http.http = None;
        reject(no_http, "Expecting 'http'");
        reject(
            v1::HealthCheck {
                r#type: Some(health_check::Type::Tcp as i32),
                ..Default::default()
            },
            "Expecting 'tcp'",
        );
        reject(
            v1::HealthCheck {
                r#type: Some(health_check::Type::Command as i32),
                ..Default::default()
            },
            "Expecting 'command'",
        );
        reject(
            v1::HealthCheck {
                r#type: Some(health_check::Type::Command as i32),
                command: Some(v1::CommandInfo::default()),
                ..Default::default()
            },
            "must contain 'shell command'",
        );
        let mut scheme = http_info(80);
        scheme.scheme = Some("ftp".into());
        reject(http_check(scheme), "Unsupported HTTP health check scheme");
        let mut path = http_info(80);
        path.path = Some("health".into());
        reject(http_check(path), "must start with '/'");
        let mut status = http_info(80);
        status.statuses = vec![200, 42];
        reject(http_check(status), "Invalid HTTP status 42");
        reject(http_check(http_info(70000)), "out of range");
        for field in ["delay", "interval", "timeout", "grace_period"] {
            let mut check = http_check(http_info(80));
            let value = Some(-1.0);
            match field {
                "delay" => check.delay_seconds = value,
                "interval" => check.interval_seconds = value,
                "timeout" => check.timeout_seconds = value,
                _ => check.grace_period_seconds = value,
            }
            reject(check, &format!("'{field}_seconds' to be non-negative"));
        }
        let mut nan = http_check(http_info(80));
        nan.interval_seconds = Some(f64::NAN);
        reject(nan, "'interval_seconds' to be non-negative");
    }
}
