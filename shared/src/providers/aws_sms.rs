//! SMS through AWS End User Messaging SMS (`pinpoint-sms-voice-v2`, PROVIDERS.md section
//! 6): `SendTextMessage` from the account's origination number, signed with the
//! deployment's AWS role; delivery events of the deployment's configuration set and
//! two-way inbound messages arrive on SNS topics whose SQS subscriptions feed the inbound
//! worker ([`parse_event`]).
//!
//! - **Account:** `sender_id` is the origination number in E.164 (`+15550001111`), as the
//!   events name it; `token_ref` names a **grant**, a secret of the tenant listing the
//!   numbers it may send from (the role may send from every number of the AWS account).
//! - **Send:** `DestinationPhoneNumber`, `OriginationIdentity`, `MessageBody`,
//!   `MessageType` `TRANSACTIONAL`, the deployment's `ConfigurationSetName` (its event
//!   destination is the events topic), the account's optional protect configuration, and
//!   `Context` `{"ref": <entry and attempt>}`, which the events carry back.
//! - **Errors:** by exception name and reason ([`classify_aws_sms`]): AWS's own opt-out
//!   list refuses an opted-out number (`ConflictException`,
//!   `DESTINATION_PHONE_NUMBER_OPTED_OUT`): recorded as opted out, not failed.
//! - **Events:** `TEXT_SUCCESSFUL` is sent, `TEXT_DELIVERED` delivered, the blocked,
//!   invalid, unreachable, spam and expired ones failed; `TEXT_UNKNOWN` (no receipt came
//!   within 72 hours) and the pending and queued ones change nothing.
//!
//! Nothing here logs a full phone number: phones appear masked.

use crate::domain::account::{grants_number, Account};
use crate::domain::inbound::{EntryRef, Inbound, InboundMessage, StatusKind, StatusUpdate};
use crate::domain::outcome::{redact_numbers, FailureClass, SendFailure};
use crate::domain::phone::PhoneNumber;
use crate::domain::Time;
use crate::ports::{Accepted, MessagingProvider, OutboundSms, OutboundTemplate, Secrets};
use async_trait::async_trait;
use aws_sdk_pinpointsmsvoicev2::config::retry::RetryConfig;
use aws_sdk_pinpointsmsvoicev2::config::timeout::TimeoutConfig;
use aws_sdk_pinpointsmsvoicev2::error::{ProvideErrorMetadata, SdkError};
use aws_sdk_pinpointsmsvoicev2::operation::send_text_message::SendTextMessageError;
use aws_sdk_pinpointsmsvoicev2::types::MessageType;
use serde_json::Value;
use std::sync::Arc;

/// The provider's name in reasons and logs.
const NAME: &str = "AWS End User Messaging SMS";
/// The key of the send's `Context` that names the entry and attempt.
pub const REF_KEY: &str = "ref";
/// AWS's refusal of a number on the account's opt-out list.
pub const OPTED_OUT_REASON: &str = "DESTINATION_PHONE_NUMBER_OPTED_OUT";

/// `MessagingProvider` over `SendTextMessage` (SMS only).
#[derive(Clone)]
pub struct AwsSmsProvider {
    client: aws_sdk_pinpointsmsvoicev2::Client,
    /// The deployment's configuration set, whose event destination is the events topic;
    /// none sends without one (no delivery events).
    configuration_set: Option<String>,
    /// The protect configuration sends name (`ProtectConfigurationId`); none: the AWS
    /// account's default.
    protect_configuration: Option<String>,
    secrets: Arc<dyn Secrets>,
}

impl std::fmt::Debug for AwsSmsProvider {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("AwsSmsProvider")
            .field("configuration_set", &self.configuration_set)
            .field("protect_configuration", &self.protect_configuration)
            .finish_non_exhaustive()
    }
}

