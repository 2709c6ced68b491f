//! A WhatsApp Cloud API simulator on loopback, for tests and the local demo.
//!
//! It answers `POST /{version}/{phone_number_id}/messages` like Meta does (bearer token,
//! Meta-shaped errors, `wamid.SIM<n>` ids), then posts signed webhooks back to the
//! configured URL: `sent`, `delivered`, `read` and, for a deterministic share of the
//! contacts, a reply (a quick-reply tap when the template had quick-reply buttons, else a
//! text). Control routes show what it received and sent back, and post replies on demand:
//!
//! - `GET  /sim/messages`  the template sends it accepted ([`SentRecord`]s)
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

use crate::domain::phone::PhoneNumber;
use crate::domain::{stable_hash, Time};
use crate::ports::Clock;
use crate::providers::meta::{signature_header, SIGNATURE_HEADER};
use axum::body::Bytes;
use axum::extract::{Path, State};
use axum::http::{HeaderMap, StatusCode};
use axum::response::{IntoResponse, Response};
use axum::routing::{get, post};
use axum::{Json, Router};
use serde::{Deserialize, Serialize};
use serde_json::{json, Value};
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
}

/// The default throughput limit: Meta's 80 messages/s per registered number.
pub const SIM_DEFAULT_RATE_LIMIT: u32 = 80;
/// Meta's throughput error code (PROVIDERS.md sections 3 and 4).
pub const META_RATE_LIMIT_CODE: i64 = 130429;
/// Meta's message for [`META_RATE_LIMIT_CODE`], verbatim.
pub const META_RATE_LIMIT_MESSAGE: &str = "(#130429) Rate limit hit";

/// How a configured number fails; each kind has a default code that
/// [`crate::domain::outcome::classify_meta`] / `classify_kaleyra` classify as that kind.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum SimFailureKind {
    /// Meta `131026` "Message undeliverable" (HTTP 400); Kaleyra `E413` (HTTP 400).
    Permanent,
    /// Meta `131000` "Something went wrong" (HTTP 500); Kaleyra `WA500` (HTTP 500).
    Temporary,
    /// Meta `132001` "Template name does not exist in the translation" (HTTP 404); Kaleyra
    /// `WA401` (HTTP 401).
    Campaign,
}

impl SimFailureKind {
    /// The Meta code answered when [`SimFailure::code`] is unset.
    pub fn default_meta_code(self) -> i64 {
        match self {
            SimFailureKind::Permanent => 131026,
            SimFailureKind::Temporary => 131000,
            SimFailureKind::Campaign => 132001,
        }
    }

    /// The Kaleyra code answered when neither [`SimFailure::kaleyra_code`] nor
    /// [`SimFailure::code`] is set.
    pub fn default_kaleyra_code(self) -> &'static str {
        match self {
            SimFailureKind::Permanent => crate::domain::outcome::KALEYRA_INVALID_NUMBER_CODE,
            SimFailureKind::Temporary => "WA500",
            SimFailureKind::Campaign => "WA401",
        }
    }
}

/// A configured failure of one number.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct SimFailure {
    pub kind: SimFailureKind,
    /// A Meta error code answered instead of the kind's default. On the Kaleyra route it
    /// is passed through inside `meta_object.error`, as Kaleyra does with Meta's errors.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub code: Option<i64>,
    /// A Kaleyra code answered on the Kaleyra route instead of the kind's default (wins
    /// over `code` there).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub kaleyra_code: Option<String>,
    /// Fail only this many more sends, then accept again; `None`: every send until
    /// cleared.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub times: Option<u32>,
}

impl SimFailure {
    pub fn new(kind: SimFailureKind) -> Self {
        SimFailure {
            kind,
            code: None,
            kaleyra_code: None,
            times: None,
        }
    }

    pub fn permanent() -> Self {
        Self::new(SimFailureKind::Permanent)
    }

    pub fn temporary() -> Self {
        Self::new(SimFailureKind::Temporary)
    }

    pub fn campaign() -> Self {
        Self::new(SimFailureKind::Campaign)
    }

    /// Answers this Meta code instead of the kind's default.
    pub fn with_code(mut self, code: i64) -> Self {
        self.code = Some(code);
        self
    }

    /// Answers this Kaleyra code on the Kaleyra route.
    pub fn with_kaleyra_code(mut self, code: impl Into<String>) -> Self {
        self.kaleyra_code = Some(code.into());
        self
    }

    /// Fails only the next `n` sends to the number.
    pub fn times(mut self, n: u32) -> Self {
        self.times = Some(n);
        self
    }

    /// The Meta code this failure answers.
    pub fn meta_code(&self) -> i64 {
        self.code.unwrap_or_else(|| self.kind.default_meta_code())
    }
}

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
            kaleyra_invalid_numbers: Vec::new(),
            rate_limit_per_sec: Some(SIM_DEFAULT_RATE_LIMIT),
            failures: HashMap::new(),
        }
    }
}

