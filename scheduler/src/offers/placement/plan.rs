//! What placement is asked (a [`Demand`] per app, [`PlacementOptions`])
//! and what it answers (a [`Plan`]: placements per offer, and per demand
//! how many were placed and why offers were declined).

use std::collections::BTreeMap;
use std::fmt;

use serde::Serialize;

use crate::offers::constraints::{Constraint, ConstraintError};
use crate::offers::resources::{Allocation, ResourceRequest, Shortfall};
use crate::state::app::AppDefinition;

/// One app's instances waiting for offers.
#[derive(Debug, Clone)]
pub struct Demand {
    /// The app, for the caller's bookkeeping.
    pub app_id: String,
    /// What one instance needs.
    pub resources: ResourceRequest,
    /// The Mesos role its tasks run as.
    pub role: String,
    /// `acceptedResourceRoles`: the reservation roles (`*` = unreserved)
    /// whose resources it may use; `None` = any usable by `role`.
    pub accepted_roles: Option<Vec<String>>,
    /// Its placement constraints.
    pub constraints: Vec<Constraint>,
    /// How many instances to place.
    pub count: u32,
    /// The field values ([`offer_fields`](crate::offers::constraints::offer_fields)) of the app's reachable, placed
    /// instances that constraints count.
    pub placed: Vec<BTreeMap<String, String>>,
}

impl Demand {
    /// A demand for `count` more instances of `app`, whose current instances
    /// run on agents with the given field values.
    pub fn for_app(
        app: &AppDefinition,
        count: u32,
        placed: Vec<BTreeMap<String, String>>,
    ) -> Result<Demand, ConstraintError> {
        Ok(Demand {
            app_id: app.id.as_str().to_string(),
            resources: ResourceRequest::for_app(app),
            role: app.role.clone(),
            accepted_roles: app.accepted_resource_roles.clone(),
            constraints: app
                .constraints
                .iter()
                .map(|c| Constraint::parse(c))
                .collect::<Result<_, _>>()?,
            count,
            placed,
        })
    }
}

/// Batch-wide settings.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct PlacementOptions {
    /// At most this many instances per offer (Marathon's
    /// `--max_instances_per_offer`, default 5).
    pub max_instances_per_offer: u32,
}

impl Default for PlacementOptions {
    fn default() -> Self {
        PlacementOptions {
            max_instances_per_offer: 5,
        }
    }
}

/// Why an offer was not used for a demand, named as Marathon's
/// `processedOffersSummary` names it. Declared in Marathon's funnel order.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize)]
pub enum RejectReason {
    /// The offer is for another role, or none of its resources are of an
    /// accepted role.
    UnfulfilledRole,
    /// A constraint ruled it out.
    UnfulfilledConstraint,
    /// Not enough cpus.
    InsufficientCpus,
    /// Not enough memory.
    InsufficientMemory,
    /// Not enough disk.
    InsufficientDisk,
    /// Not enough GPUs.
    InsufficientGpus,
    /// Too few ports, or a fixed port is not offered.
    InsufficientPorts,
}

impl RejectReason {
    /// Every reason, in funnel order.
    pub const FUNNEL: [RejectReason; 7] = [
        RejectReason::UnfulfilledRole,
        RejectReason::UnfulfilledConstraint,
        RejectReason::InsufficientCpus,
        RejectReason::InsufficientMemory,
        RejectReason::InsufficientDisk,
        RejectReason::InsufficientGpus,
        RejectReason::InsufficientPorts,
    ];

    /// Marathon's name for it.
    pub fn as_str(self) -> &'static str {
        match self {
            RejectReason::UnfulfilledRole => "UnfulfilledRole",
            RejectReason::UnfulfilledConstraint => "UnfulfilledConstraint",
            RejectReason::InsufficientCpus => "InsufficientCpus",
            RejectReason::InsufficientMemory => "InsufficientMemory",
            RejectReason::InsufficientDisk => "InsufficientDisk",
            RejectReason::InsufficientGpus => "InsufficientGpus",
            RejectReason::InsufficientPorts => "InsufficientPorts",
        }
    }
}

