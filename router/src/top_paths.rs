//! An app's most requested paths, in bounded memory: the space-saving
//! algorithm (Metwally, Agrawal, El Abbadi, 2005) over [`CAPACITY`]
//! counters. Pure.
//!
//! A path already counted adds one to its counter; a new one takes a free
//! counter or, when all are taken, the smallest, inheriting its count
//! plus one (that inherited part is the counter's possible
//! overestimate). Every path requested more than 1/[`CAPACITY`] of the
//! time is certain to hold a counter, and no count is low. Paths come
//! without their query string and are cut at [`MAX_PATH_BYTES`], so the
//! whole table stays under a few kilobytes. Counted since the router
//! started.

use serde_json::{Value, json};

/// Counters kept per app.
pub const CAPACITY: usize = 32;

/// Longer paths are counted by their first bytes (cut on a character
/// boundary).
pub const MAX_PATH_BYTES: usize = 256;

/// One counted path.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Counted {
    /// The path.
    pub path: Box<str>,
    /// Requests counted for it (never fewer than it had).
    pub count: u64,
    /// How much of `count` may belong to paths it replaced.
    pub error: u64,
}

/// The space-saving counters of one app.
#[derive(Debug, Clone, Default)]
pub struct TopPaths {
    counters: Vec<Counted>,
}

impl TopPaths {
    /// Counts one request for `path`.
    pub fn record(&mut self, path: &str) {
        let path = truncate(path);
        if let Some(counter) = self.counters.iter_mut().find(|c| &*c.path == path) {
            counter.count += 1;
            return;
        }
        if self.counters.len() < CAPACITY {
            self.counters.push(Counted {
                path: path.into(),
                count: 1,
                error: 0,
            });
            return;
        }
        if let Some(smallest) = self.counters.iter_mut().min_by_key(|c| c.count) {
            smallest.error = smallest.count;
            smallest.count += 1;
            smallest.path = path.into();
        }
    }

    /// The counters, most requested first (ties by path).
    pub fn top(&self) -> Vec<Counted> {
        let mut top = self.counters.clone();
        top.sort_by(|a, b| b.count.cmp(&a.count).then_with(|| a.path.cmp(&b.path)));
        top
    }

    /// [`TopPaths::top`] as JSON: `[{"path", "count", "error"}]`.
    pub fn to_json(&self) -> Value {
        self.top()
            .into_iter()
            .map(|c| json!({"path": &*c.path, "count": c.count, "error": c.error}))
            .collect()
    }
}

/// `path` cut to at most [`MAX_PATH_BYTES`] on a character boundary.
fn truncate(path: &str) -> &str {
    if path.len() <= MAX_PATH_BYTES {
        return path;
    }
    let mut end = MAX_PATH_BYTES;
    while !path.is_char_boundary(end) {
        end -= 1;
    }
    &path[..end]
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn few_paths_are_counted_exactly_and_listed_busiest_first() {
        let mut t = TopPaths::default();
        for (path, n) in [("/a", 3), ("/b", 5), ("/c", 1), ("/0", 3)] {
            for _ in 0..n {
                t.record(path);
            }
        }
        let top: Vec<(String, u64, u64)> = t
            .top()
            .into_iter()
            .map(|c| (c.path.into(), c.count, c.error))
            .collect();
        let expected = [("/b", 5, 0), ("/0", 3, 0), ("/a", 3, 0), ("/c", 1, 0)]
            .map(|(p, c, e)| (p.to_string(), c, e));
        assert_eq!(top, expected);
        assert_eq!(
            t.to_json()[0],
            serde_json::json!({"path": "/b", "count": 5, "error": 0})
        );
    }

    #[test]
    fn heavy_paths_survive_a_long_tail_and_counts_never_run_low() {
        let mut t = TopPaths::default();
        // Three heavy paths among 10,000 that each come once; each comes
        // more than 1/32 of the time, so each is sure to be counted.
        for i in 0..10_000u64 {
            t.record(&format!("/tail/{i}"));
            if i % 10 == 0 {
                t.record("/heavy/1");
            }
            if i % 20 == 0 {
                t.record("/heavy/2");
            }
            if i % 25 == 0 {
                t.record("/heavy/3");
            }
        }
        let top = t.top();
        assert_eq!(top.len(), CAPACITY, "bounded");
        let names: Vec<&str> = top.iter().take(3).map(|c| &*c.path).collect();
        assert_eq!(names, ["/heavy/1", "/heavy/2", "/heavy/3"]);
        for (counted, truth) in top.iter().zip([1000, 500, 400]) {
            assert!(counted.count >= truth, "{counted:?}");
            assert!(counted.count - counted.error <= truth, "{counted:?}");
        }
        let total: u64 = top.iter().map(|c| c.count).sum();
        assert_eq!(
            total,
            10_000 + 1000 + 500 + 400,
            "every request counted once"
        );
    }

    #[test]
    fn long_paths_are_cut_on_a_character_boundary() {
        let mut t = TopPaths::default();
        let long = format!("/{}", "é".repeat(400));
        t.record(&long);
        t.record(&format!("{long}/more"));
        let top = t.top();
        assert_eq!(top.len(), 1, "the same first bytes: one counter");
        assert_eq!(top[0].count, 2);
        assert!(top[0].path.len() <= MAX_PATH_BYTES);
        assert!(long.starts_with(&*top[0].path));
    }
}
