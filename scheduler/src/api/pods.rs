//! `/v2/pods`: Marathon's pods (marathon-api.md §1.7): create, list, show,
//! replace and delete pods, their live status (`::status`), their versions
//! (`::versions`) and killing their instances (`::instances`).
//!
//! A pod is kept as an app carrying its definition
//! ([`AppDefinition::for_pod`]), so it deploys, scales, rolls and
//! reconciles as apps do; here it is written and shown in Marathon's pod
//! shapes, and the `/v2/apps` routes do not see it. The `::` suffixes are
//! literal path syntax, split off the wildcard here.

use std::sync::Arc;

use axum::Router;
use axum::body::Bytes;
use axum::extract::rejection::BytesRejection;
use axum::extract::{Path, RawQuery};
use axum::http::{HeaderValue, Method, StatusCode, Uri, header};
use axum::response::{IntoResponse, Response};
use axum::routing::get;
use serde_json::{Value, json};

use super::events::ClientAddr;
use super::params::{self, Params};
use super::{Api, ApiError};
use crate::auth::Action;
use crate::reconcile::events::{Event, PodChange};
use crate::reconcile::{AppEdit, KillOptions, SchedulerError, View};
use crate::state::app::pod::{DiskType, PodDefinition, PodVolume};
use crate::state::app::{AppDefinition, AppError, PathId, Timestamp};
use crate::state::instance::{Condition, Instance};

/// The `/v2/pods` routes.
pub fn routes() -> Router<Arc<super::ApiState>> {
    Router::new()
        .route("/v2/pods", get(list).post(create))
        .route("/v2/pods/", get(list).post(create))
        .route(
            "/v2/pods/{*path}",
            get(on_path).put(on_path).delete(on_path),
        )
}

/// What a path under `/v2/pods/` names.
#[derive(Debug, PartialEq, Eq)]
enum Target {
    Pod(PathId),
    /// `::status` of every pod.
    AllStatus,
    Status(PathId),
    Versions(PathId),
    Version(PathId, String),
    /// `::instances`, ids in the body.
    Instances(PathId),
    Instance(PathId, String),
}

fn pod_id(text: &str) -> Result<PathId, ApiError> {
    PathId::parse_pod(text, &PathId::root())
        .map_err(|e| ApiError::from(AppError::invalid("/id", e.to_string())))
}

fn target(path: &str) -> Result<Target, ApiError> {
    let path = path.trim_end_matches('/');
    let Some((id, suffix)) = path.split_once("::") else {
        return Ok(Target::Pod(pod_id(path)?));
    };
    if id.trim_matches('/').is_empty() {
        return match suffix {
            "status" => Ok(Target::AllStatus),
            _ => Err(ApiError::NotFound(format!("Unknown path ::{suffix}"))),
        };
    }
    let id = pod_id(id)?;
    let (what, rest) = match suffix.split_once('/') {
        Some((what, rest)) => (what, Some(rest)),
        None => (suffix, None),
    };
    Ok(match (what, rest) {
        ("status", None) => Target::Status(id),
        ("versions", None) => Target::Versions(id),
        ("versions", Some(v)) => Target::Version(id, v.to_string()),
        ("instances", None) => Target::Instances(id),
        ("instances", Some(i)) => Target::Instance(id, i.to_string()),
        _ => return Err(ApiError::NotFound(format!("Unknown path ::{suffix}"))),
    })
}

fn not_found(id: &PathId) -> ApiError {
    ApiError::NotFound(format!("Pod '{id}' does not exist"))
}

/// The pod `id` in `view`, as it stands. (`view` is the caller's: pods
/// it may not view are not in it, as apps are not.)
fn pod_in(view: &View, id: &PathId) -> Result<PodDefinition, ApiError> {
    view.apps
        .get(id)
        .and_then(|a| a.pod_definition())
        .ok_or_else(|| not_found(id))
}

/// Names a persistent volume may not have: it is mounted in the
/// executor's sandbox under its name, next to what the executor keeps
/// there (its output, the containers' sandboxes and links, the ephemeral
/// volumes).
const SANDBOX_NAMES: [&str; 5] = ["containers", "tasks", "volumes", "stdout", "stderr"];

