//! Conversations with a contact after a campaign message (R5.1-R5.6): how a reply answers
//! the message, the 24-hour customer-service window, what an operator may send to the
//! contact, and the conversation view ("spy").
//!
//! Rules chosen where the requirements leave room:
//! - A quick-reply answer (tapped, or typed as one option's text, case-insensitive) closes
//!   the campaign interaction only when the campaign's `close_on_quick_reply` says so;
//!   otherwise it is recorded and the interaction stays open until the response timeout,
//!   which then closes the entry with the answer's disposition (`replied:<option>`), not
//!   `no_response` (R5.2).
//! - Text to a template without quick-reply options is the answer itself: it is recorded
//!   and closes the interaction (there is nothing else to wait for; the setting is about
//!   quick replies).
//! - Text (or media) matching none of the template's options keeps the interaction
//!   pending (R5.3); the contact counts as replied. When it is the contact's first answer
//!   it asks for an agent; later messages go to whoever took the conversation.
//! - Any inbound message opens or extends the contact's 24-hour window with that business
//!   number, as WhatsApp counts it: 24 hours from the customer's latest message.

pub use super::answer::{normalise, Answer};
use super::eligibility::{Interaction, WAITING_FOR_INTERACTION};
use super::hopper::{EntryState, HopperEntry};
use super::phone::PhoneNumber;
use super::Time;
use serde::{Deserialize, Serialize};
use utoipa::ToSchema;

/// How long a customer's message lets agents write freely (WhatsApp's customer-service
/// window).
pub const SERVICE_WINDOW: chrono::Duration = chrono::Duration::hours(24);

/// How long the window item outlives its last use (cleanup only, by TTL; the window itself
/// is judged by `until`). It also tells later inbound messages which tenant the business
/// number serves for this contact.
const KEEP_WINDOW: chrono::Duration = chrono::Duration::days(90);

/// What R5.1 makes an attempt to write to a contact say while a campaign waits for its
/// answer.
pub const AWAITING_CUSTOMER: &str = WAITING_FOR_INTERACTION;
/// Why a free-form message cannot go out after the window expired (R5.5).
pub const WINDOW_CLOSED: &str =
    "The 24-hour customer service window has expired: only the recontact template can be sent.";
/// Why nothing goes to a contact on the tenant's opt-out list.
pub const OPTED_OUT: &str = "The contact opted out of messages from this business.";

/// The contact's customer-service window with one of our business numbers, and what the
/// engine last sent it outside campaigns. One item per business number and contact.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct ServiceWindow {
    pub sender_id: String,
    pub phone: PhoneNumber,
    /// The tenant the business number serves (known once a campaign or recontact of the
    /// tenant wrote to the contact).
    #[serde(default)]
    pub tenant: Option<String>,
    /// The contact's latest inbound message.
    #[serde(default)]
    pub last_inbound_at: Option<Time>,
    /// Agents may write freely until then.
    #[serde(default)]
    pub until: Option<Time>,
    /// The last recontact template sent.
    #[serde(default)]
    pub last_recontact: Option<RecontactNote>,
    /// Epoch seconds after which DynamoDB may delete the item (cleanup only).
    #[serde(default)]
    pub ttl: i64,
    #[serde(default)]
    pub version: u64,
}

/// A recontact template sent to the contact.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct RecontactNote {
    pub message_id: String,
    pub template: String,
    pub at: Time,
}

impl ServiceWindow {
    pub fn new(sender_id: &str, phone: PhoneNumber) -> Self {
        ServiceWindow {
            sender_id: sender_id.to_owned(),
            phone,
            tenant: None,
            last_inbound_at: None,
            until: None,
            last_recontact: None,
            ttl: 0,
            version: 0,
        }
    }

    /// A message from the contact at `at` opens or extends the window (never shortens
    /// it: messages may arrive out of order). Returns whether anything changed.
    pub fn inbound(&mut self, at: Time, tenant: Option<&str>) -> bool {
        let before = self.clone();
        if self.last_inbound_at.is_none_or(|l| at > l) {
            self.last_inbound_at = Some(at);
        }
        let until = at + SERVICE_WINDOW;
        if self.until.is_none_or(|u| until > u) {
            self.until = Some(until);
        }
        if self.tenant.is_none() {
            self.tenant = tenant.map(str::to_owned);
        }
        self.touch();
        *self != before
    }

