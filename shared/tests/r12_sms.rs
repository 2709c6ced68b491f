//! SMS campaigns through Twilio (issue 16, R12): the settings' checks, a campaign sent
//! end to end through the real Twilio adapter to the simulator's strict Twilio route,
//! its signed status callbacks and inbound SMS through the webhook route, replies, STOP,
//! Twilio's own opt-out refusal (21610), a contact whose values make the message too long,
//! and callbacks with a wrong signature (401, nothing changes).

use axum::http::{Method, StatusCode};
use chrono::Duration;
use serde_json::{json, Value};
use shared::domain::sms;
use shared::providers::twilio;
use std::sync::Arc;
use testkit::harness::{self as common, Spawn, Spawned, SIM_TWILIO_TOKEN_REF};
use testkit::memory::MemoryTable;
use testkit::simulator::{SimConfig, SimFailure, SimFailureKind, SimProvider, SIM_TWILIO_SENDER};

type H = Spawned;

const TICK: i64 = 60;
const DELIVERED: &str = "14155550101";
const UNDELIVERED: &str = "14155550102";
const STOPPED_AT_TWILIO: &str = "14155550103";
const LONG_VALUES: &str = "14155550104";
const REPLIES: &str = "14155550105";
const STOPPED_IN_CALLBACK: &str = "14155550106";
const UNREGISTERED: &str = "14155550107";

async fn spawn() -> H {
    Spawn::new(Arc::new(MemoryTable::new()))
        .simulator(SimConfig {
            reply_percent: 0,
            twilio_undelivered: vec![
                (UNDELIVERED.into(), 30003),
                (STOPPED_IN_CALLBACK.into(), 21610),
                (UNREGISTERED.into(), 30034),
            ],
            ..SimConfig::default()
        })
        .serve_webhooks(true)
        .spawn()
        .await
}

fn id_of(v: &Value) -> String {
    v["id"].as_str().unwrap().to_owned()
}

async fn twilio_account(h: &H) -> String {
    let body = json!({"name": "SMS", "provider": "twilio", "sender_id": SIM_TWILIO_SENDER,
        "token_ref": SIM_TWILIO_TOKEN_REF, "rate_limit": 10});
    id_of(&h.ok(Method::POST, "/accounts", Some(body)).await)
}

fn sms_campaign(account: &str, extra: Value) -> Value {
    common::merged(
        json!({"name": "sms spring", "channel": "sms", "account_id": account,
            "message": "Hi {{1}}, your code is {{2}}",
            "variables": [{"source": "contact_name"}, {"source": "field", "name": "code"}]}),
        extra,
    )
}

async fn run_tick(h: &H) {
    h.sys.dispatcher.tick().await.unwrap();
    for _ in 0..TICK {
        h.sys.drain_queue().await.unwrap();
        h.clock.advance(Duration::seconds(1));
    }
    h.sys.drain_queue().await.unwrap();
    h.simulator().idle().await;
}

async fn entry(h: &H, campaign: &str, phone: &str) -> Value {
    let v = h
        .ok(
            Method::GET,
            &format!("/campaigns/{campaign}/hopper/entries?limit=100"),
            None,
        )
        .await;
    let items = v["items"].as_array().unwrap();
    items
        .iter()
        .find(|e| e["phone"] == phone)
        .unwrap_or_else(|| panic!("no entry for {phone}: {v}"))
        .clone()
}

