//! Errors as Marathon answers them: a status code and a JSON body with a
//! `message` (and `details` for validation), so that the Python client,
//! go-marathon and dcos-cli read them as they read Marathon's.

use axum::http::StatusCode;
use axum::response::{IntoResponse, Response};
use serde_json::{Value, json};

/// An API failure.
#[derive(Debug, thiserror::Error)]
pub enum ApiError {
    /// 400 with a message.
    #[error("{0}")]
    BadRequest(String),
    /// 404: the object does not exist (`App '/x' does not exist`).
    #[error("{0}")]
    NotFound(String),
    /// 409 because a running deployment holds the object; lists them.
    #[error("{message}")]
    Locked {
        /// Human-readable message.
        message: String,
        /// Ids of the deployments holding the object.
        deployments: Vec<String>,
    },
    /// 403: the caller may not do this.
    #[error("{0}")]
    Forbidden(String),
    /// 409 for a duplicate id.
    #[error("{0}")]
    Conflict(String),
    /// Any status with a ready-made Marathon body (validation errors).
    #[error("{status}: {body}")]
    Body {
        /// HTTP status.
        status: StatusCode,
        /// Marathon's JSON body.
        body: Value,
    },
    /// 503: the scheduler is not ready or is stopping.
    #[error("{0}")]
    Unavailable(String),
    /// 500: something broke inside; logged, and the process keeps serving.
    #[error("{0}")]
    Internal(String),
}

impl ApiError {
    /// The HTTP status.
    pub fn status(&self) -> StatusCode {
        match self {
            ApiError::BadRequest(_) => StatusCode::BAD_REQUEST,
            ApiError::NotFound(_) => StatusCode::NOT_FOUND,
            ApiError::Forbidden(_) => StatusCode::FORBIDDEN,
            ApiError::Locked { .. } | ApiError::Conflict(_) => StatusCode::CONFLICT,
            ApiError::Body { status, .. } => *status,
            ApiError::Unavailable(_) => StatusCode::SERVICE_UNAVAILABLE,
            ApiError::Internal(_) => StatusCode::INTERNAL_SERVER_ERROR,
        }
    }

    /// The JSON body.
    pub fn body(&self) -> Value {
        match self {
            ApiError::Locked {
                message,
                deployments,
            } => json!({
                "message": message,
                "deployments": deployments.iter().map(|id| json!({"id": id})).collect::<Vec<_>>(),
            }),
            ApiError::Body { body, .. } => body.clone(),
            other => json!({ "message": other.to_string() }),
        }
    }
}

impl IntoResponse for ApiError {
    fn into_response(self) -> Response {
        if let ApiError::Internal(message) = &self {
            tracing::error!(%message, "internal error answering a request");
        }
        (self.status(), axum::Json(self.body())).into_response()
    }
}

/// The longest error body rewritten by [`json_errors`]; error texts from
/// extractors and fallbacks are a line or two.
const ERROR_TEXT_LIMIT: usize = 64 * 1024;

/// Makes every error answer Marathon's shape, whatever layer wrote it: an
/// error status whose body is not JSON (an extractor's rejection such as
/// a path that is not UTF-8, a framework default) becomes
/// `{"message": <its text>}`. Answers that are already JSON pass through.
pub async fn json_errors(
    request: axum::extract::Request,
    next: axum::middleware::Next,
) -> Response {
    use axum::http::header;
    let response = next.run(request).await;
    let is_json = response
        .headers()
        .get(header::CONTENT_TYPE)
        .and_then(|v| v.to_str().ok())
        .is_some_and(|v| v.starts_with("application/json"));
    if response.status().as_u16() < 400 || is_json {
        return response;
    }
    let (mut parts, body) = response.into_parts();
    let text = axum::body::to_bytes(body, ERROR_TEXT_LIMIT)
        .await
        .map(|b| String::from_utf8_lossy(&b).trim().to_string())
        .unwrap_or_default();
    let message = if text.is_empty() {
        parts
            .status
            .canonical_reason()
            .unwrap_or("Request failed")
            .to_string()
    } else {
        text
    };
    parts.headers.remove(header::CONTENT_LENGTH);
    parts.headers.insert(
        header::CONTENT_TYPE,
        axum::http::HeaderValue::from_static("application/json"),
    );
    let body = axum::body::Body::from(json!({ "message": message }).to_string());
    Response::from_parts(parts, body)
}

impl From<crate::state::app::AppError> for ApiError {
    fn from(e: crate::state::app::AppError) -> ApiError {
        let status = StatusCode::from_u16(e.status()).unwrap_or(StatusCode::UNPROCESSABLE_ENTITY);
        ApiError::Body {
            status,
            body: e.body(),
        }
    }
}

impl From<crate::reconcile::SchedulerError> for ApiError {
    fn from(e: crate::reconcile::SchedulerError) -> ApiError {
        use crate::reconcile::SchedulerError;
        match e {
            SchedulerError::App(e) => e.into(),
            SchedulerError::UnknownApp(_) | SchedulerError::NotFound(_) => {
                ApiError::NotFound(e.to_string())
            }
            SchedulerError::AlreadyExists(_) => ApiError::Conflict(e.to_string()),
            SchedulerError::Forbidden(message) => ApiError::Forbidden(message),
            SchedulerError::Locked { deployments } => ApiError::Locked {
                message: SchedulerError::Locked {
                    deployments: Vec::new(),
                }
                .to_string(),
                deployments,
            },
            SchedulerError::Stopped => ApiError::Unavailable("scheduler is shutting down".into()),
            SchedulerError::Store(e) => ApiError::Internal(format!("store failed: {e}")),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn locked_carries_the_deployment_ids_go_marathon_looks_for() {
        let e = ApiError::Locked {
            message: "App is locked".into(),
            deployments: vec!["d1".into()],
        };
        assert_eq!(e.status(), StatusCode::CONFLICT);
        assert_eq!(
            e.body(),
            json!({"message": "App is locked", "deployments": [{"id": "d1"}]})
        );
        // A duplicate id is a 409 without `deployments`: go-marathon tells the two apart by it.
        assert!(
            ApiError::Conflict("exists".into())
                .body()
                .get("deployments")
                .is_none()
        );
    }
}
