//! R1.1-R1.8: the campaign model over the HTTP API — settings, lifecycle, edit rules,
//! cancel and delete, test campaigns, listing and tenants — on the in-memory adapters, and
//! where storage matters (listing pagination, background delete, reschedule) also on
//! DynamoDB and EventBridge Scheduler in the local emulator.

use testkit::harness as common;

use async_trait::async_trait;
use axum::http::{Method, StatusCode};
use chrono::{Duration, Utc};
use serde_json::{json, Value};
use shared::adapters::aws::scheduler::{at_expression, EventBridgeScheduler};
use shared::adapters::aws::{setup, DynamoTable};
use shared::app::campaigns::launch_schedule_name;
use shared::app::dispatch::Allowance;
use shared::app::sweep::{PurgeBudget, DELETE_GRACE};
use shared::domain::account::Account;
use shared::domain::hopper::HopperEntry;
use shared::domain::inbound::EntryRef;
use shared::domain::outcome::SendFailure;
use shared::domain::phone::PhoneNumber;
use shared::domain::stats;
use shared::domain::template::ContactData;
use shared::ports::{Accepted, Clock, MessagingProvider, OutboundTemplate, Scheduler, Table};
use shared::repo::{self, Interaction};
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Arc;
use testkit::harness::{Spawn, Spawned};
use testkit::memory::{MemoryScheduler, MemoryTable};

// ---- harness ---------------------------------------------------------------------------

/// Accepts every send; counts them.
#[derive(Default)]
struct FakeProvider {
    sent: AtomicU64,
}

#[async_trait]
impl MessagingProvider for FakeProvider {
    async fn send(&self, _: &Account, _: &OutboundTemplate) -> Result<Accepted, SendFailure> {
        let n = self.sent.fetch_add(1, Ordering::SeqCst);
        Ok(format!("wamid.test{n}").into())
    }
}

enum Sched {
    Memory(Arc<MemoryScheduler>),
    Aws(Arc<EventBridgeScheduler>),
}

impl Sched {
    /// The stored schedule's `at(...)` expression, if any.
    async fn at(&self, campaign: &str) -> Option<String> {
        let name = launch_schedule_name(campaign);
        match self {
            Sched::Memory(m) => m.get(&name).map(|s| at_expression(s.at)),
            Sched::Aws(a) => a.get(&name).await.unwrap().map(|(expr, _, _)| expr),
        }
    }
    fn port(&self) -> Arc<dyn Scheduler> {
        match self {
            Sched::Memory(m) => m.clone(),
            Sched::Aws(a) => a.clone(),
        }
    }
}

struct H {
    s: Spawned,
    sched: Sched,
    provider: Arc<FakeProvider>,
}

impl std::ops::Deref for H {
    type Target = Spawned;
    fn deref(&self) -> &Spawned {
        &self.s
    }
}

impl H {
    fn table(&self) -> &dyn Table {
        &*self.sys.ports.table
    }
}

fn start_time() -> chrono::DateTime<Utc> {
    common::t0()
}

fn harness(table: Arc<dyn Table>, sched: Sched) -> H {
    let provider = Arc::new(FakeProvider::default());
    let s = Spawn::new(table)
        .at(start_time())
        .scheduler(sched.port())
        .provider(provider.clone())
        .build();
    H { s, sched, provider }
}

fn memory() -> H {
    harness(
        Arc::new(MemoryTable::new()),
        Sched::Memory(Arc::new(MemoryScheduler::default())),
    )
}

/// The same system on DynamoDB and EventBridge Scheduler in the local emulator.
async fn emulator() -> H {
    let cfg = common::emulator_config("R1 campaign").await;
    let name = format!("r1-{}", uuid::Uuid::new_v4().simple());
    let ddb = common::create_table(&cfg, &name).await;
    let sch = aws_sdk_scheduler::Client::new(&cfg);
    setup::ensure_schedule_group(&sch, &name).await.unwrap();
    let scheduler = EventBridgeScheduler::new(
        sch,
        name.clone(),
        "arn:aws:lambda:us-east-1:123456789012:function:launcher",
        "arn:aws:iam::123456789012:role/scheduler",
    );
    harness(
        Arc::new(DynamoTable::new(ddb, name)),
        Sched::Aws(Arc::new(scheduler)),
    )
}

/// What a tenant needs before campaigns: an account, two approved templates, contacts and
/// a list holding them.
struct Fixture {
    account: String,
    list: String,
    phones: Vec<String>,
}

/// A sending number of the tenant's own: a number belongs to one tenant.
fn sender_of(tenant: &str) -> String {
    let n: u32 = tenant.bytes().map(u32::from).sum();
    format!("10654035{n:07}")
}

async fn fixture(h: &H, tenant: &str, contacts: usize) -> Fixture {
    let acc = h
        .ok_as(tenant, Method::POST, "/accounts", Some(json!({
            "name": "Main", "sender_id": sender_of(tenant), "token_ref": "env:TOKEN", "waba_id": "102290129340398"
        })))
        .await;
    let account = acc["id"].as_str().unwrap().to_owned();
    for name in ["spring_offer", "autumn_offer"] {
        h.ok_as(
            tenant,
            Method::POST,
            "/templates",
            Some(common::merged(
                common::template_body(&account, name),
                json!({"quick_replies": ["Yes", "No"]}),
            )),
        )
        .await;
    }
    let phones: Vec<String> = (0..contacts).map(|i| format!("9198123{i:05}")).collect();
    if !phones.is_empty() {
        let body: Vec<Value> = phones
            .iter()
            .enumerate()
            .map(|(i, p)| json!({"phone": p, "name": format!("Customer {i}"), "fields": {"code": format!("C{i}")}}))
            .collect();
        h.ok_as(tenant, Method::POST, "/contacts", Some(Value::Array(body)))
            .await;
    }
    let list = h
        .ok_as(
            tenant,
            Method::POST,
            "/lists",
            Some(json!({"name": "VIPs"})),
        )
        .await["id"]
        .as_str()
        .unwrap()
        .to_owned();
    if !phones.is_empty() {
        h.ok_as(
            tenant,
            Method::POST,
            &format!("/lists/{list}/members"),
            Some(json!({"phones": phones})),
        )
        .await;
    }
    Fixture {
        account,
        list,
        phones,
    }
}

fn campaign_body(f: &Fixture, extra: Value) -> Value {
    common::merged(
        common::campaign_body("Spring offer", &f.account, "spring_offer"),
        extra,
    )
}

async fn create(h: &H, tenant: &str, body: Value) -> String {
    let c = h
        .ok_as(tenant, Method::POST, "/campaigns", Some(body))
        .await;
    c["id"].as_str().unwrap().to_owned()
}

async fn attach(h: &H, tenant: &str, id: &str, f: &Fixture) {
    h.ok_as(
        tenant,
        Method::POST,
        &format!("/campaigns/{id}/lists"),
        Some(json!({"list_id": f.list})),
    )
    .await;
}

fn field(v: &Value) -> &str {
    v["field"].as_str().unwrap_or("")
}

// ---- R1.1 / R1.2 settings --------------------------------------------------------------

