//! `/v2/groups` (shared/reference/marathon-api.md §1.3): groups as Marathon
//! shows them, made from app ids.
//!
//! Baton stores no group objects: a group is the set of apps whose ids lie
//! below it (`/proj` holds `/proj/db` and `/proj/web/api`), so it exists
//! while it has apps, and root always exists. A group write is a change of
//! those apps, made by one `edit_apps` call: all or nothing, one deployment,
//! its steps ordered by the apps' `dependencies` (§4.1), 409 when a running
//! deployment holds one of the apps and `force` is not set.
//!
//! - `GET /v2/groups[/{id}]` → `GroupInfo` (`embed`: `group.apps`,
//!   `group.groups`, `group.apps.{tasks,counts,deployments,lastTaskFailure,
//!   taskStats}`; without `embed`, apps and groups). Its `version` is the
//!   newest version of an app in it. `{id}/apps` lists every app below the
//!   group, `{id}/versions` the versions of its apps (newest first),
//!   `{id}/versions/{ts}` the group made of each app's version at `ts`.
//! - `POST /v2/groups[/{id}]` creates a group (201); 409 if it has apps.
//! - `PUT /v2/groups[/{id}]` creates or updates: the apps listed are
//!   written (whole definitions, ids relative to their group), and where a
//!   group lists `apps` (or `groups`), its apps (or subgroups) not listed
//!   are removed — a member it does not mention at all is left alone, as in
//!   Marathon. `{"scaleBy": f}` multiplies every app's instances (rounded
//!   up), `{"version": ts}` rolls every app back to its newest version at or
//!   before `ts` (apps without one are left as they are). `dryRun=true`
//!   answers the steps without deploying.
//! - `DELETE /v2/groups[/{id}]` removes every app below the group.
//!
//! Writes answer a DeploymentResult and put `group_change_success` on the
//! event bus. Validation errors name the offending member from the body's
//! root (`/apps(0)/cpus`, `/groups(1)/apps(0)/id`). A change that changes
//! nothing gets a DeploymentResult without a deployment. Group-level
//! `dependencies` and `pods` cannot be kept and are refused (422); give
//! each app its `dependencies` instead.

use std::collections::{BTreeMap, BTreeSet};
use std::sync::Arc;

use axum::Router;
use axum::body::Bytes;
use axum::extract::rejection::BytesRejection;
use axum::extract::{Path, RawQuery, State};
use axum::http::{HeaderValue, Method, StatusCode, header};
use axum::response::{IntoResponse, Response};
use axum::routing::get;
use imbl::OrdMap;
use serde::Serialize;
use serde_json::{Value, json};

use super::params::{self, Params};
use super::shapes::{AppInfo, Embed};
use super::{ApiError, ApiState};
use crate::deploy::plan;
use crate::reconcile::events::Event;
use crate::reconcile::{AppEdit, DeploymentAction, SchedulerError, View};
use crate::state::app::{
    AppDefaults, AppDefinition, AppError, PathId, PathIdError, Timestamp, Violation, is_upgrade,
};

/// The `/v2/groups` routes.
pub fn routes() -> Router<ApiState> {
    let any = || get(on_path).post(on_path).put(on_path).delete(on_path);
    Router::new()
        .route("/v2/groups", any())
        .route("/v2/groups/", any())
        .route("/v2/groups/{*path}", any())
}

async fn on_path(
    State(state): State<ApiState>,
    method: Method,
    path: Option<Path<String>>,
    RawQuery(query): RawQuery,
    body: Result<Bytes, BytesRejection>,
) -> Result<Response, ApiError> {
    let params = Params::parse(query.as_deref())?;
    let path = path.map(|Path(p)| p).unwrap_or_default();
    match method {
        Method::GET => read(&state, target(&path)?, &params),
        Method::POST => create(&state, group_id(&path)?, &params, params::body(body)?).await,
        Method::PUT => update(&state, group_id(&path)?, &params, params::body(body)?).await,
        Method::DELETE => delete(&state, group_id(&path)?, &params).await,
        method => Err(ApiError::Body {
            status: StatusCode::METHOD_NOT_ALLOWED,
            body: json!({"message": format!("{method} is not supported on /v2/groups/{path}")}),
        }),
    }
}

// ---- reading -------------------------------------------------------------

/// What a `GET` under `/v2/groups` names (Marathon's suffix patterns:
/// `apps`, `versions`, `versions/{ts}`; so no group can be read whose
/// last segment is one of them).
#[derive(Debug, PartialEq, Eq)]
enum Target {
    Group(PathId),
    Apps(PathId),
    Versions(PathId),
    Version(PathId, String),
}

