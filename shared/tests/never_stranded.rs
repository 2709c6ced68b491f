//! Never stranded: every FRESH entry of a RUNNING campaign is dispatched, whatever order
//! the READY index shows entries in. Writers reserve a block of sequence numbers and
//! write it concurrently (attach while RUNNING, the retry walk, the sweeper's release),
//! and DynamoDB's index is eventually consistent, so a dispatch can see sequence N+1
//! before N. The dispatcher moves a per-shard cursor past what it enqueued; what lies
//! below the cursor and is still READY after the rescan delay is dispatched again.

use testkit::harness as common;

use axum::http::Method;
use chrono::Duration;
use common::TENANT;
use serde_json::{json, Value};
use shared::app::dispatch::RESCAN_AFTER;
use shared::domain::hopper::{shard_of, EntryState, HopperEntry};
use shared::domain::phone::PhoneNumber;
use shared::domain::stats;
use shared::domain::template::ContactData;
use shared::ports::Table;
use shared::repo;
use std::sync::Arc;
use testkit::harness::{Spawn, Spawned};
use testkit::memory::MemoryTable;
use testkit::simulator::SimConfig;

const TICK: i64 = 60;

async fn harness() -> Spawned {
    Spawn::new(Arc::new(MemoryTable::new()))
        .simulator(SimConfig {
            reply_percent: 0,
            ..SimConfig::default()
        })
        .serve_webhooks(false)
        .spawn()
        .await
}

fn table(h: &Spawned) -> &dyn Table {
    &*h.sys.ports.table
}

/// One launcher tick, then the sender fed second by second as the SQS delays run out.
async fn run_tick(h: &Spawned) {
    h.sys.dispatcher.tick().await.unwrap();
    for _ in 0..TICK {
        h.sys.drain_queue().await.unwrap();
        h.clock.advance(Duration::seconds(1));
    }
    h.sys.drain_queue().await.unwrap();
}

fn id_of(v: &Value) -> String {
    v["id"].as_str().unwrap().to_owned()
}

/// A RUNNING campaign sending `offer` to `phones`; its id.
async fn running(h: &Spawned, phones: &[String]) -> String {
    let a = h
        .ok(Method::POST, "/accounts", Some(common::account_body()))
        .await;
    let account = id_of(&a);
    h.ok(
        Method::POST,
        "/templates",
        Some(common::template_body(&account, "offer")),
    )
    .await;
    let contacts: Vec<Value> = phones
        .iter()
        .map(|p| json!({"phone": p, "name": "C", "fields": {"code": "K"}}))
        .collect();
    h.ok(Method::POST, "/contacts", Some(Value::Array(contacts)))
        .await;
    let list = id_of(
        &h.ok(Method::POST, "/lists", Some(json!({"name": "L"})))
            .await,
    );
    h.ok(
        Method::POST,
        &format!("/lists/{list}/members"),
        Some(json!({ "phones": phones })),
    )
    .await;
    let c = h
        .ok(
            Method::POST,
            "/campaigns",
            Some(common::campaign_body("c", &account, "offer")),
        )
        .await;
    let id = id_of(&c);
    h.ok(
        Method::POST,
        &format!("/campaigns/{id}/lists"),
        Some(json!({ "list_id": list })),
    )
    .await;
    common::launch(&h.api, &id).await;
    id
}

/// Writes a FRESH entry for `phone` at `seq`, with its counters, as an attach does.
async fn write_entry(h: &Spawned, campaign: &str, phone: &PhoneNumber, seq: u64) {
    let t = table(h);
    let c = repo::get_campaign(t, TENANT, campaign)
        .await
        .unwrap()
        .unwrap();
    let contact = ContactData {
        name: Some("Late".into()),
        fields: [("code".to_owned(), "L1".to_owned())].into(),
        ..Default::default()
    };
    let mut e = HopperEntry::new(&c, phone.clone(), contact, seq);
    assert!(repo::insert_entry(t, &mut e, chrono::Utc::now())
        .await
        .unwrap());
    repo::add_counters(t, TENANT, campaign, &stats::delta(None, &e))
        .await
        .unwrap();
}

async fn state_of(h: &Spawned, campaign: &str, phone: &PhoneNumber) -> EntryState {
    let c = repo::get_campaign(table(h), TENANT, campaign)
        .await
        .unwrap()
        .unwrap();
    repo::all_entries(table(h), &c)
        .await
        .unwrap()
        .into_iter()
        .find(|e| &e.phone == phone)
        .map(|e| e.state)
        .expect("the entry is in the hopper")
}

/// Two numbers of the same hopper shard, not among `taken`.
fn same_shard_pair(shards: u16) -> (PhoneNumber, PhoneNumber) {
    let candidates: Vec<PhoneNumber> = (0..200)
        .map(|i| PhoneNumber::parse(&format!("91955{i:07}")).unwrap())
        .collect();
    for a in &candidates {
        for b in &candidates {
            if a != b && shard_of(a, shards) == shard_of(b, shards) {
                return (a.clone(), b.clone());
            }
        }
    }
    unreachable!("two of 200 numbers share a shard")
}

