//! Marathon ids: absolute slash paths such as `/prod/web` (`state/PathId.scala`).
//!
//! A [`PathId`] is always absolute and canonical: no empty segments, no `.`
//! or `..`, every segment valid. Relative input is resolved against a base
//! group (`/` for `/v2/apps`).

use std::fmt;
use std::str::FromStr;

use serde::{Deserialize, Deserializer, Serialize, Serializer};

/// The segment pattern Marathon reports in its error message.
pub const SEGMENT_PATTERN: &str = r"^(([a-z0-9]|[a-z0-9][a-z0-9\-]*[a-z0-9])\.)*([a-z0-9]|[a-z0-9][a-z0-9\-]*[a-z0-9])|(\.|\.\.)$";

/// Last segments an app id may not have: they are REST suffixes.
pub const RESERVED_LAST_SEGMENTS: [&str; 3] = ["restart", "tasks", "versions"];

/// Why a string is not a valid id. The messages are Marathon's.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum PathIdError {
    /// A segment has characters or a shape Marathon does not allow.
    #[error("must fully match regular expression '{SEGMENT_PATTERN}'")]
    InvalidSegment(String),
    /// The id is `/` where an app id is needed.
    #[error("Path must contain at least one path element")]
    Root,
    /// The last segment is a REST suffix.
    #[error("must not end with any of the following reserved keywords: restart, tasks, versions")]
    Reserved(String),
    /// The id lies outside the group it was given in.
    #[error("Identifier is not child of '{0}'")]
    NotChildOf(String),
}

/// An absolute, canonical Marathon path id (`/group/app`, or `/` for root).
///
/// Ordering is by segments (so `/a/b` sorts before `/a-b`), which keeps
/// group members together.
#[derive(Clone, PartialEq, Eq, Hash)]
pub struct PathId {
    /// `/a/b`; `/` for root. Always canonical. Shared: every instance of an
    /// app holds its app's id, and a clone costs a reference count, not a
    /// string.
    path: std::sync::Arc<str>,
}

impl PathId {
    /// The root group, `/`.
    pub fn root() -> PathId {
        PathId { path: "/".into() }
    }

    /// Parses a group or app path. `input` may be absolute (`/a/b`) or
    /// relative to `base` (`b`, `./b`, `../c`); empty segments are dropped
    /// and `.`/`..` resolved (`..` never climbs above root). Root is allowed.
    pub fn parse(input: &str, base: &PathId) -> Result<PathId, PathIdError> {
        let mut segments: Vec<&str> = if input.starts_with('/') {
            Vec::new()
        } else {
            base.segments().collect()
        };
        for raw in input.split('/').filter(|s| !s.is_empty()) {
            match raw {
                "." => {}
                ".." => {
                    segments.pop();
                }
                segment if is_valid_segment(segment) => segments.push(segment),
                segment => return Err(PathIdError::InvalidSegment(segment.to_string())),
            }
        }
        Ok(PathId::from_valid_segments(&segments))
    }

    /// Parses a pod id: like [`PathId::parse`], and also not root and
    /// inside `base`. Its last segment may be `tasks` or `versions`: a
    /// pod's sub-resources are `::versions`, `::status`, `::instances`.
    pub fn parse_pod(input: &str, base: &PathId) -> Result<PathId, PathIdError> {
        let id = PathId::parse(input, base)?;
        if id.is_root() {
            Err(PathIdError::Root)
        } else if !id.is_descendant_of(base) {
            Err(PathIdError::NotChildOf(base.to_string()))
        } else {
            Ok(id)
        }
    }

    /// Parses an app id: as [`PathId::parse_pod`], and also not ending in a
    /// reserved word (`restart`, `tasks`, `versions`), which the app routes
    /// take.
    pub fn parse_app(input: &str, base: &PathId) -> Result<PathId, PathIdError> {
        let id = PathId::parse(input, base)?;
        let Some(last) = id.name() else {
            return Err(PathIdError::Root);
        };
        if RESERVED_LAST_SEGMENTS.contains(&last) {
            return Err(PathIdError::Reserved(last.to_string()));
        }
        if !id.is_descendant_of(base) {
            return Err(PathIdError::NotChildOf(base.to_string()));
        }
        Ok(id)
    }

    fn from_valid_segments(segments: &[&str]) -> PathId {
        PathId {
            path: format!("/{}", segments.join("/")).into(),
        }
    }

    /// The id as written in the API: `/group/app`, or `/`.
    pub fn as_str(&self) -> &str {
        &self.path
    }

