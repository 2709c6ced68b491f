//! The operator API (R8.1): JSON over HTTP, one route per use case. Campaign and tenant
//! routes live here with their OpenAPI description ([`CampaignsApi`]); accounts and
//! templates in `templates`, contacts, lists and audiences in `audience`.

use super::error::{ApiError, ErrorBody, JsonBody};
use super::examples as ex;
use super::respond::{created, ok, R};
use super::{Administrator, Path, Query, TenantId};
use crate::app::campaigns::{CampaignFilter, CampaignView, Campaigns, Progress};
use crate::app::Operator;
use crate::domain::campaign::{
    CallingHours, Campaign, CampaignPatch, CampaignStatus, Channel, NewCampaign, Pacing,
    PacingUnit, SmsFallbackSettings, TemplateRef,
};
use crate::domain::hopper::EntryState;
use crate::domain::ids::CampaignId;
use crate::domain::stats::{HopperCounts, Stats};
use crate::domain::tenant::{Tenant, TenantSettings, TenantSwitches};
use crate::domain::DomainError;
use axum::extract::State;
use axum::http::StatusCode;
use axum::response::IntoResponse;
use axum::routing::{get, post};
use axum::{Json, Router};
use serde::{Deserialize, Serialize};
use std::sync::Arc;
use utoipa::{IntoParams, OpenApi, ToSchema};

type S = axum::extract::State<Arc<Campaigns>>;

/// The campaign and tenant routes (the whole operator API is assembled in `operator`).
pub fn routes() -> Router<Operator> {
    Router::new()
        .route("/campaigns", post(create_campaign).get(list_campaigns))
        .route(
            "/campaigns/{id}",
            get(get_campaign)
                .patch(edit_campaign)
                .delete(delete_campaign),
        )
        .route("/campaigns/{id}/launch", post(launch))
        .route("/campaigns/{id}/unschedule", post(unschedule))
        .route("/campaigns/{id}/pause", post(pause))
        .route("/campaigns/{id}/resume", post(resume))
        .route("/campaigns/{id}/cancel", post(cancel))
        .route("/campaigns/{id}/test", post(test_campaign))
        .route("/campaigns/{id}/tests", get(list_tests))
        .route("/campaigns/{id}/hopper", get(hopper))
        .route("/campaigns/{id}/stats", get(stats))
        .route("/tenant", get(get_tenant).put(put_tenant))
        .route(
            "/admin/tenants/{tenant_id}",
            get(admin_get_tenant).put(admin_switch_tenant),
        )
}

/// A page of campaigns.
#[derive(Debug, Serialize, ToSchema)]
pub struct CampaignList {
    pub items: Vec<CampaignView>,
    /// Pass as `cursor` for the next page; absent on the last page.
    pub next_cursor: Option<String>,
}

/// The test campaigns of a campaign.
#[derive(Debug, Serialize, ToSchema)]
pub struct TestCampaignList {
    pub items: Vec<CampaignView>,
}

/// What `DELETE /campaigns/{id}` answers: the campaign is gone for every reader and
/// removed in the background.
#[derive(Debug, Serialize, ToSchema)]
pub struct Deleting {
    pub id: String,
    /// Always `DELETING`.
    pub status: CampaignStatus,
}

/// `POST /campaigns/{id}/test`.
#[derive(Debug, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct TestRequest {
    /// 1 to 10 phone numbers; each must be an existing contact.
    pub phones: Vec<String>,
}

