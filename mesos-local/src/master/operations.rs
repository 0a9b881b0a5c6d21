//! RESERVE, UNRESERVE, CREATE and DESTROY, as `src/master/validation.cpp`
//! (`validation::operation::validate`) checks them and
//! `getResourceConversions` turns them into a conversion of the offered
//! resources. Pure functions; [`super::accept::plan_accept`] applies them in
//! order to what is left of the offers, and the master applies the
//! conversions to the agent's total.
//!
//! An invalid operation is dropped: Mesos logs it ("Dropping RESERVE offer
//! operation ...") and its resources stay in the offers' remainder, which
//! goes back to the allocator with the ACCEPT's filters.

use mesos_proto::v1::{self, offer::operation};

use crate::resources::{Key, Resources};

/// What one operation turns into: `consumed` leaves the offered resources
/// (and the agent's total), `converted` takes its place.
#[derive(Debug, Clone, PartialEq)]
pub struct Conversion {
    /// The operation type.
    pub kind: operation::Type,
    /// What it takes.
    pub consumed: Resources,
    /// What it gives.
    pub converted: Resources,
}

/// What an operation is checked against.
#[derive(Debug, Clone)]
pub struct OperationContext<'a> {
    /// The framework's principal, if any.
    pub principal: Option<&'a str>,
    /// The framework's roles.
    pub roles: &'a [String],
    /// The role the offers were made to.
    pub allocation_role: &'a str,
    /// It has RESERVATION_REFINEMENT.
    pub refinement: bool,
    /// The agent's reservations and volumes (after the ACCEPT's earlier
    /// operations).
    pub checkpointed: &'a Resources,
    /// What runs on the agent (tasks and executors).
    pub used: &'a Resources,
}

/// Every key of `r`.
fn keys(r: &Resources) -> impl Iterator<Item = &Key> {
    r.scalars.keys().chain(r.ranges.keys()).chain(r.sets.keys())
}

/// `r` with the top reservation of every key removed.
fn pop_reservation(r: &Resources) -> Resources {
    r.map_keys(|k| {
        let mut k = k.clone();
        k.reservations.pop();
        k
    })
}

/// `r` as plain reserved disk: the volume info removed.
fn strip_volume(r: &Resources) -> Resources {
    r.map_keys(|k| Key {
        volume: None,
        ..k.clone()
    })
}

fn parse(resources: &[v1::Resource]) -> Result<Resources, String> {
    if resources.is_empty() {
        return Err("Invalid resources: no resources".into());
    }
    Resources::from_protos(resources).map_err(|e| format!("Invalid resources: {e}"))
}

/// The framework may act for the reservation role of `key`.
fn check_role(ctx: &OperationContext<'_>, key: &Key, what: &str) -> Result<(), String> {
    let role = key.role().unwrap_or("*");
    if !ctx.roles.iter().any(|r| r == role) {
        return Err(format!(
            "A {what} operation was attempted for a resource with role '{role}', but the framework can only {what} resources with roles {:?}",
            ctx.roles
        ));
    }
    Ok(())
}

/// A volume as Mesos prints one: `disk(reservations: [...])[id:path]`.
fn volume_text(key: &Key) -> String {
    let stack: Vec<String> = key
        .reservations
        .iter()
        .map(|r| {
            let ty = if r.dynamic { "DYNAMIC" } else { "STATIC" };
            format!("({ty},{},{})", r.role, r.principal.as_deref().unwrap_or(""))
        })
        .collect();
    let (id, path) = key
        .volume
        .as_ref()
        .map_or(("", ""), |v| (v.id.as_str(), v.container_path.as_str()));
    format!(
        "{}(reservations: [{}])[{id}:{path}]",
        key.name,
        stack.join(",")
    )
}

/// Mesos's `validatePersistentVolume`.
fn check_volume(key: &Key) -> Result<(), String> {
    if key.name != "disk" {
        return Err(format!("Resource '{}' does not have DiskInfo", key.name));
    }
    let Some(v) = &key.volume else {
        return Err("'persistence' is not set in DiskInfo".into());
    };
    if v.container_path.is_empty() || v.mode == 0 {
        return Err("Expecting 'volume' to be set for persistent volume".into());
    }
    if v.host_path.is_some() {
        return Err("Expecting 'host_path' to be unset for persistent volume".into());
    }
    if key.reservations.is_empty() {
        return Err(
            "Invalid resources: Invalid DiskInfo: Persistent volumes cannot be created from unreserved resources"
                .into(),
        );
    }
    Ok(())
}

