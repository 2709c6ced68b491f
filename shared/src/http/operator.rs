//! The operator API assembled: every route file's routes on the use cases they call,
//! `/openapi.json`, the 403 gate of tenants with campaigns disabled (R1.8) and the
//! JSON 404 for unknown paths. The composition roots (`compose`) and the tests build the
//! API here, so there is one router.

use super::error::ApiError;
use crate::app::conversations::Conversations;
use crate::app::templates::TemplateSync;
use crate::app::Operator;
use crate::app::{audience, blocklists, campaigns, commands, hopper_views, reports, templates};
use crate::ports::ObjectStore;
use axum::extract::FromRef;
use axum::http::StatusCode;
use axum::routing::get;
use axum::Router;
use std::sync::Arc;

/// The routes on the operator use cases (no tenant layer: the composition root adds the
/// one its platform uses). Every `/campaigns` route answers 403 while the tenant has
/// campaigns disabled; `/openapi.json` needs no tenant.
pub fn router(operator: Operator) -> Router {
    Router::new()
        .merge(super::api::routes())
        .merge(super::templates::routes())
        .merge(super::audience::routes())
        .merge(super::commands::routes())
        .merge(super::blocklists::routes())
        .merge(super::hopper_views::routes())
        .merge(super::conversations::routes())
        .merge(super::reports::routes())
        .route("/openapi.json", get(super::openapi::serve))
        .fallback(not_found)
        .layer(axum::middleware::from_fn_with_state(
            operator.campaigns.clone(),
            super::campaigns_gate,
        ))
        .with_state(operator)
}

/// Each route file's handlers take their own service from the operator state.
macro_rules! service_of_operator {
    ($($field:ident: $ty:ty),* $(,)?) => {$(
        impl FromRef<Operator> for Arc<$ty> {
            fn from_ref(o: &Operator) -> Self {
                o.$field.clone()
            }
        }
    )*};
}

service_of_operator! {
    campaigns: campaigns::Campaigns,
    audience: audience::Audience,
    templates: templates::Templates,
    block_lists: blocklists::BlockLists,
    commands: commands::Commands,
    reports: reports::Reports,
    views: hopper_views::Views,
}

async fn not_found() -> ApiError {
    ApiError::new(StatusCode::NOT_FOUND, "not_found", "no such route")
}

/// The use cases behind the whole operator API.
pub struct OperatorServices {
    pub operator: Operator,
    /// Template synchronisation from the provider's list (R3.4).
    pub sync: Arc<TemplateSync>,
    /// The recontact template (R5.5), sent through the account's provider.
    pub conversations: Arc<Conversations>,
    /// Presigned uploads of large imports (R2.4); without it uploads answer 503.
    pub objects: Option<Arc<dyn ObjectStore>>,
}

/// The whole operator API: [`router`] plus the routes on their own use cases.
pub fn full_router(s: &OperatorServices) -> Router {
    let api = router(s.operator.clone())
        .merge(super::templates::sync_router(s.sync.clone()))
        .merge(super::conversations::recontact_router(
            s.conversations.clone(),
        ));
    let api = api.layer(axum::extract::DefaultBodyLimit::max(
        super::error::MAX_BODY_BYTES,
    ));
    match &s.objects {
        Some(objects) => super::audience::with_object_store(api, objects.clone()),
        None => api,
    }
}
