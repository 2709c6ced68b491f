//! Issue 14: sends leave at their planned slots, not in bursts. SQS delays are whole
//! seconds, so a message becomes visible up to a second before its slot; a sender that
//! waits for slots (`SendService::wait_for_slot`, as deployed) holds each record until
//! then, so a number at its full rate never sends a second's messages at once (where the
//! tail of one second meets the next, Meta refuses the excess with 130429). And a
//! dispatch plans its first slot `start_lead_ms` after it starts, past the time its own
//! table round trips take. The waits run on tokio's paused clock: virtual time.

use async_trait::async_trait;
use serde_json::json;
use shared::app::send::{Job, SendService, MAX_SLOT_WAIT};
use shared::domain::account::Account;
use shared::domain::inbound::SendJob;
use shared::domain::outcome::SendFailure;
use shared::ports::{Accepted, Clock, MessagingProvider, OutboundTemplate};
use std::collections::BTreeMap;
use std::sync::{Arc, Mutex};
use std::time::Duration;
use testkit::harness::{launch, Spawn, Spawned};
use testkit::memory::MemoryTable;
use tokio::time::Instant;

/// A provider that answers at once and notes when each number was sent to.
#[derive(Default)]
struct Calls(Mutex<Vec<(String, Instant)>>);

#[async_trait]
impl MessagingProvider for Calls {
    async fn send(&self, _: &Account, msg: &OutboundTemplate) -> Result<Accepted, SendFailure> {
        let mut calls = self.0.lock().unwrap();
        calls.push((msg.to.as_str().to_owned(), Instant::now()));
        Ok(Accepted::from(format!("wamid.T{}", calls.len())))
    }
}

const PHONES: [&str; 3] = ["919830000001", "919830000002", "919830000003"];

/// A launched campaign over [`PHONES`] at 10/s, its first tick run with `start_lead_ms`;
/// the messages it queued, and how many of them were visible at once.
async fn dispatched(calls: Arc<Calls>, start_lead_ms: u32) -> (Spawned, Vec<SendJob>, usize) {
    let mut s = Spawn::new(Arc::new(MemoryTable::new()))
        .provider(calls)
        .build();
    let mut d = (*s.sys.dispatcher).clone();
    d.start_lead_ms = start_lead_ms;
    s.sys.dispatcher = Arc::new(d);
    let pacing = json!({"pacing": {"unit": "messages_per_second", "value": 10}});
    let id = s.ready_campaign_with(&PHONES, json!({}), pacing).await;
    launch(&s.api, &id).await;
    s.sys.dispatcher.tick().await.unwrap();
    let q = s.memory_queue().clone();
    // What is visible at once, then the rest on a clock moved past every delay and put
    // back.
    let mut got = q.receive_msgs(10);
    let visible_at_once = got.len();
    s.clock.advance(chrono::Duration::seconds(5));
    got.extend(q.receive_msgs(10));
    s.clock.advance(chrono::Duration::seconds(-5));
    let jobs = got
        .iter()
        .map(|m| serde_json::from_str(&m.body).unwrap())
        .collect();
    (s, jobs, visible_at_once)
}

/// The jobs as one queue batch.
fn batch(jobs: Vec<SendJob>) -> Vec<Job> {
    jobs.into_iter()
        .enumerate()
        .map(|(i, j)| (format!("m{i}"), Ok(j)))
        .collect()
}

fn waiting_sender(s: &Spawned, calls: Arc<dyn MessagingProvider>) -> SendService {
    SendService {
        provider: calls,
        wait_for_slot: true,
        ..(*s.sys.sender).clone()
    }
}

