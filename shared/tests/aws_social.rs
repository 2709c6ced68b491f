//! WhatsApp through AWS End User Messaging Social (issue 18): the real
//! `AwsSocialProvider` (the AWS SDK, SigV4, restJson1) against the simulator's
//! `SendWhatsAppMessage` route on loopback, the classification of its refusals, the grant
//! that keeps a tenant to its own numbers, and the events AWS publishes for the WABA read
//! back by the inbound worker's parser.

use axum::http::StatusCode;
use axum::routing::post;
use axum::Router;
use serde_json::{json, Value};
use shared::adapters::aws::offline_sdk_config;
use shared::domain::account::{Account, Provider};
use shared::domain::inbound::{EntryRef, Inbound, StatusKind};
use shared::domain::outcome::FailureClass;
use shared::domain::phone::PhoneNumber;
use shared::ports::{Clock, MessagingProvider, OutboundTemplate, Queue};
use shared::providers::aws_social::{parse_event, AwsSocialProvider};
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::Arc;
use testkit::harness::{serve, sim_secrets, SIM_AWS_GRANT_REF};
use testkit::memory::{ManualClock, MemoryQueue};
use testkit::simulator::{
    meta_phone_number_id, QueueEvents, SimConfig, SimFailure, SimProvider, Simulator,
    SIM_AWS_PHONE_NUMBER_IDS,
};

const PHONE: &str = "919812345678";

fn clock() -> Arc<dyn Clock> {
    Arc::new(ManualClock::frozen(
        chrono::DateTime::from_timestamp(1_751_400_000, 0).unwrap(),
    ))
}

fn account(sender_id: &str) -> Account {
    Account {
        marketing_messages: false,
        id: "acc_a".into(),
        tenant: "acme".into(),
        name: "AWS".into(),
        provider: Provider::AwsSocial,
        sender_id: sender_id.into(),
        token_ref: SIM_AWS_GRANT_REF.into(),
        rate_limit: 80,
        messaging_tier: None,
        created_at: chrono::Utc::now(),
        portfolio_id: None,
        caller_ids: Vec::new(),
        max_concurrent_calls: None,
    }
}

fn template(phone: &str) -> OutboundTemplate {
    OutboundTemplate {
        marketing_messages: false,
        to: PhoneNumber::parse(phone).unwrap(),
        template: "spring_offer".into(),
        language: "en".into(),
        params: vec!["Asha".into(), "SPRING1".into()],
        quick_reply_payloads: vec!["Yes".into(), "No".into()],
        callback_data: EntryRef {
            tenant: "acme".into(),
            campaign_id: "cmp_1".into(),
            shard: 3,
            phone: PhoneNumber::parse(phone).unwrap(),
        }
        .encode(),
        header: None,
        url_suffix: None,
    }
}

fn provider(base_url: &str) -> AwsSocialProvider {
    AwsSocialProvider::new(
        &offline_sdk_config(),
        Some(base_url),
        "v23.0",
        sim_secrets(),
    )
}

async fn sim() -> Simulator {
    Simulator::start(
        SimConfig {
            reply_percent: 0,
            ..SimConfig::default()
        },
        clock(),
    )
    .await
    .unwrap()
}

