//! Provider-neutral facts that arrive by webhook: delivery statuses, customer messages and
//! changes to our templates.

use super::phone::PhoneNumber;
use super::template::{Category, Quality, TemplateStatus};
use super::Time;
use serde::{Deserialize, Serialize};

/// An instant at the resolution providers report status times in: whole seconds (Meta's
/// and Kaleyra's `timestamp`). The sender records when a message went out at this
/// resolution, so the provider's own `sent` status, which says the same in whole seconds,
/// confirms the recorded time instead of moving it back by a fraction of a second, which
/// would cost a write of the entry for nothing.
pub fn at_provider_resolution(t: Time) -> Time {
    t - chrono::Duration::nanoseconds(i64::from(t.timestamp_subsec_nanos()))
}

/// A message on the send queue: the entry to send and the slot the launcher planned it
/// for. SQS delays are whole seconds, so a message becomes visible up to a second before
/// its slot; the sender measures how late each send is against `due` (slot lag).
/// Messages queued before `due` existed carry none.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct SendJob {
    #[serde(flatten)]
    pub entry: EntryRef,
    /// Read leniently: a slot that is not a time is no slot (the entry is still sent).
    #[serde(
        default,
        skip_serializing_if = "Option::is_none",
        deserialize_with = "lenient_time"
    )]
    pub due: Option<Time>,
}

fn lenient_time<'de, D: serde::Deserializer<'de>>(d: D) -> Result<Option<Time>, D::Error> {
    let v = Option::<serde_json::Value>::deserialize(d)?;
    Ok(v.and_then(|v| serde_json::from_value(v).ok()))
}

impl From<EntryRef> for SendJob {
    /// A job with no slot: sent as soon as it is received.
    fn from(entry: EntryRef) -> Self {
        SendJob { entry, due: None }
    }
}

/// Identifies a hopper entry. Carried to the provider (Meta's `biz_opaque_callback_data`)
/// so that a status finds its entry without a lookup item.
#[derive(Debug, Clone, PartialEq, Eq, Hash, Serialize, Deserialize)]
pub struct EntryRef {
    pub tenant: String,
    pub campaign_id: String,
    pub shard: u16,
    pub phone: PhoneNumber,
}

impl EntryRef {
    const PREFIX: &'static str = "ce1";

    pub fn encode(&self) -> String {
        format!(
            "{}|{}|{}|{}|{}",
            Self::PREFIX,
            self.tenant,
            self.campaign_id,
            self.shard,
            self.phone
        )
    }

    /// The entry callback data names, whether or not it names the attempt too; `None`
    /// for callback data that some other sender put there.
    pub fn decode(s: &str) -> Option<Self> {
        Self::decode_attempt(s).map(|(r, _)| r)
    }

    /// The callback data of one attempt's message: the entry and the attempt number, so a
    /// status is applied only to the attempt whose message it reports.
    pub fn encode_attempt(&self, attempt: u32) -> String {
        format!("{}|{attempt}", self.encode())
    }

    /// Callback data back into the entry and, when it names one, the attempt (messages
    /// sent before attempts were named carry none). `None` for callback data that some
    /// other sender put there.
    pub fn decode_attempt(s: &str) -> Option<(Self, Option<u32>)> {
        let mut it = s.split('|');
        if it.next()? != Self::PREFIX {
            return None;
        }
        let tenant = it.next()?.to_owned();
        let campaign_id = it.next()?.to_owned();
        let shard = it.next()?.parse().ok()?;
        let phone = PhoneNumber::parse(it.next()?).ok()?;
        let attempt = match it.next() {
            Some(a) => Some(a.parse().ok()?),
            None => None,
        };
        if it.next().is_some() {
            return None;
        }
        let r = EntryRef {
            tenant,
            campaign_id,
            shard,
            phone,
        };
        Some((r, attempt))
    }
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(tag = "status", rename_all = "snake_case")]
pub enum StatusKind {
    Sent,
    Delivered,
    Read,
    Failed {
        code: Option<i64>,
        reason: String,
        /// What the provider's code means when the provider is not Meta (Twilio's codes
        /// in its status callbacks); none: the code is Meta's (Meta, Kaleyra and AWS End
        /// User Messaging Social pass Meta's codes on), classified with Meta's table.
        #[serde(default, skip_serializing_if = "Option::is_none")]
        class: Option<super::outcome::FailureClass>,
    },
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct StatusUpdate {
    pub message_id: String,
    pub status: StatusKind,
    pub at: Time,
    pub entry: Option<EntryRef>,
    /// The attempt of the entry whose message this reports, when the callback data says.
    #[serde(default)]
    pub attempt: Option<u32>,
    /// The number the status came from (Meta: `phone_number_id`; Kaleyra: the SID of the
    /// callback URL): only an entry of that number's owner may take it.
    #[serde(default)]
    pub sender_id: Option<String>,
    /// The recipient's business-scoped user id (Meta's `user_id`, 2026), when the webhook
    /// carried it.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub user_id: Option<String>,
    /// The contact the message went to (Meta's `recipient_id`), when the provider says:
    /// how a status without our callback data (Meta's Marketing Messages API takes none)
    /// finds its entry, through the contact's interaction on `sender_id`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub recipient: Option<PhoneNumber>,
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct InboundMessage {
    /// Our business number that received it (Meta: phone_number_id).
    pub sender_id: String,
    pub from: PhoneNumber,
    pub message_id: String,
    pub at: Time,
    /// The id of our message it answers, when the provider says.
    pub context_id: Option<String>,
    pub text: Option<String>,
    /// Quick-reply payload or interactive reply id.
    pub button: Option<String>,
    /// The sender's business-scoped user id (Meta's `user_id`, 2026), when present.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub user_id: Option<String>,
    /// An SMS (else a WhatsApp message): SMS's own opt-out words apply to it.
    #[serde(default, skip_serializing_if = "std::ops::Not::not")]
    pub sms: bool,
}

/// What the provider says about one of our templates: a new status (R3.2) or a new
/// quality rating. The provider does not say which tenant it belongs to.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct TemplateUpdate {
    /// The business account holding the template (Meta: the WABA id of the entry).
    pub waba_id: Option<String>,
    /// The provider's template id.
    pub template_id: Option<String>,
    pub name: String,
    pub language: String,
    /// The event as the provider spelled it (Meta: APPROVED, PAUSED, FLAGGED, ..., or
    /// QUALITY for a quality change), for the logs.
    pub event: String,
    /// The status the event means here, when it means one.
    pub status: Option<TemplateStatus>,
    /// Why (rejection or pause reason), when the provider said.
    pub reason: Option<String>,
    pub quality: Option<Quality>,
    /// The category Meta moved the template to (`template_category_update`), which the
    /// checks before each send follow (the country rule, the marketing opt-out).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub category: Option<Category>,
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(tag = "kind", rename_all = "snake_case")]
pub enum Inbound {
    Status(StatusUpdate),
    Message(InboundMessage),
    TemplateStatus(TemplateUpdate),
    MarketingChoice(MarketingChoice),
    /// A voice call's contact event (Amazon Connect, issue 17).
    Call(CallEvent),
}

/// What a contact event says happened to a call.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum CallEventKind {
    /// The call is being placed.
    Initiated,
    /// Media was established: someone or something answered (the answering-machine
    /// result, when detection ran, comes with it).
    Connected,
    /// Queued for an agent.
    Queued,
    /// An agent took the call.
    ConnectedToAgent,
    /// The call ended, answered or not: the final event of an attempt.
    Disconnected,
    /// Anything else (completed after-call work, data updates, types added later).
    Other,
}

