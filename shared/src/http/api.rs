//! The operator API (R8.1): JSON over HTTP, one route per use case.

use super::error::{ApiError, JsonBody};
use super::TenantId;
use crate::app::admin::Admin;
use crate::domain::campaign::NewCampaign;
use axum::extract::{Path, Query, State};
use axum::http::StatusCode;
use axum::response::{IntoResponse, Response};
use axum::routing::{get, post};
use axum::{Json, Router};
use serde::Deserialize;
use serde_json::json;
use std::sync::Arc;

pub(crate) type S = State<Arc<Admin>>;
pub(crate) type R = Result<Response, ApiError>;

pub(crate) fn created<B: serde::Serialize>(b: B) -> R {
    Ok((StatusCode::CREATED, Json(b)).into_response())
}

pub(crate) fn ok<B: serde::Serialize>(b: B) -> R {
    Ok(Json(b).into_response())
}

pub fn router(admin: Arc<Admin>) -> Router {
    Router::new()
        .route("/campaigns", post(create_campaign).get(list_campaigns))
        .route("/campaigns/{id}", get(get_campaign))
        .route("/campaigns/{id}/launch", post(launch))
        .route("/campaigns/{id}/pause", post(pause))
        .route("/campaigns/{id}/resume", post(resume))
        .route("/campaigns/{id}/hopper", get(hopper))
        .route("/campaigns/{id}/stats", get(stats))
        .merge(super::templates::routes())
        .merge(super::audience::routes())
        .fallback(not_found)
        .with_state(admin)
}

async fn not_found() -> ApiError {
    ApiError::new(StatusCode::NOT_FOUND, "not_found", "no such route")
}

async fn create_campaign(State(a): S, t: TenantId, JsonBody(b): JsonBody<NewCampaign>) -> R {
    created(a.create_campaign(&t.0, b).await?)
}

#[derive(Deserialize)]
struct Paging {
    limit: Option<u32>,
    cursor: Option<String>,
}

async fn list_campaigns(State(a): S, t: TenantId, Query(p): Query<Paging>) -> R {
    let (items, next) = a
        .list_campaigns(&t.0, p.limit.unwrap_or(50), p.cursor)
        .await?;
    ok(json!({ "items": items, "next_cursor": next }))
}

async fn get_campaign(State(a): S, t: TenantId, Path(id): Path<String>) -> R {
    ok(a.get_campaign(&t.0, &id).await?)
}

async fn launch(State(a): S, t: TenantId, Path(id): Path<String>) -> R {
    ok(a.launch(&t.0, &id).await?)
}

async fn pause(State(a): S, t: TenantId, Path(id): Path<String>) -> R {
    ok(a.pause(&t.0, &id).await?)
}

async fn resume(State(a): S, t: TenantId, Path(id): Path<String>) -> R {
    ok(a.resume(&t.0, &id).await?)
}

async fn hopper(State(a): S, t: TenantId, Path(id): Path<String>) -> R {
    ok(a.hopper(&t.0, &id).await?)
}

async fn stats(State(a): S, t: TenantId, Path(id): Path<String>) -> R {
    ok(a.stats(&t.0, &id).await?)
}
