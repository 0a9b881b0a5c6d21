//! mesos-local's v1 scheduler and executor APIs, launches and shutdown,
//! in one binary.

mod common;
mod executor_api;
mod launch;
mod scheduler_api;
mod shutdown;
