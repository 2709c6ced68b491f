//! The real `MetaProvider` against the WhatsApp simulator, with a webhook receiver that
//! checks signatures and parses like the webhook function does.

use testkit::harness as common;

use async_trait::async_trait;
use axum::body::Bytes;
use axum::extract::State;
use axum::http::{HeaderMap, StatusCode};
use axum::routing::post;
use axum::Router;
use serde_json::{json, Value};
use shared::domain::account::{Account, Provider};
use shared::domain::inbound::{EntryRef, Inbound, InboundMessage, StatusKind, StatusUpdate};
use shared::domain::outcome::FailureClass;
use shared::domain::phone::PhoneNumber;
use shared::ports::{Clock, MessagingProvider, OutboundTemplate, PortError, PortResult, Secrets};
use shared::providers::meta::{parse_webhook, verify_signature, MetaProvider};
use std::sync::{Arc, Mutex};
use std::time::Duration;
use testkit::memory::ManualClock;
use testkit::simulator::{will_reply, ReplyKind, SimConfig, Simulator, WebhookKind};

const PHONE_NUMBER_ID: &str = "106540352242922";
const PHONE: &str = "919812345678";

struct TestSecrets;

#[async_trait]
impl Secrets for TestSecrets {
    async fn resolve(&self, reference: &str) -> PortResult<String> {
        match reference {
            "env:SIM_TOKEN" => Ok("test-token".into()),
            "env:WRONG_TOKEN" => Ok("not-the-token".into()),
            other => Err(PortError::Refused(format!("{other} not set"))),
        }
    }
}

/// What the receiver accepted, and how many posts it refused.
#[derive(Default)]
struct Received {
    inbound: Vec<Inbound>,
    rejected: usize,
}

#[derive(Clone)]
struct Receiver {
    url: String,
    got: Arc<Mutex<Received>>,
}

impl Receiver {
    fn inbound(&self) -> Vec<Inbound> {
        self.got.lock().unwrap().inbound.clone()
    }
    fn rejected(&self) -> usize {
        self.got.lock().unwrap().rejected
    }
    fn statuses(&self) -> Vec<StatusUpdate> {
        self.inbound()
            .into_iter()
            .filter_map(|i| match i {
                Inbound::Status(s) => Some(s),
                _ => None,
            })
            .collect()
    }
    fn messages(&self) -> Vec<InboundMessage> {
        self.inbound()
            .into_iter()
            .filter_map(|i| match i {
                Inbound::Message(m) => Some(m),
                _ => None,
            })
            .collect()
    }
}

/// The receiver's app secret and what it got.
type ReceiverState = (Arc<Vec<u8>>, Arc<Mutex<Received>>);

async fn receive(
    State((secret, got)): State<ReceiverState>,
    headers: HeaderMap,
    body: Bytes,
) -> StatusCode {
    let sig = headers
        .get("x-hub-signature-256")
        .and_then(|h| h.to_str().ok());
    if !verify_signature(&secret, &body, sig) {
        got.lock().unwrap().rejected += 1;
        return StatusCode::UNAUTHORIZED;
    }
    match parse_webhook(&body) {
        Ok(items) => {
            got.lock().unwrap().inbound.extend(items);
            StatusCode::OK
        }
        Err(_) => StatusCode::BAD_REQUEST,
    }
}

async fn start_receiver(secret: &str) -> Receiver {
    let got = Arc::new(Mutex::new(Received::default()));
    let app = Router::new()
        .route("/webhook", post(receive))
        .with_state((Arc::new(secret.as_bytes().to_vec()), got.clone()));
    Receiver {
        url: format!("{}/webhook", common::serve(app).await),
        got,
    }
}

fn clock() -> Arc<dyn Clock> {
    Arc::new(ManualClock::frozen(
        chrono::DateTime::from_timestamp(1_751_400_000, 0).unwrap(),
    ))
}

