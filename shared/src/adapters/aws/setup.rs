//! Creates the resources the adapters expect, for the local emulator, the tests and
//! `functions/local` pointed at one. In AWS the stack creates them. Each helper is
//! idempotent: a resource that already exists is left as it is.

use super::backend;
use crate::ports::{PortError, PortResult};
use aws_sdk_dynamodb::types::{
    AttributeDefinition, BillingMode, GlobalSecondaryIndex, KeySchemaElement, KeyType, Projection,
    ProjectionType, ScalarAttributeType, TableStatus, TimeToLiveSpecification, TimeToLiveStatus,
};
use aws_sdk_sqs::types::QueueAttributeName;
use std::time::Duration;

/// Attribute holding the expiry (epoch seconds) of items that DynamoDB's TTL removes.
pub const TTL_ATTRIBUTE: &str = "ttl";

fn key(name: &str, kind: KeyType) -> PortResult<KeySchemaElement> {
    KeySchemaElement::builder()
        .attribute_name(name)
        .key_type(kind)
        .build()
        .map_err(|e| backend("key schema", e))
}

fn gsi(name: &str, pk: &str, sk: &str) -> PortResult<GlobalSecondaryIndex> {
    GlobalSecondaryIndex::builder()
        .index_name(name)
        .key_schema(key(pk, KeyType::Hash)?)
        .key_schema(key(sk, KeyType::Range)?)
        .projection(
            Projection::builder()
                .projection_type(ProjectionType::All)
                .build(),
        )
        .build()
        .map_err(|e| backend("GSI", e))
}

/// Creates the single table if missing (on-demand; `PK`/`SK` key; `GSI1` and `GSI2` with
/// all attributes projected), waits until it is active and enables TTL on `ttl`.
pub async fn ensure_table(client: &aws_sdk_dynamodb::Client, name: &str) -> PortResult<()> {
    let exists = match client.describe_table().table_name(name).send().await {
        Ok(_) => true,
        Err(e)
            if e.as_service_error()
                .is_some_and(|se| se.is_resource_not_found_exception()) =>
        {
            false
        }
        Err(e) => return Err(backend("DescribeTable", e)),
    };
    if !exists {
        let mut req = client
            .create_table()
            .table_name(name)
            .billing_mode(BillingMode::PayPerRequest)
            .key_schema(key("PK", KeyType::Hash)?)
            .key_schema(key("SK", KeyType::Range)?)
            .global_secondary_indexes(gsi("GSI1", "GSI1PK", "GSI1SK")?)
            .global_secondary_indexes(gsi("GSI2", "GSI2PK", "GSI2SK")?);
        for attr in ["PK", "SK", "GSI1PK", "GSI1SK", "GSI2PK", "GSI2SK"] {
            req = req.attribute_definitions(
                AttributeDefinition::builder()
                    .attribute_name(attr)
                    .attribute_type(ScalarAttributeType::S)
                    .build()
                    .map_err(|e| backend("attribute definition", e))?,
            );
        }
        match req.send().await {
            Ok(_) => {}
            Err(e)
                if e.as_service_error()
                    .is_some_and(|se| se.is_resource_in_use_exception()) => {}
            Err(e) => return Err(backend("CreateTable", e)),
        }
    }
    wait_active(client, name).await?;

    let ttl = client
        .describe_time_to_live()
        .table_name(name)
        .send()
        .await
        .map_err(|e| backend("DescribeTimeToLive", e))?;
    let on = ttl
        .time_to_live_description()
        .and_then(|d| d.time_to_live_status())
        .is_some_and(|s| matches!(s, TimeToLiveStatus::Enabled | TimeToLiveStatus::Enabling));
    if !on {
        client
            .update_time_to_live()
            .table_name(name)
            .time_to_live_specification(
                TimeToLiveSpecification::builder()
                    .enabled(true)
                    .attribute_name(TTL_ATTRIBUTE)
                    .build()
                    .map_err(|e| backend("TTL specification", e))?,
            )
            .send()
            .await
            .map_err(|e| backend("UpdateTimeToLive", e))?;
    }
    Ok(())
}

async fn wait_active(client: &aws_sdk_dynamodb::Client, name: &str) -> PortResult<()> {
    for _ in 0..120 {
        let out = client
            .describe_table()
            .table_name(name)
            .send()
            .await
            .map_err(|e| backend("DescribeTable", e))?;
        if out.table().and_then(|t| t.table_status()) == Some(&TableStatus::Active) {
            return Ok(());
        }
        tokio::time::sleep(Duration::from_millis(500)).await;
    }
    Err(PortError::Backend(format!(
        "table {name} did not become active"
    )))
}

/// Returns the URL of queue `name`, creating it (and its dead-letter queue `<name>-dlq`,
/// after five receives) if missing.
pub async fn ensure_queue(client: &aws_sdk_sqs::Client, name: &str) -> PortResult<String> {
    match client.get_queue_url().queue_name(name).send().await {
        Ok(out) => {
            if let Some(url) = out.queue_url {
                return Ok(url);
            }
        }
        Err(e)
            if e.as_service_error()
                .is_some_and(|se| se.is_queue_does_not_exist()) => {}
        Err(e) => return Err(backend("GetQueueUrl", e)),
    }
    let dlq_url = client
        .create_queue()
        .queue_name(format!("{name}-dlq"))
        .send()
        .await
        .map_err(|e| backend("CreateQueue (dlq)", e))?
        .queue_url
        .ok_or_else(|| PortError::Backend("CreateQueue (dlq): no queue URL".into()))?;
    let dlq_arn = client
        .get_queue_attributes()
        .queue_url(&dlq_url)
        .attribute_names(QueueAttributeName::QueueArn)
        .send()
        .await
        .map_err(|e| backend("GetQueueAttributes (dlq)", e))?
        .attributes
        .and_then(|mut a| a.remove(&QueueAttributeName::QueueArn))
        .ok_or_else(|| PortError::Backend("GetQueueAttributes (dlq): no QueueArn".into()))?;
    let redrive = serde_json::json!({ "deadLetterTargetArn": dlq_arn, "maxReceiveCount": "5" });
    client
        .create_queue()
        .queue_name(name)
        .attributes(QueueAttributeName::RedrivePolicy, redrive.to_string())
        .send()
        .await
        .map_err(|e| backend("CreateQueue", e))?
        .queue_url
        .ok_or_else(|| PortError::Backend("CreateQueue: no queue URL".into()))
}

/// Creates the custom event bus `name` if missing (`default` always exists).
pub async fn ensure_bus(client: &aws_sdk_eventbridge::Client, name: &str) -> PortResult<()> {
    if name == "default" {
        return Ok(());
    }
    match client.create_event_bus().name(name).send().await {
        Ok(_) => Ok(()),
        Err(e)
            if e.as_service_error()
                .is_some_and(|se| se.is_resource_already_exists_exception()) =>
        {
            Ok(())
        }
        Err(e) => Err(backend("CreateEventBus", e)),
    }
}

/// Creates the schedule group `name` if missing (`default` always exists).
pub async fn ensure_schedule_group(
    client: &aws_sdk_scheduler::Client,
    name: &str,
) -> PortResult<()> {
    if name == "default" {
        return Ok(());
    }
    match client.create_schedule_group().name(name).send().await {
        Ok(_) => Ok(()),
        Err(e)
            if e.as_service_error()
                .is_some_and(|se| se.is_conflict_exception()) =>
        {
            Ok(())
        }
        Err(e) => Err(backend("CreateScheduleGroup", e)),
    }
}
