//! The seeded whole-system simulation (issue 13), the way FoundationDB and TigerBeetle test:
//! one process, the in-memory adapters, one manual clock and one random source from one
//! seed. A fault-injecting table (writes that fail, writes that succeed but report
//! failure, lost counter writes, index entries that show up late, a yield before any call
//! so concurrent use cases interleave), a provider that sometimes accepts a message and
//! then times out, functions killed mid-batch, SQS redelivery, webhooks duplicated,
//! reordered and delayed by days, and a random schedule of operator and customer actions
//! across three tenants that share template names and contacts, two campaigns each.
//!
//! After every run the invariants of the product's promises are checked (see
//! [`World::check`]). A failing seed prints itself; `SIM_SEED=<n>` replays it.
//! `SIM_SEEDS=<n>` runs n seeds from `SIM_FIRST_SEED` (default 1): CI runs the default,
//! the README gives the 10,000-seed command and its figure.

use axum::http::{Method, StatusCode};
use chrono::{Duration, TimeZone, Utc};
use serde_json::{json, Value};
use shared::app::sweep::SENDING_STALE_AFTER;
use shared::domain::account::Account;
use shared::domain::events::DomainEvent;
use shared::domain::hopper::{EntryState, HopperEntry};
use shared::domain::inbound::{
    EntryRef, Inbound, InboundMessage, StatusKind, StatusUpdate, TemplateUpdate,
};
use shared::domain::outcome::{FailureClass, SendFailure};
use shared::domain::phone::PhoneNumber;
use shared::domain::stats;
use shared::domain::template::TemplateStatus;
use shared::domain::Time;
use shared::lambda::{self, sqs_event};
use shared::ports::{
    Accepted, Clock, Cond, EventBus, Index, Item, MessagingProvider, OutboundSms, OutboundTemplate,
    Page, PortError, PortResult, Query, Table,
};
use shared::repo;
use std::collections::{BTreeMap, HashMap};
use std::future::Future;
use std::pin::pin;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex};
use std::task::Poll;
use testkit::harness::{call_as, Spawn, Spawned};
use testkit::memory::MemoryTable;

// ---- the one random source -------------------------------------------------------------

/// xorshift64*: small, fast, and the same sequence on every machine.
struct Rng(u64);

impl Rng {
    fn new(seed: u64) -> Self {
        // Spread small seeds over the state so seed 1 and seed 2 differ from the start.
        Rng(seed.wrapping_mul(0x9E37_79B9_7F4A_7C15) | 1)
    }
    fn next(&mut self) -> u64 {
        let mut x = self.0;
        x ^= x >> 12;
        x ^= x << 25;
        x ^= x >> 27;
        self.0 = x;
        x.wrapping_mul(0x2545_F491_4F6C_DD1D)
    }
    /// 0..n
    fn below(&mut self, n: u64) -> u64 {
        self.next() % n.max(1)
    }
    /// True with probability `per_mille` / 1000.
    fn chance(&mut self, per_mille: u64) -> bool {
        self.below(1000) < per_mille
    }
}

type SharedRng = Arc<Mutex<Rng>>;

fn roll(rng: &SharedRng, per_mille: u64) -> bool {
    rng.lock().unwrap().chance(per_mille)
}

fn below(rng: &SharedRng, n: u64) -> u64 {
    rng.lock().unwrap().below(n)
}

// ---- faults ------------------------------------------------------------------------------

/// How often each fault strikes, per mille of the events where it can.
#[derive(Debug, Clone, Copy)]
struct FaultRates {
    /// A write fails and is not stored.
    write_fails: u64,
    /// A write is stored and reports failure (a timeout after DynamoDB applied it).
    write_lost_answer: u64,
    /// A counter write is lost.
    counter_lost: u64,
    /// An item written shows up in an index query only some seconds later.
    index_late: u64,
    /// A call yields to the other tasks first (interleaving).
    yields: u64,
    /// A function is killed at a random await point of its batch.
    killed: u64,
    /// The provider accepts a message and the answer never arrives (a timeout).
    provider_accepts_then_times_out: u64,
    /// The provider refuses with a temporary error (nothing sent).
    provider_temporary: u64,
    /// The provider refuses for good (this contact cannot get it).
    provider_permanent: u64,
    /// The provider refuses for the contact's marketing limit (131049): the engine waits a
    /// day and sends again.
    provider_marketing_limit: u64,
    /// A webhook is delivered twice.
    hook_duplicated: u64,
    /// A webhook arrives days late.
    hook_days_late: u64,
    /// Publishing on the bus fails.
    bus_fails: u64,
}

const FAULTS: FaultRates = FaultRates {
    write_fails: 15,
    write_lost_answer: 15,
    counter_lost: 30,
    index_late: 150,
    yields: 300,
    killed: 80,
    provider_accepts_then_times_out: 30,
    provider_temporary: 30,
    provider_permanent: 30,
    provider_marketing_limit: 30,
    hook_duplicated: 100,
    hook_days_late: 30,
    bus_fails: 50,
};

struct Faults {
    on: AtomicBool,
    rng: SharedRng,
    rates: FaultRates,
}

impl Faults {
    fn strikes(&self, per_mille: u64) -> bool {
        self.on.load(Ordering::SeqCst) && roll(&self.rng, per_mille)
    }
}

fn injected(what: &str) -> PortError {
    PortError::Backend(format!("injected: {what}"))
}

/// The table with faults: see [`FaultRates`].
struct FaultyTable {
    inner: Arc<MemoryTable>,
    faults: Arc<Faults>,
    clock: Arc<dyn Clock>,
    /// Items whose index entries are not visible before the given time.
    late: Mutex<HashMap<(String, String), Time>>,
}

impl FaultyTable {
    async fn maybe_yield(&self) {
        if self.faults.strikes(self.faults.rates.yields) {
            tokio::task::yield_now().await;
        }
    }

    fn wrote(&self, pk: &str, sk: &str) {
        if self.faults.strikes(self.faults.rates.index_late) {
            let secs = 1 + below(&self.faults.rng, 90) as i64;
            self.late.lock().unwrap().insert(
                (pk.to_owned(), sk.to_owned()),
                self.clock.now() + Duration::seconds(secs),
            );
        }
    }

    /// Fails before the write, or after it, as the dice say.
    fn before(&self) -> PortResult<()> {
        if self.faults.strikes(self.faults.rates.write_fails) {
            return Err(injected("write failed"));
        }
        Ok(())
    }

    fn after(&self) -> PortResult<()> {
        if self.faults.strikes(self.faults.rates.write_lost_answer) {
            return Err(injected("write stored, answer lost"));
        }
        Ok(())
    }
}

fn key_of(item: &Item) -> (String, String) {
    let s = |k: &str| item.get(k).and_then(Value::as_str).unwrap_or("").to_owned();
    (s("PK"), s("SK"))
}

#[async_trait::async_trait]
impl Table for FaultyTable {
    async fn get(&self, pk: &str, sk: &str) -> PortResult<Option<Item>> {
        self.maybe_yield().await;
        self.inner.get(pk, sk).await
    }

    async fn put(&self, item: Item, cond: Cond) -> PortResult<()> {
        self.maybe_yield().await;
        let (pk, sk) = key_of(&item);
        let watch = std::env::var("SIM_WATCH")
            .ok()
            .filter(|w| pk.contains(w.as_str()));
        let r = async {
            self.before()?;
            self.inner.put(item.clone(), cond).await?;
            self.wrote(&pk, &sk);
            self.after()
        }
        .await;
        if watch.is_some() {
            eprintln!(
                "  {} put {pk} {sk}: {r:?} {}",
                self.clock.now(),
                serde_json::to_string(&item).unwrap_or_default()
            );
        }
        r
    }

    async fn delete(&self, pk: &str, sk: &str) -> PortResult<()> {
        self.maybe_yield().await;
        if std::env::var("SIM_WATCH").is_ok_and(|w| pk.contains(w.as_str())) {
            eprintln!("  {} delete {pk} {sk}", self.clock.now());
        }
        self.before()?;
        self.inner.delete(pk, sk).await?;
        self.after()
    }

    async fn query(&self, q: &Query) -> PortResult<Page> {
        self.maybe_yield().await;
        let mut page = self.inner.query(q).await?;
        if !matches!(q.index, Index::Primary) {
            let now = self.clock.now();
            let late = self.late.lock().unwrap();
            page.items
                .retain(|i| late.get(&key_of(i)).is_none_or(|t| *t <= now));
        }
        Ok(page)
    }

    async fn add(&self, pk: &str, sk: &str, deltas: &[(String, i64)]) -> PortResult<Item> {
        self.maybe_yield().await;
        if self.faults.strikes(self.faults.rates.counter_lost) {
            return Err(injected("counter write lost"));
        }
        self.inner.add(pk, sk, deltas).await
    }
}

// ---- the provider ------------------------------------------------------------------------

