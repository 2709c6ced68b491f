//! AWS End User Messaging SMS (`pinpoint-sms-voice-v2`), as the SDK speaks it: AWS JSON
//! 1.0, `POST /` with `X-Amz-Target: PinpointSMSVoiceV2.SendTextMessage`, SigV4-signed
//! for `sms-voice`. It checks the request as the service does (`DestinationPhoneNumber`
//! and `OriginationIdentity` present and in E.164, one of [`SIM_AWS_SMS_NUMBERS`], a body
//! of at most 1,600 characters, `MessageType`, `ConfigurationSetName`), answers
//! `{"MessageId": ..}` or the service's error (`__type`, `message`, `Reason`), and then
//! publishes the configuration set's events (`TEXT_SUCCESSFUL`, `TEXT_DELIVERED`, with
//! the send's `context`) and, for a share of the contacts, a two-way reply on the AWS
//! event sink, as SNS delivers them to the inbound queue. A contact that texts STOP is on
//! AWS's opt-out list: later sends answer `ConflictException`
//! `DESTINATION_PHONE_NUMBER_OPTED_OUT`.

use super::*;
use shared::domain::sms;

/// The origination numbers the simulated AWS account owns.
pub const SIM_AWS_SMS_NUMBERS: [&str; 2] = ["+15550001111", "+15550002222"];

/// The protect configuration the simulated AWS account has.
pub const SIM_AWS_PROTECT_CONFIGURATION: &str = shared::compose::SIMULATED_PROTECT_CONFIGURATION;

const TARGET: &str = "PinpointSMSVoiceV2.SendTextMessage";

fn sms_error(status: StatusCode, name: &str, message: &str, reason: Option<&str>) -> Response {
    let mut body = json!({ "__type": name, "message": message });
    if let Some(r) = reason {
        body["Reason"] = json!(r);
    }
    (
        status,
        [("content-type", "application/x-amz-json-1.0")],
        body.to_string(),
    )
        .into_response()
}

pub(super) fn e164(s: &str) -> bool {
    s.strip_prefix('+')
        .is_some_and(|d| (8..=15).contains(&d.len()) && d.bytes().all(|b| b.is_ascii_digit()))
}

/// `POST /`: AWS JSON 1.0 operations; only `SendTextMessage` is served.
pub(super) async fn aws_json(
    State(inner): State<Arc<Inner>>,
    headers: HeaderMap,
    body: Bytes,
) -> Response {
    let target = headers
        .get("x-amz-target")
        .and_then(|v| v.to_str().ok())
        .unwrap_or_default();
    if target != TARGET {
        return sms_error(
            StatusCode::BAD_REQUEST,
            "UnknownOperationException",
            &format!("the simulator serves {TARGET} only"),
            None,
        );
    }
    let auth = headers
        .get(axum::http::header::AUTHORIZATION)
        .and_then(|h| h.to_str().ok())
        .unwrap_or_default();
    if !(auth.starts_with("AWS4-HMAC-SHA256 Credential=")
        && auth.contains("/sms-voice/aws4_request"))
    {
        return sms_error(
            StatusCode::FORBIDDEN,
            "AccessDeniedException",
            "Missing Authentication Token",
            None,
        );
    }
    let Ok(input) = serde_json::from_slice::<Value>(&body) else {
        return sms_error(
            StatusCode::BAD_REQUEST,
            "ValidationException",
            "the request body is not JSON",
            Some("CANNOT_PARSE"),
        );
    };
    send_text_message(&inner, &input).await
}

