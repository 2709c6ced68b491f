//! Cost per message: DynamoDB requests (counted at the adapter), SQS and EventBridge
//! requests and Lambda invocations for N messages from send to read, through the real
//! pipeline on the local AWS emulator, and the infrastructure cost per million messages
//! from AWS list prices ([`prices`]).
//!
//! The run: an operator sets up an account, a template with two quick replies, N contacts,
//! a list and a campaign over the HTTP API, then launches it. From the launch on, every
//! function runs as in AWS, each with its own adapters (so each one's requests are
//! counted apart):
//! - the launcher's tick (every 60 s, as its schedule) enqueues the sends on the SQS send
//!   queue, delayed to their send times;
//! - the sender is fed by an event source mapping played by the bench ([`esm`]) with the
//!   batch size and window of `infra/template.yaml`;
//! - it sends through the Meta adapter to the WhatsApp simulator (loopback HTTP), which
//!   posts signed `sent`, `delivered` and `read` webhooks (no replies) to the webhook
//!   router served on loopback — one invocation per POST, as the function URL invokes Lambda —
//!   which verifies and queues them on the SQS inbound queue;
//! - the inbound worker is fed by a second mapping, and the sweeper runs with the tick;
//!
//! until every entry is read. Then a sweeper whose clock is past the response timeout
//! closes the entries, which every message costs once its timeout passes (shown apart).
//!
//! The emulator (a Python server) handles a few messages a second, so the run plays the
//! campaign slower than the rate its figures are for and stretches every clock-driven
//! part by the same factor (batching windows, the simulator's status delays, the
//! schedules): each batch then holds what it would at the nominal rate.
//!
//! Options: `--messages N` (1,000; smoke 100), `--rate R` messages/s the figures are for
//! (50), `--played-rate P` messages/s the run goes at (5; smoke 25), `--status-delay-ms D` between
//! the simulator's webhooks of one message at the nominal rate (20),
//! `--sender-batch B --sender-window S --inbound-batch B --inbound-window S` to try other
//! event source mapping settings than the template's.

pub(crate) mod esm;
mod meter;
mod prices;

use crate::report::{thousands, Row};
use crate::Opts;
use anyhow::{anyhow, bail, Context};
use axum::body::Body;
use axum::http::{Method, Request, StatusCode};
use axum::Router;
use esm::{InvocationStats, Invocations, Mapping};
use meter::{Book, MeteredTable, Tally};
use serde_json::{json, Value};
use shared::adapters::aws::dynamo::TableCounts;
use shared::adapters::aws::eventbridge::BusCounts;
use shared::adapters::aws::sqs::QueueCounts;
use shared::adapters::aws::{self, setup, DynamoTable, EventBridgeBus, SqsQueue};
use shared::adapters::clock::SystemClock;
use shared::http::webhook::{self, QueueSink, WebhookState};
use shared::lambda;
use shared::ports::{Clock, MessagingProvider};
use shared::providers::meta::MetaProvider;
use std::collections::BTreeMap;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};
use testkit::local::{Ports, System};
use testkit::memory::{ManualClock, MemoryScheduler, MemorySecrets};
use testkit::simulator::{SimConfig, Simulator};
use tower::ServiceExt;

const S: &str = "cost";
const TENANT: &str = "bench";
const SENDER_ID: &str = "106540352242922";
/// The launcher's and the sweeper's schedules (infra/template.yaml: rate(1 minute)).
const TICK: Duration = Duration::from_secs(60);

/// The functions whose requests are counted apart, in report order.
const FUNCTIONS: [&str; 6] = ["api", "launcher", "sender", "webhook", "inbound", "sweeper"];

pub async fn run(opts: &Opts) -> anyhow::Result<Vec<Row>> {
    let endpoint = std::env::var("AWS_ENDPOINT_URL").unwrap_or_default();
    if endpoint.is_empty() {
        bail!(
            "the cost scenario runs against the local AWS emulator, and AWS_ENDPOINT_URL is not \
             set: run it through scripts/bench.sh, or `eval \"$(scripts/emulator.sh start)\"` first"
        );
    }
    if !(endpoint.contains("127.0.0.1") || endpoint.contains("localhost")) {
        bail!("AWS_ENDPOINT_URL ({endpoint}) is not on loopback: the cost scenario only runs against the local emulator");
    }
    let cfg = Config::from(opts)?;
    eprintln!(
        "   {} messages at {}/s played at {}/s; sender batches of {} within {:?}, inbound batches of {} within {:?}",
        cfg.messages,
        cfg.rate,
        cfg.played_rate.min(cfg.rate),
        cfg.sender.batch_size,
        cfg.sender.window,
        cfg.inbound.batch_size,
        cfg.inbound.window
    );
    let world = World::build(&cfg).await?;
    let campaign = world.set_up_campaign(&cfg).await?;
    let measured = world.send_to_read(&cfg, &campaign).await?;
    let closing = world.close_after_timeout(&campaign).await?;
    // Reads usually come long after the delivery; a second, smaller run spaces the
    // webhooks wider than the inbound batching window, so no two statuses of a message
    // share a batch.
    let apart_cfg = Config {
        messages: (cfg.messages / 5).max(20),
        status_delay: cfg.inbound.window + Duration::from_secs(1),
        ..cfg.clone()
    };
    eprintln!(
        "   again with {} messages, webhooks {:?} apart",
        apart_cfg.messages, apart_cfg.status_delay
    );
    let world = World::build(&apart_cfg).await?;
    let campaign = world.set_up_campaign(&apart_cfg).await?;
    let apart = world.send_to_read(&apart_cfg, &campaign).await?;
    Ok(report(&cfg, &measured, &closing, &apart_cfg, &apart))
}

#[derive(Clone)]
struct Config {
    messages: u64,
    /// The sending rate the figures are for (messages/s).
    rate: u64,
    /// The rate the run plays it at, so that the emulator keeps up: the clock-driven
    /// parts (batching windows, the simulator's status delays, the schedules) are
    /// stretched by the same factor, so each batch holds what it would at `rate`.
    played_rate: u64,
    status_delay: Duration,
    sender: Mapping,
    inbound: Mapping,
}

