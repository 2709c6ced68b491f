//! Voice calls through Amazon Connect (issue 17): `StartOutboundVoiceContact`, signed with
//! the deployment's AWS role, and the instance's contact events, which an EventBridge rule
//! on `aws.connect` puts on the inbound queue ([`parse_event`]).
//!
//! - **Account:** `sender_id` is the Connect instance id; `token_ref` names a **grant**, a
//!   secret of the tenant listing the instance ids it may call through (the role may call
//!   through every instance the stack names); `caller_ids` the claimed numbers calls come
//!   from.
//! - **Call:** `DestinationPhoneNumber`, `InstanceId`, `ContactFlowId`, `QueueId`,
//!   `SourcePhoneNumber` (the campaign's caller id), `ClientToken` (the entry and attempt,
//!   so Connect starts one contact however often the start is sent: the SDK's own retries
//!   of a lost answer send the same token, so they are on), `Attributes` for the flow, and
//!   with answering-machine detection `AnswerMachineDetectionConfig` and `TrafficType`
//!   `CAMPAIGN` (Connect runs detection on campaign traffic only, which needs a quota
//!   increase).
//! - **Errors:** by exception name ([`classify_connect`]).
//! - **Events:** `Amazon Connect Contact Event`s of voice contacts, read leniently (the
//!   documentation spells keys and values in more than one case): the contact id, the
//!   instance, the event type, when the callee answered, the answering-machine result, an
//!   agent, why it ended. Our attributes are not in them: the engine finds a call's entry
//!   by its contact id.
//!
//! Nothing here logs a full phone number: phones appear masked.

use crate::domain::account::{grants_number, Account};
use crate::domain::inbound::{CallEvent, CallEventKind, Inbound};
use crate::domain::outcome::{redact_numbers, FailureClass, SendFailure};
use crate::domain::Time;
use crate::ports::{Accepted, MessagingProvider, OutboundCall, OutboundTemplate, Secrets};
use async_trait::async_trait;
use aws_sdk_connect::config::retry::RetryConfig;
use aws_sdk_connect::config::timeout::TimeoutConfig;
use aws_sdk_connect::error::{ProvideErrorMetadata, SdkError};
use aws_sdk_connect::types::{AnswerMachineDetectionConfig, TrafficType};
use serde_json::Value;
use std::sync::Arc;

/// The provider's name in reasons and logs.
const NAME: &str = "Amazon Connect";
/// The `source` and `detail-type` of a contact event on EventBridge.
pub const EVENT_SOURCE: &str = "aws.connect";
pub const EVENT_DETAIL_TYPE: &str = "Amazon Connect Contact Event";

/// `MessagingProvider` over `StartOutboundVoiceContact` (calls only).
#[derive(Clone)]
pub struct ConnectProvider {
    client: aws_sdk_connect::Client,
    secrets: Arc<dyn Secrets>,
}

impl std::fmt::Debug for ConnectProvider {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("ConnectProvider").finish_non_exhaustive()
    }
}

impl ConnectProvider {
    /// A client on `sdk`, at `endpoint` when given (tests, the local runner: the
    /// simulator). Unlike the messaging adapters it lets the SDK retry a start whose
    /// answer was lost (three attempts): every attempt carries the same client token, so
    /// Connect starts the call once.
    pub fn new(
        sdk: &aws_config::SdkConfig,
        endpoint: Option<&str>,
        secrets: Arc<dyn Secrets>,
    ) -> Self {
        let mut conf = aws_sdk_connect::config::Builder::from(sdk)
            .retry_config(RetryConfig::standard().with_max_attempts(3))
            .timeout_config(
                TimeoutConfig::builder()
                    .connect_timeout(super::CONNECT_TIMEOUT)
                    .operation_attempt_timeout(super::REQUEST_TIMEOUT)
                    .build(),
            );
        if let Some(url) = endpoint {
            conf = conf.endpoint_url(url);
        }
        ConnectProvider {
            client: aws_sdk_connect::Client::from_conf(conf.build()),
            secrets,
        }
    }
}

/// What Connect's refusal means, by exception name and HTTP status.
pub fn classify_connect(error_type: &str, http_status: u16) -> FailureClass {
    use FailureClass::*;
    match error_type {
        // The destination is not allowed from this instance (a country not enabled, a
        // blocked prefix such as the UK's 447): this contact's.
        "DestinationNotAllowedException" => Permanent,
        // Too many calls at once or too fast: nothing was started; back in line.
        "LimitExceededException" | "ThrottlingException" | "TooManyRequestsException" => {
            NotAttempted
        }
        // Outbound calls not enabled, campaign traffic without its quota, an instance,
        // flow or queue that is not there, a role that may not: every call fails alike.
        "OutboundContactNotPermittedException"
        | "ResourceNotFoundException"
        | "InvalidParameterException"
        | "InvalidRequestException"
        | "AccessDeniedException"
        | "UnrecognizedClientException" => Campaign,
        "InternalServiceException" => Unknown,
        _ if http_status >= 500 => Unknown,
        _ => Temporary,
    }
}

