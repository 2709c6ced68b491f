//! AWS adapters of the ports: DynamoDB table, SQS queue, EventBridge Scheduler and
//! EventBridge bus, plus `setup` helpers that create the resources on a local emulator.
//! Each behaves like its in-memory twin in `crate::adapters::memory`.

pub mod dynamo;
pub mod eventbridge;
pub mod s3;
pub mod scheduler;
pub mod setup;
pub mod sqs;

pub use dynamo::DynamoTable;
pub use eventbridge::EventBridgeBus;
pub use scheduler::EventBridgeScheduler;
pub use sqs::SqsQueue;

use crate::ports::PortError;

/// Loads the shared AWS configuration from the environment (region, credentials and
/// `AWS_ENDPOINT_URL`, which points every client at a local emulator when set).
pub async fn sdk_config() -> aws_config::SdkConfig {
    aws_config::defaults(aws_config::BehaviorVersion::latest())
        .load()
        .await
}

/// An SDK configuration that needs no AWS account: region `us-east-1` and static
/// credentials that sign requests and open nothing. For clients whose endpoint is not AWS
/// (the local runner and the tests point AWS End User Messaging Social at the simulator).
pub fn offline_sdk_config() -> aws_config::SdkConfig {
    use aws_sdk_socialmessaging::config::{Credentials, Region, SharedCredentialsProvider};
    aws_config::SdkConfig::builder()
        .behavior_version(aws_config::BehaviorVersion::latest())
        .region(Region::new("us-east-1"))
        .credentials_provider(SharedCredentialsProvider::new(Credentials::new(
            "local", "local", None, None, "offline",
        )))
        .build()
}

/// A backend error carrying the SDK error with its full cause chain.
pub(crate) fn backend<E: std::error::Error>(op: &str, err: E) -> PortError {
    PortError::Backend(format!(
        "{op}: {}",
        aws_sdk_dynamodb::error::DisplayErrorContext(err)
    ))
}

/// The table named by `TABLE_NAME`, for the composition roots.
pub fn table_from_env(
    sdk: &aws_config::SdkConfig,
) -> Result<std::sync::Arc<dynamo::DynamoTable>, crate::config::MissingVar> {
    let name = crate::config::required("TABLE_NAME", "the DynamoDB table")?;
    Ok(std::sync::Arc::new(dynamo::DynamoTable::new(
        aws_sdk_dynamodb::Client::new(sdk),
        name,
    )))
}

/// The domain event bus named by `EVENT_BUS_NAME`, for the composition roots.
pub fn bus_from_env(
    sdk: &aws_config::SdkConfig,
) -> Result<std::sync::Arc<eventbridge::EventBridgeBus>, crate::config::MissingVar> {
    let name = crate::config::required("EVENT_BUS_NAME", "the domain event bus")?;
    Ok(std::sync::Arc::new(eventbridge::EventBridgeBus::new(
        aws_sdk_eventbridge::Client::new(sdk),
        name,
        "campaigns",
    )))
}
