//! Issue 18: Meta counts the messaging limit per business portfolio since 7 October 2025,
//! shared by all its numbers. Accounts name their portfolio; the dispatcher budgets the
//! portfolio once across its accounts and campaigns; the limit is read from Meta during a
//! template sync and can be set by hand.

use testkit::harness as common;

use axum::http::{Method, StatusCode};
use chrono::Duration;
use serde_json::{json, Value};
use shared::ports::Clock;
use std::sync::Arc;
use testkit::harness::{Spawn, Spawned};
use testkit::memory::MemoryTable;
use testkit::simulator::SimConfig;

const PORTFOLIO: &str = "1204567890123456";

async fn spawn() -> Spawned {
    Spawn::new(Arc::new(MemoryTable::new()))
        .simulator(SimConfig {
            reply_percent: 0,
            ..SimConfig::default()
        })
        .spawn()
        .await
}

fn id_of(v: Value) -> String {
    v["id"].as_str().unwrap().to_owned()
}

/// An account on `sender` in the portfolio (none: no portfolio).
async fn account(h: &Spawned, sender: &str, portfolio: Option<&str>) -> String {
    let mut body = common::account_body();
    body["sender_id"] = json!(sender);
    if let Some(p) = portfolio {
        body["portfolio_id"] = json!(p);
    }
    id_of(h.ok(Method::POST, "/accounts", Some(body)).await)
}

/// A launched campaign on `account` to `phones`.
async fn campaign(h: &Spawned, account: &str, name: &str, phones: &[String]) -> String {
    scheduled(h, account, name, phones, None).await
}

/// A campaign launched to start at `start` (none: now).
async fn scheduled(
    h: &Spawned,
    account: &str,
    name: &str,
    phones: &[String],
    start: Option<chrono::DateTime<chrono::Utc>>,
) -> String {
    h.ok(
        Method::POST,
        "/templates",
        Some(common::template_body(account, name)),
    )
    .await;
    let contacts: Vec<Value> = phones
        .iter()
        .map(|p| json!({"phone": p, "name": "C", "fields": {"code": "K"}}))
        .collect();
    h.ok(Method::POST, "/contacts", Some(Value::Array(contacts)))
        .await;
    let list = id_of(
        h.ok(Method::POST, "/lists", Some(json!({ "name": name })))
            .await,
    );
    h.ok(
        Method::POST,
        &format!("/lists/{list}/members"),
        Some(json!({ "phones": phones })),
    )
    .await;
    let mut body = common::campaign_body(name, account, name);
    if let Some(at) = start {
        body["start_at"] = json!(at);
    }
    let id = id_of(h.ok(Method::POST, "/campaigns", Some(body)).await);
    h.ok(
        Method::POST,
        &format!("/campaigns/{id}/lists"),
        Some(json!({ "list_id": list })),
    )
    .await;
    match start {
        None => common::launch(&h.api, &id).await,
        Some(_) => {
            let c = h
                .ok(Method::POST, &format!("/campaigns/{id}/launch"), None)
                .await;
            assert_eq!(c["status"], "SCHEDULED", "{c}");
        }
    }
    id
}

fn phones(from: usize, n: usize) -> Vec<String> {
    (from..from + n).map(|i| format!("9198123{i:05}")).collect()
}

/// Due start schedules fired (no tick) and their sends handed over.
async fn fire_starts(h: &Spawned) {
    h.sys
        .fire_due_schedules(h.scheduler.as_ref().unwrap())
        .await
        .unwrap();
    for _ in 0..3 {
        h.sys.drain_queue().await.unwrap();
        h.clock.advance(Duration::seconds(1));
    }
}

/// A few ticks a minute apart, each sent.
async fn run(h: &Spawned, minutes: usize) {
    for _ in 0..minutes {
        h.clock.advance(Duration::seconds(61));
        h.sys.tick_if_due().await.unwrap();
        h.sys.drain_queue().await.unwrap();
    }
}

#[tokio::test]
async fn accounts_of_one_portfolio_share_its_messaging_limit() {
    let h = spawn().await;
    let a = account(&h, "106540352242922", Some(PORTFOLIO)).await;
    let b = account(&h, "106540352242933", Some(PORTFOLIO)).await;
    let p = h
        .ok(
            Method::PUT,
            &format!("/portfolios/{PORTFOLIO}"),
            Some(json!({"messaging_limit": 4})),
        )
        .await;
    assert_eq!(
        (p["messaging_limit"].as_u64(), p["source"].as_str()),
        (Some(4), Some("manual"))
    );
    campaign(&h, &a, "first", &phones(0, 3)).await;
    campaign(&h, &b, "second", &phones(10, 3)).await;
    run(&h, 5).await;
    assert_eq!(
        h.simulator().sent().len(),
        4,
        "four contacts in 24 hours for the portfolio, whichever number sends"
    );
    // Once the hour they went in has left the moving 24 hours, the rest go.
    h.clock.advance(Duration::hours(25));
    run(&h, 5).await;
    assert_eq!(h.simulator().sent().len(), 6);
}

