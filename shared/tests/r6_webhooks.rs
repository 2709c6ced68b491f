//! R6.1 at scale: the webhook routes verify every provider's callback (Meta's
//! `X-Hub-Signature-256` over the raw body, Kaleyra's token) and only queue what passed;
//! the inbound worker applies the queue. A refused callback is a 401 that queues nothing
//! and changes nothing; a verified one is answered before anything is applied; and
//! 10,000 status and reply webhooks, shuffled and partly delivered twice, leave every
//! entry and counter where a ground truth computed from the set of events says, equal to
//! a full recount. On the in-memory adapters and on DynamoDB + SQS in the emulator.

use testkit::harness as common;

use axum::body::Body;
use axum::http::{Method, Request, StatusCode};
use chrono::{Duration, TimeZone};
use common::TENANT;
use serde_json::{json, Value};
use shared::adapters::aws;
use shared::domain::campaign::Campaign;
use shared::domain::hopper::{EntryState, HopperEntry};
use shared::domain::inbound::{Inbound, StatusKind};
use shared::domain::phone::PhoneNumber;
use shared::domain::stats;
use shared::domain::template::ContactData;
use shared::domain::Time;
use shared::ports::{Queue, Table};
use shared::providers::meta::{self, signature_header};
use shared::repo::{self, Interaction};
use std::collections::{BTreeMap, HashMap};
use std::sync::Arc;
use testkit::harness::{Spawn, Spawned};
use testkit::memory::MemoryTable;
use tower::ServiceExt;

const SECRET: &str = "test-app-secret";
const KALEYRA_TOKEN: &str = "kaleyra-callback-token";
/// The business number of `common::account_body()`: Meta's `phone_number_id`.
const SENDER: &str = "106540352242922";
const DISPLAY: &str = "15550783881";
const WABA: &str = "102290129340398";

// ---- the system under test -------------------------------------------------------------

/// The system whose webhook routes (`hook`: Meta and Kaleyra) queue on its inbound queue.
struct Env(Spawned);

impl std::ops::Deref for Env {
    type Target = Spawned;
    fn deref(&self) -> &Spawned {
        &self.0
    }
}

enum Backend {
    Memory,
    /// DynamoDB and an SQS inbound queue in the emulator.
    Emulator,
}

async fn env(backend: Backend) -> Env {
    let (table, inbound): (Arc<dyn Table>, Option<Arc<dyn Queue>>) = match backend {
        Backend::Memory => (Arc::new(MemoryTable::new()), None),
        Backend::Emulator => {
            let conf = common::emulator_config("R6 webhooks").await;
            let name = common::unique_name("r6-webhooks");
            let client = common::create_table(&conf, &name).await;
            let sqs = aws_sdk_sqs::Client::new(&conf);
            let url = aws::setup::ensure_queue(&sqs, &name)
                .await
                .expect("create the inbound queue");
            (
                Arc::new(aws::DynamoTable::new(client, name)),
                Some(Arc::new(aws::SqsQueue::new(sqs, url))),
            )
        }
    };
    // No message goes out in these tests: the default provider is never called.
    let mut spawn = Spawn::new(table)
        .queue_webhooks()
        .kaleyra_token(KALEYRA_TOKEN);
    if let Some(q) = inbound {
        spawn = spawn.inbound_queue(q);
    }
    Env(spawn.build())
}

fn table(e: &Env) -> &dyn Table {
    &*e.sys.ports.table
}

/// A campaign on the Meta test number whose template has the quick replies Yes and No,
/// closing on a quick reply, with a one-day response timeout.
async fn campaign(e: &Env) -> Campaign {
    let account = e
        .ok(Method::POST, "/accounts", Some(common::account_body()))
        .await;
    let account = account["id"].as_str().unwrap().to_owned();
    let template = common::merged(
        common::template_body(&account, "offer"),
        json!({"quick_replies": ["Yes", "No"]}),
    );
    e.ok(Method::POST, "/templates", Some(template)).await;
    let body = common::merged(
        common::campaign_body("R6", &account, "offer"),
        json!({"close_on_quick_reply": true, "response_timeout_days": 1}),
    );
    let c = e.ok(Method::POST, "/campaigns", Some(body)).await;
    repo::get_campaign(table(e), TENANT, c["id"].as_str().unwrap())
        .await
        .unwrap()
        .unwrap()
}