#[tokio::test(start_paused = true)]
async fn a_record_received_before_its_slot_is_sent_at_its_slot() {
    let calls = Arc::new(Calls::default());
    let (s, mut jobs, _) = dispatched(calls.clone(), 0).await;
    assert_eq!(jobs.len(), 3);
    let now = s.clock.now();
    // One 600 ms early, one further ahead than the queue's granularity explains (sent
    // at once: its slot is not what SQS made of it), one late (at once).
    let dues = [
        now + chrono::Duration::milliseconds(600),
        now + chrono::Duration::seconds(5),
        now - chrono::Duration::seconds(1),
    ];
    for (j, due) in jobs.iter_mut().zip(dues) {
        j.due = Some(due);
    }
    let by_phone: BTreeMap<String, chrono::DateTime<chrono::Utc>> = jobs
        .iter()
        .map(|j| (j.entry.phone.as_str().to_owned(), j.due.unwrap()))
        .collect();
    let batch = batch(jobs);
    let started = Instant::now();
    let failed = waiting_sender(&s, calls.clone()).send_batch(batch).await;
    assert!(failed.is_empty(), "{failed:?}");
    let sent = calls.0.lock().unwrap().clone();
    assert_eq!(sent.len(), 3);
    for (phone, at) in sent {
        let waited = at - started;
        let due = by_phone[&phone];
        if due == dues[0] {
            // Held to its slot (virtual time; the table and provider answer at once).
            assert!(
                waited >= Duration::from_millis(600) && waited < Duration::from_millis(650),
                "{waited:?}"
            );
        } else {
            assert!(waited < Duration::from_millis(50), "{phone}: {waited:?}");
        }
    }
    assert!(MAX_SLOT_WAIT < Duration::from_secs(5));
}

#[tokio::test(start_paused = true)]
async fn a_sender_that_does_not_wait_sends_at_once() {
    let calls = Arc::new(Calls::default());
    let (s, mut jobs, _) = dispatched(calls.clone(), 0).await;
    for j in &mut jobs {
        j.due = Some(s.clock.now() + chrono::Duration::milliseconds(900));
    }
    let batch = batch(jobs);
    let started = Instant::now();
    let sender = SendService {
        wait_for_slot: false,
        ..waiting_sender(&s, calls.clone())
    };
    assert!(sender.send_batch(batch).await.is_empty());
    assert!(Instant::now() - started < Duration::from_millis(50));
    assert_eq!(calls.0.lock().unwrap().len(), 3);
}

#[tokio::test]
async fn a_dispatch_plans_its_first_slot_after_its_start_lead() {
    let calls = Arc::new(Calls::default());
    let (s, jobs, visible_at_once) = dispatched(calls, 1500).await;
    let t0 = s.clock.now();
    let mut dues: Vec<_> = jobs.iter().map(|j| j.due.unwrap()).collect();
    dues.sort();
    // 10/s from 1.5 s after the tick.
    let ms: Vec<i64> = dues.iter().map(|d| (*d - t0).num_milliseconds()).collect();
    assert_eq!(ms, vec![1500, 1600, 1700]);
    assert_eq!(visible_at_once, 0, "the first slot is a second away");
}

/// A provider that takes 100 ms to answer and notes the most calls it had at once.
#[derive(Default)]
struct Busy {
    now: Mutex<(usize, usize)>,
}

#[async_trait]
impl MessagingProvider for Busy {
    async fn send(&self, _: &Account, _: &OutboundTemplate) -> Result<Accepted, SendFailure> {
        {
            let mut n = self.now.lock().unwrap();
            n.0 += 1;
            n.1 = n.1.max(n.0);
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
        let mut n = self.now.lock().unwrap();
        n.0 -= 1;
        Ok(Accepted::from(format!("wamid.B{}", n.1)))
    }
}

#[tokio::test(start_paused = true)]
async fn records_held_for_the_same_slot_take_no_more_than_the_in_flight_places() {
    let calls = Arc::new(Calls::default());
    let (s, mut jobs, _) = dispatched(calls, 0).await;
    let due = s.clock.now() + chrono::Duration::milliseconds(300);
    for j in &mut jobs {
        j.due = Some(due);
    }
    let busy = Arc::new(Busy::default());
    let sender = SendService {
        concurrency: 2,
        ..waiting_sender(&s, busy.clone())
    };
    let batch = batch(jobs);
    let started = Instant::now();
    assert!(sender.send_batch(batch).await.is_empty());
    assert_eq!(busy.now.lock().unwrap().1, 2, "at most two calls at once");
    // The slot's 300 ms, then two rounds of 100 ms.
    let took = Instant::now() - started;
    assert!(
        took >= Duration::from_millis(500) && took < Duration::from_millis(550),
        "{took:?}"
    );
}
