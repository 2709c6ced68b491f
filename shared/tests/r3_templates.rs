//! Templates (R3.1-R3.5) through the HTTP API, the Meta webhook and the sender, on the
//! in-memory adapters and, where storage matters, on DynamoDB in the local emulator (those
//! tests fail without `AWS_ENDPOINT_URL`: run `scripts/test.sh` or
//! `eval "$(scripts/emulator.sh start)"` first).

use testkit::harness as common;

use axum::body::Body;
use axum::http::{Method, Request, StatusCode};
use axum::Router;
use chrono::{TimeZone, Utc};
use common::{call, call_as, TENANT};
use serde_json::{json, Value};
use shared::domain::hopper::{EntryState, HopperEntry};
use shared::domain::inbound::Inbound;
use shared::domain::phone::PhoneNumber;
use shared::domain::stats;
use shared::domain::template::{ContactData, Quality, Template, TemplateStatus};
use shared::ports::{MessagingProvider, Table};
use shared::providers::meta::{parse_webhook, signature_header};
use shared::repo;
use std::collections::BTreeMap;
use std::path::PathBuf;
use std::sync::{Arc, Mutex};
use testkit::harness::{Spawn, Spawned};
use testkit::memory::MemoryTable;
use testkit::simulator::SimConfig;

const SECRET: &str = "test-app-secret";
const WABA: &str = "102290129340398";

/// The system sending to the simulator, with the API (template sync mounted) and the
/// webhook router (`hook`, applied inline, signed with the simulator's secret `SECRET`).
type Env = Spawned;

/// The system on `table`, sending through the Meta adapter to `provider` (default: the
/// simulator), with the API (template sync mounted) and the webhook router.
async fn env_with(table: Arc<dyn Table>, provider: Option<Arc<dyn MessagingProvider>>) -> Env {
    let mut spawn = Spawn::new(table)
        .at(Utc.with_ymd_and_hms(2026, 3, 2, 9, 0, 0).unwrap())
        .simulator(SimConfig::default());
    if let Some(provider) = provider {
        spawn = spawn.provider(provider);
    }
    spawn.spawn().await
}

async fn env(table: Arc<dyn Table>) -> Env {
    env_with(table, None).await
}

fn memory() -> Arc<dyn Table> {
    Arc::new(MemoryTable::new())
}

async fn dynamo() -> Arc<dyn Table> {
    Arc::new(common::dynamo_table("DynamoDB template", "r3").await)
}

/// Posts a signed Meta webhook; returns the inbox report.
async fn post_webhook(hook: &Router, body: &Value) -> Value {
    let bytes = serde_json::to_vec(body).unwrap();
    let req = Request::builder()
        .method(Method::POST)
        .uri("/webhooks/meta")
        .header("content-type", "application/json")
        .header(
            "x-hub-signature-256",
            signature_header(SECRET.as_bytes(), &bytes),
        )
        .body(Body::from(bytes))
        .unwrap();
    let (status, bytes) = common::send(hook, req).await;
    assert_eq!(status, StatusCode::OK);
    serde_json::from_slice(&bytes).unwrap()
}

fn template_webhook(field: &str, value: Value) -> Value {
    json!({"object": "whatsapp_business_account",
        "entry": [{"id": WABA, "time": 1751247548, "changes": [{"field": field, "value": value}]}]})
}

fn status_event(name: &str, language: &str, event: &str) -> Value {
    template_webhook(
        "message_template_status_update",
        json!({"event": event, "message_template_name": name, "message_template_language": language,
            "reason": "NONE", "other_info": {"title": "FIRST_PAUSE",
            "description": "Your template was paused because of low quality"}}),
    )
}

async fn account(api: &Router, waba: Option<&str>) -> String {
    account_as(api, TENANT, waba).await
}

async fn account_as(api: &Router, tenant: &str, waba: Option<&str>) -> String {
    let mut body = common::account_body();
    if tenant != TENANT {
        // A sending number belongs to one tenant: another tenant has its own.
        body["sender_id"] = "106540352242999".into();
    }
    if let Some(w) = waba {
        body["waba_id"] = w.into();
    }
    let (s, a) = call_as(api, tenant, Method::POST, "/accounts", Some(body)).await;
    assert_eq!(s, StatusCode::CREATED, "{a}");
    a["id"].as_str().unwrap().to_owned()
}

async fn register(api: &Router, account: &str, name: &str, extra: Value) -> (StatusCode, Value) {
    let body = common::merged(common::template_body(account, name), extra);
    call(api, Method::POST, "/templates", Some(body)).await
}

/// A RUNNING campaign sending `template` with one FRESH entry per phone (entries are put
/// in the hopper directly; attaching lists is the audience's business).
async fn running_campaign(
    e: &Env,
    account: &str,
    template: &str,
    phones: &[&str],
    contact: impl Fn(usize) -> ContactData,
) -> String {
    let (s, c) = call(
        &e.api,
        Method::POST,
        "/campaigns",
        Some(common::merged(
            common::campaign_body(&format!("Campaign {template}"), account, template),
            json!({"rate": 20, "response_timeout_days": 1}),
        )),
    )
    .await;
    assert_eq!(s, StatusCode::CREATED, "{c}");
    let id = c["id"].as_str().unwrap().to_owned();
    let campaign = repo::get_campaign(&*e.sys.ports.table, TENANT, &id)
        .await
        .unwrap()
        .unwrap();
    for (i, p) in phones.iter().enumerate() {
        let mut entry = HopperEntry::new(
            &campaign,
            PhoneNumber::parse(p).unwrap(),
            contact(i),
            i as u64 + 1,
        );
        assert!(
            repo::insert_entry(&*e.sys.ports.table, &mut entry, chrono::Utc::now())
                .await
                .unwrap()
        );
        repo::add_counters(
            &*e.sys.ports.table,
            TENANT,
            &id,
            &stats::delta(None, &entry),
        )
        .await
        .unwrap();
    }
    common::launch(&e.api, &id).await;
    id
}

