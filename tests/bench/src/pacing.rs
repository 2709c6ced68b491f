//! Pacing: configured rates held over several minutes against the simulator's limit of
//! 80 sends/s per sender (Meta's default throughput; beyond it the simulator answers
//! 130429, which the bench counts as throttling).
//!
//! The run is on the manual clock the queue and the simulator share: the launcher ticks
//! every 60 s as in Lambda, the sender takes what is due every 100 ms, and the simulator
//! counts accepted sends per second of that clock. Several minutes take seconds of wall
//! time, and a slow machine cannot blur the figures.

use crate::pipeline::{Pipeline, Settings};
use crate::report::{thousands, Row};
use crate::Opts;
use chrono::Duration;
use serde_json::json;
use shared::app::dispatch::START_LEAD_MS;
use shared::lambda;
use shared::ports::Clock;
use std::collections::BTreeMap;
use testkit::simulator::SIM_DEFAULT_RATE_LIMIT;

const S: &str = "pacing";

struct Case {
    name: &'static str,
    /// Rates of the campaigns sharing one account (messages/s).
    rates: Vec<u32>,
    /// The account's limit.
    account_limit: u32,
}

pub async fn run(opts: &Opts) -> anyhow::Result<Vec<Row>> {
    let minutes = opts.number("minutes", 5, 1) as i64;
    let cases = [
        Case {
            name: "one campaign at the limit, 80/s",
            rates: vec![80],
            account_limit: SIM_DEFAULT_RATE_LIMIT,
        },
        Case {
            name: "one campaign at 25/s",
            rates: vec![25],
            account_limit: SIM_DEFAULT_RATE_LIMIT,
        },
        Case {
            name: "two campaigns at 80/s sharing one 80/s number",
            rates: vec![80, 80],
            account_limit: SIM_DEFAULT_RATE_LIMIT,
        },
    ];
    let mut rows = vec![];
    for case in cases {
        rows.extend(run_case(&case, minutes).await?);
    }
    // In real time: full, 3 minutes of minute ticks; smoke, two 10 s windows.
    let (windows, window_secs) = if opts.smoke {
        (2, 10)
    } else {
        (minutes.min(3), 60)
    };
    rows.extend(run_real_time(windows, window_secs).await?);
    Ok(rows)
}

/// One campaign at 10/s on the system clock, as the local runner or Lambda runs it: ticks
/// every `window_secs`, each fired late by a pseudo-random 0-3 s (EventBridge Scheduler's
/// minute ticks start a little late), the deployed launcher's margins, a sender that
/// waits for each slot and is fed every 50 ms. Sends are counted per window from the
/// first slot by the simulator's arrival times.
async fn run_real_time(windows: i64, window_secs: u32) -> anyhow::Result<Vec<Row>> {
    const RATE: u32 = 10;
    let p = Pipeline::start(Settings {
        sim_rate_limit: Some(SIM_DEFAULT_RATE_LIMIT),
        webhooks: false,
        tick_seconds: window_secs,
        real_time: true,
    })
    .await?;
    let account = p.account("106540352242922", SIM_DEFAULT_RATE_LIMIT).await?;
    let n = (RATE * window_secs) as usize * (windows as usize + 1);
    let phones = p.contacts(0, n).await?;
    let id = p.campaign(&account, "Real time", RATE, &phones).await?;
    let t0 = p.clock.now();
    p.launch(&id).await?;
    let window = Duration::seconds(i64::from(window_secs));
    let start = t0 + Duration::milliseconds(i64::from(START_LEAD_MS));
    let end = start + window * windows as i32;
    let mut scheduled = t0;
    let mut fire_at = t0;
    let mut seed: u64 = 0x9e37_79b9_7f4a_7c15;
    let mut latest = Duration::zero();
    while p.clock.now() < end + Duration::seconds(2) {
        let now = p.clock.now();
        if now >= fire_at {
            latest = latest.max(now - scheduled);
            lambda::launcher(&p.sys.dispatcher, json!({"action": "tick"})).await?;
            seed = seed
                .wrapping_mul(6364136223846793005)
                .wrapping_add(1442695040888963407);
            scheduled += window;
            fire_at = scheduled + Duration::milliseconds(((seed >> 33) % 3000) as i64);
        }
        p.sys.drain_queue().await?;
        tokio::time::sleep(std::time::Duration::from_millis(50)).await;
    }
    let want = f64::from(RATE * window_secs);
    let counts: Vec<usize> = (0..windows)
        .map(|k| {
            let from = start + window * k as i32;
            p.sim
                .sent()
                .iter()
                .filter(|r| r.at >= from && r.at < from + window)
                .count()
        })
        .collect();
    let worst = counts
        .iter()
        .map(|c| (*c as f64 - want).abs() / want)
        .fold(0.0f64, f64::max);
    let busiest = p.sim.sent_per_second().values().copied().max().unwrap_or(0);
    let name = format!(
        "real clock, one campaign at {RATE}/s, ticks every {window_secs} s fired 0-3 s late"
    );
    Ok(vec![
        Row::target(
            S,
            format!("{name}: worst {window_secs} s window vs {want}"),
            format!(
                "{:.2} % ({}; busiest second {busiest}; latest tick {:.1} s)",
                worst * 100.0,
                counts
                    .iter()
                    .map(|c| c.to_string())
                    .collect::<Vec<_>>()
                    .join(" · "),
                latest.num_milliseconds() as f64 / 1000.0
            ),
            "within 1 %",
            worst <= 0.01,
        ),
        Row::target(
            S,
            format!("{name}: throttling errors (130429)"),
            p.sim.throttled().len().to_string(),
            "0",
            p.sim.throttled().is_empty(),
        ),
    ])
}

