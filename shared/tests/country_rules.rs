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
