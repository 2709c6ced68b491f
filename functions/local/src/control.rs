//! The local server (API, webhook, control routes) and the loop that plays AWS's part:
//! firing schedules, ticking the launcher and sweeper, feeding the send queue to the
//! sender and the inbound queue (verified webhooks) to the inbound worker.

use crate::wiring::{Local, APP_SECRET, KALEYRA_TOKEN, VERIFY_TOKEN};
use axum::extract::State;
use axum::routing::{get, post};
use axum::{Json, Router};
use serde::Deserialize;
use serde_json::{json, Value};
use shared::http::error::{ApiError, JsonBody};
use shared::http::webhook::{KaleyraHookState, QueueSink, TwilioHookState, WebhookState};
use shared::http::{KnownTenants, TenantId};
use shared::ports::Clock;
use std::sync::Arc;
use std::time::Duration;
use testkit::simulator::SIM_TWILIO_AUTH_TOKEN;

/// The tenants of `LOCAL_TENANTS` (comma-separated), when set: the runner then checks
/// `x-tenant-id` like an authorizer (401 without it or for another tenant). Unset, any
/// tenant goes and a request without the header acts for `demo`.
pub fn known_tenants() -> anyhow::Result<Option<KnownTenants>> {
    let Ok(list) = std::env::var("LOCAL_TENANTS") else {
        return Ok(None);
    };
    let tenants = list
        .split(',')
        .map(str::trim)
        .filter(|t| !t.is_empty())
        .map(|t| {
            TenantId::parse(t).map_err(|_| {
                anyhow::anyhow!(
                    "LOCAL_TENANTS: '{t}' is not a tenant id (1-64 letters, digits, '-' or '_')"
                )
            })
        })
        .collect::<anyhow::Result<Vec<_>>>()?;
    anyhow::ensure!(!tenants.is_empty(), "LOCAL_TENANTS names no tenant");
    Ok(Some(KnownTenants(Arc::new(tenants))))
}

pub fn router(local: Arc<Local>, tenants: Option<KnownTenants>) -> Router {
    let sink = QueueSink::on(local.system.inbound_queue.clone());
    let webhook = shared::http::webhook::router(Arc::new(WebhookState {
        sink: sink.clone(),
        app_secret: APP_SECRET.into(),
        verify_token: VERIFY_TOKEN.into(),
    }));
    let kaleyra = shared::http::webhook::kaleyra_router(Arc::new(KaleyraHookState {
        sink: sink.clone(),
        token: KALEYRA_TOKEN.into(),
    }));
    let twilio = shared::http::webhook::twilio_router(Arc::new(TwilioHookState {
        sink,
        table: local.system.ports.table.clone(),
        secrets: Arc::new(crate::wiring::SimulatorToken(SIM_TWILIO_AUTH_TOKEN.into())),
        clock: local.system.ports.clock.clone(),
        public_base: Some(local.base_url.clone()),
    }));
    let control = Router::new()
        .route("/local/clock", get(clock))
        .route("/local/clock/advance", post(advance))
        .route("/local/events", get(events))
        .with_state(local.clone())
        .nest("/local/sim", local.simulator.control_router());
    let uploads = Router::new()
        .route("/local/objects/{*key}", axum::routing::put(upload))
        .layer(axum::extract::DefaultBodyLimit::max(1 << 30))
        .with_state(local.clone());
    let api = shared::http::operator::full_router(&local.operator);
    let api = match tenants.clone() {
        Some(known) => api.layer(axum::middleware::from_fn_with_state(
            known,
            shared::http::tenant_from_known_header,
        )),
        None => api.layer(axum::middleware::from_fn(shared::http::tenant_from_header)),
    };
    // The console's first tenant: `demo`, unless the runner checks tenants (then the
    // operator names one; the page is public and names none of them).
    let console = shared::http::console::router(shared::http::console::ConsoleAuth::TenantHeader {
        tenant: if tenants.is_some() { "" } else { "demo" }.into(),
    });
    api.merge(uploads)
        .merge(console)
        .merge(webhook)
        .merge(kaleyra)
        .merge(twilio)
        .merge(control)
        .route("/health", get(|| async { Json(json!({"ok": true})) }))
}

