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

use std::cmp::Reverse;
use std::collections::{BTreeMap, BTreeSet, BinaryHeap, HashMap, VecDeque};
use std::fmt;
use std::ops::Bound;

use mesos_proto::v1::Offer;
use serde::Serialize;

use super::constraints::{Constraint, ConstraintError, Operator, offer_fields};
use super::resources::{Allocation, PoolSet, Remaining, ResourceRequest, Shortfall};
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
    /// The field values ([`offer_fields`]) of the app's reachable, placed
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
    declined: [u32; 7],
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

/// The result of [`place`].
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

/// `hostname` is an alias of `@hostname` (as in `field_value`).
fn canonical(field: &str) -> &str {
    if field == "hostname" {
        "@hostname"
    } else {
        field
    }
}

/// No value: the offer lacks the field.
const NO_VALUE: u32 = u32::MAX;
/// No constraint: the rejection is not a constraint's.
const NO_CONSTRAINT: u16 = u16::MAX;
/// The field of index 0 is always the hostname: ranking counts per agent.
const HOST: usize = 0;

/// One constraint field, its values interned so that checks are array
/// lookups instead of string compares.
struct Field {
    name: String,
    ids: HashMap<String, u32>,
    values: Vec<String>,
    /// Per offer: its value, or [`NO_VALUE`].
    of_offer: Vec<u32>,
    /// Per value: offers of the batch with it that can still take an
    /// instance (below the per-offer limit).
    live_offers: Vec<u32>,
    /// How many values have live offers.
    live_values: u32,
    /// Known values no offer of the batch has.
    known_absent: Vec<u32>,
    /// Per value, for the demand being placed: its instances.
    counts: Vec<u32>,
    /// Per value, for the demand being placed: live offers found unusable.
    dead: Vec<u32>,
}

impl Field {
    fn new(name: String, offers: usize) -> Field {
        Field {
            name,
            ids: HashMap::new(),
            values: Vec::new(),
            of_offer: vec![NO_VALUE; offers],
            live_offers: Vec::new(),
            live_values: 0,
            known_absent: Vec::new(),
            counts: Vec::new(),
            dead: Vec::new(),
        }
    }

    fn intern(&mut self, value: &str) -> u32 {
        if let Some(&id) = self.ids.get(value) {
            return id;
        }
        let id = self.values.len() as u32;
        self.ids.insert(value.to_string(), id);
        self.values.push(value.to_string());
        id
    }
}

/// How a demand checks one constraint.
enum CheckKind {
    /// Depends on the value only (LIKE, UNLIKE, IS, CLUSTER with a value):
    /// the verdict is cached per value (0 unknown, 1 yes, 2 no).
    Static {
        cache: Vec<u8>,
        missing_ok: bool,
    },
    Unique,
    MaxPer(u32),
    /// CLUSTER without a value: the first instance's value, once there is one.
    ClusterFirst(u32),
    /// Index into the demand's group states, and the minimum group count.
    GroupBy {
        group: usize,
        min_groups: u32,
    },
}

struct Check {
    field: usize,
    constraint: u16,
    kind: CheckKind,
}

/// GROUP_BY bookkeeping for one field of the demand being placed.
struct GroupState {
    field: usize,
    /// Groups without an instance that may still take one: known values
    /// without offers, and values whose live offers are not all found
    /// unusable. An over-estimate until every offer has been looked at,
    /// which only makes placement stricter.
    empty_open: u32,
    /// Groups holding at least one instance.
    occupied: u32,
    /// `hist[c]`: occupied groups holding `c` instances.
    hist: Vec<u32>,
    /// The fewest instances an occupied group holds (0 when none is).
    min_occupied: u32,
}

/// A demand's constraints, compiled against the batch's fields.
struct Compiled {
    checks: Vec<Check>,
    /// Fields whose counts the demand needs: the hostname, then those of
    /// its counting constraints.
    fields: Vec<usize>,
    groups: Vec<GroupState>,
    /// Index into the engine's role pool sets.
    pools: usize,
}

/// What a demand found out about one offer.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Seen {
    No,
    /// Feasible when last checked.
    Live,
    /// Got an instance; stays so whatever later checks say.
    Used,
    /// Declined, and by which constraint.
    Out(RejectReason, u16),
}

/// Why an offer cannot take an instance of the demand.
enum Unfit {
    /// It has reached the per-offer limit: not the demand's concern.
    Full,
    Out(RejectReason, u16),
}

/// (instances of the app on the agent, inverted free score, offer): the
/// smallest is the best.
type RankKey = (u32, u64, u32);

struct Engine<'a> {
    offers: &'a [Offer],
    limit: u32,
    fields: Vec<Field>,
    remaining: Vec<Remaining>,
    /// Instances planned per offer.
    launched: Vec<u32>,
    /// Per offer: its current inverted free score.
    score: Vec<u64>,
    /// Offers below the limit, freest first.
    order: BTreeSet<(u64, u32)>,
    /// Largest cpus and mem of the batch's offers, to weigh them alike.
    norm: (f64, f64),
    /// Role sets seen: (role, accepted roles) and, per offer, its pools
    /// usable by them.
    role_keys: Vec<(String, Option<Vec<String>>)>,
    role_pools: Vec<Vec<PoolSet>>,
    plan: Vec<Vec<Placement>>,
    // Scratch for the demand being placed, reset after it.
    seen: Vec<Seen>,
    touched_offers: Vec<u32>,
    touched_values: Vec<(usize, u32)>,
    heap: BinaryHeap<Reverse<RankKey>>,
    waiting: Vec<u32>,
    /// The next offers in free order the demand has not looked at, fetched
    /// a chunk at a time. Placing never invalidates them: it only moves
    /// offers the demand has already seen.
    upcoming: VecDeque<(u64, u32)>,
}

