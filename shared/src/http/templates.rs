//! Routes for provider accounts and templates (R3, R7.2), and their OpenAPI description
//! ([`TemplatesApi`]).
//!
//! [`routes`] runs on the operator API's state ([`Templates`]); [`sync_router`] serves the
//! synchronisation from the provider on its own state ([`TemplateSync`]), for the
//! composition root to merge next to the API.

use super::error::{json_object, ApiError, ErrorBody, JsonBody};
use super::respond::{created, ok, R};
use super::{Path, Query, TenantId};
use crate::app::templates::Templates;
use crate::app::templates::{
    AccountView, SkippedTemplate, SyncError, SyncReport, SyncRequest, TemplateSync, TemplateView,
};
use crate::app::Operator;
use crate::domain::account::{Account, NewAccount, Provider};
use crate::domain::ids::AccountId;
use crate::domain::portfolio::{Portfolio, PortfolioLimit};
use crate::domain::template::{
    CallToAction, Category, MediaHeader, MediaKind, NewTemplate, Quality, Template, TemplateEdit,
    TemplateKey, TemplateStatus, VariableSource,
};
use axum::extract::State;
use axum::http::StatusCode;
use axum::response::IntoResponse;
use axum::routing::{get, post, put};
use axum::Router;
use serde::{Deserialize, Serialize};
use serde_json::json;
use std::sync::Arc;
use utoipa::{IntoParams, OpenApi, ToSchema};

type S = axum::extract::State<Arc<Templates>>;

pub fn routes() -> Router<Operator> {
    Router::new()
        .route("/accounts", post(create_account).get(list_accounts))
        .route("/accounts/{id}", get(get_account))
        .route("/portfolios/{id}", get(get_portfolio).put(set_portfolio))
        .route(
            "/accounts/{id}/recontact-template",
            put(set_recontact_template),
        )
        .route("/templates", post(create_template).get(list_templates))
        .route(
            "/templates/{account_id}/{name}/{language}",
            get(get_template).put(edit_template).delete(delete_template),
        )
}

/// `POST /accounts/{id}/templates/sync`, on its own state (it needs the provider).
pub fn sync_router(sync: Arc<TemplateSync>) -> Router {
    Router::new()
        .route("/accounts/{id}/templates/sync", post(sync_templates))
        .with_state(sync)
}

/// `{"items": [...]}` of accounts.
#[derive(Debug, Serialize, ToSchema)]
pub struct AccountList {
    pub items: Vec<AccountView>,
}

/// `{"items": [...]}` of templates.
#[derive(Debug, Serialize, ToSchema)]
pub struct TemplateList {
    pub items: Vec<TemplateView>,
}

#[derive(Debug, Deserialize, IntoParams)]
#[into_params(parameter_in = Query)]
pub struct TemplateFilter {
    /// Only this account's templates.
    pub account_id: Option<String>,
}

#[utoipa::path(
    post, path = "/accounts", tag = "accounts",
    request_body(content = NewAccount, example = json!({
        "name": "Main", "sender_id": "106540352242922",
        "token_ref": "secretsmanager:campaigns/acme/meta-token", "waba_id": "102290129340398"})),
    responses(
        (status = 201, description = "The account", body = AccountView),
        (status = 409, description = "Another tenant's account already sends from this `sender_id`", body = ErrorBody,
            example = json!({"error": "conflict", "message": "sender_id 106540352242922 belongs to another tenant's account"})),
        (status = 422, description = "A field breaks a rule", body = ErrorBody,
            example = json!({"error": "invalid", "message": "token_ref: must reference a secret as secretsmanager:NAME, ssm:NAME or env:VAR, not hold it", "field": "token_ref"})),
    )
)]
async fn create_account(State(a): S, t: TenantId, JsonBody(b): JsonBody<NewAccount>) -> R {
    created(a.create_account(&t, b).await?)
}

#[utoipa::path(
    get, path = "/accounts", tag = "accounts",
    responses((status = 200, description = "The tenant's accounts", body = AccountList))
)]
async fn list_accounts(State(a): S, t: TenantId) -> R {
    ok(json!({ "items": a.list_accounts(&t).await? }))
}

