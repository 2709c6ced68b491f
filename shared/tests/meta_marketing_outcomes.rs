//! Issue 18: Meta's 2025-2026 marketing outcomes as data. 131049 (the contact's marketing
//! limit) waits and sends again by the campaign's rule; 131050 and the `user_preferences`
//! webhook keep MARKETING templates (only) from a contact until it resumes; 130472 (Meta's
//! marketing experiment) is an outcome of its own. Each on the send answer (the simulator
//! refuses) and on the status webhook (Meta accepts, then reports the failure).

use testkit::harness as common;

use axum::body::Body;
use axum::http::{Method, Request, StatusCode};
use chrono::{Duration, TimeZone, Utc};
use serde_json::{json, Value};
use shared::domain::hopper::shard_of;
use shared::domain::inbound::{EntryRef, Inbound, StatusKind, StatusUpdate};
use shared::domain::phone::PhoneNumber;
use shared::ports::Clock;
use shared::providers::meta::signature_header;
use shared::repo;
use std::sync::Arc;
use testkit::harness::{Spawn, Spawned};
use testkit::memory::MemoryTable;
use testkit::simulator::{SimConfig, SimFailure, SimFailureKind};

const PHONE: &str = "919812340077";
const OTHER: &str = "919812340078";

async fn spawn() -> Spawned {
    spawn_with(true).await
}

/// With `webhooks` off the simulator's statuses never arrive: a test plays Meta's own.
async fn spawn_with(webhooks: bool) -> Spawned {
    Spawn::new(Arc::new(MemoryTable::new()))
        .simulator(SimConfig {
            reply_percent: 0,
            ..SimConfig::default()
        })
        .serve_webhooks(webhooks)
        .spawn()
        .await
}

/// Makes the simulator refuse sends to `phone` with Meta's `code`.
fn refuse(h: &Spawned, phone: &str, code: i64) {
    let mut f = SimFailure::new(SimFailureKind::Temporary);
    f.code = Some(code);
    h.simulator().set_failure(phone, f);
}

/// Runs the system for a minute of its clock: the sweeper, a tick, sends, webhooks.
async fn run(h: &Spawned) {
    h.sys.sweeper.sweep().await.unwrap();
    h.clock.advance(Duration::seconds(55));
    h.sys.tick_if_due().await.unwrap();
    for _ in 0..5 {
        h.sys.drain_queue().await.unwrap();
        h.clock.advance(Duration::seconds(1));
    }
    h.simulator().idle().await;
    h.sys.sweeper.sweep().await.unwrap();
}

async fn entry(h: &Spawned, id: &str, phone: &str) -> Value {
    let page = h
        .ok(
            Method::GET,
            &format!("/campaigns/{id}/hopper/entries"),
            None,
        )
        .await;
    page["items"]
        .as_array()
        .unwrap()
        .iter()
        .find(|e| e["phone"] == phone)
        .cloned()
        .unwrap_or_else(|| panic!("{phone} not listed: {page}"))
}

async fn stats(h: &Spawned, id: &str) -> Value {
    h.ok(Method::GET, &format!("/campaigns/{id}/stats"), None)
        .await
}

/// Whether [`PHONE`] is on the tenant's marketing opt-out.
async fn marketing_stopped(h: &Spawned) -> bool {
    let phone = PhoneNumber::parse(PHONE).unwrap();
    repo::blocklists::is_marketing_opted_out(&*h.table, "acme", &phone)
        .await
        .unwrap()
}

/// Messages the simulator accepted for `phone`.
fn sends_to(h: &Spawned, phone: &str) -> usize {
    h.simulator()
        .sent()
        .iter()
        .filter(|s| s.to == phone)
        .count()
}

async fn attempts(h: &Spawned, id: &str, phone: &str) -> u64 {
    entry(h, id, phone).await["attempts"].as_u64().unwrap()
}

/// A MARKETING campaign to [`PHONE`] and [`OTHER`], launched, with `settings` patched on
/// before the launch.
async fn launched(h: &Spawned, settings: Value) -> String {
    let id = h
        .ready_campaign(&[PHONE, OTHER], json!({"category": "MARKETING"}))
        .await;
    if settings.as_object().is_some_and(|o| !o.is_empty()) {
        h.ok(Method::PATCH, &format!("/campaigns/{id}"), Some(settings))
            .await;
    }
    common::launch(&h.api, &id).await;
    id
}

