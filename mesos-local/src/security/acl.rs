//! `--acls`: Mesos's ACLs JSON and the local authorizer's decisions over
//! the kinds enforced here, as `src/authorizer/local/authorizer.cpp` makes
//! them; see Mesos's `docs/authorization.md`.
//!
//! Enforced: `register_frameworks` (`principals`/`roles`),
//! `register_agents` (`principals`/`agents`), `run_tasks`
//! (`principals`/`users`), and `view_frameworks`, `view_tasks`,
//! `view_executors` (`principals`/`users`). Any other kind is kept in
//! [`Acls::ignored`] (a real master would enforce it).
//!
//! Every kind is decided by one engine, the local authorizer's: the
//! request is a *subject* (the principal, or `ANY` when there is none: an
//! agent, a framework without a principal, an unauthenticated reader) and
//! an *object* (a role, a user, or `ANY` for `register_agents`). Rules are
//! tried in order. The first whose principals *match* the subject and
//! whose objects *match* the object decides, and it grants only if both
//! also *allow* them; if none matches, `permissive` decides. "Match" and
//! "allow" differ only for `NONE`: a `NONE` entry matches every request
//! and allows none, so `{"principals":{"values":["p"]},
//! "roles":{"type":"NONE"}}` denies `p` every role not granted by an
//! earlier rule. A values list never matches an `ANY` request: a rule
//! naming principals is skipped for a subject without one, and only
//! `{"type":"ANY"}` (or `NONE`) principals can grant it anything.
//!
//! `register_frameworks` only: a framework must be granted every one of
//! its roles, and a role value ending in `/%` is recursive: it covers
//! every role nested under that prefix (`a/%` covers `a/b` and `a/b/c`,
//! not `a`).

use std::borrow::Cow;
use std::collections::BTreeSet;
use std::path::{Path, PathBuf};

use mesos_proto::v1;
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

/// One rule of the other enforced kinds: who (`principals`) may act on
/// what (the kind's object entity: `agents` for `register_agents`,
/// `users` for `run_tasks` and the `view_*` kinds).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Rule {
    /// Who.
    pub principals: Entity,
    /// On what.
    pub objects: Entity,
}

/// The ACLs this cluster enforces.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Acls {
    /// What to decide when no rule matches (Mesos: `true`).
    pub permissive: bool,
    /// The `register_frameworks` rules, in order.
    pub register_frameworks: Vec<RegisterFramework>,
    /// The `register_agents` rules (`principals`, `agents`).
    pub register_agents: Vec<Rule>,
    /// The `run_tasks` rules (`principals`, `users`).
    pub run_tasks: Vec<Rule>,
    /// The `view_frameworks` rules (`principals`, `users`).
    pub view_frameworks: Vec<Rule>,
    /// The `view_tasks` rules (`principals`, `users`).
    pub view_tasks: Vec<Rule>,
    /// The `view_executors` rules (`principals`, `users`).
    pub view_executors: Vec<Rule>,
    /// Other ACL kinds present in the JSON, which this cluster does not
    /// enforce (a real master would).
    pub ignored: Vec<String>,
}