#[tokio::test]
async fn r1_1_every_setting_is_stored_with_timestamps() {
    let h = memory();
    let f = fixture(&h, "acme", 0).await;
    h.ok_as(
        "acme",
        Method::PUT,
        "/tenant",
        Some(json!({"timezone": "Asia/Kolkata"})),
    )
    .await;
    let start = start_time() + Duration::days(1);
    let body = campaign_body(
        &f,
        json!({
            "notes": "VIPs first",
            "pacing": {"unit": "contacts_per_hour", "value": 30},
            "response_timeout_days": 3,
            "duplicate_window_days": 7,
            "include_active_interactions": true,
            "close_on_quick_reply": true,
            "start_at": start,
            "end_at": start + Duration::days(2),
            "calling_hours": {"start": "09:00", "end": "20:30", "timezone": "Europe/Madrid"},
            "reply_route": "flow:spring-bot"
        }),
    );
    let (s, c) = h
        .call_as("acme", Method::POST, "/campaigns", Some(body))
        .await;
    assert_eq!(s, StatusCode::CREATED, "{c}");
    let id = c["id"].as_str().unwrap();
    let (_, got) = h
        .call_as("acme", Method::GET, &format!("/campaigns/{id}"), None)
        .await;
    for (k, v) in [
        ("tenant", json!("acme")),
        ("channel", json!("whatsapp")),
        ("status", json!("READY")),
        ("notes", json!("VIPs first")),
        ("pacing", json!({"unit": "contacts_per_hour", "value": 30})),
        ("response_timeout_days", json!(3)),
        ("duplicate_window_days", json!(7)),
        ("include_active_interactions", json!(true)),
        ("close_on_quick_reply", json!(true)),
        ("start_at", json!(start)),
        ("end_at", json!(start + Duration::days(2))),
        (
            "calling_hours",
            json!({"start": "09:00", "end": "20:30", "timezone": "Europe/Madrid", "recipient_timezone": false}),
        ),
        ("reply_route", json!("flow:spring-bot")),
        ("display_timezone", json!("Asia/Kolkata")),
        ("created_at", json!(start_time())),
        ("updated_at", json!(start_time())),
    ] {
        assert_eq!(got[k], v, "{k} in {got}");
    }
    assert_eq!(
        got["progress"],
        json!({"sent": 0, "target": 0, "percent": 0.0})
    );
    // Defaults: 20 messages/s, all flags off, no duplicate check.
    let d = create(&h, "acme", campaign_body(&f, json!({"rate": null}))).await;
    let (_, got) = h
        .call_as("acme", Method::GET, &format!("/campaigns/{d}"), None)
        .await;
    assert_eq!(
        got["pacing"],
        json!({"unit": "messages_per_second", "value": 20})
    );
    assert_eq!(got["include_active_interactions"], json!(false));
    assert_eq!(got["close_on_quick_reply"], json!(false));
    assert!(got.get("duplicate_window_days").is_none_or(Value::is_null));
    // An edit moves updated_at, not created_at.
    h.clock.advance(Duration::minutes(5));
    let e = h
        .ok_as(
            "acme",
            Method::PATCH,
            &format!("/campaigns/{d}"),
            Some(json!({"notes": "later"})),
        )
        .await;
    assert_eq!(e["created_at"], json!(start_time()));
    assert_eq!(e["updated_at"], json!(start_time() + Duration::minutes(5)));
    // An SMS campaign keeps its message body, on an account that sends SMS.
    let twilio = h
        .ok_as(
            "acme",
            Method::POST,
            "/accounts",
            Some(json!({
                "name": "SMS", "provider": "twilio", "token_ref": "env:TWILIO",
                "sender_id": "AC00000000000000000000000000000abc:+15005550006"
            })),
        )
        .await;
    let sms = h
        .ok_as(
            "acme",
            Method::POST,
            "/campaigns",
            Some(json!({
                "name": "SMS", "channel": "sms", "account_id": twilio["id"], "message": "Hi from Acme"
            })),
        )
        .await;
    assert_eq!(
        (sms["status"].as_str(), sms["message"].as_str()),
        (Some("READY"), Some("Hi from Acme"))
    );
}

#[tokio::test]
async fn r1_2_invalid_settings_are_422_naming_the_field() {
    let h = memory();
    let f = fixture(&h, "acme", 0).await;
    let start = start_time() + Duration::days(1);
    for (extra, want) in [
        (json!({"rate": 0}), "rate"),
        (json!({"rate": 1001}), "rate"),
        (
            json!({"pacing": {"unit": "min_interval_seconds", "value": 0}}),
            "pacing.value",
        ),
        (
            json!({"rate": 5, "pacing": {"unit": "messages_per_second", "value": 5}}),
            "pacing",
        ),
        (json!({"response_timeout_days": 0}), "response_timeout_days"),
        (json!({"duplicate_window_days": 0}), "duplicate_window_days"),
        (json!({"duplicate_window_days": 8}), "duplicate_window_days"),
        (
            json!({"calling_hours": {"start": "25:00", "end": "18:00", "timezone": "UTC"}}),
            "calling_hours.start",
        ),
        (
            json!({"calling_hours": {"start": "09:00", "end": "9pm", "timezone": "UTC"}}),
            "calling_hours.end",
        ),
        (
            json!({"calling_hours": {"start": "09:00", "end": "18:00", "timezone": "Mars/Base"}}),
            "calling_hours.timezone",
        ),
        (json!({"display_timezone": "Nowhere"}), "display_timezone"),
        (
            json!({"end_at": start_time() - Duration::hours(1)}),
            "end_at",
        ),
        (
            json!({"start_at": start, "end_at": start - Duration::minutes(1)}),
            "end_at",
        ),
        (
            json!({"template": {"name": "missing", "language": "en"}}),
            "template",
        ),
        (json!({"account_id": "acc_nope"}), "account_id"),
        (json!({"name": ""}), "name"),
    ] {
        let (s, v) = h
            .call_as(
                "acme",
                Method::POST,
                "/campaigns",
                Some(campaign_body(&f, extra.clone())),
            )
            .await;
        assert_eq!(
            (s, field(&v)),
            (StatusCode::UNPROCESSABLE_ENTITY, want),
            "{extra}: {v}"
        );
    }
    // Malformed JSON and unknown fields are 400 naming the field.
    let (s, v) = h
        .call_as(
            "acme",
            Method::POST,
            "/campaigns",
            Some(json!({"name": "x", "duplicate_window": 3})),
        )
        .await;
    assert_eq!(s, StatusCode::BAD_REQUEST, "{v}");
    let (s, v) = h
        .call_as(
            "acme",
            Method::POST,
            "/campaigns",
            Some(json!({"name": "x", "channel": "fax"})),
        )
        .await;
    assert_eq!((s, field(&v)), (StatusCode::BAD_REQUEST, "channel"), "{v}");
}

#[tokio::test]
async fn r1_2_end_date_must_follow_start_date() {
    let h = memory();
    let f = fixture(&h, "acme", 0).await;
    let start = start_time() + Duration::days(2);
    let id = create(&h, "acme", campaign_body(&f, json!({"start_at": start}))).await;
    let (s, v) = h
        .call_as(
            "acme",
            Method::PATCH,
            &format!("/campaigns/{id}"),
            Some(json!({"end_at": start - Duration::hours(1)})),
        )
        .await;
    assert_eq!(
        (s, field(&v)),
        (StatusCode::UNPROCESSABLE_ENTITY, "end_at"),
        "{v}"
    );
    let v = h
        .ok_as(
            "acme",
            Method::PATCH,
            &format!("/campaigns/{id}"),
            Some(json!({"end_at": start + Duration::hours(1)})),
        )
        .await;
    assert_eq!(v["end_at"], json!(start + Duration::hours(1)));
    // Moving the start past the end is refused too, naming end_at.
    let (s, v) = h
        .call_as(
            "acme",
            Method::PATCH,
            &format!("/campaigns/{id}"),
            Some(json!({"start_at": start + Duration::days(1)})),
        )
        .await;
    assert_eq!(
        (s, field(&v)),
        (StatusCode::UNPROCESSABLE_ENTITY, "end_at"),
        "{v}"
    );
}