impl Config {
    /// How much slower than `rate` the run plays.
    fn dilation(&self) -> f64 {
        self.rate as f64 / self.played_rate.min(self.rate) as f64
    }

    fn stretch(&self, d: Duration) -> Duration {
        d.mul_f64(self.dilation())
    }

    fn played(&self, m: Mapping) -> Mapping {
        Mapping {
            batch_size: m.batch_size,
            window: self.stretch(m.window),
        }
    }

    fn tick(&self) -> Duration {
        self.stretch(TICK)
    }

    fn from(opts: &Opts) -> anyhow::Result<Config> {
        let path = concat!(env!("CARGO_MANIFEST_DIR"), "/../../infra/template.yaml");
        let template = std::fs::read_to_string(path).with_context(|| format!("reading {path}"))?;
        let mapping = |function: &str, prefix: &str| -> anyhow::Result<Mapping> {
            let m = esm::mapping_from_template(&template, function)
                .ok_or_else(|| anyhow!("no SQS batch settings for {function} in {path}"))?;
            let batch = opts.number(
                &format!("{prefix}-batch"),
                m.batch_size as u64,
                m.batch_size as u64,
            );
            let window = opts.number(
                &format!("{prefix}-window"),
                m.window.as_secs(),
                m.window.as_secs(),
            );
            Ok(Mapping {
                batch_size: batch.max(1) as usize,
                window: Duration::from_secs(window),
            })
        };
        Ok(Config {
            messages: opts.number("messages", 1000, 100).max(1),
            rate: opts.number("rate", 50, 50).max(1),
            played_rate: opts.number("played-rate", 5, 25).max(1),
            status_delay: Duration::from_millis(opts.number("status-delay-ms", 20, 20)),
            sender: mapping("SenderFunction", "sender")?,
            inbound: mapping("InboundFunction", "inbound")?,
        })
    }
}

/// One function's adapters.
struct Function {
    table: Arc<DynamoTable>,
    bus: Arc<EventBridgeBus>,
    metered: Arc<MeteredTable>,
}

/// Everything the run needs: the emulator's resources, each function's adapters and
/// system, the simulator and the webhook server.
struct World {
    ddb: aws_sdk_dynamodb::Client,
    table_name: String,
    eb: aws_sdk_eventbridge::Client,
    bus_name: String,
    book: Arc<Book>,
    functions: BTreeMap<&'static str, Function>,
    /// The bench's own reads (progress checks), counted apart and left out.
    observer: Arc<DynamoTable>,
    /// The launcher's sends to the send queue.
    launcher_queue: Arc<SqsQueue>,
    /// The send queue's event source mapping.
    send_poll: Arc<SqsQueue>,
    /// The webhook's sends to the inbound queue.
    webhook_queue: Arc<SqsQueue>,
    inbound_poll: Arc<SqsQueue>,
    systems: BTreeMap<&'static str, System>,
    sim: Simulator,
    provider: Arc<dyn MessagingProvider>,
    api: Router,
    webhook_invocations: Arc<Invocations>,
    webhook_url: String,
    http: reqwest::Client,
}

struct Campaign {
    id: String,
    /// The campaign's response timeout.
    timeout: chrono::Duration,
}

/// What the run from the launch to the last read cost.
struct Measured {
    messages: u64,
    elapsed: Duration,
    tables: BTreeMap<&'static str, TableCounts>,
    tallies: BTreeMap<(&'static str, String), Tally>,
    buses: BTreeMap<&'static str, BusCounts>,
    queues: BTreeMap<&'static str, QueueCounts>,
    invocations: BTreeMap<&'static str, InvocationStats>,
    observer_reads: u64,
    /// From the first send to the last, as the simulator received them: far over the
    /// planned `messages / played_rate` means the emulator fell behind (and batches held
    /// more than they would at the nominal rate).
    send_spread: Duration,
    /// Webhooks the receiver did not take (by answer), delivered again by the bench.
    refused: BTreeMap<String, u64>,
    redelivered: u64,
}

/// What closing the entries after their response timeout cost.
struct Closing {
    table: TableCounts,
    tallies: BTreeMap<(&'static str, String), Tally>,
    runs: InvocationStats,
    closed: usize,
}

fn unique(prefix: &str) -> String {
    format!(
        "{prefix}-{}-{}",
        std::process::id(),
        chrono::Utc::now().timestamp_micros()
    )
}

impl World {
    async fn build(cfg: &Config) -> anyhow::Result<World> {
        let sdk = aws::sdk_config().await;
        let ddb = aws_sdk_dynamodb::Client::new(&sdk);
        let table_name = unique("bench-cost");
        setup::ensure_table(&ddb, &table_name)
            .await
            .map_err(|e| anyhow!("creating the table on the emulator: {e}"))?;
        let sqs = aws_sdk_sqs::Client::new(&sdk);
        let send_url = setup::ensure_queue(&sqs, &unique("bench-cost-send"))
            .await
            .map_err(|e| anyhow!("creating the send queue: {e}"))?;
        let inbound_url = setup::ensure_queue(&sqs, &unique("bench-cost-inbound"))
            .await
            .map_err(|e| anyhow!("creating the inbound queue: {e}"))?;
        let eb = aws_sdk_eventbridge::Client::new(&sdk);
        let bus_name = unique("bench-cost");
        setup::ensure_bus(&eb, &bus_name)
            .await
            .map_err(|e| anyhow!("creating the event bus: {e}"))?;

        let book = Arc::new(Book::default());
        let function = |name: &'static str| {
            let table = Arc::new(DynamoTable::new(ddb.clone(), table_name.clone()));
            Function {
                metered: Arc::new(MeteredTable::new(table.clone(), name, book.clone())),
                table,
                bus: Arc::new(EventBridgeBus::new(
                    eb.clone(),
                    bus_name.clone(),
                    "campaigns",
                )),
            }
        };
        let functions: BTreeMap<&'static str, Function> =
            FUNCTIONS.iter().map(|f| (*f, function(f))).collect();
        let observer = Arc::new(DynamoTable::new(ddb.clone(), table_name.clone()));
        let queue = |url: &str| Arc::new(SqsQueue::new(sqs.clone(), url));