/// Which provider API a send came through.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum SimProvider {
    /// The Cloud API route.
    #[default]
    Meta,
    /// Kaleyra's v2 route.
    Kaleyra,
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
    pub callback_data: Option<String>,
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
            failures: cfg
                .failures
                .iter()
                .map(|(n, f)| (digits(n), f.clone()))
                .collect(),
            ..State0::default()
        };
        let inner = Arc::new(Inner {
            webhook_url: Mutex::new(cfg.webhook_url.clone()),
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

fn api_router(inner: Arc<Inner>) -> Router {
    Router::new()
        .route("/{version}/{phone_number_id}/messages", post(send_message))
        .route("/v2/{sid}/whatsapp/{from}/messages", post(kaleyra_send))
        // The id here is the WABA's; the segment shares the send route's name.
        .route(
            "/{version}/{phone_number_id}/message_templates",
            get(list_templates),
        )
        .with_state(inner)
}

fn control_router(inner: Arc<Inner>) -> Router {
    Router::new()
        .route("/messages", get(list_messages))
        .route("/webhooks", get(list_webhooks))
        .route("/reply", post(reply_route))
        .route(
            "/failures",
            get(list_failures)
                .post(set_failure_route)
                .delete(clear_failures_route),
        )
        .route("/throttled", get(list_throttled))
        .route(
            "/rate_limit",
            get(get_rate_limit).post(set_rate_limit_route),
        )
        .with_state(inner)
}

/// Meta's error object (`error` of the answer).
fn meta_error_value(code: i64, message: &str, details: Option<&str>) -> Value {
    let mut err = json!({
        "message": message,
        "type": "OAuthException",
        "code": code,
        "fbtrace_id": "ASIMULATORTRACE",
    });
    if let Some(d) = details {
        err["error_data"] = json!({"messaging_product": "whatsapp", "details": d});
    }
    err
}

fn meta_error(status: StatusCode, code: i64, message: &str, details: Option<&str>) -> Response {
    let err = meta_error_value(code, message, details);
    (status, Json(json!({ "error": err }))).into_response()
}

/// The HTTP status and title Meta gives a code (its error-code reference), for the codes
/// a configured failure is likely to use; others get 400 and a generic title.
fn meta_code_info(code: i64) -> (StatusCode, &'static str) {
    match code {
        130429 => (StatusCode::BAD_REQUEST, "Rate limit hit"),
        131000 => (StatusCode::INTERNAL_SERVER_ERROR, "Something went wrong"),
        131016 => (StatusCode::SERVICE_UNAVAILABLE, "Service unavailable"),
        131026 => (StatusCode::BAD_REQUEST, "Message undeliverable"),
        131047 => (StatusCode::BAD_REQUEST, "Re-engagement message"),
        131048 => (StatusCode::BAD_REQUEST, "Spam rate limit hit"),
        131049 => (
            StatusCode::BAD_REQUEST,
            "This message was not delivered to maintain healthy ecosystem engagement",
        ),
        131050 => (
            StatusCode::BAD_REQUEST,
            "User has stopped marketing messages from this business",
        ),
        131056 => (
            StatusCode::BAD_REQUEST,
            "(Business Account, Consumer Account) pair rate limit hit",
        ),
        132001 => (
            StatusCode::NOT_FOUND,
            "Template name does not exist in the translation",
        ),
        132015 => (StatusCode::BAD_REQUEST, "Template is paused"),
        132016 => (StatusCode::BAD_REQUEST, "Template is disabled"),
        0 | 190 => (StatusCode::UNAUTHORIZED, "Access token has expired"),
        _ => (StatusCode::BAD_REQUEST, "Simulated failure"),
    }
}

/// The HTTP status, error object and message of a Meta code: `(#<code>) <title>`.
fn meta_failure_parts(code: i64, details: Option<&str>) -> (StatusCode, Value, String) {
    let (status, title) = meta_code_info(code);
    let message = format!("(#{code}) {title}");
    let details = details.unwrap_or(title);
    (
        status,
        meta_error_value(code, &message, Some(details)),
        message,
    )
}

/// A Meta-coded failure on the Cloud API route.
fn meta_failure(code: i64, details: Option<&str>) -> Response {
    let (status, err, _) = meta_failure_parts(code, details);
    (status, Json(json!({ "error": err }))).into_response()
}

/// Kaleyra's error envelope with its own code.
fn kaleyra_error(status: StatusCode, code: &str, message: &str) -> Response {
    (
        status,
        Json(json!({"code": code, "message": message, "data": [],
            "error": {"code": code, "message": message}})),
    )
        .into_response()
}

/// A Meta error passed through by Kaleyra: Kaleyra's envelope with Meta's numeric code,
/// and Meta's error object in `meta_object.error`.
fn kaleyra_meta_error(status: StatusCode, code: i64, details: Option<&str>) -> Response {
    let (_, err, message) = meta_failure_parts(code, details);
    (
        status,
        Json(json!({"message": message, "data": [],
            "error": {"code": code, "message": message},
            "meta_object": {"error": err}})),
    )
        .into_response()
}

/// The HTTP status and message of a Kaleyra send API code (PROVIDERS.md section 5).
fn kaleyra_code_info(code: &str) -> (StatusCode, &'static str) {
    match code.to_ascii_uppercase().as_str() {
        "E413" => (
            StatusCode::BAD_REQUEST,
            crate::domain::outcome::KALEYRA_INVALID_NUMBER_REASON,
        ),
        "WA500" => (StatusCode::INTERNAL_SERVER_ERROR, "Internal server error."),
        "WA401" => (
            StatusCode::UNAUTHORIZED,
            "Unauthorized or template not approved.",
        ),
        "RBC001" => (StatusCode::UNAUTHORIZED, "Incorrect SID or API key."),
        "E110" => (StatusCode::PAYMENT_REQUIRED, "Insufficient balance."),
        "WAV2101" => (
            StatusCode::TOO_MANY_REQUESTS,
            "Daily limit for the account exceeded.",
        ),
        "WA400" => (StatusCode::BAD_REQUEST, "Incorrect payload."),
        _ => (StatusCode::BAD_REQUEST, "Simulated failure."),
    }
}

/// A configured failure on the Kaleyra route: its Kaleyra code, else its Meta code passed
/// through, else the kind's Kaleyra default.
fn kaleyra_failure(f: &SimFailure) -> Response {
    match (&f.kaleyra_code, f.code) {
        (Some(code), _) => {
            let (status, message) = kaleyra_code_info(code);
            kaleyra_error(status, code, message)
        }
        (None, Some(code)) => kaleyra_meta_error(meta_code_info(code).0, code, None),
        (None, None) => {
            let code = f.kind.default_kaleyra_code();
            let (status, message) = kaleyra_code_info(code);
            kaleyra_error(status, code, message)
        }
    }
}

fn throttle_details(limit: u32) -> String {
    format!(
        "Message failed to send because there were too many messages sent from this phone \
         number in a short period of time (simulated limit: {limit} messages/s)"
    )
}

/// Epoch seconds of each time, counted.
fn per_second(times: impl Iterator<Item = Time>) -> BTreeMap<i64, usize> {
    let mut out = BTreeMap::new();
    for t in times {
        *out.entry(t.timestamp()).or_insert(0) += 1;
    }
    out
}

/// Decides, under one lock, what becomes of a well-formed send from `sender` to `to`: the
/// throughput limit first (a refused send is recorded in `throttled`), then `pre_failure`
/// (Kaleyra's invalid numbers), then the number's configured failure (counting down its
/// `times`); an accepted send counts in its sender's current clock second.
fn admit(
    inner: &Inner,
    provider: SimProvider,
    sender: &str,
    to: &str,
    pre_failure: Option<SimFailure>,
) -> Admission {
    let now = inner.clock.now();
    let second = now.timestamp();
    let mut st = inner.state.lock().unwrap();
    let used = match st.windows.get(sender) {
        Some(&(s, n)) if s == second => n,
        _ => 0,
    };
    if let Some(limit) = st.rate_limit {
        if used >= limit {
            st.throttled.push(ThrottleRecord {
                provider,
                phone_number_id: sender.to_owned(),
                to: to.to_owned(),
                limit,
                at: now,
            });
            tracing::debug!(sender, limit, "simulator throttled a send (130429)");
            return Admission::Throttle(limit);
        }
    }
    if let Some(f) = pre_failure {
        return Admission::Fail(f);
    }
    let phone = digits(to);
    let mut strike = None;
    let mut spent = false;
    if let Some(f) = st.failures.get_mut(&phone) {
        match f.times {
            None => strike = Some(f.clone()),
            Some(0) => spent = true,
            Some(n) => {
                strike = Some(f.clone());
                f.times = Some(n - 1);
                spent = n == 1;
            }
        }
    }
    if spent {
        st.failures.remove(&phone);
    }
    if let Some(f) = strike {
        return Admission::Fail(f);
    }
    st.windows.insert(sender.to_owned(), (second, used + 1));
    Admission::Accept
}

fn invalid_param(details: &str) -> Response {
    meta_error(
        StatusCode::BAD_REQUEST,
        100,
        "(#100) Invalid parameter",
        Some(details),
    )
}

fn digits(s: &str) -> String {
    PhoneNumber::parse(s)
        .map(String::from)
        .unwrap_or_else(|_| s.chars().filter(char::is_ascii_digit).collect())
}

fn str_at<'a>(v: &'a Value, path: &[&str]) -> Option<&'a str> {
    let mut cur = v;
    for k in path {
        cur = cur.get(k)?;
    }
    cur.as_str()
}

