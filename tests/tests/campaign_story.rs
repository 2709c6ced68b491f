//! The walking skeleton's story, driven like a user: an operator sets up a campaign over
//! HTTP, it launches at its start date, messages go through the real Meta adapter to the
//! WhatsApp simulator over loopback HTTP, signed webhooks come back, non-responders time
//! out and the campaign completes. It runs on the in-memory adapters and on DynamoDB,
//! SQS, EventBridge and Scheduler served by the local emulator.

use axum::http::{Method, StatusCode};
use chrono::{Duration, TimeZone, Utc};
use serde_json::{json, Value};
use shared::adapters::aws;
use shared::app::campaigns::launch_schedule_name;
use shared::domain::events::DomainEvent;
use shared::domain::stats;
use shared::lambda;
use shared::ports::Clock;
use shared::providers::meta;
use std::sync::Arc;
use testkit::harness::{call, merged, Spawn, Spawned};
use testkit::harness::{SIM_AWS_GRANT_REF, SIM_AWS_SMS_GRANT_REF, SIM_TWILIO_TOKEN_REF};
use testkit::memory::{MemoryScheduler, MemoryTable};
use testkit::simulator::{
    ReplyKind, SimConfig, SimProvider, SnsEvents, SIM_AWS_PHONE_NUMBER_IDS, SIM_AWS_SMS_NUMBERS,
    SIM_TWILIO_SENDER,
};

const LAUNCHER_ARN: &str = "arn:aws:lambda:us-east-1:123456789012:function:launcher";

enum Sched {
    Memory(Arc<MemoryScheduler>),
    Aws(Arc<aws::scheduler::EventBridgeScheduler>),
}

/// How the system reaches WhatsApp.
#[derive(Clone, Copy, PartialEq, Eq)]
enum Via {
    /// Meta's Cloud API; statuses and replies as signed webhooks.
    Meta,
    /// AWS End User Messaging Social; statuses and replies as events through the WABA's
    /// SNS topic into the inbound queue.
    AwsSocial,
    /// Not WhatsApp: an SMS campaign through Twilio's Messages API; statuses and replies
    /// as Twilio's signed form callbacks.
    Twilio,
    /// An SMS campaign through AWS End User Messaging SMS; the configuration set's events
    /// and two-way messages through SNS into the inbound queue.
    AwsSms,
}

impl Via {
    fn sms(self) -> bool {
        matches!(self, Via::Twilio | Via::AwsSms)
    }
}

struct Harness {
    s: Spawned,
    sched: Sched,
    via: Via,
}

impl std::ops::Deref for Harness {
    type Target = Spawned;
    fn deref(&self) -> &Spawned {
        &self.s
    }
}

/// The system on `table` sending to the simulator, whose webhooks reach the webhook router
/// on loopback and are queued for the inbound worker; `queue` and `bus` default to the
/// in-memory ones.
async fn harness(
    table: Arc<dyn shared::ports::Table>,
    queue: Option<Arc<dyn shared::ports::Queue>>,
    sched: Sched,
    bus: Option<Arc<dyn shared::ports::EventBus>>,
) -> Harness {
    harness_via(table, queue, sched, bus, Via::Meta, None, None).await
}

/// [`harness`] reaching WhatsApp `via`; with `aws` the inbound queue and the SNS topic the
/// simulator publishes AWS's events on (else they go straight onto the in-memory inbound
/// queue).
async fn harness_via(
    table: Arc<dyn shared::ports::Table>,
    queue: Option<Arc<dyn shared::ports::Queue>>,
    sched: Sched,
    bus: Option<Arc<dyn shared::ports::EventBus>>,
    via: Via,
    inbound: Option<Arc<dyn shared::ports::Queue>>,
    topic: Option<SnsEvents>,
) -> Harness {
    let scheduler: Arc<dyn shared::ports::Scheduler> = match &sched {
        Sched::Memory(s) => s.clone(),
        Sched::Aws(s) => s.clone(),
    };
    let mut spawn = Spawn::new(table)
        .at(Utc.with_ymd_and_hms(2026, 11, 21, 9, 0, 0).unwrap())
        .simulator(SimConfig {
            reply_percent: 0,
            ..SimConfig::default()
        })
        .scheduler(scheduler)
        .queue_webhooks()
        .serve_webhooks(true)
        .verify_token("test-verify-token");
    if let Some(queue) = queue {
        spawn = spawn.queue(queue);
    }
    if let Some(bus) = bus {
        spawn = spawn.bus(bus);
    }
    if let Some(inbound) = inbound {
        spawn = spawn.inbound_queue(inbound);
    }
    if let Some(topic) = topic {
        spawn = spawn.aws_events(Arc::new(topic));
    }
    Harness {
        s: spawn.spawn().await,
        sched,
        via,
    }
}

