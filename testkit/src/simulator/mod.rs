//! A WhatsApp Cloud API simulator on loopback, for tests and the local demo.
//!
//! It answers `POST /{version}/{phone_number_id}/messages` (and the Marketing Messages API's
//! `.../marketing_messages`, held to its own schema) like Meta does (bearer token,
//! Meta-shaped errors, `wamid.SIM<n>` ids), then posts signed webhooks back to the
//! configured URL: `sent`, `delivered`, `read` and, for a deterministic share of the
//! contacts, a reply (a quick-reply tap when the template had quick-reply buttons, else a
//! text). Control routes show what it received and sent back, and post replies on demand:
//!
//! - `GET  /sim/messages`  the template sends it accepted ([`SentRecord`]s with the tenant
//!   and campaign their callback data names; `?tenant=&campaign=&phone=&limit=&cursor=`)
//! - `GET  /sim/webhooks`  the webhooks it posted ([`WebhookRecord`]s, with the answer)
//! - `POST /sim/reply`     `{"phone":"..","text":".."}` or `{"phone":"..","button":"PAYLOAD"}`,
//!   optional `"context_id"` (default: the last wamid sent to that phone; `""` for none)
//!   and `"phone_number_id"`
//!
//! It also lists message templates like Meta's `GET /{version}/{waba_id}/message_templates`
//! (bearer token, `limit` and `after` cursors, a `paging.next` link while more follow), from
//! what [`Simulator::set_templates`] gave it.
//!
//! It also answers Kaleyra's v2 send API, `POST /v2/{sid}/whatsapp/{from}/messages` (header
//! `api-key` must equal [`SimConfig::kaleyra_api_key`]; body `{"messaging_object": <Cloud
//! API message>, "extra_info": {"ref": ..}}`; answers `{"code":"WA200","data":[{
//! "message_id":"wamid.SIM<n>",..}]}` or Kaleyra-coded errors: `RBC001` for a wrong key,
//! `E413` for numbers in [`SimConfig::kaleyra_invalid_numbers`], `WA400` for a bad
//! payload). Kaleyra sends are recorded in the same [`Simulator::sent`] list with
//! [`SimProvider::Kaleyra`], and their v2-shaped status callbacks (sent, delivered, read;
//! no automatic replies) go unsigned to [`SimConfig::kaleyra_callback_url`] (put the shared
//! token in that URL's query).
//!
//! **Throughput limit.** [`SimConfig::rate_limit_per_sec`] (default 80, Meta's default per
//! number; `None` for no limit; [`Simulator::set_rate_limit`] or `POST /sim/rate_limit`
//! `{"per_second": n | null}` at run time) caps the sends accepted per sender (Meta's
//! phone_number_id, Kaleyra's `<sid>:<from>`) in each whole second of the simulator's
//! [`Clock`], not of wall time, so tests on a `ManualClock` are deterministic. Beyond it
//! the Cloud API route answers HTTP 400 `{"error":{"message":"(#130429) Rate limit hit",
//! "type":"OAuthException","code":130429,"error_data":{..},"fbtrace_id":..}}` and the
//! Kaleyra route HTTP 429 with Meta's error passed through (`{"message":"(#130429) Rate
//! limit hit","data":[],"error":{"code":130429,..},"meta_object":{"error":<Meta's>}}`).
//! [`SimConfig::number_rate_limits`] gives chosen senders their own limit (an upgraded
//! number: 1,000/s). [`SimConfig::latency`] makes every send route answer after a
//! log-normal draw (median and 99th percentile given, e.g. [`Latency::CLOUD_API`]: 250 ms /
//! 1.5 s), real time even on a manual clock.
//! Refused sends are not in [`Simulator::sent`] but in [`Simulator::throttled`]
//! ([`ThrottleRecord`]s, `GET /sim/throttled`); [`Simulator::sent_per_second`] and
//! [`Simulator::throttled_per_second`] count by clock second for pacing tests.
//!
//! **Configured failures.** [`SimConfig::failures`] (keyed by the number's digits),
//! [`Simulator::set_failure`] / [`Simulator::clear_failures`], or `POST /sim/failures`
//! `{"phone":"9198..","kind":"permanent"|"temporary"|"campaign","code":131016?,
//! "kaleyra_code":"E110"?,"times":2?}` (`GET` lists them, `DELETE` clears all, `DELETE
//! ?phone=..` one) make every send to a number fail on both routes until cleared, or only
//! the next `times` sends. Checked after the throughput limit; failed sends are not
//! recorded and do not use the sender's budget. Defaults per [`SimFailureKind`], each
//! classified as its kind by `classify_meta` / `classify_kaleyra`:
//!
//! | kind | Cloud API (HTTP, code, message) | Kaleyra (HTTP, code) |
//! |---|---|---|
//! | permanent | 400, `131026`, `(#131026) Message undeliverable` | 400, `E413` |
//! | temporary | 500, `131000`, `(#131000) Something went wrong` | 500, `WA500` |
//! | campaign | 404, `132001`, `(#132001) Template name does not exist in the translation` | 401, `WA401` |
//!
//! An explicit `code` (a Meta code) replaces the default on the Cloud API route and is
//! passed through inside `meta_object.error` on the Kaleyra route; `kaleyra_code` replaces
//! Kaleyra's code there. [`SimConfig::kaleyra_invalid_numbers`] still answer `E413` on the
//! Kaleyra route only.
//!
//! [`Simulator::router`] holds the Cloud API routes and [`Simulator::control_router`] the
//! control routes with paths relative to their mount point (`/messages`, `/webhooks`,
//! `/reply`, `/failures`, `/throttled`, `/rate_limit`); the simulator's own listener
//! serves the control routes under `/sim`, and another server can nest them elsewhere
//! (e.g. `/local/sim`).