fn phone_of(i: usize) -> PhoneNumber {
    PhoneNumber::parse(&format!("9177{i:08}")).unwrap()
}

fn wamid_of(i: usize) -> String {
    format!("wamid.R6.{i}")
}

/// `n` entries sent at `t0` (PENDING, message id `wamid.R6.<i>`, the interaction open for
/// a day with the options Yes and No), with their counters, written as the sender writes
/// them.
async fn sent_entries(e: &Env, c: &Campaign, n: usize) -> Vec<HopperEntry> {
    use futures::StreamExt;
    let t = table(e);
    let now = e.clock_now();
    let first = repo::reserve_seq(t, TENANT, &c.id, n as u64).await.unwrap();
    let entries: Vec<HopperEntry> = futures::stream::iter(0..n)
        .map(|i| async move {
            let mut entry =
                HopperEntry::new(c, phone_of(i), ContactData::default(), first + i as u64);
            entry.claim(now).unwrap();
            entry.record_sent(wamid_of(i), now, Duration::days(1));
            let interaction =
                Interaction::opened(entry.entry_ref(), wamid_of(i), now, Duration::days(1), None)
                    .with_options(vec!["Yes".into(), "No".into()]);
            repo::put_interaction(t, SENDER, &interaction)
                .await
                .unwrap();
            assert!(repo::insert_entry(t, &mut entry, chrono::Utc::now())
                .await
                .unwrap());
            entry
        })
        .buffered(16)
        .collect()
        .await;
    let mut delta = stats::Delta::new();
    for entry in &entries {
        stats::fold(&mut delta, stats::delta(None, entry));
    }
    repo::add_counters(t, TENANT, &c.id, &delta).await.unwrap();
    entries
}

impl Env {
    fn clock_now(&self) -> Time {
        use shared::ports::Clock;
        self.clock.now()
    }
}

// ---- webhook bodies as Meta and Kaleyra send them --------------------------------------

fn meta_envelope(value: Value) -> String {
    json!({"object": "whatsapp_business_account",
        "entry": [{"id": WABA, "changes": [{"field": "messages", "value": value}]}]})
    .to_string()
}

fn metadata() -> Value {
    json!({"display_phone_number": DISPLAY, "phone_number_id": SENDER})
}

/// A status webhook for entry `i` (`failed` with Meta's 131026).
fn status_body(c: &Campaign, i: usize, status: &str, at: Time) -> String {
    let entry_ref = shared::domain::inbound::EntryRef {
        tenant: TENANT.into(),
        campaign_id: c.id.clone(),
        shard: shared::domain::hopper::shard_of(&phone_of(i), c.hopper_shards),
        phone: phone_of(i),
    };
    let mut item = json!({"id": wamid_of(i), "status": status,
        "timestamp": at.timestamp().to_string(), "recipient_id": phone_of(i).as_str(),
        "biz_opaque_callback_data": entry_ref.encode()});
    if status == "failed" {
        item["errors"] = json!([{"code": 131026, "title": "Message undeliverable",
            "message": "Message undeliverable",
            "error_data": {"details": "Message Undeliverable."}}]);
    } else if status != "read" {
        item["pricing"] = json!({"billable": true, "pricing_model": "PMP",
            "type": "regular", "category": "marketing"});
    }
    meta_envelope(
        json!({"messaging_product": "whatsapp", "metadata": metadata(),
        "statuses": [item]}),
    )
}

#[derive(Debug, Clone, PartialEq, Eq)]
enum ReplyKind {
    /// Typed text, without context (as WhatsApp sends typed replies).
    Text(String),
    /// A quick-reply tap, with the template message as context.
    Button(String),
}

fn reply_body(i: usize, kind: &ReplyKind, at: Time) -> String {
    let mut msg = json!({"from": phone_of(i).as_str(), "id": format!("wamid.IN.{i}"),
        "timestamp": at.timestamp().to_string()});
    match kind {
        ReplyKind::Text(t) => {
            msg["type"] = json!("text");
            msg["text"] = json!({ "body": t });
        }
        ReplyKind::Button(p) => {
            msg["type"] = json!("button");
            msg["button"] = json!({"payload": p, "text": p});
            msg["context"] = json!({"from": DISPLAY, "id": wamid_of(i)});
        }
    }
    meta_envelope(
        json!({"messaging_product": "whatsapp", "metadata": metadata(),
        "contacts": [{"profile": {"name": "Customer"}, "wa_id": phone_of(i).as_str()}],
        "messages": [msg]}),
    )
}

