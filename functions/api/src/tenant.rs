//! The tenant comes from the JWT the API Gateway authorizer verified, never from a header
//! the caller controls; so does the administrator's standing (a scope of the token).

use axum::extract::Request;
use axum::middleware::Next;
use axum::response::Response;
use lambda_http::request::RequestContext;
use shared::http::{Administrator, TenantId};
use std::collections::HashMap;

/// Which claims name the tenant and which scope makes a token the administrator's.
#[derive(Debug, Clone)]
pub struct Claims {
    pub tenant: String,
    pub admin_scope: String,
}

pub async fn from_authorizer(claims: Claims, mut req: Request, next: Next) -> Response {
    let verified = match req.extensions().get::<RequestContext>() {
        Some(RequestContext::ApiGatewayV2(ctx)) => ctx
            .authorizer
            .as_ref()
            .and_then(|a| a.jwt.as_ref())
            .map(|j| j.claims.clone()),
        _ => None,
    };
    if let Some(verified) = verified {
        if let Some(t) = tenant(&claims, &verified) {
            req.extensions_mut().insert(t);
        }
        if is_admin(&claims, &verified) {
            req.extensions_mut().insert(Administrator);
        }
    }
    // Without a tenant the handlers answer 401; without the scope /admin answers 403.
    next.run(req).await
}

fn tenant(claims: &Claims, verified: &HashMap<String, String>) -> Option<TenantId> {
    verified
        .get(&claims.tenant)
        .and_then(|t| TenantId::parse(t).ok())
}

/// OAuth scopes are one space-separated claim: `scope` (Cognito, RFC 8693) or `scp`.
fn is_admin(claims: &Claims, verified: &HashMap<String, String>) -> bool {
    ["scope", "scp"]
        .iter()
        .filter_map(|c| verified.get(*c))
        .flat_map(|s| s.split_whitespace())
        .any(|s| s == claims.admin_scope)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn claims() -> Claims {
        Claims {
            tenant: "tenant_id".into(),
            admin_scope: "campaigns/admin".into(),
        }
    }

    fn verified(pairs: &[(&str, &str)]) -> HashMap<String, String> {
        pairs
            .iter()
            .map(|(k, v)| (k.to_string(), v.to_string()))
            .collect()
    }

    #[test]
    fn r1_8_only_a_token_with_the_admin_scope_is_the_administrators() {
        let c = claims();
        assert!(is_admin(
            &c,
            &verified(&[("scope", "openid campaigns/admin")])
        ));
        assert!(is_admin(&c, &verified(&[("scp", "campaigns/admin")])));
        for no in [
            verified(&[("tenant_id", "acme")]),
            verified(&[("scope", "campaigns/admin-read openid")]),
            verified(&[("scope", "campaigns")]),
            verified(&[("campaigns/admin", "true")]),
        ] {
            assert!(!is_admin(&c, &no), "{no:?}");
        }
    }

    #[test]
    fn the_tenant_is_the_configured_claim_in_the_id_alphabet() {
        let c = claims();
        assert_eq!(
            tenant(&c, &verified(&[("tenant_id", "acme")])).as_deref(),
            Some("acme")
        );
        assert_eq!(tenant(&c, &verified(&[("tenant_id", "a b")])), None);
        assert_eq!(tenant(&c, &verified(&[("sub", "acme")])), None);
    }
}