impl<'a> Engine<'a> {
    fn new(
        offers: &'a [Offer],
        demands: &[Demand],
        known_values: &BTreeMap<String, BTreeSet<String>>,
        options: &PlacementOptions,
    ) -> Engine<'a> {
        let n = offers.len();
        let mut fields = vec![Field::new("@hostname".into(), n)];
        for c in demands.iter().flat_map(|d| &d.constraints) {
            let name = canonical(&c.field);
            if !fields.iter().any(|f| f.name == name) {
                fields.push(Field::new(name.to_string(), n));
            }
        }
        // Each offer's fields are rendered once, then only ids are kept.
        for (o, offer) in offers.iter().enumerate() {
            let values = offer_fields(offer);
            for field in &mut fields {
                if let Some(v) = values.get(&field.name) {
                    field.of_offer[o] = field.intern(v);
                }
            }
        }
        for field in &mut fields {
            let in_batch = field.values.len();
            field.live_offers = vec![0; in_batch];
            for &v in &field.of_offer {
                if v != NO_VALUE {
                    field.live_offers[v as usize] += 1;
                }
            }
            field.live_values = in_batch as u32;
            let aliases = [field.name.as_str(), "hostname"];
            let names = if field.name == "@hostname" {
                &aliases[..]
            } else {
                &aliases[..1]
            };
            let known: BTreeSet<&String> = names
                .iter()
                .filter_map(|n| known_values.get(*n))
                .flatten()
                .collect();
            for value in known {
                let id = field.intern(value);
                if id as usize >= in_batch && !field.known_absent.contains(&id) {
                    field.known_absent.push(id);
                }
            }
            // Values only placed instances have still need ids.
            for d in demands {
                for placed in &d.placed {
                    if let Some(v) = placed.get(&field.name) {
                        field.intern(v);
                    }
                }
            }
            let values = field.values.len();
            field.live_offers.resize(values, 0);
            field.counts = vec![0; values];
            field.dead = vec![0; values];
        }
        let remaining: Vec<Remaining> = offers.iter().map(Remaining::all).collect();
        let norm = remaining.iter().fold((0.0f64, 0.0f64), |m, r| {
            let (cpus, mem, ..) = r.totals();
            (m.0.max(cpus), m.1.max(mem))
        });
        let mut engine = Engine {
            offers,
            limit: options.max_instances_per_offer,
            fields,
            remaining,
            launched: vec![0; n],
            score: vec![0; n],
            order: BTreeSet::new(),
            norm,
            role_keys: Vec::new(),
            role_pools: Vec::new(),
            plan: vec![Vec::new(); n],
            seen: vec![Seen::No; n],
            touched_offers: Vec::new(),
            touched_values: Vec::new(),
            heap: BinaryHeap::new(),
            waiting: Vec::new(),
            upcoming: VecDeque::new(),
        };
        for o in 0..n {
            engine.score[o] = engine.inverted_score(o);
            if engine.limit > 0 {
                engine.order.insert((engine.score[o], o as u32));
            }
        }
        if engine.limit == 0 {
            for field in &mut engine.fields {
                field.live_offers.iter_mut().for_each(|c| *c = 0);
                field.live_values = 0;
            }
        }
        engine
    }

    /// Free cpus and memory, each relative to the batch's largest offer,
    /// inverted so that the freest offer sorts first.
    fn inverted_score(&self, o: usize) -> u64 {
        let (cpus, mem, ..) = self.remaining[o].totals();
        let part = |x: f64, max: f64| if max > 0.0 { x / max } else { 0.0 };
        let score = part(cpus, self.norm.0) + part(mem, self.norm.1);
        // Non-negative floats order like their bits.
        let score = if score > 0.0 { score } else { 0.0 };
        u64::MAX - score.to_bits()
    }

    fn rank_key(&self, o: usize) -> RankKey {
        let host = self.fields[HOST].of_offer[o];
        let on_agent = if host == NO_VALUE {
            0
        } else {
            self.fields[HOST].counts[host as usize]
        };
        (on_agent, self.score[o], o as u32)
    }

    /// The index of the pool sets for the demand's roles, computed once per
    /// distinct (role, acceptedResourceRoles) in the batch.
    fn role_set(&mut self, d: &Demand) -> usize {
        if let Some(i) = self
            .role_keys
            .iter()
            .position(|(r, a)| *r == d.role && *a == d.accepted_roles)
        {
            return i;
        }
        let sets = self
            .offers
            .iter()
            .zip(&self.remaining)
            .map(|(offer, remaining)| {
                let other_role = offer
                    .allocation_info
                    .as_ref()
                    .and_then(|a| a.role.as_deref())
                    .is_some_and(|r| r != d.role);
                if other_role {
                    PoolSet::NONE
                } else {
                    remaining.usable_pools(&d.role, d.accepted_roles.as_deref())
                }
            })
            .collect();
        self.role_keys
            .push((d.role.clone(), d.accepted_roles.clone()));
        self.role_pools.push(sets);
        self.role_pools.len() - 1
    }

    fn compile(&mut self, d: &Demand) -> Compiled {
        let field_of = |name: &str| {
            self.fields
                .iter()
                .position(|f| f.name == canonical(name))
                .expect("every constraint field is interned")
        };
        let mut checks = Vec::with_capacity(d.constraints.len());
        let mut groups: Vec<GroupState> = Vec::new();
        for (i, c) in d.constraints.iter().enumerate() {
            let field = field_of(&c.field);
            let kind = match &c.operator {
                Operator::Unique => CheckKind::Unique,
                Operator::MaxPer(n) => CheckKind::MaxPer(*n),
                Operator::Cluster(None) => CheckKind::ClusterFirst(NO_VALUE),
                Operator::GroupBy(n) => {
                    let group = match groups.iter().position(|g| g.field == field) {
                        Some(g) => g,
                        None => {
                            groups.push(GroupState {
                                field,
                                empty_open: 0,
                                occupied: 0,
                                hist: vec![0; 2],
                                min_occupied: 0,
                            });
                            groups.len() - 1
                        }
                    };
                    CheckKind::GroupBy {
                        group,
                        min_groups: *n,
                    }
                }
                Operator::Like(_)
                | Operator::Unlike(_)
                | Operator::Is(_)
                | Operator::Cluster(Some(_)) => CheckKind::Static {
                    cache: vec![0; self.fields[field].values.len()],
                    missing_ok: c.accepts(None, std::iter::empty(), &BTreeSet::new()),
                },
            };
            checks.push(Check {
                field,
                constraint: u16::try_from(i).unwrap_or(NO_CONSTRAINT - 1),
                kind,
            });
        }
        // Cheap and decisive first: value-only checks, then counting ones;
        // GROUP_BY is judged apart (see `group_blocker`).
        checks.sort_by_key(|c| match c.kind {
            CheckKind::Static { .. } => 0,
            CheckKind::GroupBy { .. } => 2,
            _ => 1,
        });
        let mut fields = vec![HOST];
        for c in &checks {
            if !matches!(c.kind, CheckKind::Static { .. }) && !fields.contains(&c.field) {
                fields.push(c.field);
            }
        }
        Compiled {
            checks,
            fields,
            groups,
            pools: self.role_set(d),
        }
    }

    fn place_demand(&mut self, index: usize, d: &Demand) -> DemandOutcome {
        if d.count == 0 {
            return DemandOutcome {
                placed: 0,
                rejections: RejectSummary::default(),
            };
        }
        let mut c = self.compile(d);
        self.load_placed(&mut c, d);
        let mut placed = 0;
        let mut cursor: Option<(u64, u32)> = None;
        while placed < d.count {
            // Offers not looked at yet rank at best (0 on agent, score): pull
            // the next one in while it could beat the heap's best.
            if let Some((s, o)) = self.next_unseen(&mut cursor) {
                let beats_heap = self.heap.peek().is_none_or(|Reverse(top)| (0, s, o) < *top);
                if beats_heap {
                    self.upcoming.pop_front();
                    self.pull(&mut c, d, o as usize);
                    continue;
                }
            }
            let Some(Reverse(key)) = self.heap.pop() else {
                break;
            };
            let o = key.2 as usize;
            // Keys only get worse (more instances, less free); a stale one
            // goes back with its fresh key.
            let fresh = self.rank_key(o);
            if fresh != key {
                self.heap.push(Reverse(fresh));
                continue;
            }
            if let Err(unfit) = self.evaluate(&mut c, d, o) {
                self.discard(&mut c, o, unfit);
                continue;
            }
            if self.group_blocker(&c, o).is_some() {
                self.waiting.push(o as u32);
                continue;
            }
            if self.commit(index, &mut c, d, o) {
                placed += 1;
                if self.launched[o] < self.limit {
                    self.heap.push(Reverse(self.rank_key(o)));
                }
            }
        }
        let rejections = self.finish(&mut c, d);
        DemandOutcome { placed, rejections }
    }

    /// Counts the app's instances already placed, and sets the GROUP_BY
    /// states up from them.
    fn load_placed(&mut self, c: &mut Compiled, d: &Demand) {
        for placed in &d.placed {
            for fi in 0..c.fields.len() {
                let f = c.fields[fi];
                if let Some(&v) = placed
                    .get(&self.fields[f].name)
                    .and_then(|v| self.fields[f].ids.get(v))
                {
                    self.bump(c, f, v, false);
                }
            }
            for check in &mut c.checks {
                if let CheckKind::ClusterFirst(first) = &mut check.kind {
                    let field = &self.fields[check.field];
                    if *first == NO_VALUE
                        && let Some(&v) = placed.get(&field.name).and_then(|v| field.ids.get(v))
                    {
                        *first = v;
                    }
                }
            }
        }
        for g in 0..c.groups.len() {
            let f = c.groups[g].field;
            let field = &self.fields[f];
            let occupied_live = self
                .touched_values
                .iter()
                .filter(|&&(tf, v)| {
                    tf == f && field.counts[v as usize] > 0 && field.live_offers[v as usize] > 0
                })
                .count() as u32;
            let mut empty_open = field.live_values - occupied_live;
            for i in 0..field.known_absent.len() {
                let v = self.fields[f].known_absent[i];
                if self.fields[f].counts[v as usize] == 0 && self.static_ok(c, d, f, v) {
                    empty_open += 1;
                }
            }
            c.groups[g].empty_open = empty_open;
        }
    }

    /// Whether the value-only constraints on field `f` accept value `v`.
    fn static_ok(&self, c: &mut Compiled, d: &Demand, f: usize, v: u32) -> bool {
        c.checks
            .iter_mut()
            .filter(|k| k.field == f)
            .all(|k| match &mut k.kind {
                CheckKind::Static { cache, .. } => cached(
                    cache,
                    v,
                    || self.fields[f].values[v as usize].as_str(),
                    &d.constraints[k.constraint as usize],
                ),
                _ => true,
            })
    }

    /// The next offer in free order that this demand has not looked at,
    /// left at the front of `upcoming`; `cursor` is the last one fetched.
    fn next_unseen(&mut self, cursor: &mut Option<(u64, u32)>) -> Option<(u64, u32)> {
        const CHUNK: usize = 64;
        if self.upcoming.is_empty() {
            let from = cursor.map_or(Bound::Unbounded, Bound::Excluded);
            let seen = &self.seen;
            self.upcoming.extend(
                self.order
                    .range((from, Bound::Unbounded))
                    .filter(|&&(_, o)| seen[o as usize] == Seen::No)
                    .take(CHUNK),
            );
            if let Some(&last) = self.upcoming.back() {
                *cursor = Some(last);
            }
        }
        self.upcoming.front().copied()
    }

    /// Looks at an offer for the first time. One GROUP_BY holds back waits
    /// at once: only a change of the group counts can release it.
    fn pull(&mut self, c: &mut Compiled, d: &Demand, o: usize) {
        self.touched_offers.push(o as u32);
        match self.evaluate(c, d, o) {
            Ok(()) => {
                self.seen[o] = Seen::Live;
                if self.group_blocker(c, o).is_some() {
                    self.waiting.push(o as u32);
                } else {
                    self.heap.push(Reverse(self.rank_key(o)));
                }
            }
            Err(unfit) => self.discard(c, o, unfit),
        }
    }

    /// Every check but GROUP_BY's balance, cheap first: the per-offer limit,
    /// the role, the constraints, the resources. What fails here fails for
    /// the rest of the demand: resources and counts only tighten.
    fn evaluate(&self, c: &mut Compiled, d: &Demand, o: usize) -> Result<(), Unfit> {
        if self.launched[o] >= self.limit {
            return Err(Unfit::Full);
        }
        let pools = self.role_pools[c.pools][o];
        if pools.is_empty() {
            return Err(Unfit::Out(RejectReason::UnfulfilledRole, NO_CONSTRAINT));
        }
        for check in &mut c.checks {
            let field = &self.fields[check.field];
            let v = field.of_offer[o];
            let ok = match &mut check.kind {
                CheckKind::Static { cache, missing_ok } => {
                    if v == NO_VALUE {
                        *missing_ok
                    } else {
                        cached(
                            cache,
                            v,
                            || field.values[v as usize].as_str(),
                            &d.constraints[check.constraint as usize],
                        )
                    }
                }
                // Only UNLIKE accepts an offer without the field.
                _ if v == NO_VALUE => false,
                CheckKind::Unique => field.counts[v as usize] == 0,
                CheckKind::MaxPer(n) => field.counts[v as usize] < *n,
                CheckKind::ClusterFirst(first) => *first == NO_VALUE || *first == v,
                CheckKind::GroupBy { .. } => true,
            };
            if !ok {
                return Err(Unfit::Out(
                    RejectReason::UnfulfilledConstraint,
                    check.constraint,
                ));
            }
        }
        self.remaining[o]
            .check(&d.resources, pools)
            .map_err(|s| Unfit::Out(s.into(), NO_CONSTRAINT))
    }

    /// The GROUP_BY constraint that keeps an otherwise feasible offer
    /// waiting, if any: its group holds instances while an open group holds
    /// none, or more than the least occupied group, or too few groups are
    /// occupied yet.
    fn group_blocker(&self, c: &Compiled, o: usize) -> Option<u16> {
        c.checks.iter().find_map(|check| {
            let CheckKind::GroupBy { group, min_groups } = check.kind else {
                return None;
            };
            let g = &c.groups[group];
            let v = self.fields[check.field].of_offer[o];
            let here = self.fields[check.field].counts[v as usize];
            let balanced = here == 0
                || (g.empty_open == 0 && here == g.min_occupied && g.occupied >= min_groups);
            (!balanced).then_some(check.constraint)
        })
    }

    /// Drops an offer the demand cannot use; an unused group whose live
    /// offers are now all unusable is no longer open for GROUP_BY.
    fn discard(&mut self, c: &mut Compiled, o: usize, unfit: Unfit) {
        let Unfit::Out(reason, constraint) = unfit else {
            // Full offers left the live counts when they filled up.
            return;
        };
        if self.seen[o] != Seen::Used {
            self.seen[o] = Seen::Out(reason, constraint);
        }
        let mut unblocked = false;
        for g in &mut c.groups {
            let field = &mut self.fields[g.field];
            let v = field.of_offer[o];
            if v == NO_VALUE || field.counts[v as usize] > 0 {
                continue;
            }
            let v = v as usize;
            if field.dead[v] == 0 {
                self.touched_values.push((g.field, v as u32));
            }
            field.dead[v] += 1;
            if field.dead[v] == field.live_offers[v] {
                g.empty_open -= 1;
                unblocked |= g.empty_open == 0;
            }
        }
        if unblocked {
            self.requeue_waiting();
        }
    }

    /// Places one instance on offer `o`, which passed every check.
    fn commit(&mut self, index: usize, c: &mut Compiled, d: &Demand, o: usize) -> bool {
        let pools = self.role_pools[c.pools][o];
        let Ok(allocation) = self.remaining[o].allocate_request(&d.resources, pools) else {
            return false;
        };
        self.plan[o].push(Placement {
            demand: index,
            allocation,
        });
        self.launched[o] += 1;
        self.seen[o] = Seen::Used;
        let mut unblocked = false;
        for fi in 0..c.fields.len() {
            let f = c.fields[fi];
            let v = self.fields[f].of_offer[o];
            if v != NO_VALUE {
                unblocked |= self.bump(c, f, v, true);
            }
        }
        for check in &mut c.checks {
            if let CheckKind::ClusterFirst(first) = &mut check.kind
                && *first == NO_VALUE
            {
                *first = self.fields[check.field].of_offer[o];
            }
        }
        self.order.remove(&(self.score[o], o as u32));
        if self.launched[o] < self.limit {
            self.score[o] = self.inverted_score(o);
            self.order.insert((self.score[o], o as u32));
        } else {
            // A full offer can take nothing more in this batch.
            for field in &mut self.fields {
                let v = field.of_offer[o];
                if v != NO_VALUE {
                    field.live_offers[v as usize] -= 1;
                    if field.live_offers[v as usize] == 0 {
                        field.live_values -= 1;
                    }
                }
            }
        }
        if unblocked {
            self.requeue_waiting();
        }
        true
    }

    /// Counts one more instance on value `v` of field `f`. Returns whether
    /// a GROUP_BY on it may now accept offers it refused.
    fn bump(&mut self, c: &mut Compiled, f: usize, v: u32, in_batch: bool) -> bool {
        let field = &mut self.fields[f];
        let old = field.counts[v as usize];
        if old == 0 && field.dead[v as usize] == 0 {
            self.touched_values.push((f, v));
        }
        field.counts[v as usize] = old + 1;
        let mut unblocked = false;
        for g in c.groups.iter_mut().filter(|g| g.field == f) {
            let min_before = g.min_occupied;
            let old = old as usize;
            if g.hist.len() < old + 2 {
                g.hist.resize(old + 2, 0);
            }
            if old == 0 {
                g.occupied += 1;
                // A batch placement fills a group counted as open.
                if in_batch {
                    g.empty_open -= 1;
                }
                g.min_occupied = 1;
            } else {
                g.hist[old] -= 1;
                if old as u32 == g.min_occupied && g.hist[old] == 0 {
                    g.min_occupied += 1;
                }
            }
            g.hist[old + 1] += 1;
            // Only a newly occupied group or a higher minimum can unblock.
            unblocked |= (old == 0 || g.min_occupied != min_before) && g.empty_open == 0;
        }
        unblocked
    }

    /// Offers waiting on GROUP_BY get another chance.
    fn requeue_waiting(&mut self) {
        let waiting = std::mem::take(&mut self.waiting);
        for &o in &waiting {
            self.heap.push(Reverse(self.rank_key(o as usize)));
        }
        self.waiting = waiting;
        self.waiting.clear();
    }

    /// Records why the offers still waiting were not used, tallies the
    /// demand's summary, and resets the scratch state.
    fn finish(&mut self, c: &mut Compiled, d: &Demand) -> RejectSummary {
        let waiting = std::mem::take(&mut self.waiting);
        for &o in &waiting {
            let o = o as usize;
            if self.seen[o] == Seen::Used {
                continue;
            }
            self.seen[o] = match self.evaluate(c, d, o) {
                Err(Unfit::Out(reason, constraint)) => Seen::Out(reason, constraint),
                _ => match self.group_blocker(c, o) {
                    Some(constraint) => Seen::Out(RejectReason::UnfulfilledConstraint, constraint),
                    None => Seen::Live,
                },
            };
        }
        self.waiting = waiting;
        self.waiting.clear();
        self.heap.clear();
        self.upcoming.clear();

        let mut summary = RejectSummary::default();
        let mut by_constraint = vec![0u32; d.constraints.len()];
        for &o in &self.touched_offers {
            summary.processed_offers += 1;
            match self.seen[o as usize] {
                Seen::Used => summary.used_offers += 1,
                Seen::Out(reason, constraint) => {
                    summary.declined[reason as usize] += 1;
                    if let Some(n) = by_constraint.get_mut(constraint as usize) {
                        *n += 1;
                    }
                }
                Seen::Live | Seen::No => {}
            }
            self.seen[o as usize] = Seen::No;
        }
        self.touched_offers.clear();
        summary.constraints = by_constraint
            .iter()
            .enumerate()
            .filter(|(_, n)| **n > 0)
            .map(|(i, &n)| ConstraintRejections {
                constraint: d.constraints[i].to_string(),
                declined: n,
            })
            .collect();
        for &(f, v) in &self.touched_values {
            self.fields[f].counts[v as usize] = 0;
            self.fields[f].dead[v as usize] = 0;
        }
        self.touched_values.clear();
        summary
    }
}