#[utoipa::path(
    get, path = "/accounts/{id}", tag = "accounts",
    params(("id" = String, Path, description = "Account id", pattern = r"^[A-Za-z0-9_-]{1,128}$")),
    responses(
        (status = 200, description = "The account with its WABA and recontact template", body = AccountView),
        (status = 404, description = "No such account", body = ErrorBody,
            example = json!({"error": "not_found", "message": "account 'acc_x' not found"})),
    )
)]
async fn get_account(State(a): S, t: TenantId, Path(id): Path<AccountId>) -> R {
    ok(a.get_account(&t, &id).await?)
}

#[utoipa::path(
    get, path = "/portfolios/{id}", tag = "accounts",
    description = "A Meta business portfolio's messaging limit: unique contacts per moving 24 \
        hours, shared by every account naming the portfolio (`portfolio_id`). Read from Meta by \
        a template sync of one of its accounts, or set by hand.",
    params(("id" = String, Path, description = "Meta's business portfolio id", pattern = r"^[0-9]{5,32}$")),
    responses(
        (status = 200, description = "The portfolio's limit", body = Portfolio),
        (status = 404, description = "Not known yet", body = ErrorBody,
            example = json!({"error": "not_found", "message": "portfolio '1204567890123456' not found"})),
    )
)]
async fn get_portfolio(State(a): S, t: TenantId, Path(id): Path<String>) -> R {
    ok(a.get_portfolio(&t, &id).await?)
}

#[utoipa::path(
    put, path = "/portfolios/{id}", tag = "accounts",
    description = "Sets a business portfolio's messaging limit by hand (`null`: unlimited). The \
        next template sync of one of its accounts replaces it with the tier Meta reports.",
    params(("id" = String, Path, description = "Meta's business portfolio id", pattern = r"^[0-9]{5,32}$")),
    request_body(content = PortfolioLimit, example = json!({"messaging_limit": 10000})),
    responses(
        (status = 200, description = "The portfolio's limit as stored", body = Portfolio),
        (status = 400, description = "Malformed JSON, an unknown field, or a limit that is not a whole number from 0 to 4,294,967,295", body = ErrorBody),
        (status = 422, description = "`messaging_limit` left out, 0 or over 1,000,000,000, or an id that is not digits", body = ErrorBody,
            example = json!({"error": "invalid", "field": "messaging_limit", "message": "messaging_limit: must be 1 to 1,000,000,000 contacts per 24 hours (null for no limit)"})),
    )
)]
async fn set_portfolio(
    State(a): S,
    t: TenantId,
    Path(id): Path<String>,
    JsonBody(b): JsonBody<PortfolioLimit>,
) -> R {
    ok(a.set_portfolio(&t, &id, b).await?)
}

#[utoipa::path(
    put, path = "/accounts/{id}/recontact-template", tag = "accounts",
    description = "Flags the template sent when a customer's 24-hour window has closed (R3.5). \
        It must exist for the account and be APPROVED; it replaces the template flagged before.",
    params(("id" = String, Path, description = "Account id", pattern = r"^[A-Za-z0-9_-]{1,128}$")),
    request_body(content = TemplateKey, example = json!({"name": "we_miss_you", "language": "en"})),
    responses(
        (status = 200, description = "The account, showing its recontact template", body = AccountView),
        (status = 404, description = "No such account", body = ErrorBody),
        (status = 409, description = "The template is not APPROVED", body = ErrorBody,
            example = json!({"error": "conflict", "message": "template we_miss_you (en) is PENDING: only an APPROVED template can be the recontact template"})),
        (status = 422, description = "No such template", body = ErrorBody),
    )
)]
async fn set_recontact_template(
    State(a): S,
    t: TenantId,
    Path(id): Path<AccountId>,
    JsonBody(b): JsonBody<TemplateKey>,
) -> R {
    ok(a.set_recontact_template(&t, &id, b).await?)
}

