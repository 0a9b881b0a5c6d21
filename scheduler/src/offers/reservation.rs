//! Resident instances: apps and pods with persistent volumes (Marathon's
//! resident tasks), as pure functions over offers.
//!
//! An instance's first launch reserves what it takes from an offer
//! (RESERVE, dynamic, for the app's role), creates its volumes out of the
//! reserved disk (CREATE) and launches on both, in one ACCEPT
//! ([`reserve_and_create`]). Every reserved resource is labelled with the
//! framework and the instance, so later offers say whose it is: a relaunch
//! takes exactly the resources labelled with its instance, on its agent
//! ([`reserved_for`]), and finds the same volume, data included.
//! Reservations labelled with this framework that no instance holds any
//! more (its app deleted, a kill with `wipe`, a crash between the RESERVE
//! and the write that would have remembered it) are destroyed and
//! unreserved when offered ([`orphaned`]).
//!
//! Operations are written in the pre-refinement format (`role` plus
//! `reservation`), which the master takes from every framework; offers are
//! read in both formats.

use mesos_proto::v1::{
    self, Labels, Offer, Resource,
    offer::{Operation, operation},
    resource::{DiskInfo, ReservationInfo, disk_info::Persistence},
};

use super::executor::{mesos_scalar, scalar_value};
use super::resources::Allocation;
use crate::state::app::AppDefinition;
use crate::state::app::pod::PodVolume;

use super::resources::reservation_label;
pub use super::resources::{LABEL_FRAMEWORK, LABEL_INSTANCE, is_instance_reservation};

/// Scalar amounts are compared with Mesos's fixed-point precision.
const EPSILON: f64 = 1e-3;

/// One persistent volume an instance of the app needs.
#[derive(Debug, Clone, PartialEq)]
pub struct VolumeRequest {
    /// Where it appears, relative to the sandbox (or absolute in an image).
    pub container_path: String,
    /// Its size in MB.
    pub size_mb: f64,
}

/// The persistent volumes of `app`, in declaration order: each
/// `container.volumes[]` entry with `persistent: {size}`; for a pod, each
/// of its `volumes[]` with `persistent`, which lives in the executor's
/// sandbox under its name (its containers mount it from there:
/// [`crate::offers::task_group`]).
pub fn persistent_volumes(app: &AppDefinition) -> Vec<VolumeRequest> {
    if let Some(pod) = &app.pod {
        return pod
            .volumes
            .iter()
            .filter_map(|v| match v {
                PodVolume::Persistent { name, persistent } => Some(VolumeRequest {
                    container_path: name.clone(),
                    size_mb: persistent.size as f64,
                }),
                _ => None,
            })
            .collect();
    }
    let Some(container) = &app.container else {
        return Vec::new();
    };
    container
        .volumes
        .iter()
        .filter_map(|v| {
            let persistent = v.persistent.as_ref()?;
            Some(VolumeRequest {
                container_path: v.container_path.clone(),
                size_mb: persistent
                    .get("size")
                    .and_then(serde_json::Value::as_f64)
                    .unwrap_or(0.0),
            })
        })
        .collect()
}

/// The disk all of `volumes` take together, in MB.
pub fn volumes_disk(volumes: &[VolumeRequest]) -> f64 {
    volumes.iter().map(|v| v.size_mb).sum()
}

/// A volume's persistence id: unique per role on an agent, stable for the
/// instance, and free of `/` (Mesos refuses it in ids).
pub fn persistence_id(instance_id: &str, container_path: &str) -> String {
    let path: String = container_path
        .trim_matches('/')
        .chars()
        .map(|c| {
            if c == '/' || c.is_whitespace() {
                '_'
            } else {
                c
            }
        })
        .collect();
    format!("{instance_id}#{path}")
}

/// Who a reservation is for: the framework, the role, the principal Baton
/// authenticates as (the master wants it on the reservation when set),
/// and the instance.
#[derive(Debug, Clone, Copy)]
pub struct Owner<'a> {
    /// The FrameworkID.
    pub framework_id: &'a str,
    /// The app's role.
    pub role: &'a str,
    /// The framework's principal, if it has one.
    pub principal: Option<&'a str>,
    /// `<app>.instance-<uuid>`.
    pub instance_id: &'a str,
}

