//! Rendered list bodies kept for as long as what they show is unchanged,
//! so that a hundred clients polling `GET /v2/apps` (marathon-lb, Traefik,
//! dashboards) cost one rendering per change, not one per request.
//!
//! A body is kept under its key (for the API, a
//! [`ListKey`](super::lists::ListKey): the endpoint and its normalised
//! query) and its [`Audience`] (everyone, or one restricted caller whose
//! view the ACL filters), together with the parts of the snapshot it was
//! rendered from: the persistent maps it reads (see [`Reads`]), held by
//! clone. It stays valid while the published snapshot still has those
//! very maps (`OrdMap::ptr_eq`): a new snapshot that changed only what the
//! body does not show (offer counters, load reports, another map) keeps
//! it. Holding the maps also keeps them from being changed in place, so
//! equal roots mean equal contents.
//!
//! Bodies whose rendering read the clock (task life times, launch delays)
//! are never kept. Bodies larger than [`CacheLimits::max_entry_bytes`] are
//! streamed instead; the key is remembered as large, so the next
//! snapshot's body for it is streamed at once too (and kept if it turned
//! out to fit). The whole cache holds at most [`CacheLimits::max_entries`]
//! bodies and [`CacheLimits::max_bytes`] (rendered and gzipped bytes), the
//! least recently used going first; stale entries are dropped as soon as
//! a new snapshot is published ([`ResponseCache::follow`]), so the cache
//! keeps no old maps alive.
//!
//! Concurrent requests for a body that is not there yet wait for one
//! rendering (a [`tokio::sync::OnceCell`] per entry).

use std::sync::{Arc, Mutex};

use bytes::Bytes;
use imbl::OrdMap;
use tokio::sync::OnceCell;

use super::encoding::Coding;
use super::render::Reads;
use crate::auth::Caller;
use crate::reconcile::View;

/// How much the cache may hold.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct CacheLimits {
    /// Bodies kept at once (each endpoint, query and audience is one).
    pub max_entries: usize,
    /// Bytes kept at once, rendered and gzipped bodies together.
    pub max_bytes: usize,
    /// The largest body kept; larger ones are streamed.
    pub max_entry_bytes: usize,
}

impl CacheLimits {
    /// 64 bodies, 64 MiB, 16 MiB each: `GET /v2/apps` for 10,000 apps
    /// (about 11 MB) fits; 10,000 apps with 10 tasks each (49 MB) is
    /// streamed.
    pub const DEFAULT: CacheLimits = CacheLimits {
        max_entries: 64,
        max_bytes: 64 * 1024 * 1024,
        max_entry_bytes: 16 * 1024 * 1024,
    };

    /// Nothing kept: every list is rendered for its request.
    pub fn disabled() -> CacheLimits {
        CacheLimits {
            max_entries: 0,
            max_bytes: 0,
            max_entry_bytes: 0,
        }
    }

    fn enabled(&self) -> bool {
        self.max_entries > 0 && self.max_bytes > 0 && self.max_entry_bytes > 0
    }
}

impl Default for CacheLimits {
    fn default() -> CacheLimits {
        CacheLimits::DEFAULT
    }
}

/// Who a body was rendered for.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Audience {
    /// Callers who see everything (no ACL, or one that lets them): they
    /// all share one body.
    Everyone,
    /// A caller whose view the ACL filters: the body is theirs (the same
    /// user with the same permissions shares it).
    Only(Caller),
}

impl Audience {
    /// The audience `caller` belongs to.
    pub fn of(caller: &Caller) -> Audience {
        if caller.is_unrestricted() {
            Audience::Everyone
        } else {
            Audience::Only(caller.clone())
        }
    }
}

/// The maps of a snapshot that a body was rendered from, by clone: O(1)
/// each, sharing every node with the snapshot. Only those in `reads` are
/// taken (the others are left empty in `maps`) and compared.
#[derive(Debug, Clone, Default)]
pub(crate) struct Parts {
    reads: Reads,
    maps: View,
}

