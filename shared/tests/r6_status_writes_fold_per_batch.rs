//! The cost of statuses (target: at most 3 DynamoDB writes per message from send to
//! read): the inbound worker applies every status of one entry in a batch with one write,
//! folds the batch's counter changes into one write per campaign, writes nothing for a
//! `sent` that confirms what the sender recorded, and a storage failure sends back only
//! the records of the entry it hit.

use testkit::harness as common;

use async_trait::async_trait;
use aws_lambda_events::sqs::SqsEvent;
use chrono::Duration;
use common::TENANT;
use serde_json::{json, Value};
use shared::domain::campaign::Campaign;
use shared::domain::hopper::{shard_of, HopperEntry};
use shared::domain::inbound::EntryRef;
use shared::domain::phone::PhoneNumber;
use shared::domain::stats;
use shared::domain::template::ContactData;
use shared::domain::Time;
use shared::lambda::inbound_queue::{QueuedWebhook, WebhookProvider};
use shared::lambda::sqs_event;
use shared::ports::*;
use shared::repo::{self, Interaction};
use std::collections::BTreeMap;
use std::sync::atomic::Ordering;
use std::sync::{Arc, Mutex};
use testkit::harness::{Spawn, Spawned};
use testkit::memory::{MemoryTable, Tap, Tapped};
use testkit::simulator::{SimConfig, Simulator};

const SENDER: &str = "106540352242922";

struct Env {
    /// The table under the system, counting writes.
    memory: Arc<MemoryTable>,
    s: Spawned,
}

impl std::ops::Deref for Env {
    type Target = Spawned;
    fn deref(&self) -> &Spawned {
        &self.s
    }
}

fn env_on(memory: Arc<MemoryTable>, table: Arc<dyn Table>, provider_url: &str) -> Env {
    let s = Spawn::new(table)
        .provider(common::meta_provider(provider_url))
        .build();
    Env { memory, s }
}

fn env() -> Env {
    let memory = Arc::new(MemoryTable::new());
    env_on(memory.clone(), memory, "http://127.0.0.1:9")
}

async fn campaign(e: &Env) -> Campaign {
    use axum::http::Method;
    let account = e
        .ok(Method::POST, "/accounts", Some(common::account_body()))
        .await;
    let account = account["id"].as_str().unwrap().to_owned();
    e.ok(
        Method::POST,
        "/templates",
        Some(common::template_body(&account, "offer")),
    )
    .await;
    let c = e
        .ok(
            Method::POST,
            "/campaigns",
            Some(common::campaign_body("Fold", &account, "offer")),
        )
        .await;
    repo::get_campaign(&*e.sys.ports.table, TENANT, c["id"].as_str().unwrap())
        .await
        .unwrap()
        .unwrap()
}

fn phone_of(i: usize) -> PhoneNumber {
    PhoneNumber::parse(&format!("9177{i:08}")).unwrap()
}

fn wamid_of(i: usize) -> String {
    format!("wamid.FOLD.{i}")
}

/// `n` entries sent at `t0` as the sender writes them, with their counters.
async fn sent_entries(e: &Env, c: &Campaign, n: usize) -> Vec<HopperEntry> {
    let t = &*e.sys.ports.table;
    let now = common::t0();
    let first = repo::reserve_seq(t, TENANT, &c.id, n as u64).await.unwrap();
    let mut delta = stats::Delta::new();
    let mut out = Vec::new();
    for i in 0..n {
        let mut entry = HopperEntry::new(c, phone_of(i), ContactData::default(), first + i as u64);
        entry.claim(now).unwrap();
        entry.record_sent(wamid_of(i), now, Duration::days(1));
        let interaction =
            Interaction::opened(entry.entry_ref(), wamid_of(i), now, Duration::days(1), None);
        repo::put_interaction(t, SENDER, &interaction)
            .await
            .unwrap();
        assert!(repo::insert_entry(t, &mut entry, chrono::Utc::now())
            .await
            .unwrap());
        stats::fold(&mut delta, stats::delta(None, &entry));
        out.push(entry);
    }
    repo::add_counters(t, TENANT, &c.id, &delta).await.unwrap();
    out
}

