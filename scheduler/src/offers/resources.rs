//! What is left of an offer, and carving a task's resources out of it.
//!
//! An offer's resources are grouped into pools, one per role/reservation
//! combination; a task takes everything it needs from a single pool, so
//! that each allocated resource keeps the offer's `allocation_info` and
//! reservation and stays contained in the offer, as the master checks.
//!
//! Which pools a task may use depends on its role and the app's
//! `acceptedResourceRoles` ([`Remaining::usable_pools`]): unreserved ones
//! (role `*`, no reservations) and those reserved for the task's role.
//! [`Remaining::of`] keeps only what one role may use, for callers that
//! place tasks of a single role; [`Remaining::all`] keeps every pool, for
//! the placement engine, which filters per demand.
//!
//! A request ([`ResourceRequest`]) asks for cpus, mem, disk, gpus and host
//! ports, each port either any offered one or a fixed number (`requirePorts`,
//! or a `hostPort` in a port mapping). When nothing fits, the answer says
//! which resource fell short ([`Shortfall`]), checked in Marathon's order:
//! cpus, mem, disk, gpus, ports.

use mesos_proto::util::{ranges_resource, scalar_resource};
use mesos_proto::v1::{Offer, Resource};

use crate::state::app::AppDefinition;

/// Scalar amounts are compared with Mesos's fixed-point precision.
const EPSILON: f64 = 1e-3;

/// One host port a task asks for.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum PortRequest {
    /// Any port the offer has (Marathon's host port 0).
    Any,
    /// Exactly this port; it must be in the offer's ranges.
    Fixed(u16),
}

/// What one task needs from an offer.
#[derive(Debug, Clone, PartialEq, Default)]
pub struct ResourceRequest {
    /// CPU shares.
    pub cpus: f64,
    /// Memory in MB.
    pub mem: f64,
    /// Plain disk in MB.
    pub disk: f64,
    /// Whole GPUs.
    pub gpus: u32,
    /// Host ports, in declaration order (`PORT0`, `PORT1`, …).
    pub ports: Vec<PortRequest>,
}

impl ResourceRequest {
    /// What one instance of `app` needs: its cpus, mem, disk and gpus, and
    /// a host port for every declared port that has one (`Any` for host
    /// port 0, `Fixed` for a literal one, as `requirePorts` gives).
    pub fn for_app(app: &AppDefinition) -> ResourceRequest {
        let port = |host_port: u16| match host_port {
            0 => PortRequest::Any,
            port => PortRequest::Fixed(port),
        };
        // A pod's host ports are its endpoints', in the order assigned.
        let ports = match &app.pod {
            Some(pod) => pod
                .host_port_endpoints()
                .iter()
                .map(|e| port(e.host_port))
                .collect(),
            None => app
                .declared_ports()
                .iter()
                .filter_map(|p| p.host_port.map(port))
                .collect(),
        };
        ResourceRequest {
            cpus: app.cpus,
            mem: app.mem,
            disk: app.disk,
            gpus: app.gpus,
            ports,
        }
    }
}

/// The reservation label naming the framework that made it.
pub const LABEL_FRAMEWORK: &str = "baton_framework_id";
/// The reservation label naming the resident instance it is for.
pub const LABEL_INSTANCE: &str = "baton_instance_id";

/// The value of reservation label `key` on `resource`, in either format
/// (the refined stack's last reservation, or the pre-refinement one).
pub(crate) fn reservation_label<'a>(resource: &'a Resource, key: &str) -> Option<&'a str> {
    let info = resource
        .reservations
        .last()
        .or(resource.reservation.as_ref())?;
    info.labels
        .as_ref()?
        .labels
        .iter()
        .find(|l| l.key == key)
        .and_then(|l| l.value.as_deref())
}

/// Whether a resource carries a resident instance's reservation label:
/// such resources are that instance's alone, never pooled for other
/// launches.
pub fn is_instance_reservation(resource: &Resource) -> bool {
    reservation_label(resource, LABEL_INSTANCE).is_some()
}

/// The first resource no usable pool had enough of, in Marathon's order.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub enum Shortfall {
    /// No pool has enough cpus.
    Cpus,
    /// Pools with the cpus lack the memory.
    Mem,
    /// Pools with cpus and memory lack the disk.
    Disk,
    /// Pools with cpus, memory and disk lack the GPUs.
    Gpus,
    /// Pools with everything else lack the ports (too few, or a fixed one
    /// is not offered or already taken).
    Ports,
}