/// One message that reached a customer's phone.
#[derive(Debug, Clone)]
struct Delivered {
    sender_id: String,
    to: String,
    callback_data: String,
    message_id: String,
    at: Time,
    /// The engine never learnt the provider accepted it (a timeout after acceptance).
    #[allow(dead_code)] // shown in failure reports through Debug
    unknown_to_engine: bool,
    /// The provider reports it failed: it never reached the phone.
    failed: bool,
    /// Meta's code of that failure: 131026, or 131049 (the contact's marketing limit: the
    /// engine sends again a day later) or 131050 (the contact stopped marketing).
    code: Option<i64>,
    /// Its place among every message the provider took (several share a time).
    seq: usize,
    /// An SMS (a WhatsApp campaign's fallback), not a WhatsApp message.
    sms: bool,
}

/// A webhook on its way: delivered at or after `at`, again after a failure.
#[derive(Debug, Clone)]
struct Hook {
    at: Time,
    event: Inbound,
}

/// Meta, as far as the engine can tell: accepts, refuses, or accepts and never answers;
/// each accepted message produces its statuses as webhooks on their way.
struct SimProvider {
    faults: Arc<Faults>,
    clock: Arc<dyn Clock>,
    delivered: Mutex<Vec<Delivered>>,
    /// Sends refused with Meta's marketing limit (131049): callback data and time.
    limited: Mutex<Vec<(String, Time)>>,
    /// Sends refused as not on WhatsApp (131026) at the send: callback data and time.
    undeliverable: Mutex<Vec<(String, Time)>>,
    hooks: Mutex<Vec<Hook>>,
    next_id: Mutex<u64>,
    /// Calls Connect started (voice campaigns, issue 17), and the contact of each client
    /// token it saw (a start with a token seen before dials nothing).
    calls: Mutex<Vec<CallW>>,
    tokens: Mutex<HashMap<String, String>>,
}

/// A call as Connect placed it: on which instance, for which campaign and contact, from
/// when to when it was really in progress (whatever its events later say or lose).
#[derive(Debug, Clone)]
struct CallW {
    instance: String,
    campaign: String,
    to: String,
    token: String,
    started: Time,
    ended: Time,
}

impl SimProvider {
    fn hook(&self, after_secs: i64, event: Inbound) {
        let mut at = self.clock.now() + Duration::seconds(after_secs);
        if self.faults.strikes(self.faults.rates.hook_days_late) {
            at += Duration::hours(24 + below(&self.faults.rng, 48) as i64);
        }
        let mut hooks = self.hooks.lock().unwrap();
        if self.faults.strikes(self.faults.rates.hook_duplicated) {
            hooks.push(Hook {
                at: at + Duration::seconds(below(&self.faults.rng, 600) as i64),
                event: event.clone(),
            });
        }
        hooks.push(Hook { at, event });
    }
}

#[async_trait::async_trait]
impl MessagingProvider for SimProvider {
    async fn send(
        &self,
        account: &Account,
        msg: &OutboundTemplate,
    ) -> Result<Accepted, SendFailure> {
        let r = &self.faults.rates;
        if self.faults.strikes(r.provider_temporary) {
            return Err(SendFailure {
                class: FailureClass::Temporary,
                code: Some(131000),
                reason: "Something went wrong".into(),
            });
        }
        if self.faults.strikes(r.provider_permanent) {
            let data = msg.callback_data.clone();
            self.undeliverable
                .lock()
                .unwrap()
                .push((data, self.clock.now()));
            return Err(SendFailure::meta(131026, "Message undeliverable"));
        }
        let now = self.clock.now();
        if self.faults.strikes(r.provider_marketing_limit) {
            let data = msg.callback_data.clone();
            self.limited.lock().unwrap().push((data, now));
            return Err(SendFailure::meta(131049, ""));
        }
        let id = {
            let mut n = self.next_id.lock().unwrap();
            *n += 1;
            format!("wamid.sim{}", *n)
        };
        let times_out = self.faults.strikes(r.provider_accepts_then_times_out);
        let fails = self.faults.strikes(50);
        // Of the failures reported after acceptance: the marketing limit, a stop of
        // marketing messages, or undeliverable.
        let code = fails.then(|| match below(&self.faults.rng, 6) {
            0 | 1 => 131049,
            2 => 131050,
            _ => 131026,
        });
        let mut delivered = self.delivered.lock().unwrap();
        let seq = delivered.len();
        delivered.push(Delivered {
            seq,
            sender_id: account.sender_id.clone(),
            to: msg.to.as_str().to_owned(),
            callback_data: msg.callback_data.clone(),
            message_id: id.clone(),
            at: now,
            unknown_to_engine: times_out,
            failed: fails,
            code,
            sms: false,
        });
        drop(delivered);
        // Meta's Marketing Messages API takes no callback data: its statuses name the
        // recipient alone, and the engine finds the entry through the interaction.
        let (entry, attempt) = match EntryRef::decode_attempt(&msg.callback_data) {
            Some((e, a)) if !msg.marketing_messages => (Some(e), a),
            _ => (None, None),
        };
        let status = |status: StatusKind, secs: i64| StatusUpdate {
            recipient: Some(msg.to.clone()),
            message_id: id.clone(),
            status,
            at: now + Duration::seconds(secs),
            entry: entry.clone(),
            attempt,
            sender_id: Some(account.sender_id.clone()),
            user_id: None,
        };
        self.hook(1, Inbound::Status(status(StatusKind::Sent, 1)));
        if let Some(code) = code {
            self.hook(
                5,
                Inbound::Status(status(
                    StatusKind::Failed {
                        code: Some(code),
                        reason: shared::domain::outcome::meta_reason(code, ""),
                        class: None,
                    },
                    5,
                )),
            );
        } else if !self.faults.strikes(100) {
            self.hook(5, Inbound::Status(status(StatusKind::Delivered, 5)));
            if self.faults.strikes(400) {
                self.hook(60, Inbound::Status(status(StatusKind::Read, 60)));
            }
        }
        if times_out {
            // What the adapters answer for a request that left and got no answer.
            return Err(SendFailure::outcome_unknown(
                "Meta timeout: operation timed out",
            ));
        }
        Ok(id.into())
    }

    /// Amazon Connect: refuses now and then (too many calls), or starts the call (and now
    /// and then loses the answer); a token seen before answers its contact and dials
    /// nothing. The call is answered by a person, a machine, nobody, or is busy; its
    /// contact events go out as webhooks (late, duplicated, reordered like the others).
    async fn start_call(
        &self,
        account: &Account,
        call: &shared::ports::OutboundCall,
    ) -> Result<Accepted, SendFailure> {
        use shared::domain::inbound::{CallEvent, CallEventKind};
        if let Some(id) = self.tokens.lock().unwrap().get(&call.client_token) {
            return Ok(id.clone().into());
        }
        let r = &self.faults.rates;
        if self.faults.strikes(r.provider_temporary) {
            return Err(SendFailure {
                class: FailureClass::NotAttempted,
                code: None,
                reason: "Amazon Connect: LimitExceededException".into(),
            });
        }
        let now = self.clock.now();
        let id = {
            let mut n = self.next_id.lock().unwrap();
            *n += 1;
            format!("contact-sim{}", *n)
        };
        // A person (35 s), a voicemail (25 s), nobody (Connect's 60 s), busy (2 s).
        let (secs, answered, amd, reason) = match below(&self.faults.rng, 4) {
            0 => (35, true, "HUMAN_ANSWERED", "CUSTOMER_DISCONNECT"),
            1 => (25, true, "VOICEMAIL_BEEP", "CUSTOMER_DISCONNECT"),
            2 => (60, false, "AMD_UNANSWERED", "TELECOM_TIMEOUT"),
            _ => (2, false, "SIT_TONE_BUSY", "TELECOM_BUSY"),
        };
        let ended = now + Duration::seconds(secs);
        self.tokens
            .lock()
            .unwrap()
            .insert(call.client_token.clone(), id.clone());
        self.calls.lock().unwrap().push(CallW {
            instance: account.sender_id.clone(),
            campaign: call
                .attributes
                .get("campaign_id")
                .cloned()
                .unwrap_or_default(),
            to: call.to.as_str().to_owned(),
            token: call.client_token.clone(),
            started: now,
            ended,
        });
        let connected_at = answered.then(|| now + Duration::seconds(5));
        let event = |kind, at| CallEvent {
            instance_id: account.sender_id.clone(),
            contact_id: id.clone(),
            kind,
            at,
            connected_at,
            agent_at: None,
            amd_status: call.amd.map(|_| amd.to_owned()),
            disconnect_reason: (kind == CallEventKind::Disconnected).then(|| reason.to_owned()),
        };
        if answered || call.amd.is_some() {
            self.hook(
                5,
                Inbound::Call(event(CallEventKind::Connected, now + Duration::seconds(5))),
            );
        }
        self.hook(
            secs,
            Inbound::Call(event(CallEventKind::Disconnected, ended)),
        );
        if self.faults.strikes(r.provider_accepts_then_times_out) {
            return Err(SendFailure::outcome_unknown("Amazon Connect timeout"));
        }
        Ok(id.into())
    }

