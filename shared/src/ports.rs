//! What the domain needs from the world. Each port has an AWS adapter and an in-memory
//! twin in `crate::adapters`; the twins keep the same semantics so tests on one hold for
//! the other (the table contract tests run against both).

use crate::domain::account::Account;
use crate::domain::events::DomainEvent;
use crate::domain::outcome::SendFailure;
use crate::domain::phone::PhoneNumber;
use crate::domain::Time;
use async_trait::async_trait;
use serde::{Deserialize, Serialize};
use serde_json::{Map, Value};
use thiserror::Error;

#[derive(Debug, Error, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub enum PortError {
    /// A conditional write found the item in another state (DynamoDB
    /// ConditionalCheckFailed). Callers reload and ask the domain again.
    #[error("condition failed")]
    ConditionFailed,
    /// A query's cursor is not one this table gave out for that query (malformed, or
    /// another partition's): the caller's mistake, never worth retrying.
    #[error("bad cursor: {0}")]
    BadCursor(String),
    /// The backend failed; the operation may be retried.
    #[error("backend: {0}")]
    Backend(String),
    /// The backend refused for good (a secret that does not exist or may not be read, a
    /// reference it cannot serve): retrying will not help.
    #[error("refused: {0}")]
    Refused(String),
}

pub type PortResult<T> = Result<T, PortError>;

/// One item of the single table: a JSON object whose key attributes are strings named
/// `PK`, `SK` and, when the item is in an index, `GSI1PK`/`GSI1SK` or `GSI2PK`/`GSI2SK`.
/// Numbers are JSON numbers, absent values are left out (never null).
pub type Item = Map<String, Value>;

/// Condition on a put.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub enum Cond {
    /// Unconditional.
    None,
    /// No item with this key exists (`attribute_not_exists(PK)`).
    NotExists,
    /// The stored item exists and its attribute equals the value (`#a = :v`).
    Eq(String, Value),
}

impl Cond {
    /// Whether a put may replace `stored` (what DynamoDB's condition evaluates; the
    /// in-memory twins use it).
    pub fn holds(&self, stored: Option<&Item>) -> bool {
        match self {
            Cond::None => true,
            Cond::NotExists => stored.is_none(),
            Cond::Eq(attr, v) => stored.and_then(|s| s.get(attr)) == Some(v),
        }
    }
}

/// Which key a query reads.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
pub enum Index {
    /// `PK` / `SK`.
    Primary,
    /// `GSI1PK` / `GSI1SK`, sparse.
    Gsi1,
    /// `GSI2PK` / `GSI2SK`, sparse.
    Gsi2,
}

/// Condition on the sort key of a query. Sort keys compare as strings (byte order).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub enum SkCond {
    Any,
    BeginsWith(String),
    /// Sort key <= value.
    Lte(String),
    /// Sort key > value.
    Gt(String),
}

impl SkCond {
    /// Whether `sk` satisfies the condition (what DynamoDB's key condition evaluates; the
    /// in-memory twins use it).
    pub fn matches(&self, sk: &str) -> bool {
        match self {
            SkCond::Any => true,
            SkCond::BeginsWith(p) => sk.starts_with(p.as_str()),
            SkCond::Lte(v) => sk <= v.as_str(),
            SkCond::Gt(v) => sk > v.as_str(),
        }
    }

