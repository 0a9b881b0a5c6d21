//! Property tests of the placement engine (`baton::offers::placement`):
//! over random offers (hosts, racks, resources, reservations), random
//! demands and constraints from {hostname UNIQUE, rack_id MAX_PER n,
//! rack_id GROUP_BY}, no plan over-commits an offer, breaks UNIQUE or
//! MAX_PER, or unbalances GROUP_BY; and a demand left waiting really had
//! nowhere to go.
//!
//! The checks use the building blocks (`Constraint::accepts`, `Remaining`)
//! as the oracle, replaying the plan rather than trusting its bookkeeping.

use std::collections::{BTreeMap, BTreeSet};

use baton::offers::constraints::{Constraint, offer_fields};
use baton::offers::placement::{Demand, PlacementOptions, Plan, place};
use baton::offers::resources::{PortRequest, Remaining, ResourceRequest};
use mesos_proto::util::{
    agent_id, framework_id, offer_id, ranges_resource, scalar_resource, text_attribute,
};
use mesos_proto::v1::{Offer, Resource, resource::ReservationInfo};
use proptest::prelude::*;

const RACK: &str = "rack_id";

#[derive(Debug, Clone)]
struct OfferSpec {
    host: usize,
    cpus: f64,
    mem: f64,
    ports: u64,
    /// Part of the offer reserved for role `web`.
    reserved_cpus: Option<f64>,
}

#[derive(Debug, Clone)]
struct DemandSpec {
    cpus: f64,
    mem: f64,
    ports: usize,
    fixed_port: bool,
    web: bool,
    unique: bool,
    max_per: Option<u32>,
    group_by: bool,
    count: u32,
}

#[derive(Debug, Clone)]
struct Case {
    racks: usize,
    offers: Vec<OfferSpec>,
    demands: Vec<DemandSpec>,
    /// A rack known from earlier offers but absent from this batch.
    absent_rack: bool,
    limit: u32,
}

fn rack_of(host: usize, racks: usize) -> String {
    format!("r{}", host % racks)
}

fn offer_spec() -> impl Strategy<Value = OfferSpec> {
    (
        0usize..8,
        0u32..=8,
        0u32..=16,
        0u64..=4,
        prop::option::weighted(0.2, 1u32..=4),
    )
        .prop_map(|(host, cpus, mem, ports, reserved)| OfferSpec {
            host,
            cpus: f64::from(cpus) * 0.5,
            mem: f64::from(mem) * 128.0,
            ports,
            reserved_cpus: reserved.map(f64::from),
        })
}

fn demand_spec() -> impl Strategy<Value = DemandSpec> {
    (
        (1u32..=3, 1u32..=4, 0usize..=2, prop::bool::weighted(0.2)),
        (
            prop::bool::weighted(0.3),
            any::<bool>(),
            prop::option::of(1u32..=3),
            any::<bool>(),
        ),
        0u32..=10,
    )
        .prop_map(
            |((cpus, mem, ports, fixed_port), (web, unique, max_per, group_by), count)| {
                DemandSpec {
                    cpus: f64::from(cpus) * 0.5,
                    mem: f64::from(mem) * 128.0,
                    ports,
                    fixed_port,
                    web,
                    unique,
                    max_per,
                    group_by,
                    count,
                }
            },
        )
}

fn case() -> impl Strategy<Value = Case> {
    (
        1usize..=4,
        prop::collection::vec(offer_spec(), 1..=12),
        prop::collection::vec(demand_spec(), 1..=4),
        prop::bool::weighted(0.2),
        1u32..=6,
    )
        .prop_map(|(racks, offers, demands, absent_rack, limit)| Case {
            racks,
            offers,
            demands,
            absent_rack,
            limit,
        })
}

fn reserved_for_web(mut r: Resource) -> Resource {
    r.reservations = vec![ReservationInfo {
        role: Some("web".into()),
        ..Default::default()
    }];
    r
}

fn build_offers(case: &Case) -> Vec<Offer> {
    case.offers
        .iter()
        .enumerate()
        .map(|(i, s)| {
            let mut resources = vec![
                scalar_resource("cpus", s.cpus),
                scalar_resource("mem", s.mem),
            ];
            if s.ports > 0 {
                resources.push(ranges_resource("ports", &[(31000, 31000 + s.ports - 1)]));
            }
            if let Some(cpus) = s.reserved_cpus {
                resources.push(reserved_for_web(scalar_resource("cpus", cpus)));
                resources.push(reserved_for_web(scalar_resource("mem", 1024.0)));
            }
            Offer {
                id: offer_id(format!("o{i}")),
                framework_id: framework_id("f"),
                agent_id: agent_id(format!("a{}", s.host)),
                hostname: format!("h{}", s.host),
                resources,
                attributes: vec![text_attribute(RACK, &rack_of(s.host, case.racks))],
                ..Default::default()
            }
        })
        .collect()
}

