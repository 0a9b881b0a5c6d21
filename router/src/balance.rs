//! Choosing an instance for a request: the balancing policies, sticky
//! sessions, and passive health (ejection after consecutive failures).
//!
//! - An [`Upstream`] is one routable instance (task id, `host:port`, its
//!   sticky key) with a shared [`UpstreamState`]: requests in flight,
//!   consecutive failures, ejected-until, and its counters. The state is
//!   kept across routing-table rebuilds by task id, so an update from
//!   Marathon neither forgets an ejection nor resets `least_conn` counts.
//! - [`pick`] is the whole decision, a function of the upstreams, the
//!   policy, a rotating counter, an optional sticky key, the instances
//!   already tried, and the time: sticky first (if that instance is
//!   usable), then round-robin, least-outstanding-requests, or weighted
//!   turns (the `load` policy, each instance's weight set by the load
//!   poller from its executor's reports) over the instances neither
//!   ejected nor tried. When every instance is ejected
//!   they are all tried anyway ("panic mode"): a passive guess must not
//!   take a whole app down.
//! - Time is milliseconds on the router's [`crate::clock::Clock`], passed
//!   in, so the rules are tested without waiting.
//!
//! Weighted turns are lock-free: turn `t` lands on slot `frac(t·φ) × W` of
//! the instances' cumulated weights `W` (φ the golden ratio, a Weyl
//! sequence): the slots of any run of consecutive turns are spread evenly
//! over `[0, W)`, so an instance's share follows its weight at every scale,
//! without bursts.

use std::sync::Arc;
use std::sync::atomic::{AtomicU32, AtomicU64, AtomicUsize, Ordering::Relaxed};

use serde_json::{Value, json};

/// The cookie that pins a client to an instance.
pub const STICKY_COOKIE: &str = "BATON_STICKY";

/// The load weight of an idle instance (and of one without a report).
pub const FULL_WEIGHT: u32 = 1000;
/// The least load weight: a busy instance keeps a trickle of requests.
pub const MIN_WEIGHT: u32 = 20;

/// How an app's requests are spread over its instances
/// (`labels.BATON_BALANCE`).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum Policy {
    /// Each instance in turn (the default).
    #[default]
    RoundRobin,
    /// The instance with the fewest requests in flight; ties in turn.
    LeastConn,
    /// Turns in proportion to each instance's load weight (from the
    /// executors' reports: an instance's weight falls as its own CPU use
    /// and its host's load rise).
    Load,
}

impl Policy {
    /// The policy a `BATON_BALANCE` label names; unknown or absent →
    /// round-robin.
    pub fn from_label(label: Option<&str>) -> Policy {
        match label.map(|l| l.trim().to_ascii_lowercase()).as_deref() {
            Some("least_conn" | "leastconn" | "least_request" | "least-conn") => Policy::LeastConn,
            Some("load" | "weighted" | "load_aware") => Policy::Load,
            _ => Policy::RoundRobin,
        }
    }

    /// The label's spelling.
    pub fn name(self) -> &'static str {
        match self {
            Policy::RoundRobin => "round_robin",
            Policy::LeastConn => "least_conn",
            Policy::Load => "load",
        }
    }
}

/// Passive health: when an instance is taken out of rotation.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Ejection {
    /// Consecutive failures that eject an instance.
    pub after_failures: u32,
    /// For how long (milliseconds).
    pub for_ms: u64,
}

impl Default for Ejection {
    fn default() -> Self {
        Ejection {
            after_failures: 3,
            for_ms: 10_000,
        }
    }
}

/// What the router knows of one instance beyond Marathon's view; shared by
/// every table generation that lists the instance.
#[derive(Debug, Default)]
pub struct UpstreamState {
    /// Requests in flight (until their response body ends).
    outstanding: AtomicU64,
    /// Failures since the last success.
    consecutive_failures: AtomicU32,
    /// Ejected while the clock is below this (milliseconds; 0 = never).
    ejected_until: AtomicU64,
    /// Attempts sent here.
    pub requests: AtomicU64,
    /// Attempts that failed here.
    pub failures: AtomicU64,
    /// Times this instance was ejected.
    pub ejections: AtomicU64,
    /// Load weight in [`MIN_WEIGHT`]..=[`FULL_WEIGHT`]; 0 means "no
    /// report", read as full weight.
    weight: AtomicU32,
}

impl UpstreamState {
    /// Whether it is out of rotation at `now`.
    pub fn is_ejected(&self, now: u64) -> bool {
        now < self.ejected_until.load(Relaxed)
    }