fn contact(i: usize) -> ContactData {
    ContactData {
        name: Some(format!("Customer {i}")),
        fields: [("code".to_string(), format!("SPRING{i}"))].into(),
        ..Default::default()
    }
}

async fn entries(e: &Env, id: &str) -> Vec<HopperEntry> {
    let c = repo::get_campaign(&*e.sys.ports.table, TENANT, id)
        .await
        .unwrap()
        .unwrap();
    repo::all_entries(&*e.sys.ports.table, &c).await.unwrap()
}

async fn send_all(e: &Env, id: &str) {
    let jobs = entries(e, id)
        .await
        .into_iter()
        .map(|en| (en.phone.to_string(), Ok(en.entry_ref().into())))
        .collect();
    assert!(e.sys.sender.send_batch(jobs).await.is_empty());
}

async fn campaign(e: &Env, id: &str) -> Value {
    let (s, c) = call(&e.api, Method::GET, &format!("/campaigns/{id}"), None).await;
    assert_eq!(s, StatusCode::OK);
    c
}

async fn template(e: &Env, account: &str, name: &str) -> Value {
    let (s, t) = call(
        &e.api,
        Method::GET,
        &format!("/templates/{account}/{name}/en"),
        None,
    )
    .await;
    assert_eq!(s, StatusCode::OK, "{t}");
    t
}

// ---- R3.1 structure ----------------------------------------------------------------

#[tokio::test]
async fn r3_1_structure_errors_are_422_naming_the_field() {
    let e = env(memory()).await;
    let acc = account(&e.api, None).await;
    let cases = [
        ("long", json!({"body": "a".repeat(1025)}), "body"),
        ("named", json!({"body": "Hi {{name}}"}), "body"),
        ("gap", json!({"body": "Hi {{2}}"}), "body"),
        (
            "mixed",
            json!({"quick_replies": ["Yes"], "call_to_action": [
                {"type": "url", "text": "Shop", "url": "https://shop.example.com"}]}),
            "call_to_action",
        ),
        (
            "two_urls",
            json!({"call_to_action": [
                {"type": "url", "text": "Shop", "url": "https://shop.example.com"},
                {"type": "url", "text": "More", "url": "https://more.example.com"}]}),
            "call_to_action",
        ),
        (
            "eleven",
            json!({"quick_replies": (0..11).map(|i| format!("Option {i}")).collect::<Vec<_>>()}),
            "quick_replies",
        ),
        (
            "image_filename",
            json!({"header": {"type": "image", "url": "https://cdn.example.com/a.jpg", "filename": "a.jpg"}}),
            "header.filename",
        ),
        (
            "no_link",
            json!({"header": {"type": "video"}}),
            "header.url",
        ),
    ];
    for (name, extra, field) in cases {
        let (s, body) = register(&e.api, &acc, name, extra).await;
        assert_eq!(
            (s, body["field"].as_str()),
            (StatusCode::UNPROCESSABLE_ENTITY, Some(field)),
            "{name}: {body}"
        );
    }
    // A header type Meta does not have is a malformed body: 400 naming the field.
    let (s, body) = register(
        &e.api,
        &acc,
        "audio",
        json!({"header": {"type": "audio", "url": "https://cdn.example.com/a.mp3"}}),
    )
    .await;
    assert_eq!(s, StatusCode::BAD_REQUEST, "{body}");
    assert!(
        body["field"].as_str().unwrap().starts_with("header"),
        "{body}"
    );

    // The good shapes: a document header with its file name, one phone and one URL button.
    let (s, body) = register(
        &e.api,
        &acc,
        "terms",
        json!({"header": {"type": "document", "url": "https://cdn.example.com/terms.pdf", "filename": "terms.pdf"},
            "call_to_action": [
                {"type": "phone_number", "text": "Call us", "phone_number": "+15550783881"},
                {"type": "url", "text": "Shop", "url": "https://shop.example.com"}]}),
    )
    .await;
    assert_eq!(s, StatusCode::CREATED, "{body}");
    assert_eq!(body["header"]["filename"], "terms.pdf");
    assert_eq!(body["call_to_action"][0]["type"], "phone_number");
    assert_eq!(body["status"], "APPROVED");
    assert_eq!(body["quality"], "UNKNOWN");
    assert_eq!(body["recontact"], false);
}

/// Captures what the Meta adapter posts.
async fn capturing_meta() -> (String, Arc<Mutex<Vec<Value>>>) {
    let seen = Arc::new(Mutex::new(Vec::new()));
    let s2 = seen.clone();
    let app = Router::new().route(
        "/{version}/{id}/messages",
        axum::routing::post(move |body: axum::body::Bytes| {
            let seen = s2.clone();
            async move {
                seen.lock()
                    .unwrap()
                    .push(serde_json::from_slice::<Value>(&body).unwrap());
                axum::Json(json!({"messages": [{"id": "wamid.CAPTURED"}]}))
            }
        }),
    );
    (common::serve(app).await, seen)
}

