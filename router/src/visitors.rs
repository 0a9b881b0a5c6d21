//! Page views and unique visitors per app, over UTC minutes, hours and
//! days. Pure: times come in as Unix seconds, visitors as 64-bit hashes.
//!
//! # Windows
//!
//! Tumbling windows aligned to UTC (a minute from `:00`, an hour from
//! `HH:00`, a day from midnight), so that routers count the same
//! intervals. Each span keeps its current window (page views and a
//! HyperLogLog of visitors) and only the totals of the window before it:
//! a closed window never changes, so its registers are not kept. Three
//! sketches per app, then, at most.
//!
//! # Counting distinct visitors
//!
//! [`HyperLogLog`] with precision [`PRECISION`] = 14: 16,384 one-byte
//! registers (16 KiB), relative standard error 1.04/√16384 ≈ 0.8 %. While
//! small it is sparse (HyperLogLog++'s idea, Heule et al. 2013): the
//! distinct (register index at precision 25, rank) pairs, sorted, up to
//! as many as fit in the dense registers' 16 KiB (4,096). At precision 25
//! a few thousand visitors are counted almost exactly, and an app with
//! few visitors costs bytes, not kilobytes; no memory is taken before an
//! app's first request. Dense sketches are read with Ertl's improved
//! estimator ("New cardinality estimation algorithms for HyperLogLog
//! sketches", 2017; the one Redis uses), unbiased over the whole range
//! without empirical correction tables.
//!
//! # Who is a visitor
//!
//! [`identify`]: the app's own cookie when the app names one
//! (`BATON_UV_COOKIE`) and the request carries it, else the client
//! address; for apps that name none, the router's cookie
//! ([`VISITOR_COOKIE`]), issued with a random id to a request without one
//! and counted under that id from the first request on. Only hashes are
//! kept: no cookie value or address is stored.

use std::hash::{DefaultHasher, Hasher};
use std::net::IpAddr;

/// Bits of a hash that choose a dense register.
pub const PRECISION: u32 = 14;

/// Dense registers.
const REGISTERS: usize = 1 << PRECISION;

/// Bits of a hash that choose a sparse entry's register.
const SPARSE_PRECISION: u32 = 25;

/// Sparse entries kept at most: as many bytes as the dense registers.
const SPARSE_MAX: usize = REGISTERS * size_of::<u8>() / size_of::<u32>();

/// The largest rank in a dense register: the hash bits left after the
/// index, plus one.
const MAX_RANK: u32 = 64 - PRECISION + 1;

/// The visitor cookie the router issues to apps that name none.
pub const VISITOR_COOKIE: &str = "baton_uv";

/// Lifetime of the router's visitor cookie: a year.
pub const VISITOR_COOKIE_MAX_AGE_SECS: u64 = 365 * 24 * 3600;

/// Where a sketch's registers are.
#[derive(Debug, Clone, PartialEq, Eq)]
enum Registers {
    /// Sorted `(index << 6) | rank` at [`SPARSE_PRECISION`], one per index.
    Sparse(Vec<u32>),
    /// One rank per register at [`PRECISION`].
    Dense(Box<[u8]>),
}

/// A HyperLogLog sketch of distinct 64-bit hashes (see the module's
/// header). Allocates nothing until its first insert.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct HyperLogLog {
    registers: Registers,
}

impl Default for HyperLogLog {
    fn default() -> Self {
        HyperLogLog {
            registers: Registers::Sparse(Vec::new()),
        }
    }
}

/// The rank of `bits`' first one bit among its top `width` bits (1 for
/// the topmost); `width + 1` when they are all zero.
fn rank(bits: u64, width: u32) -> u32 {
    bits.leading_zeros().min(width) + 1
}

impl HyperLogLog {
    /// An empty sketch.
    pub fn new() -> HyperLogLog {
        HyperLogLog::default()
    }