#[tokio::test]
async fn a_131049_refusal_waits_by_the_campaign_rule_sends_again_and_then_gives_up() {
    let h = spawn().await;
    refuse(&h, PHONE, 131049);
    let id = launched(
        &h,
        json!({"marketing_limit_retry": {"spacing_hours": 24, "max_attempts": 2}}),
    )
    .await;
    run(&h).await;
    let e = entry(&h, &id, PHONE).await;
    assert_eq!(
        (
            e["state"].as_str(),
            e["reason"].as_str(),
            e["outcome"].as_str()
        ),
        (
            Some("FRESH"),
            Some("held by Meta's marketing limit"),
            Some("waiting")
        ),
        "{e}"
    );
    assert_eq!(e["marketing_holds"], 1, "{e}");
    let s = stats(&h, &id).await;
    assert_eq!(s["marketing_limit_held"], 1, "{s}");
    assert_eq!(entry(&h, &id, OTHER).await["state"], "PENDING");

    // Not before the spacing: Meta would refuse again.
    h.clock.advance(Duration::hours(23));
    run(&h).await;
    assert_eq!(
        attempts(&h, &id, PHONE).await,
        1,
        "sent again inside the spacing"
    );

    // After it, sent again (and refused again): a second hold, then the end of the rule.
    for n in [2, 3] {
        h.clock.advance(Duration::hours(1));
        run(&h).await;
        run(&h).await;
        assert_eq!(attempts(&h, &id, PHONE).await, n, "attempt {n} sent");
        h.clock.advance(Duration::hours(23));
    }
    let e = entry(&h, &id, PHONE).await;
    assert_eq!(
        (e["state"].as_str(), e["reason"].as_str()),
        (Some("FAILED"), Some("Meta's marketing limit")),
        "{e}"
    );
    let s = stats(&h, &id).await;
    assert_eq!(s["marketing_limit_held"], 0, "{s}");
    assert_eq!(s["not_sent_by_reason"]["Meta's marketing limit"], 1, "{s}");
}

#[tokio::test]
async fn a_held_entry_goes_out_once_metas_limit_lets_it() {
    let h = spawn().await;
    let mut once = SimFailure::new(SimFailureKind::Temporary);
    once.code = Some(131049);
    once.times = Some(1);
    h.simulator().set_failure(PHONE, once);
    let id = launched(&h, json!({})).await;
    run(&h).await;
    assert_eq!(entry(&h, &id, PHONE).await["state"], "FRESH");
    h.clock.advance(Duration::hours(24));
    run(&h).await;
    run(&h).await;
    let e = entry(&h, &id, PHONE).await;
    assert_eq!(
        (
            e["state"].as_str(),
            e["reason"].as_str(),
            e["attempts"].as_u64()
        ),
        (Some("PENDING"), None, Some(2)),
        "{e}"
    );
    assert_eq!(stats(&h, &id).await["marketing_limit_held"], 0);
}

/// The status webhook Meta sends for `phone`'s current message in campaign `id`.
async fn failed_status(h: &Spawned, id: &str, phone: &str, code: i64, at_secs: i64) -> Inbound {
    let c = repo::get_campaign(&*h.table, "acme", id)
        .await
        .unwrap()
        .unwrap();
    let phone = PhoneNumber::parse(phone).unwrap();
    let r = EntryRef {
        tenant: "acme".into(),
        campaign_id: id.to_owned(),
        shard: shard_of(&phone, c.hopper_shards),
        phone,
    };
    let e = repo::get_entry(&*h.table, &r).await.unwrap().unwrap();
    Inbound::Status(StatusUpdate {
        recipient: None,
        message_id: e.message_id.clone().unwrap(),
        status: StatusKind::Failed {
            code: Some(code),
            reason: shared::domain::outcome::meta_reason(code, ""),
            class: None,
        },
        at: h.clock.now() + Duration::seconds(at_secs),
        entry: Some(r),
        attempt: Some(e.attempts),
        sender_id: Some("106540352242922".into()),
        user_id: None,
    })
}

#[tokio::test]
async fn a_131049_status_holds_the_entry_once_and_never_past_the_campaigns_end() {
    let h = spawn_with(false).await;
    let end = common::t0() + Duration::hours(30);
    let id = launched(&h, json!({ "end_at": end })).await;
    run(&h).await;
    let status = failed_status(&h, &id, PHONE, 131049, 0).await;
    h.sys.inbox.handle(vec![status.clone()]).await.unwrap();
    let e = entry(&h, &id, PHONE).await;
    assert_eq!(
        (
            e["state"].as_str(),
            e["reason"].as_str(),
            e["marketing_holds"].as_u64()
        ),
        (
            Some("FRESH"),
            Some("held by Meta's marketing limit"),
            Some(1)
        ),
        "{e}"
    );
    // The same webhook delivered again changes nothing.
    h.sys.inbox.handle(vec![status]).await.unwrap();
    assert_eq!(entry(&h, &id, PHONE).await, e);

    // Sent again after a day; refused again, the next try would fall after the end.
    h.clock.advance(Duration::hours(24));
    run(&h).await;
    run(&h).await;
    assert_eq!(sends_to(&h, PHONE), 2);
    let again = failed_status(&h, &id, PHONE, 131049, 0).await;
    h.sys.inbox.handle(vec![again]).await.unwrap();
    let e = entry(&h, &id, PHONE).await;
    assert_eq!(
        (e["state"].as_str(), e["reason"].as_str()),
        (Some("FAILED"), Some("Meta's marketing limit")),
        "{e}"
    );
}

