//! What Baton knows and remembers: the model ([`model`], [`app`] with its
//! [`app::pod`] for Marathon's pod definitions, [`instance`], and
//! [`instance_map`], one app's instances as snapshots hold them) and its durable
//! store behind the [`Store`] trait — the embedded redb store
//! ([`redb_store`]) by default, an in-memory one ([`memory`]) for tests, and
//! ZooKeeper ([`zk_store`]) for HA. Every change is a batch of [`Change`]s applied
//! atomically, which maps onto a redb transaction and a ZooKeeper multi-op.
//! Batches that arrive together are group-committed
//! ([`Store::apply_group`]): each still atomic, all durable with one commit.
//! [`crash`] wraps any of them to inject a `kill -9` after a chosen write.

pub mod app;
pub mod crash;
pub mod instance;
pub mod instance_map;
pub mod memory;
pub mod model;
pub mod redb_store;
pub mod zk_store;

pub use instance_map::InstanceMap;
pub use memory::MemoryStore;
pub use model::StatusRecord;
pub use redb_store::RedbStore;
pub use zk_store::ZkStore;

use std::collections::BTreeMap;

/// Why the store could not read or write.
#[derive(Debug, thiserror::Error)]
pub enum StoreError {
    /// The backend failed (disk, database, session).
    #[error("store backend failed: {0}")]
    Backend(String),
    /// This process lost leadership: its writes are refused (fencing).
    #[error("write refused: {0}")]
    Fenced(String),
    /// A record changed behind our back (another writer): nothing of the
    /// batch was written.
    #[error("write conflict: {0}")]
    Conflict(String),
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

/// The kinds of record the store keeps; each is a table in redb and a
/// znode directory in ZooKeeper, one record per key (never one growing blob).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub enum Category {
    /// Small singletons such as the FrameworkID.
    Meta,
    /// The current definition of each app, by app id.
    App,
    /// Past definitions of apps, by `<app id>@<version>`.
    AppVersion,
    /// Instances, by instance id.
    Instance,
    /// Launch delays, by app id.
    Delay,
    /// Deployment plans, by deployment id.
    Deployment,
}

impl Category {
    /// Every category, in load order.
    pub const ALL: [Category; 6] = [
        Category::Meta,
        Category::App,
        Category::AppVersion,
        Category::Instance,
        Category::Delay,
        Category::Deployment,
    ];

    /// The table (or znode directory) name.
    pub fn name(self) -> &'static str {
        match self {
            Category::Meta => "meta",
            Category::App => "apps",
            Category::AppVersion => "app_versions",
            Category::Instance => "instances",
            Category::Delay => "delays",
            Category::Deployment => "deployments",
        }
    }
}

/// The Meta key of the FrameworkID.
pub const FRAMEWORK_ID_KEY: &str = "framework_id";

/// One durable change: a record written or removed.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Change {
    /// Insert or replace a record.
    Put {
        /// Its kind.
        category: Category,
        /// Its key within the kind.
        key: String,
        /// Its bytes (JSON for Baton's own records).
        value: Vec<u8>,
    },
    /// Remove a record (absent is fine).
    Delete {
        /// Its kind.
        category: Category,
        /// Its key within the kind.
        key: String,
    },
}

impl Change {
    /// A record as JSON.
    pub fn put_json<T: serde::Serialize>(
        category: Category,
        key: impl Into<String>,
        value: &T,
    ) -> Result<Change, StoreError> {
        let key = key.into();
        let value = serde_json::to_vec(value).map_err(|source| StoreError::Corrupt {
            key: key.clone(),
            source,
        })?;
        Ok(Change::Put {
            category,
            key,
            value,
        })
    }

    /// Removes a record.
    pub fn delete(category: Category, key: impl Into<String>) -> Change {
        Change::Delete {
            category,
            key: key.into(),
        }
    }

    /// Remembers (or forgets) the FrameworkID.
    pub fn framework_id(id: Option<&str>) -> Change {
        match id {
            Some(id) => Change::Put {
                category: Category::Meta,
                key: FRAMEWORK_ID_KEY.into(),
                value: id.as_bytes().to_vec(),
            },
            None => Change::delete(Category::Meta, FRAMEWORK_ID_KEY),
        }
    }
}

/// Everything the store holds, as loaded at startup: raw records by kind.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Snapshot {
    /// Records by category, then key.
    pub records: BTreeMap<Category, BTreeMap<String, Vec<u8>>>,
}

