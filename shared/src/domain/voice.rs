//! Voice campaigns through Amazon Connect (issue 17, R13): a campaign's call settings
//! (seed 003: caller id, queue, maximum concurrent calls, retries with a delay,
//! answering-machine detection and what to do when a machine answers), the lines a
//! Connect account's calls hold (pacing by concurrency, not rate), and what a call's
//! contact events settle it as.
//!
//! - **Lines.** A call holds a line of its account from when the dispatcher gives it one
//!   until its final event frees it, or until [`Line::until`] if that event never comes
//!   (the campaign's `max_call_minutes` after the call could start). At most
//!   `max_concurrent` lines per campaign and the account's `max_concurrent_calls` in all,
//!   shared max-min fairly by its campaigns with calls to make ([`fair_lines`]). The lines
//!   are one versioned item per instance, so two dispatchers never give out one line twice.
//! - **Attempts.** Each call is one attempt of its entry: the client token the call is
//!   started with is derived from the entry and the attempt ([`client_token`]), so a
//!   redelivered or retried start of the same attempt dials once (Connect answers the same
//!   contact for the same token). No answer, busy, or a call that failed on the way is
//!   called again `retry_delay_seconds` later while retries remain.

use super::inbound::{CallEvent, CallEventKind, EntryRef};
use super::phone::is_e164;
use super::{DomainError, Time};
use serde::{Deserialize, Serialize};
use std::collections::BTreeMap;
use utoipa::ToSchema;

/// Most concurrent calls one campaign may ask for.
pub const MAX_CONCURRENT_LIMIT: u32 = 1000;
/// Most retries of one contact.
pub const MAX_RETRIES_LIMIT: u32 = 10;
/// Longest retry delay: a day.
pub const MAX_RETRY_DELAY_SECONDS: u32 = 86_400;
/// Longest call a line is held for without its final event (minutes).
pub const MAX_CALL_MINUTES_LIMIT: u32 = 240;
/// Connect gives up on a call not connected within 60 seconds; a line given out for a
/// call is held this much beyond the campaign's `max_call_minutes` (the time from the
/// dispatch to the dial and the dialling itself).
pub const DIAL_MARGIN: chrono::Duration = chrono::Duration::minutes(2);
const MAX_VOICEMAIL_CHARS: usize = 1000;
/// Connect's longest id (flows, queues: ARN-free ids are UUIDs; 500 is the API's limit).
const MAX_CONNECT_ID_CHARS: usize = 500;

/// What to do when a machine answers (seed 003's "AMD Action").
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, Serialize, Deserialize, ToSchema)]
#[serde(rename_all = "snake_case")]
pub enum AmdAction {
    /// End the call.
    #[default]
    HangUp,
    /// Wait for the beep and leave the voicemail (the flow plays `voicemail_message` or
    /// transfers to `voicemail_flow_id`).
    Voicemail,
}

impl AmdAction {
    pub fn as_str(self) -> &'static str {
        match self {
            AmdAction::HangUp => "hang_up",
            AmdAction::Voicemail => "voicemail",
        }
    }
}

fn default_max_concurrent() -> u32 {
    1
}
fn default_retry_delay() -> u32 {
    60
}
fn default_max_call_minutes() -> u32 {
    60
}

