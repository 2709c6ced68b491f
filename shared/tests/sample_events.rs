//! The sample events in `events/` (used with `cargo lambda invoke --data-file`) must parse
//! as the event types the functions receive, and the signed webhook events must carry a
//! valid `X-Hub-Signature-256` for the documented test secret.

use std::path::PathBuf;

use aws_lambda_events::apigw::ApiGatewayV2httpRequest;
use aws_lambda_events::sqs::SqsEvent;
use hmac::{Hmac, Mac};
use sha2::Sha256;

/// The app secret the sample webhook events are signed with (see events/README.md).
const TEST_APP_SECRET: &[u8] = b"test-app-secret";

fn events_dir() -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR"))
        .join("..")
        .join("events")
}

fn read(name: &str) -> String {
    let path = events_dir().join(name);
    std::fs::read_to_string(&path).unwrap_or_else(|e| panic!("read {}: {e}", path.display()))
}

fn http(name: &str) -> ApiGatewayV2httpRequest {
    serde_json::from_str(&read(name))
        .unwrap_or_else(|e| panic!("{name} as ApiGatewayV2httpRequest: {e}"))
}

fn json(name: &str) -> serde_json::Value {
    serde_json::from_str(&read(name)).unwrap_or_else(|e| panic!("{name} as JSON: {e}"))
}

fn header<'a>(req: &'a ApiGatewayV2httpRequest, name: &str) -> &'a str {
    req.headers
        .get(name)
        .unwrap_or_else(|| panic!("missing header {name}"))
        .to_str()
        .expect("header is ASCII")
}

fn assert_signed(name: &str) {
    let req = http(name);
    assert_eq!(
        req.request_context.http.method,
        http::Method::POST,
        "{name}"
    );
    assert_eq!(req.raw_path.as_deref(), Some("/webhooks/meta"), "{name}");
    assert!(!req.is_base64_encoded, "{name}");
    let body = req.body.as_deref().expect("webhook event has a body");
    let mut mac = Hmac::<Sha256>::new_from_slice(TEST_APP_SECRET).unwrap();
    mac.update(body.as_bytes());
    let expected = format!("sha256={}", hex::encode(mac.finalize().into_bytes()));
    assert_eq!(
        header(&req, "x-hub-signature-256"),
        expected,
        "{name}: signature over the exact body"
    );
    let envelope: serde_json::Value = serde_json::from_str(body).expect("body is JSON");
    assert_eq!(envelope["object"], "whatsapp_business_account");
    assert_eq!(
        envelope["entry"][0]["changes"][0]["value"]["metadata"]["phone_number_id"],
        "106540352242922"
    );
}

#[test]
fn every_sample_event_is_covered() {
    let mut names: Vec<String> = std::fs::read_dir(events_dir())
        .expect("events/ exists")
        .map(|e| e.unwrap().file_name().into_string().unwrap())
        .filter(|n| n.ends_with(".json"))
        .collect();
    names.sort();
    let covered = [
        "api-create-campaign.json",
        "api-list-campaigns.json",
        "importer-continue.json",
        "importer-s3-put.json",
        "inbound-sqs.json",
        "inbound-aws-social.json",
        "inbound-connect.json",
        "inbound-twilio.json",
        "launcher-launch.json",
        "launcher-tick.json",
        "sender-sqs-batch.json",
        "sweeper-sweep.json",
        "webhook-reply.json",
        "webhook-status.json",
        "webhook-verify.json",
    ];
    for name in &names {
        assert!(
            covered.contains(&name.as_str()),
            "events/{name} has no check in this test"
        );
    }
}

#[test]
fn api_create_campaign_is_an_http_api_v2_post_with_tenant_claim() {
    let req = http("api-create-campaign.json");
    assert_eq!(req.request_context.http.method, http::Method::POST);
    assert_eq!(req.raw_path.as_deref(), Some("/campaigns"));
    assert_eq!(header(&req, "content-type"), "application/json");
    let claims = &req
        .request_context
        .authorizer
        .as_ref()
        .expect("authorizer")
        .jwt
        .as_ref()
        .expect("jwt")
        .claims;
    assert_eq!(claims.get("tenant_id").map(String::as_str), Some("demo"));
    let body: serde_json::Value =
        serde_json::from_str(req.body.as_deref().expect("body")).expect("body is JSON");
    assert_eq!(body["name"], "Diwali offer");
    assert_eq!(body["account_id"], "acc_demo");
    assert_eq!(body["template"]["name"], "diwali_offer");
    assert_eq!(body["template"]["language"], "en");
    assert_eq!(body["variables"][0]["source"], "contact_name");
    assert_eq!(body["rate"], 20);
    assert_eq!(body["response_timeout_days"], 1);
}