    /// The load weight (full without a report).
    pub fn weight(&self) -> u32 {
        match self.weight.load(Relaxed) {
            0 => FULL_WEIGHT,
            w => w,
        }
    }

    /// Sets the load weight (`None`: no usable report).
    pub fn set_weight(&self, weight: Option<u32>) {
        self.weight.store(weight.unwrap_or(0), Relaxed);
    }

    /// Requests in flight.
    pub fn outstanding(&self) -> u64 {
        self.outstanding.load(Relaxed)
    }

    /// Starts an attempt: counted as outstanding until the guard drops.
    pub fn begin(self: &Arc<Self>) -> InFlight {
        self.requests.fetch_add(1, Relaxed);
        self.outstanding.fetch_add(1, Relaxed);
        InFlight(self.clone())
    }

    /// An attempt got a response: the failure streak ends.
    pub fn record_success(&self) {
        if self.consecutive_failures.load(Relaxed) != 0 {
            self.consecutive_failures.store(0, Relaxed);
        }
    }

    /// An attempt failed at `now`; returns whether this failure ejected the
    /// instance (its streak then starts over).
    pub fn record_failure(&self, now: u64, rule: &Ejection) -> bool {
        self.failures.fetch_add(1, Relaxed);
        let streak = self.consecutive_failures.fetch_add(1, Relaxed) + 1;
        if rule.after_failures == 0 || streak < rule.after_failures {
            return false;
        }
        self.consecutive_failures.store(0, Relaxed);
        self.ejected_until.store(now + rule.for_ms, Relaxed);
        self.ejections.fetch_add(1, Relaxed);
        true
    }

    /// The state for `/_router/table` and `/_router/stats`.
    pub fn to_json(&self, now: u64) -> Value {
        let until = self.ejected_until.load(Relaxed);
        json!({
            "outstanding": self.outstanding(),
            "requests": self.requests.load(Relaxed),
            "failures": self.failures.load(Relaxed),
            "consecutiveFailures": self.consecutive_failures.load(Relaxed),
            "ejections": self.ejections.load(Relaxed),
            "ejected": self.is_ejected(now),
            "ejectedForMs": until.saturating_sub(now),
            "weight": self.weight(),
        })
    }
}

/// An attempt in flight at an instance; ends when dropped.
#[derive(Debug)]
pub struct InFlight(Arc<UpstreamState>);

impl Drop for InFlight {
    fn drop(&mut self) {
        self.0.outstanding.fetch_sub(1, Relaxed);
    }
}

/// One routable instance.
#[derive(Debug, Clone)]
pub struct Upstream {
    /// The Mesos task id.
    pub task_id: String,
    /// `host:port` (IPv6 hosts bracketed): where requests go, and the key
    /// of its pooled connections.
    pub authority: Arc<str>,
    /// The same as a `Host` header, for requests that came without one;
    /// `None` if it is not a valid header value.
    pub host_header: Option<hyper::header::HeaderValue>,
    /// The cookie value that pins a client here: a hash of the task id,
    /// so the cookie does not reveal it.
    pub sticky_key: String,
    /// Shared with earlier and later table generations.
    pub state: Arc<UpstreamState>,
}

impl Upstream {
    /// The instance `task_id` at `host:port`, keeping `state` if an earlier
    /// table had one for it.
    pub fn new(task_id: &str, host: &str, port: u16, state: Option<Arc<UpstreamState>>) -> Self {
        let authority = baton_probe::host_port(host, port);
        Upstream {
            task_id: task_id.to_string(),
            host_header: hyper::header::HeaderValue::from_str(&authority).ok(),
            authority: authority.into(),
            sticky_key: sticky_key(task_id),
            state: state.unwrap_or_default(),
        }
    }
}

/// The sticky-cookie value of a task: 64-bit FNV-1a of its id, in hex.
/// Stable across router restarts and versions, so pinned clients stay
/// pinned when the router is replaced.
pub fn sticky_key(task_id: &str) -> String {
    let hash = task_id.bytes().fold(0xcbf2_9ce4_8422_2325_u64, |h, b| {
        (h ^ u64::from(b)).wrapping_mul(0x0000_0100_0000_01b3)
    });
    format!("{hash:016x}")
}

/// Values of the sticky cookie in a `Cookie` header (several when paths
/// overlap).
pub fn sticky_cookies(header: &str) -> impl Iterator<Item = &str> {
    header.split(';').filter_map(|pair| {
        let (name, value) = pair.split_once('=')?;
        (name.trim() == STICKY_COOKIE).then(|| value.trim().trim_matches('"'))
    })
}

