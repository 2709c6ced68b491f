//! The tenant comes from the JWT the API Gateway authorizer verified, never from a header
//! the caller controls; so does the administrator's standing: a token of the
//! administrators' own app client (audience) that carries the admin scope.

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
    /// The administrators' app client: `client_id` (Cognito access tokens) or `aud`.
    pub admin_audience: String,
}

/// What the authorizer verified: the token's claims and its scopes.
pub struct Verified {
    pub claims: HashMap<String, String>,
    pub scopes: Vec<String>,
}

pub async fn from_authorizer(claims: Claims, mut req: Request, next: Next) -> Response {
    let verified = match req.extensions().get::<RequestContext>() {
        Some(RequestContext::ApiGatewayV2(ctx)) => ctx
            .authorizer
            .as_ref()
            .and_then(|a| a.jwt.as_ref())
            .map(|j| Verified {
                claims: j.claims.clone(),
                scopes: j.scopes.clone().unwrap_or_default(),
            }),
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

fn tenant(claims: &Claims, verified: &Verified) -> Option<TenantId> {
    verified
        .claims
        .get(&claims.tenant)
        .and_then(|t| TenantId::parse(t).ok())
}

/// A token of the administrators' client (`client_id` or `aud`) with the admin scope, as
/// API Gateway lists it (`scopes`) or as the claim says (`scope`/`scp`, space-separated).
fn is_admin(claims: &Claims, verified: &Verified) -> bool {
    let ours = !claims.admin_audience.is_empty()
        && ["client_id", "aud"]
            .iter()
            .any(|c| verified.claims.get(*c) == Some(&claims.admin_audience));
    let scoped = verified.scopes.contains(&claims.admin_scope)
        || ["scope", "scp"]
            .iter()
            .filter_map(|c| verified.claims.get(*c))
            .flat_map(|s| s.split_whitespace())
            .any(|s| s == claims.admin_scope);
    ours && scoped
}

#[cfg(test)]
mod tests {
    use super::*;

    fn claims() -> Claims {
        Claims {
            tenant: "tenant_id".into(),
            admin_scope: "campaigns/admin".into(),
            admin_audience: "admins-client".into(),
        }
    }

    fn verified(pairs: &[(&str, &str)]) -> Verified {
        Verified {
            claims: pairs
                .iter()
                .map(|(k, v)| (k.to_string(), v.to_string()))
                .collect(),
            scopes: Vec::new(),
        }
    }

    #[test]
    fn r1_8_only_a_token_with_the_admin_scope_is_the_administrators() {
        let c = claims();
        let admins = ("client_id", "admins-client");
        assert!(is_admin(
            &c,
            &verified(&[admins, ("scope", "openid campaigns/admin")])
        ));
        assert!(is_admin(
            &c,
            &verified(&[("aud", "admins-client"), ("scp", "campaigns/admin")])
        ));
        let mut listed = verified(&[admins]);
        listed.scopes = vec!["campaigns/admin".into()];
        assert!(is_admin(&c, &listed), "API Gateway's list of scopes");
        for no in [
            verified(&[admins, ("tenant_id", "acme")]),
            verified(&[admins, ("scope", "campaigns/admin-read openid")]),
            verified(&[admins, ("scope", "campaigns")]),
            verified(&[admins, ("campaigns/admin", "true")]),
            // The scope on a tenant client's token: a tenant user asked for it.
            verified(&[
                ("client_id", "tenants-client"),
                ("scope", "campaigns/admin"),
            ]),
            verified(&[("scope", "campaigns/admin")]),
        ] {
            assert!(!is_admin(&c, &no), "{:?}", no.claims);
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
