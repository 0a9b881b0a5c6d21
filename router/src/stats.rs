//! Counters: per app (requests, status classes, bytes, a latency histogram,
//! request rates over the last minutes) and for the router as a whole,
//! each showing itself as JSON. The reports over a whole routing table
//! (JSON for `/_router/stats`, Prometheus text for `/_router/metrics`) are
//! built from these by `report`, above the table.
//!
//! Everything is lock-free atomics, updated on the request path; times come
//! in as numbers. An app's [`AppStats`] lives in its `runtime::AppRuntime`,
//! which outlives routing-table rebuilds; an upstream's own counters live
//! in its `balance::UpstreamState`.

use std::sync::atomic::{AtomicBool, AtomicU64, Ordering::Relaxed};
use std::time::Duration;

use serde_json::{Value, json};

/// Upper bounds (seconds) of the latency histogram's buckets; `+Inf` is
/// implied.
pub const LATENCY_BUCKETS: [f64; 13] = [
    0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0,
];

/// Seconds of per-second request counts kept for rates (five minutes).
pub const RATE_WINDOW_SECS: u64 = 300;

/// A latency histogram with fixed buckets.
#[derive(Debug, Default)]
pub struct Histogram {
    /// Non-cumulative counts per bucket; the last one is `+Inf`.
    buckets: [AtomicU64; LATENCY_BUCKETS.len() + 1],
    count: AtomicU64,
    sum_micros: AtomicU64,
}

impl Histogram {
    /// Records one observation.
    pub fn observe(&self, elapsed: Duration) {
        let secs = elapsed.as_secs_f64();
        let i = LATENCY_BUCKETS
            .iter()
            .position(|le| secs <= *le)
            .unwrap_or(LATENCY_BUCKETS.len());
        self.buckets[i].fetch_add(1, Relaxed);
        self.count.fetch_add(1, Relaxed);
        self.sum_micros
            .fetch_add(elapsed.as_micros().min(u64::MAX as u128) as u64, Relaxed);
    }

    /// Cumulative counts per bucket (Prometheus' `le` semantics), `+Inf`
    /// last.
    pub fn cumulative(&self) -> Vec<u64> {
        let mut total = 0;
        self.buckets
            .iter()
            .map(|b| {
                total += b.load(Relaxed);
                total
            })
            .collect()
    }

    /// Observations so far.
    pub fn count(&self) -> u64 {
        self.count.load(Relaxed)
    }

    /// Sum of all observations, in seconds.
    pub fn sum_secs(&self) -> f64 {
        self.sum_micros.load(Relaxed) as f64 / 1e6
    }

    /// The smallest bucket bound below which at least `q` of the
    /// observations fall (an upper estimate of the quantile); `None`
    /// without observations or beyond the last bound.
    pub fn quantile_bound(&self, q: f64) -> Option<f64> {
        let cumulative = self.cumulative();
        let total = *cumulative.last()?;
        if total == 0 {
            return None;
        }
        let wanted = (q * total as f64).ceil() as u64;
        cumulative
            .iter()
            .zip(LATENCY_BUCKETS)
            .find(|(c, _)| **c >= wanted)
            .map(|(_, le)| le)
    }
}

/// Requests per second over a sliding window, from per-second counts in a
/// ring: each slot packs (second << 32 | count), so a slot left over from
/// an earlier lap is recognised and restarted without a lock.
#[derive(Debug)]
pub struct RateWindow {
    slots: Vec<AtomicU64>,
}

impl Default for RateWindow {
    fn default() -> Self {
        RateWindow {
            slots: (0..RATE_WINDOW_SECS).map(|_| AtomicU64::new(0)).collect(),
        }
    }
}

impl RateWindow {
    /// Counts one request in second `now_secs` (of the router's clock).
    pub fn record(&self, now_secs: u64) {
        let slot = &self.slots[(now_secs % RATE_WINDOW_SECS) as usize];
        let epoch = now_secs & 0xffff_ffff;
        let mut current = slot.load(Relaxed);
        loop {
            let next = if current >> 32 == epoch {
                current + 1
            } else {
                (epoch << 32) | 1
            };
            match slot.compare_exchange_weak(current, next, Relaxed, Relaxed) {
                Ok(_) => return,
                Err(seen) => current = seen,
            }
        }
    }

    /// Mean requests per second over the `window` whole seconds before
    /// `now_secs` (the current, partial second is left out).
    pub fn rate(&self, now_secs: u64, window: u64) -> f64 {
        let window = window.clamp(1, RATE_WINDOW_SECS - 1);
        let total: u64 = (1..=window)
            .filter_map(|back| now_secs.checked_sub(back))
            .map(|second| {
                let slot = self.slots[(second % RATE_WINDOW_SECS) as usize].load(Relaxed);
                if slot >> 32 == second & 0xffff_ffff {
                    slot & 0xffff_ffff
                } else {
                    0
                }
            })
            .sum();
        total as f64 / window as f64
    }
}

/// One app's counters.
#[derive(Debug, Default)]
pub struct AppStats {
    /// Requests routed to the app (whatever became of them).
    pub requests: AtomicU64,
    /// Responses by status class: 1xx, 2xx, 3xx, 4xx, 5xx (the router's own
    /// 502/503/504 included).
    pub classes: [AtomicU64; 5],
    /// Request body bytes received from clients.
    pub bytes_in: AtomicU64,
    /// Response body bytes sent to clients.
    pub bytes_out: AtomicU64,
    /// Time from the request's arrival to the end of its response body.
    pub latency: Histogram,
    /// Requests per second.
    pub rate: RateWindow,
    /// Requests answered 503 because no instance was routable.
    pub unavailable: AtomicU64,
    /// Attempts that failed at an upstream (connect, I/O, timeout).
    pub upstream_failures: AtomicU64,
    /// Requests sent again to another instance after a failure.
    pub retries: AtomicU64,
    /// Requests refused (403) by the app's deny list.
    pub denied: AtomicU64,
    /// Requests held while the app woke up.
    pub held: AtomicU64,
    /// Times a request woke the app from sleep.
    pub wakes: AtomicU64,
}

