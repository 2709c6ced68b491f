//! Campaigns: their settings (R1.1, R1.2), lifecycle (R1.3), edit rules (R1.4), cancel and
//! delete (R1.5) and test copies (R1.6).
//!
//! Lifecycle:
//!
//! ```text
//! DRAFT <-> READY --launch--> SCHEDULED --start date--> RUNNING <-> PAUSED
//!             |   <--unschedule--'                        |
//!             '--launch (no future start date)------------'--> COMPLETED
//! any of DRAFT, READY, SCHEDULED, RUNNING, PAUSED --cancel--> CANCELLED
//! any --delete--> DELETING (hidden; the sweeper removes everything, then the campaign)
//! ```
//!
//! DRAFT and READY are recomputed on every edit: READY when nothing required is missing.

use super::account::{required, Provider};
use super::template::VariableSource;
use super::tenant::{parse_timezone, present};
pub use super::voice::VoiceSettings;
use super::{new_id, DomainError, Time};
use chrono::{DateTime, NaiveTime, Utc};
use serde::{Deserialize, Serialize};
use std::fmt;
use utoipa::ToSchema;

#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize, ToSchema)]
#[serde(rename_all = "SCREAMING_SNAKE_CASE")]
pub enum CampaignStatus {
    /// Required fields are missing.
    Draft,
    /// Complete; may be launched.
    Ready,
    /// Launched with a future start date; a one-time schedule starts it.
    Scheduled,
    Running,
    Paused,
    Completed,
    Cancelled,
    /// Being deleted in the background; hidden and answered as not found.
    Deleting,
}

impl CampaignStatus {
    pub const ALL: [CampaignStatus; 8] = [
        CampaignStatus::Draft,
        CampaignStatus::Ready,
        CampaignStatus::Scheduled,
        CampaignStatus::Running,
        CampaignStatus::Paused,
        CampaignStatus::Completed,
        CampaignStatus::Cancelled,
        CampaignStatus::Deleting,
    ];

    pub fn as_str(self) -> &'static str {
        match self {
            CampaignStatus::Draft => "DRAFT",
            CampaignStatus::Ready => "READY",
            CampaignStatus::Scheduled => "SCHEDULED",
            CampaignStatus::Running => "RUNNING",
            CampaignStatus::Paused => "PAUSED",
            CampaignStatus::Completed => "COMPLETED",
            CampaignStatus::Cancelled => "CANCELLED",
            CampaignStatus::Deleting => "DELETING",
        }
    }

    /// Parses a status as the API spells it (case-insensitive); DELETING is not visible.
    pub fn parse_visible(s: &str) -> Option<Self> {
        Self::ALL
            .into_iter()
            .filter(|st| *st != CampaignStatus::Deleting)
            .find(|st| st.as_str().eq_ignore_ascii_case(s.trim()))
    }

    /// Edits are allowed in these states (R1.4).
    pub fn is_editable(self) -> bool {
        matches!(
            self,
            CampaignStatus::Draft
                | CampaignStatus::Ready
                | CampaignStatus::Scheduled
                | CampaignStatus::Paused
        )
    }
}

impl fmt::Display for CampaignStatus {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

/// The channel a campaign sends on (R1.1): a WhatsApp template, an SMS message, or a
/// voice call through Amazon Connect.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize, Default, ToSchema)]
#[serde(rename_all = "lowercase")]
pub enum Channel {
    #[default]
    Whatsapp,
    Sms,
    Voice,
}

impl Channel {
    pub fn as_str(self) -> &'static str {
        match self {
            Channel::Whatsapp => "whatsapp",
            Channel::Sms => "sms",
            Channel::Voice => "voice",
        }
    }

    pub fn parse(s: &str) -> Option<Self> {
        [Channel::Whatsapp, Channel::Sms, Channel::Voice]
            .into_iter()
            .find(|c| c.as_str().eq_ignore_ascii_case(s.trim()))
    }

    /// The channel an account of `provider` sends on: a campaign's account must be one of
    /// its channel.
    pub fn of(provider: Provider) -> Self {
        if provider.sends_sms() {
            Channel::Sms
        } else if provider.calls() {
            Channel::Voice
        } else {
            Channel::Whatsapp
        }
    }

    /// Whether an account of `provider` may send this channel's campaigns; a 422 naming
    /// `account_id` otherwise.
    pub fn check_provider(self, provider: Provider, account_id: &str) -> Result<(), DomainError> {
        let theirs = Channel::of(provider);
        if theirs == self {
            return Ok(());
        }
        Err(DomainError::invalid(
            "account_id",
            format!(
                "account '{account_id}' ({}) sends {theirs}; a {self} campaign needs an account that sends {self}",
                provider.as_str()
            ),
        ))
    }

    /// Whether the channel's providers report that a message was read (WhatsApp's blue
    /// ticks); SMS reports delivery at most.
    pub fn reports_reads(self) -> bool {
        self == Channel::Whatsapp
    }

    /// Whether the channel's messages are pieces of text, whose replies are the answer
    /// (WhatsApp, SMS); a voice call is answered on the call.
    pub fn has_replies(self) -> bool {
        self != Channel::Voice
    }
}

impl fmt::Display for Channel {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
#[schema(example = json!({"name": "spring_offer", "language": "en"}))]
pub struct TemplateRef {
    pub name: String,
    pub language: String,
}

/// Default sending rate in messages per second (R4.8).
pub const DEFAULT_RATE: u32 = 20;
/// Highest rate a campaign may ask for: Meta's top throughput tier.
pub const MAX_RATE: u32 = 1000;
/// Highest slow-pacing value: the same 1,000 messages/s expressed per hour.
pub const MAX_PER_HOUR: u32 = MAX_RATE * 3600;
/// Longest minimum interval between two sends: one day.
pub const MAX_INTERVAL_SECONDS: u32 = 86_400;
/// Longest response timeout.
pub const MAX_TIMEOUT_DAYS: u32 = 30;
/// Default number of hopper shards: enough that a campaign at 1,000 messages/s stays far
/// below one DynamoDB partition's write limit.
pub const DEFAULT_HOPPER_SHARDS: u16 = 16;
const MAX_NAME_CHARS: usize = 200;
const MAX_NOTES_CHARS: usize = 4000;
const MAX_ROUTE_CHARS: usize = 256;
const MAX_MESSAGE_CHARS: usize = 1600;

/// How a pacing value is expressed (R1.2).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize, ToSchema)]
#[serde(rename_all = "snake_case")]
pub enum PacingUnit {
    /// `value` messages every second (fast sends; default 20).
    MessagesPerSecond,
    /// `value` contacts every hour (slow pacing, e.g. 30 an hour).
    ContactsPerHour,
    /// At least `value` seconds between two sends.
    MinIntervalSeconds,
}

/// The sending rate, in one of three forms. The dispatcher turns it into messages per
/// tick with `rate_fraction`, carrying fractions from tick to tick so a slow pace never
/// rounds down to nothing.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
#[schema(example = json!({"unit": "contacts_per_hour", "value": 30}))]
pub struct Pacing {
    pub unit: PacingUnit,
    pub value: u32,
}

impl Default for Pacing {
    fn default() -> Self {
        Pacing::per_second(DEFAULT_RATE)
    }
}

impl Pacing {
    pub fn per_second(v: u32) -> Self {
        Pacing {
            unit: PacingUnit::MessagesPerSecond,
            value: v,
        }
    }

    pub fn validate(&self, field: &str) -> Result<(), DomainError> {
        let (max, what) = match self.unit {
            PacingUnit::MessagesPerSecond => (MAX_RATE, "messages/s"),
            PacingUnit::ContactsPerHour => (MAX_PER_HOUR, "contacts/hour"),
            PacingUnit::MinIntervalSeconds => (MAX_INTERVAL_SECONDS, "seconds between sends"),
        };
        if (1..=max).contains(&self.value) {
            Ok(())
        } else {
            Err(DomainError::invalid(
                format!("{field}.value"),
                format!("must be between 1 and {max} {what}"),
            ))
        }
    }

    /// Messages per second as the exact fraction `(numerator, denominator)`.
    pub fn rate_fraction(&self) -> (u64, u64) {
        let v = u64::from(self.value.max(1));
        match self.unit {
            PacingUnit::MessagesPerSecond => (v, 1),
            PacingUnit::ContactsPerHour => (v, 3600),
            PacingUnit::MinIntervalSeconds => (1, v),
        }
    }

