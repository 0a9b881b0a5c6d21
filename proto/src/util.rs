//! Small constructors and predicates over the generated types, shared by the
//! scheduler, the executor and mesos-local so each rule lives in one place.

use std::time::Duration;

use crate::v1::{self, TaskState, task_status::Reason, task_status::Source, value};

/// `mesos.v1.FrameworkID` from a string.
pub fn framework_id(value: impl Into<String>) -> v1::FrameworkId {
    v1::FrameworkId {
        value: value.into(),
    }
}
/// `mesos.v1.AgentID` from a string.
pub fn agent_id(value: impl Into<String>) -> v1::AgentId {
    v1::AgentId {
        value: value.into(),
    }
}
/// `mesos.v1.TaskID` from a string.
pub fn task_id(value: impl Into<String>) -> v1::TaskId {
    v1::TaskId {
        value: value.into(),
    }
}
/// `mesos.v1.OfferID` from a string.
pub fn offer_id(value: impl Into<String>) -> v1::OfferId {
    v1::OfferId {
        value: value.into(),
    }
}
/// `mesos.v1.ExecutorID` from a string.
pub fn executor_id(value: impl Into<String>) -> v1::ExecutorId {
    v1::ExecutorId {
        value: value.into(),
    }
}

/// A scalar resource such as `cpus` or `mem`.
pub fn scalar_resource(name: &str, amount: f64) -> v1::Resource {
    v1::Resource {
        name: name.to_string(),
        r#type: v1::value::Type::Scalar as i32,
        scalar: Some(value::Scalar { value: amount }),
        ..Default::default()
    }
}

/// A ranges resource such as `ports`, from inclusive `(begin, end)` pairs.
pub fn ranges_resource(name: &str, ranges: &[(u64, u64)]) -> v1::Resource {
    v1::Resource {
        name: name.to_string(),
        r#type: v1::value::Type::Ranges as i32,
        ranges: Some(value::Ranges {
            range: ranges
                .iter()
                .map(|&(begin, end)| value::Range { begin, end })
                .collect(),
        }),
        ..Default::default()
    }
}

/// A TEXT attribute, e.g. `rack_id:rack-1`.
pub fn text_attribute(name: &str, text: &str) -> v1::Attribute {
    v1::Attribute {
        name: name.to_string(),
        r#type: v1::value::Type::Text as i32,
        text: Some(value::Text {
            value: text.to_string(),
        }),
        ..Default::default()
    }
}

/// A `DurationInfo` from a [`Duration`].
pub fn duration_info(d: Duration) -> v1::DurationInfo {
    v1::DurationInfo {
        nanoseconds: i64::try_from(d.as_nanos()).unwrap_or(i64::MAX),
    }
}

/// A [`Duration`] from a `DurationInfo`; negative values count as zero.
pub fn from_duration_info(d: &v1::DurationInfo) -> Duration {
    Duration::from_nanos(u64::try_from(d.nanoseconds).unwrap_or(0))
}

/// Whether a task in this state will never run again, as Mesos's
/// `protobuf::isTerminalState` defines it. TASK_LOST is terminal even though
/// a partitioned agent may later "resurrect" the task.
pub fn is_terminal(state: TaskState) -> bool {
    matches!(
        state,
        TaskState::TaskFinished
            | TaskState::TaskFailed
            | TaskState::TaskKilled
            | TaskState::TaskError
            | TaskState::TaskLost
            | TaskState::TaskDropped
            | TaskState::TaskGone
            | TaskState::TaskGoneByOperator
    )
}

/// The state of a status, `TASK_UNKNOWN` when the number is not a state.
pub fn state_of(status: &v1::TaskStatus) -> TaskState {
    TaskState::try_from(status.state).unwrap_or(TaskState::TaskUnknown)
}

/// A fresh random (v4) UUID as the 16 raw bytes status updates carry.
pub fn new_status_uuid() -> Vec<u8> {
    uuid::Uuid::new_v4().as_bytes().to_vec()
}