#[tokio::test]
async fn r3_1_media_header_goes_out_with_every_message() {
    let (base, seen) = capturing_meta().await;
    let e = env_with(memory(), Some(common::meta_provider(base))).await;
    let acc = account(&e.api, None).await;
    let (s, t) = register(
        &e.api,
        &acc,
        "spring_banner",
        json!({"header": {"type": "image", "url": "https://cdn.example.com/spring.jpg"}, "quick_replies": ["Yes", "No"]}),
    )
    .await;
    assert_eq!(s, StatusCode::CREATED, "{t}");
    let id = running_campaign(
        &e,
        &acc,
        "spring_banner",
        &["919812345601", "919812345602"],
        contact,
    )
    .await;
    send_all(&e, &id).await;
    let bodies = seen.lock().unwrap().clone();
    assert_eq!(bodies.len(), 2);
    for b in &bodies {
        let components = b["template"]["components"].as_array().unwrap();
        assert_eq!(
            components[0],
            json!({"type": "header", "parameters": [{"type": "image", "image": {"link": "https://cdn.example.com/spring.jpg"}}]}),
            "{b}"
        );
        assert_eq!(components[1]["type"], "body");
        assert_eq!(components[2]["sub_type"], "quick_reply");
    }
    assert!(entries(&e, &id)
        .await
        .iter()
        .all(|en| en.state == EntryState::Pending));
}

// ---- R3.2 statuses ----------------------------------------------------------------

#[tokio::test]
async fn r3_2_only_approved_templates_can_be_chosen() {
    let e = env(memory()).await;
    let acc = account(&e.api, None).await;
    let (s, _) = register(&e.api, &acc, "waiting", json!({"status": "PENDING"})).await;
    assert_eq!(s, StatusCode::CREATED);
    let (s, body) = call(
        &e.api,
        Method::POST,
        "/campaigns",
        Some(json!({
            "name": "x", "account_id": acc, "template": {"name": "waiting", "language": "en"},
            "variables": [{"source": "contact_name"}, {"source": "contact_name"}]
        })),
    )
    .await;
    assert_eq!(s, StatusCode::CONFLICT, "{body}");
    assert!(
        body["message"].as_str().unwrap().contains("is PENDING"),
        "{body}"
    );
}

async fn paused_template_pauses_its_campaigns_and_entries_retry(table: Arc<dyn Table>) {
    let e = env(table).await;
    let acc = account(&e.api, None).await;
    register(&e.api, &acc, "spring_offer", json!({})).await;
    let id = running_campaign(
        &e,
        &acc,
        "spring_offer",
        &["919812345601", "919812345602"],
        contact,
    )
    .await;
    // Meta paused the template; nobody has told the campaign yet.
    let table = &*e.sys.ports.table;
    let mut t = repo::get_template(table, TENANT, &acc, "spring_offer", "en")
        .await
        .unwrap()
        .unwrap();
    t.status = TemplateStatus::Paused;
    repo::save_template(table, &mut t).await.unwrap();

    send_all(&e, &id).await;
    assert!(e.simulator().sent().is_empty(), "nothing goes out");
    let c = campaign(&e, &id).await;
    assert_eq!(c["status"], "PAUSED");
    assert_eq!(c["pause_reason"], "template spring_offer (en) is PAUSED");
    let all = entries(&e, &id).await;
    let claimed: Vec<_> = all.iter().filter(|en| en.attempts > 0).collect();
    assert!(!claimed.is_empty());
    for en in &claimed {
        assert_eq!(
            en.state,
            EntryState::Fresh,
            "back in line, not FAILED: {en:?}"
        );
        assert_eq!(
            en.last_attempt_error.as_deref(),
            Some("template spring_offer (en) is PAUSED"),
            "shown as the last attempt's result, not a failure (issue 19, item 5)"
        );
        assert_eq!((en.error.as_ref(), en.reason.as_ref()), (None, None));
    }
    assert!(all.iter().all(|en| en.state != EntryState::Failed));
    // Live counters equal a recount of the entries.
    let counters = repo::get_counters(table, TENANT, &id).await.unwrap();
    for (k, v) in stats::recount(&all) {
        assert_eq!(counters.get(k).copied().unwrap_or(0), v, "counter {k}");
    }
}

testkit::on_both_backends! {
    memory: memory(), dynamo: dynamo().await;
    paused_template_pauses_its_campaigns_and_entries_retry: r3_2_paused_template_pauses_its_campaigns_and_entries_retry, r3_2_paused_template_pauses_its_campaigns_and_entries_retry_on_dynamodb;
}

/// A Meta stand-in that refuses every send with `code`.
async fn refusing_meta(code: i64) -> String {
    let app = Router::new().route(
        "/{version}/{id}/messages",
        axum::routing::post(move || async move {
            (
                StatusCode::BAD_REQUEST,
                axum::Json(json!({"error": {"message": "(#132015) Template is paused due to low quality", "code": code}})),
            )
        }),
    );
    common::serve(app).await
}