/// One contact event of a call (Amazon Connect's `Amazon Connect Contact Event`, read
/// from EventBridge). Events arrive unordered and at least once; a call is told by its
/// contact id, never by our data (the call's attributes are not in the events).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct CallEvent {
    /// The Connect instance the call was placed through: its owner is the tenant.
    pub instance_id: String,
    pub contact_id: String,
    pub kind: CallEventKind,
    /// When it happened (the event's time).
    pub at: Time,
    /// When the callee's side answered (`connectedToSystemTimestamp`), if it did.
    #[serde(default)]
    pub connected_at: Option<Time>,
    /// When an agent took the call, if one did.
    #[serde(default)]
    pub agent_at: Option<Time>,
    /// The answering-machine detection result (`HUMAN_ANSWERED`, `VOICEMAIL_BEEP`,
    /// `SIT_TONE_BUSY`, ...), when the event carries one.
    #[serde(default)]
    pub amd_status: Option<String>,
    /// Why the call ended (`disconnectReason`: `TELECOM_BUSY`, `TELECOM_UNANSWERED`,
    /// `CUSTOMER_DISCONNECT`, ...), when the event says.
    #[serde(default)]
    pub disconnect_reason: Option<String>,
}

/// A contact stopped or resumed marketing messages from the business (Meta's
/// `user_preferences` webhook, category `marketing_messages`).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct MarketingChoice {
    /// Our business number the webhook came for (Meta: `phone_number_id`): its owner's
    /// tenant takes the choice.
    pub sender_id: String,
    pub phone: PhoneNumber,
    /// A stop (true), or a resume or sign-up (false).
    pub stopped: bool,
    pub at: Time,
    /// Meta's words ("User requested to stop marketing messages").
    pub detail: Option<String>,
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn provider_resolution_is_whole_seconds() {
        use chrono::TimeZone;
        let t = chrono::Utc.with_ymd_and_hms(2026, 11, 21, 9, 0, 7).unwrap();
        let later = t + chrono::Duration::milliseconds(999);
        assert_eq!(at_provider_resolution(later), t);
        assert_eq!(at_provider_resolution(t), t);
    }

    #[test]
    fn entry_ref_round_trips_and_rejects_foreign_data() {
        let r = EntryRef {
            tenant: "t1".into(),
            campaign_id: "cmp_1".into(),
            shard: 7,
            phone: PhoneNumber::parse("919812345678").unwrap(),
        };
        assert_eq!(EntryRef::decode(&r.encode()), Some(r.clone()));
        let with_attempt = r.encode_attempt(3);
        assert_eq!(with_attempt, "ce1|t1|cmp_1|7|919812345678|3");
        assert_eq!(
            EntryRef::decode_attempt(&with_attempt),
            Some((r.clone(), Some(3)))
        );
        assert_eq!(
            EntryRef::decode_attempt(&r.encode()),
            Some((r.clone(), None))
        );
        assert_eq!(EntryRef::decode(&with_attempt), Some(r));
        assert_eq!(EntryRef::decode("ce1|t1|cmp_1|7|919812345678|x"), None);
        assert_eq!(EntryRef::decode("some data"), None);
        assert_eq!(EntryRef::decode("cmp_42:contact_9001"), None);
    }
}
