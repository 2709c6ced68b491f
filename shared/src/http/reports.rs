//! Routes for the campaign reports (R6.2-R6.4) and their OpenAPI description
//! ([`ReportsApi`]): the statistics' recount and repair, the CSV export per contact, the
//! funnel steps a bot flow reports, and the cost estimate. They run on the operator API's
//! state ([`Reports`]).

use super::error::{ApiError, ErrorBody, JsonBody};
use super::examples as ex;
use super::respond::{created, ok, R};
use super::{Path, Query, TenantId};
use crate::app::commands::OperationView;
use crate::app::report_walks::Walked;
use crate::app::reports::Reports;
use crate::app::reports::{
    export_stream, BasisCost, CostEstimate, CountryCost, PriceTableInfo, Recount, StepRecorded,
    StepRequest, EXPORT_COLUMNS, MAX_CHUNK_ROWS,
};
use crate::app::AppError;
use crate::app::Operator;
use crate::domain::campaign::TemplateRef;
use crate::domain::ids::CampaignId;
use crate::domain::pricing::PriceCategory;
use crate::domain::DomainError;
use axum::body::Body;
use axum::extract::State;
use axum::http::{header, HeaderValue, StatusCode};
use axum::response::{IntoResponse, Response};
use axum::routing::{get, post};
use axum::Router;
use futures::TryStreamExt;
use serde::Deserialize;
use serde_json::{json, Value};
use std::sync::Arc;
use utoipa::{IntoParams, OpenApi};

type S = axum::extract::State<Arc<Reports>>;

/// The response header carrying the next export chunk's cursor.
pub const NEXT_CURSOR_HEADER: &str = "x-next-cursor";

pub fn routes() -> Router<Operator> {
    Router::new()
        .route("/campaigns/{id}/stats/recount", post(recount))
        .route("/campaigns/{id}/export.csv", get(export))
        .route("/campaigns/{id}/contacts/{phone}/steps", post(record_step))
        .route("/campaigns/{id}/cost", get(cost))
}

/// Inputs that are the client's to fix name their field with a 400.
fn as_bad_request(e: AppError, fields: &[&str]) -> ApiError {
    match e {
        AppError::Domain(DomainError::Invalid { field, message })
            if fields.contains(&field.as_str()) =>
        {
            ApiError::bad_request(Some(field.clone()), format!("{field}: {message}"))
        }
        other => other.into(),
    }
}

/// Chunking of the export, for API Gateway and Lambda (answers of at most 6 MB and 29 s).
/// Without either parameter the whole export streams in one answer.
#[derive(Debug, Default, Deserialize, IntoParams)]
#[into_params(parameter_in = Query)]
pub struct ExportParams {
    /// `x-next-cursor` of the previous chunk. A chunk after the first has no header row.
    pub cursor: Option<String>,
    /// Rows in this chunk, 1 to 20000 (default 10000 once chunking); anything else is a
    /// 400 naming `limit`.
    #[param(value_type = Option<u32>, minimum = 1, maximum = 20000)]
    pub limit: Option<String>,
}

fn csv_response(body: Body) -> Response {
    let mut r = Response::new(body);
    r.headers_mut().insert(
        header::CONTENT_TYPE,
        HeaderValue::from_static("text/csv; charset=utf-8"),
    );
    r.headers_mut().insert(
        header::CONTENT_DISPOSITION,
        HeaderValue::from_static("attachment; filename=\"campaign-export.csv\""),
    );
    r
}

fn export_example() -> Value {
    json!(format!(
        "{}\n919812345678,Asha,CLOSED,replied:Yes,1,2026-11-22T09:00:02Z,2026-11-22T09:00:05Z,2026-11-22T09:10:00Z,2026-11-22T09:14:00Z,Yes,,,chose_plan@2026-11-22T09:20:00Z;paid@2026-11-22T09:31:12Z\n919812345679,Ravi,FAILED,undeliverable,1,,,,,,Message Undeliverable,Message Undeliverable,\n",
        EXPORT_COLUMNS.join(",")
    ))
}