#[tokio::test]
async fn r3_2_template_paused_error_stops_every_campaign_sending_it() {
    let provider = common::meta_provider(refusing_meta(132015).await);
    let e = env_with(memory(), Some(provider)).await;
    let acc = account(&e.api, None).await;
    register(&e.api, &acc, "spring_offer", json!({})).await;
    let first = running_campaign(&e, &acc, "spring_offer", &["919812345601"], contact).await;
    let second = running_campaign(&e, &acc, "spring_offer", &["919812345602"], contact).await;
    send_all(&e, &first).await;
    let t = template(&e, &acc, "spring_offer").await;
    assert_eq!(t["status"], "PAUSED", "{t}");
    assert_eq!(campaign(&e, &first).await["status"], "PAUSED");
    let c = campaign(&e, &second).await;
    assert_eq!(
        (c["status"].as_str(), c["pause_reason"].as_str()),
        (Some("PAUSED"), Some("template spring_offer (en) is PAUSED")),
        "a campaign that sent nothing yet stops too"
    );
    let en = &entries(&e, &first).await[0];
    assert_eq!(en.state, EntryState::Fresh);
}

async fn status_webhook_pauses_running_campaigns(table: Arc<dyn Table>) {
    let e = env(table).await;
    let acc = account(&e.api, Some(WABA)).await;
    register(&e.api, &acc, "spring_offer", json!({})).await;
    register(&e.api, &acc, "other_offer", json!({})).await;
    // Another tenant has a template of the same name under another WABA.
    let other_acc = account_as(&e.api, "globex", Some("999999999999")).await;
    let (s, _) = call_as(
        &e.api,
        "globex",
        Method::POST,
        "/templates",
        Some(json!({
        "account_id": other_acc, "name": "spring_offer", "language": "en",
        "category": "MARKETING", "body": "Hello"})),
    )
    .await;
    assert_eq!(s, StatusCode::CREATED);

    let paused = running_campaign(&e, &acc, "spring_offer", &["919812345601"], contact).await;
    let untouched = running_campaign(&e, &acc, "other_offer", &["919812345602"], contact).await;

    let report = post_webhook(&e.hook, &status_event("spring_offer", "en", "PAUSED")).await;
    assert_eq!(report, json!({"applied": 1, "ignored": 0}));
    let t = template(&e, &acc, "spring_offer").await;
    assert_eq!(t["status"], "PAUSED");
    assert_eq!(
        t["status_reason"],
        "Your template was paused because of low quality"
    );
    let c = campaign(&e, &paused).await;
    assert_eq!(
        (c["status"].as_str(), c["pause_reason"].as_str()),
        (Some("PAUSED"), Some("template spring_offer (en) is PAUSED"))
    );
    assert_eq!(campaign(&e, &untouched).await["status"], "RUNNING");
    let (_, theirs) = call_as(
        &e.api,
        "globex",
        Method::GET,
        &format!("/templates/{other_acc}/spring_offer/en"),
        None,
    )
    .await;
    assert_eq!(
        theirs["status"], "APPROVED",
        "another WABA's template is not touched"
    );
    // The state change was published with the reason.
    let events = e.memory_bus().events.lock().unwrap().clone();
    assert!(
        events.iter().any(|ev| serde_json::to_string(ev)
            .unwrap()
            .contains("template spring_offer (en) is PAUSED")),
        "{events:?}"
    );

    // A replay changes nothing.
    let report = post_webhook(&e.hook, &status_event("spring_offer", "en", "PAUSED")).await;
    assert_eq!(report, json!({"applied": 0, "ignored": 1}));
    // Quality updates land on the template.
    let quality = template_webhook(
        "message_template_quality_update",
        json!({"previous_quality_score": "GREEN", "new_quality_score": "RED",
            "message_template_id": 1689556908129832_u64,
            "message_template_name": "other_offer", "message_template_language": "en"}),
    );
    assert_eq!(post_webhook(&e.hook, &quality).await["applied"], 1);
    assert_eq!(template(&e, &acc, "other_offer").await["quality"], "RED");
    // DISABLED stops the other campaign too; back to APPROVED resumes nothing by itself.
    post_webhook(&e.hook, &status_event("other_offer", "en", "DISABLED")).await;
    assert_eq!(campaign(&e, &untouched).await["status"], "PAUSED");
    post_webhook(&e.hook, &status_event("other_offer", "en", "REINSTATED")).await;
    assert_eq!(
        template(&e, &acc, "other_offer").await["status"],
        "APPROVED"
    );
    assert_eq!(campaign(&e, &untouched).await["status"], "PAUSED");
    // A template nobody has is ignored.
    let report = post_webhook(&e.hook, &status_event("unknown", "en", "PAUSED")).await;
    assert_eq!(report, json!({"applied": 0, "ignored": 1}));
}

testkit::on_both_backends! {
    memory: memory(), dynamo: dynamo().await;
    status_webhook_pauses_running_campaigns: r3_2_template_status_webhook_pauses_running_campaigns, r3_2_template_status_webhook_pauses_running_campaigns_on_dynamodb;
}

fn fixture(file: &str) -> BTreeMap<String, Value> {
    let path = PathBuf::from(env!("CARGO_MANIFEST_DIR"))
        .join("tests/fixtures/meta-webhooks")
        .join(format!("{file}.json"));
    serde_json::from_slice(&std::fs::read(path).unwrap()).unwrap()
}

