//! Throughput: the whole pipeline in one process with pacing off — dispatch → send queue →
//! sender → Meta adapter → simulator (loopback HTTP) → signed sent/delivered/read webhooks
//! (loopback HTTP) → webhook router → inbound queue → inbound worker → table — measured
//! from launch until every message is read.
//!
//! "Pacing off": the simulator's per-second limit is off and the manual clock jumps past
//! every planned send time, so the queue hands out the whole campaign at once and the
//! machine, not the configured rate, sets the pace. Several sender and inbound workers
//! drain the queues concurrently, as Lambda scales out on a deep queue.

use crate::pipeline::{Pipeline, Settings, SIM_THREAD_PREFIX};
use crate::report::{mb, status_kb, thousands, thread_cpu, Row};
use crate::Opts;
use anyhow::bail;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};

const S: &str = "throughput";

/// The queue a worker drains, as one Lambda function's instance.
#[derive(Clone, Copy)]
enum Drain {
    Send,
    Inbound,
}
pub const TARGET_PER_SEC: f64 = 5_000.0;

pub async fn run(opts: &Opts) -> anyhow::Result<Vec<Row>> {
    let n = opts.number("messages", 100_000, 3_000) as usize;
    let senders = opts.number("senders", 4, 2) as usize;
    let inbound = opts.number("inbound", 4, 2) as usize;
    // One tick plans up to 900 s (SQS's longest delay) at 1,000/s (Meta's ceiling per
    // number): 900,000 messages per account and tick.
    let tick = 900u32;
    let p = Pipeline::start(Settings {
        sim_rate_limit: None,
        webhooks: true,
        tick_seconds: tick,
        real_time: false,
    })
    .await?;
    let accounts = n.div_ceil(900_000);
    let mut ids = vec![];
    let setup = Instant::now();
    for a in 0..accounts {
        let account = p.account(&format!("1065403522429{a:02}"), 1000).await?;
        let size = (n - a * 900_000).min(900_000);
        let phones = p.contacts(a * 900_000, size).await?;
        ids.push(
            p.campaign(&account, &format!("Throughput {a}"), 1000, &phones)
                .await?,
        );
    }
    eprintln!(
        "   setup: {} contacts in {:.1} s",
        thousands(n as u64),
        setup.elapsed().as_secs_f64()
    );

    let cpu_before = thread_cpu(SIM_THREAD_PREFIX);
    let started = Instant::now();
    for id in &ids {
        p.launch(id).await?;
    }
    // The launcher's tick plans the whole campaign (one tick covers 900 s at 1,000/s).
    p.sys.tick_if_due().await?;
    let dispatched = started.elapsed();
    p.clock.advance(chrono::Duration::seconds(i64::from(tick)));

    let stop = Arc::new(AtomicBool::new(false));
    let mut workers = vec![];
    for (count, queue) in [(senders, Drain::Send), (inbound, Drain::Inbound)] {
        for _ in 0..count {
            let (sys, stop) = (p.sys.clone(), stop.clone());
            workers.push(tokio::spawn(async move {
                while !stop.load(Ordering::Relaxed) {
                    let handed = match queue {
                        Drain::Send => sys.drain_queue().await?,
                        Drain::Inbound => sys.drain_inbound().await?,
                    };
                    if handed == 0 {
                        tokio::time::sleep(Duration::from_millis(2)).await;
                    }
                }
                anyhow::Ok(())
            }));
        }
    }

    let mut all_sent: Option<Duration> = None;
    let deadline = Duration::from_secs(opts.number("timeout-secs", 900, 120));
    let (mut sent, mut read) = (0i64, 0i64);
    while started.elapsed() < deadline {
        tokio::time::sleep(Duration::from_millis(20)).await;
        (sent, read) = (0, 0);
        for id in &ids {
            let c = p.counters(id).await?;
            sent += c.get("sent").copied().unwrap_or(0);
            read += c.get("read").copied().unwrap_or(0);
        }
        if all_sent.is_none() && sent >= n as i64 {
            all_sent = Some(started.elapsed());
        }
        if read >= n as i64 {
            break;
        }
    }
    let wall = started.elapsed();
    let cpu_after = thread_cpu(SIM_THREAD_PREFIX);
    stop.store(true, Ordering::Relaxed);
    for w in workers {
        w.await??;
    }
    if read < n as i64 {
        bail!("only {read} of {n} messages read ({sent} sent) after {deadline:?}");
    }
    let accepted = p.sim.sent().len();
    if accepted != n {
        bail!("the simulator accepted {accepted} sends for {n} contacts");
    }
    let rate = n as f64 / wall.as_secs_f64();
    let per_msg_us = |d: Duration| d.as_secs_f64() * 1e6 / n as f64;
    let sim_us = per_msg_us(cpu_after.0.saturating_sub(cpu_before.0));
    let engine_us = per_msg_us(cpu_after.1.saturating_sub(cpu_before.1));
    let cores = std::thread::available_parallelism().map_or(1, |c| c.get());
    let engine_ceiling = cores as f64 * 1e6 / engine_us.max(1e-9);
    let send_rate = all_sent.map_or(0.0, |d| n as f64 / d.as_secs_f64());
    Ok(vec![
        Row::target(
            S,
            "messages/s end to end (launch → every message read), pacing off",
            format!("{rate:.0}/s"),
            ">= 5,000/s",
            rate >= TARGET_PER_SEC,
        ),
        Row::info(
            S,
            "messages, concurrent sender / inbound workers",
            format!("{}, {senders} / {inbound}", thousands(n as u64)),
        ),
        Row::info(
            S,
            "wall time, launch → all read",
            format!("{:.2} s", wall.as_secs_f64()),
        ),
        Row::info(
            S,
            "launch incl. dispatch of the whole campaign",
            format!("{:.2} s", dispatched.as_secs_f64()),
        ),
        Row::info(
            S,
            "sends/s (launch → all accepted by the simulator)",
            format!("{send_rate:.0}/s"),
        ),
        Row::info(
            S,
            "webhooks applied/s (3 per message: sent, delivered, read)",
            format!("{:.0}/s", 3.0 * n as f64 / wall.as_secs_f64()),
        ),
        Row::info(
            S,
            "CPU per message: engine (launcher, sender and its HTTP client, webhook router, inbound worker, in-memory table) / simulator (Meta's side: send API, signed webhooks)",
            format!("{engine_us:.0} µs / {sim_us:.0} µs"),
        ),
        Row::info(
            S,
            format!("the engine's own ceiling on {cores} cores (cores / engine CPU per message), with the simulator's share left out"),
            format!("{engine_ceiling:.0}/s"),
        ),
        Row::info(
            S,
            "duplicate sends",
            format!("{}", accepted.saturating_sub(n)),
        ),
        Row::info(
            S,
            "bench process peak RSS (table, queues, simulator record included)",
            format!("{:.0} MB", mb(status_kb("VmHWM"))),
        ),
    ])
}
