//! Routes for provider accounts and templates.

use super::api::{created, ok, R, S};
use super::error::JsonBody;
use super::TenantId;
use crate::app::admin::Admin;
use crate::domain::account::NewAccount;
use crate::domain::template::NewTemplate;
use axum::extract::{Path, State};
use axum::routing::{get, post};
use axum::Router;
use serde_json::json;
use std::sync::Arc;

pub fn routes() -> Router<Arc<Admin>> {
    Router::new()
        .route("/accounts", post(create_account).get(list_accounts))
        .route("/accounts/{id}", get(get_account))
        .route("/templates", post(create_template).get(list_templates))
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
