//! Voice campaigns through Amazon Connect (issue 17, R13): the settings' checks, the
//! campaign story end to end through the real Connect adapter to the simulator's strict
//! `StartOutboundVoiceContact` and its contact events on the inbound queue, pacing by
//! concurrency (also across campaigns on one instance), retries after the delay up to the
//! maximum, answering-machine outcomes by setting, one call per attempt however often its
//! start is sent (the client token), and a lost final event freeing its line at the bound.

use axum::http::Method;
use chrono::Duration;
use serde_json::{json, Value};
use std::collections::HashMap;
use std::sync::Arc;
use testkit::harness::{self as common, Spawn, Spawned, SIM_CONNECT_GRANT_REF};
use testkit::memory::MemoryTable;
use testkit::simulator::{
    SimCallOutcome, SimConfig, SIM_CONNECT_CALLER_IDS, SIM_CONNECT_INSTANCE_IDS,
};

type H = Spawned;

const HUMAN: &str = "14155550211";
const MACHINE: &str = "14155550222";
const NOBODY: &str = "14155550233";
const BUSY: &str = "14155550244";
const INVALID: &str = "14155550255";
const HUMAN_2: &str = "14155550266";

fn outcomes() -> HashMap<String, SimCallOutcome> {
    [
        (HUMAN, SimCallOutcome::Human),
        (MACHINE, SimCallOutcome::Voicemail),
        (NOBODY, SimCallOutcome::NoAnswer),
        (BUSY, SimCallOutcome::Busy),
        (INVALID, SimCallOutcome::InvalidNumber),
        (HUMAN_2, SimCallOutcome::Human),
    ]
    .into_iter()
    .map(|(p, o)| (p.to_owned(), o))
    .collect()
}

async fn spawn(cfg: SimConfig) -> H {
    Spawn::new(Arc::new(MemoryTable::new()))
        .simulator(SimConfig {
            reply_percent: 0,
            call_outcomes: outcomes(),
            ..cfg
        })
        .spawn()
        .await
}

fn id_of(v: &Value) -> String {
    v["id"].as_str().unwrap().to_owned()
}

async fn connect_account(h: &H, max_calls: u32) -> String {
    let body = json!({"name": "Connect", "provider": "connect", "sender_id": SIM_CONNECT_INSTANCE_IDS[0],
        "token_ref": SIM_CONNECT_GRANT_REF, "caller_ids": [SIM_CONNECT_CALLER_IDS[0]],
        "max_concurrent_calls": max_calls});
    id_of(&h.ok(Method::POST, "/accounts", Some(body)).await)
}

fn voice(extra: Value) -> Value {
    common::merged(
        json!({"caller_id": SIM_CONNECT_CALLER_IDS[0], "queue_id": "queue-1", "contact_flow_id": "flow-1"}),
        extra,
    )
}

async fn voice_campaign(h: &H, account: &str, phones: &[&str], settings: Value) -> String {
    let list = h.new_list(phones).await;
    let c = id_of(
        &h.ok(
            Method::POST,
            "/campaigns",
            Some(json!({"name": "calls", "channel": "voice", "account_id": account, "voice": settings})),
        )
        .await,
    );
    h.ok(
        Method::POST,
        &format!("/campaigns/{c}/lists"),
        Some(json!({ "list_id": list })),
    )
    .await;
    c
}

/// Runs the system `secs` seconds of the clock: the tick and the sweep each minute, the
/// send queue, the calls' contact events as they come due, the inbound queue (whose
/// ended calls refill their lines at once).
async fn run(h: &H, secs: i64) {
    for s in 0..secs {
        if s % 60 == 0 {
            h.sys.dispatcher.tick().await.unwrap();
            h.sys.sweeper.sweep().await.unwrap();
        }
        h.sys.drain_queue().await.unwrap();
        h.simulator().play_calls().await;
        h.sys.drain_inbound().await.unwrap();
        h.sys.drain_queue().await.unwrap();
        h.clock.advance(Duration::seconds(1));
    }
}

async fn entry(h: &H, campaign: &str, phone: &str) -> Value {
    let v = h
        .ok(
            Method::GET,
            &format!("/campaigns/{campaign}/hopper/entries?limit=100"),
            None,
        )
        .await;
    v["items"]
        .as_array()
        .unwrap()
        .iter()
        .find(|e| e["phone"] == phone)
        .unwrap_or_else(|| panic!("no entry for {phone}: {v}"))
        .clone()
}

