//! What operators see of single hopper entries (R4.1): the pending view (entries waiting,
//! PENDING by default) and the history view (entries whose outcome is settled), each
//! entry with a human outcome label, its disposition, reply, attempts and times.

use super::hopper::{
    EntryState, HopperEntry, EXPERIMENT_DISPOSITION, MARKETING_OPT_OUT_DISPOSITION,
};
use super::phone::PhoneNumber;
use super::{DomainError, Time};
use serde::Serialize;
use utoipa::ToSchema;

/// Entries a listing page holds unless `limit` says otherwise.
pub const DEFAULT_LIMIT: u32 = 100;
/// Most entries one listing page holds.
pub const MAX_LIMIT: u32 = 500;

/// The message of a `limit` that is not a whole number in `1..=MAX_LIMIT`.
pub const LIMIT_MESSAGE: &str = "must be a whole number from 1 to 500";

/// Which listing of the hopper (R4.1). The open and history views split the hopper in
/// two, as the statistics' `open` and `not_sent`/closed numbers do; `All` lists it whole.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum HopperView {
    /// Entries whose outcome is still open: FRESH (to send), SENDING (in flight) and
    /// PENDING (sent, awaiting a reply), or one of them.
    Open,
    /// Entries whose outcome is settled: CLOSED, FAILED, BLOCK_LIST, SKIPPED and RETRY (not
    /// sent, may be retried), or one of them.
    History,
    /// Every entry, or those in one state.
    All,
}

impl HopperView {
    /// The states of the open view.
    pub const OPEN: [EntryState; 3] = [EntryState::Fresh, EntryState::Sending, EntryState::Pending];

    /// The states of the history view.
    pub const HISTORY: [EntryState; 5] = [
        EntryState::Closed,
        EntryState::Failed,
        EntryState::BlockList,
        EntryState::Skipped,
        EntryState::Retry,
    ];

    /// The states this view lists, given the `state` asked for (case-insensitive). An
    /// unknown state, or one outside the view, is an error naming `state`.
    pub fn states(self, state: Option<&str>) -> Result<Vec<EntryState>, DomainError> {
        let asked = match state.map(str::trim) {
            None | Some("") => None,
            Some(s) => Some(parse_state(s)?),
        };
        let (all, other): (&[EntryState], &str) = match self {
            HopperView::Open => (&Self::OPEN, "history"),
            HopperView::History => (&Self::HISTORY, "open"),
            HopperView::All => (&EntryState::ALL, ""),
        };
        match asked {
            None => Ok(all.to_vec()),
            Some(s) if all.contains(&s) => Ok(vec![s]),
            Some(s) => Err(DomainError::invalid(
                "state",
                format!(
                    "{s} is not in this view, which lists {}: see the {other} view, or \
                     /hopper/entries for every state",
                    all.iter()
                        .map(|s| s.as_str())
                        .collect::<Vec<_>>()
                        .join(", ")
                ),
            )),
        }
    }
}

/// Which entries a listing keeps besides their state: an exact `reason`
/// (case-insensitive, e.g. `block list`) and an exact `disposition` (e.g.
/// `agent_requested`, `replied:Yes`).
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct EntryFilter {
    pub states: Vec<EntryState>,
    pub reason: Option<String>,
    pub disposition: Option<String>,
}

impl EntryFilter {
    /// Whether `e` is listed.
    pub fn keeps(&self, e: &HopperEntry) -> bool {
        self.states.contains(&e.state)
            && self.reason.as_deref().is_none_or(|r| {
                e.reason
                    .as_deref()
                    .is_some_and(|have| have.eq_ignore_ascii_case(r))
            })
            && self
                .disposition
                .as_deref()
                .is_none_or(|d| e.disposition.as_deref() == Some(d))
    }
}

fn parse_state(s: &str) -> Result<EntryState, DomainError> {
    EntryState::ALL
        .into_iter()
        .find(|st| st.as_str().eq_ignore_ascii_case(s))
        .ok_or_else(|| {
            DomainError::invalid(
                "state",
                format!(
                    "unknown state '{s}': use FRESH, SENDING, RETRY, PENDING, CLOSED, FAILED, \
                     BLOCK_LIST or SKIPPED"
                ),
            )
        })
}

