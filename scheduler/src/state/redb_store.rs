//! The embedded store: one redb file under `--data_dir`, a table per
//! [`Category`], one record per key. redb commits are durable (fsync) by
//! default, so a batch that returned `Ok` survives `kill -9`, and a batch is
//! one transaction: all of it or none.

use std::path::Path;

use redb::{Database, ReadableDatabase, ReadableTable, TableDefinition};

use super::{Category, Change, GroupError, Snapshot, Store, StoreError};

/// A redb database file.
pub struct RedbStore {
    db: Database,
}

fn backend(e: impl std::fmt::Display) -> StoreError {
    StoreError::Backend(e.to_string())
}

fn table(category: Category) -> TableDefinition<'static, &'static str, &'static [u8]> {
    TableDefinition::new(category.name())
}

impl RedbStore {
    /// Opens (or creates) `<dir>/baton.redb`.
    pub fn open(dir: &Path) -> Result<RedbStore, StoreError> {
        std::fs::create_dir_all(dir)
            .map_err(|e| backend(format!("create {}: {e}", dir.display())))?;
        let db = Database::create(dir.join("baton.redb")).map_err(backend)?;
        // Create the tables so that reads of a fresh store succeed.
        let txn = db.begin_write().map_err(backend)?;
        for category in Category::ALL {
            txn.open_table(table(category)).map_err(backend)?;
        }
        txn.commit().map_err(backend)?;
        Ok(RedbStore { db })
    }
}

impl Store for RedbStore {
    fn load(&self) -> Result<Snapshot, StoreError> {
        let txn = self.db.begin_read().map_err(backend)?;
        let mut snapshot = Snapshot::default();
        for category in Category::ALL {
            let records = txn.open_table(table(category)).map_err(backend)?;
            let into = snapshot.records.entry(category).or_default();
            for entry in records.iter().map_err(backend)? {
                let (key, value) = entry.map_err(backend)?;
                into.insert(key.value().to_string(), value.value().to_vec());
            }
        }
        Ok(snapshot)
    }

    fn apply(&self, changes: &[Change]) -> Result<(), StoreError> {
        let txn = self.db.begin_write().map_err(backend)?;
        write(&txn, changes)?;
        txn.commit().map_err(backend)
    }

    /// One write transaction, one commit (one fsync) for the whole group:
    /// all of it or none.
    fn apply_group(&self, batches: &[Vec<Change>]) -> Result<(), GroupError> {
        let failed = |error| GroupError {
            committed: 0,
            error,
        };
        let txn = self.db.begin_write().map_err(backend).map_err(failed)?;
        for changes in batches {
            write(&txn, changes).map_err(failed)?;
        }
        txn.commit().map_err(backend).map_err(failed)
    }
}

/// Writes `changes` into `txn` (not yet committed), opening each table
/// once however many of its records a group touches.
fn write(txn: &redb::WriteTransaction, changes: &[Change]) -> Result<(), StoreError> {
    let mut open: Vec<(Category, redb::Table<'_, &'static str, &'static [u8]>)> = Vec::new();
    for change in changes {
        let (Change::Put { category, .. } | Change::Delete { category, .. }) = change;
        let at = match open.iter().position(|(c, _)| c == category) {
            Some(at) => at,
            None => {
                open.push((
                    *category,
                    txn.open_table(table(*category)).map_err(backend)?,
                ));
                open.len() - 1
            }
        };
        let records = &mut open[at].1;
        match change {
            Change::Put { key, value, .. } => {
                records
                    .insert(key.as_str(), value.as_slice())
                    .map_err(backend)?;
            }
            Change::Delete { key, .. } => {
                records.remove(key.as_str()).map_err(backend)?;
            }
        }
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn batches_persist_across_reopen_and_match_the_in_memory_semantics() {
        let dir = tempfile::tempdir().unwrap();
        let batches = vec![
            vec![
                Change::framework_id(Some("fw-1")),
                Change::put_json(Category::App, "/a", &serde_json::json!({"id": "/a"})).unwrap(),
                Change::put_json(Category::Instance, "a.instance-1", &1).unwrap(),
                Change::put_json(Category::Instance, "a.instance-2", &2).unwrap(),
            ],
            vec![
                Change::delete(Category::Instance, "a.instance-1"),
                Change::delete(Category::Delay, "absent"),
            ],
        ];
        let mut expected = Snapshot::default();
        {
            let store = RedbStore::open(dir.path()).unwrap();
            assert!(store.load().unwrap().framework_id().is_none());
            for batch in &batches {
                store.apply(batch).unwrap();
                expected.apply(batch);
            }
        }
        let store = RedbStore::open(dir.path()).unwrap();
        let loaded = store.load().unwrap();
        assert_eq!(loaded.framework_id().as_deref(), Some("fw-1"));
        let instances: Vec<u32> = loaded.decode_all(Category::Instance).unwrap();
        assert_eq!(instances, vec![2]);
        // Empty tables load as empty maps; compare what has content.
        let non_empty = |s: &Snapshot| {
            s.records
                .iter()
                .filter(|(_, r)| !r.is_empty())
                .map(|(c, r)| (*c, r.clone()))
                .collect::<Vec<_>>()
        };
        assert_eq!(non_empty(&loaded), non_empty(&expected));
    }

    #[test]
    fn a_group_commit_is_one_transaction_with_the_batches_applied_in_order() {
        let dir = tempfile::tempdir().unwrap();
        let put = |key: &str, value: &[u8]| Change::Put {
            category: Category::App,
            key: key.into(),
            value: value.to_vec(),
        };
        let batches = vec![
            vec![put("/a", b"1"), put("/b", b"1")],
            vec![put("/a", b"2"), Change::delete(Category::App, "/b")],
            vec![put("/c", b"1")],
        ];
        {
            let store = RedbStore::open(dir.path()).unwrap();
            store.apply_group(&batches).unwrap();
        }
        let mut expected = Snapshot::default();
        for batch in &batches {
            expected.apply(batch);
        }
        let loaded = RedbStore::open(dir.path()).unwrap().load().unwrap();
        assert_eq!(
            loaded.records[&Category::App],
            expected.records[&Category::App]
        );
    }

    #[test]
    fn a_corrupt_record_is_an_error_not_a_reset() {
        let dir = tempfile::tempdir().unwrap();
        let store = RedbStore::open(dir.path()).unwrap();
        store
            .apply(&[Change::Put {
                category: Category::App,
                key: "/x".into(),
                value: b"{not json".to_vec(),
            }])
            .unwrap();
        let err = store
            .load()
            .unwrap()
            .decode_all::<serde_json::Value>(Category::App)
            .unwrap_err();
        assert!(err.to_string().contains("apps//x"), "{err}");
    }
}