    /// An SMS provider (a WhatsApp campaign's fallback): refuses now and then, or takes
    /// the message and never answers; its statuses are sent and delivered.
    async fn send_sms(
        &self,
        account: &Account,
        msg: &OutboundSms,
    ) -> Result<Accepted, SendFailure> {
        let r = &self.faults.rates;
        if self.faults.strikes(r.provider_temporary) {
            return Err(SendFailure::twilio(21611, "queue full"));
        }
        let now = self.clock.now();
        let id = {
            let mut n = self.next_id.lock().unwrap();
            *n += 1;
            format!("SMsim{}", *n)
        };
        let times_out = self.faults.strikes(r.provider_accepts_then_times_out);
        let mut delivered = self.delivered.lock().unwrap();
        let seq = delivered.len();
        delivered.push(Delivered {
            seq,
            sender_id: account.sender_id.clone(),
            to: msg.to.as_str().to_owned(),
            callback_data: msg.callback_data.clone(),
            message_id: id.clone(),
            at: now,
            unknown_to_engine: times_out,
            failed: false,
            code: None,
            sms: true,
        });
        drop(delivered);
        let (entry, attempt) = match EntryRef::decode_attempt(&msg.callback_data) {
            Some((e, a)) => (Some(e), a),
            None => (None, None),
        };
        for (status, secs) in [(StatusKind::Sent, 1), (StatusKind::Delivered, 5)] {
            let s = StatusUpdate {
                recipient: Some(msg.to.clone()),
                message_id: id.clone(),
                status,
                at: now + Duration::seconds(secs),
                entry: entry.clone(),
                attempt,
                sender_id: Some(account.sender_id.clone()),
                user_id: None,
            };
            self.hook(secs, Inbound::Status(s));
        }
        if times_out {
            return Err(SendFailure::outcome_unknown("Twilio timeout"));
        }
        Ok(id.into())
    }
}

// ---- the bus -----------------------------------------------------------------------------

/// EventBridge with outages: a publish fails now and then (nothing delivered).
struct Bus {
    faults: Arc<Faults>,
    events: Mutex<Vec<DomainEvent>>,
    /// Each successful publish, in order.
    batches: Mutex<Vec<Vec<DomainEvent>>>,
}

#[async_trait::async_trait]
impl EventBus for Bus {
    async fn publish(&self, events: &[DomainEvent]) -> PortResult<()> {
        if self.faults.strikes(self.faults.rates.bus_fails) {
            return Err(injected("bus unavailable"));
        }
        self.events.lock().unwrap().extend_from_slice(events);
        self.batches.lock().unwrap().push(events.to_vec());
        Ok(())
    }
}

// ---- killing a function --------------------------------------------------------------------

/// Runs `fut` to the end, or, when the dice say the function is killed, drops it after a
/// random number of polls (a Lambda killed at its timeout or by a crash mid-batch).
async fn killable<F: Future>(faults: &Faults, fut: F) -> Option<F::Output> {
    let mut fut = pin!(fut);
    let mut polls_left = if faults.strikes(faults.rates.killed) {
        Some(below(&faults.rng, 12))
    } else {
        None
    };
    std::future::poll_fn(|cx| match fut.as_mut().poll(cx) {
        Poll::Ready(v) => Poll::Ready(Some(v)),
        Poll::Pending => match &mut polls_left {
            Some(0) => Poll::Ready(None),
            Some(n) => {
                *n -= 1;
                Poll::Pending
            }
            None => Poll::Pending,
        },
    })
    .await
}

// ---- the world ---------------------------------------------------------------------------

const TENANTS: usize = 3;
/// Each tenant's Connect account's lines, and its voice campaign's.
const VOICE_LINES: u32 = 2;
const VOICE_CAMPAIGN_LINES: u32 = 1;
const VOICE_RETRIES: u32 = 1;
const PHONES: usize = 10;
const STEPS: usize = 160;

struct CampaignW {
    id: String,
    /// Reset requests made (answered or not): each may send every entry once more, and
    /// its walk closes the interactions of the entries it puts back (the contact is free).
    resets: u32,
    reset_at: Vec<Time>,
    timeout_days: u32,
    duplicate_window_days: Option<u32>,
    deleted: bool,
    /// When an operator first cancelled or deleted it (answered 2xx or 5xx): its
    /// interactions end then, and the contacts are free for other campaigns.
    ended_at: Option<Time>,
    /// When an operator first deleted it (2xx or 5xx): the purge removes its interactions
    /// (R1.5: everything under it), so its sends stop counting for duplicate windows.
    deleted_at: Option<Time>,
}

struct TenantW {
    name: String,
    account_id: String,
    sender_id: String,
    /// Its SMS number (campaign C0's fallback).
    sms_sender_id: String,
    /// Its Amazon Connect instance (campaign C2 calls through it).
    instance: String,
    waba_id: String,
    lists: Vec<String>,
    campaigns: Vec<CampaignW>,
}

/// A customer message as the simulation wrote it.
#[derive(Debug, Clone)]
struct Reply {
    sender_id: String,
    phone: String,
    message_id: String,
    stop: bool,
    /// When the engine first took it without error (`None`: never yet).
    handled_at: Option<Time>,
    /// When the engine began handling it, each time (a handling that failed or was
    /// killed midway may have closed the interaction already).
    tried: Vec<Time>,
}

struct World {
    seed: u64,
    s: Spawned,
    mem: Arc<MemoryTable>,
    faults: Arc<Faults>,
    provider: Arc<SimProvider>,
    bus: Arc<Bus>,
    tenants: Vec<TenantW>,
    replies: Vec<Reply>,
    /// Statuses failed with 131050 (the contact stopped marketing) that the engine handled:
    /// business number, contact, and how many messages the provider had taken by then.
    marketing_stops: Vec<(String, String, usize)>,
    next_reply: u64,
    log: Vec<String>,
}

fn phones() -> Vec<String> {
    (0..PHONES).map(|i| format!("9198765{i:05}")).collect()
}

impl World {
    async fn new(seed: u64) -> World {
        let rng: SharedRng = Arc::new(Mutex::new(Rng::new(seed)));
        let faults = Arc::new(Faults {
            on: AtomicBool::new(false),
            rng,
            rates: FAULTS,
        });
        let mem = Arc::new(MemoryTable::new());
        let at = Utc.with_ymd_and_hms(2026, 11, 23, 9, 0, 0).unwrap();
        let clock = testkit::harness::frozen(at);
        let provider = Arc::new(SimProvider {
            faults: faults.clone(),
            clock: clock.clone(),
            delivered: Mutex::new(Vec::new()),
            hooks: Mutex::new(Vec::new()),
            next_id: Mutex::new(0),
            limited: Mutex::new(Vec::new()),
            undeliverable: Mutex::new(Vec::new()),
            calls: Mutex::new(Vec::new()),
            tokens: Mutex::new(HashMap::new()),
        });
        let bus = Arc::new(Bus {
            faults: faults.clone(),
            events: Mutex::new(Vec::new()),
            batches: Mutex::new(Vec::new()),
        });
        let table = Arc::new(FaultyTable {
            inner: mem.clone(),
            faults: faults.clone(),
            clock: clock.clone(),
            late: Mutex::new(HashMap::new()),
        });
        // On odd seeds every attach runs in the background (the sweeper carries it, and
        // may be killed midway), on even ones within the request.
        let attach_inline = if seed % 2 == 1 {
            std::time::Duration::ZERO
        } else {
            shared::app::commands::ATTACH_INLINE
        };
        let mut s = Spawn::new(table)
            .clock(clock)
            .provider(provider.clone())
            .bus(bus.clone())
            .attach_inline(attach_inline)
            .build();
        // Every third seed the sender carries less than the tenants' numbers ask for
        // (each gets its fair share), and every fourth a dispatch plans its first slot
        // a second and a half out, as deployed.
        let mut d = (*s.sys.dispatcher).clone();
        d.start_lead_ms = if seed % 4 == 1 { 1500 } else { 0 };
        d.send_capacity = seed.is_multiple_of(3).then_some(2.0);
        s.sys.dispatcher = Arc::new(d);
        let mut w = World {
            seed,
            s,
            mem,
            faults,
            provider,
            bus,
            tenants: Vec::new(),
            replies: Vec::new(),
            marketing_stops: Vec::new(),
            next_reply: 0,
            log: Vec::new(),
        };
        w.setup().await;
        w
    }

    fn now(&self) -> Time {
        self.s.clock.now()
    }

    fn dice(&self, per_mille: u64) -> bool {
        roll(&self.faults.rng, per_mille)
    }

