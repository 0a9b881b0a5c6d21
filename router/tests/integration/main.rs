//! baton-router in-process, in one binary: its upstream pool, the proxy
//! against a fake Marathon and loopback instances, TLS termination (and
//! the binary's SIGHUP reload), basic authentication, page views and
//! unique visitors, and access logs.

mod access_log;
mod audience;
mod basic_auth;
mod pool;
mod proxy;
mod tls;