fn kaleyra_body(c: &Campaign, i: usize, status: &str, at: Time) -> String {
    let entry = status_body(c, i, "sent", at);
    let entry_ref: Value = serde_json::from_str(&entry).unwrap();
    let r = entry_ref["entry"][0]["changes"][0]["value"]["statuses"][0]["biz_opaque_callback_data"]
        .clone();
    json!({"meta_object": {"field": "messages", "value": {"messaging_product": "whatsapp",
            "metadata": metadata(),
            "statuses": [{"id": wamid_of(i), "status": status.to_lowercase(),
                "timestamp": at.timestamp().to_string(), "recipient_id": phone_of(i).as_str()}]}},
        "extra_info": {"ref": r, "message_id": wamid_of(i)},
        "status": status, "message_id": wamid_of(i)})
    .to_string()
}

fn meta_post(body: String, signature: Option<String>) -> Request<Body> {
    let mut req = Request::post("/webhooks/meta").header("content-type", "application/json");
    if let Some(sig) = signature {
        req = req.header("x-hub-signature-256", sig);
    }
    req.body(Body::from(body)).unwrap()
}

fn signed(body: &str) -> Request<Body> {
    meta_post(
        body.to_owned(),
        Some(signature_header(SECRET.as_bytes(), body.as_bytes())),
    )
}

async fn post(e: &Env, req: Request<Body>) -> (StatusCode, Value) {
    let (status, bytes) = common::send(&e.hook, req).await;
    (
        status,
        serde_json::from_slice(&bytes).unwrap_or(Value::Null),
    )
}

/// Everything a webhook could change: the entries, their interactions and the counters.
async fn snapshot(e: &Env, c: &Campaign) -> (Vec<HopperEntry>, Vec<Value>, BTreeMap<String, i64>) {
    let t = table(e);
    let mut entries = repo::all_entries(t, c).await.unwrap();
    entries.sort_by(|a, b| a.phone.as_str().cmp(b.phone.as_str()));
    let mut interactions = Vec::new();
    for entry in &entries {
        let i = repo::get_interaction(t, SENDER, &entry.phone)
            .await
            .unwrap();
        interactions.push(serde_json::to_value(i).unwrap());
    }
    let counters = repo::get_counters(t, TENANT, &c.id).await.unwrap();
    (entries, interactions, counters)
}

// ---- 401: no state change ----------------------------------------------------------------

async fn meta_refusals_change_nothing(e: Env) {
    let c = campaign(&e).await;
    sent_entries(&e, &c, 2).await;
    let at = e.clock_now() + Duration::seconds(30);
    let failed = status_body(&c, 0, "failed", at);
    let reply = reply_body(1, &ReplyKind::Button("Yes".into()), at);
    let before = snapshot(&e, &c).await;

    let right = |b: &str| signature_header(SECRET.as_bytes(), b.as_bytes());
    let hex_only = right(&failed).trim_start_matches("sha256=").to_owned();
    let cases: Vec<(&str, String, Option<String>)> = vec![
        // The body changed after signing (delivered turned into failed).
        (
            "tampered body",
            failed.clone(),
            Some(right(&failed.replace("\"failed\"", "\"delivered\""))),
        ),
        (
            "tampered reply",
            reply.replace("Yes", "No"),
            Some(right(&reply)),
        ),
        (
            "wrong secret",
            failed.clone(),
            Some(signature_header(b"wrong-secret", failed.as_bytes())),
        ),
        (
            "wrong secret on a reply",
            reply.clone(),
            Some(signature_header(b"wrong-secret", reply.as_bytes())),
        ),
        ("missing header", failed.clone(), None),
        ("empty header", failed.clone(), Some(String::new())),
        ("no sha256= prefix", failed.clone(), Some(hex_only.clone())),
        (
            "sha1 scheme",
            failed.clone(),
            Some(format!("sha1={hex_only}")),
        ),
        ("not hex", failed.clone(), Some("sha256=zz".repeat(8))),
        (
            "truncated",
            failed.clone(),
            Some(format!("sha256={}", &hex_only[..32])),
        ),
    ];
    for (case, body, sig) in cases {
        let (status, answer) = post(&e, meta_post(body, sig)).await;
        assert_eq!(status, StatusCode::UNAUTHORIZED, "{case}: {answer}");
        assert_eq!(answer["error"], "unauthorized", "{case}");
    }
    assert_eq!(
        e.sys.drain_inbound().await.unwrap(),
        0,
        "nothing was queued"
    );
    assert!(
        snapshot(&e, &c).await == before,
        "a refused webhook changes nothing"
    );

    // The same bodies, signed right, are queued and applied: the checks above could see a
    // change.
    for body in [&failed, &reply] {
        assert_eq!(post(&e, signed(body)).await.0, StatusCode::OK);
    }
    assert_eq!(e.sys.drain_inbound().await.unwrap(), 2);
    let (entries, _, _) = snapshot(&e, &c).await;
    let by_phone = |i: usize| entries.iter().find(|x| x.phone == phone_of(i)).unwrap();
    assert_eq!(by_phone(0).state, EntryState::Failed);
    assert!(by_phone(1).replied_at.is_some());
}

