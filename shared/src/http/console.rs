//! The operator console (R11, issue 15): three static files, compiled into the binary, that
//! run in the operator's browser on the public JSON API only. Served beside the API (by
//! the api function in AWS, by the local runner here), outside the tenant layer: the
//! pages hold no tenant data, and the browser sends its credentials with each API call
//! (`x-tenant-id` locally, the OIDC bearer token in AWS, as `config.json` says).

use super::error::{ApiError, ErrorBody};
use axum::extract::{Path, State};
use axum::http::{header, StatusCode};
use axum::response::{IntoResponse, Response};
use axum::routing::get;
use axum::{Json, Router};
use serde::Serialize;
use utoipa::{OpenApi, ToSchema};

const INDEX: &str = include_str!("../../console/index.html");
const APP: &str = include_str!("../../console/app.js");
const STYLE: &str = include_str!("../../console/style.css");

/// The security policy of every console file: scripts and styles from this origin only,
/// so a contact's name or a reply rendered by mistake as markup could not run; calls to
/// this API and (for sign-in) the HTTPS identity provider; template header images from
/// any HTTPS host.
const POLICY: &str = "default-src 'none'; script-src 'self'; style-src 'self'; \
    img-src 'self' https: data:; connect-src 'self' https:; form-action 'self' https:; \
    base-uri 'none'; frame-ancestors 'none'";

/// How the console obtains the credentials the API expects.
#[derive(Debug, Clone, Serialize, ToSchema)]
#[serde(tag = "auth", rename_all = "snake_case")]
pub enum ConsoleAuth {
    /// Local runner: the operator names the tenant, sent as `x-tenant-id`.
    TenantHeader {
        /// The tenant filled in at first.
        tenant: String,
    },
    /// AWS: OAuth 2.0 authorization code with PKCE at the OIDC issuer the HTTP API's JWT
    /// authorizer trusts; the access token is the bearer of every API call.
    Oidc {
        /// The issuer URL (its `/.well-known/openid-configuration` names the endpoints).
        issuer: String,
        /// The public client (no secret) registered for the console.
        client_id: String,
        /// Scopes to ask for, space-separated.
        scope: String,
    },
}

/// `/`, `/console` and the console's files, answered with `auth` as `config.json`.
pub fn router(auth: ConsoleAuth) -> Router {
    Router::new()
        .route("/", get(home))
        .route("/console", get(index))
        .route("/console/config.json", get(config))
        .route("/console/{file}", get(asset))
        .with_state(auth)
}

fn file(content_type: &'static str, body: &'static str) -> Response {
    (
        [
            (header::CONTENT_TYPE, content_type),
            (header::CACHE_CONTROL, "no-cache"),
            (header::CONTENT_SECURITY_POLICY, POLICY),
            (header::X_CONTENT_TYPE_OPTIONS, "nosniff"),
            (header::REFERRER_POLICY, "no-referrer"),
        ],
        body,
    )
        .into_response()
}

#[utoipa::path(
    get, path = "/", tag = "console",
    description = "Sends a browser to the operator console (`/console`). Needs no credentials.",
    security(()),
    responses((status = 303, description = "See `/console`",
        headers(("location" = String, description = "`/console`")),
        content_type = "text/plain", body = String, example = json!("See /console")))
)]
async fn home() -> Response {
    (
        StatusCode::SEE_OTHER,
        [
            (header::LOCATION, "/console"),
            (header::CONTENT_TYPE, "text/plain; charset=utf-8"),
        ],
        "See /console",
    )
        .into_response()
}

#[utoipa::path(
    get, path = "/console", tag = "console",
    description = "The operator console's page. It holds no tenant data and needs no \
        credentials; its script calls this API with the operator's.",
    security(()),
    responses((status = 200, description = "The page", content_type = "text/html",
        body = String, example = json!("<!doctype html>…")))
)]
async fn index() -> Response {
    file("text/html; charset=utf-8", INDEX)
}

#[utoipa::path(
    get, path = "/console/config.json", tag = "console",
    description = "How the console signs in: `tenant_header` on the local runner, `oidc` \
        (issuer, public client id, scopes) in AWS.",
    security(()),
    responses((status = 200, description = "The sign-in settings", body = ConsoleAuth,
        example = json!({"auth": "tenant_header", "tenant": "demo"})))
)]
async fn config(State(auth): State<ConsoleAuth>) -> Response {
    let mut r = Json(auth).into_response();
    r.headers_mut()
        .insert(header::CACHE_CONTROL, "no-cache".parse().expect("a header"));
    r
}

#[utoipa::path(
    get, path = "/console/{file}", tag = "console",
    description = "The console's script (`app.js`) and style sheet (`style.css`).",
    security(()),
    params(("file" = String, Path, description = "`app.js` or `style.css`")),
    responses(
        (status = 200, description = "The file: `app.js` as `text/javascript`, `style.css` as `text/css`",
            content((String = "text/javascript"), (String = "text/css"))),
        (status = 404, description = "No such file", body = ErrorBody,
            example = json!({"error": "not_found", "message": "the console has no file 'x.js'"})),
    )
)]
async fn asset(Path(name): Path<String>) -> Response {
    match name.as_str() {
        "app.js" => file("text/javascript; charset=utf-8", APP),
        "style.css" => file("text/css; charset=utf-8", STYLE),
        other => ApiError::new(
            StatusCode::NOT_FOUND,
            "not_found",
            format!("the console has no file '{other}'"),
        )
        .into_response(),
    }
}

#[derive(OpenApi)]
#[openapi(
    paths(home, index, config, asset),
    components(schemas(ConsoleAuth)),
    tags((name = "console", description = "The operator console: static files over this API (no credentials needed to load them)"))
)]
pub struct ConsoleApi;