/// The page size asked for: [`DEFAULT_LIMIT`] when none, else `1..=MAX_LIMIT`.
pub fn page_limit(limit: Option<u32>) -> Result<u32, DomainError> {
    match limit {
        None => Ok(DEFAULT_LIMIT),
        Some(n @ 1..=MAX_LIMIT) => Ok(n),
        Some(_) => Err(DomainError::invalid("limit", LIMIT_MESSAGE)),
    }
}

/// What happened to an entry, as a person would say it.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, ToSchema)]
pub enum Outcome {
    /// FRESH, in the dispatch order.
    #[serde(rename = "queued")]
    Queued,
    /// FRESH but held back until `wait_until` (an open interaction elsewhere, calling
    /// hours).
    #[serde(rename = "waiting")]
    Waiting,
    /// SENDING: claimed, the provider call in flight.
    #[serde(rename = "sending")]
    Sending,
    /// PENDING: sent, awaiting a reply until `expires_at`.
    #[serde(rename = "sent")]
    Sent,
    /// CLOSED by a reply inside the response timeout.
    #[serde(rename = "replied")]
    Replied,
    /// CLOSED by a reply after the response timeout (not counted as a reply).
    #[serde(rename = "replied late")]
    RepliedLate,
    /// CLOSED when the response timeout passed.
    #[serde(rename = "no response")]
    NoResponse,
    /// CLOSED otherwise (resolved).
    #[serde(rename = "closed")]
    Closed,
    /// FAILED, or a closed message the provider reported undeliverable.
    #[serde(rename = "failed")]
    Failed,
    /// Not delivered and not billed: the contact is in Meta's marketing-message
    /// experiment (130472); a resend would fail the same way.
    #[serde(rename = "marketing experiment")]
    MarketingExperiment,
    /// RETRY: not sent (or outcome unknown); may be retried.
    #[serde(rename = "retry")]
    Retry,
    /// BLOCK_LIST: on a block list or the opt-out list.
    #[serde(rename = "blocked")]
    Blocked,
    /// SKIPPED, with the reason.
    #[serde(rename = "skipped")]
    Skipped,
}

impl Outcome {
    /// The outcome of an entry: its state, refined by its disposition and wait.
    pub fn of(e: &HopperEntry) -> Outcome {
        match e.state {
            EntryState::Fresh if e.wait_until.is_some() || e.retry_at.is_some() => Outcome::Waiting,
            EntryState::Fresh => Outcome::Queued,
            EntryState::Sending => Outcome::Sending,
            EntryState::Pending => Outcome::Sent,
            EntryState::Closed => match e.disposition.as_deref() {
                Some(d)
                    if d == "replied"
                        || d.starts_with("replied:")
                        || d == super::hopper::AGENT_REQUESTED =>
                {
                    Outcome::Replied
                }
                Some("expired") => Outcome::RepliedLate,
                Some("no_response") => Outcome::NoResponse,
                Some(EXPERIMENT_DISPOSITION) => Outcome::MarketingExperiment,
                Some("undeliverable" | MARKETING_OPT_OUT_DISPOSITION) => Outcome::Failed,
                _ => Outcome::Closed,
            },
            EntryState::Failed if e.disposition.as_deref() == Some(EXPERIMENT_DISPOSITION) => {
                Outcome::MarketingExperiment
            }
            EntryState::Failed => Outcome::Failed,
            EntryState::Retry => Outcome::Retry,
            EntryState::BlockList => Outcome::Blocked,
            EntryState::Skipped => Outcome::Skipped,
        }
    }
}

/// A customer's reply as the views show it.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, ToSchema)]
pub struct ReplyView {
    pub text: Option<String>,
    /// The quick-reply button tapped, if any.
    pub button: Option<String>,
    #[schema(value_type = String, format = DateTime)]
    pub at: Time,
}

