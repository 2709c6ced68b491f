//! One function's process: `bench scale-worker <role> --store URL [--sim URL] --now-ms T`.
//!
//! It builds the function's service as its `main.rs` does, with the parent's table and
//! queue behind [`RemoteTable`] / [`RemoteQueue`] and the parent's clock, then reads one
//! [`Command`] per line on stdin, runs it and answers one [`Done`] line on stdout. At the
//! end of stdin it prints [`Exit`] (peak RSS, wall time) and exits. One process is one
//! warm Lambda instance: commands are its invocations, one at a time.

use super::wire::{Remote, RemoteClock, RemoteQueue, RemoteTable};
use crate::report::status_kb;
use async_trait::async_trait;
use serde::{Deserialize, Serialize};
use serde_json::{json, Value};
use shared::app::dispatch::Dispatcher;
use shared::app::send::SendService;
use shared::app::sweep::SweepService;
use shared::app::{Operator, OperatorPorts};
use shared::domain::events::DomainEvent;
use shared::lambda;
use shared::lambda::sqs_event;
use shared::ports::{EventBus, PortResult, Queue, Table};
use shared::providers::aws_sms::AwsSmsProvider;
use shared::providers::aws_social::AwsSocialProvider;
use shared::providers::connect::ConnectProvider;
use shared::providers::kaleyra::KaleyraProvider;
use shared::providers::meta::MetaProvider;
use shared::providers::twilio::TwilioProvider;
use shared::providers::ByAccountProvider;
use std::io::{BufRead, Write};
use std::sync::Arc;
use std::time::Instant;
use testkit::memory::{MemoryScheduler, MemorySecrets};

/// The token reference the benchmark's account names, and its value (the simulator's).
pub const TOKEN_REF: &str = "env:SIM_TOKEN";
pub const TOKEN: &str = "test-token";
/// The launcher's tick (`TICK_SECONDS` in Lambda).
pub const TICK_SECONDS: u32 = 60;
/// Records per sender invocation: the event source mapping's `BatchSize`.
pub const BATCH_SIZE: u32 = 10;
/// Records of one batch in flight at once (the sender's `concurrency` in its main.rs).
pub const SENDER_CONCURRENCY: usize = 10;

/// Domain events leave the function (EventBridge in AWS); nothing keeps them here.
pub struct NullBus;

#[async_trait]
impl EventBus for NullBus {
    async fn publish(&self, _: &[DomainEvent]) -> PortResult<()> {
        Ok(())
    }
}

/// One invocation, with the parent's clock at the time.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct Command {
    pub now_ms: i64,
    pub what: What,
}

#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(tag = "op", rename_all = "snake_case")]
pub enum What {
    /// api: one HTTP request through the operator API's router.
    Request {
        method: String,
        path: String,
        body: Option<Value>,
    },
    /// launcher: one event (`{"action":"tick"}`).
    Invoke { event: Value },
    /// sender: take batches off the queue and hand each to the sender, as the event source
    /// mapping does, until nothing is visible.
    Drain,
    /// sweeper: one run.
    Sweep,
}

#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct Done {
    pub ok: bool,
    pub error: Option<String>,
    pub result: Value,
    /// Function invocations this command was (sender: one per batch).
    pub invocations: u64,
    pub elapsed_ms: f64,
    /// The longest of those invocations.
    pub longest_ms: f64,
    /// Peak resident size of the process so far.
    pub vmhwm_kb: u64,
}

#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct Exit {
    pub exit: bool,
    pub vmhwm_kb: u64,
    /// Resident size once the service was built, before the first invocation.
    pub ready_rss_kb: u64,
    pub wall_ms: f64,
    pub busy_ms: f64,
    /// CPU time the process used (user + system).
    pub cpu_ms: f64,
    pub invocations: u64,
}

/// CPU time (user + system) this process used so far, from /proc/self/stat.
pub fn cpu_ms() -> f64 {
    let Ok(stat) = std::fs::read_to_string("/proc/self/stat") else {
        return 0.0;
    };
    // Fields after the command name (which may hold spaces) start at the state (3rd).
    let rest = stat.rsplit_once(')').map_or("", |(_, r)| r);
    let f: Vec<f64> = rest
        .split_whitespace()
        .skip(11)
        .take(2)
        .filter_map(|x| x.parse().ok())
        .collect();
    // Clock ticks: 100 per second on Linux.
    f.iter().sum::<f64>() * 10.0
}

