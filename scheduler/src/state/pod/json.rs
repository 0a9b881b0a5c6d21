//! The pod reader's JSON toolkit: typed readers of values and object
//! members that record a problem with its path (play-json's codes for wrong
//! types, Marathon's messages for broken rules) and carry on, so that one
//! answer lists every problem. It ends in the app model's [`AppError`],
//! so pods and apps refuse bodies in the same shapes.

use std::collections::BTreeMap;

use serde_json::{Map, Value};

use crate::state::app::{AppError, Timestamp, Violation};

/// The problems found so far, in the order found.
#[derive(Debug, Default)]
pub(super) struct Problems {
    wrong_type: Vec<(String, String)>,
    invalid: Vec<(String, String)>,
}

impl Problems {
    /// A type or shape error (400).
    pub(super) fn wrong_type(&mut self, path: &str, code: &str) {
        self.wrong_type
            .push((root_if_empty(path), code.to_string()));
    }

    /// A broken rule (422).
    pub(super) fn invalid(&mut self, path: &str, message: impl Into<String>) {
        self.invalid.push((root_if_empty(path), message.into()));
    }

    /// `value` when nothing was found; else type errors first (Marathon
    /// reports those before it validates), then rule violations.
    pub(super) fn finish<T>(self, value: T) -> Result<T, AppError> {
        if !self.wrong_type.is_empty() {
            Err(AppError::WrongType {
                details: group(self.wrong_type),
            })
        } else if !self.invalid.is_empty() {
            Err(AppError::Invalid(group(self.invalid)))
        } else {
            Ok(value)
        }
    }
}

fn root_if_empty(path: &str) -> String {
    if path.is_empty() {
        "/".into()
    } else {
        path.to_string()
    }
}

/// One [`Violation`] per path, paths in first-seen order, repeated
/// messages dropped.
fn group(pairs: Vec<(String, String)>) -> Vec<Violation> {
    let mut out: Vec<Violation> = Vec::new();
    for (path, message) in pairs {
        match out.iter_mut().find(|v| v.path == path) {
            Some(v) if v.errors.contains(&message) => {}
            Some(v) => v.errors.push(message),
            None => out.push(Violation {
                path,
                errors: vec![message],
            }),
        }
    }
    out
}

/// Accord's lower-bound message: "got -1.0, expected 0.0 or more".
pub(super) fn below_min(got: impl std::fmt::Debug, min: impl std::fmt::Debug) -> String {
    format!("got {got:?}, expected {min:?} or more")
}

/// Accord's upper-bound message: "got 2.0, expected 1.0 or less".
pub(super) fn above_max(got: impl std::fmt::Debug, max: impl std::fmt::Debug) -> String {
    format!("got {got:?}, expected {max:?} or less")
}

pub(super) fn as_string(v: &Value, path: &str, p: &mut Problems) -> Option<String> {
    match v {
        Value::String(s) => Some(s.clone()),
        _ => {
            p.wrong_type(path, "error.expected.jsstring");
            None
        }
    }
}

fn as_bool(v: &Value, path: &str, p: &mut Problems) -> Option<bool> {
    match v {
        Value::Bool(b) => Some(*b),
        _ => {
            p.wrong_type(path, "error.expected.jsboolean");
            None
        }
    }
}

/// A finite number.
pub(super) fn as_number(v: &Value, path: &str, p: &mut Problems) -> Option<f64> {
    match v {
        Value::Number(n) => n.as_f64(),
        _ => {
            p.wrong_type(path, "error.expected.jsnumber");
            None
        }
    }
}

/// An integer within `[min, max]`; `2.0` counts (as in play-json), and
/// out-of-range values are rule violations, not type errors.
fn as_int(v: &Value, path: &str, p: &mut Problems, min: i64, max: i64) -> Option<i64> {
    let Value::Number(n) = v else {
        p.wrong_type(path, "error.expected.jsnumber");
        return None;
    };
    let int = n.as_i64().or_else(|| {
        n.as_f64()
            // Exact only below 2^53.
            .filter(|f| f.fract() == 0.0 && f.abs() < 9.0e15)
            .map(|f| f as i64)
    });
    match int {
        None => {
            // A u64 above i64::MAX is still an integer, just too large.
            if n.as_u64().is_some() {
                p.invalid(path, above_max(n, max));
            } else {
                p.wrong_type(path, "error.expected.int");
            }
            None
        }
        Some(i) if i < min => {
            p.invalid(path, below_min(i, min));
            None
        }
        Some(i) if i > max => {
            p.invalid(path, above_max(i, max));
            None
        }
        Some(i) => Some(i),
    }
}

/// A JSON object being read, with its path (`""` for the pod itself).
pub(super) struct Obj<'v> {
    map: &'v Map<String, Value>,
    path: String,
}

