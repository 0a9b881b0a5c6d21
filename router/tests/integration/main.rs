//! baton-router in-process, in one binary: its upstream pool, the proxy
//! against a fake Marathon and loopback instances, TLS termination (and
//! the binary's SIGHUP reload), and basic authentication.

mod basic_auth;
mod pool;
mod proxy;
mod tls;