fn group_id(path: &str) -> Result<PathId, ApiError> {
    PathId::parse(path, &PathId::root())
        .map_err(|e| ApiError::from(AppError::invalid("/id", e.to_string())))
}

fn target(path: &str) -> Result<Target, ApiError> {
    let segments: Vec<&str> = path.split('/').filter(|s| !s.is_empty()).collect();
    let n = segments.len();
    let id = |k: usize| group_id(&segments[..k].join("/"));
    Ok(match (n, segments.last().copied()) {
        (_, Some("apps")) => Target::Apps(id(n - 1)?),
        (_, Some("versions")) => Target::Versions(id(n - 1)?),
        (2.., Some(v)) if segments[n - 2] == "versions" => Target::Version(id(n - 2)?, v.into()),
        _ => Target::Group(id(n)?),
    })
}

fn unknown_group(id: &PathId) -> ApiError {
    ApiError::NotFound(format!("Group '{id}' does not exist"))
}

/// What `embed` asks of a group: Marathon's `InfoEmbedResolver`. Without
/// any `embed`, apps and groups; otherwise only what is named
/// (`group.apps`, `group.groups`), and `group.apps.*` says what each app
/// carries.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
struct GroupEmbed {
    apps: bool,
    groups: bool,
    app: Embed,
}

impl GroupEmbed {
    fn parse<'a>(values: impl IntoIterator<Item = &'a str>) -> GroupEmbed {
        let values: Vec<&str> = values.into_iter().collect();
        if values.is_empty() {
            return GroupEmbed {
                apps: true,
                groups: true,
                app: Embed::default(),
            };
        }
        let (app, group): (Vec<&str>, Vec<&str>) =
            values.iter().partition(|v| v.starts_with("group.apps."));
        for unknown in group
            .iter()
            .filter(|v| !["group.apps", "group.groups", "group.pods"].contains(v))
        {
            tracing::debug!(embed = unknown, "unknown group embed value ignored");
        }
        GroupEmbed {
            apps: group.contains(&"group.apps"),
            groups: group.contains(&"group.groups"),
            app: Embed::parse(app),
        }
    }
}

/// A group as Marathon writes it (`types/group.raml` GroupInfo).
#[derive(Debug, Serialize)]
#[serde(rename_all = "camelCase")]
struct GroupInfo<'a> {
    id: PathId,
    apps: Vec<AppInfo<'a>>,
    pods: [(); 0],
    groups: Vec<GroupInfo<'a>>,
    dependencies: [(); 0],
    version: Timestamp,
    enforce_role: bool,
}

/// The apps strictly below `group`, in id order (ids sort by segments, so
/// they follow the group's own id in the map).
fn subtree<'a, V>(map: &'a OrdMap<PathId, V>, group: &PathId) -> Vec<(&'a PathId, &'a V)> {
    if group.is_root() {
        return map.iter().collect();
    }
    map.range(group.clone()..)
        .skip_while(|(id, _)| *id == group)
        .take_while(|(id, _)| id.is_descendant_of(group))
        .collect()
}

/// `id` with `apps` (every app strictly below it) arranged in subgroups.
fn group_info<'a>(
    view: &'a View,
    id: PathId,
    apps: &[&'a AppDefinition],
    embed: &GroupEmbed,
    now: Timestamp,
) -> GroupInfo<'a> {
    let depth = id.segments().count();
    let mut direct = Vec::new();
    let mut below: BTreeMap<PathId, Vec<&'a AppDefinition>> = BTreeMap::new();
    for app in apps {
        if app.id.parent() == id {
            direct.push(*app);
        } else if let Some(child) = app.id.segments().nth(depth).and_then(|s| id.child(s)) {
            below.entry(child).or_default().push(*app);
        }
    }
    let groups = if embed.groups {
        below
            .into_iter()
            .map(|(child, apps)| group_info(view, child, &apps, embed, now))
            .collect()
    } else {
        Vec::new()
    };
    let apps_json = if embed.apps {
        direct
            .iter()
            .map(|a| AppInfo::new(view, a, &embed.app, now))
            .collect()
    } else {
        Vec::new()
    };
    GroupInfo {
        version: apps.iter().filter_map(|a| a.version).max().unwrap_or(now),
        id,
        apps: apps_json,
        pods: [],
        groups,
        dependencies: [],
        enforce_role: false,
    }
}

/// The newest stored version of each app below `group` at or before `at`.
fn apps_at<'a>(view: &'a View, group: &PathId, at: Timestamp) -> Vec<&'a AppDefinition> {
    subtree(&view.versions, group)
        .into_iter()
        .filter_map(|(_, versions)| {
            versions
                .iter()
                .rev()
                .find(|a| a.version.is_some_and(|v| v <= at))
                .map(|a| &**a)
        })
        .collect()
}

