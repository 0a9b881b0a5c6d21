//! `--acls`: the `register_frameworks` part of Mesos's ACLs and the local
//! authorizer's decision over it, as `src/authorizer/local/authorizer.cpp`
//! (`LocalHierarchicalRoleApprover`) makes it; see Mesos's
//! `docs/authorization.md`.
//!
//! Rules are tried in order. The first whose principals *match* the
//! subject and whose roles *match* the role decides, and it grants only if
//! both also *allow* them; if none matches, `permissive` decides. "Match"
//! and "allow" differ only for `NONE`: a `NONE` entry matches every
//! request and allows none, so `{"principals":{"values":["p"]},
//! "roles":{"type":"NONE"}}` denies `p` every role not granted by an
//! earlier rule. A framework must be granted every one of its roles.
//! A role value ending in `/%` is recursive: it covers every role nested
//! under that prefix (`a/%` covers `a/b` and `a/b/c`, not `a`).

use std::collections::BTreeSet;
use std::path::{Path, PathBuf};

use serde::Deserialize;

/// An `--acls` value that cannot be used.
#[derive(Debug, thiserror::Error)]
pub enum AclError {
    /// The file could not be read.
    #[error("cannot read ACLs file '{path}': {source}")]
    Read {
        /// The file.
        path: PathBuf,
        /// Why.
        #[source]
        source: std::io::Error,
    },
    /// Not Mesos's `ACLs` JSON (where says whether it came from a file).
    #[error("invalid ACLs{where_}: {reason}")]
    Invalid {
        /// `" in '<path>'"`, or empty for inline JSON.
        where_: String,
        /// The JSON error.
        reason: String,
    },
}

/// `ACL.Entity`: some values, anyone, or no one.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Entity {
    /// `{"values": [...]}` (type `SOME`, the default).
    Some(Vec<String>),
    /// `{"type": "ANY"}`.
    Any,
    /// `{"type": "NONE"}`.
    None,
}

/// One `register_frameworks` rule.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct RegisterFramework {
    /// Who.
    pub principals: Entity,
    /// Which roles.
    pub roles: Entity,
}

/// The ACLs this cluster enforces.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Acls {
    /// What to decide when no rule matches (Mesos: `true`).
    pub permissive: bool,
    /// The `register_frameworks` rules, in order.
    pub register_frameworks: Vec<RegisterFramework>,
    /// Other ACL kinds present in the JSON, which this cluster does not
    /// enforce (a real master would).
    pub ignored: Vec<String>,
}

impl Default for Acls {
    fn default() -> Self {
        Acls {
            permissive: true,
            register_frameworks: Vec::new(),
            ignored: Vec::new(),
        }
    }
}

#[derive(Deserialize)]
#[serde(rename_all = "UPPERCASE")]
enum EntityType {
    Some,
    Any,
    None,
}

#[derive(Deserialize)]
struct JsonEntity {
    #[serde(rename = "type", default)]
    ty: Option<EntityType>,
    #[serde(default)]
    values: Vec<String>,
}

#[derive(Deserialize)]
struct JsonRegister {
    principals: JsonEntity,
    roles: JsonEntity,
}

/// Mesos's `ACLs` message; unknown fields are ignored, as Mesos's JSON to
/// protobuf conversion ignores them.
#[derive(Deserialize)]
struct JsonAcls {
    #[serde(default = "yes")]
    permissive: bool,
    #[serde(default)]
    register_frameworks: Vec<JsonRegister>,
    #[serde(flatten)]
    other: serde_json::Map<String, serde_json::Value>,
}

fn yes() -> bool {
    true
}

impl From<JsonEntity> for Entity {
    fn from(e: JsonEntity) -> Entity {
        match e.ty.unwrap_or(EntityType::Some) {
            EntityType::Some => Entity::Some(e.values),
            EntityType::Any => Entity::Any,
            EntityType::None => Entity::None,
        }
    }
}

impl Acls {
    /// Parses Mesos's ACLs JSON.
    pub fn parse(json: &str) -> Result<Acls, AclError> {
        let raw: JsonAcls = serde_json::from_str(json).map_err(|e| AclError::Invalid {
            where_: String::new(),
            reason: e.to_string(),
        })?;
        Ok(Acls {
            permissive: raw.permissive,
            register_frameworks: raw
                .register_frameworks
                .into_iter()
                .map(|r| RegisterFramework {
                    principals: r.principals.into(),
                    roles: r.roles.into(),
                })
                .collect(),
            ignored: raw.other.into_iter().map(|(k, _)| k).collect(),
        })
    }

    /// An `--acls` value as Mesos takes it: inline JSON (starting with `{`),
    /// else a file path, optionally `file://`.
    pub fn load(value: &str) -> Result<Acls, AclError> {
        if value.trim_start().starts_with('{') {
            return Acls::parse(value);
        }
        let path = super::credentials::strip_file_scheme(Path::new(value));
        let text = std::fs::read_to_string(&path).map_err(|source| AclError::Read {
            path: path.clone(),
            source,
        })?;
        Acls::parse(&text).map_err(|e| match e {
            AclError::Invalid { reason, .. } => AclError::Invalid {
                where_: format!(" in '{}'", path.display()),
                reason,
            },
            other => other,
        })
    }
}

