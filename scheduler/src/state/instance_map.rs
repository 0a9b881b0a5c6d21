//! [`InstanceMap`]: the instances of one app by uuid, as the published
//! snapshots hold them.
//!
//! Snapshots share structure: a change copies what it touches. A persistent
//! B-tree (`imbl::OrdMap`) does that well for big maps, but its nodes have
//! room for 64 entries, so an app of 10 instances pays about 2 KiB for a
//! node that is mostly empty — 20 MiB at 10,000 such apps, a fifth of the
//! whole state. Small apps therefore keep a sorted shared slice, copied on
//! write (a change copies a few pointers); an app that grows past
//! [`SMALL_LIMIT`] instances moves to the B-tree, where a change copies one
//! path instead of all of them.

use std::sync::Arc;

use imbl::OrdMap;
use uuid::Uuid;

use super::instance::Instance;

/// The most instances kept in a slice.
pub const SMALL_LIMIT: usize = 64;

type Entry = (Uuid, Arc<Instance>);

/// One app's instances by uuid, in uuid order.
#[derive(Clone, PartialEq)]
pub struct InstanceMap {
    repr: Repr,
}

#[derive(Clone, PartialEq)]
enum Repr {
    Small(Arc<[Entry]>),
    Large(OrdMap<Uuid, Arc<Instance>>),
}

impl Default for InstanceMap {
    fn default() -> InstanceMap {
        InstanceMap {
            repr: Repr::Small(Arc::new([])),
        }
    }
}

impl std::fmt::Debug for InstanceMap {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_map().entries(self.iter()).finish()
    }
}

impl InstanceMap {
    /// An empty map.
    pub fn new() -> InstanceMap {
        InstanceMap::default()
    }

    /// The instance with this uuid.
    pub fn get(&self, uuid: &Uuid) -> Option<&Arc<Instance>> {
        match &self.repr {
            Repr::Small(entries) => entries
                .binary_search_by(|(u, _)| u.cmp(uuid))
                .ok()
                .map(|i| &entries[i].1),
            Repr::Large(map) => map.get(uuid),
        }
    }

    /// Whether an instance has this uuid.
    pub fn contains_key(&self, uuid: &Uuid) -> bool {
        self.get(uuid).is_some()
    }

    /// Adds or replaces an instance; the replaced one, if any.
    pub fn insert(&mut self, uuid: Uuid, instance: Arc<Instance>) -> Option<Arc<Instance>> {
        match &mut self.repr {
            Repr::Small(entries) => {
                let mut list: Vec<Entry> = entries.to_vec();
                let replaced = match list.binary_search_by(|(u, _)| u.cmp(&uuid)) {
                    Ok(i) => Some(std::mem::replace(&mut list[i].1, instance)),
                    Err(i) => {
                        list.insert(i, (uuid, instance));
                        None
                    }
                };
                self.repr = if list.len() > SMALL_LIMIT {
                    Repr::Large(list.into_iter().collect())
                } else {
                    Repr::Small(list.into())
                };
                replaced
            }
            Repr::Large(map) => map.insert(uuid, instance),
        }
    }

    /// Removes an instance; it, if it was there.
    pub fn remove(&mut self, uuid: &Uuid) -> Option<Arc<Instance>> {
        match &mut self.repr {
            Repr::Small(entries) => {
                let i = entries.binary_search_by(|(u, _)| u.cmp(uuid)).ok()?;
                let mut list: Vec<Entry> = entries.to_vec();
                let (_, removed) = list.remove(i);
                self.repr = Repr::Small(list.into());
                Some(removed)
            }
            Repr::Large(map) => {
                let removed = map.remove(uuid);
                // Back to a slice well below the limit, so that an app
                // hovering around it does not switch at every change.
                if map.len() <= SMALL_LIMIT / 2 {
                    let list: Vec<Entry> = map.iter().map(|(u, i)| (*u, i.clone())).collect();
                    self.repr = Repr::Small(list.into());
                }
                removed
            }
        }
    }

    /// How many instances.
    pub fn len(&self) -> usize {
        match &self.repr {
            Repr::Small(entries) => entries.len(),
            Repr::Large(map) => map.len(),
        }
    }

