//! Issue 18: Meta's Marketing Messages API. An account opted in sends its MARKETING
//! templates to `/<PHONE_NUMBER_ID>/marketing_messages` (the body held by the simulator to
//! Meta's `MarketingMessageRequestPayload`, which takes no callback data); their statuses
//! find their entries through the contact's interaction on the number. Utility templates,
//! accounts not opted in and templates Meta moves out of MARKETING stay on `/messages`.

use testkit::harness as common;

use axum::http::{Method, StatusCode};
use chrono::Duration;
use serde_json::{json, Value};
use shared::domain::inbound::{Inbound, StatusKind, StatusUpdate};
use shared::domain::phone::PhoneNumber;
use shared::ports::Clock;
use std::sync::Arc;
use testkit::harness::{Spawn, Spawned};
use testkit::memory::MemoryTable;
use testkit::simulator::{SentRecord, SimConfig};

/// The number of the harness's account ([`common::account_body`]).
const SENDER: &str = "106540352242922";

const PHONES: [&str; 2] = ["919812340077", "919812340078"];

/// The system with the simulator's statuses on (`webhooks`) or off (a test plays Meta's).
async fn spawn(webhooks: bool) -> Spawned {
    Spawn::new(Arc::new(MemoryTable::new()))
        .simulator(SimConfig {
            reply_percent: 0,
            ..SimConfig::default()
        })
        .serve_webhooks(webhooks)
        .spawn()
        .await
}

/// A launched campaign of a `category` template to [`PHONES`] on an account opted in to
/// the Marketing Messages API or not.
async fn launched(h: &Spawned, opted_in: bool, category: &str) -> String {
    let id = h
        .ready_campaign_on(
            json!({ "marketing_messages": opted_in }),
            &PHONES,
            json!({ "category": category }),
            json!({}),
        )
        .await;
    common::launch(&h.api, &id).await;
    id
}

/// A tick, the sends, the simulator's webhooks.
async fn run(h: &Spawned) {
    h.sys.dispatcher.tick().await.unwrap();
    for _ in 0..5 {
        h.sys.drain_queue().await.unwrap();
        h.clock.advance(Duration::seconds(1));
    }
    h.simulator().idle().await;
}

async fn stats(h: &Spawned, id: &str) -> Value {
    h.ok(Method::GET, &format!("/campaigns/{id}/stats"), None)
        .await
}

/// Where each send went: (through the Marketing Messages API, with callback data).
fn routes(sent: &[SentRecord]) -> Vec<(bool, bool)> {
    sent.iter()
        .map(|s| (s.marketing_messages, s.callback_data.is_some()))
        .collect()
}

#[tokio::test]
async fn an_opted_in_account_sends_marketing_templates_through_the_marketing_messages_api() {
    let h = spawn(true).await;
    let id = launched(&h, true, "MARKETING").await;
    run(&h).await;
    let sent = h.simulator().sent();
    assert_eq!(routes(&sent), [(true, false), (true, false)], "{sent:?}");
    // Meta's statuses of those messages carry no callback data; they still reach the
    // entries and the statistics.
    let s = stats(&h, &id).await;
    assert_eq!(
        [&s["sent"], &s["delivered"], &s["read"]],
        [&json!(2), &json!(2), &json!(2)],
        "{s}"
    );
    let accounts = h.ok(Method::GET, "/accounts", None).await;
    assert_eq!(
        accounts["items"][0]["marketing_messages"], true,
        "{accounts}"
    );
}

#[tokio::test]
async fn utility_templates_and_accounts_not_opted_in_stay_on_the_cloud_api() {
    for (opted_in, category) in [(true, "UTILITY"), (false, "MARKETING")] {
        let h = spawn(true).await;
        let id = launched(&h, opted_in, category).await;
        run(&h).await;
        let sent = h.simulator().sent();
        assert_eq!(
            routes(&sent),
            [(false, true), (false, true)],
            "{opted_in} {category}: {sent:?}"
        );
        let s = stats(&h, &id).await;
        assert_eq!(s["delivered"], 2, "{s}");
    }
}

/// Meta's `template_category_update` webhook for the harness's template `offer`.
fn category_update(previous: &str, new_category: &str) -> Vec<Inbound> {
    let body = json!({"object": "whatsapp_business_account", "entry": [{
        "id": testkit::simulator::SIM_WABA_ID,
        "changes": [{"field": "template_category_update", "value": {
            "message_template_id": 1689556908129832u64,
            "message_template_name": "offer",
            "message_template_language": "en",
            "previous_category": previous,
            "new_category": new_category,
        }}]
    }]});
    shared::providers::meta::parse_webhook(body.to_string().as_bytes()).unwrap()
}

