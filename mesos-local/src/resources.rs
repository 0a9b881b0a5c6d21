//! Resource arithmetic: a value type for "how much of what", with the
//! containment test ACCEPT validation and offer filters need, and the
//! reservation and persistent-volume bookkeeping RESERVE, UNRESERVE,
//! CREATE and DESTROY change.
//!
//! Like Mesos, scalars are kept to three decimal places (fixed point) so
//! `0.1 + 0.2` is contained in `0.3`. Each amount is counted under a
//! [`Key`]: its name, its reservation stack (empty = unreserved) and, for
//! disk, the persistent volume it is. So a task asking for reserved
//! resources is never contained in an unreserved offer, and a volume is
//! only contained in itself (Mesos never splits a persistent volume).
//!
//! Internally every reservation is a stack (Mesos's post-refinement form);
//! [`Format`] says how it is written out: as the `reservations` stack, as
//! the pre-refinement `role` + `reservation` pair (frameworks without
//! RESERVATION_REFINEMENT), or both (the endpoints).

use std::collections::{BTreeMap, BTreeSet};

use mesos_proto::v1::{self, value};

/// Inclusive `(begin, end)` ranges, sorted and merged.
pub type Ranges = Vec<(u64, u64)>;

/// One reservation of a stack.
#[derive(Debug, Clone, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub struct Reservation {
    /// DYNAMIC (RESERVE made it) or STATIC (agent flags).
    pub dynamic: bool,
    /// The role it is for.
    pub role: String,
    /// Who made it (dynamic only).
    pub principal: Option<String>,
    /// Its labels, `(key, value)`.
    pub labels: Vec<(String, Option<String>)>,
}

/// A persistent volume: a reserved disk with `disk.persistence`.
#[derive(Debug, Clone, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub struct Volume {
    /// `disk.persistence.id`.
    pub id: String,
    /// `disk.persistence.principal`.
    pub principal: Option<String>,
    /// `disk.volume.container_path` (empty when the volume has none).
    pub container_path: String,
    /// `disk.volume.mode` (RW 1, RO 2; 0 when absent).
    pub mode: i32,
    /// `disk.volume.host_path`, which a persistent volume must not have.
    pub host_path: Option<String>,
}

/// What an amount is counted under.
#[derive(Debug, Clone, Default, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub struct Key {
    /// `cpus`, `mem`, `disk`, `ports`, ...
    pub name: String,
    /// Bottom first; empty = unreserved.
    pub reservations: Vec<Reservation>,
    /// The persistent volume this disk is.
    pub volume: Option<Volume>,
}

impl From<&str> for Key {
    fn from(name: &str) -> Key {
        Key::plain(name)
    }
}

impl Key {
    /// Unreserved, no volume.
    pub fn plain(name: &str) -> Key {
        Key {
            name: name.to_string(),
            ..Default::default()
        }
    }

    /// The role it is reserved for (the top of the stack), `None` when
    /// unreserved.
    pub fn role(&self) -> Option<&str> {
        self.reservations.last().map(|r| r.role.as_str())
    }

    /// Whether the top reservation is dynamic.
    pub fn is_dynamic(&self) -> bool {
        self.reservations.last().is_some_and(|r| r.dynamic)
    }

    /// The same resource, unreserved and not a volume.
    pub fn unreserved(&self) -> Key {
        Key::plain(&self.name)
    }
}

/// How reservations are written out.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Format {
    /// `role` + `reservation` (frameworks without RESERVATION_REFINEMENT);
    /// unreserved resources carry `role: "*"`.
    Pre,
    /// The `reservations` stack only; unreserved resources have no `role`.
    Post,
    /// Both, as Mesos's endpoints write them.
    Endpoint,
}

/// A bag of resources by [`Key`].
#[derive(Debug, Clone, Default, PartialEq)]
pub struct Resources {
    /// `cpus`, `mem`, `disk`, `gpus`, ...
    pub scalars: BTreeMap<Key, f64>,
    /// `ports`, ...
    pub ranges: BTreeMap<Key, Ranges>,
    /// SET resources (rare).
    pub sets: BTreeMap<Key, BTreeSet<String>>,
}

/// Rounds to Mesos's fixed-point precision (3 decimal digits).
pub fn round3(x: f64) -> f64 {
    (x * 1000.0).round() / 1000.0
}