    fn pick(&self, n: usize) -> usize {
        below(&self.faults.rng, n as u64) as usize
    }

    async fn api(
        &self,
        tenant: &str,
        method: Method,
        path: &str,
        body: Option<Value>,
    ) -> (StatusCode, Value) {
        call_as(&self.s.api, tenant, method, path, body).await
    }

    async fn must(&self, tenant: &str, method: Method, path: &str, body: Option<Value>) -> Value {
        let (s, v) = self.api(tenant, method.clone(), path, body).await;
        assert!(
            s.is_success(),
            "seed {}: {method} {path}: {s} {v}",
            self.seed
        );
        v
    }

    /// Three tenants, each with its own number, a template of the same name, the same ten
    /// phone numbers in two overlapping lists, and two campaigns.
    async fn setup(&mut self) {
        let phones = phones();
        for t in 0..TENANTS {
            let name = format!("tenant{t}");
            let sender_id = format!("10654035224{t:04}");
            let waba_id = format!("20000000000{t:04}");
            let account = self
                .must(
                    &name,
                    Method::POST,
                    "/accounts",
                    Some(json!({
                        "name": "Main", "sender_id": sender_id, "token_ref": "env:SIM_TOKEN",
                        "waba_id": waba_id,
                        // One tenant's MARKETING sends go through the Marketing Messages
                        // API: their statuses come without callback data.
                        "marketing_messages": t == 1
                    })),
                )
                .await;
            let account_id = account["id"].as_str().unwrap().to_owned();
            // An SMS number of the tenant's own: campaign C0 falls back to it for numbers
            // WhatsApp refuses as not on WhatsApp.
            let sms = self
                .must(
                    &name,
                    Method::POST,
                    "/accounts",
                    Some(json!({
                        "name": "SMS", "provider": "twilio", "token_ref": "env:SIM_TOKEN",
                        "sender_id": format!("AC{t:032x}:+1555000{t:04}"), "rate_limit": 5
                    })),
                )
                .await;
            let sms_account = sms["id"].as_str().unwrap().to_owned();
            let sms_sender_id = sms["sender_id"].as_str().unwrap().to_owned();
            // An Amazon Connect instance of the tenant's own, with two lines.
            let instance = format!("inst-{t}");
            let connect = self
                .must(
                    &name,
                    Method::POST,
                    "/accounts",
                    Some(json!({
                        "name": "Calls", "provider": "connect", "token_ref": "env:SIM_TOKEN",
                        "sender_id": instance, "caller_ids": [format!("+1555010{t:04}")],
                        "max_concurrent_calls": VOICE_LINES
                    })),
                )
                .await;
            let connect_account = connect["id"].as_str().unwrap().to_owned();
            self.must(
                &name,
                Method::POST,
                "/templates",
                Some(json!({
                    "account_id": account_id, "name": "offer", "language": "en",
                    "category": "MARKETING", "body": "Hi {{1}}, an offer"
                })),
            )
            .await;
            self.must(
                &name,
                Method::POST,
                "/templates",
                Some(json!({
                    "account_id": account_id, "name": "we_miss_you", "language": "en",
                    "category": "MARKETING", "body": "Hello {{1}}, still need help?"
                })),
            )
            .await;
            self.must(
                &name,
                Method::PUT,
                &format!("/accounts/{account_id}/recontact-template"),
                Some(json!({"name": "we_miss_you", "language": "en"})),
            )
            .await;
            let contacts: Vec<Value> = phones
                .iter()
                .map(|p| json!({"phone": format!("+{p}"), "name": format!("C{p}")}))
                .collect();
            self.must(
                &name,
                Method::POST,
                "/contacts",
                Some(Value::Array(contacts)),
            )
            .await;
            let mut lists = Vec::new();
            for (i, members) in [&phones[..7], &phones[3..]].iter().enumerate() {
                let list = self
                    .must(
                        &name,
                        Method::POST,
                        "/lists",
                        Some(json!({"name": format!("L{i}")})),
                    )
                    .await;
                let id = list["id"].as_str().unwrap().to_owned();
                self.must(
                    &name,
                    Method::POST,
                    &format!("/lists/{id}/members"),
                    Some(json!({"phones": members})),
                )
                .await;
                lists.push(id);
            }
            let mut campaigns = Vec::new();
            for c in 0..2 {
                let timeout_days = 1 + (t + c) as u32 % 2;
                let duplicate_window_days = (c == 1).then_some(1);
                let mut body = json!({
                    "name": format!("C{c}"), "account_id": account_id,
                    "template": {"name": "offer", "language": "en"},
                    "variables": [{"source": "contact_name"}],
                    "rate": 5, "response_timeout_days": timeout_days
                });
                if let Some(d) = duplicate_window_days {
                    body["duplicate_window_days"] = json!(d);
                }
                if c == 0 {
                    body["sms_fallback"] =
                        json!({"account_id": sms_account, "message": "Hi {{1}}, an offer by SMS"});
                }
                let created = self
                    .must(&name, Method::POST, "/campaigns", Some(body))
                    .await;
                campaigns.push(CampaignW {
                    id: created["id"].as_str().unwrap().to_owned(),
                    resets: 0,
                    reset_at: Vec::new(),
                    timeout_days,
                    duplicate_window_days,
                    deleted: false,
                    ended_at: None,
                    deleted_at: None,
                });
            }
            // C2 calls the same contacts: one line of the campaign's own, a retry a
            // minute after no answer or busy, answering-machine detection on one tenant.
            let voice = json!({
                "caller_id": format!("+1555010{t:04}"), "queue_id": "q-1", "contact_flow_id": "f-1",
                "max_concurrent": VOICE_CAMPAIGN_LINES, "max_retries": VOICE_RETRIES, "retry_delay_seconds": 60,
                "amd_enabled": t == 2, "max_call_minutes": 5
            });
            let created = self
                .must(
                    &name,
                    Method::POST,
                    "/campaigns",
                    Some(json!({"name": "C2", "channel": "voice", "account_id": connect_account, "voice": voice})),
                )
                .await;
            campaigns.push(CampaignW {
                id: created["id"].as_str().unwrap().to_owned(),
                resets: 0,
                reset_at: Vec::new(),
                timeout_days: 1,
                duplicate_window_days: None,
                deleted: false,
                ended_at: None,
                deleted_at: None,
            });
            self.tenants.push(TenantW {
                name,
                account_id,
                sender_id,
                sms_sender_id,
                instance,
                waba_id,
                lists,
                campaigns,
            });
        }
    }
}

// ---- the schedule --------------------------------------------------------------------------

impl World {
    /// One random step: an operator action, a customer action, a function run, or time.
    async fn step(&mut self) {
        let t = self.pick(TENANTS);
        let c = self.pick(3);
        let tenant = self.tenants[t].name.clone();
        let id = self.tenants[t].campaigns[c].id.clone();
        let roll = self.pick(100);
        let (what, path, method): (&str, String, Method) = match roll {
            0..=5 => {
                let list = self.tenants[t].lists[self.pick(2)].clone();
                let (s, _) = self
                    .api(
                        &tenant,
                        Method::POST,
                        &format!("/campaigns/{id}/lists"),
                        Some(json!({"list_id": list})),
                    )
                    .await;
                self.log.push(format!("attach {tenant}/{id} {list}: {s}"));
                return;
            }
            6..=10 => ("launch", format!("/campaigns/{id}/launch"), Method::POST),
            11..=12 => ("pause", format!("/campaigns/{id}/pause"), Method::POST),
            13..=15 => ("resume", format!("/campaigns/{id}/resume"), Method::POST),
            16..=17 => ("retry", format!("/campaigns/{id}/retry"), Method::POST),
            18 => {
                let now = self.now();
                self.tenants[t].campaigns[c].resets += 1;
                self.tenants[t].campaigns[c].reset_at.push(now);
                ("reset", format!("/campaigns/{id}/reset"), Method::POST)
            }
            19 if self.dice(300) => ("cancel", format!("/campaigns/{id}/cancel"), Method::POST),
            20 if self.dice(200) => {
                self.tenants[t].campaigns[c].deleted = true;
                ("delete", format!("/campaigns/{id}"), Method::DELETE)
            }
            21..=27 => {
                self.customer_writes(t, false).await;
                return;
            }
            28..=29 => {
                self.recontact(t).await;
                return;
            }
            30 => {
                self.customer_writes(t, true).await;
                return;
            }
            31 => {
                self.template_event(t).await;
                return;
            }
            32..=54 => {
                self.run_sender().await;
                return;
            }
            55..=69 => {
                self.run_webhooks().await;
                return;
            }
            70..=79 => {
                self.run_tick().await;
                return;
            }
            // Reports: on odd seeds (no inline budget) they walk in the background beside
            // everything else, and a recount repairs the counters, which must still equal
            // a recount of the entries once everything settled.
            80 => (
                "recount",
                format!("/campaigns/{id}/stats/recount"),
                Method::POST,
            ),
            81 => ("cost", format!("/campaigns/{id}/cost"), Method::GET),
            _ => {
                let secs = match self.pick(10) {
                    0 => 3600 * (1 + self.pick(12) as i64),
                    1..=3 => 60 + self.pick(600) as i64,
                    _ => 1 + self.pick(30) as i64,
                };
                self.s.clock.advance(Duration::seconds(secs));
                return;
            }
        };
        let body = (what == "reset").then(|| json!({"confirm": true}));
        let (s, v) = self.api(&tenant, method, &path, body).await;
        if matches!(what, "cancel" | "delete") && (s.is_success() || s.is_server_error()) {
            let now = self.now();
            self.tenants[t].campaigns[c].ended_at.get_or_insert(now);
            if what == "delete" {
                self.tenants[t].campaigns[c].deleted_at.get_or_insert(now);
            }
        }
        self.log.push(format!(
            "{} {what} {tenant}/{id}: {s} {}",
            self.now(),
            v["error"]
        ));
    }

