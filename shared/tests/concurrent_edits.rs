//! Optimistic updates under writers that really interleave (a multi-threaded runtime, many
//! requests at once on one item): every use case's update goes through
//! `app::retry_on_conflict`, which reloads and asks the domain again after a conflict.
//! The promises: no write is lost or applied twice (the version counts exactly the
//! accepted edits), and a retry never applies a stale decision (edits made against one
//! version: exactly one wins).

use axum::http::{Method, StatusCode};
use serde_json::{json, Value};
use std::sync::Arc;
use testkit::harness::{self as common, Spawn};
use testkit::memory::{Interleaved, MemoryTable};

const WRITERS: usize = 24;

/// A DRAFT campaign of [`common::TENANT`] on a fresh in-memory system; the router and its id.
async fn campaign() -> (axum::Router, String) {
    let table = Interleaved(Arc::new(MemoryTable::new()));
    let h = Spawn::new(Arc::new(table)).build();
    let c = h
        .ok(
            Method::POST,
            "/campaigns",
            Some(json!({"name": "Contended"})),
        )
        .await;
    (h.api.clone(), c["id"].as_str().unwrap().to_owned())
}

/// PATCHes the campaign from [`WRITERS`] tasks at once (started together, so their reads
/// and writes interleave on the [`Interleaved`] table); each task's answer.
async fn patch_all(
    api: &axum::Router,
    id: &str,
    body: impl Fn(usize) -> Value,
) -> Vec<(StatusCode, Value)> {
    let start = Arc::new(tokio::sync::Barrier::new(WRITERS));
    let tasks: Vec<_> = (0..WRITERS)
        .map(|i| {
            let (api, path, body) = (api.clone(), format!("/campaigns/{id}"), body(i));
            let start = start.clone();
            tokio::spawn(async move {
                start.wait().await;
                common::call(&api, Method::PATCH, &path, Some(body)).await
            })
        })
        .collect();
    let mut out = Vec::new();
    for t in tasks {
        out.push(t.await.unwrap());
    }
    out
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn concurrent_edits_are_neither_lost_nor_applied_twice() {
    let (api, id) = campaign().await;
    let (_, before) = common::call(&api, Method::GET, &format!("/campaigns/{id}"), None).await;
    let answers = patch_all(&api, &id, |i| json!({"notes": format!("writer {i}")})).await;
    let mut accepted = Vec::new();
    for (s, v) in &answers {
        match *s {
            StatusCode::OK => accepted.push(v["notes"].as_str().unwrap().to_owned()),
            // Retries exhausted: a 409 that says so, and nothing stored for it.
            StatusCode::CONFLICT => assert!(
                v["message"]
                    .as_str()
                    .unwrap()
                    .contains("being changed by someone else"),
                "{v}"
            ),
            other => panic!("{other}: {v}"),
        }
    }
    assert!(!accepted.is_empty());
    let (_, after) = common::call(&api, Method::GET, &format!("/campaigns/{id}"), None).await;
    assert_eq!(
        after["version"].as_u64().unwrap(),
        before["version"].as_u64().unwrap() + accepted.len() as u64,
        "every accepted edit is one stored version"
    );
    assert!(accepted.contains(&after["notes"].as_str().unwrap().to_owned()));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn concurrent_edits_of_one_read_version_let_exactly_one_win() {
    let (api, id) = campaign().await;
    let (_, before) = common::call(&api, Method::GET, &format!("/campaigns/{id}"), None).await;
    let read = before["version"].as_u64().unwrap();
    let answers = patch_all(
        &api,
        &id,
        |i| json!({"notes": format!("writer {i}"), "version": read}),
    )
    .await;
    let won: Vec<&Value> = answers
        .iter()
        .filter(|(s, _)| *s == StatusCode::OK)
        .map(|(_, v)| v)
        .collect();
    assert_eq!(won.len(), 1, "{answers:?}");
    for (s, v) in answers.iter().filter(|(s, _)| *s != StatusCode::OK) {
        assert_eq!(*s, StatusCode::CONFLICT, "{v}");
    }
    let (_, after) = common::call(&api, Method::GET, &format!("/campaigns/{id}"), None).await;
    assert_eq!(after["version"].as_u64(), Some(read + 1));
    assert_eq!(after["notes"], won[0]["notes"]);
}
