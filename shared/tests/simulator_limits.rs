//! The simulator's throughput limit (R4.8: 80 messages/s per sender by default, Meta's
//! `130429` beyond it) and its configurable failures (R4.7: numbers that fail
//! permanently, temporarily or with campaign-level codes), driven over loopback HTTP and
//! read back through the real Meta and Kaleyra adapters.

use async_trait::async_trait;
use chrono::{DateTime, Duration, Utc};
use serde_json::{json, Value};
use shared::domain::account::{Account, Provider};
use shared::domain::outcome::{classify_kaleyra, classify_meta, FailureClass, SendFailure};
use shared::domain::phone::PhoneNumber;
use shared::ports::{
    Accepted, MessagingProvider, OutboundTemplate, PortError, PortResult, Secrets,
};
use shared::providers::kaleyra::KaleyraProvider;
use shared::providers::meta::MetaProvider;
use std::collections::{BTreeMap, HashMap};
use std::sync::Arc;
use testkit::memory::ManualClock;
use testkit::simulator::{
    SimConfig, SimFailure, SimFailureKind, SimProvider, Simulator, META_RATE_LIMIT_CODE,
    META_RATE_LIMIT_MESSAGE, SIM_DEFAULT_RATE_LIMIT,
};

const PHONE_NUMBER_ID: &str = "106540352242922";
const OTHER_PHONE_NUMBER_ID: &str = "106540352242923";
const KALEYRA_SENDER: &str = "HXIN1700000000IN:919800000000";
const T0: i64 = 1_751_400_000;
const INVALID_REASON: &str = "'To' number invalid or WhatsApp account does not exist";

struct TestSecrets;

#[async_trait]
impl Secrets for TestSecrets {
    async fn resolve(&self, reference: &str) -> PortResult<String> {
        match reference {
            "env:SIM_TOKEN" => Ok("test-token".into()),
            "env:KALEYRA_KEY" => Ok("test-kaleyra-key".into()),
            other => Err(PortError::Refused(format!("{other} not set"))),
        }
    }
}

struct Env {
    sim: Simulator,
    clock: Arc<ManualClock>,
    meta: MetaProvider,
    kaleyra: KaleyraProvider,
    http: reqwest::Client,
}

/// A simulator on a clock frozen at `T0` (plus `offset_ms`), no webhooks, nobody replies.
async fn env_at(cfg: SimConfig, offset_ms: i64) -> Env {
    let clock = Arc::new(ManualClock::frozen(
        DateTime::<Utc>::from_timestamp(T0, 0).unwrap() + Duration::milliseconds(offset_ms),
    ));
    let sim = Simulator::start(
        SimConfig {
            reply_percent: 0,
            ..cfg
        },
        clock.clone(),
    )
    .await
    .unwrap();
    Env {
        meta: MetaProvider::new(sim.base_url(), "v23.0", Arc::new(TestSecrets)),
        kaleyra: KaleyraProvider::new(sim.base_url(), Arc::new(TestSecrets)),
        http: reqwest::Client::builder().no_proxy().build().unwrap(),
        sim,
        clock,
    }
}

async fn env(cfg: SimConfig) -> Env {
    env_at(cfg, 0).await
}

fn meta_account(phone_number_id: &str) -> Account {
    Account {
        marketing_messages: false,
        id: "acc_1".into(),
        tenant: "t1".into(),
        name: "Main".into(),
        provider: Provider::Meta,
        sender_id: phone_number_id.into(),
        token_ref: "env:SIM_TOKEN".into(),
        rate_limit: 80,
        messaging_tier: None,
        created_at: Utc::now(),
        portfolio_id: None,
        caller_ids: Vec::new(),
        max_concurrent_calls: None,
    }
}

fn kaleyra_account() -> Account {
    Account {
        marketing_messages: false,
        id: "acc_k".into(),
        tenant: "t1".into(),
        name: "Kaleyra".into(),
        provider: Provider::Kaleyra,
        sender_id: KALEYRA_SENDER.into(),
        token_ref: "env:KALEYRA_KEY".into(),
        rate_limit: 20,
        messaging_tier: None,
        created_at: Utc::now(),
        portfolio_id: None,
        caller_ids: Vec::new(),
        max_concurrent_calls: None,
    }
}