fn recount_example() -> Value {
    json!({
        "entries": 1200,
        "before": {"target": 1200, "sent": 481, "delivered": 470, "PENDING": 301, "CLOSED": 181, "FRESH": 700, "SENDING": 0, "reason:Message Undeliverable": 18, "FAILED": 18},
        "after": {"target": 1200, "sent": 480, "delivered": 470, "PENDING": 300, "CLOSED": 182, "FRESH": 700, "reason:Message Undeliverable": 18, "FAILED": 18},
        "difference": {"sent": -1, "PENDING": -1, "CLOSED": 1}
    })
}

fn cost_example() -> Value {
    json!({
        "campaign_id": ex::CAMPAIGN_ID,
        "counted_at": "2026-11-22T09:20:00Z",
        "template": {"name": "spring_offer", "language": "en"},
        "category": "MARKETING",
        "currency": "USD",
        "price_table": {
            "source": "Meta, WhatsApp Business Platform pricing rate card, per-message pricing (developers.facebook.com/docs/whatsapp/pricing)",
            "as_of": "2025-07-01",
            "verified": "NO. Illustrative list prices ..."
        },
        "target": {"description": "estimate for the whole audience: every contact in the hopper, as if each message were sent and delivered", "messages": 1200, "cost": 15.4},
        "sent": {"description": "messages sent so far", "messages": 480, "cost": 6.16},
        "delivered": {"description": "messages delivered so far: what Meta bills under per-message pricing", "messages": 470, "cost": 6.053},
        "countries": [
            {"country": "IN", "priced_as": "IN", "price": 0.0107, "target": 1000, "sent": 400, "delivered": 390,
             "cost_target": 10.7, "cost_sent": 4.28, "cost_delivered": 4.173},
            {"country": "FR", "priced_as": "default", "price": 0.0604, "target": 200, "sent": 80, "delivered": 80,
             "cost_target": 12.08, "cost_sent": 4.832, "cost_delivered": 4.832}
        ]
    })
}

#[utoipa::path(
    post, path = "/campaigns/{id}/stats/recount", tag = "campaigns",
    description = "Recounts the campaign's entries page by page and repairs the live counters to \
        equal the recount (R6.2), answering the counters before and after and the difference \
        added. The repair for counters that drifted (a worker dying between storing an entry and \
        its counter change). Refused while the campaign is RUNNING or a reset, retry, expiry \
        or attach walks the hopper, and when counters moved while counting (statuses or \
        replies arriving): pause, recount, resume.\n\nThe request counts for up to 10 s; a \
        campaign too large for that (a few hundred thousand entries) is counted by the sweeper \
        in the background: 202 with the `recount` operation, whose progress and, once DONE, \
        `result` (this answer) `GET /campaigns/{id}/operation` shows; asking again while it \
        runs answers the same operation. A background recount whose counters moved meanwhile, \
        or whose campaign was resumed, ends ABORTED saying so; a reset, retry, expiry or \
        attach replaces it (ask again once it is done); it replaces a running estimate.",
    params(("id" = String, Path, description = "Campaign id", pattern = r"^[A-Za-z0-9_-]{1,128}$")),
    responses(
        (status = 200, description = "Counters before, after, and what was added", body = Recount,
            example = json!(recount_example())),
        (status = 202, description = "Continues in the background: the recount operation, RUNNING", body = OperationView,
            example = json!(ex::operation("recount", "RUNNING", "PAUSED"))),
        (status = 403, description = "Campaigns are disabled for the tenant", body = ErrorBody,
            example = json!(ex::forbidden())),
        (status = 404, description = "No such campaign", body = ErrorBody, example = json!(ex::not_found())),
        (status = 409, description = "The campaign is RUNNING, a walk runs, or the counters moved while counting", body = ErrorBody,
            example = json!({"error": "conflict", "message": "campaign cmp_0193a6f0c2d87b21a1f3e2d4c5b6a7f8 is RUNNING: its counters move with every send; pause it, recount, then resume"})),
    )
)]
async fn recount(State(a): S, t: TenantId, Path(id): Path<CampaignId>) -> R {
    walked(a.recount_stats(&t, &id).await?)
}