#[utoipa::path(
    post, path = "/templates", tag = "templates",
    description = "Registers a template by hand with the status the provider gave (default APPROVED). \
        The same account, name and language again replace that template. An account holds at most 250.",
    request_body(content = NewTemplate, example = json!({
        "account_id": "acc_0190a1", "name": "spring_offer", "language": "en", "category": "MARKETING",
        "body": "Hi {{1}}, your code {{2}} gives 20% off",
        "header": {"type": "image", "url": "https://cdn.example.com/spring.jpg"},
        "quick_replies": ["Yes", "No"]})),
    responses(
        (status = 201, description = "Registered", body = TemplateView),
        (status = 200, description = "An existing template was replaced", body = TemplateView),
        (status = 409, description = "The account already has 250 templates", body = ErrorBody,
            example = json!({"error": "conflict", "message": "account acc_0190a1 already has 250 templates, the most an account may hold; delete one before adding spring_offer (en)"})),
        (status = 422, description = "A field breaks a rule", body = ErrorBody,
            example = json!({"error": "invalid", "message": "call_to_action: a template has either quick-reply buttons or call-to-action buttons, never both", "field": "call_to_action"})),
    )
)]
async fn create_template(State(a): S, t: TenantId, JsonBody(b): JsonBody<NewTemplate>) -> R {
    match a.create_template(&t, b).await? {
        (view, true) => created(view),
        (view, false) => ok(view),
    }
}

#[utoipa::path(
    get, path = "/templates", tag = "templates",
    params(TemplateFilter),
    responses((status = 200, description = "The tenant's templates", body = TemplateList))
)]
async fn list_templates(State(a): S, t: TenantId, Query(f): Query<TemplateFilter>) -> R {
    let items = a.list_templates(&t, f.account_id.as_deref()).await?;
    ok(json!({ "items": items }))
}

#[utoipa::path(
    get, path = "/templates/{account_id}/{name}/{language}", tag = "templates",
    params(
        ("account_id" = String, Path, description = "Account id", pattern = r"^[A-Za-z0-9_-]{1,128}$"),
        ("name" = String, Path, description = "Template name"),
        ("language" = String, Path, description = "Language code, e.g. en or en_US"),
    ),
    responses(
        (status = 200, description = "The template", body = TemplateView),
        (status = 404, description = "No such template", body = ErrorBody),
    )
)]
async fn get_template(
    State(a): S,
    t: TenantId,
    Path((account, name, language)): Path<(AccountId, String, String)>,
) -> R {
    ok(a.get_template(&t, &account, &name, &language).await?)
}

#[utoipa::path(
    put, path = "/templates/{account_id}/{name}/{language}", tag = "templates",
    description = "Edits a template; absent fields stay. Content (category, body, buttons, header type) \
        cannot change while the template is PENDING or DISABLED, nor under a RUNNING campaign, and an \
        edited template is PENDING again (the provider reviews it) unless `status` says otherwise. \
        The header link, status and quality can change at any time; PAUSED or DISABLED pauses the \
        campaigns sending it.",
    params(
        ("account_id" = String, Path, description = "Account id", pattern = r"^[A-Za-z0-9_-]{1,128}$"),
        ("name" = String, Path, description = "Template name"),
        ("language" = String, Path, description = "Language code"),
    ),
    request_body(content = TemplateEdit, example = json!({"body": "Hi {{1}}, spring ends Sunday: code {{2}}"})),
    responses(
        (status = 200, description = "The edited template", body = TemplateView),
        (status = 404, description = "No such template", body = ErrorBody),
        (status = 409, description = "Not editable now", body = ErrorBody,
            example = json!({"error": "conflict", "message": "template spring_offer (en) is PENDING: it can be edited once the provider has reviewed it"})),
        (status = 422, description = "A field breaks a rule", body = ErrorBody),
    )
)]
async fn edit_template(
    State(a): S,
    t: TenantId,
    Path((account, name, language)): Path<(AccountId, String, String)>,
    JsonBody(b): JsonBody<TemplateEdit>,
) -> R {
    ok(a.edit_template(&t, &account, &name, &language, b).await?)
}

#[utoipa::path(
    delete, path = "/templates/{account_id}/{name}/{language}", tag = "templates",
    params(
        ("account_id" = String, Path, description = "Account id", pattern = r"^[A-Za-z0-9_-]{1,128}$"),
        ("name" = String, Path, description = "Template name"),
        ("language" = String, Path, description = "Language code"),
    ),
    responses(
        (status = 204, description = "Deleted"),
        (status = 404, description = "No such template", body = ErrorBody),
        (status = 409, description = "A campaign that is not finished uses it", body = ErrorBody,
            example = json!({"error": "conflict", "message": "template spring_offer (en) is used by campaign(s) cmp_0190a7 (RUNNING); it can be deleted once they are completed or cancelled"})),
    )
)]
async fn delete_template(
    State(a): S,
    t: TenantId,
    Path((account, name, language)): Path<(AccountId, String, String)>,
) -> R {
    a.delete_template(&t, &account, &name, &language).await?;
    Ok(StatusCode::NO_CONTENT.into_response())
}

