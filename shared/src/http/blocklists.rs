//! Routes for block lists and the tenant's opt-out list (R4.3), and their OpenAPI
//! description ([`BlockListsApi`]). They run on the operator API's state ([`BlockLists`]).

use super::error::{ErrorBody, JsonBody};
use super::paging::{Page100, Page1000, Paging};
use super::respond::{created, ok, R};
use super::{Path, Query, TenantId};
use crate::app::blocklists::BlockLists;
use crate::app::blocklists::{BlockListDeletion, NumberError, NumbersAdded};
use crate::app::Operator;
use crate::domain::blocklist::{
    BlockList, BlockedNumber, NewBlockList, NewOptOut, OptOut, OptOutSource,
};
use crate::domain::phone::PhoneNumber;
use axum::extract::State;
use axum::http::StatusCode;
use axum::response::IntoResponse;
use axum::routing::{get, post};
use axum::{Json, Router};
use serde::{Deserialize, Serialize};
use std::sync::Arc;
use utoipa::{OpenApi, ToSchema};

type S = axum::extract::State<Arc<BlockLists>>;

pub fn routes() -> Router<Operator> {
    Router::new()
        .route(
            "/block-lists",
            post(create_block_list).get(list_block_lists),
        )
        .route(
            "/block-lists/{id}",
            get(get_block_list).delete(delete_block_list),
        )
        .route(
            "/block-lists/{id}/numbers",
            post(add_numbers).get(list_numbers),
        )
        .route(
            "/block-lists/{id}/numbers/{phone}",
            get(get_number).delete(remove_number),
        )
        .route("/opt-outs", post(add_opt_out).get(list_opt_outs))
        .route("/opt-outs/{phone}", get(get_opt_out).delete(remove_opt_out))
}

// ---- documentation types ----

/// A page of block lists, oldest first.
#[derive(Debug, Serialize, ToSchema)]
pub struct BlockListPage {
    pub items: Vec<BlockList>,
    /// Pass as `cursor` for the next page; absent on the last page.
    pub next_cursor: Option<String>,
}

/// A page of a block list's numbers, in phone order.
#[derive(Debug, Serialize, ToSchema)]
pub struct BlockedNumberPage {
    pub items: Vec<BlockedNumber>,
    pub next_cursor: Option<String>,
}

/// A page of the tenant's opt-outs, in phone order.
#[derive(Debug, Serialize, ToSchema)]
pub struct OptOutPage {
    pub items: Vec<OptOut>,
    pub next_cursor: Option<String>,
}

/// `POST /block-lists/{id}/numbers`.
#[derive(Debug, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
#[schema(example = json!({"phones": ["919812345678", "+44 7911 123456", "12345"]}))]
pub struct BlockNumbers {
    /// 1 to 1000 numbers; anything that parses to digits, short codes included.
    #[schema(min_items = 1, max_items = 1000)]
    pub phones: Vec<String>,
}

/// What `DELETE /block-lists/{id}` answers when numbers remain to be removed.
#[derive(Debug, Serialize, ToSchema)]
pub struct BlockListDeleting {
    pub id: String,
    /// Always `DELETING`.
    pub status: String,
    /// Numbers removed by this call.
    pub removed: usize,
}

// ---- block lists ----

#[utoipa::path(
    post, path = "/block-lists", tag = "block lists",
    description = "Creates an empty block list. Attach it to campaigns with `block_lists` \
        on POST or PATCH /campaigns: a number on an attached list is never sent to and its \
        entry is recorded BLOCK_LIST.",
    request_body = NewBlockList,
    responses(
        (status = 201, description = "The block list", body = BlockList),
        (status = 422, description = "No name, or a field too long", body = ErrorBody,
            example = json!({"error": "invalid", "message": "name: is required", "field": "name"})),
    )
)]
async fn create_block_list(State(a): S, t: TenantId, JsonBody(b): JsonBody<NewBlockList>) -> R {
    created(a.create_block_list(&t, b).await?)
}

#[utoipa::path(
    get, path = "/block-lists", tag = "block lists",
    params(Page100),
    responses((status = 200, description = "A page of the tenant's block lists", body = BlockListPage))
)]
async fn list_block_lists(State(a): S, t: TenantId, Query(p): Query<Paging>) -> R {
    let limit = p.limit(50, 100)?;
    let (items, next_cursor) = a.list_block_lists(&t, limit, p.cursor).await?;
    ok(BlockListPage { items, next_cursor })
}

#[utoipa::path(
    get, path = "/block-lists/{id}", tag = "block lists",
    params(("id" = String, Path, description = "Block list id")),
    responses(
        (status = 200, description = "The block list", body = BlockList),
        (status = 404, description = "No such block list (of this tenant)", body = ErrorBody,
            example = json!({"error": "not_found", "message": "block list 'bl_0193a6f1a2b37c4d8e9f0a1b2c3d4e5f' not found"})),
    )
)]
async fn get_block_list(State(a): S, t: TenantId, Path(id): Path<String>) -> R {
    ok(a.get_block_list(&t, &id).await?)
}

