//! The agents that may still offer, for GROUP_BY's empty groups.
//!
//! GROUP_BY balances over the values of a field (a rack, a zone). A value
//! that holds no instance yet keeps the others waiting while one of its
//! agents may still offer (see the placement engine's docs) — but only
//! then: an app must not stay under-instanced because a rack vanished
//! (Marathon, which balances over occupied values only, takes the offer).
//! So an agent's values are known from its offers, and forgotten when
//!
//! - Mesos says the agent is gone or unreachable (a FAILURE event for the
//!   agent, or a task status whose reason is the agent's loss), at once;
//! - it has not offered for [`KNOWN_AGENT_TTL_MS`] while Baton wanted
//!   offers (a REVIVE opens a new window for every agent: while offers
//!   were suppressed, silence says nothing).
//!
//! An agent that offers again is known again. Pure: time comes in.

use std::collections::{BTreeMap, BTreeSet};

use mesos_proto::v1::{self, TaskState, task_status::Reason};

use super::constraints::offer_fields;
use crate::state::app::Timestamp;

/// How long an agent's values stay known without an offer from it.
pub const KNOWN_AGENT_TTL_MS: i64 = 60 * 1000;

/// Agents seen offering, with their constraint fields.
#[derive(Debug, Default, Clone)]
pub struct KnownAgents {
    agents: BTreeMap<String, Seen>,
}

#[derive(Debug, Clone)]
struct Seen {
    fields: BTreeMap<String, String>,
    last_offered: Timestamp,
}

impl KnownAgents {
    /// Notes an offer: its agent is there, with these fields.
    pub fn offered(&mut self, offer: &v1::Offer, now: Timestamp) {
        self.agents.insert(
            offer.agent_id.value.clone(),
            Seen {
                fields: offer_fields(offer),
                last_offered: now,
            },
        );
    }

    /// Forgets an agent Mesos says is gone; whether it was known.
    pub fn lost(&mut self, agent_id: &str) -> bool {
        self.agents.remove(agent_id).is_some()
    }

    /// Offers are wanted again after a suppression: every known agent gets
    /// a new window to offer in.
    pub fn revived(&mut self, now: Timestamp) {
        for seen in self.agents.values_mut() {
            seen.last_offered = now;
        }
    }

    /// The values of every field on the agents still known at `now`
    /// (forgetting the ones past their window).
    pub fn values(&mut self, now: Timestamp) -> BTreeMap<String, BTreeSet<String>> {
        let cutoff = now.plus_millis(-KNOWN_AGENT_TTL_MS);
        self.agents.retain(|_, seen| seen.last_offered >= cutoff);
        let mut values: BTreeMap<String, BTreeSet<String>> = BTreeMap::new();
        for seen in self.agents.values() {
            for (field, value) in &seen.fields {
                values
                    .entry(field.clone())
                    .or_default()
                    .insert(value.clone());
            }
        }
        values
    }
}

/// Whether a task status says its agent is gone or cannot be reached.
pub fn agent_lost(status: &v1::TaskStatus) -> bool {
    let agent_reason = status.reason.is_some()
        && matches!(
            status.reason(),
            Reason::AgentDisconnected
                | Reason::AgentRemoved
                | Reason::AgentRemovedByOperator
                | Reason::AgentRestarted
                | Reason::AgentUnknown
        );
    match status.state() {
        TaskState::TaskUnreachable | TaskState::TaskGoneByOperator => true,
        TaskState::TaskLost | TaskState::TaskGone => agent_reason,
        _ => false,
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use mesos_proto::util::{agent_id, framework_id, offer_id, status, task_id, text_attribute};
    use mesos_proto::v1::task_status::Source;

    fn offer(agent: &str, rack: &str) -> v1::Offer {
        v1::Offer {
            id: offer_id(format!("o-{agent}")),
            framework_id: framework_id("f"),
            agent_id: agent_id(agent),
            hostname: format!("{agent}.example"),
            attributes: vec![text_attribute("rack_id", rack)],
            ..Default::default()
        }
    }

    fn racks(known: &mut KnownAgents, now: i64) -> Vec<String> {
        known
            .values(Timestamp::from_millis(now))
            .remove("rack_id")
            .map(|v| v.into_iter().collect())
            .unwrap_or_default()
    }

    #[test]
    fn a_lost_agent_no_longer_keeps_its_rack_known() {
        let mut known = KnownAgents::default();
        known.offered(&offer("a1", "r1"), Timestamp::from_millis(0));
        known.offered(&offer("a2", "r2"), Timestamp::from_millis(0));
        known.offered(&offer("a3", "r2"), Timestamp::from_millis(0));
        assert_eq!(racks(&mut known, 1), ["r1", "r2"]);
        assert!(known.lost("a2"));
        assert_eq!(racks(&mut known, 1), ["r1", "r2"], "a3 still holds r2");
        assert!(known.lost("a3"));
        assert_eq!(racks(&mut known, 1), ["r1"]);
        assert!(!known.lost("a3"), "already forgotten");
        known.offered(&offer("a3", "r2"), Timestamp::from_millis(5));
        assert_eq!(racks(&mut known, 6), ["r1", "r2"], "offering again");
    }

    #[test]
    fn a_silent_agent_is_forgotten_unless_offers_were_suppressed() {
        let mut known = KnownAgents::default();
        known.offered(&offer("a1", "r1"), Timestamp::from_millis(0));
        known.offered(&offer("a2", "r2"), Timestamp::from_millis(50_000));
        assert_eq!(racks(&mut known, KNOWN_AGENT_TTL_MS), ["r1", "r2"]);
        assert_eq!(racks(&mut known, KNOWN_AGENT_TTL_MS + 1), ["r2"]);
        // A REVIVE after a long suppression: a new window for every agent.
        known.revived(Timestamp::from_millis(500_000));
        assert_eq!(racks(&mut known, 500_000 + KNOWN_AGENT_TTL_MS), ["r2"]);
        assert_eq!(
            racks(&mut known, 500_001 + KNOWN_AGENT_TTL_MS),
            Vec::<String>::new()
        );
    }

    #[test]
    fn statuses_that_mean_the_agent_is_gone() {
        let with = |state, reason: Option<Reason>| {
            let mut s = status(task_id("t"), state, Source::Master);
            s.reason = reason.map(|r| r as i32);
            agent_lost(&s)
        };
        assert!(with(TaskState::TaskUnreachable, None));
        assert!(with(TaskState::TaskLost, Some(Reason::AgentRemoved)));
        assert!(with(TaskState::TaskGone, Some(Reason::AgentDisconnected)));
        assert!(with(TaskState::TaskGoneByOperator, None));
        assert!(!with(TaskState::TaskLost, Some(Reason::Reconciliation)));
        assert!(!with(
            TaskState::TaskFailed,
            Some(Reason::CommandExecutorFailed)
        ));
        assert!(!with(TaskState::TaskKilled, None));
    }
}