    /// Whether no sort key after `sk` (in byte order) can match: a walk of a partition in
    /// key order may stop.
    pub fn is_past(&self, sk: &str) -> bool {
        match self {
            SkCond::Any | SkCond::Gt(_) => false,
            // Keys with a prefix are contiguous; one above the prefix without it is past them.
            SkCond::BeginsWith(p) => sk > p.as_str() && !sk.starts_with(p.as_str()),
            SkCond::Lte(v) => sk > v.as_str(),
        }
    }
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Query {
    pub index: Index,
    pub pk: String,
    pub sk: SkCond,
    /// At most this many items in the page (the backend may return fewer and a cursor).
    pub limit: Option<u32>,
    /// Opaque cursor from a previous page.
    pub cursor: Option<String>,
}

impl Query {
    pub fn new(index: Index, pk: impl Into<String>, sk: SkCond) -> Self {
        Query {
            index,
            pk: pk.into(),
            sk,
            limit: None,
            cursor: None,
        }
    }
    pub fn limit(mut self, n: u32) -> Self {
        self.limit = Some(n);
        self
    }
    pub fn cursor(mut self, c: Option<String>) -> Self {
        self.cursor = c;
        self
    }
}

#[derive(Debug, Clone, PartialEq, Default, Serialize, Deserialize)]
pub struct Page {
    /// Items in ascending sort-key order (ties in an index broken by primary key).
    pub items: Vec<Item>,
    /// Present when more items may follow: pass it back in `Query::cursor`.
    pub cursor: Option<String>,
}

/// The single DynamoDB table, reduced to what the repositories use.
#[async_trait]
pub trait Table: Send + Sync {
    async fn get(&self, pk: &str, sk: &str) -> PortResult<Option<Item>>;
    /// Writes the whole item (replacing any stored one) if `cond` holds, else
    /// `PortError::ConditionFailed`. Index attributes absent from the item leave the index.
    async fn put(&self, item: Item, cond: Cond) -> PortResult<()>;
    async fn delete(&self, pk: &str, sk: &str) -> PortResult<()>;
    /// Deletes every item whose (PK, SK) is listed, unconditionally; missing items and
    /// repeated keys are fine. DynamoDB does it 25 keys per BatchWriteItem call, retrying
    /// unprocessed keys; an error means some keys may remain (calling again is safe).
    /// The default deletes one key at a time (for test doubles).
    async fn delete_many(&self, keys: &[(String, String)]) -> PortResult<()> {
        for (pk, sk) in keys {
            self.delete(pk, sk).await?;
        }
        Ok(())
    }
    async fn query(&self, q: &Query) -> PortResult<Page>;
    /// Atomically adds each delta to a numeric attribute (missing counts as 0), creating
    /// the item if needed; returns the item after the change.
    async fn add(&self, pk: &str, sk: &str, deltas: &[(String, i64)]) -> PortResult<Item>;
}

/// A message for the send queue, delivered no earlier than `delay_secs` (0..=900).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct OutMessage {
    pub body: String,
    pub delay_secs: u32,
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Received {
    pub id: String,
    pub receipt: String,
    pub body: String,
}

#[async_trait]
pub trait Queue: Send + Sync {
    /// Sends in batches of at most ten, as SQS does.
    async fn send(&self, msgs: Vec<OutMessage>) -> PortResult<()>;
    /// Receives up to `max` (<= 10) visible messages and hides them for the visibility
    /// timeout. Lambda's event source mapping does this in AWS; the local runner and the
    /// tests call it themselves.
    async fn receive(&self, max: u32) -> PortResult<Vec<Received>>;
    async fn delete(&self, receipt: &str) -> PortResult<()>;
}

/// A one-time schedule that invokes the launcher with `payload` at `at`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct OneTimeSchedule {
    /// Unique per campaign; putting the same name again replaces the schedule.
    pub name: String,
    pub at: Time,
    /// JSON the launcher receives as its event.
    pub payload: String,
}

#[async_trait]
pub trait Scheduler: Send + Sync {
    async fn put(&self, s: OneTimeSchedule) -> PortResult<()>;
    /// Deleting a schedule that does not exist is not an error.
    async fn delete(&self, name: &str) -> PortResult<()>;
}

#[async_trait]
pub trait EventBus: Send + Sync {
    async fn publish(&self, events: &[DomainEvent]) -> PortResult<()>;
}

/// A template message to one contact.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct OutboundTemplate {
    pub to: PhoneNumber,
    pub template: String,
    pub language: String,
    /// Body parameters, `{{1}}` first.
    pub params: Vec<String>,
    /// Payload of each quick-reply button, in order; it comes back with a tap.
    pub quick_reply_payloads: Vec<String>,
    /// Echoed by the provider on status webhooks (Meta `biz_opaque_callback_data`).
    pub callback_data: String,
    /// The template's media header, sent as the header parameter.
    pub header: Option<crate::domain::template::MediaHeader>,
    /// The end of the URL button's link for this contact, when the link has a variable.
    pub url_suffix: Option<crate::domain::template::UrlSuffix>,
    /// Through Meta's Marketing Messages API (`Template::routes_to_marketing_messages`).
    /// Its request takes no callback data, so the message's statuses find their entry by
    /// the contact's interaction, which names the message id.
    pub marketing_messages: bool,
}

/// An SMS to one contact: the message filled for it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct OutboundSms {
    pub to: PhoneNumber,
    pub body: String,
    /// Parts the body takes (what the provider bills and paces).
    pub segments: u32,
    /// The entry and attempt ([`crate::domain::inbound::EntryRef::encode_attempt`]); Twilio
    /// gets it back in the status callback's URL.
    pub callback_data: String,
}