/// One hopper entry in the pending and history views (R4.1).
#[derive(Debug, Clone, PartialEq, Serialize, ToSchema)]
#[schema(example = json!({
    "phone": "919812345678", "name": "Asha", "state": "CLOSED", "outcome": "replied",
    "disposition": "replied:Yes", "reason": null, "error": null,
    "reply": {"text": "Yes", "button": "Yes", "at": "2026-11-22T09:14:00Z"},
    "attempts": 1, "sent_at": "2026-11-22T09:00:02Z", "delivered_at": "2026-11-22T09:00:05Z",
    "read_at": "2026-11-22T09:10:00Z", "replied_at": "2026-11-22T09:14:00Z",
    "expires_at": null, "wait_until": null, "last_attempt_error": null
}))]
pub struct EntryView {
    /// The full number (the operator's own data; logs only ever show it masked).
    pub phone: PhoneNumber,
    /// The contact's name, when known.
    pub name: Option<String>,
    pub state: EntryState,
    pub outcome: Outcome,
    /// The final outcome code: `replied`, `replied:<button>`, `agent_requested` (a reply
    /// matching no option: still waiting, an agent asked to take over), `no_response`,
    /// `undeliverable`, `expired`, `opted_out`, `not_sent`, `outcome_unknown`,
    /// `marketing_opt_out` (Meta 131050), `marketing_experiment` (Meta 130472); a voice
    /// call's `answered`, `connected`, `voicemail`, `machine_hung_up`, `no_answer`,
    /// `busy`, `invalid_number`, `fax`, `call_failed` or `no_final_event`.
    pub disposition: Option<String>,
    /// Why it was not sent or did not succeed (`block list`, `duplicate`, `Invalid Number`,
    /// the provider's reason).
    pub reason: Option<String>,
    /// The detailed error text.
    pub error: Option<String>,
    pub reply: Option<ReplyView>,
    /// Send attempts so far.
    pub attempts: u32,
    #[schema(value_type = Option<String>, format = DateTime)]
    pub sent_at: Option<Time>,
    #[schema(value_type = Option<String>, format = DateTime)]
    pub delivered_at: Option<Time>,
    #[schema(value_type = Option<String>, format = DateTime)]
    pub read_at: Option<Time>,
    #[schema(value_type = Option<String>, format = DateTime)]
    pub replied_at: Option<Time>,
    /// When the response timeout ends (PENDING only).
    #[schema(value_type = Option<String>, format = DateTime)]
    pub expires_at: Option<Time>,
    /// Until when a FRESH entry is held back.
    #[schema(value_type = Option<String>, format = DateTime)]
    pub wait_until: Option<Time>,
    /// What the last attempt came to when it put the entry back in line unsent (the
    /// campaign paused on its account or template, e.g. an expired token): the entry is
    /// queued again, not failed, so `reason` and `error` stay empty.
    pub last_attempt_error: Option<String>,
    /// How many times Meta's marketing limit (131049) held it back to be sent again
    /// (reason `held by Meta's marketing limit` while it waits).
    pub marketing_holds: u32,
    /// What Meta said of the message when it took it: `accepted`,
    /// `held_for_quality_assessment` or `paused` (none: the provider said nothing).
    pub message_status: Option<String>,
    /// The contact's business-scoped user id (Meta's `user_id`), when a webhook carried
    /// it.
    pub user_id: Option<String>,
    /// A voice entry's calls, oldest first (each attempt's times, answering-machine
    /// result and outcome); absent on the other channels.
    #[serde(skip_serializing_if = "Vec::is_empty")]
    pub calls: Vec<super::voice::CallAttempt>,
    /// A voice entry called again no earlier than this (after no answer or busy).
    #[serde(skip_serializing_if = "Option::is_none")]
    #[schema(value_type = Option<String>, format = DateTime)]
    pub retry_at: Option<Time>,
}

