//! Kaleyra's callback route (R7.3): a wrong or missing token is a 401 and changes nothing;
//! with the token, statuses reach the hopper entry through the key in `extra_info.ref`.

use axum::body::Body;
use axum::http::{Request, StatusCode};
use chrono::{Duration, TimeZone, Utc};
use serde_json::json;
use shared::app::inbox::Inbox;
use shared::domain::campaign::{Campaign, NewCampaign, TemplateRef};
use shared::domain::hopper::HopperEntry;
use shared::domain::phone::PhoneNumber;
use shared::domain::template::ContactData;
use shared::http::webhook::{kaleyra_router, KaleyraHookState};
use shared::repo;
use std::sync::Arc;
use testkit::memory::{ManualClock, MemoryBus, MemoryTable};
use tower::ServiceExt;

#[tokio::test]
async fn r7_3_kaleyra_callback_route_applies_statuses_and_rejects_a_wrong_token() {
    let now = Utc.with_ymd_and_hms(2026, 11, 21, 9, 0, 0).unwrap();
    let table = Arc::new(MemoryTable::new());
    let inbox = Arc::new(Inbox {
        table: table.clone(),
        bus: Arc::new(MemoryBus::default()),
        clock: Arc::new(ManualClock::frozen(now)),
        replies: None,
        calls: None,
    });
    let campaign = Campaign::create(
        "t1",
        NewCampaign {
            name: Some("Kaleyra".into()),
            account_id: Some("acc_k".into()),
            template: Some(TemplateRef {
                name: "offer".into(),
                language: "en".into(),
            }),
            ..Default::default()
        },
        now,
    )
    .unwrap();
    let mut entry = HopperEntry::new(
        &campaign,
        PhoneNumber::parse("919812345678").unwrap(),
        ContactData::default(),
        1,
    );
    assert!(repo::insert_entry(&*table, &mut entry, chrono::Utc::now())
        .await
        .unwrap());
    entry.claim(now).unwrap();
    entry.record_sent("wamid.K1".into(), now, Duration::days(1));
    repo::save_entry(&*table, &mut entry, chrono::Utc::now())
        .await
        .unwrap();

    let app = kaleyra_router(Arc::new(KaleyraHookState {
        sink: testkit::InlineSink::on(inbox),
        token: "callback-token".into(),
    }));
    let body = json!({"status": "DELIVERED", "message_id": "wamid.K1",
        "extra_info": {"ref": entry.entry_ref().encode()}, "timestamp": "1763716000"})
    .to_string();
    let post = |uri: &str| {
        Request::post(uri)
            .header("content-type", "application/json")
            .body(Body::from(body.clone()))
            .unwrap()
    };

    for uri in [
        "/webhooks/kaleyra",
        "/webhooks/kaleyra?token=wrong",
        "/webhooks/kaleyra?token=",
    ] {
        let resp = app.clone().oneshot(post(uri)).await.unwrap();
        assert_eq!(resp.status(), StatusCode::UNAUTHORIZED, "{uri}");
    }
    let stored = repo::get_entry(&*table, &entry.entry_ref())
        .await
        .unwrap()
        .unwrap();
    assert!(
        stored.delivered_at.is_none(),
        "a refused callback changes nothing"
    );

    let resp = app
        .clone()
        .oneshot(post(&format!(
            "/webhooks/kaleyra?token={}&sid=SID1",
            shared::providers::kaleyra::callback_token("callback-token", "SID1")
        )))
        .await
        .unwrap();
    assert_eq!(resp.status(), StatusCode::OK);
    let stored = repo::get_entry(&*table, &entry.entry_ref())
        .await
        .unwrap()
        .unwrap();
    assert!(
        stored.delivered_at.is_some(),
        "the status reached the entry"
    );
    let counters = repo::get_counters(&*table, "t1", &campaign.id)
        .await
        .unwrap();
    assert_eq!(counters.get("delivered"), Some(&1));
}
