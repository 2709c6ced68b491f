//! Issue 14: attaching a list or segment larger than one request can carry runs in the
//! background. The request walks its source within a budget (here zero, so everything
//! goes to the background), answers 202 with the campaign's `attach` operation, and the
//! sweeper carries it on a page at a time, storing its cursor after each page. Tested:
//! progress across sweeps, a walk cut off between a page's writes and its cursor (a
//! function timeout) and continued twice at once, a second attach queued behind the first,
//! a reset refused while contacts are attached, launch while attaching, on the in-memory
//! table and on DynamoDB in the emulator.

use testkit::harness as common;

use axum::http::{Method, StatusCode};
use serde_json::{json, Value};
use shared::adapters::aws::DynamoTable;
use shared::app::commands::CommandBudget;
use shared::app::sweep::SweepBudget;
use shared::domain::hopper::EntryState;
use shared::domain::stats;
use shared::ports::{Clock, Table};
use shared::repo;
use std::collections::{BTreeMap, BTreeSet};
use std::sync::Arc;
use std::time::Duration;
use testkit::harness::{Spawn, Spawned};
use testkit::memory::{Interleaved, MemoryTable, Tap, Tapped};

/// The in-memory table, every call yielding first, so that two walkers at once really
/// interleave between their reads and their conditional writes.
fn memory() -> Spawned {
    system(Arc::new(Interleaved(Arc::new(MemoryTable::new()))))
}

async fn emulator() -> Spawned {
    let table: DynamoTable = common::dynamo_table("background attach", "attach").await;
    system(Arc::new(table))
}

fn system(table: Arc<dyn Table>) -> Spawned {
    Spawn::new(table).attach_inline(Duration::ZERO).build()
}

/// One sweep's budget: one page of contacts (the attach walks 100 per page).
fn one_page() -> CommandBudget {
    CommandBudget {
        max_entries: 1,
        ..CommandBudget::default()
    }
}

fn phones(from: usize, n: usize) -> Vec<String> {
    (from..from + n).map(|i| format!("9198100{i:05}")).collect()
}

/// A READY campaign and a list of `contacts` (not attached).
async fn campaign_and_list(s: &Spawned, contacts: &[String]) -> (String, String) {
    let phones: Vec<&str> = contacts.iter().map(String::as_str).collect();
    s.campaign_with_list(json!({}), &phones, json!({}), json!({}))
        .await
}

async fn new_list(s: &Spawned, contacts: &[String]) -> String {
    let phones: Vec<&str> = contacts.iter().map(String::as_str).collect();
    s.new_list(&phones).await
}

async fn attach(s: &Spawned, id: &str, list: &str) -> (StatusCode, Value) {
    s.call(
        Method::POST,
        &format!("/campaigns/{id}/lists"),
        Some(json!({ "list_id": list })),
    )
    .await
}

async fn operation(s: &Spawned, id: &str) -> Value {
    s.ok(Method::GET, &format!("/campaigns/{id}/operation"), None)
        .await
}

async fn counters(s: &Spawned, id: &str) -> BTreeMap<String, i64> {
    repo::get_counters(&*s.table, common::TENANT, id)
        .await
        .unwrap()
        .into_iter()
        .filter(|(_, v)| *v != 0)
        .collect()
}

/// Every contact has exactly one entry, FRESH, and the live counters equal a recount.
async fn assert_hopper(s: &Spawned, id: &str, contacts: &[String]) {
    let c = repo::get_campaign(&*s.table, common::TENANT, id)
        .await
        .unwrap()
        .unwrap();
    let entries = repo::all_entries(&*s.table, &c).await.unwrap();
    let phones: Vec<String> = entries.iter().map(|e| e.phone.as_str().into()).collect();
    let unique: BTreeSet<&String> = phones.iter().collect();
    assert_eq!(phones.len(), unique.len(), "one entry per contact");
    let want: BTreeSet<&String> = contacts.iter().collect();
    assert_eq!(unique, want, "every contact attached, no other");
    assert!(entries.iter().all(|e| e.state == EntryState::Fresh));
    let recount: BTreeMap<String, i64> = stats::recount(&entries)
        .into_iter()
        .map(|(k, v)| (k.to_owned(), v))
        .collect();
    assert_eq!(counters(s, id).await, recount, "counters equal a recount");
    assert_eq!(recount.get("target").copied(), Some(contacts.len() as i64));
}

async fn sweep_until_done(s: &Spawned, id: &str) -> usize {
    for runs in 1..=50 {
        s.sys.sweeper.run_commands(one_page()).await.unwrap();
        if operation(s, id).await["status"] == "DONE" {
            return runs;
        }
    }
    panic!("the attach never finished: {}", operation(s, id).await);
}

