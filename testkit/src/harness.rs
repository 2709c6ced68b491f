//! The test harness: HTTP calls into a router, the local AWS emulator's tables, the
//! in-memory system's wiring, the WhatsApp simulator's Meta adapter, small servers on
//! loopback and the usual request bodies. Each test binary uses a part of it.

use crate::local::{Ports, System};
use crate::memory::{ManualClock, MemoryBus, MemoryQueue, MemoryScheduler, MemorySecrets};
use axum::body::{Body, Bytes};
use axum::http::{Method, Request, StatusCode};
use axum::Router;
use chrono::{DateTime, TimeZone, Utc};
use serde_json::{json, Value};
use shared::adapters::aws::{self, setup};
use shared::app::{Operator, OperatorPorts};
use shared::ports::{EventBus, MessagingProvider, Scheduler, Table};
use shared::providers::meta::MetaProvider;
use std::sync::Arc;
use tower::ServiceExt;

/// The tenant a test acts as unless it says otherwise.
pub const TENANT: &str = "acme";

// ---- HTTP ------------------------------------------------------------------------------

/// A request as `tenant`, with `content_type`.
pub fn request(
    tenant: &str,
    method: Method,
    path: &str,
    content_type: &str,
    body: Body,
) -> Request<Body> {
    Request::builder()
        .method(method)
        .uri(path)
        .header("content-type", content_type)
        .header("x-tenant-id", tenant)
        .body(body)
        .unwrap()
}

/// Sends `req` to `app`; the status and the whole body.
pub async fn send(app: &Router, req: Request<Body>) -> (StatusCode, Bytes) {
    let resp = app.clone().oneshot(req).await.unwrap();
    let status = resp.status();
    let bytes = axum::body::to_bytes(resp.into_body(), usize::MAX)
        .await
        .unwrap();
    (status, bytes)
}

/// Sends `body` as `content_type` for `tenant`; the status and the JSON answer
/// (`Null` when the answer is not JSON).
pub async fn call_raw(
    api: &Router,
    tenant: &str,
    method: Method,
    path: &str,
    content_type: &str,
    body: Body,
) -> (StatusCode, Value) {
    let (status, bytes) = send(api, request(tenant, method, path, content_type, body)).await;
    (
        status,
        serde_json::from_slice(&bytes).unwrap_or(Value::Null),
    )
}

/// A JSON call for `tenant`.
pub async fn call_as(
    api: &Router,
    tenant: &str,
    method: Method,
    path: &str,
    body: Option<Value>,
) -> (StatusCode, Value) {
    let body = body.map(|b| Body::from(b.to_string())).unwrap_or_default();
    call_raw(api, tenant, method, path, "application/json", body).await
}

/// A JSON call for [`TENANT`].
pub async fn call(
    api: &Router,
    method: Method,
    path: &str,
    body: Option<Value>,
) -> (StatusCode, Value) {
    call_as(api, TENANT, method, path, body).await
}

/// Launches campaign `id` of [`TENANT`] and checks that it is RUNNING.
pub async fn launch(api: &Router, id: &str) {
    let (s, body) = call(api, Method::POST, &format!("/campaigns/{id}/launch"), None).await;
    assert_eq!(
        (s, body["status"].as_str()),
        (StatusCode::OK, Some("RUNNING")),
        "{body}"
    );
}

/// Percent-encodes everything but the unreserved characters (for cursors in queries).
pub fn urlencode(s: &str) -> String {
    s.bytes()
        .map(|b| match b {
            b'A'..=b'Z' | b'a'..=b'z' | b'0'..=b'9' | b'-' | b'_' | b'.' | b'~' => {
                (b as char).to_string()
            }
            _ => format!("%{b:02X}"),
        })
        .collect()
}

/// Serves `app` on a free loopback port; its base URL (`http://127.0.0.1:port`).
pub async fn serve(app: Router) -> String {
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let base = format!("http://{}", listener.local_addr().unwrap());
    tokio::spawn(async move { axum::serve(listener, app).await.unwrap() });
    base
}

// ---- the local AWS emulator ------------------------------------------------------------

/// Fails (rather than skips) when the emulator is not configured; `what` names the tests.
pub fn require_emulator(what: &str) {
    if std::env::var("AWS_ENDPOINT_URL").map_or(true, |v| v.is_empty()) {
        panic!(
            "AWS_ENDPOINT_URL is not set: the {what} tests need the local emulator. \
             Run them through scripts/test.sh (or `eval \"$(scripts/emulator.sh start)\"` first)."
        );
    }
}

/// The SDK configuration for the emulator, failing as [`require_emulator`] does.
pub async fn emulator_config(what: &str) -> aws_config::SdkConfig {
    require_emulator(what);
    aws::sdk_config().await
}

/// `prefix-<uuid>`: a name no other test run uses.
pub fn unique_name(prefix: &str) -> String {
    format!("{prefix}-{}", uuid::Uuid::new_v4())
}