/// Sorts and merges overlapping or adjacent ranges.
pub fn normalize(mut ranges: Ranges) -> Ranges {
    ranges.retain(|(b, e)| b <= e);
    ranges.sort_unstable();
    let mut out: Ranges = Vec::with_capacity(ranges.len());
    for (b, e) in ranges {
        match out.last_mut() {
            Some((_, last_end)) if b <= last_end.saturating_add(1) => {
                *last_end = (*last_end).max(e);
            }
            _ => out.push((b, e)),
        }
    }
    out
}

/// Whether every range of `inner` lies inside `outer` (both normalized).
pub fn ranges_contain(outer: &[(u64, u64)], inner: &[(u64, u64)]) -> bool {
    inner
        .iter()
        .all(|&(b, e)| outer.iter().any(|&(ob, oe)| ob <= b && e <= oe))
}

/// `a` minus `b` (both normalized).
pub fn ranges_subtract(a: &[(u64, u64)], b: &[(u64, u64)]) -> Ranges {
    let mut out = Vec::new();
    for &(mut begin, end) in a {
        let mut done = false;
        for &(rb, re) in b {
            if re < begin || rb > end {
                continue;
            }
            if rb > begin {
                out.push((begin, rb - 1));
            }
            if re >= end {
                done = true;
                break;
            }
            begin = re + 1;
        }
        if !done {
            out.push((begin, end));
        }
    }
    normalize(out)
}

fn ranges_len(r: &[(u64, u64)]) -> u64 {
    r.iter()
        .map(|(b, e)| e.saturating_sub(*b).saturating_add(1))
        .fold(0u64, u64::saturating_add)
}

/// Mesos's role name rules (`roles::validate`), `*` aside.
fn validate_role(role: &str) -> Result<(), String> {
    let bad = role.is_empty()
        || role.starts_with('/')
        || role.ends_with('/')
        || role.contains(|c: char| c.is_whitespace() || c.is_control() || c == '\\')
        || role
            .split('/')
            .any(|p| p.is_empty() || p == "." || p == ".." || p.starts_with('-') || p == "*");
    if bad {
        Err(format!("Invalid role name '{role}'"))
    } else {
        Ok(())
    }
}

fn labels_of(labels: Option<&v1::Labels>) -> Vec<(String, Option<String>)> {
    labels
        .map(|l| {
            l.labels
                .iter()
                .map(|l| (l.key.clone(), l.value.clone()))
                .collect()
        })
        .unwrap_or_default()
}

fn labels_to_proto(labels: &[(String, Option<String>)]) -> Option<v1::Labels> {
    (!labels.is_empty()).then(|| v1::Labels {
        labels: labels
            .iter()
            .map(|(key, value)| v1::Label {
                key: key.clone(),
                value: value.clone(),
            })
            .collect(),
    })
}

