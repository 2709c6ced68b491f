//! R4.2-R4.8 end to end: the sender's checks before each send (block lists, opt-outs,
//! phone validity, duplicate window, active interactions, template variables), the
//! classification of provider failures, and the dispatcher's pacing (calling hours, the
//! messaging tier, throttling back-off, the account limit shared by its campaigns, the
//! default rate). Campaigns are set up over the HTTP API, launched, ticked and drained
//! into the sender, which sends through the real Meta adapter to the WhatsApp simulator
//! over loopback; replies come back as signed webhooks. Where storage matters the same
//! cases also run on DynamoDB in the local emulator.

use testkit::harness as common;

use axum::http::Method;
use chrono::{DateTime, Duration, TimeZone, Utc};
use common::TENANT;
use serde_json::{json, Value};
use shared::app::dispatch::{TickReport, WAITING_FOR_CALLING_HOURS};
use shared::domain::blocklist::OptOut;
use shared::domain::eligibility::{self, WAITING_FOR_INTERACTION};
use shared::domain::hopper::{shard_of, EntryState, HopperEntry};
use shared::domain::inbound::EntryRef;
use shared::domain::phone::PhoneNumber;
use shared::domain::stats;
use shared::domain::template::ContactData;
use shared::ports::{Clock, Table};
use shared::repo;
use std::collections::{BTreeMap, BTreeSet};
use std::sync::Arc;
use testkit::harness::{Spawn, Spawned};
use testkit::memory::MemoryTable;
use testkit::simulator::{ReplyKind, SimConfig, SimFailure, SIM_DEFAULT_RATE_LIMIT};

type Time = DateTime<Utc>;

/// Seconds between launcher ticks (as `Spawn` wires them).
const TICK: i64 = 60;
/// The sender id of the account every test sends from (the simulator accepts any).
const SENDER: &str = "106540352242922";
/// The error text of a number with fewer than five digits (R4.4), verbatim.
const SHORT_PHONE_ERROR: &str =
    "Contact with invalid phone number: 1234. The phone number should have at least 5 digits.";

// ---- harness ---------------------------------------------------------------------------

type H = Spawned;

#[derive(Clone, Copy)]
struct Opts {
    /// The simulator's throughput limit per sender and second.
    sim_limit: Option<u32>,
    /// Whether the simulator posts statuses and replies to the webhook.
    webhooks: bool,
}

impl Default for Opts {
    fn default() -> Self {
        Opts {
            sim_limit: Some(SIM_DEFAULT_RATE_LIMIT),
            webhooks: true,
        }
    }
}

/// The whole system on `table`, its clock frozen at `at`, sending to the simulator; with
/// `opts.webhooks` the simulator's statuses and replies reach the webhook router.
async fn harness(table: Arc<dyn Table>, at: Time, opts: Opts) -> H {
    Spawn::new(table)
        .at(at)
        .simulator(SimConfig {
            reply_percent: 0,
            rate_limit_per_sec: opts.sim_limit,
            ..SimConfig::default()
        })
        .serve_webhooks(opts.webhooks)
        .spawn()
        .await
}

fn memory() -> Arc<dyn Table> {
    Arc::new(MemoryTable::new())
}

async fn dynamo() -> Arc<dyn Table> {
    Arc::new(common::dynamo_table("R4 sending", "r4-sending").await)
}

fn table(h: &H) -> &dyn Table {
    &*h.sys.ports.table
}

/// Moves the clock forward to `at`.
fn set_time(h: &H, at: Time) {
    let now = h.clock.now();
    assert!(at >= now, "the clock only moves forward: {now} -> {at}");
    h.clock.advance(at - now);
}

fn utc(d: u32, h: u32, m: u32) -> Time {
    Utc.with_ymd_and_hms(2026, 11, d, h, m, 0).unwrap()
}

/// One launcher tick, then the sender fed second by second through the tick as the
/// messages' SQS delays run out (the clock ends one tick later, when the next is due).
async fn run_tick(h: &H) -> TickReport {
    let report = h.sys.dispatcher.tick().await.unwrap();
    for _ in 0..TICK {
        h.sys.drain_queue().await.unwrap();
        h.clock.advance(Duration::seconds(1));
    }
    h.sys.drain_queue().await.unwrap();
    h.simulator().idle().await;
    report
}

fn id_of(v: &Value) -> String {
    v["id"].as_str().unwrap().to_owned()
}

/// An account (the simulator's number unless `extra` says otherwise) with the approved
/// template `offer` (`Hi {{1}}, code {{2}}`); its id.
async fn account(h: &H, extra: Value) -> String {
    let a = h
        .ok(
            Method::POST,
            "/accounts",
            Some(common::merged(common::account_body(), extra)),
        )
        .await;
    let id = id_of(&a);
    h.ok(
        Method::POST,
        "/templates",
        Some(common::template_body(&id, "offer")),
    )
    .await;
    id
}

/// `n` valid Indian mobile numbers starting `91` + `series` (three digits).
fn phones(series: &str, n: usize) -> Vec<String> {
    (0..n).map(|i| format!("91{series}{i:07}")).collect()
}

fn strings(phones: &[&str]) -> Vec<String> {
    phones.iter().map(|p| (*p).to_owned()).collect()
}

/// Contacts with a name and the field `code` the campaigns' template needs.
async fn add_contacts(h: &H, phones: &[String]) {
    for chunk in phones.chunks(1000) {
        let body: Vec<Value> = chunk
            .iter()
            .map(|p| json!({"phone": p, "name": format!("Customer {p}"), "fields": {"code": format!("K{p}")}}))
            .collect();
        h.ok(Method::POST, "/contacts", Some(Value::Array(body)))
            .await;
    }
}

/// A list holding `phones` (existing contacts); its id.
async fn list_of(h: &H, phones: &[String]) -> String {
    let id = id_of(
        &h.ok(Method::POST, "/lists", Some(json!({"name": "L"})))
            .await,
    );
    for chunk in phones.chunks(1000) {
        h.ok(
            Method::POST,
            &format!("/lists/{id}/members"),
            Some(json!({ "phones": chunk })),
        )
        .await;
    }
    id
}

/// A campaign sending `offer` from `account`, with `extra` settings; its id.
async fn campaign(h: &H, name: &str, account: &str, extra: Value) -> String {
    let c = h
        .ok(
            Method::POST,
            "/campaigns",
            Some(common::merged(
                common::campaign_body(name, account, "offer"),
                extra,
            )),
        )
        .await;
    id_of(&c)
}

async fn attach(h: &H, campaign: &str, list: &str) {
    h.ok(
        Method::POST,
        &format!("/campaigns/{campaign}/lists"),
        Some(json!({ "list_id": list })),
    )
    .await;
}

/// A campaign with a list of `phones` attached, launched (RUNNING); its id.
async fn running(h: &H, name: &str, account: &str, extra: Value, phones: &[String]) -> String {
    let id = campaign(h, name, account, extra).await;
    let list = list_of(h, phones).await;
    attach(h, &id, &list).await;
    common::launch(&h.api, &id).await;
    id
}

