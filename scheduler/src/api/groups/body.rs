//! Reading a group body (a GroupUpdate): every app it writes or removes,
//! with ids relative to their group, every problem reported at once with
//! its path from the body's root, and no app left nested under another.

use std::collections::{BTreeMap, BTreeSet};
use std::sync::Arc;

use imbl::OrdMap;
use serde_json::Value;

use crate::state::app::{AppDefaults, AppDefinition, AppError, PathId, PathIdError, Violation};

/// Reads a GroupUpdate body for `group` against the `current` apps: each
/// app id it changes → its new definition, or `None` to remove it. Every
/// problem is reported at once, with paths from the body's root; the
/// result is checked to leave no app nested under another.
pub(super) fn desired_apps(
    body: &Value,
    group: &PathId,
    current: &OrdMap<PathId, Arc<AppDefinition>>,
    defaults: &AppDefaults,
) -> Result<BTreeMap<PathId, Option<AppDefinition>>, AppError> {
    let mut reader = Reader {
        current,
        defaults,
        desired: BTreeMap::new(),
        listed: BTreeSet::new(),
        wrong_type: Vec::new(),
        invalid: Vec::new(),
    };
    reader.group(body, group, "");
    let Reader {
        desired,
        wrong_type,
        mut invalid,
        ..
    } = reader;
    if !wrong_type.is_empty() {
        let mut details = wrong_type;
        details.append(&mut invalid);
        return Err(AppError::WrongType { details });
    }
    if !invalid.is_empty() {
        return Err(AppError::Invalid(invalid));
    }
    check_tree(current, &desired)?;
    Ok(desired)
}

/// `rest` (a violation's path, `/` for the whole) below `prefix`.
pub(super) fn join(prefix: &str, rest: &str) -> String {
    match rest {
        "" | "/" if prefix.is_empty() => "/".into(),
        "" | "/" => prefix.into(),
        r if r.starts_with('/') || r.starts_with('(') => format!("{prefix}{r}"),
        r => format!("{prefix}/{r}"),
    }
}

struct Reader<'a> {
    current: &'a OrdMap<PathId, Arc<AppDefinition>>,
    defaults: &'a AppDefaults,
    desired: BTreeMap<PathId, Option<AppDefinition>>,
    /// Apps the body lists, to refuse one listed twice.
    listed: BTreeSet<PathId>,
    wrong_type: Vec<Violation>,
    invalid: Vec<Violation>,
}