/// A set of an offer's pools, as [`Remaining::usable_pools`] picks them.
/// Pools past the 64th are never used (offers have a handful).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub struct PoolSet(u64);

impl PoolSet {
    /// Every pool.
    pub const ALL: PoolSet = PoolSet(u64::MAX);
    /// No pool.
    pub const NONE: PoolSet = PoolSet(0);

    /// Whether the set is empty.
    pub fn is_empty(self) -> bool {
        self.0 == 0
    }

    fn contains(self, index: usize) -> bool {
        index < 64 && self.0 & (1 << index) != 0
    }
}

/// One pool of resources from an offer: a role/reservation combination.
#[derive(Debug, Clone)]
struct Pool {
    /// A template carrying role, reservations and allocation info.
    template: Resource,
    cpus: f64,
    mem: f64,
    disk: f64,
    gpus: f64,
    /// Free port ranges, inclusive, in offer order.
    ports: Vec<(u64, u64)>,
    /// How many ports `ports` holds, kept so fit checks need not sum.
    free_ports: u64,
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

/// The role a resource counts as for `acceptedResourceRoles`: the role it is
/// reserved for, or `*` when unreserved.
fn reservation_role(resource: &Resource) -> &str {
    resource
        .reservations
        .last()
        .and_then(|r| r.role.as_deref())
        .or(resource.role.as_deref())
        .unwrap_or("*")
}

/// Whether two resources belong to the same pool: same role, reservations
/// and allocation role. Compared borrowed, since offers are many.
fn same_pool(a: &Resource, b: &Resource) -> bool {
    a.role == b.role
        && a.reservations.len() == b.reservations.len()
        && a.reservations
            .iter()
            .zip(&b.reservations)
            .all(|(x, y)| x.role == y.role)
        && a.allocation_info.as_ref().map(|i| &i.role)
            == b.allocation_info.as_ref().map(|i| &i.role)
}

impl Remaining {
    /// The resources of `offer` usable by `role`.
    pub fn of(offer: &Offer, role: &str) -> Remaining {
        Remaining::from_resources(offer.resources.iter().filter(|r| usable_by(r, role)))
    }

    /// Every resource of `offer`, whatever its role; pick per task with
    /// [`Remaining::usable_pools`].
    pub fn all(offer: &Offer) -> Remaining {
        Remaining::from_resources(offer.resources.iter())
    }

    fn from_resources<'a>(resources: impl Iterator<Item = &'a Resource>) -> Remaining {
        let mut pools: Vec<Pool> = Vec::new();
        // What is reserved for one resident instance is that instance's
        // alone (see `reservation`): never pooled for other launches.
        for resource in resources.filter(|r| !is_instance_reservation(r)) {
            let index = match pools.iter().position(|p| same_pool(&p.template, resource)) {
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
                        gpus: 0.0,
                        ports: Vec::new(),
                        free_ports: 0,
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
                "gpus" => pool.gpus += amount,
                "ports" => {
                    if let Some(ranges) = &resource.ranges {
                        for r in ranges.range.iter().filter(|r| r.begin <= r.end) {
                            pool.ports.push((r.begin, r.end));
                            pool.free_ports += r.end - r.begin + 1;
                        }
                    }
                }
                _ => {}
            }
        }
        Remaining { pools }
    }

    /// The pools a task of `role` may use, keeping only those whose
    /// reservation role (`*` when unreserved) is in `accepted_roles` when
    /// given (Marathon's `acceptedResourceRoles`). Pools allocated to
    /// another role (a multi-role offer's `allocation_info`) are excluded.
    pub fn usable_pools(&self, role: &str, accepted_roles: Option<&[String]>) -> PoolSet {
        let mut set = 0u64;
        for (i, pool) in self.pools.iter().enumerate().take(64) {
            let t = &pool.template;
            let allocated_elsewhere = t
                .allocation_info
                .as_ref()
                .and_then(|a| a.role.as_deref())
                .is_some_and(|r| r != role);
            let accepted =
                accepted_roles.is_none_or(|roles| roles.iter().any(|r| r == reservation_role(t)));
            if usable_by(t, role) && !allocated_elsewhere && accepted {
                set |= 1 << i;
            }
        }
        PoolSet(set)
    }

