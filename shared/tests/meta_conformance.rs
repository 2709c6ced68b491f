//! Issue 18, conformance: what the Meta adapter sends is what Meta accepts, judged by Meta's
//! own OpenAPI description of the Cloud API (`testkit/meta-openapi/`, read by
//! `testkit::meta_schema` with its three documented relaxations), and the simulator is as
//! strict: a body that fails the schema gets Meta's error 100 naming the field.

use serde_json::{json, Value};
use shared::domain::inbound::EntryRef;
use shared::domain::phone::PhoneNumber;
use shared::domain::template::{MediaHeader, MediaKind, ProviderButton, TemplateStatus, UrlSuffix};
use shared::ports::OutboundTemplate;
use shared::providers::meta::template_body;
use shared::providers::meta_templates::interpret_page;
use testkit::memory::ManualClock;
use testkit::meta_schema::{self, violations};
use testkit::simulator::{SimConfig, Simulator};

/// A small deterministic generator (SplitMix64): the same bodies on every run.
struct Gen(u64);

impl Gen {
    fn next(&mut self) -> u64 {
        self.0 = self.0.wrapping_add(0x9E37_79B9_7F4A_7C15);
        let mut z = self.0;
        z = (z ^ (z >> 30)).wrapping_mul(0xBF58_476D_1CE4_E5B9);
        z = (z ^ (z >> 27)).wrapping_mul(0x94D0_49BB_1331_11EB);
        z ^ (z >> 31)
    }
    fn below(&mut self, n: usize) -> usize {
        (self.next() % n as u64) as usize
    }
    fn pick<'a>(&mut self, from: &[&'a str]) -> &'a str {
        from[self.below(from.len())]
    }
}

const TEXTS: [&str; 8] = [
    "Asha",
    "20% off",
    "SPRING-2026",
    "Müller & Söhne",
    "नमस्ते",
    "line one, line two",
    "https://example.com/o/12345?ref=spring",
    "🎉 ¡Hola!",
];

/// One of the template messages the engine sends: any number of body parameters, none to
/// three quick replies or a URL button with a variable suffix, no header or an image, video or document (with or without a file
/// name), callback data or none.
fn outbound(g: &mut Gen, i: usize) -> OutboundTemplate {
    let phone = format!("91981{:07}", g.next() % 10_000_000);
    let header = match g.below(5) {
        0 => Some(MediaHeader {
            kind: MediaKind::Image,
            url: Some("https://cdn.example.com/banner.jpg".into()),
            filename: None,
        }),
        1 => Some(MediaHeader {
            kind: MediaKind::Video,
            url: Some("https://cdn.example.com/spot.mp4".into()),
            filename: None,
        }),
        2 => Some(MediaHeader {
            kind: MediaKind::Document,
            url: Some("https://cdn.example.com/terms.pdf".into()),
            filename: (g.below(2) == 0).then(|| "terms.pdf".to_owned()),
        }),
        _ => None,
    };
    let params = (0..g.below(11))
        .map(|_| g.pick(&TEXTS).to_owned())
        .collect();
    let quick_reply_payloads: Vec<String> = (0..g.below(4))
        .map(|k| format!("{}_{k}", g.pick(&["Yes", "No", "Call me", "STOP"])))
        .collect();
    // Call-to-action templates (never with quick replies) may end a URL button's link
    // with a per-recipient suffix; the URL button comes first or after a call button.
    let url_suffix = (quick_reply_payloads.is_empty() && g.below(2) == 0).then(|| UrlSuffix {
        index: g.below(2),
        text: g
            .pick(&["K7", "order/12345", "a1b2-c3d4", "spring?src=wa"])
            .to_owned(),
    });
    let callback_data = if g.below(4) == 0 {
        String::new()
    } else {
        EntryRef {
            tenant: "acme".into(),
            campaign_id: format!("cmp_{i}"),
            shard: (i % 16) as u16,
            phone: PhoneNumber::parse(&phone).unwrap(),
        }
        .encode_attempt(1 + g.below(3) as u32)
    };
    OutboundTemplate {
        marketing_messages: false,
        to: PhoneNumber::parse(&phone).unwrap(),
        template: format!(
            "{}_{i}",
            g.pick(&["spring_offer", "order_update", "hello_world"])
        ),
        language: g.pick(&["en", "en_US", "pt_BR", "hi", "es_MX"]).to_owned(),
        params,
        quick_reply_payloads,
        callback_data,
        header,
        url_suffix,
    }
}