    /// Whether this is `/`.
    pub fn is_root(&self) -> bool {
        &*self.path == "/"
    }

    /// The segments, outermost first (none for root).
    pub fn segments(&self) -> impl DoubleEndedIterator<Item = &str> + '_ {
        self.path.split('/').filter(|s| !s.is_empty())
    }

    /// The last segment (`app` of `/group/app`); `None` for root.
    pub fn name(&self) -> Option<&str> {
        self.segments().next_back()
    }

    /// The "safe path" used in task and instance ids: `/group/app` →
    /// `group_app` (segments cannot contain `_`, so this is reversible).
    pub fn safe(&self) -> String {
        self.segments().collect::<Vec<_>>().join("_")
    }

    /// The inverse of [`PathId::safe`]; `None` when a segment is invalid.
    pub fn from_safe(safe: &str) -> Option<PathId> {
        let segments: Vec<&str> = safe.split('_').filter(|s| !s.is_empty()).collect();
        segments
            .iter()
            .all(|s| is_valid_segment(s))
            .then(|| PathId::from_valid_segments(&segments))
    }

    /// The name mesos-dns expects in `TaskInfo.name`: the segments reversed
    /// and joined with `.` (`/group/app` → `app.group`).
    pub fn hostname(&self) -> String {
        self.segments().rev().collect::<Vec<_>>().join(".")
    }

    /// The enclosing group (`/group` for `/group/app`; root for root).
    pub fn parent(&self) -> PathId {
        let segments: Vec<&str> = self.segments().collect();
        match segments.split_last() {
            Some((_, init)) => PathId::from_valid_segments(init),
            None => PathId::root(),
        }
    }

    /// Whether `group` is this id's direct parent (what Marathon's
    /// "Identifier is not child of" checks).
    pub fn is_child_of(&self, group: &PathId) -> bool {
        !self.is_root() && self.parent() == *group
    }

    /// Whether this id lies strictly below `group` at any depth (every
    /// non-root id is a descendant of root).
    pub fn is_descendant_of(&self, group: &PathId) -> bool {
        if group.is_root() {
            return !self.is_root();
        }
        self.path
            .strip_prefix(group.as_str())
            .is_some_and(|rest| rest.len() > 1 && rest.starts_with('/'))
    }

    /// This id with one more segment; `None` if `name` is not a valid
    /// segment.
    pub fn child(&self, name: &str) -> Option<PathId> {
        if !is_valid_segment(name) {
            return None;
        }
        let mut segments: Vec<&str> = self.segments().collect();
        segments.push(name);
        Some(PathId::from_valid_segments(&segments))
    }
}

/// Whether `segment` fully matches [`SEGMENT_PATTERN`] minus the `.`/`..`
/// alternatives: dot-separated labels of `[a-z0-9-]`, each neither starting
/// nor ending with `-`.
pub fn is_valid_segment(segment: &str) -> bool {
    !segment.is_empty()
        && segment.split('.').all(|label| {
            let bytes = label.as_bytes();
            match (bytes.first(), bytes.last()) {
                (Some(first), Some(last)) => {
                    is_alnum(*first)
                        && is_alnum(*last)
                        && bytes.iter().all(|b| is_alnum(*b) || *b == b'-')
                }
                _ => false,
            }
        })
}

fn is_alnum(b: u8) -> bool {
    b.is_ascii_lowercase() || b.is_ascii_digit()
}

impl fmt::Display for PathId {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.path)
    }
}

impl fmt::Debug for PathId {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "PathId({})", self.path)
    }
}

impl Ord for PathId {
    fn cmp(&self, other: &Self) -> std::cmp::Ordering {
        self.segments().cmp(other.segments())
    }
}

impl PartialOrd for PathId {
    fn partial_cmp(&self, other: &Self) -> Option<std::cmp::Ordering> {
        Some(self.cmp(other))
    }
}

/// Parses relative to root.
impl FromStr for PathId {
    type Err = PathIdError;

    fn from_str(s: &str) -> Result<Self, Self::Err> {
        PathId::parse(s, &PathId::root())
    }
}

impl Serialize for PathId {
    fn serialize<S: Serializer>(&self, serializer: S) -> Result<S::Ok, S::Error> {
        serializer.serialize_str(&self.path)
    }
}

impl<'de> Deserialize<'de> for PathId {
    fn deserialize<D: Deserializer<'de>>(deserializer: D) -> Result<Self, D::Error> {
        let s = String::deserialize(deserializer)?;
        s.parse().map_err(serde::de::Error::custom)
    }
}