    /// What is left, summed over all pools: (cpus, mem, disk, gpus, ports).
    pub fn totals(&self) -> (f64, f64, f64, f64, u64) {
        self.pools.iter().fold((0.0, 0.0, 0.0, 0.0, 0), |t, p| {
            (
                t.0 + p.cpus,
                t.1 + p.mem,
                t.2 + p.disk,
                t.3 + p.gpus,
                t.4 + p.free_ports,
            )
        })
    }

    /// Whether `request` fits in one of `pools`; on failure, the furthest
    /// resource (in Marathon's order) that any usable pool got to before
    /// falling short. An empty `pools` reports [`Shortfall::Cpus`].
    pub fn check(&self, request: &ResourceRequest, pools: PoolSet) -> Result<(), Shortfall> {
        self.find_pool(request, pools).map(|_| ())
    }

    fn find_pool(&self, request: &ResourceRequest, pools: PoolSet) -> Result<usize, Shortfall> {
        let mut furthest = Shortfall::Cpus;
        for (i, pool) in self.pools.iter().enumerate() {
            if !pools.contains(i) {
                continue;
            }
            match pool.check(request) {
                Ok(()) => return Ok(i),
                Err(short) => furthest = furthest.max(short),
            }
        }
        Err(furthest)
    }

    /// Takes what `request` needs from a single pool, or `None` (nothing
    /// taken) when no pool has enough.
    pub fn allocate(&mut self, request: &ResourceRequest) -> Option<Allocation> {
        self.allocate_request(request, PoolSet::ALL).ok()
    }

    /// Takes what `request` needs from a single one of `pools`; nothing is
    /// taken when none fits.
    pub fn allocate_request(
        &mut self,
        request: &ResourceRequest,
        pools: PoolSet,
    ) -> Result<Allocation, Shortfall> {
        let index = self.find_pool(request, pools)?;
        let pool = &mut self.pools[index];
        pool.cpus -= request.cpus;
        pool.mem -= request.mem;
        pool.disk -= request.disk;
        pool.gpus -= f64::from(request.gpus);
        let ports = pool.take_ports(&request.ports);
        let with_template = |mut r: Resource| {
            r.role = pool.template.role.clone();
            r.reservations = pool.template.reservations.clone();
            r.reservation = pool.template.reservation.clone();
            r.allocation_info = pool.template.allocation_info.clone();
            r
        };
        let mut resources = vec![
            with_template(scalar_resource("cpus", request.cpus)),
            with_template(scalar_resource("mem", request.mem)),
        ];
        if request.disk > 0.0 {
            resources.push(with_template(scalar_resource("disk", request.disk)));
        }
        if request.gpus > 0 {
            resources.push(with_template(scalar_resource(
                "gpus",
                f64::from(request.gpus),
            )));
        }
        if !ports.is_empty() {
            let ranges: Vec<(u64, u64)> = ports.iter().map(|&p| (p, p)).collect();
            resources.push(with_template(ranges_resource("ports", &ranges)));
        }
        Ok(Allocation { resources, ports })
    }
}

impl Pool {
    fn check(&self, request: &ResourceRequest) -> Result<(), Shortfall> {
        if self.cpus + EPSILON < request.cpus {
            return Err(Shortfall::Cpus);
        }
        if self.mem + EPSILON < request.mem {
            return Err(Shortfall::Mem);
        }
        if self.disk + EPSILON < request.disk {
            return Err(Shortfall::Disk);
        }
        if self.gpus + EPSILON < f64::from(request.gpus) {
            return Err(Shortfall::Gpus);
        }
        if (request.ports.len() as u64) > self.free_ports {
            return Err(Shortfall::Ports);
        }
        for (i, port) in request.ports.iter().enumerate() {
            if let PortRequest::Fixed(p) = *port {
                let p = u64::from(p);
                let offered = self.ports.iter().any(|&(b, e)| b <= p && p <= e);
                // The same fixed port twice cannot be had either.
                let repeated = request.ports[..i].contains(port);
                if !offered || repeated {
                    return Err(Shortfall::Ports);
                }
            }
        }
        Ok(())
    }