mod aws_sms;
mod aws_social;
mod connect;
mod control;
mod direct;
mod failures;
mod send_api;
mod twilio;
mod webhooks;

pub use aws_sms::{SIM_AWS_PROTECT_CONFIGURATION, SIM_AWS_SMS_NUMBERS};
use aws_social::*;
pub use aws_social::{
    meta_phone_number_id, AwsEventSink, QueueEvents, SnsEvents, SIM_AWS_PHONE_NUMBER_IDS,
};
pub use connect::{
    CallRecord, SimCallOutcome, DIAL_TIMEOUT_SECS, SIM_CONNECT_CALLER_IDS, SIM_CONNECT_INSTANCE_IDS,
};
use control::*;
pub use direct::DirectMeta;
use failures::*;
pub use failures::{SimFailure, SimFailureKind};
use send_api::*;
pub use webhooks::will_reply;
use webhooks::*;

use axum::body::Bytes;
use axum::extract::{Path, State};
use axum::http::{HeaderMap, StatusCode};
use axum::response::{IntoResponse, Response};
use axum::routing::{get, post};
use axum::{Json, Router};
use serde::{Deserialize, Serialize};
use serde_json::{json, Value};
use shared::domain::phone::PhoneNumber;
use shared::domain::{stable_hash, Time};
use shared::ports::Clock;
use shared::providers::meta::{signature_header, SIGNATURE_HEADER};
use std::collections::{BTreeMap, HashMap};
use std::net::SocketAddr;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Duration;
use tokio::sync::watch;

/// The display number the simulated business number shows in webhooks.
pub const SIM_DISPLAY_PHONE_NUMBER: &str = "15550000000";
/// The WABA id the simulated webhooks carry.
pub const SIM_WABA_ID: &str = "100000000000001";
/// The phone_number_id used for replies when nothing was ever sent.
pub const SIM_DEFAULT_PHONE_NUMBER_ID: &str = "100000000000002";