async fn kaleyra_refusals_change_nothing(e: Env) {
    let c = campaign(&e).await;
    sent_entries(&e, &c, 1).await;
    let body = kaleyra_body(&c, 0, "DELIVERED", e.clock_now() + Duration::seconds(5));
    let before = snapshot(&e, &c).await;
    let sid1 = shared::providers::kaleyra::callback_token(KALEYRA_TOKEN, "SID1");
    let kaleyra = |uri: &str, header: Option<&str>| {
        let mut req = Request::post(uri).header("content-type", "application/json");
        if let Some(h) = header {
            req = req.header("x-kaleyra-token", h);
        }
        req.body(Body::from(body.clone())).unwrap()
    };
    for (case, req) in [
        (
            "wrong token",
            kaleyra("/webhooks/kaleyra?token=wrong&sid=SID1", None),
        ),
        ("missing token", kaleyra("/webhooks/kaleyra?sid=SID1", None)),
        (
            "empty token",
            kaleyra("/webhooks/kaleyra?token=&sid=SID1", None),
        ),
        (
            "token one character short",
            kaleyra(
                &format!(
                    "/webhooks/kaleyra?token={}",
                    &KALEYRA_TOKEN[..KALEYRA_TOKEN.len() - 1]
                ),
                None,
            ),
        ),
        (
            "wrong token header",
            kaleyra("/webhooks/kaleyra?sid=SID1", Some("wrong")),
        ),
        (
            "the deployment's secret itself",
            kaleyra(
                &format!("/webhooks/kaleyra?sid=SID1&token={KALEYRA_TOKEN}"),
                None,
            ),
        ),
        (
            "another SID's token",
            kaleyra(&format!("/webhooks/kaleyra?sid=SID2&token={sid1}"), None),
        ),
        (
            "no SID",
            kaleyra(&format!("/webhooks/kaleyra?token={sid1}"), None),
        ),
    ] {
        let (status, answer) = post(&e, req).await;
        assert_eq!(status, StatusCode::UNAUTHORIZED, "{case}: {answer}");
    }
    assert_eq!(
        e.sys.drain_inbound().await.unwrap(),
        0,
        "nothing was queued"
    );
    assert!(
        snapshot(&e, &c).await == before,
        "a refused callback changes nothing"
    );

    // With the token (in the URL or the header) it is queued and applied.
    let (status, _) = post(
        &e,
        kaleyra(&format!("/webhooks/kaleyra?token={sid1}&sid=SID1"), None),
    )
    .await;
    assert_eq!(status, StatusCode::OK);
    let (status, _) = post(&e, kaleyra("/webhooks/kaleyra?sid=SID1", Some(&sid1))).await;
    assert_eq!(status, StatusCode::OK);
    assert_eq!(e.sys.drain_inbound().await.unwrap(), 2);
    let (entries, _, counters) = snapshot(&e, &c).await;
    assert!(entries[0].delivered_at.is_some());
    assert_eq!(counters.get("delivered"), Some(&1));
}

async fn answers_before_applying(e: Env) {
    let c = campaign(&e).await;
    sent_entries(&e, &c, 1).await;
    let before = snapshot(&e, &c).await;
    let body = status_body(&c, 0, "read", e.clock_now() + Duration::seconds(9));
    let started = std::time::Instant::now();
    let (status, answer) = post(&e, signed(&body)).await;
    let took = started.elapsed();
    assert_eq!((status, answer), (StatusCode::OK, json!({"queued": 1})));
    eprintln!("webhook answered in {took:?} having only queued the body");
    assert!(
        snapshot(&e, &c).await == before,
        "nothing is applied before the worker runs"
    );
    assert_eq!(e.sys.drain_inbound().await.unwrap(), 1);
    let (entries, _, counters) = snapshot(&e, &c).await;
    assert!(entries[0].read_at.is_some() && entries[0].delivered_at.is_some());
    assert_eq!(
        (counters.get("delivered"), counters.get("read")),
        (Some(&1), Some(&1))
    );
}