    /// Messages per second, for display and estimates.
    pub fn messages_per_second(&self) -> f64 {
        let (n, d) = self.rate_fraction();
        n as f64 / d as f64
    }
}

/// Hours of the day (in `timezone`) inside which sends may go out (R1.2). A window whose
/// end is before its start runs overnight (`22:00`-`06:00`).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
#[schema(example = json!({"start": "09:00", "end": "20:00", "timezone": "Asia/Kolkata"}))]
pub struct CallingHours {
    /// `HH:MM`, 24-hour clock.
    pub start: String,
    /// `HH:MM`, 24-hour clock; sends stop at this minute.
    pub end: String,
    /// IANA time zone of `start` and `end`.
    pub timezone: String,
    /// Judge the window in each recipient's zone, from the number's country, instead
    /// (R4.8); numbers of countries with several zones keep `timezone`.
    #[serde(default)]
    pub recipient_timezone: bool,
}

pub(super) fn parse_hhmm(field: &str, s: &str) -> Result<NaiveTime, DomainError> {
    let ok = s.len() == 5 && s.as_bytes()[2] == b':';
    ok.then(|| NaiveTime::parse_from_str(s, "%H:%M").ok())
        .flatten()
        .ok_or_else(|| DomainError::invalid(field, format!("'{s}' is not a time as HH:MM")))
}

impl CallingHours {
    pub fn validate(&self, field: &str) -> Result<(), DomainError> {
        let start = parse_hhmm(&format!("{field}.start"), &self.start)?;
        let end = parse_hhmm(&format!("{field}.end"), &self.end)?;
        if start == end {
            return Err(DomainError::invalid(
                format!("{field}.end"),
                "must differ from start (an empty window would never send)",
            ));
        }
        parse_timezone(&format!("{field}.timezone"), &self.timezone)?;
        Ok(())
    }
}

/// What happens when Meta holds a message back for the contact's marketing limit (131049,
/// a per-user limit counted across all businesses): the entry waits `spacing_hours` and
/// is sent again, at most `max_attempts` times, never after the campaign's end; then it
/// fails with the reason `Meta's marketing limit`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
#[schema(example = json!({"spacing_hours": 24, "max_attempts": 3}))]
pub struct MarketingLimitRetry {
    /// Hours from Meta's refusal to the next attempt: 24 to 168 (Meta refuses again
    /// inside a day).
    #[schema(minimum = 24, maximum = 168)]
    pub spacing_hours: u32,
    /// How many times an entry may be held and sent again: 0 (the first refusal fails it)
    /// to 7.
    #[schema(minimum = 0, maximum = 7)]
    pub max_attempts: u32,
}

impl Default for MarketingLimitRetry {
    /// Daily, three times: what the peers do, inside a week.
    fn default() -> Self {
        MarketingLimitRetry {
            spacing_hours: 24,
            max_attempts: 3,
        }
    }
}

impl MarketingLimitRetry {
    fn validate(&self) -> Result<(), DomainError> {
        if !(24..=168).contains(&self.spacing_hours) {
            return Err(DomainError::invalid(
                "marketing_limit_retry.spacing_hours",
                "must be between 24 and 168 hours (Meta refuses again inside a day)",
            ));
        }
        if self.max_attempts > 7 {
            return Err(DomainError::invalid(
                "marketing_limit_retry.max_attempts",
                "must be between 0 and 7",
            ));
        }
        Ok(())
    }
}

/// A campaign's marketing-limit rule as a hold needs it: the retry settings and the end.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct MarketingLimitHold {
    pub retry: MarketingLimitRetry,
    pub ends_at: Option<Time>,
}

impl MarketingLimitHold {
    /// When an entry refused at `at`, after `held` earlier holds, goes out again; `None`
    /// when its attempts are spent or the next one would fall after the campaign's end.
    pub fn next_attempt(&self, held: u32, at: Time) -> Option<Time> {
        let when = at + chrono::Duration::hours(i64::from(self.retry.spacing_hours));
        (held < self.retry.max_attempts && self.ends_at.is_none_or(|end| when < end))
            .then_some(when)
    }
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, ToSchema)]
pub struct Campaign {
    pub id: String,
    pub tenant: String,
    pub name: String,
    pub channel: Channel,
    /// Provider account that sends.
    pub account_id: Option<String>,
    /// The WhatsApp template (required on the whatsapp channel).
    pub template: Option<TemplateRef>,
    /// Source of each placeholder: index 0 fills `{{1}}` (R3.3).
    pub variables: Vec<VariableSource>,
    /// Source of the end of the template's URL button link, when the link ends with
    /// `{{1}}` (a per-recipient tracking code, say).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub url_variable: Option<VariableSource>,
    /// Message body of an SMS campaign (R1.1), with `{{1}}`.. placeholders filled from
    /// `variables` like a template's.
    pub message: Option<String>,
    /// The most parts (segments) one SMS message may take (1..=10, default 6): a message
    /// longer as written is a 422 naming `message`; an entry whose contact's values make it
    /// longer is recorded FAILED with the reason and not sent.
    #[serde(default = "default_max_segments")]
    pub max_segments: u32,
    /// A WhatsApp campaign's SMS fallback (issue 16): a contact whose number WhatsApp
    /// refuses as not on WhatsApp (Meta 131026, Kaleyra's invalid number) is sent this
    /// message from this SMS account instead, once, never both.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub sms_fallback: Option<SmsFallbackSettings>,
    /// A voice campaign's call settings (issue 17, seed 003): caller id, queue, flow,
    /// maximum concurrent calls, retries, answering-machine detection.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub voice: Option<VoiceSettings>,
    pub notes: Option<String>,
    /// Sending rate (R1.2).
    #[serde(default)]
    pub pacing: Pacing,
    pub response_timeout_days: u32,
    /// A contact sent to by any campaign of the tenant in the last N days is skipped
    /// (1..=7); absent means no check.
    pub duplicate_window_days: Option<u32>,
    /// Send even to contacts with an open interaction elsewhere (default off).
    #[serde(default)]
    pub include_active_interactions: bool,
    /// A quick-reply answer closes the campaign interaction (default off).
    #[serde(default)]
    pub close_on_quick_reply: bool,
    /// Sending again after Meta's marketing limit (131049).
    #[serde(default)]
    pub marketing_limit_retry: MarketingLimitRetry,
    /// When to start; absent means when launched.
    pub start_at: Option<DateTime<Utc>>,
    /// Nothing is sent after this instant.
    pub end_at: Option<DateTime<Utc>>,
    pub calling_hours: Option<CallingHours>,
    /// IANA time zone the campaign's times are shown in (the tenant's by default).
    pub display_timezone: Option<String>,
    /// The bot flow or agent queue that takes replies; carried on reply events.
    pub reply_route: Option<String>,
    /// Ids of the block lists whose numbers are never sent to (R4.3), at most 10; a hit
    /// is recorded BLOCK_LIST. The tenant's opt-out list applies whatever this says.
    #[serde(default)]
    pub block_lists: Vec<String>,
    /// The lists and segments attached so far, oldest first, each once: the grid's
    /// "target list" (seed 003).
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub audiences: Vec<AudienceRef>,
    /// Audiences attached beyond the first [`MAX_AUDIENCES_SHOWN`], counted only.
    #[serde(default, skip_serializing_if = "is_zero")]
    pub audiences_more: u32,
    /// Set on a test campaign: the campaign it tests (R1.6).
    pub test_of: Option<String>,
    pub status: CampaignStatus,
    /// Why the campaign paused, when the engine paused it itself.
    pub pause_reason: Option<String>,
    pub hopper_shards: u16,
    pub created_at: DateTime<Utc>,
    pub updated_at: DateTime<Utc>,
    pub started_at: Option<DateTime<Utc>>,
    pub completed_at: Option<DateTime<Utc>>,
    pub cancelled_at: Option<DateTime<Utc>>,
    /// Optimistic-concurrency version; every stored change bumps it.
    #[serde(default)]
    pub version: u64,
    /// Status changes stored and not yet published: the campaign's outbox. A change is
    /// written with the campaign itself, so a bus outage or a function that dies after
    /// the write delays its event and never loses it. Not part of what the API shows.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    #[schema(ignore)]
    pub unpublished: Vec<Transition>,
}

/// A status change of a campaign, as its `CampaignStateChanged` event tells it.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Transition {
    pub from: CampaignStatus,
    pub to: CampaignStatus,
    /// Why, when the engine changed it itself.
    pub reason: Option<String>,
    pub at: DateTime<Utc>,
    /// The campaign's version the change made: one change per version.
    pub version: u64,
}

/// `POST /campaigns`. Only `name` is required; a campaign missing its account or template
/// is stored as DRAFT.
#[derive(Debug, Clone, Default, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct NewCampaign {
    #[schema(value_type = String, required = true, min_length = 1)]
    pub name: Option<String>,
    pub channel: Option<Channel>,
    pub account_id: Option<String>,
    pub template: Option<TemplateRef>,
    #[serde(default)]
    pub variables: Vec<VariableSource>,
    /// Source of the URL button's `{{1}}`, when the template's link ends with one.
    pub url_variable: Option<VariableSource>,
    pub message: Option<String>,
    /// SMS: the most parts one message may take, 1..=10 (default 6).
    pub max_segments: Option<u32>,
    /// WhatsApp: send this SMS instead to a number that is not on WhatsApp.
    pub sms_fallback: Option<SmsFallbackSettings>,
    /// Voice: the call settings (required on the voice channel).
    pub voice: Option<VoiceSettings>,
    pub notes: Option<String>,
    /// Shorthand for `pacing: {"unit": "messages_per_second", "value": rate}`.
    pub rate: Option<u32>,
    pub pacing: Option<Pacing>,
    pub response_timeout_days: Option<u32>,
    pub duplicate_window_days: Option<u32>,
    pub include_active_interactions: Option<bool>,
    pub close_on_quick_reply: Option<bool>,
    /// Default: every 24 hours, at most 3 times.
    pub marketing_limit_retry: Option<MarketingLimitRetry>,
    pub start_at: Option<DateTime<Utc>>,
    pub end_at: Option<DateTime<Utc>>,
    pub calling_hours: Option<CallingHours>,
    pub display_timezone: Option<String>,
    pub reply_route: Option<String>,
    /// Block list ids (R4.3): at most 10, each existing, none twice.
    pub block_lists: Option<Vec<String>>,
}