    /// Whether there are none.
    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }

    /// Uuids and instances, in uuid order.
    pub fn iter(&self) -> impl DoubleEndedIterator<Item = (&Uuid, &Arc<Instance>)> + '_ {
        let (small, large) = match &self.repr {
            Repr::Small(entries) => (Some(entries.iter().map(|(u, i)| (u, i))), None),
            Repr::Large(map) => (None, Some(map.iter())),
        };
        small
            .into_iter()
            .flatten()
            .chain(large.into_iter().flatten())
    }

    /// The instances, in uuid order.
    pub fn values(&self) -> impl DoubleEndedIterator<Item = &Arc<Instance>> + '_ {
        self.iter().map(|(_, i)| i)
    }

    /// The uuids, in order.
    pub fn keys(&self) -> impl DoubleEndedIterator<Item = &Uuid> + '_ {
        self.iter().map(|(u, _)| u)
    }

    /// Whether two maps are the same value in memory (a cheap "unchanged").
    pub fn ptr_eq(&self, other: &InstanceMap) -> bool {
        match (&self.repr, &other.repr) {
            (Repr::Small(a), Repr::Small(b)) => Arc::ptr_eq(a, b),
            (Repr::Large(a), Repr::Large(b)) => a.ptr_eq(b),
            _ => false,
        }
    }
}

impl FromIterator<(Uuid, Arc<Instance>)> for InstanceMap {
    fn from_iter<I: IntoIterator<Item = (Uuid, Arc<Instance>)>>(items: I) -> InstanceMap {
        let mut list: Vec<Entry> = items.into_iter().collect();
        list.sort_by_key(|(u, _)| *u);
        list.dedup_by_key(|(u, _)| *u);
        if list.len() > SMALL_LIMIT {
            InstanceMap {
                repr: Repr::Large(list.into_iter().collect()),
            }
        } else {
            InstanceMap {
                repr: Repr::Small(list.into()),
            }
        }
    }
}

impl<'a> IntoIterator for &'a InstanceMap {
    type Item = (&'a Uuid, &'a Arc<Instance>);
    type IntoIter = Box<dyn DoubleEndedIterator<Item = Self::Item> + 'a>;
    fn into_iter(self) -> Self::IntoIter {
        Box::new(self.iter())
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::state::app::{PathId, Timestamp};

    fn instance() -> Arc<Instance> {
        let t = Timestamp::from_millis(0);
        Arc::new(Instance::schedule(
            PathId::parse("/a", &PathId::root()).unwrap(),
            t,
            t,
        ))
    }

    /// The same operations on an `InstanceMap` and on a `BTreeMap`, across
    /// the switch between slice and B-tree both ways.
    #[test]
    fn behaves_as_an_ordered_map_on_both_sides_of_the_limit() {
        let mut ours = InstanceMap::new();
        let mut model = std::collections::BTreeMap::new();
        let mut uuids = Vec::new();
        for n in 0..(SMALL_LIMIT * 2) {
            let i = instance();
            uuids.push(i.uuid);
            assert_eq!(
                ours.insert(i.uuid, i.clone()).is_some(),
                model.insert(i.uuid, i).is_some()
            );
            assert_eq!(ours.len(), n + 1);
        }
        assert!(matches!(ours.repr, Repr::Large(_)));
        // Replacing keeps the size and returns the old one.
        let again = instance();
        let old = ours.insert(uuids[3], again.clone());
        assert!(old.is_some());
        model.insert(uuids[3], again);
        for uuid in uuids.iter().take(SMALL_LIMIT * 3 / 2) {
            assert_eq!(
                ours.remove(uuid).map(|i| i.uuid),
                model.remove(uuid).map(|i| i.uuid)
            );
        }
        assert!(matches!(ours.repr, Repr::Small(_)));
        assert_eq!(ours.remove(&uuids[0]), None);
        let ours_keys: Vec<Uuid> = ours.keys().copied().collect();
        let model_keys: Vec<Uuid> = model.keys().copied().collect();
        assert_eq!(ours_keys, model_keys);
        for uuid in &model_keys {
            assert!(Arc::ptr_eq(ours.get(uuid).unwrap(), &model[uuid]));
        }
        let rebuilt: InstanceMap = model.iter().map(|(u, i)| (*u, i.clone())).collect();
        assert_eq!(rebuilt, ours);
    }

    #[test]
    fn a_clone_shares_until_written() {
        let mut a = InstanceMap::new();
        let i = instance();
        a.insert(i.uuid, i);
        let mut b = a.clone();
        assert!(a.ptr_eq(&b));
        let j = instance();
        b.insert(j.uuid, j);
        assert!(!a.ptr_eq(&b));
        assert_eq!(a.len(), 1);
        assert_eq!(b.len(), 2);
    }
}