/// The `Set-Cookie` value pinning a client to `upstream` under `path`.
pub fn set_cookie(upstream: &Upstream, path: &str) -> String {
    format!(
        "{STICKY_COOKIE}={}; Path={path}; HttpOnly; SameSite=Lax",
        upstream.sticky_key
    )
}

/// The outcome of [`pick`].
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Pick {
    /// Index into the upstreams.
    pub index: usize,
    /// Chosen because the client's sticky cookie names it (so the cookie
    /// need not be set again).
    pub sticky_hit: bool,
}

/// Chooses an instance among `upstreams` for one attempt; `None` when
/// every instance has been `tried` (or there are none).
///
/// `rotor` is the app's shared turn counter; `sticky` the client's cookie
/// values (empty for non-sticky apps).
pub fn pick(
    upstreams: &[Upstream],
    policy: Policy,
    rotor: &AtomicUsize,
    sticky: &[&str],
    tried: &[usize],
    now: u64,
) -> Option<Pick> {
    let untried = |i: &usize| !tried.contains(i);
    let mut usable: Vec<usize> = (0..upstreams.len())
        .filter(untried)
        .filter(|i| !upstreams[*i].state.is_ejected(now))
        .collect();
    if usable.is_empty() {
        // Panic mode: all ejected, try them anyway.
        usable = (0..upstreams.len()).filter(untried).collect();
    }
    if usable.is_empty() {
        return None;
    }
    if let Some(index) = usable
        .iter()
        .copied()
        .find(|i| sticky.contains(&upstreams[*i].sticky_key.as_str()))
    {
        return Some(Pick {
            index,
            sticky_hit: true,
        });
    }
    let turn = rotor.fetch_add(1, Relaxed);
    let index = match policy {
        Policy::RoundRobin => usable[turn % usable.len()],
        Policy::LeastConn => {
            // The least busy; ties take turns.
            let load: Vec<u64> = usable
                .iter()
                .map(|i| upstreams[*i].state.outstanding())
                .collect();
            let least = load.iter().copied().min().unwrap_or(0);
            let idle: Vec<usize> = usable
                .iter()
                .zip(&load)
                .filter(|(_, l)| **l == least)
                .map(|(i, _)| *i)
                .collect();
            idle[turn % idle.len()]
        }
        Policy::Load => weighted_turn(
            &usable,
            |i| u64::from(upstreams[i].state.weight().max(1)),
            turn,
        ),
    };
    Some(Pick {
        index,
        sticky_hit: false,
    })
}

/// 2⁶⁴/φ: multiplying turns by it (wrapping) steps through a Weyl
/// sequence, the most evenly spread sequence of fractions.
const GOLDEN: u64 = 0x9E37_79B9_7F4A_7C15;

/// The instance among `usable` (non-empty) whose cumulated-weight range
/// holds slot `frac(turn·φ) × total`.
fn weighted_turn(usable: &[usize], weight: impl Fn(usize) -> u64, turn: usize) -> usize {
    let total: u64 = usable.iter().map(|i| weight(*i)).sum();
    let fraction = (turn as u64).wrapping_mul(GOLDEN);
    let slot = ((u128::from(fraction) * u128::from(total)) >> 64) as u64;
    let mut upto = 0;
    for i in usable {
        upto += weight(*i);
        if slot < upto {
            return *i;
        }
    }
    usable[usable.len() - 1]
}

#[cfg(test)]
mod tests {
    use super::*;

    fn upstreams(n: usize) -> Vec<Upstream> {
        (0..n)
            .map(|i| Upstream::new(&format!("app.task-{i}"), "127.0.0.1", 9000 + i as u16, None))
            .collect()
    }

    fn picks(ups: &[Upstream], policy: Policy, rotor: &AtomicUsize, n: usize) -> Vec<usize> {
        (0..n)
            .map(|_| pick(ups, policy, rotor, &[], &[], 0).unwrap().index)
            .collect()
    }

    #[test]
    fn round_robin_takes_turns() {
        let ups = upstreams(3);
        let rotor = AtomicUsize::new(0);
        assert_eq!(
            picks(&ups, Policy::RoundRobin, &rotor, 7),
            [0, 1, 2, 0, 1, 2, 0]
        );
    }

    #[test]
    fn no_upstreams_no_pick() {
        let rotor = AtomicUsize::new(0);
        assert_eq!(pick(&[], Policy::RoundRobin, &rotor, &[], &[], 0), None);
        let ups = upstreams(2);
        assert_eq!(
            pick(&ups, Policy::LeastConn, &rotor, &[], &[0, 1], 0),
            None,
            "every instance tried"
        );
    }