#[tokio::test]
async fn r12_1_sms_settings_are_checked_and_refused_naming_the_field() {
    let h = Spawn::new(Arc::new(MemoryTable::new())).build();
    let sms_account = twilio_account(&h).await;
    let wa_account = id_of(
        &h.ok(Method::POST, "/accounts", Some(common::account_body()))
            .await,
    );
    let h = &h;
    let refused = |v: Value| async move {
        let (s, body) = h.call(Method::POST, "/campaigns", Some(v)).await;
        assert_eq!(s, StatusCode::UNPROCESSABLE_ENTITY, "{body}");
        body["field"].as_str().unwrap_or_default().to_owned()
    };
    let long = "x".repeat(200);
    let f = refused(sms_campaign(
        &sms_account,
        json!({"message": long, "max_segments": 1}),
    ))
    .await;
    assert_eq!(f, "message");
    let f = refused(sms_campaign(&sms_account, json!({"max_segments": 0}))).await;
    assert_eq!(f, "max_segments");
    let f = refused(sms_campaign(
        &sms_account,
        json!({"message": "Hi {{1}} {{2}} {{3}}"}),
    ))
    .await;
    assert_eq!(f, "variables");
    let f = refused(sms_campaign(&sms_account, json!({"message": "Hi {{ 1 }}"}))).await;
    assert_eq!(f, "message");
    let f = refused(sms_campaign(&wa_account, json!({}))).await;
    assert_eq!(f, "account_id", "an SMS campaign on a WhatsApp account");
    let wa = common::campaign_body("wa", &sms_account, "offer");
    let f = refused(wa).await;
    assert_eq!(f, "account_id", "a WhatsApp campaign on an SMS account");
    // The default cap is 6 parts, and a valid SMS campaign is READY.
    let c = h
        .ok(
            Method::POST,
            "/campaigns",
            Some(sms_campaign(&sms_account, json!({}))),
        )
        .await;
    assert_eq!(
        (c["status"].as_str(), c["max_segments"].as_u64()),
        (Some("READY"), Some(6))
    );
    assert_eq!(sms::DEFAULT_MAX_SEGMENTS, 6);
}

#[tokio::test]
async fn r12_an_sms_campaign_runs_through_twilio_with_statuses_replies_and_opt_outs() {
    let h = spawn().await;
    let account = twilio_account(&h).await;
    let phones = [DELIVERED, UNDELIVERED, STOPPED_AT_TWILIO, REPLIES];
    let list = h.new_list(&phones).await;
    // A contact whose code makes its message longer than one part.
    let long_code = "K".repeat(170);
    h.ok(
        Method::POST,
        "/contacts",
        Some(json!([{"phone": LONG_VALUES, "name": "L", "fields": {"code": long_code}}])),
    )
    .await;
    h.ok(
        Method::POST,
        &format!("/lists/{list}/members"),
        Some(json!({"phones": [LONG_VALUES]})),
    )
    .await;
    // Twilio refuses this one: it texted STOP to the number before.
    h.simulator().set_failure(
        STOPPED_AT_TWILIO,
        SimFailure {
            code: Some(21610),
            ..SimFailure::new(SimFailureKind::Permanent)
        },
    );
    let c = id_of(
        &h.ok(
            Method::POST,
            "/campaigns",
            Some(sms_campaign(&account, json!({"max_segments": 1}))),
        )
        .await,
    );
    h.ok(
        Method::POST,
        &format!("/campaigns/{c}/lists"),
        Some(json!({ "list_id": list })),
    )
    .await;
    common::launch(&h.api, &c).await;
    run_tick(&h).await;
    h.sys.drain_inbound().await.unwrap();

    // What went out: one SMS each to the three sendable contacts, the text filled in.
    let sent: Vec<_> = h
        .simulator()
        .sent()
        .into_iter()
        .filter(|s| s.provider == SimProvider::Twilio)
        .collect();
    let mut to: Vec<_> = sent.iter().map(|s| s.to.clone()).collect();
    to.sort();
    assert_eq!(
        to,
        [
            format!("+{DELIVERED}"),
            format!("+{UNDELIVERED}"),
            format!("+{REPLIES}")
        ]
    );
    assert!(sent.iter().all(|s| s.params == ["Hi C, your code is K"]));
    assert!(sent.iter().all(|s| s.callback_data.is_some()));

    // Signed callbacks reached the entries.
    let e = entry(&h, &c, DELIVERED).await;
    assert_eq!(e["state"], "PENDING", "{e}");
    assert!(e["delivered_at"].is_string(), "{e}");
    let e = entry(&h, &c, UNDELIVERED).await;
    assert_eq!(e["state"], "FAILED", "{e}");
    assert!(e["reason"].as_str().unwrap().contains("30003"), "{e}");
    // Twilio's 21610: opted out, not failed, and on the tenant's opt-out list.
    let e = entry(&h, &c, STOPPED_AT_TWILIO).await;
    assert_eq!(
        (e["state"].as_str(), e["reason"].as_str()),
        (Some("BLOCK_LIST"), Some("opted out")),
        "{e}"
    );
    let o = h
        .ok(Method::GET, &format!("/opt-outs/{STOPPED_AT_TWILIO}"), None)
        .await;
    assert_eq!(o["source"], "provider", "{o}");
    // Too long for this contact: recorded with why, never sent.
    let e = entry(&h, &c, LONG_VALUES).await;
    assert_eq!(
        (e["state"].as_str(), e["reason"].as_str()),
        (Some("FAILED"), Some("message too long")),
        "{e}"
    );
    assert!(
        e["error"].as_str().unwrap().contains("takes 2 parts"),
        "{e}"
    );

    // Any inbound SMS within the timeout is the reply; STOP opts the contact out.
    h.simulator()
        .twilio_reply(REPLIES, "Yes please")
        .await
        .unwrap();
    // CANCEL is an opt-out on SMS (not among the tenant's WhatsApp words).
    let stop = h
        .simulator()
        .twilio_reply(DELIVERED, "Cancel")
        .await
        .unwrap();
    assert_eq!(stop.answered, Some(200), "{stop:?}");
    h.sys.drain_inbound().await.unwrap();
    let e = entry(&h, &c, REPLIES).await;
    assert!(e["replied_at"].is_string(), "{e}");
    let (s, o) = h
        .call(Method::GET, &format!("/opt-outs/{DELIVERED}"), None)
        .await;
    assert_eq!(s, StatusCode::OK, "{o}");
    assert_eq!(o["source"], "keyword", "{o}");
    let stats = h
        .ok(Method::GET, &format!("/campaigns/{c}/stats"), None)
        .await;
    assert_eq!(stats["sent"], 3, "{stats}");
    assert_eq!(stats["replied"], 1, "{stats}");
}

