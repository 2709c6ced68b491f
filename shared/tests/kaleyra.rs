//! Kaleyra as a second WhatsApp provider (R7.1, R4.7, R7.3): the real `KaleyraProvider`
//! against the simulator's Kaleyra route, error classification, v2 status callbacks and
//! the shared-token check.

use testkit::harness as common;

use async_trait::async_trait;
use axum::body::Bytes;
use axum::extract::{Query, State};
use axum::http::StatusCode;
use axum::routing::post;
use axum::Router;
use serde_json::json;
use shared::domain::account::{Account, Provider};
use shared::domain::inbound::{EntryRef, Inbound, StatusKind};
use shared::domain::outcome::{classify_kaleyra, FailureClass, SendFailure};
use shared::domain::phone::PhoneNumber;
use shared::ports::{Clock, MessagingProvider, OutboundTemplate, PortError, PortResult, Secrets};
use shared::providers::kaleyra::{
    interpret_kaleyra_response, parse_kaleyra_callback, qualify_kaleyra_senders,
    verify_kaleyra_token, KaleyraProvider, TOKEN_QUERY_PARAM,
};
use std::collections::HashMap;
use std::sync::{Arc, Mutex};
use testkit::memory::ManualClock;
use testkit::simulator::{SimConfig, SimProvider, Simulator};

const SENDER: &str = "HXIN1700000000IN:919800000000";
const PHONE: &str = "919812345678";
const INVALID_REASON: &str = "'To' number invalid or WhatsApp account does not exist";
const CALLBACK_TOKEN: &str = "kaleyra-callback-secret";

struct TestSecrets;

#[async_trait]
impl Secrets for TestSecrets {
    async fn resolve(&self, reference: &str) -> PortResult<String> {
        match reference {
            "env:KALEYRA_KEY" => Ok("test-kaleyra-key".into()),
            "env:WRONG_KEY" => Ok("nope".into()),
            other => Err(PortError::Refused(format!("{other} not set"))),
        }
    }
}

fn clock() -> Arc<dyn Clock> {
    Arc::new(ManualClock::frozen(
        chrono::DateTime::from_timestamp(1_751_400_000, 0).unwrap(),
    ))
}

fn account(sender_id: &str, token_ref: &str) -> Account {
    Account {
        marketing_messages: false,
        id: "acc_k".into(),
        tenant: "t1".into(),
        name: "Kaleyra".into(),
        provider: Provider::Kaleyra,
        sender_id: sender_id.into(),
        token_ref: token_ref.into(),
        rate_limit: 20,
        messaging_tier: None,
        created_at: chrono::Utc::now(),
        portfolio_id: None,
        caller_ids: Vec::new(),
        max_concurrent_calls: None,
    }
}

fn entry_ref(phone: &str) -> EntryRef {
    EntryRef {
        tenant: "t1".into(),
        campaign_id: "cmp_42".into(),
        shard: 3,
        phone: PhoneNumber::parse(phone).unwrap(),
    }
}

fn template(phone: &str) -> OutboundTemplate {
    OutboundTemplate {
        marketing_messages: false,
        to: PhoneNumber::parse(phone).unwrap(),
        template: "diwali_offer".into(),
        language: "en".into(),
        params: vec!["Asha".into(), "20%".into()],
        quick_reply_payloads: vec!["STOP|cmp_42".into()],
        callback_data: entry_ref(phone).encode(),
        header: None,
        url_suffix: None,
    }
}

/// A callback receiver that checks `?token=` like the webhook will, then parses.
#[derive(Default)]
struct Got {
    inbound: Vec<Inbound>,
    rejected: usize,
}

async fn receive(
    State((expected, got)): State<(Arc<String>, Arc<Mutex<Got>>)>,
    Query(q): Query<HashMap<String, String>>,
    body: Bytes,
) -> StatusCode {
    if !verify_kaleyra_token(&expected, q.get(TOKEN_QUERY_PARAM).map(String::as_str)) {
        got.lock().unwrap().rejected += 1;
        return StatusCode::UNAUTHORIZED;
    }
    match parse_kaleyra_callback(&body) {
        Ok(items) => {
            got.lock().unwrap().inbound.extend(items);
            StatusCode::OK
        }
        Err(_) => StatusCode::BAD_REQUEST,
    }
}

