//! HTTP adapters: the operator API and the provider webhooks as axum routers. They
//! translate requests into use-case calls and errors into status codes, nothing more.

pub mod api;
pub mod audience;
pub mod blocklists;
pub mod commands;
pub mod conversations;
pub mod error;
pub mod examples;
pub mod hopper_views;
pub mod openapi;
pub mod operator;
pub mod reports;
pub(crate) mod respond;
pub mod templates;
pub mod webhook;

pub use error::ApiError;

pub use crate::domain::ids::TenantId;

/// Axum layer for local mode: the tenant comes from `x-tenant-id`, default `demo`.
pub async fn tenant_from_header(
    mut req: axum::extract::Request,
    next: axum::middleware::Next,
) -> axum::response::Response {
    let tenant = req
        .headers()
        .get("x-tenant-id")
        .and_then(|v| v.to_str().ok())
        .and_then(|t| TenantId::parse(t).ok())
        .unwrap_or_else(|| TenantId::parse("demo").expect("a valid tenant"));
    req.extensions_mut().insert(tenant);
    next.run(req).await
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
                    "campaigns are disabled for tenant {t}; an administrator can enable them with PUT /tenant"
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