        let clock: Arc<dyn Clock> = Arc::new(SystemClock);
        let sim = Simulator::start(
            SimConfig {
                reply_percent: 0,
                status_delay: cfg.stretch(cfg.status_delay),
                // Throttling is the pacing scenario's subject; here it would only add retries.
                rate_limit_per_sec: None,
                ..SimConfig::default()
            },
            clock.clone(),
        )
        .await?;
        let secrets =
            Arc::new(MemorySecrets::default().with("env:SIM_TOKEN", &sim.config().access_token));
        let provider: Arc<dyn MessagingProvider> =
            Arc::new(MetaProvider::new(sim.base_url(), "v23.0", secrets));

        let launcher_queue = queue(&send_url);
        let webhook_queue = queue(&inbound_url);
        let mut systems = BTreeMap::new();
        for (name, f) in &functions {
            let sys = System::new(
                Ports {
                    table: f.metered.clone(),
                    queue: launcher_queue.clone(),
                    scheduler: Arc::new(MemoryScheduler::default()),
                    bus: f.bus.clone(),
                    provider: provider.clone(),
                    clock: clock.clone(),
                },
                cfg.tick().as_secs() as u32,
            );
            systems.insert(*name, sys);
        }

        // The webhook function: verify, queue, answer; one invocation per POST.
        let webhook_invocations = Arc::new(Invocations::default());
        let hook = webhook::router(Arc::new(WebhookState {
            sink: QueueSink::on(webhook_queue.clone()),
            app_secret: sim.config().app_secret.clone(),
            verify_token: "bench-verify-token".into(),
        }));
        let counted = webhook_invocations.clone();
        let hook = hook.layer(axum::middleware::from_fn(
            move |req: axum::extract::Request, next: axum::middleware::Next| {
                let counted = counted.clone();
                async move { counted.time(1, next.run(req)).await }
            },
        ));
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await?;
        let webhook_url = format!("http://{}/webhooks/meta", listener.local_addr()?);
        tokio::spawn(async move {
            if let Err(e) = axum::serve(listener, hook).await {
                eprintln!("webhook server stopped: {e}");
            }
        });
        sim.set_webhook_url(webhook_url.clone());

        let api = shared::http::operator::router(systems["api"].operator.clone())
            .layer(axum::middleware::from_fn(shared::http::tenant_from_header));
        Ok(World {
            ddb,
            table_name,
            eb,
            bus_name,
            book,
            functions,
            observer,
            launcher_queue,
            send_poll: queue(&send_url),
            webhook_queue,
            inbound_poll: queue(&inbound_url),
            systems,
            sim,
            provider,
            api,
            webhook_invocations,
            webhook_url,
            http: reqwest::Client::new(),
        })
    }

    async fn call(&self, method: Method, path: &str, body: Value) -> anyhow::Result<Value> {
        let req = Request::builder()
            .method(method.clone())
            .uri(path)
            .header("content-type", "application/json")
            .header("x-tenant-id", TENANT)
            .body(Body::from(body.to_string()))?;
        let resp = self.api.clone().oneshot(req).await?;
        let status = resp.status();
        let bytes = axum::body::to_bytes(resp.into_body(), usize::MAX).await?;
        let v: Value = serde_json::from_slice(&bytes).unwrap_or(Value::Null);
        // 202: an attach that carries on in the background (set_up_campaign waits for it).
        if !matches!(
            status,
            StatusCode::OK | StatusCode::CREATED | StatusCode::ACCEPTED
        ) {
            bail!("{method} {path}: {status} {v}");
        }
        Ok(v)
    }

    /// Account, template, contacts, list and campaign over the HTTP API (not counted).
    async fn set_up_campaign(&self, cfg: &Config) -> anyhow::Result<Campaign> {
        let account = self
            .call(
                Method::POST,
                "/accounts",
                json!({"name": "Bench number", "sender_id": SENDER_ID, "token_ref": "env:SIM_TOKEN", "waba_id": "100000000000001"}),
            )
            .await?;
        let account_id = account["id"]
            .as_str()
            .ok_or_else(|| anyhow!("no account id"))?;
        self.call(
            Method::POST,
            "/templates",
            json!({
                "account_id": account_id, "name": "spring_offer", "language": "en",
                "category": "MARKETING", "body": "Hi {{1}}, use code {{2}} for 20% off",
                "quick_replies": ["Yes", "No"]
            }),
        )
        .await?;
        let phones: Vec<String> = (0..cfg.messages).map(|i| format!("91981{i:07}")).collect();
        let list = self
            .call(Method::POST, "/lists", json!({"name": "Bench audience"}))
            .await?;
        let list_id = list["id"].as_str().ok_or_else(|| anyhow!("no list id"))?;
        for chunk in phones.chunks(1000) {
            let contacts: Vec<Value> = chunk
                .iter()
                .map(|p| json!({"phone": format!("+{p}"), "name": "Customer", "fields": {"code": "SPRING"}}))
                .collect();
            self.call(Method::POST, "/contacts", Value::Array(contacts))
                .await?;
            self.call(
                Method::POST,
                &format!("/lists/{list_id}/members"),
                json!({"phones": chunk}),
            )
            .await?;
        }
        let campaign = self
            .call(
                Method::POST,
                "/campaigns",
                json!({
                    "name": "Cost bench", "account_id": account_id,
                    "template": {"name": "spring_offer", "language": "en"},
                    "variables": [{"source": "contact_name"}, {"source": "field", "name": "code"}],
                    "rate": cfg.played_rate.min(cfg.rate), "response_timeout_days": 1
                }),
            )
            .await?;
        let id = campaign["id"]
            .as_str()
            .ok_or_else(|| anyhow!("no campaign id: {campaign}"))?
            .to_owned();
        let attached = self
            .call(
                Method::POST,
                &format!("/campaigns/{id}/lists"),
                json!({"list_id": list_id}),
            )
            .await?;
        // An attach slower than its request's budget (a slow emulator) is carried on by
        // the sweeper, as in AWS; its work is setup, before the counted run begins.
        let mut attached = attached;
        while attached["kind"] == "attach" && attached["status"] == "RUNNING" {
            lambda::sweeper(&self.systems["sweeper"].sweeper)
                .await
                .map_err(|e| anyhow!("sweeper during the attach: {e}"))?;
            attached = self
                .call(
                    Method::GET,
                    &format!("/campaigns/{id}/operation"),
                    json!({}),
                )
                .await?;
            if attached["status"] == "DONE" {
                attached = json!({"added": attached["progress"]["changed"]});
            }
        }
        if attached["added"].as_u64() != Some(cfg.messages) {
            bail!(
                "attaching the list added {attached}, not {} entries",
                cfg.messages
            );
        }
        Ok(Campaign {
            id,
            timeout: chrono::Duration::days(1),
        })
    }