/// A report's answer: 200 with it, or 202 with the operation that walks a campaign too
/// large for the request in the background.
fn walked<T: serde::Serialize>(w: Walked<T>) -> R {
    match w {
        Walked::Done(answer) => ok(answer),
        Walked::Continues(op) => super::commands::accepted(op),
    }
}

#[utoipa::path(
    get, path = "/campaigns/{id}/export.csv", tag = "campaigns",
    description = "The campaign's entries as CSV, one row per contact (R6.3): phone, name, status \
        (hopper state), disposition, attempts, sent/delivered/read/replied times (RFC 3339, UTC), \
        reply (its text, or the button), error, reason, and `funnel`: the steps a bot flow \
        reported for the contact, `step@time` joined by `;` in time order. Rows come in shard \
        order, then phone order. Texts that start like a spreadsheet formula (`=`, `+`, `-`, \
        `@`) get a leading `'`.\n\nWithout parameters the whole export streams in one answer, \
        a page of entries at a time (memory stays bounded for a million entries); that is what \
        the local runner serves. Behind API Gateway and Lambda an answer is at most 6 MB and \
        29 s, so there ask for chunks: `?limit=10000` answers the first chunk (with the header \
        row) and its `x-next-cursor` header; pass it as `cursor` for the next chunk (no header \
        row) until an answer comes without `x-next-cursor`.",
    params(("id" = String, Path, description = "Campaign id", pattern = r"^[A-Za-z0-9_-]{1,128}$"), ExportParams),
    responses(
        (status = 200, description = "CSV rows (the whole export, or one chunk)", body = String, content_type = "text/csv",
            headers(("x-next-cursor" = String, description = "Chunked answers only: the cursor of the next chunk; absent after the last")),
            example = json!(export_example())),
        (status = 400, description = "`limit` outside 1..=20000 or a `cursor` this export did not return; `field` names it", body = ErrorBody,
            example = json!({"error": "bad_request", "message": "limit: must be a whole number from 1 to 20000", "field": "limit"})),
        (status = 403, description = "Campaigns are disabled for the tenant", body = ErrorBody,
            example = json!(ex::forbidden())),
        (status = 404, description = "No such campaign", body = ErrorBody, example = json!(ex::not_found())),
    )
)]
async fn export(
    State(a): S,
    t: TenantId,
    Path(id): Path<CampaignId>,
    Query(p): Query<ExportParams>,
) -> R {
    if p.cursor.is_none() && p.limit.is_none() {
        let c = a.export_campaign(&t, &id).await?;
        let stream = export_stream(a.table.clone(), c).inspect_err(|e| {
            tracing::error!(error = %e, "export stream cut short");
        });
        return Ok(csv_response(Body::from_stream(stream)));
    }
    let limit = match p.limit.as_deref().map(str::trim) {
        None => None,
        Some(l) => Some(l.parse::<u32>().map_err(|_| {
            ApiError::bad_request(
                Some("limit".into()),
                format!("limit: must be a whole number from 1 to {MAX_CHUNK_ROWS}"),
            )
        })?),
    };
    let (body, next) = a
        .export_chunk(&t, &id, p.cursor.as_deref(), limit)
        .await
        .map_err(|e| as_bad_request(e, &["limit", "cursor"]))?;
    let mut r = csv_response(Body::from(body));
    if let Some(n) = next.and_then(|n| HeaderValue::from_str(&n).ok()) {
        r.headers_mut().insert(NEXT_CURSOR_HEADER, n);
    }
    Ok(r)
}