fn read(state: &ApiState, target: Target, params: &Params) -> Result<Response, ApiError> {
    let view = state.scheduler.view();
    let embed = GroupEmbed::parse(params.all("embed"));
    let now = Timestamp::now();
    match target {
        Target::Group(id) => {
            let apps: Vec<&AppDefinition> = subtree(&view.apps, &id)
                .into_iter()
                .map(|(_, a)| &**a)
                .collect();
            if apps.is_empty() && !id.is_root() {
                return Err(unknown_group(&id));
            }
            Ok(axum::Json(group_info(&view, id, &apps, &embed, now)).into_response())
        }
        Target::Apps(id) => {
            // Every app below the group (Marathon's `transitiveApps`); an
            // unknown group has none.
            let apps: Vec<AppInfo> = subtree(&view.apps, &id)
                .into_iter()
                .map(|(_, a)| AppInfo::new(&view, a, &embed.app, now))
                .collect();
            Ok(axum::Json(apps).into_response())
        }
        Target::Versions(id) => {
            let apps = subtree(&view.apps, &id);
            if apps.is_empty() && !id.is_root() {
                return Err(unknown_group(&id));
            }
            let mut versions: Vec<Timestamp> = apps
                .iter()
                .filter_map(|(app, _)| view.versions.get(*app))
                .flat_map(|list| list.iter().filter_map(|a| a.version))
                .collect();
            versions.sort_unstable_by(|a, b| b.cmp(a));
            versions.dedup();
            Ok(axum::Json(versions).into_response())
        }
        Target::Version(id, version) => {
            let missing =
                || ApiError::NotFound(format!("Group '{id}' does not exist in version {version}"));
            let at: Timestamp = version.parse().map_err(|_| missing())?;
            let apps = apps_at(&view, &id, at);
            if apps.is_empty() && !id.is_root() {
                return Err(missing());
            }
            // Marathon shows a past group without app embeds.
            let embed = GroupEmbed {
                app: Embed::default(),
                ..embed
            };
            Ok(axum::Json(group_info(&view, id.clone(), &apps, &embed, now)).into_response())
        }
    }
}

// ---- writing -------------------------------------------------------------

/// One app's part in a group write.
struct Planned {
    id: PathId,
    action: DeploymentAction,
    /// The app's dependencies after the change (orders the steps).
    dependencies: Vec<PathId>,
    edit: AppEdit,
}

/// The steps a set of changes would take, as `dryRun` shows them.
fn dry_run(planned: &[Planned]) -> Result<Response, ApiError> {
    let actions: Vec<(PathId, DeploymentAction)> =
        planned.iter().map(|p| (p.id.clone(), p.action)).collect();
    let dependencies: BTreeMap<&PathId, &Vec<PathId>> =
        planned.iter().map(|p| (&p.id, &p.dependencies)).collect();
    let steps = plan::steps(&actions, |id| {
        dependencies.get(id).map(|d| d.to_vec()).unwrap_or_default()
    })
    .map_err(|e| AppError::invalid("/dependencies", e.to_string()))?;
    let steps: Vec<Value> = steps
        .iter()
        .map(|step| {
            json!({"actions": step
                .iter()
                .map(|(app, action)| json!({"action": action, "app": app}))
                .collect::<Vec<_>>()})
        })
        .collect();
    Ok(axum::Json(json!({ "steps": steps })).into_response())
}

/// Carries out `planned` as one change and answers its DeploymentResult;
/// `group_change_success` follows on the bus. Nothing to change answers a
/// result whose deployment is already over (there is none to wait for).
async fn write(
    state: &ApiState,
    group: &PathId,
    planned: Vec<Planned>,
    force: bool,
    status: StatusCode,
) -> Result<Response, ApiError> {
    let (deployment_id, version) = if planned.is_empty() {
        (uuid::Uuid::new_v4().to_string(), Timestamp::now())
    } else {
        let edits = planned.into_iter().map(|p| (p.id, p.edit)).collect();
        let outcome = state.scheduler.edit_apps(edits, force).await?;
        (outcome.deployment_id, outcome.version)
    };
    state.scheduler.publish_event(Event::GroupChangeSuccess {
        group: group.clone(),
        version,
    });
    Ok(params::deployment_result(status, &deployment_id, version))
}

/// The group a write body names: its `id`, relative to the path's group,
/// or the path's group.
fn effective_id(body: &Value, base: &PathId) -> Result<PathId, ApiError> {
    match body.get("id") {
        None | Some(Value::Null) => Ok(base.clone()),
        Some(Value::String(s)) => PathId::parse(s, base)
            .map_err(|e| ApiError::from(AppError::invalid("/id", e.to_string()))),
        Some(_) => Err(wrong_type("/id", "error.expected.jsstring").into()),
    }
}