/// The reservation stack of a resource, in either format, checked as
/// Mesos's `Resources::validate` checks it.
#[allow(deprecated)] // `Resource.role`: the pre-refinement format
fn reservations_of(r: &v1::Resource) -> Result<Vec<Reservation>, String> {
    use v1::resource::reservation_info::Type;
    if r.reservations.is_empty() {
        let role = r.role.as_deref().unwrap_or("*");
        if role != "*" {
            validate_role(role)?;
        }
        return match (&r.reservation, role) {
            (Some(res), _) if res.r#type.is_some() => Err(
                "'Resource.ReservationInfo.type' must not be set for the 'Resource.reservation' field".into(),
            ),
            (Some(res), _) if res.role.is_some() => Err(
                "'Resource.ReservationInfo.role' must not be set for the 'Resource.reservation' field".into(),
            ),
            (Some(_), "*") => {
                Err("Invalid reservation: role \"*\" cannot be dynamically reserved".into())
            }
            (Some(res), role) => Ok(vec![Reservation {
                dynamic: true,
                role: role.to_string(),
                principal: res.principal.clone(),
                labels: labels_of(res.labels.as_ref()),
            }]),
            (None, "*") => Ok(Vec::new()),
            (None, role) => Ok(vec![Reservation {
                dynamic: false,
                role: role.to_string(),
                principal: None,
                labels: Vec::new(),
            }]),
        };
    }
    let mut stack = Vec::new();
    for res in &r.reservations {
        let ty = res.r#type.and_then(|t| Type::try_from(t).ok());
        let dynamic = match ty {
            Some(Type::Dynamic) => true,
            Some(Type::Static) => false,
            _ => return Err("Invalid reservation: 'type' must be set".into()),
        };
        let Some(role) = res.role.clone() else {
            return Err("Invalid reservation: 'role' must be set".into());
        };
        if role == "*" {
            return Err("Invalid reservation: role \"*\" cannot be reserved".into());
        }
        validate_role(&role)?;
        if let Some(ancestor) = stack.last().map(|a: &Reservation| a.role.clone()) {
            if !dynamic {
                return Err(
                    "Invalid refined reservation: A refined reservation cannot be STATIC".into(),
                );
            }
            if !role.starts_with(&format!("{ancestor}/")) {
                return Err(format!(
                    "Invalid refined reservation: role '{role}' is not a refinement of '{ancestor}'"
                ));
            }
        }
        stack.push(Reservation {
            dynamic,
            role,
            principal: res.principal.clone(),
            labels: labels_of(res.labels.as_ref()),
        });
    }
    // The pre-refinement fields may repeat a single reservation.
    if let [only] = stack.as_slice() {
        if let Some(role) = &r.role
            && *role != only.role
        {
            return Err(format!(
                "'Resource.role' field is set ({role}) but doesn't match the reservation role ({})",
                only.role
            ));
        }
        if let Some(res) = &r.reservation
            && (res.principal != only.principal || labels_of(res.labels.as_ref()) != only.labels)
        {
            return Err(
                "'Resource.reservation' field is set but doesn't match the reservation".into(),
            );
        }
    } else {
        if r.role.is_some() {
            return Err(
                "'Resource.role' must not be set if there is more than one reservation".into(),
            );
        }
        if r.reservation.is_some() {
            return Err(
                "'Resource.reservation' must not be set if there is more than one reservation"
                    .into(),
            );
        }
    }
    Ok(stack)
}

/// The key a resource is counted under.
fn key_of(r: &v1::Resource) -> Result<Key, String> {
    let reservations = reservations_of(r)?;
    let volume = match &r.disk {
        Some(disk) if r.name != "disk" => {
            return Err(format!(
                "DiskInfo should not be set for {} resource",
                r.name
            ));
        }
        Some(v1::resource::DiskInfo {
            persistence: Some(p),
            volume,
        }) => Some(Volume {
            id: p.id.clone(),
            principal: p.principal.clone(),
            container_path: volume
                .as_ref()
                .map(|v| v.container_path.clone())
                .unwrap_or_default(),
            mode: volume.as_ref().map_or(0, |v| v.mode),
            host_path: volume.as_ref().and_then(|v| v.host_path.clone()),
        }),
        _ => None,
    };
    if r.shared.is_some() {
        return Err("Shared resources are not supported".into());
    }
    if r.revocable.is_some() {
        return Err("Revocable resources are not supported".into());
    }
    Ok(Key {
        name: r.name.clone(),
        reservations,
        volume,
    })
}

impl Resources {
    /// Parses and checks resources, as Mesos's resource validation does: a
    /// name, a type with its matching value, finite non-negative scalars,
    /// ranges with `begin <= end`, a well-formed reservation (either
    /// format), DiskInfo only on disk.
    pub fn from_protos(resources: &[v1::Resource]) -> Result<Resources, String> {
        let mut out = Resources::default();
        for r in resources {
            if r.name.is_empty() {
                return Err("Empty resource name".into());
            }
            let key = key_of(r)?;
            match value::Type::try_from(r.r#type) {
                Ok(value::Type::Scalar) => {
                    let Some(s) = &r.scalar else {
                        return Err(format!("Invalid scalar resource '{}': no scalar", r.name));
                    };
                    if !s.value.is_finite() || s.value < 0.0 {
                        return Err(format!(
                            "Invalid scalar resource '{}': {} is not a non-negative number",
                            r.name, s.value
                        ));
                    }
                    if key.volume.is_some() && out.scalars.contains_key(&key) {
                        // Mesos cannot add two copies of one volume.
                        return Err(format!(
                            "Persistent volume '{}' is listed twice",
                            key.volume.as_ref().map(|v| v.id.as_str()).unwrap_or("")
                        ));
                    }
                    let e = out.scalars.entry(key).or_default();
                    *e = round3(*e + s.value);
                }
                Ok(value::Type::Ranges) if key.volume.is_none() => {
                    let Some(rs) = &r.ranges else {
                        return Err(format!("Invalid ranges resource '{}': no ranges", r.name));
                    };
                    let mut list = Vec::new();
                    for range in &rs.range {
                        if range.begin > range.end {
                            return Err(format!(
                                "Invalid ranges resource '{}': range [{}-{}] is empty",
                                r.name, range.begin, range.end
                            ));
                        }
                        list.push((range.begin, range.end));
                    }
                    let entry = out.ranges.entry(key).or_default();
                    entry.extend(list);
                    *entry = normalize(std::mem::take(entry));
                }
                Ok(value::Type::Set) if key.volume.is_none() => {
                    let Some(set) = &r.set else {
                        return Err(format!("Invalid set resource '{}': no set", r.name));
                    };
                    out.sets
                        .entry(key)
                        .or_default()
                        .extend(set.item.iter().cloned());
                }
                _ => {
                    return Err(format!(
                        "Invalid resource '{}': unsupported type {}",
                        r.name, r.r#type
                    ));
                }
            }
        }
        out.scalars.retain(|_, v| *v > 0.0);
        out.ranges.retain(|_, v| !v.is_empty());
        out.sets.retain(|_, v| !v.is_empty());
        Ok(out)
    }