/// Filters and paging of `GET /campaigns` (R1.7).
#[derive(Debug, Default, Deserialize, IntoParams)]
#[into_params(parameter_in = Query)]
pub struct ListParams {
    /// Only these statuses (comma-separated, e.g. `RUNNING,PAUSED`): DRAFT, READY,
    /// SCHEDULED, RUNNING, PAUSED, COMPLETED or CANCELLED; another word is a 422 naming
    /// `status`. CANCELLED ones show only when asked for here or with `include_cancelled`.
    pub status: Option<String>,
    /// Only campaigns of this channel; another value is a 422 naming `channel`.
    #[param(value_type = Option<Channel>)]
    pub channel: Option<String>,
    /// Only campaigns of this provider account.
    pub account_id: Option<String>,
    /// Case-insensitive part of the name.
    pub name: Option<String>,
    /// Show CANCELLED campaigns too (default false).
    pub include_cancelled: Option<bool>,
    /// Show test campaigns too (default false).
    pub include_tests: Option<bool>,
    /// Page size, 1 to 100 (default 50); anything else is a 400 naming `limit`.
    #[param(value_type = Option<u32>, minimum = 1, maximum = 100)]
    pub limit: Option<String>,
    /// `next_cursor` of the previous page (a campaign id); anything else is a 422 naming
    /// `cursor`. An empty one is the same as none (the first page).
    pub cursor: Option<String>,
}

impl ListParams {
    fn filter(&self) -> Result<CampaignFilter, DomainError> {
        let statuses = match &self.status {
            None => Vec::new(),
            Some(s) => s
                .split(',')
                .filter(|p| !p.trim().is_empty())
                .map(|p| {
                    CampaignStatus::parse_visible(p).ok_or_else(|| {
                        DomainError::invalid(
                            "status",
                            format!("unknown status '{}': use DRAFT, READY, SCHEDULED, RUNNING, PAUSED, COMPLETED or CANCELLED", p.trim()),
                        )
                    })
                })
                .collect::<Result<_, _>>()?,
        };
        let channel = match &self.channel {
            None => None,
            Some(c) => Some(Channel::parse(c).ok_or_else(|| {
                DomainError::invalid(
                    "channel",
                    format!("unknown channel '{c}': use whatsapp, sms or voice"),
                )
            })?),
        };
        let text = |v: &Option<String>| {
            v.as_ref()
                .map(|s| s.trim().to_owned())
                .filter(|s| !s.is_empty())
        };
        Ok(CampaignFilter {
            statuses,
            channel,
            account_id: text(&self.account_id),
            name: text(&self.name),
            include_cancelled: self.include_cancelled.unwrap_or(false),
            include_tests: self.include_tests.unwrap_or(false),
        })
    }
}

/// A campaigns cursor is the id of the last campaign of the previous page (`cmp_` and 32
/// hex digits, as `domain::new_id` makes them); anything else is refused like a cursor the
/// store cannot read (422 naming `cursor`), rather than answered with an empty page.
fn check_campaign_cursor(cursor: &str) -> Result<(), DomainError> {
    let id = cursor.strip_prefix("cmp_").unwrap_or_default();
    if id.len() == 32 && id.bytes().all(|b| b.is_ascii_hexdigit()) {
        Ok(())
    } else {
        Err(DomainError::invalid(
            "cursor",
            "is not a cursor this listing returned",
        ))
    }
}

#[utoipa::path(
    post, path = "/campaigns", tag = "campaigns",
    description = "Creates a campaign. Only `name` is required: without an account and a template \
        (or an SMS message) it is DRAFT, otherwise READY. Pacing is `rate` (messages/s) or `pacing` \
        (messages per second, contacts per hour, or a minimum interval between sends), never both \
        (422 naming `pacing`).",
    request_body(content = NewCampaign, example = json!(ex::new_campaign())),
    responses(
        (status = 201, description = "The campaign, DRAFT or READY", body = CampaignView,
            example = json!(ex::campaign_view("READY"))),
        (status = 400, description = "Malformed JSON; `field` names the path", body = ErrorBody,
            example = json!({"error": "bad_request", "message": "invalid JSON body: invalid type: integer `5`, expected a string", "field": "name"})),
        (status = 403, description = "Campaigns are disabled for the tenant", body = ErrorBody,
            example = json!(ex::forbidden())),
        (status = 422, description = "A setting breaks a rule; `field` names it", body = ErrorBody,
            example = json!({"error": "invalid", "message": "duplicate_window_days: must be between 1 and 7 days (leave it out for no duplicate check)", "field": "duplicate_window_days"})),
    )
)]
async fn create_campaign(State(a): S, t: TenantId, JsonBody(b): JsonBody<NewCampaign>) -> R {
    created(a.create_campaign(&t, b).await?)
}