#[tokio::test]
async fn a_131050_refusal_stops_marketing_to_the_contact_and_nothing_else() {
    let h = spawn().await;
    refuse(&h, PHONE, 131050);
    let id = launched(&h, json!({})).await;
    run(&h).await;
    let e = entry(&h, &id, PHONE).await;
    assert_eq!(
        (
            e["state"].as_str(),
            e["reason"].as_str(),
            e["disposition"].as_str()
        ),
        (
            Some("FAILED"),
            Some("stopped marketing messages"),
            Some("marketing_opt_out")
        ),
        "{e}"
    );
    assert!(marketing_stopped(&h).await);
    h.simulator().clear_failures();

    // A second MARKETING campaign does not try it; a UTILITY one does.
    let c = h.ok(Method::GET, &format!("/campaigns/{id}"), None).await;
    let account = c["account_id"].as_str().unwrap();
    for (name, category) in [("promo", "MARKETING"), ("notice", "UTILITY")] {
        let mut t = common::template_body(account, name);
        t["category"] = json!(category);
        h.ok(Method::POST, "/templates", Some(t)).await;
    }
    let marketing = again(&h, account, "promo").await;
    let utility = again(&h, account, "notice").await;
    let sent_before = sends_to(&h, PHONE);
    run(&h).await;
    let e = entry(&h, &marketing, PHONE).await;
    assert_eq!(
        (e["state"].as_str(), e["reason"].as_str()),
        (Some("BLOCK_LIST"), Some("stopped marketing messages")),
        "{e}"
    );
    assert_eq!(entry(&h, &utility, PHONE).await["state"], "PENDING");
    assert_eq!(
        sends_to(&h, PHONE),
        sent_before + 1,
        "only the utility template"
    );
    let s = stats(&h, &marketing).await;
    assert_eq!(
        s["not_sent_by_reason"]["stopped marketing messages"], 1,
        "{s}"
    );
}

/// A campaign of `template` to [`PHONE`] on `account`, launched.
async fn again(h: &Spawned, account: &str, template: &str) -> String {
    let body = common::campaign_body(template, account, template);
    let id = h.ok(Method::POST, "/campaigns", Some(body)).await["id"]
        .as_str()
        .unwrap()
        .to_owned();
    let list = h
        .ok(Method::POST, "/lists", Some(json!({ "name": template })))
        .await["id"]
        .as_str()
        .unwrap()
        .to_owned();
    h.ok(
        Method::POST,
        &format!("/lists/{list}/members"),
        Some(json!({ "phones": [PHONE] })),
    )
    .await;
    h.ok(
        Method::POST,
        &format!("/campaigns/{id}/lists"),
        Some(json!({ "list_id": list })),
    )
    .await;
    common::launch(&h.api, &id).await;
    id
}

/// Meta's `user_preferences` webhooks (the copy of ../shared/fixtures in this repository).
const FIXTURE: &str = include_str!("fixtures/meta-webhooks/user_marketing_preferences.json");

/// The fixture's `user_preferences` webhook for `wa_id`, saying `value` at `ts`.
fn preferences_body(value: &str, wa_id: &str, ts: i64) -> String {
    let fixtures: Value = serde_json::from_str(FIXTURE).unwrap();
    let mut body = fixtures["resume"].clone();
    let pref = &mut body["entry"][0]["changes"][0]["value"]["user_preferences"][0];
    pref["value"] = json!(value);
    pref["wa_id"] = json!(wa_id);
    pref["timestamp"] = json!(ts);
    pref["detail"] = json!(format!("User requested to {value} marketing messages"));
    body.to_string()
}

async fn post_hook(h: &Spawned, body: String) {
    let secret = SimConfig::default().app_secret;
    let req = Request::builder()
        .method(Method::POST)
        .uri("/webhooks/meta")
        .header("content-type", "application/json")
        .header(
            "x-hub-signature-256",
            signature_header(secret.as_bytes(), body.as_bytes()),
        )
        .body(Body::from(body))
        .unwrap();
    let (status, bytes) = common::send(&h.hook, req).await;
    assert_eq!(
        status,
        StatusCode::OK,
        "{}",
        String::from_utf8_lossy(&bytes)
    );
}