/// Puts `phone` straight into a campaign's hopper, as stored numbers that the contacts
/// API would refuse (a short number) end up there, with its counters.
async fn insert_raw_entry(h: &H, campaign: &str, phone: &str) {
    let t = table(h);
    let c = repo::get_campaign(t, TENANT, campaign)
        .await
        .unwrap()
        .unwrap();
    let seq = repo::reserve_seq(t, TENANT, campaign, 1).await.unwrap();
    let contact = ContactData {
        name: Some("Short".into()),
        fields: [("code".to_owned(), "S1".to_owned())].into(),
        ..Default::default()
    };
    let mut e = HopperEntry::new(&c, PhoneNumber::parse(phone).unwrap(), contact, seq);
    assert!(repo::insert_entry(t, &mut e, chrono::Utc::now())
        .await
        .unwrap());
    repo::add_counters(t, TENANT, campaign, &stats::delta(None, &e))
        .await
        .unwrap();
}

async fn block_list(h: &H, name: &str, phones: &[&str]) -> String {
    let id = id_of(
        &h.ok(Method::POST, "/block-lists", Some(json!({ "name": name })))
            .await,
    );
    if !phones.is_empty() {
        h.ok(
            Method::POST,
            &format!("/block-lists/{id}/numbers"),
            Some(json!({ "phones": phones })),
        )
        .await;
    }
    id
}

async fn opt_out(h: &H, phone: &str) {
    h.ok(Method::POST, "/opt-outs", Some(json!({ "phone": phone })))
        .await;
}

/// The campaign's entries by phone.
async fn entries(h: &H, campaign: &str) -> BTreeMap<String, HopperEntry> {
    let c = repo::get_campaign(table(h), TENANT, campaign)
        .await
        .unwrap()
        .unwrap();
    repo::all_entries(table(h), &c)
        .await
        .unwrap()
        .into_iter()
        .map(|e| (e.phone.to_string(), e))
        .collect()
}

async fn entry(h: &H, campaign: &str, phone: &str) -> HopperEntry {
    entries(h, campaign)
        .await
        .remove(phone)
        .unwrap_or_else(|| panic!("{phone} is in the hopper of {campaign}"))
}

/// The live counters equal a recount of the entries.
async fn assert_counters_match(h: &H, campaign: &str) {
    let t = table(h);
    let c = repo::get_campaign(t, TENANT, campaign)
        .await
        .unwrap()
        .unwrap();
    let all = repo::all_entries(t, &c).await.unwrap();
    let recount: BTreeMap<String, i64> = stats::recount(&all)
        .into_iter()
        .map(|(k, v)| (k.to_owned(), v))
        .collect();
    let live: BTreeMap<String, i64> = repo::get_counters(t, TENANT, campaign)
        .await
        .unwrap()
        .into_iter()
        .filter(|(_, v)| *v != 0)
        .collect();
    assert_eq!(live, recount, "counters of {campaign}");
}

/// Every send the simulator accepted: the entry it came from and when.
fn sends(h: &H) -> Vec<(EntryRef, Time)> {
    h.simulator()
        .sent()
        .into_iter()
        .map(|s| {
            let r = EntryRef::decode(s.callback_data.as_deref().expect("callback data"))
                .expect("our callback data");
            (r, s.at)
        })
        .collect()
}

/// The phones a campaign's messages reached, in send order.
fn sent_by(h: &H, campaign: &str) -> Vec<String> {
    sends(h)
        .into_iter()
        .filter(|(r, _)| r.campaign_id == campaign)
        .map(|(r, _)| r.phone.to_string())
        .collect()
}

/// How many messages reached `phone`, from any campaign.
fn sent_to(h: &H, phone: &str) -> usize {
    h.simulator()
        .sent()
        .iter()
        .filter(|s| s.to == phone)
        .count()
}

/// Sends per campaign in `[from, to)`.
fn sent_between(h: &H, from: Time, to: Time) -> BTreeMap<String, usize> {
    let mut out = BTreeMap::new();
    for (r, at) in sends(h) {
        if from <= at && at < to {
            *out.entry(r.campaign_id).or_insert(0) += 1;
        }
    }
    out
}

/// An entry a check ruled out (R4.2): in `state` with `reason`, never sent.
fn assert_not_sent(e: &HopperEntry, state: EntryState, reason: &str) {
    assert_eq!(
        (e.state, e.reason.as_deref(), e.disposition.as_deref()),
        (state, Some(reason), Some("not_sent")),
        "{e:?}"
    );
    assert!(
        e.message_id.is_none() && e.sent_at.is_none() && e.wait_until.is_none(),
        "{e:?}"
    );
}

fn assert_sent(e: &HopperEntry) {
    assert_eq!(e.state, EntryState::Pending, "{e:?}");
    assert!(e.message_id.is_some() && e.sent_at.is_some(), "{e:?}");
    assert_eq!(
        (e.reason.as_deref(), e.error.as_deref()),
        (None, None),
        "{e:?}"
    );
}

// ---- R4.2 the checks, in order -----------------------------------------------------------

