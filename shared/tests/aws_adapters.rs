//! The SQS, EventBridge Scheduler and EventBridge adapters against the local emulator.
//! Run through `scripts/test.sh` (or `eval "$(scripts/emulator.sh start)"` first).

use testkit::harness as common;

use chrono::TimeZone;
use shared::adapters::aws::{setup, EventBridgeBus, EventBridgeScheduler, SqsQueue};
use shared::domain::campaign::CampaignStatus;
use shared::domain::events::{
    AnswerKind, CampaignStateChanged, DomainEvent, InteractionState, ReplyReceived,
};
use shared::ports::*;
use std::collections::BTreeSet;

async fn config() -> aws_config::SdkConfig {
    common::emulator_config("AWS adapter").await
}

fn unique(prefix: &str) -> String {
    format!(
        "{prefix}-{}",
        &uuid::Uuid::new_v4().simple().to_string()[..12]
    )
}

async fn queue() -> (SqsQueue, aws_sdk_sqs::Client, String) {
    let client = aws_sdk_sqs::Client::new(&config().await);
    let name = unique("send");
    let url = setup::ensure_queue(&client, &name).await.unwrap();
    assert_eq!(
        setup::ensure_queue(&client, &name).await.unwrap(),
        url,
        "idempotent"
    );
    (SqsQueue::new(client.clone(), url.clone()), client, url)
}

async fn depth(client: &aws_sdk_sqs::Client, url: &str) -> (u64, u64) {
    use aws_sdk_sqs::types::QueueAttributeName as A;
    let attrs = client
        .get_queue_attributes()
        .queue_url(url)
        .attribute_names(A::ApproximateNumberOfMessages)
        .attribute_names(A::ApproximateNumberOfMessagesNotVisible)
        .send()
        .await
        .unwrap()
        .attributes
        .unwrap_or_default();
    let n = |k: &A| attrs.get(k).and_then(|v| v.parse().ok()).unwrap_or(0);
    (
        n(&A::ApproximateNumberOfMessages),
        n(&A::ApproximateNumberOfMessagesNotVisible),
    )
}

fn msg(body: &str, delay_secs: u32) -> OutMessage {
    OutMessage {
        body: body.into(),
        delay_secs,
    }
}

