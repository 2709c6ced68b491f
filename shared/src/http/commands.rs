//! Routes for the campaign commands that touch every hopper entry (R4.9): reset list and
//! retry campaign, answered 202 and carried out by the sweeper, and their progress; with
//! their OpenAPI description ([`CommandsApi`]).

use super::error::{ApiError, ErrorBody};
use super::examples as ex;
use super::respond::R;
use super::{Path, TenantId};
use crate::app::commands::Commands;
use crate::app::commands::{OperationProgress, OperationView};
use crate::app::Operator;
use crate::domain::ids::CampaignId;
use crate::repo::commands::{OperationKind, OperationStatus};
use axum::extract::State;
use axum::http::StatusCode;
use axum::response::IntoResponse;
use axum::routing::{get, post};
use axum::{Json, Router};
use serde::Deserialize;
use serde_json::{json, Value};
use std::sync::Arc;
use utoipa::{OpenApi, ToSchema};

type S = axum::extract::State<Arc<Commands>>;

pub fn routes() -> Router<Operator> {
    Router::new()
        .route("/campaigns/{id}/reset", post(reset))
        .route("/campaigns/{id}/retry", post(retry))
        .route("/campaigns/{id}/operation", get(operation))
}

/// `POST /campaigns/{id}/reset`.
#[derive(Debug, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct ResetRequest {
    /// Must be `true`: a reset puts every entry back to FRESH and clears its outcome.
    pub confirm: bool,
}

const CONFIRM: &str =
    "a reset puts every entry of the campaign back to FRESH: send {\"confirm\": true}";

/// The body of a reset: `{"confirm": true}`, anything else is a 400 naming the field.
fn confirmed(body: &[u8]) -> Result<(), ApiError> {
    let v: Value = if body.iter().all(u8::is_ascii_whitespace) {
        json!({})
    } else {
        serde_json::from_slice(body)
            .map_err(|e| ApiError::bad_request(None, format!("invalid JSON body: {e}")))?
    };
    let Some(fields) = v.as_object() else {
        return Err(ApiError::bad_request(
            None,
            "invalid JSON body: expected an object like {\"confirm\": true}",
        ));
    };
    if let Some(k) = fields.keys().find(|k| *k != "confirm") {
        return Err(ApiError::bad_request(
            Some(k.clone()),
            format!("invalid JSON body: unknown field `{k}`, expected `confirm`"),
        ));
    }
    if fields.get("confirm") != Some(&Value::Bool(true)) {
        return Err(ApiError::bad_request(Some("confirm".into()), CONFIRM));
    }
    Ok(())
}

/// 202 with the operation that carries a request's work on in the background.
pub(super) fn accepted(v: OperationView) -> R {
    Ok((StatusCode::ACCEPTED, Json(v)).into_response())
}

#[utoipa::path(
    post, path = "/campaigns/{id}/reset", tag = "campaigns",
    description = "Reset list (R4.9): every hopper entry goes back to FRESH with its outcome \
        cleared (sent, delivered, read and reply times, disposition, reason, error), at the end of \
        the dispatch order; `attempts` keeps counting. Entries SENDING at that moment are in flight \
        and left alone. Needs `{\"confirm\": true}`. Refused while RUNNING (pause first), when \
        CANCELLED and after the end date. A COMPLETED campaign reopens as PAUSED: nothing goes out \
        until it is resumed. The sweeper walks the hopper in the background, a time budget every \
        minute; `GET /campaigns/{id}/operation` shows the progress. A reset \
        asked for while one runs restarts it; it replaces a running retry.",
    params(("id" = String, Path, description = "Campaign id", pattern = r"^[A-Za-z0-9_-]{1,128}$")),
    request_body(content = ResetRequest, example = json!({"confirm": true})),
    responses(
        (status = 202, description = "Accepted: the operation, RUNNING", body = OperationView,
            example = json!(ex::operation("reset", "RUNNING", "PAUSED"))),
        (status = 400, description = "`confirm` is missing or not `true`", body = ErrorBody,
            example = json!({"error": "bad_request", "message": CONFIRM, "field": "confirm"})),
        (status = 404, description = "No such campaign", body = ErrorBody, example = json!(ex::not_found())),
        (status = 409, description = "RUNNING (pause it first), CANCELLED, its end date passed, or contacts are being attached (`attach` operation running)", body = ErrorBody,
            example = json!({"error": "conflict", "message": format!("cannot reset the list of campaign {} while it is RUNNING: pause it first", ex::CAMPAIGN_ID)})),
    )
)]
async fn reset(
    State(a): S,
    t: TenantId,
    Path(id): Path<CampaignId>,
    super::error::RawBody(body): super::error::RawBody,
) -> R {
    confirmed(&body)?;
    accepted(a.request_reset(&t, &id, true).await?)
}

