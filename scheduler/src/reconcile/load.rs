//! Load reports from `baton-executor`, for load-aware gateways.
//!
//! Each executor sends, every `--load_report_interval`, an executor
//! MESSAGE whose data is JSON of kind [`REPORT_KIND`]: per task its CPU use
//! (cores) and allocation, its resident and allocated memory, and the
//! host's one-minute load average and CPU count. The loop keeps the latest
//! report per running task in [`View::loads`](super::View::loads), which
//! `GET /v2/tasks/load` serves. Observed state only: never persisted (a new
//! leader waits for the next report), and dropped when the task ends.
//!
//! Parsing is pure; a malformed message is refused whole with the field
//! that is wrong.

use serde::{Deserialize, Serialize};

use crate::state::app::Timestamp;

/// The `kind` an executor's load report carries.
pub const REPORT_KIND: &str = "baton.load.v1";

/// What one task was last reported to use.
#[derive(Debug, Clone, PartialEq, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct TaskLoad {
    /// Cores in use over the last interval; absent on a task's first
    /// report.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub cpus_used: Option<f64>,
    /// Cores the task was given.
    pub cpus_allocated: f64,
    /// Resident memory of its processes.
    pub mem_rss_bytes: u64,
    /// Memory the task was given.
    pub mem_allocated_bytes: u64,
    /// The host's one-minute load average.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub host_load1: Option<f64>,
    /// The host's CPUs.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub host_cpus: Option<u32>,
    /// When the report arrived.
    pub reported_at: Timestamp,
}

/// A message that is not a usable load report.
#[derive(Debug, Clone, PartialEq, thiserror::Error)]
pub enum LoadError {
    /// Not JSON, or a field of the wrong type.
    #[error("invalid load report: {0}")]
    Invalid(String),
    /// JSON of another kind: some other message.
    #[error("not a load report (kind {0:?})")]
    OtherKind(String),
    /// A number that cannot be a measurement.
    #[error("invalid load report: {field} is {value}")]
    OutOfRange {
        /// The field's path.
        field: String,
        /// What it held.
        value: f64,
    },
}

#[derive(Debug, Deserialize)]
#[serde(rename_all = "camelCase")]
struct Report {
    kind: String,
    #[serde(default)]
    tasks: Vec<ReportedTask>,
    host: Option<ReportedHost>,
}

#[derive(Debug, Deserialize)]
#[serde(rename_all = "camelCase")]
struct ReportedTask {
    task_id: String,
    cpus_used: Option<f64>,
    #[serde(default)]
    cpus_allocated: f64,
    #[serde(default)]
    mem_rss_bytes: u64,
    #[serde(default)]
    mem_allocated_bytes: u64,
}

#[derive(Debug, Deserialize)]
struct ReportedHost {
    load1: f64,
    cpus: u32,
}

/// A finite, non-negative measurement, or the error naming `field`.
fn measured(field: String, value: f64) -> Result<f64, LoadError> {
    if value.is_finite() && value >= 0.0 {
        Ok(value)
    } else {
        Err(LoadError::OutOfRange { field, value })
    }
}

/// The loads of the tasks in one report, received at `now`.
pub fn parse_report(data: &[u8], now: Timestamp) -> Result<Vec<(String, TaskLoad)>, LoadError> {
    let probe: serde_json::Value =
        serde_json::from_slice(data).map_err(|e| LoadError::Invalid(e.to_string()))?;
    let kind = probe["kind"].as_str().unwrap_or_default();
    if kind != REPORT_KIND {
        return Err(LoadError::OtherKind(kind.to_string()));
    }
    let report: Report =
        serde_json::from_value(probe).map_err(|e| LoadError::Invalid(e.to_string()))?;
    debug_assert_eq!(report.kind, REPORT_KIND);
    let (host_load1, host_cpus) = match report.host {
        Some(h) => (Some(measured("host.load1".into(), h.load1)?), Some(h.cpus)),
        None => (None, None),
    };
    report
        .tasks
        .into_iter()
        .enumerate()
        .map(|(i, t)| {
            let field = |name: &str| format!("tasks[{i}].{name}");
            Ok((
                t.task_id,
                TaskLoad {
                    cpus_used: t
                        .cpus_used
                        .map(|v| measured(field("cpusUsed"), v))
                        .transpose()?,
                    cpus_allocated: measured(field("cpusAllocated"), t.cpus_allocated)?,
                    mem_rss_bytes: t.mem_rss_bytes,
                    mem_allocated_bytes: t.mem_allocated_bytes,
                    host_load1,
                    host_cpus,
                    reported_at: now,
                },
            ))
        })
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    fn bytes(v: serde_json::Value) -> Vec<u8> {
        serde_json::to_vec(&v).unwrap()
    }

    #[test]
    fn a_report_gives_each_task_its_load_and_the_host_load() {
        let now = Timestamp::from_millis(1_700_000_000_000);
        let data = bytes(json!({
            "kind": REPORT_KIND,
            "tasks": [
                {"taskId": "web.instance-1._app.1", "cpusUsed": 0.25, "cpusAllocated": 0.5,
                 "memRssBytes": 1000, "memAllocatedBytes": 2000},
                {"taskId": "web.instance-2._app.1", "cpusAllocated": 0.5},
            ],
            "host": {"load1": 1.5, "cpus": 4},
        }));
        let loads = parse_report(&data, now).unwrap();
        assert_eq!(loads.len(), 2);
        assert_eq!(loads[0].0, "web.instance-1._app.1");
        assert_eq!(loads[0].1.cpus_used, Some(0.25));
        assert_eq!(loads[0].1.host_load1, Some(1.5));
        assert_eq!(loads[1].1.cpus_used, None);
        assert_eq!(loads[1].1.host_cpus, Some(4));
        let shown = serde_json::to_value(&loads[1].1).unwrap();
        assert!(shown.get("cpusUsed").is_none(), "{shown}");
        assert_eq!(shown["memAllocatedBytes"], 0);
    }

    #[test]
    fn other_messages_and_bad_reports_are_refused_with_the_field() {
        let now = Timestamp::from_millis(0);
        assert!(matches!(
            parse_report(b"hello", now),
            Err(LoadError::Invalid(_))
        ));
        assert_eq!(
            parse_report(&bytes(json!({"kind": "chat"})), now),
            Err(LoadError::OtherKind("chat".into()))
        );
        let negative = bytes(json!({"kind": REPORT_KIND, "tasks": [
            {"taskId": "a", "cpusUsed": -1.0, "cpusAllocated": 1.0}]}));
        let err = parse_report(&negative, now).unwrap_err();
        assert_eq!(
            err.to_string(),
            "invalid load report: tasks[0].cpusUsed is -1"
        );
        let wrong_type = bytes(json!({"kind": REPORT_KIND, "tasks": [{"taskId": 7}]}));
        assert!(matches!(
            parse_report(&wrong_type, now),
            Err(LoadError::Invalid(_))
        ));
    }
}
