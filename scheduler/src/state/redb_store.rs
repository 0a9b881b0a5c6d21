//! The embedded store: one redb file under `--data_dir`. redb commits are
//! durable (fsync) by default, so a batch that returned `Ok` survives
//! `kill -9`. Records are JSON, one per key, so a change rewrites only what
//! changed.

use std::path::Path;

use redb::{Database, ReadableDatabase, ReadableTable, TableDefinition};

use super::{Change, Snapshot, Store, StoreError, TaskRecord};

const META: TableDefinition<&str, &[u8]> = TableDefinition::new("meta");
const TASKS: TableDefinition<&str, &[u8]> = TableDefinition::new("tasks");
const FRAMEWORK_ID_KEY: &str = "framework_id";

/// A redb database file.
pub struct RedbStore {
    db: Database,
}

fn backend(e: impl std::fmt::Display) -> StoreError {
    StoreError::Backend(e.to_string())
}

impl RedbStore {
    /// Opens (or creates) `<dir>/baton.redb`.
    pub fn open(dir: &Path) -> Result<RedbStore, StoreError> {
        std::fs::create_dir_all(dir)
            .map_err(|e| backend(format!("create {}: {e}", dir.display())))?;
        let db = Database::create(dir.join("baton.redb")).map_err(backend)?;
        // Create the tables so that reads of a fresh store succeed.
        let txn = db.begin_write().map_err(backend)?;
        txn.open_table(META).map_err(backend)?;
        txn.open_table(TASKS).map_err(backend)?;
        txn.commit().map_err(backend)?;
        Ok(RedbStore { db })
    }
}

impl Store for RedbStore {
    fn load(&self) -> Result<Snapshot, StoreError> {
        let txn = self.db.begin_read().map_err(backend)?;
        let meta = txn.open_table(META).map_err(backend)?;
        let framework_id = meta
            .get(FRAMEWORK_ID_KEY)
            .map_err(backend)?
            .map(|v| String::from_utf8_lossy(v.value()).into_owned());
        let tasks_table = txn.open_table(TASKS).map_err(backend)?;
        let mut tasks = Vec::new();
        for entry in tasks_table.iter().map_err(backend)? {
            let (key, value) = entry.map_err(backend)?;
            let task: TaskRecord =
                serde_json::from_slice(value.value()).map_err(|source| StoreError::Corrupt {
                    key: key.value().to_string(),
                    source,
                })?;
            tasks.push(task);
        }
        Ok(Snapshot {
            framework_id,
            tasks,
        })
    }

    fn apply(&self, changes: &[Change]) -> Result<(), StoreError> {
        let txn = self.db.begin_write().map_err(backend)?;
        {
            let mut meta = txn.open_table(META).map_err(backend)?;
            let mut tasks = txn.open_table(TASKS).map_err(backend)?;
            for change in changes {
                match change {
                    Change::FrameworkId(Some(id)) => {
                        meta.insert(FRAMEWORK_ID_KEY, id.as_bytes())
                            .map_err(backend)?;
                    }
                    Change::FrameworkId(None) => {
                        meta.remove(FRAMEWORK_ID_KEY).map_err(backend)?;
                    }
                    Change::PutTask(task) => {
                        let bytes =
                            serde_json::to_vec(task).map_err(|source| StoreError::Corrupt {
                                key: task.task_id.clone(),
                                source,
                            })?;
                        tasks
                            .insert(task.task_id.as_str(), bytes.as_slice())
                            .map_err(backend)?;
                    }
                    Change::DeleteTask(id) => {
                        tasks.remove(id.as_str()).map_err(backend)?;
                    }
                }
            }
        }
        txn.commit().map_err(backend)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::state::TaskSpec;

    fn task(id: &str) -> TaskRecord {
        TaskRecord {
            task_id: id.into(),
            spec: TaskSpec {
                name: "t".into(),
                cmd: "sleep 1".into(),
                cpus: 0.1,
                mem: 32.0,
                disk: 0.0,
                ports: 1,
                env: Default::default(),
                kill_grace_seconds: None,
            },
            agent_id: None,
            hostname: None,
            host_ports: vec![],
            state: None,
            last_status: None,
            staged_at: None,
            started_at: None,
            updates_applied: 0,
            recent_update_uuids: vec![],
            kill_requested: false,
        }
    }

    #[test]
    fn batches_persist_across_reopen() {
        let dir = tempfile::tempdir().unwrap();
        {
            let store = RedbStore::open(dir.path()).unwrap();
            assert!(store.load().unwrap().framework_id.is_none());
            store
                .apply(&[
                    Change::FrameworkId(Some("fw-1".into())),
                    Change::PutTask(Box::new(task("a"))),
                    Change::PutTask(Box::new(task("b"))),
                ])
                .unwrap();
            store.apply(&[Change::DeleteTask("a".into())]).unwrap();
        }
        let store = RedbStore::open(dir.path()).unwrap();
        let snapshot = store.load().unwrap();
        assert_eq!(snapshot.framework_id.as_deref(), Some("fw-1"));
        assert_eq!(snapshot.tasks, vec![task("b")]);
    }
}
