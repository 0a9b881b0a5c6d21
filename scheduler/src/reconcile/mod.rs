//! The reconcile loop: the single writer of scheduler state.
//!
//! It applies what users ask for (through [`SchedulerHandle`]: app writes,
//! kills) and what Mesos reports (through [`crate::mesos::session`]) to the
//! apps and their instances, persists each change *before* acting on it — a
//! status update is on disk before it is acknowledged, a launch before the
//! ACCEPT goes out, an app before the client hears 2xx — and then emits
//! events and Mesos calls, in that order, after the snapshot readers see
//! shows the change. Nothing acts until the stored state is loaded and
//! Mesos has said SUBSCRIBED.
//!
//! Level-triggered, like kube-rs's controller: every change marks its app
//! dirty, and after each event every dirty app is reconciled once (never
//! two passes of one app at once: the loop is the only writer). The
//! decisions are pure functions of values and the time from the injected
//! [`crate::clock::Clock`]:
//!
//! - [`decide`]: what to do about one app (schedule, decommission, drain,
//!   kill, expunge), whether a sick instance may be replaced, and when to
//!   look again ("requeue after") and whether it may launch;
//! - [`status`]: what a task status update does to its instance, the app's
//!   last failure and its launch delay;
//! - [`backoff`]: launch delays; [`crate::deploy`]: deployments and their
//!   deadlines; [`crate::offers`]: placement.
//!
//! The driver turns those decisions into [`effects::Effects`] and applies
//! them in one place and one order: persist → update the [`View`] →
//! [`events`] → Mesos calls → acknowledgement. Writes decided together —
//! the app writes waiting at once, with what the pass over their apps
//! decides; one pass's decisions for many apps — share one durable commit
//! (group commit, [`crate::state::Store::apply_group`]), and nothing of
//! them is published or sent before it. Readers get immutable
//! [`View`] snapshots via a `watch` channel, so they never contend with the
//! writer; the event bus carries typed [`events::Event`]s that the REST
//! API renders.
//!
//! - [`config`]: the scheduler's settings; [`handle`]: the handle and
//!   starting the loop (against Mesos, or any [`MesosPort`]);
//!   [`requests`]: what the handle asks of the loop and what comes back.
//! - Executors' load reports ([`load`]) arrive as MESSAGE events and are
//!   kept per running task, unpersisted, for load-aware gateways.

pub mod backoff;
pub mod config;
pub mod decide;
mod driver;
pub mod effects;
pub mod events;
pub mod handle;
pub mod load;
pub mod requests;
pub mod status;
pub mod view;

pub use config::{ExecutorChoice, SchedulerConfig};
pub use effects::{instance_change, version_key};
pub use events::{BusEvent, Event};
pub use handle::{Scheduler, SchedulerHandle, load_view};
pub use requests::{
    AppEdit, EditContext, KillOptions, KillOutcome, MesosPort, SchedulerError, WriteOutcome,
};
pub use view::{
    CheckResults, Deployment, DeploymentAction, DeploymentFailure, OfferStats, Stats, TaskFailure,
    View,
};
