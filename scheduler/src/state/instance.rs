//! Instances: Marathon's split of desired goal from observed condition.
//!
//! An [`Instance`] is one slot of an app: it has a stable id, a [`Goal`]
//! (what we want: keep it running, stop it, or remove it for good) and, once
//! launched, the [`InstanceTask`] Mesos reports on, whose [`Condition`] is
//! what we observe. A task that ends while its goal is Running is relaunched
//! under the same instance id with the next incarnation, so task ids read
//! `<app>.instance-<uuid>._app.<incarnation>` as in Marathon 1.8+.

use std::collections::BTreeMap;
use std::sync::Arc;

use mesos_proto::v1::{TaskState, TaskStatus, task_status::Reason};
use serde::{Deserialize, Serialize};
use uuid::Uuid;

use super::StatusRecord;
use super::app::{PathId, Timestamp, marathon_task_id};

/// What we want of an instance.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
pub enum Goal {
    /// Keep it running: relaunch it whenever its task ends.
    Running,
    /// Stop its task but keep the instance (not used by apps yet).
    Stopped,
    /// Stop its task and forget the instance once the task is terminal.
    Decommissioned,
}

/// What Mesos last told us about an instance's task, condensed the way
/// Marathon does (`TaskConditionMapping`): TASK_LOST is split by reason into
/// "maybe still running somewhere" and "gone".
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize, Deserialize)]
pub enum Condition {
    /// Sent to Mesos in an ACCEPT; no status yet.
    Provisioned,
    /// TASK_STAGING.
    Staging,
    /// TASK_STARTING.
    Starting,
    /// TASK_RUNNING.
    Running,
    /// TASK_KILLING.
    Killing,
    /// TASK_UNREACHABLE, or TASK_LOST for a partition: may still run.
    Unreachable,
    /// TASK_FINISHED.
    Finished,
    /// TASK_FAILED.
    Failed,
    /// TASK_KILLED.
    Killed,
    /// TASK_ERROR.
    Error,
    /// TASK_DROPPED.
    Dropped,
    /// TASK_GONE, TASK_GONE_BY_OPERATOR, or TASK_LOST for other reasons.
    Gone,
    /// TASK_UNKNOWN: the master has never heard of it.
    Unknown,
}

impl Condition {
    /// The condition a status puts a task in.
    pub fn of(status: &TaskStatus) -> Condition {
        match status.state() {
            TaskState::TaskStaging => Condition::Staging,
            TaskState::TaskStarting => Condition::Starting,
            TaskState::TaskRunning => Condition::Running,
            TaskState::TaskKilling => Condition::Killing,
            TaskState::TaskFinished => Condition::Finished,
            TaskState::TaskFailed => Condition::Failed,
            TaskState::TaskKilled => Condition::Killed,
            TaskState::TaskError => Condition::Error,
            TaskState::TaskDropped => Condition::Dropped,
            TaskState::TaskUnreachable => Condition::Unreachable,
            TaskState::TaskGone | TaskState::TaskGoneByOperator => Condition::Gone,
            TaskState::TaskUnknown => Condition::Unknown,
            TaskState::TaskLost => match status.reason() {
                Reason::Reconciliation | Reason::AgentDisconnected | Reason::AgentRemoved
                    if status.reason.is_some() =>
                {
                    Condition::Unreachable
                }
                Reason::TaskUnknown if status.reason.is_some() => Condition::Unknown,
                _ => Condition::Gone,
            },
        }
    }

    /// The task will never run again.
    pub fn is_terminal(self) -> bool {
        matches!(
            self,
            Condition::Finished
                | Condition::Failed
                | Condition::Killed
                | Condition::Error
                | Condition::Dropped
                | Condition::Gone
                | Condition::Unknown
        )
    }

    /// Launched but not yet running.
    pub fn is_launching(self) -> bool {
        matches!(
            self,
            Condition::Provisioned | Condition::Staging | Condition::Starting
        )
    }

