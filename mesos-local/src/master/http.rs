//! The master's HTTP endpoints: `/api/v1/scheduler` (also under
//! `/master/`), `/master/state` (and `/state`, `/state.json`),
//! `/master/redirect`, `/health`.

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

async fn state(State(master): State<Arc<Master>>) -> Response {
    let json = {
        let st = master.lock();
        crate::state_json::render(&st)
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

async fn scheduler(
    State(master): State<Arc<Master>>,
    method: Method,
    headers: HeaderMap,
    body: Bytes,
) -> Response {
    let (call, _encoding) = match wire::decode_call::<Call>(&method, &headers, &body) {
        Ok(v) => v,
        Err(r) => return r.into_response(),
    };
    let ty = match super::validation::validate_call(&call) {
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
        match master.with_state(|st| st.call(call, ty, stream_id)) {
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
