//! Routes for contacts, lists and a campaign's audience.

use super::api::{created, ok, R, S};
use super::error::JsonBody;
use super::TenantId;
use crate::app::admin::Admin;
use crate::domain::contact::NewContact;
use axum::extract::{Path, State};
use axum::routing::{get, post};
use axum::Router;
use serde::Deserialize;
use serde_json::json;
use std::sync::Arc;

pub fn routes() -> Router<Arc<Admin>> {
    Router::new()
        .route("/contacts", post(upsert_contacts))
        .route("/contacts/{phone}", get(get_contact))
        .route("/lists", post(create_list))
        .route("/lists/{id}", get(get_list))
        .route("/lists/{id}/members", post(add_members))
        .route("/campaigns/{id}/lists", post(attach_list))
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