/// The `i`th test contact, `919812300000 + i`.
fn phone(i: usize) -> String {
    format!("9198123{i:05}")
}

fn template(to: &str) -> OutboundTemplate {
    OutboundTemplate {
        marketing_messages: false,
        to: PhoneNumber::parse(to).unwrap(),
        template: "diwali_offer".into(),
        language: "en".into(),
        params: vec!["Asha".into()],
        quick_reply_payloads: Vec::new(),
        callback_data: String::new(),
        header: None,
        url_suffix: None,
    }
}

impl Env {
    async fn send_meta(&self, pnid: &str, to: &str) -> Result<Accepted, SendFailure> {
        self.meta.send(&meta_account(pnid), &template(to)).await
    }

    async fn send_kaleyra(&self, to: &str) -> Result<Accepted, SendFailure> {
        self.kaleyra.send(&kaleyra_account(), &template(to)).await
    }

    /// A raw Cloud API send; the HTTP status and the JSON answer.
    async fn raw_meta(&self, pnid: &str, to: &str) -> (u16, Value) {
        let r = self
            .http
            .post(format!("{}/v23.0/{pnid}/messages", self.sim.base_url()))
            .bearer_auth("test-token")
            .json(
                &json!({"messaging_product": "whatsapp", "recipient_type": "individual", "to": to, "type": "template",
                "template": {"name": "diwali_offer", "language": {"code": "en"}}}),
            )
            .send()
            .await
            .unwrap();
        (r.status().as_u16(), r.json().await.unwrap())
    }

    /// A raw Kaleyra v2 send; the HTTP status and the JSON answer.
    async fn raw_kaleyra(&self, to: &str) -> (u16, Value) {
        let (sid, from) = KALEYRA_SENDER.split_once(':').unwrap();
        let r = self
            .http
            .post(format!(
                "{}/v2/{sid}/whatsapp/{from}/messages",
                self.sim.base_url()
            ))
            .header("api-key", "test-kaleyra-key")
            .json(
                &json!({"messaging_object": {"messaging_product": "whatsapp", "to": to,
                "type": "template",
                "template": {"name": "diwali_offer", "language": {"code": "en"}}}}),
            )
            .send()
            .await
            .unwrap();
        (r.status().as_u16(), r.json().await.unwrap())
    }

    /// A call to a control route under `/sim`; the status and the JSON answer.
    async fn control(
        &self,
        method: reqwest::Method,
        path: &str,
        body: Option<Value>,
    ) -> (u16, Value) {
        let mut req = self
            .http
            .request(method, format!("{}/sim{path}", self.sim.base_url()));
        if let Some(b) = body {
            req = req.json(&b);
        }
        let r = req.send().await.unwrap();
        (r.status().as_u16(), r.json().await.unwrap_or(Value::Null))
    }
}

fn failure_parts(f: &SendFailure) -> (FailureClass, Option<i64>) {
    (f.class, f.code)
}

// ---- R4.8: throughput limit -------------------------------------------------------------

