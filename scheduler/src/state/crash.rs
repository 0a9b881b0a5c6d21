//! Fault injection for crash tests: a [`Store`] that kills its own process
//! (`SIGKILL`, as `kill -9` does) right after a chosen durable write.
//!
//! Counting starts at the first write that stores a deployment — the write
//! of the change under test — so that a test can put the crash between any
//! two consecutive writes of a delete, a scale or a restart on purpose, not
//! wherever timing happens to land it. Writes before that (status updates
//! of a reconciliation at start, say) are not counted.
//!
//! Enabled by the hidden `--crash_after_store_writes N` flag; never on
//! unless asked for.

use std::sync::Arc;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};

use tracing::warn;

use super::{Category, Change, Snapshot, Store, StoreError};

/// Wraps a store; the process dies right after write `after` (1-based),
/// counted from the first write that stores a deployment.
pub struct CrashAfterWrites {
    inner: Arc<dyn Store>,
    after: u64,
    armed: AtomicBool,
    written: AtomicU64,
}

impl CrashAfterWrites {
    /// `inner`, with the crash after write `after`.
    pub fn new(inner: Arc<dyn Store>, after: u64) -> CrashAfterWrites {
        CrashAfterWrites {
            inner,
            after,
            armed: AtomicBool::new(false),
            written: AtomicU64::new(0),
        }
    }

    /// Counts a durable write; whether it is the one to die after.
    fn count(&self, changes: &[Change]) -> bool {
        let stores_deployment = changes.iter().any(|c| {
            matches!(
                c,
                Change::Put {
                    category: Category::Deployment,
                    ..
                }
            )
        });
        if !self.armed.load(Ordering::SeqCst) && !stores_deployment {
            return false;
        }
        self.armed.store(true, Ordering::SeqCst);
        self.written.fetch_add(1, Ordering::SeqCst) + 1 >= self.after
    }
}

impl Store for CrashAfterWrites {
    fn load(&self) -> Result<Snapshot, StoreError> {
        self.inner.load()
    }

    fn apply(&self, changes: &[Change]) -> Result<(), StoreError> {
        self.inner.apply(changes)?;
        if self.count(changes) {
            warn!(
                after = self.after,
                "crash injection: killing this process (SIGKILL) after a durable write"
            );
            let _ = nix::sys::signal::raise(nix::sys::signal::Signal::SIGKILL);
        }
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::state::MemoryStore;

    #[test]
    fn counts_from_the_first_write_that_stores_a_deployment() {
        let store = CrashAfterWrites::new(Arc::new(MemoryStore::default()), 2);
        let instance = Change::delete(Category::Instance, "i");
        let deployment = Change::Put {
            category: Category::Deployment,
            key: "d".into(),
            value: b"{}".to_vec(),
        };
        assert!(
            !store.count(std::slice::from_ref(&instance)),
            "not armed yet"
        );
        assert!(!store.count(&[instance.clone(), deployment]), "write 1");
        assert!(store.count(&[instance]), "write 2: the one to die after");
    }
}
