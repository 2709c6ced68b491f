//! Issue 15: a campaign's `actions` (the console's actions menu) refuse what the API
//! would refuse, the rules that need the hopper included, each with the API's reason.

use axum::http::{Method, StatusCode};
use serde_json::{json, Value};
use std::sync::Arc;
use testkit::harness::{self as common, Spawn, Spawned};
use testkit::memory::MemoryTable;

fn action<'a>(c: &'a Value, name: &str) -> &'a Value {
    c["actions"]
        .as_array()
        .unwrap()
        .iter()
        .find(|a| a["name"] == name)
        .unwrap_or_else(|| panic!("no {name} in {c}"))
}

async fn ready(e: &Spawned) -> String {
    let (_, acc) = e
        .call(Method::POST, "/accounts", Some(common::account_body()))
        .await;
    let acc = acc["id"].as_str().unwrap().to_owned();
    let (s, t) = e
        .call(
            Method::POST,
            "/templates",
            Some(common::template_body(&acc, "offer")),
        )
        .await;
    assert_eq!(s, StatusCode::CREATED, "{t}");
    let (s, c) = e
        .call(
            Method::POST,
            "/campaigns",
            Some(json!({"name": "A", "account_id": acc, "template": {"name": "offer", "language": "en"},
                "variables": [{"source": "contact_name"}, {"source": "text", "value": "X"}]})),
        )
        .await;
    assert_eq!(s, StatusCode::CREATED, "{c}");
    assert_eq!(c["status"], "READY", "{c}");
    c["id"].as_str().unwrap().to_owned()
}

#[tokio::test]
async fn launch_without_contacts_and_retry_without_retry_entries_are_refused_as_the_api_would() {
    let e = Spawn::new(Arc::new(MemoryTable::new())).spawn().await;
    let id = ready(&e).await;
    let (_, c) = e.call(Method::GET, &format!("/campaigns/{id}"), None).await;
    let launch = action(&c, "launch");
    assert_eq!(launch["allowed"], false, "{c}");
    let (s, refused) = e
        .call(Method::POST, &format!("/campaigns/{id}/launch"), None)
        .await;
    assert_eq!(s, StatusCode::CONFLICT);
    assert_eq!(launch["reason"], refused["message"]);

    // With a contact: launch allowed; once running, retry is refused (no RETRY entries).
    let (s, b) = e
        .call(
            Method::POST,
            "/contacts",
            Some(json!({"phone": "+919812345670", "name": "Asha"})),
        )
        .await;
    assert!(s.is_success(), "{b}");
    let (_, l) = e
        .call(Method::POST, "/lists", Some(json!({"name": "L"})))
        .await;
    let list = l["id"].as_str().unwrap();
    e.call(
        Method::POST,
        &format!("/lists/{list}/members"),
        Some(json!({"phones": ["919812345670"]})),
    )
    .await;
    let (s, b) = e
        .call(
            Method::POST,
            &format!("/campaigns/{id}/lists"),
            Some(json!({ "list_id": list })),
        )
        .await;
    assert!(s.is_success(), "{b}");
    let (_, c) = e.call(Method::GET, &format!("/campaigns/{id}"), None).await;
    assert_eq!(action(&c, "launch")["allowed"], true, "{c}");
    let (s, c) = e
        .call(Method::POST, &format!("/campaigns/{id}/launch"), None)
        .await;
    assert_eq!(s, StatusCode::OK, "{c}");
    let retry = action(&c, "retry");
    assert_eq!(retry["allowed"], false, "{c}");
    let (s, refused) = e
        .call(Method::POST, &format!("/campaigns/{id}/retry"), None)
        .await;
    assert_eq!(s, StatusCode::CONFLICT);
    assert_eq!(retry["reason"], refused["message"]);
    assert_eq!(action(&c, "pause")["allowed"], true);
}

/// The grid's "target list": the lists and segments attached, each once, in order.
#[tokio::test]
async fn a_campaign_names_the_lists_and_segments_attached_to_it() {
    let e = Spawn::new(Arc::new(MemoryTable::new())).spawn().await;
    let id = ready(&e).await;
    let (_, l) = e
        .call(Method::POST, "/lists", Some(json!({"name": "VIPs"})))
        .await;
    let list = l["id"].as_str().unwrap().to_owned();
    for _ in 0..2 {
        let (s, b) = e
            .call(
                Method::POST,
                &format!("/campaigns/{id}/lists"),
                Some(json!({ "list_id": list })),
            )
            .await;
        assert!(s.is_success(), "{b}");
    }
    let (s, b) = e
        .call(
            Method::POST,
            &format!("/campaigns/{id}/segments"),
            Some(json!({"tags": ["Gold"], "valued_tags": {"city": "Pune"}})),
        )
        .await;
    assert!(s.is_success(), "{b}");
    let (_, c) = e.call(Method::GET, &format!("/campaigns/{id}"), None).await;
    assert_eq!(
        c["audiences"],
        json!([
            {"type": "list", "list_id": list, "name": "VIPs"},
            {"type": "segment", "segment": {"tags": ["gold"], "valued_tags": {"city": "Pune"}}}
        ]),
        "{c}"
    );
    // A refused attach notes nothing: a list the tenant does not have is not found.
    let (s, _) = e
        .call(
            Method::POST,
            &format!("/campaigns/{id}/lists"),
            Some(json!({ "list_id": "lst_nope" })),
        )
        .await;
    assert_eq!(s, StatusCode::NOT_FOUND);
    // Nor does the same segment given in another order.
    let (s, b) = e
        .call(
            Method::POST,
            &format!("/campaigns/{id}/segments"),
            Some(json!({"valued_tags": {"city": "Pune"}, "tags": ["gold"]})),
        )
        .await;
    assert!(s.is_success(), "{b}");
    let (_, again) = e.call(Method::GET, &format!("/campaigns/{id}"), None).await;
    assert_eq!(again["audiences"], c["audiences"]);
}

/// A READY campaign whose template is no longer usable: launch is refused in `actions`
/// with the launch command's own answer.
#[tokio::test]
async fn launch_with_a_template_no_longer_approved_is_refused_with_the_commands_reason() {
    let e = Spawn::new(Arc::new(MemoryTable::new())).spawn().await;
    let id = ready(&e).await;
    let (_, c) = e.call(Method::GET, &format!("/campaigns/{id}"), None).await;
    let acc = c["account_id"].as_str().unwrap();
    let (s, b) = e
        .call(
            Method::PUT,
            &format!("/templates/{acc}/offer/en"),
            Some(json!({"status": "PAUSED"})),
        )
        .await;
    assert_eq!(s, StatusCode::OK, "{b}");
    let (_, c) = e.call(Method::GET, &format!("/campaigns/{id}"), None).await;
    let launch = action(&c, "launch");
    assert_eq!(launch["allowed"], false, "{c}");
    let (s, refused) = e
        .call(Method::POST, &format!("/campaigns/{id}/launch"), None)
        .await;
    assert!(s.is_client_error(), "{s} {refused}");
    assert_eq!(launch["reason"], refused["message"], "{refused}");
}
