//! An in-memory [`Store`] for tests: same semantics, no durability.

use std::collections::BTreeMap;
use std::sync::Mutex;

use super::{Change, Snapshot, Store, StoreError, TaskRecord};

/// Keeps everything in a map behind a mutex.
#[derive(Debug, Default)]
pub struct MemoryStore {
    inner: Mutex<(Option<String>, BTreeMap<String, TaskRecord>)>,
}

impl Store for MemoryStore {
    fn load(&self) -> Result<Snapshot, StoreError> {
        let inner = self
            .inner
            .lock()
            .map_err(|_| StoreError::Backend("memory store poisoned".into()))?;
        Ok(Snapshot {
            framework_id: inner.0.clone(),
            tasks: inner.1.values().cloned().collect(),
        })
    }

    fn apply(&self, changes: &[Change]) -> Result<(), StoreError> {
        let mut inner = self
            .inner
            .lock()
            .map_err(|_| StoreError::Backend("memory store poisoned".into()))?;
        for change in changes {
            match change {
                Change::FrameworkId(id) => inner.0 = id.clone(),
                Change::PutTask(task) => {
                    inner.1.insert(task.task_id.clone(), (**task).clone());
                }
                Change::DeleteTask(id) => {
                    inner.1.remove(id);
                }
            }
        }
        Ok(())
    }
}
