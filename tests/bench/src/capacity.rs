//! Capacity: how many numbers one deployment feeds at Meta's full rate (1,000 messages/s
//! per upgraded number) when every send takes as long as Meta takes to answer.
//!
//! In AWS the provider's answer time, not the CPU, sets the ceiling: a sender invocation
//! lasts until the slowest call of its batch has answered, and the event source mapping
//! runs at most `SenderMaxConcurrency` of them. The scenario runs that shape: `instances`
//! pollers, each gathering up to `batch` records (waiting at most the batching window for
//! the batch to fill, as the event source mapping does), invoking the real sender with
//! `in_flight` provider calls at once, and deleting what it did not report as failed. The
//! launcher ticks every 60 s and plans 10 s ahead, as deployed. Meta is the simulator's
//! send path in process ([`testkit::simulator::DirectMeta`]): its per-number limit, and an
//! answer time drawn from [`Latency::CLOUD_API`] (p50 250 ms, p99 1.5 s). Every table
//! operation waits a draw of [`DYNAMODB`].
//!
//! Everything runs on tokio's paused clock: waiting (Meta's answers, the table, the
//! queue's delays, the pollers' long polls) takes virtual time and the engine's own CPU
//! takes none, so the figures are those of the deployed configuration, whatever this
//! machine's two cores can do. The CPU per message is measured by the throughput scenario
//! (a Lambda instance has its own).

use crate::cost::esm;
use crate::pipeline::Api;
use crate::report::{thousands, Row};
use crate::Opts;
use async_trait::async_trait;
use chrono::{TimeZone, Utc};
use shared::app::dispatch::{PLAN_AHEAD_SECONDS, START_LEAD_MS};
use shared::app::send::SendService;
use shared::domain::inbound::SendJob;
use shared::domain::Time;
use shared::lambda::{self, sqs_event};
use shared::ports::{Clock, Cond, Item, Page, PortResult, Query, Received, Table};
use std::collections::{BTreeMap, HashMap};
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Duration;
use testkit::local::{Ports, System};
use testkit::memory::{MemoryBus, MemoryQueue, MemoryScheduler, MemoryTable};
use testkit::simulator::{Latency, SimConfig, Simulator, SIM_UPGRADED_RATE_LIMIT};

const S: &str = "capacity";

/// Every number's rate: Meta's limit of an upgraded number.
const RATE: u32 = SIM_UPGRADED_RATE_LIMIT;

/// DynamoDB's answer time within a region as the scenario assumes it (single-digit
/// milliseconds, a tail to 20 ms).
const DYNAMODB: Latency = Latency {
    p50: Duration::from_millis(4),
    p99: Duration::from_millis(20),
};

/// How the sender is deployed.
#[derive(Debug, Clone, Copy)]
pub struct Deployment {
    pub name: &'static str,
    /// The event source mapping's maximum concurrency (`SenderMaxConcurrency`).
    pub instances: usize,
    /// Records per invocation (`SenderBatchSize`).
    pub batch: usize,
    /// Provider calls at once per invocation (`SenderInFlight`).
    pub in_flight: usize,
    /// The batching window (`MaximumBatchingWindowInSeconds`).
    pub window: Duration,
    /// Whether the sender holds each record until its slot (as deployed).
    pub wait_for_slot: bool,
    /// What the launcher shares among the numbers (`SenderCapacity`; `None`: no limit).
    pub send_capacity: Option<f64>,
}

impl Deployment {
    /// The template's defaults: what a deploy without overrides runs.
    fn from_template() -> anyhow::Result<Deployment> {
        let template = std::fs::read_to_string(
            std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("../../infra/template.yaml"),
        )?;
        let number = |p: &str| -> anyhow::Result<usize> {
            esm::parameter_default(&template, p)
                .and_then(|v| v.parse().ok())
                .ok_or_else(|| anyhow::anyhow!("infra/template.yaml: no numeric default for {p}"))
        };
        let m = esm::mapping_from_template(&template, "SenderFunction")
            .ok_or_else(|| anyhow::anyhow!("infra/template.yaml: no SenderFunction mapping"))?;
        Ok(Deployment {
            name: "template defaults",
            instances: number("SenderMaxConcurrency")?,
            batch: m.batch_size,
            in_flight: number("SenderInFlight")?,
            window: m.window,
            wait_for_slot: true,
            send_capacity: Some(number("SenderCapacity")? as f64).filter(|c| *c > 0.0),
        })
    }