async fn send_text_message(inner: &Arc<Inner>, input: &Value) -> Response {
    let field = |name: &str| input.get(name).and_then(Value::as_str).unwrap_or_default();
    let (to, from, text) = (
        field("DestinationPhoneNumber"),
        field("OriginationIdentity"),
        field("MessageBody"),
    );
    let invalid = |what: &str| {
        sms_error(
            StatusCode::BAD_REQUEST,
            "ValidationException",
            &format!("1 validation error detected: Value at '{what}' failed to satisfy constraint"),
            Some("FIELD_VALIDATION_FAILED"),
        )
    };
    if !e164(to) {
        return invalid("destinationPhoneNumber");
    }
    if text.is_empty() || text.chars().count() > 1600 {
        return invalid("messageBody");
    }
    if !matches!(field("MessageType"), "" | "TRANSACTIONAL" | "PROMOTIONAL") {
        return invalid("messageType");
    }
    let protect = field("ProtectConfigurationId");
    if !protect.is_empty() && protect != SIM_AWS_PROTECT_CONFIGURATION {
        return sms_error(
            StatusCode::NOT_FOUND,
            "ResourceNotFoundException",
            &format!("protect configuration {protect} not found"),
            None,
        );
    }
    if !SIM_AWS_SMS_NUMBERS.contains(&from) {
        return sms_error(
            StatusCode::NOT_FOUND,
            "ResourceNotFoundException",
            &format!("origination identity {from} not found"),
            None,
        );
    }
    let phone = digits(to);
    if inner
        .state
        .lock()
        .unwrap()
        .aws_sms_opted_out
        .contains(&phone)
    {
        return sms_error(
            StatusCode::CONFLICT,
            "ConflictException",
            "the destination phone number is opted out",
            Some(shared::providers::aws_sms::OPTED_OUT_REASON),
        );
    }
    let admission = admit(inner, SimProvider::AwsSms, from, to, None);
    super::send_api::provider_latency(inner).await;
    match admission {
        Admission::Accept => {}
        Admission::Throttle(_) => {
            return sms_error(
                StatusCode::BAD_REQUEST,
                "ThrottlingException",
                "Rate exceeded",
                None,
            )
        }
        Admission::Fail(f) => {
            return match f.kind {
                SimFailureKind::Permanent => sms_error(
                    StatusCode::BAD_REQUEST,
                    "ValidationException",
                    "the destination country is blocked",
                    Some("DESTINATION_COUNTRY_BLOCKED"),
                ),
                SimFailureKind::Temporary => sms_error(
                    StatusCode::BAD_REQUEST,
                    "ThrottlingException",
                    "Rate exceeded",
                    None,
                ),
                SimFailureKind::Campaign => sms_error(
                    StatusCode::FORBIDDEN,
                    "AccessDeniedException",
                    "not authorized to send from this origination identity",
                    None,
                ),
            }
        }
    }
    let n = inner.out_seq.fetch_add(1, Ordering::SeqCst) + 1;
    let message_id = format!("sim-sms-{n:012}");
    let record = SentRecord {
        wamid: message_id.clone(),
        provider: SimProvider::AwsSms,
        version: "2022-03-31".into(),
        phone_number_id: from.to_owned(),
        to: to.to_owned(),
        template: String::new(),
        language: None,
        params: vec![text.to_owned()],
        quick_reply_payloads: Vec::new(),
        url_suffix: None,
        callback_data: input
            .pointer("/Context/ref")
            .and_then(Value::as_str)
            .map(str::to_owned),
        marketing_messages: false,
        options: ["ConfigurationSetName", "ProtectConfigurationId"]
            .into_iter()
            .filter(|k| !field(k).is_empty())
            .map(|k| (k.to_owned(), field(k).to_owned()))
            .collect(),
        at: inner.clock.now(),
    };
    inner.state.lock().unwrap().sent.push(record.clone());
    let with_events =
        !field("ConfigurationSetName").is_empty() && inner.aws_sink.lock().unwrap().is_some();
    if with_events {
        let guard = PendingGuard::new(inner);
        let context = input.get("Context").cloned().unwrap_or(json!({}));
        tokio::spawn(async move {
            aws_sms_flow(&guard.0, &record, &context).await;
            drop(guard);
        });
    }
    Json(json!({ "MessageId": message_id })).into_response()
}