#[tokio::test]
async fn a_template_goes_out_through_send_whats_app_message_and_its_events_come_back() {
    let sim = sim().await;
    let queue = Arc::new(MemoryQueue::new(clock()));
    sim.set_aws_event_sink(Arc::new(QueueEvents(queue.clone())));
    let number = SIM_AWS_PHONE_NUMBER_IDS[0];
    let accepted = provider(&sim.base_url())
        .send(&account(number), &template(PHONE))
        .await
        .unwrap();
    let sent = sim.sent();
    assert_eq!(sent.len(), 1);
    assert_eq!(accepted.message_id, sent[0].wamid);
    assert_eq!(
        (sent[0].provider, sent[0].phone_number_id.as_str()),
        (SimProvider::AwsSocial, number)
    );
    assert_eq!(sent[0].params, vec!["Asha", "SPRING1"]);
    assert_eq!(sent[0].quick_reply_payloads, vec!["Yes", "No"]);
    assert_eq!(sent[0].version, "v23.0");

    // sent, delivered, read: three events naming the origination number once unwrapped.
    sim.idle().await;
    let records = queue.receive(10).await.unwrap();
    assert_eq!(records.len(), 3);
    let mut kinds = Vec::new();
    for r in &records {
        let event: Value = serde_json::from_str(&r.body).unwrap();
        assert_eq!(
            event["context"]["MetaPhoneNumberIds"][0]["metaPhoneNumberId"],
            json!(meta_phone_number_id(number)),
            "the entry inside names Meta's id of the number"
        );
        for ev in parse_event(&r.body).unwrap().unwrap() {
            let Inbound::Status(s) = ev else {
                panic!("{ev:?}")
            };
            assert_eq!(s.sender_id.as_deref(), Some(number));
            assert_eq!(s.message_id, accepted.message_id);
            assert_eq!(
                s.entry.as_ref().map(|e| e.campaign_id.as_str()),
                Some("cmp_1")
            );
            kinds.push(s.status);
        }
    }
    assert_eq!(
        kinds,
        vec![StatusKind::Sent, StatusKind::Delivered, StatusKind::Read]
    );
}

#[tokio::test]
async fn a_number_the_tenants_grant_does_not_list_is_never_sent_from() {
    let sim = sim().await;
    let err = provider(&sim.base_url())
        .send(
            &account("phone-number-id-ffffffffffffffffffffffffffffffff"),
            &template(PHONE),
        )
        .await
        .unwrap_err();
    assert_eq!(err.class, FailureClass::Campaign, "{err:?}");
    assert!(err.reason.contains("not granted"), "{}", err.reason);
    assert!(sim.sent().is_empty());
}

#[tokio::test]
async fn metas_refusals_behind_aws_are_classified_as_metas_and_throttling_slows_the_account() {
    let sim = sim().await;
    let p = provider(&sim.base_url());
    let a = account(SIM_AWS_PHONE_NUMBER_IDS[0]);
    for (phone, failure, class, code) in [
        (
            "919800000001",
            SimFailure::permanent(),
            FailureClass::Permanent,
            131026,
        ),
        (
            "919800000002",
            SimFailure::temporary(),
            FailureClass::Temporary,
            131000,
        ),
        (
            "919800000003",
            SimFailure::campaign(),
            FailureClass::Campaign,
            132001,
        ),
        (
            "919800000004",
            SimFailure {
                code: Some(131049),
                ..SimFailure::temporary()
            },
            FailureClass::MarketingLimit,
            131049,
        ),
    ] {
        sim.set_failure(phone, failure);
        let err = p.send(&a, &template(phone)).await.unwrap_err();
        assert_eq!(
            (err.class, err.code),
            (class, Some(code)),
            "{phone}: {err:?}"
        );
    }
    sim.set_rate_limit(Some(1));
    p.send(&a, &template(PHONE)).await.unwrap();
    let err = p.send(&a, &template("919812345679")).await.unwrap_err();
    assert_eq!(err.class, FailureClass::Temporary, "{err:?}");
    assert!(err.is_throttling(), "{err:?}");
    assert_eq!(sim.sent().len(), 1);
    assert_eq!(sim.throttled()[0].provider, SimProvider::AwsSocial);
}