    fn describe(&self) -> String {
        let capacity = self.send_capacity.map_or("no sender capacity".into(), |c| {
            format!("capacity {}/s", thousands(c as u64))
        });
        format!(
            "{} ({} instances × batch {} × {} in flight, {capacity})",
            self.name, self.instances, self.batch, self.in_flight
        )
    }
}

pub async fn run(opts: &Opts) -> anyhow::Result<Vec<Row>> {
    let seconds = opts.number("seconds", 10, 2);
    let today = Deployment::from_template()?;
    let chosen = Deployment {
        name: "chosen",
        instances: opts.number("instances", today.instances as u64, today.instances as u64)
            as usize,
        batch: opts.number("batch", today.batch as u64, today.batch as u64) as usize,
        in_flight: opts.number("in-flight", today.in_flight as u64, today.in_flight as u64)
            as usize,
        window: today.window,
        wait_for_slot: opts.number("wait-for-slot", 1, 1) == 1,
        send_capacity: match opts.number("capacity", u64::MAX, u64::MAX) {
            u64::MAX => today.send_capacity,
            c => Some(c as f64).filter(|c| *c > 0.0),
        },
    };
    let custom = [
        "instances",
        "batch",
        "in-flight",
        "capacity",
        "wait-for-slot",
    ]
    .iter()
    .any(|k| opts.extra.iter().any(|(e, _)| e == k));
    let numbers = |full: &[usize], smoke: &[usize]| -> Vec<usize> {
        match opts.extra.iter().find(|(k, _)| k == "numbers") {
            Some((_, v)) => v.split(',').filter_map(|n| n.trim().parse().ok()).collect(),
            None if opts.smoke => smoke.to_vec(),
            None => full.to_vec(),
        }
    };
    // The template's defaults, then as many instances as 20 numbers need.
    let twenty = Deployment {
        name: "SenderMaxConcurrency=500 SenderCapacity=25000",
        instances: 500,
        send_capacity: Some(25_000.0),
        ..today
    };
    let cases: Vec<(Deployment, usize)> = if custom {
        numbers(&[1, 10, 20], &[2])
            .into_iter()
            .map(|n| (chosen, n))
            .collect()
    } else if opts.smoke {
        vec![(today, 1), (today, 2)]
    } else {
        let mut cases: Vec<_> = numbers(&[1, 10, 20], &[])
            .into_iter()
            .map(|n| (today, n))
            .collect();
        cases.push((twenty, 20));
        cases
    };
    let mut rows = vec![];
    for (d, n) in cases {
        let figures = tokio::task::spawn_blocking(move || -> anyhow::Result<Figures> {
            tokio::runtime::Builder::new_current_thread()
                .enable_all()
                .start_paused(true)
                .build()?
                .block_on(run_case(d, n, seconds))
        })
        .await??;
        let case = figures.rows(&d, n, seconds);
        eprint!("{}", crate::report::table(&case));
        rows.extend(case);
    }
    Ok(rows)
}

/// What one case measured.
struct Figures {
    /// Sends accepted within `seconds` of the number's first, per number.
    per_number: Vec<usize>,
    /// Milliseconds from the first tick to each number's first send.
    first_send_ms: Vec<i64>,
    /// Sends the campaigns planned (every contact).
    planned: usize,
    sent: usize,
    /// Milliseconds from each send's planned slot to the provider call.
    slot_lag_ms: Vec<i64>,
    /// Milliseconds from each record's planned slot to its receipt by a sender.
    queue_wait_ms: Vec<i64>,
    /// Milliseconds each invocation took.
    batch_ms: Vec<i64>,
    records_per_batch: f64,
    throttled: usize,
}