fn wrong_type(path: &str, code: &str) -> AppError {
    AppError::WrongType {
        details: vec![Violation {
            path: path.into(),
            errors: vec![code.into()],
        }],
    }
}

/// 409 when the group's id is an app's.
fn refuse_app_path(view: &View, group: &PathId) -> Result<(), ApiError> {
    if view.apps.contains_key(group) {
        return Err(ApiError::Conflict(format!(
            "An app with the path {group} already exists."
        )));
    }
    Ok(())
}

async fn create(
    state: &ApiState,
    base: PathId,
    params: &Params,
    bytes: Bytes,
) -> Result<Response, ApiError> {
    let force = params.flag("force", false)?;
    let body = params::json_body(&bytes)?;
    let group = effective_id(&body, &base)?;
    let view = state.scheduler.view();
    refuse_app_path(&view, &group)?;
    if !subtree(&view.apps, &group).is_empty() {
        return Err(ApiError::Conflict(format!(
            "Group {group} is already created. Use PUT to change this group."
        )));
    }
    let desired = desired_apps(&body, &group, &view.apps, &state.app_defaults())?;
    let planned = plan_writes(&view, desired, true);
    let mut response = write(state, &group, planned, force, StatusCode::CREATED).await?;
    if let Ok(location) = HeaderValue::from_str(&format!("/v2/groups{group}")) {
        response.headers_mut().insert(header::LOCATION, location);
    }
    Ok(response)
}

async fn update(
    state: &ApiState,
    base: PathId,
    params: &Params,
    bytes: Bytes,
) -> Result<Response, ApiError> {
    let force = params.flag("force", false)?;
    let dry = params.flag("dryRun", false)?;
    let body = params::json_body(&bytes)?;
    let group = effective_id(&body, &base)?;
    let view = state.scheduler.view();
    refuse_app_path(&view, &group)?;
    let planned = if let Some(version) = version_of(&body)? {
        rollback(&view, &group, version)?
    } else if let Some(factor) = scale_factor(&body)? {
        scale(&view, &group, factor)?
    } else {
        let desired = desired_apps(&body, &group, &view.apps, &state.app_defaults())?;
        plan_writes(&view, desired, false)
    };
    if dry {
        return dry_run(&planned);
    }
    write(state, &group, planned, force, StatusCode::OK).await
}

async fn delete(state: &ApiState, group: PathId, params: &Params) -> Result<Response, ApiError> {
    let force = params.flag("force", false)?;
    let view = state.scheduler.view();
    let apps = subtree(&view.apps, &group);
    if apps.is_empty() && !group.is_root() {
        return Err(unknown_group(&group));
    }
    let planned = apps
        .into_iter()
        .map(|(id, _)| Planned {
            id: id.clone(),
            action: DeploymentAction::StopApplication,
            dependencies: Vec::new(),
            edit: remove_edit(id.clone()),
        })
        .collect();
    write(state, &group, planned, force, StatusCode::OK).await
}

/// `{"version": ts}`: a rollback (it wins over `scaleBy`, as in Marathon).
fn version_of(body: &Value) -> Result<Option<Timestamp>, ApiError> {
    match body.get("version") {
        None | Some(Value::Null) => Ok(None),
        Some(v) => v
            .as_str()
            .and_then(|s| s.parse().ok())
            .map(Some)
            .ok_or_else(|| wrong_type("/version", "error.expected.date.isoformat").into()),
    }
}

/// `{"scaleBy": f}`, `f` a finite number of at least 0.
fn scale_factor(body: &Value) -> Result<Option<f64>, ApiError> {
    match body.get("scaleBy") {
        None | Some(Value::Null) => Ok(None),
        Some(v) => {
            let f = v
                .as_f64()
                .ok_or_else(|| ApiError::from(wrong_type("/scaleBy", "error.expected.jsnumber")))?;
            if !f.is_finite() || f < 0.0 {
                return Err(
                    AppError::invalid("/scaleBy", format!("got {f}, expected 0 or more")).into(),
                );
            }
            Ok(Some(f))
        }
    }
}

/// `instances × factor`, rounded up (Marathon's `scaleBy`).
fn scaled(instances: u32, factor: f64) -> Option<u32> {
    let n = (f64::from(instances) * factor).ceil();
    (n <= f64::from(u32::MAX)).then_some(n as u32)
}

