//! What Baton knows and remembers: the model ([`model`]) and its durable
//! store behind the [`Store`] trait — the embedded redb store
//! ([`redb_store`]) by default, an in-memory one ([`memory`]) for tests, and
//! ZooKeeper for HA later. Every change is a batch of [`Change`]s applied
//! atomically, which maps onto a redb transaction and a ZooKeeper multi-op.

pub mod app;
pub mod instance;
pub mod memory;
pub mod model;
pub mod redb_store;

pub use memory::MemoryStore;
pub use model::{StatusRecord, TaskRecord, TaskSpec};
pub use redb_store::RedbStore;

/// Why the store could not read or write.
#[derive(Debug, thiserror::Error)]
pub enum StoreError {
    /// The backend failed (disk, database, session).
    #[error("store backend failed: {0}")]
    Backend(String),
    /// A stored record does not decode; the store is not silently reset.
    #[error("stored record {key:?} is corrupt: {source}")]
    Corrupt {
        /// The record's key.
        key: String,
        /// The decoder's complaint.
        #[source]
        source: serde_json::Error,
    },
}

/// One durable change.
#[derive(Debug, Clone)]
pub enum Change {
    /// Remember (or forget) the FrameworkID Mesos assigned.
    FrameworkId(Option<String>),
    /// Insert or replace a task.
    PutTask(Box<TaskRecord>),
    /// Forget a task.
    DeleteTask(String),
}

/// Everything the store holds, as loaded at startup.
#[derive(Debug, Clone, Default)]
pub struct Snapshot {
    /// The FrameworkID to resubscribe with.
    pub framework_id: Option<String>,
    /// Known tasks.
    pub tasks: Vec<TaskRecord>,
}

/// Durable state. `apply` returns only once the batch is durable: whatever
/// Baton acknowledges (to a client or to Mesos) after it survives `kill -9`.
pub trait Store: Send + Sync + 'static {
    /// Reads everything.
    fn load(&self) -> Result<Snapshot, StoreError>;
    /// Applies a batch atomically and durably.
    fn apply(&self, changes: &[Change]) -> Result<(), StoreError>;
}
