//! High availability: which `baton` leads, and what the others do.
//!
//! Leadership comes in *terms*. A process is either electing, following a
//! known leader, or leading; the [`Role`] is published on a `watch`
//! channel by whoever decides it — [`election`] with ZooKeeper, or
//! [`Role::sole_leader`] without (one process, leading forever).
//!
//! [`terms::run`] turns roles into work: when a term starts it loads the
//! state from the store, starts the scheduler (which subscribes to Mesos
//! with the stored FrameworkID, reconciles, and resumes deployments) and
//! serves the REST API from it; when the term ends — deposed, ZooKeeper
//! session lost or suspended, abdication — it stops the scheduler *before*
//! anything else (fenced: nothing more is written or sent to Mesos by this
//! process), serves as a standby that proxies to the leader, and waits for
//! the next term. The process never exits for lost leadership.
//!
//! While leading with ZooKeeper, [`registry`] keeps the service registry
//! (`<zk>/services/…`) equal to the running, healthy instances.
//!
//! Failover does not wait for ZooKeeper to expire a dead leader's session:
//! standbys probe the leader and the next in line deposes one that stopped
//! answering, in about a second ([`probe`]). Safety does not depend on the
//! deposed leader noticing: its store writes are fenced by ZooKeeper, its
//! Mesos calls by the master once the new leader subscribes, and every act
//! of a term first waits on the term's lease ([`crate::lease`]), which a paused
//! leader finds lapsed — and lost — when it resumes.

pub mod election;
pub mod probe;
pub mod registry;
pub mod terms;

use std::fmt;

use zookeeper_client as zk;

use crate::lease::LeaseGate;

/// What this process is, now.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Role {
    /// No leader is known (starting, or between leaders).
    Electing,
    /// Another process leads; requests are proxied there.
    Following {
        /// The leader's `host:port`.
        leader: String,
    },
    /// This process leads.
    Leading {
        /// Counts this process's terms, so a term that ended and a new one
        /// are told apart even when nothing else changed.
        term: u64,
    },
}

impl Role {
    /// The role of a process that runs alone: leading from the start.
    pub fn sole_leader() -> Role {
        Role::Leading { term: 1 }
    }

    /// Whether this process leads.
    pub fn is_leading(&self) -> bool {
        matches!(self, Role::Leading { .. })
    }
}

impl fmt::Display for Role {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Role::Electing => f.write_str("electing"),
            Role::Following { leader } => write!(f, "following {leader}"),
            Role::Leading { term } => write!(f, "leading (term {term})"),
        }
    }
}

/// What a leading term writes with: its session and the znode that proves
/// it still leads (the fence of [`crate::state::ZkStore`]).
#[derive(Clone)]
pub struct Lease {
    /// The term this lease is for.
    pub term: u64,
    /// The session (chrooted at the `--zk` path).
    pub client: zk::Client,
    /// Our election znode.
    pub lock_path: String,
    /// The term's lease: what its Mesos calls and store writes wait on.
    pub gate: LeaseGate,
}
