//! Routes for the hopper's open and history views and its whole listing (R4.1) and their
//! OpenAPI description ([`HopperViewsApi`]). They run on the operator API's state ([`Views`]);
//! every input is a query parameter, so a bad one is a 400 naming it.

use super::error::{ApiError, ErrorBody};
use super::examples as ex;
use super::respond::{ok, R};
use super::{Path, QueryAsGiven, TenantId};
use crate::app::hopper_views::EntryListing;
use crate::app::hopper_views::Views;
use crate::app::AppError;
use crate::app::Operator;
use crate::domain::hopper::EntryState;
use crate::domain::hopper_view::{EntryView, HopperView, Outcome, ReplyView, LIMIT_MESSAGE};
use crate::domain::ids::CampaignId;
use crate::domain::DomainError;
use axum::extract::State;
use axum::routing::get;
use axum::Router;
use serde::{Deserialize, Serialize};
use serde_json::{json, Value};
use std::sync::Arc;
use utoipa::{IntoParams, OpenApi, ToSchema};

type S = axum::extract::State<Arc<Views>>;

pub fn routes() -> Router<Operator> {
    Router::new()
        .route("/campaigns/{id}/hopper/open", get(open))
        .route("/campaigns/{id}/hopper/history", get(history))
        .route("/campaigns/{id}/hopper/entries", get(entries))
}

/// A page of hopper entries, in shard order and then phone order.
#[derive(Debug, Serialize, ToSchema)]
pub struct HopperEntryPage {
    pub items: Vec<EntryView>,
    /// Pass as `cursor` for the next page; `null` once every entry was read. A page may
    /// hold fewer than `limit` entries and still have one.
    pub next_cursor: Option<String>,
}

/// Filter and paging of the hopper views, as given.
#[derive(Debug, Default, Deserialize)]
pub struct ViewParams {
    pub state: Option<String>,
    pub reason: Option<String>,
    pub disposition: Option<String>,
    pub limit: Option<String>,
    pub cursor: Option<String>,
}

/// The states the open view shows (documentation of its `state`).
#[derive(ToSchema)]
#[allow(dead_code, clippy::upper_case_acronyms)]
enum OpenState {
    FRESH,
    SENDING,
    PENDING,
}

/// The states the history view shows (documentation of its `state`).
#[derive(ToSchema)]
#[allow(dead_code, clippy::upper_case_acronyms, non_camel_case_types)]
enum HistoryState {
    CLOSED,
    FAILED,
    BLOCK_LIST,
    SKIPPED,
    RETRY,
}

/// The `state` of `GET /campaigns/{id}/hopper/open` (documentation of [`ViewParams`]).
#[derive(IntoParams)]
#[into_params(parameter_in = Query)]
#[allow(dead_code)]
pub struct OpenStateParam {
    /// Only entries in this open state (default all three, as when empty); another value
    /// is a 400 naming `state`.
    #[param(inline, value_type = Option<OpenState>)]
    state: Option<String>,
}

/// The `state` of `GET /campaigns/{id}/hopper/history`.
#[derive(IntoParams)]
#[into_params(parameter_in = Query)]
#[allow(dead_code)]
pub struct HistoryStateParam {
    /// Only entries in this settled state (default all of them, as when empty); another
    /// value is a 400 naming `state`.
    #[param(inline, value_type = Option<HistoryState>)]
    state: Option<String>,
}

/// The `state` of `GET /campaigns/{id}/hopper/entries`.
#[derive(IntoParams)]
#[into_params(parameter_in = Query)]
#[allow(dead_code)]
pub struct AnyState {
    /// Only entries in this state (default every state, as when empty); an unknown one is
    /// a 400 naming `state`.
    #[param(value_type = Option<EntryState>)]
    state: Option<String>,
}

/// The filters and paging every hopper listing shares, after its `state` (documentation
/// of [`ViewParams`]).
#[derive(IntoParams)]
#[into_params(parameter_in = Query)]
#[allow(dead_code)]
pub struct ListingParams {
    /// Only entries with this reason, compared without case (`block list`, `duplicate`,
    /// `Invalid Number`, `outcome unknown`, a provider's reason). Empty is a 400 naming
    /// `reason`.
    #[param(min_length = 1, pattern = r"\S")]
    reason: Option<String>,
    /// Only entries with this disposition, exactly (`replied:Yes`, `agent_requested`,
    /// `no_response`, `undeliverable`, `not_sent`, ...). Empty is a 400 naming
    /// `disposition`.
    #[param(min_length = 1, pattern = r"\S")]
    disposition: Option<String>,
    /// Page size, 1 to 500 (default 100); anything else (an empty one too) is a 400
    /// naming `limit`.
    #[param(value_type = Option<u32>, minimum = 1, maximum = 500)]
    limit: Option<String>,
    /// `next_cursor` of the previous page. A value this listing did not return (an empty
    /// one too) is a 400 naming `cursor`.
    #[param(min_length = 1)]
    cursor: Option<String>,
}