    #[test]
    fn a_retry_goes_elsewhere() {
        let ups = upstreams(3);
        let rotor = AtomicUsize::new(0);
        for _ in 0..10 {
            let first = pick(&ups, Policy::RoundRobin, &rotor, &[], &[], 0).unwrap();
            let second = pick(&ups, Policy::RoundRobin, &rotor, &[], &[first.index], 0).unwrap();
            assert_ne!(first.index, second.index);
        }
    }

    #[test]
    fn least_conn_prefers_the_idle_and_rotates_ties() {
        let ups = upstreams(3);
        let rotor = AtomicUsize::new(0);
        let busy: Vec<InFlight> = (0..5).map(|_| ups[0].state.begin()).collect();
        let one = ups[1].state.begin();
        // 2 is idle: always 2.
        assert_eq!(picks(&ups, Policy::LeastConn, &rotor, 4), [2, 2, 2, 2]);
        drop(one);
        // 1 and 2 tie: they alternate; 0 stays out.
        let mut got = picks(&ups, Policy::LeastConn, &rotor, 6);
        assert!(!got.contains(&0), "{got:?}");
        got.sort_unstable();
        assert_eq!(got, [1, 1, 1, 2, 2, 2]);
        drop(busy);
        assert_eq!(ups[0].state.outstanding(), 0);
    }

    #[test]
    fn outstanding_follows_in_flight_guards() {
        let ups = upstreams(1);
        let a = ups[0].state.begin();
        let b = ups[0].state.begin();
        assert_eq!(ups[0].state.outstanding(), 2);
        drop(a);
        assert_eq!(ups[0].state.outstanding(), 1);
        drop(b);
        assert_eq!(ups[0].state.outstanding(), 0);
        assert_eq!(ups[0].state.requests.load(Relaxed), 2);
    }

    #[test]
    fn sticky_cookie_wins_while_usable() {
        let ups = upstreams(3);
        let rotor = AtomicUsize::new(0);
        let key = ups[1].sticky_key.clone();
        for _ in 0..100 {
            let p = pick(&ups, Policy::RoundRobin, &rotor, &[&key], &[], 0).unwrap();
            assert_eq!(
                p,
                Pick {
                    index: 1,
                    sticky_hit: true
                }
            );
        }
        // Tried and failed: moves on, not a sticky hit (the cookie is re-set).
        let p = pick(&ups, Policy::RoundRobin, &rotor, &[&key], &[1], 0).unwrap();
        assert_ne!(p.index, 1);
        assert!(!p.sticky_hit);
        // Ejected: moves on too.
        let rule = Ejection {
            after_failures: 1,
            for_ms: 1000,
        };
        assert!(ups[1].state.record_failure(0, &rule));
        let p = pick(&ups, Policy::RoundRobin, &rotor, &[&key], &[], 10).unwrap();
        assert_ne!(p.index, 1);
        // A key of an instance that is gone: an ordinary pick.
        let p = pick(
            &ups,
            Policy::RoundRobin,
            &rotor,
            &["0123456789abcdef"],
            &[],
            0,
        )
        .unwrap();
        assert!(!p.sticky_hit);
    }

    #[test]
    fn sticky_keys_are_stable_hashes() {
        assert_eq!(sticky_key(""), "cbf29ce484222325");
        assert_eq!(sticky_key("a"), "af63dc4c8601ec8c");
        assert_ne!(
            sticky_key("web.instance-1._app.1"),
            sticky_key("web.instance-2._app.1")
        );
        assert_eq!(sticky_key("x").len(), 16);
    }

    #[test]
    fn cookie_header_parsing() {
        let header = "a=1; BATON_STICKY=abc; b=2;BATON_STICKY=\"def\"";
        assert_eq!(sticky_cookies(header).collect::<Vec<_>>(), ["abc", "def"]);
        assert_eq!(sticky_cookies("other=1").count(), 0);
        let up = &upstreams(1)[0];
        assert_eq!(
            set_cookie(up, "/api"),
            format!(
                "BATON_STICKY={}; Path=/api; HttpOnly; SameSite=Lax",
                up.sticky_key
            )
        );
    }