fn phones() -> Vec<String> {
    (0..10).map(|i| format!("9198123450{i:02}")).collect()
}

async fn story(h: Harness) {
    let api = &h.api;
    let start = h.clock.now() + Duration::hours(1);

    // Setup over HTTP.
    let account_body = match h.via {
        Via::Meta => json!({
            "name": "Main number", "sender_id": "106540352242922", "token_ref": "env:SIM_TOKEN", "waba_id": "100000000000001"
        }),
        // No Meta token: the deployment's AWS role signs, and the tenant's grant lists the
        // origination number.
        Via::AwsSocial => json!({
            "name": "Main number", "provider": "aws_social", "sender_id": SIM_AWS_PHONE_NUMBER_IDS[0],
            "token_ref": SIM_AWS_GRANT_REF, "waba_id": "100000000000001"
        }),
        // SMS parts per second: a toll-free number's.
        Via::Twilio => json!({
            "name": "SMS number", "provider": "twilio", "sender_id": SIM_TWILIO_SENDER,
            "token_ref": SIM_TWILIO_TOKEN_REF, "rate_limit": 50
        }),
        Via::AwsSms => json!({
            "name": "SMS number", "provider": "aws_sms", "sender_id": SIM_AWS_SMS_NUMBERS[0],
            "token_ref": SIM_AWS_SMS_GRANT_REF, "rate_limit": 50
        }),
    };
    let (s, account) = call(api, Method::POST, "/accounts", Some(account_body)).await;
    assert_eq!(s, StatusCode::CREATED, "{account}");
    let account_id = account["id"].as_str().unwrap().to_owned();
    if !h.via.sms() {
        let (s, t) = call(api, Method::POST, "/templates", Some(json!({
            "account_id": account_id, "name": "spring_offer", "language": "en", "category": "MARKETING",
            "body": "Hi {{1}}, use code {{2}} for 20% off", "quick_replies": ["Yes", "No"]
        }))).await;
        assert_eq!(s, StatusCode::CREATED, "{t}");
    }
    let contacts: Vec<Value> = phones()
        .iter()
        .enumerate()
        .map(|(i, p)| json!({"phone": format!("+{p}"), "name": format!("Customer {i}"), "fields": {"code": format!("SPRING{i}")}}))
        .collect();
    let (s, body) = call(api, Method::POST, "/contacts", Some(Value::Array(contacts))).await;
    assert_eq!(s, StatusCode::CREATED, "{body}");
    let (s, list) = call(
        api,
        Method::POST,
        "/lists",
        Some(json!({"name": "Spring VIPs"})),
    )
    .await;
    assert_eq!(s, StatusCode::CREATED);
    let list_id = list["id"].as_str().unwrap().to_owned();
    let (s, body) = call(
        api,
        Method::POST,
        &format!("/lists/{list_id}/members"),
        Some(json!({"phones": phones()})),
    )
    .await;
    assert_eq!((s, body["added"].as_u64()), (StatusCode::OK, Some(10)));

    // Bad input is a clear 4xx naming the field.
    let (s, body) = call(
        api,
        Method::POST,
        "/campaigns",
        Some(json!({"name": "x", "rate": 0})),
    )
    .await;
    assert_eq!(
        (s, body["field"].as_str()),
        (StatusCode::UNPROCESSABLE_ENTITY, Some("rate")),
        "{body}"
    );
    let (s, body) = call(api, Method::POST, "/campaigns", Some(json!({"name": 5}))).await;
    assert_eq!(
        (s, body["field"].as_str()),
        (StatusCode::BAD_REQUEST, Some("name")),
        "{body}"
    );
    let (s, _) = call(api, Method::GET, "/campaigns/cmp_missing", None).await;
    assert_eq!(s, StatusCode::NOT_FOUND);

    let what = match h.via {
        Via::Twilio | Via::AwsSms => {
            json!({"channel": "sms", "message": "Hi {{1}}, use code {{2}} for 20% off"})
        }
        _ => json!({"template": {"name": "spring_offer", "language": "en"}}),
    };
    let (s, campaign) = call(
        api,
        Method::POST,
        "/campaigns",
        Some(merged(
            json!({
                "name": "Spring offer", "account_id": account_id,
                "variables": [{"source": "contact_name"}, {"source": "field", "name": "code"}],
                "rate": 50, "response_timeout_days": 1, "start_at": start,
                // A tapped "Yes" closes the interaction at once (R5.2; off by default).
                "close_on_quick_reply": true
            }),
            what,
        )),
    )
    .await;
    assert_eq!(
        (s, campaign["status"].as_str()),
        (StatusCode::CREATED, Some("READY")),
        "{campaign}"
    );
    let id = campaign["id"].as_str().unwrap().to_owned();
    let (s, body) = call(api, Method::POST, &format!("/campaigns/{id}/pause"), None).await;
    assert_eq!(
        s,
        StatusCode::CONFLICT,
        "illegal transition is a 409: {body}"
    );

    // R2.2: attaching the same contacts twice keeps one entry each.
    let (s, body) = call(
        api,
        Method::POST,
        &format!("/campaigns/{id}/lists"),
        Some(json!({"list_id": list_id})),
    )
    .await;
    assert_eq!(
        (s, body["added"].as_u64()),
        (StatusCode::OK, Some(10)),
        "{body}"
    );
    let (_, body) = call(
        api,
        Method::POST,
        &format!("/campaigns/{id}/lists"),
        Some(json!({"list_id": list_id})),
    )
    .await;
    assert_eq!(
        (body["added"].as_u64(), body["already_present"].as_u64()),
        (Some(0), Some(10))
    );
    let (_, hopper) = call(api, Method::GET, &format!("/campaigns/{id}/hopper"), None).await;
    assert_eq!(
        (hopper["total"].as_i64(), hopper["states"]["FRESH"].as_i64()),
        (Some(10), Some(10)),
        "{hopper}"
    );

    // Launch with a start date: a one-time schedule targets the launcher.
    let (s, body) = call(api, Method::POST, &format!("/campaigns/{id}/launch"), None).await;
    assert_eq!(
        (s, body["status"].as_str()),
        (StatusCode::OK, Some("SCHEDULED")),
        "{body}"
    );
    let payload: Value = match &h.sched {
        Sched::Memory(m) => {
            let s = m.get(&launch_schedule_name(&id)).expect("schedule exists");
            assert_eq!(s.at, start);
            serde_json::from_str(&s.payload).unwrap()
        }
        Sched::Aws(a) => {
            let (expr, target, input) = a
                .get(&launch_schedule_name(&id))
                .await
                .unwrap()
                .expect("schedule exists");
            assert_eq!(expr, format!("at({})", start.format("%Y-%m-%dT%H:%M:%S")));
            assert_eq!(target, LAUNCHER_ARN);
            serde_json::from_str(&input).unwrap()
        }
    };
    assert_eq!(
        payload,
        json!({"action": "launch", "tenant": "acme", "campaign_id": id})
    );
    // Nothing goes out before the start date.
    lambda::launcher(&h.sys.dispatcher, json!({"action": "tick"}))
        .await
        .unwrap();
    assert_eq!(h.sys.drain_queue().await.unwrap(), 0);

    // The start date arrives and the schedule fires.
    h.clock.advance(Duration::hours(1));
    match &h.sched {
        Sched::Memory(m) => assert_eq!(h.sys.fire_due_schedules(m).await.unwrap(), 1),
        // The emulator stores schedules but never fires them: play its part.
        Sched::Aws(_) => {
            lambda::launcher(&h.sys.dispatcher, payload).await.unwrap();
        }
    }
    let (_, body) = call(api, Method::GET, &format!("/campaigns/{id}"), None).await;
    assert_eq!(body["status"], "RUNNING");

    // Sends reach the simulator through the account's provider, rendered per contact.
    assert_eq!(h.sys.drain_queue().await.unwrap(), 10);
    let sent = h.simulator().sent();
    assert_eq!(sent.len(), 10);
    let (provider, sender) = match h.via {
        Via::Meta => (SimProvider::Meta, "106540352242922"),
        Via::AwsSocial => (SimProvider::AwsSocial, SIM_AWS_PHONE_NUMBER_IDS[0]),
        Via::Twilio => (SimProvider::Twilio, SIM_TWILIO_SENDER),
        Via::AwsSms => (SimProvider::AwsSms, SIM_AWS_SMS_NUMBERS[0]),
    };
    assert!(
        sent.iter()
            .all(|s| s.provider == provider && s.phone_number_id == sender),
        "{sent:?}"
    );
    let to_first = sent
        .iter()
        .find(|s| s.to.trim_start_matches('+') == phones()[0])
        .expect("first contact got the message");
    if h.via.sms() {
        assert_eq!(
            to_first.params,
            vec!["Hi Customer 0, use code SPRING0 for 20% off"]
        );
        assert!(to_first.quick_reply_payloads.is_empty());
    } else {
        assert_eq!(to_first.params, vec!["Customer 0", "SPRING0"]);
        assert_eq!(to_first.quick_reply_payloads, vec!["Yes", "No"]);
    }
    // A redelivered batch sends nothing twice (R4.10).
    let again = h
        .sys
        .sender
        .send_batch(vec![(
            "dup".into(),
            Ok(shared::domain::inbound::EntryRef::decode(
                to_first.callback_data.as_deref().unwrap(),
            )
            .unwrap()
            .into()),
        )])
        .await;
    assert!(again.is_empty());
    assert_eq!(h.simulator().sent().len(), 10);

    // Statuses and replies come back as signed webhooks, queued for the inbound worker.
    h.simulator().idle().await;
    assert!(
        h.simulator().webhooks().iter().all(|w| w.accepted()),
        "every webhook accepted"
    );
    // Sent, delivered and read on WhatsApp; SMS has no read.
    let statuses = if h.via.sms() { 20 } else { 30 };
    assert_eq!(h.sys.drain_inbound().await.unwrap(), statuses);
    // Three customers tap "Yes" (R8.5: the simulator posts a reply for any number), or on
    // SMS text it.
    let repliers = 3;
    for p in &phones()[..3] {
        let posted = match h.via {
            Via::Twilio => h.simulator().twilio_reply(p, "Yes").await.unwrap(),
            Via::AwsSms => h.simulator().aws_sms_reply(p, "Yes").await.unwrap(),
            _ => h
                .simulator()
                .post_reply(p, ReplyKind::Button("Yes".into()))
                .await
                .unwrap(),
        };
        assert!(posted.accepted(), "{posted:?}");
    }
    assert_eq!(h.sys.drain_inbound().await.unwrap(), 3);
    let (_, st) = call(api, Method::GET, &format!("/campaigns/{id}/stats"), None).await;
    // SMS reports no reads: null, not 0.
    let read = (!h.via.sms()).then_some(10);
    assert_eq!(
        (
            st["target"].as_i64(),
            st["sent"].as_i64(),
            st["delivered"].as_i64(),
            st["read"].as_i64(),
            st["replied"].as_i64(),
            st["failed"].as_i64()
        ),
        (Some(10), Some(10), Some(10), read, Some(repliers), Some(0)),
        "{st}"
    );

    if matches!(h.via, Via::AwsSocial | Via::AwsSms) {
        // Events need no public route: an unreadable record on the queue is acknowledged
        // alone and changes nothing.
        h.sys
            .inbound_queue
            .send(vec![shared::ports::OutMessage {
                body: "{\"context\":{}}".into(),
                delay_secs: 0,
            }])
            .await
            .unwrap();
        assert_eq!(h.sys.drain_inbound().await.unwrap(), 1);
        assert_eq!(h.sys.drain_inbound().await.unwrap(), 0, "acknowledged");
        let (_, st2) = call(api, Method::GET, &format!("/campaigns/{id}/stats"), None).await;
        assert_eq!(st, st2);
    } else if h.via == Via::Twilio {
        tampered_twilio_callback_changes_nothing(&h, &id, &st).await;
    } else {
        tampered_webhook_changes_nothing(&h, &id, &st).await;
    }

    // Not done while replies are awaited; non-responders time out after a day.
    assert_eq!(h.sys.sweeper.sweep().await.unwrap().completed, 0);
    h.clock.advance(Duration::days(1) + Duration::minutes(1));
    let report = h.sys.sweeper.sweep().await.unwrap();
    assert_eq!(
        (report.expired as i64, report.completed),
        (10 - repliers, 1)
    );
    let (_, body) = call(api, Method::GET, &format!("/campaigns/{id}"), None).await;
    assert_eq!(body["status"], "COMPLETED");
    assert_eq!(body["progress"]["percent"], 100.0);
    let (_, st) = call(api, Method::GET, &format!("/campaigns/{id}/stats"), None).await;
    assert_eq!(st["no_response"].as_i64(), Some(10 - repliers));
    let (_, hopper) = call(api, Method::GET, &format!("/campaigns/{id}/hopper"), None).await;
    assert_eq!(hopper["states"]["CLOSED"].as_i64(), Some(10));

    // The live counters equal a recount of the entries.
    let c = shared::repo::get_campaign(&*h.sys.ports.table, "acme", &id)
        .await
        .unwrap()
        .unwrap();
    let entries = shared::repo::all_entries(&*h.sys.ports.table, &c)
        .await
        .unwrap();
    let recount: std::collections::BTreeMap<String, i64> = stats::recount(&entries)
        .into_iter()
        .map(|(k, v)| (k.to_owned(), v))
        .collect();
    let live = shared::repo::get_counters(&*h.sys.ports.table, "acme", &id)
        .await
        .unwrap();
    assert_eq!(
        live.into_iter()
            .filter(|(_, v)| *v != 0)
            .collect::<std::collections::BTreeMap<_, _>>(),
        recount
    );
    // A tapped option is named; an SMS reply is free text.
    let replied = entries.iter().filter(|e| e.replied_at.is_some());
    match h.via {
        Via::Twilio | Via::AwsSms => {
            assert!(replied
                .clone()
                .all(|e| e.reply.as_ref().and_then(|r| r.text.as_deref()) == Some("Yes")))
        }
        _ => assert!(replied
            .clone()
            .all(|e| e.disposition.as_deref() == Some("replied:Yes"))),
    }
    assert_eq!(replied.count() as i64, repliers);

    if let Some(bus) = &h.bus {
        let events = bus.events.lock().unwrap();
        let replies = events
            .iter()
            .filter(|e| matches!(e, DomainEvent::ReplyReceived(_)))
            .count() as i64;
        assert_eq!(replies, repliers);
        assert!(events.iter().any(|e| matches!(e, DomainEvent::CampaignStateChanged(c) if c.to == shared::domain::campaign::CampaignStatus::Completed)));
    }
}

