//! The test harness: HTTP calls into a router, the local AWS emulator's tables, the
//! in-memory system's wiring, the WhatsApp simulator's Meta adapter, small servers on
//! loopback and the usual request bodies. Each test binary uses a part of it. [`Spawn`]
//! builds the system a test runs against (operator API, simulator, webhook routes) in one
//! place; its [`Spawned`] makes the JSON calls.

use crate::local::{Ports, System};
use crate::memory::{ManualClock, MemoryBus, MemoryQueue, MemoryScheduler, MemorySecrets};
use crate::simulator::{SimConfig, Simulator};
use axum::body::{Body, Bytes};
use axum::http::{Method, Request, StatusCode};
use axum::Router;
use chrono::{DateTime, TimeZone, Utc};
use serde_json::{json, Value};
use shared::adapters::aws::{self, setup};
use shared::app::{Operator, OperatorPorts};
use shared::compose::{self, Providers};
use shared::http::webhook::{self, KaleyraHookState, QueueSink, TwilioHookState, WebhookState};
use shared::ports::{EventBus, MessagingProvider, ObjectStore, Queue, Scheduler, Table};
use shared::providers::meta::MetaProvider;
use shared::providers::meta_templates::MetaTemplates;
use std::sync::Arc;
use tower::ServiceExt;

/// The tenant a test acts as unless it says otherwise.
pub const TENANT: &str = "acme";

// ---- HTTP ------------------------------------------------------------------------------

/// A request as `tenant`, with `content_type`.
pub fn request(
    tenant: &str,
    method: Method,
    path: &str,
    content_type: &str,
    body: Body,
) -> Request<Body> {
    Request::builder()
        .method(method)
        .uri(path)
        .header("content-type", content_type)
        .header("x-tenant-id", tenant)
        .body(body)
        .unwrap()
}

/// Sends `req` to `app`; the status and the whole body.
pub async fn send(app: &Router, req: Request<Body>) -> (StatusCode, Bytes) {
    let resp = app.clone().oneshot(req).await.unwrap();
    let status = resp.status();
    let bytes = axum::body::to_bytes(resp.into_body(), usize::MAX)
        .await
        .unwrap();
    (status, bytes)
}

/// Sends `body` as `content_type` for `tenant`; the status and the JSON answer
/// (`Null` when the answer is not JSON).
pub async fn call_raw(
    api: &Router,
    tenant: &str,
    method: Method,
    path: &str,
    content_type: &str,
    body: Body,
) -> (StatusCode, Value) {
    let (status, bytes) = send(api, request(tenant, method, path, content_type, body)).await;
    (
        status,
        serde_json::from_slice(&bytes).unwrap_or(Value::Null),
    )
}

/// A JSON call for `tenant`.
pub async fn call_as(
    api: &Router,
    tenant: &str,
    method: Method,
    path: &str,
    body: Option<Value>,
) -> (StatusCode, Value) {
    let body = body.map(|b| Body::from(b.to_string())).unwrap_or_default();
    call_raw(api, tenant, method, path, "application/json", body).await
}

/// A JSON call for [`TENANT`].
pub async fn call(
    api: &Router,
    method: Method,
    path: &str,
    body: Option<Value>,
) -> (StatusCode, Value) {
    call_as(api, TENANT, method, path, body).await
}

/// The platform administrator turns `tenant`'s campaigns on or off (`x-admin: true`, as
/// the local runner reads it), and checks that it took.
pub async fn switch_campaigns(api: &Router, tenant: &str, on: bool) {
    let req = Request::builder()
        .method(Method::PUT)
        .uri(format!("/admin/tenants/{tenant}"))
        .header("content-type", "application/json")
        .header(shared::http::ADMIN_HEADER, "true")
        .body(Body::from(json!({ "campaigns_enabled": on }).to_string()))
        .unwrap();
    let (status, bytes) = send(api, req).await;
    let body: Value = serde_json::from_slice(&bytes).unwrap_or(Value::Null);
    assert_eq!(
        (status, body["campaigns_enabled"].as_bool()),
        (StatusCode::OK, Some(on)),
        "{body}"
    );
}

