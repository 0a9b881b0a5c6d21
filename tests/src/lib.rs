//! Harness for end-to-end tests across the real binaries: `mesos-local`
//! (the embedded Mesos), `baton-executor` (started by its agents) and the
//! `baton` scheduler library.
//!
//! # Layout
//!
//! - [`apps`]: app definitions and waiting on the scheduler's view, for
//!   tests that drive the scheduler library directly.
//! - [`baton`]: the `baton` binary as a child process (its log captured,
//!   stopped by SIGTERM), with a JSON client for its REST API.
//! - [`browser`]: a headless Chromium driven over WebDriver (Debian's
//!   `chromedriver`), for the web UI's tests.
//! - [`binaries`]: where the workspace's binaries are, building them if a
//!   test runs on its own.
//! - [`ports`]: disjoint agent port ranges per test, so parallel tests'
//!   tasks never fight over a port.
//! - [`procs`]: finding processes by a marker in their command line or
//!   environment, to prove a kill really killed and that tests leave
//!   nothing behind.
//! - [`cluster`]: starting `mesos-local` as a child process, and the
//!   scheduler against it.
//! - [`events`]: a `/v2/events` subscriber that records what it hears.
//! - [`failover`]: who leads among `baton`s sharing a ZooKeeper, and how
//!   soon survivors answer after a leader dies (tests and benchmark).
//! - [`router`]: the `baton-router` binary as a child process, and
//!   requests through it with a chosen Host and cookie.
//! - [`tls`]: HTTPS requests trusting one certificate, and generated
//!   certificates.
//! - [`wait`]: polling with a deadline.

pub mod apps;
pub mod baton;
pub mod binaries;
pub mod browser;
pub mod cluster;
pub mod events;
pub mod failover;
pub mod ports;
pub mod procs;
pub mod router;
pub mod tls;
pub mod wait;
pub mod zookeeper;

/// Logs to the test's captured output, once per process.
pub fn init_tracing() {
    let _ = tracing_subscriber::fmt()
        .with_env_filter(
            tracing_subscriber::EnvFilter::try_from_default_env()
                .unwrap_or_else(|_| "info,baton=debug,mesos_local=debug".into()),
        )
        .with_test_writer()
        .try_init();
}