    /// Adds one hash (of a well-mixed 64-bit hash function).
    pub fn insert(&mut self, hash: u64) {
        match &mut self.registers {
            Registers::Dense(registers) => {
                let (index, rank) = dense_position(hash);
                let register = &mut registers[index];
                *register = (*register).max(rank);
            }
            Registers::Sparse(entries) => {
                let index = (hash >> (64 - SPARSE_PRECISION)) as u32;
                let rank = rank(hash << SPARSE_PRECISION, 64 - SPARSE_PRECISION);
                if sparse_add(entries, (index << 6) | rank) && entries.len() > SPARSE_MAX {
                    self.densify();
                }
            }
        }
    }

    /// Adds every hash `other` has seen: the sketch of the union.
    pub fn merge(&mut self, other: &HyperLogLog) {
        if let (Registers::Sparse(mine), Registers::Sparse(theirs)) =
            (&mut self.registers, &other.registers)
        {
            for entry in theirs {
                sparse_add(mine, *entry);
            }
            if mine.len() > SPARSE_MAX {
                self.densify();
            }
            return;
        }
        self.densify();
        let Registers::Dense(mine) = &mut self.registers else {
            unreachable!("densified above");
        };
        match &other.registers {
            Registers::Dense(theirs) => {
                for (m, t) in mine.iter_mut().zip(theirs.iter()) {
                    *m = (*m).max(*t);
                }
            }
            Registers::Sparse(theirs) => {
                for entry in theirs {
                    let (index, rank) = sparse_to_dense(*entry);
                    mine[index] = mine[index].max(rank);
                }
            }
        }
    }

    /// The estimated number of distinct hashes inserted.
    pub fn estimate(&self) -> f64 {
        match &self.registers {
            Registers::Sparse(entries) => {
                // Linear counting over the 2^25 sparse registers.
                let m = (1u64 << SPARSE_PRECISION) as f64;
                let empty = m - entries.len() as f64;
                m * (m / empty).ln()
            }
            Registers::Dense(registers) => {
                let mut histogram = [0u32; MAX_RANK as usize + 1];
                for r in registers.iter() {
                    histogram[*r as usize] += 1;
                }
                ertl_estimate(&histogram)
            }
        }
    }

    /// [`HyperLogLog::estimate`] rounded.
    pub fn count(&self) -> u64 {
        self.estimate().round() as u64
    }

    /// Forgets everything, and gives the dense registers' memory back.
    pub fn clear(&mut self) {
        self.registers = Registers::Sparse(Vec::new());
    }

    /// Whether the sketch has gone dense (16 KiB).
    pub fn is_dense(&self) -> bool {
        matches!(self.registers, Registers::Dense(_))
    }

    /// Bytes held by the registers.
    pub fn heap_bytes(&self) -> usize {
        match &self.registers {
            Registers::Sparse(entries) => entries.capacity() * size_of::<u32>(),
            Registers::Dense(registers) => registers.len(),
        }
    }

    fn densify(&mut self) {
        if let Registers::Sparse(entries) = &self.registers {
            let mut dense = vec![0u8; REGISTERS].into_boxed_slice();
            for entry in entries {
                let (index, rank) = sparse_to_dense(*entry);
                dense[index] = dense[index].max(rank);
            }
            self.registers = Registers::Dense(dense);
        }
    }
}

/// A hash's dense register and rank.
fn dense_position(hash: u64) -> (usize, u8) {
    let index = (hash >> (64 - PRECISION)) as usize;
    (index, rank(hash << PRECISION, 64 - PRECISION) as u8)
}

/// A sparse entry's dense register and rank: the index's top bits choose
/// the register; its remaining bits, when not all zero, give the rank,
/// else the sparse rank continues after them. The same as the hash
/// itself would have given.
fn sparse_to_dense(entry: u32) -> (usize, u8) {
    let sparse_index = entry >> 6;
    let sparse_rank = entry & 0x3f;
    let extra = SPARSE_PRECISION - PRECISION;
    let index = (sparse_index >> extra) as usize;
    let low = sparse_index & ((1 << extra) - 1);
    let rank = if low != 0 {
        low.leading_zeros() - (32 - extra) + 1
    } else {
        extra + sparse_rank
    };
    (index, rank as u8)
}