fn parse(parts: &[&str]) -> Constraint {
    Constraint::parse(&parts.iter().map(|s| s.to_string()).collect::<Vec<_>>()).unwrap()
}

fn build_demands(case: &Case) -> Vec<Demand> {
    case.demands
        .iter()
        .enumerate()
        .map(|(i, s)| {
            let mut ports = vec![PortRequest::Any; s.ports];
            if s.fixed_port {
                ports.push(PortRequest::Fixed(31001));
            }
            let mut constraints = Vec::new();
            if s.unique {
                constraints.push(parse(&["hostname", "UNIQUE"]));
            }
            if let Some(n) = s.max_per {
                constraints.push(parse(&[RACK, "MAX_PER", &n.to_string()]));
            }
            if s.group_by {
                constraints.push(parse(&[RACK, "GROUP_BY"]));
            }
            Demand {
                app_id: format!("/app{i}"),
                resources: ResourceRequest {
                    cpus: s.cpus,
                    mem: s.mem,
                    ports,
                    ..Default::default()
                },
                role: if s.web { "web" } else { "*" }.into(),
                accepted_roles: None,
                constraints,
                count: s.count,
                placed: Vec::new(),
            }
        })
        .collect()
}

fn known_values(case: &Case, offers: &[Offer]) -> BTreeMap<String, BTreeSet<String>> {
    let mut racks: BTreeSet<String> = offers
        .iter()
        .map(|o| offer_fields(o)[RACK].clone())
        .collect();
    if case.absent_rack {
        racks.insert("r9".into());
    }
    BTreeMap::from([(RACK.to_string(), racks)])
}

/// The offers as the plan leaves them, replayed with `Remaining`: every
/// allocation must be carvable, in order, from what the offer holds.
fn replay(offers: &[Offer], demands: &[Demand], plan: &Plan) -> Result<Vec<Remaining>, String> {
    offers
        .iter()
        .zip(&plan.offers)
        .map(|(offer, placements)| {
            let mut remaining = Remaining::all(offer);
            for p in placements {
                let d = &demands[p.demand];
                let pools = remaining.usable_pools(&d.role, d.accepted_roles.as_deref());
                let again = remaining
                    .allocate_request(&d.resources, pools)
                    .map_err(|s| format!("{}: {s:?} on replay", offer.hostname))?;
                if again != p.allocation {
                    return Err(format!("{}: allocation differs on replay", offer.hostname));
                }
            }
            Ok(remaining)
        })
        .collect()
}

fn scalar(resources: &[Resource], name: &str) -> f64 {
    resources
        .iter()
        .filter(|r| r.name == name)
        .filter_map(|r| r.scalar.as_ref().map(|s| s.value))
        .sum()
}

/// Whether `offer` could take one more instance of demand `d` at the end of
/// the batch, by every check but GROUP_BY, judged with the building blocks.
fn could_take(
    d: &Demand,
    offer: &Offer,
    remaining: &Remaining,
    launched: usize,
    limit: u32,
    placed: &[BTreeMap<String, String>],
) -> bool {
    let fields = offer_fields(offer);
    let none = BTreeSet::new();
    launched < limit as usize
        && d.constraints.iter().all(|c| {
            matches!(c.operator, baton::offers::constraints::Operator::GroupBy(_))
                || c.accepts(
                    baton::offers::constraints::field_value(&fields, &c.field),
                    placed
                        .iter()
                        .map(|p| baton::offers::constraints::field_value(p, &c.field)),
                    &none,
                )
        })
        && remaining
            .check(
                &d.resources,
                remaining.usable_pools(&d.role, d.accepted_roles.as_deref()),
            )
            .is_ok()
}