/// Launches campaign `id` of [`TENANT`] and checks that it is RUNNING.
pub async fn launch(api: &Router, id: &str) {
    let (s, body) = call(api, Method::POST, &format!("/campaigns/{id}/launch"), None).await;
    assert_eq!(
        (s, body["status"].as_str()),
        (StatusCode::OK, Some("RUNNING")),
        "{body}"
    );
}

/// Percent-encodes everything but the unreserved characters (for cursors in queries).
pub fn urlencode(s: &str) -> String {
    s.bytes()
        .map(|b| match b {
            b'A'..=b'Z' | b'a'..=b'z' | b'0'..=b'9' | b'-' | b'_' | b'.' | b'~' => {
                (b as char).to_string()
            }
            _ => format!("%{b:02X}"),
        })
        .collect()
}

/// Serves `app` on a free loopback port; its base URL (`http://127.0.0.1:port`).
pub async fn serve(app: Router) -> String {
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let base = format!("http://{}", listener.local_addr().unwrap());
    tokio::spawn(async move { axum::serve(listener, app).await.unwrap() });
    base
}

// ---- the local AWS emulator ------------------------------------------------------------

/// Fails (rather than skips) when the emulator is not configured; `what` names the tests.
pub fn require_emulator(what: &str) {
    if std::env::var("AWS_ENDPOINT_URL").map_or(true, |v| v.is_empty()) {
        panic!(
            "AWS_ENDPOINT_URL is not set: the {what} tests need the local emulator. \
             Run them through scripts/test.sh (or `eval \"$(scripts/emulator.sh start)\"` first)."
        );
    }
}

/// The SDK configuration for the emulator, failing as [`require_emulator`] does.
pub async fn emulator_config(what: &str) -> aws_config::SdkConfig {
    require_emulator(what);
    aws::sdk_config().await
}

/// `prefix-<uuid>`: a name no other test run uses.
pub fn unique_name(prefix: &str) -> String {
    format!("{prefix}-{}", uuid::Uuid::new_v4())
}

/// Creates the single table `name` on the emulator; the client that reaches it.
pub async fn create_table(conf: &aws_config::SdkConfig, name: &str) -> aws_sdk_dynamodb::Client {
    let client = aws_sdk_dynamodb::Client::new(conf);
    setup::ensure_table(&client, name)
        .await
        .expect("create the test table");
    client
}

/// A fresh DynamoDB table `prefix-<uuid>` on the emulator (`what` names the tests).
pub async fn dynamo_table(what: &str, prefix: &str) -> aws::DynamoTable {
    let conf = emulator_config(what).await;
    let name = unique_name(prefix);
    let client = create_table(&conf, &name).await;
    aws::DynamoTable::new(client, name)
}

// ---- the in-memory system --------------------------------------------------------------

/// 2026-11-21 09:00 UTC, where most tests freeze their clock.
pub fn t0() -> DateTime<Utc> {
    Utc.with_ymd_and_hms(2026, 11, 21, 9, 0, 0).unwrap()
}

/// A clock frozen at `at`.
pub fn frozen(at: DateTime<Utc>) -> Arc<ManualClock> {
    Arc::new(ManualClock::frozen(at))
}

/// The grant an AWS End User Messaging SMS account on the simulator refers to.
pub const SIM_AWS_SMS_GRANT_REF: &str = "env:SIM_AWS_SMS_NUMBERS";

/// The grant an Amazon Connect account on the simulator refers to (its instances).
pub const SIM_CONNECT_GRANT_REF: &str = "env:SIM_CONNECT_INSTANCES";

