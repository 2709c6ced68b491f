//! The operator API behind API Gateway (HTTP API, JWT authorizer).

use shared::adapters::aws::{self, scheduler::EventBridgeScheduler};
use shared::adapters::clock::SystemClock;
use shared::adapters::secrets::SecretResolver;
use shared::app::admin::Admin;
use shared::app::conversations::Conversations;
use shared::app::templates::TemplateSync;
use shared::config;
use shared::providers::kaleyra::KaleyraProvider;
use shared::providers::meta::MetaProvider;
use shared::providers::meta_templates::MetaTemplates;
use shared::providers::ByAccountProvider;
use std::sync::Arc;

mod tenant;

#[tokio::main]
async fn main() -> Result<(), lambda_http::Error> {
    config::init_tracing();
    let sdk = aws::sdk_config().await;
    let admin = Arc::new(Admin {
        table: aws::table_from_env(&sdk)?,
        scheduler: Arc::new(EventBridgeScheduler::new(
            aws_sdk_scheduler::Client::new(&sdk),
            config::required("SCHEDULE_GROUP", "the schedule group for start dates")?,
            config::required("LAUNCHER_ARN", "the launcher function the schedules invoke")?,
            config::required(
                "SCHEDULER_ROLE_ARN",
                "the role EventBridge Scheduler assumes",
            )?,
        )),
        bus: aws::bus_from_env(&sdk)?,
        clock: Arc::new(SystemClock),
    });
    // Template synchronisation reads Meta's template list with the account's token.
    let (graph_url, graph_version) = config::meta_graph();
    let sync = Arc::new(TemplateSync {
        table: admin.table.clone(),
        bus: admin.bus.clone(),
        clock: admin.clock.clone(),
        source: Arc::new(MetaTemplates::new(
            graph_url,
            graph_version,
            Arc::new(SecretResolver::new()),
        )),
    });
    // The recontact template (R5.5) goes out through the account's provider.
    let (graph_url, graph_version) = config::meta_graph();
    let secrets = Arc::new(SecretResolver::new());
    let conversations = Arc::new(Conversations {
        table: admin.table.clone(),
        provider: Arc::new(ByAccountProvider {
            meta: Arc::new(MetaProvider::new(graph_url, graph_version, secrets.clone())),
            kaleyra: Arc::new(KaleyraProvider::new(
                config::optional("KALEYRA_API_URL", "https://api.kaleyra.io"),
                secrets,
            )),
        }),
        clock: admin.clock.clone(),
    });
    let claim = config::optional("TENANT_CLAIM", "tenant_id");
    let api = shared::http::audience::with_object_store(
        shared::http::api::router(admin),
        aws::s3::objects_from_env(&sdk)?,
    );
    let app = api
        .merge(shared::http::templates::sync_router(sync))
        .merge(shared::http::conversations::recontact_router(conversations))
        .layer(axum::middleware::from_fn(move |req, next| {
            tenant::from_authorizer(claim.clone(), req, next)
        }));
    lambda_http::run(app).await
}