impl Figures {
    fn rows(&self, d: &Deployment, numbers: usize, seconds: u64) -> Vec<Row> {
        let case = format!("{numbers} number(s) at 1,000/s, {}", d.describe());
        let total: usize = self.per_number.iter().sum();
        let rate = total as f64 / seconds as f64;
        // What the numbers ask for, or what the launcher shares out when that is less.
        let target = (f64::from(RATE) * numbers as f64).min(d.send_capacity.unwrap_or(f64::MAX));
        let min = self.per_number.iter().min().copied().unwrap_or(0) as f64 / seconds as f64;
        let max = self.per_number.iter().max().copied().unwrap_or(0) as f64 / seconds as f64;
        let lag99 = percentile(&self.slot_lag_ms, 99.0);
        vec![
            Row::target(
                S,
                format!("{case}: sustained messages/s in total (per number least–most)"),
                format!(
                    "{} ({}–{})",
                    thousands(rate.round() as u64),
                    thousands(min.round() as u64),
                    thousands(max.round() as u64)
                ),
                format!("{}/s", thousands(target as u64)),
                rate >= target * 0.99,
            ),
            Row::target(
                S,
                format!("{case}: slot lag p50 / p99 (planned slot to provider call)"),
                format!(
                    "{} / {} ms",
                    percentile(&self.slot_lag_ms, 50.0),
                    lag99
                ),
                "p99 < 2,000 ms",
                lag99 < 2000 && !self.slot_lag_ms.is_empty(),
            ),
            Row::info(
                S,
                format!("{case}: first tick to each number's first send, least–most"),
                format!(
                    "{} – {} ms",
                    self.first_send_ms.iter().min().copied().unwrap_or(0),
                    self.first_send_ms.iter().max().copied().unwrap_or(0)
                ),
            ),
            Row::info(
                S,
                format!("{case}: queue wait p50 / p99 (slot to receipt); invocation p50 / p99; records per invocation"),
                format!(
                    "{} / {} ms; {} / {} ms; {:.1}",
                    percentile(&self.queue_wait_ms, 50.0),
                    percentile(&self.queue_wait_ms, 99.0),
                    percentile(&self.batch_ms, 50.0),
                    percentile(&self.batch_ms, 99.0),
                    self.records_per_batch
                ),
            ),
            Row::target(
                S,
                format!("{case}: sent of planned by the end; throttled (130429)"),
                format!(
                    "{} of {}; {}",
                    thousands(self.sent as u64),
                    thousands(self.planned as u64),
                    self.throttled
                ),
                "all; 0",
                self.sent == self.planned && self.throttled == 0,
            ),
        ]
    }
}

fn percentile(v: &[i64], p: f64) -> i64 {
    if v.is_empty() {
        return 0;
    }
    let mut s = v.to_vec();
    s.sort_unstable();
    let i = ((p / 100.0) * (s.len() - 1) as f64).round() as usize;
    s[i.min(s.len() - 1)]
}