/// Stands in for S3 behind a presigned URL: stores the upload and starts the import, as
/// the bucket's event starts the importer function in AWS.
async fn upload(
    State(l): State<Arc<Local>>,
    axum::extract::Path(key): axum::extract::Path<String>,
    body: axum::body::Bytes,
) -> Result<axum::http::StatusCode, ApiError> {
    use shared::ports::ObjectStore;
    let parsed = shared::domain::import::parse_object_key(&key)
        .and_then(|(t, id)| Some((shared::http::TenantId::parse(&t).ok()?, id)));
    let Some((tenant, id)) = parsed else {
        return Err(ApiError::new(
            axum::http::StatusCode::NOT_FOUND,
            "not_found",
            "not an import upload URL",
        ));
    };
    l.objects
        .put(&key, body, "text/csv")
        .await
        .map_err(|e| ApiError::from(shared::app::AppError::from(e)))?;
    let imports = l.imports.clone();
    tokio::spawn(async move {
        let budget = Duration::from_secs(14 * 60);
        if let Err(e) = imports.run_to_end(&tenant, &id, "local", budget).await {
            tracing::warn!(error = %e, import_id = %id, "import failed");
        }
    });
    Ok(axum::http::StatusCode::OK)
}

async fn clock(State(l): State<Arc<Local>>) -> Json<Value> {
    Json(json!({ "now": l.clock.now() }))
}

/// Filter and paging of `GET /local/events`.
#[derive(Deserialize)]
pub struct EventsQuery {
    #[serde(rename = "type")]
    detail_type: Option<String>,
    tenant: Option<String>,
    campaign: Option<String>,
    limit: Option<String>,
    cursor: Option<String>,
}

/// `GET /local/events?type=&tenant=&campaign=&limit=&cursor=`: the domain events the
/// system published, oldest first, a page at a time, as a subscriber of the bus would
/// have received them (detail-type, time, detail).
async fn events(
    State(l): State<Arc<Local>>,
    shared::http::Query(q): shared::http::Query<EventsQuery>,
) -> Result<Json<Value>, ApiError> {
    if let Some(t) = q.detail_type.as_deref() {
        if !shared::domain::events::DomainEvent::DETAIL_TYPES.contains(&t) {
            return Err(ApiError::bad_request(
                Some("type".into()),
                format!(
                    "type: unknown event type '{t}': use one of {}",
                    shared::domain::events::DomainEvent::DETAIL_TYPES.join(", ")
                ),
            ));
        }
    }
    let published = l.events.published.lock().unwrap().clone();
    let keep = |p: &crate::wiring::Published| {
        let detail = serde_json::to_value(&p.detail).unwrap_or_default();
        q.detail_type.as_deref().is_none_or(|t| p.detail_type == t)
            && q.tenant.as_deref().is_none_or(|t| detail["tenant"] == t)
            && q.campaign
                .as_deref()
                .is_none_or(|c| detail["campaign_id"] == c)
    };
    let (items, next_cursor) =
        testkit::local::page_of(&published, keep, q.limit.as_deref(), q.cursor.as_deref())?;
    Ok(Json(json!({ "items": items, "next_cursor": next_cursor })))
}

#[derive(Deserialize)]
struct Advance {
    #[serde(default)]
    seconds: i64,
    #[serde(default)]
    minutes: i64,
    #[serde(default)]
    hours: i64,
    #[serde(default)]
    days: i64,
}

/// Moves the clock forward so start dates, response timeouts and windows can be shown
/// without waiting (R8.5). The loop then fires what became due.
async fn advance(
    State(l): State<Arc<Local>>,
    JsonBody(a): JsonBody<Advance>,
) -> Result<Json<Value>, ApiError> {
    let by = chrono::Duration::seconds(a.seconds)
        + chrono::Duration::minutes(a.minutes)
        + chrono::Duration::hours(a.hours)
        + chrono::Duration::days(a.days);
    if by < chrono::Duration::zero() {
        return Err(ApiError::bad_request(None, "the clock only moves forward"));
    }
    l.clock.advance(by);
    step(&l).await;
    Ok(Json(json!({ "now": l.clock.now() })))
}