#[utoipa::path(
    post, path = "/campaigns/{id}/retry", tag = "campaigns",
    description = "Retry campaign (R4.9): RETRY entries (temporary failures, outcome unknown) go \
        back to FRESH and are sent again; permanent failures (FAILED, BLOCK_LIST, SKIPPED) never, \
        nor a RETRY entry a delivery status shows reached the phone. Allowed on RUNNING, PAUSED and \
        COMPLETED campaigns, any number of times until the end date. A COMPLETED campaign reopens \
        as RUNNING; a PAUSED one stays PAUSED (its entries go out once resumed). The sweeper walks \
        the hopper in the background; `GET /campaigns/{id}/operation` shows the progress. A retry \
        asked for while one runs restarts that walk (`requests` counts both).",
    params(("id" = String, Path, description = "Campaign id", pattern = r"^[A-Za-z0-9_-]{1,128}$")),
    responses(
        (status = 202, description = "Accepted: the operation, RUNNING", body = OperationView,
            example = json!(ex::operation("retry", "RUNNING", "RUNNING"))),
        (status = 404, description = "No such campaign", body = ErrorBody, example = json!(ex::not_found())),
        (status = 409, description = "Not RUNNING, PAUSED or COMPLETED; its end date passed; a reset is in progress; contacts are being attached; or no entry is RETRY", body = ErrorBody,
            example = json!({"error": "conflict", "message": format!("cannot retry campaign {}: its end date has passed", ex::CAMPAIGN_ID)})),
    )
)]
async fn retry(State(a): S, t: TenantId, Path(id): Path<CampaignId>) -> R {
    accepted(a.request_retry(&t, &id).await?)
}

#[utoipa::path(
    get, path = "/campaigns/{id}/operation", tag = "campaigns",
    description = "The campaign's latest background operation: a reset, a retry, the expiry \
        of its unsent entries once its end date passed (`expire`: FRESH entries become SKIPPED \
        with reason `campaign ended`), or an attach of a list or segment (`attach`: every \
        attach is stored as one, and the sweeper carries on what its request did not finish; \
        `changed` counts the entries added, `sources_left` the lists and segments still to \
        walk), or the background walk of a report too large for its request (`recount`, \
        `estimate`: they only read the hopper, `examined` counts the entries read, and \
        `result` is the answer once DONE), with its progress. A reset, retry, expiry or \
        attach replaces a running report; a recount replaces a running estimate.",
    params(("id" = String, Path, description = "Campaign id", pattern = r"^[A-Za-z0-9_-]{1,128}$")),
    responses(
        (status = 200, description = "The latest operation", body = OperationView,
            example = json!(ex::operation("retry", "DONE", "RUNNING"))),
        (status = 404, description = "No such campaign, or it never had an operation", body = ErrorBody,
            example = json!({"error": "not_found", "message": format!("operation of campaign '{}' not found", ex::CAMPAIGN_ID)})),
    )
)]
async fn operation(State(a): S, t: TenantId, Path(id): Path<CampaignId>) -> R {
    Ok(Json(a.operation(&t, &id).await?).into_response())
}

/// The OpenAPI description of the command routes; `openapi::document` merges it.
#[derive(OpenApi)]
#[openapi(
    paths(reset, retry, operation),
    components(schemas(
        ResetRequest,
        OperationView,
        OperationProgress,
        OperationKind,
        OperationStatus
    ))
)]
pub struct CommandsApi;

#[cfg(test)]
mod tests {
    use super::confirmed;

    #[test]
    fn r4_9_reset_body_must_confirm() {
        assert!(confirmed(br#"{"confirm": true}"#).is_ok());
        for bad in [
            &b""[..],
            b"{}",
            br#"{"confirm": false}"#,
            br#"{"confirm": "yes"}"#,
        ] {
            let e = confirmed(bad).unwrap_err();
            assert_eq!(e.field.as_deref(), Some("confirm"), "{bad:?}");
        }
        assert_eq!(
            confirmed(br#"{"confirm": true, "x": 1}"#)
                .unwrap_err()
                .field
                .as_deref(),
            Some("x")
        );
        assert!(confirmed(b"[1]").unwrap_err().field.is_none());
    }
}
