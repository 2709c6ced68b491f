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

/// The campaign story on voice: every outcome of seed 003's dispositions, retries after
/// the delay, answering-machine detection leaving a voicemail, the statistics for voice,
/// and never more calls at once than the campaign allows.
#[tokio::test]
async fn r13_the_campaign_story_runs_on_voice() {
    let h = spawn(SimConfig::default()).await;
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