/// One round of what AWS would do on its own.
pub async fn step(l: &Local) {
    let res: anyhow::Result<()> = async {
        // Calls play out on the clock: their contact events due by now go out first.
        l.simulator.play_calls().await;
        // Webhooks that arrived so far are applied before the sweeper looks at timeouts.
        l.system.drain_inbound().await?;
        if let Some(s) = &l.scheduler {
            l.system.fire_due_schedules(s).await?;
        }
        l.system.tick_if_due().await?;
        l.system.drain_queue().await?;
        Ok(())
    }
    .await;
    if let Err(e) = res {
        tracing::warn!(error = %e, "local step failed; retrying");
    }
}

pub async fn run_loop(l: Arc<Local>) {
    loop {
        step(&l).await;
        tokio::time::sleep(Duration::from_millis(200)).await;
    }
}

#[cfg(test)]
mod tests {
    //! Issue 19, items 3, 6 and 8, over HTTP as a newcomer drives the runner.
    use super::*;
    use crate::demo::Api;
    use crate::wiring;

    const PHONES: [&str; 6] = [
        "919812370001",
        "919812370002",
        "919812370003",
        "919812370004",
        "919812370005",
        "919812370006",
    ];

    async fn runner() -> (Arc<Local>, Api) {
        let listener = tokio::net::TcpListener::bind(("127.0.0.1", 0))
            .await
            .unwrap();
        let base = format!("http://{}", listener.local_addr().unwrap());
        let local = Arc::new(wiring::build(&base, false, false).await.unwrap());
        let app = router(local.clone(), None);
        tokio::spawn(async move { axum::serve(listener, app).await });
        (local, Api::new(&base))
    }

    /// A running campaign of the quick-reply template to [`PHONES`]; its id.
    async fn campaign(api: &Api) -> String {
        let account = api
            .post("/accounts", json!({"name": "N", "sender_id": "106540352242922", "token_ref": "secretsmanager:campaigns/demo/t", "waba_id": "100000000000001"}))
            .await
            .unwrap();
        api.post(
            "/templates",
            json!({"account_id": account["id"], "name": "offer", "language": "en",
            "category": "MARKETING", "body": "Hi {{1}}", "quick_replies": ["Yes", "No"]}),
        )
        .await
        .unwrap();
        let contacts: Vec<Value> = PHONES
            .iter()
            .map(|p| json!({"phone": p, "name": "C"}))
            .collect();
        api.post("/contacts", Value::Array(contacts)).await.unwrap();
        let list = api.post("/lists", json!({"name": "L"})).await.unwrap();
        let list = list["id"].as_str().unwrap().to_owned();
        api.post(
            &format!("/lists/{list}/members"),
            json!({ "phones": PHONES }),
        )
        .await
        .unwrap();
        let c = api
            .post(
                "/campaigns",
                json!({"name": "C", "account_id": account["id"],
                "template": {"name": "offer", "language": "en"},
                "variables": [{"source": "contact_name"}], "rate": 20}),
            )
            .await
            .unwrap();
        let id = c["id"].as_str().unwrap().to_owned();
        api.post(
            &format!("/campaigns/{id}/lists"),
            json!({ "list_id": list }),
        )
        .await
        .unwrap();
        api.post(&format!("/campaigns/{id}/launch"), json!({}))
            .await
            .unwrap();
        id
    }

    /// Plays AWS's part until every contact was sent to and every status came back.
    async fn settle(l: &Local, api: &Api, id: &str) {
        for _ in 0..200 {
            l.clock.advance(chrono::Duration::seconds(1));
            step(l).await;
            l.simulator.idle().await;
            step(l).await;
            let s = api.get(&format!("/campaigns/{id}/stats")).await.unwrap();
            if s["read"] == PHONES.len() {
                return;
            }
        }
        panic!("the campaign did not send to everyone");
    }