/// A Twilio callback whose signature is not the account's is refused and changes nothing.
async fn tampered_twilio_callback_changes_nothing(h: &Harness, id: &str, st: &Value) {
    let api = &h.api;
    let w = h
        .simulator()
        .webhooks()
        .into_iter()
        .find(|w| w.kind == testkit::simulator::WebhookKind::Sent)
        .unwrap();
    let body = w.body.replace("MessageStatus=sent", "MessageStatus=failed");
    let params = shared::providers::twilio::form_params(body.as_bytes());
    let base = h
        .webhook_url
        .as_deref()
        .unwrap()
        .trim_end_matches("/webhooks/meta");
    let account = shared::repo::list_accounts(&*h.sys.ports.table, "acme")
        .await
        .unwrap()[0]
        .id
        .clone();
    let url = format!("{base}/webhooks/twilio/acme/{account}");
    let resp = reqwest::Client::new()
        .post(&url)
        .header("content-type", "application/x-www-form-urlencoded")
        .header(
            shared::providers::twilio::SIGNATURE_HEADER,
            shared::providers::twilio::signature("wrong-token", &url, &params),
        )
        .body(body)
        .send()
        .await
        .unwrap();
    assert_eq!(resp.status().as_u16(), 401);
    assert_eq!(h.sys.drain_inbound().await.unwrap(), 0, "nothing queued");
    let (_, st2) = call(api, Method::GET, &format!("/campaigns/{id}/stats"), None).await;
    assert_eq!(st, &st2);
}

