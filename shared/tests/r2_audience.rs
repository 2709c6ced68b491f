//! R2.1-R2.3: contacts, lists, the hopper's audience and segmentation, driven over the
//! HTTP API on the in-memory adapters; the storage-dependent parts (segmentation index,
//! contact listing, tenant isolation) also on DynamoDB in the local emulator.

use testkit::harness as common;

use axum::http::{Method, StatusCode};
use axum::Router;
use chrono::Duration;
use common::{call, call_as};
use serde_json::{json, Value};
use shared::domain::hopper::EntryState;
use shared::domain::phone::PhoneNumber;
use shared::ports::Table;
use shared::repo;
use std::sync::Arc;
use testkit::harness::{Spawn, Spawned};
use testkit::memory::MemoryTable;
use testkit::simulator::SimConfig;

/// The system sending to the simulator (webhooks not posted).
type Env = Spawned;

async fn env_on(table: Arc<dyn Table>) -> Env {
    Spawn::new(table)
        .simulator(SimConfig {
            reply_percent: 0,
            ..SimConfig::default()
        })
        .spawn()
        .await
}

async fn env() -> Env {
    env_on(Arc::new(MemoryTable::new())).await
}

async fn dynamo() -> Arc<dyn Table> {
    Arc::new(common::dynamo_table("DynamoDB audience", "audience").await)
}

fn phone(i: usize) -> String {
    format!("9198123450{i:02}")
}

/// An account, an approved template `offer` (`Hi {{1}}, code {{2}}`) and a campaign using
/// the contact's name and custom field `code`.
async fn campaign(api: &Router) -> String {
    let (s, account) = call(api, Method::POST, "/accounts", Some(common::account_body())).await;
    assert_eq!(s, StatusCode::CREATED, "{account}");
    let account_id = account["id"].as_str().unwrap().to_owned();
    let (s, t) = call(
        api,
        Method::POST,
        "/templates",
        Some(common::template_body(&account_id, "offer")),
    )
    .await;
    assert_eq!(s, StatusCode::CREATED, "{t}");
    let (s, c) = call(
        api,
        Method::POST,
        "/campaigns",
        Some(common::merged(
            common::campaign_body("Offer", &account_id, "offer"),
            json!({"rate": 50, "response_timeout_days": 1}),
        )),
    )
    .await;
    assert_eq!(s, StatusCode::CREATED, "{c}");
    c["id"].as_str().unwrap().to_owned()
}

async fn contacts(api: &Router, range: std::ops::Range<usize>) {
    let body: Vec<Value> = range
        .map(|i| json!({"phone": format!("+{}", phone(i)), "name": format!("C{i}"), "fields": {"code": format!("K{i}")}}))
        .collect();
    let (s, b) = call(api, Method::POST, "/contacts", Some(Value::Array(body))).await;
    assert_eq!(s, StatusCode::CREATED, "{b}");
}

async fn list_of(api: &Router, phones: Vec<String>) -> String {
    let (s, l) = call(api, Method::POST, "/lists", Some(json!({"name": "L"}))).await;
    assert_eq!(s, StatusCode::CREATED);
    let id = l["id"].as_str().unwrap().to_owned();
    let (s, b) = call(
        api,
        Method::POST,
        &format!("/lists/{id}/members"),
        Some(json!({ "phones": phones })),
    )
    .await;
    assert_eq!(s, StatusCode::OK, "{b}");
    id
}

async fn entries(e: &Env, campaign_id: &str) -> Vec<shared::domain::hopper::HopperEntry> {
    let c = repo::get_campaign(&*e.sys.ports.table, "acme", campaign_id)
        .await
        .unwrap()
        .unwrap();
    let mut v = repo::all_entries(&*e.sys.ports.table, &c).await.unwrap();
    v.sort_by(|a, b| a.phone.cmp(&b.phone));
    v
}

// ---- R2.1 ----