fn calls_to(h: &H, phone: &str) -> usize {
    h.simulator()
        .calls()
        .iter()
        .filter(|c| c.to.ends_with(phone))
        .count()
}

#[tokio::test]
async fn r13_1_voice_settings_are_checked_naming_the_field() {
    let h = spawn(SimConfig::default()).await;
    let account = connect_account(&h, 2).await;
    for (settings, field) in [
        (voice(json!({"caller_id": "5550100100"})), "voice.caller_id"),
        (voice(json!({"max_concurrent": 0})), "voice.max_concurrent"),
        (voice(json!({"max_retries": 11})), "voice.max_retries"),
        (
            voice(json!({"retry_delay_seconds": 0})),
            "voice.retry_delay_seconds",
        ),
        (
            voice(json!({"amd_enabled": true, "amd_action": "voicemail"})),
            "voice.voicemail_message",
        ),
        (voice(json!({"queue_id": "q/1"})), "voice.queue_id"),
        // Not a number the account claimed on its instance.
        (
            voice(json!({"caller_id": "+15550109999"})),
            "voice.caller_id",
        ),
    ] {
        let (s, body) = h
            .call(
                Method::POST,
                "/campaigns",
                Some(json!({"name": "v", "channel": "voice", "account_id": account, "voice": settings})),
            )
            .await;
        assert_eq!(s.as_u16(), 422, "{body}");
        assert_eq!(body["field"], field, "{body}");
    }
    let (s, body) = h
        .call(
            Method::POST,
            "/campaigns",
            Some(json!({"name": "v", "channel": "voice", "account_id": account, "voice": {"caller_id": SIM_CONNECT_CALLER_IDS[0], "queue_id": "q", "contact_flow_id": "f", "amd_action": "shout"}})),
        )
        .await;
    assert!(s.is_client_error(), "{body}");
    // The seed's defaults.
    let c = h
        .ok(
            Method::POST,
            "/campaigns",
            Some(json!({"name": "v", "channel": "voice", "account_id": account, "voice": voice(json!({}))})),
        )
        .await;
    assert_eq!(c["status"], "READY", "{c}");
    assert_eq!(
        (
            &c["voice"]["max_concurrent"],
            &c["voice"]["max_retries"],
            &c["voice"]["retry_delay_seconds"],
            &c["voice"]["amd_enabled"],
        ),
        (&json!(1), &json!(0), &json!(60), &json!(false)),
        "{c}"
    );
    // An account of another channel, or a voice account without caller ids, is refused.
    let (s, body) = h
        .call(
            Method::POST,
            "/accounts",
            Some(json!({"name": "C", "provider": "connect", "sender_id": SIM_CONNECT_INSTANCE_IDS[1], "token_ref": SIM_CONNECT_GRANT_REF})),
        )
        .await;
    assert_eq!(s.as_u16(), 422, "{body}");
    assert_eq!(body["field"], "caller_ids", "{body}");
}

/// The campaign story on voice, in memory.
#[tokio::test]
async fn r13_the_campaign_story_runs_on_voice() {
    voice_story(spawn(SimConfig::default()).await).await;
}

/// Contact events as the stack's rule delivers them: each put on an EventBridge bus (the
/// emulator's default bus) with `source` `aws.connect`, matched by a rule with the SAM
/// template's pattern, whose target is the inbound SQS queue.
struct EventBridgeEvents {
    client: aws_sdk_eventbridge::Client,
}