#[utoipa::path(
    get, path = "/campaigns", tag = "campaigns",
    description = "Lists the tenant's campaigns, oldest first, with progress (sent of target). \
        CANCELLED and test campaigns are hidden unless asked for. Filtered pages are still full: \
        the listing reads on until it has `limit` campaigns or the campaigns end.",
    params(ListParams),
    responses(
        (status = 200, description = "A page of campaigns", body = CampaignList,
            example = json!({"items": [ex::campaign_view("RUNNING")], "next_cursor": "cmp_0193a6f0c2d87b21a1f3e2d4c5b6a7f8"})),
        (status = 422, description = "Unknown status or channel, or a cursor this listing did not return; `field` names it", body = ErrorBody,
            example = json!({"error": "invalid", "message": "status: unknown status 'DONE': use DRAFT, READY, SCHEDULED, RUNNING, PAUSED, COMPLETED or CANCELLED", "field": "status"})),
    )
)]
async fn list_campaigns(State(a): S, t: TenantId, Query(p): Query<ListParams>) -> R {
    let filter = p.filter()?;
    let limit = super::page_limit(p.limit.as_deref(), 50, 100)?;
    if let Some(c) = &p.cursor {
        check_campaign_cursor(c)?;
    }
    let (items, next) = a.list_campaigns(&t, &filter, limit, p.cursor).await?;
    ok(CampaignList {
        items,
        next_cursor: next,
    })
}

#[utoipa::path(
    get, path = "/campaigns/{id}", tag = "campaigns",
    params(("id" = String, Path, description = "Campaign id", pattern = r"^[A-Za-z0-9_-]{1,128}$")),
    responses(
        (status = 200, description = "The campaign with its progress", body = CampaignView,
            example = json!(ex::campaign_view("RUNNING"))),
        (status = 404, description = "No such campaign (or it is being deleted)", body = ErrorBody,
            example = json!(ex::not_found())),
    )
)]
async fn get_campaign(State(a): S, t: TenantId, Path(id): Path<CampaignId>) -> R {
    ok(a.get_campaign(&t, &id).await?)
}

#[utoipa::path(
    patch, path = "/campaigns/{id}", tag = "campaigns",
    description = "Edits settings; fields left out keep their value, `null` clears an optional one. \
        Only DRAFT, READY, SCHEDULED and PAUSED campaigns can be edited (R1.4): a RUNNING campaign's \
        template, account and variables are frozen (pause it first; adding contacts stays possible). \
        A PAUSED campaign may change its template, e.g. after its template was paused by Meta. The \
        channel changes only before launch. A new future `start_at` on a SCHEDULED campaign moves its \
        schedule. `version`, when given, must be the version read, else 409.",
    params(("id" = String, Path, description = "Campaign id", pattern = r"^[A-Za-z0-9_-]{1,128}$")),
    request_body(content = CampaignPatch, example = json!({"pacing": {"unit": "contacts_per_hour", "value": 600}, "calling_hours": {"start": "09:00", "end": "20:00", "timezone": "Asia/Kolkata"}, "version": 3})),
    responses(
        (status = 200, description = "The edited campaign", body = CampaignView,
            example = json!(ex::campaign_view("PAUSED"))),
        (status = 404, description = "No such campaign", body = ErrorBody, example = json!(ex::not_found())),
        (status = 409, description = "Not editable in its state, or changed since read", body = ErrorBody,
            example = json!({"error": "conflict", "message": "cannot change the template, account or variables of campaign cmp_0193a6f0c2d87b21a1f3e2d4c5b6a7f8 while it is RUNNING: pause it first"})),
        (status = 422, description = "A setting breaks a rule", body = ErrorBody,
            example = json!({"error": "invalid", "message": "end_at: must be after start_at", "field": "end_at"})),
    )
)]
async fn edit_campaign(
    State(a): S,
    t: TenantId,
    Path(id): Path<CampaignId>,
    JsonBody(b): JsonBody<CampaignPatch>,
) -> R {
    ok(a.edit_campaign(&t, &id, b).await?)
}

