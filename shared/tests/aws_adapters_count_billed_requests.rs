//! The AWS adapters count the requests AWS bills (the cost benchmark reads these counts):
//! checked against the local emulator. Run through `scripts/test.sh` (or
//! `eval "$(scripts/emulator.sh start)"` first).

use testkit::harness as common;

use serde_json::json;
use shared::adapters::aws::dynamo::TableCounts;
use shared::adapters::aws::eventbridge::BusCounts;
use shared::adapters::aws::sqs::QueueCounts;
use shared::adapters::aws::{setup, EventBridgeBus, SqsQueue};
use shared::domain::campaign::CampaignStatus;
use shared::domain::events::{CampaignStateChanged, DomainEvent};
use shared::ports::*;

const WHAT: &str = "adapter request count";

fn item(v: serde_json::Value) -> Item {
    v.as_object().unwrap().clone()
}

#[tokio::test]
async fn dynamo_table_counts_each_request_by_kind() {
    let t = common::dynamo_table(WHAT, "counts").await;
    let m = t.metrics();
    assert_eq!(m.snapshot(), TableCounts::default());

    // Writes: two puts (the second fails its condition and is still billed), an add, a
    // delete, and 30 deletes in two BatchWriteItem requests.
    t.put(item(json!({"PK": "P", "SK": "A"})), Cond::NotExists)
        .await
        .unwrap();
    assert_eq!(
        t.put(item(json!({"PK": "P", "SK": "A"})), Cond::NotExists)
            .await,
        Err(PortError::ConditionFailed)
    );
    t.add("P", "N", &[("n".into(), 2), ("n".into(), 1)])
        .await
        .unwrap();
    t.delete("P", "gone").await.unwrap();
    let keys: Vec<(String, String)> = (0..30)
        .map(|i| ("Q".to_owned(), format!("K{i:02}")))
        .collect();
    t.delete_many(&keys).await.unwrap();

    // Reads: a get that finds, one that does not, a query of three items in two pages.
    for sk in ["B", "C", "D"] {
        t.put(item(json!({"PK": "R", "SK": sk})), Cond::None)
            .await
            .unwrap();
    }
    let before_reads = m.snapshot();
    assert!(t.get("P", "A").await.unwrap().is_some());
    assert!(t.get("P", "nothing").await.unwrap().is_none());
    let q = Query::new(Index::Primary, "R", SkCond::Any).limit(2);
    let first = t.query(&q).await.unwrap();
    assert_eq!(first.items.len(), 2);
    let rest = t.query(&q.clone().cursor(first.cursor)).await.unwrap();
    assert_eq!(rest.items.len(), 1);
    let reads = m.snapshot() - before_reads;
    // The second page may come back with a cursor; reading past it is an empty page.
    let extra_pages = u64::from(rest.cursor.is_some());
    if let Some(c) = rest.cursor {
        let last = t.query(&q.clone().cursor(Some(c))).await.unwrap();
        assert!(last.items.is_empty());
    }
    assert_eq!(
        reads,
        TableCounts {
            get_item: 2,
            query_pages: 2,
            items_read: 4,
            ..Default::default()
        }
    );

    let all = m.snapshot();
    assert_eq!(
        all,
        TableCounts {
            get_item: 2,
            query_pages: 2 + extra_pages,
            items_read: 4,
            put_item: 5,
            delete_item: 1,
            update_item: 1,
            batch_write_requests: 2,
            batch_write_items: 30,
            conditional_failures: 1,
        }
    );
    assert_eq!(all.write_requests(), 9);
    assert_eq!(all.items_written(), 37);
    assert_eq!(all.read_requests(), 4 + extra_pages);
    // The request totals agree with the detail.
    use std::sync::atomic::Ordering;
    assert_eq!(t.writes.load(Ordering::Relaxed), all.write_requests());
    assert_eq!(t.reads.load(Ordering::Relaxed), all.read_requests());
    // A later snapshot minus an earlier one is what happened in between.
    t.get("P", "A").await.unwrap();
    assert_eq!(
        m.snapshot() - all,
        TableCounts {
            get_item: 1,
            items_read: 1,
            ..Default::default()
        }
    );
}

#[tokio::test]
async fn dynamo_add_without_deltas_counts_the_put_and_get_it_makes() {
    let t = common::dynamo_table(WHAT, "counts-bare").await;
    t.add("P", "BARE", &[]).await.unwrap();
    t.add("P", "BARE", &[]).await.unwrap();
    assert_eq!(
        t.metrics().snapshot(),
        TableCounts {
            get_item: 2,
            items_read: 2,
            put_item: 2,
            conditional_failures: 1,
            ..Default::default()
        }
    );
}

#[tokio::test]
async fn sqs_queue_counts_batches_receives_and_deletes() {
    let conf = common::emulator_config(WHAT).await;
    let client = aws_sdk_sqs::Client::new(&conf);
    let url = setup::ensure_queue(&client, &common::unique_name("counts"))
        .await
        .unwrap();
    let q = SqsQueue::new(client, url);
    let m = q.metrics();
    let msgs: Vec<OutMessage> = (0..15)
        .map(|i| OutMessage {
            body: format!("m{i}"),
            delay_secs: 0,
        })
        .collect();
    q.send(msgs).await.unwrap();
    assert_eq!(
        m.snapshot(),
        QueueCounts {
            send_batch_requests: 2,
            messages_sent: 15,
            ..Default::default()
        }
    );
    let mut received = Vec::new();
    while received.len() < 15 {
        let got = q.receive(10).await.unwrap();
        assert!(!got.is_empty(), "every message comes back");
        received.extend(got);
    }
    let receives = m.snapshot().receive_requests;
    assert!(receives >= 2);
    assert_eq!(q.receive(10).await.unwrap(), vec![]);
    q.delete(&received[0].receipt).await.unwrap();
    let rest: Vec<String> = received[1..].iter().map(|r| r.receipt.clone()).collect();
    q.delete_batch(&rest).await.unwrap();
    let c = m.snapshot();
    assert_eq!(
        c,
        QueueCounts {
            send_batch_requests: 2,
            messages_sent: 15,
            receive_requests: receives + 1,
            empty_receives: 1,
            messages_received: 15,
            delete_requests: 1,
            delete_batch_requests: 2,
            messages_deleted: 15,
        }
    );
    assert_eq!(c.requests(), 2 + receives + 1 + 1 + 2);
}

#[tokio::test]
async fn eventbridge_bus_counts_put_events_requests_and_events() {
    let conf = common::emulator_config(WHAT).await;
    let client = aws_sdk_eventbridge::Client::new(&conf);
    let name = common::unique_name("counts");
    setup::ensure_bus(&client, &name).await.unwrap();
    let bus = EventBridgeBus::new(client, name, "campaigns");
    let events: Vec<DomainEvent> = (0..12)
        .map(|i| {
            DomainEvent::CampaignStateChanged(CampaignStateChanged {
                tenant: "t1".into(),
                campaign_id: format!("c{i}"),
                from: CampaignStatus::Running,
                to: CampaignStatus::Paused,
                reason: None,
                at: chrono::Utc::now(),
                version: 3,
            })
        })
        .collect();
    bus.publish(&events).await.unwrap();
    bus.publish(&[]).await.unwrap();
    assert_eq!(
        bus.metrics().snapshot(),
        BusCounts {
            put_events_requests: 2,
            events: 12,
        }
    );
}
