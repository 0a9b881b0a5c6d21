//! `/v2/apps`: list, create, show, update, scale, roll back, restart and
//! delete apps; their tasks and versions (marathon-api.md §1.2).
//!
//! App ids contain slashes, so everything under `/v2/apps/` is one wildcard
//! route split here by its reserved last segments (`restart`, `tasks`,
//! `tasks/{taskId}`, `versions`, `versions/{v}`, `*`) — the reason Marathon
//! reserves those names.

use std::sync::Arc;

use axum::Router;
use axum::body::Bytes;
use axum::extract::rejection::BytesRejection;
use axum::extract::{Path, RawQuery};
use axum::http::{HeaderMap, HeaderValue, Method, StatusCode, Uri, header};
use axum::response::{IntoResponse, Response};
use axum::routing::get;
use serde_json::{Value, json};

use super::events::ClientAddr;
use super::params::{self, Params};
use super::render::{Now, Reads, RenderError, Seq};
use super::shapes::{AppInfo, DeploymentRef, Embed, app_tasks};
use super::{Api, ApiError, ApiState};
use crate::auth::Action;
use crate::reconcile::events::Event;
use crate::reconcile::{AppEdit, SchedulerError, View};
use crate::state::app::{
    AppDefaults, AppDefinition, AppError, Labels, PathId, Timestamp, rollback_version,
};
use crate::state::instance::Instance;

/// The `/v2/apps` routes.
pub fn routes() -> Router<Arc<ApiState>> {
    Router::new()
        .route(
            "/v2/apps",
            get(list).post(create).put(bulk_update).patch(bulk_update),
        )
        .route("/v2/apps/", get(list))
        .route(
            "/v2/apps/{*path}",
            get(on_path)
                .put(on_path)
                .patch(on_path)
                .delete(on_path)
                .post(on_path),
        )
}

/// What a path under `/v2/apps/` names.
#[derive(Debug, PartialEq, Eq)]
enum Target {
    App(PathId),
    /// `{group}/*`: every app under a group.
    AppsUnder(PathId),
    Restart(PathId),
    Tasks(PathId),
    GroupTasks(PathId),
    Task(PathId, String),
    Versions(PathId),
    Version(PathId, String),
}

impl Target {
    /// The one app it names, if it names one.
    fn app_id(&self) -> Option<&PathId> {
        match self {
            Target::App(id)
            | Target::Restart(id)
            | Target::Tasks(id)
            | Target::Task(id, _)
            | Target::Versions(id)
            | Target::Version(id, _) => Some(id),
            Target::AppsUnder(_) | Target::GroupTasks(_) => None,
        }
    }
}

fn app_id(segments: &[&str]) -> Result<PathId, ApiError> {
    let text = segments.join("/");
    PathId::parse_app(&text, &PathId::root())
        .map_err(|e| ApiError::from(AppError::invalid("/id", e.to_string())))
}

fn group_id(segments: &[&str]) -> Result<PathId, ApiError> {
    PathId::parse(&segments.join("/"), &PathId::root())
        .map_err(|e| ApiError::from(AppError::invalid("/id", e.to_string())))
}

fn target(path: &str) -> Result<Target, ApiError> {
    let segments: Vec<&str> = path.split('/').filter(|s| !s.is_empty()).collect();
    let n = segments.len();
    let last = segments.last().copied().unwrap_or("");
    let before_last = if n >= 2 { segments[n - 2] } else { "" };
    Ok(match (before_last, last) {
        ("*", "tasks") => Target::GroupTasks(group_id(&segments[..n - 2])?),
        (_, "*") => Target::AppsUnder(group_id(&segments[..n - 1])?),
        (_, "restart") if n >= 2 => Target::Restart(app_id(&segments[..n - 1])?),
        (_, "tasks") if n >= 2 => Target::Tasks(app_id(&segments[..n - 1])?),
        ("tasks", task) if n >= 3 => Target::Task(app_id(&segments[..n - 2])?, task.to_string()),
        (_, "versions") if n >= 2 => Target::Versions(app_id(&segments[..n - 1])?),
        ("versions", v) if n >= 3 => Target::Version(app_id(&segments[..n - 2])?, v.to_string()),
        _ => Target::App(app_id(&segments)?),
    })
}

