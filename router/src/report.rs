//! The reports on the router's counters over the current routing table:
//! JSON for `/_router/stats` (what an autoscaler reads) and Prometheus text
//! for `/_router/metrics`. Both are functions of the router-wide counters,
//! the access log's, a snapshot of the response cache's, a [`Table`]
//! (each app's counters and audience live in its runtime, each
//! instance's counters in its state) and the time (the router's clock,
//! and the wall clock for the UTC windows of page views and visitors);
//! they read, never count.

use std::fmt::Write as _;
use std::sync::atomic::Ordering::Relaxed;

use serde_json::{Value, json};

use crate::access_log::AccessLog;
use crate::balance::UpstreamState;
use crate::cache_store::{AppSnapshot, Snapshot};
use crate::stats::{GlobalStats, LATENCY_BUCKETS, RATE_WINDOW_SECS};
use crate::table::{Route, Table};
use crate::visitors::{SpanReport, Totals};

/// An app's page views and visitors per window as of `unix_secs`: its
/// sketches copied under the lock, estimated outside it.
fn audience(route: &Route, unix_secs: u64) -> [SpanReport; 3] {
    let traffic = route.runtime.audience().traffic.clone();
    traffic.report(unix_secs)
}

/// One figure of each window as `{"minute": n, "hour": n, "day": n}`.
fn per_window(report: &[SpanReport; 3], figure: impl Fn(&SpanReport) -> u64) -> Value {
    report
        .iter()
        .map(|r| (r.span.name().to_string(), json!(figure(r))))
        .collect::<serde_json::Map<_, _>>()
        .into()
}

/// An app's cache figures in `cache` (zero before its first request);
/// `None` for an app without a cache.
fn app_cache(route: &Route, cache: &Snapshot) -> Option<AppSnapshot> {
    let settings = route.cache.as_ref()?.settings;
    Some(match cache.apps.get(&route.app_id) {
        Some(figures) => *figures,
        None => AppSnapshot {
            max_bytes: settings
                .max_bytes
                .map_or(cache.max_bytes, |m| m.min(cache.max_bytes)),
            ..AppSnapshot::default()
        },
    })
}

/// `/_router/stats`: router-wide counters, the access log's and the
/// response cache's, then per app its counters, page views (`pv`) and
/// unique visitors (`uv`) in the current UTC minute, hour and day
/// (`pvPrevious`, `uvPrevious`: the last complete ones), its busiest
/// paths, its upstreams', and its cache's (apps with one).
pub fn stats_json(
    global: &GlobalStats,
    access_log: &AccessLog,
    cache: &Snapshot,
    table: &Table,
    now_ms: u64,
    unix_secs: u64,
) -> Value {
    let now_secs = now_ms / 1000;
    let apps: serde_json::Map<String, Value> = table
        .routes()
        .map(|route| {
            let mut app = route.runtime.stats.to_json(now_secs);
            let windows = audience(route, unix_secs);
            app["pv"] = per_window(&windows, |r| r.current.views);
            app["uv"] = per_window(&windows, |r| r.current.visitors);
            app["pvPrevious"] = per_window(&windows, |r| r.previous.views);
            app["uvPrevious"] = per_window(&windows, |r| r.previous.visitors);
            app["topPaths"] = route.runtime.audience().paths.to_json();
            if let Some(figures) = app_cache(route, cache) {
                app["cache"] = figures.to_json();
            }
            app["upstreams"] = route
                .upstreams
                .iter()
                .map(|u| {
                    let mut v = u.state.to_json(now_ms);
                    v["taskId"] = json!(u.task_id);
                    v["address"] = json!(&*u.authority);
                    v
                })
                .collect();
            (route.app_id.clone(), app)
        })
        .collect();
    let mut out = global.to_json();
    out["accessLog"] = access_log.to_json();
    out["cache"] = cache.to_json();
    out["tableGeneration"] = json!(table.generation);
    out["apps"] = Value::Object(apps);
    out
}

/// Escapes a Prometheus label value.
fn label(value: &str) -> String {
    value
        .replace('\\', "\\\\")
        .replace('"', "\\\"")
        .replace('\n', "\\n")
}