#[tokio::test]
async fn user_preferences_stop_and_resume_the_contacts_marketing_in_time_order() {
    let h = spawn().await;
    h.ready_campaign(&[PHONE], json!({})).await;
    let stopped = || marketing_stopped(&h);
    let t = Utc
        .with_ymd_and_hms(2026, 11, 21, 9, 0, 0)
        .unwrap()
        .timestamp();
    // The fixture as Meta sends it parses unchanged: a resume of a contact never stopped.
    let fixture = serde_json::from_str::<Value>(FIXTURE).unwrap()["resume"].to_string();
    post_hook(&h, fixture).await;
    assert!(!stopped().await);

    post_hook(&h, preferences_body("stop", PHONE, t)).await;
    assert!(stopped().await, "stop");
    // An older resume arriving late leaves the stop; a newer one lifts it.
    post_hook(&h, preferences_body("resume", PHONE, t - 60)).await;
    assert!(
        stopped().await,
        "an older resume does not lift a newer stop"
    );
    post_hook(&h, preferences_body("resume", PHONE, t + 60)).await;
    assert!(!stopped().await, "resume");
    // A replayed stop from before the resume stays in the past.
    post_hook(&h, preferences_body("stop", PHONE, t)).await;
    assert!(!stopped().await);
}

#[tokio::test]
async fn a_user_preferences_stop_for_a_number_of_no_account_touches_no_tenant() {
    let h = spawn().await;
    h.ready_campaign(&[PHONE], json!({})).await;
    let mut body: Value =
        serde_json::from_str(&preferences_body("stop", PHONE, 1_764_000_000)).unwrap();
    body["entry"][0]["changes"][0]["value"]["metadata"]["phone_number_id"] = json!("999");
    post_hook(&h, body.to_string()).await;
    assert!(!marketing_stopped(&h).await);
}

#[tokio::test]
async fn a_130472_refusal_or_status_is_metas_marketing_experiment_not_a_failure() {
    let h = spawn_with(false).await;
    refuse(&h, PHONE, 130472);
    let id = launched(&h, json!({})).await;
    run(&h).await;
    let e = entry(&h, &id, PHONE).await;
    assert_eq!(
        (
            e["state"].as_str(),
            e["outcome"].as_str(),
            e["disposition"].as_str(),
            e["reason"].as_str()
        ),
        (
            Some("FAILED"),
            Some("marketing experiment"),
            Some("marketing_experiment"),
            Some("Meta marketing experiment")
        ),
        "{e}"
    );
    // On the status webhook: the accepted message to OTHER, then Meta's 130472.
    let status = failed_status(&h, &id, OTHER, 130472, 1).await;
    h.sys.inbox.handle(vec![status]).await.unwrap();
    let e = entry(&h, &id, OTHER).await;
    assert_eq!(
        (e["state"].as_str(), e["outcome"].as_str()),
        (Some("FAILED"), Some("marketing experiment")),
        "{e}"
    );
    let s = stats(&h, &id).await;
    assert_eq!(
        s["not_sent_by_reason"]["Meta marketing experiment"], 2,
        "{s}"
    );
    // Not a reason to suppress anything: the contact is not opted out of marketing.
    assert!(!marketing_stopped(&h).await);
}

#[tokio::test]
async fn the_marketing_limit_rule_is_validated_naming_the_field() {
    let h = spawn().await;
    let id = h.ready_campaign(&[PHONE], json!({})).await;
    for (rule, field) in [
        (
            json!({"spacing_hours": 12, "max_attempts": 3}),
            "marketing_limit_retry.spacing_hours",
        ),
        (
            json!({"spacing_hours": 24, "max_attempts": 8}),
            "marketing_limit_retry.max_attempts",
        ),
    ] {
        let (s, v) = h
            .call(
                Method::PATCH,
                &format!("/campaigns/{id}"),
                Some(json!({ "marketing_limit_retry": rule })),
            )
            .await;
        assert_eq!(
            (s, v["field"].as_str()),
            (StatusCode::UNPROCESSABLE_ENTITY, Some(field)),
            "{v}"
        );
    }
    let c = h.ok(Method::GET, &format!("/campaigns/{id}"), None).await;
    assert_eq!(
        c["marketing_limit_retry"],
        json!({"spacing_hours": 24, "max_attempts": 3}),
        "the default"
    );
}

