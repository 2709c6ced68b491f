//! WhatsApp-to-SMS fallback (issue 16, R12.4): a WhatsApp campaign that names an SMS
//! account and message sends a contact whose number WhatsApp refuses as not on WhatsApp
//! (Meta's 131026, at the send or in a later `failed` status) that SMS instead, once:
//! counted apart in the statistics, never a second SMS, never both.

use axum::http::Method;
use chrono::Duration;
use serde_json::{json, Value};
use shared::ports::Clock;
use shared::providers::meta;
use std::collections::HashMap;
use std::sync::Arc;
use testkit::harness::{self as common, Spawn, Spawned, SIM_TWILIO_TOKEN_REF};
use testkit::memory::MemoryTable;
use testkit::simulator::{SimConfig, SimFailure, SimProvider, SIM_TWILIO_SENDER};

type H = Spawned;

const ON_WHATSAPP: &str = "919812300201";
const REFUSED_AT_SEND: &str = "919812300202";
const FAILED_LATER: &str = "919812300203";

async fn spawn() -> H {
    Spawn::new(Arc::new(MemoryTable::new()))
        .simulator(SimConfig {
            reply_percent: 0,
            not_on_whatsapp: vec![FAILED_LATER.into()],
            ..SimConfig::default()
        })
        .serve_webhooks(true)
        .spawn()
        .await
}

async fn run_tick(h: &H) {
    h.sys.dispatcher.tick().await.unwrap();
    for _ in 0..60 {
        h.sys.drain_queue().await.unwrap();
        h.clock.advance(Duration::seconds(1));
    }
    h.sys.drain_queue().await.unwrap();
    h.simulator().idle().await;
    h.sys.drain_inbound().await.unwrap();
}

async fn entry(h: &H, campaign: &str, phone: &str) -> Value {
    let v = h
        .ok(
            Method::GET,
            &format!("/campaigns/{campaign}/hopper/entries?limit=100"),
            None,
        )
        .await;
    v["items"]
        .as_array()
        .unwrap()
        .iter()
        .find(|e| e["phone"] == phone)
        .unwrap_or_else(|| panic!("no entry for {phone}: {v}"))
        .clone()
}

/// Accepted sends per (provider, phone digits).
fn sends(h: &H) -> HashMap<(SimProvider, String), usize> {
    let mut m = HashMap::new();
    for s in h.simulator().sent() {
        let phone = s.to.trim_start_matches('+').to_owned();
        *m.entry((s.provider, phone)).or_insert(0) += 1;
    }
    m
}

/// A signed Meta `failed` status with 131026 for the entry's current message.
async fn post_not_on_whatsapp(h: &H, wamid: &str, phone: &str, callback: &str) {
    let body = json!({"object": "whatsapp_business_account", "entry": [{"id": "100000000000001", "changes": [{"field": "messages", "value": {
        "messaging_product": "whatsapp",
        "metadata": {"display_phone_number": "15550000000", "phone_number_id": "106540352242922"},
        "statuses": [{"id": wamid, "status": "failed", "timestamp": h.clock.now().timestamp().to_string(),
            "recipient_id": phone, "biz_opaque_callback_data": callback,
            "errors": [{"code": 131026, "title": "Message undeliverable", "message": "Message undeliverable",
                "error_data": {"details": "Message Undeliverable."}}]}]}}]}]})
    .to_string();
    let secret = SimConfig::default().app_secret;
    let resp = reqwest::Client::new()
        .post(h.webhook_url.as_deref().unwrap())
        .header(
            meta::SIGNATURE_HEADER,
            meta::signature_header(secret.as_bytes(), body.as_bytes()),
        )
        .header("content-type", "application/json")
        .body(body)
        .send()
        .await
        .unwrap();
    assert_eq!(resp.status().as_u16(), 200);
    h.sys.drain_inbound().await.unwrap();
}