    /// Takes the fixed ports first, so `Any` cannot grab one of them, then
    /// fills `Any` from the front of the ranges. Returns the ports in
    /// request order. The caller has checked that they fit.
    fn take_ports(&mut self, request: &[PortRequest]) -> Vec<u64> {
        let mut taken = vec![0; request.len()];
        for (slot, port) in taken.iter_mut().zip(request) {
            if let PortRequest::Fixed(p) = *port {
                let p = u64::from(p);
                if let Some(i) = self.ports.iter().position(|&(b, e)| b <= p && p <= e) {
                    let (b, e) = self.ports[i];
                    match (b == p, e == p) {
                        (true, true) => {
                            self.ports.remove(i);
                        }
                        (true, false) => self.ports[i].0 = p + 1,
                        (false, true) => self.ports[i].1 = p - 1,
                        (false, false) => {
                            self.ports[i].1 = p - 1;
                            self.ports.insert(i + 1, (p + 1, e));
                        }
                    }
                    self.free_ports -= 1;
                }
                *slot = p;
            }
        }
        for (slot, port) in taken.iter_mut().zip(request) {
            if *port == PortRequest::Any {
                let Some((begin, end)) = self.ports.first().copied() else {
                    break;
                };
                *slot = begin;
                if begin == end {
                    self.ports.remove(0);
                } else {
                    self.ports[0].0 = begin + 1;
                }
                self.free_ports -= 1;
            }
        }
        taken
    }
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