#[async_trait::async_trait]
impl testkit::simulator::AwsEventSink for EventBridgeEvents {
    async fn publish(&self, event: String) -> Result<(), String> {
        use aws_sdk_eventbridge::primitives::{DateTime, DateTimeFormat};
        let v: Value = serde_json::from_str(&event).map_err(|e| e.to_string())?;
        let entry = aws_sdk_eventbridge::types::PutEventsRequestEntry::builder()
            .source(v["source"].as_str().unwrap_or_default())
            .detail_type(v["detail-type"].as_str().unwrap_or_default())
            .detail(v["detail"].to_string())
            .set_time(
                v["time"]
                    .as_str()
                    .and_then(|t| DateTime::from_str(t, DateTimeFormat::DateTime).ok()),
            )
            .set_resources(v["resources"].as_array().map(|r| {
                r.iter()
                    .filter_map(|x| x.as_str().map(str::to_owned))
                    .collect()
            }))
            .build();
        let out = self
            .client
            .put_events()
            .entries(entry)
            .send()
            .await
            .map_err(|e| aws_sdk_eventbridge::error::DisplayErrorContext(e).to_string())?;
        match out.failed_entry_count {
            0 => Ok(()),
            n => Err(format!("{n} events not put")),
        }
    }
}

/// The campaign story on DynamoDB and SQS served by the local emulator, the calls'
/// contact events through an EventBridge rule (the template's pattern) onto the inbound
/// queue: the lines and the calls' items as DynamoDB stores them.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn r13_the_campaign_story_runs_on_voice_on_aws_emulator() {
    use shared::adapters::aws;
    common::require_emulator("the voice story");
    let cfg = aws::sdk_config().await;
    let suffix = uuid::Uuid::new_v4().simple().to_string();
    let ddb = aws_sdk_dynamodb::Client::new(&cfg);
    let table_name = format!("e2e-voice-{suffix}");
    aws::setup::ensure_table(&ddb, &table_name).await.unwrap();
    let sqs = aws_sdk_sqs::Client::new(&cfg);
    let send_url = aws::setup::ensure_queue(&sqs, &format!("e2e-voice-{suffix}"))
        .await
        .unwrap();
    let inbound_url = aws::setup::ensure_queue(&sqs, &format!("e2e-voice-{suffix}-inbound"))
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
    let eb = aws_sdk_eventbridge::Client::new(&cfg);
    let rule = format!("connect-events-{suffix}");
    let pattern = json!({
        "source": ["aws.connect"], "detail-type": ["Amazon Connect Contact Event"],
        "detail": {"instanceArn": [format!("arn:aws:connect:us-east-1:111122223333:instance/{}", SIM_CONNECT_INSTANCE_IDS[0])],
            "eventType": ["INITIATED", "CONNECTED_TO_SYSTEM", "QUEUED", "CONNECTED_TO_AGENT", "DISCONNECTED"]}
    });
    eb.put_rule()
        .name(&rule)
        .event_pattern(pattern.to_string())
        .send()
        .await
        .unwrap();
    eb.put_targets()
        .rule(&rule)
        .targets(
            aws_sdk_eventbridge::types::Target::builder()
                .id("inbound-queue")
                .arn(&inbound_arn)
                .build()
                .unwrap(),
        )
        .send()
        .await
        .unwrap();
    let h = Spawn::new(Arc::new(aws::dynamo::DynamoTable::new(ddb, table_name)))
        .simulator(SimConfig {
            reply_percent: 0,
            call_outcomes: outcomes(),
            ..SimConfig::default()
        })
        .queue(Arc::new(aws::sqs::SqsQueue::new(sqs.clone(), send_url)))
        .inbound_queue(Arc::new(aws::sqs::SqsQueue::new(sqs, inbound_url)))
        .aws_events(Arc::new(EventBridgeEvents { client: eb }))
        .spawn()
        .await;
    voice_story(h).await;
}

