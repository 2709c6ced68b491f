//! Chooses the adapters: in-memory by default, AWS (or an emulator) with AWS_ENDPOINT_URL.

use async_trait::async_trait;
use shared::adapters::aws::{
    self, dynamo::DynamoTable, eventbridge::EventBridgeBus, scheduler::EventBridgeScheduler,
    sqs::SqsQueue,
};
use shared::app::import::{ImportService, ImportTuning};
use shared::compose::{self, ProviderSecrets, ProviderUrls, Providers};
use shared::config;
use shared::domain::events::DomainEvent;
use shared::http::operator::OperatorServices;
use shared::ports::{Clock, EventBus, PortResult, Secrets};
use std::sync::{Arc, Mutex};
use std::time::Duration;
use testkit::local::{Ports, System};
use testkit::memory::{ManualClock, MemoryBus, MemoryQueue, MemoryScheduler, MemoryTable};
use testkit::memory_objects::MemoryObjects;
use testkit::simulator::{
    QueueEvents, SimConfig, Simulator, SIM_AWS_PHONE_NUMBER_IDS, SIM_AWS_SMS_NUMBERS,
    SIM_CONNECT_INSTANCE_IDS, SIM_TWILIO_AUTH_TOKEN,
};

pub const APP_SECRET: &str = "test-app-secret";
pub const VERIFY_TOKEN: &str = "test-verify-token";
/// The token the local Kaleyra callback URL carries.
pub const KALEYRA_TOKEN: &str = "test-kaleyra-token";

pub struct Local {
    pub system: System,
    pub clock: Arc<ManualClock>,
    pub simulator: Simulator,
    /// Present on the in-memory backend, whose schedules this process fires.
    pub scheduler: Option<Arc<MemoryScheduler>>,
    pub backend: &'static str,
    /// The operator API's use cases (the system's operator, with template sync and the
    /// recontact route).
    pub operator: OperatorServices,
    /// Uploads of large CSV imports: "presigned" URLs point at `PUT /local/objects/…`.
    pub objects: Arc<MemoryObjects>,
    pub imports: Arc<ImportService>,
    /// What the system published, for `GET /local/events`.
    pub events: Arc<RecordingBus>,
    /// Where this process serves (Twilio's callbacks are signed over it).
    pub base_url: String,
}

/// An event as the system published it, for `GET /local/events`.
#[derive(Clone, serde::Serialize)]
pub struct Published {
    /// The EventBridge detail-type.
    pub detail_type: &'static str,
    /// When the bus took it (the runner's clock).
    pub at: shared::domain::Time,
    /// The event, as EventBridge's `detail` carries it.
    pub detail: DomainEvent,
}

/// The system's bus, keeping a copy of every event it took, so a demo or an acceptance run
/// can see over HTTP what a subscriber would have received.
pub struct RecordingBus {
    inner: Arc<dyn EventBus>,
    clock: Arc<dyn Clock>,
    pub published: Mutex<Vec<Published>>,
}

#[async_trait]
impl EventBus for RecordingBus {
    async fn publish(&self, events: &[DomainEvent]) -> PortResult<()> {
        self.inner.publish(events).await?;
        let at = self.clock.now();
        self.published
            .lock()
            .unwrap()
            .extend(events.iter().map(|e| Published {
                detail_type: e.detail_type(),
                at,
                detail: e.clone(),
            }));
        Ok(())
    }
}

/// The simulator's share of contacts it answers by itself: none unless `--demo` plays
/// (a scripted scenario sees only the replies it posts), 40 % in the demo;
/// `LOCAL_REPLY_PERCENT` overrides either.
pub fn reply_percent(demo: bool) -> anyhow::Result<u8> {
    Ok(config::number(
        "LOCAL_REPLY_PERCENT",
        if demo { 40 } else { 0 },
    )?)
}

/// Every account's token reference resolves to the simulator's token.
pub(crate) struct SimulatorToken(pub(crate) String);

#[async_trait]
impl Secrets for SimulatorToken {
    async fn resolve(&self, _reference: &str) -> PortResult<String> {
        Ok(self.0.clone())
    }
}