#[tokio::test]
async fn r4_8_simulator_answers_130429_beyond_its_limit_per_second() {
    // 400 ms into the second: the window is the whole clock second, not 1 s from here.
    let e = env_at(SimConfig::default(), 400).await;
    assert_eq!(e.sim.rate_limit(), Some(SIM_DEFAULT_RATE_LIMIT));
    assert_eq!(SIM_DEFAULT_RATE_LIMIT, 80);
    for i in 0..80 {
        e.send_meta(PHONE_NUMBER_ID, &phone(i)).await.unwrap();
    }
    assert!(
        e.sim.throttled().is_empty(),
        "no throttling up to the limit"
    );

    // The 81st send in the same clock second: Meta's 130429, classified temporary.
    let f = e.send_meta(PHONE_NUMBER_ID, &phone(80)).await.unwrap_err();
    assert_eq!(
        failure_parts(&f),
        (FailureClass::Temporary, Some(META_RATE_LIMIT_CODE))
    );
    assert_eq!(f.reason, META_RATE_LIMIT_MESSAGE);
    // The exact answer: HTTP 400 and Meta's error envelope.
    let (status, body) = e.raw_meta(PHONE_NUMBER_ID, &phone(81)).await;
    assert_eq!(status, 400, "{body}");
    assert_eq!(body["error"]["code"], 130429);
    assert_eq!(body["error"]["message"], "(#130429) Rate limit hit");
    assert_eq!(body["error"]["type"], "OAuthException");
    assert_eq!(body["error"]["error_data"]["messaging_product"], "whatsapp");

    // Another sender has its own budget in the same second.
    e.send_meta(OTHER_PHONE_NUMBER_ID, &phone(82))
        .await
        .unwrap();

    // Throttled sends are not recorded as sent, but counted apart.
    assert_eq!(e.sim.sent().len(), 81);
    let throttled = e.sim.throttled();
    assert_eq!(throttled.len(), 2);
    assert!(throttled.iter().all(|t| t.provider == SimProvider::Meta
        && t.phone_number_id == PHONE_NUMBER_ID
        && t.limit == 80
        && t.at.timestamp() == T0));
    assert_eq!(throttled[0].to, phone(80));

    // 600 ms later is the next clock second: accepted again.
    e.clock.advance(Duration::milliseconds(600));
    e.send_meta(PHONE_NUMBER_ID, &phone(80)).await.unwrap();
    assert_eq!(
        e.sim.sent_per_second_from(PHONE_NUMBER_ID),
        BTreeMap::from([(T0, 80), (T0 + 1, 1)])
    );
    assert_eq!(
        e.sim.sent_per_second(),
        BTreeMap::from([(T0, 81), (T0 + 1, 1)])
    );
    assert_eq!(e.sim.throttled_per_second(), BTreeMap::from([(T0, 2)]));

    // The control route shows the same.
    let (s, listed) = e.control(reqwest::Method::GET, "/throttled", None).await;
    assert_eq!((s, listed.as_array().map(Vec::len)), (200, Some(2)));
}

#[tokio::test]
async fn r4_8_sends_paced_at_the_limit_are_never_throttled() {
    let e = env(SimConfig::default()).await;
    // 80 a second for three seconds of the clock.
    for second in 0..3 {
        for i in 0..80 {
            e.send_meta(PHONE_NUMBER_ID, &phone(second * 80 + i))
                .await
                .unwrap();
        }
        e.clock.advance(Duration::seconds(1));
    }
    assert!(e.sim.throttled().is_empty(), "0 throttling errors");
    assert_eq!(
        e.sim.sent_per_second(),
        BTreeMap::from([(T0, 80), (T0 + 1, 80), (T0 + 2, 80)])
    );
}

#[tokio::test]
async fn r4_8_simulator_rate_limit_is_configurable_and_can_be_lifted() {
    let e = env(SimConfig {
        rate_limit_per_sec: Some(3),
        ..SimConfig::default()
    })
    .await;
    for i in 0..3 {
        e.send_meta(PHONE_NUMBER_ID, &phone(i)).await.unwrap();
    }
    let f = e.send_meta(PHONE_NUMBER_ID, &phone(3)).await.unwrap_err();
    assert_eq!(failure_parts(&f), (FailureClass::Temporary, Some(130429)));

    // Lifted at run time.
    e.sim.set_rate_limit(None);
    for i in 3..10 {
        e.send_meta(PHONE_NUMBER_ID, &phone(i)).await.unwrap();
    }
    // Set over the control route: 10 already counted in this second, limit 12.
    let (s, b) = e
        .control(
            reqwest::Method::POST,
            "/rate_limit",
            Some(json!({"per_second": 12})),
        )
        .await;
    assert_eq!((s, b["per_second"].as_u64()), (200, Some(12)));
    assert_eq!(e.sim.rate_limit(), Some(12));
    for i in 10..12 {
        e.send_meta(PHONE_NUMBER_ID, &phone(i)).await.unwrap();
    }
    assert!(e.send_meta(PHONE_NUMBER_ID, &phone(12)).await.is_err());
    assert_eq!(e.sim.sent().len(), 12);
    assert_eq!(e.sim.throttled().len(), 2);

    let (s, b) = e
        .control(
            reqwest::Method::POST,
            "/rate_limit",
            Some(json!({"per_second": null})),
        )
        .await;
    assert_eq!((s, b["per_second"].clone()), (200, Value::Null));
    assert_eq!(e.sim.rate_limit(), None);
    let (s, _) = e
        .control(reqwest::Method::POST, "/rate_limit", Some(json!({})))
        .await;
    assert_eq!(s, 400, "per_second must be given");
    let (s, _) = e
        .control(
            reqwest::Method::POST,
            "/rate_limit",
            Some(json!({"per_second": -1})),
        )
        .await;
    assert_eq!(s, 400);
    let (_, b) = e.control(reqwest::Method::GET, "/rate_limit", None).await;
    assert_eq!(b, json!({"per_second": null}));
}

