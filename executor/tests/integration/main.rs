//! baton-executor against a fake agent, in one binary: the executor
//! protocol, and health checks.

mod common;
mod executor;
mod health;