fn refusal(error_type: &str, message: &str, status: u16) -> SendFailure {
    let class = classify_connect(error_type, status);
    let name = if error_type.is_empty() {
        format!("HTTP {status}")
    } else {
        error_type.to_owned()
    };
    SendFailure {
        class,
        code: None,
        reason: if message.trim().is_empty() {
            format!("{NAME}: {name}")
        } else {
            format!("{NAME}: {name}: {}", redact_numbers(message.trim()))
        },
    }
}

/// What an SDK error means for the call (see the module).
fn failure_of<E>(e: SdkError<E, aws_sdk_connect::config::http::HttpResponse>) -> SendFailure
where
    E: ProvideErrorMetadata + std::error::Error + Send + Sync + 'static,
{
    match &e {
        SdkError::ServiceError(se) => refusal(
            se.err().code().unwrap_or_default(),
            se.err().message().unwrap_or_default(),
            se.raw().status().as_u16(),
        ),
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
impl MessagingProvider for ConnectProvider {
    async fn send(
        &self,
        _account: &Account,
        _msg: &OutboundTemplate,
    ) -> Result<Accepted, SendFailure> {
        Err(SendFailure {
            class: FailureClass::Campaign,
            code: None,
            reason: "a connect account places calls, not WhatsApp messages".to_owned(),
        })
    }

    async fn start_call(
        &self,
        account: &Account,
        call: &OutboundCall,
    ) -> Result<Accepted, SendFailure> {
        let grant = super::credential(&*self.secrets, account, NAME).await?;
        if !grants_number(&grant, &account.sender_id) {
            tracing::warn!(account = %account.id, grant = %account.token_ref, "instance not granted to the tenant; refused");
            return Err(SendFailure {
                class: FailureClass::Campaign,
                code: None,
                reason: format!(
                    "Connect instance {} is not granted to this tenant: {} does not list it",
                    account.sender_id, account.token_ref
                ),
            });
        }
        let to = call.to.masked();
        let mut req = self
            .client
            .start_outbound_voice_contact()
            .destination_phone_number(format!("+{}", call.to.as_str()))
            .instance_id(&account.sender_id)
            .contact_flow_id(&call.contact_flow_id)
            .queue_id(&call.queue_id)
            .source_phone_number(&call.caller_id)
            .client_token(&call.client_token);
        for (k, v) in &call.attributes {
            req = req.attributes(k, v);
        }
        if let Some(amd) = call.amd {
            req = req
                .answer_machine_detection_config(
                    AnswerMachineDetectionConfig::builder()
                        .enable_answer_machine_detection(true)
                        .await_answer_machine_prompt(amd.await_prompt)
                        .build(),
                )
                .traffic_type(TrafficType::Campaign);
        }
        let answered = match req.send().await {
            Ok(o) => Ok(o.contact_id().map(str::to_owned)),
            Err(e) => Err(failure_of(e)),
        };
        super::sdk_outcome(NAME, account, &to, answered)
    }
}

// ---------------------------------------------------------------------------------------
// Events

/// Why an event could not be read.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("not an Amazon Connect contact event: {0}")]
pub struct EventError(String);

/// A key of `v` in any case (the documentation writes `agentInfo` and `AgentInfo`).
fn key<'a>(v: &'a Value, name: &str) -> Option<&'a Value> {
    v.get(name).or_else(|| {
        v.as_object()?
            .iter()
            .find(|(k, _)| k.eq_ignore_ascii_case(name))
            .map(|(_, v)| v)
    })
}

fn text<'a>(v: &'a Value, name: &str) -> Option<&'a str> {
    key(v, name)
        .and_then(Value::as_str)
        .map(str::trim)
        .filter(|s| !s.is_empty())
}

fn time(v: &Value, name: &str) -> Option<Time> {
    let t = text(v, name)?;
    chrono::DateTime::parse_from_rfc3339(t)
        .ok()
        .map(|t| t.with_timezone(&chrono::Utc))
}

/// The instance id of an instance ARN (`arn:aws:connect:REGION:ACCOUNT:instance/ID`), or
/// the id itself.
fn instance_id(arn: &str) -> &str {
    arn.rsplit_once("instance/").map_or(arn, |(_, id)| id)
}

/// The events of one SQS record, or `None` when it is not an Amazon Connect contact event
/// (then it is something else the inbound queue carries). A contact event of another
/// channel (chat, task) is read as no event.
pub fn parse_event(record: &str) -> Option<Result<Vec<Inbound>, EventError>> {
    let value: Value = serde_json::from_str(record).ok()?;
    if text(&value, "source") != Some(EVENT_SOURCE) {
        return None;
    }
    if text(&value, "detail-type") != Some(EVENT_DETAIL_TYPE) {
        return Some(Ok(Vec::new()));
    }
    Some(event_of(&value))
}