impl<'v> Obj<'v> {
    pub(super) fn new(v: &'v Value, path: String, p: &mut Problems) -> Option<Obj<'v>> {
        match v {
            Value::Object(map) => Some(Obj { map, path }),
            _ => {
                p.wrong_type(&path, "error.expected.jsobject");
                None
            }
        }
    }

    /// The object's own path.
    pub(super) fn own_path(&self) -> &str {
        &self.path
    }

    /// The path of a member.
    pub(super) fn path(&self, key: &str) -> String {
        format!("{}/{}", self.path, key)
    }

    /// The member, unless absent or `null` (both mean "default").
    pub(super) fn get(&self, key: &str) -> Option<&'v Value> {
        self.map.get(key).filter(|v| !v.is_null())
    }

    pub(super) fn has(&self, key: &str) -> bool {
        self.get(key).is_some()
    }

    /// A required member: absent is `error.path.missing`.
    pub(super) fn require(&self, key: &str, p: &mut Problems) -> Option<&'v Value> {
        let v = self.get(key);
        if v.is_none() {
            p.wrong_type(&self.path(key), "error.path.missing");
        }
        v
    }

    pub(super) fn required_string(&self, key: &str, p: &mut Problems) -> Option<String> {
        as_string(self.require(key, p)?, &self.path(key), p)
    }

    pub(super) fn string(&self, key: &str, p: &mut Problems) -> Option<String> {
        as_string(self.get(key)?, &self.path(key), p)
    }

    pub(super) fn bool(&self, key: &str, p: &mut Problems) -> Option<bool> {
        as_bool(self.get(key)?, &self.path(key), p)
    }

    pub(super) fn number(&self, key: &str, p: &mut Problems) -> Option<f64> {
        as_number(self.get(key)?, &self.path(key), p)
    }

    /// A non-negative 32-bit integer (`format: int32, minimum: 0`).
    pub(super) fn u32(&self, key: &str, p: &mut Problems) -> Option<u32> {
        as_int(self.get(key)?, &self.path(key), p, 0, i64::from(i32::MAX))
            .and_then(|i| u32::try_from(i).ok())
    }

    /// A non-negative 64-bit integer.
    pub(super) fn u64(&self, key: &str, p: &mut Problems) -> Option<u64> {
        as_int(self.get(key)?, &self.path(key), p, 0, i64::MAX).and_then(|i| u64::try_from(i).ok())
    }

    /// A port number, 0 to 65535.
    pub(super) fn port(&self, key: &str, p: &mut Problems) -> Option<u16> {
        as_int(self.get(key)?, &self.path(key), p, 0, 65535).and_then(|i| u16::try_from(i).ok())
    }

    pub(super) fn timestamp(&self, key: &str, p: &mut Problems) -> Option<Timestamp> {
        let path = self.path(key);
        let s = as_string(self.get(key)?, &path, p)?;
        match s.parse() {
            Ok(t) => Some(t),
            Err(_) => {
                p.wrong_type(&path, "error.expected.date.isoformat");
                None
            }
        }
    }

    pub(super) fn obj(&self, key: &str, p: &mut Problems) -> Option<Obj<'v>> {
        Obj::new(self.get(key)?, self.path(key), p)
    }

    /// A pass-through object member.
    pub(super) fn raw_object(&self, key: &str, p: &mut Problems) -> Option<Value> {
        self.obj(key, p).map(|o| Value::Object(o.map.clone()))
    }

    /// An array member read item by item (paths `/key(i)`); items that fail
    /// are left out, their problems recorded.
    pub(super) fn list<T>(
        &self,
        key: &str,
        p: &mut Problems,
        mut read: impl FnMut(&'v Value, &str, &mut Problems) -> Option<T>,
    ) -> Option<Vec<T>> {
        let path = self.path(key);
        match self.get(key)? {
            Value::Array(items) => Some(
                items
                    .iter()
                    .enumerate()
                    .filter_map(|(i, v)| read(v, &format!("{path}({i})"), p))
                    .collect(),
            ),
            _ => {
                p.wrong_type(&path, "error.expected.jsarray");
                None
            }
        }
    }

    pub(super) fn strings(&self, key: &str, p: &mut Problems) -> Option<Vec<String>> {
        self.list(key, p, as_string)
    }

    /// The members of an object member, with their paths.
    pub(super) fn members(
        &self,
        key: &str,
        p: &mut Problems,
    ) -> Option<Vec<(&'v String, String, &'v Value)>> {
        let o = self.obj(key, p)?;
        Some(o.map.iter().map(|(k, v)| (k, o.path(k), v)).collect())
    }

    /// A string-to-string object (labels).
    pub(super) fn string_map(&self, key: &str, p: &mut Problems) -> BTreeMap<String, String> {
        self.members(key, p)
            .unwrap_or_default()
            .into_iter()
            .filter_map(|(k, path, v)| as_string(v, &path, p).map(|s| (k.clone(), s)))
            .collect()
    }

    /// A string naming one of an enumeration's values.
    pub(super) fn enumeration<T>(
        &self,
        key: &str,
        p: &mut Problems,
        parse: impl Fn(&str) -> Option<T>,
    ) -> Option<T> {
        let s = self.string(key, p)?;
        let parsed = parse(&s);
        if parsed.is_none() {
            p.wrong_type(&self.path(key), "error.unknown.enum.literal");
        }
        parsed
    }
}