async fn oversized_body_is_413_and_queues_nothing(e: Env) {
    let c = campaign(&e).await;
    sent_entries(&e, &c, 1).await;
    let body = status_body(&c, 0, "read", e.clock_now());
    let padded = format!("{}{}", body, " ".repeat(200 * 1024));
    let (status, _) = post(&e, signed(&padded)).await;
    assert_eq!(status, StatusCode::PAYLOAD_TOO_LARGE);
    let (status, _) = post(
        &e,
        Request::post(format!("/webhooks/kaleyra?token={KALEYRA_TOKEN}"))
            .body(Body::from(padded))
            .unwrap(),
    )
    .await;
    assert_eq!(status, StatusCode::PAYLOAD_TOO_LARGE);
    assert_eq!(e.sys.drain_inbound().await.unwrap(), 0);
    // A verified body that is not JSON is acknowledged (the provider would retry it for
    // days) and dropped by the worker.
    let (status, _) = post(&e, signed("not json")).await;
    assert_eq!(status, StatusCode::OK);
    assert_eq!(e.sys.drain_inbound().await.unwrap(), 1);
    assert_eq!(e.sys.drain_inbound().await.unwrap(), 0, "acknowledged");
}

testkit::on_both_backends! {
    memory: env(Backend::Memory).await, dynamo: env(Backend::Emulator).await;
    meta_refusals_change_nothing:
        r6_1_tampered_body_wrong_secret_or_missing_signature_is_401_with_no_state_change,
        r6_1_tampered_body_wrong_secret_or_missing_signature_is_401_with_no_state_change_on_emulator;
    kaleyra_refusals_change_nothing:
        r6_1_kaleyra_callback_with_wrong_or_missing_token_is_401_with_no_state_change,
        r6_1_kaleyra_callback_with_wrong_or_missing_token_is_401_with_no_state_change_on_emulator;
    answers_before_applying:
        r6_1_webhook_answers_before_applying,
        r6_1_webhook_answers_before_applying_on_emulator;
    oversized_body_is_413_and_queues_nothing:
        r6_1_oversized_webhook_is_413_and_an_unparseable_verified_one_is_acknowledged,
        r6_1_oversized_webhook_is_413_and_an_unparseable_verified_one_is_acknowledged_on_emulator;
}

// ---- 10,000 webhooks, shuffled and duplicated ------------------------------------------

/// SplitMix64: a small seeded generator, so a failing run can be replayed.
struct Rng(u64);

impl Rng {
    fn next(&mut self) -> u64 {
        self.0 = self.0.wrapping_add(0x9E37_79B9_7F4A_7C15);
        let mut z = self.0;
        z = (z ^ (z >> 30)).wrapping_mul(0xBF58_476D_1CE4_E5B9);
        z = (z ^ (z >> 27)).wrapping_mul(0x94D0_49BB_1331_11EB);
        z ^ (z >> 31)
    }
    fn below(&mut self, n: u64) -> u64 {
        self.next() % n
    }
    /// True with `percent` % probability.
    fn chance(&mut self, percent: u64) -> bool {
        self.below(100) < percent
    }
    fn shuffle<T>(&mut self, v: &mut [T]) {
        for i in (1..v.len()).rev() {
            let j = self.below(i as u64 + 1) as usize;
            v.swap(i, j);
        }
    }
}

/// What the provider says about one sent message: the set of its events.
#[derive(Debug, Clone, Default)]
struct Plan {
    sent: Option<Time>,
    delivered: Option<Time>,
    read: Option<Time>,
    failed: Option<Time>,
    reply: Option<(ReplyKind, Time)>,
}

