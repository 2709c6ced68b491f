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

/// JSON body extractor whose rejections use the error shape above and name the field. The
/// body must be one JSON object: serde would fill a struct from an array (`[1, 2]`), which
/// no client means. See [`read_json`] for numbers.
pub struct JsonBody<T>(pub T);

impl<T, S> axum::extract::FromRequest<S> for JsonBody<T>
where
    T: serde::de::DeserializeOwned,
    S: Send + Sync,
{
    type Rejection = ApiError;

    async fn from_request(req: axum::extract::Request, state: &S) -> Result<Self, Self::Rejection> {
        let bytes = body_bytes(req, state).await?;
        json_object(&bytes).map(JsonBody)
    }
}

/// A body as bytes, with the API's 413 beyond [`MAX_BODY_BYTES`] (axum's own `Bytes`
/// answers that in plain text).
pub struct RawBody(pub axum::body::Bytes);

impl<S: Send + Sync> axum::extract::FromRequest<S> for RawBody {
    type Rejection = ApiError;

    async fn from_request(req: axum::extract::Request, state: &S) -> Result<Self, Self::Rejection> {
        body_bytes(req, state).await.map(RawBody)
    }
}

/// A JSON body of any shape (an object or an array), read as [`read_json`] reads it.
pub struct JsonValue(pub serde_json::Value);

impl<S: Send + Sync> axum::extract::FromRequest<S> for JsonValue {
    type Rejection = ApiError;

    async fn from_request(req: axum::extract::Request, state: &S) -> Result<Self, Self::Rejection> {
        let bytes = body_bytes(req, state).await?;
        read_json(&bytes).map(JsonValue)
    }
}

async fn body_bytes<S: Send + Sync>(
    req: axum::extract::Request,
    state: &S,
) -> Result<axum::body::Bytes, ApiError> {
    use axum::extract::FromRequest;
    axum::body::Bytes::from_request(req, state)
        .await
        .map_err(|e| match e.status() {
            StatusCode::PAYLOAD_TOO_LARGE => body_too_large(),
            _ => ApiError::bad_request(None, e.body_text()),
        })
}

/// Largest request body the operator API reads (what axum allows by default, stated): a
/// campaign, a contact or a list of members fits many times over; CSV files go through
/// `POST /contacts/import` (1 MB) or `POST /imports`.
pub const MAX_BODY_BYTES: usize = 2 * 1024 * 1024;

/// A body over [`MAX_BODY_BYTES`]: 413, naming the limit.
pub fn body_too_large() -> ApiError {
    ApiError::new(
        StatusCode::PAYLOAD_TOO_LARGE,
        "payload_too_large",
        format!(
            "the request body is over the limit of {MAX_BODY_BYTES} bytes (2 MB); import large \
             contact files with POST /imports"
        ),
    )
}

/// A body as JSON. A number written with a fraction of zero (`5.0`) is the whole number
/// (`5`): JSON Schema calls it an integer, and so does this API.
pub fn read_json(bytes: &[u8]) -> Result<serde_json::Value, ApiError> {
    let mut v: serde_json::Value = serde_json::from_slice(bytes)
        .map_err(|e| ApiError::bad_request(None, format!("invalid JSON body: {e}")))?;
    whole_numbers(&mut v);
    Ok(v)
}

/// A body that must be one JSON object, as `T`, with [`JsonBody`]'s errors.
pub fn json_object<T: serde::de::DeserializeOwned>(bytes: &[u8]) -> Result<T, ApiError> {
    let v = read_json(bytes)?;
    if !v.is_object() {
        return Err(ApiError::bad_request(
            None,
            format!(
                "invalid JSON body: expected one JSON object ({{\"field\": value, ...}}), found {}",
                kind_of(&v)
            ),
        ));
    }
    from_body(v)
}

/// What a JSON value is, for error messages.
pub fn kind_of(v: &serde_json::Value) -> &'static str {
    match v {
        serde_json::Value::Null => "null",
        serde_json::Value::Bool(_) => "a boolean",
        serde_json::Value::Number(_) => "a number",
        serde_json::Value::String(_) => "a string",
        serde_json::Value::Array(_) => "an array",
        serde_json::Value::Object(_) => "an object",
    }
}

/// Rewrites every float with no fraction (`5.0`, `-2.0`, `1e3`) as an integer, where one
/// holds it.
fn whole_numbers(v: &mut serde_json::Value) {
    use serde_json::Value;
    match v {
        Value::Number(n) if n.is_f64() => {
            let f = n.as_f64().unwrap_or(f64::NAN);
            if f.is_finite() && f.fract() == 0.0 {
                // 2^64 and -2^63 are exact in f64; the casts below are then lossless.
                if (0.0..18_446_744_073_709_551_616.0).contains(&f) {
                    *v = Value::from(f as u64);
                } else if (-9_223_372_036_854_775_808.0..0.0).contains(&f) {
                    *v = Value::from(f as i64);
                }
            }
        }
        Value::Array(items) => items.iter_mut().for_each(whole_numbers),
        Value::Object(fields) => fields.values_mut().for_each(whole_numbers),
        _ => {}
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

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    #[derive(Debug, serde::Deserialize, PartialEq)]
    #[serde(deny_unknown_fields)]
    struct Rate {
        rate: u32,
        #[serde(default)]
        offset: Option<i64>,
    }

    #[test]
    fn whole_floats_are_integers_and_bodies_are_objects() {
        let r: Rate = json_object(br#"{"rate": 5.0, "offset": -2.0}"#).unwrap();
        assert_eq!(
            r,
            Rate {
                rate: 5,
                offset: Some(-2)
            }
        );
        let e = json_object::<Rate>(br#"{"rate": 5.5}"#).unwrap_err();
        assert_eq!(e.field.as_deref(), Some("rate"));
        for not_object in [&br#"[5]"#[..], b"5", b"null", br#""x""#] {
            let e = json_object::<Rate>(not_object).unwrap_err();
            assert_eq!(e.status, StatusCode::BAD_REQUEST);
            assert!(
                e.message.contains("expected one JSON object"),
                "{}",
                e.message
            );
        }
        let e = json_object::<Rate>(b"").unwrap_err();
        assert!(e.message.starts_with("invalid JSON body"), "{}", e.message);
        assert_eq!(read_json(b"[1.0, 2.5]").unwrap(), json!([1, 2.5]));
    }
}