async fn each_check_outcome_is_recorded_in_order(backend: Arc<dyn Table>) {
    let yesterday = common::t0() - Duration::days(1);
    let h = harness(backend, yesterday, Opts::default()).await;
    let acc = account(&h, json!({})).await;
    let normal = "919812340001";
    let blocked = "919812340002";
    let opted = "919812340003";
    let dup = "919812340004";
    let blocked_dup = "919812340005";
    let opted_dup = "919812340006";
    let no_code = "919812340007";
    let short = "1234";
    add_contacts(
        &h,
        &strings(&[normal, blocked, opted, dup, blocked_dup, opted_dup]),
    )
    .await;
    h.ok(
        Method::POST,
        "/contacts",
        Some(json!({"phone": no_code, "name": "No code"})),
    )
    .await;

    // Yesterday another campaign of the tenant wrote to three of them.
    let earlier = running(
        &h,
        "Yesterday",
        &acc,
        json!({}),
        &strings(&[dup, blocked_dup, opted_dup]),
    )
    .await;
    assert_eq!(run_tick(&h).await.enqueued, 3);
    let mut reached = sent_by(&h, &earlier);
    reached.sort();
    assert_eq!(reached, [dup, blocked_dup, opted_dup]);

    // Today: a block list and two opt-outs, and a campaign with a 2-day duplicate window
    // whose hopper also holds a number too short to dial.
    set_time(&h, common::t0());
    let dnc = block_list(&h, "DNC", &[blocked, blocked_dup]).await;
    opt_out(&h, opted).await;
    opt_out(&h, opted_dup).await;
    let id = campaign(
        &h,
        "Today",
        &acc,
        json!({"block_lists": [dnc], "duplicate_window_days": 2}),
    )
    .await;
    let list = list_of(
        &h,
        &strings(&[normal, blocked, opted, dup, blocked_dup, opted_dup, no_code]),
    )
    .await;
    attach(&h, &id, &list).await;
    insert_raw_entry(&h, &id, short).await;
    common::launch(&h.api, &id).await;
    let report = run_tick(&h).await;
    assert_eq!(report.enqueued, 8, "{report:?}");

    let es = entries(&h, &id).await;
    assert_eq!(es.len(), 8);
    assert_sent(&es[normal]);
    // 1. Block list, then the tenant's opt-out list.
    assert_not_sent(&es[blocked], EntryState::BlockList, "block list");
    assert_eq!(
        es[blocked].error.as_deref(),
        Some(format!("the number is on block list {dnc}").as_str())
    );
    assert_not_sent(&es[opted], EntryState::BlockList, "opted out");
    assert_eq!(
        es[opted].error.as_deref(),
        Some("the contact opted out of messages from this business")
    );
    // 2. Phone validity: with a block list configured, BLOCK_LIST with the exact text.
    assert_not_sent(&es[short], EntryState::BlockList, "block list");
    assert_eq!(es[short].error.as_deref(), Some(SHORT_PHONE_ERROR));
    // 3. The duplicate window, over the tenant's other campaigns.
    assert_not_sent(&es[dup], EntryState::Skipped, "duplicate");
    let why = es[dup].error.as_deref().unwrap();
    assert!(
        why.contains(&earlier) && why.contains("2-day"),
        "names the campaign and the window: {why}"
    );
    // A contact failing several checks is recorded by the first one.
    assert_not_sent(&es[blocked_dup], EntryState::BlockList, "block list");
    assert_not_sent(&es[opted_dup], EntryState::BlockList, "opted out");
    // 5. Template variables come last, when the message is rendered (R3.3).
    assert_not_sent(&es[no_code], EntryState::Failed, "template variables");
    assert!(es[no_code].error.is_some(), "{:?}", es[no_code]);

    // Only the eligible contact reached the simulator.
    assert_eq!(sent_by(&h, &id), [normal]);
    assert_eq!(h.simulator().sent().len(), 4);
    for p in [blocked, opted, short, no_code] {
        assert_eq!(sent_to(&h, p), 0, "{p}");
    }
    for p in [dup, blocked_dup, opted_dup] {
        assert_eq!(sent_to(&h, p), 1, "only yesterday's message reached {p}");
    }
    let hopper = h
        .ok(Method::GET, &format!("/campaigns/{id}/hopper"), None)
        .await;
    assert_eq!(hopper["total"], 8, "{hopper}");
    assert_eq!(
        (
            &hopper["states"]["PENDING"],
            &hopper["states"]["BLOCK_LIST"],
            &hopper["states"]["SKIPPED"],
            &hopper["states"]["FAILED"],
            &hopper["states"]["FRESH"],
        ),
        (&json!(1), &json!(5), &json!(1), &json!(1), &json!(0)),
        "{hopper}"
    );
    assert_counters_match(&h, &id).await;
    assert_counters_match(&h, &earlier).await;
}

testkit::on_both_backends! {
    memory: memory(), dynamo: dynamo().await;
    each_check_outcome_is_recorded_in_order: r4_2_each_check_outcome_is_recorded_in_order, r4_2_each_check_outcome_is_recorded_in_order_on_dynamodb;
}

// ---- R4.3 opt-outs -----------------------------------------------------------------------

#[tokio::test]
async fn r4_3_opted_out_contact_is_never_sent_even_without_block_lists() {
    let h = harness(memory(), common::t0(), Opts::default()).await;
    let acc = account(&h, json!({})).await;
    let normal = "919812340101";
    let by_api = "919812340102";
    let by_keyword = "919812340103";
    let all = strings(&[normal, by_api, by_keyword]);
    add_contacts(&h, &all).await;
    // Attached before the opt-outs: the check is made at send time.
    let id = campaign(&h, "No lists", &acc, json!({})).await;
    let list = list_of(&h, &all).await;
    attach(&h, &id, &list).await;
    // An operator opts one out over the API (typed as people type numbers); the other
    // replied STOP (what the replies path stores).
    opt_out(&h, "+91 98123 40102").await;
    let stop = OptOut::by_keyword(
        PhoneNumber::parse(by_keyword).unwrap(),
        "STOP",
        h.clock.now(),
    );
    repo::blocklists::put_opt_out(table(&h), TENANT, &stop)
        .await
        .unwrap();
    common::launch(&h.api, &id).await;
    let c = h.ok(Method::GET, &format!("/campaigns/{id}"), None).await;
    assert_eq!(c["block_lists"], json!([]), "{c}");
    run_tick(&h).await;

    let es = entries(&h, &id).await;
    assert_sent(&es[normal]);
    for p in [by_api, by_keyword] {
        assert_not_sent(&es[p], EntryState::BlockList, "opted out");
        assert_eq!(sent_to(&h, p), 0, "{p}");
    }
    // Another campaign that even includes contacts busy elsewhere honours it too.
    let other = running(
        &h,
        "Everyone",
        &acc,
        json!({"include_active_interactions": true}),
        &all,
    )
    .await;
    run_tick(&h).await;
    let es = entries(&h, &other).await;
    assert_sent(&es[normal]);
    for p in [by_api, by_keyword] {
        assert_not_sent(&es[p], EntryState::BlockList, "opted out");
        assert_eq!(sent_to(&h, p), 0, "{p}");
    }
    assert_eq!(sent_to(&h, normal), 2);
    // Later ticks change nothing.
    run_tick(&h).await;
    assert_eq!(h.simulator().sent().len(), 2);
    assert_counters_match(&h, &id).await;
    assert_counters_match(&h, &other).await;
}

// ---- R4.4 phone validity -------------------------------------------------------------------

#[tokio::test]
async fn r4_4_short_phone_stays_in_hopper_with_error() {
    let h = harness(memory(), common::t0(), Opts::default()).await;
    let acc = account(&h, json!({})).await;
    let normal = "919812340201";
    add_contacts(&h, &strings(&[normal])).await;
    let id = campaign(&h, "Short", &acc, json!({})).await;
    let list = list_of(&h, &strings(&[normal])).await;
    attach(&h, &id, &list).await;
    insert_raw_entry(&h, &id, "1234").await;
    common::launch(&h.api, &id).await;
    run_tick(&h).await;

    let e = entry(&h, &id, "1234").await;
    assert_not_sent(&e, EntryState::Failed, "Invalid Number");
    assert_eq!(e.error.as_deref(), Some(SHORT_PHONE_ERROR));
    assert_eq!(sent_to(&h, "1234"), 0);
    assert_sent(&entry(&h, &id, normal).await);
    // It stays in the hopper, counted, through later ticks and sweeps.
    h.sys.sweeper.sweep().await.unwrap();
    run_tick(&h).await;
    let again = entry(&h, &id, "1234").await;
    assert_eq!((again.state, again.attempts), (EntryState::Failed, 0));
    let hopper = h
        .ok(Method::GET, &format!("/campaigns/{id}/hopper"), None)
        .await;
    assert_eq!(
        (&hopper["total"], &hopper["states"]["FAILED"]),
        (&json!(2), &json!(1)),
        "{hopper}"
    );
    assert_eq!(h.simulator().sent().len(), 1);
    assert_counters_match(&h, &id).await;
}