    /// A customer of tenant `t` writes to its number: an answer to a message it got, a
    /// message out of the blue, or STOP.
    async fn customer_writes(&mut self, t: usize, stop: bool) {
        let sender_id = self.tenants[t].sender_id.clone();
        let got: Vec<Delivered> = self
            .provider
            .delivered
            .lock()
            .unwrap()
            .iter()
            .filter(|d| d.sender_id == sender_id)
            .cloned()
            .collect();
        let (phone, context) = if !got.is_empty() && self.dice(850) {
            let d = &got[self.pick(got.len())];
            (d.to.clone(), self.dice(600).then(|| d.message_id.clone()))
        } else {
            (phones()[self.pick(PHONES)].clone(), None)
        };
        self.next_reply += 1;
        let message_id = format!("wamid.in{}", self.next_reply);
        let text = if stop { "STOP" } else { "Yes please" };
        let event = Inbound::Message(InboundMessage {
            sms: false,
            sender_id: sender_id.clone(),
            from: PhoneNumber::parse(&phone).unwrap(),
            message_id: message_id.clone(),
            at: self.now(),
            context_id: context,
            text: Some(text.into()),
            button: None,
            user_id: None,
        });
        self.provider.hook(1 + self.pick(20) as i64, event);
        self.replies.push(Reply {
            sender_id,
            phone,
            message_id,
            stop,
            handled_at: None,
            tried: Vec::new(),
        });
    }

    /// An operator of tenant `t` sends the recontact template to a contact, under the one
    /// idempotency key the simulation uses for that contact, and sends it again the way a
    /// client that lost the answer does: once more, or twice at the same moment. Now and
    /// then the key comes with another request.
    async fn recontact(&mut self, t: usize) {
        let i = self.pick(4);
        let phone = phones()[i].clone();
        let tenant = self.tenants[t].name.clone();
        let variables = if self.dice(100) {
            json!([{"source": "text", "value": "someone else"}])
        } else {
            json!([{"source": "contact_name"}])
        };
        let body = json!({"account_id": self.tenants[t].account_id, "variables": variables});
        let request = || {
            let req = axum::http::Request::builder()
                .method(Method::POST)
                .uri(format!("/contacts/{phone}/recontact"))
                .header("content-type", "application/json")
                .header("x-tenant-id", &tenant)
                .header("Idempotency-Key", format!("recontact-{i}"))
                .body(axum::body::Body::from(body.to_string()))
                .unwrap();
            testkit::harness::send(&self.s.api, req)
        };
        let answers = if self.dice(300) {
            let (a, b) = tokio::join!(request(), request());
            vec![a.0, b.0]
        } else {
            let mut answers = Vec::new();
            for _ in 0..1 + self.pick(2) {
                answers.push(request().await.0);
            }
            answers
        };
        self.log.push(format!(
            "{} recontact {tenant} {phone}: {answers:?}",
            self.now()
        ));
    }

    /// Meta pauses tenant `t`'s template, or approves it again.
    async fn template_event(&mut self, t: usize) {
        let (event, status) = if self.dice(500) {
            ("PAUSED", TemplateStatus::Paused)
        } else {
            ("APPROVED", TemplateStatus::Approved)
        };
        self.provider.hook(
            1,
            Inbound::TemplateStatus(TemplateUpdate {
                waba_id: Some(self.tenants[t].waba_id.clone()),
                template_id: None,
                name: "offer".into(),
                language: "en".into(),
                event: event.into(),
                status: Some(status),
                reason: None,
                quality: None,
                category: None,
            }),
        );
    }

    /// The launcher's tick and the sweeper, each of which may be killed.
    async fn run_tick(&self) {
        let _ = killable(
            &self.faults,
            lambda::launcher(&self.s.sys.dispatcher, json!({"action": "tick"})),
        )
        .await;
        if let Some(scheduler) = &self.s.scheduler {
            let _ = killable(&self.faults, self.s.sys.fire_due_schedules(scheduler)).await;
        }
        let _ = killable(&self.faults, lambda::sweeper(&self.s.sys.sweeper)).await;
    }

    /// One batch of the send queue to the sender, as the event source mapping hands it;
    /// a killed sender deletes nothing, so its records come back.
    async fn run_sender(&self) {
        let queue = self.s.memory_queue();
        let received = queue.receive_msgs(1 + self.pick(10) as u32);
        if received.is_empty() {
            return;
        }
        let event = sqs_event::event_from(&received);
        if let Some(resp) = killable(&self.faults, lambda::sender(&self.s.sys.sender, event)).await
        {
            for receipt in sqs_event::handled_receipts(&received, &resp) {
                queue.delete_receipt(&receipt);
            }
        }
    }

    /// Due webhooks, in random order, a few at a time; one the engine fails on (or is
    /// killed handling) is sent again later, as Meta retries.
    async fn run_webhooks(&mut self) {
        let now = self.now();
        let mut due: Vec<Hook> = {
            let mut hooks = self.provider.hooks.lock().unwrap();
            let (due, later): (Vec<Hook>, Vec<Hook>) = hooks.drain(..).partition(|h| h.at <= now);
            *hooks = later;
            due
        };
        // Reorder.
        for i in (1..due.len()).rev() {
            let j = self.pick(i + 1);
            due.swap(i, j);
        }
        for hook in due {
            let done = killable(
                &self.faults,
                self.s.sys.inbox.handle(vec![hook.event.clone()]),
            )
            .await;
            if let Inbound::Message(m) = &hook.event {
                let how = match &done {
                    Some(Ok(_)) => "ok".to_owned(),
                    Some(Err(e)) => format!("error {e}"),
                    None => "killed".into(),
                };
                self.log.push(format!(
                    "{now} hook {} from {}: {how}",
                    m.message_id,
                    m.from.as_str()
                ));
            }
            if let Inbound::Message(m) = &hook.event {
                if let Some(r) = self
                    .replies
                    .iter_mut()
                    .find(|r| r.message_id == m.message_id)
                {
                    r.tried.push(now);
                }
            }
            match done {
                Some(Ok(_)) => {
                    if let Inbound::Status(s) = &hook.event {
                        let stop = matches!(
                            s.status,
                            StatusKind::Failed {
                                code: Some(131050),
                                ..
                            }
                        );
                        if let (true, Some(r)) = (stop, &s.entry) {
                            let taken = self.provider.delivered.lock().unwrap().len();
                            let sender = s.sender_id.clone().unwrap_or_default();
                            self.marketing_stops
                                .push((sender, r.phone.as_str().to_owned(), taken));
                        }
                    }
                    if let Inbound::Message(m) = &hook.event {
                        if let Some(r) = self
                            .replies
                            .iter_mut()
                            .find(|r| r.message_id == m.message_id)
                        {
                            r.handled_at.get_or_insert(now);
                        }
                    }
                }
                _ => self.provider.hooks.lock().unwrap().push(Hook {
                    at: now + Duration::seconds(30),
                    event: hook.event,
                }),
            }
        }
    }

    /// Faults off; everything due is done and time runs on until nothing moves: queues
    /// empty, webhooks delivered, timeouts passed, stale claims reclaimed.
    async fn settle(&mut self) {
        self.faults.on.store(false, Ordering::SeqCst);
        for round in 0..400 {
            self.run_tick().await;
            while self.s.memory_queue().depth() > 0
                && self
                    .s
                    .memory_queue()
                    .next_arrival_at()
                    .is_none_or(|t| t <= self.now())
            {
                let before = self.s.memory_queue().depth();
                self.run_sender().await;
                if self.s.memory_queue().depth() == before {
                    break;
                }
            }
            self.run_webhooks().await;
            // The first rounds a minute apart (pacing), then hours (timeouts, late hooks).
            // 61 minutes, not 60: the sweeper's periodic walks come at a minute of the
            // hour, which hourly steps would always miss.
            let step = if round < 200 {
                Duration::seconds(61)
            } else {
                Duration::minutes(61)
            };
            self.s.clock.advance(step);
        }
        self.s
            .clock
            .advance(SENDING_STALE_AFTER + Duration::days(5));
        for _ in 0..3 {
            self.run_tick().await;
            self.run_webhooks().await;
        }
    }
}