/// `api_post_event` for an app as written.
fn api_post(app: Arc<AppDefinition>, uri: &str, client_ip: &str) -> Event {
    Event::ApiPost {
        app,
        uri: uri.to_string(),
        client_ip: client_ip.to_string(),
    }
}

fn not_found(id: &PathId) -> ApiError {
    ApiError::NotFound(format!("App '{id}' does not exist"))
}

async fn on_path(
    state: Api,
    method: Method,
    uri: Uri,
    ClientAddr(client): ClientAddr,
    Path(path): Path<String>,
    RawQuery(query): RawQuery,
    body: Result<Bytes, BytesRejection>,
) -> Result<Response, ApiError> {
    let params = Params::parse(query.as_deref())?;
    let target = target(&path)?;
    // A pod is no app here: absent to reads, a conflict to writes.
    if let Some(id) = target.app_id()
        && state
            .scheduler
            .view()
            .apps
            .get(id)
            .is_some_and(|a| a.is_pod())
    {
        return Err(if method == Method::GET || method == Method::DELETE {
            not_found(id)
        } else {
            ApiError::Body {
                status: StatusCode::CONFLICT,
                body: json!({"message": format!("{id} is a pod; write it through /v2/pods")}),
            }
        });
    }
    match (method, target) {
        (Method::GET, Target::App(id)) => show(&state, &id, &params),
        (Method::GET, Target::AppsUnder(group)) => {
            let view = state.view();
            let embed = list_embed(&params);
            let now = state.scheduler.now();
            let apps: Vec<AppInfo> = view
                .apps
                .values()
                .filter(|a| a.id.is_descendant_of(&group) && !a.is_pod())
                .map(|a| AppInfo::new(&view, a, &embed, now))
                .collect();
            Ok(axum::Json(json!({ "*": apps })).into_response())
        }
        (Method::PUT, Target::App(id)) => {
            let origin = (uri.path(), client.as_str());
            update(&state, id, &params, params::body(body)?, true, origin).await
        }
        (Method::PATCH, Target::App(id)) => {
            let origin = (uri.path(), client.as_str());
            update(&state, id, &params, params::body(body)?, false, origin).await
        }
        (Method::DELETE, Target::App(id)) => {
            state.authorize(Action::Delete, &id)?;
            let force = params.flag("force", true)?;
            state.authorize_superseding(std::slice::from_ref(&id), force)?;
            let outcome = state.scheduler.delete_app(id, force).await?;
            Ok(params::written(StatusCode::OK, &outcome))
        }
        (Method::POST, Target::Restart(id)) => restart(&state, id, &params).await,
        (Method::GET, Target::Tasks(id)) => {
            let view = state.view();
            if !view.apps.contains_key(&id) {
                return Err(not_found(&id));
            }
            Ok(axum::Json(json!({ "tasks": app_tasks(&view, &id) })).into_response())
        }
        (Method::GET, Target::GroupTasks(group)) => {
            let view = state.view();
            let tasks: Vec<_> = view
                .apps
                .values()
                .filter(|a| a.id.is_descendant_of(&group) && !a.is_pod())
                .flat_map(|a| app_tasks(&view, &a.id))
                .collect();
            Ok(axum::Json(json!({ "tasks": tasks })).into_response())
        }
        (Method::DELETE, Target::Tasks(id)) => kill_app_tasks(&state, id, &params).await,
        (Method::DELETE, Target::Task(id, task_id)) => {
            kill_one_task(&state, id, task_id, &params).await
        }
        (Method::GET, Target::Versions(id)) => {
            let view = state.view();
            if !view.apps.contains_key(&id) {
                return Err(not_found(&id));
            }
            let versions: Vec<Value> = view
                .versions
                .get(&id)
                .map(|list| {
                    list.iter()
                        .rev()
                        .filter_map(|a| a.version)
                        .map(|v| json!(v))
                        .collect()
                })
                .unwrap_or_default();
            Ok(axum::Json(json!({ "versions": versions })).into_response())
        }
        (Method::GET, Target::Version(id, version)) => {
            let view = state.view();
            if !view.apps.contains_key(&id) {
                return Err(not_found(&id));
            }
            let missing =
                || ApiError::NotFound(format!("App '{id}' does not exist in version {version}"));
            let v: Timestamp = version.parse().map_err(|_| missing())?;
            let app = view.app_version(&id, v).ok_or_else(missing)?;
            Ok(axum::Json(serde_json::to_value(&**app).unwrap_or(Value::Null)).into_response())
        }
        (method, _) => Err(ApiError::Body {
            status: StatusCode::METHOD_NOT_ALLOWED,
            body: json!({"message": format!("{method} is not supported on /v2/apps/{path}")}),
        }),
    }
}