#[tokio::test]
async fn r1_2_slow_pacing_sends_a_fraction_per_tick() {
    let h = memory();
    let f = fixture(&h, "acme", 5).await;
    let id = create(
        &h,
        "acme",
        campaign_body(
            &f,
            json!({"pacing": {"unit": "contacts_per_hour", "value": 30}}),
        ),
    )
    .await;
    attach(&h, "acme", &id, &f).await;
    h.ok_as(
        "acme",
        Method::POST,
        &format!("/campaigns/{id}/launch"),
        None,
    )
    .await;
    let mut per_tick = Vec::new();
    for _ in 0..6 {
        per_tick.push(h.sys.dispatcher.tick().await.unwrap().enqueued);
        h.clock.advance(Duration::seconds(60));
    }
    assert_eq!(
        per_tick,
        [1, 0, 1, 0, 1, 0],
        "30 an hour over 60 s ticks: one every other tick"
    );
    // Nothing after the end date.
    let g = create(
        &h,
        "acme",
        campaign_body(
            &f,
            json!({"rate": 1, "end_at": h.clock.now() + Duration::minutes(2)}),
        ),
    )
    .await;
    attach(&h, "acme", &g, &f).await;
    h.ok_as(
        "acme",
        Method::POST,
        &format!("/campaigns/{g}/launch"),
        None,
    )
    .await;
    let c = repo::get_campaign(h.table(), "acme", &g)
        .await
        .unwrap()
        .unwrap();
    assert_eq!(
        h.sys
            .dispatcher
            .dispatch(&c, Allowance::of(&c))
            .await
            .unwrap()
            .enqueued,
        5
    );
    h.clock.advance(Duration::minutes(3));
    let c = repo::get_campaign(h.table(), "acme", &g)
        .await
        .unwrap()
        .unwrap();
    assert_eq!(
        h.sys
            .dispatcher
            .dispatch(&c, Allowance::of(&c))
            .await
            .unwrap()
            .enqueued,
        0
    );
}

// ---- R1.3 lifecycle --------------------------------------------------------------------

#[tokio::test]
async fn r1_3_draft_becomes_ready_when_complete_and_transitions_are_409() {
    let h = memory();
    let f = fixture(&h, "acme", 2).await;
    let d = h
        .ok_as(
            "acme",
            Method::POST,
            "/campaigns",
            Some(json!({"name": "Later"})),
        )
        .await;
    assert_eq!(d["status"], "DRAFT");
    let id = d["id"].as_str().unwrap();
    attach(&h, "acme", id, &f).await;
    let (s, v) = h
        .call_as(
            "acme",
            Method::POST,
            &format!("/campaigns/{id}/launch"),
            None,
        )
        .await;
    assert_eq!(s, StatusCode::CONFLICT);
    assert!(
        v["message"]
            .as_str()
            .unwrap()
            .contains("missing account_id, template"),
        "{v}"
    );
    let r = h
        .ok_as(
            "acme",
            Method::PATCH,
            &format!("/campaigns/{id}"),
            Some(json!({
                "account_id": f.account, "template": {"name": "spring_offer", "language": "en"},
                "variables": [{"source": "contact_name"}, {"source": "text", "value": "X"}]
            })),
        )
        .await;
    assert_eq!(r["status"], "READY");
    for (action, status) in [
        ("pause", "READY"),
        ("resume", "READY"),
        ("unschedule", "READY"),
    ] {
        let (s, v) = h
            .call_as(
                "acme",
                Method::POST,
                &format!("/campaigns/{id}/{action}"),
                None,
            )
            .await;
        assert_eq!(s, StatusCode::CONFLICT, "{action}: {v}");
        assert_eq!(
            v["message"],
            format!("cannot {action} campaign {id} while it is {status}")
        );
    }
    let v = h
        .ok_as(
            "acme",
            Method::POST,
            &format!("/campaigns/{id}/launch"),
            None,
        )
        .await;
    assert_eq!(v["status"], "RUNNING");
    assert_eq!(
        h.ok_as(
            "acme",
            Method::POST,
            &format!("/campaigns/{id}/pause"),
            None
        )
        .await["status"],
        "PAUSED"
    );
    assert_eq!(
        h.ok_as(
            "acme",
            Method::POST,
            &format!("/campaigns/{id}/resume"),
            None
        )
        .await["status"],
        "RUNNING"
    );
    let (s, _) = h
        .call_as(
            "acme",
            Method::POST,
            &format!("/campaigns/{id}/launch"),
            None,
        )
        .await;
    assert_eq!(s, StatusCode::CONFLICT);
    // A campaign's account must send its channel: no SMS or voice campaign on a WhatsApp
    // account (voice has no provider yet).
    for channel in ["sms", "voice"] {
        let (s, v) = h
            .call_as(
                "acme",
                Method::POST,
                "/campaigns",
                Some(json!({"name": "X", "channel": channel, "account_id": f.account, "message": "Hi"})),
            )
            .await;
        assert_eq!(s, StatusCode::UNPROCESSABLE_ENTITY, "{v}");
        assert_eq!(v["field"], "account_id", "{v}");
    }
}

async fn reschedule_moves_the_schedule(h: H) {
    let f = fixture(&h, "acme", 2).await;
    let first = start_time() + Duration::hours(1);
    let id = create(&h, "acme", campaign_body(&f, json!({"start_at": first}))).await;
    attach(&h, "acme", &id, &f).await;
    let v = h
        .ok_as(
            "acme",
            Method::POST,
            &format!("/campaigns/{id}/launch"),
            None,
        )
        .await;
    assert_eq!(v["status"], "SCHEDULED");
    assert_eq!(h.sched.at(&id).await, Some(at_expression(first)));
    let later = start_time() + Duration::hours(3);
    let v = h
        .ok_as(
            "acme",
            Method::PATCH,
            &format!("/campaigns/{id}"),
            Some(json!({"start_at": later})),
        )
        .await;
    assert_eq!(
        (v["status"].as_str(), &v["start_at"]),
        (Some("SCHEDULED"), &json!(later))
    );
    assert_eq!(
        h.sched.at(&id).await,
        Some(at_expression(later)),
        "the schedule follows"
    );
    // A past start date cannot be set on a scheduled campaign.
    let (s, e) = h
        .call_as(
            "acme",
            Method::PATCH,
            &format!("/campaigns/{id}"),
            Some(json!({"start_at": start_time() - Duration::hours(1)})),
        )
        .await;
    assert_eq!(
        (s, field(&e)),
        (StatusCode::UNPROCESSABLE_ENTITY, "start_at"),
        "{e}"
    );
    // At the old time nothing starts: neither the tick nor a stale schedule firing.
    h.clock.advance(Duration::minutes(90));
    assert_eq!(h.sys.dispatcher.tick().await.unwrap().started, 0);
    let stale = json!({"action": "launch", "tenant": "acme", "campaign_id": id});
    shared::lambda::launcher(&h.sys.dispatcher, stale.clone())
        .await
        .unwrap();
    let v = h
        .ok_as("acme", Method::GET, &format!("/campaigns/{id}"), None)
        .await;
    assert_eq!(v["status"], "SCHEDULED");
    // At the new time it starts.
    h.clock.advance(Duration::minutes(90));
    shared::lambda::launcher(&h.sys.dispatcher, stale)
        .await
        .unwrap();
    let v = h
        .ok_as("acme", Method::GET, &format!("/campaigns/{id}"), None)
        .await;
    assert_eq!(v["status"], "RUNNING");
}

testkit::on_both_backends! {
    memory: memory(), dynamo: emulator().await;
    reschedule_moves_the_schedule: r1_3_reschedule_moves_the_schedule, r1_3_reschedule_moves_the_schedule_on_emulator;
}

async fn unschedule_deletes_the_schedule(h: H) {
    let f = fixture(&h, "acme", 2).await;
    let at = start_time() + Duration::days(1);
    let id = create(&h, "acme", campaign_body(&f, json!({"start_at": at}))).await;
    attach(&h, "acme", &id, &f).await;
    h.ok_as(
        "acme",
        Method::POST,
        &format!("/campaigns/{id}/launch"),
        None,
    )
    .await;
    assert!(h.sched.at(&id).await.is_some());
    let v = h
        .ok_as(
            "acme",
            Method::POST,
            &format!("/campaigns/{id}/unschedule"),
            None,
        )
        .await;
    assert_eq!(
        (v["status"].as_str(), &v["start_at"]),
        (Some("READY"), &json!(at))
    );
    assert_eq!(h.sched.at(&id).await, None, "the schedule is deleted");
    let (s, _) = h
        .call_as(
            "acme",
            Method::POST,
            &format!("/campaigns/{id}/unschedule"),
            None,
        )
        .await;
    assert_eq!(s, StatusCode::CONFLICT);
    // The tick does not start it at the old date.
    h.clock.advance(Duration::days(2));
    assert_eq!(h.sys.dispatcher.tick().await.unwrap().started, 0);
    // Cancelling a scheduled campaign deletes its schedule as well.
    let at = h.clock.now() + Duration::days(1);
    let id2 = create(&h, "acme", campaign_body(&f, json!({"start_at": at}))).await;
    attach(&h, "acme", &id2, &f).await;
    h.ok_as(
        "acme",
        Method::POST,
        &format!("/campaigns/{id2}/launch"),
        None,
    )
    .await;
    assert!(h.sched.at(&id2).await.is_some());
    h.ok_as(
        "acme",
        Method::POST,
        &format!("/campaigns/{id2}/cancel"),
        None,
    )
    .await;
    assert_eq!(h.sched.at(&id2).await, None);
}

