//! Scale: attach, launch, send and sweep a 1,000,000-contact campaign; the peak resident
//! size of each function's work (every Lambda has 128 MB) and its wall time.
//!
//! The table holding a million contacts and their campaign is gigabytes, so it cannot live
//! in the process whose memory is measured. This process plays AWS: it holds the table and
//! the send queue ([`store`]) behind a loopback server ([`wire`]: JSON frames over kept-open
//! TCP connections; `--transport http` serves the same calls with axum and reqwest, at
//! about 1.6 times the CPU per call), the WhatsApp simulator and the clock. Each
//! function's work runs in a child process
//! (`bench scale-worker <role>`, [`worker`]) built like the function's `main.rs`, with
//! `RemoteTable` / `RemoteQueue` in place of DynamoDB and SQS, and reports its own peak
//! resident size (VmHWM) and wall time:
//!
//! - **api**: `POST /campaigns/{id}/lists` attaching the list of every contact, then
//!   `POST /campaigns/{id}/launch`, through the operator API's router;
//! - **launcher**: one warm process, a `{"action":"tick"}` per simulated minute;
//! - **sender**: warm processes (`--senders`, default 2) taking batches of ten off the
//!   queue as the event source mapping does, one batch per invocation;
//! - **sweeper**: one warm process, a sweep per simulated minute once the response
//!   timeout passed, until the campaign completes.
//!
//! The contacts and the list are written by this process with the importer's calls
//! (`upsert_one`, `add_list_member`), unmeasured. The campaign and account run at 1,000
//! messages/s (the most both accept, Meta's ceiling per number), with no messaging tier.
//! The clock moves tick by tick; within a tick the queue moves it to each second's
//! messages as the senders ask for more, so ~17 simulated minutes of sends run as fast as
//! the machine allows. Statuses and replies are not part of this scenario: the simulator
//! posts no webhooks, so every contact ends PENDING and the sweeper closes it as no
//! response.
//!
//! `--contacts N` (default 1,000,000; smoke 5,000), `--senders N` (default 2),
//! `--transport tcp|http` (default tcp).

mod store;
mod wire;
mod worker;

use crate::report::{mb, thousands, Row};
use crate::Opts;
use chrono::{DateTime, Duration, TimeZone, Utc};
use futures::StreamExt;
use serde_json::{json, Value};
use shared::app::{Operator, OperatorPorts};
use shared::domain::contact::NewContact;
use shared::domain::stats::Stats;
use shared::ports::{Clock, Table};
use shared::repo;
use std::io::{BufRead, BufReader, Write};
use std::process::{ChildStdin, ChildStdout, Stdio};
use std::sync::Arc;
use std::time::Instant;
use store::{SimQueue, StoreTable};
use testkit::memory::{ManualClock, MemoryScheduler};
use testkit::simulator::{SimConfig, Simulator};
use worker::{Command, Done, Exit, What};

const SCENARIO: &str = "scale";
/// The tenant every call acts for.
pub(crate) const TENANT: &str = "bench";
/// Messages per second: the most a campaign and an account accept (Meta's ceiling).
const RATE: u32 = 1000;
/// The response timeout of the campaign, in days (the shortest it accepts).
const TIMEOUT_DAYS: i64 = 1;
const TARGET_KB: u64 = 128 * 1024;
const TARGET: &str = "< 128 MB";

/// `bench scale-worker <role> …`: one function's process.
pub fn worker(args: Vec<String>) -> anyhow::Result<()> {
    worker::main(args)
}

/// A function's process, driven a line at a time.
struct Proc {
    role: &'static str,
    child: std::process::Child,
    stdin: Option<ChildStdin>,
    stdout: Option<BufReader<ChildStdout>>,
}