// ---- the invariants ------------------------------------------------------------------------

impl World {
    /// Whether campaign `ca`'s message `a` to `phone` still held the contact at `at`: its
    /// timeout not passed, its campaign not ended, no reply handled in between, and its
    /// entry not released by a reset that reached it after the send.
    async fn holds_contact(
        &self,
        sender: &str,
        phone: &str,
        a: &Delivered,
        ca: &CampaignW,
        at: Time,
    ) -> bool {
        let answered = self.replies.iter().any(|r| {
            r.sender_id == sender
                && r.phone == phone
                && r.tried.iter().any(|h| *h >= a.at && *h <= at)
        });
        let mut open_until = a.at + Duration::days(i64::from(ca.timeout_days));
        if let Some(end) = ca.ended_at.filter(|e| *e >= a.at) {
            open_until = open_until.min(end);
        }
        // A reset of the first campaign (its walk runs later than the request) that
        // reached this entry after the send released the contact: the entry no longer
        // holds that message, and not because its outcome was unknown to the engine.
        let Some(ra) = EntryRef::decode(&a.callback_data) else {
            return false;
        };
        let now_entry = repo::get_entry(&*self.mem, &ra).await.unwrap();
        let attempt = EntryRef::decode_attempt(&a.callback_data).and_then(|(_, n)| n);
        let superseded = now_entry.as_ref().is_some_and(|e| {
            e.message_id.as_deref() != Some(a.message_id.as_str())
                && (e.attempts > attempt.unwrap_or(0)
                    || e.disposition.as_deref() != Some("outcome_unknown"))
        });
        let released = superseded && ca.reset_at.iter().any(|r| *r <= at);
        at < open_until && !answered && !released
    }

    /// Invariant 12 (see [`World::check`]).
    fn calls_broken(&self, resets: &HashMap<&str, u32>) -> Vec<String> {
        let mut broken = Vec::new();
        let calls = self.provider.calls.lock().unwrap().clone();
        let mut per_token: HashMap<&str, usize> = HashMap::new();
        let mut per_contact: HashMap<(&str, &str), usize> = HashMap::new();
        for c in &calls {
            let owner = self.tenants.iter().find(|t| t.instance == c.instance);
            let ours = self
                .tenants
                .iter()
                .find(|t| t.campaigns.iter().any(|x| x.id == c.campaign));
            if owner.map(|t| &t.name) != ours.map(|t| &t.name) {
                broken.push(format!(
                    "{} called on another tenant's instance {}",
                    c.campaign, c.instance
                ));
            }
            *per_token.entry(c.token.as_str()).or_insert(0) += 1;
            *per_contact
                .entry((c.campaign.as_str(), c.to.as_str()))
                .or_insert(0) += 1;
            let live_at = |t: Time| calls.iter().filter(move |o| o.started <= t && t < o.ended);
            let on_instance = live_at(c.started)
                .filter(|o| o.instance == c.instance)
                .count();
            let of_campaign = live_at(c.started)
                .filter(|o| o.campaign == c.campaign)
                .count();
            if on_instance > VOICE_LINES as usize || of_campaign > VOICE_CAMPAIGN_LINES as usize {
                broken.push(format!(
                    "{} calls at once on {} ({of_campaign} of {}) at {}",
                    on_instance, c.instance, c.campaign, c.started
                ));
            }
        }
        for (token, n) in per_token {
            if n > 1 {
                broken.push(format!("client token {token} dialled {n} times"));
            }
        }
        for ((campaign, to), n) in per_contact {
            let rounds = 1 + resets.get(campaign).copied().unwrap_or(0) as usize;
            if n > rounds * (1 + VOICE_RETRIES as usize) {
                broken.push(format!(
                    "{campaign} called {to} {n} times in {rounds} round(s)"
                ));
            }
        }
        broken
    }

    async fn entries(&self, tenant: &str, id: &str) -> Option<(String, Vec<HopperEntry>)> {
        let c = repo::get_campaign(&*self.mem, tenant, id).await.unwrap()?;
        let entries = repo::all_entries(&*self.mem, &c).await.unwrap();
        Some((c.status.as_str().to_owned(), entries))
    }

    /// Invariant 8: every status change of a campaign is published (at least once, the
    /// same each time); by version they chain from its first status to where it is now
    /// (DELETING once it is purged), and nothing is left in its outbox.
    async fn state_changes_broken(&self, tenant: &str, id: &str) -> Vec<String> {
        let mut broken = Vec::new();
        let mut moves: BTreeMap<u64, (&'static str, &'static str)> = BTreeMap::new();
        for e in self.bus.batches.lock().unwrap().iter().flatten() {
            let DomainEvent::CampaignStateChanged(m) = e else {
                continue;
            };
            if m.campaign_id != id {
                continue;
            }
            if m.tenant != tenant {
                broken.push(format!("{id}'s change published for {}", m.tenant));
            }
            let this = (m.from.as_str(), m.to.as_str());
            if moves.insert(m.version, this).is_some_and(|was| was != this) {
                broken.push(format!("{id} v{}: two different changes", m.version));
            }
        }
        let stored = repo::get_campaign(&*self.mem, tenant, id).await.unwrap();
        let now = stored.as_ref().map_or("DELETING", |c| c.status.as_str());
        if let Some(c) = &stored {
            if !c.unpublished.is_empty() {
                broken.push(format!("{id} keeps {:?} unpublished", c.unpublished));
            }
        }
        let mut at = None;
        for (from, to) in moves.values() {
            if at.is_some_and(|a| a != *from)
                || (at.is_none() && !["DRAFT", "READY"].contains(from))
            {
                broken.push(format!(
                    "{id}: a change before {from} -> {to} never published ({moves:?})"
                ));
            }
            at = Some(*to);
        }
        if at.unwrap_or("READY") != now && !(at.is_none() && now == "DRAFT") {
            broken.push(format!(
                "{id} is {now}, its published changes end at {at:?} ({moves:?})"
            ));
        }
        broken
    }

