//! mesos-local's v1 scheduler and executor APIs, launches, shutdown and
//! security (authentication, ACLs, TLS), in one binary.

mod common;
mod executor_api;
mod fetcher;
mod files;
mod launch;
mod scheduler_api;
mod security;
mod shutdown;
