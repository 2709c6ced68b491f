//! Issue 14: the statistics recount (R6.2) and the cost estimate (R6.4) of a campaign too
//! large to read within its request run in the background. The request walks the hopper
//! within a budget (here zero, so everything goes to the background), answers 202 with the
//! campaign's `recount` or `estimate` operation, and the sweeper carries it on a page at a
//! time, storing what it counted with where it stands; the operation's `result` is the
//! answer. Tested: progress across sweeps and the repair, asking again while it runs, the
//! counters moving meanwhile (ABORTED, nothing repaired), two sweepers walking at once
//! (each entry counted once), the estimate served once done, a reset replacing a running
//! estimate; on the in-memory table and on DynamoDB in the emulator.

use testkit::harness as common;

use axum::http::{Method, StatusCode};
use serde_json::{json, Value};
use shared::adapters::aws::DynamoTable;
use shared::app::commands::CommandBudget;
use shared::domain::hopper::EntryState;
use shared::domain::stats;
use shared::ports::Table;
use shared::repo;
use std::collections::BTreeMap;
use std::sync::Arc;
use std::time::Duration;
use testkit::harness::{Spawn, Spawned};
use testkit::memory::{Interleaved, MemoryTable};

const CONTACTS: usize = 300;

/// The in-memory table, every call yielding first, so that two walkers at once really
/// interleave between their reads and their conditional writes.
fn memory() -> Spawned {
    system(Arc::new(Interleaved(Arc::new(MemoryTable::new()))))
}

async fn emulator() -> Spawned {
    let table: DynamoTable = common::dynamo_table("background reports", "reports").await;
    system(Arc::new(table))
}

fn system(table: Arc<dyn Table>) -> Spawned {
    Spawn::new(table).attach_inline(Duration::ZERO).build()
}

/// One sweep's budget: one page, of 7 entries when a report walks (a shard holds about
/// 19 of the 300, so walks stop and go on inside shards); an attach walks 100 contacts.
fn one_page() -> CommandBudget {
    CommandBudget {
        max_entries: 7,
        page: 7,
        ..CommandBudget::default()
    }
}

async fn operation(s: &Spawned, id: &str) -> Value {
    s.ok(Method::GET, &format!("/campaigns/{id}/operation"), None)
        .await
}

async fn counters(s: &Spawned, id: &str) -> BTreeMap<String, i64> {
    stats::nonzero(
        &repo::get_counters(&*s.table, common::TENANT, id)
            .await
            .unwrap(),
    )
}

/// What a recount of the stored entries gives.
async fn recount(s: &Spawned, id: &str) -> BTreeMap<String, i64> {
    let c = repo::get_campaign(&*s.table, common::TENANT, id)
        .await
        .unwrap()
        .unwrap();
    let entries = repo::all_entries(&*s.table, &c).await.unwrap();
    stats::recount(&entries)
        .into_iter()
        .map(|(k, v)| (k.to_owned(), v))
        .collect()
}

/// Sweeps a page at a time until the campaign's operation is no longer RUNNING; the
/// number of sweeps.
async fn sweep_until_finished(s: &Spawned, id: &str) -> usize {
    for runs in 1..=400 {
        s.sys.sweeper.run_commands(one_page()).await.unwrap();
        if operation(s, id).await["status"] != "RUNNING" {
            return runs;
        }
    }
    panic!("the walk never finished: {}", operation(s, id).await);
}

/// A READY campaign with `CONTACTS` contacts attached (in the background too).
async fn campaign(s: &Spawned) -> String {
    let phones: Vec<String> = (0..CONTACTS).map(|i| format!("9198100{i:05}")).collect();
    let phones: Vec<&str> = phones.iter().map(String::as_str).collect();
    let (id, list) = s
        .campaign_with_list(json!({}), &phones, json!({}), json!({}))
        .await;
    let (status, _) = s
        .call(
            Method::POST,
            &format!("/campaigns/{id}/lists"),
            Some(json!({ "list_id": list })),
        )
        .await;
    assert_eq!(status, StatusCode::ACCEPTED);
    sweep_until_finished(s, &id).await;
    assert_eq!(operation(s, &id).await["status"], "DONE");
    assert_eq!(
        counters(s, &id).await.get("target"),
        Some(&(CONTACTS as i64))
    );
    id
}

/// Counters off by what a worker that died between an entry write and its counter write
/// leaves: 5 FRESH too many, 2 SENT missing.
async fn drift(s: &Spawned, id: &str) {
    let off = BTreeMap::from([
        (EntryState::Fresh.as_str().to_owned(), 5),
        ("sent".to_owned(), -2),
    ]);
    repo::add_named_counters(&*s.table, common::TENANT, id, &off)
        .await
        .unwrap();
}

async fn post_recount(s: &Spawned, id: &str) -> (StatusCode, Value) {
    s.call(
        Method::POST,
        &format!("/campaigns/{id}/stats/recount"),
        None,
    )
    .await
}