#[utoipa::path(
    post, path = "/accounts/{id}/templates/sync", tag = "templates",
    description = "Reads every page of the account's template list from Meta and stores each \
        template (body, header, buttons, status, quality, category). Templates it cannot keep \
        are listed in `skipped` with the reason.",
    params(("id" = String, Path, description = "Account id", pattern = r"^[A-Za-z0-9_-]{1,128}$")),
    request_body(content = SyncRequest, description = "Optional: without a body (or with an empty one) the account's WABA id is used",
        example = json!({"waba_id": "102290129340398"})),
    responses(
        (status = 200, description = "What the synchronisation did", body = SyncReport),
        (status = 404, description = "No such account", body = ErrorBody),
        (status = 422, description = "The account has no WABA id and none was given, or it is an aws_social account (no Meta token: its templates are registered with POST /templates)", body = ErrorBody),
        (status = 502, description = "Meta refused or failed to list the templates", body = ErrorBody,
            example = json!({"error": "provider_error", "message": "Meta refused the template list: Error validating access token (190)"})),
    )
)]
async fn sync_templates(
    State(s): State<Arc<TemplateSync>>,
    t: TenantId,
    Path(id): Path<AccountId>,
    super::error::RawBody(body): super::error::RawBody,
) -> R {
    // An empty body is an empty request: the account's WABA is used.
    let req = if body.iter().all(u8::is_ascii_whitespace) {
        SyncRequest::default()
    } else {
        json_object(&body)?
    };
    match s.sync(&t, &id, req).await {
        Ok(report) => ok(report),
        Err(SyncError::App(e)) => Err(e.into()),
        Err(SyncError::Provider(e)) => Err(ApiError::new(
            StatusCode::BAD_GATEWAY,
            "provider_error",
            e.reason,
        )),
    }
}

/// The OpenAPI description of the account and template routes.
#[derive(OpenApi)]
#[openapi(
    paths(
        create_account,
        list_accounts,
        get_account,
        get_portfolio,
        set_portfolio,
        set_recontact_template,
        create_template,
        list_templates,
        get_template,
        edit_template,
        delete_template,
        sync_templates,
    ),
    components(schemas(
        Account,
        AccountView,
        AccountList,
        NewAccount,
        Portfolio,
        PortfolioLimit,
        Provider,
        Template,
        TemplateView,
        TemplateList,
        NewTemplate,
        TemplateEdit,
        TemplateKey,
        TemplateStatus,
        Category,
        Quality,
        MediaHeader,
        MediaKind,
        CallToAction,
        VariableSource,
        SyncRequest,
        SyncReport,
        SkippedTemplate,
        ErrorBody,
    )),
    tags(
        (name = "accounts", description = "Provider accounts (R7.2) and their recontact template (R3.5)"),
        (name = "templates", description = "WhatsApp templates (R3)"),
    )
)]
pub struct TemplatesApi;

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn openapi_lists_every_template_route_and_schema() {
        let doc = TemplatesApi::openapi();
        let paths: Vec<&str> = doc.paths.paths.keys().map(String::as_str).collect();
        for p in [
            "/accounts",
            "/accounts/{id}",
            "/accounts/{id}/recontact-template",
            "/accounts/{id}/templates/sync",
            "/templates",
            "/templates/{account_id}/{name}/{language}",
        ] {
            assert!(paths.contains(&p), "{p} missing from {paths:?}");
        }
        let schemas = &doc.components.as_ref().unwrap().schemas;
        for s in [
            "Template",
            "NewTemplate",
            "Account",
            "NewAccount",
            "VariableSource",
            "SyncReport",
        ] {
            assert!(schemas.contains_key(s), "schema {s} missing");
        }
        let json = doc.to_json().unwrap();
        assert!(json.contains("spring_offer"), "examples are included");
    }
}
