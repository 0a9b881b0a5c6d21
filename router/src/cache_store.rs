//! The response cache's memory: stored responses of every cached app,
//! bounded in bytes router-wide (`--cache-max-bytes`) and per app
//! (`BATON_CACHE=<size>`), least recently used first out, with each
//! app's counters. Pure (no I/O; times come in as the router's
//! milliseconds); the rules it applies are [`crate::cache_rules`].
//!
//! - [`Store`]: the data structure. Entries live in one slab, each on
//!   two doubly-linked lists — the router-wide recency order and its
//!   app's — so that either bound evicts in O(1); an app's entries are
//!   found by key (Host and target), then by [`Variant`].
//! - [`ResponseCache`]: the store behind one mutex, shared by every
//!   serving thread. Each call takes the lock once, for a hash lookup
//!   and a few pointer updates (never across an `await`); bodies are
//!   `Bytes`, handed out by reference count.
//! - [`Fill`]: a response's body collected as it streams to its client,
//!   up to the per-entry limit (`--cache-max-entry-bytes`), stored when
//!   it ends whole; past the limit it is dropped and the rest streams
//!   on untouched. A fill whose URL an unsafe request changed while it
//!   was under way is not stored: its response may predate the change
//!   (each invalidation takes the next [`Epoch`]; a miss hands out the
//!   current one, and the fill is stored only if no invalidation of its
//!   URL came after it).
//! - An app's entries are dropped when its version (its last
//!   configuration change, from Marathon) differs from theirs: at once
//!   when a table with the new version is published
//!   ([`ResponseCache::forget`]), and at the next use otherwise; an app
//!   that leaves the table, or stops being cached, loses its entries and
//!   counters.

use std::collections::HashMap;
use std::sync::{Arc, Mutex, MutexGuard, PoisonError};

use bytes::Bytes;
use hyper::StatusCode;
use hyper::header::HeaderMap;
use serde_json::{Value, json};

use crate::cache_rules::{self, Freshness, Lookup, Settings, Variant};

/// Bytes counted per entry besides its body, headers, key and variant:
/// the slab slot, the entry's allocation, the index's share.
pub const ENTRY_OVERHEAD: u64 = 256;

/// Stored variants of one URL at most (say, `Vary: Accept-Language` and
/// a client cycling through values): the least recently used goes.
pub const MAX_VARIANTS: usize = 16;

/// Invalidations so far, router-wide: the order in which a fill and an
/// unsafe request's invalidation of its URL happened.
pub type Epoch = u64;

/// Buckets of an app's latest invalidation epochs, by a hash of the URL:
/// bounded memory for any number of URLs, at the cost of now and then
/// not storing a fill whose URL shares a bucket with one just changed.
const INVALIDATION_BUCKETS: usize = 64;

/// What a route carries for its app's cache: the settings from its
/// labels, and the version its stored responses belong to.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct AppCache {
    /// From the labels.
    pub settings: Settings,
    /// The app's last configuration change (Marathon's
    /// `versionInfo.lastConfigChangeAt`, else its `version`).
    pub version: Arc<str>,
}

/// One stored response.
#[derive(Debug)]
pub struct Entry {
    /// Its status.
    pub status: StatusCode,
    /// Its headers, as [`cache_rules::stored_headers`] keeps them.
    pub headers: HeaderMap,
    /// Its body, whole.
    pub body: Bytes,
    /// How long it stays fresh, and how old it arrived.
    pub freshness: Freshness,
    /// When it arrived (router clock, ms).
    pub stored_at_ms: u64,
    /// Which requests it answers.
    pub variant: Variant,
}

impl Entry {
    /// Bytes it is accounted for under `key`.
    fn size(&self, key: &str) -> u64 {
        let headers: usize = self
            .headers
            .iter()
            .map(|(n, v)| n.as_str().len() + v.len() + 4)
            .sum();
        ENTRY_OVERHEAD + (self.body.len() + headers + key.len() + self.variant.size()) as u64
    }
}

/// An app's cache counters.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct Counters {
    /// Requests answered from the cache.
    pub hits: u64,
    /// Requests for the cache it could not answer (none stored, stale,
    /// too old for the request, or the request asked for a fresh one).
    pub misses: u64,
    /// Requests the cache let pass (not GET or HEAD, private, ranges…).
    pub bypasses: u64,
    /// Responses stored.
    pub stores: u64,
    /// Entries evicted to stay within a bound.
    pub evictions: u64,
    /// Entries dropped because the app changed version or an unsafe
    /// request changed their URL.
    pub invalidations: u64,
    /// Responses not stored because they are larger than an entry may be.
    pub too_large: u64,
}

const NIL: usize = usize::MAX;

/// A node's place in one list.
#[derive(Debug, Clone, Copy)]
struct Links {
    prev: usize,
    next: usize,
}

const UNLINKED: Links = Links {
    prev: NIL,
    next: NIL,
};

