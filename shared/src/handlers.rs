//! Lambda event handlers: translate an event into a use-case call and its result into the
//! answer Lambda expects. The Lambda binaries, the local runner and the tests all call
//! these, so the same code runs everywhere.

use crate::adapters::{inbound_queue, sqs_event};
use crate::app::admin::LauncherEvent;
use crate::app::dispatch::Dispatcher;
use crate::app::inbox::Inbox;
use crate::app::send::SendService;
use crate::app::sweep::{SweepReport, SweepService};
use crate::app::AppError;
use aws_lambda_events::sqs::{SqsBatchResponse, SqsEvent};
use serde_json::{json, Value};

#[derive(Debug, thiserror::Error)]
pub enum HandlerError {
    #[error("event is not a launcher event: {0}")]
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

/// Inbound worker: an SQS batch of verified webhooks queued by the webhook function;
/// the records to deliver again (storage failures) go back as `batchItemFailures`.
pub async fn inbound(inbox: &Inbox, event: SqsEvent) -> SqsBatchResponse {
    sqs_event::batch_response(inbound_queue::apply_batch(inbox, &event).await)
}

/// Sweeper: any event (the recurring schedule sends `{"action":"sweep"}`).
pub async fn sweeper(s: &SweepService) -> Result<SweepReport, HandlerError> {
    Ok(s.sweep().await?)
}