async fn send_message(
    State(inner): State<Arc<Inner>>,
    Path((version, phone_number_id)): Path<(String, String)>,
    headers: HeaderMap,
    body: Bytes,
) -> Response {
    let expected = format!("Bearer {}", inner.cfg.access_token);
    let auth = headers
        .get(axum::http::header::AUTHORIZATION)
        .and_then(|h| h.to_str().ok());
    if auth != Some(expected.as_str()) {
        return meta_error(
            StatusCode::UNAUTHORIZED,
            190,
            "Invalid OAuth access token - Cannot parse access token",
            None,
        );
    }
    if let Some(only) = &inner.cfg.phone_number_id_filter {
        if *only != phone_number_id {
            return meta_error(
                StatusCode::BAD_REQUEST,
                100,
                &format!(
                    "Unsupported post request. Object with ID '{phone_number_id}' does not exist"
                ),
                None,
            );
        }
    }
    let Ok(req) = serde_json::from_slice::<Value>(&body) else {
        return invalid_param("the request body is not JSON");
    };
    if str_at(&req, &["messaging_product"]) != Some("whatsapp") {
        return invalid_param("messaging_product must be whatsapp");
    }
    let Some(to) = str_at(&req, &["to"]).filter(|s| !s.trim().is_empty()) else {
        return invalid_param("to is required");
    };
    if str_at(&req, &["type"]) != Some("template") {
        return invalid_param("the simulator accepts type template only");
    }
    let Some(template) = str_at(&req, &["template", "name"]).filter(|s| !s.is_empty()) else {
        return invalid_param("template.name is required");
    };

    match admit(&inner, SimProvider::Meta, &phone_number_id, to, None) {
        Admission::Accept => {}
        Admission::Throttle(limit) => {
            return meta_error(
                StatusCode::BAD_REQUEST,
                META_RATE_LIMIT_CODE,
                META_RATE_LIMIT_MESSAGE,
                Some(&throttle_details(limit)),
            )
        }
        Admission::Fail(f) => return meta_failure(f.meta_code(), None),
    }

    let (params, payloads) = template_parts(&req);

    let n = inner.out_seq.fetch_add(1, Ordering::SeqCst) + 1;
    let wamid = format!("wamid.SIM{n}");
    let record = SentRecord {
        wamid: wamid.clone(),
        provider: SimProvider::Meta,
        version,
        phone_number_id,
        to: to.to_owned(),
        template: template.to_owned(),
        language: str_at(&req, &["template", "language", "code"]).map(str::to_owned),
        params,
        quick_reply_payloads: payloads,
        callback_data: str_at(&req, &["biz_opaque_callback_data"]).map(str::to_owned),
        at: inner.clock.now(),
    };
    inner.state.lock().unwrap().sent.push(record.clone());
    let wa_id = digits(to);
    tracing::debug!(wamid = %wamid, template = %record.template, "simulator accepted a template");

    if inner.webhook_url.lock().unwrap().is_some() {
        let guard = PendingGuard::new(&inner);
        tokio::spawn(async move {
            status_flow(&guard.0, &record).await;
            drop(guard);
        });
    }

    Json(json!({
        "messaging_product": "whatsapp",
        "contacts": [{"input": to, "wa_id": wa_id}],
        "messages": [{"id": wamid, "message_status": "accepted"}],
    }))
    .into_response()
}

