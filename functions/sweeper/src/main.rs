//! The sweeper: closes timed-out interactions and completes finished campaigns.

use lambda_runtime::{service_fn, LambdaEvent};
use serde_json::Value;
use shared::adapters::aws::{self, dynamo::DynamoTable, eventbridge::EventBridgeBus};
use shared::adapters::memory::SystemClock;
use shared::app::sweep::SweepService;
use shared::config;
use std::sync::Arc;

#[tokio::main]
async fn main() -> Result<(), lambda_runtime::Error> {
    config::init_tracing();
    let sdk = aws::sdk_config().await;
    let sweeper = Arc::new(SweepService {
        table: Arc::new(DynamoTable::new(
            aws_sdk_dynamodb::Client::new(&sdk),
            config::required("TABLE_NAME", "the DynamoDB table")?,
        )),
        bus: Arc::new(EventBridgeBus::new(
            aws_sdk_eventbridge::Client::new(&sdk),
            config::required("EVENT_BUS_NAME", "the domain event bus")?,
            "campaigns",
        )),
        clock: Arc::new(SystemClock),
    });
    lambda_runtime::run(service_fn(move |_: LambdaEvent<Value>| {
        let s = sweeper.clone();
        async move {
            shared::handlers::sweeper(&s)
                .await
                .map_err(lambda_runtime::Error::from)
        }
    }))
    .await
}