/// A Meta status webhook for entry `i` of `c`, queued as the webhook function queues it.
fn queued_status(c: &Campaign, i: usize, status: &str, at: Time) -> String {
    let r = EntryRef {
        tenant: TENANT.into(),
        campaign_id: c.id.clone(),
        shard: shard_of(&phone_of(i), c.hopper_shards),
        phone: phone_of(i),
    };
    let body = json!({"object": "whatsapp_business_account",
        "entry": [{"id": "102290129340398", "changes": [{"field": "messages", "value": {
            "messaging_product": "whatsapp",
            "metadata": {"display_phone_number": "15550783881", "phone_number_id": SENDER},
            "statuses": [{"id": wamid_of(i), "status": status,
                "timestamp": at.timestamp().to_string(), "recipient_id": phone_of(i).as_str(),
                "biz_opaque_callback_data": r.encode()}]}}]}]});
    QueuedWebhook::new(WebhookProvider::Meta, at, None, body.to_string()).encode()
}

/// An SQS batch of these queued webhooks, record `k` with the id `r<k>`.
fn batch(bodies: &[String]) -> SqsEvent {
    let received: Vec<Received> = bodies
        .iter()
        .enumerate()
        .map(|(k, b)| Received {
            id: format!("r{k}"),
            receipt: format!("receipt-{k}"),
            body: b.clone(),
        })
        .collect();
    sqs_event::event_from(&received)
}

async fn live_equals_recount(e: &Env, c: &Campaign) {
    let t = &*e.sys.ports.table;
    let entries = repo::all_entries(t, c).await.unwrap();
    let recount: BTreeMap<String, i64> = stats::recount(&entries)
        .into_iter()
        .map(|(k, v)| (k.to_owned(), v))
        .collect();
    let live: BTreeMap<String, i64> = repo::get_counters(t, TENANT, &c.id)
        .await
        .unwrap()
        .into_iter()
        .filter(|(_, v)| *v != 0)
        .collect();
    assert_eq!(live, recount);
}

#[tokio::test]
async fn r6_status_writes_fold_per_batch_one_write_per_entry_and_one_per_campaign() {
    let e = env();
    let c = campaign(&e).await;
    let n = 12;
    sent_entries(&e, &c, n).await;
    let t0 = common::t0();
    // Every entry's sent, delivered and read, each in its own record, interleaved and
    // out of order, one read twice.
    let mut bodies = Vec::new();
    for (status, secs) in [("read", 9), ("sent", 0), ("delivered", 5)] {
        for i in 0..n {
            bodies.push(queued_status(&c, i, status, t0 + Duration::seconds(secs)));
        }
    }
    bodies.push(queued_status(&c, 3, "read", t0 + Duration::seconds(9)));
    let writes = e.memory.writes.load(Ordering::Relaxed);
    let resp = shared::lambda::inbound(&e.sys.inbox, batch(&bodies)).await;
    assert!(resp.batch_item_failures.is_empty(), "{resp:?}");
    assert_eq!(
        e.memory.writes.load(Ordering::Relaxed) - writes,
        n as u64 + 1,
        "one write per entry and one counter write for the campaign"
    );
    let entries = repo::all_entries(&*e.sys.ports.table, &c).await.unwrap();
    assert_eq!(entries.len(), n);
    for entry in &entries {
        assert_eq!(entry.sent_at, Some(t0));
        assert_eq!(entry.delivered_at, Some(t0 + Duration::seconds(5)));
        assert_eq!(entry.read_at, Some(t0 + Duration::seconds(9)));
    }
    live_equals_recount(&e, &c).await;

    // The same batch again changes nothing and writes nothing.
    let writes = e.memory.writes.load(Ordering::Relaxed);
    let resp = shared::lambda::inbound(&e.sys.inbox, batch(&bodies)).await;
    assert!(resp.batch_item_failures.is_empty());
    assert_eq!(e.memory.writes.load(Ordering::Relaxed), writes);
}

#[tokio::test]
async fn r6_status_writes_fold_per_batch_inline_webhook_reports_each_status() {
    // One webhook body with several statuses (Meta may batch them) through the inbox.
    let e = env();
    let c = campaign(&e).await;
    sent_entries(&e, &c, 2).await;
    let t0 = common::t0();
    let events: Vec<_> = [
        (0, "delivered", 4),
        (0, "read", 6),
        (1, "sent", 0),
        (0, "delivered", 4),
    ]
    .into_iter()
    .flat_map(|(i, s, secs)| {
        QueuedWebhook::decode(&queued_status(&c, i, s, t0 + Duration::seconds(secs)))
            .unwrap()
            .events()
            .unwrap()
    })
    .collect();
    let writes = e.memory.writes.load(Ordering::Relaxed);
    let report = e.sys.inbox.handle(events).await.unwrap();
    // delivered and read changed entry 0; its repeated delivered and entry 1's sent
    // (confirming the recorded send) did not.
    assert_eq!((report.applied, report.ignored), (2, 2));
    assert_eq!(e.memory.writes.load(Ordering::Relaxed) - writes, 2);
    live_equals_recount(&e, &c).await;
}