/// RESERVE: every resource dynamically reserved (the top of its stack)
/// for the offers' role, by the framework's principal; what it takes is
/// the same resources one reservation down.
pub fn reserve(
    ctx: &OperationContext<'_>,
    resources: &[v1::Resource],
) -> Result<Conversion, String> {
    let converted = parse(resources)?;
    for key in keys(&converted) {
        if !key.is_dynamic() {
            return Err(format!(
                "Resource '{}' is not dynamically reserved",
                key.name
            ));
        }
        if let Some(principal) = ctx.principal {
            let reserver = key.reservations.last().and_then(|r| r.principal.as_deref());
            if reserver != Some(principal) {
                return Err(format!(
                    "A reserve operation was attempted by authenticated principal '{principal}', which does not match a reserved resource in the request with principal '{}'",
                    reserver.unwrap_or("")
                ));
            }
        }
        let role = key.role().unwrap_or("*");
        if role != ctx.allocation_role {
            return Err(format!(
                "A reserve operation was attempted for a resource with role '{role}', but the resource was allocated to role '{}'",
                ctx.allocation_role
            ));
        }
        check_role(ctx, key, "reserve")?;
        if key.reservations.len() > 1 && !ctx.refinement {
            return Err(
                "Reservation refinement requires the RESERVATION_REFINEMENT capability".into(),
            );
        }
        if key.volume.is_some() {
            return Err("A persistent volume must already be reserved".into());
        }
    }
    Ok(Conversion {
        kind: operation::Type::Reserve,
        consumed: pop_reservation(&converted),
        converted,
    })
}

/// UNRESERVE: dynamically reserved resources that are not a volume; they
/// become what they were one reservation down.
pub fn unreserve(
    ctx: &OperationContext<'_>,
    resources: &[v1::Resource],
) -> Result<Conversion, String> {
    let consumed = parse(resources)?;
    for key in keys(&consumed) {
        if !key.is_dynamic() {
            return Err(format!(
                "Resource '{}' is not dynamically reserved",
                key.name
            ));
        }
        if key.volume.is_some() {
            return Err(format!(
                "A dynamically reserved persistent volume {} cannot be unreserved directly. Please destroy the persistent volume first then unreserve the resource",
                volume_text(key)
            ));
        }
        check_role(ctx, key, "unreserve")?;
    }
    Ok(Conversion {
        kind: operation::Type::Unreserve,
        converted: pop_reservation(&consumed),
        consumed,
    })
}

/// CREATE: persistent volumes on reserved disk, their persistence ids
/// unique per role on the agent, created by the framework's principal.
pub fn create(ctx: &OperationContext<'_>, volumes: &[v1::Resource]) -> Result<Conversion, String> {
    if volumes.is_empty() {
        return Err("Invalid resources: no resources".into());
    }
    let mut ids: Vec<(String, String)> = ctx
        .checkpointed
        .volumes()
        .into_iter()
        .map(|(k, v)| (k.role().unwrap_or("*").to_string(), v.id.clone()))
        .collect();
    // Every volume proto on its own: two with one id are one key.
    for r in volumes {
        let one = Resources::from_protos(std::slice::from_ref(r))
            .map_err(|e| format!("Invalid resources: {e}"))?;
        for key in keys(&one) {
            check_volume(key)?;
            let Some(v) = &key.volume else { continue };
            let role = key.role().unwrap_or("*").to_string();
            if ids.iter().any(|(r, id)| *r == role && *id == v.id) {
                return Err(format!("Persistence ID '{}' is not unique", v.id));
            }
            ids.push((role, v.id.clone()));
            if let Some(principal) = ctx.principal {
                match v.principal.as_deref() {
                    None => {
                        return Err(format!(
                            "Create volume operation has been attempted by principal '{principal}', but there is no principal set in 'DiskInfo.Persistence'"
                        ));
                    }
                    Some(p) if p != principal => {
                        return Err(format!(
                            "Create volume operation has been attempted by principal '{principal}', but there is a principal '{p}' set in 'DiskInfo.Persistence'"
                        ));
                    }
                    Some(_) => {}
                }
            }
            check_role(ctx, key, "create")?;
        }
    }
    let converted = parse(volumes)?;
    Ok(Conversion {
        kind: operation::Type::Create,
        consumed: strip_volume(&converted),
        converted,
    })
}