#[derive(Debug, Clone)]
pub struct SimConfig {
    /// Signs the webhooks (`X-Hub-Signature-256`).
    pub app_secret: String,
    /// The bearer token the send API expects.
    pub access_token: String,
    /// Where webhooks go; none are posted while unset.
    pub webhook_url: Option<String>,
    /// Share of contacts (0..=100, chosen by a stable hash of the phone) that reply.
    pub reply_percent: u8,
    /// Text of automatic replies to templates without quick-reply buttons.
    pub reply_text: String,
    /// Pause before each webhook of a send (sent, delivered, read, reply).
    pub status_delay: Duration,
    /// When set, sends from any other phone_number_id fail with Meta error 100.
    pub phone_number_id_filter: Option<String>,
    /// The `api-key` Kaleyra's send API expects.
    pub kaleyra_api_key: String,
    /// Where Kaleyra status callbacks go (unsigned; carry the token in the query); none
    /// are posted while unset.
    pub kaleyra_callback_url: Option<String>,
    /// The deployment's Kaleyra callback secret. When set, each account's callbacks go to
    /// [`SimConfig::kaleyra_callback_url`] with `sid=<sid>&token=<its token>` added, as
    /// the URL a tenant registers for its Kaleyra account would.
    pub kaleyra_callback_secret: Option<String>,
    /// Numbers (digits) Kaleyra answers with `E413`, "'To' number invalid or WhatsApp
    /// account does not exist".
    pub kaleyra_invalid_numbers: Vec<String>,
    /// Accepted sends per sender (Meta: phone_number_id; Kaleyra: `<sid>:<from>`) per
    /// second of the simulator's clock; beyond it sends fail with Meta's `130429`
    /// (see [`Simulator::throttled`]). `None`: no limit. Default 80, Meta's default
    /// throughput per number.
    pub rate_limit_per_sec: Option<u32>,
    /// Numbers (digits, as [`PhoneNumber`] normalizes them) whose sends fail, on both the
    /// Meta and the Kaleyra route, until cleared ([`Simulator::set_failure`]).
    pub failures: HashMap<String, SimFailure>,
    /// The messaging limit tier Meta reports for every number
    /// (`whatsapp_business_manager_messaging_limit`, `GET /{version}/{phone_number_id}`).
    pub messaging_limit_tier: String,
    /// Senders with their own throughput limit instead of
    /// [`SimConfig::rate_limit_per_sec`]: numbers Meta upgraded (1,000/s,
    /// [`SIM_UPGRADED_RATE_LIMIT`]).
    pub number_rate_limits: HashMap<String, u32>,
    /// How long each send takes to answer (every provider route); `None`: at once.
    pub latency: Option<Latency>,
    /// The auth token of every Twilio account: the Basic-auth password of the Messages
    /// API and the key its callbacks are signed with.
    pub twilio_auth_token: String,
    /// Numbers (digits) whose SMS Twilio takes and then reports `undelivered`, with the
    /// `ErrorCode` its callback carries (30003 unreachable handset, 30034 an unregistered
    /// 10DLC number, 21610 the contact texted STOP...).
    pub twilio_undelivered: Vec<(String, i64)>,
    /// Numbers (digits) not on WhatsApp: Meta (and AWS, Kaleyra behind it) takes their
    /// message, reports it `sent`, then `failed` with 131026 "Message undeliverable".
    pub not_on_whatsapp: Vec<String>,
    /// Amazon Connect: what the callee of a number (digits) does with a call.
    pub call_outcomes: HashMap<String, SimCallOutcome>,
    /// Amazon Connect: the outcomes of other numbers, weighted, chosen by the number's
    /// hash (empty: every call answered by a person).
    pub call_mix: Vec<(SimCallOutcome, u8)>,
    /// Amazon Connect: seconds a call rings before it is answered.
    pub ring_seconds: i64,
    /// Amazon Connect: seconds an answered call lasts.
    pub call_seconds: i64,
    /// Amazon Connect: numbers (digits) whose calls' final event (`DISCONNECTED`) is
    /// never published.
    pub call_final_lost: Vec<String>,
    /// Amazon Connect: calls in progress at once per instance beyond which a start
    /// answers `LimitExceededException`; none: no limit.
    pub connect_concurrent_limit: Option<u32>,
}

/// The auth token of the simulator's Twilio accounts.
pub const SIM_TWILIO_AUTH_TOKEN: &str = "test-twilio-auth-token";
/// A Twilio account SID and number the simulator takes: `sender_id` of a Twilio account.
pub const SIM_TWILIO_SENDER: &str = "AC00000000000000000000000000000001:+15005550006";