/// What this server cannot run yet, refused before anything is written
/// (rather than run otherwise than asked).
fn refuse_unsupported(pod: &PodDefinition) -> Result<(), ApiError> {
    for (i, volume) in pod.volumes.iter().enumerate() {
        let why = match volume {
            PodVolume::Secret { .. } => "secret volumes in pods are not supported yet".to_string(),
            PodVolume::Persistent { name, persistent } => {
                if SANDBOX_NAMES.contains(&name.as_str()) {
                    format!(
                        "a persistent volume is mounted in the executor's sandbox under its name, which may not be one of {SANDBOX_NAMES:?}"
                    )
                } else if persistent.disk_type != DiskType::Root
                    || persistent.profile_name.is_some()
                    || persistent.max_size.is_some()
                    || !persistent.constraints.is_empty()
                {
                    "only root-disk persistent volumes are supported yet (no type path or mount, profileName, maxSize or constraints)".to_string()
                } else {
                    continue;
                }
            }
            _ => continue,
        };
        return Err(AppError::invalid(format!("/volumes({i})"), why).into());
    }
    Ok(())
}

fn pod_json(pod: &PodDefinition) -> Response {
    axum::Json(serde_json::to_value(pod).unwrap_or(Value::Null)).into_response()
}

fn pod_event(state: &Api, change: PodChange, pod: &PathId, uri: &Uri, client: &str) {
    state.scheduler.publish_event(Event::PodWritten {
        change,
        pod: pod.clone(),
        uri: uri.path().to_string(),
        client_ip: client.to_string(),
    });
}

async fn list(state: Api) -> Response {
    let view = state.view();
    let pods: Vec<PodDefinition> = view
        .apps
        .values()
        .filter_map(|a| a.pod_definition())
        .collect();
    axum::Json(pods).into_response()
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
    let pod = PodDefinition::from_json(&bytes, &PathId::root(), &state.app_defaults())?;
    refuse_unsupported(&pod)?;
    write(&state, pod, force, &uri, &client, false).await
}