enum Service {
    Api(axum::Router),
    Launcher(Dispatcher),
    Sender(SendService, Arc<RemoteQueue>),
    Sweeper(SweepService),
}

fn arg(args: &[String], key: &str) -> Option<String> {
    args.iter()
        .position(|a| a == key)
        .and_then(|i| args.get(i + 1))
        .cloned()
}

fn build(role: &str, args: &[String]) -> anyhow::Result<(Service, Arc<RemoteClock>)> {
    let store = arg(args, "--store").ok_or_else(|| anyhow::anyhow!("--store URL is required"))?;
    let now_ms: i64 = arg(args, "--now-ms")
        .ok_or_else(|| anyhow::anyhow!("--now-ms is required"))?
        .parse()?;
    let clock = Arc::new(RemoteClock::new(
        chrono::DateTime::from_timestamp_millis(now_ms)
            .ok_or_else(|| anyhow::anyhow!("--now-ms out of range"))?,
    ));
    let remote = Remote::new(&store, clock.clone())?;
    let heard = clock.clone();
    let table: Arc<dyn Table> = Arc::new(RemoteTable(remote.clone()));
    let queue = Arc::new(RemoteQueue(remote));
    let bus: Arc<dyn EventBus> = Arc::new(NullBus);
    let svc = match role {
        "api" => {
            let admin = Operator::new(OperatorPorts {
                table,
                scheduler: Arc::new(MemoryScheduler::default()),
                bus,
                clock,
            });
            Service::Api(
                shared::http::operator::router(admin)
                    .layer(axum::middleware::from_fn(shared::http::tenant_from_header)),
            )
        }
        "launcher" => Service::Launcher(Dispatcher {
            table,
            queue: queue.clone(),
            bus,
            clock,
            tick_seconds: TICK_SECONDS,
            plan_ahead_secs: 0,
            start_lead_ms: 0,
            send_capacity: None,
        }),
        "sender" => {
            let sim = arg(args, "--sim").ok_or_else(|| anyhow::anyhow!("--sim URL is required"))?;
            let secrets = Arc::new(MemorySecrets::default().with(TOKEN_REF, TOKEN));
            let provider = Arc::new(ByAccountProvider {
                meta: Arc::new(MetaProvider::new(sim.clone(), "v23.0", secrets.clone())),
                kaleyra: Arc::new(KaleyraProvider::new(sim.clone(), secrets.clone())),
                aws_social: Arc::new(AwsSocialProvider::new(
                    &shared::adapters::aws::offline_sdk_config(),
                    Some(&sim),
                    "v23.0",
                    secrets.clone(),
                )),
                twilio: Arc::new(TwilioProvider::new(sim.clone(), None, secrets.clone())),
                aws_sms: Arc::new(AwsSmsProvider::new(
                    &shared::adapters::aws::offline_sdk_config(),
                    Some(&sim),
                    None,
                    secrets.clone(),
                )),
                connect: Arc::new(ConnectProvider::new(
                    &shared::adapters::aws::offline_sdk_config(),
                    Some(&sim),
                    secrets,
                )),
            });
            Service::Sender(
                SendService {
                    table,
                    provider,
                    bus,
                    clock,
                    concurrency: SENDER_CONCURRENCY,
                    // The parent's clock, not this process's, says when a slot is.
                    wait_for_slot: false,
                },
                queue,
            )
        }
        "sweeper" => Service::Sweeper(SweepService { table, bus, clock }),
        other => anyhow::bail!("unknown role {other} (api, launcher, sender, sweeper)"),
    };
    Ok((svc, heard))
}

async fn request(app: &axum::Router, method: &str, path: &str, body: Option<Value>) -> Value {
    use tower::ServiceExt;
    let req = http::Request::builder()
        .method(method)
        .uri(path)
        .header("content-type", "application/json")
        .header("x-tenant-id", super::TENANT)
        .body(axum::body::Body::from(
            body.map(|b| b.to_string()).unwrap_or_default(),
        ))
        .expect("a valid request");
    let resp = app.clone().oneshot(req).await.expect("the router answers");
    let status = resp.status().as_u16();
    let bytes = axum::body::to_bytes(resp.into_body(), usize::MAX)
        .await
        .unwrap_or_default();
    json!({
        "status": status,
        "body": serde_json::from_slice::<Value>(&bytes).unwrap_or(Value::Null),
    })
}

