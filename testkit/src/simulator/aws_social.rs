//! AWS End User Messaging Social: `SendWhatsAppMessage` (`POST /v1/whatsapp/send`,
//! restJson1, SigV4) and the events AWS publishes on the WABA's SNS topic, handed to an
//! [`AwsEventSink`] (the in-memory inbound queue, or a topic of the emulator).
//!
//! As strict as the service where the engine can go wrong: a request must be SigV4-signed
//! for the `social-messaging` service, name an origination phone number id
//! (`phone-number-id-<id>`) and a Meta API version (`v<N>.<M>`), and carry a base64 Meta
//! message that passes Meta's schema. Refusals answer as AWS does: the exception's name in
//! `x-amzn-ErrorType` and `{"message": ..}`. Meta's own refusals (configured failures) come
//! back as `ValidationException` (a 4xx from Meta) or `DependencyException` (a 5xx) whose
//! message quotes Meta's code, `(#131026) Message undeliverable`; the throughput limit as
//! `ThrottledRequestException`. (How AWS words Meta's refusals is not documented; this is
//! the simulator's choice, and the adapter reads Meta's code wherever it is quoted.)

use super::*;
use base64::Engine as _;

/// The origination phone number ids the local runner grants every tenant (what the
/// secret an `aws_social` account's `token_ref` names holds there).
pub const SIM_AWS_PHONE_NUMBER_IDS: [&str; 2] = [
    "phone-number-id-00000000000000000000000000000001",
    "phone-number-id-00000000000000000000000000000002",
];

/// Where the simulator publishes AWS End User Messaging Social events (the JSON AWS puts
/// on the WABA's SNS topic).
#[async_trait::async_trait]
pub trait AwsEventSink: Send + Sync {
    async fn publish(&self, event: String) -> Result<(), String>;
}

/// Events straight onto a queue, as an SNS subscription with raw message delivery puts
/// them on the inbound queue.
pub struct QueueEvents(pub Arc<dyn shared::ports::Queue>);

#[async_trait::async_trait]
impl AwsEventSink for QueueEvents {
    async fn publish(&self, event: String) -> Result<(), String> {
        self.0
            .send(vec![shared::ports::OutMessage {
                body: event,
                delay_secs: 0,
            }])
            .await
            .map_err(|e| e.to_string())
    }
}

/// Events published on an SNS topic (the emulator's), as AWS publishes them on the WABA's
/// event destination; an SQS subscription carries them to the inbound queue.
pub struct SnsEvents {
    pub client: aws_sdk_sns::Client,
    pub topic_arn: String,
}

#[async_trait::async_trait]
impl AwsEventSink for SnsEvents {
    async fn publish(&self, event: String) -> Result<(), String> {
        self.client
            .publish()
            .topic_arn(&self.topic_arn)
            .message(event)
            .send()
            .await
            .map(|_| ())
            .map_err(|e| aws_sdk_sns::error::DisplayErrorContext(e).to_string())
    }
}

/// Meta's phone number id behind an origination id: stable digits, as Meta's ids are.
pub fn meta_phone_number_id(origination_id: &str) -> String {
    format!("1{:014}", stable_hash(origination_id) % 100_000_000_000_000)
}

fn aws_error(status: StatusCode, name: &str, message: &str) -> Response {
    (
        status,
        [("x-amzn-ErrorType", name)],
        Json(json!({ "message": message })),
    )
        .into_response()
}

/// The request is SigV4-signed for the service (the signature itself is not checked: the
/// simulator holds no secret key).
fn signed_for_service(headers: &HeaderMap) -> bool {
    let auth = headers
        .get(axum::http::header::AUTHORIZATION)
        .and_then(|h| h.to_str().ok())
        .unwrap_or_default();
    auth.starts_with("AWS4-HMAC-SHA256 Credential=")
        && auth.contains("/social-messaging/aws4_request")
        && auth.contains("Signature=")
        && headers.contains_key("x-amz-date")
}

fn valid_version(v: &str) -> bool {
    v.strip_prefix('v')
        .and_then(|r| r.split_once('.'))
        .is_some_and(|(a, b)| {
            !a.is_empty()
                && !b.is_empty()
                && a.chars().all(|c| c.is_ascii_digit())
                && b.chars().all(|c| c.is_ascii_digit())
        })
}