    /// The Mesos state name shown in task JSON (`Provisioned` shows as
    /// TASK_STAGING, as Marathon does).
    pub fn mesos_state(self) -> &'static str {
        match self {
            Condition::Provisioned | Condition::Staging => "TASK_STAGING",
            Condition::Starting => "TASK_STARTING",
            Condition::Running => "TASK_RUNNING",
            Condition::Killing => "TASK_KILLING",
            Condition::Unreachable => "TASK_UNREACHABLE",
            Condition::Finished => "TASK_FINISHED",
            Condition::Failed => "TASK_FAILED",
            Condition::Killed => "TASK_KILLED",
            Condition::Error => "TASK_ERROR",
            Condition::Dropped => "TASK_DROPPED",
            Condition::Gone => "TASK_GONE",
            Condition::Unknown => "TASK_UNKNOWN",
        }
    }

    /// Whether this end should make the next launch wait longer (Marathon's
    /// `limitWorthy`): a crash, an error, an exit, a drop. A kill does not.
    pub fn counts_as_launch_failure(self) -> bool {
        matches!(
            self,
            Condition::Failed
                | Condition::Error
                | Condition::Dropped
                | Condition::Gone
                | Condition::Finished
        )
    }
}

/// A status update's uuid: Mesos's are 16 bytes, kept as one number (a
/// task remembers several; 32-digit strings cost five times the memory)
/// and written as the 32 hex digits stored before. A uuid of another
/// length (not from Mesos) is kept as a 128-bit digest of its bytes.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub struct UpdateUuid(pub u128);

impl UpdateUuid {
    /// The uuid of these bytes.
    pub fn of(bytes: &[u8]) -> UpdateUuid {
        match <[u8; 16]>::try_from(bytes) {
            Ok(exact) => UpdateUuid(u128::from_be_bytes(exact)),
            Err(_) => {
                let digest = ring::digest::digest(&ring::digest::SHA256, bytes);
                let mut first = [0u8; 16];
                first.copy_from_slice(&digest.as_ref()[..16]);
                UpdateUuid(u128::from_be_bytes(first))
            }
        }
    }
}

impl Serialize for UpdateUuid {
    fn serialize<S: serde::Serializer>(&self, serializer: S) -> Result<S::Ok, S::Error> {
        serializer.serialize_str(&format!("{:032x}", self.0))
    }
}

impl<'de> Deserialize<'de> for UpdateUuid {
    fn deserialize<D: serde::Deserializer<'de>>(deserializer: D) -> Result<Self, D::Error> {
        let hex = String::deserialize(deserializer)?;
        let bytes: Option<Vec<u8>> = (hex.len() % 2 == 0)
            .then(|| {
                (0..hex.len())
                    .step_by(2)
                    .map(|i| u8::from_str_radix(hex.get(i..i + 2)?, 16).ok())
                    .collect()
            })
            .flatten();
        bytes
            .map(|b| UpdateUuid::of(&b))
            .ok_or_else(|| serde::de::Error::custom(format!("not a hex uuid: {hex:?}")))
    }
}

/// A string many tasks hold the same value of (their agent's id and
/// hostname): one shared allocation per value, read as a `&str`.
#[derive(Clone, PartialEq, Eq, PartialOrd, Ord, Hash, Default)]
pub struct SharedStr(Arc<str>);

/// The agent ids and hostnames in use. Bounded like [`SHARED_FIELDS`].
static SHARED_STRS: std::sync::LazyLock<std::sync::Mutex<std::collections::HashSet<Arc<str>>>> =
    std::sync::LazyLock::new(Default::default);

impl SharedStr {
    /// The one shared string with this text.
    pub fn new(text: &str) -> SharedStr {
        let mut known = SHARED_STRS.lock().expect("never poisoned");
        if let Some(shared) = known.get(text) {
            return SharedStr(shared.clone());
        }
        if known.len() >= MAX_SHARED_FIELD_SETS {
            known.clear();
        }
        let shared: Arc<str> = Arc::from(text);
        known.insert(shared.clone());
        SharedStr(shared)
    }

