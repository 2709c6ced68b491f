//! The sender: SQS batches of hopper entries to send, with partial batch failures.

use aws_lambda_events::sqs::{SqsBatchResponse, SqsEvent};
use lambda_runtime::{service_fn, LambdaEvent};
use shared::adapters::aws::{self, dynamo::DynamoTable, eventbridge::EventBridgeBus};
use shared::adapters::memory::SystemClock;
use shared::adapters::secrets::SecretResolver;
use shared::app::send::SendService;
use shared::config;
use shared::providers::meta::MetaProvider;
use std::sync::Arc;

#[tokio::main]
async fn main() -> Result<(), lambda_runtime::Error> {
    config::init_tracing();
    let sdk = aws::sdk_config().await;
    let (graph_url, graph_version) = config::meta_graph();
    let service = Arc::new(SendService {
        table: Arc::new(DynamoTable::new(
            aws_sdk_dynamodb::Client::new(&sdk),
            config::required("TABLE_NAME", "the DynamoDB table")?,
        )),
        provider: Arc::new(MetaProvider::new(
            graph_url,
            graph_version,
            Arc::new(SecretResolver::new()),
        )),
        bus: Arc::new(EventBridgeBus::new(
            aws_sdk_eventbridge::Client::new(&sdk),
            config::required("EVENT_BUS_NAME", "the domain event bus")?,
            "campaigns",
        )),
        clock: Arc::new(SystemClock),
        concurrency: 10,
    });
    lambda_runtime::run(service_fn(move |ev: LambdaEvent<SqsEvent>| {
        let s = service.clone();
        async move {
            Ok::<SqsBatchResponse, lambda_runtime::Error>(
                shared::handlers::sender(&s, ev.payload).await,
            )
        }
    }))
    .await
}