/// `GET /{version}/{waba_id}/message_templates?limit=&after=`: a page of the configured
/// templates; cursors are `c<offset>`.
async fn list_templates(
    State(inner): State<Arc<Inner>>,
    Path((version, waba_id)): Path<(String, String)>,
    axum::extract::Query(q): axum::extract::Query<std::collections::HashMap<String, String>>,
    headers: HeaderMap,
) -> Response {
    let expected = format!("Bearer {}", inner.cfg.access_token);
    let auth = headers
        .get(axum::http::header::AUTHORIZATION)
        .and_then(|h| h.to_str().ok());
    if auth != Some(expected.as_str()) {
        return meta_error(
            StatusCode::UNAUTHORIZED,
            190,
            "Invalid OAuth access token - Cannot parse access token",
            None,
        );
    }
    let limit = q.get("limit").and_then(|l| l.parse::<u32>().ok());
    let after = q.get("after").cloned();
    let mut st = inner.state.lock().unwrap();
    st.template_lists.push(TemplateListRequest {
        waba_id: waba_id.clone(),
        limit,
        after: after.clone(),
    });
    let start = match after.as_deref() {
        None => 0,
        Some(c) => match c.strip_prefix('c').and_then(|n| n.parse::<usize>().ok()) {
            Some(n) if n <= st.templates.len() => n,
            _ => return invalid_param("after: unknown cursor"),
        },
    };
    let mut size = limit.map_or(SIM_TEMPLATE_PAGE, |l| l.clamp(1, 1000) as usize);
    if st.template_page_size > 0 {
        size = size.min(st.template_page_size);
    }
    let end = (start + size).min(st.templates.len());
    let data = st.templates[start..end].to_vec();
    let mut paging =
        json!({"cursors": {"before": format!("c{start}"), "after": format!("c{end}")}});
    if end < st.templates.len() {
        paging["next"] = Value::String(format!(
            "https://graph.facebook.com/{version}/{waba_id}/message_templates?limit={size}&after=c{end}"
        ));
    }
    Json(json!({"data": data, "paging": paging})).into_response()
}