    /// The standard agent resources.
    pub fn agent(cpus: f64, mem: f64, disk: f64, ports: (u64, u64)) -> Resources {
        let mut r = Resources::default();
        for (name, v) in [("cpus", cpus), ("mem", mem), ("disk", disk)] {
            if v > 0.0 {
                r.scalars.insert(name.into(), round3(v));
            }
        }
        r.ranges.insert("ports".into(), vec![ports]);
        r
    }

    /// Nothing at all.
    pub fn is_empty(&self) -> bool {
        self.scalars.values().all(|v| *v <= 0.0)
            && self.ranges.values().all(Vec::is_empty)
            && self.sets.values().all(BTreeSet::is_empty)
    }

    /// The unreserved amount of a scalar, 0 if absent.
    pub fn scalar(&self, name: &str) -> f64 {
        self.scalars.get(&Key::plain(name)).copied().unwrap_or(0.0)
    }

    /// The amount of a scalar, reserved or not.
    pub fn total_scalar(&self, name: &str) -> f64 {
        round3(
            self.scalars
                .iter()
                .filter(|(k, _)| k.name == name)
                .map(|(_, v)| v)
                .sum(),
        )
    }

    /// The unreserved ranges of `name`.
    #[cfg(test)]
    pub fn ranges_of(&self, name: &str) -> Ranges {
        self.ranges
            .get(&Key::plain(name))
            .cloned()
            .unwrap_or_default()
    }

    /// Adds `other` to `self`.
    pub fn add(&mut self, other: &Resources) {
        for (k, v) in &other.scalars {
            let e = self.scalars.entry(k.clone()).or_default();
            *e = round3(*e + v);
        }
        for (k, v) in &other.ranges {
            let e = self.ranges.entry(k.clone()).or_default();
            e.extend(v.iter().copied());
            *e = normalize(std::mem::take(e));
        }
        for (k, v) in &other.sets {
            self.sets
                .entry(k.clone())
                .or_default()
                .extend(v.iter().cloned());
        }
    }

    /// Removes `other` from `self`, never going below zero.
    pub fn subtract(&mut self, other: &Resources) {
        for (k, v) in &other.scalars {
            if let Some(e) = self.scalars.get_mut(k) {
                *e = round3((*e - v).max(0.0));
            }
        }
        for (k, v) in &other.ranges {
            if let Some(e) = self.ranges.get_mut(k) {
                *e = ranges_subtract(e, v);
            }
        }
        for (k, v) in &other.sets {
            if let Some(e) = self.sets.get_mut(k) {
                e.retain(|item| !v.contains(item));
            }
        }
        self.scalars.retain(|_, v| *v > 0.0);
        self.ranges.retain(|_, v| !v.is_empty());
        self.sets.retain(|_, v| !v.is_empty());
    }

    /// `self` minus `other`.
    pub fn minus(&self, other: &Resources) -> Resources {
        let mut r = self.clone();
        r.subtract(other);
        r
    }