/// A voice campaign's call settings (seed 003's voice fields).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
#[schema(example = json!({
    "caller_id": "+15550100100", "queue_id": "a1b2c3d4-0000-4000-8000-000000000001",
    "contact_flow_id": "a1b2c3d4-0000-4000-8000-000000000002", "max_concurrent": 5,
    "max_retries": 2, "retry_delay_seconds": 300, "amd_enabled": true, "amd_action": "voicemail",
    "voicemail_message": "Hello from Acme, please call us back."
}))]
pub struct VoiceSettings {
    /// The number calls come from, in E.164: one of the Connect account's `caller_ids`.
    pub caller_id: String,
    /// The Connect queue connected calls are routed through.
    pub queue_id: String,
    /// The Connect contact flow each call runs.
    pub contact_flow_id: String,
    /// Most calls of this campaign in progress at once (default 1).
    #[serde(default = "default_max_concurrent")]
    #[schema(minimum = 1, maximum = 1000)]
    pub max_concurrent: u32,
    /// Calls made again after no answer, busy or a failed call (default 0).
    #[serde(default)]
    #[schema(minimum = 0, maximum = 10)]
    pub max_retries: u32,
    /// Seconds from the end of a call to its retry (default 60; retries start at the
    /// launcher's next dispatch after it, within a minute).
    #[serde(default = "default_retry_delay")]
    #[schema(minimum = 1, maximum = 86400)]
    pub retry_delay_seconds: u32,
    /// Answering-machine detection (Connect's `AnswerMachineDetectionConfig`).
    #[serde(default)]
    pub amd_enabled: bool,
    /// What to do when a machine answers (with `amd_enabled`).
    #[serde(default)]
    pub amd_action: AmdAction,
    /// The flow that leaves the voicemail, passed to the campaign's flow as the
    /// `voicemail_flow_id` attribute.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub voicemail_flow_id: Option<String>,
    /// The message left, passed to the flow as the `voicemail_message` attribute.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub voicemail_message: Option<String>,
    /// A call whose final event never comes frees its line this long after it was given
    /// out (1-240 minutes, default 60), and its entry is settled as `no_final_event`.
    #[serde(default = "default_max_call_minutes")]
    #[schema(minimum = 1, maximum = 240)]
    pub max_call_minutes: u32,
}

/// A Connect resource id as the API takes it: letters, digits and dashes.
fn check_connect_id(field: &str, v: &str) -> Result<(), DomainError> {
    let ok = !v.is_empty()
        && v.len() <= MAX_CONNECT_ID_CHARS
        && v.bytes().all(|b| b.is_ascii_alphanumeric() || b == b'-');
    if ok {
        Ok(())
    } else {
        Err(DomainError::invalid(
            field,
            "must be an Amazon Connect id (letters, digits and dashes, as the Connect console shows it)",
        ))
    }
}

impl VoiceSettings {
    /// Checks every field; a 422 naming `voice.<field>` otherwise.
    pub fn validate(&self) -> Result<(), DomainError> {
        if !is_e164(&self.caller_id) {
            return Err(DomainError::invalid(
                "voice.caller_id",
                "must be a number in E.164 (+ and 8 to 15 digits)",
            ));
        }
        check_connect_id("voice.queue_id", &self.queue_id)?;
        check_connect_id("voice.contact_flow_id", &self.contact_flow_id)?;
        if !(1..=MAX_CONCURRENT_LIMIT).contains(&self.max_concurrent) {
            return Err(DomainError::invalid(
                "voice.max_concurrent",
                format!("must be between 1 and {MAX_CONCURRENT_LIMIT} calls"),
            ));
        }
        if self.max_retries > MAX_RETRIES_LIMIT {
            return Err(DomainError::invalid(
                "voice.max_retries",
                format!("must be between 0 and {MAX_RETRIES_LIMIT}"),
            ));
        }
        if !(1..=MAX_RETRY_DELAY_SECONDS).contains(&self.retry_delay_seconds) {
            return Err(DomainError::invalid(
                "voice.retry_delay_seconds",
                format!("must be between 1 and {MAX_RETRY_DELAY_SECONDS} seconds"),
            ));
        }
        if !(1..=MAX_CALL_MINUTES_LIMIT).contains(&self.max_call_minutes) {
            return Err(DomainError::invalid(
                "voice.max_call_minutes",
                format!("must be between 1 and {MAX_CALL_MINUTES_LIMIT} minutes"),
            ));
        }
        if let Some(f) = &self.voicemail_flow_id {
            check_connect_id("voice.voicemail_flow_id", f)?;
        }
        if let Some(m) = &self.voicemail_message {
            if m.trim().is_empty() || m.chars().count() > MAX_VOICEMAIL_CHARS {
                return Err(DomainError::invalid(
                    "voice.voicemail_message",
                    format!("must be 1 to {MAX_VOICEMAIL_CHARS} characters"),
                ));
            }
        }
        if self.amd_action == AmdAction::Voicemail {
            if !self.amd_enabled {
                return Err(DomainError::invalid(
                    "voice.amd_action",
                    "leaving a voicemail needs amd_enabled: without answering-machine detection no machine is ever detected",
                ));
            }
            if self.voicemail_flow_id.is_none() && self.voicemail_message.is_none() {
                return Err(DomainError::invalid(
                    "voice.voicemail_message",
                    "amd_action voicemail needs a voicemail_message or a voicemail_flow_id",
                ));
            }
        }
        Ok(())
    }