impl ViewParams {
    fn listing(self) -> Result<EntryListing, ApiError> {
        let limit = match self.limit.as_deref().map(str::trim) {
            None => None,
            Some(l) => Some(
                l.parse::<u32>()
                    .map_err(|_| ApiError::bad_request(Some("limit".into()), limit_message()))?,
            ),
        };
        Ok(EntryListing {
            state: self.state,
            reason: self.reason,
            disposition: self.disposition,
            limit,
            cursor: self.cursor,
        })
    }
}

fn limit_message() -> String {
    format!("limit: {LIMIT_MESSAGE}")
}

/// Every invalid input of these routes is a query parameter: 400 naming it.
fn as_bad_request(e: AppError) -> ApiError {
    match e {
        AppError::Domain(DomainError::Invalid { field, message }) => {
            ApiError::bad_request(Some(field.clone()), format!("{field}: {message}"))
        }
        other => other.into(),
    }
}

async fn view(a: &Views, tenant: &TenantId, id: &CampaignId, v: HopperView, p: ViewParams) -> R {
    let q = p.listing()?;
    let (items, next_cursor) = a
        .hopper_entries(tenant, id, v, q)
        .await
        .map_err(as_bad_request)?;
    ok(HopperEntryPage { items, next_cursor })
}

fn open_example() -> Value {
    json!({"items": [{
        "phone": "919812345678", "name": "Asha", "state": "PENDING", "outcome": "sent",
        "disposition": null, "reason": null, "error": null, "reply": null, "attempts": 1,
        "sent_at": "2026-11-22T09:00:02Z", "delivered_at": "2026-11-22T09:00:05Z",
        "read_at": "2026-11-22T09:10:00Z", "replied_at": null,
        "expires_at": "2026-11-24T09:00:02Z", "wait_until": null,
        "last_attempt_error": null, "marketing_holds": 0, "message_status": "accepted", "user_id": null
    }], "next_cursor": "3:919812345678"})
}

fn history_example() -> Value {
    json!({"items": [
        {
            "phone": "919812345678", "name": "Asha", "state": "CLOSED", "outcome": "replied",
            "disposition": "replied:Yes", "reason": null, "error": null,
            "reply": {"text": "Yes", "button": "Yes", "at": "2026-11-22T09:14:00Z"},
            "attempts": 1, "sent_at": "2026-11-22T09:00:02Z",
            "delivered_at": "2026-11-22T09:00:05Z", "read_at": "2026-11-22T09:10:00Z",
            "replied_at": "2026-11-22T09:14:00Z", "expires_at": null, "wait_until": null,
            "last_attempt_error": null, "marketing_holds": 0, "message_status": null, "user_id": null
        },
        {
            "phone": "919812345679", "name": "Ravi", "state": "FAILED", "outcome": "failed",
            "disposition": "undeliverable", "reason": "Message Undeliverable",
            "error": "Message Undeliverable", "reply": null, "attempts": 1,
            "sent_at": null, "delivered_at": null, "read_at": null, "replied_at": null,
            "expires_at": null, "wait_until": null, "last_attempt_error": null, "marketing_holds": 0, "message_status": null, "user_id": null
        }
    ], "next_cursor": null})
}

#[utoipa::path(
    get, path = "/campaigns/{id}/hopper/open", tag = "campaigns",
    description = "Hopper entries whose outcome is still open (R4.1): FRESH (to send; \
        `waiting` with `wait_until` when held back), SENDING (the provider call in flight) and \
        PENDING (sent, awaiting a reply until `expires_at`), or the one of them `state` names; \
        the statistics' `open` counts the same entries. Each shows the full phone, contact \
        name, outcome (`queued`, `waiting`, `sending`, `sent`), disposition, reason, error, the \
        last attempt's error when it put the entry back in line, reply, attempts and \
        sent/delivered/read/reply times. Entries come in shard order, then phone order (not by \
        time). A page may hold fewer than `limit` entries and still carry a `next_cursor` (the \
        walk reads a bounded number of entries per request): follow it until it is null.",
    params(("id" = String, Path, description = "Campaign id", pattern = r"^[A-Za-z0-9_-]{1,128}$"), OpenStateParam, ListingParams),
    responses(
        (status = 200, description = "A page of entries", body = HopperEntryPage,
            example = json!(open_example())),
        (status = 400, description = "A `state` that is not open, `limit` outside 1..=500, or a `cursor` this view did not return; `field` names it", body = ErrorBody,
            example = json!({"error": "bad_request", "message": "state: CLOSED is not in this view, which lists FRESH, SENDING, PENDING: see the history view, or /hopper/entries for every state", "field": "state"})),
        (status = 403, description = "Campaigns are disabled for the tenant", body = ErrorBody,
            example = json!(ex::forbidden())),
        (status = 404, description = "No such campaign (or it is being deleted)", body = ErrorBody,
            example = json!(ex::not_found())),
    )
)]
async fn open(
    State(a): S,
    t: TenantId,
    Path(id): Path<CampaignId>,
    QueryAsGiven(q): QueryAsGiven<ViewParams>,
) -> R {
    view(&a, &t, &id, HopperView::Open, q).await
}