/// `PATCH /campaigns/{id}`: fields left out keep their value; `null` clears an optional
/// field. `version`, when given, must be the version read (optimistic concurrency).
#[derive(Debug, Clone, Default, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
#[schema(example = json!({"pacing": {"unit": "contacts_per_hour", "value": 600}, "notes": "slowed down for the call centre", "version": 3}))]
pub struct CampaignPatch {
    pub name: Option<String>,
    pub channel: Option<Channel>,
    #[serde(default, deserialize_with = "present")]
    #[schema(value_type = Option<String>)]
    pub account_id: Option<Option<String>>,
    #[serde(default, deserialize_with = "present")]
    #[schema(value_type = Option<TemplateRef>)]
    pub template: Option<Option<TemplateRef>>,
    pub variables: Option<Vec<VariableSource>>,
    #[serde(default, deserialize_with = "present")]
    #[schema(value_type = Option<VariableSource>)]
    pub url_variable: Option<Option<VariableSource>>,
    #[serde(default, deserialize_with = "present")]
    #[schema(value_type = Option<String>)]
    pub message: Option<Option<String>>,
    pub max_segments: Option<u32>,
    #[serde(default, deserialize_with = "present")]
    #[schema(value_type = Option<SmsFallbackSettings>)]
    pub sms_fallback: Option<Option<SmsFallbackSettings>>,
    /// Replaces the call settings as a whole; `null` clears them.
    #[serde(default, deserialize_with = "present")]
    #[schema(value_type = Option<VoiceSettings>)]
    pub voice: Option<Option<VoiceSettings>>,
    #[serde(default, deserialize_with = "present")]
    #[schema(value_type = Option<String>)]
    pub notes: Option<Option<String>>,
    /// Shorthand for a messages-per-second `pacing`.
    pub rate: Option<u32>,
    pub pacing: Option<Pacing>,
    pub response_timeout_days: Option<u32>,
    #[serde(default, deserialize_with = "present")]
    #[schema(value_type = Option<u32>)]
    pub duplicate_window_days: Option<Option<u32>>,
    pub include_active_interactions: Option<bool>,
    pub close_on_quick_reply: Option<bool>,
    pub marketing_limit_retry: Option<MarketingLimitRetry>,
    /// On a SCHEDULED campaign a new (future) start date moves its schedule.
    #[serde(default, deserialize_with = "present")]
    #[schema(value_type = Option<DateTime<Utc>>)]
    pub start_at: Option<Option<DateTime<Utc>>>,
    #[serde(default, deserialize_with = "present")]
    #[schema(value_type = Option<DateTime<Utc>>)]
    pub end_at: Option<Option<DateTime<Utc>>>,
    #[serde(default, deserialize_with = "present")]
    #[schema(value_type = Option<CallingHours>)]
    pub calling_hours: Option<Option<CallingHours>>,
    #[serde(default, deserialize_with = "present")]
    #[schema(value_type = Option<String>)]
    pub display_timezone: Option<Option<String>>,
    #[serde(default, deserialize_with = "present")]
    #[schema(value_type = Option<String>)]
    pub reply_route: Option<Option<String>>,
    /// Replaces the attached block lists (`[]` detaches all); same rules as on create.
    pub block_lists: Option<Vec<String>>,
    pub version: Option<u64>,
}

impl CampaignPatch {
    /// Whether the patch touches what a RUNNING campaign must keep: what is sent and by
    /// whom (R1.4).
    pub fn changes_message(&self) -> bool {
        self.account_id.is_some()
            || self.template.is_some()
            || self.variables.is_some()
            || self.url_variable.is_some()
            || self.message.is_some()
            || self.max_segments.is_some()
            || self.sms_fallback.is_some()
            || self.voice.is_some()
            || self.channel.is_some()
    }
}

/// What an edit did that the use case must follow up on.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct Edited {
    /// The account, template or variables changed: check they exist and fit.
    pub references: bool,
    /// A SCHEDULED campaign's start date moved: the schedule must follow.
    pub rescheduled: Option<DateTime<Utc>>,
}

/// What launching did.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Launched {
    /// Waits for its start date.
    Scheduled(Time),
    /// Sends from the next tick on.
    Running,
}

fn optional_text(
    field: &str,
    v: Option<String>,
    max: usize,
) -> Result<Option<String>, DomainError> {
    match v {
        None => Ok(None),
        Some(s) if s.trim().is_empty() => Ok(None),
        Some(s) if s.chars().count() > max => Err(DomainError::invalid(
            field,
            format!("must be at most {max} characters"),
        )),
        Some(s) => Ok(Some(s.trim().to_owned())),
    }
}

fn pacing_of(rate: Option<u32>, pacing: Option<Pacing>) -> Result<Option<Pacing>, DomainError> {
    match (rate, pacing) {
        (Some(_), Some(_)) => Err(DomainError::invalid(
            "pacing",
            "give either rate (messages/s) or pacing, not both",
        )),
        (Some(r), None) => {
            if !(1..=MAX_RATE).contains(&r) {
                return Err(DomainError::invalid(
                    "rate",
                    format!("must be between 1 and {MAX_RATE} messages/s"),
                ));
            }
            Ok(Some(Pacing::per_second(r)))
        }
        (None, Some(p)) => {
            p.validate("pacing")?;
            Ok(Some(p))
        }
        (None, None) => Ok(None),
    }
}

impl Campaign {
    /// Whether an entry refused as not on WhatsApp now goes to SMS instead: the campaign
    /// names an SMS fallback and still sends (RUNNING or PAUSED).
    pub fn falls_back_to_sms(&self) -> bool {
        self.sms_fallback.is_some()
            && matches!(
                self.status,
                CampaignStatus::Running | CampaignStatus::Paused
            )
    }

    /// The share of the sending number's capacity one message to `contact` takes: on SMS
    /// its parts (the providers' limits and prices count parts), else one. A message that
    /// cannot be built for the contact takes one (it is recorded, not sent).
    pub fn pace_units(&self, contact: &super::template::ContactData) -> usize {
        match (self.channel, &self.message) {
            (Channel::Sms, Some(m)) => {
                super::sms::render(m, &self.variables, contact, super::sms::MAX_SEGMENTS_LIMIT)
                    .map_or(1, |t| t.parts.segments.max(1) as usize)
            }
            _ => 1,
        }
    }

    /// The share of the campaign's pace one entry falling back to SMS takes: its SMS's
    /// parts, each as many of the campaign's slots as the campaign's `rate` (messages/s)
    /// is faster than the SMS number's `sms_rate` (parts/s). The fallback's SMS then keep
    /// to the SMS number's rate however fast the WhatsApp campaign goes (the campaign
    /// waits while they go out).
    pub fn fallback_pace_units(
        &self,
        contact: &super::template::ContactData,
        rate: f64,
        sms_rate: f64,
    ) -> usize {
        let Some(f) = &self.sms_fallback else {
            return 1;
        };
        let parts = super::sms::render(
            &f.message,
            &self.variables,
            contact,
            super::sms::MAX_SEGMENTS_LIMIT,
        )
        .map_or(1, |t| t.parts.segments.max(1) as usize);
        let per_part = if sms_rate > 0.0 {
            (rate / sms_rate).ceil().max(1.0) as usize
        } else {
            1
        };
        parts * per_part
    }
}

/// A WhatsApp campaign's SMS fallback: the SMS account and the message, filled from the
/// campaign's `variables` like the template.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
#[schema(example = json!({"account_id": "acc_sms", "message": "Hi {{1}}, your code is {{2}}"}))]
pub struct SmsFallbackSettings {
    /// An account that sends SMS (`twilio`, `aws_sms`).
    pub account_id: String,
    /// At most the campaign's `max_segments` parts as written.
    pub message: String,
}

impl SmsFallbackSettings {
    /// On a WhatsApp campaign only, with an account and a message that fits the cap; a
    /// 422 naming `sms_fallback...` otherwise.
    fn check(&self, c: &Campaign) -> Result<(), DomainError> {
        if c.channel != Channel::Whatsapp {
            return Err(DomainError::invalid(
                "sms_fallback",
                "only a WhatsApp campaign falls back to SMS",
            ));
        }
        if self.account_id.trim().is_empty() {
            return Err(DomainError::invalid(
                "sms_fallback.account_id",
                "is required",
            ));
        }
        super::sms::check_message(&self.message, &c.variables, c.max_segments).map_err(
            |e| match e {
                DomainError::Invalid { field, message } if field == "message" => {
                    DomainError::invalid("sms_fallback.message", message)
                }
                other => other,
            },
        )?;
        Ok(())
    }
}

