//! The ACL file (`--acl_file`): which users and groups may do which
//! actions on which app paths. It is an allow-list: what no rule grants is
//! denied. Read and validated once at start; every problem is reported with
//! the place in the file that has it.
//!
//! ```json
//! {
//!   "groups": { "team-a": ["alice", "bob"] },
//!   "rules": [
//!     { "principals": ["group:team-a"], "actions": ["view", "create", "update", "delete", "kill"],
//!       "paths": ["/team-a/"] },
//!     { "principals": ["carol"], "actions": ["view"], "paths": ["/"] },
//!     { "principals": ["admin"], "actions": ["*"], "paths": ["/"] }
//!   ]
//! }
//! ```
//!
//! A path grants its own app and everything below it, whole segments
//! only: `/team-a/` and `/team-a` both cover `/team-a/web` but not
//! `/team-ab`; `/` covers every app. Actions that are not about one app
//! (`DELETE /v2/leader`) need the action on `/`.

use std::collections::{BTreeMap, BTreeSet};
use std::path::Path;

use serde::Deserialize;

use crate::state::app::PathId;

/// What a caller asks to do to an app.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub enum Action {
    /// Read it (lists show only what the caller may view).
    View,
    /// Create it.
    Create,
    /// Change it: update, scale, restart, roll back, reset its delay.
    Update,
    /// Destroy it.
    Delete,
    /// Kill its tasks.
    Kill,
}

impl Action {
    /// Every action, for `*`.
    pub const ALL: [Action; 5] = [
        Action::View,
        Action::Create,
        Action::Update,
        Action::Delete,
        Action::Kill,
    ];

    /// The name used in ACL files and messages.
    pub fn name(self) -> &'static str {
        match self {
            Action::View => "view",
            Action::Create => "create",
            Action::Update => "update",
            Action::Delete => "delete",
            Action::Kill => "kill",
        }
    }

    fn parse(name: &str) -> Option<Vec<Action>> {
        match name {
            "*" => Some(Action::ALL.to_vec()),
            _ => Action::ALL
                .into_iter()
                .find(|a| a.name() == name)
                .map(|a| vec![a]),
        }
    }
}