/// Meta's throughput of an upgraded number: 1,000 messages/s.
pub const SIM_UPGRADED_RATE_LIMIT: u32 = 1000;

/// A provider's answer time: log-normal with the given median and 99th percentile, as
/// real API latencies are (a long right tail), capped at ten times the 99th percentile.
/// Draws are a deterministic function of their number, so a run repeats.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct Latency {
    pub p50: Duration,
    pub p99: Duration,
}

impl Latency {
    /// Meta's Cloud API as the capacity scenario assumes it: p50 250 ms, p99 1.5 s.
    pub const CLOUD_API: Latency = Latency {
        p50: Duration::from_millis(250),
        p99: Duration::from_millis(1500),
    };

    /// The `n`-th draw.
    pub fn sample(&self, n: u64) -> Duration {
        // z of the standard normal at p99.
        const Z99: f64 = 2.326_347_874;
        let median = self.p50.as_secs_f64().max(1e-6);
        let sigma = (self.p99.as_secs_f64().max(median) / median).ln() / Z99;
        // Box-Muller on two uniforms from splitmix64.
        let u1 = unit(splitmix64(n.wrapping_mul(2)));
        let u2 = unit(splitmix64(n.wrapping_mul(2).wrapping_add(1)));
        let z = (-2.0 * u1.ln()).sqrt() * (2.0 * std::f64::consts::PI * u2).cos();
        let secs = (median * (sigma * z).exp()).min(self.p99.as_secs_f64() * 10.0);
        Duration::from_secs_f64(secs)
    }
}

fn splitmix64(mut x: u64) -> u64 {
    x = x.wrapping_add(0x9e37_79b9_7f4a_7c15);
    x = (x ^ (x >> 30)).wrapping_mul(0xbf58_476d_1ce4_e5b9);
    x = (x ^ (x >> 27)).wrapping_mul(0x94d0_49bb_1331_11eb);
    x ^ (x >> 31)
}

/// A uniform in (0, 1].
fn unit(x: u64) -> f64 {
    ((x >> 11) as f64 + 1.0) / (1u64 << 53) as f64
}

/// The default throughput limit: Meta's 80 messages/s per registered number.
pub const SIM_DEFAULT_RATE_LIMIT: u32 = 80;
/// Meta's throughput error code (PROVIDERS.md sections 3 and 4).
pub const META_RATE_LIMIT_CODE: i64 = 130429;
/// Meta's message for [`META_RATE_LIMIT_CODE`], verbatim.
pub const META_RATE_LIMIT_MESSAGE: &str = "(#130429) Rate limit hit";

/// A send the simulator refused for going over [`SimConfig::rate_limit_per_sec`].
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct ThrottleRecord {
    pub provider: SimProvider,
    /// The sender whose limit was hit: Meta's phone_number_id, Kaleyra's `<sid>:<from>`.
    pub phone_number_id: String,
    /// `to` as the request gave it.
    pub to: String,
    /// The limit in force.
    pub limit: u32,
    pub at: Time,
}

impl Default for SimConfig {
    fn default() -> Self {
        SimConfig {
            app_secret: "test-app-secret".into(),
            access_token: "test-token".into(),
            webhook_url: None,
            reply_percent: 50,
            reply_text: "Yes please".into(),
            status_delay: Duration::ZERO,
            phone_number_id_filter: None,
            kaleyra_api_key: "test-kaleyra-key".into(),
            kaleyra_callback_url: None,
            kaleyra_callback_secret: None,
            kaleyra_invalid_numbers: Vec::new(),
            rate_limit_per_sec: Some(SIM_DEFAULT_RATE_LIMIT),
            failures: HashMap::new(),
            messaging_limit_tier: "TIER_2K".into(),
            number_rate_limits: HashMap::new(),
            latency: None,
            twilio_auth_token: SIM_TWILIO_AUTH_TOKEN.into(),
            twilio_undelivered: Vec::new(),
            not_on_whatsapp: Vec::new(),
            call_outcomes: HashMap::new(),
            call_mix: Vec::new(),
            ring_seconds: 5,
            call_seconds: 30,
            call_final_lost: Vec::new(),
            connect_concurrent_limit: None,
        }
    }
}

