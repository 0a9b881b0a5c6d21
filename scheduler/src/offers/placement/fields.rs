//! Constraint fields of one batch of offers, their values interned so
//! that the engine's checks are array lookups instead of string compares.

use std::collections::HashMap;

/// `hostname` is an alias of `@hostname` (as in `field_value`).
pub(super) fn canonical(field: &str) -> &str {
    if field == "hostname" {
        "@hostname"
    } else {
        field
    }
}

/// No value: the offer lacks the field.
pub(super) const NO_VALUE: u32 = u32::MAX;
/// One constraint field, its values interned so that checks are array
/// lookups instead of string compares.
pub(super) struct Field {
    pub(super) name: String,
    pub(super) ids: HashMap<String, u32>,
    pub(super) values: Vec<String>,
    /// Per offer: its value, or [`NO_VALUE`].
    pub(super) of_offer: Vec<u32>,
    /// Per value: offers of the batch with it that can still take an
    /// instance (below the per-offer limit).
    pub(super) live_offers: Vec<u32>,
    /// How many values have live offers.
    pub(super) live_values: u32,
    /// Known values no offer of the batch has.
    pub(super) known_absent: Vec<u32>,
    /// Per value, for the demand being placed: its instances.
    pub(super) counts: Vec<u32>,
    /// Per value, for the demand being placed: live offers found unusable.
    pub(super) dead: Vec<u32>,
}

impl Field {
    pub(super) fn new(name: String, offers: usize) -> Field {
        Field {
            name,
            ids: HashMap::new(),
            values: Vec::new(),
            of_offer: vec![NO_VALUE; offers],
            live_offers: Vec::new(),
            live_values: 0,
            known_absent: Vec::new(),
            counts: Vec::new(),
            dead: Vec::new(),
        }
    }

    pub(super) fn intern(&mut self, value: &str) -> u32 {
        if let Some(&id) = self.ids.get(value) {
            return id;
        }
        let id = self.values.len() as u32;
        self.ids.insert(value.to_string(), id);
        self.values.push(value.to_string());
        id
    }
}