#[tokio::test]
async fn r2_1_phone_only_is_copied_to_mobile() {
    let e = env().await;
    let (s, c) = call(
        &e.api,
        Method::POST,
        "/contacts",
        Some(json!({"phone": "0091 98123-45678", "name": "Asha"})),
    )
    .await;
    assert_eq!(s, StatusCode::CREATED, "{c}");
    assert_eq!(
        (c["phone"].as_str(), c["mobile"].as_str()),
        (Some("919812345678"), Some("919812345678"))
    );
    assert_eq!(c["region"], "IN");
    let (s, c) = call(
        &e.api,
        Method::POST,
        "/contacts",
        Some(json!({"mobile": "+44 7400 123456"})),
    )
    .await;
    assert_eq!(s, StatusCode::CREATED, "{c}");
    assert_eq!(
        (c["phone"].as_str(), c["mobile"].as_str()),
        (Some("447400123456"), Some("447400123456"))
    );
    let (s, got) = call(&e.api, Method::GET, "/contacts/+44%207400%20123456", None).await;
    assert_eq!(
        (s, got["region"].as_str()),
        (StatusCode::OK, Some("GB")),
        "{got}"
    );
}

#[tokio::test]
async fn r2_1_invalid_number_is_rejected_naming_the_field() {
    let e = env().await;
    let (s, b) = call(
        &e.api,
        Method::POST,
        "/contacts",
        Some(json!({"phone": "+91 12345"})),
    )
    .await;
    assert_eq!(
        (s, b["field"].as_str()),
        (StatusCode::UNPROCESSABLE_ENTITY, Some("phone")),
        "{b}"
    );
    assert!(
        b["message"]
            .as_str()
            .unwrap()
            .contains("not a valid number for IN"),
        "{b}"
    );
    let (s, b) = call(
        &e.api,
        Method::POST,
        "/contacts",
        Some(
            json!([{"phone": "+91 98123 45678"}, {"phone": "+91 98123 45679", "mobile": "+1 555"}]),
        ),
    )
    .await;
    assert_eq!(
        (s, b["field"].as_str()),
        (StatusCode::UNPROCESSABLE_ENTITY, Some("[1].mobile")),
        "{b}"
    );
    // Validated before storing: the valid first one was not stored either.
    let (s, _) = call(&e.api, Method::GET, "/contacts/919812345678", None).await;
    assert_eq!(s, StatusCode::NOT_FOUND);
    let (s, b) = call(
        &e.api,
        Method::PUT,
        "/contacts/919812345678",
        Some(json!({"email": "no"})),
    )
    .await;
    assert_eq!(
        (s, b["field"].as_str()),
        (StatusCode::UNPROCESSABLE_ENTITY, Some("email")),
        "{b}"
    );
}

#[tokio::test]
async fn r2_1_upsert_replaces_given_fields_and_keeps_the_rest() {
    let e = env().await;
    let (s, _) = call(
        &e.api,
        Method::POST,
        "/contacts",
        Some(json!({"phone": "+91 98123 45678", "name": "Asha", "email": "a@x.in",
            "tags": ["VIP"], "valued_tags": {"city": "Pune"}, "fields": {"code": "A", "tier": "2"}})),
    )
    .await;
    assert_eq!(s, StatusCode::CREATED);
    let (s, c) = call(
        &e.api,
        Method::PUT,
        "/contacts/919812345678",
        Some(json!({"email": "", "fields": {"code": "B", "tier": null}, "tags": ["gold"]})),
    )
    .await;
    assert_eq!(s, StatusCode::OK, "{c}");
    assert_eq!(c["name"], "Asha");
    assert!(c.get("email").is_none() || c["email"].is_null(), "{c}");
    assert_eq!(c["fields"], json!({"code": "B"}));
    assert_eq!(c["tags"], json!(["gold"]));
    assert_eq!(c["valued_tags"], json!({"city": "Pune"}));
    let (s, b) = call(
        &e.api,
        Method::PUT,
        "/contacts/919812345678",
        Some(json!({"phone": "919812345679"})),
    )
    .await;
    assert_eq!(
        (s, b["field"].as_str()),
        (StatusCode::UNPROCESSABLE_ENTITY, Some("phone"))
    );
    let (s, _) = call(&e.api, Method::DELETE, "/contacts/919812345678", None).await;
    assert_eq!(s, StatusCode::NO_CONTENT);
    let (s, _) = call(&e.api, Method::GET, "/contacts/919812345678", None).await;
    assert_eq!(s, StatusCode::NOT_FOUND);
    let (s, _) = call(&e.api, Method::DELETE, "/contacts/919812345678", None).await;
    assert_eq!(s, StatusCode::NOT_FOUND);
}