/// Which provider API a send came through.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum SimProvider {
    /// The Cloud API route.
    #[default]
    Meta,
    /// Kaleyra's v2 route.
    Kaleyra,
    /// AWS End User Messaging Social's `SendWhatsAppMessage`.
    #[serde(rename = "aws_social")]
    AwsSocial,
    /// Twilio's Messages API (SMS).
    Twilio,
    /// AWS End User Messaging SMS's `SendTextMessage`.
    #[serde(rename = "aws_sms")]
    AwsSms,
    /// Amazon Connect's `StartOutboundVoiceContact` (voice).
    Connect,
}

/// A template send the simulator accepted.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct SentRecord {
    pub wamid: String,
    /// Which API it came through.
    #[serde(default)]
    pub provider: SimProvider,
    /// Graph API version (Meta) or `v2` (Kaleyra).
    pub version: String,
    /// Meta: the phone_number_id; Kaleyra: `<sid>:<from>` as in the URL.
    pub phone_number_id: String,
    /// `to` as the request gave it.
    pub to: String,
    pub template: String,
    pub language: Option<String>,
    /// Body parameters, `{{1}}` first.
    pub params: Vec<String>,
    /// Quick-reply payloads in button order.
    pub quick_reply_payloads: Vec<String>,
    /// The text parameter of a URL button (the end of its link), when one was sent.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub url_suffix: Option<String>,
    pub callback_data: Option<String>,
    /// Came through Meta's Marketing Messages API (`.../marketing_messages`).
    #[serde(default, skip_serializing_if = "std::ops::Not::not")]
    pub marketing_messages: bool,
    /// Options of the request beyond the message (AWS End User Messaging SMS:
    /// `ConfigurationSetName`, `ProtectConfigurationId`).
    #[serde(default, skip_serializing_if = "BTreeMap::is_empty")]
    pub options: BTreeMap<String, String>,
    /// When the request arrived: the clock second its sender's throughput limit counted
    /// it in (before the answer time of [`SimConfig::latency`]).
    pub at: Time,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum WebhookKind {
    Sent,
    Delivered,
    Read,
    ReplyText,
    ReplyButton,
    /// An Amazon Connect contact event of a call.
    CallEvent,
}

/// A webhook the simulator posted (or tried to).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct WebhookRecord {
    pub kind: WebhookKind,
    /// The status's message id, or the inbound message's id for replies.
    pub message_id: String,
    /// The contact: recipient of the status, sender of the reply.
    pub phone: String,
    /// The exact body posted (what was signed).
    pub body: String,
    /// The HTTP status the receiver answered.
    pub answered: Option<u16>,
    /// Why there was no answer (connection refused, timeout, no URL).
    pub error: Option<String>,
    pub at: Time,
}

impl WebhookRecord {
    /// Answered with 2xx.
    pub fn accepted(&self) -> bool {
        self.answered.is_some_and(|s| (200..300).contains(&s))
    }
}

/// What a simulated customer answers.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum ReplyKind {
    /// A typed message.
    Text(String),
    /// A quick-reply tap with this payload (its text is the payload too).
    Button(String),
}

#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum SimError {
    #[error("no webhook URL configured")]
    NoWebhookUrl,
    #[error("invalid phone: {0}")]
    InvalidPhone(String),
    #[error("invalid request: {0}")]
    Invalid(String),
}

/// A template-list request the simulator answered.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct TemplateListRequest {
    pub waba_id: String,
    pub limit: Option<u32>,
    pub after: Option<String>,
}

/// Templates listed per page when neither the request nor the simulator says.
pub const SIM_TEMPLATE_PAGE: usize = 25;

