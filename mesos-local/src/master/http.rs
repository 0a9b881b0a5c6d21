//! The master's HTTP endpoints: `/api/v1/scheduler` (also under
//! `/master/`), `/master/state` (and `/state`, `/state.json`),
//! `/master/teardown` (and `/teardown`), `/master/redirect`, `/health`.
//!
//! Each endpoint is in one of Mesos's authentication realms, checked first,
//! before anything about the request (as libprocess authenticates before a
//! handler runs): the scheduler API in `mesos-master-scheduler`, state in
//! `mesos-master-readonly`, teardown in `mesos-master-readwrite`; health
//! and redirect in none.

use std::sync::Arc;

use axum::Router;
use axum::body::Bytes;
use axum::extract::{DefaultBodyLimit, State};
use axum::http::{HeaderMap, HeaderValue, Method, StatusCode, header};
use axum::response::{IntoResponse, Response};
use axum::routing::{any, get};
use mesos_proto::scheduler::{Call, call};
use tracing::Instrument;

use super::{Master, Subscribed};
use crate::security::{self, Realm};
use crate::wire::{self, MAX_BODY, Rejection};

/// `Mesos-Stream-Id`.
pub const STREAM_ID_HEADER: &str = "Mesos-Stream-Id";

/// The master's routes.
pub fn router(master: Arc<Master>) -> Router {
    Router::new()
        .route("/api/v1/scheduler", any(scheduler))
        .route("/master/api/v1/scheduler", any(scheduler))
        .route("/master/state", get(state))
        .route("/master/state.json", get(state))
        .route("/state", get(state))
        .route("/state.json", get(state))
        .route("/master/slaves", get(slaves))
        .route("/slaves", get(slaves))
        .route("/master/teardown", any(teardown))
        .route("/teardown", any(teardown))
        .route("/master/redirect", get(redirect))
        .route("/redirect", get(redirect))
        .route("/health", get(health))
        .route("/master/health", get(health))
        .layer(DefaultBodyLimit::max(MAX_BODY))
        .with_state(master)
}

async fn health() -> StatusCode {
    StatusCode::OK
}

/// The request's principal in `realm` (`None` if the realm is open), or
/// the 401 a Mesos master answers, whatever was wrong with the credentials.
fn authenticate(
    master: &Master,
    realm: Realm,
    headers: &HeaderMap,
) -> Result<Option<String>, Rejection> {
    let authorization = headers
        .get(header::AUTHORIZATION)
        .map(HeaderValue::as_bytes);
    security::authenticate(master.config.security.as_ref(), realm, authorization).map_err(|()| {
        tracing::debug!(realm = realm.name(), "request not authenticated");
        Rejection::Unauthorized(realm.name())
    })
}

/// `/master/slaves`: the agents with their `*_full` resource arrays.
async fn slaves(State(master): State<Arc<Master>>, headers: HeaderMap) -> Response {
    if let Err(r) = authenticate(&master, Realm::ReadOnly, &headers) {
        return r.into_response();
    }
    let json = {
        let st = master.lock();
        crate::state_json::render_slaves(&st)
    };
    axum::Json(json).into_response()
}

/// `/master/state`, as the request's principal may see it (`--acls`
/// `view_*`); without `--authenticate_http_readonly` there is none, and
/// the reader is Mesos's `ANY` subject.
async fn state(State(master): State<Arc<Master>>, headers: HeaderMap) -> Response {
    let principal = match authenticate(&master, Realm::ReadOnly, &headers) {
        Ok(p) => p,
        Err(r) => return r.into_response(),
    };
    let json = {
        let st = master.lock();
        crate::state_json::render_for(&st, principal.as_deref())
    };
    axum::Json(json).into_response()
}

async fn redirect(State(master): State<Arc<Master>>) -> Response {
    let addr = master.lock().addr;
    let mut resp = StatusCode::TEMPORARY_REDIRECT.into_response();
    if let Ok(v) = HeaderValue::from_str(&format!("//{addr}")) {
        resp.headers_mut().insert(header::LOCATION, v);
    }
    resp
}