#[tokio::test]
async fn an_account_outside_any_portfolio_keeps_its_own_tier() {
    let h = spawn().await;
    let a = account(&h, "106540352242922", Some(PORTFOLIO)).await;
    let mut body = common::account_body();
    body["sender_id"] = json!("106540352242944");
    body["messaging_tier"] = json!(2);
    let solo = id_of(h.ok(Method::POST, "/accounts", Some(body)).await);
    h.ok(
        Method::PUT,
        &format!("/portfolios/{PORTFOLIO}"),
        Some(json!({"messaging_limit": 1})),
    )
    .await;
    campaign(&h, &a, "first", &phones(0, 3)).await;
    campaign(&h, &solo, "second", &phones(10, 3)).await;
    run(&h, 5).await;
    let sent = h.simulator().sent();
    let on = |pnid: &str| sent.iter().filter(|s| s.phone_number_id == pnid).count();
    assert_eq!((on("106540352242922"), on("106540352242944")), (1, 2));
}

#[tokio::test]
async fn a_template_sync_reads_the_portfolios_tier_from_meta() {
    let h = spawn().await;
    let a = account(&h, "106540352242922", Some(PORTFOLIO)).await;
    let (s, v) = h
        .call(Method::GET, &format!("/portfolios/{PORTFOLIO}"), None)
        .await;
    assert_eq!(s, StatusCode::NOT_FOUND, "{v}");
    h.ok(
        Method::PUT,
        &format!("/portfolios/{PORTFOLIO}"),
        Some(json!({"messaging_limit": 5})),
    )
    .await;
    let report = h
        .ok(Method::POST, &format!("/accounts/{a}/templates/sync"), None)
        .await;
    assert_eq!(report["messaging_limit_tier"], "TIER_2K", "{report}");
    let p = h
        .ok(Method::GET, &format!("/portfolios/{PORTFOLIO}"), None)
        .await;
    assert_eq!(
        (
            p["messaging_limit"].as_u64(),
            p["tier"].as_str(),
            p["source"].as_str()
        ),
        (Some(2000), Some("TIER_2K"), Some("meta")),
        "{p}"
    );
    // An account without a portfolio reads nothing.
    let solo = account(&h, "106540352242955", None).await;
    let report = h
        .ok(
            Method::POST,
            &format!("/accounts/{solo}/templates/sync"),
            None,
        )
        .await;
    assert_eq!(report["messaging_limit_tier"], Value::Null, "{report}");
}

#[tokio::test]
async fn portfolio_ids_and_limits_are_validated_naming_the_field() {
    let h = spawn().await;
    let (s, v) = h
        .call(
            Method::PUT,
            &format!("/portfolios/{PORTFOLIO}"),
            Some(json!({"messaging_limit": 0})),
        )
        .await;
    assert_eq!(
        (s, v["field"].as_str()),
        (StatusCode::UNPROCESSABLE_ENTITY, Some("messaging_limit")),
        "{v}"
    );
    let mut body = common::account_body();
    body["portfolio_id"] = json!("acme-1");
    let (s, v) = h.call(Method::POST, "/accounts", Some(body)).await;
    assert_eq!(
        (s, v["field"].as_str()),
        (StatusCode::UNPROCESSABLE_ENTITY, Some("portfolio_id")),
        "{v}"
    );
    let (s, v) = h
        .call(
            Method::PUT,
            &format!("/portfolios/{PORTFOLIO}"),
            Some(json!({})),
        )
        .await;
    assert_eq!(
        (s, v["field"].as_str()),
        (StatusCode::UNPROCESSABLE_ENTITY, Some("messaging_limit")),
        "left out is not unlimited: {v}"
    );
    let (s, _) = h.call(Method::GET, "/portfolios/not-digits", None).await;
    assert_eq!(s, StatusCode::NOT_FOUND);
}

#[tokio::test]
async fn a_start_beside_a_running_account_of_its_portfolio_waits_for_the_tick() {
    let h = spawn().await;
    let a = account(&h, "106540352242922", Some(PORTFOLIO)).await;
    let b = account(&h, "106540352242933", Some(PORTFOLIO)).await;
    let soon = h.clock.now() + Duration::minutes(5);
    scheduled(&h, &a, "first", &phones(0, 2), Some(soon)).await;
    h.clock.advance(Duration::minutes(5));
    fire_starts(&h).await;
    assert_eq!(
        h.simulator().sent().len(),
        2,
        "alone in its portfolio: at once"
    );
    let later = h.clock.now() + Duration::minutes(5);
    scheduled(&h, &b, "second", &phones(10, 2), Some(later)).await;
    h.clock.advance(Duration::minutes(5));
    fire_starts(&h).await;
    assert_eq!(
        h.simulator().sent().len(),
        2,
        "beside its portfolio's running account it leaves the budget to the tick"
    );
    run(&h, 2).await;
    assert_eq!(h.simulator().sent().len(), 4);
}

#[tokio::test]
async fn a_limit_that_appears_later_sees_what_the_portfolio_sent_before_it() {
    let h = spawn().await;
    let a = account(&h, "106540352242922", Some(PORTFOLIO)).await;
    campaign(&h, &a, "first", &phones(0, 2)).await;
    run(&h, 3).await;
    assert_eq!(h.simulator().sent().len(), 2, "no limit known yet");
    h.ok(
        Method::PUT,
        &format!("/portfolios/{PORTFOLIO}"),
        Some(json!({"messaging_limit": 3})),
    )
    .await;
    campaign(&h, &a, "second", &phones(10, 3)).await;
    run(&h, 3).await;
    assert_eq!(
        h.simulator().sent().len(),
        3,
        "the two sent before the limit count against it"
    );
}