#[utoipa::path(
    delete, path = "/block-lists/{id}", tag = "block lists",
    description = "Deletes the block list and its numbers. The list is gone for every \
        reader at once; its numbers are removed in pages. A very large list may need more \
        than one call: the answer is then 202 and calling DELETE again continues. A list \
        attached to a campaign that may still send (DRAFT, READY, SCHEDULED, RUNNING, \
        PAUSED) cannot be deleted: detach it with PATCH /campaigns/{id} first.",
    params(("id" = String, Path, description = "Block list id")),
    responses(
        (status = 204, description = "The list and all its numbers are gone"),
        (status = 202, description = "Numbers remain to be removed: call DELETE again", body = BlockListDeleting,
            example = json!({"id": "bl_0193a6f1a2b37c4d8e9f0a1b2c3d4e5f", "status": "DELETING", "removed": 58000})),
        (status = 404, description = "No such block list", body = ErrorBody),
        (status = 409, description = "A campaign that may still send attaches it", body = ErrorBody,
            example = json!({"error": "conflict", "message": "block list bl_0193a6f1a2b37c4d8e9f0a1b2c3d4e5f is attached to campaign cmp_0193a6f0c2d87b21a1f3e2d4c5b6a7f8 (RUNNING): detach it first"})),
    )
)]
async fn delete_block_list(State(a): S, t: TenantId, Path(id): Path<String>) -> R {
    match a.delete_block_list(&t, &id).await? {
        BlockListDeletion::Deleted => Ok(StatusCode::NO_CONTENT.into_response()),
        BlockListDeletion::InProgress { removed } => Ok((
            StatusCode::ACCEPTED,
            Json(BlockListDeleting {
                id,
                status: "DELETING".into(),
                removed,
            }),
        )
            .into_response()),
    }
}

// ---- numbers ----

#[utoipa::path(
    post, path = "/block-lists/{id}/numbers", tag = "block lists",
    description = "Adds up to 1000 numbers to the block list. Numbers are normalised to \
        international digits like contacts' but not checked against the numbering plan: \
        short codes and numbers invalid for their country can be blocked. Inputs that are \
        not numbers are reported by position and the others added; adding a number twice \
        is harmless. Works while campaigns run: the sender checks each number just before \
        sending it.",
    params(("id" = String, Path, description = "Block list id")),
    request_body = BlockNumbers,
    responses(
        (status = 200, description = "What was added, and the inputs that are not numbers", body = NumbersAdded),
        (status = 404, description = "No such block list", body = ErrorBody),
        (status = 422, description = "No numbers, or more than 1000", body = ErrorBody,
            example = json!({"error": "invalid", "message": "phones: at most 1000 numbers per request (1200 given); send the rest in further requests", "field": "phones"})),
    )
)]
async fn add_numbers(
    State(a): S,
    t: TenantId,
    Path(id): Path<String>,
    JsonBody(b): JsonBody<BlockNumbers>,
) -> R {
    ok(a.add_blocked_numbers(&t, &id, b.phones).await?)
}

#[utoipa::path(
    get, path = "/block-lists/{id}/numbers", tag = "block lists",
    params(("id" = String, Path, description = "Block list id"), Page1000),
    responses(
        (status = 200, description = "A page of the list's numbers in phone order", body = BlockedNumberPage,
            example = json!({"items": [{"phone": "919812345678", "added_at": "2026-11-21T09:00:00Z"}], "next_cursor": null})),
        (status = 404, description = "No such block list", body = ErrorBody),
    )
)]
async fn list_numbers(
    State(a): S,
    t: TenantId,
    Path(id): Path<String>,
    Query(p): Query<Paging>,
) -> R {
    let limit = p.limit(100, 1000)?;
    let (items, next_cursor) = a.list_blocked_numbers(&t, &id, limit, p.cursor).await?;
    ok(BlockedNumberPage { items, next_cursor })
}

#[utoipa::path(
    get, path = "/block-lists/{id}/numbers/{phone}", tag = "block lists",
    description = "Whether the number is on the list: 200 with the entry, 404 when not.",
    params(
        ("id" = String, Path, description = "Block list id"),
        ("phone" = String, Path, description = "The phone number, e.g. 919812345678"),
    ),
    responses(
        (status = 200, description = "The number is on the list", body = BlockedNumber),
        (status = 404, description = "The number is not on the list, or no such list", body = ErrorBody,
            example = json!({"error": "not_found", "message": "blocked number '91********78' not found"})),
        (status = 422, description = "Not a phone number", body = ErrorBody),
    )
)]
async fn get_number(State(a): S, t: TenantId, Path((id, phone)): Path<(String, String)>) -> R {
    ok(a.get_blocked_number(&t, &id, &phone).await?)
}