/// Mesos's `POST /master/teardown` with a form body `frameworkId=<id>`:
/// 200, or 400 for a missing or unknown id.
async fn teardown(
    State(master): State<Arc<Master>>,
    method: Method,
    headers: HeaderMap,
    body: Bytes,
) -> Response {
    let principal = match authenticate(&master, Realm::ReadWrite, &headers) {
        Ok(p) => p,
        Err(r) => return r.into_response(),
    };
    if method != Method::POST {
        return Rejection::MethodNotAllowed.into_response();
    }
    let form: Vec<(String, String)> = match serde_urlencoded::from_bytes(&body) {
        Ok(f) => f,
        Err(e) => {
            return Rejection::BadRequest(format!("Unable to decode query string: {e}"))
                .into_response();
        }
    };
    let Some((_, id)) = form.into_iter().find(|(k, _)| k == "frameworkId") else {
        return Rejection::BadRequest(
            "Missing 'frameworkId' query parameter in the request body".into(),
        )
        .into_response();
    };
    match master.with_state(|st| st.teardown(&id, principal.as_deref())) {
        Ok(()) => StatusCode::OK.into_response(),
        Err(r) => r.into_response(),
    }
}

async fn scheduler(
    State(master): State<Arc<Master>>,
    method: Method,
    headers: HeaderMap,
    body: Bytes,
) -> Response {
    let principal = match authenticate(&master, Realm::Scheduler, &headers) {
        Ok(p) => p,
        Err(r) => return r.into_response(),
    };
    let (mut call, _encoding) = match wire::decode_call::<Call>(&method, &headers, &body) {
        Ok(v) => v,
        Err(r) => return r.into_response(),
    };
    let validated = super::validation::validate_call(&call).and_then(|ty| {
        if let (call::Type::Subscribe, Some(sub)) = (ty, call.subscribe.as_mut()) {
            super::validation::authenticated_principal(
                &mut sub.framework_info,
                principal.as_deref(),
            )?;
        }
        Ok(ty)
    });
    let ty = match validated {
        Ok(ty) => ty,
        Err(e) => {
            return Rejection::BadRequest(format!("Failed to validate scheduler::Call: {e}"))
                .into_response();
        }
    };
    let framework_id = call
        .framework_id
        .as_ref()
        .map(|f| f.value.clone())
        .unwrap_or_default();
    let span = tracing::info_span!("scheduler_call", call = ?ty, framework_id = %framework_id);
    async move {
        let stream_id = wire::header_str(&headers, STREAM_ID_HEADER);
        if ty == call::Type::Subscribe {
            let encoding = match wire::negotiate(&headers) {
                Ok(e) => e,
                Err(r) => return r.into_response(),
            };
            if stream_id.is_some() {
                return Rejection::BadRequest(
                    "Subscribe calls should not include the 'Mesos-Stream-Id' header".into(),
                )
                .into_response();
            }
            return match master.with_state(|st| st.subscribe(&call, encoding)) {
                Err(r) => r.into_response(),
                Ok(Subscribed::Stream { rx, stream_id }) => {
                    wire::stream_response(encoding, rx, &[(STREAM_ID_HEADER, stream_id)])
                }
                Ok(Subscribed::Refused { record }) => {
                    // As Mesos: the stream is opened (with its id) and its
                    // only event is the ERROR, so a client reads the reason
                    // the way it reads any event.
                    let mut resp = Response::new(axum::body::Body::from(record));
                    resp.headers_mut().insert(
                        header::CONTENT_TYPE,
                        HeaderValue::from_static(encoding.media_type()),
                    );
                    if let Ok(id) = HeaderValue::from_str(&uuid::Uuid::new_v4().to_string()) {
                        resp.headers_mut().insert(STREAM_ID_HEADER, id);
                    }
                    resp
                }
            };
        }
        match master.with_state(|st| st.call(call, ty, stream_id, principal.as_deref())) {
            Ok(code) => code.into_response(),
            Err(r) => {
                tracing::debug!(status = %r.status(), error = %r, "call rejected");
                r.into_response()
            }
        }
    }
    .instrument(span)
    .await
}