impl AwsSmsProvider {
    /// A client on `sdk`, at `endpoint` when given (tests, the local runner: the
    /// simulator), never retrying a send on its own (a second attempt after a lost answer
    /// could send twice), with the Meta adapter's timeouts.
    pub fn new(
        sdk: &aws_config::SdkConfig,
        endpoint: Option<&str>,
        configuration_set: Option<String>,
        secrets: Arc<dyn Secrets>,
    ) -> Self {
        let mut conf = aws_sdk_pinpointsmsvoicev2::config::Builder::from(sdk)
            .retry_config(RetryConfig::disabled())
            .timeout_config(
                TimeoutConfig::builder()
                    .connect_timeout(super::CONNECT_TIMEOUT)
                    .operation_timeout(super::REQUEST_TIMEOUT)
                    .build(),
            );
        if let Some(url) = endpoint {
            conf = conf.endpoint_url(url);
        }
        AwsSmsProvider {
            client: aws_sdk_pinpointsmsvoicev2::Client::from_conf(conf.build()),
            configuration_set: configuration_set.filter(|c| !c.trim().is_empty()),
            protect_configuration: None,
            secrets,
        }
    }

    /// Sends under this protect configuration (none: the account's default).
    pub fn with_protect_configuration(mut self, id: Option<String>) -> Self {
        self.protect_configuration = id.filter(|c| !c.trim().is_empty());
        self
    }
}

/// What AWS's refusal means, by exception name, `Reason` and HTTP status.
pub fn classify_aws_sms(error_type: &str, reason: Option<&str>, http_status: u16) -> FailureClass {
    use FailureClass::*;
    match (error_type, reason) {
        ("ConflictException", Some(OPTED_OUT_REASON)) => OptedOut,
        // A destination the account may not reach (a sandbox's unverified number, a
        // blocked country) is this contact's.
        ("ConflictException", Some("DESTINATION_PHONE_NUMBER_NOT_VERIFIED"))
        | ("ValidationException", Some("DESTINATION_COUNTRY_BLOCKED"))
        | ("ValidationException", Some("CANNOT_PARSE"))
        | ("ValidationException", Some("INVALID_IDENTITY_FOR_DESTINATION_COUNTRY")) => Permanent,
        ("ThrottlingException", _) => Temporary,
        // The number, role, spend limit or message is at fault: every send would fail alike.
        ("AccessDeniedException", _)
        | ("ResourceNotFoundException", _)
        | ("ServiceQuotaExceededException", _)
        | ("ValidationException", _)
        | ("ConflictException", _) => Campaign,
        ("InternalServerException", _) => Unknown,
        _ if http_status >= 500 => Unknown,
        _ => Temporary,
    }
}

fn refusal(error_type: &str, reason: Option<&str>, message: &str, status: u16) -> SendFailure {
    let class = classify_aws_sms(error_type, reason, status);
    let why = match reason {
        Some(r) => format!("{error_type} {r}"),
        None => error_type.to_owned(),
    };
    SendFailure {
        class,
        code: None,
        reason: if message.is_empty() {
            format!("{NAME}: {why}")
        } else {
            format!("{NAME}: {why}: {}", redact_numbers(message))
        },
    }
}

/// What an SDK error means for the send (see the module).
fn failure_of(
    e: SdkError<SendTextMessageError, aws_sdk_pinpointsmsvoicev2::config::http::HttpResponse>,
) -> SendFailure {
    match &e {
        SdkError::ServiceError(se) => {
            let err = se.err();
            let reason = match err {
                SendTextMessageError::ConflictException(c) => c.reason().map(|r| r.as_str()),
                SendTextMessageError::ValidationException(v) => v.reason().map(|r| r.as_str()),
                _ => None,
            };
            refusal(
                err.code().unwrap_or_default(),
                reason,
                err.message().unwrap_or_default(),
                se.raw().status().as_u16(),
            )
        }
        SdkError::ConstructionFailure(_) => {
            SendFailure::transport(format!("{NAME} request not built: {e}"))
        }
        SdkError::DispatchFailure(_) if super::aws_social::connection_refused(&e) => {
            SendFailure::transport(format!("{NAME} connect error: {e}"))
        }
        SdkError::TimeoutError(_) => SendFailure::outcome_unknown(format!("{NAME} timeout: {e}")),
        _ => SendFailure::outcome_unknown(format!("{NAME} request error: {e}")),
    }
}