async fn get_cost(s: &Spawned, id: &str) -> (StatusCode, Value) {
    s.call(Method::GET, &format!("/campaigns/{id}/cost"), None)
        .await
}

async fn recount_repairs_in_the_background(s: Spawned) {
    let id = campaign(&s).await;
    let truth = recount(&s, &id).await;
    drift(&s, &id).await;
    assert_ne!(counters(&s, &id).await, truth);

    let (status, op) = post_recount(&s, &id).await;
    assert_eq!(status, StatusCode::ACCEPTED, "{op}");
    assert_eq!(
        (op["kind"].as_str(), op["status"].as_str()),
        (Some("recount"), Some("RUNNING"))
    );
    // Asked again while it runs: the same walk.
    let (status, again) = post_recount(&s, &id).await;
    assert_eq!(status, StatusCode::ACCEPTED);
    assert_eq!(again["id"], op["id"]);
    assert_eq!(
        counters(&s, &id).await.get("FRESH"),
        Some(&(CONTACTS as i64 + 5)),
        "nothing repaired yet"
    );

    let sweeps = sweep_until_finished(&s, &id).await;
    assert!(
        sweeps > 1,
        "one page per sweep: the walk went on across sweeps ({sweeps})"
    );
    let done = operation(&s, &id).await;
    assert_eq!(done["status"], "DONE", "{done}");
    assert_eq!(done["progress"]["examined"], CONTACTS as u64);
    let result = &done["result"];
    assert_eq!(result["entries"], CONTACTS as i64);
    assert_eq!(result["difference"], json!({"FRESH": -5, "sent": 2}));
    assert_eq!(counters(&s, &id).await, truth, "counters equal a recount");
}

#[tokio::test]
async fn a_large_recount_repairs_the_counters_in_the_background() {
    recount_repairs_in_the_background(memory()).await;
}

#[tokio::test]
async fn a_large_recount_repairs_the_counters_in_the_background_on_dynamodb() {
    recount_repairs_in_the_background(emulator().await).await;
}

#[tokio::test]
async fn counters_that_move_during_a_background_recount_abort_it_without_repair() {
    let s = memory();
    let id = campaign(&s).await;
    drift(&s, &id).await;
    let (status, _) = post_recount(&s, &id).await;
    assert_eq!(status, StatusCode::ACCEPTED);
    s.sys.sweeper.run_commands(one_page()).await.unwrap();
    // A status arrives meanwhile (statuses keep coming to a PAUSED campaign).
    let moved = BTreeMap::from([("delivered".to_owned(), 1)]);
    repo::add_named_counters(&*s.table, common::TENANT, &id, &moved)
        .await
        .unwrap();
    let before = counters(&s, &id).await;
    sweep_until_finished(&s, &id).await;
    let op = operation(&s, &id).await;
    assert_eq!(op["status"], "ABORTED", "{op}");
    assert!(op["message"].as_str().unwrap().contains("moved"), "{op}");
    assert_eq!(op["result"], Value::Null);
    assert_eq!(counters(&s, &id).await, before, "nothing repaired");
}

#[tokio::test]
async fn two_sweepers_walking_one_recount_at_once_count_each_entry_once() {
    let s = memory();
    let id = campaign(&s).await;
    let truth = recount(&s, &id).await;
    drift(&s, &id).await;
    let (status, _) = post_recount(&s, &id).await;
    assert_eq!(status, StatusCode::ACCEPTED);
    for _ in 0..100 {
        let (a, b) = tokio::join!(
            s.sys.sweeper.run_commands(one_page()),
            s.sys.sweeper.run_commands(one_page())
        );
        a.unwrap();
        b.unwrap();
        if operation(&s, &id).await["status"] != "RUNNING" {
            break;
        }
    }
    let op = operation(&s, &id).await;
    assert_eq!(op["status"], "DONE", "{op}");
    assert_eq!(op["result"]["entries"], CONTACTS as i64);
    assert_eq!(op["progress"]["examined"], CONTACTS as u64);
    assert_eq!(counters(&s, &id).await, truth);
}

async fn estimate_in_the_background(s: Spawned) {
    let id = campaign(&s).await;
    let (status, op) = get_cost(&s, &id).await;
    assert_eq!(status, StatusCode::ACCEPTED, "{op}");
    assert_eq!(
        (op["kind"].as_str(), op["status"].as_str()),
        (Some("estimate"), Some("RUNNING"))
    );
    let (status, again) = get_cost(&s, &id).await;
    assert_eq!(status, StatusCode::ACCEPTED);
    assert_eq!(
        again["id"], op["id"],
        "asked again while it runs: the same walk"
    );

    assert!(sweep_until_finished(&s, &id).await > 1);
    let done = operation(&s, &id).await;
    assert_eq!(done["status"], "DONE", "{done}");
    let (status, estimate) = get_cost(&s, &id).await;
    assert_eq!(
        status,
        StatusCode::OK,
        "once done, the estimate: {estimate}"
    );
    assert_eq!(estimate, done["result"], "the stored answer");
    assert_eq!(estimate["target"]["messages"], CONTACTS as i64);
    assert_eq!(estimate["sent"]["messages"], 0);
    assert_eq!(estimate["countries"][0]["country"], "IN");
    assert_eq!(estimate["countries"][0]["target"], CONTACTS as i64);
    assert!(estimate["target"]["cost"].as_f64().unwrap() > 0.0);
    // Nothing changed in the hopper, and the counters did not move.
    assert_eq!(counters(&s, &id).await, recount(&s, &id).await);
}