/// Every outcome of seed 003's dispositions, retries after the delay, answering-machine
/// detection leaving a voicemail, the statistics for voice, and never more calls at once
/// than the campaign allows.
async fn voice_story(h: H) {
    let account = connect_account(&h, 10).await;
    let phones = [HUMAN, MACHINE, NOBODY, BUSY, INVALID, HUMAN_2];
    let c = voice_campaign(
        &h,
        &account,
        &phones,
        voice(json!({"max_concurrent": 2, "max_retries": 1, "retry_delay_seconds": 120,
            "amd_enabled": true, "amd_action": "voicemail", "voicemail_message": "Please call us back"})),
    )
    .await;
    common::launch(&h.api, &c).await;
    run(&h, 15 * 60).await;

    let disposition = |e: &Value| {
        (
            e["state"].as_str().map(str::to_owned),
            e["disposition"].as_str().map(str::to_owned),
        )
    };
    let expect = [
        (HUMAN, "CLOSED", "answered", 1),
        (HUMAN_2, "CLOSED", "answered", 1),
        (MACHINE, "CLOSED", "voicemail", 1),
        (NOBODY, "CLOSED", "no_answer", 2),
        (BUSY, "CLOSED", "busy", 2),
        (INVALID, "FAILED", "invalid_number", 1),
    ];
    for (phone, state, disp, calls) in expect {
        let e = entry(&h, &c, phone).await;
        assert_eq!(
            disposition(&e),
            (Some(state.to_owned()), Some(disp.to_owned())),
            "{phone}: {e}"
        );
        assert_eq!(calls_to(&h, phone), calls, "{phone}: one call per attempt");
        assert_eq!(e["calls"].as_array().map(Vec::len), Some(calls), "{e}");
    }
    // The retry came after the delay.
    let nobody: Vec<_> = h
        .simulator()
        .calls()
        .into_iter()
        .filter(|c| c.to.ends_with(NOBODY))
        .collect();
    let gap = nobody[1].started_at - nobody[0].ends_at;
    assert!(
        gap >= Duration::seconds(120),
        "retried {gap} after the first call ended"
    );
    // What Connect was asked: the caller id, flow, queue, detection awaiting the beep on
    // campaign traffic, the flow's attributes, a client token naming no phone.
    let first = &h.simulator().calls()[0];
    assert_eq!(first.caller_id, SIM_CONNECT_CALLER_IDS[0]);
    assert_eq!(first.contact_flow_id, "flow-1");
    assert_eq!(first.queue_id.as_deref(), Some("queue-1"));
    assert_eq!(
        (first.amd, first.traffic_type.as_str()),
        (Some(true), "CAMPAIGN")
    );
    assert_eq!(first.attributes["amd_action"], "voicemail");
    assert_eq!(first.attributes["campaign_id"], c);
    assert!(!first.client_token.contains("1415555"));
    // Never more than two calls at once.
    assert!(
        h.simulator()
            .most_calls_at_once(SIM_CONNECT_INSTANCE_IDS[0], Some(&c))
            <= 2
    );
    // Statistics for voice.
    let stats = h
        .ok(Method::GET, &format!("/campaigns/{c}/stats"), None)
        .await;
    let v = &stats["voice"];
    assert_eq!(
        (
            &v["dialled"],
            &v["calls"],
            &v["answered"],
            &v["voicemail"],
            &v["no_answer"],
            &v["busy"],
            &v["failed"]
        ),
        (
            &json!(6),
            &json!(8),
            &json!(2),
            &json!(1),
            &json!(1),
            &json!(1),
            &json!(1)
        ),
        "{stats}"
    );
    assert_eq!(v["average_attempts"], json!(1.33), "{stats}");
    assert!(stats["read"].is_null(), "{stats}");
    // The campaign completes once every call is settled.
    let camp = h.ok(Method::GET, &format!("/campaigns/{c}"), None).await;
    assert_eq!(camp["status"], "COMPLETED", "{camp}");
}