impl Proc {
    fn spawn(
        role: &'static str,
        store: &str,
        sim: &str,
        now: DateTime<Utc>,
    ) -> anyhow::Result<Proc> {
        let mut child = std::process::Command::new(std::env::current_exe()?)
            .args(["scale-worker", role, "--store", store, "--sim", sim])
            .args(["--now-ms", &now.timestamp_millis().to_string()])
            .stdin(Stdio::piped())
            .stdout(Stdio::piped())
            .stderr(Stdio::inherit())
            .spawn()?;
        Ok(Proc {
            role,
            stdin: child.stdin.take(),
            stdout: child.stdout.take().map(BufReader::new),
            child,
        })
    }

    /// Writes `line` (none: closes stdin) and reads the answer line, off the runtime so
    /// the store keeps serving meanwhile.
    async fn exchange(&mut self, line: Option<String>) -> anyhow::Result<String> {
        let mut input = self.stdin.take();
        let mut output = self.stdout.take().expect("one exchange at a time");
        let (input, output, got) = tokio::task::spawn_blocking(move || {
            let res = (|| {
                match (&line, &mut input) {
                    (Some(l), Some(i)) => {
                        writeln!(i, "{l}")?;
                        i.flush()?;
                    }
                    _ => input = None,
                }
                let mut s = String::new();
                output.read_line(&mut s)?;
                Ok::<_, std::io::Error>(s)
            })();
            (input, output, res)
        })
        .await?;
        self.stdin = input;
        self.stdout = Some(output);
        let s = got?;
        anyhow::ensure!(!s.is_empty(), "the {} process exited early", self.role);
        Ok(s)
    }

    async fn run(&mut self, now: DateTime<Utc>, what: What) -> anyhow::Result<Done> {
        let line = serde_json::to_string(&Command {
            now_ms: now.timestamp_millis(),
            what,
        })?;
        let done: Done = serde_json::from_str(&self.exchange(Some(line)).await?)?;
        anyhow::ensure!(
            done.ok,
            "{} failed: {}",
            self.role,
            done.error.unwrap_or_default()
        );
        Ok(done)
    }

    async fn finish(mut self) -> anyhow::Result<Exit> {
        let exit: Exit = serde_json::from_str(&self.exchange(None).await?)?;
        tokio::task::spawn_blocking(move || self.child.wait()).await??;
        Ok(exit)
    }
}

/// What the processes of one role did.
#[derive(Debug, Default, Clone)]
struct RoleFigures {
    processes: usize,
    invocations: u64,
    busy_ms: f64,
    cpu_ms: f64,
    longest_ms: f64,
    peak_kb: u64,
    ready_kb: u64,
}

impl RoleFigures {
    fn done(&mut self, d: &Done) {
        self.longest_ms = self.longest_ms.max(d.longest_ms);
    }
    fn exit(&mut self, e: &Exit) {
        self.processes += 1;
        self.invocations += e.invocations;
        self.busy_ms += e.busy_ms;
        self.cpu_ms += e.cpu_ms;
        self.peak_kb = self.peak_kb.max(e.vmhwm_kb);
        self.ready_kb = self.ready_kb.max(e.ready_rss_kb);
    }
}

/// The parent's side: table, queue, clock, simulator, and the store's address.
struct World {
    table: Arc<StoreTable>,
    queue: Arc<SimQueue>,
    clock: Arc<ManualClock>,
    sim: Simulator,
    store_url: String,
    served: wire::Served,
}

impl World {
    async fn start(t0: DateTime<Utc>, transport: &str) -> anyhow::Result<World> {
        let clock = Arc::new(ManualClock::frozen(t0));
        let table = Arc::new(StoreTable::new());
        let queue = Arc::new(SimQueue::new(clock.clone()));
        let served = wire::serve(Arc::new(wire::Host {
            table: table.clone(),
            queue: queue.clone(),
            clock: clock.clone(),
        }))
        .await?;
        let sim = Simulator::start(
            SimConfig {
                // Statuses and replies are not part of this scenario.
                webhook_url: None,
                reply_percent: 0,
                // The account's own pacing (1,000/s) is what limits the sends.
                rate_limit_per_sec: None,
                ..SimConfig::default()
            },
            clock.clone(),
        )
        .await?;
        Ok(World {
            table,
            queue,
            clock,
            sim,
            store_url: match transport {
                "http" => served.http.clone(),
                _ => served.tcp.clone(),
            },
            served,
        })
    }