#[tokio::test]
async fn r4_4_short_phone_is_block_list_when_a_block_list_is_configured() {
    let h = harness(memory(), common::t0(), Opts::default()).await;
    let acc = account(&h, json!({})).await;
    let normal = "919812340301";
    add_contacts(&h, &strings(&[normal])).await;
    // The list does not hold the number: having one configured is what counts.
    let dnc = block_list(&h, "DNC", &["447911123456"]).await;
    let id = campaign(&h, "Short", &acc, json!({ "block_lists": [dnc] })).await;
    let list = list_of(&h, &strings(&[normal])).await;
    attach(&h, &id, &list).await;
    insert_raw_entry(&h, &id, "1234").await;
    common::launch(&h.api, &id).await;
    run_tick(&h).await;

    let e = entry(&h, &id, "1234").await;
    assert_not_sent(&e, EntryState::BlockList, "block list");
    assert_eq!(e.error.as_deref(), Some(SHORT_PHONE_ERROR));
    assert_eq!(sent_to(&h, "1234"), 0);
    assert_sent(&entry(&h, &id, normal).await);
    assert_counters_match(&h, &id).await;
}

/// The issue 13 fuzzing note: R4.4 could not happen, because the contacts API, the member
/// routes and the import refused a number under five digits, so no hopper ever held one.
/// Such a contact is now stored, flagged, and its campaigns show it as the seed says.
#[tokio::test]
async fn r4_4_a_short_number_from_the_api_or_an_import_is_stored_flagged_and_shown_by_campaigns() {
    let h = harness(memory(), common::t0(), Opts::default()).await;
    let acc = account(&h, json!({})).await;
    let normal = "919812340501";
    add_contacts(&h, &strings(&[normal])).await;
    // From the API, alone or among others.
    let c = h
        .ok(
            Method::POST,
            "/contacts",
            Some(json!({"phone": "1234", "name": "Ext"})),
        )
        .await;
    assert_eq!(
        (c["phone"].as_str(), c["invalid_phone"].as_str()),
        (Some("1234"), Some(SHORT_PHONE_ERROR)),
        "{c}"
    );
    // From an import.
    let csv = "phone,name\n+1 23,Old system\n919812340502,Fine\n";
    let (s, imp) = common::call_raw(
        &h.api,
        TENANT,
        Method::POST,
        "/contacts/import",
        "text/csv",
        axum::body::Body::from(csv),
    )
    .await;
    assert_eq!(
        (s, imp["imported"].as_u64(), imp["invalid"].as_u64()),
        (axum::http::StatusCode::CREATED, Some(2), Some(0)),
        "{imp}"
    );
    let imported = h.ok(Method::GET, "/contacts/123", None).await;
    assert_eq!(
        imported["invalid_phone"].as_str(),
        Some("Contact with invalid phone number: 123. The phone number should have at least 5 digits."),
        "{imported}"
    );
    // Updated by its own path like any contact; never recontacted.
    let c = h
        .ok(
            Method::PUT,
            "/contacts/1234",
            Some(json!({"phone": "1234", "name": "Ext 2"})),
        )
        .await;
    assert_eq!(c["invalid_phone"].as_str(), Some(SHORT_PHONE_ERROR), "{c}");
    let (s, v) = h
        .call(
            Method::POST,
            "/contacts/1234/recontact",
            Some(json!({"account_id": acc})),
        )
        .await;
    assert_eq!(
        (s, v["field"].as_str()),
        (axum::http::StatusCode::UNPROCESSABLE_ENTITY, Some("phone")),
        "{v}"
    );
    // A valid number carries no flag; a dialable but invalid one is still refused.
    let fine = h
        .ok(Method::GET, &format!("/contacts/{normal}"), None)
        .await;
    assert!(fine.get("invalid_phone").is_none(), "{fine}");
    let (s, v) = h
        .call(
            Method::POST,
            "/contacts",
            Some(json!({"phone": "+91 12345"})),
        )
        .await;
    assert_eq!(
        (s, v["field"].as_str()),
        (axum::http::StatusCode::UNPROCESSABLE_ENTITY, Some("phone")),
        "{v}"
    );
    // The member routes take them; a campaign keeps them in its hopper, never sending.
    let id = campaign(&h, "Short", &acc, json!({})).await;
    let list = list_of(&h, &strings(&[normal, "1234", "123"])).await;
    attach(&h, &id, &list).await;
    common::launch(&h.api, &id).await;
    run_tick(&h).await;
    let e = entry(&h, &id, "1234").await;
    assert_not_sent(&e, EntryState::Failed, "Invalid Number");
    assert_eq!(e.error.as_deref(), Some(SHORT_PHONE_ERROR));
    assert_not_sent(
        &entry(&h, &id, "123").await,
        EntryState::Failed,
        "Invalid Number",
    );
    assert_sent(&entry(&h, &id, normal).await);
    assert_eq!(h.simulator().sent().len(), 1);
    assert_counters_match(&h, &id).await;
}

// ---- R4.5 duplicate window ---------------------------------------------------------------

async fn duplicate_window_skips_contacts_sent_by_another_campaign(backend: Arc<dyn Table>) {
    let h = harness(backend, common::t0() - Duration::days(3), Opts::default()).await;
    let main = account(&h, json!({})).await;
    // A second number of the same tenant: the window covers every sender of the tenant.
    let second = account(
        &h,
        json!({"name": "Second", "sender_id": "106540352242923"}),
    )
    .await;
    let three_days_ago = "919812340401";
    let yesterday = "919812340402";
    let never = "919812340403";
    add_contacts(&h, &strings(&[three_days_ago, yesterday, never])).await;

    let old = running(&h, "Old", &main, json!({}), &strings(&[three_days_ago])).await;
    run_tick(&h).await;
    set_time(&h, common::t0() - Duration::days(1));
    let recent = running(&h, "Recent", &second, json!({}), &strings(&[yesterday])).await;
    run_tick(&h).await;
    assert_eq!(sent_by(&h, &old), [three_days_ago]);
    assert_eq!(sent_by(&h, &recent), [yesterday]);

    set_time(&h, common::t0());
    let id = running(
        &h,
        "Now",
        &main,
        json!({"duplicate_window_days": 2}),
        &strings(&[three_days_ago, yesterday, never]),
    )
    .await;
    run_tick(&h).await;
    let es = entries(&h, &id).await;
    assert_not_sent(&es[yesterday], EntryState::Skipped, "duplicate");
    let why = es[yesterday].error.as_deref().unwrap();
    assert!(
        why.contains(&recent) && why.contains("2-day"),
        "names the campaign and the window: {why}"
    );
    // Outside the window, and never sent: both go out.
    assert_sent(&es[three_days_ago]);
    assert_sent(&es[never]);
    let mut reached = sent_by(&h, &id);
    reached.sort();
    assert_eq!(reached, [three_days_ago, never]);
    assert_eq!(sent_to(&h, yesterday), 1);
    assert_eq!(sent_to(&h, three_days_ago), 2);
    for c in [&old, &recent, &id] {
        assert_counters_match(&h, c).await;
    }
}

testkit::on_both_backends! {
    memory: memory(), dynamo: dynamo().await;
    duplicate_window_skips_contacts_sent_by_another_campaign: r4_5_duplicate_window_skips_contacts_sent_by_another_campaign, r4_5_duplicate_window_skips_contacts_sent_by_another_campaign_on_dynamodb;
}

// ---- R4.6 active interactions ------------------------------------------------------------

