//! An in-memory [`Store`] for tests: same semantics, no durability.

use std::sync::Mutex;

use super::{Change, Snapshot, Store, StoreError};

/// Keeps everything in a snapshot behind a mutex.
#[derive(Debug, Default)]
pub struct MemoryStore {
    inner: Mutex<Snapshot>,
}

impl Store for MemoryStore {
    fn load(&self) -> Result<Snapshot, StoreError> {
        let inner = self
            .inner
            .lock()
            .map_err(|_| StoreError::Backend("memory store poisoned".into()))?;
        Ok(inner.clone())
    }

    fn apply(&self, changes: &[Change]) -> Result<(), StoreError> {
        let mut inner = self
            .inner
            .lock()
            .map_err(|_| StoreError::Backend("memory store poisoned".into()))?;
        inner.apply(changes);
        Ok(())
    }
}
