//! Routes of a contact's conversation (R5.5, R5.6) and their OpenAPI description
//! ([`ConversationsApi`]): the conversation view runs on the operator API's state
//! ([`routes`]); the recontact send needs the messaging provider and runs on its own
//! ([`recontact_router`], merged by the composition roots).

use super::error::{ApiError, ErrorBody, JsonBody};
use super::respond::{ok, R};
use super::{Path, TenantId};
use crate::app::conversations::{Conversations, RecontactRequest, RecontactSent};
use crate::app::hopper_views::Views;
use crate::app::Operator;
use crate::domain::conversation::{ConversationMessage, ConversationView, Direction, MessageKind};
use crate::domain::idempotency::{self, IdempotencyKey};
use crate::domain::ids::CampaignId;
use crate::domain::template::{TemplateKey, VariableSource};
use crate::domain::DomainError;
use axum::extract::State;
use axum::http::{HeaderMap, StatusCode};
use axum::routing::{get, post};
use axum::Router;
use std::sync::Arc;
use utoipa::OpenApi;

type S = axum::extract::State<Arc<Views>>;

pub fn routes() -> Router<Operator> {
    Router::new().route(
        "/campaigns/{id}/contacts/{phone}/conversation",
        get(conversation),
    )
}

/// `POST /contacts/{phone}/recontact`, on its own state (it sends through the provider).
pub fn recontact_router(svc: Arc<Conversations>) -> Router {
    Router::new()
        .route("/contacts/{phone}/recontact", post(recontact))
        .with_state(svc)
}

#[utoipa::path(
    get, path = "/campaigns/{id}/contacts/{phone}/conversation", tag = "conversations",
    description = "The conversation view (\"spy\", R5.6): the template the contact received, \
        rendered for it, then every reply and later message in order, each with its kind \
        (`reply`, `no_match`, `late`, `after_close`, `other_message`, `opt_out`, `recontact`).",
    params(
        ("id" = String, Path, description = "Campaign id", pattern = r"^[A-Za-z0-9_-]{1,128}$"),
        ("phone" = String, Path, description = "The contact's number (digits, or as typed)"),
    ),
    responses(
        (status = 200, description = "The conversation", body = ConversationView),
        (status = 404, description = "No such campaign, or the contact is not in its hopper", body = ErrorBody,
            example = json!({"error": "not_found", "message": "contact in campaign '919812345678' not found"})),
        (status = 422, description = "Not a phone number", body = ErrorBody,
            example = json!({"error": "invalid", "message": "phone: must contain digits", "field": "phone"})),
    )
)]
async fn conversation(
    State(a): S,
    t: TenantId,
    Path((id, phone)): Path<(CampaignId, String)>,
) -> R {
    ok(a.conversation(&t, &id, &phone).await?)
}

#[utoipa::path(
    post, path = "/contacts/{phone}/recontact", tag = "conversations",
    description = "Sends the account's recontact template to a contact (R5.5): after the \
        contact's 24-hour customer-service window expired, it is the only message that may \
        go out. Refused with 409 while a campaign waits for the contact's answer (R5.1's \
        message), when the contact opted out, or when the account has no APPROVED recontact \
        template; 404 for an unknown account; 502 when the provider refuses it. With an \
        `Idempotency-Key` header, the same request sent again (a retry after a timeout) gets \
        the first answer and sends nothing; the key is kept 24 hours. Another request with a \
        used key is a 422; a request whose key's first request has no answer yet (still \
        running, or stopped not knowing whether the message went out) is a 409.",
    params(
        ("phone" = String, Path, description = "The contact's number"),
        ("Idempotency-Key" = Option<String>, Header, description = "Names the request, so \
            sending it again never sends a second message (e.g. a UUID per request)",
            pattern = r"^[!-~]{1,255}$"),
    ),
    request_body(content = RecontactRequest, example = json!({"account_id": "acc_0190a1", "variables": [{"source": "contact_name"}]})),
    responses(
        (status = 200, description = "Sent", body = RecontactSent),
        (status = 404, description = "No such account", body = ErrorBody,
            example = json!({"error": "not_found", "message": "account 'acc_x' not found"})),
        (status = 409, description = "Not allowed now; or the first request with this \
            Idempotency-Key has no answer", body = ErrorBody,
            example = json!({"error": "conflict", "message": "No messages can be sent since we are waiting for the customer's response."})),
        (status = 422, description = "A field breaks a rule (number, account, variables), \
            or the Idempotency-Key was used for a different request", body = ErrorBody,
            example = json!({"error": "invalid", "message": "variables: missing value for variable {{1}}", "field": "variables"})),
        (status = 502, description = "The provider refused the message", body = ErrorBody,
            example = json!({"error": "provider_error", "message": "Message Undeliverable"})),
    )
)]
async fn recontact(
    State(s): State<Arc<Conversations>>,
    t: TenantId,
    Path(phone): Path<String>,
    headers: HeaderMap,
    JsonBody(b): JsonBody<RecontactRequest>,
) -> R {
    let key = match headers.get(idempotency::HEADER) {
        None => None,
        Some(v) => Some(
            v.to_str()
                .map_err(|_| DomainError::invalid(idempotency::HEADER, "not ASCII"))
                .and_then(IdempotencyKey::parse)
                .map_err(|e| {
                    ApiError::bad_request(Some(idempotency::HEADER.into()), e.to_string())
                })?,
        ),
    };
    match s.recontact(&t, &phone, b, key).await? {
        Ok(sent) => ok(sent),
        Err(failure) => Err(ApiError::new(
            StatusCode::BAD_GATEWAY,
            "provider_error",
            failure.reason,
        )),
    }
}

/// The OpenAPI description of the conversation routes.
#[derive(OpenApi)]
#[openapi(
    paths(conversation, recontact),
    components(schemas(
        ConversationView,
        ConversationMessage,
        Direction,
        MessageKind,
        RecontactRequest,
        RecontactSent,
        TemplateKey,
        VariableSource,
        ErrorBody,
    )),
    tags((name = "conversations", description = "A contact's conversation after a campaign message and the recontact template (R5)"))
)]
pub struct ConversationsApi;
