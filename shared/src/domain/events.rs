//! Domain events published on the event bus (R8.2), so bot flows and agent queues can
//! subscribe instead of polling. `detail_type` is the EventBridge detail-type, the event's
//! JSON its detail, `campaigns` its source. `docs/events.md` documents each one with the
//! JSON schema [`schemas`] generates from these types (a test keeps them equal).
//!
//! Delivery is at least once (EventBridge's, and a webhook delivered again may publish
//! again): subscribers dedupe inbound ones by `message_id`.

use super::campaign::{Campaign, CampaignStatus, Transition};
use super::Time;
use serde::{Deserialize, Serialize};
use utoipa::ToSchema;

/// The EventBridge `source` of every domain event.
pub const SOURCE: &str = "campaigns";

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(untagged)]
pub enum DomainEvent {
    CampaignStateChanged(CampaignStateChanged),
    ReplyReceived(ReplyReceived),
    AgentConversationRequested(AgentConversationRequested),
    InboundConversation(InboundConversation),
    ContactOptedOut(ContactOptedOut),
}

/// A campaign moved from one status to another (launched, paused by an operator or by the
/// engine with a reason, resumed, completed, cancelled, ...).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, ToSchema)]
#[schema(example = json!({"tenant": "acme", "campaign_id": "cmp_0190a1", "from": "RUNNING",
    "to": "PAUSED", "reason": "template spring_offer (en) is PAUSED", "at": "2026-11-21T09:30:00Z",
    "version": 7}))]
pub struct CampaignStateChanged {
    pub tenant: String,
    pub campaign_id: String,
    #[schema(inline)]
    pub from: CampaignStatus,
    #[schema(inline)]
    pub to: CampaignStatus,
    /// Why, when the engine changed it itself (a pause on a provider error).
    pub reason: Option<String>,
    #[schema(value_type = String, format = DateTime)]
    pub at: Time,
    /// The campaign's version this change made (one change per version): delivery is at
    /// least once, so dedupe on (`campaign_id`, `version`), and order by it.
    #[serde(default)]
    pub version: u64,
}

impl CampaignStateChanged {
    /// The event of one of `c`'s stored transitions.
    pub fn of(c: &Campaign, t: &Transition) -> Self {
        CampaignStateChanged {
            tenant: c.tenant.clone(),
            campaign_id: c.id.clone(),
            from: t.from,
            to: t.to,
            reason: t.reason.clone(),
            at: t.at,
            version: t.version,
        }
    }
}

pub use super::answer::AnswerKind;

/// Whether the campaign interaction is still open after the reply.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize, ToSchema)]
#[serde(rename_all = "snake_case")]
pub enum InteractionState {
    /// Closed: other campaigns may write to the contact again.
    Closed,
    /// Still open until the response timeout (the campaign keeps the contact).
    Pending,
}

/// A contact answered a campaign message inside its response timeout (R5.2). Every such
/// reply is published, the first and any later one, so the campaign's bot flow or agent
/// queue (`reply_route`) can take it; the campaign counts the contact as replied once.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, ToSchema)]
#[schema(example = json!({"tenant": "acme", "campaign_id": "cmp_0190a1", "phone": "919812345678",
    "sender_id": "106540352242922", "message_id": "wamid.HBgMOTE5ODEyMzQ1Njc4FQIAEhgg",
    "text": "Yes", "button": "Yes", "answer": "option", "interaction": "closed",
    "reply_route": "bot:spring-flow", "conversation": "/campaigns/cmp_0190a1/contacts/919812345678/conversation",
    "window_until": "2026-11-22T09:05:00Z", "at": "2026-11-21T09:05:00Z"}))]