/// The in-memory table, failing every write of one item while `fail` is set.
struct FailingItem {
    inner: Arc<MemoryTable>,
    key: Mutex<Option<(String, String)>>,
}

impl FailingItem {
    fn fails(&self, item_pk: &str, item_sk: &str) -> bool {
        self.key
            .lock()
            .unwrap()
            .as_ref()
            .is_some_and(|(pk, sk)| pk == item_pk && sk == item_sk)
    }
}

#[async_trait]
impl Table for FailingItem {
    async fn get(&self, pk: &str, sk: &str) -> PortResult<Option<Item>> {
        self.inner.get(pk, sk).await
    }
    async fn put(&self, item: Item, cond: Cond) -> PortResult<()> {
        let key = |a: &str| item.get(a).and_then(Value::as_str).unwrap_or("").to_owned();
        if self.fails(&key("PK"), &key("SK")) {
            return Err(PortError::Backend("injected".into()));
        }
        self.inner.put(item, cond).await
    }
    async fn delete(&self, pk: &str, sk: &str) -> PortResult<()> {
        self.inner.delete(pk, sk).await
    }
    async fn query(&self, q: &Query) -> PortResult<Page> {
        self.inner.query(q).await
    }
    async fn add(&self, pk: &str, sk: &str, deltas: &[(String, i64)]) -> PortResult<Item> {
        self.inner.add(pk, sk, deltas).await
    }
}

#[tokio::test]
async fn r6_status_writes_fold_per_batch_a_failed_entry_sends_back_only_its_records() {
    let memory = Arc::new(MemoryTable::new());
    let failing = Arc::new(FailingItem {
        inner: memory.clone(),
        key: Mutex::new(None),
    });
    let e = env_on(memory, failing.clone(), "http://127.0.0.1:9");
    let c = campaign(&e).await;
    let entries = sent_entries(&e, &c, 3).await;
    let t0 = common::t0();
    let bodies: Vec<String> = (0..3)
        .flat_map(|i| {
            [
                queued_status(&c, i, "delivered", t0 + Duration::seconds(3)),
                queued_status(&c, i, "read", t0 + Duration::seconds(7)),
            ]
        })
        .collect();
    // Every write of entry 1 fails.
    let broken = &entries[1];
    let stored = e
        .memory
        .query(&Query::new(
            Index::Primary,
            format!("HOPPER#{TENANT}#{}#{}", c.id, broken.shard),
            SkCond::BeginsWith(format!("ENTRY#{}", broken.phone)),
        ))
        .await
        .unwrap();
    *failing.key.lock().unwrap() = repo::key_of(&stored.items[0]);

    let resp = shared::lambda::inbound(&e.sys.inbox, batch(&bodies)).await;
    let mut failed: Vec<String> = resp
        .batch_item_failures
        .iter()
        .map(|f| f.item_identifier.clone())
        .collect();
    failed.sort();
    assert_eq!(failed, vec!["r2", "r3"], "entry 1's two records");
    // The others are applied and counted.
    live_equals_recount(&e, &c).await;
    let read = |i: usize| {
        let t = e.sys.ports.table.clone();
        let r = entries[i].entry_ref();
        async move { repo::get_entry(&*t, &r).await.unwrap().unwrap().read_at }
    };
    assert!(read(0).await.is_some() && read(2).await.is_some());
    assert!(read(1).await.is_none());

    // Delivered again once the storage is back, they complete the entry.
    *failing.key.lock().unwrap() = None;
    let resp = shared::lambda::inbound(&e.sys.inbox, batch(&bodies[2..4])).await;
    assert!(resp.batch_item_failures.is_empty());
    assert!(read(1).await.is_some());
    live_equals_recount(&e, &c).await;
}