    fn now(&self) -> DateTime<Utc> {
        self.clock.now()
    }

    fn move_to(&self, at: DateTime<Utc>) {
        let d = at - self.now();
        if d > Duration::zero() {
            self.clock.advance(d);
        }
    }

    fn spawn(&self, role: &'static str) -> anyhow::Result<Proc> {
        Proc::spawn(role, &self.store_url, &self.sim.base_url(), self.now())
    }
}

/// The operator API in this process (setup, unmeasured).
async fn call(api: &axum::Router, method: &str, path: &str, body: Value) -> anyhow::Result<Value> {
    use tower::ServiceExt;
    let req = http::Request::builder()
        .method(method)
        .uri(path)
        .header("content-type", "application/json")
        .header("x-tenant-id", TENANT)
        .body(axum::body::Body::from(body.to_string()))?;
    let resp = api.clone().oneshot(req).await?;
    let status = resp.status();
    let bytes = axum::body::to_bytes(resp.into_body(), usize::MAX).await?;
    let v: Value = serde_json::from_slice(&bytes).unwrap_or(Value::Null);
    anyhow::ensure!(status.is_success(), "{method} {path}: {status} {v}");
    Ok(v)
}

fn id_of(v: &Value) -> anyhow::Result<String> {
    v["id"]
        .as_str()
        .map(str::to_owned)
        .ok_or_else(|| anyhow::anyhow!("no id in {v}"))
}

fn phone(i: u64) -> String {
    format!("+9198{i:08}")
}

/// Account, template, list and campaign through the API; `n` contacts in the list with
/// the importer's calls. Returns (campaign id, list id).
async fn seed(w: &World, n: u64) -> anyhow::Result<(String, String)> {
    let table: Arc<dyn Table> = w.table.clone();
    let admin = Operator::new(OperatorPorts {
        table: table.clone(),
        scheduler: Arc::new(MemoryScheduler::default()),
        bus: Arc::new(worker::NullBus),
        clock: w.clock.clone(),
    });
    let api = shared::http::operator::router(admin)
        .layer(axum::middleware::from_fn(shared::http::tenant_from_header));
    let account = call(
        &api,
        "POST",
        "/accounts",
        json!({
            "name": "Main number", "sender_id": "106540352242922",
            "token_ref": worker::TOKEN_REF, "rate_limit": RATE, "waba_id": "100000000000001"
        }),
    )
    .await?;
    let account_id = id_of(&account)?;
    call(
        &api,
        "POST",
        "/templates",
        json!({
            "account_id": account_id, "name": "spring_offer", "language": "en",
            "category": "MARKETING", "body": "Hi {{1}}, spring is here"
        }),
    )
    .await?;
    let list_id = id_of(&call(&api, "POST", "/lists", json!({"name": "Everyone"})).await?)?;
    let campaign = call(
        &api,
        "POST",
        "/campaigns",
        json!({
            "name": "A million", "account_id": account_id,
            "template": {"name": "spring_offer", "language": "en"},
            "variables": [{"source": "contact_name"}],
            "rate": RATE, "response_timeout_days": TIMEOUT_DAYS
        }),
    )
    .await?;
    let campaign_id = id_of(&campaign)?;
    let now = w.now();
    let t = &*table;
    let list = list_id.as_str();
    let mut done = 0u64;
    let mut stream = std::pin::pin!(futures::stream::iter(0..n)
        .map(|i| async move {
            let input = NewContact {
                phone: Some(phone(i)),
                name: Some(format!("Customer {i}")),
                ..NewContact::default()
            };
            let u = shared::app::audience::upsert_one(t, TENANT, input, now).await?;
            repo::add_list_member(t, TENANT, list, &u.contact.phone).await?;
            Ok::<_, anyhow::Error>(())
        })
        .buffer_unordered(4));
    while let Some(r) = stream.next().await {
        r?;
        done += 1;
        if done.is_multiple_of(200_000) {
            eprintln!("   seeded {} contacts", thousands(done));
        }
    }
    Ok((campaign_id, list.to_owned()))
}