impl Owner<'_> {
    fn reservation(&self) -> ReservationInfo {
        ReservationInfo {
            r#type: None,
            role: None,
            principal: self.principal.map(str::to_string),
            labels: Some(Labels {
                labels: vec![
                    label(LABEL_FRAMEWORK, self.framework_id),
                    label(LABEL_INSTANCE, self.instance_id),
                ],
            }),
        }
    }

    /// `resource` as reserved for this owner (pre-refinement format; the
    /// offer's `allocation_info` is kept).
    fn reserve(&self, resource: &Resource) -> Resource {
        Resource {
            role: Some(self.role.to_string()),
            reservation: Some(self.reservation()),
            reservations: Vec::new(),
            ..resource.clone()
        }
    }
}

fn label(key: &str, value: &str) -> v1::Label {
    v1::Label {
        key: key.to_string(),
        value: Some(value.to_string()),
    }
}

/// What a first launch of a resident instance sends: the RESERVE and
/// CREATE operations that go before its LAUNCH, and the resources its task
/// then uses (reserved, volumes included).
#[derive(Debug, Clone, PartialEq)]
pub struct ReservedLaunch {
    /// RESERVE then CREATE.
    pub operations: Vec<Operation>,
    /// The task's resources.
    pub task_resources: Vec<Resource>,
}

/// Reserves `allocation` (taken from an offer, the volumes' disk included)
/// for `owner` and creates `volumes` out of its disk.
///
/// # Errors
///
/// When the allocation holds less plain disk than the volumes need (the
/// caller asked for too little).
pub fn reserve_and_create(
    allocation: &Allocation,
    volumes: &[VolumeRequest],
    owner: &Owner<'_>,
) -> Result<ReservedLaunch, String> {
    let reserved: Vec<Resource> = allocation
        .resources
        .iter()
        .map(|r| owner.reserve(r))
        .collect();
    let mut disk_left = volumes_disk(volumes);
    let mut task_resources = Vec::new();
    for resource in &reserved {
        if resource.name == "disk" && resource.disk.is_none() && disk_left > EPSILON {
            let have = scalar_value(resource);
            let take = have.min(disk_left);
            disk_left -= take;
            if have - take > EPSILON {
                task_resources.push(with_scalar(resource, have - take));
            }
        } else {
            task_resources.push(resource.clone());
        }
    }
    if disk_left > EPSILON {
        return Err(format!(
            "the allocation has {disk_left} MB of disk too little for the volumes"
        ));
    }
    let template = reserved
        .iter()
        .find(|r| r.name == "disk")
        .ok_or("the allocation has no disk for the volumes")?;
    let created: Vec<Resource> = volumes
        .iter()
        .map(|v| Resource {
            disk: Some(DiskInfo {
                persistence: Some(Persistence {
                    id: persistence_id(owner.instance_id, &v.container_path),
                    principal: owner.principal.map(str::to_string),
                }),
                volume: Some(v1::Volume {
                    mode: v1::volume::Mode::Rw as i32,
                    container_path: v.container_path.clone(),
                    ..Default::default()
                }),
            }),
            ..with_scalar(template, v.size_mb)
        })
        .collect();
    task_resources.extend(created.iter().cloned());
    let mut operations = vec![Operation {
        r#type: Some(operation::Type::Reserve as i32),
        reserve: Some(operation::Reserve {
            resources: reserved,
        }),
        ..Default::default()
    }];
    if !created.is_empty() {
        operations.push(Operation {
            r#type: Some(operation::Type::Create as i32),
            create: Some(operation::Create { volumes: created }),
            ..Default::default()
        });
    }
    Ok(ReservedLaunch {
        operations,
        task_resources,
    })
}

/// The instance a resource is reserved for, when this framework reserved it.
pub fn reserved_instance<'a>(resource: &'a Resource, framework_id: &str) -> Option<&'a str> {
    (reservation_label(resource, LABEL_FRAMEWORK) == Some(framework_id))
        .then(|| reservation_label(resource, LABEL_INSTANCE))
        .flatten()
}

