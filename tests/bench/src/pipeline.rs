//! The in-process pipeline the throughput and pacing scenarios drive: the operator API, the
//! launcher's dispatch, an SQS-like queue with delays, the sender through the real Meta
//! adapter to the WhatsApp simulator over loopback HTTP, signed webhooks back to the
//! webhook router over loopback HTTP, the inbound queue and worker, and the sweeper. All
//! on the in-memory adapters; time is a manual clock shared by the queues and the
//! simulator, so the simulator judges its per-second limit on the seconds the dispatcher
//! planned.

use anyhow::{bail, Context};
use axum::body::Body;
use axum::http::{Method, Request};
use axum::Router;
use chrono::{TimeZone, Utc};
use serde_json::{json, Value};
use shared::app::dispatch::{PLAN_AHEAD_SECONDS, START_LEAD_MS};
use shared::http::webhook::{self, QueueSink, WebhookState};
use shared::ports::Table;
use shared::providers::meta::MetaProvider;
use shared::repo;
use std::collections::BTreeMap;
use std::sync::Arc;
use testkit::local::{Ports, System};
use testkit::memory::{
    ManualClock, MemoryBus, MemoryQueue, MemoryScheduler, MemorySecrets, MemoryTable,
};
use testkit::simulator::{SimConfig, Simulator};
use tower::ServiceExt;

pub const TENANT: &str = "acme";
const APP_SECRET: &str = "bench-app-secret";

/// Names of the simulator's threads.
pub const SIM_THREAD_PREFIX: &str = "sim-worker";

/// A runtime that may be dropped inside another one (it shuts down in the background).
struct SimRuntime(Option<tokio::runtime::Runtime>);

impl SimRuntime {
    fn handle(&self) -> &tokio::runtime::Handle {
        self.0.as_ref().expect("running until dropped").handle()
    }
}

impl Drop for SimRuntime {
    fn drop(&mut self) {
        if let Some(rt) = self.0.take() {
            rt.shutdown_background();
        }
    }
}

pub struct Settings {
    /// The simulator's accepted sends per sender per second (`None`: no limit).
    pub sim_rate_limit: Option<u32>,
    /// Whether the simulator posts sent/delivered/read webhooks back.
    pub webhooks: bool,
    /// Seconds between launcher ticks (Lambda: 60).
    pub tick_seconds: u32,
    /// The system clock instead of a manual one, with the deployed launcher's margins and
    /// a sender that waits for each slot.
    pub real_time: bool,
}

pub struct Pipeline {
    pub sys: Arc<System>,
    /// The simulator's own runtime (threads named `sim-*`), so the CPU time of Meta's side
    /// can be told apart from the engine's.
    _sim_rt: SimRuntime,
    pub sim: Simulator,
    pub clock: Arc<ManualClock>,
    pub api: Api,
}

/// The operator API of a system in process, with the calls the scenarios set up with.
pub struct Api {
    router: Router,
    table: Arc<dyn Table>,
}

impl std::ops::Deref for Pipeline {
    type Target = Api;
    fn deref(&self) -> &Api {
        &self.api
    }
}

impl Pipeline {
    pub async fn start(s: Settings) -> anyhow::Result<Pipeline> {
        let clock = Arc::new(if s.real_time {
            ManualClock::system()
        } else {
            ManualClock::frozen(Utc.with_ymd_and_hms(2026, 11, 23, 9, 0, 0).unwrap())
        });
        let sim_rt = SimRuntime(Some(
            tokio::runtime::Builder::new_multi_thread()
                .worker_threads(2)
                .thread_name(SIM_THREAD_PREFIX)
                .enable_all()
                .build()?,
        ));
        let cfg = SimConfig {
            reply_percent: 0,
            app_secret: APP_SECRET.into(),
            rate_limit_per_sec: s.sim_rate_limit,
            ..SimConfig::default()
        };
        // Started on its runtime, its server, webhook tasks and their connections stay
        // there.
        let sim_clock: Arc<dyn shared::ports::Clock> = clock.clone();
        let sim = sim_rt
            .handle()
            .spawn(Simulator::start(cfg, sim_clock))
            .await??;
        let secrets = Arc::new(
            MemorySecrets::default().with("env:SIM_TOKEN", &sim.config().access_token.clone()),
        );
        let table: Arc<dyn Table> = Arc::new(MemoryTable::default());
        let sys = System::new(
            Ports {
                table,
                queue: Arc::new(MemoryQueue::new(clock.clone())),
                scheduler: Arc::new(MemoryScheduler::default()),
                bus: Arc::new(MemoryBus::default()),
                provider: Arc::new(MetaProvider::new(sim.base_url(), "v23.0", secrets)),
                clock: clock.clone(),
            },
            s.tick_seconds,
        );
        let sys = Arc::new(if s.real_time {
            sys.with_plan_ahead(PLAN_AHEAD_SECONDS, START_LEAD_MS)
                .with_slot_wait()
        } else {
            sys
        });
        if s.webhooks {
            let hook = webhook::router(Arc::new(WebhookState {
                sink: QueueSink::on(sys.inbound_queue.clone()),
                app_secret: APP_SECRET.into(),
                verify_token: "bench-verify-token".into(),
            }));
            let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await?;
            let url = format!("http://{}/webhooks/meta", listener.local_addr()?);
            tokio::spawn(async move { axum::serve(listener, hook).await });
            sim.set_webhook_url(url);
        }
        let api = Api::on(&sys);
        Ok(Pipeline {
            sys,
            _sim_rt: sim_rt,
            sim,
            clock,
            api,
        })
    }
}