async fn setup(cfg: SimConfig) -> (Simulator, Receiver, MetaProvider) {
    let receiver = start_receiver(&cfg.app_secret).await;
    let sim = Simulator::start(cfg, clock()).await.unwrap();
    sim.set_webhook_url(receiver.url.clone());
    let provider = MetaProvider::new(sim.base_url(), "v23.0", Arc::new(TestSecrets));
    (sim, receiver, provider)
}

fn account(token_ref: &str) -> Account {
    Account {
        marketing_messages: false,
        id: "acc_1".into(),
        tenant: "t1".into(),
        name: "Main".into(),
        provider: Provider::Meta,
        sender_id: PHONE_NUMBER_ID.into(),
        token_ref: token_ref.into(),
        rate_limit: 80,
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

fn template(phone: &str, payloads: &[&str]) -> OutboundTemplate {
    OutboundTemplate {
        marketing_messages: false,
        to: PhoneNumber::parse(phone).unwrap(),
        template: "diwali_offer".into(),
        language: "en".into(),
        params: vec!["Asha".into(), "20%".into()],
        quick_reply_payloads: payloads.iter().map(|s| s.to_string()).collect(),
        callback_data: entry_ref(phone).encode(),
        header: None,
        url_suffix: None,
    }
}

/// Sends the button-less template to `PHONE` from the account the simulator knows; the
/// wamid.
async fn send_to_phone(provider: &MetaProvider) -> String {
    provider
        .send(&account("env:SIM_TOKEN"), &template(PHONE, &[]))
        .await
        .unwrap()
        .message_id
}

/// A client that reaches the loopback servers directly.
fn http_client() -> reqwest::Client {
    reqwest::Client::builder().no_proxy().build().unwrap()
}

/// GETs `url`; the JSON answer.
async fn get_json(http: &reqwest::Client, url: String) -> Value {
    http.get(url).send().await.unwrap().json().await.unwrap()
}

fn cfg(reply_percent: u8) -> SimConfig {
    SimConfig {
        reply_percent,
        ..SimConfig::default()
    }
}

#[tokio::test]
async fn meta_adapter_sends_template_over_http_to_simulator() {
    let (sim, receiver, provider) = setup(cfg(0)).await;
    let accepted = provider
        .send(&account("env:SIM_TOKEN"), &template(PHONE, &["YES|cmp_42"]))
        .await
        .unwrap();
    // Issue 18: Meta's `message_status` on the answer is read.
    assert_eq!(accepted.message_status.as_deref(), Some("accepted"));
    let wamid = accepted.message_id;
    assert!(wamid.starts_with("wamid.SIM"), "{wamid}");
    sim.idle().await;
    assert_eq!(receiver.statuses().len(), 3);

    let sent = sim.sent();
    assert_eq!(sent.len(), 1);
    let s = &sent[0];
    assert_eq!(
        (
            s.wamid.as_str(),
            s.phone_number_id.as_str(),
            s.version.as_str()
        ),
        (wamid.as_str(), PHONE_NUMBER_ID, "v23.0")
    );
    assert_eq!(
        (s.to.as_str(), s.template.as_str(), s.language.as_deref()),
        (PHONE, "diwali_offer", Some("en"))
    );
    assert_eq!(s.params, vec!["Asha", "20%"]);
    assert_eq!(s.quick_reply_payloads, vec!["YES|cmp_42"]);
    assert_eq!(
        s.callback_data.as_deref(),
        Some(entry_ref(PHONE).encode().as_str())
    );
    assert_eq!(s.at.timestamp(), 1_751_400_000);
}

#[tokio::test]
async fn r6_1_simulator_posts_sent_delivered_read_with_the_entry() {
    let (sim, receiver, provider) = setup(cfg(0)).await;
    let wamid = send_to_phone(&provider).await;
    sim.idle().await;
    assert_eq!(sim.pending_webhooks(), 0);

    let statuses = receiver.statuses();
    let kinds: Vec<_> = statuses.iter().map(|s| s.status.clone()).collect();
    assert_eq!(
        kinds,
        vec![StatusKind::Sent, StatusKind::Delivered, StatusKind::Read]
    );
    for s in &statuses {
        assert_eq!(s.message_id, wamid);
        assert_eq!(s.entry, Some(entry_ref(PHONE)));
        assert_eq!(s.at.timestamp(), 1_751_400_000);
    }
    assert!(
        receiver.messages().is_empty(),
        "reply_percent 0 never replies"
    );
    let hooks = sim.webhooks();
    assert_eq!(
        hooks.iter().map(|w| w.kind).collect::<Vec<_>>(),
        vec![WebhookKind::Sent, WebhookKind::Delivered, WebhookKind::Read]
    );
    assert!(hooks
        .iter()
        .all(|w| w.answered == Some(200) && w.accepted() && w.phone == PHONE));
}

#[tokio::test]
async fn r7_3_simulator_webhooks_are_signed_and_parse() {
    let (sim, receiver, provider) = setup(cfg(100)).await;
    send_to_phone(&provider).await;
    sim.idle().await;
    assert_eq!(receiver.rejected(), 0);
    assert_eq!(receiver.inbound().len(), 4, "three statuses and a reply");
    for w in sim.webhooks() {
        let parsed = parse_webhook(w.body.as_bytes()).unwrap();
        assert_eq!(parsed.len(), 1, "{}", w.body);
    }

    // A receiver holding another secret refuses every post, and the simulator records it.
    let other = start_receiver("another-secret").await;
    sim.set_webhook_url(other.url.clone());
    send_to_phone(&provider).await;
    sim.idle().await;
    assert_eq!(other.rejected(), 4);
    assert!(other.inbound().is_empty());
    let refused: Vec<_> = sim.webhooks().into_iter().skip(4).collect();
    assert_eq!(refused.len(), 4);
    assert!(refused
        .iter()
        .all(|w| w.answered == Some(401) && !w.accepted()));
}

#[tokio::test]
async fn r5_2_simulated_quick_reply_tap_carries_payload_and_context() {
    let (sim, receiver, provider) = setup(cfg(100)).await;
    let wamid = provider
        .send(
            &account("env:SIM_TOKEN"),
            &template(PHONE, &["YES|cmp_42", "STOP|cmp_42"]),
        )
        .await
        .unwrap()
        .message_id;
    sim.idle().await;
    let msgs = receiver.messages();
    assert_eq!(msgs.len(), 1);
    let m = &msgs[0];
    assert_eq!(m.button.as_deref(), Some("YES|cmp_42"));
    assert_eq!(m.text.as_deref(), Some("YES|cmp_42"));
    assert_eq!(m.context_id.as_deref(), Some(wamid.as_str()));
    assert_eq!(
        (m.sender_id.as_str(), m.from.as_str()),
        (PHONE_NUMBER_ID, PHONE)
    );
    assert_eq!(
        sim.webhooks().last().unwrap().kind,
        WebhookKind::ReplyButton
    );
}

#[tokio::test]
async fn r5_2_simulated_text_reply_without_buttons() {
    let (sim, receiver, provider) = setup(cfg(100)).await;
    send_to_phone(&provider).await;
    sim.idle().await;
    let msgs = receiver.messages();
    assert_eq!(msgs.len(), 1);
    assert_eq!(msgs[0].text.as_deref(), Some("Yes please"));
    assert_eq!(
        (msgs[0].button.as_deref(), msgs[0].context_id.as_deref()),
        (None, None)
    );
}

#[tokio::test]
async fn r8_4_reply_choice_is_deterministic_per_phone() {
    let phones: Vec<String> = (0..200).map(|i| format!("9198120{i:05}")).collect();
    let yes = phones.iter().filter(|p| will_reply(p, 50)).count();
    assert!((60..=140).contains(&yes), "{yes} of 200 reply at 50%");
    for p in &phones {
        assert_eq!(will_reply(p, 50), will_reply(p, 50));
        assert!(!will_reply(p, 0) && will_reply(p, 100));
    }

    // The simulator follows the same choice.
    let (sim, receiver, provider) = setup(cfg(50)).await;
    let acc = account("env:SIM_TOKEN");
    let sample = &phones[..20];
    for p in sample {
        provider.send(&acc, &template(p, &[])).await.unwrap();
    }
    sim.idle().await;
    let mut repliers: Vec<String> = receiver
        .messages()
        .iter()
        .map(|m| m.from.to_string())
        .collect();
    repliers.sort();
    let expected: Vec<String> = sample
        .iter()
        .filter(|p| will_reply(p, 50))
        .cloned()
        .collect();
    assert_eq!(repliers, expected);
}

#[tokio::test]
async fn r7_2_wrong_token_is_a_campaign_failure() {
    let (sim, _receiver, provider) = setup(cfg(0)).await;
    let f = provider
        .send(&account("env:WRONG_TOKEN"), &template(PHONE, &[]))
        .await
        .unwrap_err();
    assert_eq!((f.class, f.code), (FailureClass::Campaign, Some(190)));
    assert!(!f.reason.contains("not-the-token"));
    let f = provider
        .send(&account("env:UNSET"), &template(PHONE, &[]))
        .await
        .unwrap_err();
    assert_eq!(
        (f.class, f.reason.as_str()),
        (FailureClass::Campaign, "credentials unavailable: env:UNSET")
    );
    assert!(sim.sent().is_empty());
    sim.idle().await;
    assert!(sim.webhooks().is_empty());
}

#[tokio::test]
async fn simulator_rejects_malformed_sends_like_meta() {
    let sim = Simulator::start(SimConfig::default(), clock())
        .await
        .unwrap();
    let http = http_client();
    let url = format!("{}/v23.0/{PHONE_NUMBER_ID}/messages", sim.base_url());
    for body in [
        json!({"to": PHONE, "type": "template", "template": {"name": "x"}}),
        json!({"messaging_product": "whatsapp", "type": "template", "template": {"name": "x"}}),
        json!({"messaging_product": "whatsapp", "to": PHONE, "type": "text", "text": {"body": "hi"}}),
        json!({"messaging_product": "whatsapp", "to": PHONE, "type": "template", "template": {}}),
    ] {
        let r = http
            .post(&url)
            .bearer_auth("test-token")
            .json(&body)
            .send()
            .await
            .unwrap();
        assert_eq!(r.status().as_u16(), 400, "{body}");
        let v: Value = r.json().await.unwrap();
        assert_eq!(v["error"]["code"], 100, "{v}");
    }
    let r = http.post(&url).json(&json!({})).send().await.unwrap();
    assert_eq!(r.status().as_u16(), 401);
    assert_eq!(r.json::<Value>().await.unwrap()["error"]["code"], 190);
    assert!(sim.sent().is_empty());
}

#[tokio::test]
async fn simulator_filters_phone_number_ids_when_asked() {
    let cfg = SimConfig {
        phone_number_id_filter: Some("999".into()),
        ..SimConfig::default()
    };
    let (sim, _receiver, provider) = setup(cfg).await;
    let f = provider
        .send(&account("env:SIM_TOKEN"), &template(PHONE, &[]))
        .await
        .unwrap_err();
    assert_eq!((f.class, f.code), (FailureClass::Campaign, Some(100)));
    assert!(sim.sent().is_empty());
}

#[tokio::test]
async fn r8_5_posted_text_reply_arrives_as_inbound_message() {
    let (sim, receiver, provider) = setup(cfg(0)).await;
    let wamid = send_to_phone(&provider).await;
    sim.idle().await;

    let http = http_client();
    let r = http
        .post(format!("{}/sim/reply", sim.base_url()))
        .json(&json!({"phone": "+91 98123 45678", "text": "hello there"}))
        .send()
        .await
        .unwrap();
    assert_eq!(r.status().as_u16(), 200);
    let posted: Value = r.json().await.unwrap();
    assert_eq!(posted["answered"], 200, "{posted}");
    assert_eq!(posted["kind"], "reply_text");

    let msgs = receiver.messages();
    assert_eq!(msgs.len(), 1);
    assert_eq!(msgs[0].text.as_deref(), Some("hello there"));
    assert_eq!(
        msgs[0].context_id.as_deref(),
        Some(wamid.as_str()),
        "defaults to the last wamid sent"
    );
    assert_eq!(
        (msgs[0].sender_id.as_str(), msgs[0].from.as_str()),
        (PHONE_NUMBER_ID, PHONE)
    );
    assert_eq!(posted["message_id"], msgs[0].message_id.as_str());

    // Explicit context, a button, through the Rust API.
    let rec = sim
        .post_reply_in_context(
            PHONE,
            ReplyKind::Button("STOP|cmp_42".into()),
            Some("wamid.OTHER"),
        )
        .await
        .unwrap();
    assert!(rec.accepted());
    let rec = sim
        .post_reply("447700900123", ReplyKind::Text("who is this".into()))
        .await
        .unwrap();
    assert!(rec.accepted());
    let msgs = receiver.messages();
    assert_eq!(msgs.len(), 3);
    assert_eq!(
        (msgs[1].button.as_deref(), msgs[1].context_id.as_deref()),
        (Some("STOP|cmp_42"), Some("wamid.OTHER"))
    );
    assert_eq!(
        (msgs[2].from.as_str(), msgs[2].context_id.as_deref()),
        ("447700900123", None)
    );

    // Bad requests.
    for body in [
        json!({"phone": PHONE}),
        json!({"phone": PHONE, "text": "a", "button": "b"}),
        json!({"phone": "abc", "text": "a"}),
    ] {
        let r = http
            .post(format!("{}/sim/reply", sim.base_url()))
            .json(&body)
            .send()
            .await
            .unwrap();
        assert_eq!(r.status().as_u16(), 400, "{body}");
    }
}

#[tokio::test]
async fn r8_5_control_routes_show_what_the_simulator_received_and_sent() {
    let (sim, _receiver, provider) = setup(cfg(0)).await;
    let wamid = send_to_phone(&provider).await;
    sim.idle().await;
    let http = http_client();
    let page = get_json(&http, format!("{}/sim/messages", sim.base_url())).await;
    assert!(page["next_cursor"].is_null(), "{page}");
    let messages = page["items"].clone();
    assert_eq!(messages.as_array().unwrap().len(), 1);
    assert_eq!(messages[0]["wamid"], wamid.as_str());
    assert_eq!(messages[0]["template"], "diwali_offer");
    let hooks = get_json(&http, format!("{}/sim/webhooks", sim.base_url())).await;
    let hooks = hooks.as_array().unwrap();
    assert_eq!(hooks.len(), 3);
    assert!(hooks.iter().all(|h| h["answered"] == 200));

    // Mounted in another server.
    let app = Router::new().nest("/local/sim", sim.control_router());
    let base = common::serve(app).await;
    let nested = get_json(&http, format!("{base}/local/sim/messages")).await;
    assert_eq!(nested, page);
}

#[tokio::test]
async fn simulator_without_webhook_url_posts_nothing() {
    let sim = Simulator::start(cfg(100), clock()).await.unwrap();
    let provider = MetaProvider::new(sim.base_url(), "v23.0", Arc::new(TestSecrets));
    send_to_phone(&provider).await;
    sim.idle().await;
    assert!(sim.webhooks().is_empty());
    assert!(sim
        .post_reply(PHONE, ReplyKind::Text("hi".into()))
        .await
        .is_err());
}

#[tokio::test]
async fn status_delay_spaces_webhooks_and_idle_waits_for_them() {
    let cfg = SimConfig {
        status_delay: Duration::from_millis(100),
        reply_percent: 0,
        ..SimConfig::default()
    };
    let (sim, receiver, provider) = setup(cfg).await;
    let started = std::time::Instant::now();
    send_to_phone(&provider).await;
    assert!(receiver.statuses().len() < 3);
    sim.idle().await;
    assert!(started.elapsed() >= Duration::from_millis(300));
    assert_eq!(receiver.statuses().len(), 3);
}

/// Issue 19, item 6: the simulator's record of sends is filtered by tenant, campaign and
/// phone (read from the callback data each send carries) and paged, so a scenario picks
/// out its own sends without parsing every one.
#[tokio::test]
async fn the_simulator_record_filters_by_tenant_campaign_and_phone_and_pages() {
    let (sim, _receiver, provider) = setup(cfg(0)).await;
    let sends = [
        ("t1", "cmp_a", "919812340001"),
        ("t1", "cmp_a", "919812340002"),
        ("t1", "cmp_b", "919812340001"),
        ("t2", "cmp_c", "919812340001"),
        ("t1", "cmp_a", "919812340003"),
    ];
    for (tenant, campaign, phone) in sends {
        let mut t = template(phone, &[]);
        t.callback_data = EntryRef {
            tenant: tenant.into(),
            campaign_id: campaign.into(),
            shard: 0,
            phone: PhoneNumber::parse(phone).unwrap(),
        }
        .encode();
        provider.send(&account("env:SIM_TOKEN"), &t).await.unwrap();
    }
    let http = http_client();
    let base = sim.base_url();
    let get = |q: &str| get_json(&http, format!("{base}/sim/messages?{q}"));
    let tos = |v: &Value| -> Vec<(String, String)> {
        v["items"]
            .as_array()
            .unwrap()
            .iter()
            .map(|i| {
                (
                    i["campaign_id"].as_str().unwrap().to_owned(),
                    i["to"].as_str().unwrap().to_owned(),
                )
            })
            .collect()
    };
    let t1 = get("tenant=t1").await;
    assert_eq!(tos(&t1).len(), 4, "{t1}");
    assert!(t1["items"]
        .as_array()
        .unwrap()
        .iter()
        .all(|i| i["tenant"] == "t1"));
    let a = get("campaign=cmp_a&phone=%2B91%2098123%2040002").await;
    assert_eq!(
        tos(&a),
        [("cmp_a".to_owned(), "919812340002".to_owned())],
        "{a}"
    );
    let one = get("phone=919812340001").await;
    assert_eq!(tos(&one).len(), 3, "{one}");

    // Pages of two, following the cursor, give every send of campaign a once, in order.
    let mut seen = Vec::new();
    let mut cursor = String::new();
    loop {
        let page = get(&format!("campaign=cmp_a&limit=2{cursor}")).await;
        let items = tos(&page);
        assert!(items.len() <= 2, "{page}");
        seen.extend(items);
        match page["next_cursor"].as_str() {
            Some(c) => cursor = format!("&cursor={c}"),
            None => break,
        }
    }
    let phones: Vec<&str> = seen.iter().map(|(_, p)| p.as_str()).collect();
    assert_eq!(phones, ["919812340001", "919812340002", "919812340003"]);

    for (q, field) in [
        ("limit=0", "limit"),
        ("limit=x", "limit"),
        ("cursor=99", "cursor"),
    ] {
        let r = http
            .get(format!("{base}/sim/messages?{q}"))
            .send()
            .await
            .unwrap();
        assert_eq!(r.status().as_u16(), 400, "{q}");
        let v: Value = r.json().await.unwrap();
        assert_eq!(v["field"], field, "{q}: {v}");
    }
}
