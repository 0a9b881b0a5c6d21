//! Request plumbing shared by handlers: query parameters (repeatable, as
//! Marathon's `embed`), booleans that must be booleans, request bodies with
//! the size limit answered as JSON, and the deployment result.

use axum::body::Bytes;
use axum::extract::rejection::BytesRejection;
use axum::http::{HeaderName, HeaderValue, StatusCode};
use axum::response::{IntoResponse, Response};
use serde_json::json;

use super::ApiError;
use crate::reconcile::{KillOptions, KillOutcome, WriteOutcome};
use crate::state::app::Timestamp;

/// The query string, decoded, in order.
#[derive(Debug, Default)]
pub struct Params(Vec<(String, String)>);

impl Params {
    /// Decodes a raw query string.
    pub fn parse(raw: Option<&str>) -> Result<Params, ApiError> {
        match raw {
            None | Some("") => Ok(Params::default()),
            Some(q) => serde_urlencoded::from_str(q)
                .map(Params)
                .map_err(|e| ApiError::BadRequest(format!("Invalid query string: {e}"))),
        }
    }

    /// Every value of `key` (`embed=a&embed=b`, also `key[]`).
    pub fn all<'a>(&'a self, key: &'a str) -> impl Iterator<Item = &'a str> + 'a {
        self.0
            .iter()
            .filter(move |(k, _)| k == key || k.strip_suffix("[]") == Some(key))
            .map(|(_, v)| v.as_str())
    }

    /// The last value of `key`.
    pub fn get<'a>(&'a self, key: &'a str) -> Option<&'a str> {
        self.all(key).last()
    }

    /// `?app=/id`: the one app a listing keeps (`None`: every app).
    pub fn app_filter(&self) -> Result<Option<crate::state::app::PathId>, ApiError> {
        use crate::state::app::PathId;
        self.get("app")
            .map(|id| {
                PathId::parse_app(id, &PathId::root())
                    .map_err(|e| ApiError::BadRequest(format!("app: {e}")))
            })
            .transpose()
    }

    /// A boolean parameter; anything but `true`/`false` is a 400 naming it.
    pub fn flag(&self, key: &str, default: bool) -> Result<bool, ApiError> {
        match self.get(key) {
            None => Ok(default),
            Some(v) if v.eq_ignore_ascii_case("true") || v.is_empty() => Ok(true),
            Some(v) if v.eq_ignore_ascii_case("false") => Ok(false),
            Some(v) => Err(ApiError::BadRequest(format!(
                "Query parameter '{key}' must be true or false, not '{v}'"
            ))),
        }
    }
}

/// `scale`, `wipe` and `force` of a kill; scale and wipe exclude each other.
pub fn kill_options(params: &Params) -> Result<KillOptions, ApiError> {
    let options = KillOptions {
        scale: params.flag("scale", false)?,
        wipe: params.flag("wipe", false)?,
        force: params.flag("force", false)?,
    };
    if options.scale && options.wipe {
        return Err(ApiError::BadRequest(
            "You cannot use scale and wipe at the same time.".into(),
        ));
    }
    Ok(options)
}

/// The answer to a kill: the deployment of a `scale`, else the tasks
/// killed (`{"task"}` for one named task, `{"tasks"}` otherwise).
pub fn killed(outcome: KillOutcome, single: bool) -> Response {
    if let Some((deployment, version)) = outcome.deployment {
        return deployment_result(StatusCode::OK, &deployment, version);
    }
    let tasks: Vec<serde_json::Value> = outcome
        .killed
        .iter()
        .filter_map(|i| super::shapes::task_json(i))
        .collect();
    if single {
        axum::Json(json!({ "task": tasks.into_iter().next() })).into_response()
    } else {
        axum::Json(json!({ "tasks": tasks })).into_response()
    }
}

/// The body, or a JSON error: 413 past the limit, 400 otherwise.
pub fn body(body: Result<Bytes, BytesRejection>) -> Result<Bytes, ApiError> {
    body.map_err(|rejection| {
        let status = rejection.status();
        if status == StatusCode::PAYLOAD_TOO_LARGE {
            ApiError::Body {
                status,
                body: json!({
                    "message": format!(
                        "Request body too large: the limit is {} bytes",
                        super::MAX_BODY_BYTES
                    )
                }),
            }
        } else {
            ApiError::BadRequest(format!("Cannot read the request body: {rejection}"))
        }
    })
}

/// The JSON value of a body; 400 `Invalid JSON` as Marathon words it.
pub fn json_body(bytes: &[u8]) -> Result<serde_json::Value, ApiError> {
    serde_json::from_slice(bytes).map_err(|e| ApiError::Body {
        status: StatusCode::BAD_REQUEST,
        body: json!({"message": "Invalid JSON", "details": e.to_string()}),
    })
}

/// `{"deploymentId", "version"}` with the `Marathon-Deployment-Id` header.
pub fn deployment_result(status: StatusCode, deployment_id: &str, version: Timestamp) -> Response {
    let mut response = (
        status,
        axum::Json(json!({"deploymentId": deployment_id, "version": version})),
    )
        .into_response();
    with_deployment_header(&mut response, deployment_id);
    response
}

/// Adds `Marathon-Deployment-Id`.
pub fn with_deployment_header(response: &mut Response, deployment_id: &str) {
    if let Ok(value) = HeaderValue::from_str(deployment_id) {
        response
            .headers_mut()
            .insert(HeaderName::from_static("marathon-deployment-id"), value);
    }
}

/// The deployment result of a write.
pub fn written(status: StatusCode, outcome: &WriteOutcome) -> Response {
    deployment_result(status, &outcome.deployment_id, outcome.version)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn repeated_and_bracketed_parameters_are_all_read() {
        let p = Params::parse(Some("embed=apps.tasks&embed=apps.counts&status[]=running")).unwrap();
        assert_eq!(
            p.all("embed").collect::<Vec<_>>(),
            ["apps.tasks", "apps.counts"]
        );
        assert_eq!(p.get("status"), Some("running"));
    }

    #[test]
    fn a_flag_that_is_not_a_boolean_is_a_400_naming_it() {
        let p = Params::parse(Some("force=yes")).unwrap();
        let e = p.flag("force", false).unwrap_err();
        assert_eq!(e.status(), StatusCode::BAD_REQUEST);
        assert!(e.to_string().contains("'force'"), "{e}");
        assert!(
            Params::parse(Some("force=TRUE"))
                .unwrap()
                .flag("force", false)
                .unwrap()
        );
        assert!(Params::default().flag("force", true).unwrap());
    }
}