pub struct ReplyReceived {
    pub tenant: String,
    pub campaign_id: String,
    /// The contact's number, digits only.
    pub phone: String,
    /// Our business number that received it (Meta: phone_number_id).
    #[serde(default)]
    pub sender_id: String,
    /// The provider's id of the inbound message (dedupe on it).
    #[serde(default)]
    pub message_id: String,
    /// What the contact wrote, or the label of the button tapped.
    pub text: Option<String>,
    /// The quick-reply option chosen (tapped, or typed as the option's text).
    pub button: Option<String>,
    #[schema(inline)]
    #[serde(default = "text_answer")]
    pub answer: AnswerKind,
    #[schema(inline)]
    #[serde(default = "closed")]
    pub interaction: InteractionState,
    /// The campaign's bot flow or agent queue for replies (R1.2 `reply_route`).
    #[serde(default)]
    pub reply_route: Option<String>,
    /// The conversation view of this contact in the campaign (R5.6), an API path.
    #[serde(default)]
    pub conversation: String,
    /// Until when agents may write to the contact freely (the 24-hour window).
    #[serde(default)]
    #[schema(value_type = Option<String>, format = DateTime)]
    pub window_until: Option<Time>,
    #[schema(value_type = String, format = DateTime)]
    pub at: Time,
}

fn text_answer() -> AnswerKind {
    AnswerKind::Text
}

fn closed() -> InteractionState {
    InteractionState::Closed
}

/// The contact's first reply inside the response timeout matched none of the template's
/// quick-reply options (R5.3): the campaign interaction stays pending, and an agent should
/// take the conversation (published besides its `ReplyReceived`; later messages are
/// published as `ReplyReceived` only).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, ToSchema)]
#[schema(example = json!({"tenant": "acme", "campaign_id": "cmp_0190a1", "phone": "919812345678",
    "sender_id": "106540352242922", "message_id": "wamid.HBgMOTE5ODEyMzQ1Njc4FQIAEhgh",
    "text": "Please contact me by phone", "options": ["Phone call", "WhatsApp message", "Email"],
    "reason": "the reply matches none of the quick-reply options",
    "reply_route": "queue:spring-sales", "conversation": "/campaigns/cmp_0190a1/contacts/919812345678/conversation",
    "window_until": "2026-11-22T09:07:00Z", "at": "2026-11-21T09:07:00Z"}))]
pub struct AgentConversationRequested {
    pub tenant: String,
    pub campaign_id: String,
    pub phone: String,
    pub sender_id: String,
    pub message_id: String,
    pub text: Option<String>,
    /// The quick-reply options the template offered.
    pub options: Vec<String>,
    pub reason: String,
    pub reply_route: Option<String>,
    pub conversation: String,
    #[schema(value_type = Option<String>, format = DateTime)]
    pub window_until: Option<Time>,
    #[schema(value_type = String, format = DateTime)]
    pub at: Time,
}

/// Why an inbound message is a conversation of its own rather than a campaign reply.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize, ToSchema)]
#[serde(rename_all = "snake_case")]
pub enum InboundReason {
    /// After the campaign's response timeout (R5.4): not counted for the campaign, whose
    /// interaction closes as expired.
    LateReply,
    /// The campaign interaction was already closed (answered, or timed out).
    InteractionClosed,
    /// It answers another of our messages than the campaign's last one (its context).
    OtherMessage,
    /// No campaign wrote to the contact from this number (or so long ago nothing is kept).
    NoCampaignInteraction,
}

/// An inbound message that starts or continues a conversation outside any open campaign
/// interaction: a late reply (R5.4), a message after the interaction closed, or a message
/// from a contact no campaign is waiting for. The agent queue takes it.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, ToSchema)]
#[schema(example = json!({"tenant": "acme", "campaign_id": "cmp_0190a1", "phone": "919812345678",
    "sender_id": "106540352242922", "message_id": "wamid.HBgMOTE5ODEyMzQ1Njc4FQIAEhgi",
    "text": "Is the offer still on?", "button": null, "reason": "late_reply",
    "window_until": "2026-11-24T10:00:00Z", "at": "2026-11-23T10:00:00Z"}))]
pub struct InboundConversation {
    /// Unknown when no campaign or recontact of ours ever wrote to the contact from this
    /// number: `sender_id` then says which business number it reached.
    pub tenant: Option<String>,
    /// The campaign of the contact's last campaign interaction on this number, if any.
    pub campaign_id: Option<String>,
    pub phone: String,
    pub sender_id: String,
    pub message_id: String,
    pub text: Option<String>,
    pub button: Option<String>,
    #[schema(inline)]
    pub reason: InboundReason,
    #[schema(value_type = Option<String>, format = DateTime)]
    pub window_until: Option<Time>,
    #[schema(value_type = String, format = DateTime)]
    pub at: Time,
}