/// Review of issue 16: Twilio's 30xxx codes and a 21610 arrive in status callbacks, not
/// in the send's answer; classified with Meta's table they all failed the entry. A
/// callback's 21610 must opt the contact out, and a campaign-level code (30034, the
/// number's 10DLC registration) must pause the campaign instead of failing the rest of
/// the audience one by one.
#[tokio::test]
async fn r12_twilio_callback_codes_are_classified_as_twilios() {
    let h = spawn().await;
    let account = twilio_account(&h).await;
    let list = h.new_list(&[STOPPED_IN_CALLBACK, UNREGISTERED]).await;
    let c = id_of(
        &h.ok(
            Method::POST,
            "/campaigns",
            Some(sms_campaign(&account, json!({}))),
        )
        .await,
    );
    h.ok(
        Method::POST,
        &format!("/campaigns/{c}/lists"),
        Some(json!({ "list_id": list })),
    )
    .await;
    common::launch(&h.api, &c).await;
    run_tick(&h).await;
    h.sys.drain_inbound().await.unwrap();
    let e = entry(&h, &c, STOPPED_IN_CALLBACK).await;
    assert_eq!(
        (e["state"].as_str(), e["reason"].as_str()),
        (Some("BLOCK_LIST"), Some("opted out")),
        "{e}"
    );
    let o = h
        .ok(
            Method::GET,
            &format!("/opt-outs/{STOPPED_IN_CALLBACK}"),
            None,
        )
        .await;
    assert_eq!(o["source"], "provider", "{o}");
    let e = entry(&h, &c, UNREGISTERED).await;
    assert_eq!(e["state"], "FAILED", "{e}");
    let campaign = h.ok(Method::GET, &format!("/campaigns/{c}"), None).await;
    assert_eq!(campaign["status"], "PAUSED", "{campaign}");
    assert!(
        campaign["pause_reason"].as_str().unwrap().contains("30034"),
        "{campaign}"
    );
}

