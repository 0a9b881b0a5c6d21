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