#[tokio::test]
async fn a_category_meta_changes_re_routes_the_templates_next_sends() {
    // MARKETING moved to UTILITY: back to the Cloud API.
    let h = spawn(true).await;
    let id = launched(&h, true, "MARKETING").await;
    let report = h
        .sys
        .inbox
        .handle(category_update("MARKETING", "UTILITY"))
        .await
        .unwrap();
    assert_eq!(report.applied, 1, "{report:?}");
    run(&h).await;
    assert_eq!(
        routes(&h.simulator().sent()),
        [(false, true), (false, true)]
    );
    assert_eq!(stats(&h, &id).await["delivered"], 2);

    // UTILITY moved to MARKETING: to the Marketing Messages API.
    let h = spawn(true).await;
    let id = launched(&h, true, "UTILITY").await;
    h.sys
        .inbox
        .handle(category_update("UTILITY", "MARKETING"))
        .await
        .unwrap();
    run(&h).await;
    assert_eq!(
        routes(&h.simulator().sent()),
        [(true, false), (true, false)]
    );
    assert_eq!(stats(&h, &id).await["delivered"], 2);
}

#[tokio::test]
async fn only_a_meta_account_opts_in_to_the_marketing_messages_api() {
    let h = spawn(false).await;
    for body in [
        json!({"name": "Kaleyra", "provider": "kaleyra", "sender_id": "SID1:919800000001",
            "token_ref": "env:KALEYRA", "marketing_messages": true}),
        json!({"name": "Through AWS", "provider": "aws_social",
            "sender_id": testkit::simulator::SIM_AWS_PHONE_NUMBER_IDS[0],
            "token_ref": testkit::harness::SIM_AWS_GRANT_REF,
            "waba_id": testkit::simulator::SIM_WABA_ID, "marketing_messages": true}),
    ] {
        let (s, v) = h.call(Method::POST, "/accounts", Some(body)).await;
        assert_eq!(s, StatusCode::UNPROCESSABLE_ENTITY, "{v}");
        assert_eq!(v["field"], "marketing_messages", "{v}");
    }
    let (s, v) = h
        .call(
            Method::POST,
            "/accounts",
            Some(common::merged(
                common::account_body(),
                json!({"marketing_messages": "yes"}),
            )),
        )
        .await;
    assert_eq!(s.as_u16() / 100, 4, "{v}");
    assert!(v.to_string().contains("marketing_messages"), "{v}");
}

/// A status Meta sends of a Marketing Messages API message: no callback data, the
/// recipient and the number.
fn status(message_id: &str, phone: &str, kind: StatusKind, at: shared::domain::Time) -> Inbound {
    Inbound::Status(StatusUpdate {
        message_id: message_id.into(),
        status: kind,
        at,
        entry: None,
        attempt: None,
        sender_id: Some(SENDER.into()),
        user_id: None,
        recipient: Some(PhoneNumber::parse(phone).unwrap()),
    })
}

#[tokio::test]
async fn a_status_without_callback_data_counts_only_for_the_message_the_interaction_names() {
    let h = spawn(false).await;
    let id = launched(&h, true, "MARKETING").await;
    run(&h).await;
    let sent = h.simulator().sent();
    assert_eq!(sent.len(), 2);
    let wamid = &sent.iter().find(|s| s.to == PHONES[0]).unwrap().wamid;
    let now = h.clock.now();
    let (report, failed) = h
        .sys
        .inbox
        .handle_batch(vec![
            // The contact's message: counted.
            vec![status(wamid, PHONES[0], StatusKind::Delivered, now)],
            // Another message to the same contact (not the engine's, or replaced by a
            // later send): not counted.
            vec![status("wamid.ELSEWHERE", PHONES[0], StatusKind::Read, now)],
            // A contact the engine never wrote to on this number: not counted.
            vec![status(wamid, "919812349999", StatusKind::Read, now)],
            // The message id of one contact under another contact's number.
            vec![status(wamid, PHONES[1], StatusKind::Read, now)],
        ])
        .await;
    assert!(failed.is_empty(), "{failed:?}");
    assert_eq!((report.applied, report.ignored), (1, 3), "{report:?}");
    let s = stats(&h, &id).await;
    assert_eq!(
        [&s["sent"], &s["delivered"], &s["read"]],
        [&json!(2), &json!(1), &json!(0)],
        "{s}"
    );
    // Delivered again, it changes nothing.
    let (report, _) = h
        .sys
        .inbox
        .handle_batch(vec![vec![status(
            wamid,
            PHONES[0],
            StatusKind::Delivered,
            now,
        )]])
        .await;
    assert_eq!(report.applied, 0, "{report:?}");
    assert_eq!(stats(&h, &id).await["delivered"], 1);
}