testkit::on_both_backends! {
    memory: memory(), dynamo: emulator().await;
    unschedule_deletes_the_schedule: r1_3_unschedule_deletes_the_schedule, r1_3_unschedule_deletes_the_schedule_on_emulator;
}

#[tokio::test]
async fn r1_3_running_campaign_past_its_end_date_completes_when_nothing_is_in_flight() {
    let h = memory();
    let f = fixture(&h, "acme", 3).await;
    let id = create(
        &h,
        "acme",
        campaign_body(&f, json!({"end_at": start_time() + Duration::hours(1)})),
    )
    .await;
    attach(&h, "acme", &id, &f).await;
    h.ok_as(
        "acme",
        Method::POST,
        &format!("/campaigns/{id}/launch"),
        None,
    )
    .await;
    h.clock.advance(Duration::hours(2));
    assert_eq!(
        h.sys.dispatcher.tick().await.unwrap().enqueued,
        0,
        "nothing after the end date"
    );
    assert_eq!(h.sys.sweeper.sweep().await.unwrap().completed, 1);
    let v = h
        .ok_as("acme", Method::GET, &format!("/campaigns/{id}"), None)
        .await;
    assert_eq!(v["status"], "COMPLETED");
}

// ---- R1.4 edit rules -------------------------------------------------------------------

#[tokio::test]
async fn r1_4_running_campaign_cannot_change_template() {
    let h = memory();
    let f = fixture(&h, "acme", 3).await;
    let id = create(&h, "acme", campaign_body(&f, json!({}))).await;
    attach(&h, "acme", &id, &f).await;
    h.ok_as(
        "acme",
        Method::POST,
        &format!("/campaigns/{id}/launch"),
        None,
    )
    .await;
    let other = json!({"template": {"name": "autumn_offer", "language": "en"}});
    let (s, v) = h
        .call_as(
            "acme",
            Method::PATCH,
            &format!("/campaigns/{id}"),
            Some(other.clone()),
        )
        .await;
    assert_eq!(s, StatusCode::CONFLICT);
    assert!(
        v["message"]
            .as_str()
            .unwrap()
            .contains("cannot change the template"),
        "{v}"
    );
    let (s, _) = h
        .call_as(
            "acme",
            Method::PATCH,
            &format!("/campaigns/{id}"),
            Some(json!({"rate": 5})),
        )
        .await;
    assert_eq!(
        s,
        StatusCode::CONFLICT,
        "a RUNNING campaign is not editable at all"
    );
    // Adding contacts to a running campaign is fine (R2.2).
    let (s, v) = h
        .call_as(
            "acme",
            Method::POST,
            &format!("/campaigns/{id}/lists"),
            Some(json!({"list_id": f.list})),
        )
        .await;
    assert_eq!(s, StatusCode::OK, "{v}");
    // PAUSED may change rate, timeout and even the template.
    h.ok_as(
        "acme",
        Method::POST,
        &format!("/campaigns/{id}/pause"),
        None,
    )
    .await;
    let v = h
        .ok_as("acme", Method::PATCH, &format!("/campaigns/{id}"), Some(json!({
            "template": {"name": "autumn_offer", "language": "en"}, "rate": 5, "response_timeout_days": 2
        })))
        .await;
    assert_eq!(
        (v["template"]["name"].as_str(), v["status"].as_str()),
        (Some("autumn_offer"), Some("PAUSED"))
    );
    // ...but only to an existing, approved template.
    let (s, v) = h
        .call_as(
            "acme",
            Method::PATCH,
            &format!("/campaigns/{id}"),
            Some(json!({"template": {"name": "nope", "language": "en"}})),
        )
        .await;
    assert_eq!(
        (s, field(&v)),
        (StatusCode::UNPROCESSABLE_ENTITY, "template"),
        "{v}"
    );
    // Optimistic concurrency: a stale version is a 409, the current one passes.
    let version = v_of(&h, &id).await;
    let (s, v) = h
        .call_as(
            "acme",
            Method::PATCH,
            &format!("/campaigns/{id}"),
            Some(json!({"notes": "x", "version": version - 1})),
        )
        .await;
    assert_eq!(s, StatusCode::CONFLICT, "{v}");
    let v = h
        .ok_as(
            "acme",
            Method::PATCH,
            &format!("/campaigns/{id}"),
            Some(json!({"notes": "x", "version": version})),
        )
        .await;
    assert_eq!(v["version"], json!(version + 1));
    // COMPLETED and CANCELLED are final.
    h.ok_as(
        "acme",
        Method::POST,
        &format!("/campaigns/{id}/cancel"),
        None,
    )
    .await;
    let (s, _) = h
        .call_as(
            "acme",
            Method::PATCH,
            &format!("/campaigns/{id}"),
            Some(json!({"notes": "y"})),
        )
        .await;
    assert_eq!(s, StatusCode::CONFLICT);
}

async fn v_of(h: &H, id: &str) -> u64 {
    h.ok_as("acme", Method::GET, &format!("/campaigns/{id}"), None)
        .await["version"]
        .as_u64()
        .unwrap()
}

// ---- R1.5 cancel and delete ------------------------------------------------------------

#[tokio::test]
async fn r1_5_cancel_hides_from_listing() {
    let h = memory();
    let f = fixture(&h, "acme", 2).await;
    let keep = create(&h, "acme", campaign_body(&f, json!({"name": "Keep"}))).await;
    let gone = create(&h, "acme", campaign_body(&f, json!({"name": "Gone"}))).await;
    attach(&h, "acme", &gone, &f).await;
    h.ok_as(
        "acme",
        Method::POST,
        &format!("/campaigns/{gone}/launch"),
        None,
    )
    .await;
    let v = h
        .ok_as(
            "acme",
            Method::POST,
            &format!("/campaigns/{gone}/cancel"),
            None,
        )
        .await;
    assert_eq!(v["status"], "CANCELLED");
    assert!(v["cancelled_at"].is_string());
    let ids = |v: &Value| -> Vec<String> {
        v["items"]
            .as_array()
            .unwrap()
            .iter()
            .map(|c| c["id"].as_str().unwrap().to_owned())
            .collect()
    };
    assert_eq!(
        ids(&h.ok_as("acme", Method::GET, "/campaigns", None).await),
        vec![keep.clone()]
    );
    assert_eq!(
        ids(&h
            .ok_as("acme", Method::GET, "/campaigns?status=CANCELLED", None)
            .await),
        vec![gone.clone()]
    );
    assert_eq!(
        ids(&h
            .ok_as(
                "acme",
                Method::GET,
                "/campaigns?include_cancelled=true",
                None
            )
            .await),
        [keep.clone(), gone.clone()]
    );
    // The row stays readable and cannot come back.
    assert_eq!(
        h.ok_as("acme", Method::GET, &format!("/campaigns/{gone}"), None)
            .await["status"],
        "CANCELLED"
    );
    for action in ["resume", "launch", "cancel"] {
        let (s, _) = h
            .call_as(
                "acme",
                Method::POST,
                &format!("/campaigns/{gone}/{action}"),
                None,
            )
            .await;
        assert_eq!(s, StatusCode::CONFLICT, "{action}");
    }
    // Nothing more is sent.
    assert_eq!(h.sys.dispatcher.tick().await.unwrap().enqueued, 0);
}