#[tokio::test]
async fn the_simulator_is_as_strict_as_the_service() {
    let sim = sim().await;
    let url = format!("{}/v1/whatsapp/send", sim.base_url());
    let http = reqwest::Client::new();
    let message = |v: Value| {
        use base64::Engine as _;
        base64::engine::general_purpose::STANDARD.encode(v.to_string())
    };
    let good = json!({"messaging_product": "whatsapp", "recipient_type": "individual", "to": PHONE, "type": "template",
        "template": {"name": "t", "language": {"code": "en", "policy": "deterministic"}}});
    let signed = "AWS4-HMAC-SHA256 Credential=local/20261206/us-east-1/social-messaging/aws4_request, SignedHeaders=host;x-amz-date, Signature=00";
    let post = |auth: Option<&'static str>, body: Value| {
        let mut req = http.post(&url).json(&body);
        if let Some(a) = auth {
            req = req
                .header("authorization", a)
                .header("x-amz-date", "20261206T090000Z");
        }
        req.send()
    };
    let body = |m: &str, id: &str| json!({"message": m, "metaApiVersion": "v23.0", "originationPhoneNumberId": id});
    // Unsigned.
    let r = post(
        None,
        body(&message(good.clone()), SIM_AWS_PHONE_NUMBER_IDS[0]),
    )
    .await
    .unwrap();
    assert_eq!(r.status().as_u16(), 403);
    assert_eq!(r.headers()["x-amzn-errortype"], "AccessDeniedException");
    // Signed for another service.
    let r = post(
        Some("AWS4-HMAC-SHA256 Credential=local/20261206/us-east-1/sns/aws4_request, Signature=00"),
        body(&message(good.clone()), SIM_AWS_PHONE_NUMBER_IDS[0]),
    )
    .await
    .unwrap();
    assert_eq!(r.status().as_u16(), 403);
    // Not an origination phone number id (Meta's id instead).
    let r = post(
        Some(signed),
        body(&message(good.clone()), "106540352242922"),
    )
    .await
    .unwrap();
    assert_eq!(r.status().as_u16(), 400);
    assert_eq!(r.headers()["x-amzn-errortype"], "ValidationException");
    // A message that fails Meta's schema: Meta's error 100 quoted, naming the field.
    let bad = json!({"messaging_product": "whatsapp", "recipient_type": "individual", "to": PHONE, "type": "template",
        "template": {"language": {"code": "en", "policy": "deterministic"}}});
    let r = post(
        Some(signed),
        body(&message(bad), SIM_AWS_PHONE_NUMBER_IDS[0]),
    )
    .await
    .unwrap();
    assert_eq!(r.status().as_u16(), 400);
    let text = r.text().await.unwrap();
    assert!(
        text.contains("(#100)") && text.contains("\\\"name\\\""),
        "{text}"
    );
    // The same, well formed: accepted.
    let r = post(
        Some(signed),
        body(&message(good), SIM_AWS_PHONE_NUMBER_IDS[0]),
    )
    .await
    .unwrap();
    assert_eq!(r.status().as_u16(), 200);
    assert_eq!(sim.sent().len(), 1);
}

/// A stand-in service answering every send with `status`, `error_type` and `body`; its
/// URL and the count of requests it received.
async fn stand_in(
    status: u16,
    error_type: &'static str,
    body: Value,
) -> (String, Arc<AtomicUsize>) {
    let hits = Arc::new(AtomicUsize::new(0));
    let counted = hits.clone();
    let app = Router::new().route(
        "/v1/whatsapp/send",
        post(move || {
            let body = body.clone();
            counted.fetch_add(1, Ordering::SeqCst);
            async move {
                let mut resp = axum::response::IntoResponse::into_response((
                    StatusCode::from_u16(status).unwrap(),
                    axum::Json(body),
                ));
                if !error_type.is_empty() {
                    resp.headers_mut()
                        .insert("x-amzn-errortype", error_type.parse().unwrap());
                }
                resp
            }
        }),
    );
    (serve(app).await, hits)
}

#[tokio::test]
async fn an_answer_that_may_follow_an_accepted_message_is_outcome_unknown_and_never_retried_by_the_sdk(
) {
    let a = account(SIM_AWS_PHONE_NUMBER_IDS[0]);
    for (status, name, body) in [
        (500, "InternalServiceException", json!({"message": "boom"})),
        (
            502,
            "DependencyException",
            json!({"message": "Meta timed out"}),
        ),
        (200, "", json!({})),
    ] {
        let (base, hits) = stand_in(status, name, body).await;
        let err = provider(&base)
            .send(&a, &template(PHONE))
            .await
            .unwrap_err();
        assert_eq!(err.class, FailureClass::Unknown, "{status} {name}: {err:?}");
        assert_eq!(hits.load(Ordering::SeqCst), 1, "one request, no retry");
    }
    // Nobody listening: nothing was sent, the entry goes back in line.
    let listener = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
    let closed = format!("http://{}", listener.local_addr().unwrap());
    drop(listener);
    let err = provider(&closed)
        .send(&a, &template(PHONE))
        .await
        .unwrap_err();
    assert_eq!(err.class, FailureClass::Temporary, "{err:?}");
}