    /// Whether `other` fits in `self`: every scalar at most as large (a
    /// volume exactly as large: it is never split), every range inside
    /// ours, every set item present.
    pub fn contains(&self, other: &Resources) -> bool {
        other.scalars.iter().all(|(k, v)| {
            let mine = self.scalars.get(k).copied().unwrap_or(0.0);
            if k.volume.is_some() {
                round3(mine - v) == 0.0
            } else {
                round3(mine - v) >= 0.0
            }
        }) && other.ranges.iter().all(|(k, v)| {
            self.ranges
                .get(k)
                .is_some_and(|mine| ranges_contain(mine, v))
        }) && other.sets.iter().all(|(k, v)| {
            self.sets
                .get(k)
                .is_some_and(|mine| v.iter().all(|i| mine.contains(i)))
        })
    }

    /// The part whose keys pass `keep`.
    pub fn filter(&self, keep: impl Fn(&Key) -> bool) -> Resources {
        Resources {
            scalars: self
                .scalars
                .iter()
                .filter(|(k, _)| keep(k))
                .map(|(k, v)| (k.clone(), *v))
                .collect(),
            ranges: self
                .ranges
                .iter()
                .filter(|(k, _)| keep(k))
                .map(|(k, v)| (k.clone(), v.clone()))
                .collect(),
            sets: self
                .sets
                .iter()
                .filter(|(k, _)| keep(k))
                .map(|(k, v)| (k.clone(), v.clone()))
                .collect(),
        }
    }

    /// Every amount moved to the key `to` gives it (merging).
    pub fn map_keys(&self, to: impl Fn(&Key) -> Key) -> Resources {
        let mut out = Resources::default();
        for (k, v) in &self.scalars {
            let e = out.scalars.entry(to(k)).or_default();
            *e = round3(*e + v);
        }
        for (k, v) in &self.ranges {
            let e = out.ranges.entry(to(k)).or_default();
            e.extend(v.iter().copied());
            *e = normalize(std::mem::take(e));
        }
        for (k, v) in &self.sets {
            out.sets.entry(to(k)).or_default().extend(v.iter().cloned());
        }
        out
    }

    /// Everything as unreserved plain resources (what the agent has,
    /// whoever it is reserved for).
    pub fn flatten(&self) -> Resources {
        self.map_keys(Key::unreserved)
    }

    /// The unreserved part.
    pub fn unreserved(&self) -> Resources {
        self.filter(|k| k.reservations.is_empty())
    }

    /// What an agent checkpoints: dynamically reserved resources and
    /// persistent volumes.
    pub fn checkpointed(&self) -> Resources {
        self.filter(|k| k.is_dynamic() || k.volume.is_some())
    }

    /// The reserved part by reservation role (the top of each stack).
    pub fn reserved_by_role(&self) -> BTreeMap<String, Resources> {
        let mut roles: BTreeSet<String> = BTreeSet::new();
        for k in self
            .scalars
            .keys()
            .chain(self.ranges.keys())
            .chain(self.sets.keys())
        {
            if let Some(role) = k.role() {
                roles.insert(role.to_string());
            }
        }
        roles
            .into_iter()
            .map(|role| {
                let part = self.filter(|k| k.role() == Some(role.as_str()));
                (role, part)
            })
            .collect()
    }

    /// The persistent volumes.
    pub fn volumes(&self) -> Vec<(&Key, &Volume)> {
        self.scalars
            .keys()
            .filter_map(|k| k.volume.as_ref().map(|v| (k, v)))
            .collect()
    }

    /// What may be offered to a framework of `role`: unreserved resources
    /// and those reserved to `role`; refined reservations only to
    /// frameworks that can read them (RESERVATION_REFINEMENT), as Mesos's
    /// allocator strips them for the others.
    pub fn offerable_to(&self, role: &str, refinement: bool) -> Resources {
        self.filter(|k| {
            k.reservations.is_empty()
                || (k.role() == Some(role) && (refinement || k.reservations.len() == 1))
        })
    }

    /// An agent's total: `base` (everything it has, unreserved) with the
    /// `checkpointed` reservations and volumes carved out of it.
    pub fn with_checkpointed(base: &Resources, checkpointed: &Resources) -> Resources {
        let mut total = base.flatten();
        total.subtract(&checkpointed.flatten());
        total.add(checkpointed);
        total
    }