/// The auth token a Twilio account on the simulator refers to.
pub const SIM_TWILIO_TOKEN_REF: &str = "env:SIM_TWILIO_TOKEN";

/// The grant an AWS End User Messaging Social account on the simulator refers to.
pub const SIM_AWS_GRANT_REF: &str = "env:SIM_AWS_NUMBERS";

/// The secrets the simulator's accounts refer to: `env:SIM_TOKEN` (Meta's token),
/// [`SIM_AWS_GRANT_REF`] (the simulator's AWS WhatsApp numbers), [`SIM_TWILIO_TOKEN_REF`]
/// (the Twilio auth token), [`SIM_AWS_SMS_GRANT_REF`] (its AWS SMS numbers) and
/// [`SIM_CONNECT_GRANT_REF`] (its Connect instances).
pub fn sim_secrets() -> Arc<MemorySecrets> {
    Arc::new(
        MemorySecrets::default()
            .with("env:SIM_TOKEN", "test-token")
            .with(
                SIM_AWS_GRANT_REF,
                &crate::simulator::SIM_AWS_PHONE_NUMBER_IDS.join(","),
            )
            .with(
                SIM_TWILIO_TOKEN_REF,
                crate::simulator::SIM_TWILIO_AUTH_TOKEN,
            )
            .with(
                SIM_AWS_SMS_GRANT_REF,
                &crate::simulator::SIM_AWS_SMS_NUMBERS.join(","),
            )
            .with(
                SIM_CONNECT_GRANT_REF,
                &crate::simulator::SIM_CONNECT_INSTANCE_IDS.join(","),
            ),
    )
}

/// Every provider's adapter sending to `base_url` (the simulator) with [`sim_secrets`],
/// chosen per account as in AWS.
pub fn sim_providers(base_url: impl Into<String>) -> Arc<dyn MessagingProvider> {
    sim_providers_calling_back(base_url, None)
}

/// [`sim_providers`] with Twilio's status callbacks to the webhook routes at `hook_base`.
pub fn sim_providers_calling_back(
    base_url: impl Into<String>,
    hook_base: Option<String>,
) -> Arc<dyn MessagingProvider> {
    let secrets = sim_secrets();
    let mut urls = compose::ProviderUrls::all_at(base_url);
    urls.twilio_callback_base = hook_base;
    Providers::new(
        &urls,
        &shared::providers::http_client(),
        &compose::ProviderSecrets::same(secrets),
        &aws::offline_sdk_config(),
    )
    .messaging
}

/// The Meta adapter sending to `base_url` (the simulator or a stand-in) with
/// [`sim_secrets`].
pub fn meta_provider(base_url: impl Into<String>) -> Arc<MetaProvider> {
    Arc::new(MetaProvider::new(base_url, "v23.0", sim_secrets()))
}

/// The operator use cases on `table` and `clock`, with in-memory scheduler and bus.
pub fn memory_operator(table: Arc<dyn Table>, clock: Arc<ManualClock>) -> Operator {
    Operator::new(OperatorPorts {
        table,
        scheduler: Arc::new(MemoryScheduler::default()),
        bus: Arc::new(MemoryBus::default()),
        clock,
    })
}

/// `router` behind the tenant middleware (the tenant comes from `x-tenant-id`).
pub fn with_tenant(router: Router) -> Router {
    router.layer(axum::middleware::from_fn(shared::http::tenant_from_header))
}

/// The operator API of `operator`, tenant from the header.
pub fn operator_api(operator: Operator) -> Router {
    with_tenant(shared::http::operator::router(operator))
}

// ---- one system, spawned -----------------------------------------------------------------

/// The provider of a system that sends nothing: a closed loopback port.
const NO_PROVIDER_URL: &str = "http://127.0.0.1:9";

/// Where the webhook router ([`Spawned::hook`]) hands verified webhooks.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum HookSink {
    /// Applied before answering, through [`crate::InlineSink`] (the answer is the report).
    Inline,
    /// Put on the system's inbound queue ([`QueueSink`]) for
    /// [`System::drain_inbound`].
    Queue,
}

