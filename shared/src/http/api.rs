//! The operator API (R8.1): JSON over HTTP, one route per use case.

use super::error::{ApiError, JsonBody};
use super::TenantId;
use crate::app::admin::Admin;
use crate::domain::account::NewAccount;
use crate::domain::campaign::NewCampaign;
use crate::domain::contact::NewContact;
use crate::domain::template::NewTemplate;
use axum::extract::{Path, Query, State};
use axum::http::StatusCode;
use axum::response::{IntoResponse, Response};
use axum::routing::{get, post};
use axum::{Json, Router};
use serde::Deserialize;
use serde_json::json;
use std::sync::Arc;

type S = State<Arc<Admin>>;
type R = Result<Response, ApiError>;

fn created<B: serde::Serialize>(b: B) -> R {
    Ok((StatusCode::CREATED, Json(b)).into_response())
}

fn ok<B: serde::Serialize>(b: B) -> R {
    Ok(Json(b).into_response())
}

pub fn router(admin: Arc<Admin>) -> Router {
    Router::new()
        .route("/accounts", post(create_account).get(list_accounts))
        .route("/accounts/{id}", get(get_account))
        .route("/templates", post(create_template).get(list_templates))
        .route("/contacts", post(upsert_contacts))
        .route("/contacts/{phone}", get(get_contact))
        .route("/lists", post(create_list))
        .route("/lists/{id}", get(get_list))
        .route("/lists/{id}/members", post(add_members))
        .route("/campaigns", post(create_campaign).get(list_campaigns))
        .route("/campaigns/{id}", get(get_campaign))
        .route("/campaigns/{id}/lists", post(attach_list))
        .route("/campaigns/{id}/launch", post(launch))
        .route("/campaigns/{id}/pause", post(pause))
        .route("/campaigns/{id}/resume", post(resume))
        .route("/campaigns/{id}/hopper", get(hopper))
        .route("/campaigns/{id}/stats", get(stats))
        .fallback(not_found)
        .with_state(admin)
}

async fn not_found() -> ApiError {
    ApiError::new(StatusCode::NOT_FOUND, "not_found", "no such route")
}

async fn create_account(State(a): S, t: TenantId, JsonBody(b): JsonBody<NewAccount>) -> R {
    created(a.create_account(&t.0, b).await?)
}

async fn list_accounts(State(a): S, t: TenantId) -> R {
    ok(json!({ "items": a.list_accounts(&t.0).await? }))
}

async fn get_account(State(a): S, t: TenantId, Path(id): Path<String>) -> R {
    ok(a.get_account(&t.0, &id).await?)
}

async fn create_template(State(a): S, t: TenantId, JsonBody(b): JsonBody<NewTemplate>) -> R {
    created(a.create_template(&t.0, b).await?)
}

async fn list_templates(State(a): S, t: TenantId) -> R {
    ok(json!({ "items": a.list_templates(&t.0).await? }))
}

/// One contact, or an array of them.
#[derive(Deserialize)]
#[serde(untagged)]
enum OneOrMany {
    Many(Vec<NewContact>),
    One(NewContact),
}

async fn upsert_contacts(State(a): S, t: TenantId, JsonBody(b): JsonBody<OneOrMany>) -> R {
    match b {
        OneOrMany::One(c) => {
            let mut saved = a.upsert_contacts(&t.0, vec![c]).await?;
            created(saved.pop())
        }
        OneOrMany::Many(cs) => created(json!({ "items": a.upsert_contacts(&t.0, cs).await? })),
    }
}

async fn get_contact(State(a): S, t: TenantId, Path(phone): Path<String>) -> R {
    ok(a.get_contact(&t.0, &phone).await?)
}

#[derive(Deserialize)]
struct NewList {
    name: Option<String>,
}

async fn create_list(State(a): S, t: TenantId, JsonBody(b): JsonBody<NewList>) -> R {
    created(a.create_list(&t.0, b.name).await?)
}

async fn get_list(State(a): S, t: TenantId, Path(id): Path<String>) -> R {
    ok(a.get_list(&t.0, &id).await?)
}

#[derive(Deserialize)]
struct Members {
    phones: Vec<String>,
}

async fn add_members(
    State(a): S,
    t: TenantId,
    Path(id): Path<String>,
    JsonBody(b): JsonBody<Members>,
) -> R {
    ok(json!({ "added": a.add_list_members(&t.0, &id, b.phones).await? }))
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

#[derive(Deserialize)]
struct Attach {
    list_id: String,
}

async fn attach_list(
    State(a): S,
    t: TenantId,
    Path(id): Path<String>,
    JsonBody(b): JsonBody<Attach>,
) -> R {
    ok(a.attach_list(&t.0, &id, &b.list_id).await?)
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