async fn continues_across_sweeps(s: Spawned) {
    let contacts = phones(0, 250);
    let (id, list) = campaign_and_list(&s, &contacts).await;
    let (status, op) = attach(&s, &id, &list).await;
    assert_eq!(status, StatusCode::ACCEPTED, "{op}");
    assert_eq!(
        (&op["kind"], &op["status"], &op["progress"]["sources_left"]),
        (&json!("attach"), &json!("RUNNING"), &json!(1))
    );
    assert!(counters(&s, &id).await.is_empty(), "nothing attached yet");

    s.sys.sweeper.run_commands(one_page()).await.unwrap();
    let op = operation(&s, &id).await;
    assert_eq!(
        (&op["status"], &op["progress"]["changed"]),
        (&json!("RUNNING"), &json!(100)),
        "one page per sweep: {op}"
    );
    assert_eq!(counters(&s, &id).await.get("target"), Some(&100));

    let runs = sweep_until_done(&s, &id).await;
    assert_eq!(runs, 2, "250 contacts are three pages");
    let op = operation(&s, &id).await;
    assert_eq!(
        (
            &op["progress"]["changed"],
            &op["progress"]["sources_left"],
            &op["progress"]["percent"]
        ),
        (&json!(250), &json!(0), &json!(100.0))
    );
    assert_hopper(&s, &id, &contacts).await;
}

#[tokio::test]
async fn an_attach_too_large_for_the_request_continues_across_sweeps() {
    continues_across_sweeps(memory()).await;
}

#[tokio::test]
async fn an_attach_too_large_for_the_request_continues_across_sweeps_on_dynamodb() {
    continues_across_sweeps(emulator().await).await;
}

/// A sweeper that timed out after writing a page's entries but before storing the cursor
/// leaves the page to walk again; two sweepers then continue it at once. Every contact
/// still has one entry and the counters stay exact.
async fn survives_a_timeout_and_two_walkers(s: Spawned) {
    let contacts = phones(0, 450);
    let (id, list) = campaign_and_list(&s, &contacts).await;
    assert_eq!(attach(&s, &id, &list).await.0, StatusCode::ACCEPTED);
    s.sys.sweeper.run_commands(one_page()).await.unwrap();
    let before_timeout = repo::commands::get_operation(&*s.table, common::TENANT, &id)
        .await
        .unwrap()
        .unwrap();
    s.sys.sweeper.run_commands(one_page()).await.unwrap();
    assert_eq!(counters(&s, &id).await.get("target"), Some(&200));
    // The second page's cursor is lost, as if the function stopped before saving it.
    let mut current = repo::commands::get_operation(&*s.table, common::TENANT, &id)
        .await
        .unwrap()
        .unwrap();
    let mut rewound = before_timeout.clone();
    rewound.version = current.version;
    repo::commands::save_operation(&*s.table, &mut rewound)
        .await
        .unwrap();
    current = rewound;
    assert_eq!(current.changed, 100);

    // Two sweepers at once, page by page, until the attach is done.
    for _ in 0..20 {
        let (a, b) = tokio::join!(
            s.sys.sweeper.run_commands(one_page()),
            s.sys.sweeper.run_commands(one_page())
        );
        a.unwrap();
        b.unwrap();
        if operation(&s, &id).await["status"] == "DONE" {
            break;
        }
    }
    let op = operation(&s, &id).await;
    assert_eq!(op["status"], "DONE", "{op}");
    assert_hopper(&s, &id, &contacts).await;
    // The page walked again found its contacts already there.
    assert!(
        op["progress"]["already_present"].as_u64().unwrap() >= 100,
        "{op}"
    );
}

#[tokio::test]
async fn an_attach_survives_a_timeout_and_two_walkers_add_nothing_twice() {
    survives_a_timeout_and_two_walkers(memory()).await;
}

#[tokio::test]
async fn an_attach_survives_a_timeout_and_two_walkers_add_nothing_twice_on_dynamodb() {
    survives_a_timeout_and_two_walkers(emulator().await).await;
}