/// Seconds since the Unix epoch, as `TaskStatus.timestamp` carries them.
pub fn now_timestamp() -> f64 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map(|d| d.as_secs_f64())
        .unwrap_or(0.0)
}

/// A status update with the fields every sender sets.
pub fn status(task_id: v1::TaskId, state: TaskState, source: Source) -> v1::TaskStatus {
    v1::TaskStatus {
        task_id,
        state: state as i32,
        source: Some(source as i32),
        timestamp: Some(now_timestamp()),
        ..Default::default()
    }
}

/// Sets `reason` and `message` on a status.
pub fn with_reason(
    mut status: v1::TaskStatus,
    reason: Reason,
    message: impl Into<String>,
) -> v1::TaskStatus {
    status.reason = Some(reason as i32);
    status.message = Some(message.into());
    status
}

/// Parses a Mesos (stout) duration such as `5secs`, `15mins`, `1.5hrs`,
/// `250ms`; units `ns us ms secs mins hrs days weeks`.
pub fn parse_duration(text: &str) -> Option<Duration> {
    let text = text.trim();
    let split = text.find(|c: char| c.is_ascii_alphabetic())?;
    let (number, unit) = text.split_at(split);
    let number: f64 = number.trim().parse().ok()?;
    if !number.is_finite() || number < 0.0 {
        return None;
    }
    let unit_seconds = match unit {
        "ns" => 1e-9,
        "us" => 1e-6,
        "ms" => 1e-3,
        "secs" => 1.0,
        "mins" => 60.0,
        "hrs" => 3600.0,
        "days" => 86_400.0,
        "weeks" => 604_800.0,
        _ => return None,
    };
    Duration::try_from_secs_f64(number * unit_seconds).ok()
}

/// Formats a duration the way Mesos writes them in executor environments,
/// in the largest unit that keeps it exact enough (`5secs`, `15mins`).
pub fn format_duration(d: Duration) -> String {
    let secs = d.as_secs_f64();
    for (unit, size) in [
        ("weeks", 604_800.0),
        ("days", 86_400.0),
        ("hrs", 3600.0),
        ("mins", 60.0),
        ("secs", 1.0),
    ] {
        if secs >= size && (secs / size).fract() == 0.0 {
            return format!("{}{unit}", secs / size);
        }
    }
    if secs >= 1.0 {
        return format!("{secs}secs");
    }
    format!("{}ms", d.as_secs_f64() * 1000.0)
}

/// Whether an update must be acknowledged: only those carrying a uuid.
/// Master-generated updates (reconciliation answers, TASK_LOST on agent
/// loss) have none, and an ACK for them gets 400.
pub fn needs_ack(status: &v1::TaskStatus) -> bool {
    status.uuid.as_ref().is_some_and(|u| !u.is_empty())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn mesos_durations_parse_and_format() {
        assert_eq!(parse_duration("5secs"), Some(Duration::from_secs(5)));
        assert_eq!(parse_duration("15mins"), Some(Duration::from_secs(900)));
        assert_eq!(parse_duration("1.5hrs"), Some(Duration::from_secs(5400)));
        assert_eq!(parse_duration("250ms"), Some(Duration::from_millis(250)));
        assert_eq!(
            parse_duration("2weeks"),
            Some(Duration::from_secs(1_209_600))
        );
        assert_eq!(parse_duration("5"), None);
        assert_eq!(parse_duration("5 parsecs"), None);
        assert_eq!(parse_duration("-1secs"), None);
        for d in [
            Duration::from_secs(5),
            Duration::from_secs(900),
            Duration::from_millis(1500),
            Duration::from_millis(20),
        ] {
            assert_eq!(
                parse_duration(&format_duration(d)),
                Some(d),
                "{}",
                format_duration(d)
            );
        }
    }

    #[test]
    fn status_uuids_are_fresh_v4() {
        let a = new_status_uuid();
        let b = new_status_uuid();
        assert_eq!(a.len(), 16);
        assert_ne!(a, b);
        assert_eq!(a[6] >> 4, 4);
    }
}
