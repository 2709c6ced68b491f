//! The launcher: target of start-date schedules and of the recurring dispatch tick.

use lambda_runtime::{service_fn, LambdaEvent};
use serde_json::Value;
use shared::adapters::aws::{self, sqs::SqsQueue};
use shared::adapters::clock::SystemClock;
use shared::app::dispatch::Dispatcher;
use shared::config;
use std::sync::Arc;

#[tokio::main]
async fn main() -> Result<(), lambda_runtime::Error> {
    config::init_tracing();
    let sdk = aws::sdk_config().await;
    let dispatcher = Arc::new(Dispatcher {
        table: aws::table_from_env(&sdk)?,
        queue: Arc::new(SqsQueue::new(
            aws_sdk_sqs::Client::new(&sdk),
            config::required("QUEUE_URL", "the send queue")?,
        )),
        bus: aws::bus_from_env(&sdk)?,
        clock: Arc::new(SystemClock),
        tick_seconds: config::number("TICK_SECONDS", 60)?,
        plan_ahead_secs: config::number(
            "PLAN_AHEAD_SECONDS",
            shared::app::dispatch::PLAN_AHEAD_SECONDS,
        )?,
        start_lead_ms: shared::app::dispatch::START_LEAD_MS,
        // Messages/s the sender carries (SAM parameter SenderCapacity); 0: unlimited.
        send_capacity: Some(config::number("SEND_CAPACITY", 0.0f64)?).filter(|c| *c > 0.0),
    });
    lambda_runtime::run(service_fn(move |ev: LambdaEvent<Value>| {
        let d = dispatcher.clone();
        async move {
            shared::lambda::launcher(&d, ev.payload)
                .await
                .map_err(lambda_runtime::Error::from)
        }
    }))
    .await
}
