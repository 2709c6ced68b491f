//! Hopper entries: one per contact per campaign, and the rules of their states (R4.1).

use super::answer::Answer;
use super::campaign::{Campaign, MarketingLimitHold};
use super::inbound::{CallEvent, CallEventKind, EntryRef, StatusKind, StatusUpdate};
use super::outcome::{
    classify_meta, FailureClass, SendFailure, MARKETING_LIMIT_HELD_REASON, OPTED_OUT_REASON,
};
use super::phone::PhoneNumber;
use super::template::ContactData;
use super::voice::{CallAttempt, CallOutcome, VoiceSettings, NO_FINAL_EVENT};
use super::{stable_hash, Time};
use serde::{Deserialize, Serialize};
use std::fmt;

#[derive(
    Debug,
    Clone,
    Copy,
    PartialEq,
    Eq,
    Hash,
    PartialOrd,
    Ord,
    Serialize,
    Deserialize,
    utoipa::ToSchema,
)]
#[serde(rename_all = "SCREAMING_SNAKE_CASE")]
pub enum EntryState {
    Fresh,
    Sending,
    Retry,
    Pending,
    Closed,
    Failed,
    BlockList,
    Skipped,
}

impl EntryState {
    pub const ALL: [EntryState; 8] = [
        EntryState::Fresh,
        EntryState::Sending,
        EntryState::Retry,
        EntryState::Pending,
        EntryState::Closed,
        EntryState::Failed,
        EntryState::BlockList,
        EntryState::Skipped,
    ];

    /// Still to be sent or waited for: a campaign with such entries is not done.
    pub fn is_open(self) -> bool {
        matches!(
            self,
            EntryState::Fresh | EntryState::Sending | EntryState::Pending
        )
    }

    pub fn as_str(self) -> &'static str {
        match self {
            EntryState::Fresh => "FRESH",
            EntryState::Sending => "SENDING",
            EntryState::Retry => "RETRY",
            EntryState::Pending => "PENDING",
            EntryState::Closed => "CLOSED",
            EntryState::Failed => "FAILED",
            EntryState::BlockList => "BLOCK_LIST",
            EntryState::Skipped => "SKIPPED",
        }
    }
}

impl fmt::Display for EntryState {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Reply {
    pub message_id: String,
    pub text: Option<String>,
    pub button: Option<String>,
    pub at: Time,
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct HopperEntry {
    pub tenant: String,
    pub campaign_id: String,
    pub shard: u16,
    pub phone: PhoneNumber,
    pub state: EntryState,
    /// Dispatch order inside the campaign; entries added later sort after earlier ones.
    pub seq: u64,
    pub contact: ContactData,
    pub attempts: u32,
    pub message_id: Option<String>,
    pub sent_at: Option<Time>,
    pub delivered_at: Option<Time>,
    pub read_at: Option<Time>,
    pub replied_at: Option<Time>,
    /// When the response timeout ends; present only while PENDING.
    pub expires_at: Option<Time>,
    pub reply: Option<Reply>,
    /// The final outcome code: `replied`, `replied:<button>`, `agent_requested` (replies
    /// matching no option, R5.3), `no_response`, `expired` (replied after the timeout),
    /// `opted_out`, `undeliverable`. A reply that keeps the entry PENDING (R5.2, R5.3)
    /// shows its code already.
    pub disposition: Option<String>,
    /// The short reason an entry was not sent or did not succeed, as reports group it:
    /// `block list`, `opted out`, `Invalid Number`, `duplicate`, `campaign ended`, or the
    /// provider's reason (`Message Undeliverable`). `error` keeps the detailed text.
    #[serde(default)]
    pub reason: Option<String>,
    pub error: Option<String>,
    /// A FRESH entry that may not be sent yet (an open interaction elsewhere, outside
    /// calling hours) waits until this instant, out of the dispatch order; the sweeper
    /// then puts it back at the end of the order (R4.6, R4.8).
    #[serde(default)]
    pub wait_until: Option<Time>,
    /// When the entry was last claimed for sending; while SENDING it dates the claim, so
    /// the sweeper can tell a worker that died from one still at work (R4.10).
    #[serde(default)]
    pub claimed_at: Option<Time>,
    /// The template's text as rendered for this contact when it was sent, for the
    /// conversation view (R5.6).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub sent_text: Option<String>,
    /// When the entry was last stored changed (absent on entries stored before it was
    /// recorded): a recount trusts the counters' view of an entry only once its change is
    /// older than any writer's life ([`crate::domain::stats::SETTLED_AFTER`]).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub changed_at: Option<Time>,
    /// What the last attempt came to when it put the entry back in line unsent (the
    /// campaign paused on the account or template: an expired token, a paused template).
    /// Kept apart from `reason`/`error`, which say why the entry is where it is now, so a
    /// FRESH entry does not look failed.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub last_attempt_error: Option<String>,
    /// How many times Meta's marketing limit (131049) held this entry back to be sent
    /// again later.
    #[serde(default, skip_serializing_if = "is_zero")]
    pub marketing_holds: u32,
    /// The WhatsApp-to-SMS fallback (issue 16): `due` once WhatsApp refused the number as
    /// not on WhatsApp and the campaign names an SMS fallback (the entry waits in line to
    /// go by SMS); `sent` from the claim of that SMS on, whatever its outcome, so an entry
    /// falls back once at most.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub sms_fallback: Option<SmsFallback>,
    /// What Meta said of the current message when it took it (`message_status`:
    /// `accepted`, `held_for_quality_assessment`, `paused`).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub message_status: Option<String>,
    /// The contact's business-scoped user id (Meta's `user_id`, 2026), when a webhook
    /// carried it; kept apart from the phone number.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub user_id: Option<String>,
    /// A voice entry's calls (issue 17), oldest first: each attempt that reached Connect,
    /// its times, answering-machine result and outcome.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub calls: Vec<CallAttempt>,
    /// A voice entry waiting to be called again (no answer, busy): FRESH and in line,
    /// not claimed before this instant.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub retry_at: Option<Time>,
    /// The client token of a voice entry's next call, kept from the claim that made it
    /// until a call is recorded: a claim after one whose call may have started (a lost
    /// answer, then a refusal of the SDK's retry) starts with the same token, so Connect
    /// answers the contact it started instead of dialling again.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub call_token: Option<String>,
    #[serde(default)]
    pub version: u64,
}

fn is_zero(n: &u32) -> bool {
    *n == 0
}

/// What a call's contact event did to its entry.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum CallApplied {
    /// Nothing: not one of the entry's calls, or nothing new.
    Ignored,
    /// The entry is still being claimed and its call not yet recorded: the event must
    /// come again later.
    NotYet,
    /// Changed; `ended`: the entry's current call is over (its line is free).
    Applied { ended: bool },
}

/// Why an entry could not be claimed for sending.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct NotClaimable(pub EntryState);

/// What a reply meant for the entry it was attributed to.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ReplyOutcome {
    /// Inside the response timeout: recorded, the interaction closed.
    InTime,
    /// Inside the response timeout: recorded, the interaction stays open until the
    /// timeout (a quick reply without `close_on_quick_reply`, R5.2; no matching option,
    /// R5.3).
    KeptPending,
    /// After the timeout: the interaction closed as expired, not counted (R5.4).
    Late,
    /// The entry was not waiting for a reply (already answered, or never sent).
    NotWaiting,
}

/// The disposition of an entry whose reply matched none of the message's quick-reply
/// options (R5.3): the campaign still waits for an answer, and an agent was asked to take
/// the conversation over. Not `replied`, which is an answer.
pub const AGENT_REQUESTED: &str = "agent_requested";

/// Disposition of a message Meta did not deliver because the contact stopped marketing
/// messages from the business (131050).
pub const MARKETING_OPT_OUT_DISPOSITION: &str = "marketing_opt_out";
/// Disposition of a message Meta kept back for its marketing experiment (130472): not
/// delivered, not billed.
pub const EXPERIMENT_DISPOSITION: &str = "marketing_experiment";
/// Disposition, while SENDING, of an attempt whose 131049 status overtook the send's
/// record: the record then puts the entry on its wait.
const MARKETING_LIMIT_PENDING: &str = "marketing_limit";
/// Disposition of a message the provider reported refused because the contact opted out
/// of the number (Twilio's 21610 in a status callback): the entry is BLOCK_LIST "opted
/// out", as when the send itself is refused so.
pub const OPTED_OUT_BY_STATUS: &str = "opted_out_at_provider";
/// The dispositions of a message the provider reported failed after accepting it.
const FAILED_BY_STATUS: [&str; 4] = [
    "undeliverable",
    MARKETING_OPT_OUT_DISPOSITION,
    EXPERIMENT_DISPOSITION,
    OPTED_OUT_BY_STATUS,
];