#[tokio::test]
async fn r4_8_kaleyra_route_answers_130429_beyond_the_limit_per_sender() {
    let e = env(SimConfig {
        rate_limit_per_sec: Some(2),
        ..SimConfig::default()
    })
    .await;
    e.send_kaleyra(&phone(0)).await.unwrap();
    e.send_kaleyra(&phone(1)).await.unwrap();
    // Meta's 130429 passed through by Kaleyra: temporary, with the code.
    let f = e.send_kaleyra(&phone(2)).await.unwrap_err();
    assert_eq!(failure_parts(&f), (FailureClass::Temporary, Some(130429)));
    let (status, body) = e.raw_kaleyra(&phone(3)).await;
    assert_eq!(status, 429, "{body}");
    assert_eq!(body["meta_object"]["error"]["code"], 130429);
    assert_eq!(
        body["meta_object"]["error"]["message"],
        "(#130429) Rate limit hit"
    );
    assert_eq!(body["data"], json!([]));

    let throttled = e.sim.throttled();
    assert_eq!(throttled.len(), 2);
    assert!(throttled
        .iter()
        .all(|t| t.provider == SimProvider::Kaleyra && t.phone_number_id == KALEYRA_SENDER));
    assert_eq!(e.sim.sent().len(), 2);

    e.clock.advance(Duration::seconds(1));
    e.send_kaleyra(&phone(2)).await.unwrap();
    assert_eq!(
        e.sim.sent_per_second_from(KALEYRA_SENDER),
        BTreeMap::from([(T0, 2), (T0 + 1, 1)])
    );
}

// ---- R4.7: configured failures ----------------------------------------------------------

#[test]
fn r4_7_default_failure_codes_classify_as_their_kind() {
    use SimFailureKind::*;
    for (kind, class) in [
        (Permanent, FailureClass::Permanent),
        (Temporary, FailureClass::Temporary),
        (Campaign, FailureClass::Campaign),
    ] {
        assert_eq!(classify_meta(kind.default_meta_code()), class, "{kind:?}");
        assert_eq!(
            classify_kaleyra(kind.default_kaleyra_code()),
            class,
            "{kind:?}"
        );
    }
}