/// A list's ends: `head` is the most recently used.
#[derive(Debug, Clone, Copy)]
struct List {
    head: usize,
    tail: usize,
}

const EMPTY: List = List {
    head: NIL,
    tail: NIL,
};

/// Which of a node's two lists.
#[derive(Debug, Clone, Copy)]
enum Order {
    /// Every entry of the router.
    Router,
    /// Its app's entries.
    App,
}

#[derive(Debug)]
struct Node {
    app: Arc<str>,
    key: Arc<str>,
    entry: Arc<Entry>,
    size: u64,
    /// The store's use count when it was last used (to find the least
    /// recently used variant of a URL without walking a list).
    used: u64,
    router: Links,
    app_links: Links,
}

/// One app's entries and counters.
#[derive(Debug)]
struct Partition {
    version: Arc<str>,
    max_bytes: u64,
    bytes: u64,
    entries: usize,
    order: List,
    by_key: HashMap<Arc<str>, Vec<usize>>,
    counters: Counters,
    /// The epoch of the latest invalidation of the URLs in each bucket.
    invalidated: [Epoch; INVALIDATION_BUCKETS],
}

/// The bucket of `key` in [`Partition::invalidated`] (FNV-1a).
fn invalidation_bucket(key: &str) -> usize {
    let hash = key.bytes().fold(0xcbf2_9ce4_8422_2325_u64, |h, b| {
        (h ^ u64::from(b)).wrapping_mul(0x0000_0100_0000_01b3)
    });
    (hash % INVALIDATION_BUCKETS as u64) as usize
}

/// Stored responses of every app, bounded in bytes, least recently used
/// first out.
#[derive(Debug)]
pub struct Store {
    max_bytes: u64,
    bytes: u64,
    slots: Vec<Option<Node>>,
    free: Vec<usize>,
    order: List,
    apps: HashMap<Arc<str>, Partition>,
    /// Inserts and uses so far.
    uses: u64,
    /// Entries evicted so far, all apps (those gone included).
    evictions: u64,
    /// Invalidations so far.
    epoch: Epoch,
}

fn links(slots: &mut [Option<Node>], i: usize, order: Order) -> &mut Links {
    let node = slots[i].as_mut().expect("a linked slot holds a node");
    match order {
        Order::Router => &mut node.router,
        Order::App => &mut node.app_links,
    }
}

fn push_front(slots: &mut [Option<Node>], list: &mut List, i: usize, order: Order) {
    let old = list.head;
    *links(slots, i, order) = Links {
        prev: NIL,
        next: old,
    };
    if old == NIL {
        list.tail = i;
    } else {
        links(slots, old, order).prev = i;
    }
    list.head = i;
}

fn unlink(slots: &mut [Option<Node>], list: &mut List, i: usize, order: Order) {
    let Links { prev, next } = *links(slots, i, order);
    if prev == NIL {
        list.head = next;
    } else {
        links(slots, prev, order).next = next;
    }
    if next == NIL {
        list.tail = prev;
    } else {
        links(slots, next, order).prev = prev;
    }
    *links(slots, i, order) = UNLINKED;
}

impl Store {
    /// An empty store holding at most `max_bytes`.
    pub fn new(max_bytes: u64) -> Store {
        Store {
            max_bytes,
            bytes: 0,
            slots: Vec::new(),
            free: Vec::new(),
            order: EMPTY,
            apps: HashMap::new(),
            uses: 0,
            evictions: 0,
            epoch: 0,
        }
    }

    /// Bytes held (entries as accounted), router-wide.
    pub fn bytes(&self) -> u64 {
        self.bytes
    }

    /// Entries held, router-wide.
    pub fn len(&self) -> usize {
        self.slots.len() - self.free.len()
    }

