//! baton-router in-process, in one binary: its upstream pool, the proxy
//! against a fake Marathon and loopback instances, TLS termination (and
//! the binary's SIGHUP reload), basic authentication, page views and
//! unique visitors, access logs, blue/green and canary splits, and the
//! response cache.

mod access_log;
mod audience;
mod basic_auth;
mod blue_green;
mod cache;
mod http2;
mod pool;
mod proxy;
mod tls;
