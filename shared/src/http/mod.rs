//! HTTP adapters: the operator API and the provider webhooks as axum routers. They
//! translate requests into use-case calls and errors into status codes, nothing more.

pub mod api;
pub mod audience;
pub mod blocklists;
pub mod commands;
pub mod console;
pub mod conversations;
pub mod error;
pub mod examples;
pub mod hopper_views;
pub mod openapi;
pub mod operator;
pub mod other_routes;
pub mod paging;
pub mod reports;
pub(crate) mod respond;
pub mod templates;
pub mod webhook;

pub use error::ApiError;

pub use crate::domain::ids::TenantId;

/// The header carrying the tenant in local mode (the JWT's claim in AWS).
pub const TENANT_HEADER: &str = "x-tenant-id";

/// The header that makes a local request an administrator's (`x-admin: true`); in AWS the
/// administrator's JWT scope does (`ADMIN_SCOPE`).
pub const ADMIN_HEADER: &str = "x-admin";

/// Marks a request whose credentials the platform verified as the administrator's: the
/// edge inserts it (JWT scope in AWS, [`ADMIN_HEADER`] locally), and the `/admin` routes
/// answer 403 without it.
#[derive(Debug, Clone, Copy)]
pub struct Administrator;

impl<S: Send + Sync> axum::extract::FromRequestParts<S> for Administrator {
    type Rejection = ApiError;

    async fn from_request_parts(
        parts: &mut axum::http::request::Parts,
        _: &S,
    ) -> Result<Self, Self::Rejection> {
        parts
            .extensions
            .get::<Administrator>()
            .copied()
            .ok_or_else(|| {
                ApiError::forbidden("only the platform's administrator may use /admin routes")
            })
    }
}

/// Local mode: a request with `x-admin: true` is the administrator's.
fn admin_from_header(req: &mut axum::extract::Request) {
    let admin = req
        .headers()
        .get(ADMIN_HEADER)
        .and_then(|v| v.to_str().ok())
        .is_some_and(|v| v.trim().eq_ignore_ascii_case("true"));
    if admin {
        req.extensions_mut().insert(Administrator);
    }
}

/// Axum layer for local mode: the tenant comes from `x-tenant-id`, default `demo`;
/// `x-admin: true` makes the request the administrator's.
pub async fn tenant_from_header(
    mut req: axum::extract::Request,
    next: axum::middleware::Next,
) -> axum::response::Response {
    admin_from_header(&mut req);
    let tenant = req
        .headers()
        .get(TENANT_HEADER)
        .and_then(|v| v.to_str().ok())
        .and_then(|t| TenantId::parse(t).ok())
        .unwrap_or_else(|| TenantId::parse("demo").expect("a valid tenant"));
    req.extensions_mut().insert(tenant);
    next.run(req).await
}

/// The tenants a local runner serves when it checks credentials (`LOCAL_TENANTS`), as
/// API Gateway's authorizer does in AWS.
#[derive(Debug, Clone)]
pub struct KnownTenants(pub std::sync::Arc<Vec<TenantId>>);

/// Axum layer for local mode with credentials checked: `x-tenant-id` must name one of the
/// known tenants, else 401 (no header, a malformed one, or a tenant this runner does not
/// serve). `/openapi.json` and the administrator's `/admin` routes need no tenant.
pub async fn tenant_from_known_header(
    axum::extract::State(known): axum::extract::State<KnownTenants>,
    mut req: axum::extract::Request,
    next: axum::middleware::Next,
) -> axum::response::Response {
    admin_from_header(&mut req);
    let path = req.uri().path();
    if path == "/openapi.json" || path.starts_with("/admin/") {
        return next.run(req).await;
    }
    let given = req
        .headers()
        .get(TENANT_HEADER)
        .map(|v| v.to_str().ok().and_then(|t| TenantId::parse(t.trim()).ok()));
    let tenant = match given {
        None => return unauthorized("no x-tenant-id header: name the tenant the request acts for"),
        Some(None) => return unauthorized("x-tenant-id: must be 1-64 letters, digits, '-' or '_'"),
        Some(Some(t)) if !known.0.contains(&t) => {
            return unauthorized(format!(
                "x-tenant-id: '{t}' is not a tenant of this runner (LOCAL_TENANTS)"
            ))
        }
        Some(Some(t)) => t,
    };
    req.extensions_mut().insert(tenant);
    next.run(req).await
}

fn unauthorized(message: impl Into<String>) -> axum::response::Response {
    use axum::response::IntoResponse;
    ApiError::new(
        axum::http::StatusCode::UNAUTHORIZED,
        "unauthorized",
        message,
    )
    .into_response()
}

/// Query parameters parsed into `T` (axum's `Query` with this API's errors): a parameter
/// given empty (`?cursor=`) is the same as one left out, and a value that cannot be its
/// type is a 400 naming the parameter.
pub struct Query<T>(pub T);

impl<S, T> axum::extract::FromRequestParts<S> for Query<T>
where
    S: Send + Sync,
    T: serde::de::DeserializeOwned,
{
    type Rejection = ApiError;

    async fn from_request_parts(
        parts: &mut axum::http::request::Parts,
        _: &S,
    ) -> Result<Self, Self::Rejection> {
        let given: Vec<&str> = parts
            .uri
            .query()
            .unwrap_or_default()
            .split('&')
            .filter(|pair| pair.split_once('=').is_some_and(|(_, v)| !v.is_empty()))
            .collect();
        let uri: axum::http::Uri = format!("/?{}", given.join("&"))
            .parse()
            .map_err(|_| ApiError::bad_request(None, "the query string is not valid"))?;
        query_of(&uri).map(Query)
    }
}