#[test]
fn r3_2_meta_template_fixtures_parse_into_template_updates() {
    let status = fixture("template_status_update");
    let parse = |v: &Value| parse_webhook(&serde_json::to_vec(v).unwrap()).unwrap();
    match parse(&status["approved"]).as_slice() {
        [Inbound::TemplateStatus(u)] => {
            assert_eq!(u.waba_id.as_deref(), Some(WABA));
            assert_eq!(u.template_id.as_deref(), Some("1689556908129832"));
            assert_eq!(
                (u.name.as_str(), u.language.as_str()),
                ("order_confirmation", "en_US")
            );
            assert_eq!(u.status, Some(TemplateStatus::Approved));
            assert_eq!(u.reason, None, "NONE is no reason");
        }
        other => panic!("{other:?}"),
    }
    match parse(&status["rejected"]).as_slice() {
        [Inbound::TemplateStatus(u)] => {
            assert_eq!(u.status, Some(TemplateStatus::Rejected));
            assert!(u
                .reason
                .as_deref()
                .unwrap()
                .contains("parameters placed next to each other"));
        }
        other => panic!("{other:?}"),
    }
    let quality = fixture("template_quality_update");
    match parse(&quality["yellow"]).as_slice() {
        [Inbound::TemplateStatus(u)] => {
            assert_eq!(u.quality, Some(Quality::Yellow));
            assert_eq!(u.status, None);
            assert_eq!(u.name, "welcome_template");
        }
        other => panic!("{other:?}"),
    }
}

// ---- R3.3 variables -----------------------------------------------------------------

#[tokio::test]
async fn r3_3_unmapped_placeholder_blocks_use() {
    let e = env(memory()).await;
    let acc = account(&e.api, None).await;
    register(&e.api, &acc, "spring_offer", json!({})).await;
    let (s, body) = call(
        &e.api,
        Method::POST,
        "/campaigns",
        Some(json!({
            "name": "x", "account_id": acc, "template": {"name": "spring_offer", "language": "en"},
            "variables": [{"source": "contact_name"}]
        })),
    )
    .await;
    assert_eq!(
        (s, body["field"].as_str()),
        (StatusCode::UNPROCESSABLE_ENTITY, Some("variables")),
        "{body}"
    );
    assert!(
        body["message"].as_str().unwrap().contains("{{2}}"),
        "{body}"
    );
}

#[tokio::test]
async fn r3_3_missing_value_for_variable_is_recorded_and_not_sent() {
    let e = env(memory()).await;
    let acc = account(&e.api, None).await;
    register(&e.api, &acc, "spring_offer", json!({})).await;
    let id = running_campaign(
        &e,
        &acc,
        "spring_offer",
        &["919812345601", "919812345602"],
        |i| ContactData {
            name: Some(format!("Customer {i}")),
            // The second contact has no code.
            fields: if i == 0 {
                [("code".to_string(), "SPRING0".to_string())].into()
            } else {
                BTreeMap::new()
            },
            ..Default::default()
        },
    )
    .await;
    send_all(&e, &id).await;
    assert_eq!(e.simulator().sent().len(), 1);
    let all = entries(&e, &id).await;
    let missing = all
        .iter()
        .find(|en| en.phone.as_str() == "919812345602")
        .unwrap();
    assert_eq!(missing.state, EntryState::Failed);
    assert_eq!(
        missing.error.as_deref(),
        Some("missing value for variable {{2}}")
    );
    assert_eq!(campaign(&e, &id).await["status"], "RUNNING");
}

// ---- R3.4 registration, sync, limits --------------------------------------------------

fn meta_template(name: &str, status: &str, components: Value) -> Value {
    json!({"name": name, "language": "en", "status": status, "category": "MARKETING",
        "id": format!("id_{name}"), "quality_score": {"score": "GREEN"}, "components": components})
}

fn meta_templates(offer_status: &str) -> Vec<Value> {
    vec![
        meta_template(
            "spring_offer",
            offer_status,
            json!([{"type": "BODY", "text": "Hi {{1}}, code {{2}}"},
                {"type": "BUTTONS", "buttons": [{"type": "QUICK_REPLY", "text": "Yes"}, {"type": "QUICK_REPLY", "text": "No"}]}]),
        ),
        meta_template(
            "spring_banner",
            "APPROVED",
            json!([{"type": "HEADER", "format": "IMAGE", "example": {"header_handle": ["https://scontent.example.com/banner.jpg"]}},
                {"type": "BODY", "text": "Spring is here, {{1}}"},
                {"type": "FOOTER", "text": "Reply STOP to opt out"},
                {"type": "BUTTONS", "buttons": [
                    {"type": "URL", "text": "Shop", "url": "https://shop.example.com"},
                    {"type": "PHONE_NUMBER", "text": "Call", "phone_number": "+15550783881"}]}]),
        ),
        meta_template(
            "welcome_doc",
            "PENDING",
            json!([{"type": "HEADER", "format": "DOCUMENT"}, {"type": "BODY", "text": "Welcome"}]),
        ),
        meta_template(
            "otp_code",
            "APPROVED",
            json!([{"type": "BODY", "text": "Your code is {{1}}"},
                {"type": "BUTTONS", "buttons": [{"type": "COPY_CODE", "example": "123456"}]}]),
        ),
    ]
}