impl Default for Acls {
    fn default() -> Self {
        Acls {
            permissive: true,
            register_frameworks: Vec::new(),
            register_agents: Vec::new(),
            run_tasks: Vec::new(),
            view_frameworks: Vec::new(),
            view_tasks: Vec::new(),
            view_executors: Vec::new(),
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

#[derive(Deserialize)]
struct JsonAgents {
    principals: JsonEntity,
    agents: JsonEntity,
}

#[derive(Deserialize)]
struct JsonUsers {
    principals: JsonEntity,
    users: JsonEntity,
}

/// Mesos's `ACLs` message; unknown fields are ignored, as Mesos's JSON to
/// protobuf conversion ignores them.
#[derive(Deserialize)]
struct JsonAcls {
    #[serde(default = "yes")]
    permissive: bool,
    #[serde(default)]
    register_frameworks: Vec<JsonRegister>,
    #[serde(default)]
    register_agents: Vec<JsonAgents>,
    #[serde(default)]
    run_tasks: Vec<JsonUsers>,
    #[serde(default)]
    view_frameworks: Vec<JsonUsers>,
    #[serde(default)]
    view_tasks: Vec<JsonUsers>,
    #[serde(default)]
    view_executors: Vec<JsonUsers>,
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

fn users_rules(rules: Vec<JsonUsers>) -> Vec<Rule> {
    rules
        .into_iter()
        .map(|r| Rule {
            principals: r.principals.into(),
            objects: r.users.into(),
        })
        .collect()
}

impl Acls {
    /// Parses Mesos's ACLs JSON, with the local authorizer's check of it
    /// (`LocalAuthorizer::validate`) for the kinds enforced here.
    pub fn parse(json: &str) -> Result<Acls, AclError> {
        let invalid = |reason: String| AclError::Invalid {
            where_: String::new(),
            reason,
        };
        let raw: JsonAcls = serde_json::from_str(json).map_err(|e| invalid(e.to_string()))?;
        let register_agents: Vec<Rule> = raw
            .register_agents
            .into_iter()
            .map(|r| Rule {
                principals: r.principals.into(),
                objects: r.agents.into(),
            })
            .collect();
        if register_agents
            .iter()
            .any(|r| matches!(r.objects, Entity::Some(_)))
        {
            return Err(invalid(
                "ACL.RegisterAgent type must be either NONE or ANY".into(),
            ));
        }
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
            register_agents,
            run_tasks: users_rules(raw.run_tasks),
            view_frameworks: users_rules(raw.view_frameworks),
            view_tasks: users_rules(raw.view_tasks),
            view_executors: users_rules(raw.view_executors),
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

// ----- the engine ---------------------------------------------------------

/// A rule's object side. `Recursive` only comes from Mesos's
/// `createHierarchicalRoleACLs` split of a role rule: recursive role
/// values (`a/%`) become rules of their own, ahead of the rule holding the
/// entry's other values.
enum Objects<'a> {
    Plain(Cow<'a, Entity>),
    Recursive(&'a str),
}

/// The local authorizer's `GenericACL`.
struct GenericAcl<'a> {
    subjects: &'a Entity,
    objects: Objects<'a>,
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

/// The local authorizer's `approved`: the first rule matching both sides
/// decides; none matching, `permissive` does. `subject`/`object` `None`
/// are Mesos's `ANY` requests.
fn approved(
    acls: &[GenericAcl<'_>],
    subject: Option<&str>,
    object: Option<&str>,
    permissive: bool,
) -> bool {
    for acl in acls {
        match &acl.objects {
            Objects::Plain(objects) => {
                if matches(subject, acl.subjects) && matches(object, objects) {
                    return allows(subject, acl.subjects) && allows(object, objects);
                }
            }
            // The object is nested under the prefix: it is then matched
            // and allowed as by an `ANY` entity.
            Objects::Recursive(prefix) => {
                if object.is_some_and(|o| o.starts_with(prefix)) && matches(subject, acl.subjects) {
                    return allows(subject, acl.subjects);
                }
            }
        }
    }
    permissive
}

/// The ACL kinds decided by the plain (non-hierarchical) approver.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Action {
    /// `register_agents`; the object is always `ANY`.
    RegisterAgent,
    /// `run_tasks`; the object is the task's user.
    RunTask,
    /// `view_frameworks`; the object is the framework's user.
    ViewFramework,
    /// `view_tasks`; the object is the task's user.
    ViewTask,
    /// `view_executors`; the object is the executor's user.
    ViewExecutor,
}

impl Action {
    fn rules(self, acls: &Acls) -> &[Rule] {
        match self {
            Action::RegisterAgent => &acls.register_agents,
            Action::RunTask => &acls.run_tasks,
            Action::ViewFramework => &acls.view_frameworks,
            Action::ViewTask => &acls.view_tasks,
            Action::ViewExecutor => &acls.view_executors,
        }
    }
}

/// Whether `principal` (`None`: none, Mesos's `ANY` subject) may perform
/// `action` on `object` (`None`: Mesos's `ANY` object), as the local
/// authorizer's `LocalAuthorizerObjectApprover` decides.
pub fn authorized(
    acls: &Acls,
    action: Action,
    principal: Option<&str>,
    object: Option<&str>,
) -> bool {
    let rules: Vec<GenericAcl<'_>> = action
        .rules(acls)
        .iter()
        .map(|r| GenericAcl {
            subjects: &r.principals,
            objects: Objects::Plain(Cow::Borrowed(&r.objects)),
        })
        .collect();
    approved(&rules, principal, object, acls.permissive)
}

/// Whether `principal` (`None`: a framework without one, Mesos's `ANY`
/// subject) may register a framework with `roles`. Pure: the whole of the
/// decision behind a SUBSCRIBE's or UPDATE_FRAMEWORK's "Not authorized".
pub fn may_register_framework(
    acls: &Acls,
    principal: Option<&str>,
    roles: &BTreeSet<String>,
) -> bool {
    let mut rules: Vec<GenericAcl<'_>> = Vec::new();
    for rule in &acls.register_frameworks {
        let subjects = &rule.principals;
        match &rule.roles {
            Entity::Some(values) => {
                let mut plain = Vec::new();
                for v in values {
                    match v.strip_suffix('%').filter(|p| p.ends_with('/')) {
                        Some(prefix) => rules.push(GenericAcl {
                            subjects,
                            objects: Objects::Recursive(prefix),
                        }),
                        None => plain.push(v.clone()),
                    }
                }
                if !plain.is_empty() {
                    rules.push(GenericAcl {
                        subjects,
                        objects: Objects::Plain(Cow::Owned(Entity::Some(plain))),
                    });
                }
            }
            other => rules.push(GenericAcl {
                subjects,
                objects: Objects::Plain(Cow::Borrowed(other)),
            }),
        }
    }
    if roles.is_empty() {
        return acls.permissive;
    }
    roles
        .iter()
        .all(|r| approved(&rules, principal, Some(r), acls.permissive))
}

/// Whether an agent with `principal` (mesos-local's agents have none:
/// Mesos's `ANY` subject) may register. Mesos authorizes `REGISTER_AGENT`
/// on an `ANY` object, so only `ANY`/`NONE` rules can decide it.
pub fn may_register_agent(acls: &Acls, principal: Option<&str>) -> bool {
    authorized(acls, Action::RegisterAgent, principal, None)
}

/// The user a task runs as, the object of `run_tasks` and `view_tasks`:
/// `TaskInfo.command.user`, else its executor's `command.user`, else
/// `FrameworkInfo.user`.
pub fn task_user<'a>(task: &'a v1::TaskInfo, framework: &'a v1::FrameworkInfo) -> &'a str {
    task.command
        .as_ref()
        .and_then(|c| c.user.as_deref())
        .or_else(|| {
            task.executor
                .as_ref()
                .and_then(|e| e.command.as_ref())
                .and_then(|c| c.user.as_deref())
        })
        .unwrap_or(&framework.user)
}

/// The user an executor runs as, the object of `view_executors`: its
/// `command.user`, else `FrameworkInfo.user`.
pub fn executor_user<'a>(
    executor: &'a v1::ExecutorInfo,
    framework: &'a v1::FrameworkInfo,
) -> &'a str {
    executor
        .command
        .as_ref()
        .and_then(|c| c.user.as_deref())
        .unwrap_or(&framework.user)
}

/// Whether the framework may launch `task` (`run_tasks`, subject the
/// framework's principal).
pub fn may_run_task(acls: &Acls, framework: &v1::FrameworkInfo, task: &v1::TaskInfo) -> bool {
    authorized(
        acls,
        Action::RunTask,
        framework.principal.as_deref(),
        Some(task_user(task, framework)),
    )
}

/// Whether `reader` may see `framework` in `/master/state`.
pub fn may_view_framework(
    acls: &Acls,
    reader: Option<&str>,
    framework: &v1::FrameworkInfo,
) -> bool {
    authorized(acls, Action::ViewFramework, reader, Some(&framework.user))
}

/// Whether `reader` may see `task` of `framework` in `/master/state`.
pub fn may_view_task(
    acls: &Acls,
    reader: Option<&str>,
    task: &v1::TaskInfo,
    framework: &v1::FrameworkInfo,
) -> bool {
    authorized(
        acls,
        Action::ViewTask,
        reader,
        Some(task_user(task, framework)),
    )
}

/// Whether `reader` may see `executor` of `framework` in `/master/state`.
pub fn may_view_executor(
    acls: &Acls,
    reader: Option<&str>,
    executor: &v1::ExecutorInfo,
    framework: &v1::FrameworkInfo,
) -> bool {
    authorized(
        acls,
        Action::ViewExecutor,
        reader,
        Some(executor_user(executor, framework)),
    )
}

// ----- Mesos's texts --------------------------------------------------------

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

/// `stringify(ActionObject)` for RUN_TASK (`src/master/authorization.cpp`).
fn launch_task_text(task: &v1::TaskInfo, framework: &v1::FrameworkInfo) -> String {
    format!(
        "launch task {} of framework {} under user '{}'",
        task.task_id.value,
        framework
            .id
            .as_ref()
            .map(|i| i.value.as_str())
            .unwrap_or(""),
        task_user(task, framework)
    )
}

/// The message of the TASK_ERROR (`REASON_TASK_UNAUTHORIZED`) of a LAUNCH
/// task `run_tasks` refuses, `Master::_accept`'s, typo included
/// (`framework` with its id set).
pub fn run_task_refusal(task: &v1::TaskInfo, framework: &v1::FrameworkInfo) -> String {
    format!(
        "Principal '{}' no authorized to {}",
        framework.principal.as_deref().unwrap_or(""),
        launch_task_text(task, framework)
    )
}

/// The message of the TASK_ERRORs (`REASON_TASK_GROUP_UNAUTHORIZED`) of a
/// LAUNCH_GROUP with a task `run_tasks` refuses, `Master::_accept`'s,
/// missing space included.
pub fn run_task_group_refusal(task: &v1::TaskInfo, framework: &v1::FrameworkInfo) -> String {
    format!(
        "Task '{}' is not authorized to{}",
        task.task_id.value,
        launch_task_text(task, framework)
    )
}

/// Why `Master::_registerSlave` (or `_reregisterSlave`) refuses an agent
/// offering `resources` (as Mesos stringifies them).
pub fn agent_refusal(resources: &str, principal: Option<&str>, reregister: bool) -> String {
    let who = match principal {
        Some(p) => format!("with principal '{p}'"),
        None => "without a principal".into(),
    };
    let verb = if reregister { "reregister" } else { "register" };
    format!("Not authorized to {verb} agent providing resources '{resources}' {who}")
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
            r#"{"run_tasks":[{"principals":{"type":"ANY"},"users":{"values":["root"]}}],
                "teardown_frameworks":[{"principals":{"type":"ANY"},"framework_principals":{"type":"ANY"}}],
                "register_agents":[{"principals":{"type":"ANY"},"agents":{"type":"NONE"}}],
                "view_frameworks":[{"principals":{"values":["ops"]},"users":{"type":"ANY"}}],
                "view_tasks":[{"principals":{"type":"NONE"},"users":{"type":"ANY"}}],
                "view_executors":[{"principals":{"type":"ANY"},"users":{"type":"ANY"}}],
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
        let rule = |principals, objects| {
            vec![Rule {
                principals,
                objects,
            }]
        };
        assert_eq!(
            a.run_tasks,
            rule(Entity::Any, Entity::Some(vec!["root".into()]))
        );
        assert_eq!(a.register_agents, rule(Entity::Any, Entity::None));
        assert_eq!(
            a.view_frameworks,
            rule(Entity::Some(vec!["ops".into()]), Entity::Any)
        );
        assert_eq!(a.view_tasks, rule(Entity::None, Entity::Any));
        assert_eq!(a.view_executors, rule(Entity::Any, Entity::Any));
        // Only the kinds not enforced here.
        assert_eq!(a.ignored, vec!["teardown_frameworks".to_string()]);
        for bad in [
            "{",
            r#"{"permissive":"yes"}"#,
            r#"{"register_frameworks":[{"principals":{"type":"ANY"}}]}"#,
            r#"{"register_frameworks":[{"principals":{"type":"ALL"},"roles":{"type":"ANY"}}]}"#,
            r#"{"run_tasks":[{"principals":{"type":"ANY"}}]}"#,
            r#"{"view_tasks":[{"users":{"type":"ANY"}}]}"#,
            r#"{"register_agents":[{"principals":{"type":"ANY"},"users":{"type":"ANY"}}]}"#,
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
        // As LocalAuthorizer::validate: agents can only be ANY or NONE.
        let err = Acls::parse(
            r#"{"register_agents":[{"principals":{"type":"ANY"},"agents":{"values":["a1"]}}]}"#,
        )
        .unwrap_err()
        .to_string();
        assert!(
            err.contains("ACL.RegisterAgent type must be either NONE or ANY"),
            "{err}"
        );
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

    fn acls(json: &str) -> Acls {
        Acls::parse(json).unwrap()
    }

    fn framework(principal: Option<&str>, user: &str) -> v1::FrameworkInfo {
        v1::FrameworkInfo {
            user: user.into(),
            name: "f".into(),
            id: Some(v1::FrameworkId {
                value: "fw-1".into(),
            }),
            principal: principal.map(Into::into),
            ..Default::default()
        }
    }

    fn command(user: Option<&str>) -> v1::CommandInfo {
        v1::CommandInfo {
            user: user.map(Into::into),
            ..Default::default()
        }
    }

    fn task(command_user: Option<&str>, executor_user: Option<&str>) -> v1::TaskInfo {
        v1::TaskInfo {
            name: "t".into(),
            task_id: v1::TaskId { value: "t1".into() },
            command: command_user.map(|u| command(Some(u))),
            executor: executor_user.map(|u| v1::ExecutorInfo {
                command: Some(command(Some(u))),
                ..Default::default()
            }),
            ..Default::default()
        }
    }

    #[test]
    fn run_tasks_decide_on_the_tasks_user_for_the_frameworks_principal() {
        let a = acls(
            r#"{"permissive":false,"run_tasks":[
                {"principals":{"values":["baton"]},"users":{"values":["app"]}},
                {"principals":{"type":"ANY"},"users":{"values":["nobody"]}}]}"#,
        );
        let baton = framework(Some("baton"), "root");
        // The user: the command's, else the executor's, else the framework's.
        assert_eq!(task_user(&task(Some("app"), Some("x")), &baton), "app");
        assert_eq!(task_user(&task(None, Some("x")), &baton), "x");
        assert_eq!(task_user(&task(None, None), &baton), "root");
        assert!(may_run_task(&a, &baton, &task(Some("app"), None)));
        assert!(may_run_task(&a, &baton, &task(None, Some("app"))));
        assert!(!may_run_task(&a, &baton, &task(None, None)));
        assert!(may_run_task(&a, &baton, &task(Some("nobody"), None)));
        // A framework without a principal is the ANY subject: only the
        // ANY-principals rule can match it.
        let anonymous = framework(None, "app");
        assert!(!may_run_task(&a, &anonymous, &task(None, None)));
        assert!(may_run_task(&a, &anonymous, &task(Some("nobody"), None)));
        // No rules, permissive: allowed.
        let open = acls(r#"{"register_frameworks":[]}"#);
        assert!(may_run_task(&open, &anonymous, &task(None, None)));
        // NONE users: matches, allows nothing.
        let never =
            acls(r#"{"run_tasks":[{"principals":{"type":"ANY"},"users":{"type":"NONE"}}]}"#);
        assert!(!may_run_task(&never, &baton, &task(None, None)));

        assert_eq!(
            run_task_refusal(&task(None, None), &baton),
            "Principal 'baton' no authorized to launch task t1 of framework fw-1 under user 'root'"
        );
        assert_eq!(
            run_task_refusal(&task(Some("app"), None), &anonymous),
            "Principal '' no authorized to launch task t1 of framework fw-1 under user 'app'"
        );
        assert_eq!(
            run_task_group_refusal(&task(None, None), &baton),
            "Task 't1' is not authorized tolaunch task t1 of framework fw-1 under user 'root'"
        );
    }

    #[test]
    fn register_agents_decides_on_an_any_object_and_subject() {
        // mesos-local's agents have no principal.
        let strict = acls(
            r#"{"permissive":false,"register_frameworks":[
                {"principals":{"values":["baton"]},"roles":{"type":"ANY"}}]}"#,
        );
        assert!(!may_register_agent(&strict, None));
        let any = acls(
            r#"{"permissive":false,"register_agents":[
                {"principals":{"type":"ANY"},"agents":{"type":"ANY"}}]}"#,
        );
        assert!(may_register_agent(&any, None));
        assert!(may_register_agent(&any, Some("agent")));
        // A principals list never matches an agent without one.
        let listed = acls(
            r#"{"permissive":false,"register_agents":[
                {"principals":{"values":["agent"]},"agents":{"type":"ANY"}}]}"#,
        );
        assert!(!may_register_agent(&listed, None));
        assert!(may_register_agent(&listed, Some("agent")));
        let nobody =
            acls(r#"{"register_agents":[{"principals":{"type":"ANY"},"agents":{"type":"NONE"}}]}"#);
        assert!(!may_register_agent(&nobody, None));
        assert!(may_register_agent(&Acls::default(), None));

        assert_eq!(
            agent_refusal(
                "cpus:4; mem:4096; disk:4096; ports:[31000-31099]",
                None,
                false
            ),
            "Not authorized to register agent providing resources \
             'cpus:4; mem:4096; disk:4096; ports:[31000-31099]' without a principal"
        );
        assert_eq!(
            agent_refusal("cpus:1", Some("a"), true),
            "Not authorized to reregister agent providing resources 'cpus:1' with principal 'a'"
        );
    }

    #[test]
    fn view_acls_decide_on_users_for_the_reader() {
        let a = acls(
            r#"{"permissive":false,
                "view_frameworks":[{"principals":{"values":["ops"]},"users":{"type":"ANY"}},
                                   {"principals":{"type":"ANY"},"users":{"values":["public"]}}],
                "view_tasks":[{"principals":{"values":["ops"]},"users":{"values":["root","app"]}}],
                "view_executors":[{"principals":{"values":["ops"]},"users":{"values":["exec"]}}]}"#,
        );
        let root = framework(Some("baton"), "root");
        let public = framework(None, "public");
        assert!(may_view_framework(&a, Some("ops"), &root));
        // An unauthenticated reader is the ANY subject.
        assert!(!may_view_framework(&a, None, &root));
        assert!(may_view_framework(&a, None, &public));
        assert!(may_view_framework(&a, Some("dev"), &public));
        assert!(!may_view_framework(&a, Some("dev"), &root));

        assert!(may_view_task(&a, Some("ops"), &task(None, None), &root));
        assert!(may_view_task(
            &a,
            Some("ops"),
            &task(Some("app"), None),
            &public
        ));
        assert!(!may_view_task(&a, Some("ops"), &task(None, None), &public));
        assert!(!may_view_task(&a, None, &task(None, None), &root));

        let exec = |user: Option<&str>| v1::ExecutorInfo {
            command: user.map(|u| command(Some(u))),
            ..Default::default()
        };
        assert_eq!(executor_user(&exec(None), &root), "root");
        assert!(may_view_executor(
            &a,
            Some("ops"),
            &exec(Some("exec")),
            &root
        ));
        assert!(!may_view_executor(&a, Some("ops"), &exec(None), &root));
        assert!(!may_view_executor(&a, None, &exec(Some("exec")), &root));
        // Permissive with no view rules: everyone sees everything.
        let open = Acls::default();
        assert!(may_view_framework(&open, None, &root));
        assert!(may_view_task(&open, None, &task(None, None), &root));
        assert!(may_view_executor(&open, None, &exec(None), &root));
    }

    #[test]
    fn only_register_frameworks_splits_recursive_values() {
        // `users` values are plain strings: `a/%` is no wildcard there.
        let a = acls(
            r#"{"permissive":false,"view_frameworks":[
                {"principals":{"type":"ANY"},"users":{"values":["a/%"]}}]}"#,
        );
        assert!(!may_view_framework(&a, None, &framework(None, "a/b")));
        assert!(may_view_framework(&a, None, &framework(None, "a/%")));
    }
}
