//! Issue 18: URL buttons whose link ends with a variable (Meta's `sub_type: url` button
//! with a text parameter, used for per-recipient tracking links), mapped on the campaign
//! like the body's variables and sent as the button's parameter.

use testkit::harness as common;

use axum::http::{Method, StatusCode};
use chrono::Duration;
use serde_json::{json, Value};
use std::sync::Arc;
use testkit::harness::{Spawn, Spawned};
use testkit::memory::MemoryTable;
use testkit::simulator::SimConfig;

const PHONE: &str = "919812340077";

/// A template whose URL button ends with `{{1}}`, after a call button.
fn tracking() -> Value {
    json!({
        "category": "UTILITY",
        "quick_replies": [],
        "call_to_action": [
            {"type": "phone_number", "text": "Call us", "phone_number": "+15550783881"},
            {"type": "url", "text": "Track", "url": "https://shop.example.com/t/{{1}}"}
        ]
    })
}

async fn spawn() -> Spawned {
    Spawn::new(Arc::new(MemoryTable::new()))
        .simulator(SimConfig {
            reply_percent: 0,
            ..SimConfig::default()
        })
        .spawn()
        .await
}

#[tokio::test]
async fn a_url_buttons_variable_is_mapped_on_the_campaign_and_sent_per_contact() {
    let h = spawn().await;
    let code = json!({"url_variable": {"source": "field", "name": "code"}});
    let id = h.ready_campaign_with(&[PHONE], tracking(), code).await;
    // Without a source for the button's {{1}} the campaign is refused, naming the field.
    let (s, v) = h
        .call(
            Method::PATCH,
            &format!("/campaigns/{id}"),
            Some(json!({ "url_variable": null })),
        )
        .await;
    assert_eq!(
        (s, v["field"].as_str()),
        (StatusCode::UNPROCESSABLE_ENTITY, Some("url_variable")),
        "{v}"
    );
    common::launch(&h.api, &id).await;
    h.sys.tick_if_due().await.unwrap();
    h.sys.drain_queue().await.unwrap();
    h.clock.advance(Duration::seconds(1));
    let sent = h.simulator().sent();
    assert_eq!(sent.len(), 1, "{sent:?}");
    // `ready_campaign`'s contacts carry the field `code` = K.
    assert_eq!(sent[0].url_suffix.as_deref(), Some("K"), "{:?}", sent[0]);
    let c = h.ok(Method::GET, &format!("/campaigns/{id}"), None).await;
    assert_eq!(
        c["url_variable"],
        json!({"source": "field", "name": "code"})
    );
}

#[tokio::test]
async fn a_contact_without_the_buttons_value_is_not_sent_to() {
    let h = spawn().await;
    let tracking_field = json!({"url_variable": {"source": "field", "name": "tracking"}});
    let id = h
        .ready_campaign_with(&[PHONE], tracking(), tracking_field)
        .await;
    common::launch(&h.api, &id).await;
    h.sys.tick_if_due().await.unwrap();
    h.sys.drain_queue().await.unwrap();
    assert!(h.simulator().sent().is_empty());
    let page = h
        .ok(
            Method::GET,
            &format!("/campaigns/{id}/hopper/entries"),
            None,
        )
        .await;
    let e = &page["items"][0];
    assert_eq!(
        (
            e["state"].as_str(),
            e["reason"].as_str(),
            e["error"].as_str()
        ),
        (
            Some("FAILED"),
            Some("template variables"),
            Some("missing value for the URL button's variable")
        ),
        "{e}"
    );
}

#[tokio::test]
async fn a_url_button_link_takes_one_variable_at_its_end_only() {
    let h = spawn().await;
    let account = h
        .ok(Method::POST, "/accounts", Some(common::account_body()))
        .await["id"]
        .as_str()
        .unwrap()
        .to_owned();
    for (url, ok) in [
        ("https://shop.example.com/t/{{1}}", true),
        ("https://shop.example.com/{{1}}/x", false),
        ("https://shop.example.com/t/{{2}}", false),
    ] {
        let mut t = common::template_body(&account, "tracked");
        t["quick_replies"] = json!([]);
        t["call_to_action"] = json!([{"type": "url", "text": "Track", "url": url}]);
        let (s, v) = h.call(Method::POST, "/templates", Some(t)).await;
        if ok {
            assert!(s.is_success(), "{url}: {s} {v}");
        } else {
            assert_eq!(
                (s, v["field"].as_str()),
                (StatusCode::UNPROCESSABLE_ENTITY, Some("call_to_action.url")),
                "{url}: {v}"
            );
        }
    }
}