    /// Whether it holds nothing.
    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }

    /// The bound an app's entries live within.
    fn app_bound(&self, cache: &AppCache) -> u64 {
        cache
            .settings
            .max_bytes
            .map_or(self.max_bytes, |m| m.min(self.max_bytes))
    }

    /// App `app`'s partition, made if new; emptied first when its
    /// version is not `cache`'s, shrunk to a lowered bound.
    fn partition(&mut self, app: &str, cache: &AppCache) -> &mut Partition {
        let bound = self.app_bound(cache);
        let changed = match self.apps.get_mut(app) {
            Some(p) => {
                let changed = p.version != cache.version;
                p.max_bytes = bound;
                changed || p.bytes > bound
            }
            None => {
                self.apps.insert(
                    app.into(),
                    Partition {
                        version: cache.version.clone(),
                        max_bytes: bound,
                        bytes: 0,
                        entries: 0,
                        order: EMPTY,
                        by_key: HashMap::new(),
                        counters: Counters::default(),
                        invalidated: [0; INVALIDATION_BUCKETS],
                    },
                );
                false
            }
        };
        if changed {
            let stale = self.apps[app].version != cache.version;
            if stale {
                let dropped = self.clear(app);
                let p = self.apps.get_mut(app).expect("present");
                p.counters.invalidations += dropped;
                p.version = cache.version.clone();
            }
            while self.apps[app].bytes > bound {
                let tail = self.apps[app].order.tail;
                self.evict(tail);
            }
        }
        self.apps.get_mut(app).expect("present")
    }

    /// Drops every entry of `app`; how many.
    fn clear(&mut self, app: &str) -> u64 {
        let mut dropped = 0;
        while let Some(tail) = self
            .apps
            .get(app)
            .map(|p| p.order.tail)
            .filter(|t| *t != NIL)
        {
            self.remove(tail);
            dropped += 1;
        }
        dropped
    }

    /// Takes entry `i` out of the lists, the index and the counts.
    fn remove(&mut self, i: usize) -> Node {
        let app = self.slots[i].as_ref().expect("occupied").app.clone();
        unlink(&mut self.slots, &mut self.order, i, Order::Router);
        let p = self.apps.get_mut(&*app).expect("an entry's app is present");
        unlink(&mut self.slots, &mut p.order, i, Order::App);
        let node = self.slots[i].take().expect("occupied");
        p.bytes -= node.size;
        p.entries -= 1;
        if let Some(ids) = p.by_key.get_mut(&node.key) {
            ids.retain(|id| *id != i);
            if ids.is_empty() {
                p.by_key.remove(&node.key);
            }
        }
        self.bytes -= node.size;
        self.free.push(i);
        node
    }

    /// Removes entry `i` to make room, counted against its app.
    fn evict(&mut self, i: usize) {
        let node = self.remove(i);
        self.evictions += 1;
        if let Some(p) = self.apps.get_mut(&*node.app) {
            p.counters.evictions += 1;
        }
    }

    /// Marks entry `i` as just used.
    fn touch(&mut self, i: usize) {
        self.uses += 1;
        let node = self.slots[i].as_mut().expect("occupied");
        node.used = self.uses;
        let app = node.app.clone();
        unlink(&mut self.slots, &mut self.order, i, Order::Router);
        push_front(&mut self.slots, &mut self.order, i, Order::Router);
        let p = self.apps.get_mut(&*app).expect("present");
        unlink(&mut self.slots, &mut p.order, i, Order::App);
        push_front(&mut self.slots, &mut p.order, i, Order::App);
    }

    /// The entry of `app` under `key` that `select` picks (the most
    /// recently stored first), with its slot.
    fn find(
        &mut self,
        app: &str,
        cache: &AppCache,
        key: &str,
        select: impl Fn(&Entry) -> bool,
    ) -> Option<(usize, Arc<Entry>)> {
        self.partition(app, cache);
        let ids = self.apps.get(app)?.by_key.get(key)?;
        ids.iter().rev().find_map(|i| {
            let node = self.slots[*i].as_ref()?;
            select(&node.entry).then(|| (*i, node.entry.clone()))
        })
    }

    /// Stores `entry` for `app` under `key`, replacing the same variant,
    /// evicting what the bounds ask; `false` when it is larger than an
    /// entry may be (counted).
    pub fn insert(&mut self, app: &str, cache: &AppCache, key: &str, entry: Entry) -> bool {
        let size = entry.size(key);
        let bound = self.app_bound(cache);
        let p = self.partition(app, cache);
        if size > bound {
            p.counters.too_large += 1;
            return false;
        }
        let same: Vec<usize> = p.by_key.get(key).cloned().unwrap_or_default();
        for i in same {
            let replaced = self.slots[i]
                .as_ref()
                .is_some_and(|n| n.entry.variant == entry.variant);
            if replaced {
                self.remove(i);
            }
        }
        if let Some(ids) = self.apps[app].by_key.get(key)
            && ids.len() >= MAX_VARIANTS
        {
            let oldest = ids
                .iter()
                .copied()
                .min_by_key(|i| self.slots[*i].as_ref().map_or(0, |n| n.used))
                .expect("not empty");
            self.evict(oldest);
        }
        while self.apps[app].bytes + size > bound {
            let tail = self.apps[app].order.tail;
            self.evict(tail);
        }
        while self.bytes + size > self.max_bytes {
            let tail = self.order.tail;
            self.evict(tail);
        }
        let app: Arc<str> = self.apps.get_key_value(app).expect("present").0.clone();
        let p = self.apps.get_mut(&app).expect("present");
        let key: Arc<str> = p
            .by_key
            .get_key_value(key)
            .map_or_else(|| key.into(), |(k, _)| k.clone());
        let node = Node {
            app: app.clone(),
            key: key.clone(),
            entry: Arc::new(entry),
            size,
            used: self.uses + 1,
            router: UNLINKED,
            app_links: UNLINKED,
        };
        let i = match self.free.pop() {
            Some(i) => {
                self.slots[i] = Some(node);
                i
            }
            None => {
                self.slots.push(Some(node));
                self.slots.len() - 1
            }
        };
        push_front(&mut self.slots, &mut self.order, i, Order::Router);
        push_front(&mut self.slots, &mut p.order, i, Order::App);
        p.by_key.entry(key).or_default().push(i);
        p.bytes += size;
        p.entries += 1;
        p.counters.stores += 1;
        self.bytes += size;
        self.uses += 1;
        true
    }

    /// The current epoch: a fill that starts now is stored only if no
    /// invalidation of its URL comes after it ([`Store::insert_since`]).
    pub fn epoch(&self) -> Epoch {
        self.epoch
    }

    /// Stores `entry` as [`Store::insert`] does, unless an invalidation
    /// of `key` came after epoch `since` (when its request was sent):
    /// its response may then be older than the change. `false` if not
    /// stored.
    pub fn insert_since(
        &mut self,
        app: &str,
        cache: &AppCache,
        key: &str,
        entry: Entry,
        since: Epoch,
    ) -> bool {
        // A fill begun under another version of the app (its table
        // changed meanwhile; a rollback takes a version back) is not
        // stored, nor does it take the app's entries to its version: the
        // lookups and the table keep the partition at the current one.
        if self
            .apps
            .get(app)
            .is_some_and(|p| p.version != cache.version)
        {
            return false;
        }
        let p = self.partition(app, cache);
        if p.invalidated[invalidation_bucket(key)] > since {
            return false;
        }
        self.insert(app, cache, key, entry)
    }

    /// Drops every stored variant of `key`; how many. Fills under way
    /// for it are not stored ([`Store::insert_since`]).
    pub fn invalidate(&mut self, app: &str, cache: &AppCache, key: &str) -> u64 {
        self.epoch += 1;
        let epoch = self.epoch;
        let p = self.partition(app, cache);
        p.invalidated[invalidation_bucket(key)] = epoch;
        let ids = p.by_key.get(key).cloned().unwrap_or_default();
        let dropped = ids.len() as u64;
        for i in ids {
            self.remove(i);
        }
        if let Some(p) = self.apps.get_mut(app) {
            p.counters.invalidations += dropped;
        }
        dropped
    }

    /// Keeps only the apps of `current` (id → cache), emptying those
    /// whose version changed and dropping the others whole.
    pub fn retain(&mut self, current: &HashMap<&str, &AppCache>) {
        let apps: Vec<Arc<str>> = self.apps.keys().cloned().collect();
        for app in apps {
            match current.get(&*app) {
                Some(cache) => {
                    self.partition(&app, cache);
                }
                None => {
                    self.clear(&app);
                    self.apps.remove(&app);
                }
            }
        }
    }

    /// An app's counters (made if new).
    fn counters(&mut self, app: &str, cache: &AppCache) -> &mut Counters {
        &mut self.partition(app, cache).counters
    }

    /// The counters and sizes as they are now.
    pub fn snapshot(&self) -> Snapshot {
        Snapshot {
            max_bytes: self.max_bytes,
            max_entry_bytes: 0,
            bytes: self.bytes,
            entries: self.len(),
            evictions: self.evictions,
            apps: self
                .apps
                .iter()
                .map(|(app, p)| {
                    let shown = AppSnapshot {
                        counters: p.counters,
                        bytes: p.bytes,
                        entries: p.entries,
                        max_bytes: p.max_bytes,
                    };
                    (app.to_string(), shown)
                })
                .collect(),
        }
    }
}