async fn tenant_isolation(e: &Env) {
    contacts(&e.api, 0..3).await;
    let list = list_of(&e.api, vec![phone(0)]).await;
    for path in [
        format!("/contacts/{}", phone(0)),
        format!("/lists/{list}"),
        format!("/lists/{list}/members"),
    ] {
        let (s, b) = call_as(&e.api, "other", Method::GET, &path, None).await;
        assert_eq!(s, StatusCode::NOT_FOUND, "{path}: {b}");
    }
    let (s, page) = call_as(&e.api, "other", Method::GET, "/contacts", None).await;
    assert_eq!(
        (s, page["items"].as_array().map(Vec::len)),
        (StatusCode::OK, Some(0))
    );
    let (s, _) = call_as(
        &e.api,
        "other",
        Method::DELETE,
        &format!("/contacts/{}", phone(0)),
        None,
    )
    .await;
    assert_eq!(s, StatusCode::NOT_FOUND);
    // The same number in another tenant is another contact.
    let (s, _) = call_as(
        &e.api,
        "other",
        Method::POST,
        "/contacts",
        Some(json!({"phone": phone(0), "name": "Theirs"})),
    )
    .await;
    assert_eq!(s, StatusCode::CREATED);
    let (_, mine) = call(
        &e.api,
        Method::GET,
        &format!("/contacts/{}", phone(0)),
        None,
    )
    .await;
    assert_eq!(mine["name"], "C0");
    let (_, page) = call(&e.api, Method::GET, "/contacts", None).await;
    assert_eq!(page["items"].as_array().unwrap().len(), 3);
}

testkit::on_both_backends! {
    memory: &env().await, dynamo: &env_on(dynamo().await).await;
    tenant_isolation: r2_1_tenant_cannot_read_another_tenants_contacts, r2_1_tenant_cannot_read_another_tenants_contacts_on_dynamodb;
}

// ---- R2.2 ----

async fn pagination(e: &Env) {
    contacts(&e.api, 0..7).await;
    let list = list_of(&e.api, (0..7).map(phone).collect()).await;
    let mut seen = Vec::new();
    let mut cursor: Option<String> = None;
    loop {
        let q = match &cursor {
            Some(c) => format!(
                "/lists/{list}/members?limit=3&cursor={}",
                common::urlencode(c)
            ),
            None => format!("/lists/{list}/members?limit=3"),
        };
        let (s, page) = call(&e.api, Method::GET, &q, None).await;
        assert_eq!(s, StatusCode::OK, "{page}");
        let items = page["items"].as_array().unwrap();
        assert!(items.len() <= 3);
        seen.extend(
            items
                .iter()
                .map(|i| i["phone"].as_str().unwrap().to_owned()),
        );
        match page["next_cursor"].as_str() {
            Some(c) => cursor = Some(c.to_owned()),
            None => break,
        }
    }
    assert_eq!(
        seen,
        (0..7).map(phone).collect::<Vec<_>>(),
        "members in phone order, each once"
    );
    let mut all = Vec::new();
    let mut cursor: Option<String> = None;
    loop {
        let q = match &cursor {
            Some(c) => format!("/contacts?limit=2&cursor={}", common::urlencode(c)),
            None => "/contacts?limit=2".to_owned(),
        };
        let (s, page) = call(&e.api, Method::GET, &q, None).await;
        assert_eq!(s, StatusCode::OK, "{page}");
        assert!(page["items"].as_array().unwrap().len() <= 2);
        all.extend(
            page["items"]
                .as_array()
                .unwrap()
                .iter()
                .map(|i| i["phone"].as_str().unwrap().to_owned()),
        );
        match page["next_cursor"].as_str() {
            Some(c) => cursor = Some(c.to_owned()),
            None => break,
        }
    }
    all.sort();
    assert_eq!(all, (0..7).map(phone).collect::<Vec<_>>());
}

testkit::on_both_backends! {
    memory: &env().await, dynamo: &env_on(dynamo().await).await;
    pagination: r2_2_list_members_and_contacts_paginate_with_cursors, r2_2_list_members_and_contacts_paginate_with_cursors_on_dynamodb;
}

