//! The inbound worker: SQS batches of verified webhooks (queued by the webhook function)
//! parsed and applied to hopper entries, interactions and templates, with partial batch
//! failures.

use aws_lambda_events::sqs::{SqsBatchResponse, SqsEvent};
use lambda_runtime::{service_fn, LambdaEvent};
use shared::adapters::aws;
use shared::adapters::clock::SystemClock;
use shared::app::inbox::Inbox;
use shared::config;
use std::sync::Arc;

#[tokio::main]
async fn main() -> Result<(), lambda_runtime::Error> {
    config::init_tracing();
    let sdk = aws::sdk_config().await;
    // Answers to an SMS HELP go out through the account's SMS provider.
    let http = shared::providers::http_client();
    let inbox = Arc::new(Inbox {
        table: aws::table_from_env(&sdk)?,
        bus: aws::bus_from_env(&sdk)?,
        clock: Arc::new(SystemClock),
        replies: Some(shared::compose::Providers::from_env(&http, &sdk).messaging),
    });
    lambda_runtime::run(service_fn(move |ev: LambdaEvent<SqsEvent>| {
        let inbox = inbox.clone();
        async move {
            Ok::<SqsBatchResponse, lambda_runtime::Error>(
                shared::lambda::inbound(&inbox, ev.payload).await,
            )
        }
    }))
    .await
}