/// Per message either it failed (`sent` maybe, then `failed`), or any subset of `sent`,
/// `delivered` and `read` (so `read` sometimes without `delivered`) and maybe one reply
/// inside the timeout: a button tap, an option typed, or text matching no option.
///
/// A message that was delivered or answered never also fails: the domain keeps such an
/// entry PENDING when `delivered` comes first but FAILED when `failed` comes first, so
/// that outcome depends on arrival order (reported; not generated here).
fn plan(rng: &mut Rng, t0: Time) -> Plan {
    let secs = |base: i64, rng: &mut Rng| t0 + Duration::seconds(base + rng.below(60) as i64);
    let mut p = Plan::default();
    if rng.chance(15) {
        if rng.chance(60) {
            p.sent = Some(secs(1, rng));
        }
        p.failed = Some(secs(90, rng));
        return p;
    }
    if rng.chance(85) {
        p.sent = Some(secs(1, rng));
    }
    if rng.chance(70) {
        p.delivered = Some(secs(120, rng));
    }
    if rng.chance(75) {
        p.read = Some(secs(600, rng));
    }
    if rng.chance(35) {
        let kind = match rng.below(4) {
            0 => ReplyKind::Button("Yes".into()),
            1 => ReplyKind::Button("No".into()),
            2 => ReplyKind::Text("yes!".into()),
            _ => ReplyKind::Text("Tell me more".into()),
        };
        p.reply = Some((kind, secs(3600, rng)));
    }
    p
}

/// The final entry the set of events implies, as the domain's rules say
/// (`HopperEntry::apply_status` / `apply_answer`, `Answer::of`): statuses never move
/// backwards; `read` implies delivered and sent; `failed` fails the entry only if nothing
/// shows it was delivered; a reply in time proves delivered and read and is recorded; a
/// quick reply (tapped, or typed as an option's text) closes the entry and its
/// interaction, since the campaign closes on quick replies; text matching no option keeps
/// the entry PENDING and the interaction open (R5.3). Timestamps that several events may
/// set (delivered by `delivered`, `read` or a reply; read by `read` or a reply) are taken
/// from the first to arrive, so the expectation is the set of candidates.
struct Expected {
    state: EntryState,
    disposition: Option<String>,
    delivered: Vec<Time>,
    read: Vec<Time>,
    replied: Option<Time>,
    /// The recorded reply's (button, text).
    reply: Option<(Option<String>, Option<String>)>,
    interaction_closed: bool,
}

fn expected(p: &Plan) -> Expected {
    if p.failed.is_some() {
        return Expected {
            state: EntryState::Failed,
            disposition: Some("undeliverable".into()),
            delivered: vec![],
            read: vec![],
            replied: None,
            reply: None,
            interaction_closed: false,
        };
    }
    let reply_at = p.reply.as_ref().map(|(_, at)| *at);
    let delivered: Vec<Time> = [p.delivered, p.read, reply_at]
        .into_iter()
        .flatten()
        .collect();
    let read: Vec<Time> = [p.read, reply_at].into_iter().flatten().collect();
    let (state, disposition, reply) = match &p.reply {
        None => (EntryState::Pending, None, None),
        // Meta sends a tap's payload and its button text (here the same).
        Some((ReplyKind::Button(b), _)) => (
            EntryState::Closed,
            Some(format!("replied:{b}")),
            Some((Some(b.clone()), Some(b.clone()))),
        ),
        Some((ReplyKind::Text(t), _)) if t == "yes!" => (
            EntryState::Closed,
            Some("replied:Yes".into()),
            Some((None, Some(t.clone()))),
        ),
        // No option matched: still waiting, an agent asked to take over.
        Some((ReplyKind::Text(t), _)) => (
            EntryState::Pending,
            Some("agent_requested".into()),
            Some((None, Some(t.clone()))),
        ),
    };
    Expected {
        interaction_closed: state == EntryState::Closed,
        state,
        disposition,
        delivered,
        read,
        replied: reply_at,
        reply,
    }
}

/// How the inbound worker runs while the webhooks arrive.
#[derive(Clone, Copy, PartialEq, Eq)]
enum Worker {
    /// Only after every webhook was answered (which shows nothing is applied before).
    After,
    /// After every 50 webhooks, as Lambda polls while they arrive. The emulator's SQS
    /// slows down with the depth of a queue (every call walks all its messages), which
    /// real SQS does not.
    Alongside,
}