/// Two campaigns on one Connect account: each keeps to its `max_concurrent`, together to
/// the account's `max_concurrent_calls`, shared fairly; and two dispatchers at once (a
/// tick and a line's refill) never give out more lines than there are.
#[tokio::test]
async fn r13_2_concurrency_is_never_exceeded_across_campaigns_on_one_instance() {
    let h = spawn(SimConfig::default()).await;
    let account = connect_account(&h, 3).await;
    let a: Vec<String> = (0..8).map(|i| format!("141555503{i:02}")).collect();
    let b: Vec<String> = (0..8).map(|i| format!("141555504{i:02}")).collect();
    let refs = |v: &[String]| v.iter().map(|s| s.to_owned()).collect::<Vec<_>>();
    let (ra, rb) = (refs(&a), refs(&b));
    let ca = voice_campaign(
        &h,
        &account,
        &ra.iter().map(String::as_str).collect::<Vec<_>>(),
        voice(json!({"max_concurrent": 3})),
    )
    .await;
    let cb = voice_campaign(
        &h,
        &account,
        &rb.iter().map(String::as_str).collect::<Vec<_>>(),
        voice(json!({"max_concurrent": 3})),
    )
    .await;
    common::launch(&h.api, &ca).await;
    common::launch(&h.api, &cb).await;
    // Dispatchers racing: the tick and refills of the account, at once.
    for _ in 0..5 {
        let d = h.sys.dispatcher.clone();
        let tenant = common::TENANT.to_owned();
        let (x, y, z) = tokio::join!(
            d.tick(),
            d.refill_lines(&tenant, &account),
            d.refill_lines(&tenant, &account)
        );
        x.unwrap();
        y.unwrap();
        z.unwrap();
        let lines =
            shared::repo::voice::get_lines(&*h.table, common::TENANT, SIM_CONNECT_INSTANCE_IDS[0])
                .await
                .unwrap();
        assert!(lines.in_use() <= 3, "{lines:?}");
        run(&h, 20).await;
    }
    run(&h, 10 * 60).await;
    let sim = h.simulator();
    let inst = SIM_CONNECT_INSTANCE_IDS[0];
    assert!(
        sim.most_calls_at_once(inst, None) <= 3,
        "the account's limit"
    );
    assert!(sim.most_calls_at_once(inst, Some(&ca)) <= 3);
    assert!(sim.most_calls_at_once(inst, Some(&cb)) <= 3);
    // Shared: both campaigns called while both had contacts left.
    assert!(sim.most_calls_at_once(inst, None) >= 2);
    assert_eq!(sim.calls().len(), 16, "every contact once");
    for c in [&ca, &cb] {
        let camp = h.ok(Method::GET, &format!("/campaigns/{c}"), None).await;
        assert_eq!(camp["status"], "COMPLETED", "{camp}");
    }
    let lines =
        shared::repo::voice::get_lines(&*h.table, common::TENANT, SIM_CONNECT_INSTANCE_IDS[0])
            .await
            .unwrap();
    assert_eq!(lines.in_use(), 0, "every line freed: {lines:?}");
}

/// A busy number is called again after the delay, at most `max_retries` times.
#[tokio::test]
async fn r13_retries_come_after_the_delay_up_to_the_maximum() {
    let h = spawn(SimConfig::default()).await;
    let account = connect_account(&h, 5).await;
    let c = voice_campaign(
        &h,
        &account,
        &[BUSY, NOBODY, HUMAN],
        voice(json!({"max_concurrent": 3, "max_retries": 2, "retry_delay_seconds": 300})),
    )
    .await;
    common::launch(&h.api, &c).await;
    run(&h, 30 * 60).await;
    for phone in [BUSY, NOBODY] {
        let calls: Vec<_> = h
            .simulator()
            .calls()
            .into_iter()
            .filter(|c| c.to.ends_with(phone))
            .collect();
        assert_eq!(calls.len(), 3, "{phone}: the call and two retries");
        for w in calls.windows(2) {
            assert!(
                w[1].started_at - w[0].ends_at >= Duration::seconds(300),
                "{phone}: a retry before its delay"
            );
        }
        let e = entry(&h, &c, phone).await;
        assert_eq!(e["state"], "CLOSED", "{e}");
        assert_eq!(e["attempts"], 3, "{e}");
    }
    assert_eq!(calls_to(&h, HUMAN), 1, "an answered call is not retried");
}