/// Publishes one event on the AWS sink and records it.
async fn publish(
    inner: &Inner,
    event: Value,
    kind: WebhookKind,
    message_id: &str,
    phone: &str,
) -> WebhookRecord {
    let body = event.to_string();
    let sink = inner.aws_sink.lock().unwrap().clone();
    let (answered, error) = match sink {
        None => (None, Some("no AWS event sink".to_owned())),
        Some(sink) => match sink.publish(body.clone()).await {
            Ok(()) => (Some(200), None),
            Err(e) => (None, Some(e)),
        },
    };
    let record = WebhookRecord {
        kind,
        message_id: message_id.to_owned(),
        phone: phone.to_owned(),
        body,
        answered,
        error,
        at: inner.clock.now(),
    };
    inner.state.lock().unwrap().webhooks.push(record.clone());
    record
}

async fn aws_sms_flow(inner: &Arc<Inner>, sent: &SentRecord, context: &Value) {
    let phone = digits(&sent.to);
    let parts = sms::parts(&sent.params[0]).segments;
    for (kind, event_type, status) in [
        (WebhookKind::Sent, "TEXT_SUCCESSFUL", "SUCCESSFUL"),
        (WebhookKind::Delivered, "TEXT_DELIVERED", "DELIVERED"),
    ] {
        pause(inner).await;
        let event = json!({
            "eventType": event_type, "eventVersion": "1.0",
            "eventTimestamp": inner.clock.now().timestamp_millis(),
            "isFinal": kind == WebhookKind::Delivered,
            "originationPhoneNumber": sent.phone_number_id,
            "destinationPhoneNumber": sent.to,
            "isoCountryCode": "US", "messageId": sent.wamid,
            "messageRequestTimestamp": sent.at.timestamp_millis(),
            "messageEncoding": "GSM", "messageType": "TRANSACTIONAL",
            "messageStatus": status, "messageStatusDescription": "Message has been accepted by phone",
            "context": context, "totalMessageParts": parts,
            "totalMessagePrice": 0.00581 * f64::from(parts), "totalCarrierFee": 0.00302 * f64::from(parts),
        });
        publish(inner, event, kind, &sent.wamid, &phone).await;
    }
    if will_reply(&phone, inner.cfg.reply_percent) {
        pause(inner).await;
        let text = inner.cfg.reply_text.clone();
        aws_sms_inbound(
            inner,
            &sent.phone_number_id,
            &sent.to,
            &text,
            Some(&sent.wamid),
        )
        .await;
    }
}

/// A two-way SMS from `contact` to our number `ours`; STOP puts the contact on AWS's
/// opt-out list.
pub(super) async fn aws_sms_inbound(
    inner: &Inner,
    ours: &str,
    contact: &str,
    text: &str,
    previous: Option<&str>,
) -> WebhookRecord {
    let phone = digits(contact);
    if matches!(
        text.trim().to_ascii_uppercase().as_str(),
        "STOP" | "STOPALL" | "UNSUBSCRIBE" | "CANCEL" | "END" | "QUIT" | "OPTOUT"
    ) {
        inner
            .state
            .lock()
            .unwrap()
            .aws_sms_opted_out
            .insert(phone.clone());
    }
    let n = inner.in_seq.fetch_add(1, Ordering::SeqCst) + 1;
    let id = format!("sim-sms-in-{n:012}");
    let mut event = json!({
        "originationNumber": format!("+{phone}"), "destinationNumber": ours,
        "messageKeyword": "KEYWORD_123456789012", "messageBody": text, "inboundMessageId": id,
    });
    if let Some(p) = previous {
        event["previousPublishedMessageId"] = json!(p);
    }
    publish(inner, event, WebhookKind::ReplyText, &id, &phone).await
}

impl Simulator {
    /// The contact `phone` texts `text` to the AWS number its last SMS came from; `None`
    /// when no SMS went to it through AWS.
    pub async fn aws_sms_reply(&self, phone: &str, text: &str) -> Option<WebhookRecord> {
        let phone = digits(phone);
        let last = {
            let st = self.inner.state.lock().unwrap();
            st.sent
                .iter()
                .rev()
                .find(|s| s.provider == SimProvider::AwsSms && digits(&s.to) == phone)
                .cloned()
        }?;
        Some(
            aws_sms_inbound(
                &self.inner,
                &last.phone_number_id,
                &last.to,
                text,
                Some(&last.wamid),
            )
            .await,
        )
    }
}