fn default_max_segments() -> u32 {
    super::sms::DEFAULT_MAX_SEGMENTS
}

impl Campaign {
    /// What a hold for Meta's marketing limit needs of this campaign; `None` once it sends
    /// nothing more (completed, cancelled, being deleted): a refusal reported that late
    /// just fails the entry, which would otherwise wait in a campaign that never sends it.
    pub fn marketing_limit_hold(&self) -> Option<MarketingLimitHold> {
        matches!(
            self.status,
            CampaignStatus::Running | CampaignStatus::Paused
        )
        .then_some(MarketingLimitHold {
            retry: self.marketing_limit_retry,
            ends_at: self.end_at,
        })
    }

    /// A new campaign, DRAFT or READY. `tenant_timezone` is the display default.
    pub fn create(tenant: &str, input: NewCampaign, now: Time) -> Result<Self, DomainError> {
        let name = required("name", input.name)?;
        let mut c = Campaign {
            id: new_id("cmp"),
            tenant: tenant.to_owned(),
            name,
            channel: input.channel.unwrap_or_default(),
            account_id: None,
            template: None,
            variables: Vec::new(),
            url_variable: None,
            message: None,
            max_segments: super::sms::DEFAULT_MAX_SEGMENTS,
            sms_fallback: None,
            voice: None,
            notes: None,
            pacing: Pacing::default(),
            response_timeout_days: 1,
            duplicate_window_days: None,
            include_active_interactions: false,
            close_on_quick_reply: false,
            marketing_limit_retry: MarketingLimitRetry::default(),
            start_at: None,
            end_at: None,
            calling_hours: None,
            display_timezone: None,
            reply_route: None,
            block_lists: Vec::new(),
            audiences: Vec::new(),
            audiences_more: 0,
            test_of: None,
            status: CampaignStatus::Draft,
            pause_reason: None,
            hopper_shards: DEFAULT_HOPPER_SHARDS,
            created_at: now,
            updated_at: now,
            started_at: None,
            completed_at: None,
            cancelled_at: None,
            version: 0,
            unpublished: Vec::new(),
        };
        // Creating is editing a blank DRAFT with every given field.
        let patch = CampaignPatch {
            name: None,
            channel: None,
            account_id: input.account_id.map(Some),
            template: input.template.map(Some),
            variables: Some(input.variables),
            url_variable: input.url_variable.map(Some),
            message: input.message.map(Some),
            max_segments: input.max_segments,
            sms_fallback: input.sms_fallback.map(Some),
            voice: input.voice.map(Some),
            notes: input.notes.map(Some),
            rate: input.rate,
            pacing: input.pacing,
            response_timeout_days: input.response_timeout_days,
            duplicate_window_days: input.duplicate_window_days.map(Some),
            include_active_interactions: input.include_active_interactions,
            close_on_quick_reply: input.close_on_quick_reply,
            marketing_limit_retry: input.marketing_limit_retry,
            start_at: input.start_at.map(Some),
            end_at: input.end_at.map(Some),
            calling_hours: input.calling_hours.map(Some),
            display_timezone: input.display_timezone.map(Some),
            reply_route: input.reply_route.map(Some),
            block_lists: input.block_lists,
            version: None,
        };
        c.apply(patch, now)?;
        c.updated_at = now;
        Ok(c)
    }