#[test]
fn api_list_campaigns_is_an_http_api_v2_get_with_tenant_claim() {
    let req = http("api-list-campaigns.json");
    assert_eq!(req.request_context.http.method, http::Method::GET);
    assert_eq!(req.raw_path.as_deref(), Some("/campaigns"));
    assert!(req.body.is_none());
    let claims = &req
        .request_context
        .authorizer
        .as_ref()
        .expect("authorizer")
        .jwt
        .as_ref()
        .expect("jwt")
        .claims;
    assert_eq!(claims.get("tenant_id").map(String::as_str), Some("demo"));
}

#[test]
fn webhook_verify_is_a_get_with_hub_parameters() {
    let req = http("webhook-verify.json");
    assert_eq!(req.request_context.http.method, http::Method::GET);
    assert_eq!(req.raw_path.as_deref(), Some("/webhooks/meta"));
    assert!(
        req.request_context.authorizer.is_none(),
        "webhook routes have no authorizer"
    );
    let q = &req.query_string_parameters;
    assert_eq!(q.first("hub.mode"), Some("subscribe"));
    assert_eq!(q.first("hub.verify_token"), Some("test-verify-token"));
    assert_eq!(q.first("hub.challenge"), Some("1158201444"));
    let raw = req.raw_query_string.as_deref().expect("rawQueryString");
    for pair in [
        "hub.mode=subscribe",
        "hub.verify_token=test-verify-token",
        "hub.challenge=1158201444",
    ] {
        assert!(
            raw.split('&').any(|p| p == pair),
            "rawQueryString has {pair}"
        );
    }
}

/// The body of the webhook sample `file`, after checking its signature.
fn signed_webhook_body(file: &str) -> serde_json::Value {
    assert_signed(file);
    let req = http(file);
    serde_json::from_str(req.body.as_deref().unwrap()).unwrap()
}

#[test]
fn webhook_status_is_signed_and_carries_the_callback_data() {
    let body = signed_webhook_body("webhook-status.json");
    let status = &body["entry"][0]["changes"][0]["value"]["statuses"][0];
    assert_eq!(status["id"], "wamid.TEST1");
    assert_eq!(status["status"], "delivered");
    assert_eq!(
        status["biz_opaque_callback_data"],
        "ce1|demo|cmp_demo|3|919812345678"
    );
}

#[test]
fn webhook_reply_is_signed_and_is_a_button_reply() {
    let body = signed_webhook_body("webhook-reply.json");
    let msg = &body["entry"][0]["changes"][0]["value"]["messages"][0];
    assert_eq!(msg["from"], "919812345678");
    assert_eq!(msg["type"], "button");
    assert_eq!(msg["button"]["payload"], "YES");
    assert_eq!(msg["button"]["text"], "Yes");
    assert_eq!(msg["context"]["id"], "wamid.TEST1");
}

#[test]
fn sender_batch_is_an_sqs_event_with_one_malformed_record() {
    let event: SqsEvent = serde_json::from_str(&read("sender-sqs-batch.json")).expect("SqsEvent");
    assert_eq!(event.records.len(), 3);
    let mut phones = Vec::new();
    for record in &event.records[..2] {
        assert!(record.message_id.is_some());
        let body: serde_json::Value =
            serde_json::from_str(record.body.as_deref().unwrap()).expect("JSON body");
        assert_eq!(body["tenant"], "demo");
        assert_eq!(body["campaign_id"], "cmp_demo");
        assert_eq!(body["shard"], 3);
        phones.push(body["phone"].as_str().unwrap().to_owned());
    }
    assert_eq!(phones[0], "919812345678");
    assert_ne!(phones[0], phones[1]);
    let bad = event.records[2].body.as_deref().unwrap();
    assert_eq!(bad, "not json");
    assert!(serde_json::from_str::<serde_json::Value>(bad).is_err());
}