#[utoipa::path(
    get, path = "/campaigns/{id}/hopper/history", tag = "campaigns",
    description = "Hopper entries whose outcome is settled (R4.1): CLOSED (replied, no response, \
        replied late), FAILED, BLOCK_LIST, SKIPPED and RETRY (not sent, may be retried), or the \
        one of them `state` names. Each shows the full phone, contact name, outcome, disposition \
        (`replied:<button>`, `agent_requested`, `no_response`, `undeliverable`, `not_sent`, ...), reason, error, \
        reply, attempts and times. Entries come in shard order, then phone order (not by time). A \
        page may hold fewer than `limit` entries and still carry a `next_cursor`: follow it until \
        it is null.",
    params(("id" = String, Path, description = "Campaign id", pattern = r"^[A-Za-z0-9_-]{1,128}$"), HistoryStateParam, ListingParams),
    responses(
        (status = 200, description = "A page of entries", body = HopperEntryPage,
            example = json!(history_example())),
        (status = 400, description = "A `state` outside the history, `limit` outside 1..=500, or a bad `cursor`; `field` names it", body = ErrorBody,
            example = json!({"error": "bad_request", "message": "limit: must be a whole number from 1 to 500", "field": "limit"})),
        (status = 403, description = "Campaigns are disabled for the tenant", body = ErrorBody,
            example = json!(ex::forbidden())),
        (status = 404, description = "No such campaign (or it is being deleted)", body = ErrorBody,
            example = json!(ex::not_found())),
    )
)]
async fn history(
    State(a): S,
    t: TenantId,
    Path(id): Path<CampaignId>,
    QueryAsGiven(q): QueryAsGiven<ViewParams>,
) -> R {
    view(&a, &t, &id, HopperView::History, q).await
}

#[utoipa::path(
    get, path = "/campaigns/{id}/hopper/entries", tag = "campaigns",
    description = "Every hopper entry of the campaign (R4.1), or those in one `state`, with one \
        `reason` and/or one `disposition`: e.g. `?disposition=agent_requested` lists the \
        contacts waiting for an agent, `?state=SKIPPED&reason=duplicate` those skipped by the \
        duplicate window. The open and history views are this listing cut in two. Entries come \
        in shard order, then phone order; a page may hold fewer than `limit` entries and still \
        carry a `next_cursor`: follow it until it is null.",
    params(("id" = String, Path, description = "Campaign id", pattern = r"^[A-Za-z0-9_-]{1,128}$"), AnyState, ListingParams),
    responses(
        (status = 200, description = "A page of entries", body = HopperEntryPage,
            example = json!(history_example())),
        (status = 400, description = "An unknown `state`, an empty `reason` or `disposition`, `limit` outside 1..=500, or a bad `cursor`; `field` names it", body = ErrorBody,
            example = json!({"error": "bad_request", "message": "disposition: must not be empty; leave it out to list every value", "field": "disposition"})),
        (status = 403, description = "Campaigns are disabled for the tenant", body = ErrorBody,
            example = json!(ex::forbidden())),
        (status = 404, description = "No such campaign (or it is being deleted)", body = ErrorBody,
            example = json!(ex::not_found())),
    )
)]
async fn entries(
    State(a): S,
    t: TenantId,
    Path(id): Path<CampaignId>,
    QueryAsGiven(q): QueryAsGiven<ViewParams>,
) -> R {
    view(&a, &t, &id, HopperView::All, q).await
}

/// The OpenAPI description of the hopper views; `openapi::document` merges it.
#[derive(OpenApi)]
#[openapi(
    paths(open, history, entries),
    components(schemas(
        HopperEntryPage,
        EntryView,
        Outcome,
        ReplyView,
        EntryState,
        OpenState,
        HistoryState
    ))
)]
pub struct HopperViewsApi;