    /// How long a line given out now is held at most: the longest call plus the dial.
    pub fn line_bound(&self) -> chrono::Duration {
        chrono::Duration::minutes(i64::from(self.max_call_minutes)) + DIAL_MARGIN
    }

    /// How long a dialled call's entry waits for its final event before the sweeper
    /// settles it as `no_final_event`.
    pub fn call_bound(&self) -> chrono::Duration {
        chrono::Duration::minutes(i64::from(self.max_call_minutes))
    }

    /// Whether an entry called `attempts` times may be called again.
    pub fn may_retry(&self, attempts: u32) -> bool {
        attempts <= self.max_retries
    }

    pub fn retry_delay(&self) -> chrono::Duration {
        chrono::Duration::seconds(i64::from(self.retry_delay_seconds))
    }
}

/// What a call came to.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize, ToSchema)]
#[serde(rename_all = "snake_case")]
pub enum CallOutcome {
    /// A person answered (answering-machine detection said so) or an agent took it.
    Answered,
    /// Answered, without detection to say by whom.
    Connected,
    /// A machine answered and the voicemail was left (`amd_action: voicemail`).
    Voicemail,
    /// A machine answered and the call was ended (`amd_action: hang_up`).
    Machine,
    /// It rang and nobody answered (within Connect's 60 s).
    NoAnswer,
    /// The number was busy.
    Busy,
    /// The network says the number does not exist (a SIT tone).
    InvalidNumber,
    /// A fax machine answered.
    Fax,
    /// The call failed on the way (a telecom problem, an error tone).
    Failed,
}

impl CallOutcome {
    /// The entry's disposition when this settles it.
    pub fn as_str(self) -> &'static str {
        match self {
            CallOutcome::Answered => "answered",
            CallOutcome::Connected => "connected",
            CallOutcome::Voicemail => "voicemail",
            CallOutcome::Machine => "machine_hung_up",
            CallOutcome::NoAnswer => "no_answer",
            CallOutcome::Busy => "busy",
            CallOutcome::InvalidNumber => "invalid_number",
            CallOutcome::Fax => "fax",
            CallOutcome::Failed => "call_failed",
        }
    }

    /// Whether the contact is called again, while retries remain: nobody picked up, the
    /// line was busy, or the call failed on the way.
    pub fn is_retried(self) -> bool {
        matches!(
            self,
            CallOutcome::NoAnswer | CallOutcome::Busy | CallOutcome::Failed
        )
    }

    /// Whether the number itself is no good for a call (the entry fails, with why):
    /// it does not exist, it is a fax, or every call failed on the way.
    pub fn fails_the_entry(self) -> bool {
        matches!(
            self,
            CallOutcome::InvalidNumber | CallOutcome::Fax | CallOutcome::Failed
        )
    }

    /// The reason a failed entry is recorded with.
    pub fn reason(self) -> &'static str {
        match self {
            CallOutcome::InvalidNumber => "invalid number",
            CallOutcome::Fax => "fax machine",
            CallOutcome::Failed => "call failed",
            other => other.as_str(),
        }
    }
}

/// Disposition of a call whose final event never came within the campaign's
/// `max_call_minutes`: the sweeper settles it so.
pub const NO_FINAL_EVENT: &str = "no_final_event";

/// One call of an entry, as its contact events told it.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, ToSchema)]
pub struct CallAttempt {
    /// The entry's attempt (claim) that placed it.
    pub attempt: u32,
    /// Connect's contact id.
    pub contact_id: String,
    #[schema(value_type = String, format = DateTime)]
    pub dialled_at: Time,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[schema(value_type = Option<String>, format = DateTime)]
    pub connected_at: Option<Time>,
    /// When an agent took it.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[schema(value_type = Option<String>, format = DateTime)]
    pub agent_at: Option<Time>,
    /// Connect's answering-machine result (`HUMAN_ANSWERED`, `VOICEMAIL_BEEP`, ...).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub amd_status: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[schema(value_type = Option<String>, format = DateTime)]
    pub ended_at: Option<Time>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub disconnect_reason: Option<String>,
    /// What it came to, once it ended.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub outcome: Option<CallOutcome>,
}