async fn run_case(d: Deployment, numbers: usize, seconds: u64) -> anyhow::Result<Figures> {
    let clock = Arc::new(PausedClock::starting_at(
        Utc.with_ymd_and_hms(2026, 11, 23, 9, 0, 0).unwrap(),
    ));
    let senders: Vec<String> = (0..numbers).map(|i| format!("10654035{i:07}")).collect();
    let sim = Simulator::start(
        SimConfig {
            reply_percent: 0,
            latency: Some(Latency::CLOUD_API),
            number_rate_limits: senders.iter().map(|s| (s.clone(), RATE)).collect(),
            ..SimConfig::default()
        },
        clock.clone(),
    )
    .await?;
    let table = Arc::new(SlowTable::new(DYNAMODB));
    let queue = Arc::new(MemoryQueue::new(clock.clone()));
    let ports = Ports {
        table: table.clone(),
        queue: queue.clone(),
        scheduler: Arc::new(MemoryScheduler::default()),
        bus: Arc::new(MemoryBus::default()),
        provider: Arc::new(sim.direct_meta()),
        clock: clock.clone(),
    };
    let mut sys = System::new(ports.clone(), 60).with_plan_ahead(PLAN_AHEAD_SECONDS, START_LEAD_MS);
    let mut planner = (*sys.dispatcher).clone();
    planner.send_capacity = d.send_capacity;
    sys.dispatcher = Arc::new(planner);
    let sys = Arc::new(sys);
    let sender = Arc::new(SendService {
        concurrency: d.in_flight,
        wait_for_slot: d.wait_for_slot,
        ..(*sys.sender).clone()
    });

    // Set up at full speed; the table's answer time counts from the launch on.
    let api = Api::on(&sys);
    let per_number = RATE as usize * seconds as usize;
    let mut ids = vec![];
    for (i, s) in senders.iter().enumerate() {
        let account = api.account(s, RATE).await?;
        let phones = api.contacts(i * per_number, per_number).await?;
        ids.push(
            api.campaign(&account, &format!("Capacity {i}"), RATE, &phones)
                .await?,
        );
    }
    table.slow.store(true, Ordering::Relaxed);
    for id in &ids {
        api.launch(id).await?;
    }
    // From the first tick, which dispatches them all (the launches went through the API
    // one after another, at the table's pace).
    let t0 = clock.now();
    // The planned sends take `seconds`; the run goes on as long again for a slow
    // deployment to catch up (what it has not sent by then counts as not sent).
    let until = t0 + chrono::Duration::seconds(2 * seconds as i64 + 5);
    let log = Arc::new(Log::default());
    let launcher = {
        let sys = sys.clone();
        let clock = clock.clone();
        tokio::spawn(async move {
            while clock.now() < until {
                sys.tick_if_due().await?;
                tokio::time::sleep(Duration::from_secs(1)).await;
            }
            anyhow::Ok(())
        })
    };
    let pollers: Vec<_> = (0..d.instances)
        .map(|_| {
            tokio::spawn(poll(
                queue.clone(),
                sender.clone(),
                clock.clone(),
                d,
                until,
                log.clone(),
            ))
        })
        .collect();
    for p in pollers {
        p.await?;
    }
    launcher.await??;

    let dues = log.dues.lock().unwrap().clone();
    let sent = sim.sent();
    // Each number's sustained rate: its sends within `seconds` of its first (the tick
    // dispatches the accounts one after another, so numbers start apart).
    let mut first: BTreeMap<&str, Time> = BTreeMap::new();
    for r in &sent {
        let f = first.entry(r.phone_number_id.as_str()).or_insert(r.at);
        *f = (*f).min(r.at);
    }
    let mut by_number: BTreeMap<&str, usize> = senders.iter().map(|s| (s.as_str(), 0)).collect();
    let mut slot_lag_ms = Vec::with_capacity(sent.len());
    for r in &sent {
        let start = first[r.phone_number_id.as_str()];
        if r.at < start + chrono::Duration::seconds(seconds as i64) {
            *by_number.entry(r.phone_number_id.as_str()).or_default() += 1;
        }
        if let Some(due) = dues.get(&r.to) {
            slot_lag_ms.push((r.at - *due).num_milliseconds());
        }
    }
    let first_send_ms: Vec<i64> = first
        .values()
        .map(|f| (*f - t0).num_milliseconds())
        .collect();
    let batch_ms = log.batch_ms.lock().unwrap().clone();
    let queue_wait_ms = log.queue_wait_ms.lock().unwrap().clone();
    let records = log.records.load(Ordering::Relaxed);
    Ok(Figures {
        per_number: by_number.into_values().collect(),
        first_send_ms,
        planned: per_number * numbers,
        sent: sent.len(),
        slot_lag_ms,
        queue_wait_ms,
        records_per_batch: records as f64 / batch_ms.len().max(1) as f64,
        batch_ms,
        throttled: sim.throttled().len(),
    })
}

/// What the pollers saw.
#[derive(Default)]
struct Log {
    /// Each contact's planned slot (by the number's digits), from its first receipt.
    dues: Mutex<HashMap<String, Time>>,
    queue_wait_ms: Mutex<Vec<i64>>,
    batch_ms: Mutex<Vec<i64>>,
    records: AtomicU64,
}