/// The resources of `offer` reserved for `instance_id` by this framework,
/// volumes included, when the offer has every volume the instance needs
/// and some cpus; `None` otherwise (its reservation is elsewhere, or only
/// partly offered).
pub fn reserved_for(
    offer: &Offer,
    framework_id: &str,
    instance_id: &str,
    volumes: &[VolumeRequest],
) -> Option<Vec<Resource>> {
    let mine: Vec<Resource> = offer
        .resources
        .iter()
        .filter(|r| reserved_instance(r, framework_id) == Some(instance_id))
        .cloned()
        .collect();
    let has_volume = |v: &VolumeRequest| {
        let id = persistence_id(instance_id, &v.container_path);
        mine.iter().any(|r| {
            r.disk
                .as_ref()
                .and_then(|d| d.persistence.as_ref())
                .is_some_and(|p| p.id == id)
        })
    };
    let has_cpus = mine
        .iter()
        .any(|r| r.name == "cpus" && scalar_value(r) > EPSILON);
    (has_cpus && volumes.iter().all(has_volume)).then_some(mine)
}

/// The host ports among reserved `resources`, in ascending order.
pub fn reserved_ports(resources: &[Resource]) -> Vec<u64> {
    let mut ports: Vec<u64> = resources
        .iter()
        .filter(|r| r.name == "ports")
        .filter_map(|r| r.ranges.as_ref())
        .flat_map(|ranges| ranges.range.iter())
        .filter(|r| r.begin <= r.end && r.end - r.begin < 65_536)
        .flat_map(|r| r.begin..=r.end)
        .collect();
    ports.sort_unstable();
    ports
}

/// The operations that give back what `offer` holds reserved by this
/// framework for instances `keeps` says no longer hold them: DESTROY of
/// their volumes, then UNRESERVE of all of it. Empty when nothing is
/// orphaned.
pub fn orphaned(offer: &Offer, framework_id: &str, keeps: impl Fn(&str) -> bool) -> Vec<Operation> {
    let orphans: Vec<&Resource> = offer
        .resources
        .iter()
        .filter(|r| reserved_instance(r, framework_id).is_some_and(|i| !keeps(i)))
        .collect();
    if orphans.is_empty() {
        return Vec::new();
    }
    let volumes: Vec<Resource> = orphans
        .iter()
        .filter(|r| r.disk.as_ref().is_some_and(|d| d.persistence.is_some()))
        .map(|r| (*r).clone())
        .collect();
    // A destroyed volume is plain reserved disk again: that is what is
    // unreserved.
    let unreserve: Vec<Resource> = orphans
        .iter()
        .map(|r| Resource {
            disk: None,
            ..(*r).clone()
        })
        .collect();
    let mut operations = Vec::new();
    if !volumes.is_empty() {
        operations.push(Operation {
            r#type: Some(operation::Type::Destroy as i32),
            destroy: Some(operation::Destroy { volumes }),
            ..Default::default()
        });
    }
    operations.push(Operation {
        r#type: Some(operation::Type::Unreserve as i32),
        unreserve: Some(operation::Unreserve {
            resources: unreserve,
        }),
        ..Default::default()
    });
    operations
}