#[derive(Default)]
struct State0 {
    sent: Vec<SentRecord>,
    webhooks: Vec<WebhookRecord>,
    /// Meta-shaped template objects the list route serves.
    templates: Vec<Value>,
    /// At most this many templates per page (0: as the request asks).
    template_page_size: usize,
    template_lists: Vec<TemplateListRequest>,
    /// Sends refused for the throughput limit.
    throttled: Vec<ThrottleRecord>,
    /// The throughput limit in force.
    rate_limit: Option<u32>,
    /// Per sender: the clock second counted and the sends accepted in it.
    windows: HashMap<String, (i64, u32)>,
    /// Per number (digits): its configured failure.
    failures: HashMap<String, SimFailure>,
    /// Per sender: its own throughput limit ([`SimConfig::number_rate_limits`]).
    number_limits: HashMap<String, u32>,
    /// Latency draws made so far.
    latency_draws: u64,
    /// Contacts (digits) that texted STOP to a Twilio number: sends answer 21610.
    twilio_opted_out: std::collections::HashSet<String>,
    /// Per Twilio sender (`<sid>:<from>`): its inbound URL, the status callback's path.
    twilio_inbound: HashMap<String, String>,
    /// Contacts (digits) on the simulated AWS account's SMS opt-out list.
    aws_sms_opted_out: std::collections::HashSet<String>,
    /// Calls started, oldest first.
    calls: Vec<CallRecord>,
    /// `instance|ClientToken` -> the contact it started.
    connect_tokens: HashMap<String, String>,
    /// Starts answered from a token seen before.
    connect_token_replays: usize,
    /// Contacts (digits) whose next call's answer is lost.
    connect_lost_answers: std::collections::HashSet<String>,
    /// Contacts (digits) whose next call is started and answered `LimitExceededException`.
    connect_started_refused: std::collections::HashSet<String>,
    /// Contacts (digits) whose next starts are refused with `LimitExceededException`, so
    /// many times each.
    connect_throttles: HashMap<String, u32>,
}

/// What becomes of a well-formed send.
enum Admission {
    Accept,
    Throttle(u32),
    Fail(SimFailure),
}

struct Inner {
    cfg: SimConfig,
    webhook_url: Mutex<Option<String>>,
    /// Where AWS End User Messaging Social events go; none are published while unset.
    aws_sink: Mutex<Option<Arc<dyn AwsEventSink>>>,
    clock: Arc<dyn Clock>,
    http: reqwest::Client,
    state: Mutex<State0>,
    out_seq: AtomicU64,
    in_seq: AtomicU64,
    /// Webhook tasks still running.
    pending: watch::Sender<usize>,
}

/// Aborts the simulator's own server when the last `Simulator` handle goes.
struct ServerGuard(tokio::task::AbortHandle);

impl Drop for ServerGuard {
    fn drop(&mut self) {
        self.0.abort();
    }
}

/// Decrements the pending count however a webhook task ends.
struct PendingGuard(Arc<Inner>);

impl PendingGuard {
    fn new(inner: &Arc<Inner>) -> Self {
        inner.pending.send_modify(|n| *n += 1);
        PendingGuard(inner.clone())
    }
}

impl Drop for PendingGuard {
    fn drop(&mut self) {
        self.0.pending.send_modify(|n| *n = n.saturating_sub(1));
    }
}

/// Handle on a running simulator; clones share it. The listener stops when the last
/// handle is dropped.
#[derive(Clone)]
pub struct Simulator {
    inner: Arc<Inner>,
    addr: SocketAddr,
    _server: Arc<ServerGuard>,
}

impl std::fmt::Debug for Simulator {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Simulator")
            .field("addr", &self.addr)
            .finish_non_exhaustive()
    }
}

impl Simulator {
    /// Binds 127.0.0.1 on a free port and serves in a tokio task.
    pub async fn start(cfg: SimConfig, clock: Arc<dyn Clock>) -> std::io::Result<Simulator> {
        Self::start_on(SocketAddr::from(([127, 0, 0, 1], 0)), cfg, clock).await
    }