/// Runs one command: (result, invocations, longest invocation in ms).
async fn run(svc: &Service, what: What) -> anyhow::Result<(Value, u64, f64)> {
    let started = Instant::now();
    let one = |v: Value| (v, 1, started.elapsed().as_secs_f64() * 1000.0);
    Ok(match (svc, what) {
        (Service::Api(app), What::Request { method, path, body }) => {
            one(request(app, &method, &path, body).await)
        }
        (Service::Launcher(d), What::Invoke { event }) => one(lambda::launcher(d, event).await?),
        (Service::Sweeper(s), What::Sweep) => one(serde_json::to_value(lambda::sweeper(s).await?)?),
        (Service::Sender(s, queue), What::Drain) => {
            let (mut batches, mut messages, mut failed, mut longest) = (0u64, 0u64, 0u64, 0f64);
            loop {
                let received = queue.receive(BATCH_SIZE).await?;
                if received.is_empty() {
                    break;
                }
                let t = Instant::now();
                let resp = lambda::sender(s, sqs_event::event_from(&received)).await;
                longest = longest.max(t.elapsed().as_secs_f64() * 1000.0);
                batches += 1;
                messages += received.len() as u64;
                failed += resp.batch_item_failures.len() as u64;
                queue
                    .delete_batch(&sqs_event::handled_receipts(&received, &resp))
                    .await?;
            }
            (
                json!({"batches": batches, "messages": messages, "failed": failed}),
                batches,
                longest,
            )
        }
        (_, what) => anyhow::bail!("this role does not take {what:?}"),
    })
}

/// `bench scale-worker <role> --store URL [--sim URL] --now-ms T`.
pub fn main(args: Vec<String>) -> anyhow::Result<()> {
    let started = Instant::now();
    let role = args
        .first()
        .cloned()
        .ok_or_else(|| anyhow::anyhow!("usage: bench scale-worker <role> --store URL …"))?;
    // As each function's main.rs: `#[tokio::main]`, the multi-threaded runtime.
    let rt = tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()?;
    let (svc, clock) = {
        let _guard = rt.enter();
        build(&role, &args[1..])?
    };
    let ready_rss_kb = status_kb("VmRSS:");
    let (mut busy_ms, mut invocations) = (0f64, 0u64);
    let stdout = std::io::stdout();
    for line in std::io::stdin().lock().lines() {
        let line = line?;
        if line.trim().is_empty() {
            continue;
        }
        let cmd: Command = serde_json::from_str(&line)?;
        let t = Instant::now();
        clock.heard(cmd.now_ms);
        let got = rt.block_on(run(&svc, cmd.what));
        let elapsed_ms = t.elapsed().as_secs_f64() * 1000.0;
        busy_ms += elapsed_ms;
        let done = match got {
            Ok((result, n, longest_ms)) => {
                invocations += n;
                Done {
                    ok: true,
                    error: None,
                    result,
                    invocations: n,
                    elapsed_ms,
                    longest_ms,
                    vmhwm_kb: status_kb("VmHWM:"),
                }
            }
            Err(e) => Done {
                ok: false,
                error: Some(format!("{e:#}")),
                result: Value::Null,
                invocations: 0,
                elapsed_ms,
                longest_ms: elapsed_ms,
                vmhwm_kb: status_kb("VmHWM:"),
            },
        };
        let mut out = stdout.lock();
        writeln!(out, "{}", serde_json::to_string(&done)?)?;
        out.flush()?;
    }
    let exit = Exit {
        exit: true,
        vmhwm_kb: status_kb("VmHWM:"),
        ready_rss_kb,
        wall_ms: started.elapsed().as_secs_f64() * 1000.0,
        busy_ms,
        cpu_ms: cpu_ms(),
        invocations,
    };
    let mut out = stdout.lock();
    writeln!(out, "{}", serde_json::to_string(&exit)?)?;
    out.flush()?;
    Ok(())
}