/// What a machine answering comes to depends on the campaign's setting; without
/// detection a call is `connected`, whoever answered, and goes as ordinary traffic.
#[tokio::test]
async fn r13_answering_machine_outcomes_follow_the_setting() {
    let h = spawn(SimConfig::default()).await;
    let account = connect_account(&h, 10).await;
    let hang_up = voice_campaign(
        &h,
        &account,
        &[MACHINE, HUMAN],
        voice(json!({"max_concurrent": 2, "amd_enabled": true, "amd_action": "hang_up"})),
    )
    .await;
    let off = voice_campaign(
        &h,
        &account,
        &[MACHINE, HUMAN_2],
        voice(json!({"max_concurrent": 2})),
    )
    .await;
    common::launch(&h.api, &hang_up).await;
    common::launch(&h.api, &off).await;
    run(&h, 10 * 60).await;
    let d = |e: Value| e["disposition"].as_str().map(str::to_owned);
    assert_eq!(
        d(entry(&h, &hang_up, MACHINE).await).as_deref(),
        Some("machine_hung_up")
    );
    assert_eq!(
        d(entry(&h, &hang_up, HUMAN).await).as_deref(),
        Some("answered")
    );
    assert_eq!(
        d(entry(&h, &off, MACHINE).await).as_deref(),
        Some("connected")
    );
    assert_eq!(
        d(entry(&h, &off, HUMAN_2).await).as_deref(),
        Some("connected")
    );
    for call in h.simulator().calls() {
        let of_hang_up = call.attributes["campaign_id"] == hang_up;
        if of_hang_up {
            assert_eq!(
                (call.amd, call.traffic_type.as_str()),
                (Some(false), "CAMPAIGN")
            );
            assert_eq!(call.attributes["amd_action"], "hang_up");
        } else {
            assert_eq!((call.amd, call.traffic_type.as_str()), (None, "GENERAL"));
            assert!(!call.attributes.contains_key("amd_action"));
        }
    }
    let stats = h
        .ok(Method::GET, &format!("/campaigns/{off}/stats"), None)
        .await;
    assert_eq!(stats["voice"]["connected"], 2, "{stats}");
    assert_eq!(stats["voice"]["answered"], 0, "{stats}");
}

/// One call per attempt: a start whose answer was lost is sent again by the SDK with the
/// same client token and Connect answers the contact it started; a send job delivered
/// again finds the entry claimed and dials nothing.
#[tokio::test]
async fn r13_2_a_redelivered_or_retried_start_dials_once() {
    let h = spawn(SimConfig::default()).await;
    let account = connect_account(&h, 5).await;
    h.simulator().lose_call_answer(HUMAN);
    let c = voice_campaign(&h, &account, &[HUMAN], voice(json!({}))).await;
    common::launch(&h.api, &c).await;
    run(&h, 5).await;
    assert_eq!(calls_to(&h, HUMAN), 1, "one call");
    assert_eq!(
        h.simulator().call_token_replays(),
        1,
        "the SDK's retry named the same token"
    );
    let e = entry(&h, &c, HUMAN).await;
    assert_eq!(e["state"], "PENDING", "{e}");
    let contact = &h.simulator().calls()[0].contact_id;
    assert_eq!(e["calls"][0]["contact_id"], json!(contact), "{e}");
    // The same send job again.
    let r = shared::domain::inbound::EntryRef {
        tenant: common::TENANT.into(),
        campaign_id: c.clone(),
        shard: shared::domain::hopper::shard_of(
            &shared::domain::phone::PhoneNumber::parse(HUMAN).unwrap(),
            16,
        ),
        phone: shared::domain::phone::PhoneNumber::parse(HUMAN).unwrap(),
    };
    let failed = h
        .sys
        .sender
        .send_batch(vec![("again".into(), Ok(r.into()))])
        .await;
    assert!(failed.is_empty());
    assert_eq!(calls_to(&h, HUMAN), 1, "delivered again, dialled once");
    run(&h, 120).await;
    assert_eq!(entry(&h, &c, HUMAN).await["disposition"], "connected");
}

/// A call whose final event never comes holds its line only until the campaign's bound:
/// then the line is free for the next contact and the entry is settled `no_final_event`.
#[tokio::test]
async fn r13_2_a_lost_final_event_frees_its_line_after_the_bound() {
    let h = spawn(SimConfig {
        call_final_lost: vec![HUMAN.into()],
        ..SimConfig::default()
    })
    .await;
    let account = connect_account(&h, 5).await;
    let c = voice_campaign(
        &h,
        &account,
        &[HUMAN, HUMAN_2],
        voice(json!({"max_concurrent": 1, "max_call_minutes": 3})),
    )
    .await;
    common::launch(&h.api, &c).await;
    run(&h, 4 * 60).await;
    assert_eq!(
        h.simulator().calls().len(),
        1,
        "the line is held while the call may go on"
    );
    // The bound: 3 minutes of call and 2 of dialling, then the next tick.
    run(&h, 4 * 60).await;
    let calls = h.simulator().calls();
    assert_eq!(calls.len(), 2, "the line was freed for the next contact");
    assert!(calls[1].started_at - calls[0].started_at >= Duration::minutes(5));
    assert_eq!(entry(&h, &c, HUMAN).await["disposition"], "no_final_event");
    assert_eq!(entry(&h, &c, HUMAN_2).await["disposition"], "connected");
}