/// Writes `pod`: a creation, or (`replace`, a PUT) a replacement of the
/// pod with its id, whose versions it carries on (a change of only
/// `instances` is a scale, not a restart).
async fn write(
    state: &Api,
    pod: PodDefinition,
    force: bool,
    uri: &Uri,
    client: &str,
    replace: bool,
) -> Result<Response, ApiError> {
    let id = pod.id.clone();
    let action = if replace && state.scheduler.view().apps.contains_key(&id) {
        Action::Update
    } else {
        Action::Create
    };
    state.authorize(action, &id)?;
    state.authorize_superseding(std::slice::from_ref(&id), force)?;
    super::apps::check_tree(&state.scheduler.view(), &id)?;
    let edit: AppEdit = Box::new(move |ctx| match ctx.current {
        Some(existing) if !replace => Err(SchedulerError::AlreadyExists(existing.id.clone())),
        Some(existing) => match existing.pod_definition() {
            None => Err(SchedulerError::App(AppError::invalid(
                "/id",
                format!("{} is an app, not a pod", existing.id),
            ))),
            Some(old) => {
                // Unchanged, or only scaled: no restart.
                let scale_only = !old.is_upgrade(&pod);
                let mut next = pod;
                next.version = old.version;
                next.version_info = old.version_info;
                Ok(Some(
                    AppDefinition::for_pod(next).with_version(ctx.now, scale_only),
                ))
            }
        },
        None => Ok(Some(
            AppDefinition::for_pod(pod).with_version(ctx.now, false),
        )),
    });
    let edit = state.authorized_edit(id.clone(), edit);
    let outcome = state.scheduler.edit_app(id.clone(), force, edit).await?;
    let stored = outcome
        .app
        .as_ref()
        .and_then(|a| a.pod_definition())
        .ok_or_else(|| not_found(&id))?;
    let change = if outcome.created {
        PodChange::Created
    } else {
        PodChange::Updated
    };
    pod_event(state, change, &id, uri, client);
    let status = if outcome.created {
        StatusCode::CREATED
    } else {
        StatusCode::OK
    };
    let mut response = (status, axum::Json(stored)).into_response();
    params::with_deployment_header(&mut response, &outcome.deployment_id);
    if outcome.created
        && let Ok(location) = HeaderValue::from_str(&format!("/v2/pods{id}"))
    {
        response.headers_mut().insert(header::LOCATION, location);
    }
    Ok(response)
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
    let now = state.scheduler.now();
    match (method, target(&path)?) {
        (Method::GET, Target::Pod(id)) => Ok(pod_json(&pod_in(&state.view(), &id)?)),
        (Method::PUT, Target::Pod(id)) => {
            let force = params.flag("force", false)?;
            let bytes = params::body(body)?;
            let mut value = params::json_body(&bytes)?;
            // The path names the pod; a body without an id takes it.
            if let Some(o) = value.as_object_mut() {
                o.entry("id").or_insert_with(|| json!(id.to_string()));
            }
            let pod = PodDefinition::from_value(&value, &PathId::root(), &state.app_defaults())?;
            if pod.id != id {
                return Err(AppError::invalid(
                    "/id",
                    format!("The id {} in the body does not match the path {id}", pod.id),
                )
                .into());
            }
            refuse_unsupported(&pod)?;
            write(&state, pod, force, &uri, &client, true).await
        }
        (Method::DELETE, Target::Pod(id)) => {
            let force = params.flag("force", false)?;
            state.authorize(Action::Delete, &id)?;
            state.authorize_superseding(std::slice::from_ref(&id), force)?;
            pod_in(&state.view(), &id)?;
            let outcome = state.scheduler.delete_app(id.clone(), force).await?;
            pod_event(&state, PodChange::Deleted, &id, &uri, &client);
            let mut response = StatusCode::ACCEPTED.into_response();
            params::with_deployment_header(&mut response, &outcome.deployment_id);
            Ok(response)
        }
        (Method::GET, Target::AllStatus) => {
            let view = state.view();
            let all: Vec<Value> = view
                .apps
                .values()
                .filter(|a| a.is_pod())
                .map(|a| pod_status(&view, a, now))
                .collect();
            Ok(axum::Json(all).into_response())
        }
        (Method::GET, Target::Status(id)) => {
            let view = state.view();
            pod_in(&view, &id)?;
            let app = view.apps.get(&id).ok_or_else(|| not_found(&id))?;
            Ok(axum::Json(pod_status(&view, app, now)).into_response())
        }
        (Method::GET, Target::Versions(id)) => {
            let view = state.view();
            pod_in(&view, &id)?;
            let versions: Vec<Timestamp> = view
                .versions
                .get(&id)
                .map(|list| list.iter().rev().filter_map(|a| a.version).collect())
                .unwrap_or_default();
            Ok(axum::Json(versions).into_response())
        }
        (Method::GET, Target::Version(id, version)) => {
            let view = state.view();
            pod_in(&view, &id)?;
            let missing =
                || ApiError::NotFound(format!("Pod '{id}' does not exist in version {version}"));
            let v: Timestamp = version.parse().map_err(|_| missing())?;
            let pod = view
                .app_version(&id, v)
                .and_then(|a| a.pod_definition())
                .ok_or_else(missing)?;
            Ok(pod_json(&pod))
        }
        (Method::DELETE, Target::Instance(id, instance)) => {
            let killed = kill_instances(&state, &id, vec![instance], &params).await?;
            let one = killed.into_iter().next().unwrap_or(Value::Null);
            Ok(axum::Json(one).into_response())
        }
        (Method::DELETE, Target::Instances(id)) => {
            let bytes = params::body(body)?;
            let ids: Vec<String> =
                serde_json::from_value(params::json_body(&bytes)?).map_err(|_| {
                    ApiError::from(AppError::invalid(
                        "/",
                        "the body must be a JSON array of instance ids",
                    ))
                })?;
            let killed = kill_instances(&state, &id, ids, &params).await?;
            Ok(axum::Json(killed).into_response())
        }
        (method, _) => Err(ApiError::Body {
            status: StatusCode::METHOD_NOT_ALLOWED,
            body: json!({"message": format!("{method} is not allowed here")}),
        }),
    }
}