#[tokio::test]
async fn r2_2_custom_fields_sync_to_fresh_entries() {
    let e = env().await;
    let id = campaign(&e.api).await;
    contacts(&e.api, 0..3).await;
    let list = list_of(&e.api, (0..3).map(phone).collect()).await;
    let (_, b) = call(
        &e.api,
        Method::POST,
        &format!("/campaigns/{id}/lists"),
        Some(json!({"list_id": list})),
    )
    .await;
    assert_eq!(b["added"], 3);

    // An update of the master contact reaches its FRESH entry.
    let (s, _) = call(
        &e.api,
        Method::PUT,
        &format!("/contacts/{}", phone(0)),
        Some(json!({"fields": {"code": "NEW0"}, "valued_tags": {"city": "Pune"}})),
    )
    .await;
    assert_eq!(s, StatusCode::OK);
    let es = entries(&e, &id).await;
    assert_eq!(es[0].state, EntryState::Fresh);
    assert_eq!(es[0].contact.fields["code"], "NEW0");
    assert_eq!(es[0].contact.valued_tags["city"], "Pune");
    assert_eq!(es[1].contact.fields["code"], "K1");

    // A sent entry keeps what was sent.
    let mut sent = es[1].clone();
    sent.state = EntryState::Pending;
    repo::save_entry(&*e.sys.ports.table, &mut sent, chrono::Utc::now())
        .await
        .unwrap();
    let (s, _) = call(
        &e.api,
        Method::PUT,
        &format!("/contacts/{}", phone(1)),
        Some(json!({"fields": {"code": "NEW1"}})),
    )
    .await;
    assert_eq!(s, StatusCode::OK);
    assert_eq!(entries(&e, &id).await[1].contact.fields["code"], "K1");

    // An entry already handed to the sender (behind the dispatch cursor) keeps it too.
    let mut cursors = repo::get_cursors(&*e.sys.ports.table, "acme", &id)
        .await
        .unwrap();
    let e2 = &entries(&e, &id).await[2];
    cursors.after.insert(e2.shard, repo::seq_key(e2.seq));
    repo::save_cursors(&*e.sys.ports.table, "acme", &id, &mut cursors)
        .await
        .unwrap();
    call(
        &e.api,
        Method::PUT,
        &format!("/contacts/{}", phone(2)),
        Some(json!({"fields": {"code": "NEW2"}})),
    )
    .await;
    assert_eq!(entries(&e, &id).await[2].contact.fields["code"], "K2");

    // Attaching again refreshes an open entry from the master contact (here changed
    // behind the API's back) and keeps one entry per contact.
    let mut c0 = repo::get_contact(
        &*e.sys.ports.table,
        "acme",
        &PhoneNumber::parse(&phone(0)).unwrap(),
    )
    .await
    .unwrap()
    .unwrap();
    c0.name = Some("Renamed".into());
    repo::put_contact(&*e.sys.ports.table, &c0).await.unwrap();
    let (_, b) = call(
        &e.api,
        Method::POST,
        &format!("/campaigns/{id}/lists"),
        Some(json!({"list_id": list})),
    )
    .await;
    assert_eq!(
        (b["added"].as_u64(), b["already_present"].as_u64()),
        (Some(0), Some(3))
    );
    let es = entries(&e, &id).await;
    assert_eq!(es.len(), 3);
    assert_eq!(es[0].contact.name.as_deref(), Some("Renamed"));
    let (_, hopper) = call(
        &e.api,
        Method::GET,
        &format!("/campaigns/{id}/hopper"),
        None,
    )
    .await;
    assert_eq!(hopper["total"], 3, "{hopper}");
}