/// A tampered webhook is refused and changes nothing.
async fn tampered_webhook_changes_nothing(h: &Harness, id: &str, st: &Value) {
    let api = &h.api;
    let body = h.simulator().webhooks()[0]
        .body
        .replace("\"sent\"", "\"failed\"");
    let resp = reqwest::Client::new()
        .post(h.webhook_url.as_deref().unwrap())
        .header(
            "x-hub-signature-256",
            meta::signature_header(b"wrong-secret", body.as_bytes()),
        )
        .body(body)
        .send()
        .await
        .unwrap();
    assert_eq!(resp.status().as_u16(), 401);
    assert_eq!(h.sys.drain_inbound().await.unwrap(), 0, "nothing queued");
    let (_, st2) = call(api, Method::GET, &format!("/campaigns/{id}/stats"), None).await;
    assert_eq!(st, &st2);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn walking_skeleton_story_on_in_memory_adapters() {
    let sched = Arc::new(MemoryScheduler::default());
    let h = harness(
        Arc::new(MemoryTable::new()),
        None,
        Sched::Memory(sched),
        None,
    )
    .await;
    story(h).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn walking_skeleton_story_on_aws_emulator() {
    let endpoint = std::env::var("AWS_ENDPOINT_URL")
        .expect("AWS_ENDPOINT_URL is not set: run the suite with scripts/test.sh, which starts the local AWS emulator");
    assert!(
        endpoint.contains("127.0.0.1") || endpoint.contains("localhost"),
        "emulator must be on loopback"
    );
    let cfg = aws::sdk_config().await;
    let suffix = uuid::Uuid::new_v4().simple().to_string();
    let ddb = aws_sdk_dynamodb::Client::new(&cfg);
    let table_name = format!("e2e-{suffix}");
    aws::setup::ensure_table(&ddb, &table_name).await.unwrap();
    let sqs = aws_sdk_sqs::Client::new(&cfg);
    let queue_url = aws::setup::ensure_queue(&sqs, &format!("e2e-{suffix}"))
        .await
        .unwrap();
    let eb = aws_sdk_eventbridge::Client::new(&cfg);
    aws::setup::ensure_bus(&eb, &format!("e2e-{suffix}"))
        .await
        .unwrap();
    let sch = aws_sdk_scheduler::Client::new(&cfg);
    aws::setup::ensure_schedule_group(&sch, &format!("e2e-{suffix}"))
        .await
        .unwrap();
    let scheduler = Arc::new(aws::scheduler::EventBridgeScheduler::new(
        sch,
        format!("e2e-{suffix}"),
        LAUNCHER_ARN,
        "arn:aws:iam::123456789012:role/scheduler",
    ));
    let h = harness(
        Arc::new(aws::dynamo::DynamoTable::new(ddb, table_name)),
        Some(Arc::new(aws::sqs::SqsQueue::new(sqs, queue_url))),
        Sched::Aws(scheduler),
        Some(Arc::new(aws::eventbridge::EventBridgeBus::new(
            eb,
            format!("e2e-{suffix}"),
            "campaigns",
        ))),
    )
    .await;
    story(h).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn walking_skeleton_story_through_aws_end_user_messaging_social_in_memory() {
    let sched = Arc::new(MemoryScheduler::default());
    let h = harness_via(
        Arc::new(MemoryTable::new()),
        None,
        Sched::Memory(sched),
        None,
        Via::AwsSocial,
        None,
        None,
    )
    .await;
    story(h).await;
}

/// The whole story through AWS End User Messaging Social on the emulator: the sends on
/// SQS, and AWS's events published on an SNS topic whose SQS subscription (raw message
/// delivery, as the SAM template sets it) feeds the inbound worker.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn walking_skeleton_story_through_aws_end_user_messaging_social_on_aws_emulator() {
    testkit::harness::require_emulator("the AWS End User Messaging Social story");
    let cfg = aws::sdk_config().await;
    let suffix = uuid::Uuid::new_v4().simple().to_string();
    let ddb = aws_sdk_dynamodb::Client::new(&cfg);
    let table_name = format!("e2e-aws-{suffix}");
    aws::setup::ensure_table(&ddb, &table_name).await.unwrap();
    let sqs = aws_sdk_sqs::Client::new(&cfg);
    let send_url = aws::setup::ensure_queue(&sqs, &format!("e2e-aws-{suffix}"))
        .await
        .unwrap();
    let inbound_url = aws::setup::ensure_queue(&sqs, &format!("e2e-aws-{suffix}-inbound"))
        .await
        .unwrap();
    let inbound_arn = sqs
        .get_queue_attributes()
        .queue_url(&inbound_url)
        .attribute_names(aws_sdk_sqs::types::QueueAttributeName::QueueArn)
        .send()
        .await
        .unwrap()
        .attributes
        .unwrap()[&aws_sdk_sqs::types::QueueAttributeName::QueueArn]
        .clone();
    let sns = aws_sdk_sns::Client::new(&cfg);
    let topic_arn = sns
        .create_topic()
        .name(format!("waba-events-{suffix}"))
        .send()
        .await
        .unwrap()
        .topic_arn
        .unwrap();
    sns.subscribe()
        .topic_arn(&topic_arn)
        .protocol("sqs")
        .endpoint(&inbound_arn)
        .attributes("RawMessageDelivery", "true")
        .send()
        .await
        .unwrap();
    let h = harness_via(
        Arc::new(aws::dynamo::DynamoTable::new(ddb, table_name)),
        Some(Arc::new(aws::sqs::SqsQueue::new(sqs.clone(), send_url))),
        Sched::Memory(Arc::new(MemoryScheduler::default())),
        None,
        Via::AwsSocial,
        Some(Arc::new(aws::sqs::SqsQueue::new(sqs, inbound_url))),
        Some(SnsEvents {
            client: sns,
            topic_arn,
        }),
    )
    .await;
    story(h).await;
}

/// The same story as an SMS campaign through Twilio (issue 16): the message filled per
/// contact, Twilio's signed status callbacks and inbound SMS, no reads.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn walking_skeleton_story_as_sms_through_twilio_in_memory() {
    let sched = Arc::new(MemoryScheduler::default());
    let h = harness_via(
        Arc::new(MemoryTable::new()),
        None,
        Sched::Memory(sched),
        None,
        Via::Twilio,
        None,
        None,
    )
    .await;
    story(h).await;
}

/// The SMS story on DynamoDB and SQS served by the local emulator.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn walking_skeleton_story_as_sms_through_twilio_on_aws_emulator() {
    testkit::harness::require_emulator("the Twilio SMS story");
    let cfg = aws::sdk_config().await;
    let suffix = uuid::Uuid::new_v4().simple().to_string();
    let ddb = aws_sdk_dynamodb::Client::new(&cfg);
    let table_name = format!("e2e-sms-{suffix}");
    aws::setup::ensure_table(&ddb, &table_name).await.unwrap();
    let sqs = aws_sdk_sqs::Client::new(&cfg);
    let send_url = aws::setup::ensure_queue(&sqs, &format!("e2e-sms-{suffix}"))
        .await
        .unwrap();
    let inbound_url = aws::setup::ensure_queue(&sqs, &format!("e2e-sms-{suffix}-inbound"))
        .await
        .unwrap();
    let h = harness_via(
        Arc::new(aws::dynamo::DynamoTable::new(ddb, table_name)),
        Some(Arc::new(aws::sqs::SqsQueue::new(sqs.clone(), send_url))),
        Sched::Memory(Arc::new(MemoryScheduler::default())),
        None,
        Via::Twilio,
        Some(Arc::new(aws::sqs::SqsQueue::new(sqs, inbound_url))),
        None,
    )
    .await;
    story(h).await;
}

