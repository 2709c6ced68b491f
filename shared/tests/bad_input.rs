//! Bad input gets a clear error naming what is wrong, never a retryable 503 or a silently
//! dropped field (issue 13, the API fuzzer's findings).

use testkit::harness as common;

use axum::http::{Method, StatusCode};
use serde_json::{json, Value};
use shared::ports::Table;
use std::sync::Arc;
use testkit::harness::{Spawn, Spawned};
use testkit::memory::MemoryTable;

fn env_on(table: Arc<dyn Table>) -> Spawned {
    Spawn::new(table).build()
}

fn memory() -> Spawned {
    env_on(Arc::new(MemoryTable::new()))
}

async fn dynamo() -> Spawned {
    env_on(Arc::new(
        common::dynamo_table("DynamoDB bad input", "badinput").await,
    ))
}

/// Every listing answers a cursor it never gave out (garbage, empty, another tenant's
/// page) with 400 naming `cursor`: a 503 tells a client to retry forever.
async fn malformed_cursor(h: Spawned) {
    let list = h
        .ok(Method::POST, "/lists", Some(json!({"name": "Customers"})))
        .await;
    let list = list["id"].as_str().unwrap();
    let block = h
        .ok(
            Method::POST,
            "/block-lists",
            Some(json!({"name": "Blocked"})),
        )
        .await;
    let block = block["id"].as_str().unwrap();
    let contacts: Vec<Value> = (0..3)
        .map(|i| json!({"phone": format!("91981234000{i}"), "name": "C"}))
        .collect();
    h.ok(Method::POST, "/contacts", Some(json!(contacts))).await;
    // A real cursor of another tenant's listing.
    let theirs: Vec<Value> = (0..3)
        .map(|i| json!({"phone": format!("91981234100{i}"), "name": "G"}))
        .collect();
    h.ok_as("globex", Method::POST, "/contacts", Some(json!(theirs)))
        .await;
    let glist = h
        .ok_as("globex", Method::POST, "/lists", Some(json!({"name": "G"})))
        .await;
    let glist = glist["id"].as_str().unwrap();
    let phones: Vec<Value> = theirs.iter().map(|c| c["phone"].clone()).collect();
    h.ok_as(
        "globex",
        Method::POST,
        &format!("/lists/{glist}/members"),
        Some(json!({ "phones": phones })),
    )
    .await;
    let page = h
        .ok_as(
            "globex",
            Method::GET,
            &format!("/lists/{glist}/members?limit=1"),
            None,
        )
        .await;
    let foreign = page["next_cursor"]
        .as_str()
        .expect("a next page")
        .to_owned();
    let foreign = common::urlencode(&foreign);
    for path in [
        "/contacts".to_owned(),
        format!("/lists/{list}/members"),
        "/block-lists".to_owned(),
        format!("/block-lists/{block}/numbers"),
        "/opt-outs".to_owned(),
    ] {
        for cursor in ["abc", "", "%7B%22PK%22%3A1%7D", "%5B%5D", foreign.as_str()] {
            let uri = format!("{path}?cursor={cursor}");
            let (s, v) = h.call(Method::GET, &uri, None).await;
            assert_eq!(s, StatusCode::BAD_REQUEST, "{uri}: {v}");
            assert_eq!(v["field"], "cursor", "{uri}: {v}");
        }
    }
}

testkit::on_both_backends! {
    memory: memory(), dynamo: dynamo().await;
    malformed_cursor: a_malformed_cursor_is_a_400_naming_it, a_malformed_cursor_is_a_400_naming_it_on_emulator;
}

/// Every request body refuses a field it does not know, with a 400 naming it: a typo
/// such as `rate_limt` must not leave an account at its default rate without a word.
async fn unknown_fields(h: Spawned) {
    let cases: Vec<(Method, &str, &str, Value)> = vec![
        (
            Method::POST,
            "/accounts",
            "rate_limt",
            json!({"name": "Main", "sender_id": "106540352242922",
            "token_ref": "env:SIM_TOKEN", "waba_id": "102290129340398", "rate_limt": 5}),
        ),
        (
            Method::POST,
            "/contacts",
            "nmae",
            json!({"phone": "919812340000", "nmae": "Asha"}),
        ),
        (
            Method::POST,
            "/contacts",
            "nmae",
            json!([{"phone": "919812340000", "nmae": "Asha"}]),
        ),
        (
            Method::PUT,
            "/contacts/919812340000",
            "nmae",
            json!({"nmae": "Asha"}),
        ),
        (
            Method::POST,
            "/lists",
            "descrption",
            json!({"name": "L", "descrption": "x"}),
        ),
        (
            Method::POST,
            "/lists/lst_x/members",
            "phone",
            json!({"phones": [], "phone": "1"}),
        ),
        (
            Method::POST,
            "/campaigns/cmp_x/lists",
            "mode",
            json!({"list_id": "lst_x", "mode": 1}),
        ),
        (
            Method::POST,
            "/campaigns/cmp_x/segments",
            "tgas",
            json!({"tags": ["vip"], "tgas": 1}),
        ),
        (
            Method::POST,
            "/imports",
            "maping",
            json!({"list_id": "lst_x", "maping": {}}),
        ),
        (
            Method::POST,
            "/templates",
            "bdy",
            json!({"name": "t", "bdy": "x"}),
        ),
        (
            Method::PUT,
            "/templates/acc_x/t/en",
            "bdy",
            json!({"bdy": "x"}),
        ),
        (
            Method::PUT,
            "/accounts/acc_x/recontact-template",
            "lang",
            json!({"name": "t", "language": "en", "lang": "en"}),
        ),
        (
            Method::POST,
            "/accounts/acc_x/templates/sync",
            "waba",
            json!({"waba": "1"}),
        ),
    ];
    for (method, path, typo, body) in cases {
        let (s, v) = h.call(method.clone(), path, Some(body.clone())).await;
        assert_eq!(s, StatusCode::BAD_REQUEST, "{method} {path} {body}: {v}");
        let field = v["field"].as_str().unwrap_or_default();
        assert!(
            field == typo || field.ends_with(&format!(".{typo}")),
            "{method} {path}: the field is named: {v}"
        );
        assert!(v["message"].as_str().unwrap().contains(typo), "{v}");
    }
}

testkit::on_both_backends! {
    memory: memory(), dynamo: dynamo().await;
    unknown_fields: every_body_refuses_an_unknown_field, every_body_refuses_an_unknown_field_on_emulator;
}