/// The cache's sizes and counters at one moment.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Snapshot {
    /// The router-wide bound.
    pub max_bytes: u64,
    /// The largest body an entry may have.
    pub max_entry_bytes: u64,
    /// Bytes held.
    pub bytes: u64,
    /// Entries held.
    pub entries: usize,
    /// Entries evicted so far, all apps.
    pub evictions: u64,
    /// Per app.
    pub apps: HashMap<String, AppSnapshot>,
}

impl Snapshot {
    /// The router-wide figures as `/_router/stats` shows them (`cache`).
    pub fn to_json(&self) -> Value {
        json!({
            "maxBytes": self.max_bytes,
            "maxEntryBytes": self.max_entry_bytes,
            "bytes": self.bytes,
            "entries": self.entries,
            "evictions": self.evictions,
        })
    }
}

/// One app's part of a [`Snapshot`].
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct AppSnapshot {
    /// Its counters.
    pub counters: Counters,
    /// Bytes it holds.
    pub bytes: u64,
    /// Entries it holds.
    pub entries: usize,
    /// Its bound.
    pub max_bytes: u64,
}

impl AppSnapshot {
    /// As `/_router/stats` shows it.
    pub fn to_json(&self) -> Value {
        let c = &self.counters;
        json!({
            "hits": c.hits,
            "misses": c.misses,
            "bypasses": c.bypasses,
            "stores": c.stores,
            "evictions": c.evictions,
            "invalidations": c.invalidations,
            "tooLarge": c.too_large,
            "bytes": self.bytes,
            "entries": self.entries,
            "maxBytes": self.max_bytes,
        })
    }
}