    /// The text.
    pub fn as_str(&self) -> &str {
        &self.0
    }
}

impl std::ops::Deref for SharedStr {
    type Target = str;
    fn deref(&self) -> &str {
        &self.0
    }
}

impl AsRef<str> for SharedStr {
    fn as_ref(&self) -> &str {
        &self.0
    }
}

impl std::borrow::Borrow<str> for SharedStr {
    fn borrow(&self) -> &str {
        &self.0
    }
}

impl std::fmt::Debug for SharedStr {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        std::fmt::Debug::fmt(&*self.0, f)
    }
}

impl std::fmt::Display for SharedStr {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(&self.0)
    }
}

impl From<String> for SharedStr {
    fn from(text: String) -> SharedStr {
        SharedStr::new(&text)
    }
}

impl From<&str> for SharedStr {
    fn from(text: &str) -> SharedStr {
        SharedStr::new(text)
    }
}

impl PartialEq<str> for SharedStr {
    fn eq(&self, other: &str) -> bool {
        &*self.0 == other
    }
}

impl PartialEq<&str> for SharedStr {
    fn eq(&self, other: &&str) -> bool {
        &*self.0 == *other
    }
}

impl PartialEq<String> for SharedStr {
    fn eq(&self, other: &String) -> bool {
        *self.0 == **other
    }
}

impl PartialEq<SharedStr> for String {
    fn eq(&self, other: &SharedStr) -> bool {
        **self == *other.0
    }
}

impl PartialEq<SharedStr> for str {
    fn eq(&self, other: &SharedStr) -> bool {
        *self == *other.0
    }
}

impl Serialize for SharedStr {
    fn serialize<S: serde::Serializer>(&self, serializer: S) -> Result<S::Ok, S::Error> {
        serializer.serialize_str(&self.0)
    }
}

impl<'de> Deserialize<'de> for SharedStr {
    fn deserialize<D: serde::Deserializer<'de>>(deserializer: D) -> Result<Self, D::Error> {
        let text = String::deserialize(deserializer)?;
        Ok(SharedStr::new(&text))
    }
}

/// The field sets in use, so that every task of an agent holds the same
/// map (an agent's attributes, copied into each of its tasks, were the
/// largest part of a task). Bounded: past [`MAX_SHARED_FIELD_SETS`] sets it
/// starts again, which only costs sharing.
static SHARED_FIELDS: std::sync::LazyLock<std::sync::Mutex<FieldSets>> =
    std::sync::LazyLock::new(Default::default);

/// The distinct field sets [`shared_fields`] hands out.
type FieldSets = std::collections::HashSet<Arc<BTreeMap<String, String>>>;
/// How many distinct field sets are remembered for sharing.
const MAX_SHARED_FIELD_SETS: usize = 65_536;

/// `fields` as the one shared map with these contents.
pub fn shared_fields(fields: BTreeMap<String, String>) -> Arc<BTreeMap<String, String>> {
    let mut known = SHARED_FIELDS.lock().expect("never poisoned");
    if let Some(shared) = known.get(&fields) {
        return shared.clone();
    }
    if known.len() >= MAX_SHARED_FIELD_SETS {
        known.clear();
    }
    let shared = Arc::new(fields);
    known.insert(shared.clone());
    shared
}

fn ser_fields<S: serde::Serializer>(
    fields: &Arc<BTreeMap<String, String>>,
    serializer: S,
) -> Result<S::Ok, S::Error> {
    fields.as_ref().serialize(serializer)
}

fn de_fields<'de, D: serde::Deserializer<'de>>(
    deserializer: D,
) -> Result<Arc<BTreeMap<String, String>>, D::Error> {
    BTreeMap::deserialize(deserializer).map(shared_fields)
}