/// Puts `n` entries straight into a campaign's hopper, every `sent_every`-th of them sent
/// with an open interaction, plus counters; returns the sent phones.
async fn fill_hopper(
    h: &H,
    tenant: &str,
    id: &str,
    n: usize,
    sent_every: usize,
) -> Vec<PhoneNumber> {
    let t = h.table();
    let c = repo::get_campaign(t, tenant, id).await.unwrap().unwrap();
    let first = repo::reserve_seq(t, tenant, id, n as u64).await.unwrap();
    let sender = repo::get_account(t, tenant, c.account_id.as_deref().unwrap())
        .await
        .unwrap()
        .unwrap()
        .sender_id;
    let mut delta = stats::Delta::new();
    let mut sent = Vec::new();
    for i in 0..n {
        let phone = PhoneNumber::parse(&format!("9177{i:08}")).unwrap();
        let mut e = HopperEntry::new(&c, phone.clone(), ContactData::default(), first + i as u64);
        if i % sent_every == 0 {
            e.claim(h.clock.now()).unwrap();
            e.record_sent(format!("wamid.{i}"), h.clock.now(), Duration::days(1));
            repo::put_interaction(
                t,
                &sender,
                &Interaction::opened(
                    e.entry_ref(),
                    format!("wamid.{i}"),
                    h.clock.now(),
                    Duration::days(1),
                    None,
                ),
            )
            .await
            .unwrap();
            sent.push(phone);
        }
        assert!(repo::insert_entry(t, &mut e, chrono::Utc::now())
            .await
            .unwrap());
        stats::fold(&mut delta, stats::delta(None, &e));
    }
    repo::add_counters(t, tenant, id, &delta).await.unwrap();
    sent
}

async fn delete_removes_everything_in_chunks(h: H, entries: usize, budget: PurgeBudget) {
    let f = fixture(&h, "acme", 3).await;
    let id = create(
        &h,
        "acme",
        campaign_body(&f, json!({"start_at": start_time() + Duration::days(1)})),
    )
    .await;
    let other = create(&h, "acme", campaign_body(&f, json!({"name": "Other"}))).await;
    attach(&h, "acme", &id, &f).await;
    let sent = fill_hopper(&h, "acme", &id, entries, 7).await;
    let t = h.table();
    let sender = repo::get_account(t, "acme", &f.account)
        .await
        .unwrap()
        .unwrap()
        .sender_id;
    // An interaction of the same sender and phone owned by another campaign stays.
    let foreign = PhoneNumber::parse(&f.phones[0]).unwrap();
    repo::put_interaction(
        t,
        &sender,
        &Interaction::opened(
            EntryRef {
                tenant: "acme".into(),
                campaign_id: other.clone(),
                shard: 0,
                phone: foreign.clone(),
            },
            "wamid.other".into(),
            h.clock.now(),
            Duration::days(1),
            None,
        ),
    )
    .await
    .unwrap();
    let test = h
        .ok_as(
            "acme",
            Method::POST,
            &format!("/campaigns/{id}/test"),
            Some(json!({"phones": [f.phones[1]]})),
        )
        .await["id"]
        .as_str()
        .unwrap()
        .to_owned();
    h.sys.dispatcher.tick().await.unwrap(); // cursors for the test campaign
    h.ok_as(
        "acme",
        Method::POST,
        &format!("/campaigns/{id}/launch"),
        None,
    )
    .await;
    assert!(h.sched.at(&id).await.is_some());

    let (s, v) = h
        .call_as("acme", Method::DELETE, &format!("/campaigns/{id}"), None)
        .await;
    assert_eq!(
        (s, &v),
        (
            StatusCode::ACCEPTED,
            &json!({"id": id, "status": "DELETING"})
        )
    );
    assert_eq!(h.sched.at(&id).await, None, "the schedule goes at once");
    // Gone for every reader and writer at once.
    for (m, p) in [
        (Method::GET, format!("/campaigns/{id}")),
        (Method::PATCH, format!("/campaigns/{id}")),
        (Method::DELETE, format!("/campaigns/{id}")),
        (Method::POST, format!("/campaigns/{id}/launch")),
        (Method::POST, format!("/campaigns/{id}/cancel")),
        (Method::GET, format!("/campaigns/{id}/stats")),
        (Method::GET, format!("/campaigns/{id}/tests")),
    ] {
        let body = (m == Method::PATCH).then(|| json!({"notes": "x"}));
        let (s, v) = h.call_as("acme", m.clone(), &p, body).await;
        assert_eq!(s, StatusCode::NOT_FOUND, "{m} {p}: {v}");
    }
    let (s, _) = h
        .call_as(
            "acme",
            Method::POST,
            &format!("/campaigns/{id}/lists"),
            Some(json!({"list_id": f.list})),
        )
        .await;
    assert_eq!(s, StatusCode::NOT_FOUND);
    let listed = h
        .ok_as(
            "acme",
            Method::GET,
            "/campaigns?include_cancelled=true&include_tests=true",
            None,
        )
        .await;
    assert!(listed["items"]
        .as_array()
        .unwrap()
        .iter()
        .all(|c| c["id"] != json!(id)));

    // The sweeper removes it in bounded chunks, resuming each time.
    let mut rounds = 0;
    let mut chunks = Vec::new();
    loop {
        rounds += 1;
        assert!(rounds < 200, "purge does not finish");
        let r = h.sys.sweeper.purge_deleted(budget).await.unwrap();
        chunks.push(r.items_deleted);
        if r.campaigns_pending == 0 && r.campaigns_removed == 0 && r.items_deleted == 0 {
            break;
        }
        if r.items_deleted == 0 {
            // Only the grace period keeps the campaign item: let it pass.
            h.clock.advance(DELETE_GRACE + Duration::seconds(1));
        }
    }
    let total: usize = chunks.iter().sum();
    assert!(
        chunks.iter().filter(|n| **n > 0).count() > 2,
        "several chunks: {chunks:?}"
    );
    assert!(
        chunks.iter().all(|n| *n <= 3 * budget.max_items + 2),
        "each sweep stays within its budget: {chunks:?}"
    );
    // Entries, their contact links, owned interactions, counters, cursors, sequence, test
    // link and campaign item; then the test campaign the same way.
    assert!(
        total > entries + sent.len(),
        "{total} items deleted for {entries} entries"
    );
    for cid in [&id, &test] {
        assert!(
            repo::get_campaign(t, "acme", cid).await.unwrap().is_none(),
            "{cid} gone"
        );
        for shard in 0..16 {
            assert!(repo::hopper_page(t, "acme", cid, shard, 10)
                .await
                .unwrap()
                .is_empty());
        }
        assert!(repo::campaign_partition_page(t, "acme", cid, 10)
            .await
            .unwrap()
            .is_empty());
    }
    for p in &sent {
        assert!(repo::get_interaction(t, &sender, p)
            .await
            .unwrap()
            .is_none());
    }
    let kept = repo::get_interaction(t, &sender, &foreign)
        .await
        .unwrap()
        .unwrap();
    assert_eq!(
        kept.entry.campaign_id, other,
        "another campaign's interaction stays"
    );
    for p in &f.phones {
        let rec = repo::load_contact(t, "acme", &PhoneNumber::parse(p).unwrap())
            .await
            .unwrap();
        assert!(rec.contact.is_some(), "contacts stay");
        assert!(
            rec.campaigns.iter().all(|l| l.campaign_id != id),
            "links to the campaign go"
        );
    }
    // The other campaign is untouched.
    assert_eq!(
        h.ok_as("acme", Method::GET, &format!("/campaigns/{other}"), None)
            .await["status"],
        "READY"
    );
}

#[tokio::test]
async fn r1_5_delete_removes_everything_in_chunks() {
    let budget = PurgeBudget {
        time: std::time::Duration::from_secs(60),
        max_items: 500,
        page: 200,
    };
    delete_removes_everything_in_chunks(memory(), 3000, budget).await;
}