async fn contact_busy_in_another_campaign_waits(backend: Arc<dyn Table>) {
    let h = harness(backend, common::t0(), Opts::default()).await;
    let acc = account(&h, json!({})).await;
    let busy = "919812340501";
    let free = "919812340502";
    add_contacts(&h, &strings(&[busy, free])).await;

    // Campaign A writes to the contact and waits a day for the reply.
    let a = running(&h, "A", &acc, json!({}), &strings(&[busy])).await;
    run_tick(&h).await;
    assert_sent(&entry(&h, &a, busy).await);

    // Campaign B reaches it while A's interaction is open: it waits, still FRESH.
    let b = running(&h, "B", &acc, json!({}), &strings(&[busy, free])).await;
    let checked_at = h.clock.now();
    run_tick(&h).await;
    assert_sent(&entry(&h, &b, free).await);
    let e = entry(&h, &b, busy).await;
    assert_eq!(e.state, EntryState::Fresh, "{e:?}");
    assert_eq!(
        e.wait_until,
        Some(checked_at + eligibility::INTERACTION_RECHECK),
        "{e:?}"
    );
    assert_eq!(e.error.as_deref(), Some(WAITING_FOR_INTERACTION));
    assert_eq!((e.attempts, e.message_id.as_ref()), (0, None), "{e:?}");
    assert_eq!(sent_by(&h, &b), [free]);
    assert_eq!(sent_to(&h, busy), 1);
    assert_counters_match(&h, &b).await;

    // Looked at again after the recheck interval: A's interaction is still open.
    set_time(&h, checked_at + eligibility::INTERACTION_RECHECK);
    let rechecked_at = h.clock.now();
    assert_eq!(h.sys.sweeper.sweep().await.unwrap().released, 1);
    run_tick(&h).await;
    let e = entry(&h, &b, busy).await;
    assert_eq!(
        (e.state, e.wait_until),
        (
            EntryState::Fresh,
            Some(rechecked_at + eligibility::INTERACTION_RECHECK)
        ),
        "{e:?}"
    );
    assert_eq!(sent_to(&h, busy), 1);

    // The contact answers A: the interaction closes.
    let posted = h
        .simulator()
        .post_reply(busy, ReplyKind::Text("Thanks".into()))
        .await
        .unwrap();
    assert!(posted.accepted(), "{posted:?}");
    h.simulator().idle().await;
    let answered = entry(&h, &a, busy).await;
    assert_eq!(answered.state, EntryState::Closed, "{answered:?}");
    let phone = PhoneNumber::parse(busy).unwrap();
    let interaction = repo::get_interaction(table(&h), SENDER, &phone)
        .await
        .unwrap()
        .unwrap();
    assert!(interaction.closed_at.is_some(), "{interaction:?}");
    // Nothing goes out before the entry's wait ends...
    run_tick(&h).await;
    assert_eq!(sent_to(&h, busy), 1);
    // ...then the sweeper puts it back in line and B sends to the contact, once.
    set_time(&h, rechecked_at + eligibility::INTERACTION_RECHECK);
    assert_eq!(h.sys.sweeper.sweep().await.unwrap().released, 1);
    run_tick(&h).await;
    assert_eq!(sent_to(&h, busy), 2);
    let mut reached = sent_by(&h, &b);
    reached.sort();
    assert_eq!(reached, [busy, free]);
    let e = entry(&h, &b, busy).await;
    assert_sent(&e);
    assert_eq!((e.attempts, e.wait_until), (1, None), "{e:?}");
    run_tick(&h).await;
    h.sys.sweeper.sweep().await.unwrap();
    run_tick(&h).await;
    assert_eq!(sent_to(&h, busy), 2, "exactly once from B");
    assert_counters_match(&h, &a).await;
    assert_counters_match(&h, &b).await;
}

testkit::on_both_backends! {
    memory: memory(), dynamo: dynamo().await;
    contact_busy_in_another_campaign_waits: r4_6_contact_busy_in_another_campaign_waits_and_is_sent_after_it_closes, r4_6_contact_busy_in_another_campaign_waits_and_is_sent_after_it_closes_on_dynamodb;
}

#[tokio::test]
async fn r4_6_include_active_interactions_sends_at_once() {
    let h = harness(memory(), common::t0(), Opts::default()).await;
    let acc = account(&h, json!({})).await;
    let busy = "919812340601";
    add_contacts(&h, &strings(&[busy])).await;
    let a = running(&h, "A", &acc, json!({}), &strings(&[busy])).await;
    run_tick(&h).await;
    assert_sent(&entry(&h, &a, busy).await);
    let b = running(
        &h,
        "B",
        &acc,
        json!({"include_active_interactions": true}),
        &strings(&[busy]),
    )
    .await;
    run_tick(&h).await;
    // A's interaction is still open, and B sends anyway.
    let ea = entry(&h, &a, busy).await;
    assert_eq!(ea.state, EntryState::Pending, "{ea:?}");
    let eb = entry(&h, &b, busy).await;
    assert_sent(&eb);
    assert_eq!(eb.wait_until, None);
    assert_eq!(sent_by(&h, &b), [busy]);
    assert_eq!(sent_to(&h, busy), 2);
    assert_counters_match(&h, &a).await;
    assert_counters_match(&h, &b).await;
}

// ---- R4.7 provider outcomes ----------------------------------------------------------------