/// Where an entry is in the WhatsApp-to-SMS fallback.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum SmsFallback {
    /// Waiting in line to go by SMS.
    Due,
    /// Its SMS was claimed (sent, or failed): never again.
    Sent,
}

/// The reason of an entry waiting to be sent by SMS because its number is not on
/// WhatsApp; its `error` keeps WhatsApp's refusal.
pub const SMS_FALLBACK_REASON: &str = "not on WhatsApp: falling back to SMS";

/// The error of an entry whose send was claimed but never recorded (R4.10).
pub const OUTCOME_UNKNOWN: &str = "outcome unknown";
pub use super::template::TEMPLATE_VARIABLES_REASON;

/// Sets `slot` to `at` unless it already holds an earlier time.
fn earliest(slot: &mut Option<Time>, at: Time) {
    if slot.is_none_or(|t| at < t) {
        *slot = Some(at);
    }
}

pub fn shard_of(phone: &PhoneNumber, shards: u16) -> u16 {
    (stable_hash(phone.as_str()) % u64::from(shards.max(1))) as u16
}

impl HopperEntry {
    pub fn new(campaign: &Campaign, phone: PhoneNumber, contact: ContactData, seq: u64) -> Self {
        HopperEntry {
            tenant: campaign.tenant.clone(),
            campaign_id: campaign.id.clone(),
            shard: shard_of(&phone, campaign.hopper_shards),
            phone,
            state: EntryState::Fresh,
            seq,
            contact,
            attempts: 0,
            message_id: None,
            sent_at: None,
            delivered_at: None,
            read_at: None,
            replied_at: None,
            expires_at: None,
            reply: None,
            disposition: None,
            reason: None,
            error: None,
            wait_until: None,
            claimed_at: None,
            sent_text: None,
            changed_at: None,
            last_attempt_error: None,
            marketing_holds: 0,
            sms_fallback: None,
            message_status: None,
            user_id: None,
            calls: Vec::new(),
            retry_at: None,
            call_token: None,
            version: 0,
        }
    }

    /// Whether the entry was in line before sequence number `below` (every entry when
    /// `None`): a reset or retry changes only the entries in line when it was asked for,
    /// so one attached later, or already put back at a new place by the same walk, is
    /// left alone and no page walked twice changes an entry twice.
    pub fn in_line_before(&self, below: Option<u64>) -> bool {
        below.is_none_or(|b| self.seq < b)
    }

    pub fn entry_ref(&self) -> EntryRef {
        EntryRef {
            tenant: self.tenant.clone(),
            campaign_id: self.campaign_id.clone(),
            shard: self.shard,
            phone: self.phone.clone(),
        }
    }

    /// FRESH -> SENDING, before the provider is called (R4.10). Only FRESH entries are
    /// sent automatically: a RETRY entry may have reached the customer already (its
    /// outcome may be unknown), so it goes out again only by an explicit retry command,
    /// never because a queue message naming it was delivered again.
    pub fn claim(&mut self, now: Time) -> Result<(), NotClaimable> {
        match self.state {
            // A waiting entry goes out only once the sweeper puts it back in line.
            EntryState::Fresh if self.wait_until.is_some_and(|w| w > now) => {
                Err(NotClaimable(EntryState::Fresh))
            }
            // A call is retried after its delay, not before.
            EntryState::Fresh if self.retry_at.is_some_and(|r| r > now) => {
                Err(NotClaimable(EntryState::Fresh))
            }
            EntryState::Fresh => {
                self.wait_until = None;
                self.retry_at = None;
                self.state = EntryState::Sending;
                self.attempts += 1;
                self.claimed_at = Some(now);
                // The claim of the SMS fallback is its only one: never due again.
                if self.sms_fallback == Some(SmsFallback::Due) {
                    self.sms_fallback = Some(SmsFallback::Sent);
                }
                Ok(())
            }
            other => Err(NotClaimable(other)),
        }
    }

    /// The client token of the call this claim places: the one kept from an earlier claim
    /// whose call may have started, else a new one naming this attempt (kept until the
    /// call is recorded). Called on a claimed voice entry, before it is stored.
    pub fn keep_call_token(&mut self) -> String {
        let r = self.entry_ref();
        let attempt = self.attempts;
        self.call_token
            .get_or_insert_with(|| super::voice::client_token(&r, attempt))
            .clone()
    }

    /// Whether this claim sends the campaign's SMS fallback rather than its WhatsApp
    /// message.
    pub fn sends_sms_fallback(&self) -> bool {
        self.sms_fallback == Some(SmsFallback::Sent)
    }

    /// WhatsApp refused the number as not on WhatsApp (the entry is FAILED with Meta's
    /// 131026 or Kaleyra's invalid-number reason) and the campaign names an SMS fallback:
    /// the entry goes back in line, due at `at`, to be sent by SMS once. An entry that
    /// fell back already, or failed for another reason, stays as it is. Returns whether it
    /// changed.
    pub fn fall_back_to_sms(&mut self, at: Time) -> bool {
        let refused = self.state == EntryState::Failed
            && self
                .reason
                .as_deref()
                .is_some_and(super::outcome::is_not_on_whatsapp_reason);
        if !refused || self.sms_fallback.is_some() {
            return false;
        }
        self.sms_fallback = Some(SmsFallback::Due);
        self.back_in_line_after_limit();
        self.wait_until = Some(at);
        self.reason = Some(SMS_FALLBACK_REASON.into());
        true
    }

    /// A claim older than `threshold` whose outcome was never recorded (the worker died
    /// between the claim and the record): SENDING -> RETRY "outcome unknown" (R4.10). The
    /// message may or may not have gone out, so it is never sent again automatically.
    /// Returns whether the entry changed.
    pub fn reclaim_stale(&mut self, now: Time, threshold: chrono::Duration) -> bool {
        match (self.state, self.claimed_at) {
            // Meta's marketing limit refused this attempt: not unknown, it waits.
            (EntryState::Sending, Some(at))
                if at + threshold <= now
                    && self.disposition.as_deref() == Some(MARKETING_LIMIT_PENDING) =>
            {
                self.back_in_line_after_limit();
                true
            }
            (EntryState::Sending, Some(at)) if at + threshold <= now => {
                self.state = EntryState::Retry;
                self.error = Some(OUTCOME_UNKNOWN.into());
                self.reason = Some(OUTCOME_UNKNOWN.into());
                self.disposition = Some("outcome_unknown".into());
                self.last_attempt_error = None;
                true
            }
            _ => false,
        }
    }

    /// Connect started the claimed attempt's call (`contact_id`): PENDING until its final
    /// event, or until `bound` passes without one (the sweeper then settles it as
    /// `no_final_event`).
    pub fn record_dialled(&mut self, contact_id: String, now: Time, bound: chrono::Duration) {
        self.record_sent(contact_id.clone(), now, bound);
        // The next call is another: it gets its own token.
        self.call_token = None;
        if !self.calls.iter().any(|c| c.contact_id == contact_id) {
            self.calls
                .push(CallAttempt::new(self.attempts, contact_id, now));
        }
    }

    /// A contact event of one of the entry's calls: its facts are kept on the call, and
    /// the final one (DISCONNECTED) of the current call settles the entry by the
    /// campaign's `settings`: called again after the delay while retries remain (no
    /// answer, busy, failed on the way), else CLOSED with the call's outcome, or FAILED
    /// for a number that cannot take calls. A late answering-machine result refines a
    /// call settled as `connected`.
    pub fn apply_call(&mut self, ev: &CallEvent, settings: &VoiceSettings) -> CallApplied {
        let Some(i) = self
            .calls
            .iter()
            .position(|c| c.contact_id == ev.contact_id)
        else {
            // Not (yet) recorded: the call's start may still be being written.
            return if self.state == EntryState::Sending {
                CallApplied::NotYet
            } else {
                CallApplied::Ignored
            };
        };
        let latest = i + 1 == self.calls.len();
        let current = latest && self.message_id.as_deref() == Some(ev.contact_id.as_str());
        let mut changed = self.calls[i].learn(ev);
        let call = &mut self.calls[i];
        if ev.kind == CallEventKind::Disconnected && call.outcome.is_none() {
            let outcome = call.judge(settings.amd_action);
            call.outcome = Some(outcome);
            if current && self.state == EntryState::Pending {
                self.settle_call(outcome, settings, ev.at);
            }
            return CallApplied::Applied { ended: latest };
        }
        // The final event of the entry's latest call delivered again (its handling may
        // have died after the entry was stored): what its end frees is freed again.
        if ev.kind == CallEventKind::Disconnected && latest {
            return CallApplied::Applied { ended: true };
        }
        let refined = call.outcome.map(|_| call.judge(settings.amd_action));
        if current
            && self.state == EntryState::Closed
            && call.outcome == Some(CallOutcome::Connected)
            && refined.is_some_and(|o| o != CallOutcome::Connected && !o.is_retried())
        {
            call.outcome = refined;
            self.disposition = refined.map(|o| o.as_str().to_owned());
            changed = true;
        }
        if changed {
            CallApplied::Applied { ended: false }
        } else {
            CallApplied::Ignored
        }
    }