/// Builds the system a test runs against: by default the whole system on the given table
/// with a clock frozen at [`t0`], in-memory scheduler, bus and queue, a provider that is
/// never reached, ticking every 60 s, and the operator API tenant from the header. Each
/// method changes one piece; [`Spawn::spawn`] (or [`Spawn::build`] when nothing needs a
/// runtime) makes it.
#[must_use]
pub struct Spawn {
    table: Arc<dyn Table>,
    at: DateTime<Utc>,
    clock: Option<Arc<ManualClock>>,
    provider: Option<Arc<dyn MessagingProvider>>,
    sim: Option<SimConfig>,
    scheduler: Option<Arc<dyn Scheduler>>,
    bus: Option<Arc<dyn EventBus>>,
    queue: Option<Arc<dyn Queue>>,
    inbound_queue: Option<Arc<dyn Queue>>,
    sink: HookSink,
    serve_webhooks: bool,
    verify_token: String,
    kaleyra_token: Option<String>,
    objects: Option<Arc<dyn ObjectStore>>,
    aws_events: Option<Arc<dyn crate::simulator::AwsEventSink>>,
    attach_inline: Option<std::time::Duration>,
}

impl Spawn {
    /// The defaults on `table`.
    pub fn new(table: Arc<dyn Table>) -> Spawn {
        Spawn {
            table,
            at: t0(),
            clock: None,
            provider: None,
            sim: None,
            scheduler: None,
            bus: None,
            queue: None,
            inbound_queue: None,
            sink: HookSink::Inline,
            serve_webhooks: false,
            verify_token: "verify".into(),
            kaleyra_token: None,
            objects: None,
            aws_events: None,
            attach_inline: None,
        }
    }

    /// The clock frozen at `at` (default [`t0`]).
    pub fn at(mut self, at: DateTime<Utc>) -> Spawn {
        self.at = at;
        self
    }

    /// Runs on `clock` (which other test doubles share) instead of a new one frozen at
    /// [`Spawn::at`].
    pub fn clock(mut self, clock: Arc<ManualClock>) -> Spawn {
        self.clock = Some(clock);
        self
    }

    /// Sends through `provider` (default: the Meta adapter to the simulator when there is
    /// one, else a provider on a closed port that is never reached).
    pub fn provider(mut self, provider: Arc<dyn MessagingProvider>) -> Spawn {
        self.provider = Some(provider);
        self
    }

    /// Starts the WhatsApp simulator with `cfg` on the system's clock ([`Spawn::spawn`]
    /// only).
    pub fn simulator(mut self, cfg: SimConfig) -> Spawn {
        self.sim = Some(cfg);
        self
    }

    /// Schedules on `scheduler` instead of a [`MemoryScheduler`].
    pub fn scheduler(mut self, scheduler: Arc<dyn Scheduler>) -> Spawn {
        self.scheduler = Some(scheduler);
        self
    }

    /// Publishes on `bus` instead of a [`MemoryBus`].
    pub fn bus(mut self, bus: Arc<dyn EventBus>) -> Spawn {
        self.bus = Some(bus);
        self
    }

    /// Queues sends on `queue` instead of a [`MemoryQueue`] on the clock.
    pub fn queue(mut self, queue: Arc<dyn Queue>) -> Spawn {
        self.queue = Some(queue);
        self
    }

    /// Queues verified webhooks on `queue` ([`System::with_inbound_queue`]).
    pub fn inbound_queue(mut self, queue: Arc<dyn Queue>) -> Spawn {
        self.inbound_queue = Some(queue);
        self
    }

    /// The webhook router queues verified webhooks on the system's inbound queue instead
    /// of applying them inline.
    pub fn queue_webhooks(mut self) -> Spawn {
        self.sink = HookSink::Queue;
        self
    }