fn event_of(envelope: &Value) -> Result<Vec<Inbound>, EventError> {
    let d = key(envelope, "detail").ok_or_else(|| EventError("no detail".into()))?;
    if text(d, "channel").is_some_and(|c| !c.eq_ignore_ascii_case("voice")) {
        return Ok(Vec::new());
    }
    let contact_id = text(d, "contactId").ok_or_else(|| EventError("no contactId".into()))?;
    let instance = text(d, "instanceArn").ok_or_else(|| EventError("no instanceArn".into()))?;
    let kind = match text(d, "eventType").map(str::to_ascii_uppercase).as_deref() {
        Some("INITIATED") => CallEventKind::Initiated,
        Some("CONNECTED_TO_SYSTEM") => CallEventKind::Connected,
        Some("QUEUED") => CallEventKind::Queued,
        Some("CONNECTED_TO_AGENT") => CallEventKind::ConnectedToAgent,
        Some("DISCONNECTED") => CallEventKind::Disconnected,
        Some(_) => CallEventKind::Other,
        None => return Err(EventError("no eventType".into())),
    };
    // The contact's own times first: the envelope's is when EventBridge took the event.
    let own = match kind {
        CallEventKind::Disconnected => time(d, "disconnectTimestamp"),
        CallEventKind::Connected => time(d, "connectedToSystemTimestamp"),
        _ => None,
    };
    let at = own
        .or_else(|| time(envelope, "time"))
        .or_else(|| time(d, "initiationTimestamp"))
        .ok_or_else(|| EventError("no time".into()))?;
    let agent_at = key(d, "agentInfo").and_then(|a| time(a, "connectedToAgentTimestamp"));
    Ok(vec![Inbound::Call(CallEvent {
        instance_id: instance_id(instance).to_owned(),
        contact_id: contact_id.to_owned(),
        kind,
        at,
        connected_at: time(d, "connectedToSystemTimestamp"),
        agent_at,
        amd_status: text(d, "answeringMachineDetectionStatus").map(str::to_ascii_uppercase),
        disconnect_reason: text(d, "disconnectReason").map(str::to_ascii_uppercase),
    })])
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn refusals_are_classified_by_name() {
        use FailureClass::*;
        for (name, status, class) in [
            ("DestinationNotAllowedException", 403, Permanent),
            ("LimitExceededException", 429, NotAttempted),
            ("OutboundContactNotPermittedException", 403, Campaign),
            ("ResourceNotFoundException", 404, Campaign),
            ("InvalidParameterException", 400, Campaign),
            ("InternalServiceException", 500, Unknown),
            ("SomethingNew", 503, Unknown),
            ("SomethingNew", 400, Temporary),
        ] {
            assert_eq!(classify_connect(name, status), class, "{name}");
        }
        let f = refusal(
            "DestinationNotAllowedException",
            "+447700900123 is blocked",
            403,
        );
        assert!(!f.reason.contains("7700900123"), "{}", f.reason);
    }

    #[test]
    fn contact_events_are_read_in_either_case() {
        let body = serde_json::json!({
            "version": "0", "id": "e-1", "detail-type": EVENT_DETAIL_TYPE, "source": EVENT_SOURCE,
            "account": "111122223333", "time": "2026-12-07T10:00:40Z", "region": "us-east-1",
            "resources": [],
            "detail": {"eventType": "DISCONNECTED", "contactId": "c-1", "channel": "Voice",
                "instanceArn": "arn:aws:connect:us-east-1:111122223333:instance/inst-1",
                "initiationMethod": "API", "initiationTimestamp": "2026-12-07T10:00:00.000Z",
                "connectedToSystemTimestamp": "2026-12-07T10:00:05.000Z",
                "disconnectTimestamp": "2026-12-07T10:00:40.000Z",
                "AgentInfo": {"connectedToAgentTimestamp": "2026-12-07T10:00:09.000Z"},
                "disconnectReason": "customer_disconnect"}
        })
        .to_string();
        let events = parse_event(&body).unwrap().unwrap();
        let [Inbound::Call(e)] = events.as_slice() else {
            panic!("{events:?}")
        };
        assert_eq!(e.instance_id, "inst-1");
        assert_eq!(e.kind, CallEventKind::Disconnected);
        assert!(e.connected_at.is_some() && e.agent_at.is_some());
        assert_eq!(e.disconnect_reason.as_deref(), Some("CUSTOMER_DISCONNECT"));
        // Not Connect's: left to the other readers.
        assert!(parse_event(r#"{"source":"aws.sms"}"#).is_none());
        // Another channel's contact: no event.
        let chat = body.replace("\"Voice\"", "\"CHAT\"");
        assert_eq!(parse_event(&chat).unwrap().unwrap(), Vec::new());
        // A contact event without its contact: unreadable.
        let broken = body.replace("\"contactId\"", "\"other\"");
        assert!(parse_event(&broken).unwrap().is_err());
    }
}