#[tokio::test]
async fn r2_2_list_added_to_running_campaign_gets_sent() {
    let e = env().await;
    let id = campaign(&e.api).await;
    contacts(&e.api, 0..5).await;
    let first = list_of(&e.api, vec![phone(0), phone(1)]).await;
    let (_, b) = call(
        &e.api,
        Method::POST,
        &format!("/campaigns/{id}/lists"),
        Some(json!({"list_id": first})),
    )
    .await;
    assert_eq!(b["added"], 2);
    common::launch(&e.api, &id).await;
    e.sys.tick_if_due().await.unwrap();
    e.clock.advance(Duration::seconds(61));
    e.sys.drain_queue().await.unwrap();
    assert_eq!(e.simulator().sent().len(), 2);

    // A second list (one contact overlapping) joins the running campaign.
    let second = list_of(&e.api, vec![phone(1), phone(2), phone(3), phone(4)]).await;
    let (s, b) = call(
        &e.api,
        Method::POST,
        &format!("/campaigns/{id}/lists"),
        Some(json!({"list_id": second})),
    )
    .await;
    assert_eq!(
        (s, b["added"].as_u64(), b["already_present"].as_u64()),
        (StatusCode::OK, Some(3), Some(1)),
        "{b}"
    );
    for _ in 0..3 {
        e.sys.tick_if_due().await.unwrap();
        e.clock.advance(Duration::seconds(61));
        e.sys.drain_queue().await.unwrap();
    }
    let sent = e.simulator().sent();
    let mut to: Vec<String> = sent.iter().map(|s| s.to.clone()).collect();
    to.sort();
    assert_eq!(
        to,
        (0..5).map(phone).collect::<Vec<_>>(),
        "every contact once"
    );
    let late = sent.iter().find(|s| s.to == phone(4)).unwrap();
    assert_eq!(late.params, vec!["C4", "K4"]);
    let (_, stats) = call(&e.api, Method::GET, &format!("/campaigns/{id}/stats"), None).await;
    assert_eq!(
        (stats["target"].as_i64(), stats["sent"].as_i64()),
        (Some(5), Some(5)),
        "{stats}"
    );
}

// ---- R2.3 ----

async fn segments(e: &Env) {
    let id = campaign(&e.api).await;
    let people = [
        (0, json!(["vip"]), json!({"city": "Pune"})),
        (1, json!(["vip", "gold"]), json!({"city": "pune"})),
        (2, json!(["vip"]), json!({"city": "Mumbai"})),
        (3, json!([]), json!({"city": "Pune"})),
        (4, json!([]), json!({})),
    ];
    for (i, tags, vt) in people {
        let (s, b) = call(&e.api, Method::POST, "/contacts", Some(json!({"phone": phone(i), "name": format!("C{i}"), "fields": {"code": "X"}, "tags": tags, "valued_tags": vt}))).await;
        assert_eq!(s, StatusCode::CREATED, "{b}");
    }
    let (s, b) = call(
        &e.api,
        Method::POST,
        &format!("/campaigns/{id}/segments"),
        Some(json!({"tags": ["VIP"], "valued_tags": {"city": "PUNE"}})),
    )
    .await;
    assert_eq!((s, b["added"].as_u64()), (StatusCode::OK, Some(2)), "{b}");
    let phones: Vec<String> = entries(e, &id)
        .await
        .iter()
        .map(|x| x.phone.to_string())
        .collect();
    assert_eq!(phones, vec![phone(0), phone(1)], "vip AND city=pune");

    // Index maintenance: a contact losing the tag leaves the segment, one gaining it joins.
    call(
        &e.api,
        Method::PUT,
        &format!("/contacts/{}", phone(1)),
        Some(json!({"tags": ["gold"]})),
    )
    .await;
    call(
        &e.api,
        Method::PUT,
        &format!("/contacts/{}", phone(3)),
        Some(json!({"tags": ["vip"]})),
    )
    .await;
    call(
        &e.api,
        Method::DELETE,
        &format!("/contacts/{}", phone(0)),
        None,
    )
    .await;
    let other = {
        let (_, c) = call(
            &e.api,
            Method::POST,
            "/campaigns",
            Some(json!({"name": "Other"})),
        )
        .await;
        c["id"].as_str().unwrap().to_owned()
    };
    let (_, b) = call(
        &e.api,
        Method::POST,
        &format!("/campaigns/{other}/segments"),
        Some(json!({"valued_tags": {"city": "Pune"}, "tags": ["vip"]})),
    )
    .await;
    assert_eq!(b["added"], 1, "{b}");
    let phones: Vec<String> = entries(e, &other)
        .await
        .iter()
        .map(|x| x.phone.to_string())
        .collect();
    assert_eq!(phones, vec![phone(3)]);
    // Tags only, valued tags only.
    let (_, b) = call(
        &e.api,
        Method::POST,
        &format!("/campaigns/{other}/segments"),
        Some(json!({"tags": ["gold"]})),
    )
    .await;
    assert_eq!(
        (b["added"].as_u64(), b["already_present"].as_u64()),
        (Some(1), Some(0)),
        "{b}"
    );
    let (_, b) = call(
        &e.api,
        Method::POST,
        &format!("/campaigns/{other}/segments"),
        Some(json!({"valued_tags": {"city": "mumbai"}})),
    )
    .await;
    assert_eq!(b["added"], 1, "{b}");
}

