//! Translation between SQS's Lambda event and the sender's jobs.

use crate::app::send::Job;
use crate::domain::inbound::SendJob;
use crate::ports::Received;
use aws_lambda_events::sqs::{BatchItemFailure, SqsBatchResponse, SqsEvent, SqsMessage};

/// Each record's body is read on its own, so a malformed one fails alone.
pub fn jobs(event: &SqsEvent) -> Vec<Job> {
    event
        .records
        .iter()
        .enumerate()
        .map(|(i, m)| {
            let id = m
                .message_id
                .clone()
                .unwrap_or_else(|| format!("record-{i}"));
            let job = match m.body.as_deref() {
                None => Err("record has no body".to_owned()),
                Some(b) => serde_json::from_str::<SendJob>(b)
                    .map_err(|e| format!("body is not a send job: {e}")),
            };
            (id, job)
        })
        .collect()
}

/// Tells the event source mapping which records to deliver again.
pub fn batch_response(failed: Vec<String>) -> SqsBatchResponse {
    let mut r = SqsBatchResponse::default();
    r.batch_item_failures = failed
        .into_iter()
        .map(|id| {
            let mut f = BatchItemFailure::default();
            f.item_identifier = id;
            f
        })
        .collect();
    r
}

/// The receipts of the messages a batch did not report as failed: what the event source
/// mapping deletes after the batch.
pub fn handled_receipts(received: &[Received], resp: &SqsBatchResponse) -> Vec<String> {
    received
        .iter()
        .filter(|r| {
            !resp
                .batch_item_failures
                .iter()
                .any(|f| f.item_identifier == r.id)
        })
        .map(|r| r.receipt.clone())
        .collect()
}

/// What Lambda's event source mapping would hand the sender for these messages; the local
/// runner and the tests play that part.
pub fn event_from(received: &[Received]) -> SqsEvent {
    let mut ev = SqsEvent::default();
    ev.records = received
        .iter()
        .map(|r| {
            let mut m = SqsMessage::default();
            m.message_id = Some(r.id.clone());
            m.receipt_handle = Some(r.receipt.clone());
            m.body = Some(r.body.clone());
            m.event_source = Some("aws:sqs".into());
            m
        })
        .collect();
    ev
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn malformed_record_fails_alone() {
        let ok = r#"{"tenant":"t","campaign_id":"c","shard":1,"phone":"919812345678"}"#;
        let ev = event_from(&[
            Received {
                id: "a".into(),
                receipt: "ra".into(),
                body: ok.into(),
            },
            Received {
                id: "b".into(),
                receipt: "rb".into(),
                body: "not json".into(),
            },
        ]);
        let jobs = jobs(&ev);
        assert!(jobs[0].1.is_ok());
        assert!(jobs[1].1.is_err());
        let resp = batch_response(vec!["b".into()]);
        assert_eq!(
            serde_json::to_value(&resp).unwrap()["batchItemFailures"][0]["itemIdentifier"],
            "b"
        );
    }
}
