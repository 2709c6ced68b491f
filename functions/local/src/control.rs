//! The local server (API, webhook, control routes) and the loop that plays AWS's part:
//! firing schedules, ticking the launcher and sweeper, feeding the send queue to the
//! sender and the inbound queue (verified webhooks) to the inbound worker.

use crate::wiring::{Local, APP_SECRET, KALEYRA_TOKEN, VERIFY_TOKEN};
use axum::extract::State;
use axum::routing::{get, post};
use axum::{Json, Router};
use serde::Deserialize;
use serde_json::{json, Value};
use shared::http::error::{ApiError, JsonBody};
use shared::http::webhook::{KaleyraHookState, QueueSink, WebhookState};
use shared::http::{KnownTenants, TenantId};
use shared::ports::Clock;
use std::sync::Arc;
use std::time::Duration;

/// The tenants of `LOCAL_TENANTS` (comma-separated), when set: the runner then checks
/// `x-tenant-id` like an authorizer (401 without it or for another tenant). Unset, any
/// tenant goes and a request without the header acts for `demo`.
pub fn known_tenants() -> anyhow::Result<Option<KnownTenants>> {
    let Ok(list) = std::env::var("LOCAL_TENANTS") else {
        return Ok(None);
    };
    let tenants = list
        .split(',')
        .map(str::trim)
        .filter(|t| !t.is_empty())
        .map(|t| {
            TenantId::parse(t).map_err(|_| {
                anyhow::anyhow!(
                    "LOCAL_TENANTS: '{t}' is not a tenant id (1-64 letters, digits, '-' or '_')"
                )
            })
        })
        .collect::<anyhow::Result<Vec<_>>>()?;
    anyhow::ensure!(!tenants.is_empty(), "LOCAL_TENANTS names no tenant");
    Ok(Some(KnownTenants(Arc::new(tenants))))
}

pub fn router(local: Arc<Local>, tenants: Option<KnownTenants>) -> Router {
    let sink = QueueSink::on(local.system.inbound_queue.clone());
    let webhook = shared::http::webhook::router(Arc::new(WebhookState {
        sink: sink.clone(),
        app_secret: APP_SECRET.into(),
        verify_token: VERIFY_TOKEN.into(),
    }));
    let kaleyra = shared::http::webhook::kaleyra_router(Arc::new(KaleyraHookState {
        sink,
        token: KALEYRA_TOKEN.into(),
    }));
    let control = Router::new()
        .route("/local/clock", get(clock))
        .route("/local/clock/advance", post(advance))
        .with_state(local.clone())
        .nest("/local/sim", local.simulator.control_router());
    let uploads = Router::new()
        .route("/local/objects/{*key}", axum::routing::put(upload))
        .layer(axum::extract::DefaultBodyLimit::max(1 << 30))
        .with_state(local.clone());
    let api = shared::http::operator::full_router(&local.operator);
    let api = match tenants {
        Some(known) => api.layer(axum::middleware::from_fn_with_state(
            known,
            shared::http::tenant_from_known_header,
        )),
        None => api.layer(axum::middleware::from_fn(shared::http::tenant_from_header)),
    };
    api.merge(uploads)
        .merge(webhook)
        .merge(kaleyra)
        .merge(control)
        .route("/health", get(|| async { Json(json!({"ok": true})) }))
}

/// Stands in for S3 behind a presigned URL: stores the upload and starts the import, as
/// the bucket's event starts the importer function in AWS.
async fn upload(
    State(l): State<Arc<Local>>,
    axum::extract::Path(key): axum::extract::Path<String>,
    body: axum::body::Bytes,
) -> Result<axum::http::StatusCode, ApiError> {
    use shared::ports::ObjectStore;
    let parsed = shared::domain::import::parse_object_key(&key)
        .and_then(|(t, id)| Some((shared::http::TenantId::parse(&t).ok()?, id)));
    let Some((tenant, id)) = parsed else {
        return Err(ApiError::new(
            axum::http::StatusCode::NOT_FOUND,
            "not_found",
            "not an import upload URL",
        ));
    };
    l.objects
        .put(&key, body, "text/csv")
        .await
        .map_err(|e| ApiError::from(shared::app::AppError::from(e)))?;
    let imports = l.imports.clone();
    tokio::spawn(async move {
        let budget = Duration::from_secs(14 * 60);
        if let Err(e) = imports.run_to_end(&tenant, &id, "local", budget).await {
            tracing::warn!(error = %e, import_id = %id, "import failed");
        }
    });
    Ok(axum::http::StatusCode::OK)
}

async fn clock(State(l): State<Arc<Local>>) -> Json<Value> {
    Json(json!({ "now": l.clock.now() }))
}

#[derive(Deserialize)]
struct Advance {
    #[serde(default)]
    seconds: i64,
    #[serde(default)]
    minutes: i64,
    #[serde(default)]
    hours: i64,
    #[serde(default)]
    days: i64,
}

/// Moves the clock forward so start dates, response timeouts and windows can be shown
/// without waiting (R8.5). The loop then fires what became due.
async fn advance(
    State(l): State<Arc<Local>>,
    JsonBody(a): JsonBody<Advance>,
) -> Result<Json<Value>, ApiError> {
    let by = chrono::Duration::seconds(a.seconds)
        + chrono::Duration::minutes(a.minutes)
        + chrono::Duration::hours(a.hours)
        + chrono::Duration::days(a.days);
    if by < chrono::Duration::zero() {
        return Err(ApiError::bad_request(None, "the clock only moves forward"));
    }
    l.clock.advance(by);
    step(&l).await;
    Ok(Json(json!({ "now": l.clock.now() })))
}

/// One round of what AWS would do on its own.
pub async fn step(l: &Local) {
    let res: anyhow::Result<()> = async {
        // Webhooks that arrived so far are applied before the sweeper looks at timeouts.
        l.system.drain_inbound().await?;
        if let Some(s) = &l.scheduler {
            l.system.fire_due_schedules(s).await?;
        }
        l.system.tick_if_due().await?;
        l.system.drain_queue().await?;
        Ok(())
    }
    .await;
    if let Err(e) = res {
        tracing::warn!(error = %e, "local step failed; retrying");
    }
}

pub async fn run_loop(l: Arc<Local>) {
    loop {
        step(&l).await;
        tokio::time::sleep(Duration::from_millis(200)).await;
    }
}