/// A voice call to one contact (Amazon Connect's `StartOutboundVoiceContact`).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct OutboundCall {
    pub to: PhoneNumber,
    /// The number the call comes from (E.164), one the account claimed.
    pub caller_id: String,
    pub contact_flow_id: String,
    pub queue_id: String,
    /// The same for every start of the same attempt: the provider starts one call per
    /// token ([`crate::domain::voice::client_token`]).
    pub client_token: String,
    /// Contact attributes the flow reads (`campaign_id`, `amd_action`,
    /// `voicemail_message`, `voicemail_flow_id`); never a phone number.
    pub attributes: std::collections::BTreeMap<String, String>,
    /// Answering-machine detection, and whether to wait for the machine's beep (to leave
    /// a voicemail).
    pub amd: Option<AmdConfig>,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct AmdConfig {
    pub await_prompt: bool,
}

/// A message the provider took.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Accepted {
    pub message_id: String,
    /// What Meta said of it on the answer (`message_status`, Graph API v24+):
    /// `accepted`, `held_for_quality_assessment` (Meta holds it while it judges its
    /// quality) or `paused`; none when the provider says nothing.
    pub message_status: Option<String>,
}

impl From<String> for Accepted {
    fn from(message_id: String) -> Self {
        Accepted {
            message_id,
            message_status: None,
        }
    }
}

#[async_trait]
pub trait MessagingProvider: Send + Sync {
    /// The message the provider took, or the classified failure.
    async fn send(
        &self,
        account: &Account,
        msg: &OutboundTemplate,
    ) -> Result<Accepted, SendFailure>;

    /// Sends an SMS; a provider that sends none refuses it as the campaign's failure (a
    /// campaign on a WhatsApp account is refused before launch, so this is a fault).
    async fn send_sms(
        &self,
        account: &Account,
        msg: &OutboundSms,
    ) -> Result<Accepted, SendFailure> {
        let _ = msg;
        Err(SendFailure {
            class: crate::domain::outcome::FailureClass::Campaign,
            code: None,
            reason: format!("a {} account sends no SMS", account.provider.as_str()),
        })
    }

    /// Starts a voice call; the answer's message id is the provider's contact id. A
    /// provider that places no calls refuses it as the campaign's failure.
    async fn start_call(
        &self,
        account: &Account,
        call: &OutboundCall,
    ) -> Result<Accepted, SendFailure> {
        let _ = call;
        Err(SendFailure {
            class: crate::domain::outcome::FailureClass::Campaign,
            code: None,
            reason: format!("a {} account places no calls", account.provider.as_str()),
        })
    }
}

/// Resolves credential references (`secretsmanager:NAME`, `ssm:NAME`, `env:VAR`).
#[async_trait]
pub trait Secrets: Send + Sync {
    async fn resolve(&self, reference: &str) -> PortResult<String>;
}

pub trait Clock: Send + Sync {
    fn now(&self) -> Time;
}

/// A provider's list of one business account's templates, a page at a time (R3.4).
#[async_trait]
pub trait TemplateSource: Send + Sync {
    /// One page of the templates of business account `waba_id` (Meta: the WABA), read
    /// with `account`'s credentials; `after` is the previous page's cursor.
    async fn list_templates(
        &self,
        account: &Account,
        waba_id: &str,
        after: Option<&str>,
    ) -> Result<
        crate::domain::template::ProviderTemplatePage,
        crate::domain::template::TemplateListError,
    >;

    /// The messaging limit tier the provider reports for `account`'s number (Meta:
    /// `TIER_2K`, ...); `None` when the provider has no such notion.
    async fn messaging_limit_tier(
        &self,
        _account: &Account,
    ) -> Result<Option<String>, crate::domain::template::TemplateListError> {
        Ok(None)
    }
}

/// The bytes of an object, chunk by chunk, as they arrive.
pub type ByteChunks = futures::stream::BoxStream<'static, PortResult<bytes::Bytes>>;

/// Object storage for uploaded files (S3 in AWS). Large CSV imports are uploaded straight
/// to it through a presigned URL and read back as a stream, from an offset when an import
/// continues in a later invocation (R2.4).
#[async_trait]
pub trait ObjectStore: Send + Sync {
    /// A URL that accepts one HTTP `PUT` of the object at `key` with this content type
    /// until `expires_in` has passed.
    async fn presign_put(
        &self,
        key: &str,
        content_type: &str,
        expires_in: std::time::Duration,
    ) -> PortResult<String>;
    /// Stores an object (tests, local uploads, small files).
    async fn put(&self, key: &str, body: bytes::Bytes, content_type: &str) -> PortResult<()>;
    /// The object's bytes from `offset` to the end, streamed (an offset at or past the end
    /// gives an empty stream); `None` when there is no such object.
    async fn get_from(&self, key: &str, offset: u64) -> PortResult<Option<ByteChunks>>;
    /// Deleting a missing object is not an error.
    async fn delete(&self, key: &str) -> PortResult<()>;
}