/// A contact sent one of the tenant's opt-out keywords (R5.7) and is now on the tenant's
/// opt-out list: no campaign sends to it again. Published once, when it was added.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, ToSchema)]
#[schema(example = json!({"tenant": "acme", "phone": "919812345678", "sender_id": "106540352242922",
    "message_id": "wamid.HBgMOTE5ODEyMzQ1Njc4FQIAEhgj", "keyword": "STOP",
    "campaign_id": "cmp_0190a1", "at": "2026-11-21T09:10:00Z"}))]
pub struct ContactOptedOut {
    pub tenant: String,
    pub phone: String,
    pub sender_id: String,
    pub message_id: String,
    /// The keyword as the tenant configured it.
    pub keyword: String,
    /// The campaign whose message the contact answered, if any.
    pub campaign_id: Option<String>,
    #[schema(value_type = String, format = DateTime)]
    pub at: Time,
}

impl DomainEvent {
    /// Every detail-type, in the order `docs/events.md` documents them.
    pub const DETAIL_TYPES: [&'static str; 5] = [
        "CampaignStateChanged",
        "ReplyReceived",
        "AgentConversationRequested",
        "InboundConversation",
        "ContactOptedOut",
    ];

    pub fn detail_type(&self) -> &'static str {
        match self {
            DomainEvent::CampaignStateChanged(_) => "CampaignStateChanged",
            DomainEvent::ReplyReceived(_) => "ReplyReceived",
            DomainEvent::AgentConversationRequested(_) => "AgentConversationRequested",
            DomainEvent::InboundConversation(_) => "InboundConversation",
            DomainEvent::ContactOptedOut(_) => "ContactOptedOut",
        }
    }

    /// Reads an event back from its detail-type and detail (what a subscriber receives).
    pub fn from_detail(detail_type: &str, detail: &str) -> Result<DomainEvent, String> {
        fn de<T: serde::de::DeserializeOwned>(s: &str) -> Result<T, String> {
            serde_json::from_str(s).map_err(|e| e.to_string())
        }
        Ok(match detail_type {
            "CampaignStateChanged" => DomainEvent::CampaignStateChanged(de(detail)?),
            "ReplyReceived" => DomainEvent::ReplyReceived(de(detail)?),
            "AgentConversationRequested" => DomainEvent::AgentConversationRequested(de(detail)?),
            "InboundConversation" => DomainEvent::InboundConversation(de(detail)?),
            "ContactOptedOut" => DomainEvent::ContactOptedOut(de(detail)?),
            other => return Err(format!("unknown detail-type {other}")),
        })
    }
}

/// The JSON schema of each detail-type's detail, generated from the types above, with
/// nested types inlined so each stands alone.
pub fn schemas() -> Vec<(&'static str, serde_json::Value)> {
    fn schema<T: utoipa::PartialSchema>() -> serde_json::Value {
        serde_json::to_value(T::schema()).unwrap_or_default()
    }
    vec![
        ("CampaignStateChanged", schema::<CampaignStateChanged>()),
        ("ReplyReceived", schema::<ReplyReceived>()),
        (
            "AgentConversationRequested",
            schema::<AgentConversationRequested>(),
        ),
        ("InboundConversation", schema::<InboundConversation>()),
        ("ContactOptedOut", schema::<ContactOptedOut>()),
    ]
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn r8_2_every_detail_type_has_a_schema_and_reads_back() {
        let names: Vec<&str> = schemas().iter().map(|(n, _)| *n).collect();
        assert_eq!(names, DomainEvent::DETAIL_TYPES);
        for (name, s) in schemas() {
            assert_eq!(s["type"], "object", "{name}: {s}");
            assert!(s["properties"].is_object(), "{name}: {s}");
            let text = s.to_string();
            assert!(!text.contains("$ref"), "{name} stands alone: {text}");
        }
        let ev = DomainEvent::ContactOptedOut(ContactOptedOut {
            tenant: "t".into(),
            phone: "919812345678".into(),
            sender_id: "s".into(),
            message_id: "m".into(),
            keyword: "STOP".into(),
            campaign_id: None,
            at: chrono::Utc::now(),
        });
        let detail = serde_json::to_string(&ev).unwrap();
        assert_eq!(
            DomainEvent::from_detail(ev.detail_type(), &detail).unwrap(),
            ev
        );
    }
}