#[utoipa::path(
    delete, path = "/campaigns/{id}", tag = "campaigns",
    description = "Deletes the campaign and everything under it: hopper entries, counters, cursors, \
        sequence, its test campaigns, the interactions it owns and its schedule (R1.5). It is gone for \
        every reader at once; the sweeper removes the items in bounded chunks in the background. \
        Not undoable (cancel keeps the campaign instead).",
    params(("id" = String, Path, description = "Campaign id", pattern = r"^[A-Za-z0-9_-]{1,128}$")),
    responses(
        (status = 202, description = "Deletion accepted", body = Deleting,
            example = json!({"id": "cmp_0193a6f0c2d87b21a1f3e2d4c5b6a7f8", "status": "DELETING"})),
        (status = 404, description = "No such campaign", body = ErrorBody, example = json!(ex::not_found())),
    )
)]
async fn delete_campaign(State(a): S, t: TenantId, Path(id): Path<CampaignId>) -> R {
    let c = a.delete_campaign(&t, &id).await?;
    Ok((
        StatusCode::ACCEPTED,
        Json(Deleting {
            id: c.id,
            status: c.status,
        }),
    )
        .into_response())
}

#[utoipa::path(
    post, path = "/campaigns/{id}/launch", tag = "campaigns",
    description = "READY -> RUNNING, or SCHEDULED when `start_at` is in the future (a one-time \
        EventBridge schedule starts it). Needs contacts in the hopper; whatsapp and sms campaigns launch, voice campaigns cannot yet.",
    params(("id" = String, Path, description = "Campaign id", pattern = r"^[A-Za-z0-9_-]{1,128}$")),
    responses(
        (status = 200, description = "RUNNING or SCHEDULED", body = CampaignView,
            example = json!(ex::campaign_view("SCHEDULED"))),
        (status = 404, description = "No such campaign", body = ErrorBody, example = json!(ex::not_found())),
        (status = 409, description = "Not launchable: DRAFT, no contacts (and no attach running), wrong state or channel", body = ErrorBody,
            example = json!({"error": "conflict", "message": "cannot launch campaign cmp_0193a6f0c2d87b21a1f3e2d4c5b6a7f8 while it is DRAFT: missing template"})),
    )
)]
async fn launch(State(a): S, t: TenantId, Path(id): Path<CampaignId>) -> R {
    ok(a.launch(&t, &id).await?)
}

#[utoipa::path(
    post, path = "/campaigns/{id}/unschedule", tag = "campaigns",
    description = "SCHEDULED -> READY: the start-date schedule is deleted; the start date stays.",
    params(("id" = String, Path, description = "Campaign id", pattern = r"^[A-Za-z0-9_-]{1,128}$")),
    responses(
        (status = 200, description = "READY again", body = CampaignView, example = json!(ex::campaign_view("READY"))),
        (status = 404, description = "No such campaign", body = ErrorBody, example = json!(ex::not_found())),
        (status = 409, description = "Not SCHEDULED", body = ErrorBody, example = json!(ex::conflict("unschedule", "RUNNING"))),
    )
)]
async fn unschedule(State(a): S, t: TenantId, Path(id): Path<CampaignId>) -> R {
    ok(a.unschedule(&t, &id).await?)
}

#[utoipa::path(
    post, path = "/campaigns/{id}/pause", tag = "campaigns",
    description = "RUNNING -> PAUSED: nothing new goes out.",
    params(("id" = String, Path, description = "Campaign id", pattern = r"^[A-Za-z0-9_-]{1,128}$")),
    responses(
        (status = 200, description = "PAUSED", body = CampaignView, example = json!(ex::campaign_view("PAUSED"))),
        (status = 404, description = "No such campaign", body = ErrorBody, example = json!(ex::not_found())),
        (status = 409, description = "Not RUNNING", body = ErrorBody, example = json!(ex::conflict("pause", "READY"))),
    )
)]
async fn pause(State(a): S, t: TenantId, Path(id): Path<CampaignId>) -> R {
    ok(a.pause(&t, &id).await?)
}