fn earliest(slot: &mut Option<Time>, at: Option<Time>) -> bool {
    match (at, *slot) {
        (Some(a), Some(s)) if a < s => {
            *slot = Some(a);
            true
        }
        (Some(a), None) => {
            *slot = Some(a);
            true
        }
        _ => false,
    }
}

impl CallAttempt {
    pub fn new(attempt: u32, contact_id: String, dialled_at: Time) -> Self {
        CallAttempt {
            attempt,
            contact_id,
            dialled_at,
            connected_at: None,
            agent_at: None,
            amd_status: None,
            ended_at: None,
            disconnect_reason: None,
            outcome: None,
        }
    }

    /// Keeps what an event tells of the call (events come unordered and more than once:
    /// times keep the earliest report, a result once known stays); whether it changed.
    pub fn learn(&mut self, ev: &CallEvent) -> bool {
        let mut changed = earliest(&mut self.connected_at, ev.connected_at);
        changed |= earliest(&mut self.agent_at, ev.agent_at);
        if ev.kind == CallEventKind::ConnectedToAgent {
            changed |= earliest(&mut self.agent_at, Some(ev.at));
        }
        // Not the CONNECTED_TO_SYSTEM event itself: Connect sends it with every
        // answering-machine result, an unanswered call's and a SIT tone's too. Only its
        // `connectedToSystemTimestamp` says the callee's side answered.
        if let (None, Some(s)) = (&self.amd_status, &ev.amd_status) {
            self.amd_status = Some(s.to_ascii_uppercase());
            changed = true;
        }
        if let (None, Some(r)) = (&self.disconnect_reason, &ev.disconnect_reason) {
            self.disconnect_reason = Some(r.to_ascii_uppercase());
            changed = true;
        }
        if ev.kind == CallEventKind::Disconnected {
            changed |= earliest(&mut self.ended_at, Some(ev.at));
        }
        changed
    }

    /// What the call came to, from what its events said: an agent, then the
    /// answering-machine result, then why it ended, then whether it was answered at all.
    pub fn judge(&self, action: AmdAction) -> CallOutcome {
        use CallOutcome::*;
        if self.agent_at.is_some() {
            return Answered;
        }
        match self.amd_status.as_deref() {
            Some("HUMAN_ANSWERED" | "ANSWERED") => return Answered,
            Some("VOICEMAIL_BEEP" | "VOICEMAIL_NO_BEEP") => {
                return match action {
                    AmdAction::Voicemail => Voicemail,
                    AmdAction::HangUp => Machine,
                }
            }
            Some("AMD_UNANSWERED") => return NoAnswer,
            Some("SIT_TONE_BUSY") => return Busy,
            Some("SIT_TONE_INVALID_NUMBER") => return InvalidNumber,
            Some("FAX_MACHINE_DETECTED") => return Fax,
            Some("SIT_TONE_DETECTED") if self.connected_at.is_none() => return Failed,
            _ => {}
        }
        let answered = self.connected_at.is_some();
        match self.disconnect_reason.as_deref() {
            Some("TELECOM_BUSY") => Busy,
            Some("TELECOM_NUMBER_INVALID") => InvalidNumber,
            _ if answered => Connected,
            Some(
                "TELECOM_PROBLEM"
                | "TELECOM_POTENTIAL_BLOCKING"
                | "OUTBOUND_DESTINATION_ENDPOINT_ERROR"
                | "OUTBOUND_RESOURCE_ERROR"
                | "OUTBOUND_ATTEMPT_FAILED",
            ) => Failed,
            _ => NoAnswer,
        }
    }
}

/// The client token of an entry's attempt: the same attempt always starts with the same
/// token, so Connect starts one contact for it however often the start is sent. At most
/// 500 characters (Connect's limit); the entry's key is hashed into it, never a phone
/// number in clear.
pub fn client_token(r: &EntryRef, attempt: u32) -> String {
    let key = format!("{}|{attempt}", r.encode());
    let h1 = super::stable_hash(&key);
    let h2 = super::stable_hash(&format!("{key}|2"));
    format!("ce1-{h1:016x}{h2:016x}-{attempt}")
}