#[tokio::test]
async fn r1_5_delete_removes_everything_in_chunks_on_emulator() {
    let budget = PurgeBudget {
        time: std::time::Duration::from_secs(60),
        max_items: 100,
        page: 50,
    };
    delete_removes_everything_in_chunks(emulator().await, 300, budget).await;
}

#[tokio::test]
async fn r1_5_sweep_purges_within_its_time_budget() {
    let h = memory();
    let f = fixture(&h, "acme", 0).await;
    let id = create(&h, "acme", campaign_body(&f, json!({}))).await;
    fill_hopper(&h, "acme", &id, 500, 1000).await;
    h.ok_as("acme", Method::DELETE, &format!("/campaigns/{id}"), None)
        .await;
    let none = PurgeBudget {
        time: std::time::Duration::ZERO,
        ..PurgeBudget::default()
    };
    let r = h.sys.sweeper.purge_deleted(none).await.unwrap();
    assert_eq!(
        (r.items_deleted, r.campaigns_pending),
        (0, 1),
        "no time, no work"
    );
    // The regular sweep does it with its default budget.
    let r = h.sys.sweeper.sweep().await.unwrap();
    assert!(r.purged_items >= 500, "{r:?}");
    h.clock.advance(DELETE_GRACE);
    assert_eq!(h.sys.sweeper.sweep().await.unwrap().purged_campaigns, 1);
}

// ---- R1.6 test campaigns ---------------------------------------------------------------

#[tokio::test]
async fn r1_6_test_campaign_stats_are_separate() {
    let h = memory();
    let f = fixture(&h, "acme", 3).await;
    let id = create(
        &h,
        "acme",
        campaign_body(&f, json!({"duplicate_window_days": 2, "rate": 5})),
    )
    .await;
    attach(&h, "acme", &id, &f).await;
    // Every phone must be a contact: the 422 names it.
    let (s, v) = h
        .call_as(
            "acme",
            Method::POST,
            &format!("/campaigns/{id}/test"),
            Some(json!({"phones": [f.phones[0], "+44 7700 900123"]})),
        )
        .await;
    assert_eq!(
        (s, field(&v)),
        (StatusCode::UNPROCESSABLE_ENTITY, "phones[1]"),
        "{v}"
    );
    let (s, v) = h
        .call_as(
            "acme",
            Method::POST,
            &format!("/campaigns/{id}/test"),
            Some(json!({"phones": []})),
        )
        .await;
    assert_eq!(
        (s, field(&v)),
        (StatusCode::UNPROCESSABLE_ENTITY, "phones"),
        "{v}"
    );
    let formatted = format!("+{} {}", &f.phones[1][..2], &f.phones[1][2..]);
    let (s, t) = h
        .call_as(
            "acme",
            Method::POST,
            &format!("/campaigns/{id}/test"),
            Some(json!({"phones": [f.phones[0], formatted]})),
        )
        .await;
    assert_eq!(s, StatusCode::CREATED, "{t}");
    let test = t["id"].as_str().unwrap();
    assert_eq!(
        (
            t["test_of"].as_str(),
            t["status"].as_str(),
            &t["progress"]["target"]
        ),
        (Some(id.as_str()), Some("RUNNING"), &json!(2))
    );
    assert_eq!(
        (&t["duplicate_window_days"], &t["template"]["name"]),
        (&json!(2), &json!("spring_offer"))
    );
    // It sends like a real campaign...
    h.sys.dispatcher.tick().await.unwrap();
    assert_eq!(h.sys.drain_queue().await.unwrap(), 2);
    assert_eq!(h.provider.sent.load(Ordering::SeqCst), 2);
    // ...with its own statistics; the campaign's are untouched.
    let ts = h
        .ok_as(
            "acme",
            Method::GET,
            &format!("/campaigns/{test}/stats"),
            None,
        )
        .await;
    assert_eq!(
        (ts["target"].as_i64(), ts["sent"].as_i64()),
        (Some(2), Some(2)),
        "{ts}"
    );
    let ps = h
        .ok_as("acme", Method::GET, &format!("/campaigns/{id}/stats"), None)
        .await;
    assert_eq!(
        (ps["target"].as_i64(), ps["sent"].as_i64()),
        (Some(3), Some(0)),
        "{ps}"
    );
    let parent = h
        .ok_as("acme", Method::GET, &format!("/campaigns/{id}"), None)
        .await;
    assert_eq!(parent["status"], "READY");
    // Hidden from the default listing; listed under the campaign.
    let list = h.ok_as("acme", Method::GET, "/campaigns", None).await;
    assert_eq!(list["items"].as_array().unwrap().len(), 1);
    let all = h
        .ok_as("acme", Method::GET, "/campaigns?include_tests=true", None)
        .await;
    assert_eq!(all["items"].as_array().unwrap().len(), 2);
    let tests = h
        .ok_as("acme", Method::GET, &format!("/campaigns/{id}/tests"), None)
        .await;
    assert_eq!(tests["items"][0]["id"], json!(test));
    // Its audience is fixed.
    let (s, _) = h
        .call_as(
            "acme",
            Method::POST,
            &format!("/campaigns/{test}/lists"),
            Some(json!({"list_id": f.list})),
        )
        .await;
    assert_eq!(s, StatusCode::CONFLICT);
    // A test of a test, or of an incomplete campaign, is refused.
    let (s, _) = h
        .call_as(
            "acme",
            Method::POST,
            &format!("/campaigns/{test}/test"),
            Some(json!({"phones": [f.phones[0]]})),
        )
        .await;
    assert_eq!(s, StatusCode::CONFLICT);
    let draft = create(&h, "acme", json!({"name": "draft"})).await;
    let (s, _) = h
        .call_as(
            "acme",
            Method::POST,
            &format!("/campaigns/{draft}/test"),
            Some(json!({"phones": [f.phones[0]]})),
        )
        .await;
    assert_eq!(s, StatusCode::CONFLICT);
}

// ---- R1.7 listing ----------------------------------------------------------------------