#[tokio::test]
async fn r12_4_a_number_not_on_whatsapp_gets_the_sms_once_and_never_both() {
    let h = spawn().await;
    let sms_account = h
        .ok(
            Method::POST,
            "/accounts",
            Some(
                json!({"name": "SMS", "provider": "twilio", "sender_id": SIM_TWILIO_SENDER,
                "token_ref": SIM_TWILIO_TOKEN_REF, "rate_limit": 10}),
            ),
        )
        .await["id"]
        .as_str()
        .unwrap()
        .to_owned();
    // Meta refuses this number at the send with 131026.
    h.simulator()
        .set_failure(REFUSED_AT_SEND, SimFailure::permanent());
    let c = h
        .ready_campaign_with(
            &[ON_WHATSAPP, REFUSED_AT_SEND, FAILED_LATER],
            json!({}),
            json!({"sms_fallback": {"account_id": sms_account, "message": "Hi {{1}}, code {{2}} (by SMS)"}}),
        )
        .await;
    common::launch(&h.api, &c).await;
    run_tick(&h).await;

    // Refused at the send: back in line to go by SMS, not failed.
    let e = entry(&h, &c, REFUSED_AT_SEND).await;
    assert_eq!(
        (e["state"].as_str(), e["reason"].as_str()),
        (Some("FRESH"), Some("not on WhatsApp: falling back to SMS")),
        "{e}"
    );
    // Accepted by WhatsApp, then refused by Meta's failed status: the same.
    let sent = h.simulator().sent();
    let later = sent
        .iter()
        .find(|s| s.to.ends_with(FAILED_LATER))
        .expect("WhatsApp took it");
    let e = entry(&h, &c, FAILED_LATER).await;
    assert_eq!(
        (e["state"].as_str(), e["delivered_at"].as_str()),
        (Some("FRESH"), None),
        "{e}"
    );
    // The same refusal again changes nothing.
    post_not_on_whatsapp(
        &h,
        &later.wamid,
        FAILED_LATER,
        later.callback_data.as_deref().unwrap(),
    )
    .await;

    // (The simulator's failures hold on every route: the number is fine for SMS.)
    h.simulator().clear_failures();
    // The sweeper puts them back in line; the next ticks send each its SMS, once.
    for _ in 0..3 {
        h.sys.sweeper.sweep().await.unwrap();
        run_tick(&h).await;
    }
    let n = sends(&h);
    for p in [REFUSED_AT_SEND, FAILED_LATER] {
        assert_eq!(
            n.get(&(SimProvider::Twilio, p.to_owned())),
            Some(&1),
            "one SMS to {p}: {n:?}"
        );
        let e = entry(&h, &c, p).await;
        assert_eq!(e["state"], "PENDING", "{e}");
        assert!(
            e["message_id"].is_null() || e["delivered_at"].is_string(),
            "{e}"
        );
    }
    assert_eq!(
        n.get(&(SimProvider::Twilio, ON_WHATSAPP.to_owned())),
        None,
        "never both"
    );
    assert_eq!(
        n.get(&(SimProvider::Meta, ON_WHATSAPP.to_owned())),
        Some(&1)
    );
    assert_eq!(
        n.get(&(SimProvider::Meta, REFUSED_AT_SEND.to_owned())),
        None,
        "Meta refused it"
    );
    let sms = h
        .simulator()
        .sent()
        .into_iter()
        .find(|s| s.provider == SimProvider::Twilio && s.to.ends_with(REFUSED_AT_SEND))
        .unwrap();
    assert_eq!(sms.params, ["Hi C, code K (by SMS)"]);
    // Delivered a second time, the fallback's send record sends nothing.
    let again = h
        .sys
        .sender
        .send_batch(vec![(
            "dup".into(),
            Ok(
                shared::domain::inbound::EntryRef::decode(sms.callback_data.as_deref().unwrap())
                    .unwrap()
                    .into(),
            ),
        )])
        .await;
    assert!(again.is_empty());
    // A late WhatsApp status of the refused attempt changes nothing either.
    post_not_on_whatsapp(
        &h,
        &later.wamid,
        FAILED_LATER,
        later.callback_data.as_deref().unwrap(),
    )
    .await;
    assert_eq!(entry(&h, &c, FAILED_LATER).await["state"], "PENDING");
    assert_eq!(
        sends(&h).get(&(SimProvider::Twilio, FAILED_LATER.to_owned())),
        Some(&1)
    );

    // Counted apart, and the counters still equal a recount.
    let stats = h
        .ok(Method::GET, &format!("/campaigns/{c}/stats"), None)
        .await;
    assert_eq!(stats["sms_fallback"], 2, "{stats}");
    assert_eq!(stats["sent"], 3, "{stats}");
    let camp = shared::repo::get_campaign(&*h.table, common::TENANT, &c)
        .await
        .unwrap()
        .unwrap();
    let entries = shared::repo::all_entries(&*h.table, &camp).await.unwrap();
    let recount: std::collections::BTreeMap<String, i64> = shared::domain::stats::recount(&entries)
        .into_iter()
        .map(|(k, v)| (k.to_owned(), v))
        .collect();
    let live: std::collections::BTreeMap<String, i64> =
        shared::repo::get_counters(&*h.table, common::TENANT, &c)
            .await
            .unwrap()
            .into_iter()
            .filter(|(_, v)| *v != 0)
            .collect();
    assert_eq!(live, recount);
}