fn list_embed(params: &Params) -> Embed {
    // Counts and deployments are always there on lists (AppsResource.index).
    Embed {
        counts: true,
        deployments: true,
        ..Embed::parse(params.all("embed"))
    }
}

/// `GET /v2/apps`'s query, normalised: what is shown of each app
/// (counts and deployments always), and the filters — `cmd` and `id` as
/// lowercase substrings, `label` as a selector (kept with its text, which
/// is what two requests compare by).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct AppsQuery {
    embed: Embed,
    cmd: Option<String>,
    id: Option<String>,
    label: Option<(String, LabelSelector)>,
}

impl AppsQuery {
    /// Reads the query; 400 for a label selector that is not one.
    pub(super) fn parse(params: &Params) -> Result<AppsQuery, ApiError> {
        let label = params
            .get("label")
            .map(|text| LabelSelector::parse(text).map(|s| (text.to_string(), s)))
            .transpose()?;
        Ok(AppsQuery {
            embed: list_embed(params),
            cmd: params.get("cmd").map(str::to_lowercase),
            id: params.get("id").map(str::to_lowercase),
            label,
        })
    }

    /// What of a snapshot the list shows.
    pub(super) fn reads(&self) -> Reads {
        Reads::of_embed(&self.embed)
    }

    fn wants(&self, a: &AppDefinition) -> bool {
        // Pods are listed under /v2/pods only.
        !a.is_pod()
            && self.cmd.as_ref().is_none_or(|c| {
                a.cmd
                    .as_ref()
                    .is_some_and(|cmd| cmd.to_lowercase().contains(c.as_str()))
            })
            && self
                .id
                .as_ref()
                .is_none_or(|i| a.id.as_str().to_lowercase().contains(i.as_str()))
            && self
                .label
                .as_ref()
                .is_none_or(|(_, s)| s.matches(&a.labels))
    }

    /// `{"apps": [...]}`, each app written as it is reached.
    pub(super) fn render<W: std::io::Write>(
        &self,
        view: &View,
        now: &Now,
        out: W,
    ) -> Result<(), RenderError> {
        #[derive(serde::Serialize)]
        struct Apps<S> {
            apps: S,
        }
        let at = now.for_embed(&self.embed);
        let apps = view
            .apps
            .values()
            .filter(|a| self.wants(a))
            .map(|a| AppInfo::new(view, a, &self.embed, at));
        serde_json::to_writer(
            out,
            &Apps {
                apps: Seq::new(apps),
            },
        )?;
        Ok(())
    }
}

async fn list(
    state: Api,
    headers: HeaderMap,
    RawQuery(query): RawQuery,
) -> Result<Response, ApiError> {
    let params = Params::parse(query.as_deref())?;
    Ok(state.list(AppsQuery::parse(&params)?, &headers).await)
}

fn show(state: &Api, id: &PathId, params: &Params) -> Result<Response, ApiError> {
    let view = state.view();
    let app = view.apps.get(id).ok_or_else(|| not_found(id))?;
    // A single app always embeds counts, tasks, failures and deployments
    // (AppsResource.show).
    let embed = Embed {
        counts: true,
        tasks: true,
        deployments: true,
        last_task_failure: true,
        ..Embed::parse(params.all("embed"))
    };
    let info = AppInfo::new(&view, app, &embed, state.scheduler.now());
    Ok(axum::Json(json!({ "app": info })).into_response())
}

/// 422 when `id` clashes with the tree: an app cannot live under another
/// app, nor hold apps under it.
pub(super) fn check_tree(view: &View, id: &PathId) -> Result<(), ApiError> {
    let mut parent = id.parent();
    while !parent.is_root() {
        if view.apps.contains_key(&parent) {
            return Err(AppError::invalid(
                "/id",
                format!("The path {parent} is an app; an app cannot be nested under it"),
            )
            .into());
        }
        parent = parent.parent();
    }
    if view.apps.keys().any(|a| a.is_descendant_of(id) && a != id) {
        return Err(AppError::invalid(
            "/id",
            format!("A group with id {id} exists; an app cannot replace it"),
        )
        .into());
    }
    Ok(())
}

