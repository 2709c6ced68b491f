//! Issue 15: the campaign form shows how many contacts an audience would reach before
//! saving (`POST /audience/count`): distinct contacts across lists and a segment, within
//! a budget, a lower bound when cut short, and only the tenant's own lists.

use axum::http::{Method, StatusCode};
use serde_json::{json, Value};
use shared::app::reach::{ReachLimits, ReachRequest};
use shared::domain::contact::Segment;
use shared::domain::ids::TenantId;
use std::sync::Arc;
use std::time::Duration;
use testkit::harness::{Spawn, Spawned, TENANT};
use testkit::memory::MemoryTable;

async fn env() -> Spawned {
    Spawn::new(Arc::new(MemoryTable::new())).spawn().await
}

fn phone(i: usize) -> String {
    format!("9198123460{i:02}")
}

/// Contacts 0..n: even ones tagged `vip`, those divisible by 3 tagged `pune`.
async fn contacts(e: &Spawned, n: usize) {
    let items: Vec<Value> = (0..n)
        .map(|i| {
            let mut tags = vec![];
            if i % 2 == 0 {
                tags.push("vip");
            }
            if i % 3 == 0 {
                tags.push("pune");
            }
            json!({"phone": phone(i), "name": format!("C{i}"), "tags": tags})
        })
        .collect();
    let (s, b) = e.call(Method::POST, "/contacts", Some(json!(items))).await;
    assert!(s.is_success(), "{s} {b}");
}

async fn list(e: &Spawned, name: &str, members: impl Iterator<Item = usize>) -> String {
    let (s, l) = e
        .call(Method::POST, "/lists", Some(json!({"name": name})))
        .await;
    assert_eq!(s, StatusCode::CREATED, "{l}");
    let id = l["id"].as_str().unwrap().to_owned();
    let phones: Vec<String> = members.map(phone).collect();
    let (s, b) = e
        .call(
            Method::POST,
            &format!("/lists/{id}/members"),
            Some(json!({ "phones": phones })),
        )
        .await;
    assert_eq!(s, StatusCode::OK, "{b}");
    id
}

async fn count(e: &Spawned, body: Value) -> (StatusCode, Value) {
    e.call(Method::POST, "/audience/count", Some(body)).await
}

#[tokio::test]
async fn overlapping_lists_and_a_segment_count_each_contact_once() {
    let e = env().await;
    contacts(&e, 30).await;
    let a = list(&e, "first", 0..20).await;
    let b = list(&e, "second", 10..30).await;
    let (s, r) = count(&e, json!({"list_ids": [a, b]})).await;
    assert_eq!(s, StatusCode::OK, "{r}");
    assert_eq!(r, json!({"contacts": 30, "exact": true}));

    // One tag: its kept member count. Two tags: the walk checks both (0, 6, 12, 18, 24).
    let (_, r) = count(&e, json!({"segment": {"tags": ["vip"]}})).await;
    assert_eq!(r, json!({"contacts": 15, "exact": true}));
    let (_, r) = count(&e, json!({"segment": {"tags": ["VIP", "pune"]}})).await;
    assert_eq!(r, json!({"contacts": 5, "exact": true}));

    // A list and a segment together: 0..10 plus the even ones of 10..30.
    let small = list(&e, "small", 0..10).await;
    let (_, r) = count(
        &e,
        json!({"list_ids": [small], "segment": {"tags": ["vip"]}}),
    )
    .await;
    assert_eq!(r, json!({"contacts": 20, "exact": true}));
}

#[tokio::test]
async fn a_count_cut_short_by_its_limits_is_a_lower_bound() {
    let e = env().await;
    contacts(&e, 12).await;
    let a = list(&e, "all", 0..12).await;
    let tenant = TenantId::parse(TENANT).unwrap();
    let count = |list_ids: Vec<String>, segment: Option<Segment>, limits: ReachLimits| {
        let req = ReachRequest { list_ids, segment };
        let audience = e.sys.operator.audience.clone();
        let tenant = tenant.clone();
        async move {
            audience
                .count_reach_within(&tenant, req, limits)
                .await
                .unwrap()
        }
    };
    let vip = Some(Segment {
        tags: vec!["vip".into(), "pune".into()],
        ..Default::default()
    });
    let roomy = ReachLimits {
        time: Duration::from_secs(60),
        phones: 1000,
    };
    let r = count(vec![a.clone(), a.clone()], vip.clone(), roomy).await;
    assert_eq!(
        (r.contacts, r.exact),
        (12, true),
        "a list named twice counts once"
    );
    // Five phones at most: five counted, and the answer says it is only a lower bound.
    let five = ReachLimits { phones: 5, ..roomy };
    let r = count(vec![a.clone()], None, five).await;
    assert_eq!((r.contacts, r.exact), (5, false));
    // A segment walk stops at the limit too (multiples of 6 below 12: 0 and 6).
    let r = count(vec![], vip.clone(), roomy).await;
    assert_eq!((r.contacts, r.exact), (2, true));
    let one = ReachLimits { phones: 1, ..roomy };
    let r = count(vec![], vip, one).await;
    assert_eq!((r.contacts, r.exact), (1, false));
    // Out of time before the first page: nothing counted, and not exact.
    let none = ReachLimits {
        time: Duration::ZERO,
        ..roomy
    };
    let r = count(vec![a], None, none).await;
    assert_eq!((r.contacts, r.exact), (0, false));
}

#[tokio::test]
async fn bad_requests_name_their_field_and_other_tenants_lists_are_not_found() {
    let e = env().await;
    contacts(&e, 4).await;
    let (s, b) = count(&e, json!({})).await;
    assert_eq!(s, StatusCode::UNPROCESSABLE_ENTITY, "{b}");
    assert_eq!(b["field"], "list_ids");
    let (s, b) = count(&e, json!({"list_ids": vec!["x"; 21]})).await;
    assert_eq!(s, StatusCode::UNPROCESSABLE_ENTITY, "{b}");
    let (s, b) = count(&e, json!({"segment": {}})).await;
    assert_eq!(s, StatusCode::UNPROCESSABLE_ENTITY, "{b}");
    let (s, b) = count(&e, json!({"list_ids": [], "lists": []})).await;
    assert_eq!(s, StatusCode::BAD_REQUEST, "{b}");

    let mine = list(&e, "mine", 0..4).await;
    let (s, b) = e
        .call_as(
            "other",
            Method::POST,
            "/audience/count",
            Some(json!({ "list_ids": [mine] })),
        )
        .await;
    assert_eq!(s, StatusCode::NOT_FOUND, "{b}");
}