#[tokio::test]
async fn r12_4_the_fallback_is_checked_naming_its_fields() {
    let h = Spawn::new(Arc::new(MemoryTable::new())).build();
    let sms_account = h
        .ok(
            Method::POST,
            "/accounts",
            Some(
                json!({"name": "SMS", "provider": "twilio", "sender_id": SIM_TWILIO_SENDER,
                "token_ref": SIM_TWILIO_TOKEN_REF}),
            ),
        )
        .await["id"]
        .as_str()
        .unwrap()
        .to_owned();
    let (_, list) = h
        .campaign_with_list(json!({}), &[ON_WHATSAPP], json!({}), json!({}))
        .await;
    let _ = list;
    let wa_account = h.ok(Method::GET, "/accounts", None).await["items"]
        .as_array()
        .unwrap()
        .iter()
        .find(|a| a["provider"] == "meta")
        .unwrap()["id"]
        .as_str()
        .unwrap()
        .to_owned();
    let body = |fallback: Value| {
        let mut b = common::campaign_body("x", &wa_account, "offer");
        b["sms_fallback"] = fallback;
        b
    };
    let field = |v: Value| v["field"].as_str().unwrap_or_default().to_owned();
    let (s, v) = h
        .call(
            Method::POST,
            "/campaigns",
            Some(body(json!({"account_id": wa_account, "message": "Hi"}))),
        )
        .await;
    assert_eq!(
        (s.as_u16(), field(v.clone())),
        (422, "sms_fallback.account_id".into()),
        "{v}"
    );
    let (s, v) = h
        .call(
            Method::POST,
            "/campaigns",
            Some(body(
                json!({"account_id": sms_account, "message": "x".repeat(1000)}),
            )),
        )
        .await;
    assert_eq!(
        (s.as_u16(), field(v.clone())),
        (422, "sms_fallback.message".into()),
        "{v}"
    );
    let (s, v) = h
        .call(
            Method::POST,
            "/campaigns",
            Some(body(json!({"account_id": "acc_nope", "message": "Hi"}))),
        )
        .await;
    assert_eq!(
        (s.as_u16(), field(v.clone())),
        (422, "sms_fallback.account_id".into()),
        "{v}"
    );
    let (s, v) = h
        .call(
            Method::POST,
            "/campaigns",
            Some(
                json!({"name": "s", "channel": "sms", "account_id": sms_account, "message": "Hi",
                "sms_fallback": {"account_id": sms_account, "message": "Hi"}}),
            ),
        )
        .await;
    assert_eq!(
        (s.as_u16(), field(v.clone())),
        (422, "sms_fallback".into()),
        "{v}"
    );
    let ok = h
        .ok(
            Method::POST,
            "/campaigns",
            Some(body(
                json!({"account_id": sms_account, "message": "Hi {{1}}"}),
            )),
        )
        .await;
    assert_eq!(ok["sms_fallback"]["account_id"], sms_account.as_str());
}

/// Review of issue 16: fallback SMS went out at the WhatsApp campaign's pace (20/s here),
/// counted as one unit each, whatever the SMS number allows. They must keep to the SMS
/// account's rate, in message parts.
#[tokio::test]
async fn r12_4_fallback_sms_keep_to_the_sms_numbers_rate() {
    let phones: Vec<String> = (0..12).map(|i| format!("9198123003{i:02}")).collect();
    let h = Spawn::new(Arc::new(MemoryTable::new()))
        .simulator(SimConfig {
            reply_percent: 0,
            not_on_whatsapp: phones.clone(),
            rate_limit_per_sec: None,
            ..SimConfig::default()
        })
        .serve_webhooks(true)
        .spawn()
        .await;
    let sms_account = h
        .ok(
            Method::POST,
            "/accounts",
            Some(
                json!({"name": "SMS", "provider": "twilio", "sender_id": SIM_TWILIO_SENDER,
                "token_ref": SIM_TWILIO_TOKEN_REF, "rate_limit": 1}),
            ),
        )
        .await["id"]
        .as_str()
        .unwrap()
        .to_owned();
    let refs: Vec<&str> = phones.iter().map(String::as_str).collect();
    let c = h
        .ready_campaign_with(
            &refs,
            json!({}),
            json!({"rate": 20, "sms_fallback": {"account_id": sms_account, "message": "Hi {{1}}, code {{2}} (by SMS)"}}),
        )
        .await;
    common::launch(&h.api, &c).await;
    run_tick(&h).await;
    for _ in 0..3 {
        h.sys.sweeper.sweep().await.unwrap();
        run_tick(&h).await;
    }
    let sms: Vec<_> = h
        .simulator()
        .sent()
        .into_iter()
        .filter(|s| s.provider == SimProvider::Twilio)
        .collect();
    assert_eq!(sms.len(), phones.len(), "every one fell back, once");
    let mut per_second: HashMap<i64, usize> = HashMap::new();
    for s in &sms {
        *per_second.entry(s.at.timestamp()).or_insert(0) += 1;
    }
    let most = per_second.values().max().copied().unwrap_or(0);
    assert_eq!(
        most, 1,
        "one part a second on the SMS number: {per_second:?}"
    );
}
