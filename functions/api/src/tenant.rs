//! The tenant comes from the JWT the API Gateway authorizer verified, never from a header
//! the caller controls.

use axum::extract::Request;
use axum::middleware::Next;
use axum::response::Response;
use lambda_http::request::RequestContext;
use shared::http::TenantId;

pub async fn from_authorizer(claim: String, mut req: Request, next: Next) -> Response {
    let tenant = match req.extensions().get::<RequestContext>() {
        Some(RequestContext::ApiGatewayV2(ctx)) => ctx
            .authorizer
            .as_ref()
            .and_then(|a| a.jwt.as_ref())
            .and_then(|j| j.claims.get(&claim))
            .and_then(|t| TenantId::parse(t).ok()),
        _ => None,
    };
    if let Some(t) = tenant {
        req.extensions_mut().insert(t);
    }
    // Without a tenant the handlers answer 401.
    next.run(req).await
}