#[async_trait]
impl MessagingProvider for AwsSmsProvider {
    async fn send(
        &self,
        _account: &Account,
        _msg: &OutboundTemplate,
    ) -> Result<Accepted, SendFailure> {
        Err(SendFailure {
            class: FailureClass::Campaign,
            code: None,
            reason: "an aws_sms account sends SMS, not WhatsApp templates".to_owned(),
        })
    }

    async fn send_sms(
        &self,
        account: &Account,
        msg: &OutboundSms,
    ) -> Result<Accepted, SendFailure> {
        let grant = super::credential(&*self.secrets, account, NAME).await?;
        if !grants_number(&grant, &account.sender_id) {
            tracing::warn!(account = %account.id, grant = %account.token_ref, "number not granted to the tenant; refused");
            return Err(SendFailure {
                class: FailureClass::Campaign,
                code: None,
                reason: format!(
                    "{} is not granted to this tenant: {} does not list it",
                    account.sender_id, account.token_ref
                ),
            });
        }
        let to = msg.to.masked();
        tracing::debug!(account = %account.id, to = %to, segments = msg.segments, "aws sms send");
        let mut req = self
            .client
            .send_text_message()
            .destination_phone_number(format!("+{}", msg.to.as_str()))
            .origination_identity(&account.sender_id)
            .message_body(&msg.body)
            .message_type(MessageType::Transactional);
        if !msg.callback_data.is_empty() {
            req = req.context(REF_KEY, &msg.callback_data);
        }
        if let Some(set) = &self.configuration_set {
            req = req.configuration_set_name(set);
        }
        if let Some(protect) = &self.protect_configuration {
            req = req.protect_configuration_id(protect);
        }
        let answered = match req.send().await {
            Ok(o) => Ok(o.message_id().map(str::to_owned)),
            Err(e) => Err(failure_of(e)),
        };
        super::sdk_outcome(NAME, account, &to, answered)
    }
}

// ---------------------------------------------------------------------------------------
// Events

/// Why an event could not be read.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("not an AWS End User Messaging SMS event: {0}")]
pub struct EventError(String);

/// Whether a record's JSON is an AWS End User Messaging SMS event: a delivery event
/// (`eventType` `TEXT_...`) or a two-way inbound message (`inboundMessageId`), raw or
/// inside SNS's notification (then with SNS's `Timestamp`).
fn sms_event(value: &Value) -> Option<(Value, Option<Time>)> {
    let (inner, at) = match value.get("Type").and_then(Value::as_str) {
        Some("Notification") => {
            let at = str_of(value, "Timestamp")
                .and_then(|t| chrono::DateTime::parse_from_rfc3339(t).ok())
                .map(|t| t.with_timezone(&chrono::Utc));
            (
                serde_json::from_str(value.get("Message")?.as_str()?).ok()?,
                at,
            )
        }
        _ => (value.clone(), None),
    };
    let text_event = inner
        .get("eventType")
        .and_then(Value::as_str)
        .is_some_and(|t| t.starts_with("TEXT_"));
    (text_event || inner.get("inboundMessageId").is_some()).then_some((inner, at))
}

/// The events of one SQS record, or `None` when it is not an AWS End User Messaging SMS
/// event (then it is something else the inbound queue carries). A two-way message
/// carries no time of its own: it is dated by SNS's `Timestamp` when wrapped, else
/// `received` (when the worker read it).
pub fn parse_event(record: &str, received: Time) -> Option<Result<Vec<Inbound>, EventError>> {
    let value: Value = serde_json::from_str(record).ok()?;
    let (event, at) = sms_event(&value)?;
    Some(events_of(&event, at.unwrap_or(received)))
}