/// `POST /v2/{sid}/whatsapp/{from}/messages`: Kaleyra's v2 send API.
async fn kaleyra_send(
    State(inner): State<Arc<Inner>>,
    Path((sid, from)): Path<(String, String)>,
    headers: HeaderMap,
    body: Bytes,
) -> Response {
    let key = headers.get("api-key").and_then(|h| h.to_str().ok());
    if key != Some(inner.cfg.kaleyra_api_key.as_str()) {
        return kaleyra_error(
            StatusCode::UNAUTHORIZED,
            "RBC001",
            "Incorrect SID or API key.",
        );
    }
    let Ok(req) = serde_json::from_slice::<Value>(&body) else {
        return kaleyra_error(StatusCode::BAD_REQUEST, "WA400", "Incorrect payload.");
    };
    let m = &req["messaging_object"];
    let to = str_at(m, &["to"]).filter(|s| !s.trim().is_empty());
    let template = str_at(m, &["template", "name"]).filter(|s| !s.is_empty());
    let (Some(to), Some(template), Some("whatsapp"), Some("template")) = (
        to,
        template,
        str_at(m, &["messaging_product"]),
        str_at(m, &["type"]),
    ) else {
        return kaleyra_error(StatusCode::BAD_REQUEST, "WA400", "Incorrect payload.");
    };
    let phone = digits(to);
    let sender = format!("{sid}:{from}");
    let invalid = inner
        .cfg
        .kaleyra_invalid_numbers
        .iter()
        .any(|n| digits(n) == phone)
        .then(SimFailure::permanent);
    match admit(&inner, SimProvider::Kaleyra, &sender, to, invalid) {
        Admission::Accept => {}
        Admission::Throttle(limit) => {
            return kaleyra_meta_error(
                StatusCode::TOO_MANY_REQUESTS,
                META_RATE_LIMIT_CODE,
                Some(&throttle_details(limit)),
            )
        }
        Admission::Fail(f) => return kaleyra_failure(&f),
    }
    let (params, payloads) = template_parts(m);
    let n = inner.out_seq.fetch_add(1, Ordering::SeqCst) + 1;
    let wamid = format!("wamid.SIM{n}");
    let callback_data = str_at(&req, &["extra_info", "ref"])
        .or_else(|| str_at(m, &["biz_opaque_callback_data"]))
        .map(str::to_owned);
    let record = SentRecord {
        wamid: wamid.clone(),
        provider: SimProvider::Kaleyra,
        version: "v2".into(),
        phone_number_id: sender,
        to: to.to_owned(),
        template: template.to_owned(),
        language: str_at(m, &["template", "language", "code"]).map(str::to_owned),
        params,
        quick_reply_payloads: payloads,
        callback_data,
        at: inner.clock.now(),
    };
    inner.state.lock().unwrap().sent.push(record.clone());
    if inner.cfg.kaleyra_callback_url.is_some() {
        let guard = PendingGuard::new(&inner);
        tokio::spawn(async move {
            kaleyra_status_flow(&guard.0, &record, &from).await;
            drop(guard);
        });
    }
    Json(json!({
        "code": "WA200",
        "message": "Message sent successfully.",
        "data": [{"message_id": wamid, "recipient": phone}],
        "error": {},
    }))
    .into_response()
}

/// Body parameters and quick-reply payloads of a Cloud API template message.
fn template_parts(m: &Value) -> (Vec<String>, Vec<String>) {
    let mut params = Vec::new();
    let mut payloads = Vec::new();
    let components = m["template"].get("components").and_then(Value::as_array);
    for c in components.into_iter().flatten() {
        let parameters = c
            .get("parameters")
            .and_then(Value::as_array)
            .into_iter()
            .flatten();
        match (str_at(c, &["type"]), str_at(c, &["sub_type"])) {
            (Some("body"), _) => params.extend(
                parameters
                    .filter_map(|p| p.get("text").and_then(Value::as_str))
                    .map(str::to_owned),
            ),
            (Some("button"), Some("quick_reply")) => payloads.extend(
                parameters
                    .filter_map(|p| p.get("payload").and_then(Value::as_str))
                    .map(str::to_owned),
            ),
            _ => {}
        }
    }
    (params, payloads)
}