impl fmt::Display for RejectReason {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

impl From<Shortfall> for RejectReason {
    fn from(s: Shortfall) -> RejectReason {
        match s {
            Shortfall::Cpus => RejectReason::InsufficientCpus,
            Shortfall::Mem => RejectReason::InsufficientMemory,
            Shortfall::Disk => RejectReason::InsufficientDisk,
            Shortfall::Gpus => RejectReason::InsufficientGpus,
            Shortfall::Ports => RejectReason::InsufficientPorts,
        }
    }
}

/// One step of Marathon's `rejectSummaryLastOffers`: of the offers that
/// got this far, how many this reason declined.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
pub struct FunnelStep {
    /// The check.
    pub reason: RejectReason,
    /// Offers it declined.
    pub declined: u32,
    /// Offers that reached it.
    pub processed: u32,
}

/// How many offers one constraint declined, e.g. `hostname:UNIQUE`.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct ConstraintRejections {
    /// The constraint as `field:OPERATOR[:value]`.
    pub constraint: String,
    /// Offers it declined.
    pub declined: u32,
}

/// What a demand made of the offers it looked at. A demand stops looking
/// once placed, so only a demand still waiting has seen every offer.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct RejectSummary {
    /// Offers looked at.
    pub processed_offers: u32,
    /// Offers that got at least one instance.
    pub used_offers: u32,
    /// Per reason, in [`RejectReason::FUNNEL`] order: offers declined.
    pub(super) declined: [u32; 7],
    /// The constraints behind `UnfulfilledConstraint`, in the app's order.
    pub constraints: Vec<ConstraintRejections>,
}

impl RejectSummary {
    /// Offers declined for `reason`.
    pub fn declined(&self, reason: RejectReason) -> u32 {
        self.declined[reason as usize]
    }

    /// Adds another summary's counts to this one (to sum cycles up).
    pub fn absorb(&mut self, other: &RejectSummary) {
        self.processed_offers += other.processed_offers;
        self.used_offers += other.used_offers;
        for (mine, theirs) in self.declined.iter_mut().zip(other.declined) {
            *mine += theirs;
        }
        for c in &other.constraints {
            match self
                .constraints
                .iter_mut()
                .find(|m| m.constraint == c.constraint)
            {
                Some(m) => m.declined += c.declined,
                None => self.constraints.push(c.clone()),
            }
        }
    }

    /// Offers looked at but not used (Marathon's `unusedOffersCount`).
    pub fn unused_offers(&self) -> u32 {
        self.processed_offers - self.used_offers
    }

    /// Marathon's `rejectSummaryLastOffers`: every reason in funnel order,
    /// with the offers that reached it and those it declined.
    pub fn funnel(&self) -> Vec<FunnelStep> {
        let mut left = self.processed_offers;
        RejectReason::FUNNEL
            .iter()
            .map(|&reason| {
                let declined = self.declined(reason);
                let step = FunnelStep {
                    reason,
                    declined,
                    processed: left,
                };
                left = left.saturating_sub(declined);
                step
            })
            .collect()
    }
}

/// One instance placed on an offer.
#[derive(Debug, Clone, PartialEq)]
pub struct Placement {
    /// Index into the demands.
    pub demand: usize,
    /// Its resources (contained in the offer) and host ports, in the
    /// request's order.
    pub allocation: Allocation,
}

/// What became of one demand.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct DemandOutcome {
    /// Instances placed in this batch.
    pub placed: u32,
    /// Why the offers it looked at were not used.
    pub rejections: RejectSummary,
}

/// The result of [`place`](super::place).
#[derive(Debug, Clone, PartialEq)]
pub struct Plan {
    /// Per offer, in input order: the instances placed on it, in the order
    /// they were carved out. Empty for an unused offer.
    pub offers: Vec<Vec<Placement>>,
    /// Per demand, in input order.
    pub demands: Vec<DemandOutcome>,
}

impl Plan {
    /// The indexes of offers nothing was placed on (to decline).
    pub fn unused_offers(&self) -> impl Iterator<Item = usize> + '_ {
        self.offers
            .iter()
            .enumerate()
            .filter(|(_, p)| p.is_empty())
            .map(|(i, _)| i)
    }

    /// Every placement with its offer's index.
    pub fn placements(&self) -> impl Iterator<Item = (usize, &Placement)> {
        self.offers
            .iter()
            .enumerate()
            .flat_map(|(i, ps)| ps.iter().map(move |p| (i, p)))
    }
}