/// The story as an SMS campaign through AWS End User Messaging SMS on the emulator: the
/// sends on SQS, and the configuration set's events and the two-way replies published on
/// an SNS topic whose SQS subscription (raw delivery, as the SAM template sets it) feeds
/// the inbound worker.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn walking_skeleton_story_as_sms_through_aws_end_user_messaging_sms_on_aws_emulator() {
    testkit::harness::require_emulator("the AWS End User Messaging SMS story");
    let cfg = aws::sdk_config().await;
    let suffix = uuid::Uuid::new_v4().simple().to_string();
    let ddb = aws_sdk_dynamodb::Client::new(&cfg);
    let table_name = format!("e2e-awssms-{suffix}");
    aws::setup::ensure_table(&ddb, &table_name).await.unwrap();
    let sqs = aws_sdk_sqs::Client::new(&cfg);
    let send_url = aws::setup::ensure_queue(&sqs, &format!("e2e-awssms-{suffix}"))
        .await
        .unwrap();
    let inbound_url = aws::setup::ensure_queue(&sqs, &format!("e2e-awssms-{suffix}-inbound"))
        .await
        .unwrap();
    let inbound_arn = sqs
        .get_queue_attributes()
        .queue_url(&inbound_url)
        .attribute_names(aws_sdk_sqs::types::QueueAttributeName::QueueArn)
        .send()
        .await
        .unwrap()
        .attributes
        .unwrap()[&aws_sdk_sqs::types::QueueAttributeName::QueueArn]
        .clone();
    let sns = aws_sdk_sns::Client::new(&cfg);
    let topic_arn = sns
        .create_topic()
        .name(format!("sms-events-{suffix}"))
        .send()
        .await
        .unwrap()
        .topic_arn
        .unwrap();
    sns.subscribe()
        .topic_arn(&topic_arn)
        .protocol("sqs")
        .endpoint(&inbound_arn)
        .attributes("RawMessageDelivery", "true")
        .send()
        .await
        .unwrap();
    let h = harness_via(
        Arc::new(aws::dynamo::DynamoTable::new(ddb, table_name)),
        Some(Arc::new(aws::sqs::SqsQueue::new(sqs.clone(), send_url))),
        Sched::Memory(Arc::new(MemoryScheduler::default())),
        None,
        Via::AwsSms,
        Some(Arc::new(aws::sqs::SqsQueue::new(sqs, inbound_url))),
        Some(SnsEvents {
            client: sns,
            topic_arn,
        }),
    )
    .await;
    story(h).await;
}

/// The SMS story through AWS End User Messaging SMS on the in-memory adapters.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn walking_skeleton_story_as_sms_through_aws_end_user_messaging_sms_in_memory() {
    let h = harness_via(
        Arc::new(MemoryTable::new()),
        None,
        Sched::Memory(Arc::new(MemoryScheduler::default())),
        None,
        Via::AwsSms,
        None,
        None,
    )
    .await;
    story(h).await;
}
