//! R4.3: block lists attached to campaigns and the tenant-wide opt-out list, their
//! storage (on the in-memory table and on DynamoDB in the local emulator) and their API.
//! The sender's check itself is tested with the sender; here the lookups it calls
//! (`repo::blocklists::blocked_by`, `is_opted_out`) are.

use testkit::harness as common;

use axum::http::{Method, StatusCode};
use axum::Router;
use common::{call, call_as};
use serde_json::{json, Value};
use shared::app::blocklists::BlockListDeletion;
use shared::domain::blocklist::{OptOut, OptOutSource};
use shared::domain::phone::PhoneNumber;
use shared::ports::Table;
use shared::repo::blocklists as store;
use std::sync::Arc;
use std::time::Duration;
use testkit::harness::{Spawn, Spawned};
use testkit::memory::MemoryTable;

/// The system on a table; `sys.operator` is the admin the API runs on.
type Env = Spawned;

fn env_on(table: Arc<dyn Table>) -> Env {
    Spawn::new(table).build()
}

fn memory() -> Env {
    env_on(Arc::new(MemoryTable::new()))
}

async fn dynamo() -> Env {
    env_on(Arc::new(
        common::dynamo_table("DynamoDB block list", "blocklists").await,
    ))
}

fn p(s: &str) -> PhoneNumber {
    PhoneNumber::parse(s).unwrap()
}

async fn block_list(api: &Router, tenant: &str, name: &str) -> String {
    let (s, b) = call_as(
        api,
        tenant,
        Method::POST,
        "/block-lists",
        Some(json!({ "name": name })),
    )
    .await;
    assert_eq!(s, StatusCode::CREATED, "{b}");
    b["id"].as_str().unwrap().to_owned()
}

async fn block(api: &Router, tenant: &str, list: &str, phones: Value) -> Value {
    let (s, b) = call_as(
        api,
        tenant,
        Method::POST,
        &format!("/block-lists/{list}/numbers"),
        Some(json!({ "phones": phones })),
    )
    .await;
    assert_eq!(s, StatusCode::OK, "{b}");
    b
}

// ---- block lists ----

async fn found_for_attached_lists_only(e: Env) {
    let a = block_list(&e.api, "acme", "Complaints").await;
    let b = block_list(&e.api, "acme", "Legal").await;
    let c = block_list(&e.api, "acme", "Not attached").await;
    block(&e.api, "acme", &a, json!(["+91 98123 45678", "1234"])).await;
    block(&e.api, "acme", &b, json!(["919812345678", "447911123456"])).await;
    block(&e.api, "acme", &c, json!(["15550100999"])).await;
    let attached = vec![a.clone(), b.clone()];
    let t = &*e.table;
    // The first attached list holding the number, in attachment order.
    let hit = store::blocked_by(t, "acme", &attached, &p("919812345678")).await;
    assert_eq!(hit.unwrap(), Some(a.clone()));
    let reversed = vec![b.clone(), a.clone()];
    let hit = store::blocked_by(t, "acme", &reversed, &p("919812345678")).await;
    assert_eq!(hit.unwrap(), Some(b.clone()));
    let hit = store::blocked_by(t, "acme", &attached, &p("447911123456")).await;
    assert_eq!(hit.unwrap(), Some(b.clone()));
    // Short numbers are blockable.
    let hit = store::blocked_by(t, "acme", &attached, &p("1234")).await;
    assert_eq!(hit.unwrap(), Some(a.clone()));
    // On a list the campaign does not attach: not blocked.
    let hit = store::blocked_by(t, "acme", &attached, &p("15550100999")).await;
    assert_eq!(hit.unwrap(), None);
    let hit = store::blocked_by(t, "acme", &[], &p("919812345678")).await;
    assert_eq!(hit.unwrap(), None);
    // Another tenant naming the same list ids sees nothing.
    let hit = store::blocked_by(t, "other", &attached, &p("919812345678")).await;
    assert_eq!(hit.unwrap(), None);
    let (s, _) = call_as(
        &e.api,
        "other",
        Method::GET,
        &format!("/block-lists/{a}"),
        None,
    )
    .await;
    assert_eq!(s, StatusCode::NOT_FOUND);
    // Removing the number from the first list leaves the second.
    let (s, b2) = call(
        &e.api,
        Method::DELETE,
        &format!("/block-lists/{a}/numbers/%2B919812345678"),
        None,
    )
    .await;
    assert_eq!(s, StatusCode::NO_CONTENT, "{b2}");
    let hit = store::blocked_by(t, "acme", &attached, &p("919812345678")).await;
    assert_eq!(hit.unwrap(), Some(b.clone()));
    // The sender calls the lookups from spawned tasks: their futures are Send.
    let table = e.table.clone();
    let spawned = tokio::spawn(async move {
        let phone = p("447911123456");
        let blocked = store::blocked_by(&*table, "acme", &attached, &phone).await;
        let opted = store::is_opted_out(&*table, "acme", &phone).await;
        (blocked, opted)
    })
    .await
    .unwrap();
    assert_eq!(spawned, (Ok(Some(b)), Ok(false)));
}

