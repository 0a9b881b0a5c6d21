//! Baton: a Mesos framework for long-running services that speaks
//! Marathon's REST API.
//!
//! # Layout
//!
//! - [`mesos`]: the Mesos v1 scheduler client — typed errors, call builders
//!   without I/O, master endpoints and redirects, the HTTP caller, and the
//!   session loop that keeps one subscription alive (heartbeat watchdog,
//!   backoff, resubscribe with the stored FrameworkID).
//! - [`state`]: the model — Marathon app definitions ([`state::app`]),
//!   instances with their goal and observed condition ([`state::instance`])
//!   — and the durable [`state::Store`] (redb under `--data_dir`,
//!   ZooKeeper with `--zk`; in-memory for tests).
//! - [`offers`]: pure offer matching — resources, constraints, the
//!   placement engine with its rejection funnel — and `TaskInfo` building
//!   (with or without `baton-executor`).
//! - [`reconcile`]: the single-writer loop that applies user writes and
//!   Mesos events to apps and instances, persists, then acts: the pure
//!   per-app `decide`, the launch queue with backoff, reconciliation,
//!   deployments; readers get persistent-map snapshots.
//! - [`deploy`]: deployments as pure values — the plan of a change in
//!   steps, and how a running deployment advances or misses its deadline.
//! - [`health`]: Marathon-level health checks (HTTP, HTTPS, TCP) — the pure
//!   per-check state with Marathon's grace-period and kill rules, and the
//!   runner that probes the reconcile loop's targets on their own timers
//!   under one concurrency bound.
//! - [`api`]: the Marathon v2 REST API (axum): handlers over snapshots of
//!   the scheduler's state, Marathon's shapes and error bodies.
//! - [`auth`]: who may use the API and for what — `--http_credentials`
//!   users, the `--acl_file`'s grants on app paths, the front-proxy mode.
//! - [`ha`]: high availability — leader election over ZooKeeper, and the
//!   leadership terms: the scheduler runs only while leading, a standby
//!   proxies the API to the leader.
//! - [`lease`]: a leading term's lease, which every Mesos call and store
//!   write of the term waits on, so that a deposed leader resuming from a
//!   pause acts no more.
//! - [`clock`]: the one place the scheduler reads the time (the wall
//!   clock, or tokio's paused clock in tests).
//! - [`zk`]: ZooKeeper URLs and chrooted sessions, shared by the HA store
//!   and election and by Mesos master detection.
//! - [`ui`]: the web UI, compiled into the binary and served at `/` on the
//!   leader and on standbys: hand-written HTML, CSS and vanilla JS modules
//!   over the REST API, and the Traffic page's view of `baton-router`s.
//! - [`config`]: the settings the binary's flags become, and wiring them into
//!   a running scheduler ([`config::run`]).
//! - [`cli`]: the operator CLI (`baton app|group|deployment|task|queue|
//!   leader|info`) over the REST API, which works against Marathon too.
//!
//! The binary (`src/main.rs`) only parses flags and calls [`config::run`],
//! or [`cli::run`] for a CLI command.

pub mod api;
pub mod auth;
pub mod cli;
pub mod clock;
pub mod config;
pub mod deploy;
pub mod ha;
pub mod health;
pub mod lease;
pub mod mesos;
pub mod offers;
pub mod reconcile;
pub mod state;
pub mod ui;
pub mod zk;