/// Posts Kaleyra v2 callbacks `sent`, `delivered`, `read` for one send.
async fn kaleyra_status_flow(inner: &Arc<Inner>, sent: &SentRecord, from: &str) {
    let phone = digits(&sent.to);
    for (kind, status) in [
        (WebhookKind::Sent, "sent"),
        (WebhookKind::Delivered, "delivered"),
        (WebhookKind::Read, "read"),
    ] {
        pause(inner).await;
        let n = inner.in_seq.fetch_add(1, Ordering::SeqCst) + 1;
        let mut extra = json!({
            "trace_id": format!("sim-trace-{n}"),
            "message_id": sent.wamid,
            "waba_id": SIM_WABA_ID,
        });
        if let Some(r) = &sent.callback_data {
            extra["ref"] = Value::String(r.clone());
        }
        let body = json!({
            "meta_object": {"field": "messages", "value": {
                "messaging_product": "whatsapp",
                "metadata": {"display_phone_number": from, "phone_number_id": SIM_DEFAULT_PHONE_NUMBER_ID},
                "statuses": [{"id": sent.wamid, "status": status,
                    "timestamp": inner.clock.now().timestamp().to_string(), "recipient_id": phone}],
            }},
            "extra_info": extra,
            "status": status,
            "message_id": sent.wamid,
        });
        let url = inner.cfg.kaleyra_callback_url.clone();
        deliver_to(inner, url, None, kind, &sent.wamid, &phone, &body).await;
    }
}

/// Whether the contact answers: a stable hash of the phone below `reply_percent`.
pub fn will_reply(phone: &str, reply_percent: u8) -> bool {
    stable_hash(phone) % 100 < u64::from(reply_percent)
}

async fn status_flow(inner: &Arc<Inner>, sent: &SentRecord) {
    let phone = digits(&sent.to);
    for (kind, status) in [
        (WebhookKind::Sent, "sent"),
        (WebhookKind::Delivered, "delivered"),
        (WebhookKind::Read, "read"),
    ] {
        pause(inner).await;
        let mut item = json!({
            "id": sent.wamid,
            "status": status,
            "timestamp": inner.clock.now().timestamp().to_string(),
            "recipient_id": phone,
        });
        if let Some(cb) = &sent.callback_data {
            item["biz_opaque_callback_data"] = Value::String(cb.clone());
        }
        if status != "read" {
            item["pricing"] = json!({"billable": true, "pricing_model": "PMP", "type": "regular", "category": "marketing"});
        }
        let value = json!({
            "messaging_product": "whatsapp",
            "metadata": {"display_phone_number": SIM_DISPLAY_PHONE_NUMBER, "phone_number_id": sent.phone_number_id},
            "statuses": [item],
        });
        deliver(inner, kind, &sent.wamid, &phone, &envelope(value)).await;
    }
    if !will_reply(&phone, inner.cfg.reply_percent) {
        return;
    }
    pause(inner).await;
    let reply = match sent.quick_reply_payloads.first() {
        Some(p) => ReplyKind::Button(p.clone()),
        None => ReplyKind::Text(inner.cfg.reply_text.clone()),
    };
    // Typed replies come without context, taps with the template's id.
    let context = match reply {
        ReplyKind::Button(_) => Some(sent.wamid.as_str()),
        ReplyKind::Text(_) => None,
    };
    let (kind, id, body) = inbound_message(inner, &sent.phone_number_id, &phone, &reply, context);
    deliver(inner, kind, &id, &phone, &body).await;
}

async fn pause(inner: &Inner) {
    if !inner.cfg.status_delay.is_zero() {
        tokio::time::sleep(inner.cfg.status_delay).await;
    }
}

fn envelope(value: Value) -> Value {
    json!({
        "object": "whatsapp_business_account",
        "entry": [{"id": SIM_WABA_ID, "changes": [{"value": value, "field": "messages"}]}],
    })
}

/// The webhook body of an inbound message, its kind and its id.
fn inbound_message(
    inner: &Inner,
    phone_number_id: &str,
    phone: &str,
    reply: &ReplyKind,
    context_id: Option<&str>,
) -> (WebhookKind, String, Value) {
    let n = inner.in_seq.fetch_add(1, Ordering::SeqCst) + 1;
    let id = format!("wamid.SIMIN{n}");
    let mut msg = json!({
        "from": phone,
        "id": id,
        "timestamp": inner.clock.now().timestamp().to_string(),
    });
    if let Some(ctx) = context_id {
        msg["context"] = json!({"from": SIM_DISPLAY_PHONE_NUMBER, "id": ctx});
    }
    let kind = match reply {
        ReplyKind::Text(t) => {
            msg["type"] = json!("text");
            msg["text"] = json!({ "body": t });
            WebhookKind::ReplyText
        }
        ReplyKind::Button(p) => {
            msg["type"] = json!("button");
            msg["button"] = json!({"payload": p, "text": p});
            WebhookKind::ReplyButton
        }
    };
    let value = json!({
        "messaging_product": "whatsapp",
        "metadata": {"display_phone_number": SIM_DISPLAY_PHONE_NUMBER, "phone_number_id": phone_number_id},
        "contacts": [{"profile": {"name": "Simulated Customer"}, "wa_id": phone}],
        "messages": [msg],
    });
    (kind, id, envelope(value))
}

