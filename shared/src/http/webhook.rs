//! Provider webhooks (R7.3): Meta's GET verification handshake and signed POSTs, and
//! Kaleyra's status callbacks authenticated by a shared token.

use crate::app::inbox::Inbox;
use crate::domain::inbound::Inbound;
use crate::providers::{kaleyra, meta};
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
    apply(&s.inbox, events).await
}

/// Hands verified events to the inbox. A storage failure answers 503 so the provider
/// delivers the callback again; everything the inbox does is idempotent.
async fn apply(inbox: &Inbox, events: Vec<Inbound>) -> Response {
    match inbox.handle(events).await {
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

/// Kaleyra's callbacks: Kaleyra signs nothing, so the callback URL registered with it
/// carries a shared token (`?token=`, or the `X-Kaleyra-Token` header from a proxy), and
/// `?sid=` names the Kaleyra account so replies find the interaction of `<sid>:<from>`.
pub struct KaleyraHookState {
    pub inbox: Arc<Inbox>,
    pub token: String,
}

pub fn kaleyra_router(state: Arc<KaleyraHookState>) -> Router {
    Router::new()
        .route("/webhooks/kaleyra", axum::routing::post(receive_kaleyra))
        .with_state(state)
}

#[derive(Deserialize)]
struct KaleyraQuery {
    token: Option<String>,
    sid: Option<String>,
}

async fn receive_kaleyra(
    State(s): State<Arc<KaleyraHookState>>,
    Query(q): Query<KaleyraQuery>,
    headers: HeaderMap,
    body: Bytes,
) -> Response {
    let given = q
        .token
        .as_deref()
        .or_else(|| headers.get("x-kaleyra-token").and_then(|v| v.to_str().ok()));
    if !kaleyra::verify_kaleyra_token(&s.token, given) {
        tracing::warn!(
            has_token = given.is_some(),
            "kaleyra callback token rejected"
        );
        return (
            StatusCode::UNAUTHORIZED,
            Json(json!({"error": "unauthorized", "message": "invalid token"})),
        )
            .into_response();
    }
    let mut events = match kaleyra::parse_kaleyra_callback(&body) {
        Ok(ev) => ev,
        Err(e) => {
            tracing::warn!(error = %e, "unparseable kaleyra callback acknowledged");
            return (StatusCode::OK, Json(json!({"applied": 0, "ignored": 0}))).into_response();
        }
    };
    if let Some(sid) = q.sid.as_deref() {
        kaleyra::qualify_kaleyra_senders(&mut events, sid);
    }
    apply(&s.inbox, events).await
}