fn with_scalar(resource: &Resource, value: f64) -> Resource {
    Resource {
        scalar: Some(v1::value::Scalar {
            value: mesos_scalar(value),
        }),
        ..resource.clone()
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use mesos_proto::util::{ranges_resource, scalar_resource};

    fn owner() -> Owner<'static> {
        Owner {
            framework_id: "fw",
            role: "db",
            principal: Some("baton"),
            instance_id: "db.instance-1",
        }
    }

    fn allocation() -> Allocation {
        Allocation {
            resources: vec![
                scalar_resource("cpus", 0.5),
                scalar_resource("mem", 64.0),
                scalar_resource("disk", 110.0),
                ranges_resource("ports", &[(31000, 31000)]),
            ],
            ports: vec![31000],
        }
    }

    fn volume() -> VolumeRequest {
        VolumeRequest {
            container_path: "data".into(),
            size_mb: 100.0,
        }
    }

    fn offer(resources: Vec<Resource>) -> Offer {
        Offer {
            resources,
            ..Default::default()
        }
    }

    #[test]
    fn a_first_launch_reserves_everything_and_carves_the_volume_from_the_disk() {
        let launch = reserve_and_create(&allocation(), &[volume()], &owner()).unwrap();
        assert_eq!(launch.operations.len(), 2);
        let reserved = &launch.operations[0].reserve.as_ref().unwrap().resources;
        assert_eq!(reserved.len(), 4);
        for r in reserved {
            assert_eq!(r.role.as_deref(), Some("db"));
            assert_eq!(reserved_instance(r, "fw"), Some("db.instance-1"));
            assert_eq!(
                r.reservation.as_ref().unwrap().principal.as_deref(),
                Some("baton")
            );
        }
        let created = &launch.operations[1].create.as_ref().unwrap().volumes;
        assert_eq!(created.len(), 1);
        assert_eq!(scalar_value(&created[0]), 100.0);
        let disk = created[0].disk.as_ref().unwrap();
        assert_eq!(disk.persistence.as_ref().unwrap().id, "db.instance-1#data");
        assert_eq!(disk.volume.as_ref().unwrap().container_path, "data");
        // The task: 10 MB of plain disk left, and the volume.
        let disks: Vec<f64> = launch
            .task_resources
            .iter()
            .filter(|r| r.name == "disk")
            .map(scalar_value)
            .collect();
        assert_eq!(disks, vec![10.0, 100.0]);
    }

    #[test]
    fn too_little_disk_for_the_volumes_is_an_error() {
        let mut small = allocation();
        small.resources[2] = scalar_resource("disk", 50.0);
        assert!(reserve_and_create(&small, &[volume()], &owner()).is_err());
    }

    #[test]
    fn a_relaunch_finds_its_resources_and_volume_and_nothing_else() {
        let launch = reserve_and_create(&allocation(), &[volume()], &owner()).unwrap();
        let mut resources = launch.task_resources.clone();
        resources.push(scalar_resource("cpus", 4.0));
        let other = Owner {
            instance_id: "db.instance-2",
            ..owner()
        };
        resources.push(other.reserve(&scalar_resource("cpus", 1.0)));
        let found = reserved_for(
            &offer(resources.clone()),
            "fw",
            "db.instance-1",
            &[volume()],
        )
        .expect("offered");
        assert_eq!(found, launch.task_resources);
        assert_eq!(reserved_ports(&found), vec![31000]);
        // Another framework's labels are not ours.
        assert!(reserved_for(&offer(resources), "fw2", "db.instance-1", &[volume()]).is_none());
        // Without the volume offered, no relaunch yet.
        let without_volume: Vec<Resource> = launch
            .task_resources
            .iter()
            .filter(|r| r.disk.is_none())
            .cloned()
            .collect();
        assert!(reserved_for(&offer(without_volume), "fw", "db.instance-1", &[volume()]).is_none());
    }

    #[test]
    fn orphaned_reservations_are_destroyed_then_unreserved() {
        let launch = reserve_and_create(&allocation(), &[volume()], &owner()).unwrap();
        let mut resources = launch.task_resources.clone();
        resources.push(scalar_resource("mem", 512.0));
        let o = offer(resources);
        assert!(orphaned(&o, "fw", |_| true).is_empty());
        let ops = orphaned(&o, "fw", |_| false);
        assert_eq!(ops.len(), 2);
        assert_eq!(ops[0].r#type, Some(operation::Type::Destroy as i32));
        assert_eq!(ops[0].destroy.as_ref().unwrap().volumes.len(), 1);
        let unreserved = &ops[1].unreserve.as_ref().unwrap().resources;
        assert_eq!(unreserved.len(), launch.task_resources.len());
        assert!(unreserved.iter().all(|r| r.disk.is_none()));
        // Not ours: left alone.
        assert!(orphaned(&o, "someone-else", |_| false).is_empty());
    }

    #[test]
    fn persistence_ids_hold_no_slash() {
        assert_eq!(
            persistence_id("a_b.instance-x", "/var/lib/data"),
            "a_b.instance-x#var_lib_data"
        );
    }
}
