//! baton-router in-process, in one binary: its upstream pool, and the proxy
//! against a fake Marathon and loopback instances.

mod pool;
mod proxy;
