//! The Lambda entry points: translate an event into a use-case call and its result into
//! the answer Lambda expects (batch item failures, reports). The Lambda binaries, the
//! local runner and the tests all call these, so the same code runs everywhere.
//!
//! - [`events`]: the launcher's event (written by the start-date schedule);
//! - [`sqs_event`]: send jobs in and out of SQS records, partial batch responses;
//! - [`inbound_queue`]: the verified-webhook message between the webhook and the inbound
//!   worker.

pub mod events;
pub mod inbound_queue;
pub mod sqs_event;

use crate::app::dispatch::Dispatcher;
use crate::app::import::{ContinueImport, ImportService, ImporterEvent};
use crate::app::inbox::Inbox;
use crate::app::send::SendService;
use crate::app::sweep::{SweepReport, SweepService};
use crate::app::AppError;
use crate::providers::{aws_sms, aws_social, connect};
use aws_lambda_events::sqs::{SqsBatchResponse, SqsEvent};
use events::LauncherEvent;
use inbound_queue::{DecodeError, QueuedWebhook};
use serde_json::{json, Value};

#[derive(Debug, thiserror::Error)]
pub enum HandlerError {
    /// The event is not of the function's kind, or malformed.
    #[error("event not understood: {0}")]
    BadEvent(String),
    #[error(transparent)]
    App(#[from] AppError),
}

/// Launcher: `{"action":"launch",...}` from a start-date schedule, `{"action":"tick"}`
/// from the recurring schedule.
pub async fn launcher(d: &Dispatcher, event: Value) -> Result<Value, HandlerError> {
    let ev: LauncherEvent =
        serde_json::from_value(event).map_err(|e| HandlerError::BadEvent(e.to_string()))?;
    match ev {
        LauncherEvent::Launch {
            tenant,
            campaign_id,
        } => {
            let enqueued = d.launch(&tenant, &campaign_id).await?;
            Ok(json!({ "enqueued": enqueued }))
        }
        LauncherEvent::Tick => {
            Ok(serde_json::to_value(d.tick().await?).expect("report serialises"))
        }
    }
}

/// Sender: an SQS batch; the records to deliver again go back as `batchItemFailures`.
pub async fn sender(s: &SendService, event: SqsEvent) -> SqsBatchResponse {
    let failed = s.send_batch(sqs_event::jobs(&event)).await;
    sqs_event::batch_response(failed)
}

/// Inbound worker: an SQS batch of verified webhooks queued by the webhook function, and
/// of AWS End User Messaging Social events its SNS topic delivers to the same queue,
/// applied together so that the statuses of one entry cost one write and the counters
/// one write per campaign ([`Inbox::handle_batch`]); the records to deliver again
/// (storage failures, a format newer than this worker) go back as `batchItemFailures`.
/// A record that is not a queued webhook, or whose verified body is not JSON, is logged
/// and acknowledged: delivering it again cannot help.
pub async fn inbound(inbox: &Inbox, event: SqsEvent) -> SqsBatchResponse {
    let mut failed = Vec::new();
    let mut ids = Vec::new();
    let mut records = Vec::new();
    for (i, m) in event.records.iter().enumerate() {
        let id = m
            .message_id
            .clone()
            .unwrap_or_else(|| format!("record-{i}"));
        let body = m.body.as_deref().unwrap_or_default();
        // A record from the SMS topics (AWS End User Messaging SMS), the WABA's SNS topic
        // (AWS End User Messaging Social) or the Amazon Connect events rule is one JSON
        // value; a webhook the webhook function queued is a header line and a body.
        if let Some(parsed) = connect::parse_event(body) {
            match parsed {
                Ok(events) => {
                    ids.push(id);
                    records.push(events);
                }
                Err(e) => {
                    tracing::warn!(message_id = %id, error = %e, "unreadable Amazon Connect contact event acknowledged");
                }
            }
            continue;
        }
        if let Some(parsed) = aws_sms::parse_event(body, inbox.clock.now()) {
            match parsed {
                Ok(events) => {
                    ids.push(id);
                    records.push(events);
                }
                Err(e) => {
                    tracing::warn!(message_id = %id, error = %e, "unreadable AWS End User Messaging SMS event acknowledged");
                }
            }
            continue;
        }
        if let Some(parsed) = aws_social::parse_event(body) {
            match parsed {
                Ok(events) => {
                    ids.push(id);
                    records.push(events);
                }
                Err(e) => {
                    tracing::warn!(message_id = %id, error = %e, "unreadable AWS End User Messaging Social event acknowledged");
                }
            }
            continue;
        }
        match QueuedWebhook::decode(body) {
            Ok(webhook) => match webhook.events() {
                Ok(events) => {
                    ids.push(id);
                    records.push(events);
                }
                Err(e) => {
                    tracing::warn!(message_id = %id, provider = ?webhook.header.provider, error = %e, "unparseable webhook body acknowledged");
                }
            },
            Err(e @ DecodeError::Newer(_)) => {
                tracing::error!(message_id = %id, error = %e, "inbound record left for a newer worker");
                failed.push(id);
            }
            Err(e) => {
                tracing::error!(message_id = %id, error = %e, "inbound record dropped");
            }
        }
    }
    let (report, errors) = inbox.handle_batch(records).await;
    tracing::debug!(
        applied = report.applied,
        ignored = report.ignored,
        "inbound batch applied"
    );
    for (i, e) in errors {
        tracing::error!(message_id = %ids[i], error = %e, "inbound webhook not applied; it will be delivered again");
        failed.push(ids[i].clone());
    }
    sqs_event::batch_response(failed)
}

/// Sweeper: any event (the recurring schedule sends `{"action":"sweep"}`).
pub async fn sweeper(s: &SweepService) -> Result<SweepReport, HandlerError> {
    Ok(s.sweep().await?)
}

/// Kept free at the end of an importer invocation for the last batch and the checkpoint.
pub const IMPORT_MARGIN: std::time::Duration = std::time::Duration::from_secs(60);

/// Importer: an S3 upload event or a continuation; works until [`IMPORT_MARGIN`] before
/// the invocation's deadline (`left` from now) and returns the continuations to invoke.
pub async fn importer(
    service: &ImportService,
    event: Value,
    request_id: &str,
    left: std::time::Duration,
) -> Result<Vec<ContinueImport>, HandlerError> {
    let budget = left
        .saturating_sub(IMPORT_MARGIN)
        .max(std::time::Duration::from_secs(5));
    let event = ImporterEvent::parse(event).map_err(HandlerError::BadEvent)?;
    Ok(service.handle(event, request_id, budget).await?)
}
