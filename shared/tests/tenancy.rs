//! Tenants kept apart: what one tenant's account, webhooks or customers do never reaches
//! another tenant's templates, campaigns, numbers or conversations (issue 13, findings
//! 3-5 and 7). Two tenants share template names on purpose.

use testkit::harness as common;

use axum::http::{Method, StatusCode};
use common::TENANT;
use serde_json::{json, Value};
use shared::domain::inbound::{Inbound, TemplateUpdate};
use shared::domain::template::TemplateStatus;
use shared::ports::Table;
use shared::repo;
use std::sync::Arc;
use testkit::harness::{Spawn, Spawned};
use testkit::memory::MemoryTable;
use testkit::simulator::SimConfig;

const OTHER: &str = "globex";
const WABA_A: &str = "102290129340398";
const WABA_B: &str = "102290129340399";

async fn harness() -> Spawned {
    Spawn::new(Arc::new(MemoryTable::new()))
        .simulator(SimConfig {
            reply_percent: 0,
            ..SimConfig::default()
        })
        .serve_webhooks(false)
        .spawn()
        .await
}

fn table(h: &Spawned) -> &dyn Table {
    &*h.sys.ports.table
}

fn id_of(v: &Value) -> String {
    v["id"].as_str().unwrap().to_owned()
}

/// An account of `tenant` on `sender` in `waba` with the template `offer`; its id.
async fn account_with_offer(h: &Spawned, tenant: &str, sender: &str, waba: &str) -> String {
    let body =
        json!({"name": "Main", "sender_id": sender, "token_ref": "env:SIM_TOKEN", "waba_id": waba});
    let id = id_of(&h.ok_as(tenant, Method::POST, "/accounts", Some(body)).await);
    h.ok_as(
        tenant,
        Method::POST,
        "/templates",
        Some(common::template_body(&id, "offer")),
    )
    .await;
    id
}

async fn template_status(h: &Spawned, tenant: &str, account: &str) -> TemplateStatus {
    repo::get_template(table(h), tenant, account, "offer", "en")
        .await
        .unwrap()
        .expect("the template is stored")
        .status
}

fn paused_in(waba: &str) -> Inbound {
    Inbound::TemplateStatus(TemplateUpdate {
        waba_id: Some(waba.into()),
        template_id: None,
        name: "offer".into(),
        language: "en".into(),
        event: "PAUSED".into(),
        status: Some(TemplateStatus::Paused),
        reason: Some("low quality".into()),
        quality: None,
        category: None,
    })
}

#[tokio::test]
async fn a_meta_account_names_its_waba() {
    let h = harness().await;
    let mut body = common::account_body();
    body.as_object_mut().unwrap().remove("waba_id");
    let (s, v) = h.call(Method::POST, "/accounts", Some(body)).await;
    assert_eq!(s, StatusCode::UNPROCESSABLE_ENTITY, "{v}");
    assert_eq!(v["field"], "waba_id", "{v}");
}

#[tokio::test]
async fn template_webhooks_act_only_on_the_waba_they_name() {
    let h = harness().await;
    let a = account_with_offer(&h, TENANT, "106540352242922", WABA_A).await;
    let b = account_with_offer(&h, OTHER, "106540352242923", WABA_B).await;
    // An account stored before a WABA id was required: its template owner knows none.
    let c = account_with_offer(&h, "initech", "106540352242924", WABA_B).await;
    let mut s = repo::get_template_settings(table(&h), "initech", &c)
        .await
        .unwrap();
    s.waba_id = None;
    repo::save_template_settings(table(&h), &mut s)
        .await
        .unwrap();
    let t = repo::get_template(table(&h), "initech", &c, "offer", "en")
        .await
        .unwrap()
        .unwrap();
    repo::put_template_owner(table(&h), &t, None).await.unwrap();

    // Meta pauses `offer` in tenant A's business account only.
    h.sys.inbox.handle(vec![paused_in(WABA_A)]).await.unwrap();
    assert_eq!(
        template_status(&h, TENANT, &a).await,
        TemplateStatus::Paused
    );
    assert_eq!(
        template_status(&h, OTHER, &b).await,
        TemplateStatus::Approved,
        "another WABA's template of the same name is untouched"
    );
    assert_eq!(
        template_status(&h, "initech", &c).await,
        TemplateStatus::Approved,
        "an owner that knows no WABA is not anybody's"
    );
}

