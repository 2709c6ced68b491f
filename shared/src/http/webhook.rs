//! Provider webhooks (R7.3): Meta's GET verification handshake and signed POSTs, and
//! Kaleyra's status callbacks authenticated by a shared token.
//!
//! A POST is verified (signature over the raw body, or token) and then handed on as it
//! came: queued for the inbound worker (`lambda::inbound`), which parses and applies it
//! in batches, so the answer goes out after one queue write (R6.1 at scale). A request
//! that fails verification is a 401 and reaches nothing.

use crate::lambda::inbound_queue::{self, QueuedWebhook, WebhookProvider};
use crate::ports::{Clock, OutMessage, Queue, Secrets, Table};
use crate::providers::{kaleyra, meta, twilio};
use axum::body::Bytes;
use axum::extract::State;
// Empty parameters count as absent; a malformed query is a JSON 400 like the API's.
use super::Query;
use axum::http::{HeaderMap, StatusCode};
use axum::response::{IntoResponse, Response};
use axum::routing::get;
use axum::{Json, Router};
use serde::Deserialize;
use serde_json::json;
use std::sync::Arc;

/// Where verified webhook bodies go: in production and in the local runner the inbound
/// queue ([`QueueSink`]); tests may apply them at once (`testkit::InlineSink`).
#[async_trait::async_trait]
pub trait WebhookSink: Send + Sync {
    /// Takes a verified webhook; the JSON answer for the provider, or why it could not be
    /// taken (then the provider is asked to deliver it again).
    async fn take(&self, webhook: QueuedWebhook) -> Result<serde_json::Value, SinkError>;
}

/// Why a verified webhook was not taken.
#[derive(Debug)]
pub enum SinkError {
    /// Over SQS's message size: 413.
    TooLarge,
    /// Storage or queue failure: 503, the provider retries.
    Unavailable(String),
}

/// The inbound queue: answer once the body is queued.
pub struct QueueSink(pub Arc<dyn Queue>);

impl QueueSink {
    pub fn on(queue: Arc<dyn Queue>) -> Arc<dyn WebhookSink> {
        Arc::new(QueueSink(queue))
    }
}

#[async_trait::async_trait]
impl WebhookSink for QueueSink {
    async fn take(&self, webhook: QueuedWebhook) -> Result<serde_json::Value, SinkError> {
        let message = webhook.encode();
        if message.len() > inbound_queue::SQS_MAX_MESSAGE_BYTES {
            return Err(SinkError::TooLarge);
        }
        self.0
            .send(vec![OutMessage {
                body: message,
                delay_secs: 0,
            }])
            .await
            .map(|()| json!({"queued": 1}))
            .map_err(|e| SinkError::Unavailable(e.to_string()))
    }
}