/// The ACL file is unusable; each message names the file and the place.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum AclError {
    /// The file could not be read.
    #[error("--acl_file {path}: {reason}")]
    Read {
        /// The file.
        path: String,
        /// The OS's reason.
        reason: String,
    },
    /// The file is not the expected JSON, or a rule is invalid.
    #[error("--acl_file {path}: {problems}")]
    Invalid {
        /// The file.
        path: String,
        /// Every problem, `; `-joined, each with its JSON path.
        problems: String,
    },
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct AclFile {
    #[serde(default)]
    groups: BTreeMap<String, Vec<String>>,
    rules: Vec<RuleFile>,
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct RuleFile {
    principals: Vec<String>,
    actions: Vec<String>,
    paths: Vec<String>,
}

/// One grant: these actions under these paths.
#[derive(Debug, Clone, PartialEq, Eq)]
struct Grant {
    actions: BTreeSet<Action>,
    /// Normalised prefixes without a trailing `/` (`""` is the root).
    paths: Vec<String>,
}

/// A validated ACL.
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub struct Acl {
    /// Grants by user, groups already expanded.
    by_user: BTreeMap<String, Vec<Grant>>,
}

/// What one user may do: the grants that name them, ready to check.
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub struct Permissions {
    grants: Vec<Grant>,
}

impl Acl {
    /// Reads and validates `path`.
    pub fn load(path: &Path) -> Result<Acl, AclError> {
        let text = std::fs::read_to_string(path).map_err(|e| AclError::Read {
            path: path.display().to_string(),
            reason: e.to_string(),
        })?;
        Acl::parse(&text).map_err(|problems| AclError::Invalid {
            path: path.display().to_string(),
            problems,
        })
    }

    /// Validates an ACL document; the error lists every problem found.
    pub fn parse(text: &str) -> Result<Acl, String> {
        let file: AclFile = serde_json::from_str(text).map_err(|e| e.to_string())?;
        let mut problems = Vec::new();
        for (group, members) in &file.groups {
            if members.is_empty() {
                problems.push(format!("/groups/{group}: has no members"));
            }
        }
        if file.rules.is_empty() {
            problems.push("/rules: is empty, so it would deny everything".to_string());
        }
        let mut by_user: BTreeMap<String, Vec<Grant>> = BTreeMap::new();
        for (i, rule) in file.rules.iter().enumerate() {
            let at = |field: &str| format!("/rules/{i}/{field}");
            let mut actions = BTreeSet::new();
            for (j, name) in rule.actions.iter().enumerate() {
                match Action::parse(name) {
                    Some(list) => actions.extend(list),
                    None => problems.push(format!(
                        "{}/{j}: unknown action {name:?} (expected view, create, update, delete, kill or *)",
                        at("actions")
                    )),
                }
            }
            if rule.actions.is_empty() {
                problems.push(format!("{}: is empty", at("actions")));
            }
            let mut paths = Vec::new();
            for (j, text) in rule.paths.iter().enumerate() {
                match normalise_prefix(text) {
                    Some(p) => paths.push(p),
                    None => problems.push(format!(
                        "{}/{j}: {text:?} is not an absolute app path such as /team-a/",
                        at("paths")
                    )),
                }
            }
            if rule.paths.is_empty() {
                problems.push(format!("{}: is empty", at("paths")));
            }
            if rule.principals.is_empty() {
                problems.push(format!("{}: is empty", at("principals")));
            }
            let grant = Grant { actions, paths };
            for (j, principal) in rule.principals.iter().enumerate() {
                let users: Vec<String> = match principal.strip_prefix("group:") {
                    Some(group) => match file.groups.get(group) {
                        Some(members) => members.clone(),
                        None => {
                            problems.push(format!(
                                "{}/{j}: group {group:?} is not defined under /groups",
                                at("principals")
                            ));
                            continue;
                        }
                    },
                    None if principal.is_empty() => {
                        problems.push(format!("{}/{j}: is empty", at("principals")));
                        continue;
                    }
                    None => vec![principal.clone()],
                };
                for user in users {
                    by_user.entry(user).or_default().push(grant.clone());
                }
            }
        }
        if problems.is_empty() {
            Ok(Acl { by_user })
        } else {
            Err(problems.join("; "))
        }
    }

    /// What `user` may do (nothing if no rule names them).
    pub fn permissions(&self, user: &str) -> Permissions {
        Permissions {
            grants: self.by_user.get(user).cloned().unwrap_or_default(),
        }
    }
}

impl Permissions {
    /// Whether `action` on `app` is granted.
    pub fn allows(&self, action: Action, app: &PathId) -> bool {
        self.grants
            .iter()
            .any(|g| g.actions.contains(&action) && g.paths.iter().any(|p| covers(p, app)))
    }
}

/// `/team-a/` → `/team-a`; `/` → ``. A path must be an absolute app or
/// group id as Marathon writes them (lower-case segments, no wildcards):
/// anything else would never match and silently grant nothing.
fn normalise_prefix(text: &str) -> Option<String> {
    if !text.starts_with('/') || text.contains("//") {
        return None;
    }
    let trimmed = text.trim_end_matches('/');
    if trimmed.is_empty() {
        return Some(String::new());
    }
    let id = PathId::parse(trimmed, &PathId::root()).ok()?;
    (id.to_string() == trimmed).then(|| trimmed.to_string())
}

/// Whether a normalised prefix covers an app id, on whole segments.
fn covers(prefix: &str, app: &PathId) -> bool {
    let id = app.to_string();
    prefix.is_empty()
        || id == prefix
        || id
            .strip_prefix(prefix)
            .is_some_and(|rest| rest.starts_with('/'))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn id(text: &str) -> PathId {
        PathId::parse(text, &PathId::root()).unwrap()
    }

    const SAMPLE: &str = r#"{
        "groups": {"team-a": ["alice", "bob"]},
        "rules": [
            {"principals": ["group:team-a"], "actions": ["view", "create", "update", "delete", "kill"],
             "paths": ["/team-a/"]},
            {"principals": ["carol"], "actions": ["view"], "paths": ["/"]},
            {"principals": ["admin"], "actions": ["*"], "paths": ["/"]},
            {"principals": ["bob"], "actions": ["kill"], "paths": ["/shared/cache"]}
        ]
    }"#;

    #[test]
    fn a_path_grants_its_own_app_and_below_on_whole_segments() {
        let acl = Acl::parse(SAMPLE).unwrap();
        let alice = acl.permissions("alice");
        assert!(alice.allows(Action::Update, &id("/team-a/web")));
        assert!(alice.allows(Action::View, &id("/team-a/deep/er/app")));
        assert!(!alice.allows(Action::View, &id("/team-ab/web")));
        assert!(!alice.allows(Action::View, &id("/team-b/x")));
        let bob = acl.permissions("bob");
        assert!(bob.allows(Action::Kill, &id("/shared/cache")));
        assert!(bob.allows(Action::Kill, &id("/shared/cache/a")));
        assert!(!bob.allows(Action::Kill, &id("/shared/cached")));
        assert!(!bob.allows(Action::View, &id("/shared/cache")));
    }

    #[test]
    fn actions_are_granted_one_by_one_and_star_grants_all() {
        let acl = Acl::parse(SAMPLE).unwrap();
        let carol = acl.permissions("carol");
        assert!(carol.allows(Action::View, &id("/team-b/x")));
        for action in [Action::Create, Action::Update, Action::Delete, Action::Kill] {
            assert!(!carol.allows(action, &id("/team-b/x")), "{action:?}");
        }
        let admin = acl.permissions("admin");
        assert!(
            Action::ALL
                .iter()
                .all(|a| admin.allows(*a, &id("/any/app")))
        );
        assert!(admin.allows(Action::Update, &PathId::root()));
    }

    #[test]
    fn a_user_no_rule_names_may_do_nothing() {
        let acl = Acl::parse(SAMPLE).unwrap();
        let mallory = acl.permissions("mallory");
        assert!(
            Action::ALL
                .iter()
                .all(|a| !mallory.allows(*a, &id("/team-a/web")))
        );
    }

    #[test]
    fn every_problem_is_named_with_its_place() {
        let bad = r#"{
            "groups": {"empty": []},
            "rules": [
                {"principals": ["group:nope", ""], "actions": ["view", "destroy"], "paths": ["team-a", "/ok/", "/Team-B/*"]},
                {"principals": [], "actions": [], "paths": []}
            ]
        }"#;
        let e = Acl::parse(bad).unwrap_err();
        for expected in [
            "/groups/empty: has no members",
            "/rules/0/principals/0: group \"nope\" is not defined",
            "/rules/0/principals/1: is empty",
            "/rules/0/actions/1: unknown action \"destroy\"",
            "/rules/0/paths/0: \"team-a\" is not an absolute app path",
            "/rules/0/paths/2: \"/Team-B/*\" is not an absolute app path",
            "/rules/1/principals: is empty",
            "/rules/1/actions: is empty",
            "/rules/1/paths: is empty",
        ] {
            assert!(e.contains(expected), "missing {expected:?} in {e}");
        }
        let unknown = Acl::parse(r#"{"rules": [], "users": {}}"#).unwrap_err();
        assert!(unknown.contains("unknown field `users`"), "{unknown}");
        assert!(Acl::parse("not json").is_err());
    }

    #[test]
    fn loading_names_the_file() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("acl.json");
        std::fs::write(
            &path,
            r#"{"rules": [{"principals": ["a"], "actions": ["x"], "paths": ["/"]}]}"#,
        )
        .unwrap();
        let e = Acl::load(&path).unwrap_err().to_string();
        assert!(
            e.starts_with("--acl_file ") && e.contains("acl.json"),
            "{e}"
        );
        assert!(e.contains("/rules/0/actions/0"), "{e}");
        let e = Acl::load(&dir.path().join("missing.json"))
            .unwrap_err()
            .to_string();
        assert!(e.contains("missing.json"), "{e}");
    }
}