#[tokio::test]
async fn a_second_attach_queues_behind_the_first_and_a_reset_waits() {
    let s = memory();
    let first = phones(0, 150);
    let second = phones(100, 120); // 100..220: 50 shared with the first list
    let (id, list_a) = campaign_and_list(&s, &first).await;
    let list_b = new_list(&s, &second).await;
    assert_eq!(attach(&s, &id, &list_a).await.0, StatusCode::ACCEPTED);
    let (status, op) = attach(&s, &id, &list_b).await;
    assert_eq!(status, StatusCode::ACCEPTED, "{op}");
    assert_eq!(
        (&op["requests"], &op["progress"]["sources_left"]),
        (&json!(2), &json!(2)),
        "the second list waits behind the first: {op}"
    );
    // A reset walks the hopper: it waits for the attach.
    let (status, body) = s
        .call(
            Method::POST,
            &format!("/campaigns/{id}/reset"),
            Some(json!({"confirm": true})),
        )
        .await;
    assert_eq!(status, StatusCode::CONFLICT, "{body}");
    assert!(
        body["message"].as_str().unwrap().contains("being attached"),
        "{body}"
    );
    sweep_until_done(&s, &id).await;
    let all: Vec<String> = phones(0, 220);
    assert_hopper(&s, &id, &all).await;
    let op = operation(&s, &id).await;
    assert_eq!(
        (
            &op["progress"]["changed"],
            &op["progress"]["already_present"]
        ),
        (&json!(220), &json!(50))
    );
}

#[tokio::test]
async fn a_campaign_launches_while_its_attach_runs_and_completes_only_after_it() {
    let s = memory();
    let contacts = phones(0, 150);
    let (id, list) = campaign_and_list(&s, &contacts).await;
    assert_eq!(attach(&s, &id, &list).await.0, StatusCode::ACCEPTED);
    let (status, body) = s
        .call(Method::POST, &format!("/campaigns/{id}/launch"), None)
        .await;
    assert_eq!(status, StatusCode::OK, "launch while attaching: {body}");
    // Nothing attached yet and nothing in flight, the attach not walked in this sweep:
    // the sweeper still does not complete the campaign.
    let no_commands = SweepBudget {
        commands: CommandBudget {
            time: Duration::ZERO,
            ..CommandBudget::default()
        },
        ..SweepBudget::default()
    };
    s.sys.sweeper.sweep_within(no_commands).await.unwrap();
    let c = s.ok(Method::GET, &format!("/campaigns/{id}"), None).await;
    assert_eq!(c["status"], "RUNNING", "not completed while attaching: {c}");
    assert_eq!(operation(&s, &id).await["status"], "RUNNING");
    s.sys.sweeper.sweep().await.unwrap();
    let c = s.ok(Method::GET, &format!("/campaigns/{id}"), None).await;
    assert_eq!(c["status"], "RUNNING", "{c}");
    assert_eq!(operation(&s, &id).await["status"], "DONE");
    assert_eq!(counters(&s, &id).await.get("target"), Some(&150));

    // Without an attach running, a campaign with no contacts still cannot launch.
    let (other, _) = campaign_and_list(&s, &phones(500, 1)).await;
    let (status, body) = s
        .call(Method::POST, &format!("/campaigns/{other}/launch"), None)
        .await;
    assert_eq!(status, StatusCode::CONFLICT, "{body}");
}

#[tokio::test]
async fn a_small_attach_finishes_within_the_request() {
    let s = Spawn::new(Arc::new(MemoryTable::new())).build();
    let contacts = phones(0, 120);
    let (id, list) = campaign_and_list(&s, &contacts).await;
    let (status, body) = attach(&s, &id, &list).await;
    assert_eq!(
        (status, body),
        (StatusCode::OK, json!({"added": 120, "already_present": 0}))
    );
    assert_hopper(&s, &id, &contacts).await;
}

/// With a budget, the request walks what it can and answers 200 when done, or 202 with
/// the operation leased to it; the sweeper leaves a leased operation alone and takes it
/// over once the lease lapses (as after a request that died mid-walk). Whatever the
/// budget allowed, every contact ends with one entry and the counters are exact.
#[tokio::test]
async fn a_request_walks_within_its_budget_and_the_sweeper_takes_over_after_its_lease() {
    for budget_ms in [0u64, 1, 5, 50, 5_000] {
        let s = Spawn::new(Arc::new(MemoryTable::new()))
            .attach_inline(Duration::from_millis(budget_ms))
            .build();
        let contacts = phones(0, 450);
        let (id, list) = campaign_and_list(&s, &contacts).await;
        let (status, body) = attach(&s, &id, &list).await;
        match status {
            StatusCode::OK => {
                assert_eq!(body["added"], 450, "{body}");
                assert_eq!(operation(&s, &id).await["status"], "DONE");
            }
            StatusCode::ACCEPTED => {
                assert_eq!(body["kind"], "attach", "{body}");
                // Released by the request: the sweeper carries on at once.
                sweep_until_done(&s, &id).await;
            }
            other => panic!("{other}: {body}"),
        }
        assert_hopper(&s, &id, &contacts).await;
        let op = operation(&s, &id).await;
        assert_eq!(
            op["progress"]["changed"], 450,
            "budget {budget_ms} ms: {op}"
        );
    }
}