    /// Fields that keep the campaign in DRAFT (R1.3).
    pub fn missing_fields(&self) -> Vec<&'static str> {
        let mut m = Vec::new();
        if self.account_id.is_none() {
            m.push("account_id");
        }
        match self.channel {
            Channel::Whatsapp if self.template.is_none() => m.push("template"),
            Channel::Sms if self.message.is_none() => m.push("message"),
            Channel::Voice if self.voice.is_none() => m.push("voice"),
            _ => {}
        }
        m
    }

    pub fn response_timeout(&self) -> chrono::Duration {
        chrono::Duration::days(i64::from(self.response_timeout_days))
    }

    pub fn is_test(&self) -> bool {
        self.test_of.is_some()
    }

    /// Whether the end date has passed: nothing more is sent.
    pub fn has_ended(&self, now: Time) -> bool {
        self.end_at.is_some_and(|e| now >= e)
    }

    fn illegal(&self, action: &str) -> DomainError {
        DomainError::Conflict(format!(
            "cannot {action} campaign {} while it is {}",
            self.id, self.status
        ))
    }

    /// A campaign being deleted is gone for every caller.
    fn alive(&self) -> Result<(), DomainError> {
        if self.status == CampaignStatus::Deleting {
            Err(DomainError::not_found("campaign", self.id.clone()))
        } else {
            Ok(())
        }
    }

    /// DRAFT <-> READY follows completeness; other states keep theirs.
    fn refresh_readiness(&mut self) {
        if matches!(self.status, CampaignStatus::Draft | CampaignStatus::Ready) {
            self.status = if self.missing_fields().is_empty() {
                CampaignStatus::Ready
            } else {
                CampaignStatus::Draft
            };
        }
    }

    /// Applies every given field, then checks the whole; `self` is unchanged on error.
    fn apply(&mut self, p: CampaignPatch, now: Time) -> Result<Edited, DomainError> {
        let mut c = self.clone();
        let mut edited = Edited {
            references: p.account_id.is_some()
                || p.channel.is_some()
                || p.sms_fallback.is_some()
                || p.voice.is_some()
                || p.template.is_some()
                || p.variables.is_some()
                || p.url_variable.is_some(),
            rescheduled: None,
        };
        if let Some(n) = p.name {
            c.name = required("name", Some(n))?;
        }
        if c.name.chars().count() > MAX_NAME_CHARS {
            return Err(DomainError::invalid(
                "name",
                format!("must be at most {MAX_NAME_CHARS} characters"),
            ));
        }
        if let Some(ch) = p.channel {
            c.channel = ch;
        }
        if let Some(a) = p.account_id {
            c.account_id = match a {
                Some(a) if a.trim().is_empty() => {
                    return Err(DomainError::invalid("account_id", "must not be empty"))
                }
                other => other.map(|a| a.trim().to_owned()),
            };
        }
        if let Some(t) = p.template {
            if let Some(t) = &t {
                if t.name.trim().is_empty() {
                    return Err(DomainError::invalid("template.name", "is required"));
                }
                if t.language.trim().is_empty() {
                    return Err(DomainError::invalid("template.language", "is required"));
                }
            }
            c.template = t;
        }
        if let Some(v) = p.variables {
            c.variables = v;
        }
        if let Some(u) = p.url_variable {
            c.url_variable = u;
        }
        if let Some(m) = p.message {
            c.message = optional_text("message", m, MAX_MESSAGE_CHARS)?;
        }
        if let Some(n) = p.max_segments {
            c.max_segments = super::sms::check_max_segments(n)?;
        }
        if let (Channel::Sms, Some(m)) = (c.channel, &c.message) {
            super::sms::check_message(m, &c.variables, c.max_segments)?;
        }
        if let Some(f) = p.sms_fallback {
            c.sms_fallback = f;
        }
        if let Some(f) = &c.sms_fallback {
            f.check(&c)?;
        }
        if let Some(v) = p.voice {
            if let Some(v) = &v {
                v.validate()?;
            }
            c.voice = v;
        }
        if c.voice.is_some() && c.channel != Channel::Voice {
            return Err(DomainError::invalid(
                "voice",
                "call settings belong to a voice campaign (channel voice)",
            ));
        }
        if let Some(n) = p.notes {
            c.notes = optional_text("notes", n, MAX_NOTES_CHARS)?;
        }
        if let Some(pacing) = pacing_of(p.rate, p.pacing)? {
            c.pacing = pacing;
        }
        if let Some(d) = p.response_timeout_days {
            if !(1..=MAX_TIMEOUT_DAYS).contains(&d) {
                return Err(DomainError::invalid(
                    "response_timeout_days",
                    format!("must be between 1 and {MAX_TIMEOUT_DAYS} days"),
                ));
            }
            c.response_timeout_days = d;
        }
        if let Some(w) = p.duplicate_window_days {
            if w.is_some_and(|w| !(1..=7).contains(&w)) {
                return Err(DomainError::invalid(
                    "duplicate_window_days",
                    "must be between 1 and 7 days (leave it out for no duplicate check)",
                ));
            }
            c.duplicate_window_days = w;
        }
        if let Some(b) = p.include_active_interactions {
            c.include_active_interactions = b;
        }
        if let Some(b) = p.close_on_quick_reply {
            c.close_on_quick_reply = b;
        }
        if let Some(r) = p.marketing_limit_retry {
            r.validate()?;
            c.marketing_limit_retry = r;
        }
        if let Some(h) = p.calling_hours {
            if let Some(h) = &h {
                h.validate("calling_hours")?;
            }
            c.calling_hours = h;
        }
        if let Some(tz) = p.display_timezone {
            c.display_timezone = match tz {
                Some(tz) => Some(parse_timezone("display_timezone", &tz)?.name().to_owned()),
                None => None,
            };
        }
        if let Some(r) = p.reply_route {
            c.reply_route = optional_text("reply_route", r, MAX_ROUTE_CHARS)?;
        }
        if let Some(b) = p.block_lists {
            c.block_lists = super::blocklist::check_attached(b)?;
        }
        if let Some(s) = p.start_at.filter(|s| *s != c.start_at) {
            match (c.status, s) {
                (CampaignStatus::Draft | CampaignStatus::Ready, s) => c.start_at = s,
                (CampaignStatus::Scheduled, Some(at)) if at > now => {
                    edited.rescheduled = Some(at);
                    c.start_at = Some(at);
                }
                (CampaignStatus::Scheduled, _) => {
                    return Err(DomainError::invalid(
                        "start_at",
                        "a scheduled campaign needs a future start date; unschedule it to start it by hand",
                    ))
                }
                _ => {
                    return Err(DomainError::invalid(
                        "start_at",
                        format!("cannot move the start date of a {} campaign", c.status),
                    ))
                }
            }
        }
        if let Some(e) = p.end_at.filter(|e| *e != c.end_at) {
            if e.is_some_and(|e| e <= now) {
                return Err(DomainError::invalid("end_at", "must be in the future"));
            }
            c.end_at = e;
        }
        if let (Some(s), Some(e)) = (c.start_at, c.end_at) {
            if e <= s {
                return Err(DomainError::invalid("end_at", "must be after start_at"));
            }
        }
        // A launched campaign must stay complete.
        if !matches!(c.status, CampaignStatus::Draft | CampaignStatus::Ready) {
            if let Some(f) = c.missing_fields().first() {
                return Err(DomainError::invalid(
                    *f,
                    format!("is required while the campaign is {}", c.status),
                ));
            }
        }
        c.refresh_readiness();
        c.updated_at = now;
        *self = c;
        Ok(edited)
    }

    /// Edits the settings (R1.4): only DRAFT, READY, SCHEDULED and PAUSED campaigns can be
    /// edited. A PAUSED campaign may even change its template, account or variables
    /// (that is how one recovers from a paused template); entries already sent keep their
    /// history. The channel can change only before launch.
    pub fn edit(&mut self, p: CampaignPatch, now: Time) -> Result<Edited, DomainError> {
        self.alive()?;
        if let Some(v) = p.version {
            if v != self.version {
                return Err(DomainError::Conflict(format!(
                    "campaign {} was changed by someone else (version {} now, {v} read): reload and try again",
                    self.id, self.version
                )));
            }
        }
        if !self.status.is_editable() {
            let what = if p.changes_message() {
                "change the template, account or variables of"
            } else {
                "edit"
            };
            let hint = if self.status == CampaignStatus::Running {
                ": pause it first"
            } else {
                ""
            };
            return Err(DomainError::Conflict(format!(
                "cannot {what} campaign {} while it is {}{hint}",
                self.id, self.status
            )));
        }
        if p.channel.is_some_and(|ch| ch != self.channel)
            && !matches!(self.status, CampaignStatus::Draft | CampaignStatus::Ready)
        {
            return Err(DomainError::Conflict(format!(
                "cannot change the channel of campaign {} while it is {}",
                self.id, self.status
            )));
        }
        self.apply(p, now)
    }

    /// Launch now, or wait for the start date when it lies in the future.
    pub fn launch(&mut self, now: Time) -> Result<Launched, DomainError> {
        self.alive()?;
        match self.status {
            CampaignStatus::Ready => {}
            CampaignStatus::Draft => {
                return Err(DomainError::Conflict(format!(
                    "cannot launch campaign {} while it is DRAFT: missing {}",
                    self.id,
                    self.missing_fields().join(", ")
                )))
            }
            _ => return Err(self.illegal("launch")),
        }
        if self.has_ended(now) {
            return Err(DomainError::Conflict(format!(
                "cannot launch campaign {}: its end date has passed",
                self.id
            )));
        }
        self.updated_at = now;
        match self.start_at {
            Some(at) if at > now => {
                self.status = CampaignStatus::Scheduled;
                Ok(Launched::Scheduled(at))
            }
            _ => {
                self.status = CampaignStatus::Running;
                self.started_at = Some(now);
                Ok(Launched::Running)
            }
        }
    }

    /// The start date arrived (the one-time schedule fired, or the tick noticed).
    pub fn start(&mut self, now: Time) -> Result<(), DomainError> {
        self.alive()?;
        if self.status != CampaignStatus::Scheduled {
            return Err(self.illegal("start"));
        }
        if self.start_at.is_some_and(|at| at > now) {
            return Err(DomainError::Conflict(format!(
                "cannot start campaign {} before its start date",
                self.id
            )));
        }
        self.status = CampaignStatus::Running;
        self.started_at = Some(now);
        self.updated_at = now;
        Ok(())
    }

    /// SCHEDULED -> READY: the start date stays, the schedule goes.
    pub fn unschedule(&mut self, now: Time) -> Result<(), DomainError> {
        self.alive()?;
        if self.status != CampaignStatus::Scheduled {
            return Err(self.illegal("unschedule"));
        }
        self.status = CampaignStatus::Ready;
        self.refresh_readiness();
        self.updated_at = now;
        Ok(())
    }

    /// Stop sending; `reason` is set when the engine pauses by itself.
    pub fn pause(&mut self, reason: Option<String>, now: Time) -> Result<(), DomainError> {
        self.alive()?;
        if self.status != CampaignStatus::Running {
            return Err(self.illegal("pause"));
        }
        self.status = CampaignStatus::Paused;
        self.pause_reason = reason;
        self.updated_at = now;
        Ok(())
    }

    pub fn resume(&mut self, now: Time) -> Result<(), DomainError> {
        self.alive()?;
        if self.status != CampaignStatus::Paused {
            return Err(self.illegal("resume"));
        }
        if self.has_ended(now) {
            return Err(DomainError::Conflict(format!(
                "cannot resume campaign {}: its end date has passed",
                self.id
            )));
        }
        self.status = CampaignStatus::Running;
        self.pause_reason = None;
        self.updated_at = now;
        Ok(())
    }

    /// Retry campaign (R4.9): RUNNING, PAUSED or COMPLETED, any number of times while the
    /// end date has not passed. A COMPLETED campaign reopens as RUNNING so the retried
    /// entries go out; a PAUSED one stays PAUSED (they go out when the operator resumes).
    pub fn retry(&mut self, now: Time) -> Result<(), DomainError> {
        self.alive()?;
        if !matches!(
            self.status,
            CampaignStatus::Running | CampaignStatus::Paused | CampaignStatus::Completed
        ) {
            return Err(self.illegal("retry"));
        }
        if self.has_ended(now) {
            return Err(DomainError::Conflict(format!(
                "cannot retry campaign {}: its end date has passed",
                self.id
            )));
        }
        if self.status == CampaignStatus::Completed {
            self.reopen(now)?;
        }
        Ok(())
    }

    /// COMPLETED -> RUNNING: a retry gave it entries to send again (R4.9).
    pub fn reopen(&mut self, now: Time) -> Result<(), DomainError> {
        self.alive()?;
        if self.status != CampaignStatus::Completed {
            return Err(self.illegal("reopen"));
        }
        if self.has_ended(now) {
            return Err(DomainError::Conflict(format!(
                "cannot reopen campaign {}: its end date has passed",
                self.id
            )));
        }
        self.status = CampaignStatus::Running;
        self.completed_at = None;
        self.updated_at = now;
        Ok(())
    }

    /// Reset list (R4.9): every entry goes back to FRESH, so nothing may be sending. A
    /// RUNNING campaign must be paused first; a COMPLETED one reopens as PAUSED, so nothing
    /// goes out until the operator resumes; DRAFT, READY, SCHEDULED and PAUSED keep their
    /// status. Refused when CANCELLED, and once the end date passed (nothing could be sent).
    pub fn reset(&mut self, now: Time) -> Result<(), DomainError> {
        self.alive()?;
        match self.status {
            CampaignStatus::Running => {
                return Err(DomainError::Conflict(format!(
                    "cannot reset the list of campaign {} while it is RUNNING: pause it first",
                    self.id
                )))
            }
            CampaignStatus::Cancelled => return Err(self.illegal("reset the list of")),
            _ => {}
        }
        if self.has_ended(now) {
            return Err(DomainError::Conflict(format!(
                "cannot reset the list of campaign {}: its end date has passed",
                self.id
            )));
        }
        if self.status == CampaignStatus::Completed {
            self.status = CampaignStatus::Paused;
            self.completed_at = None;
            self.pause_reason = None;
            self.updated_at = now;
        }
        Ok(())
    }

    /// The end date passed (R4.9): a RUNNING or PAUSED campaign whose unsent entries have
    /// expired and with nothing in flight is COMPLETED (a PAUSED one can never resume).
    pub fn complete_at_end(&mut self, now: Time) -> Result<(), DomainError> {
        self.alive()?;
        if !matches!(
            self.status,
            CampaignStatus::Running | CampaignStatus::Paused
        ) {
            return Err(self.illegal("complete"));
        }
        if !self.has_ended(now) {
            return Err(DomainError::Conflict(format!(
                "cannot complete campaign {} before its end date",
                self.id
            )));
        }
        self.status = CampaignStatus::Completed;
        self.completed_at = Some(now);
        self.updated_at = now;
        Ok(())
    }

    /// Puts the move from `from` to the current status in the outbox, when the status
    /// moved; stored with the next save. Returns whether it moved.
    pub fn note_transition(&mut self, from: CampaignStatus, reason: Option<String>) -> bool {
        if self.status == from {
            return false;
        }
        self.unpublished.push(Transition {
            from,
            to: self.status,
            reason,
            at: self.updated_at,
            version: self.version + 1,
        });
        true
    }

    /// Nothing is left to send or to wait for (or the end date passed and nothing is in
    /// flight).
    pub fn complete(&mut self, now: Time) -> Result<(), DomainError> {
        self.alive()?;
        if self.status != CampaignStatus::Running {
            return Err(self.illegal("complete"));
        }
        self.status = CampaignStatus::Completed;
        self.completed_at = Some(now);
        self.updated_at = now;
        Ok(())
    }

    /// Cancel keeps the campaign as CANCELLED, hidden from default listings (R1.5).
    /// Not undoable.
    pub fn cancel(&mut self, now: Time) -> Result<(), DomainError> {
        self.alive()?;
        match self.status {
            CampaignStatus::Completed | CampaignStatus::Cancelled => Err(self.illegal("cancel")),
            _ => {
                self.status = CampaignStatus::Cancelled;
                self.cancelled_at = Some(now);
                self.updated_at = now;
                Ok(())
            }
        }
    }

    /// Delete: hidden at once, removed in the background (R1.5). Not undoable.
    pub fn mark_deleting(&mut self, now: Time) -> Result<(), DomainError> {
        self.alive()?;
        self.status = CampaignStatus::Deleting;
        self.updated_at = now;
        Ok(())
    }

    /// Whether contacts may still be added to the hopper (R1.4, R2.2): adding contacts to
    /// a RUNNING campaign is fine, its template is what stays frozen.
    /// Whether an attach may add contacts now: [`Self::accepts_audience`], and the end
    /// date not passed (its unsent entries expire; new ones would be stranded).
    pub fn accepts_contacts_at(&self, now: Time) -> Result<(), DomainError> {
        self.accepts_audience()?;
        if self.has_ended(now) {
            return Err(DomainError::Conflict(format!(
                "cannot add contacts to campaign {}: its end date has passed",
                self.id
            )));
        }
        Ok(())
    }

    pub fn accepts_audience(&self) -> Result<(), DomainError> {
        self.alive()?;
        if self.is_test() {
            return Err(DomainError::Conflict(format!(
                "campaign {} is a test campaign: its audience is the phones it was created with",
                self.id
            )));
        }
        match self.status {
            CampaignStatus::Completed | CampaignStatus::Cancelled => {
                Err(self.illegal("add contacts to"))
            }
            _ => Ok(()),
        }
    }

    /// A test copy (R1.6): same settings, its own id, hopper and statistics, marked
    /// `test_of`, launched at once (no start or end date).
    pub fn test_copy(&self, now: Time) -> Result<Campaign, DomainError> {
        self.alive()?;
        if self.is_test() {
            return Err(DomainError::Conflict(format!(
                "campaign {} is itself a test; test its parent instead",
                self.id
            )));
        }
        if let Some(f) = self.missing_fields().first() {
            return Err(DomainError::Conflict(format!(
                "cannot test campaign {}: missing {f}",
                self.id
            )));
        }
        let mut t = self.clone();
        t.id = new_id("cmp");
        t.name = format!("{} (test)", self.name)
            .chars()
            .take(MAX_NAME_CHARS)
            .collect();
        t.test_of = Some(self.id.clone());
        t.audiences.clear();
        t.audiences_more = 0;
        t.status = CampaignStatus::Ready;
        t.start_at = None;
        t.end_at = None;
        t.pause_reason = None;
        t.created_at = now;
        t.updated_at = now;
        t.started_at = None;
        t.completed_at = None;
        t.cancelled_at = None;
        t.version = 0;
        // The parent's status changes are the parent's, published under its id.
        t.unpublished.clear();
        t.launch(now)?;
        Ok(t)
    }

    pub fn is_sending(&self) -> bool {
        self.status == CampaignStatus::Running
    }

    /// What an operator may do to the campaign now, each command tried on a copy by the
    /// same rule that would judge it, with the rule's reason when it is refused: the
    /// console's actions menu shows exactly what the API would accept (R1.4, R1.5, R4.9).
    /// The campaign view adds the rules that need the hopper and the references
    /// (`app::campaigns::actions_of`).
    pub fn actions(&self, now: Time) -> Vec<CampaignAction> {
        let try_on = |f: &dyn Fn(&mut Campaign) -> Result<(), DomainError>| {
            let mut copy = self.clone();
            f(&mut copy).err().map(|e| e.to_string())
        };
        let edit = (!self.status.is_editable()).then(|| {
            format!(
                "cannot edit campaign {} while it is {}{}",
                self.id,
                self.status,
                if self.status == CampaignStatus::Running {
                    ": pause it first"
                } else {
                    ""
                }
            )
        });
        let checks: [(&'static str, Option<String>); 8] = [
            ("edit", edit),
            ("launch", try_on(&|c| c.launch(now).map(drop))),
            ("unschedule", try_on(&|c| c.unschedule(now))),
            ("pause", try_on(&|c| c.pause(None, now))),
            ("resume", try_on(&|c| c.resume(now))),
            ("retry", try_on(&|c| c.retry(now))),
            ("reset", try_on(&|c| c.reset(now))),
            ("cancel", try_on(&|c| c.cancel(now))),
        ];
        let mut out: Vec<CampaignAction> = checks
            .into_iter()
            .map(|(name, refused)| CampaignAction {
                name,
                allowed: refused.is_none(),
                reason: refused,
            })
            .collect();
        out.push(CampaignAction {
            name: "delete",
            allowed: true,
            reason: None,
        });
        out
    }
}