/// Builds the webhooks of `entries` messages (`plan` per message), delivers about a fifth
/// of them twice and all of them in a random order, 50 at a time, has the inbound worker
/// apply the queue and compares every entry and the counters with the ground truth and a
/// recount.
async fn shuffled_and_duplicated(
    e: Env,
    entries: usize,
    seed: u64,
    min_webhooks: usize,
    worker: Worker,
) {
    let c = campaign(&e).await;
    let t0 = e.clock_now();
    let started = std::time::Instant::now();
    sent_entries(&e, &c, entries).await;
    let setup = started.elapsed();

    let mut rng = Rng(seed);
    let plans: Vec<Plan> = (0..entries).map(|_| plan(&mut rng, t0)).collect();
    let mut bodies = Vec::new();
    for (i, p) in plans.iter().enumerate() {
        for (status, at) in [
            ("sent", p.sent),
            ("delivered", p.delivered),
            ("read", p.read),
            ("failed", p.failed),
        ] {
            if let Some(at) = at {
                bodies.push(status_body(&c, i, status, at));
            }
        }
        if let Some((kind, at)) = &p.reply {
            bodies.push(reply_body(i, kind, *at));
        }
    }
    let unique = bodies.len();
    let again: Vec<String> = bodies.iter().filter(|_| rng.chance(20)).cloned().collect();
    bodies.extend(again);
    rng.shuffle(&mut bodies);
    let total = bodies.len();
    assert!(
        total >= min_webhooks,
        "{total} webhooks, wanted at least {min_webhooks}"
    );

    let posting = std::time::Instant::now();
    let mut handed = 0;
    let mut working = std::time::Duration::ZERO;
    for chunk in bodies.chunks(50) {
        let answers =
            futures::future::join_all(chunk.iter().map(|b| e.hook.clone().oneshot(signed(b))))
                .await;
        for a in answers {
            assert_eq!(a.unwrap().status(), StatusCode::OK);
        }
        if worker == Worker::Alongside {
            let started = std::time::Instant::now();
            handed += e.sys.drain_inbound().await.unwrap();
            working += started.elapsed();
        }
    }
    let posted = posting.elapsed() - working;
    if worker == Worker::After {
        let (stored, _, _) = snapshot(&e, &c).await;
        assert!(
            stored
                .iter()
                .all(|x| x.delivered_at.is_none() && x.state == EntryState::Pending),
            "nothing applied before the worker ran"
        );
    }
    let started = std::time::Instant::now();
    // A record whose entry was contended past the retries comes back after the
    // visibility timeout, as SQS would deliver it again.
    for _ in 0..5 {
        handed += e.sys.drain_inbound().await.unwrap();
        e.clock.advance(Duration::seconds(31));
    }
    working += started.elapsed();
    let worked = working;
    assert!(handed >= total, "{handed} handed to the worker of {total}");
    assert_eq!(
        e.sys.drain_inbound().await.unwrap(),
        0,
        "the queue is empty"
    );

    // Every entry against the ground truth.
    let t = table(&e);
    let (stored, interactions, counters) = snapshot(&e, &c).await;
    assert_eq!(stored.len(), entries);
    let by_phone: HashMap<String, (&HopperEntry, &Value)> = stored
        .iter()
        .zip(&interactions)
        .map(|(x, i)| (x.phone.as_str().to_owned(), (x, i)))
        .collect();
    let failure_reason =
        match &meta::parse_webhook(status_body(&c, 0, "failed", t0).as_bytes()).unwrap()[..] {
            [Inbound::Status(s)] => match &s.status {
                StatusKind::Failed { reason, .. } => reason.clone(),
                other => panic!("{other:?}"),
            },
            other => panic!("{other:?}"),
        };
    let mut wrong = Vec::new();
    let mut truth = stats::Delta::new();
    for (i, p) in plans.iter().enumerate() {
        let want = expected(p);
        let (got, interaction) = by_phone[phone_of(i).as_str()];
        let mut check = |what: &str, ok: bool| {
            if !ok {
                wrong.push(format!("entry {i} {what}: plan {p:?} got {got:?}"));
            }
        };
        check("state", got.state == want.state);
        check("disposition", got.disposition == want.disposition);
        check("sent_at", got.sent_at == Some(t0));
        check(
            "message id",
            got.message_id.as_deref() == Some(wamid_of(i).as_str()),
        );
        check(
            "delivered_at",
            match got.delivered_at {
                None => want.delivered.is_empty(),
                Some(at) => want.delivered.contains(&at),
            },
        );
        check(
            "read_at",
            match got.read_at {
                None => want.read.is_empty(),
                Some(at) => want.read.contains(&at),
            },
        );
        check("replied_at", got.replied_at == want.replied);
        check(
            "reply",
            got.reply
                .as_ref()
                .map(|r| (r.button.clone(), r.text.clone()))
                == want.reply,
        );
        check(
            "expires_at",
            // A failed entry keeps its timeout: a late `delivered` would reopen it.
            got.expires_at
                == matches!(want.state, EntryState::Pending | EntryState::Failed)
                    .then(|| t0 + Duration::days(1)),
        );
        if want.state == EntryState::Failed {
            check(
                "reason",
                got.reason.as_deref() == Some(failure_reason.as_str()),
            );
        }
        check(
            "interaction closed",
            interaction["closed_at"].is_string() == want.interaction_closed,
        );
        // The counters the ground truth implies, built from the truth, not the entry.
        let mut truth_entry = got.clone();
        truth_entry.state = want.state;
        truth_entry.disposition = want.disposition.clone();
        truth_entry.sent_at = Some(t0);
        truth_entry.delivered_at = want.delivered.first().copied();
        truth_entry.read_at = want.read.first().copied();
        truth_entry.replied_at = want.replied;
        stats::fold(&mut truth, stats::delta(None, &truth_entry));
    }
    assert!(
        wrong.is_empty(),
        "{} of {entries} entries differ from the ground truth; first: {:#?}",
        wrong.len(),
        &wrong[..wrong.len().min(5)]
    );
    // The live counters equal a full recount and the ground truth.
    let c2 = repo::get_campaign(t, TENANT, &c.id).await.unwrap().unwrap();
    let recount: BTreeMap<String, i64> = stats::recount(&repo::all_entries(t, &c2).await.unwrap())
        .into_iter()
        .map(|(k, v)| (k.to_owned(), v))
        .collect();
    let live: BTreeMap<String, i64> = counters.into_iter().filter(|(_, v)| *v != 0).collect();
    assert_eq!(live, recount, "live counters equal a recount");
    let truth: BTreeMap<String, i64> = truth.into_iter().map(|(k, v)| (k.to_owned(), v)).collect();
    assert_eq!(live, truth, "live counters equal the ground truth");
    eprintln!(
        "{entries} entries (setup {setup:.1?}); {total} webhooks ({unique} distinct, {} repeated) \
         answered in {posted:.1?} ({:.2} ms each, 50 at a time), applied by the worker in {worked:.1?}; \
         counters {live:?}",
        total - unique,
        posted.as_secs_f64() * 1000.0 / total as f64,
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn r6_1_randomised_10000_webhooks_shuffled_and_duplicated_match_ground_truth() {
    shuffled_and_duplicated(
        env(Backend::Memory).await,
        3_500,
        0x5EED_0006,
        10_000,
        Worker::After,
    )
    .await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn r6_1_randomised_10000_webhooks_shuffled_and_duplicated_match_ground_truth_on_emulator() {
    shuffled_and_duplicated(
        env(Backend::Emulator).await,
        350,
        0x5EED_0007,
        1_000,
        Worker::Alongside,
    )
    .await;
}

#[test]
fn r6_1_the_generator_covers_read_without_delivered_and_every_reply_kind() {
    let t0 = chrono::Utc.with_ymd_and_hms(2026, 11, 21, 9, 0, 0).unwrap();
    let mut rng = Rng(0x5EED_0006);
    let plans: Vec<Plan> = (0..3_500).map(|_| plan(&mut rng, t0)).collect();
    let count = |f: &dyn Fn(&Plan) -> bool| plans.iter().filter(|p| f(p)).count();
    assert!(count(&|p| p.read.is_some() && p.delivered.is_none()) > 100);
    assert!(count(&|p| p.failed.is_some() && p.sent.is_none()) > 50);
    assert!(count(&|p| matches!(&p.reply, Some((ReplyKind::Text(t), _)) if t == "yes!")) > 50);
    assert!(count(&|p| matches!(&p.reply, Some((ReplyKind::Text(t), _)) if t != "yes!")) > 50);
    assert!(count(&|p| matches!(p.reply, Some((ReplyKind::Button(_), _)))) > 100);
    assert!(count(&|p| p.reply.is_some() && p.read.is_none() && p.delivered.is_none()) > 20);
    assert!(
        count(&|p| p.sent.is_none()
            && p.delivered.is_none()
            && p.read.is_none()
            && p.failed.is_none()
            && p.reply.is_none())
            > 10,
        "some messages hear nothing"
    );
}
