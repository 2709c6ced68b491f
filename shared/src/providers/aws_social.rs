//! WhatsApp through AWS End User Messaging Social (PROVIDERS.md section 7): the same Meta
//! message the Meta adapter builds ([`meta::template_body`]), sent with
//! `SendWhatsAppMessage` and signed with the deployment's AWS role instead of a Meta
//! token; statuses, replies and template changes arrive as events on the WABA's SNS topic,
//! which an SQS subscription hands to the inbound worker ([`parse_event`]).
//!
//! Nothing here logs a full phone number: phones appear masked.

use super::meta;
use crate::domain::account::{grants_number, Account};
use crate::domain::inbound::Inbound;
use crate::domain::outcome::{FailureClass, SendFailure};
use crate::ports::{Accepted, MessagingProvider, OutboundTemplate, Secrets};
use async_trait::async_trait;
use aws_sdk_socialmessaging::config::retry::RetryConfig;
use aws_sdk_socialmessaging::config::timeout::TimeoutConfig;
use aws_sdk_socialmessaging::error::{ProvideErrorMetadata, SdkError};
use aws_sdk_socialmessaging::primitives::Blob;
use serde_json::{json, Value};
use std::collections::HashMap;
use std::sync::Arc;

/// The provider's name in reasons and logs.
const NAME: &str = "AWS End User Messaging Social";

/// `MessagingProvider` over `SendWhatsAppMessage`.
#[derive(Clone)]
pub struct AwsSocialProvider {
    client: aws_sdk_socialmessaging::Client,
    /// Meta's Graph API version the message is written for, e.g. `v23.0`.
    meta_api_version: String,
    secrets: Arc<dyn Secrets>,
}

impl std::fmt::Debug for AwsSocialProvider {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("AwsSocialProvider")
            .field("meta_api_version", &self.meta_api_version)
            .finish_non_exhaustive()
    }
}

impl AwsSocialProvider {
    /// A client on `sdk` (region, credentials), at `endpoint` when given (tests, the local
    /// runner: the simulator) else AWS's. The SDK never retries a send on its own: a
    /// second attempt after a lost answer could send the message twice, and the engine
    /// decides what to do with every failure ([`SendFailure`]). It connects within 3 s
    /// and gives up after 10 s, like the Meta adapter.
    pub fn new(
        sdk: &aws_config::SdkConfig,
        endpoint: Option<&str>,
        meta_api_version: impl Into<String>,
        secrets: Arc<dyn Secrets>,
    ) -> Self {
        let mut conf = aws_sdk_socialmessaging::config::Builder::from(sdk)
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
        AwsSocialProvider {
            client: aws_sdk_socialmessaging::Client::from_conf(conf.build()),
            meta_api_version: meta_api_version.into(),
            secrets,
        }
    }
}

#[async_trait]
impl MessagingProvider for AwsSocialProvider {
    async fn send(
        &self,
        account: &Account,
        msg: &OutboundTemplate,
    ) -> Result<Accepted, SendFailure> {
        let grant = super::credential(&*self.secrets, account, NAME).await?;
        if !grants_number(&grant, &account.sender_id) {
            tracing::warn!(account = %account.id, sender = %account.sender_id, grant = %account.token_ref, "number not granted to the tenant; refused");
            return Err(SendFailure {
                class: FailureClass::Campaign,
                code: None,
                reason: format!(
                    "{} is not granted to this tenant: {} does not list it",
                    account.sender_id, account.token_ref
                ),
            });
        }
        let body = serde_json::to_vec(&meta::template_body(msg)).expect("JSON values serialise");
        let to = msg.to.masked();
        tracing::debug!(account = %account.id, to = %to, template = %msg.template, "aws social send");
        let out = self
            .client
            .send_whats_app_message()
            .origination_phone_number_id(&account.sender_id)
            .meta_api_version(&self.meta_api_version)
            .message(Blob::new(body))
            .send()
            .await;
        let answered = match out {
            Ok(o) => Ok(o.message_id().map(str::to_owned)),
            Err(e) => Err(failure_of(e)),
        };
        super::sdk_outcome(NAME, account, &to, answered)
    }
}