/// Whether `kept` (if read) is still the map `current` is.
fn same<K, V>(read: bool, kept: &OrdMap<K, V>, current: &OrdMap<K, V>) -> bool {
    !read || kept.ptr_eq(current)
}

/// `map` if it is read.
fn part<K: Clone, V: Clone>(read: bool, map: &OrdMap<K, V>) -> OrdMap<K, V> {
    if read { map.clone() } else { OrdMap::new() }
}

impl Parts {
    /// What of `view` a body that `reads` depends on.
    pub(crate) fn of(view: &View, reads: Reads) -> Parts {
        Parts {
            reads,
            maps: View {
                apps: part(reads.apps, &view.apps),
                versions: part(reads.versions, &view.versions),
                instances: part(reads.instances, &view.instances),
                deployments: part(reads.deployments, &view.deployments),
                health: part(reads.health, &view.health),
                readiness: part(reads.readiness, &view.readiness),
                last_failures: part(reads.last_failures, &view.last_failures),
                delays: part(reads.delays, &view.delays),
                offer_stats: part(reads.offer_stats, &view.offer_stats),
                ..View::default()
            },
        }
    }

    /// Whether `view` still has every map these were taken from.
    pub(crate) fn still_in(&self, view: &View) -> bool {
        let (r, m) = (&self.reads, &self.maps);
        same(r.apps, &m.apps, &view.apps)
            && same(r.versions, &m.versions, &view.versions)
            && same(r.instances, &m.instances, &view.instances)
            && same(r.deployments, &m.deployments, &view.deployments)
            && same(r.health, &m.health, &view.health)
            && same(r.readiness, &m.readiness, &view.readiness)
            && same(r.last_failures, &m.last_failures, &view.last_failures)
            && same(r.delays, &m.delays, &view.delays)
            && same(r.offer_stats, &m.offer_stats, &view.offer_stats)
    }
}

/// A rendered body, shared by every request that is answered with it.
#[derive(Debug)]
pub struct CachedBody {
    identity: Bytes,
    /// Hex of the first 128 bits of the body's SHA-256: the entity tags'
    /// common part. A content digest, so that the same bytes rendered
    /// from a later snapshot keep their tag (and clients their 304s).
    digest: String,
    /// The entity tags of the two representations, made once.
    etags: [axum::http::HeaderValue; 2],
    /// The gzipped body, made by the first request that asks for it.
    gzip: OnceCell<Bytes>,
}

impl CachedBody {
    /// `identity` with its digest.
    pub fn new(identity: Bytes) -> CachedBody {
        let sum = ring::digest::digest(&ring::digest::SHA256, &identity);
        let digest: String = sum.as_ref()[..16]
            .iter()
            .map(|b| format!("{b:02x}"))
            .collect();
        let etag = |coding| {
            axum::http::HeaderValue::from_str(&super::encoding::etag(&digest, coding))
                .expect("hex digits and quotes make a header value")
        };
        CachedBody {
            identity,
            etags: [etag(Coding::Identity), etag(Coding::Gzip)],
            digest,
            gzip: OnceCell::new(),
        }
    }

    /// The entity tag of the representation in `coding`.
    pub fn etag(&self, coding: Coding) -> &axum::http::HeaderValue {
        match coding {
            Coding::Identity => &self.etags[0],
            Coding::Gzip => &self.etags[1],
        }
    }

    /// The body as rendered.
    pub fn identity(&self) -> &Bytes {
        &self.identity
    }

    /// The digest the entity tags are made of.
    pub fn digest(&self) -> &str {
        &self.digest
    }

    /// The gzipped body if it was made.
    pub fn gzip_ready(&self) -> Option<&Bytes> {
        self.gzip.get()
    }