#[tokio::test]
async fn a_leased_attach_waits_for_its_request_then_the_sweeper_starts_it_over() {
    let s = memory();
    let contacts = phones(0, 150);
    let (id, list) = campaign_and_list(&s, &contacts).await;
    assert_eq!(attach(&s, &id, &list).await.0, StatusCode::ACCEPTED);
    // As if a request had stored it leased and died before walking.
    let mut op = repo::commands::get_operation(&*s.table, common::TENANT, &id)
        .await
        .unwrap()
        .unwrap();
    op.leased_until = Some(s.clock.now() + chrono::Duration::seconds(30));
    repo::commands::save_operation(&*s.table, &mut op)
        .await
        .unwrap();
    s.sys.sweeper.run_commands(one_page()).await.unwrap();
    assert!(
        counters(&s, &id).await.is_empty(),
        "the lease holds the sweeper off"
    );
    s.clock.advance(chrono::Duration::seconds(31));
    sweep_until_done(&s, &id).await;
    assert_hopper(&s, &id, &contacts).await;
}

#[tokio::test]
async fn a_segment_for_a_missing_campaign_is_404_and_an_ended_campaign_takes_no_contacts() {
    let s = memory();
    let (status, body) = s
        .call(
            Method::POST,
            "/campaigns/cmp_missing/segments",
            Some(json!({})),
        )
        .await;
    assert_eq!(status, StatusCode::NOT_FOUND, "the campaign first: {body}");

    let contacts = phones(0, 5);
    let (id, list) = campaign_and_list(&s, &contacts).await;
    let end = s.clock.now() + chrono::Duration::hours(1);
    s.ok(
        Method::PATCH,
        &format!("/campaigns/{id}"),
        Some(json!({ "end_at": end })),
    )
    .await;
    s.clock.advance(chrono::Duration::hours(2));
    let (status, body) = attach(&s, &id, &list).await;
    assert_eq!(status, StatusCode::CONFLICT, "{body}");
    assert!(
        body["message"].as_str().unwrap().contains("end date"),
        "{body}"
    );
    assert!(counters(&s, &id).await.is_empty());
}

/// List member reads always fail, as a source that cannot be read.
struct UnreadableLists;

#[async_trait::async_trait]
impl Tap for UnreadableLists {
    async fn query(
        &self,
        q: &shared::ports::Query,
    ) -> Option<shared::ports::PortResult<shared::ports::Page>> {
        q.pk.starts_with("LIST#").then(|| {
            Err(shared::ports::PortError::Backend(
                "throttled for ever".into(),
            ))
        })
    }
}

#[tokio::test]
async fn an_attach_whose_source_cannot_be_read_gives_up_and_frees_the_campaign() {
    let mem: Arc<dyn Table> = Arc::new(MemoryTable::new());
    let healthy = system(mem.clone());
    let contacts = phones(0, 5);
    let (id, list) = campaign_and_list(&healthy, &contacts).await;
    let s = system(Arc::new(Tapped {
        inner: mem,
        tap: UnreadableLists,
    }));
    assert_eq!(attach(&s, &id, &list).await.0, StatusCode::ACCEPTED);
    for sweep in 1..shared::app::commands::ATTACH_MAX_FAILURES {
        s.sys.sweeper.run_commands(one_page()).await.unwrap();
        assert_eq!(
            operation(&s, &id).await["status"],
            "RUNNING",
            "sweep {sweep}"
        );
    }
    s.sys.sweeper.run_commands(one_page()).await.unwrap();
    let op = operation(&s, &id).await;
    assert_eq!(op["status"], "ABORTED", "{op}");
    assert!(op["message"].as_str().unwrap().contains("gave up"), "{op}");
    // Nothing runs on the campaign any more: a new attach starts a new operation.
    let (status, again) = attach(&s, &id, &list).await;
    assert_eq!(status, StatusCode::ACCEPTED, "{again}");
    assert_ne!(again["id"], op["id"], "a new operation: {again}");
}

/// List member reads fail while `fail` is set.
struct FlakyLists {
    fail: std::sync::atomic::AtomicBool,
}