    /// As `mesos.v1.Resource`s in `format`; with `allocation_role` set
    /// (for MULTI_ROLE frameworks) each carries `allocation_info`.
    #[allow(deprecated)]
    pub fn to_protos(&self, allocation_role: Option<&str>, format: Format) -> Vec<v1::Resource> {
        let alloc = allocation_role.map(|role| v1::resource::AllocationInfo {
            role: Some(role.to_string()),
        });
        let mut out = Vec::new();
        let mut push = |key: &Key, mut r: v1::Resource| {
            dress(key, &mut r, format);
            r.allocation_info = alloc.clone();
            out.push(r);
        };
        for (key, v) in &self.scalars {
            push(key, mesos_proto::util::scalar_resource(&key.name, *v));
        }
        for (key, v) in &self.ranges {
            push(key, mesos_proto::util::ranges_resource(&key.name, v));
        }
        for (key, v) in &self.sets {
            push(
                key,
                v1::Resource {
                    name: key.name.clone(),
                    r#type: value::Type::Set as i32,
                    set: Some(value::Set {
                        item: v.iter().cloned().collect(),
                    }),
                    ..Default::default()
                },
            );
        }
        out
    }

    /// The map form `/master/state` uses, every reservation summed by
    /// name: scalars as numbers (`cpus`, `mem`, `disk` and `gpus` always
    /// present), ranges as `"[a-b, c-d]"`, sets as `"{a, b}"`.
    pub fn to_state_json(&self) -> serde_json::Value {
        let flat = self.flatten();
        let mut map = serde_json::Map::new();
        for name in ["cpus", "disk", "gpus", "mem"] {
            map.insert(name.into(), serde_json::json!(flat.scalar(name)));
        }
        for (key, v) in &flat.scalars {
            map.insert(key.name.clone(), serde_json::json!(v));
        }
        for (key, v) in &flat.ranges {
            let parts: Vec<String> = v.iter().map(|(b, e)| format!("{b}-{e}")).collect();
            map.insert(
                key.name.clone(),
                serde_json::Value::String(format!("[{}]", parts.join(", "))),
            );
        }
        for (key, v) in &flat.sets {
            let parts: Vec<&str> = v.iter().map(String::as_str).collect();
            map.insert(
                key.name.clone(),
                serde_json::Value::String(format!("{{{}}}", parts.join(", "))),
            );
        }
        serde_json::Value::Object(map)
    }

    /// The `*_full` form of the endpoints: an array of `Resource` JSON in
    /// the endpoint format.
    pub fn to_full_json(&self) -> serde_json::Value {
        serde_json::Value::Array(
            self.to_protos(None, Format::Endpoint)
                .iter()
                .filter_map(|r| mesos_proto::json::to_value(r).ok())
                .collect(),
        )
    }

    /// A rough size for fair sharing: the dominant share against `total`.
    pub fn dominant_share(&self, total: &Resources) -> f64 {
        let (mine, total) = (self.flatten(), total.flatten());
        let mut share: f64 = 0.0;
        for (k, v) in &mine.scalars {
            let t = total.scalar(&k.name);
            if t > 0.0 {
                share = share.max(v / t);
            }
        }
        for (k, v) in &mine.ranges {
            let t = total.ranges.get(k).map(|r| ranges_len(r)).unwrap_or(0);
            if t > 0 {
                share = share.max(ranges_len(v) as f64 / t as f64);
            }
        }
        share
    }
}