    /// With `on`, serves the webhook router on loopback and points the simulator's
    /// webhooks at its Meta route ([`Spawn::spawn`] only).
    pub fn serve_webhooks(mut self, on: bool) -> Spawn {
        self.serve_webhooks = on;
        self
    }

    /// The token of Meta's verification handshake (default `verify`).
    pub fn verify_token(mut self, token: impl Into<String>) -> Spawn {
        self.verify_token = token.into();
        self
    }

    /// Adds the Kaleyra callback route, checking `token`, to the webhook router.
    pub fn kaleyra_token(mut self, token: impl Into<String>) -> Spawn {
        self.kaleyra_token = Some(token.into());
        self
    }

    /// The simulator publishes AWS End User Messaging Social events on `sink` (an SNS
    /// topic) instead of putting them on the system's inbound queue.
    pub fn aws_events(mut self, sink: Arc<dyn crate::simulator::AwsEventSink>) -> Spawn {
        self.aws_events = Some(sink);
        self
    }

    /// How long an attach request walks before it answers 202 and leaves the rest to the
    /// sweeper (zero: every attach in the background).
    pub fn attach_inline(mut self, budget: std::time::Duration) -> Spawn {
        self.attach_inline = Some(budget);
        self
    }

    /// Presigned uploads on `objects` in the operator API (R2.4).
    pub fn objects(mut self, objects: Arc<dyn ObjectStore>) -> Spawn {
        self.objects = Some(objects);
        self
    }

    /// Starts what needs a runtime (the simulator, the webhook server) and makes the
    /// system.
    pub async fn spawn(self) -> Spawned {
        let clock = self.clock.clone().unwrap_or_else(|| frozen(self.at));
        let sim = match &self.sim {
            Some(cfg) => Some(Simulator::start(cfg.clone(), clock.clone()).await.unwrap()),
            None => None,
        };
        let serve_webhooks = self.serve_webhooks;
        let aws_events = self.aws_events.clone();
        // Bound first: Twilio's status callbacks name the served routes.
        let listener = match serve_webhooks {
            true => Some(tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap()),
            false => None,
        };
        let hook_base = listener
            .as_ref()
            .map(|l| format!("http://{}", l.local_addr().unwrap()));
        let mut spawned = self.assemble(clock, sim, hook_base.clone());
        if let Some(sim) = &spawned.sim {
            // As an SNS subscription with raw delivery does, unless a topic is given.
            let sink = aws_events.unwrap_or_else(|| {
                Arc::new(crate::simulator::QueueEvents(
                    spawned.sys.inbound_queue.clone(),
                ))
            });
            sim.set_aws_event_sink(sink);
        }
        if let (Some(listener), Some(base)) = (listener, hook_base) {
            let app = spawned.hook.clone();
            tokio::spawn(async move { axum::serve(listener, app).await.unwrap() });
            let url = format!("{base}/webhooks/meta");
            if let Some(sim) = &spawned.sim {
                sim.set_webhook_url(url.clone());
            }
            spawned.webhook_url = Some(url);
        }
        spawned
    }

    /// Makes the system without a runtime: no simulator, no webhook server.
    pub fn build(self) -> Spawned {
        assert!(
            self.sim.is_none() && !self.serve_webhooks,
            "a simulator or served webhooks need Spawn::spawn().await"
        );
        let clock = self.clock.clone().unwrap_or_else(|| frozen(self.at));
        self.assemble(clock, None, None)
    }