/// Starts a receiver expecting `CALLBACK_TOKEN`; its URL without the query.
async fn start_receiver() -> (String, Arc<Mutex<Got>>) {
    let got = Arc::new(Mutex::new(Got::default()));
    let app = Router::new()
        .route("/webhooks/kaleyra", post(receive))
        .with_state((Arc::new(CALLBACK_TOKEN.to_owned()), got.clone()));
    (
        format!("{}/webhooks/kaleyra", common::serve(app).await),
        got,
    )
}

async fn sim_with_callbacks(token: &str) -> (Simulator, Arc<Mutex<Got>>) {
    let (url, got) = start_receiver().await;
    let cfg = SimConfig {
        kaleyra_callback_url: Some(format!("{url}?{TOKEN_QUERY_PARAM}={token}")),
        kaleyra_invalid_numbers: vec!["919800000404".into()],
        ..SimConfig::default()
    };
    (Simulator::start(cfg, clock()).await.unwrap(), got)
}

#[tokio::test]
async fn r7_1_kaleyra_sends_template_over_http_to_simulator() {
    let (sim, _got) = sim_with_callbacks(CALLBACK_TOKEN).await;
    let provider = KaleyraProvider::new(format!("{}/", sim.base_url()), Arc::new(TestSecrets));
    let id = provider
        .send(&account(SENDER, "env:KALEYRA_KEY"), &template(PHONE))
        .await
        .unwrap()
        .message_id;
    assert!(id.starts_with("wamid.SIM"), "{id}");
    sim.idle().await;
    let sent = sim.sent();
    assert_eq!(sent.len(), 1);
    let s = &sent[0];
    assert_eq!(s.provider, SimProvider::Kaleyra);
    assert_eq!(s.wamid, id);
    assert_eq!(s.version, "v2");
    assert_eq!(s.phone_number_id, SENDER);
    assert_eq!(s.to, PHONE);
    assert_eq!(s.template, "diwali_offer");
    assert_eq!(s.language.as_deref(), Some("en"));
    assert_eq!(s.params, vec!["Asha", "20%"]);
    assert_eq!(s.quick_reply_payloads, vec!["STOP|cmp_42"]);
    assert_eq!(
        s.callback_data.as_deref(),
        Some(entry_ref(PHONE).encode().as_str())
    );

    // A wrong key is Kaleyra's RBC001: the campaign pauses.
    let f = provider
        .send(&account(SENDER, "env:WRONG_KEY"), &template(PHONE))
        .await
        .unwrap_err();
    assert_eq!(f.class, FailureClass::Campaign);
    assert!(f.reason.contains("RBC001"), "{}", f.reason);
    // A sender_id that is not <sid>:<from> never leaves: Campaign class.
    for bad in ["919800000000", "HXIN:", "HX IN:919800000000"] {
        let f = provider
            .send(&account(bad, "env:KALEYRA_KEY"), &template(PHONE))
            .await
            .unwrap_err();
        assert_eq!(f.class, FailureClass::Campaign, "{bad}");
    }
    // Unavailable credentials: Campaign, without a key in the reason.
    let f = provider
        .send(&account(SENDER, "env:MISSING"), &template(PHONE))
        .await
        .unwrap_err();
    assert_eq!(f.class, FailureClass::Campaign);
    assert_eq!(sim.sent().len(), 1);
}