#[tokio::test]
async fn r12_twilio_callbacks_with_a_wrong_signature_are_401_and_change_nothing() {
    let h = spawn().await;
    let account = twilio_account(&h).await;
    let list = h.new_list(&[DELIVERED]).await;
    let c = id_of(
        &h.ok(
            Method::POST,
            "/campaigns",
            Some(sms_campaign(&account, json!({}))),
        )
        .await,
    );
    h.ok(
        Method::POST,
        &format!("/campaigns/{c}/lists"),
        Some(json!({ "list_id": list })),
    )
    .await;
    common::launch(&h.api, &c).await;
    run_tick(&h).await;
    h.sys.drain_inbound().await.unwrap();
    let before = entry(&h, &c, DELIVERED).await;
    let hook = h
        .webhook_url
        .as_deref()
        .unwrap()
        .trim_end_matches("/webhooks/meta")
        .to_owned();
    let url = format!("{hook}/webhooks/twilio/{}/{account}", common::TENANT);
    let (_, number) = SIM_TWILIO_SENDER.split_once(':').unwrap();
    let params = vec![
        ("Body".to_owned(), "Yes please".to_owned()),
        ("From".to_owned(), format!("+{DELIVERED}")),
        ("MessageSid".to_owned(), format!("SM{:032x}", 77)),
        ("To".to_owned(), number.to_owned()),
    ];
    let body = form_urlencoded::Serializer::new(String::new())
        .extend_pairs(params.iter().map(|(k, v)| (k.as_str(), v.as_str())))
        .finish();
    let post = |sig: String, url: String| {
        let body = body.clone();
        async move {
            reqwest::Client::new()
                .post(url)
                .header("content-type", "application/x-www-form-urlencoded")
                .header(twilio::SIGNATURE_HEADER, sig)
                .body(body)
                .send()
                .await
                .unwrap()
                .status()
        }
    };
    let token = testkit::simulator::SIM_TWILIO_AUTH_TOKEN;
    // Signed with another token, over another URL, or for another tenant's path: 401.
    let wrong = twilio::signature("not-the-token", &url, &params);
    assert_eq!(post(wrong, url.clone()).await, 401);
    let elsewhere = twilio::signature(token, "https://x.example/y", &params);
    assert_eq!(post(elsewhere, url.clone()).await, 401);
    let other_tenant = format!("{hook}/webhooks/twilio/globex/{account}");
    let sig = twilio::signature(token, &other_tenant, &params);
    assert_eq!(post(sig, other_tenant).await, 401);
    assert_eq!(post(String::new(), url.clone()).await, 401, "no signature");
    h.sys.drain_inbound().await.unwrap();
    let after = entry(&h, &c, DELIVERED).await;
    assert_eq!(after, before, "nothing changed");
    // Rightly signed, the same reply is taken.
    let sig = twilio::signature(token, &url, &params);
    assert_eq!(post(sig, url.clone()).await, 200);
    h.sys.drain_inbound().await.unwrap();
    let e = entry(&h, &c, DELIVERED).await;
    assert!(e["replied_at"].is_string(), "{e}");
}