/// The current (or last) task of an instance.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct InstanceTask {
    /// Mesos TaskID.
    pub task_id: String,
    /// Agent it runs on.
    pub agent_id: SharedStr,
    /// The agent's hostname.
    pub hostname: SharedStr,
    /// The agent's fields constraints look at (`@hostname`, attributes),
    /// as `offers::constraints::offer_fields` renders them. One map per
    /// agent, shared by its tasks ([`shared_fields`]).
    #[serde(serialize_with = "ser_fields", deserialize_with = "de_fields")]
    pub fields: Arc<BTreeMap<String, String>>,
    /// Host ports it got, in declaration order.
    pub host_ports: Vec<u64>,
    /// What Mesos last said.
    pub condition: Condition,
    /// Details of the last status.
    pub last_status: Option<StatusRecord>,
    /// When Baton sent the launch.
    pub launched_at: Timestamp,
    /// When Mesos first reported it running.
    pub started_at: Option<Timestamp>,
    /// Since when it is unreachable, if it is.
    pub unreachable_since: Option<Timestamp>,
    /// When Baton last asked Mesos to kill it.
    pub kill_requested_at: Option<Timestamp>,
    /// The uuids of the last few updates applied, to recognise
    /// redeliveries.
    pub recent_update_uuids: Vec<UpdateUuid>,
    /// What its health checks say, all of them together: `None` until
    /// every check has spoken (or without checks).
    #[serde(default)]
    pub healthy: Option<bool>,
    /// When Baton decided to replace it for failing its health checks: it
    /// is then treated like an instance of an old version, so that its
    /// replacement can start before it is killed.
    #[serde(default)]
    pub retire_for_health: Option<Timestamp>,
    /// Since when it is drained before its kill: shown as TASK_KILLING so
    /// that clients and load balancers stop sending it requests while it
    /// still serves them.
    #[serde(default)]
    pub draining_since: Option<Timestamp>,
    /// Whether its app's readiness checks have all passed once (`None`
    /// until they spoke, or without readiness checks).
    #[serde(default)]
    pub ready: Option<bool>,
    /// A pod instance's tasks, one per container, launched as one task
    /// group; `task_id` above is the first's, and `condition` and
    /// `healthy` sum them up ([`pod_condition`], [`pod_health`]). Boxed:
    /// apps have none, and tasks are kept by the hundred thousand.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub containers: Option<Box<Vec<ContainerTask>>>,
}

/// One container's task of a pod instance.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct ContainerTask {
    /// The container's name in the pod.
    pub name: String,
    /// Its Mesos TaskID: `<pod>.instance-<uuid>.<name>.<incarnation>`.
    pub task_id: String,
    /// What Mesos last said of it.
    pub condition: Condition,
    /// Whether it has a health check.
    pub checked: bool,
    /// What its health check last said (`None` until it spoke).
    pub healthy: Option<bool>,
    /// The message of its last status, if any.
    pub message: Option<String>,
}

/// What a pod instance's containers add up to. All ended: the worst end
/// (a failure over a kill over a clean finish). Some ended other than
/// cleanly while others still run: the group is being torn down (the
/// executor kills the rest), so Killing. Otherwise the least advanced of
/// those still going (a container that finished cleanly is no longer
/// waited for), with Unreachable and Killing first.
pub fn pod_condition(containers: &[ContainerTask]) -> Condition {
    let conditions = || containers.iter().map(|c| c.condition);
    if containers.is_empty() {
        return Condition::Provisioned;
    }
    if conditions().all(Condition::is_terminal) {
        for worst in [
            Condition::Failed,
            Condition::Error,
            Condition::Killed,
            Condition::Dropped,
            Condition::Gone,
            Condition::Unknown,
        ] {
            if conditions().any(|c| c == worst) {
                return worst;
            }
        }
        return Condition::Finished;
    }
    if conditions().any(|c| c.is_terminal() && c != Condition::Finished) {
        return Condition::Killing;
    }
    for first in [Condition::Unreachable, Condition::Killing] {
        if conditions().any(|c| c == first) {
            return first;
        }
    }
    conditions()
        .filter(|c| !c.is_terminal())
        .min()
        .unwrap_or(Condition::Finished)
}