#[tokio::test]
async fn r4_7_permanent_temporary_and_campaign_failures_are_classified() {
    let h = harness(memory(), common::t0(), Opts::default()).await;
    let acc = account(&h, json!({})).await;
    // One a second, so each send is handled alone, in dispatch order.
    let id = campaign(&h, "Failures", &acc, json!({"rate": 1})).await;
    let shards = repo::get_campaign(table(&h), TENANT, &id)
        .await
        .unwrap()
        .unwrap()
        .hopper_shards;
    // The dispatcher takes the shards in turn: numbers on distinct shards go out in
    // shard order.
    let mut by_shard = BTreeMap::new();
    for p in phones("987", 400) {
        let s = shard_of(&PhoneNumber::parse(&p).unwrap(), shards);
        by_shard.entry(s).or_insert(p);
    }
    let order: Vec<String> = by_shard.into_values().take(6).collect();
    assert_eq!(order.len(), 6);
    let [permanent, temporary, first_ok, campaign_level, later_1, later_2] =
        <[String; 6]>::try_from(order.clone()).unwrap();
    add_contacts(&h, &order).await;
    let list = list_of(&h, &order).await;
    attach(&h, &id, &list).await;
    h.simulator()
        .set_failure(&permanent, SimFailure::permanent());
    h.simulator()
        .set_failure(&temporary, SimFailure::temporary());
    h.simulator()
        .set_failure(&campaign_level, SimFailure::campaign());
    common::launch(&h.api, &id).await;
    assert_eq!(run_tick(&h).await.enqueued, 6);

    let es = entries(&h, &id).await;
    // Permanent: FAILED with the provider's reason.
    let p = &es[&permanent];
    assert_eq!(
        (
            p.state,
            p.reason.as_deref(),
            p.disposition.as_deref(),
            p.attempts
        ),
        (
            EntryState::Failed,
            Some("Message Undeliverable"),
            Some("undeliverable"),
            1
        ),
        "{p:?}"
    );
    // Temporary: RETRY, with the reason kept.
    let t = &es[&temporary];
    assert_eq!((t.state, t.attempts), (EntryState::Retry, 1), "{t:?}");
    assert!(
        t.reason.as_deref().is_some_and(|r| r.contains("131000")),
        "{t:?}"
    );
    assert_sent(&es[&first_ok]);
    // Campaign-level: the campaign pauses itself with the reason shown; the provider
    // sent nothing, so the entry goes back in line (FRESH) with the reason visible as
    // its last attempt's result, not as a failure (issue 19, item 5).
    let c = &es[&campaign_level];
    assert_eq!(
        (c.state, c.attempts, c.message_id.as_ref(), c.claimed_at),
        (EntryState::Fresh, 1, None, None),
        "{c:?}"
    );
    assert_eq!((c.reason.as_ref(), c.error.as_ref()), (None, None), "{c:?}");
    let reason = c.last_attempt_error.clone().unwrap();
    assert!(reason.contains("132001"), "{reason}");
    let view = h.ok(Method::GET, &format!("/campaigns/{id}"), None).await;
    assert_eq!(view["status"], "PAUSED", "{view}");
    assert_eq!(
        view["pause_reason"].as_str(),
        Some(reason.as_str()),
        "{view}"
    );
    // The rest of the audience is untouched: not sent, still FRESH, never claimed.
    for p in [&later_1, &later_2] {
        let e = &es[p];
        assert_eq!(
            (e.state, e.attempts, e.error.as_deref(), e.reason.as_deref()),
            (EntryState::Fresh, 0, None, None),
            "{e:?}"
        );
        assert_eq!(sent_to(&h, p), 0);
    }
    assert_eq!(sent_by(&h, &id), std::slice::from_ref(&first_ok));
    assert_counters_match(&h, &id).await;

    // The operator fixes the cause and resumes: the entry put back in line and the rest
    // go out; the permanent and temporary failures stay as they are.
    h.simulator().clear_failures();
    h.ok(Method::POST, &format!("/campaigns/{id}/resume"), None)
        .await;
    assert_eq!(run_tick(&h).await.enqueued, 3);
    let es = entries(&h, &id).await;
    assert_sent(&es[&campaign_level]);
    assert_eq!(es[&campaign_level].attempts, 2);
    assert_sent(&es[&later_1]);
    assert_sent(&es[&later_2]);
    assert_eq!(es[&permanent].state, EntryState::Failed);
    assert_eq!(es[&temporary].state, EntryState::Retry);
    let mut reached = sent_by(&h, &id);
    reached.sort();
    let mut expected = vec![first_ok, campaign_level, later_1, later_2];
    expected.sort();
    assert_eq!(reached, expected);
    assert_counters_match(&h, &id).await;
}

// ---- R4.8 calling hours ------------------------------------------------------------------

#[tokio::test]
async fn r4_8_calling_hours_closed_sends_nothing_and_opens_later() {
    // 09:00 UTC is 10:00 in Paris; the window is 11:00-19:00 Paris (10:00-18:00 UTC).
    let h = harness(memory(), utc(21, 9, 0), Opts::default()).await;
    let acc = account(&h, json!({})).await;
    let all = phones("986", 5);
    add_contacts(&h, &all).await;
    let id = running(
        &h,
        "Office hours",
        &acc,
        json!({
            "pacing": {"unit": "contacts_per_hour", "value": 60},
            "calling_hours": {"start": "11:00", "end": "19:00", "timezone": "Europe/Paris"}
        }),
        &all,
    )
    .await;
    let closed = run_tick(&h).await;
    assert_eq!((closed.enqueued, closed.deferred), (0, 0), "{closed:?}");
    set_time(&h, utc(21, 9, 59));
    assert_eq!(run_tick(&h).await.enqueued, 0);
    // Campaign-zone windows hold nobody back: entries stay in line.
    for e in entries(&h, &id).await.values() {
        assert_eq!((e.state, e.wait_until), (EntryState::Fresh, None), "{e:?}");
    }
    assert!(h.simulator().sent().is_empty());

    // It opens at 11:00 Paris: one a minute from then.
    set_time(&h, utc(21, 10, 0));
    assert_eq!(run_tick(&h).await.enqueued, 1);
    set_time(&h, utc(21, 17, 59));
    assert_eq!(run_tick(&h).await.enqueued, 1);
    // 19:00 Paris: closed again until the next morning.
    let evening = h.sys.dispatcher.tick().await.unwrap();
    assert_eq!(evening.enqueued, 0, "{evening:?}");
    set_time(&h, utc(22, 9, 59));
    assert_eq!(run_tick(&h).await.enqueued, 0);
    set_time(&h, utc(22, 10, 0));
    assert_eq!(run_tick(&h).await.enqueued, 1);

    let times: Vec<Time> = sends(&h).into_iter().map(|(_, at)| at).collect();
    assert_eq!(
        times,
        [utc(21, 10, 0), utc(21, 17, 59), utc(22, 10, 0)],
        "sent only inside the window"
    );
    let fresh = entries(&h, &id)
        .await
        .values()
        .filter(|e| e.state == EntryState::Fresh)
        .count();
    assert_eq!(fresh, 2);
    assert_counters_match(&h, &id).await;
}

#[tokio::test]
async fn r4_8_recipient_time_zone_defers_each_contact_to_its_morning() {
    // 04:00 UTC: 09:30 in India (open), 05:00 in Paris (closed until 08:00 UTC), and the
    // Canada has several zones, so its numbers keep the campaign's zone (UTC, until 09:00).
    // (A Canadian +1 number: the campaign's MARKETING template never goes to US numbers.)
    let h = harness(memory(), utc(21, 4, 0), Opts::default()).await;
    let acc = account(&h, json!({})).await;
    let india = "919812345678";
    let france = "33612345678";
    let us = "14165550199";
    let all = strings(&[india, france, us]);
    add_contacts(&h, &all).await;
    let id = running(
        &h,
        "Mornings",
        &acc,
        json!({"calling_hours": {"start": "09:00", "end": "20:00", "timezone": "UTC",
            "recipient_timezone": true}}),
        &all,
    )
    .await;
    let first = run_tick(&h).await;
    assert_eq!((first.enqueued, first.deferred), (1, 2), "{first:?}");
    assert_eq!(sent_by(&h, &id), [india]);
    let es = entries(&h, &id).await;
    assert_sent(&es[india]);
    for (p, opens) in [(france, utc(21, 8, 0)), (us, utc(21, 9, 0))] {
        let e = &es[p];
        assert_eq!(
            (e.state, e.wait_until, e.error.as_deref()),
            (
                EntryState::Fresh,
                Some(opens),
                Some(WAITING_FOR_CALLING_HOURS)
            ),
            "{e:?}"
        );
    }
    assert_counters_match(&h, &id).await;

    // Nothing earlier.
    set_time(&h, utc(21, 7, 59));
    assert_eq!(h.sys.sweeper.sweep().await.unwrap().released, 0);
    assert_eq!(run_tick(&h).await.enqueued, 0);
    // 09:00 in Paris.
    set_time(&h, utc(21, 8, 0));
    assert_eq!(h.sys.sweeper.sweep().await.unwrap().released, 1);
    assert_eq!(run_tick(&h).await.enqueued, 1);
    assert_eq!(sent_by(&h, &id), [india, france]);
    // 09:00 in the campaign's zone, for the Canadian number.
    set_time(&h, utc(21, 9, 0));
    assert_eq!(h.sys.sweeper.sweep().await.unwrap().released, 1);
    assert_eq!(run_tick(&h).await.enqueued, 1);
    assert_eq!(sent_by(&h, &id), [india, france, us]);

    let at: BTreeMap<String, Time> = sends(&h)
        .into_iter()
        .map(|(r, at)| (r.phone.to_string(), at))
        .collect();
    assert_eq!(
        (at[india], at[france], at[us]),
        (utc(21, 4, 0), utc(21, 8, 0), utc(21, 9, 0))
    );
    for p in [india, france, us] {
        assert_eq!(sent_to(&h, p), 1, "{p}");
        assert_sent(&entry(&h, &id, p).await);
    }
    assert_counters_match(&h, &id).await;
}

