//! Issue 14: one busy number cannot starve the others of the deployment's sender. The
//! sender carries so many messages a second (`Dispatcher::send_capacity`, the SAM
//! parameter `SenderCapacity`); sends planned beyond it wait on the queue in its order,
//! where the account dispatched first each second goes first. So when the running numbers
//! ask for more than the sender carries, the launcher gives each its max-min fair share:
//! a number asking little gets all it asks, the busy ones split the rest evenly.

use serde_json::json;
use shared::domain::ids::{CampaignId, TenantId};
use shared::domain::inbound::SendJob;
use std::collections::BTreeMap;
use std::sync::Arc;
use testkit::harness::{launch, Spawn, Spawned, TENANT};
use testkit::memory::MemoryTable;

/// Seconds between ticks: each tick plans this long.
const TICK: u32 = 5;

fn system(send_capacity: Option<f64>) -> Spawned {
    let mut s = Spawn::new(Arc::new(MemoryTable::new())).build();
    let mut d = (*s.sys.dispatcher).clone();
    d.tick_seconds = TICK;
    d.send_capacity = send_capacity;
    s.sys.dispatcher = Arc::new(d);
    s
}

/// A launched campaign at `rate`/s over `n` new contacts, on its own number (`sender`)
/// allowed `limit`/s.
async fn campaign(
    s: &Spawned,
    sender: &str,
    limit: u32,
    rate: u32,
    first: usize,
    n: usize,
) -> String {
    let phones: Vec<String> = (first..first + n)
        .map(|i| format!("9198300{i:05}"))
        .collect();
    let phones: Vec<&str> = phones.iter().map(String::as_str).collect();
    let id = s
        .ready_campaign_on(
            json!({"sender_id": sender, "rate_limit": limit}),
            &phones,
            json!({}),
            json!({"name": format!("at {rate}/s"), "pacing": {"unit": "messages_per_second", "value": rate}}),
        )
        .await;
    launch(&s.api, &id).await;
    id
}

/// The sends queued so far, per campaign.
fn queued(s: &Spawned) -> BTreeMap<String, usize> {
    // Every queued message, visible or not, once the clock is past the plan.
    s.clock
        .advance(chrono::Duration::seconds(i64::from(TICK) + 1));
    let q = s.memory_queue();
    let mut out = BTreeMap::new();
    loop {
        let got = q.receive_msgs(10);
        if got.is_empty() {
            break;
        }
        for m in got {
            let job: SendJob = serde_json::from_str(&m.body).unwrap();
            *out.entry(job.entry.campaign_id).or_default() += 1;
            q.delete_receipt(&m.receipt);
        }
    }
    out
}

fn count(q: &BTreeMap<String, usize>, id: &str) -> usize {
    q.get(id).copied().unwrap_or(0)
}

#[tokio::test]
async fn a_busy_number_leaves_the_others_their_fair_share_of_the_sender() {
    let s = system(Some(100.0));
    // Asks 1,000/s (its number's limit), with more contacts than 5 s at 100/s.
    let busy = campaign(&s, "106540352242931", 1000, 1000, 0, 1000).await;
    // Asks 20/s of an 80/s number.
    let quiet = campaign(&s, "106540352242932", 80, 20, 1000, 200).await;
    s.sys.dispatcher.tick().await.unwrap();
    let q = queued(&s);
    // Max-min of 100/s: the quiet number all it asks (20/s), the busy one the rest.
    assert_eq!(count(&q, &quiet), 20 * TICK as usize, "{q:?}");
    assert_eq!(count(&q, &busy), 80 * TICK as usize, "{q:?}");
}

#[tokio::test]
async fn without_a_capacity_every_number_is_planned_at_its_own_rate() {
    let s = system(None);
    let busy = campaign(&s, "106540352242931", 1000, 1000, 0, 1000).await;
    let quiet = campaign(&s, "106540352242932", 80, 20, 1000, 200).await;
    s.sys.dispatcher.tick().await.unwrap();
    let q = queued(&s);
    assert_eq!(count(&q, &quiet), 20 * TICK as usize, "{q:?}");
    assert_eq!(count(&q, &busy), 1000, "{q:?}");
}

#[tokio::test]
async fn a_number_launched_while_the_sender_is_fully_shared_waits_for_the_tick() {
    let s = system(Some(100.0));
    let busy = campaign(&s, "106540352242931", 1000, 1000, 0, 1000).await;
    let quiet = campaign(&s, "106540352242932", 80, 20, 1000, 200).await;
    s.sys.dispatcher.tick().await.unwrap();
    let before = queued(&s);
    assert_eq!(count(&before, &busy), 80 * TICK as usize);
    // A third number asks 50/s between ticks. The others' shares of the time already
    // planned cannot shrink, so its launch leaves it to the tick, which shares out what
    // follows: 20 + 40 + 40 of 100.
    let late = campaign(&s, "106540352242933", 80, 50, 2000, 500).await;
    assert_eq!(launch_now(&s, &late).await, 0);
    s.sys.dispatcher.tick().await.unwrap();
    let after = queued(&s);
    assert_eq!(count(&after, &late), 40 * TICK as usize, "{after:?}");
    assert_eq!(count(&after, &busy), 40 * TICK as usize, "{after:?}");
    assert_eq!(count(&after, &quiet), 20 * TICK as usize, "{after:?}");
}

#[tokio::test]
async fn a_number_launched_while_the_sender_has_room_goes_out_at_once() {
    let s = system(Some(1000.0));
    campaign(&s, "106540352242932", 80, 20, 1000, 200).await;
    s.sys.dispatcher.tick().await.unwrap();
    let late = campaign(&s, "106540352242933", 80, 50, 2000, 500).await;
    assert_eq!(launch_now(&s, &late).await, 50 * TICK as usize);
}

/// What the launcher does when `id`'s `Started` event invokes it.
async fn launch_now(s: &Spawned, id: &str) -> usize {
    s.sys
        .dispatcher
        .launch(
            &TenantId::parse(TENANT).unwrap(),
            &CampaignId::parse(id).unwrap(),
        )
        .await
        .unwrap()
}