/// A rule's object side after Mesos's `createHierarchicalRoleACLs` split:
/// recursive role values (`a/%`) become rules of their own, ahead of the
/// rule holding the entry's other values.
enum Objects<'a> {
    Plain(Entity),
    Recursive(&'a str),
}

/// `matches` of the local authorizer for a request of one value (`Some`)
/// or `ANY` (`None`); requests of type `NONE` do not arise here.
fn matches(request: Option<&str>, acl: &Entity) -> bool {
    match (request, acl) {
        (_, Entity::None) | (_, Entity::Any) => true,
        (None, Entity::Some(_)) => false,
        (Some(v), Entity::Some(values)) => values.iter().any(|x| x == v),
    }
}

/// `allows` of the local authorizer, for the same requests.
fn allows(request: Option<&str>, acl: &Entity) -> bool {
    match (request, acl) {
        (_, Entity::None) => false,
        (_, Entity::Any) => true,
        (None, Entity::Some(_)) => false,
        (Some(v), Entity::Some(values)) => values.iter().any(|x| x == v),
    }
}

/// Whether `principal` (`None`: a framework without one, Mesos's `ANY`
/// subject) may register a framework with `roles`. Pure: the whole of the
/// decision behind a SUBSCRIBE's or UPDATE_FRAMEWORK's "Not authorized".
pub fn may_register_framework(
    acls: &Acls,
    principal: Option<&str>,
    roles: &BTreeSet<String>,
) -> bool {
    let mut rules: Vec<(&Entity, Objects<'_>)> = Vec::new();
    for rule in &acls.register_frameworks {
        match &rule.roles {
            Entity::Some(values) => {
                let mut plain = Vec::new();
                for v in values {
                    match v.strip_suffix('%').filter(|p| p.ends_with('/')) {
                        Some(prefix) => rules.push((&rule.principals, Objects::Recursive(prefix))),
                        None => plain.push(v.clone()),
                    }
                }
                if !plain.is_empty() {
                    rules.push((&rule.principals, Objects::Plain(Entity::Some(plain))));
                }
            }
            other => rules.push((&rule.principals, Objects::Plain(other.clone()))),
        }
    }
    let approved = |role: &str| {
        for (principals, objects) in &rules {
            match objects {
                Objects::Plain(roles) => {
                    if matches(principal, principals) && matches(Some(role), roles) {
                        return allows(principal, principals) && allows(Some(role), roles);
                    }
                }
                Objects::Recursive(prefix) => {
                    if role.starts_with(prefix) && matches(principal, principals) {
                        return allows(principal, principals);
                    }
                }
            }
        }
        acls.permissive
    };
    if roles.is_empty() {
        return acls.permissive;
    }
    roles.iter().all(|r| approved(r))
}

/// Mesos's refusal text: `stringify(ActionObject)` for REGISTER_FRAMEWORK,
/// the id empty for a framework subscribing for the first time, the roles
/// as stout prints a `std::set` (`{ a, b }`).
pub fn not_authorized_message(framework_id: &str, roles: &BTreeSet<String>) -> String {
    let roles: Vec<&str> = roles.iter().map(String::as_str).collect();
    format!(
        "Not authorized to register framework {framework_id} with roles {{ {} }}",
        roles.join(", ")
    )
}

#[cfg(test)]
mod tests {
    use super::*;

    fn roles(r: &[&str]) -> BTreeSet<String> {
        r.iter().map(|s| s.to_string()).collect()
    }

    fn may(acls: &str, principal: Option<&str>, r: &[&str]) -> bool {
        may_register_framework(&Acls::parse(acls).unwrap(), principal, &roles(r))
    }

    #[test]
    fn acl_matching_follows_the_local_authorizer() {
        // docs/authorization.md: only foo may use `analytics`; everyone
        // may use any other role.
        let only_foo = r#"{"register_frameworks":[
            {"principals":{"values":["foo"]},"roles":{"values":["analytics"]}},
            {"principals":{"type":"NONE"},"roles":{"values":["analytics"]}}]}"#;
        assert!(may(only_foo, Some("foo"), &["analytics"]));
        assert!(!may(only_foo, Some("bar"), &["analytics"]));
        assert!(!may(only_foo, None, &["analytics"]));
        assert!(may(only_foo, Some("bar"), &["ads"]));
        assert!(may(only_foo, Some("foo"), &["*"]));

        // foo may use analytics and ads and nothing else; others anything.
        let foo_limited = r#"{"register_frameworks":[
            {"principals":{"values":["foo"]},"roles":{"values":["analytics","ads"]}},
            {"principals":{"values":["foo"]},"roles":{"type":"NONE"}}]}"#;
        assert!(may(foo_limited, Some("foo"), &["ads", "analytics"]));
        assert!(!may(foo_limited, Some("foo"), &["ads", "web"]));
        assert!(!may(foo_limited, Some("foo"), &["*"]));
        assert!(may(foo_limited, Some("bar"), &["web"]));
        assert!(may(foo_limited, None, &["web"]));

        // Not permissive: only what a rule grants.
        let strict = r#"{"permissive":false,"register_frameworks":[
            {"principals":{"values":["foo"]},"roles":{"values":["analytics"]}}]}"#;
        assert!(may(strict, Some("foo"), &["analytics"]));
        assert!(!may(strict, Some("foo"), &["ads"]));
        assert!(!may(strict, Some("bar"), &["analytics"]));
        assert!(!may(strict, None, &["analytics"]));
        // No roles at all (a MULTI_ROLE framework with none): permissive.
        assert!(!may(strict, Some("foo"), &[]));
        assert!(may(only_foo, Some("foo"), &[]));

        // ANY principal: a framework without one matches it too.
        let any = r#"{"permissive":false,"register_frameworks":[
            {"principals":{"type":"ANY"},"roles":{"type":"ANY"}}]}"#;
        assert!(may(any, None, &["x"]));
        assert!(may(any, Some("p"), &["x", "y"]));
        // A principals list never matches a framework without a principal.
        let listed = r#"{"permissive":false,"register_frameworks":[
            {"principals":{"values":["p"]},"roles":{"type":"ANY"}}]}"#;
        assert!(!may(listed, None, &["x"]));
        // NONE principals: matches everyone, allows no one.
        let nobody = r#"{"register_frameworks":[
            {"principals":{"type":"NONE"},"roles":{"type":"ANY"}}]}"#;
        assert!(!may(nobody, Some("p"), &["x"]));
        assert!(!may(nobody, None, &["x"]));
        // The first matching rule decides, even if a later one would grant.
        let order = r#"{"register_frameworks":[
            {"principals":{"values":["p"]},"roles":{"type":"NONE"}},
            {"principals":{"values":["p"]},"roles":{"values":["x"]}}]}"#;
        assert!(!may(order, Some("p"), &["x"]));
    }

    #[test]
    fn recursive_role_acls_cover_nested_roles_only() {
        let tree = r#"{"permissive":false,"register_frameworks":[
            {"principals":{"values":["p"]},"roles":{"values":["eng/%","ops"]}}]}"#;
        assert!(may(tree, Some("p"), &["eng/web"]));
        assert!(may(tree, Some("p"), &["eng/web/a", "ops"]));
        assert!(!may(tree, Some("p"), &["eng"]));
        assert!(!may(tree, Some("p"), &["engineering/x"]));
        assert!(!may(tree, Some("q"), &["eng/web"]));
    }

    #[test]
    fn acls_parse_mesos_json_and_report_errors() {
        let a = Acls::parse(
            r#"{"run_tasks":[{"principals":{"type":"ANY"},"users":{"type":"ANY"}}],
                "register_frameworks":[{"principals":{"type":"SOME","values":["a"]},"roles":{}}]}"#,
        )
        .unwrap();
        assert!(a.permissive);
        assert_eq!(
            a.register_frameworks,
            vec![RegisterFramework {
                principals: Entity::Some(vec!["a".into()]),
                roles: Entity::Some(vec![]),
            }]
        );
        assert_eq!(a.ignored, vec!["run_tasks".to_string()]);
        for bad in [
            "{",
            r#"{"permissive":"yes"}"#,
            r#"{"register_frameworks":[{"principals":{"type":"ANY"}}]}"#,
            r#"{"register_frameworks":[{"principals":{"type":"ALL"},"roles":{"type":"ANY"}}]}"#,
        ] {
            assert!(
                matches!(Acls::parse(bad), Err(AclError::Invalid { .. })),
                "{bad}"
            );
        }
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("acls.json");
        std::fs::write(&path, r#"{"register_frameworks":[{}]}"#).unwrap();
        let err = Acls::load(path.to_str().unwrap()).unwrap_err().to_string();
        assert!(
            err.contains(&path.display().to_string()) && err.contains("principals"),
            "{err}"
        );
        std::fs::write(&path, r#"{"permissive":false}"#).unwrap();
        let url = format!("file://{}", path.display());
        assert!(!Acls::load(&url).unwrap().permissive);
        assert!(Acls::load(r#" {"permissive":false}"#).is_ok());
        let err = Acls::load("/no/such/acls").unwrap_err().to_string();
        assert!(err.contains("/no/such/acls"), "{err}");
    }

    #[test]
    fn refusal_text_is_mesos_stringify() {
        assert_eq!(
            not_authorized_message("", &roles(&["b", "a"])),
            "Not authorized to register framework  with roles { a, b }"
        );
    }
}