async fn stats(w: &World, campaign: &str) -> anyhow::Result<Stats> {
    Ok(Stats::from_counters(
        &repo::get_counters(&*w.table, TENANT, campaign).await?,
    ))
}

async fn status(w: &World, campaign: &str) -> anyhow::Result<String> {
    let c = repo::get_campaign(&*w.table, TENANT, campaign)
        .await?
        .ok_or_else(|| anyhow::anyhow!("campaign {campaign} is gone"))?;
    Ok(serde_json::to_value(c.status)?
        .as_str()
        .unwrap_or_default()
        .to_owned())
}

fn secs(ms: f64) -> String {
    if ms < 1000.0 {
        format!("{ms:.0} ms")
    } else {
        format!("{:.1} s", ms / 1000.0)
    }
}

fn peak_row(role: &str, f: &RoleFigures) -> Row {
    Row::target(
        SCENARIO,
        format!("{role}: peak RSS"),
        format!(
            "{:.1} MB ({:.1} MB before its first invocation)",
            mb(f.peak_kb),
            mb(f.ready_kb)
        ),
        TARGET,
        f.peak_kb < TARGET_KB,
    )
}

pub async fn run(opts: &Opts) -> anyhow::Result<Vec<Row>> {
    let started = Instant::now();
    let n = opts.number("contacts", 1_000_000, 5_000);
    let senders = opts.number("senders", 2, 2).max(1) as usize;
    // A Monday morning, so nothing about calling hours or dates interferes.
    let t0 = Utc.with_ymd_and_hms(2026, 11, 23, 9, 0, 0).unwrap();
    let transport = opts
        .extra
        .iter()
        .find(|(k, _)| k == "transport")
        .map_or("tcp", |(_, v)| v.as_str());
    let w = World::start(t0, transport).await?;
    let mut rows = vec![Row::info(SCENARIO, "contacts", thousands(n))];

    // ---- seeding (the parent; not measured) ----
    let t = Instant::now();
    let (campaign, list) = seed(&w, n).await?;
    let seeded_s = t.elapsed().as_secs_f64();
    eprintln!(
        "   seeded {} contacts in {seeded_s:.1} s ({} items)",
        thousands(n),
        thousands(w.table.len() as u64)
    );

    // ---- api: attach and launch ----
    let mut api = w.spawn("api")?;
    let attach = api
        .run(
            w.now(),
            What::Request {
                method: "POST".into(),
                path: format!("/campaigns/{campaign}/lists"),
                body: Some(json!({ "list_id": list })),
            },
        )
        .await?;
    // What the request cannot finish within its budget (10 s) the sweeper carries on.
    let in_request = attach.result["body"]["added"]
        .as_u64()
        .or_else(|| attach.result["body"]["progress"]["changed"].as_u64());
    anyhow::ensure!(
        matches!(attach.result["status"].as_u64(), Some(200 | 202)),
        "attach answered {}",
        attach.result
    );
    let attach_kb = attach.vmhwm_kb;
    eprintln!(
        "   api answered the attach ({}) in {}, {} contacts attached in the request; peak {:.1} MB",
        attach.result["status"],
        secs(attach.elapsed_ms),
        thousands(in_request.unwrap_or(0)),
        mb(attach_kb)
    );
    let mut attach_sweeper_f = RoleFigures::default();
    let background = Instant::now();
    let mut attach_sweeps = 0u64;
    if attach.result["status"] == 202 {
        let mut sweeper = w.spawn("sweeper")?;
        loop {
            let d = sweeper.run(w.now(), What::Sweep).await?;
            attach_sweeper_f.done(&d);
            attach_sweeps += 1;
            let op = repo::commands::get_operation(&*w.table, TENANT, &campaign)
                .await?
                .ok_or_else(|| anyhow::anyhow!("the attach operation is gone"))?;
            eprintln!(
                "   sweep {attach_sweeps}: attached {}, {}",
                thousands(d.result["attached"].as_u64().unwrap_or(0)),
                secs(d.elapsed_ms)
            );
            if !op.is_running() {
                break;
            }
            anyhow::ensure!(attach_sweeps < 1000, "the background attach never finished");
        }
        attach_sweeper_f.exit(&sweeper.finish().await?);
    }
    let background_s = background.elapsed().as_secs_f64();
    let target = stats(&w, &campaign).await?.target;
    anyhow::ensure!(target == n as i64, "{target} of {n} contacts attached");
    let launch = api
        .run(
            w.now(),
            What::Request {
                method: "POST".into(),
                path: format!("/campaigns/{campaign}/launch"),
                body: None,
            },
        )
        .await?;
    anyhow::ensure!(
        launch.result["body"]["status"] == "RUNNING",
        "launch answered {}",
        launch.result
    );
    let mut api_f = RoleFigures::default();
    api_f.done(&attach);
    api_f.done(&launch);
    api_f.exit(&api.finish().await?);

    // ---- launcher ticks and senders, minute by minute ----
    let mut launcher = w.spawn("launcher")?;
    let mut sender_procs = (0..senders)
        .map(|_| w.spawn("sender"))
        .collect::<anyhow::Result<Vec<_>>>()?;
    let (mut launcher_f, mut sender_f) = (RoleFigures::default(), RoleFigures::default());
    let max_ticks = n.div_ceil(u64::from(RATE) * 60) + 10;
    let sending = Instant::now();
    let mut tick = 0u64;
    let mut enqueued_total = 0u64;
    loop {
        let now = t0 + Duration::seconds(60 * tick as i64);
        w.move_to(now);
        let d = launcher
            .run(
                now,
                What::Invoke {
                    event: json!({"action": "tick"}),
                },
            )
            .await?;
        launcher_f.done(&d);
        let enqueued = d.result["enqueued"].as_u64().unwrap_or(0);
        enqueued_total += enqueued;
        w.queue.set_horizon(Some(
            now + Duration::seconds(60) - Duration::milliseconds(1),
        ));
        let drains =
            futures::future::join_all(sender_procs.iter_mut().map(|p| p.run(now, What::Drain)))
                .await;
        w.queue.set_horizon(None);
        for d in drains {
            sender_f.done(&d?);
        }
        tick += 1;
        let s = stats(&w, &campaign).await?;
        let fresh = repo::get_counters(&*w.table, TENANT, &campaign)
            .await?
            .get("FRESH")
            .copied()
            .unwrap_or(0);
        eprintln!(
            "   tick {tick}: enqueued {}, sent {} of {}, {:.0} s",
            thousands(enqueued),
            thousands(s.sent.max(0) as u64),
            thousands(n),
            sending.elapsed().as_secs_f64()
        );
        if enqueued == 0 && fresh == 0 && w.queue.depth() == 0 {
            break;
        }
        anyhow::ensure!(tick < max_ticks, "still sending after {tick} ticks");
    }
    let sending_s = sending.elapsed().as_secs_f64();
    launcher_f.exit(&launcher.finish().await?);
    for p in sender_procs {
        sender_f.exit(&p.finish().await?);
    }

    // ---- sweeper, once the response timeout passed ----
    let sent = stats(&w, &campaign).await?;
    let mut at = w.now() + Duration::days(TIMEOUT_DAYS) + Duration::minutes(1);
    let mut sweeper = w.spawn("sweeper")?;
    let mut sweeper_f = RoleFigures::default();
    let sweeping = Instant::now();
    let (mut idle, mut sweeps) = (0, 0);
    loop {
        w.move_to(at);
        let d = sweeper.run(at, What::Sweep).await?;
        sweeper_f.done(&d);
        sweeps += 1;
        eprintln!(
            "   sweep {sweeps}: expired {}, completed {}, {}",
            thousands(d.result["expired"].as_u64().unwrap_or(0)),
            d.result["completed"],
            secs(d.elapsed_ms)
        );
        if status(&w, &campaign).await? == "COMPLETED" {
            break;
        }
        idle = if d.result["expired"] == 0 {
            idle + 1
        } else {
            0
        };
        anyhow::ensure!(idle < 3, "the sweeper stopped making progress");
        at += Duration::minutes(1);
    }
    let sweeping_s = sweeping.elapsed().as_secs_f64();
    sweeper_f.exit(&sweeper.finish().await?);

    // ---- what happened ----
    let end = stats(&w, &campaign).await?;
    let final_status = status(&w, &campaign).await?;
    let sim_sent: usize = w.sim.sent_per_second().values().sum();
    let total_s = started.elapsed().as_secs_f64();
    drop(w.served);

    rows.push(Row::info(
        SCENARIO,
        "seeding (this process, unmeasured)",
        format!(
            "{seeded_s:.1} s; table {} items, {:.0} MB of item text",
            thousands(w.table.len() as u64),
            w.table.payload_bytes() as f64 / 1e6
        ),
    ));
    rows.push(peak_row("api (attach + launch)", &api_f));
    // The api function answers API Gateway, which gives up after 29 s (its timeout in
    // infra/template.yaml too): the attach request walks 10 s and leaves the rest to the
    // sweeper.
    rows.push(Row::target(
        SCENARIO,
        "api: attach request wall time",
        format!(
            "{} (answer {}), {} of {} contacts attached in the request (peak {:.1} MB)",
            secs(attach.elapsed_ms),
            attach.result["status"],
            thousands(in_request.unwrap_or(0)),
            thousands(n),
            mb(attach_kb)
        ),
        "< 29 s (API timeout)",
        attach.elapsed_ms < 29_000.0,
    ));
    if attach_sweeps > 0 {
        rows.push(peak_row("sweeper (background attach)", &attach_sweeper_f));
        rows.push(Row::info(
            SCENARIO,
            "sweeper: background attach",
            format!(
                "{background_s:.1} s over {attach_sweeps} sweeps (longest {}), {:.0} contacts/s",
                secs(attach_sweeper_f.longest_ms),
                (n - in_request.unwrap_or(0)) as f64 / background_s.max(1e-9)
            ),
        ));
    }
    rows.push(Row::info(
        SCENARIO,
        "api: launch wall time",
        secs(launch.elapsed_ms),
    ));
    rows.push(peak_row("launcher", &launcher_f));
    rows.push(Row::info(
        SCENARIO,
        "launcher: ticks, wall time",
        format!(
            "{} ticks (one a simulated minute at {RATE} msg/s), {} enqueued, {} in all, longest tick {}",
            launcher_f.invocations,
            thousands(enqueued_total),
            secs(launcher_f.busy_ms),
            secs(launcher_f.longest_ms)
        ),
    ));
    rows.push(peak_row("sender", &sender_f));
    rows.push(Row::info(
        SCENARIO,
        "sender: invocations, wall time",
        format!(
            "{} batches of <= {} in {} warm processes; ticks and sends {sending_s:.1} s ({:.0} msg/s), longest batch {}",
            thousands(sender_f.invocations),
            worker::BATCH_SIZE,
            sender_f.processes,
            sent.sent as f64 / sending_s.max(1e-9),
            secs(sender_f.longest_ms)
        ),
    ));
    rows.push(peak_row("sweeper", &sweeper_f));
    rows.push(Row::info(
        SCENARIO,
        "sweeper: invocations, wall time",
        format!(
            "{} sweep(s), one a simulated minute ({} s budget each for timeouts), {:.1} s, longest {}",
            sweeper_f.invocations,
            shared::app::sweep::EXPIRY_BUDGET.as_secs(),
            sweeping_s,
            secs(sweeper_f.longest_ms)
        ),
    ));
    let ok = final_status == "COMPLETED"
        && end.sent == n as i64
        && sim_sent as u64 == n
        && end.no_response == n as i64
        && end.failed == 0;
    rows.push(Row::target(
        SCENARIO,
        "outcome",
        format!(
            "{final_status}; sent {}, simulator received {}, no response {}, failed {}",
            thousands(end.sent.max(0) as u64),
            thousands(sim_sent as u64),
            thousands(end.no_response.max(0) as u64),
            end.failed
        ),
        "every contact sent once, closed as no response",
        ok,
    ));
    rows.push(Row::info(
        SCENARIO,
        "total wall time",
        format!(
            "{total_s:.1} s; busy (CPU) api {} ({}), launcher {} ({}), senders {} ({}), sweeper {} ({}); this process's CPU {:.1} s",
            secs(api_f.busy_ms),
            secs(api_f.cpu_ms),
            secs(launcher_f.busy_ms),
            secs(launcher_f.cpu_ms),
            secs(sender_f.busy_ms),
            secs(sender_f.cpu_ms),
            secs(sweeper_f.busy_ms),
            secs(sweeper_f.cpu_ms),
            worker::cpu_ms() / 1000.0
        ),
    ));
    rows.push(Row::info(
        SCENARIO,
        "this process (table, queue, simulator)",
        format!(
            "peak RSS {:.0} MB: why the functions run in their own processes",
            mb(crate::report::status_kb("VmHWM:"))
        ),
    ));
    rows.push(Row::info(
        SCENARIO,
        "store calls",
        format!(
            "{} reads, {} writes; queue {} sent, {} received",
            thousands(w.table.reads.load(std::sync::atomic::Ordering::Relaxed)),
            thousands(w.table.writes.load(std::sync::atomic::Ordering::Relaxed)),
            thousands(w.queue.sent()),
            thousands(w.queue.received.load(std::sync::atomic::Ordering::Relaxed)),
        ),
    ));
    Ok(rows)
}

