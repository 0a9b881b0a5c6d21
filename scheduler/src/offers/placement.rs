//! The placement engine: which waiting instances go on which offers of one
//! batch, and why the others could not go anywhere.
//!
//! Pure: offers, demands (one per app with instances waiting) and the field
//! values seen on agents go in; a [`Plan`] comes out. No I/O, no clock, no
//! randomness, so equal inputs give equal plans.
//!
//! The shape follows Nomad's scheduler (shared/reference/style-and-crates.md
//! §A.6): for each instance, feasibility filters run cheap-first — the
//! role, then the constraints, then the resources — and the feasible offers
//! are ranked; every offer a demand looked at and could not use is recorded
//! with the reason, in Marathon's `/v2/queue` vocabulary ([`RejectReason`]),
//! which is what answers "why is my app waiting".
//!
//! Ranking is spread: the offer whose agent runs the fewest instances of the
//! app wins, then the offer with the most free resources (cpus and memory,
//! each relative to the largest offer of the batch), then the earlier offer.
//!
//! Demands are served in the order given, each until it is placed or stuck.
//! Instances placed earlier in the batch count for later checks exactly like
//! instances already running: UNIQUE and MAX_PER hold across the batch, and
//! GROUP_BY stays balanced.
//!
//! # GROUP_BY
//!
//! Marathon balances over the groups its instances occupy; Baton also knows
//! the groups of this batch's offers and the values seen on agents recently
//! (`known_values`), so that the spread does not depend on offer order. But a
//! group that cannot take an instance must not block the others forever (a
//! rack whose agents are full, or that another constraint rules out). So the
//! minimum is taken over the groups that are *occupied* (hold an instance of
//! the app) or *open*: a known value with no offer in this batch (its agents
//! may offer later, so the app waits for them; the caller ages such values
//! out of `known_values`), or a value with an offer in this batch that passes
//! every check of the demand except GROUP_BY itself. (`Constraint::accepts`
//! counts every known value; this is the batch-aware refinement.) An
//! instance may go to a group with no instance, or to one at that minimum
//! once no open group is empty and at least N groups are occupied
//! (`GROUP_BY:N`). Openness only
//! shrinks while a demand is placed (resources, UNIQUE and MAX_PER only
//! tighten), which gives the invariant the property tests check: **after a
//! batch, a group that received an instance in it holds at most one more
//! than any group that is open or occupied at the end.** Starting from no
//! instances, max − min ≤ 1 over the open and occupied groups.
//!
//! # Cost
//!
//! A batch interns each constraint field's values once, so that checks are
//! array lookups, and keeps its offers in one order by free resources. A
//! demand walks that order lazily, merged with a heap of the offers it has
//! already found feasible, and stops when it is placed: a demand for `n`
//! instances with hostname UNIQUE looks at little more than `n` offers. Only a
//! demand that cannot be fully placed looks at every offer that can still
//! take an instance — and then its rejection summary covers all of them.

mod engine;
mod fields;
mod plan;

use std::collections::{BTreeMap, BTreeSet};

use mesos_proto::v1::Offer;

use self::engine::Engine;
pub use self::plan::{
    ConstraintRejections, Demand, DemandOutcome, FunnelStep, Placement, PlacementOptions, Plan,
    RejectReason, RejectSummary,
};

/// Places as many waiting instances of `demands` as the `offers` allow.
///
/// `known_values` maps a constraint field (`hostname`, `@zone`, an
/// attribute name) to the values seen on agents recently; GROUP_BY counts
/// them as groups that may still offer. The values of this batch's offers
/// count anyway.
pub fn place(
    offers: &[Offer],
    demands: &[Demand],
    known_values: &BTreeMap<String, BTreeSet<String>>,
    options: &PlacementOptions,
) -> Plan {
    let mut engine = Engine::new(offers, demands, known_values, options);
    let outcomes = demands
        .iter()
        .enumerate()
        .map(|(i, d)| engine.place_demand(i, d))
        .collect();
    Plan {
        offers: engine.plan,
        demands: outcomes,
    }
}

#[cfg(test)]
mod tests;
