//! The webhook runs behind a Lambda function URL (no API Gateway request charge): the
//! sample events in `events/` are function URL events (`routeKey` `$default`, the
//! `lambda-url` domain), and here they go through the same conversion the deployed
//! function's runtime makes (`lambda_http`) into the webhook's router: the path and the
//! raw body survive it, a signed status is queued verbatim, a forged signature gets the
//! 401 (R7.3) and queues nothing, and Meta's verification handshake is answered.

use axum::body::Body;
use shared::http::webhook::{router, SinkError, WebhookSink, WebhookState};
use shared::lambda::inbound_queue::QueuedWebhook;
use std::sync::{Arc, Mutex};
use tower::ServiceExt;

#[derive(Default)]
struct Taken(Mutex<Vec<QueuedWebhook>>);

#[async_trait::async_trait]
impl WebhookSink for Taken {
    async fn take(&self, webhook: QueuedWebhook) -> Result<serde_json::Value, SinkError> {
        self.0.lock().unwrap().push(webhook);
        Ok(serde_json::json!({"queued": 1}))
    }
}

fn event(name: &str) -> serde_json::Value {
    let path = format!("{}/../../events/{name}", env!("CARGO_MANIFEST_DIR"));
    serde_json::from_str(&std::fs::read_to_string(&path).expect("sample event")).unwrap()
}

/// What the function answers to `event`, as its runtime would hand it the request.
async fn answer(event: &serde_json::Value, sink: Arc<Taken>) -> (u16, String) {
    let req = lambda_http::request::from_str(&event.to_string()).expect("a function URL event");
    let req = req.map(|b| Body::from(b.to_vec()));
    let app = router(Arc::new(WebhookState {
        sink,
        app_secret: "test-app-secret".into(),
        verify_token: "test-verify-token".into(),
    }));
    let res = app.oneshot(req).await.unwrap();
    let status = res.status().as_u16();
    let body = axum::body::to_bytes(res.into_body(), 1 << 20)
        .await
        .unwrap();
    (status, String::from_utf8_lossy(&body).into_owned())
}

#[tokio::test]
async fn the_sample_events_are_function_url_events() {
    for name in [
        "webhook-status.json",
        "webhook-reply.json",
        "webhook-verify.json",
    ] {
        let e = event(name);
        assert_eq!(e["routeKey"], "$default", "{name}");
        let domain = e["requestContext"]["domainName"].as_str().unwrap();
        assert!(
            domain.ends_with(".lambda-url.us-east-1.on.aws"),
            "{name}: {domain}"
        );
    }
}

#[tokio::test]
async fn a_signed_status_through_the_function_url_is_queued_verbatim() {
    let e = event("webhook-status.json");
    let sink = Arc::new(Taken::default());
    let (status, _) = answer(&e, sink.clone()).await;
    assert_eq!(status, 200);
    let taken = sink.0.lock().unwrap();
    assert_eq!(taken.len(), 1);
    assert_eq!(
        taken[0].body,
        e["body"].as_str().unwrap(),
        "the raw body, byte for byte"
    );
}

#[tokio::test]
async fn a_forged_signature_through_the_function_url_is_401_and_queues_nothing() {
    let mut e = event("webhook-status.json");
    e["headers"]["x-hub-signature-256"] =
        "sha256=0000000000000000000000000000000000000000000000000000000000000000".into();
    let sink = Arc::new(Taken::default());
    let (status, body) = answer(&e, sink.clone()).await;
    assert_eq!(status, 401, "{body}");
    assert!(sink.0.lock().unwrap().is_empty());
    // A body changed under a valid signature is refused the same way.
    let mut e = event("webhook-reply.json");
    e["body"] = e["body"].as_str().unwrap().replace("YES", "NO!").into();
    let (status, _) = answer(&e, sink.clone()).await;
    assert_eq!(status, 401);
    assert!(sink.0.lock().unwrap().is_empty());
}

#[tokio::test]
async fn the_verification_handshake_through_the_function_url_echoes_the_challenge() {
    let (status, body) = answer(&event("webhook-verify.json"), Arc::default()).await;
    assert_eq!((status, body.as_str()), (200, "1158201444"));
}
