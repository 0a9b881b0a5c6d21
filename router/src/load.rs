//! Load-aware weights for the `load` balancing policy.
//!
//! `baton-executor` reports each task's CPU use and the host's load average
//! to Baton, which serves the latest report per running task at
//! `GET /v2/tasks/load`. While some app balances by load, the router reads
//! that list every `load_interval` and gives each instance a weight:
//!
//! ```text
//! weight = FULL_WEIGHT / ((1 + task_busy) × (1 + host_busy))
//! task_busy = cpusUsed / cpusAllocated   (0..=8)
//! host_busy = hostLoad1 / hostCpus       (0..=8)
//! ```
//!
//! so an instance using all its CPUs, or on a host whose run queue matches
//! its cores, gets half the turns of an idle one, and both a quarter; never
//! less than [`MIN_WEIGHT`], so a busy instance still gets some traffic and
//! its recovery is seen. Without a (fresh) report an instance has the full
//! weight. A Marathon without the endpoint (404) leaves every weight full.

use std::collections::HashMap;
use std::sync::Arc;
use std::time::Duration;

use serde_json::Value;
use tokio_util::sync::CancellationToken;
use tracing::{debug, info};

use crate::balance::Policy;
use crate::marathon::Marathon;
use crate::shared::Shared;
use baton_probe::error_chain;

// The weight bounds live with the balancer, which reads the weights.
use crate::balance::{FULL_WEIGHT, MIN_WEIGHT};

/// Busy ratios above this count as this.
const MAX_BUSY: f64 = 8.0;
/// How long to wait after Marathon said it has no load endpoint.
const ABSENT_RETRY: Duration = Duration::from_secs(60);

/// One task's report, as the router uses it.
#[derive(Debug, Clone, Copy, PartialEq, Default)]
pub struct Load {
    /// Cores in use (absent on a first report).
    pub cpus_used: Option<f64>,
    /// Cores given.
    pub cpus_allocated: f64,
    /// The host's one-minute load average.
    pub host_load1: Option<f64>,
    /// The host's CPUs.
    pub host_cpus: Option<f64>,
}

fn ratio(part: Option<f64>, whole: Option<f64>) -> f64 {
    match (part, whole) {
        (Some(p), Some(w)) if w > 0.0 && p.is_finite() => (p / w).clamp(0.0, MAX_BUSY),
        _ => 0.0,
    }
}

/// The weight of an instance with `load`.
pub fn weight(load: &Load) -> u32 {
    let task_busy = ratio(load.cpus_used, Some(load.cpus_allocated));
    let host_busy = ratio(load.host_load1, load.host_cpus);
    let w = f64::from(FULL_WEIGHT) / ((1.0 + task_busy) * (1.0 + host_busy));
    (w.round() as u32).clamp(MIN_WEIGHT, FULL_WEIGHT)
}

/// Task id → load, from `GET /v2/tasks/load`'s `tasks`, leaving out
/// reports older than `max_age` (`ageMs`) and entries without a task id.
pub fn parse_loads(tasks: &[Value], max_age: Duration) -> HashMap<String, Load> {
    let max_age_ms = max_age.as_millis() as f64;
    tasks
        .iter()
        .filter(|t| t["ageMs"].as_f64().is_none_or(|age| age <= max_age_ms))
        .filter_map(|t| {
            let load = Load {
                cpus_used: t["cpusUsed"].as_f64(),
                cpus_allocated: t["cpusAllocated"].as_f64().unwrap_or(0.0),
                host_load1: t["hostLoad1"].as_f64(),
                host_cpus: t["hostCpus"].as_f64(),
            };
            Some((t["taskId"].as_str()?.to_string(), load))
        })
        .collect()
}

/// Sets every instance's weight in the current table from `loads`.
fn apply(shared: &Shared, loads: &HashMap<String, Load>) {
    for route in shared.table().routes() {
        for upstream in &route.upstreams {
            upstream
                .state
                .set_weight(loads.get(&upstream.task_id).map(weight));
        }
    }
}

/// Reads load reports every `interval` while some app balances by load,
/// until `shutdown`.
pub(crate) async fn run(shared: Arc<Shared>, marathon: Marathon, shutdown: CancellationToken) {
    let interval = shared.config.load_interval;
    if interval.is_zero() {
        return;
    }
    let mut warned_absent = false;
    loop {
        let mut wait = interval;
        let wanted = shared
            .table()
            .routes()
            .any(|r| r.policy == Policy::Load && !r.upstreams.is_empty());
        if wanted {
            match marathon.task_loads().await {
                Ok(Some(tasks)) => apply(&shared, &parse_loads(&tasks, shared.config.load_max_age)),
                Ok(None) => {
                    if !warned_absent {
                        info!(
                            "Marathon serves no /v2/tasks/load (not Baton?): load weights stay full"
                        );
                        warned_absent = true;
                    }
                    wait = ABSENT_RETRY;
                }
                Err(e) => debug!(error = %error_chain(&e), "cannot read load reports"),
            }
        }
        tokio::select! {
            () = tokio::time::sleep(wait) => {}
            () = shutdown.cancelled() => return,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    fn load(used: f64, allocated: f64, load1: f64, cpus: f64) -> Load {
        Load {
            cpus_used: Some(used),
            cpus_allocated: allocated,
            host_load1: Some(load1),
            host_cpus: Some(cpus),
        }
    }

    #[test]
    fn weight_falls_as_the_task_and_its_host_get_busier() {
        assert_eq!(weight(&load(0.0, 1.0, 0.0, 4.0)), FULL_WEIGHT);
        assert_eq!(weight(&load(1.0, 1.0, 0.0, 4.0)), 500);
        assert_eq!(weight(&load(0.0, 1.0, 4.0, 4.0)), 500);
        assert_eq!(weight(&load(1.0, 1.0, 4.0, 4.0)), 250);
        // A task burning far beyond its share, on a swamped host: the floor.
        assert_eq!(weight(&load(50.0, 0.1, 400.0, 4.0)), MIN_WEIGHT);
        // Unknown parts count as idle.
        assert_eq!(weight(&Load::default()), FULL_WEIGHT);
        let first_report = Load {
            cpus_used: None,
            ..load(0.0, 1.0, 2.0, 4.0)
        };
        assert_eq!(weight(&first_report), 667);
    }

    #[test]
    fn stale_and_anonymous_reports_are_left_out() {
        let tasks = [
            json!({"taskId": "a", "cpusUsed": 0.5, "cpusAllocated": 1.0, "ageMs": 100}),
            json!({"taskId": "b", "cpusUsed": 0.5, "cpusAllocated": 1.0, "ageMs": 60_000}),
            json!({"cpusUsed": 0.5}),
            json!({"taskId": "c", "cpusAllocated": 1.0, "hostLoad1": 1.0, "hostCpus": 2}),
        ];
        let loads = parse_loads(&tasks, Duration::from_secs(30));
        assert_eq!(loads.len(), 2);
        assert_eq!(weight(&loads["a"]), 667);
        assert_eq!(loads["c"].host_cpus, Some(2.0));
    }
}