    fn spec(cpus: f64, mem: f64, ports: u32) -> ResourceRequest {
        ResourceRequest {
            cpus,
            mem,
            ports: vec![PortRequest::Any; ports as usize],
            ..ResourceRequest::default()
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

    fn request(cpus: f64, mem: f64, ports: Vec<PortRequest>) -> ResourceRequest {
        ResourceRequest {
            cpus,
            mem,
            ports,
            ..Default::default()
        }
    }

    #[test]
    fn fixed_ports_must_be_offered_and_are_taken_once() {
        let o = offer(vec![
            scalar_resource("cpus", 4.0),
            scalar_resource("mem", 1024.0),
            ranges_resource("ports", &[(8000, 8002)]),
        ]);
        let mut remaining = Remaining::all(&o);
        let fixed = request(0.1, 1.0, vec![PortRequest::Fixed(8001), PortRequest::Any]);
        let a = remaining.allocate_request(&fixed, PoolSet::ALL).unwrap();
        assert_eq!(a.ports, vec![8001, 8000], "Any skips the fixed port");
        assert_eq!(
            remaining.check(&fixed, PoolSet::ALL),
            Err(Shortfall::Ports),
            "8001 is taken"
        );
        let other = request(0.1, 1.0, vec![PortRequest::Fixed(8002)]);
        assert_eq!(
            remaining
                .allocate_request(&other, PoolSet::ALL)
                .unwrap()
                .ports,
            vec![8002]
        );
        assert_eq!(
            remaining.check(
                &request(0.1, 1.0, vec![PortRequest::Fixed(9000)]),
                PoolSet::ALL
            ),
            Err(Shortfall::Ports)
        );
        assert_eq!(
            Remaining::all(&o).check(
                &request(
                    0.1,
                    1.0,
                    vec![PortRequest::Fixed(8000), PortRequest::Fixed(8000)]
                ),
                PoolSet::ALL
            ),
            Err(Shortfall::Ports),
            "one port cannot serve twice"
        );
        assert_eq!(remaining.totals().4, 0);
    }

    #[test]
    fn shortfall_names_the_furthest_resource_any_pool_reached() {
        let o = offer(vec![
            scalar_resource("cpus", 1.0),
            scalar_resource("mem", 64.0),
            scalar_resource("disk", 10.0),
        ]);
        let r = Remaining::all(&o);
        assert_eq!(
            r.check(&request(2.0, 128.0, vec![]), PoolSet::ALL),
            Err(Shortfall::Cpus)
        );
        assert_eq!(
            r.check(&request(1.0, 128.0, vec![]), PoolSet::ALL),
            Err(Shortfall::Mem)
        );
        let disk = ResourceRequest {
            disk: 20.0,
            ..request(1.0, 64.0, vec![])
        };
        assert_eq!(r.check(&disk, PoolSet::ALL), Err(Shortfall::Disk));
        let gpus = ResourceRequest {
            gpus: 1,
            ..request(1.0, 64.0, vec![])
        };
        assert_eq!(r.check(&gpus, PoolSet::ALL), Err(Shortfall::Gpus));
        assert_eq!(
            r.check(&request(1.0, 64.0, vec![PortRequest::Any]), PoolSet::ALL),
            Err(Shortfall::Ports)
        );
        assert_eq!(
            r.check(&request(1.0, 64.0, vec![]), PoolSet::NONE),
            Err(Shortfall::Cpus)
        );
    }

    #[test]
    fn gpus_are_carved_like_other_scalars() {
        let o = offer(vec![
            scalar_resource("cpus", 4.0),
            scalar_resource("mem", 1024.0),
            scalar_resource("gpus", 2.0),
        ]);
        let mut remaining = Remaining::all(&o);
        let gpu = ResourceRequest {
            gpus: 1,
            ..request(1.0, 64.0, vec![])
        };
        let a = remaining.allocate_request(&gpu, PoolSet::ALL).unwrap();
        assert!(a.resources.iter().any(|r| r.name == "gpus"));
        remaining.allocate_request(&gpu, PoolSet::ALL).unwrap();
        assert_eq!(remaining.check(&gpu, PoolSet::ALL), Err(Shortfall::Gpus));
    }

    #[test]
    fn accepted_resource_roles_pick_unreserved_or_reserved_pools() {
        let reserved = |name: &str, amount: f64| {
            let mut r = scalar_resource(name, amount);
            r.reservations = vec![mesos_proto::v1::resource::ReservationInfo {
                role: Some("web".into()),
                ..Default::default()
            }];
            r
        };
        let o = offer(vec![
            scalar_resource("cpus", 1.0),
            scalar_resource("mem", 64.0),
            reserved("cpus", 8.0),
            reserved("mem", 4096.0),
        ]);
        let r = Remaining::all(&o);
        let big = request(4.0, 1024.0, vec![]);
        let star = r.usable_pools("web", Some(&["*".to_string()]));
        let web = r.usable_pools("web", Some(&["web".to_string()]));
        assert_eq!(r.check(&big, star), Err(Shortfall::Cpus));
        assert_eq!(r.check(&big, web), Ok(()));
        assert_eq!(r.check(&big, r.usable_pools("web", None)), Ok(()));
        assert_eq!(
            r.check(&big, r.usable_pools("*", None)),
            Err(Shortfall::Cpus)
        );
        assert!(r.usable_pools("ops", Some(&["web".to_string()])).is_empty());
    }

    #[test]
    fn an_apps_request_follows_its_declared_ports() {
        use crate::state::app::{AppDefaults, PathId};
        let read = |json: &str| {
            AppDefinition::from_json(json.as_bytes(), &PathId::root(), &AppDefaults::default())
                .unwrap()
        };
        let host = read(r#"{"id":"/a","cmd":"x","portDefinitions":[{"port":0},{"port":0}]}"#);
        assert_eq!(
            ResourceRequest::for_app(&host).ports,
            vec![PortRequest::Any, PortRequest::Any]
        );
        let required =
            read(r#"{"id":"/a","cmd":"x","requirePorts":true,"portDefinitions":[{"port":8080}]}"#);
        assert_eq!(
            ResourceRequest::for_app(&required).ports,
            vec![PortRequest::Fixed(8080)]
        );
        let bridge = read(
            r#"{"id":"/a","container":{"type":"DOCKER","docker":{"image":"nginx"},
                "portMappings":[{"containerPort":80,"hostPort":0},{"containerPort":81,"hostPort":9000}]},
                "networks":[{"mode":"container/bridge"}]}"#,
        );
        assert_eq!(
            ResourceRequest::for_app(&bridge).ports,
            vec![PortRequest::Any, PortRequest::Fixed(9000)]
        );
        let container = read(
            r#"{"id":"/a","container":{"type":"MESOS","docker":{"image":"nginx"},
                "portMappings":[{"containerPort":80}]},
                "networks":[{"mode":"container","name":"dcos"}]}"#,
        );
        assert!(ResourceRequest::for_app(&container).ports.is_empty());
    }
}