async fn filters_and_pagination(h: H) {
    let f = fixture(&h, "acme", 1).await;
    let mut spring = Vec::new();
    let mut sms = Vec::new();
    for i in 0..12 {
        if i % 4 == 3 {
            sms.push(
                create(
                    &h,
                    "acme",
                    json!({"name": format!("Autumn SMS {i}"), "channel": "sms"}),
                )
                .await,
            );
        } else {
            spring.push(
                create(
                    &h,
                    "acme",
                    campaign_body(&f, json!({"name": format!("Spring sale {i}")})),
                )
                .await,
            );
        }
    }
    // Another tenant's campaigns never show.
    let g = fixture(&h, "globex", 0).await;
    create(
        &h,
        "globex",
        campaign_body(&g, json!({"name": "Spring sale globex"})),
    )
    .await;
    for c in [&spring[1], &spring[4]] {
        h.ok_as(
            "acme",
            Method::POST,
            &format!("/campaigns/{c}/cancel"),
            None,
        )
        .await;
    }
    attach(&h, "acme", &spring[0], &f).await;
    h.ok_as(
        "acme",
        Method::POST,
        &format!("/campaigns/{}/launch", spring[0]),
        None,
    )
    .await;
    let visible: Vec<String> = spring
        .iter()
        .filter(|c| *c != &spring[1] && *c != &spring[4])
        .cloned()
        .collect();

    /// Every page of a listing: each full until the last.
    async fn pages(h: &H, query: &str, limit: usize) -> Vec<Value> {
        let mut out = Vec::new();
        let mut cursor: Option<String> = None;
        for _ in 0..50 {
            let mut path = format!("/campaigns?limit={limit}&{query}");
            if let Some(c) = &cursor {
                path.push_str(&format!("&cursor={c}"));
            }
            let page = h.ok_as("acme", Method::GET, &path, None).await;
            let items = page["items"].as_array().unwrap().clone();
            cursor = page["next_cursor"].as_str().map(str::to_owned);
            if cursor.is_some() {
                assert_eq!(
                    items.len(),
                    limit,
                    "a page with a next_cursor is full: {path}"
                );
            }
            out.extend(items);
            if cursor.is_none() {
                return out;
            }
        }
        panic!("pagination does not end");
    }
    let ids = |items: &[Value]| -> Vec<String> {
        items
            .iter()
            .map(|c| c["id"].as_str().unwrap().to_owned())
            .collect()
    };
    let by_name = pages(&h, "name=SPRING", 2).await;
    assert_eq!(
        ids(&by_name),
        visible,
        "case-insensitive name filter, cancelled hidden"
    );
    assert_eq!(ids(&pages(&h, "channel=sms", 2).await), sms);
    assert_eq!(
        ids(&pages(&h, &format!("account_id={}", f.account), 3).await),
        visible
    );
    assert_eq!(
        ids(&pages(&h, "status=CANCELLED", 1).await),
        [spring[1].clone(), spring[4].clone()]
    );
    assert_eq!(
        ids(&pages(&h, "status=running", 5).await),
        [spring[0].clone()]
    );
    let drafts_and_ready = pages(&h, "status=DRAFT,READY", 4).await;
    assert_eq!(drafts_and_ready.len(), visible.len() - 1 + sms.len());
    let everything = pages(&h, "include_cancelled=true", 5).await;
    assert_eq!(everything.len(), 12);
    // Progress, scheduled-at and created-at come with each item.
    let running = &pages(&h, "status=RUNNING", 5).await[0];
    assert_eq!(
        running["progress"],
        json!({"sent": 0, "target": 1, "percent": 0.0})
    );
    assert!(running["created_at"].is_string() && running.get("start_at").is_some());
    // Bad filters name themselves.
    let (s, v) = h
        .call_as("acme", Method::GET, "/campaigns?status=DONE", None)
        .await;
    assert_eq!((s, field(&v)), (StatusCode::UNPROCESSABLE_ENTITY, "status"));
    let (s, v) = h
        .call_as("acme", Method::GET, "/campaigns?channel=fax", None)
        .await;
    assert_eq!(
        (s, field(&v)),
        (StatusCode::UNPROCESSABLE_ENTITY, "channel")
    );
    let (s, v) = h
        .call_as("acme", Method::GET, "/campaigns?cursor=%7B%22x%22%7D", None)
        .await;
    assert_eq!((s, field(&v)), (StatusCode::UNPROCESSABLE_ENTITY, "cursor"));
    let (s, _) = h
        .call_as("acme", Method::GET, "/campaigns?limit=abc", None)
        .await;
    assert_eq!(s, StatusCode::BAD_REQUEST);
}

testkit::on_both_backends! {
    memory: memory(), dynamo: emulator().await;
    filters_and_pagination: r1_7_filters_and_pagination, r1_7_filters_and_pagination_on_emulator;
}

// ---- R1.8 tenants ----------------------------------------------------------------------

#[tokio::test]
async fn r1_8_tenant_settings_round_trip() {
    let h = memory();
    let t = h.ok_as("acme", Method::GET, "/tenant", None).await;
    assert_eq!(
        t,
        json!({"id": "acme", "campaigns_enabled": true, "timezone": "UTC",
            "opt_out_keywords": ["STOP", "STOPALL", "UNSUBSCRIBE", "STOP PROMOTIONS"],
            "updated_at": null, "version": 0})
    );
    let t = h
        .ok_as(
            "acme",
            Method::PUT,
            "/tenant",
            Some(json!({"timezone": "Europe/Madrid"})),
        )
        .await;
    assert_eq!(
        (t["timezone"].as_str(), t["campaigns_enabled"].as_bool()),
        (Some("Europe/Madrid"), Some(true))
    );
    let (s, v) = h
        .call_as(
            "acme",
            Method::PUT,
            "/tenant",
            Some(json!({"timezone": "Moon/Base"})),
        )
        .await;
    assert_eq!(
        (s, field(&v)),
        (StatusCode::UNPROCESSABLE_ENTITY, "timezone")
    );
    let (s, _) = h
        .call_as(
            "acme",
            Method::PUT,
            "/tenant",
            Some(json!({"campaigns": false})),
        )
        .await;
    assert_eq!(s, StatusCode::BAD_REQUEST, "unknown fields are refused");
    assert_eq!(
        h.ok_as("globex", Method::GET, "/tenant", None).await["timezone"],
        "UTC",
        "per tenant"
    );
}

#[tokio::test]
async fn r1_8_campaigns_disabled_answers_403() {
    let h = memory();
    let f = fixture(&h, "acme", 1).await;
    let id = create(&h, "acme", campaign_body(&f, json!({}))).await;
    common::switch_campaigns(&h.api, "acme", false).await;
    let routes = [
        (Method::GET, "/campaigns".to_owned(), None),
        (
            Method::POST,
            "/campaigns".to_owned(),
            Some(json!({"name": "x"})),
        ),
        (Method::GET, format!("/campaigns/{id}"), None),
        (
            Method::PATCH,
            format!("/campaigns/{id}"),
            Some(json!({"notes": "x"})),
        ),
        (Method::DELETE, format!("/campaigns/{id}"), None),
        (Method::POST, format!("/campaigns/{id}/launch"), None),
        (Method::POST, format!("/campaigns/{id}/pause"), None),
        (Method::POST, format!("/campaigns/{id}/resume"), None),
        (Method::POST, format!("/campaigns/{id}/cancel"), None),
        (Method::POST, format!("/campaigns/{id}/unschedule"), None),
        (
            Method::POST,
            format!("/campaigns/{id}/test"),
            Some(json!({"phones": [f.phones[0]]})),
        ),
        (Method::GET, format!("/campaigns/{id}/tests"), None),
        (Method::GET, format!("/campaigns/{id}/hopper"), None),
        (Method::GET, format!("/campaigns/{id}/stats"), None),
        (
            Method::POST,
            format!("/campaigns/{id}/lists"),
            Some(json!({"list_id": f.list})),
        ),
        (Method::GET, "/campaigns/cmp_unknown".to_owned(), None),
    ];
    for (m, p, b) in routes.iter().cloned() {
        let (s, v) = h.call_as("acme", m.clone(), &p, b).await;
        assert_eq!(s, StatusCode::FORBIDDEN, "{m} {p}: {v}");
        assert_eq!(v["error"], "forbidden", "{v}");
        assert!(v["message"]
            .as_str()
            .unwrap()
            .contains("campaigns are disabled"));
    }
    // Nothing changed; other routes and other tenants still work.
    let c = repo::get_campaign(h.table(), "acme", &id)
        .await
        .unwrap()
        .unwrap();
    assert_eq!(c.status.as_str(), "READY");
    h.ok_as("acme", Method::GET, "/accounts", None).await;
    h.ok_as("acme", Method::GET, "/tenant", None).await;
    h.ok_as("globex", Method::GET, "/campaigns", None).await;
    // Enabled again, everything answers.
    common::switch_campaigns(&h.api, "acme", true).await;
    h.ok_as("acme", Method::GET, &format!("/campaigns/{id}"), None)
        .await;
}

