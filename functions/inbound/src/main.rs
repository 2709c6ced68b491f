//! The inbound worker: SQS batches of verified webhooks (queued by the webhook function)
//! parsed and applied to hopper entries, interactions and templates, with partial batch
//! failures.

use aws_lambda_events::sqs::{SqsBatchResponse, SqsEvent};
use lambda_runtime::{service_fn, LambdaEvent};
use shared::adapters::aws::{self, sqs::SqsQueue};
use shared::adapters::clock::SystemClock;
use shared::app::dispatch::Dispatcher;
use shared::app::inbox::Inbox;
use shared::config;
use std::sync::Arc;

#[tokio::main]
async fn main() -> Result<(), lambda_runtime::Error> {
    config::init_tracing();
    let sdk = aws::sdk_config().await;
    // Answers to an SMS HELP go out through the account's SMS provider.
    let http = shared::providers::http_client();
    let (table, bus) = (aws::table_from_env(&sdk)?, aws::bus_from_env(&sdk)?);
    // A call's end frees its line: the account's voice campaigns are dispatched at once.
    let calls = Dispatcher {
        table: table.clone(),
        queue: Arc::new(SqsQueue::new(
            aws_sdk_sqs::Client::new(&sdk),
            config::required("QUEUE_URL", "the send queue")?,
        )),
        bus: bus.clone(),
        clock: Arc::new(SystemClock),
        tick_seconds: config::number("TICK_SECONDS", 60)?,
        plan_ahead_secs: 0,
        start_lead_ms: 0,
        send_capacity: None,
    };
    let inbox = Arc::new(Inbox {
        table,
        bus,
        clock: Arc::new(SystemClock),
        replies: Some(shared::compose::Providers::from_env(&http, &sdk).messaging),
        calls: Some(Arc::new(calls)),
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