    fn table_counts(&self) -> BTreeMap<&'static str, TableCounts> {
        self.functions
            .iter()
            .map(|(n, f)| (*n, f.table.metrics().snapshot()))
            .collect()
    }

    fn bus_counts(&self) -> BTreeMap<&'static str, BusCounts> {
        self.functions
            .iter()
            .map(|(n, f)| (*n, f.bus.metrics().snapshot()))
            .collect()
    }

    fn queue_counts(&self) -> BTreeMap<&'static str, QueueCounts> {
        BTreeMap::from([
            (
                "send queue: launcher sends",
                self.launcher_queue.metrics().snapshot(),
            ),
            (
                "send queue: sender's event source mapping",
                self.send_poll.metrics().snapshot(),
            ),
            (
                "inbound queue: webhook sends",
                self.webhook_queue.metrics().snapshot(),
            ),
            (
                "inbound queue: inbound's event source mapping",
                self.inbound_poll.metrics().snapshot(),
            ),
        ])
    }

    /// Launch, then run every function until each entry is read.
    async fn send_to_read(&self, cfg: &Config, c: &Campaign) -> anyhow::Result<Measured> {
        let tables0 = self.table_counts();
        let buses0 = self.bus_counts();
        let queues0 = self.queue_counts();
        let tallies0 = self.book.snapshot();
        let observer0 = self.observer.metrics().snapshot();
        let started = Instant::now();

        // The launch is one API call (API Gateway and the api function).
        let api_invocations = Invocations::default();
        api_invocations
            .time(
                1,
                self.call(
                    Method::POST,
                    &format!("/campaigns/{}/launch", c.id),
                    json!({}),
                ),
            )
            .await?;

        let stop = Arc::new(AtomicBool::new(false));
        let sender_invocations = Arc::new(Invocations::default());
        let inbound_invocations = Arc::new(Invocations::default());
        let sender_sys = &self.systems["sender"];
        let inbound_sys = &self.systems["inbound"];
        let send_loop = esm::poll(
            self.send_poll.clone(),
            cfg.played(cfg.sender),
            sender_invocations.clone(),
            stop.clone(),
            |ev| lambda::sender(&sender_sys.sender, ev),
        );
        let inbound_loop = esm::poll(
            self.inbound_poll.clone(),
            cfg.played(cfg.inbound),
            inbound_invocations.clone(),
            stop.clone(),
            |ev| lambda::inbound(&inbound_sys.inbox, ev),
        );
        let launcher_invocations = Invocations::default();
        let sweeper_invocations = Invocations::default();
        let deadline = Duration::from_secs(300 + 4 * cfg.messages / cfg.played_rate.min(cfg.rate));
        let mut refused: BTreeMap<String, u64> = BTreeMap::new();
        let mut redelivered = 0u64;
        let schedules_and_progress = async {
            let mut seen = 0;
            let mut read = 0;
            let mut redeliver: Vec<String> = Vec::new();
            let mut next_tick = Instant::now();
            let result = loop {
                if Instant::now() >= next_tick {
                    next_tick += cfg.tick();
                    let tick = launcher_invocations.time(
                        0,
                        lambda::launcher(
                            &self.systems["launcher"].dispatcher,
                            json!({"action": "tick"}),
                        ),
                    );
                    match tick.await {
                        Ok(report) => eprintln!(
                            "   tick at {:.0} s: {report}",
                            started.elapsed().as_secs_f64()
                        ),
                        Err(e) => break Err(anyhow!("launcher tick: {e}")),
                    }
                    let sweep = sweeper_invocations
                        .time(0, lambda::sweeper(&self.systems["sweeper"].sweeper));
                    if let Err(e) = sweep.await {
                        break Err(anyhow!("sweeper: {e}"));
                    }
                }
                let idle = self.sim.pending_webhooks() == 0;
                if idle {
                    // Meta delivers a webhook the receiver did not take again (the
                    // simulator does not): so does the bench.
                    let hooks = self.sim.webhooks();
                    for w in &hooks[seen..] {
                        if !w.accepted() {
                            *refused
                                .entry(format!(
                                    "{:?} {}",
                                    w.answered,
                                    w.error.as_deref().unwrap_or("")
                                ))
                                .or_insert(0) += 1;
                            redeliver.push(w.body.clone());
                        }
                    }
                    seen = hooks.len();
                    let mut again = Vec::new();
                    for body in redeliver.drain(..) {
                        let signed = shared::providers::meta::signature_header(
                            self.sim.config().app_secret.as_bytes(),
                            body.as_bytes(),
                        );
                        let ok = self
                            .http
                            .post(&self.webhook_url)
                            .header("content-type", "application/json")
                            .header("x-hub-signature-256", signed)
                            .body(body.clone())
                            .send()
                            .await
                            .is_ok_and(|r| r.status().is_success());
                        redelivered += 1;
                        if !ok {
                            again.push(body);
                        }
                    }
                    redeliver = again;
                }
                // The counters are read (17 gets) only once everything went out.
                if idle && redeliver.is_empty() && self.sim.sent().len() as u64 >= cfg.messages {
                    let counters = shared::repo::get_counters(&*self.observer, TENANT, &c.id)
                        .await
                        .map_err(|e| anyhow!("reading counters: {e}"))?;
                    read = counters.get("read").copied().unwrap_or(0) as u64;
                    if read >= cfg.messages {
                        break Ok(());
                    }
                }
                if started.elapsed() > deadline {
                    break Err(anyhow!(
                        "only {read} of {} messages read after {:?} ({} sent to the simulator)",
                        cfg.messages,
                        started.elapsed(),
                        self.sim.sent().len()
                    ));
                }
                tokio::time::sleep(Duration::from_secs(1)).await;
            };
            stop.store(true, Ordering::SeqCst);
            result
        };
        let (progress, sent, applied) =
            tokio::join!(schedules_and_progress, send_loop, inbound_loop);
        progress?;
        sent?;
        applied?;
        let elapsed = started.elapsed();

        // Every entry really is read, once.
        let campaign = shared::repo::get_campaign(&*self.observer, TENANT, &c.id)
            .await
            .map_err(|e| anyhow!("{e}"))?
            .ok_or_else(|| anyhow!("campaign gone"))?;
        let entries = shared::repo::all_entries(&*self.observer, &campaign)
            .await
            .map_err(|e| anyhow!("{e}"))?;
        let read = entries.iter().filter(|e| e.read_at.is_some()).count() as u64;
        if read != cfg.messages || self.sim.sent().len() as u64 != cfg.messages {
            bail!(
                "{read} entries read and {} messages sent, expected {} each",
                self.sim.sent().len(),
                cfg.messages
            );
        }

        let diff_tables = self
            .table_counts()
            .into_iter()
            .map(|(n, c)| (n, c - tables0[n]))
            .collect();
        let diff_buses = self
            .bus_counts()
            .into_iter()
            .map(|(n, c)| (n, c - buses0[n]))
            .collect();
        let diff_queues = self
            .queue_counts()
            .into_iter()
            .map(|(n, c)| (n, c - queues0[n]))
            .collect();
        let invocations = BTreeMap::from([
            ("api", api_invocations.snapshot()),
            ("launcher", launcher_invocations.snapshot()),
            ("sender", sender_invocations.snapshot()),
            ("webhook", self.webhook_invocations.snapshot()),
            ("inbound", inbound_invocations.snapshot()),
            ("sweeper", sweeper_invocations.snapshot()),
        ]);
        Ok(Measured {
            messages: cfg.messages,
            elapsed,
            tables: diff_tables,
            tallies: diff_tallies(&tallies0, &self.book.snapshot()),
            buses: diff_buses,
            queues: diff_queues,
            invocations,
            observer_reads: (self.observer.metrics().snapshot() - observer0).read_requests(),
            refused,
            redelivered,
            send_spread: {
                let sent = self.sim.sent();
                let first = sent.iter().map(|s| s.at).min();
                let last = sent.iter().map(|s| s.at).max();
                match (first, last) {
                    (Some(a), Some(b)) => (b - a).to_std().unwrap_or_default(),
                    _ => Duration::ZERO,
                }
            },
        })
    }

    /// A sweeper whose clock is past the response timeout closes every entry (each
    /// message's last writes), run until it finds nothing more.
    async fn close_after_timeout(&self, c: &Campaign) -> anyhow::Result<Closing> {
        let table = Arc::new(DynamoTable::new(self.ddb.clone(), self.table_name.clone()));
        let metered = Arc::new(MeteredTable::new(
            table.clone(),
            "sweeper after the timeout",
            self.book.clone(),
        ));
        let clock = Arc::new(ManualClock::system());
        clock.advance(c.timeout + chrono::Duration::minutes(2));
        let sys = System::new(
            Ports {
                table: metered,
                queue: self.launcher_queue.clone(),
                scheduler: Arc::new(MemoryScheduler::default()),
                bus: Arc::new(EventBridgeBus::new(
                    self.eb.clone(),
                    self.bus_name.clone(),
                    "campaigns",
                )),
                provider: self.provider.clone(),
                clock,
            },
            TICK.as_secs() as u32,
        );
        let tallies0 = self.book.snapshot();
        let runs = Invocations::default();
        let mut closed = 0;
        for _ in 0..20 {
            let report = runs
                .time(0, lambda::sweeper(&sys.sweeper))
                .await
                .map_err(|e| anyhow!("sweeper after the timeout: {e}"))?;
            closed += report.expired;
            if report.expired == 0 {
                break;
            }
        }
        Ok(Closing {
            table: table.metrics().snapshot(),
            tallies: diff_tallies(&tallies0, &self.book.snapshot())
                .into_iter()
                .filter(|((f, _), _)| *f == "sweeper after the timeout")
                .collect(),
            runs: runs.snapshot(),
            closed,
        })
    }
}