#[utoipa::path(
    post, path = "/campaigns/{id}/resume", tag = "campaigns",
    description = "PAUSED -> RUNNING, continuing where it stopped.",
    params(("id" = String, Path, description = "Campaign id", pattern = r"^[A-Za-z0-9_-]{1,128}$")),
    responses(
        (status = 200, description = "RUNNING", body = CampaignView, example = json!(ex::campaign_view("RUNNING"))),
        (status = 404, description = "No such campaign", body = ErrorBody, example = json!(ex::not_found())),
        (status = 409, description = "Not PAUSED, or its end date passed", body = ErrorBody, example = json!(ex::conflict("resume", "RUNNING"))),
    )
)]
async fn resume(State(a): S, t: TenantId, Path(id): Path<CampaignId>) -> R {
    ok(a.resume(&t, &id).await?)
}

#[utoipa::path(
    post, path = "/campaigns/{id}/cancel", tag = "campaigns",
    description = "Any state but COMPLETED and CANCELLED -> CANCELLED (R1.5). The campaign is kept but \
        hidden from default listings (`?status=CANCELLED` or `?include_cancelled=true` shows it); nothing \
        more is sent and its schedule is deleted. Not undoable.",
    params(("id" = String, Path, description = "Campaign id", pattern = r"^[A-Za-z0-9_-]{1,128}$")),
    responses(
        (status = 200, description = "CANCELLED", body = CampaignView, example = json!(ex::campaign_view("CANCELLED"))),
        (status = 404, description = "No such campaign", body = ErrorBody, example = json!(ex::not_found())),
        (status = 409, description = "Already COMPLETED or CANCELLED", body = ErrorBody, example = json!(ex::conflict("cancel", "COMPLETED"))),
    )
)]
async fn cancel(State(a): S, t: TenantId, Path(id): Path<CampaignId>) -> R {
    ok(a.cancel(&t, &id).await?)
}

#[utoipa::path(
    post, path = "/campaigns/{id}/test", tag = "campaigns",
    description = "Test send (R1.6): creates a test campaign with the same settings and template, \
        flagged `test_of`, whose hopper holds the given contacts, and launches it at once. Its \
        statistics are its own and never mix with the campaign's; it is hidden from default listings.",
    params(("id" = String, Path, description = "Campaign id", pattern = r"^[A-Za-z0-9_-]{1,128}$")),
    request_body(content = TestRequest, example = json!({"phones": ["+91 98123 45678", "919812345679"]})),
    responses(
        (status = 201, description = "The RUNNING test campaign", body = CampaignView,
            example = json!(ex::test_view())),
        (status = 404, description = "No such campaign", body = ErrorBody, example = json!(ex::not_found())),
        (status = 409, description = "The campaign is incomplete, a test itself, or on a channel that cannot send", body = ErrorBody,
            example = json!({"error": "conflict", "message": "cannot test campaign cmp_0193a6f0c2d87b21a1f3e2d4c5b6a7f8: missing template"})),
        (status = 422, description = "A phone is malformed or names no contact: `field` is `phones[i]`", body = ErrorBody,
            example = json!({"error": "invalid", "message": "phones[1]: no contact has this phone; create it first", "field": "phones[1]"})),
    )
)]
async fn test_campaign(
    State(a): S,
    t: TenantId,
    Path(id): Path<CampaignId>,
    JsonBody(b): JsonBody<TestRequest>,
) -> R {
    created(a.test_campaign(&t, &id, b.phones).await?)
}

#[utoipa::path(
    get, path = "/campaigns/{id}/tests", tag = "campaigns",
    params(("id" = String, Path, description = "Campaign id", pattern = r"^[A-Za-z0-9_-]{1,128}$")),
    responses(
        (status = 200, description = "The campaign's test campaigns, oldest first", body = TestCampaignList,
            example = json!({"items": [ex::test_view()]})),
        (status = 404, description = "No such campaign", body = ErrorBody, example = json!(ex::not_found())),
    )
)]
async fn list_tests(State(a): S, t: TenantId, Path(id): Path<CampaignId>) -> R {
    ok(TestCampaignList {
        items: a.tests(&t, &id).await?,
    })
}