fn is_zero(n: &u32) -> bool {
    *n == 0
}

/// A list or a segment attached to a campaign, as the campaign shows it.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, ToSchema)]
#[serde(tag = "type", rename_all = "snake_case")]
pub enum AudienceRef {
    /// A list, with its name when it was attached.
    List { list_id: String, name: String },
    /// A segment: its tags and valued tags.
    Segment { segment: super::contact::Segment },
}

/// Audiences a campaign names at most; more are counted in `audiences_more` (an item
/// stays far below DynamoDB's 400 KB whatever a script attaches).
pub const MAX_AUDIENCES_SHOWN: usize = 20;

impl AudienceRef {
    /// The same audience: a list by its id (its name may have changed), a segment by its
    /// tags and valued tags in any order.
    fn same(&self, other: &AudienceRef) -> bool {
        match (self, other) {
            (AudienceRef::List { list_id: a, .. }, AudienceRef::List { list_id: b, .. }) => a == b,
            (AudienceRef::Segment { segment: a }, AudienceRef::Segment { segment: b }) => {
                let sorted = |s: &super::contact::Segment| {
                    let mut t = s.tags.clone();
                    t.sort();
                    (t, s.valued_tags.clone())
                };
                sorted(a) == sorted(b)
            }
            _ => false,
        }
    }
}

impl Campaign {
    /// Whether the campaign names this audience already.
    pub fn notes_audience(&self, a: &AudienceRef) -> bool {
        self.audiences.iter().any(|x| x.same(a))
    }

    /// Notes an audience attached to the campaign; false when it was noted already. Past
    /// [`MAX_AUDIENCES_SHOWN`] it is only counted.
    pub fn note_audience(&mut self, a: AudienceRef) -> bool {
        if self.notes_audience(&a) {
            return false;
        }
        if self.audiences.len() >= MAX_AUDIENCES_SHOWN {
            self.audiences_more += 1;
        } else {
            self.audiences.push(a);
        }
        true
    }
}

/// One command of [`Campaign::actions`]: allowed now, or refused with the reason the API
/// would answer.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, ToSchema)]
pub struct CampaignAction {
    /// `edit`, `launch`, `unschedule`, `pause`, `resume`, `retry`, `reset`, `cancel` or
    /// `delete`.
    pub name: &'static str,
    pub allowed: bool,
    /// Why not, when not allowed.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub reason: Option<String>,
}

#[cfg(test)]
mod tests {
    use super::*;
    use chrono::{Duration, TimeZone, Utc};

    fn complete_input() -> NewCampaign {
        NewCampaign {
            name: Some("Diwali".into()),
            account_id: Some("acc_1".into()),
            template: Some(TemplateRef {
                name: "offer".into(),
                language: "en".into(),
            }),
            ..Default::default()
        }
    }

    fn field_of(r: Result<impl fmt::Debug, DomainError>) -> String {
        match r {
            Err(DomainError::Invalid { field, .. }) => field,
            other => panic!("expected a 422, got {other:?}"),
        }
    }