/// Kills the named instances of pod `id` (their task groups), answering
/// with their statuses as they were; `wipe=true` forgets them (a new one
/// replaces each).
async fn kill_instances(
    state: &Api,
    id: &PathId,
    instance_ids: Vec<String>,
    params: &Params,
) -> Result<Vec<Value>, ApiError> {
    let options = KillOptions {
        wipe: params.flag("wipe", false)?,
        ..KillOptions::default()
    };
    state.authorize(Action::Kill, id)?;
    let view = state.view();
    let app = view
        .apps
        .get(id)
        .filter(|a| a.is_pod())
        .ok_or_else(|| not_found(id))?;
    let mut task_ids = Vec::new();
    let mut statuses = Vec::new();
    for wanted in &instance_ids {
        let instance = view
            .instances_of(id)
            .find(|i| &i.instance_id() == wanted)
            .ok_or_else(|| ApiError::NotFound(format!("Instance '{wanted}' does not exist")))?;
        statuses.push(instance_status(app, instance, state.scheduler.now()));
        if let Some(task) = &instance.task {
            task_ids.push(task.task_id.clone());
        }
    }
    state.scheduler.kill_tasks(task_ids, options).await?;
    Ok(statuses)
}

/// `GET /v2/pods/{id}::status`: the pod, its instances and an overall
/// status (`podStatus.raml`): DEPLOYING while a deployment touches it,
/// STABLE when every wanted instance is up (running, and healthy where
/// checked), else DEGRADED.
pub fn pod_status(view: &View, app: &AppDefinition, now: Timestamp) -> Value {
    let instances: Vec<&Arc<Instance>> = view.instances_of(&app.id).collect();
    let stable = instances
        .iter()
        .filter(|i| crate::reconcile::decide::is_ready(app, i))
        .count();
    let status = if view.deployments_of(&app.id).next().is_some() {
        "DEPLOYING"
    } else if stable >= app.instances as usize {
        "STABLE"
    } else {
        "DEGRADED"
    };
    let since = app.version.unwrap_or(now);
    json!({
        "id": app.id,
        "spec": app.pod_definition(),
        "status": status,
        "statusSince": since,
        "instances": instances.iter().map(|i| instance_status(app, i, now)).collect::<Vec<_>>(),
        "terminationHistory": [],
        "lastUpdated": now,
        "lastChanged": since,
    })
}