impl Api {
    /// The operator API of `sys`, tenants named by the `x-tenant-id` header.
    pub fn on(sys: &System) -> Api {
        Api {
            router: shared::http::operator::router(sys.operator.clone())
                .layer(axum::middleware::from_fn(shared::http::tenant_from_header)),
            table: sys.ports.table.clone(),
        }
    }

    /// One operator API call; a non-2xx answer is an error naming the path.
    pub async fn call(
        &self,
        method: Method,
        path: &str,
        body: Option<Value>,
    ) -> anyhow::Result<Value> {
        let req = Request::builder()
            .method(method)
            .uri(path)
            .header("content-type", "application/json")
            .header("x-tenant-id", TENANT)
            .body(body.map(|b| Body::from(b.to_string())).unwrap_or_default())?;
        let resp = self.router.clone().oneshot(req).await?;
        let status = resp.status();
        let bytes = axum::body::to_bytes(resp.into_body(), usize::MAX).await?;
        let v: Value = serde_json::from_slice(&bytes).unwrap_or(Value::Null);
        if !status.is_success() {
            bail!("{path}: {status} {v}");
        }
        Ok(v)
    }

    /// A provider account sending as `sender_id` at most `rate_limit` messages/s, with an
    /// approved template `offer`. Returns the account id.
    pub async fn account(&self, sender_id: &str, rate_limit: u32) -> anyhow::Result<String> {
        let account = self
            .call(
                Method::POST,
                "/accounts",
                Some(
                    json!({"name": format!("Number {sender_id}"), "sender_id": sender_id,
                    "token_ref": "env:SIM_TOKEN", "rate_limit": rate_limit, "waba_id": "100000000000001"}),
                ),
            )
            .await?["id"]
            .as_str()
            .context("account id")?
            .to_owned();
        self.call(
            Method::POST,
            "/templates",
            Some(
                json!({"account_id": account, "name": "offer", "language": "en",
                "category": "MARKETING", "body": "Hi {{1}}, your offer is ready"}),
            ),
        )
        .await?;
        Ok(account)
    }

    /// `n` contacts with distinct Indian mobile numbers starting at `first`.
    pub async fn contacts(&self, first: usize, n: usize) -> anyhow::Result<Vec<String>> {
        let phones: Vec<String> = (first..first + n).map(|i| format!("9198{i:08}")).collect();
        for chunk in phones.chunks(1000) {
            let body: Vec<Value> = chunk
                .iter()
                .map(|p| json!({"phone": p, "name": "Customer"}))
                .collect();
            self.call(Method::POST, "/contacts", Some(Value::Array(body)))
                .await?;
        }
        Ok(phones)
    }

    /// A campaign of `account` at `rate` messages/s over `phones` (a list attached), not
    /// launched. Returns its id.
    pub async fn campaign(
        &self,
        account: &str,
        name: &str,
        rate: u32,
        phones: &[String],
    ) -> anyhow::Result<String> {
        let id = self
            .call(
                Method::POST,
                "/campaigns",
                Some(json!({
                    "name": name, "account_id": account,
                    "template": {"name": "offer", "language": "en"},
                    "variables": [{"source": "contact_name"}],
                    "pacing": {"unit": "messages_per_second", "value": rate},
                })),
            )
            .await?["id"]
            .as_str()
            .context("campaign id")?
            .to_owned();
        let list = self
            .call(Method::POST, "/lists", Some(json!({"name": name})))
            .await?["id"]
            .as_str()
            .context("list id")?
            .to_owned();
        for chunk in phones.chunks(1000) {
            self.call(
                Method::POST,
                &format!("/lists/{list}/members"),
                Some(json!({"phones": chunk})),
            )
            .await?;
        }
        self.call(
            Method::POST,
            &format!("/campaigns/{id}/lists"),
            Some(json!({"list_id": list})),
        )
        .await?;
        Ok(id)
    }

    pub async fn launch(&self, id: &str) -> anyhow::Result<()> {
        self.call(Method::POST, &format!("/campaigns/{id}/launch"), None)
            .await?;
        Ok(())
    }

    /// The campaign's live counters (sent, delivered, read, failed, …).
    pub async fn counters(&self, id: &str) -> anyhow::Result<BTreeMap<String, i64>> {
        Ok(repo::get_counters(&*self.table, TENANT, id).await?)
    }
}