    /// Every promise, checked on the stored state and on what reached the customers.
    async fn check(&self) -> Vec<String> {
        let mut broken = Vec::new();
        // Campaign sends; recontacts (operator sends, callback `rc1|tenant|phone`) apart.
        let (recontacts, delivered): (Vec<Delivered>, Vec<Delivered>) = self
            .provider
            .delivered
            .lock()
            .unwrap()
            .iter()
            .cloned()
            .partition(|d| d.callback_data.starts_with("rc1|"));
        let owner: HashMap<&str, &TenantW> = self
            .tenants
            .iter()
            .flat_map(|t| [(t.sender_id.as_str(), t), (t.sms_sender_id.as_str(), t)])
            .collect();

        // 1. Never twice: no attempt of an entry reached the customer twice, and an entry
        // reached its customer again only after a reset of its campaign.
        let mut per_attempt: BTreeMap<&str, usize> = BTreeMap::new();
        let mut per_entry: BTreeMap<(String, String), usize> = BTreeMap::new();
        for d in &delivered {
            *per_attempt.entry(d.callback_data.as_str()).or_insert(0) += 1;
            let Some(r) = EntryRef::decode(&d.callback_data) else {
                broken.push(format!("a message without callback data: {d:?}"));
                continue;
            };
            // 5. Tenants apart: a message goes out on its own tenant's number only.
            match owner.get(d.sender_id.as_str()) {
                Some(t) if t.name == r.tenant => {}
                _ => broken.push(format!(
                    "{} sent on another tenant's number {}",
                    r.tenant, d.sender_id
                )),
            }
            *per_entry.entry((r.campaign_id, d.to.clone())).or_insert(0) += 1;
        }
        for (data, n) in per_attempt {
            if n > 1 {
                broken.push(format!("attempt {data} sent {n} times"));
            }
        }
        let resets: HashMap<&str, u32> = self
            .tenants
            .iter()
            .flat_map(|t| t.campaigns.iter().map(|c| (c.id.as_str(), c.resets)))
            .collect();
        // Meta's marketing limit refused an attempt (on the send answer, or by a status
        // after accepting it): the entry may go out once more for each.
        let limited: Vec<(EntryRef, u32, Time)> = {
            let refused = self.provider.limited.lock().unwrap().clone();
            let failed = delivered
                .iter()
                .filter(|d| d.code == Some(131049))
                .map(|d| (d.callback_data.clone(), d.at));
            refused
                .into_iter()
                .chain(failed)
                .filter_map(|(data, at)| {
                    let (r, attempt) = EntryRef::decode_attempt(&data)?;
                    Some((r, attempt?, at))
                })
                .collect()
        };
        for ((campaign, phone), n) in &per_entry {
            let holds = limited
                .iter()
                .filter(|(r, _, _)| r.campaign_id == *campaign && r.phone.as_str() == phone)
                .count();
            let resets = resets.get(campaign.as_str()).copied().unwrap_or(0) as usize;
            // An SMS fallback is the entry's one more send (invariant 11 bounds it).
            let sms = delivered
                .iter()
                .filter(|d| d.sms && d.to == *phone && d.callback_data.contains(campaign.as_str()))
                .count();
            if *n > 1 + resets + holds + sms {
                broken.push(format!(
                    "{campaign} sent {phone} {n} times with {resets} resets, {holds} marketing-limit holds and {sms} SMS fallbacks",
                ));
            }
        }

        // 11. The SMS fallback: an entry goes by SMS only after WhatsApp refused its
        // number as not on WhatsApp (131026 at the send, or in a failed status of an
        // earlier attempt), and once per round (its campaign's resets start a new one).
        let undeliverable: Vec<(EntryRef, u32, Time)> = {
            let refused = self.provider.undeliverable.lock().unwrap().clone();
            let failed = delivered
                .iter()
                .filter(|d| !d.sms && d.code == Some(131026))
                .map(|d| (d.callback_data.clone(), d.at));
            refused
                .into_iter()
                .chain(failed)
                .filter_map(|(data, at)| {
                    let (r, attempt) = EntryRef::decode_attempt(&data)?;
                    Some((r, attempt?, at))
                })
                .collect()
        };
        let mut sms_per_entry: BTreeMap<(String, String), usize> = BTreeMap::new();
        for d in delivered.iter().filter(|d| d.sms) {
            let Some((r, Some(a))) = EntryRef::decode_attempt(&d.callback_data) else {
                broken.push(format!("an SMS without callback data: {d:?}"));
                continue;
            };
            let after_refusal = undeliverable
                .iter()
                .any(|(u, ua, at)| *u == r && *ua < a && *at <= d.at);
            if !after_refusal {
                broken.push(format!(
                    "{}/{} sent by SMS (attempt {a}) with no refusal as not on WhatsApp before",
                    r.campaign_id,
                    r.phone.as_str()
                ));
            }
            *sms_per_entry
                .entry((r.campaign_id.clone(), r.phone.as_str().to_owned()))
                .or_insert(0) += 1;
        }
        for ((campaign, phone), n) in &sms_per_entry {
            let rounds = 1 + resets.get(campaign.as_str()).copied().unwrap_or(0) as usize;
            // An SMS whose answer was lost is never sent again automatically; a temporary
            // refusal is not a send at all. So: at most one per round.
            if *n > rounds {
                broken.push(format!(
                    "{campaign} sent {phone} {n} SMS fallbacks in {rounds} round(s)"
                ));
            }
        }

        // 9. Meta's marketing limit: an entry refused for it goes out again a day later at
        // the soonest (the campaigns keep the default rule), unless a reset sent it again.
        let reset_at: HashMap<&str, &Vec<Time>> = self
            .tenants
            .iter()
            .flat_map(|t| t.campaigns.iter().map(|c| (c.id.as_str(), &c.reset_at)))
            .collect();
        for (r, attempt, at) in &limited {
            for d in &delivered {
                let Some((rd, Some(a))) = EntryRef::decode_attempt(&d.callback_data) else {
                    continue;
                };
                let reset = reset_at
                    .get(r.campaign_id.as_str())
                    .is_some_and(|ts| ts.iter().any(|t| *t <= d.at));
                if rd == *r && a > *attempt && d.at < *at + Duration::hours(24) && !reset {
                    broken.push(format!(
                        "{}/{} refused for the marketing limit at {at} (attempt {attempt}), sent again at {} (attempt {a})",
                        r.campaign_id,
                        r.phone.as_str(),
                        d.at
                    ));
                }
            }
        }

        // 10. A contact whose 131050 (stopped marketing) the engine handled gets no
        // MARKETING template of that tenant afterwards (every campaign here is MARKETING).
        for (sender, phone, taken) in &self.marketing_stops {
            for d in delivered.iter().filter(|d| d.seq >= *taken && !d.sms) {
                if d.sender_id == *sender && d.to == *phone {
                    broken.push(format!(
                        "{phone}: marketing sent at {} after its 131050 was handled",
                        d.at
                    ));
                }
            }
        }

        // 2. One interaction at a time: no contact got a second campaign's message while
        // the first one's was open (its timeout not passed, no reply handled), nor inside
        // the second campaign's duplicate window.
        let campaign_of: HashMap<&str, &CampaignW> = self
            .tenants
            .iter()
            .flat_map(|t| t.campaigns.iter().map(|c| (c.id.as_str(), c)))
            .collect();
        let mut by_contact: BTreeMap<(String, String), Vec<&Delivered>> = BTreeMap::new();
        for d in &delivered {
            by_contact
                .entry((d.sender_id.clone(), d.to.clone()))
                .or_default()
                .push(d);
        }
        for ((sender, phone), sends) in &by_contact {
            for pair in sends.windows(2) {
                let (a, b) = (pair[0], pair[1]);
                let (Some(ra), Some(rb)) = (
                    EntryRef::decode(&a.callback_data),
                    EntryRef::decode(&b.callback_data),
                ) else {
                    continue;
                };
                // A message that never reached the phone opened nothing for the contact.
                if ra.campaign_id == rb.campaign_id || a.failed {
                    continue;
                }
                let (Some(ca), Some(cb)) = (
                    campaign_of.get(ra.campaign_id.as_str()),
                    campaign_of.get(rb.campaign_id.as_str()),
                ) else {
                    continue;
                };
                if self.holds_contact(sender, phone, a, ca, b.at).await {
                    let first = repo::get_entry(&*self.mem, &ra).await.unwrap();
                    if std::env::var("SIM_LOG").is_ok() {
                        let i = repo::get_interaction(
                            &*self.mem,
                            sender,
                            &PhoneNumber::parse(phone).unwrap(),
                        )
                        .await
                        .unwrap();
                        eprintln!("  interaction now: {i:?}\n  sends: {a:?}\n  {b:?}");
                    }
                    broken.push(format!(
                        "{phone}: {} sent at {} while {}'s message of {} was open (first: {:?})",
                        rb.campaign_id,
                        b.at,
                        ra.campaign_id,
                        a.at,
                        first.map(|e| (
                            e.state,
                            e.attempts,
                            e.message_id,
                            e.sent_at,
                            e.reason,
                            e.disposition
                        )),
                    ));
                }
                let forgotten = ca.deleted_at.is_some_and(|d| d <= b.at);
                if let (Some(days), false) = (cb.duplicate_window_days, forgotten) {
                    if a.at > b.at - Duration::days(i64::from(days)) {
                        broken.push(format!(
                            "{phone}: {} sent at {} inside its duplicate window after {} at {}",
                            rb.campaign_id, b.at, ra.campaign_id, a.at
                        ));
                    }
                }
            }
        }

        // 6. Recontacts: on the tenant's own number, never to a contact whose STOP was
        // handled, never while a campaign's message holds the contact, and one keyed
        // request (the simulation keys each contact's recontacts alike) reaches the
        // contact at most once a day: a retry of it sends nothing.
        let mut keyed: BTreeMap<(&str, &str), Vec<&Delivered>> = BTreeMap::new();
        for d in &recontacts {
            let tenant = d.callback_data.split('|').nth(1).unwrap_or_default();
            if owner.get(d.sender_id.as_str()).map(|t| t.name.as_str()) != Some(tenant) {
                broken.push(format!(
                    "{tenant} recontacted on another tenant's number {}",
                    d.sender_id
                ));
            }
            keyed
                .entry((d.sender_id.as_str(), d.to.as_str()))
                .or_default()
                .push(d);
            if self.replies.iter().any(|r| {
                r.stop
                    && r.sender_id == d.sender_id
                    && r.phone == d.to
                    && r.handled_at.is_some_and(|h| h < d.at)
            }) {
                broken.push(format!("{}: recontacted at {} after its STOP", d.to, d.at));
            }
            let last = by_contact
                .get(&(d.sender_id.clone(), d.to.clone()))
                .and_then(|sends| sends.iter().rev().find(|a| a.seq < d.seq && !a.failed));
            if let Some(a) = last {
                let ca = EntryRef::decode(&a.callback_data)
                    .and_then(|r| campaign_of.get(r.campaign_id.as_str()).copied());
                if let Some(ca) = ca {
                    if self.holds_contact(&d.sender_id, &d.to, a, ca, d.at).await {
                        broken.push(format!(
                            "{}: recontacted at {} while {}'s message of {} was open",
                            d.to, d.at, ca.id, a.at
                        ));
                    }
                }
            }
        }
        for ((_, phone), sends) in &keyed {
            for pair in sends.windows(2) {
                if pair[1].at - pair[0].at < Duration::hours(24) {
                    broken.push(format!(
                        "{phone}: one keyed recontact sent at {} and again at {}",
                        pair[0].at, pair[1].at
                    ));
                }
            }
        }

        // 12. Voice (issue 17): a call on the tenant's own instance only; one call per
        // client token (an attempt never dials twice); a contact called at most
        // (1 + retries) times per round of its campaign; and never more calls really in
        // progress at once than the account's lines, nor than the campaign's.
        broken.extend(self.calls_broken(&resets));

        // 3. Never stranded, 4. exact statistics.
        for t in &self.tenants {
            for c in &t.campaigns {
                broken.extend(self.state_changes_broken(&t.name, &c.id).await);
                let Some((status, entries)) = self.entries(&t.name, &c.id).await else {
                    if !c.deleted {
                        broken.push(format!("{} vanished without a delete", c.id));
                    }
                    continue;
                };
                for e in &entries {
                    // 9. At most three holds for the marketing limit (the default rule),
                    // and never more than Meta's refusals of the entry.
                    let refusals = limited
                        .iter()
                        .filter(|(r, _, _)| r.campaign_id == c.id && r.phone == e.phone)
                        .count();
                    if e.marketing_holds as usize > refusals.min(3) {
                        broken.push(format!(
                            "{}/{} held {} times for the marketing limit",
                            c.id,
                            e.phone.as_str(),
                            e.marketing_holds
                        ));
                    }
                    let stuck = match e.state {
                        EntryState::Sending => true,
                        EntryState::Fresh => status == "RUNNING" || status == "COMPLETED",
                        EntryState::Pending => status == "COMPLETED",
                        _ => false,
                    };
                    if stuck {
                        broken.push(format!(
                            "{}/{} {} stranded {} (campaign {status}, reason {:?})",
                            t.name,
                            c.id,
                            e.phone.as_str(),
                            e.state.as_str(),
                            e.reason
                        ));
                    }
                }
                if status == "RUNNING" {
                    broken.push(format!(
                        "{}/{} still RUNNING after everything settled",
                        t.name, c.id
                    ));
                }
                let recount: BTreeMap<String, i64> = stats::recount(&entries)
                    .into_iter()
                    .map(|(k, v)| (k.to_owned(), v))
                    .filter(|(_, v)| *v != 0)
                    .collect();
                let live: BTreeMap<String, i64> = repo::get_counters(&*self.mem, &t.name, &c.id)
                    .await
                    .unwrap()
                    .into_iter()
                    .filter(|(_, v)| *v != 0)
                    .collect();
                if live != recount {
                    broken.push(format!(
                        "{}/{} counters {live:?} != recount {recount:?}",
                        t.name, c.id
                    ));
                }
            }
        }

        // 5. Tenants apart, 6. every STOP on the list, 7. every reply published once.
        let batches = self.bus.batches.lock().unwrap().clone();
        // Delivery to the bus is at least once (a publish whose outbox item could not be
        // marked is published again), so "once" means: at least once, and every
        // publication of one message says the same (the same events in one batch).
        let mut published: BTreeMap<String, Vec<String>> = BTreeMap::new();
        for batch in &batches {
            let mut said: BTreeMap<String, String> = BTreeMap::new();
            for e in batch {
                let id = match e {
                    DomainEvent::ReplyReceived(r) => &r.message_id,
                    DomainEvent::InboundConversation(r) => &r.message_id,
                    _ => continue,
                };
                said.entry(id.clone())
                    .or_default()
                    .push_str(&format!("{e:?}; "));
            }
            for (id, text) in said {
                published.entry(id).or_default().push(text);
            }
        }
        for e in batches.iter().flatten() {
            let (tenant, sender, message) = match e {
                DomainEvent::ReplyReceived(r) => {
                    (Some(r.tenant.clone()), &r.sender_id, &r.message_id)
                }
                DomainEvent::InboundConversation(r) => {
                    (r.tenant.clone(), &r.sender_id, &r.message_id)
                }
                _ => continue,
            };
            if let Some(tenant) = tenant {
                if owner.get(sender.as_str()).is_none_or(|t| t.name != tenant) {
                    broken.push(format!(
                        "reply {message} to {sender} published for {tenant}"
                    ));
                }
            }
        }
        for r in &self.replies {
            let owner = owner[r.sender_id.as_str()];
            let phone = PhoneNumber::parse(&r.phone).unwrap();
            if r.stop
                && r.handled_at.is_some()
                && !repo::blocklists::is_opted_out(&*self.mem, &owner.name, &phone)
                    .await
                    .unwrap()
            {
                broken.push(format!(
                    "STOP {} from {} not on {}'s opt-out list",
                    r.message_id, r.phone, owner.name
                ));
            }
            let said = published.get(&r.message_id).cloned().unwrap_or_default();
            if r.handled_at.is_some() && !r.stop && said.is_empty() {
                broken.push(format!("reply {} never published", r.message_id));
            }
            if said.iter().any(|e| *e != said[0]) {
                broken.push(format!(
                    "reply {} published differently: {said:?}",
                    r.message_id
                ));
            }
        }
        for t in &self.tenants {
            for p in phones() {
                let phone = PhoneNumber::parse(&p).unwrap();
                let stopped = self.replies.iter().any(|r| {
                    r.stop && r.handled_at.is_some() && r.sender_id == t.sender_id && r.phone == p
                });
                if !stopped
                    && repo::blocklists::is_opted_out(&*self.mem, &t.name, &phone)
                        .await
                        .unwrap()
                {
                    broken.push(format!("{p} opted out of {} without a STOP to it", t.name));
                }
            }
        }
        broken
    }
}