impl Reader<'_> {
    fn wrong(&mut self, path: String, code: &str) {
        self.wrong_type.push(Violation {
            path,
            errors: vec![code.into()],
        });
    }

    fn invalid(&mut self, path: String, message: impl Into<String>) {
        self.invalid.push(Violation {
            path,
            errors: vec![message.into()],
        });
    }

    /// A member that must be an array, if present and not null.
    fn array<'v>(
        &mut self,
        obj: &'v serde_json::Map<String, Value>,
        key: &str,
        at: &str,
    ) -> Option<&'v Vec<Value>> {
        match obj.get(key) {
            None | Some(Value::Null) => None,
            Some(Value::Array(list)) => Some(list),
            Some(_) => {
                self.wrong(join(at, &format!("/{key}")), "error.expected.jsarray");
                None
            }
        }
    }

    /// One group of the body (`at` is its path from the body's root).
    fn group(&mut self, body: &Value, id: &PathId, at: &str) {
        let Some(obj) = body.as_object() else {
            self.wrong(join(at, "/"), "error.expected.jsobject");
            return;
        };
        if self
            .array(obj, "dependencies", at)
            .is_some_and(|d| !d.is_empty())
        {
            self.invalid(
                join(at, "/dependencies"),
                "Baton keeps no group objects, so a group cannot have dependencies; \
                 give its apps `dependencies` instead",
            );
        }
        if self.array(obj, "pods", at).is_some_and(|p| !p.is_empty()) {
            self.invalid(
                join(at, "/pods"),
                "pods are written through /v2/pods, not as part of a group",
            );
        }
        if let Some(apps) = self.array(obj, "apps", at) {
            let mut here = BTreeSet::new();
            for (i, value) in apps.iter().enumerate() {
                let app_at = format!("{at}/apps({i})");
                match AppDefinition::from_value(value, id, self.defaults) {
                    Ok(app) => {
                        if !self.listed.insert(app.id.clone()) {
                            self.invalid(
                                format!("{app_at}/id"),
                                format!("The app {} is listed twice", app.id),
                            );
                            continue;
                        }
                        here.insert(app.id.clone());
                        self.desired.insert(app.id.clone(), Some(app));
                    }
                    Err(e) => self.app_error(&app_at, e),
                }
            }
            // The group's own apps that the list leaves out are removed.
            // (Pods are written through /v2/pods; a group's apps leave
            // them be.)
            for (existing, app) in subtree(self.current, id) {
                if existing.parent() == *id && !here.contains(existing) && !app.is_pod() {
                    self.desired.entry(existing.clone()).or_insert(None);
                }
            }
        }
        if let Some(groups) = self.array(obj, "groups", at) {
            let mut kept = Vec::new();
            for (i, value) in groups.iter().enumerate() {
                let group_at = format!("{at}/groups({i})");
                if let Some(child) = self.subgroup_id(value, id, &group_at) {
                    self.group(value, &child, &group_at);
                    kept.push(child);
                }
            }
            // Apps in subgroups that the list leaves out are removed.
            for (existing, app) in subtree(self.current, id) {
                if existing.parent() != *id
                    && !kept.iter().any(|g| existing.is_descendant_of(g))
                    && !app.is_pod()
                {
                    self.desired.entry(existing.clone()).or_insert(None);
                }
            }
        }
    }

    /// A nested group's id: required, relative to its parent, below it.
    fn subgroup_id(&mut self, value: &Value, parent: &PathId, at: &str) -> Option<PathId> {
        let id_at = format!("{at}/id");
        match value.get("id") {
            _ if !value.is_object() => {
                self.wrong(at.into(), "error.expected.jsobject");
                None
            }
            None | Some(Value::Null) => {
                self.wrong(id_at, "error.path.missing");
                None
            }
            Some(Value::String(s)) => match PathId::parse(s, parent) {
                Ok(child) if child.is_descendant_of(parent) => Some(child),
                Ok(_) => {
                    self.invalid(
                        id_at,
                        PathIdError::NotChildOf(parent.to_string()).to_string(),
                    );
                    None
                }
                Err(e) => {
                    self.invalid(id_at, e.to_string());
                    None
                }
            },
            Some(_) => {
                self.wrong(id_at, "error.expected.jsstring");
                None
            }
        }
    }

    fn app_error(&mut self, at: &str, error: AppError) {
        match error {
            AppError::InvalidJson { details } => self.invalid(at.into(), details),
            AppError::WrongType { details } => {
                self.wrong_type
                    .extend(details.into_iter().map(|v| Violation {
                        path: join(at, &v.path),
                        errors: v.errors,
                    }))
            }
            AppError::Invalid(details) => {
                self.invalid.extend(details.into_iter().map(|v| Violation {
                    path: join(at, &v.path),
                    errors: v.errors,
                }))
            }
        }
    }
}

/// 422 when the change would put an app below another app (a group and an
/// app cannot share an id). Ids sort by segments, so an app's descendants
/// follow it directly: neighbours are enough.
fn check_tree(
    current: &OrdMap<PathId, Arc<AppDefinition>>,
    desired: &BTreeMap<PathId, Option<AppDefinition>>,
) -> Result<(), AppError> {
    if desired.values().all(Option::is_none) {
        return Ok(());
    }
    let mut ids: BTreeSet<&PathId> = current.keys().collect();
    for (id, want) in desired {
        if want.is_some() {
            ids.insert(id);
        } else {
            ids.remove(id);
        }
    }
    let mut problems = Vec::new();
    let mut previous: Option<&PathId> = None;
    for id in ids {
        if let Some(app) = previous
            && id.is_descendant_of(app)
        {
            problems.push(Violation {
                path: "/".into(),
                errors: vec![format!(
                    "The path {app} is an app; {id} cannot be nested under it"
                )],
            });
            continue;
        }
        previous = Some(id);
    }
    if problems.is_empty() {
        Ok(())
    } else {
        Err(AppError::Invalid(problems))
    }
}

/// The apps strictly below `group`, in id order (ids sort by segments, so
/// they follow the group's own id in the map).
pub(super) fn subtree<'a, V>(
    map: &'a OrdMap<PathId, V>,
    group: &PathId,
) -> Vec<(&'a PathId, &'a V)> {
    if group.is_root() {
        return map.iter().collect();
    }
    map.range(group.clone()..)
        .skip_while(|(id, _)| *id == group)
        .take_while(|(id, _)| id.is_descendant_of(group))
        .collect()
}