/// What a pod instance's health checks add up to: unhealthy if any checked
/// container says so, healthy once every checked container said healthy,
/// else unknown (`None`, also when no container is checked).
pub fn pod_health(containers: &[ContainerTask]) -> Option<bool> {
    let checked: Vec<Option<bool>> = containers
        .iter()
        .filter(|c| c.checked)
        .map(|c| c.healthy)
        .collect();
    if checked.contains(&Some(false)) {
        Some(false)
    } else if !checked.is_empty() && checked.iter().all(|h| *h == Some(true)) {
        Some(true)
    } else {
        None
    }
}

impl InstanceTask {
    /// The Mesos state clients are shown: TASK_KILLING while it is drained
    /// before a kill (it still runs and serves), else its condition's.
    pub fn shown_state(&self) -> &'static str {
        if self.draining_since.is_some() && self.condition == Condition::Running {
            "TASK_KILLING"
        } else {
            self.condition.mesos_state()
        }
    }

    /// A task just sent to Mesos, with nothing heard of it yet.
    pub fn launched(
        task_id: String,
        agent_id: String,
        hostname: String,
        host_ports: Vec<u64>,
        launched_at: Timestamp,
    ) -> InstanceTask {
        InstanceTask {
            task_id,
            agent_id: SharedStr::new(&agent_id),
            hostname: SharedStr::new(&hostname),
            fields: Arc::default(),
            host_ports,
            condition: Condition::Provisioned,
            last_status: None,
            launched_at,
            started_at: None,
            unreachable_since: None,
            kill_requested_at: None,
            recent_update_uuids: Vec::new(),
            healthy: None,
            retire_for_health: None,
            draining_since: None,
            ready: None,
            containers: None,
        }
    }

    /// Whether `task_id` is this task or one of its pod containers' tasks.
    pub fn has_task_id(&self, task_id: &str) -> bool {
        self.task_id == task_id
            || self
                .containers
                .as_ref()
                .is_some_and(|cs| cs.iter().any(|c| c.task_id == task_id))
    }

    /// Every Mesos TaskID of it: its containers' for a pod instance, else
    /// its own.
    pub fn task_ids(&self) -> Vec<&str> {
        match &self.containers {
            Some(cs) => cs.iter().map(|c| c.task_id.as_str()).collect(),
            None => vec![self.task_id.as_str()],
        }
    }
}

/// One slot of an app.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Instance {
    /// The app it belongs to.
    pub app_id: PathId,
    /// Stable across relaunches.
    pub uuid: Uuid,
    /// How many tasks this instance has had; the next task's number.
    pub incarnation: u64,
    /// What we want.
    pub goal: Goal,
    /// The app version it runs (or will run).
    pub app_version: Timestamp,
    /// Since when it waits for an offer (meaningful without a live task);
    /// for a stopped resident instance, when it was stopped.
    pub scheduled_at: Timestamp,
    /// The current task, or the last one if it ended.
    pub task: Option<InstanceTask>,
    /// Resident instances (apps with persistent volumes): the agent holding
    /// its reserved resources and volumes, which every relaunch reuses.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub reservation: Option<Box<Reservation>>,
}

/// Where a resident instance's resources are reserved and its persistent
/// volumes live (Marathon's `Reservation`). The reserved resources
/// themselves are found in offers by their labels
/// ([`crate::offers::reservation`]), so only the agent is kept.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Reservation {
    /// The agent the resources are reserved on.
    pub agent_id: SharedStr,
    /// When the RESERVE was sent.
    pub reserved_at: Timestamp,
    /// Whether Mesos has shown it exists: a relaunch found it in an offer,
    /// or the agent or executor spoke of a task launched on it. An
    /// unconfirmed one is given up after
    /// `--task_reservation_timeout` (the RESERVE may have been refused).
    pub confirmed: bool,
}