#[utoipa::path(
    get, path = "/campaigns/{id}/hopper", tag = "campaigns",
    params(("id" = String, Path, description = "Campaign id", pattern = r"^[A-Za-z0-9_-]{1,128}$")),
    responses(
        (status = 200, description = "Entries per state plus the total (R4.1)", body = HopperCounts,
            example = json!({"total": 10, "states": {"FRESH": 4, "SENDING": 0, "RETRY": 1, "PENDING": 3, "CLOSED": 2, "FAILED": 0, "BLOCK_LIST": 0, "SKIPPED": 0}})),
        (status = 404, description = "No such campaign", body = ErrorBody, example = json!(ex::not_found())),
    )
)]
async fn hopper(State(a): S, t: TenantId, Path(id): Path<CampaignId>) -> R {
    ok(a.hopper(&t, &id).await?)
}

#[utoipa::path(
    get, path = "/campaigns/{id}/stats", tag = "campaigns",
    params(("id" = String, Path, description = "Campaign id", pattern = r"^[A-Za-z0-9_-]{1,128}$")),
    responses(
        (status = 200, description = "Live statistics (R6.2): funnel counts, not sent by reason (summing to `not_sent`), and received of sent, read of received, replied of received in percent", body = Stats,
            example = json!({"target": 10, "sent": 8, "delivered": 7, "read": 5, "replied": 2, "agent_requested": 1, "failed": 1, "no_response": 3, "retry": 0, "marketing_limit_held": 0, "open": 2, "not_sent": 2, "not_sent_by_reason": {"Message Undeliverable": 1, "block list": 1}, "delivered_pct": 87.5, "read_pct": 71.4, "replied_pct": 28.6})),
        (status = 404, description = "No such campaign", body = ErrorBody, example = json!(ex::not_found())),
    )
)]
async fn stats(State(a): S, t: TenantId, Path(id): Path<CampaignId>) -> R {
    ok(a.stats(&t, &id).await?)
}

#[utoipa::path(
    get, path = "/tenant", tag = "tenant",
    description = "The caller's tenant settings (defaults when none were stored).",
    responses(
        (status = 200, description = "The tenant", body = Tenant, example = json!(ex::tenant(true))),
        (status = 401, description = "No tenant in the credentials", body = ErrorBody,
            example = json!({"error": "unauthorized", "message": "no tenant in the request's credentials"})),
    )
)]
async fn get_tenant(State(a): S, t: TenantId) -> R {
    ok(a.get_tenant(&t).await?)
}

#[utoipa::path(
    put, path = "/tenant", tag = "tenant",
    description = "Changes the caller's tenant settings; fields left out keep their value. \
        `campaigns_enabled` is the platform administrator's to set (PUT \
        /admin/tenants/{tenant_id}): sent here it answers 403 naming the field (R1.8).",
    request_body(content = TenantSettings, example = json!({"timezone": "Asia/Kolkata"})),
    responses(
        (status = 200, description = "The tenant", body = Tenant, example = json!(ex::tenant(true))),
        (status = 403, description = "`campaigns_enabled` is set by the platform's administrator only", body = ErrorBody,
            example = json!({"error": "forbidden", "message": "campaigns_enabled: set by the platform's administrator only (PUT /admin/tenants/{tenant_id})", "field": "campaigns_enabled"})),
        (status = 422, description = "Unknown time zone", body = ErrorBody,
            example = json!({"error": "invalid", "message": "timezone: 'Mars/Olympus' is not an IANA time zone (e.g. Europe/Madrid, Asia/Kolkata, UTC)", "field": "timezone"})),
    )
)]
async fn put_tenant(State(a): S, t: TenantId, b: Result<JsonBody<TenantSettings>, ApiError>) -> R {
    let JsonBody(b) = b.map_err(|e| match e.field.as_deref() {
        // The tenant's own credentials cannot switch its campaigns back on (R1.8).
        Some("campaigns_enabled") => ApiError {
            status: StatusCode::FORBIDDEN,
            kind: "forbidden",
            message: "campaigns_enabled: set by the platform's administrator only \
                (PUT /admin/tenants/{tenant_id})"
                .into(),
            field: e.field,
        },
        _ => e,
    })?;
    ok(a.put_tenant(&t, b).await?)
}