/// Pacing counts parts: two campaigns on one number whose messages take two parts each
/// share its 4 parts per second, so at most two messages leave in any second, and the
/// number is kept busy (the sends take as long as the parts say, no longer).
#[tokio::test]
async fn r12_pacing_counts_message_parts_per_number_across_its_campaigns() {
    let h = spawn().await;
    let body = json!({"name": "SMS", "provider": "twilio", "sender_id": SIM_TWILIO_SENDER,
        "token_ref": SIM_TWILIO_TOKEN_REF, "rate_limit": 4});
    let account = id_of(&h.ok(Method::POST, "/accounts", Some(body)).await);
    // 200 GSM-7 characters: two parts of 153.
    let two_parts = format!("{{{{1}}}} {}", "x".repeat(195));
    let mut campaigns = Vec::new();
    for k in 0..2 {
        let phones: Vec<String> = (0..8).map(|i| format!("1415555{k}{i:03}")).collect();
        let phones: Vec<&str> = phones.iter().map(String::as_str).collect();
        let list = h.new_list(&phones).await;
        let c = id_of(
            &h.ok(
                Method::POST,
                "/campaigns",
                Some(
                    json!({"name": format!("sms {k}"), "channel": "sms", "account_id": account,
                    "message": two_parts, "variables": [{"source": "contact_name"}], "rate": 100}),
                ),
            )
            .await,
        );
        h.ok(
            Method::POST,
            &format!("/campaigns/{c}/lists"),
            Some(json!({ "list_id": list })),
        )
        .await;
        common::launch(&h.api, &c).await;
        campaigns.push(c);
    }
    run_tick(&h).await;
    let sent = h.simulator().sent();
    assert_eq!(
        sent.len(),
        16,
        "every message of both campaigns went out in the tick"
    );
    assert!(sent.iter().all(|s| sms::parts(&s.params[0]).segments == 2));
    let per_second = h.simulator().sent_per_second();
    assert!(
        per_second.values().all(|n| *n <= 2),
        "at most 4 parts (2 messages) a second: {per_second:?}"
    );
    let first = *per_second.keys().next().unwrap();
    let last = *per_second.keys().last().unwrap();
    assert!(
        last - first <= 8,
        "16 two-part messages at 4 parts/s take 8 s: {per_second:?}"
    );
}

