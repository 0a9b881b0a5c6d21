//! What Baton remembers of a task's last status.

use std::collections::BTreeSet;
use std::fmt;
use std::ops::Deref;
use std::sync::Mutex;

use mesos_proto::v1::{TaskState, TaskStatus, task_status};
use serde::{Deserialize, Deserializer, Serialize, Serializer};

/// A Mesos enum name (`TASK_RUNNING`, `REASON_…`, `SOURCE_…`) in 16 bytes
/// and no allocation of its own: every task keeps three. The protobuf's own
/// static string when it is one; a name this build does not know (read
/// from a store a newer Baton wrote) is kept once for the process.
#[derive(Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub struct EnumName(&'static str);

/// How many distinct unknown names are kept; later ones read as
/// [`UNKNOWN_NAME`]. Only a store written by a newer Baton holds any.
const UNKNOWN_NAMES_KEPT: usize = 1024;
/// What an unknown name reads as once 1,024 distinct ones are kept.
pub const UNKNOWN_NAME: &str = "UNKNOWN";

static UNKNOWN_NAMES: Mutex<BTreeSet<&'static str>> = Mutex::new(BTreeSet::new());

impl EnumName {
    /// `name` as the static protobuf name it equals, else as kept.
    pub fn new(name: &str) -> EnumName {
        let known = TaskState::from_str_name(name)
            .map(|s| s.as_str_name())
            .or_else(|| task_status::Reason::from_str_name(name).map(|r| r.as_str_name()))
            .or_else(|| task_status::Source::from_str_name(name).map(|s| s.as_str_name()));
        if let Some(known) = known {
            return EnumName(known);
        }
        let mut kept = UNKNOWN_NAMES.lock().unwrap_or_else(|e| e.into_inner());
        if let Some(&same) = kept.get(name) {
            return EnumName(same);
        }
        if kept.len() >= UNKNOWN_NAMES_KEPT {
            return EnumName(UNKNOWN_NAME);
        }
        // Leaked on purpose: bounded above, and kept for the process.
        let leaked: &'static str = Box::leak(name.to_owned().into_boxed_str());
        kept.insert(leaked);
        EnumName(leaked)
    }

    /// The name.
    pub fn as_str(&self) -> &'static str {
        self.0
    }
}

impl From<&'static str> for EnumName {
    fn from(name: &'static str) -> EnumName {
        EnumName(name)
    }
}

impl Deref for EnumName {
    type Target = str;
    fn deref(&self) -> &str {
        self.0
    }
}

impl PartialEq<&str> for EnumName {
    fn eq(&self, other: &&str) -> bool {
        self.0 == *other
    }
}

impl fmt::Debug for EnumName {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        fmt::Debug::fmt(self.0, f)
    }
}

impl fmt::Display for EnumName {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.0)
    }
}

impl Serialize for EnumName {
    fn serialize<S: Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        s.serialize_str(self.0)
    }
}

impl<'de> Deserialize<'de> for EnumName {
    fn deserialize<D: Deserializer<'de>>(d: D) -> Result<EnumName, D::Error> {
        let text = <std::borrow::Cow<'de, str>>::deserialize(d)?;
        Ok(EnumName::new(&text))
    }
}

/// The last status Mesos reported for a task.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct StatusRecord {
    /// `TASK_RUNNING` etc.
    pub state: EnumName,
    /// Human-readable message, e.g. the exit code.
    #[serde(default)]
    pub message: Option<Box<str>>,
    /// `REASON_*` name.
    #[serde(default)]
    pub reason: Option<EnumName>,
    /// `SOURCE_*` name.
    #[serde(default)]
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
            state: status.state().as_str_name().into(),
            message: status.message.as_deref().map(Box::from),
            reason: status.reason.map(|_| status.reason().as_str_name().into()),
            source: status.source.map(|_| status.source().as_str_name().into()),
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
        assert!(std::ptr::eq(
            record.state.as_str(),
            TaskState::TaskRunning.as_str_name()
        ));
        assert!(std::ptr::eq(
            record.reason.unwrap().as_str(),
            task_status::Reason::AgentRemoved.as_str_name()
        ));
        assert_eq!(record.source.unwrap(), "SOURCE_MASTER");
        let unknown: StatusRecord =
            serde_json::from_str(r#"{"state": "TASK_NEW_IN_2030"}"#).unwrap();
        assert_eq!(unknown.state, "TASK_NEW_IN_2030");
        let again: StatusRecord = serde_json::from_str(r#"{"state": "TASK_NEW_IN_2030"}"#).unwrap();
        assert!(
            std::ptr::eq(unknown.state.as_str(), again.state.as_str()),
            "an unknown name is kept once"
        );
        // Written as before.
        let back = serde_json::to_value(&record).unwrap();
        assert_eq!(back["state"], "TASK_RUNNING");
        assert_eq!(back["reason"], "REASON_AGENT_REMOVED");
    }
}