// ---- running seeds -------------------------------------------------------------------------

/// Runs one seed; the broken invariants and a summary.
fn run_seed(seed: u64) -> (Vec<String>, String) {
    let rt = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .unwrap();
    rt.block_on(async move {
        // Ids count up from the seed, so a replay sees the same ones.
        shared::domain::seed_ids(Some(seed));
        let mut w = World::new(seed).await;
        w.faults.on.store(true, Ordering::SeqCst);
        for _ in 0..STEPS {
            w.step().await;
        }
        w.settle().await;
        let broken = w.check().await;
        // A digest of everything that happened: a replay must give the same one.
        let trace = format!(
            "{:?}{:?}",
            w.log,
            w.provider
                .delivered
                .lock()
                .unwrap()
                .iter()
                .map(|d| (&d.callback_data, d.at))
                .collect::<Vec<_>>()
        );
        let recontacts = w
            .provider
            .delivered
            .lock()
            .unwrap()
            .iter()
            .filter(|d| d.callback_data.starts_with("rc1|"))
            .count();
        let sms = w
            .provider
            .delivered
            .lock()
            .unwrap()
            .iter()
            .filter(|d| d.sms)
            .count();
        let summary = format!(
            "sends {} ({sms} SMS fallbacks), recontacts {recontacts}, replies {}, events {}, trace {:016x}",
            w.provider.delivered.lock().unwrap().len(),
            w.replies.len(),
            w.bus.events.lock().unwrap().len(),
            shared::domain::stable_hash(&trace)
        );
        if std::env::var("SIM_SEED").is_ok() || std::env::var("SIM_TRACE").is_ok() {
            eprintln!("seed {seed}: {summary}");
        }
        if std::env::var("SIM_LOG").is_ok() {
            for l in &w.log {
                eprintln!("  {l}");
            }
        }
        (broken, summary)
    })
}

fn env_u64(name: &str) -> Option<u64> {
    std::env::var(name).ok().and_then(|v| v.parse().ok())
}

#[test]
fn seeded_simulation_keeps_every_promise() {
    let seeds: Vec<u64> = match env_u64("SIM_SEED") {
        Some(one) => vec![one],
        None => {
            let first = env_u64("SIM_FIRST_SEED").unwrap_or(1);
            let n = env_u64("SIM_SEEDS").unwrap_or(200);
            (first..first + n).collect()
        }
    };
    let started = std::time::Instant::now();
    let mut failed = Vec::new();
    let mut sends = 0usize;
    for &seed in &seeds {
        let (broken, summary) = run_seed(seed);
        if let Some(n) = summary.split_whitespace().nth(1) {
            sends += n.trim_end_matches(',').parse::<usize>().unwrap_or(0);
        }
        if !broken.is_empty() {
            eprintln!("seed {seed} broke {} invariant(s) ({summary}); replay: SIM_SEED={seed} cargo test -p e2e --test simulation", broken.len());
            for b in broken.iter().take(10) {
                eprintln!("  {b}");
            }
            failed.push(seed);
        }
    }
    eprintln!(
        "simulation: {} seeds, {} sends, {} failed, {:.1} s",
        seeds.len(),
        sends,
        failed.len(),
        started.elapsed().as_secs_f64()
    );
    assert!(
        failed.is_empty(),
        "seeds that broke an invariant: {failed:?}"
    );
}