// ---- R4.8 messaging tier -------------------------------------------------------------------

#[tokio::test]
async fn r4_8_messaging_tier_caps_contacts_per_rolling_24_hours() {
    let t0 = common::t0();
    let h = harness(memory(), t0, Opts::default()).await;
    let acc = account(&h, json!({"messaging_tier": 5})).await;
    let all = phones("985", 8);
    add_contacts(&h, &all).await;
    let id = running(&h, "Tiered", &acc, json!({}), &all).await;

    assert_eq!(run_tick(&h).await.enqueued, 5);
    assert_eq!(sent_by(&h, &id).len(), 5);
    // The budget is spent: nothing more for the rest of the day.
    for at in [
        t0 + Duration::minutes(1),
        t0 + Duration::hours(1),
        t0 + Duration::hours(12),
        t0 + Duration::hours(23) + Duration::minutes(58),
    ] {
        set_time(&h, at);
        let r = run_tick(&h).await;
        assert_eq!(r.enqueued, 0, "at {at}: {r:?}");
    }
    assert_eq!(sent_by(&h, &id).len(), 5);
    let fresh = entries(&h, &id)
        .await
        .values()
        .filter(|e| e.state == EntryState::Fresh)
        .count();
    assert_eq!(fresh, 3);

    // Once the first sends are more than 24 hours old (counted by the hour, so never
    // early), the rest go out.
    set_time(&h, t0 + Duration::hours(25));
    assert_eq!(run_tick(&h).await.enqueued, 3);
    let mut reached = sent_by(&h, &id);
    reached.sort();
    assert_eq!(reached, all);
    let late: Vec<Time> = sends(&h)
        .into_iter()
        .map(|(_, at)| at)
        .filter(|at| *at > t0 + Duration::hours(1))
        .collect();
    assert_eq!(late.len(), 3);
    assert!(late.iter().all(|at| *at >= t0 + Duration::hours(24)));
    assert_counters_match(&h, &id).await;
}

#[tokio::test]
async fn r4_8_messaging_tier_budget_is_not_left_to_a_campaign_with_nothing_to_send() {
    let t0 = common::t0();
    let h = harness(memory(), t0, Opts::default()).await;
    let acc = account(&h, json!({"messaging_tier": 5})).await;
    let all = phones("984", 5);
    let other = phones("983", 1);
    add_contacts(&h, &all).await;
    add_contacts(&h, &other).await;
    // Both on the account; `first` sorts first among the running campaigns.
    let first = campaign(&h, "First", &acc, json!({})).await;
    let list = list_of(&h, &all).await;
    attach(&h, &first, &list).await;
    // The other campaign sends its one contact and then only waits for the reply.
    let waiting = running(&h, "Waiting", &acc, json!({}), &other).await;
    assert_eq!(run_tick(&h).await.enqueued, 1);
    common::launch(&h.api, &first).await;
    // Four places are left in the 24 hours and only `first` has contacts to send: they
    // all go to it at its next tick, not half of them to a campaign with nothing to send.
    let r = run_tick(&h).await;
    assert_eq!(
        (r.enqueued, sent_by(&h, &first).len()),
        (4, 4),
        "the tier's 4 free places go to the campaign that has contacts to send: {r:?}"
    );
    // Then the tier is spent: its fifth contact waits for the next 24 hours.
    for _ in 0..5 {
        assert_eq!(run_tick(&h).await.enqueued, 0);
    }
    assert_eq!(sent_by(&h, &waiting).len(), 1);
    assert_eq!(sent_by(&h, &first).len(), 4);
    assert_counters_match(&h, &first).await;
}

// ---- R4.8 throttling -------------------------------------------------------------------------

#[tokio::test]
async fn r4_8_throttling_slows_the_account_and_it_recovers() {
    let h = harness(
        memory(),
        common::t0(),
        Opts {
            // The number takes only 2 messages/s for now, against the 4/s configured.
            sim_limit: Some(2),
            webhooks: false,
        },
    )
    .await;
    let acc = account(&h, json!({"rate_limit": 4})).await;
    let all = phones("982", 1600);
    add_contacts(&h, &all).await;
    let id = running(&h, "Throttled", &acc, json!({"rate": 4}), &all).await;
    let pace = || async {
        repo::pacing::get_account_pace(table(&h), TENANT, &acc)
            .await
            .unwrap()
            .rate
            .unwrap()
    };

    // First tick at the full 4/s: half of each second's sends are throttled (130429).
    let first = run_tick(&h).await;
    assert_eq!(first.enqueued, 240);
    assert_eq!(h.simulator().sent().len(), 120);
    assert_eq!(h.simulator().throttled().len(), 120);
    assert!((pace().await - 4.0).abs() < 1e-9);
    let throttled: Vec<HopperEntry> = entries(&h, &id)
        .await
        .into_values()
        .filter(|e| e.state == EntryState::Retry)
        .collect();
    assert_eq!(throttled.len(), 120);
    assert!(throttled
        .iter()
        .all(|e| e.reason.as_deref().is_some_and(|r| r.contains("130429"))));
    assert!(
        repo::pacing::last_throttle(table(&h), TENANT, &acc)
            .await
            .unwrap()
            .is_some(),
        "the sender noted the throttling"
    );

    // The next tick halves the account's pace: nothing is throttled at 2/s.
    let second = run_tick(&h).await;
    assert_eq!(second.enqueued, 120);
    assert!((pace().await - 2.0).abs() < 1e-9);
    assert_eq!(h.simulator().throttled().len(), 120, "no more throttling");
    assert_eq!(h.simulator().sent().len(), 240);

    // The number's capacity comes back: without throttling the pace climbs by a tenth
    // of the limit per tick, back to the limit and never above it.
    h.simulator().set_rate_limit(Some(4));
    let mut counts = Vec::new();
    let mut rates = Vec::new();
    for _ in 0..6 {
        counts.push(run_tick(&h).await.enqueued as i64);
        rates.push(pace().await);
    }
    let expected_rates = [2.4, 2.8, 3.2, 3.6, 4.0, 4.0];
    for (r, e) in rates.iter().zip(expected_rates) {
        assert!((r - e).abs() < 1e-9, "{rates:?}");
    }
    let expected_counts = [144, 168, 192, 216, 240, 240];
    for (c, e) in counts.iter().zip(expected_counts) {
        assert!((c - e).abs() <= 1, "{counts:?} vs {expected_counts:?}");
    }
    assert_eq!(h.simulator().throttled().len(), 120);
    let busiest = h.simulator().sent_per_second().into_values().max().unwrap();
    assert!(busiest <= 4, "never above the account's limit: {busiest}/s");
    assert_counters_match(&h, &id).await;
}