#[tokio::test]
async fn inbound_batch_is_an_sqs_event_of_queued_webhooks_with_one_malformed_record() {
    use shared::domain::inbound::Inbound;
    use shared::lambda::inbound_queue::{QueuedWebhook, WebhookProvider};
    let event: SqsEvent = serde_json::from_str(&read("inbound-sqs.json")).expect("SqsEvent");
    assert_eq!(event.records.len(), 4);
    let body = |i: usize| event.records[i].body.as_deref().unwrap();
    let queued: Vec<QueuedWebhook> = (0..3)
        .map(|i| QueuedWebhook::decode(body(i)).expect("a queued webhook"))
        .collect();
    // The Meta records carry the signed sample bodies verbatim.
    for (w, file) in queued[..2]
        .iter()
        .zip(["webhook-status.json", "webhook-reply.json"])
    {
        assert_eq!(w.header.provider, WebhookProvider::Meta);
        assert_eq!(Some(w.body.as_str()), http(file).body.as_deref(), "{file}");
    }
    assert!(
        matches!(&queued[0].events().unwrap()[..], [Inbound::Status(s)] if s.message_id == "wamid.TEST1")
    );
    assert!(
        matches!(&queued[1].events().unwrap()[..], [Inbound::Message(m)] if m.button.as_deref() == Some("YES"))
    );
    let kaleyra = &queued[2];
    assert_eq!(
        (kaleyra.header.provider, kaleyra.header.sid.as_deref()),
        (WebhookProvider::Kaleyra, Some("HXIN123"))
    );
    match &kaleyra.events().unwrap()[..] {
        [Inbound::Status(s)] => assert_eq!(
            s.entry.as_ref().map(|e| e.encode()).as_deref(),
            Some("ce1|demo|cmp_demo|3|919876543210")
        ),
        other => panic!("{other:?}"),
    }
    assert_eq!(body(3), "not a queued webhook");
    assert!(QueuedWebhook::decode(body(3)).is_err());
    // The worker acknowledges all four: the entries are unknown here (nothing to do) and
    // the malformed record cannot get better by being delivered again.
    let now = chrono::Utc::now();
    let inbox = shared::app::inbox::Inbox {
        table: std::sync::Arc::new(testkit::memory::MemoryTable::new()),
        bus: std::sync::Arc::new(testkit::memory::MemoryBus::default()),
        clock: std::sync::Arc::new(testkit::memory::ManualClock::frozen(now)),
        replies: None,
        calls: None,
    };
    let resp = shared::lambda::inbound(&inbox, event).await;
    assert!(resp.batch_item_failures.is_empty(), "{resp:?}");
}

#[test]
fn scheduled_payloads_name_their_action() {
    assert_eq!(
        json("launcher-tick.json"),
        serde_json::json!({"action": "tick"})
    );
    assert_eq!(
        json("launcher-launch.json"),
        serde_json::json!({"action": "launch", "tenant": "demo", "campaign_id": "cmp_demo"})
    );
    assert_eq!(
        json("sweeper-sweep.json"),
        serde_json::json!({"action": "sweep"})
    );
}

#[test]
fn importer_events_name_an_import_upload_or_a_continuation() {
    use shared::app::import::ImporterEvent;
    let s3: aws_lambda_events::s3::S3Event =
        serde_json::from_str(&read("importer-s3-put.json")).expect("S3Event");
    assert_eq!(s3.records.len(), 1);
    assert_eq!(
        s3.records[0].event_name.as_deref(),
        Some("ObjectCreated:Put")
    );
    match ImporterEvent::parse(json("importer-s3-put.json")).expect("importer event") {
        ImporterEvent::Uploaded(v) => assert_eq!(v, vec![("demo".into(), "imp_demo".into())]),
        other => panic!("{other:?}"),
    }
    match ImporterEvent::parse(json("importer-continue.json")).expect("importer event") {
        ImporterEvent::Continue(c) => {
            assert_eq!(
                (c.tenant.as_str(), c.import_id.as_str()),
                ("demo", "imp_demo")
            )
        }
        other => panic!("{other:?}"),
    }
}

/// Issue 18: what the WABA's SNS topic puts on the inbound queue, with raw message delivery
/// (record 1) and without (record 2, SNS's notification around it); the third record is
/// not an event and is acknowledged alone.
#[tokio::test]
async fn inbound_aws_social_batch_is_an_sqs_event_of_aws_end_user_messaging_social_events() {
    use shared::domain::inbound::Inbound;
    use shared::providers::aws_social::parse_event;
    let event: SqsEvent = serde_json::from_str(&read("inbound-aws-social.json")).expect("SqsEvent");
    assert_eq!(event.records.len(), 3);
    let body = |i: usize| event.records[i].body.as_deref().unwrap();
    let number = "phone-number-id-976c72a700aac43eaf573ae050a1b2c3";
    assert!(matches!(
        &parse_event(body(0)).unwrap().unwrap()[..],
        [Inbound::Status(s)] if s.message_id == "wamid.TEST1" && s.sender_id.as_deref() == Some(number)
    ));
    assert!(matches!(
        &parse_event(body(1)).unwrap().unwrap()[..],
        [Inbound::Message(m)] if m.button.as_deref() == Some("YES") && m.sender_id == number
    ));
    assert!(parse_event(body(2)).unwrap().is_err());
    // The worker acknowledges the whole batch: nothing a redelivery could fix.
    let inbox = shared::app::inbox::Inbox {
        table: std::sync::Arc::new(testkit::memory::MemoryTable::new()),
        bus: std::sync::Arc::new(testkit::memory::MemoryBus::default()),
        clock: std::sync::Arc::new(shared::adapters::clock::SystemClock),
        replies: None,
        calls: None,
    };
    let resp = shared::lambda::inbound(&inbox, event).await;
    assert!(resp.batch_item_failures.is_empty());
}

