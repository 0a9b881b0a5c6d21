//! What Baton remembers of a task's last status.

use mesos_proto::v1::TaskStatus;
use serde::{Deserialize, Serialize};

/// The last status Mesos reported for a task.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct StatusRecord {
    /// `TASK_RUNNING` etc.
    pub state: String,
    /// Human-readable message, e.g. the exit code.
    #[serde(default)]
    pub message: Option<String>,
    /// `REASON_*` name.
    #[serde(default)]
    pub reason: Option<String>,
    /// `SOURCE_*` name.
    #[serde(default)]
    pub source: Option<String>,
    /// Health check verdict, if any.
    #[serde(default)]
    pub healthy: Option<bool>,
    /// Seconds since the epoch.
    #[serde(default)]
    pub timestamp: Option<f64>,
}

impl StatusRecord {
    /// The record of a Mesos status.
    pub fn from_status(status: &TaskStatus) -> StatusRecord {
        StatusRecord {
            state: status.state().as_str_name().to_string(),
            message: status.message.clone(),
            reason: status
                .reason
                .map(|_| status.reason().as_str_name().to_string()),
            source: status
                .source
                .map(|_| status.source().as_str_name().to_string()),
            healthy: status.healthy,
            timestamp: status.timestamp,
        }
    }
}

/// How many recent update uuids a task remembers for de-duplication.
pub const RECENT_UUIDS: usize = 8;