    /// The current call ended as `outcome` at `at`.
    fn settle_call(&mut self, outcome: CallOutcome, settings: &VoiceSettings, at: Time) {
        self.expires_at = None;
        if outcome.is_retried() && settings.may_retry(self.calls.len() as u32) {
            // Back in line, keeping its place, for the next call after the delay.
            self.state = EntryState::Fresh;
            self.retry_at = Some(at + settings.retry_delay());
            self.message_id = None;
            self.claimed_at = None;
            self.disposition = None;
            self.reason = Some(format!("calling again after {}", outcome.as_str()));
            self.error = None;
        } else if outcome.fails_the_entry() {
            self.state = EntryState::Failed;
            self.disposition = Some(outcome.as_str().into());
            self.reason = Some(outcome.reason().into());
            self.error = None;
        } else {
            self.state = EntryState::Closed;
            self.disposition = Some(outcome.as_str().into());
            self.reason = None;
            self.error = None;
        }
    }

    /// The provider accepted the message: wait for a reply until the timeout.
    /// A `failed` status that overtook this record wins.
    pub fn record_sent(&mut self, message_id: String, now: Time, timeout: chrono::Duration) {
        if self.disposition.as_deref() == Some(MARKETING_LIMIT_PENDING) {
            // Meta's marketing limit refused it before this record: the entry waits as
            // that status set it.
            self.back_in_line_after_limit();
            return;
        }
        self.last_attempt_error = None;
        self.message_id = Some(message_id);
        earliest(&mut self.sent_at, now);
        // Kept on a failed entry too: a `delivered` that comes after the `failed` puts it
        // back to PENDING until this timeout.
        self.expires_at = Some(now + timeout);
        if self.failed_by_status() {
            self.settle_failed_by_status();
        } else {
            self.error = None;
            self.reason = None;
            self.state = EntryState::Pending;
        }
    }

    /// The provider refused the message, or the message could not be built.
    pub fn record_failure(&mut self, failure: &SendFailure) {
        // Kept when nothing was attempted: the last attempt is still the one it tells of.
        if failure.class != FailureClass::NotAttempted {
            self.last_attempt_error = None;
        }
        self.error = Some(failure.reason.clone());
        self.reason = Some(failure.reason.clone());
        match failure.class {
            // Without the campaign's rule ([`HopperEntry::record_refusal`]) a marketing
            // limit is final.
            FailureClass::Permanent | FailureClass::MarketingLimit => {
                self.state = EntryState::Failed;
                self.disposition = Some("undeliverable".into());
            }
            FailureClass::MarketingOptOut => {
                self.state = EntryState::Failed;
                self.disposition = Some(MARKETING_OPT_OUT_DISPOSITION.into());
            }
            FailureClass::Experiment => {
                self.state = EntryState::Failed;
                self.disposition = Some(EXPERIMENT_DISPOSITION.into());
            }
            FailureClass::OptedOut => {
                let error = self.error.take();
                self.record_ineligible(EntryState::BlockList, OPTED_OUT_REASON, error);
            }
            FailureClass::Temporary => self.state = EntryState::Retry,
            // Maybe sent: grouped with the claims whose worker died (R4.10).
            FailureClass::Unknown => {
                self.state = EntryState::Retry;
                self.reason = Some(OUTCOME_UNKNOWN.into());
                self.disposition = Some("outcome_unknown".into());
            }
            // The account or template is at fault, not the contact, and the provider sent
            // nothing: the entry goes back in line and is sent after the campaign resumes
            // (R4.7; RETRY would wait for an operator's retry command).
            FailureClass::Campaign => {
                self.state = EntryState::Fresh;
                self.claimed_at = None;
                self.last_attempt_error = self.error.take();
                self.reason = None;
            }
            // Nothing was attempted: back in line, and nothing to show as its result.
            FailureClass::NotAttempted => {
                self.state = EntryState::Fresh;
                self.claimed_at = None;
                self.error = None;
                self.reason = None;
            }
        }
    }

    /// The provider refused the send: [`HopperEntry::record_failure`], except that a refusal
    /// for Meta's marketing limit puts the entry back to wait under the campaign's `hold`
    /// rule while attempts remain.
    pub fn record_refusal(
        &mut self,
        failure: &SendFailure,
        hold: Option<&MarketingLimitHold>,
        now: Time,
    ) {
        // A 131049 status of this attempt came first (the answer was then lost): Meta
        // refused it, so it waits as that status set it, not "outcome unknown".
        if self.disposition.as_deref() == Some(MARKETING_LIMIT_PENDING) {
            self.back_in_line_after_limit();
            return;
        }
        if failure.class == FailureClass::MarketingLimit {
            if let Some(until) = hold.and_then(|h| h.next_attempt(self.marketing_holds, now)) {
                self.wait_for_marketing_limit(until, &failure.reason);
                self.back_in_line_after_limit();
                return;
            }
        }
        self.record_failure(failure);
    }

    /// Back in line after Meta's marketing limit refused the attempt: FRESH and waiting
    /// (the hold set `wait_until`), keeping nothing of the refused message (its id,
    /// status, times), so the next attempt's statuses are the ones it takes, and a retry
    /// or reset after a later temporary refusal treats it as never sent.
    fn back_in_line_after_limit(&mut self) {
        self.state = EntryState::Fresh;
        self.disposition = None;
        self.message_id = None;
        self.message_status = None;
        self.sent_at = None;
        self.expires_at = None;
        self.claimed_at = None;
        self.last_attempt_error = None;
    }

    /// Held back by Meta's marketing limit: the entry waits until `until` (the sweeper
    /// then puts it back in line) under its own reason.
    fn wait_for_marketing_limit(&mut self, until: Time, error: &str) {
        self.marketing_holds += 1;
        self.wait_until = Some(until);
        self.reason = Some(MARKETING_LIMIT_HELD_REASON.into());
        self.error = Some(error.to_owned());
    }

    /// Keeps the contact's business-scoped user id (Meta's `user_id`) when a webhook
    /// carried a new one; returns whether it changed.
    pub fn learn_user_id(&mut self, user_id: Option<&str>) -> bool {
        match user_id {
            Some(u) if self.user_id.as_deref() != Some(u) => {
                self.user_id = Some(u.to_owned());
                true
            }
            _ => false,
        }
    }

    /// Whether the provider reported the current message failed after accepting it.
    fn failed_by_status(&self) -> bool {
        self.disposition
            .as_deref()
            .is_some_and(|d| FAILED_BY_STATUS.contains(&d))
    }

    /// The message could not be built for this contact (R3.3: a variable without a value,
    /// [`TEMPLATE_VARIABLES_REASON`]; an SMS longer than the campaign allows,
    /// `sms::MESSAGE_TOO_LONG_REASON`): not sent, `reason` and `error` recorded.
    pub fn record_unsendable(&mut self, reason: &str, error: String) {
        self.last_attempt_error = None;
        self.state = EntryState::Failed;
        self.disposition = Some("not_sent".into());
        self.reason = Some(reason.into());
        self.error = Some(error);
    }

    /// A check before the send ruled this contact out (R4.2-R4.5): the entry stays in the
    /// hopper in `state` (FAILED, BLOCK_LIST or SKIPPED) with its reason and error, and is
    /// never sent by this campaign.
    pub fn record_ineligible(&mut self, state: EntryState, reason: &str, error: Option<String>) {
        debug_assert!(matches!(
            state,
            EntryState::Failed | EntryState::BlockList | EntryState::Skipped
        ));
        self.state = state;
        self.disposition = Some("not_sent".into());
        self.reason = Some(reason.to_owned());
        self.error = error;
        self.wait_until = None;
        self.claimed_at = None;
        self.last_attempt_error = None;
    }