#[tokio::test]
async fn a_large_cost_estimate_runs_in_the_background_and_is_served_once_done() {
    estimate_in_the_background(memory()).await;
}

#[tokio::test]
async fn a_large_cost_estimate_runs_in_the_background_on_dynamodb() {
    estimate_in_the_background(emulator().await).await;
}

#[tokio::test]
async fn a_reset_replaces_a_running_estimate_and_a_running_reset_refuses_one() {
    let s = memory();
    let id = campaign(&s).await;
    let (status, _) = get_cost(&s, &id).await;
    assert_eq!(status, StatusCode::ACCEPTED);
    let (status, reset) = s
        .call(
            Method::POST,
            &format!("/campaigns/{id}/reset"),
            Some(json!({"confirm": true})),
        )
        .await;
    assert_eq!(status, StatusCode::ACCEPTED, "{reset}");
    assert!(
        reset["message"]
            .as_str()
            .unwrap()
            .contains("replaces the estimate"),
        "{reset}"
    );
    let (status, body) = get_cost(&s, &id).await;
    assert_eq!(status, StatusCode::CONFLICT, "{body}");
    assert!(
        body["message"].as_str().unwrap().contains("reset"),
        "{body}"
    );
    let (status, body) = post_recount(&s, &id).await;
    assert_eq!(status, StatusCode::CONFLICT, "{body}");
}

#[tokio::test]
async fn a_small_campaign_is_still_answered_within_the_request() {
    let s = Spawn::new(Arc::new(MemoryTable::new())).build();
    let phones = ["919810000001", "919810000002"];
    let (id, list) = s
        .campaign_with_list(json!({}), &phones, json!({}), json!({}))
        .await;
    s.ok(
        Method::POST,
        &format!("/campaigns/{id}/lists"),
        Some(json!({ "list_id": list })),
    )
    .await;
    let (status, estimate) = get_cost(&s, &id).await;
    assert_eq!(status, StatusCode::OK, "{estimate}");
    assert_eq!(estimate["target"]["messages"], 2);
    let (status, recount) = post_recount(&s, &id).await;
    assert_eq!(status, StatusCode::OK, "{recount}");
    assert_eq!(recount["entries"], 2);
    let op = operation(&s, &id).await;
    assert_eq!(op["kind"], "attach", "no report operation was stored: {op}");
}

#[tokio::test]
async fn an_estimate_waits_for_a_running_recount_and_a_recount_replaces_an_estimate() {
    let s = memory();
    let id = campaign(&s).await;
    let truth = recount(&s, &id).await;
    drift(&s, &id).await;
    let (status, recounting) = post_recount(&s, &id).await;
    assert_eq!(status, StatusCode::ACCEPTED);
    // A dashboard polling the cost cannot cancel the repair.
    let (status, body) = get_cost(&s, &id).await;
    assert_eq!(status, StatusCode::CONFLICT, "{body}");
    assert!(
        body["message"].as_str().unwrap().contains("recount"),
        "{body}"
    );
    assert_eq!(operation(&s, &id).await["id"], recounting["id"]);
    sweep_until_finished(&s, &id).await;
    assert_eq!(operation(&s, &id).await["status"], "DONE");
    assert_eq!(counters(&s, &id).await, truth);
    // The other way round: the recount replaces the estimate.
    let (status, estimating) = get_cost(&s, &id).await;
    assert_eq!(status, StatusCode::ACCEPTED);
    let (status, op) = post_recount(&s, &id).await;
    assert_eq!(status, StatusCode::ACCEPTED, "{op}");
    assert_ne!(op["id"], estimating["id"]);
    assert!(
        op["message"]
            .as_str()
            .unwrap()
            .contains("replaces the estimate"),
        "{op}"
    );
}

#[tokio::test]
async fn a_retry_with_nothing_to_retry_is_refused_while_an_estimate_runs() {
    let s = memory();
    let id = campaign(&s).await;
    for action in ["launch", "pause"] {
        s.ok(Method::POST, &format!("/campaigns/{id}/{action}"), None)
            .await;
    }
    let (status, _) = get_cost(&s, &id).await;
    assert_eq!(status, StatusCode::ACCEPTED);
    let (status, body) = s
        .call(Method::POST, &format!("/campaigns/{id}/retry"), None)
        .await;
    assert_eq!(status, StatusCode::CONFLICT, "{body}");
    assert!(
        body["message"].as_str().unwrap().contains("no RETRY"),
        "{body}"
    );
    assert_eq!(
        operation(&s, &id).await["kind"],
        "estimate",
        "the estimate goes on"
    );
}