    /// `hook_base`: where the webhook routes will be served, for Twilio's callbacks.
    fn assemble(
        self,
        clock: Arc<ManualClock>,
        sim: Option<Simulator>,
        hook_base: Option<String>,
    ) -> Spawned {
        let provider: Arc<dyn MessagingProvider> = match (self.provider, &sim) {
            (Some(p), _) => p,
            (None, Some(sim)) => sim_providers_calling_back(sim.base_url(), hook_base.clone()),
            (None, None) => meta_provider(NO_PROVIDER_URL),
        };
        let (scheduler, memory_scheduler): (Arc<dyn Scheduler>, Option<Arc<MemoryScheduler>>) =
            match self.scheduler {
                Some(s) => (s, None),
                None => {
                    let m = Arc::new(MemoryScheduler::default());
                    let port: Arc<dyn Scheduler> = m.clone();
                    (port, Some(m))
                }
            };
        let (bus, memory_bus): (Arc<dyn EventBus>, Option<Arc<MemoryBus>>) = match self.bus {
            Some(b) => (b, None),
            None => {
                let m = Arc::new(MemoryBus::default());
                let port: Arc<dyn EventBus> = m.clone();
                (port, Some(m))
            }
        };
        let (queue, memory_queue): (Arc<dyn Queue>, Option<Arc<MemoryQueue>>) = match self.queue {
            Some(q) => (q, None),
            None => {
                let m = Arc::new(MemoryQueue::new(clock.clone()));
                let port: Arc<dyn Queue> = m.clone();
                (port, Some(m))
            }
        };
        let mut sys = System::new(
            Ports {
                table: self.table.clone(),
                queue,
                scheduler,
                bus,
                provider,
                clock: clock.clone(),
            },
            60, // the launcher ticks every minute, as in Lambda
        );
        if let Some(q) = self.inbound_queue {
            sys = sys.with_inbound_queue(q);
        }
        if let Some(budget) = self.attach_inline {
            sys.operator.commands = Arc::new(shared::app::commands::Commands {
                table: sys.ports.table.clone(),
                bus: sys.ports.bus.clone(),
                clock: sys.ports.clock.clone(),
                attach_inline: budget,
            });
            // Recounts and estimates walk within the same budget.
            sys.operator.reports = Arc::new(shared::app::reports::Reports {
                ports: sys.operator.ports.clone(),
                inline: budget,
            });
        }

        let sink = match self.sink {
            HookSink::Inline => crate::InlineSink::on(sys.inbox.clone()),
            HookSink::Queue => QueueSink::on(sys.inbound_queue.clone()),
        };
        let app_secret = match &sim {
            Some(sim) => sim.config().app_secret.clone(),
            None => SimConfig::default().app_secret,
        };
        let mut hook = webhook::router(Arc::new(WebhookState {
            sink: sink.clone(),
            app_secret,
            verify_token: self.verify_token,
        }));
        if let Some(token) = self.kaleyra_token {
            hook = hook.merge(webhook::kaleyra_router(Arc::new(KaleyraHookState {
                sink: sink.clone(),
                token,
            })));
        }
        hook = hook.merge(webhook::twilio_router(Arc::new(TwilioHookState {
            sink,
            table: sys.ports.table.clone(),
            secrets: sim_secrets(),
            clock: sys.ports.clock.clone(),
            public_base: hook_base,
        })));

        // The whole operator API as the composition roots build it: the recontact route
        // sends through the system's provider, template sync reads the simulator's list.
        let templates_at = sim
            .as_ref()
            .map_or(NO_PROVIDER_URL.to_owned(), |s| s.base_url());
        let providers = Providers {
            messaging: sys.ports.provider.clone(),
            templates: Arc::new(MetaTemplates::new(templates_at, "v23.0", sim_secrets())),
        };
        let services = compose::operator_services(sys.operator.clone(), &providers, self.objects);
        let api = shared::http::operator::full_router(&services);

        Spawned {
            sys,
            api: with_tenant(api),
            hook,
            clock,
            table: self.table,
            sim,
            bus: memory_bus,
            scheduler: memory_scheduler,
            queue: memory_queue,
            webhook_url: None,
        }
    }
}