async fn sync_reads_every_page_from_meta(table: Arc<dyn Table>) {
    let e = env(table).await;
    let acc = account(&e.api, Some(WABA)).await;
    e.simulator().set_templates(meta_templates("APPROVED"), 3);
    let path = format!("/accounts/{acc}/templates/sync");
    let (s, report) = call(&e.api, Method::POST, &path, None).await;
    assert_eq!(s, StatusCode::OK, "{report}");
    assert_eq!(
        (
            report["pages"].as_u64(),
            report["received"].as_u64(),
            report["created"].as_u64(),
            report["updated"].as_u64()
        ),
        (Some(2), Some(4), Some(3), Some(0)),
        "{report}"
    );
    assert_eq!(report["skipped"][0]["name"], "otp_code", "{report}");
    assert_eq!(
        report["skipped"][0]["reason"],
        "COPY_CODE buttons are not supported"
    );
    let requests = e.simulator().template_list_requests();
    assert_eq!(requests.len(), 2);
    assert_eq!(requests[0].waba_id, WABA);
    assert_eq!(requests[0].limit, Some(100));
    assert_eq!(requests[0].after, None);
    assert_eq!(requests[1].after.as_deref(), Some("c3"));

    let offer = template(&e, &acc, "spring_offer").await;
    assert_eq!(
        (
            offer["status"].as_str(),
            offer["quality"].as_str(),
            offer["category"].as_str()
        ),
        (Some("APPROVED"), Some("GREEN"), Some("MARKETING"))
    );
    assert_eq!(offer["quick_replies"], json!(["Yes", "No"]));
    assert_eq!(offer["provider_id"], "id_spring_offer");
    let banner = template(&e, &acc, "spring_banner").await;
    assert_eq!(
        banner["header"],
        json!({"type": "image", "url": "https://scontent.example.com/banner.jpg"})
    );
    assert_eq!(banner["call_to_action"].as_array().unwrap().len(), 2);
    let doc = template(&e, &acc, "welcome_doc").await;
    assert_eq!(doc["status"], "PENDING");
    assert_eq!(doc["header"], json!({"type": "document"}));

    // Again: nothing new. Then Meta pauses spring_offer, which a campaign is sending.
    let id = running_campaign(&e, &acc, "spring_offer", &["919812345601"], contact).await;
    let (_, report) = call(&e.api, Method::POST, &path, None).await;
    assert_eq!(
        (report["created"].as_u64(), report["unchanged"].as_u64()),
        (Some(0), Some(3)),
        "{report}"
    );
    e.simulator().set_templates(meta_templates("PAUSED"), 3);
    let (_, report) = call(&e.api, Method::POST, &path, Some(json!({}))).await;
    assert_eq!(report["updated"], 1, "{report}");
    assert_eq!(report["paused_campaigns"], json!([id]));
    assert_eq!(campaign(&e, &id).await["status"], "PAUSED");

    // The synchronised templates answer status webhooks from their WABA.
    let report = post_webhook(&e.hook, &status_event("spring_banner", "en", "PAUSED")).await;
    assert_eq!(report["applied"], 1);
}

testkit::on_both_backends! {
    memory: memory(), dynamo: dynamo().await;
    sync_reads_every_page_from_meta: r3_4_sync_reads_every_page_from_meta, r3_4_sync_reads_every_page_from_meta_on_dynamodb;
}

#[tokio::test]
async fn r3_4_sync_needs_a_waba_and_reports_meta_errors() {
    let e = env(memory()).await;
    let acc = account(&e.api, None).await;
    // An account stored before Meta accounts had to name their WABA.
    let t = &*e.sys.ports.table;
    let mut settings = repo::get_template_settings(t, TENANT, &acc).await.unwrap();
    settings.waba_id = None;
    repo::save_template_settings(t, &mut settings)
        .await
        .unwrap();
    let path = format!("/accounts/{acc}/templates/sync");
    let (s, body) = call(&e.api, Method::POST, &path, None).await;
    assert_eq!(
        (s, body["field"].as_str()),
        (StatusCode::UNPROCESSABLE_ENTITY, Some("waba_id")),
        "{body}"
    );
    let (s, body) = call(&e.api, Method::POST, &path, Some(json!({"waba_id": 12}))).await;
    assert_eq!(
        (s, body["field"].as_str()),
        (StatusCode::BAD_REQUEST, Some("waba_id"))
    );
    // The WABA given is kept on the account.
    e.simulator().set_templates(vec![], 0);
    let (s, body) = call(&e.api, Method::POST, &path, Some(json!({"waba_id": WABA}))).await;
    assert_eq!(s, StatusCode::OK, "{body}");
    let (_, a) = call(&e.api, Method::GET, &format!("/accounts/{acc}"), None).await;
    assert_eq!(a["waba_id"], WABA);
    let (s, _) = call(
        &e.api,
        Method::POST,
        "/accounts/acc_missing/templates/sync",
        None,
    )
    .await;
    assert_eq!(s, StatusCode::NOT_FOUND);

    // A token Meta refuses: 502 with Meta's words.
    let (s, a) = call(
        &e.api,
        Method::POST,
        "/accounts",
        Some(json!({
        "name": "Bad", "sender_id": "1", "token_ref": "env:WRONG", "waba_id": WABA})),
    )
    .await;
    assert_eq!(s, StatusCode::CREATED);
    let (s, body) = call(
        &e.api,
        Method::POST,
        &format!("/accounts/{}/templates/sync", a["id"].as_str().unwrap()),
        None,
    )
    .await;
    assert_eq!(s, StatusCode::BAD_GATEWAY, "{body}");
    assert_eq!(body["message"], "credentials unavailable: env:WRONG");

    // An aws_social account holds no Meta token: its grant is never sent to Meta.
    let (s, a) = call(
        &e.api,
        Method::POST,
        "/accounts",
        Some(json!({"name": "Through AWS", "provider": "aws_social",
            "sender_id": testkit::simulator::SIM_AWS_PHONE_NUMBER_IDS[0],
            "token_ref": testkit::harness::SIM_AWS_GRANT_REF, "waba_id": WABA})),
    )
    .await;
    assert_eq!(s, StatusCode::CREATED, "{a}");
    let asked = e.simulator().template_list_requests().len();
    let (s, body) = call(
        &e.api,
        Method::POST,
        &format!("/accounts/{}/templates/sync", a["id"].as_str().unwrap()),
        None,
    )
    .await;
    assert_eq!(
        (s, body["field"].as_str()),
        (StatusCode::UNPROCESSABLE_ENTITY, Some("account_id")),
        "{body}"
    );
    assert_eq!(e.simulator().template_list_requests().len(), asked);
}