async fn create(
    state: Api,
    uri: Uri,
    ClientAddr(client): ClientAddr,
    RawQuery(query): RawQuery,
    body: Result<Bytes, BytesRejection>,
) -> Result<Response, ApiError> {
    let params = Params::parse(query.as_deref())?;
    let force = params.flag("force", false)?;
    let bytes = params::body(body)?;
    let app = AppDefinition::from_json(&bytes, &PathId::root(), &state.app_defaults())?;
    state.authorize(Action::Create, &app.id)?;
    state.authorize_superseding(std::slice::from_ref(&app.id), force)?;
    // The whole tree, hidden apps included: an app must not land under
    // one the caller cannot see.
    check_tree(&state.scheduler.view(), &app.id)?;
    let id = app.id.clone();
    let edit: AppEdit = Box::new(move |ctx| match ctx.current {
        Some(existing) => Err(SchedulerError::AlreadyExists(existing.id.clone())),
        None => Ok(Some(app.with_version(ctx.now, false))),
    });
    let edit = state.authorized_edit(id.clone(), edit);
    let outcome = state.scheduler.edit_app(id.clone(), force, edit).await?;
    let view = state.view();
    let stored_app = outcome.app.clone().ok_or_else(|| not_found(&id))?;
    let stored = &*stored_app;
    state
        .scheduler
        .publish_event(api_post(stored_app.clone(), uri.path(), &client));
    let embed = Embed {
        counts: true,
        deployments: true,
        ..Embed::default()
    };
    let mut info = AppInfo::new(&view, stored, &embed, state.scheduler.now());
    // The snapshot may predate the write; say which deployment runs it.
    info.deployments = Some(vec![DeploymentRef {
        id: &outcome.deployment_id,
    }]);
    let mut response = (StatusCode::CREATED, axum::Json(info)).into_response();
    params::with_deployment_header(&mut response, &outcome.deployment_id);
    if let Ok(location) = HeaderValue::from_str(&format!("/v2/apps{id}")) {
        response.headers_mut().insert(header::LOCATION, location);
    }
    Ok(response)
}

/// What writing `id` is: an update of an existing app, else (for a PUT,
/// which creates what is missing) a creation.
pub(super) fn write_action(state: &Api, id: &PathId, creates_missing: bool) -> Action {
    if creates_missing && !state.scheduler.view().apps.contains_key(id) {
        Action::Create
    } else {
        Action::Update
    }
}

/// Killing tasks needs `kill`; killing and scaling down changes the app
/// too, so it needs `update` as well.
pub(super) fn authorize_kill(
    state: &Api,
    app: &PathId,
    options: &crate::reconcile::KillOptions,
) -> Result<(), ApiError> {
    state.authorize(Action::Kill, app)?;
    if options.scale {
        state.authorize(Action::Update, app)?;
        state.authorize_superseding(std::slice::from_ref(app), options.force)?;
    }
    Ok(())
}

/// Builds the edit for a PUT (`create_missing`) or PATCH of one app body.
fn update_edit(
    id: PathId,
    body: Value,
    defaults: AppDefaults,
    partial: bool,
    create_missing: bool,
) -> Result<AppEdit, ApiError> {
    if let Some(version) = rollback_version(&body)? {
        return Ok(Box::new(move |ctx| {
            if ctx.current.is_none() {
                return Err(SchedulerError::UnknownApp(id.clone()));
            }
            let target = ctx
                .versions
                .iter()
                .find(|a| a.version == Some(version))
                .ok_or_else(|| {
                    SchedulerError::NotFound(format!(
                        "App '{id}' does not exist in version {version}"
                    ))
                })?;
            Ok(Some((**target).clone().restored_at(ctx.now)))
        }));
    }
    Ok(Box::new(move |ctx| {
        let next = match ctx.current {
            Some(current) if current.is_pod() => {
                return Err(AppError::invalid(
                    "/id",
                    format!("{id} is a pod; write it through /v2/pods"),
                )
                .into());
            }
            Some(current) if partial => current.merge_update(&body, &defaults)?,
            Some(_) => full_definition(&id, body, &defaults)?,
            None if create_missing => full_definition(&id, body, &defaults)?,
            None => return Err(SchedulerError::UnknownApp(id)),
        };
        // A full replace that changes only `instances` is a scale too.
        Ok(Some(next.next_version_of(ctx.current, ctx.now)))
    }))
}