#[tokio::test]
async fn r6_status_writes_fold_per_batch_the_senders_time_makes_sent_free() {
    // The sender records the send at whole seconds, as Meta's `sent` says it: that
    // status then confirms the entry and costs no write, whatever the milliseconds.
    let sim = Simulator::start(
        SimConfig {
            reply_percent: 0,
            ..SimConfig::default()
        },
        common::frozen(common::t0()),
    )
    .await
    .unwrap();
    let memory = Arc::new(MemoryTable::new());
    let e = env_on(memory.clone(), memory, &sim.base_url());
    e.clock.advance(Duration::milliseconds(700));
    use axum::http::Method;
    let c = campaign(&e).await;
    let phone = phone_of(0);
    e.ok(
        Method::POST,
        "/contacts",
        Some(json!([{"phone": format!("+{phone}"), "name": "Ann", "fields": {"code": "X1"}}])),
    )
    .await;
    let list = e
        .ok(Method::POST, "/lists", Some(json!({"name": "L"})))
        .await;
    let list = list["id"].as_str().unwrap().to_owned();
    e.ok(
        Method::POST,
        &format!("/lists/{list}/members"),
        Some(json!({"phones": [phone.as_str()]})),
    )
    .await;
    e.ok(
        Method::POST,
        &format!("/campaigns/{}/lists", c.id),
        Some(json!({"list_id": list})),
    )
    .await;
    common::launch(&e.api, &c.id).await;
    e.sys.tick_if_due().await.unwrap();
    assert_eq!(e.sys.drain_queue().await.unwrap(), 1);
    let entry = repo::all_entries(&*e.sys.ports.table, &c).await.unwrap()[0].clone();
    let t0 = common::t0();
    assert_eq!(entry.sent_at, Some(t0), "whole seconds");
    assert_eq!(entry.expires_at, Some(t0 + Duration::days(1)));

    // Meta's `sent`, in whole seconds of the same instant.
    let writes = e.memory.writes.load(Ordering::Relaxed);
    let message_id = entry.message_id.clone().unwrap();
    let body = json!({"object": "whatsapp_business_account",
        "entry": [{"id": "1", "changes": [{"field": "messages", "value": {
            "messaging_product": "whatsapp",
            "metadata": {"display_phone_number": "15550783881", "phone_number_id": SENDER},
            "statuses": [{"id": message_id, "status": "sent",
                "timestamp": t0.timestamp().to_string(), "recipient_id": phone.as_str(),
                "biz_opaque_callback_data": entry.entry_ref().encode()}]}}]}]});
    let queued = QueuedWebhook::new(WebhookProvider::Meta, t0, None, body.to_string()).encode();
    let resp = shared::lambda::inbound(&e.sys.inbox, batch(&[queued])).await;
    assert!(resp.batch_item_failures.is_empty());
    assert_eq!(e.memory.writes.load(Ordering::Relaxed), writes, "no write");
}

/// Counts `add` calls on counter items (`STATS…` sort keys).
struct CounterAdds(std::sync::atomic::AtomicU64);

#[async_trait]
impl Tap for CounterAdds {
    async fn add(&self, _pk: &str, sk: &str) -> Option<PortResult<Item>> {
        if sk.starts_with("STATS") {
            self.0.fetch_add(1, Ordering::Relaxed);
        }
        None
    }
}

/// Closing at the response timeout (the sweeper, R5.4) folds the counter changes of the
/// entries a sweep closes into one write per campaign, as the sender and the inbound
/// worker fold theirs, instead of one per entry (10 writes for these 12 before: one per
/// index page).
#[tokio::test]
async fn r6_closing_at_the_timeout_folds_the_counters_per_sweep() {
    let memory = Arc::new(MemoryTable::new());
    let counting = Arc::new(Tapped {
        inner: memory.clone(),
        tap: CounterAdds(0.into()),
    });
    let e = env_on(memory, counting.clone(), "http://127.0.0.1:9");
    let c = campaign(&e).await;
    let n = 12;
    sent_entries(&e, &c, n).await;
    e.clock.advance(Duration::days(1) + Duration::minutes(2));
    let before = counting.tap.0.load(Ordering::Relaxed);
    shared::lambda::sweeper(&e.sys.sweeper).await.unwrap();
    let entries = repo::all_entries(&*e.sys.ports.table, &c).await.unwrap();
    assert!(
        entries
            .iter()
            .all(|x| x.state == shared::domain::hopper::EntryState::Closed),
        "every entry closed at its timeout"
    );
    assert_eq!(
        counting.tap.0.load(Ordering::Relaxed) - before,
        1,
        "one counter write for the sweep, not one per entry or page"
    );
    live_equals_recount(&e, &c).await;
}