fn scale(view: &View, group: &PathId, factor: f64) -> Result<Vec<Planned>, ApiError> {
    let apps = subtree(&view.apps, group);
    if apps.is_empty() && !group.is_root() {
        return Err(unknown_group(group));
    }
    let mut planned = Vec::new();
    for (id, app) in apps {
        let target = scaled(app.instances, factor).ok_or_else(|| {
            ApiError::from(AppError::invalid(
                "/scaleBy",
                format!("{id} would have more than {} instances", u32::MAX),
            ))
        })?;
        if target == app.instances {
            continue;
        }
        let missing = id.clone();
        planned.push(Planned {
            id: id.clone(),
            action: DeploymentAction::ScaleApplication,
            dependencies: app.dependencies.clone(),
            edit: Box::new(move |ctx| {
                let current = ctx.current.ok_or(SchedulerError::UnknownApp(missing))?;
                let mut next = current.clone();
                next.instances = scaled(current.instances, factor).unwrap_or(u32::MAX);
                Ok(Some(next.with_version(ctx.now, true)))
            }),
        });
    }
    Ok(planned)
}

/// The newest of `versions` at or before `at`.
fn version_at(versions: &[Arc<AppDefinition>], at: Timestamp) -> Option<&Arc<AppDefinition>> {
    versions
        .iter()
        .rev()
        .find(|a| a.version.is_some_and(|v| v <= at))
}

fn rollback(view: &View, group: &PathId, at: Timestamp) -> Result<Vec<Planned>, ApiError> {
    let apps = subtree(&view.apps, group);
    if apps.is_empty() && !group.is_root() {
        return Err(unknown_group(group));
    }
    let mut planned = Vec::new();
    let mut found = false;
    for (id, current) in apps {
        let Some(target) = view
            .versions
            .get(id)
            .and_then(|versions| version_at(versions, at))
        else {
            // Not known at `at` (created later, or its history pruned):
            // left as it is rather than removed on a guess.
            continue;
        };
        found = true;
        if target.version == current.version {
            continue;
        }
        let action = if is_upgrade(current, target) {
            DeploymentAction::RestartApplication
        } else if target.instances != current.instances {
            DeploymentAction::ScaleApplication
        } else {
            continue;
        };
        let missing = id.clone();
        planned.push(Planned {
            id: id.clone(),
            action,
            dependencies: target.dependencies.clone(),
            edit: Box::new(move |ctx| {
                let target = version_at(ctx.versions, at).ok_or_else(|| {
                    SchedulerError::NotFound(format!(
                        "App '{missing}' does not exist in version {at}"
                    ))
                })?;
                Ok(Some((**target).clone().restored_at(ctx.now)))
            }),
        });
    }
    if !found && !group.is_root() {
        return Err(ApiError::NotFound(format!(
            "Group '{group}' does not exist in version {at}"
        )));
    }
    Ok(planned)
}

fn remove_edit(id: PathId) -> AppEdit {
    Box::new(move |ctx| match ctx.current {
        Some(_) => Ok(None),
        None => Err(SchedulerError::UnknownApp(id)),
    })
}

/// The edits that take the apps from `view` to `desired`; apps whose
/// definition does not change are left out. `create_only` refuses apps that
/// exist by the time the change is made (a `POST`).
fn plan_writes(
    view: &View,
    desired: BTreeMap<PathId, Option<AppDefinition>>,
    create_only: bool,
) -> Vec<Planned> {
    let mut planned = Vec::new();
    for (id, want) in desired {
        let current = view.apps.get(&id);
        let (action, dependencies) = match (current, &want) {
            (None, None) => continue,
            (Some(_), None) => (DeploymentAction::StopApplication, Vec::new()),
            (None, Some(new)) => (DeploymentAction::StartApplication, new.dependencies.clone()),
            (Some(c), Some(new)) if is_upgrade(c, new) => (
                DeploymentAction::RestartApplication,
                new.dependencies.clone(),
            ),
            (Some(c), Some(new)) if c.instances != new.instances => {
                (DeploymentAction::ScaleApplication, new.dependencies.clone())
            }
            (Some(_), Some(_)) => continue,
        };
        let edit: AppEdit = match want {
            None => remove_edit(id.clone()),
            Some(new) => Box::new(move |ctx| {
                if create_only && let Some(existing) = ctx.current {
                    return Err(SchedulerError::AlreadyExists(existing.id.clone()));
                }
                Ok(Some(new.next_version_of(ctx.current, ctx.now)))
            }),
        };
        planned.push(Planned {
            id,
            action,
            dependencies,
            edit,
        });
    }
    planned
}