#[async_trait::async_trait]
impl Tap for FlakyLists {
    async fn query(
        &self,
        q: &shared::ports::Query,
    ) -> Option<shared::ports::PortResult<shared::ports::Page>> {
        let fail = self.fail.load(std::sync::atomic::Ordering::SeqCst);
        (fail && q.pk.starts_with("LIST#"))
            .then(|| Err(shared::ports::PortError::Backend("throttled".into())))
    }
}

#[tokio::test]
async fn an_attach_page_that_fails_keeps_its_cursor_and_goes_on_from_there() {
    let flaky = Arc::new(Tapped {
        inner: Arc::new(MemoryTable::new()),
        tap: FlakyLists { fail: false.into() },
    });
    let s = system(flaky.clone());
    let contacts = phones(0, 250);
    let (id, list) = campaign_and_list(&s, &contacts).await;
    assert_eq!(attach(&s, &id, &list).await.0, StatusCode::ACCEPTED);
    s.sys.sweeper.run_commands(one_page()).await.unwrap();
    assert_eq!(operation(&s, &id).await["progress"]["examined"], 100);
    // The second page's read fails once: the sweep records the failure.
    flaky
        .tap
        .fail
        .store(true, std::sync::atomic::Ordering::SeqCst);
    s.sys.sweeper.run_commands(one_page()).await.unwrap();
    assert_eq!(operation(&s, &id).await["status"], "RUNNING");
    flaky
        .tap
        .fail
        .store(false, std::sync::atomic::Ordering::SeqCst);
    sweep_until_done(&s, &id).await;
    let op = operation(&s, &id).await;
    // Went on after the first page: nothing walked twice.
    assert_eq!(op["progress"]["examined"], 250, "{op}");
    assert_eq!(op["progress"]["already_present"], 0, "{op}");
    assert_hopper(&s, &id, &contacts).await;
}

/// Holds the next list member read (once armed) until released.
struct HeldRead {
    armed: std::sync::atomic::AtomicBool,
    hit: tokio::sync::Notify,
    release: tokio::sync::Notify,
}

#[async_trait::async_trait]
impl Tap for HeldRead {
    async fn query(
        &self,
        q: &shared::ports::Query,
    ) -> Option<shared::ports::PortResult<shared::ports::Page>> {
        if q.pk.starts_with("LIST#") && self.armed.swap(false, std::sync::atomic::Ordering::SeqCst)
        {
            self.hit.notify_one();
            self.release.notified().await;
        }
        None
    }
}

/// A request stuck past its lease: the sweeper takes its source over and finishes it, and
/// a second list queued meanwhile is next in line. When the stuck request at last records
/// what it did, the queued list must stay in line (it was overwritten by the request's
/// own source before).
#[tokio::test]
async fn a_request_that_outlived_its_lease_leaves_the_queued_sources_alone() {
    let held = Arc::new(Tapped {
        inner: Arc::new(MemoryTable::new()),
        tap: HeldRead {
            armed: false.into(),
            hit: tokio::sync::Notify::new(),
            release: tokio::sync::Notify::new(),
        },
    });
    let s = Spawn::new(held.clone())
        .attach_inline(Duration::from_millis(50))
        .build();
    let (first, second) = (phones(0, 250), phones(1000, 120));
    let (id, list_a) = campaign_and_list(&s, &first).await;
    let list_b = new_list(&s, &second).await;
    held.tap
        .armed
        .store(true, std::sync::atomic::Ordering::SeqCst);
    let request = attach(&s, &id, &list_a);
    let meanwhile = async {
        held.tap.hit.notified().await;
        let (status, queued) = attach(&s, &id, &list_b).await;
        assert_eq!(status, StatusCode::ACCEPTED, "{queued}");
        assert_eq!(queued["progress"]["sources_left"], 2, "{queued}");
        // The request's lease lapses; the sweeper takes the first list over to its end.
        s.clock.advance(chrono::Duration::minutes(1));
        for _ in 0..10 {
            s.sys.sweeper.run_commands(one_page()).await.unwrap();
            if operation(&s, &id).await["progress"]["sources_left"] == 1 {
                break;
            }
        }
        assert_eq!(operation(&s, &id).await["progress"]["sources_left"], 1);
        tokio::time::sleep(Duration::from_millis(100)).await;
        held.tap.release.notify_one();
    };
    let ((status, body), ()) = tokio::join!(request, meanwhile);
    assert_eq!(status, StatusCode::ACCEPTED, "{body}");
    sweep_until_done(&s, &id).await;
    let both: Vec<String> = first.iter().chain(&second).cloned().collect();
    assert_hopper(&s, &id, &both).await;
}