/// AWS End User Messaging SMS: sends signed with the deployment's role from a granted
/// number, delivery events and two-way messages through the inbound queue, and AWS's own
/// opt-out list: a contact that texted STOP and was then taken off the tenant's list is
/// refused by AWS and recorded opted out (not failed), the tenant's list left alone.
#[tokio::test]
async fn r12_an_sms_campaign_runs_through_aws_end_user_messaging_sms() {
    use testkit::harness::SIM_AWS_SMS_GRANT_REF;
    use testkit::simulator::SIM_AWS_SMS_NUMBERS;
    let h = spawn().await;
    let body = json!({"name": "AWS SMS", "provider": "aws_sms", "sender_id": SIM_AWS_SMS_NUMBERS[0],
        "token_ref": SIM_AWS_SMS_GRANT_REF, "rate_limit": 10});
    let account = id_of(&h.ok(Method::POST, "/accounts", Some(body)).await);
    let list = h.new_list(&[DELIVERED, REPLIES]).await;
    let first = id_of(
        &h.ok(
            Method::POST,
            "/campaigns",
            Some(sms_campaign(&account, json!({}))),
        )
        .await,
    );
    h.ok(
        Method::POST,
        &format!("/campaigns/{first}/lists"),
        Some(json!({ "list_id": list })),
    )
    .await;
    common::launch(&h.api, &first).await;
    run_tick(&h).await;
    h.sys.drain_inbound().await.unwrap();
    let sent: Vec<_> = h
        .simulator()
        .sent()
        .into_iter()
        .filter(|s| s.provider == SimProvider::AwsSms)
        .collect();
    assert_eq!(sent.len(), 2, "{}", entry(&h, &first, DELIVERED).await);
    assert!(sent
        .iter()
        .all(|s| s.phone_number_id == SIM_AWS_SMS_NUMBERS[0]));
    assert!(sent.iter().all(|s| s.params == ["Hi C, your code is K"]));
    // Under the deployment's configuration set and protect configuration.
    assert!(
        sent.iter().all(
            |s| s.options.get("ProtectConfigurationId").map(String::as_str)
                == Some(testkit::simulator::SIM_AWS_PROTECT_CONFIGURATION)
                && s.options.contains_key("ConfigurationSetName")
        ),
        "{:?}",
        sent[0].options
    );
    let e = entry(&h, &first, DELIVERED).await;
    assert_eq!(e["state"], "PENDING", "{e}");
    assert!(
        e["delivered_at"].is_string(),
        "the configuration set's events came back: {e}"
    );
    // Two-way: a reply, and a STOP (onto both opt-out lists).
    h.simulator()
        .aws_sms_reply(REPLIES, "Sounds good")
        .await
        .unwrap();
    h.simulator()
        .aws_sms_reply(DELIVERED, "STOP")
        .await
        .unwrap();
    h.sys.drain_inbound().await.unwrap();
    assert!(entry(&h, &first, REPLIES).await["replied_at"].is_string());
    let (s, _) = h
        .call(Method::GET, &format!("/opt-outs/{DELIVERED}"), None)
        .await;
    assert_eq!(s, StatusCode::OK);
    let stats = h
        .ok(Method::GET, &format!("/campaigns/{first}/stats"), None)
        .await;
    assert!(
        stats["read"].is_null() && stats["read_pct"].is_null(),
        "{stats}"
    );

    // Taken off the tenant's list, the contact is still on AWS's: AWS refuses the send.
    let (s, _) = h
        .call(Method::DELETE, &format!("/opt-outs/{DELIVERED}"), None)
        .await;
    assert!(s.is_success());
    h.clock.advance(Duration::days(2));
    let second = id_of(
        &h.ok(
            Method::POST,
            "/campaigns",
            Some(sms_campaign(&account, json!({"name": "second"}))),
        )
        .await,
    );
    h.ok(
        Method::POST,
        &format!("/campaigns/{second}/lists"),
        Some(json!({ "list_id": list })),
    )
    .await;
    common::launch(&h.api, &second).await;
    run_tick(&h).await;
    let e = entry(&h, &second, DELIVERED).await;
    assert_eq!(
        (e["state"].as_str(), e["reason"].as_str()),
        (Some("BLOCK_LIST"), Some("opted out")),
        "{e}"
    );
    // AWS's opt-out list may be shared by other tenants' numbers: its refusal is no
    // choice made to this tenant, whose list stays as its operator left it (review of
    // issue 16: it used to put the contact back on it).
    let (s, o) = h
        .call(Method::GET, &format!("/opt-outs/{DELIVERED}"), None)
        .await;
    assert_eq!(s, StatusCode::NOT_FOUND, "{o}");
    let aws_sends = h
        .simulator()
        .sent()
        .iter()
        .filter(|s| s.provider == SimProvider::AwsSms && s.to.ends_with(DELIVERED))
        .count();
    assert_eq!(aws_sends, 1, "the refused send never went out");
}