/// Review of issue 17: the SDK's retry of a start whose answer was lost may be refused
/// (too many calls); the entry goes back in line, and its next claim must start with the
/// same client token, or the contact is called a second time while the first call rings.
#[tokio::test]
async fn r13_2_a_claim_after_a_start_that_may_have_dialled_keeps_its_token() {
    let h = spawn(SimConfig::default()).await;
    let account = connect_account(&h, 5).await;
    // Started, and the start and the SDK's two retries refused: the sender hears "too
    // many calls" while the call rings.
    h.simulator().start_call_and_refuse(HUMAN, 2);
    let c = voice_campaign(&h, &account, &[HUMAN], voice(json!({}))).await;
    common::launch(&h.api, &c).await;
    run(&h, 5).await;
    assert_eq!(calls_to(&h, HUMAN), 1, "the first start dialled");
    let e = entry(&h, &c, HUMAN).await;
    assert_eq!(e["state"], "FRESH", "back in line, nothing recorded: {e}");
    // The next dispatch claims it again: Connect answers the contact it started.
    run(&h, 3 * 60).await;
    assert_eq!(calls_to(&h, HUMAN), 1, "dialled once");
    assert!(h.simulator().call_token_replays() >= 1);
    let e = entry(&h, &c, HUMAN).await;
    assert_eq!(e["calls"].as_array().map(Vec::len), Some(1), "{e}");
    assert_eq!(e["disposition"], "connected", "{e}");
}

/// Review of issue 17: a send job delivered again for an entry whose call is live, while
/// its campaign is paused, must not free the call's line (another campaign would take it
/// and the account would run one call over its lines).
#[tokio::test]
async fn r13_2_a_job_delivered_again_during_a_live_call_keeps_its_line() {
    let h = spawn(SimConfig::default()).await;
    let account = connect_account(&h, 5).await;
    let c = voice_campaign(&h, &account, &[HUMAN], voice(json!({}))).await;
    common::launch(&h.api, &c).await;
    run(&h, 3).await;
    assert_eq!(entry(&h, &c, HUMAN).await["state"], "PENDING");
    h.ok(Method::POST, &format!("/campaigns/{c}/pause"), None)
        .await;
    let phone = shared::domain::phone::PhoneNumber::parse(HUMAN).unwrap();
    let r = shared::domain::inbound::EntryRef {
        tenant: common::TENANT.into(),
        campaign_id: c.clone(),
        shard: shared::domain::hopper::shard_of(&phone, 16),
        phone,
    };
    h.sys
        .sender
        .send_batch(vec![("again".into(), Ok(r.clone().into()))])
        .await;
    let lines =
        shared::repo::voice::get_lines(&*h.table, common::TENANT, SIM_CONNECT_INSTANCE_IDS[0])
            .await
            .unwrap();
    assert!(
        lines.holds(&shared::domain::voice::line_key(&r)),
        "the live call keeps its line: {lines:?}"
    );
}

/// Calling hours apply to calls as to messages: none before the window opens, every call
/// inside it.
#[tokio::test]
async fn r13_1_calls_keep_to_the_calling_hours() {
    let h = spawn(SimConfig::default()).await;
    let account = connect_account(&h, 5).await;
    let list = h.new_list(&[HUMAN, HUMAN_2]).await;
    let opens = common::t0() + Duration::minutes(30);
    let hours = json!({"start": opens.format("%H:%M").to_string(),
        "end": (opens + Duration::hours(1)).format("%H:%M").to_string(), "timezone": "UTC"});
    let c = id_of(
        &h.ok(
            Method::POST,
            "/campaigns",
            Some(
                json!({"name": "calls", "channel": "voice", "account_id": account,
                "voice": voice(json!({"max_concurrent": 2})), "calling_hours": hours}),
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
    run(&h, 29 * 60).await;
    assert!(
        h.simulator().calls().is_empty(),
        "no call before the window opens"
    );
    run(&h, 10 * 60).await;
    let calls = h.simulator().calls();
    assert_eq!(calls.len(), 2);
    assert!(calls
        .iter()
        .all(|c| c.started_at >= opens && c.started_at < opens + Duration::hours(1)));
}