#[utoipa::path(
    post, path = "/campaigns/{id}/contacts/{phone}/steps", tag = "campaigns",
    description = "Records a funnel step a bot flow reached with a contact of the campaign \
        (R6.3), e.g. `chose_plan`, at `at` (now when absent). The same step at the same instant \
        is recorded once: 201 the first time, 200 after. The steps show in the CSV export's \
        `funnel` column.",
    params(
        ("id" = String, Path, description = "Campaign id", pattern = r"^[A-Za-z0-9_-]{1,128}$"),
        ("phone" = String, Path, description = "The contact's phone (digits, as in the hopper)"),
    ),
    request_body(content = StepRequest, example = json!({"step": "chose_plan", "at": "2026-11-22T09:20:00Z"})),
    responses(
        (status = 201, description = "Recorded", body = StepRecorded,
            example = json!({"phone": "919812345678", "step": "chose_plan", "at": "2026-11-22T09:20:00Z", "recorded": true})),
        (status = 200, description = "Already recorded (same step, same instant)", body = StepRecorded,
            example = json!({"phone": "919812345678", "step": "chose_plan", "at": "2026-11-22T09:20:00Z", "recorded": false})),
        (status = 400, description = "`step` empty, longer than 64 characters or with `;` or control characters, or a malformed body; `field` names it", body = ErrorBody,
            example = json!({"error": "bad_request", "message": "step: must not be empty", "field": "step"})),
        (status = 403, description = "Campaigns are disabled for the tenant", body = ErrorBody,
            example = json!(ex::forbidden())),
        (status = 404, description = "No such campaign, or the contact is not in its hopper", body = ErrorBody,
            example = json!({"error": "not_found", "message": "contact in the campaign's hopper '919812345670' not found"})),
    )
)]
async fn record_step(
    State(a): S,
    t: TenantId,
    Path((id, phone)): Path<(CampaignId, String)>,
    JsonBody(b): JsonBody<StepRequest>,
) -> R {
    let s = a
        .record_step(&t, &id, &phone, b)
        .await
        .map_err(|e| as_bad_request(e, &["step"]))?;
    if s.recorded {
        created(s)
    } else {
        Ok((StatusCode::OK, axum::Json(s)).into_response())
    }
}

#[utoipa::path(
    get, path = "/campaigns/{id}/cost", tag = "campaigns",
    description = "Estimated cost of the campaign (R6.4): each entry's number priced by its \
        country (libphonenumber's region; countries without a row, and numbers no country \
        claims, at the `default` row) for the template's category, from the price table kept \
        in `shared/data/whatsapp_prices.csv` (its source, date and what was verified are in the \
        answer). Three bases: `target` (the whole audience), `sent` (sent so far) and \
        `delivered` (delivered so far: what Meta bills per message). Volume tiers, free \
        utility templates inside a customer-service window and local-currency billing are not \
        modelled.\n\nThe request reads the hopper for up to 10 s; a campaign too large for \
        that is priced by the sweeper in the background: 202 with the `estimate` operation \
        (`GET /campaigns/{id}/operation` shows its progress). Asking again while it runs \
        answers the same operation; once it is DONE, and for 10 minutes after, this route \
        answers 200 with its estimate (`counted_at` says when the entries were read). A \
        reset, retry, expiry, attach or recount replaces a running estimate; one of them \
        running refuses a new estimate of a large campaign with 409.",
    params(("id" = String, Path, description = "Campaign id", pattern = r"^[A-Za-z0-9_-]{1,128}$")),
    responses(
        (status = 200, description = "The estimate by basis and by country", body = CostEstimate,
            example = json!(cost_example())),
        (status = 202, description = "Continues in the background: the estimate operation, RUNNING", body = OperationView,
            example = json!(ex::operation("estimate", "RUNNING", "RUNNING"))),
        (status = 403, description = "Campaigns are disabled for the tenant", body = ErrorBody,
            example = json!(ex::forbidden())),
        (status = 404, description = "No such campaign", body = ErrorBody, example = json!(ex::not_found())),
        (status = 409, description = "No template yet, its template is gone, not a WhatsApp campaign, or a large campaign whose hopper another operation is walking", body = ErrorBody,
            example = json!({"error": "conflict", "message": "campaign cmp_0193a6f0c2d87b21a1f3e2d4c5b6a7f8 has no template and account yet; the cost comes from the template's category"})),
    )
)]
async fn cost(State(a): S, t: TenantId, Path(id): Path<CampaignId>) -> R {
    walked(a.cost_estimate(&t, &id).await?)
}

/// The OpenAPI description of the report routes; `openapi::document` merges it.
#[derive(OpenApi)]
#[openapi(
    paths(recount, export, record_step, cost),
    components(schemas(
        Recount,
        StepRequest,
        StepRecorded,
        CostEstimate,
        BasisCost,
        CountryCost,
        PriceTableInfo,
        PriceCategory,
        TemplateRef
    ))
)]
pub struct ReportsApi;