impl From<&HopperEntry> for EntryView {
    fn from(e: &HopperEntry) -> Self {
        EntryView {
            phone: e.phone.clone(),
            name: e.contact.name.clone(),
            state: e.state,
            outcome: Outcome::of(e),
            disposition: e.disposition.clone(),
            reason: e.reason.clone(),
            error: e.error.clone(),
            reply: e.reply.as_ref().map(|r| ReplyView {
                text: r.text.clone(),
                button: r.button.clone(),
                at: r.at,
            }),
            attempts: e.attempts,
            calls: e.calls.clone(),
            retry_at: e.retry_at,
            sent_at: e.sent_at,
            delivered_at: e.delivered_at,
            read_at: e.read_at,
            replied_at: e.replied_at,
            expires_at: e.expires_at,
            wait_until: e.wait_until,
            last_attempt_error: e.last_attempt_error.clone(),
            marketing_holds: e.marketing_holds,
            message_status: e.message_status.clone(),
            user_id: e.user_id.clone(),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::domain::campaign::{Campaign, NewCampaign, TemplateRef};
    use crate::domain::hopper::Reply;
    use crate::domain::outcome::SendFailure;
    use crate::domain::template::ContactData;
    use chrono::{Duration, Utc};

    fn entry() -> HopperEntry {
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
            Utc::now(),
        )
        .unwrap();
        HopperEntry::new(
            &c,
            PhoneNumber::parse("919812345678").unwrap(),
            ContactData::default(),
            1,
        )
    }

    #[test]
    fn r4_1_outcome_labels_follow_state_and_disposition() {
        let now = Utc::now();
        let mut e = entry();
        assert_eq!(Outcome::of(&e), Outcome::Queued);
        e.defer(now + Duration::hours(1), "calling hours");
        assert_eq!(Outcome::of(&e), Outcome::Waiting);
        let mut e = entry();
        e.claim(now).unwrap();
        assert_eq!(Outcome::of(&e), Outcome::Sending);
        e.record_sent("wamid.1".into(), now, Duration::days(1));
        assert_eq!(Outcome::of(&e), Outcome::Sent);
        let mut late = e.clone();
        let mut quiet = e.clone();
        e.apply_reply(Reply {
            message_id: "in".into(),
            text: Some("Yes".into()),
            button: Some("Yes".into()),
            at: now,
        });
        assert_eq!(Outcome::of(&e), Outcome::Replied);
        late.apply_reply(Reply {
            message_id: "in".into(),
            text: Some("hi".into()),
            button: None,
            at: now + Duration::days(3),
        });
        assert_eq!(Outcome::of(&late), Outcome::RepliedLate);
        quiet.expire(now + Duration::days(2));
        assert_eq!(Outcome::of(&quiet), Outcome::NoResponse);
        let mut failed = entry();
        failed.claim(now).unwrap();
        failed.record_failure(&SendFailure::meta(131026, "Message undeliverable"));
        assert_eq!(Outcome::of(&failed), Outcome::Failed);
        let mut retry = entry();
        retry.claim(now).unwrap();
        retry.record_failure(&SendFailure::meta(130429, "Rate limit hit"));
        assert_eq!(Outcome::of(&retry), Outcome::Retry);
        let mut blocked = entry();
        blocked.record_ineligible(EntryState::BlockList, "block list", None);
        assert_eq!(Outcome::of(&blocked), Outcome::Blocked);
        let mut skipped = entry();
        skipped.record_ineligible(EntryState::Skipped, "duplicate", None);
        assert_eq!(Outcome::of(&skipped), Outcome::Skipped);
        assert_eq!(
            serde_json::to_value(Outcome::NoResponse).unwrap(),
            serde_json::json!("no response")
        );
    }

    #[test]
    fn r4_1_views_select_states() {
        use EntryState::*;
        assert_eq!(
            HopperView::Open.states(None).unwrap(),
            vec![Fresh, Sending, Pending]
        );
        assert_eq!(HopperView::Open.states(Some("fresh")).unwrap(), vec![Fresh]);
        assert_eq!(
            HopperView::All.states(None).unwrap(),
            EntryState::ALL.to_vec()
        );
        assert_eq!(HopperView::All.states(Some("retry")).unwrap(), vec![Retry]);
        assert_eq!(
            HopperView::History.states(Some("")).unwrap(),
            HopperView::HISTORY.to_vec()
        );
        assert_eq!(
            HopperView::History.states(Some("BLOCK_LIST")).unwrap(),
            vec![BlockList]
        );
        for (view, bad) in [
            (HopperView::Open, "DONE"),
            (HopperView::Open, "CLOSED"),
            (HopperView::Open, "RETRY"),
            (HopperView::All, "DONE"),
            (HopperView::History, "PENDING"),
            (HopperView::History, "FRESH"),
        ] {
            match view.states(Some(bad)) {
                Err(DomainError::Invalid { field, .. }) => assert_eq!(field, "state"),
                other => panic!("{bad}: {other:?}"),
            }
        }
        assert_eq!(page_limit(None).unwrap(), DEFAULT_LIMIT);
        assert_eq!(page_limit(Some(500)).unwrap(), 500);
        assert!(page_limit(Some(0)).is_err() && page_limit(Some(501)).is_err());
    }
}