pub struct WebhookState {
    pub sink: Arc<dyn WebhookSink>,
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
/// changes nothing (401). The verified body is handed on as it came (see the module).
async fn receive(State(s): State<Arc<WebhookState>>, headers: HeaderMap, body: Bytes) -> Response {
    if body.len() > inbound_queue::MAX_BODY_BYTES {
        return too_large();
    }
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
    hand_on(&s.sink, WebhookProvider::Meta, None, body).await
}

fn too_large() -> Response {
    (
        StatusCode::PAYLOAD_TOO_LARGE,
        Json(json!({"error": "too_large", "message": "webhook body over 200 KB"})),
    )
        .into_response()
}

/// Queues (or applies) a verified body. A body that cannot be JSON (not UTF-8, control
/// characters) is acknowledged and logged, so the provider does not retry it for days. A
/// queue or storage failure answers 503 so the provider delivers the webhook again;
/// everything downstream is idempotent.
async fn hand_on(
    sink: &Arc<dyn WebhookSink>,
    provider: WebhookProvider,
    sid: Option<String>,
    body: Bytes,
) -> Response {
    let Some(body) = inbound_queue::json_text(&body) else {
        tracing::warn!(?provider, "webhook body cannot be JSON; acknowledged");
        return (StatusCode::OK, Json(json!({"applied": 0, "ignored": 0}))).into_response();
    };
    // Wall-clock receive time, kept with the body for diagnosis only.
    let webhook = QueuedWebhook::new(provider, chrono::Utc::now(), sid, body);
    let result = sink.take(webhook).await;
    match result {
        Ok(answer) => (StatusCode::OK, Json(answer)).into_response(),
        Err(SinkError::TooLarge) => too_large(),
        Err(SinkError::Unavailable(e)) => {
            tracing::error!(error = %e, "webhook not taken; the provider will retry");
            (
                StatusCode::SERVICE_UNAVAILABLE,
                Json(json!({"error": "unavailable", "message": "try again"})),
            )
                .into_response()
        }
    }
}

/// Kaleyra's callbacks: Kaleyra signs nothing, so the callback URL a tenant registers
/// with it names its Kaleyra account (`?sid=`) and carries that SID's token (`?token=`, or
/// the `X-Kaleyra-Token` header from a proxy): [`kaleyra::callback_token`] under the
/// deployment's secret, which itself opens nothing. Replies find the interaction of
/// `<sid>:<from>`; statuses apply only to entries of the SID's owner.
pub struct KaleyraHookState {
    pub sink: Arc<dyn WebhookSink>,
    /// The deployment's callback secret: each SID's token is derived from it.
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
    if body.len() > inbound_queue::MAX_BODY_BYTES {
        return too_large();
    }
    let given = q
        .token
        .as_deref()
        .or_else(|| headers.get("x-kaleyra-token").and_then(|v| v.to_str().ok()));
    if !kaleyra::verify_kaleyra_callback(&s.token, q.sid.as_deref(), given) {
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
    hand_on(&s.sink, WebhookProvider::Kaleyra, q.sid, body).await
}

/// Twilio's callbacks (status callbacks and inbound SMS) of one account, at
/// `/webhooks/twilio/{tenant}/{account_id}`: Twilio signs each with the account's auth
/// token over the full URL it called and the POST parameters (`X-Twilio-Signature`), so
/// the route reads the account the path names, resolves its token and verifies before
/// anything is queued. A wrong signature, an unknown or non-Twilio account, or a token
/// that is not there is a 401 and changes nothing.
pub struct TwilioHookState {
    pub sink: Arc<dyn WebhookSink>,
    pub table: Arc<dyn Table>,
    pub secrets: Arc<dyn Secrets>,
    /// Twilio's callbacks carry no time: a status or message is dated when it arrives.
    pub clock: Arc<dyn Clock>,
    /// The public base URL Twilio was given (`PUBLIC_WEBHOOK_URL`); none: `https://` and
    /// the request's `Host` (a Lambda function URL's own domain).
    pub public_base: Option<String>,
}

pub fn twilio_router(state: Arc<TwilioHookState>) -> Router {
    Router::new()
        .route(
            "/webhooks/twilio/{tenant}/{account_id}",
            axum::routing::post(receive_twilio),
        )
        .with_state(state)
}

/// What Twilio is answered: an empty TwiML response (it reads the answer to an inbound
/// message as TwiML, and sends nothing for an empty one).
const EMPTY_TWIML: &str = "<?xml version=\"1.0\" encoding=\"UTF-8\"?><Response></Response>";

fn unauthorized(message: &str) -> Response {
    (
        StatusCode::UNAUTHORIZED,
        Json(json!({"error": "unauthorized", "message": message})),
    )
        .into_response()
}

/// The URL Twilio called, as it signed it.
fn called_url(base: Option<&str>, headers: &HeaderMap, uri: &axum::http::Uri) -> Option<String> {
    let base = match base {
        Some(b) => b.trim_end_matches('/').to_owned(),
        None => format!("https://{}", headers.get("host")?.to_str().ok()?),
    };
    let path = uri.path_and_query().map_or(uri.path(), |p| p.as_str());
    Some(format!("{base}{path}"))
}

async fn receive_twilio(
    State(s): State<Arc<TwilioHookState>>,
    axum::extract::Path((tenant, account_id)): axum::extract::Path<(String, String)>,
    uri: axum::http::Uri,
    headers: HeaderMap,
    body: Bytes,
) -> Response {
    if body.len() > inbound_queue::MAX_BODY_BYTES {
        return too_large();
    }
    let account = match crate::repo::get_account(&*s.table, &tenant, &account_id).await {
        Ok(Some(a)) if a.provider == crate::domain::account::Provider::Twilio => a,
        Ok(_) => {
            tracing::warn!(account_id = %account_id, "twilio callback for no twilio account");
            return unauthorized("invalid signature");
        }
        Err(e) => return unavailable(&e.to_string()),
    };
    let token = match crate::providers::credential(&*s.secrets, &account, "Twilio").await {
        Ok(t) => t,
        Err(f) if f.class == crate::domain::outcome::FailureClass::NotAttempted => {
            return unavailable(&f.reason)
        }
        Err(_) => return unauthorized("invalid signature"),
    };
    let params = twilio::form_params(&body);
    let sig = headers
        .get(twilio::SIGNATURE_HEADER)
        .and_then(|v| v.to_str().ok());
    let url = called_url(s.public_base.as_deref(), &headers, &uri);
    let valid = url
        .as_deref()
        .is_some_and(|u| twilio::verify_signature(&token, u, &params, sig));
    if !valid {
        tracing::warn!(account_id = %account.id, has_header = sig.is_some(), "twilio signature rejected");
        return unauthorized("invalid signature");
    }
    let r#ref = uri.query().and_then(|q| {
        form_urlencoded::parse(q.as_bytes())
            .find(|(k, _)| k == twilio::REF_PARAM)
            .map(|(_, v)| v.into_owned())
    });
    let cb = twilio::Callback { r#ref, params };
    let body = serde_json::to_string(&cb).expect("a callback serialises");
    let webhook = QueuedWebhook::new(
        WebhookProvider::Twilio,
        s.clock.now(),
        Some(account.sender_id.clone()),
        body,
    );
    match s.sink.take(webhook).await {
        Ok(_) => (
            StatusCode::OK,
            [(axum::http::header::CONTENT_TYPE, "text/xml")],
            EMPTY_TWIML,
        )
            .into_response(),
        Err(SinkError::TooLarge) => too_large(),
        Err(SinkError::Unavailable(e)) => unavailable(&e),
    }
}

fn unavailable(e: &str) -> Response {
    tracing::error!(error = %e, "webhook not taken; the provider will retry");
    (
        StatusCode::SERVICE_UNAVAILABLE,
        Json(json!({"error": "unavailable", "message": "try again"})),
    )
        .into_response()
}