/// One instance's status (`podStatus.raml` `PodInstanceStatus`), with a
/// status per container and its endpoints' host ports.
fn instance_status(app: &AppDefinition, instance: &Instance, now: Timestamp) -> Value {
    let task = instance.task.as_ref();
    let status = match task.map(|t| t.condition) {
        None | Some(Condition::Provisioned) => "PENDING",
        Some(c) if c.is_launching() => "STAGING",
        Some(c) if c.is_terminal() => "TERMINAL",
        Some(_) if crate::reconcile::decide::is_ready(app, instance) => "STABLE",
        Some(_) => "DEGRADED",
    };
    let pod = app.pod.as_deref();
    let endpoints = pod.map(|p| p.host_port_endpoints()).unwrap_or_default();
    let containers: Vec<Value> = task
        .and_then(|t| t.containers.as_deref())
        .map(|cs| {
            cs.iter()
                .map(|c| {
                    let ports: Vec<Value> = endpoints
                        .iter()
                        .zip(task.map(|t| t.host_ports.as_slice()).unwrap_or_default())
                        .filter(|(e, _)| e.container == c.name)
                        .map(
                            |(e, port)| json!({"name": e.endpoint.name, "allocatedHostPort": port}),
                        )
                        .collect();
                    let resources = pod
                        .and_then(|p| p.container(&c.name))
                        .map(|spec| json!(spec.resources));
                    let mut conditions = Vec::new();
                    if let Some(healthy) = c.healthy {
                        conditions.push(json!({
                            "name": "healthy",
                            "value": healthy.to_string(),
                            "lastChanged": now,
                            "lastUpdated": now,
                        }));
                    }
                    json!({
                        "name": c.name,
                        "status": c.condition.mesos_state(),
                        "statusSince": task.map(|t| t.started_at.unwrap_or(t.launched_at)),
                        "containerId": c.task_id,
                        "endpoints": ports,
                        "resources": resources,
                        "conditions": conditions,
                        "message": c.message,
                        "lastUpdated": now,
                        "lastChanged": now,
                    })
                })
                .collect()
        })
        .unwrap_or_default();
    json!({
        "id": instance.instance_id(),
        "status": status,
        "statusSince": task.map_or(instance.scheduled_at, |t| t.started_at.unwrap_or(t.launched_at)),
        "agentHostname": task.map(|t| t.hostname.as_str()),
        "agentId": task.map(|t| t.agent_id.as_str()),
        "resources": {"cpus": app.cpus, "mem": app.mem, "disk": app.disk, "gpus": app.gpus},
        "networks": [],
        "containers": containers,
        "specReference": format!("/v2/pods{}::versions/{}", app.id, instance.app_version),
        "localVolumes": super::shapes::local_volumes(app, instance),
        "lastUpdated": now,
        "lastChanged": instance.scheduled_at,
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    fn id(s: &str) -> PathId {
        PathId::parse(s, &PathId::root()).unwrap()
    }

    #[test]
    fn persistent_volumes_are_refused_where_they_would_not_run_as_asked() {
        let pod = |volume: Value| {
            PodDefinition::from_value(
                &json!({"id": "/db", "role": "db", "volumes": [volume],
                    "containers": [{"name": "c", "exec": {"command": {"shell": "x"}},
                        "volumeMounts": [{"name": volume["name"], "mountPath": "d"}]}]}),
                &PathId::root(),
                &crate::state::app::AppDefaults::default(),
            )
            .expect("a valid pod")
        };
        assert!(
            refuse_unsupported(&pod(json!({"name": "data", "persistent": {"size": 8}}))).is_ok()
        );
        for (volume, why) in [
            (
                json!({"name": "tasks", "persistent": {"size": 8}}),
                "executor's sandbox",
            ),
            (
                json!({"name": "stdout", "persistent": {"size": 8}}),
                "executor's sandbox",
            ),
            (
                json!({"name": "d", "persistent": {"size": 8, "type": "mount"}}),
                "root-disk",
            ),
            (
                json!({"name": "d", "persistent": {"size": 8, "profileName": "ssd"}}),
                "root-disk",
            ),
        ] {
            let Err(ApiError::Body { status, body }) = refuse_unsupported(&pod(volume.clone()))
            else {
                panic!("{volume} accepted");
            };
            assert_eq!(status, StatusCode::UNPROCESSABLE_ENTITY);
            let body = body.to_string();
            assert!(
                body.contains("/volumes(0)") && body.contains(why),
                "{volume}: {body}"
            );
        }
    }

    #[test]
    fn the_double_colon_suffixes_split_the_path() {
        assert_eq!(target("shop/web").unwrap(), Target::Pod(id("/shop/web")));
        // A pod may end in a word the app routes take, as the pod reader
        // lets it: what can be created can be read, replaced and deleted.
        assert_eq!(
            target("a/versions::status").unwrap(),
            Target::Status(id("/a/versions"))
        );
        assert_eq!(target("a/tasks").unwrap(), Target::Pod(id("/a/tasks")));
        assert_eq!(target("::status").unwrap(), Target::AllStatus);
        assert_eq!(
            target("shop/web::status").unwrap(),
            Target::Status(id("/shop/web"))
        );
        assert_eq!(
            target("web::versions").unwrap(),
            Target::Versions(id("/web"))
        );
        assert_eq!(
            target("web::versions/2020-01-01T00:00:00.000Z").unwrap(),
            Target::Version(id("/web"), "2020-01-01T00:00:00.000Z".into())
        );
        assert_eq!(
            target("web::instances").unwrap(),
            Target::Instances(id("/web"))
        );
        assert_eq!(
            target("web::instances/web.instance-1").unwrap(),
            Target::Instance(id("/web"), "web.instance-1".into())
        );
        assert_eq!(
            target("web::nope").unwrap_err().status(),
            StatusCode::NOT_FOUND
        );
        assert_eq!(
            target("Bad_Id").unwrap_err().status(),
            StatusCode::UNPROCESSABLE_ENTITY
        );
    }
}
