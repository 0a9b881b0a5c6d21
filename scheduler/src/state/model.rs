//! The records Baton keeps about tasks.

use std::collections::BTreeMap;

use mesos_proto::v1::{TaskState, TaskStatus};
use serde::{Deserialize, Serialize};

/// What to run: a command with resources. (Apps arrive with the REST API;
/// this is the unit they are launched as.)
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct TaskSpec {
    /// Name of the task in Mesos (what mesos-dns shows).
    pub name: String,
    /// Shell command (`/bin/sh -c`).
    pub cmd: String,
    /// CPU shares.
    pub cpus: f64,
    /// Memory in MB.
    pub mem: f64,
    /// Disk in MB.
    #[serde(default)]
    pub disk: f64,
    /// How many host ports to take from the offer (any offered port).
    #[serde(default)]
    pub ports: u32,
    /// Extra environment.
    #[serde(default)]
    pub env: BTreeMap<String, String>,
    /// Seconds between SIGTERM and SIGKILL when killed.
    #[serde(default)]
    pub kill_grace_seconds: Option<f64>,
}

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

/// A task Baton launched (or was asked to launch) and what Mesos says of it.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct TaskRecord {
    /// Mesos TaskID.
    pub task_id: String,
    /// What to run.
    pub spec: TaskSpec,
    /// Agent it was launched on, once launched.
    #[serde(default)]
    pub agent_id: Option<String>,
    /// That agent's hostname.
    #[serde(default)]
    pub hostname: Option<String>,
    /// Host ports it got.
    #[serde(default)]
    pub host_ports: Vec<u64>,
    /// Latest state name; `TASK_STAGING` once launched, `None` while waiting.
    #[serde(default)]
    pub state: Option<String>,
    /// Latest status details.
    #[serde(default)]
    pub last_status: Option<StatusRecord>,
    /// Seconds since the epoch when launched.
    #[serde(default)]
    pub staged_at: Option<f64>,
    /// Seconds since the epoch when first seen running.
    #[serde(default)]
    pub started_at: Option<f64>,
    /// Status updates applied (duplicates are not counted).
    #[serde(default)]
    pub updates_applied: u64,
    /// Hex uuids of the last few updates applied, to recognise redeliveries.
    #[serde(default)]
    pub recent_update_uuids: Vec<String>,
    /// Whether Baton asked Mesos to kill it.
    #[serde(default)]
    pub kill_requested: bool,
}

/// How many recent update uuids a task remembers for de-duplication.
pub const RECENT_UUIDS: usize = 8;

impl TaskRecord {
    /// The latest Mesos state, if launched.
    pub fn task_state(&self) -> Option<TaskState> {
        self.state.as_deref().and_then(TaskState::from_str_name)
    }

    /// Whether the task has ended for good.
    pub fn is_terminal(&self) -> bool {
        self.task_state()
            .is_some_and(mesos_proto::util::is_terminal)
    }
}
