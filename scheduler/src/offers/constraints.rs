//! Marathon's placement constraints, with Marathon's exact semantics
//! (`mesos/Constraints.scala` of the last release; see
//! shared/reference/marathon-api.md §3).
//!
//! A constraint is `[field, OPERATOR]` or `[field, OPERATOR, value]`. The
//! field is `hostname` (or `@hostname`), `@region`, `@zone`, or an agent
//! attribute. Values compare as strings: TEXT as is, SCALAR as `0.###`,
//! RANGES as `[b-e,…]`, SET as `{a,b}`. Only UNLIKE accepts an offer that
//! lacks the field.
//!
//! Everything here is pure: an offer's field value and the field values of
//! the app's placed instances in, a verdict out.

use std::collections::{BTreeMap, BTreeSet};

pub use crate::state::app::constraint::{Constraint, ConstraintError, Operator};
use mesos_proto::v1::{self, value};

impl Constraint {
    /// Whether an offer whose field value is `offer_value` may take one more
    /// instance, given the field values of the instances already placed
    /// (including those planned earlier in this offer cycle).
    ///
    /// `known_values` tell GROUP_BY about empty groups. Pass only groups
    /// that could still take an instance — values on agents seen recently
    /// that no other constraint rules out — as the placement engine does:
    /// a group that can never be filled would otherwise block the app for
    /// good.
    pub fn accepts<'a>(
        &self,
        offer_value: Option<&str>,
        placed: impl Iterator<Item = Option<&'a str>>,
        known_values: &BTreeSet<String>,
    ) -> bool {
        let Some(value) = offer_value else {
            return matches!(self.operator, Operator::Unlike(_));
        };
        match &self.operator {
            Operator::Like(regex) => regex.is_match(value),
            Operator::Unlike(regex) => !regex.is_match(value),
            Operator::Is(expected) => values_equal(value, expected),
            Operator::Cluster(Some(expected)) => value == expected,
            Operator::Cluster(None) => placed.flatten().next().is_none_or(|first| first == value),
            Operator::Unique => placed.flatten().all(|v| v != value),
            Operator::MaxPer(n) => {
                (placed.flatten().filter(|v| *v == value).count() as u64) < u64::from(*n)
            }
            Operator::GroupBy(minimum_groups) => {
                let mut counts: BTreeMap<&str, u64> =
                    known_values.iter().map(|k| (k.as_str(), 0)).collect();
                counts.entry(value).or_insert(0);
                for v in placed.flatten() {
                    *counts.entry(v).or_insert(0) += 1;
                }
                let here = counts[value];
                if here == 0 {
                    return true;
                }
                let min = counts.values().copied().min().unwrap_or(0);
                counts.len() as u64 >= u64::from(*minimum_groups) && here == min
            }
        }
    }
}

/// Equality as IS compares: exact, or equal as Mesos scalars.
fn values_equal(actual: &str, expected: &str) -> bool {
    if actual == expected {
        return true;
    }
    match (actual.parse::<f64>(), expected.parse::<f64>()) {
        (Ok(a), Ok(b)) => format_scalar(a) == format_scalar(b),
        _ => false,
    }
}

/// A scalar as Marathon renders it: `DecimalFormat("0.###")`, half-even.
pub fn format_scalar(x: f64) -> String {
    let scaled = x * 1000.0;
    let rounded = {
        let r = scaled.round();
        // Half-even: a value exactly halfway rounds to the even neighbour.
        if (scaled - scaled.trunc()).abs() == 0.5 && r % 2.0 != 0.0 {
            r - scaled.signum()
        } else {
            r
        }
    };
    let mut s = format!("{:.3}", rounded / 1000.0);
    while s.ends_with('0') {
        s.pop();
    }
    if s.ends_with('.') {
        s.pop();
    }
    if s == "-0" { "0".into() } else { s }
}

/// An attribute's value as constraints compare it.
pub fn attribute_value(attribute: &v1::Attribute) -> Option<String> {
    match value::Type::try_from(attribute.r#type).ok()? {
        value::Type::Text => attribute.text.as_ref().map(|t| t.value.clone()),
        value::Type::Scalar => attribute.scalar.as_ref().map(|s| format_scalar(s.value)),
        value::Type::Ranges => attribute.ranges.as_ref().map(|r| {
            let mut ranges: Vec<(u64, u64)> = r.range.iter().map(|r| (r.begin, r.end)).collect();
            ranges.sort_unstable();
            let parts: Vec<String> = ranges.iter().map(|(b, e)| format!("{b}-{e}")).collect();
            format!("[{}]", parts.join(","))
        }),
        value::Type::Set => attribute.set.as_ref().map(|s| {
            let mut items = s.item.clone();
            items.sort_unstable();
            format!("{{{}}}", items.join(","))
        }),
    }
}