/// A whole app from a body whose `id` (if any) must be `id`.
fn full_definition(
    id: &PathId,
    mut body: Value,
    defaults: &AppDefaults,
) -> Result<AppDefinition, SchedulerError> {
    let Some(map) = body.as_object_mut() else {
        return Err(AppError::WrongType {
            details: vec![crate::state::app::Violation {
                path: "/".into(),
                errors: vec!["error.expected.jsobject".into()],
            }],
        }
        .into());
    };
    match map.get("id").and_then(Value::as_str) {
        Some(given) if PathId::parse(given, &PathId::root()).ok().as_ref() != Some(id) => {
            return Err(AppError::invalid(
                "/id",
                format!("The id in the body ('{given}') does not match the app's id ('{id}')"),
            )
            .into());
        }
        _ => {}
    }
    map.insert("id".into(), json!(id.as_str()));
    map.remove("version");
    map.remove("versionInfo");
    Ok(AppDefinition::from_value(&body, &PathId::root(), defaults)?)
}

/// `origin` is the request's path and client address (`api_post_event`).
async fn update(
    state: &Api,
    id: PathId,
    params: &Params,
    bytes: Bytes,
    create_missing: bool,
    origin: (&str, &str),
) -> Result<Response, ApiError> {
    let force = params.flag("force", false)?;
    let partial = params.flag("partialUpdate", true)?;
    let body = params::json_body(&bytes)?;
    state.authorize(write_action(state, &id, create_missing), &id)?;
    state.authorize_superseding(std::slice::from_ref(&id), force)?;
    let whole = state.scheduler.view();
    if create_missing && !whole.apps.contains_key(&id) {
        check_tree(&whole, &id)?;
    }
    let edit = update_edit(
        id.clone(),
        body,
        state.app_defaults(),
        partial,
        create_missing,
    )?;
    let edit = state.authorized_edit(id.clone(), edit);
    let outcome = state.scheduler.edit_app(id.clone(), force, edit).await?;
    if let Some(app) = &outcome.app {
        let (uri, client) = origin;
        state
            .scheduler
            .publish_event(api_post(app.clone(), uri, client));
    }
    let status = if outcome.created {
        StatusCode::CREATED
    } else {
        StatusCode::OK
    };
    let mut response = params::written(status, &outcome);
    if outcome.created
        && let Ok(location) = HeaderValue::from_str(&format!("/v2/apps{id}"))
    {
        response.headers_mut().insert(header::LOCATION, location);
    }
    Ok(response)
}

/// `PUT /v2/apps` and `PATCH /v2/apps`: an array of app updates, each by
/// its `id`. Every body is checked before anything is written.
async fn bulk_update(
    state: Api,
    method: Method,
    uri: Uri,
    ClientAddr(client): ClientAddr,
    RawQuery(query): RawQuery,
    body: Result<Bytes, BytesRejection>,
) -> Result<Response, ApiError> {
    let params = Params::parse(query.as_deref())?;
    let force = params.flag("force", false)?;
    let partial = method == Method::PATCH || params.flag("partialUpdate", true)?;
    let bytes = params::body(body)?;
    let Value::Array(items) = params::json_body(&bytes)? else {
        return Err(AppError::WrongType {
            details: vec![crate::state::app::Violation {
                path: "/".into(),
                errors: vec!["error.expected.jsarray".into()],
            }],
        }
        .into());
    };
    let mut edits = Vec::new();
    for (i, item) in items.into_iter().enumerate() {
        let id = item
            .get("id")
            .and_then(Value::as_str)
            .and_then(|s| PathId::parse_app(s, &PathId::root()).ok())
            .ok_or_else(|| {
                ApiError::from(AppError::invalid(
                    format!("({i})/id"),
                    "a valid app id is required",
                ))
            })?;
        state.authorize(write_action(&state, &id, method == Method::PUT), &id)?;
        let edit = update_edit(
            id.clone(),
            item,
            state.app_defaults(),
            partial,
            method == Method::PUT,
        )?;
        edits.push((id.clone(), state.authorized_edit(id, edit)));
    }
    if edits.is_empty() {
        return Err(ApiError::BadRequest("The body lists no apps".into()));
    }
    let ids: Vec<PathId> = edits.iter().map(|(id, _)| id.clone()).collect();
    state.authorize_superseding(&ids, force)?;
    // All or nothing, under one deployment, as Marathon does.
    let outcome = state.scheduler.edit_apps(edits, force).await?;
    // The snapshot is published before the reply; an app of another
    // version has been written since and is not this request's.
    let view = state.view();
    for id in &ids {
        if let Some(app) = view.apps.get(id)
            && app.version == Some(outcome.version)
        {
            state
                .scheduler
                .publish_event(api_post(app.clone(), uri.path(), &client));
        }
    }
    Ok(params::written(StatusCode::OK, &outcome))
}

