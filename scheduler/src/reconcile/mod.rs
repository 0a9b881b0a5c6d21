//! The reconcile loop: the single writer of scheduler state.
//!
//! It applies what Mesos reports (through the [`crate::mesos::session`]) and
//! what users ask for (through [`SchedulerHandle`]) to the task table,
//! persists each change *before* acting on it — a status update is on disk
//! before it is acknowledged, a launch is on disk before the ACCEPT goes out
//! — and then emits Mesos calls. Nothing acts until the stored state is
//! loaded and Mesos has said SUBSCRIBED. Readers get immutable snapshots via
//! a `watch` channel, so they never contend with the writer.

pub mod backoff;
pub mod decide;
mod driver;

pub use driver::{Scheduler, SchedulerConfig, SchedulerError, SchedulerHandle, Stats, View};