    /// A recontact template went out.
    pub fn recontacted(&mut self, tenant: &str, message_id: String, template: String, at: Time) {
        self.tenant = Some(tenant.to_owned());
        self.last_recontact = Some(RecontactNote {
            message_id,
            template,
            at,
        });
        self.touch();
    }

    fn touch(&mut self) {
        let last = [
            self.until,
            self.last_inbound_at,
            self.last_recontact.as_ref().map(|r| r.at),
        ]
        .into_iter()
        .flatten()
        .max();
        if let Some(last) = last {
            self.ttl = self.ttl.max((last + KEEP_WINDOW).timestamp());
        }
    }

    /// Agents may write freely (R5.2).
    pub fn is_open(&self, now: Time) -> bool {
        self.until.is_some_and(|u| u > now)
    }

    /// The contact wrote at or after `since`.
    fn spoke_since(&self, since: Time) -> bool {
        self.last_inbound_at.is_some_and(|a| a >= since)
    }
}

/// What an operator (or agent) wants to send a contact outside campaigns.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum OperatorMessage {
    /// The account's recontact template (`POST /contacts/{phone}/recontact`).
    RecontactTemplate,
    /// A free-form message (agent chat; not sent by this engine yet).
    FreeForm,
}

/// Why a message to a contact may not go out.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Refusal {
    /// A campaign interaction is open and the contact has not answered it (R5.1).
    AwaitingCustomer,
    /// The 24-hour window expired: only the recontact template may be sent (R5.5).
    WindowClosed,
    /// The contact is on the tenant's opt-out list (R4.3, R5.7).
    OptedOut,
}

impl Refusal {
    pub fn message(self) -> &'static str {
        match self {
            Refusal::AwaitingCustomer => AWAITING_CUSTOMER,
            Refusal::WindowClosed => WINDOW_CLOSED,
            Refusal::OptedOut => OPTED_OUT,
        }
    }
}

/// Whether `message` may go to a contact now (R5.1, R5.5): never to an opted-out contact;
/// never while a campaign interaction waits for the contact's answer (the contact has not
/// written since the campaign's message); a free-form message only inside the 24-hour
/// window; the recontact template whether the window is open or not (reopening the
/// conversation after it expired is its purpose).
pub fn may_send(
    message: OperatorMessage,
    interaction: Option<&Interaction>,
    window: Option<&ServiceWindow>,
    opted_out: bool,
    now: Time,
) -> Result<(), Refusal> {
    if opted_out {
        return Err(Refusal::OptedOut);
    }
    let awaiting = interaction.is_some_and(|i| {
        i.is_open(now)
            && !(i
                .sent_at
                .is_some_and(|s| window.is_some_and(|w| w.spoke_since(s))))
    });
    if awaiting {
        return Err(Refusal::AwaitingCustomer);
    }
    match message {
        OperatorMessage::RecontactTemplate => Ok(()),
        OperatorMessage::FreeForm if window.is_some_and(|w| w.is_open(now)) => Ok(()),
        OperatorMessage::FreeForm => Err(Refusal::WindowClosed),
    }
}

/// Which way a message of a conversation went.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize, ToSchema)]
#[serde(rename_all = "snake_case")]
pub enum Direction {
    /// From the contact.
    Inbound,
    /// From us.
    Outbound,
}

/// What a message of a conversation was.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize, ToSchema)]
#[serde(rename_all = "snake_case")]
pub enum MessageKind {
    /// The campaign's template, as rendered for the contact.
    Template,
    /// A reply inside the response timeout, counted for the campaign.
    Reply,
    /// A reply inside the timeout that matched none of the options (R5.3).
    NoMatch,
    /// A reply after the timeout (R5.4), not counted.
    Late,
    /// A message after the interaction closed (the agent's conversation).
    AfterClose,
    /// An answer to another of our messages than the campaign's.
    OtherMessage,
    /// An opt-out keyword (R5.7).
    OptOut,
    /// The account's recontact template.
    Recontact,
}

/// One message of a contact's conversation after a campaign message.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, ToSchema)]
pub struct ConversationMessage {
    pub direction: Direction,
    pub kind: MessageKind,
    /// The provider's message id.
    pub message_id: Option<String>,
    #[schema(value_type = String, format = DateTime)]
    pub at: Time,
    /// The text as the contact or we wrote it (the template rendered for the contact).
    pub text: Option<String>,
    /// The quick-reply button tapped.
    pub button: Option<String>,
    /// The template sent (outbound template messages).
    pub template: Option<String>,
}