#[test]
fn every_template_body_the_meta_adapter_builds_conforms_to_metas_schema() {
    let mut g = Gen(20261206);
    let mut checked = 0;
    let mut kinds = std::collections::BTreeSet::new();
    for i in 0..240 {
        let msg = outbound(&mut g, i);
        let body = template_body(&msg);
        let broken = violations(&body);
        assert!(
            broken.is_empty(),
            "body {i} breaks Meta's schema: {broken:?}\n{body:#}"
        );
        kinds.insert((
            msg.header.as_ref().map(|h| h.kind.as_str()),
            msg.params.is_empty(),
            msg.quick_reply_payloads.len(),
            msg.url_suffix.is_some(),
        ));
        checked += 1;
    }
    assert!(checked >= 200);
    assert!(kinds.len() >= 20, "a variety of bodies: {kinds:?}");
    assert!(
        kinds.iter().any(|k| k.3),
        "URL buttons with a suffix among them"
    );
}

/// The Marketing Messages API's body is its own schema, `MarketingMessageRequestPayload`,
/// which allows no callback data: every body the adapter builds for that route conforms,
/// and the same message for the Cloud API route would not.
#[test]
fn every_marketing_messages_body_conforms_to_its_own_schema_without_callback_data() {
    let mut g = Gen(20261207);
    let mut with_callback = 0;
    for i in 0..120 {
        let mut msg = outbound(&mut g, i);
        msg.marketing_messages = true;
        let body = template_body(&msg);
        let broken = meta_schema::marketing_violations(&body);
        assert!(
            broken.is_empty(),
            "body {i} breaks MarketingMessageRequestPayload: {broken:?}\n{body:#}"
        );
        assert!(body.get("biz_opaque_callback_data").is_none(), "{body:#}");
        if !msg.callback_data.is_empty() {
            with_callback += 1;
            msg.marketing_messages = false;
            let cloud = template_body(&msg);
            assert!(
                !meta_schema::marketing_violations(&cloud).is_empty(),
                "the schema refuses callback data: {cloud:#}"
            );
        }
    }
    assert!(with_callback > 50, "callback data left out, not absent");
}

/// Each relaxation undoes a defect Meta's own examples run into; none lets through what
/// the schema means to refuse.
#[test]
fn the_three_relaxations_undo_defects_of_metas_schema_and_nothing_else() {
    let spec = meta_schema::spec();
    let examples = &spec["paths"]["/{Version}/{Phone-Number-ID}/messages"]["post"]["requestBody"]
        ["content"]["application/json"]["examples"];
    let strict = meta_schema::validator_of(spec, "TemplateMessage");
    let relaxed = meta_schema::validator_of(&meta_schema::relaxed(spec), "TemplateMessage");
    let mut strict_refused = 0;
    for name in [
        "Send Message Template Text",
        "Send Message Template Media",
        "Send Message Template Interactive",
        "Send Sample Shipping Confirmation Template",
        "Send Sample Text Message",
    ] {
        let body = &examples[name]["value"];
        assert_eq!(body["type"], "template", "{name}");
        let errors: Vec<String> = relaxed.iter_errors(body).map(|e| e.to_string()).collect();
        assert!(errors.is_empty(), "Meta's own example {name}: {errors:?}");
        strict_refused += usize::from(!strict.is_valid(body));
    }
    assert!(
        strict_refused > 0,
        "Meta's schema as written refuses its own examples"
    );

    // A body of ours: as written the schema wants a language policy and refuses index "0".
    let ours = template_body(&OutboundTemplate {
        marketing_messages: false,
        to: PhoneNumber::parse("919812345678").unwrap(),
        template: "offer".into(),
        language: "en".into(),
        params: vec!["Asha".into()],
        quick_reply_payloads: vec!["Yes".into()],
        callback_data: String::new(),
        header: None,
        url_suffix: None,
    });
    let mut paths: Vec<String> = strict
        .iter_errors(&ours)
        .map(|e| e.instance_path.to_string())
        .collect();
    paths.sort();
    assert_eq!(
        paths,
        ["/template/components/1/index", "/template/language"],
        "only the two defects"
    );
    assert!(relaxed.is_valid(&ours));
    // A text message's own fields still may not carry anything else.
    let text = json!({"messaging_product": "whatsapp", "recipient_type": "individual",
        "to": "919812345678", "type": "text", "text": {"body": "hi", "colour": "red"}});
    assert!(!violations(&text).is_empty());

    // What the relaxations keep refusing.
    for (broken, at) in [
        (
            json!({"type": "template", "to": "1", "messaging_product": "whatsapp", "recipient_type": "individual",
            "template": {"name": "x", "language": {}}}),
            "/template/language",
        ),
        (
            json!({"type": "template", "to": "1", "messaging_product": "whatsapp", "recipient_type": "individual",
            "template": {"name": "x", "language": {"code": "en"}, "components": [
                {"type": "button", "sub_type": "quick_reply", "index": "12", "parameters": [{"type": "payload", "payload": "p"}]}]}}),
            "/template/components/0/index",
        ),
        (
            json!({"type": "template", "messaging_product": "whatsapp", "recipient_type": "individual",
            "template": {"name": "x", "language": {"code": "en"}}}),
            "",
        ),
    ] {
        let v = violations(&broken);
        assert!(
            v.iter().any(|v| v.path == at),
            "{broken}: expected a violation at {at:?}, got {v:?}"
        );
    }
}

