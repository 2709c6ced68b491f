//! The sweeper: closes timed-out interactions and completes finished campaigns.

use lambda_runtime::{service_fn, LambdaEvent};
use serde_json::Value;
use shared::adapters::aws;
use shared::adapters::clock::SystemClock;
use shared::app::sweep::SweepService;
use shared::config;
use std::sync::Arc;

#[tokio::main]
async fn main() -> Result<(), lambda_runtime::Error> {
    config::init_tracing();
    let sdk = aws::sdk_config().await;
    let sweeper = Arc::new(SweepService {
        table: aws::table_from_env(&sdk)?,
        bus: aws::bus_from_env(&sdk)?,
        clock: Arc::new(SystemClock),
    });
    lambda_runtime::run(service_fn(move |_: LambdaEvent<Value>| {
        let s = sweeper.clone();
        async move {
            shared::lambda::sweeper(&s)
                .await
                .map_err(lambda_runtime::Error::from)
        }
    }))
    .await
}