impl ConversationMessage {
    pub fn inbound(
        kind: MessageKind,
        message_id: &str,
        at: Time,
        text: Option<String>,
        button: Option<String>,
    ) -> Self {
        ConversationMessage {
            direction: Direction::Inbound,
            kind,
            message_id: Some(message_id.to_owned()),
            at,
            text,
            button,
            template: None,
        }
    }
}

/// The conversation view ("spy", R5.6): the template the contact received, rendered, and
/// every message after it, oldest first.
#[derive(Debug, Clone, PartialEq, Serialize, ToSchema)]
#[schema(example = json!({
    "campaign_id": "cmp_0190a1", "phone": "919812345678", "state": "PENDING",
    "disposition": "replied:Phone call", "expires_at": "2026-11-22T09:00:02Z",
    "window_until": "2026-11-22T09:20:00Z",
    "messages": [
        {"direction": "outbound", "kind": "template", "message_id": "wamid.HBgMOTE5ODEyMzQ1Njc4FQIAERgS",
         "at": "2026-11-21T09:00:02Z", "text": "Hi Asha, how would you like to be contacted?",
         "button": null, "template": "contact_preference"},
        {"direction": "inbound", "kind": "reply", "message_id": "wamid.HBgMOTE5ODEyMzQ1Njc4FQIAEhgg",
         "at": "2026-11-21T09:14:00Z", "text": "Phone call", "button": "Phone call", "template": null},
        {"direction": "inbound", "kind": "reply", "message_id": "wamid.HBgMOTE5ODEyMzQ1Njc4FQIAEhgh",
         "at": "2026-11-21T09:20:00Z", "text": "after 6pm please", "button": null, "template": null}
    ]
}))]
pub struct ConversationView {
    pub campaign_id: String,
    pub phone: PhoneNumber,
    /// The hopper entry's state (PENDING while the interaction is open).
    pub state: EntryState,
    pub disposition: Option<String>,
    /// When the response timeout ends (PENDING only).
    #[schema(value_type = Option<String>, format = DateTime)]
    pub expires_at: Option<Time>,
    /// Until when agents may write freely (the contact's 24-hour window), if open or known.
    #[schema(value_type = Option<String>, format = DateTime)]
    pub window_until: Option<Time>,
    pub messages: Vec<ConversationMessage>,
}