    #[tokio::test]
    async fn without_demo_the_simulator_answers_no_one_by_itself() {
        if std::env::var("LOCAL_REPLY_PERCENT").is_ok() {
            return; // the variable overrides the default this test is about
        }
        assert_eq!(wiring::reply_percent(false).unwrap(), 0);
        assert_eq!(wiring::reply_percent(true).unwrap(), 40);
        let (l, api) = runner().await;
        let id = campaign(&api).await;
        settle(&l, &api, &id).await;
        let hooks = api.get("/local/sim/webhooks").await.unwrap();
        let replies: Vec<&Value> = hooks
            .as_array()
            .unwrap()
            .iter()
            .filter(|h| h["kind"].as_str().is_some_and(|k| k.starts_with("reply")))
            .collect();
        assert!(replies.is_empty(), "replies nobody posted: {replies:?}");
        let s = api.get(&format!("/campaigns/{id}/stats")).await.unwrap();
        assert_eq!(s["replied"], 0, "{s}");
    }

    #[tokio::test]
    async fn the_simulator_record_and_the_published_events_are_filtered_and_paged() {
        let (l, api) = runner().await;
        let id = campaign(&api).await;
        settle(&l, &api, &id).await;

        // The sends of this campaign, four at a time.
        let first = api
            .get(&format!("/local/sim/messages?campaign={id}&limit=4"))
            .await
            .unwrap();
        assert_eq!(first["items"].as_array().unwrap().len(), 4, "{first}");
        let cursor = first["next_cursor"].as_str().unwrap();
        let rest = api
            .get(&format!(
                "/local/sim/messages?campaign={id}&limit=4&cursor={cursor}"
            ))
            .await
            .unwrap();
        assert_eq!(rest["items"].as_array().unwrap().len(), 2, "{rest}");
        assert!(rest["next_cursor"].is_null());
        for item in first["items"]
            .as_array()
            .unwrap()
            .iter()
            .chain(rest["items"].as_array().unwrap())
        {
            assert_eq!(
                (item["tenant"].as_str(), item["campaign_id"].as_str()),
                (Some("demo"), Some(id.as_str()))
            );
        }
        let other = api.get("/local/sim/messages?tenant=acme").await.unwrap();
        assert_eq!(other["items"], json!([]), "{other}");

        // The campaign's state changes as a subscriber received them.
        let changes = api
            .get(&format!(
                "/local/events?type=CampaignStateChanged&campaign={id}"
            ))
            .await
            .unwrap();
        let tos: Vec<&str> = changes["items"]
            .as_array()
            .unwrap()
            .iter()
            .map(|e| e["detail"]["to"].as_str().unwrap())
            .collect();
        assert_eq!(tos.first(), Some(&"RUNNING"), "{changes}");
        assert!(changes["items"][0]["at"].is_string());

        // A free-text reply: published as a reply and as a request for an agent.
        api.post(
            "/local/sim/reply",
            json!({"phone": PHONES[0], "text": "who is this?"}),
        )
        .await
        .unwrap();
        step(&l).await;
        for (kind, n) in [
            ("ReplyReceived", 1),
            ("AgentConversationRequested", 1),
            ("ContactOptedOut", 0),
        ] {
            let v = api
                .get(&format!("/local/events?type={kind}&campaign={id}"))
                .await
                .unwrap();
            assert_eq!(v["items"].as_array().unwrap().len(), n, "{kind}: {v}");
        }
        let entries = api
            .get(&format!(
                "/campaigns/{id}/hopper/entries?disposition=agent_requested"
            ))
            .await
            .unwrap();
        assert_eq!(entries["items"][0]["phone"], PHONES[0], "{entries}");

        let all = api.get("/local/events?type=&tenant=&limit=").await.unwrap();
        assert!(
            !all["items"].as_array().unwrap().is_empty(),
            "empty filters are absent ones"
        );
        let err = api
            .get("/local/events?type=Reply")
            .await
            .unwrap_err()
            .to_string();
        assert!(
            err.contains("400") && err.contains("\"field\":\"type\""),
            "{err}"
        );
    }
}
