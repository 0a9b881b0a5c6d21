//! What is left of an offer, and carving a task's resources out of it.
//!
//! Only resources usable by our role are considered: unreserved ones (role
//! `*`, no reservations) and those reserved for or allocated to our role.
//! Allocated resources keep the offer's `allocation_info` and reservation so
//! that they are contained in the offer, as the master checks.

use mesos_proto::util::{ranges_resource, scalar_resource};
use mesos_proto::v1::{Offer, Resource};

use crate::state::TaskSpec;

/// Scalar amounts are compared with Mesos's fixed-point precision.
const EPSILON: f64 = 1e-3;

/// One pool of resources from an offer: a role/reservation combination.
#[derive(Debug, Clone)]
struct Pool {
    /// A template carrying role, reservations and allocation info.
    template: Resource,
    cpus: f64,
    mem: f64,
    disk: f64,
    /// Free port ranges, inclusive.
    ports: Vec<(u64, u64)>,
}

/// What remains of one offer while tasks are placed on it.
#[derive(Debug, Clone)]
pub struct Remaining {
    pools: Vec<Pool>,
}

/// The resources a task was given.
#[derive(Debug, Clone, PartialEq)]
pub struct Allocation {
    /// Resources for `TaskInfo.resources`.
    pub resources: Vec<Resource>,
    /// Host ports taken, in order.
    pub ports: Vec<u64>,
}

fn usable_by(resource: &Resource, role: &str) -> bool {
    let reserved_role = resource.reservations.last().and_then(|r| r.role.as_deref());
    match reserved_role {
        Some(r) => r == role,
        None => resource
            .role
            .as_deref()
            .is_none_or(|r| r == "*" || r == role),
    }
}

fn pool_key(resource: &Resource) -> (Option<String>, Vec<Option<String>>, Option<String>) {
    (
        resource.role.clone(),
        resource
            .reservations
            .iter()
            .map(|r| r.role.clone())
            .collect(),
        resource
            .allocation_info
            .as_ref()
            .and_then(|a| a.role.clone()),
    )
}

impl Remaining {
    /// The resources of `offer` usable by `role`.
    pub fn of(offer: &Offer, role: &str) -> Remaining {
        let mut pools: Vec<Pool> = Vec::new();
        for resource in offer.resources.iter().filter(|r| usable_by(r, role)) {
            let key = pool_key(resource);
            let index = match pools.iter().position(|p| pool_key(&p.template) == key) {
                Some(i) => i,
                None => {
                    let template = Resource {
                        name: String::new(),
                        r#type: 0,
                        scalar: None,
                        ranges: None,
                        set: None,
                        ..resource.clone()
                    };
                    pools.push(Pool {
                        template,
                        cpus: 0.0,
                        mem: 0.0,
                        disk: 0.0,
                        ports: Vec::new(),
                    });
                    pools.len() - 1
                }
            };
            let pool = &mut pools[index];
            let amount = resource.scalar.as_ref().map_or(0.0, |s| s.value);
            match resource.name.as_str() {
                "cpus" => pool.cpus += amount,
                "mem" => pool.mem += amount,
                // Only plain disk: persistent volumes and mounts are not for us.
                "disk" if resource.disk.is_none() => pool.disk += amount,
                "ports" => {
                    if let Some(ranges) = &resource.ranges {
                        pool.ports.extend(
                            ranges
                                .range
                                .iter()
                                .filter(|r| r.begin <= r.end)
                                .map(|r| (r.begin, r.end)),
                        );
                    }
                }
                _ => {}
            }
        }
        Remaining { pools }
    }

