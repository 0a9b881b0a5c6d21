//! Every end-to-end test in one binary: one link of the workspace instead of
//! one per file, and the tests of every area overlap on the test threads
//! instead of waiting for one binary after another. Run one area with
//! `cargo test -p baton-e2e --test e2e <module>::`.

mod api_acl;
mod apps_local;
mod bad_input;
mod cli;
mod crash_injection;
mod event_consistency;
mod events_groups;
mod executor_fetch;
mod faults;
mod group_commit;
mod ha_failover;
mod ha_fast_failover;
mod ha_security;
mod health_deploy;
mod https_api;
mod instance_limits;
mod launch_and_kill;
mod layering;
mod master_detection;
mod mesos_security;
mod pods;
mod python_client;
mod rolling_cap;
mod router_basics;
mod router_rolling;
mod router_scaling;
mod ui;
mod zk_store;
mod zookeeper_helper;