/// [`Query`] that keeps empty parameters: the hopper views refuse `?cursor=` and
/// `?limit=` with a 400 naming them rather than reading them as absent.
pub struct QueryAsGiven<T>(pub T);

impl<S, T> axum::extract::FromRequestParts<S> for QueryAsGiven<T>
where
    S: Send + Sync,
    T: serde::de::DeserializeOwned,
{
    type Rejection = ApiError;

    async fn from_request_parts(
        parts: &mut axum::http::request::Parts,
        _: &S,
    ) -> Result<Self, Self::Rejection> {
        query_of(&parts.uri).map(QueryAsGiven)
    }
}

fn query_of<T: serde::de::DeserializeOwned>(uri: &axum::http::Uri) -> Result<T, ApiError> {
    axum::extract::Query::<T>::try_from_uri(uri)
        .map(|axum::extract::Query(v)| v)
        .map_err(|e| query_error(&e.body_text()))
}

/// `limit: invalid digit found in string` names `limit`.
fn query_error(text: &str) -> ApiError {
    let message = text
        .strip_prefix("Failed to deserialize query string: ")
        .unwrap_or(text);
    let field = message.split_once(": ").map(|(f, _)| f).filter(|f| {
        !f.is_empty()
            && f.chars()
                .all(|c| c.is_ascii_alphanumeric() || "_.-[]".contains(c))
    });
    ApiError::bad_request(
        field.map(str::to_owned),
        format!("invalid query string: {message}"),
    )
}

/// A page size given as text: absent is `default`, anything but a whole number from 1 to
/// `max` is a 400 naming `limit` (never silently clamped).
pub fn page_limit(limit: Option<&str>, default: u32, max: u32) -> Result<u32, ApiError> {
    match limit.map(str::trim) {
        None => Ok(default),
        Some(l) => l
            .parse::<u32>()
            .ok()
            .filter(|n| (1..=max).contains(n))
            .ok_or_else(|| {
                ApiError::bad_request(
                    Some("limit".into()),
                    format!("limit: must be a whole number from 1 to {max}"),
                )
            }),
    }
}

/// Every `/campaigns` route answers 403 while the caller's tenant has campaigns disabled
/// (R1.8). Runs inside the tenant layer; a request without a tenant goes on to its 401.
pub async fn campaigns_gate(
    axum::extract::State(campaigns): axum::extract::State<
        std::sync::Arc<crate::app::campaigns::Campaigns>,
    >,
    req: axum::extract::Request,
    next: axum::middleware::Next,
) -> axum::response::Response {
    use axum::response::IntoResponse;
    let path = req.uri().path();
    let gated = path == "/campaigns" || path.starts_with("/campaigns/");
    if let (true, Some(t)) = (gated, req.extensions().get::<TenantId>()) {
        match campaigns.campaigns_enabled(t).await {
            Ok(true) => {}
            Ok(false) => {
                return ApiError::forbidden(format!(
                    "campaigns are disabled for tenant {t}; the platform's administrator can enable them (PUT /admin/tenants/{t})"
                ))
                .into_response()
            }
            Err(e) => return ApiError::from(e).into_response(),
        }
    }
    next.run(req).await
}

/// Path parameters parsed into the types they name (`CampaignId`, `AccountId`, …); one
/// that cannot be one (outside the id alphabet) answers 404, as an id that does not exist.
pub struct Path<T>(pub T);

impl<S, T> axum::extract::FromRequestParts<S> for Path<T>
where
    S: Send + Sync,
    T: serde::de::DeserializeOwned + Send,
{
    type Rejection = ApiError;

    async fn from_request_parts(
        parts: &mut axum::http::request::Parts,
        state: &S,
    ) -> Result<Self, Self::Rejection> {
        use axum::extract::path::ErrorKind;
        use axum::extract::rejection::PathRejection;
        match axum::extract::Path::<T>::from_request_parts(parts, state).await {
            Ok(axum::extract::Path(v)) => Ok(Path(v)),
            // An id the parameter's type refused (outside the id alphabet): not found.
            Err(PathRejection::FailedToDeserializePathParams(e))
                if matches!(
                    e.kind(),
                    ErrorKind::Message(_) | ErrorKind::DeserializeError { .. }
                ) =>
            {
                let text = e.body_text();
                let message = text.strip_prefix("Invalid URL: ").unwrap_or(&text);
                Err(ApiError::new(
                    axum::http::StatusCode::NOT_FOUND,
                    "not_found",
                    message.to_owned(),
                ))
            }
            // Anything else keeps axum's status (bad UTF-8: 400; a handler whose
            // parameters do not match its route: 500), in the JSON error shape.
            Err(e) => {
                let kind = if e.status().is_server_error() {
                    "internal"
                } else {
                    "bad_request"
                };
                Err(ApiError::new(e.status(), kind, e.body_text()))
            }
        }
    }
}

impl<S: Send + Sync> axum::extract::FromRequestParts<S> for TenantId {
    type Rejection = ApiError;

    async fn from_request_parts(
        parts: &mut axum::http::request::Parts,
        _: &S,
    ) -> Result<Self, Self::Rejection> {
        parts.extensions.get::<TenantId>().cloned().ok_or_else(|| {
            ApiError::new(
                axum::http::StatusCode::UNAUTHORIZED,
                "unauthorized",
                "no tenant in the request's credentials",
            )
        })
    }
}
