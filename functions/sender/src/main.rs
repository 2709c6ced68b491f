//! The sender: SQS batches of hopper entries to send, with partial batch failures.

use aws_lambda_events::sqs::{SqsBatchResponse, SqsEvent};
use lambda_runtime::{service_fn, LambdaEvent};
use shared::adapters::aws;
use shared::adapters::clock::SystemClock;
use shared::app::send::SendService;
use shared::compose::Providers;
use shared::config;
use std::sync::Arc;

#[tokio::main]
async fn main() -> Result<(), lambda_runtime::Error> {
    config::init_tracing();
    let sdk = aws::sdk_config().await;
    let http = shared::providers::http_client();
    let service = Arc::new(SendService {
        table: aws::table_from_env(&sdk)?,
        provider: Providers::from_env(&http, &sdk).messaging,
        bus: aws::bus_from_env(&sdk)?,
        clock: Arc::new(SystemClock),
        // Provider calls at once per invocation (SAM parameter SenderInFlight).
        concurrency: config::number("SENDER_IN_FLIGHT", 100usize)?.max(1),
        wait_for_slot: true,
    });
    lambda_runtime::run(service_fn(move |ev: LambdaEvent<SqsEvent>| {
        let s = service.clone();
        async move {
            Ok::<SqsBatchResponse, lambda_runtime::Error>(
                shared::lambda::sender(&s, ev.payload).await,
            )
        }
    }))
    .await
}