/// A system made by [`Spawn`], with its operator API and webhook router.
pub struct Spawned {
    /// Every function in one process.
    pub sys: System,
    /// The operator API, tenant from `x-tenant-id`.
    pub api: Router,
    /// The webhook routes (`/webhooks/meta`, and `/webhooks/kaleyra` when asked) on the
    /// chosen sink; served on loopback only with [`Spawn::serve_webhooks`].
    pub hook: Router,
    pub clock: Arc<ManualClock>,
    /// The table the system runs on (`sys.ports.table`).
    pub table: Arc<dyn Table>,
    pub sim: Option<Simulator>,
    /// The in-memory bus the system publishes on; `None` when [`Spawn::bus`] replaced it.
    pub bus: Option<Arc<MemoryBus>>,
    /// The in-memory scheduler; `None` when [`Spawn::scheduler`] replaced it.
    pub scheduler: Option<Arc<MemoryScheduler>>,
    /// The in-memory send queue; `None` when [`Spawn::queue`] replaced it.
    pub queue: Option<Arc<MemoryQueue>>,
    /// The served Meta webhook route (`http://127.0.0.1:port/webhooks/meta`), with
    /// [`Spawn::serve_webhooks`].
    pub webhook_url: Option<String>,
}

impl Spawned {
    /// The simulator ([`Spawn::simulator`]).
    pub fn simulator(&self) -> &Simulator {
        self.sim.as_ref().expect("spawned without Spawn::simulator")
    }

    /// The in-memory bus (the default of [`Spawn::bus`]).
    pub fn memory_bus(&self) -> &Arc<MemoryBus> {
        self.bus.as_ref().expect("spawned with another bus")
    }

    /// The in-memory send queue (the default of [`Spawn::queue`]).
    pub fn memory_queue(&self) -> &Arc<MemoryQueue> {
        self.queue.as_ref().expect("spawned with another queue")
    }

    /// A JSON call to the operator API for [`TENANT`].
    pub async fn call(
        &self,
        method: Method,
        path: &str,
        body: Option<Value>,
    ) -> (StatusCode, Value) {
        call_as(&self.api, TENANT, method, path, body).await
    }

    /// A JSON call to the operator API for `tenant`.
    pub async fn call_as(
        &self,
        tenant: &str,
        method: Method,
        path: &str,
        body: Option<Value>,
    ) -> (StatusCode, Value) {
        call_as(&self.api, tenant, method, path, body).await
    }

    /// [`Spawned::call`] that must succeed (2xx); the answer.
    pub async fn ok(&self, method: Method, path: &str, body: Option<Value>) -> Value {
        self.ok_as(TENANT, method, path, body).await
    }

    /// [`Spawned::call_as`] that must succeed (2xx); the answer.
    pub async fn ok_as(
        &self,
        tenant: &str,
        method: Method,
        path: &str,
        body: Option<Value>,
    ) -> Value {
        let (s, v) = call_as(&self.api, tenant, method.clone(), path, body).await;
        assert!(s.is_success(), "{method} {path}: {s} {v}");
        v
    }

    /// A campaign ready to launch, over the API: an account on the simulator's number, the
    /// template `offer` ([`template_body`] with `template` set on it), `phones` as contacts
    /// (name `C`, field `code`) in one list attached to the campaign. The campaign's id.
    pub async fn ready_campaign(&self, phones: &[&str], template: Value) -> String {
        self.ready_campaign_with(phones, template, json!({})).await
    }

    /// [`Spawned::ready_campaign`] with `campaign`'s fields set on the campaign's body.
    pub async fn ready_campaign_with(
        &self,
        phones: &[&str],
        template: Value,
        campaign: Value,
    ) -> String {
        self.ready_campaign_on(json!({}), phones, template, campaign)
            .await
    }

