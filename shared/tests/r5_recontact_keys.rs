//! Finding 14 of issue 13: the recontact send (R5.5) is an operator's request that sends a
//! message. A client that lost its answer (a timeout) and sends it again must not send a
//! second message: the `Idempotency-Key` header names the request. And a recontact holds
//! its contact like a campaign send does, so two sends cannot reach the contact at once.
//! On the in-memory table and again on DynamoDB in the emulator.

use testkit::harness as common;

use async_trait::async_trait;
use axum::body::Body;
use axum::http::{Method, Request, StatusCode};
use common::TENANT;
use serde_json::{json, Value};
use shared::domain::account::Account;
use shared::domain::outcome::{FailureClass, SendFailure};
use shared::domain::phone::PhoneNumber;
use shared::ports::{Accepted, MessagingProvider, OutboundTemplate, Table};
use shared::repo;
use std::sync::atomic::{AtomicBool, AtomicU32, Ordering};
use std::sync::Arc;
use testkit::harness::{Spawn, Spawned};
use testkit::memory::MemoryTable;

const PHONE: &str = "919812350801";

/// A provider that counts the messages it was handed; each send waits a moment (so two
/// requests overlap) and is accepted, or, when `unknown` is set, reaches the provider and
/// times out: accepted or not, nobody knows.
#[derive(Default)]
struct Counting {
    sends: AtomicU32,
    unknown: AtomicBool,
}

#[async_trait]
impl MessagingProvider for Counting {
    async fn send(&self, _: &Account, msg: &OutboundTemplate) -> Result<Accepted, SendFailure> {
        let n = self.sends.fetch_add(1, Ordering::SeqCst) + 1;
        for _ in 0..5 {
            tokio::task::yield_now().await;
        }
        if self.unknown.load(Ordering::SeqCst) {
            return Err(SendFailure {
                class: FailureClass::Unknown,
                code: None,
                reason: "the provider did not answer in time".into(),
            });
        }
        Ok(format!("wamid.{}.{n}", msg.template).into())
    }
}

struct H {
    s: Spawned,
    provider: Arc<Counting>,
    account: String,
}

async fn harness(table: Arc<dyn Table>) -> H {
    let provider = Arc::new(Counting::default());
    let s = Spawn::new(table).provider(provider.clone()).spawn().await;
    let a = s
        .ok(Method::POST, "/accounts", Some(common::account_body()))
        .await;
    let account = a["id"].as_str().unwrap().to_owned();
    s.ok(Method::POST,
        "/templates",
        Some(json!({"account_id": account, "name": "we_miss_you", "language": "en",
            "category": "MARKETING", "body": "Hello {{1}}, please reply if you still need support"})),
    )
    .await;
    s.ok(
        Method::PUT,
        &format!("/accounts/{account}/recontact-template"),
        Some(json!({"name": "we_miss_you", "language": "en"})),
    )
    .await;
    s.ok(
        Method::POST,
        "/contacts",
        Some(json!({"phone": PHONE, "name": "Asha"})),
    )
    .await;
    H {
        s,
        provider,
        account,
    }
}

impl H {
    fn body(&self) -> Value {
        json!({"account_id": self.account, "variables": [{"source": "contact_name"}]})
    }

    fn sends(&self) -> u32 {
        self.provider.sends.load(Ordering::SeqCst)
    }

    /// `POST /contacts/{PHONE}/recontact` with `body`, under `key` when given.
    async fn recontact(&self, key: Option<&str>, body: Value) -> (StatusCode, Value) {
        let mut req = Request::builder()
            .method(Method::POST)
            .uri(format!("/contacts/{PHONE}/recontact"))
            .header("content-type", "application/json")
            .header("x-tenant-id", TENANT);
        if let Some(k) = key {
            req = req.header("Idempotency-Key", k);
        }
        let (s, bytes) =
            common::send(&self.s.api, req.body(Body::from(body.to_string())).unwrap()).await;
        (s, serde_json::from_slice(&bytes).unwrap_or(Value::Null))
    }
}