    fn create(input: NewCampaign) -> Result<Campaign, DomainError> {
        Campaign::create("t", input, Utc::now())
    }

    fn allowed(c: &Campaign, now: Time) -> Vec<&'static str> {
        c.actions(now)
            .into_iter()
            .filter(|a| a.allowed)
            .map(|a| a.name)
            .collect()
    }

    #[test]
    fn actions_are_what_each_command_would_accept_with_its_reason() {
        let now = Utc::now();
        let mut c = create(complete_input()).unwrap();
        assert_eq!(
            allowed(&c, now),
            ["edit", "launch", "reset", "cancel", "delete"]
        );
        c.launch(now).unwrap();
        assert_eq!(allowed(&c, now), ["pause", "retry", "cancel", "delete"]);
        let reset = c
            .actions(now)
            .into_iter()
            .find(|a| a.name == "reset")
            .unwrap();
        assert!(!reset.allowed);
        assert_eq!(
            reset.reason.as_deref(),
            Some(c.clone().reset(now).unwrap_err().to_string().as_str()),
            "the reason is the command's own refusal"
        );
        c.pause(None, now).unwrap();
        assert_eq!(
            allowed(&c, now),
            ["edit", "resume", "retry", "reset", "cancel", "delete"]
        );
        c.cancel(now).unwrap();
        assert_eq!(allowed(&c, now), ["delete"]);
        // Trying them changed nothing.
        assert_eq!(c.status, CampaignStatus::Cancelled);
    }

    #[test]
    fn r1_3_campaign_missing_template_is_draft_and_cannot_launch() {
        let now = Utc::now();
        let mut c = Campaign::create(
            "t",
            NewCampaign {
                template: None,
                ..complete_input()
            },
            now,
        )
        .unwrap();
        assert_eq!(c.status, CampaignStatus::Draft);
        let err = c.launch(now).unwrap_err();
        assert!(matches!(err, DomainError::Conflict(m) if m.contains("template")));
    }

    #[test]
    fn r1_3_draft_and_ready_are_recomputed_on_every_edit() {
        let now = Utc::now();
        let mut c = create(NewCampaign {
            name: Some("x".into()),
            ..Default::default()
        })
        .unwrap();
        assert_eq!(c.status, CampaignStatus::Draft);
        c.edit(
            CampaignPatch {
                account_id: Some(Some("acc_1".into())),
                template: Some(Some(TemplateRef {
                    name: "offer".into(),
                    language: "en".into(),
                })),
                ..Default::default()
            },
            now,
        )
        .unwrap();
        assert_eq!(c.status, CampaignStatus::Ready);
        c.edit(
            CampaignPatch {
                template: Some(None),
                ..Default::default()
            },
            now,
        )
        .unwrap();
        assert_eq!(c.status, CampaignStatus::Draft);
    }

    #[test]
    fn r1_3_lifecycle_ready_running_paused_running_completed() {
        let now = Utc::now();
        let mut c = Campaign::create("t", complete_input(), now).unwrap();
        assert_eq!(c.status, CampaignStatus::Ready);
        assert_eq!(c.launch(now).unwrap(), Launched::Running);
        c.pause(None, now).unwrap();
        assert_eq!(c.status, CampaignStatus::Paused);
        c.resume(now).unwrap();
        c.complete(now).unwrap();
        assert_eq!(c.status, CampaignStatus::Completed);
    }

    #[test]
    fn r1_3_start_date_in_future_schedules_then_starts() {
        let now = Utc::now();
        let at = now + Duration::hours(2);
        let mut c = Campaign::create(
            "t",
            NewCampaign {
                start_at: Some(at),
                ..complete_input()
            },
            now,
        )
        .unwrap();
        assert_eq!(c.launch(now).unwrap(), Launched::Scheduled(at));
        assert!(
            c.pause(None, now).is_err(),
            "a scheduled campaign is not running"
        );
        assert!(
            matches!(c.start(now), Err(DomainError::Conflict(_))),
            "a stale schedule cannot start it early"
        );
        c.start(at).unwrap();
        assert_eq!(c.status, CampaignStatus::Running);
    }

    #[test]
    fn r1_3_reschedule_and_unschedule_a_scheduled_campaign() {
        let now = Utc::now();
        let at = now + Duration::hours(2);
        let mut c = create(NewCampaign {
            start_at: Some(at),
            ..complete_input()
        })
        .unwrap();
        c.launch(now).unwrap();
        let later = at + Duration::days(1);
        let e = c
            .edit(
                CampaignPatch {
                    start_at: Some(Some(later)),
                    ..Default::default()
                },
                now,
            )
            .unwrap();
        assert_eq!(e.rescheduled, Some(later));
        assert_eq!(
            (c.status, c.start_at),
            (CampaignStatus::Scheduled, Some(later))
        );
        let past = CampaignPatch {
            start_at: Some(Some(now - Duration::minutes(1))),
            ..Default::default()
        };
        assert_eq!(field_of(c.edit(past, now)), "start_at");
        c.unschedule(now).unwrap();
        assert_eq!(c.status, CampaignStatus::Ready);
        assert!(matches!(c.unschedule(now), Err(DomainError::Conflict(_))));
    }

    #[test]
    fn r1_3_illegal_transitions_are_conflicts_not_no_ops() {
        let now = Utc::now();
        let mut c = Campaign::create("t", complete_input(), now).unwrap();
        assert!(matches!(c.resume(now), Err(DomainError::Conflict(_))));
        assert!(matches!(c.pause(None, now), Err(DomainError::Conflict(_))));
        assert!(matches!(c.complete(now), Err(DomainError::Conflict(_))));
        assert!(matches!(c.unschedule(now), Err(DomainError::Conflict(_))));
        c.launch(now).unwrap();
        assert!(matches!(c.launch(now), Err(DomainError::Conflict(_))));
        assert!(matches!(c.start(now), Err(DomainError::Conflict(_))));
        c.complete(now).unwrap();
        assert!(matches!(
            c.accepts_audience(),
            Err(DomainError::Conflict(_))
        ));
        assert!(matches!(c.cancel(now), Err(DomainError::Conflict(_))));
        let mut d = Campaign::create("t", complete_input(), now).unwrap();
        d.cancel(now).unwrap();
        for r in [d.launch(now).map(|_| ()), d.cancel(now), d.resume(now)] {
            assert!(matches!(r, Err(DomainError::Conflict(_))), "{r:?}");
        }
    }

    #[test]
    fn r1_3_every_channel_launches_once_complete() {
        let now = Utc::now();
        let mut c = create(NewCampaign {
            channel: Some(Channel::Sms),
            message: Some("Hi!".into()),
            ..complete_input()
        })
        .unwrap();
        assert_eq!(c.status, CampaignStatus::Ready);
        assert_eq!(c.launch(now).unwrap(), Launched::Running);
        let v = create(NewCampaign {
            channel: Some(Channel::Voice),
            ..complete_input()
        })
        .unwrap();
        assert_eq!(v.status, CampaignStatus::Draft);
        assert_eq!(v.missing_fields(), ["voice"]);
        let settings: VoiceSettings = serde_json::from_value(serde_json::json!({
            "caller_id": "+15550100100", "queue_id": "q-1", "contact_flow_id": "f-1"
        }))
        .unwrap();
        let mut v = create(NewCampaign {
            channel: Some(Channel::Voice),
            voice: Some(settings.clone()),
            ..complete_input()
        })
        .unwrap();
        assert_eq!(v.status, CampaignStatus::Ready);
        assert_eq!(v.launch(now).unwrap(), Launched::Running);
        // Call settings on another channel are refused naming the field.
        let err = create(NewCampaign {
            voice: Some(settings),
            ..complete_input()
        })
        .unwrap_err();
        assert!(matches!(err, DomainError::Invalid { field, .. } if field == "voice"));
    }

    #[test]
    fn r1_2_settings_are_validated_naming_the_field() {
        let bad_rate = create(NewCampaign {
            rate: Some(0),
            ..complete_input()
        });
        assert_eq!(field_of(bad_rate), "rate");
        let bad_timeout = create(NewCampaign {
            response_timeout_days: Some(0),
            ..complete_input()
        });
        assert_eq!(field_of(bad_timeout), "response_timeout_days");
        let no_name = create(NewCampaign {
            name: None,
            ..complete_input()
        });
        assert_eq!(field_of(no_name), "name");
        for w in [0, 8] {
            let bad = create(NewCampaign {
                duplicate_window_days: Some(w),
                ..complete_input()
            });
            assert_eq!(field_of(bad), "duplicate_window_days");
        }
        let ok = create(NewCampaign {
            duplicate_window_days: Some(7),
            ..complete_input()
        })
        .unwrap();
        assert_eq!(ok.duplicate_window_days, Some(7));
        let bad_pacing = create(NewCampaign {
            pacing: Some(Pacing {
                unit: PacingUnit::ContactsPerHour,
                value: 0,
            }),
            ..complete_input()
        });
        assert_eq!(field_of(bad_pacing), "pacing.value");
        let both = create(NewCampaign {
            rate: Some(5),
            pacing: Some(Pacing::per_second(5)),
            ..complete_input()
        });
        assert_eq!(field_of(both), "pacing");
        let bad_tz = create(NewCampaign {
            display_timezone: Some("Europe/Atlantis".into()),
            ..complete_input()
        });
        assert_eq!(field_of(bad_tz), "display_timezone");
    }

    #[test]
    fn r1_2_defaults_are_off_and_twenty_per_second() {
        let c = create(complete_input()).unwrap();
        assert_eq!(c.pacing, Pacing::per_second(DEFAULT_RATE));
        assert!(!c.include_active_interactions && !c.close_on_quick_reply);
        assert_eq!(c.duplicate_window_days, None);
        assert_eq!(c.response_timeout_days, 1);
    }

    #[test]
    fn r1_2_end_date_must_follow_start_date() {
        let now = Utc::now();
        let start = now + Duration::days(1);
        let before = create(NewCampaign {
            start_at: Some(start),
            end_at: Some(start - Duration::hours(1)),
            ..complete_input()
        });
        assert_eq!(field_of(before), "end_at");
        let past = create(NewCampaign {
            end_at: Some(now - Duration::hours(1)),
            ..complete_input()
        });
        assert_eq!(field_of(past), "end_at");
        let ok = create(NewCampaign {
            start_at: Some(start),
            end_at: Some(start + Duration::hours(1)),
            ..complete_input()
        })
        .unwrap();
        assert!(ok.end_at > ok.start_at);
    }

    #[test]
    fn r1_2_calling_hours_are_validated_and_tell_inside_from_outside() {
        let hours = |s: &str, e: &str, tz: &str| CallingHours {
            recipient_timezone: false,
            start: s.into(),
            end: e.into(),
            timezone: tz.into(),
        };
        for (h, field) in [
            (hours("9:00", "18:00", "UTC"), "calling_hours.start"),
            (hours("09:00", "24:00", "UTC"), "calling_hours.end"),
            (hours("09:00", "09:00", "UTC"), "calling_hours.end"),
            (
                hours("09:00", "18:00", "Nowhere/City"),
                "calling_hours.timezone",
            ),
        ] {
            let r = create(NewCampaign {
                calling_hours: Some(h),
                ..complete_input()
            });
            assert_eq!(field_of(r), field);
        }
        let day = hours("09:00", "18:00", "Asia/Kolkata");
        day.validate("calling_hours").unwrap();
        // 04:00 UTC is 09:30 in India; 13:00 UTC is 18:30.
        let at = |h, m| Utc.with_ymd_and_hms(2026, 11, 21, h, m, 0).unwrap();
        assert!(day.allows(at(4, 0)));
        assert!(!day.allows(at(13, 0)));
        let night = hours("22:00", "06:00", "UTC");
        assert!(night.allows(at(23, 0)) && night.allows(at(5, 59)));
        assert!(!night.allows(at(6, 0)) && !night.allows(at(12, 0)));
    }

    #[test]
    fn r1_2_pacing_is_an_exact_fraction_per_second() {
        assert_eq!(Pacing::per_second(20).rate_fraction(), (20, 1));
        let slow = Pacing {
            unit: PacingUnit::ContactsPerHour,
            value: 30,
        };
        assert_eq!(slow.rate_fraction(), (30, 3600));
        let interval = Pacing {
            unit: PacingUnit::MinIntervalSeconds,
            value: 90,
        };
        assert_eq!(interval.rate_fraction(), (1, 90));
        let json: Pacing =
            serde_json::from_str(r#"{"unit": "min_interval_seconds", "value": 90}"#).unwrap();
        assert_eq!(json, interval);
    }

    #[test]
    fn r1_4_running_campaign_cannot_change_template() {
        let now = Utc::now();
        let mut c = create(complete_input()).unwrap();
        c.launch(now).unwrap();
        let change = CampaignPatch {
            template: Some(Some(TemplateRef {
                name: "other".into(),
                language: "en".into(),
            })),
            ..Default::default()
        };
        let err = c.edit(change.clone(), now).unwrap_err();
        assert!(
            matches!(&err, DomainError::Conflict(m) if m.contains("template") && m.contains("RUNNING")),
            "{err}"
        );
        let rename = CampaignPatch {
            name: Some("x".into()),
            ..Default::default()
        };
        assert!(matches!(c.edit(rename, now), Err(DomainError::Conflict(_))));
        // PAUSED may change it: that is how a campaign recovers from a paused template.
        c.pause(None, now).unwrap();
        c.edit(change, now).unwrap();
        assert_eq!(c.template.as_ref().unwrap().name, "other");
        // ...but not lose it, nor change channel.
        let drop = CampaignPatch {
            template: Some(None),
            ..Default::default()
        };
        assert_eq!(field_of(c.edit(drop, now)), "template");
        let sms = CampaignPatch {
            channel: Some(Channel::Sms),
            ..Default::default()
        };
        assert!(matches!(c.edit(sms, now), Err(DomainError::Conflict(_))));
    }

    #[test]
    fn r1_4_stale_version_is_a_conflict() {
        let now = Utc::now();
        let mut c = create(complete_input()).unwrap();
        c.version = 4;
        let stale = CampaignPatch {
            notes: Some(Some("x".into())),
            version: Some(3),
            ..Default::default()
        };
        assert!(
            matches!(c.edit(stale, now), Err(DomainError::Conflict(m)) if m.contains("version"))
        );
    }

    #[test]
    fn r1_5_cancelled_and_deleting_campaigns_refuse_everything() {
        let now = Utc::now();
        let mut c = create(complete_input()).unwrap();
        c.mark_deleting(now).unwrap();
        assert!(matches!(c.launch(now), Err(DomainError::NotFound { .. })));
        assert!(matches!(
            c.accepts_audience(),
            Err(DomainError::NotFound { .. })
        ));
        assert!(matches!(
            c.mark_deleting(now),
            Err(DomainError::NotFound { .. })
        ));
        let mut d = create(complete_input()).unwrap();
        d.cancel(now).unwrap();
        assert_eq!(d.cancelled_at, Some(now));
        assert!(matches!(
            d.edit(CampaignPatch::default(), now),
            Err(DomainError::Conflict(_))
        ));
    }

    #[test]
    fn r1_6_test_copy_keeps_settings_and_runs_at_once() {
        let now = Utc::now();
        let c = create(NewCampaign {
            start_at: Some(now + Duration::days(3)),
            duplicate_window_days: Some(2),
            ..complete_input()
        })
        .unwrap();
        let t = c.test_copy(now).unwrap();
        assert_ne!(t.id, c.id);
        assert_eq!(t.test_of.as_deref(), Some(c.id.as_str()));
        assert_eq!((t.status, t.start_at), (CampaignStatus::Running, None));
        assert_eq!(
            (t.template.clone(), t.duplicate_window_days),
            (c.template.clone(), Some(2))
        );
        assert!(matches!(t_of_t(&c, now), Err(DomainError::Conflict(_))));
        assert!(matches!(
            t.accepts_audience(),
            Err(DomainError::Conflict(_))
        ));
    }

    fn t_of_t(c: &Campaign, now: Time) -> Result<Campaign, DomainError> {
        c.test_copy(now)?.test_copy(now)
    }

    #[test]
    fn r4_9_retry_and_reset_follow_the_lifecycle_and_the_end_date() {
        let now = Utc::now();
        let mut c = create(NewCampaign {
            end_at: Some(now + Duration::days(2)),
            ..complete_input()
        })
        .unwrap();
        assert!(
            matches!(c.retry(now), Err(DomainError::Conflict(_))),
            "READY"
        );
        c.launch(now).unwrap();
        c.retry(now).unwrap();
        assert_eq!(c.status, CampaignStatus::Running);
        let err = c.reset(now).unwrap_err();
        assert!(matches!(&err, DomainError::Conflict(m) if m.contains("pause it first")));
        c.complete(now).unwrap();
        c.retry(now).unwrap();
        assert_eq!(
            (c.status, c.completed_at),
            (CampaignStatus::Running, None),
            "a retry reopens a COMPLETED campaign"
        );
        c.complete(now).unwrap();
        c.reset(now).unwrap();
        assert_eq!(
            c.status,
            CampaignStatus::Paused,
            "a reset reopens it paused"
        );
        c.retry(now).unwrap();
        assert_eq!(c.status, CampaignStatus::Paused, "PAUSED stays PAUSED");
        let later = now + Duration::days(3);
        let err = c.retry(later).unwrap_err();
        assert!(matches!(&err, DomainError::Conflict(m) if m.contains("end date has passed")));
        assert!(c.reset(later).is_err());
        assert!(c.complete_at_end(now).is_err(), "not before the end date");
        c.complete_at_end(later).unwrap();
        assert_eq!(c.status, CampaignStatus::Completed);
        assert!(c.reopen(later).is_err());
        let mut x = create(complete_input()).unwrap();
        x.cancel(now).unwrap();
        assert!(x.reset(now).is_err() && x.retry(now).is_err());
    }
}