impl AppStats {
    /// Counts a response's status.
    pub fn status(&self, status: u16) {
        if let Some(class) = (status / 100).checked_sub(1).filter(|c| *c < 5) {
            self.classes[class as usize].fetch_add(1, Relaxed);
        }
    }

    /// The counters as JSON, with rates at `now_secs`.
    pub fn to_json(&self, now_secs: u64) -> Value {
        let class = |i: usize| self.classes[i].load(Relaxed);
        json!({
            "requests": self.requests.load(Relaxed),
            "responses": {
                "1xx": class(0), "2xx": class(1), "3xx": class(2), "4xx": class(3), "5xx": class(4),
            },
            "bytesIn": self.bytes_in.load(Relaxed),
            "bytesOut": self.bytes_out.load(Relaxed),
            "unavailable": self.unavailable.load(Relaxed),
            "upstreamFailures": self.upstream_failures.load(Relaxed),
            "retries": self.retries.load(Relaxed),
            "denied": self.denied.load(Relaxed),
            "held": self.held.load(Relaxed),
            "wakes": self.wakes.load(Relaxed),
            "requestsPerSecond": {
                "10s": self.rate.rate(now_secs, 10),
                "1m": self.rate.rate(now_secs, 60),
                "5m": self.rate.rate(now_secs, RATE_WINDOW_SECS - 1),
            },
            "latency": {
                "count": self.latency.count(),
                "sumSeconds": self.latency.sum_secs(),
                "p50": self.latency.quantile_bound(0.5),
                "p99": self.latency.quantile_bound(0.99),
                "buckets": LATENCY_BUCKETS
                    .iter()
                    .map(|le| json!(le))
                    .chain([json!("+Inf")])
                    .zip(self.latency.cumulative())
                    .map(|(le, n)| json!({"le": le, "count": n}))
                    .collect::<Vec<_>>(),
            },
        })
    }
}

/// Router-wide counters and the state of the link to Marathon.
#[derive(Debug, Default)]
pub struct GlobalStats {
    /// Requests no app matched (404).
    pub unmatched: AtomicU64,
    /// Requests answered 503 before the first table load.
    pub not_ready: AtomicU64,
    /// Requests refused (403) by the router-wide deny list.
    pub denied: AtomicU64,
    /// Whether the event stream is connected now.
    pub events_connected: AtomicBool,
    /// Events received on the stream.
    pub events: AtomicU64,
    /// Event-stream connections made.
    pub event_connects: AtomicU64,
    /// Full table loads (`GET /v2/apps`).
    pub resyncs: AtomicU64,
    /// Single-app refreshes (`GET /v2/apps/{id}`).
    pub app_refreshes: AtomicU64,
    /// Failed requests to Marathon.
    pub marathon_errors: AtomicU64,
}

impl GlobalStats {
    /// The counters as JSON (`/_router/stats` without the apps).
    pub fn to_json(&self) -> Value {
        json!({
            "unmatched": self.unmatched.load(Relaxed),
            "notReady": self.not_ready.load(Relaxed),
            "denied": self.denied.load(Relaxed),
            "marathon": {
                "eventsConnected": self.events_connected.load(Relaxed),
                "events": self.events.load(Relaxed),
                "eventConnects": self.event_connects.load(Relaxed),
                "resyncs": self.resyncs.load(Relaxed),
                "appRefreshes": self.app_refreshes.load(Relaxed),
                "errors": self.marathon_errors.load(Relaxed),
            },
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn histogram_buckets_are_cumulative() {
        let h = Histogram::default();
        h.observe(Duration::from_micros(500));
        h.observe(Duration::from_millis(30));
        h.observe(Duration::from_secs(20));
        let c = h.cumulative();
        assert_eq!(c.len(), LATENCY_BUCKETS.len() + 1);
        assert_eq!(c[0], 1, "≤ 1 ms");
        assert_eq!(c[5], 2, "≤ 50 ms");
        assert_eq!(c[LATENCY_BUCKETS.len() - 1], 2, "≤ 10 s");
        assert_eq!(*c.last().unwrap(), 3, "+Inf");
        assert_eq!(h.count(), 3);
        assert!((h.sum_secs() - 20.0305).abs() < 1e-6);
        assert_eq!(h.quantile_bound(0.5), Some(0.05));
        assert_eq!(h.quantile_bound(0.99), None, "beyond the last bound");
    }

    #[test]
    fn rate_counts_whole_seconds_and_forgets_old_laps() {
        let r = RateWindow::default();
        for _ in 0..10 {
            r.record(100);
        }
        for _ in 0..20 {
            r.record(101);
        }
        r.record(102); // the current second: not counted yet
        assert_eq!(r.rate(102, 2), 15.0);
        assert_eq!(r.rate(102, 10), 3.0);
        // A lap later the old counts are not mistaken for new ones.
        r.record(100 + RATE_WINDOW_SECS);
        assert_eq!(r.rate(101 + RATE_WINDOW_SECS, 1), 1.0);
        assert_eq!(r.rate(102 + RATE_WINDOW_SECS, 2), 0.5);
    }

    #[test]
    fn status_classes() {
        let s = AppStats::default();
        for code in [101, 200, 204, 302, 404, 503, 999] {
            s.status(code);
        }
        let counts: Vec<u64> = s.classes.iter().map(|c| c.load(Relaxed)).collect();
        assert_eq!(counts, [1, 2, 1, 1, 1]);
    }
}