proptest! {
    #![proptest_config(ProptestConfig { cases: 512, ..ProptestConfig::default() })]

    #[test]
    fn plans_never_overcommit_or_break_constraints(case in case()) {
        let offers = build_offers(&case);
        let demands = build_demands(&case);
        let known = known_values(&case, &offers);
        let options = PlacementOptions { max_instances_per_offer: case.limit };
        let plan = place(&offers, &demands, &known, &options);

        // Deterministic.
        prop_assert_eq!(&plan, &place(&offers, &demands, &known, &options));
        prop_assert_eq!(plan.offers.len(), offers.len());

        // Never more than the offer holds: scalars summed, ports distinct
        // and offered, and each allocation carvable again in order.
        for (offer, placements) in offers.iter().zip(&plan.offers) {
            prop_assert!(placements.len() <= case.limit as usize);
            for name in ["cpus", "mem", "disk"] {
                let used: f64 = placements.iter().map(|p| scalar(&p.allocation.resources, name)).sum();
                prop_assert!(used <= scalar(&offer.resources, name) + 1e-6, "{} over-committed", name);
            }
            let ports: Vec<u64> = placements.iter().flat_map(|p| p.allocation.ports.clone()).collect();
            let distinct: BTreeSet<u64> = ports.iter().copied().collect();
            prop_assert_eq!(distinct.len(), ports.len(), "a port given twice");
            let offered = case.offers[offer.id.value[1..].parse::<usize>().unwrap()].ports;
            prop_assert!(ports.iter().all(|p| (31000..31000 + offered).contains(p)));
        }
        let remaining = replay(&offers, &demands, &plan).map_err(TestCaseError::fail)?;

        for (i, d) in demands.iter().enumerate() {
            let mine: Vec<usize> = plan.placements().filter(|(_, p)| p.demand == i).map(|(o, _)| o).collect();
            prop_assert_eq!(plan.demands[i].placed as usize, mine.len());
            prop_assert!(mine.len() <= d.count as usize);
            let used: BTreeSet<usize> = mine.iter().copied().collect();
            prop_assert_eq!(plan.demands[i].rejections.used_offers as usize, used.len());
            prop_assert!(plan.demands[i].rejections.processed_offers as usize <= offers.len());

            let placed: Vec<BTreeMap<String, String>> = mine.iter().map(|&o| offer_fields(&offers[o])).collect();
            let spec = &case.demands[i];
            if spec.unique {
                let hosts: BTreeSet<&String> = placed.iter().map(|f| &f["@hostname"]).collect();
                prop_assert_eq!(hosts.len(), placed.len(), "UNIQUE broken");
            }
            let mut per_rack: BTreeMap<String, u32> = BTreeMap::new();
            for f in &placed {
                *per_rack.entry(f[RACK].clone()).or_default() += 1;
            }
            if let Some(n) = spec.max_per {
                prop_assert!(per_rack.values().all(|&c| c <= n), "MAX_PER broken: {:?}", per_rack);
            }

            let launched = |o: usize| plan.offers[o].len();
            let open_offer = |o: usize| could_take(d, &offers[o], &remaining[o], launched(o), case.limit, &placed);
            if spec.group_by {
                // The invariant (see the module docs of `placement`): a rack
                // that received an instance in the batch holds at most one
                // more than any rack that is occupied, or open at the end —
                // known without an offer in the batch (r9), or with an offer
                // that could take one more instance by every other check.
                // From an empty start that is max − min ≤ 1 over the open
                // and occupied racks. Racks that are neither are infeasible
                // and may stay empty.
                let mut open: BTreeSet<String> = known[RACK]
                    .iter()
                    .filter(|r| !offers.iter().any(|o| offer_fields(o)[RACK] == **r))
                    .cloned()
                    .collect();
                open.extend((0..offers.len()).filter(|&o| open_offer(o)).map(|o| offer_fields(&offers[o])[RACK].clone()));
                let max = per_rack.values().copied().max().unwrap_or(0);
                let min = open
                    .iter()
                    .map(|r| per_rack.get(r).copied().unwrap_or(0))
                    .chain(per_rack.values().copied())
                    .min()
                    .unwrap_or(0);
                prop_assert!(max <= min + 1, "GROUP_BY unbalanced: {:?}, open {:?}", per_rack, open);
            }

            // Nothing left behind: a demand still waiting has no offer that
            // could take one more. (For GROUP_BY, only the last demand is
            // judged, as later demands change which racks are open.)
            if (plan.demands[i].placed) < d.count {
                let last = i + 1 == demands.len();
                if !spec.group_by {
                    prop_assert!(
                        !(0..offers.len()).any(open_offer),
                        "demand {} waits though an offer fits", i
                    );
                } else if last && !case.absent_rack {
                    let min = per_rack_min(&offers, &per_rack, &open_offer);
                    for o in (0..offers.len()).filter(|&o| open_offer(o)) {
                        let here = per_rack.get(&offer_fields(&offers[o])[RACK]).copied().unwrap_or(0);
                        prop_assert!(here > min, "demand {} waits though a balanced offer fits", i);
                    }
                }
            }
        }
    }
}