/// What a lookup found.
#[derive(Debug)]
pub enum Found {
    /// A stored response fit to answer, and its current age in seconds.
    Fresh(Arc<Entry>, u64),
    /// Nothing usable; a response to be stored instead is stored at
    /// this epoch ([`Fill::new`]).
    Miss(Epoch),
}

/// The store shared by every serving thread, and the per-entry limit.
#[derive(Debug)]
pub struct ResponseCache {
    store: Mutex<Store>,
    /// The store's bound, kept outside the lock too.
    max_bytes: u64,
    max_entry_bytes: u64,
}

impl ResponseCache {
    /// An empty cache of at most `max_bytes`, whose entries' bodies are
    /// at most `max_entry_bytes`.
    pub fn new(max_bytes: u64, max_entry_bytes: u64) -> ResponseCache {
        ResponseCache {
            store: Mutex::new(Store::new(max_bytes)),
            max_bytes,
            max_entry_bytes,
        }
    }

    fn store(&self) -> MutexGuard<'_, Store> {
        self.store.lock().unwrap_or_else(PoisonError::into_inner)
    }

    /// The largest body an entry of an app with `cache` may have.
    pub fn entry_limit(&self, cache: &AppCache) -> u64 {
        let app_bound = cache.settings.max_bytes.unwrap_or(self.max_bytes);
        self.max_entry_bytes.min(app_bound).min(self.max_bytes)
    }

    /// The stored response of `app` under `key` that `selects` (the
    /// variant a request asks for: [`Variant::matches`]), if it may
    /// answer per `lookup` at `now_ms`. Counts a hit or a miss; a stale
    /// entry found is dropped.
    pub fn lookup(
        &self,
        app: &str,
        cache: &AppCache,
        key: &str,
        selects: impl Fn(&Entry) -> bool,
        lookup: &Lookup,
        now_ms: u64,
    ) -> Found {
        let mut store = self.store();
        let found = match lookup.serve {
            true => store.find(app, cache, key, selects),
            false => None,
        };
        let answer = match found {
            Some((i, entry)) => {
                let age = cache_rules::current_age(&entry.freshness, entry.stored_at_ms, now_ms);
                if cache_rules::usable(lookup, &entry.freshness, age) {
                    store.touch(i);
                    Found::Fresh(entry, age)
                } else {
                    if age >= entry.freshness.lifetime_secs {
                        // Stale, and never served stale: free it now.
                        store.remove(i);
                    }
                    Found::Miss(store.epoch())
                }
            }
            None => Found::Miss(store.epoch()),
        };
        let counters = store.counters(app, cache);
        match answer {
            Found::Fresh(..) => counters.hits += 1,
            Found::Miss(_) => counters.misses += 1,
        }
        answer
    }

    /// Counts a request the cache let pass.
    pub fn bypassed(&self, app: &str, cache: &AppCache) {
        self.store().counters(app, cache).bypasses += 1;
    }

    /// Drops the stored responses of `app` under `key` (an unsafe
    /// request to it succeeded).
    pub fn invalidate(&self, app: &str, cache: &AppCache, key: &str) {
        self.store().invalidate(app, cache, key);
    }

    /// Stores `entry`, a response to a request sent at epoch `since`;
    /// `false` when it is too large or its URL was invalidated since.
    pub fn insert(
        &self,
        app: &str,
        cache: &AppCache,
        key: &str,
        entry: Entry,
        since: Epoch,
    ) -> bool {
        self.store().insert_since(app, cache, key, entry, since)
    }

    /// Counts a response not stored because its body is too large.
    pub fn too_large(&self, app: &str, cache: &AppCache) {
        self.store().counters(app, cache).too_large += 1;
    }

    /// Keeps the entries of the apps in `current` (id → cache) whose
    /// version is unchanged; drops the rest (a new table was published).
    pub fn forget(&self, current: &HashMap<&str, &AppCache>) {
        self.store().retain(current);
    }

    /// The sizes and counters now.
    pub fn snapshot(&self) -> Snapshot {
        Snapshot {
            max_entry_bytes: self.max_entry_bytes,
            ..self.store().snapshot()
        }
    }
}

/// A response's body collected on its way to the client, stored whole
/// when it ends ([`Fill::end`]); dropped unstored if it grows past its
/// limit, fails, or its client leaves.
#[derive(Debug)]
pub struct Fill {
    cache: Arc<ResponseCache>,
    app: String,
    app_cache: AppCache,
    key: String,
    /// The entry, its body still empty; taken when stored.
    entry: Option<Entry>,
    body: Vec<u8>,
    limit: u64,
    /// The epoch its request was looked up at.
    since: Epoch,
}