#[tokio::test]
async fn r4_7_kaleyra_invalid_number_reason_is_recorded() {
    let (sim, _got) = sim_with_callbacks(CALLBACK_TOKEN).await;
    let provider = KaleyraProvider::new(sim.base_url(), Arc::new(TestSecrets));
    let f = provider
        .send(
            &account(SENDER, "env:KALEYRA_KEY"),
            &template("919800000404"),
        )
        .await
        .unwrap_err();
    assert_eq!(f.class, FailureClass::Permanent);
    assert_eq!(f.reason, INVALID_REASON);
    assert!(sim.sent().is_empty());

    // The same error read straight from a body, whatever the HTTP status.
    let body = json!({"code": "E413", "message": "Invalid number", "data": []}).to_string();
    for status in [400, 200] {
        let f = interpret_kaleyra_response(status, body.as_bytes()).unwrap_err();
        assert_eq!(
            (f.class, f.reason.as_str()),
            (FailureClass::Permanent, INVALID_REASON)
        );
    }
    // And from a FAILED callback carrying it.
    let cb = json!({"status": "FAILED", "message_id": "wamid.X",
        "error": {"code": "E413", "message": "whatever"},
        "extra_info": {"ref": entry_ref(PHONE).encode()}, "timestamp": "1751400000"});
    let items = parse_kaleyra_callback(cb.to_string().as_bytes()).unwrap();
    let [Inbound::Status(s)] = items.as_slice() else {
        panic!("{items:?}")
    };
    assert_eq!(
        s.status,
        StatusKind::Failed {
            code: None,
            reason: INVALID_REASON.into(),
            class: None,
        }
    );
}