/// Sets the reservation fields and DiskInfo of `r` for `key`.
#[allow(deprecated)] // `Resource.role`: the pre-refinement format
fn dress(key: &Key, r: &mut v1::Resource, format: Format) {
    use v1::resource::{DiskInfo, ReservationInfo, disk_info::Persistence, reservation_info::Type};
    if let Some(v) = &key.volume {
        r.disk = Some(DiskInfo {
            persistence: Some(Persistence {
                id: v.id.clone(),
                principal: v.principal.clone(),
            }),
            volume: (!v.container_path.is_empty() || v.mode != 0).then(|| v1::Volume {
                mode: v.mode,
                container_path: v.container_path.clone(),
                host_path: v.host_path.clone(),
                ..Default::default()
            }),
        });
    }
    let stacked = || {
        key.reservations
            .iter()
            .map(|res| ReservationInfo {
                r#type: Some(if res.dynamic {
                    Type::Dynamic
                } else {
                    Type::Static
                } as i32),
                role: Some(res.role.clone()),
                principal: res.principal.clone(),
                labels: labels_to_proto(&res.labels),
            })
            .collect::<Vec<_>>()
    };
    // Mesos's `convertResourceFormat`: the pre-refinement pair only
    // exists for a single reservation.
    let pre = |r: &mut v1::Resource| match key.reservations.as_slice() {
        [] => r.role = Some("*".into()),
        [only] => {
            r.role = Some(only.role.clone());
            r.reservation = only.dynamic.then(|| ReservationInfo {
                principal: only.principal.clone(),
                labels: labels_to_proto(&only.labels),
                ..Default::default()
            });
        }
        _ => {}
    };
    match format {
        Format::Pre => pre(r),
        Format::Post => r.reservations = stacked(),
        Format::Endpoint => {
            pre(r);
            r.reservations = stacked();
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use mesos_proto::util::{ranges_resource, scalar_resource};

    #[test]
    fn ranges_normalize_subtract_and_contain() {
        assert_eq!(
            normalize(vec![(5, 7), (1, 2), (3, 4), (10, 12), (11, 11)]),
            vec![(1, 7), (10, 12)]
        );
        assert_eq!(
            ranges_subtract(&[(31000, 31999)], &[(31000, 31000), (31005, 31006)]),
            vec![(31001, 31004), (31007, 31999)]
        );
        assert_eq!(ranges_subtract(&[(1, 5)], &[(0, 10)]), vec![]);
        assert!(ranges_contain(&[(1, 10), (20, 30)], &[(2, 3), (20, 30)]));
        assert!(!ranges_contain(&[(1, 10), (20, 30)], &[(9, 21)]));
        assert!(!ranges_contain(&[(1, 10)], &[(11, 11)]));
    }

    #[test]
    fn containment_checks_scalars_ports_and_reservations() {
        let offer = Resources::agent(4.0, 4096.0, 10240.0, (31000, 31999));
        let task = Resources::from_protos(&[
            scalar_resource("cpus", 0.1),
            scalar_resource("cpus", 0.2),
            scalar_resource("mem", 128.0),
            ranges_resource("ports", &[(31000, 31000), (31500, 31501)]),
        ])
        .unwrap();
        assert!(offer.contains(&task));
        assert_eq!(task.scalar("cpus"), 0.3);

        let too_much = Resources::from_protos(&[scalar_resource("cpus", 4.001)]).unwrap();
        assert!(!offer.contains(&too_much));
        let bad_port =
            Resources::from_protos(&[ranges_resource("ports", &[(32000, 32000)])]).unwrap();
        assert!(!offer.contains(&bad_port));
        let gpu = Resources::from_protos(&[scalar_resource("gpus", 1.0)]).unwrap();
        assert!(!offer.contains(&gpu));

        #[allow(deprecated)]
        let reserved = {
            let mut r = scalar_resource("cpus", 1.0);
            r.role = Some("web".into());
            Resources::from_protos(&[r]).unwrap()
        };
        assert!(!offer.contains(&reserved));

        let left = offer.minus(&task);
        assert_eq!(left.scalar("cpus"), 3.7);
        assert_eq!(
            left.ranges_of("ports"),
            vec![(31001, 31499), (31502, 31999)]
        );
        let mut back = left.clone();
        back.add(&task);
        assert_eq!(back, offer);
    }

    #[test]
    fn invalid_resources_are_refused() {
        assert!(Resources::from_protos(&[scalar_resource("cpus", -1.0)]).is_err());
        assert!(Resources::from_protos(&[scalar_resource("cpus", f64::NAN)]).is_err());
        assert!(Resources::from_protos(&[scalar_resource("", 1.0)]).is_err());
        let mut r = ranges_resource("ports", &[(5, 4)]);
        assert!(Resources::from_protos(std::slice::from_ref(&r)).is_err());
        r.ranges = None;
        assert!(Resources::from_protos(&[r]).is_err());
    }

    #[test]
    fn state_json_map_form() {
        let r = Resources::from_protos(&[
            scalar_resource("cpus", 0.5),
            scalar_resource("mem", 128.0),
            ranges_resource("ports", &[(31000, 31000), (31002, 31003)]),
        ])
        .unwrap();
        assert_eq!(
            r.to_state_json(),
            serde_json::json!({"cpus":0.5,"mem":128.0,"disk":0.0,"gpus":0.0,"ports":"[31000-31000, 31002-31003]"})
        );
    }
}