async fn restart(state: &Api, id: PathId, params: &Params) -> Result<Response, ApiError> {
    state.authorize(Action::Update, &id)?;
    let force = params.flag("force", false)?;
    state.authorize_superseding(std::slice::from_ref(&id), force)?;
    let missing = id.clone();
    let edit: AppEdit = Box::new(move |ctx| match ctx.current {
        Some(current) => Ok(Some(current.clone().with_version(ctx.now, false))),
        None => Err(SchedulerError::UnknownApp(missing)),
    });
    let edit = state.authorized_edit(id.clone(), edit);
    let outcome = state.scheduler.edit_app(id, force, edit).await?;
    Ok(params::written(StatusCode::OK, &outcome))
}

async fn kill_app_tasks(state: &Api, id: PathId, params: &Params) -> Result<Response, ApiError> {
    let options = params::kill_options(params)?;
    authorize_kill(state, &id, &options)?;
    let host = params.get("host").filter(|h| *h != "*").map(str::to_string);
    let view = state.view();
    if !view.apps.contains_key(&id) {
        return Err(not_found(&id));
    }
    let task_ids: Vec<String> = view
        .instances_of(&id)
        .filter(|i| i.is_active())
        .filter_map(|i| i.task.as_ref())
        .filter(|t| host.as_ref().is_none_or(|h| &t.hostname == h))
        .map(|t| t.task_id.clone())
        .collect();
    let outcome = state.scheduler.kill_tasks(task_ids, options).await?;
    Ok(params::killed(outcome, false))
}

async fn kill_one_task(
    state: &Api,
    id: PathId,
    task_id: String,
    params: &Params,
) -> Result<Response, ApiError> {
    let options = params::kill_options(params)?;
    authorize_kill(state, &id, &options)?;
    let view = state.view();
    if !view.apps.contains_key(&id) {
        return Err(not_found(&id));
    }
    // The task must be this app's: the kill (and its scale) applies to
    // the task's own app, which the caller was not authorized for.
    let known = view
        .instance_by_task(&task_id)
        .is_some_and(|i: &Arc<Instance>| i.is_active() && i.app_id == id);
    if !known {
        return Err(ApiError::NotFound(format!(
            "Task '{task_id}' does not exist"
        )));
    }
    let outcome = state.scheduler.kill_tasks(vec![task_id], options).await?;
    Ok(params::killed(outcome, true))
}

/// Marathon's label selector: `k`, `k==v`, `k!=v`, `k in (a,b)`,
/// `k notin (a,b)`, joined by commas (AND).
#[derive(Debug, Clone, PartialEq, Eq)]
struct LabelSelector(Vec<LabelTerm>);

#[derive(Debug, Clone, PartialEq, Eq)]
enum LabelTerm {
    Exists(String),
    Equals(String, String),
    NotEquals(String, String),
    In(String, Vec<String>),
    NotIn(String, Vec<String>),
}

