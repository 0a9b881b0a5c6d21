//! The scheduler's integration tests in one binary: the API (and its
//! kept and streamed list bodies), property
//! tests of placement and rolling upgrades, reconciliation and the Mesos
//! session against a fake master, the web UI's routes.

mod api_cache;
mod api_security;
mod api_system;
mod placement_props;
mod reconciliation;
mod rolling_props;
mod session;
mod support;
mod ui;
