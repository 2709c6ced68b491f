use crate::app::AppError;
use crate::domain::DomainError;
use crate::ports::PortError;
use axum::http::StatusCode;
use axum::response::{IntoResponse, Response};
use axum::Json;
use serde_json::json;

/// The JSON body of every error answer (documentation of `ApiError`'s shape).
#[derive(Debug, serde::Serialize, utoipa::ToSchema)]
#[schema(example = json!({"error": "invalid", "message": "end_at: must be after start_at", "field": "end_at"}))]
pub struct ErrorBody {
    /// `bad_request` (400), `unauthorized` (401), `forbidden` (403), `not_found` (404),
    /// `conflict` (409), `invalid` (422), `unavailable` (503), ...
    pub error: String,
    pub message: String,
    /// The input field at fault, when one is (`phones[2]`, `calling_hours.timezone`).
    pub field: Option<String>,
}

/// Every error answer has the same JSON shape: `{"error": kind, "message": text}` plus
/// `"field"` when one input field is at fault.
#[derive(Debug)]
pub struct ApiError {
    pub status: StatusCode,
    pub kind: &'static str,
    pub message: String,
    pub field: Option<String>,
}

impl ApiError {
    pub fn new(status: StatusCode, kind: &'static str, message: impl Into<String>) -> Self {
        ApiError {
            status,
            kind,
            message: message.into(),
            field: None,
        }
    }
    pub fn forbidden(message: impl Into<String>) -> Self {
        ApiError::new(StatusCode::FORBIDDEN, "forbidden", message)
    }
    pub fn bad_request(field: Option<String>, message: impl Into<String>) -> Self {
        ApiError {
            status: StatusCode::BAD_REQUEST,
            kind: "bad_request",
            message: message.into(),
            field,
        }
    }
}

impl From<AppError> for ApiError {
    fn from(e: AppError) -> Self {
        match e {
            AppError::Domain(DomainError::Invalid { field, message }) => ApiError {
                status: StatusCode::UNPROCESSABLE_ENTITY,
                kind: "invalid",
                message: format!("{field}: {message}"),
                field: Some(field),
            },
            AppError::Domain(e @ DomainError::NotFound { .. }) => {
                ApiError::new(StatusCode::NOT_FOUND, "not_found", e.to_string())
            }
            AppError::Domain(DomainError::Conflict(m)) => {
                ApiError::new(StatusCode::CONFLICT, "conflict", m)
            }
            AppError::Port(PortError::ConditionFailed) => ApiError::new(
                StatusCode::CONFLICT,
                "conflict",
                "changed concurrently; try again",
            ),
            AppError::Port(PortError::BadCursor(_)) => ApiError::bad_request(
                Some("cursor".into()),
                "cursor: is not a cursor this listing returned",
            ),
            AppError::Port(PortError::Backend(m) | PortError::Refused(m)) => {
                tracing::error!(error = %m, "backend failure");
                ApiError::new(
                    StatusCode::SERVICE_UNAVAILABLE,
                    "unavailable",
                    "storage is unavailable; try again",
                )
            }
        }
    }
}

impl From<DomainError> for ApiError {
    fn from(e: DomainError) -> Self {
        AppError::from(e).into()
    }
}

impl IntoResponse for ApiError {
    fn into_response(self) -> Response {
        let mut body = json!({ "error": self.kind, "message": self.message });
        if let Some(f) = self.field {
            body["field"] = f.into();
        }
        (self.status, Json(body)).into_response()
    }
}

/// JSON body extractor whose rejections use the error shape above and name the field.
pub struct JsonBody<T>(pub T);

impl<T, S> axum::extract::FromRequest<S> for JsonBody<T>
where
    T: serde::de::DeserializeOwned,
    S: Send + Sync,
{
    type Rejection = ApiError;

    async fn from_request(req: axum::extract::Request, state: &S) -> Result<Self, Self::Rejection> {
        let bytes = axum::body::Bytes::from_request(req, state)
            .await
            .map_err(|e| ApiError::bad_request(None, e.body_text()))?;
        let de = &mut serde_json::Deserializer::from_slice(&bytes);
        serde_path_to_error::deserialize(de)
            .map(JsonBody)
            .map_err(body_error)
    }
}

/// A body already read as JSON, as `T`: the same errors as [`JsonBody`], naming the field.
pub fn from_body<T: serde::de::DeserializeOwned>(v: serde_json::Value) -> Result<T, ApiError> {
    serde_path_to_error::deserialize(v).map_err(body_error)
}

fn body_error<E: std::fmt::Display>(e: serde_path_to_error::Error<E>) -> ApiError {
    let path = e.path().to_string();
    let field = (path != ".").then_some(path);
    ApiError::bad_request(field, format!("invalid JSON body: {}", e.inner()))
}