/// What an SDK error means for the send. A service refusal is classified as data
/// ([`SendFailure::aws_social`]); a request that could not be built, or a connection
/// refused, sent nothing; a timeout or an unreadable answer may follow an accepted
/// message.
fn failure_of<E>(e: SdkError<E, aws_sdk_socialmessaging::config::http::HttpResponse>) -> SendFailure
where
    E: ProvideErrorMetadata + std::error::Error + Send + Sync + 'static,
{
    let detail = |e: &dyn std::error::Error| {
        let mut s = e.to_string();
        let mut src = e.source();
        while let Some(inner) = src {
            s.push_str(": ");
            s.push_str(&inner.to_string());
            src = inner.source();
        }
        s
    };
    match &e {
        SdkError::ServiceError(se) => SendFailure::aws_social(
            se.err().code().unwrap_or_default(),
            se.err().message().unwrap_or_default(),
            se.raw().status().as_u16(),
        ),
        SdkError::ConstructionFailure(_) => {
            SendFailure::transport(format!("{NAME} request not built: {}", detail(&e)))
        }
        SdkError::DispatchFailure(_) if connection_refused(&e) => {
            SendFailure::transport(format!("{NAME} connect error: {}", detail(&e)))
        }
        SdkError::TimeoutError(_) => {
            SendFailure::outcome_unknown(format!("{NAME} timeout: {}", detail(&e)))
        }
        _ => SendFailure::outcome_unknown(format!("{NAME} request error: {}", detail(&e))),
    }
}

