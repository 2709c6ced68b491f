//! Issue 18: a country rule kept as data stops a MARKETING template to a US (+1) number
//! before the send, with its reason on the entry and in the statistics; utility templates
//! and other countries go as before.

use testkit::harness as common;

use axum::http::Method;
use chrono::Duration;
use serde_json::{json, Value};
use std::sync::Arc;
use testkit::harness::{Spawn, Spawned};
use testkit::memory::MemoryTable;
use testkit::simulator::SimConfig;

/// A launched campaign of a `category` template to a US and an Indian number, sent.
async fn sent(category: &str) -> (Spawned, String) {
    let h = Spawn::new(Arc::new(MemoryTable::new()))
        .simulator(SimConfig {
            reply_percent: 0,
            ..SimConfig::default()
        })
        .serve_webhooks(true)
        .spawn()
        .await;
    let phones = ["+12125550142", "+919812340077"];
    let id = h
        .ready_campaign(&phones, json!({ "category": category }))
        .await;
    common::launch(&h.api, &id).await;
    h.sys.dispatcher.tick().await.unwrap();
    for _ in 0..5 {
        h.sys.drain_queue().await.unwrap();
        h.clock.advance(Duration::seconds(1));
    }
    h.simulator().idle().await;
    (h, id)
}

fn entry<'a>(page: &'a Value, phone: &str) -> &'a Value {
    page["items"]
        .as_array()
        .unwrap()
        .iter()
        .find(|e| e["phone"] == phone)
        .unwrap_or_else(|| panic!("{phone} not listed: {page}"))
}

/// Every entry of campaign `id`, one page.
async fn entries(h: &Spawned, id: &str) -> Value {
    h.ok(
        Method::GET,
        &format!("/campaigns/{id}/hopper/entries"),
        None,
    )
    .await
}

#[tokio::test]
async fn a_marketing_template_never_goes_to_a_us_number() {
    let (h, id) = sent("MARKETING").await;
    let page = entries(&h, &id).await;
    let us = entry(&page, "12125550142");
    assert_eq!(
        (us["state"].as_str(), us["reason"].as_str()),
        (Some("SKIPPED"), Some("country rule")),
        "{us}"
    );
    assert!(us["error"].as_str().unwrap().contains("US (+1)"), "{us}");
    assert_eq!(entry(&page, "919812340077")["state"], "PENDING");
    let sent_to: Vec<String> = h.simulator().sent().iter().map(|s| s.to.clone()).collect();
    assert_eq!(
        sent_to,
        ["919812340077"],
        "the provider never saw the US number"
    );
    let stats = h
        .ok(Method::GET, &format!("/campaigns/{id}/stats"), None)
        .await;
    assert_eq!(stats["not_sent_by_reason"]["country rule"], 1, "{stats}");
}

#[tokio::test]
async fn a_utility_template_still_goes_to_a_us_number() {
    let (h, id) = sent("UTILITY").await;
    let page = entries(&h, &id).await;
    assert_eq!(entry(&page, "12125550142")["state"], "PENDING", "{page}");
    assert_eq!(entry(&page, "919812340077")["state"], "PENDING");
}

/// Meta's `template_category_update` webhook for the harness's template `offer`.
fn category_update(new_category: Option<&str>, correct_category: Option<&str>) -> String {
    let mut value = json!({
        "message_template_id": 1689556908129832u64,
        "message_template_name": "offer",
        "message_template_language": "en",
        "previous_category": "UTILITY"
    });
    if let Some(c) = new_category {
        value["new_category"] = json!(c);
    }
    if let Some(c) = correct_category {
        value["correct_category"] = json!(c);
    }
    json!({"object": "whatsapp_business_account", "entry": [{
        "id": testkit::simulator::SIM_WABA_ID,
        "changes": [{"field": "template_category_update", "value": value}]
    }]})
    .to_string()
}

#[tokio::test]
async fn a_template_meta_moves_to_marketing_is_checked_as_marketing_from_then_on() {
    let h = Spawn::new(Arc::new(MemoryTable::new()))
        .simulator(SimConfig {
            reply_percent: 0,
            ..SimConfig::default()
        })
        .spawn()
        .await;
    let phones = ["+12125550142", "+919812340077"];
    let id = h
        .ready_campaign(&phones, json!({ "category": "UTILITY" }))
        .await;
    let events = |body: String| shared::providers::meta::parse_webhook(body.as_bytes()).unwrap();
    // A notice of the change to come (naming the current category as `new_category`, as
    // Meta's does) changes nothing yet.
    h.sys
        .inbox
        .handle(events(category_update(Some("UTILITY"), Some("MARKETING"))))
        .await
        .unwrap();
    let t = h.ok(Method::GET, "/templates", None).await;
    assert_eq!(t["items"][0]["category"], "UTILITY", "{t}");
    h.sys
        .inbox
        .handle(events(category_update(Some("MARKETING"), None)))
        .await
        .unwrap();
    let t = h.ok(Method::GET, "/templates", None).await;
    assert_eq!(t["items"][0]["category"], "MARKETING", "{t}");
    // The notice delivered again after the change does not move it back.
    h.sys
        .inbox
        .handle(events(category_update(Some("UTILITY"), Some("MARKETING"))))
        .await
        .unwrap();
    let t = h.ok(Method::GET, "/templates", None).await;
    assert_eq!(t["items"][0]["category"], "MARKETING", "{t}");
    common::launch(&h.api, &id).await;
    h.sys.dispatcher.tick().await.unwrap();
    for _ in 0..5 {
        h.sys.drain_queue().await.unwrap();
        h.clock.advance(Duration::seconds(1));
    }
    let page = entries(&h, &id).await;
    assert_eq!(
        entry(&page, "12125550142")["reason"],
        "country rule",
        "the US number is now refused a MARKETING template: {page}"
    );
}