/// The key of an entry's line among its account's lines: one line per entry at a time.
pub fn line_key(r: &EntryRef) -> String {
    format!("{}|{}|{}", r.campaign_id, r.shard, r.phone)
}

/// One call's hold on a line.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Line {
    pub campaign_id: String,
    /// When the dispatcher gave it out.
    pub since: Time,
    /// When it is free again even if the call's final event never came.
    pub until: Time,
}

/// The lines a Connect account's calls hold: one item per account, written with its
/// version, so two dispatchers at once never give out the same free line.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct Lines {
    /// By [`line_key`].
    #[serde(default)]
    pub calls: BTreeMap<String, Line>,
    #[serde(default)]
    pub version: u64,
}

impl Lines {
    /// Frees the lines whose bound passed (their final event was lost); how many.
    pub fn lapse(&mut self, now: Time) -> usize {
        let before = self.calls.len();
        self.calls.retain(|_, l| l.until > now);
        before - self.calls.len()
    }

    pub fn in_use(&self) -> u32 {
        self.calls.len() as u32
    }

    /// Lines held by one campaign's calls.
    pub fn held_by(&self, campaign_id: &str) -> u32 {
        self.calls
            .values()
            .filter(|l| l.campaign_id == campaign_id)
            .count() as u32
    }

    pub fn holds(&self, key: &str) -> bool {
        self.calls.contains_key(key)
    }

    /// How many more lines a campaign may take now: up to its `share` of the account's
    /// lines, within the account's `limit` in all.
    pub fn free_for(&self, campaign_id: &str, share: u32, limit: u32) -> u32 {
        let mine = share.saturating_sub(self.held_by(campaign_id));
        mine.min(limit.saturating_sub(self.in_use()))
    }

    /// Gives a line to an entry's call.
    pub fn take(&mut self, key: String, campaign_id: &str, now: Time, bound: chrono::Duration) {
        self.calls.insert(
            key,
            Line {
                campaign_id: campaign_id.to_owned(),
                since: now,
                until: now + bound,
            },
        );
    }

    /// The line of a call about to be dialled `now`: held since its dispatch, its bound
    /// counted again from now (the call may start long after the dispatch: a queue's
    /// delay, a redelivery); or, when it lapsed meanwhile, taken again if the campaign
    /// (`campaign_max`) and the account (`limit`) still have one free. False: no line,
    /// no call.
    pub fn confirm(
        &mut self,
        key: &str,
        campaign_id: &str,
        campaign_max: u32,
        limit: u32,
        now: Time,
        bound: chrono::Duration,
    ) -> bool {
        self.lapse(now);
        let free = self.held_by(campaign_id) < campaign_max && self.in_use() < limit;
        if !self.holds(key) && !free {
            return false;
        }
        self.take(key.to_owned(), campaign_id, now, bound);
        true
    }

    /// Frees an entry's line; whether it held one.
    pub fn free(&mut self, key: &str) -> bool {
        self.calls.remove(key).is_some()
    }
}