/// Whether the error chain holds a refused connection (nothing was sent).
pub(crate) fn connection_refused(e: &(dyn std::error::Error + 'static)) -> bool {
    let mut cur: Option<&(dyn std::error::Error + 'static)> = Some(e);
    while let Some(err) = cur {
        if let Some(io) = err.downcast_ref::<std::io::Error>() {
            if io.kind() == std::io::ErrorKind::ConnectionRefused {
                return true;
            }
        }
        cur = err.source();
    }
    false
}

// ---------------------------------------------------------------------------------------
// Events

/// Why an event could not be read.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("not an AWS End User Messaging Social event: {0}")]
pub struct EventError(String);

/// The events of one SQS record from the WABA's SNS topic, or `None` when the record is
/// not a single JSON value (a webhook the webhook function queued:
/// `crate::lambda::inbound_queue`). The record is the event itself (raw message delivery)
/// or SNS's notification around it; `whatsAppWebhookEntry` holds Meta's webhook entry as a
/// JSON string, parsed as the Meta webhook is ([`meta::parse_webhook`]). Meta's phone
/// number ids are turned into AWS's origination ids (`phone-number-id-<id>`, what the
/// account names) with the event's `context`, so a status or reply finds its account.
pub fn parse_event(record: &str) -> Option<Result<Vec<Inbound>, EventError>> {
    let value: Value = serde_json::from_str(record).ok()?;
    Some(events_of(value))
}

fn events_of(mut value: Value) -> Result<Vec<Inbound>, EventError> {
    if value.get("Type").and_then(Value::as_str) == Some("Notification") {
        let message = value
            .get("Message")
            .and_then(Value::as_str)
            .ok_or_else(|| EventError("an SNS notification without a Message".into()))?;
        value = serde_json::from_str(message)
            .map_err(|e| EventError(format!("the SNS Message is not JSON: {e}")))?;
    }
    let entry = match value.get("whatsAppWebhookEntry") {
        Some(Value::String(s)) => serde_json::from_str::<Value>(s)
            .map_err(|e| EventError(format!("whatsAppWebhookEntry is not JSON: {e}")))?,
        Some(v @ Value::Object(_)) => v.clone(),
        _ => return Err(EventError("no whatsAppWebhookEntry".into())),
    };
    let webhook = json!({"object": "whatsapp_business_account", "entry": [entry]});
    let bytes = serde_json::to_vec(&webhook).expect("JSON values serialise");
    let mut events =
        meta::parse_webhook(&bytes).map_err(|e| EventError(format!("the entry: {e}")))?;
    let ids = origination_ids(&value);
    for ev in &mut events {
        let sender = match ev {
            Inbound::Message(m) => Some(&mut m.sender_id),
            Inbound::Status(s) => s.sender_id.as_mut(),
            Inbound::MarketingChoice(c) => Some(&mut c.sender_id),
            Inbound::TemplateStatus(_) | Inbound::Call(_) => None,
        };
        if let Some(id) = sender.and_then(|s| ids.get(s.as_str()).map(|o| (s, o))) {
            *id.0 = id.1.clone();
        }
    }
    Ok(events)
}

/// Meta's phone number id -> AWS's origination id, from the event's
/// `context.MetaPhoneNumberIds` (`{"metaPhoneNumberId": .., "arn": "arn:..:phone-number-id/<id>"}`).
fn origination_ids(event: &Value) -> HashMap<String, String> {
    event
        .pointer("/context/MetaPhoneNumberIds")
        .and_then(Value::as_array)
        .into_iter()
        .flatten()
        .filter_map(|p| {
            let meta = p.get("metaPhoneNumberId").and_then(Value::as_str)?;
            let arn = p.get("arn").and_then(Value::as_str)?;
            let id = arn.rsplit_once(":phone-number-id/")?.1;
            (!id.is_empty()).then(|| (meta.to_owned(), format!("phone-number-id-{id}")))
        })
        .collect()
}

/// The event AWS End User Messaging Social publishes for a Meta webhook `entry` of the
/// number whose origination id is `origination_id` and whose Meta id is `meta_id`
/// (for the simulator and tests: the shape of PROVIDERS.md section 7).
pub fn event_for(entry: &Value, waba_id: &str, meta_id: &str, origination_id: &str) -> Value {
    let id = origination_id
        .strip_prefix("phone-number-id-")
        .unwrap_or(origination_id);
    json!({
        "context": {
            "MetaWabaIds": [{"wabaId": waba_id, "arn": format!("arn:aws:social-messaging:us-east-1:123456789012:waba/{waba_id}")}],
            "MetaPhoneNumberIds": [{"metaPhoneNumberId": meta_id, "arn": format!("arn:aws:social-messaging:us-east-1:123456789012:phone-number-id/{id}")}],
        },
        "whatsAppWebhookEntry": entry.to_string(),
        "aws_account_id": "123456789012",
        "message_timestamp": "2026-11-21T09:00:00.000000000Z",
        "messageId": uuid::Uuid::new_v4().to_string(),
    })
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::domain::inbound::StatusKind;

    fn entry(pnid: &str) -> Value {
        json!({"id": "102290129340398", "changes": [{"field": "messages", "value": {
            "messaging_product": "whatsapp",
            "metadata": {"display_phone_number": "15550000000", "phone_number_id": pnid},
            "statuses": [{"id": "wamid.A1", "status": "delivered", "timestamp": "1763715600",
                "recipient_id": "919812345000"}],
        }}]})
    }

    #[test]
    fn an_event_is_unwrapped_and_names_the_origination_number() {
        let ev = event_for(
            &entry("106540352242922"),
            "102290129340398",
            "106540352242922",
            "phone-number-id-abc123",
        );
        let out = parse_event(&ev.to_string()).unwrap().unwrap();
        let [Inbound::Status(s)] = out.as_slice() else {
            panic!("{out:?}")
        };
        assert_eq!(s.status, StatusKind::Delivered);
        assert_eq!(s.sender_id.as_deref(), Some("phone-number-id-abc123"));
    }

    #[test]
    fn an_sns_notification_around_the_event_is_unwrapped_too() {
        let ev = event_for(
            &entry("106540352242922"),
            "102290129340398",
            "106540352242922",
            "phone-number-id-abc123",
        );
        let sns = json!({"Type": "Notification", "MessageId": "m1",
            "TopicArn": "arn:aws:sns:us-east-1:123456789012:waba-events", "Message": ev.to_string()});
        let out = parse_event(&sns.to_string()).unwrap().unwrap();
        assert_eq!(out.len(), 1);
    }

    #[test]
    fn a_queued_webhook_is_not_an_event_and_a_broken_event_fails_alone() {
        assert!(parse_event("{\"v\":1,\"provider\":\"meta\"}\n{}").is_none());
        assert!(parse_event("{\"context\":{}}").unwrap().is_err());
        assert!(parse_event("{\"whatsAppWebhookEntry\":\"{not json\"}")
            .unwrap()
            .is_err());
        // A number the context does not name keeps Meta's id: no account owns it.
        let ev = json!({"whatsAppWebhookEntry": entry("999").to_string()});
        let out = parse_event(&ev.to_string()).unwrap().unwrap();
        let [Inbound::Status(s)] = out.as_slice() else {
            panic!("{out:?}")
        };
        assert_eq!(s.sender_id.as_deref(), Some("999"));
    }
}
