//! What every route handler answers with: `R` (a response or an [`ApiError`]), `ok` and
//! `created` for JSON bodies, `S` for the operator API's state.

use super::error::ApiError;
use crate::app::admin::Admin;
use axum::extract::State;
use axum::http::StatusCode;
use axum::response::{IntoResponse, Response};
use axum::Json;
use std::sync::Arc;

pub(crate) type S = State<Arc<Admin>>;
pub(crate) type R = Result<Response, ApiError>;

pub(crate) fn created<B: serde::Serialize>(b: B) -> R {
    Ok((StatusCode::CREATED, Json(b)).into_response())
}

pub(crate) fn ok<B: serde::Serialize>(b: B) -> R {
    Ok(Json(b).into_response())
}