#[tokio::test]
async fn r4_7_simulator_fails_configured_numbers_by_kind() {
    let e = env(SimConfig::default()).await;
    for (i, kind) in [(1, "permanent"), (2, "temporary"), (3, "campaign")] {
        let (s, b) = e
            .control(
                reqwest::Method::POST,
                "/failures",
                Some(json!({"phone": format!("+{}", phone(i)), "kind": kind})),
            )
            .await;
        assert_eq!(
            (s, b["phone"].as_str()),
            (200, Some(phone(i).as_str())),
            "{b}"
        );
    }
    // Explicit codes override the kind's default.
    e.sim
        .set_failure(&phone(4), SimFailure::temporary().with_code(131016));
    let (s, _) = e
        .control(
            reqwest::Method::POST,
            "/failures",
            Some(json!({"phone": phone(5), "kind": "campaign", "code": 190})),
        )
        .await;
    assert_eq!(s, 200);

    let expected = [
        (1, FailureClass::Permanent, 131026, "Message Undeliverable"),
        (
            2,
            FailureClass::Temporary,
            131000,
            "(#131000) Something went wrong",
        ),
        (
            3,
            FailureClass::Campaign,
            132001,
            "(#132001) Template name does not exist in the translation",
        ),
        (
            4,
            FailureClass::Temporary,
            131016,
            "(#131016) Service unavailable",
        ),
        (
            5,
            FailureClass::Campaign,
            190,
            "(#190) Access token has expired",
        ),
    ];
    // A failure applies to every send to the number until cleared.
    for _ in 0..2 {
        for (i, class, code, reason) in expected {
            let f = e.send_meta(PHONE_NUMBER_ID, &phone(i)).await.unwrap_err();
            assert_eq!(
                (f.class, f.code, f.reason.as_str()),
                (class, Some(code), reason),
                "phone {i}"
            );
        }
    }
    // The exact answers (HTTP status as Meta gives each code).
    for (i, status, code, message) in [
        (1, 400, 131026, "(#131026) Message undeliverable"),
        (2, 500, 131000, "(#131000) Something went wrong"),
        (
            3,
            404,
            132001,
            "(#132001) Template name does not exist in the translation",
        ),
        (4, 503, 131016, "(#131016) Service unavailable"),
        (5, 401, 190, "(#190) Access token has expired"),
    ] {
        let (s, b) = e.raw_meta(PHONE_NUMBER_ID, &phone(i)).await;
        assert_eq!(
            (
                s,
                b["error"]["code"].as_i64(),
                b["error"]["message"].as_str()
            ),
            (status, Some(code), Some(message)),
            "{b}"
        );
        assert_eq!(b["error"]["type"], "OAuthException");
        assert_eq!(b["error"]["error_data"]["messaging_product"], "whatsapp");
    }
    // Others are unaffected; failed sends are not recorded as sent.
    e.send_meta(PHONE_NUMBER_ID, &phone(0)).await.unwrap();
    assert_eq!(e.sim.sent().len(), 1);
    assert!(e.sim.throttled().is_empty());

    let (s, listed) = e.control(reqwest::Method::GET, "/failures", None).await;
    assert_eq!(s, 200);
    assert_eq!(listed[phone(1)]["kind"], "permanent");
    assert_eq!(listed[phone(5)]["code"], 190);

    // Clearing one, then all.
    let (s, b) = e
        .control(
            reqwest::Method::DELETE,
            &format!("/failures?phone={}", phone(1)),
            None,
        )
        .await;
    assert_eq!((s, b["cleared"].as_u64()), (200, Some(1)));
    e.send_meta(PHONE_NUMBER_ID, &phone(1)).await.unwrap();
    let (s, b) = e.control(reqwest::Method::DELETE, "/failures", None).await;
    assert_eq!((s, b["cleared"].as_u64()), (200, Some(4)));
    for i in 2..=5 {
        e.send_meta(PHONE_NUMBER_ID, &phone(i)).await.unwrap();
    }
    assert!(e.sim.failures().is_empty());
}