#[tokio::test]
async fn inbound_twilio_batch_is_a_delivery_status_and_an_inbound_stop() {
    use shared::domain::inbound::{Inbound, StatusKind};
    use shared::lambda::inbound_queue::{QueuedWebhook, WebhookProvider};
    let event: SqsEvent = serde_json::from_str(&read("inbound-twilio.json")).expect("SqsEvent");
    let queued: Vec<QueuedWebhook> = event
        .records
        .iter()
        .map(|r| QueuedWebhook::decode(r.body.as_deref().unwrap()).expect("a queued webhook"))
        .collect();
    assert!(queued
        .iter()
        .all(|w| w.header.provider == WebhookProvider::Twilio));
    match &queued[0].events().unwrap()[..] {
        [Inbound::Status(s)] => {
            assert_eq!(s.status, StatusKind::Delivered);
            assert_eq!(
                s.entry.as_ref().map(|e| e.encode()).as_deref(),
                Some("ce1|demo|cmp_sms|3|14155550101")
            );
            assert_eq!(s.attempt, Some(1));
        }
        other => panic!("{other:?}"),
    }
    match &queued[1].events().unwrap()[..] {
        [Inbound::Message(m)] => {
            assert!(m.sms);
            assert_eq!(m.text.as_deref(), Some("STOP"));
        }
        other => panic!("{other:?}"),
    }
    let now = chrono::Utc::now();
    let inbox = shared::app::inbox::Inbox {
        table: std::sync::Arc::new(testkit::memory::MemoryTable::new()),
        bus: std::sync::Arc::new(testkit::memory::MemoryBus::default()),
        clock: std::sync::Arc::new(testkit::memory::ManualClock::frozen(now)),
        replies: None,
        calls: None,
    };
    let resp = shared::lambda::inbound(&inbox, event).await;
    assert!(resp.batch_item_failures.is_empty(), "{resp:?}");
}

#[tokio::test]
async fn inbound_connect_batch_is_a_calls_contact_events_as_the_eventbridge_rule_delivers_them() {
    use shared::domain::inbound::{CallEventKind, Inbound};
    use shared::providers::connect::parse_event;
    let event: SqsEvent = serde_json::from_str(&read("inbound-connect.json")).expect("SqsEvent");
    assert_eq!(event.records.len(), 3);
    let body = |i: usize| event.records[i].body.as_deref().unwrap();
    match &parse_event(body(0)).unwrap().unwrap()[..] {
        [Inbound::Call(c)] => {
            assert_eq!(c.kind, CallEventKind::Connected);
            assert_eq!(c.instance_id, "11111111-2222-4333-8444-000000000001");
            assert_eq!(c.amd_status.as_deref(), Some("HUMAN_ANSWERED"));
        }
        other => panic!("{other:?}"),
    }
    match &parse_event(body(1)).unwrap().unwrap()[..] {
        [Inbound::Call(c)] => {
            assert_eq!(c.kind, CallEventKind::Disconnected);
            assert!(c.connected_at.is_some());
            assert_eq!(c.disconnect_reason.as_deref(), Some("CUSTOMER_DISCONNECT"));
        }
        other => panic!("{other:?}"),
    }
    assert!(parse_event(body(2)).unwrap().is_err());
    // No account owns the instance here: the events are acknowledged and change nothing.
    let inbox = shared::app::inbox::Inbox {
        table: std::sync::Arc::new(testkit::memory::MemoryTable::new()),
        bus: std::sync::Arc::new(testkit::memory::MemoryBus::default()),
        clock: std::sync::Arc::new(shared::adapters::clock::SystemClock),
        replies: None,
        calls: None,
    };
    let resp = shared::lambda::inbound(&inbox, event).await;
    assert!(resp.batch_item_failures.is_empty(), "{resp:?}");
}