    #[test]
    fn ejection_after_consecutive_failures_for_a_while() {
        let rule = Ejection::default();
        let s = UpstreamState::default();
        assert!(!s.record_failure(0, &rule));
        assert!(!s.record_failure(1, &rule));
        s.record_success(); // the streak ends
        assert!(!s.record_failure(2, &rule));
        assert!(!s.record_failure(3, &rule));
        assert!(!s.is_ejected(3));
        assert!(s.record_failure(4, &rule), "third in a row");
        assert!(s.is_ejected(4));
        assert!(s.is_ejected(4 + rule.for_ms - 1));
        assert!(!s.is_ejected(4 + rule.for_ms), "back after the period");
        let v = s.to_json(5);
        assert_eq!(v["ejected"], true);
        assert_eq!(v["ejections"], 1);
        assert_eq!(v["failures"], 5);
        assert_eq!(v["ejectedForMs"], rule.for_ms - 1);
    }

    #[test]
    fn ejected_instances_are_skipped_unless_all_are() {
        let ups = upstreams(3);
        let rotor = AtomicUsize::new(0);
        let rule = Ejection {
            after_failures: 1,
            for_ms: 1000,
        };
        ups[0].state.record_failure(0, &rule);
        let got = picks(&ups, Policy::RoundRobin, &rotor, 6);
        assert!(!got.contains(&0), "{got:?}");
        ups[1].state.record_failure(0, &rule);
        ups[2].state.record_failure(0, &rule);
        // All ejected: panic mode spreads over all of them.
        let mut got = picks(&ups, Policy::RoundRobin, &rotor, 3);
        got.sort_unstable();
        assert_eq!(got, [0, 1, 2]);
        // Time passes: back to normal.
        assert!(pick(&ups, Policy::RoundRobin, &rotor, &[], &[], 1000).is_some());
        assert!(!ups[0].state.is_ejected(1000));
    }

    #[test]
    fn policy_labels() {
        assert_eq!(Policy::from_label(None), Policy::RoundRobin);
        assert_eq!(Policy::from_label(Some("least_conn")), Policy::LeastConn);
        assert_eq!(Policy::from_label(Some(" LEAST_CONN ")), Policy::LeastConn);
        assert_eq!(Policy::from_label(Some("bogus")), Policy::RoundRobin);
        assert_eq!(Policy::from_label(Some("load")), Policy::Load);
    }

    #[test]
    fn load_policy_shares_follow_weights_without_bursts() {
        let ups = upstreams(3);
        ups[0].state.set_weight(Some(100));
        ups[1].state.set_weight(Some(1000));
        // ups[2] has no report: full weight.
        let rotor = AtomicUsize::new(0);
        let total = 2100;
        let chosen = picks(&ups, Policy::Load, &rotor, total);
        let count =
            |from: usize, n: usize, i| chosen[from..from + n].iter().filter(|c| **c == i).count();
        // Shares follow the weights (100 : 1000 : 1000) over the whole run
        // and over any short stretch of it.
        let (light, heavy, unreported) =
            (count(0, total, 0), count(0, total, 1), count(0, total, 2));
        assert!((95..=105).contains(&light), "{light}");
        assert!((990..=1010).contains(&heavy) && (990..=1010).contains(&unreported));
        for from in [0, 700, 1500] {
            let (light, heavy) = (count(from, 210, 0), count(from, 210, 1));
            assert!(
                (5..=15).contains(&light) && (90..=110).contains(&heavy),
                "{from}: {light} {heavy}"
            );
        }
        // Scattered: the light instance never gets two turns in a row, and
        // the heavy ones never wait long.
        assert!(chosen.windows(2).all(|w| !(w[0] == 0 && w[1] == 0)));
        let longest_gap = chosen.split(|c| *c == 1).map(<[usize]>::len).max().unwrap();
        assert!(longest_gap <= 5, "instance 1 waited {longest_gap} turns");
    }

    #[test]
    fn load_policy_skips_tried_and_ejected_instances() {
        let ups = upstreams(2);
        ups[0].state.set_weight(Some(1000));
        ups[1].state.set_weight(Some(10));
        let rotor = AtomicUsize::new(0);
        let pick_one =
            |tried: &[usize]| pick(&ups, Policy::Load, &rotor, &[], tried, 0).map(|p| p.index);
        assert!((0..50).all(|_| pick_one(&[0]) == Some(1)));
        assert_eq!(pick_one(&[0, 1]), None);
    }

    #[test]
    fn ipv6_authority_is_bracketed() {
        assert_eq!(&*Upstream::new("t", "::1", 80, None).authority, "[::1]:80");
        assert_eq!(&*Upstream::new("t", "host", 80, None).authority, "host:80");
    }
}