async fn the_same_request_again_sends_nothing(table: Arc<dyn Table>) {
    let h = harness(table).await;
    let (s, first) = h.recontact(Some("key-1"), h.body()).await;
    assert_eq!(s, StatusCode::OK, "{first}");
    // The client lost the answer and asks again, twice: the first answer, nothing sent.
    for _ in 0..2 {
        let (s, again) = h.recontact(Some("key-1"), h.body()).await;
        assert_eq!((s, &again), (StatusCode::OK, &first));
    }
    assert_eq!(h.sends(), 1);
    // The same key for another request is refused, naming the header.
    let other = json!({"account_id": h.account, "variables": [{"source": "text", "value": "x"}]});
    let (s, v) = h.recontact(Some("key-1"), other).await;
    assert_eq!(
        (s, v["field"].as_str()),
        (StatusCode::UNPROCESSABLE_ENTITY, Some("Idempotency-Key")),
        "{v}"
    );
    // A key that cannot be one is a 400 naming the header, and sends nothing.
    let (s, v) = h.recontact(Some("a key with spaces"), h.body()).await;
    assert_eq!(
        (s, v["field"].as_str()),
        (StatusCode::BAD_REQUEST, Some("Idempotency-Key")),
        "{v}"
    );
    // A new key is a new request.
    let (s, second) = h.recontact(Some("key-2"), h.body()).await;
    assert_eq!(s, StatusCode::OK, "{second}");
    assert_ne!(second["message_id"], first["message_id"]);
    assert_eq!(h.sends(), 2);
    // A day later the first key is free again.
    h.s.clock.advance(chrono::Duration::hours(25));
    let (s, third) = h.recontact(Some("key-1"), h.body()).await;
    assert_eq!(s, StatusCode::OK, "{third}");
    assert_eq!(h.sends(), 3);
}

testkit::on_both_backends! {
    memory: Arc::new(MemoryTable::new()), dynamo: Arc::new(common::dynamo_table("recontact keys", "r5-keys").await);
    the_same_request_again_sends_nothing: r5_5_a_recontact_sent_again_with_its_key_sends_nothing, r5_5_a_recontact_sent_again_with_its_key_sends_nothing_on_dynamodb;
}

#[tokio::test]
async fn r5_5_a_refused_recontact_frees_its_key_and_an_unknown_outcome_never_sends_again() {
    let h = harness(Arc::new(MemoryTable::new())).await;
    // Refused before anything went out (the contact opted out): the key is free, so the
    // same request may go once the reason is gone.
    h.s.ok(Method::POST, "/opt-outs", Some(json!({"phone": PHONE})))
        .await;
    let (s, v) = h.recontact(Some("k"), h.body()).await;
    assert_eq!(s, StatusCode::CONFLICT, "{v}");
    h.s.ok(Method::DELETE, &format!("/opt-outs/{PHONE}"), None)
        .await;
    // The provider call times out: maybe sent. The answer is kept; asking again with the
    // key gets the same 502 and the provider sees nothing more.
    h.provider.unknown.store(true, Ordering::SeqCst);
    let (s, first) = h.recontact(Some("k"), h.body()).await;
    assert_eq!(s, StatusCode::BAD_GATEWAY, "{first}");
    h.provider.unknown.store(false, Ordering::SeqCst);
    let (s, again) = h.recontact(Some("k"), h.body()).await;
    assert_eq!((s, &again), (StatusCode::BAD_GATEWAY, &first));
    assert_eq!(h.sends(), 1);
    // And the contact stays held for the unknown send: no other recontact reaches it
    // before the hold lapses.
    let (s, v) = h.recontact(Some("k2"), h.body()).await;
    assert_eq!(s, StatusCode::CONFLICT, "{v}");
    assert_eq!(h.sends(), 1);
}

#[tokio::test]
async fn r5_5_concurrent_recontacts_reach_the_contact_once() {
    let h = harness(Arc::new(MemoryTable::new())).await;
    // The same request twice at once (a client retrying before the first answered).
    let (a, b) = tokio::join!(
        h.recontact(Some("same"), h.body()),
        h.recontact(Some("same"), h.body())
    );
    let mut statuses = [a.0, b.0];
    statuses.sort();
    assert_eq!(
        statuses,
        [StatusCode::OK, StatusCode::CONFLICT],
        "{a:?} {b:?}"
    );
    assert_eq!(h.sends(), 1);
    // Two operators recontacting the same contact at once, without keys: the contact is
    // held by the first, the second is told to try again.
    let (a, b) = tokio::join!(h.recontact(None, h.body()), h.recontact(None, h.body()));
    let mut statuses = [a.0, b.0];
    statuses.sort();
    assert_eq!(
        statuses,
        [StatusCode::OK, StatusCode::CONFLICT],
        "{a:?} {b:?}"
    );
    assert_eq!(h.sends(), 2);
    // The hold is let go once a send is recorded.
    let phone = PhoneNumber::parse(PHONE).unwrap();
    let hold = repo::get_hold(&*h.s.sys.ports.table, TENANT, &phone)
        .await
        .unwrap();
    assert!(hold.released, "{hold:?}");
}