/// Puts `entry` in sorted `entries`, keeping the larger rank per index;
/// whether the list grew.
fn sparse_add(entries: &mut Vec<u32>, entry: u32) -> bool {
    match entries.binary_search_by_key(&(entry >> 6), |e| e >> 6) {
        Ok(at) => {
            entries[at] = entries[at].max(entry);
            false
        }
        Err(at) => {
            entries.insert(at, entry);
            true
        }
    }
}

/// Ertl's improved raw estimator from the histogram of register values
/// (`histogram[k]`: registers holding `k`, up to [`MAX_RANK`]).
fn ertl_estimate(histogram: &[u32]) -> f64 {
    let m = REGISTERS as f64;
    let q = (MAX_RANK - 1) as usize;
    let mut z = m * tau((m - f64::from(histogram[q + 1])) / m);
    for k in (1..=q).rev() {
        z += f64::from(histogram[k]);
        z *= 0.5;
    }
    z += m * sigma(f64::from(histogram[0]) / m);
    let alpha_infinity = 1.0 / (2.0 * std::f64::consts::LN_2);
    alpha_infinity * m * m / z
}

/// σ(x) = x + Σ x^(2^k) 2^(k-1), k ≥ 1: the empty registers' share.
fn sigma(mut x: f64) -> f64 {
    if x == 1.0 {
        return f64::INFINITY;
    }
    let (mut y, mut z) = (1.0, x);
    loop {
        x *= x;
        let before = z;
        z += x * y;
        y += y;
        if z == before {
            return z;
        }
    }
}

/// τ(x) = (1 - x - Σ (1 - x^(2^-k))² 2^-k) / 3, k ≥ 1: the full
/// registers' share.
fn tau(mut x: f64) -> f64 {
    if x == 0.0 || x == 1.0 {
        return 0.0;
    }
    let (mut y, mut z) = (1.0, 1.0 - x);
    loop {
        x = x.sqrt();
        let before = z;
        y *= 0.5;
        z -= (1.0 - x).powi(2) * y;
        if z == before {
            return z / 3.0;
        }
    }
}

/// Who a request's visitor is, before hashing.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Visitor<'a> {
    /// The value of the cookie the app names (`BATON_UV_COOKIE`).
    AppCookie(&'a str),
    /// The value of the router's own cookie ([`VISITOR_COOKIE`]).
    RouterCookie(&'a str),
    /// The client's address (the TCP peer).
    Address(IpAddr),
}

impl Visitor<'_> {
    /// The visitor's 64-bit hash: the standard library's SipHash with its
    /// fixed keys (the same in every router process of one build), over
    /// the kind and the value, so that a cookie and an address that spell
    /// alike stay apart.
    pub fn hash(&self) -> u64 {
        let mut hasher = DefaultHasher::new();
        match self {
            Visitor::AppCookie(value) => {
                hasher.write_u8(1);
                hasher.write(value.as_bytes());
            }
            Visitor::RouterCookie(value) => {
                hasher.write_u8(2);
                hasher.write(value.as_bytes());
            }
            Visitor::Address(IpAddr::V4(v4)) => {
                hasher.write_u8(3);
                hasher.write(&v4.octets());
            }
            Visitor::Address(IpAddr::V6(v6)) => {
                hasher.write_u8(4);
                hasher.write(&v6.octets());
            }
        }
        hasher.finish()
    }
}

/// A request's visitor: its hash, and the id of a router cookie to issue
/// (with the response) when it had none.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Identity {
    /// What the sketches count.
    pub hash: u64,
    /// A new [`VISITOR_COOKIE`] value to set.
    pub issue: Option<String>,
}