/// Signs and posts one webhook, records and returns what happened.
async fn deliver(
    inner: &Inner,
    kind: WebhookKind,
    message_id: &str,
    phone: &str,
    body: &Value,
) -> WebhookRecord {
    let url = inner.webhook_url.lock().unwrap().clone();
    let secret = Some(inner.cfg.app_secret.as_bytes());
    deliver_to(inner, url, secret, kind, message_id, phone, body).await
}

/// Posts one webhook to `url`, signed (`X-Hub-Signature-256`) when `secret` is given,
/// records and returns what happened.
async fn deliver_to(
    inner: &Inner,
    url: Option<String>,
    secret: Option<&[u8]>,
    kind: WebhookKind,
    message_id: &str,
    phone: &str,
    body: &Value,
) -> WebhookRecord {
    let bytes = serde_json::to_vec(body).expect("JSON values serialize");
    let (answered, error) = match url {
        None => (None, Some(SimError::NoWebhookUrl.to_string())),
        Some(url) => {
            let mut req = inner
                .http
                .post(&url)
                .header(reqwest::header::CONTENT_TYPE, "application/json");
            if let Some(secret) = secret {
                req = req.header(SIGNATURE_HEADER, signature_header(secret, &bytes));
            }
            let res = req.body(bytes.clone()).send().await;
            match res {
                Ok(r) => {
                    let status = r.status().as_u16();
                    // Drain the answer so the connection can be reused.
                    let _ = r.bytes().await;
                    (Some(status), None)
                }
                Err(e) => (None, Some(e.to_string())),
            }
        }
    };
    if let Some(e) = &error {
        tracing::warn!(kind = ?kind, message_id, error = %e, "simulator webhook not delivered");
    }
    let record = WebhookRecord {
        kind,
        message_id: message_id.to_owned(),
        phone: phone.to_owned(),
        body: String::from_utf8(bytes).expect("serde_json writes UTF-8"),
        answered,
        error,
        at: inner.clock.now(),
    };
    inner.state.lock().unwrap().webhooks.push(record.clone());
    record
}

async fn post_reply(
    inner: &Arc<Inner>,
    phone: &str,
    reply: ReplyKind,
    context_id: Option<&str>,
    phone_number_id: Option<&str>,
) -> Result<WebhookRecord, SimError> {
    let phone = PhoneNumber::parse(phone).map_err(|e| SimError::InvalidPhone(e.to_string()))?;
    let phone = phone.as_str();
    if inner.webhook_url.lock().unwrap().is_none() {
        return Err(SimError::NoWebhookUrl);
    }
    let (last_to_phone, last_any) = {
        let st = inner.state.lock().unwrap();
        let last = st
            .sent
            .iter()
            .rev()
            .find(|s| digits(&s.to) == phone)
            .cloned();
        (last, st.sent.last().map(|s| s.phone_number_id.clone()))
    };
    let context = match context_id {
        Some("") => None,
        Some(c) => Some(c.to_owned()),
        None => last_to_phone.as_ref().map(|s| s.wamid.clone()),
    };
    let pnid = phone_number_id
        .filter(|s| !s.is_empty())
        .map(str::to_owned)
        .or_else(|| last_to_phone.as_ref().map(|s| s.phone_number_id.clone()))
        .or(last_any)
        .or_else(|| inner.cfg.phone_number_id_filter.clone())
        .unwrap_or_else(|| SIM_DEFAULT_PHONE_NUMBER_ID.to_owned());
    let (kind, id, body) = inbound_message(inner, &pnid, phone, &reply, context.as_deref());
    Ok(deliver(inner, kind, &id, phone, &body).await)
}

async fn list_messages(State(inner): State<Arc<Inner>>) -> Json<Vec<SentRecord>> {
    Json(inner.state.lock().unwrap().sent.clone())
}

async fn list_webhooks(State(inner): State<Arc<Inner>>) -> Json<Vec<WebhookRecord>> {
    Json(inner.state.lock().unwrap().webhooks.clone())
}

#[derive(Debug, Deserialize)]
struct ReplyRequest {
    phone: String,
    text: Option<String>,
    button: Option<String>,
    context_id: Option<String>,
    phone_number_id: Option<String>,
}