    /// The gzipped body, compressed once (off the runtime's threads) by
    /// whichever request needs it first; the others wait for it.
    pub async fn gzip(&self) -> Bytes {
        self.gzip
            .get_or_init(|| async {
                let identity = self.identity.clone();
                tokio::task::spawn_blocking(move || Bytes::from(gzip(&identity, 6)))
                    .await
                    .unwrap_or_else(|e| panic!("gzipping a body panicked: {e}"))
            })
            .await
            .clone()
    }

    fn bytes(&self) -> usize {
        self.identity.len() + self.gzip.get().map_or(0, Bytes::len)
    }
}

/// `data` gzipped at `level` (0–9).
pub fn gzip(data: &[u8], level: u32) -> Vec<u8> {
    use std::io::Write;
    let mut encoder = flate2::write::GzEncoder::new(
        Vec::with_capacity(data.len() / 8 + 64),
        flate2::Compression::new(level),
    );
    // Writing to a Vec cannot fail.
    let _ = encoder.write_all(data);
    encoder.finish().unwrap_or_default()
}

/// What became of an entry's rendering.
#[derive(Debug)]
pub(crate) enum Fill {
    /// The body, to be served to every request for the entry.
    Ready(Arc<CachedBody>),
    /// Not kept (it showed the time, was too large, or failed): requests
    /// for the entry render their own until the next snapshot.
    Uncacheable,
}

/// One kept body (or one being rendered).
struct Slot<K> {
    key: K,
    audience: Audience,
    parts: Parts,
    fill: Arc<OnceCell<Fill>>,
    /// When it was last asked for (a tick of [`Inner::tick`]).
    used: u64,
}

impl<K> Slot<K> {
    fn bytes(&self) -> usize {
        match self.fill.get() {
            Some(Fill::Ready(body)) => body.bytes(),
            _ => 0,
        }
    }
}

struct Inner<K> {
    slots: Vec<Slot<K>>,
    /// The keys and audiences whose body was too large to keep when last
    /// rendered, oldest first: kept apart from the slots, which the next
    /// snapshot sweeps away, so that the next rendering streams at once
    /// rather than render up to the limit again to find out.
    large: Vec<(K, Audience)>,
    tick: u64,
}

impl<K> Default for Inner<K> {
    fn default() -> Inner<K> {
        Inner {
            slots: Vec::new(),
            large: Vec::new(),
            tick: 0,
        }
    }
}

/// The most keys remembered as too large.
const MAX_LARGE: usize = 64;

/// An entry as a request finds it.
#[derive(Clone)]
pub(crate) struct Entry {
    pub(crate) fill: Arc<OnceCell<Fill>>,
    /// The body was too large last time: stream it, keeping a copy in
    /// case it fits now, rather than render it once to find out.
    pub(crate) large: bool,
}

/// Counters for `/metrics`.
#[derive(Debug, Default)]
pub struct CacheCounters {
    /// Requests answered with a kept body.
    pub hits: std::sync::atomic::AtomicU64,
    /// Requests that rendered (or waited for) a body to keep.
    pub misses: std::sync::atomic::AtomicU64,
    /// Requests answered with a body rendered for them alone.
    pub uncached: std::sync::atomic::AtomicU64,
    /// 304s.
    pub not_modified: std::sync::atomic::AtomicU64,
}

/// The cache of rendered bodies by key `K` (see the module's header).
pub struct ResponseCache<K> {
    limits: CacheLimits,
    inner: Mutex<Inner<K>>,
    /// What it did, for `/metrics`.
    pub counters: CacheCounters,
}

impl<K> std::fmt::Debug for ResponseCache<K> {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("ResponseCache")
            .field("limits", &self.limits)
            .finish_non_exhaustive()
    }
}

impl<K: Clone + PartialEq> ResponseCache<K> {
    /// An empty cache within `limits`.
    pub fn new(limits: CacheLimits) -> ResponseCache<K> {
        ResponseCache {
            limits,
            inner: Mutex::default(),
            counters: CacheCounters::default(),
        }
    }

