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
    Ok(rows)
}

async fn run_case(case: &Case, minutes: i64) -> anyhow::Result<Vec<Row>> {
    let p = Pipeline::start(Settings {
        sim_rate_limit: Some(SIM_DEFAULT_RATE_LIMIT),
        webhooks: false,
        tick_seconds: 60,
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
