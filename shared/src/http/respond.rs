//! What every route handler answers with: `R` (a response or an [`ApiError`]), `ok` and
//! `created` for JSON bodies.

use super::error::ApiError;
use axum::http::StatusCode;
use axum::response::{IntoResponse, Response};
use axum::Json;

pub(crate) type R = Result<Response, ApiError>;

pub(crate) fn created<B: serde::Serialize>(b: B) -> R {
    Ok((StatusCode::CREATED, Json(b)).into_response())
}

pub(crate) fn ok<B: serde::Serialize>(b: B) -> R {
    Ok(Json(b).into_response())
}