/// Shares `limit` lines among campaigns asking for `demands` lines each, max-min fairly
/// in whole lines: a campaign asking for little gets all it asks, the others split the
/// rest evenly, the first ones (in the given order) taking the lines that do not divide.
pub fn fair_lines(limit: u32, demands: &[u32]) -> Vec<u32> {
    let mut shares = vec![0u32; demands.len()];
    let mut left = limit;
    loop {
        let wanting: Vec<usize> = (0..demands.len())
            .filter(|&i| shares[i] < demands[i])
            .collect();
        if wanting.is_empty() || left == 0 {
            return shares;
        }
        let each = (left / wanting.len() as u32).max(1);
        for i in wanting {
            if left == 0 {
                break;
            }
            let give = each.min(demands[i] - shares[i]).min(left);
            shares[i] += give;
            left -= give;
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::domain::phone::PhoneNumber;
    use chrono::{TimeZone, Utc};

    pub(crate) fn settings() -> VoiceSettings {
        VoiceSettings {
            caller_id: "+15550100100".into(),
            queue_id: "a1b2c3d4-0000-4000-8000-000000000001".into(),
            contact_flow_id: "a1b2c3d4-0000-4000-8000-000000000002".into(),
            max_concurrent: 1,
            max_retries: 0,
            retry_delay_seconds: 60,
            amd_enabled: false,
            amd_action: AmdAction::HangUp,
            voicemail_flow_id: None,
            voicemail_message: None,
            max_call_minutes: 60,
        }
    }

    fn field_of(e: DomainError) -> String {
        match e {
            DomainError::Invalid { field, .. } => field,
            other => panic!("not a 422: {other:?}"),
        }
    }

    #[test]
    fn r13_1_voice_settings_are_validated_field_by_field() {
        assert!(settings().validate().is_ok());
        let bad: Vec<(VoiceSettings, &str)> = vec![
            (
                VoiceSettings {
                    caller_id: "15550100100".into(),
                    ..settings()
                },
                "voice.caller_id",
            ),
            (
                VoiceSettings {
                    queue_id: "".into(),
                    ..settings()
                },
                "voice.queue_id",
            ),
            (
                VoiceSettings {
                    contact_flow_id: "flow/../x".into(),
                    ..settings()
                },
                "voice.contact_flow_id",
            ),
            (
                VoiceSettings {
                    max_concurrent: 0,
                    ..settings()
                },
                "voice.max_concurrent",
            ),
            (
                VoiceSettings {
                    max_retries: 11,
                    ..settings()
                },
                "voice.max_retries",
            ),
            (
                VoiceSettings {
                    retry_delay_seconds: 0,
                    ..settings()
                },
                "voice.retry_delay_seconds",
            ),
            (
                VoiceSettings {
                    amd_action: AmdAction::Voicemail,
                    ..settings()
                },
                "voice.amd_action",
            ),
            (
                VoiceSettings {
                    amd_enabled: true,
                    amd_action: AmdAction::Voicemail,
                    ..settings()
                },
                "voice.voicemail_message",
            ),
            (
                VoiceSettings {
                    max_call_minutes: 0,
                    ..settings()
                },
                "voice.max_call_minutes",
            ),
        ];
        for (s, field) in bad {
            assert_eq!(field_of(s.validate().unwrap_err()), field);
        }
        let voicemail = VoiceSettings {
            amd_enabled: true,
            amd_action: AmdAction::Voicemail,
            voicemail_message: Some("Please call us back".into()),
            ..settings()
        };
        assert!(voicemail.validate().is_ok());
        let defaults: VoiceSettings = serde_json::from_value(serde_json::json!({
            "caller_id": "+15550100100", "queue_id": "q-1", "contact_flow_id": "f-1"
        }))
        .unwrap();
        assert_eq!(
            (
                defaults.max_concurrent,
                defaults.max_retries,
                defaults.retry_delay_seconds,
                defaults.amd_enabled,
                defaults.amd_action
            ),
            (1, 0, 60, false, AmdAction::HangUp),
            "seed 003's defaults"
        );
    }

    fn event(
        kind: CallEventKind,
        connected: bool,
        amd: Option<&str>,
        reason: Option<&str>,
    ) -> CallEvent {
        let at = Utc.with_ymd_and_hms(2026, 12, 7, 10, 0, 30).unwrap();
        CallEvent {
            instance_id: "i".into(),
            contact_id: "c".into(),
            kind,
            at,
            connected_at: connected.then_some(at),
            agent_at: None,
            amd_status: amd.map(str::to_owned),
            disconnect_reason: reason.map(str::to_owned),
        }
    }

    /// Review of issue 17: CONNECTED_TO_SYSTEM comes with every answering-machine result,
    /// an unanswered call's too; only its timestamp says the callee answered.
    #[test]
    fn r13_1_calls_are_judged_by_what_their_events_say() {
        use CallEventKind::*;
        let t0 = Utc.with_ymd_and_hms(2026, 12, 7, 10, 0, 0).unwrap();
        let judge = |events: &[CallEvent], action: AmdAction| {
            let mut c = CallAttempt::new(1, "c".into(), t0);
            for e in events {
                c.learn(e);
            }
            (c.judge(action), c.connected_at.is_some())
        };
        let hang_up = AmdAction::HangUp;
        assert_eq!(
            judge(
                &[
                    event(Connected, false, Some("AMD_UNANSWERED"), None),
                    event(Disconnected, false, None, Some("TELECOM_TIMEOUT"))
                ],
                hang_up
            ),
            (CallOutcome::NoAnswer, false)
        );
        assert_eq!(
            judge(
                &[
                    event(Connected, false, Some("SIT_TONE_DETECTED"), None),
                    event(Disconnected, false, None, None)
                ],
                hang_up
            ),
            (CallOutcome::Failed, false)
        );
        assert_eq!(
            judge(
                &[
                    event(Connected, false, Some("AMD_NOT_APPLICABLE"), None),
                    event(Disconnected, false, None, None)
                ],
                hang_up
            ),
            (CallOutcome::NoAnswer, false),
            "an undetermined result on a call nobody answered is retried"
        );
        // Unordered: the final event first, the detection's result after.
        assert_eq!(
            judge(
                &[
                    event(Disconnected, true, None, Some("CUSTOMER_DISCONNECT")),
                    event(Connected, true, Some("VOICEMAIL_BEEP"), None)
                ],
                AmdAction::Voicemail
            ),
            (CallOutcome::Voicemail, true)
        );
        assert_eq!(
            judge(
                &[event(Disconnected, true, None, Some("CUSTOMER_DISCONNECT"))],
                hang_up
            ),
            (CallOutcome::Connected, true),
            "without detection, answered by someone or something"
        );
        assert_eq!(
            judge(
                &[event(Disconnected, false, None, Some("TELECOM_BUSY"))],
                hang_up
            ),
            (CallOutcome::Busy, false)
        );
        assert_eq!(
            judge(
                &[event(
                    Connected,
                    false,
                    Some("SIT_TONE_INVALID_NUMBER"),
                    None
                )],
                hang_up
            ),
            (CallOutcome::InvalidNumber, false)
        );
    }

    #[test]
    fn r13_2_the_client_token_names_the_entry_and_attempt_without_the_phone() {
        let r = EntryRef {
            tenant: "t1".into(),
            campaign_id: "cmp_1".into(),
            shard: 3,
            phone: PhoneNumber::parse("15551234567").unwrap(),
        };
        let t1 = client_token(&r, 1);
        assert_eq!(t1, client_token(&r, 1), "the same attempt, the same token");
        assert_ne!(t1, client_token(&r, 2), "a retry is a new call");
        assert!(!t1.contains("15551234567"));
        assert!(t1.len() <= 500);
    }

    #[test]
    fn r13_2_lines_are_shared_fairly_and_never_exceeded() {
        assert_eq!(fair_lines(10, &[1, 20, 20]), vec![1, 5, 4]);
        assert_eq!(fair_lines(3, &[5, 5, 5, 5]), vec![1, 1, 1, 0]);
        assert_eq!(fair_lines(10, &[2, 3]), vec![2, 3]);
        assert_eq!(fair_lines(0, &[2]), vec![0]);
        for limit in 0..12u32 {
            for a in 0..6u32 {
                for b in 0..6u32 {
                    let s = fair_lines(limit, &[a, b, 3]);
                    assert!(s.iter().sum::<u32>() <= limit);
                    assert!(s[0] <= a && s[1] <= b && s[2] <= 3);
                    // Work-conserving: lines are left only when every demand is met.
                    if s.iter().sum::<u32>() < limit {
                        assert_eq!(s, vec![a, b, 3]);
                    }
                }
            }
        }
        let t0 = Utc.with_ymd_and_hms(2026, 12, 7, 10, 0, 0).unwrap();
        let mut lines = Lines::default();
        lines.take("a|0|1".into(), "a", t0, chrono::Duration::minutes(5));
        lines.take("b|0|2".into(), "b", t0, chrono::Duration::minutes(1));
        assert_eq!(lines.free_for("a", 1, 10), 0, "its one line is taken");
        assert_eq!(lines.free_for("a", 3, 3), 1, "the account has one left");
        assert_eq!(lines.lapse(t0 + chrono::Duration::minutes(2)), 1);
        assert_eq!(lines.in_use(), 1);
        assert!(lines.free("a|0|1"));
        assert!(!lines.free("a|0|1"), "freeing twice frees nothing");
    }
}