fn diff_tallies(
    before: &BTreeMap<(&'static str, String), Tally>,
    after: &BTreeMap<(&'static str, String), Tally>,
) -> BTreeMap<(&'static str, String), Tally> {
    after
        .iter()
        .filter_map(|(k, a)| {
            let b = before.get(k).copied().unwrap_or_default();
            let d = Tally {
                reads: a.reads - b.reads,
                writes: a.writes - b.writes,
                failed: a.failed - b.failed,
                rru: a.rru - b.rru,
                wru: a.wru - b.wru,
                index_wru: a.index_wru - b.index_wru,
            };
            (d.reads + d.writes > 0).then(|| (k.clone(), d))
        })
        .collect()
}

/// `x` per 1,000 messages, with one decimal.
fn per_k(x: f64, messages: u64) -> String {
    format!("{:.1}", x * 1000.0 / messages as f64)
}

fn dollars(x: f64) -> String {
    if x >= 10.0 {
        format!("${x:.2}")
    } else {
        format!("${x:.3}")
    }
}

fn report(
    cfg: &Config,
    m: &Measured,
    closing: &Closing,
    apart_cfg: &Config,
    apart: &Measured,
) -> Vec<Row> {
    let n = m.messages;
    let total: TableCounts = m
        .tables
        .values()
        .copied()
        .fold(TableCounts::default(), |a, b| a + b);
    let mut rows = vec![Row::info(
        S,
        "run",
        format!(
            "{} messages at {}/s, played {:.0}x slower ({}/s, batching windows, status delays and schedules stretched alike) so the emulator keeps up: sends spread over {:.0} s ({:.0} s planned), launch to last read in {:.0} s; sender batches <= {} within {} s, inbound batches <= {} within {} s (infra/template.yaml), one poller each (Lambda runs several, which splits slow traffic into smaller batches); simulator webhooks {} ms apart (sent, delivered, read), no replies",
            thousands(n),
            cfg.rate,
            cfg.dilation(),
            cfg.played_rate.min(cfg.rate),
            m.send_spread.as_secs_f64(),
            n as f64 / cfg.played_rate.min(cfg.rate) as f64,
            m.elapsed.as_secs_f64(),
            cfg.sender.batch_size,
            cfg.sender.window.as_secs(),
            cfg.inbound.batch_size,
            cfg.inbound.window.as_secs(),
            cfg.status_delay.as_millis()
        ),
    )];

    // DynamoDB: the adapter's counts are the figures; the meter's breakdown must agree.
    let writes_per_msg = total.items_written() as f64 / n as f64;
    rows.push(Row::target(
        S,
        "DynamoDB writes per message, send to read (items written, counted at the adapter)",
        format!(
            "{writes_per_msg:.2} ({} per 1,000; {} failed conditions included)",
            per_k(total.items_written() as f64, n),
            total.conditional_failures
        ),
        "<= 3",
        writes_per_msg <= 3.0,
    ));
    let apart_total = apart
        .tables
        .values()
        .copied()
        .fold(TableCounts::default(), |a, b| a + b);
    let apart_per_msg = apart_total.items_written() as f64 / apart.messages as f64;
    rows.push(Row::target(
        S,
        format!(
            "DynamoDB writes per message when no two statuses of a message share an inbound batch (second run: {} messages, webhooks {} s apart)",
            apart.messages,
            apart_cfg.status_delay.as_secs()
        ),
        format!(
            "{apart_per_msg:.2} ({})",
            apart
                .tallies
                .iter()
                .filter(|((f, k), t)| *f == "inbound" && t.writes > 0 && k.starts_with("hopper"))
                .map(|((_, k), t)| format!(
                    "inbound {k}: {:.2}",
                    t.writes as f64 / apart.messages as f64
                ))
                .collect::<Vec<_>>()
                .join(", ")
        ),
        "<= 3",
        apart_per_msg <= 3.0,
    ));
    rows.push(Row::info(
        S,
        "DynamoDB reads per 1,000 messages (requests: GetItem + Query pages)",
        format!(
            "{} ({} GetItem, {} Query pages, {} items read)",
            per_k(total.read_requests() as f64, n),
            per_k(total.get_item as f64, n),
            per_k(total.query_pages as f64, n),
            per_k(total.items_read as f64, n)
        ),
    ));
    for f in FUNCTIONS {
        let c = m.tables[f];
        if c.read_requests() + c.items_written() == 0 {
            continue;
        }
        rows.push(Row::info(
            S,
            format!("DynamoDB per 1,000 messages: {f}"),
            format!(
                "{} writes ({} PutItem, {} UpdateItem, {} DeleteItem, {} batch items; {} failed conditions), {} reads",
                per_k(c.items_written() as f64, n),
                per_k(c.put_item as f64, n),
                per_k(c.update_item as f64, n),
                per_k(c.delete_item as f64, n),
                per_k(c.batch_write_items as f64, n),
                per_k(c.conditional_failures as f64, n),
                per_k(c.read_requests() as f64, n),
            ),
        ));
    }
    let mut tally_total = Tally::default();
    for ((f, kind), t) in &m.tallies {
        tally_total.add(t);
        if t.writes == 0 {
            continue;
        }
        rows.push(Row::info(
            S,
            format!("writes per 1,000 messages: {f} / {kind}"),
            format!(
                "{}{} (~{} WRU + ~{} index WRU)",
                per_k(t.writes as f64, n),
                if t.failed > 0 {
                    format!(", {} failed conditions", per_k(t.failed as f64, n))
                } else {
                    String::new()
                },
                per_k(t.wru, n),
                per_k(t.index_wru, n)
            ),
        ));
    }
    let agree =
        tally_total.writes == total.items_written() && tally_total.reads == total.read_requests();
    rows.push(Row::info(
        S,
        "DynamoDB request units per 1,000 messages (estimated from item sizes; indexes included)",
        format!(
            "~{} WRU on the table + ~{} WRU on GSI1/GSI2, ~{} RRU{}",
            per_k(tally_total.wru, n),
            per_k(tally_total.index_wru, n),
            per_k(tally_total.rru, n),
            if agree {
                String::new()
            } else {
                format!(
                    " (the breakdown counted {} writes and {} reads, the adapters {} and {})",
                    tally_total.writes,
                    tally_total.reads,
                    total.items_written(),
                    total.read_requests()
                )
            }
        ),
    ));

    // Lambda invocations.
    let inv = |f: &str| m.invocations.get(f).cloned().unwrap_or_default();
    let all_invocations: u64 = m.invocations.values().map(|s| s.count).sum();
    let webhook = inv("webhook");
    let without_webhook = all_invocations - webhook.count;
    rows.push(Row::target(
        S,
        "Lambda invocations per 1,000 messages, send to read (every function)",
        per_k(all_invocations as f64, n),
        "<= 20",
        all_invocations as f64 * 1000.0 / n as f64 <= 20.0,
    ));
    rows.push(Row::target(
        S,
        "  of which webhook receiver (function URL -> Lambda, one per status POST)",
        format!(
            "{} ({} webhooks per message: sent, delivered, read)",
            per_k(webhook.count as f64, n),
            format_args!("{:.1}", webhook.count as f64 / n as f64)
        ),
        "<= 20",
        webhook.count as f64 * 1000.0 / n as f64 <= 20.0,
    ));
    rows.push(Row::target(
        S,
        "  of which every other function (launcher, sender, inbound, sweeper, api)",
        per_k(without_webhook as f64, n),
        "<= 20",
        without_webhook as f64 * 1000.0 / n as f64 <= 20.0,
    ));
    for f in FUNCTIONS {
        let s = inv(f);
        if s.count == 0 {
            continue;
        }
        rows.push(Row::info(
            S,
            format!("invocations per 1,000 messages: {f}"),
            format!(
                "{} ({} in the run, {:.1} records each, {:.1} ms mean / {} ms median billed in-process)",
                per_k(s.count as f64, n),
                s.count,
                s.records as f64 / s.count as f64,
                s.mean_ms(),
                s.p50_ms()
            ),
        ));
    }

    if m.redelivered > 0 {
        rows.push(Row::info(
            S,
            "webhooks the receiver did not take, delivered again by the bench (as Meta does)",
            format!(
                "{} redeliveries; first answers: {}",
                m.redelivered,
                m.refused
                    .iter()
                    .map(|(why, k)| format!("{why} x{k}"))
                    .collect::<Vec<_>>()
                    .join(", ")
            ),
        ));
    }

    // SQS and EventBridge.
    // Empty receives are the pollers idling (Lambda long-polls each queue whether or not
    // messages flow): a cost per queue and hour, not per message.
    let sqs_total: u64 = m
        .queues
        .values()
        .map(|c| c.requests() - c.empty_receives)
        .sum();
    for (q, c) in &m.queues {
        rows.push(Row::info(
            S,
            format!("SQS requests per 1,000 messages: {q}"),
            format!(
                "{} ({} SendMessageBatch, {} ReceiveMessage of which {} empty, {} DeleteMessageBatch)",
                per_k(c.requests() as f64, n),
                per_k(c.send_batch_requests as f64, n),
                per_k(c.receive_requests as f64, n),
                per_k(c.empty_receives as f64, n),
                per_k((c.delete_batch_requests + c.delete_requests) as f64, n),
            ),
        ));
    }
    let events: u64 = m.buses.values().map(|b| b.events).sum();
    rows.push(Row::info(
        S,
        "EventBridge events per 1,000 messages",
        format!(
            "{} ({} PutEvents requests)",
            per_k(events as f64, n),
            per_k(
                m.buses.values().map(|b| b.put_events_requests).sum::<u64>() as f64,
                n
            )
        ),
    ));

    // After the read: the response timeout closes each entry.
    let close_writes = closing.table.items_written();
    rows.push(Row::info(
        S,
        "after the read: closing at the response timeout (sweeper), per message",
        format!(
            "{:.2} writes, {:.2} reads ({} entries closed in {} sweeper runs; {})",
            close_writes as f64 / n as f64,
            closing.table.read_requests() as f64 / n as f64,
            closing.closed,
            closing.runs.count,
            closing
                .tallies
                .iter()
                .filter(|(_, t)| t.writes > 0)
                .map(|((_, k), t)| format!("{k}: {:.2}", t.writes as f64 / n as f64))
                .collect::<Vec<_>>()
                .join(", ")
        ),
    ));

    rows.extend(cost_rows(cfg, m, closing, &tally_total, sqs_total, events));
    rows.push(Row::info(
        S,
        "not counted",
        format!(
            "setup over the API (contacts, list, attach: one entry write each and more); the bench's own progress reads ({}); CloudWatch Logs, data transfer, storage, Secrets Manager; Lambda's idle SQS polling (a fixed cost per queue, not per message)",
            thousands(m.observer_reads)
        ),
    ));
    rows
}

/// Lambda's billed duration, modelled from the requests each function made: the
/// emulator's latencies (a Python server on a shared machine) say little about AWS's.
mod model {
    /// Runtime work per invocation (event parsing, answer).
    pub const OVERHEAD_MS: f64 = 2.0;
    /// A DynamoDB request in the same region (single-digit milliseconds).
    pub const DYNAMO_MS: f64 = 6.0;
    /// An SQS request.
    pub const SQS_MS: f64 = 10.0;
    /// An EventBridge PutEvents request.
    pub const EVENTS_MS: f64 = 15.0;
    /// A send through Meta's Cloud API (an assumption: Meta publishes no latency).
    pub const PROVIDER_MS: f64 = 250.0;
    /// Records of a batch the sender and the inbound worker handle at once.
    pub const RECORDS_AT_ONCE: f64 = 10.0;
    /// The sweeper's concurrency closing entries.
    pub const SWEEP_AT_ONCE: f64 = 16.0;
}

/// Modelled milliseconds `f` was billed for in the run.
fn modelled_ms(m: &Measured, f: &str) -> f64 {
    let s = m.invocations.get(f).cloned().unwrap_or_default();
    if s.count == 0 {
        return 0.0;
    }
    let t = m.tables.get(f).copied().unwrap_or_default();
    let dynamo = (t.read_requests() + t.write_requests()) as f64;
    let events = m.buses.get(f).map_or(0, |b| b.put_events_requests) as f64;
    let sqs = match f {
        "launcher" => m.queues["send queue: launcher sends"].send_batch_requests,
        "webhook" => m.queues["inbound queue: webhook sends"].send_batch_requests,
        _ => 0,
    } as f64;
    let provider = if f == "sender" {
        m.messages as f64
    } else {
        0.0
    };
    let at_once = match f {
        "sender" | "inbound" => {
            (s.records as f64 / s.count as f64).clamp(1.0, model::RECORDS_AT_ONCE)
        }
        _ => 1.0,
    };
    s.count as f64 * model::OVERHEAD_MS
        + (dynamo * model::DYNAMO_MS
            + sqs * model::SQS_MS
            + events * model::EVENTS_MS
            + provider * model::PROVIDER_MS)
            / at_once
}

/// Modelled milliseconds of the sweeper runs that closed the entries.
fn closing_ms(c: &Closing) -> f64 {
    let dynamo = (c.table.read_requests() + c.table.write_requests()) as f64;
    c.runs.count as f64 * model::OVERHEAD_MS + dynamo * model::DYNAMO_MS / model::SWEEP_AT_ONCE
}

/// The infrastructure cost per million messages from the list prices.
fn cost_rows(
    cfg: &Config,
    m: &Measured,
    closing: &Closing,
    units: &Tally,
    sqs_requests: u64,
    events: u64,
) -> Vec<Row> {
    use prices::*;
    let n = m.messages as f64;
    let million = 1e6;
    let scale = million / n;
    let inv = |f: &str| m.invocations.get(f).cloned().unwrap_or_default();
    // Queue- and webhook-driven invocations scale with the messages; the launcher's tick
    // and the sweeper run once a minute whatever the volume, so a million messages at the
    // bench's rate take 1e6 / rate / 60 minutes of them. The launcher's work follows the
    // messages it dispatches, the sweeper's is mostly its fixed index walk per run.
    let minutes = (million / cfg.rate as f64 / 60.0).ceil();
    let mut lambda: Vec<(&str, f64, f64)> = Vec::new(); // (function, invocations, billed ms)
    for f in ["api", "sender", "webhook", "inbound"] {
        let s = inv(f);
        lambda.push((f, s.count as f64 * scale, modelled_ms(m, f) * scale));
    }
    lambda.push(("launcher", minutes, modelled_ms(m, "launcher") * scale));
    let sweeps = inv("sweeper").count.max(1) as f64;
    lambda.push((
        "sweeper",
        minutes,
        modelled_ms(m, "sweeper") / sweeps * minutes,
    ));
    // Closing at the timeout runs inside the sweeper's minutes: its extra duration.
    lambda.push((
        "sweeper (closing at the timeout)",
        0.0,
        closing_ms(closing) * scale,
    ));
    let invocations: f64 = lambda.iter().map(|l| l.1).sum();
    let gb_s: f64 = lambda.iter().map(|l| l.2 / 1000.0 * LAMBDA_MEMORY_GB).sum();
    let lambda_requests = invocations * LAMBDA_REQUEST.usd;
    let lambda_arm = gb_s * LAMBDA_GB_S_ARM.usd;
    let lambda_x86 = gb_s * LAMBDA_GB_S_X86.usd;

    let closing_units = closing.tallies.values().fold(Tally::default(), |mut a, t| {
        a.add(t);
        a
    });
    let wru = (units.wru + units.index_wru + closing_units.wru + closing_units.index_wru) * scale;
    let rru = (units.rru + closing_units.rru) * scale;
    let dynamo = wru * DYNAMO_WRU.usd + rru * DYNAMO_RRU.usd;
    // The webhook has its own function URL: API Gateway carries the operator's calls only.
    let http = inv("api").count as f64 * scale * HTTP_API_REQUEST.usd;
    let sqs = sqs_requests as f64 * scale * SQS_REQUEST.usd;
    let eventbridge = events as f64 * scale * EVENTBRIDGE_EVENT.usd;
    let scheduler = 2.0 * minutes * SCHEDULER_INVOCATION.usd;
    let total_arm = dynamo + lambda_requests + lambda_arm + http + sqs + eventbridge + scheduler;
    let total_x86 = total_arm - lambda_arm + lambda_x86;
    // The other way statuses arrive: AWS End User Messaging Social publishes each of Meta's
    // webhook events to the deployment's SNS topic, subscribed by the inbound queue (SNS
    // to SQS is not charged; each delivery is one SQS request, as the webhook's send is).
    // No webhook function runs: its requests and duration go, an SNS publish comes.
    let hooks = inv("webhook").count as f64 * scale;
    let webhook_gb_s = modelled_ms(m, "webhook") * scale / 1000.0 * LAMBDA_MEMORY_GB;
    let sns = hooks * SNS_PUBLISH.usd;
    let social_arm =
        total_arm - hooks * LAMBDA_REQUEST.usd - webhook_gb_s * LAMBDA_GB_S_ARM.usd + sns;

    let mut rows = vec![
        Row::info(
            S,
            "cost per million messages, send to read and close (arm64), Meta's webhook on the function URL",
            format!("{} (x86_64: {})", dollars(total_arm), dollars(total_x86)),
        ),
        Row::info(
            S,
            "cost per million messages, the same through AWS End User Messaging Social (SNS -> inbound queue, no webhook function)",
            format!(
                "{} ({} SNS publishes: {:.2} M events; no webhook invocations)",
                dollars(social_arm),
                dollars(sns),
                hooks / million
            ),
        ),
        Row::info(
            S,
            "  DynamoDB on-demand",
            format!(
                "{} (~{:.1} M WRU incl. indexes, ~{:.1} M RRU)",
                dollars(dynamo),
                wru / million,
                rru / million
            ),
        ),
        Row::info(
            S,
            "  Lambda requests",
            format!(
                "{} ({:.2} M invocations: {})",
                dollars(lambda_requests),
                invocations / million,
                lambda
                    .iter()
                    .filter(|l| l.1 > 0.0)
                    .map(|l| format!("{} {:.3} M", l.0, l.1 / million))
                    .collect::<Vec<_>>()
                    .join(", ")
            ),
        ),
        Row::info(
            S,
            "  Lambda duration at 128 MB",
            format!(
                "{} arm64 / {} x86_64 ({:.0} GB-s, modelled: {} ms per invocation, {} ms per DynamoDB request, {} ms per SQS request, {} ms per PutEvents, {} ms per Meta API call, a batch's records {} at a time; cold starts left out. The in-process durations above are the emulator's, several times slower)",
                dollars(lambda_arm),
                dollars(lambda_x86),
                gb_s,
                model::OVERHEAD_MS,
                model::DYNAMO_MS,
                model::SQS_MS,
                model::EVENTS_MS,
                model::PROVIDER_MS,
                model::RECORDS_AT_ONCE,
            ),
        ),
        Row::info(
            S,
            "  API Gateway HTTP API (the operator's calls; webhooks come to the function URL)",
            dollars(http),
        ),
        Row::info(
            S,
            "  SQS requests",
            format!(
                "{} ({:.2} M requests, empty receives left out)",
                dollars(sqs),
                sqs_requests as f64 * scale / million
            ),
        ),
        Row::info(
            S,
            "  EventBridge events and Scheduler",
            format!(
                "{} events + {} schedule invocations ({:.0} minutes of sending at {}/s)",
                dollars(eventbridge),
                dollars(scheduler),
                minutes,
                cfg.rate
            ),
        ),
    ];
    for p in prices::ALL {
        rows.push(Row::info(
            S,
            format!("price: {} (us-east-1, read {})", p.what, prices::READ_ON),
            format!("{}; {}", prices::describe(&p), p.source),
        ));
    }
    rows
}