pub(super) async fn aws_send(
    State(inner): State<Arc<Inner>>,
    headers: HeaderMap,
    body: Bytes,
) -> Response {
    if !signed_for_service(&headers) {
        return aws_error(
            StatusCode::FORBIDDEN,
            "AccessDeniedException",
            "Missing Authentication Token",
        );
    }
    let Ok(input) = serde_json::from_slice::<Value>(&body) else {
        return aws_error(
            StatusCode::BAD_REQUEST,
            "ValidationException",
            "the request body is not JSON",
        );
    };
    let field = |name: &str| input.get(name).and_then(Value::as_str).unwrap_or_default();
    let origination = field("originationPhoneNumberId");
    if !origination
        .strip_prefix("phone-number-id-")
        .is_some_and(|id| !id.is_empty() && id.chars().all(|c| c.is_ascii_alphanumeric()))
    {
        return aws_error(
            StatusCode::BAD_REQUEST,
            "ValidationException",
            "1 validation error detected: Value at 'originationPhoneNumberId' failed to satisfy constraint",
        );
    }
    let version = field("metaApiVersion");
    if !valid_version(version) {
        return aws_error(
            StatusCode::BAD_REQUEST,
            "ValidationException",
            "1 validation error detected: Value at 'metaApiVersion' failed to satisfy constraint",
        );
    }
    let Ok(message) = base64::engine::general_purpose::STANDARD.decode(field("message")) else {
        return aws_error(
            StatusCode::BAD_REQUEST,
            "ValidationException",
            "1 validation error detected: Value at 'message' is not base64",
        );
    };
    let (req, to, template) = match template_request(&message, crate::meta_schema::violations) {
        Ok(parts) => parts,
        Err(details) => {
            return aws_error(
                StatusCode::BAD_REQUEST,
                "ValidationException",
                &format!("(#100) Invalid parameter: {details}"),
            )
        }
    };
    let admission = admit(&inner, SimProvider::AwsSocial, origination, &to, None);
    super::send_api::provider_latency(&inner).await;
    match admission {
        Admission::Accept => {}
        Admission::Throttle(limit) => {
            return aws_error(
                StatusCode::TOO_MANY_REQUESTS,
                "ThrottledRequestException",
                &format!("Rate exceeded (simulated limit: {limit} messages/s per number)"),
            )
        }
        Admission::Fail(f) => {
            let (status, _, message) = meta_failure_parts(f.meta_code(), None);
            let name = if status.is_server_error() {
                "DependencyException"
            } else {
                "ValidationException"
            };
            let status = if status.is_server_error() {
                StatusCode::BAD_GATEWAY
            } else {
                StatusCode::BAD_REQUEST
            };
            return aws_error(status, name, &message);
        }
    }
    let record = sent_record(
        &inner,
        SimProvider::AwsSocial,
        version.to_owned(),
        origination.to_owned(),
        &req,
        &to,
        &template,
    );
    let wamid = record.wamid.clone();
    inner.state.lock().unwrap().sent.push(record.clone());
    tracing::debug!(wamid = %wamid, template = %record.template, "simulator accepted a template (AWS)");
    if inner.aws_sink.lock().unwrap().is_some() {
        let guard = PendingGuard::new(&inner);
        tokio::spawn(async move {
            status_flow(&guard.0, &record).await;
            drop(guard);
        });
    }
    Json(json!({ "messageId": wamid })).into_response()
}

/// Publishes a Meta webhook body (`{"object":..,"entry":[entry]}`) about the number
/// `origination_id` as AWS does, records and returns what happened.
pub(super) async fn deliver_aws(
    inner: &Inner,
    origination_id: &str,
    kind: WebhookKind,
    message_id: &str,
    phone: &str,
    body: &Value,
) -> WebhookRecord {
    let entry = body.pointer("/entry/0").cloned().unwrap_or(Value::Null);
    let event = shared::providers::aws_social::event_for(
        &entry,
        SIM_WABA_ID,
        &meta_phone_number_id(origination_id),
        origination_id,
    )
    .to_string();
    let sink = inner.aws_sink.lock().unwrap().clone();
    let (answered, error) = match sink {
        None => (None, Some("no AWS event sink".to_owned())),
        Some(sink) => match sink.publish(event.clone()).await {
            Ok(()) => (Some(200), None),
            Err(e) => (None, Some(e)),
        },
    };
    if let Some(e) = &error {
        tracing::warn!(kind = ?kind, message_id, error = %e, "simulator AWS event not published");
    }
    let record = WebhookRecord {
        kind,
        message_id: message_id.to_owned(),
        phone: phone.to_owned(),
        body: event,
        answered,
        error,
        at: inner.clock.now(),
    };
    inner.state.lock().unwrap().webhooks.push(record.clone());
    record
}