/// The cost of an SMS campaign is its contacts' message parts priced per part and
/// destination country from the SMS price table, which names its source and date.
#[tokio::test]
async fn r12_the_cost_estimate_prices_each_contacts_parts_by_country() {
    let h = Spawn::new(Arc::new(MemoryTable::new())).build();
    let account = twilio_account(&h).await;
    let list = h.new_list(&[DELIVERED, REPLIES]).await;
    // An Indian number whose code makes its message two parts.
    let india = "919812345678";
    h.ok(
        Method::POST,
        "/contacts",
        Some(json!([{"phone": india, "name": "L", "fields": {"code": "K".repeat(170)}}])),
    )
    .await;
    h.ok(
        Method::POST,
        &format!("/lists/{list}/members"),
        Some(json!({"phones": [india]})),
    )
    .await;
    let c = id_of(
        &h.ok(
            Method::POST,
            "/campaigns",
            Some(sms_campaign(&account, json!({}))),
        )
        .await,
    );
    h.ok(
        Method::POST,
        &format!("/campaigns/{c}/lists"),
        Some(json!({ "list_id": list })),
    )
    .await;
    let e = h
        .ok(Method::GET, &format!("/campaigns/{c}/cost"), None)
        .await;
    assert_eq!(
        (e["unit"].as_str(), e["category"].as_str()),
        (Some("message_part"), Some("SMS_PART")),
        "{e}"
    );
    assert!(e.get("template").is_none(), "{e}");
    assert_eq!(e["price_table"]["as_of"], "2026-12-01");
    assert!(e["price_table"]["source"]
        .as_str()
        .unwrap()
        .contains("AWS End User Messaging SMS"));
    // Two US contacts of one part at 0.00883, one Indian contact of two at 0.0025.
    assert_eq!(e["target"]["messages"], 4, "{e}");
    let cost = e["target"]["cost"].as_f64().unwrap();
    assert!(
        (cost - (2.0 * 0.00883 + 2.0 * 0.0025)).abs() < 1e-9,
        "{cost}"
    );
    let us = e["countries"]
        .as_array()
        .unwrap()
        .iter()
        .find(|c| c["country"] == "US")
        .unwrap();
    assert_eq!(
        (us["target"].as_i64(), us["price"].as_f64()),
        (Some(2), Some(0.00883)),
        "{us}"
    );
}

/// An SMS HELP is answered with the tenant's text from the number it came to, once per
/// message even when Twilio delivers the webhook again; without a text, nothing is sent.
#[tokio::test]
async fn r12_help_is_answered_once_with_the_tenants_text() {
    let h = spawn().await;
    let account = twilio_account(&h).await;
    let list = h.new_list(&[DELIVERED, REPLIES]).await;
    let c = id_of(
        &h.ok(
            Method::POST,
            "/campaigns",
            Some(sms_campaign(&account, json!({}))),
        )
        .await,
    );
    h.ok(
        Method::POST,
        &format!("/campaigns/{c}/lists"),
        Some(json!({ "list_id": list })),
    )
    .await;
    common::launch(&h.api, &c).await;
    run_tick(&h).await;
    h.sys.drain_inbound().await.unwrap();
    let to = |phone: &str| {
        h.simulator()
            .sent()
            .into_iter()
            .filter(|s| s.to.ends_with(phone))
            .map(|s| s.params[0].clone())
            .collect::<Vec<_>>()
    };
    // No text set: HELP is not answered here (nor taken as a reply).
    h.simulator().twilio_reply(REPLIES, "help").await.unwrap();
    h.sys.drain_inbound().await.unwrap();
    assert_eq!(to(REPLIES).len(), 1, "only the campaign's SMS");
    assert!(entry(&h, &c, REPLIES).await["replied_at"].is_null());

    let help = "Acme Bistro: call 555-0100. Reply STOP to opt out.";
    h.ok(Method::PUT, "/tenant", Some(json!({"sms_help_text": help})))
        .await;
    let asked = h.simulator().twilio_reply(DELIVERED, "HELP").await.unwrap();
    h.sys.drain_inbound().await.unwrap();
    assert_eq!(to(DELIVERED), ["Hi C, your code is K", help]);
    // Twilio delivers the same webhook again: no second answer.
    let base = h
        .webhook_url
        .as_deref()
        .unwrap()
        .trim_end_matches("/webhooks/meta")
        .to_owned();
    let url = format!("{base}/webhooks/twilio/{}/{account}", common::TENANT);
    let params = twilio::form_params(asked.body.as_bytes());
    let token = testkit::simulator::SIM_TWILIO_AUTH_TOKEN;
    let status = reqwest::Client::new()
        .post(&url)
        .header("content-type", "application/x-www-form-urlencoded")
        .header(
            twilio::SIGNATURE_HEADER,
            twilio::signature(token, &url, &params),
        )
        .body(asked.body.clone())
        .send()
        .await
        .unwrap()
        .status();
    assert_eq!(status, 200);
    h.sys.drain_inbound().await.unwrap();
    assert_eq!(to(DELIVERED).len(), 2, "answered once");
}