testkit::on_both_backends! {
    memory: memory(), dynamo: dynamo().await;
    found_for_attached_lists_only: r4_3_block_list_numbers_are_found_for_attached_lists_only, r4_3_block_list_numbers_are_found_for_attached_lists_only_on_dynamodb;
}

#[tokio::test]
async fn r4_3_block_list_api_validates_and_reports_each_number() {
    let e = memory();
    // Creating: a name is required; unknown fields are a 400 naming them.
    let (s, b) = call(&e.api, Method::POST, "/block-lists", Some(json!({}))).await;
    assert_eq!(
        (s, b["field"].as_str()),
        (StatusCode::UNPROCESSABLE_ENTITY, Some("name")),
        "{b}"
    );
    let (s, b) = call(
        &e.api,
        Method::POST,
        "/block-lists",
        Some(json!({"name": "x".repeat(201)})),
    )
    .await;
    assert_eq!(
        (s, b["field"].as_str()),
        (StatusCode::UNPROCESSABLE_ENTITY, Some("name")),
        "{b}"
    );
    let (s, b) = call(
        &e.api,
        Method::POST,
        "/block-lists",
        Some(json!({"name": "n", "colour": "red"})),
    )
    .await;
    assert_eq!(s, StatusCode::BAD_REQUEST, "{b}");
    let (s, l) = call(
        &e.api,
        Method::POST,
        "/block-lists",
        Some(json!({"name": " DNC ", "description": "complaints"})),
    )
    .await;
    assert_eq!(s, StatusCode::CREATED, "{l}");
    assert_eq!(
        (l["name"].as_str(), l["description"].as_str()),
        (Some("DNC"), Some("complaints"))
    );
    assert!(l.get("deleting").is_none(), "{l}");
    let id = l["id"].as_str().unwrap().to_owned();
    let (s, got) = call(&e.api, Method::GET, &format!("/block-lists/{id}"), None).await;
    assert_eq!((s, &got), (StatusCode::OK, &l));

    // Adding: invalid inputs are reported by position, the others added; repeats count
    // as already present.
    let added = block(
        &e.api,
        "acme",
        &id,
        json!([
            "+91 98123 45678",
            "+91 98x",
            "12345",
            "0091 9812345678",
            "",
            "+91 98123 4567"
        ]),
    )
    .await;
    assert_eq!(
        (added["added"].as_u64(), added["already_present"].as_u64()),
        (Some(3), Some(1)),
        "{added}"
    );
    let fields: Vec<&str> = added["errors"]
        .as_array()
        .unwrap()
        .iter()
        .map(|e| e["field"].as_str().unwrap())
        .collect();
    assert_eq!(fields, ["phones[1]", "phones[4]"], "{added}");
    assert_eq!(added["errors"][0]["input"], "+91 98x");
    let again = block(&e.api, "acme", &id, json!(["919812345678"])).await;
    assert_eq!(
        (again["added"].as_u64(), again["already_present"].as_u64()),
        (Some(0), Some(1))
    );
    // Too many or none: 422 naming `phones`; an unknown list: 404; no body field: 400.
    let many: Vec<String> = (0..1001).map(|i| format!("4479111{i:05}")).collect();
    for phones in [json!(many), json!([])] {
        let (s, b) = call(
            &e.api,
            Method::POST,
            &format!("/block-lists/{id}/numbers"),
            Some(json!({ "phones": phones })),
        )
        .await;
        assert_eq!(
            (s, b["field"].as_str()),
            (StatusCode::UNPROCESSABLE_ENTITY, Some("phones")),
            "{b}"
        );
    }
    let (s, _) = call(
        &e.api,
        Method::POST,
        "/block-lists/bl_missing/numbers",
        Some(json!({"phones": ["12345"]})),
    )
    .await;
    assert_eq!(s, StatusCode::NOT_FOUND);
    let (s, b) = call(
        &e.api,
        Method::POST,
        &format!("/block-lists/{id}/numbers"),
        Some(json!({})),
    )
    .await;
    assert_eq!(
        (s, b["field"].as_str()),
        (StatusCode::BAD_REQUEST, None),
        "{b}"
    );

    // Checking one number: 200 on the list, 404 off it, 422 not a number.
    let (s, n) = call(
        &e.api,
        Method::GET,
        &format!("/block-lists/{id}/numbers/12345"),
        None,
    )
    .await;
    assert_eq!(
        (s, n["phone"].as_str()),
        (StatusCode::OK, Some("12345")),
        "{n}"
    );
    let (s, n) = call(
        &e.api,
        Method::GET,
        &format!("/block-lists/{id}/numbers/447911123456"),
        None,
    )
    .await;
    assert_eq!(s, StatusCode::NOT_FOUND, "{n}");
    assert!(
        !n["message"].as_str().unwrap().contains("447911123456"),
        "masked: {n}"
    );
    let (s, n) = call(
        &e.api,
        Method::GET,
        &format!("/block-lists/{id}/numbers/12ab"),
        None,
    )
    .await;
    assert_eq!(
        (s, n["field"].as_str()),
        (StatusCode::UNPROCESSABLE_ENTITY, Some("phone")),
        "{n}"
    );

    // Listing the numbers, a page at a time.
    let mut seen = Vec::new();
    let mut cursor: Option<String> = None;
    loop {
        let q = cursor
            .as_deref()
            .map(|c| format!("&cursor={}", common::urlencode(c)))
            .unwrap_or_default();
        let (s, page) = call(
            &e.api,
            Method::GET,
            &format!("/block-lists/{id}/numbers?limit=2{q}"),
            None,
        )
        .await;
        assert_eq!(s, StatusCode::OK, "{page}");
        for n in page["items"].as_array().unwrap() {
            seen.push(n["phone"].as_str().unwrap().to_owned());
        }
        match page["next_cursor"].as_str() {
            Some(c) => cursor = Some(c.to_owned()),
            None => break,
        }
    }
    assert_eq!(seen, ["12345", "91981234567", "919812345678"]);

    // Removing: 204, then 404.
    let path = format!("/block-lists/{id}/numbers/12345");
    let (s, _) = call(&e.api, Method::DELETE, &path, None).await;
    assert_eq!(s, StatusCode::NO_CONTENT);
    let (s, _) = call(&e.api, Method::DELETE, &path, None).await;
    assert_eq!(s, StatusCode::NOT_FOUND);

    // Listing the lists.
    let other = block_list(&e.api, "acme", "Second").await;
    let (s, page) = call(&e.api, Method::GET, "/block-lists", None).await;
    assert_eq!(s, StatusCode::OK, "{page}");
    let ids: Vec<&str> = page["items"]
        .as_array()
        .unwrap()
        .iter()
        .map(|l| l["id"].as_str().unwrap())
        .collect();
    assert_eq!(ids, [id.as_str(), other.as_str()]);
    let (s, page) = call_as(&e.api, "other", Method::GET, "/block-lists", None).await;
    assert_eq!(
        (s, page["items"].as_array().map(Vec::len)),
        (StatusCode::OK, Some(0))
    );
}

