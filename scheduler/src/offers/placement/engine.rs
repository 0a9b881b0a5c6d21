//! The placement engine behind [`super::place`]: constraint fields
//! interned per batch, feasibility checks cheap-first, offers ranked for
//! spread, GROUP_BY's open and occupied groups (see the module docs of
//! [`super`]).

use std::cmp::Reverse;
use std::collections::{BTreeMap, BTreeSet, BinaryHeap, VecDeque};
use std::ops::Bound;

use mesos_proto::v1::Offer;

use super::fields::{Field, NO_VALUE, canonical};
use super::plan::{
    ConstraintRejections, Demand, DemandOutcome, Placement, PlacementOptions, RejectReason,
    RejectSummary,
};
use crate::offers::constraints::{Constraint, Operator, offer_fields};
use crate::offers::resources::{PoolSet, Remaining};

/// No constraint: the rejection is not a constraint's.
const NO_CONSTRAINT: u16 = u16::MAX;
/// The field of index 0 is always the hostname: ranking counts per agent.
const HOST: usize = 0;

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

pub(super) struct Engine<'a> {
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
    pub(super) plan: Vec<Vec<Placement>>,
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
    pub(super) fn new(
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

    pub(super) fn place_demand(&mut self, index: usize, d: &Demand) -> DemandOutcome {
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