#[tokio::test]
async fn a_secret_reference_stays_in_its_tenants_namespace() {
    let h = harness().await;
    let with_ref = |r: &str| common::merged(common::account_body(), json!({ "token_ref": r }));
    for other in [
        "secretsmanager:campaigns/globex/meta-token",
        "secretsmanager:campaigns/meta-app-secret",
        "secretsmanager:prod/meta-token",
        "ssm:/campaigns/globex/meta-token",
    ] {
        let (s, v) = h
            .call(Method::POST, "/accounts", Some(with_ref(other)))
            .await;
        assert_eq!(s, StatusCode::UNPROCESSABLE_ENTITY, "{other}: {v}");
        assert_eq!(v["field"], "token_ref", "{v}");
    }
    for own in [
        "secretsmanager:campaigns/acme/meta-token",
        "ssm:/campaigns/acme/meta-token",
    ] {
        let (s, v) = h.call(Method::POST, "/accounts", Some(with_ref(own))).await;
        assert_eq!(s, StatusCode::CREATED, "{own}: {v}");
    }
}

#[tokio::test]
async fn a_sending_number_belongs_to_one_tenant() {
    let h = harness().await;
    let body = |name: &str| {
        json!({"name": name, "sender_id": "106540352242922", "token_ref": "env:SIM_TOKEN",
            "waba_id": WABA_A})
    };
    h.ok(Method::POST, "/accounts", Some(body("Main"))).await;
    // The same tenant may hold a second account on its own number.
    h.ok(Method::POST, "/accounts", Some(body("Backup"))).await;
    let (s, v) = h
        .call_as(OTHER, Method::POST, "/accounts", Some(body("Stolen")))
        .await;
    assert_eq!(s, StatusCode::CONFLICT, "{v}");
    assert!(v["message"].as_str().unwrap().contains("sender_id"), "{v}");
    let (_, accounts) = h.call_as(OTHER, Method::GET, "/accounts", None).await;
    assert_eq!(
        accounts["items"].as_array().map(Vec::len),
        Some(0),
        "{accounts}"
    );
}

fn stop_from(phone: &str, sender: &str) -> Inbound {
    Inbound::Message(shared::domain::inbound::InboundMessage {
        sms: false,
        sender_id: sender.into(),
        from: shared::domain::phone::PhoneNumber::parse(phone).unwrap(),
        message_id: format!("wamid.stop.{phone}"),
        at: h_now(),
        context_id: None,
        text: Some("STOP".into()),
        button: None,
        user_id: None,
    })
}

fn h_now() -> chrono::DateTime<chrono::Utc> {
    common::t0()
}

#[tokio::test]
async fn a_stop_lands_on_the_number_owners_opt_out_list_without_an_interaction() {
    let h = harness().await;
    account_with_offer(&h, TENANT, "106540352242922", WABA_A).await;
    account_with_offer(&h, OTHER, "106540352242923", WABA_B).await;
    // Nobody ever sent to this contact (or the interaction expired): only the number
    // it wrote to says whose customer it is.
    h.sys
        .inbox
        .handle(vec![stop_from("919812340001", "106540352242922")])
        .await
        .unwrap();
    let (s, v) = h.call(Method::GET, "/opt-outs/919812340001", None).await;
    assert_eq!(s, StatusCode::OK, "the owner's list has it: {v}");
    let (s, _) = h
        .call_as(OTHER, Method::GET, "/opt-outs/919812340001", None)
        .await;
    assert_eq!(s, StatusCode::NOT_FOUND, "the other tenant's list does not");
}

