//! Unit tests of the placement engine.

use super::*;
use crate::offers::constraints::{Constraint, offer_fields};
use crate::offers::resources::PortRequest;
use crate::offers::resources::ResourceRequest;
use crate::state::app::AppDefinition;
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
