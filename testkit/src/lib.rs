//! Test tools of the campaign engine, kept out of every Lambda: a normal dependency of
//! the local runner (`functions/local`) and the benchmark (`tests/bench`), a
//! dev-dependency everywhere else. `tests/tests/architecture.rs` fails if a Lambda's
//! dependency tree lists this crate.
//!
//! - [`memory`], [`memory_objects`]: in-memory twins of the ports, with the AWS adapters'
//!   semantics (one contract suite runs over both);
//! - [`simulator`]: a loopback WhatsApp Cloud API (and Kaleyra) that answers sends and
//!   posts signed webhooks back;
//! - [`local`]: every function in one process, fed the way AWS feeds them;
//! - [`harness`]: the helpers the integration tests share;
//! - [`meta_schema`]: Meta's OpenAPI description of the Cloud API as a JSON Schema
//!   validator of request bodies (the simulator enforces it);
//! - [`InlineSink`]: a webhook sink that applies webhooks before answering.

pub mod harness;
pub mod local;
pub mod memory;
pub mod memory_objects;
pub mod meta_schema;
pub mod simulator;

use async_trait::async_trait;
use shared::app::inbox::{Inbox, InboxReport};
use shared::app::AppError;
use shared::http::webhook::{SinkError, WebhookSink};
use shared::lambda::inbound_queue::QueuedWebhook;
use std::sync::Arc;

/// Parses and applies each verified webhook before answering, with the inbox's report:
/// the same code as the inbound worker, without the queue (tests that read the report).
pub struct InlineSink(pub Arc<Inbox>);

impl InlineSink {
    pub fn on(inbox: Arc<Inbox>) -> Arc<dyn WebhookSink> {
        Arc::new(InlineSink(inbox))
    }
}

#[async_trait]
impl WebhookSink for InlineSink {
    async fn take(&self, webhook: QueuedWebhook) -> Result<serde_json::Value, SinkError> {
        apply(&self.0, &webhook)
            .await
            .map(|report| serde_json::json!(report))
            .map_err(|e| SinkError::Unavailable(e.to_string()))
    }
}

/// Parses and applies one queued webhook. A body that is not JSON was verified, so it is
/// the provider's and delivering it again changes nothing: it is logged and acknowledged
/// (an empty report). An error (storage) means the message should be delivered again;
/// everything the inbox does is idempotent.
pub async fn apply(inbox: &Inbox, webhook: &QueuedWebhook) -> Result<InboxReport, AppError> {
    let events = match webhook.events() {
        Ok(events) => events,
        Err(e) => {
            tracing::warn!(provider = ?webhook.header.provider, error = %e, "unparseable webhook body acknowledged");
            return Ok(InboxReport::default());
        }
    };
    inbox.handle(events).await
}