/// A value-only constraint's verdict on value `v`, computed once with
/// [`Constraint::accepts`].
fn cached<'s>(
    cache: &mut [u8],
    v: u32,
    value: impl FnOnce() -> &'s str,
    constraint: &Constraint,
) -> bool {
    let slot = &mut cache[v as usize];
    if *slot == 0 {
        let ok = constraint.accepts(Some(value()), std::iter::empty(), &BTreeSet::new());
        *slot = if ok { 1 } else { 2 };
    }
    *slot == 1
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::offers::resources::PortRequest;
    use crate::state::app::{AppDefaults, PathId};
    use mesos_proto::util::{
        agent_id, framework_id, offer_id, ranges_resource, scalar_resource, text_attribute,
    };
    use mesos_proto::v1::{Resource, resource::AllocationInfo, resource::ReservationInfo};

    /// An offer from agent `host` in `rack` (if any).
    fn offer(host: &str, rack: Option<&str>, cpus: f64, mem: f64, ports: &[(u64, u64)]) -> Offer {
        let mut resources = vec![scalar_resource("cpus", cpus), scalar_resource("mem", mem)];
        if !ports.is_empty() {
            resources.push(ranges_resource("ports", ports));
        }
        Offer {
            id: offer_id(format!("offer-{host}")),
            framework_id: framework_id("f"),
            agent_id: agent_id(format!("agent-{host}")),
            hostname: host.into(),
            resources,
            attributes: rack
                .map(|r| text_attribute("rack_id", r))
                .into_iter()
                .collect(),
            ..Default::default()
        }
    }

    fn demand(cpus: f64, mem: f64, count: u32, constraints: &[&[&str]]) -> Demand {
        Demand {
            app_id: "/app".into(),
            resources: ResourceRequest {
                cpus,
                mem,
                ..Default::default()
            },
            role: "*".into(),
            accepted_roles: None,
            constraints: constraints
                .iter()
                .map(|c| {
                    Constraint::parse(&c.iter().map(|s| s.to_string()).collect::<Vec<_>>()).unwrap()
                })
                .collect(),
            count,
            placed: Vec::new(),
        }
    }

    fn run(offers: &[Offer], demands: &[Demand]) -> Plan {
        place(
            offers,
            demands,
            &BTreeMap::new(),
            &PlacementOptions::default(),
        )
    }

    /// Hostnames that got an instance of demand `d`, in offer order.
    fn hosts_of(plan: &Plan, offers: &[Offer], d: usize) -> Vec<String> {
        plan.placements()
            .filter(|(_, p)| p.demand == d)
            .map(|(o, _)| offers[o].hostname.clone())
            .collect()
    }

    fn scalar(resources: &[Resource], name: &str) -> f64 {
        resources
            .iter()
            .filter(|r| r.name == name)
            .map(|r| r.scalar.as_ref().map_or(0.0, |s| s.value))
            .sum()
    }

    #[test]
    fn several_instances_share_an_offer_without_overcommitting() {
        let offers = [offer("h1", None, 1.0, 256.0, &[(31000, 31002)])];
        let mut first = demand(0.4, 100.0, 5, &[]);
        first.resources.ports = vec![PortRequest::Any];
        let second = demand(0.3, 10.0, 1, &[]);
        let plan = run(&offers, &[first, second]);
        assert_eq!(plan.demands[0].placed, 2, "a third would need 1.2 cpus");
        assert_eq!(plan.demands[1].placed, 0, "only 0.2 cpus are left");
        assert_eq!(
            plan.demands[1]
                .rejections
                .declined(RejectReason::InsufficientCpus),
            1
        );
        let placements = &plan.offers[0];
        let cpus: f64 = placements
            .iter()
            .map(|p| scalar(&p.allocation.resources, "cpus"))
            .sum();
        let mem: f64 = placements
            .iter()
            .map(|p| scalar(&p.allocation.resources, "mem"))
            .sum();
        assert!(cpus <= 1.0 && mem <= 256.0);
        let ports: Vec<u64> = placements
            .iter()
            .flat_map(|p| p.allocation.ports.clone())
            .collect();
        assert_eq!(ports, vec![31000, 31001]);
        assert_eq!(plan.unused_offers().count(), 0);
    }

    #[test]
    fn roles_and_accepted_resource_roles_filter_offers() {
        let mut elsewhere = offer("h1", None, 4.0, 1024.0, &[]);
        elsewhere.allocation_info = Some(AllocationInfo {
            role: Some("other".into()),
        });
        let mut reserved = offer("h2", None, 4.0, 1024.0, &[]);
        for r in &mut reserved.resources {
            r.reservations = vec![ReservationInfo {
                role: Some("web".into()),
                ..Default::default()
            }];
        }
        let offers = [elsewhere, reserved];

        let mut unreserved_only = demand(1.0, 128.0, 1, &[]);
        unreserved_only.role = "web".into();
        unreserved_only.accepted_roles = Some(vec!["*".into()]);
        let plan = run(&offers, &[unreserved_only.clone()]);
        assert_eq!(plan.demands[0].placed, 0);
        assert_eq!(
            plan.demands[0]
                .rejections
                .declined(RejectReason::UnfulfilledRole),
            2,
            "one offer is for another role, the other only has web's reservation"
        );

        let mut web = unreserved_only;
        web.accepted_roles = Some(vec!["web".into()]);
        let plan = run(&offers, &[web]);
        assert_eq!(plan.demands[0].placed, 1);
        let (o, p) = plan.placements().next().unwrap();
        assert_eq!(o, 1);
        assert!(
            p.allocation
                .resources
                .iter()
                .all(|r| { r.reservations.last().and_then(|r| r.role.as_deref()) == Some("web") })
        );

        let mut star = demand(1.0, 128.0, 1, &[]);
        star.role = "*".into();
        let plan = run(&offers, &[star]);
        assert_eq!(
            plan.demands[0]
                .rejections
                .declined(RejectReason::UnfulfilledRole),
            2
        );
    }

    #[test]
    fn require_ports_needs_the_exact_host_port() {
        let app = AppDefinition::from_json(
            br#"{"id":"/web","cmd":"serve","cpus":0.1,"mem":16,"requirePorts":true,
                 "portDefinitions":[{"port":8080}]}"#,
            &PathId::root(),
            &AppDefaults::default(),
        )
        .unwrap();
        let d = Demand::for_app(&app, 3, Vec::new()).unwrap();
        assert_eq!(d.resources.ports, vec![PortRequest::Fixed(8080)]);
        let offers = [
            offer("a", None, 4.0, 1024.0, &[(31000, 32000)]),
            offer("b", None, 4.0, 1024.0, &[(8000, 9000)]),
            offer("c", None, 4.0, 1024.0, &[(8080, 8080)]),
        ];
        let plan = run(&offers, &[d]);
        assert_eq!(plan.demands[0].placed, 2, "8080 exists once on b and on c");
        assert!(plan.offers[0].is_empty());
        for o in [1, 2] {
            assert_eq!(plan.offers[o].len(), 1);
            assert_eq!(plan.offers[o][0].allocation.ports, vec![8080]);
        }
        let r = &plan.demands[0].rejections;
        assert_eq!(r.declined(RejectReason::InsufficientPorts), 1);
        assert_eq!(r.processed_offers, 3);
        assert_eq!(r.used_offers, 2);
    }

    #[test]
    fn fixed_and_any_ports_mix_in_declaration_order() {
        let mut d = demand(0.1, 16.0, 1, &[]);
        d.resources.ports = vec![PortRequest::Any, PortRequest::Fixed(8000)];
        let plan = run(&[offer("a", None, 1.0, 64.0, &[(8000, 8001)])], &[d]);
        assert_eq!(plan.offers[0][0].allocation.ports, vec![8001, 8000]);
    }

    #[test]
    fn every_rejection_reason_is_recorded_in_funnel_order() {
        let mut d = demand(1.0, 128.0, 1, &[&["rack_id", "LIKE", "r1"]]);
        d.resources.disk = 10.0;
        d.resources.gpus = 1;
        d.resources.ports = vec![PortRequest::Any];
        let full = |host: &str, rack: &str| {
            let mut o = offer(host, Some(rack), 2.0, 256.0, &[(31000, 31000)]);
            o.resources.push(scalar_resource("disk", 100.0));
            o.resources.push(scalar_resource("gpus", 1.0));
            o
        };
        let set = |mut o: Offer, name: &str, amount: f64| {
            for r in o.resources.iter_mut().filter(|r| r.name == name) {
                r.scalar.as_mut().unwrap().value = amount;
            }
            o
        };
        let mut role = full("role", "r1");
        role.allocation_info = Some(AllocationInfo {
            role: Some("other".into()),
        });
        let mut ports = full("ports", "r1");
        ports.resources.retain(|r| r.name != "ports");
        let offers = [
            role,
            full("constraint", "r2"),
            set(full("cpus", "r1"), "cpus", 0.5),
            set(full("mem", "r1"), "mem", 64.0),
            set(full("disk", "r1"), "disk", 5.0),
            set(full("gpus", "r1"), "gpus", 0.0),
            ports,
        ];
        let plan = run(&offers, &[d]);
        let r = &plan.demands[0].rejections;
        assert_eq!(plan.demands[0].placed, 0);
        assert_eq!(r.processed_offers, 7);
        assert_eq!(r.unused_offers(), 7);
        for reason in RejectReason::FUNNEL {
            assert_eq!(r.declined(reason), 1, "{reason}");
        }
        let processed: Vec<u32> = r.funnel().iter().map(|s| s.processed).collect();
        assert_eq!(processed, vec![7, 6, 5, 4, 3, 2, 1]);
        assert_eq!(
            r.constraints,
            vec![ConstraintRejections {
                constraint: "rack_id:LIKE:r1".into(),
                declined: 1
            }]
        );
        assert_eq!(
            serde_json::to_value(r.funnel()[0]).unwrap(),
            serde_json::json!({"reason": "UnfulfilledRole", "declined": 1, "processed": 7})
        );
    }

    #[test]
    fn unique_holds_across_one_batch_and_offers_of_one_agent() {
        let mut twin = offer("h1", None, 4.0, 1024.0, &[]);
        twin.id = offer_id("offer-h1-second");
        let offers = [
            offer("h1", None, 4.0, 1024.0, &[]),
            twin,
            offer("h2", None, 4.0, 1024.0, &[]),
        ];
        let plan = run(&offers, &[demand(0.5, 64.0, 3, &[&["hostname", "UNIQUE"]])]);
        let mut hosts = hosts_of(&plan, &offers, 0);
        hosts.sort();
        assert_eq!(hosts, vec!["h1", "h2"]);
        let r = &plan.demands[0].rejections;
        assert_eq!(r.declined(RejectReason::UnfulfilledConstraint), 1);
        assert_eq!(r.constraints[0].constraint, "hostname:UNIQUE");
    }

    #[test]
    fn unique_and_group_by_use_all_three_hosts_over_two_uneven_racks() {
        // rack-1 has two bigger hosts, rack-2 one smaller: spreading by free
        // resources alone would pick rack-1 twice first.
        let offers = [
            offer("h1", Some("rack-1"), 8.0, 4096.0, &[]),
            offer("h2", Some("rack-1"), 8.0, 4096.0, &[]),
            offer("h3", Some("rack-2"), 4.0, 2048.0, &[]),
        ];
        let d = demand(
            1.0,
            128.0,
            3,
            &[&["hostname", "UNIQUE"], &["rack_id", "GROUP_BY"]],
        );
        let plan = run(&offers, std::slice::from_ref(&d));
        let mut hosts = hosts_of(&plan, &offers, 0);
        hosts.sort();
        assert_eq!(hosts, vec!["h1", "h2", "h3"]);

        // With only 2 instances, one goes to each rack.
        let mut two = d;
        two.count = 2;
        let plan = run(&offers, &[two]);
        let mut hosts = hosts_of(&plan, &offers, 0);
        hosts.sort();
        assert_eq!(hosts, vec!["h1", "h3"]);
    }

    #[test]
    fn group_by_passes_over_a_rack_that_cannot_take_an_instance() {
        let offers = [
            offer("h1", Some("r1"), 8.0, 4096.0, &[]),
            offer("h2", Some("r1"), 8.0, 4096.0, &[]),
            offer("h3", Some("r2"), 0.05, 4096.0, &[]),
        ];
        let d = demand(
            1.0,
            128.0,
            2,
            &[&["hostname", "UNIQUE"], &["rack_id", "GROUP_BY"]],
        );
        let plan = run(&offers, std::slice::from_ref(&d));
        assert_eq!(plan.demands[0].placed, 2);
        assert_eq!(
            plan.demands[0]
                .rejections
                .declined(RejectReason::InsufficientCpus),
            1
        );
        // Nor does a rack another constraint rules out block the others.
        let mut like = d;
        like.resources.cpus = 0.01;
        like.constraints
            .push(Constraint::parse(&["rack_id".into(), "LIKE".into(), "r1".into()]).unwrap());
        let known = BTreeMap::from([(
            "rack_id".to_string(),
            BTreeSet::from(["r1".to_string(), "r2".to_string(), "r3".to_string()]),
        )]);
        let plan = place(&offers, &[like], &known, &PlacementOptions::default());
        assert_eq!(plan.demands[0].placed, 2);
    }

    #[test]
    fn group_by_waits_for_a_known_rack_without_offers() {
        let offers = [
            offer("h1", Some("r1"), 8.0, 4096.0, &[]),
            offer("h2", Some("r1"), 8.0, 4096.0, &[]),
        ];
        let known = BTreeMap::from([(
            "rack_id".to_string(),
            BTreeSet::from(["r1".to_string(), "r2".to_string()]),
        )]);
        let d = demand(1.0, 128.0, 2, &[&["rack_id", "GROUP_BY"]]);
        let plan = place(&offers, &[d], &known, &PlacementOptions::default());
        assert_eq!(plan.demands[0].placed, 1, "r2 is known and empty");
        let r = &plan.demands[0].rejections;
        assert_eq!(r.constraints[0].constraint, "rack_id:GROUP_BY");
        assert!(r.declined(RejectReason::UnfulfilledConstraint) >= 1);
    }

    #[test]
    fn max_per_caps_instances_per_value() {
        let offers = [
            offer("a1", Some("r1"), 8.0, 4096.0, &[]),
            offer("a2", Some("r1"), 8.0, 4096.0, &[]),
            offer("b1", Some("r2"), 8.0, 4096.0, &[]),
            offer("b2", Some("r2"), 8.0, 4096.0, &[]),
        ];
        let plan = run(
            &offers,
            &[demand(0.1, 16.0, 9, &[&["rack_id", "MAX_PER", "2"]])],
        );
        assert_eq!(plan.demands[0].placed, 4);
        let per_rack = |rack: &str| {
            plan.placements()
                .filter(|(o, _)| offers[*o].attributes[0].text.as_ref().unwrap().value == rack)
                .count()
        };
        assert_eq!((per_rack("r1"), per_rack("r2")), (2, 2));
    }

    #[test]
    fn the_per_offer_limit_caps_instances_on_one_offer() {
        let offers = [offer("h1", None, 64.0, 65536.0, &[])];
        let d = demand(0.1, 16.0, 10, &[]);
        let plan = run(&offers, std::slice::from_ref(&d));
        assert_eq!(plan.demands[0].placed, 5, "Marathon's default of 5");
        let many = PlacementOptions {
            max_instances_per_offer: 1000,
        };
        let plan = place(&offers, &[d], &BTreeMap::new(), &many);
        assert_eq!(plan.demands[0].placed, 10);
    }

    #[test]
    fn spread_prefers_agents_without_the_app_then_the_freest_offer() {
        let offers = [
            offer("small", None, 2.0, 2048.0, &[]),
            offer("big", None, 8.0, 8192.0, &[]),
            offer("medium", None, 4.0, 4096.0, &[]),
        ];
        let plan = run(&offers, &[demand(1.0, 128.0, 1, &[])]);
        assert_eq!(hosts_of(&plan, &offers, 0), vec!["big"]);
        // Three instances without constraints still land on three agents.
        let plan = run(&offers, &[demand(1.0, 128.0, 3, &[])]);
        assert!(plan.offers.iter().all(|p| p.len() == 1));
        // Equal inputs, equal plans.
        let demands = [
            demand(0.5, 64.0, 4, &[&["hostname", "UNIQUE"]]),
            demand(1.5, 512.0, 5, &[]),
        ];
        assert_eq!(run(&offers, &demands), run(&offers, &demands));
    }

    #[test]
    fn instances_already_placed_count_for_constraints_and_spread() {
        let offers = [
            offer("h1", Some("r1"), 8.0, 4096.0, &[]),
            offer("h2", Some("r1"), 4.0, 4096.0, &[]),
        ];
        let mut d = demand(1.0, 128.0, 1, &[&["hostname", "UNIQUE"]]);
        d.placed = vec![offer_fields(&offers[0])];
        let plan = run(&offers, &[d]);
        assert_eq!(hosts_of(&plan, &offers, 0), vec!["h2"]);

        let mut cluster = demand(1.0, 128.0, 2, &[&["rack_id", "CLUSTER"]]);
        cluster.placed = vec![BTreeMap::from([("rack_id".to_string(), "r2".to_string())])];
        let plan = run(&offers, &[cluster]);
        assert_eq!(plan.demands[0].placed, 0, "the first instance chose r2");
    }

    #[test]
    fn cluster_without_value_follows_the_first_placement() {
        let offers = [
            offer("a", Some("r1"), 8.0, 4096.0, &[]),
            offer("b", Some("r2"), 4.0, 4096.0, &[]),
            offer("c", Some("r1"), 2.0, 4096.0, &[]),
        ];
        let plan = run(
            &offers,
            &[demand(1.0, 128.0, 3, &[&["rack_id", "CLUSTER"]])],
        );
        assert_eq!(plan.demands[0].placed, 3);
        assert!(plan.offers[1].is_empty(), "r2 differs from the first");
        assert_eq!(plan.unused_offers().collect::<Vec<_>>(), vec![1]);
    }

    #[test]
    fn a_demand_is_built_from_an_app_definition() {
        let app = AppDefinition::from_json(
            br#"{"id":"/db","cmd":"run","cpus":2,"mem":1024,"disk":50,"gpus":1,
                 "role":"*","acceptedResourceRoles":["*"],
                 "constraints":[["hostname","UNIQUE"],["rack_id","GROUP_BY","2"]],
                 "portDefinitions":[{"port":0},{"port":0}]}"#,
            &PathId::root(),
            &AppDefaults::default(),
        )
        .unwrap();
        let d = Demand::for_app(&app, 4, Vec::new()).unwrap();
        assert_eq!(d.app_id, "/db");
        assert_eq!(
            d.resources,
            ResourceRequest {
                cpus: 2.0,
                mem: 1024.0,
                disk: 50.0,
                gpus: 1,
                ports: vec![PortRequest::Any, PortRequest::Any],
            }
        );
        assert_eq!(d.accepted_roles, Some(vec!["*".to_string()]));
        assert_eq!(d.constraints.len(), 2);
        assert_eq!(d.constraints[1].to_string(), "rack_id:GROUP_BY:2");
        assert_eq!(d.count, 4);
    }

    #[test]
    fn a_satisfied_demand_stops_looking() {
        let offers: Vec<Offer> = (0..100)
            .map(|i| offer(&format!("h{i}"), None, 4.0, 4096.0, &[]))
            .collect();
        let plan = run(
            &offers,
            &[demand(1.0, 128.0, 3, &[&["hostname", "UNIQUE"]])],
        );
        let r = &plan.demands[0].rejections;
        assert_eq!(plan.demands[0].placed, 3);
        assert!(r.processed_offers < 10, "looked at {}", r.processed_offers);
    }
}