/// Identifies a request's visitor from its `Cookie` headers, the app's
/// cookie name (`BATON_UV_COOKIE`, if any) and the client's address;
/// `new_id` makes a router cookie's id when one has to be issued.
pub fn identify<'h>(
    cookie_headers: impl Iterator<Item = &'h str>,
    app_cookie: Option<&str>,
    client: IpAddr,
    new_id: impl FnOnce() -> String,
) -> Identity {
    match app_cookie {
        Some(name) => {
            let visitor = match cookie(cookie_headers, name) {
                Some(value) => Visitor::AppCookie(value),
                None => Visitor::Address(client),
            };
            Identity {
                hash: visitor.hash(),
                issue: None,
            }
        }
        None => match cookie(cookie_headers, VISITOR_COOKIE) {
            Some(value) => Identity {
                hash: Visitor::RouterCookie(value).hash(),
                issue: None,
            },
            None => {
                let id = new_id();
                Identity {
                    hash: Visitor::RouterCookie(&id).hash(),
                    issue: Some(id),
                }
            }
        },
    }
}

/// The first non-empty value of cookie `name` in `Cookie` headers.
pub fn cookie<'h>(headers: impl Iterator<Item = &'h str>, name: &str) -> Option<&'h str> {
    headers
        .flat_map(|header| header.split(';'))
        .filter_map(|pair| pair.split_once('='))
        .find(|(n, v)| n.trim() == name && !v.trim().is_empty())
        .map(|(_, v)| v.trim().trim_matches('"'))
}

/// A new visitor id: 128 random bits in hex.
pub fn new_visitor_id() -> String {
    format!("{:032x}", rand::random::<u128>())
}

/// The `Set-Cookie` value issuing visitor id `id` (`Secure` over TLS).
pub fn set_cookie(id: &str, tls: bool) -> String {
    let secure = if tls { "; Secure" } else { "" };
    format!(
        "{VISITOR_COOKIE}={id}; Path=/; Max-Age={VISITOR_COOKIE_MAX_AGE_SECS}; HttpOnly; SameSite=Lax{secure}"
    )
}

/// A window's length.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Span {
    /// A UTC minute.
    Minute,
    /// A UTC hour.
    Hour,
    /// A UTC day.
    Day,
}

impl Span {
    /// Every span, shortest first.
    pub const ALL: [Span; 3] = [Span::Minute, Span::Hour, Span::Day];

    /// Its length in seconds.
    pub fn secs(self) -> u64 {
        match self {
            Span::Minute => 60,
            Span::Hour => 3600,
            Span::Day => 86_400,
        }
    }

    /// Its name in reports.
    pub fn name(self) -> &'static str {
        match self {
            Span::Minute => "minute",
            Span::Hour => "hour",
            Span::Day => "day",
        }
    }
}

/// Page views and unique visitors of one window.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct Totals {
    /// Requests.
    pub views: u64,
    /// Distinct visitors (estimated; never more than the views).
    pub visitors: u64,
}

/// One span's windows: the current one whole, the one before as totals.
#[derive(Debug, Clone, Default)]
struct Window {
    /// Which window of its span (Unix seconds / span length).
    number: u64,
    views: u64,
    visitors: HyperLogLog,
    /// The window before `number`, when it had traffic.
    previous: Option<(u64, Totals)>,
}

impl Window {
    fn totals(&self) -> Totals {
        Totals {
            views: self.views,
            visitors: self.visitors.count().min(self.views),
        }
    }

    fn record(&mut self, number: u64, hash: u64) {
        // A clock stepped back counts into the current window.
        if number > self.number {
            self.previous = (self.views > 0).then(|| (self.number, self.totals()));
            self.number = number;
            self.views = 0;
            self.visitors.clear();
        }
        self.views += 1;
        self.visitors.insert(hash);
    }

    /// (current, previous) as of window `number`.
    fn report(&self, number: u64) -> (Totals, Totals) {
        let previous_of = |n: u64| match self.previous {
            Some((p, totals)) if p + 1 == n => totals,
            _ => Totals::default(),
        };
        if number <= self.number {
            (self.totals(), previous_of(self.number))
        } else if number == self.number + 1 {
            (Totals::default(), self.totals())
        } else {
            (Totals::default(), Totals::default())
        }
    }
}

/// What [`Traffic::report`] shows for one span.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct SpanReport {
    /// The span.
    pub span: Span,
    /// The window that is running (so far).
    pub current: Totals,
    /// The last complete window (zero if it had no traffic).
    pub previous: Totals,
}

