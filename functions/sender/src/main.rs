//! The sender: SQS batches of hopper entries to send, with partial batch failures.

use aws_lambda_events::sqs::{SqsBatchResponse, SqsEvent};
use lambda_runtime::{service_fn, LambdaEvent};
use shared::adapters::aws;
use shared::adapters::clock::SystemClock;
use shared::adapters::secrets::SecretResolver;
use shared::app::send::SendService;
use shared::config;
use shared::providers::kaleyra::KaleyraProvider;
use shared::providers::meta::MetaProvider;
use shared::providers::ByAccountProvider;
use std::sync::Arc;

#[tokio::main]
async fn main() -> Result<(), lambda_runtime::Error> {
    config::init_tracing();
    let sdk = aws::sdk_config().await;
    let (graph_url, graph_version) = config::meta_graph();
    let secrets = Arc::new(SecretResolver::new());
    let service = Arc::new(SendService {
        table: aws::table_from_env(&sdk)?,
        provider: Arc::new(ByAccountProvider {
            meta: Arc::new(MetaProvider::new(graph_url, graph_version, secrets.clone())),
            kaleyra: Arc::new(KaleyraProvider::new(
                config::optional("KALEYRA_API_URL", "https://api.kaleyra.io"),
                secrets,
            )),
        }),
        bus: aws::bus_from_env(&sdk)?,
        clock: Arc::new(SystemClock),
        concurrency: 10,
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
