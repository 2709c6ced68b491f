//! Issue 14: pacing holds within 1 % over every minute when ticks fire late, as they do in
//! real time (EventBridge Scheduler's minute tick starts a little late; the local runner
//! looks every 200 ms). Each tick plans from where the last one stopped up to the next tick
//! plus `plan_ahead_secs`; without the margin the seconds a tick is late were never planned
//! (a 5 s tick late by 0.17 s sent 3.3 % under the rate). The minutes are counted by when
//! each message becomes visible on the send queue, i.e. when the sender would send it.

use testkit::harness as common;

use chrono::Duration;
use serde_json::json;
use shared::ports::Clock;
use std::collections::BTreeMap;
use std::sync::Arc;
use testkit::harness::{Spawn, Spawned};
use testkit::memory::MemoryTable;

const RATE: u64 = 10;

/// Sends per minute after launch over `minutes`, with each tick `tick_s` apart and late
/// by a pseudo-random 0-`late_ms` ms.
async fn minutes(plan_ahead: u32, tick_s: i64, late_ms: u64, minutes: i64) -> Vec<u64> {
    let mut s: Spawned = Spawn::new(Arc::new(MemoryTable::new())).build();
    let mut d = (*s.sys.dispatcher).clone();
    d.tick_seconds = tick_s as u32;
    d.plan_ahead_secs = plan_ahead;
    s.sys.dispatcher = Arc::new(d);
    let phones: Vec<String> = (0..(RATE as i64 * 60 * (minutes + 2)))
        .map(|i| format!("9198200{i:05}"))
        .collect();
    let id = campaign(&s, &phones).await;
    common::launch(&s.api, &id).await;
    let start = s.clock.now();
    let queue = s.queue.clone().unwrap();
    let mut per_minute: BTreeMap<i64, u64> = BTreeMap::new();
    let mut next_tick = start;
    let mut seed: u64 = 0x9e37_79b9_7f4a_7c15;
    let end = start + Duration::minutes(minutes);
    let mut now = start;
    while now < end {
        if now >= next_tick {
            s.sys.dispatcher.tick().await.unwrap();
            seed = seed
                .wrapping_mul(6364136223846793005)
                .wrapping_add(1442695040888963407);
            let late = if late_ms == 0 {
                0
            } else {
                (seed >> 33) % late_ms
            };
            // The next tick fires `tick_s` after this one was due, late by `late`.
            next_tick = next_tick + Duration::seconds(tick_s) + Duration::milliseconds(late as i64);
        }
        loop {
            let got = queue.receive_msgs(10);
            if got.is_empty() {
                break;
            }
            let minute = (now - start).num_seconds() / 60;
            *per_minute.entry(minute).or_default() += got.len() as u64;
            for m in got {
                queue.delete_receipt(&m.receipt);
            }
        }
        // Steps of 100 ms, or straight to the next tick.
        now =
            (now + Duration::milliseconds(100)).min(next_tick.max(now + Duration::milliseconds(1)));
        s.clock.advance(now - s.clock.now());
    }
    (0..minutes)
        .map(|m| per_minute.get(&m).copied().unwrap_or(0))
        .collect()
}

/// A READY campaign at [`RATE`] messages/s over `phones`.
async fn campaign(s: &Spawned, phones: &[String]) -> String {
    let phones: Vec<&str> = phones.iter().map(String::as_str).collect();
    let pacing = json!({"pacing": {"unit": "messages_per_second", "value": RATE}});
    s.ready_campaign_with(&phones, json!({}), pacing).await
}

/// One second's sends over the run, in parts of the run's: SQS delays in whole seconds
/// put up to a second's sends on the other side of the run's end.
const SECOND: f64 = 1.0 / 180.0;

/// The whole run's sends against the rate: what late ticks lose adds up here, while a
/// second's rounding at a minute's edge evens out.
fn total_shortfall(counts: &[u64]) -> f64 {
    let want = (RATE * 60 * counts.len() as u64) as f64;
    (want - counts.iter().sum::<u64>() as f64) / want
}

/// The worst minute's distance from the rate, less one second's sends: SQS delays are
/// whole seconds from the moment each tick enqueues, so a tick that fires at another
/// fraction of a second than the last moves its sends by up to half a second, and a minute's
/// edge by up to a second's sends (README, Performance). What late ticks used to lose
/// comes on top of that and shows in [`total_shortfall`].
fn worst_shortfall(counts: &[u64]) -> f64 {
    let want = (RATE * 60) as f64;
    counts
        .iter()
        .map(|c| ((want - *c as f64).abs() - RATE as f64).max(0.0) / want)
        .fold(0.0, f64::max)
}

#[tokio::test]
async fn minute_ticks_up_to_three_seconds_late_keep_every_minute_within_one_percent() {
    let counts = minutes(shared::app::dispatch::PLAN_AHEAD_SECONDS, 60, 3000, 5).await;
    assert!(
        total_shortfall(&counts).abs() <= 0.005 + SECOND,
        "{counts:?}"
    );
    assert!(
        worst_shortfall(&counts) <= 0.01,
        "every minute within 1 % of {}: {counts:?}",
        RATE * 60
    );
}

#[tokio::test]
async fn without_the_margin_late_ticks_lose_their_seconds() {
    // The defect as it was: the same late ticks without planning ahead.
    let counts = minutes(0, 60, 3000, 5).await;
    assert!(
        total_shortfall(&counts) > 0.01,
        "late ticks lose slots without the margin: {counts:?}"
    );
}

#[tokio::test]
async fn the_local_runner_five_second_tick_late_by_a_step_keeps_the_rate() {
    // The local runner: a 5 s tick seen up to a 200 ms step late, one second planned ahead.
    let counts = minutes(1, 5, 200, 3).await;
    assert!(
        total_shortfall(&counts).abs() <= 0.005 + SECOND,
        "{counts:?}"
    );
    assert!(
        worst_shortfall(&counts) <= 0.01,
        "every minute within 1 %: {counts:?}"
    );
}