    /// Its limits.
    pub fn limits(&self) -> CacheLimits {
        self.limits
    }

    /// Whether it keeps anything.
    pub fn enabled(&self) -> bool {
        self.limits.enabled()
    }

    fn lock(&self) -> std::sync::MutexGuard<'_, Inner<K>> {
        // A panic while holding the lock leaves nothing half-done that a
        // later request could trip on: slots are replaced whole.
        self.inner
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner)
    }

    /// The entry for `key` and `audience` as of `view` (the whole
    /// snapshot, before any ACL filtering), whose body `reads` those parts
    /// of it: the kept one while `view` still has its parts, else a new,
    /// empty one in its place.
    pub(crate) fn entry(&self, key: &K, reads: Reads, audience: &Audience, view: &View) -> Entry {
        let mut inner = self.lock();
        inner.tick += 1;
        let tick = inner.tick;
        if let Some(slot) = inner
            .slots
            .iter_mut()
            .find(|s| s.key == *key && s.audience == *audience)
            && slot.parts.still_in(view)
        {
            slot.used = tick;
            let fill = slot.fill.clone();
            return Entry {
                fill,
                large: inner.is_large(key, audience),
            };
        }
        // Stale entries go, this one included.
        let large = inner.is_large(key, audience);
        inner.slots.retain(|s| s.parts.still_in(view));
        while inner.slots.len() >= self.limits.max_entries.max(1) {
            evict_oldest(&mut inner.slots);
        }
        let slot = Slot {
            key: key.clone(),
            audience: audience.clone(),
            parts: Parts::of(view, reads),
            fill: Arc::new(OnceCell::new()),
            used: tick,
        };
        let entry = Entry {
            fill: slot.fill.clone(),
            large,
        };
        inner.slots.push(slot);
        entry
    }

    /// Notes that the body for `key` and `audience` is too large to keep.
    pub(crate) fn mark_large(&self, key: &K, audience: &Audience) {
        let mut inner = self.lock();
        inner.large.retain(|(k, a)| k != key || a != audience);
        if inner.large.len() >= MAX_LARGE {
            inner.large.remove(0);
        }
        inner.large.push((key.clone(), audience.clone()));
    }

    /// Notes that the body for `key` and `audience` fit after all.
    pub(crate) fn mark_fits(&self, key: &K, audience: &Audience) {
        self.lock().large.retain(|(k, a)| k != key || a != audience);
    }

    /// Drops the least recently used bodies until the rest fit
    /// [`CacheLimits::max_bytes`]; called after a body or its gzip is
    /// added.
    pub(crate) fn trim(&self) {
        let mut inner = self.lock();
        while inner.slots.iter().map(Slot::bytes).sum::<usize>() > self.limits.max_bytes {
            evict_oldest(&mut inner.slots);
        }
    }

    /// Drops entries that `view` no longer shows (and the old maps they
    /// hold).
    pub fn sweep(&self, view: &View) {
        self.lock().slots.retain(|s| s.parts.still_in(view));
    }

    /// Sweeps at every snapshot `views` publishes, until the scheduler
    /// stops or the cache is dropped; needs a tokio runtime.
    pub fn follow(self: &Arc<Self>, mut views: tokio::sync::watch::Receiver<Arc<View>>)
    where
        K: Send + 'static,
    {
        let cache = Arc::downgrade(self);
        tokio::spawn(async move {
            while views.changed().await.is_ok() {
                let Some(cache) = cache.upgrade() else {
                    return;
                };
                let view = views.borrow_and_update().clone();
                cache.sweep(&view);
            }
        });
    }

    /// Entries and bytes held (for `/metrics` and tests).
    pub fn size(&self) -> (usize, usize) {
        let inner = self.lock();
        (inner.slots.len(), inner.slots.iter().map(Slot::bytes).sum())
    }
}