#[tokio::test]
async fn sqs_send_receive_delete() {
    let (q, client, url) = queue().await;
    q.send(vec![msg(r#"{"campaign":"c1","n":1}"#, 0)])
        .await
        .unwrap();
    let got = q.receive(10).await.unwrap();
    assert_eq!(got.len(), 1);
    assert_eq!(got[0].body, r#"{"campaign":"c1","n":1}"#);
    assert!(!got[0].id.is_empty() && !got[0].receipt.is_empty());
    // Received messages are hidden, not gone.
    assert!(q.receive(10).await.unwrap().is_empty());
    assert_eq!(depth(&client, &url).await, (0, 1));
    q.delete(&got[0].receipt).await.unwrap();
    assert_eq!(depth(&client, &url).await, (0, 0));
    assert!(q.receive(0).await.unwrap().is_empty());
}

#[tokio::test]
async fn sqs_batch_of_25_arrives_whole() {
    let (q, client, url) = queue().await;
    let bodies: BTreeSet<String> = (0..25).map(|n| format!("msg-{n:02}")).collect();
    q.send(bodies.iter().map(|b| msg(b, 0)).collect())
        .await
        .unwrap();
    let mut seen = BTreeSet::new();
    for _ in 0..20 {
        let got = q.receive(10).await.unwrap();
        assert!(got.len() <= 10);
        for r in got {
            assert!(seen.insert(r.body.clone()), "duplicate {}", r.body);
            q.delete(&r.receipt).await.unwrap();
        }
        if seen.len() == bodies.len() {
            break;
        }
    }
    assert_eq!(seen, bodies);
    assert_eq!(depth(&client, &url).await, (0, 0));
}

/// A launcher tick enqueues up to thousands of messages: `send` splits them into batches of ten
/// and has several in flight at once; every message arrives exactly once.
#[tokio::test]
async fn sqs_a_tick_of_250_messages_arrives_whole_in_25_batches() {
    let (q, client, url) = queue().await;
    let bodies: BTreeSet<String> = (0..250).map(|n| format!("msg-{n:03}")).collect();
    q.send(bodies.iter().map(|b| msg(b, 0)).collect())
        .await
        .unwrap();
    let sent = q.metrics().snapshot();
    assert_eq!((sent.send_batch_requests, sent.messages_sent), (25, 250));
    let mut seen = BTreeSet::new();
    while seen.len() < bodies.len() {
        let got = q.receive(10).await.unwrap();
        assert!(!got.is_empty(), "{} of 250 came back", seen.len());
        let receipts: Vec<String> = got.iter().map(|r| r.receipt.clone()).collect();
        for r in got {
            assert!(seen.insert(r.body.clone()), "duplicate {}", r.body);
        }
        q.delete_batch(&receipts).await.unwrap();
    }
    assert_eq!(seen, bodies);
    assert_eq!(depth(&client, &url).await, (0, 0));
}

/// Batches SQS refuses fail the whole `send` (the launcher then keeps its cursor and the
/// next tick enqueues again), however many were in flight.
#[tokio::test]
async fn sqs_refused_batches_fail_the_send() {
    let (q, client, url) = queue().await;
    client.delete_queue().queue_url(&url).send().await.unwrap();
    let msgs: Vec<OutMessage> = (0..95).map(|n| msg(&format!("m-{n}"), 0)).collect();
    let err = q.send(msgs).await.unwrap_err();
    assert!(
        err.to_string().contains("SendMessageBatch"),
        "names the call: {err}"
    );
}

#[tokio::test]
async fn sqs_delay_hides_the_message() {
    let (q, client, url) = queue().await;
    q.send(vec![msg("later", 60)]).await.unwrap();
    assert!(
        q.receive(10).await.unwrap().is_empty(),
        "delayed message must not arrive yet"
    );
    let (visible, in_flight) = depth(&client, &url).await;
    assert_eq!((visible, in_flight), (0, 0));
}

#[tokio::test]
async fn sqs_rejects_delay_over_900() {
    let (q, _, _) = queue().await;
    assert!(matches!(
        q.send(vec![msg("x", 901)]).await,
        Err(PortError::Backend(_))
    ));
}

#[tokio::test]
async fn sqs_queue_has_a_dead_letter_queue() {
    use aws_sdk_sqs::types::QueueAttributeName as A;
    let (_, client, url) = queue().await;
    let attrs = client
        .get_queue_attributes()
        .queue_url(&url)
        .attribute_names(A::RedrivePolicy)
        .send()
        .await
        .unwrap()
        .attributes
        .unwrap_or_default();
    let policy: serde_json::Value = serde_json::from_str(&attrs[&A::RedrivePolicy]).unwrap();
    assert!(policy["deadLetterTargetArn"]
        .as_str()
        .unwrap()
        .ends_with("-dlq"));
    assert_eq!(policy["maxReceiveCount"].to_string().trim_matches('"'), "5");
}

const TARGET: &str = "arn:aws:lambda:us-east-1:123456789012:function:launcher";
const ROLE: &str = "arn:aws:iam::123456789012:role/scheduler-invoke";

#[tokio::test]
async fn scheduler_put_get_update_delete() {
    let client = aws_sdk_scheduler::Client::new(&config().await);
    let group = unique("campaigns");
    setup::ensure_schedule_group(&client, &group).await.unwrap();
    setup::ensure_schedule_group(&client, &group).await.unwrap();
    let s = EventBridgeScheduler::new(client, group, TARGET, ROLE);

    let name = unique("launch");
    assert_eq!(s.get(&name).await.unwrap(), None);
    let at = chrono::Utc.with_ymd_and_hms(2031, 3, 4, 5, 6, 7).unwrap();
    s.put(OneTimeSchedule {
        name: name.clone(),
        at,
        payload: r#"{"campaign":"c1"}"#.into(),
    })
    .await
    .unwrap();
    assert_eq!(
        s.get(&name).await.unwrap(),
        Some((
            "at(2031-03-04T05:06:07)".into(),
            TARGET.into(),
            r#"{"campaign":"c1"}"#.into()
        ))
    );

    // Putting the same name again replaces the schedule.
    let later = chrono::Utc
        .with_ymd_and_hms(2031, 12, 24, 18, 0, 0)
        .unwrap();
    s.put(OneTimeSchedule {
        name: name.clone(),
        at: later,
        payload: r#"{"campaign":"c2"}"#.into(),
    })
    .await
    .unwrap();
    assert_eq!(
        s.get(&name).await.unwrap(),
        Some((
            "at(2031-12-24T18:00:00)".into(),
            TARGET.into(),
            r#"{"campaign":"c2"}"#.into()
        ))
    );

    s.delete(&name).await.unwrap();
    assert_eq!(s.get(&name).await.unwrap(), None);
    s.delete(&name).await.unwrap();
    s.delete("never-existed").await.unwrap();
}

fn events(n: usize) -> Vec<DomainEvent> {
    let at = chrono::Utc::now();
    (0..n)
        .map(|i| {
            if i % 2 == 0 {
                DomainEvent::CampaignStateChanged(CampaignStateChanged {
                    tenant: "t1".into(),
                    campaign_id: format!("c{i}"),
                    from: CampaignStatus::Running,
                    to: CampaignStatus::Paused,
                    reason: Some("error rate".into()),
                    at,
                    version: 3,
                })
            } else {
                DomainEvent::ReplyReceived(ReplyReceived {
                    tenant: "t1".into(),
                    campaign_id: format!("c{i}"),
                    phone: "+4915112345678".into(),
                    sender_id: "106540352242922".into(),
                    message_id: format!("wamid.{i}"),
                    text: None,
                    button: Some("STOP".into()),
                    answer: AnswerKind::Option,
                    interaction: InteractionState::Closed,
                    reply_route: None,
                    conversation: String::new(),
                    window_until: None,
                    at,
                })
            }
        })
        .collect()
}

#[tokio::test]
async fn eventbridge_publish() {
    let client = aws_sdk_eventbridge::Client::new(&config().await);
    let bus = unique("campaign-events");
    setup::ensure_bus(&client, &bus).await.unwrap();
    setup::ensure_bus(&client, &bus).await.unwrap();
    let b = EventBridgeBus::new(client, bus, "whatsapp.campaigns");
    b.publish(&events(1)).await.unwrap();
    // More than one PutEvents call (10 entries each).
    b.publish(&events(23)).await.unwrap();
    b.publish(&[]).await.unwrap();
}