async fn deleted_in_pages(e: Env) {
    let id = block_list(&e.api, "acme", "Big").await;
    let phones: Vec<String> = (0..1200).map(|i| format!("4479110{i:05}")).collect();
    for chunk in phones.chunks(1000) {
        let b = block(&e.api, "acme", &id, json!(chunk)).await;
        assert_eq!(b["added"].as_u64(), Some(chunk.len() as u64), "{b}");
    }
    let lists = vec![id.clone()];
    let sample = p("447911000042");
    let hit = store::blocked_by(&*e.table, "acme", &lists, &sample).await;
    assert_eq!(hit.unwrap(), Some(id.clone()));
    // A budget of nothing removes one page per call; the list is gone for readers at once.
    let acme = shared::domain::ids::TenantId::parse("acme").unwrap();
    let first = e
        .sys
        .operator
        .block_lists
        .delete_block_list_within(&acme, &id, Duration::ZERO, 500)
        .await
        .unwrap();
    assert_eq!(first, BlockListDeletion::InProgress { removed: 500 });
    let (s, _) = call(&e.api, Method::GET, &format!("/block-lists/{id}"), None).await;
    assert_eq!(s, StatusCode::NOT_FOUND);
    let (s, page) = call(&e.api, Method::GET, "/block-lists", None).await;
    assert_eq!(
        page["items"].as_array().map(Vec::len),
        Some(0),
        "{s} {page}"
    );
    let (s, _) = call(
        &e.api,
        Method::POST,
        &format!("/block-lists/{id}/numbers"),
        Some(json!({"phones": ["12345"]})),
    )
    .await;
    assert_eq!(s, StatusCode::NOT_FOUND);
    let mut calls = 1;
    loop {
        calls += 1;
        match e
            .sys
            .operator
            .block_lists
            .delete_block_list_within(&acme, &id, Duration::ZERO, 500)
            .await
            .unwrap()
        {
            BlockListDeletion::InProgress { removed } => assert!(removed <= 500),
            BlockListDeletion::Deleted => break,
        }
        assert!(calls < 10, "the delete does not progress");
    }
    assert!(
        calls >= 3,
        "1200 numbers in pages of 500 took {calls} calls"
    );
    let (numbers, _) = store::blocked_numbers(&*e.table, "acme", &id, 1000, None)
        .await
        .unwrap();
    assert!(numbers.is_empty());
    assert!(store::get_block_list(&*e.table, "acme", &id)
        .await
        .unwrap()
        .is_none());
    let hit = store::blocked_by(&*e.table, "acme", &lists, &sample).await;
    assert_eq!(hit.unwrap(), None);
    // Deleting again: 404. A small list goes in one call: 204.
    let (s, _) = call(&e.api, Method::DELETE, &format!("/block-lists/{id}"), None).await;
    assert_eq!(s, StatusCode::NOT_FOUND);
    let small = block_list(&e.api, "acme", "Small").await;
    block(&e.api, "acme", &small, json!(["12345", "447911123456"])).await;
    let (s, b) = call(
        &e.api,
        Method::DELETE,
        &format!("/block-lists/{small}"),
        None,
    )
    .await;
    assert_eq!(s, StatusCode::NO_CONTENT, "{b}");
    let (numbers, _) = store::blocked_numbers(&*e.table, "acme", &small, 10, None)
        .await
        .unwrap();
    assert!(numbers.is_empty());
}