#[tokio::test]
async fn the_simulator_refuses_a_body_that_fails_metas_schema_with_error_100_naming_the_field() {
    let cfg = SimConfig::default();
    let token = cfg.access_token.clone();
    let sim = Simulator::start(cfg, std::sync::Arc::new(ManualClock::system()))
        .await
        .unwrap();
    let http = reqwest::Client::builder().no_proxy().build().unwrap();
    let url = format!("{}/v23.0/106540352242922/messages", sim.base_url());
    let post = |body: Value| http.post(&url).bearer_auth(&token).json(&body).send();
    let good = template_body(&OutboundTemplate {
        marketing_messages: false,
        to: PhoneNumber::parse("919812345678").unwrap(),
        template: "offer".into(),
        language: "en".into(),
        params: vec!["Asha".into()],
        quick_reply_payloads: vec!["Yes".into(), "No".into()],
        callback_data: String::new(),
        header: None,
        url_suffix: None,
    });
    let r = post(good.clone()).await.unwrap();
    assert_eq!(r.status().as_u16(), 200);

    let mut no_code = good.clone();
    no_code["template"]["language"] = json!({"policy": "deterministic"});
    let mut bad_index = good.clone();
    bad_index["template"]["components"][1]["index"] = json!(1);
    let mut no_to = good;
    no_to.as_object_mut().unwrap().remove("to");
    for (body, field) in [
        (no_code, "/template/language"),
        (bad_index, "/template/components/1/index"),
        (no_to, "/: \"to\" is a required property"),
    ] {
        let r = post(body).await.unwrap();
        assert_eq!(r.status().as_u16(), 400, "{field}");
        let v: Value = r.json().await.unwrap();
        assert_eq!(v["error"]["code"], 100, "{v}");
        let details = v["error"]["error_data"]["details"]
            .as_str()
            .unwrap_or_default();
        assert!(details.starts_with(field), "{field}: {v}");
    }
    assert_eq!(sim.sent().len(), 1, "refused bodies are not sent");
}

#[tokio::test]
async fn the_simulators_marketing_messages_route_refuses_callback_data_with_error_100() {
    let cfg = SimConfig::default();
    let token = cfg.access_token.clone();
    let sim = Simulator::start(cfg, std::sync::Arc::new(ManualClock::system()))
        .await
        .unwrap();
    let http = reqwest::Client::builder().no_proxy().build().unwrap();
    let url = format!(
        "{}/v23.0/106540352242922/marketing_messages",
        sim.base_url()
    );
    let mut msg = OutboundTemplate {
        marketing_messages: true,
        to: PhoneNumber::parse("919812345678").unwrap(),
        template: "spring_offer".into(),
        language: "en".into(),
        params: vec!["Asha".into()],
        quick_reply_payloads: vec!["Yes".into()],
        callback_data: "ce1|t1|cmp_1|7|919812345678|1".into(),
        header: None,
        url_suffix: None,
    };
    let good = template_body(&msg);
    let r = http
        .post(&url)
        .bearer_auth(&token)
        .json(&good)
        .send()
        .await
        .unwrap();
    assert_eq!(r.status().as_u16(), 200);
    msg.marketing_messages = false;
    let with_callback = template_body(&msg);
    let r = http
        .post(&url)
        .bearer_auth(&token)
        .json(&with_callback)
        .send()
        .await
        .unwrap();
    assert_eq!(r.status().as_u16(), 400);
    let v: Value = r.json().await.unwrap();
    assert_eq!(v["error"]["code"], 100, "{v}");
    let details = v["error"]["error_data"]["details"].as_str().unwrap();
    assert!(details.contains("biz_opaque_callback_data"), "{v}");
    let sent = sim.sent();
    assert_eq!(sent.len(), 1, "the refused body is not sent");
    assert!(sent[0].marketing_messages && sent[0].callback_data.is_none());
}

#[test]
fn the_template_sync_parses_metas_own_list_response_example() {
    let spec = meta_schema::spec();
    let example = &spec["paths"]["/{Version}/{WABA-ID}/message_templates"]["get"]["responses"]
        ["200"]["content"]["application/json"]["examples"]["Example response"]["value"];
    let page = interpret_page(200, example.to_string().as_bytes()).unwrap();
    let names: Vec<&str> = page.templates.iter().map(|t| t.name.as_str()).collect();
    assert_eq!(names, ["hello_world", "2023_april_promo"]);
    let promo = &page.templates[1];
    assert_eq!(promo.status, Some(TemplateStatus::Approved));
    assert_eq!(promo.language, "en_US");
    assert!(promo
        .body
        .as_deref()
        .is_some_and(|b| b.starts_with("Hi {{1}}, our Fall Sale is on!")));
    assert_eq!(
        promo.buttons,
        [ProviderButton::QuickReply("Stop promotions".into())]
    );
}
