//! [`Labels`]: string-to-string metadata in a sorted boxed slice.
//!
//! Apps are kept by the ten thousand, and most carry a handful of labels: a
//! `BTreeMap` spends a whole node (over 500 bytes) on two of them, a sorted
//! slice spends 32 bytes per label. Lookups are binary searches; the rare
//! insert rebuilds the slice.

use std::collections::BTreeMap;
use std::fmt;

use serde::{Deserialize, Deserializer, Serialize, Serializer};

/// Labels (`labels` of an app, a network, a port): keys unique and sorted,
/// written as a JSON object in key order, as a `BTreeMap` was.
#[derive(Clone, Default, PartialEq, Eq, Hash)]
pub struct Labels(Box<[(Box<str>, Box<str>)]>);

impl Labels {
    /// No labels.
    pub fn new() -> Labels {
        Labels::default()
    }

    fn position(&self, key: &str) -> Result<usize, usize> {
        self.0.binary_search_by(|(k, _)| (**k).cmp(key))
    }

    /// The value of `key`.
    pub fn get(&self, key: &str) -> Option<&str> {
        self.position(key).ok().map(|i| &*self.0[i].1)
    }

    /// Whether `key` is set.
    pub fn contains_key(&self, key: &str) -> bool {
        self.position(key).is_ok()
    }

    /// How many.
    pub fn len(&self) -> usize {
        self.0.len()
    }

    /// Whether there are none.
    pub fn is_empty(&self) -> bool {
        self.0.is_empty()
    }

    /// Keys and values in key order.
    pub fn iter(&self) -> impl ExactSizeIterator<Item = (&str, &str)> {
        self.0.iter().map(|(k, v)| (&**k, &**v))
    }

    /// Sets `key` to `value`, giving the value it replaced.
    pub fn insert(&mut self, key: impl Into<String>, value: impl Into<String>) -> Option<String> {
        let key: String = key.into();
        let value: Box<str> = value.into().into_boxed_str();
        let mut entries = std::mem::take(&mut self.0).into_vec();
        let replaced = match entries.binary_search_by(|(k, _)| (**k).cmp(&key)) {
            Ok(i) => Some(std::mem::replace(&mut entries[i].1, value).into()),
            Err(i) => {
                entries.insert(i, (key.into_boxed_str(), value));
                None
            }
        };
        self.0 = entries.into_boxed_slice();
        replaced
    }
}

impl From<BTreeMap<String, String>> for Labels {
    fn from(map: BTreeMap<String, String>) -> Labels {
        // Already sorted and unique.
        Labels(
            map.into_iter()
                .map(|(k, v)| (k.into_boxed_str(), v.into_boxed_str()))
                .collect(),
        )
    }
}

impl<K: Into<String>, V: Into<String>> FromIterator<(K, V)> for Labels {
    fn from_iter<I: IntoIterator<Item = (K, V)>>(iter: I) -> Labels {
        // Through a map: the last of equal keys wins, as it did.
        iter.into_iter()
            .map(|(k, v)| (k.into(), v.into()))
            .collect::<BTreeMap<String, String>>()
            .into()
    }
}

impl<'a> IntoIterator for &'a Labels {
    type Item = (&'a str, &'a str);
    type IntoIter = std::iter::Map<
        std::slice::Iter<'a, (Box<str>, Box<str>)>,
        fn(&'a (Box<str>, Box<str>)) -> (&'a str, &'a str),
    >;

    fn into_iter(self) -> Self::IntoIter {
        self.0.iter().map(|(k, v)| (&**k, &**v))
    }
}

impl fmt::Debug for Labels {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_map().entries(self.iter()).finish()
    }
}

impl Serialize for Labels {
    fn serialize<S: Serializer>(&self, serializer: S) -> Result<S::Ok, S::Error> {
        serializer.collect_map(self.iter())
    }
}

impl<'de> Deserialize<'de> for Labels {
    fn deserialize<D: Deserializer<'de>>(deserializer: D) -> Result<Labels, D::Error> {
        BTreeMap::<String, String>::deserialize(deserializer).map(Labels::from)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn labels_look_up_insert_and_write_as_the_map_did() {
        let mut labels: Labels = [
            ("team", "a"),
            ("HAPROXY_0_VHOST", "x.example"),
            ("team", "b"),
        ]
        .into_iter()
        .collect();
        assert_eq!(labels.len(), 2);
        assert_eq!(labels.get("team"), Some("b"), "the last of equal keys wins");
        assert_eq!(labels.get("HAPROXY_0_VHOST"), Some("x.example"));
        assert!(!labels.contains_key("nope"));
        assert_eq!(labels.insert("a", "1"), None);
        assert_eq!(labels.insert("team", "c"), Some("b".to_string()));
        let map: BTreeMap<&str, &str> = labels.iter().collect();
        assert_eq!(
            serde_json::to_string(&labels).unwrap(),
            serde_json::to_string(&map).unwrap(),
            "key order, as a BTreeMap"
        );
        let back: Labels = serde_json::from_str(&serde_json::to_string(&labels).unwrap()).unwrap();
        assert_eq!(back, labels);
        assert_eq!(format!("{labels:?}"), format!("{map:?}"));
    }
}