testkit::on_both_backends! {
    memory: memory(), dynamo: dynamo().await;
    deleted_in_pages: r4_3_deleting_a_block_list_removes_its_numbers_in_pages, r4_3_deleting_a_block_list_removes_its_numbers_in_pages_on_dynamodb;
}

// ---- campaigns ----

async fn campaign_with(api: &Router, extra: Value) -> (StatusCode, Value) {
    call(
        api,
        Method::POST,
        "/campaigns",
        Some(common::merged(json!({"name": "Spring"}), extra)),
    )
    .await
}

#[tokio::test]
async fn r4_3_campaign_attaches_only_existing_block_lists() {
    let e = memory();
    let a = block_list(&e.api, "acme", "A").await;
    let b = block_list(&e.api, "acme", "B").await;
    let foreign = block_list(&e.api, "other", "Theirs").await;

    let (s, c) = campaign_with(&e.api, json!({})).await;
    assert_eq!(s, StatusCode::CREATED, "{c}");
    assert_eq!(c["block_lists"], json!([]), "defaults to none: {c}");

    for (lists, field) in [
        (json!(["bl_missing"]), "block_lists[0]"),
        (json!([a, foreign]), "block_lists[1]"),
        (json!([a, a]), "block_lists[1]"),
        (json!(["bl#1"]), "block_lists[0]"),
        (
            json!((0..11).map(|i| format!("bl_{i}")).collect::<Vec<_>>()),
            "block_lists",
        ),
    ] {
        let (s, body) = campaign_with(&e.api, json!({ "block_lists": lists })).await;
        assert_eq!(
            (s, body["field"].as_str()),
            (StatusCode::UNPROCESSABLE_ENTITY, Some(field)),
            "{lists}: {body}"
        );
    }
    let (s, body) = campaign_with(&e.api, json!({"block_lists": "bl_1"})).await;
    assert_eq!(
        (s, body["field"].as_str()),
        (StatusCode::BAD_REQUEST, Some("block_lists")),
        "{body}"
    );

    let (s, c) = campaign_with(&e.api, json!({ "block_lists": [a] })).await;
    assert_eq!(
        (s, &c["block_lists"]),
        (StatusCode::CREATED, &json!([a])),
        "{c}"
    );
    let id = c["id"].as_str().unwrap().to_owned();
    let path = format!("/campaigns/{id}");
    // Editing replaces the set, with the same checks.
    let (s, body) = call(
        &e.api,
        Method::PATCH,
        &path,
        Some(json!({"block_lists": [b, "bl_gone"]})),
    )
    .await;
    assert_eq!(
        (s, body["field"].as_str()),
        (StatusCode::UNPROCESSABLE_ENTITY, Some("block_lists[1]")),
        "{body}"
    );
    let (s, c) = call(
        &e.api,
        Method::PATCH,
        &path,
        Some(json!({"block_lists": [b, a]})),
    )
    .await;
    assert_eq!(
        (s, &c["block_lists"]),
        (StatusCode::OK, &json!([b, a])),
        "{c}"
    );
    let (s, c) = call(&e.api, Method::PATCH, &path, Some(json!({"notes": "n"}))).await;
    assert_eq!(
        (s, &c["block_lists"]),
        (StatusCode::OK, &json!([b, a])),
        "kept: {c}"
    );
    let stored = shared::repo::get_campaign(&*e.table, "acme", &id)
        .await
        .unwrap()
        .unwrap();
    assert_eq!(stored.block_lists, [b.clone(), a.clone()]);

    // An attached list cannot be deleted while the campaign may still send.
    let (s, body) = call(&e.api, Method::DELETE, &format!("/block-lists/{a}"), None).await;
    assert_eq!(s, StatusCode::CONFLICT, "{body}");
    assert!(body["message"].as_str().unwrap().contains(&id), "{body}");
    let (s, c) = call(
        &e.api,
        Method::PATCH,
        &path,
        Some(json!({"block_lists": [b]})),
    )
    .await;
    assert_eq!((s, &c["block_lists"]), (StatusCode::OK, &json!([b])), "{c}");
    let (s, body) = call(&e.api, Method::DELETE, &format!("/block-lists/{a}"), None).await;
    assert_eq!(s, StatusCode::NO_CONTENT, "{body}");
    // A deleted list cannot be attached; a cancelled campaign does not hold its lists.
    let (s, body) = call(
        &e.api,
        Method::PATCH,
        &path,
        Some(json!({"block_lists": [a]})),
    )
    .await;
    assert_eq!(
        (s, body["field"].as_str()),
        (StatusCode::UNPROCESSABLE_ENTITY, Some("block_lists[0]")),
        "{body}"
    );
    let (s, _) = call(&e.api, Method::POST, &format!("{path}/cancel"), None).await;
    assert_eq!(s, StatusCode::OK);
    let (s, body) = call(&e.api, Method::DELETE, &format!("/block-lists/{b}"), None).await;
    assert_eq!(s, StatusCode::NO_CONTENT, "{body}");
}