    /// [`Spawned::ready_campaign_with`] on an account whose body has `account`'s fields
    /// set on [`account_body`].
    pub async fn ready_campaign_on(
        &self,
        account: Value,
        phones: &[&str],
        template: Value,
        campaign: Value,
    ) -> String {
        let (id, list) = self
            .campaign_with_list(account, phones, template, campaign)
            .await;
        self.ok(
            Method::POST,
            &format!("/campaigns/{id}/lists"),
            Some(json!({ "list_id": list })),
        )
        .await;
        id
    }

    /// [`Spawned::ready_campaign_on`] without the attach: the campaign (READY, its hopper
    /// empty) and the id of the list of `phones`.
    pub async fn campaign_with_list(
        &self,
        account: Value,
        phones: &[&str],
        template: Value,
        campaign: Value,
    ) -> (String, String) {
        let id_of = |v: Value| v["id"].as_str().unwrap().to_owned();
        let body = merged(account_body(), account);
        let account = id_of(self.ok(Method::POST, "/accounts", Some(body)).await);
        let offer = merged(template_body(&account, "offer"), template);
        self.ok(Method::POST, "/templates", Some(offer)).await;
        let list = self.new_list(phones).await;
        let body = merged(campaign_body("spring", &account, "offer"), campaign);
        let id = id_of(self.ok(Method::POST, "/campaigns", Some(body)).await);
        (id, list)
    }

    /// A list of new contacts (name `C`, field `code` = `K`) at `phones`, any number of
    /// them (the API takes a thousand per request).
    pub async fn new_list(&self, phones: &[&str]) -> String {
        let list = self
            .ok(Method::POST, "/lists", Some(json!({"name": "L"})))
            .await["id"]
            .as_str()
            .unwrap()
            .to_owned();
        for chunk in phones.chunks(1000) {
            let contacts: Vec<Value> = chunk
                .iter()
                .map(|p| json!({"phone": p, "name": "C", "fields": {"code": "K"}}))
                .collect();
            self.ok(Method::POST, "/contacts", Some(Value::Array(contacts)))
                .await;
            self.ok(
                Method::POST,
                &format!("/lists/{list}/members"),
                Some(json!({ "phones": chunk })),
            )
            .await;
        }
        list
    }
}

// ---- request bodies --------------------------------------------------------------------

/// An account on the simulator's phone number, its token in [`sim_secrets`].
pub fn account_body() -> Value {
    json!({"name": "Main", "sender_id": "106540352242922", "token_ref": "env:SIM_TOKEN", "waba_id": crate::simulator::SIM_WABA_ID})
}

/// A MARKETING template `name` (en) with the body `Hi {{1}}, code {{2}}`.
pub fn template_body(account: &str, name: &str) -> Value {
    json!({"account_id": account, "name": name, "language": "en",
        "category": "MARKETING", "body": "Hi {{1}}, code {{2}}"})
}

/// A campaign `name` sending `template` (en) with the contact's name and field `code`.
pub fn campaign_body(name: &str, account: &str, template: &str) -> Value {
    json!({
        "name": name, "account_id": account,
        "template": {"name": template, "language": "en"},
        "variables": [{"source": "contact_name"}, {"source": "field", "name": "code"}]
    })
}

/// `base` with every member of `extra` set on it.
pub fn merged(mut base: Value, extra: Value) -> Value {
    for (k, v) in extra.as_object().unwrap() {
        base[k] = v.clone();
    }
    base
}

// ---- one case on both backends ---------------------------------------------------------

/// For each `case: memory_test, dynamo_test;` two tests: `case(memory)` and `case(dynamo)`,
/// where `memory` and `dynamo` are expressions (they may `.await`) making the backend.
#[macro_export]
macro_rules! on_both_backends {
    (memory: $memory:expr, dynamo: $dynamo:expr; $($case:ident: $memory_test:ident, $dynamo_test:ident;)*) => {$(
        #[::tokio::test]
        async fn $memory_test() {
            $case($memory).await;
        }

        #[::tokio::test]
        async fn $dynamo_test() {
            $case($dynamo).await;
        }
    )*};
}
