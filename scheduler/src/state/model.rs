//! What Baton remembers of a task's last status.

use std::borrow::Cow;

use mesos_proto::v1::{TaskState, TaskStatus, task_status};
use serde::{Deserialize, Deserializer, Serialize};

/// A Mesos enum name (`TASK_RUNNING`, `REASON_…`, `SOURCE_…`): the
/// protobuf's own static string when it is one — every task keeps three, so
/// they cost no allocation — else the text as read.
pub type EnumName = Cow<'static, str>;

/// `name` as the static protobuf name it equals, if any.
pub fn enum_name(name: &str) -> EnumName {
    TaskState::from_str_name(name)
        .map(|s| s.as_str_name())
        .or_else(|| task_status::Reason::from_str_name(name).map(|r| r.as_str_name()))
        .or_else(|| task_status::Source::from_str_name(name).map(|s| s.as_str_name()))
        .map_or_else(|| Cow::Owned(name.to_string()), Cow::Borrowed)
}

fn de_name<'de, D: Deserializer<'de>>(d: D) -> Result<EnumName, D::Error> {
    let text = String::deserialize(d)?;
    Ok(enum_name(&text))
}

fn de_optional_name<'de, D: Deserializer<'de>>(d: D) -> Result<Option<EnumName>, D::Error> {
    let text = Option::<String>::deserialize(d)?;
    Ok(text.as_deref().map(enum_name))
}

/// The last status Mesos reported for a task.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct StatusRecord {
    /// `TASK_RUNNING` etc.
    #[serde(deserialize_with = "de_name")]
    pub state: EnumName,
    /// Human-readable message, e.g. the exit code.
    #[serde(default)]
    pub message: Option<String>,
    /// `REASON_*` name.
    #[serde(default, deserialize_with = "de_optional_name")]
    pub reason: Option<EnumName>,
    /// `SOURCE_*` name.
    #[serde(default, deserialize_with = "de_optional_name")]
    pub source: Option<EnumName>,
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
            state: Cow::Borrowed(status.state().as_str_name()),
            message: status.message.clone(),
            reason: status
                .reason
                .map(|_| Cow::Borrowed(status.reason().as_str_name())),
            source: status
                .source
                .map(|_| Cow::Borrowed(status.source().as_str_name())),
            healthy: status.healthy,
            timestamp: status.timestamp,
        }
    }
}

/// How many recent update uuids a task remembers for de-duplication.
pub const RECENT_UUIDS: usize = 8;

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn stored_enum_names_come_back_as_the_protobufs_static_strings() {
        let json = r#"{"state": "TASK_RUNNING", "reason": "REASON_AGENT_REMOVED",
                       "source": "SOURCE_MASTER", "message": "m"}"#;
        let record: StatusRecord = serde_json::from_str(json).unwrap();
        assert!(matches!(record.state, Cow::Borrowed("TASK_RUNNING")));
        assert!(matches!(record.reason, Some(Cow::Borrowed(_))));
        assert!(matches!(record.source, Some(Cow::Borrowed(_))));
        let unknown: StatusRecord =
            serde_json::from_str(r#"{"state": "TASK_NEW_IN_2030"}"#).unwrap();
        assert_eq!(unknown.state, "TASK_NEW_IN_2030");
        // Written as before.
        let back = serde_json::to_value(&record).unwrap();
        assert_eq!(back["state"], "TASK_RUNNING");
        assert_eq!(back["reason"], "REASON_AGENT_REMOVED");
    }
}
