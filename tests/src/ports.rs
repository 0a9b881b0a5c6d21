//! Port ranges for local agents that no other test in this run uses.
//!
//! Test binaries run one after another, but the tests inside one run in
//! parallel; each cluster gets its own slot below the kernel's ephemeral
//! range (32768+), so neither tasks nor outgoing connections collide.

use std::sync::atomic::{AtomicU16, Ordering};

/// Ports per local agent in tests.
pub const PORTS_PER_AGENT: u16 = 50;
/// Slots of `4 × PORTS_PER_AGENT` ports between 20000 and 32000.
const SLOT: u16 = 4 * PORTS_PER_AGENT;
const FIRST: u16 = 20_000;
const SLOTS: u16 = (32_000 - FIRST) / SLOT;

/// The first port of a fresh slot.
pub fn port_range_start() -> u16 {
    static NEXT: AtomicU16 = AtomicU16::new(0);
    // Spread binaries over the slots by pid so that reruns differ too.
    let offset = (std::process::id() % u32::from(SLOTS)) as u16;
    let n = NEXT.fetch_add(1, Ordering::Relaxed);
    FIRST + ((offset + n) % SLOTS) * SLOT
}

/// A free loopback TCP port right now.
pub fn free_port() -> u16 {
    std::net::TcpListener::bind("127.0.0.1:0")
        .and_then(|l| l.local_addr())
        .expect("bind 127.0.0.1:0")
        .port()
}