impl Fill {
    /// Collects the body of `entry` (status, headers, freshness, variant
    /// set, body empty) for `app` under `key`, whose lookup missed at
    /// epoch `since`; `None` (counted) when `length`, the body's
    /// announced length, is already too large.
    pub fn new(
        cache: Arc<ResponseCache>,
        app: &str,
        app_cache: &AppCache,
        key: String,
        entry: Entry,
        length: Option<u64>,
        since: Epoch,
    ) -> Option<Fill> {
        let limit = cache.entry_limit(app_cache);
        if length.is_some_and(|n| n > limit) {
            cache.too_large(app, app_cache);
            return None;
        }
        Some(Fill {
            body: Vec::with_capacity(length.unwrap_or(0) as usize),
            cache,
            app: app.to_string(),
            app_cache: app_cache.clone(),
            key,
            entry: Some(entry),
            limit,
            since,
        })
    }

    /// The next part of the body. Past the limit, the body collected so
    /// far is let go and nothing more is kept.
    pub fn data(&mut self, data: &[u8]) {
        if self.entry.is_none() {
            return;
        }
        if (self.body.len() + data.len()) as u64 > self.limit {
            self.entry = None;
            self.body = Vec::new();
            self.cache.too_large(&self.app, &self.app_cache);
            return;
        }
        self.body.extend_from_slice(data);
    }