    /// The contact may not be sent to yet (R4.6 open interaction, R4.8 calling hours): the
    /// entry stays FRESH, leaves the dispatch order and waits until `until`, with why.
    pub fn defer(&mut self, until: Time, why: &str) {
        if self.state == EntryState::Fresh {
            self.wait_until = Some(until);
            self.error = Some(why.to_owned());
        }
    }

    /// The wait is over: back in the dispatch order at `seq` (the end of the line).
    /// Returns whether the entry changed.
    pub fn release(&mut self, seq: u64, now: Time) -> bool {
        match (self.state, self.wait_until) {
            (EntryState::Fresh, Some(w)) if w <= now => {
                self.wait_until = None;
                self.error = None;
                self.seq = seq;
                true
            }
            _ => false,
        }
    }

    /// Whether a status reporting `message_id` (of `attempt`, when the callback data
    /// names it) is about this entry's current attempt: the message the entry holds, or,
    /// before the entry learnt its message id, the attempt in flight (SENDING) or whose
    /// outcome is unknown (RETRY). A status of an earlier attempt (before a reset or a
    /// retry), of another message, or for an entry not sent (FRESH) is not (R6.1).
    pub fn reports_current_attempt(&self, message_id: &str, attempt: Option<u32>) -> bool {
        if attempt.is_some_and(|a| a != self.attempts) {
            return false;
        }
        match &self.message_id {
            Some(id) => id == message_id,
            None => matches!(self.state, EntryState::Sending | EntryState::Retry),
        }
    }

    /// Applies a provider's status report if it is about the current attempt. A RETRY
    /// entry that never learnt its message id (the call timed out, or the claim was
    /// reclaimed as "outcome unknown") learns it here: the provider has the message, so
    /// [`HopperEntry::retry`] never sends it again. Returns whether anything changed.
    pub fn apply_update(&mut self, s: &StatusUpdate) -> bool {
        self.apply_update_held(s, None)
    }

    /// [`HopperEntry::apply_update`] with the campaign's rule for Meta's marketing limit
    /// (without one, a 131049 failure is final).
    pub fn apply_update_held(
        &mut self,
        s: &StatusUpdate,
        hold: Option<&MarketingLimitHold>,
    ) -> bool {
        if !self.reports_current_attempt(&s.message_id, s.attempt) {
            return false;
        }
        let mut learnt = self.state == EntryState::Retry && self.message_id.is_none();
        if learnt {
            self.message_id = Some(s.message_id.clone());
        }
        learnt |= self.learn_user_id(s.user_id.as_deref());
        self.apply_status_held(&s.status, s.at, hold) || learnt
    }

    /// Applies a delivery status. Statuses only move forward (R6.1); `read` implies
    /// `delivered`. Returns whether anything changed.
    pub fn apply_status(&mut self, status: &StatusKind, at: Time) -> bool {
        self.apply_status_held(status, at, None)
    }

    fn apply_status_held(
        &mut self,
        status: &StatusKind,
        at: Time,
        hold: Option<&MarketingLimitHold>,
    ) -> bool {
        let before = self.clone();
        match status {
            // Times keep the earliest report, whatever order the webhooks come in.
            StatusKind::Sent => {
                earliest(&mut self.sent_at, at);
            }
            StatusKind::Delivered => {
                earliest(&mut self.sent_at, at);
                earliest(&mut self.delivered_at, at);
                self.undo_status_failure();
            }
            StatusKind::Read => {
                earliest(&mut self.sent_at, at);
                earliest(&mut self.delivered_at, at);
                earliest(&mut self.read_at, at);
                self.undo_status_failure();
            }
            StatusKind::Failed {
                code,
                reason,
                class,
            } => {
                let class = class.or_else(|| code.map(classify_meta));
                self.apply_failed(class, reason, at, hold)
            }
        }
        *self != before
    }

    /// A `failed` status: the entry fails with the outcome of its code, or, for Meta's
    /// marketing limit while attempts remain, waits to be sent again. A message that
    /// reached the phone cannot fail afterwards, the first failure reported stands, and
    /// an entry back in line (FRESH: held, its message failed already) takes none.
    fn apply_failed(
        &mut self,
        class: Option<FailureClass>,
        reason: &str,
        at: Time,
        hold: Option<&MarketingLimitHold>,
    ) {
        if self.delivered_at.is_some()
            || self.failed_by_status()
            || self.state == EntryState::Fresh
            || self.disposition.as_deref() == Some(MARKETING_LIMIT_PENDING)
        {
            return;
        }
        let waiting = matches!(
            self.state,
            EntryState::Pending | EntryState::Sending | EntryState::Retry
        );
        let until = hold.and_then(|h| h.next_attempt(self.marketing_holds, at));
        if let (Some(FailureClass::MarketingLimit), true, Some(until)) = (class, waiting, until) {
            self.wait_for_marketing_limit(until, reason);
            if self.state == EntryState::Sending {
                self.disposition = Some(MARKETING_LIMIT_PENDING.into());
            } else {
                self.back_in_line_after_limit();
            }
            return;
        }
        let disposition = match class {
            Some(FailureClass::MarketingOptOut) => MARKETING_OPT_OUT_DISPOSITION,
            Some(FailureClass::Experiment) => EXPERIMENT_DISPOSITION,
            Some(FailureClass::OptedOut) => OPTED_OUT_BY_STATUS,
            _ => "undeliverable",
        };
        self.error = Some(reason.to_owned());
        self.reason = Some(reason.to_owned());
        self.disposition = Some(disposition.into());
        if self.state == EntryState::Pending {
            self.settle_failed_by_status();
        }
    }

    /// A PENDING (or just recorded) message the provider reported failed: FAILED, or
    /// BLOCK_LIST "opted out" when it was refused because the contact opted out.
    fn settle_failed_by_status(&mut self) {
        if self.disposition.as_deref() == Some(OPTED_OUT_BY_STATUS) {
            self.state = EntryState::BlockList;
            self.reason = Some(OPTED_OUT_REASON.into());
        } else {
            self.state = EntryState::Failed;
        }
    }

    /// The message reached the phone after all: a `failed` status that overtook its
    /// `delivered` or `read` does not stand, so the final state does not depend on the
    /// order webhooks arrive in (R6.1).
    fn undo_status_failure(&mut self) {
        if self.state == EntryState::Failed && self.failed_by_status() && self.message_id.is_some()
        {
            self.state = EntryState::Pending;
            self.disposition = None;
            self.reason = None;
            self.error = None;
        } else if self.state == EntryState::Sending && self.failed_by_status() {
            self.disposition = None;
            self.reason = None;
            self.error = None;
        }
    }

    /// A customer's reply attributed to this entry, as an answer that closes the
    /// interaction: a tapped button is the option chosen, text the answer (R5.2, R5.4).
    /// The webhook path uses [`HopperEntry::apply_answer`] with the campaign's rules.
    pub fn apply_reply(&mut self, reply: Reply) -> ReplyOutcome {
        let answer = match &reply.button {
            Some(b) => Answer::Option(b.clone()),
            None => Answer::Text,
        };
        self.apply_answer(reply, &answer, true)
    }

    /// Whether the entry's recorded reply is the message `message_id`.
    pub fn holds_reply(&self, message_id: &str) -> bool {
        self.reply
            .as_ref()
            .is_some_and(|r| r.message_id == message_id)
    }

    /// What applying the reply it holds came to: kept pending, or answered in time.
    pub fn reply_outcome(&self) -> ReplyOutcome {
        if self.state == EntryState::Pending {
            ReplyOutcome::KeptPending
        } else {
            ReplyOutcome::InTime
        }
    }