// ---- R4.8 the account limit, shared ----------------------------------------------------------

#[tokio::test]
async fn r4_8_two_campaigns_share_their_account_limit_fairly() {
    let h = harness(
        memory(),
        common::t0(),
        Opts {
            webhooks: false,
            ..Opts::default()
        },
    )
    .await;
    let acc = account(&h, json!({"rate_limit": 10})).await;
    let all = phones("981", 1100);
    add_contacts(&h, &all).await;
    // The same audience for all: each may write to a contact the others wrote to.
    let settings = |rate: u32| json!({"rate": rate, "include_active_interactions": true});
    let a = running(&h, "A", &acc, settings(10), &all).await;
    let b = running(&h, "B", &acc, settings(10), &all).await;

    for _ in 0..2 {
        let from = h.clock.now();
        let r = run_tick(&h).await;
        assert_eq!(r.enqueued, 600, "{r:?}");
        let per = sent_between(&h, from, h.clock.now());
        assert_eq!((per.get(&a), per.get(&b)), (Some(&300), Some(&300)));
    }
    // A third campaign asking for 2/s gets them; the others split the rest.
    let c = running(&h, "C", &acc, settings(2), &all).await;
    for _ in 0..2 {
        let from = h.clock.now();
        let r = run_tick(&h).await;
        assert_eq!(r.enqueued, 600, "{r:?}");
        let per = sent_between(&h, from, h.clock.now());
        assert_eq!(
            (per.get(&a), per.get(&b), per.get(&c)),
            (Some(&240), Some(&240), Some(&120))
        );
    }
    let per_second = h.simulator().sent_per_second_from(SENDER);
    assert!(
        per_second.values().all(|n| *n <= 10),
        "never above the account's 10/s: {per_second:?}"
    );
    assert_eq!(per_second.values().sum::<usize>(), 2400);
    for id in [&a, &b, &c] {
        assert_counters_match(&h, id).await;
    }
}

// ---- R4.8 default rate -------------------------------------------------------------------

#[tokio::test]
async fn r4_8_default_rate_is_20_per_second() {
    let h = harness(
        memory(),
        common::t0(),
        Opts {
            webhooks: false,
            ..Opts::default()
        },
    )
    .await;
    let acc = account(&h, json!({})).await;
    let all = phones("980", 1300);
    add_contacts(&h, &all).await;
    let id = running(&h, "Default", &acc, json!({}), &all).await;
    let view = h.ok(Method::GET, &format!("/campaigns/{id}"), None).await;
    assert_eq!(
        view["pacing"],
        json!({"unit": "messages_per_second", "value": 20}),
        "{view}"
    );
    let from = h.clock.now();
    assert_eq!(run_tick(&h).await.enqueued, 1200);
    // Twenty in every second of the minute: well within 1 % over the minute.
    let per_second = h.simulator().sent_per_second();
    let first = from.timestamp();
    let expected: BTreeMap<i64, usize> = (first..first + TICK).map(|s| (s, 20)).collect();
    assert_eq!(per_second, expected);
    assert_eq!(run_tick(&h).await.enqueued, 100);
    let distinct: BTreeSet<String> = sent_by(&h, &id).into_iter().collect();
    assert_eq!(distinct.len(), 1300);
    assert_counters_match(&h, &id).await;
}

// ---- R4.8: the account's pacing state on both backends ----------------------------------

async fn account_pace_and_tier_usage_round_trip(table: Arc<dyn Table>) {
    use shared::domain::pacing::{hour_start, tier_remaining, AccountPace};
    let t = &*table;
    let now = Utc.with_ymd_and_hms(2026, 11, 21, 9, 30, 0).unwrap();
    // AIMD state: stored versioned; a stale copy loses.
    let mut pace = repo::pacing::get_account_pace(t, TENANT, "acc_1")
        .await
        .unwrap();
    assert_eq!(pace, AccountPace::default());
    assert_eq!(pace.adjust(80.0, None, now), 80.0);
    pace.planned_until = Some(now + Duration::seconds(60));
    let mut stale = pace.clone();
    repo::pacing::save_account_pace(t, TENANT, "acc_1", &mut pace)
        .await
        .unwrap();
    assert!(
        repo::pacing::save_account_pace(t, TENANT, "acc_1", &mut stale)
            .await
            .is_err()
    );
    let back = repo::pacing::get_account_pace(t, TENANT, "acc_1")
        .await
        .unwrap();
    assert_eq!(
        (back.rate, back.planned_until),
        (Some(80.0), pace.planned_until)
    );
    // A throttle noted by the sender halves the next tick's rate.
    assert_eq!(
        repo::pacing::last_throttle(t, TENANT, "acc_1")
            .await
            .unwrap(),
        None
    );
    let throttled = now + Duration::seconds(5);
    repo::pacing::note_throttle(t, TENANT, "acc_1", throttled)
        .await
        .unwrap();
    let seen = repo::pacing::last_throttle(t, TENANT, "acc_1")
        .await
        .unwrap();
    assert_eq!(seen, Some(throttled));
    let mut pace = back;
    assert_eq!(pace.adjust(80.0, seen, now + Duration::seconds(60)), 40.0);
    // Tier usage by the hour: only the rolling 24 hours count.
    for (hours_ago, n) in [(30, 500), (23, 200), (0, 100)] {
        let hour = hour_start(now) - Duration::hours(hours_ago);
        repo::pacing::add_tier_usage(t, TENANT, "acc_1", hour, n)
            .await
            .unwrap();
    }
    repo::pacing::add_tier_usage(t, TENANT, "acc_1", hour_start(now), 50)
        .await
        .unwrap();
    let since = hour_start(now) - Duration::hours(24);
    let hours = repo::pacing::tier_hours(t, TENANT, "acc_1", since)
        .await
        .unwrap();
    assert_eq!(hours.len(), 2, "{hours:?}");
    assert_eq!(tier_remaining(1000, &hours, now), 650);
    // Another account's usage is its own.
    let other = repo::pacing::tier_hours(t, TENANT, "acc_2", since)
        .await
        .unwrap();
    assert!(other.is_empty());
}

testkit::on_both_backends! {
    memory: Arc::new(MemoryTable::default()),
    dynamo: Arc::new(common::dynamo_table("r4 account pace", "r4pace").await);
    account_pace_and_tier_usage_round_trip:
        r4_8_account_pace_and_tier_usage_round_trip,
        r4_8_account_pace_and_tier_usage_round_trip_on_dynamodb;
}
