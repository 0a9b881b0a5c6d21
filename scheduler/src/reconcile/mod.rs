//! The reconcile loop: the single writer of scheduler state.
//!
//! It applies what users ask for (through [`SchedulerHandle`]: app writes,
//! kills) and what Mesos reports (through [`crate::mesos::session`]) to the
//! apps and their instances, persists each change *before* acting on it — a
//! status update is on disk before it is acknowledged, a launch before the
//! ACCEPT goes out, an app before the client hears 2xx — and then emits
//! Mesos calls. Nothing acts until the stored state is loaded and Mesos has
//! said SUBSCRIBED.
//!
//! Level-triggered, like kube-rs's controller: every change marks its app
//! dirty, and after each event every dirty app is reconciled once by the
//! pure [`decide::decide`] (never two passes of one app at once: the loop is
//! the only writer). Apps still moving (launching, killing, deploying,
//! delayed) are looked at again on a timer. Offers are matched by
//! [`crate::offers::place`] against the instances waiting to launch.
//! Readers get immutable [`View`] snapshots via a `watch` channel, so they
//! never contend with the writer; what happens is also put on the
//! [`events`] bus that `/v2/events` streams.
//!
//! Changes are carried out as deployments ([`plan`]): steps in dependency
//! order, each done when its apps have converged.
//!
//! Executors' load reports ([`load`]) arrive as MESSAGE events and are kept
//! per running task, unpersisted, for load-aware gateways.

pub mod backoff;
pub mod decide;
mod driver;
pub mod events;
pub mod load;
pub mod plan;
pub mod view;

pub use driver::{
    AppEdit, EditContext, ExecutorChoice, KillOptions, KillOutcome, Scheduler, SchedulerConfig,
    SchedulerError, SchedulerHandle, WriteOutcome, config_version, instance_change, load_view,
    version_key,
};
pub use events::BusEvent;
pub use view::{
    Deployment, DeploymentAction, DeploymentFailure, OfferStats, Stats, TaskFailure, View,
};