/// Finding 5: the deployment's callback secret is not a tenant's token; each Kaleyra SID
/// has its own, and it opens the route for that SID only.
#[tokio::test]
async fn a_kaleyra_callback_token_opens_only_its_own_sid() {
    use axum::body::Body;
    use axum::http::Request;
    use shared::http::webhook::{kaleyra_router, KaleyraHookState};
    use shared::providers::kaleyra::callback_token;
    use tower::ServiceExt;
    let secret = "deployment-callback-secret";
    let h = harness().await;
    let app = kaleyra_router(Arc::new(KaleyraHookState {
        sink: testkit::InlineSink::on(h.sys.inbox.clone()),
        token: secret.into(),
    }));
    let body = json!({"status": "DELIVERED", "message_id": "wamid.K1", "timestamp": "1763716000"})
        .to_string();
    let post = |uri: String| async {
        let req = Request::post(uri)
            .header("content-type", "application/json")
            .body(Body::from(body.clone()))
            .unwrap();
        app.clone().oneshot(req).await.unwrap().status()
    };
    let own = callback_token(secret, "SID1");
    for uri in [
        format!("/webhooks/kaleyra?sid=SID1&token={secret}"),
        format!("/webhooks/kaleyra?sid=SID2&token={own}"),
        format!("/webhooks/kaleyra?token={own}"),
        "/webhooks/kaleyra?sid=SID1".to_owned(),
    ] {
        assert_eq!(post(uri.clone()).await, StatusCode::UNAUTHORIZED, "{uri}");
    }
    let uri = format!("/webhooks/kaleyra?sid=SID1&token={own}");
    assert_eq!(post(uri).await, StatusCode::OK);
}

/// Finding 5: a status comes from a number (Meta's `phone_number_id`, Kaleyra's SID); it
/// applies only to an entry of that number's owner, and only to the message it names,
/// whatever callback data it carries.
#[tokio::test]
async fn a_status_applies_only_to_entries_of_the_number_it_came_from() {
    use shared::domain::campaign::{Campaign, NewCampaign, TemplateRef};
    use shared::domain::hopper::HopperEntry;
    use shared::domain::inbound::{StatusKind, StatusUpdate};
    let h = harness().await;
    account_with_offer(&h, TENANT, "106540352242922", WABA_A).await;
    let b_account = account_with_offer(&h, OTHER, "106540352242923", WABA_B).await;
    let now = common::t0();
    let campaign = Campaign::create(
        OTHER,
        NewCampaign {
            name: Some("Globex offer".into()),
            account_id: Some(b_account),
            template: Some(TemplateRef {
                name: "offer".into(),
                language: "en".into(),
            }),
            ..Default::default()
        },
        now,
    )
    .unwrap();
    let phone = shared::domain::phone::PhoneNumber::parse("919812340002").unwrap();
    let mut entry = HopperEntry::new(&campaign, phone, Default::default(), 1);
    assert!(
        repo::insert_entry(table(&h), &mut entry, chrono::Utc::now())
            .await
            .unwrap()
    );
    entry.claim(now).unwrap();
    entry.record_sent("wamid.B1".into(), now, chrono::Duration::days(1));
    repo::save_entry(table(&h), &mut entry, chrono::Utc::now())
        .await
        .unwrap();
    let r = entry.entry_ref();
    let delivered = |sender: &str, message_id: &str| {
        Inbound::Status(StatusUpdate {
            recipient: None,
            message_id: message_id.into(),
            status: StatusKind::Delivered,
            at: now,
            entry: Some(r.clone()),
            attempt: None,
            sender_id: Some(sender.into()),
            user_id: None,
        })
    };
    let stored = || async {
        repo::get_entry(table(&h), &r)
            .await
            .unwrap()
            .unwrap()
            .delivered_at
    };
    // Acme's number, and Globex's number naming another message: neither applies.
    h.sys
        .inbox
        .handle(vec![
            delivered("106540352242922", "wamid.B1"),
            delivered("106540352242923", "wamid.OTHER"),
        ])
        .await
        .unwrap();
    assert_eq!(
        stored().await,
        None,
        "a status from another tenant's number"
    );
    h.sys
        .inbox
        .handle(vec![delivered("106540352242923", "wamid.B1")])
        .await
        .unwrap();
    assert_eq!(stored().await, Some(now), "the owner's own status applies");
}