#[tokio::test]
async fn r4_7_kaleyra_route_fails_configured_numbers_by_kind() {
    let e = env(SimConfig::default()).await;
    e.sim.set_failure(&phone(1), SimFailure::permanent());
    e.sim.set_failure(&phone(2), SimFailure::temporary());
    e.sim.set_failure(&phone(3), SimFailure::campaign());
    // A Meta code is passed through inside meta_object; a Kaleyra code is Kaleyra's.
    e.sim
        .set_failure(&phone(4), SimFailure::permanent().with_code(131050));
    e.sim
        .set_failure(&phone(5), SimFailure::campaign().with_kaleyra_code("E110"));
    for (i, class, code, reason) in [
        (1, FailureClass::Permanent, None, INVALID_REASON),
        (
            2,
            FailureClass::Temporary,
            None,
            "Internal server error. (WA500)",
        ),
        (
            3,
            FailureClass::Campaign,
            None,
            "Unauthorized or template not approved. (WA401)",
        ),
        (
            4,
            // Issue 18: the contact's marketing stop, an outcome of its own.
            FailureClass::MarketingOptOut,
            Some(131050),
            "stopped marketing messages",
        ),
        (
            5,
            FailureClass::Campaign,
            None,
            "Insufficient balance. (E110)",
        ),
    ] {
        let f = e.send_kaleyra(&phone(i)).await.unwrap_err();
        assert_eq!(
            (f.class, f.code, f.reason.as_str()),
            (class, code, reason),
            "phone {i}"
        );
    }
    let (s, b) = e.raw_kaleyra(&phone(1)).await;
    assert_eq!(
        (s, b["code"].as_str(), b["error"]["code"].as_str()),
        (400, Some("E413"), Some("E413")),
        "{b}"
    );
    let (s, b) = e.raw_kaleyra(&phone(2)).await;
    assert_eq!((s, b["code"].as_str()), (500, Some("WA500")), "{b}");
    let (s, b) = e.raw_kaleyra(&phone(3)).await;
    assert_eq!((s, b["code"].as_str()), (401, Some("WA401")), "{b}");

    // The same numbers fail on the Meta route with Meta's codes.
    let f = e.send_meta(PHONE_NUMBER_ID, &phone(1)).await.unwrap_err();
    assert_eq!(failure_parts(&f), (FailureClass::Permanent, Some(131026)));
    assert!(e.sim.sent().is_empty());

    e.sim.clear_failures();
    for i in 1..=5 {
        e.send_kaleyra(&phone(i)).await.unwrap();
    }
}

#[tokio::test]
async fn r4_7_temporary_failure_can_strike_only_the_first_sends() {
    let e = env(SimConfig::default()).await;
    let (s, b) = e
        .control(
            reqwest::Method::POST,
            "/failures",
            Some(json!({"phone": phone(7), "kind": "temporary", "times": 2})),
        )
        .await;
    assert_eq!((s, b["times"].as_u64()), (200, Some(2)), "{b}");
    for _ in 0..2 {
        let f = e.send_meta(PHONE_NUMBER_ID, &phone(7)).await.unwrap_err();
        assert_eq!(failure_parts(&f), (FailureClass::Temporary, Some(131000)));
    }
    e.send_meta(PHONE_NUMBER_ID, &phone(7)).await.unwrap();
    e.send_kaleyra(&phone(7)).await.unwrap();
    assert!(e.sim.failures().is_empty(), "spent failures are forgotten");
}

#[tokio::test]
async fn r4_7_failures_from_the_config_apply_from_the_start() {
    let e = env(SimConfig {
        failures: HashMap::from([(
            format!("+{} {}", &phone(9)[..2], &phone(9)[2..]),
            SimFailure::campaign(),
        )]),
        ..SimConfig::default()
    })
    .await;
    assert_eq!(
        e.sim.failures().keys().cloned().collect::<Vec<_>>(),
        vec![phone(9)]
    );
    let f = e.send_meta(PHONE_NUMBER_ID, &phone(9)).await.unwrap_err();
    assert_eq!(failure_parts(&f), (FailureClass::Campaign, Some(132001)));
    let f = e.send_kaleyra(&phone(9)).await.unwrap_err();
    assert_eq!(f.class, FailureClass::Campaign);
}

#[tokio::test]
async fn r4_7_failure_route_rejects_malformed_requests() {
    let e = env(SimConfig::default()).await;
    for body in [
        json!({"phone": phone(1), "kind": "sometimes"}),
        json!({"phone": phone(1)}),
        json!({"kind": "permanent"}),
        json!({"phone": "abc", "kind": "permanent"}),
        json!({"phone": phone(1), "kind": "permanent", "code": "x"}),
    ] {
        let (s, b) = e
            .control(reqwest::Method::POST, "/failures", Some(body.clone()))
            .await;
        assert_eq!(s, 400, "{body} -> {b}");
        assert!(b["error"].is_string(), "{b}");
    }
    assert!(e.sim.failures().is_empty());
}