#[tokio::test]
async fn dispatch_never_strands_an_entry_indexed_out_of_order() {
    let h = harness().await;
    let first: Vec<String> = (0..3).map(|i| format!("91900000000{i}")).collect();
    let id = running(&h, &first).await;
    run_tick(&h).await;
    assert_eq!(h.simulator().sent().len(), 3);

    // A writer reserved two sequence numbers; the later one becomes visible first.
    let shards = repo::get_campaign(table(&h), TENANT, &id)
        .await
        .unwrap()
        .unwrap()
        .hopper_shards;
    let (early, late) = same_shard_pair(shards);
    let seq = repo::reserve_seq(table(&h), TENANT, &id, 2).await.unwrap();
    write_entry(&h, &id, &late, seq + 1).await;
    run_tick(&h).await;
    assert_eq!(state_of(&h, &id, &late).await, EntryState::Pending);
    // Now the earlier one shows up, below the cursor.
    write_entry(&h, &id, &early, seq).await;
    let ticks = RESCAN_AFTER.num_seconds() / TICK + 2;
    for _ in 0..ticks {
        run_tick(&h).await;
    }
    assert_eq!(
        state_of(&h, &id, &early).await,
        EntryState::Pending,
        "the entry indexed late was sent"
    );
    assert_eq!(h.simulator().sent().len(), 5, "each contact once");
}

#[tokio::test]
async fn an_entry_whose_queue_message_was_lost_is_dispatched_again() {
    let h = harness().await;
    let phones: Vec<String> = (0..3).map(|i| format!("91900000001{i}")).collect();
    let id = running(&h, &phones).await;
    // A tick enqueues them; the messages never reach the sender (moved to the
    // dead-letter queue after failed deliveries, say).
    assert_eq!(h.sys.dispatcher.tick().await.unwrap().enqueued, 3);
    let q = h.memory_queue();
    for _ in 0..=TICK {
        for m in q.receive_msgs(10) {
            q.delete_receipt(&m.receipt);
        }
        h.clock.advance(Duration::seconds(1));
    }
    assert!(h.simulator().sent().is_empty());
    let ticks = RESCAN_AFTER.num_seconds() / TICK + 2;
    for _ in 0..ticks {
        run_tick(&h).await;
    }
    for p in &phones {
        let p = PhoneNumber::parse(p).unwrap();
        assert_eq!(state_of(&h, &id, &p).await, EntryState::Pending);
    }
    assert_eq!(h.simulator().sent().len(), 3, "each contact once");
}

/// Finding 11: an item of an index page that does not parse (written by an older version,
/// or by hand) is logged and skipped; it must not fail every sweep after it, which would
/// stop timeouts, completions and purges for every tenant.
#[tokio::test]
async fn a_malformed_index_item_does_not_halt_the_sweeper() {
    let h = harness().await;
    let phones: Vec<String> = (0..2).map(|i| format!("91981234{i:04}")).collect();
    let id = running(&h, &phones).await;
    run_tick(&h).await;
    for p in &phones {
        let p = PhoneNumber::parse(p).unwrap();
        assert_eq!(state_of(&h, &id, &p).await, EntryState::Pending);
    }
    for index in ["DUE", "SENDING", "WAIT"] {
        for partition in 0..16 {
            let junk = json!({"PK": format!("JUNK#{index}#{partition}"), "SK": "X",
                "GSI1PK": format!("{index}#{partition}"), "GSI1SK": "000000000000001#junk",
                "state": "NOT_A_STATE"});
            table(&h)
                .put(
                    junk.as_object().unwrap().clone().into_iter().collect(),
                    shared::ports::Cond::None,
                )
                .await
                .unwrap();
        }
    }
    h.clock.advance(Duration::days(30));
    let report = h.sys.sweeper.sweep().await.expect("the sweep goes on");
    assert_eq!(report.expired, 2, "{report:?}");
    assert_eq!(report.completed, 1, "{report:?}");
}

/// Finding 11: putting waiting entries back in line (a million contacts whose calling
/// hours open together) works within its share of a sweep and resumes in the next one,
/// so completions, commands and purges of every tenant still run each minute.
#[tokio::test]
async fn releasing_waiting_entries_keeps_to_its_budget_and_resumes() {
    use shared::app::sweep::SweepBudget;
    let h = harness().await;
    let id = running(&h, &["919812340000".to_owned()]).await;
    let c = repo::get_campaign(table(&h), TENANT, &id)
        .await
        .unwrap()
        .unwrap();
    let until = common::t0() + Duration::minutes(5);
    for i in 0..250u64 {
        let phone = PhoneNumber::parse(&format!("91977{i:07}")).unwrap();
        let mut e = HopperEntry::new(&c, phone, ContactData::default(), 1000 + i);
        e.wait_until = Some(until);
        assert!(repo::insert_entry(table(&h), &mut e, chrono::Utc::now())
            .await
            .unwrap());
        repo::add_counters(table(&h), TENANT, &id, &stats::delta(None, &e))
            .await
            .unwrap();
    }
    h.clock.advance(Duration::minutes(10));
    let mut released = Vec::new();
    // A sweep a minute, each with no time to spare: one page of the walk each.
    while released.iter().sum::<usize>() < 250 && released.len() < 20 {
        let report = h
            .sys
            .sweeper
            .sweep_within(SweepBudget::none())
            .await
            .unwrap();
        released.push(report.released);
        h.clock.advance(Duration::minutes(1));
    }
    assert!(released[0] > 0 && released[0] < 250, "{released:?}");
    assert_eq!(released.iter().sum::<usize>(), 250, "{released:?}");
    assert!(
        released.len() <= 16,
        "every partition in turn: {released:?}"
    );
}
