//! Provider webhooks (R7.3): Meta's GET verification handshake and signed POSTs.

use crate::app::inbox::Inbox;
use crate::providers::meta;
use axum::body::Bytes;
use axum::extract::{Query, State};
use axum::http::{HeaderMap, StatusCode};
use axum::response::{IntoResponse, Response};
use axum::routing::get;
use axum::{Json, Router};
use serde::Deserialize;
use serde_json::json;
use std::sync::Arc;

pub struct WebhookState {
    pub inbox: Arc<Inbox>,
    /// Meta app secret: the key of X-Hub-Signature-256.
    pub app_secret: String,
    /// The token Meta echoes in the verification handshake.
    pub verify_token: String,
}

pub fn router(state: Arc<WebhookState>) -> Router {
    Router::new()
        .route("/webhooks/meta", get(verify).post(receive))
        .with_state(state)
}

#[derive(Deserialize)]
struct Handshake {
    #[serde(rename = "hub.mode")]
    mode: Option<String>,
    #[serde(rename = "hub.verify_token")]
    token: Option<String>,
    #[serde(rename = "hub.challenge")]
    challenge: Option<String>,
}

async fn verify(State(s): State<Arc<WebhookState>>, Query(h): Query<Handshake>) -> Response {
    match meta::verify_handshake(
        h.mode.as_deref(),
        h.token.as_deref(),
        h.challenge.as_deref(),
        &s.verify_token,
    ) {
        Some(challenge) => (StatusCode::OK, challenge).into_response(),
        None => (
            StatusCode::FORBIDDEN,
            Json(json!({"error": "forbidden", "message": "verification failed"})),
        )
            .into_response(),
    }
}

/// Verifies the signature over the raw body before anything is parsed; a bad signature
/// changes nothing (401). A body we cannot parse is acknowledged and logged, so Meta does
/// not retry it for days; a storage failure answers 503 so Meta delivers it again.
async fn receive(State(s): State<Arc<WebhookState>>, headers: HeaderMap, body: Bytes) -> Response {
    let sig = headers
        .get("x-hub-signature-256")
        .and_then(|v| v.to_str().ok());
    if !meta::verify_signature(s.app_secret.as_bytes(), &body, sig) {
        tracing::warn!(has_header = sig.is_some(), "webhook signature rejected");
        return (
            StatusCode::UNAUTHORIZED,
            Json(json!({"error": "unauthorized", "message": "invalid signature"})),
        )
            .into_response();
    }
    let events = match meta::parse_webhook(&body) {
        Ok(ev) => ev,
        Err(e) => {
            tracing::warn!(error = %e, "unparseable webhook body acknowledged");
            return (StatusCode::OK, Json(json!({"applied": 0, "ignored": 0}))).into_response();
        }
    };
    match s.inbox.handle(events).await {
        Ok(report) => (StatusCode::OK, Json(report)).into_response(),
        Err(e) => {
            tracing::error!(error = %e, "webhook not applied; the provider will retry");
            (
                StatusCode::SERVICE_UNAVAILABLE,
                Json(json!({"error": "unavailable", "message": "try again"})),
            )
                .into_response()
        }
    }
}
