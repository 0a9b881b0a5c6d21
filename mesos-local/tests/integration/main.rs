//! mesos-local's v1 scheduler and executor APIs, launches, shutdown,
//! security (authentication, ACLs, TLS), reservations and persistent
//! volumes, in one binary.

mod common;
mod executor_api;
mod fetcher;
mod files;
mod launch;
mod scheduler_api;
mod security;
mod shutdown;
mod volumes;