    /// Like [`Simulator::start`] on a chosen address (the local demo's fixed port).
    pub async fn start_on(
        addr: SocketAddr,
        cfg: SimConfig,
        clock: Arc<dyn Clock>,
    ) -> std::io::Result<Simulator> {
        let http = reqwest::Client::builder()
            .connect_timeout(Duration::from_secs(3))
            .timeout(Duration::from_secs(10))
            .no_proxy()
            .build()
            .map_err(std::io::Error::other)?;
        let (pending, _) = watch::channel(0usize);
        let state = State0 {
            rate_limit: cfg.rate_limit_per_sec,
            number_limits: cfg.number_rate_limits.clone(),
            failures: cfg
                .failures
                .iter()
                .map(|(n, f)| (digits(n), f.clone()))
                .collect(),
            ..State0::default()
        };
        let inner = Arc::new(Inner {
            webhook_url: Mutex::new(cfg.webhook_url.clone()),
            aws_sink: Mutex::new(None),
            cfg,
            clock,
            http,
            state: Mutex::new(state),
            out_seq: AtomicU64::new(0),
            in_seq: AtomicU64::new(0),
            pending,
        });
        let listener = tokio::net::TcpListener::bind(addr).await?;
        let addr = listener.local_addr()?;
        let app = api_router(inner.clone()).nest("/sim", control_router(inner.clone()));
        let task = tokio::spawn(async move {
            if let Err(e) = axum::serve(listener, app).await {
                tracing::error!(error = %e, "simulator server stopped");
            }
        });
        tracing::info!(%addr, "whatsapp simulator listening");
        Ok(Simulator {
            inner,
            addr,
            _server: Arc::new(ServerGuard(task.abort_handle())),
        })
    }

    /// `http://127.0.0.1:<port>`: the `base_url` for `MetaProvider`.
    /// Meta's template send of this simulator in process, without HTTP ([`DirectMeta`]).
    pub fn direct_meta(&self) -> DirectMeta {
        DirectMeta(self.inner.clone())
    }

    pub fn base_url(&self) -> String {
        format!("http://{}", self.addr)
    }

    pub fn addr(&self) -> SocketAddr {
        self.addr
    }

    pub fn config(&self) -> &SimConfig {
        &self.inner.cfg
    }

    pub fn webhook_url(&self) -> Option<String> {
        self.inner.webhook_url.lock().unwrap().clone()
    }

    pub fn set_webhook_url(&self, url: impl Into<String>) {
        *self.inner.webhook_url.lock().unwrap() = Some(url.into());
    }

    pub fn clear_webhook_url(&self) {
        *self.inner.webhook_url.lock().unwrap() = None;
    }

    /// Publishes the events of sends made through AWS End User Messaging Social (and the
    /// replies to them) on `sink`, as AWS does on the WABA's SNS topic.
    pub fn set_aws_event_sink(&self, sink: Arc<dyn AwsEventSink>) {
        *self.inner.aws_sink.lock().unwrap() = Some(sink);
    }

    /// The Cloud API route alone (`POST /{version}/{phone_number_id}/messages`).
    pub fn router(&self) -> Router {
        api_router(self.inner.clone())
    }

    /// The control routes relative to where they are mounted: `GET /messages`,
    /// `GET /webhooks`, `POST /reply`, `GET|POST|DELETE /failures`, `GET /throttled`,
    /// `GET|POST /rate_limit`.
    pub fn control_router(&self) -> Router {
        control_router(self.inner.clone())
    }

    /// Sends accepted so far, oldest first.
    pub fn sent(&self) -> Vec<SentRecord> {
        self.inner.state.lock().unwrap().sent.clone()
    }

    /// Webhooks posted so far, in the order they were answered.
    pub fn webhooks(&self) -> Vec<WebhookRecord> {
        self.inner.state.lock().unwrap().webhooks.clone()
    }

    /// The templates the list route serves (Meta-shaped objects: `name`, `language`,
    /// `status`, `category`, `id`, `quality_score`, `components`), at most `page_size` a
    /// page (0: as many as the request's `limit`).
    pub fn set_templates(&self, templates: Vec<Value>, page_size: usize) {
        let mut st = self.inner.state.lock().unwrap();
        st.templates = templates;
        st.template_page_size = page_size;
    }

