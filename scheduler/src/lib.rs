//! Baton: a Mesos framework for long-running services that speaks
//! Marathon's REST API.
//!
//! # Layout
//!
//! - [`mesos`]: the Mesos v1 scheduler client — typed errors, call builders
//!   without I/O, master endpoints and redirects, the HTTP caller, and the
//!   session loop that keeps one subscription alive (heartbeat watchdog,
//!   backoff, resubscribe with the stored FrameworkID).
//! - [`state`]: the task model and the durable [`state::Store`] (redb under
//!   `--data_dir`; in-memory for tests).
//! - [`offers`]: pure offer matching and `TaskInfo` building.
//! - [`reconcile`]: the single-writer loop that applies Mesos events and
//!   user commands to state, persists, then acts.
//! - [`api`]: the Marathon v2 REST API (axum): handlers over snapshots of
//!   the scheduler's state, Marathon's error bodies.
//! - [`config`]: the settings the binary's flags become, and wiring them into
//!   a running scheduler ([`config::run`]).
//!
//! The binary (`src/main.rs`) only parses flags and calls [`config::run`].

pub mod api;
pub mod config;
pub mod mesos;
pub mod offers;
pub mod reconcile;
pub mod state;