/// One instance of the event source mapping and the sender behind it: gathers up to
/// `batch` records (ten per receive, as SQS gives them), waiting at most the batching
/// window once the first arrived; long polls while the queue is empty (a receive answers
/// as soon as a message becomes visible); invokes the sender and deletes what it did not
/// report as failed.
async fn poll(
    queue: Arc<MemoryQueue>,
    sender: Arc<SendService>,
    clock: Arc<PausedClock>,
    d: Deployment,
    until: Time,
    log: Arc<Log>,
) {
    let window = chrono::Duration::from_std(d.window).expect("window fits");
    while clock.now() < until {
        let mut got: Vec<Received> = vec![];
        let mut opened: Option<Time> = None;
        loop {
            let r = queue.receive_msgs((d.batch - got.len()).min(10) as u32);
            let now = clock.now();
            if !r.is_empty() {
                opened.get_or_insert(now);
                got.extend(r);
                if got.len() >= d.batch {
                    break;
                }
                continue;
            }
            let window_left = opened.map(|o| o + window - now);
            if window_left.is_some_and(|w| w <= chrono::Duration::zero()) || now >= until {
                break;
            }
            let next = queue
                .next_arrival_at()
                .map_or(chrono::Duration::seconds(1), |t| t - now);
            let wait = window_left.map_or(next, |w| w.min(next)).clamp(
                chrono::Duration::milliseconds(1),
                chrono::Duration::seconds(1),
            );
            tokio::time::sleep(wait.to_std().expect("positive")).await;
        }
        if got.is_empty() {
            continue;
        }
        let received_at = clock.now();
        {
            let mut dues = log.dues.lock().unwrap();
            let mut waits = log.queue_wait_ms.lock().unwrap();
            for r in &got {
                if let Ok(SendJob {
                    entry,
                    due: Some(due),
                }) = serde_json::from_str(&r.body)
                {
                    waits.push((received_at - due).num_milliseconds());
                    dues.entry(entry.phone.as_str().to_owned()).or_insert(due);
                }
            }
        }
        let resp = lambda::sender(&sender, sqs_event::event_from(&got)).await;
        for receipt in sqs_event::handled_receipts(&got, &resp) {
            queue.delete_receipt(&receipt);
        }
        log.batch_ms
            .lock()
            .unwrap()
            .push((clock.now() - received_at).num_milliseconds());
        log.records.fetch_add(got.len() as u64, Ordering::Relaxed);
    }
}

/// The engine's clock on tokio's (paused) clock: virtual time that moves only while every
/// task waits.
struct PausedClock {
    base: Time,
    start: tokio::time::Instant,
}

impl PausedClock {
    fn starting_at(base: Time) -> Self {
        PausedClock {
            base,
            start: tokio::time::Instant::now(),
        }
    }
}

impl Clock for PausedClock {
    fn now(&self) -> Time {
        self.base + chrono::Duration::from_std(self.start.elapsed()).expect("elapsed fits")
    }
}

/// The in-memory table, each operation answering after a draw of `latency` once `slow`
/// is set.
struct SlowTable {
    inner: MemoryTable,
    latency: Latency,
    slow: AtomicBool,
    draws: AtomicU64,
}

impl SlowTable {
    fn new(latency: Latency) -> Self {
        SlowTable {
            inner: MemoryTable::default(),
            latency,
            slow: AtomicBool::new(false),
            draws: AtomicU64::new(0),
        }
    }

    async fn wait(&self) {
        if self.slow.load(Ordering::Relaxed) {
            let n = self.draws.fetch_add(1, Ordering::Relaxed);
            tokio::time::sleep(self.latency.sample(n)).await;
        }
    }
}

#[async_trait]
impl Table for SlowTable {
    async fn get(&self, pk: &str, sk: &str) -> PortResult<Option<Item>> {
        self.wait().await;
        self.inner.get(pk, sk).await
    }
    async fn put(&self, item: Item, cond: Cond) -> PortResult<()> {
        self.wait().await;
        self.inner.put(item, cond).await
    }
    async fn delete(&self, pk: &str, sk: &str) -> PortResult<()> {
        self.wait().await;
        self.inner.delete(pk, sk).await
    }
    async fn query(&self, q: &Query) -> PortResult<Page> {
        self.wait().await;
        self.inner.query(q).await
    }
    async fn add(&self, pk: &str, sk: &str, deltas: &[(String, i64)]) -> PortResult<Item> {
        self.wait().await;
        self.inner.add(pk, sk, deltas).await
    }
}