async fn reply_route(State(inner): State<Arc<Inner>>, body: Bytes) -> Response {
    let bad = |msg: String| (StatusCode::BAD_REQUEST, Json(json!({"error": msg}))).into_response();
    let req: ReplyRequest = match serde_json::from_slice(&body) {
        Ok(r) => r,
        Err(e) => {
            return bad(format!(
                "expected {{\"phone\", \"text\" | \"button\"}}: {e}"
            ))
        }
    };
    let reply = match (req.text, req.button) {
        (Some(t), None) => ReplyKind::Text(t),
        (None, Some(b)) => ReplyKind::Button(b),
        _ => return bad("give exactly one of \"text\" and \"button\"".into()),
    };
    match post_reply(
        &inner,
        &req.phone,
        reply,
        req.context_id.as_deref(),
        req.phone_number_id.as_deref(),
    )
    .await
    {
        Ok(record) => Json(record).into_response(),
        Err(SimError::NoWebhookUrl) => (
            StatusCode::CONFLICT,
            Json(json!({"error": SimError::NoWebhookUrl.to_string()})),
        )
            .into_response(),
        Err(e) => bad(e.to_string()),
    }
}

#[derive(Debug, Deserialize)]
struct FailureRequest {
    phone: String,
    #[serde(flatten)]
    failure: SimFailure,
}

/// `GET /failures`: the configured failures by number.
async fn list_failures(State(inner): State<Arc<Inner>>) -> Json<BTreeMap<String, SimFailure>> {
    let st = inner.state.lock().unwrap();
    Json(
        st.failures
            .iter()
            .map(|(k, v)| (k.clone(), v.clone()))
            .collect(),
    )
}

/// `POST /failures` `{"phone", "kind", "code"?, "kaleyra_code"?, "times"?}`.
async fn set_failure_route(State(inner): State<Arc<Inner>>, body: Bytes) -> Response {
    let bad = |msg: String| (StatusCode::BAD_REQUEST, Json(json!({"error": msg}))).into_response();
    let req: FailureRequest = match serde_json::from_slice(&body) {
        Ok(r) => r,
        Err(e) => {
            return bad(format!(
                "expected {{\"phone\", \"kind\": \"permanent\" | \"temporary\" | \"campaign\", \"code\"?, \"kaleyra_code\"?, \"times\"?}}: {e}"
            ))
        }
    };
    let phone = digits(&req.phone);
    if phone.is_empty() {
        return bad("phone has no digits".into());
    }
    inner
        .state
        .lock()
        .unwrap()
        .failures
        .insert(phone.clone(), req.failure.clone());
    let mut out = serde_json::to_value(&req.failure).expect("failures serialize");
    out["phone"] = Value::String(phone);
    out["meta_code"] = json!(req.failure.meta_code());
    Json(out).into_response()
}

/// `DELETE /failures` (every number) or `DELETE /failures?phone=..` (one).
async fn clear_failures_route(
    State(inner): State<Arc<Inner>>,
    axum::extract::Query(q): axum::extract::Query<HashMap<String, String>>,
) -> Json<Value> {
    let mut st = inner.state.lock().unwrap();
    let cleared = match q.get("phone") {
        Some(p) => usize::from(st.failures.remove(&digits(p)).is_some()),
        None => {
            let n = st.failures.len();
            st.failures.clear();
            n
        }
    };
    Json(json!({ "cleared": cleared }))
}

/// `GET /throttled`: the sends refused for the throughput limit.
async fn list_throttled(State(inner): State<Arc<Inner>>) -> Json<Vec<ThrottleRecord>> {
    Json(inner.state.lock().unwrap().throttled.clone())
}

/// `GET /rate_limit`: `{"per_second": n | null}`.
async fn get_rate_limit(State(inner): State<Arc<Inner>>) -> Json<Value> {
    Json(json!({ "per_second": inner.state.lock().unwrap().rate_limit }))
}

/// `POST /rate_limit` `{"per_second": n | null}` (null lifts the limit).
async fn set_rate_limit_route(State(inner): State<Arc<Inner>>, body: Bytes) -> Response {
    let given = serde_json::from_slice::<Value>(&body)
        .ok()
        .and_then(|v| v.get("per_second").cloned());
    let parsed = match given {
        Some(Value::Null) => Some(None),
        Some(v) => v.as_u64().and_then(|n| u32::try_from(n).ok()).map(Some),
        None => None,
    };
    let Some(per_second) = parsed else {
        return (
            StatusCode::BAD_REQUEST,
            Json(json!({"error": "expected {\"per_second\": n | null}"})),
        )
            .into_response();
    };
    inner.state.lock().unwrap().rate_limit = per_second;
    Json(json!({ "per_second": per_second })).into_response()
}