impl LabelSelector {
    fn parse(text: &str) -> Result<LabelSelector, ApiError> {
        let bad =
            |why: &str| ApiError::BadRequest(format!("Invalid label selector '{text}': {why}"));
        // Split on commas outside parentheses.
        let mut terms = Vec::new();
        let mut depth = 0i32;
        let mut start = 0;
        for (i, c) in text.char_indices() {
            match c {
                '(' => depth += 1,
                ')' => depth -= 1,
                ',' if depth == 0 => {
                    terms.push(&text[start..i]);
                    start = i + 1;
                }
                _ => {}
            }
            if depth < 0 {
                return Err(bad("unbalanced parentheses"));
            }
        }
        if depth != 0 {
            return Err(bad("unbalanced parentheses"));
        }
        terms.push(&text[start..]);
        let set = |rest: &str| -> Result<Vec<String>, ApiError> {
            let inner = rest
                .trim()
                .strip_prefix('(')
                .and_then(|r| r.strip_suffix(')'))
                .ok_or_else(|| bad("a set must be written (a,b)"))?;
            Ok(inner.split(',').map(|v| v.trim().to_string()).collect())
        };
        let mut parsed = Vec::new();
        for term in terms {
            let term = term.trim();
            if term.is_empty() {
                return Err(bad("empty term"));
            }
            let parsed_term = if let Some((k, v)) = term.split_once("!=") {
                LabelTerm::NotEquals(k.trim().into(), v.trim().into())
            } else if let Some((k, v)) = term.split_once("==") {
                LabelTerm::Equals(k.trim().into(), v.trim().into())
            } else if let Some((k, rest)) = term.split_once(" notin ") {
                LabelTerm::NotIn(k.trim().into(), set(rest)?)
            } else if let Some((k, rest)) = term.split_once(" in ") {
                LabelTerm::In(k.trim().into(), set(rest)?)
            } else if term.contains(|c: char| c.is_whitespace() || "()=!".contains(c)) {
                return Err(bad("unknown operator"));
            } else {
                LabelTerm::Exists(term.into())
            };
            parsed.push(parsed_term);
        }
        Ok(LabelSelector(parsed))
    }

    fn matches(&self, labels: &Labels) -> bool {
        let is_in = |set: &[String], x: &str| set.iter().any(|s| s == x);
        self.0.iter().all(|term| match term {
            LabelTerm::Exists(k) => labels.contains_key(k),
            LabelTerm::Equals(k, v) => labels.get(k) == Some(v.as_str()),
            LabelTerm::NotEquals(k, v) => labels.get(k).is_some_and(|x| x != v),
            LabelTerm::In(k, set) => labels.get(k).is_some_and(|x| is_in(set, x)),
            LabelTerm::NotIn(k, set) => labels.get(k).is_some_and(|x| !is_in(set, x)),
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn id(s: &str) -> PathId {
        PathId::parse(s, &PathId::root()).unwrap()
    }

    #[test]
    fn reserved_last_segments_split_the_path() {
        assert_eq!(target("prod/web").unwrap(), Target::App(id("/prod/web")));
        assert_eq!(
            target("prod/web/restart").unwrap(),
            Target::Restart(id("/prod/web"))
        );
        assert_eq!(target("web/tasks").unwrap(), Target::Tasks(id("/web")));
        assert_eq!(
            target("web/tasks/web.instance-1._app.1").unwrap(),
            Target::Task(id("/web"), "web.instance-1._app.1".into())
        );
        assert_eq!(
            target("web/versions").unwrap(),
            Target::Versions(id("/web"))
        );
        assert_eq!(
            target("web/versions/2020-01-01T00:00:00.000Z").unwrap(),
            Target::Version(id("/web"), "2020-01-01T00:00:00.000Z".into())
        );
        assert_eq!(target("prod/*").unwrap(), Target::AppsUnder(id("/prod")));
        assert_eq!(
            target("prod/*/tasks").unwrap(),
            Target::GroupTasks(id("/prod"))
        );
        assert_eq!(
            target("Bad_Id").unwrap_err().status(),
            StatusCode::UNPROCESSABLE_ENTITY
        );
    }

    #[test]
    fn label_selectors_follow_marathon() {
        let labels: Labels = [("env", "prod"), ("tier", "web")].into_iter().collect();
        let m = |s: &str| LabelSelector::parse(s).unwrap().matches(&labels);
        assert!(m("env"));
        assert!(m("env==prod"));
        assert!(!m("env!=prod"));
        assert!(m("env in (prod,staging),tier==web"));
        assert!(!m("env notin (prod)"));
        assert!(!m("missing"));
        assert!(LabelSelector::parse("env in (a").is_err());
        assert!(LabelSelector::parse("a b").is_err());
    }
}
