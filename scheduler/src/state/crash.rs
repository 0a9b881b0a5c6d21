//! Fault injection for crash tests: a [`Store`] that kills its own process
//! (`SIGKILL`, as `kill -9` does) right after a chosen durable write.
//!
//! Counting starts at the first write that stores a deployment — the write
//! of the change under test — so that a test can put the crash between any
//! two consecutive writes of a delete, a scale or a restart on purpose, not
//! wherever timing happens to land it. Writes before that (status updates
//! of a reconciliation at start, say) are not counted.
//!
//! A group commit ([`Store::apply_group`]: writes decided together,
//! committed at once) is one durable write, counted once: there is no
//! moment on disk between its batches to crash in. So a change's first
//! write also holds what the pass right after it decided (instances
//! scheduled or drained, its deployment moved on), and each later write is
//! one pass's decisions or one status update.
//!
//! Enabled by the hidden `--crash_after_store_writes N` flag; never on
//! unless asked for.

use std::sync::Arc;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};

use tracing::warn;

use super::{Category, Change, GroupError, Snapshot, Store, StoreError};

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
    fn count<'a>(&self, changes: impl IntoIterator<Item = &'a Change>) -> bool {
        let stores_deployment = changes.into_iter().any(|c| {
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

    fn apply_group(&self, batches: &[Vec<Change>]) -> Result<(), GroupError> {
        self.inner.apply_group(batches)?;
        if self.count(batches.iter().flatten()) {
            warn!(
                after = self.after,
                batches = batches.len(),
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

    #[test]
    fn a_group_commit_counts_as_one_write() {
        let store = CrashAfterWrites::new(Arc::new(MemoryStore::default()), 2);
        let deployment = |key: &str| Change::Put {
            category: Category::Deployment,
            key: key.into(),
            value: b"{}".to_vec(),
        };
        // Three writes committed together: write 1, not 3 (the process
        // would be gone).
        store
            .apply_group(&[
                vec![deployment("a")],
                vec![deployment("b")],
                vec![deployment("c")],
            ])
            .unwrap();
        assert_eq!(store.written.load(Ordering::SeqCst), 1);
        assert_eq!(
            store.load().unwrap().records[&Category::Deployment].len(),
            3,
            "the group reached the inner store whole"
        );
    }
}
