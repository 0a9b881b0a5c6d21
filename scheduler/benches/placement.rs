//! Placement throughput: `cargo bench -p baton --bench placement`.
//!
//! Simulates one offer batch from 10,000 agents over 20 racks (8 cpus,
//! 32 GiB, ports 31000-32000 each) and places apps of 0.1–1 cpu with
//! `[["hostname","UNIQUE"],["rack_id","GROUP_BY"]]`, single-threaded.
//! Reports placements per second (time spent in `place` only; building the
//! offers is the caller's) and memory: resident set before and peak
//! (`VmHWM`) after, read from /proc, since `unsafe_code = "forbid"` rules
//! out a counting allocator. A plain `main`, no harness.
// A benchmark measures wall time.
#![allow(clippy::disallowed_methods)]

mod common;

use std::collections::{BTreeMap, BTreeSet};
use std::hint::black_box;
use std::time::{Duration, Instant};

use baton::offers::constraints::Constraint;
use baton::offers::placement::{Demand, PlacementOptions, place};
use baton::offers::resources::{PortRequest, ResourceRequest};
use mesos_proto::util::{
    agent_id, framework_id, offer_id, ranges_resource, scalar_resource, text_attribute,
};
use mesos_proto::v1::Offer;

use common::{mib, proc_status_mib};

const AGENTS: usize = 10_000;
const RACKS: usize = 20;
/// Runs per scenario; the fastest is reported (the least disturbed).
const RUNS: usize = 3;

fn offers() -> Vec<Offer> {
    (0..AGENTS)
        .map(|i| Offer {
            id: offer_id(format!("offer-{i}")),
            framework_id: framework_id("bench"),
            agent_id: agent_id(format!("agent-{i}")),
            hostname: format!("agent-{i}.example.com"),
            resources: vec![
                scalar_resource("cpus", 8.0),
                scalar_resource("mem", 32_768.0),
                ranges_resource("ports", &[(31_000, 32_000)]),
            ],
            attributes: vec![text_attribute("rack_id", &format!("rack-{}", i % RACKS))],
            ..Default::default()
        })
        .collect()
}

/// A small deterministic generator, so every run places the same apps.
struct Lcg(u64);

impl Lcg {
    fn next(&mut self) -> u64 {
        self.0 = self
            .0
            .wrapping_mul(6_364_136_223_846_793_005)
            .wrapping_add(1_442_695_040_888_963_407);
        self.0 >> 33
    }
}

fn demands(apps: usize, instances: u32) -> Vec<Demand> {
    let mut rng = Lcg(42);
    let constraints: Vec<Constraint> = [["hostname", "UNIQUE"], ["rack_id", "GROUP_BY"]]
        .iter()
        .map(|c| Constraint::parse(&c.map(String::from)).expect("valid constraint"))
        .collect();
    (0..apps)
        .map(|i| Demand {
            app_id: format!("/bench/app-{i}"),
            resources: ResourceRequest {
                // 0.1 to 1.0 cpu, 128 MB to 1 GB.
                cpus: (1 + rng.next() % 10) as f64 / 10.0,
                mem: (128 * (1 + rng.next() % 8)) as f64,
                ports: vec![PortRequest::Any],
                ..Default::default()
            },
            role: "*".into(),
            accepted_roles: None,
            constraints: constraints.clone(),
            count: instances,
            placed: Vec::new(),
        })
        .collect()
}

/// A `kB` line of /proc/self/status, in MiB.
struct Outcome {
    placed: usize,
    best: Duration,
}

/// `absent_rack`: a rack known from earlier offers has none in this batch,
/// so GROUP_BY holds every app at one instance per rack and every demand
/// stays waiting — the worst case, where each looks at every offer.
fn scenario(offers: &[Offer], apps: usize, instances: u32, absent_rack: bool) -> Outcome {
    let demands = demands(apps, instances);
    let mut known = BTreeMap::<String, BTreeSet<String>>::new();
    if absent_rack {
        let mut racks: BTreeSet<String> = (0..RACKS).map(|r| format!("rack-{r}")).collect();
        racks.insert("rack-absent".into());
        known.insert("rack_id".into(), racks);
    }
    let options = PlacementOptions::default();
    // Peak RSS is reset (Linux: write 5 to clear_refs) so VmHWM is this
    // scenario's; where that is refused, it is the process's peak so far.
    let _ = std::fs::write("/proc/self/clear_refs", "5");
    let before = proc_status_mib("VmRSS:");
    let mut best = Duration::MAX;
    let mut placed = 0;
    for _ in 0..RUNS {
        let start = Instant::now();
        let plan = black_box(place(
            black_box(offers),
            black_box(&demands),
            &known,
            &options,
        ));
        let took = start.elapsed();
        best = best.min(took);
        placed = plan.placements().count();
        let waiting: u32 = plan
            .demands
            .iter()
            .map(|d| d.placed)
            .zip(&demands)
            .map(|(p, d)| d.count - p)
            .sum();
        if absent_rack {
            assert_eq!(placed, apps * RACKS, "one instance per rack that offers");
        } else {
            assert_eq!(waiting, 0, "every instance fits");
        }
        drop(plan);
    }
    let peak = proc_status_mib("VmHWM:");
    let ms = best.as_secs_f64() * 1000.0;
    if absent_rack {
        println!(
            "placement: {apps:>5} apps x {instances:>4} instances, all left waiting on an absent rack: \
             {placed} placed, {} offers looked at per app, in {ms:>7.1} ms; RSS before {}, peak {}",
            offers.len(),
            mib(before),
            mib(peak),
        );
    } else {
        let rate = placed as f64 / best.as_secs_f64();
        println!(
            "placement: {apps:>5} apps x {instances:>4} instances over {AGENTS} offers / {RACKS} racks: \
             {placed} placed in {ms:>7.1} ms = {rate:>9.0} placements/s; RSS before {}, peak {}",
            mib(before),
            mib(peak),
        );
    }
    Outcome { placed, best }
}

fn main() {
    let cores = std::thread::available_parallelism().map_or(0, |n| n.get());
    println!(
        "placement benchmark: single thread, best of {RUNS} runs, constraints hostname:UNIQUE + rack_id:GROUP_BY, \
         max {} instances per offer ({cores} cores available)",
        PlacementOptions::default().max_instances_per_offer
    );
    let offers = offers();
    let setup = (0..RUNS)
        .map(|_| {
            let start = Instant::now();
            black_box(place(
                black_box(&offers),
                &[],
                &BTreeMap::new(),
                &PlacementOptions::default(),
            ));
            start.elapsed()
        })
        .min()
        .unwrap_or_default();
    println!(
        "placement: batch setup alone (render and intern {AGENTS} offers' fields, order them): {:.1} ms",
        setup.as_secs_f64() * 1000.0
    );
    let mut total_placed = 0;
    let mut total_time = Duration::ZERO;
    for (apps, instances) in [(100, 100), (1_000, 10), (10, 1_000), (10_000, 1)] {
        let o = scenario(&offers, apps, instances, false);
        total_placed += o.placed;
        total_time += o.best;
    }
    scenario(&offers, 100, 100, true);
    println!(
        "placement summary: {total_placed} placements in {:.1} ms = {:.0} placements/s (target >= 20000); peak RSS {}",
        total_time.as_secs_f64() * 1000.0,
        total_placed as f64 / total_time.as_secs_f64(),
        mib(proc_status_mib("VmHWM:")),
    );
}
