//! Never twice to one contact at once: two campaigns of a tenant sending to the same
//! contact at the same moment (same list, same pace) must not both pass the duplicate
//! window and busy-contact checks (R4.5, R4.6; issue 13, finding 6). The checks read the
//! contact's interactions, which are written after the provider answers, so without a
//! hold both senders read "free" and both send.

use testkit::harness as common;

use axum::http::Method;
use serde_json::{json, Value};
use shared::domain::hopper::EntryState;
use shared::ports::Table;
use shared::repo;
use std::sync::Arc;
use testkit::harness::{Spawn, Spawned};
use testkit::memory::MemoryTable;
use testkit::simulator::SimConfig;

const PHONE: &str = "919812340077";

async fn harness() -> Spawned {
    Spawn::new(Arc::new(MemoryTable::new()))
        .simulator(SimConfig {
            reply_percent: 0,
            ..SimConfig::default()
        })
        .serve_webhooks(false)
        .spawn()
        .await
}

fn table(h: &Spawned) -> &dyn Table {
    &*h.sys.ports.table
}

fn id_of(v: &Value) -> String {
    v["id"].as_str().unwrap().to_owned()
}

/// Two RUNNING campaigns of one account sending to the same list of one contact.
async fn two_campaigns(h: &Spawned) -> [String; 2] {
    let a = h
        .ok(Method::POST, "/accounts", Some(common::account_body()))
        .await;
    let account = id_of(&a);
    h.ok(
        Method::POST,
        "/templates",
        Some(common::template_body(&account, "offer")),
    )
    .await;
    h.ok(
        Method::POST,
        "/contacts",
        Some(json!({"phone": PHONE, "name": "C", "fields": {"code": "K"}})),
    )
    .await;
    let list = id_of(
        &h.ok(Method::POST, "/lists", Some(json!({"name": "L"})))
            .await,
    );
    h.ok(
        Method::POST,
        &format!("/lists/{list}/members"),
        Some(json!({ "phones": [PHONE] })),
    )
    .await;
    let mut ids = Vec::new();
    for name in ["spring", "summer"] {
        let c = h
            .ok(
                Method::POST,
                "/campaigns",
                Some(common::campaign_body(name, &account, "offer")),
            )
            .await;
        let id = id_of(&c);
        h.ok(
            Method::POST,
            &format!("/campaigns/{id}/lists"),
            Some(json!({ "list_id": list })),
        )
        .await;
        common::launch(&h.api, &id).await;
        ids.push(id);
    }
    [ids[0].clone(), ids[1].clone()]
}

#[tokio::test]
async fn two_campaigns_never_send_to_one_contact_at_once() {
    let h = harness().await;
    let ids = two_campaigns(&h).await;
    let mut jobs = Vec::new();
    for id in &ids {
        let c = repo::get_campaign(table(&h), common::TENANT, id)
            .await
            .unwrap()
            .unwrap();
        let entries = repo::all_entries(table(&h), &c).await.unwrap();
        assert_eq!(entries.len(), 1);
        jobs.push((id.clone(), Ok(entries[0].entry_ref().into())));
    }
    // Both records in one batch: the sender works on them at the same time.
    let failed = h.sys.sender.send_batch(jobs).await;
    assert!(failed.is_empty(), "{failed:?}");
    let sends = h.sim.as_ref().unwrap().sent();
    assert_eq!(sends.len(), 1, "one message, not two: {sends:?}");
    let mut states = Vec::new();
    for id in &ids {
        let c = repo::get_campaign(table(&h), common::TENANT, id)
            .await
            .unwrap()
            .unwrap();
        let e = &repo::all_entries(table(&h), &c).await.unwrap()[0];
        states.push((e.state, e.wait_until.is_some()));
    }
    states.sort_by_key(|(s, _)| s.as_str());
    assert_eq!(
        states,
        vec![(EntryState::Fresh, true), (EntryState::Pending, false)],
        "one sent, the other waits its turn"
    );
}