#[test]
fn r4_7_kaleyra_codes_are_classified() {
    use FailureClass::*;
    for (code, class) in [
        ("RBC001", Campaign),
        ("E110", Campaign),
        ("WAV2101", Campaign),
        ("WA401", Campaign),
        ("WA400", Permanent),
        ("E413", Permanent),
        ("WA500", Temporary),
        ("XYZ999", Temporary),
    ] {
        assert_eq!(classify_kaleyra(code), class, "{code}");
        assert_eq!(SendFailure::kaleyra(code, "m").class, class, "{code}");
    }
    // Kaleyra's own codes in each place they may be.
    let f = interpret_kaleyra_response(
        401,
        br#"{"code":"RBC001","message":"Incorrect SID or API key."}"#,
    )
    .unwrap_err();
    assert_eq!(f.class, Campaign);
    assert_eq!(f.reason, "Incorrect SID or API key. (RBC001)");
    let f = interpret_kaleyra_response(500, br#"{"error":{"code":"WA500","message":"Internal"}}"#)
        .unwrap_err();
    assert_eq!(f.class, Temporary);
    let f =
        interpret_kaleyra_response(400, br#"{"error_code":"WA400","message":"Bad"}"#).unwrap_err();
    assert_eq!(f.class, Permanent);
    // A Meta error passed through is classified as Meta's.
    let f = interpret_kaleyra_response(
        400,
        br#"{"meta_object":{"error":{"code":131026,"message":"Message undeliverable"}}}"#,
    )
    .unwrap_err();
    assert_eq!(
        (f.class, f.code, f.reason.as_str()),
        (Permanent, Some(131026), "Message Undeliverable")
    );
    let f = interpret_kaleyra_response(400, br#"{"error":{"code":132015,"message":"paused"}}"#)
        .unwrap_err();
    assert_eq!((f.class, f.code), (Campaign, Some(132015)));
    // Success shapes: data[0].message_id, data.message_id, message_id, id.
    for body in [
        json!({"code": "WA200", "data": [{"message_id": "wamid.A"}], "error": {}}),
        json!({"data": {"message_id": "wamid.A"}}),
        json!({"message_id": "wamid.A"}),
        json!({"id": "wamid.A"}),
    ] {
        assert_eq!(
            interpret_kaleyra_response(200, body.to_string().as_bytes()),
            Ok("wamid.A".to_owned().into()),
            "{body}"
        );
    }
    // A server error or a success without an id may follow an accepted message: its
    // outcome is unknown. A refusal without a readable body sent nothing.
    for (status, body) in [(502, &b"<html>"[..]), (200, &br#"{"data":[]}"#[..])] {
        let f = interpret_kaleyra_response(status, body).unwrap_err();
        assert_eq!((f.class, f.code), (FailureClass::Unknown, None));
    }
    let f = interpret_kaleyra_response(403, b"<html>").unwrap_err();
    assert_eq!((f.class, f.code), (Temporary, None));
}

#[tokio::test]
async fn r7_3_kaleyra_callbacks_parse_statuses_and_ref() {
    // The documented example, our ref in extra_info.
    let r = entry_ref(PHONE);
    let example = json!({"meta_object":{"value":{"messaging_product":"whatsapp",
        "metadata":{"display_phone_number":"919800000000","phone_number_id":"104000"},
        "statuses":[{"id":"wamid.HBgM1","status":"sent","timestamp":"1722834665","recipient_id":PHONE}]},
        "field":"messages"},
      "extra_info":{"trace_id":"8f14e45f","message_id":"wamid.HBgM1","waba_id":"1234512345","ref":r.encode()},
      "status":"sent","message_id":"wamid.HBgM1"});
    let items = parse_kaleyra_callback(example.to_string().as_bytes()).unwrap();
    let [Inbound::Status(s)] = items.as_slice() else {
        panic!("{items:?}")
    };
    assert_eq!(s.message_id, "wamid.HBgM1");
    assert_eq!(s.status, StatusKind::Sent);
    assert_eq!(s.at.timestamp(), 1_722_834_665);
    assert_eq!(s.entry.as_ref(), Some(&r));

    // Every status, any case; message id from extra_info when not at the top.
    for (status, want) in [
        ("SENT", StatusKind::Sent),
        ("DELIVERED", StatusKind::Delivered),
        ("READ", StatusKind::Read),
        ("delivered", StatusKind::Delivered),
    ] {
        let cb = json!({"status": status, "timestamp": "1751400000",
            "extra_info": {"message_id": "wamid.B", "ref": r.encode()}});
        let items = parse_kaleyra_callback(cb.to_string().as_bytes()).unwrap();
        let [Inbound::Status(s)] = items.as_slice() else {
            panic!("{items:?}")
        };
        assert_eq!((s.message_id.as_str(), &s.status), ("wamid.B", &want));
        assert_eq!(s.entry.as_ref(), Some(&r));
    }
    // FAILED with a Meta error in the passed-through status.
    let failed = json!({"status":"FAILED","message_id":"wamid.C","extra_info":{"ref":r.encode()},
        "meta_object":{"field":"messages","value":{"statuses":[{"id":"wamid.C","status":"failed",
          "timestamp":"1751400002","recipient_id":PHONE,
          "errors":[{"code":131050,"title":"User stopped marketing","message":"x"}]}]}}});
    let items = parse_kaleyra_callback(failed.to_string().as_bytes()).unwrap();
    let [Inbound::Status(s)] = items.as_slice() else {
        panic!("{items:?}")
    };
    assert!(
        matches!(
            &s.status,
            StatusKind::Failed {
                code: Some(131050),
                ..
            }
        ),
        "{s:?}"
    );
    // NOT-SENT never reached Meta.
    let not_sent = json!({"status":"NOT-SENT","message_id":"wamid.D","extra_info":{"ref":r.encode()},
        "error":{"code":"WAV2101","message":"Daily limit reached"}});
    let items = parse_kaleyra_callback(not_sent.to_string().as_bytes()).unwrap();
    let [Inbound::Status(s)] = items.as_slice() else {
        panic!("{items:?}")
    };
    assert_eq!(
        s.status,
        StatusKind::Failed {
            code: None,
            reason: "Daily limit reached (WAV2101)".into(),
            class: None,
        }
    );
    // Without a time of its own, a status is dated when the webhook received it.
    let received = chrono::DateTime::parse_from_rfc3339("2026-11-21T09:00:00Z")
        .unwrap()
        .with_timezone(&chrono::Utc);
    let items = shared::providers::kaleyra::parse_kaleyra_callback_received(
        not_sent.to_string().as_bytes(),
        received,
    )
    .unwrap();
    assert!(matches!(items.as_slice(), [Inbound::Status(s)] if s.at == received));
    // Foreign refs give no entry; unknown statuses and bodies without an id give nothing.
    let foreign = json!({"status":"sent","message_id":"wamid.E","extra_info":{"ref":"campaign_2025_summer_sale"},"timestamp":"1751400000"});
    let items = parse_kaleyra_callback(foreign.to_string().as_bytes()).unwrap();
    assert!(matches!(items.as_slice(), [Inbound::Status(s)] if s.entry.is_none()));
    assert!(
        parse_kaleyra_callback(br#"{"status":"queued","message_id":"x"}"#)
            .unwrap()
            .is_empty()
    );
    assert!(parse_kaleyra_callback(br#"{"status":"sent"}"#)
        .unwrap()
        .is_empty());
    assert!(parse_kaleyra_callback(b"not json").is_err());
    // A customer reply passed through in meta_object.value.messages.
    let reply = json!({"meta_object":{"field":"messages","value":{"messaging_product":"whatsapp",
        "metadata":{"display_phone_number":"+91 98000 00000","phone_number_id":"104000"},
        "contacts":[{"profile":{"name":"Asha"},"wa_id":PHONE}],
        "messages":[{"from":PHONE,"id":"wamid.IN2","timestamp":"1751400300","type":"button",
          "context":{"id":"wamid.HBgM1"},"button":{"payload":"STOP|cmp_42","text":"Stop"}}]}}});
    let mut items = parse_kaleyra_callback(reply.to_string().as_bytes()).unwrap();
    qualify_kaleyra_senders(&mut items, "HXIN1700000000IN");
    let [Inbound::Message(m)] = items.as_slice() else {
        panic!("{items:?}")
    };
    // Keyed like the account's sender_id, so the reply finds its interaction.
    assert_eq!(m.sender_id, SENDER);
    assert_eq!(m.from.as_str(), PHONE);
    assert_eq!(m.button.as_deref(), Some("STOP|cmp_42"));
    assert_eq!(m.context_id.as_deref(), Some("wamid.HBgM1"));

    // End to end: the simulator's callbacks after a real send.
    let (sim, got) = sim_with_callbacks(CALLBACK_TOKEN).await;
    let provider = KaleyraProvider::new(sim.base_url(), Arc::new(TestSecrets));
    let id = provider
        .send(&account(SENDER, "env:KALEYRA_KEY"), &template(PHONE))
        .await
        .unwrap()
        .message_id;
    sim.idle().await;
    let got = got.lock().unwrap();
    assert_eq!(got.rejected, 0);
    let statuses: Vec<_> = got
        .inbound
        .iter()
        .map(|i| match i {
            Inbound::Status(s) => {
                assert_eq!(s.message_id, id);
                assert_eq!(s.entry.as_ref(), Some(&r));
                s.status.clone()
            }
            other => panic!("{other:?}"),
        })
        .collect();
    assert_eq!(
        statuses,
        vec![StatusKind::Sent, StatusKind::Delivered, StatusKind::Read]
    );
    assert!(sim.webhooks().iter().all(|w| w.accepted()));
}

#[tokio::test]
async fn r7_3_kaleyra_wrong_token_is_rejected() {
    assert!(verify_kaleyra_token(CALLBACK_TOKEN, Some(CALLBACK_TOKEN)));
    assert!(!verify_kaleyra_token(
        CALLBACK_TOKEN,
        Some("kaleyra-callback-secreT")
    ));
    assert!(!verify_kaleyra_token(CALLBACK_TOKEN, Some("")));
    assert!(!verify_kaleyra_token(CALLBACK_TOKEN, None));
    // An unconfigured token accepts nothing, not even an empty one.
    assert!(!verify_kaleyra_token("", Some("")));

    let (sim, got) = sim_with_callbacks("guessed").await;
    let provider = KaleyraProvider::new(sim.base_url(), Arc::new(TestSecrets));
    provider
        .send(&account(SENDER, "env:KALEYRA_KEY"), &template(PHONE))
        .await
        .unwrap();
    sim.idle().await;
    let got = got.lock().unwrap();
    assert!(got.inbound.is_empty());
    assert_eq!(got.rejected, 3);
    let hooks = sim.webhooks();
    assert_eq!(hooks.len(), 3);
    assert!(hooks.iter().all(|w| w.answered == Some(401)));
}