impl ConversationView {
    /// The view of `entry`: its template message (when it was sent) and the stored
    /// messages, in time order (the template first on a tie).
    pub fn of(
        entry: &HopperEntry,
        template: Option<&str>,
        stored: Vec<ConversationMessage>,
        window_until: Option<Time>,
    ) -> Self {
        let mut messages = Vec::with_capacity(stored.len() + 1);
        if let Some(at) = entry.sent_at {
            messages.push(ConversationMessage {
                direction: Direction::Outbound,
                kind: MessageKind::Template,
                message_id: entry.message_id.clone(),
                at,
                text: entry.sent_text.clone(),
                button: None,
                template: template.map(str::to_owned),
            });
        }
        messages.extend(stored);
        messages.sort_by_key(|m| m.at);
        ConversationView {
            campaign_id: entry.campaign_id.clone(),
            phone: entry.phone.clone(),
            state: entry.state,
            disposition: entry.disposition.clone(),
            expires_at: entry.expires_at,
            window_until,
            messages,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::domain::inbound::EntryRef;
    use chrono::{Duration, TimeZone, Utc};

    fn now() -> Time {
        Utc.with_ymd_and_hms(2026, 11, 21, 9, 0, 0).unwrap()
    }

    fn phone() -> PhoneNumber {
        PhoneNumber::parse("919812345678").unwrap()
    }

    fn interaction(sent: Time) -> Interaction {
        let r = EntryRef {
            tenant: "t".into(),
            campaign_id: "c".into(),
            shard: 0,
            phone: phone(),
        };
        Interaction::opened(r, "wamid.1".into(), sent, Duration::days(1), None)
    }

    #[test]
    fn r5_3_replies_are_classified_against_the_options() {
        let opts: Vec<String> = ["Phone call", "WhatsApp message", "Email"]
            .map(String::from)
            .to_vec();
        assert_eq!(
            Answer::of(Some("Email"), Some("Email"), &opts),
            Answer::Option("Email".into())
        );
        assert_eq!(
            Answer::of(None, Some("payload-x"), &opts),
            Answer::Option("payload-x".into()),
            "a tap is an answer whatever its payload"
        );
        assert_eq!(
            Answer::of(Some("  phone CALL! "), None, &opts),
            Answer::Option("Phone call".into())
        );
        assert_eq!(
            Answer::of(Some("Please contact me by phone"), None, &opts),
            Answer::NoMatch
        );
        assert_eq!(Answer::of(None, None, &opts), Answer::NoMatch, "media");
        assert_eq!(Answer::of(Some("thanks"), None, &[]), Answer::Text);
    }

    #[test]
    fn r5_2_any_inbound_message_opens_or_extends_the_window() {
        let mut w = ServiceWindow::new("s", phone());
        assert!(!w.is_open(now()));
        assert!(w.inbound(now(), Some("t")));
        assert_eq!(w.until, Some(now() + SERVICE_WINDOW));
        assert!(w.is_open(now() + Duration::hours(23)));
        assert!(!w.is_open(now() + Duration::hours(24)));
        assert!(w.inbound(now() + Duration::hours(5), None));
        assert_eq!(w.until, Some(now() + Duration::hours(29)));
        assert!(
            !w.inbound(now() + Duration::hours(1), None),
            "older: no change"
        );
        assert_eq!(w.tenant.as_deref(), Some("t"));
        assert!(w.ttl > (now() + Duration::days(30)).timestamp());
    }

    #[test]
    fn r5_5_after_the_window_only_the_recontact_template_may_be_sent() {
        use OperatorMessage::*;
        let sent = now();
        let open = interaction(sent);
        let later = sent + Duration::hours(2);
        // The campaign waits for the answer: nothing goes out (R5.1).
        assert_eq!(
            may_send(RecontactTemplate, Some(&open), None, false, later),
            Err(Refusal::AwaitingCustomer)
        );
        assert_eq!(
            Refusal::AwaitingCustomer.message(),
            "No messages can be sent since we are waiting for the customer's response."
        );
        // The contact answered (the interaction may stay open): the window is open.
        let mut w = ServiceWindow::new("s", phone());
        w.inbound(sent + Duration::hours(1), Some("t"));
        assert_eq!(
            may_send(FreeForm, Some(&open), Some(&w), false, later),
            Ok(())
        );
        assert_eq!(
            may_send(RecontactTemplate, Some(&open), Some(&w), false, later),
            Ok(())
        );
        // A message before the campaign's does not count as an answer.
        let mut before = ServiceWindow::new("s", phone());
        before.inbound(sent - Duration::hours(1), Some("t"));
        assert_eq!(
            may_send(FreeForm, Some(&open), Some(&before), false, later),
            Err(Refusal::AwaitingCustomer)
        );
        // The window expired: only the recontact template.
        let after = sent + Duration::hours(1) + SERVICE_WINDOW;
        let closed = interaction(sent - Duration::days(3));
        assert_eq!(
            may_send(FreeForm, Some(&closed), Some(&w), false, after),
            Err(Refusal::WindowClosed)
        );
        assert_eq!(
            may_send(RecontactTemplate, Some(&closed), Some(&w), false, after),
            Ok(())
        );
        assert_eq!(
            may_send(RecontactTemplate, None, None, false, after),
            Ok(())
        );
        assert_eq!(
            may_send(RecontactTemplate, None, None, true, after),
            Err(Refusal::OptedOut)
        );
    }

    #[test]
    fn r5_6_the_view_puts_the_template_first_and_messages_in_time_order() {
        use crate::domain::campaign::{Campaign, NewCampaign, TemplateRef};
        use crate::domain::template::ContactData;
        let c = Campaign::create(
            "t",
            NewCampaign {
                name: Some("c".into()),
                account_id: Some("a".into()),
                template: Some(TemplateRef {
                    name: "x".into(),
                    language: "en".into(),
                }),
                ..Default::default()
            },
            now(),
        )
        .unwrap();
        let mut e = HopperEntry::new(&c, phone(), ContactData::default(), 1);
        e.claim(now()).unwrap();
        e.record_sent("wamid.1".into(), now(), Duration::days(1));
        e.sent_text = Some("Hi Asha".into());
        let m = |s: i64, id: &str| {
            ConversationMessage::inbound(
                MessageKind::Reply,
                id,
                now() + Duration::seconds(s),
                Some(id.into()),
                None,
            )
        };
        let v = ConversationView::of(&e, Some("x"), vec![m(9, "b"), m(0, "a")], None);
        let texts: Vec<_> = v.messages.iter().map(|m| m.text.clone().unwrap()).collect();
        assert_eq!(texts, ["Hi Asha", "a", "b"]);
        assert_eq!(v.messages[0].kind, MessageKind::Template);
    }
}