#[tokio::test]
async fn r4_3_running_campaign_follows_the_edit_rules_for_block_lists() {
    let e = memory();
    let list = block_list(&e.api, "acme", "DNC").await;
    let (s, account) = call(
        &e.api,
        Method::POST,
        "/accounts",
        Some(common::account_body()),
    )
    .await;
    assert_eq!(s, StatusCode::CREATED, "{account}");
    let account_id = account["id"].as_str().unwrap().to_owned();
    let (s, t) = call(
        &e.api,
        Method::POST,
        "/templates",
        Some(common::template_body(&account_id, "offer")),
    )
    .await;
    assert_eq!(s, StatusCode::CREATED, "{t}");
    let (s, c) = call(
        &e.api,
        Method::POST,
        "/campaigns",
        Some(common::merged(
            common::campaign_body("Offer", &account_id, "offer"),
            json!({ "block_lists": [list] }),
        )),
    )
    .await;
    assert_eq!(s, StatusCode::CREATED, "{c}");
    let id = c["id"].as_str().unwrap().to_owned();
    let (s, b) = call(
        &e.api,
        Method::POST,
        "/contacts",
        Some(json!({"phone": "+91 98123 45678", "name": "Asha", "fields": {"code": "K1"}})),
    )
    .await;
    assert_eq!(s, StatusCode::CREATED, "{b}");
    let (s, l) = call(&e.api, Method::POST, "/lists", Some(json!({"name": "L"}))).await;
    assert_eq!(s, StatusCode::CREATED, "{l}");
    let list_id = l["id"].as_str().unwrap();
    let (s, b) = call(
        &e.api,
        Method::POST,
        &format!("/lists/{list_id}/members"),
        Some(json!({"phones": ["919812345678"]})),
    )
    .await;
    assert_eq!(s, StatusCode::OK, "{b}");
    let (s, b) = call(
        &e.api,
        Method::POST,
        &format!("/campaigns/{id}/lists"),
        Some(json!({ "list_id": list_id })),
    )
    .await;
    assert_eq!(s, StatusCode::OK, "{b}");
    common::launch(&e.api, &id).await;
    // Edits wait for a pause, as every edit of a RUNNING campaign does (R1.4) ...
    let path = format!("/campaigns/{id}");
    let (s, body) = call(
        &e.api,
        Method::PATCH,
        &path,
        Some(json!({"block_lists": []})),
    )
    .await;
    assert_eq!(s, StatusCode::CONFLICT, "{body}");
    // ... but numbers can be blocked while it runs.
    block(&e.api, "acme", &list, json!(["919812345678"])).await;
    let (s, body) = call(
        &e.api,
        Method::DELETE,
        &format!("/block-lists/{list}"),
        None,
    )
    .await;
    assert_eq!(s, StatusCode::CONFLICT, "{body}");
    let (s, _) = call(&e.api, Method::POST, &format!("{path}/pause"), None).await;
    assert_eq!(s, StatusCode::OK);
    let (s, c) = call(
        &e.api,
        Method::PATCH,
        &path,
        Some(json!({"block_lists": []})),
    )
    .await;
    assert_eq!((s, &c["block_lists"]), (StatusCode::OK, &json!([])), "{c}");
}