    /// The body ended whole: stores the entry.
    pub fn end(&mut self) {
        if let Some(mut entry) = self.entry.take() {
            entry.body = Bytes::from(std::mem::take(&mut self.body));
            self.cache
                .insert(&self.app, &self.app_cache, &self.key, entry, self.since);
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use hyper::header::{self, HeaderValue};

    fn cache(version: &str, max_bytes: Option<u64>) -> AppCache {
        AppCache {
            settings: Settings {
                max_bytes,
                max_ttl_secs: None,
                private: false,
            },
            version: version.into(),
        }
    }

    fn entry(body_len: usize, variant: Variant) -> Entry {
        Entry {
            status: StatusCode::OK,
            headers: HeaderMap::new(),
            body: Bytes::from(vec![b'x'; body_len]),
            freshness: Freshness {
                lifetime_secs: 60,
                initial_age_secs: 0,
            },
            stored_at_ms: 0,
            variant,
        }
    }

    fn plain() -> Variant {
        Variant::of(false, &[], &HeaderMap::new())
    }

    /// An entry of exactly `size` accounted bytes under a key of `key_len`.
    fn sized(size: u64, key: &str) -> Entry {
        entry((size - ENTRY_OVERHEAD) as usize - key.len(), plain())
    }

    fn keys(store: &mut Store, app: &str, cache: &AppCache, keys: &[&str]) -> Vec<bool> {
        keys.iter()
            .map(|k| store.find(app, cache, k, |_| true).is_some())
            .collect()
    }

    fn check_lists(store: &Store) {
        // Both orders hold every entry once, and sizes add up.
        let mut count = 0;
        let mut at = store.order.head;
        while at != NIL {
            count += 1;
            at = store.slots[at].as_ref().unwrap().router.next;
        }
        assert_eq!(count, store.len());
        let mut total = 0;
        for p in store.apps.values() {
            let mut n = 0;
            let mut at = p.order.head;
            while at != NIL {
                n += 1;
                at = store.slots[at].as_ref().unwrap().app_links.next;
            }
            assert_eq!(n, p.entries);
            total += p.bytes;
        }
        assert_eq!(total, store.bytes);
    }

    #[test]
    fn the_least_recently_used_goes_first_when_the_router_bound_is_reached() {
        let mut store = Store::new(3000);
        let c = cache("v1", None);
        for key in ["/a", "/b", "/c"] {
            assert!(store.insert("/web", &c, key, sized(1000, key)));
        }
        assert_eq!(store.bytes(), 3000);
        // /a used: /b is now the least recent.
        let (a, _) = store.find("/web", &c, "/a", |_| true).unwrap();
        store.touch(a);
        assert!(store.insert("/web", &c, "/d", sized(1000, "/d")));
        assert_eq!(
            keys(&mut store, "/web", &c, &["/a", "/b", "/c", "/d"]),
            [true, false, true, true]
        );
        assert_eq!(store.bytes(), 3000);
        assert_eq!(store.snapshot().apps["/web"].counters.evictions, 1);
        check_lists(&store);
    }

    #[test]
    fn an_apps_bound_evicts_only_its_own_entries() {
        let mut store = Store::new(10_000);
        let (small, big) = (cache("v", Some(2000)), cache("v", None));
        store.insert("/big", &big, "/x", sized(1000, "/x"));
        for key in ["/1", "/2", "/3"] {
            store.insert("/small", &small, key, sized(1000, key));
        }
        let snapshot = store.snapshot();
        assert_eq!(snapshot.apps["/small"].bytes, 2000);
        assert_eq!(snapshot.apps["/small"].counters.evictions, 1);
        assert_eq!(snapshot.apps["/big"].entries, 1, "untouched");
        assert_eq!(
            keys(&mut store, "/small", &small, &["/1", "/2", "/3"]),
            [false, true, true]
        );
        // An app's bound never passes the router's.
        assert_eq!(Store::new(500).app_bound(&cache("v", Some(9000))), 500);
        check_lists(&store);
    }

    #[test]
    fn a_flood_of_urls_stays_within_the_bounds() {
        let mut store = Store::new(50_000);
        let (a, b) = (cache("v", Some(20_000)), cache("v", None));
        for n in 0..2000 {
            let key = format!("/page/{n}");
            let (app, c) = if n % 3 == 0 { ("/a", &a) } else { ("/b", &b) };
            store.insert(app, c, &key, entry(n % 700, plain()));
            assert!(store.bytes() <= 50_000);
            assert!(
                store
                    .snapshot()
                    .apps
                    .get("/a")
                    .is_none_or(|s| s.bytes <= 20_000)
            );
        }
        let s = store.snapshot();
        assert!(s.apps["/a"].counters.evictions > 0 && s.apps["/b"].counters.evictions > 0);
        assert_eq!(s.entries, s.apps["/a"].entries + s.apps["/b"].entries);
        check_lists(&store);
    }

    #[test]
    fn entries_larger_than_a_bound_are_refused() {
        let mut store = Store::new(1000);
        let c = cache("v", None);
        assert!(!store.insert("/web", &c, "/huge", sized(1001, "/huge")));
        assert!(store.is_empty());
        assert_eq!(store.snapshot().apps["/web"].counters.too_large, 1);
        let capped = cache("v", Some(600));
        assert!(!store.insert("/web", &capped, "/k", sized(700, "/k")));
        assert!(store.insert("/web", &capped, "/k", sized(600, "/k")));
    }

    #[test]
    fn variants_of_one_url_are_kept_apart_and_replaced_in_place() {
        let mut store = Store::new(100_000);
        let c = cache("v", None);
        let names = [header::ACCEPT_ENCODING];
        let mut gzip_request = HeaderMap::new();
        gzip_request.insert(header::ACCEPT_ENCODING, HeaderValue::from_static("gzip"));
        let gzip = Variant::of(false, &names, &gzip_request);
        let identity = Variant::of(false, &names, &HeaderMap::new());
        store.insert("/web", &c, "/", entry(10, gzip.clone()));
        store.insert("/web", &c, "/", entry(20, identity));
        store.insert("/web", &c, "/", entry(30, gzip));
        assert_eq!(store.len(), 2, "the gzip variant was replaced");
        let found = |store: &mut Store, headers: &HeaderMap| {
            store
                .find("/web", &c, "/", |e| e.variant.matches(false, headers))
                .map(|(_, e)| e.body.len())
        };
        assert_eq!(found(&mut store, &gzip_request), Some(30));
        assert_eq!(found(&mut store, &HeaderMap::new()), Some(20));
        let mut br = HeaderMap::new();
        br.insert(header::ACCEPT_ENCODING, HeaderValue::from_static("br"));
        assert_eq!(found(&mut store, &br), None);
        check_lists(&store);
    }

    #[test]
    fn variants_per_url_are_capped() {
        let mut store = Store::new(1 << 20);
        let c = cache("v", None);
        let names = [header::ACCEPT_LANGUAGE];
        for n in 0..MAX_VARIANTS + 4 {
            let mut h = HeaderMap::new();
            h.insert(header::ACCEPT_LANGUAGE, HeaderValue::from(n));
            store.insert("/web", &c, "/", entry(1, Variant::of(false, &names, &h)));
        }
        assert_eq!(store.len(), MAX_VARIANTS);
        assert_eq!(store.snapshot().apps["/web"].counters.evictions, 4);
        check_lists(&store);
    }

    #[test]
    fn a_new_version_drops_the_apps_entries() {
        let mut store = Store::new(100_000);
        let (v1, v2) = (cache("v1", None), cache("v2", None));
        store.insert("/web", &v1, "/a", entry(10, plain()));
        store.insert("/web", &v1, "/b", entry(10, plain()));
        store.insert("/api", &v1, "/a", entry(10, plain()));
        // Seen at the next use...
        assert!(store.find("/web", &v2, "/a", |_| true).is_none());
        assert_eq!(store.snapshot().apps["/web"].entries, 0);
        assert_eq!(store.snapshot().apps["/web"].counters.invalidations, 2);
        // ...or when a table is published: other apps keep theirs, apps
        // gone lose everything.
        store.insert("/web", &v2, "/a", entry(10, plain()));
        let current: HashMap<&str, &AppCache> = [("/web", &v2)].into();
        store.retain(&current);
        assert_eq!(store.len(), 1);
        assert!(!store.snapshot().apps.contains_key("/api"));
        let current: HashMap<&str, &AppCache> = [("/web", &v1)].into();
        store.retain(&current);
        assert!(store.is_empty());
        check_lists(&store);
    }

    #[test]
    fn invalidating_a_url_drops_all_its_variants() {
        let mut store = Store::new(100_000);
        let c = cache("v", None);
        store.insert("/web", &c, "/a", entry(1, plain()));
        store.insert(
            "/web",
            &c,
            "/a",
            entry(1, Variant::of(true, &[], &HeaderMap::new())),
        );
        store.insert("/web", &c, "/b", entry(1, plain()));
        assert_eq!(store.invalidate("/web", &c, "/a"), 2);
        assert_eq!(keys(&mut store, "/web", &c, &["/a", "/b"]), [false, true]);
        check_lists(&store);
    }

    #[test]
    fn lookups_count_hits_and_misses_and_free_stale_entries() {
        let shared = ResponseCache::new(100_000, 1000);
        let c = cache("v", None);
        let lookup = Lookup {
            serve: true,
            max_age: None,
            min_fresh: None,
            store: true,
            only_if_cached: false,
        };
        let get =
            |now_ms: u64, lookup: &Lookup| shared.lookup("/web", &c, "/", |_| true, lookup, now_ms);
        assert!(matches!(get(0, &lookup), Found::Miss(0)));
        shared.insert("/web", &c, "/", entry(5, plain()), 0);
        assert!(matches!(get(30_500, &lookup), Found::Fresh(_, 30)));
        let no_cache = Lookup {
            serve: false,
            ..lookup
        };
        assert!(matches!(get(1_000, &no_cache), Found::Miss(_)));
        // Stale at 60 s: a miss, and gone.
        assert!(matches!(get(60_000, &lookup), Found::Miss(_)));
        let s = shared.snapshot();
        assert_eq!(
            (s.apps["/web"].counters.hits, s.apps["/web"].counters.misses),
            (1, 3)
        );
        assert_eq!(s.entries, 0);
    }

    #[test]
    fn a_fill_is_not_stored_when_its_url_was_invalidated_while_it_was_under_way() {
        let mut store = Store::new(100_000);
        let c = cache("v", None);
        let before = store.epoch();
        store.invalidate("/web", &c, "/changed");
        // Sent before the change: its response may be the old one.
        assert!(!store.insert_since("/web", &c, "/changed", entry(5, plain()), before));
        // Another URL's fill is not held back by it (different buckets).
        assert_ne!(
            invalidation_bucket("/changed"),
            invalidation_bucket("/other")
        );
        assert!(store.insert_since("/web", &c, "/other", entry(5, plain()), before));
        // Sent after the change: stored.
        let after = store.epoch();
        assert!(store.insert_since("/web", &c, "/changed", entry(5, plain()), after));
        assert_eq!(store.len(), 2);
    }

    #[test]
    fn a_fill_begun_under_another_version_leaves_the_current_entries_be() {
        let mut store = Store::new(100_000);
        let old = cache("2026-01-01T00:00:00.000Z", None);
        let new = cache("2026-01-02T00:00:00.000Z", None);
        assert!(store.insert_since("/web", &new, "/a", entry(5, plain()), 0));
        assert!(!store.insert_since("/web", &old, "/b", entry(5, plain()), 0));
        assert_eq!(store.len(), 1);
        let found = store.find("/web", &new, "/a", |_| true);
        assert!(found.is_some(), "the newer version's entry is kept");
    }

    #[test]
    fn a_fill_stores_a_whole_body_and_lets_a_too_large_one_go() {
        let shared = Arc::new(ResponseCache::new(100_000, 10));
        let c = cache("v", None);
        let fill = |key: &str, length| {
            Fill::new(
                shared.clone(),
                "/web",
                &c,
                key.into(),
                entry(0, plain()),
                length,
                0,
            )
        };
        let mut small = fill("/small", None).unwrap();
        small.data(b"hello");
        small.data(b"12345");
        small.end();
        let mut big = fill("/big", None).unwrap();
        big.data(b"hello");
        big.data(b"123456");
        big.end();
        assert!(fill("/announced", Some(11)).is_none());
        // A body that never ended is not stored.
        let mut cut = fill("/cut", None).unwrap();
        cut.data(b"he");
        drop(cut);
        let s = shared.snapshot();
        assert_eq!(s.entries, 1);
        assert_eq!(s.apps["/web"].counters.too_large, 2);
        let lookup = Lookup {
            serve: true,
            max_age: None,
            min_fresh: None,
            store: true,
            only_if_cached: false,
        };
        let Found::Fresh(entry, _) = shared.lookup("/web", &c, "/small", |_| true, &lookup, 0)
        else {
            panic!("stored");
        };
        assert_eq!(&entry.body[..], b"hello12345");
    }
}
