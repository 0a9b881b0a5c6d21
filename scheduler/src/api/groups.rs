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

use std::collections::BTreeMap;

use self::body::{desired_apps, subtree};
use std::sync::Arc;

use axum::Router;
use axum::body::Bytes;
use axum::extract::rejection::BytesRejection;
use axum::extract::{Path, RawQuery};
use axum::http::{HeaderMap, HeaderValue, Method, StatusCode, header};
use axum::response::{IntoResponse, Response};
use axum::routing::get;
use serde::Serialize;
use serde_json::{Value, json};

use super::params::{self, Params};
use super::render::{Now, Reads, RenderError, Seq};
use super::shapes::{AppInfo, Embed};
use super::{Api, ApiError, ApiState};
use crate::auth::Action;
use crate::deploy::plan;
use crate::reconcile::events::Event;
use crate::reconcile::{AppEdit, DeploymentAction, SchedulerError, View};
use crate::state::app::{AppDefinition, AppError, PathId, Timestamp, Violation, is_upgrade};

/// The `/v2/groups` routes.
pub fn routes() -> Router<Arc<ApiState>> {
    let any = || get(on_path).post(on_path).put(on_path).delete(on_path);
    Router::new()
        .route("/v2/groups", any())
        .route("/v2/groups/", any())
        .route("/v2/groups/{*path}", any())
}

async fn on_path(
    state: Api,
    method: Method,
    headers: HeaderMap,
    path: Option<Path<String>>,
    RawQuery(query): RawQuery,
    body: Result<Bytes, BytesRejection>,
) -> Result<Response, ApiError> {
    let params = Params::parse(query.as_deref())?;
    let path = path.map(|Path(p)| p).unwrap_or_default();
    match method {
        Method::GET => Ok(state
            .list(GroupsQuery::parse(&path, &params)?, &headers)
            .await),
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
#[derive(Debug, Clone, PartialEq, Eq)]
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
    pods: bool,
    groups: bool,
    app: Embed,
}

impl GroupEmbed {
    fn parse<'a>(values: impl IntoIterator<Item = &'a str>) -> GroupEmbed {
        let values: Vec<&str> = values.into_iter().collect();
        if values.is_empty() {
            return GroupEmbed {
                apps: true,
                pods: true,
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
            pods: group.contains(&"group.pods"),
            groups: group.contains(&"group.groups"),
            app: Embed::parse(app),
        }
    }
}

/// A group as Marathon writes it (`types/group.raml` GroupInfo). Its apps
/// are shown as they are written, not gathered first.
#[derive(Serialize)]
#[serde(rename_all = "camelCase")]
struct GroupInfo<'a> {
    id: PathId,
    apps: AppsShown<'a>,
    pods: Vec<crate::state::app::pod::PodDefinition>,
    groups: Vec<GroupInfo<'a>>,
    dependencies: [(); 0],
    version: Timestamp,
    enforce_role: bool,
}

/// Apps of a group with what `embed` asks for, shown when written.
struct AppsShown<'a> {
    view: &'a View,
    apps: Vec<&'a AppDefinition>,
    embed: Embed,
    now: Timestamp,
}

impl Serialize for AppsShown<'_> {
    fn serialize<S: serde::Serializer>(&self, serializer: S) -> Result<S::Ok, S::Error> {
        serializer.collect_seq(
            self.apps
                .iter()
                .map(|a| AppInfo::new(self.view, a, &self.embed, self.now)),
        )
    }
}