impl<K: PartialEq> Inner<K> {
    fn is_large(&self, key: &K, audience: &Audience) -> bool {
        self.large.iter().any(|(k, a)| k == key && a == audience)
    }
}

/// Removes the least recently used slot.
fn evict_oldest<K>(slots: &mut Vec<Slot<K>>) {
    if let Some(oldest) = slots
        .iter()
        .enumerate()
        .min_by_key(|(_, s)| s.used)
        .map(|(i, _)| i)
    {
        slots.swap_remove(oldest);
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::state::app::{AppDefaults, AppDefinition, PathId, Timestamp};

    /// What a list of apps reads.
    const APPS: Reads = Reads {
        apps: true,
        ..Reads::NONE
    };

    /// What a list of deployments reads.
    const DEPLOYMENTS: Reads = Reads {
        deployments: true,
        ..Reads::NONE
    };

    type Cache = ResponseCache<&'static str>;

    fn app(id: &str) -> Arc<AppDefinition> {
        Arc::new(
            AppDefinition::from_value(
                &serde_json::json!({"id": id, "cmd": "x"}),
                &PathId::root(),
                &AppDefaults::default(),
            )
            .unwrap()
            .with_version(Timestamp::from_millis(1), false),
        )
    }

    fn view_with(ids: &[&str]) -> View {
        let mut view = View::default();
        for id in ids {
            let a = app(id);
            view.apps.insert(a.id.clone(), a);
        }
        view
    }

    fn fill(entry: &Entry, size: usize) {
        let body = CachedBody::new(Bytes::from(vec![b'x'; size]));
        entry.fill.set(Fill::Ready(Arc::new(body))).unwrap();
    }

    #[test]
    fn an_entry_lasts_while_the_maps_it_read_do() {
        let cache = Cache::new(CacheLimits::DEFAULT);
        let mut view = view_with(&["/a"]);
        let first = cache.entry(&"apps", APPS, &Audience::Everyone, &view);
        fill(&first, 10);
        // A change the body does not show keeps it.
        view.stats.offers_received += 1;
        view.loads = OrdMap::new();
        view.deployments = OrdMap::new();
        let again = cache.entry(&"apps", APPS, &Audience::Everyone, &view);
        assert!(Arc::ptr_eq(&again.fill, &first.fill));
        assert!(again.fill.get().is_some());
        // Another audience has its own.
        let other = cache.entry(&"apps", APPS, &Audience::Only(Caller::nobody()), &view);
        assert!(!Arc::ptr_eq(&other.fill, &first.fill));
        // A new app is a new body, and the stale one is dropped.
        let a = app("/b");
        view.apps.insert(a.id.clone(), a);
        let renewed = cache.entry(&"apps", APPS, &Audience::Everyone, &view);
        assert!(!Arc::ptr_eq(&renewed.fill, &first.fill));
        assert!(renewed.fill.get().is_none());
        assert_eq!(
            cache.size().0,
            1,
            "the other audience's entry read the same apps: stale too"
        );
    }

    #[test]
    fn a_clone_of_a_map_is_the_same_map_and_an_equal_rebuilt_one_is_not() {
        let view = view_with(&["/a", "/b"]);
        let parts = Parts::of(&view, APPS);
        assert!(parts.still_in(&view.clone()));
        let rebuilt = View {
            apps: view
                .apps
                .iter()
                .map(|(k, v)| (k.clone(), v.clone()))
                .collect(),
            ..view.clone()
        };
        assert!(
            !parts.still_in(&rebuilt),
            "no content comparison: only identity"
        );
        assert!(
            Parts::of(&view, DEPLOYMENTS).still_in(&rebuilt),
            "maps not read are not compared"
        );
    }

    #[test]
    fn entries_and_bytes_are_bounded_least_recently_used_first() {
        let limits = CacheLimits {
            max_entries: 3,
            max_bytes: 100,
            max_entry_bytes: 100,
        };
        let cache = Cache::new(limits);
        let view = view_with(&["/a"]);
        let everyone = &Audience::Everyone;
        for k in ["a", "b", "c"] {
            fill(&cache.entry(&k, APPS, everyone, &view), 30);
        }
        // "a" is used again, so "b" is the oldest.
        let first = cache.entry(&"a", APPS, everyone, &view);
        fill(&cache.entry(&"d", APPS, everyone, &view), 30);
        assert_eq!(cache.size(), (3, 90));
        assert!(Arc::ptr_eq(
            &cache.entry(&"a", APPS, everyone, &view).fill,
            &first.fill
        ));
        assert!(
            cache
                .entry(&"b", APPS, everyone, &view)
                .fill
                .get()
                .is_none(),
            "evicted"
        );
        // Over the byte limit: the oldest go until the rest fit.
        fill(&cache.entry(&"e", APPS, everyone, &view), 80);
        cache.trim();
        let (_, bytes) = cache.size();
        assert!(bytes <= 100, "{bytes}");
        assert!(
            cache
                .entry(&"e", APPS, everyone, &view)
                .fill
                .get()
                .is_some(),
            "the newest stays"
        );
    }

    #[test]
    fn sweeping_drops_what_a_new_snapshot_changed() {
        let cache = Cache::new(CacheLimits::DEFAULT);
        let mut view = view_with(&["/a"]);
        fill(&cache.entry(&"apps", APPS, &Audience::Everyone, &view), 5);
        fill(
            &cache.entry(&"deployments", DEPLOYMENTS, &Audience::Everyone, &view),
            5,
        );
        let a = app("/b");
        view.apps.insert(a.id.clone(), a);
        cache.sweep(&view);
        assert_eq!(cache.size(), (1, 5), "deployments do not read apps");
    }

    #[test]
    fn a_large_body_is_remembered_across_snapshots() {
        let cache = Cache::new(CacheLimits::DEFAULT);
        let mut view = view_with(&["/a"]);
        let everyone = &Audience::Everyone;
        assert!(!cache.entry(&"tasks", APPS, everyone, &view).large);
        cache.mark_large(&"tasks", everyone);
        let a = app("/b");
        view.apps.insert(a.id.clone(), a);
        // A new snapshot sweeps the entry, not what it taught.
        cache.sweep(&view);
        assert_eq!(cache.size().0, 0);
        assert!(cache.entry(&"tasks", APPS, everyone, &view).large);
        assert!(
            !cache
                .entry(&"tasks", APPS, &Audience::Only(Caller::nobody()), &view)
                .large,
            "another audience's body is another size"
        );
        cache.mark_fits(&"tasks", everyone);
        assert!(!cache.entry(&"tasks", APPS, everyone, &view).large);
    }

    #[test]
    fn gzip_round_trips() {
        use std::io::Read;
        let data = br#"{"apps":[{"id":"/a"},{"id":"/a"},{"id":"/a"},{"id":"/a"}]}"#.repeat(50);
        let packed = gzip(&data, 6);
        assert!(packed.len() < data.len() / 10);
        let mut unpacked = Vec::new();
        flate2::read::GzDecoder::new(&packed[..])
            .read_to_end(&mut unpacked)
            .unwrap();
        assert_eq!(unpacked, data);
    }

    #[test]
    fn each_representation_has_its_tag() {
        let body = CachedBody::new(Bytes::from_static(b"[]"));
        let plain = body.etag(Coding::Identity).to_str().unwrap();
        let gz = body.etag(Coding::Gzip).to_str().unwrap();
        assert_eq!(plain, format!("\"{}\"", body.digest()));
        assert_eq!(gz, format!("\"{}-gzip\"", body.digest()));
        assert_eq!(body.digest().len(), 32);
        assert_eq!(
            CachedBody::new(Bytes::from_static(b"[]")).digest(),
            body.digest(),
            "a digest of the content"
        );
    }
}