/// Creates the single table `name` on the emulator; the client that reaches it.
pub async fn create_table(conf: &aws_config::SdkConfig, name: &str) -> aws_sdk_dynamodb::Client {
    let client = aws_sdk_dynamodb::Client::new(conf);
    setup::ensure_table(&client, name)
        .await
        .expect("create the test table");
    client
}

/// A fresh DynamoDB table `prefix-<uuid>` on the emulator (`what` names the tests).
pub async fn dynamo_table(what: &str, prefix: &str) -> aws::DynamoTable {
    let conf = emulator_config(what).await;
    let name = unique_name(prefix);
    let client = create_table(&conf, &name).await;
    aws::DynamoTable::new(client, name)
}

// ---- the in-memory system --------------------------------------------------------------

/// 2026-11-21 09:00 UTC, where most tests freeze their clock.
pub fn t0() -> DateTime<Utc> {
    Utc.with_ymd_and_hms(2026, 11, 21, 9, 0, 0).unwrap()
}

/// A clock frozen at `at`.
pub fn frozen(at: DateTime<Utc>) -> Arc<ManualClock> {
    Arc::new(ManualClock::frozen(at))
}

/// The secrets the simulator's accounts refer to (`env:SIM_TOKEN`).
pub fn sim_secrets() -> Arc<MemorySecrets> {
    Arc::new(MemorySecrets::default().with("env:SIM_TOKEN", "test-token"))
}

/// The Meta adapter sending to `base_url` (the simulator or a stand-in) with
/// [`sim_secrets`].
pub fn meta_provider(base_url: impl Into<String>) -> Arc<MetaProvider> {
    Arc::new(MetaProvider::new(base_url, "v23.0", sim_secrets()))
}

/// The whole system on `table`, with an in-memory queue on `clock`, ticking every minute.
pub fn system(
    table: Arc<dyn Table>,
    clock: Arc<ManualClock>,
    scheduler: Arc<dyn Scheduler>,
    bus: Arc<dyn EventBus>,
    provider: Arc<dyn MessagingProvider>,
) -> System {
    System::new(
        Ports {
            table,
            queue: Arc::new(MemoryQueue::new(clock.clone())),
            scheduler,
            bus,
            provider,
            clock,
        },
        60,
    )
}

/// The operator use cases on `table` and `clock`, with in-memory scheduler and bus.
pub fn memory_operator(table: Arc<dyn Table>, clock: Arc<ManualClock>) -> Operator {
    Operator::new(OperatorPorts {
        table,
        scheduler: Arc::new(MemoryScheduler::default()),
        bus: Arc::new(MemoryBus::default()),
        clock,
    })
}

/// `router` behind the tenant middleware (the tenant comes from `x-tenant-id`).
pub fn with_tenant(router: Router) -> Router {
    router.layer(axum::middleware::from_fn(shared::http::tenant_from_header))
}

/// The operator API of `operator`, tenant from the header.
pub fn operator_api(operator: Operator) -> Router {
    with_tenant(shared::http::operator::router(operator))
}

// ---- request bodies --------------------------------------------------------------------

/// An account on the simulator's phone number, its token in [`sim_secrets`].
pub fn account_body() -> Value {
    json!({"name": "Main", "sender_id": "106540352242922", "token_ref": "env:SIM_TOKEN"})
}

/// A MARKETING template `name` (en) with the body `Hi {{1}}, code {{2}}`.
pub fn template_body(account: &str, name: &str) -> Value {
    json!({"account_id": account, "name": name, "language": "en",
        "category": "MARKETING", "body": "Hi {{1}}, code {{2}}"})
}

/// A campaign `name` sending `template` (en) with the contact's name and field `code`.
pub fn campaign_body(name: &str, account: &str, template: &str) -> Value {
    json!({
        "name": name, "account_id": account,
        "template": {"name": template, "language": "en"},
        "variables": [{"source": "contact_name"}, {"source": "field", "name": "code"}]
    })
}

/// `base` with every member of `extra` set on it.
pub fn merged(mut base: Value, extra: Value) -> Value {
    for (k, v) in extra.as_object().unwrap() {
        base[k] = v.clone();
    }
    base
}

// ---- one case on both backends ---------------------------------------------------------

/// For each `case: memory_test, dynamo_test;` two tests: `case(memory)` and `case(dynamo)`,
/// where `memory` and `dynamo` are expressions (they may `.await`) making the backend.
#[macro_export]
macro_rules! on_both_backends {
    (memory: $memory:expr, dynamo: $dynamo:expr; $($case:ident: $memory_test:ident, $dynamo_test:ident;)*) => {$(
        #[::tokio::test]
        async fn $memory_test() {
            $case($memory).await;
        }

        #[::tokio::test]
        async fn $dynamo_test() {
            $case($dynamo).await;
        }
    )*};
}
