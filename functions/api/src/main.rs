//! The operator API behind API Gateway (HTTP API, JWT authorizer).

use shared::adapters::aws::{
    self, dynamo::DynamoTable, eventbridge::EventBridgeBus, scheduler::EventBridgeScheduler,
};
use shared::adapters::memory::SystemClock;
use shared::app::admin::Admin;
use shared::config;
use std::sync::Arc;

mod tenant;

#[tokio::main]
async fn main() -> Result<(), lambda_http::Error> {
    config::init_tracing();
    let sdk = aws::sdk_config().await;
    let admin = Arc::new(Admin {
        table: Arc::new(DynamoTable::new(
            aws_sdk_dynamodb::Client::new(&sdk),
            config::required("TABLE_NAME", "the DynamoDB table")?,
        )),
        scheduler: Arc::new(EventBridgeScheduler::new(
            aws_sdk_scheduler::Client::new(&sdk),
            config::required("SCHEDULE_GROUP", "the schedule group for start dates")?,
            config::required("LAUNCHER_ARN", "the launcher function the schedules invoke")?,
            config::required(
                "SCHEDULER_ROLE_ARN",
                "the role EventBridge Scheduler assumes",
            )?,
        )),
        bus: Arc::new(EventBridgeBus::new(
            aws_sdk_eventbridge::Client::new(&sdk),
            config::required("EVENT_BUS_NAME", "the domain event bus")?,
            "campaigns",
        )),
        clock: Arc::new(SystemClock),
    });
    let claim = config::optional("TENANT_CLAIM", "tenant_id");
    let app =
        shared::http::api::router(admin).layer(axum::middleware::from_fn(move |req, next| {
            tenant::from_authorizer(claim.clone(), req, next)
        }));
    lambda_http::run(app).await
}