// ---- opt-outs ----

async fn opt_out_listed_and_checked(e: Env) {
    let t = &*e.table;
    let (s, o) = call(
        &e.api,
        Method::POST,
        "/opt-outs",
        Some(json!({"phone": "+91 98123 45678", "note": "called the shop"})),
    )
    .await;
    assert_eq!(s, StatusCode::CREATED, "{o}");
    assert_eq!(
        (
            o["phone"].as_str(),
            o["source"].as_str(),
            o["note"].as_str()
        ),
        (Some("919812345678"), Some("api"), Some("called the shop"))
    );
    assert!(store::is_opted_out(t, "acme", &p("919812345678"))
        .await
        .unwrap());
    assert!(!store::is_opted_out(t, "other", &p("919812345678"))
        .await
        .unwrap());
    // Again: 200 with the first record.
    let (s, again) = call(
        &e.api,
        Method::POST,
        "/opt-outs",
        Some(json!({"phone": "919812345678", "note": "second"})),
    )
    .await;
    assert_eq!((s, &again), (StatusCode::OK, &o));
    // A STOP reply (what the replies path stores), replayed: idempotent.
    let stop = OptOut::by_keyword(p("447911123456"), "STOP", common::t0());
    store::put_opt_out(t, "acme", &stop).await.unwrap();
    store::put_opt_out(t, "acme", &stop).await.unwrap();
    let (s, k) = call(&e.api, Method::GET, "/opt-outs/447911123456", None).await;
    assert_eq!(
        (s, k["source"].as_str()),
        (StatusCode::OK, Some("keyword")),
        "{k}"
    );
    assert_eq!(
        store::get_opt_out(t, "acme", &p("447911123456"))
            .await
            .unwrap()
            .map(|o| o.source),
        Some(OptOutSource::Keyword)
    );
    // Short numbers too; not a number: 422 naming the field; no phone: 422.
    let (s, short) = call(
        &e.api,
        Method::POST,
        "/opt-outs",
        Some(json!({"phone": "1234"})),
    )
    .await;
    assert_eq!(s, StatusCode::CREATED, "{short}");
    let (s, b) = call(
        &e.api,
        Method::POST,
        "/opt-outs",
        Some(json!({"phone": "12ab"})),
    )
    .await;
    assert_eq!(
        (s, b["field"].as_str()),
        (StatusCode::UNPROCESSABLE_ENTITY, Some("phone")),
        "{b}"
    );
    let (s, b) = call(
        &e.api,
        Method::POST,
        "/opt-outs",
        Some(json!({"note": "x"})),
    )
    .await;
    assert_eq!(
        (s, b["field"].as_str()),
        (StatusCode::UNPROCESSABLE_ENTITY, Some("phone")),
        "{b}"
    );

    // Listed in phone order, a page at a time; only this tenant's.
    let (s, _) = call_as(
        &e.api,
        "other",
        Method::POST,
        "/opt-outs",
        Some(json!({"phone": "15550100999"})),
    )
    .await;
    assert_eq!(s, StatusCode::CREATED);
    let mut seen = Vec::new();
    let mut cursor: Option<String> = None;
    loop {
        let q = cursor
            .as_deref()
            .map(|c| format!("&cursor={}", common::urlencode(c)))
            .unwrap_or_default();
        let (s, page) = call(&e.api, Method::GET, &format!("/opt-outs?limit=2{q}"), None).await;
        assert_eq!(s, StatusCode::OK, "{page}");
        for o in page["items"].as_array().unwrap() {
            seen.push(o["phone"].as_str().unwrap().to_owned());
        }
        match page["next_cursor"].as_str() {
            Some(c) => cursor = Some(c.to_owned()),
            None => break,
        }
    }
    assert_eq!(seen, ["1234", "447911123456", "919812345678"]);

    // Removed: 204, then 404 and no longer honoured.
    let (s, _) = call(
        &e.api,
        Method::DELETE,
        "/opt-outs/%2B91%2098123%2045678",
        None,
    )
    .await;
    assert_eq!(s, StatusCode::NO_CONTENT);
    let (s, b) = call(&e.api, Method::DELETE, "/opt-outs/919812345678", None).await;
    assert_eq!(s, StatusCode::NOT_FOUND, "{b}");
    let (s, b) = call(&e.api, Method::GET, "/opt-outs/919812345678", None).await;
    assert_eq!(s, StatusCode::NOT_FOUND, "{b}");
    assert!(
        !b["message"].as_str().unwrap().contains("919812345678"),
        "masked: {b}"
    );
    assert!(!store::is_opted_out(t, "acme", &p("919812345678"))
        .await
        .unwrap());
    let (_, page) = call(&e.api, Method::GET, "/opt-outs", None).await;
    assert_eq!(page["items"].as_array().map(Vec::len), Some(2), "{page}");
    // Another tenant's opt-out is theirs alone.
    let (s, _) = call(&e.api, Method::GET, "/opt-outs/15550100999", None).await;
    assert_eq!(s, StatusCode::NOT_FOUND);
}

testkit::on_both_backends! {
    memory: memory(), dynamo: dynamo().await;
    opt_out_listed_and_checked: r4_3_opt_out_via_api_is_listed_and_checked, r4_3_opt_out_via_api_is_listed_and_checked_on_dynamodb;
}

#[tokio::test]
async fn r4_3_opt_out_outlives_the_contact() {
    let e = memory();
    let (s, c) = call(
        &e.api,
        Method::POST,
        "/contacts",
        Some(json!({"phone": "+91 98123 45678", "name": "Asha"})),
    )
    .await;
    assert_eq!(s, StatusCode::CREATED, "{c}");
    let (s, _) = call(
        &e.api,
        Method::POST,
        "/opt-outs",
        Some(json!({"phone": "919812345678"})),
    )
    .await;
    assert_eq!(s, StatusCode::CREATED);
    let (s, _) = call(&e.api, Method::DELETE, "/contacts/919812345678", None).await;
    assert_eq!(s, StatusCode::NO_CONTENT);
    assert!(store::is_opted_out(&*e.table, "acme", &p("919812345678"))
        .await
        .unwrap());
    let (s, _) = call(&e.api, Method::GET, "/opt-outs/919812345678", None).await;
    assert_eq!(s, StatusCode::OK);
}