#[utoipa::path(
    delete, path = "/block-lists/{id}/numbers/{phone}", tag = "block lists",
    params(
        ("id" = String, Path, description = "Block list id"),
        ("phone" = String, Path, description = "The phone number"),
    ),
    responses(
        (status = 204, description = "Removed from the list"),
        (status = 404, description = "The number is not on the list, or no such list", body = ErrorBody,
            example = json!({"error": "not_found", "message": "blocked number '91********78' not found"})),
        (status = 422, description = "Not a phone number", body = ErrorBody),
    )
)]
async fn remove_number(State(a): S, t: TenantId, Path((id, phone)): Path<(String, String)>) -> R {
    a.remove_blocked_number(&t, &id, &phone).await?;
    Ok(StatusCode::NO_CONTENT.into_response())
}

// ---- opt-outs ----

#[utoipa::path(
    post, path = "/opt-outs", tag = "opt-outs",
    description = "Puts a contact on the tenant's opt-out list: no campaign of the tenant \
        sends to it, whatever block lists it attaches. Contacts replying STOP land here too \
        (source `keyword`). Opting out a number already on the list keeps the first record \
        and answers 200.",
    request_body = NewOptOut,
    responses(
        (status = 201, description = "Opted out", body = OptOut),
        (status = 200, description = "Already opted out: the stored record", body = OptOut),
        (status = 422, description = "No phone, or not a phone number", body = ErrorBody,
            example = json!({"error": "invalid", "message": "phone: is required", "field": "phone"})),
    )
)]
async fn add_opt_out(State(a): S, t: TenantId, JsonBody(b): JsonBody<NewOptOut>) -> R {
    match a.add_opt_out(&t, b).await? {
        (rec, true) => created(rec),
        (rec, false) => ok(rec),
    }
}

#[utoipa::path(
    get, path = "/opt-outs", tag = "opt-outs",
    params(Page1000),
    responses(
        (status = 200, description = "A page of the tenant's opt-outs in phone order", body = OptOutPage,
            example = json!({"items": [{"phone": "919812345678", "source": "keyword", "at": "2026-11-21T09:00:00Z", "note": "STOP"}], "next_cursor": null})),
    )
)]
async fn list_opt_outs(State(a): S, t: TenantId, Query(p): Query<Paging>) -> R {
    let limit = p.limit(100, 1000)?;
    let (items, next_cursor) = a.list_opt_outs(&t, limit, p.cursor).await?;
    ok(OptOutPage { items, next_cursor })
}

#[utoipa::path(
    get, path = "/opt-outs/{phone}", tag = "opt-outs",
    description = "Whether the contact opted out: 200 with the record, 404 when not.",
    params(("phone" = String, Path, description = "The phone number, e.g. 919812345678")),
    responses(
        (status = 200, description = "The contact opted out", body = OptOut),
        (status = 404, description = "The contact has not opted out", body = ErrorBody,
            example = json!({"error": "not_found", "message": "opt-out '91********78' not found"})),
        (status = 422, description = "Not a phone number", body = ErrorBody),
    )
)]
async fn get_opt_out(State(a): S, t: TenantId, Path(phone): Path<String>) -> R {
    ok(a.get_opt_out(&t, &phone).await?)
}

#[utoipa::path(
    delete, path = "/opt-outs/{phone}", tag = "opt-outs",
    description = "Takes the contact off the opt-out list: campaigns may send to it again.",
    params(("phone" = String, Path, description = "The phone number")),
    responses(
        (status = 204, description = "Removed from the opt-out list"),
        (status = 404, description = "The contact has not opted out", body = ErrorBody,
            example = json!({"error": "not_found", "message": "opt-out '91********78' not found"})),
        (status = 422, description = "Not a phone number", body = ErrorBody),
    )
)]
async fn remove_opt_out(State(a): S, t: TenantId, Path(phone): Path<String>) -> R {
    a.remove_opt_out(&t, &phone).await?;
    Ok(StatusCode::NO_CONTENT.into_response())
}

/// The OpenAPI description of the block list and opt-out routes, merged into
/// `/openapi.json`.
#[derive(OpenApi)]
#[openapi(
    paths(
        create_block_list, list_block_lists, get_block_list, delete_block_list,
        add_numbers, list_numbers, get_number, remove_number,
        add_opt_out, list_opt_outs, get_opt_out, remove_opt_out
    ),
    components(schemas(
        BlockList, NewBlockList, BlockListPage, BlockListDeleting, BlockNumbers, BlockedNumber,
        BlockedNumberPage, NumbersAdded, NumberError, OptOut, OptOutSource, NewOptOut,
        OptOutPage, ErrorBody, PhoneNumber
    )),
    tags(
        (name = "block lists", description = "Numbers campaigns never send to (R4.3)"),
        (name = "opt-outs", description = "The tenant-wide opt-out list, always honoured (R4.3)"),
    )
)]
pub struct BlockListsApi;