    /// Takes what `spec` needs from a single pool, or `None` (nothing taken)
    /// when no pool has enough.
    pub fn allocate(&mut self, spec: &TaskSpec) -> Option<Allocation> {
        let pool = self.pools.iter_mut().find(|p| {
            p.cpus + EPSILON >= spec.cpus
                && p.mem + EPSILON >= spec.mem
                && p.disk + EPSILON >= spec.disk
                && port_count(&p.ports) >= u64::from(spec.ports)
        })?;
        pool.cpus -= spec.cpus;
        pool.mem -= spec.mem;
        pool.disk -= spec.disk;
        let ports = take_ports(&mut pool.ports, spec.ports as usize);
        let with_template = |mut r: Resource| {
            r.role = pool.template.role.clone();
            r.reservations = pool.template.reservations.clone();
            r.reservation = pool.template.reservation.clone();
            r.allocation_info = pool.template.allocation_info.clone();
            r
        };
        let mut resources = vec![
            with_template(scalar_resource("cpus", spec.cpus)),
            with_template(scalar_resource("mem", spec.mem)),
        ];
        if spec.disk > 0.0 {
            resources.push(with_template(scalar_resource("disk", spec.disk)));
        }
        if !ports.is_empty() {
            let ranges: Vec<(u64, u64)> = ports.iter().map(|&p| (p, p)).collect();
            resources.push(with_template(ranges_resource("ports", &ranges)));
        }
        Some(Allocation { resources, ports })
    }
}

fn port_count(ranges: &[(u64, u64)]) -> u64 {
    ranges.iter().map(|(b, e)| e - b + 1).sum()
}

/// Takes `n` ports from the front of `ranges`.
fn take_ports(ranges: &mut Vec<(u64, u64)>, n: usize) -> Vec<u64> {
    let mut taken = Vec::with_capacity(n);
    while taken.len() < n {
        let Some((begin, end)) = ranges.first().copied() else {
            break;
        };
        taken.push(begin);
        if begin == end {
            ranges.remove(0);
        } else {
            ranges[0].0 = begin + 1;
        }
    }
    taken
}

#[cfg(test)]
mod tests {
    use super::*;
    use mesos_proto::util::{agent_id, framework_id, offer_id};

    fn offer(resources: Vec<Resource>) -> Offer {
        Offer {
            id: offer_id("o"),
            framework_id: framework_id("f"),
            agent_id: agent_id("a"),
            hostname: "h".into(),
            resources,
            ..Default::default()
        }
    }

    fn spec(cpus: f64, mem: f64, ports: u32) -> TaskSpec {
        TaskSpec {
            name: "t".into(),
            cmd: "true".into(),
            cpus,
            mem,
            disk: 0.0,
            ports,
            env: Default::default(),
            kill_grace_seconds: None,
        }
    }

    #[test]
    fn several_tasks_are_carved_from_one_offer_until_it_runs_out() {
        let o = offer(vec![
            scalar_resource("cpus", 1.0),
            scalar_resource("mem", 256.0),
            ranges_resource("ports", &[(31000, 31001), (31005, 31005)]),
        ]);
        let mut remaining = Remaining::of(&o, "*");
        let a = remaining.allocate(&spec(0.5, 128.0, 2)).unwrap();
        assert_eq!(a.ports, vec![31000, 31001]);
        let b = remaining.allocate(&spec(0.5, 128.0, 1)).unwrap();
        assert_eq!(b.ports, vec![31005]);
        assert!(
            remaining.allocate(&spec(0.1, 1.0, 0)).is_none(),
            "cpus are used up"
        );
    }

    #[test]
    fn resources_reserved_for_another_role_are_not_used() {
        let mut reserved = scalar_resource("cpus", 8.0);
        reserved.role = Some("other".into());
        let o = offer(vec![reserved, scalar_resource("mem", 1024.0)]);
        assert!(
            Remaining::of(&o, "*")
                .allocate(&spec(1.0, 10.0, 0))
                .is_none()
        );
    }

    #[test]
    fn allocation_keeps_the_offers_allocation_info() {
        let mut cpus = scalar_resource("cpus", 1.0);
        let mut mem = scalar_resource("mem", 64.0);
        let info = mesos_proto::v1::resource::AllocationInfo {
            role: Some("web".into()),
        };
        cpus.allocation_info = Some(info.clone());
        mem.allocation_info = Some(info.clone());
        let a = Remaining::of(&offer(vec![cpus, mem]), "web")
            .allocate(&spec(1.0, 64.0, 0))
            .unwrap();
        assert!(
            a.resources
                .iter()
                .all(|r| r.allocation_info.as_ref() == Some(&info))
        );
    }
}