    /// Template-list requests answered so far, oldest first.
    pub fn template_list_requests(&self) -> Vec<TemplateListRequest> {
        self.inner.state.lock().unwrap().template_lists.clone()
    }

    /// The throughput limit in force (starts as [`SimConfig::rate_limit_per_sec`]).
    pub fn rate_limit(&self) -> Option<u32> {
        self.inner.state.lock().unwrap().rate_limit
    }

    /// Changes the throughput limit from the next send on; `None` lifts it.
    pub fn set_rate_limit(&self, per_second: Option<u32>) {
        self.inner.state.lock().unwrap().rate_limit = per_second;
    }

    /// Sends refused for the throughput limit, oldest first (not in [`Simulator::sent`]).
    pub fn throttled(&self) -> Vec<ThrottleRecord> {
        self.inner.state.lock().unwrap().throttled.clone()
    }

    /// Accepted sends per second of the simulator's clock (epoch seconds), all senders.
    pub fn sent_per_second(&self) -> BTreeMap<i64, usize> {
        per_second(self.inner.state.lock().unwrap().sent.iter().map(|s| s.at))
    }

    /// Accepted sends per second of the simulator's clock from one sender (Meta's
    /// phone_number_id, Kaleyra's `<sid>:<from>`).
    pub fn sent_per_second_from(&self, phone_number_id: &str) -> BTreeMap<i64, usize> {
        let st = self.inner.state.lock().unwrap();
        per_second(
            st.sent
                .iter()
                .filter(|s| s.phone_number_id == phone_number_id)
                .map(|s| s.at),
        )
    }

    /// Throttled sends per second of the simulator's clock (epoch seconds).
    pub fn throttled_per_second(&self) -> BTreeMap<i64, usize> {
        per_second(
            self.inner
                .state
                .lock()
                .unwrap()
                .throttled
                .iter()
                .map(|t| t.at),
        )
    }

    /// Makes every send to `phone` (any format [`PhoneNumber`] reads, or digits) fail
    /// this way until cleared, on both routes; replaces the number's earlier failure.
    pub fn set_failure(&self, phone: &str, failure: SimFailure) {
        let mut st = self.inner.state.lock().unwrap();
        st.failures.insert(digits(phone), failure);
    }

    /// Forgets the configured failure of `phone`; whether there was one.
    pub fn clear_failure(&self, phone: &str) -> bool {
        let mut st = self.inner.state.lock().unwrap();
        st.failures.remove(&digits(phone)).is_some()
    }

    /// Forgets every configured failure (also those of [`SimConfig::failures`]).
    pub fn clear_failures(&self) {
        self.inner.state.lock().unwrap().failures.clear();
    }

    /// The configured failures by number (digits); `times` counts down as they strike.
    pub fn failures(&self) -> BTreeMap<String, SimFailure> {
        let st = self.inner.state.lock().unwrap();
        st.failures
            .iter()
            .map(|(k, v)| (k.clone(), v.clone()))
            .collect()
    }

    /// Webhook tasks still running.
    pub fn pending_webhooks(&self) -> usize {
        *self.inner.pending.borrow()
    }

    /// Waits until every webhook task spawned so far has finished.
    pub async fn idle(&self) {
        let mut rx = self.inner.pending.subscribe();
        // The sender lives in `inner`, which we hold: the channel cannot close.
        let _ = rx.wait_for(|n| *n == 0).await;
    }

    /// Posts a signed inbound message from `phone`, in reply to the last wamid sent to it.
    pub async fn post_reply(
        &self,
        phone: &str,
        reply: ReplyKind,
    ) -> Result<WebhookRecord, SimError> {
        post_reply(&self.inner, phone, reply, None, None).await
    }

    /// Like [`Simulator::post_reply`] with an explicit context: `Some(id)` answers that
    /// message, `Some("")` answers none, `None` the last wamid sent to the phone.
    pub async fn post_reply_in_context(
        &self,
        phone: &str,
        reply: ReplyKind,
        context_id: Option<&str>,
    ) -> Result<WebhookRecord, SimError> {
        post_reply(&self.inner, phone, reply, context_id, None).await
    }
}