#[utoipa::path(
    get, path = "/admin/tenants/{tenant_id}", tag = "admin",
    description = "A tenant's settings, for the platform's administrator (in AWS the JWT must \
        carry the ADMIN_SCOPE scope; locally the `x-admin: true` header).",
    params(("tenant_id" = String, Path, description = "The tenant, as its users' credentials name it", pattern = r"^[A-Za-z0-9_-]{1,64}$")),
    security(("admin_header" = []), ("jwt" = ["campaigns/admin"])),
    responses(
        (status = 200, description = "The tenant (defaults when none were stored)", body = Tenant, example = json!(ex::tenant(true))),
        (status = 403, description = "Not the administrator's credentials", body = ErrorBody,
            example = json!({"error": "forbidden", "message": "only the platform's administrator may use /admin routes"})),
        (status = 404, description = "Not a tenant id", body = ErrorBody),
    )
)]
async fn admin_get_tenant(State(a): S, _: Administrator, Path(tenant): Path<TenantId>) -> R {
    ok(a.get_tenant(&tenant).await?)
}

#[utoipa::path(
    put, path = "/admin/tenants/{tenant_id}", tag = "admin",
    description = "Turns a tenant's campaigns on or off (R1.8: an administrator enables \
        campaigns for the tenant). Off, every /campaigns route of the tenant answers 403; \
        running campaigns are not paused. Only the platform's administrator: in AWS the JWT \
        must carry the ADMIN_SCOPE scope, locally the `x-admin: true` header.",
    params(("tenant_id" = String, Path, description = "The tenant, as its users' credentials name it", pattern = r"^[A-Za-z0-9_-]{1,64}$")),
    security(("admin_header" = []), ("jwt" = ["campaigns/admin"])),
    request_body(content = TenantSwitches, example = json!({"campaigns_enabled": false})),
    responses(
        (status = 200, description = "The tenant", body = Tenant, example = json!(ex::tenant(false))),
        (status = 403, description = "Not the administrator's credentials", body = ErrorBody,
            example = json!({"error": "forbidden", "message": "only the platform's administrator may use /admin routes"})),
        (status = 404, description = "Not a tenant id", body = ErrorBody),
    )
)]
async fn admin_switch_tenant(
    State(a): S,
    _: Administrator,
    Path(tenant): Path<TenantId>,
    JsonBody(b): JsonBody<TenantSwitches>,
) -> R {
    ok(a.switch_tenant(&tenant, b).await?)
}

/// The OpenAPI description of the campaign and tenant routes; `openapi::document` merges
/// it with the other routers' descriptions.
#[derive(OpenApi)]
#[openapi(
    paths(
        create_campaign,
        list_campaigns,
        get_campaign,
        edit_campaign,
        delete_campaign,
        launch,
        unschedule,
        pause,
        resume,
        cancel,
        test_campaign,
        list_tests,
        hopper,
        stats,
        get_tenant,
        put_tenant,
        admin_get_tenant,
        admin_switch_tenant,
    ),
    components(schemas(
        Campaign,
        CampaignView,
        CampaignList,
        Progress,
        NewCampaign,
        CampaignPatch,
        CampaignStatus,
        Channel,
        SmsFallbackSettings,
        TemplateRef,
        Pacing,
        PacingUnit,
        CallingHours,
        TestRequest,
        TestCampaignList,
        Deleting,
        HopperCounts,
        EntryState,
        Stats,
        Tenant,
        TenantSettings,
        TenantSwitches,
        ErrorBody,
    )),
    tags(
        (name = "campaigns", description = "Campaigns: settings, lifecycle, tests, progress (R1)"),
        (name = "tenant", description = "The caller's tenant (R1.8)"),
        (name = "admin", description = "The platform administrator's operations on tenants (R1.8); never reachable with a tenant's credentials"),
    )
)]
pub struct CampaignsApi;