/// DESTROY: volumes the agent has and nothing uses; they become plain
/// reserved disk again.
pub fn destroy(ctx: &OperationContext<'_>, volumes: &[v1::Resource]) -> Result<Conversion, String> {
    let consumed = parse(volumes)?;
    for key in keys(&consumed) {
        check_volume(key)?;
    }
    if !ctx.checkpointed.contains(&consumed) {
        return Err("Persistent volumes not found".into());
    }
    for key in keys(&consumed) {
        if ctx.used.scalars.contains_key(key) {
            return Err("Persistent volumes in use".into());
        }
        check_role(ctx, key, "destroy")?;
    }
    Ok(Conversion {
        kind: operation::Type::Destroy,
        converted: strip_volume(&consumed),
        consumed,
    })
}

/// Checks one operation of these four types; `None` for another type.
pub fn check(
    ctx: &OperationContext<'_>,
    op: &v1::offer::Operation,
) -> Option<Result<Conversion, String>> {
    let ty = op.r#type.and_then(|t| operation::Type::try_from(t).ok())?;
    let empty = Vec::new();
    Some(match ty {
        operation::Type::Reserve => {
            reserve(ctx, op.reserve.as_ref().map_or(&empty, |r| &r.resources))
        }
        operation::Type::Unreserve => {
            unreserve(ctx, op.unreserve.as_ref().map_or(&empty, |r| &r.resources))
        }
        operation::Type::Create => create(ctx, op.create.as_ref().map_or(&empty, |r| &r.volumes)),
        operation::Type::Destroy => {
            destroy(ctx, op.destroy.as_ref().map_or(&empty, |r| &r.volumes))
        }
        _ => return None,
    })
}

/// Applies a conversion to `offered`, as `Resources::apply` does: what it
/// consumes must be there.
pub fn apply(offered: &Resources, c: &Conversion) -> Result<Resources, String> {
    if !offered.contains(&c.consumed) {
        return Err(format!(
            "Invalid {} Operation: {} does not contain {}",
            c.kind.as_str_name(),
            crate::master::mesos_resources_text(offered),
            crate::master::mesos_resources_text(&c.consumed)
        ));
    }
    let mut out = offered.minus(&c.consumed);
    out.add(&c.converted);
    Ok(out)
}

#[cfg(test)]
mod tests {
    use super::*;
    use mesos_proto::util::scalar_resource;
    use v1::resource::{DiskInfo, ReservationInfo, disk_info::Persistence, reservation_info};

    /// `r` reserved for `web` by `p` (post-refinement format).
    fn res(mut r: v1::Resource, role: &str, principal: &str) -> v1::Resource {
        r.reservations = vec![ReservationInfo {
            r#type: Some(reservation_info::Type::Dynamic as i32),
            role: Some(role.into()),
            principal: Some(principal.into()),
            labels: None,
        }];
        r
    }

    fn vol(id: &str, mb: f64) -> v1::Resource {
        let mut r = res(scalar_resource("disk", mb), "web", "p");
        r.disk = Some(DiskInfo {
            persistence: Some(Persistence {
                id: id.into(),
                principal: Some("p".into()),
            }),
            volume: Some(v1::Volume {
                container_path: "data".into(),
                mode: v1::volume::Mode::Rw as i32,
                ..Default::default()
            }),
        });
        r
    }