/// One app's page views and unique visitors per UTC minute, hour and day.
/// Cloned (a few kilobytes at most) to be read outside its lock.
#[derive(Debug, Clone, Default)]
pub struct Traffic {
    windows: [Window; 3],
}

impl Traffic {
    /// Counts one request by the visitor with `hash` at `unix_secs`.
    pub fn record(&mut self, unix_secs: u64, hash: u64) {
        for (window, span) in self.windows.iter_mut().zip(Span::ALL) {
            window.record(unix_secs / span.secs(), hash);
        }
    }

    /// Each span's current and previous windows as of `unix_secs`,
    /// shortest span first.
    pub fn report(&self, unix_secs: u64) -> [SpanReport; 3] {
        std::array::from_fn(|i| {
            let span = Span::ALL[i];
            let (current, previous) = self.windows[i].report(unix_secs / span.secs());
            SpanReport {
                span,
                current,
                previous,
            }
        })
    }

    /// Bytes held by the sketches.
    pub fn heap_bytes(&self) -> usize {
        self.windows.iter().map(|w| w.visitors.heap_bytes()).sum()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn hash_of(i: u64) -> u64 {
        Visitor::RouterCookie(&format!("visitor-{i}")).hash()
    }

    fn sketch(range: std::ops::Range<u64>) -> HyperLogLog {
        let mut h = HyperLogLog::new();
        for i in range {
            h.insert(hash_of(i));
        }
        h
    }

    fn relative_error(estimate: f64, truth: u64) -> f64 {
        (estimate - truth as f64).abs() / truth as f64
    }

    #[test]
    fn an_empty_sketch_counts_zero_and_allocates_nothing() {
        let h = HyperLogLog::new();
        assert_eq!(h.count(), 0);
        assert_eq!(h.heap_bytes(), 0);
        let mut dense = sketch(0..10_000);
        assert!(dense.is_dense());
        dense.clear();
        assert_eq!((dense.count(), dense.heap_bytes()), (0, 0));
    }

    #[test]
    fn a_thousand_distinct_visitors_count_within_two_percent() {
        // Sparse: almost exact.
        let h = sketch(0..1000);
        assert!(!h.is_dense());
        assert!(
            relative_error(h.estimate(), 1000) < 0.002,
            "{}",
            h.estimate()
        );
        // Repeats change nothing.
        let mut again = h.clone();
        for i in 0..1000 {
            again.insert(hash_of(i));
        }
        assert_eq!(again, h);
        // Dense (as after a merge with a dense sketch): still within 2 %
        // for many different sets of a thousand.
        let mut worst: f64 = 0.0;
        for set in 0..20 {
            let mut dense = HyperLogLog::new();
            dense.densify();
            for i in 0..1000 {
                dense.insert(hash_of(1_000_000 * (set + 1) + i));
            }
            worst = worst.max(relative_error(dense.estimate(), 1000));
        }
        assert!(worst < 0.02, "worst dense error at 1k: {worst}");
    }

    #[test]
    fn ten_thousand_and_a_hundred_thousand_count_within_three_standard_errors() {
        let standard_error = 1.04 / (REGISTERS as f64).sqrt();
        for n in [10_000, 100_000] {
            let h = sketch(0..n);
            assert!(h.is_dense());
            let error = relative_error(h.estimate(), n);
            assert!(
                error < 3.0 * standard_error,
                "{n}: {} ({error})",
                h.estimate()
            );
        }
        // Across the sparse→dense switch and the estimator's ranges,
        // with many sets: the mean error stays near the standard error.
        let mut sum_squares = 0.0;
        let sizes = [2_000u64, 4_000, 5_000, 20_000, 50_000, 200_000];
        for (k, n) in sizes.iter().enumerate() {
            let start = 10_000_000 * (k as u64 + 1);
            let error = relative_error(sketch(start..start + n).estimate(), *n);
            assert!(error < 0.03, "{n}: {error}");
            sum_squares += error * error;
        }
        let rms = (sum_squares / sizes.len() as f64).sqrt();
        assert!(rms < 2.0 * standard_error, "rms error {rms}");
    }

    #[test]
    fn a_sketch_goes_dense_beyond_its_sparse_budget_and_keeps_its_count() {
        let mut h = HyperLogLog::new();
        let mut inserted = 0u64;
        let mut before = 0.0;
        while !h.is_dense() {
            assert!(h.heap_bytes() <= 2 * REGISTERS, "{}", h.heap_bytes());
            before = h.estimate();
            h.insert(hash_of(inserted));
            inserted += 1;
        }
        // One entry per distinct sparse register: a rare collision or two
        // may take a few more hashes.
        assert!(
            (SPARSE_MAX as u64 + 1..SPARSE_MAX as u64 + 5).contains(&inserted),
            "{inserted}"
        );
        assert_eq!(h.heap_bytes(), REGISTERS);
        assert!(relative_error(h.estimate(), inserted) < 0.02);
        assert!((h.estimate() - before).abs() < 0.02 * before);
    }

    #[test]
    fn a_sparse_entry_lands_where_its_hash_would_in_dense_registers() {
        for hash in [
            0u64,
            1,
            u64::MAX,
            0x8000_0000_0000_0000,
            0x0000_4000_0000_0000,
            0x0004_0000_0000_0001,
            0x0000_0000_0000_8000,
            hash_of(7),
            hash_of(8),
        ] {
            let index = (hash >> (64 - SPARSE_PRECISION)) as u32;
            let entry = (index << 6) | rank(hash << SPARSE_PRECISION, 64 - SPARSE_PRECISION);
            assert_eq!(sparse_to_dense(entry), dense_position(hash), "{hash:#x}");
        }
    }

    #[test]
    fn merging_counts_the_union() {
        // Sparse with sparse, overlapping by half.
        let mut a = sketch(0..600);
        a.merge(&sketch(300..900));
        assert!(!a.is_dense());
        assert!(
            relative_error(a.estimate(), 900) < 0.002,
            "{}",
            a.estimate()
        );
        // Dense with dense: the same registers as one sketch of the union.
        let mut b = sketch(0..30_000);
        b.merge(&sketch(20_000..50_000));
        assert_eq!(b, sketch(0..50_000));
        // Dense with sparse, and sparse with dense, alike.
        let mut c = sketch(0..30_000);
        c.merge(&sketch(29_000..30_500));
        assert_eq!(c, sketch(0..30_500));
        let mut d = sketch(29_000..30_500);
        d.merge(&sketch(0..30_000));
        assert_eq!(d, c);
        // Sparse lists whose union overflows go dense.
        let mut e = sketch(0..3_000);
        e.merge(&sketch(3_000..6_000));
        assert!(e.is_dense());
        assert_eq!(e, sketch(0..6_000));
    }

    #[test]
    fn visitors_are_told_by_the_apps_cookie_the_routers_or_the_address() {
        let client: IpAddr = "192.0.2.7".parse().unwrap();
        let other: IpAddr = "192.0.2.8".parse().unwrap();
        let no_id = || -> String { panic!("no cookie to issue") };
        // The app's own cookie, wherever the client is.
        let headers = ["theme=dark; sid=abc", "x=1"];
        let by_cookie = identify(headers.iter().copied(), Some("sid"), client, no_id);
        let elsewhere = identify(["sid=abc"].into_iter(), Some("sid"), other, no_id);
        assert_eq!(by_cookie, elsewhere);
        assert_eq!(by_cookie.hash, Visitor::AppCookie("abc").hash());
        // Without it: the address; no router cookie for such an app.
        let anonymous = identify(["theme=dark"].into_iter(), Some("sid"), client, no_id);
        assert_eq!(anonymous.hash, Visitor::Address(client).hash());
        assert_eq!(anonymous.issue, None);
        // An app naming no cookie: the router's, issued when missing and
        // counted under the issued id from the first request.
        let first = identify(std::iter::empty(), None, client, || "f00d".to_string());
        assert_eq!(first.issue.as_deref(), Some("f00d"));
        let back = identify(["baton_uv=f00d"].into_iter(), None, other, no_id);
        assert_eq!((back.hash, back.issue), (first.hash, None));
        // Kinds never collide: a cookie spelling an address is not it.
        assert_ne!(
            Visitor::AppCookie("abc").hash(),
            Visitor::RouterCookie("abc").hash()
        );
    }

    #[test]
    fn cookies_are_found_by_exact_name_and_empty_ones_skipped() {
        let headers = ["a=1; baton_uvx=2; baton_uv=", "baton_uv = \"3\" ; c=4"];
        assert_eq!(cookie(headers.iter().copied(), VISITOR_COOKIE), Some("3"));
        assert_eq!(cookie(headers.iter().copied(), "a"), Some("1"));
        assert_eq!(cookie(headers.iter().copied(), "missing"), None);
        let id = new_visitor_id();
        assert_eq!(id.len(), 32);
        assert!(id.bytes().all(|b| b.is_ascii_hexdigit()));
        assert_ne!(id, new_visitor_id());
        assert_eq!(
            set_cookie("ab", false),
            "baton_uv=ab; Path=/; Max-Age=31536000; HttpOnly; SameSite=Lax"
        );
        assert!(set_cookie("ab", true).ends_with("; SameSite=Lax; Secure"));
    }

    #[test]
    fn windows_tumble_on_utc_boundaries_and_keep_the_last_complete_one() {
        let mut t = Traffic::default();
        assert_eq!(t.heap_bytes(), 0);
        let day = 86_400 * 20_000; // a UTC midnight
        for i in 0..10 {
            t.record(day + 59, hash_of(i % 4));
        }
        let [minute, hour, dayly] = t.report(day + 59);
        assert_eq!(minute.span, Span::Minute);
        let four_of_ten = Totals {
            views: 10,
            visitors: 4,
        };
        assert_eq!(minute.current, four_of_ten);
        assert_eq!(hour.current, four_of_ten);
        assert_eq!(dayly.current, four_of_ten);
        assert_eq!(minute.previous, Totals::default());

        // The next minute: the first becomes the previous one, read
        // before and after the next request alike.
        let [minute, hour, _] = t.report(day + 60);
        assert_eq!(
            (minute.current, minute.previous),
            (Totals::default(), four_of_ten)
        );
        t.record(day + 61, hash_of(0));
        let [minute, hour_after, dayly] = t.report(day + 61);
        let one = Totals {
            views: 1,
            visitors: 1,
        };
        assert_eq!((minute.current, minute.previous), (one, four_of_ten));
        assert_eq!(hour.current, four_of_ten);
        assert_eq!(hour_after.current.views, 11);
        assert_eq!(dayly.current.visitors, 4, "visitor 0 came back");

        // Two minutes later without traffic: nothing current, nothing
        // previous for the minute; the hour runs on.
        let [minute, hour, _] = t.report(day + 180);
        assert_eq!((minute.current, minute.previous), Default::default());
        assert_eq!(hour.current.views, 11);
        // A request after a gap: the window before it had no traffic.
        t.record(day + 3 * 3600, hash_of(9));
        let [minute, hour, dayly] = t.report(day + 3 * 3600);
        assert_eq!((minute.current, minute.previous), (one, Totals::default()));
        assert_eq!((hour.current, hour.previous), (one, Totals::default()));
        assert_eq!(dayly.current.views, 12);
        // The next day.
        let [_, _, dayly] = t.report(day + 86_400);
        assert_eq!(dayly.current, Totals::default());
        assert_eq!(dayly.previous.views, 12);
        assert_eq!(dayly.previous.visitors, 5);
    }

    #[test]
    fn a_clock_stepped_back_counts_into_the_current_window() {
        let mut t = Traffic::default();
        t.record(1_000_000, hash_of(1));
        t.record(999_000, hash_of(2));
        let [minute, ..] = t.report(1_000_000);
        assert_eq!(minute.current.views, 2);
        assert_eq!(minute.current.visitors, 2);
    }
}