async fn run_case(case: &Case, minutes: i64) -> anyhow::Result<Vec<Row>> {
    let p = Pipeline::start(Settings {
        sim_rate_limit: Some(SIM_DEFAULT_RATE_LIMIT),
        webhooks: false,
        tick_seconds: 60,
        real_time: false,
    })
    .await?;
    let account = p.account("106540352242922", case.account_limit).await?;
    // The whole account's rate: what the simulator should see every second.
    let expected_per_sec = case.rates.iter().sum::<u32>().min(case.account_limit);
    let mut ids = vec![];
    let mut first = 0;
    for (i, rate) in case.rates.iter().enumerate() {
        // Enough contacts that no campaign runs dry before the end.
        let n = (*rate as usize) * 60 * (minutes as usize + 1);
        let phones = p.contacts(first, n).await?;
        first += n;
        ids.push(
            p.campaign(&account, &format!("Pacing {i}"), *rate, &phones)
                .await?,
        );
    }
    let t0 = p.clock.now();
    for id in &ids {
        p.launch(id).await?;
    }
    let end = t0 + Duration::minutes(minutes);
    while p.clock.now() < end {
        p.sys.tick_if_due().await?;
        p.sys.drain_queue().await?;
        p.clock.advance(Duration::milliseconds(100));
    }
    let per_sec = p.sim.sent_per_second();
    let mut per_min: BTreeMap<i64, usize> = BTreeMap::new();
    for (sec, n) in &per_sec {
        let k = (sec - t0.timestamp()).div_euclid(60);
        if (0..minutes).contains(&k) {
            *per_min.entry(k).or_insert(0) += n;
        }
    }
    let target_min = f64::from(expected_per_sec) * 60.0;
    let worst = (0..minutes)
        .map(|k| {
            let got = per_min.get(&k).copied().unwrap_or(0) as f64;
            (got - target_min).abs() / target_min
        })
        .fold(0.0f64, f64::max);
    let minutes_text: Vec<String> = (0..minutes)
        .map(|k| thousands(per_min.get(&k).copied().unwrap_or(0) as u64))
        .collect();
    let max_sec = per_sec.values().copied().max().unwrap_or(0);
    let throttled = p.sim.throttled().len();
    let mut rows = vec![
        Row::target(
            S,
            format!(
                "{}: worst minute's error vs {}/min over {minutes} min",
                case.name,
                thousands(target_min as u64)
            ),
            format!("{:.2} %", worst * 100.0),
            "within 1 %",
            worst <= 0.01,
        ),
        Row::target(
            S,
            format!("{}: throttling errors (130429)", case.name),
            throttled.to_string(),
            "0",
            throttled == 0,
        ),
        Row::info(
            S,
            format!("{}: sends per minute; busiest second", case.name),
            format!("{}; {max_sec}/s", minutes_text.join(" · ")),
        ),
    ];
    if ids.len() > 1 {
        let mut shares = vec![];
        for id in &ids {
            let c = p.counters(id).await?;
            shares.push(thousands(c.get("sent").copied().unwrap_or(0) as u64));
        }
        rows.push(Row::info(
            S,
            format!("{}: sent per campaign", case.name),
            shares.join(" / "),
        ));
    }
    Ok(rows)
}