    /// A customer's reply attributed to this entry (R5.2-R5.4), `answer` classifying it
    /// against the message's quick-reply options. A reply proves the message was delivered
    /// and read.
    ///
    /// - After the timeout (R5.4): the entry closes, `expired` unless an earlier reply
    ///   answered in time (then with that answer's disposition); nothing is counted.
    /// - In time: the first reply sets `replied_at` (counted once); the disposition is
    ///   `replied:<option>` once an option was chosen (a later option replaces it, later
    ///   text does not), else `replied`; `reply` keeps the answer behind the disposition.
    ///   An option closes the entry when `close_on_quick_reply`; text to a template without
    ///   options always closes it; a reply matching no option never does (R5.3).
    pub fn apply_answer(
        &mut self,
        reply: Reply,
        answer: &Answer,
        close_on_quick_reply: bool,
    ) -> ReplyOutcome {
        if self.state != EntryState::Pending {
            return ReplyOutcome::NotWaiting;
        }
        if self
            .reply
            .as_ref()
            .is_some_and(|r| r.message_id == reply.message_id)
        {
            // The same message again (a webhook delivered twice).
            return ReplyOutcome::NotWaiting;
        }
        let expires = self.expires_at.unwrap_or(reply.at);
        if reply.at > expires {
            self.state = EntryState::Closed;
            self.expires_at = None;
            if self.replied_at.is_none() {
                self.disposition = Some("expired".into());
            }
            return ReplyOutcome::Late;
        }
        earliest(&mut self.delivered_at, reply.at);
        earliest(&mut self.read_at, reply.at);
        self.replied_at.get_or_insert(reply.at);
        let chose_before = self
            .disposition
            .as_deref()
            .is_some_and(|d| d.starts_with("replied:"));
        if answer.option().is_some() || !chose_before {
            self.disposition = Some(match answer {
                Answer::Option(o) => format!("replied:{o}"),
                Answer::Text => "replied".into(),
                Answer::NoMatch => AGENT_REQUESTED.into(),
            });
            self.reply = Some(reply);
        }
        let close = match answer {
            Answer::Option(_) => close_on_quick_reply,
            Answer::Text => true,
            Answer::NoMatch => false,
        };
        if close {
            self.state = EntryState::Closed;
            self.expires_at = None;
            ReplyOutcome::InTime
        } else {
            ReplyOutcome::KeptPending
        }
    }

    /// The contact sent an opt-out keyword (R5.7) while the entry waited: it closes as
    /// `opted_out` (an answer the campaign does not count as a reply; an earlier in-time
    /// reply stays counted). Returns whether it changed.
    pub fn apply_opt_out(&mut self) -> bool {
        if self.state != EntryState::Pending {
            return false;
        }
        self.state = EntryState::Closed;
        self.expires_at = None;
        self.disposition = Some("opted_out".into());
        true
    }

    /// The response timeout passed (R5.5): the entry closes, as `no_response` when no
    /// reply came, else with its answer's disposition (an answer that did not close the
    /// interaction, R5.2/R5.3). Returns whether it closed.
    pub fn expire(&mut self, now: Time) -> bool {
        match (self.state, self.expires_at) {
            (EntryState::Pending, Some(at)) if at <= now => {
                self.state = EntryState::Closed;
                if !self.calls.is_empty() {
                    // A call's final event never came within the campaign's bound.
                    self.disposition = Some(NO_FINAL_EVENT.into());
                } else if self.replied_at.is_none() {
                    self.disposition = Some("no_response".into());
                }
                self.expires_at = None;
                true
            }
            _ => false,
        }
    }

    /// Reset list (R4.9): back to FRESH at `seq` (the end of the dispatch order) with
    /// every outcome cleared, whatever happened to it. `attempts` keeps counting, so "at
    /// most once per attempt" (R4.10) still holds across resets. A SENDING entry is left
    /// alone: its send is in flight and its outcome is about to be recorded; resetting it
    /// could let the message go twice. A FRESH entry with nothing to clear keeps its place.
    /// Returns whether the entry changed.
    pub fn reset(&mut self, seq: u64) -> bool {
        if self.state == EntryState::Sending {
            return false;
        }
        let before = self.clone();
        self.state = EntryState::Fresh;
        self.message_id = None;
        self.sent_at = None;
        self.delivered_at = None;
        self.read_at = None;
        self.replied_at = None;
        self.expires_at = None;
        self.reply = None;
        self.disposition = None;
        self.reason = None;
        self.error = None;
        self.wait_until = None;
        self.claimed_at = None;
        self.last_attempt_error = None;
        self.marketing_holds = 0;
        self.message_status = None;
        // Sent again from the start: by WhatsApp first, the fallback available again.
        self.sms_fallback = None;
        // Called again from the start, with every retry.
        self.calls.clear();
        self.retry_at = None;
        self.call_token = None;
        if *self == before {
            return false;
        }
        self.seq = seq;
        true
    }

    /// Retry campaign (R4.9): a RETRY entry goes back to FRESH at `seq` (the end of the
    /// dispatch order) and is sent again; its error and reason are cleared, its history
    /// (sent/delivered times) stays. Permanent outcomes (FAILED, BLOCK_LIST, SKIPPED) and
    /// entries sent or answered (PENDING, CLOSED) are never retried. Neither is a RETRY
    /// entry that a delivery status shows reached the phone (an "outcome unknown" claim
    /// whose message did go out), nor one the provider accepted (it has a message id or a
    /// `sent` time: a status that reported it), nor one whose outcome is unknown (a call
    /// whose answer was lost, a worker that died after the call: the provider may have
    /// accepted it, and its status may come late): sending it again could reach the
    /// customer twice; a reset is the operator's way to send it anyway. Returns whether the
    /// entry changed.
    pub fn retry(&mut self, seq: u64) -> bool {
        let accepted =
            self.message_id.is_some() || self.sent_at.is_some() || self.delivered_at.is_some();
        // The provider may have accepted it: only a reset sends it again.
        let maybe_sent = self.disposition.as_deref() == Some("outcome_unknown");
        if self.state != EntryState::Retry || accepted || maybe_sent {
            return false;
        }
        self.state = EntryState::Fresh;
        self.seq = seq;
        self.error = None;
        self.reason = None;
        self.disposition = None;
        self.wait_until = None;
        self.claimed_at = None;
        true
    }

    /// The campaign's end date passed before this entry was sent (R4.9): a FRESH entry,
    /// waiting or not, becomes SKIPPED "campaign ended" and is never sent. A voice entry
    /// waiting to be called again was called: it is settled with its last call's outcome
    /// (no answer, busy: CLOSED; a failed call: FAILED), not "not sent". Returns whether
    /// the entry changed.
    pub fn expire_unsent(&mut self) -> bool {
        if self.state != EntryState::Fresh {
            return false;
        }
        if let Some(last) = self.calls.last().and_then(|c| c.outcome) {
            self.retry_at = None;
            self.wait_until = None;
            self.call_token = None;
            self.disposition = Some(last.as_str().into());
            self.error = None;
            if last.fails_the_entry() {
                self.state = EntryState::Failed;
                self.reason = Some(last.reason().into());
            } else {
                self.state = EntryState::Closed;
                self.reason = None;
            }
            return true;
        }
        self.state = EntryState::Skipped;
        self.reason = Some(CAMPAIGN_ENDED_REASON.into());
        self.error = Some(CAMPAIGN_ENDED_ERROR.into());
        self.disposition = Some("not_sent".into());
        self.wait_until = None;
        true
    }
}

/// The reason of an entry the campaign's end date caught unsent (R4.9).
pub const CAMPAIGN_ENDED_REASON: &str = "campaign ended";
/// The error text of an entry the campaign's end date caught unsent (R4.9).
pub const CAMPAIGN_ENDED_ERROR: &str = "not sent before the campaign's end date";

#[cfg(test)]
mod tests {
    use super::*;
    use crate::domain::campaign::{NewCampaign, TemplateRef};
    use chrono::{Duration, Utc};