/// `/_router/metrics`: the same counters in Prometheus' text format (top
/// paths left out: labels without bound).
pub fn prometheus(
    global: &GlobalStats,
    access_log: &AccessLog,
    cache: &Snapshot,
    table: &Table,
    now_ms: u64,
    unix_secs: u64,
) -> String {
    let now_secs = now_ms / 1000;
    let mut out = String::new();
    // Families are written one after another, each with all its samples.
    fn family(out: &mut String, name: &str, kind: &str, help: &str) -> String {
        let _ = writeln!(out, "# HELP {name} {help}\n# TYPE {name} {kind}");
        name.to_string()
    }

    let n = family(
        &mut out,
        "baton_router_unmatched_requests_total",
        "counter",
        "Requests no app matched (404).",
    );
    let _ = writeln!(out, "{n} {}", global.unmatched.load(Relaxed));
    let n = family(
        &mut out,
        "baton_router_globally_denied_requests_total",
        "counter",
        "Requests refused (403) by the router-wide deny list.",
    );
    let _ = writeln!(out, "{n} {}", global.denied.load(Relaxed));
    let n = family(
        &mut out,
        "baton_router_marathon_events_connected",
        "gauge",
        "1 while the /v2/events stream is connected.",
    );
    let _ = writeln!(
        out,
        "{n} {}",
        u8::from(global.events_connected.load(Relaxed))
    );
    let n = family(
        &mut out,
        "baton_router_marathon_events_total",
        "counter",
        "Events received from /v2/events.",
    );
    let _ = writeln!(out, "{n} {}", global.events.load(Relaxed));
    let n = family(
        &mut out,
        "baton_router_marathon_resyncs_total",
        "counter",
        "Full routing-table loads from /v2/apps.",
    );
    let _ = writeln!(out, "{n} {}", global.resyncs.load(Relaxed));
    let n = family(
        &mut out,
        "baton_router_marathon_errors_total",
        "counter",
        "Failed requests to Marathon.",
    );
    let _ = writeln!(out, "{n} {}", global.marathon_errors.load(Relaxed));
    let n = family(
        &mut out,
        "baton_router_table_generation",
        "gauge",
        "Routing-table changes applied so far.",
    );
    let _ = writeln!(out, "{n} {}", table.generation);
    let n = family(
        &mut out,
        "baton_router_access_log_lines_total",
        "counter",
        "Access log lines written, dropped (queue full) or failed (I/O).",
    );
    let counters = access_log.counters();
    for (outcome, count) in [
        ("written", &counters.written),
        ("dropped", &counters.dropped),
        ("failed", &counters.failed),
    ] {
        let _ = writeln!(out, "{n}{{outcome=\"{outcome}\"}} {}", count.load(Relaxed));
    }

    type PerApp = fn(&Route, u64) -> Vec<(String, String)>;
    let per_app: [(&str, &str, &str, PerApp); 12] = [
        (
            "baton_router_requests_total",
            "counter",
            "Requests routed to the app.",
            |r, _| {
                vec![(
                    String::new(),
                    r.runtime.stats.requests.load(Relaxed).to_string(),
                )]
            },
        ),
        (
            "baton_router_responses_total",
            "counter",
            "Responses by status class.",
            |r, _| {
                r.runtime
                    .stats
                    .classes
                    .iter()
                    .enumerate()
                    .map(|(i, c)| {
                        (
                            format!(",class=\"{}xx\"", i + 1),
                            c.load(Relaxed).to_string(),
                        )
                    })
                    .collect()
            },
        ),
        (
            "baton_router_request_bytes_total",
            "counter",
            "Request body bytes received from clients.",
            |r, _| {
                vec![(
                    String::new(),
                    r.runtime.stats.bytes_in.load(Relaxed).to_string(),
                )]
            },
        ),
        (
            "baton_router_response_bytes_total",
            "counter",
            "Response body bytes sent to clients.",
            |r, _| {
                vec![(
                    String::new(),
                    r.runtime.stats.bytes_out.load(Relaxed).to_string(),
                )]
            },
        ),
        (
            "baton_router_unavailable_total",
            "counter",
            "Requests answered 503: no routable instance.",
            |r, _| {
                vec![(
                    String::new(),
                    r.runtime.stats.unavailable.load(Relaxed).to_string(),
                )]
            },
        ),
        (
            "baton_router_upstream_retries_total",
            "counter",
            "Requests sent again to another instance after a failure.",
            |r, _| {
                vec![(
                    String::new(),
                    r.runtime.stats.retries.load(Relaxed).to_string(),
                )]
            },
        ),
        (
            "baton_router_denied_requests_total",
            "counter",
            "Requests refused (403) by the app's deny list.",
            |r, _| {
                vec![(
                    String::new(),
                    r.runtime.stats.denied.load(Relaxed).to_string(),
                )]
            },
        ),
        (
            "baton_router_held_requests_total",
            "counter",
            "Requests held while the app woke from sleep.",
            |r, _| {
                vec![(
                    String::new(),
                    r.runtime.stats.held.load(Relaxed).to_string(),
                )]
            },
        ),
        (
            "baton_router_wakes_total",
            "counter",
            "Times a request woke the app from sleep.",
            |r, _| {
                vec![(
                    String::new(),
                    r.runtime.stats.wakes.load(Relaxed).to_string(),
                )]
            },
        ),
        (
            "baton_router_upstream_failures_total",
            "counter",
            "Attempts that failed at an upstream.",
            |r, _| {
                vec![(
                    String::new(),
                    r.runtime.stats.upstream_failures.load(Relaxed).to_string(),
                )]
            },
        ),
        (
            "baton_router_routable_instances",
            "gauge",
            "Instances in the routing table (running, healthy, not being killed).",
            |r, _| vec![(String::new(), r.upstreams.len().to_string())],
        ),
        (
            "baton_router_requests_per_second",
            "gauge",
            "Mean request rate over a trailing window.",
            |r, now_secs| {
                [("10s", 10), ("1m", 60), ("5m", RATE_WINDOW_SECS - 1)]
                    .into_iter()
                    .map(|(name, secs)| {
                        (
                            format!(",window=\"{name}\""),
                            r.runtime.stats.rate.rate(now_secs, secs).to_string(),
                        )
                    })
                    .collect()
            },
        ),
    ];
    for (name, kind, help, samples) in per_app {
        let n = family(&mut out, name, kind, help);
        for route in table.routes() {
            let app = label(&route.app_id);
            for (extra, value) in samples(route, now_secs) {
                let _ = writeln!(out, "{n}{{app=\"{app}\"{extra}}} {value}");
            }
        }
    }

    let n = family(
        &mut out,
        "baton_router_request_duration_seconds",
        "histogram",
        "Time from a request's arrival to the end of its response.",
    );
    for route in table.routes() {
        let app = label(&route.app_id);
        let h = &route.runtime.stats.latency;
        let bounds = LATENCY_BUCKETS
            .iter()
            .map(|b| b.to_string())
            .chain(["+Inf".to_string()]);
        for (le, count) in bounds.zip(h.cumulative()) {
            let _ = writeln!(out, "{n}_bucket{{app=\"{app}\",le=\"{le}\"}} {count}");
        }
        let _ = writeln!(out, "{n}_sum{{app=\"{app}\"}} {}", h.sum_secs());
        let _ = writeln!(out, "{n}_count{{app=\"{app}\"}} {}", h.count());
    }

    let windows: Vec<(String, [SpanReport; 3])> = table
        .routes()
        .map(|route| (label(&route.app_id), audience(route, unix_secs)))
        .collect();
    type Figure = fn(&Totals) -> u64;
    let audience_families: [(&str, &str, Figure); 2] = [
        (
            "baton_router_page_views",
            "Requests in the current (so far) or previous UTC minute, hour or day.",
            |t| t.views,
        ),
        (
            "baton_router_unique_visitors",
            "Distinct visitors (HyperLogLog estimate) in the current (so far) or previous UTC minute, hour or day.",
            |t| t.visitors,
        ),
    ];
    for (name, help, figure) in audience_families {
        let n = family(&mut out, name, "gauge", help);
        for (app, report) in &windows {
            for r in report {
                for (period, totals) in [("current", &r.current), ("previous", &r.previous)] {
                    let _ = writeln!(
                        out,
                        "{n}{{app=\"{app}\",window=\"{}\",period=\"{period}\"}} {}",
                        r.span.name(),
                        figure(totals)
                    );
                }
            }
        }
    }

    let n = family(
        &mut out,
        "baton_router_cache_max_bytes",
        "gauge",
        "Bytes the response cache holds at most, all apps together.",
    );
    let _ = writeln!(out, "{n} {}", cache.max_bytes);
    let cached: Vec<(String, AppSnapshot)> = table
        .routes()
        .filter_map(|r| Some((label(&r.app_id), app_cache(r, cache)?)))
        .collect();
    let n = family(
        &mut out,
        "baton_router_cache_requests_total",
        "counter",
        "Requests to a cached app: answered from the cache (hit), not (miss), or not for the cache (bypass).",
    );
    for (app, figures) in &cached {
        let c = &figures.counters;
        for (result, count) in [("hit", c.hits), ("miss", c.misses), ("bypass", c.bypasses)] {
            let _ = writeln!(out, "{n}{{app=\"{app}\",result=\"{result}\"}} {count}");
        }
    }
    type PerCache = fn(&AppSnapshot) -> u64;
    let per_cache: [(&str, &str, &str, PerCache); 6] = [
        (
            "baton_router_cache_stores_total",
            "counter",
            "Responses stored in the cache.",
            |s| s.counters.stores,
        ),
        (
            "baton_router_cache_evictions_total",
            "counter",
            "Cached responses evicted to stay within a bound.",
            |s| s.counters.evictions,
        ),
        (
            "baton_router_cache_invalidations_total",
            "counter",
            "Cached responses dropped: a new app version, or an unsafe request to their URL.",
            |s| s.counters.invalidations,
        ),
        (
            "baton_router_cache_too_large_total",
            "counter",
            "Responses not cached because their body is larger than an entry may be.",
            |s| s.counters.too_large,
        ),
        (
            "baton_router_cache_bytes",
            "gauge",
            "Bytes the app's cached responses take.",
            |s| s.bytes,
        ),
        (
            "baton_router_cache_entries",
            "gauge",
            "Cached responses of the app.",
            |s| s.entries as u64,
        ),
    ];
    for (name, kind, help, value) in per_cache {
        let n = family(&mut out, name, kind, help);
        for (app, figures) in &cached {
            let _ = writeln!(out, "{n}{{app=\"{app}\"}} {}", value(figures));
        }
    }

    type PerUpstream = fn(&UpstreamState, u64) -> u64;
    let per_upstream: [(&str, &str, &str, PerUpstream); 5] = [
        (
            "baton_router_upstream_requests_total",
            "counter",
            "Attempts sent to an instance.",
            |s, _| s.requests.load(Relaxed),
        ),
        (
            "baton_router_upstream_errors_total",
            "counter",
            "Attempts that failed at an instance.",
            |s, _| s.failures.load(Relaxed),
        ),
        (
            "baton_router_upstream_ejections_total",
            "counter",
            "Times an instance was ejected after consecutive failures.",
            |s, _| s.ejections.load(Relaxed),
        ),
        (
            "baton_router_upstream_ejected",
            "gauge",
            "1 while an instance is ejected (passive health).",
            |s, now_ms| u64::from(s.is_ejected(now_ms)),
        ),
        (
            "baton_router_upstream_outstanding",
            "gauge",
            "Requests in flight at an instance.",
            |s, _| s.outstanding(),
        ),
    ];
    for (name, kind, help, value) in per_upstream {
        let n = family(&mut out, name, kind, help);
        for route in table.routes() {
            let app = label(&route.app_id);
            for u in &route.upstreams {
                let _ = writeln!(
                    out,
                    "{n}{{app=\"{app}\",task=\"{}\",address=\"{}\"}} {}",
                    label(&u.task_id),
                    label(&u.authority),
                    value(&u.state, now_ms)
                );
            }
        }
    }
    out
}
