//! Resource arithmetic: a value type for "how much of what", with the
//! containment test ACCEPT validation and offer filters need.
//!
//! Like Mesos, scalars are kept to three decimal places (fixed point) so
//! `0.1 + 0.2` is contained in `0.3`. Reserved resources (a role other than
//! `*`, or any reservation) are kept apart from unreserved ones under the
//! key `name(role)`, so a task asking for reserved resources is never
//! contained in an unreserved offer.

use std::collections::{BTreeMap, BTreeSet};

use mesos_proto::v1::{self, value};

/// Inclusive `(begin, end)` ranges, sorted and merged.
pub type Ranges = Vec<(u64, u64)>;

/// A bag of resources by name.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct Resources {
    /// `cpus`, `mem`, `disk`, `gpus`, ...
    pub scalars: BTreeMap<String, f64>,
    /// `ports`, ...
    pub ranges: BTreeMap<String, Ranges>,
    /// SET resources (rare).
    pub sets: BTreeMap<String, BTreeSet<String>>,
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

/// The key a resource is counted under: its name, plus the role when it is
/// reserved.
#[allow(deprecated)] // `Resource.role` is deprecated upstream but still meaningful
fn key_of(r: &v1::Resource) -> String {
    let reserved_role = match r.reservations.last() {
        Some(res) => Some(res.role.clone().unwrap_or_else(|| "reserved".into())),
        None => r.role.clone().filter(|role| role != "*"),
    };
    match reserved_role {
        Some(role) => format!("{}({role})", r.name),
        None => r.name.clone(),
    }
}

impl Resources {
    /// Parses and checks resources, as Mesos's resource validation does: a
    /// name, a type with its matching value, finite non-negative scalars,
    /// ranges with `begin <= end`.
    pub fn from_protos(resources: &[v1::Resource]) -> Result<Resources, String> {
        let mut out = Resources::default();
        for r in resources {
            if r.name.is_empty() {
                return Err("Empty resource name".into());
            }
            let key = key_of(r);
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
                    let e = out.scalars.entry(key).or_default();
                    *e = round3(*e + s.value);
                }
                Ok(value::Type::Ranges) => {
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
                Ok(value::Type::Set) => {
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

    /// The amount of a scalar, 0 if absent.
    pub fn scalar(&self, name: &str) -> f64 {
        self.scalars.get(name).copied().unwrap_or(0.0)
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

    /// Whether `other` fits in `self`: every scalar at most as large, every
    /// range inside ours, every set item present.
    pub fn contains(&self, other: &Resources) -> bool {
        other
            .scalars
            .iter()
            .all(|(k, v)| round3(self.scalar(k) - v) >= 0.0)
            && other.ranges.iter().all(|(k, v)| {
                self.ranges
                    .get(k)
                    .is_some_and(|mine| ranges_contain(mine, v))
            })
            && other.sets.iter().all(|(k, v)| {
                self.sets
                    .get(k)
                    .is_some_and(|mine| v.iter().all(|i| mine.contains(i)))
            })
    }

    /// As `mesos.v1.Resource`s, unreserved; with `allocation_role` set (for
    /// MULTI_ROLE frameworks) each carries `allocation_info`.
    #[allow(deprecated)]
    pub fn to_protos(&self, allocation_role: Option<&str>) -> Vec<v1::Resource> {
        let alloc = allocation_role.map(|role| v1::resource::AllocationInfo {
            role: Some(role.to_string()),
        });
        let mut out = Vec::new();
        for (name, v) in &self.scalars {
            let mut r = mesos_proto::util::scalar_resource(name, *v);
            r.role = Some("*".into());
            r.allocation_info = alloc.clone();
            out.push(r);
        }
        for (name, v) in &self.ranges {
            let mut r = mesos_proto::util::ranges_resource(name, v);
            r.role = Some("*".into());
            r.allocation_info = alloc.clone();
            out.push(r);
        }
        for (name, v) in &self.sets {
            out.push(v1::Resource {
                name: name.clone(),
                r#type: value::Type::Set as i32,
                set: Some(value::Set {
                    item: v.iter().cloned().collect(),
                }),
                role: Some("*".into()),
                allocation_info: alloc.clone(),
                ..Default::default()
            });
        }
        out
    }

    /// The map form `/master/state` uses: scalars as numbers (`cpus`, `mem`,
    /// `disk` and `gpus` always present), ranges as `"[a-b, c-d]"`, sets as
    /// `"{a, b}"`.
    pub fn to_state_json(&self) -> serde_json::Value {
        let mut map = serde_json::Map::new();
        for name in ["cpus", "disk", "gpus", "mem"] {
            map.insert(name.into(), serde_json::json!(self.scalar(name)));
        }
        for (name, v) in &self.scalars {
            map.insert(name.clone(), serde_json::json!(v));
        }
        for (name, v) in &self.ranges {
            let parts: Vec<String> = v.iter().map(|(b, e)| format!("{b}-{e}")).collect();
            map.insert(
                name.clone(),
                serde_json::Value::String(format!("[{}]", parts.join(", "))),
            );
        }
        for (name, v) in &self.sets {
            let parts: Vec<&str> = v.iter().map(String::as_str).collect();
            map.insert(
                name.clone(),
                serde_json::Value::String(format!("{{{}}}", parts.join(", "))),
            );
        }
        serde_json::Value::Object(map)
    }

    /// A rough size for fair sharing: the dominant share against `total`.
    pub fn dominant_share(&self, total: &Resources) -> f64 {
        let mut share: f64 = 0.0;
        for (k, v) in &self.scalars {
            let t = total.scalar(k);
            if t > 0.0 {
                share = share.max(v / t);
            }
        }
        for (k, v) in &self.ranges {
            let t = total.ranges.get(k).map(|r| ranges_len(r)).unwrap_or(0);
            if t > 0 {
                share = share.max(ranges_len(v) as f64 / t as f64);
            }
        }
        share
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
        assert_eq!(left.ranges["ports"], vec![(31001, 31499), (31502, 31999)]);
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