fn str_of<'a>(v: &'a Value, key: &str) -> Option<&'a str> {
    v.get(key)
        .and_then(Value::as_str)
        .map(str::trim)
        .filter(|s| !s.is_empty())
}

/// Milliseconds since the epoch, as AWS writes `eventTimestamp`.
fn time_of(v: &Value, key: &str) -> Option<Time> {
    let ms = v.get(key)?.as_i64()?;
    chrono::DateTime::from_timestamp_millis(ms)
}

fn events_of(e: &Value, received: Time) -> Result<Vec<Inbound>, EventError> {
    if e.get("inboundMessageId").is_some() {
        return inbound_message(e, received).map(|m| vec![Inbound::Message(m)]);
    }
    let event_type = str_of(e, "eventType").unwrap_or_default();
    let status = match event_type {
        "TEXT_SUCCESSFUL" => StatusKind::Sent,
        "TEXT_DELIVERED" => StatusKind::Delivered,
        "TEXT_BLOCKED"
        | "TEXT_CARRIER_BLOCKED"
        | "TEXT_INVALID"
        | "TEXT_INVALID_MESSAGE"
        | "TEXT_UNREACHABLE"
        | "TEXT_CARRIER_UNREACHABLE"
        | "TEXT_SPAM"
        | "TEXT_TTL_EXPIRED" => {
            let detail = str_of(e, "messageStatusDescription")
                .or_else(|| str_of(e, "messageStatus"))
                .unwrap_or(event_type);
            StatusKind::Failed {
                code: None,
                reason: format!("{event_type}: {}", redact_numbers(detail)),
                class: None,
            }
        }
        // TEXT_PENDING, TEXT_QUEUED: on its way; TEXT_UNKNOWN: no receipt within 72 hours.
        _ => return Ok(Vec::new()),
    };
    let message_id = str_of(e, "messageId").ok_or_else(|| EventError("no messageId".into()))?;
    let at = time_of(e, "eventTimestamp").ok_or_else(|| EventError("no eventTimestamp".into()))?;
    let (entry, attempt) = match e
        .pointer("/context/ref")
        .and_then(Value::as_str)
        .and_then(EntryRef::decode_attempt)
    {
        Some((r, a)) => (Some(r), a),
        None => (None, None),
    };
    Ok(vec![Inbound::Status(StatusUpdate {
        message_id: message_id.to_owned(),
        status,
        at,
        entry,
        attempt,
        sender_id: str_of(e, "originationPhoneNumber").map(str::to_owned),
        user_id: None,
        recipient: str_of(e, "destinationPhoneNumber").and_then(|p| PhoneNumber::parse(p).ok()),
    })])
}