/// Reads a GroupUpdate body for `group` against the `current` apps: each
/// app id it changes → its new definition, or `None` to remove it. Every
/// problem is reported at once, with paths from the body's root; the
/// result is checked to leave no app nested under another.
fn desired_apps(
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
fn join(prefix: &str, rest: &str) -> String {
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
            self.invalid(join(at, "/pods"), "Baton does not run pods");
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
            for (existing, _) in subtree(self.current, id) {
                if existing.parent() == *id && !here.contains(existing) {
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
            for (existing, _) in subtree(self.current, id) {
                if existing.parent() != *id && !kept.iter().any(|g| existing.is_descendant_of(g)) {
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

#[cfg(test)]
mod tests {
    use super::*;

    fn id(s: &str) -> PathId {
        PathId::parse(s, &PathId::root()).unwrap()
    }

    fn app(s: &str, instances: u32, version_ms: i64) -> Arc<AppDefinition> {
        let mut a = AppDefinition::new(id(s), &AppDefaults::default());
        a.cmd = Some("sleep 100".into());
        a.instances = instances;
        Arc::new(a.with_version(Timestamp::from_millis(version_ms), false))
    }

    fn view(apps: &[Arc<AppDefinition>]) -> View {
        let mut v = View::default();
        for a in apps {
            v.apps.insert(a.id.clone(), a.clone());
            v.versions.insert(a.id.clone(), Arc::new(vec![a.clone()]));
        }
        v
    }

    fn desired(
        body: Value,
        group: &str,
        current: &View,
    ) -> Result<BTreeMap<PathId, Option<AppDefinition>>, AppError> {
        desired_apps(&body, &id(group), &current.apps, &AppDefaults::default())
    }

    fn changes(d: &BTreeMap<PathId, Option<AppDefinition>>) -> Vec<(String, bool)> {
        d.iter()
            .map(|(k, v)| (k.to_string(), v.is_some()))
            .collect()
    }

    #[test]
    fn get_paths_split_off_apps_versions_and_a_version() {
        assert_eq!(target("").unwrap(), Target::Group(PathId::root()));
        assert_eq!(target("proj/db").unwrap(), Target::Group(id("/proj/db")));
        assert_eq!(target("apps").unwrap(), Target::Apps(PathId::root()));
        assert_eq!(target("proj/apps").unwrap(), Target::Apps(id("/proj")));
        assert_eq!(
            target("versions").unwrap(),
            Target::Versions(PathId::root())
        );
        assert_eq!(
            target("proj/versions").unwrap(),
            Target::Versions(id("/proj"))
        );
        assert_eq!(
            target("proj/versions/2020-01-01T00:00:00.000Z").unwrap(),
            Target::Version(id("/proj"), "2020-01-01T00:00:00.000Z".into())
        );
        assert_eq!(
            target("Bad").unwrap_err().status(),
            StatusCode::UNPROCESSABLE_ENTITY
        );
    }

    #[test]
    fn embed_defaults_to_apps_and_groups_and_otherwise_takes_what_is_named() {
        let e = GroupEmbed::parse([]);
        assert!(e.apps && e.groups && e.app == Embed::default());
        let e = GroupEmbed::parse(["group.groups"]);
        assert!(!e.apps && e.groups);
        let e = GroupEmbed::parse(["group.apps", "group.apps.counts", "group.apps.tasks"]);
        assert!(e.apps && !e.groups);
        assert!(e.app.counts && e.app.tasks && e.app.deployments);
    }

    #[test]
    fn a_group_is_its_apps_arranged_by_id() {
        let v = view(&[
            app("/other", 1, 1),
            app("/proj/db", 1, 5),
            app("/proj/web/api", 2, 9),
            app("/proj/web/ui", 1, 3),
            app("/proj-x/a", 1, 20),
        ]);
        let apps: Vec<&AppDefinition> = subtree(&v.apps, &id("/proj"))
            .into_iter()
            .map(|(_, a)| &**a)
            .collect();
        assert_eq!(apps.len(), 3, "only apps strictly below /proj");
        let embed = GroupEmbed::parse([]);
        let info = serde_json::to_value(group_info(
            &v,
            id("/proj"),
            &apps,
            &embed,
            Timestamp::from_millis(100),
        ))
        .unwrap();
        assert_eq!(info["id"], "/proj");
        assert_eq!(info["apps"][0]["id"], "/proj/db");
        assert_eq!(info["groups"][0]["id"], "/proj/web");
        assert_eq!(info["groups"][0]["apps"].as_array().unwrap().len(), 2);
        assert_eq!(info["version"], json!(Timestamp::from_millis(9)));
        assert_eq!(
            info["groups"][0]["version"],
            json!(Timestamp::from_millis(9))
        );
        assert_eq!(info["pods"], json!([]));
        assert_eq!(info["dependencies"], json!([]));
        assert_eq!(info["enforceRole"], false);
        assert!(info["apps"][0].get("tasksRunning").is_none());

        let only_groups = GroupEmbed::parse(["group.groups"]);
        let info = serde_json::to_value(group_info(
            &v,
            id("/proj"),
            &apps,
            &only_groups,
            Timestamp::from_millis(100),
        ))
        .unwrap();
        assert_eq!(info["apps"], json!([]));
        assert_eq!(info["groups"][0]["apps"], json!([]));
    }

    #[test]
    fn a_put_writes_what_it_lists_and_removes_what_its_lists_leave_out() {
        let v = view(&[
            app("/proj/old", 1, 1),
            app("/proj/sub/x", 1, 1),
            app("/proj/gone/y", 1, 1),
            app("/elsewhere", 1, 1),
        ]);
        let body = json!({
            "id": "/proj",
            "apps": [{"id": "db", "cmd": "sleep 1"}, {"id": "web", "cmd": "sleep 1", "dependencies": ["db"]}],
            "groups": [{"id": "sub", "apps": [{"id": "z", "cmd": "sleep 1"}]}],
        });
        let d = desired(body, "/proj", &v).unwrap();
        assert_eq!(
            changes(&d),
            [
                ("/proj/db".to_string(), true),
                ("/proj/gone/y".into(), false),
                ("/proj/old".into(), false),
                ("/proj/sub/x".into(), false),
                ("/proj/sub/z".into(), true),
                ("/proj/web".into(), true),
            ]
        );
        assert_eq!(
            d[&id("/proj/web")].as_ref().unwrap().dependencies,
            [id("/proj/db")],
            "dependencies are relative to the group"
        );

        // Without `groups`, subgroups are left alone; without `apps`, the
        // group's own apps are.
        let d = desired(
            json!({"apps": [{"id": "old", "cmd": "sleep 1"}]}),
            "/proj",
            &v,
        )
        .unwrap();
        assert_eq!(changes(&d), [("/proj/old".to_string(), true)]);
        let d = desired(json!({"groups": []}), "/proj", &v).unwrap();
        assert_eq!(
            changes(&d),
            [
                ("/proj/gone/y".to_string(), false),
                ("/proj/sub/x".into(), false)
            ]
        );
    }

    #[test]
    fn unchanged_apps_are_not_written_and_scales_keep_their_configuration() {
        let current = app("/proj/db", 1, 1);
        let v = view(std::slice::from_ref(&current));
        let same = desired(
            json!({"apps": [{"id": "db", "cmd": "sleep 100"}]}),
            "/proj",
            &v,
        )
        .unwrap();
        assert!(plan_writes(&v, same, false).is_empty());

        let more = desired(
            json!({"apps": [{"id": "db", "cmd": "sleep 100", "instances": 3}]}),
            "/proj",
            &v,
        )
        .unwrap();
        let planned = plan_writes(&v, more, false);
        assert_eq!(planned.len(), 1);
        assert_eq!(planned[0].action, DeploymentAction::ScaleApplication);
        let mut next = AppDefinition::new(id("/proj/db"), &AppDefaults::default());
        next.cmd = Some("sleep 100".into());
        next.instances = 3;
        let now = Timestamp::from_millis(50);
        let written = next.next_version_of(Some(&current), now);
        assert_eq!(written.version, Some(now));
        assert_eq!(
            crate::reconcile::config_version(&written),
            crate::reconcile::config_version(&current),
            "a scale does not replace instances"
        );

        let changed = desired(
            json!({"apps": [{"id": "db", "cmd": "sleep 5"}]}),
            "/proj",
            &v,
        )
        .unwrap();
        assert_eq!(
            plan_writes(&v, changed, false)[0].action,
            DeploymentAction::RestartApplication
        );
    }

    #[test]
    fn errors_name_the_member_from_the_bodys_root() {
        let v = view(&[]);
        let e = desired(
            json!({"apps": [{"id": "ok", "cmd": "x"}, {"id": "bad", "cmd": "x", "cpus": -1}],
                   "groups": [{"id": "sub", "apps": [{"id": "/elsewhere/x", "cmd": "x"}]}]}),
            "/proj",
            &v,
        )
        .unwrap_err();
        assert_eq!(e.status(), 422);
        let paths: Vec<&str> = e.violations().iter().map(|v| v.path.as_str()).collect();
        assert!(paths.contains(&"/apps(1)/cpus"), "{paths:?}");
        assert!(paths.contains(&"/groups(0)/apps(0)/id"), "{paths:?}");

        let e = desired(json!({"apps": {"id": "x"}}), "/proj", &v).unwrap_err();
        assert_eq!(e.status(), 400);
        assert_eq!(e.violations()[0].path, "/apps");

        let e = desired(json!({"groups": [{"apps": []}]}), "/proj", &v).unwrap_err();
        assert_eq!(e.violations()[0].path, "/groups(0)/id");

        let e = desired(
            json!({"apps": [{"id": "a", "cmd": "x"}, {"id": "/proj/a", "cmd": "x"}]}),
            "/proj",
            &v,
        )
        .unwrap_err();
        assert_eq!(e.violations()[0].path, "/apps(1)/id");

        let e = desired(json!({"dependencies": ["/x"]}), "/proj", &v).unwrap_err();
        assert_eq!(e.violations()[0].path, "/dependencies");
    }

    #[test]
    fn no_app_may_end_up_below_another() {
        let v = view(&[app("/proj/db", 1, 1)]);
        let e = desired(
            json!({"groups": [{"id": "db", "apps": [{"id": "x", "cmd": "x"}]}]}),
            "/proj",
            &v,
        );
        // `groups` leaves /proj/db alone (it is the group's own app), so
        // /proj/db/x would be nested under it.
        assert_eq!(e.unwrap_err().status(), 422);
        // Replacing the app by a group in the same change is fine.
        let d = desired(
            json!({"apps": [], "groups": [{"id": "db", "apps": [{"id": "x", "cmd": "x"}]}]}),
            "/proj",
            &v,
        )
        .unwrap();
        assert_eq!(
            changes(&d),
            [("/proj/db".to_string(), false), ("/proj/db/x".into(), true)]
        );
    }

    #[test]
    fn scale_by_rounds_up_and_version_rolls_back_to_the_newest_at_or_before() {
        assert_eq!(scaled(3, 1.5), Some(5));
        assert_eq!(scaled(1, 2.0), Some(2));
        assert_eq!(scaled(0, 2.0), Some(0));
        assert_eq!(scaled(u32::MAX, 2.0), None);
        assert!(scale_factor(&json!({"scaleBy": -1})).is_err());
        assert!(scale_factor(&json!({"scaleBy": "2"})).is_err());
        assert_eq!(scale_factor(&json!({"scaleBy": 2})).unwrap(), Some(2.0));

        let v1 = app("/proj/db", 1, 10);
        let mut v2 = (*v1).clone();
        v2.instances = 4;
        let v2 = Arc::new(v2.with_version(Timestamp::from_millis(20), true));
        let mut v = view(std::slice::from_ref(&v2));
        v.versions
            .insert(id("/proj/db"), Arc::new(vec![v1.clone(), v2.clone()]));
        let planned = rollback(&v, &id("/proj"), Timestamp::from_millis(15)).unwrap();
        assert_eq!(planned.len(), 1);
        assert_eq!(planned[0].action, DeploymentAction::ScaleApplication);
        assert!(
            rollback(&v, &id("/proj"), Timestamp::from_millis(25))
                .unwrap()
                .is_empty()
        );
        assert_eq!(
            rollback(&v, &id("/proj"), Timestamp::from_millis(5))
                .err()
                .unwrap()
                .status(),
            StatusCode::NOT_FOUND
        );
        let scaled_up = scale(&v, &id("/proj"), 2.0).unwrap();
        assert_eq!(scaled_up.len(), 1);
        assert!(scale(&v, &id("/nothing"), 2.0).is_err());
    }

    #[test]
    fn a_dry_run_shows_dependency_steps() {
        let v = view(&[app("/proj/old", 1, 1)]);
        let d = desired(
            json!({"apps": [{"id": "db", "cmd": "x"}, {"id": "web", "cmd": "x", "dependencies": ["db"]}]}),
            "/proj",
            &v,
        )
        .unwrap();
        let planned = plan_writes(&v, d, false);
        let actions: Vec<(PathId, DeploymentAction)> =
            planned.iter().map(|p| (p.id.clone(), p.action)).collect();
        let deps: BTreeMap<&PathId, &Vec<PathId>> =
            planned.iter().map(|p| (&p.id, &p.dependencies)).collect();
        let steps = plan::steps(&actions, |i| {
            deps.get(i).map(|d| d.to_vec()).unwrap_or_default()
        })
        .unwrap();
        let names: Vec<Vec<&str>> = steps
            .iter()
            .map(|s| s.iter().map(|(a, _)| a.as_str()).collect())
            .collect();
        assert_eq!(
            names,
            [vec!["/proj/old"], vec!["/proj/db"], vec!["/proj/web"]]
        );
        assert!(dry_run(&planned).is_ok());
    }

    #[test]
    fn violation_paths_are_joined_below_their_member() {
        assert_eq!(join("", "/"), "/");
        assert_eq!(join("/apps(0)", "/"), "/apps(0)");
        assert_eq!(join("/apps(0)", "/cpus"), "/apps(0)/cpus");
        assert_eq!(join("/groups(1)", "/apps(0)"), "/groups(1)/apps(0)");
        assert_eq!(join("/apps(0)", "id"), "/apps(0)/id");
    }
}