async fn the_251st_template_is_refused(table: Arc<dyn Table>) {
    let e = env(table).await;
    let acc = account(&e.api, None).await;
    // 250 stored templates (written directly: registering each would read the growing
    // list every time, slow on the emulator).
    let now = Utc::now();
    for i in 0..250 {
        let input = serde_json::from_value(json!({"account_id": acc, "name": format!("t_{i:03}"),
            "language": "en", "category": "UTILITY", "body": "Hello"}))
        .unwrap();
        let mut t = Template::create(TENANT, input, now).unwrap();
        repo::save_template(&*e.sys.ports.table, &mut t)
            .await
            .unwrap();
    }
    let (s, body) = register(&e.api, &acc, "one_too_many", json!({})).await;
    assert_eq!(s, StatusCode::CONFLICT, "{body}");
    assert!(
        body["message"]
            .as_str()
            .unwrap()
            .contains("already has 250 templates"),
        "{body}"
    );
    // Registering one it has again replaces it and does not count twice.
    let (s, body) = register(&e.api, &acc, "t_007", json!({"body": "Hello again"})).await;
    assert_eq!(
        (s, body["body"].as_str()),
        (StatusCode::OK, Some("Hello again")),
        "{body}"
    );
    // Deleting one makes room.
    let (s, _) = call(
        &e.api,
        Method::DELETE,
        &format!("/templates/{acc}/t_000/en"),
        None,
    )
    .await;
    assert_eq!(s, StatusCode::NO_CONTENT);
    let (s, body) = register(&e.api, &acc, "one_too_many", json!({})).await;
    assert_eq!(s, StatusCode::CREATED, "{body}");
    // The limit is per account.
    let other = account(&e.api, None).await;
    let (s, _) = register(&e.api, &other, "one_too_many", json!({})).await;
    assert_eq!(s, StatusCode::CREATED);
    let (_, list) = call(
        &e.api,
        Method::GET,
        &format!("/templates?account_id={acc}"),
        None,
    )
    .await;
    assert_eq!(list["items"].as_array().unwrap().len(), 250);
}

testkit::on_both_backends! {
    memory: memory(), dynamo: dynamo().await;
    the_251st_template_is_refused: r3_4_251st_template_is_refused, r3_4_251st_template_is_refused_on_dynamodb;
}

#[tokio::test]
async fn r3_4_edit_and_delete_follow_the_provider_rules() {
    let e = env(memory()).await;
    let acc = account(&e.api, None).await;
    register(&e.api, &acc, "waiting", json!({"status": "PENDING"})).await;
    let path = format!("/templates/{acc}/waiting/en");
    let (s, body) = call(
        &e.api,
        Method::PUT,
        &path,
        Some(json!({"body": "Hi {{1}}"})),
    )
    .await;
    assert_eq!(
        s,
        StatusCode::CONFLICT,
        "pending templates wait for review: {body}"
    );
    // The provider approved it: now it may change, and goes back to review.
    let (s, body) = call(
        &e.api,
        Method::PUT,
        &path,
        Some(json!({"status": "APPROVED"})),
    )
    .await;
    assert_eq!(
        (s, body["status"].as_str()),
        (StatusCode::OK, Some("APPROVED")),
        "{body}"
    );
    let (s, body) = call(
        &e.api,
        Method::PUT,
        &path,
        Some(json!({"body": "Hi {{1}}", "quick_replies": ["Yes"]})),
    )
    .await;
    assert_eq!(
        (s, body["status"].as_str()),
        (StatusCode::OK, Some("PENDING")),
        "{body}"
    );
    assert_eq!(body["quick_replies"], json!(["Yes"]));
    let (s, body) = call(
        &e.api,
        Method::PUT,
        &path,
        Some(json!({"status": "APPROVED", "call_to_action": [
        {"type": "url", "text": "Shop", "url": "https://shop.example.com"}]})),
    )
    .await;
    assert_eq!(
        (s, body["field"].as_str()),
        (StatusCode::CONFLICT, None),
        "{body}"
    );
    let (s, _) = call(
        &e.api,
        Method::PUT,
        &format!("/templates/{acc}/nope/en"),
        Some(json!({})),
    )
    .await;
    assert_eq!(s, StatusCode::NOT_FOUND);

    // Content cannot change under a running campaign; a PAUSED status pauses it.
    register(&e.api, &acc, "spring_offer", json!({})).await;
    let id = running_campaign(&e, &acc, "spring_offer", &["919812345601"], contact).await;
    let offer = format!("/templates/{acc}/spring_offer/en");
    let (s, body) = call(
        &e.api,
        Method::PUT,
        &offer,
        Some(json!({"body": "Hi {{1}} {{2}}!"})),
    )
    .await;
    assert_eq!(s, StatusCode::CONFLICT, "{body}");
    assert!(body["message"].as_str().unwrap().contains(&id), "{body}");
    let (s, body) = call(&e.api, Method::DELETE, &offer, None).await;
    assert_eq!(s, StatusCode::CONFLICT, "{body}");
    assert!(body["message"].as_str().unwrap().contains(&id), "{body}");
    let (s, _) = call(
        &e.api,
        Method::PUT,
        &offer,
        Some(json!({"status": "PAUSED"})),
    )
    .await;
    assert_eq!(s, StatusCode::OK);
    let c = campaign(&e, &id).await;
    assert_eq!(c["pause_reason"], "template spring_offer (en) is PAUSED");
    // Still not deletable: the paused campaign is not finished.
    let (s, _) = call(&e.api, Method::DELETE, &offer, None).await;
    assert_eq!(s, StatusCode::CONFLICT);
    // A template nobody uses goes.
    let (s, _) = call(&e.api, Method::DELETE, &path, None).await;
    assert_eq!(s, StatusCode::NO_CONTENT);
    let (s, _) = call(&e.api, Method::GET, &path, None).await;
    assert_eq!(s, StatusCode::NOT_FOUND);
}