/// `id` with `apps` (every app strictly below it) arranged in subgroups.
fn group_info<'a>(
    view: &'a View,
    id: PathId,
    apps: &[&'a AppDefinition],
    embed: &GroupEmbed,
    now: &Now,
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
    // Pods are kept as apps; a group shows them as its `pods`.
    let (pods, direct): (Vec<&AppDefinition>, Vec<&AppDefinition>) =
        direct.into_iter().partition(|a| a.is_pod());
    let shown = AppsShown {
        view,
        apps: if embed.apps { direct } else { Vec::new() },
        embed: embed.app,
        now: now.for_embed(&embed.app),
    };
    GroupInfo {
        // An empty group (root without apps) is as new as the request.
        version: apps
            .iter()
            .filter_map(|a| a.version)
            .max()
            .unwrap_or_else(|| now.read()),
        id,
        apps: shown,
        pods: if embed.pods {
            pods.iter().filter_map(|a| a.pod_definition()).collect()
        } else {
            Vec::new()
        },
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

/// A `GET` under `/v2/groups`, normalised: what it names and what it
/// embeds.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct GroupsQuery {
    target: Target,
    embed: GroupEmbed,
}

impl GroupsQuery {
    /// `path` is what follows `/v2/groups/` (empty for root).
    pub(super) fn parse(path: &str, params: &Params) -> Result<GroupsQuery, ApiError> {
        Ok(GroupsQuery {
            target: target(path)?,
            embed: GroupEmbed::parse(params.all("embed")),
        })
    }

    /// What of a snapshot the answer shows.
    pub(super) fn reads(&self) -> Reads {
        let app = match self.target {
            // Marathon shows a past group without app embeds.
            Target::Version(..) => Embed::default(),
            _ => self.embed.app,
        };
        Reads {
            versions: matches!(self.target, Target::Versions(_) | Target::Version(..)),
            ..Reads::of_embed(&app)
        }
    }

    /// The answer, as `GET /v2/groups` has always written it.
    pub(super) fn render<W: std::io::Write>(
        &self,
        view: &View,
        now: &Now,
        out: W,
    ) -> Result<(), RenderError> {
        let embed = self.embed;
        match &self.target {
            Target::Group(id) => {
                let apps: Vec<&AppDefinition> = subtree(&view.apps, id)
                    .into_iter()
                    .map(|(_, a)| &**a)
                    .collect();
                if apps.is_empty() && !id.is_root() {
                    return Err(unknown_group(id).into());
                }
                serde_json::to_writer(out, &group_info(view, id.clone(), &apps, &embed, now))?;
            }
            Target::Apps(id) => {
                // Every app below the group (Marathon's `transitiveApps`);
                // an unknown group has none.
                let at = now.for_embed(&embed.app);
                let apps = subtree(&view.apps, id)
                    .into_iter()
                    .filter(|(_, a)| !a.is_pod())
                    .map(|(_, a)| AppInfo::new(view, a, &embed.app, at));
                serde_json::to_writer(out, &Seq::new(apps))?;
            }
            Target::Versions(id) => {
                let apps = subtree(&view.apps, id);
                if apps.is_empty() && !id.is_root() {
                    return Err(unknown_group(id).into());
                }
                let mut versions: Vec<Timestamp> = apps
                    .iter()
                    .filter_map(|(app, _)| view.versions.get(*app))
                    .flat_map(|list| list.iter().filter_map(|a| a.version))
                    .collect();
                versions.sort_unstable_by(|a, b| b.cmp(a));
                versions.dedup();
                serde_json::to_writer(out, &versions)?;
            }
            Target::Version(id, version) => {
                let missing = || {
                    ApiError::NotFound(format!("Group '{id}' does not exist in version {version}"))
                };
                let at: Timestamp = version.parse().map_err(|_| missing())?;
                let apps = apps_at(view, id, at);
                if apps.is_empty() && !id.is_root() {
                    return Err(missing().into());
                }
                // Marathon shows a past group without app embeds.
                let embed = GroupEmbed {
                    app: Embed::default(),
                    ..embed
                };
                serde_json::to_writer(out, &group_info(view, id.clone(), &apps, &embed, now))?;
            }
        }
        Ok(())
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
/// Writes are planned on the whole tree, apps the caller cannot see
/// included, so that a plan never mistakes a hidden app for an absent one;
/// each planned change is then authorized (and again in the loop).
async fn write(
    state: &Api,
    group: &PathId,
    planned: Vec<Planned>,
    force: bool,
    status: StatusCode,
) -> Result<Response, ApiError> {
    for p in &planned {
        let action = match p.action {
            DeploymentAction::StartApplication => Action::Create,
            DeploymentAction::StopApplication => Action::Delete,
            DeploymentAction::ScaleApplication | DeploymentAction::RestartApplication => {
                Action::Update
            }
        };
        state.authorize(action, &p.id)?;
    }
    let ids: Vec<PathId> = planned.iter().map(|p| p.id.clone()).collect();
    state.authorize_superseding(&ids, force)?;
    let (deployment_id, version) = if planned.is_empty() {
        (uuid::Uuid::new_v4().to_string(), state.scheduler.now())
    } else {
        let edits = planned
            .into_iter()
            .map(|p| (p.id.clone(), state.authorized_edit(p.id, p.edit)))
            .collect();
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
    state: &Api,
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
    state: &Api,
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

async fn delete(state: &Api, group: PathId, params: &Params) -> Result<Response, ApiError> {
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

mod body;
#[cfg(test)]
mod tests;