#[tokio::test]
async fn metas_message_status_and_the_contacts_user_id_are_recorded_on_the_entry() {
    let h = spawn_with(false).await;
    let id = launched(&h, json!({})).await;
    run(&h).await;
    let e = entry(&h, &id, PHONE).await;
    assert_eq!(e["message_status"], "accepted", "the send answer's: {e}");
    assert_eq!(e["user_id"], Value::Null);
    // Meta's status webhook names the contact's business-scoped user id.
    let Inbound::Status(mut s) = failed_status(&h, &id, PHONE, 0, 2).await else {
        unreachable!()
    };
    s.status = StatusKind::Delivered;
    s.user_id = Some("IN.1234567890".into());
    h.sys.inbox.handle(vec![Inbound::Status(s)]).await.unwrap();
    let e = entry(&h, &id, PHONE).await;
    assert_eq!(
        (e["user_id"].as_str(), e["state"].as_str()),
        (Some("IN.1234567890"), Some("PENDING")),
        "{e}"
    );
}

#[tokio::test]
async fn a_131050_status_about_another_message_puts_nobody_on_the_marketing_opt_out() {
    let h = spawn_with(false).await;
    let id = launched(&h, json!({})).await;
    run(&h).await;
    // Callback data naming this tenant's entry, for a message the entry never held (a
    // status judged by its message id alone: no number, as Kaleyra's come).
    let Inbound::Status(mut s) = failed_status(&h, &id, PHONE, 131050, 2).await else {
        unreachable!()
    };
    s.message_id = "wamid.someone-elses".into();
    s.sender_id = None;
    h.sys.inbox.handle(vec![Inbound::Status(s)]).await.unwrap();
    assert!(!marketing_stopped(&h).await);
    assert_eq!(entry(&h, &id, PHONE).await["state"], "PENDING");
    // The entry's own message's 131050 does.
    let own = failed_status(&h, &id, PHONE, 131050, 3).await;
    h.sys.inbox.handle(vec![own]).await.unwrap();
    assert!(marketing_stopped(&h).await);
}

/// Meta as it behaves when its 131049 status overtakes the send's answer: the status
/// reaches the inbox before the sender records the accepted message.
struct Overtaken {
    inbox: std::sync::OnceLock<Arc<shared::app::inbox::Inbox>>,
    clock: Arc<dyn Clock>,
}

#[async_trait::async_trait]
impl shared::ports::MessagingProvider for Overtaken {
    async fn send(
        &self,
        account: &shared::domain::account::Account,
        msg: &shared::ports::OutboundTemplate,
    ) -> Result<shared::ports::Accepted, shared::domain::outcome::SendFailure> {
        let (r, attempt) = EntryRef::decode_attempt(&msg.callback_data).unwrap();
        let status = StatusUpdate {
            recipient: None,
            message_id: "wamid.o1".into(),
            status: StatusKind::Failed {
                code: Some(131049),
                reason: "Meta's marketing limit".into(),
                class: None,
            },
            at: self.clock.now(),
            entry: Some(r),
            attempt,
            sender_id: Some(account.sender_id.clone()),
            user_id: None,
        };
        let inbox = self.inbox.get().unwrap();
        inbox.handle(vec![Inbound::Status(status)]).await.unwrap();
        Ok(shared::ports::Accepted {
            message_id: "wamid.o1".into(),
            message_status: Some("accepted".into()),
        })
    }
}

#[tokio::test]
async fn a_131049_status_that_overtakes_the_send_leaves_nothing_of_the_message() {
    let clock = common::frozen(common::t0());
    let provider = Arc::new(Overtaken {
        inbox: Default::default(),
        clock: clock.clone(),
    });
    let h = Spawn::new(Arc::new(MemoryTable::new()))
        .clock(clock)
        .provider(provider.clone())
        .build();
    provider.inbox.set(h.sys.inbox.clone()).ok().unwrap();
    let id = h.ready_campaign(&[PHONE], json!({})).await;
    common::launch(&h.api, &id).await;
    h.sys.dispatcher.tick().await.unwrap();
    h.sys.drain_queue().await.unwrap();
    let e = entry(&h, &id, PHONE).await;
    assert_eq!(
        (
            e["state"].as_str(),
            e["reason"].as_str(),
            e["message_status"].as_str()
        ),
        (Some("FRESH"), Some("held by Meta's marketing limit"), None),
        "{e}"
    );
    let phone = PhoneNumber::parse(PHONE).unwrap();
    let held = repo::get_interaction(&*h.table, "106540352242922", &phone)
        .await
        .unwrap();
    assert!(held.is_none(), "a refused message holds nobody: {held:?}");
}