impl Instance {
    /// A new instance waiting for its first launch.
    pub fn schedule(app_id: PathId, app_version: Timestamp, now: Timestamp) -> Instance {
        Instance {
            app_id,
            uuid: Uuid::new_v4(),
            incarnation: 0,
            goal: Goal::Running,
            app_version,
            scheduled_at: now,
            task: None,
            reservation: None,
        }
    }

    /// `<app>.instance-<uuid>`.
    pub fn instance_id(&self) -> String {
        super::app::instance_id(&self.app_id, self.uuid)
    }

    /// The task id the next launch uses.
    pub fn next_task_id(&self) -> String {
        marathon_task_id(&self.app_id, self.uuid, self.incarnation + 1)
    }

    /// The condition of its task, if it has one.
    pub fn condition(&self) -> Option<Condition> {
        self.task.as_ref().map(|t| t.condition)
    }

    /// Waits for an offer: wanted running, and no task or only an ended one.
    pub fn is_waiting(&self) -> bool {
        self.goal == Goal::Running && self.condition().is_none_or(Condition::is_terminal)
    }

    /// Has a task that may be running (not terminal).
    pub fn is_active(&self) -> bool {
        self.condition().is_some_and(|c| !c.is_terminal())
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use mesos_proto::util::{status, task_id, with_reason};
    use mesos_proto::v1::task_status::Source;

    fn lost(reason: Option<Reason>) -> TaskStatus {
        let s = status(task_id("t"), TaskState::TaskLost, Source::Master);
        match reason {
            Some(r) => with_reason(s, r, "lost"),
            None => s,
        }
    }

    #[test]
    fn task_lost_is_split_by_reason_as_marathon_does() {
        assert_eq!(
            Condition::of(&lost(Some(Reason::Reconciliation))),
            Condition::Unreachable
        );
        assert_eq!(
            Condition::of(&lost(Some(Reason::AgentDisconnected))),
            Condition::Unreachable
        );
        assert_eq!(
            Condition::of(&lost(Some(Reason::AgentRemoved))),
            Condition::Unreachable
        );
        assert_eq!(
            Condition::of(&lost(Some(Reason::TaskUnknown))),
            Condition::Unknown
        );
        assert_eq!(
            Condition::of(&lost(Some(Reason::ExecutorTerminated))),
            Condition::Gone
        );
        // An unset reason reads as reason 0 through the getter; it must not
        // be mistaken for a partition.
        assert_eq!(Condition::of(&lost(None)), Condition::Gone);
    }

    #[test]
    fn killed_does_not_count_as_a_launch_failure_but_finished_does() {
        assert!(!Condition::Killed.counts_as_launch_failure());
        assert!(Condition::Finished.counts_as_launch_failure());
        assert!(Condition::Failed.counts_as_launch_failure());
        assert!(Condition::Killed.is_terminal());
        assert!(!Condition::Unreachable.is_terminal());
    }

    #[test]
    fn tasks_of_one_agent_share_its_fields_also_when_read_back() {
        let fields = || {
            BTreeMap::from([
                ("@hostname".to_string(), "10.0.0.1".to_string()),
                ("rack_id".to_string(), "r1".to_string()),
            ])
        };
        let a = shared_fields(fields());
        let b = shared_fields(fields());
        assert!(Arc::ptr_eq(&a, &b));
        let app = PathId::parse("/a", &PathId::root()).unwrap();
        let t = Timestamp::from_millis(0);
        let mut instance = Instance::schedule(app, t, t);
        instance.task = Some(InstanceTask {
            fields: a.clone(),
            ..InstanceTask::launched("t".into(), "ag".into(), "h".into(), vec![], t)
        });
        let json = serde_json::to_string(&instance).unwrap();
        assert!(
            json.contains(r#""fields":{"@hostname":"10.0.0.1","rack_id":"r1"}"#),
            "{json}"
        );
        let back: Instance = serde_json::from_str(&json).unwrap();
        assert!(Arc::ptr_eq(&back.task.unwrap().fields, &a));
    }

    #[test]
    fn update_uuids_are_stored_as_the_hex_written_before() {
        let bytes: Vec<u8> = (0u8..16).collect();
        let uuid = UpdateUuid::of(&bytes);
        let json = serde_json::to_string(&uuid).unwrap();
        assert_eq!(json, "\"000102030405060708090a0b0c0d0e0f\"");
        let back: UpdateUuid = serde_json::from_str(&json).unwrap();
        assert_eq!(back, uuid);
        // A uuid of another length: its digest, the same from bytes or hex.
        let odd = UpdateUuid::of(b"abc");
        let from_hex: UpdateUuid = serde_json::from_str("\"616263\"").unwrap();
        assert_eq!(odd, from_hex);
        assert_ne!(odd, uuid);
        assert!(serde_json::from_str::<UpdateUuid>("\"xyz\"").is_err());
    }

    #[test]
    fn task_ids_count_incarnations() {
        let app = PathId::parse("/prod/web", &PathId::root()).unwrap();
        let i = Instance::schedule(app, Timestamp::from_millis(0), Timestamp::from_millis(0));
        let first = i.next_task_id();
        assert!(first.starts_with("prod_web.instance-"), "{first}");
        assert!(first.ends_with("._app.1"), "{first}");
        assert!(i.is_waiting());
        assert!(!i.is_active());
    }

    fn container(
        name: &str,
        condition: Condition,
        checked: bool,
        healthy: Option<bool>,
    ) -> ContainerTask {
        ContainerTask {
            name: name.into(),
            task_id: format!("p.instance-u.{name}.1"),
            condition,
            checked,
            healthy,
            message: None,
        }
    }

    #[test]
    fn a_pod_instance_is_as_far_as_its_slowest_container_and_ends_with_the_worst() {
        use Condition::*;
        let of = |cs: &[(Condition, bool)]| {
            let cs: Vec<ContainerTask> = cs
                .iter()
                .enumerate()
                .map(|(i, (c, _))| container(&format!("c{i}"), *c, false, None))
                .collect();
            pod_condition(&cs)
        };
        assert_eq!(of(&[(Running, false), (Starting, false)]), Starting);
        assert_eq!(of(&[(Running, false), (Running, false)]), Running);
        // A container that finished cleanly is not waited for.
        assert_eq!(of(&[(Finished, false), (Running, false)]), Running);
        // One failed while the other runs: the group is being torn down.
        assert_eq!(of(&[(Failed, false), (Running, false)]), Killing);
        assert_eq!(of(&[(Unreachable, false), (Running, false)]), Unreachable);
        // All ended: the worst end.
        assert_eq!(of(&[(Killed, false), (Failed, false)]), Failed);
        assert_eq!(of(&[(Killed, false), (Finished, false)]), Killed);
        assert_eq!(of(&[(Finished, false), (Finished, false)]), Finished);
        assert_eq!(pod_condition(&[]), Provisioned);
    }

    #[test]
    fn a_pod_instance_is_healthy_once_every_checked_container_is() {
        use Condition::Running;
        let unchecked = container("a", Running, false, None);
        let pending = container("b", Running, true, None);
        let well = container("b", Running, true, Some(true));
        let sick = container("c", Running, true, Some(false));
        assert_eq!(pod_health(std::slice::from_ref(&unchecked)), None);
        assert_eq!(pod_health(&[unchecked.clone(), pending]), None);
        assert_eq!(pod_health(&[unchecked.clone(), well.clone()]), Some(true));
        assert_eq!(pod_health(&[unchecked, well, sick]), Some(false));
    }
}