/// The whole system serving at `base_url`; on AWS services at `AWS_ENDPOINT_URL` when
/// `aws`, else in memory; the simulator answers by itself only in the `demo`.
pub async fn build(base_url: &str, demo: bool, aws: bool) -> anyhow::Result<Local> {
    let clock = Arc::new(ManualClock::system());
    let sim_cfg = SimConfig {
        webhook_url: Some(format!("{base_url}/webhooks/meta")),
        kaleyra_callback_url: Some(format!("{base_url}/webhooks/kaleyra")),
        kaleyra_callback_secret: Some(KALEYRA_TOKEN.into()),
        reply_percent: reply_percent(demo)?,
        status_delay: Duration::from_millis(config::number("LOCAL_STATUS_DELAY_MS", 300)?),
        ..SimConfig::default()
    };
    let token = sim_cfg.access_token.clone();
    let kaleyra_key = sim_cfg.kaleyra_api_key.clone();
    let simulator = Simulator::start(sim_cfg, clock.clone()).await?;
    // Meta and Kaleyra accounts both send to the simulator, on one HTTP client.
    let providers = Providers::new(
        &ProviderUrls::all_at(simulator.base_url()).with_callbacks_to(base_url),
        &shared::providers::http_client(),
        &ProviderSecrets {
            meta: Arc::new(SimulatorToken(token)),
            kaleyra: Arc::new(SimulatorToken(kaleyra_key)),
            // Every tenant may send from the simulator's AWS numbers.
            aws_social: Arc::new(SimulatorToken(SIM_AWS_PHONE_NUMBER_IDS.join(","))),
            twilio: Arc::new(SimulatorToken(SIM_TWILIO_AUTH_TOKEN.into())),
            // Every tenant may send from the simulator's AWS SMS numbers.
            aws_sms: Arc::new(SimulatorToken(SIM_AWS_SMS_NUMBERS.join(","))),
            // Every tenant may call through the simulator's Connect instances.
            connect: Arc::new(SimulatorToken(SIM_CONNECT_INSTANCE_IDS.join(","))),
        },
        &aws::offline_sdk_config(),
    );
    let provider = providers.messaging.clone();
    // Lambda ticks every minute (the shortest EventBridge rate); locally a short tick
    // starts a launched campaign within seconds. The pacing is the same either way.
    let tick_seconds = config::number("TICK_SECONDS", 5)?;
    let clock_dyn: Arc<dyn Clock> = clock.clone();
    let (ports, scheduler, backend, inbound) = if aws {
        let sdk = aws::sdk_config().await;
        let name = config::optional("TABLE_NAME", "campaigns-local");
        let ddb = aws_sdk_dynamodb::Client::new(&sdk);
        aws::setup::ensure_table(&ddb, &name).await?;
        let sqs = aws_sdk_sqs::Client::new(&sdk);
        let queue_url = aws::setup::ensure_queue(&sqs, &format!("{name}-send")).await?;
        let inbound_url = aws::setup::ensure_queue(&sqs, &format!("{name}-inbound")).await?;
        let inbound: Arc<dyn shared::ports::Queue> =
            Arc::new(SqsQueue::new(sqs.clone(), inbound_url));
        let eb = aws_sdk_eventbridge::Client::new(&sdk);
        aws::setup::ensure_bus(&eb, &name).await?;
        let sch = aws_sdk_scheduler::Client::new(&sdk);
        aws::setup::ensure_schedule_group(&sch, &name).await?;
        let ports = Ports {
            table: Arc::new(DynamoTable::new(ddb, name.clone())),
            queue: Arc::new(SqsQueue::new(sqs, queue_url)),
            // Schedules are stored; the launcher's tick starts due campaigns itself.
            scheduler: Arc::new(EventBridgeScheduler::new(
                sch,
                name.clone(),
                config::optional(
                    "LAUNCHER_ARN",
                    "arn:aws:lambda:us-east-1:000000000000:function:launcher",
                ),
                config::optional(
                    "SCHEDULER_ROLE_ARN",
                    "arn:aws:iam::000000000000:role/scheduler",
                ),
            )),
            bus: Arc::new(EventBridgeBus::new(eb, name, "campaigns")),
            provider,
            clock: clock_dyn,
        };
        (
            ports,
            None,
            "AWS adapters at AWS_ENDPOINT_URL",
            Some(inbound),
        )
    } else {
        let scheduler = Arc::new(MemoryScheduler::default());
        let ports = Ports {
            table: Arc::new(MemoryTable::new()),
            queue: Arc::new(MemoryQueue::new(clock_dyn.clone())),
            scheduler: scheduler.clone(),
            bus: Arc::new(MemoryBus::default()),
            provider,
            clock: clock_dyn,
        };
        (ports, Some(scheduler), "in-memory adapters", None)
    };
    let mut ports = ports;
    let events = Arc::new(RecordingBus {
        inner: ports.bus.clone(),
        clock: ports.clock.clone(),
        published: Mutex::new(Vec::new()),
    });
    ports.bus = events.clone();
    let objects = Arc::new(MemoryObjects::new(base_url));
    let imports = Arc::new(ImportService {
        table: ports.table.clone(),
        objects: objects.clone(),
        clock: ports.clock.clone(),
        tuning: ImportTuning::default(),
    });
    // The local loop looks every 200 ms, so a tick is up to a step late: plan a second
    // beyond it (a deployed launcher plans PLAN_AHEAD_SECONDS).
    let system = System::new(ports, tick_seconds)
        .with_plan_ahead(1, shared::app::dispatch::START_LEAD_MS)
        .with_slot_wait();
    let system = match inbound {
        Some(q) => system.with_inbound_queue(q),
        None => system,
    };
    // AWS End User Messaging Social accounts' events reach the inbound worker as the
    // WABA's SNS topic delivers them to the inbound queue in AWS.
    simulator.set_aws_event_sink(Arc::new(QueueEvents(system.inbound_queue.clone())));
    let operator =
        compose::operator_services(system.operator.clone(), &providers, Some(objects.clone()));
    Ok(Local {
        events,
        operator,
        objects,
        imports,
        system,
        clock,
        simulator,
        scheduler,
        backend,
        base_url: base_url.trim_end_matches('/').to_owned(),
    })
}