/// A two-way message: `originationNumber` is the contact, `destinationNumber` our number.
fn inbound_message(e: &Value, at: Time) -> Result<InboundMessage, EventError> {
    let from = str_of(e, "originationNumber")
        .and_then(|p| PhoneNumber::parse(p).ok())
        .ok_or_else(|| EventError("no originationNumber".into()))?;
    let ours =
        str_of(e, "destinationNumber").ok_or_else(|| EventError("no destinationNumber".into()))?;
    let id =
        str_of(e, "inboundMessageId").ok_or_else(|| EventError("no inboundMessageId".into()))?;
    Ok(InboundMessage {
        sms: true,
        sender_id: ours.to_owned(),
        from,
        message_id: id.to_owned(),
        at,
        context_id: str_of(e, "previousPublishedMessageId").map(str::to_owned),
        text: str_of(e, "messageBody").map(str::to_owned),
        button: None,
        user_id: None,
    })
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    fn now() -> Time {
        chrono::DateTime::from_timestamp(1_751_400_100, 0).unwrap()
    }

    #[test]
    fn refusals_are_classified_by_name_and_reason() {
        use FailureClass::*;
        assert_eq!(
            classify_aws_sms("ConflictException", Some(OPTED_OUT_REASON), 409),
            OptedOut
        );
        assert_eq!(
            classify_aws_sms("ThrottlingException", None, 400),
            Temporary
        );
        assert_eq!(
            classify_aws_sms("AccessDeniedException", None, 403),
            Campaign
        );
        assert_eq!(
            classify_aws_sms("ServiceQuotaExceededException", None, 402),
            Campaign
        );
        assert_eq!(
            classify_aws_sms(
                "ValidationException",
                Some("DESTINATION_COUNTRY_BLOCKED"),
                400
            ),
            Permanent
        );
        assert_eq!(
            classify_aws_sms("InternalServerException", None, 500),
            Unknown
        );
    }

    #[test]
    fn delivery_events_become_statuses_of_their_entry() {
        let ev = json!({"eventType": "TEXT_DELIVERED", "eventVersion": "1.0",
            "eventTimestamp": 1_751_400_000_000_i64, "isFinal": true,
            "originationPhoneNumber": "+15550001111", "destinationPhoneNumber": "+14155550101",
            "messageId": "m-1", "messageStatus": "DELIVERED", "totalMessageParts": 1,
            "context": {"ref": "ce1|acme|cmp_1|3|14155550101|2"}});
        let got = parse_event(&ev.to_string(), now()).unwrap().unwrap();
        let [Inbound::Status(s)] = &got[..] else {
            panic!("{got:?}")
        };
        assert_eq!(
            (s.status.clone(), s.attempt),
            (StatusKind::Delivered, Some(2))
        );
        assert_eq!(s.sender_id.as_deref(), Some("+15550001111"));
        assert_eq!(s.entry.as_ref().unwrap().campaign_id, "cmp_1");
        // Wrapped by SNS without raw delivery, the same.
        let wrapped = json!({"Type": "Notification", "Message": ev.to_string()});
        assert_eq!(
            parse_event(&wrapped.to_string(), now()).unwrap().unwrap(),
            got
        );
        let unknown = json!({"eventType": "TEXT_UNKNOWN", "messageId": "m-1", "eventTimestamp": 1});
        assert!(parse_event(&unknown.to_string(), now())
            .unwrap()
            .unwrap()
            .is_empty());
        let blocked = json!({"eventType": "TEXT_CARRIER_BLOCKED", "messageId": "m-2",
            "eventTimestamp": 1_751_400_000_000_i64, "messageStatusDescription": "Blocked by the carrier"});
        let got = parse_event(&blocked.to_string(), now()).unwrap().unwrap();
        assert!(matches!(
            &got[..],
            [Inbound::Status(StatusUpdate {
                status: StatusKind::Failed { .. },
                ..
            })]
        ));
        // Not ours: a WhatsApp event, or a queued webhook.
        assert!(parse_event(&json!({"whatsAppWebhookEntry": "{}"}).to_string(), now()).is_none());
        assert!(parse_event("{\"v\":1}\n{}", now()).is_none());
    }

    #[test]
    fn two_way_messages_are_sms_replies_to_our_number() {
        let ev = json!({"originationNumber": "+14155550101", "destinationNumber": "+15550001111",
            "messageKeyword": "KEYWORD_123", "messageBody": "STOP", "inboundMessageId": "in-1",
            "previousPublishedMessageId": "m-1"});
        let got = parse_event(&ev.to_string(), now()).unwrap().unwrap();
        let [Inbound::Message(m)] = &got[..] else {
            panic!("{got:?}")
        };
        assert!(m.sms);
        assert_eq!(
            (m.sender_id.as_str(), m.text.as_deref()),
            ("+15550001111", Some("STOP"))
        );
        assert_eq!(m.from.as_str(), "14155550101");
        assert_eq!(m.at, now(), "dated when read");
    }
}
