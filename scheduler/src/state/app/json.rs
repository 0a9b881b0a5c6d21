//! The JSON reading toolkit of the app model: every problem collected
//! with its path (play-json's error codes for wrong types, Marathon's
//! messages for broken rules) and reported at once, and typed readers of
//! values and object members that record what is wrong instead of
//! stopping. Used by the parser and the validator alike.

use std::collections::BTreeMap;

use serde_json::{Map, Value};

use super::{AppError, Timestamp, Violation};

/// The problems found so far.
#[derive(Debug, Default)]
pub(crate) struct Problems {
    wrong_type: Vec<(String, String)>,
    invalid: Vec<(String, String)>,
}

impl Problems {
    /// Records a type or shape error (400).
    pub fn wrong_type(&mut self, path: &str, code: &str) {
        self.wrong_type
            .push((root_if_empty(path), code.to_string()));
    }

    /// Records a rule violation (422).
    pub fn invalid(&mut self, path: &str, message: impl Into<String>) {
        self.invalid.push((root_if_empty(path), message.into()));
    }

    /// `value` if nothing was found, else the error: type errors first,
    /// as Marathon reports them before it validates.
    pub fn finish<T>(self, value: T) -> Result<T, AppError> {
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

pub(crate) fn root_if_empty(path: &str) -> String {
    if path.is_empty() {
        "/".into()
    } else {
        path.to_string()
    }
}

/// Groups messages by path, keeping the order paths first appeared in and
/// dropping repeated messages.
pub(crate) fn group(pairs: Vec<(String, String)>) -> Vec<Violation> {
    let mut out: Vec<Violation> = Vec::new();
    for (path, message) in pairs {
        match out.iter_mut().find(|v| v.path == path) {
            Some(v) => {
                if !v.errors.contains(&message) {
                    v.errors.push(message);
                }
            }
            None => out.push(Violation {
                path,
                errors: vec![message],
            }),
        }
    }
    out
}

/// "got -1, expected 0 or more": accord's message for a lower bound.
pub(crate) fn below_min(got: impl std::fmt::Debug, min: impl std::fmt::Debug) -> String {
    format!("got {got:?}, expected {min:?} or more")
}

/// "got 70000, expected 65535 or less".
pub(crate) fn above_max(got: impl std::fmt::Debug, max: impl std::fmt::Debug) -> String {
    format!("got {got:?}, expected {max:?} or less")
}

pub(crate) fn as_string(v: &Value, path: &str, p: &mut Problems) -> Option<String> {
    match v {
        Value::String(s) => Some(s.clone()),
        _ => {
            p.wrong_type(path, "error.expected.jsstring");
            None
        }
    }
}

pub(crate) fn as_bool(v: &Value, path: &str, p: &mut Problems) -> Option<bool> {
    match v {
        Value::Bool(b) => Some(*b),
        _ => {
            p.wrong_type(path, "error.expected.jsboolean");
            None
        }
    }
}

pub(crate) fn as_number(v: &Value, path: &str, p: &mut Problems) -> Option<f64> {
    match v.as_f64() {
        Some(n) if v.is_number() => Some(n),
        _ => {
            p.wrong_type(path, "error.expected.jsnumber");
            None
        }
    }
}

/// An integer within `[min, max]`. `2.0` counts as an integer (as in
/// play-json); out-of-range values are rule violations.
pub(crate) fn as_int(v: &Value, path: &str, p: &mut Problems, min: i64, max: i64) -> Option<i64> {
    let Value::Number(n) = v else {
        p.wrong_type(path, "error.expected.jsnumber");
        return None;
    };
    let int = n.as_i64().or_else(|| {
        n.as_f64()
            .filter(|f| f.fract() == 0.0 && f.abs() < 9.0e15)
            // Exact: |f| < 2^53 and integral.
            .map(|f| f as i64)
    });
    match int {
        None => {
            p.wrong_type(path, "error.expected.int");
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

pub(crate) const INT32_MAX: i64 = i32::MAX as i64;

pub(crate) fn as_u32(v: &Value, path: &str, p: &mut Problems) -> Option<u32> {
    as_int(v, path, p, 0, INT32_MAX).and_then(|i| u32::try_from(i).ok())
}

pub(crate) fn as_port(v: &Value, path: &str, p: &mut Problems) -> Option<u16> {
    as_int(v, path, p, 0, 65_535).and_then(|i| u16::try_from(i).ok())
}

pub(crate) fn as_timestamp(v: &Value, path: &str, p: &mut Problems) -> Option<Timestamp> {
    let s = as_string(v, path, p)?;
    match s.parse() {
        Ok(t) => Some(t),
        Err(_) => {
            p.wrong_type(path, "error.expected.date.isoformat");
            None
        }
    }
}

/// A JSON object being read, with its path (`""` for the app itself).
pub(crate) struct Obj<'v> {
    pub(crate) map: &'v Map<String, Value>,
    pub(crate) path: String,
}

impl<'v> Obj<'v> {
    pub(crate) fn new(v: &'v Value, path: String, p: &mut Problems) -> Option<Obj<'v>> {
        match v {
            Value::Object(map) => Some(Obj { map, path }),
            _ => {
                p.wrong_type(&path, "error.expected.jsobject");
                None
            }
        }
    }

    pub(crate) fn path(&self, key: &str) -> String {
        format!("{}/{}", self.path, key)
    }

    /// The object's own path.
    pub(crate) fn own_path(&self) -> &str {
        &self.path
    }

    /// A required string member.
    pub(crate) fn required_string(&self, key: &str, p: &mut Problems) -> Option<String> {
        as_string(self.require(key, p)?, &self.path(key), p)
    }

    /// The members of an object member, with their paths.
    pub(crate) fn members(
        &self,
        key: &str,
        p: &mut Problems,
    ) -> Option<Vec<(&'v String, String, &'v Value)>> {
        let o = self.obj(key, p)?;
        Some(o.map.iter().map(|(k, v)| (k, o.path(k), v)).collect())
    }

    /// The member, unless absent or `null` (which both mean "default").
    pub(crate) fn get(&self, key: &str) -> Option<&'v Value> {
        self.map.get(key).filter(|v| !v.is_null())
    }

    pub(crate) fn has(&self, key: &str) -> bool {
        self.get(key).is_some()
    }

    /// A required member: absent is `error.path.missing`.
    pub(crate) fn require(&self, key: &str, p: &mut Problems) -> Option<&'v Value> {
        let v = self.get(key);
        if v.is_none() {
            p.wrong_type(&self.path(key), "error.path.missing");
        }
        v
    }

    pub(crate) fn string(&self, key: &str, p: &mut Problems) -> Option<String> {
        as_string(self.get(key)?, &self.path(key), p)
    }

    pub(crate) fn bool(&self, key: &str, p: &mut Problems) -> Option<bool> {
        as_bool(self.get(key)?, &self.path(key), p)
    }

    pub(crate) fn number(&self, key: &str, p: &mut Problems) -> Option<f64> {
        as_number(self.get(key)?, &self.path(key), p)
    }

    pub(crate) fn u32(&self, key: &str, p: &mut Problems) -> Option<u32> {
        as_u32(self.get(key)?, &self.path(key), p)
    }

    pub(crate) fn u64(&self, key: &str, p: &mut Problems) -> Option<u64> {
        as_int(self.get(key)?, &self.path(key), p, 0, i64::MAX).and_then(|i| u64::try_from(i).ok())
    }

    pub(crate) fn port(&self, key: &str, p: &mut Problems) -> Option<u16> {
        as_port(self.get(key)?, &self.path(key), p)
    }

    pub(crate) fn timestamp(&self, key: &str, p: &mut Problems) -> Option<Timestamp> {
        as_timestamp(self.get(key)?, &self.path(key), p)
    }

    pub(crate) fn obj(&self, key: &str, p: &mut Problems) -> Option<Obj<'v>> {
        Obj::new(self.get(key)?, self.path(key), p)
    }

    /// A pass-through object member.
    pub(crate) fn raw_object(&self, key: &str, p: &mut Problems) -> Option<Value> {
        self.obj(key, p).map(|o| Value::Object(o.map.clone()))
    }

    /// An array member's items with their paths (`/key(i)`).
    pub(crate) fn items(&self, key: &str, p: &mut Problems) -> Option<Vec<(String, &'v Value)>> {
        let path = self.path(key);
        match self.get(key)? {
            Value::Array(items) => Some(
                items
                    .iter()
                    .enumerate()
                    .map(|(i, v)| (format!("{path}({i})"), v))
                    .collect(),
            ),
            _ => {
                p.wrong_type(&path, "error.expected.jsarray");
                None
            }
        }
    }

    /// An array member read item by item; items that fail are left out
    /// (their errors are recorded).
    pub(crate) fn list<T>(
        &self,
        key: &str,
        p: &mut Problems,
        mut read: impl FnMut(&Value, &str, &mut Problems) -> Option<T>,
    ) -> Option<Vec<T>> {
        let items = self.items(key, p)?;
        Some(
            items
                .into_iter()
                .filter_map(|(path, v)| read(v, &path, p))
                .collect(),
        )
    }

    pub(crate) fn strings(&self, key: &str, p: &mut Problems) -> Option<Vec<String>> {
        self.list(key, p, as_string)
    }

    /// A string-to-string object (labels).
    pub(crate) fn string_map(
        &self,
        key: &str,
        p: &mut Problems,
    ) -> Option<BTreeMap<String, String>> {
        let o = self.obj(key, p)?;
        Some(
            o.map
                .iter()
                .filter_map(|(k, v)| as_string(v, &o.path(k), p).map(|s| (k.clone(), s)))
                .collect(),
        )
    }

    /// A string naming one of an enumeration's values.
    pub(crate) fn enumeration<T>(
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

impl Obj<'_> {
    /// An array value (not a member) read item by item: `path(i)`.
    pub(crate) fn list_value<T>(
        v: &Value,
        path: &str,
        p: &mut Problems,
        mut read: impl FnMut(&Value, &str, &mut Problems) -> Option<T>,
    ) -> Option<Vec<T>> {
        match v {
            Value::Array(items) => {
                let mut out = Vec::with_capacity(items.len());
                let mut ok = true;
                for (i, item) in items.iter().enumerate() {
                    match read(item, &format!("{path}({i})"), p) {
                        Some(t) => out.push(t),
                        None => ok = false,
                    }
                }
                ok.then_some(out)
            }
            _ => {
                p.wrong_type(path, "error.expected.jsarray");
                None
            }
        }
    }
}