    fn entry_campaign() -> Campaign {
        Campaign::create(
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
        .unwrap()
    }

    fn entry() -> HopperEntry {
        HopperEntry::new(
            &entry_campaign(),
            PhoneNumber::parse("919812345678").unwrap(),
            ContactData::default(),
            1,
        )
    }

    #[test]
    fn r4_1_entry_moves_fresh_sending_pending_closed() {
        let now = Utc::now();
        let mut e = entry();
        assert_eq!(e.state, EntryState::Fresh);
        e.claim(now).unwrap();
        assert_eq!((e.state, e.attempts), (EntryState::Sending, 1));
        e.record_sent("wamid.1".into(), now, Duration::days(1));
        assert_eq!(e.state, EntryState::Pending);
        let r = Reply {
            message_id: "in".into(),
            text: Some("Yes".into()),
            button: Some("YES".into()),
            at: now,
        };
        assert_eq!(e.apply_reply(r), ReplyOutcome::InTime);
        assert_eq!(e.state, EntryState::Closed);
        assert_eq!(e.disposition.as_deref(), Some("replied:YES"));
        assert!(e.read_at.is_some() && e.delivered_at.is_some());
    }

    fn status(id: &str, attempt: Option<u32>, status: StatusKind, at: Time) -> StatusUpdate {
        StatusUpdate {
            recipient: None,
            message_id: id.into(),
            status,
            at,
            entry: None,
            attempt,
            sender_id: None,
            user_id: None,
        }
    }

    fn limited() -> StatusKind {
        StatusKind::Failed {
            code: Some(131049),
            reason: "Meta's marketing limit".into(),
            class: None,
        }
    }

    fn daily() -> MarketingLimitHold {
        MarketingLimitHold {
            retry: Default::default(),
            ends_at: None,
        }
    }

    #[test]
    fn a_held_entry_keeps_nothing_of_the_refused_message_and_takes_the_next_attempts_statuses() {
        let now = Utc::now();
        let mut e = entry();
        e.claim(now).unwrap();
        e.record_sent("wamid.1".into(), now, Duration::days(1));
        assert!(e.apply_update_held(&status("wamid.1", Some(1), limited(), now), Some(&daily())));
        assert_eq!(
            (e.state, e.message_id.as_deref(), e.sent_at),
            (EntryState::Fresh, None, None)
        );
        // A late status of the refused message finds nothing to change.
        let late = status("wamid.1", Some(1), StatusKind::Delivered, now);
        assert!(!e.apply_update_held(&late, Some(&daily())));
        // The second attempt: its 131049 overtakes the send's record, and still holds it.
        let later = now + Duration::hours(25);
        assert!(e.release(9, later));
        e.claim(later).unwrap();
        let overtaking = status("wamid.2", Some(2), limited(), later);
        assert!(e.apply_update_held(&overtaking, Some(&daily())));
        assert_eq!(e.state, EntryState::Sending);
        e.record_sent("wamid.2".into(), later, Duration::days(1));
        assert_eq!(
            (e.state, e.marketing_holds, e.message_id.as_deref()),
            (EntryState::Fresh, 2, None)
        );
        assert_eq!(e.wait_until, Some(later + Duration::hours(24)));
    }

    #[test]
    fn a_limit_reported_after_the_campaign_stopped_sending_fails_the_entry() {
        // Seed 9570 of the 10,000-seed run: a 131049 status days late for an entry whose
        // outcome was unknown, its campaign COMPLETED meanwhile, left it FRESH for good.
        let now = Utc::now();
        let mut c = entry_campaign();
        let mut e = entry();
        e.claim(now).unwrap();
        e.record_failure(&SendFailure::outcome_unknown("timeout"));
        c.status = crate::domain::campaign::CampaignStatus::Completed;
        let hold = c.marketing_limit_hold();
        assert_eq!(hold, None);
        assert!(e.apply_update_held(&status("wamid.9", Some(1), limited(), now), hold.as_ref()));
        assert_eq!(
            (e.state, e.reason.as_deref()),
            (EntryState::Retry, Some("Meta's marketing limit"))
        );
        assert_eq!(e.wait_until, None);
        c.status = crate::domain::campaign::CampaignStatus::Paused;
        assert!(
            c.marketing_limit_hold().is_some(),
            "a paused campaign sends it after resume"
        );
    }

    #[test]
    fn a_resend_refused_for_a_while_can_be_retried_and_a_lost_answer_after_a_limit_is_no_unknown() {
        let now = Utc::now();
        let mut e = entry();
        e.claim(now).unwrap();
        e.record_refusal(&SendFailure::meta(131049, ""), Some(&daily()), now);
        assert_eq!((e.state, e.marketing_holds), (EntryState::Fresh, 1));
        let later = now + Duration::hours(25);
        e.release(5, later);
        e.claim(later).unwrap();
        e.record_refusal(&SendFailure::meta(131000, "x"), Some(&daily()), later);
        assert_eq!(e.state, EntryState::Retry);
        assert!(
            e.retry(6),
            "a held entry was never sent: an operator may retry it"
        );
        // A 131049 status of the attempt, then the send's answer lost: not "outcome unknown".
        e.claim(later).unwrap();
        e.apply_update_held(
            &status("wamid.3", Some(3), limited(), later),
            Some(&daily()),
        );
        e.record_refusal(
            &SendFailure::outcome_unknown("timeout"),
            Some(&daily()),
            later,
        );
        assert_eq!(
            (e.state, e.disposition.as_deref()),
            (EntryState::Fresh, None)
        );
        assert_eq!(e.reason.as_deref(), Some(MARKETING_LIMIT_HELD_REASON));
    }

    fn undeliverable() -> StatusKind {
        StatusKind::Failed {
            code: Some(131026),
            reason: "Message Undeliverable".into(),
            class: None,
        }
    }

    #[test]
    fn retry_never_resends_an_accepted_message() {
        let now = Utc::now();
        // The provider call timed out after Meta accepted it (classed temporary); Meta
        // then reports `sent`, the phone being off.
        let mut e = entry();
        e.claim(now).unwrap();
        e.record_failure(&SendFailure::transport("timed out"));
        assert_eq!(e.state, EntryState::Retry);
        assert!(e.apply_update(&status("wamid.1", Some(1), StatusKind::Sent, now)));
        assert!(!e.retry(9), "Meta accepted it: a retry would send it twice");
        assert_eq!(e.state, EntryState::Retry);
        // A stale claim reclaimed as "outcome unknown", then the same `sent`.
        let mut e = entry();
        e.claim(now).unwrap();
        assert!(e.reclaim_stale(now + Duration::hours(1), Duration::minutes(10)));
        assert!(e.apply_update(&status("wamid.2", Some(1), StatusKind::Sent, now)));
        assert_eq!(
            e.message_id.as_deref(),
            Some("wamid.2"),
            "the message it learnt"
        );
        assert!(!e.retry(9));
        // Without any sign of a send, the operator's retry still goes out.
        let mut e = entry();
        e.claim(now).unwrap();
        e.record_failure(&SendFailure::transport("timed out"));
        assert!(e.retry(9));
    }

    /// Found by the seeded simulation (seed 3151 of the 10,000-seed run): the provider
    /// accepted the message and the answer was lost; the operator's retry came before
    /// Meta's `sent` status did and the customer got it twice. An outcome the engine does
    /// not know is never sent again by a retry (a reset still re-sends everyone).
    #[test]
    fn retry_never_resends_a_message_whose_outcome_is_unknown() {
        let now = Utc::now();
        let mut e = entry();
        e.claim(now).unwrap();
        e.record_failure(&SendFailure::outcome_unknown("Meta timeout"));
        assert_eq!(e.state, EntryState::Retry);
        assert!(!e.retry(9), "the provider may have accepted it");
        let mut e = entry();
        e.claim(now).unwrap();
        assert!(e.reclaim_stale(now + Duration::hours(1), Duration::minutes(10)));
        assert!(
            !e.retry(9),
            "the worker may have died after the provider accepted it"
        );
    }

    #[test]
    fn a_status_of_an_earlier_attempt_never_applies_to_the_next() {
        let now = Utc::now();
        let mut e = entry();
        e.claim(now).unwrap();
        e.record_sent("wamid.old".into(), now, Duration::days(1));
        assert!(e.reset(2));
        // The reset entry is FRESH: the old message's late statuses change nothing.
        assert!(!e.apply_update(&status("wamid.old", Some(1), undeliverable(), now)));
        assert!(!e.apply_update(&status("wamid.old", None, StatusKind::Delivered, now)));
        // The next attempt is in flight: a late `failed` of the old one does not mark it.
        e.claim(now).unwrap();
        assert!(!e.apply_update(&status("wamid.old", Some(1), undeliverable(), now)));
        e.record_sent("wamid.new".into(), now, Duration::days(1));
        assert_eq!(e.state, EntryState::Pending, "the new send stands");
        // Once the entry knows its message, only that message's statuses count.
        assert!(!e.apply_update(&status("wamid.old", None, undeliverable(), now)));
        assert!(!e.apply_update(&status("wamid.forged", Some(2), StatusKind::Read, now)));
        assert!(e.read_at.is_none() && e.delivered_at.is_none());
        assert!(e.apply_update(&status("wamid.new", Some(2), StatusKind::Delivered, now)));
        assert!(e.delivered_at.is_some());
    }

    #[test]
    fn r4_10_an_entry_is_claimed_once() {
        let now = Utc::now();
        let mut e = entry();
        e.claim(now).unwrap();
        assert_eq!(e.claim(now), Err(NotClaimable(EntryState::Sending)));
    }

    #[test]
    fn r6_1_status_never_moves_backwards_and_read_implies_delivered() {
        let now = Utc::now();
        let mut e = entry();
        e.claim(now).unwrap();
        e.record_sent("wamid.1".into(), now, Duration::days(1));
        assert!(e.apply_status(&StatusKind::Read, now + Duration::seconds(5)));
        assert_eq!(e.delivered_at, Some(now + Duration::seconds(5)));
        assert!(!e.apply_status(&StatusKind::Delivered, now + Duration::seconds(9)));
        assert!(
            !e.apply_status(&StatusKind::Read, now + Duration::seconds(9)),
            "duplicates change nothing"
        );
        let failed = StatusKind::Failed {
            code: Some(131026),
            reason: "Message Undeliverable".into(),
            class: None,
        };
        assert!(
            !e.apply_status(&failed, now + Duration::seconds(10)),
            "a read message cannot fail"
        );
        assert_eq!(e.state, EntryState::Pending);
    }

    #[test]
    fn r6_1_failed_status_fails_a_pending_entry_even_before_the_send_is_recorded() {
        let now = Utc::now();
        let mut e = entry();
        e.claim(now).unwrap();
        let failed = StatusKind::Failed {
            code: Some(131026),
            reason: "Message Undeliverable".into(),
            class: None,
        };
        assert!(e.apply_status(&failed, now));
        e.record_sent("wamid.1".into(), now, Duration::days(1));
        assert_eq!(e.state, EntryState::Failed);
    }

    #[test]
    fn r5_5_pending_entry_expires_as_no_response_only_after_timeout() {
        let now = Utc::now();
        let mut e = entry();
        e.claim(now).unwrap();
        e.record_sent("wamid.1".into(), now, Duration::days(1));
        assert!(!e.expire(now + Duration::hours(23)));
        assert!(e.expire(now + Duration::days(1)));
        assert_eq!(
            (e.state, e.disposition.as_deref()),
            (EntryState::Closed, Some("no_response"))
        );
    }

    #[test]
    fn r5_4_late_reply_closes_as_expired_and_is_not_counted() {
        let now = Utc::now();
        let mut e = entry();
        e.claim(now).unwrap();
        e.record_sent("wamid.1".into(), now, Duration::days(1));
        let r = Reply {
            message_id: "in".into(),
            text: Some("hi".into()),
            button: None,
            at: now + Duration::days(2),
        };
        assert_eq!(e.apply_reply(r), ReplyOutcome::Late);
        assert_eq!(e.disposition.as_deref(), Some("expired"));
        assert!(e.replied_at.is_none());
    }

    #[test]
    fn r4_7_permanent_failure_fails_and_temporary_retries() {
        let mut e = entry();
        e.claim(Utc::now()).unwrap();
        e.record_failure(&SendFailure::meta(131026, "Message undeliverable"));
        assert_eq!(
            (e.state, e.error.as_deref()),
            (EntryState::Failed, Some("Message Undeliverable"))
        );
        let mut e = entry();
        e.claim(Utc::now()).unwrap();
        e.record_failure(&SendFailure::meta(130429, "Rate limit hit"));
        assert_eq!(e.state, EntryState::Retry);
    }

    #[test]
    fn r6_1_failed_and_delivered_end_the_same_in_either_order_with_earliest_times() {
        let now = Utc::now();
        let failed = StatusKind::Failed {
            code: Some(131026),
            reason: "Message Undeliverable".into(),
            class: None,
        };
        let sent = |e: &mut HopperEntry| {
            e.claim(now).unwrap();
            e.record_sent("wamid.1".into(), now, Duration::days(1));
        };
        let mut a = entry();
        sent(&mut a);
        a.apply_status(&failed, now + Duration::seconds(1));
        a.apply_status(&StatusKind::Delivered, now + Duration::seconds(2));
        let mut b = entry();
        sent(&mut b);
        b.apply_status(&StatusKind::Delivered, now + Duration::seconds(2));
        b.apply_status(&failed, now + Duration::seconds(1));
        assert_eq!(a.state, EntryState::Pending);
        assert_eq!(
            (
                a.state,
                &a.disposition,
                &a.reason,
                a.delivered_at,
                a.expires_at
            ),
            (
                b.state,
                &b.disposition,
                &b.reason,
                b.delivered_at,
                b.expires_at
            )
        );
        // Read before delivered: each time is the earliest reported.
        let mut c = entry();
        sent(&mut c);
        c.apply_status(&StatusKind::Read, now + Duration::seconds(9));
        c.apply_status(&StatusKind::Delivered, now + Duration::seconds(2));
        assert_eq!(c.delivered_at, Some(now + Duration::seconds(2)));
        assert_eq!(c.read_at, Some(now + Duration::seconds(9)));
        // A failure that overtook the send record keeps its reason.
        let mut d = entry();
        d.claim(now).unwrap();
        d.apply_status(&failed, now);
        d.record_sent("wamid.1".into(), now, Duration::days(1));
        assert_eq!(
            (d.state, d.reason.as_deref()),
            (EntryState::Failed, Some("Message Undeliverable"))
        );
    }

    #[test]
    fn r4_7_campaign_level_failure_puts_the_entry_back_in_line() {
        let now = Utc::now();
        let mut e = entry();
        e.claim(now).unwrap();
        e.record_failure(&SendFailure::meta(190, "Access token has expired"));
        assert_eq!(
            e.state,
            EntryState::Fresh,
            "nothing was sent: it goes after resume"
        );
        assert_eq!(e.claimed_at, None);
        assert_eq!(
            (e.error.as_deref(), e.reason.as_deref()),
            (None, None),
            "a FRESH entry does not look failed (issue 19, item 5)"
        );
        assert!(
            e.last_attempt_error.is_some(),
            "the last attempt's result stays visible until the next one"
        );
        e.claim(now).unwrap();
        assert_eq!(e.attempts, 2);
    }

    #[test]
    fn r4_10_stale_claim_becomes_retry_outcome_unknown_and_is_not_claimable() {
        let now = Utc::now();
        let threshold = Duration::minutes(15);
        let mut e = entry();
        assert!(
            !e.reclaim_stale(now + Duration::days(1), threshold),
            "not SENDING"
        );
        e.claim(now).unwrap();
        assert_eq!(e.claimed_at, Some(now));
        assert!(!e.reclaim_stale(now + Duration::minutes(14), threshold));
        assert!(e.reclaim_stale(now + threshold, threshold));
        assert_eq!(
            (e.state, e.error.as_deref(), e.disposition.as_deref()),
            (
                EntryState::Retry,
                Some(OUTCOME_UNKNOWN),
                Some("outcome_unknown")
            )
        );
        assert!(
            !e.state.is_open(),
            "a reclaimed entry does not hold the campaign open"
        );
        assert_eq!(e.claim(now), Err(NotClaimable(EntryState::Retry)));
        let mut sent = entry();
        sent.claim(now).unwrap();
        sent.record_sent("wamid.1".into(), now, Duration::days(1));
        assert!(!sent.reclaim_stale(now + Duration::days(2), threshold));
    }

    #[test]
    fn shards_are_stable_and_in_range() {
        let p = PhoneNumber::parse("919812345678").unwrap();
        assert_eq!(shard_of(&p, 16), shard_of(&p, 16));
        assert!(shard_of(&p, 16) < 16);
    }

    #[test]
    fn r4_9_reset_clears_every_outcome_keeps_attempts_and_skips_sending() {
        let now = Utc::now();
        let mut e = entry();
        assert!(!e.reset(7), "a pristine FRESH entry keeps its place");
        assert_eq!(e.seq, 1);
        e.claim(now).unwrap();
        assert!(!e.reset(7), "SENDING is in flight");
        assert_eq!(e.state, EntryState::Sending);
        e.record_sent("wamid.1".into(), now, Duration::days(1));
        let r = Reply {
            message_id: "in".into(),
            text: None,
            button: Some("Yes".into()),
            at: now,
        };
        e.apply_reply(r);
        assert!(e.reset(7));
        assert_eq!((e.state, e.seq, e.attempts), (EntryState::Fresh, 7, 1));
        assert!(e.message_id.is_none() && e.sent_at.is_none() && e.delivered_at.is_none());
        assert!(e.read_at.is_none() && e.replied_at.is_none() && e.reply.is_none());
        assert!(e.disposition.is_none() && e.claimed_at.is_none() && e.expires_at.is_none());
        e.claim(now).unwrap();
        assert_eq!(e.attempts, 2, "attempts keep counting");
        let mut failed = entry();
        failed.record_ineligible(
            EntryState::Skipped,
            "duplicate",
            Some("sent recently".into()),
        );
        assert!(failed.reset(9));
        assert!(failed.reason.is_none() && failed.error.is_none());
        let mut waiting = entry();
        waiting.defer(now + Duration::hours(1), "calling hours");
        assert!(waiting.reset(9));
        assert!(waiting.wait_until.is_none() && waiting.error.is_none());
    }

    #[test]
    fn r4_9_retry_moves_only_retry_entries_back_to_fresh() {
        let now = Utc::now();
        let mut e = entry();
        e.claim(now).unwrap();
        e.record_failure(&SendFailure::meta(130429, "Rate limit hit"));
        assert!(e.retry(5));
        assert_eq!((e.state, e.seq), (EntryState::Fresh, 5));
        assert!(e.error.is_none() && e.reason.is_none());
        assert!(!e.retry(6), "FRESH is not retried");
        let mut failed = entry();
        failed.claim(now).unwrap();
        failed.record_failure(&SendFailure::meta(131026, "Message undeliverable"));
        assert!(!failed.retry(6), "a permanent failure is never retried");
        let mut blocked = entry();
        blocked.record_ineligible(EntryState::BlockList, "block list", None);
        assert!(!blocked.retry(6));
        let mut delivered = entry();
        delivered.claim(now).unwrap();
        delivered.reclaim_stale(now + Duration::hours(1), Duration::minutes(15));
        delivered.apply_status(&StatusKind::Delivered, now);
        assert!(!delivered.retry(6), "it reached the phone: not sent twice");
    }

    #[test]
    fn r4_9_unsent_entries_expire_as_skipped_campaign_ended() {
        let now = Utc::now();
        let mut e = entry();
        e.defer(now + Duration::hours(1), "calling hours");
        assert!(e.expire_unsent());
        assert_eq!(
            (e.state, e.reason.as_deref(), e.disposition.as_deref()),
            (
                EntryState::Skipped,
                Some(CAMPAIGN_ENDED_REASON),
                Some("not_sent")
            )
        );
        assert_eq!(e.error.as_deref(), Some(CAMPAIGN_ENDED_ERROR));
        assert!(e.wait_until.is_none());
        assert!(!e.expire_unsent());
        let mut sent = entry();
        sent.claim(now).unwrap();
        assert!(!sent.expire_unsent(), "in flight: not expired");
    }

    fn sent() -> (HopperEntry, Time) {
        let now = Utc::now();
        let mut e = entry();
        e.claim(now).unwrap();
        e.record_sent("wamid.1".into(), now, Duration::days(1));
        (e, now)
    }

    fn said(id: &str, text: &str, button: Option<&str>, at: Time) -> Reply {
        Reply {
            message_id: id.into(),
            text: Some(text.into()),
            button: button.map(str::to_owned),
            at,
        }
    }

    #[test]
    fn r5_2_quick_reply_closes_only_when_the_campaign_says_so() {
        let (mut e, now) = sent();
        let yes = Answer::Option("Yes".into());
        let at = now + Duration::minutes(5);
        let r = said("in1", "Yes", Some("Yes"), at);
        assert_eq!(
            e.clone().apply_answer(r.clone(), &yes, true),
            ReplyOutcome::InTime
        );
        assert_eq!(
            e.apply_answer(r.clone(), &yes, false),
            ReplyOutcome::KeptPending
        );
        assert_eq!(
            (e.state, e.disposition.as_deref(), e.replied_at),
            (EntryState::Pending, Some("replied:Yes"), Some(at))
        );
        assert!(e.expires_at.is_some(), "still in the due index");
        assert_eq!(
            e.apply_answer(r, &yes, false),
            ReplyOutcome::NotWaiting,
            "duplicate"
        );
        // A later choice replaces the answer; later text does not; replied_at stays.
        let no = said("in2", "No", Some("No"), at + Duration::minutes(1));
        e.apply_answer(no, &Answer::Option("No".into()), false);
        let text = said("in3", "call me", None, at + Duration::minutes(2));
        assert_eq!(
            e.apply_answer(text, &Answer::NoMatch, false),
            ReplyOutcome::KeptPending
        );
        assert_eq!(e.disposition.as_deref(), Some("replied:No"));
        assert_eq!(e.reply.as_ref().unwrap().message_id, "in2");
        assert_eq!(e.replied_at, Some(at));
        // The timeout closes it with its answer, not as no response.
        assert!(e.expire(now + Duration::days(1)));
        assert_eq!(
            (e.state, e.disposition.as_deref()),
            (EntryState::Closed, Some("replied:No"))
        );
    }

    #[test]
    fn r5_3_reply_matching_no_option_keeps_the_entry_pending() {
        let (mut e, now) = sent();
        let r = said("in1", "Please call me", None, now + Duration::minutes(1));
        assert_eq!(
            e.apply_answer(r, &Answer::NoMatch, true),
            ReplyOutcome::KeptPending
        );
        assert_eq!(
            (e.state, e.disposition.as_deref()),
            (EntryState::Pending, Some(AGENT_REQUESTED))
        );
        // A tap afterwards closes it when the campaign says so.
        let tap = said("in2", "Yes", Some("Yes"), now + Duration::minutes(2));
        assert_eq!(
            e.apply_answer(tap, &Answer::Option("Yes".into()), true),
            ReplyOutcome::InTime
        );
        assert_eq!(e.disposition.as_deref(), Some("replied:Yes"));
        // Text to a template without options is the answer: it closes.
        let (mut plain, now) = sent();
        let r = said("in1", "thanks", None, now);
        assert_eq!(
            plain.apply_answer(r, &Answer::Text, false),
            ReplyOutcome::InTime
        );
        assert_eq!(plain.disposition.as_deref(), Some("replied"));
    }

    #[test]
    fn r5_4_late_reply_after_an_in_time_answer_keeps_the_answer() {
        let (mut e, now) = sent();
        let r = said("in1", "Yes", Some("Yes"), now);
        e.apply_answer(r, &Answer::Option("Yes".into()), false);
        let late = said("in2", "hello?", None, now + Duration::days(2));
        assert_eq!(
            e.apply_answer(late, &Answer::NoMatch, false),
            ReplyOutcome::Late
        );
        assert_eq!(
            (e.state, e.disposition.as_deref()),
            (EntryState::Closed, Some("replied:Yes"))
        );
    }

    #[test]
    fn r5_7_opt_out_closes_a_waiting_entry_as_opted_out() {
        let (mut e, _) = sent();
        assert!(e.apply_opt_out());
        assert_eq!(
            (e.state, e.disposition.as_deref(), e.replied_at),
            (EntryState::Closed, Some("opted_out"), None)
        );
        assert!(!e.apply_opt_out());
        assert!(!entry().apply_opt_out(), "never sent");
    }

    #[test]
    fn r6_2_replied_counts_once_while_the_entry_stays_pending() {
        use crate::domain::stats::{delta, fold, recount, Delta};
        let (mut e, now) = sent();
        let mut live: Delta = recount([&e]);
        for (i, at) in [1, 2, 3].into_iter().enumerate() {
            let before = e.clone();
            let r = said(&format!("in{i}"), "hm", None, now + Duration::minutes(at));
            e.apply_answer(r, &Answer::NoMatch, true);
            fold(&mut live, delta(Some(&before), &e));
        }
        let before = e.clone();
        assert!(e.expire(now + Duration::days(1)));
        fold(&mut live, delta(Some(&before), &e));
        assert_eq!(live, recount([&e]));
        assert_eq!(live.get("replied"), Some(&1));
        assert_eq!(live.get("no_response"), None);
        assert_eq!(live.get("CLOSED"), Some(&1));
    }

    /// Review of issue 17: at the end date a voice entry waiting to be called again was
    /// called already: it settles with its last call's outcome, not as "not sent".
    #[test]
    fn r13_a_voice_entry_waiting_for_its_retry_settles_with_its_last_call_at_the_end_date() {
        let c = entry_campaign();
        let now = Utc::now();
        let mut e = HopperEntry::new(
            &c,
            crate::domain::phone::PhoneNumber::parse("14155550211").unwrap(),
            ContactData::default(),
            1,
        );
        e.claim(now).unwrap();
        e.record_dialled("contact-1".into(), now, Duration::minutes(60));
        e.calls[0].outcome = Some(CallOutcome::NoAnswer);
        e.state = EntryState::Fresh;
        e.retry_at = Some(now + Duration::minutes(1));
        assert!(e.expire_unsent());
        assert_eq!(
            (e.state, e.disposition.as_deref(), e.retry_at),
            (EntryState::Closed, Some("no_answer"), None)
        );
        // A fresh entry never called is still "not sent".
        let mut f = HopperEntry::new(
            &c,
            crate::domain::phone::PhoneNumber::parse("14155550222").unwrap(),
            ContactData::default(),
            2,
        );
        assert!(f.expire_unsent());
        assert_eq!(f.state, EntryState::Skipped);
    }
}