/// A campaign of `tenant` on an account stored the way accounts were before numbers had
/// owners (no owner item), launched, with one entry for `phone`; its send jobs.
async fn legacy_campaign(
    h: &Spawned,
    tenant: &str,
    sender: &str,
    phone: &str,
) -> (String, Vec<shared::app::send::Job>) {
    use shared::domain::account::{Account, NewAccount};
    let a = Account::create(
        tenant,
        NewAccount {
            name: Some("Legacy".into()),
            sender_id: Some(sender.into()),
            token_ref: Some("env:SIM_TOKEN".into()),
            waba_id: Some(WABA_A.into()),
            ..Default::default()
        },
        h_now(),
    )
    .unwrap();
    repo::put_account(table(h), &a).await.unwrap();
    h.ok_as(
        tenant,
        Method::POST,
        "/templates",
        Some(common::template_body(&a.id, "offer")),
    )
    .await;
    h.ok_as(
        tenant,
        Method::POST,
        "/contacts",
        Some(json!({"phone": phone, "name": "C", "fields": {"code": "K"}})),
    )
    .await;
    let list = id_of(
        &h.ok_as(tenant, Method::POST, "/lists", Some(json!({"name": "L"})))
            .await,
    );
    h.ok_as(
        tenant,
        Method::POST,
        &format!("/lists/{list}/members"),
        Some(json!({ "phones": [phone] })),
    )
    .await;
    let body = common::campaign_body("legacy", &a.id, "offer");
    let id = id_of(
        &h.ok_as(tenant, Method::POST, "/campaigns", Some(body))
            .await,
    );
    h.ok_as(
        tenant,
        Method::POST,
        &format!("/campaigns/{id}/lists"),
        Some(json!({ "list_id": list })),
    )
    .await;
    let launched = h
        .ok_as(
            tenant,
            Method::POST,
            &format!("/campaigns/{id}/launch"),
            None,
        )
        .await;
    assert_eq!(launched["status"], "RUNNING", "{launched}");
    let c = repo::get_campaign(table(h), tenant, &id)
        .await
        .unwrap()
        .unwrap();
    let jobs = repo::all_entries(table(h), &c)
        .await
        .unwrap()
        .into_iter()
        .map(|e| (format!("{tenant}-{}", e.seq), Ok(e.entry_ref().into())))
        .collect();
    (id, jobs)
}

#[tokio::test]
async fn an_account_stored_before_numbers_had_owners_claims_its_number_when_it_sends() {
    let h = harness().await;
    let sender = "106540352242930";
    let (_, jobs) = legacy_campaign(&h, TENANT, sender, "919812340031").await;
    assert_eq!(repo::number_owner(table(&h), sender).await.unwrap(), None);
    let failed = h.sys.sender.send_batch(jobs).await;
    assert!(failed.is_empty(), "{failed:?}");
    assert_eq!(h.sim.as_ref().unwrap().sent().len(), 1);
    let owner = repo::number_owner(table(&h), sender).await.unwrap();
    assert_eq!(
        owner.map(|o| o.tenant).as_deref(),
        Some(TENANT),
        "the first send claims the number"
    );
}

#[tokio::test]
async fn a_campaign_on_a_number_another_tenant_owns_pauses_and_sends_nothing() {
    let h = harness().await;
    let sender = "106540352242931";
    // Two accounts stored before numbers had owners, on one number.
    let (_, acme) = legacy_campaign(&h, TENANT, sender, "919812340032").await;
    let (globex, jobs) = legacy_campaign(&h, OTHER, sender, "919812340033").await;
    assert!(h.sys.sender.send_batch(acme).await.is_empty());
    assert!(h.sys.sender.send_batch(jobs).await.is_empty());
    let sent = h.sim.as_ref().unwrap().sent();
    assert_eq!(sent.len(), 1, "only the owner sends: {sent:?}");
    let c = repo::get_campaign(table(&h), OTHER, &globex)
        .await
        .unwrap()
        .unwrap();
    assert_eq!(c.status.as_str(), "PAUSED");
    let why = c.pause_reason.clone().unwrap_or_default();
    assert!(why.contains("another tenant"), "{why}");
    assert!(!why.contains(TENANT), "never names the other tenant: {why}");
    let e = &repo::all_entries(table(&h), &c).await.unwrap()[0];
    assert_eq!(e.state.as_str(), "FRESH", "the entry waits, untouched");
}