#[cfg(test)]
mod tests {
    use super::store::{SimQueue, StoreTable};
    use super::wire::{self, Remote, RemoteClock, RemoteQueue, RemoteTable};
    use chrono::{Duration, TimeZone, Utc};
    use serde_json::json;
    use shared::ports::{
        Clock, Cond, Index, Item, OutMessage, PortError, Query, Queue, SkCond, Table,
    };
    use std::sync::Arc;
    use testkit::memory::ManualClock;

    fn item(v: serde_json::Value) -> Item {
        v.as_object().unwrap().clone()
    }

    #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
    async fn remote_table_and_queue_round_trip_over_http_and_tcp() {
        round_trip(|s| s.http.clone()).await;
        round_trip(|s| s.tcp.clone()).await;
    }

    async fn round_trip(pick: impl Fn(&wire::Served) -> String) {
        let t0 = Utc.with_ymd_and_hms(2026, 11, 23, 9, 0, 0).unwrap();
        let clock = Arc::new(ManualClock::frozen(t0));
        let host = Arc::new(wire::Host {
            table: Arc::new(StoreTable::new()),
            queue: Arc::new(SimQueue::new(clock.clone())),
            clock: clock.clone(),
        });
        let served = wire::serve(host.clone()).await.unwrap();
        let heard = Arc::new(RemoteClock::new(t0 - Duration::hours(1)));
        let remote = Remote::new(&pick(&served), heard.clone()).unwrap();
        let t = RemoteTable(remote.clone());
        let q = RemoteQueue(remote);

        // Conditional puts: a free key, then the same key again, then on a version.
        let a = item(json!({"PK": "P", "SK": "A", "version": 1, "GSI1PK": "I", "GSI1SK": "3"}));
        t.put(a.clone(), Cond::NotExists).await.unwrap();
        assert_eq!(
            t.put(a.clone(), Cond::NotExists).await,
            Err(PortError::ConditionFailed)
        );
        assert_eq!(
            t.put(a.clone(), Cond::Eq("version".into(), json!(2))).await,
            Err(PortError::ConditionFailed)
        );
        t.put(a.clone(), Cond::Eq("version".into(), json!(1)))
            .await
            .unwrap();
        assert_eq!(t.get("P", "A").await.unwrap(), Some(a));
        assert_eq!(t.get("P", "nope").await.unwrap(), None);
        assert!(matches!(
            t.put(item(json!({"SK": "x"})), Cond::None).await,
            Err(PortError::Backend(_))
        ));
        // The answer carried the parent's clock.
        assert_eq!(heard.now(), t0);

        // An index query a page at a time, following the cursor.
        for (sk, isk) in [("B", "1"), ("C", "5"), ("D", "2"), ("E", "4")] {
            t.put(
                item(json!({"PK": "P", "SK": sk, "GSI1PK": "I", "GSI1SK": isk})),
                Cond::None,
            )
            .await
            .unwrap();
        }
        let mut query = Query::new(Index::Gsi1, "I", SkCond::Lte("4".into())).limit(2);
        let first = t.query(&query).await.unwrap();
        let sks = |p: &shared::ports::Page| -> Vec<String> {
            p.items
                .iter()
                .map(|i| i["SK"].as_str().unwrap().to_owned())
                .collect()
        };
        assert_eq!(sks(&first), ["B", "D"]);
        assert!(first.cursor.is_some());
        query.cursor = first.cursor;
        let second = t.query(&query).await.unwrap();
        assert_eq!(sks(&second), ["A", "E"]);
        assert_eq!(second.cursor, None);
        let primary = t
            .query(&Query::new(Index::Primary, "P", SkCond::Gt("C".into())))
            .await
            .unwrap();
        assert_eq!(sks(&primary), ["D", "E"]);

        // Atomic adds create the item and return it after the change.
        let deltas = [("sent".to_owned(), 3i64), ("failed".to_owned(), -1)];
        t.add("S", "STATS#0", &deltas).await.unwrap();
        let after = t.add("S", "STATS#0", &deltas[..1]).await.unwrap();
        assert_eq!(
            after,
            item(json!({"PK": "S", "SK": "STATS#0", "sent": 6, "failed": -1}))
        );
        t.delete_many(&[("P".into(), "B".into()), ("P".into(), "C".into())])
            .await
            .unwrap();
        t.delete("P", "D").await.unwrap();
        assert_eq!(host.table.len(), 3);

        // The queue: sends in tens, delays on the parent's clock, deletes by receipt.
        let msgs: Vec<OutMessage> = (0..25)
            .map(|i| OutMessage {
                body: format!("m{i}"),
                delay_secs: if i < 20 { 0 } else { 30 },
            })
            .collect();
        q.send(msgs).await.unwrap();
        let got = q.receive(10).await.unwrap();
        assert_eq!(got.len(), 10);
        assert_eq!(got[0].body, "m0");
        let rest = q.receive(20).await.unwrap();
        assert_eq!(rest.len(), 10, "at most ten at a time");
        assert!(
            q.receive(10).await.unwrap().is_empty(),
            "the rest are delayed"
        );
        let receipts: Vec<String> = got.iter().chain(&rest).map(|r| r.receipt.clone()).collect();
        q.delete_batch(&receipts).await.unwrap();
        host.queue.set_horizon(Some(t0 + Duration::seconds(59)));
        let late = q.receive(10).await.unwrap();
        assert_eq!(late.len(), 5);
        assert_eq!(
            heard.now(),
            t0 + Duration::seconds(30),
            "the clock moved to them"
        );
        q.delete(&late[0].receipt).await.unwrap();
        assert_eq!(host.queue.depth(), 4);
        assert!(q
            .send(vec![OutMessage {
                body: "x".into(),
                delay_secs: 901
            }])
            .await
            .is_err());
        drop(served);
    }
}