testkit::on_both_backends! {
    memory: &env().await, dynamo: &env_on(dynamo().await).await;
    segments: r2_3_segment_by_tag_and_valued_tag, r2_3_segment_by_tag_and_valued_tag_on_dynamodb;
}

#[tokio::test]
async fn r2_3_untagged_contacts_cannot_be_targeted() {
    let e = env().await;
    let id = campaign(&e.api).await;
    contacts(&e.api, 0..3).await;
    for body in [
        json!({}),
        json!({"tags": [], "valued_tags": {}}),
        json!({"tags": ["  "]}),
    ] {
        let (s, b) = call(
            &e.api,
            Method::POST,
            &format!("/campaigns/{id}/segments"),
            Some(body.clone()),
        )
        .await;
        assert_eq!(
            (s, b["field"].as_str()),
            (StatusCode::UNPROCESSABLE_ENTITY, Some("tags")),
            "{body}: {b}"
        );
    }
    let (s, b) = call(
        &e.api,
        Method::POST,
        &format!("/campaigns/{id}/segments"),
        Some(json!({"valued_tags": {"city": ""}})),
    )
    .await;
    assert_eq!(s, StatusCode::UNPROCESSABLE_ENTITY, "{b}");
    // No selector reaches a contact without tags.
    let (_, b) = call(
        &e.api,
        Method::POST,
        &format!("/campaigns/{id}/segments"),
        Some(json!({"tags": ["vip"]})),
    )
    .await;
    assert_eq!(b["added"], 0);
    assert!(entries(&e, &id).await.is_empty());
    let (s, _) = call(
        &e.api,
        Method::POST,
        "/campaigns/cmp_missing/segments",
        Some(json!({"tags": ["vip"]})),
    )
    .await;
    assert_eq!(s, StatusCode::NOT_FOUND);
}

#[test]
fn r2_audience_routes_are_described_in_openapi() {
    use utoipa::OpenApi;
    let doc = serde_json::to_value(shared::http::audience::AudienceApi::openapi()).unwrap();
    for (path, method) in [
        ("/contacts", "post"),
        ("/contacts", "get"),
        ("/contacts/{phone}", "get"),
        ("/contacts/{phone}", "put"),
        ("/contacts/{phone}", "delete"),
        ("/contacts/import", "post"),
        ("/imports", "post"),
        ("/imports/{id}", "get"),
        ("/imports/{id}/errors", "get"),
        ("/lists", "post"),
        ("/lists/{id}", "get"),
        ("/lists/{id}/members", "post"),
        ("/lists/{id}/members", "get"),
        ("/campaigns/{id}/lists", "post"),
        ("/campaigns/{id}/segments", "post"),
    ] {
        let op = &doc["paths"][path][method];
        assert!(op.is_object(), "{method} {path} is described");
        assert!(op["responses"].is_object(), "{method} {path} has responses");
    }
    let post = &doc["paths"]["/contacts"]["post"]["requestBody"]["content"]["application/json"];
    assert!(
        post["examples"]["one"]["value"]["phone"].is_string(),
        "{post}"
    );
    let csv = &doc["paths"]["/contacts/import"]["post"]["requestBody"]["content"]["text/csv"];
    assert!(
        csv["example"].as_str().unwrap().starts_with("phone,"),
        "{csv}"
    );
    for s in [
        "Contact",
        "NewContact",
        "Segment",
        "ImportView",
        "UploadTicket",
        "RowError",
        "ErrorBody",
    ] {
        assert!(doc["components"]["schemas"][s].is_object(), "schema {s}");
    }
    assert_eq!(
        doc["components"]["schemas"]["Contact"]["properties"]["phone"]["$ref"],
        "#/components/schemas/PhoneNumber"
    );
    assert_eq!(
        doc["components"]["schemas"]["PhoneNumber"]["type"],
        "string"
    );
}