#[tokio::test]
async fn r4_7_throughput_limit_comes_before_configured_failures() {
    let e = env(SimConfig {
        rate_limit_per_sec: Some(1),
        ..SimConfig::default()
    })
    .await;
    e.sim
        .set_failure(&phone(1), SimFailure::permanent().times(1));
    e.send_meta(PHONE_NUMBER_ID, &phone(0)).await.unwrap();
    // Over the limit: 130429, and the one-time failure is not spent.
    let f = e.send_meta(PHONE_NUMBER_ID, &phone(1)).await.unwrap_err();
    assert_eq!(f.code, Some(130429));
    e.clock.advance(Duration::seconds(1));
    let f = e.send_meta(PHONE_NUMBER_ID, &phone(1)).await.unwrap_err();
    assert_eq!(failure_parts(&f), (FailureClass::Permanent, Some(131026)));
    // A failed send does not use the sender's budget.
    e.send_meta(PHONE_NUMBER_ID, &phone(1)).await.unwrap();
}

// ---- issue 14: upgraded numbers and provider latency --------------------------------------

/// An upgraded number has its own limit (Meta: 1,000/s); the others keep the default.
#[tokio::test]
async fn an_upgraded_number_has_its_own_limit_and_the_others_keep_the_default() {
    let upgraded = "106540352242999";
    let e = env(SimConfig {
        rate_limit_per_sec: Some(3),
        number_rate_limits: HashMap::from([(upgraded.to_owned(), 5)]),
        ..SimConfig::default()
    })
    .await;
    for i in 0..5 {
        e.send_meta(upgraded, &phone(i)).await.unwrap();
    }
    let f = e.send_meta(upgraded, &phone(5)).await.unwrap_err();
    assert_eq!(failure_parts(&f), (FailureClass::Temporary, Some(130429)));
    for i in 0..3 {
        e.send_meta(PHONE_NUMBER_ID, &phone(i)).await.unwrap();
    }
    let f = e.send_meta(PHONE_NUMBER_ID, &phone(3)).await.unwrap_err();
    assert_eq!(failure_parts(&f), (FailureClass::Temporary, Some(130429)));
    let limits: Vec<u32> = e.sim.throttled().iter().map(|t| t.limit).collect();
    assert_eq!(limits, vec![5, 3]);
}

/// The latency draws follow the configured median and 99th percentile (the draws are a
/// function of their number, so this is exact, not timed).
#[test]
fn latency_draws_have_the_configured_median_and_tail() {
    let l = testkit::simulator::Latency::CLOUD_API;
    let mut draws: Vec<f64> = (1..=20_000).map(|n| l.sample(n).as_secs_f64()).collect();
    draws.sort_by(f64::total_cmp);
    let at = |q: f64| draws[((draws.len() as f64) * q) as usize];
    assert!((at(0.50) - 0.250).abs() < 0.015, "p50 {}", at(0.50));
    assert!((at(0.99) - 1.5).abs() < 0.15, "p99 {}", at(0.99));
    assert!(draws.iter().all(|d| *d > 0.0 && *d <= 15.0));
}

/// Each send route answers no sooner than the configured latency allows.
#[tokio::test]
async fn with_latency_every_send_waits_for_its_draw() {
    let latency = testkit::simulator::Latency {
        p50: std::time::Duration::from_millis(40),
        p99: std::time::Duration::from_millis(41),
    };
    let e = env(SimConfig {
        latency: Some(latency),
        ..SimConfig::default()
    })
    .await;
    let started = std::time::Instant::now();
    e.send_meta(PHONE_NUMBER_ID, &phone(0)).await.unwrap();
    e.send_kaleyra(&phone(1)).await.unwrap();
    // Two draws of at least ~39 ms each: a lower bound, never an upper one.
    assert!(started.elapsed() >= std::time::Duration::from_millis(75));
}