    fn ctx<'a>(
        roles: &'a [String],
        checkpointed: &'a Resources,
        used: &'a Resources,
    ) -> OperationContext<'a> {
        OperationContext {
            principal: Some("p"),
            roles,
            allocation_role: "web",
            refinement: false,
            checkpointed,
            used,
        }
    }

    fn offered() -> Resources {
        Resources::agent(4.0, 4096.0, 1000.0, (31000, 31099))
    }

    #[test]
    fn reserve_takes_unreserved_and_checks_role_and_principal() {
        let roles = vec!["web".to_string()];
        let none = Resources::default();
        let c = ctx(&roles, &none, &none);
        let conv = reserve(&c, &[res(scalar_resource("cpus", 1.0), "web", "p")]).unwrap();
        let after = apply(&offered(), &conv).unwrap();
        assert_eq!(after.scalar("cpus"), 3.0);
        assert_eq!(after.total_scalar("cpus"), 4.0);
        assert_eq!(after.reserved_by_role()["web"].total_scalar("cpus"), 1.0);

        let other = reserve(&c, &[res(scalar_resource("cpus", 1.0), "other", "p")]);
        assert!(other.unwrap_err().contains("allocated to role 'web'"));
        let wrong = reserve(&c, &[res(scalar_resource("cpus", 1.0), "web", "q")]);
        assert!(wrong.unwrap_err().contains("principal 'q'"));
        let unreserved = reserve(&c, &[scalar_resource("cpus", 1.0)]);
        assert!(unreserved.unwrap_err().contains("not dynamically reserved"));
        // More than offered: the conversion does not apply.
        let big = reserve(&c, &[res(scalar_resource("cpus", 5.0), "web", "p")]).unwrap();
        assert!(
            apply(&offered(), &big)
                .unwrap_err()
                .contains("does not contain")
        );
        // A refined stack needs RESERVATION_REFINEMENT.
        let mut refined = res(scalar_resource("cpus", 1.0), "web", "p");
        refined.reservations[0].role = Some("eng".into());
        let mut top = refined.reservations[0].clone();
        top.role = Some("eng/web".into());
        refined.reservations.push(top);
        let roles2 = vec!["eng/web".to_string()];
        let c2 = OperationContext {
            allocation_role: "eng/web",
            ..ctx(&roles2, &none, &none)
        };
        assert!(
            reserve(&c2, std::slice::from_ref(&refined))
                .unwrap_err()
                .contains("RESERVATION_REFINEMENT")
        );
        let c3 = OperationContext {
            refinement: true,
            ..c2
        };
        let conv = reserve(&c3, &[refined]).unwrap();
        // One reservation down is `eng`'s, which this offer does not hold.
        assert!(apply(&offered(), &conv).is_err());
    }

    #[test]
    fn create_destroy_and_unreserve_follow_mesos_rules() {
        let roles = vec!["web".to_string()];
        let none = Resources::default();
        let c = ctx(&roles, &none, &none);
        let reserved = apply(
            &offered(),
            &reserve(&c, &[res(scalar_resource("disk", 100.0), "web", "p")]).unwrap(),
        )
        .unwrap();
        let created = create(&c, &[vol("v1", 40.0)]).unwrap();
        let with_vol = apply(&reserved, &created).unwrap();
        assert_eq!(with_vol.volumes().len(), 1);
        assert_eq!(with_vol.total_scalar("disk"), 1000.0);

        // Unique per role on the agent, and within one CREATE.
        let checkpointed = with_vol.checkpointed();
        let c2 = ctx(&roles, &checkpointed, &none);
        assert!(
            create(&c2, &[vol("v1", 10.0)])
                .unwrap_err()
                .contains("not unique")
        );
        assert!(
            create(&c, &[vol("v2", 10.0), vol("v2", 20.0)])
                .unwrap_err()
                .contains("not unique")
        );
        // Only on reserved disk, with a container path, by its principal.
        let mut unreserved = vol("v3", 10.0);
        unreserved.reservations.clear();
        assert!(
            create(&c, &[unreserved])
                .unwrap_err()
                .contains("unreserved")
        );
        let mut no_path = vol("v3", 10.0);
        no_path.disk.as_mut().unwrap().volume = None;
        assert!(create(&c, &[no_path]).unwrap_err().contains("'volume'"));
        let mut not_mine = vol("v3", 10.0);
        not_mine
            .disk
            .as_mut()
            .unwrap()
            .persistence
            .as_mut()
            .unwrap()
            .principal = None;
        assert!(
            create(&c, &[not_mine])
                .unwrap_err()
                .contains("no principal")
        );
        let mut cpus = vol("v3", 10.0);
        cpus.name = "cpus".into();
        assert!(create(&c, &[cpus]).is_err());

        // A volume cannot be unreserved; DESTROY needs it there and unused.
        assert!(
            unreserve(&c2, &[vol("v1", 40.0)])
                .unwrap_err()
                .contains("destroy")
        );
        assert!(
            destroy(&c, &[vol("v1", 40.0)])
                .unwrap_err()
                .contains("not found")
        );
        let used = Resources::from_protos(&[vol("v1", 40.0)]).unwrap();
        let busy = ctx(&roles, &checkpointed, &used);
        assert!(
            destroy(&busy, &[vol("v1", 40.0)])
                .unwrap_err()
                .contains("in use")
        );
        let destroyed = apply(&with_vol, &destroy(&c2, &[vol("v1", 40.0)]).unwrap()).unwrap();
        assert_eq!(destroyed, reserved);

        // UNRESERVE gives back exactly what RESERVE took.
        let back = apply(
            &destroyed,
            &unreserve(&c, &[res(scalar_resource("disk", 100.0), "web", "p")]).unwrap(),
        )
        .unwrap();
        assert_eq!(back, offered());
        assert!(
            unreserve(&c, &[scalar_resource("disk", 1.0)])
                .unwrap_err()
                .contains("not dynamically reserved")
        );
    }

    #[test]
    fn a_volume_is_only_contained_whole() {
        let whole = Resources::from_protos(&[vol("v1", 40.0)]).unwrap();
        let part = Resources::from_protos(&[vol("v1", 20.0)]).unwrap();
        assert!(whole.contains(&whole));
        assert!(!whole.contains(&part));
    }
}