// ---- R3.5 recontact template -------------------------------------------------------

async fn one_recontact_template_per_account(table: Arc<dyn Table>) {
    let e = env(table).await;
    let acc = account(&e.api, None).await;
    register(
        &e.api,
        &acc,
        "we_miss_you",
        json!({"body": "We miss you, {{1}}"}),
    )
    .await;
    register(&e.api, &acc, "come_back", json!({"body": "Come back"})).await;
    register(&e.api, &acc, "not_yet", json!({"status": "PENDING"})).await;
    let path = format!("/accounts/{acc}/recontact-template");

    let (s, a) = call(
        &e.api,
        Method::PUT,
        &path,
        Some(json!({"name": "we_miss_you", "language": "en"})),
    )
    .await;
    assert_eq!(s, StatusCode::OK, "{a}");
    assert_eq!(
        a["recontact_template"],
        json!({"name": "we_miss_you", "language": "en"})
    );
    assert_eq!(template(&e, &acc, "we_miss_you").await["recontact"], true);

    // A second flag replaces the first.
    let (s, _) = call(
        &e.api,
        Method::PUT,
        &path,
        Some(json!({"name": "come_back", "language": "en"})),
    )
    .await;
    assert_eq!(s, StatusCode::OK);
    assert_eq!(template(&e, &acc, "we_miss_you").await["recontact"], false);
    assert_eq!(template(&e, &acc, "come_back").await["recontact"], true);
    let (_, list) = call(&e.api, Method::GET, "/templates", None).await;
    let flagged: Vec<&str> = list["items"]
        .as_array()
        .unwrap()
        .iter()
        .filter(|t| t["recontact"] == true)
        .map(|t| t["name"].as_str().unwrap())
        .collect();
    assert_eq!(flagged, vec!["come_back"]);
    let (_, a) = call(&e.api, Method::GET, &format!("/accounts/{acc}"), None).await;
    assert_eq!(a["recontact_template"]["name"], "come_back");
    let (_, accounts) = call(&e.api, Method::GET, "/accounts", None).await;
    assert_eq!(
        accounts["items"][0]["recontact_template"]["name"],
        "come_back"
    );

    // Only an existing, APPROVED template.
    let (s, body) = call(
        &e.api,
        Method::PUT,
        &path,
        Some(json!({"name": "not_yet", "language": "en"})),
    )
    .await;
    assert_eq!(s, StatusCode::CONFLICT, "{body}");
    let (s, body) = call(
        &e.api,
        Method::PUT,
        &path,
        Some(json!({"name": "nope", "language": "en"})),
    )
    .await;
    assert_eq!(
        (s, body["field"].as_str()),
        (StatusCode::UNPROCESSABLE_ENTITY, Some("name"))
    );
    let (s, _) = call(
        &e.api,
        Method::PUT,
        "/accounts/acc_missing/recontact-template",
        Some(json!({"name": "come_back", "language": "en"})),
    )
    .await;
    assert_eq!(s, StatusCode::NOT_FOUND);
    let (_, a) = call(&e.api, Method::GET, &format!("/accounts/{acc}"), None).await;
    assert_eq!(
        a["recontact_template"]["name"], "come_back",
        "failed attempts change nothing"
    );

    // Deleting the flagged template leaves the account without one.
    let (s, _) = call(
        &e.api,
        Method::DELETE,
        &format!("/templates/{acc}/come_back/en"),
        None,
    )
    .await;
    assert_eq!(s, StatusCode::NO_CONTENT);
    let (_, a) = call(&e.api, Method::GET, &format!("/accounts/{acc}"), None).await;
    assert_eq!(a["recontact_template"], Value::Null);
}

testkit::on_both_backends! {
    memory: memory(), dynamo: dynamo().await;
    one_recontact_template_per_account: r3_5_one_recontact_template_per_account, r3_5_one_recontact_template_per_account_on_dynamodb;
}

#[test]
fn r3_openapi_document_describes_the_template_routes() {
    use utoipa::OpenApi;
    let doc = shared::http::templates::TemplatesApi::openapi();
    let json: Value = serde_json::from_str(&doc.to_json().unwrap()).unwrap();
    let sync = &json["paths"]["/accounts/{id}/templates/sync"]["post"];
    assert!(sync["responses"]["502"].is_object(), "{sync}");
    let create = &json["paths"]["/templates"]["post"];
    assert_eq!(
        create["requestBody"]["content"]["application/json"]["example"]["name"],
        "spring_offer"
    );
}