proptest! {
    #![proptest_config(ProptestConfig { cases: 256, ..ProptestConfig::default() })]

    /// A second batch after the first, with the first's instances passed as
    /// placed: constraints hold over both, and GROUP_BY's invariant in its
    /// general form — a rack that received an instance in the second batch
    /// holds at most one more than any rack open or occupied at its end.
    #[test]
    fn instances_placed_earlier_count_in_the_next_batch(case in case()) {
        let offers = build_offers(&case);
        let mut demands = build_demands(&case);
        let known = known_values(&case, &offers);
        let options = PlacementOptions { max_instances_per_offer: case.limit };
        let first = place(&offers, &demands, &known, &options);
        for (i, d) in demands.iter_mut().enumerate() {
            d.placed = first
                .placements()
                .filter(|(_, p)| p.demand == i)
                .map(|(o, _)| offer_fields(&offers[o]))
                .collect();
        }
        // The agents offer again, whole.
        let second = place(&offers, &demands, &known, &options);
        let remaining = replay(&offers, &demands, &second).map_err(TestCaseError::fail)?;

        for (i, d) in demands.iter().enumerate() {
            let new: Vec<BTreeMap<String, String>> = second
                .placements()
                .filter(|(_, p)| p.demand == i)
                .map(|(o, _)| offer_fields(&offers[o]))
                .collect();
            let all: Vec<BTreeMap<String, String>> = d.placed.iter().chain(&new).cloned().collect();
            let spec = &case.demands[i];
            if spec.unique {
                let hosts: BTreeSet<&String> = all.iter().map(|f| &f["@hostname"]).collect();
                prop_assert_eq!(hosts.len(), all.len(), "UNIQUE broken across batches");
            }
            let mut per_rack: BTreeMap<String, u32> = BTreeMap::new();
            for f in &all {
                *per_rack.entry(f[RACK].clone()).or_default() += 1;
            }
            if let Some(n) = spec.max_per {
                prop_assert!(per_rack.values().all(|&c| c <= n), "MAX_PER broken: {:?}", per_rack);
            }
            if spec.group_by {
                let launched = |o: usize| second.offers[o].len();
                let mut open: BTreeSet<String> = known[RACK]
                    .iter()
                    .filter(|r| !offers.iter().any(|o| offer_fields(o)[RACK] == **r))
                    .cloned()
                    .collect();
                open.extend(
                    (0..offers.len())
                        .filter(|&o| could_take(d, &offers[o], &remaining[o], launched(o), case.limit, &all))
                        .map(|o| offer_fields(&offers[o])[RACK].clone()),
                );
                let floor = open
                    .iter()
                    .map(|r| per_rack.get(r).copied().unwrap_or(0))
                    .chain(per_rack.values().copied())
                    .min()
                    .unwrap_or(0);
                for f in &new {
                    let here = per_rack[&f[RACK]];
                    prop_assert!(here <= floor + 1, "GROUP_BY unbalanced: {:?}, open {:?}", per_rack, open);
                }
                // The last demand, if still waiting, has no open offer on a
                // rack at the minimum.
                let waiting = second.demands[i].placed < d.count;
                if waiting && i + 1 == demands.len() && !case.absent_rack {
                    for o in (0..offers.len()).filter(|&o| could_take(d, &offers[o], &remaining[o], launched(o), case.limit, &all)) {
                        let here = per_rack.get(&offer_fields(&offers[o])[RACK]).copied().unwrap_or(0);
                        prop_assert!(here > floor, "demand {} waits though a balanced offer fits", i);
                    }
                }
            }
        }
    }
}

/// The fewest instances over racks that are occupied or have an open offer.
fn per_rack_min(
    offers: &[Offer],
    per_rack: &BTreeMap<String, u32>,
    open_offer: &dyn Fn(usize) -> bool,
) -> u32 {
    (0..offers.len())
        .filter(|&o| open_offer(o))
        .map(|o| {
            per_rack
                .get(&offer_fields(&offers[o])[RACK])
                .copied()
                .unwrap_or(0)
        })
        .chain(per_rack.values().copied())
        .min()
        .unwrap_or(0)
}