/// The values an offer has for every field constraints can name: hostname,
/// region and zone (as `@hostname`, `@region`, `@zone`) and each attribute.
pub fn offer_fields(offer: &v1::Offer) -> BTreeMap<String, String> {
    let mut fields = BTreeMap::new();
    fields.insert("@hostname".to_string(), offer.hostname.clone());
    if let Some(domain) = offer.domain.as_ref().and_then(|d| d.fault_domain.as_ref()) {
        fields.insert("@region".to_string(), domain.region.name.clone());
        fields.insert("@zone".to_string(), domain.zone.name.clone());
    }
    for attribute in &offer.attributes {
        if let Some(v) = attribute_value(attribute) {
            fields.insert(attribute.name.clone(), v);
        }
    }
    fields
}

/// Looks a constraint field up in [`offer_fields`]'s map; `hostname` is an
/// alias of `@hostname`.
pub fn field_value<'a>(fields: &'a BTreeMap<String, String>, field: &str) -> Option<&'a str> {
    let key = if field == "hostname" {
        "@hostname"
    } else {
        field
    };
    fields.get(key).map(String::as_str)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn c(parts: &[&str]) -> Constraint {
        Constraint::parse(&parts.iter().map(|s| s.to_string()).collect::<Vec<_>>()).unwrap()
    }

    fn accepts(constraint: &Constraint, offer: Option<&str>, placed: &[&str]) -> bool {
        constraint.accepts(offer, placed.iter().map(|p| Some(*p)), &BTreeSet::new())
    }

    #[test]
    fn unique_rejects_a_value_already_used() {
        let unique = c(&["hostname", "UNIQUE"]);
        assert!(accepts(&unique, Some("a"), &[]));
        assert!(accepts(&unique, Some("b"), &["a"]));
        assert!(!accepts(&unique, Some("a"), &["b", "a"]));
    }

    #[test]
    fn missing_attribute_is_rejected_by_all_but_unlike() {
        for parts in [
            vec!["rack", "UNIQUE"],
            vec!["rack", "CLUSTER", "r1"],
            vec!["rack", "GROUP_BY"],
            vec!["rack", "LIKE", ".*"],
            vec!["rack", "MAX_PER", "5"],
            vec!["rack", "IS", "r1"],
        ] {
            assert!(!accepts(&c(&parts), None, &[]), "{parts:?}");
        }
        assert!(accepts(&c(&["rack", "UNLIKE", "r1"]), None, &[]));
    }

    #[test]
    fn like_and_unlike_are_anchored_at_both_ends() {
        let like = c(&["rack", "LIKE", "rack-[12]"]);
        assert!(accepts(&like, Some("rack-1"), &[]));
        assert!(
            !accepts(&like, Some("rack-10"), &[]),
            "a prefix match is not a match"
        );
        assert!(!accepts(&like, Some("xrack-1"), &[]));
        let unlike = c(&["rack", "UNLIKE", "rack-1"]);
        assert!(accepts(&unlike, Some("rack-10"), &[]));
        assert!(!accepts(&unlike, Some("rack-1"), &[]));
        let alternation = c(&["rack", "LIKE", "a|b"]);
        assert!(
            !accepts(&alternation, Some("ab"), &[]),
            "anchoring wraps the whole alternation"
        );
    }

    #[test]
    fn max_per_counts_instances_per_value() {
        let max = c(&["rack", "MAX_PER", "2"]);
        assert!(accepts(&max, Some("r1"), &["r1"]));
        assert!(!accepts(&max, Some("r1"), &["r1", "r2", "r1"]));
        assert!(!accepts(&c(&["rack", "MAX_PER", "0"]), Some("r1"), &[]));
    }

    #[test]
    fn cluster_without_value_follows_the_first_instance() {
        let cluster = c(&["rack", "CLUSTER"]);
        assert!(accepts(&cluster, Some("r2"), &[]));
        assert!(accepts(&cluster, Some("r2"), &["r2"]));
        assert!(!accepts(&cluster, Some("r1"), &["r2"]));
        let fixed = c(&["rack", "CLUSTER", "r1"]);
        assert!(!accepts(&fixed, Some("r2"), &[]));
        assert!(accepts(&fixed, Some("r1"), &[]));
    }

    #[test]
    fn group_by_without_value_balances_over_known_values() {
        let group = c(&["rack", "GROUP_BY"]);
        let known: BTreeSet<String> = ["r1".to_string(), "r2".to_string()].into();
        let check = |offer: &str, placed: &[&str]| {
            group.accepts(Some(offer), placed.iter().map(|p| Some(*p)), &known)
        };
        assert!(check("r1", &[]));
        assert!(
            !check("r1", &["r1"]),
            "r2 is known and empty, so r1 must wait"
        );
        assert!(check("r2", &["r1"]));
        assert!(check("r1", &["r1", "r2"]));
        // Without knowledge of other values, an unused value is still taken.
        assert!(group.accepts(
            Some("r3"),
            ["r1", "r2"].iter().map(|p| Some(*p)),
            &BTreeSet::new()
        ));
    }

    #[test]
    fn group_by_with_value_needs_that_many_groups_before_reuse() {
        let group = c(&["rack", "GROUP_BY", "3"]);
        let none = BTreeSet::new();
        assert!(group.accepts(Some("r1"), std::iter::empty(), &none));
        assert!(group.accepts(Some("r2"), [Some("r1")].into_iter(), &none));
        assert!(
            !group.accepts(Some("r1"), [Some("r1"), Some("r2")].into_iter(), &none),
            "only 2 of 3 groups seen"
        );
        assert!(group.accepts(
            Some("r1"),
            [Some("r1"), Some("r2"), Some("r3")].into_iter(),
            &none
        ));
    }

    #[test]
    fn is_normalises_scalars() {
        let is = c(&["cpu_speed", "IS", "0.8"]);
        assert!(accepts(&is, Some("0.8"), &[]));
        assert!(accepts(&is, Some("0.80"), &[]));
        assert!(accepts(&is, Some("0.8001"), &[]));
        assert!(!accepts(&is, Some("0.81"), &[]));
        assert!(!accepts(&c(&["rack", "IS", "r1"]), Some("r2"), &[]));
    }

    #[test]
    fn invalid_constraints_are_rejected_with_marathons_messages() {
        let parse = |parts: &[&str]| {
            Constraint::parse(&parts.iter().map(|s| s.to_string()).collect::<Vec<_>>())
        };
        assert_eq!(parse(&["a"]).unwrap_err(), ConstraintError::Arity);
        assert_eq!(
            parse(&["a", "NEAR"]).unwrap_err(),
            ConstraintError::UnknownOperator
        );
        assert!(parse(&["a", "UNIQUE", "x"]).is_err());
        assert!(parse(&["a", "MAX_PER"]).is_err());
        assert!(parse(&["a", "MAX_PER", "two"]).is_err());
        assert!(parse(&["a", "GROUP_BY", "x"]).is_err());
        assert!(parse(&["a", "LIKE", "("]).is_err());
        assert!(parse(&["a", "IS"]).is_err());
    }

    #[test]
    fn attribute_values_render_as_marathon_compares_them() {
        assert_eq!(format_scalar(1.0), "1");
        assert_eq!(format_scalar(0.8), "0.8");
        assert_eq!(format_scalar(0.8001), "0.8");
        assert_eq!(format_scalar(2.5005), "2.5");
        assert_eq!(format_scalar(2.5016), "2.502");
        let ranges = v1::Attribute {
            name: "r".into(),
            r#type: value::Type::Ranges as i32,
            ranges: Some(value::Ranges {
                range: vec![
                    value::Range { begin: 5, end: 6 },
                    value::Range { begin: 1, end: 2 },
                ],
            }),
            ..Default::default()
        };
        assert_eq!(attribute_value(&ranges).as_deref(), Some("[1-2,5-6]"));
        let set = v1::Attribute {
            name: "s".into(),
            r#type: value::Type::Set as i32,
            set: Some(value::Set {
                item: vec!["b".into(), "a".into()],
            }),
            ..Default::default()
        };
        assert_eq!(attribute_value(&set).as_deref(), Some("{a,b}"));
    }
}