/// Finding 14: the seed has an administrator enable campaigns for a tenant; a tenant's own
/// credentials must not turn them back on (`PUT /tenant` used to take `campaigns_enabled`).
#[tokio::test]
async fn r1_8_only_the_administrator_switches_a_tenants_campaigns() {
    let h = memory();
    common::switch_campaigns(&h.api, "acme", false).await;
    // The tenant tries, every way it has.
    for body in [
        json!({"campaigns_enabled": true}),
        json!({"timezone": "Asia/Kolkata", "campaigns_enabled": true}),
    ] {
        let (s, v) = h.call_as("acme", Method::PUT, "/tenant", Some(body)).await;
        assert_eq!(
            (s, field(&v), v["error"].as_str()),
            (
                StatusCode::FORBIDDEN,
                "campaigns_enabled",
                Some("forbidden")
            ),
            "{v}"
        );
    }
    for (m, body) in [
        (Method::PUT, Some(json!({"campaigns_enabled": true}))),
        (Method::GET, None),
    ] {
        let (s, v) = h.call_as("acme", m, "/admin/tenants/acme", body).await;
        assert_eq!(
            (s, v["error"].as_str()),
            (StatusCode::FORBIDDEN, Some("forbidden")),
            "{v}"
        );
    }
    let t = h.ok_as("acme", Method::GET, "/tenant", None).await;
    assert_eq!(
        (t["campaigns_enabled"].as_bool(), t["timezone"].as_str()),
        (Some(false), Some("UTC")),
        "nothing changed: {t}"
    );
    let (s, _) = h.call_as("acme", Method::GET, "/campaigns", None).await;
    assert_eq!(s, StatusCode::FORBIDDEN);
    // The administrator can; a tenant's settings keep the switch, and the switch only
    // reaches the tenant it names.
    common::switch_campaigns(&h.api, "acme", true).await;
    h.ok_as("acme", Method::GET, "/campaigns", None).await;
    let t = h
        .ok_as(
            "acme",
            Method::PUT,
            "/tenant",
            Some(json!({"timezone": "Asia/Kolkata"})),
        )
        .await;
    assert_eq!(t["campaigns_enabled"], true);
    common::switch_campaigns(&h.api, "globex", false).await;
    h.ok_as("acme", Method::GET, "/campaigns", None).await;
    let (s, _) = h.call_as("globex", Method::GET, "/campaigns", None).await;
    assert_eq!(s, StatusCode::FORBIDDEN);
    // A path that cannot be a tenant is not one; the body is read strictly.
    let admin = |m: Method, path: &str, body: Option<Value>| {
        let req = axum::http::Request::builder()
            .method(m)
            .uri(path)
            .header("content-type", "application/json")
            .header(shared::http::ADMIN_HEADER, "true")
            .body(body.map(|b| b.to_string()).unwrap_or_default().into())
            .unwrap();
        let api = h.api.clone();
        async move {
            let (s, b) = common::send(&api, req).await;
            (
                s,
                serde_json::from_slice::<Value>(&b).unwrap_or(Value::Null),
            )
        }
    };
    let (s, _) = admin(Method::GET, "/admin/tenants/a%20b", None).await;
    assert_eq!(s, StatusCode::NOT_FOUND);
    let (s, v) = admin(
        Method::PUT,
        "/admin/tenants/acme",
        Some(json!({"campaigns_enabled": "no"})),
    )
    .await;
    assert_eq!(
        (s, field(&v)),
        (StatusCode::BAD_REQUEST, "campaigns_enabled"),
        "{v}"
    );
    let (s, v) = admin(Method::PUT, "/admin/tenants/acme", Some(json!({}))).await;
    assert_eq!(s, StatusCode::BAD_REQUEST, "{v}");
    let (s, v) = admin(Method::GET, "/admin/tenants/globex", None).await;
    assert_eq!(
        (s, v["campaigns_enabled"].as_bool()),
        (StatusCode::OK, Some(false))
    );
}

/// Tenant B tries every read and write on tenant A's campaign, list, contact, template
/// and account: each is a 404 (or, for references inside B's own campaign, a 422), B's
/// listings are empty, and A's data is unchanged.
async fn no_read_or_write_crosses_tenants(h: H) {
    let a = fixture(&h, "tenant-a", 2).await;
    let id = create(&h, "tenant-a", campaign_body(&a, json!({}))).await;
    attach(&h, "tenant-a", &id, &a).await;
    let phone = &a.phones[0];
    let before = [
        format!("/campaigns/{id}"),
        format!("/campaigns/{id}/stats"),
        format!("/campaigns/{id}/hopper"),
        format!("/lists/{}", a.list),
        format!("/contacts/{phone}"),
        format!("/accounts/{}", a.account),
        format!("/templates/{}/spring_offer/en", a.account),
        "/campaigns".to_owned(),
        "/templates".to_owned(),
        "/accounts".to_owned(),
    ];
    let mut snapshot = Vec::new();
    for p in &before {
        snapshot.push(h.ok_as("tenant-a", Method::GET, p, None).await);
    }
    let b = "tenant-b";
    let b_fixture = fixture(&h, b, 0).await;
    let b_campaign = create(&h, b, campaign_body(&b_fixture, json!({"name": "B's"}))).await;
    for (m, p, body) in [
        (Method::GET, format!("/campaigns/{id}"), None),
        (
            Method::PATCH,
            format!("/campaigns/{id}"),
            Some(json!({"name": "hijacked"})),
        ),
        (Method::POST, format!("/campaigns/{id}/launch"), None),
        (Method::POST, format!("/campaigns/{id}/pause"), None),
        (Method::POST, format!("/campaigns/{id}/cancel"), None),
        (Method::POST, format!("/campaigns/{id}/unschedule"), None),
        (
            Method::POST,
            format!("/campaigns/{id}/test"),
            Some(json!({"phones": [phone]})),
        ),
        (Method::GET, format!("/campaigns/{id}/tests"), None),
        (Method::GET, format!("/campaigns/{id}/stats"), None),
        (Method::GET, format!("/campaigns/{id}/hopper"), None),
        (
            Method::POST,
            format!("/campaigns/{id}/lists"),
            Some(json!({"list_id": b_fixture.list})),
        ),
        (Method::DELETE, format!("/campaigns/{id}"), None),
        (Method::GET, format!("/lists/{}", a.list), None),
        (
            Method::POST,
            format!("/lists/{}/members", a.list),
            Some(json!({"phones": []})),
        ),
        (
            Method::POST,
            format!("/campaigns/{b_campaign}/lists"),
            Some(json!({"list_id": a.list})),
        ),
        (Method::GET, format!("/contacts/{phone}"), None),
        (Method::GET, format!("/accounts/{}", a.account), None),
        (
            Method::GET,
            format!("/templates/{}/spring_offer/en", a.account),
            None,
        ),
    ] {
        let (s, v) = h.call_as(b, m.clone(), &p, body).await;
        assert_eq!(s, StatusCode::NOT_FOUND, "{m} {p} as B: {v}");
    }
    // References to A's objects inside B's own requests do not resolve either.
    let (s, v) = h
        .call_as(
            b,
            Method::POST,
            "/campaigns",
            Some(campaign_body(&a, json!({}))),
        )
        .await;
    assert_eq!(
        (s, field(&v)),
        (StatusCode::UNPROCESSABLE_ENTITY, "account_id"),
        "{v}"
    );
    let (s, v) = h
        .call_as(
            b,
            Method::POST,
            &format!("/campaigns/{b_campaign}/test"),
            Some(json!({"phones": [phone]})),
        )
        .await;
    assert_eq!(
        (s, field(&v)),
        (StatusCode::UNPROCESSABLE_ENTITY, "phones[0]"),
        "{v}"
    );
    // B's listings hold only B's things.
    let campaigns = h
        .ok_as(
            b,
            Method::GET,
            "/campaigns?include_cancelled=true&include_tests=true",
            None,
        )
        .await;
    assert_eq!(campaigns["items"].as_array().unwrap().len(), 1);
    assert_eq!(campaigns["items"][0]["id"], json!(b_campaign));
    for p in ["/accounts", "/templates"] {
        let items = h.ok_as(b, Method::GET, p, None).await;
        assert!(
            items["items"]
                .as_array()
                .unwrap()
                .iter()
                .all(|i| i["tenant"] == json!(b)),
            "{p}: {items}"
        );
    }
    // Nothing of A changed.
    for (p, was) in before.iter().zip(&snapshot) {
        assert_eq!(&h.ok_as("tenant-a", Method::GET, p, None).await, was, "{p}");
    }
}

testkit::on_both_backends! {
    memory: memory(), dynamo: emulator().await;
    no_read_or_write_crosses_tenants: r1_8_no_read_or_write_crosses_tenants, r1_8_no_read_or_write_crosses_tenants_on_emulator;
}