impl Snapshot {
    /// Applies changes in memory (the reference semantics every store has).
    pub fn apply(&mut self, changes: &[Change]) {
        for change in changes {
            match change {
                Change::Put {
                    category,
                    key,
                    value,
                } => {
                    self.records
                        .entry(*category)
                        .or_default()
                        .insert(key.clone(), value.clone());
                }
                Change::Delete { category, key } => {
                    if let Some(records) = self.records.get_mut(category) {
                        records.remove(key);
                    }
                }
            }
        }
    }

    /// The stored FrameworkID.
    pub fn framework_id(&self) -> Option<String> {
        self.records
            .get(&Category::Meta)?
            .get(FRAMEWORK_ID_KEY)
            .map(|v| String::from_utf8_lossy(v).into_owned())
    }

    /// Decodes every JSON record of a category.
    pub fn decode_all<T: serde::de::DeserializeOwned + Send>(
        &self,
        category: Category,
    ) -> Result<Vec<T>, StoreError> {
        let Some(records) = self.records.get(&category) else {
            return Ok(Vec::new());
        };
        let records: Vec<(&String, &Vec<u8>)> = records.iter().collect();
        let decode = |chunk: &[(&String, &Vec<u8>)]| -> Result<Vec<T>, StoreError> {
            chunk
                .iter()
                .map(|(key, value)| {
                    serde_json::from_slice(value).map_err(|source| StoreError::Corrupt {
                        key: format!("{}/{key}", category.name()),
                        source,
                    })
                })
                .collect()
        };
        // A new leader decodes a large state: spread it over the CPUs.
        let threads = std::thread::available_parallelism()
            .map_or(1, usize::from)
            .min(8);
        if threads == 1 || records.len() < PARALLEL_DECODE_FROM {
            return decode(&records);
        }
        let chunk = records.len().div_ceil(threads);
        std::thread::scope(|scope| {
            let parts: Vec<_> = records
                .chunks(chunk)
                .map(|part| scope.spawn(move || decode(part)))
                .collect();
            let mut all = Vec::with_capacity(records.len());
            for part in parts {
                match part.join() {
                    Ok(decoded) => all.extend(decoded?),
                    Err(_) => {
                        return Err(StoreError::Backend("a decoding thread panicked".into()));
                    }
                }
            }
            Ok(all)
        })
    }
}

/// Categories with at least this many records are decoded on every CPU.
const PARALLEL_DECODE_FROM: usize = 4096;

/// A group commit ([`Store::apply_group`]) that did not wholly happen.
#[derive(Debug, thiserror::Error)]
#[error("{error} (the first {committed} writes of the group are durable)")]
pub struct GroupError {
    /// How many of the group's batches, from the first, are durable all
    /// the same: 0 for a store that commits a group all or nothing; more
    /// when one had to cut the group (ZooKeeper's request limit) and a
    /// later part failed.
    pub committed: usize,
    /// Why the rest is not.
    pub error: StoreError,
}

/// Durable state. `apply` returns only once the batch is durable: whatever
/// Baton acknowledges (to a client or to Mesos) after it survives `kill -9`.
pub trait Store: Send + Sync + 'static {
    /// Reads everything.
    fn load(&self) -> Result<Snapshot, StoreError>;
    /// Applies a batch atomically and durably.
    fn apply(&self, changes: &[Change]) -> Result<(), StoreError>;
    /// Group commit: applies several batches, in order, each atomically,
    /// and returns once all of them are durable — with one durable commit
    /// for the lot where the backend allows (one redb transaction, one
    /// fsync; one ZooKeeper multi-op), so that writes which arrive together
    /// share its cost instead of paying one each. On failure it says how
    /// many batches, from the first, are durable anyway; never a part of
    /// one unless that batch alone had to be cut.
    ///
    /// The default commits the concatenation as one batch: all or nothing.
    fn apply_group(&self, batches: &[Vec<Change>]) -> Result<(), GroupError> {
        self.apply(&batches.concat()).map_err(|error| GroupError {
            committed: 0,
            error,
        })
    }
}

impl StoreError {
    /// The same failure again, for each of several writes it failed
    /// together (the error itself is not `Clone`: it may carry a decoder's
    /// error, kept here as text).
    pub fn again(&self) -> StoreError {
        match self {
            StoreError::Backend(m) => StoreError::Backend(m.clone()),
            StoreError::Fenced(m) => StoreError::Fenced(m.clone()),
            StoreError::Conflict(m) => StoreError::Conflict(m.clone()),
            StoreError::Corrupt { .. } => StoreError::Backend(self.to_string()),
        }
    }
}
